//! The receivers' HTTP server. Every replica serves it (it only reads ProjectConfigs, Secrets
//! and Warehouses and patches the refresh annotation), on its own port.
//!
//! A request path is looked up among the paths published in `ProjectConfig.status`; the
//! receiver's Secret is then read again and the path recomputed, so a rotated secret stops the
//! old URL at once. Refreshes of one Warehouse are coalesced: at most one annotation patch per
//! [`REFRESH_WINDOW`], plus one trailing patch for the pushes that arrived inside the window,
//! so a burst of deliveries neither floods the API server nor loses the last push.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::generic::{self, Outcome};
use super::promotion_match;
use super::registry::Request;
use super::{
    Event, MAX_BODY_BYTES, Platform, Pushed, matching_warehouses, platform_of, webhook_path,
};
use crate::api::{
    ANNOTATION_REFRESH, CLUSTER_CONFIG_NAME, ClusterConfig, ProjectConfig, Promotion, Warehouse,
    WebhookReceiverConfig,
};

/// The least time between two refresh patches of one Warehouse.
pub const REFRESH_WINDOW: Duration = Duration::from_secs(1);

struct Slot {
    last: Instant,
    pending: bool,
}

/// The merge patch that sets Kargo's refresh annotation to now (on a Warehouse or a Promotion).
fn refresh_patch() -> serde_json::Value {
    json!({"metadata": {"annotations": {ANNOTATION_REFRESH: Timestamp::now().to_string()}}})
}

/// Sets the refresh annotation on Warehouses, coalescing bursts per Warehouse.
pub struct Refresher {
    client: kube::Client,
    window: Duration,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

/// What became of one Warehouse's refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The annotation was set now.
    Now,
    /// A refresh was set less than a window ago; one more follows when the window ends.
    Coalesced,
}

impl Refresher {
    pub fn new(client: kube::Client, window: Duration) -> Arc<Self> {
        Arc::new(Self {
            client,
            window,
            slots: Mutex::new(HashMap::new()),
        })
    }

    async fn patch(client: &kube::Client, namespace: &str, name: &str) -> Result<(), kube::Error> {
        let api: Api<Warehouse> = Api::namespaced(client.clone(), namespace);
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&refresh_patch()),
        )
        .await
        .map(|_| ())
    }

    /// Refreshes `namespace/name` now, or once the current window ends.
    pub async fn refresh(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
    ) -> Result<Refreshed, kube::Error> {
        let key = (namespace.to_string(), name.to_string());
        let now = Instant::now();
        let wait = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|_, s| s.pending || now.duration_since(s.last) < self.window * 4);
            match slots.get_mut(&key) {
                Some(s) if now.duration_since(s.last) < self.window => {
                    if s.pending {
                        return Ok(Refreshed::Coalesced);
                    }
                    s.pending = true;
                    Some(self.window.saturating_sub(now.duration_since(s.last)))
                }
                _ => {
                    slots.insert(
                        key.clone(),
                        Slot {
                            last: now,
                            pending: false,
                        },
                    );
                    None
                }
            }
        };
        let Some(wait) = wait else {
            Self::patch(&self.client, namespace, name).await?;
            return Ok(Refreshed::Now);
        };
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Ok(mut slots) = this.slots.lock()
                && let Some(s) = slots.get_mut(&key)
            {
                s.last = Instant::now();
                s.pending = false;
            }
            if let Err(e) = Self::patch(&this.client, &key.0, &key.1).await {
                tracing::warn!(namespace = %key.0, warehouse = %key.1, error = %e, "deferred webhook refresh failed");
            }
        });
        Ok(Refreshed::Coalesced)
    }
}

/// What the handlers share.
pub struct Receivers {
    client: kube::Client,
    configs: Store<ProjectConfig>,
    refresher: Arc<Refresher>,
    /// Where the Secrets of ClusterConfig's receivers live (SYSTEM_RESOURCES_NAMESPACE).
    system_namespace: Option<String>,
}

