use serde_json::{Value, json};

use super::*;
use crate::api::argocd::Application;

const PROMO: &str = "my-app.01j0promo";
const REPO: &str = "https://git.example.com/org/gitops.git";

fn stage() -> StageRef {
    StageRef::new("my-app", "dev")
}

/// An authorized single-source Application, adjusted by `f` on its JSON form.
fn app_with(f: impl FnOnce(&mut Value)) -> Application {
    let mut v = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": "my-app-dev",
            "namespace": "argocd",
            "resourceVersion": "42",
            "annotations": {"kargo.akuity.io/authorized-stage": "my-app:dev"}
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "targetRevision": "env/dev", "path": "."},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "my-app-dev"}
        },
        "status": {"health": {"status": "Healthy"}, "sync": {"status": "Synced", "revision": "old"}}
    });
    f(&mut v);
    serde_json::from_value(v).expect("valid Application")
}

fn app() -> Application {
    app_with(|_| {})
}

fn update(v: Value) -> AppUpdate {
    serde_json::from_value(v).expect("valid update")
}

fn update_rev(rev: &str) -> AppUpdate {
    update(json!({"name": "my-app-dev", "sources": [{"repoURL": REPO, "desiredRevision": rev}]}))
}

fn op_state(promotion: Option<&str>, phase: &str, finished: bool, revision: Option<&str>) -> Value {
    let mut operation = json!({"sync": {}, "initiatedBy": {"username": "admin"}});
    if let Some(p) = promotion {
        operation["info"] = json!([{"name": PROMOTION_INFO_KEY, "value": p}]);
        operation["initiatedBy"] = json!({"username": "haul-controller", "automated": true});
    }
    let mut st = json!({
        "operation": operation,
        "phase": phase,
        "message": "boom: the server could not find the requested resource",
        "startedAt": "2026-01-01T10:00:00Z",
    });
    if finished {
        st["finishedAt"] = json!("2026-01-01T10:00:05Z");
    }
    if let Some(r) = revision {
        st["syncResult"] = json!({"revision": r});
    }
    st
}

fn with_op_state(st: Value) -> Application {
    app_with(|v| v["status"]["operationState"] = st)
}

fn run_plan(app: &Application, u: &AppUpdate) -> Plan {
    plan(app, &stage(), PROMO, None, u).expect("plan")
}

