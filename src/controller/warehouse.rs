//! The Warehouse reconciler (Kargo reference §2.2): discover artifacts for every subscription,
//! select per strategy, and record new Freight when the selected combination is new.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;

use super::conditions::{self, Desired};
use super::{Context, Error, apply_status, key};
use crate::api::ImageSelectionStrategy;
use crate::api::{
    ANNOTATION_REFRESH, CONDITION_FREIGHT_CREATED, CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
    CONDITION_HEALTHY, CONDITION_READY, CONDITION_RECONCILING, Chart, ChartDiscoveryResult,
    DiscoveredArtifacts, Freight, FreightCreationPolicy, FreightOrigin, GitCommit,
    GitDiscoveryResult, Image, ImageDiscoveryResult, LABEL_ALIAS, RepoSubscription, Warehouse,
    WarehouseStatus,
};
use crate::credentials::{self, CredType};
use crate::discovery::{ChartSource, Constraint, RegistryCredentials, TagFilter};
use crate::expressions::{freight_creation_criteria_satisfied, parse_criteria};

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

/// The part of a failure message that says when the next attempt is and why.
pub fn retry_note(delay: Duration, retry_after: Option<Duration>) -> String {
    let secs = delay.as_secs().max(1);
    match retry_after {
        Some(ra) if ra > MAX_RETRY_AFTER => format!(
            "retrying in {secs}s (the registry's Retry-After of {}s, capped)",
            ra.as_secs()
        ),
        Some(ra) if ra.as_secs() >= secs => {
            format!("retrying in {secs}s, as the registry's Retry-After asks")
        }
        _ => format!("retrying in {secs}s"),
    }
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
        Ok(false) => {
            let newest: Vec<String> = artifacts
                .images
                .iter()
                .filter_map(|r| {
                    r.references
                        .first()
                        .map(|i| format!("{}:{}", r.repo_url, i.tag))
                })
                .chain(artifacts.git.iter().filter_map(|r| {
                    let c = r.commits.first()?;
                    let id = c.tag.as_deref().or(c.id.as_deref())?;
                    Some(format!("{}@{id}", r.repo_url))
                }))
                .chain(artifacts.charts.iter().filter_map(|r| {
                    let v = r.versions.first()?;
                    Some(match &r.name {
                        Some(n) => format!("{} {n}:{v}", r.repo_url),
                        None => format!("{}:{v}", r.repo_url),
                    })
                }))
                .collect();
            Criteria::NotSatisfied(format!(
                "Freight creation criteria were not satisfied by the newest artifacts ({}): {}",
                newest.join(", "),
                expr.trim()
            ))
        }
        Err(e) => Criteria::Failed(format!(
            "Evaluation of Freight creation criteria failed: {e}"
        )),
    }
}

