//! A Promotion's life across controller crashes, aborts and its Stage's queue, with a real
//! `haul controller` process, a real git server, and Argo CD Applications whose status the
//! test writes the way Argo CD would.

mod support;

use support::fixtures::{
    GitopsTemplate, Stage, argocd_application_yaml, argocd_synced, git_credentials_secret,
    promotion_yaml,
};
use support::gitops::seed_dev_overlay;
use support::{ControllerProcess, get_json, git, kubectl, kubectl_stdin, namespace, wait_for};

/// Runs `haul` with the test control plane's kubeconfig; its stdout.
fn haul_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_haul"))
        .env("KUBECONFIG", support::cp().kubeconfig())
        .args(args)
        .output()
        .expect("haul runs");
    assert!(
        out.status.success(),
        "haul {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

/// Credentials, Freight f7, Stage `stage` (git + argocd-update) and its Application
/// `app-<stage>`.
fn objects(ns: &str, url: &str, stage: &str) -> String {
    let app = format!("app-{stage}");
    let template = GitopsTemplate {
        repo_url: url,
        overlay: "apps/svc/env/dev",
        image: ECR,
        image_name: "my-app",
        argocd_app: Some((ns, &app)),
    }
    .yaml();
    let stage_yaml = Stage {
        ns,
        name: stage,
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    format!(
        r#"{secret}---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: f7
  namespace: {ns}
origin: {{kind: Warehouse, name: w}}
images:
- {{repoURL: {ECR}, tag: "7", digest: "sha256:7"}}
---
{stage_yaml}---
{application}"#,
        secret = git_credentials_secret(ns, "git", url),
        application = argocd_application_yaml(ns, &app, stage, url, "apps/svc/env/dev"),
    )
}

fn promote(ns: &str, name: &str, stage: &str) {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(ns, name, stage, "f7"),
    )
    .success("promotion");
}

fn phase(ns: &str, name: &str) -> Option<String> {
    get_json("promotion", name, ns)?["status"]["phase"]
        .as_str()
        .map(str::to_string)
}

/// Waits until the Promotion waits on argocd-update (the fifth step is Running).
fn waiting_on_argocd(ns: &str, name: &str) {
    wait_for(60, &format!("{name} to reach argocd-update"), || {
        let p = get_json("promotion", name, ns)?;
        (p["status"]["stepExecutionMetadata"][4]["status"] == "Running").then_some(())
    });
}

/// Each test runs its own controller process; two at once would both reconcile everything.
static ONE_CONTROLLER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_controller_killed_mid_promotion_resumes_and_commits_once() {
    let _one = ONE_CONTROLLER.lock().unwrap_or_else(|e| e.into_inner());
    let ns = namespace("resume");
    let (url, bare) = seed_dev_overlay(&ns);
    kubectl_stdin(&["apply", "-f", "-"], &objects(&ns, &url, "dev")).success("objects");
    let before = git(&bare, &["rev-parse", "gitops"]).trim().to_string();

    let mut first = ControllerProcess::start(&support::cp().dir().join("work-a"));
    promote(&ns, "p1", "dev");
    waiting_on_argocd(&ns, "p1");
    let app = get_json("application", "app-dev", &ns).expect("app");
    let info = app["operation"]["info"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        info.iter()
            .any(|i| i["name"] == "kargo.akuity.io/promotion" && i["value"] == "p1"),
        "{app:#}"
    );
    assert_eq!(
        app["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        "hard"
    );
    // Crash: the new process has a fresh (empty) work directory, as a new pod would.
    first.kill();
    let _second = ControllerProcess::start(&support::cp().dir().join("work-b"));
    let pushed = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    assert_ne!(pushed, before);
    // The replayed steps re-run against the repository that already has the commit.
    std::thread::sleep(std::time::Duration::from_secs(3));
    argocd_synced(&ns, "app-dev", "p1", &pushed);
    wait_for(60, "p1 to succeed", || {
        (phase(&ns, "p1").as_deref() == Some("Succeeded")).then_some(())
    });
    let after = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    let log = git(
        &bare,
        &["log", "--format=%s", &format!("{before}..{after}")],
    );
    assert_eq!(
        log.lines().count(),
        1,
        "expected exactly one commit:\n{log}"
    );
    // The Promotion left the health check the Stage runs from then on.
    let p = get_json("promotion", "p1", &ns).expect("p1");
    assert_eq!(p["status"]["healthChecks"][0]["uses"], "argocd-update");
}

#[test]
fn promotions_queue_per_stage_and_abort() {
    let _one = ONE_CONTROLLER.lock().unwrap_or_else(|e| e.into_inner());
    let ns = namespace("queue");
    let (url, _bare) = seed_dev_overlay(&ns);
    kubectl_stdin(&["apply", "-f", "-"], &objects(&ns, &url, "dev")).success("objects");
    let _c = ControllerProcess::start(&support::cp().dir().join("work-q"));
    promote(&ns, "q1", "dev");
    waiting_on_argocd(&ns, "q1");
    promote(&ns, "q2", "dev");
    let message = wait_for(30, "q2 to wait in the queue", || {
        let p = get_json("promotion", "q2", &ns)?;
        let m = p["status"]["message"].as_str()?.to_string();
        (p["status"]["phase"] == "Pending" && m.contains("queue of Stage dev")).then_some(m)
    });
    assert!(!message.contains("q1"), "a stable message: {message}");
    // The position is computed by the CLI from the Stage's Promotions.
    let shown = haul_cli(&["get", "promotions", "q2", "-n", &ns, "-o", "wide"]);
    assert!(
        shown.contains("queued, 1 ahead")
            && shown
                .contains("Waiting for Promotion q1 to finish (1 ahead in the queue of Stage dev)")
            && !shown.contains("\nq1 "),
        "{shown}"
    );

    kubectl(&[
        "annotate",
        "promotion",
        "q1",
        "-n",
        &ns,
        r#"kargo.akuity.io/abort={"action":"terminate"}"#,
    ])
    .success("abort");
    wait_for(30, "q1 to abort", || {
        (phase(&ns, "q1").as_deref() == Some("Aborted")).then_some(())
    });
    let p = get_json("promotion", "q1", &ns).expect("q1");
    assert_eq!(p["status"]["stepExecutionMetadata"][4]["status"], "Aborted");
    // The queue moves on: q2 starts and runs to the same step.
    waiting_on_argocd(&ns, "q2");
    kubectl(&[
        "annotate",
        "promotion",
        "q2",
        "-n",
        &ns,
        r#"kargo.akuity.io/abort={"action":"terminate"}"#,
    ])
    .success("abort q2");
    wait_for(30, "q2 to abort", || {
        (phase(&ns, "q2").as_deref() == Some("Aborted")).then_some(())
    });
}
