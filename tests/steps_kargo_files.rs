//! file-write, tar, http-download and helm-template run as a user runs them: real Stage and
//! Freight files through `haul run-local` (a local git repository, a local HTTP server on
//! 127.0.0.1, the real helm); set-freight-alias through a real control plane and a real `haul
//! controller` process. Bad configs fail naming the field.

mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::fixtures::{Stage, promotion_yaml};
use support::{ControllerProcess, Outcome, get_json, git, kubectl_stdin, namespace, wait_for};

const REPO_URL: &str = "https://git.example.com/org/config.git";

/// Runs `steps` (a YAML list indented six spaces) with `haul run-local` in `dir/work`, with the
/// repository at `repo` standing in for [`REPO_URL`], and the test tools (helm) on PATH.
fn run_steps(dir: &Path, steps: &str, repo: Option<&Path>) -> Outcome {
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    let template = format!("      steps:\n{steps}");
    let stage = dir.join("stage.yaml");
    let yaml = Stage {
        ns: "my-app",
        name: "uat",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    std::fs::write(&stage, yaml).expect("stage file");
    let freight = dir.join("freight.yaml");
    std::fs::write(
        &freight,
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {name: 0123456789abcdef0123456789abcdef01234567, namespace: my-app}\nalias: wonky-wombat\norigin: {kind: Warehouse, name: w}\nimages:\n- {repoURL: example.com/my-app, tag: \"1006\", digest: \"sha256:1006\"}\n",
    )
    .expect("freight file");
    let path = format!(
        "{}:{}",
        support::tools_dir().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haul"));
    cmd.arg("run-local")
        .arg("--stage-file")
        .arg(&stage)
        .arg("--freight-file")
        .arg(&freight)
        .arg("--work-dir")
        .arg(&work)
        .env("PATH", path)
        .env_remove("HAUL_GIT_USERNAME")
        .env_remove("HAUL_GIT_PASSWORD")
        .stdin(Stdio::null());
    if let Some(repo) = repo {
        cmd.arg("--repo-override")
            .arg(format!("{REPO_URL}={}", repo.display()));
    }
    Outcome::from(cmd.output().expect("haul runs"))
}

fn all(o: &Outcome) -> String {
    format!("{}\n{}", o.stdout, o.stderr)
}

/// A bare repository whose main branch holds `files` (path, text).
fn repo_with(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
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
    let seed = seed.to_str().expect("utf-8").to_string();
    git(dir, &["clone", "-q", "--bare", &seed, "config.git"]);
    dir.join("config.git")
}

/// An umbrella chart `web` with a local (`file://`) dependency `sub`, a CRD, a hook and a test.
const CHART: &[(&str, &str)] = &[
    (
        "chart/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: sub\n  version: 0.1.0\n  repository: file://../sub\n",
    ),
    (
        "chart/values.yaml",
        "image:\n  tag: \"1005\"\nnote: none\nstage: none\n",
    ),
    (
        "chart/crds/widgets.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n",
    ),
    (
        "chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n  namespace: {{ .Release.Namespace }}\ndata:\n  tag: {{ .Values.image.tag | toString | quote }}\n  tagType: {{ kindOf .Values.image.tag | quote }}\n  note: {{ .Values.note | quote }}\n  stage: {{ .Values.stage | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  monitoring: {{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" | quote }}\n",
    ),
    (
        "chart/templates/hook.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-migrate\n  annotations:\n    helm.sh/hook: pre-install\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: busybox}]\n",
    ),
    (
        "chart/templates/tests/smoke.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-smoke\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers: [{name: t, image: busybox}]\n",
    ),
    (
        "sub/Chart.yaml",
        "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
    ),
    (
        "sub/templates/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: sub-svc\nspec:\n  ports: [{port: 80}]\n",
    ),
    ("README.md", "docs\n"),
];

const RENDER_STEPS: &str = r#"      - uses: git-clone
        config:
          repoURL: https://git.example.com/org/config.git
          checkout: [{branch: main, path: ./src}]
      - uses: file-write
        config:
          path: ./src/generated/values-${{ ctx.stage }}.yaml
          contents: "stage: ${{ ctx.stage }}\n"
          permissions: "0644"
      - uses: helm-template
        config:
          path: ./src/chart
          outPath: ./out/all.yaml
          releaseName: rel
          namespace: apps
          valuesFiles: [./src/generated/values-uat.yaml, ./src/no-such-values.yaml]
          ignoreMissingValueFiles: true
          setValues:
          - {key: image.tag, value: "${{ imageFrom('example.com/my-app').Tag }}"}
          - {key: note, value: "a,b", literal: true}
          buildDependencies: true
          includeCRDs: true
          skipTests: true
          kubeVersion: "1.29.0"
          apiVersions: [monitoring.coreos.com/v1]
      - uses: helm-template
        config:
          path: ./src/chart
          outPath: ./out/flat
          outLayout: flat
          releaseName: rel
          disableHooks: true
      - uses: helm-template
        config:
          path: ./src/chart
          outPath: ./out/helm
          releaseName: rel
          useReleaseName: true
      - uses: tar
        config:
          inPath: ./out
          outPath: ./bundle/out.tgz
          gzip: true
          ignore: |
            # the subchart's Service
            service-*.yaml
      - uses: tar
        config:
          inPath: ./src/README.md
          outPath: ./bundle/readme.tar
      - uses: tar
        config:
          inPath: .
          outPath: ./bundle/all.tar
          ignore: src/
"#;

/// The entries of a tar (gzipped when `gz`): name → contents.
fn tar_entries(file: &Path, gz: bool) -> Vec<(String, String)> {
    let f = std::fs::File::open(file).expect("archive");
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
            (name, String::from_utf8_lossy(&body).into_owned())
        })
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn file_write_helm_template_and_tar_render_and_pack_a_chart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = repo_with(tmp.path(), CHART);
    let run = run_steps(tmp.path(), RENDER_STEPS, Some(&repo));
    assert!(run.ok, "{}", all(&run));
    let work = tmp.path().join("work");

    // file-write: the file, its parents, its mode.
    let values = work.join("src/generated/values-uat.yaml");
    assert_eq!(
        std::fs::read_to_string(&values).expect("values"),
        "stage: uat\n"
    );
    let mode = std::fs::metadata(&values)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);

    // helm-template into one file: every field had its effect.
    let one = std::fs::read_to_string(work.join("out/all.yaml")).expect("all.yaml");
    for want in [
        "kind: CustomResourceDefinition", // includeCRDs
        "name: sub-svc",                  // the file:// dependency, built
        "namespace: apps",
        "tag: \"1006\"",
        "tagType: \"int64\"",   // --set types the value
        "note: \"a,b\"",        // --set-literal keeps the comma
        "stage: \"uat\"",       // the values file file-write wrote
        "kube: \"v1.29.0\"",    // kubeVersion
        "monitoring: \"true\"", // apiVersions
        "# Source: web/templates/hook.yaml\napiVersion: batch/v1", // hooks after the manifests
    ] {
        assert!(one.contains(want), "{want:?} not in all.yaml:\n{one}");
    }
    assert!(!one.contains("rel-smoke"), "skipTests: {one}");
    assert!(work.join("src/chart/Chart.lock").is_file());
    assert!(work.join("src/chart/charts/sub-0.1.0.tgz").is_file());

    // flat: one file per resource, named as Kargo names them; no hooks (disableHooks).
    assert_eq!(
        names_in(&work.join("out/flat")),
        ["configmap-my-app-rel-cfg.yaml", "service-sub-svc.yaml"],
        "the namespace defaults to the Project's"
    );
    let cm = std::fs::read_to_string(work.join("out/flat/configmap-my-app-rel-cfg.yaml"))
        .expect("configmap");
    assert!(cm.starts_with("# Source: web/templates/cm.yaml\n"), "{cm}");
    assert!(cm.contains("tag: \"1005\""), "{cm}");

    // helm layout with useReleaseName: <release>/<chart>/templates/…, hooks included, tests too.
    let helm = work.join("out/helm/rel/web");
    assert_eq!(names_in(&helm), ["charts", "templates"]);
    assert_eq!(
        names_in(&helm.join("templates")),
        ["cm.yaml", "hook.yaml", "tests"]
    );
    assert!(helm.join("charts/sub/templates/svc.yaml").is_file());

    // tar: the tree relative to inPath, ignore applied, gzipped.
    let entries = tar_entries(&work.join("bundle/out.tgz"), true);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"all.yaml"), "{names:?}");
    assert!(names.contains(&"flat/"), "{names:?}");
    assert!(
        names.contains(&"flat/configmap-my-app-rel-cfg.yaml"),
        "{names:?}"
    );
    assert!(
        names.contains(&"helm/rel/web/templates/cm.yaml"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("service-")), "{names:?}");
    let packed = &entries
        .iter()
        .find(|(n, _)| n == "all.yaml")
        .expect("all.yaml")
        .1;
    assert_eq!(packed, &one);
    // The whole work directory: not the archive being written, nor haul's own state.
    let entries = tar_entries(&work.join("bundle/all.tar"), false);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"bundle/out.tgz"), "{names:?}");
    assert!(names.contains(&"out/all.yaml"), "{names:?}");
    assert!(
        work.join(".haul").is_dir(),
        "run-local keeps its state in .haul"
    );
    for n in &names {
        assert!(
            !n.starts_with("bundle/all.tar")
                && !n.starts_with("bundle/.all.tar")
                && !n.starts_with(".haul")
                && !n.starts_with("src/"),
            "{n} archived: {names:?}"
        );
    }
    // A single file is archived under its base name, uncompressed without gzip.
    assert_eq!(
        tar_entries(&work.join("bundle/readme.tar"), false),
        [("README.md".to_string(), "docs\n".to_string())]
    );
}

