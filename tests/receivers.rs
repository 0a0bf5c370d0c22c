//! Webhook receivers end to end: a real control plane, a `haul controller` process with its
//! receivers on a loopback port, the test git server, and a GitHub push delivery signed as
//! GitHub signs it. The Warehouse polls every 10 minutes, so a commit found right after the
//! delivery was found because of it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};
use support::fixtures::git_credentials_secret;
use support::gitops::encoded_auth_url;
use support::services::services;
use support::{ControllerProcess, free_port, get_json, git, kubectl_stdin, namespace, wait_for};

const SECRET: &str = "It's a Secret to Everybody";

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

/// The one controller of this binary, serving the receivers on its own port. Shared, because
/// two controllers would elect one leader between them, and only the leader publishes
/// `status.webhookReceivers` (with its own base URL).
struct Receivers {
    controller: Mutex<ControllerProcess>,
    port: u16,
    base: String,
}

fn receivers() -> &'static Receivers {
    static RECEIVERS: OnceLock<Receivers> = OnceLock::new();
    RECEIVERS.get_or_init(|| {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let controller = ControllerProcess::start_with_env(
            &support::cp().dir().join("work-receivers"),
            &[
                ("HAUL_RECEIVERS_ADDR", &format!("127.0.0.1:{port}")),
                ("HAUL_RECEIVERS_BASE_URL", &base),
            ],
        );
        Receivers {
            controller: Mutex::new(controller),
            port,
            base,
        }
    })
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

    let receivers = receivers();
    let (port, base) = (receivers.port, receivers.base.as_str());

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

    let mut controller = receivers
        .controller
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let log = controller.log_text();
    assert!(!log.contains(SECRET), "the secret appears in the log");
    assert!(!log.contains(&bad), "a signature appears in the log");
    assert!(controller.running());
}

/// The refresh annotation of Warehouse `name`.
fn refreshed_at(ns: &str, name: &str) -> Option<String> {
    get_json("warehouse", name, ns)?["metadata"]["annotations"]["kargo.akuity.io/refresh"]
        .as_str()
        .map(String::from)
}