/// Problems with a Warehouse's spec that no retry can fix, each naming the field.
pub fn validate(w: &Warehouse, min_interval: Duration) -> Result<Duration, Vec<String>> {
    let mut problems = Vec::new();
    let interval = match crate::duration::parse(&w.spec.interval) {
        Ok(d) => d.max(min_interval).max(Duration::from_secs(1)),
        Err(e) => {
            problems.push(format!("spec.interval: {e}"));
            Duration::from_secs(300)
        }
    };
    let mut seen_names = std::collections::BTreeSet::new();
    for (i, sub) in w.spec.subscriptions.iter().enumerate() {
        let at = format!("spec.subscriptions[{i}]");
        let kinds = [sub.git.is_some(), sub.image.is_some(), sub.chart.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if kinds != 1 {
            problems.push(format!(
                "{at}: exactly one of git, image or chart must be set (found {kinds})"
            ));
        }
        if let Some(name) = &sub.name
            && !seen_names.insert(name.clone())
        {
            problems.push(format!(
                "{at}.name: subscription name {name:?} is used twice"
            ));
        }
        if let Some(img) = &sub.image {
            let at = format!("{at}.image");
            if let Err(e) = TagFilter::new(&allow_regexes(img), &ignore_regexes(img)) {
                problems.push(format!("{at}: {e}"));
            }
            if img.allow_tags.is_some() || !img.ignore_tags.is_empty() {
                problems.push(format!(
                    "{at}: allowTags/ignoreTags were removed in Kargo v1.11; use allowTagsRegexes/ignoreTagsRegexes"
                ));
            }
            let strategy = &img.image_selection_strategy;
            match (
                matches!(strategy, ImageSelectionStrategy::SemVer),
                img.effective_constraint(),
            ) {
                (true, Some(c)) if !c.is_empty() => {
                    if let Err(e) = Constraint::parse(c) {
                        problems.push(format!("{at}.constraint: {e}"));
                    }
                }
                (false, None) if matches!(strategy, ImageSelectionStrategy::Digest) => problems
                    .push(format!(
                        "{at}.constraint: the Digest strategy needs the tag to track in constraint"
                    )),
                _ => {}
            }
        }
        if let Some(chart) = &sub.chart {
            problems.extend(validate_chart(chart, &format!("{at}.chart")));
        }
    }
    if let Some(expr) = w
        .spec
        .freight_creation_criteria
        .as_ref()
        .and_then(|c| c.expression.as_deref())
        && let Err(e) = parse_criteria(expr)
    {
        problems.push(e.to_string());
    }
    if problems.is_empty() {
        Ok(interval)
    } else {
        Err(problems)
    }
}

/// A chart subscription's problems (Kargo's webhook rules), each naming the field.
fn validate_chart(chart: &crate::api::ChartSubscription, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = ChartSource::of(chart) {
        let field = if e.contains("name") {
            "name"
        } else {
            "repoURL"
        };
        problems.push(format!("{at}.{field}: {e}"));
    }
    if let Some(c) = chart
        .semver_constraint
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        && let Err(e) = Constraint::parse(c)
    {
        problems.push(format!("{at}.semverConstraint: {e}"));
    }
    if !(1..=100).contains(&chart.discovery_limit) {
        problems.push(format!(
            "{at}.discoveryLimit: must be between 1 and 100 (found {})",
            chart.discovery_limit
        ));
    }
    problems
}

fn allow_regexes(img: &crate::api::ImageSubscription) -> Vec<String> {
    img.allow_tags_regexes
        .iter()
        .chain(img.allow_tags_regex.iter())
        .cloned()
        .collect()
}

fn ignore_regexes(img: &crate::api::ImageSubscription) -> Vec<String> {
    img.ignore_tags_regexes
        .iter()
        .chain(img.ignore_tags_regex.iter())
        .cloned()
        .collect()
}

/// A subscription's label in messages: its name, or its kind and repository.
pub fn describe(sub: &RepoSubscription) -> String {
    let (kind, url) = if let Some(i) = &sub.image {
        ("image", i.repo_url.as_str())
    } else if let Some(g) = &sub.git {
        ("git", g.repo_url.as_str())
    } else if let Some(c) = &sub.chart {
        ("chart", c.repo_url.as_str())
    } else {
        ("subscription", "")
    };
    match &sub.name {
        Some(n) => format!("{kind} subscription {n:?} ({url})"),
        None => format!("{kind} subscription {url}"),
    }
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
            subscription_name: r.name.clone(),
        });
    }
    for r in images {
        let top = r.references.first()?;
        f.images.push(Image {
            repo_url: Some(r.repo_url.clone()),
            tag: Some(top.tag.clone()),
            digest: Some(top.digest.clone()),
            annotations: top.annotations.clone(),
            subscription_name: r.name.clone(),
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

fn now() -> Time {
    Time(Timestamp::now())
}

async fn reconcile(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("warehouse");
    let ns = w.namespace().unwrap_or_default();
    let api: Api<Warehouse> = Api::namespaced(ctx.client.clone(), &ns);
    let k = key(w.as_ref());
    let mut status = w.status.clone().unwrap_or_default();
    let generation = w.metadata.generation;
    let t = now();

    let interval = match validate(&w, ctx.config.min_warehouse_interval) {
        Ok(i) => i,
        Err(problems) => {
            let message = problems.join("; ");
            let was =
                conditions::get(&status.conditions, CONDITION_READY).map(|c| c.message.clone());
            conditions::set(
                &mut status.conditions,
                Desired {
                    type_: CONDITION_READY,
                    status: false,
                    reason: "InvalidSpec",
                    message: message.clone(),
                },
                generation,
                &t,
            );
            conditions::remove(&mut status.conditions, CONDITION_RECONCILING);
            status.observed_generation = generation;
            apply_status(&api, w.as_ref(), &status).await?;
            if was.as_deref() != Some(message.as_str()) {
                ctx.event(
                    w.as_ref(),
                    EventType::Warning,
                    "InvalidSpec",
                    "Validate",
                    message,
                )
                .await;
            }
            // Nothing to retry: wait for the spec to change.
            return Ok(Action::await_change());
        }
    };

    // After a failed discovery, retry when the backoff is over, not only after the interval.
    let failed_before = conditions::get(&status.conditions, CONDITION_HEALTHY)
        .is_some_and(|c| c.reason == "DiscoveryFailed");
    let retry_wait = if failed_before {
        ctx.retry_wait(&k)
    } else {
        None
    };
    let reason = match after_failure(decide(&w, interval, t.0), failed_before, retry_wait) {
        Decision::Discover(r) => r,
        Decision::Wait(d) => return Ok(Action::requeue(d)),
    };
    tracing::info!(warehouse = %k, reason, "discovering artifacts");

    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_RECONCILING,
            status: true,
            reason: "Discovering",
            message: format!("Discovering artifacts ({reason})"),
        },
        generation,
        &t,
    );
    apply_status(&api, w.as_ref(), &status).await?;

    let discovery_started = std::time::Instant::now();
    // Each subscription on its own: one failing does not stop the others.
    let mut images = Vec::new();
    let mut failures = Vec::new();
    // The longest Retry-After any registry sent with a 429.
    let mut retry_after: Option<Duration> = None;
    let mut commits = Vec::new();
    let mut charts = Vec::new();
    for sub in &w.spec.subscriptions {
        if let Some(c) = &sub.chart {
            match discover_chart(&ctx, &ns, c).await {
                Ok(mut r) => {
                    r.subscription_name = sub.name.clone();
                    charts.push(r);
                }
                Err((e, ra)) => {
                    retry_after = retry_after.max(ra);
                    failures.push(format!("{}: {e}", describe(sub)));
                }
            }
            continue;
        }
        if let Some(g) = &sub.git {
            let creds = match credentials::find(
                &ctx.client,
                &ns,
                ctx.config.shared_namespace.as_deref(),
                CredType::Git,
                &g.repo_url,
            )
            .await
            {
                Ok(Some(found)) => match credentials::to_git(&found) {
                    Ok(c) => c,
                    Err(e) => {
                        failures.push(format!("{}: {e}", describe(sub)));
                        continue;
                    }
                },
                Ok(None) => crate::git::Credentials::None,
                Err(e) => {
                    failures.push(format!("{}: {e}", describe(sub)));
                    continue;
                }
            };
            let previous = status.discovered_artifacts.as_ref().and_then(|d| {
                d.git
                    .iter()
                    .find(|r| r.repo_url == g.repo_url && r.name == sub.name)
            });
            match crate::discovery::discover_commits(&ctx.git, g, &creds, previous).await {
                Ok(mut r) => {
                    r.name = sub.name.clone();
                    commits.push(r);
                }
                Err(e) => failures.push(format!("{}: {e}", describe(sub))),
            }
            continue;
        }
        let Some(img) = &sub.image else { continue };
        let creds = match credentials::find(
            &ctx.client,
            &ns,
            ctx.config.shared_namespace.as_deref(),
            CredType::Image,
            &img.repo_url,
        )
        .await
        {
            Ok(Some(found)) => match RegistryCredentials::from_secret_data(&found.data) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{}: Secret {}: {e}", describe(sub), found.secret));
                    continue;
                }
            },
            Ok(None) => None,
            Err(e) => {
                failures.push(format!("{}: {e}", describe(sub)));
                continue;
            }
        };
        match ctx.images.discover(img, creds.as_ref()).await {
            Ok(mut r) => {
                r.name = sub.name.clone();
                images.push(r);
            }
            Err(e) => {
                retry_after = retry_after.max(e.retry_after());
                failures.push(format!("{}: {e}", describe(sub)));
            }
        }
    }

    ctx.metrics
        .discovery_duration
        .observe(discovery_started.elapsed().as_secs_f64());
    let t = now();
    status.observed_generation = generation;
    status.last_handled_refresh = w.annotations().get(ANNOTATION_REFRESH).cloned();
    conditions::remove(&mut status.conditions, CONDITION_RECONCILING);

    if !failures.is_empty() {
        let delay = retry_delay(ctx.backoff(&k, interval), retry_after);
        let message = format!(
            "{}; {}",
            failures.join("; "),
            retry_note(delay, retry_after)
        );
        for c in [CONDITION_HEALTHY, CONDITION_READY] {
            conditions::set(
                &mut status.conditions,
                Desired {
                    type_: c,
                    status: false,
                    reason: "DiscoveryFailed",
                    message: message.clone(),
                },
                generation,
                &t,
            );
        }
        // Keep what was discovered before for the subscriptions that failed now.
        merge_discovered(&mut status, images, commits, charts, &t);
        apply_status(&api, w.as_ref(), &status).await?;
        ctx.event(
            w.as_ref(),
            EventType::Warning,
            "DiscoveryFailed",
            "Discover",
            message,
        )
        .await;
        ctx.retry_after(&k, delay);
        tracing::warn!(warehouse = %k, retry_in = ?delay, ?retry_after, "discovery failed");
        return Ok(Action::requeue(delay));
    }
    ctx.reset_backoff(&k);

    let empty: Vec<String> = images
        .iter()
        .filter(|r| r.references.is_empty())
        .map(|r| {
            format!(
                "image subscription {} found no image matching its criteria",
                r.repo_url
            )
        })
        .chain(commits.iter().filter(|r| r.commits.is_empty()).map(|r| {
            format!(
                "git subscription {} found no commit matching its criteria",
                r.repo_url
            )
        }))
        .chain(charts.iter().filter(|r| r.versions.is_empty()).map(|r| {
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
        }))
        .collect();
    status.discovered_artifacts = Some(DiscoveredArtifacts {
        discovered_at: Some(t.clone()),
        images: images.clone(),
        git: commits.clone(),
        charts: charts.clone(),
    });
    if !empty.is_empty() {
        let message = empty.join("; ");
        for c in [CONDITION_HEALTHY, CONDITION_READY] {
            conditions::set(
                &mut status.conditions,
                Desired {
                    type_: c,
                    status: false,
                    reason: "MissingArtifacts",
                    message: message.clone(),
                },
                generation,
                &t,
            );
        }
        apply_status(&api, w.as_ref(), &status).await?;
        return Ok(Action::requeue(interval));
    }
    // As in Kargo, the criteria gate only automatic creation; under Manual they are not read.
    let criteria = match w.spec.freight_creation_policy {
        FreightCreationPolicy::Manual => None,
        FreightCreationPolicy::Automatic => status
            .discovered_artifacts
            .as_ref()
            .map(|d| check_criteria(&w, d)),
    };
    match &criteria {
        None => conditions::remove(
            &mut status.conditions,
            CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
        ),
        Some(Criteria::Satisfied) => conditions::set(
            &mut status.conditions,
            Desired {
                type_: CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
                status: true,
                reason: "CriteriaSatisfied",
                message: "Freight creation criteria satisfied".into(),
            },
            generation,
            &t,
        ),
        Some(Criteria::NotSatisfied(message)) => {
            conditions::set(
                &mut status.conditions,
                Desired {
                    type_: CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED,
                    status: false,
                    reason: "CriteriaNotSatisfied",
                    message: message.clone(),
                },
                generation,
                &t,
            );
            conditions::set(
                &mut status.conditions,
                Desired {
                    type_: CONDITION_FREIGHT_CREATED,
                    status: false,
                    reason: "CriteriaNotSatisfied",
                    message: "No Freight was created: the newest artifacts do not satisfy spec.freightCreationCriteria".into(),
                },
                generation,
                &t,
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
                conditions::set(
                    &mut status.conditions,
                    Desired {
                        type_: c,
                        status: false,
                        reason: "CriteriaEvaluationFailed",
                        message: message.clone(),
                    },
                    generation,
                    &t,
                );
            }
            apply_status(&api, w.as_ref(), &status).await?;
            if was.as_deref() != Some(message.as_str()) {
                ctx.event(
                    w.as_ref(),
                    EventType::Warning,
                    "CriteriaEvaluationFailed",
                    "EvaluateCriteria",
                    message.clone(),
                )
                .await;
            }
            return Ok(Action::requeue(interval));
        }
    }

    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_HEALTHY,
            status: true,
            reason: "DiscoverySucceeded",
            message: "Artifacts discovered".into(),
        },
        generation,
        &t,
    );

    if w.spec.freight_creation_policy == FreightCreationPolicy::Manual {
        conditions::set(
            &mut status.conditions,
            Desired { type_: CONDITION_FREIGHT_CREATED, status: false, reason: "ManualPolicy", message: "freightCreationPolicy is Manual: discovered artifacts are recorded, Freight is created by a person".into() },
            generation,
            &t,
        );
    } else if let Some(Criteria::NotSatisfied(_)) = &criteria {
        tracing::info!(warehouse = %k, "freight creation criteria not satisfied; no Freight created");
    } else if let Some(freight) = plan_freight(&w, &images, &commits, &charts) {
        let name = freight.name_any();
        match create_freight(&ctx, &ns, freight).await? {
            Created::New(alias) => {
                conditions::set(
                    &mut status.conditions,
                    Desired {
                        type_: CONDITION_FREIGHT_CREATED,
                        status: true,
                        reason: "FreightCreated",
                        message: format!("Created Freight {name} ({alias})"),
                    },
                    generation,
                    &t,
                );
                ctx.event(
                    w.as_ref(),
                    EventType::Normal,
                    "FreightCreated",
                    "CreateFreight",
                    format!("Created Freight {name} ({alias})"),
                )
                .await;
            }
            Created::AlreadyExists => {
                conditions::set(
                    &mut status.conditions,
                    Desired {
                        type_: CONDITION_FREIGHT_CREATED,
                        status: false,
                        reason: "AlreadyExists",
                        message: format!("Freight {name} for the newest artifacts already exists"),
                    },
                    generation,
                    &t,
                );
            }
        }
        status.last_freight_id = Some(name);
    }
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_READY,
            status: true,
            reason: "Ready",
            message: "Warehouse is ready".into(),
        },
        generation,
        &t,
    );
    apply_status(&api, w.as_ref(), &status).await?;
    Ok(Action::requeue(interval))
}

