//! What every step uses: the outcome and error types, config parsing that names the offending
//! field, paths resolved inside the work directory, the index of the worktrees git-clone made,
//! and lenient string fields. Steps import from here; the registry only dispatches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::env::StepEnv;
use crate::api::{HealthCheckStep, StepStatus};

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

/// Parses a step config, naming the offending field (`config.images[0].tag: …`). A missing
/// config is an empty map, so steps whose fields are all optional need none.
pub fn parse<T: DeserializeOwned>(config: Value) -> Result<T, StepError> {
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

/// The end of a step that edits one file: writes `after` to `file` when it differs from
/// `before` (an unchanged file is left alone), and succeeds with `commit_message` as its
/// `commitMessage` output.
pub fn write_edited(
    file: &Path,
    before: &str,
    after: String,
    commit_message: String,
) -> Result<StepOutcome, StepError> {
    if after != before {
        std::fs::write(file, after)
            .map_err(|e| StepError::Errored(format!("writing {}: {e}", file.display())))?;
    }
    let mut out = Map::new();
    out.insert("commitMessage".into(), Value::String(commit_message));
    Ok(StepOutcome::succeeded(out))
}

/// Resolves a config path inside the work directory.
pub fn path_in(env: &StepEnv<'_>, rel: &str, field: &str) -> Result<PathBuf, StepError> {
    crate::promotion::workdir::resolve(env.work_dir, rel, &format!("config.{field}"))
        .map_err(|e| StepError::Failed(e.to_string()))
}

/// The git worktrees that earlier git-clone steps made in `work_dir`: (absolute path,
/// repoURL) pairs, ordered by path.
pub fn worktrees(work_dir: &Path) -> Vec<(PathBuf, String)> {
    read_worktrees(work_dir)
        .into_iter()
        .map(|(path, url)| (PathBuf::from(path), url))
        .collect()
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

/// Records that the worktree at `path` holds `repo_url` (the URL as the config names it, not
/// where it is fetched from).
pub fn record_worktree(work_dir: &Path, path: &Path, repo_url: &str) -> Result<(), StepError> {
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
pub fn repo_of(work_dir: &Path, path: &Path, field: &str) -> Result<String, StepError> {
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
///
/// A field reads `#[serde(deserialize_with = "lenient::string")]` and, so its JSON Schema says
/// what is accepted, `#[schemars(with = "lenient::Text")]` (`Option<lenient::Text>` for
/// `opt_string`).
pub mod lenient {
    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    /// The schema of a lenient string: a string, or a number or boolean used as its text.
    pub struct Text;

    impl JsonSchema for Text {
        // Small enough to repeat at every field; no `$defs` entry.
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> Cow<'static, str> {
            "LenientString".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": ["string", "number", "boolean"],
                "description": "A string; a number or boolean is accepted and used as its text (an expression such as ${{ imageFrom(repo).Tag }} may evaluate to a number)."
            })
        }
    }

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
