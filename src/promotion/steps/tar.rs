//! tar: archives a directory or file of the work directory into a tar, gzipped with `gzip:
//! true` (Kargo's `tar_creator.go`).
//!
//! Kargo's rules kept: a directory's contents are archived relative to it (no `.` entry), a
//! single file under its base name; directories, regular files and symlinks (as links, never
//! followed) are archived with their modes and times; `ignore` takes .gitignore lines and
//! defaults to `.git`, an ignored directory skipping its contents; a file over 50 MiB or more
//! than 100 MiB in all fails the step; the archive is written to a temporary file next to
//! `outPath` and renamed over it at the end, so a failure leaves `outPath` as it was.
//!
//! Beyond Kargo: when `outPath` (or its temporary file) lies inside `inPath`, it is left out of
//! the archive rather than archived half-written; so is haul's own `.haul` directory of the
//! work directory (the worktree index and git cache).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, path_in};
use super::untar::{self, MAX_FILE_SIZE, MAX_TOTAL_SIZE, Rule};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The directory or file to archive.
    in_path: String,
    /// The archive to write; an existing file is replaced.
    out_path: String,
    /// .gitignore lines of what to leave out (default `.git`).
    #[serde(default)]
    ignore: Option<String>,
    /// Whether to gzip the archive (default false).
    #[serde(default)]
    gzip: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("file {name:?} is {size} bytes, over the {MAX_FILE_SIZE}-byte limit for one file")]
    FileTooBig { name: String, size: u64 },
    #[error("the files to archive are more than {MAX_TOTAL_SIZE} bytes in all")]
    TooBig,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What the walk leaves out besides ignored paths: the archive being written.
struct Walk<'a> {
    rules: &'a [Rule],
    skip: &'a [PathBuf],
    total: u64,
}

impl Walk<'_> {
    /// Appends `path` (archived as `parts`) and, for a directory, its contents in name order.
    fn add<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        path: &Path,
        parts: &mut Vec<String>,
    ) -> Result<(), TarError> {
        if self.skip.iter().any(|s| s == path) {
            return Ok(());
        }
        let meta = fs::symlink_metadata(path)?;
        let is_dir = meta.is_dir();
        if !parts.is_empty() && untar::ignored(self.rules, parts, is_dir) {
            return Ok(());
        }
        let name = parts.join("/");
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(path)?;
            header.set_size(0);
            b.append_link(&mut header, &name, &target)?;
        } else if meta.is_file() {
            let size = meta.len();
            if size > MAX_FILE_SIZE {
                return Err(TarError::FileTooBig { name, size });
            }
            self.total += size;
            if self.total > MAX_TOTAL_SIZE {
                return Err(TarError::TooBig);
            }
            b.append_data(&mut header, &name, File::open(path)?)?;
        } else if is_dir {
            // The root directory itself gets no entry, as in Kargo.
            if !parts.is_empty() {
                b.append_data(&mut header, format!("{name}/"), io::empty())?;
            }
            let mut children: Vec<_> = fs::read_dir(path)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            children.sort();
            for child in children {
                parts.push(child.to_string_lossy().into_owned());
                self.add(b, &path.join(&child), parts)?;
                parts.pop();
            }
        }
        // Sockets, FIFOs and devices are not archived.
        Ok(())
    }
}