#[test]
fn plan_follows_must_perform_update() {
    struct Case {
        name: &'static str,
        app: Application,
        update: AppUpdate,
        state: PlanState,
        status: StepStatus,
        message_has: &'static str,
    }
    let pending_ours = app_with(|v| {
        v["operation"] =
            json!({"sync": {}, "info": [{"name": PROMOTION_INFO_KEY, "value": PROMO}]});
    });
    let pending_other = app_with(|v| {
        v["operation"] = json!({"sync": {}, "initiatedBy": {"username": "alice"}});
    });
    let cases = vec![
        Case {
            name: "no operation state: sync",
            app: app(),
            update: update_rev("abc"),
            state: PlanState::Sync,
            status: StepStatus::Running,
            message_has: "no operation recorded",
        },
        Case {
            name: "someone else's operation running: wait",
            app: with_op_state(op_state(None, "Running", false, None)),
            update: update_rev("abc"),
            state: PlanState::WaitingForOtherOperation,
            status: StepStatus::Running,
            message_has: "started by admin (Running)",
        },
        Case {
            name: "someone else's operation finished: sync",
            app: with_op_state(op_state(None, "Succeeded", true, Some("abc"))),
            update: update_rev("abc"),
            state: PlanState::Sync,
            status: StepStatus::Running,
            message_has: "started by admin",
        },
        Case {
            name: "another Promotion's operation running: wait",
            app: with_op_state(op_state(Some("other-promo"), "Running", false, None)),
            update: update_rev("abc"),
            state: PlanState::WaitingForOtherOperation,
            status: StepStatus::Running,
            message_has: "for Promotion other-promo",
        },
        Case {
            name: "another Promotion's operation failed: sync",
            app: with_op_state(op_state(Some("other-promo"), "Failed", true, Some("x"))),
            update: update_rev("abc"),
            state: PlanState::Sync,
            status: StepStatus::Running,
            message_has: "Promotion other-promo",
        },
        Case {
            name: "our operation running",
            app: with_op_state(op_state(Some(PROMO), "Running", false, None)),
            update: update_rev("abc"),
            state: PlanState::Running,
            status: StepStatus::Running,
            message_has: "is Running",
        },
        Case {
            name: "our operation terminating",
            app: with_op_state(op_state(Some(PROMO), "Terminating", false, None)),
            update: update_rev("abc"),
            state: PlanState::Running,
            status: StepStatus::Running,
            message_has: "is Terminating",
        },
        Case {
            name: "our operation requested, not started by Argo CD yet",
            app: pending_ours,
            update: update_rev("abc"),
            state: PlanState::Running,
            status: StepStatus::Running,
            message_has: "in progress",
        },
        Case {
            name: "someone else's operation requested: wait",
            app: pending_other,
            update: update_rev("abc"),
            state: PlanState::WaitingForOtherOperation,
            status: StepStatus::Running,
            message_has: "requested by alice",
        },
        Case {
            name: "ours succeeded without sync result: sync again",
            app: with_op_state(op_state(Some(PROMO), "Succeeded", true, None)),
            update: update_rev("abc"),
            state: PlanState::Sync,
            status: StepStatus::Running,
            message_has: "without a sync result",
        },
        Case {
            name: "ours succeeded at another revision: sync again",
            app: with_op_state(op_state(Some(PROMO), "Succeeded", true, Some("old"))),
            update: update_rev("abc"),
            state: PlanState::Sync,
            status: StepStatus::Running,
            message_has: "not the desired",
        },
        Case {
            name: "ours succeeded at the desired revision",
            app: with_op_state(op_state(Some(PROMO), "Succeeded", true, Some("abc"))),
            update: update_rev("abc"),
            state: PlanState::Succeeded,
            status: StepStatus::Succeeded,
            message_has: "synced to abc",
        },
        Case {
            name: "ours succeeded, no desired revision",
            app: with_op_state(op_state(Some(PROMO), "Succeeded", true, Some("whatever"))),
            update: update(json!({"name": "my-app-dev"})),
            state: PlanState::Succeeded,
            status: StepStatus::Succeeded,
            message_has: "synced",
        },
        Case {
            name: "ours failed",
            app: with_op_state(op_state(Some(PROMO), "Failed", true, Some("abc"))),
            update: update_rev("abc"),
            state: PlanState::Failed,
            status: StepStatus::Errored,
            message_has: "failed to sync (Failed): boom: the server could not find",
        },
        Case {
            name: "ours errored, even with another revision",
            app: with_op_state(op_state(Some(PROMO), "Error", true, Some("old"))),
            update: update_rev("abc"),
            state: PlanState::Failed,
            status: StepStatus::Errored,
            message_has: "argocd/my-app-dev failed to sync (Error)",
        },
    ];
    for c in cases {
        let p = run_plan(&c.app, &c.update);
        assert_eq!(p.state, c.state, "{}: {}", c.name, p.message);
        assert_eq!(p.step_status(), c.status, "{}", c.name);
        assert_eq!(p.must_sync, c.state == PlanState::Sync, "{}", c.name);
        assert_eq!(p.patch.is_some(), p.must_sync, "{}", c.name);
        assert!(
            p.message.contains(c.message_has),
            "{}: {:?} lacks {:?}",
            c.name,
            p.message,
            c.message_has
        );
        assert!(p.message.contains("argocd/my-app-dev"), "{}", c.name);
    }
}

