//! Real Argo Rollouts for the verification tests: its analysis controller, started once per
//! test binary on the test control plane (built once per machine from the Go module proxy by
//! `hack/rollouts-binary.sh`, or taken from `HAUL_ROLLOUTS_DIR`), and an HTTP server on
//! 127.0.0.1 that the `web` metric provider of the tests' AnalysisTemplates asks.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use haul_testenv::Rollouts;

static ROLLOUTS: OnceLock<Rollouts> = OnceLock::new();

/// The Rollouts controller of this test binary, watching every namespace of [`super::cp`].
pub fn rollouts() -> &'static Rollouts {
    ROLLOUTS.get_or_init(|| {
        let r = Rollouts::start(super::cp()).unwrap_or_else(|e| panic!("starting rollouts: {e}"));
        eprintln!(
            "rollouts-controller ready in {:?}; log: {}",
            r.started_in(),
            r.log().display()
        );
        r
    })
}

/// What the metric server answers on `/<outcome>`: `{"status": …}` with `ok`, `fail` or
/// `unsure` (neither condition holds: Rollouts calls the measurement Inconclusive); on
/// `/switch` whatever [`MetricServer::set_switch`] last set.
pub struct MetricServer {
    port: u16,
    switch: Arc<Mutex<String>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl MetricServer {
    /// Starts the server on a free loopback port; its thread lives as long as the test binary.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the metric server");
        let port = listener.local_addr().expect("addr").port();
        let switch = Arc::new(Mutex::new("unsure".to_string()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (sw, reqs) = (switch.clone(), requests.clone());
        std::thread::spawn(move || {
            // Bounded: far more requests than a test binary's runs make.
            for stream in listener.incoming().flatten().take(10_000) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The request line is all the server needs; the headers are read and dropped.
                let mut header = String::new();
                for _ in 0..100 {
                    header.clear();
                    match reader.read_line(&mut header) {
                        Ok(n) if n > 2 => {}
                        _ => break,
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                if let Ok(mut r) = reqs.lock() {
                    r.push(target.clone());
                }
                let path = target.split('?').next().unwrap_or_default();
                let status = match path.trim_start_matches('/') {
                    "switch" => sw.lock().map(|s| s.clone()).unwrap_or_default(),
                    other => other.to_string(),
                };
                let body = serde_json::json!({ "status": status }).to_string();
                let mut out = &stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            port,
            switch,
            requests,
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What `/switch` answers from now on.
    pub fn set_switch(&self, status: &str) {
        *self.switch.lock().expect("switch lock") = status.to_string();
    }

    /// The request targets (path and query) received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

/// An AnalysisTemplate `name` in `ns` with one `web` metric asking `server` for
/// `/{{args.outcome}}?service={{args.service}}`; `extra` is added to the metric (e.g.
/// `initialDelay: 10m`), indented like its other fields.
pub fn web_template(ns: &str, name: &str, server: &MetricServer, extra: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}, namespace: {ns}}}
spec:
  args: [{{name: service}}, {{name: outcome, value: ok}}]
  metrics:
  - name: web
    count: 1
    successCondition: result.status == "ok"
    failureCondition: result.status == "fail"
{extra}    provider:
      web:
        url: "{url}/{{{{args.outcome}}}}?service={{{{args.service}}}}"
        jsonPath: "{{$}}"
"#,
        url = server.url()
    )
}
