//! A loopback HTTP server that plays one provider's documented API for a test: it expects a
//! script of exchanges in order, checks each request's method, path, query, auth header and
//! JSON body against the script, and answers with the scripted (documented) response body.
//! Anything unexpected is answered 599 and recorded, and [`MockApi::finish`] fails the test.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

/// One expected request and its answer.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub method: &'static str,
    /// Path and query; query parameters are compared as a set.
    pub path: String,
    /// The JSON body the request must have (exactly), if any.
    pub body: Option<Value>,
    pub status: u16,
    pub reply: Value,
}

pub(crate) fn exchange(
    method: &'static str,
    path: impl Into<String>,
    status: u16,
    reply: Value,
) -> Exchange {
    Exchange {
        method,
        path: path.into(),
        body: None,
        status,
        reply,
    }
}

impl Exchange {
    pub(crate) fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Exchange>,
    problems: Vec<String>,
    served: usize,
}

pub(crate) struct MockApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

fn split(path_and_query: &str) -> (String, BTreeSet<String>) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let params = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (path.to_string(), params)
}

impl MockApi {
    /// Serves `script`, requiring header `auth.0` to be `auth.1` on every request.
    pub(crate) async fn start(auth: (&'static str, String), script: Vec<Exchange>) -> Self {
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..Default::default()
        }));
        let handler_state = state.clone();
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = handler_state.clone();
            let auth = auth.clone();
            async move {
                let mut s = state.lock().expect("mock state");
                let got = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let Some(want) = s.script.pop_front() else {
                    s.problems
                        .push(format!("unexpected request {method} {got}"));
                    return (StatusCode::from_u16(599).expect("599"), String::new());
                };
                let mut wrong = Vec::new();
                if method.as_str() != want.method {
                    wrong.push(format!("method {method}, want {}", want.method));
                }
                if split(&got) != split(&want.path) {
                    wrong.push(format!("path {got}, want {}", want.path));
                }
                let sent = headers.get(auth.0).and_then(|v| v.to_str().ok());
                if sent != Some(auth.1.as_str()) {
                    wrong.push(format!("header {} is {sent:?}", auth.0));
                }
                if let Some(want_body) = &want.body {
                    let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if &sent != want_body {
                        wrong.push(format!("body {sent}, want {want_body}"));
                    }
                }
                s.served += 1;
                if !wrong.is_empty() {
                    let served = s.served;
                    s.problems
                        .push(format!("request {served}: {}", wrong.join("; ")));
                    return (StatusCode::from_u16(599).expect("599"), String::new());
                }
                let status = StatusCode::from_u16(want.status).expect("status");
                let text = if want.reply.is_null() {
                    String::new()
                } else {
                    want.reply.to_string()
                };
                (status, text)
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, state, task }
    }

    /// Fails the test if a request was wrong or a scripted one was never made.
    pub(crate) fn finish(self) {
        self.task.abort();
        let s = self.state.lock().expect("mock state");
        assert!(s.problems.is_empty(), "API mock: {:#?}", s.problems);
        assert!(
            s.script.is_empty(),
            "API mock: requests never made: {:#?}",
            s.script
                .iter()
                .map(|e| format!("{} {}", e.method, e.path))
                .collect::<Vec<_>>()
        );
    }
}
