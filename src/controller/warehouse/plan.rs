//! The Warehouse reconciler's decisions, with no IO: when to discover, and, from what discovery
//! found, the next status (written once), the effects (Freight to create, Events, backoff
//! bookkeeping) and when to look again. The reconciler only reads and applies.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::super::conditions::{self, Desired};
use crate::api::{
    ANNOTATION_REFRESH, CONDITION_FREIGHT_CREATED, CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
    CONDITION_HEALTHY, CONDITION_READY, CONDITION_RECONCILING, Chart, ChartDiscoveryResult,
    DiscoveredArtifacts, Freight, FreightCreationPolicy, FreightOrigin, GitCommit,
    GitDiscoveryResult, GitSubscription, Image, ImageDiscoveryResult, LABEL_ALIAS,
    RepoSubscription, Warehouse, WarehouseStatus,
};
use crate::expressions::freight_creation_criteria_satisfied;

// ------------------------------------------------------------------------------------ the plan

/// What one reconcile does after reading: the status to write (once), the effects, the requeue.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `None` when nothing changed that needs writing (discovery is not due).
    pub status: Option<WarehouseStatus>,
    pub effects: Vec<Effect>,
    pub requeue: Requeue,
    /// One word on the outcome, for logs and tests.
    pub outcome: Outcome,
}

/// When the Warehouse is reconciled again without a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing to retry: wait for the spec (or an annotation) to change.
    AwaitChange,
    After(Duration),
}

/// What the plan asks the reconciler to do besides writing status.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Create this Freight (name, alias and label set). A conflict means it already exists.
    CreateFreight(Box<Freight>),
    /// Publish an Event about the Warehouse.
    Event(Event),
    /// Do not retry discovery before this delay (status writes re-trigger reconciles).
    RetryNotBefore(Duration),
    /// Discovery succeeded: forget earlier failures.
    ResetBackoff,
}

/// An Event about the Warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
}

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    InvalidSpec,
    NotDue,
    DiscoveryFailed,
    MissingArtifacts,
    CriteriaEvaluationFailed,
    CriteriaNotSatisfied,
    ManualPolicy,
    FreightCreated,
    FreightAlreadyExists,
    /// The API server refused (or did not answer) the Freight create.
    FreightCreateFailed,
    /// Discovery succeeded and there was nothing to record (no subscription at all).
    Ready,
}

// ---------------------------------------------------------------------------------- scheduling

/// Why (or whether) discovery runs now: a pure decision on the object and the clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Discover(&'static str),
    Wait(Duration),
}

/// [`decide`]'s reasons that come from the clock rather than from a person.
pub const INTERVAL_ELAPSED: &str = "interval elapsed";
pub const NO_DISCOVERY_RECORDED: &str = "no discovery recorded";

