//! Fault injection on the control plane (issue 13): each test owns its etcd and kube-apiserver,
//! runs a project whose dev Stage is auto-promoted from a Warehouse on the test registry, and
//! breaks the control plane while it runs — kube-apiserver paused, killed and restarted, etcd
//! paused, watches expired by a compaction, a leader's Lease lost during an outage with two
//! replicas. Nothing can be written while the API server is away, so what is checked is the
//! recovery: within a stated bound a new image reaches dev, a Stage spec change is observed, a
//! manual Promotion runs, and no Freight is lost and no Promotion duplicated. Each test prints
//! its recovery times as `RECOVERY <fault>: <s>`.
//!
//! The tests run one at a time: on 2 cores, parallel control planes would measure each other.

mod support;

use std::time::{Duration, Instant};

use haul_testenv::Component;
use support::faults::{Cluster, Images, Project};

/// How long a project has to recover once a fault is over.
const BOUND: Duration = Duration::from_secs(90);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Pushes a tag while the fault lasts (the registry is up): it must become Freight and reach
/// dev once the control plane is back, exactly once.
fn push_during_fault(p: &mut Project) {
    let tag = p.next_tag();
    p.push(&tag);
}

/// Prints what a fault test reports besides its recovery time.
fn report(p: &Project, t_test: Instant) {
    eprintln!(
        "replica restarts: {}; test took {:.1}s",
        p.replicas.restarts.len(),
        t_test.elapsed().as_secs_f64()
    );
}

/// `component` frozen for `secs` while a tag is pushed, then resumed: haul recovers.
fn paused_for(component: Component, secs: u64, namespace: &str, fault: &str) {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let mut p = Project::create(&cluster, namespace, Images::Registry, 1, &[]);

    cluster.cp.pause(component).expect("pause");
    let paused = Instant::now();
    push_during_fault(&mut p);
    p.sleep(Duration::from_secs(secs).saturating_sub(paused.elapsed()));
    cluster.cp.resume(component).expect("resume");

    p.recovers(fault, Instant::now(), BOUND);
    report(&p, t_test);
}

#[test]
fn kube_apiserver_paused_25s() {
    paused_for(
        Component::ApiServer,
        25,
        "f-kas-pause",
        "kube-apiserver paused 25s",
    );
}

#[test]
fn kube_apiserver_killed_and_restarted() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let mut p = Project::create(&cluster, "f-kas-kill", Images::Registry, 1, &[]);

    cluster.cp.kill_apiserver().expect("kill");
    push_during_fault(&mut p);
    // Down for a while (connections refused), as during a control-plane upgrade.
    p.sleep(Duration::from_secs(10));
    let t = Instant::now();
    cluster
        .cp
        .start_apiserver()
        .expect("restart kube-apiserver");
    eprintln!(
        "kube-apiserver ready again {:.1}s after its start",
        t.elapsed().as_secs_f64()
    );

    p.recovers("kube-apiserver killed, restarted", Instant::now(), BOUND);
    report(&p, t_test);
}

#[test]
fn etcd_paused_20s() {
    paused_for(Component::Etcd, 20, "f-etcd-pause", "etcd paused 20s");
}

/// etcd compacted to its current revision, then kube-apiserver restarted (so its watch cache
/// starts empty): every watch the controller resumes from a resourceVersion it had seen gets
/// `410 Gone`, and must list again rather than stop or miss what happened meanwhile.
#[test]
fn watches_expired_by_compaction() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let mut p = Project::create(&cluster, "f-compact", Images::Registry, 1, &[]);

    // Move the revision past what the controller's watches have seen (none of them watches
    // ConfigMaps), so the compaction leaves them behind.
    for i in 0..5 {
        cluster
            .kubectl(&[
                "create",
                "configmap",
                &format!("bump-{i}"),
                "-n",
                &p.ns,
                "--from-literal=k=v",
            ])
            .success("create configmap");
    }
    cluster.cp.kill_apiserver().expect("kill");
    let revision = cluster.cp.compact_etcd().expect("compact etcd");
    eprintln!("etcd compacted to revision {revision}");
    push_during_fault(&mut p);
    cluster
        .cp
        .start_apiserver()
        .expect("restart kube-apiserver");
    // A watch from before the compaction is refused: the case the controller meets.
    let stale = cluster.kubectl(&[
        "get",
        "--raw",
        &format!(
            "/apis/kargo.akuity.io/v1alpha1/namespaces/{}/freights?watch=1&resourceVersion={}&timeoutSeconds=1",
            p.ns,
            revision - 3
        ),
    ]);
    let said = format!("{}{}", stale.stdout, stale.stderr);
    assert!(
        said.contains("410") || said.contains("too old") || said.contains("Expired"),
        "a watch from before the compaction was not refused: {said}"
    );

    p.recovers("watches expired (etcd compacted)", Instant::now(), BOUND);
    let logs = p.replicas.logs();
    let gone = logs
        .lines()
        .filter(|l| l.contains("410") || l.contains("too old") || l.contains("Expired"))
        .count();
    eprintln!(
        "controller log lines about expired watches: {gone}; replica restarts: {}; test took {:.1}s",
        p.replicas.restarts.len(),
        t_test.elapsed().as_secs_f64()
    );
}

