//! The HTTP side: embedded pages and assets, the JSON API the page calls, and the guards that
//! keep other web sites and untrusted callers from acting as the user.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;

use super::actions::{self, Failure, Target};
use super::identity::{Identity, Proxy};
use super::{UiArgs, UiError, live};
use crate::cli::{CliError, Cluster, ClusterArgs};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The header the page sets on every write. A cross-site form or fetch cannot set it without
/// a CORS preflight this server never approves, so writes come only from its own page.
pub const CSRF_HEADER: &str = "x-haul-ui";

struct AppState {
    identity: Identity,
    /// The kubeconfig context's namespace: the project shown when Projects cannot be listed.
    default_project: Option<String>,
    /// Behind a proxy the Host is the proxy's, so the loopback Host check is off.
    behind_proxy: bool,
    /// The live project feeds, shared by the pages of one identity.
    hub: Arc<live::Hub>,
}

type Shared = Arc<AppState>;

/// Builds the router for `args` (connecting to the cluster first).
pub(super) async fn app(args: &UiArgs) -> Result<Router, UiError> {
    let default_project = args.cluster.namespace.clone();
    // The namespace only matters for the default project; any value makes connect succeed.
    let connect_args = ClusterArgs {
        namespace: Some(default_project.clone().unwrap_or_else(|| "default".into())),
        ..args.cluster.clone()
    };
    let cluster = Cluster::connect(&connect_args).await?;
    let identity = match &args.proxy_secret_file {
        None => Identity::Local(cluster.client.clone()),
        Some(path) => {
            let secret = std::fs::read(path).map_err(|e| UiError::Secret {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
            if secret.len() < 16 {
                return Err(UiError::Secret {
                    path: path.display().to_string(),
                    message: "the shared secret must be at least 16 characters".into(),
                });
            }
            let config = config_of(&args.cluster).await?;
            Identity::Proxy(Box::new(Proxy::new(config, secret)))
        }
    };
    let state = Arc::new(AppState {
        behind_proxy: matches!(identity, Identity::Proxy(_)),
        identity,
        default_project,
        hub: Arc::default(),
    });
    // Locally there is one user, known now: start watching the project `haul ui` was pointed
    // at, so the first page opened is drawn from warm caches.
    if !state.behind_proxy
        && let Some(project) = &state.default_project
        && let Ok((identity, client)) = state.identity.resolve(&HeaderMap::new())
    {
        state.hub.warm(&identity, client, project);
    }
    Ok(router(state))
}

/// The kubeconfig's (or in-cluster) Config, for impersonating clients.
async fn config_of(args: &ClusterArgs) -> Result<kube::Config, UiError> {
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let result = match &args.kubeconfig {
        Some(path) => match kube::config::Kubeconfig::read_from(path) {
            Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => kube::Config::infer().await.map_err(|e| e.to_string()),
    };
    result.map_err(|e| UiError::Cluster(CliError::Config(format!("using the kubeconfig: {e}"))))
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/p/{*rest}", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/projects", get(projects))
        .route("/api/projects/{project}/events", get(events))
        .route(
            "/api/projects/{project}/stages/{stage}/candidates",
            get(candidates),
        )
        .route("/api/projects/{project}/preview", post(preview))
        .route("/api/projects/{project}/{action}", post(act))
        .with_state(state)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A request turned away, with why.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(Failure { error: self.1 })).into_response()
    }
}

fn refuse(code: StatusCode, error: String) -> Refusal {
    Refusal(code, error)
}

/// The client for this request, after the guards.
fn guard(state: &AppState, headers: &HeaderMap, method: &Method) -> Result<kube::Client, Refusal> {
    guard_identity(state, headers, method).map(|(_, client)| client)
}

/// The identity's key (see [`Identity::resolve`]) and client for this request, after the guards.
fn guard_identity(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(String, kube::Client), Refusal> {
    if !state.behind_proxy {
        // DNS rebinding: a foreign name resolving to 127.0.0.1 must not reach the user's identity.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !is_loopback_host(host) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("haul ui answers only on localhost or 127.0.0.1, not on Host {host:?}"),
            ));
        }
    }
    if method == Method::POST && headers.get(CSRF_HEADER).is_none() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("a write must carry the {CSRF_HEADER} header (sent by haul's own page)"),
        ));
    }
    state
        .identity
        .resolve(headers)
        .map_err(|e| refuse(StatusCode::FORBIDDEN, e.to_string()))
}

