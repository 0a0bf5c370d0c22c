//! A checked-out worktree: commit, push with rebase-and-retry, duplicate detection.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::cache::{Depth, RepoCache, validate_ref_name};
use super::cmd::{Auth, Cmd};
use super::error::{GitError, Result, classify, last_line};
use super::signing::{Signer, SigningKey};
use super::url::RepoUrl;
use super::{
    Author, CommitOutcome, Credentials, PROMOTION_TRAILER, PushOptions, PushOutcome, locks,
};

mod api_push;
mod group_push;
pub use api_push::CommitSignature;
#[cfg(test)]
pub(crate) use group_push::queued;

/// Per-worktree ref holding the remote commit the worktree's own commits sit on: the
/// checkout, then each remote head rebased onto or pushed. `rebase --onto <new> <base>`
/// replays exactly `base..HEAD`, which needs no merge base (shallow histories have none).
pub(crate) const BASE_REF: &str = "refs/worktree/haul/base";

/// Record and field separators for `git log` output.
const RS: char = '\u{1e}';
const US: char = '\u{1f}';

/// A `git worktree` of a cached repository, at a path inside a promotion's work dir.
pub struct Worktree {
    pub(crate) cache: RepoCache,
    pub(crate) url: RepoUrl,
    pub(crate) repo_dir: PathBuf,
    pub(crate) path: PathBuf,
    /// The remote branch the worktree tracks (`None` when detached at a tag or commit).
    pub(crate) branch: Option<String>,
    pub(crate) local_branch: Option<String>,
    /// Its remote commands skip TLS verification (checked out with
    /// [`Checkout::skip_tls_verify`](super::Checkout::skip_tls_verify)).
    pub(crate) skip_tls_verify: bool,
}

/// Marks a worktree whose remote commands skip TLS verification, in its private git dir, so
/// a later step (or a resumed promotion) reopening it by path keeps the setting.
const SKIP_TLS_MARKER: &str = "haul-skip-tls-verify";

/// The worktree's private git dir (`.git` is a file `gitdir: <dir>`).
fn admin_dir(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path.join(".git")).ok()?;
    let dir = PathBuf::from(text.trim().strip_prefix("gitdir:")?.trim());
    Some(if dir.is_absolute() {
        dir
    } else {
        path.join(dir)
    })
}

/// Whether the worktree at `path` was marked with [`mark_skip_tls_verify`].
pub(crate) fn skips_tls_verify(path: &Path) -> bool {
    admin_dir(path).is_some_and(|d| d.join(SKIP_TLS_MARKER).is_file())
}

/// Records (or clears) that the worktree at `path` skips TLS verification.
pub(crate) fn mark_skip_tls_verify(path: &Path, skip: bool) -> Result<()> {
    let Some(dir) = admin_dir(path) else {
        return Err(GitError::io("finding the worktree's git dir")(
            std::io::Error::other(format!("{} has no .git file", path.display())),
        ));
    };
    let marker = dir.join(SKIP_TLS_MARKER);
    let r = if skip {
        std::fs::write(&marker, "")
    } else {
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    r.map_err(GitError::io("marking the worktree's TLS setting"))
}

impl std::fmt::Debug for Worktree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worktree")
            .field("repo_url", &self.url.remote)
            .field("path", &self.path)
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

/// The signing keys recorded for one worktree.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorktreeKeys {
    /// The worktree's key (git-clone's author, else the default author's): tags, and commits
    /// that name none.
    default: Option<SigningKey>,
    /// The key of the last signed commit, to sign it again when a push rebases it.
    commit: Option<SigningKey>,
    /// The worktree's user (git-clone's author): commits and tags that name none.
    author: Option<Author>,
}

enum PushAttempt {
    Pushed,
    NonFastForward,
}

impl Worktree {
    /// The worktree directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The repository URL (without credentials).
    pub fn repo_url(&self) -> &str {
        &self.url.remote
    }

    /// The remote branch this worktree tracks, if it was checked out from a branch.
    pub fn branch(&self) -> Option<&str> {
        self.branch.as_deref()
    }

