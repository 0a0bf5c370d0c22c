//! git-open-pr, git-wait-for-pr and git-merge-pr (Kargo's pull request steps), over
//! `crate::git::pull_requests`. The token is the password of the repository's git credentials,
//! as in Kargo.
//!
//! Resuming is safe: git-open-pr first looks for a pull request from the source branch into
//! the target branch whose head is the source branch's current commit, and adopts it (open, or
//! already merged) instead of opening a second one; git-wait-for-pr and git-merge-pr only read
//! or finish the pull request they are given.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::env::StepEnv;
use super::spec::{Needs, step};
use super::toolkit::{StepError, StepOutcome, lenient};
use crate::api::StepStatus;
use crate::git::pull_requests::{
    self, Client, MergeResult, NewPullRequest, PrError, ProviderKind, PullRequest,
};
use crate::git::{Checkout, Credentials};

/// Kargo's suggested poll intervals.
const WAIT_POLL: Duration = Duration::from_secs(30);
const MERGE_POLL: Duration = Duration::from_secs(10);

/// `provider:` as Kargo's schema enumerates it (the schema only: the value is checked by
/// `pull_requests::pick`, so an unknown one is reported with the repository).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Provider {
    Azure,
    Bitbucket,
    Gitea,
    Github,
    Gitlab,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenConfig {
    /// The repository (https, or SSH, whose API is then reached over https on the same host).
    #[serde(rename = "repoURL", deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    repo_url: String,
    /// Skip TLS verification when calling the provider's API.
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
    /// The provider; inferred from the repository's host when absent.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<Provider>")]
    provider: Option<String>,
    /// The branch with the changes (it must exist on the remote, e.g. pushed by git-push).
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    source_branch: String,
    /// The branch to merge into.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    target_branch: String,
    /// Create the target branch when it does not exist (an empty "Initial commit", as Kargo
    /// did before it deprecated the field).
    #[serde(default)]
    create_target_branch: bool,
    /// The title; the first line of the source branch's head commit message by default.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    title: Option<String>,
    /// The description; the rest of that commit message by default.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    description: Option<String>,
    /// Labels to add to the pull request (Bitbucket has none).
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitConfig {
    #[serde(rename = "repoURL", deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    repo_url: String,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<Provider>")]
    provider: Option<String>,
    /// The pull request, e.g. `${{ outputs['open-pr'].pr.id }}`.
    #[serde(rename = "prNumber", deserialize_with = "pr_number")]
    #[schemars(with = "PrNumberSchema")]
    pr_number: u64,
    /// How often to look again while it is open (Go duration; 30s by default).
    #[serde(default)]
    poll_interval: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeConfig {
    #[serde(rename = "repoURL", deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    repo_url: String,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<Provider>")]
    provider: Option<String>,
    #[serde(rename = "prNumber", deserialize_with = "pr_number")]
    #[schemars(with = "PrNumberSchema")]
    pr_number: u64,
    /// Stay Running (instead of Failed) while the pull request is not mergeable yet.
    #[serde(default)]
    wait: bool,
    /// How often to try again when waiting (Go duration; 10s by default).
    #[serde(default)]
    poll_interval: Option<String>,
    /// The provider's merge method (GitHub: merge, squash, rebase; GitLab: merge, squash;
    /// Gitea: merge, rebase, rebase-merge, squash, manually-merged; Bitbucket: merge_commit,
    /// squash, fast_forward, …; Azure: noFastForward, rebase, rebaseMerge, squash).
    #[serde(default)]
    merge_method: Option<String>,
}

/// The schema of `prNumber`: a positive integer (or its text, as an expression may give it).
struct PrNumberSchema;

impl JsonSchema for PrNumberSchema {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PrNumber".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["integer", "string"],
            "minimum": 1,
            "description": "The pull request number (a string of digits is accepted)."
        })
    }
}

fn pr_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    let n = match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.filter(|n| *n >= 1)
        .ok_or_else(|| D::Error::custom("expected a pull request number (an integer ≥ 1)"))
}

/// The parts every pull request step shares: the client for the repository.
async fn client(
    env: &StepEnv<'_>,
    step: &str,
    repo_url: &str,
    provider: Option<&str>,
    insecure: bool,
) -> Result<Client, StepError> {
    let kind = match pull_requests::pick(repo_url, provider) {
        Ok(kind) => kind,
        // The host name does not say: a self-hosted Gitea still says so when asked.
        Err(e @ PrError::NoProviderForHost { .. }) => {
            if pull_requests::answers_like_gitea(repo_url, insecure).await {
                ProviderKind::Gitea
            } else {
                return Err(fail(repo_url)(e));
            }
        }
        Err(e) => return Err(fail(repo_url)(e)),
    };
    let api = pull_requests::api_for(kind, repo_url).map_err(fail(repo_url))?;
    let token = match env.credentials.git(repo_url).await? {
        Credentials::Basic { password, .. } if !password.is_empty() => password,
        _ => {
            return Err(StepError::Failed(format!(
                "config.repoURL: no git credentials with a password for {repo_url}: {step} uses the password (a token) of the repository's git credentials to call the {} API",
                kind.name()
            )));
        }
    };
    Client::new(api, &token, insecure, repo_url).map_err(fail(repo_url))
}

