//! file-write: writes `contents` to a file of the work directory (Kargo's `file_writer.go`).
//!
//! Kargo's rules kept: the path must be relative, stay inside the work directory, not be in
//! `.git`, and not go through a symlink (even one pointing inside); an existing file is
//! replaced only with `overwrite: true`; missing parent directories are created (0700); the
//! file gets `permissions` (an octal `0NNN`, default 0600) and never executable, special or
//! world-writable bits.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in};

/// Kargo's default mode of a written file.
const DEFAULT_MODE: u32 = 0o600;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The destination file, relative to the work directory.
    path: String,
    /// The file's content.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    contents: String,
    /// An octal file mode such as `0644` (default `0600`); no executable or world-writable bits.
    #[serde(default)]
    permissions: Option<String>,
    /// Whether an existing file may be replaced (default false).
    #[serde(default)]
    overwrite: bool,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> StepError {
    StepError::Failed(format!("invalid config: config.{field}: {why}"))
}

/// The file mode `permissions` asks for, checked as Kargo checks it.
pub fn mode(permissions: Option<&str>) -> Result<u32, StepError> {
    let Some(p) = permissions else {
        return Ok(DEFAULT_MODE);
    };
    let digits = p
        .strip_prefix('0')
        .filter(|d| d.len() == 3 && d.bytes().all(|b| (b'0'..=b'7').contains(&b)));
    let Some(digits) = digits else {
        return Err(invalid(
            "permissions",
            format!("{p:?} is not an octal file mode like 0644 (a 0 and three digits 0-7)"),
        ));
    };
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|e| invalid("permissions", format!("{p:?}: {e}")))?;
    // No executable files: making a script runnable should take a deliberate, separate step.
    if mode & 0o111 != 0 {
        return Err(invalid(
            "permissions",
            format!("{p:?} must not include executable bits"),
        ));
    }
    if mode & 0o002 != 0 {
        return Err(invalid(
            "permissions",
            format!("{p:?} must not be world-writable"),
        ));
    }
    Ok(mode)
}

/// Checks the path lexically: relative, not in `.git`. (Escapes are `path_in`'s.)
pub fn check_path(path: &str) -> Result<(), StepError> {
    if Path::new(path).is_absolute() {
        return Err(invalid("path", format!("{path:?} must be relative")));
    }
    let first = Path::new(path)
        .components()
        .find(|c| !matches!(c, Component::CurDir));
    if matches!(first, Some(Component::Normal(n)) if n == ".git") {
        return Err(invalid(
            "path",
            format!("writing to the .git directory is forbidden: {path:?}"),
        ));
    }
    Ok(())
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    check_path(&cfg.path)?;
    let mode = mode(cfg.permissions.as_deref())?;
    let file = path_in(env, &cfg.path, "path")?;
    // Kargo refuses any symlink on the way, even one pointing inside the work directory.
    let rel = file.strip_prefix(env.work_dir).unwrap_or(&file);
    let mut probe = env.work_dir.to_path_buf();
    for part in rel.components() {
        probe.push(part);
        if probe.is_symlink() {
            return Err(invalid(
                "path",
                format!(
                    "{:?} goes through the symlink {} (symlinks are forbidden)",
                    cfg.path,
                    probe.strip_prefix(env.work_dir).unwrap_or(&probe).display()
                ),
            ));
        }
    }
    if file.is_dir() {
        return Err(invalid("path", format!("{:?} is a directory", cfg.path)));
    }
    if file.exists() && !cfg.overwrite {
        return Err(StepError::Failed(format!(
            "config.path: file {:?} already exists; set overwrite to true to replace it",
            cfg.path
        )));
    }
    let errored =
        |what: &str, e: std::io::Error| StepError::Errored(format!("{what} {:?}: {e}", cfg.path));
    if let Some(parent) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| errored("creating the parent directories of", e))?;
    }
    // A new file is created with its mode, so it is never readable more widely, even briefly;
    // an existing one gets it after the write, as in Kargo.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&file)
        .map_err(|e| errored("writing", e))?;
    f.write_all(cfg.contents.as_bytes())
        .map_err(|e| errored("writing", e))?;
    drop(f);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
        .map_err(|e| errored("setting the permissions of", e))?;
    tracing::debug!(path = %cfg.path, mode = format!("{mode:o}"), "file-write");
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct FileWrite = "file-write", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::steps::env::TestEnv;
    use serde_json::json;

    #[test]
    fn modes_are_checked_as_kargo_does() {
        assert_eq!(mode(None).expect("default"), 0o600);
        assert_eq!(mode(Some("0644")).expect("0644"), 0o644);
        assert_eq!(mode(Some("0660")).expect("0660"), 0o660);
        for bad in ["644", "0755", "0666", "0999", "04644", "rw", ""] {
            let e = mode(Some(bad)).expect_err(bad).to_string();
            assert!(e.contains("config.permissions"), "{bad}: {e}");
        }
    }

    #[test]
    fn paths_must_be_relative_and_outside_git() {
        assert!(check_path("a/b.txt").is_ok());
        assert!(check_path("./x/.git/y").is_ok());
        for bad in ["/etc/x", ".git/config", "./.git", ".git"] {
            let e = check_path(bad).expect_err(bad).to_string();
            assert!(e.contains("config.path"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn writes_creates_parents_and_refuses_overwrite_and_symlinks() {
        let t = TestEnv::new();
        let env = t.env("test");
        let cfg = |v| crate::promotion::steps::toolkit::parse::<Config>(v).expect("config");
        run(cfg(json!({"path": "a/b/c.txt", "contents": "hi"})), &env)
            .await
            .expect("written");
        let f = env.work_dir.join("a/b/c.txt");
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "hi");
        assert_eq!(
            std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let e = run(cfg(json!({"path": "a/b/c.txt", "contents": "x"})), &env)
            .await
            .expect_err("exists");
        assert!(e.to_string().contains("overwrite"), "{e}");
        run(
            cfg(json!({"path": "a/b/c.txt", "contents": "x", "overwrite": true, "permissions": "0640"})),
            &env,
        )
        .await
        .expect("overwritten");
        assert_eq!(std::fs::read_to_string(&f).expect("read"), "x");
        assert_eq!(
            std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777,
            0o640
        );
        std::os::unix::fs::symlink("a", env.work_dir.join("l")).expect("symlink");
        let e = run(cfg(json!({"path": "l/new.txt", "contents": "x"})), &env)
            .await
            .expect_err("symlink");
        assert!(e.to_string().contains("symlink"), "{e}");
        let e = run(cfg(json!({"path": "../x", "contents": "x"})), &env)
            .await
            .expect_err("escapes");
        assert!(e.to_string().contains("config.path"), "{e}");
    }
}
