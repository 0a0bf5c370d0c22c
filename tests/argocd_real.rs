//! `argocd-update` and the Stage's Argo CD health against a real Argo CD (v3.2, built from the Go
//! module proxy by `hack/argocd-binary.sh`): its application-controller and repo-server run out
//! of cluster against this binary's kube-apiserver and deploy into it, fetching manifests from
//! the local git server over HTTP with basic auth (a repository Secret, as a user writes one).
//!
//! Nothing here writes an Application's status: every `operationState`, `reconciledAt`,
//! `sync.revision(s)` and health is Argo CD's own. ConfigMaps sync Healthy; a Deployment stays
//! Progressing (no kube-controller-manager or nodes run, so it never rolls out).
//! `tests/argocd.rs` keeps the cases real Argo CD cannot be made to produce on demand.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use haul::api::{HealthState, StepStatus};
use haul::argocd::{self, Error, UpdateConfig};
use haul_testenv::argocd::repository_secret_yaml;
use serde_json::{Value, json};
use support::argocd::{ARGO_WAIT, argocd, wait_argo};
use support::fixtures::{GitopsTemplate, Stage, git_credentials_secret, promotion_yaml};
use support::gitops::encoded_auth_url;
use support::services::services;
use support::{ControllerProcess, get_json, git, kubectl, kubectl_stdin, namespace};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

/// The one haul controller of this binary.
fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: OnceLock<std::sync::Mutex<ControllerProcess>> = OnceLock::new();
    C.get_or_init(|| {
        let dir = support::cp().dir().join("work-argocd-real");
        std::sync::Mutex::new(ControllerProcess::start(&dir))
    })
}

fn apply(yaml: &str) {
    kubectl_stdin(&["apply", "-f", "-"], yaml).success("kubectl apply");
}

/// A new repository on the git server with `files` committed on branch `gitops`, and a
/// repository Secret for Argo CD. Returns (URL, a work tree to push more commits from, head).
fn seed(name: &str, files: &[(&str, &str)]) -> (String, PathBuf, String) {
    let _ = argocd();
    let url = services().new_repo(name);
    let work = support::cp().dir().join(format!("seed-{name}"));
    std::fs::create_dir_all(&work).expect("dir");
    git(&work, &["init", "-q", "-b", "gitops"]);
    write_files(&work, files);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "init"]);
    git(&work, &["push", "-q", &encoded_auth_url(&url), "gitops"]);
    let s = services();
    apply(&repository_secret_yaml(
        &format!("repo-{name}"),
        &url,
        s.var("HAUL_TEST_GIT_USER"),
        s.var("HAUL_TEST_GIT_PASSWORD"),
    ));
    let head = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    (url, work, head)
}

fn write_files(work: &std::path::Path, files: &[(&str, &str)]) {
    for (path, body) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(p, body).expect("write");
    }
}

/// Commits `files` in `work` and pushes; returns the new commit.
fn push(work: &std::path::Path, url: &str, files: &[(&str, &str)], message: &str) -> String {
    write_files(work, files);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["push", "-q", &encoded_auth_url(url), "gitops"]);
    git(work, &["rev-parse", "HEAD"]).trim().to_string()
}

fn configmap(name: &str, msg: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  msg: {msg}\n")
}

/// A kustomize overlay (what kustomize-set-image edits) holding `resources`.
fn kustomization(resources: &[&str]) -> String {
    format!(
        "resources:\n{}images:\n  - name: my-app\n    newTag: \"1\"\n",
        resources
            .iter()
            .map(|r| format!("  - {r}\n"))
            .collect::<String>()
    )
}

