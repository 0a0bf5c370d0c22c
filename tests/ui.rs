//! `haul ui` in a real browser: headless Chromium driven over WebDriver (chromedriver), against
//! the real control plane, a real `haul controller` and `haul ui` processes, with the chart's
//! admission policies deciding who may promote where. The page must show the right Freight per
//! Stage, a promotion clicked in the page must reach Succeeded and show up without a reload,
//! a user without `promote` on prod must see the button disabled and have a forged request
//! refused by the API server. Behind a trusted proxy the UI impersonates the named user, and
//! without the proxy's secret it serves only an error.
//!
//! Screenshots of every view are written to target/ui-screenshots/, and to docs/ui/ when
//! HAUL_UI_SCREENSHOTS=1 (how the committed ones are made).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};
use support::browser::{
    Proc, alias_in, browser, click, page_id, promotions_of, runtime, screenshot, spawn, wait_js,
};
use support::helm::render;
use support::{
    ControllerProcess, cp, free_port, get_json, kubectl, kubectl_as, kubectl_stdin, wait_for,
};

/// Clicks Promote on `stage`'s card and `freight` in the dialog, as the admin; the new
/// Promotion, once it Succeeded.
async fn promote_in_page(c: &fantoccini::Client, ns: &str, stage: &str, freight: &str) -> String {
    support::browser::promote_in_page(c, cp().kubeconfig(), ns, stage, freight, 120).await
}

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

fn apply(objects: Vec<Value>, what: &str) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success(what);
}

/// `haul ui` as the user of `kubeconfig`, on a free loopback port; returns it and its URL.
fn haul_ui(kubeconfig: &Path, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let log = cp().dir().join(format!("haul-ui-{port}.log"));
    // HAUL_UI_BIN: another build of haul to serve (the benchmark measures a release build).
    let bin = std::env::var_os("HAUL_UI_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_haul").into());
    let p = spawn(
        Command::new(bin)
            .args(["ui", "--address", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,haul::ui=debug"),
        &log,
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_for(60, "haul ui to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (p, url)
}

/// Once per binary: the chart's admission policies and user ClusterRoles, in force, and a
/// controller.
fn setup() {
    static SETUP: OnceLock<ControllerProcess> = OnceLock::new();
    SETUP.get_or_init(|| {
        let docs = render("haul", &[]);
        let wanted: Vec<Value> = docs
            .iter()
            .filter(|d| {
                matches!(
                    d["kind"].as_str(),
                    Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding")
                ) || (d["kind"] == "ClusterRole"
                    && matches!(
                        d["metadata"]["name"].as_str(),
                        Some("haul-viewer" | "haul-promoter")
                    ))
            })
            .cloned()
            .collect();
        apply(wanted, "the chart's admission policies and user roles");
        ControllerProcess::start(&cp().dir().join("ui-controller-work"))
    });
}

/// A fresh Project (the controller creates its namespace) with Warehouse `my-app`, Stages
/// dev ← Warehouse, uat ← dev, prod ← uat (each promoting with one `compose-output` step),
/// Freight `f1` (alias `first-freight`) and `f2` (alias `second-freight`), and the team:
/// developers may promote to dev and uat, everyone in the project reads.
fn project(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let ns = format!("{prefix}-{nanos:x}");
    apply(
        vec![
            json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project",
                    "metadata": {"name": ns}}),
        ],
        "the Project",
    );
    wait_for(60, "the project's namespace", || {
        kubectl(&["get", "namespace", &ns]).ok.then_some(())
    });
    let stage = |name: &str, sources: Value| {
        json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "my-app"}, "sources": sources}],
                "promotionTemplate": {"spec": {"steps": [
                    {"uses": "compose-output", "as": "note", "config": {"stage": name}}
                ]}}
            }
        })
    };
    let freight = |name: &str, alias: &str, tag: &str| {
        json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": name, "namespace": ns, "labels": {"kargo.akuity.io/alias": alias}},
            "alias": alias,
            "origin": {"kind": "Warehouse", "name": "my-app"},
            "images": [{"repoURL": ECR, "tag": tag, "digest": format!("sha256:{tag:0>8}")}]
        })
    };
    let promoter = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "dev-uat-promoter", "namespace": ns},
        "rules": [
            {"apiGroups": ["kargo.akuity.io"], "resources": ["stages"],
             "resourceNames": ["dev", "uat"], "verbs": ["promote"]},
            {"apiGroups": ["kargo.akuity.io"], "resources": ["promotions"], "verbs": ["create"]},
            {"apiGroups": ["kargo.akuity.io"], "resources": ["freights/status"], "verbs": ["patch"]},
        ]
    });
    let bind = |name: &str, kind: &str, role: &str| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}],
        })
    };
    apply(
        vec![
            json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
                "metadata": {"name": "my-app", "namespace": ns},
                "spec": {"interval": "1h", "freightCreationPolicy": "Manual",
                         "subscriptions": [{"image": {"repoURL": ECR}}]}
            }),
            stage("dev", json!({"direct": true})),
            stage("uat", json!({"stages": ["dev"]})),
            stage("prod", json!({"stages": ["uat"]})),
            freight("f1", "first-freight", "1.0.0"),
            promoter,
            bind("developers-promote", "Role", "dev-uat-promoter"),
            bind("developers-read", "ClusterRole", "haul-viewer"),
        ],
        "the pipeline",
    );
    // Created a moment later, so it is the newer Freight.
    std::thread::sleep(Duration::from_millis(1100));
    apply(vec![freight("f2", "second-freight", "2.0.0")], "Freight f2");
    ns
}

