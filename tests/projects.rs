//! Projects own their namespace, against the real kube-apiserver: a `haul controller` process
//! serves the chart's admission webhooks (registered from the real helm render, pointed at
//! loopback) and reconciles. One `kubectl apply -f dir/` of a Project and its Warehouse, Stages
//! and PromotionTask succeeds; an unlabelled namespace is not adopted (refused at admission, and
//! reported in status when the webhook is not in the way); deleting a Project deletes its
//! namespace unless it is to be kept; Kargo's default roles exist and mean what they say under
//! haul's admission policies; stats follow the Stages.
//!
//! The test control plane runs no kube-controller-manager, so a deleted namespace stays
//! Terminating here with its objects; in a cluster the namespace controller then deletes every
//! Stage, Freight and Promotion in it.

mod support;

use serde_json::{Value, json};
use support::installed::{self, SKIP_WEBHOOK};
use support::{Outcome, get_json, kubectl, kubectl_stdin, wait_for};

fn apply(objects: Vec<Value>, what: &str) -> Outcome {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success(what)
}

/// The controller installed as the chart installs it (webhooks, policies, user roles), with
/// deleted default roles coming back within 2 s (60 s by default).
fn setup() {
    installed::controller(&[("HAUL_PROJECT_RESYNC", "2")]);
}

fn project(name: &str) -> Value {
    json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project",
           "metadata": {"name": name}})
}

fn namespace_of(name: &str) -> Option<Value> {
    let out = kubectl(&["get", "namespace", name, "-o", "json"]);
    out.ok
        .then(|| serde_json::from_str(&out.stdout).ok())
        .flatten()
}

fn project_json(name: &str) -> Option<Value> {
    let out = kubectl(&["get", "project", name, "-o", "json"]);
    out.ok
        .then(|| serde_json::from_str(&out.stdout).ok())
        .flatten()
}

fn condition(p: &Value, type_: &str) -> Option<(String, String, String)> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

fn wait_ready(name: &str) -> Value {
    wait_for(30, &format!("Project {name} to be Ready"), || {
        let p = project_json(name)?;
        (condition(&p, "Ready")?.0 == "True").then_some(p)
    })
}

fn stage(ns: &str, name: &str, sources: Value) -> String {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": sources}],
            "promotionTemplate": {"spec": {"steps": [{"task": {"name": "deploy"}}]}}
        }
    })
    .to_string()
}

fn freight(ns: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
        "metadata": {"name": "f1", "namespace": ns},
        "origin": {"kind": "Warehouse", "name": "app"},
        "images": [{"repoURL": "registry.example.com/app", "tag": "1.0.0", "digest": "sha256:aaaa"}]
    })
}

/// A directory as a user keeps it: the Project first, then its namespaced objects.
fn project_dir(ns: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        (
            "00-project.yaml",
            format!(
                "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: {ns}\n"
            ),
        ),
        (
            "10-warehouse.yaml",
            format!(
                "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: app\n  namespace: {ns}\nspec:\n  interval: 100h\n  subscriptions:\n  - image:\n      repoURL: registry.invalid/app\n"
            ),
        ),
        (
            "20-promotiontask.yaml",
            format!(
                "apiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask\nmetadata:\n  name: deploy\n  namespace: {ns}\nspec:\n  steps:\n  - uses: git-clone\n"
            ),
        ),
        ("30-dev.json", stage(ns, "dev", json!({"direct": true}))),
        (
            "31-prod.json",
            stage(ns, "prod", json!({"stages": ["dev"]})),
        ),
    ];
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).expect("write manifest");
    }
    dir
}

