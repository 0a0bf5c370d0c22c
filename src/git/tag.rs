//! Annotated tags on a worktree's HEAD, and pushing them (Kargo's git-tag and git-push `tag`).
//!
//! Both are idempotent so that a Promotion resumed after a crash can run them again: a tag that
//! already names the same commit is left alone, locally and on the remote.

use super::cache::validate_ref_name;
use super::error::{GitError, Result, last_line};
use super::{Author, Credentials, Worktree};

/// What [`Worktree::create_tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOutcome {
    /// The commit the tag names (HEAD).
    pub commit: String,
    /// The tag already named HEAD, so nothing was created.
    pub existed: bool,
}

/// What [`Worktree::push_tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPushOutcome {
    /// The commit the pushed tag names.
    pub commit: String,
    /// The remote already had this tag on this commit; nothing was pushed.
    pub already_pushed: bool,
}

impl Worktree {
    /// The commit local tag `name` points to, if it exists.
    async fn local_tag_commit(&self, name: &str) -> Result<Option<String>> {
        let out = self
            .cmd("rev-parse")
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/tags/{name}^{{commit}}"))
            .output()
            .await?;
        Ok(out.success().then(|| out.stdout.trim().to_string()))
    }

    /// Creates annotated tag `name` on HEAD with `message`, by `tagger`. A tag that already
    /// names HEAD is kept; one that names another commit is an error unless `force`, which
    /// moves it.
    pub async fn create_tag(
        &self,
        name: &str,
        message: &str,
        tagger: &Author,
        force: bool,
    ) -> Result<TagOutcome> {
        validate_ref_name("tag", name)?;
        let head = self.head().await?;
        match self.local_tag_commit(name).await? {
            Some(c) if c == head => {
                return Ok(TagOutcome {
                    commit: head,
                    existed: true,
                });
            }
            Some(c) if !force => {
                return Err(GitError::InvalidArgument {
                    what: "tag",
                    reason: format!(
                        "{name:?} already exists on commit {c}, not on HEAD {head}; set force to move it"
                    ),
                });
            }
            _ => {}
        }
        // Signed with the worktree's key when it has one (Kargo's repository-level tag.gpgSign).
        let signer = self.signer(self.signing_key().as_ref()).await?;
        let mut cmd = self
            .cmd("tag")
            .sign(signer.as_ref())
            .env("GIT_COMMITTER_NAME", &tagger.name)
            .env("GIT_COMMITTER_EMAIL", &tagger.email)
            .args(["tag", "--annotate", "--cleanup=verbatim"]);
        if force {
            cmd = cmd.arg("--force");
        }
        // git appends the signature right after the message: without a final newline it would
        // not be recognised as one.
        let message = if signer.is_some() && !message.ends_with('\n') {
            format!("{message}\n")
        } else {
            message.to_string()
        };
        cmd.args(["-m", &message]).arg("--").arg(name).ok().await?;
        Ok(TagOutcome {
            commit: head,
            existed: false,
        })
    }

    /// Pushes local tag `name` to the remote. The remote already having the tag on the same
    /// commit counts as pushed; having it on another commit is refused unless `force`.
    pub async fn push_tag(
        &self,
        creds: &Credentials,
        name: &str,
        force: bool,
    ) -> Result<TagPushOutcome> {
        validate_ref_name("tag", name)?;
        let commit =
            self.local_tag_commit(name)
                .await?
                .ok_or_else(|| GitError::InvalidArgument {
                    what: "tag",
                    reason: format!(
                        "{name:?} does not exist in the worktree; create it with git-tag"
                    ),
                })?;
        let auth = self.auth(creds)?;
        let refname = format!("refs/tags/{name}");
        let remote = self
            .cmd("ls-remote")
            .auth(&auth)
            .args(["ls-remote", "origin"])
            .arg(&refname)
            .arg(format!("{refname}^{{}}"))
            .read()
            .await?;
        // An annotated tag lists twice: the tag object, then `^{}` with the commit it peels to.
        let remote_commit = remote
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(_, r)| r.ends_with("^{}"))
            .or_else(|| remote.lines().filter_map(|l| l.split_once('\t')).next())
            .map(|(sha, _)| sha.to_string());
        if remote_commit.as_deref() == Some(commit.as_str()) {
            return Ok(TagPushOutcome {
                commit,
                already_pushed: true,
            });
        }
        let mut cmd = self
            .cmd("push")
            .auth(&auth)
            .args(["push", "--porcelain", "--no-verify"]);
        if force {
            cmd = cmd.arg("--force");
        }
        let out = cmd
            .arg("origin")
            .arg(format!("{refname}:{refname}"))
            .output()
            .await?;
        if out.success() {
            return Ok(TagPushOutcome {
                commit,
                already_pushed: false,
            });
        }
        if let Some(line) = out.stdout.lines().find(|l| l.starts_with('!')) {
            return Err(GitError::PushRejected {
                repo_url: self.url.remote.clone(),
                branch: format!("tag {name}"),
                detail: last_line(line),
            });
        }
        Err(super::error::classify(
            &self.url.remote,
            "push",
            out.code,
            &out.stderr,
        ))
    }

    /// Moves local tag `name` to HEAD, keeping its message (after a push rebased the commit
    /// it named).
    pub async fn retag_head(&self, name: &str, tagger: &Author) -> Result<()> {
        validate_ref_name("tag", name)?;
        let tag_ref = format!("refs/tags/{name}");
        let contents = self
            .cmd("for-each-ref")
            .args(["for-each-ref", "--format=%(contents)"])
            .arg(&tag_ref)
            .read()
            .await?;
        // A signed tag's contents end with its signature, which the new tag must not copy.
        let signature = self
            .cmd("for-each-ref")
            .args(["for-each-ref", "--format=%(contents:signature)"])
            .arg(&tag_ref)
            .read()
            .await?;
        let message = match contents.strip_suffix(signature.as_str()) {
            Some(m) if !signature.is_empty() => m.to_string(),
            _ => contents,
        };
        self.create_tag(name, &message, tagger, true)
            .await
            .map(|_| ())
    }

    /// The commit local tag `name` names, if it exists.
    pub async fn tag_commit(&self, name: &str) -> Result<Option<String>> {
        validate_ref_name("tag", name)?;
        self.local_tag_commit(name).await
    }
}
