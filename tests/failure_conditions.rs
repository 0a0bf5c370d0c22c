//! Failures reach the object (issue 13): when the API server refuses what the controller
//! decided, the object says so — a condition with the API server's message, a Warning Event,
//! the error metric — the rest of its status is still written, and the failure clears itself
//! once the refusal ends. Real control plane, real `haul controller` process running as its own
//! user, and real ValidatingAdmissionPolicies refusing that user.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fixtures::Stage;
use support::{
    ControllerProcess, cp, get_json, kubectl, kubectl_as, kubectl_stdin, merge_patch, namespace,
    wait_for,
};

/// The user the controller of this binary authenticates as (all permissions, like a
/// cluster-admin ServiceAccount); the policies below refuse exactly this user.
const CONTROLLER_USER: &str = "haul-failures-controller";

/// How long recovery may take once a refusal ends: the Stage's retry backoff is capped at
/// 30 s (±20%), plus the time the API server takes to drop the policy.
const RECOVERY_BOUND: Duration = Duration::from_secs(60);

fn controller_kubeconfig() -> PathBuf {
    cp().user_kubeconfig(CONTROLLER_USER, Some("system:masters"))
        .expect("controller kubeconfig")
}

/// The one controller of this binary.
fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let kc = controller_kubeconfig();
        let dir = cp().dir().join("work-failures");
        std::sync::Mutex::new(ControllerProcess::start_with_env(
            &dir,
            &[("KUBECONFIG", &kc.to_string_lossy())],
        ))
    })
}

fn with_controller<T>(f: impl FnOnce(&mut ControllerProcess) -> T) -> T {
    f(&mut controller().lock().unwrap_or_else(|e| e.into_inner()))
}

fn apply(yaml: &str) {
    kubectl_stdin(&["apply", "-f", "-"], yaml).success("kubectl apply");
}

fn apply_json(v: &Value) {
    kubectl_stdin(&["apply", "-f", "-"], &v.to_string()).success("kubectl apply");
}

/// A policy (and its binding, both named `name`) refusing creates of `resource` of
/// kargo.akuity.io in namespace `ns` when the controller's user sends them.
fn refuse(ns: &str, name: &str, resource: &str, message: &str) {
    refuse_op(ns, name, "CREATE", resource, message)
}

/// [`refuse`] for `operation` (UPDATE covers patches, e.g. of `promotions/status`).
fn refuse_op(ns: &str, name: &str, operation: &str, resource: &str, message: &str) {
    apply_json(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["kargo.akuity.io"], "apiVersions": ["*"],
                "operations": [operation], "resources": [resource]
            }]},
            "validations": [{
                "expression": format!("request.userInfo.username != '{CONTROLLER_USER}'"),
                "message": message,
                "reason": "Forbidden"
            }]
        }
    }));
    apply_json(&json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": ns
            }}}
        }
    }));
}

/// Waits until the API server applies the policy: a server-side dry run of `object` as the
/// controller's user is refused with `message`.
fn wait_until_refused(object: &Value, message: &str) {
    let kc = controller_kubeconfig();
    wait_for(30, "the admission policy to be in force", || {
        let out = kubectl_as(
            &kc,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&object.to_string()),
        );
        (!out.ok && out.stderr.contains(message)).then_some(())
    });
}

/// Waits until the policy no longer applies (the same dry run is accepted).
fn wait_until_accepted(object: &Value) {
    let kc = controller_kubeconfig();
    wait_for(30, "the admission policy to be lifted", || {
        let out = kubectl_as(
            &kc,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&object.to_string()),
        );
        out.ok.then_some(())
    });
}

/// A Warehouse that exists (so Stages naming it are sound) and never discovers anything.
fn idle_warehouse(ns: &str) {
    apply(&format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  namespace: {ns}\nspec:\n  interval: 1h\n  freightCreationPolicy: Manual\n  subscriptions:\n  - image:\n      repoURL: localhost:1/nothing\n"
    ));
}

