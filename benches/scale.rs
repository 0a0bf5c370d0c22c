//! Controller memory and CPU with many objects (issue target: 50 Warehouses, 150 Stages, 2,000
//! Freight, 500 Promotions), idle and while promoting, on a real control plane with a real
//! `haul controller` process. Reads the controller's resident memory and CPU time from /proc.
//!
//!   cargo bench --bench scale       (HAUL_SCALE=0.2 for a fifth of the sizes)
//!
//! HAUL_SCALE_BIN=<path> runs another `haul` binary as the controller (e.g. an older build, to
//! compare side by side on the same machine). With `HAUL_BENCH_KARGO` (see
//! benches/support/kargo.rs) the same scenario also runs against Kargo's controller, interleaved
//! with haul's (`HAUL_BENCH_ROUNDS`, default 1 each), and a table haul | Kargo | haul ÷ Kargo
//! follows. API-server CPU and request counts in that table are counted from just before the
//! controller starts (after the CRDs are installed).

#[path = "support/kargo.rs"]
mod kargo;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haul_testenv::ControlPlane;
use kargo::{Comparison, Controller, SideBySide, Unit};

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
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    (rss_kb / 1024.0, ticks / 100.0)
}

/// The kube-apiserver of `cp` (found by its certificate directory on the command line).
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