/// Replaces the discovered artifacts of the subscriptions that succeeded, keeping the others.
fn merge_discovered(
    status: &mut WarehouseStatus,
    fresh: Vec<ImageDiscoveryResult>,
    fresh_git: Vec<GitDiscoveryResult>,
    fresh_charts: Vec<ChartDiscoveryResult>,
    t: &Time,
) {
    let mut d = status.discovered_artifacts.take().unwrap_or_default();
    upsert(&mut d.charts, fresh_charts, |o, r| {
        o.repo_url == r.repo_url && o.name == r.name && o.subscription_name == r.subscription_name
    });
    upsert(&mut d.git, fresh_git, |o, r| {
        o.repo_url == r.repo_url && o.name == r.name
    });
    upsert(&mut d.images, fresh, |o, r| {
        o.repo_url == r.repo_url && o.name == r.name
    });
    if d.discovered_at.is_none() {
        d.discovered_at = Some(t.clone());
    }
    status.discovered_artifacts = Some(d);
}

/// Replaces the entry of `list` that `same` matches with each fresh result, or appends it.
fn upsert<T>(list: &mut Vec<T>, fresh: Vec<T>, same: impl Fn(&T, &T) -> bool) {
    for r in fresh {
        match list.iter_mut().find(|o| same(o, &r)) {
            Some(o) => *o = r,
            None => list.push(r),
        }
    }
}

