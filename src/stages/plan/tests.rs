//! The Stage's decisions, without a control plane: each test builds what the controller would
//! observe and checks the status and effects the plan returns.

use serde_json::{Value, json};

use super::*;
use crate::api::{CONDITION_PROMOTING, HealthState};
use crate::argocd::AppHealth;
use crate::stages::health::REASON_INVALID_HEALTH_CHECK;
use crate::stages::health_checks::HealthCheck;

const NS: &str = "p";
const ORIGIN: &str = "Warehouse/w";

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn now() -> Timestamp {
    at("2026-12-01T12:00:00Z")
}

fn stage_json(name: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": NS, "uid": "uid-1", "generation": 3},
        "spec": {"requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}
        ]}
    })
}

fn stage_with(f: impl FnOnce(&mut Value)) -> Stage {
    let mut v = stage_json("dev");
    f(&mut v);
    serde_json::from_value(v).expect("stage")
}

fn freight(name: &str, discovered: &str) -> Arc<Freight> {
    freight_with(name, discovered, |_| {})
}

fn freight_with(name: &str, discovered: &str, f: impl FnOnce(&mut Value)) -> Arc<Freight> {
    let mut v = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": discovered},
        "origin": {"kind": "Warehouse", "name": "w"},
        "discoveredAt": discovered,
        "images": [{"repoURL": "r", "tag": name}]
    });
    f(&mut v);
    Arc::new(serde_json::from_value(v).expect("freight"))
}

fn collection(id: &str, freight: &str) -> Value {
    json!({"id": id, "items": {ORIGIN: {"name": freight, "origin": {"kind": "Warehouse", "name": "w"}}}})
}

/// A Promotion of `freight` into dev; `phase` None is a new one.
fn promotion(name: &str, freight: &str, phase: Option<&str>, finished: &str) -> Arc<Promotion> {
    promotion_with(name, freight, phase, finished, |_| {})
}

fn promotion_with(
    name: &str,
    freight: &str,
    phase: Option<&str>,
    finished: &str,
    f: impl FnOnce(&mut Value),
) -> Arc<Promotion> {
    let mut v = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-12-01T10:00:00Z",
                     "resourceVersion": "10",
                     "annotations": {"kargo.akuity.io/create-actor": "controller:haul-controller"}},
        "spec": {"stage": "dev", "freight": freight},
    });
    if let Some(phase) = phase {
        v["status"] = json!({"phase": phase, "freight": {"name": freight}});
        if phase != "Pending" {
            v["status"]["startedAt"] = json!("2026-12-01T10:00:00Z");
        }
        if phase != "Running" && phase != "Pending" {
            v["status"]["finishedAt"] = json!(finished);
            v["status"]["message"] = json!(format!("{phase} because"));
        }
        if phase == "Succeeded" {
            v["status"]["freightCollection"] = collection(&format!("c-{freight}"), freight);
        }
    }
    f(&mut v);
    Arc::new(serde_json::from_value(v).expect("promotion"))
}

fn succeeded(name: &str, freight: &str) -> Arc<Promotion> {
    promotion(name, freight, Some("Succeeded"), "2026-12-01T11:00:00Z")
}

fn observed(stage: Stage) -> Observed {
    Observed {
        stage,
        warehouses: BTreeSet::from(["w".to_string()]),
        ids: Ids {
            verification: "01ver".into(),
            analysis_run: "01run".into(),
            promotion: "01pro".into(),
        },
        ..Default::default()
    }
}

/// Dev with Freight f1 promoted by p1 (no health checks).
fn promoted() -> Observed {
    let mut o = observed(stage_with(|_| {}));
    o.freights = vec![freight("f1", "2026-12-01T09:00:00Z")];
    o.promotions = vec![succeeded("p1", "f1")];
    o.health = Some(Ok(vec![]));
    o
}

/// Plans `o`, then plans again as if the status had been written, until it settles.
fn settle(mut o: Observed) -> (Observed, Plan) {
    let mut p = plan(&o, now());
    for _ in 0..5 {
        if !p.write_status {
            break;
        }
        o.stage.status = Some(p.status.clone());
        p = plan(&o, now());
    }
    (o, p)
}

fn cond<'a>(p: &'a Plan, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = conditions::get(&p.status.conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {:?}", p.status.conditions));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

/// The effects without their Events' annotations, to compare with what a test expects.
fn plain(effects: &[Effect]) -> Vec<Effect> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Event(ev) => Effect::Event(ev.clone().with_annotations(BTreeMap::new())),
            other => other.clone(),
        })
        .collect()
}

fn events(p: &Plan) -> Vec<&Event> {
    p.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn app(state: HealthState, reason: &'static str, message: &str) -> AppHealth {
    AppHealth {
        state,
        reason,
        message: message.into(),
        refresh_wanted: false,
    }
}

fn auto_promotion_on() -> ProjectConfig {
    serde_json::from_value(json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
        "metadata": {"name": NS, "namespace": NS},
        "spec": {"promotionPolicies": [{"stageSelector": {"name": "dev"}, "autoPromotionEnabled": true}]}
    }))
    .expect("project config")
}

// ---------------------------------------------------------------------------------------------
// Graph and availability

#[test]
fn graph_problems_make_the_stage_not_ready_and_are_reported_once() {
    let mut o = observed(stage_with(|_| {}));
    o.warehouses.clear();
    let p = plan(&o, now());
    let (status, reason, message) = cond(&p, CONDITION_READY);
    assert_eq!((status, reason), ("False", "MissingWarehouse"));
    assert!(message.contains("w"), "{message}");
    assert_eq!(
        events(&p),
        vec![&Event::warning(
            "MissingWarehouse",
            "Validate",
            message.to_string()
        )]
    );
    // The same problem again: no second Event.
    o.stage.status = Some(p.status.clone());
    assert!(events(&plan(&o, now())).is_empty());
}

