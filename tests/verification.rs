//! Verification with Argo Rollouts AnalysisRuns: the Stage creates an AnalysisRun from its
//! AnalysisTemplates and follows its phase, which the test sets the way Argo Rollouts would.

mod support;

use serde_json::Value;
use support::fixtures::Stage;
use support::{
    ControllerProcess, get_json, kubectl, kubectl_stdin, merge_patch, namespace, wait_for,
};

/// A minimal namespaced argoproj.io/v1alpha1 CRD of any fields, enough for the API.
fn argoproj_crd(kind: &str, plural: &str) -> String {
    let singular = kind.to_lowercase();
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.argoproj.io}}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"#
    )
}

fn setup(ns: &str, template: &str) {
    let y = format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: smoke, namespace: {ns}}}
spec:
  args: [{{name: service}}]
  metrics:
  - name: smoke-test
    provider: {{job: {{spec: {{template: {{spec: {{containers: [{{name: t, image: curl}}], restartPolicy: Never}}}}}}}}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: w, namespace: {ns}}}
spec:
  interval: 100h
  subscriptions: [{{image: {{repoURL: 127.0.0.1:9/none}}}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata: {{name: f1, namespace: {ns}}}
origin: {{kind: Warehouse, name: w}}
images: [{{repoURL: example.com/app, tag: "1", digest: "sha256:1"}}]
---
{stage}  verification:
    analysisTemplates: [{{name: {template}}}]
    args: [{{name: service, value: my-app}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata: {{name: p1, namespace: {ns}}}
spec: {{stage: uat, freight: f1}}
"#,
        // The Stage's spec goes on after its promotion template, with `verification`.
        stage = Stage {
            ns,
            name: "uat",
            warehouse: "w",
            sources: "{direct: true}",
            template: "      steps: [{uses: compose-output, config: {done: \"yes\"}}]\n",
        }
        .yaml(),
    );
    kubectl_stdin(&["apply", "-f", "-"], &y).success("objects");
}

fn analysis_run(ns: &str) -> Value {
    wait_for(60, "an AnalysisRun", || {
        let out = kubectl(&["get", "analysisruns", "-n", ns, "-o", "json"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["items"].as_array()?.first().cloned()
    })
}

fn verified(ns: &str) -> Option<Value> {
    let s = get_json("stage", "uat", ns)?;
    s["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Verified" && c["reason"] != "Pending")
        .cloned()
}

#[test]
fn analysis_runs_decide_verification() {
    let crds = format!(
        "{}---\n{}",
        argoproj_crd("AnalysisTemplate", "analysistemplates"),
        argoproj_crd("AnalysisRun", "analysisruns")
    );
    kubectl_stdin(&["apply", "-f", "-"], &crds).success("rollouts CRDs");
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/analysisruns.argoproj.io",
        "crd/analysistemplates.argoproj.io",
    ])
    .success("established");
    let _c = ControllerProcess::start(&support::cp().dir().join("work"));

    // Successful run → verified.
    let ns = namespace("verify-ok");
    setup(&ns, "smoke");
    let run = analysis_run(&ns);
    assert_eq!(run["metadata"]["labels"]["kargo.akuity.io/stage"], "uat");
    assert!(run["metadata"]["labels"]["kargo.akuity.io/freight-collection"].is_string());
    assert_eq!(run["spec"]["metrics"][0]["name"], "smoke-test");
    assert_eq!(run["spec"]["args"][0]["value"], "my-app");
    let st = get_json("stage", "uat", &ns).expect("stage");
    assert!(
        get_json("freight", "f1", &ns).expect("f")["status"]["verifiedIn"]["uat"].is_null(),
        "{st:#}"
    );
    let name = run["metadata"]["name"].as_str().expect("name").to_string();
    merge_patch(
        "analysisrun",
        &name,
        &ns,
        r#"{"status":{"phase":"Successful"}}"#,
    )
    .success("rollouts reports");
    let c = wait_for(60, "Verified", || verified(&ns));
    assert_eq!(c["status"], "True", "{c:#}");
    wait_for(30, "verifiedIn", || {
        get_json("freight", "f1", &ns)?["status"]["verifiedIn"]["uat"]
            .is_object()
            .then_some(())
    });

    // Failed run → not verified, and the Stage says why.
    let ns = namespace("verify-fail");
    setup(&ns, "smoke");
    let name = analysis_run(&ns)["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    merge_patch(
        "analysisrun",
        &name,
        &ns,
        r#"{"status":{"phase":"Failed","message":"smoke-test failed 3 times"}}"#,
    )
    .success("rollouts reports");
    let c = wait_for(60, "VerificationFailed", || verified(&ns));
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "VerificationFailed");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("smoke-test failed 3 times"),
        "{c:#}"
    );
    assert!(get_json("freight", "f1", &ns).expect("f")["status"]["verifiedIn"]["uat"].is_null());

    // A missing template is a failed verification naming it, not a hang.
    let ns = namespace("verify-missing");
    setup(&ns, "nope");
    let c = wait_for(60, "VerificationFailed", || verified(&ns));
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("AnalysisTemplate nope does not exist"),
        "{c:#}"
    );
}
