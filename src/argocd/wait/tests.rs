use serde_json::{Value, json};

use super::*;

fn app(status: Value, operation: Value) -> Application {
    serde_json::from_value(json!({
        "metadata": {"name": "a", "namespace": "argocd"},
        "spec": {},
        "status": status,
        "operation": operation,
    }))
    .expect("Application")
}

fn synced(health: &str) -> Value {
    json!({
        "health": {"status": health},
        "sync": {"status": "Synced"},
        "reconciledAt": "2026-11-26T07:00:05Z",
        "operationState": {"phase": "Succeeded", "finishedAt": "2026-11-26T07:00:01Z"}
    })
}

#[test]
fn healthy_synced_and_idle_is_ready_by_default() {
    assert_eq!(
        readiness(
            &app(synced("Healthy"), Value::Null),
            &DEFAULT_WAIT_FOR,
            None
        ),
        Readiness::Ready
    );
}

#[test]
fn each_default_condition_holds_the_wait() {
    let progressing = readiness(
        &app(synced("Progressing"), Value::Null),
        &DEFAULT_WAIT_FOR,
        None,
    );
    assert_eq!(
        progressing,
        Readiness::Waiting("Argo CD Application argocd/a health is Progressing".into())
    );
    let mut out_of_sync = synced("Healthy");
    out_of_sync["sync"]["status"] = json!("OutOfSync");
    assert_eq!(
        readiness(&app(out_of_sync, Value::Null), &DEFAULT_WAIT_FOR, None),
        Readiness::Waiting("Argo CD Application argocd/a sync status is OutOfSync".into())
    );
    let requested = readiness(
        &app(synced("Healthy"), json!({"sync": {}})),
        &DEFAULT_WAIT_FOR,
        None,
    );
    assert!(matches!(requested, Readiness::Waiting(m) if m.contains("operation in progress")));
    let mut running = synced("Healthy");
    running["operationState"] = json!({"phase": "Running"});
    assert!(matches!(
        readiness(&app(running, Value::Null), &DEFAULT_WAIT_FOR, None),
        Readiness::Waiting(m) if m.contains("operation in progress (Running)")
    ));
}

#[test]
fn only_the_named_conditions_count() {
    let mut out_of_sync = synced("Healthy");
    out_of_sync["sync"]["status"] = json!("OutOfSync");
    let a = app(out_of_sync, json!({"sync": {}}));
    assert_eq!(readiness(&a, &[WaitFor::Health], None), Readiness::Ready);
    assert!(matches!(
        readiness(&a, &[WaitFor::Sync], None),
        Readiness::Waiting(_)
    ));
}

#[test]
fn health_conditions_are_ored() {
    let suspended = app(synced("Suspended"), Value::Null);
    assert_eq!(
        readiness(&suspended, &[WaitFor::Health, WaitFor::Suspended], None),
        Readiness::Ready
    );
    assert!(matches!(
        readiness(&suspended, &[WaitFor::Health], None),
        Readiness::Waiting(_)
    ));
    let degraded = app(synced("Degraded"), Value::Null);
    assert_eq!(
        readiness(&degraded, &[WaitFor::Degraded], None),
        Readiness::Ready
    );
}

#[test]
fn a_regression_to_degraded_fails_but_starting_degraded_waits() {
    let degraded = app(synced("Degraded"), Value::Null);
    assert!(matches!(
        readiness(&degraded, &[WaitFor::Health], None),
        Readiness::Waiting(_)
    ));
    assert!(matches!(
        readiness(&degraded, &[WaitFor::Health], Some("Unknown")),
        Readiness::Waiting(_)
    ));
    assert_eq!(
        readiness(&degraded, &[WaitFor::Health], Some("Healthy")),
        Readiness::Failed(
            "Argo CD Application argocd/a health has regressed from Healthy to Degraded".into()
        )
    );
    // Waiting for degraded itself: no regression check.
    assert_eq!(
        readiness(&degraded, &[WaitFor::Degraded], Some("Healthy")),
        Readiness::Ready
    );
}

#[test]
fn stale_health_asks_for_a_refresh_only_when_health_is_checked() {
    let mut stale = synced("Healthy");
    stale["reconciledAt"] = json!("2026-11-26T07:00:00Z");
    let a = app(stale, Value::Null);
    assert!(
        matches!(readiness(&a, &[WaitFor::Health], None), Readiness::Stale(m) if m.contains("health is stale"))
    );
    assert_eq!(readiness(&a, &[WaitFor::Sync], None), Readiness::Ready);
}

#[test]
fn error_conditions_fail_whatever_is_waited_for() {
    let mut s = synced("Healthy");
    s["conditions"] = json!([{"type": "ComparisonError", "message": "repo unreachable"}]);
    assert_eq!(
        readiness(&app(s, Value::Null), &[WaitFor::Sync], None),
        Readiness::Failed("Argo CD Application argocd/a has an error condition: ComparisonError: repo unreachable".into())
    );
}

#[test]
fn config_problems_are_named() {
    let cfg = |v: Value| {
        serde_json::from_value::<WaitConfig>(v)
            .expect("parses")
            .validate()
    };
    assert!(cfg(json!({"apps": [{"name": "a", "waitFor": ["health", "sync"]}]})).is_ok());
    assert!(cfg(json!({"apps": [{"selector": {"matchLabels": {"x": "y"}}}]})).is_ok());
    for (v, want) in [
        (json!({"apps": []}), "apps: at least one"),
        (
            json!({"apps": [{}]}),
            "apps[0]: exactly one of name or selector",
        ),
        (
            json!({"apps": [{"name": "a", "selector": {"matchLabels": {"x": "y"}}}]}),
            "exactly one",
        ),
        (
            json!({"apps": [{"name": "a", "waitFor": []}]}),
            "apps[0].waitFor: must list",
        ),
        (
            json!({"apps": [{"name": "a", "waitFor": ["sync", "sync"]}]}),
            "apps[0].waitFor: conditions must not repeat",
        ),
        (
            json!({"apps": [{"name": "a", "namespace": ""}]}),
            "apps[0].namespace",
        ),
    ] {
        let err = cfg(v).expect_err("invalid").to_string();
        assert!(err.contains(want), "{err}");
    }
    assert!(
        serde_json::from_value::<WaitConfig>(
            json!({"apps": [{"name": "a", "waitFor": ["ready"]}]})
        )
        .is_err()
    );
}