#[test]
fn graph_problems_stop_auto_promotion() {
    let mut o = observed(stage_with(|_| {}));
    o.warehouses.clear();
    o.config = Some(auto_promotion_on());
    o.freights = vec![freight("f1", "2026-12-01T09:00:00Z")];
    let p = plan(&o, now());
    assert!(
        !p.effects
            .iter()
            .any(|e| matches!(e, Effect::CreatePromotion(_)))
    );
}

// ---------------------------------------------------------------------------------------------
// Promotions

#[test]
fn an_active_promotion_makes_the_stage_promoting() {
    let mut o = observed(stage_with(|_| {}));
    o.promotions = vec![
        promotion("p2", "f2", None, ""),
        promotion("p1", "f1", Some("Running"), ""),
    ];
    let p = plan(&o, now());
    assert_eq!(
        p.status.current_promotion.as_ref().map(|c| c.name.as_str()),
        Some("p1")
    );
    assert_eq!(
        cond(&p, CONDITION_PROMOTING),
        ("True", "Promoting", "Promotion p1 is Running")
    );
    assert_eq!(
        cond(&p, CONDITION_READY),
        ("False", "Promoting", "Promotion p1 is in progress")
    );
    assert_eq!(p.requeue, REQUEUE_BUSY);
    // Once it finished, the condition goes away.
    o.stage.status = Some(p.status.clone());
    o.promotions = vec![succeeded("p1", "f1")];
    o.health = Some(Ok(vec![]));
    let p = plan(&o, now());
    assert!(conditions::get(&p.status.conditions, CONDITION_PROMOTING).is_none());
    assert!(p.status.current_promotion.is_none());
}

#[test]
fn a_successful_promotion_records_its_freight_once() {
    let o = promoted();
    let p = plan(&o, now());
    assert_eq!(p.status.freight_history.len(), 1);
    assert_eq!(p.status.freight_history[0].id, "c-f1");
    assert_eq!(p.status.freight_summary.as_deref(), Some("f1"));
    assert_eq!(
        p.effects[0],
        Effect::EnterFreight {
            freight: "f1".into(),
            since: Time(now())
        }
    );
    let (_, settled) = settle(o);
    assert!(
        !settled
            .effects
            .iter()
            .any(|e| matches!(e, Effect::EnterFreight { .. }))
    );
    assert!(!settled.write_status);
}

#[test]
fn freight_that_leaves_records_its_longest_soak() {
    let (mut o, _) = settle(promoted());
    o.freights = vec![
        freight_with("f1", "2026-12-01T09:00:00Z", |v| {
            v["status"] = json!({
                "currentlyIn": {"dev": {"since": "2026-12-01T11:00:00Z"}},
                "verifiedIn": {"dev": {"longestSoak": "10m0s"}}
            })
        }),
        freight("f2", "2026-12-01T10:00:00Z"),
    ];
    o.promotions.push(promotion(
        "p2",
        "f2",
        Some("Succeeded"),
        "2026-12-01T11:30:00Z",
    ));
    let p = plan(&o, now());
    assert_eq!(
        p.effects[..2],
        [
            Effect::LeaveFreight {
                freight: "f1".into(),
                longest_soak: Some("1h0m0s".into())
            },
            Effect::EnterFreight {
                freight: "f2".into(),
                since: Time(now())
            }
        ]
    );
    let ids: Vec<&str> = p
        .status
        .freight_history
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, ["c-f2", "c-f1"]);
}

#[test]
fn freight_that_leaves_unverified_has_no_soak_to_record() {
    let (mut o, _) = settle(promoted());
    o.promotions.push(promotion(
        "p2",
        "f2",
        Some("Succeeded"),
        "2026-12-01T11:30:00Z",
    ));
    let p = plan(&o, now());
    assert_eq!(
        p.effects[0],
        Effect::LeaveFreight {
            freight: "f1".into(),
            longest_soak: None
        }
    );
}

#[test]
fn last_promotion_is_the_newest_finished_one_even_when_it_failed() {
    let mut o = promoted();
    o.promotions.push(promotion_with(
        "p2",
        "f2",
        Some("Failed"),
        "2026-12-01T11:00:00Z",
        // Finished in the same second: the resourceVersion orders them.
        |v| v["metadata"]["resourceVersion"] = json!("11"),
    ));
    let p = plan(&o, now());
    let last = p.status.last_promotion.as_ref().expect("last promotion");
    assert_eq!(last.name, "p2");
    assert_eq!(
        last.status.as_ref().and_then(|s| s.phase),
        Some(crate::api::PromotionPhase::Failed)
    );
    // The current Freight is still what the successful one deployed.
    assert_eq!(p.status.freight_history[0].id, "c-f1");
}

