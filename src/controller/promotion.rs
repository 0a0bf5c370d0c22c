//! The Promotion reconciler (Kargo reference §2.5): one Promotion runs per Stage, the others
//! wait in creation order; steps are fixed when it starts and run one at a time, with the
//! status saved after every step, so a restarted controller resumes where it stopped.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;

use super::promotion_phases::{self, PhaseClock};
use super::{Context, Error, apply_status, apply_status_returning, key, within_deadline};
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_CREATE_ACTOR, ANNOTATION_REFRESH, ClusterPromotionTask, Freight,
    FreightCollection, Promotion, PromotionPhase, PromotionStatus, PromotionTask, Stage,
    StepStatus,
};
use crate::expressions::{PromotionContext, TargetFreight};
use crate::promotion::engine::{self, Progress};
use crate::promotion::inflate::{self, TaskKind, Tasks};
use crate::promotion::steps::{ClusterCredentials, CredentialsProvider, StepEnv, StepError};

fn now() -> Time {
    Time(Timestamp::now())
}

/// The Promotions of one Stage in queue order: Running first, then the rest by creation time
/// (and name, which Kargo makes sortable with a ULID).
pub fn queue_order<P: AsRef<Promotion>>(mut promos: Vec<P>) -> Vec<P> {
    let running = |p: &Promotion| {
        p.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|ph| ph == PromotionPhase::Running)
    };
    promos.retain(|p| !p.as_ref().status.as_ref().is_some_and(|s| s.is_terminal()));
    promos.sort_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        running(b)
            .cmp(&running(a))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    promos
}

/// The work directory of one Promotion (per UID, so a recreated Promotion starts clean).
fn work_dir(ctx: &Context, p: &Promotion) -> PathBuf {
    ctx.config.work_root.join("promotions").join(format!(
        "promotion-{}",
        p.uid().unwrap_or_else(|| p.name_any())
    ))
}

/// The `kargo.akuity.io/refresh` token on `p` that its status does not echo yet.
fn unhandled_refresh(p: &Promotion) -> Option<&String> {
    p.annotations().get(ANNOTATION_REFRESH).filter(|t| {
        p.status
            .as_ref()
            .and_then(|s| s.last_handled_refresh.as_ref())
            != Some(*t)
    })
}

/// Writes a Promotion's status and tells the cache which phase it now has. The refresh token
/// on the Promotion is echoed in `status.lastHandledRefresh`, as Kargo does on every reconcile.
async fn write_status(
    ctx: &Context,
    api: &Api<Promotion>,
    p: &Promotion,
    status: &PromotionStatus,
) -> Result<(), Error> {
    let mut status = status.clone();
    if let Some(token) = p.annotations().get(ANNOTATION_REFRESH) {
        status.last_handled_refresh = Some(token.clone());
    }
    let status = &status;
    let written = apply_status_returning(api, p, status)
        .await
        .map_err(|e| match e {
            Error::Kube(source) => Error::Failed {
                reason: "StatusWriteFailed",
                what: "writing the Promotion's status".into(),
                source,
            },
            other => other,
        })?;
    ctx.cache.wrote_phase(p, status.phase);
    ctx.cache.written_promotions.remember(written);
    Ok(())
}

/// Publishes an Event about `p` (whose status is now `status`) with Kargo's
/// `event.kargo.akuity.io/*` annotations; its Freight is read for them, best effort.
async fn promotion_event(
    ctx: &Context,
    p: &Promotion,
    status: &PromotionStatus,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let mut now_p = p.clone();
    now_p.status = Some(status.clone());
    let ns = p.namespace().unwrap_or_default();
    let freight = match p.spec.freight.as_deref() {
        Some(name) if !name.is_empty() => match ctx.cache.freight(&ns, name) {
            Some(cached) => Some(cached.as_ref().clone()),
            None => Api::<Freight>::namespaced(ctx.client.clone(), &ns)
                .get_opt(name)
                .await
                .ok()
                .flatten(),
        },
        _ => None,
    };
    let annotations = crate::event_annotations::promotion(
        &now_p,
        freight.as_ref(),
        crate::stages::candidates::CONTROLLER_ACTOR,
    );
    ctx.event_annotated(p, type_, reason, action, note, annotations)
        .await;
}

