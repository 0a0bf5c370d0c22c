//! Fault injection on the side services (issue 13): the git server, the registry and moto (ECR)
//! frozen (SIGSTOP: connections are accepted, nothing answers — a hung server or a partition)
//! while a project runs on a control plane of the test's own. While the fault lasts, what the
//! user sees is checked on the object that shows it (the Promotion's step, the Warehouse's
//! conditions); once it is over, the project recovers within a stated bound, printed as
//! `RECOVERY <fault>: <s>`, with no Freight lost and no Promotion duplicated.
//!
//! The services are shared by the tests of this binary, so the tests run one at a time.

mod support;

use std::time::{Duration, Instant};

use support::faults::{Cluster, Images, Project};
use support::services::services;

/// How long a project has to recover once a fault is over.
const BOUND: Duration = Duration::from_secs(90);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A frozen side service, resumed when dropped (also when the test fails).
struct Paused {
    service: &'static str,
    since: Instant,
}

impl Paused {
    fn new(service: &'static str) -> Self {
        services().pause(service);
        Self {
            service,
            since: Instant::now(),
        }
    }

    /// Resumes the service; returns when (the start of the recovery).
    fn resume(self) -> Instant {
        eprintln!(
            "{} was frozen for {:.1}s",
            self.service,
            self.since.elapsed().as_secs_f64()
        );
        drop(self);
        Instant::now()
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        services().resume(self.service);
    }
}

/// The git server frozen while dev's auto-promotion runs: git waits out its low-speed limit
/// (30 s without a byte), the step fails, and the Promotion says so (the git steps allow 5
/// errors in a row), then, the server back, the retry succeeds.
#[test]
fn git_server_frozen_during_a_promotion() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let mut p = Project::create(&cluster, "f-git", Images::Registry, 1, &[]);

    let paused = Paused::new("git");
    let tag = p.next_tag();
    p.push(&tag);
    let (freight, message) = p.wait(
        paused.since,
        Duration::from_secs(75),
        "dev's Promotion to show the git failure",
        |c, ns| {
            let freight = Project::freight_of(c, ns, &tag)?;
            let promotion = Project::promotions_of(c, ns, "dev", &freight)
                .into_iter()
                .next()?;
            let steps = promotion["status"]["stepExecutionMetadata"].as_array()?;
            steps.iter().find_map(|s| {
                let m = s["message"].as_str()?;
                (s["status"] == "Running" && m.contains("attempt"))
                    .then(|| (freight.clone(), m.to_string()))
            })
        },
    );
    eprintln!(
        "SEEN git frozen, after {:.1}s, on dev's Promotion step: {message}",
        paused.since.elapsed().as_secs_f64()
    );
    assert!(message.contains("attempt 1 of 5 failed"), "{message}");
    let promotion = Project::promotions_of(&cluster, &p.ns, "dev", &freight);
    assert_eq!(promotion[0]["status"]["phase"], "Running");

    let resumed = paused.resume();
    p.recovers("git server frozen", resumed, BOUND);
    eprintln!("test took {:.1}s", t_test.elapsed().as_secs_f64());
}

/// Waits until Warehouse `w` says its discovery failed; returns (condition type, reason,
/// message) as the user sees them.
fn discovery_failure_shown(p: &mut Project, since: Instant, bound: Duration) -> String {
    p.wait(
        since,
        bound,
        "the Warehouse to show the discovery failure",
        |c, ns| {
            let w = c.get("warehouse", "w", ns)?;
            w["status"]["conditions"].as_array()?.iter().find_map(|c| {
                (c["type"] == "Healthy" && c["status"] == "False").then(|| {
                    format!(
                        "Healthy=False {}: {}",
                        c["reason"].as_str().unwrap_or_default(),
                        c["message"].as_str().unwrap_or_default()
                    )
                })
            })
        },
    )
}

/// Waits until Warehouse `w` is Healthy again.
fn healthy_again(p: &mut Project, since: Instant, bound: Duration) {
    p.wait(
        since,
        bound,
        "the Warehouse to be Healthy again",
        |c, ns| {
            let w = c.get("warehouse", "w", ns)?;
            w["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Healthy" && c["status"] == "True")
                .then_some(())
        },
    );
}

/// The registry frozen until the Warehouse shows the failure; then it recovers and records the
/// image pushed once the registry is back.
#[test]
fn registry_frozen() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let mut p = Project::create(&cluster, "f-registry", Images::Registry, 1, &[]);

    let paused = Paused::new("registry");
    let shown = discovery_failure_shown(&mut p, paused.since, Duration::from_secs(75));
    eprintln!(
        "SEEN registry frozen, after {:.1}s, on the Warehouse: {shown}",
        paused.since.elapsed().as_secs_f64()
    );
    assert!(shown.contains("DiscoveryFailed"), "{shown}");

    let resumed = paused.resume();
    p.recovers("registry frozen", resumed, BOUND);
    healthy_again(&mut p, resumed, BOUND);
    eprintln!("test took {:.1}s", t_test.elapsed().as_secs_f64());
}

/// moto (ECR and STS) frozen until the Warehouse shows the failure; then it recovers and
/// records the image pushed once ECR is back.
#[test]
fn ecr_frozen() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let mut p = Project::create(&cluster, "f-ecr", Images::Ecr, 1, &[]);

    let paused = Paused::new("moto");
    let shown = discovery_failure_shown(&mut p, paused.since, Duration::from_secs(150));
    eprintln!(
        "SEEN moto frozen, after {:.1}s, on the Warehouse: {shown}",
        paused.since.elapsed().as_secs_f64()
    );
    assert!(shown.contains("DiscoveryFailed"), "{shown}");

    let resumed = paused.resume();
    p.recovers("ECR (moto) frozen", resumed, BOUND);
    healthy_again(&mut p, resumed, BOUND);
    eprintln!("test took {:.1}s", t_test.elapsed().as_secs_f64());
}
