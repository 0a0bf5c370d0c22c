//! git-clone, git-clear, git-commit and git-push (Kargo reference §3.3), on top of the shared
//! repository cache: clones are reused across promotions, commits carry the promotion's
//! trailer, and pushes are serialised, rebased and deduplicated by `crate::git`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::{Needs, step};
use super::toolkit::{StepError, StepOutcome, lenient, path_in, record_worktree, repo_of};
use crate::api::StepStatus;
use crate::git::{
    Author, Checkout, CommitOutcome, GitError, PROMOTION_TRAILER, PushOptions, SigningKey,
};

pub(super) fn git_err(e: GitError) -> StepError {
    if matches!(
        e,
        GitError::RebaseConflict { .. } | GitError::SigningKey { .. }
    ) {
        StepError::Failed(e.to_string())
    } else if e.is_terminal() {
        StepError::Errored(e.to_string())
    } else {
        StepError::Retryable(e.to_string())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorConfig {
    name: Option<String>,
    email: Option<String>,
    /// An armored GPG or OpenSSH private key (no passphrase) that signs the commits.
    #[serde(default)]
    signing_key: Option<String>,
}

impl AuthorConfig {
    /// The step's own signing key; `field` is the config path named in errors.
    fn key(&self, field: &str) -> Option<SigningKey> {
        self.signing_key
            .as_ref()
            .filter(|k| !k.trim().is_empty())
            .map(|k| SigningKey::new(k.clone(), field))
    }
}

fn author(cfg: Option<&AuthorConfig>, default: &Author) -> Author {
    identity_or(
        cfg.and_then(|a| a.name.as_ref()),
        cfg.and_then(|a| a.email.as_ref()),
        default,
    )
}

/// An identity (commit author, tagger) from the name and email a config gives, each falling back
/// to `default`'s.
pub(super) fn identity_or(
    name: Option<&String>,
    email: Option<&String>,
    default: &Author,
) -> Author {
    Author {
        name: name.unwrap_or(&default.name).clone(),
        email: email.unwrap_or(&default.email).clone(),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneConfig {
    #[serde(rename = "repoURL")]
    repo_url: String,
    checkout: Vec<CheckoutConfig>,
    author: Option<AuthorConfig>,
    /// Skip TLS certificate verification for this repository's git commands (this clone and
    /// the commits, pushes and tags of its worktrees). `insecureSkipTlsVerify`, haul's earlier
    /// spelling, is accepted too.
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        alias = "insecureSkipTlsVerify"
    )]
    insecure_skip_tls_verify: bool,
    /// Fetch without file contents (`--filter=blob:none`); git fetches the blobs checked out.
    #[serde(default)]
    blobless: bool,
    /// Check out submodules (recursively) with the repository's credentials.
    #[serde(default)]
    recurse_submodules: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutConfig {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    branch: Option<String>,
    #[serde(default)]
    create: bool,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    commit: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    tag: Option<String>,
    path: String,
    r#as: Option<String>,
    #[serde(default)]
    sparse: Vec<String>,
}

pub async fn clone(cfg: CloneConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.checkout.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.checkout: at least one checkout is required".into(),
        ));
    }
    // Validate every checkout before touching anything.
    let mut plans = Vec::new();
    for (i, c) in cfg.checkout.iter().enumerate() {
        let set = [c.branch.is_some(), c.commit.is_some(), c.tag.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set > 1 {
            return Err(StepError::Failed(format!(
                "invalid config: config.checkout[{i}]: set at most one of branch, commit or tag"
            )));
        }
        let path = path_in(env, &c.path, &format!("checkout[{i}].path"))?;
        let checkout = match (&c.branch, &c.commit, &c.tag) {
            (Some(b), _, _) => Checkout::branch(b.clone()).create_if_missing(c.create),
            (_, Some(sha), _) => Checkout::commit(sha.clone()),
            (_, _, Some(t)) => Checkout::tag(t.clone()),
            // Kargo checks out the default branch when nothing is named.
            _ => Checkout::branch("main").create_if_missing(c.create),
        };
        // Only the newest commit is needed to edit files and push on top of it, and only the
        // directories the step names when it names some.
        let mut checkout = checkout.with_depth(1).with_sparse(c.sparse.clone());
        checkout.author = author(cfg.author.as_ref(), env.author);
        checkout.blobless = cfg.blobless;
        checkout.recurse_submodules = cfg.recurse_submodules;
        checkout.skip_tls_verify = cfg.insecure_skip_tls_verify;
        plans.push((c, path, checkout));
    }
    // Kargo: git-clone's author (with its key, if any) is the repository's user; without an
    // author, the default author's (ClusterConfig gitClient) key signs.
    let key = match &cfg.author {
        Some(a) => a.key("config.author.signingKey"),
        None => env.default_signing_key()?,
    };
    if let Some(k) = &key {
        // Checked now, so a bad key fails before anything is checked out, committed or pushed.
        k.kind().map_err(git_err)?;
    }
    let creds = env.credentials.git(&cfg.repo_url).await?;
    let mut commits = Map::new();
    for (c, path, checkout) in plans {
        let wt = env
            .git
            .checkout(&cfg.repo_url, &creds, &checkout, &path)
            .await
            .map_err(git_err)?;
        record_worktree(env.work_dir, &path, &cfg.repo_url)?;
        let user = cfg.author.as_ref().map(|a| author(Some(a), env.author));
        wt.set_user(user, key.clone());
        let head = wt.head().await.map_err(git_err)?;
        let key = c.r#as.clone().unwrap_or_else(|| c.path.clone());
        commits.insert(key, Value::String(head));
    }
    let mut out = Map::new();
    out.insert("commits".into(), Value::Object(commits));
    Ok(StepOutcome::succeeded(out))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathConfig {
    path: String,
}

/// Deletes everything in a worktree except `.git`.
pub async fn clear(cfg: PathConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let dir = path_in(env, &cfg.path, "path")?;
    repo_of(env.work_dir, &dir, "path")?;
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| StepError::Failed(format!("config.path: cannot read {}: {e}", cfg.path)))?;
    for e in entries.flatten() {
        if e.file_name() == ".git" {
            continue;
        }
        let p = e.path();
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|err| StepError::Errored(format!("removing {}: {err}", p.display())))?;
    }
    Ok(StepOutcome::succeeded(Map::new()))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitConfig {
    path: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    message: Option<String>,
    author: Option<AuthorConfig>,
}

/// Commits everything in the worktree when something changed (Skipped otherwise), with the
/// promotion's trailer so a re-run after a crash is recognised and never pushed twice.
pub async fn commit(cfg: CommitConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let message = cfg
        .message
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| {
            StepError::Failed("invalid config: config.message: a commit message is required".into())
        })?;
    let dir = path_in(env, &cfg.path, "path")?;
    let repo = repo_of(env.work_dir, &dir, "path")?;
    let wt = env.git.open_worktree(&repo, &dir).await.map_err(git_err)?;
    // The step's author, else the worktree's user (git-clone's author), else the default.
    let default = wt.author().unwrap_or_else(|| env.author.clone());
    let who = author(cfg.author.as_ref(), &default);
    // As in Kargo: a step that names an author commits as that user, signed with its key or
    // unsigned; otherwise the worktree's user (git-clone's author, else the default author)
    // signs. The worktree's is forgotten when the process restarts between steps.
    let key = match &cfg.author {
        Some(a) => a.key("config.author.signingKey"),
        None if wt.signing_key_recorded() => wt.signing_key(),
        None => env.default_signing_key()?,
    };
    let outcome = wt
        .commit_all_signed(
            &message,
            &who,
            &[(PROMOTION_TRAILER, env.promotion)],
            key.as_ref(),
        )
        .await
        .map_err(git_err)?;
    let mut out = Map::new();
    out.insert("commit".into(), Value::String(outcome.sha().to_string()));
    Ok(match outcome {
        CommitOutcome::Committed(_) => StepOutcome::succeeded(out),
        CommitOutcome::NothingToCommit(_) => StepOutcome {
            status: StepStatus::Skipped,
            message: Some("nothing to commit".into()),
            ..StepOutcome::succeeded(out)
        },
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushConfig {
    path: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    target_branch: Option<String>,
    #[serde(default)]
    generate_target_branch: bool,
    #[serde(default)]
    force: bool,
    max_attempts: Option<u32>,
    /// A tag made by git-tag, pushed after the branch.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    tag: Option<String>,
    /// Names the git provider for the `commitURL` output (else inferred from the host).
    #[serde(default)]
    provider: Option<String>,
}

pub async fn push(cfg: PushConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.generate_target_branch && cfg.target_branch.is_some() {
        return Err(StepError::Failed(
            "invalid config: config: set targetBranch or generateTargetBranch, not both".into(),
        ));
    }
    let dir = path_in(env, &cfg.path, "path")?;
    let repo = repo_of(env.work_dir, &dir, "path")?;
    let mut wt = env.git.open_worktree(&repo, &dir).await.map_err(git_err)?;
    let creds = env.credentials.git(&repo).await?;
    let mut opts = PushOptions::default();
    if let Some(n) = cfg.max_attempts {
        opts.max_attempts = n.max(1);
    }
    if cfg.generate_target_branch {
        // Unique per Promotion, so a restarted Promotion may force-push it again safely.
        opts.target_branch = Some(format!("kargo/promotion/{}", env.promotion));
        opts.force = true;
    } else {
        opts.target_branch = cfg.target_branch;
        opts.force = cfg.force;
    }
    let tag = cfg.tag.filter(|t| !t.trim().is_empty());
    let tagged_before = match &tag {
        Some(t) => Some(
            wt.tag_commit(t)
                .await
                .map_err(|e| StepError::Failed(format!("config.tag: {e}")))?
                .ok_or_else(|| {
                    StepError::Failed(format!(
                        "config.tag: there is no tag {t:?} in {}; create it with a git-tag step first",
                        cfg.path
                    ))
                })?,
        ),
        None => None,
    };
    let head_before = wt.head().await.map_err(git_err)?;
    // A worktree checked out at a tag or commit has no branch to push: only the tag goes.
    let tag_only = tag.is_some() && wt.branch().is_none() && opts.target_branch.is_none();
    let pushed = if tag_only {
        None
    } else {
        Some(wt.push(&creds, &opts).await.map_err(git_err)?)
    };
    if let Some(t) = &tag {
        super::git_tag::push_tag(
            &wt,
            &creds,
            env.author,
            t,
            tagged_before.as_deref(),
            &head_before,
            cfg.force,
        )
        .await?;
    }
    let commit = match &pushed {
        Some(p) => p.commit.clone(),
        None => wt.head().await.map_err(git_err)?,
    };
    let mut out = Map::new();
    out.insert("commit".into(), Value::String(commit.clone()));
    if let Some(p) = &pushed {
        out.insert("branch".into(), Value::String(p.branch.clone()));
    }
    if let Some(url) = super::git_tag::commit_url(&repo, cfg.provider.as_deref(), &commit) {
        out.insert("commitURL".into(), Value::String(url));
    }
    let message = if pushed.as_ref().is_some_and(|p| p.already_pushed) {
        Some("this promotion's commit was already on the branch; nothing pushed".to_string())
    } else {
        None
    };
    Ok(StepOutcome {
        message,
        ..StepOutcome::succeeded(out)
    })
}

step! {
    pub struct GitClone = "git-clone", CloneConfig,
    needs: Needs { git_credentials: true, ..Needs::NOTHING },
    |cfg, env| clone(cfg, env)
}

step! { pub struct GitClear = "git-clear", PathConfig, |cfg, env| clear(cfg, env) }

step! {
    pub struct GitCommit = "git-commit", CommitConfig,
    needs: Needs { commit: true, ..Needs::NOTHING },
    |cfg, env| commit(cfg, env)
}

step! {
    pub struct GitPush = "git-push", PushConfig,
    needs: Needs { git_credentials: true, push: true, ..Needs::NOTHING },
    |cfg, env| push(cfg, env)
}
