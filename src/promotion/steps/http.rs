//! http: one HTTP request per attempt (webhooks, ChatOps, a deployment gate), judged by
//! `successExpression` / `failureExpression` over `response.status`, `response.headers` and
//! `response.body`, with outputs read from the response by expressions (Kargo's `http` step).
//! The request, the expression environment and the verdict are pure; only `run` does IO.
//!
//! With `proxy`, the connection goes to the proxy: its address passes the same link-local
//! check as a target's (literal, after resolution), and the target is then the proxy's to
//! resolve and check (haul never resolves it).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in};
use crate::api::StepStatus;
use crate::expressions::{self, Env, ErrorKind, NoFunctions};

/// Kargo's limits: 10 s per request, 2 MiB of response body.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 2 << 20;
/// How long to wait before asking again while neither criterion is met.
const DEFAULT_POLL: Duration = Duration::from_secs(30);
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    method: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    query_params: Vec<NameValue>,
    /// The request body: a string as it is, any other value as its JSON text.
    #[serde(default, deserialize_with = "body")]
    #[schemars(with = "Option<Value>")]
    body: Option<String>,
    /// A file in the work directory whose contents are the request body (at most 2 MiB);
    /// not together with `body`.
    #[serde(default)]
    body_from_file: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    poll_interval: Option<String>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
    /// An http(s) proxy to send the request through (else the environment's proxy, if any).
    #[serde(default)]
    proxy: Option<String>,
    /// How to parse the response body, overriding its Content-Type: `application/json`,
    /// `application/yaml` or `text/plain`.
    #[serde(default)]
    response_content_type: Option<String>,
    #[serde(default)]
    success_expression: Option<String>,
    #[serde(default)]
    failure_expression: Option<String>,
    /// When the failure criteria are met: a message read from the response (a string) for
    /// the step's error.
    #[serde(default)]
    error_expression: Option<String>,
    #[serde(default)]
    outputs: Vec<Output>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameValue {
    pub(super) name: String,
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    pub(super) value: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Output {
    name: String,
    from_expression: String,
}

/// The body is text; a map or list (what a lone `${{ }}` renders to after Kargo's coercion,
/// e.g. `${{ toJSON(x) }}`) is sent as its JSON instead of being refused.
fn body<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// A validated request.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub proxy: Option<reqwest::Url>,
    pub timeout: Duration,
    pub poll: Duration,
}

/// The media types `responseContentType` may name (Kargo's schema).
const RESPONSE_TYPES: [&str; 3] = ["application/json", "application/yaml", "text/plain"];

fn invalid(field: &str, why: impl std::fmt::Display) -> StepError {
    StepError::Failed(format!("invalid config: config.{field}: {why}"))
}

/// Checks the config and builds the request, touching nothing.
pub fn plan(cfg: &Config) -> Result<Plan, StepError> {
    let method = cfg.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(invalid(
            "method",
            format!("{method:?} is not one of {}", METHODS.join(", ")),
        ));
    }
    let mut url = reqwest::Url::parse(&cfg.url).map_err(|e| invalid("url", e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("url", "only http and https URLs are supported"));
    }
    if !cfg.query_params.is_empty() {
        let mut q = url.query_pairs_mut();
        for p in &cfg.query_params {
            q.append_pair(&p.name, &p.value);
        }
    }
    for (i, h) in cfg.headers.iter().enumerate() {
        reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| invalid(&format!("headers[{i}].name"), e))?;
        reqwest::header::HeaderValue::from_str(&h.value)
            .map_err(|e| invalid(&format!("headers[{i}].value"), e))?;
    }
    let duration = |field: &str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => crate::duration::parse(s)
            .map(|d| if d.is_zero() { default } else { d })
            .map_err(|e| invalid(field, e)),
    };
    for (i, o) in cfg.outputs.iter().enumerate() {
        if o.name.is_empty() {
            return Err(invalid(&format!("outputs[{i}].name"), "must not be empty"));
        }
    }
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if set(&cfg.body) && set(&cfg.body_from_file) {
        return Err(invalid(
            "bodyFromFile",
            "set body or bodyFromFile, not both",
        ));
    }
    if let Some(t) = cfg.response_content_type.as_deref()
        && !RESPONSE_TYPES.contains(&t)
    {
        return Err(invalid(
            "responseContentType",
            format!("{t:?} is not one of {}", RESPONSE_TYPES.join(", ")),
        ));
    }
    let proxy = match cfg.proxy.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => {
            let u = reqwest::Url::parse(p).map_err(|e| invalid("proxy", e))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(invalid(
                    "proxy",
                    "only http and https proxies are supported",
                ));
            }
            Some(u)
        }
    };
    Ok(Plan {
        method: reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| invalid("method", e))?,
        url,
        headers: cfg
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        body: cfg
            .body
            .clone()
            .filter(|b| !b.is_empty())
            .map(String::into_bytes),
        proxy,
        timeout: duration("timeout", &cfg.timeout, DEFAULT_TIMEOUT)?,
        poll: duration("pollInterval", &cfg.poll_interval, DEFAULT_POLL)?,
    })
}

