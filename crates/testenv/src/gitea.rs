//! A real Gitea on a free loopback port: a git forge with an API, pull requests and webhooks, for
//! the tests of haul's pull-request promotions and webhook receivers.
//!
//! The binary comes from `hack/gitea-binary.sh` (built once from the Go module proxy and cached
//! by version, or `HAUL_GITEA_DIR`). [`Gitea::start`] writes an `app.ini` (SQLite, no mailer, no
//! SSH, no indexers, no cron), runs `gitea migrate`, creates an admin user and an access token
//! with Gitea's own CLI, then starts `gitea web` and waits for `/api/v1/version`.
//!
//! The helpers are blocking (a small HTTP/1.1 client, `ureq`, so that they work from sync tests
//! and from inside a Tokio runtime alike) and authenticate with the admin's token.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::process;

/// How long `gitea web` may take to answer `/api/v1/version`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Gitea::merge_pull`] retries while Gitea is still checking a new pull request.
const MERGE_RETRY: Duration = Duration::from_secs(30);

/// The admin user every instance gets, owner of the repositories the helpers create.
const USERNAME: &str = "haul";
const EMAIL: &str = "haul@example.com";

#[derive(Debug, thiserror::Error)]
pub enum GiteaError {
    #[error("the gitea binary: {0}")]
    Binary(String),
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("process: {0}")]
    Process(String),
    #[error("`gitea {command}` failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("gitea did not become ready within {secs}s; last lines of {log}:\n{tail}")]
    NotReady {
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("{method} {path}: {source}")]
    Http {
        method: String,
        path: String,
        source: Box<ureq::Error>,
    },
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("{method} {path}: unexpected answer: {detail}")]
    Answer {
        method: String,
        path: String,
        detail: String,
    },
}

/// A running Gitea. Dropping it stops the server; its directory is removed when this process
/// exits.
pub struct Gitea {
    dir: PathBuf,
    /// Its API as the admin user (the methods of [`GiteaApi`] are called on a `Gitea` directly).
    api: GiteaApi,
    password: String,
    child: Mutex<Option<Child>>,
    started_in: Duration,
}

/// Gitea's API with a token: what a test (or the quickstart's `--merge-prs`, in another
/// process than the one that started Gitea) needs to act on repositories and pull requests.
pub struct GiteaApi {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl std::ops::Deref for Gitea {
    type Target = GiteaApi;

    fn deref(&self) -> &GiteaApi {
        &self.api
    }
}

impl std::fmt::Debug for Gitea {
    // By hand: the token and the password stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gitea")
            .field("dir", &self.dir)
            .field("url", &self.api.url)
            .field("username", &USERNAME)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GiteaError + '_ {
    move |source| GiteaError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn free_port() -> Result<u16, GiteaError> {
    crate::free_loopback_port().map_err(GiteaError::Process)
}

/// `n` random bytes from the kernel, as URL-safe base64 without padding.
fn random_secret(n: usize) -> Result<String, GiteaError> {
    let path = Path::new("/dev/urandom");
    let mut buf = vec![0u8; n];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io_err(path))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

use crate::log_tail as tail;

/// The directory holding `gitea`, `templates/` and `options/`: `hack/gitea-binary.sh` prints it
/// (`HAUL_GITEA_DIR`, else the version-keyed cache, built on first use under a file lock).
pub fn locate() -> Result<PathBuf, GiteaError> {
    let dir = crate::provisioned_dir("gitea-binary.sh").map_err(GiteaError::Binary)?;
    if !dir.join("gitea").is_file() {
        return Err(GiteaError::Binary(format!(
            "{} holds no gitea binary",
            dir.display()
        )));
    }
    Ok(dir)
}

/// The `app.ini` of an instance: everything under `dir`, HTTP only on `127.0.0.1:port`, and
/// every background job a test does not need turned off.
fn app_ini(
    dir: &Path,
    static_root: &Path,
    port: u16,
    secret_key: &str,
    internal_token: &str,
) -> String {
    let d = dir.display();
    let root = static_root.display();
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let root_ok = if as_root {
        // Gitea refuses to run as root unless told; CI runs the tests as root.
        "I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\n"
    } else {
        ""
    };
    format!(
        r#"APP_NAME = haul-test
RUN_MODE = prod
WORK_PATH = {d}
{root_ok}
[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:{port}/
LOCAL_ROOT_URL = http://127.0.0.1:{port}/
STATIC_ROOT_PATH = {root}
APP_DATA_PATH = {d}/data
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false
OFFLINE_MODE = true
ENABLE_GZIP = false

[database]
DB_TYPE = sqlite3
PATH = {d}/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {d}/repos
DEFAULT_BRANCH = main
ENABLE_PUSH_CREATE_USER = true

[repository.signing]
SIGNING_KEY = none

[security]
INSTALL_LOCK = true
SECRET_KEY = {secret_key}
INTERNAL_TOKEN = {internal_token}
; Passwords are checked on every git request with basic auth: a cheap hash keeps pushes fast.
PASSWORD_HASH_ALGO = pbkdf2$1000$50

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false
ENABLE_NOTIFY_MAIL = false
REGISTER_EMAIL_CONFIRM = false
DEFAULT_KEEP_EMAIL_PRIVATE = false
NO_REPLY_ADDRESS = noreply.example.com

[mailer]
ENABLED = false

[oauth2]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[queue]
TYPE = channel

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[picture]
DISABLE_GRAVATAR = true
ENABLE_FEDERATED_AVATAR = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[api]
ENABLE_SWAGGER = false

[webhook]
; Tests receive deliveries on loopback listeners.
ALLOWED_HOST_LIST = loopback
SKIP_TLS_VERIFY = true
DELIVER_TIMEOUT = 5

[log]
MODE = file
LEVEL = warn
ROOT_PATH = {d}/log
ENABLE_SSH_LOG = false
"#
    )
}

/// Removes instance directories left by processes that no longer exist (e.g. killed test runs).
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("haul-gitea-") else {
            continue;
        };
        if let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok())
            && !process::alive(pid)
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Gitea {
    /// [`Gitea::start`] in a new directory under the system's temporary directory
    /// (`haul-gitea-<pid>-<n>`), removing those of dead processes first.
    pub fn start_temp() -> Result<Self, GiteaError> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let root = std::env::temp_dir();
        remove_stale_dirs(&root);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self::start(&root.join(format!("haul-gitea-{}-{n}", std::process::id())))
    }

