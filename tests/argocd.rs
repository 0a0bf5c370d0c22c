//! The argocd-update step and its health check against a real kube-apiserver with the Argo CD
//! Application CRD installed, with no Argo CD running: the tests write `operation` and
//! `status` themselves (the CRD has no status subresource). `tests/argocd_real.rs` proves the
//! same step against real Argo CD; these cases stay here because real Argo CD cannot be made to
//! show them on demand or they need no Argo CD at all:
//! - the exact patch a sync request is (operation, info, retry, kept fields) and that nothing is
//!   written while an operation is pending or Running (a real sync of a ConfigMap finishes within
//!   a second, so the Running state cannot be caught reliably);
//! - refusals (authorisation, selectors, sources that do not match), decided before any write;
//! - health states real Argo CD reaches only with nodes or by timing: Degraded, health older
//!   than the last sync (stale; real Argo CD refreshes right after a sync), a finished sync at
//!   another revision, and a failed operation with a given message.

mod support;

use std::future::Future;

use haul::api::HealthState;
use haul::api::StepStatus;
use haul::api::argocd::Application;
use haul::argocd::{self, AppRef, Error, UpdateConfig};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const REPO: &str = "http://127.0.0.1:18080/gitops.git";

/// Runs an async test body; the shared control plane is started first, outside any runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    let _ = support::cp();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn setup(prefix: &str) -> (kube::Client, String, Api<Application>) {
    let cp = support::cp();
    let client = cp.client().await.expect("client");
    let ns = cp.namespace(prefix).await.expect("namespace");
    let api = Api::namespaced(client.clone(), &ns);
    (client, ns, api)
}

fn healthy_status(revision: &str) -> Value {
    json!({
        "health": {"status": "Healthy", "lastTransitionTime": "2026-11-26T07:00:00Z"},
        "sync": {"status": "Synced", "revision": revision},
        "reconciledAt": "2026-11-26T07:00:05Z",
        "operationState": {
            "phase": "Succeeded",
            "message": "successfully synced (all tasks run)",
            "startedAt": "2026-11-26T06:59:58Z",
            "finishedAt": "2026-11-26T07:00:01Z",
            "operation": {"sync": {"revision": revision}, "initiatedBy": {"username": "admin"}},
            "syncResult": {"revision": revision}
        }
    })
}

/// An Application in `ns`; `authorized` is the authorized-stage annotation, if any.
fn application(
    ns: &str,
    name: &str,
    authorized: Option<&str>,
    labels: Value,
    repo: &str,
    status: Value,
) -> Application {
    let mut annotations = json!({});
    if let Some(a) = authorized {
        annotations["kargo.akuity.io/authorized-stage"] = json!(a);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "env/dev", "path": "."},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"], "retry": {"limit": 2}}
        },
        "status": status
    }))
    .expect("valid Application")
}

async fn create(api: &Api<Application>, app: Application) -> Application {
    api.create(&PostParams::default(), &app)
        .await
        .expect("create Application")
}

async fn raw(api: &Api<Application>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.expect("get Application")).expect("to json")
}

async fn rv(api: &Api<Application>, name: &str) -> String {
    api.get(name)
        .await
        .expect("get Application")
        .metadata
        .resource_version
        .expect("resourceVersion")
}

/// Plays Argo CD: replaces `operation` and `status.operationState`.
async fn argo_cd_writes(api: &Api<Application>, name: &str, operation: Value, op_state: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": operation, "status": {"operationState": op_state}})),
    )
    .await
    .expect("patch as Argo CD");
}

fn config(v: Value) -> UpdateConfig {
    UpdateConfig::from_value(&v).expect("valid config")
}

