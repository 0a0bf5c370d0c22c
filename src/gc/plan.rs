//! What garbage collection deletes, decided from listed objects and `now` with no IO.
//!
//! The rules are Kargo's garbage collector's (reference: `pkg/garbage`), per namespace:
//!
//! * **Promotions, per existing Stage.** Newest first, everything up to and including the
//!   oldest non-terminal (Pending/Running) Promotion is kept, then the next
//!   `max_retained_promotions`; the older rest is deleted once at least
//!   `min_promotion_deletion_age` old. So nothing that still runs, waits, or is newer than
//!   something that does is ever deleted.
//! * **Freight, per existing Warehouse.** Newest first, everything up to and including the
//!   oldest Freight still in use is kept, then the next `max_retained_freight`; the older rest is
//!   deleted once at least `min_freight_deletion_age` old.
//!
//! Where haul keeps more than Kargo (each only ever spares an object):
//! * Freight counts as in use not only when a Stage's current Freight (`freightHistory[0]`)
//!   names it, as in Kargo, but also when its `status.currentlyIn` is not empty, or a
//!   non-terminal Promotion of its namespace names it: deleting it would fail that Promotion.
//! * A Stage's `status.currentPromotion`, `status.lastPromotion` and its last Succeeded
//!   Promotion (by finish time) are never deleted: haul derives auto-promotion holds from the
//!   last Succeeded Promotion instead of storing them in the Stage, so deleting it would silently
//!   release a hold a person set.
//!
//! As in Kargo, Promotions of a Stage that no longer exists and Freight of a Warehouse that no
//! longer exists are left alone. Objects are ordered by `creationTimestamp` and then by name (a
//! Promotion's name carries a ULID, so equal-second timestamps still order by creation), which
//! makes the plan deterministic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Resource, ResourceExt};

use crate::api::{Freight, FreightOriginKind, Promotion, PromotionPhase, Stage, Warehouse};

/// Kargo's defaults: keep 20, delete nothing younger than two weeks.
pub const DEFAULT_MAX_RETAINED: usize = 20;
pub const DEFAULT_MIN_DELETION_AGE: Duration = Duration::from_secs(336 * 3600);

/// How much history to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Terminal Promotions kept per Stage beyond those newer than its oldest non-terminal one.
    pub max_retained_promotions: usize,
    /// Promotions younger than this are never deleted.
    pub min_promotion_deletion_age: Duration,
    /// Freight kept per Warehouse beyond those newer than its oldest Freight in use.
    pub max_retained_freight: usize,
    /// Freight younger than this is never deleted.
    pub min_freight_deletion_age: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_retained_promotions: DEFAULT_MAX_RETAINED,
            min_promotion_deletion_age: DEFAULT_MIN_DELETION_AGE,
            max_retained_freight: DEFAULT_MAX_RETAINED,
            min_freight_deletion_age: DEFAULT_MIN_DELETION_AGE,
        }
    }
}

/// The kinds garbage collection deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Promotion,
    Freight,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Promotion => "Promotion",
            Kind::Freight => "Freight",
        })
    }
}

/// One object to delete, with what the delete is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// The Stage (Promotions) or Warehouse (Freight) it was counted under.
    pub owner: String,
    /// Preconditions: the delete fails if the object was replaced or changed since it was listed.
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl fmt::Display for Deletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Everything one pass deletes: Promotions first, then Freight, each in namespace, owner and
/// age order (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub promotions: Vec<Deletion>,
    pub freight: Vec<Deletion>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.promotions.is_empty() && self.freight.is_empty()
    }

    pub fn len(&self) -> usize {
        self.promotions.len() + self.freight.len()
    }

    /// All deletions, Promotions before Freight.
    pub fn iter(&self) -> impl Iterator<Item = &Deletion> {
        self.promotions.iter().chain(self.freight.iter())
    }
}

/// The objects a plan is made from, as listed (any namespaces mixed).
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub stages: &'a [Stage],
    pub warehouses: &'a [Warehouse],
    pub promotions: &'a [Promotion],
    pub freight: &'a [Freight],
}

