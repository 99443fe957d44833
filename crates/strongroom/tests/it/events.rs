//! core/v1 Events end to end, with the real kubectl: Events created from manifests about a
//! Secret (the agent's SecretUpdated) and a Pod (FailedMount), `kubectl get events` in its
//! exact shape, field selectors, `kubectl describe` and `kubectl events`, validation, the
//! bootstrap RBAC roles, and expiry after `--event-ttl`.
//!
//! Every expected line is what kubectl 1.32 prints against a Kubernetes 1.32 apiserver.

use std::time::Duration;

use strongroom_testkit::{Agent, Server, eventually};

use crate::{server, server_with};

/// The width of kubectl's LAST SEEN column: the header (9 characters) and three spaces, as long
/// as every age is shorter than the header.
const LAST_SEEN_WIDTH: usize = 12;

/// An RFC 3339 timestamp `offset_seconds` from now, as reporters write `lastTimestamp`.
fn timestamp(offset_seconds: i64) -> String {
    let t = jiff::Timestamp::now().as_second() + offset_seconds;
    jiff::Timestamp::from_second(t).expect("a time near now").strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The agent's SecretUpdated, old style (timestamps, count and source), about Secret `app/db`.
fn secret_updated(last_timestamp: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Event
metadata:
  name: db.17f0c1d2e3a4b5c6
  namespace: app
involvedObject:
  apiVersion: v1
  kind: Secret
  name: db
  namespace: app
reason: SecretUpdated
message: delivered resourceVersion 42 to /run/secrets/db
type: Normal
source:
  component: strongroom-agent
  host: node-1
firstTimestamp: "{first}"
lastTimestamp: "{last_timestamp}"
count: 3
"#,
        first = timestamp(-1),
    )
}

/// The agent's FailedMount, new style (eventTime and the reporting fields), about Pod `app/web`.
fn failed_mount() -> String {
    format!(
        r#"apiVersion: v1
kind: Event
metadata:
  name: web.17f0c1d2e3a4b5c7
  namespace: app
involvedObject:
  apiVersion: v1
  kind: Pod
  name: web
  namespace: app
reason: FailedMount
message: 'MountVolume.SetUp failed for volume "creds" : secret "missing" not found'
type: Warning
eventTime: "{now}"
reportingComponent: strongroom-agent
reportingInstance: node-1
action: FailedMount
"#,
        now = timestamp(0).replace('Z', ".000000Z"),
    )
}

/// Creates namespace `app`, Secret `app/db` and the two Events.
fn app_with_events(s: &Server) {
    s.kubectl(&["create", "namespace", "app"]).stdout_is("namespace/app created\n");
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=pw"])
        .stdout_is("secret/db created\n");
    s.kubectl_stdin(&["create", "-f", "-"], &secret_updated(&timestamp(0)))
        .stdout_is("event/db.17f0c1d2e3a4b5c6 created\n");
    s.kubectl_stdin(&["create", "-f", "-"], &failed_mount()).stdout_is("event/web.17f0c1d2e3a4b5c7 created\n");
}

/// Checks a table whose first column is an age (LAST SEEN): each row's age is a few seconds, and
/// the rest of the row is exactly `want` (header included, which has no age).
#[track_caller]
fn assert_event_table(out: &str, header: &str, rows: &[&str]) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), rows.len() + 1, "{out}");
    assert_eq!(lines[0], header, "{out}");
    for (line, want) in lines[1..].iter().zip(rows) {
        let (age, rest) = line.split_at(LAST_SEEN_WIDTH.min(line.len()));
        let age = age.trim_end();
        let seconds = age.strip_suffix('s').and_then(|n| n.parse::<u64>().ok());
        assert!(seconds.is_some_and(|n| n < 120), "LAST SEEN {age:?} is a few seconds in\n{out}");
        assert_eq!(rest, *want, "{out}");
    }
}