/// Discovery runs when nothing was discovered yet, the spec changed, a refresh was requested,
/// or the interval has elapsed since the last discovery.
pub fn decide(w: &Warehouse, interval: Duration, now: Timestamp) -> Decision {
    let Some(status) = w.status.as_ref() else {
        return Decision::Discover("first discovery");
    };
    if status.observed_generation != w.metadata.generation {
        return Decision::Discover("spec changed");
    }
    if let Some(token) = w.annotations().get(ANNOTATION_REFRESH)
        && status.last_handled_refresh.as_deref() != Some(token.as_str())
    {
        return Decision::Discover("refresh requested");
    }
    let Some(last) = status
        .discovered_artifacts
        .as_ref()
        .and_then(|d| d.discovered_at.as_ref())
    else {
        return Decision::Discover(NO_DISCOVERY_RECORDED);
    };
    let elapsed = now.duration_since(last.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    if elapsed >= interval {
        Decision::Discover(INTERVAL_ELAPSED)
    } else {
        Decision::Wait(interval - elapsed)
    }
}

/// Whether the last discovery, or the Freight create after it, failed (then retries follow
/// the backoff, see [`after_failure`]).
pub fn failed_before(w: &Warehouse) -> bool {
    w.status.as_ref().is_some_and(|s| {
        conditions::get(&s.conditions, CONDITION_HEALTHY)
            .is_some_and(|c| c.reason == "DiscoveryFailed")
            || conditions::get(&s.conditions, CONDITION_READY)
                .is_some_and(|c| c.reason == REASON_FREIGHT_CREATE_FAILED)
    })
}

/// Ready's (and FreightCreated's) reason when the Freight create failed.
pub const REASON_FREIGHT_CREATE_FAILED: &str = "FreightCreateFailed";

/// The plan to apply instead of `planned` when its Freight create failed with `error` (the
/// API server's message): what discovery found is still recorded (observedGeneration too),
/// Ready and FreightCreated say what failed, a Warning Event says it, and discovery is tried
/// again after `delay` (the backoff), which creates the Freight once the API server accepts it.
pub fn freight_create_failed(
    w: &Warehouse,
    planned: Plan,
    error: &str,
    delay: Duration,
    now: &Time,
) -> Plan {
    let generation = w.metadata.generation;
    let mut status = planned.status.unwrap_or_default();
    let name = planned
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::CreateFreight(f) => Some(f.name_any()),
            _ => None,
        })
        .unwrap_or_default();
    // Not created: the last Freight is still the one before.
    status.last_freight_id = w.status.as_ref().and_then(|s| s.last_freight_id.clone());
    let message = format!(
        "creating Freight {name} failed: {error}; {}",
        retry_note(None)
    );
    // As the Warehouse shows it now (the planned status has its Ready already replaced).
    let was = w
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, CONDITION_READY))
        .map(|c| c.message.clone());
    for type_ in [CONDITION_FREIGHT_CREATED, CONDITION_READY] {
        conditions::set(
            &mut status.conditions,
            Desired {
                type_,
                status: false,
                reason: REASON_FREIGHT_CREATE_FAILED,
                message: message.clone(),
            },
            generation,
            now,
        );
    }
    // One Event per distinct failure, not per retry (each retry is in the log).
    let mut effects = Vec::new();
    if was.as_deref() != Some(message.as_str()) {
        effects.push(Effect::Event(Event {
            warning: true,
            reason: REASON_FREIGHT_CREATE_FAILED,
            action: "CreateFreight",
            note: message,
        }));
    }
    effects.push(Effect::RetryNotBefore(delay));
    Plan {
        status: Some(status),
        effects,
        requeue: Requeue::After(delay),
        outcome: Outcome::FreightCreateFailed,
    }
}

/// [`decide`] after a failed discovery: the retry waits for `retry_wait` (the backoff, or the
/// registry's `Retry-After`), even past the interval, since the interval counts from the last
/// successful discovery. A spec change or a refresh still goes ahead: a person asked.
pub fn after_failure(
    decision: Decision,
    failed_before: bool,
    retry_wait: Option<Duration>,
) -> Decision {
    if !failed_before {
        return decision;
    }
    match (decision, retry_wait) {
        (Decision::Discover(r), Some(wait))
            if r == INTERVAL_ELAPSED || r == NO_DISCOVERY_RECORDED =>
        {
            Decision::Wait(wait)
        }
        (Decision::Wait(d), Some(wait)) => Decision::Wait(wait.min(d)),
        (Decision::Wait(_), None) => Decision::Discover("retrying after a failed discovery"),
        (d, _) => d,
    }
}

/// Discovery is not due: no status write, look again after `wait`.
pub fn not_due(wait: Duration) -> Plan {
    Plan {
        status: None,
        effects: Vec::new(),
        requeue: Requeue::After(wait),
        outcome: Outcome::NotDue,
    }
}

/// The longest `Retry-After` honoured, so a bogus header cannot park a Warehouse for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The delay before retrying a failed discovery: the backoff, but never earlier than a
/// registry's `Retry-After` (capped at [`MAX_RETRY_AFTER`]).
pub fn retry_delay(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(ra) => backoff.max(ra.min(MAX_RETRY_AFTER)),
        None => backoff,
    }
}

/// The part of a failure message that says how the next attempt is timed. It names no delay
/// of ours: the backoff grows (with jitter) on every retry, and a message that changed on every
/// retry would rewrite the status each time (the delay is in the controller's log). A
/// registry's `Retry-After` is its own value, named so that a person sees why nothing is tried.
pub fn retry_note(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(ra) if ra > MAX_RETRY_AFTER => format!(
            "retrying in {}s (the registry's Retry-After of {}s, capped)",
            MAX_RETRY_AFTER.as_secs(),
            ra.as_secs()
        ),
        Some(ra) => format!(
            "retrying in {}s at the earliest, as the registry's Retry-After asks",
            ra.as_secs().max(1)
        ),
        None => "retrying with backoff".to_string(),
    }
}

