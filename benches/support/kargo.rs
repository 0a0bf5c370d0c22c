//! Side-by-side runs: the same bench scenario against haul's controller and, when asked, against
//! Kargo's own controller binary, interleaved (haul, Kargo, haul, Kargo…, each on a fresh control
//! plane) so that machine noise hits both; then one table with both columns and haul ÷ Kargo.
//!
//!   HAUL_BENCH_KARGO=<path to Kargo's `kargo` binary (cmd/controlplane)>
//!   HAUL_BENCH_KARGO_CRDS=<directory of Kargo's CRD YAMLs (charts/kargo/resources/crds)>
//!   HAUL_BENCH_ROUNDS=<runs per controller>   (default: the bench's own)
//!   HAUL_BENCH_SKIP_HAUL=1                     (Kargo only: to look into a Kargo run)
//!   HAUL_BENCH_HAUL_BIN=<path>                 (another `haul` binary, e.g. a release build)
//!
//! Nothing of Kargo is in this repository or downloaded by it: the caller builds Kargo from its
//! source and names the binary. Without `HAUL_BENCH_KARGO` only haul runs, as before.
//!
//! Kargo's admission webhooks are not running (only its controller is), so the objects a bench
//! creates must carry what those webhooks would fill in: Project namespaces labelled
//! `kargo.akuity.io/project: "true"`, Freight aliases (field and label), and each Promotion's
//! `spec.steps` copied from its Stage's promotion template, its Stage label and annotation, and
//! its Stage as controlling owner (Kargo's Stage reconciler only sees Promotions it owns).
//! [`project_namespace`], [`freight_alias`], [`promotion_metadata`] and the benches' Promotion
//! YAML do that, for both controllers alike.

// Each bench includes this file with #[path] and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use haul_testenv::ControlPlane;

/// Which controller a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Controller {
    Haul,
    Kargo,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Haul => "haul",
            Controller::Kargo => "Kargo",
        }
    }
}

/// Kargo's controller binary and CRDs, named by the environment.
#[derive(Clone, Debug)]
pub struct Kargo {
    pub bin: PathBuf,
    pub crds: PathBuf,
}

/// What to run: haul's binary, Kargo's when asked, and how many rounds.
pub struct SideBySide {
    pub haul_bin: PathBuf,
    pub kargo: Option<Kargo>,
    pub rounds: usize,
    skip_haul: bool,
}

/// Kargo's namespaces that its chart creates and its controller writes to or reads from
/// (heartbeat Leases, system and shared resources).
const KARGO_NAMESPACES: [&str; 3] = ["kargo", "kargo-system-resources", "kargo-shared-resources"];

impl SideBySide {
    /// Reads `HAUL_BENCH_KARGO`, `HAUL_BENCH_KARGO_CRDS` and `HAUL_BENCH_ROUNDS`. Panics with
    /// the variable's name when one is set but unusable: a bench that silently dropped the
    /// Kargo column would print a misleading table.
    pub fn from_env(haul_bin: PathBuf, default_rounds: usize) -> Self {
        let haul_bin = std::env::var_os("HAUL_BENCH_HAUL_BIN")
            .filter(|v| !v.is_empty())
            .map_or(haul_bin, PathBuf::from);
        let kargo = std::env::var_os("HAUL_BENCH_KARGO")
            .filter(|v| !v.is_empty())
            .map(|bin| {
                let bin = PathBuf::from(bin);
                assert!(
                    bin.is_file(),
                    "HAUL_BENCH_KARGO={}: no such file (Kargo's `kargo` binary, built from its cmd/controlplane)",
                    bin.display()
                );
                let crds = std::env::var_os("HAUL_BENCH_KARGO_CRDS")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .expect(
                        "HAUL_BENCH_KARGO_CRDS must name the directory of Kargo's CRD YAMLs \
                         (charts/kargo/resources/crds in Kargo's source) when HAUL_BENCH_KARGO is set",
                    );
                assert!(
                    crds.join("kargo.akuity.io_stages.yaml").is_file(),
                    "HAUL_BENCH_KARGO_CRDS={}: kargo.akuity.io_stages.yaml is not in it",
                    crds.display()
                );
                // Kargo's git client hands credentials to git through this helper, at this
                // fixed path (its image puts it there).
                assert!(
                    Path::new("/usr/local/bin/credential-helper").exists(),
                    "Kargo's git steps need /usr/local/bin/credential-helper: build it from Kargo's \
                     source (go build -o /usr/local/bin/credential-helper ./cmd/credential-helper)"
                );
                Kargo { bin, crds }
            });
        let rounds = match std::env::var("HAUL_BENCH_ROUNDS") {
            Ok(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| panic!("HAUL_BENCH_ROUNDS={v:?}: expected a positive integer")),
            Err(_) => default_rounds.max(1),
        };
        let skip_haul = kargo.is_some() && std::env::var_os("HAUL_BENCH_SKIP_HAUL").is_some();
        Self {
            haul_bin,
            kargo,
            rounds,
            skip_haul,
        }
    }

