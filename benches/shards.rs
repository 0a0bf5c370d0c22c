//! Sharding at scale: the same objects reconciled by one controller, then split between two
//! (the default controller and shard "a", half of the Warehouses and Stages labelled for "a"),
//! on a fresh control plane per run. For each size: every controller's resident memory, CPU
//! time and reconciles once idle, the kube-apiserver's CPU time and requests (all clients,
//! including the kubectl that creates the objects), then the time to run Promotions spread
//! over both shards and each controller's peak memory meanwhile.
//!
//!   cargo bench --bench shards
//!   HAUL_SHARDS_SIZES=500:5000,1000:10000   (Stages:Freight per point; 3 Stages a Warehouse)
//!   HAUL_SHARDS_PROMOTIONS=200              (Promotions per point)

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use haul_testenv::ControlPlane;

fn apply(cp: &ControlPlane, yaml: &str) {
    let mut c = cp.kubectl();
    c.args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = c.spawn().expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    assert!(child.wait().expect("kubectl").success());
}

/// (resident MiB, CPU seconds) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|u| u.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (rss_kb / 1024.0, (tick(11) + tick(12)) / 100.0)
}

fn apiserver_pid(cp: &ControlPlane) -> Option<u32> {
    let out = Command::new("pgrep")
        .args([
            "-f",
            &format!("kube-apiserver.*--cert-dir={}", cp.dir().display()),
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
}

/// Sum of the samples of `metric` in a Prometheus text exposition.
fn sum_metric(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn apiserver_requests(cp: &ControlPlane) -> f64 {
    let out = cp
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl");
    sum_metric(
        &String::from_utf8_lossy(&out.stdout),
        "apiserver_request_total{",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Controller {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Controller {
    fn start(cp: &ControlPlane, name: &'static str, shard: Option<&str>) -> Self {
        let port = free_port();
        let log =
            std::fs::File::create(cp.dir().join(format!("controller-{name}.log"))).expect("log");
        let mut c = Command::new(env!("CARGO_BIN_EXE_haul"));
        c.arg("controller")
            .env("KUBECONFIG", cp.kubeconfig())
            .env("HAUL_WORK_DIR", cp.dir().join(format!("work-{name}")))
            .env("HAUL_LEADER_ELECT", "false")
            .env("HAUL_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("HAUL_RECEIVERS_ADDR", "off")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::from(log));
        if let Some(s) = shard {
            c.env("SHARD_NAME", s);
        }
        Self {
            name,
            child: c.spawn().expect("controller"),
            port,
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let out = Command::new("curl")
            .args(["-s", "-m", "5"])
            .arg(format!("http://127.0.0.1:{}/metrics", self.port))
            .output();
        out.map(|o| sum_metric(&String::from_utf8_lossy(&o.stdout), name))
            .unwrap_or(f64::NAN)
    }

    /// Reconciles of every controller (Stage, Warehouse, Promotion...).
    fn reconciles(&self) -> f64 {
        self.metric("haul_reconcile_duration_seconds_count")
    }

    fn stage_passes(&self) -> f64 {
        self.metric("haul_reconcile_duration_seconds_count{controller=\"stage\"}")
    }

    /// Requests this controller sent to the API server.
    fn requests(&self) -> f64 {
        self.metric("haul_kube_requests_total")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count_phase(cp: &ControlPlane, phase: &str) -> usize {
    let out = cp
        .kubectl()
        .args([
            "get",
            "promotions",
            "-A",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ])
        .output()
        .expect("kubectl");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|p| *p == phase)
        .count()
}

/// Waits until no controller has reconciled a Stage for 10 s (at most 600 s): the Stage
/// passes are the work that grows with Stages and Freight. (Warehouses keep retrying their
/// unreachable registry with a growing backoff, so CPU never drops to zero.) Returns whether
/// they settled.
fn settle(controllers: &[Controller]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(600);
    let passes = || -> f64 { controllers.iter().map(Controller::stage_passes).sum() };
    let mut before = passes();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(10));
        let now = passes();
        if now == before {
            return true;
        }
        before = now;
    }
    eprintln!("controllers did not settle within 600 s");
    false
}

/// One object to create: its kind's plural (group kargo.akuity.io unless a Namespace), its
/// namespace and name, and the object.
struct Doc {
    plural: &'static str,
    ns: Option<String>,
    name: String,
    body: serde_json::Value,
}

fn doc(plural: &'static str, ns: Option<&str>, name: &str, mut body: serde_json::Value) -> Doc {
    // An unsharded object has no `spec.shard` (null would be an error in an apply).
    if let Some(spec) = body.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.retain(|_, v| !v.is_null());
    }
    Doc {
        plural,
        ns: ns.map(str::to_string),
        name: name.to_string(),
        body,
    }
}

/// Warehouses of `w` (3 Stages each: dev direct, uat and prod downstream; one compose-output
/// step), `freight_per` Freight each; odd Warehouses and their Stages in shard "a" when
/// `sharded`. One namespace per 10 Warehouses. Returns the namespaces, then the Warehouses and
/// Stages, then the Freight.
fn objects(warehouses: usize, freight_per: usize, sharded: bool) -> [Vec<Doc>; 3] {
    use serde_json::json;
    let (mut namespaces, mut pipeline, mut freight) = (Vec::new(), Vec::new(), Vec::new());
    const KARGO: &str = "kargo.akuity.io/v1alpha1";
    for w in 0..warehouses {
        let ns = format!("shards-{}", w / 10);
        if w % 10 == 0 {
            namespaces.push(doc(
                "namespaces",
                None,
                &ns,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ));
        }
        let shard = (sharded && w % 2 == 1).then_some("a");
        let name = format!("w{w}");
        pipeline.push(doc(
            "warehouses",
            Some(&ns),
            &name,
            json!({"apiVersion": KARGO, "kind": "Warehouse", "metadata": {"name": name, "namespace": ns},
                "spec": {"shard": shard, "interval": "100h",
                    "subscriptions": [{"image": {"repoURL": format!("127.0.0.1:9/none/w{w}")}}]}}),
        ));
        for (s, sources) in ["dev", "uat", "prod"].iter().zip([
            json!({"direct": true}),
            json!({"stages": [format!("dev-w{w}")]}),
            json!({"stages": [format!("uat-w{w}")]}),
        ]) {
            let name = format!("{s}-w{w}");
            pipeline.push(doc(
                "stages",
                Some(&ns),
                &name,
                json!({"apiVersion": KARGO, "kind": "Stage", "metadata": {"name": name, "namespace": ns},
                    "spec": {"shard": shard,
                        "requestedFreight": [{"origin": {"kind": "Warehouse", "name": format!("w{w}")}, "sources": sources}],
                        "promotionTemplate": {"spec": {"steps": [{"uses": "compose-output", "config": {"stage": s}}]}}}}),
            ));
        }
        for i in 0..freight_per {
            let name = format!("f{w}-{i}");
            freight.push(doc(
                "freights",
                Some(&ns),
                &name,
                json!({"apiVersion": KARGO, "kind": "Freight", "metadata": {"name": name, "namespace": ns},
                    "origin": {"kind": "Warehouse", "name": format!("w{w}")},
                    "images": [{"repoURL": format!("example.com/w{w}"), "tag": format!("v{i}"), "digest": format!("sha256:{i}")}]}),
            ));
        }
    }
    [namespaces, pipeline, freight]
}

/// How many apply requests are in flight while seeding: far faster than kubectl's one at a
/// time, few enough not to starve the controllers being measured of the API server.
const SEED_PARALLEL: usize = 8;

/// Server-side applies `docs`, [`SEED_PARALLEL`] at a time, through the kube client.
fn seed(rt: &tokio::runtime::Runtime, client: &kube::Client, docs: Vec<Doc>) {
    use futures::StreamExt;
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use kube::discovery::ApiResource;
    let pp = PatchParams::apply("haul-bench").force();
    rt.block_on(
        futures::stream::iter(docs)
            .map(|d| {
                let (group, kind) = match d.plural {
                    "namespaces" => ("", "Namespace"),
                    "warehouses" => ("kargo.akuity.io", "Warehouse"),
                    "stages" => ("kargo.akuity.io", "Stage"),
                    _ => ("kargo.akuity.io", "Freight"),
                };
                let gvk = kube::api::GroupVersionKind::gvk(
                    group,
                    if group.is_empty() { "v1" } else { "v1alpha1" },
                    kind,
                );
                let ar = ApiResource::from_gvk_with_plural(&gvk, d.plural);
                let api: Api<DynamicObject> = match &d.ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                let pp = pp.clone();
                async move {
                    // Bounded: a few retries of a transient failure (API server overloaded).
                    for attempt in 0..5 {
                        match api.patch(&d.name, &pp, &Patch::Apply(&d.body)).await {
                            Ok(_) => return,
                            Err(e) if attempt == 4 => panic!("apply {} {}: {e}", d.plural, d.name),
                            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                        }
                    }
                }
            })
            .buffer_unordered(SEED_PARALLEL)
            .collect::<Vec<()>>(),
    );
}

fn run(
    rt: &tokio::runtime::Runtime,
    stages: usize,
    freight: usize,
    promotions: usize,
    sharded: bool,
) {
    let warehouses = (stages / 3).max(1);
    let freight_per = (freight / warehouses).max(1);
    let cp = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("control plane");
    let client = rt.block_on(cp.client()).expect("kube client");
    let kas = apiserver_pid(&cp).expect("kube-apiserver pid");
    let controllers = if sharded {
        vec![
            Controller::start(&cp, "default", None),
            Controller::start(&cp, "shard a", Some("a")),
        ]
    } else {
        vec![Controller::start(&cp, "single", None)]
    };
    std::thread::sleep(Duration::from_secs(3));
    let (base_kas_cpu, base_requests) = (usage(kas).1, apiserver_requests(&cp));
    let t = Instant::now();
    let [namespaces, pipeline, freight_docs] = objects(warehouses, freight_per, sharded);
    seed(rt, &client, namespaces);
    seed(rt, &client, pipeline);
    seed(rt, &client, freight_docs);
    let seeded_in = t.elapsed().as_secs_f64();
    let settled = settle(&controllers);
    let created_in = t.elapsed().as_secs_f64();
    let kas_cpu = usage(kas).1 - base_kas_cpu;
    let requests = apiserver_requests(&cp) - base_requests;
    let label = format!(
        "{} Stages / {} Freight, {}",
        warehouses * 3,
        warehouses * freight_per,
        if sharded { "2 shards" } else { "1 controller" }
    );
    for c in &controllers {
        let (rss, cpu) = usage(c.child.id());
        println!(
            "| {label} | {} | idle | {rss:.1} MiB | {cpu:.1} s | {:.0} / {:.0} |",
            c.name,
            c.reconciles(),
            c.requests()
        );
    }
    let settled = if settled { "settled" } else { "NOT settled" };
    println!(
        "| {label} | kube-apiserver | created in {seeded_in:.0} s, {settled} at {created_in:.0} s | | {kas_cpu:.1} s | {requests:.0} requests |"
    );

    // Promotions spread over the dev Stages (both shards), created at once without labels,
    // as kubectl users do.
    let t = Instant::now();
    let (base_kas_cpu, base_requests) = (usage(kas).1, apiserver_requests(&cp));
    let mut y = String::new();
    for p in 0..promotions {
        let w = p % warehouses;
        let i = p / warehouses % freight_per;
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: {{name: p{p}, namespace: shards-{}}}\nspec: {{stage: dev-w{w}, freight: f{w}-{i}}}\n",
            w / 10
        ));
    }
    apply(&cp, &y);
    let mut peaks = vec![0.0f64; controllers.len()];
    let deadline = t + Duration::from_secs(600);
    let done = loop {
        for (c, peak) in controllers.iter().zip(peaks.iter_mut()) {
            *peak = peak.max(usage(c.child.id()).0);
        }
        let done = count_phase(&cp, "Succeeded");
        if done >= promotions || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = t.elapsed().as_secs_f64();
    for (c, peak) in controllers.iter().zip(&peaks) {
        let (_, cpu) = usage(c.child.id());
        println!(
            "| {label} | {} | promoting: peak | {peak:.1} MiB | {cpu:.1} s | {:.0} / {:.0} |",
            c.name,
            c.reconciles(),
            c.requests()
        );
    }
    println!(
        "| {label} | kube-apiserver | {done}/{promotions} Promotions succeeded in {took:.1} s | | {:.1} s | {:.0} requests |",
        usage(kas).1 - base_kas_cpu,
        apiserver_requests(&cp) - base_requests
    );
}

fn main() {
    let sizes: Vec<(usize, usize)> = std::env::var("HAUL_SHARDS_SIZES")
        .unwrap_or_else(|_| "500:5000,1000:10000".into())
        .split(',')
        .filter_map(|p| {
            let (s, f) = p.split_once(':')?;
            Some((s.trim().parse().ok()?, f.trim().parse().ok()?))
        })
        .collect();
    let promotions: usize = std::env::var("HAUL_SHARDS_PROMOTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!(
        "| objects | controller | state | resident memory | CPU time (cumulative) | reconciles / API requests |"
    );
    println!("|---|---|---|---:|---:|---:|");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (stages, freight) in sizes {
        for sharded in [false, true] {
            run(&rt, stages, freight, promotions, sharded);
        }
    }
}