#[test]
fn update_starts_a_sync_then_follows_it_to_success() {
    block_on(async {
        let (client, ns, api) = setup("argocd-update").await;
        create(
            &api,
            application(
                &ns,
                "my-app-dev",
                Some("my-app:dev"),
                json!({}),
                REPO,
                healthy_status("old"),
            ),
        )
        .await;
        let cfg = config(json!({"apps": [{"name": "my-app-dev", "sources": [
            {"repoURL": REPO, "desiredRevision": "abc123", "updateTargetRevision": true}
        ]}]}));
        let run = || {
            argocd::run(
                &client,
                &ns,
                "my-app",
                "dev",
                "promo-1",
                Some("alice"),
                &cfg,
            )
        };

        // First run: the patch lands.
        let out = run().await.expect("first run");
        assert_eq!(out.status, StepStatus::Running, "{}", out.message);
        assert_eq!(
            out.apps,
            vec![AppRef {
                name: "my-app-dev".into(),
                namespace: ns.clone(),
                desired_revisions: vec!["abc123".into()],
            }]
        );
        let app = raw(&api, "my-app-dev").await;
        assert_eq!(
            app["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
            "hard"
        );
        assert_eq!(app["spec"]["source"]["targetRevision"], "abc123");
        assert_eq!(
            app["spec"]["source"]["path"], ".",
            "other source fields are kept"
        );
        let op = &app["operation"];
        assert_eq!(op["initiatedBy"], json!({"username": "alice"}));
        assert!(
            op["info"]
                .as_array()
                .expect("info")
                .contains(&json!({"name": "kargo.akuity.io/promotion", "value": "promo-1"})),
            "{op}"
        );
        assert_eq!(
            op["sync"],
            json!({"revision": "abc123", "syncOptions": ["CreateNamespace=true"]})
        );
        assert_eq!(op["retry"], json!({"limit": 2}));
        assert!(
            app["status"].get("operationState").is_none(),
            "{}",
            app["status"]
        );
        assert_eq!(
            app["status"]["health"]["status"], "Healthy",
            "the rest of status is kept"
        );

        // Second run before Argo CD picks the operation up: Running, nothing written.
        let before = rv(&api, "my-app-dev").await;
        let out = run().await.expect("second run");
        assert_eq!(out.status, StepStatus::Running, "{}", out.message);
        assert_eq!(rv(&api, "my-app-dev").await, before, "no second patch");

        // Argo CD starts the operation.
        argo_cd_writes(
            &api,
            "my-app-dev",
            op.clone(),
            json!({"phase": "Running", "operation": op, "startedAt": "2026-11-26T08:00:00Z"}),
        )
        .await;
        let before = rv(&api, "my-app-dev").await;
        let out = run().await.expect("run while syncing");
        assert_eq!(out.status, StepStatus::Running, "{}", out.message);
        assert_eq!(
            rv(&api, "my-app-dev").await,
            before,
            "no patch while running"
        );

        // Argo CD finishes at the desired revision (and clears `operation`).
        argo_cd_writes(
            &api,
            "my-app-dev",
            Value::Null,
            json!({
                "phase": "Succeeded", "message": "successfully synced (all tasks run)",
                "operation": op, "startedAt": "2026-11-26T08:00:00Z",
                "finishedAt": "2026-11-26T08:00:03Z", "syncResult": {"revision": "abc123"}
            }),
        )
        .await;
        api.patch(
            "my-app-dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"reconciledAt": "2026-11-26T08:00:04Z"}})),
        )
        .await
        .expect("reconciledAt");
        let before = rv(&api, "my-app-dev").await;
        let out = run().await.expect("run after sync");
        assert_eq!(out.status, StepStatus::Succeeded, "{}", out.message);
        assert_eq!(rv(&api, "my-app-dev").await, before, "no patch once done");

        // The recorded health check finds the Application healthy at the desired revision.
        let record = out.health_check();
        assert_eq!(record["uses"], "argocd-update");
        let health = argocd::check(&client, "unused-default", &record)
            .await
            .expect("check");
        assert_eq!(health.len(), 1);
        assert_eq!(
            health[0].1.state,
            HealthState::Healthy,
            "{}",
            health[0].1.message
        );

        // A later Promotion replaces the finished operation with its own.
        let cfg2 = config(json!({"apps": [{"name": "my-app-dev", "sources": [
            {"repoURL": REPO, "desiredRevision": "def456", "updateTargetRevision": true}
        ]}]}));
        let out = argocd::run(&client, &ns, "my-app", "dev", "promo-2", None, &cfg2)
            .await
            .expect("next promotion");
        assert_eq!(out.status, StepStatus::Running, "{}", out.message);
        let app = raw(&api, "my-app-dev").await;
        assert_eq!(app["spec"]["source"]["targetRevision"], "def456");
        assert_eq!(
            app["operation"]["initiatedBy"],
            json!({"username": "haul-controller", "automated": true})
        );
        assert_eq!(app["operation"]["info"][1]["value"], "promo-2");
        assert!(app["status"].get("operationState").is_none());
    });
}

#[test]
fn unauthorized_apps_are_refused_and_left_unchanged() {
    block_on(async {
        let (client, ns, api) = setup("argocd-unauth").await;
        let cases = [
            (
                "no-annotation",
                None,
                "is not authorized for Stage my-app:dev: add the annotation kargo.akuity.io/authorized-stage: my-app:dev",
            ),
            ("other-stage", Some("my-app:prod"), "add my-app:dev to it"),
            ("glob", Some("my-app:*"), "globs are not supported"),
        ];
        for (name, annotation, want) in cases {
            create(
                &api,
                application(
                    &ns,
                    name,
                    annotation,
                    json!({}),
                    REPO,
                    healthy_status("old"),
                ),
            )
            .await;
            let before = rv(&api, name).await;
            let cfg = config(json!({"apps": [{"name": name, "sources": [
                {"repoURL": REPO, "desiredRevision": "abc", "updateTargetRevision": true}
            ]}]}));
            let err = argocd::run(&client, &ns, "my-app", "dev", "p", None, &cfg)
                .await
                .expect_err("unauthorized");
            assert!(matches!(err, Error::Unauthorized(_)), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{ns}/{name}")), "{msg}");
            assert!(msg.contains(want), "{msg}");
            assert_eq!(rv(&api, name).await, before, "{name} changed");
        }
        let cfg = config(json!({"apps": [{"name": "absent"}]}));
        let err = argocd::run(&client, &ns, "my-app", "dev", "p", None, &cfg)
            .await
            .expect_err("missing");
        assert!(matches!(err, Error::NotFound(_)), "{err}");
    });
}

#[test]
fn selectors_skip_unauthorized_apps_and_check_every_source_first() {
    block_on(async {
        let (client, ns, api) = setup("argocd-selector").await;
        let status = healthy_status("old");
        for (name, auth, team, repo) in [
            ("web-ok", Some("my-app:dev"), "web", REPO),
            ("web-other", Some("other:dev"), "web", REPO),
            ("api", Some("my-app:dev"), "api", REPO),
            ("mixed-a", Some("my-app:dev"), "mixed", REPO),
            (
                "mixed-b",
                Some("my-app:dev"),
                "mixed",
                "https://git.example.com/elsewhere.git",
            ),
        ] {
            create(
                &api,
                application(&ns, name, auth, json!({"team": team}), repo, status.clone()),
            )
            .await;
        }
        let rvs = |names: &'static [&'static str]| {
            let api = api.clone();
            async move {
                let mut out = Vec::new();
                for n in names {
                    out.push(rv(&api, n).await);
                }
                out
            }
        };
        let untouched: &[&str] = &["web-other", "api", "mixed-a", "mixed-b"];
        let before = rvs(untouched).await;

        // argocd-update for Stage my-app:dev, selecting its Apps by `selector`.
        let run_selecting = async |selector: Value| {
            let cfg = config(json!({"apps": [{"selector": selector, "sources": [
                {"repoURL": REPO, "desiredRevision": "abc", "updateTargetRevision": true}
            ]}]}));
            argocd::run(&client, &ns, "my-app", "dev", "p", None, &cfg).await
        };
        let out = run_selecting(json!({"matchLabels": {"team": "web"}}))
            .await
            .expect("selector run");
        assert_eq!(out.status, StepStatus::Running, "{}", out.message);
        let names: Vec<&str> = out.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["web-ok"]);
        assert_eq!(
            raw(&api, "web-ok").await["spec"]["source"]["targetRevision"],
            "abc"
        );

        // One matched App lacks the source: nothing is changed at all.
        let err = run_selecting(
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["mixed"]}]}),
        )
        .await
        .expect_err("source mismatch");
        assert!(matches!(err, Error::SourceMismatch(_)), "{err}");
        assert!(err.to_string().contains(&format!("{ns}/mixed-b")), "{err}");

        // Matches, but none is authorized.
        create(
            &api,
            application(
                &ns,
                "lonely",
                Some("other:dev"),
                json!({"team": "lonely"}),
                REPO,
                status.clone(),
            ),
        )
        .await;
        let err = run_selecting(json!({"matchLabels": {"team": "lonely"}}))
            .await
            .expect_err("none authorized");
        assert!(matches!(err, Error::Unauthorized(_)), "{err}");
        assert!(
            err.to_string()
                .contains("none is authorized for Stage my-app:dev"),
            "{err}"
        );

        // Matches nothing.
        let err = run_selecting(json!({"matchLabels": {"team": "nobody"}}))
            .await
            .expect_err("no match");
        assert!(matches!(err, Error::NoMatch(_)), "{err}");

        assert_eq!(
            rvs(untouched).await,
            before,
            "unselected or refused Apps changed"
        );
    });
}

