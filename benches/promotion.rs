//! Promotion latency (created → Succeeded) on a small and a large GitOps repository, first and
//! later promotions, and push throughput with N Stages on one branch — against a real control
//! plane, a real `haul controller` process and the git server over HTTP.
//!
//!   cargo bench --bench promotion            (installs the side services on first use)
//!
//! With `HAUL_BENCH_KARGO` (see benches/support/kargo.rs) the same scenario also runs against
//! Kargo's controller, interleaved with haul's (default 3 rounds each, `HAUL_BENCH_ROUNDS`), and a
//! table haul | Kargo | haul ÷ Kargo follows. `HAUL_BENCH_ONLY=small|large|large-sparse` picks
//! one repository.
//!
//! Bounded: every wait times out; the large repository is generated with `git fast-import`.

#[path = "support/kargo.rs"]
mod kargo;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haul_testenv::{ControlPlane, Services};
use kargo::{Comparison, SideBySide, Unit};

const LARGE_FILES: usize = 50_000;
const LARGE_COMMITS: usize = 2_000;
const STAGES: usize = 8;
/// Later promotions per repository (after the first, cold one); the row reports their median.
const LATER: usize = 5;

/// One run: a fresh control plane (with its controller) and the side services shared by all runs.
struct Env<'a> {
    cp: ControlPlane,
    services: &'a Services,
}

/// Stops the side services when the bench ends, also on a panic.
struct ServicesGuard(Services);

