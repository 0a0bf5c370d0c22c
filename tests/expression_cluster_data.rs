//! `secret`, `configMap`, `sharedSecret` and `sharedConfigMap` in promotion steps, end to end:
//! a real control plane and a real `haul controller` process configured with a shared resources
//! namespace. Values reach the step's output, and never the controller's log.

mod support;

use support::fixtures::{Stage, promotion_yaml};
use support::{ControllerProcess, get_json, kubectl_stdin, namespace, wait_for};

const SHARED_NS: &str = "haul-shared-expr-data";
const TOKEN: &str = "tok-5ecret-do-not-log-81f3";
const GENERIC: &str = "gen-5ecret-do-not-log-22c7";
const HIDDEN: &str = "cred-5ecret-do-not-log-9a0e";

fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = support::cp().dir().join("work-expression-cluster-data");
        std::sync::Mutex::new(ControllerProcess::start_with_env(
            &dir,
            &[("SHARED_RESOURCES_NAMESPACE", SHARED_NS)],
        ))
    })
}

const FREIGHT: &str = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f1\n  namespace: NS\norigin:\n  kind: Warehouse\n  name: my-app\nimages:\n- repoURL: example.com/my-app\n  tag: \"1.0.0\"\n  digest: sha256:1000\n";

const STEPS: &str = r#"      - uses: compose-output
        as: read
        config:
          token: ${{ secret('creds').token }}
          missingSecret: ${{ len(secret('no-such')) }}
          region: ${{ configMap('settings').region }}
          shared: ${{ sharedConfigMap('common').k }}
          generic: ${{ sharedSecret('generic').token }}
          notGeneric: ${{ len(sharedSecret('git-creds')) }}
"#;

#[test]
fn promotion_steps_read_secrets_and_config_maps_without_logging_them() {
    let _ = controller();
    let ns = namespace("expr-data");
    let objects = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {SHARED_NS}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{token: {TOKEN}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{region: eu-west-1}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: common, namespace: {SHARED_NS}}}
data: {{k: shared-value}}
---
apiVersion: v1
kind: Secret
metadata:
  name: generic
  namespace: {SHARED_NS}
  labels: {{kargo.akuity.io/cred-type: generic}}
stringData: {{token: {GENERIC}}}
---
apiVersion: v1
kind: Secret
metadata:
  name: git-creds
  namespace: {SHARED_NS}
  labels: {{kargo.akuity.io/cred-type: git}}
stringData: {{password: {HIDDEN}}}
"#
    );
    kubectl_stdin(&["apply", "-f", "-"], &objects).success("secrets and config maps");
    kubectl_stdin(&["apply", "-f", "-"], &FREIGHT.replace("NS", &ns)).success("freight");
    let stage = Stage {
        ns: &ns,
        name: "dev",
        warehouse: "my-app",
        sources: "{direct: true}",
        template: &format!("      steps:\n{STEPS}"),
    }
    .yaml();
    kubectl_stdin(&["apply", "-f", "-"], &stage).success("stage");
    kubectl_stdin(
        &["apply", "-f", "-"],
        &promotion_yaml(&ns, "p1", "dev", "f1"),
    )
    .success("promotion");
    let status = wait_for(90, "Promotion p1 to finish", || {
        let p = get_json("promotion", "p1", &ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase)
            .then(|| p["status"].clone())
    });
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    assert_eq!(
        status["state"]["read"],
        serde_json::json!({
            "token": TOKEN,
            // A missing object is an empty map.
            "missingSecret": 0,
            "region": "eu-west-1",
            "shared": "shared-value",
            "generic": GENERIC,
            // Kargo's sharedSecret sees only generic credentials.
            "notGeneric": 0,
        }),
        "{status:#}"
    );
    let log = controller().lock().expect("controller").log_text();
    for value in [TOKEN, GENERIC, HIDDEN] {
        assert!(!log.contains(value), "the controller logged a secret value");
    }
}