#[test]
fn plan_compares_every_known_revision_of_a_multi_source_app() {
    let multi = |revisions: Value| {
        app_with(|v| {
            v["spec"].as_object_mut().unwrap().remove("source");
            v["spec"]["sources"] = json!([
                {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0"},
                {"repoURL": REPO, "targetRevision": "main", "ref": "values"},
            ]);
            let mut st = op_state(Some(PROMO), "Succeeded", true, None);
            st["syncResult"] = json!({"revisions": revisions});
            v["status"]["operationState"] = st;
        })
    };
    let u = update(json!({"name": "my-app-dev", "sources": [
        {"repoURL": "https://charts.example.com", "chart": "web", "desiredRevision": "1.2.0"}
    ]}));
    // The Git source has no desired revision, so only the chart's counts.
    let p = run_plan(&multi(json!(["1.2.0", "anything"])), &u);
    assert_eq!(p.state, PlanState::Succeeded, "{}", p.message);
    assert_eq!(
        p.app.desired_revisions,
        vec!["1.2.0".to_string(), String::new()]
    );
    let p = run_plan(&multi(json!(["1.0.0", "anything"])), &u);
    assert_eq!(p.state, PlanState::Sync, "{}", p.message);
}

#[test]
fn sync_patch_matches_kargo_and_argo_cd() {
    let a = app_with(|v| {
        v["spec"]["syncPolicy"] = json!({
            "automated": {"prune": true},
            "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
            "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2}}
        });
        v["status"]["operationState"] = op_state(None, "Succeeded", true, Some("old"));
    });
    let u = update(json!({"name": "my-app-dev", "sources": [
        {"repoURL": REPO, "desiredRevision": "abc123", "updateTargetRevision": true}
    ]}));
    let p = plan(&a, &stage(), PROMO, Some("alice@example.com"), &u).unwrap();
    assert_eq!(
        p.patch.unwrap(),
        json!({
            "metadata": {
                "resourceVersion": "42",
                "annotations": {"argocd.argoproj.io/refresh": "hard"}
            },
            "spec": {"source": {"targetRevision": "abc123"}},
            "operation": {
                "initiatedBy": {"username": "alice@example.com"},
                "info": [
                    {"name": "Reason", "value": "Promotion triggered a sync of this Application resource."},
                    {"name": "kargo.akuity.io/promotion", "value": PROMO}
                ],
                "sync": {
                    "revision": "abc123",
                    "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"]
                },
                "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2}}
            },
            "status": {"operationState": null}
        })
    );
}

#[test]
fn sync_patch_without_actor_is_automated_and_leaves_the_spec_alone() {
    let u = update(
        json!({"name": "my-app-dev", "sources": [{"repoURL": REPO, "desiredRevision": "abc"}]}),
    );
    let p = run_plan(&app(), &u);
    let patch = p.patch.unwrap();
    assert_eq!(
        patch["operation"]["initiatedBy"],
        json!({"username": "haul-controller", "automated": true})
    );
    // updateTargetRevision is false: no spec change, but the sync is pinned to the revision.
    assert!(patch.get("spec").is_none(), "{patch}");
    assert_eq!(patch["operation"]["sync"], json!({"revision": "abc"}));
    // No operationState to clear.
    assert!(patch.get("status").is_none(), "{patch}");
    // An empty actor counts as none.
    let p = plan(&app(), &stage(), PROMO, Some(""), &u).unwrap();
    assert_eq!(
        p.patch.unwrap()["operation"]["initiatedBy"]["username"],
        "haul-controller"
    );
}

#[test]
fn sync_patch_replaces_a_stale_operation_field_by_field() {
    // A finished operation left behind (Argo CD normally clears it) from another Promotion:
    // keys we do not set must be nulled, not merged into ours.
    let a = app_with(|v| {
        v["operation"] = json!({
            "sync": {"prune": true, "revision": "old"},
            "initiatedBy": {"username": "bob"},
            "info": [{"name": PROMOTION_INFO_KEY, "value": "other"}],
        });
        v["status"]["operationState"] = op_state(Some("other"), "Succeeded", true, Some("old"));
    });
    // A pending operation from someone else is waited for...
    assert_eq!(
        run_plan(&a, &update_rev("abc")).state,
        PlanState::WaitingForOtherOperation
    );
    // ...but the diff itself nulls what we do not set.
    let old = serde_json::to_value(a.operation.as_ref().unwrap()).unwrap();
    let new = json!({"sync": {"revision": "abc"}, "initiatedBy": {"username": "haul-controller", "automated": true}});
    assert_eq!(
        merge_patch_diff(&old, &new),
        json!({
            "sync": {"prune": null, "revision": "abc"},
            "initiatedBy": {"username": "haul-controller", "automated": true},
            "info": null
        })
    );
}