/// An Application `name` in `ns`, deploying into `ns` through the in-cluster destination, as
/// one writes it for a real cluster. `sources` is the `source:` or `sources:` block.
fn application_yaml(ns: &str, name: &str, authorized: Option<&str>, sources: &str) -> String {
    let annotations = authorized
        .map(|a| format!("  annotations:\n    kargo.akuity.io/authorized-stage: \"{a}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}spec:\n  project: default\n{sources}  destination: {{server: https://kubernetes.default.svc, namespace: {ns}}}\n"
    )
}

fn single_source(url: &str, path: &str) -> String {
    format!("  source: {{repoURL: \"{url}\", targetRevision: gitops, path: {path}}}\n")
}

/// Waits until Argo CD has compared the Application once (it fetched and rendered the repo).
fn reconciled_once(ns: &str, name: &str) -> Value {
    wait_argo(&format!("Argo CD to reconcile {ns}/{name}"), || {
        let app = get_json("application", name, ns)?;
        let synced = app["status"]["sync"]["status"].as_str()?;
        (synced != "Unknown" && app["status"]["reconciledAt"].is_string()).then_some(app)
    })
}

fn configmap_msg(ns: &str, name: &str) -> Option<String> {
    get_json("configmap", name, ns)?["data"]["msg"]
        .as_str()
        .map(str::to_string)
}

async fn client() -> kube::Client {
    support::cp().client().await.expect("client")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let _ = argocd();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Runs the step until it is no longer Running (Argo CD finished the sync), bounded.
async fn run_until_done(
    client: &kube::Client,
    ns: &str,
    promotion: &str,
    cfg: &UpdateConfig,
) -> argocd::StepOutcome {
    let deadline = Instant::now() + Duration::from_secs(ARGO_WAIT);
    loop {
        let out = argocd::run(client, ns, "my-app", "dev", promotion, Some("alice"), cfg)
            .await
            .expect("argocd-update runs");
        if out.status != StepStatus::Running {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "argocd-update still Running after {ARGO_WAIT}s: {}\n{}",
            out.message,
            argocd().log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Checks the recorded health until it is no longer Unknown; returns every state seen.
async fn health_until_settled(
    client: &kube::Client,
    ns: &str,
    record: &Value,
) -> Vec<(HealthState, String)> {
    let deadline = Instant::now() + Duration::from_secs(ARGO_WAIT);
    let mut seen = Vec::new();
    loop {
        let results = argocd::check(client, ns, record).await.expect("check");
        let h = argocd::aggregate(results.into_iter().map(|(_, h)| h).collect());
        seen.push((h.state, h.message.clone()));
        if h.state != HealthState::Unknown {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "health still Unknown after {ARGO_WAIT}s: {seen:?}\n{}",
            argocd().log_tails()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn update_syncs_exactly_the_desired_commit_not_the_branch_head() {
    let ns = namespace("acd-exact");
    let (url, work, _) = seed(
        &ns,
        &[
            ("apps/dev/kustomization.yaml", &kustomization(&["cm.yaml"])),
            ("apps/dev/cm.yaml", &configmap("greeting", "v1")),
        ],
    );
    let v2 = push(
        &work,
        &url,
        &[("apps/dev/cm.yaml", &configmap("greeting", "v2"))],
        "v2",
    );
    // The branch moves on past the commit the Promotion made.
    let v3 = push(
        &work,
        &url,
        &[("apps/dev/cm.yaml", &configmap("greeting", "v3"))],
        "v3",
    );
    apply(&application_yaml(
        &ns,
        "web",
        Some("my-app:dev"),
        &single_source(&url, "apps/dev"),
    ));
    let app = reconciled_once(&ns, "web");
    assert_eq!(app["status"]["sync"]["status"], "OutOfSync", "{app:#}");
    assert!(
        configmap_msg(&ns, "greeting").is_none(),
        "nothing synced yet"
    );

    block_on(async {
        let client = client().await;
        let cfg = UpdateConfig::from_value(&json!({"apps": [{"name": "web", "namespace": ns,
            "sources": [{"repoURL": url, "desiredRevision": v2}]}]}))
        .expect("config");
        let out = run_until_done(&client, &ns, "p1", &cfg).await;
        assert_eq!(out.status, StepStatus::Succeeded, "{}", out.message);

        // Argo CD applied v2, not the branch head v3.
        assert_eq!(configmap_msg(&ns, "greeting").as_deref(), Some("v2"));
        let app = get_json("application", "web", &ns).expect("app");
        let op = &app["status"]["operationState"];
        assert_eq!(op["phase"], "Succeeded", "{op:#}");
        assert_eq!(op["syncResult"]["revision"], v2.as_str(), "{op:#}");
        assert_eq!(op["operation"]["initiatedBy"]["username"], "alice");
        assert_eq!(
            app["spec"]["source"]["targetRevision"], "gitops",
            "without updateTargetRevision the source is unchanged"
        );
        assert!(
            op["operation"]["info"].as_array().is_some_and(
                |i| i.contains(&json!({"name": "kargo.akuity.io/promotion", "value": "p1"}))
            ),
            "{op:#}"
        );

        // Health: Unknown while Argo CD has not reconciled since the sync, then Healthy
        // (ConfigMaps have no health of their own), and never Unhealthy on the way.
        let seen = health_until_settled(&client, &ns, &out.health_check()).await;
        let (last, message) = seen.last().cloned().expect("one check");
        assert_eq!(last, HealthState::Healthy, "{seen:?}");
        assert!(message.contains(&format!("{ns}/web")), "{message}");
        let app = get_json("application", "web", &ns).expect("app");
        assert!(
            app["status"]["reconciledAt"].as_str()
                >= app["status"]["operationState"]["finishedAt"].as_str(),
            "Healthy only once Argo CD reconciled after the sync: {:#}",
            app["status"]
        );
        // The comparison is against the branch (v3), so Argo CD itself reports OutOfSync: the
        // Stage's health judges the synced revision, not the sync status.
        assert_eq!(app["status"]["sync"]["revision"], v3.as_str());
        assert_eq!(app["status"]["sync"]["status"], "OutOfSync");

        // Running the step again for the same Promotion finds its sync done: no new sync
        // (Argo CD would add an entry to `status.history` for it).
        let history = |app: &Value| app["status"]["history"].as_array().map_or(0, Vec::len);
        let before = history(&app);
        assert_eq!(before, 1, "{:#}", app["status"]["history"]);
        let out = argocd::run(&client, &ns, "my-app", "dev", "p1", None, &cfg)
            .await
            .expect("run again");
        assert_eq!(out.status, StepStatus::Succeeded, "{}", out.message);
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let app = get_json("application", "web", &ns).expect("app");
            assert!(app.get("operation").is_none_or(Value::is_null), "{app:#}");
            assert_eq!(history(&app), before, "a second sync ran");
        }

        // The next Promotion replaces Argo CD's finished operation with its own sync.
        let cfg = UpdateConfig::from_value(&json!({"apps": [{"name": "web", "namespace": ns,
            "sources": [{"repoURL": url, "desiredRevision": v3}]}]}))
        .expect("config");
        let out = run_until_done(&client, &ns, "p2", &cfg).await;
        assert_eq!(out.status, StepStatus::Succeeded, "{}", out.message);
        assert_eq!(configmap_msg(&ns, "greeting").as_deref(), Some("v3"));
        let app = get_json("application", "web", &ns).expect("app");
        assert_eq!(
            app["status"]["operationState"]["syncResult"]["revision"],
            v3.as_str()
        );
        let seen = health_until_settled(&client, &ns, &out.health_check()).await;
        assert_eq!(
            seen.last().map(|s| s.0),
            Some(HealthState::Healthy),
            "{seen:?}"
        );
    });
}

#[test]
fn multi_source_applications_sync_every_source_to_its_commit() {
    let ns = namespace("acd-multi");
    let (url_a, work_a, _) = seed(
        &format!("{ns}-a"),
        &[("one/cm.yaml", &configmap("from-a", "a1"))],
    );
    let (url_b, work_b, _) = seed(
        &format!("{ns}-b"),
        &[("two/cm.yaml", &configmap("from-b", "b1"))],
    );
    let a2 = push(
        &work_a,
        &url_a,
        &[("one/cm.yaml", &configmap("from-a", "a2"))],
        "a2",
    );
    let b2 = push(
        &work_b,
        &url_b,
        &[("two/cm.yaml", &configmap("from-b", "b2"))],
        "b2",
    );
    let sources = format!(
        "  sources:\n  - {{repoURL: \"{url_a}\", targetRevision: gitops, path: one}}\n  - {{repoURL: \"{url_b}\", targetRevision: gitops, path: two}}\n"
    );
    apply(&application_yaml(
        &ns,
        "multi",
        Some("my-app:dev"),
        &sources,
    ));
    reconciled_once(&ns, "multi");

    block_on(async {
        let client = client().await;
        let cfg = UpdateConfig::from_value(&json!({"apps": [{"name": "multi", "namespace": ns,
        "sources": [
            {"repoURL": url_a, "desiredRevision": a2, "updateTargetRevision": true},
            {"repoURL": url_b, "desiredRevision": b2, "updateTargetRevision": true}
        ]}]}))
        .expect("config");
        let out = run_until_done(&client, &ns, "p1", &cfg).await;
        assert_eq!(out.status, StepStatus::Succeeded, "{}", out.message);
        let app = get_json("application", "multi", &ns).expect("app");
        assert_eq!(app["spec"]["sources"][0]["targetRevision"], a2.as_str());
        assert_eq!(app["spec"]["sources"][1]["targetRevision"], b2.as_str());
        assert_eq!(
            app["status"]["operationState"]["syncResult"]["revisions"],
            json!([a2, b2]),
            "{:#}",
            app["status"]["operationState"]
        );
        assert_eq!(configmap_msg(&ns, "from-a").as_deref(), Some("a2"));
        assert_eq!(configmap_msg(&ns, "from-b").as_deref(), Some("b2"));
        let seen = health_until_settled(&client, &ns, &out.health_check()).await;
        assert_eq!(
            seen.last().map(|s| s.0),
            Some(HealthState::Healthy),
            "{seen:?}"
        );
    });
}

#[test]
fn an_application_that_does_not_authorize_the_stage_is_never_synced() {
    let ns = namespace("acd-unauth");
    let (url, _, head) = seed(&ns, &[("apps/dev/cm.yaml", &configmap("greeting", "v1"))]);
    apply(&application_yaml(
        &ns,
        "other",
        Some("my-app:prod"),
        &single_source(&url, "apps/dev"),
    ));
    apply(&application_yaml(
        &ns,
        "none",
        None,
        &single_source(&url, "apps/dev"),
    ));
    reconciled_once(&ns, "other");
    reconciled_once(&ns, "none");
    block_on(async {
        let client = client().await;
        for app in ["other", "none"] {
            let cfg = UpdateConfig::from_value(&json!({"apps": [{"name": app, "namespace": ns,
                "sources": [{"repoURL": url, "desiredRevision": head}]}]}))
            .expect("config");
            let err = argocd::run(&client, &ns, "my-app", "dev", "p1", None, &cfg)
                .await
                .expect_err("unauthorized");
            assert!(matches!(err, Error::Unauthorized(_)), "{err}");
            assert!(err.to_string().contains("my-app:dev"), "{err}");
        }
    });
    // Argo CD reconciles them again (a hard refresh) and still has nothing to sync.
    for app in ["other", "none"] {
        kubectl(&[
            "annotate",
            "application",
            app,
            "-n",
            &ns,
            "--overwrite",
            "argocd.argoproj.io/refresh=hard",
        ])
        .success("refresh");
    }
    wait_argo("Argo CD to finish the refreshes", || {
        ["other", "none"]
            .iter()
            .all(|a| {
                get_json("application", a, &ns).is_some_and(|app| {
                    app["metadata"]["annotations"]["argocd.argoproj.io/refresh"].is_null()
                })
            })
            .then_some(())
    });
    for app in ["other", "none"] {
        let app = get_json("application", app, &ns).expect("app");
        assert!(app["status"]["operationState"].is_null(), "{app:#}");
        assert!(app.get("operation").is_none_or(Value::is_null), "{app:#}");
    }
    assert!(configmap_msg(&ns, "greeting").is_none());
}

// ---------------------------------------------------------------------------------------------
// The Stage, end to end: haul's controller promotes (git-clone … git-push, argocd-update) and
// Argo CD syncs the commit it pushed.

/// Warehouse `w`, git credentials, Freight f7, Stage dev and its Application `app-dev` over a
/// new repository whose overlay `apps/svc/env/dev` holds `files`. Promotes f7 with p1.
/// Returns the repository's URL and bare path.
fn promote_through_argocd(ns: &str, files: &[(&str, &str)]) -> (String, PathBuf) {
    let _ = controller();
    let (url, _, _) = seed(ns, files);
    let template = GitopsTemplate {
        repo_url: &url,
        overlay: "apps/svc/env/dev",
        image: ECR,
        image_name: "my-app",
        argocd_app: Some((ns, "app-dev")),
    }
    .yaml();
    let stage = Stage {
        ns,
        name: "dev",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    let warehouse = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: w, namespace: {ns}}}\nspec:\n  interval: 1h\n  freightCreationPolicy: Manual\n  subscriptions:\n  - image: {{repoURL: localhost:1/nothing}}\n"
    );
    let freight = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{name: f7, namespace: {ns}}}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: {ECR}, tag: \"f7\", digest: \"sha256:f7\"}}\n"
    );
    apply(&format!(
        "{warehouse}---\n{}---\n{freight}---\n{stage}---\n{}",
        git_credentials_secret(ns, "git", &url),
        application_yaml(
            ns,
            "app-dev",
            Some(&format!("{ns}:dev")),
            &single_source(&url, "apps/svc/env/dev")
        ),
    ));
    reconciled_once(ns, "app-dev");
    apply(&promotion_yaml(ns, "p1", "dev", "f7"));
    let bare = services().bare_path(&url);
    (url, bare)
}

fn stage_condition(ns: &str, type_: &str) -> Option<Value> {
    let s = get_json("stage", "dev", ns)?;
    s["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

fn promotion_phase(ns: &str, name: &str) -> Option<(String, String)> {
    let p = get_json("promotion", name, ns)?;
    let phase = p["status"]["phase"].as_str()?.to_string();
    Some((
        phase,
        p["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

fn verified_in_dev(ns: &str) -> bool {
    get_json("freight", "f7", ns).is_some_and(|f| f["status"]["verifiedIn"]["dev"].is_object())
}

#[test]
fn configmaps_sync_healthy_and_the_freight_is_verified() {
    let ns = namespace("acd-stage-ok");
    let (url, bare) = promote_through_argocd(
        &ns,
        &[
            (
                "apps/svc/env/dev/kustomization.yaml",
                &kustomization(&["cm.yaml"]),
            ),
            ("apps/svc/env/dev/cm.yaml", &configmap("greeting", "hello")),
        ],
    );
    let (phase, message) = wait_argo("p1 to finish", || {
        promotion_phase(&ns, "p1").filter(|(p, _)| p != "Running" && p != "Pending")
    });
    assert_eq!(phase, "Succeeded", "{message}");
    let pushed = git(&bare, &["rev-parse", "gitops"]).trim().to_string();
    let app = get_json("application", "app-dev", &ns).expect("app");
    assert_eq!(
        app["status"]["operationState"]["syncResult"]["revision"],
        pushed.as_str(),
        "Argo CD synced the commit the Promotion pushed"
    );
    assert_eq!(configmap_msg(&ns, "greeting").as_deref(), Some("hello"));
    wait_argo("f7 verified in dev", || verified_in_dev(&ns).then_some(()));
    let healthy = stage_condition(&ns, "Healthy").expect("Healthy");
    assert_eq!(healthy["status"], "True", "{healthy:#}");
    let app = get_json("application", "app-dev", &ns).expect("app");
    assert!(
        app["status"]["reconciledAt"].as_str()
            >= app["status"]["operationState"]["finishedAt"].as_str(),
        "{:#}",
        app["status"]
    );

    // The branch then gets an overlay Argo CD cannot render: Argo CD reports a
    // ComparisonError and the Stage follows it to Unhealthy, with Argo CD's message.
    let work = support::cp().dir().join(format!("seed-{ns}"));
    git(
        &work,
        &["pull", "-q", "--rebase", &encoded_auth_url(&url), "gitops"],
    );
    push(
        &work,
        &url,
        &[(
            "apps/svc/env/dev/kustomization.yaml",
            &kustomization(&["cm.yaml", "missing.yaml"]),
        )],
        "reference a file that does not exist",
    );
    kubectl(&[
        "annotate",
        "application",
        "app-dev",
        "-n",
        &ns,
        "--overwrite",
        "argocd.argoproj.io/refresh=normal",
    ])
    .success("refresh");
    let stage = wait_argo("Stage dev Unhealthy from Argo CD's ComparisonError", || {
        let s = get_json("stage", "dev", &ns)?;
        (s["status"]["health"]["status"] == "Unhealthy").then_some(s)
    });
    let issues = stage["status"]["health"]["issues"].to_string();
    assert!(
        issues.contains("ComparisonError") && issues.contains("missing.yaml"),
        "{issues}"
    );
}

#[test]
fn a_progressing_deployment_holds_verification() {
    let ns = namespace("acd-stage-prog");
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: app, image: my-app}\n";
    promote_through_argocd(
        &ns,
        &[
            (
                "apps/svc/env/dev/kustomization.yaml",
                &kustomization(&["cm.yaml", "deploy.yaml"]),
            ),
            ("apps/svc/env/dev/cm.yaml", &configmap("greeting", "hello")),
            ("apps/svc/env/dev/deploy.yaml", deployment),
        ],
    );
    let (phase, message) = wait_argo("p1 to finish", || {
        promotion_phase(&ns, "p1").filter(|(p, _)| p != "Running" && p != "Pending")
    });
    assert_eq!(phase, "Succeeded", "{message}");
    // The image kustomize-set-image wrote reached the cluster through Argo CD.
    let d = get_json("deployment", "web", &ns).expect("deployment synced");
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        image, "my-app:f7",
        "the Freight's tag, set by kustomize-set-image"
    );
    let healthy = wait_argo("Stage dev health Progressing", || {
        let s = get_json("stage", "dev", &ns)?;
        (s["status"]["health"]["status"] == "Progressing").then_some(s)
    });
    let app = get_json("application", "app-dev", &ns).expect("app");
    assert_eq!(
        app["status"]["health"]["status"], "Progressing",
        "{:#}",
        app["status"]
    );
    // Verification waits for as long as Argo CD reports Progressing.
    for _ in 0..10 {
        assert!(
            !verified_in_dev(&ns),
            "f7 verified while Progressing: {healthy:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let cond = stage_condition(&ns, "Healthy").expect("Healthy");
    assert_ne!(cond["status"], "True", "{cond:#}");
}

/// A sync Argo CD cannot complete fails the Promotion with Argo CD's message. As in Kargo
/// (`assessHealth`: health checks only run after a successful Promotion), the Stage's health is
/// then Unknown (`LastPromotionErrored`), its Ready condition carries that message, and the
/// Freight is not verified.
#[test]
fn a_failed_sync_fails_the_promotion_with_argo_cds_message_and_nothing_is_verified() {
    let ns = namespace("acd-stage-fail");
    // A ConfigMap whose name the API server refuses: Argo CD renders it but cannot apply it.
    let invalid =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\ndata: {msg: x}\n";
    promote_through_argocd(
        &ns,
        &[
            (
                "apps/svc/env/dev/kustomization.yaml",
                &kustomization(&["cm.yaml", "bad.yaml"]),
            ),
            ("apps/svc/env/dev/cm.yaml", &configmap("greeting", "hello")),
            ("apps/svc/env/dev/bad.yaml", invalid),
        ],
    );
    let (phase, message) = wait_argo("p1 to finish", || {
        promotion_phase(&ns, "p1").filter(|(p, _)| p != "Running" && p != "Pending")
    });
    let app = get_json("application", "app-dev", &ns).expect("app");
    let argo_message = app["status"]["operationState"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        app["status"]["operationState"]["phase"], "Failed",
        "{:#}",
        app["status"]
    );
    assert!(argo_message.contains("Not_A_Valid_Name"), "{argo_message}");
    assert_eq!(phase, "Errored", "{message}");
    assert!(
        message.contains(&argo_message) && message.contains(&format!("{ns}/app-dev")),
        "the Promotion carries Argo CD's message {argo_message:?}: {message}"
    );
    // As Kargo: health Unknown because the last Promotion did not succeed (reason
    // `LastPromotionErrored`); the Ready condition carries the Promotion's message, Argo CD's.
    let stage = wait_argo("Stage dev to report the failure", || {
        let s = get_json("stage", "dev", &ns)?;
        s["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "False"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&argo_message))
            })
            .then_some(s)
    });
    assert_eq!(stage["status"]["health"]["status"], "Unknown", "{stage:#}");
    let healthy = stage["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Healthy"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(healthy["status"], "Unknown", "{stage:#}");
    assert_eq!(healthy["reason"], "LastPromotionErrored", "{stage:#}");
    assert!(
        stage["status"]["health"]["issues"][0]
            .as_str()
            .is_some_and(|i| i.contains("last Promotion did not succeed")),
        "{stage:#}"
    );
    for _ in 0..10 {
        assert!(!verified_in_dev(&ns), "f7 verified after a failed sync");
        std::thread::sleep(Duration::from_millis(500));
    }
}