// -------------------------------------------------------------------------------- invalid spec

/// An invalid spec: `Ready=False` naming every problem, an Event when the message is new, and
/// no retry until the spec changes (no retry can fix it).
pub fn invalid_spec(w: &Warehouse, problems: &[String], now: &Time) -> Plan {
    let mut status = w.status.clone().unwrap_or_default();
    let generation = w.metadata.generation;
    let message = problems.join("; ");
    let was = conditions::get(&status.conditions, CONDITION_READY).map(|c| c.message.clone());
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_READY,
            status: false,
            reason: "InvalidSpec",
            message: message.clone(),
        },
        generation,
        now,
    );
    conditions::remove(&mut status.conditions, CONDITION_RECONCILING);
    status.observed_generation = generation;
    let mut effects = Vec::new();
    if was.as_deref() != Some(message.as_str()) {
        effects.push(Effect::Event(Event {
            warning: true,
            reason: "InvalidSpec",
            action: "Validate",
            note: message,
        }));
    }
    Plan {
        status: Some(status),
        effects,
        requeue: Requeue::AwaitChange,
        outcome: Outcome::InvalidSpec,
    }
}

// ------------------------------------------------------------------------------ after discovery

/// What discovery found, per kind in subscription order, and what failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub images: Vec<ImageDiscoveryResult>,
    pub commits: Vec<GitDiscoveryResult>,
    pub charts: Vec<ChartDiscoveryResult>,
    /// One message per failed subscription, naming it.
    pub failures: Vec<String>,
    /// The longest `Retry-After` any registry sent with a failure.
    pub retry_after: Option<Duration>,
}

impl Found {
    /// Records a failed subscription.
    pub fn failed(&mut self, message: String, retry_after: Option<Duration>) {
        self.failures.push(message);
        self.retry_after = self.retry_after.max(retry_after);
    }
}

/// What the reconciler read for the plan after discovering.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub found: Found,
    /// When discovery ended.
    pub now: Time,
    /// The next backoff delay, read only when some subscription failed.
    pub backoff: Option<Duration>,
    /// What is known of the Freight [`wanted_freight`] names, looked up by the reconciler.
    pub freight: Option<FreightLookup>,
}

/// The existing Freight of a name, and an alias no Freight of the namespace uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreightLookup {
    pub name: String,
    pub exists: bool,
    pub free_alias: String,
}

/// The outcome of `spec.freightCreationCriteria` for one discovery.
#[derive(Debug, Clone, PartialEq)]
pub enum Criteria {
    Satisfied,
    /// The expression was false; the message says what it saw.
    NotSatisfied(String),
    /// The expression failed to evaluate; the message names the field.
    Failed(String),
}

/// Evaluates the Warehouse's criteria against the latest discovery (Kargo: no expression is
/// satisfied).
pub fn check_criteria(w: &Warehouse, artifacts: &DiscoveredArtifacts) -> Criteria {
    let Some(expr) = w
        .spec
        .freight_creation_criteria
        .as_ref()
        .and_then(|c| c.expression.as_deref())
    else {
        return Criteria::Satisfied;
    };
    match freight_creation_criteria_satisfied(expr, artifacts) {
        Ok(true) => Criteria::Satisfied,
        Ok(false) => Criteria::NotSatisfied(format!(
            "Freight creation criteria were not satisfied by the newest artifacts ({}): {}",
            newest_artifacts(artifacts).join(", "),
            expr.trim()
        )),
        Err(e) => Criteria::Failed(format!(
            "Evaluation of Freight creation criteria failed: {e}"
        )),
    }
}

/// The newest artifact of every subscription, as a person reads it.
fn newest_artifacts(artifacts: &DiscoveredArtifacts) -> Vec<String> {
    let images = artifacts.images.iter().filter_map(|r| {
        r.references
            .first()
            .map(|i| format!("{}:{}", r.repo_url, i.tag))
    });
    let commits = artifacts.git.iter().filter_map(|r| {
        let c = r.commits.first()?;
        let id = c.tag.as_deref().or(c.id.as_deref())?;
        Some(format!("{}@{id}", r.repo_url))
    });
    let charts = artifacts.charts.iter().filter_map(|r| {
        let v = r.versions.first()?;
        Some(match &r.name {
            Some(n) => format!("{} {n}:{v}", r.repo_url),
            None => format!("{}:{v}", r.repo_url),
        })
    });
    images.chain(commits).chain(charts).collect()
}

