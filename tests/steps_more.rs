//! yaml-merge, toml-parse, toml-update and untar, run as a user runs them: real Stage and
//! Freight files through `haul run-local`, against a local git repository.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};

use support::Outcome as Run;
use support::git;
use support::run_local;

/// The steps run in `dir/work` (the tests look inside it afterwards).
fn run_steps(dir: &Path, steps: &str, repo: &Path) -> Run {
    run_local::run_steps(
        dir,
        steps,
        "example.com/my-app",
        &dir.join("work"),
        Some(repo),
    )
}

/// A bare repository whose main branch holds `files` (path, bytes).
fn repo_with(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).expect("dirs");
    git(&seed, &["init", "-q", "-b", "main"]);
    for (path, body) in files {
        let p = seed.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(p, body).expect("write");
    }
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "init"]);
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().expect("utf-8"),
            "config.git",
        ],
    );
    dir.join("config.git")
}

enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Link(&'a str, &'a str),
}

/// A gzipped tar. Names are written into the header raw, so hostile ones (`../x`) can be made.
fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            Entry::File(name, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                (name, data)
            }
            Entry::Link(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let t = target.as_bytes();
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
                (name, &[])
            }
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    let mut gz = b.into_inner().expect("tar");
    gz.flush().expect("flush");
    gz.finish().expect("gzip")
}

const BASE: &str =
    "# base\nimage:\n  repository: my-app\n  tag: \"1005\"\nreplicas: 1\nports: [80, 443]\n";
const OVERLAY: &str =
    "replicas: 3\nimage:\n  tag: \"1006\"\n  pullPolicy: Always\nports: [8080]\nenv: prod\n";
const APP_TOML: &str = "# app settings\n[image]\ntag = \"1005\"   # set by Kargo\n\n[server]\nreplicas = 1\nports = [80, 443]\n";

#[test]
fn merge_toml_and_untar_then_push() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tar_gz(&[
        Entry::File("pkg/manifests/a.yaml", b"kind: A\n".to_vec()),
        // As in GNU tar and Kargo, a leading `.` counts as a component to strip.
        Entry::File("./manifests/b.yaml", b"kind: B\n".to_vec()),
        Entry::File("pkg/.git/config", b"[core]\n".to_vec()),
        Entry::File("pkg/README.md", b"docs\n".to_vec()),
        Entry::Link("pkg/manifests/current.yaml", "a.yaml"),
        Entry::File("top-level-only", b"stripped away\n".to_vec()),
    ]);
    let bare = repo_with(
        tmp.path(),
        &[
            ("base.yaml", BASE.into()),
            ("overlay.yaml", OVERLAY.into()),
            ("app.toml", APP_TOML.into()),
            ("bundle.tar.gz", bundle),
            ("vendor/stale.yaml", b"old\n".to_vec()),
        ],
    );
    let steps = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
      - uses: toml-parse
        as: app
        config:
          path: ./src/app.toml
          outputs:
          - {name: tag, fromExpression: image.tag}
          - {name: replicas, fromExpression: "server.replicas + 2"}
      - uses: toml-update
        as: toml
        config:
          path: ./src/app.toml
          updates:
          - {key: image.tag, value: "1006"}
          - {key: server.replicas, value: "${{ outputs.app.replicas }}"}
          - {key: server.ports.0, value: 8080}
      - uses: yaml-merge
        as: merge
        config:
          inFiles: [./src/base.yaml, ./src/missing.yaml, ./src/overlay.yaml]
          outFile: ./src/out/values.yaml
          ignoreMissingFiles: true
      - uses: untar
        config:
          inPath: ./src/bundle.tar.gz
          outPath: ./src/vendor
          stripComponents: 1
          ignore: |
            # docs stay out
            *.md
            .git
      - uses: git-commit
        config:
          path: ./src
          message: "${{ outputs.toml.commitMessage }}\n\n${{ outputs.merge.commitMessage }}\n\nwas ${{ outputs.app.tag }}"
      - uses: git-push
        config:
          path: ./src
