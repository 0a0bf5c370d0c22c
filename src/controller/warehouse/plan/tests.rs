//! Every decision of the Warehouse plan, without a control plane.

use super::*;
use crate::api::{
    DiscoveredCommit, DiscoveredImageReference, FreightCreationCriteria, ImageDiscoveryResult,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

const REPO: &str = "ghcr.io/acme/api";
const GIT: &str = "https://git.example.com/acme/deploy.git";

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn t(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("time"))
}

fn warehouse(expression: Option<&str>) -> Warehouse {
    let mut w: Warehouse = serde_json::from_value(serde_json::json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "p", "generation": 2},
        "spec": {"subscriptions": [
            {"image": {"repoURL": REPO}},
            {"git": {"repoURL": GIT}},
        ]},
    }))
    .expect("warehouse");
    w.spec.freight_creation_criteria = expression.map(|e| FreightCreationCriteria {
        expression: Some(e.to_string()),
    });
    w
}

fn manual(mut w: Warehouse) -> Warehouse {
    w.spec.freight_creation_policy = FreightCreationPolicy::Manual;
    w
}

fn with_status(mut w: Warehouse, status: WarehouseStatus) -> Warehouse {
    w.status = Some(status);
    w
}

fn image(tag: &str) -> ImageDiscoveryResult {
    ImageDiscoveryResult {
        repo_url: REPO.into(),
        references: vec![DiscoveredImageReference {
            tag: tag.into(),
            digest: format!("sha256:{tag}"),
            ..DiscoveredImageReference::default()
        }],
        ..ImageDiscoveryResult::default()
    }
}

fn commit(id: &str) -> GitDiscoveryResult {
    GitDiscoveryResult {
        repo_url: GIT.into(),
        commits: vec![DiscoveredCommit {
            id: Some(id.into()),
            ..DiscoveredCommit::default()
        }],
        ..GitDiscoveryResult::default()
    }
}

fn found(tag: &str, id: &str) -> Found {
    Found {
        images: vec![image(tag)],
        commits: vec![commit(id)],
        ..Found::default()
    }
}

/// What the reconciler reads for `found`: the lookup of the Freight the plan wants, if any.
fn observed(w: &Warehouse, found: Found, exists: bool) -> Observed {
    let freight = wanted_freight(w, &found).map(|f| FreightLookup {
        name: f.name_any(),
        exists,
        free_alias: "brave-otter".into(),
    });
    Observed {
        found,
        now: t(1_000),
        backoff: None,
        freight,
    }
}

fn status(plan: &Plan) -> &WarehouseStatus {
    plan.status.as_ref().expect("a status write")
}

fn cond<'a>(plan: &'a Plan, type_: &str) -> Option<&'a Condition> {
    conditions::get(&status(plan).conditions, type_)
}