#[test]
fn a_promotion_that_ended_before_it_started_is_never_the_last_one() {
    let mut o = promoted();
    // What the controller writes for a Promotion of Freight that does not exist: Errored,
    // finished, never started.
    o.promotions.push(promotion_with(
        "typo",
        "no-such-freight",
        Some("Errored"),
        "2026-12-01T12:00:00Z",
        |v| {
            v["status"].as_object_mut().map(|s| s.remove("startedAt"));
        },
    ));
    let (_, p) = settle(o);
    let last = p.status.last_promotion.as_ref().expect("last promotion");
    assert_eq!(
        last.name, "p1",
        "the typo does not replace the last real Promotion"
    );
    let (status, _, message) = cond(&p, CONDITION_HEALTHY);
    assert!(
        status == "True" && !message.contains("did not succeed"),
        "{status}: {message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Health

#[test]
fn health_is_not_applicable_before_anything_is_promoted() {
    let p = plan(&observed(stage_with(|_| {})), now());
    assert_eq!(
        cond(&p, CONDITION_HEALTHY),
        ("False", "NotApplicable", "nothing promoted yet")
    );
    assert_eq!(
        cond(&p, CONDITION_READY),
        (
            "False",
            "NoFreight",
            "No Freight has been promoted to this Stage yet"
        )
    );
    assert!(conditions::get(&p.status.conditions, CONDITION_VERIFIED).is_none());
}

#[test]
fn health_is_unknown_while_promoting() {
    let mut o = promoted();
    o.promotions
        .push(promotion("p2", "f2", Some("Running"), ""));
    let p = plan(&o, now());
    assert_eq!(
        cond(&p, CONDITION_HEALTHY),
        ("False", "Unknown", "a Promotion is in progress")
    );
    let health = p.status.health.expect("health");
    assert_eq!(
        health.issues,
        vec!["a Promotion is in progress".to_string()]
    );
}

#[test]
fn health_is_unknown_when_the_last_promotion_failed() {
    let mut o = observed(stage_with(|_| {}));
    o.promotions = vec![promotion(
        "p1",
        "f1",
        Some("Failed"),
        "2026-12-01T11:00:00Z",
    )];
    let p = plan(&o, now());
    assert_eq!(
        cond(&p, CONDITION_HEALTHY),
        (
            "False",
            "Unknown",
            "the last Promotion did not succeed: Failed because"
        )
    );
}

#[test]
fn a_successful_promotion_without_health_checks_is_healthy() {
    let p = plan(&promoted(), now());
    assert_eq!(
        cond(&p, CONDITION_HEALTHY),
        (
            "True",
            "Healthy",
            "no health checks; the last Promotion succeeded"
        )
    );
}

#[test]
fn healthy_applications_make_the_stage_healthy() {
    let mut o = promoted();
    o.health = Some(Ok(vec![
        app(HealthState::Healthy, "Healthy", "a is Healthy"),
        app(HealthState::Healthy, "Healthy", "b is Healthy"),
    ]));
    let p = plan(&o, now());
    assert_eq!(
        cond(&p, CONDITION_HEALTHY),
        ("True", "Healthy", "a is Healthy; b is Healthy")
    );
    assert_eq!(
        p.status.health.and_then(|h| h.status),
        Some(HealthState::Healthy)
    );
}

#[test]
fn an_unhealthy_application_makes_the_stage_unhealthy_and_holds_verification() {
    let mut o = promoted();
    o.health = Some(Ok(vec![
        app(HealthState::Healthy, "Healthy", "a is Healthy"),
        app(HealthState::Unhealthy, "Degraded", "b is Degraded"),
    ]));
    let p = plan(&o, now());
    assert_eq!(
        cond(&p, CONDITION_HEALTHY),
        ("False", "Unhealthy", "b is Degraded")
    );
    assert_eq!(
        cond(&p, CONDITION_READY),
        ("False", "Unhealthy", "b is Degraded")
    );
    assert_eq!(
        cond(&p, CONDITION_VERIFIED),
        (
            "False",
            "Pending",
            "Verification waits for the Stage to be healthy: b is Degraded"
        )
    );
    let health = p.status.health.as_ref().expect("health");
    assert_eq!(health.issues, vec!["b is Degraded".to_string()]);
    assert!(
        !p.effects
            .iter()
            .any(|e| matches!(e, Effect::MarkVerified { .. }))
    );
    assert_eq!(p.requeue, REQUEUE_BUSY);
}

#[test]
fn a_malformed_health_check_record_reaches_the_healthy_condition() {
    let mut o = promoted();
    let records = [HealthCheckStep {
        uses: "argocd-update".into(),
        config: Some(json!({"apps": [{"namespace": "argocd"}]})),
    }];
    o.health = Some(HealthCheck::parse_all(&records).map(|_| Vec::new()));
    let p = plan(&o, now());
    let (status, reason, message) = cond(&p, CONDITION_HEALTHY);
    assert_eq!((status, reason), ("False", REASON_INVALID_HEALTH_CHECK));
    assert!(
        message.contains(
            "health check 0 is invalid: invalid argocd-update health check: config.apps[0]: missing field `name`"
        ),
        "{message}"
    );
    assert_eq!(cond(&p, CONDITION_READY).1, "Unhealthy");
    assert_eq!(
        p.status.health.and_then(|h| h.status),
        Some(HealthState::Unknown)
    );
}

// ---------------------------------------------------------------------------------------------
// Verification

#[test]
fn without_analysis_a_healthy_idle_stage_verifies_at_once() {
    let p = plan(&promoted(), now());
    let message = "Stage is healthy after the promotion (no verification configured)";
    assert_eq!(cond(&p, CONDITION_VERIFIED), ("True", "Verified", message));
    let Effect::Event(verified) = &p.effects[2] else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(
        verified.annotations["event.kargo.akuity.io/verification-finish-time"],
        "2026-12-01T12:00:00Z"
    );
    assert_eq!(
        verified.annotations["event.kargo.akuity.io/freight-name"],
        "f1"
    );
    assert_eq!(
        plain(&p.effects[1..]),
        [
            Effect::MarkVerified {
                freight: "f1".into(),
                at: Time(now())
            },
            Effect::Event(Event::normal(
                "FreightVerificationSucceeded",
                "Verify",
                "Freight f1 verified in Stage dev".into()
            )),
        ]
    );
    let info = &p.status.freight_history[0].verification_history[0];
    assert_eq!(info.id.as_deref(), Some("01ver"));
    assert_eq!(info.phase.as_deref(), Some("Successful"));
    assert_eq!(info.actor.as_deref(), Some(CONTROLLER_ACTOR));
    assert_eq!(
        cond(&p, CONDITION_READY),
        ("True", "Ready", "Stage is ready")
    );
    assert_eq!(p.requeue, REQUEUE_IDLE);
}

fn with_analysis() -> Observed {
    let mut o = promoted();
    o.stage =
        stage_with(|v| v["spec"]["verification"] = json!({"analysisTemplates": [{"name": "t"}]}));
    o
}

#[test]
fn analysis_starts_an_analysis_run_once_templates_are_read() {
    let mut o = with_analysis();
    assert!(needs(&o, now()).analysis_templates);
    // Not read (yet): nothing is decided.
    let p = plan(&o, now());
    assert_eq!(cond(&p, CONDITION_VERIFIED).1, "Pending");
    assert!(p.status.freight_history[0].verification_history.is_empty());

    o.analysis_templates = Some(Ok(vec![json!({"spec": {"metrics": [{"name": "m"}]}})]));
    let p = plan(&o, now());
    let Some(Effect::CreateAnalysisRun { name, run }) = p.effects.get(1) else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(name, "dev.01run");
    assert_eq!(
        run["metadata"]["labels"]["kargo.akuity.io/freight-collection"],
        "c-f1"
    );
    assert_eq!(run["spec"]["metrics"][0]["name"], "m");
    let info = &p.status.freight_history[0].verification_history[0];
    assert_eq!(info.phase.as_deref(), Some("Running"));
    assert_eq!(
        info.analysis_run.as_ref().map(|r| r.name.as_str()),
        Some("dev.01run")
    );
    assert_eq!(
        cond(&p, CONDITION_VERIFIED),
        ("False", "Pending", "AnalysisRun dev.01run is running")
    );
    assert_eq!(
        cond(&p, CONDITION_READY),
        ("False", "Verifying", "Verifying the current Freight")
    );
}

#[test]
fn analysis_that_cannot_start_fails_verification() {
    for (templates, create_error, message) in [
        (
            Err("AnalysisTemplate t does not exist".to_string()),
            None,
            "AnalysisTemplate t does not exist",
        ),
        (
            Ok(vec![]),
            Some("creating AnalysisRun dev.01run: forbidden".to_string()),
            "creating AnalysisRun dev.01run: forbidden",
        ),
    ] {
        let mut o = with_analysis();
        o.analysis_templates = Some(templates);
        o.analysis_create_error = create_error;
        let p = plan(&o, now());
        // Kargo: a verification that cannot start ends in phase Error.
        assert_eq!(
            p.status.freight_history[0].verification_history[0]
                .phase
                .as_deref(),
            Some("Error")
        );
        assert_eq!(
            cond(&p, CONDITION_VERIFIED),
            ("False", "VerificationError", message)
        );
        assert_eq!(
            cond(&p, CONDITION_READY),
            ("False", "VerificationError", message)
        );
        assert_eq!(
            plain(&p.effects)
                .into_iter()
                .filter(|e| matches!(e, Effect::Event(_)))
                .collect::<Vec<_>>(),
            vec![Effect::Event(Event::warning(
                "FreightVerificationErrored",
                "Verify",
                message.into()
            ))]
        );
        assert!(
            !p.effects
                .iter()
                .any(|e| matches!(e, Effect::CreateAnalysisRun { .. }))
        );
    }
}

/// Dev verifying f1 with AnalysisRun dev.01run, in the state `state`.
fn running(state: Option<Result<RunState, String>>) -> Plan {
    let mut o = with_analysis();
    o.analysis_templates = Some(Ok(vec![]));
    let p = plan(&o, now());
    o.stage.status = Some(p.status);
    o.analysis_templates = None;
    let want = needs(&o, now());
    assert_eq!(
        want.analysis_run.as_ref().map(|r| r.name.as_str()),
        Some("dev.01run")
    );
    assert!(!want.analysis_templates);
    o.analysis_run = state;
    plan(&o, now())
}

#[test]
fn a_running_analysis_keeps_verification_pending() {
    for state in [None, Some(Ok(RunState::Running)), Some(Err("boom".into()))] {
        let p = running(state);
        assert_eq!(
            cond(&p, CONDITION_VERIFIED),
            ("False", "Pending", "AnalysisRun dev.01run is running")
        );
        assert!(p.effects.is_empty(), "{:?}", p.effects);
        assert_eq!(p.requeue, REQUEUE_BUSY);
    }
}

#[test]
fn a_successful_analysis_verifies_the_freight() {
    let p = running(Some(Ok(RunState::Successful)));
    assert_eq!(
        cond(&p, CONDITION_VERIFIED),
        ("True", "Verified", "AnalysisRun dev.01run succeeded")
    );
    assert!(matches!(&p.effects[0], Effect::MarkVerified { freight, .. } if freight == "f1"));
    let info = &p.status.freight_history[0].verification_history[0];
    assert_eq!(info.phase.as_deref(), Some("Successful"));
    assert_eq!(
        info.analysis_run.as_ref().map(|r| r.phase.as_str()),
        Some("Successful")
    );
    assert_eq!(info.finish_time, Some(Time(now())));
}

#[test]
fn a_failed_analysis_fails_verification() {
    let p = running(Some(Ok(RunState::Failed(
        "AnalysisRun dev.01run ended Failed".into(),
    ))));
    assert_eq!(
        cond(&p, CONDITION_VERIFIED),
        (
            "False",
            "VerificationFailed",
            "AnalysisRun dev.01run ended Failed"
        )
    );
    assert_eq!(events(&p)[0].reason, "FreightVerificationFailed");
    assert_eq!(p.requeue, REQUEUE_IDLE);
}

#[test]
fn error_and_inconclusive_runs_keep_their_phase_as_in_kargo() {
    // Kargo takes the AnalysisRun's phase and message as the verification's: Error makes
    // Verified False (VerificationError), Inconclusive leaves it Unknown; neither verifies.
    for (state, phase, status, reason, event) in [
        (
            RunState::Error("args.service was not resolved".into()),
            "Error",
            "False",
            "VerificationError",
            "FreightVerificationErrored",
        ),
        (
            RunState::Inconclusive("Metric \"web\" assessed Inconclusive".into()),
            "Inconclusive",
            "Unknown",
            "VerificationInconclusive",
            "FreightVerificationInconclusive",
        ),
    ] {
        let message = match &state {
            RunState::Error(m) | RunState::Inconclusive(m) => m.clone(),
            _ => unreachable!(),
        };
        let p = running(Some(Ok(state)));
        assert_eq!(
            cond(&p, CONDITION_VERIFIED),
            (status, reason, message.as_str())
        );
        let info = &p.status.freight_history[0].verification_history[0];
        assert_eq!(info.phase.as_deref(), Some(phase));
        assert_eq!(events(&p)[0].reason, event);
        assert!(
            !p.effects
                .iter()
                .any(|e| matches!(e, Effect::MarkVerified { .. }))
        );
        assert_eq!(cond(&p, CONDITION_READY).1, reason);
        // Ended: the next reconcile keeps the verdict without reading the run again.
        let mut o = with_analysis();
        o.stage.status = Some(p.status.clone());
        let again = plan(&o, now());
        assert!(again.effects.is_empty(), "{:?}", again.effects);
        assert_eq!(cond(&again, CONDITION_VERIFIED).1, reason);
    }
}

#[test]
fn the_reverify_annotation_starts_a_new_verification_once() {
    let (mut o, first) = settle(promoted());
    assert_eq!(cond(&first, CONDITION_VERIFIED).1, "Verified");
    // A request naming no verification of the current Freight is ignored.
    let annotate = |o: &mut Observed, v: &str| {
        o.stage
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(crate::api::ANNOTATION_REVERIFY.into(), v.into());
    };
    annotate(&mut o, "someone-else");
    assert!(plan(&o, now()).effects.is_empty());
    // Kargo's request form, naming the verification that ended.
    annotate(&mut o, r#"{"id":"01ver","actor":"kubernetes:alice"}"#);
    o.ids.verification = "02ver".into();
    let p = plan(&o, now());
    let history = &p.status.freight_history[0].verification_history;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id.as_deref(), Some("02ver"));
    assert_eq!(history[0].actor.as_deref(), Some("kubernetes:alice"));
    assert_eq!(history[1].id.as_deref(), Some("01ver"));
    assert!(
        p.effects
            .iter()
            .any(|e| matches!(e, Effect::MarkVerified { .. }))
    );
    // Handled: the request names a verification that is no longer the latest.
    o.stage.status = Some(p.status);
    let again = plan(&o, now());
    assert!(again.effects.is_empty());
}

#[test]
fn the_abort_annotation_terminates_the_running_analysis_once() {
    let mut o = with_analysis();
    o.analysis_templates = Some(Ok(vec![]));
    let p = plan(&o, now());
    o.stage.status = Some(p.status);
    o.analysis_templates = None;
    let id = o.stage.status.as_ref().expect("status").freight_history[0].verification_history[0]
        .id
        .clone()
        .expect("id");
    o.stage.metadata.annotations.get_or_insert_default().insert(
        crate::api::ANNOTATION_ABORT.into(),
        format!(r#"{{"id":"{id}","actor":"kubernetes:bob"}}"#),
    );
    o.analysis_run = Some(Ok(RunState::Running));
    let p = plan(&o, now());
    assert_eq!(
        p.effects[0],
        Effect::TerminateAnalysisRun {
            namespace: NS.into(),
            name: "dev.01run".into()
        }
    );
    assert_eq!(
        cond(&p, CONDITION_VERIFIED),
        (
            "False",
            "VerificationFailed",
            "Verification aborted by user"
        )
    );
    let info = &p.status.freight_history[0].verification_history[0];
    assert_eq!(info.phase.as_deref(), Some("Failed"));
    assert_eq!(info.actor.as_deref(), Some("kubernetes:bob"));
    assert_eq!(events(&p)[0].reason, "FreightVerificationFailed");
    // Handled: the verification has ended, so the same annotation does nothing more.
    o.stage.status = Some(p.status);
    let again = plan(&o, now());
    assert!(
        !again
            .effects
            .iter()
            .any(|e| matches!(e, Effect::TerminateAnalysisRun { .. }))
    );
}

#[test]
fn the_refresh_token_is_echoed() {
    let mut o = promoted();
    o.stage
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_REFRESH.into(), "t1".into());
    let p = plan(&o, now());
    assert_eq!(p.status.last_handled_refresh.as_deref(), Some("t1"));
}

#[test]
fn verification_arguments_are_evaluated_and_errors_name_the_argument() {
    let mut o = promoted();
    o.promotions = vec![promotion_with(
        "p1",
        "f1",
        Some("Succeeded"),
        "2026-12-01T11:00:00Z",
        |v| {
            v["status"]["freightCollection"]["items"][ORIGIN]["images"] =
                json!([{"repoURL": "r", "tag": "f1"}]);
        },
    )];
    o.stage = stage_with(|v| {
        v["spec"]["vars"] = json!([{"name": "env", "value": "${{ ctx.stage }}-x"}]);
        v["spec"]["verification"] = json!({
            "analysisTemplates": [{"name": "t"}],
            "args": [
                {"name": "where", "value": "${{ ctx.project }}/${{ vars.env }}"},
                {"name": "tag", "value": "${{ imageFrom('r').Tag }}"},
                {"name": "plain", "value": "42"}
            ]
        });
    });
    o.analysis_templates = Some(Ok(vec![]));
    let p = plan(&o, now());
    let Some(Effect::CreateAnalysisRun { run, .. }) = p
        .effects
        .iter()
        .find(|e| matches!(e, Effect::CreateAnalysisRun { .. }))
    else {
        panic!("{:?}", p.effects)
    };
    let args: BTreeMap<String, Value> = run["spec"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_string(),
                a["value"].clone(),
            )
        })
        .collect();
    assert_eq!(args["where"], "p/dev-x");
    assert_eq!(args["tag"], "f1");
    assert_eq!(args["plain"], "42");

    o.stage = stage_with(|v| {
        v["spec"]["verification"] = json!({
            "analysisTemplates": [{"name": "t"}],
            "args": [{"name": "n", "value": "${{ 1 + 1 }}"}, {"name": "bad", "value": "${{ nope( }}"}]
        });
    });
    let p = plan(&o, now());
    let (status, reason, message) = cond(&p, CONDITION_VERIFIED);
    assert_eq!((status, reason), ("False", "VerificationError"));
    assert!(
        message.contains("verification argument \"n\"") && message.contains("must be a string"),
        "{message}"
    );
    assert!(
        !p.effects
            .iter()
            .any(|e| matches!(e, Effect::CreateAnalysisRun { .. }))
    );
}