/// Waits until the admission policy refuses `kubeconfig`'s user a prod Promotion (policy
/// changes reach the API server's admission asynchronously).
fn policy_in_force(kubeconfig: &Path, ns: &str) {
    wait_for(60, "the promote policy to be in force", || {
        let p = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"generateName": "probe-", "namespace": ns},
            "spec": {"stage": "prod", "freight": "f1"}});
        let out = kubectl_as(kubeconfig, &["create", "-f", "-"], Some(&p.to_string()));
        out.stderr.contains("may not promote").then_some(())
    });
}

#[test]
fn pipeline_in_the_browser() {
    // The control plane starts on a runtime of its own: first, outside this test's.
    cp();
    runtime().block_on(pipeline_in_the_browser_in_browser_runtime());
}

async fn pipeline_in_the_browser_in_browser_runtime() {
    setup();
    let ns = project("ui");
    let (_ui, url) = haul_ui(cp().kubeconfig(), &[]);
    let (_driver, c) = browser(cp().dir()).await;
    let run = async {
        // The projects list shows the project.
        c.goto(&format!("{url}/")).await.expect("open /");
        wait_js(
            &c,
            60,
            "the project on the projects page",
            &format!("return !!document.querySelector('[data-project=\"{ns}\"]');"),
        )
        .await;
        screenshot(&c, "projects").await;

        // The pipeline graph, live: nothing promoted yet.
        c.goto(&format!("{url}/p/{ns}"))
            .await
            .expect("open the project");
        wait_js(
            &c,
            60,
            "the graph's Stages",
            "return document.querySelectorAll('.card.stage').length === 3 && !!document.querySelector('[data-warehouse=\"my-app\"]');",
        )
        .await;
        let page_id = page_id(&c).await;
        // Permissions arrive after the first snapshot; the admin may promote everywhere.
        wait_js(
            &c,
            30,
            "prod's enabled Promote button",
            "return !!document.querySelector('[data-stage=\"prod\"] button.promote:not([disabled])');",
        )
        .await;

        // f1 → dev in the page, f1 → uat in the page; the cards update without a reload.
        let p1 = promote_in_page(&c, &ns, "dev", "f1").await;
        wait_js(
            &c,
            60,
            "dev to show first-freight",
            &format!(
                "return (function(){{{}}})() === 'first-freight';",
                alias_in("dev")
            ),
        )
        .await;
        wait_for(60, "f1 verified in dev", || {
            get_json("freight", "f1", &ns)?["status"]["verifiedIn"]
                .get("dev")
                .map(|_| ())
        });
        // Not available to prod yet: the dialog says why, as `haul promote` does.
        click(&c, "[data-stage=\"prod\"] button.promote").await;
        let reason = wait_js(
            &c,
            30,
            "prod's dialog to say why f1 is unavailable",
            "const e = document.querySelector('li[data-freight=\"f1\"] .reason'); return e ? e.textContent : null;",
        )
        .await;
        assert!(
            reason.as_str().unwrap_or_default().contains("uat"),
            "the reason names the upstream Stage: {reason}"
        );
        screenshot(&c, "promote-dialog").await;
        click(&c, "#dialog button[data-action=\"close\"]").await;

        promote_in_page(&c, &ns, "uat", "f1").await;
        // f2 → dev from the command line: the page follows.
        let out = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args([
                "promote",
                "-n",
                &ns,
                "--stage",
                "dev",
                "--freight",
                "f2",
                "--wait",
            ])
            .env("KUBECONFIG", cp().kubeconfig())
            .output()
            .expect("haul promote");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (stage, alias) in [("dev", "second-freight"), ("uat", "first-freight")] {
            wait_js(
                &c,
                60,
                &format!("{stage} to show {alias}"),
                &format!(
                    "return (function(){{{}}})() === '{alias}';",
                    alias_in(stage)
                ),
            )
            .await;
        }
        let prod = c
            .execute(&alias_in("prod"), vec![])
            .await
            .expect("prod's alias");
        assert_eq!(prod, Value::Null, "prod has no Freight yet");
        assert_eq!(
            support::browser::page_id(&c).await,
            page_id,
            "the page updated without reloading"
        );
        screenshot(&c, "pipeline").await;

        // Promotion detail: steps with their status.
        c.goto(&format!("{url}/p/{ns}/promotions/{p1}"))
            .await
            .expect("promotion page");
        wait_js(
            &c,
            60,
            "the Promotion's succeeded step",
            "const r = document.querySelector('tr[data-step=\"note\"]'); return r && r.textContent.includes('Succeeded');",
        )
        .await;
        screenshot(&c, "promotion").await;

        // Stage detail: conditions in words and history.
        c.goto(&format!("{url}/p/{ns}/stages/dev"))
            .await
            .expect("stage page");
        wait_js(
            &c,
            60,
            "dev's history of two Freight",
            "return document.querySelectorAll('table.history tbody tr').length === 2;",
        )
        .await;
        screenshot(&c, "stage").await;

        // Freight timeline with a filter kept in the URL.
        c.goto(&format!("{url}/p/{ns}/freight?stage=uat"))
            .await
            .expect("freight page");
        let shown = wait_js(
            &c,
            60,
            "the filtered Freight timeline",
            "const l = [...document.querySelectorAll('[data-freight]')].map(e => e.dataset.freight); return l.length ? l.join(',') : null;",
        )
        .await;
        assert_eq!(shown, json!("f1"), "only the Freight in uat");
        c.goto(&format!("{url}/p/{ns}/freight"))
            .await
            .expect("freight page");
        let shown = wait_js(
            &c,
            60,
            "the Freight timeline",
            "const l = [...document.querySelectorAll('[data-freight]')].map(e => e.dataset.freight); return l.length === 2 ? l.join(',') : null;",
        )
        .await;
        assert_eq!(shown, json!("f2,f1"), "newest first");
        screenshot(&c, "freight").await;
    };
    run.await;
    let _ = c.close().await;
}

