//! A Warehouse subscribed to a 1,000-tag repository on a real distribution registry, through the
//! controller: the time from `kubectl apply` of the Warehouse to its first Freight, on a real
//! control plane with a real controller process (SemVer strategy, the default discovery limit
//! of 20 and the default registry rate limit).
//!
//!   cargo bench --bench warehouse          (installs the side services on first use)
//!
//! With `HAUL_BENCH_KARGO` (see benches/support/kargo.rs) the same runs against Kargo's
//! controller too, interleaved with haul's (`HAUL_BENCH_ROUNDS`, default 3 each when comparing),
//! and prints haul | Kargo | haul ÷ Kargo. `HAUL_BENCH_TAGS` changes the tag count.

#[path = "support/kargo.rs"]
mod kargo;
#[path = "support/registry.rs"]
mod registry;

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use haul_testenv::{ControlPlane, Services};
use kargo::{Comparison, Unit};

/// Stops the side services when the bench ends, also on a panic.
struct ServicesGuard(Services);

impl Drop for ServicesGuard {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

fn apply(cp: &ControlPlane, yaml: &str) {
    let mut child = cp
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    assert!(child.wait().expect("kubectl").success(), "kubectl apply");
}

fn freight_count(cp: &ControlPlane, ns: &str) -> usize {
    let out = cp
        .kubectl()
        .args(["get", "freight", "-n", ns, "-o", "name"])
        .output()
        .expect("kubectl");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn main() {
    let tags: usize = std::env::var("HAUL_BENCH_TAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let comparing = std::env::var_os("HAUL_BENCH_KARGO").is_some();
    let side = kargo::SideBySide::from_env(
        PathBuf::from(env!("CARGO_BIN_EXE_haul")),
        if comparing { 3 } else { 1 },
    );
    let services = ServicesGuard(
        Services::start(&PathBuf::from(format!(
            "/tmp/hwbench-{}",
            std::process::id()
        )))
        .expect("side services"),
    );
    let registry = services
        .0
        .get("HAUL_TEST_REGISTRY")
        .expect("registry")
        .to_string();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (pushed, took) = rt
        .block_on(registry::seed_oci(
            &format!("http://{registry}"),
            "bench/app",
            tags,
            Duration::from_secs(600),
        ))
        .expect("seeding the registry");
    eprintln!(
        "registry: {pushed} tags pushed in {:.1} s",
        took.as_secs_f64()
    );

    let mut rows = Vec::new();
    let mut compared = Comparison::default();
    for (round, c) in side.runs() {
        let cp = side.control_plane(c);
        let controller =
            side.start_controller(c, &cp, &cp.dir().join("controller.log"), None, false);
        // Let the controller start its watches first: the figure is discovery, not start-up.
        std::thread::sleep(Duration::from_secs(5));
        let ns = "bench-warehouse";
        let t = Instant::now();
        apply(
            &cp,
            &format!(
                "{}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: w, namespace: {ns}}}\nspec:\n  interval: 5m\n  subscriptions:\n  - image: {{repoURL: '{registry}/bench/app', imageSelectionStrategy: SemVer, discoveryLimit: 20}}\n",
                kargo::project_namespace(ns)
            ),
        );
        let found = kargo::wait_until(Duration::from_secs(600), Duration::from_millis(50), || {
            freight_count(&cp, ns) > 0
        });
        let d = t.elapsed();
        kargo::stop(controller);
        assert!(
            found,
            "{}: no Freight within 600 s (log in {})",
            c.name(),
            cp.dir().join("controller.log").display()
        );
        rows.push(format!(
            "| {} | {} | {:.2} s |",
            c.name(),
            round + 1,
            d.as_secs_f64()
        ));
        compared.record(
            &format!("Warehouse on a {pushed}-tag registry: time to first Freight"),
            Unit::Seconds,
            c,
            d.as_secs_f64(),
        );
    }
    println!("| controller | round | Warehouse applied → first Freight |");
    println!("|---|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    if side.comparing() {
        println!("\n## side by side\n");
        print!("{}", compared.markdown());
    }
}
