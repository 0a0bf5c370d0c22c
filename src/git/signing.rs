//! Signed commits and tags: a GPG or SSH private key (Kargo's `author.signingKey`, ClusterConfig
//! `gitClient.signingKeySecret`) made usable by git for one operation.
//!
//! The key is written 0600 into a private temp dir (removed on drop). A GPG key is imported into
//! a GNUPGHOME inside that dir, never the operator's keyring; an SSH key is used in place by
//! `ssh-keygen -Y sign` (git's `gpg.format=ssh`). Before git sees the key, a test signature is
//! made, so a key that is garbage, passphrase-protected or expired fails with a message naming
//! where the key came from, before anything is committed. Key material never appears in an
//! error, a log line or a command line.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::error::{GitError, Result};

/// How long key preparation (import, test signature) may take.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// A private key that signs commits and tags, with where it came from (for error messages).
/// `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    material: String,
    source: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("source", &self.source)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// What kind of key a [`SigningKey`] holds, told from its material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An armored OpenPGP private key (`gpg.format=openpgp`).
    Gpg,
    /// An OpenSSH or PEM private key (`gpg.format=ssh`).
    Ssh,
}

impl SigningKey {
    /// `material` is the raw key; `source` names where it came from (e.g.
    /// `config.author.signingKey`), never the key itself.
    pub fn new(material: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            material: material.into().replace("\r\n", "\n"),
            source: source.into(),
        }
    }

    /// Where the key came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The key's kind, from its armor header.
    pub fn kind(&self) -> Result<KeyKind> {
        kind_of(&self.material).map_err(|reason| self.unusable(reason))
    }

    fn unusable(&self, reason: impl Into<String>) -> GitError {
        GitError::SigningKey {
            source_name: self.source.clone(),
            reason: reason.into(),
        }
    }
}

/// Tells the key kind from the first armor line (pure, so it is unit-tested without tools).
pub fn kind_of(material: &str) -> std::result::Result<KeyKind, &'static str> {
    let first = material
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    match first {
        "-----BEGIN PGP PRIVATE KEY BLOCK-----" => Ok(KeyKind::Gpg),
        "-----BEGIN OPENSSH PRIVATE KEY-----"
        | "-----BEGIN RSA PRIVATE KEY-----"
        | "-----BEGIN EC PRIVATE KEY-----"
        | "-----BEGIN PRIVATE KEY-----" => Ok(KeyKind::Ssh),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----" => {
            Err("it is a PGP public key; a private key is needed to sign")
        }
        "" => Err("it is empty"),
        _ => Err(
            "it is neither an armored PGP private key nor an OpenSSH private key \
             (expected a -----BEGIN PGP PRIVATE KEY BLOCK----- or \
             -----BEGIN OPENSSH PRIVATE KEY----- header)",
        ),
    }
}

