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

/// A GitOps monorepo with service1 and service2, each with base and env/dev|uat|prod, on
/// branch `gitops`. Returns (clone URL, a local clone to inspect).
pub fn seed_gitops(name: &str) -> (String, PathBuf) {
    let url = services().new_repo(name);
    let work = super::cp().dir().join(format!("seed-{name}"));
    std::fs::create_dir_all(&work).expect("dir");
    git(&work, &["clone", "-q", &encoded_auth_url(&url), "."]);
    git(&work, &["checkout", "-q", "-b", "gitops"]);
    for svc in ["my-app-service1", "my-app-service2"] {
        let base = work.join(format!("apps/{svc}/base"));
        std::fs::create_dir_all(&base).expect("base");
        std::fs::write(
            base.join("kustomization.yaml"),
            "resources:\n  - deployment.yaml\n",
        )
        .expect("write");
        std::fs::write(
            base.join("deployment.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: my-app-service\n",
        )
        .expect("write");
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
                std::fs::write(
                    d.join(f),
                    format!(
                        "apiVersion: example.com/v1\nkind: {kind}\nmetadata:\n  name: my-app\n"
                    ),
                )
                .expect("write");
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