/// Serves the receivers on `addr` until the listener fails. ClusterConfig's receivers are
/// served when `system_namespace` (where their Secrets live) is known.
pub async fn serve(
    addr: std::net::SocketAddr,
    client: kube::Client,
    system_namespace: Option<String>,
) -> std::io::Result<()> {
    let (configs, writer) = reflector::store::<ProjectConfig>();
    let stream = reflector::reflector(
        writer,
        watcher(
            Api::<ProjectConfig>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .applied_objects();
    let watch = tokio::spawn(stream.for_each(|_| std::future::ready(())));
    let state = Arc::new(Receivers {
        refresher: Refresher::new(client.clone(), REFRESH_WINDOW),
        client,
        configs,
        system_namespace,
    });
    let app = axum::Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "webhook receivers listening");
    let result = axum::serve(listener, app).await;
    watch.abort();
    result
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    reply(status, json!({"error": msg}))
}

/// A receiver found by its path.
struct Found {
    /// The project whose Warehouses and Promotions it refreshes; `None` for a ClusterConfig
    /// receiver, which refreshes those of every project.
    project: Option<String>,
    /// The project, or "(cluster)", for logs.
    namespace: String,
    platform: Platform,
    secret: Vec<u8>,
    config: WebhookReceiverConfig,
}

async fn lookup(state: &Receivers, path: &str) -> Result<Option<Found>, Response> {
    if state.configs.wait_until_ready().await.is_err() {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "not ready"));
    }
    for pc in state.configs.state() {
        let Some(namespace) = pc.metadata.namespace.clone() else {
            continue;
        };
        let Some(status) = pc.status.as_ref() else {
            continue;
        };
        let Some(name) = status
            .webhook_receivers
            .iter()
            .find(|d| d.path.as_deref() == Some(path))
            .and_then(|d| d.name.clone())
        else {
            continue;
        };
        let Some((config, platform, secret_ref)) = pc
            .spec
            .webhook_receivers
            .iter()
            .filter(|r| r.name.as_deref() == Some(name.as_str()))
            .find_map(|r| platform_of(r).ok().map(|(p, s)| (r, p, s)))
        else {
            continue;
        };
        let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &namespace);
        let secret = match secrets.get_opt(&secret_ref.name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%namespace, receiver = %name, error = %e, "reading a webhook receiver's Secret");
                return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
            }
        };
        let Some(value) = secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(platform.secret_key()))
            .map(|b| b.0)
        else {
            continue;
        };
        // The path must still derive from the current secret (rotation retires old URLs).
        let secret_str = String::from_utf8_lossy(&value);
        if !path.ends_with(&webhook_path(
            "",
            &namespace,
            platform,
            &name,
            &[&secret_str],
        )) {
            continue;
        }
        return Ok(Some(Found {
            project: Some(namespace.clone()),
            namespace,
            platform,
            secret: value,
            config: config.clone(),
        }));
    }
    lookup_cluster(state, path).await
}

/// Kargo's fallback: a receiver of ClusterConfig `cluster`, its Secret in the system
/// namespace, its path derived with no project.
async fn lookup_cluster(state: &Receivers, path: &str) -> Result<Option<Found>, Response> {
    let Some(ns) = state.system_namespace.as_deref() else {
        return Ok(None);
    };
    let internal = |what: &str, e: kube::Error| {
        tracing::warn!(error = %e, "{what} for a cluster webhook receiver");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    };
    let api: Api<ClusterConfig> = Api::all(state.client.clone());
    let cc = match api.get_opt(CLUSTER_CONFIG_NAME).await {
        Ok(Some(cc)) => cc,
        Ok(None) => return Ok(None),
        Err(e) => return Err(internal("reading ClusterConfig", e)),
    };
    let Some(name) = cc
        .status
        .as_ref()
        .and_then(|s| {
            s.webhook_receivers
                .iter()
                .find(|d| d.path.as_deref() == Some(path))
        })
        .and_then(|d| d.name.clone())
    else {
        return Ok(None);
    };
    let Some((config, platform, secret_ref)) = cc
        .spec
        .webhook_receivers
        .iter()
        .filter(|r| r.name.as_deref() == Some(name.as_str()))
        .find_map(|r| platform_of(r).ok().map(|(p, s)| (r, p, s)))
    else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), ns);
    let secret = match secrets.get_opt(&secret_ref.name).await {
        Ok(s) => s,
        Err(e) => return Err(internal("reading the Secret", e)),
    };
    let Some(value) = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(platform.secret_key()))
        .map(|b| b.0)
    else {
        return Ok(None);
    };
    let secret_str = String::from_utf8_lossy(&value);
    if !path.ends_with(&webhook_path(
        "",
        crate::controller::cluster_config::CLUSTER_PROJECT,
        platform,
        &name,
        &[&secret_str],
    )) {
        return Ok(None);
    }
    Ok(Some(Found {
        project: None,
        namespace: "(cluster)".into(),
        platform,
        secret: value,
        config: config.clone(),
    }))
}

/// Items grouped by namespace, in name order.
fn by_namespace<K: kube::Resource>(items: Vec<K>) -> Vec<(String, Vec<K>)> {
    let mut groups: std::collections::BTreeMap<String, Vec<K>> = Default::default();
    for i in items {
        let ns = i.meta().namespace.clone().unwrap_or_default();
        groups.entry(ns).or_default().push(i);
    }
    groups.into_iter().collect()
}