/// Finds the subscription's `helm` credentials and discovers its versions. The error carries
/// the repository's `Retry-After`, if any.
async fn discover_chart(
    ctx: &Context,
    ns: &str,
    c: &crate::api::ChartSubscription,
) -> Result<ChartDiscoveryResult, (String, Option<Duration>)> {
    let creds = match credentials::find(
        &ctx.client,
        ns,
        ctx.config.shared_namespace.as_deref(),
        CredType::Helm,
        &c.repo_url,
    )
    .await
    {
        Ok(Some(found)) => match RegistryCredentials::from_secret_data(&found.data) {
            Ok(c) => c,
            Err(e) => return Err((format!("Secret {}: {e}", found.secret), None)),
        },
        Ok(None) => None,
        Err(e) => return Err((e.to_string(), None)),
    };
    crate::discovery::discover_chart(&ctx.images, c, creds.as_ref())
        .await
        .map_err(|e| {
            let ra = e.retry_after();
            (e.to_string(), ra)
        })
}

enum Created {
    New(String),
    AlreadyExists,
}

/// Creates the Freight with an alias unique in the namespace. The name is the content hash, so
/// a restarted controller that discovers the same artifacts gets `AlreadyExists`, never a
/// duplicate.
async fn create_freight(ctx: &Context, ns: &str, mut f: Freight) -> Result<Created, Error> {
    let api: Api<Freight> = Api::namespaced(ctx.client.clone(), ns);
    if api.get_opt(&f.name_any()).await?.is_some() {
        return Ok(Created::AlreadyExists);
    }
    let mut alias = crate::freight::generate_alias();
    for _ in 0..10 {
        let taken = api
            .list_metadata(
                &ListParams::default()
                    .labels(&format!("{LABEL_ALIAS}={alias}"))
                    .limit(1),
            )
            .await?;
        if taken.items.is_empty() {
            break;
        }
        alias = crate::freight::generate_alias();
    }
    f.alias = Some(alias.clone());
    f.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_ALIAS.to_string(), alias.clone());
    f.discovered_at = Some(now());
    match api.create(&PostParams::default(), &f).await {
        Ok(_) => Ok(Created::New(alias)),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Created::AlreadyExists),
        Err(e) => Err(e.into()),
    }
}

