//! The promotion preview: before promoting, the diff a Promotion of this Freight to this Stage
//! would commit. It runs the Stage's steps through the same step engine as the controller and
//! `haul run-local` (crate::promotion::engine), in a throw-away directory, with the user's
//! identity for git credential Secrets, and with pushing withheld, so nothing leaves the
//! machine: the run stops before the first git-push. Steps that need the cluster
//! (argocd-update, set-metadata) get no cluster, as in `haul run-local`, so a preview never
//! changes anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::Json;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use serde::Serialize;

use super::actions::{Reply, Target, failure, field};
use crate::api::{
    ClusterPromotionTask, Freight, FreightCollection, PromotionPhase, PromotionStatus,
    PromotionTask, Stage,
};
use crate::cli::local::{commits, git};
use crate::cli::{CliError, Cluster};
use crate::expressions::{PromotionContext, TargetFreight};
use crate::git::{Author, RepoCache, RepoCacheConfig};
use crate::promotion::engine::{self, Progress};
use crate::promotion::inflate::{self, TaskKind, Tasks};
use crate::promotion::steps::{self, ClusterCredentials, StepEnv};

/// A preview gives up after this long (a step waiting on something that never comes).
const DEADLINE: Duration = Duration::from_secs(120);
/// Longest pause between two attempts of a step that asked to be called again.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// One worktree's staged changes when a git-commit step is about to run.
#[derive(Debug, Serialize)]
pub struct Change {
    /// The step that would commit it.
    pub step: String,
    /// The worktree, relative to the promotion's work directory.
    pub path: String,
    pub diff: String,
}

#[derive(Debug, Serialize)]
pub struct Preview {
    pub changes: Vec<Change>,
    /// How the run ended: where it stopped, or why it failed.
    pub outcome: String,
}

fn other(e: impl std::fmt::Display) -> (axum::http::StatusCode, Json<super::actions::Failure>) {
    failure(CliError::Other(e.to_string()))
}