/// The Freight the latest discovery describes: the newest item of every subscription.
/// `None` when some subscription found nothing.
pub fn plan_freight(
    w: &Warehouse,
    images: &[ImageDiscoveryResult],
    commits: &[GitDiscoveryResult],
    charts: &[ChartDiscoveryResult],
) -> Option<Freight> {
    let mut f = Freight::new("", FreightOrigin::warehouse(w.name_any()));
    for r in commits {
        let top = r.commits.first()?;
        f.commits.push(GitCommit {
            repo_url: Some(r.repo_url.clone()),
            id: top.id.clone(),
            branch: top.branch.clone(),
            tag: top.tag.clone(),
            message: top.subject.clone(),
            author: top.author.clone(),
            committer: top.committer.clone(),
            subscription_name: r.subscription_name.clone(),
        });
    }
    for r in images {
        let top = r.references.first()?;
        f.images.push(Image {
            repo_url: Some(r.repo_url.clone()),
            tag: Some(top.tag.clone()),
            digest: Some(top.digest.clone()),
            annotations: top.annotations.clone(),
            subscription_name: r.subscription_name.clone(),
        });
    }
    for r in charts {
        let top = r.versions.first()?;
        f.charts.push(Chart {
            repo_url: Some(r.repo_url.clone()),
            name: r.name.clone(),
            version: Some(top.clone()),
            subscription_name: r.subscription_name.clone(),
        });
    }
    if f.images.is_empty() && f.commits.is_empty() && f.charts.is_empty() {
        return None;
    }
    let id = crate::freight::freight_id(&f);
    f.metadata.name = Some(id);
    f.metadata.namespace = w.namespace();
    Some(f)
}

/// The Freight [`after_discovery`] would create, for the reconciler to look up first: only when
/// every subscription found something, creation is automatic and the criteria are satisfied.
pub fn wanted_freight(w: &Warehouse, found: &Found) -> Option<Freight> {
    if !found.failures.is_empty() || !missing_artifacts(found).is_empty() {
        return None;
    }
    if w.spec.freight_creation_policy == FreightCreationPolicy::Manual {
        return None;
    }
    if check_criteria(w, &fresh_artifacts(found, None)) != Criteria::Satisfied {
        return None;
    }
    plan_freight(w, &found.images, &found.commits, &found.charts)
}

/// One message per subscription that found nothing matching its criteria.
fn missing_artifacts(found: &Found) -> Vec<String> {
    let images = found
        .images
        .iter()
        .filter(|r| r.references.is_empty())
        .map(|r| {
            format!(
                "image subscription {} found no image matching its criteria",
                r.repo_url
            )
        });
    let commits = found
        .commits
        .iter()
        .filter(|r| r.commits.is_empty())
        .map(|r| {
            format!(
                "git subscription {} found no commit matching its criteria",
                r.repo_url
            )
        });
    let charts = found.charts.iter().filter(|r| r.versions.is_empty()).map(|r| {
        let name = r.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        match &r.semver_constraint {
            Some(c) => format!(
                "chart subscription {}{name} found no version satisfying semverConstraint {c:?}",
                r.repo_url
            ),
            None => format!(
                "chart subscription {}{name} found no semantic version",
                r.repo_url
            ),
        }
    });
    images.chain(commits).chain(charts).collect()
}

fn fresh_artifacts(found: &Found, at: Option<&Time>) -> DiscoveredArtifacts {
    DiscoveredArtifacts {
        discovered_at: at.cloned(),
        images: found.images.clone(),
        git: found.commits.clone(),
        charts: found.charts.clone(),
        results: Vec::new(),
    }
}

