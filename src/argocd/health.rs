//! Health of the Argo CD Applications an `argocd-update` step touched (Kargo
//! `pkg/health/checker/builtin/argocd.go`): [`application_health`] applies Kargo's checks in
//! order, the first that matches decides; [`ArgoCdHealthCheck`] is the typed health check the
//! step records, and running it reads the Applications it names and applies the checks.

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::{ANNOTATION_REFRESH, AppRef, Error, REFRESH_HARD, app_key};
use crate::api::HealthState;
use crate::api::argocd::{
    Application, CONDITION_COMPARISON_ERROR, CONDITION_INVALID_SPEC_ERROR, HEALTH_DEGRADED,
    HEALTH_HEALTHY, HEALTH_MISSING, HEALTH_PROGRESSING, HEALTH_SUSPENDED, HEALTH_UNKNOWN,
};

/// The health of one Application, as it counts for the Stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppHealth {
    pub state: HealthState,
    /// A short machine-readable cause, e.g. `Stale`, `RevisionMismatch`, `Degraded`.
    pub reason: &'static str,
    /// What is wrong and, where possible, what to do; names the Application.
    pub message: String,
    /// Argo CD's health is stale: the caller should request a hard refresh of the Application.
    pub refresh_wanted: bool,
}

impl AppHealth {
    fn new(state: HealthState, reason: &'static str, message: String) -> Self {
        Self {
            state,
            reason,
            message,
            refresh_wanted: false,
        }
    }
}

/// Kargo's order of severity (`HealthState.Merge`).
fn severity(s: HealthState) -> u8 {
    match s {
        HealthState::Healthy => 0,
        HealthState::NotApplicable => 1,
        HealthState::Progressing => 2,
        HealthState::Unknown => 3,
        HealthState::Unhealthy => 4,
    }
}

/// The result for an Application that does not exist.
pub fn not_found(namespace: &str, name: &str) -> AppHealth {
    AppHealth::new(
        HealthState::Unknown,
        "NotFound",
        format!(
            "Argo CD Application {namespace}/{name} not found: it was deleted or renamed since the last promotion"
        ),
    )
}

/// Applies Kargo's Argo CD checks to one Application (the first that matches decides):
///
/// 1. missing → Unknown;
/// 2. `operationState.finishedAt` set and `reconciledAt` missing or earlier → Unknown, and a
///    hard refresh is wanted;
/// 3. a `ComparisonError` or `InvalidSpecError` condition → Unhealthy;
/// 4. desired revisions known and an operation pending, running or not finished → Unknown;
/// 5. the last sync's revision(s) differ from the desired ones → Unhealthy;
/// 6. health `Healthy` → Healthy;
/// 7. health `Progressing`, empty or `Suspended` → Progressing;
/// 8. any other health (`Degraded`, `Missing`, `Unknown`) → Unhealthy.
///
/// `desired_revisions` has one entry per source, `""` where unknown.
pub fn application_health(app: Option<&Application>, desired_revisions: &[String]) -> AppHealth {
    let Some(app) = app else {
        return AppHealth::new(
            HealthState::Unknown,
            "NotFound",
            "Argo CD Application not found".to_string(),
        );
    };
    let key = app_key(app);
    let status = app.status.clone().unwrap_or_default();

    // 2. Argo CD's health loop lags behind its sync loop: health assessed before the last
    // operation finished says nothing about what that operation deployed.
    if let Some(stale) = stale_health(app) {
        return AppHealth {
            refresh_wanted: true,
            ..AppHealth::new(
                HealthState::Unknown,
                "Stale",
                format!("Argo CD Application {key}: {stale}; a hard refresh was requested"),
            )
        };
    }

    // 3. Conditions that make Argo CD's own health unreliable.
    if let Some((reason, details)) = error_conditions(app) {
        return AppHealth::new(
            HealthState::Unhealthy,
            reason,
            format!("Argo CD Application {key} has an error condition: {details}"),
        );
    }

    // 4 and 5. The sync, checked before health: the sync result is updated as soon as an
    // operation finishes, health only later.
    if desired_revisions.iter().any(|r| !r.is_empty())
        && let Some(h) = sync_health(app, &key, desired_revisions)
    {
        return h;
    }

    // 6 to 8. Argo CD's health.
    let health = status.health.unwrap_or_default();
    let detail = health
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    match health.status.as_deref().unwrap_or_default() {
        HEALTH_HEALTHY => AppHealth::new(
            HealthState::Healthy,
            "Healthy",
            format!("Argo CD Application {key} is Healthy"),
        ),
        HEALTH_PROGRESSING | "" => AppHealth::new(
            HealthState::Progressing,
            "Progressing",
            format!("Argo CD Application {key} is progressing{detail}"),
        ),
        // kargo#2216: a suspended Application counts as progressing until it is resumed.
        HEALTH_SUSPENDED => AppHealth::new(
            HealthState::Progressing,
            "Suspended",
            format!(
                "Argo CD Application {key} is suspended{detail}; it counts as progressing until it is resumed"
            ),
        ),
        other => {
            let reason = match other {
                HEALTH_DEGRADED => "Degraded",
                HEALTH_MISSING => "Missing",
                HEALTH_UNKNOWN => "UnknownHealth",
                _ => "Unhealthy",
            };
            AppHealth::new(
                HealthState::Unhealthy,
                reason,
                format!("Argo CD Application {key} is {other}{detail}"),
            )
        }
    }
}