#[test]
fn helm_parameters_are_replaced_or_appended() {
    let a = app_with(|v| {
        v["spec"]["source"] = json!({
            "repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0",
            "helm": {"releaseName": "web", "parameters": [
                {"name": "image.tag", "value": "1.0", "forceString": true},
                {"name": "replicas", "value": "2"}
            ]}
        });
    });
    let u = update(json!({"name": "my-app-dev", "sources": [{
        "repoURL": "https://charts.example.com", "chart": "web",
        "desiredRevision": "1.1.0", "updateTargetRevision": true,
        "helm": {"images": [{"key": "image.tag", "value": "2.0"}, {"key": "image.repository", "value": "ghcr.io/org/web"}]}
    }]}));
    let patch = run_plan(&a, &u).patch.unwrap();
    assert_eq!(
        patch["spec"],
        json!({"source": {
            "targetRevision": "1.1.0",
            "helm": {"parameters": [
                {"name": "image.tag", "value": "2.0", "forceString": true},
                {"name": "replicas", "value": "2"},
                {"name": "image.repository", "value": "ghcr.io/org/web"}
            ]}
        }})
    );
}

#[test]
fn kustomize_images_are_merged_by_image_name() {
    let a = app_with(|v| {
        v["spec"]["source"]["kustomize"] =
            json!({"images": ["ghcr.io/org/api:1.0", "ghcr.io/org/web=registry.local/web:0.9"]});
    });
    let u = update(json!({"name": "my-app-dev", "sources": [{
        "repoURL": REPO,
        "kustomize": {"images": [
            {"repoURL": "ghcr.io/org/web", "tag": "1.1"},
            {"repoURL": "ghcr.io/org/worker", "digest": "sha256:abcd", "newName": "registry.local/worker"},
            {"repoURL": "ghcr.io/org/plain"}
        ]}
    }]}));
    let patch = run_plan(&a, &u).patch.unwrap();
    assert_eq!(
        patch["spec"],
        json!({"source": {"kustomize": {"images": [
            "ghcr.io/org/api:1.0",
            "ghcr.io/org/web:1.1",
            "ghcr.io/org/worker=registry.local/worker@sha256:abcd",
            "ghcr.io/org/plain"
        ]}}})
    );
    assert_eq!(
        kustomize_image_name("localhost:5000/app:1.0"),
        "localhost:5000/app"
    );
    assert_eq!(
        kustomize_image_name("localhost:5000/app"),
        "localhost:5000/app"
    );
    assert_eq!(kustomize_image_name("app@sha256:00"), "app");
}

#[test]
fn multi_source_apps_get_their_whole_sources_list() {
    let a = app_with(|v| {
        v["spec"].as_object_mut().unwrap().remove("source");
        v["spec"]["sources"] = json!([
            {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0",
             "helm": {"valueFiles": ["$values/web.yaml"]}},
            {"repoURL": "https://git.example.com/org/gitops", "targetRevision": "main", "ref": "values"},
        ]);
    });
    // Git URLs match in normalized form (no .git suffix, case).
    let u = update(json!({"name": "my-app-dev", "sources": [
        {"repoURL": "https://GIT.example.com/org/gitops.git", "desiredRevision": "abc", "updateTargetRevision": true}
    ]}));
    let p = run_plan(&a, &u);
    assert_eq!(
        p.app.desired_revisions,
        vec![String::new(), "abc".to_string()]
    );
    let patch = p.patch.unwrap();
    assert_eq!(
        patch["spec"]["sources"],
        json!([
            {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0",
             "helm": {"valueFiles": ["$values/web.yaml"]}},
            {"repoURL": "https://git.example.com/org/gitops", "targetRevision": "abc", "ref": "values"},
        ])
    );
    // Multi-source syncs are not pinned to one revision.
    assert_eq!(patch["operation"]["sync"], json!({}));
}

