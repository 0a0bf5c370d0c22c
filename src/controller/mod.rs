//! The reconcilers and what they share. Each reconciler reads like the Kargo reference section
//! it implements: read → validate → plan (pure) → apply (IO) → status.

pub mod analysis;
pub mod cluster_config;
pub mod conditions;
pub mod git_user;
pub mod identity;
pub mod liveness;
pub mod ns_index;
pub mod own_writes;
pub mod progress;
pub mod project;
pub mod project_config;
pub mod promotion;
pub mod promotion_phases;
pub mod shard;
pub mod stage;
pub mod warehouse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::api::{Freight, ProjectConfig, Promotion, PromotionPhase, Stage, Warehouse};
use crate::discovery::{DiscovererConfig, ImageDiscoverer};

/// The field manager haul writes status with (server-side apply).
pub const FIELD_MANAGER: &str = "haul-controller";

/// Settings that are not part of any object.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where Secrets shared by every project live (Kargo's SHARED_RESOURCES_NAMESPACE).
    pub shared_namespace: Option<String>,
    /// Where Secrets of cluster-level resources live (ClusterConfig's signing key and webhook
    /// receivers; Kargo's SYSTEM_RESOURCES_NAMESPACE).
    pub system_namespace: Option<String>,
    /// The install-time signing key of the default author (GITCLIENT_SIGNING_KEY_PATH), or why
    /// it could not be read; ClusterConfig `gitClient` takes precedence.
    pub git_signing_key: crate::promotion::steps::env::DefaultSigningKey,
    /// A floor under every Warehouse's `spec.interval` (Kargo's MIN_WAREHOUSE_RECONCILIATION_INTERVAL).
    pub min_warehouse_interval: Duration,
    /// First retry delay after a failed discovery; doubled per consecutive failure.
    pub error_backoff_base: Duration,
    /// Where promotion work directories and the git cache live.
    pub work_root: std::path::PathBuf,
    /// Author of promotion commits when a step names none (Kargo's GITCLIENT_NAME/EMAIL).
    pub git_author: crate::git::Author,
    /// Namespace of Argo CD Applications when a step names none.
    pub argocd_namespace: String,
    /// How long one reconcile may take before it is cut off with `DeadlineExceeded`.
    pub reconcile_deadline: Duration,
    /// The ClusterRoles each project's `kargo-admin`, `kargo-promoter` and `kargo-viewer`
    /// ServiceAccounts are bound to; `None`: no default project roles.
    pub project_roles: Option<project::plan::ProjectRoles>,
    /// How long a Project's namespace-and-roles sync is trusted before it is redone (a deleted
    /// default RoleBinding or ServiceAccount comes back within this).
    pub project_resync: Duration,
    /// Which objects this controller is responsible for (Kargo's SHARD_NAME and
    /// IS_DEFAULT_CONTROLLER); see [`shard`].
    pub shard: shard::Shard,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            shared_namespace: None,
            system_namespace: None,
            git_signing_key: Ok(None),
            min_warehouse_interval: Duration::ZERO,
            error_backoff_base: Duration::from_secs(10),
            work_root: std::env::temp_dir().join("haul"),
            git_author: crate::git::Author::default(),
            argocd_namespace: "argocd".into(),
            reconcile_deadline: DEFAULT_RECONCILE_DEADLINE,
            project_roles: Some(project::plan::ProjectRoles::default()),
            project_resync: project::DEFAULT_RESYNC,
            shard: shard::Shard::default(),
        }
    }
}

/// The default of [`Config::reconcile_deadline`]: far above any healthy reconcile (a
/// Promotion's long steps return `Wait` rather than block), short enough that a hung one is
/// seen.
pub const DEFAULT_RECONCILE_DEADLINE: Duration = Duration::from_secs(120);

