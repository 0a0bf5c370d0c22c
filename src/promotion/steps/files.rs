//! copy and delete, confined to the work directory.

use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, path_in};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyConfig {
    in_path: String,
    out_path: String,
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_name() == ".git" {
                continue;
            }
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(from, to).map(|_| ())
    }
}

pub async fn copy(cfg: CopyConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let from = path_in(env, &cfg.in_path, "inPath")?;
    let to = path_in(env, &cfg.out_path, "outPath")?;
    if !from.exists() {
        return Err(StepError::Failed(format!(
            "config.inPath: {} does not exist",
            cfg.in_path
        )));
    }
    copy_tree(&from, &to).map_err(|e| {
        StepError::Errored(format!("copying {} to {}: {e}", cfg.in_path, cfg.out_path))
    })?;
    Ok(StepOutcome::succeeded(Map::new()))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteConfig {
    path: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    strict: bool,
}

pub async fn delete(cfg: DeleteConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let mut all: Vec<(String, String)> = cfg
        .path
        .into_iter()
        .map(|p| (p, "path".to_string()))
        .collect();
    all.extend(
        cfg.paths
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, format!("paths[{i}]"))),
    );
    if all.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config: set path or paths".into(),
        ));
    }
    // Resolve all first: one bad path deletes nothing.
    let mut resolved = Vec::new();
    for (p, field) in &all {
        resolved.push((p, path_in(env, p, field)?));
    }
    for (shown, p) in resolved {
        if p == env.work_dir {
            return Err(StepError::Failed(format!(
                "config: refusing to delete the whole work directory ({shown})"
            )));
        }
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !cfg.strict => {}
            Err(e) => return Err(StepError::Failed(format!("deleting {shown}: {e}"))),
        }
    }
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct CopyStep = "copy", CopyConfig, |cfg, env| copy(cfg, env) }

step! { pub struct DeleteStep = "delete", DeleteConfig, |cfg, env| delete(cfg, env) }