/// A header name as Go writes it (`content-type` → `Content-Type`), so `response.headers`
/// reads as it does in Kargo.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// The `response` variable: `status`, `headers` (name → list of values) and `body`, parsed
/// as [`parse_body`] says.
#[cfg(test)]
pub fn response_value(status: u16, headers: &[(String, String)], body: &[u8]) -> Value {
    response_value_as(status, headers, body, None)
        .unwrap_or_else(|_| response_value_as(status, headers, b"", None).unwrap_or(Value::Null))
}

/// [`response_value`] with the body parsed as `content_type` (`responseContentType`) when
/// given; an error when the body does not parse as a type it must be.
pub fn response_value_as(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Value, String> {
    let mut hs: Map<String, Value> = Map::new();
    for (k, v) in headers {
        let entry = hs
            .entry(canonical(k))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.push(Value::String(v.clone()));
        }
    }
    let content_type = match content_type.filter(|t| !t.is_empty()) {
        Some(t) => t.to_string(),
        None => media_type(
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or("", |(_, v)| v.as_str()),
        ),
    };
    let parsed = parse_body(body, &content_type)?;
    Ok(serde_json::json!({"status": status, "headers": hs, "body": parsed}))
}

/// A Content-Type's media type, lowercased, without parameters (Go's mime.ParseMediaType).
fn media_type(header: &str) -> String {
    header
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The body as Kargo reads it by media type: YAML types as YAML, `text/plain` as a string,
/// anything else as JSON. Only a body declared `application/json` must be JSON; another
/// that is not JSON is left out (an empty map), as is an empty body.
pub fn parse_body(body: &[u8], content_type: &str) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let is = |t: &str| content_type.eq_ignore_ascii_case(t);
    if is("application/yaml") || is("text/yaml") || is("application/x-yaml") {
        let text = std::str::from_utf8(body).map_err(|e| format!("parsing YAML response: {e}"))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| format!("parsing YAML response: {e}"));
    }
    if is("text/plain") {
        return Ok(Value::String(String::from_utf8_lossy(body).into_owned()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) if content_type == "application/json" => Err(format!("parsing JSON response: {e}")),
        Err(_) => Ok(Value::Object(Map::new())),
    }
}

/// What the response means.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Succeeded,
    /// The failure criteria were met: the step fails for good.
    Failed(String),
    /// No criteria and a non-2xx status: counts toward `retry.errorThreshold`.
    Retry(String),
    /// Criteria given and neither met yet: ask again after `pollInterval`.
    Pending,
}