#[test]
fn kubectl_get_events_prints_what_the_agent_reported() {
    let s = server();
    app_with_events(&s);

    assert_event_table(
        &s.kubectl(&["get", "events", "-n", "app"]).ok(),
        "LAST SEEN   TYPE      REASON          OBJECT      MESSAGE",
        &[
            "Normal    SecretUpdated   secret/db   delivered resourceVersion 42 to /run/secrets/db",
            "Warning   FailedMount     pod/web     MountVolume.SetUp failed for volume \"creds\" : secret \"missing\" not found",
        ],
    );
    // The short name, and every namespace.
    let all = s.kubectl(&["get", "ev", "-A"]).ok();
    assert!(all.starts_with("NAMESPACE   LAST SEEN   TYPE      REASON"), "{all}");
    assert_eq!(all.lines().count(), 3, "{all}");

    // -o wide adds the columns kube-apiserver marks priority 1.
    let wide = s.kubectl(&["get", "events", "-n", "app", "-o", "wide"]).ok();
    let header: Vec<&str> = wide.lines().next().unwrap_or_default().split("  ").filter(|c| !c.is_empty()).collect();
    let header: Vec<&str> = header.iter().map(|c| c.trim()).collect();
    assert_eq!(
        header,
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"],
        "{wide}"
    );
    let db = wide.lines().nth(1).unwrap_or_default();
    assert!(db.contains("   strongroom-agent, node-1   delivered"), "source is component, host: {wide}");
    assert!(db.trim_end().ends_with("   3       db.17f0c1d2e3a4b5c6"), "count and name: {wide}");
    let web = wide.lines().nth(2).unwrap_or_default();
    assert!(web.contains("   strongroom-agent, node-1   MountVolume"), "reporting component, instance: {wide}");
    assert!(web.trim_end().ends_with("   1       web.17f0c1d2e3a4b5c7"), "a singleton counts once: {wide}");

    s.kubectl(&["get", "event", "db.17f0c1d2e3a4b5c6", "-n", "app", "-o", "jsonpath={.count} {.source.host}"])
        .stdout_is("3 node-1");
    s.kubectl(&["delete", "event", "web.17f0c1d2e3a4b5c7", "-n", "app"])
        .stdout_is("event \"web.17f0c1d2e3a4b5c7\" deleted\n");
    s.kubectl(&["get", "events", "-n", "app", "-o", "name"]).stdout_is("event/db.17f0c1d2e3a4b5c6\n");
}

#[test]
fn field_selectors_pick_events_by_their_object() {
    let s = server();
    app_with_events(&s);
    let names =
        |selector: &str| s.kubectl(&["get", "events", "-n", "app", "-o", "name", "--field-selector", selector]).ok();
    assert_eq!(names("involvedObject.name=db"), "event/db.17f0c1d2e3a4b5c6\n");
    assert_eq!(names("involvedObject.kind=Pod,type=Warning"), "event/web.17f0c1d2e3a4b5c7\n");
    assert_eq!(
        names("involvedObject.namespace=app,involvedObject.apiVersion=v1,reason=SecretUpdated"),
        "event/db.17f0c1d2e3a4b5c6\n"
    );
    assert_eq!(names("reportingComponent=strongroom-agent"), "event/web.17f0c1d2e3a4b5c7\n");
    // `source` is the source component, else the reporting component: both match.
    assert_eq!(names("source=strongroom-agent"), "event/db.17f0c1d2e3a4b5c6\nevent/web.17f0c1d2e3a4b5c7\n");
    assert_eq!(names("involvedObject.name!=db,metadata.namespace=app"), "event/web.17f0c1d2e3a4b5c7\n");
    assert_eq!(names("involvedObject.uid=nope"), "");
    s.kubectl(&["get", "events", "-n", "app", "--field-selector", "spec.color=red"]).stderr_is(
        "Error from server (BadRequest): Unable to find \"/v1, Resource=events\" that match label selector \"\", \
         field selector \"spec.color=red\": field label not supported: spec.color\n",
    );
    // Human-readable output through a selector, cluster-wide.
    let out = s.kubectl(&["get", "events", "-A", "--field-selector", "involvedObject.name=db"]).ok();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("app ") && l.contains("secret/db")), "{out}");
}

