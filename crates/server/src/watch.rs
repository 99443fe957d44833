//! Watch streams: newline-delimited `WatchEvent` JSON over a chunked response.
//!
//! Each watcher runs one task that reads shared cache events, applies its selectors (turning
//! selector transitions into ADDED/DELETED as kube-apiserver's cacher does) and writes frames.
//! The stream ends at the watch's timeout, at server shutdown, when the client goes away, or when
//! the watcher falls too far behind (it then resumes from its last resourceVersion).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use strongroom_storage::cache::{CacheEvent, EventType, WatchStream};
use tokio::sync::mpsc;

use crate::ApiServer;
use crate::codec::{Output, Resp};
use strongroom_api::SecretBytes;
use strongroom_storage::cache::ObjectDecoder;

use crate::object::{Decoder, ServedObject};
use crate::registry::{ResourceInfo, Strategy};
use crate::rest::Filter;
use crate::table;

pub struct Options {
    pub output: Output,
    pub bookmarks: bool,
    /// Send a BOOKMARK annotated `k8s.io/initial-events-end` after the initial events
    /// (`sendInitialEvents=true`, the watch-list protocol).
    pub send_initial_events_end: bool,
    pub timeout: Duration,
    /// Only this object (the deprecated `/watch/.../{name}` form).
    pub name: Option<String>,
}

/// How long a watcher may leave its buffer full before it is cut off (it then resumes from its
/// last resourceVersion like any client). A stalled reader must not hold memory or a watch slot.
const SLOW_WATCHER: Duration = Duration::from_secs(5);

/// Frames buffered per watcher.
const WATCHER_FRAMES: usize = 16;

type Tx = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// Sends one frame; false when the client is gone or too slow (the stream then ends).
async fn send(tx: &Tx, line: Bytes) -> bool {
    matches!(tokio::time::timeout(SLOW_WATCHER, tx.send(Ok(Frame::data(line)))).await, Ok(Ok(())))
}

/// How often an idle watch that asked for bookmarks gets one (kube-apiserver: about a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

pub fn serve(
    server: Arc<ApiServer>,
    info: &'static ResourceInfo,
    stream: WatchStream<ServedObject>,
    filter: Filter,
    opts: Options,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Resp {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(WATCHER_FRAMES);
    tokio::spawn(async move {
        run(server, info, stream, filter, opts, tx).await;
        // The watch's slot is free again only once its task has ended.
        drop(permit);
    });
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    let mut r = http::Response::new(body);
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// What one cache event means for this watcher, and whether to send the previous state.
///
/// As kube-apiserver's cacher: an update that makes an object start matching is ADDED; one that
/// makes it stop matching is DELETED carrying the *previous* object (the last state the watcher
/// was entitled to), at the event's resourceVersion.
fn translate(ev: &CacheEvent<ServedObject>, filter: &Filter, name: Option<&str>) -> Option<(&'static str, bool)> {
    let ok = |o: &ServedObject| filter.matches(o) && name.is_none_or(|n| o.name == n);
    let now = ev.object.body.as_ref().ok().map(ok)?;
    let before = ev.prev.as_ref().and_then(|p| p.body.as_ref().ok()).map(ok);
    match ev.kind {
        EventType::Added => now.then_some(("ADDED", false)),
        EventType::Deleted => now.then_some(("DELETED", false)),
        EventType::Modified => match (before.unwrap_or(now), now) {
            (true, true) => Some(("MODIFIED", false)),
            (false, true) => Some(("ADDED", false)),
            (true, false) => Some(("DELETED", true)),
            (false, false) => None,
        },
    }
}

/// The previous state of `ev`'s object, re-served at the event's revision.
fn previous_at_event(server: &ApiServer, ev: &CacheEvent<ServedObject>) -> Option<ServedObject> {
    let prev = ev.prev.as_ref()?.body.as_ref().ok()?;
    let decoder = Decoder { registry: server.registry.clone() };
    decoder.decode(&ev.object.key, ev.revision, SecretBytes::new(prev.json.expose().to_vec())).ok()
}

fn event_line(strategy: &dyn Strategy, output: Output, kind: &str, obj: &ServedObject, revision: u64) -> Bytes {
    let mut line = Vec::with_capacity(obj.json.len() + 40);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    match output {
        Output::Json => line.extend_from_slice(obj.json.expose()),
        Output::Metadata => line.extend_from_slice(obj.partial_metadata_json().as_bytes()),
        Output::Table(include) => {
            let t = table::event_table(strategy, obj, include, revision);
            line.extend_from_slice(&serde_json::to_vec(&t).unwrap_or_default());
        }
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn bookmark_line(info: &'static ResourceInfo, revision: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let ev =
        json!({"type": "BOOKMARK", "object": {"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}});
    let mut line = serde_json::to_vec(&ev).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

async fn run(
    server: Arc<ApiServer>,
    info: &'static ResourceInfo,
    mut stream: WatchStream<ServedObject>,
    filter: Filter,
    opts: Options,
    tx: Tx,
) {
    let deadline = tokio::time::sleep(opts.timeout);
    tokio::pin!(deadline);
    let mut shutdown = server.shutdown.clone();
    let single_name = opts.name.as_deref().or_else(|| filter.field.requires_exact_match("metadata.name"));
    let mut bookmark = tokio::time::interval(BOOKMARK_INTERVAL);
    bookmark.reset();
    let mut initial_pending = opts.send_initial_events_end;
    loop {
        if initial_pending && stream.replay_done() {
            initial_pending = false;
            // The replay described exactly this revision: promise no more than that.
            if !send(&tx, bookmark_line(info, stream.start_revision(), true)).await {
                return;
            }
        }
        tokio::select! {
            _ = &mut deadline => return,
            // The client went away: free the watch now, not at the next event.
            _ = tx.closed() => return,
            _ = shutdown.changed() => return,
            // Bookmarks promise that everything up to their revision was sent: never during the
            // replay, and never beyond what this stream has consumed.
            _ = bookmark.tick(), if opts.bookmarks && stream.replay_done() => {
                if !send(&tx, bookmark_line(info, stream.progress(), false)).await {
                    return;
                }
            }
            next = stream.next() => {
                let Ok(ev) = next else { return };
                let obj = match ev.object.body.as_ref() {
                    Ok(obj) => obj,
                    // A single-object watch is not concerned by another object's corruption.
                    Err(_) if single_name.is_some_and(|n| !ev.object.key.as_str().ends_with(&format!("/{n}"))) => {
                        continue;
                    }
                    Err(_) => {
                        // Fail closed: skipping it would tell the client the object does not
                        // exist. An ERROR event ends the watch; the client's relist then gets 500.
                        let err = crate::rest::served(&ev.object).expect_err("body is an error");
                        let line = format!("{{\"type\":\"ERROR\",\"object\":{}}}\n", err.to_status());
                        let _ = send(&tx, Bytes::from(line)).await;
                        return;
                    }
                };
                let Some((kind, use_prev)) = translate(&ev, &filter, opts.name.as_deref()) else { continue };
                let Some(strategy) = server.registry.lookup(info.group, info.version, info.plural) else { return };
                let previous = if use_prev { previous_at_event(&server, &ev) } else { None };
                let line = event_line(strategy, opts.output, kind, previous.as_ref().unwrap_or(obj), ev.revision);
                if !send(&tx, line).await {
                    return;
                }
            }
        }
    }
}
