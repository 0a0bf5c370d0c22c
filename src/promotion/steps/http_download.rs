//! http-download: downloads a URL into a file of the work directory (Kargo's
//! `http_downloader.go`).
//!
//! Kargo's rules kept: GET with `headers` and `queryParams`; a non-2xx status fails the step;
//! an existing `outPath` is replaced only with `allowOverwrite: true`; missing parent
//! directories are created (0700); `timeout` bounds the whole download (default 5 minutes); at
//! most 100 MiB, refused up front from Content-Length and otherwise while streaming; the body
//! is streamed into a temporary file next to `outPath` (0600) and renamed over it at the end,
//! so `outPath` is never half-written. Only http and https URLs. Connections go through
//! [`http_guard`](super::http_guard): link-local and instance metadata addresses are refused
//! after DNS resolution, as literal hosts, and on every redirect.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::http::{NameValue, redact, without_url};
use super::http_guard;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in};

/// Kargo's limits.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const MAX_DOWNLOAD: u64 = 100 << 20;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The http or https URL to download.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    url: String,
    /// Where to save the body, in the work directory.
    out_path: String,
    /// Whether an existing file at `outPath` may be replaced (default false).
    #[serde(default)]
    allow_overwrite: bool,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    query_params: Vec<NameValue>,
    /// Skip TLS certificate verification (not recommended).
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
    /// How long the whole download may take, as a Go duration (default 5m).
    #[serde(default)]
    timeout: Option<String>,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> StepError {
    StepError::Failed(format!("invalid config: config.{field}: {why}"))
}

/// A validated request.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub url: reqwest::Url,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Checks the config and builds the request, touching nothing.
pub fn plan(cfg: &Config) -> Result<Plan, StepError> {
    let mut url = reqwest::Url::parse(&cfg.url).map_err(|e| invalid("url", e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("url", "only http and https URLs are supported"));
    }
    http_guard::check_url(&url).map_err(|e| invalid("url", e))?;
    if !cfg.query_params.is_empty() {
        let mut q = url.query_pairs_mut();
        for p in &cfg.query_params {
            q.append_pair(&p.name, &p.value);
        }
    }
    for (i, p) in cfg.query_params.iter().enumerate() {
        if p.name.is_empty() {
            return Err(invalid(
                &format!("queryParams[{i}].name"),
                "must not be empty",
            ));
        }
    }
    for (i, h) in cfg.headers.iter().enumerate() {
        reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| invalid(&format!("headers[{i}].name"), e))?;
        reqwest::header::HeaderValue::from_str(&h.value)
            .map_err(|e| invalid(&format!("headers[{i}].value"), e))?;
    }
    let timeout = match &cfg.timeout {
        None => DEFAULT_TIMEOUT,
        Some(s) => crate::duration::parse(s)
            .map(|d| if d.is_zero() { DEFAULT_TIMEOUT } else { d })
            .map_err(|e| invalid("timeout", e))?,
    };
    Ok(Plan {
        url,
        headers: cfg
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        timeout,
    })
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    run_resolving(cfg, env, Arc::new(http_guard::SystemResolver)).await
}

/// [`run`] with names resolved by `resolver` (tests map names to addresses without DNS).
pub(super) async fn run_resolving(
    cfg: Config,
    env: &StepEnv<'_>,
    resolver: Arc<dyn reqwest::dns::Resolve>,
) -> Result<StepOutcome, StepError> {
    let plan = plan(&cfg)?;
    let out = path_in(env, &cfg.out_path, "outPath")?;
    if out.is_dir() {
        return Err(invalid(
            "outPath",
            format!("{:?} is a directory", cfg.out_path),
        ));
    }
    if !cfg.allow_overwrite && (out.exists() || out.is_symlink()) {
        return Err(StepError::Failed(format!(
            "config.outPath: a file already exists at {:?} and allowOverwrite is not set",
            cfg.out_path
        )));
    }
    let dir = out.parent().unwrap_or(env.work_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StepError::Errored(format!("creating the directory of outPath: {e}")))?;

    let client = http_guard::client_builder(resolver)
        .timeout(plan.timeout)
        .tls_danger_accept_invalid_certs(cfg.insecure_skip_tls_verify)
        .build()
        .map_err(|e| StepError::Errored(format!("building the HTTP client: {e}")))?;
    let mut req = client.get(plan.url.clone());
    for (k, v) in &plan.headers {
        req = req.header(k, v);
    }
    let shown = format!("GET {}", redact(&plan.url));
    let network = |e: reqwest::Error, doing: &str| {
        let message = format!("{shown}: {doing}{}", without_url(&e));
        // A refused address will not become allowed by retrying.
        if http_guard::is_refusal(&message) {
            StepError::Failed(message)
        } else {
            StepError::Retryable(message)
        }
    };
    let mut resp = req.send().await.map_err(|e| network(e, ""))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(StepError::Failed(format!(
            "{shown}: HTTP request failed with status {}",
            status.as_u16()
        )));
    }
    let too_big = || {
        StepError::Failed(format!(
            "{shown}: download exceeds limit of {MAX_DOWNLOAD} bytes"
        ))
    };
    if resp.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
        return Err(too_big());
    }

    // Stream into a temporary file beside outPath (removed on any failure), then rename.
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp"))
        .tempfile_in(dir)
        .map_err(|e| StepError::Errored(format!("creating a temporary file for outPath: {e}")))?;
    let mut file = std::io::BufWriter::new(tmp.as_file());
    let mut written: u64 = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| network(e, "reading the response: "))?
    {
        written += chunk.len() as u64;
        if written > MAX_DOWNLOAD {
            return Err(too_big());
        }
        file.write_all(&chunk)
            .map_err(|e| StepError::Errored(format!("writing the download: {e}")))?;
    }
    file.flush()
        .map_err(|e| StepError::Errored(format!("writing the download: {e}")))?;
    drop(file);
    tmp.persist(&out)
        .map_err(|e| StepError::Errored(format!("moving the download to outPath: {}", e.error)))?;
    tracing::debug!(request = %shown, bytes = written, "http-download");
    Ok(StepOutcome::succeeded(Map::new()))
}

