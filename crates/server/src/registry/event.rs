//! core/v1 Event: Kubernetes' `pkg/registry/core/event/strategy.go` and the validation it calls
//! for requests made through core/v1 (`pkg/apis/core/validation/events.go`,
//! `legacyValidateEvent`), the field selectors of `EventToSelectableFields`, and the columns of
//! kube-apiserver's `printEvent` (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, and with `-o wide`
//! SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME).
//!
//! What core/v1 enforces is deliberately little, for compatibility with old clients: an Event
//! without `eventTime` only has to agree with its `involvedObject` about the namespace; one with
//! `eventTime` (the new style) also needs `reportingComponent`, `reportingInstance`, `action` and
//! `reason`, with length limits on those and on `message`. `type` is not checked (only
//! events.k8s.io/v1 requires Normal or Warning), and names follow the path-segment rule of the
//! generic registry, not the DNS-subdomain rule.
//!
//! Events expire: kube-apiserver stores them under an etcd lease (`--event-ttl`, one hour);
//! strongroom's `controllers::expire_events` deletes those whose [`last_activity`] is older.
//!
//! An Event's `message` is free text written by its reporter; nothing here treats it as a safe
//! place for values, and validation errors never quote it.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use serde_json::Value;
use strongroom_api::patch::StrategicSchema;
use strongroom_api::{ErrorList, FieldError, json, validation};

use super::secret::cannot_handle;
use super::{Cell, Column, NAME_COLUMN, ResourceInfo, STANDARD_VERBS, Strategy};
use crate::status::ApiError;

/// The field selectors of core/v1 Events (`EventToSelectableFields` and the field label
/// conversion kube-apiserver registers for them).
pub const SELECTABLE_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

pub static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    list_kind: "EventList",
    plural: "events",
    singular: "event",
    namespaced: true,
    short_names: &["ev"],
    verbs: STANDARD_VERBS,
    categories: &[],
    // kube-apiserver's event storage is a plain generic store: DELETE answers with a Status.
    return_deleted_object: false,
    selectable_fields: SELECTABLE_FIELDS,
    subresources: &[],
};

/// `ReportingInstanceLengthLimit`, `ActionLengthLimit` and `ReasonLengthLimit`.
const SHORT_FIELD_MAX_LENGTH: usize = 128;
/// `NoteLengthLimit`: the longest `message` of a new-style Event.
const MESSAGE_MAX_LENGTH: usize = 1024;

/// The message of Kubernetes' core-only finalizer-name check, which the generic registry's
/// metadata validation (the one Events get) does not make.
const KUBE_FINALIZER_NAME_DETAIL: &str = "name is neither a standard finalizer name nor is it fully qualified";

static COLUMNS: [Column; 10] = [
    Column {
        name: "Last Seen",
        type_: "string",
        format: "",
        description: "The time at which the most recent occurrence of this event was recorded.",
        priority: 0,
    },
    Column {
        name: "Type",
        type_: "string",
        format: "",
        description: "Type of this event (Normal, Warning), new types could be added in the future",
        priority: 0,
    },
    Column {
        name: "Reason",
        type_: "string",
        format: "",
        description: "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        priority: 0,
    },
    Column {
        name: "Object",
        type_: "string",
        format: "",
        description: "The object that this event is about.",
        priority: 0,
    },
    Column {
        name: "Subobject",
        type_: "string",
        format: "",
        description: "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        priority: 1,
    },
    Column {
        name: "Source",
        type_: "string",
        format: "",
        description: "The component reporting this event. Should be a short machine understandable string.",
        priority: 1,
    },
    Column {
        name: "Message",
        type_: "string",
        format: "",
        description: "A human-readable description of the status of this operation.",
        priority: 0,
    },
    Column {
        name: "First Seen",
        type_: "string",
        format: "",
        description: "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        priority: 1,
    },
    Column {
        name: "Count",
        type_: "string",
        format: "",
        description: "The number of times this event has occurred.",
        priority: 1,
    },
    Column { priority: 1, ..NAME_COLUMN },
];

pub struct EventStrategy {
    schema: StrategicSchema,
}

impl EventStrategy {
    pub fn new() -> Self {
        // An Event has no mergeable lists or maps of its own; only its metadata's.
        EventStrategy { schema: StrategicSchema::object_meta() }
    }
}