#[test]
fn a_developer_cannot_promote_to_prod_through_the_ui() {
    // The control plane starts on a runtime of its own: first, outside this test's.
    cp();
    runtime().block_on(a_developer_cannot_promote_to_prod_through_the_ui_in_browser_runtime());
}

async fn a_developer_cannot_promote_to_prod_through_the_ui_in_browser_runtime() {
    setup();
    let ns = project("ui-rbac");
    let dev = cp()
        .user_kubeconfig("dana", Some("developers"))
        .expect("dana's kubeconfig");
    // f1 through dev and uat by the admin, so only RBAC stands between dana and prod.
    for stage in ["dev", "uat"] {
        let out = Command::new(env!("CARGO_BIN_EXE_haul"))
            .args([
                "promote",
                "-n",
                &ns,
                "--stage",
                stage,
                "--freight",
                "f1",
                "--wait",
            ])
            .env("KUBECONFIG", cp().kubeconfig())
            .output()
            .expect("haul promote");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(60, "f1 verified", || {
            get_json("freight", "f1", &ns)?["status"]["verifiedIn"]
                .get(stage)
                .map(|_| ())
        });
    }
    policy_in_force(&dev, &ns);
    let (_ui, url) = haul_ui(&dev, &[]);
    let (_driver, c) = browser(cp().dir()).await;
    c.goto(&format!("{url}/p/{ns}")).await.expect("open");
    let reason = wait_js(
        &c,
        60,
        "prod's Promote button disabled with a reason",
        "const b = document.querySelector('[data-stage=\"prod\"] button.promote[disabled]'); return b && b.dataset.reason.includes('you lack') ? b.dataset.reason : null;",
    )
    .await;
    assert!(
        reason.as_str().unwrap_or_default().contains("promote"),
        "the reason names the verb: {reason}"
    );
    wait_js(
        &c,
        30,
        "uat's Promote button enabled",
        "return !!document.querySelector('[data-stage=\"uat\"] button.promote:not([disabled])');",
    )
    .await;
    screenshot(&c, "pipeline-restricted").await;
    // A forged request from the page's origin: the API server refuses it.
    let answer = c
        .execute_async(
            &format!(
                "const done = arguments[0]; fetch('/api/projects/{ns}/promote', {{method: 'POST', headers: {{'content-type': 'application/json', 'x-haul-ui': '1'}}, body: JSON.stringify({{stage: 'prod', freight: 'f1'}})}}).then(r => r.json().then(j => done([r.status, j.error])));"
            ),
            vec![],
        )
        .await
        .expect("forged request");
    assert_eq!(answer[0], json!(403), "{answer}");
    assert!(
        answer[1]
            .as_str()
            .unwrap_or_default()
            .contains("may not promote to Stage prod"),
        "refused by the admission policy: {answer}"
    );
    assert!(
        promotions_of(cp().kubeconfig(), &ns, "prod")
            .iter()
            .all(|p| p.starts_with("probe-")),
        "no Promotion for prod was created through the UI"
    );

    // Her right to promote is revoked while the page is open: the next refused click disables
    // the button, without a reload.
    let before = page_id(&c).await;
    kubectl(&["delete", "rolebinding", "developers-promote", "-n", &ns]).success("revoke promote");
    wait_for(60, "the revocation in force", || {
        let out = kubectl_as(
            &dev,
            &["auth", "can-i", "create", "promotions", "-n", &ns],
            None,
        );
        (out.stdout.trim() == "no").then_some(())
    });
    click(&c, "[data-stage=\"uat\"] button.promote").await;
    let confirm = "li[data-freight=\"f1\"] button.confirm-promote:not([disabled])";
    wait_js(
        &c,
        60,
        "the dialog's (stale) Promote button",
        &format!("return !!document.querySelector('{confirm}');"),
    )
    .await;
    click(&c, confirm).await;
    wait_js(
        &c,
        60,
        "uat's Promote button disabled after the refusal",
        "const b = document.querySelector('[data-stage=\"uat\"] button.promote[disabled]'); return b && b.dataset.reason.includes('you lack');",
    )
    .await;
    assert_eq!(page_id(&c).await, before, "no reload");
    let _ = c.close().await;
}

