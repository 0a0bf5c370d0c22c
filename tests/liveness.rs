//! /healthz means something: with kube-apiserver killed, the controller's watches cannot be
//! re-established, and once that lasts longer than the threshold (3 s here, 5 min by default)
//! /healthz answers 503 naming the watches; with kube-apiserver back, the watches recover and
//! /healthz answers 200 again. The test owns its control plane, so it may kill and restart it.

mod support;

use std::time::{Duration, Instant};

use support::{ControllerProcess, cp, wait_for};

#[test]
fn healthz_fails_naming_the_watches_while_the_api_server_is_gone_and_recovers() {
    let mut c = ControllerProcess::start_with_env(
        &cp().dir().join("work-liveness"),
        &[
            ("HAUL_LEADER_ELECT", "false"),
            ("HAUL_LIVENESS_WATCH_DOWN", "3"),
            ("HAUL_IDENTITY_CHECK_INTERVAL", "0"),
        ],
    );
    wait_for(60, "/healthz to answer ok", || {
        (c.http_get("/healthz")? == (200, "ok\n".to_string())).then_some(())
    });
    // The shared caches start their watches right after; on loopback they have listed within
    // a moment.
    std::thread::sleep(Duration::from_secs(3));

    cp().kill_apiserver().expect("kill kube-apiserver");
    let killed = Instant::now();
    let (code, body) = wait_for(90, "/healthz to fail", || {
        c.http_get("/healthz").filter(|(code, _)| *code == 503)
    });
    let failed_after = killed.elapsed();
    assert_eq!(code, 503);
    assert!(
        body.contains("unhealthy: watch of stages (shared cache) not re-established for"),
        "{body}"
    );
    assert!(body.contains("(limit 3s)"), "{body}");
    assert!(
        failed_after >= Duration::from_secs(3),
        "failed before the threshold: {failed_after:?}"
    );

    cp().start_apiserver().expect("restart kube-apiserver");
    let restarted = Instant::now();
    let mut last = None;
    let recovered = wait_until(150, || {
        last = c.http_get("/healthz");
        last == Some((200, "ok\n".to_string()))
    });
    assert!(
        recovered,
        "/healthz did not recover within 150 s; it said {last:?}"
    );
    eprintln!(
        "/healthz failed {:.1}s after kube-apiserver was killed and recovered {:.1}s after it \
         was back",
        failed_after.as_secs_f64(),
        restarted.elapsed().as_secs_f64()
    );
    assert!(c.running(), "{}", c.log_text());
}

/// Polls `ok` every 200 ms for at most `secs` seconds; whether it became true.
fn wait_until(secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + std::time::Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}
