//! The Kargo step fields haul once refused or ignored, doing what Kargo does: run as a user
//! runs them (`haul run-local` with real Stage and Freight files) against local git
//! repositories, a loopback HTTP server, the real kustomize (kubectl's) and helm; and git's
//! TLS setting against a loopback HTTPS server with a self-signed certificate.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use support::Outcome as Run;
use support::fixtures::Stage;
use support::git;
use support::run_local::REPO_URL;

/// Runs `steps` with `haul run-local` in `dir/work` (kept for the test to look at), the
/// steps' repository URL mapped to `repo`, and `extra_path` searched first for binaries.
fn run_steps(dir: &Path, steps: &str, repo: Option<&Path>, extra_path: Option<&Path>) -> Run {
    let template = format!("      steps:\n{steps}");
    let stage = dir.join("stage.yaml");
    std::fs::write(
        &stage,
        Stage {
            ns: "my-app",
            name: "uat",
            warehouse: "w",
            sources: "{direct: true}",
            template: &template,
        }
        .yaml(),
    )
    .expect("stage file");
    let freight = dir.join("freight.yaml");
    std::fs::write(
        &freight,
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {name: 0123456789abcdef0123456789abcdef01234567, namespace: my-app}\norigin: {kind: Warehouse, name: w}\nimages:\n- {repoURL: example.com/my-app, tag: \"1006\"}\n",
    )
    .expect("freight file");
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haul"));
    cmd.arg("run-local")
        .arg("--stage-file")
        .arg(&stage)
        .arg("--freight-file")
        .arg(&freight)
        .arg("--work-dir")
        .arg(&work)
        .arg("--push")
        .env_remove("HAUL_GIT_USERNAME")
        .env_remove("HAUL_GIT_PASSWORD")
        .stdin(Stdio::null());
    if let Some(repo) = repo {
        cmd.arg("--repo-override")
            .arg(format!("{REPO_URL}={}", repo.display()));
    }
    if let Some(p) = extra_path {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", p.display()));
    }
    Run::from(cmd.output().expect("haul runs"))
}

/// A bare repository `name.git` in `dir` whose main branch holds `files`, after `prepare`
/// ran in the seed (e.g. to add a submodule).
fn bare_repo(dir: &Path, name: &str, files: &[(&str, &str)], prepare: impl Fn(&Path)) -> PathBuf {
    let seed = dir.join(format!("{name}-seed"));
    std::fs::create_dir_all(&seed).expect("dirs");
    git(&seed, &["init", "-q", "-b", "main"]);
    for (path, body) in files {
        let p = seed.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(p, body).expect("write");
    }
    prepare(&seed);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "init"]);
    let bare = dir.join(format!("{name}.git"));
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().expect("utf-8"),
            bare.to_str().expect("utf-8"),
        ],
    );
    // As hosted git servers do: partial clone filters are served.
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    bare
}

fn no_prep(_: &Path) {}

