//! ClusterConfig end to end: a real control plane and a `haul controller` process with its
//! receivers on a loopback port. ClusterConfig `cluster` publishes its webhook receivers (Secrets
//! in the system resources namespace), a delivery to one refreshes a Warehouse of a project,
//! and its gitClient is the author and signing key of a promotion's commit.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::fixtures::{Stage, git_credentials_secret, promotion_yaml};
use support::gitops::{encoded_auth_url, seed_dev_overlay};
use support::services::services;
use support::signing::{Verifier, gpg_key, indented};
use support::{
    ControllerProcess, free_port, get_json, git, kubectl, kubectl_stdin, namespace, wait_for,
};

const SECRET: &str = "cluster-wide webhook secret";

fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-m", "10", "-w", "\n%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json"]);
    for (k, v) in headers {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    let mut child = c
        .args(["--data-binary", "@-"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write body");
    let out = child.wait_with_output().expect("curl output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl prints a status code");
    (code.trim().parse().expect("status code"), body.to_string())
}

fn signature(body: &[u8], secret: &str) -> String {
    let mac = haul::receivers::hmac_sha256(secret.as_bytes(), body);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

fn newest_commit(ns: &str) -> Option<String> {
    let w = get_json("warehouse", "app", ns)?;
    w["status"]["discoveredArtifacts"]["git"][0]["commits"][0]["id"]
        .as_str()
        .map(String::from)
}

fn push_commit(dir: &std::path::Path, file: &str) -> String {
    std::fs::write(dir.join(file), file).expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", file]);
    git(dir, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

fn promotion_phase(ns: &str, name: &str) -> Value {
    wait_for(120, &format!("Promotion {name} to finish"), || {
        let p = get_json("promotion", name, ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored"]
            .contains(&phase)
            .then(|| p["status"].clone())
    })
}

/// The Stage: clone, edit, commit and push, naming no author anywhere.
fn stage(ns: &str, url: &str) -> String {
    let template = format!(
        r#"      steps:
      - uses: git-clone
        config:
          repoURL: {url}
          checkout:
          - branch: gitops
            path: ./src
      - uses: yaml-update
        config:
          path: ./src/apps/svc/env/dev/kustomization.yaml
          updates:
          - key: images.0.newTag
            value: ${{{{ ctx.promotion }}}}
      - uses: git-commit
        config:
          path: ./src
          message: promoted
      - uses: git-push
        config:
          path: ./src
"#
    );
    Stage {
        ns,
        name: "dev",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml()
}

#[test]
fn cluster_config_receivers_refresh_project_warehouses_and_git_client_signs_commits() {
    let key = gpg_key("Cluster Bot", "cluster-bot@example.com", "", "never");
    let system = namespace("system");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let controller = ControllerProcess::start_with_env(
        &support::cp().dir().join("work-cluster-config"),
        &[
            ("HAUL_RECEIVERS_ADDR", &format!("127.0.0.1:{port}")),
            ("HAUL_RECEIVERS_BASE_URL", &base),
            ("SYSTEM_RESOURCES_NAMESPACE", &system),
        ],
    );

    let manifests = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: gh-secret, namespace: {system}}}
stringData:
  secret: "{SECRET}"
---
apiVersion: v1
kind: Secret
metadata: {{name: commit-signing, namespace: {system}}}
stringData:
  signingKey: |
{key}---
apiVersion: kargo.akuity.io/v1alpha1
kind: ClusterConfig
metadata:
  name: cluster
  annotations: {{kargo.akuity.io/refresh: token-1}}
spec:
  gitClient:
    name: Cluster Bot
    email: cluster-bot@example.com
    signingKeySecret: {{name: commit-signing}}
  webhookReceivers:
    - name: gh
      github:
        secretRef: {{name: gh-secret}}
  freightLinks:
    - {{name: ci, url: "https://ci.example.com/${{{{ freight.name }}}}"}}
  promotionWindows:
    - {{name: business-hours, kind: allow, schedule: "0 9 * * 1-5", duration: 8h}}
"#,
        key = indented(&key.private, 4)
    );
    kubectl_stdin(&["apply", "-f", "-"], &manifests).success("apply ClusterConfig");

    // Kargo's path for a cluster receiver: sha256("" + name + secret) under /github/.
    let github = haul::receivers::Platform::find("github").expect("the github receiver");
    let want_path = haul::receivers::webhook_path("", "", github, "gh", &[SECRET]);
    let status = wait_for(60, "ClusterConfig status", || {
        let cc = get_json("clusterconfig", "cluster", "default")?;
        (cc["status"]["webhookReceivers"][0]["path"] == want_path.as_str()
            && cc["status"]["lastHandledRefresh"] == "token-1")
            .then(|| cc["status"].clone())
    });
    assert_eq!(
        status["webhookReceivers"][0]["url"],
        format!("{base}{want_path}")
    );
    assert_eq!(condition(&status, "Ready")["status"], "True", "{status:#}");
    let windows = condition(&status, "PromotionWindowsEnforced");
    assert_eq!(windows["status"], "False", "{status:#}");
    assert!(
        windows["message"]
            .as_str()
            .is_some_and(|m| m.contains("not enforced")),
        "{windows}"
    );
    assert!(status["observedGeneration"].as_i64().is_some());
    // Stored as given.
    let cc = get_json("clusterconfig", "cluster", "default").expect("ClusterConfig");
    assert_eq!(cc["spec"]["freightLinks"][0]["name"], "ci");

    // A Warehouse of a project, polling every 10 minutes.
    let ns = namespace("ccproj");
    let url = services().new_repo(&format!("{ns}.git"));
    let work = tempfile::tempdir().expect("tempdir");
    git(work.path(), &["init", "-q", "-b", "main"]);
    git(
        work.path(),
        &["remote", "add", "origin", &encoded_auth_url(&url)],
    );
    let first = push_commit(work.path(), "a.txt");
    let warehouse = format!(
        "{creds}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app, namespace: {ns}}}\nspec:\n  interval: 10m\n  subscriptions:\n    - git: {{repoURL: \"{url}\", branch: main}}\n",
        creds = git_credentials_secret(&ns, "git-creds", &url),
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse).success("warehouse");
    wait_for(60, "the first discovery", || {
        (newest_commit(&ns)? == first).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let second = push_commit(work.path(), "b.txt");
    let body = json!({
        "ref": "refs/heads/main",
        "after": second,
        "repository": {"name": ns, "clone_url": url, "html_url": url},
        "commits": [{"id": second, "added": ["b.txt"], "removed": [], "modified": []}]
    })
    .to_string()
    .into_bytes();
    let (code, resp) = post(
        port,
        &want_path,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", signature(&body, "wrong").as_str()),
        ],
        &body,
    );
    assert_eq!(code, 401, "{resp}");
    assert_eq!(newest_commit(&ns).as_deref(), Some(first.as_str()));
    let (code, resp) = post(
        port,
        &want_path,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", signature(&body, SECRET).as_str()),
        ],
        &body,
    );
    assert_eq!(code, 200, "{resp}");
    let resp: Value = serde_json::from_str(&resp).expect("json");
    assert_eq!(resp["refreshed"], json!([format!("{ns}/app")]), "{resp}");
    wait_for(30, "the Warehouse to find the pushed commit", || {
        (newest_commit(&ns)? == second).then_some(())
    });

    // gitClient: the promotion's commit is by Cluster Bot and signed with its key.
    let (gitops, bare) = seed_dev_overlay(&format!("{ns}-gitops"));
    let before = git(&bare, &["rev-parse", "refs/heads/gitops"]);
    let freight = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f1\n  namespace: {ns}\nalias: f1\norigin:\n  kind: Warehouse\n  name: w\nimages:\n- repoURL: my-app\n  tag: \"1\"\n  digest: sha256:1\n"
    );
    kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{}---\n{freight}---\n{}---\n{}",
            git_credentials_secret(&ns, "gitops-creds", &gitops),
            stage(&ns, &gitops),
            promotion_yaml(&ns, "p1", "dev", "f1")
        ),
    )
    .success("promotion");
    let status = promotion_phase(&ns, "p1");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    let after = git(&bare, &["rev-parse", "refs/heads/gitops"]);
    assert_ne!(before, after);
    let v = Verifier::new(&gitops, &key);
    let after = after.trim();
    assert_eq!(
        v.git(&["log", "-1", "--format=%an <%ae>|%cn", after])
            .trim(),
        "Cluster Bot <cluster-bot@example.com>|Cluster Bot"
    );
    let (ok, text) = v.verify("verify-commit", after);
    assert!(ok, "verify-commit: {text}");

    // A signing key Secret that does not exist fails the commit, naming it; nothing is pushed.
    kubectl(&[
        "patch",
        "clusterconfig",
        "cluster",
        "--type=merge",
        "-p",
        r#"{"spec":{"gitClient":{"signingKeySecret":{"name":"no-such-key"}}}}"#,
    ])
    .success("patch ClusterConfig");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(&ns, "p2", "dev", "f1"),
    )
    .success("promotion 2");
    let status = promotion_phase(&ns, "p2");
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let msg = status["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("signingKeySecret") && msg.contains("no-such-key"),
        "{msg}"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "refs/heads/gitops"]).trim(),
        after,
        "nothing pushed"
    );
    let log = controller.log_text();
    let key_line = key.private.lines().nth(3).unwrap_or("-").to_string();
    assert!(!log.contains(&key_line), "the signing key was logged");
}

#[test]
fn only_a_cluster_config_named_cluster_is_accepted() {
    let out = kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: ClusterConfig\nmetadata: {name: other}\nspec: {}\n",
    );
    assert!(!out.ok, "a ClusterConfig named other was accepted");
    assert!(out.stderr.contains("name must be"), "{}", out.stderr);
}