"#;
    run_steps(tmp.path(), steps, &bare).success("run-local");

    // toml-update changed only the three values.
    assert_eq!(
        git(&bare, &["show", "main:app.toml"]),
        APP_TOML
            .replace("\"1005\"", "\"1006\"")
            .replace("replicas = 1", "replicas = 3")
            .replace("[80, 443]", "[8080, 443]")
    );
    // yaml-merge: base order, later files win, missing file skipped.
    let merged: serde_json::Value =
        serde_saphyr::from_str(&git(&bare, &["show", "main:out/values.yaml"])).expect("yaml");
    assert_eq!(
        merged,
        serde_json::json!({
            "image": {"repository": "my-app", "tag": "1006", "pullPolicy": "Always"},
            "replicas": 3, "ports": [8080], "env": "prod"
        })
    );
    // untar replaced vendor/: stripped, ignored files skipped, the symlink kept.
    let tree = git(&bare, &["ls-tree", "-r", "main", "vendor"]);
    let listed: Vec<&str> = tree
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, p)| p))
        .collect();
    assert_eq!(
        listed,
        [
            "vendor/manifests/a.yaml",
            "vendor/manifests/b.yaml",
            "vendor/manifests/current.yaml"
        ],
        "{tree}"
    );
    assert!(
        tree.lines()
            .any(|l| l.starts_with("120000") && l.ends_with("current.yaml")),
        "{tree}"
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with(
            "Updated ./src/app.toml\n\n- image.tag: '1006'\n- server.replicas: 3\n- server.ports.0: 8080\n\nMerged 3 YAML files to ./src/out/values.yaml\n- ./src/base.yaml\n- ./src/missing.yaml\n- ./src/overlay.yaml\n\nwas 1005"
        ),
        "{message}"
    );
}

/// Every file name under `dir`, recursively.
fn names_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(names_under(&e.path()));
        }
    }
    out
}

#[test]
fn hostile_archives_and_bad_configs_fail_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let zeros = vec![0u8; 60 * 1024 * 1024];
    let bare = repo_with(
        tmp.path(),
        &[
            (
                "escape.tar.gz",
                tar_gz(&[
                    Entry::File("ok.yaml", b"fine\n".to_vec()),
                    Entry::File("../../evil", b"pwned\n".to_vec()),
                ]),
            ),
            (
                "absolute.tar.gz",
                tar_gz(&[Entry::File("/tmp/evil", b"pwned\n".to_vec())]),
            ),
            (
                "link.tar.gz",
                tar_gz(&[Entry::Link("evil", "../../../etc/passwd")]),
            ),
            ("bomb.tar.gz", tar_gz(&[Entry::File("zeros", zeros)])),
            ("vendor/keep.yaml", b"kept\n".to_vec()),
            ("app.toml", APP_TOML.into()),
        ],
    );
    let clone = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
"#;
    let cases: [(&str, &[&str]); 4] = [
        (
            "escape",
            &["entry \"../../evil\" leaves the output directory"],
        ),
        (
            "absolute",
            &["entry \"/tmp/evil\" leaves the output directory"],
        ),
        (
            "link",
            &["symlink \"evil\" points outside the output directory"],
        ),
        ("bomb", &["over the 52428800-byte limit for one file"]),
    ];
    for (archive, said) in cases {
        let dir = tmp.path().join(archive);
        std::fs::create_dir_all(&dir).expect("dir");
        let steps = format!(
            "{clone}      - uses: untar\n        config: {{inPath: ./src/{archive}.tar.gz, outPath: ./src/vendor}}\n"
        );
        run_steps(&dir, &steps, &bare).refused_with(archive, said);
        // Nothing was written outside, and the output directory was left as it was.
        let names = names_under(tmp.path());
        assert!(!names.iter().any(|n| n == "evil"), "{archive}: {names:?}");
        let vendor = dir.join("work").join("src").join("vendor");
        assert_eq!(names_under(&vendor), ["keep.yaml"], "{archive}");
        assert!(!names.iter().any(|n| n == "zeros"), "{archive}");
    }

    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).expect("dir");
    let steps = format!(
        "{clone}      - uses: toml-update\n        config: {{path: ./src/app.toml, updates: [{{key: image.nope, value: x}}]}}\n"
    );
    run_steps(&dir, &steps, &bare).refused_with(
        "toml-update of a missing key",
        &["./src/app.toml: key \"image.nope\": key path not found"],
    );
    let dir = tmp.path().join("config2");
    std::fs::create_dir_all(&dir).expect("dir");
    let steps = format!(
        "{clone}      - uses: yaml-merge\n        config: {{inFiles: [./src/nope.yaml], outFile: ./out.yaml, strict: true}}\n"
    );
    run_steps(&dir, &steps, &bare).refused_with("yaml-merge with an unknown field", &["strict"]);
    let dir = tmp.path().join("config3");
    std::fs::create_dir_all(&dir).expect("dir");
    let steps = format!(
        "{clone}      - uses: yaml-merge\n        config: {{inFiles: [./src/nope.yaml], outFile: ../out.yaml}}\n"
    );
    run_steps(&dir, &steps, &bare).refused_with(
        "yaml-merge writing outside",
        &["config.outFile", "leaves the promotion's work directory"],
    );
}
