//! copy and delete, confined to the work directory.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, path_in};
use crate::doublestar::Glob;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyConfig {
    in_path: String,
    out_path: String,
    /// Patterns of files not to copy, one per line, in .gitignore syntax (`#` starts a
    /// comment, `!` re-includes), relative to `inPath` (its directory when it is a file).
    #[serde(default)]
    ignore: Option<String>,
}

/// What copy leaves out: `.git` always, plus the config's `ignore` lines, matched as git
/// matches a .gitignore in `domain` (as Kargo, with go-git's gitignore matcher).
fn ignore_rules(domain: &Path, rules: Option<&str>) -> Result<Gitignore, StepError> {
    let mut b = GitignoreBuilder::new(domain);
    let mut add = |line: &str| {
        b.add_line(None, line)
            .map(|_| ())
            .map_err(|e| StepError::Failed(format!("invalid config: config.ignore: {e}")))
    };
    add(".git")?;
    for line in rules.unwrap_or_default().lines() {
        if !line.starts_with('#') && !line.trim().is_empty() {
            add(line)?;
        }
    }
    b.build()
        .map_err(|e| StepError::Failed(format!("invalid config: config.ignore: {e}")))
}

/// Copies `from` to `to`, leaving out what `ignored` matches and symlinks (a link could
/// point outside the work directory; Kargo skips them too).
fn copy_tree(from: &Path, to: &Path, ignored: &Gitignore) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() || ignored.matched(from, meta.is_dir()).is_ignore() {
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()), ignored)?;
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
    let domain = if from.is_dir() {
        from.clone()
    } else {
        from.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let ignored = ignore_rules(&domain, cfg.ignore.as_deref())?;
    copy_tree(&from, &to, &ignored).map_err(|e| {
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
    /// `path` and `paths` are glob patterns (doublestar syntax: `*`, `**`, `?`, `[...]`,
    /// `{a,b}`) matched against paths relative to the work directory.
    #[serde(default)]
    paths_are_globs: bool,
    /// Fail when a path does not exist, or a pattern matches nothing.
    #[serde(default)]
    strict: bool,
}

/// Where haul keeps its own bookkeeping in the work directory; no pattern deletes it.
const HAUL_DIR: &str = ".haul";

/// Every path under `root` (relative, `/`-separated, parents before children), not following
/// symlinks and leaving out [`HAUL_DIR`].
fn relative_paths(root: &Path) -> std::io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let Ok(rel) = p.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if rel == HAUL_DIR {
                continue;
            }
            out.push(rel);
            if e.file_type()?.is_dir() {
                walk(root, &p, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

/// The paths `patterns` match in the work directory, in order, without duplicates; a pattern
/// matching nothing is an error when `strict`.
fn expand_globs(
    root: &Path,
    patterns: &[(String, String)],
    strict: bool,
) -> Result<Vec<(String, PathBuf)>, StepError> {
    let globs = patterns
        .iter()
        .map(|(p, field)| {
            Glob::new(p.trim_start_matches("./"))
                .map_err(|e| StepError::Failed(format!("invalid config: config.{field}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let all = relative_paths(root)
        .map_err(|e| StepError::Errored(format!("listing the work directory: {e}")))?;
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for (glob, (pattern, field)) in globs.iter().zip(patterns) {
        let mut matched = false;
        for rel in all.iter().filter(|r| glob.matches(r)) {
            matched = true;
            if !out.iter().any(|(r, _)| r == rel) {
                out.push((rel.clone(), root.join(rel)));
            }
        }
        if !matched && strict {
            return Err(StepError::Failed(format!(
                "config.{field}: no paths matched pattern {pattern:?}"
            )));
        }
    }
    Ok(out)
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
    // Resolve all first: one bad path or pattern deletes nothing.
    let resolved = if cfg.paths_are_globs {
        expand_globs(env.work_dir, &all, cfg.strict)?
    } else {
        let mut resolved = Vec::new();
        for (p, field) in &all {
            resolved.push((p.clone(), path_in(env, p, field)?));
        }
        resolved
    };
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
            // A glob's match may be gone with a parent matched before it.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && (!cfg.strict || cfg.paths_are_globs) => {}
            Err(e) => return Err(StepError::Failed(format!("deleting {shown}: {e}"))),
        }
    }
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct CopyStep = "copy", CopyConfig, |cfg, env| copy(cfg, env) }

step! { pub struct DeleteStep = "delete", DeleteConfig, |cfg, env| delete(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_read_like_a_gitignore_in_the_copied_directory() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        let rules = ignore_rules(
            root,
            Some("# comment\n*.bak\n/top.txt\nsecret/\n!keep.bak\n"),
        )
        .expect("rules");
        let is = |rel: &str, dir: bool| rules.matched(root.join(rel), dir).is_ignore();
        assert!(is(".git", true));
        assert!(is("a.bak", false) && is("deep/dir/b.bak", false));
        assert!(!is("keep.bak", false));
        assert!(is("top.txt", false) && !is("sub/top.txt", false));
        assert!(is("secret", true) && !is("secret", false));
        assert!(!is("a.yaml", false));
    }

    #[test]
    fn globs_expand_to_matches_in_order_and_strict_wants_a_match() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        for f in [
            "a.yaml",
            "b.json",
            "dir/c.yaml",
            "dir/sub/d.yaml",
            ".haul/worktrees.json",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "x").expect("write");
        }
        let pats = |ps: &[&str]| -> Vec<(String, String)> {
            ps.iter()
                .enumerate()
                .map(|(i, p)| (p.to_string(), format!("paths[{i}]")))
                .collect()
        };
        let got = expand_globs(root, &pats(&["./**/*.yaml", "*.json"]), true).expect("globs");
        let rels: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rels, ["a.yaml", "dir/c.yaml", "dir/sub/d.yaml", "b.json"]);
        let everything = expand_globs(root, &pats(&["**"]), false).expect("globs");
        assert!(everything.iter().all(|(r, _)| !r.starts_with(".haul")));
        let e = expand_globs(root, &pats(&["*.toml"]), true).expect_err("strict");
        assert_eq!(
            e.to_string(),
            "config.paths[0]: no paths matched pattern \"*.toml\""
        );
        assert!(
            expand_globs(root, &pats(&["*.toml"]), false)
                .expect("lax")
                .is_empty()
        );
        let e = expand_globs(root, &pats(&["a[.yaml"]), false).expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("invalid config: config.paths[0]: "),
            "{e}"
        );
    }
}