async fn fail_before_start(
    ctx: &Context,
    api: &Api<Promotion>,
    p: &Promotion,
    phase: PromotionPhase,
    message: String,
) -> Result<Action, Error> {
    let mut status = p.status.clone().unwrap_or_default();
    status.phase = Some(phase);
    status.message = Some(message.clone());
    status.finished_at = Some(now());
    write_status(ctx, api, p, &status).await?;
    promotion_event(
        ctx,
        p,
        &status,
        EventType::Warning,
        &format!("Promotion{phase:?}"),
        "Promote",
        message,
    )
    .await;
    Ok(Action::await_change())
}

/// The prefix of `status.message` while a reconcile error is shown there; the next reconcile
/// that gets past it puts the regular message back.
const RETRY_NOTE: &str = "Retrying after an error";

async fn reconcile(obj: Arc<Promotion>, ctx: Arc<Context>) -> Result<Action, Error> {
    // A Promotion follows its Stage's shard (see `super::shard`).
    match ctx.cache.route(&ctx.config.shard, &obj) {
        super::shard::Route::Run => {}
        super::shard::Route::Wait => return Ok(Action::await_change()),
        super::shard::Route::HandOver(to) => {
            super::shard::hand_over(&ctx.client, &obj, to.as_deref())
                .await
                .map_err(Error::failed(
                    "HandOverFailed",
                    "handing the Promotion over to its Stage's shard",
                ))?;
            return Ok(Action::await_change());
        }
    }
    let out = within_deadline(&ctx, "promotion", reconcile_once(obj.clone(), ctx.clone())).await;
    if let Err(e) = &out {
        // Bounded: the API server may be what fails.
        let show = show_error(&ctx, &obj, e);
        if tokio::time::timeout(Duration::from_secs(10), show)
            .await
            .is_err()
        {
            tracing::debug!(promotion = %key(obj.as_ref()), "cannot show the error on the Promotion");
        }
    }
    out
}

/// Puts a reconcile error on a Promotion that is not finished: its `status.message` (Kargo's
/// Promotion has no conditions) and a Warning Event with the error's reason.
async fn show_error(ctx: &Context, obj: &Promotion, e: &Error) {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Promotion> = Api::namespaced(ctx.client.clone(), &ns);
    let Ok(Some(p)) = api.get_opt(&obj.name_any()).await else {
        return;
    };
    if p.status.as_ref().is_some_and(|s| s.is_terminal()) {
        return;
    }
    let message = format!("{RETRY_NOTE} ({}): {e}", e.reason());
    let mut status = p.status.clone().unwrap_or_default();
    if status.message.as_deref() != Some(message.as_str()) {
        status.message = Some(message.clone());
        if let Err(w) = apply_status(&api, &p, &status).await {
            tracing::debug!(promotion = %key(&p), error = %w, "cannot write the error to the Promotion");
        }
    }
    ctx.event(&p, EventType::Warning, e.reason(), "Reconcile", message)
        .await;
}

/// How often a queued Promotion looks at its queue without being triggered.
const QUEUED_RECHECK: Duration = Duration::from_secs(30);

/// The message of a Promotion waiting for others of its Stage to finish.
pub fn queued_message(stage: &str) -> String {
    format!("Waiting in the queue of Stage {stage} for the Promotions ahead of it to finish")
}

/// The regular message of a Promotion whose status shows a reconcile error.
fn without_retry_note(status: &mut PromotionStatus) {
    if status
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with(RETRY_NOTE))
    {
        status.message = Some(format!("Running {} step(s)", status.steps.len()));
    }
}

