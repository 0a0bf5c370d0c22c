//! A real Argo CD (application-controller + repo-server + Redis) on loopback, out of cluster,
//! against a [`ControlPlane`], deploying into that same API server.
//!
//! The binaries come from `hack/argocd-binary.sh` (`ARGOCD_ASSETS`, else built once from the Go
//! module proxy and cached by version); Redis is Debian's `redis-server`. What a cluster install
//! would provide is created here instead: Argo CD's own CRDs (from its module), the `argocd`
//! namespace, `argocd-cm`, `argocd-rbac-cm`, `argocd-secret` and the `default` AppProject (which
//! argocd-server would create; it does not run here — no UI, no API).
//!
//! How the out-of-cluster setup works:
//! - `ARGOCD_FAKE_IN_CLUSTER=true` with `KUBECONFIG` makes Argo CD map the in-cluster destination
//!   `https://kubernetes.default.svc` to the kubeconfig's server, so Applications written for a
//!   real cluster deploy into the test API server unchanged;
//! - `--application-namespaces '*'` and the project's `sourceNamespaces: ['*']` let Applications
//!   live in each test's own namespace (Argo CD's "apps in any namespace");
//! - the repo-server runs git with `GIT_ASKPASS=argocd` and kustomize from `PATH`, so the binary
//!   directory is put first on its `PATH`; GnuPG is off (`ARGOCD_GPG_ENABLED=false`) and every
//!   path it would take under `/app/config` or `/tmp` is moved into this instance's directory,
//!   so several instances (test binaries) run side by side.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{ControlPlane, EnvtestError, process};

/// The namespace Argo CD runs in and reads its settings from.
pub const NAMESPACE: &str = "argocd";

/// How long each component may take to start (the controller syncs its caches of every API
/// resource of the cluster first).
const START_TIMEOUT: Duration = Duration::from_secs(90);

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnvtestError + '_ {
    move |source| EnvtestError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn free_port() -> Result<u16, EnvtestError> {
    crate::free_loopback_port().map_err(EnvtestError::Process)
}

use crate::log_tail as tail;

fn log_file(path: &Path) -> Result<(Stdio, Stdio), EnvtestError> {
    let f = std::fs::File::create(path).map_err(io_err(path))?;
    let g = f.try_clone().map_err(io_err(path))?;
    Ok((Stdio::from(f), Stdio::from(g)))
}