/// Everything a reconcile needs.
pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub config: Config,
    pub images: ImageDiscoverer,
    pub git: crate::git::RepoCache,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Progress of watches and queues, for `/healthz` (see [`liveness`]); it reads
    /// `progress` too.
    pub liveness: Arc<liveness::Liveness>,
    /// When each controller last finished a reconcile and which are running (for liveness).
    pub progress: Arc<progress::Progress>,
    /// Caches of the objects the Stage reconciler reads for a whole project on every pass;
    /// reading them from memory instead of listing them keeps that pass cheap as Freight grows.
    pub cache: Caches,
    /// When each Project last synced its namespace and roles (see [`project`]).
    pub project_synced: project::SyncedAt,
    stage_locks: promotion::StageLocks,
    /// Consecutive failures per object, for backoff that grows and resets.
    failures: Mutex<HashMap<String, u32>>,
    /// When each failed object may be retried; status writes re-trigger reconciles, so the
    /// backoff is enforced here rather than only by the requeue delay.
    retry_at: Mutex<HashMap<String, std::time::Instant>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        config: Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Arc<Self>, Error> {
        Self::new_with(client, config, metrics, Arc::default())
    }

    /// As [`Context::new`], recording progress into `liveness` (shared with `/healthz`).
    pub fn new_with(
        client: kube::Client,
        config: Config,
        metrics: Arc<crate::metrics::Metrics>,
        liveness: Arc<liveness::Liveness>,
    ) -> Result<Arc<Self>, Error> {
        let images = ImageDiscoverer::new(DiscovererConfig::from_env())
            .map_err(|e| Error::Setup(e.to_string()))?;
        let git = crate::git::RepoCache::new(config.work_root.join("git-cache"))
            .map_err(|e| Error::Setup(e.to_string()))?;
        let reporter = Reporter {
            controller: "haul".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let progress: Arc<progress::Progress> = Arc::default();
        liveness.attach_progress(progress.clone());
        Ok(Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            images,
            git,
            metrics,
            liveness,
            progress,
            cache: Caches::default(),
            project_synced: project::SyncedAt::default(),
            stage_locks: promotion::StageLocks::default(),
            failures: Mutex::new(HashMap::new()),
            retry_at: Mutex::new(HashMap::new()),
        }))
    }

    /// Records a failure of `key` and returns the delay before the next try: the base delay
    /// doubled per consecutive failure, capped at `cap`, with ±20% jitter so many failing
    /// objects do not retry in lockstep.
    pub fn backoff(&self, key: &str, cap: Duration) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let base = self.config.error_backoff_base.as_secs_f64() * 2f64.powi(n.min(16) as i32 - 1);
        let capped = base.min(cap.as_secs_f64().max(1.0));
        Duration::from_secs_f64(capped * (0.8 + 0.4 * fastrand::f64()))
    }

    /// The mutex that serialises Promotions of one Stage (`<namespace>/<stage>`).
    pub fn stage_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.stage_locks.get(key)
    }

    /// Remembers when `key` may be retried after a failure.
    pub fn retry_after(&self, key: &str, delay: Duration) {
        if let Ok(mut r) = self.retry_at.lock() {
            r.insert(key.to_string(), std::time::Instant::now() + delay);
        }
    }

    /// How long until `key` may be retried; `None` when it may be retried now (also when this
    /// process has no record, e.g. after a restart).
    pub fn retry_wait(&self, key: &str) -> Option<Duration> {
        let r = self.retry_at.lock().ok()?;
        let at = *r.get(key)?;
        at.checked_duration_since(std::time::Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Forgets failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
        if let Ok(mut r) = self.retry_at.lock() {
            r.remove(key);
        }
    }

    /// Publishes an Event about `obj` with Kargo's `event.kargo.akuity.io/*` `annotations`
    /// ([`crate::event_annotations`]). The recorder cannot annotate, so an annotated Event is
    /// created as the recorder would create it, without its series aggregation (each such Event
    /// reports one distinct outcome). Failures are logged, never fatal.
    pub async fn event_annotated<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        annotations: std::collections::BTreeMap<String, String>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        if annotations.is_empty() {
            return self.event(obj, type_, reason, action, note).await;
        }
        use k8s_openapi::api::events::v1::Event as K8sEvent;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let reference: ObjectReference = obj.object_ref(&());
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event = K8sEvent {
            metadata: kube::api::ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    reference.name.clone().unwrap_or_else(|| "haul".into()),
                    now.as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                annotations: Some(annotations),
                ..Default::default()
            },
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference),
            reporting_controller: Some("haul".into()),
            reporting_instance: Some(std::env::var("POD_NAME").unwrap_or_else(|_| "haul".into())),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }

    /// Publishes an Event about `obj`; failures to publish are logged, never fatal.
    pub async fn event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let reference: ObjectReference = obj.object_ref(&());
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Credentials(#[from] crate::credentials::CredentialsError),
    #[error("setting up: {0}")]
    Setup(String),
    #[error("serialising status: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A call the reconcile needed failed; `reason` names which (a condition reason).
    #[error("{what}: {}", api_message(source))]
    Failed {
        reason: &'static str,
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the reconcile did not finish within {0:?}")]
    DeadlineExceeded(Duration),
}

/// The reason of [`Error::DeadlineExceeded`], on conditions, Events and the error metric.
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

impl Error {
    /// A short CamelCase reason for conditions, Events and the error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesAPIError",
            Error::Credentials(_) => "CredentialsError",
            Error::Setup(_) => "SetupError",
            Error::Serialize(_) => "SerializeError",
            Error::Failed { reason, .. } => reason,
            Error::DeadlineExceeded(_) => REASON_DEADLINE_EXCEEDED,
        }
    }

    /// Wraps a failed API call: `what` says what was being done, `reason` names it.
    pub fn failed(
        reason: &'static str,
        what: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Error::Failed {
            reason,
            what,
            source,
        }
    }
}

/// What the API server said (its Status message), or the client's error when it said nothing:
/// the part of a failure a person can act on.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Runs one reconcile of `controller` under [`Config::reconcile_deadline`], recording it in
/// [`Context::progress`]. Past the deadline the reconcile is dropped (its next step is not
/// taken) and [`Error::DeadlineExceeded`] returned.
pub async fn within_deadline<T>(
    ctx: &Context,
    controller: &'static str,
    reconcile: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    run_within(
        &ctx.progress,
        controller,
        ctx.config.reconcile_deadline,
        reconcile,
    )
    .await
}

/// [`within_deadline`] without a Context.
async fn run_within<T>(
    progress: &progress::Progress,
    controller: &'static str,
    deadline: Duration,
    reconcile: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let r = progress.reconcile_started(controller);
    let out = tokio::time::timeout(deadline, reconcile).await;
    progress.reconcile_finished(r);
    out.unwrap_or(Err(Error::DeadlineExceeded(deadline)))
}