/// Whether `host` (a Host header, with or without port) names this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

async fn index(State(state): State<Shared>, headers: HeaderMap) -> Response {
    // Behind a proxy, an untrusted request gets only the error, not even the page.
    if let Err(r) = guard(&state, &headers, &Method::GET) {
        return r.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn projects(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (identity, client) = match guard_identity(&state, &headers, &Method::GET) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let reply = actions::projects(client.clone(), state.default_project.clone()).await;
    if let Ok(list) = &reply {
        // The user is about to open one of these: their first paint should not wait for a
        // listing. Bounded, as each warm project holds four watches for a while.
        for p in list.0.iter().take(PREWARM_PROJECTS) {
            state.hub.warm(&identity, client.clone(), &p.name);
        }
    }
    reply.into_response()
}

/// How many of a user's listed projects get their watches started before a page asks.
const PREWARM_PROJECTS: usize = 8;

/// Kubernetes names: lowercase alphanumerics, '-' and '.'; anything else is refused before it
/// reaches a URL path.
fn valid_name(kind: &str, name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("{kind} {name:?} is not a valid Kubernetes name"),
        ))
    }
}

async fn events(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Response {
    let (identity, client) = match guard_identity(&state, &headers, &Method::GET) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = valid_name("project", &project) {
        return r.into_response();
    }
    Sse::new(live::project_events(&state.hub, &identity, client, project))
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn candidates(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, stage)): Path<(String, String)>,
) -> Response {
    let client = match guard(&state, &headers, &Method::GET) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = valid_name("project", &project).and_then(|_| valid_name("stage", &stage)) {
        return r.into_response();
    }
    let cluster = Cluster {
        client,
        namespace: project,
    };
    actions::candidates(cluster, stage).await.into_response()
}

async fn preview(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Option<Json<Target>>,
) -> Response {
    let client = match guard(&state, &headers, &Method::POST) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = valid_name("project", &project) {
        return r.into_response();
    }
    let Some(Json(target)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the request body must be JSON naming the stage and freight".into(),
        )
        .into_response();
    };
    let cluster = Cluster {
        client,
        namespace: project,
    };
    super::preview::preview(cluster, target)
        .await
        .into_response()
}

type Action = fn(Cluster, Target) -> BoxFuture<'static, actions::Reply<actions::Done>>;

fn action(name: &str) -> Option<Action> {
    Some(match name {
        "promote" => |c, t| Box::pin(actions::promote(c, t)),
        "approve" => |c, t| Box::pin(actions::approve(c, t)),
        "refresh" => |c, t| Box::pin(actions::refresh(c, t)),
        "reverify" => |c, t| Box::pin(actions::reverify(c, t)),
        "abort-verification" => |c, t| Box::pin(actions::abort_verification(c, t)),
        "abort" => |c, t| Box::pin(actions::abort_promotion(c, t)),
        _ => return None,
    })
}

async fn act(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, name)): Path<(String, String)>,
    body: Option<Json<Target>>,
) -> Response {
    let (identity, client) = match guard_identity(&state, &headers, &Method::POST) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = valid_name("project", &project) {
        return r.into_response();
    }
    let Some(run) = action(&name) else {
        return refuse(StatusCode::NOT_FOUND, format!("no action {name:?}")).into_response();
    };
    let Some(Json(target)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the request body must be JSON naming the stage, freight, warehouse or promotion"
                .into(),
        )
        .into_response();
    };
    let cluster = Cluster {
        client,
        namespace: project.clone(),
    };
    let result = run(cluster, target).await;
    if let Err((code, _)) = &result
        && code.is_client_error()
    {
        // A refusal may mean the user's rights changed: the page's buttons follow.
        state.hub.recheck(&identity, &project);
    }
    result.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["localhost:7780", "127.0.0.1:1", "[::1]:80", "localhost"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for no in ["evil.example:7780", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert!(!is_loopback_host(no), "{no}");
        }
    }
}