impl Drop for ServicesGuard {
    fn drop(&mut self) {
        let _ = self.0.stop();
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

/// Stage `s`'s promotion steps as a YAML flow sequence: its Stage's template, and copied into
/// each of its Promotions (what Kargo's Promotion webhook does on create, naming unnamed steps
/// `step-<n>`: Kargo's engine keeps each step's state under its alias). The image is the
/// Warehouse's subscription (an unreachable loopback registry: no discovery, but Kargo's
/// `imageFrom` only finds images that a requested Warehouse subscribes to).
fn steps(url: &str, s: usize, sparse: bool) -> String {
    let sparse_dirs = if sparse {
        format!(", sparse: [apps/svc-{s}]")
    } else {
        String::new()
    };
    format!(
        "[{{uses: git-clone, as: step-1, config: {{repoURL: '{url}', checkout: [{{branch: gitops, path: ./src{sparse_dirs}}}]}}}}, {{uses: kustomize-set-image, as: set, config: {{path: ./src/apps/svc-{s}, images: [{{image: 127.0.0.1:9/none, name: my-app-service, tag: '${{{{ imageFrom(\"127.0.0.1:9/none\").Tag }}}}'}}]}}}}, {{uses: git-commit, as: step-3, config: {{path: ./src, message: '${{{{ outputs.set.commitMessage }}}}'}}}}, {{uses: git-push, as: step-4, config: {{path: ./src}}}}]"
    )
}

fn objects(env: &Env, ns: &str, url: &str, sparse: bool) -> String {
    let mut y = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: git\n  namespace: {ns}\n  labels: {{kargo.akuity.io/cred-type: git}}\nstringData:\n  repoURL: {url}\n  username: {}\n  password: '{}'\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  namespace: {ns}\nspec:\n  interval: 100h\n  subscriptions:\n  - image: {{repoURL: 127.0.0.1:9/none}}\n",
        kargo::project_namespace(ns),
        var(env, "HAUL_TEST_GIT_USER"),
        var(env, "HAUL_TEST_GIT_PASSWORD")
    );
    for i in 0..20 {
        let (labels, alias) = kargo::freight_alias(&format!("f{i}"));
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f{i}\n  namespace: {ns}\n  {labels}\n{alias}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: 127.0.0.1:9/none, tag: 'v{i}', digest: 'sha256:{i}'}}\n"
        ));
    }
    for s in 0..STAGES {
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: s{s}\n  namespace: {ns}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps: {}\n",
            steps(url, s, sparse)
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

/// Promotes (name, Stage index, Freight) and returns the wall time from creation to Succeeded.
fn promote_all(
    env: &Env,
    ns: &str,
    url: &str,
    sparse: bool,
    items: &[(String, usize, String)],
) -> Duration {
    let uids = kargo::stage_uids(&env.cp);
    let mut y = String::new();
    for (name, s, freight) in items {
        let stage = format!("s{s}");
        let uid = uids
            .get(&(ns.to_string(), stage.clone()))
            .expect("Stage's uid");
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\n{}spec:\n  stage: {stage}\n  freight: {freight}\n  steps: {}\n",
            kargo::promotion_metadata(&stage, uid),
            steps(url, *s, sparse)
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
            if ["Failed", "Errored", "Aborted"].contains(&p.as_str()) {
                let status = kubectl(
                    env,
                    &["get", "promotion", name, "-n", ns, "-o", "yaml"],
                    None,
                );
                panic!("{name} ended {p}:\n{status}");
            }
            if Instant::now() > deadline {
                let status = kubectl(
                    env,
                    &["get", "promotion", name, "-n", ns, "-o", "yaml"],
                    None,
                );
                panic!("{name} did not finish in time:\n{status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    t.elapsed()
}

/// A repository's results: the detailed rows (one per promotion) and the compared ones.
struct RepoRun {
    rows: Vec<String>,
    first: Duration,
    later_median: Duration,
    burst: Duration,
}

fn bench_repo(
    env: &Env,
    label: &str,
    repo_name: &str,
    files: usize,
    commits: usize,
    sparse: bool,
) -> RepoRun {
    let t = Instant::now();
    let url = make_repo(env, repo_name, files, commits);
    let generated = t.elapsed();
    let ns = format!("bench-{label}");
    kubectl(
        env,
        &["apply", "-f", "-"],
        Some(&objects(env, &ns, &url, sparse)),
    );
    let mut rows = Vec::new();
    let mut times = Vec::new();
    for i in 0..=LATER {
        let d = promote_all(
            env,
            &ns,
            &url,
            sparse,
            &[(format!("p{i}"), 0, format!("f{i}"))],
        );
        rows.push(format!(
            "| {label} ({files} files, {commits} commits) | {} | {:.2} s |",
            if i == 0 {
                "first (cold cache)"
            } else {
                "later"
            },
            d.as_secs_f64()
        ));
        times.push(d);
    }
    let first = times[0];
    let mut later = times[1..].to_vec();
    later.sort();
    let later_median = later[later.len() / 2];
    // Push throughput: N Stages promote at once, each to its own folder on one branch.
    let items: Vec<_> = (0..STAGES)
        .map(|s| (format!("burst-{s}"), s, "f10".to_string()))
        .collect();
    let burst = promote_all(env, &ns, &url, sparse, &items);
    rows.push(format!(
        "| {label}: {STAGES} Stages at once, one branch | all succeeded | {:.2} s ({:.2} promotions/s) |",
        burst.as_secs_f64(),
        STAGES as f64 / burst.as_secs_f64()
    ));
    eprintln!(
        "{label}: repository generated and pushed in {:.1}s",
        generated.as_secs_f64()
    );
    RepoRun {
        rows,
        first,
        later_median,
        burst,
    }
}

fn main() {
    let side = SideBySide::from_env(
        PathBuf::from(env!("CARGO_BIN_EXE_haul")),
        if std::env::var_os("HAUL_BENCH_KARGO").is_some() {
            3
        } else {
            1
        },
    );
    let services = ServicesGuard(
        Services::start(&PathBuf::from(format!(
            "/tmp/hbench-{}",
            std::process::id()
        )))
        .expect("side services"),
    );
    let only = std::env::var("HAUL_BENCH_ONLY").unwrap_or_default();
    let repos: Vec<(&str, usize, usize, bool)> = [
        ("small", 20, 10, false),
        ("large", LARGE_FILES, LARGE_COMMITS, false),
        ("large-sparse", LARGE_FILES, LARGE_COMMITS, true),
    ]
    .into_iter()
    .filter(|(label, ..)| only.is_empty() || only == *label)
    .collect();
    let mut rows = Vec::new();
    let mut compared = Comparison::default();
    for (round, c) in side.runs() {
        let env = Env {
            cp: side.control_plane(c),
            services: &services.0,
        };
        // Outside the control plane's directory, so that it outlives a failed run.
        let log = PathBuf::from(format!(
            "/tmp/{}-bench-controller.log",
            c.name().to_lowercase()
        ));
        let controller = side.start_controller(c, &env.cp, &log, None, true);
        for &(label, files, commits, sparse) in &repos {
            let run = bench_repo(
                &env,
                label,
                &format!("{label}-{}-{round}", c.name().to_lowercase()),
                files,
                commits,
                sparse,
            );
            if side.comparing() {
                rows.extend(
                    run.rows
                        .iter()
                        .map(|r| format!("{r} {} (round {}) |", c.name(), round + 1)),
                );
            } else {
                rows.extend(run.rows);
            }
            compared.record(
                &format!("{label} repo: first promotion (cold)"),
                Unit::Seconds,
                c,
                run.first.as_secs_f64(),
            );
            compared.record(
                &format!("{label} repo: later promotion (median of {LATER})"),
                Unit::Seconds,
                c,
                run.later_median.as_secs_f64(),
            );
            compared.record(
                &format!("{label} repo: {STAGES} Stages promoting to one branch at once"),
                Unit::Seconds,
                c,
                run.burst.as_secs_f64(),
            );
        }
        kargo::stop(controller);
    }
    if side.comparing() {
        println!("| repository | promotion | created → Succeeded | controller |");
        println!("|---|---|---:|---|");
    } else {
        println!("| repository | promotion | created → Succeeded |");
        println!("|---|---|---:|");
    }
    for r in rows {
        println!("{r}");
    }
    if side.comparing() {
        println!("\n## side by side\n");
        print!("{}", compared.markdown());
    }
}
