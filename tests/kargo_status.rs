//! A cluster moving from Kargo: a Warehouse and its Freight with status written in Kargo's
//! exact shape (`api/v1alpha1/warehouse_types.go`, `freight_types.go`), then a real `haul
//! controller` on them. Nothing Kargo discovered is lost, its Freight is reused rather than
//! duplicated, and haul's own discoveries write the same shape.

mod support;

use k8s_openapi::jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};
use support::charts::push_oci;
use support::fixtures::git_credentials_secret;
use support::services::services;
use support::{
    ControllerProcess, freight_list, get_json, kubectl, kubectl_stdin, namespace, wait_for,
};

/// Go's `metav1.Time` text: RFC 3339, whole seconds, UTC.
fn go_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn push_image(registry: &str, repo: &str, tag: &str) -> String {
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/push-image.sh"))
        .args([registry, repo, tag])
        .output()
        .expect("push-image");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commits `file` with `content` and pushes it; returns the commit ID.
fn commit_and_push(work: &std::path::Path, auth: &str, content: &str, message: &str) -> String {
    std::fs::write(work.join("config.yaml"), content).expect("write");
    support::git(work, &["add", "-A"]);
    support::git(work, &["commit", "-q", "-m", message]);
    support::git(work, &["push", "-q", auth, "main"]);
    support::git(work, &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

/// Writes `status` through the status subresource, as Kargo's controller does.
fn patch_status(kind: &str, name: &str, ns: &str, status: &Value) {
    let patch = json!({ "status": status }).to_string();
    kubectl(&[
        "patch",
        kind,
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .success("patch status");
}

fn discovered(ns: &str) -> Value {
    get_json("warehouse", "kargo", ns).expect("warehouse")["status"]["discoveredArtifacts"].clone()
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn refresh(ns: &str, token: &str) {
    kubectl(&[
        "annotate",
        "warehouse",
        "kargo",
        "-n",
        ns,
        "--overwrite",
        &format!("kargo.akuity.io/refresh={token}"),
    ])
    .success("annotate");
    wait_for(60, "the refresh to be handled", || {
        let w = get_json("warehouse", "kargo", ns)?;
        (w["status"]["lastHandledRefresh"] == token).then_some(())
    });
}

#[test]
fn kargo_written_status_is_kept_and_its_freight_reused() {
    let ns = namespace("kargo-status");
    let s = services();
    let reg = s.var("HAUL_TEST_REGISTRY").to_string();

    // What Kargo subscribed to: an image, a git branch and an OCI chart.
    let digest = push_image(&reg, &format!("{ns}/app"), "1.0.0");
    let image_url = format!("{reg}/{ns}/app");
    let home = tempfile::tempdir().expect("helm home");
    push_oci(home.path(), &reg, &ns, "chart", &["0.1.0", "0.2.0"], None);
    let chart_url = format!("oci://{reg}/{ns}/chart");
    let git_url = s.new_repo(&format!("{ns}-config"));
    let work = support::cp().dir().join(format!("git-{ns}"));
    std::fs::create_dir_all(&work).expect("dir");
    let auth = support::gitops::encoded_auth_url(&git_url);
    support::git(&work, &["init", "-q", "-b", "main"]);
    let c1 = commit_and_push(&work, &auth, "replicas: 1\n", "first config");
    let c2 = commit_and_push(&work, &auth, "replicas: 2\n", "scale to 2");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &git_credentials_secret(&ns, "git", &git_url),
    )
    .success("secret");

    let warehouse = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: kargo\n  namespace: {ns}\nspec:\n  interval: 10m\n  subscriptions:\n  - name: config\n    git:\n      repoURL: {git_url}\n      branch: main\n  - image:\n      repoURL: {image_url}\n  - chart:\n      repoURL: {chart_url}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &warehouse).success("warehouse");

    // The Freight Kargo made from the newest of each, in Kargo's shape, with a status.
    let now = Timestamp::now();
    let earlier = go_time(now - 2.minutes());
    let mut freight = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Freight",
        "metadata": {"namespace": ns, "labels": {"kargo.akuity.io/alias": "kargo-made"}},
        "alias": "kargo-made",
        "origin": {"kind": "Warehouse", "name": "kargo"},
        "discoveredAt": earlier,
        "commits": [{
            "repoURL": git_url,
            "id": c2,
            "branch": "main",
            "message": "scale to 2",
            "author": "test <test@example.com>",
            "committer": "test <test@example.com>",
            "subscriptionName": "config",
        }],
        "images": [{"repoURL": image_url, "tag": "1.0.0", "digest": digest}],
        "charts": [{"repoURL": chart_url, "version": "0.2.0"}],
    });
    let typed: haul::api::Freight = serde_json::from_value(freight.clone()).expect("Freight");
    let name = haul::freight::freight_id(&typed);
    freight["metadata"]["name"] = json!(name);
    kubectl_stdin(&["apply", "-f", "-"], &freight.to_string()).success("freight");
    let freight_status = json!({
        "verifiedIn": {"dev": {"verifiedAt": earlier, "longestSoak": "1m0s"}},
        "approvedFor": {"prod": {"approvedAt": earlier}},
        "metadata": {"ticket": {"id": 7}},
    });
    patch_status("freight", &name, &ns, &freight_status);

    // The Warehouse status Kargo wrote after that discovery: observedRefs, subscription names,
    // generic results, and a Reconciling condition left over (haul's next write drops it).
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": reason,
               "observedGeneration": 1, "lastTransitionTime": earlier})
    };
    let kargo_artifacts = json!({
        "discoveredAt": go_time(now - 1.minutes()),
        "git": [{
            "repoURL": git_url,
            "commits": [
                {"id": c2, "branch": "main", "subject": "scale to 2",
                 "author": "test <test@example.com>", "committer": "test <test@example.com>",
                 "creatorDate": earlier},
                {"id": c1, "branch": "main", "subject": "first config",
                 "author": "test <test@example.com>", "committer": "test <test@example.com>",
                 "creatorDate": earlier},
            ],
            "subscriptionName": "config",
            "observedRefs": {"branchHead": c2},
        }],
        "images": [{
            "repoURL": image_url,
            "references": [{"tag": "1.0.0", "digest": digest, "createdAt": earlier}],
        }],
        "charts": [{"repoURL": chart_url, "versions": ["0.2.0", "0.1.0"]}],
        "results": [{
            "name": "bundle",
            "artifactReferences": [{
                "artifactType": "application/vnd.example.bundle",
                "subscriptionName": "bundle",
                "version": "v42",
                "metadata": {"size": 1024},
            }],
        }],
    });
    let kargo_status = json!({
        "conditions": [
            condition("Ready", "True", "ArtifactsDiscovered"),
            condition("Healthy", "True", "DiscoverySucceeded"),
            condition("Reconciling", "True", "ScheduledDiscovery"),
        ],
        "observedGeneration": 1,
        "lastFreightID": name,
        "discoveredArtifacts": kargo_artifacts,
    });
    patch_status("warehouse", "kargo", &ns, &kargo_status);
    assert_eq!(
        discovered(&ns),
        kargo_artifacts,
        "the CRD keeps every field Kargo writes"
    );

    let controller = ControllerProcess::start(&support::cp().dir().join("work-kargo-status"));

    // The controller's first pass sees the Kargo-written Warehouse: the interval has not
    // elapsed since Kargo's discovery, so haul leaves it be. A Warehouse created after the
    // start and reconciled proves that pass is over.
    let sentinel = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: sentinel\n  namespace: {ns}\nspec:\n  interval: 10m\n  freightCreationPolicy: Manual\n  subscriptions:\n  - image:\n      repoURL: {image_url}\n"
    );
    kubectl_stdin(&["apply", "-f", "-"], &sentinel).success("sentinel");
    wait_for(60, "haul to reconcile a Warehouse of its own", || {
        let w = get_json("warehouse", "sentinel", &ns)?;
        (w["status"]["observedGeneration"] == 1).then_some(())
    });
    let w = get_json("warehouse", "kargo", &ns).expect("warehouse");
    assert_eq!(w["status"], kargo_status, "{}", controller.log_text());
    assert_eq!(freight_list(&ns).len(), 1);

    // A discovery finds what Kargo found: the branch head is the one Kargo observed, so Kargo's
    // commit list is reused without a fetch; the Freight exists already and is not duplicated.
    refresh(&ns, "one");
    let all = freight_list(&ns);
    assert_eq!(all.len(), 1, "Kargo's Freight was duplicated: {all:#?}");
    assert_eq!(all[0]["metadata"]["name"], name.as_str());
    assert_eq!(all[0]["status"], freight_status, "Freight status kept");
    let w = get_json("warehouse", "kargo", &ns).expect("warehouse");
    assert_eq!(w["status"]["lastFreightID"], name.as_str());
    let d = &w["status"]["discoveredArtifacts"];
    assert_eq!(
        d["git"],
        kargo_artifacts["git"],
        "{}",
        controller.log_text()
    );
    assert_eq!(d["images"][0]["references"][0]["tag"], "1.0.0");
    assert_eq!(d["images"][0]["references"][0]["digest"], digest.as_str());
    assert_eq!(d["charts"][0]["versions"], json!(["0.2.0", "0.1.0"]));
    let condition_reason = |type_: &str| {
        w["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
            .map(|c| c["reason"].clone())
    };
    assert_eq!(
        condition_reason("FreightCreated"),
        Some(json!("AlreadyExists"))
    );

    // A new commit: haul's own discovery, written in Kargo's shape, and new Freight.
    let c3 = commit_and_push(&work, &auth, "replicas: 3\n", "scale to 3");
    refresh(&ns, "two");
    let d = discovered(&ns);
    let git = &d["git"][0];
    assert_eq!(
        keys(git),
        ["commits", "observedRefs", "repoURL", "subscriptionName"]
    );
    assert_eq!(git["subscriptionName"], "config");
    assert_eq!(git["observedRefs"], json!({"branchHead": c3}));
    let ids: Vec<&str> = git["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [c3.as_str(), c2.as_str(), c1.as_str()]);
    assert_eq!(
        keys(&git["commits"][0]),
        [
            "author",
            "branch",
            "committer",
            "creatorDate",
            "id",
            "subject"
        ]
    );
    assert_eq!(keys(&d["images"][0]), ["references", "repoURL"]);
    assert_eq!(keys(&d["charts"][0]), ["repoURL", "versions"]);
    assert!(d["discoveredAt"].is_string());
    // Replaced as a whole, as Kargo does: nothing of Kargo's (its generic results) lingers.
    assert_eq!(
        keys(&d),
        ["charts", "discoveredAt", "git", "images"],
        "{d:#}"
    );
    let all = freight_list(&ns);
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|f| f["commits"][0]["id"] == c3.as_str() && f["images"][0]["tag"] == "1.0.0")
    );
}