// ---------------------------------------------------------------------------------------------
// Auto-promotion

#[test]
fn without_a_policy_nothing_is_auto_promoted() {
    let mut o = observed(stage_with(|_| {}));
    o.freights = vec![freight("f1", "2026-12-01T09:00:00Z")];
    let p = plan(&o, now());
    assert_eq!(p.status.auto_promotion_enabled, Some(false));
    assert!(p.effects.is_empty());
    // Nothing promoted yet and no auto-promotion: nothing changes with time alone, the
    // watches bring what could change it.
    assert_eq!(p.requeue, REQUEUE_IDLE);
}

#[test]
fn a_policy_auto_promotes_the_newest_freight() {
    let mut o = observed(stage_with(|_| {}));
    o.config = Some(auto_promotion_on());
    o.freights = vec![
        freight("f1", "2026-12-01T09:00:00Z"),
        freight("f2abcdef99", "2026-12-01T10:00:00Z"),
    ];
    let p = plan(&o, now());
    assert_eq!(p.status.auto_promotion_enabled, Some(true));
    let [Effect::CreatePromotion(promo), Effect::Event(event)] = p.effects.as_slice() else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(promo.name_any(), "dev.01pro.f2abcde");
    assert_eq!(promo.spec.freight.as_deref(), Some("f2abcdef99"));
    assert_eq!(promo.spec.stage, "dev");
    assert_eq!(
        promo
            .annotations()
            .get(ANNOTATION_CREATE_ACTOR)
            .map(String::as_str),
        Some(CONTROLLER_ACTOR)
    );
    let owner = &promo.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Stage", "uid-1")
    );
    assert_eq!(
        *event,
        Event::normal(
            "PromotionCreated",
            "AutoPromote",
            "Auto-promoting Freight f2abcdef99 to Stage dev (dev.01pro.f2abcde)".into()
        )
        .with_annotations(event.annotations.clone())
    );
    // Kargo's event annotations name the Promotion, its Stage, the Freight and the actor.
    let a = &event.annotations;
    assert_eq!(
        a["event.kargo.akuity.io/promotion-name"],
        "dev.01pro.f2abcde"
    );
    assert_eq!(a["event.kargo.akuity.io/stage-name"], "dev");
    assert_eq!(a["event.kargo.akuity.io/freight-name"], "f2abcdef99");
    assert_eq!(a["event.kargo.akuity.io/actor"], CONTROLLER_ACTOR);
    assert_eq!(a["event.kargo.akuity.io/project"], NS);
    // The Stage label Kargo's webhook sets, also on auto-promotions.
    assert_eq!(
        promo
            .labels()
            .get("kargo.akuity.io/stage")
            .map(String::as_str),
        Some("dev")
    );
    assert_eq!(p.requeue, REQUEUE_BUSY);
}

