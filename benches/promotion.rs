//! Promotion latency (created → Succeeded) on a small and a large GitOps repository, first and
//! later promotions, and push throughput with N Stages on one branch — against a real control
//! plane, a real `haul controller` process and the git server over HTTP.
//!
//!   cargo bench --bench promotion            (installs the side services on first use)
//!
//! With `HAUL_BENCH_KARGO` (see benches/support/kargo.rs) the same scenario also runs against
//! Kargo's controller, interleaved with haul's (default 3 rounds each, `HAUL_BENCH_ROUNDS`), and a
//! table haul | Kargo | haul ÷ Kargo follows. `HAUL_BENCH_ONLY=small|large|large-sparse` picks
//! one repository. `HAUL_BENCH_HAUL_BIN=<path>` runs another `haul` binary (e.g. an older
//! build, to compare side by side). For haul, where a later promotion's time went is read from
//! the controller's "promotion phases" log lines (p50 per phase) with the git processes it ran.
//!
//! Bounded: every wait times out; the large repository is generated with `git fast-import`.

#[path = "support/kargo.rs"]
mod kargo;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// The controller's log (haul's is JSON: its phases and git processes are read from it).
    log: PathBuf,
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

/// Promotes (name, Stage index, Freight) and returns the wall time from creation to Succeeded,
/// with each promotion's phases when the controller logged them (haul).
fn promote_all(
    env: &Env,
    ns: &str,
    url: &str,
    sparse: bool,
    items: &[(String, usize, String)],
) -> (Duration, Vec<Phases>) {
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
    let created_wall = SystemTime::now();
    let t = Instant::now();
    kubectl(env, &["create", "-f", "-"], Some(&y));
    let deadline = t + Duration::from_secs(300);
    let mut seen = Vec::new();
    for (name, _, _) in items {
        loop {
            let p = phase(env, ns, name);
            if p == "Succeeded" {
                seen.push(SystemTime::now());
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
    let total = t.elapsed();
    let phases = items
        .iter()
        .zip(seen)
        .map(|((name, _, _), seen)| logged_phases(env, ns, name, created_wall, seen))
        .collect();
    (total, phases)
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// One promotion's times (ms): the controller's phases from its log, the part before the
/// controller started it, and the part after its Succeeded write until the bench saw it.
#[derive(Default)]
struct Phases(Vec<(String, f64)>);

/// The "promotion phases" line of `ns/name` in the controller's JSON log, as phases: the
/// time before the controller started it (create, watch, queue), its own phases, and the time
/// from its last status write until the bench saw Succeeded. Empty when it logged none (an
/// older controller).
fn logged_phases(env: &Env, ns: &str, name: &str, created: SystemTime, seen: SystemTime) -> Phases {
    let log = std::fs::read_to_string(&env.log).unwrap_or_default();
    let key = format!("{ns}/{name}");
    let Some(f) = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["fields"].clone())
        .find(|f| f["message"] == "promotion phases" && f["promotion"] == key.as_str())
    else {
        return Phases::default();
    };
    let started = f["started_unix_ms"].as_f64().unwrap_or_default();
    let finished = f["finished_unix_ms"].as_f64().unwrap_or_default();
    let mut out = vec![(
        "created → controller starts".to_string(),
        started - unix_ms(created),
    )];
    for part in f["phases"].as_str().unwrap_or_default().split(',') {
        if let Some((p, ms)) = part.split_once(':')
            && p != "queue"
        {
            out.push((p.to_string(), ms.parse().unwrap_or_default()));
        }
    }
    out.push((
        "Succeeded written → seen".to_string(),
        unix_ms(seen) - finished,
    ));
    Phases(out)
}

/// git processes the controller ran so far (its debug "git" log lines).
fn git_processes(env: &Env) -> usize {
    let log = std::fs::read_to_string(&env.log).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("\"message\":\"git\""))
        .count()
}

/// Median of each phase over `runs`, in the order phases first appear.
fn phase_table(label: &str, runs: &[Phases]) -> Vec<String> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        for (p, _) in &r.0 {
            if !names.contains(&p.as_str()) {
                names.push(p);
            }
        }
    }
    names
        .iter()
        .map(|n| {
            let mut v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.0.iter().find(|(p, _)| p == n).map(|(_, ms)| *ms))
                .collect();
            v.sort_by(f64::total_cmp);
            let p50 = v.get(v.len() / 2).copied().unwrap_or_default();
            format!("| {label} | {n} | {p50:.1} ms |")
        })
        .collect()
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
    let mut breakdown = Vec::new();
    let mut git_before = 0;
    for i in 0..=LATER {
        if i == 1 {
            // The first promotion's cleanup runs after it succeeded.
            std::thread::sleep(Duration::from_millis(500));
            git_before = git_processes(env);
        }
        let (d, mut phases) = promote_all(
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
        if i > 0 {
            breakdown.append(&mut phases);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let git = git_processes(env) - git_before;
    if git > 0 {
        rows.push(format!(
            "| {label}, later | git processes per promotion (with cleanup) | {:.1} |",
            git as f64 / LATER as f64
        ));
    }
    rows.extend(phase_table(&format!("{label}, later: phase"), &breakdown));
    let first = times[0];
    let mut later = times[1..].to_vec();
    later.sort();
    let later_median = later[later.len() / 2];
    // Push throughput: N Stages promote at once, each to its own folder on one branch.
    let items: Vec<_> = (0..STAGES)
        .map(|s| (format!("burst-{s}"), s, "f10".to_string()))
        .collect();
    let (burst, _) = promote_all(env, &ns, &url, sparse, &items);
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
        // Outside the control plane's directory, so that it outlives a failed run.
        let log = PathBuf::from(format!(
            "/tmp/{}-bench-controller.log",
            c.name().to_lowercase()
        ));
        let env = Env {
            cp: side.control_plane(c),
            services: &services.0,
            log,
        };
        let controller = side.start_controller(c, &env.cp, &env.log, None, true);
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