/// A loopback HTTP server for http-download; its base URL. `/file` wants a header and a query
/// parameter; `/big` streams one byte more than the limit without a Content-Length.
fn serve() -> String {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use std::collections::HashMap;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let app = Router::new()
                .route(
                    "/file",
                    get(
                        |h: HeaderMap, q: Query<HashMap<String, String>>| async move {
                            let auth = h.get("authorization").and_then(|v| v.to_str().ok());
                            if auth != Some("Bearer t0k")
                                || q.get("v").map(String::as_str) != Some("2")
                            {
                                return (StatusCode::FORBIDDEN, "no".to_string());
                            }
                            (StatusCode::OK, "payload v2\n".to_string())
                        },
                    ),
                )
                .route("/other", get(|| async { "other\n" }))
                .route(
                    "/big",
                    get(|| async {
                        // 100 MiB + 1 in 1 MiB chunks, streamed (chunked, no Content-Length).
                        let chunk = bytes_of(1 << 20);
                        let chunks = (0..100)
                            .map(move |_| Ok::<_, std::io::Error>(chunk.clone()))
                            .chain(std::iter::once(Ok(bytes_of(1))));
                        Body::from_stream(futures::stream::iter(chunks))
                    }),
                )
                .route(
                    "/missing",
                    get(|| async { (StatusCode::NOT_FOUND, "gone") }),
                );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{addr}")
}