/// A pull request error as the step's error, naming the repository when the message does not.
fn fail(repo_url: &str) -> impl Fn(PrError) -> StepError + '_ {
    move |e| {
        let mut message = e.to_string();
        if !message.contains(repo_url) {
            message = format!("{message} (repoURL {repo_url})");
        }
        if e.is_retryable() {
            StepError::Retryable(message)
        } else {
            StepError::Failed(message)
        }
    }
}

fn poll(field: &str, value: Option<&str>, default: Duration) -> Result<Duration, StepError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => crate::duration::parse(v)
            .map(|d| if d.is_zero() { default } else { d })
            .map_err(|e| StepError::Failed(format!("invalid config: config.{field}: {e}"))),
    }
}

fn pr_output(pr: &PullRequest) -> Value {
    json!({ "id": pr.number, "url": pr.url })
}

pub async fn open(cfg: OpenConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let repo = cfg.repo_url.as_str();
    let (source, target) = (cfg.source_branch.trim(), cfg.target_branch.trim());
    for (field, value) in [("sourceBranch", source), ("targetBranch", target)] {
        if value.is_empty() {
            return Err(StepError::Failed(format!(
                "invalid config: config.{field}: must not be empty"
            )));
        }
    }
    let client = client(
        env,
        "git-open-pr",
        repo,
        cfg.provider.as_deref(),
        cfg.insecure_skip_tls_verify,
    )
    .await?;
    let head = client.branch(source).await.map_err(fail(repo))?.ok_or_else(|| {
        StepError::Failed(format!(
            "config.sourceBranch: branch {source:?} does not exist in {repo} (push it first, e.g. with git-push)"
        ))
    })?;
    let succeeded = |pr: &PullRequest, message: String| {
        let mut out = Map::new();
        out.insert("pr".into(), pr_output(pr));
        // Kargo up to v1.3 gave the number as `prNumber`, and its public examples still read
        // `task.outputs['open-pr'].prNumber`; both names keep old and new pipelines working.
        out.insert("prNumber".into(), json!(pr.number));
        StepOutcome {
            message: Some(message),
            ..StepOutcome::succeeded(out)
        }
    };
    // A resumed Promotion (or a re-run after the merge) adopts the pull request of this head.
    if let Some(pr) = client
        .find(source, target, &head.sha)
        .await
        .map_err(fail(repo))?
    {
        tracing::info!(repo, number = pr.number, "adopting existing pull request");
        let state = if pr.open { "open" } else { "merged" };
        return Ok(succeeded(
            &pr,
            format!("adopted {state} pull request {} ({})", pr.number, pr.url),
        ));
    }
    let target_head = match client.branch(target).await.map_err(fail(repo))? {
        Some(b) => b.sha,
        None if cfg.create_target_branch => create_branch(env, repo, target).await?,
        None => {
            return Err(StepError::Failed(format!(
                "config.targetBranch: branch {target:?} does not exist in {repo} (set createTargetBranch to create it)"
            )));
        }
    };
    if target_head == head.sha {
        // Providers refuse a pull request without commits; Kargo skips the step then.
        return Ok(StepOutcome {
            status: StepStatus::Skipped,
            message: Some(format!(
                "{source:?} and {target:?} are at the same commit in {repo}: nothing to merge"
            )),
            ..StepOutcome::succeeded(Map::new())
        });
    }
    let (title, description) = title_and_description(&cfg, head.message.as_deref(), source, target);
    let pr = client
        .open(&NewPullRequest {
            title,
            description,
            head: source.to_string(),
            base: target.to_string(),
            labels: cfg.labels.clone(),
        })
        .await
        .map_err(fail(repo))?;
    tracing::info!(repo, number = pr.number, "opened pull request");
    Ok(succeeded(
        &pr,
        format!("opened pull request {} ({})", pr.number, pr.url),
    ))
}

/// Kargo's defaults: the title is the head commit message's first line and the description
/// the rest, unless the config gives them.
fn title_and_description(
    cfg: &OpenConfig,
    commit_message: Option<&str>,
    source: &str,
    target: &str,
) -> (String, String) {
    let message = commit_message.unwrap_or_default().trim();
    let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    match (given(&cfg.title), given(&cfg.description)) {
        (Some(t), Some(d)) => (t, d),
        (Some(t), None) => (t, message.to_string()),
        (None, d) => {
            let title = if first.trim().is_empty() {
                // Azure's refs API gives no commit message.
                format!("Merge {source} into {target}")
            } else {
                first.trim().to_string()
            };
            (title, d.unwrap_or_else(|| rest.trim().to_string()))
        }
    }
}