/// The plan once discovery ran: record what was found, report failures and empty
/// subscriptions, apply the Freight creation policy and criteria, and create Freight when the
/// newest artifacts are a combination not recorded yet.
pub fn after_discovery(w: &Warehouse, interval: Duration, observed: &Observed) -> Plan {
    let generation = w.metadata.generation;
    let t = &observed.now;
    let found = &observed.found;
    let mut status = w.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.last_handled_refresh = w.annotations().get(ANNOTATION_REFRESH).cloned();
    conditions::remove(&mut status.conditions, CONDITION_RECONCILING);
    let set = |status: &mut WarehouseStatus, type_, ok, reason, message: String| {
        conditions::set(
            &mut status.conditions,
            Desired {
                type_,
                status: ok,
                reason,
                message,
            },
            generation,
            t,
        )
    };
    let plan = |status, effects, requeue, outcome| Plan {
        status: Some(status),
        effects,
        requeue,
        outcome,
    };

    if !found.failures.is_empty() {
        let delay = retry_delay(observed.backoff.unwrap_or(interval), found.retry_after);
        let message = format!(
            "{}; {}",
            found.failures.join("; "),
            retry_note(found.retry_after)
        );
        let was = conditions::get(&status.conditions, CONDITION_HEALTHY).map(|c| c.message.clone());
        for c in [CONDITION_HEALTHY, CONDITION_READY] {
            set(&mut status, c, false, "DiscoveryFailed", message.clone());
        }
        // Keep what was discovered before for the subscriptions that failed now.
        merge_discovered(&mut status, found, t);
        // One Event per distinct failure, not per retry (each retry is in the log): a
        // Warehouse failing the same way costs no request per retry.
        let mut effects = Vec::new();
        if was.as_deref() != Some(message.as_str()) {
            effects.push(Effect::Event(Event {
                warning: true,
                reason: "DiscoveryFailed",
                action: "Discover",
                note: message,
            }));
        }
        effects.push(Effect::RetryNotBefore(delay));
        return plan(
            status,
            effects,
            Requeue::After(delay),
            Outcome::DiscoveryFailed,
        );
    }
    let mut effects = vec![Effect::ResetBackoff];
    let requeue = Requeue::After(interval);

    let artifacts = fresh_artifacts(found, Some(t));
    status.discovered_artifacts = Some(artifacts.clone());
    let missing = missing_artifacts(found);
    if !missing.is_empty() {
        let message = missing.join("; ");
        for c in [CONDITION_HEALTHY, CONDITION_READY] {
            set(&mut status, c, false, "MissingArtifacts", message.clone());
        }
        return plan(status, effects, requeue, Outcome::MissingArtifacts);
    }

    // As in Kargo, the criteria gate only automatic creation; under Manual they are not read.
    let criteria = match w.spec.freight_creation_policy {
        FreightCreationPolicy::Manual => None,
        FreightCreationPolicy::Automatic => Some(check_criteria(w, &artifacts)),
    };
    match &criteria {
        None => conditions::remove(
            &mut status.conditions,
            CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
        ),
        Some(Criteria::Satisfied) => set(
            &mut status,
            CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
            true,
            "CriteriaSatisfied",
            "Freight creation criteria satisfied".into(),
        ),
        Some(Criteria::NotSatisfied(message)) => {
            set(
                &mut status,
                CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
                false,
                "CriteriaNotSatisfied",
                message.clone(),
            );
            set(
                &mut status,
                CONDITION_FREIGHT_CREATED,
                false,
                "CriteriaNotSatisfied",
                "No Freight was created: the newest artifacts do not satisfy spec.freightCreationCriteria".into(),
            );
        }
        Some(Criteria::Failed(message)) => {
            // A broken expression stays broken until the spec changes: say so and wait for the
            // interval, never requeue hot (Kargo returns no error here for the same reason).
            conditions::remove(
                &mut status.conditions,
                CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
            );
            let was =
                conditions::get(&status.conditions, CONDITION_READY).map(|c| c.message.clone());
            for c in [CONDITION_HEALTHY, CONDITION_READY] {
                set(
                    &mut status,
                    c,
                    false,
                    "CriteriaEvaluationFailed",
                    message.clone(),
                );
            }
            if was.as_deref() != Some(message.as_str()) {
                effects.push(Effect::Event(Event {
                    warning: true,
                    reason: "CriteriaEvaluationFailed",
                    action: "EvaluateCriteria",
                    note: message.clone(),
                }));
            }
            return plan(status, effects, requeue, Outcome::CriteriaEvaluationFailed);
        }
    }

    set(
        &mut status,
        CONDITION_HEALTHY,
        true,
        "DiscoverySucceeded",
        "Artifacts discovered".into(),
    );

    let outcome = if w.spec.freight_creation_policy == FreightCreationPolicy::Manual {
        set(
            &mut status,
            CONDITION_FREIGHT_CREATED,
            false,
            "ManualPolicy",
            "freightCreationPolicy is Manual: discovered artifacts are recorded, Freight is created by a person".into(),
        );
        Outcome::ManualPolicy
    } else if let Some(Criteria::NotSatisfied(_)) = &criteria {
        Outcome::CriteriaNotSatisfied
    } else if let Some(mut freight) = plan_freight(w, &found.images, &found.commits, &found.charts)
    {
        let name = freight.name_any();
        // Without a lookup of this name, assume it exists: never create blind.
        let lookup = observed.freight.as_ref().filter(|l| l.name == name);
        let outcome = match lookup {
            Some(l) if !l.exists => {
                let message = format!("Created Freight {name} ({})", l.free_alias);
                set(
                    &mut status,
                    CONDITION_FREIGHT_CREATED,
                    true,
                    "FreightCreated",
                    message.clone(),
                );
                freight.alias = Some(l.free_alias.clone());
                freight
                    .metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(LABEL_ALIAS.to_string(), l.free_alias.clone());
                freight.discovered_at = Some(t.clone());
                effects.push(Effect::CreateFreight(Box::new(freight)));
                effects.push(Effect::Event(Event {
                    warning: false,
                    reason: "FreightCreated",
                    action: "CreateFreight",
                    note: message,
                }));
                Outcome::FreightCreated
            }
            _ => {
                set(
                    &mut status,
                    CONDITION_FREIGHT_CREATED,
                    false,
                    "AlreadyExists",
                    format!("Freight {name} for the newest artifacts already exists"),
                );
                Outcome::FreightAlreadyExists
            }
        };
        status.last_freight_id = Some(name);
        outcome
    } else {
        Outcome::Ready
    };
    set(
        &mut status,
        CONDITION_READY,
        true,
        "Ready",
        "Warehouse is ready".into(),
    );
    plan(status, effects, requeue, outcome)
}

