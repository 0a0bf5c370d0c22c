//! Promotions end to end: a real control plane, a real `haul controller` process, and a real
//! GitOps repository served over HTTP with basic auth.

mod support;

use std::path::{Path, PathBuf};

use support::fixtures::{
    Stage, git_credentials_secret, git_credentials_secret_with_password, promotion_yaml,
};
use support::gitops::seed_gitops;
use support::services::services;
use support::{ControllerProcess, get_json, git, kubectl, kubectl_stdin, namespace, wait_for};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";
const SCENARIO_AFTER: &str = include_str!("fixtures/yaml/kustomization-scenario.after.yaml");

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = support::cp().dir().join("work");
        std::sync::Mutex::new(ControllerProcess::start(&dir))
    })
}

fn freight_yaml(ns: &str, name: &str, tag: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    kargo.akuity.io/alias: {name}-alias\nalias: {name}-alias\norigin:\n  kind: Warehouse\n  name: my-app\nimages:\n- repoURL: {ECR}\n  tag: \"{tag}\"\n  digest: sha256:{tag}0000\n"
    )
}

/// A Stage whose template is the reference pipeline's (plus the CI annotation the scenario
/// shows), editing `apps/<service>/env/dev`.
fn stage_yaml(ns: &str, stage: &str, repo: &str, service: &str, extra_step: &str) -> String {
    let template = format!(
        r#"      vars:
      - name: gitopsRepo
        value: {repo}
      - name: imageRepo
        value: {ECR}
      steps:
      - uses: git-clone
        config:
          repoURL: ${{{{ vars.gitopsRepo }}}}
          checkout:
          - branch: gitops
            path: ./src
      - uses: kustomize-set-image
        as: update-image
        config:
          path: ./src/apps/{service}/env/dev
          images:
          - image: ${{{{ vars.imageRepo }}}}
            name: my-app-service
            newName: ${{{{ vars.imageRepo }}}}
            tag: ${{{{ imageFrom(vars.imageRepo).Tag }}}}
      - uses: yaml-update
        config:
          path: ./src/apps/{service}/env/dev/kustomization.yaml
          updates:
          - key: commonAnnotations.git-provider/build_number
            value: ${{{{ imageFrom(vars.imageRepo).Tag }}}}
{extra_step}      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: ${{{{ outputs['update-image'].commitMessage }}}}
      - uses: git-push
        config:
          path: ./src
"#
    );
    Stage {
        ns,
        name: stage,
        warehouse: "my-app",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml()
}

fn promote(ns: &str, name: &str, stage: &str, freight: &str) {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(ns, name, stage, freight),
    )
    .success("create promotion");
}