    /// A git command run in this worktree. `GIT_DIR`/`GIT_WORK_TREE` are explicit, so a deleted
    /// `.git` file can never make git operate on an enclosing repository.
    pub(crate) fn cmd(&self, op: &'static str) -> Cmd<'_> {
        self.cache
            .runner()
            .cmd(op, &self.url.remote, &self.path)
            .env("GIT_DIR", self.path.join(".git"))
            .env("GIT_WORK_TREE", &self.path)
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, WorktreeKeys>> {
        self.cache
            .inner()
            .signing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `key` this worktree's signing key (Kargo's repository user): tags, and commits
    /// that name no key of their own, are signed with it. Kept in memory for the worktree's
    /// life; [`Worktree::remove`] forgets it.
    pub fn set_signing_key(&self, key: Option<SigningKey>) {
        self.keys().entry(self.path.clone()).or_default().default = key;
    }

    /// Makes `author` and `key` the worktree's user (Kargo's git-clone author), for the steps
    /// that commit or tag without naming one, replacing anything recorded for this path before
    /// (a worktree checked out again). In memory only.
    pub fn set_user(&self, author: Option<Author>, key: Option<SigningKey>) {
        self.keys().insert(
            self.path.clone(),
            WorktreeKeys {
                default: key,
                commit: None,
                author,
            },
        );
    }

    /// The author set with [`Worktree::set_author`], if any.
    pub fn author(&self) -> Option<Author> {
        self.keys().get(&self.path).and_then(|k| k.author.clone())
    }

    /// Whether [`Worktree::set_signing_key`] was called for this worktree in this process.
    pub fn signing_key_recorded(&self) -> bool {
        self.keys().get(&self.path).is_some()
    }

    /// The key set with [`Worktree::set_signing_key`], if any.
    pub fn signing_key(&self) -> Option<SigningKey> {
        self.keys().get(&self.path).and_then(|k| k.default.clone())
    }

    /// Checks `key` and prepares it for one git command (see `signing`).
    pub(crate) async fn signer(&self, key: Option<&SigningKey>) -> Result<Option<Signer>> {
        match key {
            Some(k) => Ok(Some(k.prepare().await?)),
            None => Ok(None),
        }
    }

    /// The commit checked out (full SHA).
    pub async fn head(&self) -> Result<String> {
        self.rev_parse("HEAD").await
    }

    async fn rev_parse(&self, rev: &str) -> Result<String> {
        self.cmd("rev-parse")
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{rev}^{{commit}}"))
            .read()
            .await
    }

    /// `Some(sha)` if `rev` names a commit.
    async fn try_rev_parse(&self, rev: &str) -> Result<Option<String>> {
        let out = self
            .cmd("rev-parse")
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{rev}^{{commit}}"))
            .output()
            .await?;
        Ok(out.success().then(|| out.stdout.trim().to_string()))
    }

    pub(crate) async fn set_base(&self, rev: &str) -> Result<()> {
        // update-ref resolves (and peels) the revision itself: one process.
        self.cmd("update-ref")
            .args(["update-ref", BASE_REF])
            .arg(format!("{rev}^{{commit}}"))
            .ok()
            .await?;
        Ok(())
    }

    /// Stages everything (`git add -A`) and commits it if anything changed.
    pub async fn commit_all(&self, message: &str, author: &Author) -> Result<CommitOutcome> {
        self.commit_all_with_trailers(message, author, &[]).await
    }

    /// Like [`Worktree::commit_all`], appending `Key: value` trailers to the message (e.g.
    /// `(PROMOTION_TRAILER, promotion_name)`, which [`Worktree::push`] uses to avoid pushing a
    /// promotion's change twice).
    pub async fn commit_all_with_trailers(
        &self,
        message: &str,
        author: &Author,
        trailers: &[(&str, &str)],
    ) -> Result<CommitOutcome> {
        let key = self.signing_key();
        self.commit_all_signed(message, author, trailers, key.as_ref())
            .await
    }

    /// Like [`Worktree::commit_all_with_trailers`], signed with `key` (unsigned with `None`).
    /// The key is checked before anything is staged, so an unusable key commits nothing.
    pub async fn commit_all_signed(
        &self,
        message: &str,
        author: &Author,
        trailers: &[(&str, &str)],
        key: Option<&SigningKey>,
    ) -> Result<CommitOutcome> {
        let key = key.cloned();
        let signer = self.signer(key.as_ref()).await?;
        if message.trim().is_empty() {
            return Err(GitError::InvalidArgument {
                what: "commit message",
                reason: "empty".into(),
            });
        }
        for (k, v) in trailers {
            validate_trailer(k, v)?;
        }
        self.cmd("add").args(["add", "--all"]).ok().await?;
        let diff = self
            .cmd("diff")
            .args(["diff", "--cached", "--quiet", "--exit-code"])
            .output()
            .await?;
        match diff.code {
            0 => return Ok(CommitOutcome::NothingToCommit(self.head().await?)),
            1 => {}
            c => return Err(classify(&self.url.remote, "diff", c, &diff.stderr)),
        }
        let mut msg =
            tempfile::NamedTempFile::new().map_err(GitError::io("writing the commit message"))?;
        msg.write_all(message.as_bytes())
            .map_err(GitError::io("writing the commit message"))?;
        let mut cmd = self
            .cmd("commit")
            .args(["commit", "--quiet", "--no-verify", "--cleanup=strip", "-F"])
            .arg(msg.path())
            .env("GIT_AUTHOR_NAME", &author.name)
            .env("GIT_AUTHOR_EMAIL", &author.email)
            .env("GIT_COMMITTER_NAME", &author.name)
            .env("GIT_COMMITTER_EMAIL", &author.email);
        for (k, v) in trailers {
            cmd = cmd.arg("--trailer").arg(format!("{k}: {v}"));
        }
        cmd.sign(signer.as_ref()).ok().await?;
        drop(signer);
        if key.is_some() {
            self.keys().entry(self.path.clone()).or_default().commit = key.clone();
        }
        let sha = self.head().await?;
        tracing::info!(repo = %self.url.remote, branch = ?self.branch, commit = %sha,
            signed_with = ?key.as_ref().map(SigningKey::source), "committed");
        Ok(CommitOutcome::Committed(sha))
    }

    /// Looks for a commit whose trailer `key` has `value` among the recent commits of the
    /// tracked remote branch (as of the last fetch; a shallow history is deepened to
    /// `dedupe_search_depth` of [`PushOptions::default`] commits). Returns its SHA.
    pub async fn find_commit_with_trailer(
        &self,
        creds: &Credentials,
        key: &str,
        value: &str,
    ) -> Result<Option<String>> {
        let branch = self
            .branch
            .clone()
            .ok_or_else(|| GitError::InvalidArgument {
                what: "worktree",
                reason: "detached worktree (checked out from a tag or commit) tracks no branch"
                    .into(),
            })?;
        validate_trailer(key, value)?;
        let auth = self.auth(creds)?;
        let depth = PushOptions::default().dedupe_search_depth;
        self.find_in_remote(&auth, &branch, key, value, depth).await
    }

    pub(crate) fn auth(&self, creds: &Credentials) -> Result<Auth> {
        Ok(self
            .cache
            .runner()
            .auth(&self.url, creds)?
            .skip_tls_verify(self.skip_tls_verify))
    }

    /// Checks out the worktree's submodules, recursively, with `creds` for every one of them.
    pub(crate) async fn update_submodules(&self, creds: &Credentials) -> Result<()> {
        let auth = self.auth(creds)?;
        self.cmd("submodule update")
            .auth(&auth)
            .args(["submodule", "update", "--init", "--recursive", "--quiet"])
            .ok()
            .await?;
        Ok(())
    }

    /// Searches `origin/<branch>` for the trailer, deepening a shallow history once if the
    /// visible history is shorter than `depth`.
    async fn find_in_remote(
        &self,
        auth: &Auth,
        branch: &str,
        key: &str,
        value: &str,
        depth: u32,
    ) -> Result<Option<String>> {
        let tracking = format!("refs/remotes/origin/{branch}");
        let exists = self.try_rev_parse(&tracking).await?.is_some();
        self.find_in_tracking(auth, branch, key, value, depth, exists)
            .await
    }

    /// [`Worktree::find_in_remote`] when the caller knows whether `origin/<branch>` exists.
    pub(crate) async fn find_in_tracking(
        &self,
        auth: &Auth,
        branch: &str,
        key: &str,
        value: &str,
        depth: u32,
        tracking_exists: bool,
    ) -> Result<Option<String>> {
        let tracking = format!("refs/remotes/origin/{branch}");
        if !tracking_exists {
            return Ok(None);
        }
        let (found, seen) = self.search_trailer(&tracking, key, value, depth).await?;
        if found.is_some() || seen >= depth as usize || !self.repo_dir.join("shallow").exists() {
            return Ok(found);
        }
        {
            let _g = locks::repo(&self.repo_dir.to_string_lossy()).await;
            let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
            let missing = u32::try_from(depth as usize - seen).unwrap_or(depth);
            self.cache
                .fetch(
                    &self.url,
                    &self.repo_dir,
                    auth,
                    &refspec,
                    Depth::Deepen(missing),
                )
                .await?;
        }
        Ok(self.search_trailer(&tracking, key, value, depth).await?.0)
    }

    /// `(matching commit, commits examined)` among the first `depth` commits of `rev`.
    async fn search_trailer(
        &self,
        rev: &str,
        key: &str,
        value: &str,
        depth: u32,
    ) -> Result<(Option<String>, usize)> {
        let out = self
            .cmd("log")
            .args(["log", &format!("--max-count={depth}")])
            .arg(format!(
                "--format=%H%x1f%(trailers:key={key},valueonly,unfold,separator=%x1f)%x1e"
            ))
            .arg(rev)
            .arg("--")
            .read()
            .await?;
        let mut seen = 0;
        for rec in out.split(RS).map(str::trim).filter(|r| !r.is_empty()) {
            seen += 1;
            let mut fields = rec.split(US);
            let sha = fields.next().unwrap_or_default();
            if fields.any(|v| v.trim() == value) {
                return Ok((Some(sha.to_string()), seen));
            }
        }
        Ok((None, seen))
    }

    /// The value of the [`PROMOTION_TRAILER`] of HEAD, if HEAD is not already part of
    /// `tracking`.
    async fn unpushed_promotion(&self, tracking: &str) -> Result<Option<String>> {
        // Exit 0: contained; 1: not; otherwise (128) `tracking` does not exist yet.
        let contained = self
            .cmd("merge-base")
            .args(["merge-base", "--is-ancestor", "HEAD", tracking])
            .output()
            .await?;
        if contained.success() {
            return Ok(None);
        }
        let v = self
            .cmd("log")
            .args(["log", "-1"])
            .arg(format!(
                "--format=%(trailers:key={PROMOTION_TRAILER},valueonly,unfold,separator=%x1f)"
            ))
            .arg("HEAD")
            .read()
            .await?;
        Ok(v.split(US)
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(str::to_string))
    }

    /// Pushes HEAD to the tracked branch (or [`PushOptions::target_branch`]).
    ///
    /// Pushes to one (repository, branch) are serialised within the process, and those that
    /// queue up meanwhile are pushed together (see `group_push`): each keeps its own commit, and
    /// the outcome names it. A non-fast-forward rejection is answered by fetching the branch,
    /// rebasing the worktrees' commits onto it and retrying, up to [`PushOptions::max_attempts`]
    /// attempts with backoff. If HEAD carries a [`PROMOTION_TRAILER`] that a recent commit of the
    /// remote branch also carries, nothing is pushed (see the module docs).
    pub async fn push(&mut self, creds: &Credentials, opts: &PushOptions) -> Result<PushOutcome> {
        let target = opts
            .target_branch
            .clone()
            .or_else(|| self.branch.clone())
            .ok_or_else(|| GitError::InvalidArgument {
                what: "push target",
                reason: "the worktree is detached; set PushOptions::target_branch".into(),
            })?;
        validate_ref_name("branch", &target)?;
        let auth = self.auth(creds)?;
        if opts.force {
            return self.force_push(&auth, &target).await;
        }
        drop(auth);
        // The whole wait: queue, dedupe check, rebase and the push round trip (the push
        // itself runs in the group's task).
        let started = std::time::Instant::now();
        let out = group_push::submit(self.handle(), target, creds.clone(), opts.clone()).await;
        super::timing::report("push", started.elapsed());
        out
    }

    /// Another handle on this worktree, for the task that pushes it with others.
    fn handle(&self) -> Worktree {
        Worktree {
            cache: self.cache.clone(),
            url: self.url.clone(),
            repo_dir: self.repo_dir.clone(),
            path: self.path.clone(),
            branch: self.branch.clone(),
            local_branch: self.local_branch.clone(),
            skip_tls_verify: self.skip_tls_verify,
        }
    }

    /// Force-pushes HEAD: no rebase, no duplicate check, never grouped with other pushes.
    async fn force_push(&self, auth: &Auth, target: &str) -> Result<PushOutcome> {
        let _branch_guard = locks::branch(&self.url.normalized, target).await;
        let pushed = {
            let _g = locks::repo(&self.repo_dir.to_string_lossy()).await;
            self.try_push(auth, target, true).await?
        };
        match pushed {
            PushAttempt::Pushed => {
                let commit = self.head().await?;
                self.set_base("HEAD").await?;
                tracing::info!(repo = %self.url.remote, branch = %target, %commit, "force-pushed");
                Ok(PushOutcome {
                    commit,
                    branch: target.to_string(),
                    already_pushed: false,
                    attempts: 1,
                })
            }
            // A forced push is never non-fast-forward; a rejection of it is the server's.
            PushAttempt::NonFastForward => Err(GitError::PushRejected {
                repo_url: self.url.remote.clone(),
                branch: target.to_string(),
                detail: "rejected".into(),
            }),
        }
    }

    /// The promotion `value`'s commit `sha` is already on the remote branch: moves the worktree
    /// onto the remote branch instead of pushing again.
    async fn settle_already_pushed(
        &self,
        auth: &Auth,
        tracking: &str,
        target: &str,
        sha: String,
        value: &str,
        attempts: u32,
    ) -> Result<PushOutcome> {
        // With auth: in a partial clone, checking out fetches blobs.
        self.cmd("reset")
            .auth(auth)
            .args(["reset", "--quiet", "--hard", tracking])
            .ok()
            .await?;
        self.set_base("HEAD").await?;
        tracing::info!(repo = %self.url.remote, branch = %target, commit = %sha,
            promotion = %value, "promotion's commit already on the remote branch; not pushing again");
        Ok(PushOutcome {
            commit: sha,
            branch: target.to_string(),
            already_pushed: true,
            attempts,
        })
    }

    async fn try_push(&self, auth: &Auth, target: &str, force: bool) -> Result<PushAttempt> {
        let mut cmd = self
            .cmd("push")
            .auth(auth)
            .args(["push", "--porcelain", "--no-verify"]);
        if force {
            cmd = cmd.arg("--force");
        }
        let out = cmd
            .arg("origin")
            .arg(format!("HEAD:refs/heads/{target}"))
            .output()
            .await?;
        if out.success() {
            return Ok(PushAttempt::Pushed);
        }
        let status_line = out
            .stdout
            .lines()
            .find(|l| l.starts_with('!'))
            .unwrap_or_default();
        if status_line.contains("[rejected]")
            && [
                "non-fast-forward",
                "fetch first",
                "stale info",
                "already exists",
            ]
            .iter()
            .any(|r| status_line.contains(r))
        {
            return Ok(PushAttempt::NonFastForward);
        }
        if status_line.contains("[remote rejected]") || status_line.contains("[rejected]") {
            return Err(GitError::PushRejected {
                repo_url: self.url.remote.clone(),
                branch: target.to_string(),
                detail: last_line(status_line),
            });
        }
        Err(classify(&self.url.remote, "push", out.code, &out.stderr))
    }

    /// Replays this worktree's commits (`base..HEAD`) onto `onto_ref`. On conflict the rebase is
    /// aborted and the files are reported.
    /// `auth`: in a partial clone, the rebase fetches the blobs it merges.
    async fn rebase_onto(&self, auth: &Auth, onto_ref: &str, target: &str) -> Result<()> {
        let is_sha =
            matches!(onto_ref.len(), 40 | 64) && onto_ref.bytes().all(|b| b.is_ascii_hexdigit());
        let onto = if is_sha {
            onto_ref.to_string()
        } else {
            self.rev_parse(onto_ref).await?
        };
        let base = match self.try_rev_parse(BASE_REF).await? {
            Some(b) => b,
            None => {
                self.cmd("merge-base")
                    .args(["merge-base", "HEAD", &onto])
                    .read()
                    .await?
            }
        };
        if base == onto {
            return Ok(());
        }
        let committer = self
            .cmd("log")
            .args(["log", "-1", "--format=%cn%x1f%ce", "HEAD"])
            .read()
            .await?;
        let (name, email) = committer.split_once(US).unwrap_or(("haul", ""));
        // Replayed commits are new commits: sign them as the originals were.
        let key = self
            .keys()
            .get(&self.path)
            .and_then(|k| k.commit.clone().or_else(|| k.default.clone()));
        let signer = self.signer(key.as_ref()).await?;
        let out = self
            .cmd("rebase")
            .auth(auth)
            .args([
                "rebase",
                "--quiet",
                "--no-autostash",
                "--onto",
                &onto,
                &base,
            ])
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email)
            .sign(signer.as_ref())
            .output()
            .await?;
        drop(signer);
        if out.success() {
            self.set_base(&onto).await?;
            tracing::debug!(repo = %self.url.remote, branch = target, %onto, "rebased");
            return Ok(());
        }
        let files = self
            .cmd("diff")
            .args(["diff", "--name-only", "--diff-filter=U"])
            .output()
            .await?
            .stdout;
        let in_progress = self
            .cmd("rev-parse")
            .args(["rev-parse", "--git-path", "rebase-merge"])
            .read()
            .await
            .map(|p| {
                let p = PathBuf::from(p);
                let p = if p.is_absolute() {
                    p
                } else {
                    self.path.join(p)
                };
                p.exists()
            })
            .unwrap_or(true);
        if in_progress {
            self.cmd("rebase").args(["rebase", "--abort"]).ok().await?;
        }
        let files: Vec<String> = files
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if files.is_empty() {
            return Err(classify(&self.url.remote, "rebase", out.code, &out.stderr));
        }
        tracing::warn!(repo = %self.url.remote, branch = target, files = ?files,
            "rebase onto the new remote head conflicts; aborted");
        Err(GitError::RebaseConflict {
            repo_url: self.url.remote.clone(),
            branch: target.to_string(),
            files,
        })
    }

    /// Removes the worktree directory and its registration and local branch in the cache.
    pub async fn remove(self) -> Result<()> {
        self.keys().remove(&self.path);
        self.cache.forget_opened(&self.path);
        let r = self.cache.runner();
        let dir = &self.repo_dir;
        let _g = locks::repo(&dir.to_string_lossy()).await;
        // `worktree remove` drops the registration too; prune only when it could not.
        let mut registered = true;
        if self.path.exists() {
            let out = r
                .cmd("worktree remove", &self.url.remote, dir)
                .git_dir(dir)
                .args(["worktree", "remove", "--force", "--force"])
                .arg(&self.path)
                .output()
                .await?;
            registered = !out.success();
            if !out.success() && self.path.exists() {
                tokio::fs::remove_dir_all(&self.path)
                    .await
                    .map_err(GitError::io("removing the worktree"))?;
            }
        }
        if registered {
            r.cmd("worktree prune", &self.url.remote, dir)
                .git_dir(dir)
                .args(["worktree", "prune"])
                .ok()
                .await?;
        }
        if let Some(local) = &self.local_branch {
            // Best effort: prune() of the next checkout deletes leftovers anyway.
            let _ = r
                .cmd("branch -D", &self.url.remote, dir)
                .git_dir(dir)
                .args(["branch", "--quiet", "-D", local])
                .output()
                .await?;
        }
        Ok(())
    }
}

fn validate_trailer(key: &str, value: &str) -> Result<()> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(GitError::InvalidArgument {
            what: "trailer key",
            reason: format!("{key:?} must be letters, digits and '-'"),
        });
    }
    if value.trim().is_empty() || value.chars().any(|c| c.is_control()) {
        return Err(GitError::InvalidArgument {
            what: "trailer value",
            reason: format!("{value:?} must be non-empty, on one line"),
        });
    }
    Ok(())
}