#[test]
fn a_failed_sync_is_reported_with_argo_cds_message() {
    block_on(async {
        let (client, ns, api) = setup("argocd-failed").await;
        let mut status = healthy_status("old");
        status["operationState"] = json!({
            "phase": "Failed",
            "message": "one or more objects failed to apply: Deployment.apps \"web\" is invalid",
            "startedAt": "2026-11-26T08:00:00Z",
            "finishedAt": "2026-11-26T08:00:02Z",
            "operation": {"sync": {}, "info": [{"name": "kargo.akuity.io/promotion", "value": "p"}]},
            "syncResult": {"revision": "abc"}
        });
        create(
            &api,
            application(&ns, "web", Some("my-app:dev"), json!({}), REPO, status),
        )
        .await;
        let before = rv(&api, "web").await;
        let cfg = config(json!({"apps": [{"name": "web", "sources": [
            {"repoURL": REPO, "desiredRevision": "abc"}
        ]}]}));
        let out = argocd::run(&client, &ns, "my-app", "dev", "p", None, &cfg)
            .await
            .expect("run");
        assert_eq!(out.status, StepStatus::Errored);
        assert!(
            out.message.contains("Deployment.apps \"web\" is invalid"),
            "{}",
            out.message
        );
        assert!(
            out.message.contains(&format!("{ns}/web")),
            "{}",
            out.message
        );
        assert_eq!(rv(&api, "web").await, before);
    });
}

