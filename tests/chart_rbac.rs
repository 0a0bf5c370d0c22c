//! The controller authenticated as the chart's ServiceAccount, bound by exactly the chart's
//! RBAC (and under its admission policies): a promotion — an automatic one into dev — succeeds
//! end to end, a Project gets its namespace and default roles, and the ServiceAccount can do
//! nothing the controller does not need.

mod support;

use serde_json::{Value, json};
use support::fixtures::{GitopsTemplate, Stage, git_credentials_secret};
use support::gitops::seed_gitops;
use support::helm::render;
use support::services::services;
use support::{ControllerProcess, get_json, kubectl, kubectl_stdin, wait_for};

const NS: &str = "haul-system";
const SA: &str = "system:serviceaccount:haul-system:haul";

/// Applies the chart's ServiceAccount, RBAC and admission policies (not its Deployment: the
/// controller runs here as a process with the ServiceAccount's token).
fn install_chart_rbac() {
    kubectl(&["create", "namespace", NS]).success("namespace");
    let kinds = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];
    let items: Vec<Value> = render(NS, &[])
        .into_iter()
        .filter(|d| d["kind"].as_str().is_some_and(|k| kinds.contains(&k)))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success("chart RBAC");
}

/// A kubeconfig that authenticates with a token of the chart's ServiceAccount.
fn service_account_kubeconfig() -> std::path::PathBuf {
    let token = kubectl(&["create", "token", "haul", "-n", NS, "--duration=1h"]).success("token");
    let admin = std::fs::read_to_string(support::cp().kubeconfig()).expect("kubeconfig");
    let cluster: String = admin
        .lines()
        .take_while(|l| !l.starts_with("users:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let kc = format!(
        "{cluster}users:\n- name: envtest\n  user:\n    token: {}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: envtest\n    namespace: {NS}\ncurrent-context: envtest\n",
        token.stdout.trim()
    );
    let path = support::cp().dir().join("kubeconfig-sa");
    std::fs::write(&path, kc).expect("write");
    path
}

fn can_i(verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(format!("--subresource={s}"))),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", SA];
    if let Some(s) = &sub {
        args.push(s);
    }
    match ns {
        Some(n) => args.extend(["-n", n]),
        None => args.push("--all-namespaces"),
    }
    kubectl(&args).stdout.trim() == "yes"
}