async fn reconcile_once(obj: Arc<Promotion>, ctx: Arc<Context>) -> Result<Action, Error> {
    let reconcile_started = std::time::Instant::now();
    let mut clock = PhaseClock::start();
    let _timer = ctx.metrics.reconcile("promotion");
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Promotion> = Api::namespaced(ctx.client.clone(), &ns);
    // The cache may lag behind our own status writes, and re-running a finished step would
    // repeat a side effect: the store's copy only when it shows this process's last write
    // (see `own_writes`), else read fresh.
    let p = match ctx.cache.written_promotions.freshest(&obj) {
        Some(p) => p.as_ref().clone(),
        None => match api
            .get_opt(&obj.name_any())
            .await
            .map_err(Error::failed("ReadFailed", "reading the Promotion"))?
        {
            Some(p) => p,
            None => return Ok(Action::await_change()),
        },
    };
    let k = key(&p);
    if p.status.as_ref().is_some_and(|s| s.is_terminal()) {
        let dir = work_dir(&ctx, &p);
        if dir.exists() {
            clean_work_dir(&ctx, &dir).await;
        }
        return Ok(Action::await_change());
    }
    if p.annotations().contains_key(ANNOTATION_ABORT) {
        return abort(&ctx, &api, &p).await;
    }

    // One Promotion per Stage at a time, in creation order.
    let stage_name = p.spec.stage.clone();
    let lock = ctx.stage_lock(&format!("{ns}/{stage_name}"));
    let _guard = lock.lock().await;
    // The Stage's Promotions from the cache (with the phases this process wrote that it does
    // not show yet); listed live only when the cache is not running.
    let queue = match ctx.cache.stage_promotions(&p) {
        Some(of_stage) => queue_order(of_stage),
        None => {
            let all = api
                .list(&ListParams::default())
                .await
                .map_err(Error::failed(
                    "ReadFailed",
                    "listing the Stage's Promotions",
                ))?;
            queue_order(
                all.items
                    .into_iter()
                    .filter(|o| o.spec.stage == stage_name)
                    .map(Arc::new)
                    .collect(),
            )
        }
    };
    if let Some(pos) = queue.iter().position(|o| o.uid() == p.uid())
        && pos > 0
    {
        let mut status = p.status.clone().unwrap_or_default();
        // Stable while it waits, so a queued Promotion is written once when it becomes
        // Pending and once when it starts: naming the head or the position would rewrite every
        // queued Promotion whenever one ahead finishes (Kargo writes no message at all). The
        // Stage's `currentPromotion` names the head; `haul get promotions` shows the position.
        let message = queued_message(&stage_name);
        if status.phase != Some(PromotionPhase::Pending)
            || status.message.as_deref() != Some(&message)
            || unhandled_refresh(&p).is_some()
        {
            status.phase = Some(PromotionPhase::Pending);
            status.message = Some(message);
            write_status(&ctx, &api, &p, &status).await?;
        }
        // The Promotion ahead re-triggers the queue when it finishes (`Caches::start`); this
        // is the safety net.
        return Ok(Action::requeue(QUEUED_RECHECK));
    }

    let mut status = p.status.clone().unwrap_or_default();
    without_retry_note(&mut status);
    let stages: Api<Stage> = Api::namespaced(ctx.client.clone(), &ns);
    // From the cache; read live when it does not have the Stage (yet), before refusing.
    let cached = ctx
        .cache
        .stage(&ns, &stage_name)
        .map(|s| s.as_ref().clone());
    let stage = match cached {
        Some(s) => Some(s),
        None => stages.get_opt(&stage_name).await.map_err(Error::failed(
            "StageReadFailed",
            format!("reading Stage {stage_name}"),
        ))?,
    };
    let Some(stage) = stage else {
        return fail_before_start(
            &ctx,
            &api,
            &p,
            PromotionPhase::Errored,
            format!("Stage {stage_name} does not exist in project {ns}"),
        )
        .await;
    };
    if !matches!(status.phase, Some(PromotionPhase::Running)) {
        if let Some(created) = &p.metadata.creation_timestamp {
            clock.add("queue", promotion_phases::since(&created.0));
        }
        match start(&ctx, &ns, &p, &stage, &mut status).await {
            Ok(()) => {}
            Err(Refusal { phase, message }) => {
                return fail_before_start(&ctx, &api, &p, phase, message).await;
            }
        }
        clock.lap("prepare");
        write_status(&ctx, &api, &p, &status).await?;
        clock.lap("status");
        // No Event for the start (Kargo publishes none; the terminal phase has one): one
        // request per Promotion less.
        tracing::info!(promotion = %k, freight = ?p.spec.freight, "began promotion");
    }

    let dir = work_dir(&ctx, &p);
    if !dir.exists() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Setup(format!("creating {}: {e}", dir.display())))?;
        // A new work dir after a restart on another node: earlier steps' files are gone, so
        // run from the first step again, keeping their outputs. git-commit and git-push
        // recognise this Promotion's earlier commit, so nothing is committed or pushed twice.
        if status.current_step.unwrap_or(0) > 0 {
            tracing::info!(promotion = %k, "work directory missing; replaying steps from the start");
            status.current_step = Some(0);
            for m in &mut status.step_execution_metadata {
                m.status = None;
                m.started_at = None;
                m.finished_at = None;
            }
        }
    }

    let freight = status.freight_collection.clone().unwrap_or_default();
    let target = status.freight.clone().unwrap_or_default();
    let actor = p
        .annotations()
        .get(ANNOTATION_CREATE_ACTOR)
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    let pctx = PromotionContext {
        project: ns.clone(),
        stage: stage_name.clone(),
        promotion: p.name_any(),
        target_freight: TargetFreight {
            name: target.name.clone().unwrap_or_default(),
            alias: String::new(),
            origin: target
                .origin
                .clone()
                .unwrap_or_else(|| crate::api::FreightOrigin::warehouse("")),
        },
        actor: actor.clone(),
        ..Default::default()
    };
    let promotion_name = p.name_any();
    let credentials = MemoCredentials::new(ClusterCredentials {
        client: &ctx.client,
        project: &ns,
        shared_namespace: ctx.config.shared_namespace.as_deref(),
    });
    let git_user = super::git_user::resolve(
        &ctx.client,
        ctx.cache.cluster_config(),
        ctx.config.system_namespace.as_deref(),
        &ctx.config.git_author,
        &ctx.config.git_signing_key,
    )
    .await?;
    let env = StepEnv {
        client: Some(&ctx.client),
        argocd_namespace: Some(&ctx.config.argocd_namespace),
        credentials: &credentials,
        push_allowed: true,
        runner: "the controller",
        git: &ctx.git,
        work_dir: &dir,
        project: &ns,
        shared_namespace: ctx.config.shared_namespace.as_deref(),
        stage: &stage_name,
        promotion: &promotion_name,
        actor: &actor,
        freight: &freight,
        author: &git_user.author,
        signing_key: &git_user.signing_key,
        previous_output: None,
    };
    let steps = status.steps.clone();
    let vars = status.vars.clone();
    clock.lap("prepare");
    loop {
        let index = status.current_step.unwrap_or(0).max(0) as usize;
        let started = std::time::Instant::now();
        let (progress, git_times) = crate::git::timing::measured(engine::step_once(
            &steps,
            &vars,
            &pctx,
            &mut status,
            &env,
        ))
        .await;
        let uses = steps
            .get(index)
            .and_then(|s| s.uses.clone())
            .unwrap_or_default();
        if let Some(meta) = status.step_execution_metadata.get(index) {
            ctx.metrics
                .step_duration
                .get_or_create(&crate::metrics::StepLabel {
                    step: uses.clone(),
                    status: meta.status.map(|s| format!("{s:?}")).unwrap_or_default(),
                })
                .observe(started.elapsed().as_secs_f64());
        }
        if index < steps.len() {
            clock.lap(&format!("step/{uses}"));
            clock.add_git(&git_times);
        }
        match progress {
            Progress::Continue => {
                // Long Promotions continue in the next reconcile, well within its deadline
                // (the status is saved, so nothing is repeated).
                let go_on = reconcile_started.elapsed() <= ctx.config.reconcile_deadline / 2;
                // A step whose effects stay in the work dir is replayed after a restart
                // anyway, and after the last step the final write follows at once: saving
                // the status then would only cost a write.
                let last = index + 1 >= steps.len();
                if !go_on || !(last || crate::promotion::steps::registry::replays_locally(&uses)) {
                    write_status(&ctx, &api, &p, &status).await?;
                    clock.lap("status");
                }
                // A user may abort between steps (the annotation is in the cache within a
                // watch event's time).
                let fresh = match ctx.cache.promotion(&p) {
                    Some(cached) => ctx
                        .cache
                        .written_promotions
                        .freshest(&cached)
                        .map(|p| p.as_ref().clone()),
                    None => api
                        .get_opt(&p.name_any())
                        .await
                        .map_err(Error::failed("ReadFailed", "reading the Promotion"))?,
                };
                if let Some(mut fresh) = fresh
                    && fresh.annotations().contains_key(ANNOTATION_ABORT)
                {
                    // This status is newer than the stored one when the last write was
                    // skipped.
                    fresh.status = Some(status.clone());
                    return abort(&ctx, &api, &fresh).await;
                }
                if !go_on {
                    return Ok(Action::requeue(Duration::ZERO));
                }
            }
            Progress::Wait(d) => {
                write_status(&ctx, &api, &p, &status).await?;
                return Ok(Action::requeue(d));
            }
            // The controller's environment withholds nothing, so no step is ever stopped; were
            // one, waiting for a change beats retrying it hot.
            Progress::Stopped(why) => {
                tracing::error!(promotion = %p.name_any(), %why, "a step needs what the controller lacks");
                write_status(&ctx, &api, &p, &status).await?;
                return Ok(Action::await_change());
            }
            Progress::Done(phase, message) => {
                status.phase = Some(phase);
                status.message = Some(message.clone());
                status.finished_at = Some(now());
                write_status(&ctx, &api, &p, &status).await?;
                clock.lap("status");
                record_phases(&ctx, &k, &clock);
                ctx.metrics
                    .promotions
                    .get_or_create(&crate::metrics::PhaseLabel {
                        phase: format!("{phase:?}"),
                    })
                    .inc();
                let type_ = if phase == PromotionPhase::Succeeded {
                    EventType::Normal
                } else {
                    EventType::Warning
                };
                promotion_event(
                    &ctx,
                    &p,
                    &status,
                    type_,
                    &format!("Promotion{phase:?}"),
                    "Promote",
                    message,
                )
                .await;
                clean_work_dir(&ctx, &dir).await;
                return Ok(Action::await_change());
            }
        }
    }
}