async fn handle(
    State(state): State<Arc<Receivers>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let found = match lookup(&state, path).await {
        Ok(Some(f)) => f,
        Ok(None) => return error(StatusCode::NOT_FOUND, "not found"),
        Err(resp) => return resp,
    };
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
    }
    let receiver = found.platform.as_str();
    let event = match found.platform.handle(Request {
        headers: &headers,
        query: uri.query().unwrap_or_default(),
        body: &body,
        secret: &found.secret,
        config: &found.config,
    }) {
        Ok(e) => e,
        Err(e) => {
            // Never log the secret, the signature or the token; the reason is enough.
            tracing::info!(namespace = %found.namespace, receiver, reason = %e, "webhook request refused");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return error(status, &e.to_string());
        }
    };
    let (repo_urls, qualifiers, changed_paths) = match event {
        Event::Ping => {
            return reply(
                StatusCode::OK,
                json!({"msg": "ping event received, webhook is configured correctly"}),
            );
        }
        Event::Ignored => return reply(StatusCode::OK, json!({"msg": "event ignored"})),
        Event::Refresh {
            repo_urls,
            qualifiers,
            changed_paths,
        } => (repo_urls, qualifiers, changed_paths),
        Event::Actions(actions) => {
            return run_actions(&state, found.project.as_deref(), actions).await;
        }
        Event::PullRequestClosed { url } => {
            return refresh_promotions(&state, found.project.as_deref(), receiver, &url).await;
        }
    };
    let list = match list_warehouses(&state, found.project.as_deref()).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let pushed = Pushed {
        repo_urls: &repo_urls,
        qualifiers: &qualifiers,
        changed_paths: &changed_paths,
    };
    let targets: Vec<(String, String)> = by_namespace(list)
        .into_iter()
        .flat_map(|(ns, ws)| {
            matching_warehouses(&ws, &pushed)
                .into_iter()
                .map(move |n| (ns.clone(), n))
        })
        .collect();
    // A project's receiver reports Warehouse names; a cluster receiver `namespace/name`.
    let shown = |ns: &str, name: &str| match found.project {
        Some(_) => name.to_string(),
        None => format!("{ns}/{name}"),
    };
    let mut refreshed = Vec::new();
    let mut coalesced = Vec::new();
    let mut failed = Vec::new();
    for (ns, name) in &targets {
        match state.refresher.refresh(ns, name).await {
            Ok(Refreshed::Now) => refreshed.push(shown(ns, name)),
            Ok(Refreshed::Coalesced) => coalesced.push(shown(ns, name)),
            Err(e) => {
                tracing::warn!(namespace = %ns, warehouse = %name, error = %e, "webhook refresh failed");
                failed.push(shown(ns, name));
            }
        }
    }
    tracing::info!(
        namespace = %found.namespace,
        receiver,
        ?repo_urls,
        ?qualifiers,
        ?refreshed,
        ?coalesced,
        "webhook refreshed Warehouses"
    );
    let summary = json!({
        "repoURLs": repo_urls,
        "refreshed": refreshed,
        "coalesced": coalesced,
        "failed": failed,
    });
    if failed.is_empty() {
        let mut body = summary;
        body["msg"] = json!(format!("refreshed {} warehouse(s)", targets.len()));
        reply(StatusCode::OK, body)
    } else {
        let mut body = summary;
        body["error"] = json!(format!(
            "failed to refresh {} of {} warehouses",
            failed.len(),
            targets.len()
        ));
        reply(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

/// Marks the Promotions waiting on the closed pull request at `url` for refresh (Kargo's
/// `refreshPromotionsByPrURL`): their wait step runs again now instead of at its next poll.
async fn refresh_promotions(
    state: &Receivers,
    project: Option<&str>,
    receiver: &str,
    url: &str,
) -> Response {
    let namespace = project.unwrap_or("(cluster)");
    let api: Api<Promotion> = match project {
        Some(ns) => Api::namespaced(state.client.clone(), ns),
        None => Api::all(state.client.clone()),
    };
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(%namespace, error = %e, "listing Promotions for a webhook");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "listing Promotions failed",
            );
        }
    };
    let mut names = Vec::new();
    let patch = refresh_patch();
    let mut failed = 0;
    for (ns, promotions) in by_namespace(list) {
        let api: Api<Promotion> = Api::namespaced(state.client.clone(), &ns);
        for name in promotion_match::waiting_on(&promotions, url) {
            if let Err(e) = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(namespace = %ns, promotion = %name, error = %e, "webhook refresh of a Promotion failed");
                failed += 1;
            }
            names.push(if project.is_some() {
                name
            } else {
                format!("{ns}/{name}")
            });
        }
    }
    tracing::info!(%namespace, receiver, pull_request = %url, promotions = ?names, "webhook refreshed Promotions");
    if failed > 0 {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("failed to refresh {failed} of {} promotion(s)", names.len())}),
        );
    }
    reply(
        StatusCode::OK,
        json!({"msg": format!("refreshed {} promotion(s)", names.len()), "promotions": names}),
    )
}

