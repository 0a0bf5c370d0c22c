//! Signing keys made for a test (gpg and ssh-keygen, no passphrase unless asked) and
//! verification of signed commits and tags in a fresh clone, as a reviewer checks them.

use std::path::Path;
use std::process::{Command, Stdio};

use super::git;
use super::gitops::encoded_auth_url;

/// A key pair: the private key as haul is given it, the public key as a verifier has it.
pub struct KeyPair {
    pub private: String,
    pub public: String,
    pub email: String,
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect(what);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home).args(["--batch", "--no-tty"]);
    c
}

/// Stops the gpg-agent a keyring started, so the test leaves no process behind.
pub fn kill_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .status();
}

/// A fresh 0700 directory for a keyring (short path: gpg-agent's socket must fit).
fn keyring_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("hk-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    d
}

/// A GPG ed25519 signing key for `name <email>`, protected by `passphrase` when not empty,
/// expiring after `expire` (gpg's syntax: `never`, `seconds=1`).
pub fn gpg_key(name: &str, email: &str, passphrase: &str, expire: &str) -> KeyPair {
    let home = keyring_dir();
    let uid = format!("{name} <{email}>");
    run(
        gpg(home.path())
            .args(["--pinentry-mode", "loopback", "--passphrase", passphrase])
            .args(["--quick-gen-key", &uid, "ed25519", "sign", expire]),
        "gpg --quick-gen-key",
    );
    let private = run(
        gpg(home.path())
            .args(["--pinentry-mode", "loopback", "--passphrase", passphrase])
            .args(["--armor", "--export-secret-keys", email]),
        "gpg --export-secret-keys",
    );
    let public = run(
        gpg(home.path()).args(["--armor", "--export", email]),
        "gpg --export",
    );
    kill_agent(home.path());
    KeyPair {
        private,
        public,
        email: email.into(),
    }
}

/// An OpenSSH ed25519 key without passphrase.
pub fn ssh_key(email: &str) -> KeyPair {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("id");
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", email, "-f"])
            .arg(&path),
        "ssh-keygen",
    );
    KeyPair {
        private: std::fs::read_to_string(&path).expect("private key"),
        public: std::fs::read_to_string(path.with_extension("pub")).expect("public key"),
        email: email.into(),
    }
}

/// `key` as a YAML block scalar body, each line indented by `indent` spaces.
pub fn indented(key: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    key.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

/// A fresh clone of `url` (all branches and tags) and a verifier trusting `key`.
pub struct Verifier {
    pub clone: tempfile::TempDir,
    keyring: tempfile::TempDir,
    allowed_signers: std::path::PathBuf,
}

impl Verifier {
    pub fn new(url: &str, key: &KeyPair) -> Self {
        let clone = tempfile::tempdir().expect("tempdir");
        git(
            clone.path(),
            &["clone", "-q", "--no-checkout", &encoded_auth_url(url), "."],
        );
        git(clone.path(), &["fetch", "-q", "--tags", "origin"]);
        let keyring = keyring_dir();
        let allowed_signers = keyring.path().join("allowed_signers");
        if key.public.starts_with("-----BEGIN PGP") {
            let mut c = gpg(keyring.path());
            c.arg("--import").stdin(Stdio::piped());
            let mut child = c.spawn().expect("gpg --import");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(key.public.as_bytes())
                .expect("public key");
            assert!(child.wait().expect("gpg").success(), "import public key");
        } else {
            std::fs::write(
                &allowed_signers,
                format!("{} namespaces=\"git\" {}", key.email, key.public.trim()),
            )
            .expect("allowed signers");
        }
        Self {
            clone,
            keyring,
            allowed_signers,
        }
    }

    /// `git verify-commit` or `verify-tag` on `rev`: (passed, gpg/ssh output).
    pub fn verify(&self, what: &str, rev: &str) -> (bool, String) {
        let signers = format!(
            "gpg.ssh.allowedSignersFile={}",
            self.allowed_signers.display()
        );
        let out = Command::new("git")
            .current_dir(self.clone.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GNUPGHOME", self.keyring.path())
            .args(["-c", &signers, what, "-v", rev])
            .output()
            .expect("git verify");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs git in the clone.
    pub fn git(&self, args: &[&str]) -> String {
        git(self.clone.path(), args)
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        kill_agent(self.keyring.path());
    }
}
