//! The built-in promotion steps, one module per family. Each step parses and validates its
//! (already evaluated) config before doing anything, so a bad config fails the step with a
//! message naming the field and changes nothing.

mod argocd;
mod chart_lock;
mod data_files;
mod fail;
mod files;
mod git;
mod git_tag;
mod helm_chart;
mod http;
mod json_edit;
mod kustomize;
mod metadata;
mod toml_files;
mod untar;
mod yaml_merge;
mod yaml_update;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::api::{FreightCollection, HealthCheckStep, StepStatus};
use crate::git::{Author, Credentials, RepoCache};

/// Everything a step may use besides its config.
pub struct StepEnv<'a> {
    pub client: &'a kube::Client,
    pub git: &'a RepoCache,
    pub work_dir: &'a Path,
    pub project: &'a str,
    pub stage: &'a str,
    pub promotion: &'a str,
    pub actor: &'a str,
    pub freight: &'a FreightCollection,
    pub shared_namespace: Option<&'a str>,
    pub author: &'a Author,
    pub argocd_namespace: &'a str,
}

tokio::task_local! {
    /// The git credentials of local mode, set by [`with_local_git_credentials`].
    static LOCAL_GIT_CREDENTIALS: Credentials;
}

/// Runs `f` in local mode (`haul run-local`): git steps use `creds` for every repository
/// instead of looking up `kargo.akuity.io/cred-type: git` Secrets, so no git step reads the
/// cluster. The controller never calls this; outside `f` nothing changes.
pub async fn with_local_git_credentials<F: std::future::Future>(
    creds: Credentials,
    f: F,
) -> F::Output {
    LOCAL_GIT_CREDENTIALS.scope(creds, f).await
}

/// Whether this runs in local mode (`haul run-local`, inside [`with_local_git_credentials`]),
/// where there is no cluster to read or write.
pub fn local_mode() -> bool {
    local_git_credentials().is_some()
}

/// The credentials given by [`with_local_git_credentials`], when running in local mode.
fn local_git_credentials() -> Option<Credentials> {
    LOCAL_GIT_CREDENTIALS.try_with(Clone::clone).ok()
}

/// The git worktrees that earlier git-clone steps made in `work_dir`: (absolute path,
/// repoURL) pairs, ordered by path.
pub fn worktrees(work_dir: &Path) -> Vec<(PathBuf, String)> {
    read_worktrees(work_dir)
        .into_iter()
        .map(|(path, url)| (PathBuf::from(path), url))
        .collect()
}

/// What a step reports when it did not fail.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Succeeded, Skipped, or Running (call again later).
    pub status: StepStatus,
    pub message: Option<String>,
    pub output: Map<String, Value>,
    /// A health check the Stage runs from then on (argocd-update).
    pub health_check: Option<HealthCheckStep>,
    /// When Running: how long to wait before calling again.
    pub retry_after: Option<Duration>,
}

impl StepOutcome {
    pub fn succeeded(output: Map<String, Value>) -> Self {
        Self {
            status: StepStatus::Succeeded,
            message: None,
            output,
            health_check: None,
            retry_after: None,
        }
    }
}

/// How a step failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StepError {
    /// Nothing a retry can fix (bad config, refused by policy): the step is Failed.
    #[error("{0}")]
    Failed(String),
    /// A technical failure that retrying will not fix either: the step is Errored.
    #[error("{0}")]
    Errored(String),
    /// A technical failure worth retrying (network, conflicts): counts toward errorThreshold.
    #[error("{0}")]
    Retryable(String),
}

/// The steps haul runs.
pub const KNOWN_STEPS: &[&str] = &[
    "git-clone",
    "git-clear",
    "git-commit",
    "git-push",
    "git-tag",
    "kustomize-set-image",
    "kustomize-build",
    "yaml-update",
    "yaml-merge",
    "toml-update",
    "toml-parse",
    "untar",
    "json-update",
    "yaml-parse",
    "json-parse",
    "helm-update-chart",
    "argocd-update",
    "compose-output",
    "copy",
    "delete",
    "fail",
    "http",
    "set-metadata",
];

/// Default `retry.timeout` per step (Kargo: 5 minutes for argocd-update, none otherwise).
pub fn default_timeout(uses: &str) -> Option<Duration> {
    (uses == "argocd-update").then_some(Duration::from_secs(300))
}