/// Runs the preview of promoting `freight` to `stage`.
pub async fn preview(cluster: Cluster, t: Target) -> Reply<Preview> {
    let stage_name = field(&t.stage, "stage")?.to_string();
    let freight_name = field(&t.freight, "freight")?.to_string();
    let ns = cluster.namespace.clone();
    let client = cluster.client.clone();
    let missing = |kind: &'static str, plural: &'static str, name: &str| {
        failure(CliError::NotFound {
            kind,
            plural,
            name: name.to_string(),
            namespace: ns.clone(),
        })
    };
    let stage: Stage = Api::<Stage>::namespaced(client.clone(), &ns)
        .get_opt(&stage_name)
        .await
        .map_err(|e| {
            failure(CliError::api(format!("reading Stage {stage_name}"), None)(
                e,
            ))
        })?
        .ok_or_else(|| missing("Stage", "stages", &stage_name))?;
    let freight: Freight = Api::<Freight>::namespaced(client.clone(), &ns)
        .get_opt(&freight_name)
        .await
        .map_err(|e| {
            failure(CliError::api(
                format!("reading Freight {freight_name}"),
                None,
            )(e))
        })?
        .ok_or_else(|| missing("Freight", "freight", &freight_name))?;
    let template = stage
        .spec
        .promotion_template
        .as_ref()
        .map(|t| t.spec.clone())
        .filter(|t| !t.steps.is_empty())
        .ok_or_else(|| {
            failure(CliError::Usage(format!(
                "Stage {stage_name} has no promotionTemplate steps: there is nothing to preview"
            )))
        })?;
    // The tasks the template uses, read as the controller reads them.
    let mut tasks = Tasks::default();
    for (kind, name) in inflate::task_references(&template) {
        let spec = match kind {
            TaskKind::Namespaced => Api::<PromotionTask>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await
                .map(|t| t.map(|t| t.spec)),
            TaskKind::Cluster => Api::<ClusterPromotionTask>::all(client.clone())
                .get_opt(&name)
                .await
                .map(|t| t.map(|t| t.spec.into())),
        };
        if let Some(spec) = spec.map_err(|e| other(format!("reading task {name}: {e}")))? {
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
    let steps_list = inflate::inflate(&template, &vars, &tasks)
        .map_err(|e| other(format!("Stage {stage_name} promotionTemplate: {e}")))?;

    let dir = tempfile::Builder::new()
        .prefix("haul-ui-preview-")
        .tempdir()
        .map_err(|e| other(format!("creating a work directory: {e}")))?;
    let work_dir = dir.path().to_path_buf();
    let cache = RepoCache::with_config(
        work_dir.join(".haul").join("git-cache"),
        RepoCacheConfig::default(),
    )
    .map_err(|e| other(format!("preparing the git cache: {e}")))?;
    // The Freight of the Stage's other origins stays what the Stage has now, as the
    // controller does.
    let mut items = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
        .map(|c| c.items.clone())
        .unwrap_or_default();
    items.insert(freight.origin.to_string(), freight.to_reference());
    let collection = FreightCollection {
        id: String::new(),
        items,
        verification_history: Vec::new(),
    };
    let actor = cluster.whoami().await.unwrap_or_else(|| "unknown".into());
    let promotion = crate::cli::promote::promotion_name(&stage_name, &freight_name);
    let pctx = PromotionContext {
        project: ns.clone(),
        stage: stage_name.clone(),
        promotion: promotion.clone(),
        target_freight: TargetFreight {
            name: freight_name.clone(),
            alias: freight.alias.clone().unwrap_or_default(),
            origin: freight.origin.clone(),
        },
        actor: actor.clone(),
        ..Default::default()
    };
    let credentials = ClusterCredentials {
        client: &client,
        project: &ns,
        shared_namespace: None,
    };
    let author = Author {
        name: "haul".into(),
        email: "no-reply@haul.invalid".into(),
    };
    let signing_key = Ok(None);
    let env = StepEnv {
        client: None,
        argocd_namespace: None,
        credentials: &credentials,
        push_allowed: false,
        runner: "the UI's preview",
        git: &cache,
        work_dir: &work_dir,
        project: &ns,
        shared_namespace: None,
        stage: &stage_name,
        promotion: &promotion,
        actor: &actor,
        freight: &collection,
        author: &author,
        signing_key: &signing_key,
        previous_output: None,
    };
    let mut status = PromotionStatus {
        phase: Some(PromotionPhase::Running),
        steps: steps_list.clone(),
        vars: vars.clone(),
        current_step: Some(0),
        freight: Some(freight.to_reference()),
        freight_collection: Some(collection.clone()),
        ..Default::default()
    };
    let mut changes = Vec::new();
    let mut shown: BTreeMap<PathBuf, String> = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    let outcome = loop {
        let i = status.current_step.unwrap_or(0).max(0) as usize;
        if let Some(step) = steps_list.get(i)
            && commits(step)
            && status
                .step_execution_metadata
                .get(i)
                .is_none_or(|m| m.started_at.is_none())
        {
            let alias = step
                .r#as
                .clone()
                .unwrap_or_else(|| format!("step-{}", i + 1));
            staged(&work_dir, &alias, &mut shown, &mut changes)
                .await
                .map_err(failure)?;
        }
        match engine::step_once(&steps_list, &vars, &pctx, &mut status, &env).await {
            Progress::Continue => {}
            Progress::Wait(d) => {
                if Instant::now() + d > deadline {
                    break format!("gave up after {DEADLINE:?}: step {} kept waiting", i + 1);
                }
                tokio::time::sleep(d.min(MAX_WAIT)).await;
            }
            Progress::Stopped(why) => {
                let (phase, message) = engine::final_phase(&status.step_execution_metadata);
                break if phase == PromotionPhase::Succeeded {
                    format!("stopped before step {}: {why}; nothing was pushed", i + 1)
                } else {
                    format!("the steps ended {phase}: {message}")
                };
            }
            Progress::Done(phase, message) => break format!("the steps ended {phase}: {message}"),
        }
    };
    drop(dir);
    tracing::info!(stage = %stage_name, freight = %freight_name, at = %Timestamp::now(), "previewed a promotion");
    Ok(Json(Preview { changes, outcome }))
}

/// Records each worktree's staged changes not recorded before, as git-commit stages them.
async fn staged(
    work_dir: &Path,
    step: &str,
    shown: &mut BTreeMap<PathBuf, String>,
    out: &mut Vec<Change>,
) -> Result<(), CliError> {
    for (path, _) in steps::worktrees(work_dir) {
        if !path.is_dir() {
            continue;
        }
        git(&path, &["add", "--all"]).await?;
        let diff = git(
            &path,
            &[
                "diff",
                "--cached",
                "--no-color",
                "--no-ext-diff",
                "--no-renames",
            ],
        )
        .await?;
        if diff.is_empty() || shown.get(&path) == Some(&diff) {
            continue;
        }
        out.push(Change {
            step: step.to_string(),
            path: path
                .strip_prefix(work_dir)
                .unwrap_or(&path)
                .display()
                .to_string(),
            diff: diff.clone(),
        });
        shown.insert(path, diff);
    }
    Ok(())
}
