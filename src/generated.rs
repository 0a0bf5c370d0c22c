//! Files generated from the code and committed to the repository (`haul crds`, `haul schemas`):
//! writing them into a directory, removing the stale ones, and listing the drift between the
//! committed files and the code.

use std::path::{Path, PathBuf};

/// A file system error on `path`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoError {
    pub path: String,
    pub source: std::io::Error,
}

/// One generated file: its name in the output directory and its contents.
pub struct File {
    pub file_name: String,
    pub contents: String,
}

/// Where a kind of generated file goes, relative to the repository root, and how a file there
/// is recognised as generated (so that one no longer generated is stale).
pub struct Output {
    pub dirs: &'static [&'static str],
    pub is_generated: fn(&Path) -> bool,
}

impl Output {
    /// Writes `files` into every output directory under `root` (created if missing), first
    /// removing the generated files that are no longer among them.
    pub fn write(&self, root: &Path, files: &[File]) -> Result<Vec<PathBuf>, IoError> {
        let mut written = Vec::new();
        for dir in self.dirs {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for stale in generated_in(&dir, self.is_generated)? {
                if !files.iter().any(|f| dir.join(&f.file_name) == stale) {
                    std::fs::remove_file(&stale).map_err(io(&stale))?;
                }
            }
            for f in files {
                let path = dir.join(&f.file_name);
                std::fs::write(&path, &f.contents).map_err(io(&path))?;
                written.push(path);
            }
        }
        Ok(written)
    }

    /// What differs between the output directories under `root` and `files`: one line per
    /// missing, changed or stale file (a generated file that is not among them). Empty means no
    /// drift.
    pub fn drift(&self, root: &Path, files: &[File]) -> Result<Vec<String>, IoError> {
        let mut problems = Vec::new();
        for dir in self.dirs {
            let dir = root.join(dir);
            for f in files {
                let path = dir.join(&f.file_name);
                match std::fs::read_to_string(&path) {
                    Ok(s) if s == f.contents => {}
                    Ok(_) => problems.push(format!("{} differs from the code", path.display())),
                    Err(_) => problems.push(format!("{} is missing", path.display())),
                }
            }
            for stale in generated_in(&dir, self.is_generated)? {
                if !files.iter().any(|f| dir.join(&f.file_name) == stale) {
                    problems.push(format!("{} is no longer generated", stale.display()));
                }
            }
        }
        Ok(problems)
    }
}

/// The files in `dir` that `is_generated` recognises; none when `dir` cannot be read.
fn generated_in(dir: &Path, is_generated: fn(&Path) -> bool) -> Result<Vec<PathBuf>, IoError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io(dir))?;
        if is_generated(&e.path()) {
            out.push(e.path());
        }
    }
    Ok(out)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |source| IoError {
        path: path.display().to_string(),
        source,
    }
}