/// Runs step `uses` with its evaluated `config`.
pub async fn run(uses: &str, config: Value, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    match uses {
        "git-clone" => git::clone(parse(config)?, env).await,
        "git-clear" => git::clear(parse(config)?, env).await,
        "git-commit" => git::commit(parse(config)?, env).await,
        "git-push" => git::push(parse(config)?, env).await,
        "git-tag" => git_tag::tag(parse(config)?, env).await,
        "kustomize-set-image" => kustomize::set_image(parse(config)?, env).await,
        "kustomize-build" => kustomize::build(parse(config)?, env).await,
        "yaml-update" => yaml_update::run(parse(config)?, env).await,
        "yaml-merge" => yaml_merge::run(parse(config)?, env).await,
        "toml-update" => toml_files::update(parse(config)?, env).await,
        "toml-parse" => data_files::parse_file(parse(config)?, data_files::Format::Toml, env).await,
        "untar" => untar::run(parse(config)?, env).await,
        "json-update" => data_files::json_update(parse(config)?, env).await,
        "yaml-parse" => data_files::parse_file(parse(config)?, data_files::Format::Yaml, env).await,
        "json-parse" => data_files::parse_file(parse(config)?, data_files::Format::Json, env).await,
        "helm-update-chart" => helm_chart::run(parse(config)?, env).await,
        "argocd-update" => argocd::update(config, env).await,
        "compose-output" => match config {
            Value::Object(m) => Ok(StepOutcome::succeeded(m)),
            Value::Null => Ok(StepOutcome::succeeded(Map::new())),
            _ => Err(StepError::Failed("config must be a map of outputs".into())),
        },
        "copy" => files::copy(parse(config)?, env).await,
        "delete" => files::delete(parse(config)?, env).await,
        "fail" => fail::run(parse(config)?),
        "http" => http::run(parse(config)?).await,
        "set-metadata" => metadata::run(parse(config)?, env).await,
        other => Err(StepError::Errored(format!(
            "unknown step {other:?}; haul runs: {}",
            KNOWN_STEPS.join(", ")
        ))),
    }
}

/// Parses a step config, naming the offending field (`config.images[0].tag: …`).
fn parse<T: DeserializeOwned>(config: Value) -> Result<T, StepError> {
    let config = if config.is_null() {
        Value::Object(Map::new())
    } else {
        config
    };
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            "config".to_string()
        } else {
            format!("config.{path}")
        };
        StepError::Failed(format!("invalid config: {at}: {}", e.inner()))
    })
}

/// Resolves a config path inside the work directory.
fn path_in(env: &StepEnv<'_>, rel: &str, field: &str) -> Result<PathBuf, StepError> {
    super::workdir::resolve(env.work_dir, rel, &format!("config.{field}"))
        .map_err(|e| StepError::Failed(e.to_string()))
}

/// Which repository each worktree path (relative to the work dir) came from, kept in the work
/// dir so later steps (and a resumed promotion) can reopen the worktree by path alone.
fn worktree_index(work_dir: &Path) -> PathBuf {
    work_dir.join(".haul").join("worktrees.json")
}

fn read_worktrees(work_dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(worktree_index(work_dir))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn record_worktree(work_dir: &Path, path: &Path, repo_url: &str) -> Result<(), StepError> {
    let mut index = read_worktrees(work_dir);
    index.insert(path.display().to_string(), repo_url.to_string());
    let file = worktree_index(work_dir);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StepError::Errored(e.to_string()))?;
    }
    let body = serde_json::to_string(&index).map_err(|e| StepError::Errored(e.to_string()))?;
    std::fs::write(&file, body).map_err(|e| StepError::Errored(e.to_string()))
}

/// The repository a worktree path belongs to, or a message saying git-clone must come first.
fn repo_of(work_dir: &Path, path: &Path, field: &str) -> Result<String, StepError> {
    read_worktrees(work_dir)
        .get(&path.display().to_string())
        .cloned()
        .ok_or_else(|| {
            StepError::Failed(format!(
                "config.{field}: {} is not a git worktree made by an earlier git-clone step",
                path.strip_prefix(work_dir).unwrap_or(path).display()
            ))
        })
}

/// Lenient string fields. Kargo coerces a lone `${{ }}` result to a number when it looks like
/// one, so `tag: ${{ imageFrom(repo).Tag }}` becomes 1006 for build-number tags and Kargo then
/// rejects the config unless the user wrote `quote()`. haul accepts a scalar where a string is
/// expected and uses its text.
mod lenient {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    fn text<E: Error>(v: Value) -> Result<String, E> {
        match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(E::custom(format!("expected a string, found {other}"))),
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        text(Value::deserialize(d)?)
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(v) => text(v).map(Some),
        }
    }
}
