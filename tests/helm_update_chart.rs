//! helm-update-chart end to end: an umbrella chart on the test git server whose Chart.lock was
//! written by the real `helm dependency update`, dependencies pushed with the real helm to the
//! distribution registry and to a classic repository on loopback, and a real `haul controller`
//! running git-clone → helm-update-chart → git-commit → git-push. The pushed result must pass
//! `helm dependency build`, which rejects a Chart.lock out of sync with Chart.yaml.

mod support;

use std::path::Path;

use support::charts::{HttpRepo, helm, push_oci};
use support::gitops::encoded_auth_url;
use support::services::services;
use support::{ControllerProcess, get_json, git, kubectl_stdin, namespace, wait_for};

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        std::sync::Mutex::new(ControllerProcess::start(
            &support::cp().dir().join("work-helm"),
        ))
    })
}

const CHART: &str = r#"apiVersion: v2
name: umbrella
version: 0.1.0
# Dependencies are bumped by haul; keep this comment.
dependencies:
  - name: app
    version: "0.1.0"   # pinned
    repository: OCI_REPO
  - name: web
    version: 1.0.0
    repository: HTTP_REPO
    condition: web.enabled
"#;

fn stage(ns: &str, name: &str, repo: &str, path: &str, charts: &str) -> String {
    format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: {name}
  namespace: {ns}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: charts}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: {repo}
          checkout:
          - branch: gitops
            path: ./src
      - uses: helm-update-chart
        as: update-chart
        config:
          path: {path}
          charts:
{charts}      - uses: git-commit
        config:
          path: ./src
          message: "charts: ${{{{ outputs['update-chart'].commitMessage }}}}"
      - uses: git-push
        config:
          path: ./src
"#
    )
}

fn freight(ns: &str, name: &str, oci: &str, http: &str, app: &str, web: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/alias: {name}\nalias: {name}\norigin:\n  kind: Warehouse\n  name: charts\ncharts:\n- repoURL: {oci}\n  version: {app}\n- repoURL: {http}\n  name: web\n  version: {web}\n"
    )
}

fn promote(ns: &str, name: &str, stage: &str, freight: &str) -> serde_json::Value {
    let y = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stage: {stage}\n  freight: {freight}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &y).success("create promotion");
    wait_for(120, &format!("Promotion {name} to finish"), || {
        let p = get_json("promotion", name, ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase)
            .then(|| p["status"].clone())
    })
}

fn remote_head(bare: &Path) -> String {
    git(bare, &["rev-parse", "refs/heads/gitops"])
        .trim()
        .to_string()
}

/// `helm dependency build` on the chart, as Argo CD runs it: fails on an out-of-sync lock.
fn dependency_build(home: &Path, chart: &Path) -> String {
    helm(
        home,
        &[
            "dependency",
            "build",
            &chart.display().to_string(),
            "--plain-http",
        ],
    )
}

