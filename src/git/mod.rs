//! Git for promotions: a cache of repositories reused across promotions, worktrees checked out
//! from it, commits, and pushes that neither lose nor duplicate commits.
//!
//! # Why the git CLI (and not git2 or gix)
//!
//! haul drives the `git` binary through `tokio::process`, as Kargo does:
//!
//! * **Everything the promises need exists and is battle-tested there**: shallow fetch and
//!   `--deepen`, incremental fetch of one ref, `git worktree` (many checkouts sharing one object
//!   store), `rebase --onto` with conflict detection and `--abort`, `--porcelain` push status,
//!   commit trailers, partial clone (`--filter=blob:none`) and sparse checkout. git2 (libgit2)
//!   has no worktree-safe rebase integration of comparable maturity, no partial clone, and
//!   blocking calls that would need `spawn_blocking`; gix cannot push at all.
//! * **Isolation is simple**: each operation is a child process with a scrubbed environment
//!   (`GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`, a private `HOME`), a timeout that
//!   kills its whole process group, and a global cap on concurrent git processes (unbounded git
//!   children were a real failure mode for argocd-image-updater).
//! * **Credentials stay off argv and disk**: http(s) credentials are answered by an inline
//!   `credential.helper` that reads them from the git process's environment; SSH keys are written
//!   0600 to a private temp dir removed after the operation, with `GIT_SSH_COMMAND` using a
//!   cache-local known_hosts (`StrictHostKeyChecking=accept-new`). Remote URLs stored in the
//!   cache never carry userinfo.
//! * The cost: the runtime image needs `git` (≥ 2.32, for `commit --trailer`) and `openssh-client`.
//!
//! # Layout and concurrency
//!
//! [`RepoCache`] keeps one bare repository per [normalised](normalize_url) URL under
//! `<root>/repos/<hash>.git` (the hash of the URL, so nothing of the URL or its credentials is in
//! a path). A checkout fetches only the ref it needs (shallow with [`Checkout::depth`]) and adds a
//! `git worktree` on a local branch unique to that worktree (`haul-wt/<hash of path>/<branch>`,
//! because git refuses one branch in two worktrees) that tracks `origin/<branch>`.
//!
//! * Fetches and worktree add/remove on one cached repository are serialised by a process-wide
//!   async mutex per repository.
//! * Pushes to one (repository, branch) are serialised by a process-wide async mutex. A push
//!   rejected as non-fast-forward (someone outside this process pushed) is followed by a fetch,
//!   `rebase --onto` the new remote head and a retry with jittered exponential backoff
//!   ([`PushOptions::max_attempts`], default 10). A conflict aborts the rebase, leaves the
//!   worktree clean and returns [`GitError::RebaseConflict`] naming the files.
//! * The rebase replays exactly the commits made in the worktree (from a per-worktree
//!   `refs/worktree/haul/base` ref), so it works in shallow repositories.
//!
//! # No duplicate commits after a crash
//!
//! Commits made for a promotion carry a trailer `Haul-Promotion: <promotion name>`
//! ([`PROMOTION_TRAILER`], added with [`Worktree::commit_all_with_trailers`]). Before pushing a
//! commit with that trailer (and again after every fetch during retries), [`Worktree::push`]
//! looks for a commit with the same trailer in the recent history of the remote branch
//! ([`PushOptions::dedupe_search_depth`] commits, deepening a shallow history if needed). If one
//! is there, the promotion already pushed before it was interrupted: nothing is pushed, the
//! worktree is reset to the remote head and the earlier commit is reported with
//! [`PushOutcome::already_pushed`]. [`Worktree::find_commit_with_trailer`] exposes the same check
//! so a git-commit step can skip early. (A re-run that produces the same files simply finds
//! nothing to commit.)
//!
//! # Missing branches
//!
//! With [`Checkout::create_branch_if_missing`], a branch missing on the remote is created the way
//! Kargo does it: an orphan commit "Initial commit" with an empty tree is pushed (serialised with
//! other pushes to that branch; if someone else creates it first, theirs is used). An empty
//! root commit keeps environment branches free of unrelated history, which is what rendered-
//! manifest branches want; it is built with `commit-tree`, without a temporary worktree.

mod cache;
mod cmd;
mod error;
mod locks;
pub mod pull_requests;
mod signing;
mod tag;
pub mod timing;
mod url;
mod worktree;

#[cfg(test)]
pub(crate) mod tests;

use std::time::Duration;

pub use cache::{CacheStats, RepoCache, RepoCacheConfig};
pub use error::{GitError, Result};
pub use signing::{KeyKind, SigningKey, kind_of};
pub use tag::{TagOutcome, TagPushOutcome};
pub use url::normalize_url;
pub use worktree::{CommitSignature, Worktree};

/// The commit trailer that marks a commit as made by one promotion.
pub const PROMOTION_TRAILER: &str = "Haul-Promotion";

/// How to authenticate to a repository (from a `kargo.akuity.io/cred-type: git` Secret).
/// `Debug` never shows a password or key.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// HTTP(S) basic auth: a username and a password or token.
    Basic { username: String, password: String },
    /// An SSH private key (OpenSSH or PEM format) for `ssh://` and SCP-style URLs.
    SshKey { private_key: String },
    /// No credentials (public repositories, `file://` in tests). Credentials embedded in an
    /// http(s) URL are then used, but never stored.
    #[default]
    None,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::SshKey { .. } => f
                .debug_struct("SshKey")
                .field("private_key", &"<redacted>")
                .finish(),
            Credentials::None => f.write_str("None"),
        }
    }
}