impl Default for EventStrategy {
    fn default() -> Self {
        Self::new()
    }
}

fn typed(obj: &Value) -> Event {
    // Objects reaching validation were produced by `normalize`, so this cannot fail; an empty
    // Event would fail validation loudly if it ever did.
    serde_json::from_value(obj.clone()).unwrap_or_default()
}

fn str_of(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds: a timestamp holding it is unset.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

fn time_seconds(t: Option<&Time>) -> Option<i64> {
    t.map(|t| t.0.as_second()).filter(|s| *s != GO_ZERO_UNIX)
}

fn micro_time_seconds(t: Option<&MicroTime>) -> Option<i64> {
    t.map(|t| t.0.as_second()).filter(|s| *s != GO_ZERO_UNIX)
}

/// `legacyValidateEvent`: everything `ValidateEventCreate` and `ValidateEventUpdate` check for a
/// request made through core/v1. Invalid values of free-text fields are shown as `""`, as in
/// Kubernetes, so an error never quotes a message.
pub fn validate_event(event: &Event) -> ErrorList {
    let mut errs = ErrorList::new();
    let namespace = str_of(&event.metadata.namespace);
    let involved_namespace = str_of(&event.involved_object.namespace);
    let mismatch =
        || FieldError::invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace");
    if micro_time_seconds(event.event_time.as_ref()).is_none() {
        // An old-style Event: it lives in its object's namespace ("default" or none for a
        // cluster-scoped object, for compatibility with old clients).
        let agrees = if involved_namespace.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_namespace
        };
        if !agrees {
            errs.push(mismatch());
        }
    } else {
        if involved_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        // Kubernetes names the field by its Go name, reportingController.
        let controller = str_of(&event.reporting_component);
        if controller.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        for msg in validation::is_qualified_name(controller) {
            errs.push(FieldError::invalid("reportingController", controller, msg));
        }
        let limited = [
            ("reportingInstance", str_of(&event.reporting_instance), true),
            ("action", str_of(&event.action), true),
            ("reason", str_of(&event.reason), true),
            ("message", str_of(&event.message), false),
        ];
        for (field, value, required) in limited {
            let max = if field == "message" { MESSAGE_MAX_LENGTH } else { SHORT_FIELD_MAX_LENGTH };
            if required && value.is_empty() {
                errs.push(FieldError::required(field, ""));
            }
            if value.len() > max {
                errs.push(FieldError::invalid(field, "", format!("can have at most {max} characters")));
            }
        }
    }
    for msg in validation::is_dns1123_subdomain(namespace) {
        errs.push(FieldError::invalid("namespace", namespace, msg));
    }
    errs
}

/// The generic registry's object metadata rules (`ValidateObjectMetaAccessor`): Kubernetes'
/// core metadata rules without the core-only finalizer-name check.
fn generic_metadata_errors(errs: ErrorList) -> ErrorList {
    errs.into_iter()
        .filter(|e| !(e.field.starts_with("metadata.finalizers") && e.detail == KUBE_FINALIZER_NAME_DETAIL))
        .collect()
}

/// The moment an Event was last seen and when it was first seen, as `printEvent` picks them:
/// `firstTimestamp` else `eventTime`; `lastTimestamp` else the first; `series.lastObservedTime`
/// over both for a series.
fn seen(event: &Event) -> (Option<i64>, Option<i64>) {
    let first = time_seconds(event.first_timestamp.as_ref()).or_else(|| micro_time_seconds(event.event_time.as_ref()));
    let last = match &event.series {
        Some(series) => micro_time_seconds(series.last_observed_time.as_ref()),
        None => time_seconds(event.last_timestamp.as_ref()).or(first),
    };
    (last, first)
}

/// `formatEventSource`: `component, host`, each falling back to `reportingComponent` and
/// `reportingInstance`; the host part is left out when empty.
fn source(event: &Event) -> String {
    let source = event.source.as_ref();
    let first_non_empty = |a: Option<&String>, b: &Option<String>| -> String {
        a.filter(|s| !s.is_empty()).or(b.as_ref()).cloned().unwrap_or_default()
    };
    let component = first_non_empty(source.and_then(|s| s.component.as_ref()), &event.reporting_component);
    let host = first_non_empty(source.and_then(|s| s.host.as_ref()), &event.reporting_instance);
    if host.is_empty() { component } else { format!("{component}, {host}") }
}

