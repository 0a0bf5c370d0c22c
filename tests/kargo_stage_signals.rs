//! Kargo's Stage signals against the real control plane, with haul installed as the chart
//! installs it (its Promotion webhook in force): verification arguments evaluated, the abort
//! and reverify annotations, the refresh token echoed, auto-promotion holds in
//! `status.autoPromotionHolds`, the Stage label on Promotions and Kargo's event annotations.
//! AnalysisRuns are run by the real Argo Rollouts analysis controller.

mod support;

use serde_json::Value;
use support::fixtures::Stage;
use support::installed;
use support::rollouts::{MetricServer, rollouts};
use support::{get_json, kubectl, kubectl_stdin, merge_patch, namespace, wait_for};

/// Real Argo Rollouts and the installed controller, once per test binary.
fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        rollouts();
        installed::controller(&[]);
    });
}

const TEMPLATE: &str = "      steps: [{uses: compose-output, config: {done: \"yes\"}}]\n";

/// A Warehouse `w` and its Freight, each `(name, tag)` discovered on day `tag` of 2026.
fn warehouse_and_freight(ns: &str, freight: &[(&str, &str)]) -> String {
    let mut y = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: w, namespace: {ns}}}\nspec:\n  interval: 100h\n  subscriptions: [{{image: {{repoURL: 127.0.0.1:9/none}}}}]\n"
    );
    for (name, tag) in freight {
        let day = tag.chars().next().unwrap_or('1');
        y.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{name: {name}, namespace: {ns}}}\norigin: {{kind: Warehouse, name: w}}\ndiscoveredAt: \"2026-01-0{day}T00:00:00Z\"\nimages: [{{repoURL: example.com/app, tag: \"{tag}\", digest: \"sha256:{tag}\"}}]\n"
        ));
    }
    y
}