/// The Warehouses of `project`, or of every project.
async fn list_warehouses(
    state: &Receivers,
    project: Option<&str>,
) -> Result<Vec<Warehouse>, Response> {
    let warehouses: Api<Warehouse> = match project {
        Some(ns) => Api::namespaced(state.client.clone(), ns),
        None => Api::all(state.client.clone()),
    };
    match warehouses.list(&ListParams::default()).await {
        Ok(l) => Ok(l.items),
        Err(e) => {
            tracing::warn!(namespace = ?project, error = %e, "listing Warehouses for a webhook");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "listing Warehouses failed",
            ))
        }
    }
}

/// The generic receiver: runs each resolved action and answers Kargo's
/// `{"results": [...]}`, 500 when any action errored or failed in part.
async fn run_actions(
    state: &Receivers,
    project: Option<&str>,
    actions: Vec<generic::Action>,
) -> Response {
    let namespace = project.unwrap_or("(cluster)");
    let needs_list = actions
        .iter()
        .any(|a| matches!(a.outcome, Outcome::Refresh(_)));
    let list = if needs_list {
        match list_warehouses(state, project).await {
            Ok(l) => by_namespace(l),
            Err(resp) => return resp,
        }
    } else {
        Vec::new()
    };
    let mut results = Vec::new();
    let mut any_error = false;
    for a in actions {
        let mut r = serde_json::to_value(&a.config).unwrap_or_else(|_| json!({}));
        let (matched, result, summary, targets) = match a.outcome {
            Outcome::NotMatched => (
                false,
                "NotApplicable",
                generic::SUMMARY_NOT_MATCHED.to_string(),
                Vec::new(),
            ),
            Outcome::WhenError(e) => {
                tracing::info!(%namespace, error = %e, "generic webhook whenExpression failed");
                (
                    false,
                    "Error",
                    generic::SUMMARY_MATCHING_ERROR.to_string(),
                    Vec::new(),
                )
            }
            Outcome::SelectionError(e) => {
                tracing::info!(%namespace, error = %e, "generic webhook target selection failed");
                (
                    true,
                    "Error",
                    generic::SUMMARY_SELECTION_ERROR.to_string(),
                    Vec::new(),
                )
            }
            Outcome::Refresh(selections) => {
                let selected: Result<Vec<(String, String)>, String> =
                    list.iter().try_fold(Vec::new(), |mut acc, (ns, ws)| {
                        let names = generic::select_warehouses(ws, &selections)?;
                        acc.extend(names.into_iter().map(|n| (ns.clone(), n)));
                        Ok(acc)
                    });
                match selected {
                    Err(e) => {
                        tracing::info!(%namespace, error = %e, "generic webhook target selection failed");
                        (
                            true,
                            "Error",
                            generic::SUMMARY_SELECTION_ERROR.to_string(),
                            Vec::new(),
                        )
                    }
                    Ok(names) => {
                        let mut targets = Vec::new();
                        let mut ok = 0;
                        for (ns, name) in &names {
                            let success = match state.refresher.refresh(ns, name).await {
                                Ok(_) => true,
                                Err(e) => {
                                    tracing::warn!(namespace = %ns, warehouse = %name, error = %e, "webhook refresh failed");
                                    false
                                }
                            };
                            ok += usize::from(success);
                            targets
                                .push(json!({"namespace": ns, "name": name, "success": success}));
                        }
                        let result = if ok == names.len() {
                            "Success"
                        } else if ok == 0 {
                            "Failure"
                        } else {
                            "PartialSuccess"
                        };
                        let summary =
                            format!("Refreshed {ok} of {} selected resources", names.len());
                        (true, result, summary, targets)
                    }
                }
            }
        };
        any_error |= matches!(result, "Error" | "Failure" | "PartialSuccess");
        r["matchedWhenExpression"] = json!(matched);
        if !targets.is_empty() {
            r["selectedTargets"] = json!(targets);
        }
        r["result"] = json!(result);
        r["summary"] = json!(summary);
        results.push(r);
    }
    tracing::info!(%namespace, receiver = "generic", ?results, "generic webhook handled");
    let status = if any_error {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    reply(status, json!({ "results": results }))
}
