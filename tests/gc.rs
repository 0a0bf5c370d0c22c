//! `haul gc` against a real API server, as the chart's CronJob runs it: exactly the Promotions
//! and Freight Kargo's rules (and haul's extra protections) allow are deleted, a dry run deletes
//! nothing, an object changed after it was listed survives, and the chart's garbage-collector
//! ServiceAccount has exactly the rights a pass needs.
//!
//! creationTimestamp cannot be set, so these passes use minimum ages of 0s (and one of 1h to
//! show young objects are spared); the age arithmetic is unit-tested in src/gc/plan.rs.
//! Every pass is limited to the test's namespace (`-n`): the control plane is shared by the
//! tests of this binary.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{kubectl, kubectl_stdin, merge_patch, merge_patch_status, namespace};

/// Runs `haul gc` with `kubeconfig` and `args`; returns (success, stderr).
fn haul_gc(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_haul"))
        .arg("gc")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        // The flags say everything; nothing from the environment of the test run.
        .env_remove("MAX_RETAINED_PROMOTIONS")
        .env_remove("MIN_PROMOTION_DELETION_AGE")
        .env_remove("MAX_RETAINED_FREIGHT")
        .env_remove("MIN_FREIGHT_DELETION_AGE")
        .env_remove("HAUL_GC_DRY_RUN")
        .env_remove("HAUL_LOG_JSON")
        .output()
        .expect("haul runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn admin() -> PathBuf {
    support::cp().kubeconfig().to_path_buf()
}

fn names(kind: &str, ns: &str) -> BTreeSet<String> {
    let out = kubectl(&["get", kind, "-n", ns, "-o", "json"]).success("list");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn apply(items: Vec<Value>) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success("apply");
}

fn warehouse(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"interval": "100h", "freightCreationPolicy": "Manual",
                 "subscriptions": [{"image": {"repoURL": "registry.invalid/app"}}]},
    })
}

fn stage(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"},
                                       "sources": {"direct": true}}]},
    })
}

fn freight(ns: &str, name: &str, warehouse: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
        "metadata": {"name": name, "namespace": ns},
        "origin": {"kind": "Warehouse", "name": warehouse},
        "images": [{"repoURL": "registry.invalid/app", "tag": name, "digest": format!("sha256:{name}")}],
    })
}

fn promotion(ns: &str, name: &str, stage: &str, freight: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"stage": stage, "freight": freight},
    })
}

/// Sets a Promotion's phase (and when it finished), as the controller would.
fn phase(ns: &str, name: &str, phase: &str, finished_at: Option<&str>) {
    let mut status = json!({"phase": phase});
    if let Some(t) = finished_at {
        status["finishedAt"] = json!(t);
    }
    merge_patch_status(
        "promotion",
        name,
        ns,
        &json!({"status": status}).to_string(),
    )
    .success("promotion status");
}

/// Makes `freight` (from Warehouse w) the Stage's current Freight.
fn current_freight(ns: &str, stage: &str, freight: &str) {
    let patch = json!({"status": {"freightHistory": [{"id": format!("c-{freight}"), "items": {
        "Warehouse/w": {"name": freight, "origin": {"kind": "Warehouse", "name": "w"}}}}]}});
    merge_patch_status("stage", stage, ns, &patch.to_string()).success("stage status");
}

/// The project of `gc_deletes_exactly_what_the_rules_allow`. Names sort in creation order, so
/// objects created within one second still order by age.
fn project(ns: &str) {
    let mut items = vec![
        warehouse(ns, "w"),
        warehouse(ns, "w2"),
        stage(ns, "dev"),
        stage(ns, "uat"),
    ];
    // Warehouse w: dev uses f-3. Warehouse w2: a waiting Promotion names g-0. Warehouse gone:
    // deleted long ago.
    items.extend((0..6).map(|i| freight(ns, &format!("f-{i}"), "w")));
    items.extend((0..3).map(|i| freight(ns, &format!("g-{i}"), "w2")));
    items.extend((0..3).map(|i| freight(ns, &format!("o-{i}"), "gone")));
    items.extend((0..8).map(|i| promotion(ns, &format!("d-{i:02}"), "dev", "f-3")));
    items.extend((0..5).map(|i| promotion(ns, &format!("u-{i}"), "uat", "g-1")));
    items.push(promotion(ns, "u-5", "uat", "g-0"));
    items.extend((0..4).map(|i| promotion(ns, &format!("x-{i}"), "gone", "f-3")));
    apply(items);

    current_freight(ns, "dev", "f-3");
    // dev, oldest first: four finished, one Running, two finished, one Pending (no status).
    for (name, p) in [
        ("d-00", "Succeeded"),
        ("d-01", "Failed"),
        ("d-02", "Errored"),
        ("d-03", "Aborted"),
        ("d-04", "Running"),
        ("d-05", "Succeeded"),
        ("d-06", "Failed"),
    ] {
        phase(ns, name, p, None);
    }
    // uat: u-0 is the Promotion that succeeded last (a person's pin, which holds
    // auto-promotion); the newer ones failed; u-5 waits.
    phase(ns, "u-0", "Succeeded", Some("2030-01-01T00:00:00Z"));
    for name in ["u-1", "u-2", "u-3", "u-4"] {
        phase(ns, name, "Failed", Some("2029-01-01T00:00:00Z"));
    }
    for name in ["x-0", "x-1", "x-2", "x-3"] {
        phase(ns, name, "Failed", None);
    }
}

