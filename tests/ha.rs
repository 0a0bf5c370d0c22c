//! High availability: two controller processes against the real API server; only the holder
//! of the Lease reconciles, the other takes over when the leader dies, and nothing runs twice.

mod support;

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

fn leader_of(c: &mut [&mut ControllerProcess]) -> Option<usize> {
    c.iter().position(|p| metric(p, "haul_leader") == 1.0)
}

/// A Stage whose template runs one step that needs no git (compose-output).
fn objects(ns: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata:\n  name: f1\n  namespace: {ns}\norigin: {{kind: Warehouse, name: w}}\nimages:\n- {{repoURL: example.com/app, tag: '1', digest: 'sha256:1'}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata:\n  name: dev\n  namespace: {ns}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: compose-output\n        config: {{tag: '${{{{ imageFrom(\"example.com/app\").Tag }}}}'}}\n"
    )
}

fn promote(ns: &str, name: &str) {
    kubectl_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  stage: dev\n  freight: f1\n"),
    )
    .success("promote");
}

#[test]
fn one_leader_reconciles_and_a_standby_takes_over() {
    let ns = namespace("ha");
    let dir = support::cp().dir();
    let mut a = ControllerProcess::start(&dir.join("ha-a"));
    let mut b = ControllerProcess::start(&dir.join("ha-b"));
    // Both become ready (a standby serves probes too); exactly one leads.
    for c in [&a, &b] {
        wait_for(30, "readyz", || {
            (c.http_get("/readyz")?.0 == 200).then_some(())
        });
        assert_eq!(c.http_get("/healthz").map(|r| r.0), Some(200));
    }
    let first = wait_for(30, "a leader", || leader_of(&mut [&mut a, &mut b]));
    let lease = get_json("lease", "haul-controller", "default").expect("lease");
    assert!(lease["spec"]["holderIdentity"].is_string(), "{lease:#}");

    kubectl_stdin(&["apply", "-f", "-"], &objects(&ns)).success("objects");
    promote(&ns, "p1");
    wait_for(30, "p1 to succeed", || {
        (get_json("promotion", "p1", &ns)?["status"]["phase"] == "Succeeded").then_some(())
    });
    // Only the leader reconciled anything.
    let (leader, standby) = if first == 0 { (&a, &b) } else { (&b, &a) };
    assert!(metric(leader, "haul_reconciles_total") > 0.0);
    assert_eq!(
        metric(standby, "haul_reconciles_total"),
        0.0,
        "the standby reconciled"
    );
    assert!(metric(leader, "haul_promotions_total") >= 1.0);

    // Kill the leader; the standby takes over within the lease duration (6 s here) and
    // finishes new work exactly once.
    let killed_at = std::time::Instant::now();
    if first == 0 {
        a.kill()
    } else {
        b.kill()
    }
    let survivor = if first == 0 { &mut b } else { &mut a };
    wait_for(30, "the standby to lead", || {
        (metric(survivor, "haul_leader") == 1.0).then_some(())
    });
    let takeover = killed_at.elapsed();
    eprintln!("takeover after {:.1}s", takeover.as_secs_f64());
    assert!(takeover.as_secs() <= 15, "takeover took {takeover:?}");
    promote(&ns, "p2");
    wait_for(30, "p2 to succeed", || {
        (get_json("promotion", "p2", &ns)?["status"]["phase"] == "Succeeded").then_some(())
    });
    let p = get_json("promotion", "p2", &ns).expect("p2");
    let meta = p["status"]["stepExecutionMetadata"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(meta.len(), 1, "{p:#}");
    assert!(survivor.running());
    let events = kubectl(&["get", "events", "-n", &ns]).success("events");
    assert!(
        events.stdout.contains("PromotionSucceeded"),
        "{}",
        events.stdout
    );
}
