//! Running the git CLI: an isolated environment, credentials that never touch argv or disk
//! (except an SSH key file, 0600, in a private temp dir removed after use), a cap on concurrent
//! git processes, a timeout that kills the whole process group, scrubbed error output.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::Credentials;
use super::error::{GitError, Result, classify};
use super::url::{RepoUrl, scrub_userinfo};

/// Environment variables passed through from haul's own environment (proxies, CA bundles, the
/// temp dir). Everything else is dropped, so the operator's environment (`GIT_DIR`,
/// `SSH_AUTH_SOCK`, `GIT_ASKPASS`, ...) cannot change what git does.
const PASS_THROUGH_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_EXEC_PATH",
];

/// Configuration applied to every git invocation with `-c`.
const BASE_CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.quotePath=false",
    "core.autocrlf=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
    "protocol.ext.allow=never",
    "credential.helper=",
];

/// Answers git's credential `get` request from the environment of the git process, so the
/// password is neither on a command line nor in a file. Only the variable names appear in argv.
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; \
     printf 'username=%s\\npassword=%s\\n' \"$HAUL_GIT_USERNAME\" \"$HAUL_GIT_PASSWORD\"; }; f";

/// Spawns git processes for one [`RepoCache`](super::RepoCache).
pub(crate) struct Runner {
    pub git: PathBuf,
    pub ssh: PathBuf,
    pub timeout: Duration,
    pub procs: Semaphore,
    pub home: PathBuf,
    pub known_hosts: PathBuf,
    pub allow_file: bool,
}

/// Credentials prepared for the git processes of one operation.
pub(crate) struct Auth {
    config: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
    secrets: Vec<String>,
    /// Holds the SSH key file; removed on drop.
    _key_dir: Option<tempfile::TempDir>,
}

impl Auth {
    /// Also skips TLS certificate verification when `skip` (a repository's
    /// `insecureSkipTLSVerify`): on the commands given this auth only, never globally.
    pub(crate) fn skip_tls_verify(mut self, skip: bool) -> Self {
        if skip {
            self.config.push("http.sslVerify=false");
        }
        self
    }

    pub(crate) fn none() -> Self {
        Self {
            config: Vec::new(),
            env: Vec::new(),
            secrets: Vec::new(),
            _key_dir: None,
        }
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"))
}

impl Runner {
    /// Default `GIT_SSH_COMMAND`: no user ssh config, no prompts, trust-on-first-use host keys
    /// recorded in the cache's own known_hosts file.
    fn ssh_command(&self, key: Option<&Path>) -> String {
        let mut c = format!(
            "{} -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=accept-new \
             -o UserKnownHostsFile={} -o ConnectTimeout=30 -o ServerAliveInterval=15",
            shell_quote(&self.ssh),
            shell_quote(&self.known_hosts)
        );
        if let Some(k) = key {
            c.push_str(" -o IdentitiesOnly=yes -i ");
            c.push_str(&shell_quote(k));
        }
        c
    }