step! { pub struct HttpDownload = "http-download", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promotion::steps::env::TestEnv;
    use reqwest::dns::{Addrs, Name, Resolve, Resolving};
    use serde_json::{Value, json};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config(v: Value) -> Config {
        super::super::toolkit::parse(v).expect("config")
    }

    #[test]
    fn plans_the_request_and_names_bad_fields() {
        let p = plan(&config(json!({
            "url": "http://127.0.0.1:9/f.tgz?x=1",
            "outPath": "f.tgz",
            "queryParams": [{"name": "v", "value": 2}],
            "headers": [{"name": "Authorization", "value": "Bearer t"}],
            "timeout": "30s",
        })))
        .expect("plan");
        assert_eq!(p.url.as_str(), "http://127.0.0.1:9/f.tgz?x=1&v=2");
        assert_eq!(p.timeout, Duration::from_secs(30));
        let p = plan(&config(json!({"url": "https://x", "outPath": "f"}))).expect("plan");
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        for (cfg, field) in [
            (
                json!({"url": "file:///etc/passwd", "outPath": "f"}),
                "config.url",
            ),
            (json!({"url": "ftp://x/y", "outPath": "f"}), "config.url"),
            (
                json!({"url": "http://169.254.169.254/", "outPath": "f"}),
                "config.url",
            ),
            (
                json!({"url": "http://x", "outPath": "f", "timeout": "soon"}),
                "config.timeout",
            ),
            (
                json!({"url": "http://x", "outPath": "f", "headers": [{"name": "a b", "value": "v"}]}),
                "config.headers[0].name",
            ),
        ] {
            let e = plan(&config(cfg.clone())).expect_err("invalid").to_string();
            assert!(e.contains(field), "{cfg}: {e}");
        }
        let e = super::super::toolkit::parse::<Config>(json!({"url": "http://x"}))
            .expect_err("no outPath")
            .to_string();
        assert!(e.contains("outPath"), "{e}");
    }

    /// Maps every name to `fe80::1`: link-local, and (without a zone) impossible to connect
    /// to, so a broken guard fails here locally instead of sending anything.
    struct LinkLocal;

    impl Resolve for LinkLocal {
        fn resolve(&self, _: Name) -> Resolving {
            let addr: SocketAddr = "[fe80::1]:80".parse().expect("addr");
            Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as Addrs) })
        }
    }

    /// A loopback server counting connections, answering each with a redirect to `location`.
    async fn redirecting(location: &'static str) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn metadata_addresses_are_refused_after_resolution_and_on_redirect() {
        let t = TestEnv::new();
        let env = t.env("test");
        let refused = |r: Result<StepOutcome, StepError>| match r {
            Err(StepError::Failed(m)) => http_guard::is_refusal(&m),
            _ => false,
        };
        // A name resolving to a link-local address: never connected to.
        let cfg = config(json!({"url": "http://metadata.test/latest/", "outPath": "a"}));
        let r = run_resolving(cfg, &env, Arc::new(LinkLocal)).await;
        assert!(refused(r), "a name resolving to fe80::1 must be refused");
        // A redirect from loopback to a link-local literal: refused before following.
        let (port, hits) = redirecting("http://[fe80::1]/latest/meta-data/").await;
        let cfg = config(json!({"url": format!("http://127.0.0.1:{port}/x"), "outPath": "b"}));
        let r = run_resolving(cfg, &env, Arc::new(LinkLocal)).await;
        assert!(refused(r), "a redirect to fe80::1 must be refused");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        for f in ["a", "b"] {
            assert!(!env.work_dir.join(f).exists(), "{f} must not be written");
        }
    }
}