    /// Starts a new Gitea whose state (app.ini, SQLite database, repositories, logs) lives in
    /// `dir`, which is emptied first and removed when this process exits. Blocking: a cold
    /// machine builds the binary first (see `hack/gitea-binary.sh`).
    pub fn start(dir: &Path) -> Result<Self, GiteaError> {
        let t0 = Instant::now();
        let bin_dir = locate()?;
        let bin = bin_dir.join("gitea");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("data")).map_err(io_err(dir))?;
        process::remove_at_exit(dir.to_path_buf());

        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let config = dir.join("app.ini");
        let ini = app_ini(
            dir,
            &bin_dir,
            port,
            &random_secret(32)?,
            &random_secret(48)?,
        );
        std::fs::write(&config, ini).map_err(io_err(&config))?;

        let cli = |args: &[&str], what: &str| -> Result<String, GiteaError> {
            let out = Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .arg("--work-path")
                .arg(dir)
                .arg("--custom-path")
                .arg(dir.join("custom"))
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| GiteaError::Process(format!("cannot run {}: {e}", bin.display())))?;
            if !out.status.success() {
                // Only what Gitea printed, never the arguments (a password is among them).
                return Err(GiteaError::Command {
                    command: what.to_string(),
                    status: out.status.to_string(),
                    output: format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                });
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };

        cli(&["migrate"], "migrate")?;
        let password = random_secret(18)?;
        cli(
            &[
                "admin",
                "user",
                "create",
                "--admin",
                "--username",
                USERNAME,
                &format!("--password={password}"),
                "--email",
                EMAIL,
                "--must-change-password=false",
            ],
            "admin user create",
        )?;
        let token_out = cli(
            &[
                "admin",
                "user",
                "generate-access-token",
                "--username",
                USERNAME,
                "--token-name",
                "haul-tests",
                "--scopes",
                "all",
                "--raw",
            ],
            "admin user generate-access-token",
        )?;
        let token = token_out
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            return Err(GiteaError::Command {
                command: "admin user generate-access-token".into(),
                status: "exit 0".into(),
                output: "no token printed".into(),
            });
        }

        let web_log = dir.join("web.log");
        let log = std::fs::File::create(&web_log).map_err(io_err(&web_log))?;
        let log2 = log.try_clone().map_err(io_err(&web_log))?;
        let mut web = Command::new(&bin);
        web.arg("--config")
            .arg(&config)
            .arg("--work-path")
            .arg(dir)
            .arg("--custom-path")
            .arg(dir.join("custom"))
            .arg("web")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = process::spawn(web).map_err(|e| GiteaError::Process(e.to_string()))?;