fn bytes_of(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'x'; n])
}

#[test]
fn http_download_saves_replaces_and_refuses() {
    let base = serve();
    let tmp = tempfile::tempdir().expect("tempdir");
    let steps = format!(
        r#"      - uses: http-download
        config:
          url: {base}/file
          outPath: ./dl/app.txt
          headers: [{{name: Authorization, value: Bearer t0k}}]
          queryParams: [{{name: v, value: "2"}}]
          timeout: 30s
      - uses: file-write
        config:
          path: ./copy/app.txt
          contents: "${{{{ 'local' }}}}"
      - uses: http-download
        config:
          url: {base}/other
          outPath: ./copy/app.txt
          allowOverwrite: true
"#
    );
    let run = run_steps(tmp.path(), &steps, None);
    assert!(run.ok, "{}", all(&run));
    let work = tmp.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("dl/app.txt")).expect("download"),
        "payload v2\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("copy/app.txt")).expect("replaced"),
        "other\n"
    );

    // Each case fails, says why, and leaves no file (nor temporary file) behind.
    let cases = [
        (
            "exists",
            format!(
                "      - uses: file-write\n        config: {{path: ./dl/a.txt, contents: mine}}\n      - uses: http-download\n        config: {{url: {base}/other, outPath: ./dl/a.txt}}\n"
            ),
            vec!["config.outPath", "allowOverwrite"],
            vec!["a.txt"],
        ),
        (
            "too big",
            format!(
                "      - uses: http-download\n        config: {{url: {base}/big, outPath: ./dl/big.bin}}\n"
            ),
            vec!["exceeds limit of 104857600 bytes"],
            vec![],
        ),
        (
            "status",
            format!(
                "      - uses: http-download\n        config: {{url: {base}/missing, outPath: ./dl/m.txt}}\n"
            ),
            vec!["status 404"],
            vec![],
        ),
        (
            "forbidden header",
            format!(
                "      - uses: http-download\n        config: {{url: {base}/file, outPath: ./dl/f.txt}}\n"
            ),
            vec!["status 403"],
            vec![],
        ),
    ];
    for (name, steps, parts, left) in cases {
        let run = run_steps(tmp.path(), &steps, None);
        let text = all(&run);
        assert!(!run.ok, "{name}: {text}");
        for part in parts {
            assert!(text.contains(part), "{name}: {part:?} in {text}");
        }
        let dl = tmp.path().join("work/dl");
        let files = if dl.exists() { names_in(&dl) } else { vec![] };
        assert_eq!(files, left, "{name}");
        if name == "exists" {
            let kept = std::fs::read_to_string(dl.join("a.txt")).expect("a.txt");
            assert_eq!(
                kept, "mine",
                "a refused download leaves the existing file alone"
            );
        }
    }
}