/// When an Event was last active, in Unix seconds, for expiry: the later of the last write the
/// server recorded (`metadata.creationTimestamp`, the newest `managedFields[].time`) and the last
/// occurrence its reporter claims (`series.lastObservedTime`, else `lastTimestamp`, else
/// `eventTime`). kube-apiserver renews an Event's lease on every write, so an Event never expires
/// sooner after its last write than there; a reporter's later timestamp keeps it longer. `None`
/// when the JSON is not an object with any of these.
pub fn last_activity(json: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct ManagedFieldsEntry {
        time: Option<Time>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Metadata {
        creation_timestamp: Option<Time>,
        managed_fields: Vec<ManagedFieldsEntry>,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Series {
        last_observed_time: Option<MicroTime>,
    }
    // Only the timestamps are read: the rest of the object is skipped unparsed.
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Activity {
        metadata: Metadata,
        last_timestamp: Option<Time>,
        event_time: Option<MicroTime>,
        series: Option<Series>,
    }
    let a: Activity = serde_json::from_slice(json).ok()?;
    let written = a
        .metadata
        .managed_fields
        .iter()
        .filter_map(|m| time_seconds(m.time.as_ref()))
        .chain(time_seconds(a.metadata.creation_timestamp.as_ref()))
        .max();
    let reported = match &a.series {
        Some(series) => micro_time_seconds(series.last_observed_time.as_ref()),
        None => time_seconds(a.last_timestamp.as_ref()).or_else(|| micro_time_seconds(a.event_time.as_ref())),
    };
    written.max(reported)
}

impl Strategy for EventStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn normalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let (event, unknown): (Event, Vec<String>) =
            json::decode_strict(obj).map_err(|e| cannot_handle("Event", "v1", e))?;
        let value =
            serde_json::to_value(&event).map_err(|e| ApiError::internal(format!("cannot encode Event: {e}")))?;
        Ok((value, unknown))
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        // The generic registry runs the strategy's validation first and the metadata rules only
        // when it passes, so that the specific messages show.
        let event = typed(obj);
        let errs = validate_event(&event);
        if !errs.is_empty() {
            return errs;
        }
        generic_metadata_errors(validation::validate_object_meta(
            &event.metadata,
            true,
            validation::name_is_path_segment,
            "metadata",
        ))
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        let (new, old) = (typed(new), typed(old));
        let mut errs =
            validation::validate_object_meta(&new.metadata, true, validation::name_is_path_segment, "metadata");
        errs.extend(validation::validate_object_meta_update(&new.metadata, &old.metadata, "metadata"));
        let mut errs = generic_metadata_errors(errs);
        errs.extend(validate_event(&new));
        errs
    }

    fn fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let event = typed(obj);
        let involved = &event.involved_object;
        // `source` is the old-style source component, else the new-style reporting component.
        let component = event.source.as_ref().and_then(|s| s.component.clone()).filter(|c| !c.is_empty());
        vec![
            ("involvedObject.kind", str_of(&involved.kind).to_string()),
            ("involvedObject.namespace", str_of(&involved.namespace).to_string()),
            ("involvedObject.name", str_of(&involved.name).to_string()),
            ("involvedObject.uid", str_of(&involved.uid).to_string()),
            ("involvedObject.apiVersion", str_of(&involved.api_version).to_string()),
            ("involvedObject.resourceVersion", str_of(&involved.resource_version).to_string()),
            ("involvedObject.fieldPath", str_of(&involved.field_path).to_string()),
            ("reason", str_of(&event.reason).to_string()),
            ("reportingComponent", str_of(&event.reporting_component).to_string()),
            ("source", component.unwrap_or_else(|| str_of(&event.reporting_component).to_string())),
            ("type", str_of(&event.type_).to_string()),
        ]
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn cells(&self, obj: &Value) -> Vec<Cell> {
        let event = typed(obj);
        let (last, first) = seen(&event);
        let count = match &event.series {
            Some(series) => series.count.unwrap_or(0),
            // A singleton new-style Event has no count.
            None if event.count.unwrap_or(0) == 0 => 1,
            None => event.count.unwrap_or(1),
        };
        let kind = str_of(&event.involved_object.kind).to_lowercase();
        let object = match str_of(&event.involved_object.name) {
            "" => kind,
            name => format!("{kind}/{name}"),
        };
        vec![
            Cell::Since(last),
            Cell::Value(str_of(&event.type_).into()),
            Cell::Value(str_of(&event.reason).into()),
            Cell::Value(object.into()),
            Cell::Value(str_of(&event.involved_object.field_path).into()),
            Cell::Value(source(&event).into()),
            Cell::Value(str_of(&event.message).trim().into()),
            Cell::Since(first),
            Cell::Value(count.into()),
            Cell::Name,
        ]
    }

    fn strategic_schema(&self) -> &StrategicSchema {
        &self.schema
    }

    fn allow_create_on_update(&self) -> bool {
        // kube-apiserver's event strategy: a PUT of a missing Event creates it.
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn normalized(obj: Value) -> Value {
        EventStrategy::new().normalize(obj).expect("decodes").0
    }

    /// An old-style Event about Secret `app/db`, as `kubectl create -f` would send it.
    fn old_style() -> Value {
        normalized(json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "db.1", "namespace": "app", "creationTimestamp": "2025-01-02T03:00:00Z"},
            "involvedObject": {"apiVersion": "v1", "kind": "Secret", "namespace": "app", "name": "db", "uid": "u-1"},
            "reason": "SecretUpdated",
            "message": "  delivered resourceVersion 42 to /run/secrets/db\n",
            "type": "Normal",
            "source": {"component": "strongroom-agent", "host": "node-1"},
            "firstTimestamp": "2025-01-02T03:04:05Z",
            "lastTimestamp": "2025-01-02T03:09:05Z",
            "count": 3,
        }))
    }

    /// A new-style Event as the strongroom agent records it (`eventTime` and the reporting
    /// fields set, and the old ones too).
    fn agent_style() -> Value {
        normalized(json!({
            "metadata": {"name": "web.17f0", "namespace": "app"},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "app", "name": "web"},
            "reason": "FailedMount",
            "message": "secret \"db\" not found",
            "type": "Warning",
            "source": {"component": "strongroom-agent", "host": "node-1"},
            "firstTimestamp": "2025-01-02T03:04:05Z",
            "lastTimestamp": "2025-01-02T03:04:05Z",
            "eventTime": "2025-01-02T03:04:05.123456Z",
            "count": 1,
            "reportingComponent": "strongroom-agent",
            "reportingInstance": "node-1",
            "action": "FailedMount",
        }))
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn normalize_reports_unknown_fields_and_keeps_micro_times() {
        let (event, unknown) = EventStrategy::new()
            .normalize(
                json!({"metadata": {"name": "a"}, "involvedObject": {"kind": "Secret", "colour": "red"}, "note": "x"}),
            )
            .unwrap();
        assert_eq!(unknown, ["involvedObject.colour", "note"]);
        assert_eq!(event["involvedObject"], json!({"kind": "Secret"}));
        assert_eq!(agent_style()["eventTime"], "2025-01-02T03:04:05.123456Z");
        // involvedObject is required in the schema but defaults to {}, as in Kubernetes.
        let event = normalized(json!({"metadata": {"name": "a"}}));
        assert_eq!(event["involvedObject"], json!({}));
    }

    #[test]
    fn old_and_agent_style_events_are_valid() {
        let s = EventStrategy::new();
        assert_eq!(messages(&s.validate(&old_style())), Vec::<String>::new());
        assert_eq!(messages(&s.validate(&agent_style())), Vec::<String>::new());
    }

    #[test]
    fn old_style_events_must_live_in_their_objects_namespace() {
        let s = EventStrategy::new();
        let mut event = old_style();
        event["involvedObject"]["namespace"] = json!("other");
        assert_eq!(
            messages(&s.validate(&event)),
            ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        // A cluster-scoped object's Events live in "default" (or nowhere), for old clients.
        event["involvedObject"] = json!({"kind": "Namespace", "name": "app"});
        assert_eq!(
            messages(&s.validate(&event)),
            ["involvedObject.namespace: Invalid value: \"\": does not match event.namespace"]
        );
        event["metadata"]["namespace"] = json!("default");
        assert!(s.validate(&event).is_empty());
    }

    #[test]
    fn new_style_events_need_reporting_fields_within_limits() {
        let s = EventStrategy::new();
        let mut event = agent_style();
        for field in ["reportingComponent", "reportingInstance", "action", "reason"] {
            event.as_object_mut().unwrap().remove(field);
        }
        event["involvedObject"]["namespace"] = json!("other");
        let errs = s.validate(&event);
        let fields: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.reason())).collect();
        assert_eq!(
            fields,
            [
                ("reportingController", "FieldValueRequired"),
                ("reportingController", "FieldValueInvalid"),
                ("reportingController", "FieldValueInvalid"),
                ("reportingInstance", "FieldValueRequired"),
                ("action", "FieldValueRequired"),
                ("reason", "FieldValueRequired"),
            ],
            "a new-style Event may be about an object in another namespace"
        );

        let mut event = agent_style();
        event["reason"] = json!("R".repeat(129));
        event["action"] = json!("A".repeat(128));
        event["message"] = json!("m".repeat(1025));
        assert_eq!(
            messages(&s.validate(&event)),
            [
                "reason: Invalid value: \"\": can have at most 128 characters",
                "message: Invalid value: \"\": can have at most 1024 characters",
            ],
            "free text is never quoted"
        );

        let mut event = agent_style();
        event["involvedObject"] = json!({"kind": "Namespace", "name": "app"});
        assert_eq!(
            messages(&s.validate(&event)),
            ["involvedObject.namespace: Invalid value: \"\": does not match event.namespace"]
        );
        event["metadata"]["namespace"] = json!("kube-system");
        assert!(s.validate(&event).is_empty(), "cluster-scoped objects' Events may live in kube-system");
    }

    #[test]
    fn core_v1_does_not_check_type_and_names_are_path_segments() {
        let s = EventStrategy::new();
        let mut event = old_style();
        event["type"] = json!("Catastrophic");
        event["metadata"]["name"] = json!("Web_Pod:1.17f0");
        event["metadata"]["finalizers"] = json!(["cleanup"]);
        assert!(s.validate(&event).is_empty(), "{:?}", messages(&s.validate(&event)));
        event["metadata"]["name"] = json!("a/b");
        assert_eq!(messages(&s.validate(&event)), ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]);
        // The strategy's own errors hide the metadata's, as in the generic registry.
        event["involvedObject"]["namespace"] = json!("other");
        assert_eq!(
            messages(&s.validate(&event)),
            ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
    }

    #[test]
    fn updates_check_metadata_and_the_new_event() {
        let s = EventStrategy::new();
        let mut old = old_style();
        old["metadata"]["resourceVersion"] = json!("7");
        let mut new = old.clone();
        new["count"] = json!(4);
        new["lastTimestamp"] = json!("2025-01-02T03:10:00Z");
        // core/v1 lets a reporter change anything, its object included.
        new["involvedObject"]["name"] = json!("db2");
        assert!(s.validate_update(&new, &old).is_empty(), "{:?}", messages(&s.validate_update(&new, &old)));
        new["metadata"]["name"] = json!("db.2");
        new["involvedObject"]["namespace"] = json!("other");
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            [
                "metadata.name: Invalid value: \"db.2\": field is immutable",
                "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace",
            ]
        );
        assert!(s.allow_create_on_update());
    }

    #[test]
    fn field_selectors_follow_event_to_selectable_fields() {
        let s = EventStrategy::new();
        let fields = s.fields(&old_style());
        let get = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("involvedObject.kind"), Some("Secret"));
        assert_eq!(get("involvedObject.namespace"), Some("app"));
        assert_eq!(get("involvedObject.name"), Some("db"));
        assert_eq!(get("involvedObject.uid"), Some("u-1"));
        assert_eq!(get("involvedObject.apiVersion"), Some("v1"));
        assert_eq!(get("involvedObject.resourceVersion"), Some(""));
        assert_eq!(get("involvedObject.fieldPath"), Some(""));
        assert_eq!(get("reason"), Some("SecretUpdated"));
        assert_eq!(get("reportingComponent"), Some(""));
        assert_eq!(get("source"), Some("strongroom-agent"));
        assert_eq!(get("type"), Some("Normal"));
        // Every selectable field but the metadata ones (served by the object itself) has a value.
        for name in SELECTABLE_FIELDS.iter().filter(|f| !f.starts_with("metadata.")) {
            assert!(get(name).is_some(), "{name}");
        }
        // Without an old-style source component, `source` is the reporting component.
        let mut event = agent_style();
        event["source"] = json!({});
        let fields = s.fields(&event);
        let get = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("source"), Some("strongroom-agent"));
        assert_eq!(get("reportingComponent"), Some("strongroom-agent"));
    }

    fn rendered(cells: &[Cell]) -> Vec<Value> {
        cells
            .iter()
            .map(|c| match c {
                Cell::Name => json!("<name>"),
                Cell::Age => json!("<age>"),
                Cell::Since(t) => json!(format!("since {t:?}")),
                Cell::Value(v) => v.clone(),
            })
            .collect()
    }

    #[test]
    fn table_columns_are_print_events() {
        let s = EventStrategy::new();
        let columns: Vec<(&str, i32)> = s.columns().iter().map(|c| (c.name, c.priority)).collect();
        assert_eq!(
            columns,
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ]
        );
        assert_eq!(s.columns()[9].format, "name");
        let first = 1_735_787_045; // 2025-01-02T03:04:05Z
        assert_eq!(
            rendered(&s.cells(&old_style())),
            [
                json!(format!("since {:?}", Some(first + 300))),
                json!("Normal"),
                json!("SecretUpdated"),
                json!("secret/db"),
                json!(""),
                json!("strongroom-agent, node-1"),
                json!("delivered resourceVersion 42 to /run/secrets/db"),
                json!(format!("since {:?}", Some(first))),
                json!(3),
                json!("<name>"),
            ]
        );
    }

    #[test]
    fn table_cells_fall_back_as_print_event_does() {
        let s = EventStrategy::new();
        // A new-style singleton: seen at its eventTime, counted once, reported by its
        // reporting component and instance, about a kind without a name.
        let event = normalized(json!({
            "metadata": {"name": "x", "namespace": "default"},
            "involvedObject": {"kind": "Node"},
            "eventTime": "2025-01-02T03:04:05.500000Z",
            "reportingComponent": "kubelet",
            "reportingInstance": "node-1",
        }));
        let cells = rendered(&s.cells(&event));
        let at = json!(format!("since {:?}", Some(1_735_787_045_i64)));
        assert_eq!(cells[0], at);
        assert_eq!(cells[3], "node");
        assert_eq!(cells[5], "kubelet, node-1");
        assert_eq!(cells[7], at);
        assert_eq!(cells[8], 1);
        // A series: last seen at its last observation, counted by it.
        let mut event = event;
        event["series"] = json!({"count": 5, "lastObservedTime": "2025-01-02T04:00:00.000000Z"});
        let cells = rendered(&s.cells(&event));
        assert_eq!(cells[0], json!(format!("since {:?}", Some(1_735_790_400_i64))));
        assert_eq!(cells[8], 5);
        // Nothing to go by: kube-apiserver prints <unknown>, which Cell::Since(None) renders.
        let bare = normalized(json!({"metadata": {"name": "y"}, "source": {"component": "c"}}));
        let cells = rendered(&s.cells(&bare));
        assert_eq!(cells[0], "since None");
        assert_eq!(cells[3], "");
        assert_eq!(cells[5], "c");
    }

    #[test]
    fn last_activity_is_the_later_of_the_last_write_and_the_last_occurrence() {
        let at = |v: Value| last_activity(&serde_json::to_vec(&v).unwrap());
        let created = 1_735_786_800; // 2025-01-02T03:00:00Z
        assert_eq!(at(old_style()), Some(1_735_787_345), "lastTimestamp after creation");
        let mut event = old_style();
        event["lastTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(at(event.clone()), Some(created), "never sooner than the last write");
        event["metadata"]["managedFields"] =
            json!([{"manager": "a", "operation": "Update", "time": "2025-01-02T05:00:00Z"}, {"manager": "b"}]);
        assert_eq!(at(event.clone()), Some(1_735_794_000), "an update is a write");
        event["series"] = json!({"count": 2, "lastObservedTime": "2025-01-02T06:00:00.000000Z"});
        assert_eq!(at(event), Some(1_735_797_600), "a series' last observation");
        let mut event = agent_style();
        event.as_object_mut().unwrap().remove("lastTimestamp");
        assert_eq!(at(event), Some(1_735_787_045), "eventTime without lastTimestamp");
        assert_eq!(at(json!({"metadata": {"name": "n"}})), None);
        assert_eq!(last_activity(b"not json"), None);
    }
}
