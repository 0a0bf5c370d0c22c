//! Webhook receivers end to end: a real control plane, a `haul controller` process with its
//! receivers on a loopback port, the test git server, and a GitHub push delivery signed as
//! GitHub signs it. The Warehouse polls every 10 minutes, so a commit found right after the
//! delivery was found because of it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::fixtures::git_credentials_secret;
use support::gitops::encoded_auth_url;
use support::services::services;
use support::{ControllerProcess, get_json, git, kubectl_stdin, namespace, wait_for};

const SECRET: &str = "It's a Secret to Everybody";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// POSTs `body` to the receivers; the status code and the response body.
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

fn commit(dir: &std::path::Path, file: &str, msg: &str) -> String {
    std::fs::write(dir.join(file), msg).expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

fn newest_commit(ns: &str) -> Option<String> {
    let w = get_json("warehouse", "app", ns)?;
    w["status"]["discoveredArtifacts"]["git"][0]["commits"][0]["id"]
        .as_str()
        .map(String::from)
}

fn refresh_token(ns: &str) -> Option<String> {
    get_json("warehouse", "app", ns)?["metadata"]["annotations"]["kargo.akuity.io/refresh"]
        .as_str()
        .map(String::from)
}

#[test]
fn a_signed_github_push_refreshes_the_subscribed_warehouse_at_once() {
    let ns = namespace("recv");
    let url = services().new_repo(&format!("{ns}.git"));
    let work = tempfile::tempdir().expect("tempdir");
    git(work.path(), &["init", "-q", "-b", "main"]);
    git(
        work.path(),
        &["remote", "add", "origin", &encoded_auth_url(&url)],
    );
    let first = commit(work.path(), "a.txt", "first");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut controller = ControllerProcess::start_with_env(
        &support::cp().dir().join("work-receivers"),
        &[
            ("HAUL_RECEIVERS_ADDR", &format!("127.0.0.1:{port}")),
            ("HAUL_RECEIVERS_BASE_URL", &base),
        ],
    );

    let manifests = format!(
        r#"{creds}---
apiVersion: v1
kind: Secret
metadata: {{name: gh-secret, namespace: {ns}}}
stringData:
  secret: "{SECRET}"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  webhookReceivers:
    - name: gh
      github:
        secretRef: {{name: gh-secret}}
    - name: broken
      gitlab:
        secretRef: {{name: no-such-secret}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: app, namespace: {ns}}}
spec:
  interval: 10m
  subscriptions:
    - git: {{repoURL: "{url}", branch: main}}
"#,
        creds = git_credentials_secret(&ns, "git-creds", &url),
    );
    kubectl_stdin(&["apply", "-f", "-"], &manifests).success("apply");

    // The status publishes Kargo's path: sha256(project + name + secret) under /github/.
    let github = haul::receivers::Platform::find("github").expect("the github receiver");
    let want_path = haul::receivers::webhook_path("", &ns, github, "gh", &[SECRET]);
    let status = wait_for(60, "ProjectConfig status with the receiver", || {
        let pc = get_json("projectconfig", &ns, &ns)?;
        (pc["status"]["webhookReceivers"][0]["path"] == want_path.as_str())
            .then(|| pc["status"].clone())
    });
    assert_eq!(status["webhookReceivers"][0]["name"], "gh");
    assert_eq!(
        status["webhookReceivers"][0]["url"],
        format!("{base}{want_path}")
    );
    assert_eq!(status["webhookReceivers"].as_array().map(Vec::len), Some(1));
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(ready["status"], "False", "{status}");
    let msg = ready["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("broken") && msg.contains("no-such-secret"),
        "{msg}"
    );
    assert!(!msg.contains(SECRET));

    wait_for(60, "the first discovery", || {
        (newest_commit(&ns)? == first).then_some(())
    });
    // Let the first discovery's status write settle before the next commit.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let second = commit(work.path(), "b.txt", "second");

    let body = json!({
        "ref": "refs/heads/main",
        "after": second,
        "repository": {"name": ns, "clone_url": url, "html_url": url},
        "commits": [{"id": second, "added": ["b.txt"], "removed": [], "modified": []}]
    })
    .to_string()
    .into_bytes();

    // Unknown path: 404.
    let (code, _) = post(port, "/github/0000", &[("X-GitHub-Event", "push")], &body);
    assert_eq!(code, 404);
    // A wrong signature: 401, and nothing is refreshed.
    let token_before = refresh_token(&ns);
    let bad = signature(&body, "not the secret");
    let (code, resp) = post(
        port,
        &want_path,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", bad.as_str()),
        ],
        &body,
    );
    assert_eq!(code, 401, "{resp}");
    let (code, _) = post(port, &want_path, &[("X-GitHub-Event", "push")], &body);
    assert_eq!(code, 401, "a missing signature");
    // A signed ping answers 200 without refreshing.
    let ping = br#"{"zen":"Design for failure."}"#;
    let (code, resp) = post(
        port,
        &want_path,
        &[
            ("X-GitHub-Event", "ping"),
            ("X-Hub-Signature-256", signature(ping, SECRET).as_str()),
        ],
        ping,
    );
    assert_eq!(code, 200, "{resp}");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(refresh_token(&ns), token_before);
    assert_eq!(newest_commit(&ns).as_deref(), Some(first.as_str()));

    // The signed push: 200, the Warehouse is refreshed and finds the new commit at once.
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
    let summary: Value = serde_json::from_str(&resp).expect("JSON summary");
    assert_eq!(summary["refreshed"], json!(["app"]), "{summary}");
    assert_ne!(refresh_token(&ns), token_before);
    wait_for(30, "discovery of the pushed commit", || {
        (newest_commit(&ns)? == second).then_some(())
    });

    // A burst right after is coalesced into one more refresh, not one per delivery.
    let mut coalesced = 0;
    for _ in 0..5 {
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
        let s: Value = serde_json::from_str(&resp).expect("JSON");
        coalesced += s["coalesced"].as_array().map(Vec::len).unwrap_or(0);
    }
    assert!(coalesced >= 3, "burst not coalesced ({coalesced} of 5)");

    let log = controller.log_text();
    assert!(!log.contains(SECRET), "the secret appears in the log");
    assert!(!log.contains(&bad), "a signature appears in the log");
    assert!(controller.running());
}
