//! Promotion latency (created → Succeeded) on a small and a large GitOps repository, first and
//! later promotions, and push throughput with N Stages on one branch — against a real control
//! plane, a real `haul controller` process and the git server over HTTP.
//!
//!   cargo bench --bench promotion            (installs the side services on first use)
//!
//! HAUL_PROMOTION_BIN=<path> runs another `haul` binary as the controller (e.g. an older build,
//! to compare side by side); HAUL_BENCH_LATER=<n> sets how many later promotions are timed
//! (default 3). Promotions are created and watched through the API (no kubectl in the timed
//! path); where the time went is read from the controller's "promotion phases" log lines.
//!
//! Bounded: every wait times out; the large repository is generated with `git fast-import`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use haul_testenv::{ControlPlane, Services};

const LARGE_FILES: usize = 50_000;
const LARGE_COMMITS: usize = 2_000;
const STAGES: usize = 8;
/// Freight in each project: one per later promotion, the last for the burst.
const FREIGHT: usize = 41;

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
    for i in 0..FREIGHT {
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

/// A runtime and an API client for the bench's own requests, made once.
fn api(env: &Env) -> &'static (tokio::runtime::Runtime, kube::Client) {
    static API: std::sync::OnceLock<(tokio::runtime::Runtime, kube::Client)> =
        std::sync::OnceLock::new();
    API.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let client = rt.block_on(env.cp.client()).expect("client");
        (rt, client)
    })
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// One promotion's times (ms): the controller's phases from its log, the part before the
/// controller started it, and the part after its Succeeded write until the watch showed it.
#[derive(Default)]
struct Phases(Vec<(String, f64)>);

/// Creates the Promotions through the API, waits (watching) until each is Succeeded, and
/// returns the wall time from the first create to the last Succeeded, with each promotion's
/// phases when the controller logged them.
fn promote_all(env: &Env, ns: &str, items: &[(String, String, String)]) -> Duration {
    promote_timed(env, ns, items).0
}

fn promote_timed(
    env: &Env,
    ns: &str,
    items: &[(String, String, String)],
) -> (Duration, Vec<Phases>) {
    use haul::api::{Promotion, PromotionPhase};
    use kube::api::{Api, PostParams};
    let (rt, client) = api(env);
    let promotions: Api<Promotion> = Api::namespaced(client.clone(), ns);
    let created_wall = SystemTime::now();
    let t = Instant::now();
    let seen = rt.block_on(async {
        let creates = items.iter().map(|(name, stage, freight)| {
            let p: Promotion = serde_json::from_value(serde_json::json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"stage": stage, "freight": freight},
            }))
            .expect("promotion");
            let promotions = promotions.clone();
            async move { promotions.create(&PostParams::default(), &p).await }
        });
        for r in futures::future::join_all(creates).await {
            r.expect("create promotion");
        }
        let waits = items.iter().map(|(name, _, _)| {
            let promotions = promotions.clone();
            async move {
                let done = |p: Option<&Promotion>| {
                    p.and_then(|p| p.status.as_ref())
                        .and_then(|s| s.phase)
                        .is_some_and(|ph| {
                            ph != PromotionPhase::Pending && ph != PromotionPhase::Running
                        })
                };
                let p = tokio::time::timeout(
                    Duration::from_secs(300),
                    kube::runtime::wait::await_condition(promotions, name, done),
                )
                .await
                .unwrap_or_else(|_| panic!("{name} did not finish in time"))
                .expect("watch")
                .expect("promotion exists");
                let phase = p.status.as_ref().and_then(|s| s.phase);
                assert_eq!(
                    phase,
                    Some(PromotionPhase::Succeeded),
                    "{name} ended {phase:?}"
                );
                SystemTime::now()
            }
        });
        futures::future::join_all(waits).await
    });
    let total = t.elapsed();
    let phases = items
        .iter()
        .zip(seen)
        .map(|((name, _, _), seen)| logged_phases(env, ns, name, created_wall, seen))
        .collect();
    (total, phases)
}

/// The "promotion phases" line of `ns/name` in the controller's JSON log, as phases: the
/// time before the controller started it (create, watch, queue), its own phases, and the time
/// from its last status write until the bench saw Succeeded. Empty when it logged none (an
/// older controller).
fn logged_phases(env: &Env, ns: &str, name: &str, created: SystemTime, seen: SystemTime) -> Phases {
    let log = std::fs::read_to_string(env.cp.dir().join("controller.log")).unwrap_or_default();
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
    let log = std::fs::read_to_string(env.cp.dir().join("controller.log")).unwrap_or_default();
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
    let later: usize = std::env::var("HAUL_BENCH_LATER")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .clamp(1, FREIGHT - 1);
    let mut times = Vec::new();
    let mut breakdown = Vec::new();
    let mut git_before = 0;
    for i in 0..=later {
        if i == 1 {
            // The first promotion's cleanup runs after it succeeded.
            std::thread::sleep(Duration::from_millis(500));
            git_before = git_processes(env);
        }
        let (d, mut phases) =
            promote_timed(env, &ns, &[(format!("p{i}"), "s0".into(), format!("f{i}"))]);
        if i > 0 {
            times.push(d.as_secs_f64());
            breakdown.append(&mut phases);
        } else {
            rows.push(format!(
                "| {label} ({files} files, {commits} commits) | first (cold cache) | {:.3} s |",
                d.as_secs_f64()
            ));
        }
    }
    times.sort_by(f64::total_cmp);
    rows.push(format!(
        "| {label} ({files} files, {commits} commits) | later, p50 of {later} (min–max) | {:.3} s ({:.3}–{:.3}) |",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    ));
    std::thread::sleep(Duration::from_millis(500));
    rows.push(format!(
        "| {label}, later | git processes per promotion (with cleanup) | {:.1} |",
        (git_processes(env) - git_before) as f64 / later as f64
    ));
    rows.extend(phase_table(&format!("{label}, later: phase"), &breakdown));
    // Push throughput: N Stages promote at once, each to its own folder on one branch.
    let items: Vec<_> = (0..STAGES)
        .map(|s| {
            (
                format!("burst-{s}"),
                format!("s{s}"),
                format!("f{}", FREIGHT - 1),
            )
        })
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
    let bin =
        std::env::var("HAUL_PROMOTION_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_haul").into());
    eprintln!("controller: {bin}");
    let mut controller = Command::new(bin)
        .arg("controller")
        .env("KUBECONFIG", env.cp.kubeconfig())
        .env("HAUL_WORK_DIR", &work)
        .env("HAUL_LEADER_ELECT", "false")
        .env("HAUL_METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info,haul=debug")
        .env("HAUL_LOG_JSON", "true")
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
