use serde_json::{Value, json};

use super::*;

const REPO: &str = "https://git.example.com/org/gitops.git";
const SHA: &str = "105be6e0000000000000000000000000000000000";

/// The healthy fixture of test-infra.md §6, adjusted by `f` on its JSON form.
fn app_with(f: impl FnOnce(&mut Value)) -> Application {
    let mut v = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "my-app-dev", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "targetRevision": "env/dev", "path": "."},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "my-app-dev"}
        },
        "status": {
            "health": {"status": "Healthy", "lastTransitionTime": "2026-11-26T07:00:00Z"},
            "sync": {"status": "Synced", "revision": SHA},
            "reconciledAt": "2026-11-26T07:00:05Z",
            "operationState": {
                "phase": "Succeeded",
                "message": "successfully synced (all tasks run)",
                "startedAt": "2026-11-26T06:59:58Z",
                "finishedAt": "2026-11-26T07:00:01Z",
                "operation": {"sync": {"revision": SHA}, "initiatedBy": {"username": "kargo"}},
                "syncResult": {"revision": SHA, "source": {"repoURL": REPO}}
            }
        }
    });
    f(&mut v);
    serde_json::from_value(v).expect("valid Application")
}

fn desired(revs: &[&str]) -> Vec<String> {
    revs.iter().map(|r| r.to_string()).collect()
}

#[test]
fn application_health_applies_kargos_checks_in_order() {
    struct Case {
        name: &'static str,
        app: Option<Application>,
        desired: Vec<String>,
        state: HealthState,
        reason: &'static str,
        message_has: &'static str,
        refresh: bool,
    }
    let case = |name, app, desired, state, reason, message_has| Case {
        name,
        app,
        desired,
        state,
        reason,
        message_has,
        refresh: false,
    };
    let cases = vec![
        case(
            "missing",
            None,
            desired(&[SHA]),
            HealthState::Unknown,
            "NotFound",
            "not found",
        ),
        Case {
            refresh: true,
            ..case(
                "stale: reconciled before the sync finished",
                Some(app_with(|v| {
                    v["status"]["reconciledAt"] = json!("2026-11-26T07:00:00Z")
                })),
                desired(&[SHA]),
                HealthState::Unknown,
                "Stale",
                "argocd/my-app-dev: health is stale: Argo CD has not reconciled since the last sync finished",
            )
        },
        Case {
            refresh: true,
            ..case(
                "stale: never reconciled, even if Degraded",
                Some(app_with(|v| {
                    v["status"].as_object_mut().unwrap().remove("reconciledAt");
                    v["status"]["health"]["status"] = json!("Degraded");
                })),
                vec![],
                HealthState::Unknown,
                "Stale",
                "last reconciled never",
            )
        },
        case(
            "reconciled in the same second as the sync finished is fresh",
            Some(app_with(|v| {
                v["status"]["reconciledAt"] = json!("2026-11-26T07:00:01Z")
            })),
            desired(&[SHA]),
            HealthState::Healthy,
            "Healthy",
            "argocd/my-app-dev is Healthy",
        ),
        case(
            "comparison error",
            Some(app_with(|v| {
                v["status"]["conditions"] = json!([
                    {"type": "SyncError", "message": "ignored"},
                    {"type": "ComparisonError", "message": "rpc error: repository not accessible"}
                ]);
            })),
            desired(&[SHA]),
            HealthState::Unhealthy,
            "ComparisonError",
            "argocd/my-app-dev has an error condition: ComparisonError: rpc error: repository not accessible",
        ),
        case(
            "invalid spec",
            Some(app_with(|v| {
                v["status"]["conditions"] = json!([{"type": "InvalidSpecError", "message": "destination server not allowed"}]);
            })),
            vec![],
            HealthState::Unhealthy,
            "InvalidSpecError",
            "InvalidSpecError: destination server not allowed",
        ),
        case(
            "sync requested",
            Some(app_with(|v| v["operation"] = json!({"sync": {}}))),
            desired(&[SHA]),
            HealthState::Unknown,
            "SyncInProgress",
            "argocd/my-app-dev is being synced",
        ),
        case(
            "sync running",
            Some(app_with(|v| {
                let st = &mut v["status"]["operationState"];
                st.as_object_mut().unwrap().remove("finishedAt");
                st["phase"] = json!("Running");
            })),
            desired(&[SHA]),
            HealthState::Unknown,
            "SyncInProgress",
            "being synced (operation Running)",
        ),
        case(
            "no sync recorded",
            Some(app_with(|v| {
                v["status"]
                    .as_object_mut()
                    .unwrap()
                    .remove("operationState");
            })),
            desired(&[SHA]),
            HealthState::Unknown,
            "NoSyncRecorded",
            "has no record of a sync",
        ),
        case(
            "no sync recorded is fine without desired revisions",
            Some(app_with(|v| {
                v["status"]
                    .as_object_mut()
                    .unwrap()
                    .remove("operationState");
            })),
            desired(&[""]),
            HealthState::Healthy,
            "Healthy",
            "Healthy",
        ),
        case(
            "sources changed",
            Some(app_with(|_| {})),
            desired(&[SHA, "x"]),
            HealthState::Unknown,
            "SourcesChanged",
            "has 1 source(s) but the health check expects 2",
        ),
        case(
            "no sync result",
            Some(app_with(|v| {
                v["status"]["operationState"]
                    .as_object_mut()
                    .unwrap()
                    .remove("syncResult");
            })),
            desired(&[SHA]),
            HealthState::Unknown,
            "NoSyncResult",
            "without a sync result",
        ),
        case(
            "synced to another revision",
            Some(app_with(|_| {})),
            desired(&["abc"]),
            HealthState::Unhealthy,
            "RevisionMismatch",
            "argocd/my-app-dev is not synced to the desired revision: source 0 (https://git.example.com/org/gitops.git) is synced to 105be6e0000000000000000000000000000000000, not the desired abc",
        ),
        case(
            "a revision mismatch wins over Degraded health",
            Some(app_with(|v| {
                v["status"]["health"]["status"] = json!("Degraded")
            })),
            desired(&["abc"]),
            HealthState::Unhealthy,
            "RevisionMismatch",
            "not the desired abc",
        ),
        case(
            "healthy",
            Some(app_with(|_| {})),
            desired(&[SHA]),
            HealthState::Healthy,
            "Healthy",
            "Healthy",
        ),
        case(
            "progressing",
            Some(app_with(|v| {
                v["status"]["health"] =
                    json!({"status": "Progressing", "message": "Waiting for rollout to finish"});
            })),
            desired(&[SHA]),
            HealthState::Progressing,
            "Progressing",
            "is progressing: Waiting for rollout to finish",
        ),
        case(
            "no health yet",
            Some(app_with(|v| {
                v["status"].as_object_mut().unwrap().remove("health");
            })),
            vec![],
            HealthState::Progressing,
            "Progressing",
            "is progressing",
        ),
        case(
            "suspended",
            Some(app_with(|v| {
                v["status"]["health"]["status"] = json!("Suspended")
            })),
            vec![],
            HealthState::Progressing,
            "Suspended",
            "is suspended",
        ),
        case(
            "degraded",
            Some(app_with(|v| {
                v["status"]["health"] = json!({"status": "Degraded", "message": "Deployment web exceeded its progress deadline"});
            })),
            desired(&[SHA]),
            HealthState::Unhealthy,
            "Degraded",
            "argocd/my-app-dev is Degraded: Deployment web exceeded its progress deadline",
        ),
        case(
            "missing resources",
            Some(app_with(|v| {
                v["status"]["health"]["status"] = json!("Missing")
            })),
            vec![],
            HealthState::Unhealthy,
            "Missing",
            "is Missing",
        ),
        case(
            "unknown health",
            Some(app_with(|v| {
                v["status"]["health"]["status"] = json!("Unknown")
            })),
            vec![],
            HealthState::Unhealthy,
            "UnknownHealth",
            "is Unknown",
        ),
    ];
    for c in cases {
        let h = application_health(c.app.as_ref(), &c.desired);
        assert_eq!(h.state, c.state, "{}: {}", c.name, h.message);
        assert_eq!(h.reason, c.reason, "{}", c.name);
        assert_eq!(h.refresh_wanted, c.refresh, "{}", c.name);
        assert!(
            h.message.contains(c.message_has),
            "{}: {:?} lacks {:?}",
            c.name,
            h.message,
            c.message_has
        );
    }
}