/// Exports a finished promotion's phase times and logs them in one line.
fn record_phases(ctx: &Context, promotion: &str, clock: &PhaseClock) {
    for (phase, d) in clock.phases() {
        ctx.metrics
            .promotion_phase
            .get_or_create(&crate::metrics::PromotionPhaseLabel {
                phase: phase.clone(),
            })
            .observe(d.as_secs_f64());
    }
    tracing::info!(
        %promotion,
        started_unix_ms = clock.started_unix_ms() as u64,
        finished_unix_ms = promotion_phases::unix_ms() as u64,
        phases = %clock.summary(),
        "promotion phases"
    );
}

/// Git credentials looked up once per repository for all steps of one reconcile (a lookup
/// lists Secrets from the API server).
struct MemoCredentials<'a> {
    inner: ClusterCredentials<'a>,
    git: tokio::sync::Mutex<HashMap<String, crate::git::Credentials>>,
}

impl<'a> MemoCredentials<'a> {
    fn new(inner: ClusterCredentials<'a>) -> Self {
        Self {
            inner,
            git: Default::default(),
        }
    }
}

impl CredentialsProvider for MemoCredentials<'_> {
    fn git<'a>(
        &'a self,
        repo_url: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<crate::git::Credentials, StepError>> {
        Box::pin(async move {
            let mut memo = self.git.lock().await;
            if let Some(c) = memo.get(repo_url) {
                return Ok(c.clone());
            }
            let c = self.inner.git(repo_url).await?;
            memo.insert(repo_url.to_string(), c.clone());
            Ok(c)
        })
    }

    fn registry<'a>(
        &'a self,
        cred_type: crate::credentials::CredType,
        repo_url: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<Option<crate::credentials::FoundCredentials>, StepError>,
    > {
        self.inner.registry(cred_type, repo_url)
    }
}

