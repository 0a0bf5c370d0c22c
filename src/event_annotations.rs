//! Kargo's `event.kargo.akuity.io/*` annotations on the Events about Promotions and Freight
//! (`api/v1alpha1/event.go`, `pkg/event`), which Kargo's UI and notification integrations read:
//! every such Event names its project and actor; Promotion Events add the Promotion, its Stage
//! and create time, and the Freight; Freight Events add the Freight (name, create time, alias,
//! Warehouse, artifacts as JSON), the Stage and, for verifications, its times and AnalysisRun.
//! Pure: the controllers pass the maps to [`crate::controller::Context::event_annotated`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{ANNOTATION_CREATE_ACTOR, Freight, FreightReference, Promotion, VerificationInfo};

pub const PREFIX: &str = "event.kargo.akuity.io/";
pub const ACTOR: &str = "event.kargo.akuity.io/actor";
pub const PROJECT: &str = "event.kargo.akuity.io/project";
pub const PROMOTION_NAME: &str = "event.kargo.akuity.io/promotion-name";
pub const PROMOTION_CREATE_TIME: &str = "event.kargo.akuity.io/promotion-create-time";
pub const FREIGHT_ALIAS: &str = "event.kargo.akuity.io/freight-alias";
pub const FREIGHT_NAME: &str = "event.kargo.akuity.io/freight-name";
pub const FREIGHT_CREATE_TIME: &str = "event.kargo.akuity.io/freight-create-time";
pub const FREIGHT_WAREHOUSE_NAME: &str = "event.kargo.akuity.io/freight-warehouse-name";
pub const FREIGHT_COMMITS: &str = "event.kargo.akuity.io/freight-commits";
pub const FREIGHT_IMAGES: &str = "event.kargo.akuity.io/freight-images";
pub const FREIGHT_CHARTS: &str = "event.kargo.akuity.io/freight-charts";
pub const FREIGHT_ARTIFACTS: &str = "event.kargo.akuity.io/freight-artifacts";
pub const STAGE_NAME: &str = "event.kargo.akuity.io/stage-name";
pub const ANALYSIS_RUN_NAME: &str = "event.kargo.akuity.io/analysis-run-name";
pub const VERIFICATION_START_TIME: &str = "event.kargo.akuity.io/verification-start-time";
pub const VERIFICATION_FINISH_TIME: &str = "event.kargo.akuity.io/verification-finish-time";
pub const ROLLBACK: &str = "event.kargo.akuity.io/rollback";

pub type Annotations = BTreeMap<String, String>;

