//! A real Kubernetes control plane: etcd and kube-apiserver on free loopback ports, started the
//! way controller-runtime's envtest does it (client-certificate authentication, RBAC on,
//! `--advertise-address=127.0.0.1`), with the caller's CRDs installed and Established.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};

use crate::pki::{self, CertPair};
use crate::{EnvtestError, binaries, process};

/// How long each process may take to become ready (envtest's default is 20 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnvtestError + '_ {
    move |source| EnvtestError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn kube_err(e: impl std::fmt::Display) -> EnvtestError {
    EnvtestError::Kube(e.to_string())
}

/// A running etcd + kube-apiserver. Dropping it stops both and removes its directory.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    ca: pki::Ca,
    /// etcd first, then kube-apiserver (the order they stop in is the reverse).
    children: Mutex<Vec<Child>>,
    /// How kube-apiserver was started, to start it again on the same etcd and port.
    apiserver: Mutex<Option<Relaunch>>,
    etcd_url: String,
    started_in: Duration,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn free_port() -> Result<u16, EnvtestError> {
    crate::free_loopback_port().map_err(EnvtestError::Process)
}

use crate::log_tail as tail;

/// Removes directories left by test runs whose process no longer exists (e.g. killed ones).
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("haul-envtest-") else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid
            && !process::alive(pid)
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn write(path: &Path, contents: &str) -> Result<(), EnvtestError> {
    std::fs::write(path, contents).map_err(io_err(path))
}

fn log_file(path: &Path) -> Result<Stdio, EnvtestError> {
    let f = std::fs::File::create(path).map_err(io_err(path))?;
    Ok(Stdio::from(f))
}

impl ControlPlane {
    /// Starts a new control plane and installs `crds`. Blocking: it runs its own small async
    /// runtime for the API calls, so it can be called from sync or async code alike.
    pub fn start(crds: &[CustomResourceDefinition]) -> Result<Self, EnvtestError> {
        let t0 = Instant::now();
        let bins = binaries::locate()?;
        let root = std::env::temp_dir();
        remove_stale_dirs(&root);
        let dir = root.join(format!(
            "haul-envtest-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        process::remove_at_exit(dir.clone());

        let ca = pki::Ca::new("haul-envtest-ca")?;
        let serving = ca.serving_cert()?;
        let (sa_key, sa_pub) = pki::service_account_key()?;
        let admin = ca.client_cert("haul-admin", Some("system:masters"))?;
        write(&dir.join("ca.crt"), &ca.cert_pem)?;
        write(&dir.join("apiserver.crt"), &serving.cert_pem)?;
        write(&dir.join("apiserver.key"), &serving.key_pem)?;
        write(&dir.join("sa.key"), &sa_key)?;
        write(&dir.join("sa.pub"), &sa_pub)?;

        let mut cp = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            server: String::new(),
            dir: dir.clone(),
            ca,
            children: Mutex::new(Vec::new()),
            apiserver: Mutex::new(None),
            etcd_url: String::new(),
            started_in: Duration::ZERO,
        };

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_log = dir.join("etcd.log");
        let mut etcd = Command::new(&bins.etcd);
        etcd.args([
            "--name=envtest".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=envtest=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync=true".to_string(),
            "--log-level=warn".to_string(),
        ])
        .stdout(log_file(&etcd_log)?)
        .stderr(log_file(&etcd_log)?);
        cp.push(process::spawn(etcd)?);
        wait_tcp(etcd_port, "etcd", &etcd_log)?;
        cp.etcd_url = format!("http://127.0.0.1:{etcd_port}");

        let api_port = free_port()?;
        cp.server = format!("https://127.0.0.1:{api_port}");
        let kas_log = dir.join("kube-apiserver.log");
        let d = dir.display();
        let relaunch = Relaunch {
            binary: bins.kube_apiserver.clone(),
            args: vec![
                format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                format!("--cert-dir={d}"),
                format!("--tls-cert-file={d}/apiserver.crt"),
                format!("--tls-private-key-file={d}/apiserver.key"),
                format!("--secure-port={api_port}"),
                "--bind-address=127.0.0.1".to_string(),
                // Without it kube-apiserver looks for a default route, which offline machines lack.
                "--advertise-address=127.0.0.1".to_string(),
                "--service-cluster-ip-range=10.0.0.0/24".to_string(),
                "--allow-privileged=true".to_string(),
                // No service-account controller runs, so no default ServiceAccount exists.
                "--disable-admission-plugins=ServiceAccount".to_string(),
                "--authorization-mode=RBAC".to_string(),
                format!("--service-account-issuer=https://127.0.0.1:{api_port}/"),
                format!("--service-account-key-file={d}/sa.pub"),
                format!("--service-account-signing-key-file={d}/sa.key"),
                format!("--client-ca-file={d}/ca.crt"),
                "--v=1".to_string(),
            ],
            log: kas_log.clone(),
            port: api_port,
        };
        cp.push(relaunch.spawn()?);
        if let Ok(mut a) = cp.apiserver.lock() {
            *a = Some(relaunch);
        }

        let kubeconfig = kubeconfig_yaml(&cp.server, &cp.ca.cert_pem, &admin);
        write(&cp.kubeconfig, &kubeconfig)?;

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EnvtestError::Process(e.to_string()))?;
        rt.block_on(cp.wait_ready_and_install(&kas_log, crds))?;
        cp.started_in = t0.elapsed();
        tracing::info!(server = %cp.server, secs = cp.started_in.as_secs_f64(), "control plane ready");
        Ok(cp)
    }

