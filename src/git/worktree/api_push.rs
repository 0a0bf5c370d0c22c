//! The git half of pushing through a provider's API (github-push): integrate the remote branch,
//! put the objects on the remote under a hidden staging ref, read commit signatures, and take
//! the provider's (re-created) commits back afterwards.

use super::{GitError, Result, Worktree, classify, last_line, validate_ref_name};
use crate::git::Credentials;
use crate::git::cache::Depth;
use crate::git::locks;

/// Who signed a commit, as `git log %G?`/`%GS` say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitSignature {
    /// A good signature by a key git trusts (`%G?` is `G`).
    pub trusted: bool,
    pub signer_name: String,
    pub signer_email: String,
}

impl Worktree {
    /// Serialises work on one remote branch of this repository within the process (the lock
    /// git-push takes too).
    pub async fn lock_branch(&self, branch: &str) -> locks::Guard {
        locks::branch(&self.url.normalized, branch).await
    }

    /// Fetches `branch` and, when it exists, rebases this worktree's own commits onto it
    /// (Kargo's default integration policy, always rebase). `Ok(false)` when the remote has no
    /// such branch; a conflict is [`GitError::RebaseConflict`].
    pub async fn integrate_remote_branch(&self, creds: &Credentials, branch: &str) -> Result<bool> {
        validate_ref_name("branch", branch)?;
        if !self.fetch_branch(creds, branch).await? {
            return Ok(false);
        }
        let auth = self.auth(creds)?;
        self.rebase_onto(&auth, &format!("refs/remotes/origin/{branch}"), branch)
            .await?;
        Ok(true)
    }

    /// Whether the remote has `branch`, fetching it into the remote-tracking ref.
    pub async fn fetch_branch(&self, creds: &Credentials, branch: &str) -> Result<bool> {
        validate_ref_name("branch", branch)?;
        let auth = self.auth(creds)?;
        let _g = locks::repo(&self.repo_dir.to_string_lossy()).await;
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.cache
            .fetch(
                &self.url,
                &self.repo_dir,
                &auth,
                &refspec,
                Depth::Incremental,
            )
            .await
    }

    /// Force-pushes HEAD to the full ref name `refname` (e.g. `refs/kargo/staging/<promotion>`),
    /// which puts every object of HEAD's history on the remote without touching a branch.
    pub async fn push_head_to_ref(&self, creds: &Credentials, refname: &str) -> Result<()> {
        let auth = self.auth(creds)?;
        let out = self
            .cmd("push")
            .auth(&auth)
            .args(["push", "--porcelain", "--no-verify", "--force", "origin"])
            .arg(format!("HEAD:{refname}"))
            .output()
            .await?;
        if out.success() {
            return Ok(());
        }
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with('!'))
            .unwrap_or_default();
        if !line.is_empty() {
            return Err(GitError::PushRejected {
                repo_url: self.url.remote.clone(),
                branch: refname.to_string(),
                detail: last_line(line),
            });
        }
        Err(classify(&self.url.remote, "push", out.code, &out.stderr))
    }

    /// Moves this worktree to the remote `branch` as it is now (after the provider re-created
    /// the commits, whose SHAs differ from the local ones); the new HEAD.
    pub async fn reset_to_remote_branch(
        &self,
        creds: &Credentials,
        branch: &str,
    ) -> Result<String> {
        if !self.fetch_branch(creds, branch).await? {
            return Err(GitError::InvalidArgument {
                what: "branch",
                reason: format!("{branch} does not exist on {}", self.url.remote),
            });
        }
        let tracking = format!("refs/remotes/origin/{branch}");
        self.cmd("reset")
            .args(["reset", "--quiet", "--hard", &tracking])
            .ok()
            .await?;
        self.set_base("HEAD").await?;
        self.head().await
    }

    /// The signature of commit `sha`.
    pub async fn commit_signature(&self, sha: &str) -> Result<CommitSignature> {
        let out = self
            .cmd("log")
            .args(["log", "-1", "--format=%G?%x1f%GS", sha])
            .read()
            .await?;
        let (status, signer) = out.split_once('\u{1f}').unwrap_or((out.as_str(), ""));
        let (name, email) = match signer.rsplit_once('<') {
            Some((n, e)) => (n.trim(), e.trim_end_matches('>').trim()),
            None => (signer.trim(), ""),
        };
        Ok(CommitSignature {
            trusted: status.trim() == "G",
            signer_name: name.to_string(),
            signer_email: email.to_string(),
        })
    }
}