/// Requests the API server has served so far, from all clients (its own
/// `apiserver_request_total`, the referee for what the controller costs it).
fn apiserver_requests(cp: &ControlPlane) -> f64 {
    let out = cp
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `apiserver_request_total` by (verb, resource[/subresource]), all clients, from the API
/// server's /metrics.
fn apiserver_requests_by_kind(cp: &ControlPlane) -> BTreeMap<(String, String), f64> {
    let out = cp
        .kubectl()
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl");
    let mut by = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = l.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let (resource, sub) = (label("resource"), label("subresource"));
        let resource = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        *by.entry((label("verb"), resource)).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    by
}

/// `haul_kube_requests_total` by (verb, resource) from the controller's /metrics.
fn controller_requests_by_kind(metrics_port: u16) -> BTreeMap<(String, String), f64> {
    let mut by = BTreeMap::new();
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics_port)) else {
        return by;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut body);
    for l in body.lines() {
        let Some(rest) = l.strip_prefix("haul_kube_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        *by.entry((label("verb"), label("resource"))).or_insert(0.0) +=
            value.parse::<f64>().unwrap_or(0.0);
    }
    by
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

/// Object counts of a run (scaled by `HAUL_SCALE`).
#[derive(Clone, Copy)]
struct Sizes {
    warehouses: usize,
    stages_per: usize,
    freight_per: usize,
    promotions: usize,
}

/// Stage `s`'s promotion steps (one compose-output step: no git, this measures the controller),
/// as a YAML flow sequence for the Stage's template and, copied, each Promotion (named as
/// Kargo's Promotion webhook names unnamed steps).
fn steps(s: &str) -> String {
    format!("[{{uses: compose-output, as: step-1, config: {{stage: {s}}}}}]")
}

fn main() {
    let scale: f64 = std::env::var("HAUL_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |x: usize| ((x as f64 * scale).round() as usize).max(1);
    let sizes = Sizes {
        warehouses: n(50),
        stages_per: 3,
        freight_per: n(40),
        promotions: n(500),
    };
    let bin = std::env::var("HAUL_SCALE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_haul").into());
    let side = SideBySide::from_env(PathBuf::from(bin), 1);
    let mut compared = Comparison::default();
    for (round, c) in side.runs() {
        if side.comparing() {
            println!("## {} (round {})\n", c.name(), round + 1);
        }
        run(&side, c, sizes, &mut compared);
        println!();
    }
    if side.comparing() {
        println!("## side by side\n");
        print!("{}", compared.markdown());
    }
}

/// One run on a fresh control plane: prints its tables, records the compared figures.
fn run(side: &SideBySide, c: Controller, sizes: Sizes, compared: &mut Comparison) {
    let Sizes {
        warehouses,
        stages_per,
        freight_per,
        promotions,
    } = sizes;
    let cp = side.control_plane(c);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let kas = apiserver_pid(&cp).expect("kube-apiserver pid");
    // The API server's cost is counted from here: CRDs installed, controller not yet started.
    let (_, kas_cpu_base) = usage(kas);
    let requests_base = apiserver_requests(&cp);
    let controller = side.start_controller(
        c,
        &cp,
        &cp.dir().join("controller.log"),
        Some(metrics_port),
        false,
    );
    let pid = controller.id();
    let mut rows = Vec::new();
    let sample = |label: &str, rows: &mut Vec<String>| {
        let (rss, cpu) = usage(pid);
        let (_, kas_cpu) = usage(kas);
        let requests = apiserver_requests(&cp);
        rows.push(format!(
            "| {label} | {rss:.1} MiB | {cpu:.1} s | {kas_cpu:.1} s | {requests:.0} |"
        ));
        (rss, cpu, kas_cpu, requests)
    };
    std::thread::sleep(Duration::from_secs(3));
    sample("empty cluster, idle", &mut rows);

    // Projects: one namespace per 5 Warehouses; each Warehouse has 3 Stages (dev direct, uat
    // and prod downstream) whose template is one compose-output step (no git: this measures
    // the controller, not git).
    let mut y = String::new();
    for w in 0..warehouses {
        let ns = format!("scale-{}", w / 5);
        if w % 5 == 0 {
            y.push_str(&kargo::project_namespace(&ns));
        }
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: w{w}, namespace: {ns}}}\nspec:\n  interval: 100h\n  subscriptions:\n  - image: {{repoURL: 127.0.0.1:9/none/w{w}}}\n"
        ));
        for (s, src) in ["dev", "uat", "prod"]
            .iter()
            .zip(["{direct: true}", "{stages: [dev-w]}", "{stages: [uat-w]}"])
            .take(stages_per)
        {
            let src = src.replace("-w]", &format!("-w{w}]"));
            y.push_str(&format!(
                "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {s}-w{w}, namespace: {ns}}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w{w}}}\n    sources: {src}\n  promotionTemplate:\n    spec:\n      steps: {}\n",
                steps(s)
            ));
        }
    }
    apply(&cp, &y);
    let mut freight_total = 0;
    let mut idle = (0.0, 0.0, 0.0, 0.0);
    for batch in [0.25, 0.5, 1.0] {
        let target = (freight_per as f64 * batch) as usize;
        let mut y = String::new();
        for w in 0..warehouses {
            let ns = format!("scale-{}", w / 5);
            for i in 0..target {
                let (labels, alias) = kargo::freight_alias(&format!("f{w}-{i}"));
                y.push_str(&format!(
                    "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{name: f{w}-{i}, namespace: {ns}, {labels}}}\n{alias}\norigin: {{kind: Warehouse, name: w{w}}}\nimages:\n- {{repoURL: example.com/w{w}, tag: 'v{i}', digest: 'sha256:{i}'}}\n"
                ));
            }
        }
        apply(&cp, &y);
        freight_total = warehouses * target;
        std::thread::sleep(Duration::from_secs(10));
        idle = sample(
            &format!(
                "{freight_total} Freight, {} Stages, idle",
                warehouses * stages_per
            ),
            &mut rows,
        );
    }
    // Promotions: spread over the dev Stages, all created at once.
    let uids = kargo::stage_uids(&cp);
    let mut y = String::new();
    for p in 0..promotions {
        let w = p % warehouses;
        let i = p / warehouses % freight_per;
        let (ns, stage) = (format!("scale-{}", w / 5), format!("dev-w{w}"));
        let uid = uids.get(&(ns.clone(), stage.clone())).expect("Stage's uid");
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: p{p}\n  namespace: {ns}\n{}spec: {{stage: {stage}, freight: f{w}-{i}, steps: {}}}\n",
            kargo::promotion_metadata(&stage, uid),
            steps("dev")
        ));
    }
    let t = Instant::now();
    apply(&cp, &y);
    let applied = t.elapsed();
    let mut peak = 0.0f64;
    // Open descriptors are mostly API server connections (one per request in flight).
    let mut peak_fds = 0;
    let all_done;
    let deadline = t + Duration::from_secs(900);
    loop {
        let (rss, _) = usage(pid);
        peak = peak.max(rss);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        peak_fds = peak_fds.max(fds);
        let done = count_phase(&cp, "Succeeded");
        if done >= promotions || Instant::now() > deadline {
            all_done = t.elapsed();
            rows.push(format!(
                "| while promoting: {done}/{promotions} Promotions succeeded in {:.1} s ({peak_fds} open fds at most) | peak {peak:.1} MiB | | | |",
                all_done.as_secs_f64()
            ));
            if done < promotions {
                eprintln!(
                    "{}: only {done}/{promotions} Promotions succeeded in 900 s",
                    c.name()
                );
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    sample(
        &format!("{freight_total} Freight, {promotions} Promotions, after promoting"),
        &mut rows,
    );
    std::thread::sleep(Duration::from_secs(20));
    let (_, _, kas_cpu_end, requests_end) = sample("idle 20 s later", &mut rows);
    let haul_requests = controller_requests_by_kind(metrics_port);
    let referee = apiserver_requests_by_kind(&cp);
    kargo::stop(controller);

    let stages = warehouses * stages_per;
    let (idle_rss, idle_cpu, idle_kas_cpu, _) = idle;
    let state = format!("{freight_total} Freight / {stages} Stages");
    for (row, unit, value) in [
        (format!("controller RSS idle, {state}"), Unit::MiB, idle_rss),
        (
            "controller RSS peak while promoting".to_string(),
            Unit::MiB,
            peak,
        ),
        (
            format!("controller CPU, reaching {state} idle"),
            Unit::Seconds,
            idle_cpu,
        ),
        (
            "kube-apiserver CPU over the same".to_string(),
            Unit::Seconds,
            idle_kas_cpu - kas_cpu_base,
        ),
        (
            format!("kube-apiserver CPU, whole run incl. {promotions} Promotions"),
            Unit::Seconds,
            kas_cpu_end - kas_cpu_base,
        ),
        (
            "API requests, all clients, whole run".to_string(),
            Unit::Count,
            requests_end - requests_base,
        ),
        (
            format!("{promotions} Promotions at once: created → all Succeeded"),
            Unit::Seconds,
            all_done.as_secs_f64(),
        ),
        (
            format!("`kubectl apply` of the {promotions} Promotions"),
            Unit::Seconds,
            applied.as_secs_f64(),
        ),
        (
            "controller's open file descriptors, peak".to_string(),
            Unit::Count,
            peak_fds as f64,
        ),
    ] {
        compared.record(&row, unit, c, value);
    }

    println!(
        "| state | resident memory | CPU time (cumulative) | kube-apiserver CPU (cumulative) | API requests, all clients (cumulative) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    println!();
    println!("| verb | resource | kube-apiserver (all clients) | haul's client |");
    println!("|---|---|---:|---:|");
    let mut kinds: Vec<_> = referee
        .keys()
        .chain(haul_requests.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            let a = referee.get(&k).copied().unwrap_or(0.0);
            let h = haul_requests.get(&k).copied().unwrap_or(0.0);
            (k, a, h)
        })
        .filter(|(_, a, h)| *a >= 10.0 || *h >= 10.0)
        .collect();
    kinds.sort_by(|x, y| y.1.total_cmp(&x.1));
    for ((verb, resource), a, h) in &kinds {
        println!("| {verb} | {resource} | {a:.0} | {h:.0} |");
    }
    let total = |m: &BTreeMap<(String, String), f64>| m.values().sum::<f64>() + 0.0;
    println!(
        "| all | all | {:.0} | {:.0} |",
        total(&referee),
        total(&haul_requests)
    );
}