const KEEP_2_AND_1: &[&str] = &[
    "--max-retained-promotions",
    "2",
    "--max-retained-freight",
    "1",
];

#[test]
fn gc_deletes_exactly_what_the_rules_allow() {
    let ns = namespace("gc");
    project(&ns);
    let promotions_before = names("promotions", &ns);
    let freight_before = names("freight", &ns);
    assert_eq!(promotions_before.len(), 18);
    assert_eq!(freight_before.len(), 12);
    let kc = admin();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["-n", &ns].iter().map(|s| s.to_string()).collect();
        a.extend(KEEP_2_AND_1.iter().map(|s| s.to_string()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, log) = haul_gc(&kc, &refs);
        assert!(ok, "haul gc {refs:?} failed:\n{log}");
        log
    };

    // Everything is younger than an hour: nothing is old enough.
    run(&[
        "--min-promotion-deletion-age",
        "1h",
        "--min-freight-deletion-age",
        "1h",
    ]);
    assert_eq!(names("promotions", &ns), promotions_before);
    assert_eq!(names("freight", &ns), freight_before);

    let zero = [
        "--min-promotion-deletion-age",
        "0s",
        "--min-freight-deletion-age",
        "0s",
    ];
    // A dry run says what it would delete and deletes nothing.
    let mut dry: Vec<&str> = zero.to_vec();
    dry.extend(["--dry-run", "--log-json"]);
    let log = run(&dry);
    assert_eq!(names("promotions", &ns), promotions_before);
    assert_eq!(names("freight", &ns), freight_before);
    let would: BTreeSet<String> = events(&log, "would delete (dry run)")
        .iter()
        .filter_map(|f| f["name"].as_str().map(String::from))
        .collect();
    let expected_deleted = set(&["d-00", "d-01", "u-1", "u-2", "f-0", "f-1"]);
    assert_eq!(would, expected_deleted, "dry-run log:\n{log}");

    // The real pass.
    run(&zero);
    // dev: d-04 runs, so it and everything newer stay, plus the 2 finished before it (d-03,
    // d-02). uat: u-5 waits; u-4 and u-3 are the 2 kept; u-0 is the last success (kept); u-2
    // and u-1 go. Promotions of the deleted Stage `gone` are left alone.
    assert_eq!(
        names("promotions", &ns),
        set(&[
            "d-02", "d-03", "d-04", "d-05", "d-06", "d-07", "u-0", "u-3", "u-4", "u-5", "x-0",
            "x-1", "x-2", "x-3",
        ])
    );
    // w: dev uses f-3, so f-3..f-5 stay, plus 1 before it (f-2). w2: the waiting Promotion u-5
    // names g-0, the oldest, so all stay. Freight of the deleted Warehouse is left alone.
    assert_eq!(
        names("freight", &ns),
        set(&[
            "f-2", "f-3", "f-4", "f-5", "g-0", "g-1", "g-2", "o-0", "o-1", "o-2"
        ])
    );

    // Once u-5 has finished, g-0 is no longer protected (and g-1 sits beyond the retained one);
    // a second pass with nothing else to do deletes exactly that.
    phase(&ns, "u-5", "Failed", Some("2029-06-01T00:00:00Z"));
    run(&zero);
    assert_eq!(
        names("freight", &ns),
        set(&["f-2", "f-3", "f-4", "f-5", "g-2", "o-0", "o-1", "o-2"])
    );
    // u-5 is now the newest finished; keep 2 → u-4 stays, u-3 goes; u-0 still the last success.
    assert_eq!(
        names("promotions", &ns)
            .into_iter()
            .filter(|n| n.starts_with("u-"))
            .collect::<BTreeSet<_>>(),
        set(&["u-0", "u-4", "u-5"])
    );
    let mut again: Vec<&str> = zero.to_vec();
    again.push("--log-json");
    let log = run(&again);
    let done = events(&log, "garbage collection done");
    assert_eq!(done.len(), 1, "{log}");
    assert_eq!(
        done[0]["deleted"], 0,
        "a pass with nothing to do deleted:\n{log}"
    );
    assert_eq!(done[0]["failed"], 0, "{log}");
}

/// The fields of the JSON log lines whose message is `message`.
fn events(log: &str, message: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(|f| f["message"] == message)
        .collect()
}