/// A failed reconcile of `obj` by `controller`: counted by reason, logged, and retried after
/// the object's backoff (capped at `cap`). The error_policy every controller shares.
pub fn retry_after_failure<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    controller: &'static str,
    obj: &K,
    err: &Error,
    cap: Duration,
) -> (String, Duration) {
    ctx.metrics.reconcile_failed(controller, err.reason());
    let k = key(obj);
    let delay = ctx.backoff(&k, cap);
    tracing::warn!(controller, object = %k, reason = err.reason(), error = %err, retry_in = ?delay, "reconcile failed");
    (k, delay)
}

/// Drives a controller's result stream until it ends. Every item tells /healthz that this
/// controller's watch and queue are moving; errors of the stream itself are logged at debug
/// (reconcile errors were already logged by the error policy).
pub async fn drive<S, T, R, Q>(controller: &'static str, live: Arc<liveness::Liveness>, stream: S)
where
    S: futures::Stream<Item = Result<T, kube::runtime::controller::Error<R, Q>>>,
    R: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    use futures::StreamExt;
    stream
        .for_each(|res| {
            live.controller_item(controller, &res);
            if let Err(e) = res {
                tracing::debug!(controller, error = %e, "controller event");
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    #[tokio::test]
    async fn a_reconcile_past_its_deadline_is_cut_off_and_recorded() {
        let p = progress::Progress::default();
        let d = Duration::from_millis(20);
        let out: Result<(), Error> = run_within(&p, "stage", d, std::future::pending()).await;
        let err = out.expect_err("cut off");
        assert_eq!(err.reason(), REASON_DEADLINE_EXCEEDED);
        assert_eq!(err.to_string(), "the reconcile did not finish within 20ms");
        assert!(p.oldest_in_flight().is_none());
        assert!(p.last_finished("stage").is_some());

        let ok = run_within(&p, "promotion", d, async { Ok::<_, Error>(7) }).await;
        assert_eq!(ok.ok(), Some(7));
    }
}

/// Writes `status` of `obj` with server-side apply under haul's field manager.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    apply_status_returning(api, obj, status).await.map(|_| ())
}

/// [`apply_status`], returning the object as written.
pub async fn apply_status_returning<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    Ok(api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?)
}

/// `<namespace>/<name>` of an object, for keys and messages.
pub fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Reflector stores of Freight, Stages, Warehouses and Promotions, filled by [`Caches::start`].
/// The Stage and Promotion controllers are driven from these same stores, so a change that
/// triggers a reconcile is always in the store it reads.
#[derive(Default)]
pub struct Caches {
    /// Shared with the watch callbacks, which read the stores when a Stage changes shard.
    stores: Arc<std::sync::OnceLock<CacheStores>>,
    /// Stages moved to this shard that wait for their old shard to let go (see [`shard`]).
    arrivals: Arc<shard::Arrivals>,
    triggers: Mutex<Option<Triggers>>,
    /// Promotions this process created that the store may not show yet: auto-promotion must
    /// see them at once or it could create a second one.
    created: Mutex<Vec<(std::time::Instant, Arc<Promotion>)>>,
    /// The last phase this process wrote per Promotion UID, until the store shows it: the queue
    /// of a Stage must not wait behind a Promotion this process has just finished.
    phases: Mutex<HashMap<String, (std::time::Instant, Option<PromotionPhase>)>>,
    /// Stages and Promotions as this process's own status writes returned them, until the
    /// stores show them: reconciles read from the stores and still see their own writes.
    pub written_stages: own_writes::OwnWrites<Stage>,
    pub written_promotions: own_writes::OwnWrites<Promotion>,
}

/// How long an overlay entry may wait for the store before it is dropped (a Promotion deleted
/// before its watch event arrived, or a store that is not being updated).
const OVERLAY_TTL: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct CacheStores {
    freights: Store<Freight>,
    stages: Store<Stage>,
    warehouses: Store<Warehouse>,
    promotions: Store<Promotion>,
    project_configs: Store<ProjectConfig>,
    /// Read by every Promotion for its default git author.
    cluster_configs: Store<crate::api::ClusterConfig>,
    /// The namespaced stores' objects by namespace (see [`ns_index`]).
    by_ns: ByNamespaces,
}

#[derive(Clone, Default)]
struct ByNamespaces {
    freights: ns_index::ByNamespace,
    stages: ns_index::ByNamespace,
    warehouses: ns_index::ByNamespace,
    promotions: ns_index::ByNamespace,
}

/// Changes seen by the stores, sent after the store has them; each can be taken once.
struct Triggers {
    /// Stages to reconcile: those of a namespace requesting Freight of an origin (Freight of
    /// it changed), or all of it (`None`: its ProjectConfig changed).
    freight: UnboundedReceiver<(String, Option<crate::api::FreightOrigin>)>,
    /// Changed Stages (drive the Stage controller).
    stages: UnboundedReceiver<ObjectRef<Stage>>,
    /// Changed Promotions (drive the Promotion controller).
    promotions: UnboundedReceiver<ObjectRef<Promotion>>,
    /// Stages of changed Promotions.
    promotion_stages: UnboundedReceiver<ObjectRef<Stage>>,
    /// Namespaces of changed Stages and Warehouses (their Project's stats).
    projects: UnboundedReceiver<String>,
}

/// Drops what no reconciler reads before an object is stored: managedFields and kubectl's
/// last-applied copy are often larger than the rest of the object.
fn slim<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What happened to an object a shared cache watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Listed when the watch (re)started.
    Listed,
    Applied,
    Deleted,
}

