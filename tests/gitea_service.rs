//! The Gitea test service itself: git over HTTP with basic auth, pull requests opened with the
//! API and merged or closed through `haul_testenv::Gitea`, and signed webhook deliveries to a
//! loopback listener — what the pull-request promotion and webhook receiver tests build on.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::json;
use support::{git, gitea};

/// Clones `url` into `dir/name` and returns the checkout.
fn clone(dir: &Path, url: &str, name: &str) -> std::path::PathBuf {
    git(dir, &["clone", "-q", url, name]);
    dir.join(name)
}

/// Commits `content` to `path` on the checked-out branch and pushes it as `branch`; the commit.
fn commit_and_push(work: &Path, branch: &str, path: &str, content: &str) -> String {
    let file = work.join(path);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&file, content).expect("write file");
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", &format!("edit {path}")]);
    git(
        work,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
    git(work, &["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn push_with_basic_auth_then_open_and_merge_a_pull_request() {
    let g = gitea();
    let owner = g.username();
    let repo = "gitops-merge";
    let clone_url = g
        .create_repo_with_files(
            repo,
            &[
                ("README.md", "# gitops\n"),
                ("apps/dev/kustomization.yaml", "images: []\n"),
            ],
        )
        .expect("create repo");
    assert!(clone_url.starts_with(g.url()), "{clone_url}");
    let initial = g.branch_head(owner, repo, "main").expect("main head");

    // git over HTTP, basic auth with the password.
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = clone(tmp.path(), &g.authenticated_url(&clone_url), "work");
    assert!(work.join("apps/dev/kustomization.yaml").is_file());
    let pushed = commit_and_push(
        &work,
        "promote/dev",
        "apps/dev/kustomization.yaml",
        "images:\n- name: app\n  newTag: v1.2.3\n",
    );
    assert_eq!(
        g.branch_head(owner, repo, "promote/dev").expect("head"),
        pushed
    );

    // A pull request opened with Gitea's API and the token, as haul opens one.
    let pr = g
        .api(
            "POST",
            &format!("/repos/{owner}/{repo}/pulls"),
            Some(&json!({"head": "promote/dev", "base": "main", "title": "Promote dev"})),
        )
        .expect("open pull request");
    let n = pr["number"].as_u64().expect("number");
    let open = g.list_pulls(owner, repo, "open").expect("list");
    assert!(open.iter().any(|p| p["number"] == n), "{open:?}");

    g.merge_pull(owner, repo, n).expect("merge");
    let merged = g.get_pull(owner, repo, n).expect("get pull");
    assert_eq!(merged["merged"], true, "{merged}");
    let merge_commit = merged["merge_commit_sha"].as_str().expect("merge sha");
    let head = g.branch_head(owner, repo, "main").expect("main head");
    assert_eq!(head, merge_commit);
    // A merge commit of the old main and the pushed commit.
    git(&work, &["fetch", "-q", "origin", "main"]);
    let parents = git(&work, &["rev-list", "--parents", "-n", "1", &head]);
    assert_eq!(
        parents.split_whitespace().collect::<Vec<_>>(),
        [head.as_str(), initial.as_str(), pushed.as_str()]
    );
    let closed = g.list_pulls(owner, repo, "closed").expect("list closed");
    assert!(closed.iter().any(|p| p["number"] == n), "{closed:?}");

    // A second pull request, closed without merging.
    commit_and_push(
        &work,
        "promote/uat",
        "apps/uat/kustomization.yaml",
        "images: []\n",
    );
    let pr2 = g
        .api(
            "POST",
            &format!("/repos/{owner}/{repo}/pulls"),
            Some(&json!({"head": "promote/uat", "base": "main", "title": "Promote uat"})),
        )
        .expect("open second pull request");
    let n2 = pr2["number"].as_u64().expect("number");
    let closed2 = g.close_pull(owner, repo, n2).expect("close");
    assert_eq!(closed2["state"], "closed");
    assert_eq!(closed2["merged"], false);
    assert_eq!(g.branch_head(owner, repo, "main").expect("main"), head);
}

/// One HTTP request as a loopback listener received it.
struct Delivery {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Accepts connections on `listener` and sends each request it reads down the channel,
/// answering 200.
fn receive(listener: TcpListener, tx: mpsc::Sender<Delivery>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut headers = BTreeMap::new();
        let mut line = String::new();
        // The request line, then headers up to the blank line.
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            continue;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("read body");
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        if tx.send(Delivery { headers, body }).is_err() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a push delivery's event header and signatures.
fn check_signed_push(d: &Delivery, secret: &str) {
    // Observed headers of a Gitea 1.24.6 push delivery (the receivers work reads these):
    //   content-type: application/json     accept-encoding: gzip
    //   user-agent: Go-http-client/1.1   (no charset, no custom agent)
    //   x-gitea-delivery: <uuid>            x-gitea-event: push       x-gitea-event-type: push
    //   x-gitea-hook-installation-target-type: repository
    //   x-gitea-signature: <hex HMAC-SHA256 of the body with the secret>
    //   x-github-delivery, x-github-event: push, x-github-event-type: push,
    //   x-github-hook-installation-target-type: repository
    //   x-gogs-delivery, x-gogs-event: push, x-gogs-event-type: push, x-gogs-signature: <same hex>
    //   x-hub-signature: sha1=<hex HMAC-SHA1>  x-hub-signature-256: sha256=<same hex as x-gitea-signature>
    let mut shown: Vec<String> = d.headers.keys().cloned().collect();
    shown.sort();
    eprintln!("webhook headers: {shown:?}");
    assert_eq!(
        d.headers.get("x-gitea-event").map(String::as_str),
        Some("push")
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&d.body);
    let expected = hex(&mac.finalize().into_bytes());
    assert_eq!(
        d.headers.get("x-gitea-signature"),
        Some(&expected),
        "headers: {:?}",
        d.headers
    );
    assert_eq!(
        d.headers.get("x-hub-signature-256"),
        Some(&format!("sha256={expected}"))
    );
}

#[test]
fn push_webhook_is_delivered_to_loopback_with_a_signature() {
    let g = gitea();
    let owner = g.username();
    let repo = "gitops-webhook";
    let clone_url = g
        .create_repo_with_files(repo, &[("README.md", "# hooks\n")])
        .expect("create repo");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || receive(listener, tx));
    let secret = "s3cret-for-hmac";
    let hook = g
        .add_webhook(
            owner,
            repo,
            &format!("http://127.0.0.1:{port}/webhook"),
            secret,
            &["push"],
        )
        .expect("add webhook");
    assert!(hook > 0);

    // git over HTTP, basic auth with the token as password.
    let tmp = tempfile::tempdir().expect("tempdir");
    let token_url = clone_url.replacen("://", &format!("://{owner}:{}@", g.token()), 1);
    let work = clone(tmp.path(), &token_url, "work");
    let pushed = commit_and_push(&work, "main", "apps/dev/values.yaml", "tag: v2\n");

    // Gitea handles pushes in the background and looks hooks up then, so the push of the
    // initial tree (made before the hook existed) may be delivered too: every delivery is
    // checked, and the test waits for the one of its own push.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let payload = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let d = rx
            .recv_timeout(left)
            .expect("a webhook delivery of the push within 30s");
        check_signed_push(&d, secret);
        let payload: serde_json::Value = serde_json::from_slice(&d.body).expect("json payload");
        if payload["after"] == pushed.as_str() {
            break payload;
        }
    };
    assert_eq!(payload["ref"], "refs/heads/main");
    assert_eq!(
        payload["repository"]["full_name"],
        format!("{owner}/{repo}")
    );
}
