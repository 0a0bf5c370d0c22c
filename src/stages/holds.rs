//! Auto-promotion holds (Kargo v1.11+): a Promotion a person makes of Freight other than the
//! auto-promotion candidate holds auto-promotion of that origin; one of the candidate resumes
//! it. Kargo's webhook records the intent on the Promotion (`kargo.akuity.io/auto-promotion-hold`
//! or `-resume`, valued with the origin, e.g. `Warehouse/w`); a Promotion a person made without
//! one gets the intent derived here, as haul always did: hold when newer Freight of the origin
//! was already there (created before the Promotion) and is available to the Stage, resume
//! otherwise. Auto-promotions carry no intent.
//!
//! As Kargo's Stage reconciler: `status.autoPromotionHolds` follows the newest finished,
//! not-aborted Promotion with an intent per requested origin and keeps a hold whose Promotion
//! was garbage-collected; `status.effectiveAutoPromotionHolds` also counts the newest Promotion
//! still in flight; both are empty while auto-promotion is disabled. Pure.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::candidates::{discovered_order, finish_order, is_manual};
use crate::api::{
    ANNOTATION_AUTO_PROMOTION_HOLD, ANNOTATION_AUTO_PROMOTION_RESUME, ANNOTATION_CREATE_ACTOR,
    AutoPromotionHold, Freight, FreightOrigin, Promotion, PromotionPhase, Stage,
};

/// What a Promotion says about auto-promotion of one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Hold,
    Resume,
}

/// The holds of a Stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holds {
    /// `status.autoPromotionHolds`.
    pub durable: BTreeMap<String, AutoPromotionHold>,
    /// `status.effectiveAutoPromotionHolds`: what blocks auto-promotion now.
    pub effective: BTreeMap<String, AutoPromotionHold>,
}

/// The origin (`Kind/name`) and intent of `p`: its annotation, else derived for a Promotion a
/// person made.
pub fn intent<F: Borrow<Freight>>(
    stage: &Stage,
    p: &Promotion,
    freights: &[F],
    now: Timestamp,
) -> Option<(String, Intent)> {
    let a = p.annotations();
    if let Some(origin) = a.get(ANNOTATION_AUTO_PROMOTION_HOLD) {
        return Some((origin.clone(), Intent::Hold));
    }
    if let Some(origin) = a.get(ANNOTATION_AUTO_PROMOTION_RESUME) {
        return Some((origin.clone(), Intent::Resume));
    }
    if !is_manual(p) {
        return None;
    }
    let name = p.spec.freight.as_deref()?;
    let pinned = freights
        .iter()
        .map(Borrow::borrow)
        .find(|f| f.metadata.name.as_deref() == Some(name))?;
    // "Already there" by when the Freight object was created, strictly before the Promotion
    // (timestamps have whole seconds): Freight that arrives later does not make it a hold.
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let newer_existed = freights.iter().map(Borrow::borrow).any(|f| {
        f.origin == pinned.origin
            && discovered_order(f, pinned).is_gt()
            && crate::availability::check(stage, f, now).is_ok()
            && f.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| created.is_some_and(|c| t.0 < c))
    });
    let intent = if newer_existed {
        Intent::Hold
    } else {
        Intent::Resume
    };
    Some((pinned.origin.to_string(), intent))
}

fn phase(p: &Promotion) -> Option<PromotionPhase> {
    p.status.as_ref().and_then(|s| s.phase)
}

/// The hold `p` establishes on `origin`.
fn hold(p: &Promotion, origin: &FreightOrigin) -> AutoPromotionHold {
    AutoPromotionHold {
        origin: origin.clone(),
        freight_name: p.spec.freight.clone().unwrap_or_default(),
        promotion_name: p.metadata.name.clone(),
        actor: p.annotations().get(ANNOTATION_CREATE_ACTOR).cloned(),
        created_at: p.metadata.creation_timestamp.clone(),
    }
}

