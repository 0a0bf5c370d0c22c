//! Sharding as Kargo does it: several controllers share one API server, each responsible for
//! the objects labelled `kargo.akuity.io/shard=<its name>`; the default controller takes the
//! unlabelled ones.
//!
//! - Promotions are selected by label on the API server: a shard's watch receives only its
//!   own (`kargo.akuity.io/shard=<name>`, the default `!kargo.akuity.io/shard`), as Kargo's
//!   cache does.
//! - Stages and Warehouses are watched whole by every shard, because the Stage graph check
//!   (upstream Stages, cycles) and the Warehouse names span shards; each reconciler skips the
//!   ones that are not its own. A Stage's or Warehouse's shard is `spec.shard` when set, else
//!   its label (Kargo's defaulting webhook copies `spec.shard` into the label; haul has no
//!   such webhook for them, so it reads both).
//! - Freight is not sharded (Kargo neither): every shard's Stages read all of it.
//! - Projects, ProjectConfigs and ClusterConfig are reconciled by the default controller only
//!   (Kargo's management controller is not sharded either).
//!
//! A Promotion follows its Stage: haul labels the Promotions it creates with the Stage's shard,
//! and a controller that receives a Promotion whose Stage is another shard's hands it over
//! (relabels it) unless it is running it, in which case it finishes it first. A shard that
//! receives a Stage moved to it waits until no other shard holds an unfinished Promotion of
//! it ([`arrive`]) before reconciling it, so a moved Stage never has two Promotions running.
//! When the old shard's controller is gone (its leader Lease free or expired), the new shard
//! takes the Promotions over itself, holding the old shard's Lease meanwhile ([`takeover`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::api::{LABEL_SHARD, Promotion, PromotionPhase, Stage, Warehouse};

pub mod takeover;

/// The name of the default controller's leader Lease; a named shard's is `<this>-shard-<name>`.
pub const LEASE_BASE: &str = "haul-controller";

/// Which objects this controller is responsible for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shard {
    name: Option<String>,
    default: bool,
    /// Set under leader election: how to tell another shard's controller is gone.
    takeover: Option<takeover::Leases>,
}

/// A shard name that cannot be a label value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--shard (SHARD_NAME) {0:?}: a shard name is a label value: at most 63 characters, letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)]
pub struct InvalidShardName(pub String);

impl Shard {
    /// The controller of shard `name` (`None` or empty: the default controller); `default`
    /// makes a named shard take the unlabelled objects too (Kargo's IS_DEFAULT_CONTROLLER).
    pub fn new(name: Option<String>, default: bool) -> Result<Self, InvalidShardName> {
        let name = name.filter(|n| !n.is_empty());
        if let Some(n) = &name
            && !is_label_value(n)
        {
            return Err(InvalidShardName(n.clone()));
        }
        Ok(Self {
            name,
            default,
            takeover: None,
        })
    }

    /// Lets this controller take a moved Stage's Promotions from a shard whose controller is
    /// gone, judged by that shard's leader Lease (see [`takeover`]).
    pub fn with_takeover(self, leases: takeover::Leases) -> Self {
        Self {
            takeover: Some(leases),
            ..self
        }
    }

    /// The shard's name; `None` for the default controller.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether this controller takes objects of no shard (and the cluster-wide kinds).
    pub fn is_default(&self) -> bool {
        self.name.is_none() || self.default
    }

    /// Whether an object of `shard` (its label or `spec.shard`) is this controller's.
    pub fn owns(&self, shard: Option<&str>) -> bool {
        match shard.filter(|s| !s.is_empty()) {
            None => self.is_default(),
            Some(s) => self.name.as_deref() == Some(s),
        }
    }

    /// The label selector of the objects this controller receives, as Kargo's
    /// `GetShardRequirement`: `None` when a named shard is also the default (no selector can
    /// say "this value or absent"; the reconcilers filter).
    pub fn label_selector(&self) -> Option<String> {
        match (&self.name, self.default) {
            (None, _) => Some(format!("!{LABEL_SHARD}")),
            (Some(n), false) => Some(format!("{LABEL_SHARD}={n}")),
            (Some(_), true) => None,
        }
    }

    /// The label selector of the Promotions other controllers are responsible for.
    pub fn foreign_selector(&self) -> String {
        match (&self.name, self.default) {
            (None, _) => LABEL_SHARD.to_string(),
            (Some(n), false) => format!("{LABEL_SHARD}!={n}"),
            (Some(n), true) => format!("{LABEL_SHARD},{LABEL_SHARD}!={n}"),
        }
    }

