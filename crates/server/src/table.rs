//! Server-side Tables (`meta.k8s.io/v1` Table), which make `kubectl get` print NAME TYPE DATA AGE.

use serde_json::{Value, json};
use strongroom_api::table::human_duration;

use crate::codec::IncludeObject;
use crate::object::ServedObject;
use crate::registry::{Cell, Strategy};

pub fn column_definitions(strategy: &dyn Strategy) -> Value {
    Value::Array(
        strategy
            .columns()
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
            })
            .collect(),
    )
}

fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// One row: cells, and the row object as requested.
pub fn row(obj: &ServedObject, include: IncludeObject, now: i64) -> Value {
    let cells: Vec<Value> = obj
        .cells
        .iter()
        .map(|c| match c {
            Cell::Name => Value::String(obj.name.clone()),
            Cell::Age => {
                Value::String(obj.created.map(|t| human_duration(now - t)).unwrap_or_else(|| "<unknown>".into()))
            }
            Cell::Since(t) => Value::String(t.map(|t| human_duration(now - t)).unwrap_or_else(|| "<unknown>".into())),
            Cell::Value(v) => v.clone(),
        })
        .collect();
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let meta: Value = serde_json::from_str(&obj.metadata_json).unwrap_or_default();
            row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
        }
        IncludeObject::Object => {
            row["object"] = serde_json::from_slice(obj.json.expose()).unwrap_or_default();
        }
    }
    row
}

/// A whole Table.
pub fn render(
    strategy: &dyn Strategy,
    items: &[&ServedObject],
    include: IncludeObject,
    resource_version: Option<&str>,
    continue_token: Option<&str>,
) -> Vec<u8> {
    let now = now_seconds();
    let mut meta = json!({});
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = rv.into();
    }
    if let Some(c) = continue_token {
        meta["continue"] = c.into();
    }
    let table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": column_definitions(strategy),
        "rows": items.iter().map(|o| row(o, include, now)).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&table).unwrap_or_default()
}

/// A one-row Table for a watch event.
pub fn event_table(strategy: &dyn Strategy, obj: &ServedObject, include: IncludeObject, revision: u64) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": column_definitions(strategy),
        "rows": [row(obj, include, now_seconds())],
    })
}
