//! Kargo's sharding: two controller processes on one API server, the default controller and
//! shard "a", each under its own Lease. Each promotes only its own Stages (by label or
//! `spec.shard`); a Promotion created without a label goes to its Stage's shard; a Stage moved
//! between shards while its Promotion runs is handed over without two Promotions running.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use support::{ControllerProcess, get_json, kubectl, kubectl_stdin, namespace, wait_for};

fn metric(c: &ControllerProcess, name: &str) -> f64 {
    let Some((200, body)) = c.http_get("/metrics") else {
        return f64::NAN;
    };
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An HTTP endpoint a promotion step polls: `{"state": "running"}` until released, then
/// `{"state": "done"}`. Records the query of every request (the Promotion's name).
struct Job {
    url: String,
    released: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Job {
    fn serve() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let released = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (released.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                // Headers up to the blank line; GET has no body.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let query = request_line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.split_once("p=").map(|(_, q)| q.to_string()))
                    .unwrap_or_default();
                if let Ok(mut v) = s.lock() {
                    v.push(query);
                }
                let body = if r.load(Ordering::SeqCst) {
                    r#"{"state": "done"}"#
                } else {
                    r#"{"state": "running"}"#
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Self {
            url,
            released,
            seen,
        }
    }

    fn requests_for(&self, promotion: &str) -> usize {
        self.seen
            .lock()
            .map(|v| v.iter().filter(|q| *q == promotion).count())
            .unwrap_or(0)
    }
}

/// Freight f1 and four Stages: `plain` (no shard), `labelled` (label a), `spec` (spec.shard a),
/// `mover` (label a, its step polls `job`).
fn objects(ns: &str, job: &str) -> String {
    let stage = |name: &str, shard: &str, steps: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: {name}\n  namespace: {ns}\n{shard}spec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n{steps}"
        )
    };
    let compose = "      - uses: compose-output\n        config: {tag: '${{ imageFrom(\"example.com/app\").Tag }}'}\n";
    let poll = format!(
        "      - uses: http\n        config:\n          url: '{job}/job?p=${{{{ ctx.promotion }}}}'\n          pollInterval: 1s\n          successExpression: response.body.state == 'done'\n"
    );
    let label_a = "  labels: {kargo.akuity.io/shard: a}\n";
    [
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f1\n  namespace: {ns}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: example.com/app, tag: '1', digest: 'sha256:1'}}\n"
        ),
        stage("plain", "", compose),
        stage("labelled", label_a, compose),
        stage("spec", "", compose).replace("spec:\n  requestedFreight", "spec:\n  shard: a\n  requestedFreight"),
        stage("mover", label_a, &poll),
    ]
    .concat()
}

/// A Promotion as a kubectl user writes it: no shard label.
fn promote(ns: &str, name: &str, stage: &str) {
    kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stage: {stage}\n  freight: f1\n"),
    )
    .success("promote");
}

fn phase(ns: &str, name: &str) -> String {
    get_json("promotion", name, ns)
        .and_then(|p| p["status"]["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn shard_label(ns: &str, name: &str) -> Option<String> {
    get_json("promotion", name, ns).and_then(|p| {
        p["metadata"]["labels"]["kargo.akuity.io/shard"]
            .as_str()
            .map(str::to_string)
    })
}

/// The controllers (their POD_NAME) that reported an outcome of Promotion `name`.
fn reporters(ns: &str, name: &str, reason: &str) -> Vec<String> {
    let out = kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]).success("events");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("events JSON");
    let mut r: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .filter_map(|e| e["reportingInstance"].as_str().map(str::to_string))
        .collect();
    r.sort();
    r.dedup();
    r
}

fn time(p: &serde_json::Value, field: &str) -> String {
    p["status"][field].as_str().unwrap_or_default().to_string()
}