/// Every file under `dir` (relative, sorted), `.git` left out.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name() == ".git" {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn git_clone_blobless_fetches_no_unneeded_blobs_and_recurse_submodules_checks_them_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = bare_repo(tmp.path(), "lib", &[("lib.txt", "library\n")], no_prep);
    let lib_url = lib.to_str().expect("utf-8").to_string();
    let repo = bare_repo(
        tmp.path(),
        "config",
        &[
            ("apps/web/values.yaml", "tag: 1005\n"),
            ("big/blob.bin", "not needed by a sparse checkout of apps/\n"),
        ],
        |seed| {
            git(
                seed,
                &[
                    "-c",
                    "protocol.file.allow=always",
                    "submodule",
                    "add",
                    "-q",
                    &lib_url,
                    "apps/vendor/lib",
                ],
            );
        },
    );
    let blob = git(&repo, &["rev-parse", "main:big/blob.bin"])
        .trim()
        .to_string();
    let steps = format!(
        r#"      - uses: git-clone
        config:
          repoURL: {REPO_URL}
          blobless: true
          recurseSubmodules: true
          checkout:
          - {{branch: main, path: ./src, sparse: [apps]}}
      - uses: git-clone
        config:
          repoURL: {REPO_URL}
          checkout:
          - {{branch: main, path: ./plain}}
      - uses: yaml-update
        config:
          path: ./src/apps/web/values.yaml
          updates: [{{key: tag, value: "1006"}}]
      - uses: git-commit
        config: {{path: ./src, message: promote 1006}}
      - uses: git-push
        config: {{path: ./src}}
"#
    );
    run_steps(tmp.path(), &steps, Some(&repo), None).success("blobless clone");
    let work = tmp.path().join("work");
    // The submodule is checked out (recursively, with the repository's access).
    assert_eq!(
        std::fs::read_to_string(work.join("src/apps/vendor/lib/lib.txt")).expect("submodule"),
        "library\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("src/apps/web/values.yaml")).expect("file"),
        "tag: \"1006\"\n"
    );
    // The blobless worktree commits and pushes as any other.
    assert_eq!(
        git(&repo, &["show", "main:apps/web/values.yaml"]),
        "tag: \"1006\"\n"
    );
    assert_eq!(
        git(&repo, &["show", "main:big/blob.bin"]),
        "not needed by a sparse checkout of apps/\n"
    );
    // Without recurseSubmodules the submodule stays an empty directory.
    assert!(files_under(&work.join("plain/apps/vendor/lib")).is_empty());
    // The blobless checkout comes from a partial clone that lacks the blob it never needed;
    // the other checkout from a full clone of its own.
    let repos = work.join(".haul/git-cache/repos");
    let names: Vec<String> = std::fs::read_dir(&repos)
        .expect("cache")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let partial = names
        .iter()
        .find(|n| n.ends_with("-blobless.git"))
        .unwrap_or_else(|| panic!("no partial clone among {names:?}"));
    let full = names
        .iter()
        .find(|n| !n.ends_with("-blobless.git"))
        .unwrap_or_else(|| panic!("no full clone among {names:?}"));
    let partial = repos.join(partial);
    assert_eq!(
        git(&partial, &["config", "remote.origin.partialclonefilter"]).trim(),
        "blob:none"
    );
    assert_eq!(
        git(&partial, &["config", "remote.origin.promisor"]).trim(),
        "true"
    );
    // `--missing=print` lists what a partial clone lacks without fetching it.
    let missing = |dir: &Path| -> Vec<String> {
        git(
            dir,
            &[
                "rev-list",
                "--objects",
                "--missing=print",
                "refs/remotes/origin/main",
            ],
        )
        .lines()
        .filter_map(|l| l.strip_prefix('?').map(str::to_string))
        .collect()
    };
    assert_eq!(
        missing(&partial),
        std::slice::from_ref(&blob),
        "the partial clone lacks only the unneeded blob"
    );
    assert!(missing(&repos.join(full)).is_empty());
}