/// Why Argo CD's health of `app` cannot be trusted yet, if it cannot: its last operation
/// finished after its last reconcile (Argo CD assesses health in a separate loop, so health
/// read now may predate what that operation deployed). A hard refresh makes Argo CD reconcile.
/// Shared by the Stage's health check and `argocd-wait`.
pub fn stale_health(app: &Application) -> Option<String> {
    let status = app.status.as_ref()?;
    let finished = status.operation_state.as_ref()?.finished_at.as_ref()?;
    if status.reconciled_at.as_ref().is_some_and(|r| r >= finished) {
        return None;
    }
    let last = status
        .reconciled_at
        .as_ref()
        .map_or_else(|| "never".to_string(), |r| r.0.to_string());
    Some(format!(
        "health is stale: Argo CD has not reconciled since the last sync finished (finished {}, last reconciled {last})",
        finished.0
    ))
}

/// The `ComparisonError` / `InvalidSpecError` conditions of `app`, which make Argo CD's health
/// unreliable: the first one's type and every one's `type: message`, joined by `; `.
pub fn error_conditions(app: &Application) -> Option<(&'static str, String)> {
    let status = app.status.as_ref()?;
    let errors: Vec<_> = status
        .conditions
        .iter()
        .filter(|c| {
            c.type_ == CONDITION_COMPARISON_ERROR || c.type_ == CONDITION_INVALID_SPEC_ERROR
        })
        .collect();
    let first = errors.first()?;
    let reason = if first.type_ == CONDITION_COMPARISON_ERROR {
        CONDITION_COMPARISON_ERROR
    } else {
        CONDITION_INVALID_SPEC_ERROR
    };
    let details = errors
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c.type_,
                c.message.as_deref().unwrap_or("no message")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some((reason, details))
}

/// Checks 4 and 5; `None` when the Application is synced to the desired revisions.
fn sync_health(app: &Application, key: &str, desired: &[String]) -> Option<AppHealth> {
    let op_state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
    if app.operation.as_ref().is_some_and(|o| o.sync.is_some()) {
        return Some(AppHealth::new(
            HealthState::Unknown,
            "SyncInProgress",
            format!(
                "Argo CD Application {key} is being synced (a sync operation is pending or running)"
            ),
        ));
    }
    let Some(st) = op_state else {
        return Some(AppHealth::new(
            HealthState::Unknown,
            "NoSyncRecorded",
            format!(
                "Argo CD Application {key} has no record of a sync yet, so whether it runs the desired revision is unknown"
            ),
        ));
    };
    if st.finished_at.is_none() {
        return Some(AppHealth::new(
            HealthState::Unknown,
            "SyncInProgress",
            format!(
                "Argo CD Application {key} is being synced (operation {})",
                st.phase.as_deref().unwrap_or("in progress")
            ),
        ));
    }
    let sources = app.sources();
    if sources.len() != desired.len() {
        return Some(AppHealth::new(
            HealthState::Unknown,
            "SourcesChanged",
            format!(
                "Argo CD Application {key} has {} source(s) but the health check expects {}: its sources changed since the last promotion; promote again",
                sources.len(),
                desired.len()
            ),
        ));
    }
    let Some(result) = st.sync_result.as_ref() else {
        return Some(AppHealth::new(
            HealthState::Unknown,
            "NoSyncResult",
            format!("Argo CD Application {key} finished its last operation without a sync result"),
        ));
    };
    let observed: Vec<String> = if result.revisions.is_empty() {
        vec![result.revision.clone().unwrap_or_default()]
    } else {
        result.revisions.clone()
    };
    if observed.len() != desired.len() {
        return Some(AppHealth::new(
            HealthState::Unknown,
            "SourcesChanged",
            format!(
                "Argo CD Application {key} reports {} synced revision(s) for {} desired",
                observed.len(),
                desired.len()
            ),
        ));
    }
    let issues: Vec<String> = desired
        .iter()
        .zip(&observed)
        .enumerate()
        .filter(|(_, (want, got))| !want.is_empty() && want != got)
        .map(|(i, (want, got))| {
            let got = if got.is_empty() {
                "no revision"
            } else {
                got.as_str()
            };
            format!(
                "source {i} ({}) is synced to {got}, not the desired {want}",
                sources[i].repo_url
            )
        })
        .collect();
    if issues.is_empty() {
        return None;
    }
    Some(AppHealth::new(
        HealthState::Unhealthy,
        "RevisionMismatch",
        format!(
            "Argo CD Application {key} is not synced to the desired revision: {}; sync it to the desired revision or promote again",
            issues.join("; ")
        ),
    ))
}