    pub fn comparing(&self) -> bool {
        self.kargo.is_some()
    }

    /// The runs in order: haul, Kargo, haul, Kargo… (round, controller).
    pub fn runs(&self) -> Vec<(usize, Controller)> {
        let mut runs = Vec::new();
        for round in 0..self.rounds {
            if !self.skip_haul {
                runs.push((round, Controller::Haul));
            }
            if self.kargo.is_some() {
                runs.push((round, Controller::Kargo));
            }
        }
        runs
    }

    /// A fresh control plane with the controller's own CRDs installed and Established (haul's
    /// from this crate, Kargo's from `HAUL_BENCH_KARGO_CRDS`).
    pub fn control_plane(&self, c: Controller) -> ControlPlane {
        match (c, &self.kargo) {
            (Controller::Haul, _) => {
                ControlPlane::start(&haul::crds::local_cluster_crds()).expect("control plane")
            }
            (Controller::Kargo, Some(k)) => {
                let cp = ControlPlane::start(&[]).expect("control plane");
                run_kubectl(
                    &cp,
                    &[
                        "apply",
                        "--server-side",
                        "-f",
                        &k.crds.display().to_string(),
                    ],
                );
                run_kubectl(
                    &cp,
                    &[
                        "wait",
                        "--for=condition=Established",
                        "crd",
                        "--all",
                        "--timeout=180s",
                    ],
                );
                let mut ns = String::new();
                for n in KARGO_NAMESPACES {
                    ns.push_str(&format!(
                        "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n"
                    ));
                }
                apply_yaml(&cp, &ns);
                cp
            }
            (Controller::Kargo, None) => panic!("a Kargo run without HAUL_BENCH_KARGO"),
        }
    }

    /// Starts the controller against `cp`, its log in `log`. `metrics_port` is haul's metrics
    /// listener; `verbose` picks haul's `info,haul=debug` and Kargo's chart default `INFO` over
    /// quiet (haul `warn`, Kargo `ERROR`).
    pub fn start_controller(
        &self,
        c: Controller,
        cp: &ControlPlane,
        log: &Path,
        metrics_port: Option<u16>,
        verbose: bool,
    ) -> Child {
        let log_file = File::create(log).expect("controller log");
        let mut cmd = match (c, &self.kargo) {
            (Controller::Haul, _) => {
                let mut cmd = Command::new(&self.haul_bin);
                cmd.arg("controller")
                    .env("HAUL_WORK_DIR", cp.dir().join("work"))
                    .env("HAUL_LEADER_ELECT", "false")
                    .env(
                        "HAUL_METRICS_ADDR",
                        format!("127.0.0.1:{}", metrics_port.unwrap_or(0)),
                    )
                    .env("RUST_LOG", if verbose { "info,haul=debug" } else { "warn" })
                    // The promotion bench reads the phases and git processes from it.
                    .env("HAUL_LOG_JSON", "true");
                cmd
            }
            (Controller::Kargo, Some(k)) => {
                let mut cmd = Command::new(&k.bin);
                cmd.arg("controller");
                for (key, value) in kargo_env(cp.dir(), verbose) {
                    cmd.env(key, value);
                }
                // Outside a cluster Kargo's Argo CD manager needs a kubeconfig too (it then
                // finds no Argo CD CRDs and runs without that integration, as haul does).
                cmd.env("ARGOCD_KUBECONFIG", cp.kubeconfig());
                cmd
            }
            (Controller::Kargo, None) => panic!("a Kargo run without HAUL_BENCH_KARGO"),
        };
        cmd.env("KUBECONFIG", cp.kubeconfig())
            .stdout(Stdio::from(log_file.try_clone().expect("log")))
            .stderr(Stdio::from(log_file));
        // In its own process group (with its git children), killed when the bench exits, also
        // when it is killed itself.
        let mut child = haul_testenv::process::spawn(cmd)
            .unwrap_or_else(|e| panic!("starting {} controller: {e}", c.name()));
        // A controller that cannot start exits within a moment; say so now rather than let
        // the bench wait for Promotions that never run.
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{} controller exited ({status}); its log ends:\n{}",
                c.name(),
                tail.join("\n")
            );
        }
        child
    }
}