/// How discovery talks to a repository (a Warehouse git subscription's `blobless` and
/// `insecureSkipTLSVerify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Skip TLS certificate verification (`http.sslVerify=false`) on this repository's
    /// commands only.
    pub skip_tls_verify: bool,
    /// Fetch into the cached partial clone (`--filter=blob:none`): discovery reads commits,
    /// never file contents.
    pub blobless: bool,
}

/// The author (and committer) of commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    /// Kargo's chart default is "Kargo" / no-reply@kargo.io; haul's is its own.
    fn default() -> Self {
        Self {
            name: "haul".into(),
            email: "no-reply@haul.invalid".into(),
        }
    }
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// A branch; the worktree is on a local branch tracking it and can be pushed.
    Branch(String),
    /// A tag; the worktree is detached (pushing needs [`PushOptions::target_branch`]).
    Tag(String),
    /// A full commit SHA; the worktree is detached.
    Commit(String),
}

/// A checkout request for [`RepoCache::checkout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub reference: GitRef,
    /// For [`GitRef::Branch`]: create the branch (an empty "Initial commit") when the remote
    /// lacks it, instead of failing with [`GitError::BranchNotFound`].
    pub create_branch_if_missing: bool,
    /// Fetch only this many commits of history (`git fetch --depth`). `None` fetches the full
    /// history (and un-shallows a cached repository that was fetched shallowly before).
    pub depth: Option<u32>,
    /// Author of the "Initial commit" of a created branch.
    pub author: Author,
    /// Directories to check out (git sparse-checkout, cone mode); empty checks out everything.
    /// On a large monorepo a promotion that edits one folder then writes only that folder.
    pub sparse: Vec<String>,
    /// Fetch without file contents (`--filter=blob:none`, a partial clone); git fetches the
    /// blobs a checkout needs on demand. Kept in a cached repository of its own, so other
    /// checkouts of the same URL never depend on lazy fetches.
    pub blobless: bool,
    /// Check out submodules too (`git submodule update --init --recursive`), fetched with the
    /// same credentials and TLS setting.
    pub recurse_submodules: bool,
    /// Skip TLS certificate verification (`http.sslVerify=false`) for this checkout's remote
    /// commands and for those of the worktree it makes (commit, push, tag), nothing else.
    pub skip_tls_verify: bool,
}

impl Checkout {
    pub fn branch(name: impl Into<String>) -> Self {
        Self::of(GitRef::Branch(name.into()))
    }
    pub fn tag(name: impl Into<String>) -> Self {
        Self::of(GitRef::Tag(name.into()))
    }
    pub fn commit(sha: impl Into<String>) -> Self {
        Self::of(GitRef::Commit(sha.into()))
    }
    fn of(reference: GitRef) -> Self {
        Self {
            reference,
            create_branch_if_missing: false,
            depth: None,
            author: Author::default(),
            sparse: Vec::new(),
            blobless: false,
            recurse_submodules: false,
            skip_tls_verify: false,
        }
    }
    /// Sets [`Checkout::sparse`].
    pub fn with_sparse(mut self, dirs: Vec<String>) -> Self {
        self.sparse = dirs;
        self
    }
    /// Sets [`Checkout::depth`].
    pub fn with_depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth.max(1));
        self
    }
    /// Sets [`Checkout::create_branch_if_missing`].
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_branch_if_missing = create;
        self
    }
}

/// What [`Worktree::commit_all`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A commit was made; its SHA.
    Committed(String),
    /// The worktree had no changes; the current HEAD.
    NothingToCommit(String),
}

impl CommitOutcome {
    /// The resulting HEAD either way (Kargo's git-commit `commit` output).
    pub fn sha(&self) -> &str {
        match self {
            CommitOutcome::Committed(s) | CommitOutcome::NothingToCommit(s) => s,
        }
    }
}

/// Retry delays: `base × factor^(n-1)`, capped, plus up to `jitter × delay` at random (Kargo:
/// 1 s × 1.5, cap 30 s, jitter 0.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub factor: f64,
    pub cap: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            factor: 1.5,
            cap: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.base.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let capped = raw.min(self.cap.as_secs_f64()).max(0.0);
        let jittered = capped * (1.0 + self.jitter.max(0.0) * fastrand::f64());
        Duration::try_from_secs_f64(jittered).unwrap_or(self.cap)
    }
}

/// Options of [`Worktree::push`].
#[derive(Debug, Clone, PartialEq)]
pub struct PushOptions {
    /// Push HEAD to this branch instead of the tracked one (required for detached worktrees).
    pub target_branch: Option<String>,
    /// Force-push (e.g. Kargo's generated `kargo/promotion/<name>` branches); no rebase, no
    /// duplicate check.
    pub force: bool,
    /// Attempts before giving up on non-fast-forward rejections (default 10).
    pub max_attempts: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// How many recent commits of the remote branch to search for this promotion's trailer
    /// (default 50).
    pub dedupe_search_depth: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            target_branch: None,
            force: false,
            max_attempts: 10,
            backoff: Backoff::default(),
            dedupe_search_depth: 50,
        }
    }
}

/// What [`Worktree::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The commit now at (or, if `already_pushed`, in) the remote branch for this change.
    pub commit: String,
    /// The remote branch pushed to.
    pub branch: String,
    /// A commit with the same `Haul-Promotion` trailer was already on the remote branch, so
    /// nothing was pushed and `commit` is that earlier commit.
    pub already_pushed: bool,
    /// Push attempts made (1 when the first push went through).
    pub attempts: u32,
}
