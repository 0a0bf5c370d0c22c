//! The Stage reconciler end to end (Kargo reference §2.4, §4, §5), with a real control plane
//! and one real `haul controller` process shared by every test of this binary: health from
//! Argo CD Applications (Degraded, stale, a health check record it cannot run), verification, availability through upstream Stages
//! (OneOf / All, soak time, approval), auto-promotion and its guards and holds, problems in the
//! Stage graph, and what `kubectl get/describe stage` show.
//!
//! Most tests use "cheap" Stages whose template is a single `compose-output` step: their
//! Promotions succeed at once, leave no health checks, and so verify straight away.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fixtures::{
    GitopsTemplate, Stage, argocd_application_yaml, argocd_synced_with, git_credentials_secret,
    promotion_yaml,
};
use support::gitops::seed_dev_overlay;
use support::{
    ControllerProcess, get_json, git, kubectl, kubectl_stdin, merge_patch_status, namespace,
    wait_for,
};

const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

/// The one controller of this binary; two would both reconcile everything.
fn controller() -> &'static std::sync::Mutex<ControllerProcess> {
    static C: std::sync::OnceLock<std::sync::Mutex<ControllerProcess>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = support::cp().dir().join("work-stages");
        std::sync::Mutex::new(ControllerProcess::start(&dir))
    })
}

fn controller_log() -> String {
    controller()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .log_text()
}

/// A fresh namespace with the controller running and a Warehouse `w` in it.
fn project(prefix: &str) -> String {
    let _ = controller();
    let ns = namespace(prefix);
    apply(&warehouse_yaml(&ns, "w"));
    ns
}

fn apply(yaml: &str) {
    kubectl_stdin(&["apply", "-f", "-"], yaml).success("kubectl apply");
}

/// A Warehouse that exists (so Stages naming it are sound) and never creates Freight itself.
fn warehouse_yaml(ns: &str, name: &str) -> String {
    format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: {name}
  namespace: {ns}
spec:
  interval: 1h
  freightCreationPolicy: Manual
  subscriptions:
  - image:
      repoURL: localhost:1/nothing
"#
    )
}

/// Freight from Warehouse `w`; `discovered` is its `discoveredAt`.
fn freight_yaml(ns: &str, name: &str, discovered: Option<&str>) -> String {
    let at = discovered
        .map(|d| format!("discoveredAt: \"{d}\"\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: {name}
  namespace: {ns}
origin: {{kind: Warehouse, name: w}}
{at}images:
- {{repoURL: {ECR}, tag: "{name}", digest: "sha256:{name}"}}
"#
    )
}

/// A Stage whose only step is `compose-output`; `sources` is the flow-style YAML map of
/// `requestedFreight[0].sources`.
fn cheap_stage_yaml(ns: &str, name: &str, sources: &str) -> String {
    Stage {
        ns,
        name,
        warehouse: "w",
        sources,
        template: &format!(
            "      steps:\n      - uses: compose-output\n        as: out\n        config:\n          stage: {name}\n"
        ),
    }
    .yaml()
}

/// A ProjectConfig turning auto-promotion on for Stages matching each name selector.
fn auto_promotion_yaml(ns: &str, stage_names: &[&str]) -> String {
    let policies: String = stage_names
        .iter()
        .map(|s| format!("  - stageSelector: {{name: \"{s}\"}}\n    autoPromotionEnabled: true\n"))
        .collect();
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata:\n  name: {ns}\n  namespace: {ns}\nspec:\n  promotionPolicies:\n{policies}"
    )
}

/// A Promotion as a person creates it (no create-actor annotation).
fn promote(ns: &str, name: &str, stage: &str, freight: &str) {
    apply(&promotion_yaml(ns, name, stage, freight));
}

/// Waits until the Promotion is terminal; returns its status.
fn finished(ns: &str, name: &str) -> Value {
    wait_for(60, &format!("Promotion {name} to finish"), || {
        let p = get_json("promotion", name, ns)?;
        let phase = p["status"]["phase"].as_str()?;
        ["Succeeded", "Failed", "Errored", "Aborted"]
            .contains(&phase)
            .then(|| p["status"].clone())
    })
}