#[test]
fn copy_ignore_skips_matching_files_and_a_glob_delete_removes_only_matches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = bare_repo(
        tmp.path(),
        "config",
        &[
            ("base/app.yaml", "kind: A\n"),
            ("base/README.md", "docs\n"),
            ("base/notes/todo.md", "later\n"),
            ("base/keep.md", "kept by !\n"),
            ("base/secret/token", "s3cr3t\n"),
            ("base/sub/secret", "a file named secret\n"),
            ("out/a.tmp", "x\n"),
            ("out/deep/b.tmp", "x\n"),
            ("out/deep/c.yaml", "x\n"),
            ("out/d.yaml", "x\n"),
        ],
        no_prep,
    );
    let steps = format!(
        r#"      - uses: git-clone
        config:
          repoURL: {REPO_URL}
          checkout: [{{branch: main, path: ./src}}]
      - uses: copy
        config:
          inPath: ./src/base
          outPath: ./copied
          ignore: |
            # docs stay behind, except one
            *.md
            !keep.md
            secret/
      - uses: delete
        config:
          paths: [./src/out/**/*.tmp, "src/out/*.json"]
          pathsAreGlobs: true
"#
    );
    run_steps(tmp.path(), &steps, Some(&repo), None).success("copy and delete");
    let work = tmp.path().join("work");
    assert_eq!(
        files_under(&work.join("copied")),
        ["app.yaml", "keep.md", "sub/secret"]
    );
    assert_eq!(
        files_under(&work.join("src/out")),
        ["d.yaml", "deep/c.yaml"]
    );

    // strict: a pattern that matches nothing fails the step, naming it; nothing is deleted.
    let steps = format!(
        r#"      - uses: git-clone
        config:
          repoURL: {REPO_URL}
          checkout: [{{branch: main, path: ./src}}]
      - uses: delete
        config:
          paths: [src/out/*.yaml, src/out/*.json]
          pathsAreGlobs: true
          strict: true
"#
    );
    run_steps(tmp.path(), &steps, Some(&repo), None).refused_with(
        "strict glob",
        &["config.paths[1]: no paths matched pattern \"src/out/*.json\""],
    );
    assert!(tmp.path().join("work/src/out/d.yaml").is_file());
}

const CHART: &str = r#"apiVersion: v2
name: caps
version: 0.1.0
"#;

const CHART_TEMPLATE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: caps
data:
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  hasWidget: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}
"#;

const KUSTOMIZATION: &str = r#"helmCharts:
- name: caps
  releaseName: caps
resources:
- deploy.yaml
"#;

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: stage
spec:
  ports: [{port: 80}]
"#;

#[test]
fn kustomize_build_names_files_in_either_format_and_passes_helm_capabilities() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = bare_repo(
        tmp.path(),
        "config",
        &[
            ("app/kustomization.yaml", KUSTOMIZATION),
            ("app/deploy.yaml", DEPLOY),
            ("app/charts/caps/Chart.yaml", CHART),
            ("app/charts/caps/values.yaml", "{}\n"),
            ("app/charts/caps/templates/cm.yaml", CHART_TEMPLATE),
        ],
        no_prep,
    );
    let helm_dir = support::tools_dir().join("bin");
    assert!(helm_dir.join("helm").is_file(), "helm is not installed");
    let steps = format!(
        r#"      - uses: git-clone
        config:
          repoURL: {REPO_URL}
          checkout: [{{branch: main, path: ./src}}]
      - uses: kustomize-build
        config:
          path: ./src/app
          outPath: ./kargo-names
          plugin:
            helm:
              apiVersions: [example.com/v1/Widget]
              kubeVersion: "1.29.3"
      - uses: kustomize-build
        config:
          path: ./src/app
          outPath: ./kustomize-names
          outputFormat: kustomize
"#
    );
    run_steps(tmp.path(), &steps, Some(&repo), Some(&helm_dir)).success("kustomize-build");
    let work = tmp.path().join("work");
    assert_eq!(
        files_under(&work.join("kargo-names")),
        [
            "configmap-caps.yaml",
            "prod-deployment-web.yaml",
            "stage-service-web.yaml"
        ]
    );
    assert_eq!(
        files_under(&work.join("kustomize-names")),
        [
            "prod_apps_v1_deployment_web.yaml",
            "stage_v1_service_web.yaml",
            "v1_configmap_caps.yaml"
        ]
    );
    let cm = |dir: &str, file: &str| -> serde_json::Value {
        serde_saphyr::from_str(
            &std::fs::read_to_string(work.join(dir).join(file)).expect("rendered"),
        )
        .expect("YAML")
    };
    let with = cm("kargo-names", "configmap-caps.yaml");
    assert_eq!(with["data"]["kubeVersion"], "v1.29.3", "{with}");
    assert_eq!(with["data"]["hasWidget"], "true", "{with}");
    let without = cm("kustomize-names", "v1_configmap_caps.yaml");
    assert_eq!(without["data"]["hasWidget"], "false", "{without}");
    assert_ne!(without["data"]["kubeVersion"], "v1.29.3", "{without}");
}

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    body: String,
}

/// A loopback HTTP/1.1 server answering every request with `status`, `content_type` and
/// `body`, recording what it was sent.
fn serve(
    status: u16,
    content_type: &'static str,
    body: &'static str,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut got = vec![0; length];
            let _ = reader.read_exact(&mut got);
            if let Ok(mut l) = log.lock() {
                l.push(Seen {
                    request_line: request_line.trim().to_string(),
                    body: String::from_utf8_lossy(&got).into_owned(),
                });
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn http_sends_body_from_file_and_reads_the_response_as_told() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = bare_repo(
        tmp.path(),
        "config",
        &[("payload.json", "{\"text\": \"promoted 1006\"}\n")],
        no_prep,
    );
    // A YAML body served as text/plain, read as YAML because the step says so.
    let (url, seen) = serve(200, "text/plain; charset=utf-8", "state: done\nid: 42\n");
    let steps = format!(
        r#"      - uses: git-clone
        config:
          repoURL: {REPO_URL}
          checkout: [{{branch: main, path: ./src}}]
      - uses: http
        as: hook
        config:
          method: POST
          url: {url}/hooks
          bodyFromFile: ./src/payload.json
          responseContentType: application/yaml
          successExpression: response.body.state == 'done'
          outputs:
          - {{name: id, fromExpression: response.body.id}}
      - uses: http
        as: text
        config:
          url: {url}/text
          outputs:
          - {{name: raw, fromExpression: response.body}}
      - uses: fail
        config:
          message: "id ${{{{ outputs.hook.id }}}}; raw ${{{{ outputs.text.raw }}}}"
"#
    );
    let run = run_steps(tmp.path(), &steps, Some(&repo), None).failure("the fail step");
    // text/plain without an override: the body is the text itself.
    assert!(
        run.stderr.contains("id 42; raw state: done\nid: 42"),
        "{}",
        run.stderr
    );
    let sent = seen.lock().expect("log").clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].request_line, "POST /hooks HTTP/1.1");
    assert_eq!(sent[0].body, "{\"text\": \"promoted 1006\"}\n");

    // A bodyFromFile outside the work directory, or together with body, is refused.
    let steps = format!(
        r#"      - uses: http
        config: {{url: "{url}/x", bodyFromFile: ../../etc/passwd}}
"#
    );
    run_steps(tmp.path(), &steps, None, None).refused_with(
        "escaping bodyFromFile",
        &[
            "config.bodyFromFile",
            "leaves the promotion's work directory",
        ],
    );
    let steps = format!(
        r#"      - uses: http
        config: {{url: "{url}/x", body: hi, bodyFromFile: ./a}}
"#
    );
    run_steps(tmp.path(), &steps, None, None).refused_with(
        "body and bodyFromFile",
        &["config.bodyFromFile: set body or bodyFromFile, not both"],
    );
    assert_eq!(
        seen.lock().expect("log").len(),
        2,
        "refused requests were sent"
    );
}

#[test]
fn http_error_expression_explains_a_failure_and_a_broken_one_is_errored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (url, _) = serve(
        422,
        "application/json",
        r#"{"error": {"message": "stage is frozen"}}"#,
    );
    let step = |error_expression: &str| {
        format!(
            r#"      - uses: http
        config:
          url: {url}/deploy
          failureExpression: response.status >= 400
          successExpression: response.status == 200
          errorExpression: "{error_expression}"
"#
        )
    };
    let run = run_steps(tmp.path(), &step("response.body.error.message"), None, None)
        .failure("failure criteria");
    assert!(
        run.stderr
            .contains("HTTP (422) response met the failure criteria: \"stage is frozen\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ended Failed"), "{}", run.stderr);
    // Not a string, or not there: the plain message, still Failed.
    let run = run_steps(tmp.path(), &step("response.body.nothing.here"), None, None)
        .failure("no message");
    assert!(
        run.stderr
            .contains("HTTP (422) response met the failure criteria"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("criteria: \""), "{}", run.stderr);
    assert!(run.stderr.contains("ended Failed"), "{}", run.stderr);
    // An expression that does not compile is the config's fault: Errored, naming the field.
    let run =
        run_steps(tmp.path(), &step("response.body.(("), None, None).failure("broken expression");
    assert!(
        run.stderr.contains("config.errorExpression"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ended Errored"), "{}", run.stderr);
}

#[test]
fn http_goes_through_the_proxy_and_the_proxy_address_is_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The proxy is the loopback server; the target's name is never resolved by haul.
    let (proxy, seen) = serve(200, "application/json", r#"{"via": "proxy"}"#);
    let steps = format!(
        r#"      - uses: http
        as: p
        config:
          url: http://upstream.example.invalid/status?x=1
          proxy: {proxy}
          outputs:
          - {{name: via, fromExpression: response.body.via}}
      - uses: fail
        config: {{message: "via ${{{{ outputs.p.via }}}}"}}
"#
    );
    let run = run_steps(tmp.path(), &steps, None, None).failure("fail step");
    assert!(run.stderr.contains("via proxy"), "{}", run.stderr);
    let seen = seen.lock().expect("log").clone();
    assert_eq!(
        seen[0].request_line,
        "GET http://upstream.example.invalid/status?x=1 HTTP/1.1"
    );
    // A proxy at a link-local (instance metadata) address is refused before anything is sent.
    let steps = r#"      - uses: http
        config: {url: "http://upstream.example.invalid/", proxy: "http://169.254.169.254:3128"}
"#;
    run_steps(tmp.path(), steps, None, None)
        .refused_with("metadata proxy", &["config.proxy", "link-local"]);
}

/// A git server over HTTPS on 127.0.0.1 with a certificate no one trusts: `git http-backend`
/// (smart HTTP, pushes allowed) behind axum-server's TLS, serving the bare repositories in
/// `root`. Returns its base URL.
async fn serve_git_https(root: PathBuf) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::IntoResponse;

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca = haul_testenv::pki::Ca::new("untrusted test CA").expect("CA");
    let pair = ca.serving_cert().expect("serving certificate");
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        pair.cert_pem.into_bytes(),
        pair.key_pem.into_bytes(),
    )
    .await
    .expect("TLS config");
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let root = root.clone();
        async move {
            let header = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let mut child = tokio::process::Command::new("git")
                .arg("http-backend")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("GIT_PROJECT_ROOT", &root)
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("REMOTE_USER", "tester")
                .env("REQUEST_METHOD", method.as_str())
                .env("PATH_INFO", uri.path())
                .env("QUERY_STRING", uri.query().unwrap_or_default())
                .env("CONTENT_TYPE", header("content-type"))
                .env("CONTENT_LENGTH", body.len().to_string())
                .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
                .env("GIT_PROTOCOL", header("git-protocol"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("git http-backend");
            let mut stdin = child.stdin.take().expect("stdin");
            tokio::io::AsyncWriteExt::write_all(&mut stdin, &body)
                .await
                .expect("request body");
            drop(stdin);
            let out = child.wait_with_output().await.expect("http-backend ran");
            // CGI: headers, a blank line, the body.
            let split = out
                .stdout
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i, i + 4))
                .or_else(|| {
                    out.stdout
                        .windows(2)
                        .position(|w| w == b"\n\n")
                        .map(|i| (i, i + 2))
                })
                .expect("CGI headers");
            let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
            let mut status = StatusCode::OK;
            let mut response_headers = HeaderMap::new();
            for line in head.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = v.trim();
                if k.eq_ignore_ascii_case("status") {
                    let code = v.split(' ').next().unwrap_or("200");
                    status = code.parse().unwrap_or(StatusCode::OK);
                } else if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.trim().as_bytes()),
                    axum::http::HeaderValue::from_str(v),
                ) {
                    response_headers.append(k, v);
                }
            }
            (status, response_headers, out.stdout[split.1..].to_vec()).into_response()
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let server = axum_server::from_tcp_rustls(listener, tls).expect("TLS server");
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    format!("https://{addr}")
}

/// `insecureSkipTLSVerify` for git, against a real HTTPS git server whose certificate git
/// cannot verify: refused without it; with it the clone, a commit pushed from the worktree
/// (reopened by path, as git-push does) and a Warehouse subscription's discovery all work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_insecure_skip_tls_verify_reaches_an_unverifiable_https_server() {
    use haul::api::GitSubscription;
    use haul::git::{Author, Checkout, Credentials, PushOptions, RemoteOptions, RepoCache};

    let tmp = tempfile::tempdir().expect("tempdir");
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).expect("dirs");
    bare_repo(
        &served,
        "config",
        &[("values.yaml", "tag: 1005\n")],
        no_prep,
    );
    let url = format!("{}/config.git", serve_git_https(served.clone()).await);
    let cache = RepoCache::new(tmp.path().join("cache")).expect("cache");
    let none = Credentials::None;

    let verifying = Checkout::branch("main").with_depth(1);
    let e = cache
        .checkout(&url, &none, &verifying, &tmp.path().join("work/a"))
        .await
        .expect_err("an untrusted certificate is refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    let mut insecure = Checkout::branch("main").with_depth(1);
    insecure.skip_tls_verify = true;
    let path = tmp.path().join("work/b");
    cache
        .checkout(&url, &none, &insecure, &path)
        .await
        .expect("checkout skipping TLS verification");
    std::fs::write(path.join("values.yaml"), "tag: 1006\n").expect("edit");
    let mut wt = cache.open_worktree(&url, &path).await.expect("reopen");
    wt.commit_all("promote 1006", &Author::default())
        .await
        .expect("commit");
    let pushed = wt
        .push(&none, &PushOptions::default())
        .await
        .expect("push from the reopened worktree, still skipping verification");
    assert_eq!(
        git(&served.join("config.git"), &["rev-parse", "main"]).trim(),
        pushed.commit
    );

    // A Warehouse's git subscription: discovery verifies unless the subscription says not to.
    let sub = |insecure: bool| -> GitSubscription {
        serde_json::from_value(serde_json::json!({
            "repoURL": url, "branch": "main", "insecureSkipTLSVerify": insecure
        }))
        .expect("subscription")
    };
    assert_eq!(
        haul::discovery::git_commits::remote_options(&sub(true)),
        RemoteOptions {
            skip_tls_verify: true,
            blobless: false
        }
    );
    let e = haul::discovery::git_commits::discover_commits(&cache, &sub(false), &none, None)
        .await
        .expect_err("verified");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let found = haul::discovery::git_commits::discover_commits(&cache, &sub(true), &none, None)
        .await
        .expect("discovery skipping TLS verification");
    let found = serde_json::to_string(&found).expect("JSON");
    assert!(found.contains(&pushed.commit), "{found}");
}