/// Writes the archive of `input` to `out` (a new file). `skip` lists paths left out.
pub fn create(
    input: &Path,
    out: File,
    gzip: bool,
    ignore: Option<&str>,
    skip: &[PathBuf],
) -> Result<(), TarError> {
    let rules = untar::rules(ignore).map_err(|e| io::Error::other(e.to_string()))?;
    let mut walk = Walk {
        rules: &rules,
        skip,
        total: 0,
    };
    let mut parts = Vec::new();
    if !fs::symlink_metadata(input)?.is_dir()
        && let Some(base) = input.file_name()
    {
        // A single file is archived under its base name.
        parts.push(base.to_string_lossy().into_owned());
    }
    if gzip {
        let gz = flate2::write::GzEncoder::new(&out, flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        walk.add(&mut b, input, &mut parts)?;
        b.into_inner()?.finish()?;
    } else {
        let mut b = tar::Builder::new(&out);
        walk.add(&mut b, input, &mut parts)?;
        b.into_inner()?.flush()?;
    }
    out.sync_all()?;
    Ok(())
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let input = path_in(env, &cfg.in_path, "inPath")?;
    let out = path_in(env, &cfg.out_path, "outPath")?;
    if let Some(ignore) = &cfg.ignore {
        untar::rules(Some(ignore))
            .map_err(|e| StepError::Failed(format!("invalid config: config.ignore: {e}")))?;
    }
    if fs::symlink_metadata(&input).is_err() {
        return Err(StepError::Failed(format!(
            "config.inPath: {:?} does not exist",
            cfg.in_path
        )));
    }
    if out.is_dir() {
        return Err(StepError::Failed(format!(
            "config.outPath: {:?} is a directory",
            cfg.out_path
        )));
    }
    // path_in confirmed the input stays inside; archive what it resolves to, as Kargo does.
    let input = input
        .canonicalize()
        .map_err(|e| StepError::Errored(format!("resolving {:?}: {e}", cfg.in_path)))?;
    // haul's own state in the work directory (worktree index, git cache) is never archived.
    let haul_dir = env
        .work_dir
        .canonicalize()
        .map_err(|e| StepError::Errored(format!("resolving the work directory: {e}")))?
        .join(".haul");
    let (out_path, gzip, ignore) = (cfg.out_path.clone(), cfg.gzip, cfg.ignore);
    tokio::task::spawn_blocking(move || -> Result<(), StepError> {
        let errored = |what: &str, e: &dyn std::fmt::Display| {
            StepError::Errored(format!("{what} {out_path:?}: {e}"))
        };
        let dir = out.parent().unwrap_or(&out);
        fs::create_dir_all(dir).map_err(|e| errored("creating the directory of", &e))?;
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp"))
            .tempfile_in(dir)
            .map_err(|e| errored("creating a temporary file for", &e))?;
        // Canonical forms, to compare with the walked (canonical) paths.
        let canon_dir = dir
            .canonicalize()
            .map_err(|e| errored("resolving the directory of", &e))?;
        let skip = [
            canon_dir.join(&name),
            canon_dir.join(tmp.path().file_name().unwrap_or_default()),
            haul_dir,
        ];
        let file = tmp
            .reopen()
            .map_err(|e| errored("opening the temporary file for", &e))?;
        create(&input, file, gzip, ignore.as_deref(), &skip).map_err(|e| {
            StepError::Failed(format!("creating the tar archive {out_path:?}: {e}"))
        })?;
        tmp.persist(&out)
            .map_err(|e| errored("moving the archive into place at", &e.error))?;
        Ok(())
    })
    .await
    .map_err(|e| StepError::Errored(format!("tar task: {e}")))??;
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct Tar = "tar", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn names(archive: &Path, gz: bool) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let f = File::open(archive).expect("open");
        let r: Box<dyn Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let mut a = tar::Archive::new(r);
        a.entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let mut body = Vec::new();
                e.read_to_end(&mut body).expect("body");
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                (name, e.header().entry_type(), body)
            })
            .collect()
    }

    #[test]
    fn archives_a_tree_relative_to_it_with_links_and_ignores() {
        let d = tempfile::tempdir().expect("tempdir");
        let src = d.path().join("src");
        fs::create_dir_all(src.join("a/.git")).expect("dirs");
        fs::create_dir_all(src.join("b")).expect("dirs");
        fs::write(src.join("a/x.yaml"), "x").expect("write");
        fs::write(src.join("a/.git/HEAD"), "ref").expect("write");
        fs::write(src.join("b/notes.md"), "md").expect("write");
        std::os::unix::fs::symlink("../a/x.yaml", src.join("b/link")).expect("link");
        let out = d.path().join("out.tar");
        create(&src, File::create(&out).expect("create"), false, None, &[]).expect("tar");
        let got: Vec<_> = names(&out, false)
            .into_iter()
            .map(|(n, t, _)| (n, t))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/".into(), tar::EntryType::Directory),
                ("a/x.yaml".into(), tar::EntryType::Regular),
                ("b/".into(), tar::EntryType::Directory),
                ("b/link".into(), tar::EntryType::Symlink),
                ("b/notes.md".into(), tar::EntryType::Regular),
            ]
        );
        let out = d.path().join("out.tgz");
        create(
            &src,
            File::create(&out).expect("create"),
            true,
            Some("*.md\n"),
            &[],
        )
        .expect("tar");
        let got: Vec<_> = names(&out, true).into_iter().map(|(n, _, _)| n).collect();
        // Custom rules replace the .git default, as in Kargo.
        assert!(got.contains(&"a/.git/HEAD".to_string()), "{got:?}");
        assert!(!got.contains(&"b/notes.md".to_string()), "{got:?}");
    }

    #[test]
    fn a_single_file_is_archived_under_its_base_name() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::create_dir(d.path().join("dir")).expect("dir");
        let f = d.path().join("dir/values.yaml");
        fs::write(&f, "a: 1\n").expect("write");
        let out = d.path().join("one.tar");
        create(&f, File::create(&out).expect("create"), false, None, &[]).expect("tar");
        let got = names(&out, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "values.yaml");
        assert_eq!(got[0].2, b"a: 1\n");
    }
}