    fn push(&self, child: Child) {
        if let Ok(mut c) = self.children.lock() {
            c.push(child);
        }
    }

    async fn wait_ready_and_install(
        &self,
        kas_log: &Path,
        crds: &[CustomResourceDefinition],
    ) -> Result<(), EnvtestError> {
        self.wait_ready(kas_log).await?;
        install_crds(&self.client().await?, crds).await
    }

    /// Waits until kube-apiserver answers `/readyz` and serves the `default` namespace.
    async fn wait_ready(&self, kas_log: &Path) -> Result<(), EnvtestError> {
        let client = self.client().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(kube_err)?;
            if client.request_text(req).await.is_ok() {
                let ns: Api<Namespace> = Api::all(client.clone());
                if ns.get_opt("default").await.ok().flatten().is_some() {
                    break;
                }
            }
            if Instant::now() > deadline || self.exited() {
                return Err(EnvtestError::NotReady {
                    what: "kube-apiserver",
                    secs: START_TIMEOUT.as_secs(),
                    log: kas_log.display().to_string(),
                    tail: tail(kas_log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn exited(&self) -> bool {
        match self.children.lock() {
            Ok(mut c) => c.iter_mut().any(|ch| matches!(ch.try_wait(), Ok(Some(_)))),
            Err(_) => true,
        }
    }

    /// `https://127.0.0.1:<port>`
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A kubeconfig for a `system:masters` user.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory holding certificates, logs and etcd data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PEM of the CA behind every certificate of this control plane: what a webhook
    /// configuration's `caBundle` holds for a server using [`ControlPlane::loopback_serving_cert`].
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// A new serving certificate for 127.0.0.1 / localhost, signed by this control plane's CA
    /// (for webhooks the API server calls on loopback).
    pub fn loopback_serving_cert(&self) -> Result<CertPair, EnvtestError> {
        self.ca.serving_cert()
    }

    /// Time from `start()` until the CRDs were Established.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// A client authenticated as the admin user.
    pub async fn client(&self) -> Result<kube::Client, EnvtestError> {
        client_from(&self.kubeconfig).await
    }

    /// Writes a kubeconfig for `user` (in `group`, if given), authenticated by a client
    /// certificate from this control plane's CA, and returns its path.
    pub fn user_kubeconfig(
        &self,
        user: &str,
        group: Option<&str>,
    ) -> Result<PathBuf, EnvtestError> {
        let cert = self.ca.client_cert(user, group)?;
        let path = self.dir.join(format!("kubeconfig-{user}"));
        write(
            &path,
            &kubeconfig_yaml(&self.server, &self.ca.cert_pem, &cert),
        )?;
        Ok(path)
    }

    /// A `kubectl` command pointed at this control plane as the admin user.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kubectl-cache"));
        c
    }

    /// Creates a namespace with a unique name starting with `prefix`, so tests do not collide.
    pub async fn namespace(&self, prefix: &str) -> Result<String, EnvtestError> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{prefix}-{n}-{:x}", nanos & 0xffff);
        let api: Api<Namespace> = Api::all(self.client().await?);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(kube_err)?;
        Ok(name)
    }
}

/// A process of the control plane, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    ApiServer,
}

/// kube-apiserver's command line, kept to start it again after [`ControlPlane::kill`].
struct Relaunch {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    port: u16,
}

impl Relaunch {
    fn spawn(&self) -> Result<Child, EnvtestError> {
        // Appends, so the log of an earlier run survives a restart.
        let log = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .map(Stdio::from)
                .map_err(io_err(&self.log))
        };
        let mut kas = Command::new(&self.binary);
        kas.args(&self.args).stdout(log()?).stderr(log()?);
        process::spawn(kas)
    }
}

/// Fault injection: the tests own these processes, so they may pause, kill and restart them
/// the way an outage would.
impl ControlPlane {
    fn signal(&self, which: Component, signal: i32) -> Result<(), EnvtestError> {
        let index = match which {
            Component::Etcd => 0,
            Component::ApiServer => 1,
        };
        let children = self
            .children
            .lock()
            .map_err(|_| EnvtestError::Process("children lock poisoned".into()))?;
        let child = children
            .get(index)
            .ok_or_else(|| EnvtestError::Process(format!("{which:?} is not running")))?;
        process::signal_group(child.id() as i32, signal);
        Ok(())
    }

