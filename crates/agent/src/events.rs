//! core/v1 Events about what the agent did, so `kubectl get events` shows it: `FailedMount`,
//! `InvalidEnvironmentVariableNames` (about a pod) and `SecretUpdated` (about a Secret, naming
//! the resourceVersion delivered and where).
//!
//! Recording is best effort, as client-go's recorder: an Event that cannot be created (no
//! permission, server unreachable) is logged at debug level and dropped; it never stops delivery.
//! Messages name objects, keys and versions, never values.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};

/// The `source.component` and `reportingComponent` of the agent's Events.
pub const COMPONENT: &str = "strongroom-agent";

/// Creates Events for one node.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl Recorder {
    pub fn new(client: kube::Client, node: impl Into<String>) -> Self {
        Recorder { client, node: node.into() }
    }

    /// Records an Event about `object` in the background.
    pub fn record(&self, object: ObjectReference, type_: EventType, reason: &str, message: String) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".to_string());
        let now = jiff::Timestamp::now();
        let name = format!("{}.{:x}", object.name.as_deref().unwrap_or("object"), now.as_nanosecond());
        let time = Time(now);
        let event = Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: object,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(match type_ {
                EventType::Normal => "Normal".to_string(),
                EventType::Warning => "Warning".to_string(),
            }),
            source: Some(EventSource { component: Some(COMPONENT.to_string()), host: Some(self.node.clone()) }),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some(COMPONENT.to_string()),
            reporting_instance: Some(self.node.clone()),
            action: Some(reason.to_string()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(reason = event.reason.as_deref().unwrap_or(""), error = %e, "cannot record an event");
            }
        });
    }
}

/// A reference to a pod for its Events (a static pod: no uid unless its manifest has one).
pub fn pod_reference(namespace: &str, name: &str, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: uid.map(str::to_string),
        ..Default::default()
    }
}

/// A reference to a Secret for its Events.
pub fn secret_reference(namespace: &str, name: &str, resource_version: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        resource_version: Some(resource_version.into()),
        ..Default::default()
    }
}
