//! Paths in step configs, confined to the Promotion's work directory.
//!
//! Kargo clamps paths with securejoin; haul refuses an escaping path instead, so a `../` in a
//! manifest is reported to the person who wrote it rather than silently rewritten.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("{field}: path {path:?} leaves the promotion's work directory")]
    Escapes { field: String, path: String },
    #[error("{field}: path is empty")]
    Empty { field: String },
}

/// Joins `rel` (from config field `field`) under `root`, refusing any path that would leave
/// it, lexically (`..`) or through a symlink that already exists inside the work directory.
pub fn resolve(root: &Path, rel: &str, field: &str) -> Result<PathBuf, PathError> {
    if rel.trim().is_empty() {
        return Err(PathError::Empty {
            field: field.to_string(),
        });
    }
    let escapes = || PathError::Escapes {
        field: field.to_string(),
        path: rel.to_string(),
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            // An absolute path is taken as relative to the work directory, as in Kargo.
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(escapes());
                }
            }
            Component::Normal(p) => parts.push(p),
        }
    }
    let mut joined = root.to_path_buf();
    for p in &parts {
        joined.push(p);
    }
    // Symlinks: the deepest existing ancestor must still resolve inside the root.
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut probe = joined.as_path();
    loop {
        if let Ok(real) = probe.canonicalize() {
            if !real.starts_with(&canon_root) {
                return Err(escapes());
            }
            break;
        }
        match probe.parent() {
            Some(p) if p.starts_with(root) => probe = p,
            _ => break,
        }
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_work_directory() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        assert_eq!(
            resolve(root, "./src/apps", "path"),
            Ok(root.join("src/apps"))
        );
        assert_eq!(resolve(root, "/src", "path"), Ok(root.join("src")));
        assert_eq!(resolve(root, "src/../out", "path"), Ok(root.join("out")));
        let e = resolve(root, "../etc/passwd", "config.path").expect_err("escape");
        assert_eq!(
            e.to_string(),
            "config.path: path \"../etc/passwd\" leaves the promotion's work directory"
        );
        assert!(resolve(root, "src/../../x", "path").is_err());
        assert!(resolve(root, "", "path").is_err());
        // A symlink inside the work directory that points outside it.
        std::os::unix::fs::symlink("/etc", root.join("link")).expect("symlink");
        assert!(resolve(root, "link/passwd", "path").is_err());
    }
}
