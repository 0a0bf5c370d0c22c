//! `argocd-wait` (Kargo `argocd_waiter.go`): waits until Argo CD Applications reach the states a
//! step names (`health`, `sync`, `operation`, `suspended`, `degraded`). [`readiness`] decides
//! from one Application as read, reusing the Stage health check's predicates
//! ([`stale_health`], [`error_conditions`]); [`run`] reads the Applications. Unlike
//! `argocd-update`, waiting changes nothing, so no `authorized-stage` annotation is required
//! (Kargo does not require one either).

use std::collections::BTreeMap;

use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::health::{error_conditions, request_hard_refresh, stale_health};
use super::update::{AppSelector, validate_selector};
use super::{Error, app_key};
use crate::api::argocd::{
    Application, HEALTH_DEGRADED, HEALTH_HEALTHY, HEALTH_SUSPENDED, HEALTH_UNKNOWN, SYNC_SYNCED,
};

/// A condition to wait for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// Health `Healthy`.
    Health,
    /// Sync status `Synced`.
    Sync,
    /// No operation requested or running.
    Operation,
    /// Health `Suspended`.
    Suspended,
    /// Health `Degraded`.
    Degraded,
}

/// Kargo's default, that of `argocd app wait` without flags.
pub const DEFAULT_WAIT_FOR: [WaitFor; 3] = [WaitFor::Health, WaitFor::Sync, WaitFor::Operation];

/// The step's config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitConfig {
    /// The Applications to wait for (at least one).
    pub apps: Vec<AppWait>,
}

/// One Application (by name) or a set of them (by label selector), and what to wait for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppWait {
    /// The Application's name; exclusive with `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to the controller's Argo CD namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Applications matching these labels; exclusive with `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<AppSelector>,
    /// What to wait for. `health`, `suspended` and `degraded` are OR'd, the rest AND'd; default
    /// `[health, sync, operation]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<Vec<WaitFor>>,
}

impl AppWait {
    fn name(&self) -> Option<&str> {
        self.name.as_deref().filter(|n| !n.is_empty())
    }

    /// What to wait for, defaults applied.
    pub fn conditions(&self) -> Vec<WaitFor> {
        match &self.wait_for {
            Some(w) if !w.is_empty() => w.clone(),
            _ => DEFAULT_WAIT_FOR.to_vec(),
        }
    }
}

