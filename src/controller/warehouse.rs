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
    ANNOTATION_REFRESH, CONDITION_FREIGHT_CREATED, CONDITION_HEALTHY, CONDITION_READY,
    CONDITION_RECONCILING, DiscoveredArtifacts, Freight, FreightCreationPolicy, FreightOrigin,
    GitCommit, GitDiscoveryResult, Image, ImageDiscoveryResult, LABEL_ALIAS, RepoSubscription,
    Warehouse, WarehouseStatus,
};
use crate::credentials::{self, CredType};
use crate::discovery::{Constraint, RegistryCredentials, TagFilter};

/// Why (or whether) discovery runs now: a pure decision on the object and the clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Discover(&'static str),
    Wait(Duration),
}

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
        return Decision::Discover("no discovery recorded");
    };
    let elapsed = now.duration_since(last.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    if elapsed >= interval {
        Decision::Discover("interval elapsed")
    } else {
        Decision::Wait(interval - elapsed)
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
        if sub.chart.is_some() {
            problems.push(format!(
                "{at}.chart: chart subscriptions are not supported by haul yet"
            ));
        }
    }
    if problems.is_empty() {
        Ok(interval)
    } else {
        Err(problems)
    }
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
    if f.images.is_empty() && f.commits.is_empty() {
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
    let reason = match decide(&w, interval, t.0) {
        Decision::Discover(r) => r,
        Decision::Wait(d) if !failed_before => return Ok(Action::requeue(d)),
        Decision::Wait(d) => match ctx.retry_wait(&k) {
            Some(wait) => return Ok(Action::requeue(wait.min(d))),
            None => "retrying after a failed discovery",
        },
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
    let mut commits = Vec::new();
    for sub in &w.spec.subscriptions {
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
            Err(e) => failures.push(format!("{}: {e}", describe(sub))),
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
        let message = failures.join("; ");
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
        merge_discovered(&mut status, images, commits, &t);
        apply_status(&api, w.as_ref(), &status).await?;
        ctx.event(
            w.as_ref(),
            EventType::Warning,
            "DiscoveryFailed",
            "Discover",
            message,
        )
        .await;
        let delay = ctx.backoff(&k, interval);
        ctx.retry_after(&k, delay);
        tracing::warn!(warehouse = %k, retry_in = ?delay, "discovery failed");
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
        .collect();
    status.discovered_artifacts = Some(DiscoveredArtifacts {
        discovered_at: Some(t.clone()),
        images: images.clone(),
        git: commits.clone(),
        ..status.discovered_artifacts.take().unwrap_or_default()
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
    } else if let Some(freight) = plan_freight(&w, &images, &commits) {
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

/// Replaces the discovered images of the subscriptions that succeeded, keeping the others.
fn merge_discovered(
    status: &mut WarehouseStatus,
    fresh: Vec<ImageDiscoveryResult>,
    fresh_git: Vec<GitDiscoveryResult>,
    t: &Time,
) {
    let mut d = status.discovered_artifacts.take().unwrap_or_default();
    for r in fresh_git {
        match d
            .git
            .iter_mut()
            .find(|o| o.repo_url == r.repo_url && o.name == r.name)
        {
            Some(o) => *o = r,
            None => d.git.push(r),
        }
    }
    for r in fresh {
        match d
            .images
            .iter_mut()
            .find(|o| o.repo_url == r.repo_url && o.name == r.name)
        {
            Some(o) => *o = r,
            None => d.images.push(r),
        }
    }
    if d.discovered_at.is_none() {
        d.discovered_at = Some(t.clone());
    }
    status.discovered_artifacts = Some(d);
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
