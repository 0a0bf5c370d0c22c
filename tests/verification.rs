//! Verification with real Argo Rollouts AnalysisRuns: the Stage creates an AnalysisRun from its
//! AnalysisTemplates, Argo Rollouts' analysis controller runs it (a `web` metric asking an HTTP
//! server of this test on 127.0.0.1) and the Stage follows the phase and message Rollouts
//! reports, as Kargo does: Successful verifies the Freight, Failed and Error fail the
//! verification with Rollouts' message, Inconclusive leaves Verified Unknown, and a re-verify
//! starts a new run.
//!
//! The `job` metric provider is not used: a Job needs kube-controller-manager and a node to run
//! its Pod, and the test control plane has neither, so such a run would stay Running.

mod support;

use serde_json::Value;
use support::fixtures::Stage;
use support::rollouts::{MetricServer, rollouts, web_template};
use support::{
    ControllerProcess, get_json, kubectl, kubectl_stdin, merge_patch, namespace, wait_for,
};

/// How long a real AnalysisRun may take to end, and haul to notice (a loaded CI machine).
const RUN_SECS: u64 = 120;

/// The project `ns`: the AnalysisTemplate `web` (unless `template` names another), Warehouse
/// `w`, Freight `f1` and Stage `uat` verified with `template`, the Stage's verification `args`
/// (a flow-style YAML list), and Promotion `p1` of `f1` to `uat`.
fn setup(ns: &str, server: &MetricServer, template: &str, args: &str) {
    let y = format!(
        r#"{web}---
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
    args: {args}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata: {{name: p1, namespace: {ns}}}
spec: {{stage: uat, freight: f1}}
"#,
        web = web_template(ns, "web", server, ""),
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

fn analysis_runs(ns: &str) -> Vec<Value> {
    let out = kubectl(&["get", "analysisruns", "-n", ns, "-o", "json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

/// The AnalysisRun named `name` once Argo Rollouts has ended it.
fn ended_run(ns: &str, name: &str) -> Value {
    wait_for(
        RUN_SECS,
        &format!("Argo Rollouts to end AnalysisRun {name}"),
        || {
            let r = get_json("analysisrun", name, ns)?;
            let phase = r["status"]["phase"].as_str()?;
            (!matches!(phase, "" | "Pending" | "Running")).then_some(r)
        },
    )
}

/// The only AnalysisRun of `ns`, once ended.
fn the_ended_run(ns: &str) -> Value {
    let run = wait_for(60, "an AnalysisRun", || {
        analysis_runs(ns).into_iter().next()
    });
    let name = run["metadata"]["name"].as_str().expect("name").to_string();
    let run = ended_run(ns, &name);
    eprintln!(
        "AnalysisRun {name}: {} {}",
        run["status"]["phase"], run["status"]["message"]
    );
    run
}

/// The Stage's Verified condition once verification has ended (not Pending).
fn verified(ns: &str) -> Value {
    wait_for(RUN_SECS, "verification to end", || {
        let s = get_json("stage", "uat", ns)?;
        s["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Verified" && c["reason"] != "Pending")
            .cloned()
    })
}

fn last_verification(ns: &str) -> Value {
    get_json("stage", "uat", ns).expect("stage")["status"]["freightHistory"][0]
        ["verificationHistory"][0]
        .clone()
}

fn verified_in(ns: &str) -> Value {
    get_json("freight", "f1", ns).expect("freight")["status"]["verifiedIn"]["uat"].clone()
}

fn event_reasons(ns: &str) -> Vec<String> {
    let out = kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

fn wait_event(ns: &str, reason: &str) {
    wait_for(60, &format!("a {reason} Event"), || {
        event_reasons(ns).iter().any(|r| r == reason).then_some(())
    });
}

#[test]
fn real_analysis_runs_decide_verification() {
    let rollouts = rollouts();
    let server = MetricServer::start();
    server.set_switch("fail");
    let _c = ControllerProcess::start(&support::cp().dir().join("work"));

    // Every project first, so their runs go on side by side.
    let ok = namespace("verify-ok");
    setup(
        &ok,
        &server,
        "web",
        "[{name: service, value: my-app}, {name: outcome, value: ok}]",
    );
    let fail = namespace("verify-fail");
    setup(
        &fail,
        &server,
        "web",
        "[{name: service, value: my-app}, {name: outcome, value: fail}]",
    );
    let unsure = namespace("verify-unsure");
    setup(
        &unsure,
        &server,
        "web",
        "[{name: service, value: my-app}, {name: outcome, value: unsure}]",
    );
    // No value for the template's `service`: Rollouts cannot resolve it and errs.
    let error = namespace("verify-error");
    setup(&error, &server, "web", "[{name: outcome, value: ok}]");
    let again = namespace("verify-again");
    setup(
        &again,
        &server,
        "web",
        "[{name: service, value: again}, {name: outcome, value: switch}]",
    );
    let missing = namespace("verify-missing");
    setup(&missing, &server, "nope", "[]");

    // Successful: Rollouts asked the server with the Stage's arguments; the Freight is verified.
    let run = the_ended_run(&ok);
    assert_eq!(run["status"]["phase"], "Successful", "{run:#}");
    assert_eq!(run["metadata"]["labels"]["kargo.akuity.io/stage"], "uat");
    assert!(run["metadata"]["labels"]["kargo.akuity.io/freight-collection"].is_string());
    assert_eq!(run["status"]["metricResults"][0]["name"], "web");
    assert!(
        server.requests().iter().any(|r| r == "/ok?service=my-app"),
        "{:?}",
        server.requests()
    );
    let c = verified(&ok);
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&"True".into(), &"Verified".into()),
        "{c:#}"
    );
    wait_for(30, "verifiedIn", || {
        verified_in(&ok).is_object().then_some(())
    });
    assert_eq!(last_verification(&ok)["phase"], "Successful");
    wait_event(&ok, "FreightVerificationSucceeded");

    // Failed: the verification fails with Rollouts' own message; the Freight is not verified.
    let run = the_ended_run(&fail);
    assert_eq!(run["status"]["phase"], "Failed", "{run:#}");
    let rollouts_message = run["status"]["message"]
        .as_str()
        .expect("a message")
        .to_string();
    assert!(rollouts_message.contains("web"), "{run:#}");
    let c = verified(&fail);
    assert_eq!(c["status"], "False", "{c:#}");
    assert_eq!(c["reason"], "VerificationFailed");
    assert_eq!(c["message"], rollouts_message.as_str());
    let v = last_verification(&fail);
    assert_eq!(
        (&v["phase"], &v["message"]),
        (&"Failed".into(), &rollouts_message.clone().into())
    );
    assert_eq!(v["analysisRun"]["phase"], "Failed");
    assert!(verified_in(&fail).is_null());
    wait_event(&fail, "FreightVerificationFailed");

    // Inconclusive (neither condition held): as Kargo, Verified stays Unknown, not verified.
    let run = the_ended_run(&unsure);
    assert_eq!(run["status"]["phase"], "Inconclusive", "{run:#}");
    let c = verified(&unsure);
    assert_eq!(c["status"], "Unknown", "{c:#}");
    assert_eq!(c["reason"], "VerificationInconclusive");
    assert_eq!(c["message"], run["status"]["message"]);
    assert_eq!(last_verification(&unsure)["phase"], "Inconclusive");
    assert!(verified_in(&unsure).is_null());
    wait_event(&unsure, "FreightVerificationInconclusive");

    // Error: an argument without a value is Rollouts' error, and Kargo's VerificationError.
    let run = the_ended_run(&error);
    assert_eq!(run["status"]["phase"], "Error", "{run:#}");
    let c = verified(&error);
    assert_eq!(c["status"], "False", "{c:#}");
    assert_eq!(c["reason"], "VerificationError");
    assert_eq!(c["message"], run["status"]["message"]);
    assert!(verified_in(&error).is_null());
    wait_event(&error, "FreightVerificationErrored");

    // Re-verify: the first run fails; once the service answers ok, a reverify request naming
    // that verification starts a second run, which verifies the Freight.
    let first = the_ended_run(&again);
    assert_eq!(first["status"]["phase"], "Failed", "{first:#}");
    assert_eq!(verified(&again)["reason"], "VerificationFailed");
    let id = last_verification(&again)["id"]
        .as_str()
        .expect("id")
        .to_string();
    server.set_switch("ok");
    merge_patch(
        "stage",
        "uat",
        &again,
        &serde_json::json!({"metadata": {"annotations": {"kargo.akuity.io/reverify": id}}})
            .to_string(),
    )
    .success("reverify");
    let second = wait_for(60, "a second AnalysisRun", || {
        analysis_runs(&again)
            .into_iter()
            .find(|r| r["metadata"]["name"] != first["metadata"]["name"])
    });
    let second = ended_run(&again, second["metadata"]["name"].as_str().expect("name"));
    assert_eq!(second["status"]["phase"], "Successful", "{second:#}");
    wait_for(RUN_SECS, "Verified after the re-verification", || {
        let v = last_verification(&again);
        (v["id"] != id.as_str() && v["phase"] == "Successful").then_some(())
    });
    wait_for(30, "verifiedIn", || {
        verified_in(&again).is_object().then_some(())
    });
    assert_eq!(analysis_runs(&again).len(), 2);

    // A missing template is an errored verification naming it, not a hang (no run is created).
    let c = verified(&missing);
    assert_eq!(c["reason"], "VerificationError", "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .contains("AnalysisTemplate nope does not exist"),
        "{c:#}"
    );
    assert!(analysis_runs(&missing).is_empty());

    // Rollouts' own account of the runs, on its loopback metrics port.
    let metrics = http_get(&rollouts.metrics_url());
    assert!(metrics.contains("analysis_run_info"), "{metrics}");
}

/// The body of a GET on loopback, through curl (the test crate has no HTTP client of its own).
fn http_get(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