/// The environment Kargo's chart gives its controller (charts/kargo/templates/controller/
/// configmap.yaml with the chart's default values), except: credentials over HTTP allowed (the
/// bench's git server is plain HTTP on loopback), no metrics listener, and HOME/TMPDIR inside
/// the control plane's directory so its clones are removed with it.
fn kargo_env(dir: &Path, verbose: bool) -> Vec<(&'static str, String)> {
    let home = dir.join("kargo-home");
    let tmp = dir.join("kargo-tmp");
    let _ = std::fs::create_dir_all(&home);
    let _ = std::fs::create_dir_all(&tmp);
    let mut env: Vec<(&'static str, String)> = [
        ("LOG_LEVEL", if verbose { "INFO" } else { "ERROR" }),
        ("LOG_FORMAT", "CONSOLE"),
        ("CREDENTIAL_PROVIDERS_ENABLED", "true"),
        ("KARGO_NAMESPACE", "kargo"),
        ("SYSTEM_RESOURCES_NAMESPACE", "kargo-system-resources"),
        ("SHARED_RESOURCES_NAMESPACE", "kargo-shared-resources"),
        ("IS_DEFAULT_CONTROLLER", "true"),
        ("ALLOW_CREDENTIALS_OVER_HTTP", "true"),
        ("GITCLIENT_NAME", "Kargo"),
        ("GITCLIENT_EMAIL", "no-reply@kargo.io"),
        ("GIT_PUSH_INTEGRATION_POLICY", "AlwaysRebase"),
        ("GITCLIENT_SIGNING_KEY_TYPE", "gpg"),
        ("GITHUB_PUSH_MAX_REVISIONS", "10"),
        ("GITHUB_PUSH_VERIFY_UNTRUSTED_COMMITS", "false"),
        ("CACHE_BY_TAG_POLICY", "Allow"),
        ("MAX_IMAGE_CACHE_ENTRIES", "100000"),
        ("IMAGE_REGISTRY_RATE_LIMIT", "20"),
        ("MAX_OCI_PUSH_ARTIFACT_SIZE", "1073741824"),
        ("ARGOCD_INTEGRATION_ENABLED", "true"),
        ("ARGOCD_NAMESPACE", "argocd"),
        ("ARGOCD_WATCH_ARGOCD_NAMESPACE_ONLY", "false"),
        ("ROLLOUTS_INTEGRATION_ENABLED", "true"),
        ("ROLLOUTS_CONTROLLER_INSTANCE_ID", ""),
        ("MAX_CONCURRENT_CONTROL_FLOW_RECONCILES", "4"),
        ("MAX_CONCURRENT_PROMOTION_RECONCILES", "4"),
        ("MAX_CONCURRENT_PROMOTION_REQUEST_RECONCILES", "4"),
        ("MAX_CONCURRENT_STAGE_RECONCILES", "4"),
        ("MAX_CONCURRENT_WAREHOUSE_RECONCILES", "4"),
        ("MIN_WAREHOUSE_RECONCILIATION_INTERVAL", "5m0s"),
        ("METRICS_BIND_ADDRESS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    // To look into a Kargo run: HAUL_BENCH_KARGO_LOG_LEVEL=debug.
    if let Ok(level) = std::env::var("HAUL_BENCH_KARGO_LOG_LEVEL") {
        env.retain(|(k, _)| *k != "LOG_LEVEL");
        env.push(("LOG_LEVEL", level));
    }
    env.push(("HOME", home.display().to_string()));
    env.push(("TMPDIR", tmp.display().to_string()));
    env
}

fn run_kubectl(cp: &ControlPlane, args: &[&str]) {
    let out = cp.kubectl().args(args).output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn apply_yaml(cp: &ControlPlane, yaml: &str) {
    use std::io::Write;
    let mut child = cp
        .kubectl()
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Project's namespace as Kargo's management controller creates it (labelled as a Project).
pub fn project_namespace(ns: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels: {{kargo.akuity.io/project: 'true'}}\n"
    )
}

/// The alias field and label Kargo's Freight webhook sets on create, for a Freight's YAML:
/// `(metadata labels entry, top-level field)`.
pub fn freight_alias(alias: &str) -> (String, String) {
    (
        format!("labels: {{kargo.akuity.io/alias: {alias}}}"),
        format!("alias: {alias}"),
    )
}

/// The UIDs of the Stages in the cluster by (namespace, name), for Promotions' owner references.
pub fn stage_uids(cp: &ControlPlane) -> BTreeMap<(String, String), String> {
    let out = cp
        .kubectl()
        .args([
            "get",
            "stages",
            "-A",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name} {.metadata.uid}{"\n"}{end}"#,
        ])
        .output()
        .expect("kubectl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                (f.next()?.to_string(), f.next()?.to_string()),
                f.next()?.to_string(),
            ))
        })
        .collect()
}