#[test]
fn auto_promotion_waits_when_the_newest_freight_is_current() {
    let mut o = promoted();
    o.config = Some(auto_promotion_on());
    let (_, p) = settle(o);
    assert!(p.effects.is_empty());
    assert_eq!(
        cond(&p, CONDITION_READY),
        ("True", "Ready", "Stage is ready")
    );
}

#[test]
fn auto_promotion_is_held_after_a_manual_rollback() {
    let mut o = promoted();
    o.config = Some(auto_promotion_on());
    o.freights.push(freight("f2", "2026-12-01T09:30:00Z"));
    // A person promoted older f1 after f2 existed.
    o.promotions = vec![promotion_with(
        "p1",
        "f1",
        Some("Succeeded"),
        "2026-12-01T11:00:00Z",
        |v| v["metadata"]["annotations"] = json!({"kargo.akuity.io/create-actor": "email:a@b.c"}),
    )];
    let (_, p) = settle(o);
    assert!(
        !p.effects
            .iter()
            .any(|e| matches!(e, Effect::CreatePromotion(_)))
    );
    let (status, reason, message) = cond(&p, CONDITION_READY);
    assert_eq!((status, reason), ("True", "AutoPromotionHeld"));
    assert!(
        message.contains("is held: Promotion p1 put Freight f1 here by hand"),
        "{message}"
    );
    // Shown in Kargo's status fields.
    let held = &p.status.auto_promotion_holds[ORIGIN];
    assert_eq!(
        (held.freight_name.as_str(), held.promotion_name.as_deref()),
        ("f1", Some("p1"))
    );
    assert_eq!(held.actor.as_deref(), Some("email:a@b.c"));
    assert_eq!(
        p.status.effective_auto_promotion_holds,
        p.status.auto_promotion_holds
    );
}

