//! A real Argo Rollouts controller running AnalysisRuns against a test control plane, for the
//! tests of haul's verification.
//!
//! The binary comes from `hack/rollouts-binary.sh` (built once from the Go module proxy and
//! cached by version, or `HAUL_ROLLOUTS_DIR`), with the CRDs of the same release next to it.
//! [`Rollouts::start`] applies the analysis CRDs (AnalysisRun, AnalysisTemplate,
//! ClusterAnalysisTemplate), then runs the controller out of cluster with the control plane's
//! admin kubeconfig: only its analysis controller (`--controllers=analysis`: no Rollouts,
//! Experiments or traffic routers to manage), watching every namespace, no leader election,
//! metrics and health on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{ControlPlane, process};

/// How long the controller may take to answer on its health port.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the API server may take to establish the CRDs.
const CRD_TIMEOUT: &str = "--timeout=60s";

/// The CRDs of the analysis controller, as files of the release's `manifests/crds`.
const CRD_FILES: [&str; 3] = [
    "analysis-run-crd.yaml",
    "analysis-template-crd.yaml",
    "cluster-analysis-template-crd.yaml",
];

#[derive(Debug, thiserror::Error)]
pub enum RolloutsError {
    #[error("the rollouts-controller binary: {0}")]
    Binary(String),
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("process: {0}")]
    Process(String),
    #[error("installing the Argo Rollouts CRDs: {0}")]
    Crds(String),
    #[error(
        "rollouts-controller did not become ready within {secs}s; last lines of {log}:\n{tail}"
    )]
    NotReady {
        secs: u64,
        log: String,
        tail: String,
    },
}

/// A running Argo Rollouts analysis controller. Dropping it stops the controller; its log is
/// kept in the control plane's directory.
#[derive(Debug)]
pub struct Rollouts {
    log: PathBuf,
    metrics_port: u16,
    healthz_port: u16,
    child: Mutex<Option<Child>>,
    started_in: Duration,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RolloutsError + '_ {
    move |source| RolloutsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn free_port() -> Result<u16, RolloutsError> {
    crate::free_loopback_port().map_err(RolloutsError::Process)
}

use crate::log_tail as tail;

/// The directory holding `rollouts-controller` and `crds/`: `hack/rollouts-binary.sh` prints it
/// (`HAUL_ROLLOUTS_DIR`, else the version-keyed cache, built on first use under a file lock).
pub fn locate() -> Result<PathBuf, RolloutsError> {
    let dir = crate::provisioned_dir("rollouts-binary.sh").map_err(RolloutsError::Binary)?;
    if !dir.join("rollouts-controller").is_file() {
        return Err(RolloutsError::Binary(format!(
            "{} holds no rollouts-controller",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Runs a kubectl command of `cp`; the error carries kubectl's output.
fn kubectl(cp: &ControlPlane, args: &[&str]) -> Result<(), RolloutsError> {
    let out = cp
        .kubectl()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RolloutsError::Crds(format!("cannot run kubectl: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(RolloutsError::Crds(format!(
        "kubectl {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// Applies the analysis CRDs from `dir/crds` and waits until they are Established. Server-side,
/// as the CRDs' schemas are too large for the last-applied annotation of a client-side apply.
pub fn install_crds(cp: &ControlPlane, dir: &Path) -> Result<(), RolloutsError> {
    let files: Vec<String> = CRD_FILES
        .iter()
        .map(|f| dir.join("crds").join(f).display().to_string())
        .collect();
    let mut apply = vec!["apply", "--server-side", "--force-conflicts"];
    for f in &files {
        apply.extend(["-f", f.as_str()]);
    }
    kubectl(cp, &apply)?;
    kubectl(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            CRD_TIMEOUT,
            "crd/analysisruns.argoproj.io",
            "crd/analysistemplates.argoproj.io",
            "crd/clusteranalysistemplates.argoproj.io",
        ],
    )
}

impl Rollouts {
    /// Installs the CRDs on `cp` and starts the analysis controller against it; returns once
    /// the controller answers on its health port.
    pub fn start(cp: &ControlPlane) -> Result<Self, RolloutsError> {
        let t0 = Instant::now();
        let dir = locate()?;
        install_crds(cp, &dir)?;
        let log = cp.dir().join("rollouts-controller.log");
        let metrics_port = free_port()?;
        let healthz_port = free_port()?;
        let file = std::fs::File::create(&log).map_err(io_err(&log))?;
        let file2 = file.try_clone().map_err(io_err(&log))?;
        let mut cmd = Command::new(dir.join("rollouts-controller"));
        cmd.arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .args([
                "--controllers=analysis",
                "--leader-elect=false",
                "--loglevel=info",
                &format!("--metricsPort={metrics_port}"),
                &format!("--healthzPort={healthz_port}"),
            ])
            .current_dir(cp.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2));
        let child = process::spawn(cmd).map_err(|e| RolloutsError::Process(e.to_string()))?;
        let mut r = Rollouts {
            log,
            metrics_port,
            healthz_port,
            child: Mutex::new(Some(child)),
            started_in: Duration::ZERO,
        };
        r.wait_healthy()?;
        r.started_in = t0.elapsed();
        tracing::info!(secs = r.started_in.as_secs_f64(), log = %r.log.display(), "rollouts-controller ready");
        Ok(r)
    }

    fn wait_healthy(&self) -> Result<(), RolloutsError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let url = format!("http://127.0.0.1:{}/healthz", self.healthz_port);
        loop {
            if agent.get(&url).call().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline || self.exited() {
                return Err(RolloutsError::NotReady {
                    secs: START_TIMEOUT.as_secs(),
                    log: self.log.display().to_string(),
                    tail: tail(&self.log),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exited(&self) -> bool {
        match self.child.lock() {
            Ok(mut c) => c
                .as_mut()
                .is_none_or(|ch| matches!(ch.try_wait(), Ok(Some(_)))),
            Err(_) => true,
        }
    }

    /// The controller's log (stdout and stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last lines of the controller's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// `http://127.0.0.1:<port>/metrics`: the controller's Prometheus metrics.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// Time from `start()` until the controller answered (the build, when it ran, included).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Stops the controller.
    pub fn stop(&self) {
        if let Ok(mut c) = self.child.lock()
            && let Some(mut child) = c.take()
        {
            process::stop(&mut child);
        }
    }
}

impl Drop for Rollouts {
    fn drop(&mut self) {
        self.stop();
    }
}