/// Waits until the Promotion is terminal; returns its status.
fn finished(ns: &str, name: &str) -> serde_json::Value {
    wait_for(90, &format!("Promotion {name} to finish"), || {
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

fn setup(name: &str) -> (String, String, PathBuf) {
    let _ = controller();
    let ns = namespace(name);
    let (url, _) = seed_gitops(&ns);
    kubectl_stdin(
        &["apply", "-f", "-"],
        &git_credentials_secret(&ns, "gitops-creds", &url),
    )
    .success("secret");
    let bare = services().bare_path(&url);
    (ns, url, bare)
}

#[test]
fn reference_template_writes_exactly_the_scenario_kustomization() {
    let (ns, url, bare) = setup("golden");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f1006", "1006")).success("freight");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &stage_yaml(&ns, "dev", &url, "my-app-service1", ""),
    )
    .success("stage");
    let before = remote_head(&bare);
    promote(&ns, "p1", "dev", "f1006");
    let status = finished(&ns, "p1");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");

    // One new commit, touching exactly one file, whose bytes are the scenario's.
    let after = remote_head(&bare);
    assert_ne!(before, after);
    let log = git(
        &bare,
        &["log", "--format=%H", &format!("{before}..{after}")],
    );
    assert_eq!(log.lines().count(), 1, "{log}");
    let files = git(&bare, &["diff", "--name-only", &before, &after]);
    assert_eq!(
        files.trim(),
        "apps/my-app-service1/env/dev/kustomization.yaml"
    );
    let content = git(
        &bare,
        &[
            "show",
            &format!("{after}:apps/my-app-service1/env/dev/kustomization.yaml"),
        ],
    );
    assert_eq!(content, SCENARIO_AFTER);
    let message = git(&bare, &["log", "-1", "--format=%B", &after]);
    assert!(
        message.starts_with("Updated ./src/apps/my-app-service1/env/dev to use new image\n\n- 123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1006"),
        "{message}"
    );
    assert!(message.contains("Haul-Promotion: p1"), "{message}");

    // The final status carries every step although steps that only touch the work dir are not
    // saved one by one; the controller exports where the time went.
    let steps = status["stepExecutionMetadata"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        steps.iter().all(|m| m["status"] == "Succeeded") && steps.len() >= 4,
        "{status:#}"
    );
    let metrics = controller()
        .lock()
        .expect("controller")
        .http_get("/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    for phase in ["step/git-clone", "git/fetch", "git/push", "status"] {
        assert!(
            metrics.contains(&format!(
                "haul_promotion_phase_seconds_count{{phase=\"{phase}\"}}"
            )),
            "no {phase} in {metrics}"
        );
    }

    // kustomize renders the edited overlay with the new image.
    let check = support::cp().dir().join("render-golden");
    std::fs::create_dir_all(&check).expect("dir");
    git(&check, &["init", "-q"]);
    git(
        &check,
        &["fetch", "-q", &bare.display().to_string(), "gitops"],
    );
    git(&check, &["checkout", "-q", "FETCH_HEAD"]);
    let out = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(check.join("apps/my-app-service1/env/dev"))
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("image: {ECR}:1006")));

    // The Promotion and the Stage record what was deployed.
    assert_eq!(status["freight"]["name"], "f1006");
    assert_eq!(status["steps"].as_array().map(Vec::len), Some(5));
    let stage = get_json("stage", "dev", &ns).expect("stage");
    assert_eq!(stage["status"]["freightSummary"], "f1006");
    assert_eq!(stage["status"]["lastPromotion"]["name"], "p1");
    let f = get_json("freight", "f1006", &ns).expect("freight");
    assert!(
        f["status"]["currentlyIn"]["dev"]["since"].is_string(),
        "{f:#}"
    );

    // Promoting the same Freight again changes nothing and commits nothing.
    promote(&ns, "p2", "dev", "f1006");
    let status = finished(&ns, "p2");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    assert_eq!(remote_head(&bare), after, "a no-op promotion committed");
    let meta = &status["stepExecutionMetadata"];
    assert_eq!(meta[3]["status"], "Skipped", "{meta:#}");
}

#[test]
fn monorepo_promotions_change_only_their_own_folder() {
    let (ns, url, bare) = setup("monorepo");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f2001", "2001")).success("freight");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{}---\n{}",
            stage_yaml(&ns, "svc1-dev", &url, "my-app-service1", ""),
            stage_yaml(&ns, "svc2-dev", &url, "my-app-service2", "")
        ),
    )
    .success("stages");
    let start = remote_head(&bare);
    promote(&ns, "svc1", "svc1-dev", "f2001");
    assert_eq!(finished(&ns, "svc1")["phase"], "Succeeded");
    let mid = remote_head(&bare);
    let files = git(&bare, &["diff", "--name-only", &start, &mid]);
    assert_eq!(
        files.trim(),
        "apps/my-app-service1/env/dev/kustomization.yaml"
    );
    promote(&ns, "svc2", "svc2-dev", "f2001");
    assert_eq!(finished(&ns, "svc2")["phase"], "Succeeded");
    let end = remote_head(&bare);
    let files = git(&bare, &["diff", "--name-only", &mid, &end]);
    assert_eq!(
        files.trim(),
        "apps/my-app-service2/env/dev/kustomization.yaml"
    );
}

