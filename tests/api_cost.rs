//! What the controller costs the API server when nothing happens: a settled project (a
//! Warehouse on a git repository, its Freight auto-promoted through two Stages) gets no status writes over
//! a minute, counted both by the controller's own request counter (`haul_kube_requests_total`
//! on /metrics) and by kube-apiserver's `apiserver_request_total` (the referee). And the
//! controller's log, written to a file, carries no terminal colour codes.

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

fn apiserver_writes() -> BTreeMap<String, f64> {
    let out = kubectl(&["get", "--raw", "/metrics"]).success("apiserver /metrics");
    status_writes(&by_kind(&out.stdout, "apiserver_request_total"))
}

#[test]
fn a_settled_project_costs_no_status_writes_and_logs_carry_no_colour_codes() {
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

    let (ours, referee) = (controller_writes(&c), apiserver_writes());
    std::thread::sleep(Duration::from_secs(60));
    let (ours_after, referee_after) = (controller_writes(&c), apiserver_writes());
    assert_eq!(
        ours, ours_after,
        "the controller wrote status while the project was idle"
    );
    assert_eq!(
        referee, referee_after,
        "kube-apiserver saw status writes while the project was idle"
    );

    let log = c.log_text();
    assert!(!log.is_empty(), "the controller logged something");
    assert!(
        !log.contains('\u{1b}'),
        "the log written to a file has terminal escape codes: {}",
        &log[..log.len().min(500)]
    );
}
