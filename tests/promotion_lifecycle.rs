//! A Promotion's life across controller crashes, aborts and its Stage's queue, with a real
//! `haul controller` process, a real git server, and Argo CD Applications whose status the
//! test writes the way Argo CD would.

mod support;

use std::path::PathBuf;

use support::services::services;
use support::{ControllerProcess, get_json, git, kubectl, kubectl_stdin, namespace, wait_for};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

fn auth_url(url: &str) -> String {
    let s = services();
    let pass = s
        .var("HAUL_TEST_GIT_PASSWORD")
        .replace('@', "%40")
        .replace(' ', "%20");
    url.replacen(
        "http://",
        &format!("http://{}:{pass}@", s.var("HAUL_TEST_GIT_USER")),
        1,
    )
}

/// A repository with `apps/svc/env/dev/kustomization.yaml` on branch `gitops`.
fn seed(ns: &str) -> (String, PathBuf) {
    let url = services().new_repo(ns);
    let work = support::cp().dir().join(format!("seed-{ns}"));
    std::fs::create_dir_all(work.join("apps/svc/env/dev")).expect("dir");
    git(&work, &["init", "-q", "-b", "gitops"]);
    std::fs::write(
        work.join("apps/svc/env/dev/kustomization.yaml"),
        "resources: []\nimages:\n  - name: my-app\n    newTag: \"1\"\n",
    )
    .expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "init"]);
    git(&work, &["push", "-q", &auth_url(&url), "gitops"]);
    (url.clone(), services().bare_path(&url))
}

fn objects(ns: &str, url: &str, stage: &str) -> String {
    let s = services();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: git
  namespace: {ns}
  labels: {{kargo.akuity.io/cred-type: git}}
stringData:
  repoURL: {url}
  username: {user}
  password: '{pass}'
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: f7
  namespace: {ns}
origin: {{kind: Warehouse, name: w}}
images:
- {{repoURL: {ECR}, tag: "7", digest: "sha256:7"}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: {stage}
  namespace: {ns}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: {url}
          checkout: [{{branch: gitops, path: ./src}}]
      - uses: kustomize-set-image
        as: set
        config:
          path: ./src/apps/svc/env/dev
          images: [{{image: {ECR}, name: my-app}}]
      - uses: git-commit
        as: commit
        config:
          path: ./src
          message: ${{{{ outputs.set.commitMessage }}}}
      - uses: git-push
        config: {{path: ./src}}
      - uses: argocd-update
        config:
          apps:
          - name: app-{stage}
            namespace: {ns}
            sources:
            - repoURL: {url}
              desiredRevision: ${{{{ outputs.commit.commit }}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: app-{stage}
  namespace: {ns}
  annotations:
    kargo.akuity.io/authorized-stage: {ns}:{stage}
spec:
  project: default
  source: {{repoURL: {url}, targetRevision: gitops, path: apps/svc/env/dev}}
  destination: {{server: https://kubernetes.default.svc, namespace: default}}
"#,
        user = s.var("HAUL_TEST_GIT_USER"),
        pass = s.var("HAUL_TEST_GIT_PASSWORD"),
    )
}

fn promote(ns: &str, name: &str, stage: &str) {
    let y = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stage: {stage}\n  freight: f7\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &y).success("promotion");
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

/// What Argo CD does after syncing `revision` for `promotion`.
fn argocd_synced(ns: &str, app: &str, promotion: &str, revision: &str) {
    let patch = serde_json::json!({
        "operation": null,
        "status": {
            "health": {"status": "Healthy"},
            "sync": {"status": "Synced", "revision": revision},
            "reconciledAt": "2030-01-01T00:00:10Z",
            "operationState": {
                "phase": "Succeeded",
                "message": "successfully synced (all tasks run)",
                "startedAt": "2030-01-01T00:00:00Z",
                "finishedAt": "2030-01-01T00:00:05Z",
                "operation": {
                    "sync": {"revision": revision},
                    "initiatedBy": {"username": "haul-controller"},
                    "info": [{"name": "kargo.akuity.io/promotion", "value": promotion}]
                },
                "syncResult": {"revision": revision}
            }
        }
    });
    kubectl(&[
        "patch",
        "application",
        app,
        "-n",
        ns,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ])
    .success("argocd status");
}

/// Each test runs its own controller process; two at once would both reconcile everything.
static ONE_CONTROLLER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_controller_killed_mid_promotion_resumes_and_commits_once() {
    let _one = ONE_CONTROLLER.lock().unwrap_or_else(|e| e.into_inner());
    let ns = namespace("resume");
    let (url, bare) = seed(&ns);
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
    let (url, _bare) = seed(&ns);
    kubectl_stdin(&["apply", "-f", "-"], &objects(&ns, &url, "dev")).success("objects");
    let _c = ControllerProcess::start(&support::cp().dir().join("work-q"));
    promote(&ns, "q1", "dev");
    waiting_on_argocd(&ns, "q1");
    promote(&ns, "q2", "dev");
    let message = wait_for(30, "q2 to wait in the queue", || {
        let p = get_json("promotion", "q2", &ns)?;
        let m = p["status"]["message"].as_str()?.to_string();
        (p["status"]["phase"] == "Pending" && m.contains("Waiting for Promotion q1")).then_some(m)
    });
    assert!(message.contains("Stage dev"), "{message}");

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