fn error_policy(w: Arc<Warehouse>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed("warehouse");
    let k = key(w.as_ref());
    let delay = ctx.backoff(&k, Duration::from_secs(300));
    tracing::warn!(warehouse = %k, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the Warehouse controller until the stream ends.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<Warehouse> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "warehouse controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DiscoveredImageReference, FreightCreationCriteria};

    fn warehouse(expression: Option<&str>) -> Warehouse {
        let mut w: Warehouse = serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "w", "namespace": "p", "generation": 1},
            "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/api"}}]},
        }))
        .expect("warehouse");
        w.spec.freight_creation_criteria = expression.map(|e| FreightCreationCriteria {
            expression: Some(e.to_string()),
        });
        w
    }

    fn discovered(tag: &str) -> DiscoveredArtifacts {
        DiscoveredArtifacts {
            images: vec![ImageDiscoveryResult {
                repo_url: "ghcr.io/acme/api".into(),
                references: vec![DiscoveredImageReference {
                    tag: tag.into(),
                    digest: "sha256:00".into(),
                    ..DiscoveredImageReference::default()
                }],
                ..ImageDiscoveryResult::default()
            }],
            ..DiscoveredArtifacts::default()
        }
    }

    #[test]
    fn retry_after_sets_a_floor_under_the_backoff() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(s(10), None), s(10));
        assert_eq!(retry_delay(s(10), Some(s(120))), s(120));
        assert_eq!(retry_delay(s(300), Some(s(5))), s(300));
        assert_eq!(retry_delay(s(10), Some(s(86_400))), MAX_RETRY_AFTER);
        assert_eq!(
            retry_note(s(120), Some(s(120))),
            "retrying in 120s, as the registry's Retry-After asks"
        );
        assert_eq!(retry_note(s(300), Some(s(5))), "retrying in 300s");
        assert!(retry_note(MAX_RETRY_AFTER, Some(s(86_400))).contains("86400s, capped"));
        assert_eq!(retry_note(s(9), None), "retrying in 9s");
    }

    #[test]
    fn a_pending_retry_holds_even_when_the_interval_elapsed() {
        let s = Duration::from_secs;
        let elapsed = Decision::Discover(INTERVAL_ELAPSED);
        // Throttled: the registry's wait wins over the interval.
        assert_eq!(
            after_failure(elapsed.clone(), true, Some(s(90))),
            Decision::Wait(s(90))
        );
        // No failure before: the clock decides as usual.
        assert_eq!(after_failure(elapsed.clone(), false, Some(s(90))), elapsed);
        // A person asked: go ahead.
        let spec = Decision::Discover("spec changed");
        assert_eq!(after_failure(spec.clone(), true, Some(s(90))), spec);
        // Before the interval: the retry comes after the backoff, not only after the interval.
        assert_eq!(
            after_failure(Decision::Wait(s(600)), true, Some(s(20))),
            Decision::Wait(s(20))
        );
        assert_eq!(
            after_failure(Decision::Wait(s(600)), true, None),
            Decision::Discover("retrying after a failed discovery")
        );
        assert_eq!(
            after_failure(Decision::Wait(s(600)), false, None),
            Decision::Wait(s(600))
        );
    }

    #[test]
    fn criteria_outcomes() {
        let d = discovered("1.4.0");
        assert_eq!(check_criteria(&warehouse(None), &d), Criteria::Satisfied);
        assert_eq!(
            check_criteria(
                &warehouse(Some("imageFrom('ghcr.io/acme/api').Tag startsWith '1.'")),
                &d
            ),
            Criteria::Satisfied
        );
        match check_criteria(
            &warehouse(Some("imageFrom('ghcr.io/acme/api').Tag == '2.0.0'")),
            &d,
        ) {
            Criteria::NotSatisfied(m) => {
                assert!(m.contains("ghcr.io/acme/api:1.4.0"), "{m}");
                assert!(m.contains("== '2.0.0'"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match check_criteria(&warehouse(Some("imageFrom('ghcr.io/x').Tag == '1'")), &d) {
            Criteria::Failed(m) => assert!(
                m.contains("spec.freightCreationCriteria.expression")
                    && m.contains("cannot fetch Tag"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    fn chart_warehouse(chart: serde_json::Value) -> Warehouse {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "w", "namespace": "p", "generation": 1},
            "spec": {"subscriptions": [{"name": "c", "chart": chart}]},
        }))
        .expect("warehouse")
    }

    #[test]
    fn chart_subscriptions_are_validated_like_kargo() {
        let ok = chart_warehouse(serde_json::json!({
            "repoURL": "oci://ghcr.io/acme/charts/api", "semverConstraint": "^1.0"
        }));
        assert!(validate(&ok, Duration::ZERO).is_ok());
        for (chart, want) in [
            (
                serde_json::json!({"repoURL": "https://charts.example.com"}),
                "spec.subscriptions[0].chart.name: name is required",
            ),
            (
                serde_json::json!({"repoURL": "oci://ghcr.io/acme/api", "name": "api"}),
                "spec.subscriptions[0].chart.name: name must be empty",
            ),
            (
                serde_json::json!({"repoURL": "oci://ghcr.io/acme/api", "semverConstraint": ">>1"}),
                "spec.subscriptions[0].chart.semverConstraint: ",
            ),
        ] {
            let problems = validate(&chart_warehouse(chart), Duration::ZERO)
                .err()
                .unwrap_or_default();
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want}: {problems:?}"
            );
        }
    }

    #[test]
    fn planned_freight_takes_the_newest_chart_version() {
        let w = chart_warehouse(serde_json::json!({"repoURL": "oci://ghcr.io/acme/charts/api"}));
        let charts = vec![ChartDiscoveryResult {
            repo_url: "oci://ghcr.io/acme/charts/api".into(),
            versions: vec!["1.2.0".into(), "1.1.0".into()],
            subscription_name: Some("c".into()),
            ..ChartDiscoveryResult::default()
        }];
        let f = plan_freight(&w, &[], &[], &charts).expect("freight");
        assert_eq!(f.charts.len(), 1);
        assert_eq!(f.charts[0].version.as_deref(), Some("1.2.0"));
        assert_eq!(f.charts[0].subscription_name.as_deref(), Some("c"));
        assert_eq!(f.name_any(), crate::freight::freight_id(&f));
        let empty = vec![ChartDiscoveryResult {
            versions: vec![],
            ..charts[0].clone()
        }];
        assert!(plan_freight(&w, &[], &[], &empty).is_none());
    }

    #[test]
    fn a_criteria_syntax_error_is_an_invalid_spec() {
        let problems = validate(&warehouse(Some("imageFrom('x').Tag ==")), Duration::ZERO)
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.freightCreationCriteria.expression: "),
            "{problems:?}"
        );
        assert!(validate(&warehouse(Some("true")), Duration::ZERO).is_ok());
    }
}