/// Runs `hack/argocd-binary.sh`, which prints the directory holding `argocd`, its component
/// symlinks, `kustomize` and `crds/` (`ARGOCD_ASSETS` when it holds them; else the cache,
/// building on first use).
pub fn locate() -> Result<PathBuf, EnvtestError> {
    let dir = crate::provisioned_dir("argocd-binary.sh").map_err(EnvtestError::Binaries)?;
    for name in [
        "argocd-application-controller",
        "argocd-repo-server",
        "kustomize",
    ] {
        if !dir.join(name).exists() {
            return Err(EnvtestError::Binaries(format!(
                "{} has no {name} (ARGOCD_ASSETS must hold argocd, its symlinks argocd-application-controller and argocd-repo-server, kustomize and crds/)",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

/// A running Argo CD. Dropping it stops its processes.
pub struct ArgoCd {
    dir: PathBuf,
    bin_dir: PathBuf,
    children: Mutex<Vec<Child>>,
    controller_log: PathBuf,
    repo_server_log: PathBuf,
    started_in: Duration,
}

impl ArgoCd {
    /// Installs Argo CD's CRDs and settings into `cp` and starts Redis, the repo-server and the
    /// application-controller, with their files and logs under `dir`. Blocking.
    pub fn start(cp: &ControlPlane, dir: &Path) -> Result<Self, EnvtestError> {
        let t0 = Instant::now();
        let bin_dir = locate()?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        for sub in ["tmp", "home", "tls", "ssh", "gpg"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        install(cp, &bin_dir)?;

        let mut argocd = ArgoCd {
            dir: dir.to_path_buf(),
            controller_log: dir.join("application-controller.log"),
            repo_server_log: dir.join("repo-server.log"),
            bin_dir: bin_dir.clone(),
            children: Mutex::new(Vec::new()),
            started_in: Duration::ZERO,
        };

        let redis_port = free_port()?;
        let redis_log = dir.join("redis.log");
        let (out, err) = log_file(&redis_log)?;
        let mut redis = Command::new("redis-server");
        redis
            .args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
            ])
            .arg(dir)
            .stdout(out)
            .stderr(err);
        argocd.push(process::spawn(redis).map_err(|e| {
            EnvtestError::Process(format!(
                "redis-server ({e}); install it with hack/install-deps.sh (Debian package redis-server)"
            ))
        })?);
        wait_tcp(redis_port, "redis-server", &redis_log, || argocd.exited())?;

        let repo_port = free_port()?;
        let (out, err) = log_file(&argocd.repo_server_log)?;
        let mut repo = Command::new(bin_dir.join("argocd-repo-server"));
        repo.args([
            "--address=127.0.0.1".to_string(),
            format!("--port={repo_port}"),
            "--metrics-address=127.0.0.1".to_string(),
            format!("--metrics-port={}", free_port()?),
            "--disable-tls".to_string(),
            format!("--redis=127.0.0.1:{redis_port}"),
            "--logformat=text".to_string(),
            "--parallelismlimit=4".to_string(),
        ])
        .envs(argocd.common_env())
        .stdout(out)
        .stderr(err);
        argocd.push(process::spawn(repo)?);
        wait_tcp(
            repo_port,
            "argocd-repo-server",
            &argocd.repo_server_log,
            || argocd.exited(),
        )?;

        let metrics_port = free_port()?;
        let (out, err) = log_file(&argocd.controller_log)?;
        let mut controller = Command::new(bin_dir.join("argocd-application-controller"));
        controller
            .args([
                format!("--kubeconfig={}", cp.kubeconfig().display()),
                format!("--namespace={NAMESPACE}"),
                format!("--repo-server=127.0.0.1:{repo_port}"),
                "--repo-server-plaintext".to_string(),
                format!("--redis=127.0.0.1:{redis_port}"),
                format!("--metrics-port={metrics_port}"),
                // Applications in every namespace, so each test keeps its own.
                "--application-namespaces=*".to_string(),
                "--status-processors=4".to_string(),
                "--operation-processors=4".to_string(),
                "--logformat=text".to_string(),
            ])
            .envs(argocd.common_env())
            .env("KUBECONFIG", cp.kubeconfig())
            .env("ARGOCD_FAKE_IN_CLUSTER", "true")
            .stdout(out)
            .stderr(err);
        argocd.push(process::spawn(controller)?);
        wait_tcp(
            metrics_port,
            "argocd-application-controller",
            &argocd.controller_log,
            || argocd.exited(),
        )?;
        argocd.started_in = t0.elapsed();
        tracing::info!(secs = argocd.started_in.as_secs_f64(), dir = %dir.display(), "Argo CD ready");
        Ok(argocd)
    }

    /// What both components need to run outside a pod, each instance in its own files.
    fn common_env(&self) -> Vec<(String, String)> {
        let d = &self.dir;
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let s = |p: PathBuf| p.display().to_string();
        vec![
            ("PATH".into(), path),
            ("HOME".into(), s(d.join("home"))),
            ("TMPDIR".into(), s(d.join("tmp"))),
            ("ARGOCD_GPG_ENABLED".into(), "false".into()),
            ("ARGOCD_GNUPGHOME".into(), s(d.join("gpg"))),
            ("ARGOCD_TLS_DATA_PATH".into(), s(d.join("tls"))),
            ("ARGOCD_SSH_DATA_PATH".into(), s(d.join("ssh"))),
            // The default, /tmp/reposerver-ask-pass.sock, would be shared by every instance.
            ("ARGOCD_ASK_PASS_SOCK".into(), s(d.join("askpass.sock"))),
            ("ARGOCD_APP_CONFIG_PATH".into(), s(d.join("config"))),
        ]
    }

    fn push(&self, child: Child) {
        if let Ok(mut c) = self.children.lock() {
            c.push(child);
        }
    }

    /// The application-controller's log (syncs, health, errors).
    pub fn controller_log(&self) -> &Path {
        &self.controller_log
    }

    /// The repo-server's log (git fetches, manifest generation).
    pub fn repo_server_log(&self) -> &Path {
        &self.repo_server_log
    }

    /// The directory of binaries in use (`argocd`, `kustomize`, `crds/`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Time from `start()` until every component listened.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Whether a component exited (a crash shows in its log).
    pub fn exited(&self) -> bool {
        match self.children.lock() {
            Ok(mut c) => c.iter_mut().any(|ch| matches!(ch.try_wait(), Ok(Some(_)))),
            Err(_) => true,
        }
    }

    /// The last lines of both components' logs, for a test's failure message.
    pub fn log_tails(&self) -> String {
        format!(
            "--- {}:\n{}\n--- {}:\n{}",
            self.controller_log.display(),
            tail(&self.controller_log),
            self.repo_server_log.display(),
            tail(&self.repo_server_log)
        )
    }
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        if let Ok(mut children) = self.children.lock() {
            while let Some(mut c) = children.pop() {
                process::stop(&mut c);
            }
        }
    }
}

/// A repository Secret, as a user declares one: Argo CD reads `url`, `username` and `password`
/// for every Application whose `repoURL` is `url`.
pub fn repository_secret_yaml(name: &str, url: &str, username: &str, password: &str) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  labels:\n    argocd.argoproj.io/secret-type: repository\nstringData:\n  type: git\n  url: {}\n  username: {}\n  password: {}\n",
        q(url),
        q(username),
        q(password)
    )
}

/// The settings a cluster install of Argo CD ships (argocd-server would create the `default`
/// project; it does not run here). The project admits Applications from any namespace.
const SETTINGS: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: argocd}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels: {app.kubernetes.io/name: argocd-cm, app.kubernetes.io/part-of: argocd}
data:
  timeout.reconciliation: 60s
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-rbac-cm
  namespace: argocd
  labels: {app.kubernetes.io/name: argocd-rbac-cm, app.kubernetes.io/part-of: argocd}
---
apiVersion: v1
kind: Secret
metadata:
  name: argocd-secret
  namespace: argocd
  labels: {app.kubernetes.io/name: argocd-secret, app.kubernetes.io/part-of: argocd}
stringData:
  server.secretkey: haul-test-only-not-a-secret
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ['*']
  sourceNamespaces: ['*']
  destinations: [{server: '*', namespace: '*'}]
  clusterResourceWhitelist: [{group: '*', kind: '*'}]
"#;

/// Applies Argo CD's CRDs (replacing any minimal Application CRD already there) and settings.
fn install(cp: &ControlPlane, bin_dir: &Path) -> Result<(), EnvtestError> {
    let crds = bin_dir.join("crds");
    // Server-side: the Application CRD is larger than client-side apply's annotation limit.
    let mut apply = cp.kubectl();
    apply.args(["apply", "--server-side", "--force-conflicts"]);
    for f in ["application-crd.yaml", "appproject-crd.yaml"] {
        apply.arg("-f").arg(crds.join(f));
    }
    kubectl(&mut apply, None, "applying Argo CD's CRDs")?;
    kubectl(
        cp.kubectl().args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/applications.argoproj.io",
            "crd/appprojects.argoproj.io",
        ]),
        None,
        "waiting for Argo CD's CRDs",
    )?;
    // Client-side, as a user would: a later `kubectl apply` of the same namespace (the
    // quickstart's examples declare it) then finds its last-applied annotation.
    kubectl(
        cp.kubectl().args(["apply", "-f", "-"]),
        Some(SETTINGS),
        "applying Argo CD's settings",
    )
}

fn kubectl(cmd: &mut Command, input: Option<&str>, what: &str) -> Result<(), EnvtestError> {
    use std::io::Write;
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EnvtestError::Kube(format!("{what}: cannot run kubectl: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| EnvtestError::Kube(format!("{what}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| EnvtestError::Kube(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(EnvtestError::Kube(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Waits until `port` accepts connections; gives up at the timeout or as soon as `exited`
/// says a component stopped (its log then says why).
fn wait_tcp(
    port: u16,
    what: &'static str,
    log: &Path,
    exited: impl Fn() -> bool,
) -> Result<(), EnvtestError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || exited() {
            return Err(EnvtestError::NotReady {
                what,
                secs: START_TIMEOUT.as_secs(),
                log: log.display().to_string(),
                tail: tail(log),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
