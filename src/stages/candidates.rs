//! Auto-promotion: which Freight to promote into a Stage, and the guards Kargo applies
//! (reference §4): nothing already current or in flight and no automatic retry of a failed
//! promotion. Holds after a person promoted older Freight by hand (Kargo v1.11+) are decided
//! by [`super::holds`] before.

use std::borrow::Borrow;

use k8s_openapi::jiff::Timestamp;

use crate::api::{
    ANNOTATION_CREATE_ACTOR, Freight, FreightRequest, Promotion, PromotionPhase, Stage,
};

/// The actor recorded on Promotions that haul's own auto-promotion creates.
pub const CONTROLLER_ACTOR: &str = "controller:haul-controller";

/// What auto-promotion does for one requested origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create a Promotion of this Freight.
    Promote(String),
    /// Do nothing, for this reason (shown on the Stage).
    Wait(String),
}

fn discovered(f: &Freight) -> Option<Timestamp> {
    f.discovered_at
        .as_ref()
        .or(f.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// Orders Freight by when it was discovered (then by name), oldest first.
pub fn discovered_order(a: &Freight, b: &Freight) -> std::cmp::Ordering {
    discovered(a)
        .cmp(&discovered(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Whether a person (not the controller's auto-promotion) made `p`.
pub fn is_manual(p: &Promotion) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CREATE_ACTOR))
        .is_none_or(|a| !crate::admission::is_controller_actor(a))
}

fn phase(p: &Promotion) -> Option<PromotionPhase> {
    p.status.as_ref().and_then(|s| s.phase)
}

/// Orders finished Promotions by when they finished. Times have whole-second precision, so
/// the resourceVersion (etcd's global revision of the Promotion's last write, which for a
/// finished Promotion is its final status) breaks ties.
pub fn finish_order(p: &Promotion) -> (Option<Timestamp>, u64) {
    (
        p.status
            .as_ref()
            .and_then(|s| s.finished_at.as_ref())
            .map(|t| t.0),
        p.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Decides for one request of `stage`, given the project's Freight and the Stage's Promotions
/// (owned or shared, e.g. `Arc`s from a cache).
pub fn decide<F: Borrow<Freight>, P: Borrow<Promotion>>(
    stage: &Stage,
    req: &FreightRequest,
    freights: &[F],
    promotions: &[P],
    now: Timestamp,
) -> Decision {
    let stage_name = stage.metadata.name.clone().unwrap_or_default();
    let mut available: Vec<&Freight> = freights
        .iter()
        .map(Borrow::borrow)
        .filter(|f| f.origin == req.origin)
        .filter(|f| crate::availability::check(stage, f, now).is_ok())
        .collect();
    let match_upstream = req.matches_upstream();
    if match_upstream {
        let Some(up) = req.sources.stages.first() else {
            return Decision::Wait("MatchUpstream needs an upstream Stage".into());
        };
        available.retain(|f| {
            f.status
                .as_ref()
                .is_some_and(|s| s.currently_in.contains_key(up))
        });
        if available.len() > 1 {
            return Decision::Wait(format!(
                "upstream Stage {up} is changing Freight; waiting for it to settle"
            ));
        }
    }
    available.sort_by(|a, b| discovered_order(b, a));
    let Some(candidate) = available.first() else {
        return Decision::Wait(format!("no Freight from {} is available yet", req.origin));
    };
    let name = candidate.metadata.name.clone().unwrap_or_default();
    let current = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
        .and_then(|c| c.items.get(&req.origin.to_string()))
        .and_then(|r| r.name.clone());
    let of_stage: Vec<&Promotion> = promotions
        .iter()
        .map(Borrow::borrow)
        .filter(|p| p.spec.stage == stage_name)
        .collect();

    if current.as_deref() == Some(name.as_str()) {
        return Decision::Wait(format!("the newest Freight {name} is already current"));
    }
    let for_candidate: Vec<&&Promotion> = of_stage
        .iter()
        .filter(|p| p.spec.freight.as_deref() == Some(name.as_str()))
        .collect();
    if for_candidate
        .iter()
        .any(|p| !phase(p).is_some_and(PromotionPhase::is_terminal))
    {
        return Decision::Wait(format!("a Promotion of {name} is already in progress"));
    }
    let last = for_candidate
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone());
    if let Some(last) = last
        && matches!(
            phase(last),
            Some(PromotionPhase::Failed | PromotionPhase::Errored | PromotionPhase::Aborted)
        )
    {
        return Decision::Wait(format!(
            "the last Promotion of {name} ({}) did not succeed; auto-promotion does not retry it, promote it by hand",
            last.metadata.name.clone().unwrap_or_default()
        ));
    }
    Decision::Promote(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(sources: serde_json::Value, current: Option<&str>) -> Stage {
        let mut s = serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": "dev", "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}]}
        });
        if let Some(c) = current {
            s["status"] = serde_json::json!({"freightHistory": [{"id": "x", "items": {"Warehouse/w": {"name": c}}}]});
        }
        serde_json::from_value(s).expect("stage")
    }

    fn freight(name: &str, at: &str, status: serde_json::Value) -> Freight {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": name, "namespace": "p", "creationTimestamp": at},
            "origin": {"kind": "Warehouse", "name": "w"},
            "discoveredAt": at,
            "images": [{"repoURL": "r", "tag": name}],
            "status": status
        }))
        .expect("freight")
    }

    fn promo(name: &str, freight: &str, phase: &str, at: &str, manual: bool) -> Promotion {
        let actor = if manual { "alice" } else { CONTROLLER_ACTOR };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": name, "namespace": "p", "creationTimestamp": at,
                         "annotations": {"kargo.akuity.io/create-actor": actor}},
            "spec": {"stage": "dev", "freight": freight},
            "status": {"phase": phase}
        }))
        .expect("promotion")
    }

    fn run(s: &Stage, f: &[Freight], p: &[Promotion]) -> Decision {
        decide(s, &s.spec.requested_freight[0], f, p, Timestamp::now())
    }

    #[test]
    fn newest_available_freight_is_promoted_once() {
        let f = [
            freight("a", "2026-01-01T00:00:00Z", serde_json::json!({})),
            freight("b", "2026-01-02T00:00:00Z", serde_json::json!({})),
        ];
        let s = stage(serde_json::json!({"direct": true}), Some("a"));
        assert_eq!(run(&s, &f, &[]), Decision::Promote("b".into()));
        let inflight = [promo("p1", "b", "Running", "2026-01-02T01:00:00Z", false)];
        assert!(matches!(run(&s, &f, &inflight), Decision::Wait(m) if m.contains("in progress")));
        let s_b = stage(serde_json::json!({"direct": true}), Some("b"));
        assert!(matches!(run(&s_b, &f, &[]), Decision::Wait(m) if m.contains("already current")));
    }

    #[test]
    fn a_failed_auto_promotion_is_not_retried() {
        let f = [freight("b", "2026-01-02T00:00:00Z", serde_json::json!({}))];
        let s = stage(serde_json::json!({"direct": true}), None);
        let failed = [promo("p1", "b", "Failed", "2026-01-02T01:00:00Z", false)];
        assert!(matches!(run(&s, &f, &failed), Decision::Wait(m) if m.contains("does not retry")));
    }

    #[test]
    fn only_verified_upstream_freight_and_match_upstream() {
        let f = [
            freight(
                "a",
                "2026-01-01T00:00:00Z",
                serde_json::json!({"verifiedIn": {"up": {}}, "currentlyIn": {"up": {}}}),
            ),
            freight(
                "b",
                "2026-01-02T00:00:00Z",
                serde_json::json!({"verifiedIn": {"up": {}}}),
            ),
            freight("c", "2026-01-03T00:00:00Z", serde_json::json!({})),
        ];
        let newest = stage(serde_json::json!({"stages": ["up"]}), None);
        assert_eq!(run(&newest, &f, &[]), Decision::Promote("b".into()));
        let matching = stage(
            serde_json::json!({"stages": ["up"], "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}),
            None,
        );
        assert_eq!(run(&matching, &f, &[]), Decision::Promote("a".into()));
    }
}
