//! A GitOps monorepo on the test git server, laid out like the reference pipeline's.

use std::path::PathBuf;

use super::git;
use super::services::services;

pub const SCENARIO_BEFORE: &str =
    include_str!("../fixtures/yaml/kustomization-scenario.before.yaml");

/// `url` with the test git server's credentials in it (URL-encoded), for the git CLI.
pub fn encoded_auth_url(url: &str) -> String {
    let s = services();
    let user = s.var("HAUL_TEST_GIT_USER");
    let pass = s
        .var("HAUL_TEST_GIT_PASSWORD")
        .replace('%', "%25")
        .replace('@', "%40")
        .replace(' ', "%20")
        .replace(':', "%3A");
    url.replacen("http://", &format!("http://{user}:{pass}@"), 1)
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