/// The last result of git subscription `sub`, offered to discovery for its short-circuit.
/// As in Kargo, only while the spec is the one it was discovered for (a changed filter must
/// be applied, not answered from it). A result without a subscription name matches a named
/// subscription: Kargo before v1.12 did not record names.
pub fn previous_git<'a>(
    w: &'a Warehouse,
    sub: &RepoSubscription,
    spec: &GitSubscription,
) -> Option<&'a GitDiscoveryResult> {
    let status = w
        .status
        .as_ref()
        .filter(|s| s.observed_generation == w.metadata.generation)?;
    status.discovered_artifacts.as_ref()?.git.iter().find(|r| {
        r.repo_url == spec.repo_url
            && (r.subscription_name.is_none() || r.subscription_name == sub.name)
    })
}

/// Replaces the discovered artifacts of the subscriptions that succeeded, keeping the others.
fn merge_discovered(status: &mut WarehouseStatus, found: &Found, t: &Time) {
    let mut d = status.discovered_artifacts.take().unwrap_or_default();
    // An entry without a subscription name may be Kargo's (before v1.12) for a named one.
    let same = |o: &Option<String>, r: &Option<String>| o.is_none() || o == r;
    upsert(&mut d.charts, &found.charts, |o, r| {
        o.repo_url == r.repo_url
            && o.name == r.name
            && same(&o.subscription_name, &r.subscription_name)
    });
    upsert(&mut d.git, &found.commits, |o, r| {
        o.repo_url == r.repo_url && same(&o.subscription_name, &r.subscription_name)
    });
    upsert(&mut d.images, &found.images, |o, r| {
        o.repo_url == r.repo_url && same(&o.subscription_name, &r.subscription_name)
    });
    if d.discovered_at.is_none() {
        d.discovered_at = Some(t.clone());
    }
    status.discovered_artifacts = Some(d);
}

/// Replaces the entry of `list` that `same` matches with each fresh result, or appends it.
fn upsert<T: Clone>(list: &mut Vec<T>, fresh: &[T], same: impl Fn(&T, &T) -> bool) {
    for r in fresh {
        match list.iter_mut().find(|o| same(o, r)) {
            Some(o) => *o = r.clone(),
            None => list.push(r.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
