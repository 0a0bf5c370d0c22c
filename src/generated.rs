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

/// Where a kind of generated file goes, relative to the repository root, and how a file there
/// is recognised as generated (so that one no longer generated is stale).
/// `F` is the generator's file type, and `name_and_contents` reads its name in the output
/// directory and its contents.
pub struct Output<F> {
    pub dirs: &'static [&'static str],
    pub is_generated: fn(&Path) -> bool,
    pub name_and_contents: fn(&F) -> (&str, &str),
}

impl<F> Output<F> {
    /// Writes `files` into every output directory under `root` (created if missing), first
    /// removing the generated files that are no longer among them.
    pub fn write(&self, root: &Path, files: &[F]) -> Result<Vec<PathBuf>, IoError> {
        let mut written = Vec::new();
        for dir in self.dirs {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for stale in generated_in(&dir, self.is_generated)? {
                if !files.iter().any(|f| dir.join(self.name(f)) == stale) {
                    std::fs::remove_file(&stale).map_err(io(&stale))?;
                }
            }
            for f in files {
                let (name, contents) = (self.name_and_contents)(f);
                let path = dir.join(name);
                std::fs::write(&path, contents).map_err(io(&path))?;
                written.push(path);
            }
        }
        Ok(written)
    }

    /// What differs between the output directories under `root` and `files`: one line per
    /// missing, changed or stale file (a generated file that is not among them). Empty means no
    /// drift.
    pub fn drift(&self, root: &Path, files: &[F]) -> Result<Vec<String>, IoError> {
        let mut problems = Vec::new();
        for dir in self.dirs {
            let dir = root.join(dir);
            for f in files {
                let (name, contents) = (self.name_and_contents)(f);
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(s) if s == contents => {}
                    Ok(_) => problems.push(format!("{} differs from the code", path.display())),
                    Err(_) => problems.push(format!("{} is missing", path.display())),
                }
            }
            for stale in generated_in(&dir, self.is_generated)? {
                if !files.iter().any(|f| dir.join(self.name(f)) == stale) {
                    problems.push(format!("{} is no longer generated", stale.display()));
                }
            }
        }
        Ok(problems)
    }

    fn name<'f>(&self, f: &'f F) -> &'f str {
        (self.name_and_contents)(f).0
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