#[test]
fn concurrent_promotions_to_one_branch_both_land() {
    let (ns, url, bare) = setup("concurrent");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f3001", "3001")).success("freight");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{}---\n{}",
            stage_yaml(&ns, "a", &url, "my-app-service1", ""),
            stage_yaml(&ns, "b", &url, "my-app-service2", "")
        ),
    )
    .success("stages");
    let start = remote_head(&bare);
    // Both at once: different Stages run in parallel and push to the same branch.
    promote(&ns, "pa", "a", "f3001");
    promote(&ns, "pb", "b", "f3001");
    assert_eq!(finished(&ns, "pa")["phase"], "Succeeded");
    assert_eq!(finished(&ns, "pb")["phase"], "Succeeded");
    let end = remote_head(&bare);
    let log = git(
        &bare,
        &["log", "--format=%B%x00", &format!("{start}..{end}")],
    );
    assert_eq!(log.matches("Haul-Promotion: pa").count(), 1, "{log}");
    assert_eq!(log.matches("Haul-Promotion: pb").count(), 1, "{log}");
    let files = git(&bare, &["diff", "--name-only", &start, &end]);
    assert_eq!(files.lines().count(), 2, "{files}");
}

/// Each bad input ends the Promotion with a message a person can act on, and the repository
/// is unchanged.
#[test]
fn bad_inputs_fail_clearly_and_change_nothing() {
    let (ns, url, bare) = setup("bad-input");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f4001", "4001")).success("freight");
    let good = stage_yaml(&ns, "base", &url, "my-app-service1", "");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "bad-expression",
            good.replace(
                "imageFrom(vars.imageRepo).Tag }}\n      - uses: yaml-update",
                "imageFrom(vars.imageRepo).Tag + }}\n      - uses: yaml-update",
            ),
            "Failed",
            "update-image",
        ),
        (
            "bad-config",
            good.replace(
                "            path: ./src\n      - uses: kustomize-set-image",
                "            path: ./src\n            depth: 1\n      - uses: kustomize-set-image",
            ),
            "Failed",
            "unknown field `depth`",
        ),
        (
            "escape",
            good.replace(
                "path: ./src/apps/my-app-service1/env/dev\n",
                "path: ./src/../../etc\n",
            ),
            "Failed",
            "leaves the promotion's work directory",
        ),
        (
            "unknown-step",
            good.replace("- uses: yaml-update", "- uses: helm-update-image"),
            "Errored",
            "unknown step \"helm-update-image\"",
        ),
    ];
    let before = remote_head(&bare);
    for (stage, yaml, phase, needle) in &cases {
        let y = yaml.replace("name: base\n", &format!("name: {stage}\n"));
        kubectl_stdin(&["apply", "-f", "-"], &y).success(stage);
        promote(&ns, &format!("p-{stage}"), stage, "f4001");
        let status = finished(&ns, &format!("p-{stage}"));
        assert_eq!(status["phase"], *phase, "{stage}: {status:#}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{stage}: {message}");
    }
    assert_eq!(
        remote_head(&bare),
        before,
        "a failed promotion changed the repository"
    );

    // A wrong password: the git server refuses, the message says which Secret to fix.
    let wrong = support::cp().dir().join("none");
    let _ = wrong;
    kubectl_stdin(
        &["apply", "-f", "-"],
        &git_credentials_secret_with_password(&ns, "gitops-creds", &url, "wrong password"),
    )
    .success("secret");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &good.replace("name: base\n", "name: auth\n"),
    )
    .success("stage");
    promote(&ns, "p-auth", "auth", "f4001");
    let status = finished(&ns, "p-auth");
    assert_eq!(status["phase"], "Errored", "{status:#}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("kargo.akuity.io/cred-type: git"),
        "{message}"
    );
    assert!(
        !message.contains("wrong password"),
        "secret leaked: {message}"
    );
    assert!(
        !serde_json::to_string(&status)
            .unwrap_or_default()
            .contains("wrong password")
    );

    // No Secret at all: the server asks for credentials and the promotion says so.
    kubectl(&["delete", "secret", "gitops-creds", "-n", &ns]).success("delete secret");
    promote(&ns, "p-nosecret", "auth", "f4001");
    let status = finished(&ns, "p-nosecret");
    assert_eq!(status["phase"], "Errored", "{status:#}");
    assert_eq!(remote_head(&bare), before);

    // Freight that does not exist, and a Stage that does not exist (without the chart's
    // webhook, which refuses both at creation): it ran nothing, so it never becomes the Stage's
    // last Promotion.
    promote(&ns, "p-nofreight", "auth", "nope");
    let status = finished(&ns, "p-nofreight");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Freight nope does not exist"),
        "{status:#}"
    );
    wait_for(
        30,
        "the Stage to record p-nosecret as its last Promotion",
        || {
            let s = get_json("stage", "auth", &ns)?;
            (s["status"]["lastPromotion"]["name"] == "p-nosecret").then_some(())
        },
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stage = support::must_get_json("stage", "auth", &ns);
    assert_eq!(
        stage["status"]["lastPromotion"]["name"], "p-nosecret",
        "a Promotion that never started is not the last one: {:#}",
        stage["status"]
    );
    promote(&ns, "p-nostage", "ghost", "f4001");
    let status = finished(&ns, "p-nostage");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Stage ghost does not exist"),
        "{status:#}"
    );
}