/// `haul_leader` of a replica: 1 leading, 0 standing by, `None` while it does not answer.
fn leader_metric(c: &support::ControllerProcess) -> Option<f64> {
    let (200, body) = c.http_get("/metrics")? else {
        return None;
    };
    body.lines()
        .find(|l| l.starts_with("haul_leader ") || l.starts_with("haul_leader{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Which replica leads, once exactly one says so and the Lease names it.
fn sole_leader(p: &mut Project) -> Option<usize> {
    let lease = p.cluster.get("lease", "haul-controller", "default")?;
    let holder = lease["spec"]["holderIdentity"].as_str()?.to_string();
    let procs = p.replicas.procs();
    let leading: Vec<usize> = (0..procs.len())
        .filter(|&i| leader_metric(&procs[i]) == Some(1.0))
        .collect();
    let [i] = leading[..] else { return None };
    let pid = procs[i].pid()?;
    holder.ends_with(&format!("-{pid}")).then_some(i)
}

/// Waits up to `secs` for [`sole_leader`], restarting replicas that exit meanwhile.
fn wait_sole_leader(p: &mut Project, secs: u64) -> Option<usize> {
    for _ in 0..secs * 2 {
        p.replicas.supervise(&p.cluster.cp);
        if let Some(i) = sole_leader(p) {
            return Some(i);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

/// Two replicas with leader election (haul's default Lease of 15 s) and the API server paused
/// for longer than that: the leader's Lease expires while nobody can renew or take it. Once the
/// API server is back, exactly one replica leads, and nothing was promoted twice.
#[test]
fn leader_lease_lost_during_api_server_outage() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let lease = 15;
    let mut p = Project::create(
        &cluster,
        "f-lease",
        Images::Registry,
        2,
        &[("HAUL_LEASE_DURATION", "15")],
    );
    let before = wait_sole_leader(&mut p, 30)
        .unwrap_or_else(|| panic!("no single leader before the outage\n{}", p.replicas.logs()));

    cluster.cp.pause(Component::ApiServer).expect("pause");
    let paused = Instant::now();
    push_during_fault(&mut p);
    p.sleep(Duration::from_secs(lease + 10).saturating_sub(paused.elapsed()));
    cluster.cp.resume(Component::ApiServer).expect("resume");
    let resumed = Instant::now();

    p.recovers("leader's Lease expired during a 25s outage", resumed, BOUND);
    let after = wait_sole_leader(&mut p, 30).unwrap_or_else(|| {
        panic!(
            "not exactly one leader after the outage\n{}",
            p.replicas.logs()
        )
    });
    eprintln!(
        "leader before: replica {before}, after: replica {after}; replica restarts: {} {:?}; test took {:.1}s",
        p.replicas.restarts.len(),
        p.replicas
            .restarts
            .iter()
            .map(|(i, _)| *i)
            .collect::<Vec<_>>(),
        t_test.elapsed().as_secs_f64()
    );
}

/// The Lease's holder, while the API server answers.
fn lease_holder(p: &Project) -> Option<String> {
    let lease = p.cluster.get("lease", "haul-controller", "default")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// As above, with the leader's own process frozen too (its node stalled) until the standby has
/// taken the expired Lease: the hand-over then surely happens, and the old leader wakes up with
/// its timers overdue and its caches stale, still believing it leads — the moment a second
/// Promotion could be made. It must step down (haul exits, to be restarted as a standby), and
/// nothing may be promoted twice.
#[test]
fn frozen_leader_loses_its_lease_to_the_standby() {
    let _serial = serial();
    let t_test = Instant::now();
    let cluster = Cluster::start();
    let lease = 15;
    let mut p = Project::create(
        &cluster,
        "f-takeover",
        Images::Registry,
        2,
        &[("HAUL_LEASE_DURATION", "15")],
    );
    let old = wait_sole_leader(&mut p, 30)
        .unwrap_or_else(|| panic!("no single leader before the outage\n{}", p.replicas.logs()));
    let old_holder = lease_holder(&p).expect("lease holder");
    let old_pid = p.replicas.procs()[old].pid().expect("leader pid") as i32;

    cluster.cp.pause(Component::ApiServer).expect("pause");
    haul_testenv::process::signal_group(old_pid, libc::SIGSTOP);
    let paused = Instant::now();
    push_during_fault(&mut p);
    p.sleep(Duration::from_secs(lease + 10).saturating_sub(paused.elapsed()));
    cluster.cp.resume(Component::ApiServer).expect("resume");
    let resumed = Instant::now();
    let taken = (0..60).find_map(|_| {
        let holder = lease_holder(&p).filter(|h| *h != old_holder);
        if holder.is_none() {
            std::thread::sleep(Duration::from_millis(500));
        }
        holder
    });
    haul_testenv::process::signal_group(old_pid, libc::SIGCONT);
    let taken = taken.unwrap_or_else(|| {
        panic!(
            "the standby did not take the expired Lease\n{}",
            p.replicas.logs()
        )
    });
    eprintln!(
        "the standby ({taken}) took the Lease {:.1}s after the API server was back",
        resumed.elapsed().as_secs_f64()
    );

    p.recovers("frozen leader, Lease taken over", resumed, BOUND);
    let new = wait_sole_leader(&mut p, 30).unwrap_or_else(|| {
        panic!(
            "not exactly one leader after the take-over\n{}",
            p.replicas.logs()
        )
    });
    assert_ne!(new, old, "the frozen leader leads again");
    let stepped_down = p
        .replicas
        .restarts
        .iter()
        .any(|(i, tail)| *i == old && tail.contains("lost the leader lease"));
    eprintln!(
        "leader before: replica {old}, after: replica {new}; the old leader stepped down by exiting: {stepped_down}; replica restarts: {}; test took {:.1}s",
        p.replicas.restarts.len(),
        t_test.elapsed().as_secs_f64()
    );
}
