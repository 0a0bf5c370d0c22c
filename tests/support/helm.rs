//! The real helm, rendering the project's chart.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::repo_root;

/// The helm binary `hack/test-services.sh install` provides (installed on first use).
pub fn helm_bin() -> PathBuf {
    let helm = super::tools_dir().join("bin/helm");
    assert!(
        helm.is_file(),
        "helm is not installed at {}: run `bash hack/test-services.sh install` (or set HAUL_TOOLS \
         to the directory holding bin/helm)",
        helm.display()
    );
    helm
}

/// Runs helm in the repository with its home, cache, config and data in a temporary directory,
/// and with no kubeconfig, so nothing of the user's helm setup or cluster is read or written.
pub fn isolated(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().expect("temp dir");
    let h = home.path();
    Command::new(helm_bin())
        .args(args)
        .current_dir(repo_root())
        .env("HOME", h)
        .env("HELM_CACHE_HOME", h.join("cache"))
        .env("HELM_CONFIG_HOME", h.join("config"))
        .env("HELM_DATA_HOME", h.join("data"))
        .env("KUBECONFIG", h.join("no-kubeconfig"))
        .output()
        .expect("helm runs")
}

/// `helm template haul charts/haul -n <ns> <extra>`, with helm's state in a temporary directory.
pub fn render(ns: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "haul", "charts/haul", "--namespace", ns];
    args.extend_from_slice(extra);
    let out = isolated(&args);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&out.stdout))
        .expect("helm output is YAML")
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}
