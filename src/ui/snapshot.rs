//! What a project page shows, as one JSON document: the project's Warehouses, Stages, Freight
//! (newest first) and recent Promotions as the API server has them, plus the graph's layout.
//! The page renders everything from this; the server pushes a new one on every change.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::layout::{self, Graph};
use crate::api::{Freight, Promotion, Stage, Warehouse};

/// How many Promotions per Stage the page gets (newest first): enough for a Stage's history.
pub const PROMOTIONS_PER_STAGE: usize = 20;

/// One project page's data.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub project: String,
    pub graph: Graph,
    pub warehouses: Vec<Value>,
    pub stages: Vec<Value>,
    pub freight: Vec<Value>,
    pub promotions: Vec<Value>,
}

/// The object as JSON without `managedFields` (bulky and of no use to a person).
fn plain<T: Serialize>(o: &T) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

fn created(meta: &kube::api::ObjectMeta) -> Option<k8s_openapi::jiff::Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// Builds the snapshot from the project's objects (in any order).
pub fn build(
    project: &str,
    mut warehouses: Vec<Warehouse>,
    mut stages: Vec<Stage>,
    mut freight: Vec<Freight>,
    mut promotions: Vec<Promotion>,
) -> Snapshot {
    let name = |m: &kube::api::ObjectMeta| m.name.clone().unwrap_or_default();
    warehouses.sort_by_key(|w| name(&w.metadata));
    stages.sort_by_key(|s| name(&s.metadata));
    // Newest first; the name breaks ties within a second (Kargo's Freight names are hashes,
    // Promotion names sort by creation).
    freight.sort_by(|a, b| {
        (created(&b.metadata), name(&b.metadata)).cmp(&(created(&a.metadata), name(&a.metadata)))
    });
    promotions.sort_by(|a, b| {
        (created(&b.metadata), name(&b.metadata)).cmp(&(created(&a.metadata), name(&a.metadata)))
    });
    let mut per_stage: BTreeMap<String, usize> = BTreeMap::new();
    promotions.retain(|p| {
        let n = per_stage.entry(p.spec.stage.clone()).or_default();
        *n += 1;
        *n <= PROMOTIONS_PER_STAGE
    });
    let warehouse_names: Vec<String> = warehouses.iter().map(|w| name(&w.metadata)).collect();
    Snapshot {
        project: project.to_string(),
        graph: layout::layout(&warehouse_names, &stages),
        warehouses: warehouses.iter().map(plain).collect(),
        stages: stages.iter().map(plain).collect(),
        freight: freight.iter().map(plain).collect(),
        promotions: promotions.iter().map(plain).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn freight_newest_first_promotions_capped_per_stage() {
        let f = |n: &str, t: &str| -> Freight {
            serde_json::from_value(json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
                "metadata": {"name": n, "namespace": "p", "creationTimestamp": t,
                    "managedFields": [{"manager": "x"}]},
                "origin": {"kind": "Warehouse", "name": "w"}
            }))
            .expect("freight")
        };
        let p = |i: usize| -> Promotion {
            serde_json::from_value(json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
                "metadata": {"name": format!("dev.{i:03}"), "namespace": "p",
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"stage": "dev", "freight": "a"}
            }))
            .expect("promotion")
        };
        let s = build(
            "p",
            vec![],
            vec![],
            vec![
                f("old", "2026-01-01T00:00:00Z"),
                f("new", "2026-01-02T00:00:00Z"),
            ],
            (0..30).map(p).collect(),
        );
        assert_eq!(s.freight[0]["metadata"]["name"], "new");
        assert!(s.freight[0]["metadata"].get("managedFields").is_none());
        assert_eq!(s.promotions.len(), PROMOTIONS_PER_STAGE);
        assert_eq!(s.promotions[0]["metadata"]["name"], "dev.029");
    }
}