fn freight(ns: &str, name: &str) {
    apply(&format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: {name}\n  namespace: {ns}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: example.com/app, tag: \"{name}\", digest: \"sha256:{name}\"}}\n"
    ));
}

/// Stage `dev` taking Freight from `w` directly, with one `compose-output` step (its
/// Promotions succeed at once), auto-promoted by the project's ProjectConfig.
fn auto_promoted_dev(ns: &str) {
    apply(
        &Stage {
            ns,
            name: "dev",
            warehouse: "w",
            sources: "{direct: true}",
            template: "      steps:\n      - uses: compose-output\n        as: out\n        config:\n          stage: dev\n",
        }
        .yaml(),
    );
    apply(&format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata:\n  name: {ns}\n  namespace: {ns}\nspec:\n  promotionPolicies:\n  - stageSelector: {{name: dev}}\n    autoPromotionEnabled: true\n"
    ));
}

/// (status, reason, message) of condition `type_` of object `kind/name`.
fn condition(kind: &str, name: &str, ns: &str, type_: &str) -> Option<(String, String, String)> {
    let o = get_json(kind, name, ns)?;
    let c = o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        c["status"].as_str()?.into(),
        c["reason"].as_str()?.into(),
        c["message"].as_str()?.into(),
    ))
}

/// Warning Events with `reason` about object `name`, as `kubectl get events` shows them.
fn warnings(ns: &str, name: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={name},reason={reason},type=Warning");
    let out = kubectl(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &selector,
        "-o",
        "json",
    ])
    .success("get events");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the Promotions of `freight`.
fn promotions_of(ns: &str, freight: &str) -> Vec<String> {
    let out = kubectl(&["get", "promotions", "-n", ns, "-o", "json"]).success("get promotions");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| p["spec"]["freight"] == freight)
                .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn generations(ns: &str, name: &str) -> (i64, i64) {
    let s = get_json("stage", name, ns).expect("stage");
    (
        s["metadata"]["generation"].as_i64().unwrap_or(-1),
        s["status"]["observedGeneration"].as_i64().unwrap_or(-1),
    )
}