#[test]
fn one_apply_creates_the_project_namespace_and_everything_in_it() {
    setup();
    let ns = "one-apply";
    let dir = project_dir(ns);
    let d = format!("{}/", dir.path().display());
    let out = kubectl(&["apply", "-f", &d]).success("one kubectl apply -f dir/");
    for created in [
        "project.kargo.akuity.io/one-apply created",
        "warehouse.kargo.akuity.io/app created",
        "promotiontask.kargo.akuity.io/deploy created",
        "stage.kargo.akuity.io/dev created",
        "stage.kargo.akuity.io/prod created",
    ] {
        assert!(out.stdout.contains(created), "{created}:\n{}", out.stdout);
    }
    let n = namespace_of(ns).expect("the project namespace");
    assert_eq!(n["metadata"]["labels"]["kargo.akuity.io/project"], "true");
    // Created by the webhook while the Project was admitted, not by the reconciler afterwards.
    let managers = kubectl(&[
        "get",
        "namespace",
        ns,
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        managers
            .stdout
            .split_whitespace()
            .any(|m| m == "haul-admission"),
        "namespace managers: {}",
        managers.stdout
    );
    assert!(
        n["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "kargo.akuity.io/finalizer")),
        "{n}"
    );
    let p = wait_ready(ns);
    assert!(
        p["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "kargo.akuity.io/finalizer")),
        "{p}"
    );
    // Applying again changes nothing.
    let again = kubectl(&["apply", "-f", &d]).success("second apply");
    assert!(!again.stdout.contains(" created"), "{}", again.stdout);
}

#[test]
fn an_unlabelled_namespace_is_not_adopted() {
    setup();
    let ns = "someone-elses";
    kubectl(&["create", "namespace", ns]).success("an unlabelled namespace");
    // The webhook refuses the Project, naming the namespace.
    kubectl_stdin(&["create", "-f", "-"], &project(ns).to_string()).refused_with(
        "a Project over an unlabelled namespace",
        &[
            "Namespace \"someone-elses\"",
            "not labeled as a Project namespace",
        ],
    );
    // Without the webhook the Project is created and says why it cannot be used.
    let mut p = project(ns);
    p["metadata"]["labels"] = json!({SKIP_WEBHOOK: "true"});
    kubectl_stdin(&["create", "-f", "-"], &p.to_string()).success("the Project, webhook skipped");
    let (status, reason, message) = wait_for(30, "Ready=False on the Project", || {
        let p = project_json(ns)?;
        condition(&p, "Ready").filter(|c| c.0 == "False")
    });
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ExistingNamespaceMissingLabel")
    );
    assert!(message.contains("\"someone-elses\""), "{message}");
    let events = kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        "reason=ExistingNamespaceMissingLabel",
        "-o",
        "name",
    ]);
    assert!(!events.stdout.trim().is_empty(), "no Warning Event");
    let n = namespace_of(ns).expect("namespace");
    assert!(n["metadata"]["finalizers"].is_null(), "not adopted: {n}");

    // Labelled by its owner: adopted.
    kubectl(&["label", "namespace", ns, "kargo.akuity.io/project=true"]).success("label");
    wait_ready(ns);
    let n = namespace_of(ns).expect("namespace");
    assert_eq!(n["metadata"]["finalizers"][0], "kargo.akuity.io/finalizer");
}

#[test]
fn deleting_a_project_deletes_its_namespace_unless_kept() {
    setup();
    for (ns, keep) in [("doomed", false), ("kept", true)] {
        let mut p = project(ns);
        if keep {
            p["metadata"]["annotations"] = json!({"kargo.akuity.io/keep-namespace": "true"});
        }
        apply(vec![p], "a Project");
        wait_ready(ns);
        apply(vec![freight(ns)], "a Freight in the project");
        kubectl(&["delete", "project", ns, "--timeout=30s"]).success("delete the Project");
        assert!(project_json(ns).is_none(), "the Project is gone");
        let n = namespace_of(ns).expect("the namespace object");
        if keep {
            assert!(n["metadata"]["deletionTimestamp"].is_null(), "kept: {n}");
            assert!(n["metadata"]["finalizers"].is_null(), "released: {n}");
            assert!(get_json("freight", "f1", ns).is_some(), "its Freight stays");
        } else {
            // Deleted; the namespace controller of a real cluster then deletes its Freight.
            assert!(
                !n["metadata"]["deletionTimestamp"].is_null(),
                "deleting: {n}"
            );
            assert!(n["metadata"]["finalizers"].is_null(), "released: {n}");
        }
    }
}