fn succeeded(ns: &str, name: &str) {
    let s = finished(ns, name);
    assert_eq!(s["phase"], "Succeeded", "Promotion {name}: {s:#}");
}

fn list(kind: &str, ns: &str) -> Vec<Value> {
    let out = kubectl(&["get", kind, "-n", ns, "-o", "json"]).success("list");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The Promotions of `stage` for `freight`, oldest first.
fn promotions_of(ns: &str, stage: &str, freight: &str) -> Vec<Value> {
    let mut ps: Vec<Value> = list("promotions", ns)
        .into_iter()
        .filter(|p| p["spec"]["stage"] == stage && p["spec"]["freight"] == freight)
        .collect();
    ps.sort_by_key(|p| {
        (
            p["metadata"]["creationTimestamp"]
                .as_str()
                .map(str::to_string),
            p["metadata"]["name"].as_str().map(str::to_string),
        )
    });
    ps
}

/// The names of all Promotions of `stage`.
fn promotion_names(ns: &str, stage: &str) -> std::collections::BTreeSet<String> {
    list("promotions", ns)
        .iter()
        .filter(|p| p["spec"]["stage"] == stage)
        .map(name_of)
        .collect()
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits for an auto-promotion of `freight` to `stage`, checks it is the controller's, and
/// waits for it to succeed; returns its name.
fn auto_promoted(ns: &str, stage: &str, freight: &str) -> String {
    let p = wait_for(
        60,
        &format!("an auto-promotion of {freight} to {stage}"),
        || promotions_of(ns, stage, freight).into_iter().next(),
    );
    assert_eq!(
        p["metadata"]["annotations"]["kargo.akuity.io/create-actor"], "controller:haul-controller",
        "{p:#}"
    );
    let name = name_of(&p);
    assert!(
        name.starts_with(&format!("{stage}.")),
        "auto-promotions are named <stage>.<ulid>.<freight>: {name}"
    );
    succeeded(ns, &name);
    name
}

fn condition(stage: &Value, type_: &str) -> Option<Value> {
    stage["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Waits until the Stage's `type_` condition satisfies `f`; returns the Stage.
fn wait_condition(
    ns: &str,
    stage: &str,
    type_: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(60, &format!("Stage {stage}: {what}"), || {
        let s = get_json("stage", stage, ns)?;
        let c = condition(&s, type_)?;
        f(&c).then_some(s)
    })
}

/// Waits until the Stage is Ready for the reason `reason`; returns the Ready condition.
fn ready_reason(ns: &str, stage: &str, reason: &str) -> Value {
    let s = wait_condition(ns, stage, "Ready", &format!("Ready reason {reason}"), |c| {
        c["reason"] == reason
    });
    condition(&s, "Ready").expect("Ready")
}

/// Waits until `freight` is the Stage's current Freight; on timeout, shows what the Stage
/// recorded and the Promotions it had to go on.
fn current(ns: &str, stage: &str, freight: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = get_json("stage", stage, ns).unwrap_or_default();
        if s["status"]["freightSummary"] == freight {
            return;
        }
        if std::time::Instant::now() > deadline {
            let promotions: Vec<String> = list("promotions", ns)
                .iter()
                .filter(|p| p["spec"]["stage"] == stage)
                .map(|p| {
                    format!(
                        "{} freight={} phase={} created={} finished={}",
                        name_of(p),
                        p["spec"]["freight"],
                        p["status"]["phase"],
                        p["metadata"]["creationTimestamp"],
                        p["status"]["finishedAt"]
                    )
                })
                .collect();
            panic!(
                "timed out after 60s waiting for {freight} to be current in {stage}: freightSummary={}, lastPromotion={}\nPromotions of {stage}:\n{}",
                s["status"]["freightSummary"],
                s["status"]["lastPromotion"]["name"],
                promotions.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn freight_status(ns: &str, freight: &str) -> Value {
    get_json("freight", freight, ns).expect("freight")["status"].clone()
}

fn verified_in(ns: &str, freight: &str, stage: &str) {
    wait_for(60, &format!("{freight} to be verified in {stage}"), || {
        freight_status(ns, freight)["verifiedIn"][stage]
            .is_object()
            .then_some(())
    });
}

/// Promotes by hand, waits for success and verification.
fn promote_and_verify(ns: &str, name: &str, stage: &str, freight: &str) {
    promote(ns, name, stage, freight);
    succeeded(ns, name);
    verified_in(ns, freight, stage);
}

/// Waits until no Promotion of `stage` is running or queued, then lets a second pass.
fn idle(ns: &str, stage: &str) {
    wait_for(60, &format!("every Promotion of {stage} to finish"), || {
        list("promotions", ns)
            .iter()
            .filter(|p| p["spec"]["stage"] == stage)
            .all(|p| {
                ["Succeeded", "Failed", "Errored", "Aborted"]
                    .contains(&p["status"]["phase"].as_str().unwrap_or_default())
            })
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1100));
}

/// Asserts for `secs` that `f` stays true (a bounded "nothing happens" check).
fn stays(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        assert!(f(), "expected {what} for {secs}s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

// ---------------------------------------------------------------------------------------------
// Argo CD health: a Stage whose template ends with argocd-update.

/// Credentials, Freight f7, Stage dev (git + argocd-update) and its Application `app-dev`.
fn argocd_objects(ns: &str, url: &str) -> String {
    let template = GitopsTemplate {
        repo_url: url,
        overlay: "apps/svc/env/dev",
        image: ECR,
        image_name: "my-app",
        argocd_app: Some((ns, "app-dev")),
    }
    .yaml();
    let stage = Stage {
        ns,
        name: "dev",
        warehouse: "w",
        sources: "{direct: true}",
        template: &template,
    }
    .yaml();
    format!(
        "{}---\n{}---\n{stage}---\n{}",
        git_credentials_secret(ns, "git", url),
        freight_yaml(ns, "f7", None),
        argocd_application_yaml(ns, "app-dev", "dev", url, "apps/svc/env/dev"),
    )
}

/// Sets up the Argo CD scenario and runs Promotion p1 until it waits on Argo CD; returns the
/// revision it pushed.
fn promoted_until_argocd(ns: &str) -> String {
    let (url, bare) = seed_dev_overlay(ns);
    apply(&argocd_objects(ns, &url));
    promote(ns, "p1", "dev", "f7");
    wait_for(60, "p1 to reach argocd-update", || {
        let p = get_json("promotion", "p1", ns)?;
        (p["status"]["stepExecutionMetadata"][4]["status"] == "Running").then_some(())
    });
    git(&bare, &["rev-parse", "gitops"]).trim().to_string()
}

/// What Argo CD writes to `app-dev` after syncing `revision` for Promotion p1: the operation
/// finished at :05, health assessed at `reconciled_at`, the refresh done.
fn argocd_reports(ns: &str, revision: &str, health: Value, reconciled_at: &str) {
    argocd_synced_with(ns, "app-dev", "p1", revision, health, reconciled_at);
}

#[test]
fn a_degraded_application_blocks_verification_until_healthy() {
    let ns = project("degraded");
    let revision = promoted_until_argocd(&ns);
    argocd_reports(
        &ns,
        &revision,
        json!({"status": "Degraded", "message": "Deployment my-app exceeded its progress deadline"}),
        "2030-01-01T00:00:10Z",
    );
    succeeded(&ns, "p1");

    let s = wait_condition(&ns, "dev", "Healthy", "Healthy False (Unhealthy)", |c| {
        c["status"] == "False" && c["reason"] == "Unhealthy"
    });
    let healthy = condition(&s, "Healthy").expect("Healthy");
    assert!(
        healthy["message"]
            .as_str()
            .is_some_and(|m| m.contains("app-dev") && m.contains("Degraded")),
        "{healthy:#}"
    );
    assert_eq!(s["status"]["health"]["status"], "Unhealthy", "{s:#}");
    let ready = ready_reason(&ns, "dev", "Unhealthy");
    assert_eq!(ready["status"], "False");
    let m = ready["message"].as_str().unwrap_or_default();
    assert!(
        m.contains(&format!("{ns}/app-dev"))
            && m.contains("Degraded")
            && m.contains("exceeded its progress deadline"),
        "the Ready message names the app and why: {m}"
    );
    // The Stage is recorded as holding f7, but verification does not run while unhealthy.
    assert_eq!(s["status"]["freightSummary"], "f7");
    assert!(freight_status(&ns, "f7")["currentlyIn"]["dev"].is_object());
    stays(4, "f7 not verified in dev while Degraded", || {
        freight_status(&ns, "f7")["verifiedIn"]["dev"].is_null()
    });
    let s = get_json("stage", "dev", &ns).expect("dev");
    assert_ne!(
        condition(&s, "Verified").map(|c| c["status"].clone()),
        Some(json!("True")),
        "{s:#}"
    );

    // Argo CD reports Healthy: the Stage verifies f7.
    argocd_reports(
        &ns,
        &revision,
        json!({"status": "Healthy"}),
        "2030-01-01T00:00:20Z",
    );
    let s = wait_condition(&ns, "dev", "Verified", "Verified True", |c| {
        c["status"] == "True"
    });
    assert_eq!(condition(&s, "Healthy").expect("Healthy")["status"], "True");
    verified_in(&ns, "f7", "dev");
    let ready = ready_reason(&ns, "dev", "Ready");
    assert_eq!(ready["status"], "True");
}

#[test]
fn stale_argocd_health_is_not_trusted_and_a_hard_refresh_is_requested() {
    let ns = project("stale");
    let revision = promoted_until_argocd(&ns);
    // Healthy, but assessed (:01) before the sync finished (:05).
    argocd_reports(
        &ns,
        &revision,
        json!({"status": "Healthy"}),
        "2030-01-01T00:00:01Z",
    );
    succeeded(&ns, "p1");
    // Until the Stage has seen p1 finish it is Unknown because a Promotion runs; wait for the
    // stale-health verdict itself.
    let s = wait_condition(
        &ns,
        "dev",
        "Healthy",
        "Healthy False (Unknown, stale)",
        |c| {
            c["status"] == "False"
                && c["reason"] == "Unknown"
                && c["message"].as_str().is_some_and(|m| m.contains("stale"))
        },
    );
    assert_eq!(s["status"]["health"]["status"], "Unknown", "{s:#}");
    let m = condition(&s, "Healthy").expect("Healthy")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(m.contains("app-dev") && m.contains("stale"), "{m}");
    wait_for(30, "a hard refresh of app-dev", || {
        let app = get_json("application", "app-dev", &ns)?;
        (app["metadata"]["annotations"]["argocd.argoproj.io/refresh"] == "hard").then_some(())
    });
    assert!(freight_status(&ns, "f7")["verifiedIn"]["dev"].is_null());

    // Argo CD refreshes: health is now newer than the sync and the Stage trusts it.
    argocd_reports(
        &ns,
        &revision,
        json!({"status": "Healthy"}),
        "2030-01-01T00:00:30Z",
    );
    wait_condition(&ns, "dev", "Healthy", "Healthy True", |c| {
        c["status"] == "True"
    });
    verified_in(&ns, "f7", "dev");
}

// ---------------------------------------------------------------------------------------------
// Availability through upstream Stages.

#[test]
fn all_needs_every_upstream_one_of_needs_one() {
    let ns = project("avail");
    apply(&freight_yaml(&ns, "f1", None));
    apply(&cheap_stage_yaml(&ns, "a", "{direct: true}"));
    apply(&cheap_stage_yaml(&ns, "b", "{direct: true}"));
    apply(&cheap_stage_yaml(
        &ns,
        "one",
        "{stages: [a, b], availabilityStrategy: OneOf}",
    ));
    apply(&cheap_stage_yaml(
        &ns,
        "all",
        "{stages: [a, b], availabilityStrategy: All}",
    ));

    promote_and_verify(&ns, "to-a", "a", "f1");
    promote(&ns, "one-1", "one", "f1");
    succeeded(&ns, "one-1");
    promote(&ns, "all-1", "all", "f1");
    let s = finished(&ns, "all-1");
    assert_eq!(s["phase"], "Failed", "{s:#}");
    let m = s["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("Freight f1 is not available to Stage all") && m.contains("not verified in b"),
        "{m}"
    );
    assert!(!m.contains("not verified in a"), "{m}");

    promote_and_verify(&ns, "to-b", "b", "f1");
    promote(&ns, "all-2", "all", "f1");
    succeeded(&ns, "all-2");
    current(&ns, "all", "f1");
}

#[test]
fn required_soak_time_holds_freight_back_until_it_has_soaked() {
    let ns = project("soak");
    apply(&freight_yaml(&ns, "f1", None));
    apply(&cheap_stage_yaml(&ns, "up", "{direct: true}"));
    apply(&cheap_stage_yaml(
        &ns,
        "down",
        "{stages: [up], requiredSoakTime: 12s}",
    ));
    promote_and_verify(&ns, "to-up", "up", "f1");
    promote(&ns, "early", "down", "f1");
    let s = finished(&ns, "early");
    assert_eq!(s["phase"], "Failed", "{s:#}");
    let m = s["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("Freight f1 is not available to Stage down")
            && m.contains("not yet soaked")
            && m.contains("12s"),
        "{m}"
    );

    // Once f1 has been in up for longer than the soak time, down accepts it.
    let since = freight_status(&ns, "f1")["currentlyIn"]["up"]["since"]
        .as_str()
        .expect("currentlyIn.up.since")
        .to_string();
    let since: k8s_openapi::jiff::Timestamp = since.parse().expect("timestamp");
    let ready_at = since + k8s_openapi::jiff::SignedDuration::from_secs(14);
    let wait = ready_at.duration_since(k8s_openapi::jiff::Timestamp::now());
    if let Ok(d) = Duration::try_from(wait) {
        assert!(d < Duration::from_secs(30), "soak wait {d:?}");
        std::thread::sleep(d);
    }
    promote(&ns, "soaked", "down", "f1");
    succeeded(&ns, "soaked");
    current(&ns, "down", "f1");
}

#[test]
fn approval_lets_freight_skip_the_upstream_stage() {
    let ns = project("approve");
    apply(&freight_yaml(&ns, "hotfix", None));
    apply(&cheap_stage_yaml(&ns, "uat", "{direct: true}"));
    apply(&cheap_stage_yaml(&ns, "prod", "{stages: [uat]}"));
    promote(&ns, "refused", "prod", "hotfix");
    let s = finished(&ns, "refused");
    assert_eq!(s["phase"], "Failed", "{s:#}");
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("not verified in uat")),
        "{s:#}"
    );
    // (A second apart, so which Promotion finished last is unambiguous; see
    // `the_stage_records_a_promotion_that_finishes_in_the_same_second_as_a_failed_one`.)
    idle(&ns, "prod");

    approve(&ns, "hotfix", "prod");
    promote(&ns, "approved", "prod", "hotfix");
    succeeded(&ns, "approved");
    current(&ns, "prod", "hotfix");
    verified_in(&ns, "hotfix", "prod");
    assert!(freight_status(&ns, "hotfix")["verifiedIn"]["uat"].is_null());
}

/// `kubectl patch freight <f> --subresource=status`: approve `freight` for `stage`.
fn approve(ns: &str, freight: &str, stage: &str) {
    let patch = json!({"status": {"approvedFor": {stage: {}}}});
    merge_patch_status("freight", freight, ns, &patch.to_string()).success("approve");
}

/// A person's Promotion is refused, they approve the Freight and promote again at once: the
/// Stage must record the Promotion that succeeded, whatever the two are called and even when
/// both finish within the same second (Kubernetes timestamps have whole-second precision).
/// Three Stages make a same-second finish very likely.
#[test]
fn the_stage_records_a_promotion_that_finishes_in_the_same_second_as_a_failed_one() {
    let ns = project("tie");
    apply(&freight_yaml(&ns, "hotfix", None));
    apply(&cheap_stage_yaml(&ns, "uat", "{direct: true}"));
    let prods = ["prod-1", "prod-2", "prod-3"];
    for prod in prods {
        apply(&cheap_stage_yaml(&ns, prod, "{stages: [uat]}"));
    }
    for prod in prods {
        // Named so that the later Promotion sorts first.
        let refused = format!("z-refused-{prod}");
        let approved = format!("a-approved-{prod}");
        promote(&ns, &refused, prod, "hotfix");
        assert_eq!(finished(&ns, &refused)["phase"], "Failed");
        approve(&ns, "hotfix", prod);
        promote(&ns, &approved, prod, "hotfix");
        succeeded(&ns, &approved);
    }
    for prod in prods {
        current(&ns, prod, "hotfix");
    }
}

#[test]
fn a_malformed_health_check_record_is_reported_on_the_healthy_condition() {
    let ns = project("badcheck");
    apply(&freight_yaml(&ns, "f1", None));
    apply(&cheap_stage_yaml(&ns, "dev", "{direct: true}"));
    promote(&ns, "p1", "dev", "f1");
    succeeded(&ns, "p1");
    ready_reason(&ns, "dev", "Ready");
    // A record the controller cannot run, as a cluster moved from elsewhere might hold.
    let patch = json!({"status": {"lastPromotion": {"status": {"healthChecks": [
        {"uses": "argocd-update", "config": {"apps": [{"namespace": "argocd"}]}}
    ]}}}});
    merge_patch_status("stage", "dev", &ns, &patch.to_string()).success("patch status");
    let s = wait_condition(&ns, "dev", "Healthy", "reason InvalidHealthCheck", |c| {
        c["reason"] == "InvalidHealthCheck"
    });
    let healthy = condition(&s, "Healthy").expect("Healthy");
    assert_eq!(healthy["status"], "False");
    let message = healthy["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("config.apps[0]: missing field `name`"),
        "{message}"
    );
    let ready = condition(&s, "Ready").expect("Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("Unhealthy"))
    );
}

// ---------------------------------------------------------------------------------------------
// Auto-promotion.

#[test]
fn auto_promotion_promotes_new_freight_once_and_does_not_retry_failures() {
    let ns = project("auto");
    apply(&auto_promotion_yaml(&ns, &["dev"]));
    apply(&cheap_stage_yaml(&ns, "dev", "{direct: true}"));
    wait_for(30, "dev.status.autoPromotionEnabled", || {
        let s = get_json("stage", "dev", &ns)?;
        (s["status"]["autoPromotionEnabled"] == true).then_some(())
    });

    apply(&freight_yaml(&ns, "f1", Some("2020-01-01T00:00:01Z")));
    auto_promoted(&ns, "dev", "f1");
    current(&ns, "dev", "f1");
    verified_in(&ns, "f1", "dev");

    apply(&freight_yaml(&ns, "f2", Some("2020-01-01T00:00:02Z")));
    auto_promoted(&ns, "dev", "f2");
    current(&ns, "dev", "f2");

    // A template that fails: the auto-promotion of f3 fails and is not retried.
    apply(&cheap_stage_yaml(&ns, "dev", "{direct: true}").replace(
        "      - uses: compose-output\n        as: out\n        config:\n          stage: dev\n",
        "      - uses: copy\n        config:\n          inPath: ./does-not-exist\n          outPath: ./out\n",
    ));
    wait_for(30, "the failing template to be stored", || {
        let s = get_json("stage", "dev", &ns)?;
        (s["spec"]["promotionTemplate"]["spec"]["steps"][0]["uses"] == "copy").then_some(())
    });
    apply(&freight_yaml(&ns, "f3", Some("2020-01-01T00:00:03Z")));
    let p = wait_for(60, "an auto-promotion of f3", || {
        promotions_of(&ns, "dev", "f3").into_iter().next()
    });
    let s = finished(&ns, &name_of(&p));
    assert_eq!(s["phase"], "Failed", "{s:#}");
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("does-not-exist")),
        "{s:#}"
    );
    stays(
        15,
        "exactly one Promotion of f3 (no automatic retry)",
        || promotions_of(&ns, "dev", "f3").len() == 1,
    );
    current(&ns, "dev", "f2");

    // Each Freight was auto-promoted exactly once: a Promotion that succeeded is not followed
    // by a second one of the same Freight (Kargo's guard against a Promotion "that succeeded
    // but hasn't been processed yet").
    for f in ["f1", "f2", "f3"] {
        let ps = promotions_of(&ns, "dev", f);
        let seen: Vec<String> = ps
            .iter()
            .map(|p| {
                format!(
                    "{} (created {}, {} at {})",
                    name_of(p),
                    p["metadata"]["creationTimestamp"].as_str().unwrap_or("?"),
                    p["status"]["phase"].as_str().unwrap_or("?"),
                    p["status"]["finishedAt"].as_str().unwrap_or("?"),
                )
            })
            .collect();
        assert_eq!(
            ps.len(),
            1,
            "expected one auto-promotion of {f}, found {seen:#?}"
        );
    }
}

#[test]
fn match_upstream_follows_the_upstream_stage_not_the_newest_freight() {
    let ns = project("match");
    apply(&freight_yaml(&ns, "f1", Some("2020-01-01T00:00:01Z")));
    apply(&freight_yaml(&ns, "f2", Some("2020-01-01T00:00:02Z")));
    apply(&cheap_stage_yaml(&ns, "dev", "{direct: true}"));
    apply(&cheap_stage_yaml(
        &ns,
        "uat",
        "{stages: [dev], autoPromotionOptions: {selectionPolicy: MatchUpstream}}",
    ));
    apply(&cheap_stage_yaml(&ns, "uat-newest", "{stages: [dev]}"));
    // dev ends up running f1 again, though f2 (newer) was verified there too.
    promote_and_verify(&ns, "d1", "dev", "f1");
    promote_and_verify(&ns, "d2", "dev", "f2");
    promote(&ns, "d3", "dev", "f1");
    succeeded(&ns, "d3");
    current(&ns, "dev", "f1");
    wait_for(30, "f2 to leave dev", || {
        let st = freight_status(&ns, "f2");
        (st["currentlyIn"]["dev"].is_null() && st["verifiedIn"]["dev"].is_object()).then_some(())
    });

    apply(&auto_promotion_yaml(&ns, &["uat", "uat-newest"]));
    auto_promoted(&ns, "uat", "f1");
    current(&ns, "uat", "f1");
    auto_promoted(&ns, "uat-newest", "f2");
    current(&ns, "uat-newest", "f2");
    assert!(promotions_of(&ns, "uat", "f2").is_empty());
}

#[test]
fn promoting_older_freight_by_hand_holds_auto_promotion_until_the_newest_is_promoted() {
    let ns = project("hold");
    apply(&auto_promotion_yaml(&ns, &["dev"]));
    apply(&cheap_stage_yaml(&ns, "dev", "{direct: true}"));
    apply(&freight_yaml(&ns, "f1", Some("2020-01-01T00:00:01Z")));
    auto_promoted(&ns, "dev", "f1");
    current(&ns, "dev", "f1");
    apply(&freight_yaml(&ns, "f2", Some("2020-01-01T00:00:02Z")));
    auto_promoted(&ns, "dev", "f2");
    current(&ns, "dev", "f2");

    // A person rolls dev back to f1, once dev is idle (and in a later second than any
    // auto-promotion: creation timestamps have whole-second precision).
    idle(&ns, "dev");
    promote(&ns, "rollback", "dev", "f1");
    succeeded(&ns, "rollback");
    current(&ns, "dev", "f1");
    let ready = ready_reason(&ns, "dev", "AutoPromotionHeld");
    let m = ready["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("held") && m.contains("rollback") && m.contains("f1"),
        "{m}"
    );

    // Newer Freight appears: nothing is auto-promoted while the hold stands.
    apply(&freight_yaml(&ns, "f3", Some("2020-01-01T00:00:03Z")));
    let before = promotion_names(&ns, "dev");
    stays(
        10,
        "no new Promotion of dev while auto-promotion is held",
        || {
            let now = promotion_names(&ns, "dev");
            if now != before {
                eprintln!("Promotions of dev before: {before:?}\nnow: {now:?}");
            }
            now == before
        },
    );
    let s = get_json("stage", "dev", &ns).expect("dev");
    assert_eq!(s["status"]["freightSummary"], "f1");
    let ready = condition(&s, "Ready").expect("Ready");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("auto-promotion") && m.contains("held")),
        "{ready:#}"
    );

    // Promoting the newest by hand resumes auto-promotion.
    promote(&ns, "resume", "dev", "f3");
    succeeded(&ns, "resume");
    current(&ns, "dev", "f3");
    ready_reason(&ns, "dev", "Ready");
    apply(&freight_yaml(&ns, "f4", Some("2020-01-01T00:00:04Z")));
    auto_promoted(&ns, "dev", "f4");
    current(&ns, "dev", "f4");
}

// ---------------------------------------------------------------------------------------------
// The Stage graph.

#[test]
fn missing_warehouse_missing_upstream_and_cycles_are_reported() {
    let ns = project("graph");
    apply(&cheap_stage_yaml(&ns, "lost", "{direct: true}").replace("name: w}", "name: ghost}"));
    apply(&cheap_stage_yaml(&ns, "orphan", "{stages: [nowhere]}"));
    apply(&cheap_stage_yaml(&ns, "cyc-a", "{stages: [cyc-b]}"));
    apply(&cheap_stage_yaml(&ns, "cyc-b", "{stages: [cyc-a]}"));

    let c = ready_reason(&ns, "lost", "MissingWarehouse");
    assert_eq!(c["status"], "False");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("Warehouse ghost does not exist")),
        "{c:#}"
    );
    let c = ready_reason(&ns, "orphan", "MissingUpstream");
    assert_eq!(c["status"], "False");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("upstream Stage nowhere does not exist")),
        "{c:#}"
    );
    for (s, path) in [
        ("cyc-a", "cyc-a -> cyc-b -> cyc-a"),
        ("cyc-b", "cyc-b -> cyc-a -> cyc-b"),
    ] {
        let c = ready_reason(&ns, s, "Cycle");
        assert_eq!(c["status"], "False");
        assert!(
            c["message"].as_str().is_some_and(|m| m.contains(path)),
            "{c:#}"
        );
    }
    // Fixing the spec clears the problem.
    apply(&cheap_stage_yaml(&ns, "lost", "{direct: true}"));
    ready_reason(&ns, "lost", "NoFreight");

    // The controller keeps working: a sound Stage next to the broken ones is promoted.
    apply(&freight_yaml(&ns, "f1", None));
    apply(&cheap_stage_yaml(&ns, "fine", "{direct: true}"));
    promote_and_verify(&ns, "ok", "fine", "f1");
    ready_reason(&ns, "fine", "Ready");
    let log = controller_log();
    assert!(!log.contains("panicked"), "controller log:\n{log}");
}

