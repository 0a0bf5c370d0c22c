//! Promotion latency (created → Succeeded) on a small and a large GitOps repository, first and
//! later promotions, and push throughput with N Stages on one branch — against a real control
//! plane, a real `haul controller` process and the git server over HTTP.
//!
//!   cargo bench --bench promotion            (installs the side services on first use)
//!
//! Bounded: every wait times out; the large repository is generated with `git fast-import`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haul_testenv::{ControlPlane, Services};

const LARGE_FILES: usize = 50_000;
const LARGE_COMMITS: usize = 2_000;
const STAGES: usize = 8;

struct Env {
    cp: ControlPlane,
    services: Services,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.services.stop();
    }
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl(env: &Env, args: &[&str], input: Option<&str>) -> String {
    let mut c = env.cp.kubectl();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("kubectl");
    if let Some(i) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(i.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn var<'a>(env: &'a Env, k: &str) -> &'a str {
    env.services.get(k).unwrap_or_default()
}

fn auth_url(env: &Env, url: &str) -> String {
    let pass = var(env, "HAUL_TEST_GIT_PASSWORD")
        .replace('@', "%40")
        .replace(' ', "%20");
    url.replacen(
        "http://",
        &format!("http://{}:{pass}@", var(env, "HAUL_TEST_GIT_USER")),
        1,
    )
}

/// A repository with `files` files in `apps/svc-<i>/…` and `commits` commits of history, on
/// branch `gitops`, generated with git fast-import and pushed to the server.
fn make_repo(env: &Env, name: &str, files: usize, commits: usize) -> String {
    let url = env.services.new_repo(name).expect("new repository");
    let dir = env.cp.dir().join(format!("gen-{name}"));
    std::fs::create_dir_all(&dir).expect("dir");
    sh(Command::new("git")
        .arg("init")
        .arg("-q")
        .arg("-b")
        .arg("gitops")
        .arg(&dir));
    let mut stream = String::new();
    let mut mark = 0;
    let mut blob = |content: &str, stream: &mut String| -> usize {
        mark += 1;
        stream.push_str(&format!(
            "blob\nmark :{mark}\ndata {}\n{content}\n",
            content.len()
        ));
        mark
    };
    let kust = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\nimages:\n  - name: my-app-service\n    newTag: \"1\"\n";
    let k = blob(kust, &mut stream);
    let filler: Vec<usize> = (0..16)
        .map(|i| blob(&format!("kind: ConfigMap\nindex: {i}\n"), &mut stream))
        .collect();
    stream.push_str(
        "commit refs/heads/gitops\ncommitter bench <bench@example.com> 1700000000 +0000\ndata 6\nlayout\n",
    );
    for s in 0..STAGES {
        stream.push_str(&format!("M 100644 :{k} apps/svc-{s}/kustomization.yaml\n"));
    }
    for i in 0..files {
        stream.push_str(&format!(
            "M 100644 :{} apps/bulk-{}/file-{i}.yaml\n",
            filler[i % filler.len()],
            i / 500
        ));
    }
    stream.push('\n');
    for c in 1..commits {
        let b = blob(&format!("history: {c}\n"), &mut stream);
        stream.push_str(&format!(
            "commit refs/heads/gitops\ncommitter bench <bench@example.com> {} +0000\ndata 8\nhistory\nM 100644 :{b} history/log.txt\n\n",
            1700000000 + c
        ));
    }
    let mut fi = Command::new("git")
        .current_dir(&dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    fi.stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("write");
    assert!(fi.wait().expect("fast-import").success());
    sh(Command::new("git")
        .current_dir(&dir)
        .args(["push", "-q", &auth_url(env, &url), "gitops"]));
    url
}

fn objects(env: &Env, ns: &str, url: &str, sparse: bool) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: git\n  namespace: {ns}\n  labels: {{kargo.akuity.io/cred-type: git}}\nstringData:\n  repoURL: {url}\n  username: {}\n  password: '{}'\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  namespace: {ns}\nspec:\n  interval: 100h\n  subscriptions:\n  - image: {{repoURL: 127.0.0.1:9/none}}\n",
        var(env, "HAUL_TEST_GIT_USER"),
        var(env, "HAUL_TEST_GIT_PASSWORD")
    );
    for i in 0..20 {
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f{i}\n  namespace: {ns}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: example.com/app, tag: 'v{i}', digest: 'sha256:{i}'}}\n"
        ));
    }
    for s in 0..STAGES {
        let sparse_dirs = if sparse {
            format!(", sparse: [apps/svc-{s}]")
        } else {
            String::new()
        };
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s{s}\n  namespace: {ns}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config:\n          repoURL: {url}\n          checkout: [{{branch: gitops, path: ./src{sparse_dirs}}}]\n      - uses: kustomize-set-image\n        as: set\n        config:\n          path: ./src/apps/svc-{s}\n          images: [{{image: example.com/app, name: my-app-service}}]\n      - uses: git-commit\n        config: {{path: ./src, message: '${{{{ outputs.set.commitMessage }}}}'}}\n      - uses: git-push\n        config: {{path: ./src}}\n"
        ));
    }
    y
}