#[test]
fn an_object_changed_after_listing_is_not_deleted() {
    let ns = namespace("gc-precondition");
    let mut items = vec![stage(&ns, "dev")];
    items.extend((0..3).map(|i| promotion(&ns, &format!("p-{i}"), "dev", "f")));
    apply(items);
    for i in 0..3 {
        phase(&ns, &format!("p-{i}"), "Failed", None);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = haul_testenv::client_from(&admin()).await.expect("client");
        let snap = haul::gc::snapshot(&client, Some(&ns)).await.expect("list");
        let config = haul::gc::Config {
            max_retained_promotions: 0,
            min_promotion_deletion_age: std::time::Duration::ZERO,
            ..Default::default()
        };
        let plan =
            haul::gc::plan::plan(&config, snap.inputs(), k8s_openapi::jiff::Timestamp::now());
        let planned: Vec<&str> = plan.promotions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(planned, ["p-0", "p-1", "p-2"]);

        // Between planning and deleting: p-0 changes (a new resourceVersion), p-1 is replaced
        // (a new uid), p-2 stays as listed.
        merge_patch(
            "promotion",
            "p-0",
            &ns,
            r#"{"metadata":{"labels":{"touched":"yes"}}}"#,
        )
        .success("label p-0");
        kubectl(&["delete", "promotion", "p-1", "-n", &ns]).success("delete p-1");
        apply(vec![promotion(&ns, "p-1", "dev", "f")]);

        let out = haul::gc::apply(&client, &plan, false).await;
        let deleted: Vec<&str> = out.deleted.iter().map(|d| d.name.as_str()).collect();
        let skipped: Vec<&str> = out.skipped.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(deleted, ["p-2"]);
        assert_eq!(skipped, ["p-0", "p-1"]);
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    });
    assert_eq!(names("promotions", &ns), set(&["p-0", "p-1"]));
}

/// A kubeconfig authenticating as ServiceAccount `sa` of namespace `sa_ns`.
fn service_account_kubeconfig(sa_ns: &str, sa: &str) -> PathBuf {
    let token = kubectl(&["create", "token", sa, "-n", sa_ns, "--duration=1h"]).success("token");
    let admin = std::fs::read_to_string(admin()).expect("kubeconfig");
    let cluster: String = admin
        .lines()
        .take_while(|l| !l.starts_with("users:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let kc = format!(
        "{cluster}users:\n- name: gc\n  user:\n    token: {}\ncontexts:\n- name: gc\n  context:\n    cluster: envtest\n    user: gc\ncurrent-context: gc\n",
        token.stdout.trim()
    );
    let path = support::cp().dir().join(format!("kubeconfig-{sa}"));
    std::fs::write(&path, kc).expect("write");
    path
}

#[test]
fn the_charts_garbage_collector_service_account_can_run_a_pass_and_no_more() {
    let release_ns = namespace("gc-release");
    let items: Vec<Value> = support::helm::render(&release_ns, &[])
        .into_iter()
        .filter(|d| d["metadata"]["name"] == "haul-garbage-collector" && d["kind"] != "CronJob")
        .collect();
    assert_eq!(
        items.len(),
        3,
        "ServiceAccount, ClusterRole, ClusterRoleBinding"
    );
    apply(items);
    let kc = service_account_kubeconfig(&release_ns, "haul-garbage-collector");
    let sa = format!("system:serviceaccount:{release_ns}:haul-garbage-collector");
    for (verb, resource, allowed) in [
        ("delete", "freights.kargo.akuity.io", true),
        ("delete", "promotions.kargo.akuity.io", true),
        ("list", "stages.kargo.akuity.io", true),
        ("delete", "stages.kargo.akuity.io", false),
        ("create", "promotions.kargo.akuity.io", false),
        ("get", "secrets", false),
    ] {
        let out = kubectl(&["auth", "can-i", verb, resource, "--as", &sa, "-A"]);
        assert_eq!(
            out.stdout.trim() == "yes",
            allowed,
            "{verb} {resource}: {}",
            out.stdout
        );
    }

    let ns = namespace("gc-sa");
    let mut items = vec![stage(&ns, "dev"), warehouse(&ns, "w")];
    items.extend((0..3).map(|i| promotion(&ns, &format!("p-{i}"), "dev", "f-0")));
    items.extend((0..3).map(|i| freight(&ns, &format!("f-{i}"), "w")));
    apply(items);
    for i in 0..3 {
        phase(&ns, &format!("p-{i}"), "Failed", None);
    }
    // Cluster-wide, as the CronJob runs, with retention high enough to delete nothing of the
    // other tests sharing this control plane: the lists are allowed.
    let (ok, log) = haul_gc(
        &kc,
        &[
            "--max-retained-promotions",
            "100000",
            "--max-retained-freight",
            "100000",
        ],
    );
    assert!(ok, "cluster-wide pass as the ServiceAccount failed:\n{log}");
    // In the test's namespace, deleting.
    let (ok, log) = haul_gc(
        &kc,
        &[
            "-n",
            &ns,
            "--max-retained-promotions",
            "1",
            "--max-retained-freight",
            "1",
            "--min-promotion-deletion-age",
            "0s",
            "--min-freight-deletion-age",
            "0s",
        ],
    );
    assert!(ok, "pass as the ServiceAccount failed:\n{log}");
    assert!(!log.contains("forbidden"), "{log}");
    assert_eq!(names("promotions", &ns), set(&["p-2"]));
    assert_eq!(names("freight", &ns), set(&["f-2"]));
}