fn analysis_runs(ns: &str) -> Vec<Value> {
    let out = kubectl(&["get", "analysisruns", "-n", ns, "-o", "json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn stage(ns: &str, name: &str) -> Value {
    get_json("stage", name, ns).expect("stage")
}

fn last_verification(ns: &str) -> Option<Value> {
    stage(ns, "uat")["status"]["freightHistory"][0]["verificationHistory"][0]
        .as_object()
        .map(|o| Value::Object(o.clone()))
}

fn annotate(kind: &str, name: &str, ns: &str, key: &str, value: &str) {
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    merge_patch(kind, name, ns, &patch.to_string()).success("annotate");
}

fn events(ns: &str) -> Vec<Value> {
    let out = kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn event(ns: &str, reason: &str) -> Option<Value> {
    events(ns).into_iter().find(|e| e["reason"] == reason)
}

#[test]
fn verification_args_abort_reverify_refresh_and_events() {
    setup();
    let server = MetricServer::start();
    let ns = namespace("signals-verify");
    // The metric waits 10 minutes before its first measurement: the run stays Running long
    // enough to be aborted.
    let y = format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: smoke, namespace: {ns}}}
spec:
  args: [{{name: service}}, {{name: where}}, {{name: fixed}}]
  metrics:
  - name: smoke-test
    initialDelay: 10m
    successCondition: result.status == "ok"
    provider: {{web: {{url: "{url}/ok?service={{{{args.service}}}}", jsonPath: "{{$}}"}}}}
---
{w}---
{stage}  vars: [{{name: env, value: "${{{{ ctx.stage }}}}-env"}}]
  verification:
    analysisTemplates: [{{name: smoke}}]
    args:
    - {{name: service, value: "app-${{{{ imageFrom('example.com/app').Tag }}}}"}}
    - {{name: where, value: "${{{{ ctx.project }}}}/${{{{ vars.env }}}}"}}
    - {{name: fixed, value: "42"}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata: {{name: p1, namespace: {ns}}}
spec: {{stage: uat, freight: f1}}
"#,
        w = warehouse_and_freight(&ns, &[("f1", "1.2.3")]),
        url = server.url(),
        stage = Stage {
            ns: &ns,
            name: "uat",
            warehouse: "w",
            sources: "{direct: true}",
            template: TEMPLATE,
        }
        .yaml(),
    );
    kubectl_stdin(&["apply", "-f", "-"], &y).success("objects");

    // The webhook labels a Promotion created with kubectl with its Stage.
    let p1 = get_json("promotion", "p1", &ns).expect("p1");
    assert_eq!(
        p1["metadata"]["labels"]["kargo.akuity.io/stage"], "uat",
        "{p1:#}"
    );
    assert_eq!(
        p1["metadata"]["annotations"]["kargo.akuity.io/stage"],
        "uat"
    );

    // Arguments evaluated: ctx, vars and the Freight's image.
    let run = wait_for(90, "an AnalysisRun", || {
        analysis_runs(&ns).into_iter().next()
    });
    let args: Vec<(String, String)> = run["spec"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_string(),
                a["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        args.contains(&("service".into(), "app-1.2.3".into())),
        "{args:?}"
    );
    assert!(
        args.contains(&("where".into(), format!("{ns}/uat-env"))),
        "{args:?}"
    );
    assert!(args.contains(&("fixed".into(), "42".into())), "{args:?}");

    // Kargo's annotations on the Promotion's Events.
    let e = wait_for(60, "a PromotionSucceeded Event", || {
        event(&ns, "PromotionSucceeded")
    });
    let a = &e["metadata"]["annotations"];
    assert_eq!(a["event.kargo.akuity.io/promotion-name"], "p1", "{e:#}");
    assert_eq!(a["event.kargo.akuity.io/stage-name"], "uat");
    assert_eq!(a["event.kargo.akuity.io/freight-name"], "f1");
    assert_eq!(a["event.kargo.akuity.io/project"], ns.as_str());
    // The Promotion's creator, as the webhook recorded it.
    assert_eq!(
        a["event.kargo.akuity.io/actor"],
        p1["metadata"]["annotations"]["kargo.akuity.io/create-actor"]
    );
    assert!(
        a["event.kargo.akuity.io/freight-images"]
            .as_str()
            .is_some_and(|s| s.contains("1.2.3")),
        "{e:#}"
    );

    // Abort: the AnalysisRun is terminated and the verification fails with Kargo's message.
    let running = wait_for(60, "a running verification", || {
        last_verification(&ns).filter(|v| v["phase"] == "Running")
    });
    let id = running["id"].as_str().expect("id").to_string();
    // `haul abort verification` writes Kargo's request naming the running verification.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_haul"))
        .env("KUBECONFIG", support::cp().kubeconfig())
        .args(["abort", "verification", "uat", "-n", &ns])
        .output()
        .expect("haul runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let request = get_json("stage", "uat", &ns).expect("stage")["metadata"]["annotations"]
        ["kargo.akuity.io/abort"]
        .as_str()
        .map(str::to_string)
        .expect("abort annotation");
    let request: Value = serde_json::from_str(&request).expect("a JSON request");
    assert_eq!(request["id"], id.as_str());
    let run_name = run["metadata"]["name"].as_str().expect("name").to_string();
    wait_for(60, "spec.terminate on the AnalysisRun", || {
        (get_json("analysisrun", &run_name, &ns)?["spec"]["terminate"] == true).then_some(())
    });
    // Argo Rollouts ends a terminated run Successful; as Kargo, the verification is failed
    // nonetheless (the run's phase is not read again).
    let terminated = wait_for(90, "Argo Rollouts to end the terminated run", || {
        get_json("analysisrun", &run_name, &ns).filter(|r| r["status"]["phase"] == "Successful")
    });
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    let aborted = wait_for(60, "the verification aborted", || {
        last_verification(&ns).filter(|v| v["phase"] == "Failed")
    });
    assert_eq!(aborted["message"], "Verification aborted by user");
    let verified = wait_for(30, "Verified=False", || {
        stage(&ns, "uat")["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Verified" && c["status"] == "False" && c["reason"] != "Pending")
            .cloned()
    });
    assert_eq!(verified["message"], "Verification aborted by user");
    assert_eq!(
        last_verification(&ns).expect("last")["phase"],
        "Failed",
        "{terminated:#}"
    );
    assert!(get_json("freight", "f1", &ns).expect("f1")["status"]["verifiedIn"].is_null());
    let e = wait_for(30, "a FreightVerificationFailed Event", || {
        event(&ns, "FreightVerificationFailed")
    });
    assert_eq!(
        e["metadata"]["annotations"]["event.kargo.akuity.io/analysis-run-name"],
        run_name.as_str()
    );

    // Reverify in Kargo's request form: a new verification with a new AnalysisRun.
    annotate(
        "stage",
        "uat",
        &ns,
        "kargo.akuity.io/reverify",
        &format!(r#"{{"id":"{id}","actor":"kubernetes:alice"}}"#),
    );
    let again = wait_for(60, "a second verification", || {
        last_verification(&ns).filter(|v| v["id"] != id.as_str() && v["phase"] == "Running")
    });
    assert_eq!(again["actor"], "kubernetes:alice");
    wait_for(30, "a second AnalysisRun", || {
        (analysis_runs(&ns).len() == 2).then_some(())
    });

    // The refresh token is echoed once handled.
    annotate("stage", "uat", &ns, "kargo.akuity.io/refresh", "token-1");
    wait_for(30, "lastHandledRefresh", || {
        (stage(&ns, "uat")["status"]["lastHandledRefresh"] == "token-1").then_some(())
    });
}

#[test]
fn a_manual_rollback_holds_auto_promotion_in_kargos_status_fields() {
    setup();
    let ns = namespace("signals-hold");
    let y = format!(
        "{w}---\n{stage}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {{name: {ns}, namespace: {ns}}}\nspec:\n  promotionPolicies: [{{stageSelector: {{name: dev}}, autoPromotionEnabled: true}}]\n",
        w = warehouse_and_freight(&ns, &[("old", "1"), ("new", "2")]),
        stage = Stage {
            ns: &ns,
            name: "dev",
            warehouse: "w",
            sources: "{direct: true}",
            template: TEMPLATE,
        }
        .yaml(),
    );
    kubectl_stdin(&["apply", "-f", "-"], &y).success("objects");
    let current = |ns: &str| {
        stage(ns, "dev")["status"]["freightHistory"][0]["items"]["Warehouse/w"]["name"]
            .as_str()
            .map(str::to_string)
    };
    let promote = |name: &str, freight: &str| {
        let y = format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{stage: dev, freight: {freight}}}\n"
        );
        kubectl_stdin(&["apply", "-f", "-"], &y).success("promote");
    };
    // The newest Freight by hand: nothing held.
    promote("first", "new");
    wait_for(90, "the newest Freight in dev", || {
        (current(&ns).as_deref() == Some("new")).then_some(())
    });
    assert!(stage(&ns, "dev")["status"]["autoPromotionHolds"].is_null());
    // A rollback to older Freight by hand, a second later: held.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    promote("rollback", "old");
    let holds = wait_for(90, "a hold", || {
        let s = stage(&ns, "dev");
        let h = s["status"]["autoPromotionHolds"]["Warehouse/w"].clone();
        (h.is_object() && current(&ns).as_deref() == Some("old")).then_some(s)
    });
    let h = &holds["status"]["autoPromotionHolds"]["Warehouse/w"];
    assert_eq!(h["freightName"], "old", "{holds:#}");
    assert_eq!(h["promotionName"], "rollback");
    assert!(
        h["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("kubernetes:")),
        "{holds:#}"
    );
    assert_eq!(h["origin"]["name"], "w");
    assert_eq!(
        holds["status"]["effectiveAutoPromotionHolds"]["Warehouse/w"],
        *h
    );
    let ready = holds["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or_default();
    assert_eq!(ready["reason"], "AutoPromotionHeld", "{holds:#}");
    // Promoting the newest by hand resumes: the hold is gone.
    promote("resume", "new");
    wait_for(90, "the hold released", || {
        let s = stage(&ns, "dev");
        (s["status"]["autoPromotionHolds"].is_null()
            && s["status"]["effectiveAutoPromotionHolds"].is_null()
            && current(&ns).as_deref() == Some("new"))
        .then_some(())
    });
}
