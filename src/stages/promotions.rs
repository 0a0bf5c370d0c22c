//! A Stage's Promotions as the Stage records them (Kargo reference §2.4): the one running (or
//! next), the Freight the newest successful one deployed (`freightHistory`), and the newest
//! finished one (`lastPromotion`).

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::candidates;
use crate::api::{
    CONDITION_PROMOTING, Freight, FreightCollection, Promotion, PromotionPhase, PromotionReference,
    PromotionStatus, Stage, StageStatus,
};
use crate::controller::conditions::{self, Desired};

/// How many FreightCollections `freightHistory` keeps.
const HISTORY: usize = 10;

fn phase(p: &Promotion) -> Option<PromotionPhase> {
    p.status.as_ref().and_then(|s| s.phase)
}

/// The names of the Freight in a collection.
pub fn names(c: &FreightCollection) -> BTreeSet<String> {
    c.items.values().filter_map(|f| f.name.clone()).collect()
}

/// The current Freight changed: what left the Stage and what entered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub previous: BTreeSet<String>,
    pub current: BTreeSet<String>,
}

/// What [`track`] found.
#[derive(Clone, Debug, Default)]
pub struct Tracked<'a> {
    /// The Promotion running, or the next to run.
    pub active: Option<&'a Promotion>,
    /// Set when the newest successful Promotion deployed other Freight than the status had.
    pub moved: Option<Moved>,
}

/// Brings `status` up to date with the Stage's Promotions: `currentPromotion` and the
/// Promoting condition, a new `freightHistory` entry when the newest successful Promotion
/// deployed Freight not yet recorded, `lastPromotion` and `freightSummary`.
pub fn track<'a, P: Borrow<Promotion>>(
    stage: &Stage,
    status: &mut StageStatus,
    promotions: &'a [P],
    now: &Time,
) -> Tracked<'a> {
    let name = stage.name_any();
    let generation = stage.metadata.generation;
    let mut mine: Vec<&Promotion> = promotions
        .iter()
        .map(Borrow::borrow)
        .filter(|p| p.spec.stage == name)
        .collect();
    mine.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let active = mine
        .iter()
        .find(|p| phase(p) == Some(PromotionPhase::Running))
        .or_else(|| {
            mine.iter()
                .find(|p| !phase(p).is_some_and(PromotionPhase::is_terminal))
        })
        .copied();
    status.current_promotion = active.map(|p| PromotionReference {
        name: p.name_any(),
        freight: p.status.as_ref().and_then(|s| s.freight.clone()),
        status: None,
        finished_at: None,
    });
    match active {
        Some(p) => conditions::set(
            &mut status.conditions,
            Desired {
                type_: CONDITION_PROMOTING,
                status: true,
                reason: "Promoting",
                message: format!(
                    "Promotion {} is {:?}",
                    p.name_any(),
                    phase(p).unwrap_or_default()
                ),
            },
            generation,
            now,
        ),
        None => conditions::remove(&mut status.conditions, CONDITION_PROMOTING),
    }
    // Finished Promotions in the order they finished (ties broken by resourceVersion). One that
    // ended before it started (its Freight or Stage missing, aborted while queued) ran nothing
    // against this Stage, so it is never its last Promotion: a typo must not degrade a Stage.
    let newest_finished = mine
        .iter()
        .filter(|p| phase(p).is_some_and(PromotionPhase::is_terminal))
        .filter(|p| p.status.as_ref().is_some_and(|s| s.started_at.is_some()))
        .max_by_key(|p| candidates::finish_order(p));
    let newest_success = mine
        .iter()
        .filter(|p| phase(p) == Some(PromotionPhase::Succeeded))
        .max_by_key(|p| candidates::finish_order(p));
    // The current Freight is what the newest successful Promotion deployed; record it once.
    let mut moved = None;
    if let Some(collection) = newest_success
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.freight_collection.clone())
        && status.freight_history.first().map(|c| c.id.as_str()) != Some(collection.id.as_str())
    {
        moved = Some(Moved {
            previous: status
                .freight_history
                .first()
                .map(names)
                .unwrap_or_default(),
            current: names(&collection),
        });
        status.freight_history.retain(|c| c.id != collection.id);
        let mut fresh = collection;
        fresh.verification_history.clear();
        status.freight_history.insert(0, fresh);
        status.freight_history.truncate(HISTORY);
    }
    if let Some(p) = newest_finished
        && status.last_promotion.as_ref().map(|l| l.name.as_str()) != Some(p.name_any().as_str())
    {
        let ps = p.status.clone().unwrap_or_default();
        status.last_promotion = Some(PromotionReference {
            name: p.name_any(),
            freight: ps.freight.clone(),
            finished_at: ps.finished_at.clone(),
            status: Some(PromotionStatus {
                phase: ps.phase,
                message: ps.message.clone(),
                finished_at: ps.finished_at.clone(),
                health_checks: ps.health_checks.clone(),
                ..Default::default()
            }),
        });
    }
    let current: Vec<String> = status
        .freight_history
        .first()
        .map(|c| names(c).into_iter().collect())
        .unwrap_or_default();
    status.freight_summary = Some(match current.len() {
        0 => "N/A".to_string(),
        1 => current[0].clone(),
        n => format!("{n}/{} Fulfilled", stage.spec.requested_freight.len()),
    });
    Tracked { active, moved }
}

/// Go's `time.Duration.String()` for whole seconds (`1h2m3s`, `45s`), as Kargo stores soak times.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m{sec}s"),
        _ => format!("{h}h{m}m{sec}s"),
    }
}

/// The `verifiedIn.<stage>.longestSoak` of Freight leaving the Stage: the longer of the one
/// recorded and the soak just ended. `None` when the Freight was not verified in the Stage or
/// its arrival is unknown (nothing to record).
pub fn longest_soak(freight: Option<&Freight>, stage: &str, now: Timestamp) -> Option<String> {
    let st = freight.and_then(|f| f.status.as_ref())?;
    let since = st.currently_in.get(stage).and_then(|c| c.since.as_ref())?;
    let verified = st.verified_in.get(stage)?;
    let soak = Duration::try_from(now.duration_since(since.0)).unwrap_or_default();
    let recorded = verified
        .longest_soak
        .as_deref()
        .and_then(|s| crate::duration::parse(s).ok())
        .unwrap_or_default();
    Some(go_duration(recorded.max(soak)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_prints_like_go() {
        assert_eq!(go_duration(Duration::from_secs(45)), "45s");
        assert_eq!(go_duration(Duration::from_secs(125)), "2m5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
