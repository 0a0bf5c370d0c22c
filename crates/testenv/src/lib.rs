//! The real components haul's integration tests, benchmarks and `haul quickstart` run against,
//! kept out of the operator crate so the binary a cluster runs links none of it:
//!
//! - [`ControlPlane`]: etcd + kube-apiserver on free loopback ports ([`binaries`] finds or builds
//!   them, [`pki`] makes their certificates);
//! - [`Services`]: the side services of `hack/test-services.sh` (moto for ECR and STS, the
//!   distribution registry with and without auth, git over HTTP with basic auth), installed on
//!   first use;
//! - [`Gitea`]: a real Gitea (API, pull requests, webhooks, git over HTTP) on a free loopback
//!   port, built once from the Go module proxy by `hack/gitea-binary.sh`;
//! - [`Rollouts`]: Argo Rollouts' analysis controller running AnalysisRuns against a control
//!   plane, built once from the Go module proxy by `hack/rollouts-binary.sh`;
//! - [`ArgoCd`]: a real Argo CD (application-controller, repo-server, Redis) out of cluster
//!   against a [`ControlPlane`], built once from the Go module proxy by `hack/argocd-binary.sh`;
//! - [`process`]: child processes that die with the process that started them.
//!
//! Every provisioning step takes a file lock, so two test binaries (or a test and the
//! quickstart) starting at the same moment do not build or install into the same files.

pub mod argocd;
pub mod binaries;
mod control_plane;
pub mod gitea;
pub mod pki;
pub mod process;
pub mod rollouts;
pub mod services;

use std::path::PathBuf;

pub use argocd::ArgoCd;
pub use binaries::Binaries;
pub use control_plane::{Component, ControlPlane, client_from, install_crds};
pub use gitea::{Gitea, GiteaApi, GiteaError};
pub use pki::CertPair;
pub use process::{kill_group_at_exit, remove_at_exit};
pub use rollouts::{Rollouts, RolloutsError};
pub use services::{Services, ServicesError};

#[derive(Debug, thiserror::Error)]
pub enum EnvtestError {
    #[error("control-plane binaries: {0}")]
    Binaries(String),
    #[error("certificates: {0}")]
    Pki(String),
    #[error("process: {0}")]
    Process(String),
    #[error("{what} did not become ready within {secs}s; last lines of {log}:\n{tail}")]
    NotReady {
        what: &'static str,
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("kubernetes: {0}")]
    Kube(String),
}

/// The repository this crate lives in: its `hack/` scripts provision everything here.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A script of the repository's `hack/` folder.
pub fn hack_script(name: &str) -> PathBuf {
    repo_root().join("hack").join(name)
}

/// Runs `hack/<name>`, a provisioning script that builds or finds something and prints the
/// directory holding it; its progress goes to this process's stderr.
pub(crate) fn provisioned_dir(name: &str) -> Result<PathBuf, String> {
    let script = hack_script(name);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); see its output above",
            script.display(),
            out.status
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A port on 127.0.0.1 that is free now (the OS picks it; the listener closes on return).
pub(crate) fn free_loopback_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The last 30 lines of a log file (empty when it cannot be read), for error messages.
pub(crate) fn log_tail(path: &std::path::Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