#[test]
fn a_source_update_that_matches_no_source_is_an_error() {
    let u = update(json!({"name": "my-app-dev", "sources": [
        {"repoURL": "https://git.example.com/org/other.git", "desiredRevision": "abc"}
    ]}));
    let err = plan(&app(), &stage(), PROMO, None, &u).unwrap_err();
    assert!(matches!(err, Error::SourceMismatch(_)));
    assert_eq!(
        err.to_string(),
        format!(
            "Application argocd/my-app-dev has no source matching the update for repoURL https://git.example.com/org/other.git; its sources are: {REPO}"
        )
    );
    // A chart update does not match a Git source with the same URL.
    let u = update(json!({"name": "my-app-dev", "sources": [{"repoURL": REPO, "chart": "web"}]}));
    let err = plan(&app(), &stage(), PROMO, None, &u).unwrap_err();
    assert!(err.to_string().contains("chart web"), "{err}");
}

#[test]
fn authorization_follows_the_annotation() {
    let with_annotation = |value: Option<&str>| {
        app_with(|v| match value {
            Some(val) => {
                v["metadata"]["annotations"]["kargo.akuity.io/authorized-stage"] = json!(val)
            }
            None => {
                v["metadata"].as_object_mut().unwrap().remove("annotations");
            }
        })
    };
    let cases: Vec<(Option<&str>, Result<(), &str>)> = vec![
        (Some("my-app:dev"), Ok(())),
        (Some(" other:prod , my-app:dev "), Ok(())),
        (
            None,
            Err(
                "Application argocd/my-app-dev is not authorized for Stage my-app:dev: add the annotation kargo.akuity.io/authorized-stage: my-app:dev",
            ),
        ),
        (
            Some("my-app:prod"),
            Err("is \"my-app:prod\"; add my-app:dev to it"),
        ),
        (Some("other:dev"), Err("add my-app:dev")),
        (Some("my-app:*"), Err("globs are not supported")),
        (Some("*:dev,my-app:dev"), Err("globs are not supported")),
        (Some("my-app"), Err("is not of the form <project>:<stage>")),
        (
            Some("my-app:dev,:x"),
            Err("is not of the form <project>:<stage>"),
        ),
        (Some(" , "), Err("no <project>:<stage> entry")),
    ];
    for (value, want) in cases {
        let got = authorize(&with_annotation(value), &stage());
        match (want, got) {
            (Ok(()), Ok(())) => {}
            (Err(msg), Err(e)) => {
                assert!(matches!(e, Error::Unauthorized(_)));
                assert!(e.to_string().contains(msg), "{value:?}: {e}");
            }
            (want, got) => panic!("{value:?}: want {want:?}, got {got:?}"),
        }
    }
    // plan() refuses too, before anything else.
    let err = plan(
        &with_annotation(None),
        &stage(),
        PROMO,
        None,
        &update_rev("a"),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)));
}