fn criterion(expr: &Option<String>, env: &Env, field: &str) -> Result<Option<bool>, StepError> {
    let Some(e) = expr.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Ok(None);
    };
    match expressions::evaluate_expression(e, env, &NoFunctions) {
        Ok(Value::Bool(b)) => Ok(Some(b)),
        Ok(other) => Err(StepError::Failed(format!(
            "config.{field}: {e}: must evaluate to a bool, got {other}"
        ))),
        Err(err) => Err(expression_error(err, field)),
    }
}

/// A syntax error is the config's fault; an evaluation error may depend on the response
/// (a key not there yet), so it is retried as Kargo does.
fn expression_error(err: expressions::ExpressionError, field: &str) -> StepError {
    let syntax = err.kind == ErrorKind::Syntax;
    let msg = err.under(&format!("config.{field}")).to_string();
    if syntax {
        StepError::Failed(msg)
    } else {
        StepError::Retryable(msg)
    }
}

/// Judges the response (Kargo's order: failure first, then success, then the status code).
pub fn verdict(cfg: &Config, response: &Value) -> Result<Verdict, StepError> {
    let env = Env::new().with("response", response.clone());
    let failed = criterion(&cfg.failure_expression, &env, "failureExpression")?;
    let succeeded = criterion(&cfg.success_expression, &env, "successExpression")?;
    let status = response.get("status").and_then(Value::as_u64).unwrap_or(0);
    Ok(match (succeeded, failed) {
        (_, Some(true)) => Verdict::Failed(match error_message(cfg, &env)? {
            Some(m) => format!("HTTP ({status}) response met the failure criteria: {m:?}"),
            None => format!("HTTP ({status}) response met the failure criteria"),
        }),
        (Some(true), _) => Verdict::Succeeded,
        (None, None) if (200..300).contains(&status) => Verdict::Succeeded,
        (None, None) => Verdict::Retry(format!(
            "HTTP ({status}) response is not a success and no successExpression says otherwise"
        )),
        _ => Verdict::Pending,
    })
}

/// The message `errorExpression` reads from the response, as Kargo: a syntax error is the
/// config's fault and ends the step Errored; an evaluation error (the response is not shaped
/// as expected) or a result that is not a string just leaves the message out.
fn error_message(cfg: &Config, env: &Env) -> Result<Option<String>, StepError> {
    let Some(e) = cfg
        .error_expression
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    else {
        return Ok(None);
    };
    match expressions::evaluate_expression(e, env, &NoFunctions) {
        Ok(Value::String(m)) if !m.is_empty() => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(err) if err.kind == ErrorKind::Syntax => Err(StepError::Errored(
            err.under("config.errorExpression").to_string(),
        )),
        Err(err) => {
            tracing::debug!(error = %err, "errorExpression did not evaluate; no message");
            Ok(None)
        }
    }
}

/// The step's outputs, read from the response.
pub fn outputs(cfg: &Config, response: &Value) -> Result<Map<String, Value>, StepError> {
    let env = Env::new().with("response", response.clone());
    let mut out = Map::new();
    for (i, o) in cfg.outputs.iter().enumerate() {
        let v = expressions::evaluate_expression(&o.from_expression, &env, &NoFunctions)
            .map_err(|e| expression_error(e, &format!("outputs[{i}].fromExpression")))?;
        out.insert(o.name.clone(), v);
    }
    Ok(out)
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let mut plan = plan(&cfg)?;
    if let Some(file) = cfg.body_from_file.as_deref().filter(|f| !f.is_empty()) {
        plan.body = Some(body_from_file(env, file)?);
    }
    send(
        cfg,
        plan,
        std::sync::Arc::new(super::http_guard::SystemResolver),
    )
    .await
}

/// The contents of `bodyFromFile`, a file inside the work directory, at most 2 MiB (Kargo's
/// limit). Sent as they are, so they need not be text.
fn body_from_file(env: &StepEnv<'_>, file: &str) -> Result<Vec<u8>, StepError> {
    let path = path_in(env, file, "bodyFromFile")?;
    let read = |e: std::io::Error| StepError::Failed(format!("config.bodyFromFile: {file}: {e}"));
    let len = std::fs::metadata(&path).map_err(read)?.len();
    if len > MAX_BODY as u64 {
        return Err(StepError::Failed(format!(
            "config.bodyFromFile: {file} is larger than {MAX_BODY} bytes"
        )));
    }
    std::fs::read(&path).map_err(read)
}