/// In-cluster mode: behind an authenticating proxy the UI acts as the user the proxy names (by
/// impersonation), only when the proxy proves itself with the shared secret.
#[test]
fn behind_a_proxy_the_ui_impersonates_and_trusts_only_the_proxy() {
    // The control plane starts on a runtime of its own: first, outside this test's.
    cp();
    runtime().block_on(
        behind_a_proxy_the_ui_impersonates_and_trusts_only_the_proxy_in_browser_runtime(),
    );
}

async fn behind_a_proxy_the_ui_impersonates_and_trusts_only_the_proxy_in_browser_runtime() {
    setup();
    let ns = project("ui-proxy");
    let secret = cp().dir().join("ui-proxy-secret");
    std::fs::write(&secret, "a-shared-secret-of-the-proxy\n").expect("secret");
    // The UI's own identity (here the admin) may impersonate.
    let (_ui, url) = haul_ui(
        cp().kubeconfig(),
        &["--proxy-secret-file", &secret.to_string_lossy()],
    );
    let http = reqwest::Client::new();
    let call = |path: &str, user: Option<&str>, secret: Option<&str>, body: Option<Value>| {
        let mut r = match &body {
            Some(b) => http
                .post(format!("{url}{path}"))
                .header("x-haul-ui", "1")
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => http.get(format!("{url}{path}")),
        };
        if let Some(u) = user {
            r = r
                .header("x-forwarded-user", u)
                .header("x-forwarded-groups", "developers");
        }
        if let Some(s) = secret {
            r = r.header("x-haul-proxy-secret", s);
        }
        async move {
            let res = r.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        }
    };
    let good = Some("a-shared-secret-of-the-proxy");
    // No secret, a wrong one: only an error, not even the page.
    for s in [None, Some("guess")] {
        let (status, text) = call("/", Some("admin"), s, None).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("authenticating proxy"), "{text}");
    }
    let (status, text) = call("/", Some("dana"), good, None).await;
    assert_eq!(status, 200, "{text}");
    // dana (developers) may promote to dev, as herself: the Promotion records her.
    let (status, text) = call(
        &format!("/api/projects/{ns}/promote"),
        Some("dana"),
        good,
        Some(json!({"stage": "dev", "freight": "f1"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let name = body["promotion"].as_str().expect("promotion name");
    let p = get_json("promotion", name, &ns).expect("the promotion");
    assert_eq!(
        p["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        json!("kubernetes:dana")
    );
    // A forged prod promotion by dana is refused by the API server (approve f1 so only RBAC
    // and the admission policy stand in the way).
    kubectl(&[
        "patch",
        "freight",
        "f1",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"approvedFor":{"prod":{}}}}"#,
    ])
    .success("approve f1 for prod");
    let dana = cp()
        .user_kubeconfig("dana", Some("developers"))
        .expect("dana's kubeconfig");
    policy_in_force(&dana, &ns);
    let (status, text) = call(
        &format!("/api/projects/{ns}/promote"),
        Some("dana"),
        good,
        Some(json!({"stage": "prod", "freight": "f1"})),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("may not promote to Stage prod"), "{text}");
}

/// The preview shows, before promoting, exactly the diff the Promotion then commits.
#[test]
fn the_preview_shows_the_diff_later_committed() {
    // The control plane starts on a runtime of its own: first, outside this test's.
    cp();
    runtime().block_on(the_preview_shows_the_diff_later_committed_in_browser_runtime());
}

async fn the_preview_shows_the_diff_later_committed_in_browser_runtime() {
    use support::fixtures::{GitopsTemplate, Stage, git_credentials_secret};
    setup();
    let ns = project("ui-preview");
    let (url, bare) = support::gitops::seed_dev_overlay(&ns);
    let template = GitopsTemplate {
        repo_url: &url,
        overlay: "apps/svc/env/dev",
        image: ECR,
        image_name: "my-app",
        argocd_app: None,
    }
    .yaml();
    let stage = Stage {
        ns: &ns,
        name: "gitops",
        warehouse: "my-app",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("{}---\n{stage}", git_credentials_secret(&ns, "git", &url)),
    )
    .success("the gitops Stage and its credentials");
    let before = support::git(&bare, &["rev-parse", "gitops"])
        .trim()
        .to_string();

    let (_ui, ui) = haul_ui(cp().kubeconfig(), &[]);
    let (_driver, c) = browser(cp().dir()).await;
    c.goto(&format!("{ui}/p/{ns}")).await.expect("open");
    wait_js(
        &c,
        60,
        "the gitops Stage's enabled Promote button",
        "return !!document.querySelector('[data-stage=\"gitops\"] button.promote:not([disabled])');",
    )
    .await;
    click(&c, "[data-stage=\"gitops\"] button.promote").await;
    let preview = "li[data-freight=\"f2\"] button.preview";
    wait_js(
        &c,
        30,
        "the Preview button",
        &format!("return !!document.querySelector('{preview}');"),
    )
    .await;
    click(&c, preview).await;
    let shown = wait_js(
        &c,
        120,
        "the preview's diff",
        "const e = document.querySelector('#preview pre.diff'); return e ? e.textContent : null;",
    )
    .await;
    let shown = shown.as_str().unwrap_or_default().to_string();
    assert!(shown.contains("+    newTag: \"2.0.0\""), "{shown}");
    let outcome = c
        .find(Locator::Css("#preview .outcome"))
        .await
        .expect("outcome")
        .text()
        .await
        .expect("text");
    assert!(outcome.contains("nothing was pushed"), "{outcome}");
    assert_eq!(
        support::git(&bare, &["rev-parse", "gitops"]).trim(),
        before,
        "the preview pushed nothing"
    );
    screenshot(&c, "preview").await;
    click(&c, "#dialog button[data-action=\"close\"]").await;

    promote_in_page(&c, &ns, "gitops", "f2").await;
    let after = support::git(&bare, &["rev-parse", "gitops"])
        .trim()
        .to_string();
    assert_ne!(after, before, "the Promotion pushed a commit");
    let committed = support::git(
        &bare,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            &before,
            &after,
        ],
    );
    assert_eq!(
        shown, committed,
        "the preview showed exactly the committed diff"
    );
    let _ = c.close().await;
}

/// Measures (prints, asserts nothing about speed) the first paint of a 150-Stage project —
/// from navigation start to the first rendered snapshot — and `haul ui`'s memory after it.
#[test]
fn a_150_stage_project_renders() {
    // The control plane starts on a runtime of its own: first, outside this test's.
    cp();
    runtime().block_on(a_150_stage_project_renders_in_browser_runtime());
}

async fn a_150_stage_project_renders_in_browser_runtime() {
    setup();
    let ns = project("ui-150");
    // 5 columns of 30 Stages, each taking Freight from one Stage of the column before.
    let mut stages = Vec::new();
    for col in 0..5 {
        for row in 0..30 {
            let sources = if col == 0 {
                json!({"direct": true})
            } else {
                json!({"stages": [format!("s{}-{row:02}", col - 1)]})
            };
            stages.push(json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
                "metadata": {"name": format!("s{col}-{row:02}"), "namespace": ns},
                "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "my-app"}, "sources": sources}]}
            }));
        }
    }
    apply(stages, "150 Stages");
    let (ui, url) = haul_ui(cp().kubeconfig(), &[]);
    let (_driver, c) = browser(cp().dir()).await;
    let mut paints = Vec::new();
    for _ in 0..3 {
        c.goto(&format!("{url}/p/{ns}")).await.expect("open");
        let ms = wait_js(
            &c,
            60,
            "153 Stages on the page",
            "return document.querySelectorAll('.card.stage').length === 153 && window.__haulFirstPaint;",
        )
        .await;
        paints.push(ms.as_f64().unwrap_or_default());
    }
    let phases = c
        .execute("return window.__haulTimes", vec![])
        .await
        .expect("times");
    eprintln!("page timings of the last load (ms since navigation start): {phases}");
    // The server's part alone: from opening the event stream to the first snapshot.
    let http = reqwest::Client::new();
    let mut server_ms = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut res = http
            .get(format!("{url}/api/projects/{ns}/events"))
            .send()
            .await
            .expect("events");
        let mut seen = String::new();
        while !seen.contains("event: snapshot") {
            match res.chunk().await.expect("chunk") {
                Some(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                None => break,
            }
        }
        server_ms.push(t0.elapsed().as_millis());
    }
    eprintln!("first snapshot from the server (ms, 3 connections): {server_ms:?}");
    let log = std::fs::read_to_string(&ui.1).unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.contains("project listed") || l.contains("first snapshot"))
    {
        eprintln!("haul ui: {line}");
    }
    screenshot(&c, "pipeline-150").await;
    let rss = std::fs::read_to_string(format!("/proc/{}/status", ui.0.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        .unwrap_or_default();
    // The first load starts the project's watches; the next ones find them warm.
    eprintln!(
        "first paint of a 153-Stage project (ms, 3 loads: cold, warm, warm): {paints:?}; haul ui RSS: {rss}"
    );
    // `haul ui -n <project>` (as the quickstart starts it) watches that project from the start,
    // so even the first page opened after it starts finds the project listed.
    let (pointed, pointed_url) = haul_ui(cp().kubeconfig(), &["-n", &ns]);
    c.goto(&format!("{pointed_url}/p/{ns}"))
        .await
        .expect("open");
    let first = wait_js(
        &c,
        60,
        "153 Stages on the page of `haul ui -n`",
        "return document.querySelectorAll('.card.stage').length === 153 && window.__haulFirstPaint;",
    )
    .await;
    let log = std::fs::read_to_string(&pointed.1).unwrap_or_default();
    assert!(
        log.contains("first snapshot"),
        "`haul ui -n {ns}` built no snapshot: {log}"
    );
    eprintln!("first paint, first page of `haul ui -n {ns}` (ms): {first}");
    drop(pointed);
    let _ = c.close().await;
}
