//! Garbage collection of old Promotions and Freight, as Kargo's garbage collector does it:
//! list, plan ([`plan`], pure), delete with preconditions.
//!
//! It runs as `haul gc`, one pass per invocation, from a CronJob the chart installs
//! (`garbageCollector.*`), rather than as a loop inside the controller. That is what a Kargo
//! user already operates (Kargo's chart ships the same CronJob, hourly), it keeps `delete` out
//! of the long-running controller's ServiceAccount (which also holds git credentials), a failed
//! pass is a failed Job that existing alerting sees, and `haul gc --dry-run` from a laptop shows
//! exactly what the next scheduled pass would delete.

pub mod plan;

use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Preconditions};
use serde::de::DeserializeOwned;

use crate::api::{Freight, Promotion, Stage, Warehouse};
pub use plan::{Config, Deletion, Kind, Plan};

/// Page size of the lists: bounded memory per response on large clusters.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("listing {what}: {source}")]
    List {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// `haul gc`: one garbage-collection pass.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// Terminal Promotions kept per Stage, counted from the oldest Promotion that is still
    /// pending or running (Kargo's MAX_RETAINED_PROMOTIONS).
    #[arg(long, env = "MAX_RETAINED_PROMOTIONS", default_value_t = plan::DEFAULT_MAX_RETAINED)]
    pub max_retained_promotions: usize,
    /// Promotions younger than this are never deleted, e.g. 336h, 72h, 30m, 0s.
    #[arg(long, env = "MIN_PROMOTION_DELETION_AGE", default_value = "336h", value_parser = parse_age)]
    pub min_promotion_deletion_age: Duration,
    /// Freight kept per Warehouse, counted from the oldest Freight a Stage still uses (Kargo's
    /// MAX_RETAINED_FREIGHT).
    #[arg(long, env = "MAX_RETAINED_FREIGHT", default_value_t = plan::DEFAULT_MAX_RETAINED)]
    pub max_retained_freight: usize,
    /// Freight younger than this is never deleted.
    #[arg(long, env = "MIN_FREIGHT_DELETION_AGE", default_value = "336h", value_parser = parse_age)]
    pub min_freight_deletion_age: Duration,
    /// Log what would be deleted and delete nothing.
    #[arg(long, env = "HAUL_GC_DRY_RUN")]
    pub dry_run: bool,
    /// Collect in this namespace (project) only. Default: every namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, env = "HAUL_LOG_JSON")]
    pub log_json: bool,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s).map_err(|e| e.to_string())
}

impl GcArgs {
    pub fn config(&self) -> Config {
        Config {
            max_retained_promotions: self.max_retained_promotions,
            min_promotion_deletion_age: self.min_promotion_deletion_age,
            max_retained_freight: self.max_retained_freight,
            min_freight_deletion_age: self.min_freight_deletion_age,
        }
    }
}

/// The listed objects a plan is made from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub stages: Vec<Stage>,
    pub warehouses: Vec<Warehouse>,
    pub promotions: Vec<Promotion>,
    pub freight: Vec<Freight>,
}