/// [`run`] with names resolved by `resolver` (tests map names to addresses without DNS).
#[cfg(test)]
pub(super) async fn run_resolving(
    cfg: Config,
    resolver: std::sync::Arc<dyn reqwest::dns::Resolve>,
) -> Result<StepOutcome, StepError> {
    let plan = plan(&cfg)?;
    send(cfg, plan, resolver).await
}

async fn send(
    cfg: Config,
    plan: Plan,
    resolver: std::sync::Arc<dyn reqwest::dns::Resolve>,
) -> Result<StepOutcome, StepError> {
    super::http_guard::check_url(&plan.url)
        .map_err(|e| StepError::Failed(format!("config.url: {e}")))?;
    let mut builder = super::http_guard::client_builder(resolver)
        .timeout(plan.timeout)
        .tls_danger_accept_invalid_certs(cfg.insecure_skip_tls_verify);
    if let Some(p) = &plan.proxy {
        // The connection goes to the proxy, so the proxy's address is what is checked here
        // (literally now, after resolution by the guarded resolver); the target's address is
        // resolved, and must be checked, by the proxy.
        super::http_guard::check_url(p)
            .map_err(|e| StepError::Failed(format!("config.proxy: {e}")))?;
        builder = builder.proxy(reqwest::Proxy::all(p.clone()).map_err(|e| invalid("proxy", e))?);
    }
    let client = builder
        .build()
        .map_err(|e| StepError::Errored(format!("building the HTTP client: {e}")))?;
    let mut req = client.request(plan.method.clone(), plan.url.clone());
    for (k, v) in &plan.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &plan.body {
        req = req.body(b.clone());
    }
    let shown = format!("{} {}", plan.method, redact(&plan.url));
    let mut resp = req.send().await.map_err(|e| {
        let message = format!("{shown}: {}", without_url(&e));
        // A refused address will not become allowed by retrying.
        if super::http_guard::is_refusal(&message) {
            StepError::Failed(message)
        } else {
            StepError::Retryable(message)
        }
    })?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(StepError::Errored(format!(
            "{shown}: the response body is larger than {MAX_BODY} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        StepError::Retryable(format!(
            "{shown}: reading the response: {}",
            without_url(&e)
        ))
    })? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(StepError::Errored(format!(
                "{shown}: the response body is larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    tracing::debug!(request = %shown, status, body_bytes = body.len(), "http step response");
    let response = response_value_as(
        status,
        &headers,
        &body,
        cfg.response_content_type.as_deref(),
    )
    .map_err(|e| StepError::Retryable(format!("{shown}: {e}")))?;
    match verdict(&cfg, &response)? {
        Verdict::Succeeded => Ok(StepOutcome::succeeded(outputs(&cfg, &response)?)),
        Verdict::Failed(m) => Err(StepError::Failed(format!("{shown}: {m}"))),
        Verdict::Retry(m) => Err(StepError::Retryable(format!("{shown}: {m}"))),
        Verdict::Pending => Ok(StepOutcome {
            status: StepStatus::Running,
            message: Some(format!(
                "{shown}: HTTP ({status}); waiting for the success or failure criteria"
            )),
            retry_after: Some(plan.poll),
            ..StepOutcome::succeeded(Map::new())
        }),
    }
}

/// The URL without its query (which may carry a token) or userinfo, for messages.
pub(super) fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// reqwest's error text without the URL it embeds (which may carry a token).
pub(super) fn without_url(e: &reqwest::Error) -> String {
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

step! { pub struct Http = "http", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Config {
        super::super::toolkit::parse(v).expect("config")
    }

    #[test]
    fn plans_the_request_and_refuses_bad_fields() {
        let cfg = config(json!({
            "method": "post",
            "url": "http://127.0.0.1:9/hook?x=1",
            "headers": [{"name": "Authorization", "value": "Bearer t"}],
            "queryParams": [{"name": "stage", "value": "uat env"}],
            "body": {"text": "hi"},
            "timeout": "2s",
        }));
        let p = plan(&cfg).expect("plan");
        assert_eq!(p.method, reqwest::Method::POST);
        assert_eq!(p.url.as_str(), "http://127.0.0.1:9/hook?x=1&stage=uat+env");
        assert_eq!(p.body.as_deref(), Some(&b"{\"text\":\"hi\"}"[..]));
        assert_eq!(p.timeout, Duration::from_secs(2));
        assert_eq!(p.poll, DEFAULT_POLL);
        let e = plan(&config(json!({"url": "http://x", "method": "BREW"}))).expect_err("method");
        assert!(
            e.to_string().starts_with("invalid config: config.method: "),
            "{e}"
        );
        let e = plan(&config(json!({"url": "ftp://x"}))).expect_err("scheme");
        assert!(e.to_string().contains("config.url"), "{e}");
        let e = plan(&config(json!({"url": "http://x", "timeout": "soon"}))).expect_err("t");
        assert!(e.to_string().contains("config.timeout"), "{e}");
        let e = super::super::toolkit::parse::<Config>(json!({"url": "http://x", "verb": "GET"}))
            .expect_err("unknown field");
        assert!(e.to_string().contains("verb"), "{e}");
    }

    #[test]
    fn response_reads_like_kargos() {
        let r = response_value(
            201,
            &[
                ("content-type".into(), "application/json".into()),
                ("x-multi".into(), "a".into()),
                ("x-multi".into(), "b".into()),
            ],
            br#"{"state": "done", "items": [1, 2]}"#,
        );
        assert_eq!(r["status"], json!(201));
        assert_eq!(r["headers"]["X-Multi"], json!(["a", "b"]));
        assert_eq!(r["body"]["items"][1], json!(2));
        assert_eq!(response_value(200, &[], b"plain text")["body"], json!({}));
    }

    #[test]
    fn verdict_follows_kargos_order() {
        let ok = response_value(200, &[], br#"{"state": "running"}"#);
        let bad = response_value(503, &[], b"");
        let plain = config(json!({"url": "http://x"}));
        assert_eq!(verdict(&plain, &ok), Ok(Verdict::Succeeded));
        assert!(matches!(verdict(&plain, &bad), Ok(Verdict::Retry(_))));
        let polled = config(json!({
            "url": "http://x",
            "successExpression": "response.body.state == 'done'",
            "failureExpression": "response.status >= 500 || response.body.state == 'failed'",
        }));
        assert_eq!(verdict(&polled, &ok), Ok(Verdict::Pending));
        assert!(matches!(verdict(&polled, &bad), Ok(Verdict::Failed(_))));
        let done = response_value(200, &[], br#"{"state": "done"}"#);
        assert_eq!(verdict(&polled, &done), Ok(Verdict::Succeeded));
        let not_bool = config(json!({"url": "http://x", "successExpression": "response.status"}));
        let e = verdict(&not_bool, &ok).expect_err("not a bool");
        assert!(e.to_string().contains("must evaluate to a bool"), "{e}");
    }

    #[test]
    fn outputs_come_from_the_response() {
        let cfg = config(json!({
            "url": "http://x",
            "outputs": [
                {"name": "state", "fromExpression": "response.body.state"},
                {"name": "type", "fromExpression": "response.headers['Content-Type'][0]"},
            ],
        }));
        let r = response_value(
            200,
            &[("content-type".into(), "application/json".into())],
            br#"{"state": "done"}"#,
        );
        assert_eq!(
            Value::Object(outputs(&cfg, &r).expect("outputs")),
            json!({"state": "done", "type": "application/json"})
        );
    }
}