#[test]
fn promotion_bumps_chart_dependencies_and_keeps_the_lock_valid() {
    let _ = controller();
    let ns = namespace("helm-chart");
    let s = services();
    let home = tempfile::tempdir().expect("home");
    let h = home.path();

    // Dependencies: app in the OCI registry, web in a classic repository.
    let reg = s.var("HAUL_TEST_REGISTRY").to_string();
    push_oci(h, &reg, &ns, "app", &["0.1.0", "0.2.0"], None);
    let repo = HttpRepo::start(&h.join("repo"), None);
    repo.publish(h, "web", &["1.0.0", "1.1.0"]);
    helm(h, &["repo", "add", "web", &repo.url]);
    let oci_repo = format!("oci://{reg}/{ns}");
    let oci_chart = format!("{oci_repo}/app");

    // The GitOps repo: the umbrella chart with a lock written by the real helm.
    let url = s.new_repo(&ns);
    let seed = h.join("seed");
    std::fs::create_dir_all(&seed).expect("dir");
    git(&seed, &["clone", "-q", &encoded_auth_url(&url), "."]);
    git(&seed, &["checkout", "-q", "-b", "gitops"]);
    std::fs::create_dir_all(seed.join("charts/umbrella/templates")).expect("dir");
    let chart_yaml = CHART
        .replace("OCI_REPO", &oci_repo)
        .replace("HTTP_REPO", &repo.url);
    std::fs::write(seed.join("charts/umbrella/Chart.yaml"), &chart_yaml).expect("chart");
    std::fs::write(seed.join(".gitignore"), "charts/umbrella/charts/\n").expect("ignore");
    helm(
        h,
        &[
            "dependency",
            "update",
            &seed.join("charts/umbrella").display().to_string(),
            "--plain-http",
        ],
    );
    let seeded_lock =
        std::fs::read_to_string(seed.join("charts/umbrella/Chart.lock")).expect("helm's lock");
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "umbrella chart"]);
    git(&seed, &["push", "-q", "origin", "gitops"]);
    let bare = s.bare_path(&url);

    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/cred-type: git\nstringData:\n  repoURL: {url}\n  username: {}\n  password: '{}'\n",
        s.var("HAUL_TEST_GIT_USER"),
        s.var("HAUL_TEST_GIT_PASSWORD")
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    let charts = format!(
        "          - repository: {oci_repo}\n            name: app\n            version: ${{{{ chartFrom('{oci_chart}').Version }}}}\n          - repository: {}\n            name: web\n            version: ${{{{ chartFrom('{}', 'web').Version }}}}\n",
        repo.url, repo.url
    );
    kubectl_stdin(
        &["apply", "-f", "-"],
        &stage(&ns, "dev", &url, "./src/charts/umbrella", &charts),
    )
    .success("stage");

    // 1. The Freight's versions are what the lock already says: haul's digest equals helm's, so
    //    nothing changes and nothing is committed.
    let head = remote_head(&bare);
    kubectl_stdin(
        &["apply", "-f", "-"],
        &freight(&ns, "same", &oci_chart, &repo.url, "0.1.0", "1.0.0"),
    )
    .success("freight");
    let st = promote(&ns, "p-same", "dev", "same");
    assert_eq!(st["phase"], "Succeeded", "{st}");
    assert_eq!(remote_head(&bare), head, "a no-op update must not commit");

    // 2. New versions: exactly the two version lines change, and the lock is rewritten.
    kubectl_stdin(
        &["apply", "-f", "-"],
        &freight(&ns, "bump", &oci_chart, &repo.url, "0.2.0", "1.1.0"),
    )
    .success("freight");
    let st = promote(&ns, "p-bump", "dev", "bump");
    assert_eq!(st["phase"], "Succeeded", "{st}");
    assert_ne!(remote_head(&bare), head);

    let check = h.join("check");
    std::fs::create_dir_all(&check).expect("dir");
    git(
        &check,
        &["clone", "-q", "-b", "gitops", &encoded_auth_url(&url), "."],
    );
    let after = std::fs::read_to_string(check.join("charts/umbrella/Chart.yaml")).expect("chart");
    let want = chart_yaml
        .replace(
            "version: \"0.1.0\"   # pinned",
            "version: \"0.2.0\"   # pinned",
        )
        .replace("    version: 1.0.0\n", "    version: 1.1.0\n");
    assert_eq!(after, want, "only the two versions may change");
    let lock = std::fs::read_to_string(check.join("charts/umbrella/Chart.lock")).expect("lock");
    assert_ne!(lock, seeded_lock);
    assert!(
        lock.contains("version: 0.2.0") && lock.contains("version: 1.1.0"),
        "{lock}"
    );
    let message = git(&check, &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("charts: Updated chart dependencies for ./src/charts/umbrella")
            && message.contains("- app: 0.1.0 -> 0.2.0")
            && message.contains("- web: 1.0.0 -> 1.1.0"),
        "{message}"
    );
    // What Argo CD does with it: build succeeds, fetching exactly the new versions.
    dependency_build(h, &check.join("charts/umbrella"));
    let mut fetched: Vec<String> = std::fs::read_dir(check.join("charts/umbrella/charts"))
        .expect("charts/")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    fetched.sort();
    assert_eq!(fetched, ["app-0.2.0.tgz", "web-1.1.0.tgz"]);
}

#[test]
fn bad_helm_update_chart_configs_fail_with_the_field() {
    let _ = controller();
    let ns = namespace("helm-bad");
    let s = services();
    let home = tempfile::tempdir().expect("home");
    let h = home.path();
    let url = s.new_repo(&ns);
    let seed = h.join("seed");
    std::fs::create_dir_all(&seed).expect("dir");
    git(&seed, &["clone", "-q", &encoded_auth_url(&url), "."]);
    git(&seed, &["checkout", "-q", "-b", "gitops"]);
    std::fs::create_dir_all(seed.join("chart")).expect("dir");
    std::fs::write(
        seed.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: u\nversion: 0.1.0\ndependencies:\n- name: app\n  version: 1.0.0\n  repository: oci://example.com/charts\n",
    )
    .expect("chart");
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "chart"]);
    git(&seed, &["push", "-q", "origin", "gitops"]);
    let bare = s.bare_path(&url);
    let head = remote_head(&bare);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/cred-type: git\nstringData:\n  repoURL: {url}\n  username: {}\n  password: '{}'\n",
        s.var("HAUL_TEST_GIT_USER"),
        s.var("HAUL_TEST_GIT_PASSWORD")
    );
    kubectl_stdin(&["apply", "-f", "-"], &secret).success("secret");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &freight(
            &ns,
            "f",
            "oci://example.com/charts/app",
            "http://x",
            "2.0.0",
            "1.0.0",
        ),
    )
    .success("freight");

    let cases = [
        (
            "wrong-name",
            "./src/chart",
            "          - repository: oci://example.com/charts\n            name: api\n            version: 2.0.0\n",
            "config.charts[0]: no dependency in ./src/chart/Chart.yaml has repository \"oci://example.com/charts\" and name \"api\"",
        ),
        (
            "escape",
            "./src/../../..",
            "          - repository: oci://example.com/charts\n            name: app\n            version: 2.0.0\n",
            "leaves the promotion's work directory",
        ),
        (
            "no-version",
            "./src/chart",
            "          - repository: oci://example.com/charts\n            name: app\n",
            "config.charts[0]: missing field `version`",
        ),
    ];
    for (name, path, charts, _) in &cases {
        kubectl_stdin(&["apply", "-f", "-"], &stage(&ns, name, &url, path, charts))
            .success("stage");
    }
    for (name, _, _, want) in &cases {
        let st = promote(&ns, &format!("p-{name}"), name, "f");
        assert_eq!(st["phase"], "Failed", "{name}: {st}");
        let message = st["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{name}: {want:?} in {message:?}");
    }
    assert_eq!(remote_head(&bare), head, "failed promotions change nothing");
}