// ---------------------------------------------------------------------------------------------
// What a person sees.

#[test]
fn kubectl_get_and_describe_show_freight_health_and_readiness() {
    let ns = project("show");
    apply(&freight_yaml(&ns, "f1", None));
    apply(&cheap_stage_yaml(&ns, "dev", "{direct: true}"));
    apply(&cheap_stage_yaml(&ns, "uat", "{stages: [dev]}"));
    promote_and_verify(&ns, "p1", "dev", "f1");
    ready_reason(&ns, "dev", "Ready");
    ready_reason(&ns, "uat", "NoFreight");

    let out = kubectl(&["get", "stages", "-n", &ns]).success("get stages");
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap_or_default();
    for col in [
        "NAME",
        "CURRENT FREIGHT",
        "HEALTH",
        "READY",
        "STATUS",
        "AGE",
    ] {
        assert!(header.contains(col), "missing {col}:\n{}", out.stdout);
    }
    let row = |name: &str| -> Vec<String> {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", out.stdout))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let dev = row("dev").join(" ");
    assert!(
        dev.contains(" f1 Healthy True Stage is ready "),
        "dev row: {dev}\n{}",
        out.stdout
    );
    let uat = row("uat").join(" ");
    assert!(
        uat.contains("False") && uat.contains("No Freight has been promoted"),
        "uat row: {uat}\n{}",
        out.stdout
    );

    let out = kubectl(&["describe", "stage", "dev", "-n", &ns]).success("describe");
    let d = &out.stdout;
    for want in [
        "Conditions:",
        "Type:",
        "Ready",
        "Healthy",
        "Verified",
        "Stage is ready",
        "Freight Summary:",
    ] {
        assert!(d.contains(want), "describe lacks {want:?}:\n{d}");
    }
}