#[test]
fn kubectl_events_and_describe_show_an_objects_events() {
    let s = server();
    app_with_events(&s);

    // kubectl events asks for involvedObject.kind, .apiVersion and .name, prints the object with
    // its kind as is, and a recurring event's age with its count: "1s (x3 over 2s)".
    let out = s.kubectl(&["events", "-n", "app", "--for", "secret/db"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{out}");
    let (age, rest) = lines[1].split_once(" (x3 over ").unwrap_or_else(|| panic!("{out}"));
    assert!(age.ends_with('s'), "{out}");
    let rest = rest.split_once(")").map(|(_, r)| r.trim_start()).unwrap_or_default();
    assert_eq!(rest, "Normal   SecretUpdated   Secret/db   delivered resourceVersion 42 to /run/secrets/db", "{out}");
    let warnings = s.kubectl(&["events", "-n", "app", "--types=Warning"]).ok();
    assert_eq!(warnings.lines().count(), 2, "{warnings}");
    assert!(warnings.contains("   Warning   FailedMount   Pod/web   MountVolume.SetUp failed"), "{warnings}");

    // kubectl's Secret describer shows no events for any server (it never asks for them).
    let described = s.kubectl(&["describe", "secret", "db", "-n", "app"]).ok();
    assert!(described.starts_with("Name:         db\nNamespace:    app\n"), "{described}");
    assert!(!described.contains("Events:"), "{described}");

    // The ServiceAccount describer asks for involvedObject.name, .namespace, .kind and .uid.
    let uid = s.kubectl(&["get", "serviceaccount", "default", "-n", "app", "-o", "jsonpath={.metadata.uid}"]).ok();
    let token_event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: default.17f0\n  namespace: app\n\
         involvedObject:\n  apiVersion: v1\n  kind: ServiceAccount\n  name: default\n  namespace: app\n  uid: {uid}\n\
         reason: TokenIssued\nmessage: a token for audience vault\ntype: Normal\n\
         source:\n  component: strongroom-agent\nfirstTimestamp: \"{now}\"\nlastTimestamp: \"{now}\"\ncount: 2\n",
        now = timestamp(0)
    );
    s.kubectl_stdin(&["create", "-f", "-"], &token_event).stdout_is("event/default.17f0 created\n");
    let described = s.kubectl(&["describe", "serviceaccount", "default", "-n", "app"]).ok();
    let events = described.split_once("Events:\n").map(|(_, e)| e).unwrap_or_else(|| panic!("{described}"));
    let lines: Vec<Vec<&str>> = events.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 3, "{described}");
    assert_eq!(lines[0], ["Type", "Reason", "Age", "From", "Message"], "{described}");
    assert_eq!(lines[2][..2], ["Normal", "TokenIssued"], "{described}");
    assert_eq!(
        lines[2][lines[2].len() - 6..],
        ["strongroom-agent", "a", "token", "for", "audience", "vault"],
        "{described}"
    );
}

#[test]
fn invalid_events_are_refused_with_kubernetes_messages() {
    let s = server();
    app_with_events(&s);
    let elsewhere = secret_updated(&timestamp(0))
        .replace("name: db.17f0c1d2e3a4b5c6", "name: elsewhere")
        .replace("  name: db\n  namespace: app\n", "  name: db\n  namespace: other\n");
    s.kubectl_stdin(&["create", "-f", "-"], &elsewhere).stderr_is(
        "The Event \"elsewhere\" is invalid: involvedObject.namespace: Invalid value: \"other\": does not match event.namespace\n",
    );
    // A new-style Event without its reporting fields; free text is never quoted back.
    let bare = failed_mount()
        .replace("name: web.17f0c1d2e3a4b5c7", "name: bare")
        .replace("reportingComponent: strongroom-agent\n", "")
        .replace("action: FailedMount\n", &format!("action: FailedMount\nreason: {}\n", "R".repeat(129)))
        .replace("reason: FailedMount\n", "");
    let err = s.kubectl_stdin(&["create", "-f", "-"], &bare).fails();
    assert!(err.starts_with("The Event \"bare\" is invalid: \n* reportingController: Required value\n"), "{err}");
    assert!(err.contains("\n* reason: Invalid value: \"\": can have at most 128 characters\n"), "{err}");
    assert!(!err.contains("RRRR"), "{err}");
    // core/v1 does not check `type`, and names are path segments.
    let odd = secret_updated(&timestamp(0))
        .replace("name: db.17f0c1d2e3a4b5c6", "name: Db_Secret:Updated")
        .replace("type: Normal", "type: Catastrophic");
    s.kubectl_stdin(&["create", "-f", "-"], &odd).stdout_is("event/Db_Secret:Updated created\n");
}