    /// Freezes a component (SIGSTOP): its sockets stay open but nothing answers, as in a
    /// network partition or a stalled node.
    pub fn pause(&self, which: Component) -> Result<(), EnvtestError> {
        self.signal(which, libc::SIGSTOP)
    }

    /// Lets a paused component go on (SIGCONT).
    pub fn resume(&self, which: Component) -> Result<(), EnvtestError> {
        self.signal(which, libc::SIGCONT)
    }

    /// Kills kube-apiserver (etcd keeps its data); [`ControlPlane::start_apiserver`] brings it
    /// back on the same port.
    pub fn kill_apiserver(&self) -> Result<(), EnvtestError> {
        let mut children = self
            .children
            .lock()
            .map_err(|_| EnvtestError::Process("children lock poisoned".into()))?;
        if children.len() > 1
            && let Some(mut kas) = children.pop()
        {
            process::stop(&mut kas);
        }
        Ok(())
    }

    /// Starts kube-apiserver again on the same etcd and port, and waits until it is ready.
    pub fn start_apiserver(&self) -> Result<(), EnvtestError> {
        let (child, log, port) = {
            let relaunch = self
                .apiserver
                .lock()
                .map_err(|_| EnvtestError::Process("relaunch lock poisoned".into()))?;
            let r = relaunch
                .as_ref()
                .ok_or_else(|| EnvtestError::Process("kube-apiserver was never started".into()))?;
            (r.spawn()?, r.log.clone(), r.port)
        };
        self.push(child);
        wait_tcp(port, "kube-apiserver", &log)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EnvtestError::Process(e.to_string()))?;
        rt.block_on(self.wait_ready(&log))
    }

