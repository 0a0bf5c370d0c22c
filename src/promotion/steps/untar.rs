//! untar: extracts a tar or tar.gz (detected by its magic bytes) into a directory of the work
//! directory, replacing that directory, as Kargo's `tar_extractor.go` does.
//!
//! Kargo's rules kept: regular files, directories and symlinks only (hard links, devices and
//! FIFOs are skipped); `stripComponents` drops leading path parts and skips entries that have no
//! more; `ignore` takes .gitignore-style lines and defaults to `.git`; a file over 50 MiB or an
//! archive over 100 MiB extracted fails the step; the archive is extracted into a temporary
//! directory first, so a failure leaves `outPath` as it was.
//!
//! Stricter than Kargo, which silently skips them: an entry whose path leaves the output
//! directory (absolute, `..`), a symlink whose target does, or an entry below a symlink (which
//! would defeat the lexical symlink check) fails the step, since such an
//! archive is malformed or hostile. A leading `./` is accepted (Kargo skips those entries).
//! Also bounded: the entry count and the decompressed stream itself, so header bombs fail too.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in};

/// Kargo's limits.
pub const MAX_FILE_SIZE: u64 = 50 * 1024 * 1024;
pub const MAX_TOTAL_SIZE: u64 = 100 * 1024 * 1024;
/// haul's extra limits: entries (inode bombs) and raw decompressed bytes including headers.
pub const MAX_ENTRIES: usize = 100_000;
const MAX_STREAM: u64 = MAX_TOTAL_SIZE + 64 * 1024 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    in_path: String,
    out_path: String,
    #[serde(default)]
    strip_components: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    ignore: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UntarError {
    #[error("entry {0:?} leaves the output directory")]
    Escapes(String),
    #[error("symlink {name:?} points outside the output directory ({target:?})")]
    SymlinkEscapes { name: String, target: String },
    #[error("entry {0:?} goes through a symlink the archive made")]
    ThroughSymlink(String),
    #[error("file {name:?} is {size} bytes, over the {MAX_FILE_SIZE}-byte limit for one file")]
    FileTooBig { name: String, size: u64 },
    #[error("the archive extracts to more than {MAX_TOTAL_SIZE} bytes")]
    TooBig,
    #[error("the archive has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("invalid ignore pattern {0:?}: {1}")]
    Pattern(String, String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Fails reads past `left` bytes, so a decompression bomb stops at the cap.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "the archive decompresses to more than {MAX_STREAM} bytes"
            ))
        })?;
        Ok(n)
    }
}

/// One .gitignore line: the glob, whether it is anchored (contains a `/` before its end),
/// whether it only matches directories (trailing `/`), and whether it re-includes (`!`).
pub(super) struct Rule {
    glob: crate::doublestar::Glob,
    anchored: bool,
    dir_only: bool,
    negated: bool,
}

pub(super) fn rules(ignore: Option<&str>) -> Result<Vec<Rule>, UntarError> {
    let lines: Vec<&str> = ignore
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // Kargo's default when no pattern is given: skip any .git directory.
    let lines = if lines.is_empty() {
        vec![".git"]
    } else {
        lines
    };
    lines
        .into_iter()
        .map(|line| {
            let (negated, l) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (dir_only, l) = match l.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, l),
            };
            let anchored = l.contains('/');
            let l = l.trim_start_matches('/');
            let glob = crate::doublestar::Glob::new(l)
                .map_err(|e| UntarError::Pattern(line.to_string(), e.to_string()))?;
            Ok(Rule {
                glob,
                anchored,
                dir_only,
                negated,
            })
        })
        .collect()
}

/// Whether `parts` (an entry path; `is_dir` for its last part) is ignored. A rule matching a
/// parent directory ignores everything below it; the last matching rule wins.
pub(super) fn ignored(rules: &[Rule], parts: &[String], is_dir: bool) -> bool {
    let mut verdict = false;
    for rule in rules {
        let hit = (0..parts.len()).any(|i| {
            let last = i + 1 == parts.len();
            if rule.dir_only && last && !is_dir {
                return false;
            }
            if rule.anchored {
                rule.glob.matches(&parts[..=i].join("/"))
            } else {
                rule.glob.matches(&parts[i])
            }
        });
        if hit {
            verdict = !rule.negated;
        }
    }
    verdict
}

