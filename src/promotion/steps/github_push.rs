//! github-push (Kargo `github_pusher.go`): pushes a worktree's commits through GitHub's API so
//! that GitHub creates, and for trusted commits signs, them. Each attempt integrates the
//! remote target branch (rebase, unless forcing), force-pushes HEAD to the hidden ref
//! `refs/kargo/staging/<promotion>` so GitHub has every object, re-creates the commits GitHub
//! does not have yet with the Git database API (see `crate::git::pull_requests::github_push`),
//! then creates or moves the target branch. Afterwards the staging ref is deleted and the
//! worktree is reset to the branch, whose commits now have GitHub's SHAs.
//!
//! Kargo's controller settings are read from the same variables: `GITHUB_PUSH_MAX_REVISIONS`
//! (default 10 commits per push) and `GITHUB_PUSH_VERIFY_UNTRUSTED_COMMITS` (default false).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::git::git_err;
use super::spec::{Needs, step};
use super::toolkit::{StepError, StepOutcome, lenient, path_in, repo_of};
use crate::git::pull_requests::github_push::{
    Decision, GithubPushApi, decide, parse_comparison, parse_created_sha, parse_ref_sha,
    plan_replay, resolve_parents,
};
use crate::git::pull_requests::{Client, PrError};
use crate::git::{Backoff, Credentials, GitError, Worktree};

/// Kargo's defaults.
const DEFAULT_MAX_ATTEMPTS: u32 = 10;
const DEFAULT_MAX_REVISIONS: usize = 10;
const STAGING_REF_PREFIX: &str = "refs/kargo/staging";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The worktree (made by git-clone) whose commits to push.
    path: String,
    /// Push to a new branch `kargo/promotion/<promotion>` (force-pushed); exclusive with
    /// `targetBranch`.
    #[serde(default)]
    generate_target_branch: bool,
    /// The branch to push to (default: the worktree's branch).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    target_branch: Option<String>,
    /// Overwrite the target branch's history.
    #[serde(default)]
    force: bool,
    /// Attempts, each integrating remote changes first (default 10).
    #[serde(default)]
    #[schemars(range(min = 1, max = 2147483647))]
    max_attempts: Option<u32>,
    /// For GitHub Enterprise servers with self-signed certificates.
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
}

step! {
    pub struct GithubPush = "github-push", Config,
    needs: Needs { git_credentials: true, push: true, ..Needs::NOTHING },
    |cfg, env| push(cfg, env)
}

/// The branch to push to and whether to force, from the config (Kargo's rules: a generated
/// branch is unique to the Promotion, so it is always forced).
pub fn target(
    generate: bool,
    target_branch: Option<&str>,
    force: bool,
    promotion: &str,
    current: Option<&str>,
) -> Result<(String, bool), String> {
    let named = target_branch.filter(|b| !b.is_empty());
    match (generate, named) {
        (true, Some(_)) => {
            Err("config: generateTargetBranch and targetBranch are mutually exclusive".into())
        }
        (true, None) => Ok((format!("kargo/promotion/{promotion}"), true)),
        (false, Some(b)) => Ok((b.to_string(), force)),
        (false, None) => current.map(|b| (b.to_string(), force)).ok_or_else(|| {
            "config.targetBranch: the worktree is not on a branch; name the branch to push to"
                .to_string()
        }),
    }
}

/// The token github-push authenticates with: the password of the repository's git
/// credentials (Kargo's messages for the other cases).
fn token(creds: &Credentials, repo: &str) -> Result<String, StepError> {
    match creds {
        Credentials::Basic { password, .. } if !password.is_empty() => Ok(password.clone()),
        Credentials::Basic { .. } => Err(StepError::Failed(format!(
            "credentials for {repo} are missing a password/token"
        ))),
        Credentials::SshKey { .. } => Err(StepError::Failed(format!(
            "found SSH key for {repo}; this can be used for basic Git operations only and cannot be used for GitHub API authentication; use a personal access token or GitHub App instead"
        ))),
        Credentials::None => Err(StepError::Failed(format!(
            "no credentials found for {repo}"
        ))),
    }
}

fn env_setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(variable = name, value = %v, "ignoring an unparsable setting");
            default
        }),
        Err(_) => default,
    }
}

