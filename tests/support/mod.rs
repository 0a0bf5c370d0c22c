//! Helpers shared by the integration tests: the real control plane of this test binary and
//! `kubectl` driven the way a user drives it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use haul::envtest::{self, ControlPlane};

pub fn cp() -> &'static ControlPlane {
    envtest::shared()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The outcome of one kubectl call, with both streams as text.
pub struct Kubectl {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    fn from(out: Output) -> Self {
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
}

/// Runs kubectl as the admin user.
pub fn kubectl(args: &[&str]) -> Kubectl {
    run(cp().kubectl().args(args), None)
}

/// Runs kubectl with `input` on standard input (for `apply -f -`).
pub fn kubectl_stdin(args: &[&str], input: &str) -> Kubectl {
    run(cp().kubectl().args(args), Some(input))
}

/// Runs kubectl with another kubeconfig (a different user).
pub fn kubectl_as(kubeconfig: &Path, args: &[&str], input: Option<&str>) -> Kubectl {
    let mut c = cp().kubectl();
    c.env("KUBECONFIG", kubeconfig).args(args);
    run(&mut c, input)
}

fn run(cmd: &mut Command, input: Option<&str>) -> Kubectl {
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
    Kubectl::from(child.wait_with_output().expect("kubectl runs"))
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