#[test]
fn a_refused_auto_promotion_shows_on_the_stage_and_clears_once_allowed() {
    let ns = namespace("refused-auto");
    let policy = format!("refuse-promotions-{ns}");
    let message = format!("{CONTROLLER_USER} may not create Promotions here (policy {policy})");
    refuse(&ns, &policy, "promotions", &message);
    let probe = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": {"stage": "dev", "freight": "f1"}
    });
    wait_until_refused(&probe, &message);
    with_controller(|_| ());
    idle_warehouse(&ns);
    auto_promoted_dev(&ns);
    freight(&ns, "f1");

    // Refused: Ready says which Freight could not be promoted and what the API server said.
    let (status, _, shown) = wait_for(60, "Ready=False AutoPromotionFailed on dev", || {
        condition("stage", "dev", &ns, "Ready").filter(|(_, r, _)| r == "AutoPromotionFailed")
    });
    assert_eq!(status, "False");
    assert!(
        shown.starts_with("creating a Promotion for Freight f1 failed: ")
            && shown.contains(&message),
        "Ready's message: {shown}"
    );
    assert!(promotions_of(&ns, "f1").is_empty());
    let events = wait_for(30, "a Warning Event AutoPromotionFailed", || {
        Some(warnings(&ns, "dev", "AutoPromotionFailed")).filter(|e| !e.is_empty())
    });
    assert!(events[0].contains(&message), "{events:?}");
    let metrics = wait_for(10, "the error metric", || {
        with_controller(|c| c.http_get("/metrics")).map(|(_, body)| body)
    });
    assert!(
        metrics.contains(
            "haul_reconcile_errors_total{controller=\"stage\",reason=\"AutoPromotionFailed\"}"
        ),
        "{metrics}"
    );

    // A spec change is observed while the refusal lasts.
    let (before, _) = generations(&ns, "dev");
    merge_patch(
        "stage",
        "dev",
        &ns,
        r#"{"spec":{"vars":[{"name":"x","value":"1"}]}}"#,
    )
    .success("change dev's spec");
    wait_for(30, "observedGeneration to follow the spec change", || {
        let (g, observed) = generations(&ns, "dev");
        (g > before && observed == g).then_some(())
    });
    let (_, reason, _) = condition("stage", "dev", &ns, "Ready").expect("Ready");
    assert_eq!(reason, "AutoPromotionFailed", "still refused");

    // Lifted: f1 is auto-promoted once, and Ready no longer shows the failure.
    kubectl(&["delete", "validatingadmissionpolicybinding", &policy]).success("delete binding");
    let lifted = Instant::now();
    wait_until_accepted(&probe);
    wait_for(
        RECOVERY_BOUND.as_secs(),
        "f1 auto-promoted and Ready cleared",
        || {
            let current = get_json("stage", "dev", &ns)?["status"]["freightHistory"][0]["items"]
            ["Warehouse/w"]["name"]
            .as_str()
            .map(String::from);
            let (_, reason, _) = condition("stage", "dev", &ns, "Ready")?;
            (current.as_deref() == Some("f1") && reason != "AutoPromotionFailed").then_some(())
        },
    );
    let recovery = lifted.elapsed();
    println!(
        "refused auto-promotion: recovered {:.1} s after the policy binding was deleted (bound {} s)",
        recovery.as_secs_f64(),
        RECOVERY_BOUND.as_secs()
    );
    let (status, reason, _) = wait_for(30, "dev Ready", || {
        condition("stage", "dev", &ns, "Ready").filter(|(s, _, _)| s == "True")
    });
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Ready"));
    assert_eq!(
        promotions_of(&ns, "f1").len(),
        1,
        "exactly one Promotion of f1"
    );
    kubectl(&["delete", "validatingadmissionpolicy", &policy]).success("delete policy");
}

/// Pushes `repo:tag` to the test registry (anonymous).
fn push(registry: &str, repo: &str, tag: &str) {
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/push-image.sh"))
        .args([registry, repo, tag])
        .output()
        .expect("push-image");
    assert!(
        out.status.success(),
        "push {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_refused_freight_create_shows_on_the_warehouse_and_clears_once_allowed() {
    let registry = support::services::services()
        .var("HAUL_TEST_REGISTRY")
        .to_string();
    let ns = namespace("refused-freight");
    let repo = format!("{ns}/app");
    push(&registry, &repo, "1.0.0");
    let policy = format!("refuse-freight-{ns}");
    let message = format!("{CONTROLLER_USER} may not create Freight here (policy {policy})");
    refuse(&ns, &policy, "freights", &message);
    let probe = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
        "metadata": {"name": "probe", "namespace": ns},
        "origin": {"kind": "Warehouse", "name": "w"},
        "images": [{"repoURL": "example.com/app", "tag": "1", "digest": "sha256:1"}]
    });
    wait_until_refused(&probe, &message);
    with_controller(|_| ());
    apply(&format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata:\n  name: w\n  namespace: {ns}\nspec:\n  interval: 10m\n  subscriptions:\n  - image:\n      repoURL: {registry}/{repo}\n"
    ));

    let (status, _, shown) = wait_for(60, "Ready=False FreightCreateFailed on w", || {
        condition("warehouse", "w", &ns, "Ready").filter(|(_, r, _)| r == "FreightCreateFailed")
    });
    assert_eq!(status, "False");
    assert!(
        shown.starts_with("creating Freight ") && shown.contains(&message),
        "Ready's message: {shown}"
    );
    // What discovery found, and the generation it saw, are written all the same.
    let w = get_json("warehouse", "w", &ns).expect("warehouse");
    assert_eq!(
        w["status"]["observedGeneration"],
        w["metadata"]["generation"]
    );
    assert_eq!(
        w["status"]["discoveredArtifacts"]["images"][0]["references"][0]["tag"],
        "1.0.0"
    );
    assert!(support::freight_list(&ns).is_empty());
    wait_for(30, "a Warning Event FreightCreateFailed", || {
        Some(warnings(&ns, "w", "FreightCreateFailed")).filter(|e| !e.is_empty())
    });

    kubectl(&["delete", "validatingadmissionpolicybinding", &policy]).success("delete binding");
    let lifted = Instant::now();
    wait_until_accepted(&probe);
    wait_for(
        RECOVERY_BOUND.as_secs(),
        "Freight created and Ready cleared",
        || {
            let (_, reason, _) = condition("warehouse", "w", &ns, "Ready")?;
            (support::freight_list(&ns).len() == 1 && reason == "Ready").then_some(())
        },
    );
    println!(
        "refused Freight create: recovered {:.1} s after the policy binding was deleted (bound {} s)",
        lifted.elapsed().as_secs_f64(),
        RECOVERY_BOUND.as_secs()
    );
    kubectl(&["delete", "validatingadmissionpolicy", &policy]).success("delete policy");
}