impl WaitConfig {
    /// Kargo's schema checks the types alone do not make, all reported at once.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.apps.is_empty() {
            problems.push("apps: at least one Application must be given".to_string());
        }
        for (i, app) in self.apps.iter().enumerate() {
            let at = format!("apps[{i}]");
            if app.name().is_some() == app.selector.is_some() {
                problems.push(format!("{at}: exactly one of name or selector must be set"));
            }
            if app.namespace.as_deref() == Some("") {
                problems.push(format!("{at}.namespace: must not be empty when given"));
            }
            if let Some(sel) = &app.selector {
                validate_selector(sel, &format!("{at}.selector"), &mut problems);
            }
            if let Some(w) = &app.wait_for {
                if w.is_empty() {
                    problems.push(format!(
                        "{at}.waitFor: must list at least one condition when given"
                    ));
                }
                let mut seen = w.clone();
                seen.sort();
                seen.dedup();
                if seen.len() != w.len() {
                    problems.push(format!("{at}.waitFor: conditions must not repeat"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }
}

/// What one Application's state means for the wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; why, naming the Application and its state.
    Waiting(String),
    /// Health cannot be trusted until Argo CD reconciles again: ask it to (hard refresh).
    Stale(String),
    /// It will not get there without someone acting (an error condition, a health regression).
    Failed(String),
}

/// Kargo's `checkAppReadiness`, in its order: error conditions fail; a pending or running
/// operation waits (`operation`); stale health waits for a refresh (when health is checked);
/// health `Degraded` after a healthier state seen before fails (`health`); the health
/// conditions are OR'd; then `sync`. `previous_health` is the health seen on the last call.
pub fn readiness(
    app: &Application,
    wait_for: &[WaitFor],
    previous_health: Option<&str>,
) -> Readiness {
    let key = app_key(app);
    if let Some((_, details)) = error_conditions(app) {
        return Readiness::Failed(format!(
            "Argo CD Application {key} has an error condition: {details}"
        ));
    }
    let status = app.status.clone().unwrap_or_default();
    if wait_for.contains(&WaitFor::Operation) && operation_in_progress(app) {
        let phase = status
            .operation_state
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("requested");
        return Readiness::Waiting(format!(
            "Argo CD Application {key} has an operation in progress ({phase})"
        ));
    }
    let health = status
        .health
        .as_ref()
        .and_then(|h| h.status.as_deref())
        .unwrap_or_default();
    let health_checked = wait_for
        .iter()
        .any(|w| matches!(w, WaitFor::Health | WaitFor::Suspended | WaitFor::Degraded));
    if health_checked {
        if let Some(stale) = stale_health(app) {
            return Readiness::Stale(format!("Argo CD Application {key}: {stale}"));
        }
        if wait_for.contains(&WaitFor::Health)
            && health == HEALTH_DEGRADED
            && previous_health
                .is_some_and(|p| !p.is_empty() && p != HEALTH_DEGRADED && p != HEALTH_UNKNOWN)
        {
            return Readiness::Failed(format!(
                "Argo CD Application {key} health has regressed from {} to {health}",
                previous_health.unwrap_or_default()
            ));
        }
        let passed = (wait_for.contains(&WaitFor::Health) && health == HEALTH_HEALTHY)
            || (wait_for.contains(&WaitFor::Suspended) && health == HEALTH_SUSPENDED)
            || (wait_for.contains(&WaitFor::Degraded) && health == HEALTH_DEGRADED);
        if !passed {
            let shown = if health.is_empty() { "unknown" } else { health };
            return Readiness::Waiting(format!("Argo CD Application {key} health is {shown}"));
        }
    }
    if wait_for.contains(&WaitFor::Sync) {
        let sync = status
            .sync
            .as_ref()
            .and_then(|s| s.status.as_deref())
            .unwrap_or_default();
        if sync != SYNC_SYNCED {
            let shown = if sync.is_empty() { "unknown" } else { sync };
            return Readiness::Waiting(format!("Argo CD Application {key} sync status is {shown}"));
        }
    }
    Readiness::Ready
}

/// A requested operation, or one started and not finished.
fn operation_in_progress(app: &Application) -> bool {
    if app.operation.is_some() {
        return true;
    }
    app.status
        .as_ref()
        .and_then(|s| s.operation_state.as_ref())
        .is_some_and(|s| s.finished_at.is_none())
}

/// The Applications one entry names: by name (missing is an error naming it) or by selector
/// (none matching is an error).
pub async fn resolve(
    client: &kube::Client,
    default_namespace: &str,
    spec: &AppWait,
) -> Result<Vec<Application>, Error> {
    let namespace = spec
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(default_namespace);
    let api: Api<Application> = Api::namespaced(client.clone(), namespace);
    if let Some(name) = spec.name() {
        let key = format!("{namespace}/{name}");
        let app = api
            .get_opt(name)
            .await
            .map_err(|source| Error::Kube {
                action: "get",
                app: key.clone(),
                source,
            })?
            .ok_or(Error::NotFound(key))?;
        return Ok(vec![app]);
    }
    let query = spec
        .selector
        .as_ref()
        .map(AppSelector::to_query)
        .unwrap_or_default();
    let list = api
        .list(&ListParams::default().labels(&query))
        .await
        .map_err(|source| Error::Kube {
            action: "list",
            app: format!("{namespace}/* matching {query}"),
            source,
        })?;
    if list.items.is_empty() {
        return Err(Error::NoMatch(format!(
            "no Argo CD Application in namespace {namespace} matches the selector {query}"
        )));
    }
    Ok(list.items)
}

/// One pass over every Application of the config.
#[derive(Debug, Default)]
pub struct WaitPass {
    /// `(namespace, name)` of every Application resolved, in config order.
    pub apps: Vec<(String, String)>,
    /// Health per `namespace/name`: the previous ones, updated with those read now (kept in the
    /// step's output so the next pass can tell a regression).
    pub health: BTreeMap<String, String>,
    /// Why each Application that is not ready is not; empty when all are.
    pub waiting: Vec<String>,
    /// Set when an Application cannot get ready: the step fails with this.
    pub failed: Option<String>,
}

/// Reads the Applications and judges each; asks Argo CD for a hard refresh of those whose
/// health is stale. Stops at the first failure, as Kargo does.
pub async fn run(
    client: &kube::Client,
    default_namespace: &str,
    cfg: &WaitConfig,
    previous_health: &BTreeMap<String, String>,
) -> Result<WaitPass, Error> {
    let mut pass = WaitPass {
        health: previous_health.clone(),
        ..WaitPass::default()
    };
    for spec in &cfg.apps {
        let conditions = spec.conditions();
        for app in resolve(client, default_namespace, spec).await? {
            let key = app_key(&app);
            let ns = app.metadata.namespace.clone().unwrap_or_default();
            pass.apps
                .push((ns.clone(), app.metadata.name.clone().unwrap_or_default()));
            let health = app
                .status
                .as_ref()
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status.clone())
                .unwrap_or_default();
            let verdict = readiness(
                &app,
                &conditions,
                previous_health.get(&key).map(String::as_str),
            );
            if !health.is_empty() {
                pass.health.insert(key.clone(), health);
            }
            match verdict {
                Readiness::Ready => tracing::debug!(app = %key, "Argo CD Application is ready"),
                Readiness::Waiting(why) => pass.waiting.push(why),
                Readiness::Stale(why) => {
                    let api: Api<Application> = Api::namespaced(client.clone(), &ns);
                    request_hard_refresh(&api, &app).await;
                    pass.waiting.push(why);
                }
                Readiness::Failed(why) => {
                    pass.failed = Some(why);
                    return Ok(pass);
                }
            }
        }
    }
    Ok(pass)
}

#[cfg(test)]
mod tests;