/// `kubectl --as=<service account> create -f -` of a Promotion of f1 to `stage`.
fn promote_as(sa: &str, ns: &str, name: &str, stage: &str) -> Outcome {
    let p = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"stage": stage, "freight": "f1", "steps": [{"uses": "git-clone"}]}
    });
    kubectl_stdin(
        &[
            &format!("--as=system:serviceaccount:{ns}:{sa}"),
            "create",
            "-f",
            "-",
        ],
        &p.to_string(),
    )
}

#[test]
fn default_roles_let_the_promoter_promote_and_the_viewer_only_look() {
    setup();
    let ns = "roles";
    apply(vec![project(ns)], "a Project");
    wait_ready(ns);
    for name in ["kargo-admin", "kargo-promoter", "kargo-viewer"] {
        wait_for(
            30,
            &format!("ServiceAccount and RoleBinding {name}"),
            || {
                let sa = get_json("serviceaccount", name, ns)?;
                let rb = get_json("rolebinding", name, ns)?;
                assert_eq!(
                    sa["metadata"]["annotations"]["rbac.kargo.akuity.io/managed"],
                    "true"
                );
                (rb["subjects"][0]["name"] == name).then_some(())
            },
        );
    }
    // The controller owns them: a deleted one comes back, a changed subject is put back.
    kubectl(&["delete", "rolebinding", "kargo-viewer", "-n", ns]).success("delete a RoleBinding");
    kubectl(&["delete", "serviceaccount", "kargo-viewer", "-n", ns]).success("delete an SA");
    kubectl(&[
        "patch",
        "rolebinding",
        "kargo-promoter",
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/subjects/0/name","value":"someone"}]"#,
    ])
    .success("change a subject");
    wait_for(30, "the default roles to be restored", || {
        get_json("serviceaccount", "kargo-viewer", ns)?;
        get_json("rolebinding", "kargo-viewer", ns)?;
        let rb = get_json("rolebinding", "kargo-promoter", ns)?;
        (rb["subjects"][0]["name"] == "kargo-promoter").then_some(())
    });
    kubectl_stdin(
        &["apply", "-f", "-"],
        &stage(ns, "prod", json!({"direct": true})),
    )
    .success("a Stage");
    apply(vec![freight(ns)], "a Freight");

    // A probe allowed to create Promotions but to promote nowhere shows when haul's policies
    // are in force; from then on the promoter's Promotion passes them.
    let probe = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "probe", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "probe"},
        "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": ns}],
    });
    let probe_role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "probe"},
        "rules": [{"apiGroups": ["kargo.akuity.io"], "resources": ["promotions"], "verbs": ["create"]}],
    });
    apply(vec![probe_role, probe], "a probe without promote");
    let mut n = 0;
    wait_for(30, "haul's admission policies to refuse the probe", || {
        n += 1;
        let out = promote_as("probe", ns, &format!("probe-{n}"), "prod");
        out.stderr
            .contains("may not promote to Stage prod")
            .then_some(())
    });

    promote_as("kargo-promoter", ns, "by-promoter", "prod").success("the promoter promotes");
    promote_as("kargo-viewer", ns, "by-viewer", "prod")
        .refused_with("the viewer promotes", &["forbidden"]);
    let as_viewer = format!("--as=system:serviceaccount:{ns}:kargo-viewer");
    kubectl(&[&as_viewer, "get", "stages", "-n", ns]).success("the viewer reads Stages");
    kubectl(&[&as_viewer, "delete", "stage", "prod", "-n", ns])
        .refused_with("the viewer deletes a Stage", &["forbidden"]);
    let as_admin = format!("--as=system:serviceaccount:{ns}:kargo-admin");
    kubectl_stdin(
        &[&as_admin, "apply", "-f", "-"],
        &stage(ns, "uat", json!({"direct": true})),
    )
    .success("the admin creates a Stage");
}