#[test]
fn bad_configs_fail_naming_the_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, &[&str])] = &[
        ("file-write", "{path: ./a.txt}", &["config", "contents"]),
        (
            "file-write",
            "{path: ../a.txt, contents: x}",
            &["config.path", "leaves"],
        ),
        (
            "file-write",
            "{path: /etc/a.txt, contents: x}",
            &["config.path", "relative"],
        ),
        (
            "file-write",
            "{path: .git/config, contents: x}",
            &["config.path", ".git"],
        ),
        (
            "file-write",
            "{path: a.sh, contents: x, permissions: \"0755\"}",
            &["config.permissions", "executable"],
        ),
        (
            "tar",
            "{inPath: ., outPath: ../../out.tar}",
            &["config.outPath", "leaves"],
        ),
        (
            "tar",
            "{inPath: ../.., outPath: out.tar}",
            &["config.inPath", "leaves"],
        ),
        (
            "tar",
            "{inPath: nothing-here, outPath: o.tar}",
            &["config.inPath", "does not exist"],
        ),
        (
            "tar",
            "{inPath: ., outPath: o.tar, gzip: yes-please}",
            &["config.gzip"],
        ),
        ("http-download", "{outPath: a}", &["config", "url"]),
        (
            "http-download",
            "{url: \"ftp://127.0.0.1/x\", outPath: a}",
            &["config.url", "http"],
        ),
        (
            "http-download",
            "{url: \"http://127.0.0.1:9/x\", outPath: ../../a}",
            &["config.outPath", "leaves"],
        ),
        (
            "http-download",
            "{url: \"http://169.254.169.254/latest/meta-data/\", outPath: a}",
            &["config.url", "link-local"],
        ),
        (
            "http-download",
            "{url: \"http://127.0.0.1:9/\", outPath: a, timeout: soon}",
            &["config.timeout"],
        ),
        (
            "helm-template",
            "{path: ./c, outPath: o.yaml}",
            &["config", "releaseName"],
        ),
        (
            "helm-template",
            "{path: ../../c, outPath: o.yaml, releaseName: r}",
            &["config.path", "leaves"],
        ),
        (
            "helm-template",
            "{path: ./c, outPath: o.yaml, releaseName: r}",
            &["config.path", "does not exist"],
        ),
        (
            "helm-template",
            "{path: ., outPath: o.yaml, releaseName: r, valuesFiles: [../../v.yaml]}",
            &["config.valuesFiles[0]", "leaves"],
        ),
        (
            "helm-template",
            "{path: ., outPath: o.yaml, releaseName: r, kubeVersion: latest}",
            &["config.kubeVersion", "latest"],
        ),
        (
            "helm-template",
            "{path: ., outPath: o, releaseName: r, outLayout: tree}",
            &["config.outLayout"],
        ),
        (
            "set-freight-alias",
            "{name: f, alias: a}",
            &["set-freight-alias needs a cluster"],
        ),
    ];
    for (step, config, parts) in cases {
        let steps = format!("      - uses: {step}\n        config: {config}\n");
        let run = run_steps(tmp.path(), &steps, None);
        let text = all(&run);
        assert!(!run.ok, "{step} {config}: {text}");
        for part in *parts {
            assert!(text.contains(part), "{step} {config}: {part:?} in {text}");
        }
    }
}

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = support::cp().dir().join("work-set-freight-alias");
        std::sync::Mutex::new(ControllerProcess::start(&dir))
    })
}