#[test]
fn the_controller_works_with_exactly_the_charts_rbac() {
    install_chart_rbac();
    // Not broader than needed.
    for (verb, resource) in [
        ("create", "deployments"),
        ("create", "pods"),
        ("delete", "secrets"),
        ("create", "secrets"),
        ("update", "stages.kargo.akuity.io"),
        ("delete", "freights.kargo.akuity.io"),
        ("create", "clusterrolebindings"),
        ("create", "roles"),
        ("escalate", "roles"),
        ("escalate", "clusterroles"),
        ("bind", "clusterroles"),
        ("update", "namespaces"),
        ("create", "serviceaccounts/token"),
    ] {
        assert!(
            !can_i(verb, resource, None),
            "the chart lets haul {verb} {resource}"
        );
    }
    // Enough for what it does.
    for (verb, resource) in [
        ("list", "secrets"),
        ("create", "freights.kargo.akuity.io"),
        ("patch", "freights.kargo.akuity.io"),
        ("create", "promotions.kargo.akuity.io"),
        ("patch", "stages.kargo.akuity.io/status"),
        ("patch", "applications.argoproj.io"),
        ("promote", "stages.kargo.akuity.io"),
        // Projects: the finalizer and status, the namespace, Kargo's default roles.
        ("patch", "projects.kargo.akuity.io"),
        ("patch", "projects.kargo.akuity.io/status"),
        ("create", "namespaces"),
        ("patch", "namespaces"),
        ("delete", "namespaces"),
        ("create", "serviceaccounts"),
        ("create", "rolebindings"),
    ] {
        assert!(
            can_i(verb, resource, None),
            "the chart does not let haul {verb} {resource}"
        );
    }
    // `bind` on exactly the ClusterRoles of the default project roles, nothing else.
    let can_bind = |role: &str| {
        kubectl(&[
            "auth",
            "can-i",
            "bind",
            &format!("clusterroles/{role}"),
            "--as",
            SA,
            "-n",
            "rbac-project",
        ])
        .stdout
        .trim()
            == "yes"
    };
    for role in ["haul-admin", "haul-promoter", "haul-viewer"] {
        assert!(can_bind(role), "the chart does not let haul bind {role}");
    }
    for role in ["cluster-admin", "admin", "edit"] {
        assert!(!can_bind(role), "the chart lets haul bind {role}");
    }
    assert!(can_i("create", "leases.coordination.k8s.io", Some(NS)));
    assert!(!can_i(
        "create",
        "leases.coordination.k8s.io",
        Some("default")
    ));

    // The reference flow, with the controller running as the chart's ServiceAccount.
    let kubeconfig = service_account_kubeconfig();
    let mut controller = ControllerProcess::start_with_env(
        &support::cp().dir().join("work-sa"),
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("POD_NAMESPACE", NS),
        ],
    );
    let (url, _) = seed_gitops("rbac");
    let s = services();
    let ns = "rbac-project";
    let reg = s.var("HAUL_TEST_REGISTRY");
    let image = format!("{reg}/{ns}/app");
    let template = GitopsTemplate {
        repo_url: &url,
        overlay: "apps/my-app-service1/env/dev",
        image: &image,
        image_name: "my-app-service",
        argocd_app: None,
    }
    .yaml();
    let y = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {ns}, labels: {{kargo.akuity.io/project: "true"}}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {{name: {ns}}}
---
{secret}---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  promotionPolicies:
  - stageSelector: {{name: dev}}
    autoPromotionEnabled: true
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: my-app, namespace: {ns}}}
spec:
  interval: 100h
  subscriptions:
  - image: {{repoURL: "{image}"}}
---
{stage}"#,
        secret = git_credentials_secret(ns, "git", &url),
        stage = Stage {
            ns,
            name: "dev",
            warehouse: "my-app",
            sources: "{direct: true}",
            template: &template,
        }
        .yaml(),
    );
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/push-image.sh"))
        .args([reg, &format!("{ns}/app"), "2.0.0"])
        .output()
        .expect("push");
    assert!(out.status.success());
    kubectl_stdin(&["apply", "-f", "-"], &y).success("project");

    // Discovery → Freight → an automatic Promotion (allowed by the promote verb the chart
    // grants) → a commit, all as the ServiceAccount.
    let promotion = wait_for(90, "an automatic promotion of dev to succeed", || {
        let out = kubectl(&["get", "promotions", "-n", ns, "-o", "json"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|p| p["status"]["phase"] == "Succeeded")
            .cloned()
    });
    assert_eq!(
        promotion["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "controller:haul-controller"
    );
    wait_for(60, "dev to be verified", || {
        let st = get_json("stage", "dev", ns)?;
        st["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Verified" && c["status"] == "True")
            .then_some(())
    });
    // The Project adopted its labelled namespace and got Kargo's default roles, all as the
    // ServiceAccount.
    wait_for(30, "the Project to be Ready with its default roles", || {
        let p = kubectl(&["get", "project", ns, "-o", "json"]);
        let p: Value = serde_json::from_str(&p.stdout).ok()?;
        let ready = p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let bound = ["kargo-admin", "kargo-promoter", "kargo-viewer"]
            .iter()
            .all(|rb| get_json("rolebinding", rb, ns).is_some());
        (ready && bound).then_some(())
    });
    let log = controller.log_text();
    assert!(
        !log.contains("forbidden"),
        "the controller hit a permission error:\n{log}"
    );
    assert!(controller.running());
}