fn reflect<K>(
    client: &kube::Client,
    labels: Option<String>,
    watch: liveness::WatchTracker,
    index: Option<ns_index::ByNamespace>,
    mut on_change: impl FnMut(&K, Change) + Send + 'static,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    let mut config = kube::runtime::watcher::Config::default();
    // Selected on the API server: a shard does not even receive other shards' objects.
    if let Some(l) = labels {
        config = config.labels(&l);
    }
    let stream = kube::runtime::reflector(
        writer,
        kube::runtime::watcher(Api::<K>::all(client.clone()), config).modify(slim::<K>),
    )
    .default_backoff()
    // Every event and relist marks the watch working, every error (retried with backoff) down.
    .inspect(move |item| watch.observe(item));
    tokio::spawn(async move {
        use kube::runtime::watcher::Event;
        stream
            .for_each(|event| {
                // The index first: a change is announced once reads can see it.
                let (o, change) = match event {
                    Ok(Event::Apply(o)) => (o, Change::Applied),
                    Ok(Event::InitApply(o)) => (o, Change::Listed),
                    Ok(Event::Delete(o)) => (o, Change::Deleted),
                    _ => return std::future::ready(()),
                };
                if let Some(i) = &index {
                    i.observe(&o, change != Change::Deleted);
                }
                on_change(&o, change);
                std::future::ready(())
            })
            .await;
    });
    reader
}

/// The Promotion of `p`'s Stage that runs next now that `p` finished or is gone (the head of
/// the rest of its queue), from its project's Promotions in the store; the others keep
/// waiting, so only it is triggered. None before [`Caches::start`] has finished.
fn next_in_queue(
    stores: &std::sync::OnceLock<CacheStores>,
    p: &Promotion,
) -> Option<ObjectRef<Promotion>> {
    let s = stores.get()?;
    let ns = p.metadata.namespace.as_deref()?;
    let rest: Vec<Arc<Promotion>> = s
        .by_ns
        .promotions
        .get(&s.promotions, ns)
        .into_iter()
        .filter(|q| q.spec.stage == p.spec.stage && q.metadata.uid != p.metadata.uid)
        .collect();
    promotion::queue_order(rest)
        .first()
        .map(|q| ObjectRef::from_obj(q.as_ref()))
}

/// How long Freight changes are gathered before the Stages they concern are triggered: a burst
/// (a Warehouse's first discovery, a bulk apply, a Stage patching several Freight) then costs
/// each Stage one pass instead of one per Freight, for at most this much more latency.
const FREIGHT_COALESCE: Duration = Duration::from_millis(200);

/// The next Freight changes of `rx` (a namespace and an origin, `None`: all of it): the first
/// one, and all that arrive within [`FREIGHT_COALESCE`] after it, without repeats. `None` when
/// the channel is closed.
async fn coalesced(
    rx: &mut UnboundedReceiver<(String, Option<crate::api::FreightOrigin>)>,
) -> Option<std::collections::BTreeSet<(String, Option<crate::api::FreightOrigin>)>> {
    let first = rx.recv().await?;
    let mut changes = std::collections::BTreeSet::from([first]);
    tokio::time::sleep(FREIGHT_COALESCE).await;
    // Bounded, so that a flood cannot hold the Stages back indefinitely.
    for _ in 0..100_000 {
        match rx.try_recv() {
            Ok(more) => changes.insert(more),
            Err(_) => break,
        };
    }
    Some(changes)
}

/// A stream of the objects `rx` names, as the store holds them now (gone ones are skipped).
fn from_store<K>(
    rx: UnboundedReceiver<ObjectRef<K>>,
    store: Store<K>,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    use futures::StreamExt;
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
        .filter_map(move |r| futures::future::ready(store.get(&r)))
}

fn send<T>(tx: &UnboundedSender<T>, v: T) {
    // A closed channel means its controller is gone; the store stays useful.
    let _ = tx.send(v);
}