fn phase(env: &Env, ns: &str, name: &str) -> String {
    let mut c = env.cp.kubectl();
    c.args([
        "get",
        "promotion",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.status.phase}",
    ]);
    String::from_utf8_lossy(&c.output().map(|o| o.stdout).unwrap_or_default()).into_owned()
}

/// Promotes and returns the wall time from creation to Succeeded.
fn promote_all(env: &Env, ns: &str, items: &[(String, String, String)]) -> Duration {
    let mut y = String::new();
    for (name, stage, freight) in items {
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stage: {stage}\n  freight: {freight}\n"
        ));
    }
    let t = Instant::now();
    kubectl(env, &["create", "-f", "-"], Some(&y));
    let deadline = t + Duration::from_secs(300);
    for (name, _, _) in items {
        loop {
            let p = phase(env, ns, name);
            if p == "Succeeded" {
                break;
            }
            assert!(
                !["Failed", "Errored", "Aborted"].contains(&p.as_str()),
                "{name} ended {p}"
            );
            assert!(Instant::now() < deadline, "{name} did not finish in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    t.elapsed()
}

fn bench_repo(env: &Env, label: &str, files: usize, commits: usize, sparse: bool) -> Vec<String> {
    let t = Instant::now();
    let url = make_repo(env, label, files, commits);
    let generated = t.elapsed();
    let ns = format!("bench-{label}");
    kubectl(
        env,
        &["apply", "-f", "-"],
        Some(&objects(env, &ns, &url, sparse)),
    );
    let mut rows = Vec::new();
    let mut first = true;
    for i in 0..4 {
        let d = promote_all(env, &ns, &[(format!("p{i}"), "s0".into(), format!("f{i}"))]);
        rows.push(format!(
            "| {label} ({files} files, {commits} commits) | {} | {:.2} s |",
            if first { "first (cold cache)" } else { "later" },
            d.as_secs_f64()
        ));
        first = false;
    }
    // Push throughput: N Stages promote at once, each to its own folder on one branch.
    let items: Vec<_> = (0..STAGES)
        .map(|s| (format!("burst-{s}"), format!("s{s}"), "f10".to_string()))
        .collect();
    let d = promote_all(env, &ns, &items);
    rows.push(format!(
        "| {label}: {STAGES} Stages at once, one branch | all succeeded | {:.2} s ({:.2} promotions/s) |",
        d.as_secs_f64(),
        STAGES as f64 / d.as_secs_f64()
    ));
    eprintln!(
        "{label}: repository generated and pushed in {:.1}s",
        generated.as_secs_f64()
    );
    rows
}

fn main() {
    let cp = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("control plane");
    let services = Services::start(&PathBuf::from(format!(
        "/tmp/hbench-{}",
        std::process::id()
    )))
    .expect("side services");
    let env = Env { cp, services };
    let work = env.cp.dir().join("work");
    let log = std::fs::File::create(env.cp.dir().join("controller.log")).expect("log");
    let mut controller = Command::new(env!("CARGO_BIN_EXE_haul"))
        .arg("controller")
        .env("KUBECONFIG", env.cp.kubeconfig())
        .env("HAUL_WORK_DIR", &work)
        .env("HAUL_LEADER_ELECT", "false")
        .env("HAUL_METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info,haul=debug")
        .stderr(Stdio::from(log))
        .spawn()
        .expect("controller");
    let only = std::env::var("HAUL_BENCH_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    if only.is_empty() || only == "small" {
        rows.extend(bench_repo(&env, "small", 20, 10, false));
    }
    if only.is_empty() || only == "large" {
        rows.extend(bench_repo(&env, "large", LARGE_FILES, LARGE_COMMITS, false));
    }
    if only.is_empty() || only == "large-sparse" {
        rows.extend(bench_repo(
            &env,
            "large-sparse",
            LARGE_FILES,
            LARGE_COMMITS,
            true,
        ));
    }
    let _ = controller.kill();
    let _ = controller.wait();
    // Keep the controller's log for a look at where the time went.
    let _ = std::fs::copy(
        env.cp.dir().join("controller.log"),
        "/tmp/haul-bench-controller.log",
    );
    println!("| repository | promotion | created → Succeeded |");
    println!("|---|---|---:|");
    for r in rows {
        println!("{r}");
    }
    let _ = Path::new("");
}