#[test]
fn view_reads_events_and_edit_writes_them() {
    let s = server();
    app_with_events(&s);
    s.kubectl(&["create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice", "-n", "app"])
        .stdout_is("rolebinding.rbac.authorization.k8s.io/alice-view created\n");
    s.kubectl(&["create", "rolebinding", "bob-edit", "--clusterrole=edit", "--user=bob", "-n", "app"])
        .stdout_is("rolebinding.rbac.authorization.k8s.io/bob-edit created\n");
    let alice = s.user_kubeconfig("alice", &[]);
    let bob = s.user_kubeconfig("bob", &[]);
    // Aggregation fills view and edit moments after start; wait for it with a bound.
    eventually("view to include events", Duration::from_secs(30), || {
        s.kubectl_as(&alice, &["auth", "can-i", "list", "events", "-n", "app"]).output.status.success().then_some(())
    });
    s.kubectl_as(&alice, &["get", "events", "-n", "app", "-o", "name"])
        .stdout_is("event/db.17f0c1d2e3a4b5c6\nevent/web.17f0c1d2e3a4b5c7\n");
    s.kubectl_as(&alice, &["delete", "event", "db.17f0c1d2e3a4b5c6", "-n", "app"]).stderr_is(
        "Error from server (Forbidden): events \"db.17f0c1d2e3a4b5c6\" is forbidden: User \"alice\" cannot delete \
         resource \"events\" in API group \"\" in the namespace \"app\"\n",
    );
    s.kubectl_as(&bob, &["delete", "event", "db.17f0c1d2e3a4b5c6", "-n", "app"])
        .stdout_is("event \"db.17f0c1d2e3a4b5c6\" deleted\n");
    s.kubectl_as(&bob, &["auth", "can-i", "create", "events", "-n", "app"]).stdout_is("yes\n");
    let denied = s.kubectl_as(&bob, &["auth", "can-i", "create", "events", "-n", "default"]);
    denied.fails();
    assert_eq!(denied.stdout(), "no\n");
}

/// A pod whose volume names Secret `app/db`.
const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: app
spec:
  containers:
  - name: web
    image: ignored
  volumes:
  - name: creds
    secret:
      secretName: db
"#;

/// The real agent reports a missing Secret (FailedMount, about the pod) and then its delivery
/// (SecretUpdated, about the Secret), and kubectl shows both.
#[test]
fn the_agent_reports_what_it_did() {
    let s = server();
    s.kubectl(&["create", "namespace", "app"]).stdout_is("namespace/app created\n");
    let agent = Agent::start(env!("CARGO_BIN_EXE_strongroom"), &s.kubeconfig(), &[]);
    agent.write_pod("web.yaml", WEB);
    let failed = eventually("a FailedMount event", Duration::from_secs(30), || {
        let out = s.kubectl(&["get", "events", "-n", "app", "--field-selector", "reason=FailedMount"]).ok();
        out.contains("pod/web").then_some(out)
    });
    assert!(
        failed.contains("   Warning   FailedMount   pod/web   MountVolume.SetUp failed for volume \"creds\" : "),
        "{failed}"
    );
    s.kubectl(&["create", "secret", "generic", "db", "-n", "app", "--from-literal=password=pw"])
        .stdout_is("secret/db created\n");
    let rv = s.kubectl(&["get", "secret", "db", "-n", "app", "-o", "jsonpath={.metadata.resourceVersion}"]).ok();
    let updated = eventually("a SecretUpdated event", Duration::from_secs(30), || {
        let out = s.kubectl(&["events", "-n", "app", "--for", "secret/db"]).ok();
        out.contains("SecretUpdated").then_some(out)
    });
    assert!(
        updated.contains(&format!(
            "   Normal   SecretUpdated   Secret/db   resourceVersion {rv} delivered to pod app/web volume creds on node node-1"
        )),
        "{updated}"
    );
    // The agent's Events are new style: reported by strongroom-agent on node-1.
    s.kubectl(&[
        "get",
        "events",
        "-n",
        "app",
        "--field-selector",
        "reportingComponent=strongroom-agent,involvedObject.kind=Secret",
        "-o",
        "jsonpath={.items[*].reportingInstance} {.items[*].involvedObject.resourceVersion}",
    ])
    .stdout_is(&format!("node-1 {rv}"));
}

#[test]
fn events_expire_after_the_event_ttl() {
    let s = server_with(&["--event-ttl", "2s"]);
    s.kubectl(&["create", "namespace", "app"]).stdout_is("namespace/app created\n");
    s.kubectl_stdin(&["create", "-f", "-"], &secret_updated(&timestamp(0)))
        .stdout_is("event/db.17f0c1d2e3a4b5c6 created\n");
    // A reporter that says the event recurred an hour from now keeps it that much longer.
    let recurring = secret_updated(&timestamp(3600)).replace("name: db.17f0c1d2e3a4b5c6", "name: db.recurring");
    s.kubectl_stdin(&["create", "-f", "-"], &recurring).stdout_is("event/db.recurring created\n");
    // The server looks every TTL (2s here); the bound only guards against a hang.
    eventually("the event to expire", Duration::from_secs(60), || {
        let names = s.kubectl(&["get", "events", "-n", "app", "-o", "name"]).ok();
        (names == "event/db.recurring\n").then_some(())
    });
    // Deleted, not hidden: a get is 404.
    s.kubectl(&["get", "event", "db.17f0c1d2e3a4b5c6", "-n", "app"])
        .stderr_is("Error from server (NotFound): events \"db.17f0c1d2e3a4b5c6\" not found\n");
}
