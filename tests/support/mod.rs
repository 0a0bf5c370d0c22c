//! Helpers shared by the integration tests: the real control plane of this test binary and
//! `kubectl` driven the way a user drives it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use haul_testenv::ControlPlane;

static CONTROL_PLANE: std::sync::OnceLock<ControlPlane> = std::sync::OnceLock::new();

/// The control plane shared by every test in this test binary (haul's CRDs installed), started
/// on first use. Its processes die with the test binary, also when a test panics or the binary
/// is killed.
pub fn cp() -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        ControlPlane::start(&haul::crds::local_cluster_crds())
            .unwrap_or_else(|e| panic!("cannot start the test control plane: {e}"))
    })
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the test tools live (helm, kubectl, moto's venv), installed on first use.
pub fn tools_dir() -> PathBuf {
    haul_testenv::services::tools_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// The outcome of one command (kubectl, haul), with both streams as text.
pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn from(out: Output) -> Self {
        Self {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command succeeded.
    pub fn success(self, what: &str) -> Self {
        assert!(
            self.ok,
            "{what} failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics with both streams unless the command failed.
    pub fn failure(self, what: &str) -> Self {
        assert!(
            !self.ok,
            "{what} should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed and its stderr says every one of `parts`.
    pub fn refused_with(self, what: &str, parts: &[&str]) -> Self {
        assert!(!self.ok, "{what} succeeded:\n{}", self.stdout);
        for part in parts {
            assert!(
                self.stderr.contains(part),
                "{what}: {part:?} not in:\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Runs kubectl as the admin user.
pub fn kubectl(args: &[&str]) -> Outcome {
    run(cp().kubectl().args(args), None)
}

/// Runs kubectl with `input` on standard input (for `apply -f -`).
pub fn kubectl_stdin(args: &[&str], input: &str) -> Outcome {
    run(cp().kubectl().args(args), Some(input))
}

/// Runs kubectl with another kubeconfig (a different user).
pub fn kubectl_as(kubeconfig: &Path, args: &[&str], input: Option<&str>) -> Outcome {
    let mut c = cp().kubectl();
    c.env("KUBECONFIG", kubeconfig).args(args);
    run(&mut c, input)
}

fn run(cmd: &mut Command, input: Option<&str>) -> Outcome {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl must be installed");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    Outcome::from(child.wait_with_output().expect("kubectl runs"))
}

/// A fresh namespace for one test.
pub fn namespace(prefix: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(cp().namespace(prefix))
        .expect("create namespace")
}

pub mod argocd;
pub mod browser;
pub mod charts;
pub mod faults;
pub mod fixtures;
pub mod gitea;
pub mod gitops;
pub mod helm;
pub mod installed;
pub mod quickstart;
pub mod rollouts;
pub mod run_local;
pub mod services;
pub mod signing;

// `support::gitea()`; most test binaries never call it.
#[allow(unused_imports)]
pub use gitea::gitea;

/// A `haul controller` process, as a user runs it, against this binary's control plane.
pub struct ControllerProcess {
    child: Option<std::process::Child>,
    pub log: PathBuf,
    /// The port of its /metrics, /healthz and /readyz endpoints.
    pub metrics_port: u16,
}

impl ControllerProcess {
    /// Starts `haul controller` with `work_dir` as its work root.
    pub fn start(work_dir: &Path) -> Self {
        Self::start_with_env(work_dir, &[])
    }

    /// As [`ControllerProcess::start`], with extra environment variables.
    pub fn start_with_env(work_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_on(cp(), work_dir, env)
    }

    /// As [`ControllerProcess::start_with_env`], against another control plane than this
    /// binary's shared one (a test that pauses or restarts its own), logging into its directory.
    pub fn start_on(cp: &ControlPlane, work_dir: &Path, env: &[(&str, &str)]) -> Self {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(work_dir).expect("work dir");
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let log = cp.dir().join(format!("controller-{n}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        let metrics_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_haul"))
            .arg("controller")
            .env("KUBECONFIG", cp.kubeconfig())
            .env("HAUL_WORK_DIR", work_dir)
            .env("RUST_LOG", "info,haul=debug")
            .env("HAUL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("HAUL_LEASE_DURATION", "6")
            // Off unless a test asks: the default listens on every interface, on a fixed port.
            .env("HAUL_RECEIVERS_ADDR", "off")
            .envs(env.iter().copied())
            .stdout(Stdio::from(f.try_clone().expect("log")))
            .stderr(Stdio::from(f))
            .process_group(0)
            .spawn()
            .expect("start haul controller");
        haul_testenv::kill_group_at_exit(child.id() as i32);
        Self {
            child: Some(child),
            log,
            metrics_port,
        }
    }

    /// Kills the controller abruptly (SIGKILL), as a crashed pod.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// GET a path of its HTTP endpoint; `None` while it does not answer.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let out = Command::new("curl")
            .args(["-s", "-m", "2", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{}{path}", self.metrics_port))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.trim().parse().ok()?, body.to_string()))
    }

    /// The process id while it runs (part of its leader-election identity, `<host>-<pid>`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port on 127.0.0.1 nothing listens on now (the kernel's pick), for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `secs` with `what`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `kubectl get <kind> <name> -n <ns> -o json`, parsed; `None` when it does not exist.
pub fn get_json(kind: &str, name: &str, ns: &str) -> Option<serde_json::Value> {
    let out = kubectl(&["get", kind, name, "-n", ns, "-o", "json"]);
    if !out.ok {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

/// `kubectl get <kind> <name> -n <ns> -o json`, parsed; panics with kubectl's output when it
/// does not exist.
pub fn must_get_json(kind: &str, name: &str, ns: &str) -> serde_json::Value {
    let out = kubectl(&["get", kind, name, "-n", ns, "-o", "json"])
        .success(&format!("get {kind} {name}"));
    serde_json::from_str(&out.stdout).expect("kubectl prints JSON")
}

/// `kubectl patch <kind> <name> -n <ns> --type=merge -p <patch>` as the admin user.
pub fn merge_patch(kind: &str, name: &str, ns: &str, patch: &str) -> Outcome {
    kubectl(&["patch", kind, name, "-n", ns, "--type=merge", "-p", patch])
}

/// [`merge_patch`] of the status subresource.
pub fn merge_patch_status(kind: &str, name: &str, ns: &str, patch: &str) -> Outcome {
    kubectl(&[
        "patch",
        kind,
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    ])
}

/// Runs git in `dir`, panicking with its output on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every Freight of namespace `ns`, as JSON.
pub fn freight_list(ns: &str) -> Vec<serde_json::Value> {
    let out = kubectl(&["get", "freight", "-n", ns, "-o", "json"]).success("get freight");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// (status, reason, message) of Warehouse `name`'s condition `type_`, once it has one.
pub fn warehouse_condition(ns: &str, name: &str, type_: &str) -> Option<(String, String, String)> {
    let w = get_json("warehouse", name, ns)?;
    let c = w["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}