    /// The URL of etcd's client port (its JSON gateway serves `/v3/...`).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// etcd's current revision (the `header.revision` of a range read), through its JSON
    /// gateway.
    pub fn etcd_revision(&self) -> Result<i64, EnvtestError> {
        // Key "\0" (base64 "AA=="): any key will do, only the response header matters.
        let body = etcd_post(&self.etcd_url, "/v3/kv/range", r#"{"key":"AA=="}"#)?;
        json_int_field(&body, "revision")
            .ok_or_else(|| EnvtestError::Process(format!("no revision in etcd's answer: {body}")))
    }

    /// Compacts etcd's history up to its current revision, physically, as etcd's periodic
    /// compaction does in a long-running cluster: a watch resuming from an older
    /// resourceVersion then gets `410 Gone` (once kube-apiserver's watch cache no longer holds
    /// it, e.g. after a restart). Returns the revision compacted to.
    pub fn compact_etcd(&self) -> Result<i64, EnvtestError> {
        let revision = self.etcd_revision()?;
        etcd_post(
            &self.etcd_url,
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        )?;
        Ok(revision)
    }
}

/// POSTs `body` to etcd's JSON gateway (plain HTTP on loopback) and returns the response body;
/// a status other than 200 is an error carrying etcd's message.
fn etcd_post(base: &str, path: &str, body: &str) -> Result<String, EnvtestError> {
    use std::io::{Read, Write};
    let err = |e: std::io::Error| EnvtestError::Process(format!("etcd {path}: {e}"));
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(err)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(err)?;
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(EnvtestError::Process(format!(
            "etcd {path} answered: {head}\n{rest}"
        )));
    }
    // Chunked or not, the JSON object is what lies between the first '{' and the last '}'.
    let json = match (rest.find('{'), rest.rfind('}')) {
        (Some(a), Some(b)) if a <= b => &rest[a..=b],
        _ => rest,
    };
    Ok(json.to_string())
}

/// The integer value of the first `"field"` in a JSON text; the gateway writes int64s as
/// strings (`"revision":"42"`), so both forms are read.
fn json_int_field(json: &str, field: &str) -> Option<i64> {
    let key = format!("\"{field}\":");
    let at = json.find(&key)? + key.len();
    let digits: String = json[at..]
        .trim_start()
        .trim_start_matches('"')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(mut children) = self.children.lock() {
            // kube-apiserver first, then etcd.
            while let Some(mut c) = children.pop() {
                process::stop(&mut c);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_tcp(port: u16, what: &'static str, log: &Path) -> Result<(), EnvtestError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(EnvtestError::NotReady {
                what,
                secs: START_TIMEOUT.as_secs(),
                log: log.display().to_string(),
                tail: tail(log),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(())
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, user: &CertPair) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: envtest\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: envtest\ncurrent-context: envtest\n",
        b64(ca_pem),
        b64(&user.cert_pem),
        b64(&user.key_pem)
    )
}

/// A client for the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> Result<kube::Client, EnvtestError> {
    let kc = Kubeconfig::read_from(path).map_err(kube_err)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(kube_err)?;
    kube::Client::try_from(cfg).map_err(kube_err)
}

/// Server-side applies the CRDs and waits until each is Established.
pub async fn install_crds(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), EnvtestError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("haul-envtest").force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &Patch::Apply(crd))
            .await
            .map_err(|e| EnvtestError::Kube(format!("installing CRD {name}: {e}")))?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(START_TIMEOUT, established)
            .await
            .map_err(|_| EnvtestError::Kube(format!("CRD {name} not Established in time")))?
            .map_err(kube_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::json_int_field;

    #[test]
    fn etcd_gateway_integers_are_read_quoted_or_not() {
        let range =
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"1234","raft_term":"2"}}"#;
        assert_eq!(json_int_field(range, "revision"), Some(1234));
        assert_eq!(json_int_field(r#"{"revision": 7}"#, "revision"), Some(7));
        assert_eq!(json_int_field(r#"{"header":{}}"#, "revision"), None);
    }
}
