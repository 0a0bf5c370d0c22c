//! The connection to the API server (the controller's, the CLI's and `haul gc`'s): one HTTP/2
//! connection multiplexing every request and watch (as client-go does; kube's default stack
//! speaks HTTP/1.1 only, one connection per request in flight), and a count of the requests
//! per verb and resource for the controller's `/metrics`.
//!
//! The stack is kube's default one (base URI, authentication, extra headers, retry of 429/503/
//! 504) rebuilt around a connector that offers `h2` by ALPN; a server that does not accept it
//! is spoken to in HTTP/1.1 as before.

use std::time::Duration;

use http::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ClientBuilder, ConfigExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::ServiceBuilder;

use crate::metrics::KubeRequestLabel;

/// How often an idle HTTP/2 connection is pinged, and how long a ping may go unanswered before
/// the connection is dropped and redialled (client-go's ReadIdleTimeout and PingTimeout): a
/// dead connection must not silently stall every watch multiplexed on it.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds a client for `config` speaking HTTP/2 as [`client`] does, for commands that keep no
/// request count (the CLI, `haul gc`).
pub fn uncounted(config: kube::Config) -> Result<kube::Client, kube::Error> {
    client(config, Family::default())
}

/// Builds a client for `config` that counts its requests into `requests`.
pub fn client(
    config: kube::Config,
    requests: Family<KubeRequestLabel, Counter>,
) -> Result<kube::Client, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let tls = config.rustls_client_config()?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
            })?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let https = builder.enable_all_versions().wrap_connector(http);
    let mut timed = hyper_timeout::TimeoutConnector::new(https);
    timed.set_connect_timeout(config.connect_timeout);
    // With HTTP/2 the pings keep a healthy connection readable well within this.
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    let hyper: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(PING_INTERVAL)
            .http2_keep_alive_timeout(PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(timed);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| {
            tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry())
        }))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_request(move |req: Request<Body>| {
            let apply = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
            let (verb, resource) =
                classify(req.method(), apply, req.uri().path(), req.uri().query());
            requests
                .get_or_create(&KubeRequestLabel {
                    verb: verb.into(),
                    resource,
                })
                .inc();
            req
        })
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(ClientBuilder::new(service, config.default_namespace).build())
}

/// The Kubernetes verb (as kube-apiserver's `apiserver_request_total` names it; `apply`: a
/// server-side apply patch) and the resource (`stages`, `stages/status`) of a request to
/// `path?query`. Paths that name no resource (discovery, `/version`) count under their first
/// segment.
pub fn classify(
    method: &Method,
    apply: bool,
    path: &str,
    query: Option<&str>,
) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => {
            let first = segments.first().copied().unwrap_or_default();
            return (verb(method, apply, false, false), format!("/{first}"));
        }
    };
    // namespaces/<ns>/<resource>[/<name>[/<subresource>]], or the namespace itself.
    let rest = match rest {
        ["namespaces", _ns, resource, tail @ ..] => {
            let mut r = vec![*resource];
            r.extend_from_slice(tail);
            r
        }
        other => other.to_vec(),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match rest.as_slice() {
        [] => (verb(method, apply, false, watch), "discovery".into()),
        [resource] => (verb(method, apply, false, watch), (*resource).to_string()),
        [resource, _name] => (verb(method, apply, true, watch), (*resource).to_string()),
        [resource, _name, sub, ..] => (
            verb(method, apply, true, watch),
            format!("{resource}/{sub}"),
        ),
    }
}

fn verb(method: &Method, apply: bool, named: bool, watch: bool) -> &'static str {
    match *method {
        Method::PATCH if apply => "APPLY",
        Method::GET if watch => "WATCH",
        Method::GET if named => "GET",
        Method::GET => "LIST",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE if named => "DELETE",
        Method::DELETE => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_as_kube_apiserver_names_them() {
        let c = |m: Method, p: &str, q: Option<&str>| {
            let (v, r) = classify(&m, false, p, q);
            format!("{v} {r}")
        };
        let stage = "/apis/kargo.akuity.io/v1alpha1/namespaces/p/stages/dev";
        assert_eq!(c(Method::GET, stage, None), "GET stages");
        assert_eq!(
            c(
                Method::PATCH,
                &format!("{stage}/status"),
                Some("fieldManager=x")
            ),
            "PATCH stages/status"
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/kargo.akuity.io/v1alpha1/freights",
                Some("watch=true&resourceVersion=5")
            ),
            "WATCH freights"
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/kargo.akuity.io/v1alpha1/namespaces/p/freights",
                None
            ),
            "LIST freights"
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/p/events", None),
            "POST events"
        );
        assert_eq!(
            classify(&Method::PATCH, true, &format!("{stage}/status"), None),
            ("APPLY", "stages/status".to_string())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/p", None),
            "GET namespaces"
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/p/pods", None),
            "DELETECOLLECTION pods"
        );
        assert_eq!(c(Method::GET, "/version", None), "LIST /version");
        assert_eq!(c(Method::GET, "/apis", None), "LIST /apis");
        assert_eq!(
            c(Method::GET, "/apis/kargo.akuity.io/v1alpha1", None),
            "LIST discovery"
        );
    }
}