/// Creates `branch` the way Kargo did: an empty "Initial commit" pushed to the remote (the
/// git cache's checkout with create-if-missing). Returns its commit.
async fn create_branch(env: &StepEnv<'_>, repo: &str, branch: &str) -> Result<String, StepError> {
    let creds = env.credentials.git(repo).await?;
    let mut checkout = Checkout::branch(branch)
        .create_if_missing(true)
        .with_depth(1);
    checkout.author = env.author.clone();
    let path = env
        .work_dir
        .join(".haul")
        .join("pr-target-branches")
        .join(branch.replace('/', "_"));
    let wt = env
        .git
        .checkout(repo, &creds, &checkout, &path)
        .await
        .map_err(|e| {
            StepError::Failed(format!(
                "config.targetBranch: creating branch {branch:?} in {repo}: {e}"
            ))
        })?;
    wt.head().await.map_err(super::git::git_err)
}

pub async fn wait(cfg: WaitConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let repo = cfg.repo_url.as_str();
    let interval = poll("pollInterval", cfg.poll_interval.as_deref(), WAIT_POLL)?;
    let client = client(
        env,
        "git-wait-for-pr",
        repo,
        cfg.provider.as_deref(),
        cfg.insecure_skip_tls_verify,
    )
    .await?;
    let n = cfg.pr_number;
    let pr = client.get(n).await.map_err(fail(repo))?.ok_or_else(|| {
        StepError::Failed(format!(
            "config.prNumber: pull request {n} does not exist in {repo}"
        ))
    })?;
    let mut out = Map::new();
    out.insert(
        "pr".into(),
        json!({ "id": pr.number, "url": pr.url, "open": pr.open, "merged": pr.merged }),
    );
    if let Some(c) = &pr.merge_commit {
        out.insert("commit".into(), Value::String(c.clone()));
    }
    if pr.open {
        return Ok(StepOutcome {
            status: StepStatus::Running,
            message: Some(format!(
                "pull request {n} in {repo} is open; waiting for it to be merged"
            )),
            output: out,
            health_check: None,
            retry_after: Some(interval),
        });
    }
    if !pr.merged {
        return Err(StepError::Failed(
            PrError::ClosedUnmerged {
                number: n,
                repo_url: repo.to_string(),
            }
            .to_string(),
        ));
    }
    Ok(StepOutcome {
        message: Some(format!("pull request {n} in {repo} was merged")),
        ..StepOutcome::succeeded(out)
    })
}

pub async fn merge(cfg: MergeConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let repo = cfg.repo_url.as_str();
    let interval = poll("pollInterval", cfg.poll_interval.as_deref(), MERGE_POLL)?;
    let client = client(
        env,
        "git-merge-pr",
        repo,
        cfg.provider.as_deref(),
        cfg.insecure_skip_tls_verify,
    )
    .await?;
    let n = cfg.pr_number;
    let method = cfg.merge_method.as_deref().filter(|m| !m.is_empty());
    let result = client.merge(n, method).await.map_err(fail(repo))?;
    match result {
        None => Err(StepError::Failed(format!(
            "config.prNumber: pull request {n} does not exist in {repo}"
        ))),
        Some(MergeResult::Merged(pr)) => {
            let mut out = Map::new();
            out.insert(
                "commit".into(),
                Value::String(pr.merge_commit.clone().unwrap_or_default()),
            );
            Ok(StepOutcome {
                message: Some(format!("pull request {n} in {repo} is merged")),
                ..StepOutcome::succeeded(out)
            })
        }
        Some(MergeResult::NotReady(why)) if cfg.wait => Ok(StepOutcome {
            status: StepStatus::Running,
            message: Some(format!(
                "pull request {n} in {repo} is not ready to merge: {why}"
            )),
            output: Map::new(),
            health_check: None,
            retry_after: Some(interval),
        }),
        Some(MergeResult::NotReady(why)) => Err(StepError::Failed(format!(
            "pull request {n} in {repo} is not ready to merge ({why}) and wait is disabled"
        ))),
    }
}

/// They change the remote: where pushing is not allowed (`haul run-local` without `--push`),
/// nothing from them on runs.
const CHANGES_REMOTE: Needs = Needs {
    git_credentials: true,
    push: true,
    ..Needs::NOTHING
};

step! {
    pub struct GitOpenPr = "git-open-pr", OpenConfig,
    needs: CHANGES_REMOTE,
    |cfg, env| open(cfg, env)
}

step! {
    pub struct GitWaitForPr = "git-wait-for-pr", WaitConfig,
    needs: Needs { git_credentials: true, ..Needs::NOTHING },
    |cfg, env| wait(cfg, env)
}

step! {
    pub struct GitMergePr = "git-merge-pr", MergeConfig,
    needs: CHANGES_REMOTE,
    |cfg, env| merge(cfg, env)
}

#[cfg(test)]
#[path = "git_pr_tests.rs"]
mod tests;