#[test]
fn a_refused_promotion_status_write_is_reported_on_the_promotion() {
    let ns = namespace("refused-status");
    let policy = format!("refuse-promotion-status-{ns}");
    let message = format!("{CONTROLLER_USER} may not write Promotion status here ({policy})");
    refuse_op(&ns, &policy, "UPDATE", "promotions/status", &message);
    with_controller(|_| ());
    idle_warehouse(&ns);
    apply(
        &Stage {
            ns: &ns,
            name: "dev",
            warehouse: "w",
            sources: "{direct: true}",
            template: "      steps:\n      - uses: compose-output\n        as: out\n        config:\n          stage: dev\n",
        }
        .yaml(),
    );
    freight(&ns, "f1");
    // In force once an admin's status write as the controller's user is refused; a Promotion
    // the controller has not seen yet serves as the probe.
    let kc = controller_kubeconfig();
    apply(&support::fixtures::promotion_yaml(
        &ns, "probe", "nowhere", "f1",
    ));
    wait_for(30, "the admission policy to be in force", || {
        let out = kubectl_as(
            &kc,
            &[
                "patch",
                "promotion",
                "probe",
                "-n",
                &ns,
                "--subresource=status",
                "--type=merge",
                "--dry-run=server",
                "-p",
                r#"{"status":{"message":"probe"}}"#,
            ],
            None,
        );
        (!out.ok && out.stderr.contains(&message)).then_some(())
    });
    apply(&support::fixtures::promotion_yaml(&ns, "p1", "dev", "f1"));

    let events = wait_for(60, "a Warning Event StatusWriteFailed on p1", || {
        Some(warnings(&ns, "p1", "StatusWriteFailed")).filter(|e| !e.is_empty())
    });
    assert!(
        events[0].contains("writing the Promotion's status") && events[0].contains(&message),
        "{events:?}"
    );

    kubectl(&["delete", "validatingadmissionpolicybinding", &policy]).success("delete binding");
    let lifted = Instant::now();
    let p = wait_for(RECOVERY_BOUND.as_secs(), "p1 to succeed", || {
        get_json("promotion", "p1", &ns).filter(|p| p["status"]["phase"] == "Succeeded")
    });
    println!(
        "refused Promotion status write: recovered {:.1} s after the policy binding was deleted (bound {} s)",
        lifted.elapsed().as_secs_f64(),
        RECOVERY_BOUND.as_secs()
    );
    let shown = p["status"]["message"].as_str().unwrap_or_default();
    assert!(!shown.starts_with("Retrying after an error"), "{shown}");
    kubectl(&["delete", "validatingadmissionpolicy", &policy]).success("delete policy");
}
