//! The test control plane itself: it starts on free ports, and stops every process it started.

use haul_testenv::ControlPlane;

fn pids_of(dir: &std::path::Path) -> Vec<String> {
    // Processes whose command line names this control plane's directory.
    let out = std::process::Command::new("pgrep")
        .args(["-f", &dir.display().to_string()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn two_control_planes_run_side_by_side_and_leave_nothing_behind() {
    let a = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("first control plane");
    let b = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("second control plane");
    assert_ne!(
        a.server(),
        b.server(),
        "ports must be free ports, not fixed"
    );
    eprintln!(
        "control plane start: {:.2}s and {:.2}s",
        a.started_in().as_secs_f64(),
        b.started_in().as_secs_f64()
    );
    let dir = a.dir().to_path_buf();
    assert_eq!(pids_of(&dir).len(), 2, "etcd and kube-apiserver run");

    // RBAC is on: a user with no bindings is refused.
    let nobody = a.user_kubeconfig("nobody", None).expect("kubeconfig");
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &nobody)
        .args(["get", "stages", "-A"])
        .output()
        .expect("kubectl");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));

    drop(a);
    assert!(
        pids_of(&dir).is_empty(),
        "processes outlived the control plane"
    );
    assert!(!dir.exists(), "directory outlived the control plane");
    drop(b);
}

#[test]
fn a_killed_test_binary_leaves_no_process() {
    // Start a control plane in a child copy of this test binary, SIGKILL it, and check that
    // etcd and kube-apiserver died with it.
    if std::env::var_os("HAUL_ENVTEST_CHILD").is_some() {
        let cp = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("control plane");
        println!("DIR={}", cp.dir().display());
        std::thread::sleep(std::time::Duration::from_secs(120));
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "a_killed_test_binary_leaves_no_process",
            "--nocapture",
        ])
        .env("HAUL_ENVTEST_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test");
    let stdout = child.stdout.take().expect("stdout");
    let mut dir = None;
    use std::io::BufRead;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(d) = line.strip_prefix("DIR=") {
            dir = Some(std::path::PathBuf::from(d));
            break;
        }
    }
    let dir = dir.expect("child started a control plane");
    assert_eq!(pids_of(&dir).len(), 2);
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pids_of(&dir).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        pids_of(&dir).is_empty(),
        "etcd/kube-apiserver outlived a killed test binary"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kubectl get namespace NAME` against `cp`, bounded by a short request timeout.
fn namespace_visible(cp: &ControlPlane, name: &str) -> bool {
    cp.kubectl()
        .args(["get", "namespace", name, "--request-timeout=2s"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn faults_pause_and_restart_the_control_plane_without_losing_data() {
    use haul_testenv::Component;
    let cp = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("control plane");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ns = rt.block_on(cp.namespace("faults")).expect("namespace");
    assert!(namespace_visible(&cp, &ns));

    // A paused kube-apiserver answers nothing; resumed, it answers again.
    cp.pause(Component::ApiServer).expect("pause");
    assert!(!namespace_visible(&cp, &ns), "a paused API server answered");
    cp.resume(Component::ApiServer).expect("resume");
    assert!(namespace_visible(&cp, &ns));

    // A paused etcd stalls the API server's reads of it.
    cp.pause(Component::Etcd).expect("pause etcd");
    let stalled = cp
        .kubectl()
        .args(["get", "--raw", "/readyz/etcd", "--request-timeout=3s"])
        .output()
        .expect("kubectl");
    assert!(!stalled.status.success(), "readyz/etcd with etcd paused");
    cp.resume(Component::Etcd).expect("resume etcd");

    // Killed and started again on the same etcd: same address, same objects.
    let server = cp.server().to_string();
    cp.kill_apiserver().expect("kill");
    assert!(!namespace_visible(&cp, &ns), "a killed API server answered");
    cp.start_apiserver().expect("restart");
    assert_eq!(cp.server(), server);
    assert!(
        namespace_visible(&cp, &ns),
        "the namespace survived the restart"
    );
}