/// The worst of several results (Kargo's severity order: Healthy, NotApplicable, Progressing,
/// Unknown, Unhealthy). Its message joins those of every result that is not Healthy; its reason
/// is the first worst one's. No results means Healthy.
pub fn aggregate(results: Vec<AppHealth>) -> AppHealth {
    let mut worst: Option<&AppHealth> = None;
    for r in &results {
        if worst.is_none_or(|w| severity(r.state) > severity(w.state)) {
            worst = Some(r);
        }
    }
    let Some(worst) = worst else {
        return AppHealth::new(
            HealthState::Healthy,
            "NoApplications",
            "no Argo CD Applications to check".to_string(),
        );
    };
    let message = if worst.state == HealthState::Healthy {
        results
            .iter()
            .map(|r| r.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        results
            .iter()
            .filter(|r| r.state != HealthState::Healthy)
            .map(|r| r.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    AppHealth {
        state: worst.state,
        reason: worst.reason,
        message,
        refresh_wanted: results.iter().any(|r| r.refresh_wanted),
    }
}

/// Runs a stored `argocd-update` health check given as JSON, either the whole record
/// `{uses, config}` or just its `config` (see [`ArgoCdHealthCheck::run`]); only a malformed
/// record is `Err`.
pub async fn check(
    client: &kube::Client,
    default_namespace: &str,
    record: &Value,
) -> Result<Vec<(AppRef, AppHealth)>, Error> {
    Ok(ArgoCdHealthCheck::from_record(record)?
        .run(client, default_namespace)
        .await)
}

/// One Application of a health check: read (in `default_namespace` when the record has none)
/// and judged by [`application_health`]. When Argo CD's health is stale it asks Argo CD for a
/// hard refresh. A read error makes the Application Unknown.
pub(crate) async fn check_app(
    client: &kube::Client,
    default_namespace: &str,
    mut app_ref: AppRef,
) -> (AppRef, AppHealth) {
    if app_ref.namespace.is_empty() {
        app_ref.namespace = default_namespace.to_string();
    }
    let api: Api<Application> = Api::namespaced(client.clone(), &app_ref.namespace);
    let health = match api.get_opt(&app_ref.name).await {
        Ok(Some(app)) => {
            let h = application_health(Some(&app), &app_ref.desired_revisions);
            if h.refresh_wanted {
                request_hard_refresh(&api, &app).await;
            }
            h
        }
        Ok(None) => not_found(&app_ref.namespace, &app_ref.name),
        Err(e) => AppHealth::new(
            HealthState::Unknown,
            "ReadError",
            format!("cannot read Argo CD Application {app_ref}: {e}"),
        ),
    };
    tracing::debug!(app = %app_ref, state = %health.state, reason = health.reason, "Argo CD Application health");
    (app_ref, health)
}

/// Sets `argocd.argoproj.io/refresh: hard` unless already requested. Failures are logged: the
/// next check asks again.
pub(crate) async fn request_hard_refresh(api: &Api<Application>, app: &Application) {
    let already = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REFRESH))
        .is_some_and(|v| v == REFRESH_HARD);
    if already {
        return;
    }
    let name = app.metadata.name.clone().unwrap_or_default();
    let patch = json!({ "metadata": { "annotations": { ANNOTATION_REFRESH: REFRESH_HARD } } });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(app = %app_key(app), "requested a hard refresh of an Argo CD Application with stale health")
        }
        Err(e) => {
            tracing::warn!(app = %app_key(app), error = %e, "cannot request a hard refresh of an Argo CD Application")
        }
    }
}

mod record;
pub use record::ArgoCdHealthCheck;

#[cfg(test)]
mod tests;