impl Snapshot {
    pub fn inputs(&self) -> plan::Inputs<'_> {
        plan::Inputs {
            stages: &self.stages,
            warehouses: &self.warehouses,
            promotions: &self.promotions,
            freight: &self.freight,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Deleted (or, in a dry run, would have been).
    pub deleted: Vec<Deletion>,
    /// Not deleted because it changed or was replaced since it was listed, or is already gone.
    pub skipped: Vec<Deletion>,
    /// The delete failed (e.g. forbidden, or the API server unavailable).
    pub failed: Vec<Deletion>,
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn list_all<K>(api: &Api<K>, what: &'static str) -> Result<Vec<K>, GcError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|source| GcError::List { what, source })?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = ListParams::default().limit(PAGE).continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// Lists what a plan needs, in `namespace` or everywhere. Freight is listed before the Stages
/// and Promotions that protect it, so a use that begins between the lists is seen; a Stage that
/// starts using it after that changes its status, which the resourceVersion precondition catches.
pub async fn snapshot(client: &kube::Client, namespace: Option<&str>) -> Result<Snapshot, GcError> {
    Ok(Snapshot {
        warehouses: list_all(&api(client, namespace), "Warehouses").await?,
        freight: list_all(&api(client, namespace), "Freight").await?,
        stages: list_all(&api(client, namespace), "Stages").await?,
        promotions: list_all(&api(client, namespace), "Promotions").await?,
    })
}

/// Deletes what `plan` lists, each conditioned on the uid and resourceVersion it was listed
/// with; with `dry_run`, only logs it.
pub async fn apply(client: &kube::Client, plan: &Plan, dry_run: bool) -> Outcome {
    let mut out = Outcome::default();
    for d in plan.iter() {
        if dry_run {
            tracing::info!(kind = %d.kind, namespace = %d.namespace, name = %d.name, owner = %d.owner, "would delete (dry run)");
            out.deleted.push(d.clone());
            continue;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: d.uid.clone(),
                resource_version: d.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        let result = match d.kind {
            Kind::Promotion => Api::<Promotion>::namespaced(client.clone(), &d.namespace)
                .delete(&d.name, &params)
                .await
                .map(|_| ()),
            Kind::Freight => Api::<Freight>::namespaced(client.clone(), &d.namespace)
                .delete(&d.name, &params)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => {
                tracing::info!(kind = %d.kind, namespace = %d.namespace, name = %d.name, owner = %d.owner, "deleted");
                out.deleted.push(d.clone());
            }
            // 409: the precondition failed (it changed, e.g. a Stage started using the Freight);
            // 404: someone else deleted it. Either way the next pass decides afresh.
            Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => {
                tracing::info!(kind = %d.kind, namespace = %d.namespace, name = %d.name, reason = %s.message, "not deleted: changed or gone since it was listed");
                out.skipped.push(d.clone());
            }
            Err(e) => {
                tracing::error!(kind = %d.kind, namespace = %d.namespace, name = %d.name, error = %e, "delete failed");
                out.failed.push(d.clone());
            }
        }
    }
    out
}

/// One pass: snapshot, plan at the current time, apply.
pub async fn run(
    client: &kube::Client,
    config: &Config,
    namespace: Option<&str>,
    dry_run: bool,
) -> Result<Outcome, GcError> {
    let snap = snapshot(client, namespace).await?;
    let plan = plan::plan(config, snap.inputs(), Timestamp::now());
    tracing::info!(
        stages = snap.stages.len(),
        warehouses = snap.warehouses.len(),
        promotions = snap.promotions.len(),
        freight = snap.freight.len(),
        delete_promotions = plan.promotions.len(),
        delete_freight = plan.freight.len(),
        dry_run,
        "garbage collection planned"
    );
    Ok(apply(client, &plan, dry_run).await)
}

/// `haul gc`: one pass; fails when listing or any delete failed, so a failed pass is a failed Job.
pub fn command(args: &GcArgs) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("starting the async runtime: {e}")),
    };
    rt.block_on(async {
        let config = match kube::Config::infer().await {
            Ok(c) => c,
            Err(e) => {
                return fail(format!("reading the Kubernetes client configuration: {e}"));
            }
        };
        let client = match crate::kube_client::uncounted(config) {
            Ok(c) => c,
            Err(e) => return fail(format!("connecting to Kubernetes: {e}")),
        };
        match run(
            &client,
            &args.config(),
            args.namespace.as_deref(),
            args.dry_run,
        )
        .await
        {
            Ok(out) => {
                tracing::info!(
                    deleted = out.deleted.len(),
                    skipped = out.skipped.len(),
                    failed = out.failed.len(),
                    dry_run = args.dry_run,
                    "garbage collection done"
                );
                if out.failed.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    fail(format!(
                        "{} deletes failed (see the log); the next run retries them",
                        out.failed.len()
                    ))
                }
            }
            Err(e) => fail(e.to_string()),
        }
    })
}

fn fail(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}