/// The entry's path parts after stripping, or `None` to skip it. Fails when it escapes.
fn target_parts(name: &str, strip: usize) -> Result<Option<Vec<String>>, UntarError> {
    let raw: Vec<&str> = name.split('/').collect();
    if raw.len() <= strip && strip > 0 {
        return Ok(None);
    }
    let rest = raw[strip..].join("/");
    if rest.contains('\\') {
        return Err(UntarError::Escapes(name.to_string()));
    }
    let mut parts = Vec::new();
    for c in Path::new(&rest).components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(UntarError::Escapes(name.to_string()));
            }
        }
    }
    Ok((!parts.is_empty()).then_some(parts))
}

/// Whether a symlink at `parts` with `target` stays inside the output directory, lexically.
fn link_stays_inside(parts: &[String], target: &str) -> bool {
    if target.is_empty() || target.contains('\\') {
        return false;
    }
    let mut depth = parts.len() as i64 - 1; // The link's own directory.
    for c in Path::new(target).components() {
        match c {
            Component::CurDir => {}
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Extracts `archive` into the existing empty directory `out`. Returns the number of files
/// written.
pub fn extract(
    archive: &Path,
    out: &Path,
    strip: usize,
    ignore: Option<&str>,
) -> Result<usize, UntarError> {
    let rules = rules(ignore)?;
    let canon_out = out.canonicalize()?;
    let mut file = std::fs::File::open(archive)?;
    let mut magic = [0u8; 2];
    let gz = file.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(archive)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Archive::new(Capped {
        inner: reader,
        left: MAX_STREAM,
    });
    let (mut total, mut files, mut entries) = (0u64, 0usize, 0usize);
    for entry in tar.entries()? {
        let mut entry = entry?;
        entries += 1;
        if entries > MAX_ENTRIES {
            return Err(UntarError::TooManyEntries);
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(parts) = target_parts(&name, strip)? else {
            continue;
        };
        if ignored(&rules, &parts, kind.is_dir()) {
            continue;
        }
        let dest: PathBuf = parts.iter().fold(out.to_path_buf(), |p, s| p.join(s));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
            // Symlink targets are checked lexically, so no entry may sit below a symlink:
            // `d -> .` then `d/d/link -> ../x` would otherwise escape.
            let lexical = parts[..parts.len() - 1]
                .iter()
                .fold(canon_out.clone(), |p, s| p.join(s));
            if parent.canonicalize()? != lexical {
                return Err(UntarError::ThroughSymlink(name));
            }
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if !link_stays_inside(&parts, &target) {
                return Err(UntarError::SymlinkEscapes { name, target });
            }
            // A later entry of the same name replaces an earlier one, as tar does.
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(&target, &dest)?;
        } else {
            let size = entry.header().size()?;
            if size > MAX_FILE_SIZE {
                return Err(UntarError::FileTooBig { name, size });
            }
            if total + size > MAX_TOTAL_SIZE {
                return Err(UntarError::TooBig);
            }
            // Never write through a symlink an earlier entry placed here.
            if dest.is_symlink() {
                std::fs::remove_file(&dest)?;
            }
            let mut f = std::fs::File::create(&dest)?;
            // Copy at most the declared size: the header was checked, the body must match.
            let written = io::copy(&mut (&mut entry).take(size), &mut f)?;
            total += written;
            let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode | 0o600))?;
            files += 1;
        }
    }
    Ok(files)
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let archive = path_in(env, &cfg.in_path, "inPath")?;
    let out = path_in(env, &cfg.out_path, "outPath")?;
    if out == env.work_dir {
        return Err(StepError::Failed(
            "config.outPath: refusing to replace the whole work directory".into(),
        ));
    }
    if !archive.is_file() {
        return Err(StepError::Failed(format!(
            "config.inPath: {} is not a file",
            cfg.in_path
        )));
    }
    let work_dir = env.work_dir.to_path_buf();
    let strip = cfg.strip_components.unwrap_or(0) as usize;
    let (in_path, out_path) = (cfg.in_path.clone(), cfg.out_path.clone());
    let ignore = cfg.ignore;
    let result = tokio::task::spawn_blocking(move || -> Result<(), StepError> {
        // Extract next to the output, then swap it in, so a failure changes nothing.
        let tmp = tempfile::Builder::new()
            .prefix(".untar-")
            .tempdir_in(&work_dir)
            .map_err(|e| StepError::Errored(format!("creating a temporary directory: {e}")))?;
        extract(&archive, tmp.path(), strip, ignore.as_deref())
            .map_err(|e| StepError::Failed(format!("extracting {in_path}: {e}")))?;
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StepError::Errored(format!("creating {}: {e}", parent.display())))?;
        }
        let replace = |e: io::Error| StepError::Errored(format!("replacing {out_path}: {e}"));
        if out.is_dir() && !out.is_symlink() {
            std::fs::remove_dir_all(&out).map_err(replace)?;
        } else if out.exists() || out.is_symlink() {
            std::fs::remove_file(&out).map_err(replace)?;
        }
        std::fs::rename(tmp.path(), &out).map_err(replace)?;
        Ok(())
    })
    .await
    .map_err(|e| StepError::Errored(format!("untar task: {e}")))?;
    result?;
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct Untar = "untar", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &str) -> Vec<String> {
        p.split('/').map(String::from).collect()
    }

    #[test]
    fn entry_paths_are_stripped_and_confined() {
        assert_eq!(
            target_parts("./app/x.yaml", 0).expect("ok"),
            Some(parts("app/x.yaml"))
        );
        assert_eq!(
            target_parts("pkg/app/x.yaml", 1).expect("ok"),
            Some(parts("app/x.yaml"))
        );
        assert_eq!(target_parts("pkg", 1).expect("ok"), None);
        assert_eq!(target_parts("pkg/", 1).expect("ok"), None);
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\x"] {
            assert!(target_parts(bad, 0).is_err(), "{bad}");
        }
        assert!(link_stays_inside(&parts("a/b/link"), "../c"));
        assert!(link_stays_inside(&parts("a/link"), "../c"));
        assert!(!link_stays_inside(&parts("link"), "../c"));
        assert!(!link_stays_inside(&parts("a/link"), "/etc/passwd"));
        assert!(!link_stays_inside(&parts("a/link"), "b/../../../x"));
    }

    #[test]
    fn entries_below_symlinks_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "d", ".").expect("link");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "d/d/link", "../x").expect("link");
        let archive = d.path().join("a.tar");
        std::fs::write(&archive, b.into_inner().expect("tar")).expect("write");
        let out = d.path().join("out");
        std::fs::create_dir(&out).expect("out");
        let e = extract(&archive, &out, 0, None).expect_err("through a symlink");
        assert!(matches!(e, UntarError::ThroughSymlink(_)), "{e}");
        assert!(!out.join("link").exists() && !d.path().join("x").exists());
    }

    #[test]
    fn ignore_rules_follow_gitignore() {
        let default = rules(None).expect("rules");
        assert!(ignored(&default, &parts(".git/config"), false));
        assert!(!ignored(&default, &parts("src/main.rs"), false));
        let r = rules(Some("# comment\n*.md\n/docs/\n!keep.md\ntmp/\n")).expect("rules");
        assert!(ignored(&r, &parts("a/README.md"), false));
        assert!(!ignored(&r, &parts("a/keep.md"), false));
        assert!(ignored(&r, &parts("docs/x.txt"), false));
        assert!(!ignored(&r, &parts("src/docs/x.txt"), false));
        assert!(ignored(&r, &parts("x/tmp/y"), false));
        assert!(
            !ignored(&r, &parts("x/tmp"), false),
            "tmp/ matches directories only"
        );
        // Custom rules replace the .git default, as in Kargo.
        assert!(!ignored(&r, &parts(".git/config"), false));
    }
}