impl Caches {
    /// Starts the watches and waits until each store has its first complete list.
    /// Promotions are selected by `me`'s shard label; Stages, Warehouses and Freight are
    /// watched whole (see [`shard`]).
    pub async fn start(
        &self,
        client: &kube::Client,
        live: &Arc<liveness::Liveness>,
        me: &shard::Shard,
    ) {
        let (freight_tx, freight) = unbounded_channel();
        let (stage_tx, stages) = unbounded_channel();
        let (promo_tx, promotions) = unbounded_channel();
        let on_stage_move = self.on_stage_move(client, me, &stage_tx, &promo_tx);
        let arrive_at_start = self.on_stage_move(client, me, &stage_tx, &promo_tx);
        let mut seen = shard::StageShards::default();
        let me_too = me.clone();
        let (promo_stage_tx, promotion_stages) = unbounded_channel();
        let (project_tx, projects) = unbounded_channel();
        let project_of_warehouse = project_tx.clone();
        let config_tx = freight_tx.clone();
        let (stores_of_queue, queue_tx) = (self.stores.clone(), promo_tx.clone());
        if let Ok(mut slot) = self.triggers.lock() {
            *slot = Some(Triggers {
                freight,
                stages,
                promotions,
                promotion_stages,
                projects,
            });
        }
        let by_ns = ByNamespaces::default();
        let stores = CacheStores {
            freights: reflect(
                client,
                None,
                live.watch("freights (shared cache)"),
                Some(by_ns.freights.clone()),
                move |f: &Freight, change| {
                    if change != Change::Deleted {
                        let ns = f.metadata.namespace.clone().unwrap_or_default();
                        send(&freight_tx, (ns, Some(f.origin.clone())))
                    }
                },
            ),
            stages: reflect(
                client,
                None,
                live.watch("stages (shared cache)"),
                Some(by_ns.stages.clone()),
                // A deleted Stage changes its project's stats too.
                move |s: &Stage, change| {
                    if change != Change::Deleted {
                        let moved = seen.observe(&me_too, s);
                        // An arriving Stage is triggered once it has arrived.
                        if !on_stage_move(s, moved) {
                            send(&stage_tx, ObjectRef::from_obj(s));
                        }
                    } else {
                        seen.forget(s);
                    }
                    send(
                        &project_tx,
                        s.metadata.namespace.clone().unwrap_or_default(),
                    );
                },
            ),
            warehouses: reflect(
                client,
                None,
                live.watch("warehouses (shared cache)"),
                Some(by_ns.warehouses.clone()),
                move |w: &Warehouse, _| {
                    send(
                        &project_of_warehouse,
                        w.metadata.namespace.clone().unwrap_or_default(),
                    )
                },
            ),
            promotions: reflect(
                client,
                me.label_selector(),
                live.watch("promotions (shared cache)"),
                Some(by_ns.promotions.clone()),
                move |p: &Promotion, change| {
                    // The queue of its Stage moves on at once (not at the queued ones' requeue).
                    // Not for a listing: every Promotion is reconciled after one anyway.
                    let finished = p.status.as_ref().is_some_and(|s| s.is_terminal());
                    if (change == Change::Deleted || (change == Change::Applied && finished))
                        && let Some(next) = next_in_queue(&stores_of_queue, p)
                    {
                        send(&queue_tx, next);
                    }
                    if change == Change::Deleted {
                        return;
                    }
                    send(&promo_tx, ObjectRef::from_obj(p));
                    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
                    send(
                        &promo_stage_tx,
                        ObjectRef::<Stage>::new(&p.spec.stage).within(ns),
                    );
                },
            ),
            // The Stage reconciler reads its project's promotion policies from here.
            project_configs: reflect(
                client,
                None,
                live.watch("projectconfigs (shared cache)"),
                None,
                move |c: &ProjectConfig, _| {
                    send(
                        &config_tx,
                        (c.metadata.namespace.clone().unwrap_or_default(), None),
                    )
                },
            ),
            cluster_configs: reflect(
                client,
                None,
                live.watch("clusterconfigs (shared cache)"),
                None,
                |_: &crate::api::ClusterConfig, _| {},
            ),
            by_ns,
        };
        let _ = tokio::join!(
            stores.cluster_configs.wait_until_ready(),
            stores.project_configs.wait_until_ready(),
            stores.freights.wait_until_ready(),
            stores.stages.wait_until_ready(),
            stores.warehouses.wait_until_ready(),
            stores.promotions.wait_until_ready(),
        );
        let _ = self.stores.set(stores.clone());
        // A Stage that moved here while this controller was not running: its old shard may
        // still hold an unfinished Promotion of it. Checked before any reconcile starts.
        for stage in held_elsewhere(client, me, &stores.stages).await {
            arrive_at_start(&stage, shard::Move::In);
        }
    }