#[test]
fn each_shard_promotes_its_own_stages_and_a_moved_stage_is_handed_over() {
    let ns = namespace("shard");
    let dir = support::cp().dir();
    let mut default = ControllerProcess::start_with_env(
        &dir.join("shard-default"),
        &[("POD_NAME", "haul-default")],
    );
    let mut a = ControllerProcess::start_with_env(
        &dir.join("shard-a"),
        &[("POD_NAME", "haul-shard-a"), ("SHARD_NAME", "a")],
    );
    for c in [&default, &a] {
        wait_for(60, "each shard to lead its own Lease", || {
            (metric(c, "haul_leader") == 1.0).then_some(())
        });
    }
    let holder = |lease: &str| {
        get_json("lease", lease, "default")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    assert_eq!(holder("haul-controller").as_deref(), Some("haul-default"));
    assert_eq!(
        holder("haul-controller-shard-a").as_deref(),
        Some("haul-shard-a")
    );

    let job = Job::serve();
    kubectl_stdin(&["apply", "-f", "-"], &objects(&ns, &job.url)).success("objects");

    // Promotions created without a label run on their Stage's shard, and carry its label.
    for (p, stage) in [("pp", "plain"), ("pl", "labelled"), ("ps", "spec")] {
        promote(&ns, p, stage);
    }
    for p in ["pp", "pl", "ps"] {
        wait_for(60, &format!("{p} to succeed"), || {
            (phase(&ns, p) == "Succeeded").then_some(())
        });
    }
    assert_eq!(shard_label(&ns, "pp"), None);
    assert_eq!(shard_label(&ns, "pl").as_deref(), Some("a"));
    assert_eq!(shard_label(&ns, "ps").as_deref(), Some("a"));
    assert_eq!(reporters(&ns, "pp", "PromotionSucceeded"), ["haul-default"]);
    assert_eq!(reporters(&ns, "pl", "PromotionSucceeded"), ["haul-shard-a"]);
    assert_eq!(reporters(&ns, "ps", "PromotionSucceeded"), ["haul-shard-a"]);
    assert_eq!(
        metric(&default, "haul_promotions_total{phase=\"Succeeded\"}"),
        1.0
    );
    assert_eq!(
        metric(&a, "haul_promotions_total{phase=\"Succeeded\"}"),
        2.0
    );

    // m1 runs on shard a and waits on the job; then the Stage moves to the default controller.
    promote(&ns, "m1", "mover");
    wait_for(60, "m1 to poll the job on shard a", || {
        (job.requests_for("m1") >= 1 && phase(&ns, "m1") == "Running").then_some(())
    });
    assert_eq!(shard_label(&ns, "m1").as_deref(), Some("a"));
    kubectl(&[
        "label",
        "stage",
        "mover",
        "-n",
        &ns,
        "kargo.akuity.io/shard-",
    ])
    .success("move the Stage to the default controller");
    promote(&ns, "m2", "mover");
    // While shard a still runs m1, the default controller starts nothing for the Stage.
    let polled = job.requests_for("m1");
    wait_for(60, "m1 to keep polling after the move", || {
        (job.requests_for("m1") >= polled + 3).then_some(())
    });
    assert_eq!(phase(&ns, "m1"), "Running");
    assert_eq!(shard_label(&ns, "m1").as_deref(), Some("a"));
    assert!(
        !matches!(phase(&ns, "m2").as_str(), "Running" | "Succeeded"),
        "m2 started while m1 was running on the old shard"
    );
    assert_eq!(
        job.requests_for("m2"),
        0,
        "m2 ran a step while m1 was running"
    );

    job.released.store(true, Ordering::SeqCst);
    for p in ["m1", "m2"] {
        wait_for(60, &format!("{p} to succeed"), || {
            (phase(&ns, p) == "Succeeded").then_some(())
        });
    }
    // m1 was finished by shard a and then handed over; m2 ran on the default controller,
    // after m1.
    assert_eq!(reporters(&ns, "m1", "PromotionSucceeded"), ["haul-shard-a"]);
    assert_eq!(reporters(&ns, "m2", "PromotionSucceeded"), ["haul-default"]);
    wait_for(30, "m1 to be handed over", || {
        shard_label(&ns, "m1").is_none().then_some(())
    });
    let (m1, m2) = (
        get_json("promotion", "m1", &ns).expect("m1"),
        get_json("promotion", "m2", &ns).expect("m2"),
    );
    assert!(
        time(&m2, "startedAt") >= time(&m1, "finishedAt"),
        "m2 started before m1 finished:\n{m1:#}\n{m2:#}"
    );
    let stage = get_json("stage", "mover", &ns).expect("mover");
    assert_eq!(stage["status"]["lastPromotion"]["name"], "m2", "{stage:#}");
    assert!(default.running() && a.running());

    // A Stage moved while the default controller is down: at its start it finds the Promotion
    // shard a still runs, and waits for it.
    let job2 = Job::serve();
    kubectl_stdin(
        &["apply", "-f", "-"],
        &objects(&ns, &job2.url)
            .split("---\n")
            .filter(|d| d.contains("name: mover\n"))
            .collect::<String>()
            .replace("name: mover\n", "name: mover2\n"),
    )
    .success("mover2");
    kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: m3\n  namespace: {ns}\n  labels: {{kargo.akuity.io/shard: a}}\nspec:\n  stage: mover2\n  freight: f1\n"),
    )
    .success("m3");
    wait_for(60, "m3 to poll the job on shard a", || {
        (job2.requests_for("m3") >= 1 && phase(&ns, "m3") == "Running").then_some(())
    });
    default.kill();
    kubectl(&[
        "label",
        "stage",
        "mover2",
        "-n",
        &ns,
        "kargo.akuity.io/shard-",
    ])
    .success("move mover2 to the default controller");
    promote(&ns, "m4", "mover2");
    let default = ControllerProcess::start_with_env(
        &dir.join("shard-default-2"),
        &[("POD_NAME", "haul-default-2")],
    );
    wait_for(60, "the restarted default controller to lead", || {
        (metric(&default, "haul_leader") == 1.0).then_some(())
    });
    let polled = job2.requests_for("m3");
    wait_for(60, "m3 to keep polling after the restart", || {
        (job2.requests_for("m3") >= polled + 3).then_some(())
    });
    assert!(
        !matches!(phase(&ns, "m4").as_str(), "Running" | "Succeeded"),
        "m4 started while m3 was running on the old shard"
    );
    assert_eq!(
        job2.requests_for("m4"),
        0,
        "m4 ran a step while m3 was running"
    );
    job2.released.store(true, Ordering::SeqCst);
    for p in ["m3", "m4"] {
        wait_for(60, &format!("{p} to succeed"), || {
            (phase(&ns, p) == "Succeeded").then_some(())
        });
    }
    assert_eq!(reporters(&ns, "m3", "PromotionSucceeded"), ["haul-shard-a"]);
    assert_eq!(
        reporters(&ns, "m4", "PromotionSucceeded"),
        ["haul-default-2"]
    );
    let (m3, m4) = (
        get_json("promotion", "m3", &ns).expect("m3"),
        get_json("promotion", "m4", &ns).expect("m4"),
    );
    assert!(
        time(&m4, "startedAt") >= time(&m3, "finishedAt"),
        "m4 started before m3 finished:\n{m3:#}\n{m4:#}"
    );
}