async fn push(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.max_attempts == Some(0) {
        return Err(StepError::Failed(
            "invalid config: config.maxAttempts: must be at least 1".into(),
        ));
    }
    let dir = path_in(env, &cfg.path, "path")?;
    let repo = repo_of(env.work_dir, &dir, "path")?;
    let wt = env.git.open_worktree(&repo, &dir).await.map_err(git_err)?;
    let creds = env.credentials.git(&repo).await?;
    let token = token(&creds, &repo)?;
    let api = GithubPushApi::new(&repo)
        .map_err(|e| StepError::Failed(format!("cannot use {repo} with GitHub's API: {e}")))?;
    let (target, force) = target(
        cfg.generate_target_branch,
        cfg.target_branch.as_deref(),
        cfg.force,
        env.promotion,
        wt.branch(),
    )
    .map_err(StepError::Failed)?;
    let client = GithubPushApi::client(&repo, &token, cfg.insecure_skip_tls_verify)
        .map_err(|e| StepError::Errored(e.to_string()))?;
    let pusher = Pusher {
        wt: &wt,
        creds: &creds,
        client: &client,
        api: &api,
        target: &target,
        force,
        staging: format!("{STAGING_REF_PREFIX}/{}", env.promotion),
        max_revisions: env_setting("GITHUB_PUSH_MAX_REVISIONS", DEFAULT_MAX_REVISIONS),
        verify_untrusted: env_setting("GITHUB_PUSH_VERIFY_UNTRUSTED_COMMITS", false),
    };
    let max = cfg.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let result = pusher.push_with_retries(max).await;
    pusher.delete_staging_ref().await;
    result?;
    // The re-created commits have new SHAs: take the branch as GitHub has it now.
    let commit = wt
        .reset_to_remote_branch(&creds, &target)
        .await
        .map_err(git_err)?;
    let mut out = Map::new();
    out.insert("commit".into(), Value::String(commit.clone()));
    out.insert("branch".into(), Value::String(target.clone()));
    if let Some(url) = super::git_tag::commit_url(&repo, Some("github"), &commit) {
        out.insert("commitURL".into(), Value::String(url));
    }
    Ok(StepOutcome::succeeded(out))
}

/// An attempt that did not push: try again (after integrating remote changes), or stop.
enum AttemptError {
    Retry(String),
    Stop(StepError),
}

impl From<StepError> for AttemptError {
    fn from(e: StepError) -> Self {
        AttemptError::Stop(e)
    }
}

fn api_err(what: &str, e: PrError) -> StepError {
    let m = format!("{what}: {e}");
    if e.is_retryable() {
        StepError::Retryable(m)
    } else {
        StepError::Errored(m)
    }
}

struct Pusher<'a> {
    wt: &'a Worktree,
    creds: &'a Credentials,
    client: &'a Client,
    api: &'a GithubPushApi,
    target: &'a str,
    force: bool,
    staging: String,
    max_revisions: usize,
    verify_untrusted: bool,
}