    /// What to do when a Stage moves into or out of this shard: out, its Promotions here are
    /// re-triggered so the Promotion controller hands them over; in, it is held back until
    /// its old shard let go ([`shard::arrive`]), then triggered with its Promotions. Returns
    /// whether the Stage is held back.
    fn on_stage_move(
        &self,
        client: &kube::Client,
        me: &shard::Shard,
        stage_tx: &UnboundedSender<ObjectRef<Stage>>,
        promo_tx: &UnboundedSender<ObjectRef<Promotion>>,
    ) -> impl Fn(&Stage, shard::Move) -> bool + Send + 'static {
        let (client, me) = (client.clone(), me.clone());
        let (stores, arrivals) = (self.stores.clone(), self.arrivals.clone());
        let (stage_tx, promo_tx) = (stage_tx.clone(), promo_tx.clone());
        let promotions_of = |stores: &std::sync::OnceLock<CacheStores>, ns: &str, name: &str| {
            stores
                .get()
                .map(|s| {
                    s.promotions
                        .state()
                        .into_iter()
                        .filter(|p| {
                            p.metadata.namespace.as_deref() == Some(ns) && p.spec.stage == name
                        })
                        .map(|p| ObjectRef::from_obj(p.as_ref()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        move |s: &Stage, moved: shard::Move| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let name = s.metadata.name.clone().unwrap_or_default();
            match moved {
                shard::Move::None => false,
                shard::Move::Out => {
                    for p in promotions_of(&stores, &ns, &name) {
                        send(&promo_tx, p);
                    }
                    false
                }
                shard::Move::In => {
                    if !arrivals.begin(&ns, &name) {
                        return true;
                    }
                    let still_ours = {
                        let (stores, me, r) = (
                            stores.clone(),
                            me.clone(),
                            ObjectRef::<Stage>::new(&name).within(&ns),
                        );
                        move || {
                            let s = stores.get()?.stages.get(&r)?;
                            let at = shard::stage_shard(&s);
                            me.owns(at).then(|| at.map(str::to_string))
                        }
                    };
                    let arrived = {
                        let (stores, stage_tx, promo_tx) =
                            (stores.clone(), stage_tx.clone(), promo_tx.clone());
                        let (ns, name) = (ns.clone(), name.clone());
                        move || {
                            send(&stage_tx, ObjectRef::<Stage>::new(&name).within(&ns));
                            for p in promotions_of(&stores, &ns, &name) {
                                send(&promo_tx, p);
                            }
                        }
                    };
                    tokio::spawn(shard::arrive(
                        client.clone(),
                        me.clone(),
                        arrivals.clone(),
                        ns,
                        name,
                        still_ours,
                        arrived,
                    ));
                    true
                }
            }
        }
    }

    /// Whether this controller reconciles `stage`: it is of its shard and not arriving.
    pub fn owns_stage(&self, me: &shard::Shard, stage: &Stage) -> bool {
        me.owns(shard::stage_shard(stage))
            && !self.arrivals.contains(
                stage.metadata.namespace.as_deref().unwrap_or_default(),
                stage.metadata.name.as_deref().unwrap_or_default(),
            )
    }

    /// Where a Promotion runs, from its Stage as the cache has it (see [`shard::route`]).
    pub fn route(&self, me: &shard::Shard, p: &Promotion) -> shard::Route {
        let ns = p.metadata.namespace.as_deref().unwrap_or_default();
        let stage = self.stores.get().and_then(|s| {
            s.stages
                .get(&ObjectRef::<Stage>::new(&p.spec.stage).within(ns))
        });
        let at = stage.as_deref().map(shard::stage_shard);
        shard::route(me, p, at, self.arrivals.contains(ns, &p.spec.stage))
    }

    /// What drives the Stage controller: the Stage store and its changes, plus the Stages to
    /// reconcile because Freight of their project or one of their Promotions changed (each
    /// sent once the change is in its store). Can be taken once.
    #[allow(clippy::type_complexity)]
    pub fn stage_triggers(
        &self,
    ) -> Option<(
        Store<Stage>,
        impl futures::Stream<Item = Arc<Stage>> + Send + 'static,
        impl futures::Stream<Item = ObjectRef<Stage>> + Send + 'static,
    )> {
        use futures::StreamExt;
        let stores = self.stores.get()?;
        let mut slot = self.triggers.lock().ok()?;
        let t = slot.as_mut()?;
        // Take only the Stage half; the Promotion controller takes its own.
        let (_, empty_freight) = unbounded_channel();
        let (_, empty_stages) = unbounded_channel();
        let (_, empty_promo_stages) = unbounded_channel();
        let freight = std::mem::replace(&mut t.freight, empty_freight);
        let stages_rx = std::mem::replace(&mut t.stages, empty_stages);
        let promo_stages = std::mem::replace(&mut t.promotion_stages, empty_promo_stages);
        let (stages, stages_by_ns) = (stores.stages.clone(), stores.by_ns.stages.clone());
        let of_freight = futures::stream::unfold(freight, |mut rx| async move {
            let changes = coalesced(&mut rx).await?;
            Some((changes, rx))
        })
        .flat_map(move |changes| {
            // A Stage reads only Freight of the origins it requests (from its Warehouse or
            // through upstream Stages, the same origin).
            // Only the changed projects' Stages (the namespace index), not the whole cluster's.
            let namespaces: std::collections::HashSet<&String> =
                changes.iter().map(|(ns, _)| ns).collect();
            let refs: std::collections::HashSet<_> = namespaces
                .into_iter()
                .flat_map(|ns| stages_by_ns.get(&stages, ns))
                .filter(|s| {
                    let ns = s.metadata.namespace.clone().unwrap_or_default();
                    changes.contains(&(ns.clone(), None))
                        || s.spec
                            .requested_freight
                            .iter()
                            .any(|r| changes.contains(&(ns.clone(), Some(r.origin.clone()))))
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect();
            futures::stream::iter(refs)
        });
        let of_promotions = futures::stream::unfold(promo_stages, |mut rx| async move {
            rx.recv().await.map(|r| (r, rx))
        });
        Some((
            stores.stages.clone(),
            from_store(stages_rx, stores.stages.clone()),
            futures::stream::select(of_freight, of_promotions),
        ))
    }

    /// What drives the Promotion controller: the Promotion store and its changes. Can be
    /// taken once.
    pub fn promotion_triggers(
        &self,
    ) -> Option<(
        Store<Promotion>,
        impl futures::Stream<Item = Arc<Promotion>> + Send + 'static,
    )> {
        let stores = self.stores.get()?;
        let mut slot = self.triggers.lock().ok()?;
        let t = slot.as_mut()?;
        let (_, empty) = unbounded_channel();
        let rx = std::mem::replace(&mut t.promotions, empty);
        Some((
            stores.promotions.clone(),
            from_store(rx, stores.promotions.clone()),
        ))
    }

    /// What drives the Project controller besides Project changes: the Projects (named like
    /// their namespace) whose Stages or Warehouses changed, once the stores have the change.
    /// Can be taken once.
    pub fn project_triggers(
        &self,
    ) -> Option<impl futures::Stream<Item = ObjectRef<crate::api::Project>> + Send + 'static> {
        let mut slot = self.triggers.lock().ok()?;
        let t = slot.as_mut()?;
        let (_, empty) = unbounded_channel();
        let rx = std::mem::replace(&mut t.projects, empty);
        Some(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|ns| (ObjectRef::<crate::api::Project>::new(&ns), rx))
        }))
    }

    /// The Stages and Warehouses of a project (for its stats); `None` before [`Caches::start`].
    #[allow(clippy::type_complexity)]
    pub fn stats_inputs(&self, ns: &str) -> Option<(Vec<Arc<Stage>>, Vec<Arc<Warehouse>>)> {
        let s = self.stores.get()?;
        Some((
            s.by_ns.stages.get(&s.stages, ns),
            s.by_ns.warehouses.get(&s.warehouses, ns),
        ))
    }

    /// Freight, Stages, Promotions and Warehouse names of a project; `None` before
    /// [`Caches::start`]. Objects are shared with the stores, not copied.
    pub fn project(&self, ns: &str) -> Option<ProjectObjects> {
        let s = self.stores.get()?;
        let warehouses = s
            .by_ns
            .warehouses
            .get(&s.warehouses, ns)
            .into_iter()
            .filter_map(|w| w.metadata.name.clone())
            .collect();
        let mut promotions = s.by_ns.promotions.get(&s.promotions, ns);
        if let Ok(mut created) = self.created.lock() {
            created.retain(|(at, p)| {
                at.elapsed() < OVERLAY_TTL
                    && s.promotions.get(&ObjectRef::from_obj(p.as_ref())).is_none()
            });
            promotions.extend(
                created
                    .iter()
                    .filter(|(_, p)| p.metadata.namespace.as_deref() == Some(ns))
                    .map(|(_, p)| p.clone()),
            );
        }
        Some(ProjectObjects {
            freights: s.by_ns.freights.get(&s.freights, ns),
            stages: s.by_ns.stages.get(&s.stages, ns),
            promotions,
            warehouses,
        })
    }

    /// The ProjectConfig of project `ns` (named like it); `None` before [`Caches::start`].
    pub fn project_config(&self, ns: &str) -> Option<Option<Arc<ProjectConfig>>> {
        let s = self.stores.get()?;
        Some(
            s.project_configs
                .get(&ObjectRef::<ProjectConfig>::new(ns).within(ns)),
        )
    }

    /// ClusterConfig `cluster` as the store holds it (`Some(None)`: there is none); `None`
    /// before [`Caches::start`].
    pub fn cluster_config(&self) -> Option<Option<Arc<crate::api::ClusterConfig>>> {
        let s = self.stores.get()?;
        Some(
            s.cluster_configs
                .get(&ObjectRef::new(crate::api::CLUSTER_CONFIG_NAME)),
        )
    }

    /// A Freight of project `ns` as the store holds it; `None` when not stored (or before
    /// [`Caches::start`]).
    pub fn freight(&self, ns: &str, name: &str) -> Option<Arc<Freight>> {
        self.stores
            .get()?
            .freights
            .get(&ObjectRef::<Freight>::new(name).within(ns))
    }

    /// A Stage of project `ns` as the store holds it, or as this process last wrote it when
    /// the store does not show that yet; `None` when not stored (or before [`Caches::start`]).
    pub fn stage(&self, ns: &str, name: &str) -> Option<Arc<Stage>> {
        let cached = self
            .stores
            .get()?
            .stages
            .get(&ObjectRef::<Stage>::new(name).within(ns))?;
        self.written_stages.freshest(&cached)
    }

    /// A Promotion as the store holds it now (annotations such as abort); `None` when not
    /// stored (or before [`Caches::start`]).
    pub fn promotion(&self, p: &Promotion) -> Option<Arc<Promotion>> {
        self.stores.get()?.promotions.get(&ObjectRef::from_obj(p))
    }

    /// Remembers a Promotion this process created until the store has it.
    pub fn created(&self, p: Promotion) {
        if let Ok(mut created) = self.created.lock() {
            created.push((std::time::Instant::now(), Arc::new(p)));
        }
    }

    /// Remembers the phase this process wrote to a Promotion until the store shows it.
    pub fn wrote_phase(&self, p: &Promotion, phase: Option<PromotionPhase>) {
        let Some(uid) = p.metadata.uid.clone() else {
            return;
        };
        if let Ok(mut phases) = self.phases.lock() {
            phases.insert(uid, (std::time::Instant::now(), phase));
        }
    }

    /// The Promotions of one Stage, with the phases this process wrote that the store does
    /// not show yet; `fresh` (just read from the API server) replaces its cached copy. `None`
    /// before [`Caches::start`].
    pub fn stage_promotions(&self, fresh: &Promotion) -> Option<Vec<Arc<Promotion>>> {
        let s = self.stores.get()?;
        let ns = fresh.metadata.namespace.as_deref().unwrap_or_default();
        let stage = fresh.spec.stage.as_str();
        let mut phases = self.phases.lock().ok()?;
        phases.retain(|_, (at, _)| at.elapsed() < OVERLAY_TTL);
        let mut out: Vec<Arc<Promotion>> = Vec::new();
        for p in s.promotions.state() {
            if p.metadata.namespace.as_deref() != Some(ns) || p.spec.stage != stage {
                continue;
            }
            if p.metadata.uid == fresh.metadata.uid {
                continue;
            }
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let cached = p.status.as_ref().and_then(|st| st.phase);
            match phases.get(&uid) {
                Some((_, phase)) if *phase == cached => {
                    phases.remove(&uid);
                    out.push(p);
                }
                Some((_, phase)) => {
                    let mut newer = p.as_ref().clone();
                    newer.status.get_or_insert_with(Default::default).phase = *phase;
                    out.push(Arc::new(newer));
                }
                None => out.push(p),
            }
        }
        out.push(Arc::new(fresh.clone()));
        Some(out)
    }
}

/// This shard's Stages of which another shard holds an unfinished Promotion (one paginated
/// LIST of the other shards' Promotions). A failed LIST is logged and checks nothing.
async fn held_elsewhere(
    client: &kube::Client,
    me: &shard::Shard,
    stages: &Store<Stage>,
) -> Vec<Arc<Stage>> {
    let api: Api<Promotion> = Api::all(client.clone());
    let mut lp = kube::api::ListParams::default()
        .labels(&me.foreign_selector())
        .limit(500);
    let mut held = std::collections::BTreeMap::new();
    // Bounded: a LIST has finitely many pages; the cap guards against a server that loops.
    for _ in 0..10_000 {
        let page = match api.list(&lp).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list other shards' Promotions at start");
                break;
            }
        };
        for p in page
            .items
            .iter()
            .filter(|p| !p.status.as_ref().is_some_and(|s| s.is_terminal()))
        {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let r = ObjectRef::<Stage>::new(&p.spec.stage).within(ns);
            if let Some(s) = stages.get(&r)
                && me.owns(shard::stage_shard(&s))
            {
                held.insert(key(s.as_ref()), s);
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    held.into_values().collect()
}

/// The objects of one project, as [`Caches::project`] returns them.
pub struct ProjectObjects {
    pub freights: Vec<Arc<Freight>>,
    pub stages: Vec<Arc<Stage>>,
    pub promotions: Vec<Arc<Promotion>>,
    pub warehouses: std::collections::BTreeSet<String>,
}

/// Leader election settings: only the holder of the Lease runs the controllers.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
    /// How long a lease lasts without renewal: a standby takes over at most this long after
    /// the leader dies.
    pub duration_secs: u64,
}

/// How to run: metrics to record into, readiness to report, and leader election.
#[derive(Default)]
pub struct RunOptions {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    pub leader: Option<LeaderElection>,
    /// Progress of watches, queues and reconciles, read by `/healthz`.
    pub liveness: Arc<liveness::Liveness>,
}

/// Runs every controller until the process is asked to stop.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    run_with(client, config, RunOptions::default()).await
}