/// The Stage's holds, from its status as read, its Promotions and the project's Freight.
pub fn compute<F: Borrow<Freight>, P: Borrow<Promotion>>(
    stage: &Stage,
    auto_promotion_enabled: bool,
    freights: &[F],
    promotions: &[P],
    now: Timestamp,
) -> Holds {
    if !auto_promotion_enabled {
        return Holds::default();
    }
    let stage_name = stage.name_any();
    let kept = stage
        .status
        .as_ref()
        .map(|s| s.auto_promotion_holds.clone())
        .unwrap_or_default();
    // Not aborted (an abort withdraws the intent), oldest first: creation order, as Kargo's
    // generated names sort.
    let mut mine: Vec<(&Promotion, String, Intent)> = promotions
        .iter()
        .map(Borrow::borrow)
        .filter(|p| p.spec.stage == stage_name && phase(p) != Some(PromotionPhase::Aborted))
        .filter_map(|p| intent(stage, p, freights, now).map(|(o, i)| (p, o, i)))
        .collect();
    mine.sort_by(|a, b| {
        a.0.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .cmp(&b.0.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .then_with(|| a.0.metadata.name.cmp(&b.0.metadata.name))
    });
    let mut holds = Holds::default();
    for req in &stage.spec.requested_freight {
        let key = req.origin.to_string();
        let of_origin: Vec<&(&Promotion, String, Intent)> =
            mine.iter().filter(|(_, o, _)| *o == key).collect();
        // The newest finished by when it finished: creation times have whole seconds, so a
        // rollback and the resume made a moment later can share one, and their names need
        // not sort (`rollback` > `resume`).
        let finished = of_origin
            .iter()
            .filter(|(p, _, _)| phase(p).is_some_and(PromotionPhase::is_terminal))
            .max_by_key(|(p, _, _)| finish_order(p));
        // A Promotion still in flight runs after every finished one (a Stage runs one at a
        // time), so the newest in flight, if any, is the newest of all.
        let in_flight = of_origin
            .iter()
            .rev()
            .find(|(p, _, _)| !phase(p).is_some_and(PromotionPhase::is_terminal));
        let durable = match finished {
            Some((p, _, Intent::Hold)) => Some(hold(p, &req.origin)),
            Some((_, _, Intent::Resume)) => None,
            // No Promotion says anything (any more): a hold recorded before stays.
            None => kept.get(&key).cloned(),
        };
        let effective = match in_flight {
            Some((p, _, Intent::Hold)) => Some(hold(p, &req.origin)),
            Some((_, _, Intent::Resume)) => None,
            None => durable.clone(),
        };
        if let Some(h) = durable {
            holds.durable.insert(key.clone(), h);
        }
        if let Some(h) = effective {
            holds.effective.insert(key, h);
        }
    }
    holds
}

/// Why auto-promotion of `origin` is held, for the Stage's Ready condition.
pub fn message(origin: &str, h: &AutoPromotionHold) -> String {
    format!(
        "auto-promotion of {origin} is held: Promotion {} put Freight {} here by hand; promote the newest Freight to resume",
        h.promotion_name.as_deref().unwrap_or("(deleted)"),
        h.freight_name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stage(holds: serde_json::Value) -> Stage {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": "dev", "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}]},
            "status": {"autoPromotionHolds": holds}
        }))
        .expect("stage")
    }

    fn freight(name: &str, at: &str) -> Freight {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": name, "namespace": "p", "creationTimestamp": at},
            "origin": {"kind": "Warehouse", "name": "w"}, "discoveredAt": at,
            "images": [{"repoURL": "r", "tag": name}]
        }))
        .expect("freight")
    }

    fn promo(
        name: &str,
        freight: &str,
        phase: Option<&str>,
        at: &str,
        annotations: serde_json::Value,
    ) -> Promotion {
        let mut v = json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": name, "namespace": "p", "creationTimestamp": at, "annotations": annotations},
            "spec": {"stage": "dev", "freight": freight}
        });
        if let Some(phase) = phase {
            v["status"] = json!({"phase": phase});
        }
        serde_json::from_value(v).expect("promotion")
    }

    fn person() -> serde_json::Value {
        json!({"kargo.akuity.io/create-actor": "kubernetes:alice"})
    }

    fn freights() -> Vec<Freight> {
        vec![
            freight("old", "2026-01-01T00:00:00Z"),
            freight("new", "2026-01-02T00:00:00Z"),
        ]
    }

    fn now() -> Timestamp {
        "2026-02-01T00:00:00Z".parse().expect("now")
    }

    #[test]
    fn a_rollback_by_hand_holds_and_promoting_the_newest_resumes() {
        let s = stage(json!({}));
        let rollback = promo(
            "b",
            "old",
            Some("Succeeded"),
            "2026-01-03T00:00:00Z",
            person(),
        );
        let h = compute(
            &s,
            true,
            &freights(),
            std::slice::from_ref(&rollback),
            now(),
        );
        let held = &h.durable["Warehouse/w"];
        assert_eq!(held.freight_name, "old");
        assert_eq!(held.promotion_name.as_deref(), Some("b"));
        assert_eq!(held.actor.as_deref(), Some("kubernetes:alice"));
        assert_eq!(h.effective, h.durable);
        // The newest, promoted by hand, resumes — once in flight for the effective holds, once
        // finished for the durable ones.
        let resume = promo(
            "c",
            "new",
            Some("Running"),
            "2026-01-04T00:00:00Z",
            person(),
        );
        let h = compute(&s, true, &freights(), &[rollback.clone(), resume], now());
        assert!(h.effective.is_empty());
        assert!(h.durable.contains_key("Warehouse/w"));
        let resume = promo(
            "c",
            "new",
            Some("Succeeded"),
            "2026-01-04T00:00:00Z",
            person(),
        );
        let h = compute(&s, true, &freights(), &[rollback, resume], now());
        assert!(h.durable.is_empty() && h.effective.is_empty());
    }

    #[test]
    fn a_resume_in_the_same_second_as_the_rollback_wins_by_when_it_finished() {
        let s = stage(json!({}));
        let at = "2026-01-03T00:00:00Z";
        let finished = |name: &str, freight: &str, rv: &str| {
            let mut p = promo(name, freight, Some("Succeeded"), at, person());
            p.metadata.resource_version = Some(rv.into());
            p.status.get_or_insert_default().finished_at = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at.parse().expect("at")),
            );
            p
        };
        // `rollback` sorts after `resume` by name but finished first.
        let rollback = finished("rollback", "old", "100");
        let resume = finished("resume", "new", "200");
        let h = compute(&s, true, &freights(), &[rollback.clone(), resume], now());
        assert!(h.durable.is_empty() && h.effective.is_empty(), "{h:?}");
        // In flight, `resume` already lifts the effective hold.
        let running = promo("resume", "new", Some("Running"), at, person());
        let h = compute(&s, true, &freights(), &[rollback, running], now());
        assert!(h.effective.is_empty() && h.durable.contains_key("Warehouse/w"));
    }

    #[test]
    fn kargo_annotations_win_and_auto_promotions_say_nothing() {
        let s = stage(json!({}));
        // Kargo's webhook said resume, though newer Freight existed.
        let resumed = promo(
            "b",
            "old",
            Some("Succeeded"),
            "2026-01-03T00:00:00Z",
            json!({"kargo.akuity.io/auto-promotion-resume": "Warehouse/w"}),
        );
        assert!(
            compute(&s, true, &freights(), &[resumed], now())
                .effective
                .is_empty()
        );
        let auto = promo(
            "a",
            "old",
            Some("Succeeded"),
            "2026-01-03T00:00:00Z",
            json!({"kargo.akuity.io/create-actor": "controller:haul-controller"}),
        );
        assert!(
            compute(&s, true, &freights(), &[auto], now())
                .effective
                .is_empty()
        );
        let held = promo(
            "h",
            "new",
            Some("Failed"),
            "2026-01-03T00:00:00Z",
            json!({"kargo.akuity.io/auto-promotion-hold": "Warehouse/w"}),
        );
        // A failure does not withdraw the intent; an abort does.
        assert!(
            compute(&s, true, &freights(), std::slice::from_ref(&held), now())
                .durable
                .contains_key("Warehouse/w")
        );
        let mut aborted = held;
        aborted.status.get_or_insert_default().phase = Some(PromotionPhase::Aborted);
        assert!(
            compute(&s, true, &freights(), &[aborted], now())
                .effective
                .is_empty()
        );
    }

    #[test]
    fn recorded_holds_outlive_their_promotion_and_vanish_while_disabled() {
        let s = stage(
            json!({"Warehouse/w": {"origin": {"kind": "Warehouse", "name": "w"}, "freightName": "old", "promotionName": "gone"},
                             "Warehouse/other": {"origin": {"kind": "Warehouse", "name": "other"}, "freightName": "x"}}),
        );
        let h = compute(&s, true, &freights(), &Vec::<Promotion>::new(), now());
        assert_eq!(h.durable.keys().collect::<Vec<_>>(), vec!["Warehouse/w"]);
        assert_eq!(h.effective, h.durable);
        assert_eq!(
            compute(&s, false, &freights(), &Vec::<Promotion>::new(), now()),
            Holds::default()
        );
    }

    #[test]
    fn freight_arriving_after_a_manual_promotion_does_not_hold() {
        let s = stage(json!({}));
        let p = promo(
            "b",
            "old",
            Some("Succeeded"),
            "2026-01-01T12:00:00Z",
            person(),
        );
        assert!(
            compute(&s, true, &freights(), &[p], now())
                .effective
                .is_empty()
        );
    }
}