/// `(status, reason)` of a condition, `None` when absent.
fn cond_is(plan: &Plan, type_: &str) -> Option<(String, String)> {
    cond(plan, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

fn pair(status: &str, reason: &str) -> Option<(String, String)> {
    Some((status.into(), reason.into()))
}

fn events(plan: &Plan) -> Vec<&Event> {
    plan.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn created(plan: &Plan) -> Option<&Freight> {
    plan.effects.iter().find_map(|e| match e {
        Effect::CreateFreight(f) => Some(f.as_ref()),
        _ => None,
    })
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        last_transition_time: t(10),
    }
}

// ------------------------------------------------------------------------------- scheduling

#[test]
fn discovery_is_due_first_on_spec_change_refresh_and_interval() {
    let w = warehouse(None);
    assert_eq!(
        decide(&w, s(300), t(1_000).0),
        Decision::Discover("first discovery")
    );
    let recorded = |generation, refresh: Option<&str>, at| WarehouseStatus {
        observed_generation: Some(generation),
        last_handled_refresh: refresh.map(str::to_string),
        discovered_artifacts: Some(DiscoveredArtifacts {
            discovered_at: at,
            ..DiscoveredArtifacts::default()
        }),
        ..WarehouseStatus::default()
    };
    let w1 = with_status(warehouse(None), recorded(1, None, Some(t(900))));
    assert_eq!(
        decide(&w1, s(300), t(1_000).0),
        Decision::Discover("spec changed")
    );
    let mut w2 = with_status(warehouse(None), recorded(2, Some("a"), Some(t(900))));
    w2.annotations_mut()
        .insert(ANNOTATION_REFRESH.into(), "b".into());
    assert_eq!(
        decide(&w2, s(300), t(1_000).0),
        Decision::Discover("refresh requested")
    );
    // The refresh token already handled: the clock decides.
    w2.annotations_mut()
        .insert(ANNOTATION_REFRESH.into(), "a".into());
    assert_eq!(decide(&w2, s(300), t(1_000).0), Decision::Wait(s(200)));
    assert_eq!(
        decide(&w2, s(300), t(1_200).0),
        Decision::Discover(INTERVAL_ELAPSED)
    );
    let w3 = with_status(warehouse(None), recorded(2, None, None));
    assert_eq!(
        decide(&w3, s(300), t(1_000).0),
        Decision::Discover(NO_DISCOVERY_RECORDED)
    );
    let plan = not_due(s(200));
    assert_eq!(plan.status, None, "waiting writes nothing");
    assert_eq!(plan.requeue, Requeue::After(s(200)));
}

#[test]
fn a_pending_retry_holds_even_when_the_interval_elapsed() {
    let elapsed = Decision::Discover(INTERVAL_ELAPSED);
    // Throttled: the registry's wait wins over the interval.
    assert_eq!(
        after_failure(elapsed.clone(), true, Some(s(90))),
        Decision::Wait(s(90))
    );
    // No failure before: the clock decides as usual.
    assert_eq!(after_failure(elapsed.clone(), false, Some(s(90))), elapsed);
    // A person asked: go ahead.
    let spec = Decision::Discover("spec changed");
    assert_eq!(after_failure(spec.clone(), true, Some(s(90))), spec);
    // Before the interval: the retry comes after the backoff, not only after the interval.
    assert_eq!(
        after_failure(Decision::Wait(s(600)), true, Some(s(20))),
        Decision::Wait(s(20))
    );
    assert_eq!(
        after_failure(Decision::Wait(s(600)), true, None),
        Decision::Discover("retrying after a failed discovery")
    );
    assert_eq!(
        after_failure(Decision::Wait(s(600)), false, None),
        Decision::Wait(s(600))
    );
    let failed = with_status(
        warehouse(None),
        WarehouseStatus {
            conditions: vec![condition("Healthy", "False", "DiscoveryFailed", "x")],
            ..WarehouseStatus::default()
        },
    );
    assert!(failed_before(&failed));
    assert!(!failed_before(&warehouse(None)));
}

#[test]
fn retry_after_sets_a_floor_under_the_backoff() {
    assert_eq!(retry_delay(s(10), None), s(10));
    assert_eq!(retry_delay(s(10), Some(s(120))), s(120));
    assert_eq!(retry_delay(s(300), Some(s(5))), s(300));
    assert_eq!(retry_delay(s(10), Some(s(86_400))), MAX_RETRY_AFTER);
    assert_eq!(
        retry_note(Some(s(120))),
        "retrying in 120s at the earliest, as the registry's Retry-After asks"
    );
    assert!(retry_note(Some(s(86_400))).contains("86400s, capped"));
    // Our own delay grows with every retry: not named, or each retry would rewrite the status.
    assert_eq!(retry_note(None), "retrying with backoff");
}

// ------------------------------------------------------------------------------ invalid spec

#[test]
fn an_invalid_spec_says_why_once_and_waits_for_a_change() {
    let w = with_status(
        warehouse(None),
        WarehouseStatus {
            conditions: vec![condition("Reconciling", "True", "Discovering", "")],
            ..WarehouseStatus::default()
        },
    );
    let problems = vec![
        "spec.interval: bad".to_string(),
        "spec.x: worse".to_string(),
    ];
    let plan = invalid_spec(&w, &problems, &t(5));
    assert_eq!(plan.outcome, Outcome::InvalidSpec);
    assert_eq!(plan.requeue, Requeue::AwaitChange);
    assert_eq!(cond_is(&plan, "Ready"), pair("False", "InvalidSpec"));
    let message = "spec.interval: bad; spec.x: worse";
    assert_eq!(
        cond(&plan, "Ready").map(|c| c.message.as_str()),
        Some(message)
    );
    assert!(cond(&plan, "Reconciling").is_none());
    assert_eq!(status(&plan).observed_generation, Some(2));
    assert_eq!(
        events(&plan),
        vec![&Event {
            warning: true,
            reason: "InvalidSpec",
            action: "Validate",
            note: message.into(),
        }]
    );
    // The same problems again: no second Event.
    let again = invalid_spec(&with_status(w, status(&plan).clone()), &problems, &t(6));
    assert!(events(&again).is_empty());
    assert_eq!(
        again.status, plan.status,
        "identical status, same transition time"
    );
}

// ------------------------------------------------------------------------------ discovery

#[test]
fn the_previous_git_result_is_offered_only_for_the_same_spec_and_subscription() {
    let named = |name: Option<&str>| GitDiscoveryResult {
        subscription_name: name.map(str::to_string),
        ..commit("abc")
    };
    let at = |generation, git| {
        with_status(
            warehouse(None),
            WarehouseStatus {
                observed_generation: Some(generation),
                discovered_artifacts: Some(DiscoveredArtifacts {
                    git,
                    ..DiscoveredArtifacts::default()
                }),
                ..WarehouseStatus::default()
            },
        )
    };
    let mut sub = warehouse(None).spec.subscriptions[1].clone();
    let spec = sub.git.clone().expect("git subscription");
    // Same generation: offered; also when Kargo recorded no subscription name.
    let w = at(2, vec![named(None)]);
    assert_eq!(previous_git(&w, &sub, &spec), Some(&named(None)));
    sub.name = Some("deploy".into());
    assert_eq!(previous_git(&w, &sub, &spec), Some(&named(None)));
    let w = at(2, vec![named(Some("other")), named(Some("deploy"))]);
    assert_eq!(previous_git(&w, &sub, &spec), Some(&named(Some("deploy"))));
    // The spec changed since (generation 2, observed 1): never offered.
    let w = at(1, vec![named(Some("deploy"))]);
    assert_eq!(previous_git(&w, &sub, &spec), None);
    // Another repository: not offered.
    let mut elsewhere = named(Some("deploy"));
    elsewhere.repo_url = "https://git.example.com/other.git".into();
    let w = at(2, vec![elsewhere]);
    assert_eq!(previous_git(&w, &sub, &spec), None);
}

#[test]
fn after_a_partial_failure_a_named_result_replaces_kargos_unnamed_one() {
    // Kargo before v1.12 recorded no subscription names.
    let previous = DiscoveredArtifacts {
        images: vec![image("1.0.0")],
        git: vec![commit("kargo")],
        ..DiscoveredArtifacts::default()
    };
    let w = with_status(
        warehouse(None),
        WarehouseStatus {
            discovered_artifacts: Some(previous),
            ..WarehouseStatus::default()
        },
    );
    let named = GitDiscoveryResult {
        subscription_name: Some("deploy".into()),
        ..commit("haul")
    };
    let mut partial = Found {
        commits: vec![named.clone()],
        ..Found::default()
    };
    partial.failed("image subscription ghcr.io/acme/api: down".into(), None);
    let plan = after_discovery(&w, s(300), &observed(&w, partial, false));
    let d = status(&plan)
        .discovered_artifacts
        .as_ref()
        .expect("artifacts");
    assert_eq!(d.git, vec![named]);
    assert_eq!(d.images, vec![image("1.0.0")]);
}

#[test]
fn a_failed_subscription_fails_discovery_and_keeps_what_it_found_before() {
    let previous = DiscoveredArtifacts {
        discovered_at: Some(t(500)),
        images: vec![image("1.0.0")],
        git: vec![commit("old")],
        ..DiscoveredArtifacts::default()
    };
    let mut w = with_status(
        warehouse(None),
        WarehouseStatus {
            discovered_artifacts: Some(previous),
            ..WarehouseStatus::default()
        },
    );
    w.annotations_mut()
        .insert(ANNOTATION_REFRESH.into(), "token".into());
    let mut partial = Found {
        commits: vec![commit("new")],
        ..Found::default()
    };
    partial.failed(
        "image subscription ghcr.io/acme/api: throttled".into(),
        Some(s(90)),
    );
    let mut obs = observed(&w, partial, false);
    obs.backoff = Some(s(20));
    assert_eq!(obs.freight, None, "no Freight is looked up after a failure");
    let plan = after_discovery(&w, s(300), &obs);
    assert_eq!(plan.outcome, Outcome::DiscoveryFailed);
    assert_eq!(plan.requeue, Requeue::After(s(90)));
    for c in ["Healthy", "Ready"] {
        assert_eq!(cond_is(&plan, c), pair("False", "DiscoveryFailed"));
    }
    let message = "image subscription ghcr.io/acme/api: throttled; \
                   retrying in 90s at the earliest, as the registry's Retry-After asks";
    assert_eq!(
        cond(&plan, "Ready").map(|c| c.message.as_str()),
        Some(message)
    );
    assert_eq!(
        plan.effects,
        vec![
            Effect::Event(Event {
                warning: true,
                reason: "DiscoveryFailed",
                action: "Discover",
                note: message.into(),
            }),
            Effect::RetryNotBefore(s(90)),
        ]
    );
    let d = status(&plan)
        .discovered_artifacts
        .as_ref()
        .expect("artifacts");
    assert_eq!(
        d.images,
        vec![image("1.0.0")],
        "the failed one keeps its result"
    );
    assert_eq!(d.git, vec![commit("new")], "the others are replaced");
    assert_eq!(
        d.discovered_at,
        Some(t(500)),
        "the interval counts from success"
    );
    assert_eq!(status(&plan).last_handled_refresh.as_deref(), Some("token"));
    assert_eq!(status(&plan).observed_generation, Some(2));
}

#[test]
fn the_same_failure_again_changes_nothing_and_publishes_no_event() {
    let w = warehouse(None);
    let down = || {
        let mut f = Found::default();
        f.failed("image subscription a: down".into(), None);
        f
    };
    let mut obs = observed(&w, down(), false);
    obs.backoff = Some(s(10));
    let first = after_discovery(&w, s(300), &obs);
    assert_eq!(events(&first).len(), 1);
    // Retried later with a longer backoff: the status is the one written, so no write.
    let w = with_status(w, status(&first).clone());
    let mut obs = observed(&w, down(), false);
    obs.backoff = Some(s(40));
    obs.now = t(1_100);
    let again = after_discovery(&w, s(300), &obs);
    assert_eq!(again.status.as_ref(), w.status.as_ref());
    assert!(events(&again).is_empty(), "{:?}", again.effects);
    assert_eq!(again.requeue, Requeue::After(s(40)));
    assert!(again.effects.contains(&Effect::RetryNotBefore(s(40))));
}

#[test]
fn failures_of_several_subscriptions_are_all_named() {
    let w = warehouse(None);
    let mut f = Found::default();
    f.failed("image subscription a: down".into(), None);
    f.failed("git subscription b: gone".into(), None);
    let mut obs = observed(&w, f, false);
    obs.backoff = Some(s(10));
    let plan = after_discovery(&w, s(300), &obs);
    assert_eq!(plan.requeue, Requeue::After(s(10)));
    assert_eq!(
        cond(&plan, "Healthy").map(|c| c.message.as_str()),
        Some("image subscription a: down; git subscription b: gone; retrying with backoff")
    );
    // A first discovery that failed records when it ran.
    let d = status(&plan).discovered_artifacts.as_ref();
    assert_eq!(d.and_then(|d| d.discovered_at.clone()), Some(t(1_000)));
}

#[test]
fn a_subscription_that_found_nothing_is_missing_artifacts() {
    let w = warehouse(None);
    let mut f = found("1.0.0", "abc");
    f.commits[0].commits.clear();
    let plan = after_discovery(&w, s(300), &observed(&w, f.clone(), false));
    assert_eq!(plan.outcome, Outcome::MissingArtifacts);
    assert_eq!(plan.requeue, Requeue::After(s(300)));
    assert_eq!(plan.effects, vec![Effect::ResetBackoff]);
    for c in ["Healthy", "Ready"] {
        assert_eq!(cond_is(&plan, c), pair("False", "MissingArtifacts"));
    }
    assert_eq!(
        cond(&plan, "Ready").map(|c| c.message.as_str()),
        Some(&*format!(
            "git subscription {GIT} found no commit matching its criteria"
        ))
    );
    let d = status(&plan).discovered_artifacts.clone();
    assert_eq!(
        d,
        Some(DiscoveredArtifacts {
            discovered_at: Some(t(1_000)),
            images: f.images,
            git: f.commits,
            charts: vec![],
            results: vec![],
        })
    );
    // Charts name their constraint.
    let charts = Found {
        charts: vec![ChartDiscoveryResult {
            repo_url: "oci://ghcr.io/c".into(),
            semver_constraint: Some("^2".into()),
            ..ChartDiscoveryResult::default()
        }],
        ..Found::default()
    };
    let plan = after_discovery(&w, s(300), &observed(&w, charts, false));
    assert_eq!(
        cond(&plan, "Ready").map(|c| c.message.as_str()),
        Some(
            "chart subscription oci://ghcr.io/c found no version satisfying semverConstraint \"^2\""
        )
    );
}

// ------------------------------------------------------------------------------ Freight

#[test]
fn new_artifacts_become_freight_with_the_looked_up_alias() {
    let mut w = warehouse(None);
    w.annotations_mut()
        .insert(ANNOTATION_REFRESH.into(), "now".into());
    let obs = observed(&w, found("1.0.0", "abc"), false);
    let name = obs
        .freight
        .as_ref()
        .map(|l| l.name.clone())
        .expect("wanted");
    let plan = after_discovery(&w, s(300), &obs);
    assert_eq!(plan.outcome, Outcome::FreightCreated);
    assert_eq!(plan.requeue, Requeue::After(s(300)));
    let f = created(&plan).expect("Freight to create");
    assert_eq!(f.name_any(), name);
    assert_eq!(f.namespace().as_deref(), Some("p"));
    assert_eq!(f.alias.as_deref(), Some("brave-otter"));
    assert_eq!(
        f.labels().get(LABEL_ALIAS).map(String::as_str),
        Some("brave-otter")
    );
    assert_eq!(f.discovered_at, Some(t(1_000)));
    assert_eq!(f.images[0].tag.as_deref(), Some("1.0.0"));
    assert_eq!(f.commits[0].id.as_deref(), Some("abc"));
    let message = format!("Created Freight {name} (brave-otter)");
    assert_eq!(
        events(&plan),
        vec![&Event {
            warning: false,
            reason: "FreightCreated",
            action: "CreateFreight",
            note: message.clone(),
        }]
    );
    assert_eq!(
        cond_is(&plan, "FreightCreated"),
        pair("True", "FreightCreated")
    );
    assert_eq!(
        cond(&plan, "FreightCreated").map(|c| c.message.clone()),
        Some(message)
    );
    assert_eq!(
        cond_is(&plan, "FreightCreationCriteriaSatisfied"),
        pair("True", "CriteriaSatisfied")
    );
    assert_eq!(
        cond_is(&plan, "Healthy"),
        pair("True", "DiscoverySucceeded")
    );
    assert_eq!(cond_is(&plan, "Ready"), pair("True", "Ready"));
    let st = status(&plan);
    assert_eq!(st.last_freight_id.as_deref(), Some(name.as_str()));
    assert_eq!(st.last_handled_refresh.as_deref(), Some("now"));
    assert_eq!(st.observed_generation, Some(2));
    assert!(plan.effects.contains(&Effect::ResetBackoff));
    // Ready comes last, as a person reads the list.
    assert_eq!(
        st.conditions.last().map(|c| c.type_.as_str()),
        Some("Ready")
    );
}

#[test]
fn existing_freight_is_not_created_again() {
    let w = warehouse(None);
    let obs = observed(&w, found("1.0.0", "abc"), true);
    let name = obs
        .freight
        .as_ref()
        .map(|l| l.name.clone())
        .expect("wanted");
    let plan = after_discovery(&w, s(300), &obs);
    assert_eq!(plan.outcome, Outcome::FreightAlreadyExists);
    assert!(created(&plan).is_none());
    assert!(events(&plan).is_empty());
    assert_eq!(
        cond_is(&plan, "FreightCreated"),
        pair("False", "AlreadyExists")
    );
    assert_eq!(
        cond(&plan, "FreightCreated").map(|c| c.message.clone()),
        Some(format!(
            "Freight {name} for the newest artifacts already exists"
        ))
    );
    assert_eq!(status(&plan).last_freight_id, Some(name));
    assert_eq!(cond_is(&plan, "Ready"), pair("True", "Ready"));
}

#[test]
fn freight_is_never_created_without_a_lookup_of_its_name() {
    let w = warehouse(None);
    let mut obs = observed(&w, found("1.0.0", "abc"), false);
    obs.freight = None;
    let plan = after_discovery(&w, s(300), &obs);
    assert!(created(&plan).is_none());
    assert_eq!(plan.outcome, Outcome::FreightAlreadyExists);
    // A lookup of another name does not count either.
    let mut obs = observed(&w, found("1.0.0", "abc"), false);
    if let Some(l) = obs.freight.as_mut() {
        l.name = "other".into();
    }
    assert!(created(&after_discovery(&w, s(300), &obs)).is_none());
}

#[test]
fn manual_policy_records_artifacts_and_creates_nothing() {
    // The criteria would fail, but under Manual they are not read.
    let w = manual(with_status(
        warehouse(Some("imageFrom('ghcr.io/x').Tag == '1'")),
        WarehouseStatus {
            conditions: vec![condition(
                "FreightCreationCriteriaSatisfied",
                "True",
                "CriteriaSatisfied",
                "",
            )],
            ..WarehouseStatus::default()
        },
    ));
    let obs = observed(&w, found("1.0.0", "abc"), false);
    assert_eq!(obs.freight, None, "nothing to look up under Manual");
    let plan = after_discovery(&w, s(300), &obs);
    assert_eq!(plan.outcome, Outcome::ManualPolicy);
    assert!(created(&plan).is_none());
    assert_eq!(
        cond_is(&plan, "FreightCreated"),
        pair("False", "ManualPolicy")
    );
    assert!(cond(&plan, "FreightCreationCriteriaSatisfied").is_none());
    assert_eq!(
        cond_is(&plan, "Healthy"),
        pair("True", "DiscoverySucceeded")
    );
    assert_eq!(cond_is(&plan, "Ready"), pair("True", "Ready"));
    assert_eq!(status(&plan).last_freight_id, None);
    assert!(status(&plan).discovered_artifacts.is_some());
}

// ------------------------------------------------------------------------------ criteria

#[test]
fn criteria_outcomes() {
    let d = fresh_artifacts(&found("1.4.0", "abc"), None);
    assert_eq!(check_criteria(&warehouse(None), &d), Criteria::Satisfied);
    assert_eq!(
        check_criteria(
            &warehouse(Some("imageFrom('ghcr.io/acme/api').Tag startsWith '1.'")),
            &d
        ),
        Criteria::Satisfied
    );
    match check_criteria(
        &warehouse(Some("imageFrom('ghcr.io/acme/api').Tag == '2.0.0'")),
        &d,
    ) {
        Criteria::NotSatisfied(m) => {
            assert!(m.contains("ghcr.io/acme/api:1.4.0"), "{m}");
            assert!(m.contains(&format!("{GIT}@abc")), "{m}");
            assert!(m.contains("== '2.0.0'"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    match check_criteria(&warehouse(Some("imageFrom('ghcr.io/x').Tag == '1'")), &d) {
        Criteria::Failed(m) => assert!(
            m.contains("spec.freightCreationCriteria.expression") && m.contains("cannot fetch Tag"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsatisfied_criteria_create_nothing_and_say_why() {
    let w = warehouse(Some("imageFrom('ghcr.io/acme/api').Tag == '2.0.0'"));
    let obs = observed(&w, found("1.0.0", "abc"), false);
    assert_eq!(obs.freight, None, "nothing to look up");
    let plan = after_discovery(&w, s(300), &obs);
    assert_eq!(plan.outcome, Outcome::CriteriaNotSatisfied);
    assert!(created(&plan).is_none());
    assert_eq!(
        cond_is(&plan, "FreightCreationCriteriaSatisfied"),
        pair("False", "CriteriaNotSatisfied")
    );
    assert_eq!(
        cond_is(&plan, "FreightCreated"),
        pair("False", "CriteriaNotSatisfied")
    );
    assert_eq!(
        cond_is(&plan, "Healthy"),
        pair("True", "DiscoverySucceeded")
    );
    assert_eq!(cond_is(&plan, "Ready"), pair("True", "Ready"));
    assert_eq!(plan.requeue, Requeue::After(s(300)));
}

#[test]
fn satisfied_criteria_create_freight() {
    let w = warehouse(Some("imageFrom('ghcr.io/acme/api').Tag == '1.0.0'"));
    let plan = after_discovery(&w, s(300), &observed(&w, found("1.0.0", "abc"), false));
    assert_eq!(plan.outcome, Outcome::FreightCreated);
    assert_eq!(
        cond_is(&plan, "FreightCreationCriteriaSatisfied"),
        pair("True", "CriteriaSatisfied")
    );
}

#[test]
fn a_failing_criteria_expression_is_unhealthy_and_reported_once() {
    let w = with_status(
        warehouse(Some("imageFrom('ghcr.io/x').Tag == '1'")),
        WarehouseStatus {
            conditions: vec![condition(
                "FreightCreationCriteriaSatisfied",
                "True",
                "CriteriaSatisfied",
                "",
            )],
            ..WarehouseStatus::default()
        },
    );
    let plan = after_discovery(&w, s(300), &observed(&w, found("1.0.0", "abc"), false));
    assert_eq!(plan.outcome, Outcome::CriteriaEvaluationFailed);
    assert_eq!(plan.requeue, Requeue::After(s(300)), "never hot");
    assert!(created(&plan).is_none());
    assert!(cond(&plan, "FreightCreationCriteriaSatisfied").is_none());
    for c in ["Healthy", "Ready"] {
        assert_eq!(cond_is(&plan, c), pair("False", "CriteriaEvaluationFailed"));
    }
    let evs = events(&plan);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].reason, "CriteriaEvaluationFailed");
    assert_eq!(evs[0].action, "EvaluateCriteria");
    assert!(evs[0].warning);
    assert_eq!(
        Some(evs[0].note.as_str()),
        cond(&plan, "Ready").map(|c| c.message.as_str())
    );
    // The same failure next time: no second Event.
    let w = with_status(w, status(&plan).clone());
    let again = after_discovery(&w, s(300), &observed(&w, found("1.0.0", "abc"), false));
    assert!(events(&again).is_empty());
}

// ------------------------------------------------------------------------------ the rest

#[test]
fn a_warehouse_without_subscriptions_is_ready_with_nothing_to_record() {
    let mut w = warehouse(None);
    w.spec.subscriptions.clear();
    let obs = observed(&w, Found::default(), false);
    assert_eq!(obs.freight, None);
    let plan = after_discovery(&w, s(60), &obs);
    assert_eq!(plan.outcome, Outcome::Ready);
    assert_eq!(cond_is(&plan, "Ready"), pair("True", "Ready"));
    assert!(cond(&plan, "FreightCreated").is_none());
}

#[test]
fn a_stale_reconciling_condition_is_dropped() {
    let w = with_status(
        warehouse(None),
        WarehouseStatus {
            conditions: vec![condition("Reconciling", "True", "Discovering", "")],
            ..WarehouseStatus::default()
        },
    );
    let plan = after_discovery(&w, s(300), &observed(&w, found("1.0.0", "abc"), true));
    assert!(cond(&plan, "Reconciling").is_none());
}

#[test]
fn planned_freight_takes_the_newest_chart_version() {
    let w = warehouse(None);
    let charts = vec![ChartDiscoveryResult {
        repo_url: "oci://ghcr.io/acme/charts/api".into(),
        versions: vec!["1.2.0".into(), "1.1.0".into()],
        subscription_name: Some("c".into()),
        ..ChartDiscoveryResult::default()
    }];
    let f = plan_freight(&w, &[], &[], &charts).expect("freight");
    assert_eq!(f.charts.len(), 1);
    assert_eq!(f.charts[0].version.as_deref(), Some("1.2.0"));
    assert_eq!(f.charts[0].subscription_name.as_deref(), Some("c"));
    assert_eq!(f.name_any(), crate::freight::freight_id(&f));
    let empty = vec![ChartDiscoveryResult {
        versions: vec![],
        ..charts[0].clone()
    }];
    assert!(plan_freight(&w, &[], &[], &empty).is_none());
}

// ------------------------------------------------------------------------- a refused create

#[test]
fn a_refused_freight_create_shows_and_is_retried_after_the_backoff() {
    let w = warehouse(None);
    let planned = after_discovery(&w, s(300), &observed(&w, found("v1", "c1"), false));
    let name = created(&planned).expect("creates Freight").name_any();
    let error = "freights.kargo.akuity.io is forbidden: ValidatingAdmissionPolicy 'no-freight' \
                 with binding 'no-freight' denied request: refused";
    let shown = freight_create_failed(&w, planned.clone(), error, s(10), &t(1_000));
    let message = format!("creating Freight {name} failed: {error}; retrying with backoff");
    for type_ in [CONDITION_READY, CONDITION_FREIGHT_CREATED] {
        let c = cond(&shown, type_).expect("condition");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("False", REASON_FREIGHT_CREATE_FAILED, message.as_str())
        );
    }
    // What discovery found and the generation it saw are still written.
    assert_eq!(status(&shown).observed_generation, Some(2));
    assert_eq!(
        status(&shown).discovered_artifacts,
        status(&planned).discovered_artifacts
    );
    assert_eq!(status(&shown).last_freight_id, None);
    assert_eq!(created(&shown), None);
    assert_eq!(
        events(&shown),
        vec![&Event {
            warning: true,
            reason: REASON_FREIGHT_CREATE_FAILED,
            action: "CreateFreight",
            note: message.clone(),
        }]
    );
    assert!(shown.effects.contains(&Effect::RetryNotBefore(s(10))));
    assert_eq!(shown.requeue, Requeue::After(s(10)));

    // Written, the Warehouse waits for the backoff, not the interval, and then discovers.
    let w = with_status(w, status(&shown).clone());
    assert!(failed_before(&w));
    let due = decide(&w, s(300), t(1_005).0);
    assert_eq!(
        after_failure(due.clone(), true, Some(s(5))),
        Decision::Wait(s(5))
    );
    assert!(matches!(
        after_failure(due, true, None),
        Decision::Discover(_)
    ));
}