    /// Prepares `creds` (or, when `creds` is [`Credentials::None`], credentials embedded in an
    /// http(s) URL) for git processes talking to `url`.
    pub(crate) fn auth(&self, url: &RepoUrl, creds: &Credentials) -> Result<Auth> {
        let basic = match creds {
            Credentials::Basic { username, password } => Some((username.clone(), password.clone())),
            Credentials::None => url.embedded.clone(),
            Credentials::SshKey { .. } => None,
        };
        if let Some((username, password)) = basic {
            if username.contains(['\n', '\r', '\0']) || password.contains(['\n', '\r', '\0']) {
                return Err(GitError::InvalidArgument {
                    what: "credentials",
                    reason: "username or password contains a line break or NUL".into(),
                });
            }
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{password}").as_bytes());
            let mut secrets = vec![password.clone()];
            // Also scrub the forms a password takes inside a URL and in the header.
            secrets.push(percent_encode(&password));
            secrets.push(basic.clone());
            return Ok(Auth {
                config: vec![CREDENTIAL_HELPER],
                env: vec![
                    ("HAUL_GIT_USERNAME", username),
                    ("HAUL_GIT_PASSWORD", password),
                    // Sent with the first request to this repository's URL (git's config from
                    // the environment, so not on argv): no 401 round trip and no helper
                    // process per fetch or push. Other URLs (a redirect elsewhere) get none;
                    // they, and a rejected header, fall back to the helper.
                    ("GIT_CONFIG_COUNT", "1".into()),
                    (
                        "GIT_CONFIG_KEY_0",
                        format!("http.{}.extraHeader", url.remote),
                    ),
                    (
                        "GIT_CONFIG_VALUE_0",
                        format!("Authorization: Basic {basic}"),
                    ),
                ],
                secrets,
                _key_dir: None,
            });
        }
        if let Credentials::SshKey { private_key } = creds {
            let dir = tempfile::Builder::new()
                .prefix("haul-ssh-")
                .tempdir()
                .map_err(GitError::io("creating a temp dir for the SSH key"))?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(GitError::io("restricting the SSH key dir"))?;
            let key_path = dir.path().join("id");
            let mut opts = std::fs::OpenOptions::new();
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .write(true)
                .create_new(true)
                .open(&key_path)
                .map_err(GitError::io("writing the SSH key"))?;
            let mut key = private_key.replace("\r\n", "\n");
            if !key.ends_with('\n') {
                // OpenSSH rejects a key file without the final newline.
                key.push('\n');
            }
            f.write_all(key.as_bytes())
                .map_err(GitError::io("writing the SSH key"))?;
            return Ok(Auth {
                config: Vec::new(),
                env: vec![("GIT_SSH_COMMAND", self.ssh_command(Some(&key_path)))],
                secrets: Vec::new(),
                _key_dir: Some(dir),
            });
        }
        Ok(Auth::none())
    }

    /// A git command for operation `op` on `repo_url` (used in errors), run in `cwd`.
    pub(crate) fn cmd<'a>(&'a self, op: &'static str, repo_url: &'a str, cwd: &Path) -> Cmd<'a> {
        Cmd {
            runner: self,
            op,
            repo_url,
            cwd: cwd.to_path_buf(),
            git_dir: None,
            args: Vec::new(),
            env: Vec::new(),
            auth: None,
            config: Vec::new(),
        }
    }
}

/// Minimal percent-encoding of everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a finished git process produced.
#[derive(Debug)]
pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == 0
    }
}

/// One git invocation being built.
pub(crate) struct Cmd<'a> {
    runner: &'a Runner,
    op: &'static str,
    repo_url: &'a str,
    cwd: PathBuf,
    git_dir: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    auth: Option<&'a Auth>,
    /// `-c` settings given after [`BASE_CONFIG`], so they override it (signing).
    config: Vec<String>,
}