/// A Promotion's metadata entries (at two spaces' indent) that Kargo's Promotion webhook adds:
/// the Stage label and annotation, and the Stage as controlling owner.
pub fn promotion_metadata(stage: &str, stage_uid: &str) -> String {
    format!(
        "  labels: {{kargo.akuity.io/stage: {stage}}}\n  annotations: {{kargo.akuity.io/stage: {stage}}}\n  ownerReferences: [{{apiVersion: kargo.akuity.io/v1alpha1, kind: Stage, name: {stage}, uid: {stage_uid}, controller: true, blockOwnerDeletion: true}}]\n"
    )
}

/// Stops a controller process started by [`SideBySide::start_controller`].
pub fn stop(mut child: Child) {
    haul_testenv::process::stop(&mut child);
}

// ------------------------------------------------------------------------------------ report

/// How a row's values print.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Seconds,
    MiB,
    Count,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Seconds if v < 10.0 => format!("{v:.2} s"),
            Unit::Seconds => format!("{v:.1} s"),
            Unit::MiB => format!("{v:.0} MiB"),
            Unit::Count if v >= 10_000.0 => format!("{:.1}k", v / 1000.0),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

/// Measurements by row and controller, across rounds; printed as haul | Kargo | haul ÷ Kargo.
#[derive(Default)]
pub struct Comparison {
    order: Vec<String>,
    rows: BTreeMap<String, (Unit, BTreeMap<Controller, Vec<f64>>)>,
}

impl Comparison {
    pub fn record(&mut self, row: &str, unit: Unit, c: Controller, value: f64) {
        if !self.rows.contains_key(row) {
            self.order.push(row.to_string());
        }
        self.rows
            .entry(row.to_string())
            .or_insert_with(|| (unit, BTreeMap::new()))
            .1
            .entry(c)
            .or_default()
            .push(value);
    }

    /// Median of a row's values for `c`, and its (min, max) over rounds.
    fn summary(&self, row: &str, c: Controller) -> Option<(f64, f64, f64)> {
        let mut v = self.rows.get(row)?.1.get(&c)?.clone();
        v.sort_by(f64::total_cmp);
        Some((median(&v)?, *v.first()?, *v.last()?))
    }

    /// The Markdown table: each cell the median over rounds, with the range when there were
    /// several; the ratio of medians.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| | haul | Kargo | haul ÷ Kargo |\n|---|---:|---:|---:|\n");
        for row in &self.order {
            let Some((unit, _)) = self.rows.get(row) else {
                continue;
            };
            let cell = |c| match self.summary(row, c) {
                Some((m, lo, hi)) if hi > lo => {
                    format!(
                        "{} ({}–{})",
                        unit.format(m),
                        unit.format(lo),
                        unit.format(hi)
                    )
                }
                Some((m, _, _)) => unit.format(m),
                None => "—".to_string(),
            };
            let ratio = match (
                self.summary(row, Controller::Haul),
                self.summary(row, Controller::Kargo),
            ) {
                (Some((h, _, _)), Some((k, _, _))) if k > 0.0 => format!("{:.2}", h / k),
                _ => "—".to_string(),
            };
            out.push_str(&format!(
                "| {row} | {} | {} | {ratio} |\n",
                cell(Controller::Haul),
                cell(Controller::Kargo)
            ));
        }
        out
    }
}

pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Waits up to `limit` for `done`, polling every `every`; whether it happened.
pub fn wait_until(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}
