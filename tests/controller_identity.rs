//! The controller checks at start that it runs as the identity haul's admission policies expect
//! (the chart's ServiceAccount), against the real kube-apiserver with the policies rendered by
//! the real helm: started as another user (a client certificate) it says plainly that its
//! auto-promotions will be refused — an error log line, a Warning Event on its Lease, the gauge
//! `haul_identity_mismatch` and a line on /healthz and /readyz; started as the expected
//! identity it says nothing.

mod support;

use std::sync::OnceLock;

use serde_json::{Value, json};
use support::helm::render;
use support::{ControllerProcess, cp, kubectl, kubectl_stdin, namespace, wait_for};

/// Applies the chart's admission policies and bindings once (release namespace `haul`, so they
/// expect `system:serviceaccount:haul:haul`).
fn install_policies() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let items: Vec<Value> = render("haul", &[])
            .into_iter()
            .filter(|d| {
                matches!(
                    d["kind"].as_str(),
                    Some("ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding")
                )
            })
            .collect();
        assert_eq!(items.len(), 6, "three policies and three bindings expected");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success("admission policies");
    });
}

fn apply(objects: Vec<Value>, what: &str) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    kubectl_stdin(&["apply", "-f", "-"], &list.to_string()).success(what);
}

/// Starts `haul controller` authenticating with `kubeconfig`, without leader election, its
/// Events about the Lease in `ns`.
fn start(kubeconfig: &std::path::Path, ns: &str) -> ControllerProcess {
    ControllerProcess::start_with_env(
        &cp().dir().join(format!("work-{ns}")),
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("HAUL_LEADER_ELECT", "false"),
            ("POD_NAMESPACE", ns),
        ],
    )
}

fn body(c: &ControllerProcess, path: &str) -> Option<(u16, String)> {
    c.http_get(path)
}

const EXPECTED: &str = "the installed admission policy haul-create-actor expects the controller \
                        to be system:serviceaccount:haul:haul, but it runs as haul-admin: its \
                        auto-promotions will be refused";

#[test]
fn a_controller_running_as_another_user_says_its_auto_promotions_will_be_refused() {
    install_policies();
    let ns = namespace("identity-mismatch");
    // haul-admin may do everything (as a person's admin kubeconfig would) — but it is not the
    // identity the policies name.
    apply(
        vec![json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "haul-admin-is-cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "haul-admin", "apiGroup": "rbac.authorization.k8s.io"}],
        })],
        "haul-admin RBAC",
    );
    let kc = cp()
        .user_kubeconfig("haul-admin", None)
        .expect("haul-admin kubeconfig");
    let mut c = start(&kc, &ns);

    let (code, text) = wait_for(60, "/healthz to name the identity mismatch", || {
        body(&c, "/healthz").filter(|(_, b)| b.contains("haul-create-actor"))
    });
    assert_eq!(
        code, 200,
        "a mismatch is said, not a liveness failure: {text}"
    );
    assert!(text.contains(EXPECTED), "{text}");
    let (code, text) = body(&c, "/readyz").expect("/readyz answers");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(EXPECTED), "{text}");
    let (_, metrics) = body(&c, "/metrics").expect("/metrics answers");
    assert!(
        metrics.contains("haul_identity_mismatch 1"),
        "gauge not set:\n{metrics}"
    );
    let log = c.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(EXPECTED)),
        "no error log line:\n{log}"
    );
    let event = wait_for(30, "a Warning Event on the Lease", || {
        let out = kubectl(&["get", "events.events.k8s.io", "-n", &ns, "-o", "json"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "IdentityMismatch")
            .cloned()
    });
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "Lease");
    assert_eq!(event["regarding"]["name"], "haul-controller");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains(EXPECTED),
        "{event:#}"
    );
    assert!(
        c.running(),
        "the controller keeps running:\n{}",
        c.log_text()
    );
}

#[test]
fn a_controller_running_as_the_charts_service_account_says_nothing() {
    install_policies();
    let ns = namespace("identity-match");
    // The chart's controller RBAC, bound to the ServiceAccount the policies name; the controller
    // authenticates as that username with a client certificate.
    let rbac: Vec<Value> = render("haul", &[])
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding")
            ) && d["metadata"]["name"] == "haul-controller"
        })
        .collect();
    assert_eq!(rbac.len(), 2);
    apply(rbac, "the chart's controller RBAC");
    let kc = cp()
        .user_kubeconfig(
            "system:serviceaccount:haul:haul",
            Some("system:serviceaccounts"),
        )
        .expect("kubeconfig");
    // KUBECONFIG is a colon-separated list: the file needs a name without the username's colons.
    let plain = cp().dir().join("kubeconfig-haul-sa");
    std::fs::copy(&kc, &plain).expect("copy kubeconfig");
    let mut c = start(&plain, &ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !c
        .log_text()
        .contains("identity check: every installed haul admission policy expects")
    {
        assert!(
            std::time::Instant::now() < deadline && c.running(),
            "the identity check did not report a match:\n{}",
            c.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, text) = body(&c, "/healthz").expect("/healthz answers");
    assert_eq!((code, text.as_str()), (200, "ok\n"));
    let (_, metrics) = body(&c, "/metrics").expect("/metrics answers");
    assert!(metrics.contains("haul_identity_mismatch 0"), "{metrics}");
    let log = c.log_text();
    assert!(log.contains("system:serviceaccount:haul:haul"), "{log}");
    assert!(!log.contains("mismatch"), "{log}");
    assert!(c.running(), "{log}");
}
