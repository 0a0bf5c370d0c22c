//! Where the control-plane binaries come from, in envtest's lookup order.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::EnvtestError;

/// Paths of the two binaries a control plane needs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
}

/// Finds etcd and kube-apiserver: `TEST_ASSET_ETCD` / `TEST_ASSET_KUBE_APISERVER`, then
/// `KUBEBUILDER_ASSETS`, then the version-keyed cache that `hack/k8s-binaries.sh` fills
/// (building the binaries from the Go module proxy when the cache is empty).
pub fn locate() -> Result<Binaries, EnvtestError> {
    if let (Some(etcd), Some(kas)) = (
        std::env::var_os("TEST_ASSET_ETCD"),
        std::env::var_os("TEST_ASSET_KUBE_APISERVER"),
    ) {
        return checked(PathBuf::from(etcd), PathBuf::from(kas));
    }
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        let dir = PathBuf::from(dir);
        return checked(dir.join("etcd"), dir.join("kube-apiserver"));
    }
    let dir = provision()?;
    checked(dir.join("etcd"), dir.join("kube-apiserver"))
}

fn checked(etcd: PathBuf, kube_apiserver: PathBuf) -> Result<Binaries, EnvtestError> {
    for p in [&etcd, &kube_apiserver] {
        if !is_executable(p) {
            return Err(EnvtestError::Binaries(format!(
                "{} is not an executable file (set KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver, or unset it to build them with hack/k8s-binaries.sh)",
                p.display()
            )));
        }
    }
    Ok(Binaries {
        etcd,
        kube_apiserver,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs the repository's provisioning script, which prints the directory holding both binaries.
fn provision() -> Result<PathBuf, EnvtestError> {
    let script = crate::hack_script("k8s-binaries.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| EnvtestError::Binaries(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(EnvtestError::Binaries(format!(
            "{} failed ({}); see its output above",
            script.display(),
            out.status
        )));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(dir))
}