fn hex_hmac(body: &[u8], secret: &str) -> String {
    haul::receivers::hmac_sha256(secret.as_bytes(), body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A refresh delivery: 200 and exactly `want` refreshed (now or coalesced), and the
/// annotation set on them and on no other Warehouse of `all`.
fn assert_refreshes(
    ns: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    want: &[&str],
    all: &[&str],
) {
    let before: Vec<_> = all.iter().map(|w| refreshed_at(ns, w)).collect();
    let (code, resp) = post(port, path, headers, body);
    assert_eq!(code, 200, "{resp}");
    let summary: Value = serde_json::from_str(&resp).expect("JSON summary");
    let mut got: Vec<String> = ["refreshed", "coalesced"]
        .iter()
        .flat_map(|k| summary[k].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    got.sort();
    assert_eq!(got, want, "{summary}");
    for (w, before) in all.iter().zip(before) {
        if want.contains(w) {
            wait_for(10, "the refresh annotation", || {
                (refreshed_at(ns, w) != before).then_some(())
            });
        } else {
            assert_eq!(refreshed_at(ns, w), before, "{w} was refreshed");
        }
    }
}

/// Every receiver kind but GitHub (above): a delivery authenticated as the platform does it
/// refreshes only the Warehouse whose branch or tag filters the push concerns; a wrong or
/// missing signature or token refreshes nothing. The repositories are unreachable on
/// purpose: only the refresh is under test, not the discovery after it.
#[test]
fn each_receiver_kind_refreshes_only_the_warehouses_the_push_concerns() {
    let ns = namespace("recv-kinds");
    let receivers = receivers();
    let port = receivers.port;
    let git = "http://127.0.0.1:1/org/app.git";
    let kinds = [
        ("gitea", "gitea-secret", "secret"),
        ("bitbucket", "bitbucket-secret", "secret"),
        ("azure", "azure-secret", "secret"),
        ("harbor", "harbor-secret", "auth-header"),
        ("artifactory", "artifactory-secret", "secret-token"),
        ("generic", "generic-secret", "secret"),
    ];
    let mut manifests = String::new();
    for (kind, secret_name, key) in kinds {
        manifests.push_str(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret_name}, namespace: {ns}}}\n\
             stringData:\n  {key}: \"{SECRET} for {kind}\"\n---\n"
        ));
    }
    manifests.push_str(&format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  webhookReceivers:
    - {{name: gitea, gitea: {{secretRef: {{name: gitea-secret}}}}}}
    - {{name: bitbucket, bitbucket: {{secretRef: {{name: bitbucket-secret}}}}}}
    - {{name: azure, azure: {{secretRef: {{name: azure-secret}}}}}}
    - {{name: harbor, harbor: {{secretRef: {{name: harbor-secret}}}}}}
    - name: artifactory
      artifactory: {{secretRef: {{name: artifactory-secret}}, virtualRepoName: docker-virtual}}
    - name: generic
      generic:
        secretRef: {{name: generic-secret}}
        actions:
          - action: Refresh
            whenExpression: "request.header('X-Event') == 'deploy'"
            targetSelectionCriteria:
              - kind: Warehouse
                name: "${{{{ request.body.warehouse }}}}"
"#
    ));
    let warehouse = |name: &str, subscription: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\n\
             metadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  interval: 10m\n  subscriptions:\n    - {subscription}\n"
        )
    };
    let image = |repo: &str, constraint: &str| {
        format!("image: {{repoURL: \"{repo}\", constraint: \"{constraint}\"}}")
    };
    for (name, sub) in [
        (
            "git-main",
            format!("git: {{repoURL: \"{git}\", branch: main}}"),
        ),
        (
            "git-release",
            format!("git: {{repoURL: \"{git}\", branch: release}}"),
        ),
        (
            "git-tags",
            format!(
                "git: {{repoURL: \"{git}\", commitSelectionStrategy: SemVer, semverConstraint: \"^2\"}}"
            ),
        ),
        ("acr-v1", image("127.0.0.1:1/acr/app", "^1.0.0")),
        ("acr-v2", image("127.0.0.1:1/acr/app", "^2.0.0")),
        ("harbor-v1", image("127.0.0.1:1/library/alpine", "^1.0.0")),
        ("harbor-v2", image("127.0.0.1:1/library/alpine", "^2.0.0")),
        (
            "art-v1",
            image("127.0.0.1:1/docker-virtual/team/app", "^1.0.0"),
        ),
        (
            "art-v2",
            image("127.0.0.1:1/docker-virtual/team/app", "^2.0.0"),
        ),
        ("gen-a", image("127.0.0.1:1/gen/a", "^1.0.0")),
        ("gen-b", image("127.0.0.1:1/gen/b", "^1.0.0")),
    ] {
        manifests.push_str(&warehouse(name, &sub));
    }
    kubectl_stdin(&["apply", "-f", "-"], &manifests).success("apply");

    let path_of = |kind: &str| {
        let platform = haul::receivers::Platform::find(kind).expect(kind);
        haul::receivers::webhook_path("", &ns, platform, kind, &[&format!("{SECRET} for {kind}")])
    };
    let status = wait_for(60, "all six receivers published", || {
        let pc = get_json("projectconfig", &ns, &ns)?;
        let published = pc["status"]["webhookReceivers"].as_array()?.len();
        (published == kinds.len()).then(|| pc["status"].clone())
    });
    for (i, (kind, _, _)) in kinds.iter().enumerate() {
        assert_eq!(
            status["webhookReceivers"][i]["path"],
            path_of(kind).as_str()
        );
    }
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(ready["status"], "True", "{status}");
    let secret_of = |kind: &str| format!("{SECRET} for {kind}");

    let git_warehouses = ["git-main", "git-release", "git-tags"];

    // Gitea 1.24: both signature headers, the event in X-Gitea-Event.
    let gitea = json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": "d1e2f3",
        "repository": {"name": "app", "full_name": "org/app", "clone_url": git},
        "commits": [{"id": "d1e2f3", "added": ["a.txt"], "removed": [], "modified": []}],
        "total_commits": 1
    })
    .to_string()
    .into_bytes();
    let gitea_sig = hex_hmac(&gitea, &secret_of("gitea"));
    let (code, _) = post(
        port,
        &path_of("gitea"),
        &[
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Signature", &hex_hmac(&gitea, "wrong")),
        ],
        &gitea,
    );
    assert_eq!(code, 401);
    let (code, _) = post(
        port,
        &path_of("gitea"),
        &[("X-Gitea-Event", "push")],
        &gitea,
    );
    assert_eq!(code, 401, "a missing signature");
    assert_refreshes(
        &ns,
        port,
        &path_of("gitea"),
        &[
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Signature", &gitea_sig),
            ("X-Hub-Signature-256", &format!("sha256={gitea_sig}")),
        ],
        &gitea,
        &["git-main"],
        &git_warehouses,
    );

    // Bitbucket Cloud: a push to `release` and a v2 tag.
    let bitbucket = json!({
        "actor": {"display_name": "Admin"},
        "push": {"changes": [
            {"new": {"type": "branch", "name": "release"}},
            {"new": {"type": "tag", "name": "v2.0.1"}}
        ]},
        "repository": {"full_name": "org/app", "links": {"html": {"href": git}}}
    })
    .to_string()
    .into_bytes();
    let bb_sig = format!("sha256={}", hex_hmac(&bitbucket, &secret_of("bitbucket")));
    let (code, _) = post(
        port,
        &path_of("bitbucket"),
        &[
            ("X-Event-Key", "repo:push"),
            ("X-Hub-Signature", "sha256=00"),
        ],
        &bitbucket,
    );
    assert_eq!(code, 401);
    assert_refreshes(
        &ns,
        port,
        &path_of("bitbucket"),
        &[("X-Event-Key", "repo:push"), ("X-Hub-Signature", &bb_sig)],
        &bitbucket,
        &["git-release", "git-tags"],
        &git_warehouses,
    );

    // Azure Container Registry: a 1.x image; the secret path is the only authentication.
    let acr = json!({
        "id": "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
        "timestamp": "2024-01-01T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "repository": "acr/app",
            "tag": "1.4.0",
            "digest": "sha256:0000"
        },
        "request": {"host": "127.0.0.1:1", "method": "PUT"}
    })
    .to_string()
    .into_bytes();
    let (code, _) = post(port, &path_of("azure"), &[("User-Agent", "curl/8")], &acr);
    assert_eq!(code, 400, "not from Azure");
    assert_refreshes(
        &ns,
        port,
        &path_of("azure"),
        &[("User-Agent", "AzureContainerRegistry/1.0")],
        &acr,
        &["acr-v1"],
        &["acr-v1", "acr-v2"],
    );

    // Harbor: a 2.x artifact, with the configured Authorization header.
    let harbor = json!({
        "type": "PUSH_ARTIFACT",
        "occur_at": 1700000000,
        "operator": "admin",
        "event_data": {
            "resources": [{"digest": "sha256:0000", "tag": "v2.1.0",
                           "resource_url": "127.0.0.1:1/library/alpine:v2.1.0"}],
            "repository": {"name": "alpine", "namespace": "library", "repo_full_name": "library/alpine"}
        }
    })
    .to_string()
    .into_bytes();
    let (code, _) = post(
        port,
        &path_of("harbor"),
        &[("Authorization", "nope")],
        &harbor,
    );
    assert_eq!(code, 401);
    assert_refreshes(
        &ns,
        port,
        &path_of("harbor"),
        &[("Authorization", &secret_of("harbor"))],
        &harbor,
        &["harbor-v2"],
        &["harbor-v1", "harbor-v2"],
    );

    // Artifactory: pushed to a local repository, subscribed through the virtual one.
    let artifactory = json!({
        "domain": "docker",
        "event_type": "pushed",
        "data": {"repo_key": "docker-local", "path": "team/app/1.0.3/manifest.json",
                 "name": "manifest.json", "image_name": "team/app", "tag": "1.0.3",
                 "image_type": "docker"},
        "subscription_key": "kargo",
        "jpd_origin": "http://127.0.0.1:1",
        "source": "jfrog/admin"
    })
    .to_string()
    .into_bytes();
    let art_sig = hex_hmac(&artifactory, &secret_of("artifactory"));
    let (code, _) = post(port, &path_of("artifactory"), &[], &artifactory);
    assert_eq!(code, 401, "a missing signature");
    assert_refreshes(
        &ns,
        port,
        &path_of("artifactory"),
        &[("X-Jfrog-Event-Auth", &art_sig)],
        &artifactory,
        &["art-v1"],
        &["art-v1", "art-v2"],
    );

    // Generic: the action's expression matches the header; the body names the Warehouse.
    let generic_body = br#"{"warehouse": "gen-a"}"#;
    let before_a = refreshed_at(&ns, "gen-a");
    let (code, resp) = post(
        port,
        &path_of("generic"),
        &[("X-Event", "build")],
        generic_body,
    );
    assert_eq!(code, 200, "{resp}");
    let r: Value = serde_json::from_str(&resp).expect("JSON");
    assert_eq!(r["results"][0]["result"], "NotApplicable", "{r}");
    assert_eq!(refreshed_at(&ns, "gen-a"), before_a);
    let (code, resp) = post(
        port,
        &path_of("generic"),
        &[("X-Event", "deploy")],
        generic_body,
    );
    assert_eq!(code, 200, "{resp}");
    let r: Value = serde_json::from_str(&resp).expect("JSON");
    assert_eq!(r["results"][0]["result"], "Success", "{r}");
    assert_eq!(
        r["results"][0]["selectedTargets"],
        json!([{"namespace": ns, "name": "gen-a", "success": true}])
    );
    wait_for(10, "gen-a refreshed", || {
        (refreshed_at(&ns, "gen-a") != before_a).then_some(())
    });
    assert_eq!(refreshed_at(&ns, "gen-b"), None);

    let mut controller = receivers
        .controller
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let log = controller.log_text();
    for (kind, _, _) in kinds {
        assert!(
            !log.contains(&secret_of(kind)),
            "the {kind} secret appears in the log"
        );
    }
    assert!(controller.running());
}