/// Kills a process group on drop unless disarmed: a timed-out or cancelled git takes its
/// children (git-remote-https, ssh) with it.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.filter(|p| *p > 0) {
            // SAFETY: kill(2) with a negative pid signals the process group we created for this
            // child (process_group(0) makes the child's pid its pgid); no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl<'a> Cmd<'a> {
    pub(crate) fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub(crate) fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Runs against this git dir (a bare repository) instead of discovering one from `cwd`.
    pub(crate) fn git_dir(mut self, dir: &Path) -> Self {
        self.git_dir = Some(dir.to_path_buf());
        self
    }

    /// Signs the commits or tags this command makes with `signer`'s key.
    pub(crate) fn sign(mut self, signer: Option<&super::signing::Signer>) -> Self {
        if let Some(s) = signer {
            self.config.extend(s.config.iter().cloned());
            for (k, v) in &s.env {
                self.env
                    .push((OsString::from(k), v.as_os_str().to_os_string()));
            }
        }
        self
    }

    /// Lets this command talk to the remote with these credentials.
    pub(crate) fn auth(mut self, auth: &'a Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    fn scrub(&self, text: &str) -> String {
        let mut t = scrub_userinfo(text);
        if let Some(auth) = self.auth {
            for s in auth.secrets.iter().filter(|s| s.len() >= 4) {
                t = t.replace(s.as_str(), "***");
            }
        }
        t
    }

    /// Runs the command; a non-zero exit is not an error here.
    pub(crate) async fn output(self) -> Result<Output> {
        let r = self.runner;
        let mut c = tokio::process::Command::new(&r.git);
        c.env_clear();
        for k in PASS_THROUGH_ENV {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        let file_allow = if r.allow_file { "always" } else { "never" };
        c.env("HOME", &r.home)
            .env("XDG_CONFIG_HOME", r.home.join(".config"))
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_HTTP_LOW_SPEED_LIMIT", "1024")
            .env("GIT_HTTP_LOW_SPEED_TIME", "30")
            .env(
                "GIT_CEILING_DIRECTORIES",
                r.home.parent().unwrap_or(&r.home),
            )
            .env("GIT_SSH_COMMAND", r.ssh_command(None))
            .env("GIT_SSH_VARIANT", "ssh");
        if let Some(d) = &self.git_dir {
            c.env("GIT_DIR", d);
        }
        for a in BASE_CONFIG {
            c.arg("-c").arg(a);
        }
        c.arg("-c").arg(format!("protocol.file.allow={file_allow}"));
        for a in &self.config {
            c.arg("-c").arg(a);
        }
        if let Some(auth) = self.auth {
            for a in &auth.config {
                c.arg("-c").arg(a);
            }
            for (k, v) in &auth.env {
                c.env(k, v);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.args(&self.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);

        let printable: Vec<String> = self
            .args
            .iter()
            .map(|a| self.scrub(&a.to_string_lossy()))
            .collect();
        let _permit = r.procs.acquire().await.map_err(|_| GitError::Io {
            op: "waiting for a git process slot",
            source: std::io::Error::other("semaphore closed"),
        })?;
        let started = Instant::now();
        let child = c.spawn().map_err(GitError::io("spawning git"))?;
        let mut guard = GroupKill(child.id().and_then(|p| i32::try_from(p).ok()));
        let res = tokio::time::timeout(r.timeout, child.wait_with_output()).await;
        let out = match res {
            Ok(Ok(out)) => {
                guard.0 = None;
                out
            }
            Ok(Err(e)) => return Err(GitError::io("waiting for git")(e)),
            Err(_) => {
                tracing::warn!(op = self.op, repo = self.repo_url, args = ?printable,
                    timeout = ?r.timeout, "git command timed out; killing it");
                return Err(GitError::Timeout {
                    repo_url: self.repo_url.to_string(),
                    op: self.op,
                    after: r.timeout,
                });
            }
        };
        drop(guard);
        let code = out.status.code().unwrap_or(-1);
        let output = Output {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: self.scrub(&String::from_utf8_lossy(&out.stderr)),
        };
        tracing::debug!(op = self.op, repo = self.repo_url, args = ?printable, code,
            elapsed_ms = started.elapsed().as_millis() as u64, "git");
        Ok(output)
    }

    /// Runs the command and turns a non-zero exit into a classified error.
    pub(crate) async fn ok(self) -> Result<Output> {
        let repo_url = self.repo_url;
        let op = self.op;
        let out = self.output().await?;
        if out.success() {
            Ok(out)
        } else {
            Err(classify(repo_url, op, out.code, &out.stderr))
        }
    }

    /// Runs the command and returns its trimmed stdout.
    pub(crate) async fn read(self) -> Result<String> {
        Ok(self.ok().await?.stdout.trim().to_string())
    }
}