/// Removes a finished Promotion's work directory, unregistering its git worktrees from the
/// shared cache first so their registrations (and per-worktree indexes, large for large
/// repositories) do not pile up there.
async fn clean_work_dir(ctx: &Context, dir: &std::path::Path) {
    for (path, repo) in crate::promotion::steps::worktrees(dir) {
        if let Ok(wt) = ctx.git.open_worktree(&repo, &path).await
            && let Err(e) = wt.remove().await
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove git worktree");
        }
    }
    if dir.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Why a Promotion cannot start.
struct Refusal {
    phase: PromotionPhase,
    message: String,
}

/// Checks the Freight is available to the Stage and fixes the steps, vars and Freight.
async fn start(
    ctx: &Context,
    ns: &str,
    p: &Promotion,
    stage: &Stage,
    status: &mut PromotionStatus,
) -> Result<(), Refusal> {
    let errored = |message: String| Refusal {
        phase: PromotionPhase::Errored,
        message,
    };
    let failed = |message: String| Refusal {
        phase: PromotionPhase::Failed,
        message,
    };
    let Some(freight_name) = p.spec.freight.clone() else {
        return Err(failed(
            "spec.freight is not set (resolving spec.origin to Freight is not supported yet)"
                .into(),
        ));
    };
    // From the cache; a refusal is final, so it is only made on a live read (the cache may
    // not show the Freight, or its verification or approval, yet).
    let cached = ctx
        .cache
        .freight(ns, &freight_name)
        .filter(|f| crate::availability::check(stage, f, Timestamp::now()).is_ok());
    let freight = match cached {
        Some(f) => f.as_ref().clone(),
        None => {
            let freights: Api<Freight> = Api::namespaced(ctx.client.clone(), ns);
            let freight = match freights.get_opt(&freight_name).await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    return Err(failed(format!(
                        "Freight {freight_name} does not exist in project {ns}"
                    )));
                }
                Err(e) => return Err(errored(format!("reading Freight {freight_name}: {e}"))),
            };
            crate::availability::check(stage, &freight, Timestamp::now())
                .map_err(|e| failed(e.to_string()))?;
            freight
        }
    };

    let (steps, vars) = if !p.spec.steps.is_empty() {
        (p.spec.steps.clone(), p.spec.vars.clone())
    } else {
        let Some(template) = stage.spec.promotion_template.as_ref().map(|t| &t.spec) else {
            return Err(failed(format!(
                "Stage {} has no promotionTemplate steps",
                stage.name_any()
            )));
        };
        let mut tasks = Tasks::default();
        for (kind, name) in inflate::task_references(template) {
            let spec = match kind {
                TaskKind::Namespaced => Api::<PromotionTask>::namespaced(ctx.client.clone(), ns)
                    .get_opt(&name)
                    .await
                    .map(|t| t.map(|t| t.spec)),
                TaskKind::Cluster => Api::<ClusterPromotionTask>::all(ctx.client.clone())
                    .get_opt(&name)
                    .await
                    .map(|t| t.map(|t| t.spec.into())),
            };
            let spec = spec.map_err(|e| errored(format!("reading task {name}: {e}")))?;
            if let Some(spec) = spec {
                tasks.tasks.insert((kind, name), spec);
            }
        }
        let vars: Vec<_> = stage
            .spec
            .vars
            .iter()
            .chain(template.vars.iter())
            .cloned()
            .collect();
        let steps = inflate::inflate(template, &vars, &tasks)
            .map_err(|e| failed(format!("Stage {} promotionTemplate: {e}", stage.name_any())))?;
        (steps, vars)
    };
    let reference = freight.to_reference();
    let mut items = BTreeMap::new();
    // Freight of the Stage's other origins stays what the Stage has now.
    if let Some(current) = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
    {
        items.extend(current.items.clone());
    }
    items.insert(freight.origin.to_string(), reference.clone());
    let names: Vec<String> = items.values().filter_map(|f| f.name.clone()).collect();
    status.phase = Some(PromotionPhase::Running);
    status.message = Some(format!("Running {} step(s)", steps.len()));
    status.started_at = Some(now());
    status.freight = Some(reference);
    status.freight_collection = Some(FreightCollection {
        id: collection_id(&names),
        items,
        verification_history: Vec::new(),
    });
    status.steps = steps;
    status.vars = vars;
    status.current_step = Some(0);
    Ok(())
}