    /// The leader-election Lease of this shard: each shard elects its own leader.
    pub fn lease_name(&self, base: &str) -> String {
        match &self.name {
            None => base.to_string(),
            Some(n) => format!("{base}-shard-{n}"),
        }
    }
}

/// Kubernetes' label value syntax (RFC 1123-ish, as `validation.IsValidLabelValue`).
fn is_label_value(v: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    v.len() <= 63
        && v.chars().all(ok_char)
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

fn label_of<K: kube::Resource>(obj: &K) -> Option<&str> {
    non_empty(obj.meta().labels.as_ref().and_then(|l| l.get(LABEL_SHARD)))
}

/// The shard of a Stage: `spec.shard`, else its label.
pub fn stage_shard(stage: &Stage) -> Option<&str> {
    non_empty(stage.spec.shard.as_ref()).or_else(|| label_of(stage))
}

/// The shard of a Warehouse: `spec.shard`, else its label.
pub fn warehouse_shard(w: &Warehouse) -> Option<&str> {
    non_empty(w.spec.shard.as_ref()).or_else(|| label_of(w))
}

/// The shard a Promotion is labelled for.
pub fn promotion_shard(p: &Promotion) -> Option<&str> {
    label_of(p)
}

/// Labels a new Promotion of `stage` with the Stage's shard (what Kargo's webhook does).
pub fn label_for_stage(p: &mut Promotion, stage: &Stage) {
    if let Some(s) = stage_shard(stage) {
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_SHARD.to_string(), s.to_string());
    }
}

/// What a controller does with a Promotion it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Reconcile it here.
    Run,
    /// Its Stage is another shard's: relabel it for that shard (`None`: remove the label).
    HandOver(Option<String>),
    /// Its Stage just moved here and another shard still holds one of its Promotions: wait
    /// (the arrival re-triggers it).
    Wait,
}

/// Decides where a Promotion runs. `stage`: the shard of its Stage, `None` when the Stage is
/// not known (the reconciler reports that). A running Promotion is finished by whoever runs
/// it, also after its Stage moved: handing over half-done steps could run them twice.
pub fn route(
    me: &Shard,
    promotion: &Promotion,
    stage: Option<Option<&str>>,
    arriving: bool,
) -> Route {
    let Some(stage_shard) = stage else {
        return Route::Run;
    };
    if me.owns(stage_shard) {
        return if arriving { Route::Wait } else { Route::Run };
    }
    let running = promotion.status.as_ref().and_then(|s| s.phase) == Some(PromotionPhase::Running);
    if running {
        Route::Run
    } else {
        Route::HandOver(stage_shard.map(str::to_string))
    }
}

/// `metadata.labels[kargo.akuity.io/shard]` set to `shard` (removed for `None`).
pub fn relabel_patch(shard: Option<&str>) -> serde_json::Value {
    serde_json::json!({"metadata": {"labels": {LABEL_SHARD: shard}}})
}

/// Relabels a Promotion for `shard`.
pub async fn hand_over(
    client: &kube::Client,
    p: &Promotion,
    shard: Option<&str>,
) -> Result<(), kube::Error> {
    let ns = p.namespace().unwrap_or_default();
    let api: Api<Promotion> = Api::namespaced(client.clone(), &ns);
    tracing::info!(promotion = %super::key(p), to = shard.unwrap_or("(default)"), "handing the Promotion over to its Stage's shard");
    match api
        .patch(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(relabel_patch(shard)),
        )
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Stages moved to this shard whose Promotions other shards still hold.
#[derive(Default)]
pub struct Arrivals(Mutex<HashSet<(String, String)>>);

impl Arrivals {
    pub fn contains(&self, ns: &str, name: &str) -> bool {
        self.0
            .lock()
            .map(|s| s.contains(&(ns.to_string(), name.to_string())))
            .unwrap_or(false)
    }

    /// Marks a Stage as arriving; `false` when it already was.
    pub fn begin(&self, ns: &str, name: &str) -> bool {
        self.0
            .lock()
            .map(|mut s| s.insert((ns.to_string(), name.to_string())))
            .unwrap_or(false)
    }

    fn remove(&self, ns: &str, name: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&(ns.to_string(), name.to_string()));
        }
    }
}

/// Remembers the last shard of each Stage the cache saw, to notice a Stage moving.
#[derive(Default)]
pub struct StageShards(HashMap<(String, String), Option<String>>);

/// How a Stage's shard changed for this controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    None,
    /// It became this controller's.
    In,
    /// It stopped being this controller's.
    Out,
}