/// Freight f1 and Stage `mover` of shard `shard`, whose step polls `job`.
fn mover(ns: &str, shard: &str, job: &str) -> String {
    objects(ns, job)
        .split("---\n")
        .filter(|d| d.contains("kind: Freight") || d.contains("name: mover\n"))
        .map(|d| {
            d.replace(
                "kargo.akuity.io/shard: a}",
                &format!("kargo.akuity.io/shard: {shard}}}"),
            )
        })
        .map(|d| format!("---\n{d}"))
        .collect()
}

/// A Promotion labelled for `shard`, as Kargo's webhook labels it.
fn promote_on(ns: &str, name: &str, stage: &str, shard: &str) {
    kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{kargo.akuity.io/shard: {shard}}}\nspec:\n  stage: {stage}\n  freight: f1\n"),
    )
    .success("promote");
}

/// Shards "b" and "c" (not the default: the other test's default controller shares the API
/// server). Shard b's controller dies while running m1; the Stage moves to c, which takes m1
/// over once b's Lease has expired, finishes it, then runs m2: each Promotion succeeds once,
/// one after the other.
#[test]
fn a_stage_moved_from_a_gone_shard_is_taken_over_once_its_lease_expired() {
    let ns = namespace("shard-gone");
    let dir = support::cp().dir();
    let mut b = ControllerProcess::start_with_env(
        &dir.join("shard-b"),
        &[("POD_NAME", "haul-shard-b"), ("SHARD_NAME", "b")],
    );
    let mut c = ControllerProcess::start_with_env(
        &dir.join("shard-c"),
        &[("POD_NAME", "haul-shard-c"), ("SHARD_NAME", "c")],
    );
    for ctl in [&b, &c] {
        wait_for(60, "each shard to lead its own Lease", || {
            (metric(ctl, "haul_leader") == 1.0).then_some(())
        });
    }
    let job = Job::serve();
    kubectl_stdin(&["apply", "-f", "-"], &mover(&ns, "b", &job.url)).success("objects");
    promote_on(&ns, "m1", "mover", "b");
    wait_for(60, "m1 to poll the job on shard b", || {
        (job.requests_for("m1") >= 1 && phase(&ns, "m1") == "Running").then_some(())
    });

    // Shard b crashes (its Lease is neither renewed nor released), then the Stage moves to c.
    b.kill();
    let polled = job.requests_for("m1");
    kubectl(&[
        "label",
        "stage",
        "mover",
        "-n",
        &ns,
        "kargo.akuity.io/shard=c",
        "--overwrite",
    ])
    .success("move the Stage to shard c");
    promote_on(&ns, "m2", "mover", "c");

    // Shard c takes m1 over (relabels it) and resumes it; m2 waits behind it.
    wait_for(120, "shard c to take m1 over", || {
        (shard_label(&ns, "m1").as_deref() == Some("c")).then_some(())
    });
    let lease = get_json("lease", "haul-controller-shard-b", "default").expect("b's Lease");
    assert!(
        lease["spec"]["holderIdentity"].as_str().is_none(),
        "shard c released b's Lease after the takeover: {lease:#}"
    );
    wait_for(60, "m1 to poll the job again, from shard c", || {
        (job.requests_for("m1") > polled + 1).then_some(())
    });
    assert_eq!(phase(&ns, "m1"), "Running");
    assert!(
        !matches!(phase(&ns, "m2").as_str(), "Running" | "Succeeded"),
        "m2 started while m1 was unfinished"
    );
    assert_eq!(
        job.requests_for("m2"),
        0,
        "m2 ran a step while m1 was running"
    );

    job.released.store(true, Ordering::SeqCst);
    for p in ["m1", "m2"] {
        wait_for(60, &format!("{p} to succeed"), || {
            (phase(&ns, p) == "Succeeded").then_some(())
        });
    }
    assert_eq!(reporters(&ns, "m1", "PromotionSucceeded"), ["haul-shard-c"]);
    assert_eq!(reporters(&ns, "m2", "PromotionSucceeded"), ["haul-shard-c"]);
    assert_eq!(
        metric(&c, "haul_promotions_total{phase=\"Succeeded\"}"),
        2.0
    );
    let (m1, m2) = (
        get_json("promotion", "m1", &ns).expect("m1"),
        get_json("promotion", "m2", &ns).expect("m2"),
    );
    assert!(
        time(&m2, "startedAt") >= time(&m1, "finishedAt"),
        "m2 started before m1 finished:\n{m1:#}\n{m2:#}"
    );
    let stage = get_json("stage", "mover", &ns).expect("mover");
    assert_eq!(stage["status"]["lastPromotion"]["name"], "m2", "{stage:#}");
    assert!(c.running());
}