/// RFC 3339 to the second, as Go's `time.RFC3339` prints a UTC time.
fn rfc3339(t: &Time) -> String {
    t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn put(a: &mut Annotations, key: &str, value: impl Into<String>) {
    a.insert(key.to_string(), value.into());
}

fn put_json<T: Serialize>(a: &mut Annotations, key: &str, items: &[T]) {
    if items.is_empty() {
        return;
    }
    if let Ok(s) = serde_json::to_string(items) {
        put(a, key, s);
    }
}

/// What every Kargo Event carries: the project, and the actor when known.
pub fn common(project: &str, actor: Option<&str>) -> Annotations {
    let mut a = Annotations::new();
    put(&mut a, PROJECT, project);
    if let Some(actor) = actor.filter(|s| !s.is_empty()) {
        put(&mut a, ACTOR, actor);
    }
    a
}

/// The Freight's part (Kargo's `Freight.MarshalAnnotationsTo`), from the Freight object.
pub fn add_freight(a: &mut Annotations, freight: &Freight, stage: &str) {
    put(a, FREIGHT_NAME, freight.name_any());
    if let Some(t) = &freight.metadata.creation_timestamp {
        put(a, FREIGHT_CREATE_TIME, rfc3339(t));
    }
    put(a, STAGE_NAME, stage);
    if !freight.origin.name.is_empty() {
        put(a, FREIGHT_WAREHOUSE_NAME, freight.origin.name.clone());
    }
    if let Some(alias) = &freight.alias {
        put(a, FREIGHT_ALIAS, alias.clone());
    }
    put_json(a, FREIGHT_COMMITS, &freight.commits);
    put_json(a, FREIGHT_IMAGES, &freight.images);
    put_json(a, FREIGHT_CHARTS, &freight.charts);
    put_json(a, FREIGHT_ARTIFACTS, &freight.artifacts);
}

/// The Freight's part when only a reference to it is at hand (the Freight was deleted).
pub fn add_freight_reference(a: &mut Annotations, r: &FreightReference, stage: &str) {
    put(a, FREIGHT_NAME, r.name.clone().unwrap_or_default());
    put(a, STAGE_NAME, stage);
    if let Some(o) = &r.origin {
        put(a, FREIGHT_WAREHOUSE_NAME, o.name.clone());
    }
    put_json(a, FREIGHT_COMMITS, &r.commits);
    put_json(a, FREIGHT_IMAGES, &r.images);
    put_json(a, FREIGHT_CHARTS, &r.charts);
    put_json(a, FREIGHT_ARTIFACTS, &r.artifacts);
}

/// An Event about Promotion `p` of `freight` (when it could be read): Kargo's actor is the
/// Promotion's creator, else `default_actor` (the controller).
pub fn promotion(p: &Promotion, freight: Option<&Freight>, default_actor: &str) -> Annotations {
    let actor = p
        .annotations()
        .get(ANNOTATION_CREATE_ACTOR)
        .map(String::as_str)
        .unwrap_or(default_actor);
    let mut a = common(&p.namespace().unwrap_or_default(), Some(actor));
    put(&mut a, PROMOTION_NAME, p.name_any());
    put(&mut a, STAGE_NAME, p.spec.stage.clone());
    if let Some(t) = &p.metadata.creation_timestamp {
        put(&mut a, PROMOTION_CREATE_TIME, rfc3339(t));
    }
    match (freight, p.status.as_ref().and_then(|s| s.freight.as_ref())) {
        (Some(f), _) => add_freight(&mut a, f, &p.spec.stage),
        (None, Some(r)) => add_freight_reference(&mut a, r, &p.spec.stage),
        (None, None) => {
            if let Some(name) = &p.spec.freight {
                put(&mut a, FREIGHT_NAME, name.clone());
            }
        }
    }
    a
}

/// An Event about the verification `vi` of `freight` in `stage` (Kargo's
/// `FreightVerification*` Events).
pub fn verification(
    project: &str,
    actor: &str,
    stage: &str,
    freight: &Freight,
    vi: &VerificationInfo,
) -> Annotations {
    let actor = vi.actor.as_deref().unwrap_or(actor);
    let mut a = common(project, Some(actor));
    add_freight(&mut a, freight, stage);
    if let Some(t) = &vi.start_time {
        put(&mut a, VERIFICATION_START_TIME, rfc3339(t));
    }
    if let Some(t) = &vi.finish_time {
        put(&mut a, VERIFICATION_FINISH_TIME, rfc3339(t));
    }
    if let Some(run) = &vi.analysis_run {
        put(&mut a, ANALYSIS_RUN_NAME, run.name.clone());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn freight() -> Freight {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": "abc", "namespace": "p", "creationTimestamp": "2026-12-01T10:00:00Z"},
            "alias": "wonky-wombat",
            "origin": {"kind": "Warehouse", "name": "w"},
            "images": [{"repoURL": "r", "tag": "1.0.0", "digest": "sha256:1"}]
        }))
        .expect("freight")
    }

    #[test]
    fn promotion_events_carry_the_promotion_stage_freight_and_creator() {
        let p: Promotion = serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": "dev.01.abc", "namespace": "p",
                         "creationTimestamp": "2026-12-01T11:00:00.5Z",
                         "annotations": {"kargo.akuity.io/create-actor": "kubernetes:alice"}},
            "spec": {"stage": "dev", "freight": "abc"}
        }))
        .expect("promotion");
        let a = promotion(&p, Some(&freight()), "controller:haul-controller");
        assert_eq!(a[PROJECT], "p");
        assert_eq!(a[ACTOR], "kubernetes:alice");
        assert_eq!(a[PROMOTION_NAME], "dev.01.abc");
        assert_eq!(a[STAGE_NAME], "dev");
        assert_eq!(a[PROMOTION_CREATE_TIME], "2026-12-01T11:00:00Z");
        assert_eq!(a[FREIGHT_NAME], "abc");
        assert_eq!(a[FREIGHT_ALIAS], "wonky-wombat");
        assert_eq!(a[FREIGHT_WAREHOUSE_NAME], "w");
        assert_eq!(a[FREIGHT_CREATE_TIME], "2026-12-01T10:00:00Z");
        let images: serde_json::Value = serde_json::from_str(&a[FREIGHT_IMAGES]).expect("json");
        assert_eq!(images[0]["repoURL"], "r");
        assert!(!a.contains_key(FREIGHT_COMMITS));
        assert!(a.keys().all(|k| k.starts_with(PREFIX)));
    }

    #[test]
    fn verification_events_carry_times_and_the_analysis_run() {
        let vi: VerificationInfo = serde_json::from_value(json!({
            "id": "v1", "startTime": "2026-12-01T12:00:00Z", "finishTime": "2026-12-01T12:05:00Z",
            "analysisRun": {"name": "dev.run", "namespace": "p", "phase": "Successful"}
        }))
        .expect("vi");
        let a = verification("p", "controller:haul-controller", "dev", &freight(), &vi);
        assert_eq!(a[ACTOR], "controller:haul-controller");
        assert_eq!(a[VERIFICATION_START_TIME], "2026-12-01T12:00:00Z");
        assert_eq!(a[VERIFICATION_FINISH_TIME], "2026-12-01T12:05:00Z");
        assert_eq!(a[ANALYSIS_RUN_NAME], "dev.run");
        assert_eq!(a[STAGE_NAME], "dev");
    }
}