/// A key ready for git: `-c` settings and environment for the signing git process. Removes
/// its temp dir (and stops the GPG agent it started) on drop.
pub(crate) struct Signer {
    pub(crate) config: Vec<String>,
    pub(crate) env: Vec<(&'static str, PathBuf)>,
    gnupg_home: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Signer {
    fn drop(&mut self) {
        // The agent would otherwise linger until it notices its socket is gone. Synchronous,
        // but gpgconf returns within milliseconds.
        if let Some(home) = &self.gnupg_home {
            let _ = std::process::Command::new("gpgconf")
                .args(["--kill", "gpg-agent"])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("GNUPGHOME", home)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Writes `content` to a new 0600 file.
fn write_private(path: &Path, content: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(GitError::io("writing the signing key"))?;
    let mut content = content.to_string();
    if !content.ends_with('\n') {
        // OpenSSH rejects a key file without the final newline.
        content.push('\n');
    }
    f.write_all(content.as_bytes())
        .map_err(GitError::io("writing the signing key"))
}

fn private_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(GitError::io("creating a temp dir for the signing key"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(GitError::io("restricting the signing key dir"))?;
    Ok(dir)
}

/// A finished helper process (gpg, ssh-keygen).
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs a helper with a scrubbed environment, `stdin` fed in, and a timeout.
async fn run(
    program: &str,
    args: &[&OsString],
    env: &[(&str, &Path)],
    stdin: &[u8],
) -> Result<Ran> {
    let mut c = tokio::process::Command::new(program);
    c.env_clear();
    for k in ["PATH", "TMPDIR"] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.env("LC_ALL", "C");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().map_err(|source| GitError::Io {
        op: if program == "gpg" {
            "running gpg (is gnupg installed?)"
        } else {
            "running ssh-keygen (is openssh-client installed?)"
        },
        source,
    })?;
    if let Some(mut i) = child.stdin.take() {
        // A helper that exits early closes its stdin; its exit status tells what happened.
        let _ = i.write_all(stdin).await;
    }
    let out = tokio::time::timeout(PREPARE_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| GitError::Io {
            op: "preparing the signing key",
            source: std::io::Error::other(format!("{program} timed out")),
        })?
        .map_err(GitError::io("waiting for the signing key tool"))?;
    Ok(Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The last `gpg:`/tool message line, for a reason. Tools never echo key material.
fn tool_reason(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no detail")
        .chars()
        .take(200)
        .collect()
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl SigningKey {
    /// Checks the key and makes it usable by git (see the module docs).
    pub(crate) async fn prepare(&self) -> Result<Signer> {
        match self.kind()? {
            KeyKind::Gpg => self.prepare_gpg().await,
            KeyKind::Ssh => self.prepare_ssh().await,
        }
    }

    async fn prepare_gpg(&self) -> Result<Signer> {
        let dir = private_dir("haul-gpg-")?;
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).map_err(GitError::io("creating GNUPGHOME"))?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
            .map_err(GitError::io("restricting GNUPGHOME"))?;
        let key_file = dir.path().join("signing-key.asc");
        write_private(&key_file, &self.material)?;
        let mut signer = Signer {
            config: Vec::new(),
            env: vec![("GNUPGHOME", home.clone())],
            gnupg_home: Some(home.clone()),
            _dir: dir,
        };
        let env = [("GNUPGHOME", home.as_path())];
        let import = os(&["--batch", "--no-tty", "--import"]);
        let key_arg = key_file.as_os_str().to_os_string();
        let mut args: Vec<&OsString> = import.iter().collect();
        args.push(&key_arg);
        let imported = run("gpg", &args, &env, b"").await?;
        // The key file is not needed once imported.
        let _ = std::fs::remove_file(&key_file);
        if !imported.ok {
            return Err(self.unusable(format!(
                "gpg cannot import it: {}",
                tool_reason(&imported.stderr)
            )));
        }
        let list = os(&[
            "--batch",
            "--no-tty",
            "--with-colons",
            "--fixed-list-mode",
            "--list-secret-keys",
        ]);
        let listed = run("gpg", &list.iter().collect::<Vec<_>>(), &env, b"").await?;
        let key = secret_key_of(&listed.stdout).ok_or_else(|| {
            self.unusable("gpg imported no secret key from it (is it a public key?)")
        })?;
        if let Some(problem) = key.problem(now_unix()) {
            return Err(self.unusable(problem));
        }
        // A test signature without any passphrase: a protected key fails here rather than
        // when git, which cannot answer a prompt, signs.
        let test = os(&[
            "--batch",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--local-user",
            &key.fingerprint,
            "--detach-sign",
            "--output",
            "-",
        ]);
        let signed = run("gpg", &test.iter().collect::<Vec<_>>(), &env, b"haul").await?;
        if !signed.ok {
            let detail = tool_reason(&signed.stderr);
            let reason = if detail.to_ascii_lowercase().contains("passphrase") {
                "it is protected by a passphrase; haul signs without one".to_string()
            } else {
                format!("gpg cannot sign with it: {detail}")
            };
            return Err(self.unusable(reason));
        }
        tracing::debug!(source = %self.source, fingerprint = %key.fingerprint, "GPG signing key ready");
        signer.config = vec![
            "gpg.format=openpgp".into(),
            format!("user.signingKey={}", key.fingerprint),
            "commit.gpgSign=true".into(),
            "tag.gpgSign=true".into(),
        ];
        Ok(signer)
    }

    async fn prepare_ssh(&self) -> Result<Signer> {
        let dir = private_dir("haul-sshsig-")?;
        let key_file = dir.path().join("signing-key");
        write_private(&key_file, &self.material)?;
        // `-y` derives the public key; with an empty passphrase it fails on a protected key.
        let args = os(&["-y", "-P", "", "-f"]);
        let key_arg = key_file.as_os_str().to_os_string();
        let mut argv: Vec<&OsString> = args.iter().collect();
        argv.push(&key_arg);
        let derived = run("ssh-keygen", &argv, &[], b"").await?;
        if !derived.ok {
            let detail = tool_reason(&derived.stderr);
            let reason = if detail.contains("passphrase") {
                "it is protected by a passphrase; haul signs without one".to_string()
            } else {
                format!("ssh-keygen cannot read it: {detail}")
            };
            return Err(self.unusable(reason));
        }
        tracing::debug!(source = %self.source, "SSH signing key ready");
        Ok(Signer {
            config: vec![
                "gpg.format=ssh".into(),
                format!("user.signingKey={}", key_file.display()),
                "commit.gpgSign=true".into(),
                "tag.gpgSign=true".into(),
            ],
            env: Vec::new(),
            gnupg_home: None,
            _dir: dir,
        })
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The primary secret key of a `--with-colons --list-secret-keys` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretKey {
    pub fingerprint: String,
    validity: String,
    expires: Option<i64>,
}

impl SecretKey {
    /// Why the key cannot sign, if it cannot (expired or revoked).
    fn problem(&self, now: i64) -> Option<String> {
        if self.validity == "r" {
            return Some("the key is revoked".into());
        }
        if self.validity == "e" || self.expires.is_some_and(|e| e <= now) {
            return Some("the key has expired".into());
        }
        None
    }
}

/// Parses the first `sec` record and the fingerprint (`fpr`) that follows it.
pub(crate) fn secret_key_of(colons: &str) -> Option<SecretKey> {
    let mut sec: Option<(String, Option<i64>)> = None;
    for line in colons.lines() {
        let f: Vec<&str> = line.split(':').collect();
        match f.first().copied() {
            Some("sec") if sec.is_none() => {
                let validity = f.get(1).copied().unwrap_or_default().to_string();
                let expires = f.get(6).and_then(|s| s.parse::<i64>().ok());
                sec = Some((validity, expires));
            }
            Some("fpr") if sec.is_some() => {
                let (validity, expires) = sec?;
                let fingerprint = f.get(9).copied().unwrap_or_default().to_string();
                return (!fingerprint.is_empty()).then_some(SecretKey {
                    fingerprint,
                    validity,
                    expires,
                });
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kind_is_told_from_the_armor() {
        assert_eq!(
            kind_of("\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n..."),
            Ok(KeyKind::Gpg)
        );
        assert_eq!(
            kind_of("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn..."),
            Ok(KeyKind::Ssh)
        );
        assert_eq!(
            kind_of("-----BEGIN RSA PRIVATE KEY-----\n"),
            Ok(KeyKind::Ssh)
        );
        assert!(kind_of("-----BEGIN PGP PUBLIC KEY BLOCK-----").is_err());
        assert!(kind_of("").is_err());
        assert!(kind_of("not a key").is_err());
    }

    #[test]
    fn errors_name_the_source_never_the_key() {
        let k = SigningKey::new("garbage-SECRET-material", "config.author.signingKey");
        let e = k.kind().expect_err("garbage").to_string();
        assert!(e.contains("config.author.signingKey"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        assert!(!format!("{k:?}").contains("SECRET"));
    }

    #[test]
    fn colon_listing_gives_fingerprint_and_expiry() {
        let listing = "sec:u:255:22:C984DEC578866F8A:1773322865:1773409265::u:::scESC:::+:::23::0:\n\
                       fpr:::::::::27CDB28C1429C96E91CBAE09C984DEC578866F8A:\n\
                       uid:u::::1773322865::F2E7::Test <t@example.com>::::::::::0:\n";
        let k = secret_key_of(listing).expect("parsed");
        assert_eq!(k.fingerprint, "27CDB28C1429C96E91CBAE09C984DEC578866F8A");
        assert_eq!(k.problem(1773322866), None);
        assert_eq!(
            k.problem(1773409266).as_deref(),
            Some("the key has expired")
        );
        let expired = listing.replacen("sec:u:", "sec:e:", 1);
        assert!(
            secret_key_of(&expired)
                .expect("parsed")
                .problem(0)
                .is_some()
        );
        assert_eq!(secret_key_of("pub:u:255:22:AB:1::::\n"), None);
    }
}