#[test]
fn check_reports_the_health_of_recorded_apps() {
    block_on(async {
        let (client, ns, api) = setup("argocd-health").await;
        let mut degraded = healthy_status("abc");
        degraded["health"] =
            json!({"status": "Degraded", "message": "Deployment web has 0/2 ready replicas"});
        let mut stale = healthy_status("abc");
        stale["reconciledAt"] = json!("2026-11-26T06:00:00Z");
        let out_of_sync = healthy_status("old");
        for (name, status) in [
            ("healthy", healthy_status("abc")),
            ("degraded", degraded),
            ("stale", stale),
            ("out-of-sync", out_of_sync),
        ] {
            create(
                &api,
                application(&ns, name, Some("my-app:dev"), json!({}), REPO, status),
            )
            .await;
        }
        let app = |name: &str| AppRef {
            name: name.into(),
            namespace: String::new(),
            desired_revisions: vec!["abc".into()],
        };
        let record = argocd::health_check_record(&[
            app("healthy"),
            app("degraded"),
            app("stale"),
            app("out-of-sync"),
            app("gone"),
        ]);
        let results = argocd::check(&client, &ns, &record).await.expect("check");
        let got: Vec<(&str, HealthState, &str)> = results
            .iter()
            .map(|(r, h)| (r.name.as_str(), h.state, h.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("healthy", HealthState::Healthy, "Healthy"),
                ("degraded", HealthState::Unhealthy, "Degraded"),
                ("stale", HealthState::Unknown, "Stale"),
                ("out-of-sync", HealthState::Unhealthy, "RevisionMismatch"),
                ("gone", HealthState::Unknown, "NotFound"),
            ]
        );
        for (r, h) in &results {
            assert_eq!(r.namespace, ns, "default namespace filled in");
            assert!(
                h.message.contains(&format!("{ns}/{}", r.name)),
                "{}",
                h.message
            );
        }
        assert!(results[1].1.message.contains("0/2 ready replicas"));
        assert!(
            results[3]
                .1
                .message
                .contains("synced to old, not the desired abc")
        );

        // Only the stale App was asked for a hard refresh.
        let refresh = |v: Value| v["metadata"]["annotations"]["argocd.argoproj.io/refresh"].clone();
        assert_eq!(refresh(raw(&api, "stale").await), "hard");
        assert_eq!(refresh(raw(&api, "healthy").await), Value::Null);

        let overall = argocd::aggregate(results.into_iter().map(|(_, h)| h).collect());
        assert_eq!(overall.state, HealthState::Unhealthy);
        assert!(overall.refresh_wanted);
    });
}