fn freight_yaml(ns: &str, name: &str, alias: Option<&str>) -> String {
    let labels = alias
        .map(|a| format!("  labels: {{kargo.akuity.io/alias: {a}}}\nalias: {a}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: {name}\n  namespace: {ns}\n{labels}origin:\n  kind: Warehouse\n  name: my-app\nimages:\n- repoURL: example.com/my-app\n  tag: \"1.0.0\"\n  digest: sha256:1000\n"
    )
}

fn promote(ns: &str, name: &str, stage: &str, freight: &str) -> serde_json::Value {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(ns, name, stage, freight),
    )
    .success("create promotion");
    wait_for(90, &format!("Promotion {name} to finish"), || {
        let p = get_json("promotion", name, ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase)
            .then(|| p["status"].clone())
    })
}

#[test]
fn set_freight_alias_relabels_a_freight_and_refuses_a_taken_alias() {
    let _ = controller();
    let ns = namespace("freight-alias");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &freight_yaml(&ns, "f1", Some("old-name")),
    )
    .success("freight f1");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &freight_yaml(&ns, "f2", Some("taken")),
    )
    .success("freight f2");
    let stage = |name: &str, name_expr: &str, alias: &str| {
        let steps = format!(
            "      steps:\n      - uses: set-freight-alias\n        config:\n          name: {name_expr}\n          alias: {alias}\n"
        );
        let yaml = Stage {
            ns: &ns,
            name,
            warehouse: "my-app",
            sources: "{direct: true}",
            template: &steps,
        }
        .yaml();
        kubectl_stdin(&["apply", "-f", "-"], &yaml).success("stage");
    };

    stage(
        "dev",
        "${{ ctx.targetFreight.name }}",
        "golden-${{ ctx.stage }}",
    );
    let status = promote(&ns, "p1", "dev", "f1");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let f1 = get_json("freight", "f1", &ns).expect("f1");
    assert_eq!(f1["alias"], "golden-dev", "{f1:#}");
    assert_eq!(
        f1["metadata"]["labels"]["kargo.akuity.io/alias"], "golden-dev",
        "{f1:#}"
    );

    // An alias another Freight has: Failed, naming it; f1 keeps its alias.
    stage("taken", "f1", "taken");
    let status = promote(&ns, "p2", "taken", "f1");
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap_or_default();
    for part in ["config.alias", "\"taken\"", "\"f2\""] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert_eq!(
        get_json("freight", "f1", &ns).expect("f1")["alias"],
        "golden-dev"
    );

    // A Freight that does not exist: Failed, naming it.
    stage("missing", "no-such-freight", "fresh");
    let status = promote(&ns, "p3", "missing", "f1");
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"no-such-freight\"") && message.contains("not found"),
        "{message}"
    );
}