        let mut gitea = Gitea {
            dir: dir.to_path_buf(),
            api: GiteaApi::new(&url, &token),
            password,
            child: Mutex::new(Some(child)),
            started_in: Duration::ZERO,
        };
        gitea.wait_ready(&web_log)?;
        gitea.started_in = t0.elapsed();
        tracing::info!(url = %gitea.url, secs = gitea.started_in.as_secs_f64(), "gitea ready");
        Ok(gitea)
    }

    fn wait_ready(&self, web_log: &Path) -> Result<(), GiteaError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = format!("{}/api/v1/version", self.api.url);
        loop {
            if let Ok(r) = self.api.agent.get(&probe).call()
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline || self.exited() {
                let gitea_log = self.dir.join("log/gitea.log");
                return Err(GiteaError::NotReady {
                    secs: START_TIMEOUT.as_secs(),
                    log: format!("{} and {}", web_log.display(), gitea_log.display()),
                    tail: format!("{}\n{}", tail(web_log), tail(&gitea_log)),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn exited(&self) -> bool {
        match self.child.lock() {
            Ok(mut c) => c
                .as_mut()
                .is_none_or(|ch| !matches!(ch.try_wait(), Ok(None))),
            Err(_) => true,
        }
    }

    /// The admin user, owner of the repositories [`Gitea::create_repo`] makes.
    pub fn username(&self) -> &str {
        USERNAME
    }

    /// The admin's password (git over HTTP takes it, or the token, with basic auth).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory holding app.ini, the database, the repositories and the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Gitea::start`] took (with the binary already built).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// `clone_url` with the admin's username and password in it, for git over HTTP.
    pub fn authenticated_url(&self, clone_url: &str) -> String {
        match clone_url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{USERNAME}:{}@{rest}", self.password),
            None => clone_url.to_string(),
        }
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&self) {
        if let Ok(mut c) = self.child.lock()
            && let Some(mut child) = c.take()
        {
            process::stop(&mut child);
        }
    }
}

impl GiteaApi {
    /// A client of the Gitea at `url` (no trailing slash) acting with `token`.
    pub fn new(url: &str, token: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .proxy(None)
            .build()
            .into();
        Self {
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin's access token (all scopes), for `Authorization: token <token>`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A request to Gitea's API (`path` below `/api/v1`, e.g. `/repos/o/r/pulls`) with the
    /// admin's token; the JSON answer (`Null` for an empty one). Any status but 2xx is an error.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, GiteaError> {
        let (status, text) = self.request(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(GiteaError::Status {
                method: method.to_string(),
                path: path.to_string(),
                status,
                body: text,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| GiteaError::Answer {
            method: method.to_string(),
            path: path.to_string(),
            detail: format!("not JSON ({e}): {text}"),
        })
    }

    /// One API request; its status and body, whatever the status.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), GiteaError> {
        let url = format!("{}/api/v1{path}", self.url);
        let auth = format!("token {}", self.token);
        let http_err = |e: ureq::Error| GiteaError::Http {
            method: method.to_string(),
            path: path.to_string(),
            source: Box::new(e),
        };
        let json_body = body.map(Value::to_string);
        let resp = match (method, json_body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("POST", b) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(b.unwrap_or_default()),
            ("PATCH", b) => self
                .agent
                .patch(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(b.unwrap_or_default()),
            ("PUT", b) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(b.unwrap_or_default()),
            (other, _) => {
                return Err(GiteaError::Answer {
                    method: other.to_string(),
                    path: path.to_string(),
                    detail: "unsupported method".into(),
                });
            }
        }
        .map_err(http_err)?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().map_err(http_err)?;
        Ok((status, text))
    }

    fn answer_err(method: &str, path: &str, detail: impl Into<String>) -> GiteaError {
        GiteaError::Answer {
            method: method.to_string(),
            path: path.to_string(),
            detail: detail.into(),
        }
    }

    /// A new, empty public repository of the admin user (default branch `main`); its clone URL
    /// (`http://127.0.0.1:<port>/<user>/<name>.git`).
    pub fn create_repo(&self, name: &str) -> Result<String, GiteaError> {
        let path = "/user/repos";
        let repo = self.api(
            "POST",
            path,
            Some(&json!({
                "name": name,
                "auto_init": false,
                "default_branch": "main",
                "private": false,
            })),
        )?;
        repo["clone_url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Self::answer_err("POST", path, format!("no clone_url in {repo}")))
    }

    /// A new repository whose `main` holds `files` (path, content) in one commit; its clone
    /// URL. The commit is made by Gitea's contents API, so no git runs here.
    pub fn create_repo_with_files(
        &self,
        name: &str,
        files: &[(&str, &str)],
    ) -> Result<String, GiteaError> {
        let clone_url = self.create_repo(name)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let files: Vec<Value> = files
            .iter()
            .map(|(p, c)| json!({"operation": "create", "path": p, "content": b64.encode(c)}))
            .collect();
        self.api(
            "POST",
            &format!("/repos/{USERNAME}/{name}/contents"),
            Some(&json!({
                "branch": "main",
                "message": "initial tree",
                "files": files,
            })),
        )?;
        Ok(clone_url)
    }

    /// Pull requests of a repository in `state` (`open`, `closed` or `all`), newest first.
    pub fn list_pulls(
        &self,
        owner: &str,
        repo: &str,
        state: &str,
    ) -> Result<Vec<Value>, GiteaError> {
        let path = format!("/repos/{owner}/{repo}/pulls?state={state}&limit=50");
        match self.api("GET", &path, None)? {
            Value::Array(v) => Ok(v),
            other => Err(Self::answer_err(
                "GET",
                &path,
                format!("not a list: {other}"),
            )),
        }
    }

    /// Pull request `n` (Gitea's fields: `state`, `merged`, `merge_commit_sha`, `head`, `base`…).
    pub fn get_pull(&self, owner: &str, repo: &str, n: u64) -> Result<Value, GiteaError> {
        self.api("GET", &format!("/repos/{owner}/{repo}/pulls/{n}"), None)
    }

    /// Merges pull request `n` with a merge commit. Gitea checks a new pull request for
    /// conflicts in the background and refuses to merge until it has (405, "try again later"),
    /// so that answer is retried for a while.
    pub fn merge_pull(&self, owner: &str, repo: &str, n: u64) -> Result<(), GiteaError> {
        let path = format!("/repos/{owner}/{repo}/pulls/{n}/merge");
        let body = json!({"Do": "merge"});
        let deadline = Instant::now() + MERGE_RETRY;
        loop {
            let (status, text) = self.request("POST", &path, Some(&body))?;
            if (200..300).contains(&status) {
                return Ok(());
            }
            if status == 405 && text.contains("try again later") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            return Err(GiteaError::Status {
                method: "POST".into(),
                path,
                status,
                body: text,
            });
        }
    }

    /// Closes pull request `n` without merging it; the pull request as it is then.
    pub fn close_pull(&self, owner: &str, repo: &str, n: u64) -> Result<Value, GiteaError> {
        self.api(
            "PATCH",
            &format!("/repos/{owner}/{repo}/pulls/{n}"),
            Some(&json!({"state": "closed"})),
        )
    }

    /// A Gitea-type webhook on a repository that POSTs JSON for `events` (`push`,
    /// `pull_request`, `create`…) to `target_url`, signed with `secret`; the hook's id.
    pub fn add_webhook(
        &self,
        owner: &str,
        repo: &str,
        target_url: &str,
        secret: &str,
        events: &[&str],
    ) -> Result<u64, GiteaError> {
        let path = format!("/repos/{owner}/{repo}/hooks");
        let hook = self.api(
            "POST",
            &path,
            Some(&json!({
                "type": "gitea",
                "active": true,
                "events": events,
                "config": {"url": target_url, "content_type": "json", "secret": secret},
            })),
        )?;
        hook["id"]
            .as_u64()
            .ok_or_else(|| Self::answer_err("POST", &path, format!("no id in {hook}")))
    }

    /// The commit id `branch` points at.
    pub fn branch_head(&self, owner: &str, repo: &str, branch: &str) -> Result<String, GiteaError> {
        let path = format!("/repos/{owner}/{repo}/branches/{branch}");
        let b = self.api("GET", &path, None)?;
        b["commit"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Self::answer_err("GET", &path, format!("no commit.id in {b}")))
    }
}

impl Drop for Gitea {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ini_is_loopback_only_and_quiet() {
        let ini = app_ini(Path::new("/tmp/g"), Path::new("/opt/gitea"), 3123, "k", "t");
        for line in [
            "HTTP_ADDR = 127.0.0.1",
            "ROOT_URL = http://127.0.0.1:3123/",
            "STATIC_ROOT_PATH = /opt/gitea",
            "INSTALL_LOCK = true",
            "DEFAULT_BRANCH = main",
            "ALLOWED_HOST_LIST = loopback",
            "DISABLE_SSH = true",
            "DISABLE_REGISTRATION = true",
            "LEVEL = warn",
        ] {
            assert!(ini.lines().any(|l| l == line), "{line:?} not in:\n{ini}");
        }
    }

    #[test]
    fn secrets_are_random_and_url_safe() {
        let a = random_secret(32).expect("urandom");
        let b = random_secret(32).expect("urandom");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