#[test]
fn config_errors_name_the_field() {
    let cases = vec![
        (json!({}), "missing field `apps`"),
        (json!({"apps": []}), "apps: at least one Application"),
        (
            json!({"apps": [{}]}),
            "apps[0]: exactly one of name or selector must be set",
        ),
        (
            json!({"apps": [{"name": ""}]}),
            "apps[0]: exactly one of name or selector",
        ),
        (
            json!({"apps": [{"name": "a", "selector": {"matchLabels": {"x": "y"}}}]}),
            "apps[0]: exactly one of name or selector",
        ),
        (
            json!({"apps": [{"name": "a", "bogus": 1}]}),
            "apps[0].bogus: unknown field `bogus`",
        ),
        (
            json!({"apps": [{"name": "a", "namespace": ""}]}),
            "apps[0].namespace: must not be empty",
        ),
        (
            json!({"apps": [{"name": "a", "sources": []}]}),
            "apps[0].sources: must list at least one",
        ),
        (
            json!({"apps": [{"name": "a", "sources": [{"desiredRevision": "x"}]}]}),
            "apps[0].sources[0]: missing field `repoURL`",
        ),
        (
            json!({"apps": [{"name": "a", "sources": [{"repoURL": "r", "updateTargetRevision": true}]}]}),
            "apps[0].sources[0].desiredRevision: required when updateTargetRevision is true",
        ),
        (
            json!({"apps": [{"name": "a", "sources": [{"repoURL": "r", "helm": {"images": []}}]}]}),
            "apps[0].sources[0].helm.images: must list at least one image",
        ),
        (
            json!({"apps": [{"name": "a", "sources": [{"repoURL": "r", "kustomize": {"images": [{"repoURL": "i", "tag": "1", "digest": "sha256:0"}]}}]}]}),
            "apps[0].sources[0].kustomize.images[0]: set at most one of tag or digest",
        ),
        (
            json!({"apps": [{"name": "a"}, {"selector": {}}]}),
            "apps[1].selector: must have at least one of matchLabels or matchExpressions",
        ),
        (
            json!({"apps": [{"selector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}]}),
            "apps[0].selector.matchExpressions[0].values: must not be empty for operator In",
        ),
        (
            json!({"apps": [{"selector": {"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["x"]}]}}]}),
            "values: must be empty for operator Exists",
        ),
        (
            json!({"apps": [{"selector": {"matchExpressions": [{"key": "env", "operator": "Gt"}]}}]}),
            "apps[0].selector.matchExpressions[0].operator: unknown variant `Gt`",
        ),
        (
            json!({"apps": [{"selector": {"matchLabels": {"env": "a,b!=c"}}}]}),
            "apps[0].selector.matchLabels.env: \"a,b!=c\" is not a valid label value",
        ),
    ];
    for (v, want) in cases {
        let err = UpdateConfig::from_value(&v).unwrap_err();
        assert!(err.is_terminal(), "{v}");
        let msg = err.to_string();
        assert!(msg.starts_with("invalid argocd-update config: "), "{msg}");
        assert!(msg.contains(want), "{v}: {msg:?} lacks {want:?}");
    }
}

#[test]
fn a_full_config_parses() {
    let cfg = UpdateConfig::from_value(&json!({"apps": [
        {"name": "my-app-dev", "namespace": "argo", "sources": [{
            "repoURL": REPO, "desiredRevision": "abc", "updateTargetRevision": true,
            "kustomize": {"images": [{"repoURL": "ghcr.io/org/web", "tag": "1.1", "newName": "x/web"}]}
        }, {
            "repoURL": "https://charts.example.com", "chart": "web",
            "helm": {"images": [{"key": "image.tag", "value": ""}]}
        }]},
        {"name": "", "selector": {
            "matchLabels": {"app.kubernetes.io/part-of": "my-app"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["dev", "test"]},
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "kargo", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }}
    ]}))
    .unwrap();
    assert_eq!(cfg.apps.len(), 2);
    assert_eq!(cfg.apps[1].app_name(), None);
    assert_eq!(
        cfg.apps[1].selector.as_ref().unwrap().to_query(),
        "app.kubernetes.io/part-of=my-app,env in (dev,test),tier notin (db),kargo,!legacy"
    );
    assert_eq!(cfg.apps[0].sources().len(), 2);
}

#[test]
fn the_health_check_record_has_kargos_shape() {
    let apps = vec![
        AppRef {
            name: "a".into(),
            namespace: "argocd".into(),
            desired_revisions: vec!["abc".into(), String::new()],
        },
        AppRef {
            name: "b".into(),
            namespace: "argocd".into(),
            desired_revisions: vec![],
        },
    ];
    assert_eq!(
        health_check_record(&apps),
        json!({"uses": "argocd-update", "config": {"apps": [
            {"name": "a", "namespace": "argocd", "desiredRevisions": ["abc", ""]},
            {"name": "b", "namespace": "argocd"}
        ]}})
    );
}
