//! A GitOps monorepo on the test git server, laid out like the reference pipeline's.

use std::path::PathBuf;

use super::git;
use super::services::services;

pub const SCENARIO_BEFORE: &str =
    include_str!("../fixtures/yaml/kustomization-scenario.before.yaml");

/// Percent-encodes everything but RFC 3986 unreserved characters (the test password has '@'
/// and a space).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `url` with the test git server's credentials in it (URL-encoded), for the git CLI.
pub fn encoded_auth_url(url: &str) -> String {
    let s = services();
    let user = percent_encode(s.var("HAUL_TEST_GIT_USER"));
    let pass = percent_encode(s.var("HAUL_TEST_GIT_PASSWORD"));
    url.replacen("http://", &format!("http://{user}:{pass}@"), 1)
}

/// A repository with only `apps/svc/env/dev/kustomization.yaml` (image `my-app` at tag 1) on
/// branch `gitops`. Returns (clone URL, the bare repository on disk).
pub fn seed_dev_overlay(name: &str) -> (String, PathBuf) {
    let url = services().new_repo(name);
    let work = super::cp().dir().join(format!("seed-{name}"));
    std::fs::create_dir_all(work.join("apps/svc/env/dev")).expect("dir");
    git(&work, &["init", "-q", "-b", "gitops"]);
    std::fs::write(
        work.join("apps/svc/env/dev/kustomization.yaml"),
        "resources: []\nimages:\n  - name: my-app\n    newTag: \"1\"\n",
    )
    .expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "init"]);
    git(&work, &["push", "-q", &encoded_auth_url(&url), "gitops"]);
    let bare = services().bare_path(&url);
    (url, bare)
}

/// What the seeded services deploy.
#[derive(Clone, Copy)]
enum Workload {
    /// A Deployment and custom kinds (VirtualService, ExternalSecret, …) with no CRDs: enough
    /// for haul to edit, never Healthy in a real Argo CD here (no nodes, no CRDs).
    Stubs,
    /// The same file names and kustomization.yaml, holding what a real Argo CD syncs Healthy
    /// without nodes: a suspended CronJob with image `my-app-service` and ConfigMaps.
    SyncsHealthy,
}

/// A GitOps monorepo with service1 and service2, each with base and env/dev|uat|prod, on
/// branch `gitops`. Returns (clone URL, a local clone to inspect).
pub fn seed_gitops(name: &str) -> (String, PathBuf) {
    seed(name, Workload::Stubs)
}

/// [`seed_gitops`] for a real Argo CD: the overlays' kustomization.yaml is the same (so
/// kustomize-set-image makes the same edit), but every resource syncs Healthy without nodes.
/// The custom kinds become ConfigMaps under the same file names rather than minimal CRDs: that
/// keeps CRDs of made-up kinds out of the control plane every test of the binary shares, and
/// the story is about the image edit, not those kinds. `prod-env.yml`'s patch targets a
/// Deployment, which no longer exists, so kustomize applies it to nothing.
pub fn seed_gitops_for_argocd(name: &str) -> (String, PathBuf) {
    seed(name, Workload::SyncsHealthy)
}

fn seed(name: &str, workload: Workload) -> (String, PathBuf) {
    let url = services().new_repo(name);
    let work = super::cp().dir().join(format!("seed-{name}"));
    std::fs::create_dir_all(&work).expect("dir");
    git(&work, &["clone", "-q", &encoded_auth_url(&url), "."]);
    git(&work, &["checkout", "-q", "-b", "gitops"]);
    for svc in ["my-app-service1", "my-app-service2"] {
        let base = work.join(format!("apps/{svc}/base"));
        std::fs::create_dir_all(&base).expect("base");
        let (base_file, base_body) = match workload {
            Workload::Stubs => (
                "deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: my-app-service\n",
            ),
            Workload::SyncsHealthy => (
                "cronjob.yaml",
                "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: my-app\nspec:\n  schedule: \"0 0 1 1 *\"\n  suspend: true\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n            - name: app\n              image: my-app-service\n",
            ),
        };
        std::fs::write(
            base.join("kustomization.yaml"),
            format!("resources:\n  - {base_file}\n"),
        )
        .expect("write");
        std::fs::write(base.join(base_file), base_body).expect("write");
        for env in ["dev", "uat", "prod"] {
            let d = work.join(format!("apps/{svc}/env/{env}"));
            std::fs::create_dir_all(&d).expect("env dir");
            std::fs::write(d.join("kustomization.yaml"), SCENARIO_BEFORE).expect("write");
            for (f, kind) in [
                ("virtual-service.yml", "VirtualService"),
                ("secret-store.yml", "SecretStore"),
                ("external-secret.yml", "ExternalSecret"),
                ("scaledobject.yaml", "ScaledObject"),
                ("vpa.yaml", "VerticalPodAutoscaler"),
            ] {
                let body = match workload {
                    Workload::Stubs => format!(
                        "apiVersion: example.com/v1\nkind: {kind}\nmetadata:\n  name: my-app\n"
                    ),
                    Workload::SyncsHealthy => format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: my-app-{}\ndata:\n  stands-for: {kind}\n",
                        kind.to_lowercase()
                    ),
                };
                std::fs::write(d.join(f), body).expect("write");
            }
            std::fs::write(
                d.join("prod-env.yml"),
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-app\nspec:\n  replicas: 2\n",
            )
            .expect("write");
        }
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "initial layout"]);
    git(&work, &["push", "-q", "origin", "gitops"]);
    (url, work)
}