impl Pusher<'_> {
    async fn push_with_retries(&self, max_attempts: u32) -> Result<(), StepError> {
        let backoff = Backoff::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt().await {
                Ok(()) => return Ok(()),
                Err(AttemptError::Stop(e)) => return Err(e),
                Err(AttemptError::Retry(why)) if attempt >= max_attempts => {
                    return Err(StepError::Errored(format!(
                        "error pushing commits to {} through GitHub's API after {attempt} attempt(s): {why}",
                        self.target
                    )));
                }
                Err(AttemptError::Retry(why)) => {
                    let delay = backoff.delay(attempt);
                    tracing::info!(branch = self.target, attempt, reason = %why, delay_ms = delay.as_millis() as u64, "github-push attempt did not push; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt(&self) -> Result<(), AttemptError> {
        let _lock = self.wt.lock_branch(self.target).await;
        let git = |e: GitError| -> AttemptError {
            if matches!(e, GitError::RebaseConflict { .. }) {
                AttemptError::Stop(StepError::Failed(e.to_string()))
            } else {
                AttemptError::Stop(git_err(e))
            }
        };
        // Integrate remote changes first, unless the remote history is to be overwritten.
        let target_exists = if self.force {
            self.wt.fetch_branch(self.creds, self.target).await
        } else {
            self.wt
                .integrate_remote_branch(self.creds, self.target)
                .await
        }
        .map_err(git)?;
        self.wt
            .push_head_to_ref(self.creds, &self.staging)
            .await
            .map_err(git)?;
        let source = self.wt.head().await.map_err(git)?;
        // The base of the comparison: the target's head, or for a new branch the head of the
        // branch the worktree came from.
        let base_branch = if target_exists {
            self.target
        } else {
            self.wt.branch().ok_or_else(|| {
                StepError::Failed(format!(
                    "branch {} does not exist on the remote and the worktree is not on a branch to start it from",
                    self.target
                ))
            })?
        };
        let (_, body) = self
            .client
            .call(&self.api.get_branch(base_branch), &[])
            .await
            .map_err(|e| api_err(&format!("error getting branch {base_branch}"), e))?;
        let base = parse_ref_sha(&body).map_err(StepError::Errored)?;
        let (_, body) = self
            .client
            .call(&self.api.compare(&base, &source), &[])
            .await
            .map_err(|e| api_err(&format!("error comparing {base}...{source}"), e))?;
        let comparison = parse_comparison(&body).map_err(StepError::Errored)?;
        match decide(&comparison.status, self.force) {
            Decision::Identical => return Ok(()),
            Decision::Replay => {}
            Decision::Retry(why) => return Err(AttemptError::Retry(why)),
            Decision::Fail(why) => {
                return Err(StepError::Failed(format!("{why} for {base}...{source}")).into());
            }
        }
        if comparison.commits.len() > self.max_revisions {
            return Err(StepError::Failed(format!(
                "commit range {}..{source} contains {} commits, which exceeds the configured maximum of {}",
                comparison.merge_base,
                comparison.commits.len(),
                self.max_revisions
            ))
            .into());
        }
        let mut signatures = Vec::with_capacity(comparison.commits.len());
        for c in &comparison.commits {
            signatures.push(self.wt.commit_signature(&c.sha).await.map_err(git)?);
        }
        let plan = plan_replay(&comparison, &signatures, self.verify_untrusted);
        let mut created: Vec<String> = Vec::with_capacity(plan.len());
        for (i, commit) in plan.iter().enumerate() {
            let parents = resolve_parents(&commit.parents, &comparison.merge_base, &created);
            let (_, body) = self
                .client
                .call(&self.api.create_commit(commit, &parents), &[])
                .await
                .map_err(|e| {
                    api_err(
                        &format!(
                            "error creating commit {}/{} (original: {})",
                            i + 1,
                            plan.len(),
                            commit.original
                        ),
                        e,
                    )
                })?;
            created.push(parse_created_sha(&body).map_err(StepError::Errored)?);
        }
        let new_head = created
            .last()
            .cloned()
            .unwrap_or_else(|| comparison.merge_base.clone());
        if !target_exists {
            self.client
                .call(&self.api.create_branch(self.target, &new_head), &[])
                .await
                .map_err(|e| api_err(&format!("error creating branch {}", self.target), e))?;
            return Ok(());
        }
        let (status, _) = self
            .client
            .call(
                &self.api.update_branch(self.target, &new_head, self.force),
                &[422],
            )
            .await
            .map_err(|e| api_err(&format!("error updating branch {}", self.target), e))?;
        if status == 422 {
            return Err(AttemptError::Retry(format!(
                "error updating branch {} to {new_head} (not a fast forward)",
                self.target
            )));
        }
        Ok(())
    }

    /// Deletes the staging ref; a failure is only logged (Kargo: non-fatal).
    async fn delete_staging_ref(&self) {
        if let Err(e) = self
            .client
            .call(&self.api.delete_ref(&self.staging), &[404, 422])
            .await
        {
            tracing::warn!(reference = %self.staging, error = %e, "cannot delete github-push's staging ref");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_branch_choice() {
        assert_eq!(
            target(true, None, false, "uat.01abc", Some("main")),
            Ok(("kargo/promotion/uat.01abc".into(), true))
        );
        assert_eq!(
            target(true, Some(""), false, "p", Some("main")),
            Ok(("kargo/promotion/p".into(), true))
        );
        assert!(target(true, Some("x"), false, "p", None).is_err());
        assert_eq!(
            target(false, Some("env/prod"), true, "p", Some("main")),
            Ok(("env/prod".into(), true))
        );
        assert_eq!(
            target(false, None, false, "p", Some("main")),
            Ok(("main".into(), false))
        );
        let err = target(false, None, false, "p", None).expect_err("detached");
        assert!(err.starts_with("config.targetBranch"), "{err}");
    }

    #[test]
    fn token_comes_from_the_git_password() {
        let basic = |p: &str| Credentials::Basic {
            username: "u".into(),
            password: p.into(),
        };
        assert_eq!(token(&basic("t0k"), "r"), Ok("t0k".into()));
        assert!(
            matches!(token(&basic(""), "r"), Err(StepError::Failed(m)) if m.contains("missing a password/token"))
        );
        assert!(
            matches!(token(&Credentials::None, "r"), Err(StepError::Failed(m)) if m == "no credentials found for r")
        );
        let ssh = Credentials::SshKey {
            private_key: "k".into(),
        };
        assert!(
            matches!(token(&ssh, "r"), Err(StepError::Failed(m)) if m.contains("found SSH key"))
        );
    }
}