#[test]
fn stats_count_the_projects_stages_and_warehouses() {
    setup();
    let ns = "stats";
    let dir = project_dir(ns);
    kubectl(&["apply", "-f", &format!("{}/", dir.path().display())]).success("apply");
    let stats = wait_for(30, "stats of 2 Stages and 1 Warehouse", || {
        let p = project_json(ns)?;
        let s = p["status"]["stats"].clone();
        (s["stages"]["count"] == 2 && s["warehouses"]["count"] == 1).then_some(s)
    });
    // Healthy counts are what the Stages themselves report.
    let healthy = ["dev", "prod"]
        .iter()
        .filter(|s| {
            get_json("stage", s, ns).is_some_and(|st| {
                st["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Healthy" && c["status"] == "True")
                })
            })
        })
        .count();
    assert_eq!(
        stats["stages"]["health"]["healthy"].as_u64().unwrap_or(0),
        healthy as u64,
        "{stats}"
    );
    // A third Stage is counted without touching the Project.
    kubectl_stdin(
        &["apply", "-f", "-"],
        &stage(ns, "uat", json!({"direct": true})),
    )
    .success("a third Stage");
    wait_for(30, "stats of 3 Stages", || {
        let p = project_json(ns)?;
        (p["status"]["stats"]["stages"]["count"] == 3).then_some(())
    });
    // And a deleted one stops being counted (well before the periodic resync).
    kubectl(&["delete", "stage", "uat", "-n", ns]).success("delete a Stage");
    wait_for(15, "stats of 2 Stages again", || {
        let p = project_json(ns)?;
        (p["status"]["stats"]["stages"]["count"] == 2).then_some(())
    });
}

#[test]
fn without_the_webhook_the_reconciler_creates_the_namespace() {
    setup();
    let ns = "no-webhook";
    let mut p = project(ns);
    p["metadata"]["labels"] = json!({SKIP_WEBHOOK: "true"});
    kubectl_stdin(&["create", "-f", "-"], &p.to_string()).success("the Project, webhook skipped");
    let n = wait_for(10, "the reconciler to create the namespace", || {
        namespace_of(ns)
    });
    assert_eq!(n["metadata"]["labels"]["kargo.akuity.io/project"], "true");
    let managers = kubectl(&[
        "get",
        "namespace",
        ns,
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        managers
            .stdout
            .split_whitespace()
            .any(|m| m == "haul-controller"),
        "namespace managers: {}",
        managers.stdout
    );
    wait_ready(ns);
}

/// A Promotion naming a Stage or Freight that does not exist is refused when it is created,
/// with what is missing, instead of failing later and degrading its Stage (as Kargo's webhook).
#[test]
fn a_promotion_naming_a_missing_stage_or_freight_is_refused() {
    setup();
    let ns = "refs-checked";
    apply(vec![project(ns)], "the Project");
    wait_ready(ns);
    kubectl_stdin(
        &["apply", "-f", "-"],
        &stage(ns, "dev", json!({"direct": true})),
    )
    .success("a Stage");
    apply(vec![freight(ns)], "Freight f1");
    let promotion = |name: &str, stage: &str, freight: &str| {
        json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"stage": stage, "freight": freight}
        })
        .to_string()
    };
    kubectl_stdin(
        &["create", "-f", "-"],
        &promotion("typo-freight", "dev", "f2"),
    )
    .refused_with(
        "a Promotion of missing Freight",
        &["Freight \"f2\" does not exist in project \"refs-checked\""],
    );
    kubectl_stdin(
        &["create", "-f", "-"],
        &promotion("typo-stage", "deev", "f1"),
    )
    .refused_with(
        "a Promotion to a missing Stage",
        &["Stage \"deev\" does not exist in project \"refs-checked\""],
    );
    kubectl_stdin(&["create", "-f", "-"], &promotion("fine", "dev", "f1"))
        .success("a Promotion of existing Freight to an existing Stage");
}