impl StageShards {
    /// Records `stage`'s shard and says whether it moved in or out of `me` (a Stage seen for
    /// the first time did not move).
    pub fn observe(&mut self, me: &Shard, stage: &Stage) -> Move {
        let key = (
            stage.namespace().unwrap_or_default(),
            stage.name_any().to_string(),
        );
        let now = stage_shard(stage).map(str::to_string);
        let Some(before) = self.0.insert(key, now.clone()) else {
            return Move::None;
        };
        match (me.owns(before.as_deref()), me.owns(now.as_deref())) {
            (false, true) => Move::In,
            (true, false) => Move::Out,
            _ => Move::None,
        }
    }

    pub fn forget(&mut self, stage: &Stage) {
        self.0.remove(&(
            stage.namespace().unwrap_or_default(),
            stage.name_any().to_string(),
        ));
    }
}

/// How often an arriving Stage checks whether the other shard let go of its Promotions.
const ARRIVAL_POLL: Duration = Duration::from_secs(2);

/// For a Stage marked with [`Arrivals::begin`]: waits until no other shard holds an unfinished Promotion of Stage `ns/name` and takes its
/// finished ones over (their history drives holds and "no retry of a failed Freight"), then
/// calls `arrived`. The other shard hands over its unfinished ones itself, each once it is
/// not running it. Gives up when the Stage is no longer this shard's (`still_ours`).
pub async fn arrive(
    client: kube::Client,
    me: Shard,
    arrivals: Arc<Arrivals>,
    ns: String,
    name: String,
    still_ours: impl Fn() -> Option<Option<String>> + Send + 'static,
    arrived: impl FnOnce() + Send + 'static,
) {
    let api: Api<Promotion> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().labels(&me.foreign_selector());
    let mut waited_on: Option<String> = None;
    while let Some(target) = still_ours() {
        match api.list(&lp).await {
            Ok(list) => {
                let mut holding = None;
                // Unfinished Promotions by the shard holding them.
                let mut unfinished: std::collections::BTreeMap<Option<&str>, Vec<&Promotion>> =
                    Default::default();
                for p in list.items.iter().filter(|p| p.spec.stage == name) {
                    if p.status.as_ref().is_some_and(|s| s.is_terminal()) {
                        if let Err(e) = hand_over(&client, p, target.as_deref()).await {
                            tracing::warn!(promotion = %super::key(p), error = %e, "cannot take over a finished Promotion");
                            holding = Some(p.name_any());
                        }
                    } else {
                        unfinished.entry(promotion_shard(p)).or_default().push(p);
                    }
                }
                for (from, promotions) in unfinished {
                    let taken = match &me.takeover {
                        Some(leases) => {
                            take_from_gone(&client, leases, from, &promotions, target.as_deref())
                                .await
                        }
                        None => false,
                    };
                    if !taken {
                        holding = promotions.first().map(|p| p.name_any());
                    }
                }
                match holding {
                    None => {
                        tracing::info!(stage = %format!("{ns}/{name}"), "Stage arrived in this shard");
                        arrivals.remove(&ns, &name);
                        arrived();
                        return;
                    }
                    Some(p) if waited_on.as_deref() != Some(p.as_str()) => {
                        tracing::info!(stage = %format!("{ns}/{name}"), promotion = %p, "Stage moved to this shard; waiting for its old shard to hand over the Promotion");
                        waited_on = Some(p);
                    }
                    Some(_) => {}
                }
            }
            Err(e) => {
                tracing::warn!(stage = %format!("{ns}/{name}"), error = %e, "cannot list the Promotions of an arriving Stage");
            }
        }
        tokio::time::sleep(ARRIVAL_POLL).await;
    }
    arrivals.remove(&ns, &name);
}

/// Relabels for `target` the unfinished Promotions shard `from` holds, if its controller is
/// gone: only while this controller holds `from`'s Lease, so that no controller of `from`
/// runs them meanwhile. A Running one then resumes here as after a restart on another node
/// (steps replayed from a fresh work directory; git steps recognise their earlier commit).
/// Returns whether all were taken.
async fn take_from_gone(
    client: &kube::Client,
    leases: &takeover::Leases,
    from: Option<&str>,
    promotions: &[&Promotion],
    target: Option<&str>,
) -> bool {
    let Some(fence) = takeover::Fence::take(client, leases, from).await else {
        return false;
    };
    let mut all = true;
    for p in promotions {
        tracing::warn!(promotion = %super::key(*p), from = from.unwrap_or("(default)"), lease = fence.lease(), "the Promotion's shard controller is gone (its Lease is free or expired); taking the Promotion over");
        if let Err(e) = hand_over(client, p, target).await {
            tracing::warn!(promotion = %super::key(*p), error = %e, "cannot take over a Promotion of a gone shard");
            all = false;
        }
    }
    fence.release().await;
    all
}

#[cfg(test)]
mod tests;