/// Decides what to delete at `now`.
pub fn plan(config: &Config, inputs: Inputs<'_>, now: Timestamp) -> Plan {
    Plan {
        promotions: plan_promotions(config, &inputs, now),
        freight: plan_freight(config, &inputs, now),
    }
}

fn created(meta: &kube::api::ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// Newest first: later creationTimestamp, then greater name. An object without a timestamp
/// (never the case for listed objects) sorts as newest, so it is kept.
fn newest_first(a: &kube::api::ObjectMeta, b: &kube::api::ObjectMeta) -> Ordering {
    let key = |m: &kube::api::ObjectMeta| (created(m).unwrap_or(Timestamp::MAX), m.name.clone());
    key(b).cmp(&key(a))
}

/// Old enough to delete: at least `min` old at `now` (Kargo skips `age < min`).
fn old_enough(meta: &kube::api::ObjectMeta, min: Duration, now: Timestamp) -> bool {
    let Some(t) = created(meta) else {
        return false;
    };
    match SignedDuration::try_from(min) {
        Ok(min) => now.duration_since(t) >= min,
        // A minimum age beyond what a timestamp difference can express: nothing is that old.
        Err(_) => false,
    }
}

fn phase(p: &Promotion) -> PromotionPhase {
    p.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

fn deletion(kind: Kind, meta: &kube::api::ObjectMeta, owner: &str) -> Deletion {
    Deletion {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        owner: owner.to_string(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
    }
}

/// The (namespace, name) of each object, sorted.
fn owners<T: ResourceExt>(objs: &[T]) -> BTreeSet<(String, &str)> {
    objs.iter()
        .filter_map(|o| Some((o.namespace().unwrap_or_default(), o.meta().name.as_deref()?)))
        .collect()
}

/// The index of the first object to delete in a newest-first list whose newest `anchor`
/// (non-terminal Promotion, Freight in use) is at `oldest_anchor`: everything up to it, and
/// `retained` more, stay.
fn first_deletable(oldest_anchor: Option<usize>, retained: usize) -> usize {
    oldest_anchor
        .map_or(0, |i| i.saturating_add(1))
        .saturating_add(retained)
}

fn plan_promotions(config: &Config, inputs: &Inputs<'_>, now: Timestamp) -> Vec<Deletion> {
    let mut out = Vec::new();
    let stages: BTreeMap<(String, &str), &Stage> = inputs
        .stages
        .iter()
        .filter_map(|s| {
            Some((
                (s.namespace().unwrap_or_default(), s.meta().name.as_deref()?),
                s,
            ))
        })
        .collect();
    for ((ns, stage_name), stage) in stages {
        let mut promos: Vec<&Promotion> = inputs
            .promotions
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && p.spec.stage == stage_name)
            .collect();
        if promos.len() <= config.max_retained_promotions {
            continue;
        }
        promos.sort_by(|a, b| newest_first(&a.metadata, &b.metadata));
        let oldest_active = promos.iter().rposition(|p| !phase(p).is_terminal());
        let protected = protected_promotions(stage, &promos);
        let first = first_deletable(oldest_active, config.max_retained_promotions);
        let mut doomed: Vec<Deletion> = promos
            .iter()
            .skip(first)
            // Beyond the oldest non-terminal Promotion all are terminal; checked again so that
            // a running Promotion can never be deleted, whatever the ordering.
            .filter(|p| phase(p).is_terminal())
            .filter(|p| !protected.contains(p.meta().name.as_deref().unwrap_or_default()))
            .filter(|p| old_enough(&p.metadata, config.min_promotion_deletion_age, now))
            .map(|p| deletion(Kind::Promotion, &p.metadata, stage_name))
            .collect();
        doomed.reverse();
        out.extend(doomed);
    }
    out
}

/// Promotions of `stage` that the Stage's status and auto-promotion holds depend on.
fn protected_promotions<'a>(stage: &'a Stage, promos: &[&'a Promotion]) -> BTreeSet<&'a str> {
    let mut keep = BTreeSet::new();
    if let Some(st) = &stage.status {
        for r in [&st.current_promotion, &st.last_promotion]
            .into_iter()
            .flatten()
        {
            keep.insert(r.name.as_str());
        }
    }
    if let Some(p) = promos
        .iter()
        .filter(|p| phase(p) == PromotionPhase::Succeeded)
        .max_by(|a, b| {
            crate::stages::candidates::finish_order(a)
                .cmp(&crate::stages::candidates::finish_order(b))
                .then_with(|| newest_first(&b.metadata, &a.metadata))
        })
        && let Some(n) = p.metadata.name.as_deref()
    {
        keep.insert(n);
    }
    keep
}

/// Names of Freight in use in each namespace: a Stage's current Freight, Freight whose status
/// says a Stage uses it, and Freight a non-terminal Promotion names.
fn freight_in_use<'a>(inputs: &Inputs<'a>) -> BTreeSet<(String, &'a str)> {
    let mut used = BTreeSet::new();
    for s in inputs.stages {
        let ns = s.namespace().unwrap_or_default();
        let current = s.status.as_ref().and_then(|st| st.freight_history.first());
        for r in current.into_iter().flat_map(|c| c.items.values()) {
            if let Some(n) = r.name.as_deref() {
                used.insert((ns.clone(), n));
            }
        }
    }
    for f in inputs.freight {
        if f.status
            .as_ref()
            .is_some_and(|s| !s.currently_in.is_empty())
            && let Some(n) = f.metadata.name.as_deref()
        {
            used.insert((f.namespace().unwrap_or_default(), n));
        }
    }
    for p in inputs.promotions {
        if !phase(p).is_terminal()
            && let Some(n) = p.spec.freight.as_deref()
        {
            used.insert((p.namespace().unwrap_or_default(), n));
        }
    }
    used
}

fn plan_freight(config: &Config, inputs: &Inputs<'_>, now: Timestamp) -> Vec<Deletion> {
    let mut out = Vec::new();
    let used = freight_in_use(inputs);
    let is_used = |f: &Freight| {
        let key = (
            f.namespace().unwrap_or_default(),
            f.metadata.name.as_deref().unwrap_or_default(),
        );
        used.contains(&key)
    };
    for (ns, warehouse) in owners(inputs.warehouses) {
        let mut freight: Vec<&Freight> = inputs
            .freight
            .iter()
            .filter(|f| {
                f.namespace().as_deref() == Some(ns.as_str())
                    && f.origin.kind == FreightOriginKind::Warehouse
                    && f.origin.name == warehouse
            })
            .collect();
        if freight.len() <= config.max_retained_freight {
            continue;
        }
        freight.sort_by(|a, b| newest_first(&a.metadata, &b.metadata));
        let oldest_used = freight.iter().rposition(|f| is_used(f));
        let first = first_deletable(oldest_used, config.max_retained_freight);
        let mut doomed: Vec<Deletion> = freight
            .iter()
            .skip(first)
            .filter(|f| !is_used(f))
            .filter(|f| old_enough(&f.metadata, config.min_freight_deletion_age, now))
            .map(|f| deletion(Kind::Freight, &f.metadata, warehouse))
            .collect();
        doomed.reverse();
        out.extend(doomed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        CurrentStage, FreightCollection, FreightOrigin, FreightReference, FreightStatus,
        PromotionReference, PromotionSpec, PromotionStatus, StageStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const NS: &str = "p";
    /// A fixed "now"; objects are created `age` hours before it.
    fn now() -> Timestamp {
        "2030-06-01T00:00:00Z".parse().expect("timestamp")
    }

    fn meta(name: &str, age_hours: i64) -> kube::api::ObjectMeta {
        kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            creation_timestamp: Some(Time(now() - SignedDuration::from_hours(age_hours))),
            ..Default::default()
        }
    }

    fn stage(name: &str) -> Stage {
        let mut s = Stage::new(name, Default::default());
        s.metadata.namespace = Some(NS.into());
        s
    }

    fn stage_using(name: &str, freight: &[&str]) -> Stage {
        let mut s = stage(name);
        let items = freight
            .iter()
            .map(|f| {
                (
                    format!("Warehouse/w{f}"),
                    FreightReference {
                        name: Some(f.to_string()),
                        ..Default::default()
                    },
                )
            })
            .collect();
        s.status = Some(StageStatus {
            freight_history: vec![FreightCollection {
                id: "c".into(),
                items,
                ..Default::default()
            }],
            ..Default::default()
        });
        s
    }

    fn warehouse(name: &str) -> Warehouse {
        let spec = serde_json::json!({"subscriptions": []});
        let mut w = Warehouse::new(name, serde_json::from_value(spec).expect("spec"));
        w.metadata.namespace = Some(NS.into());
        w
    }

    fn promo(name: &str, stage: &str, age_hours: i64, phase: Option<PromotionPhase>) -> Promotion {
        let mut p = Promotion::new(
            name,
            PromotionSpec {
                stage: stage.into(),
                freight: Some("f".into()),
                ..Default::default()
            },
        );
        p.metadata = meta(name, age_hours);
        p.status = phase.map(|ph| PromotionStatus {
            phase: Some(ph),
            ..Default::default()
        });
        p
    }

    fn freight(name: &str, warehouse: &str, age_hours: i64) -> Freight {
        let mut f = Freight::new(name, FreightOrigin::warehouse(warehouse));
        f.metadata = meta(name, age_hours);
        f
    }

    fn cfg(promos: usize, freight: usize, min_age_hours: u64) -> Config {
        let min = Duration::from_secs(min_age_hours * 3600);
        Config {
            max_retained_promotions: promos,
            min_promotion_deletion_age: min,
            max_retained_freight: freight,
            min_freight_deletion_age: min,
        }
    }

    fn names(d: &[Deletion]) -> Vec<&str> {
        d.iter().map(|d| d.name.as_str()).collect()
    }

    use PromotionPhase::*;

    /// `n` terminal Promotions `<stage>-00` (oldest, `n` hours old) … of Stage `stage`.
    fn history(stage: &str, n: i64, phase: PromotionPhase) -> Vec<Promotion> {
        (0..n)
            .map(|i| promo(&format!("{stage}-{i:02}"), stage, 100 - i, Some(phase)))
            .collect()
    }

    #[test]
    fn keeps_the_newest_terminal_promotions_and_deletes_the_rest_oldest_first() {
        let stages = [stage("dev")];
        let promotions = history("dev", 6, Failed);
        let p = plan(
            &cfg(4, 20, 0),
            Inputs {
                stages: &stages,
                promotions: &promotions,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(names(&p.promotions), ["dev-00", "dev-01"]);
        assert_eq!(p.promotions[0].owner, "dev");
        assert_eq!(p.promotions[0].uid.as_deref(), Some("uid-dev-00"));
        assert_eq!(p.promotions[0].resource_version.as_deref(), Some("7"));
        assert!(p.freight.is_empty());
    }

    #[test]
    fn nothing_is_deleted_at_or_under_the_limit() {
        let stages = [stage("dev")];
        let promotions = history("dev", 4, Failed);
        let inputs = Inputs {
            stages: &stages,
            promotions: &promotions,
            ..Default::default()
        };
        assert!(plan(&cfg(4, 20, 0), inputs, now()).is_empty());
        assert_eq!(plan(&cfg(3, 20, 0), inputs, now()).len(), 1);
    }

    #[test]
    fn never_deletes_pending_or_running_promotions_nor_anything_newer() {
        let stages = [stage("dev")];
        // Oldest to newest: 4 terminal, a Running one, 2 terminal, a Pending one (no status:
        // just created), 1 terminal.
        let mut promotions = history("dev", 4, Failed);
        promotions.push(promo("dev-04", "dev", 50, Some(Running)));
        promotions.push(promo("dev-05", "dev", 40, Some(Errored)));
        promotions.push(promo("dev-06", "dev", 30, Some(Aborted)));
        promotions.push(promo("dev-07", "dev", 20, None));
        promotions.push(promo("dev-08", "dev", 10, Some(Failed)));
        let inputs = Inputs {
            stages: &stages,
            promotions: &promotions,
            ..Default::default()
        };
        // Retain 1 beyond the oldest non-terminal (dev-04): dev-03 stays.
        let p = plan(&cfg(1, 20, 0), inputs, now());
        assert_eq!(names(&p.promotions), ["dev-00", "dev-01", "dev-02"]);
        // Retain 0: everything older than dev-04 goes, and never dev-04..dev-08.
        let p = plan(&cfg(0, 20, 0), inputs, now());
        assert_eq!(
            names(&p.promotions),
            ["dev-00", "dev-01", "dev-02", "dev-03"]
        );
    }

    #[test]
    fn a_promotion_younger_than_the_minimum_age_stays_and_others_still_go() {
        let stages = [stage("dev")];
        // Ages 100, 99, …, 95 hours; the oldest two are beyond the limit of 4.
        let mut promotions = history("dev", 6, Failed);
        // dev-01 has no creationTimestamp: it sorts as the newest and is never old enough, so
        // dev-02 falls beyond the limit in its place.
        promotions[1].metadata.creation_timestamp = None;
        let inputs = Inputs {
            stages: &stages,
            promotions: &promotions,
            ..Default::default()
        };
        assert_eq!(
            names(&plan(&cfg(4, 20, 0), inputs, now()).promotions),
            ["dev-00", "dev-02"]
        );
        // Minimum age 99h: dev-00 (100h) goes, dev-02 (98h) is too young.
        assert_eq!(
            names(&plan(&cfg(4, 20, 99), inputs, now()).promotions),
            ["dev-00"]
        );
        // Exactly the minimum age is old enough (Kargo skips only `age < min`).
        assert_eq!(
            names(&plan(&cfg(4, 20, 100), inputs, now()).promotions),
            ["dev-00"]
        );
        assert!(plan(&cfg(4, 20, 101), inputs, now()).is_empty());
    }

    #[test]
    fn a_huge_minimum_age_deletes_nothing() {
        let stages = [stage("dev")];
        let promotions = history("dev", 6, Failed);
        let mut c = cfg(0, 0, 0);
        c.min_promotion_deletion_age = Duration::MAX;
        let p = plan(
            &c,
            Inputs {
                stages: &stages,
                promotions: &promotions,
                ..Default::default()
            },
            now(),
        );
        assert!(p.is_empty());
    }

    #[test]
    fn promotions_are_counted_per_stage_and_namespace() {
        let stages = [stage("dev"), stage("prod")];
        let mut promotions = history("dev", 3, Succeeded);
        promotions.extend(history("prod", 3, Failed));
        // Same Stage name in another namespace: not counted with this one, and that Stage
        // does not exist there, so its Promotions are left alone.
        let mut other = history("dev", 5, Failed);
        for p in &mut other {
            p.metadata.namespace = Some("elsewhere".into());
            p.metadata.name = p.metadata.name.as_ref().map(|n| format!("x-{n}"));
        }
        promotions.extend(other);
        let p = plan(
            &cfg(2, 20, 0),
            Inputs {
                stages: &stages,
                promotions: &promotions,
                ..Default::default()
            },
            now(),
        );
        // dev-02 is the last Succeeded (kept anyway); dev-00 goes; prod-00 goes.
        assert_eq!(names(&p.promotions), ["dev-00", "prod-00"]);
    }

    #[test]
    fn promotions_of_a_stage_that_no_longer_exists_are_left_alone() {
        let promotions = history("gone", 10, Failed);
        let p = plan(
            &cfg(0, 0, 0),
            Inputs {
                promotions: &promotions,
                ..Default::default()
            },
            now(),
        );
        assert!(p.is_empty());
    }

    #[test]
    fn the_last_succeeded_and_the_stages_referenced_promotions_are_kept() {
        // dev-00 succeeded last (a person pinned older Freight; holds derive from it), the newer
        // ones failed. dev-01 is the Stage's lastPromotion.
        let mut promotions = history("dev", 6, Failed);
        promotions[0].status = Some(PromotionStatus {
            phase: Some(Succeeded),
            finished_at: Some(Time(now())),
            ..Default::default()
        });
        // An older success that finished earlier is not protected.
        promotions[2].status = Some(PromotionStatus {
            phase: Some(Succeeded),
            finished_at: Some(Time(now() - SignedDuration::from_hours(1))),
            ..Default::default()
        });
        let mut dev = stage("dev");
        dev.status = Some(StageStatus {
            last_promotion: Some(PromotionReference {
                name: "dev-01".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let stages = [dev];
        let p = plan(
            &cfg(0, 20, 0),
            Inputs {
                stages: &stages,
                promotions: &promotions,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(
            names(&p.promotions),
            ["dev-02", "dev-03", "dev-04", "dev-05"]
        );
    }

    #[test]
    fn equal_timestamps_order_by_name_so_the_plan_is_deterministic() {
        let stages = [stage("dev")];
        // Created within one second (Kargo names: <stage>.<ulid>.<freight>); listed in any order.
        let mut promotions: Vec<Promotion> = ["dev.01b", "dev.01d", "dev.01a", "dev.01c"]
            .iter()
            .map(|n| promo(n, "dev", 5, Some(Succeeded)))
            .collect();
        let inputs = Inputs {
            stages: &stages,
            promotions: &promotions,
            ..Default::default()
        };
        // dev.01d is the last Succeeded by the tie-break too, and kept with the newest two.
        let first = plan(&cfg(2, 20, 0), inputs, now());
        assert_eq!(names(&first.promotions), ["dev.01a", "dev.01b"]);
        promotions.reverse();
        let again = plan(
            &cfg(2, 20, 0),
            Inputs {
                stages: &stages,
                promotions: &promotions,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(first, again);
    }

    fn freight_series(warehouse: &str, n: i64) -> Vec<Freight> {
        (0..n)
            .map(|i| freight(&format!("{warehouse}-{i:02}"), warehouse, 100 - i))
            .collect()
    }

    #[test]
    fn keeps_freight_newer_than_the_oldest_in_use_plus_the_retained_count() {
        let warehouses = [warehouse("w")];
        let freight = freight_series("w", 8);
        // uat runs w-03, dev the newer w-06.
        let stages = [stage_using("uat", &["w-03"]), stage_using("dev", &["w-06"])];
        let inputs = Inputs {
            stages: &stages,
            warehouses: &warehouses,
            freight: &freight,
            ..Default::default()
        };
        let p = plan(&cfg(20, 2, 0), inputs, now());
        assert_eq!(names(&p.freight), ["w-00"]);
        assert_eq!(p.freight[0].owner, "w");
        let p = plan(&cfg(20, 0, 0), inputs, now());
        assert_eq!(names(&p.freight), ["w-00", "w-01", "w-02"]);
        assert!(p.promotions.is_empty());
    }

    #[test]
    fn without_freight_in_use_only_the_retained_count_stays() {
        let warehouses = [warehouse("w")];
        let freight = freight_series("w", 5);
        let p = plan(
            &cfg(20, 3, 0),
            Inputs {
                warehouses: &warehouses,
                freight: &freight,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(names(&p.freight), ["w-00", "w-01"]);
    }

    #[test]
    fn freight_in_use_by_status_or_by_a_waiting_promotion_is_never_deleted() {
        let warehouses = [warehouse("w")];
        let mut freight = freight_series("w", 6);
        // w-01 says a Stage uses it (status.currentlyIn).
        freight[1].status = Some(FreightStatus {
            currently_in: [("prod".to_string(), CurrentStage::default())].into(),
            ..Default::default()
        });
        let stages = [stage("dev")];
        let inputs = Inputs {
            stages: &stages,
            warehouses: &warehouses,
            freight: &freight,
            ..Default::default()
        };
        assert_eq!(
            names(&plan(&cfg(20, 0, 0), inputs, now()).freight),
            ["w-00"]
        );

        // A Pending Promotion of w-00: nothing goes. A finished one does not protect it.
        let mut pending = promo("dev-x", "dev", 1, None);
        pending.spec.freight = Some("w-00".into());
        let mut done = promo("dev-y", "dev", 1, Some(Succeeded));
        done.spec.freight = Some("w-00".into());
        let promotions = [pending];
        let inputs = Inputs {
            promotions: &promotions,
            ..inputs
        };
        assert!(plan(&cfg(20, 0, 0), inputs, now()).freight.is_empty());
        let promotions = [done];
        let inputs = Inputs {
            promotions: &promotions,
            ..inputs
        };
        assert_eq!(
            names(&plan(&cfg(20, 0, 0), inputs, now()).freight),
            ["w-00"]
        );
    }

    #[test]
    fn freight_respects_the_minimum_age() {
        let warehouses = [warehouse("w")];
        let freight = freight_series("w", 6); // 100h … 95h old
        let inputs = Inputs {
            warehouses: &warehouses,
            freight: &freight,
            ..Default::default()
        };
        assert_eq!(
            names(&plan(&cfg(20, 1, 98), inputs, now()).freight),
            ["w-00", "w-01", "w-02"]
        );
        assert!(plan(&cfg(20, 1, 336), inputs, now()).is_empty());
        // The defaults (keep 20, two weeks) spare all of it.
        assert!(plan(&Config::default(), inputs, now()).is_empty());
    }

    #[test]
    fn freight_is_counted_per_warehouse_and_orphans_are_left_alone() {
        let warehouses = [warehouse("a"), warehouse("b")];
        let mut freight = freight_series("a", 3);
        freight.extend(freight_series("b", 3));
        freight.extend(freight_series("gone", 5));
        // a's newest is in use in a Stage of another namespace: that does not count here.
        let mut elsewhere = stage_using("dev", &["a-02"]);
        elsewhere.metadata.namespace = Some("elsewhere".into());
        let stages = [elsewhere, stage_using("dev", &["b-01"])];
        let p = plan(
            &cfg(20, 1, 0),
            Inputs {
                stages: &stages,
                warehouses: &warehouses,
                freight: &freight,
                ..Default::default()
            },
            now(),
        );
        // a: keep a-02 only; b: b-01 in use, b-02 newer, b-00 the one retained.
        assert_eq!(names(&p.freight), ["a-00", "a-01"]);
    }

    #[test]
    fn plan_lists_promotions_then_freight_in_namespace_and_owner_order() {
        let mut warehouses = vec![warehouse("w")];
        let mut stages = vec![stage("b"), stage("a")];
        let mut promotions = history("b", 2, Failed);
        promotions.extend(history("a", 2, Failed));
        let mut freight = freight_series("w", 2);
        let mut s2 = stage("a");
        s2.metadata.namespace = Some("a-ns".into());
        stages.push(s2);
        let mut w2 = warehouse("w");
        w2.metadata.namespace = Some("a-ns".into());
        warehouses.push(w2);
        for mut p in history("a", 2, Failed) {
            p.metadata.namespace = Some("a-ns".into());
            promotions.push(p);
        }
        for mut f in freight_series("w", 2) {
            f.metadata.namespace = Some("a-ns".into());
            freight.push(f);
        }
        let p = plan(
            &cfg(1, 1, 0),
            Inputs {
                stages: &stages,
                warehouses: &warehouses,
                promotions: &promotions,
                freight: &freight,
            },
            now(),
        );
        let all: Vec<String> = p.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            all,
            [
                "Promotion a-ns/a-00",
                "Promotion p/a-00",
                "Promotion p/b-00",
                "Freight a-ns/w-00",
                "Freight p/w-00",
            ]
        );
    }
}