#[test]
fn multi_source_revisions_are_checked_per_known_source() {
    let multi = |revisions: Value| {
        app_with(|v| {
            v["spec"].as_object_mut().unwrap().remove("source");
            v["spec"]["sources"] = json!([
                {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.2.0"},
                {"repoURL": REPO, "targetRevision": "main", "ref": "values"}
            ]);
            v["status"]["operationState"]["syncResult"] = json!({"revisions": revisions});
        })
    };
    let want = desired(&["1.2.0", ""]);
    let h = application_health(Some(&multi(json!(["1.2.0", "whatever"]))), &want);
    assert_eq!(h.state, HealthState::Healthy, "{}", h.message);
    let h = application_health(Some(&multi(json!(["1.1.0", "whatever"]))), &want);
    assert_eq!(h.state, HealthState::Unhealthy);
    assert!(
        h.message.contains(
            "source 0 (https://charts.example.com) is synced to 1.1.0, not the desired 1.2.0"
        ),
        "{}",
        h.message
    );
    let h = application_health(Some(&multi(json!(["1.2.0"]))), &want);
    assert_eq!(
        (h.state, h.reason),
        (HealthState::Unknown, "SourcesChanged")
    );
}

#[test]
fn aggregate_takes_the_worst() {
    let h = |state, reason: &'static str, message: &str| AppHealth {
        state,
        reason,
        message: message.to_string(),
        refresh_wanted: false,
    };
    let all = aggregate(vec![
        h(HealthState::Healthy, "Healthy", "a is Healthy"),
        h(HealthState::Progressing, "Progressing", "b is progressing"),
        AppHealth {
            refresh_wanted: true,
            ..h(HealthState::Unknown, "Stale", "c is stale")
        },
        h(HealthState::Unknown, "SyncInProgress", "d is being synced"),
    ]);
    assert_eq!(all.state, HealthState::Unknown);
    assert_eq!(all.reason, "Stale");
    assert_eq!(
        all.message,
        "b is progressing; c is stale; d is being synced"
    );
    assert!(all.refresh_wanted);

    let bad = aggregate(vec![
        h(HealthState::Unknown, "Stale", "c"),
        h(HealthState::Unhealthy, "Degraded", "e is Degraded"),
    ]);
    assert_eq!(
        (bad.state, bad.reason),
        (HealthState::Unhealthy, "Degraded")
    );

    let good = aggregate(vec![
        h(HealthState::Healthy, "Healthy", "a is Healthy"),
        h(HealthState::Healthy, "Healthy", "b is Healthy"),
    ]);
    assert_eq!(good.state, HealthState::Healthy);
    assert_eq!(good.message, "a is Healthy; b is Healthy");

    assert_eq!(aggregate(vec![]).state, HealthState::Healthy);
}

#[test]
fn not_found_names_the_application() {
    let h = not_found("argocd", "my-app-dev");
    assert_eq!((h.state, h.reason), (HealthState::Unknown, "NotFound"));
    assert!(h.message.contains("argocd/my-app-dev not found"));
}