/// The real Gitea sends a signed push to haul's gitea receiver on loopback: the Warehouse on the
/// pushed branch discovers the new commit at once (it polls every 10 minutes), the one on
/// another branch of the same repository is not refreshed.
#[test]
fn a_real_gitea_push_refreshes_only_the_warehouse_on_that_branch() {
    let g = support::gitea::gitea();
    let ns = namespace("recv-gitea");
    let url = g
        .create_repo_with_files(&ns, &[("a.txt", "first\n")])
        .unwrap_or_else(|e| panic!("{e}"));
    g.api(
        "POST",
        &format!("/repos/{}/{ns}/branches", g.username()),
        Some(&json!({"new_branch_name": "release", "old_branch_name": "main"})),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let first = g
        .branch_head(g.username(), &ns, "main")
        .unwrap_or_else(|e| panic!("{e}"));
    let receivers = receivers();
    let manifests = format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: gitea-creds
  namespace: {ns}
  labels: {{kargo.akuity.io/cred-type: git}}
stringData: {{repoURL: "{url}", username: "{user}", password: "{token}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: gitea-hook, namespace: {ns}}}
stringData:
  secret: "{SECRET}"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  webhookReceivers:
    - {{name: gitea, gitea: {{secretRef: {{name: gitea-hook}}}}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: app, namespace: {ns}}}
spec:
  interval: 10m
  subscriptions:
    - git: {{repoURL: "{url}", branch: main}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: release, namespace: {ns}}}
spec:
  interval: 10m
  subscriptions:
    - git: {{repoURL: "{url}", branch: release}}
"#,
        user = g.username(),
        token = g.token(),
    );
    kubectl_stdin(&["apply", "-f", "-"], &manifests).success("apply");
    let hook_url = wait_for(60, "the gitea receiver's URL", || {
        let pc = get_json("projectconfig", &ns, &ns)?;
        pc["status"]["webhookReceivers"][0]["url"]
            .as_str()
            .map(String::from)
    });
    assert!(hook_url.starts_with(&receivers.base), "{hook_url}");
    wait_for(60, "the first discovery", || {
        (newest_commit(&ns)? == first).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let release_before = refreshed_at(&ns, "release");

    g.add_webhook(g.username(), &ns, &hook_url, SECRET, &["push"])
        .unwrap_or_else(|e| panic!("{e}"));
    // A commit to main through Gitea's contents API: Gitea delivers the push to haul.
    g.api(
        "POST",
        &format!("/repos/{}/{ns}/contents/b.txt", g.username()),
        Some(&json!({"branch": "main", "message": "second", "content": "c2Vjb25kCg=="})),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let second = g
        .branch_head(g.username(), &ns, "main")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(first, second);
    wait_for(
        30,
        "Gitea's push to make the Warehouse discover the commit",
        || (newest_commit(&ns)? == second).then_some(()),
    );
    assert_eq!(
        refreshed_at(&ns, "release"),
        release_before,
        "the Warehouse on another branch is not refreshed"
    );
}