async fn controllers(ctx: Arc<Context>) {
    ctx.cache
        .start(&ctx.client, &ctx.liveness, &ctx.config.shard)
        .await;
    // The cluster-wide kinds belong to the default controller alone (Kargo's management
    // controller is not sharded).
    if !ctx.config.shard.is_default() {
        // Nobody drains the Project triggers here; dropping them lets their sends fall away.
        drop(ctx.cache.project_triggers());
    }
    let cluster_wide = ctx.config.shard.is_default().then(|| {
        let ctx = ctx.clone();
        async move {
            tokio::join!(
                project::run(ctx.clone()),
                project_config::run(ctx.clone()),
                cluster_config::run(ctx)
            );
        }
    });
    tokio::join!(
        warehouse::run(ctx.clone()),
        promotion::run(ctx.clone()),
        stage::run(ctx.clone()),
        async {
            if let Some(run) = cluster_wide {
                run.await;
            }
        }
    );
}

/// Runs the controllers, behind leader election when configured. Losing the lease ends the
/// run with an error so the process restarts as a standby; no two processes reconcile at once.
pub async fn run_with(
    client: kube::Client,
    mut config: Config,
    opts: RunOptions,
) -> Result<(), Error> {
    use std::sync::atomic::Ordering;
    // Under leader election, a shard can tell another shard's controller is gone by its Lease.
    if let Some(le) = &opts.leader {
        config.shard = config.shard.with_takeover(shard::takeover::Leases {
            namespace: le.namespace.clone(),
            identity: le.identity.clone(),
            duration_secs: le.duration_secs,
        });
    }
    let ctx = Context::new_with(
        client.clone(),
        config,
        opts.metrics.clone(),
        opts.liveness.clone(),
    )?;
    ctx.metrics.observe(ctx.images.clone(), ctx.git.clone());
    let Some(le) = opts.leader else {
        opts.ready.store(true, Ordering::Relaxed);
        controllers(ctx).await;
        return Ok(());
    };
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &le.lease)
        .with_namespace(&le.namespace)
        .with_identity(&le.identity)
        .with_duration(le.duration_secs)
        .with_grace((le.duration_secs / 3).max(1))
        .build()
        .await
        .map_err(|e| {
            Error::Setup(format!(
                "leader election (Lease {}/{}): {e}",
                le.namespace, le.lease
            ))
        })?;
    let (mut leading, lease_task) = manager.watch().await;
    // A standby is healthy and ready; it just does not reconcile.
    opts.ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %le.identity, lease = %le.lease, "waiting to become leader");
    while !*leading.borrow_and_update() {
        if leading.changed().await.is_err() {
            return Err(Error::Setup("leader election stopped".into()));
        }
    }
    tracing::info!(identity = %le.identity, "became leader; starting controllers");
    ctx.metrics.leader.set(1);
    let lost = async {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                return;
            }
        }
    };
    tokio::select! {
        _ = controllers(ctx.clone()) => {
            // Stopped by a signal: hand the lease over at once instead of letting it expire.
            drop(leading);
            let _ = lease_task.await;
            Ok(())
        }
        _ = lost => {
            ctx.metrics.leader.set(0);
            Err(Error::Setup("lost the leader lease; exiting so that only one process reconciles".into()))
        }
    }
}