/// Kargo's FreightCollection ID: SHA-1 of the sorted Freight names joined with ",".
fn collection_id(names: &[String]) -> String {
    use sha1::{Digest, Sha1};
    let mut sorted = names.to_vec();
    sorted.sort();
    Sha1::digest(sorted.join(",").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn abort(ctx: &Context, api: &Api<Promotion>, p: &Promotion) -> Result<Action, Error> {
    let mut status = p.status.clone().unwrap_or_default();
    for m in &mut status.step_execution_metadata {
        if m.status == Some(StepStatus::Running) {
            m.status = Some(StepStatus::Aborted);
            m.finished_at = Some(now());
        }
    }
    status.phase = Some(PromotionPhase::Aborted);
    status.message = Some("Promotion aborted by request (kargo.akuity.io/abort)".into());
    status.finished_at = Some(now());
    write_status(ctx, api, p, &status).await?;
    promotion_event(
        ctx,
        p,
        &status,
        EventType::Normal,
        "PromotionAborted",
        "Abort",
        "Promotion aborted".into(),
    )
    .await;
    clean_work_dir(ctx, &work_dir(ctx, p)).await;
    Ok(Action::await_change())
}

fn error_policy(p: Arc<Promotion>, err: &Error, ctx: Arc<Context>) -> Action {
    let (_, delay) =
        super::retry_after_failure(&ctx, "promotion", p.as_ref(), err, Duration::from_secs(120));
    Action::requeue(delay)
}

/// Runs the Promotion controller. A Promotion that finishes re-triggers the others of its
/// Stage through the watch on Promotions itself; a change to an Argo CD Application
/// re-triggers the Running Promotions of the Stages it authorises, so argocd-update sees a
/// finished sync at once instead of at its next poll.
pub async fn run(ctx: Arc<Context>) {
    use crate::api::argocd::Application;
    use kube::runtime::reflector::ObjectRef;
    // Driven from the shared Promotion cache (which the queue check reads) when it runs.
    let live = ctx.liveness.clone();
    let controller = match ctx.cache.promotion_triggers() {
        Some((store, changes)) => {
            // A change waiting to be reconciled: /healthz fails if the queue stops draining.
            let queued = live.clone();
            let changes = changes.inspect(move |_| queued.triggered("promotion"));
            Controller::for_shared_stream(changes, store)
        }
        None => Controller::new(
            Api::<Promotion>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
    };
    let apps: Api<Application> = Api::all(ctx.client.clone());
    let argocd_installed = apps
        .list_metadata(&ListParams::default().limit(1))
        .await
        .is_ok();
    let controller = if argocd_installed {
        let store = controller.store();
        controller.watches(apps, watcher::Config::default(), move |app: Application| {
            let targets: Vec<(String, String)> = crate::argocd::authorized_stage::listed_on(&app)
                .into_iter()
                .map(|s| (s.project, s.stage))
                .collect();
            store
                .state()
                .into_iter()
                .filter(|p| {
                    p.status.as_ref().and_then(|s| s.phase) == Some(PromotionPhase::Running)
                        && targets.iter().any(|(proj, st)| {
                            p.namespace().as_deref() == Some(proj.as_str()) && p.spec.stage == *st
                        })
                })
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
    } else {
        tracing::info!("Argo CD Application CRD not found; argocd-update steps will poll");
        controller
    };
    let results = controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drive("promotion", live, results).await;
}

/// A per-Stage mutex map.
#[derive(Default)]
pub struct StageLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl StageLocks {
    pub fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.0.lock() {
            Ok(mut m) => m.entry(key.to_string()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}