#[test]
fn auto_promotion_waits_while_promoting() {
    let mut o = observed(stage_with(|_| {}));
    o.config = Some(auto_promotion_on());
    o.freights = vec![freight("f1", "2026-12-01T09:00:00Z")];
    o.promotions = vec![promotion("p0", "f0", Some("Running"), "")];
    let p = plan(&o, now());
    assert!(p.effects.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Ready and requeue

#[test]
fn ready_reports_the_first_thing_that_keeps_the_stage_from_being_ready() {
    let problem = graph::Problem {
        reason: "Cycle",
        message: "a cycle".into(),
    };
    let healthy = StageHealth {
        health: crate::api::Health {
            status: Some(HealthState::Healthy),
            ..Default::default()
        },
        reason: "Healthy",
        message: "fine".into(),
    };
    let unhealthy = StageHealth {
        health: crate::api::Health {
            status: Some(HealthState::Unhealthy),
            ..Default::default()
        },
        message: "sick".into(),
        ..healthy.clone()
    };
    let ok = Verdict::new(true, "yes");
    let failed = Verdict::new(false, "no");
    let all = || Readiness {
        problems: std::slice::from_ref(&problem),
        promoting: Some("p1".into()),
        has_freight: false,
        health: &unhealthy,
        verified: Some(&failed),
        auto_note: Some("held".into()),
    };
    let reason = |r: Readiness<'_>| {
        let (ready, reason, message) = readiness(r);
        (ready, reason, message)
    };
    assert_eq!(reason(all()), (false, "Cycle", "a cycle".into()));
    let r = Readiness {
        problems: &[],
        ..all()
    };
    assert_eq!(
        reason(r),
        (false, "Promoting", "Promotion p1 is in progress".into())
    );
    let r = Readiness {
        problems: &[],
        promoting: None,
        ..all()
    };
    assert_eq!(reason(r).1, "NoFreight");
    let r = Readiness {
        problems: &[],
        promoting: None,
        has_freight: true,
        ..all()
    };
    assert_eq!(reason(r), (false, "Unhealthy", "sick".into()));
    let r = Readiness {
        problems: &[],
        promoting: None,
        has_freight: true,
        health: &healthy,
        ..all()
    };
    assert_eq!(reason(r), (false, "VerificationFailed", "no".into()));
    let r = Readiness {
        problems: &[],
        promoting: None,
        has_freight: true,
        health: &healthy,
        verified: None,
        ..all()
    };
    assert_eq!(reason(r).1, "Verifying");
    let r = Readiness {
        problems: &[],
        promoting: None,
        has_freight: true,
        health: &healthy,
        verified: Some(&ok),
        ..all()
    };
    assert_eq!(reason(r), (true, "AutoPromotionHeld", "held".into()));
    let r = Readiness {
        problems: &[],
        promoting: None,
        has_freight: true,
        health: &healthy,
        verified: Some(&ok),
        auto_note: None,
    };
    assert_eq!(reason(r), (true, "Ready", "Stage is ready".into()));
}

#[test]
fn a_settled_stage_is_not_rewritten_and_requeues_slowly() {
    let (_, p) = settle(promoted());
    assert!(!p.write_status);
    assert!(p.effects.is_empty());
    assert_eq!(p.requeue, REQUEUE_IDLE);
    assert_eq!(p.status.observed_generation, Some(3));
    // Conditions keep their transition times across identical plans.
    let (_, again) = settle(promoted());
    assert_eq!(p.status, again.status);
}

// ---------------------------------------------------------------------------------------------
// What the controller reads

#[test]
fn health_checks_are_run_only_for_a_successful_last_promotion_when_idle() {
    let records = vec![HealthCheckStep {
        uses: "argocd-update".into(),
        config: Some(json!({"apps": []})),
    }];
    let mut o = promoted();
    o.promotions = vec![promotion_with(
        "p1",
        "f1",
        Some("Succeeded"),
        "2026-12-01T11:00:00Z",
        |v| v["status"]["healthChecks"] = json!(records),
    )];
    assert_eq!(needs(&o, now()).health_checks, Some(records));
    o.promotions
        .push(promotion("p2", "f2", Some("Running"), ""));
    assert_eq!(needs(&o, now()).health_checks, None);
    o.promotions[1] = promotion("p2", "f2", Some("Failed"), "2026-12-01T11:10:00Z");
    assert_eq!(needs(&o, now()).health_checks, None);
    assert_eq!(
        needs(&observed(stage_with(|_| {})), now()),
        Needs::default()
    );
}

#[test]
fn templates_are_read_only_when_a_healthy_idle_stage_starts_verifying() {
    let mut o = with_analysis();
    o.health = Some(Ok(vec![app(
        HealthState::Progressing,
        "Progressing",
        "wait",
    )]));
    assert!(!needs(&o, now()).analysis_templates);
    o.health = Some(Ok(vec![]));
    assert!(needs(&o, now()).analysis_templates);
}

#[test]
fn a_failed_analysis_run_create_planned_again_keeps_the_effects_before_it() {
    let mut o = with_analysis();
    o.analysis_templates = Some(Ok(vec![]));
    let first = plan(&o, now());
    let i = first
        .effects
        .iter()
        .position(|e| matches!(e, Effect::CreateAnalysisRun { .. }))
        .expect("an AnalysisRun to create");
    o.analysis_create_error = Some("creating AnalysisRun dev.01run: denied".into());
    let second = plan(&o, now());
    assert_eq!(first.effects[..i], second.effects[..i]);
    assert_eq!(
        plain(&second.effects[i..]),
        [Effect::Event(Event::warning(
            "FreightVerificationErrored",
            "Verify",
            "creating AnalysisRun dev.01run: denied".into()
        ))]
    );
}

// ---------------------------------------------------------------------------------------------
// Failures of effects

const DENIED: &str = "promotions.kargo.akuity.io \"dev.01pro.f2abcde\" is forbidden: \
                      ValidatingAdmissionPolicy 'no-auto' with binding 'no-auto' denied request: \
                      refused by policy";

#[test]
fn a_refused_auto_promotion_shows_on_ready_and_the_status_is_still_written() {
    let mut o = promoted();
    o.config = Some(auto_promotion_on());
    o.freights
        .push(freight("f2abcdef99", "2026-12-01T11:30:00Z"));
    // The spec moved on since the status was written.
    o.stage.metadata.generation = Some(4);
    let planned = plan(&o, now());
    let create = planned
        .effects
        .iter()
        .find(|e| matches!(e, Effect::CreatePromotion(_)))
        .expect("auto-promotes f2")
        .clone();
    let failure = Failure::of_effect(&create, DENIED);
    assert_eq!(failure.reason, REASON_AUTO_PROMOTION_FAILED);
    assert!(
        !failure.replan,
        "nothing in the status records the Promotion"
    );

    let shown = failed(&o.stage, Some(&planned), &failure, now());
    let (status, reason, message) = cond(&shown, CONDITION_READY);
    assert_eq!((status, reason), ("False", REASON_AUTO_PROMOTION_FAILED));
    assert_eq!(
        message,
        format!("creating a Promotion for Freight f2abcdef99 failed: {DENIED}")
    );
    let ready = conditions::get(&shown.status.conditions, CONDITION_READY).expect("Ready");
    assert_eq!(ready.observed_generation, Some(4));
    assert_eq!(shown.status.observed_generation, Some(4));
    // The rest of what was planned (the Freight recorded as current, health) is kept.
    assert_eq!(shown.status.freight_history, planned.status.freight_history);
    assert_eq!(
        cond(&shown, CONDITION_HEALTHY),
        cond(&planned, CONDITION_HEALTHY)
    );
    assert!(shown.write_status);
    assert_eq!(
        events(&shown),
        vec![&Event::warning(
            REASON_AUTO_PROMOTION_FAILED,
            "Reconcile",
            message.to_string()
        )]
    );
    // No effect of the failed plan is repeated by the failure's plan.
    assert!(shown.effects.iter().all(|e| matches!(e, Effect::Event(_))));
}

#[test]
fn a_failure_clears_itself_when_the_next_attempt_works() {
    let (mut o, _) = settle(promoted());
    o.config = Some(auto_promotion_on());
    o.freights
        .push(freight("f2abcdef99", "2026-12-01T11:30:00Z"));
    let planned = plan(&o, now());
    let create = planned.effects[0].clone();
    assert!(matches!(create, Effect::CreatePromotion(_)), "{create:?}");
    let shown = failed(
        &o.stage,
        Some(&planned),
        &Failure::of_effect(&create, DENIED),
        now(),
    );
    // Written; the next plan still asks for the Promotion, and once it is created the Stage
    // shows it is promoting, no longer the failure.
    o.stage.status = Some(shown.status);
    let again = plan(&o, now());
    assert!(matches!(again.effects[0], Effect::CreatePromotion(_)));
    assert_ne!(
        cond(&again, CONDITION_READY).1,
        REASON_AUTO_PROMOTION_FAILED
    );
    o.promotions
        .push(promotion("dev.01pro.f2abcde", "f2abcdef99", None, ""));
    let after = plan(&o, now());
    assert_eq!(cond(&after, CONDITION_READY).1, "Promoting");
}

#[test]
fn a_failed_freight_update_keeps_the_status_read_so_it_is_planned_again() {
    // p2 (f2) succeeded since the status was written: f2 enters, f1 leaves.
    let (mut o, _) = settle(promoted());
    o.freights.push(freight("f2", "2026-12-01T11:30:00Z"));
    o.promotions.push(promotion(
        "p2",
        "f2",
        Some("Succeeded"),
        "2026-12-01T11:45:00Z",
    ));
    let planned = plan(&o, now());
    let enter = planned
        .effects
        .iter()
        .find(|e| matches!(e, Effect::EnterFreight { .. }))
        .expect("f2 enters")
        .clone();
    let failure = Failure::of_effect(&enter, "etcdserver: request timed out");
    assert_eq!(failure.reason, REASON_FREIGHT_UPDATE_FAILED);
    assert!(failure.replan);
    let shown = failed(&o.stage, Some(&planned), &failure, now());
    let read = o.stage.status.clone().expect("status");
    assert_eq!(shown.status.freight_history, read.freight_history);
    let (_, reason, message) = cond(&shown, CONDITION_READY);
    assert_eq!(reason, REASON_FREIGHT_UPDATE_FAILED);
    assert_eq!(
        message,
        "recording Freight f2 as currently in this Stage failed: etcdserver: request timed out"
    );
    // Written as shown, the next plan asks for the same Freight updates again.
    o.stage.status = Some(shown.status);
    let again = plan(&o, now());
    assert!(again.effects.contains(&enter));
}

#[test]
fn a_failed_read_shows_on_the_status_read() {
    let o = promoted();
    let (o, settled) = settle(o);
    let mut stage = o.stage.clone();
    stage.metadata.generation = Some(9);
    let shown = failed(&stage, None, &Failure::read("connection refused"), now());
    let (status, reason, message) = cond(&shown, CONDITION_READY);
    assert_eq!(
        (status, reason, message),
        (
            "False",
            REASON_READ_FAILED,
            "reading the Stage's project failed: connection refused"
        )
    );
    assert_eq!(shown.status.observed_generation, Some(9));
    assert_eq!(shown.status.freight_history, settled.status.freight_history);
}
