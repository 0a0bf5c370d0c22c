//! Errors of the git layer. Every variant names the repository URL (never with credentials) and,
//! where it matters, the operation, so a Promotion's status message is actionable on its own.

use std::path::PathBuf;
use std::time::Duration;

/// Result of git operations.
pub type Result<T, E = GitError> = std::result::Result<T, E>;

/// What went wrong talking to a git repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A signing key cannot be used (garbage, a public key, passphrase-protected, expired).
    /// Names where the key came from, never the key.
    #[error("the signing key from {source_name} cannot be used: {reason}")]
    SigningKey { source_name: String, reason: String },

    /// The server refused the credentials (HTTP 401/403, SSH publickey) or none were given.
    #[error(
        "authentication to git repository {repo_url} failed during {op}: check the Secret \
         labelled `kargo.akuity.io/cred-type: git` whose repoURL matches this URL (username, \
         password/token or SSH private key)"
    )]
    Auth { repo_url: String, op: &'static str },

    /// The repository does not exist (or the credentials cannot see it).
    #[error("git repository {repo_url} not found during {op}")]
    RepoNotFound { repo_url: String, op: &'static str },

    /// The branch does not exist on the remote.
    #[error("branch {branch:?} not found in git repository {repo_url}")]
    BranchNotFound { repo_url: String, branch: String },

    /// A tag or commit does not exist on the remote.
    #[error("{kind} {reference:?} not found in git repository {repo_url}")]
    RefNotFound {
        repo_url: String,
        kind: &'static str,
        reference: String,
    },

    /// The server could not be reached or the transfer broke off. Usually transient.
    #[error("network error talking to git repository {repo_url} during {op}: {detail}")]
    Network {
        repo_url: String,
        op: &'static str,
        detail: String,
    },

    /// A git process ran longer than the configured limit and was killed.
    #[error("git {op} on {repo_url} timed out after {after:?}")]
    Timeout {
        repo_url: String,
        op: &'static str,
        after: Duration,
    },

    /// Rebasing local commits onto the new remote head conflicted. The rebase was aborted, the
    /// worktree is clean and back at the local commit, and nothing was pushed. Terminal.
    #[error(
        "pushing to branch {branch:?} of {repo_url}: rebasing onto the new remote head \
         conflicts in {}", .files.join(", ")
    )]
    RebaseConflict {
        repo_url: String,
        branch: String,
        files: Vec<String>,
    },

    /// Every push attempt was rejected as non-fast-forward (the branch kept moving).
    #[error(
        "push to branch {branch:?} of {repo_url} was still rejected (non-fast-forward) after \
         {attempts} attempts"
    )]
    PushRetriesExhausted {
        repo_url: String,
        branch: String,
        attempts: u32,
    },

    /// The server refused the push for another reason (protected branch, hook, permissions).
    #[error("push to branch {branch:?} of {repo_url} rejected by the server: {detail}")]
    PushRejected {
        repo_url: String,
        branch: String,
        detail: String,
    },

    /// The work path exists and is not a (stale) worktree of this repository's cache.
    #[error("work path {} already exists and is not a worktree of {repo_url}", .path.display())]
    WorkPathInUse { path: PathBuf, repo_url: String },

    /// The URL is not one haul accepts.
    #[error("invalid git URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A branch, tag, trailer or other argument is malformed.
    #[error("invalid {what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },

    /// Any other failure of a git command; `stderr` is scrubbed of credentials.
    #[error("git {op} on {repo_url} failed (exit status {status}): {stderr}")]
    Command {
        repo_url: String,
        op: &'static str,
        status: i32,
        stderr: String,
    },

    /// A local I/O error (spawning git, the cache directory, temp files).
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// Whether retrying the same operation cannot help (a Promotion step should then fail
    /// rather than error and retry): wrong credentials, missing repository or ref, a rebase
    /// conflict, a server-side rejection, invalid input.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            GitError::Auth { .. }
                | GitError::RepoNotFound { .. }
                | GitError::BranchNotFound { .. }
                | GitError::RefNotFound { .. }
                | GitError::RebaseConflict { .. }
                | GitError::PushRejected { .. }
                | GitError::WorkPathInUse { .. }
                | GitError::InvalidUrl { .. }
                | GitError::InvalidArgument { .. }
                | GitError::SigningKey { .. }
        )
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> GitError {
        move |source| GitError::Io { op, source }
    }
}

/// Maps a failed git command's stderr (run with `LC_ALL=C`) to an error.
pub(crate) fn classify(repo_url: &str, op: &'static str, status: i32, stderr: &str) -> GitError {
    let s = stderr.to_ascii_lowercase();
    let repo_url = repo_url.to_string();
    let has = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    if has(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "returned error: 401",
        "returned error: 403",
        "permission denied (publickey",
        "permission denied, please try again",
        "invalid username or password",
        "http basic: access denied",
    ]) {
        return GitError::Auth { repo_url, op };
    }
    if has(&[
        "repository not found",
        "does not appear to be a git repository",
        "returned error: 404",
        "not a git repository",
    ]) && !has(&["couldn't find remote ref"])
        || (s.contains("repository '") && s.contains("' not found"))
    {
        return GitError::RepoNotFound { repo_url, op };
    }
    if has(&[
        "could not resolve host",
        "failed to connect",
        "connection refused",
        "connection timed out",
        "connection reset",
        "operation too slow",
        "operation timed out",
        "early eof",
        "the remote end hung up unexpectedly",
        "rpc failed",
        "ssl",
        "tls",
        "network is unreachable",
        "no route to host",
        "returned error: 5",
        "returned error: 429",
        "could not read from remote repository",
    ]) {
        return GitError::Network {
            repo_url,
            op,
            detail: last_line(stderr),
        };
    }
    GitError::Command {
        repo_url,
        op,
        status,
        stderr: stderr.trim().to_string(),
    }
}

/// The last non-empty line of a message (git's most specific complaint).
pub(crate) fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}