/// kustomize-build renders the edited overlay with a real kustomize (the one in kubectl) into
/// the repository, as rendered-manifests pipelines do.
#[test]
fn kustomize_build_renders_the_overlay_into_the_repository() {
    let (ns, url, bare) = setup("render");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f5001", "5001")).success("freight");
    let extra = "      - uses: kustomize-build\n        config:\n          path: ./src/apps/my-app-service1/env/dev\n          outPath: ./src/rendered/dev/manifests.yaml\n";
    kubectl_stdin(
        &["apply", "-f", "-"],
        &stage_yaml(&ns, "dev", &url, "my-app-service1", extra),
    )
    .success("stage");
    promote(&ns, "render", "dev", "f5001");
    let status = finished(&ns, "render");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let head = remote_head(&bare);
    let rendered = git(
        &bare,
        &["show", &format!("{head}:rendered/dev/manifests.yaml")],
    );
    assert!(rendered.contains("kind: Deployment"), "{rendered}");
    assert!(
        rendered.contains(&format!("image: {ECR}:5001")),
        "{rendered}"
    );
}

/// A sparse checkout writes only the named folder, and the commit still changes only the one
/// file: nothing outside the sparse folder is deleted from the repository.
#[test]
fn sparse_checkouts_touch_only_their_folder() {
    let (ns, url, bare) = setup("sparse");
    kubectl_stdin(&["apply", "-f", "-"], &freight_yaml(&ns, "f6001", "6001")).success("freight");
    let stage = stage_yaml(&ns, "dev", &url, "my-app-service1", "").replace(
        "          - branch: gitops\n            path: ./src\n",
        "          - branch: gitops\n            path: ./src\n            sparse: [apps/my-app-service1/env/dev]\n",
    );
    assert!(stage.contains("sparse:"), "{stage}");
    kubectl_stdin(&["apply", "-f", "-"], &stage).success("stage");
    let before = remote_head(&bare);
    promote(&ns, "sparse", "dev", "f6001");
    let status = finished(&ns, "sparse");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let after = remote_head(&bare);
    let files = git(&bare, &["diff", "--name-status", &before, &after]);
    assert_eq!(
        files.trim(),
        "M\tapps/my-app-service1/env/dev/kustomization.yaml",
        "{files}"
    );
}
