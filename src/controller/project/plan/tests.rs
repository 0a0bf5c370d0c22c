//! Every decision of the Project plan, without a control plane.

use super::*;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

fn t(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("time"))
}

fn ns(labels: serde_json::Value, extra: serde_json::Value) -> Namespace {
    let mut meta = json!({"name": "shop", "labels": labels});
    if let (Some(m), Some(e)) = (meta.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    serde_json::from_value(json!({"metadata": meta})).expect("namespace")
}

#[test]
fn a_missing_namespace_is_created_labelled_and_with_the_finalizer() {
    assert_eq!(namespace_action("shop", None), NamespaceAction::Create);
    let n = new_namespace("shop");
    assert!(has_project_label(&n.metadata));
    assert!(has_finalizer(&n.metadata));
    assert_eq!(n.metadata.name.as_deref(), Some("shop"));
}

#[test]
fn a_labelled_namespace_is_adopted_and_gets_the_finalizer() {
    let labelled = ns(json!({"kargo.akuity.io/project": "true"}), json!({}));
    assert_eq!(
        namespace_action("shop", Some(&labelled)),
        NamespaceAction::AddFinalizer
    );
    let complete = ns(
        json!({"kargo.akuity.io/project": "true"}),
        json!({"finalizers": ["kargo.akuity.io/finalizer"]}),
    );
    assert_eq!(
        namespace_action("shop", Some(&complete)),
        NamespaceAction::Keep
    );
}

#[test]
fn an_unlabelled_namespace_is_refused_with_its_name_and_the_label() {
    for labels in [json!({}), json!({"kargo.akuity.io/project": "false"})] {
        let NamespaceAction::Refuse { reason, message } =
            namespace_action("shop", Some(&ns(labels, json!({}))))
        else {
            panic!("an unlabelled namespace must be refused");
        };
        assert_eq!(reason, "ExistingNamespaceMissingLabel");
        assert!(message.contains("\"shop\""), "{message}");
        assert!(message.contains("kargo.akuity.io/project"), "{message}");
    }
}

#[test]
fn a_terminating_namespace_is_not_used() {
    let gone = ns(
        json!({"kargo.akuity.io/project": "true"}),
        json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
    );
    assert!(matches!(
        namespace_action("shop", Some(&gone)),
        NamespaceAction::Refuse { .. }
    ));
}

#[test]
fn the_keep_annotation_on_the_project_or_the_namespace_keeps_it() {
    let keep: ObjectMeta =
        serde_json::from_value(json!({"annotations": {"kargo.akuity.io/keep-namespace": "true"}}))
            .expect("meta");
    let plain = ObjectMeta::default();
    assert!(keep_namespace(&keep, &plain));
    assert!(keep_namespace(&plain, &keep));
    assert!(!keep_namespace(&plain, &plain));
}

#[test]
fn default_roles_bind_kargo_named_service_accounts_to_the_chart_roles() {
    let roles = ProjectRoles::default();
    let sas: Vec<_> = service_accounts("shop", &roles)
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(sas, ["kargo-admin", "kargo-promoter", "kargo-viewer"]);
    let bindings = role_bindings("shop", &roles);
    let pairs: Vec<_> = bindings
        .iter()
        .map(|b| {
            let s = &b.subjects.as_ref().expect("subjects")[0];
            (
                b.metadata.name.clone().unwrap_or_default(),
                b.role_ref.kind.as_str(),
                b.role_ref.name.as_str(),
                s.name.as_str(),
                s.namespace.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (
                "kargo-admin".to_string(),
                "ClusterRole",
                "haul-admin",
                "kargo-admin",
                Some("shop")
            ),
            (
                "kargo-promoter".to_string(),
                "ClusterRole",
                "haul-promoter",
                "kargo-promoter",
                Some("shop")
            ),
            (
                "kargo-viewer".to_string(),
                "ClusterRole",
                "haul-viewer",
                "kargo-viewer",
                Some("shop")
            ),
        ]
    );
    for b in &bindings {
        assert_eq!(b.metadata.namespace.as_deref(), Some("shop"));
        assert!(
            b.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.get(ANNOTATION_RBAC_MANAGED).map(String::as_str)
                    == Some("true"))
        );
    }
}

fn stage(name: &str, steps: bool, healthy: Option<&str>) -> Stage {
    let template = if steps {
        json!({"spec": {"steps": [{"uses": "git-clone"}]}})
    } else {
        json!(null)
    };
    let conditions = healthy.map_or(json!([]), |s| {
        json!([{"type": "Healthy", "status": s, "reason": "r", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    });
    serde_json::from_value(json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"requestedFreight": [], "promotionTemplate": template},
        "status": {"conditions": conditions},
    }))
    .expect("stage")
}

fn warehouse(name: &str, healthy: Option<&str>) -> Warehouse {
    let conditions = healthy.map_or(json!([]), |s| {
        json!([{"type": "Healthy", "status": s, "reason": "r", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    });
    serde_json::from_value(json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"subscriptions": []},
        "status": {"conditions": conditions},
    }))
    .expect("warehouse")
}

#[test]
fn stats_count_healthy_stages_and_warehouses_without_control_flow_stages() {
    let stages = [
        stage("dev", true, Some("True")),
        stage("uat", true, Some("False")),
        stage("prod", true, None),
        stage("gate", false, Some("True")),
    ];
    let warehouses = [
        warehouse("w1", Some("True")),
        warehouse("w2", Some("False")),
    ];
    let s = stats(stages.iter(), warehouses.iter());
    let counts = |r: Option<ResourceStats>| {
        let r = r.expect("stats");
        (r.count, r.health.and_then(|h| h.healthy))
    };
    assert_eq!(counts(s.stages), (Some(3), Some(1)));
    assert_eq!(counts(s.warehouses), (Some(2), Some(1)));

    let empty = stats(
        std::iter::empty::<&Stage>(),
        std::iter::empty::<&Warehouse>(),
    );
    assert_eq!(counts(empty.stages), (None, None));
}

fn cond<'a>(s: &'a ProjectStatus, t: &str) -> Option<(&'a str, &'a str, &'a str)> {
    conditions::get(&s.conditions, t)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

#[test]
fn a_refused_namespace_makes_the_project_not_ready_and_stalled_and_keeps_old_stats() {
    let refused = Sync::NamespaceRefused {
        reason: REASON_NAMESPACE_NOT_LABELLED,
        message: "Namespace \"shop\" already exists".into(),
    };
    let s = status(None, &refused, None, Some(1), &t(10));
    assert_eq!(
        cond(&s, "Ready"),
        Some((
            "False",
            "ExistingNamespaceMissingLabel",
            "Namespace \"shop\" already exists"
        ))
    );
    assert_eq!(cond(&s, "Stalled").map(|c| c.0), Some("True"));
    assert_eq!(cond(&s, "Reconciling").map(|c| c.0), Some("True"));
    assert!(s.stats.is_none());

    // Fixed: Ready, Stalled and Reconciling gone, stats published.
    let ok = status(
        Some(&s),
        &Sync::Synced,
        Some(ProjectStats::default()),
        Some(1),
        &t(20),
    );
    assert_eq!(
        cond(&ok, "Ready"),
        Some(("True", "Synced", "Project is synced and ready for use"))
    );
    assert!(cond(&ok, "Stalled").is_none());
    assert!(cond(&ok, "Reconciling").is_none());
    assert_eq!(ok.stats, Some(ProjectStats::default()));
}

#[test]
fn an_unchanged_project_plans_an_identical_status() {
    let a = status(None, &Sync::Synced, None, Some(1), &t(10));
    let b = status(Some(&a), &Sync::Synced, None, Some(1), &t(99));
    assert_eq!(a, b);
}

#[test]
fn a_failed_call_is_not_ready_but_not_stalled() {
    let failed = Sync::Failed {
        reason: REASON_ENSURING_ROLES_FAILED,
        message: "forbidden".into(),
    };
    let s = status(None, &failed, None, None, &t(1));
    assert_eq!(
        cond(&s, "Ready"),
        Some(("False", "EnsuringDefaultUserRoles", "forbidden"))
    );
    assert!(cond(&s, "Stalled").is_none());
}
