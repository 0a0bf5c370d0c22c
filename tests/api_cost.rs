//! What the controller costs the API server when nothing happens: a settled project (a
//! Warehouse on a git repository, its Freight auto-promoted through two Stages) gets no status
//! writes over a minute, and neither does a Warehouse whose registry keeps failing the same way
//! (its retries are in the log, its status and Event are written once), counted both by the
//! controller's own request counter (`haul_kube_requests_total` on /metrics) and by
//! kube-apiserver's `apiserver_request_total` (the referee). And the controller's log, written
//! to a file, carries no terminal colour codes.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::fixtures::{Stage, git_credentials_secret};
use support::gitops::seed_dev_overlay;
use support::{ControllerProcess, kubectl, kubectl_stdin, namespace, wait_for};

/// Status writes: verb and resource as both counters name them.
const WRITES: [&str; 3] = ["APPLY", "PATCH", "PUT"];
const STATUSES: [&str; 4] = [
    "stages/status",
    "warehouses/status",
    "freights/status",
    "promotions/status",
];

fn apply(yaml: &str) {
    kubectl_stdin(&["apply", "-f", "-"], yaml).success("kubectl apply");
}

/// `{verb="…",resource="…"}`-style labels of one exposition line.
fn label(labels: &str, name: &str) -> String {
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_default()
}

/// Sums of a counter by "VERB resource[/subresource]" from Prometheus text.
fn by_kind(text: &str, metric: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&format!("{metric}{{")) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let mut resource = label(labels, "resource");
        let sub = label(labels, "subresource");
        if !sub.is_empty() {
            resource = format!("{resource}/{sub}");
        }
        *out.entry(format!("{} {resource}", label(labels, "verb")))
            .or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

fn status_writes(counts: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    counts
        .iter()
        .filter(|(k, _)| {
            let (verb, resource) = k.split_once(' ').unwrap_or_default();
            WRITES.contains(&verb) && STATUSES.contains(&resource)
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn controller_writes(c: &ControllerProcess) -> BTreeMap<String, f64> {
    let (_, body) = c.http_get("/metrics").expect("controller /metrics");
    status_writes(&by_kind(&body, "haul_kube_requests_total"))
}

/// The controller's Event writes (created or aggregated into a series).
fn controller_event_writes(c: &ControllerProcess) -> f64 {
    let (_, body) = c.http_get("/metrics").expect("controller /metrics");
    by_kind(&body, "haul_kube_requests_total")
        .iter()
        .filter(|(k, _)| {
            let (verb, resource) = k.split_once(' ').unwrap_or_default();
            resource == "events" && ["POST", "PATCH", "PUT", "APPLY"].contains(&verb)
        })
        .map(|(_, v)| v)
        .sum()
}

/// A registry on 127.0.0.1 that answers every request 404 `NAME_UNKNOWN` (discovery fails the
/// same way every time); returns its port and how many connections it has served.
fn failing_registry() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            // Bounded: the request head, at most 64 KiB.
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65_536 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
            let _ = write!(
                s,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, served)
}

fn apiserver_writes() -> BTreeMap<String, f64> {
    let out = kubectl(&["get", "--raw", "/metrics"]).success("apiserver /metrics");
    status_writes(&by_kind(&out.stdout, "apiserver_request_total"))
}

#[test]
fn settled_projects_and_a_warehouse_failing_alike_cost_no_writes_and_logs_have_no_colour() {
    let c = ControllerProcess::start(&support::cp().dir().join("work-api-cost"));
    let ns = namespace("idle");
    // A Warehouse whose discovery succeeds (a failing one rightly reports each retry).
    let (repo, _) = seed_dev_overlay(&format!("idle-{ns}"));
    apply(&git_credentials_secret(&ns, "git", &repo));
    apply(&format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: w, namespace: {ns}}}
spec:
  interval: 1h
  subscriptions:
  - git: {{repoURL: "{repo}", branch: gitops}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {{name: {ns}, namespace: {ns}}}
spec:
  promotionPolicies:
  - stageSelector: {{name: dev}}
    autoPromotionEnabled: true
  - stageSelector: {{name: uat}}
    autoPromotionEnabled: true
"#
    ));
    // A Warehouse whose registry fails the same way on every retry (the backoff is capped at
    // its interval, so it retries a few times within the minute below).
    let (port, registry_requests) = failing_registry();
    let failing_ns = namespace("failing");
    apply(&format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: broken, namespace: {failing_ns}}}
spec:
  interval: 20s
  subscriptions:
  - image: {{repoURL: "127.0.0.1:{port}/none/app"}}
"#
    ));
    for (name, sources) in [("dev", "{direct: true}"), ("uat", "{stages: [dev]}")] {
        let template = format!(
            "      steps:\n      - uses: compose-output\n        as: out\n        config:\n          stage: {name}\n"
        );
        apply(
            &Stage {
                ns: &ns,
                name,
                warehouse: "w",
                sources,
                template: &template,
            }
            .yaml(),
        );
    }
    // Settled: the discovered Freight auto-promoted to both Stages and verified in both.
    wait_for(180, "the Freight to be verified in dev and uat", || {
        let out = kubectl(&["get", "freights", "-n", &ns, "-o", "json"]).success("list");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v["items"].as_array()?.iter().find_map(|f| {
            let verified = &f["status"]["verifiedIn"];
            (verified.get("dev").is_some() && verified.get("uat").is_some()).then_some(())
        })
    });
    // Let what follows a verification (Events, the last status writes) finish: until the
    // controller's write count has not moved for 15 s.
    let settle_until = Instant::now() + Duration::from_secs(120);
    let mut last = controller_writes(&c);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(15) {
        assert!(
            Instant::now() < settle_until,
            "status writes never stopped: {last:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
        let now = controller_writes(&c);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    assert!(
        !last.is_empty(),
        "the counter saw the writes that settled the project"
    );

    let failed = kubectl(&[
        "get",
        "warehouse",
        "broken",
        "-n",
        &failing_ns,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Healthy\")].reason}",
    ])
    .success("the failing Warehouse");
    assert_eq!(failed.stdout, "DiscoveryFailed");

    let (ours, referee) = (controller_writes(&c), apiserver_writes());
    let (events, asked) = (
        controller_event_writes(&c),
        registry_requests.load(std::sync::atomic::Ordering::SeqCst),
    );
    std::thread::sleep(Duration::from_secs(60));
    let (ours_after, referee_after) = (controller_writes(&c), apiserver_writes());
    assert!(
        registry_requests.load(std::sync::atomic::Ordering::SeqCst) > asked,
        "the failing Warehouse was retried within the minute"
    );
    assert_eq!(
        ours, ours_after,
        "the controller wrote status while the project was idle and the failing Warehouse retried"
    );
    assert_eq!(
        referee, referee_after,
        "kube-apiserver saw status writes while the project was idle"
    );
    assert_eq!(
        events,
        controller_event_writes(&c),
        "a retry that fails the same way publishes no Event"
    );

    let log = c.log_text();
    assert!(!log.is_empty(), "the controller logged something");
    assert!(
        !log.contains('\u{1b}'),
        "the log written to a file has terminal escape codes: {}",
        &log[..log.len().min(500)]
    );
}
