//! Commit discovery for a Warehouse's Git subscriptions, with the rules of Kargo's
//! `pkg/subscription/git.go` and `pkg/controller/git/commit/*`.
//!
//! [`discover_commits`] starts with one `git ls-remote`. When the refs that decide the outcome
//! (the branch head for `NewestFromBranch`, the filtered tags and what they point to for the
//! tag strategies) are the ones the previous discovery recorded in `observedRefs`, the previous
//! result is returned as it is and nothing is fetched (Kargo's short-circuit). Otherwise only
//! what selection needs is fetched into the shared [`RepoCache`]: the branch with a shallow
//! history that is deepened while path or expression filters need more commits, or the
//! candidate tags with a depth of one (two with path filters, for the first-parent diff).
//!
//! # Strategies
//!
//! * `NewestFromBranch` (the default): the branch's first-parent history, newest first. Without
//!   `branch`, the branch the remote's `HEAD` points to (else `main`, else `master`).
//! * `SemVer`: tags that parse as semantic versions (`strictSemvers`) and satisfy
//!   `semverConstraint`, highest version first (ties by tag, descending).
//! * `Lexical`: tags in reverse byte-wise order.
//! * `NewestTag`: tags by creation date (the tagger date of an annotated tag, the commit date of
//!   a lightweight one), newest first, ties by tag descending.
//!
//! `allowTagsRegexes` / `ignoreTagsRegexes` (and the singular spellings) filter the tag
//! strategies. `expressionFilter`, `includePaths` / `excludePaths` apply to every strategy, and
//! `since` to `NewestFromBranch` only (as in Kargo). A commit passes the path filters when it
//! changed (against its first parent) at least one path that is included and not excluded; a
//! selector is a path prefix (`charts/app` covers `charts/app/values.yaml`), `glob:<pattern>`
//! (doublestar syntax: `*`, `**`, `?`, `[...]`, `{a,b}`) or `regex:`/`regexp:<regex>`
//! (unanchored). The walk of a branch stops at the first commit older than `since`. At most
//! `discoveryLimit` commits are returned.
//!
//! # observedRefs
//!
//! Kargo's shape: `{branchHead: <sha>}` for `NewestFromBranch`, `{tags: [{name, id}]}` (the
//! filtered tags and the objects they name, sorted by name) for the tag strategies. Above 1000
//! tags nothing is recorded (as in Kargo) and every discovery fetches. A spec change is not
//! answered from the previous result because the caller passes `previous` only while the
//! Warehouse's `observedGeneration` is current.
//!
//! # expressionFilter
//!
//! Evaluated with [`crate::expressions::evaluate_expression`] for each commit or tag, with the
//! variables Kargo documents: `id`, `commitDate`, `author`, `committer` and `subject` for
//! branches; `tag`, `id`, `creatorDate`, `author`, `committer`, `subject`, `tagger` and
//! `annotation` for tags. Dates are times at the committer's (tagger's) UTC offset, as Kargo's
//! Go `time.Time` values are: `commitDate.After(date('2025-01-01'))`, `creatorDate.Year() >=
//! 2025`, `commitDate > date('2025-01-01')` (comparing a time with a string is an error there
//! too). A result that is not a bool must read as one the way Go's `strconv.ParseBool` reads
//! it.
//!
//! # Transport
//!
//! `insecureSkipTLSVerify` skips certificate verification (`http.sslVerify=false`) for this
//! subscription's git commands only; `blobless` fetches into the cache's partial clone of the
//! repository (`--filter=blob:none`), as Kargo does ([`remote_options`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use regex::Regex;
use serde_json::Value;

use super::semver_constraint::{Constraint, parse_version};
use super::subscription::{Subscriber, SubscriptionProblem};
use super::tag_filter::TagFilter;
use super::tag_selection::{
    lexical_candidates, newest_build_candidates, newest_build_order, semver_candidates,
};
use crate::api::{
    CommitSelectionStrategy, DiscoveredCommit, DiscoveredRef, GitDiscoveryRefs, GitDiscoveryResult,
    GitSubscription,
};
use crate::credentials::{CredType, FoundCredentials};
use crate::doublestar::Glob;
use crate::expressions::{Env, ErrorKind, NoFunctions, evaluate_expression};
use crate::git::{Credentials, GitError, RemoteOptions, RepoCache};

/// Tags recorded in `observedRefs`; above this (Kargo's `maxObservedTags`) nothing is recorded.
const MAX_OBSERVED_TAGS: usize = 1000;
/// Kargo shortens discovered subjects to this many characters (the 50/72 rule, generously).
const MAX_SUBJECT_CHARS: usize = 80;
/// Beyond this shallow depth, the whole history of a branch is fetched.
const MAX_SHALLOW_DEPTH: u32 = 5_000;
/// Tags fetched and listed per git invocation (keeps command lines short).
const TAG_CHUNK: usize = 250;
/// Fields of one commit in `git log` output, after a record separator.
const LOG_FORMAT: &str = "--format=%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%ct %cz%x1f%s";
/// Fields of one tag in `git for-each-ref` output: the tag's own, then those of the object it
/// points to (`*`), for annotated tags.
const TAG_FORMAT: &str = "--format=%1e%(refname)%1f%(objecttype)%1f%(objectname)%1f\
    %(*objecttype)%1f%(*objectname)%1f%(creatordate:raw)%1f%(taggername)%1f%(taggeremail)%1f\
    %(authorname)%1f%(authoremail)%1f%(committername)%1f%(committeremail)%1f%(subject)%1f\
    %(*authorname)%1f%(*authoremail)%1f%(*committername)%1f%(*committeremail)%1f%(*subject)%1f\
    %(contents)";

/// Why commit discovery failed. Every variant names the repository URL, without credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitDiscoveryError {
    /// A field of the subscription is unusable (bad regex, constraint, path selector, branch
    /// name or expression).
    #[error("invalid git subscription for {repo_url}: {field}: {reason}")]
    InvalidSubscription {
        repo_url: String,
        field: &'static str,
        reason: String,
    },
    /// The server refused the credentials, or none were found.
    #[error(
        "authentication to git repository {repo_url} failed: check the Secret labelled \
         `kargo.akuity.io/cred-type: git` whose repoURL matches this URL (username and \
         password/token, or SSH private key)"
    )]
    Auth { repo_url: String },
    /// The repository does not exist (or the credentials cannot see it).
    #[error("git repository {repo_url} not found")]
    RepoNotFound { repo_url: String },
    /// The subscribed branch does not exist.
    #[error("branch {branch:?} not found in git repository {repo_url}")]
    BranchNotFound { repo_url: String, branch: String },
    /// The server could not be reached, the transfer broke off or timed out.
    #[error("network error talking to git repository {repo_url}: {detail}")]
    Network { repo_url: String, detail: String },
    /// A ref listed by `ls-remote` was gone when it was fetched (the remote is changing).
    #[error("the refs of git repository {repo_url} changed during discovery")]
    RefsChanged { repo_url: String },
    /// Any other failure of git.
    #[error("discovering commits in git repository {repo_url}: {source}")]
    Git {
        repo_url: String,
        #[source]
        source: GitError,
    },
}

impl GitDiscoveryError {
    /// The repository URL the error is about (without credentials).
    pub fn repo_url(&self) -> &str {
        match self {
            Self::InvalidSubscription { repo_url, .. }
            | Self::Auth { repo_url }
            | Self::RepoNotFound { repo_url }
            | Self::BranchNotFound { repo_url, .. }
            | Self::Network { repo_url, .. }
            | Self::RefsChanged { repo_url }
            | Self::Git { repo_url, .. } => repo_url,
        }
    }

    /// Whether retrying later may succeed without a change to the subscription, the
    /// credentials or the repository.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. } | Self::RefsChanged { .. } => true,
            Self::Git { source, .. } => !source.is_terminal(),
            _ => false,
        }
    }

    fn from_git(repo_url: &str, e: GitError) -> Self {
        let repo_url = repo_url.to_string();
        match e {
            GitError::Auth { .. } => Self::Auth { repo_url },
            GitError::RepoNotFound { .. } => Self::RepoNotFound { repo_url },
            GitError::BranchNotFound { branch, .. } => Self::BranchNotFound { repo_url, branch },
            GitError::Network { detail, .. } => Self::Network { repo_url, detail },
            GitError::Timeout { op, after, .. } => Self::Network {
                repo_url,
                detail: format!("git {op} timed out after {}s", after.as_secs()),
            },
            GitError::InvalidUrl { reason, .. } => Self::InvalidSubscription {
                repo_url,
                field: "repoURL",
                reason,
            },
            source => Self::Git { repo_url, source },
        }
    }
}

/// Discovers the commits of `sub`, newest (or best) first, at most `discoveryLimit` of them.
///
/// `previous` is this subscription's result from the last discovery (from the Warehouse
/// status, passed only while the spec is unchanged). When the remote's relevant refs are
/// unchanged since then, it is returned as it is without fetching anything. The result's `subscriptionName` is
/// taken from `previous` (the caller sets it for named subscriptions); its `observedRefs` are
/// recorded for the next discovery.
pub async fn discover_commits(
    cache: &RepoCache,
    sub: &GitSubscription,
    creds: &Credentials,
    previous: Option<&GitDiscoveryResult>,
) -> Result<GitDiscoveryResult, GitDiscoveryError> {
    let plan = GitPlan::compile(sub).map_err(|p| p.into_error(sub))?;
    discover_planned_commits(cache, sub, &plan, creds, previous).await
}

/// [`discover_commits`] of a subscription compiled before.
pub async fn discover_planned_commits(
    cache: &RepoCache,
    sub: &GitSubscription,
    plan: &GitPlan,
    creds: &Credentials,
    previous: Option<&GitDiscoveryResult>,
) -> Result<GitDiscoveryResult, GitDiscoveryError> {
    let repo = display_url(&sub.repo_url);
    let started = Instant::now();
    let (refs, head) = cache
        .ls_remote_with_head(&sub.repo_url, creds, remote_options(sub))
        .await
        .map_err(|e| GitDiscoveryError::from_git(&repo, e))?;
    let run = Run {
        cache,
        creds,
        sub,
        plan,
        repo: &repo,
    };
    let (commits, observed_refs) = match plan.strategy {
        CommitSelectionStrategy::NewestFromBranch => {
            let branch = match &plan.branch {
                Some(b) => b.clone(),
                None => {
                    default_branch(&refs, head).map_err(|reason| run.invalid("branch", reason))?
                }
            };
            let head_ref = format!("refs/heads/{branch}");
            let Some(sha) = refs.iter().find(|(n, _)| *n == head_ref).map(|(_, s)| s) else {
                return Err(GitDiscoveryError::BranchNotFound {
                    repo_url: repo,
                    branch,
                });
            };
            let observed = branch_refs(sha);
            if let Some(prev) = unchanged(previous, sub, &observed) {
                tracing::debug!(repo = %repo, %branch, "branch head unchanged; skipping fetch");
                return Ok(prev.clone());
            }
            let (fetched_head, commits) = run.select_from_branch(&branch).await?;
            (commits, Some(branch_refs(&fetched_head)))
        }
        CommitSelectionStrategy::SemVer
        | CommitSelectionStrategy::Lexical
        | CommitSelectionStrategy::NewestTag => {
            let tags = remote_tags(&refs);
            let names = tags.keys().cloned();
            let candidates = match plan.strategy {
                CommitSelectionStrategy::SemVer => {
                    semver_candidates(names, &plan.filter, plan.constraint.as_ref(), plan.strict)
                }
                CommitSelectionStrategy::Lexical => lexical_candidates(names, &plan.filter),
                _ => newest_build_candidates(names, &plan.filter),
            };
            let observed = tag_refs(&candidates, &tags);
            if let Some(prev) = observed.as_ref().and_then(|o| unchanged(previous, sub, o)) {
                tracing::debug!(repo = %repo, tags = candidates.len(),
                    "tags unchanged; skipping fetch");
                return Ok(prev.clone());
            }
            let commits = if plan.strategy == CommitSelectionStrategy::NewestTag {
                run.newest_tags(&candidates).await?
            } else {
                run.tags_in_order(&candidates).await?
            };
            (commits, observed)
        }
    };
    tracing::info!(repo = %repo, strategy = ?plan.strategy, commits = commits.len(),
        elapsed_ms = started.elapsed().as_millis() as u64, "discovered git commits");
    Ok(GitDiscoveryResult {
        subscription_name: previous.and_then(|p| p.subscription_name.clone()),
        repo_url: sub.repo_url.clone(),
        commits,
        observed_refs,
    })
}

/// Git subscriptions, discovered into the shared clone cache.
pub struct GitSubscriber<'a>(pub &'a RepoCache);

impl Subscriber for GitSubscriber<'_> {
    type Spec = GitSubscription;
    type Plan = GitPlan;
    type Credentials = Credentials;
    type Found = GitDiscoveryResult;
    type Error = GitDiscoveryError;

    const CRED_TYPE: CredType = CredType::Git;

    fn repo_url(spec: &GitSubscription) -> &str {
        &spec.repo_url
    }

    fn credentials(found: Option<&FoundCredentials>) -> Result<Credentials, String> {
        found.map_or(Ok(Credentials::None), crate::credentials::to_git)
    }

    async fn discover(
        &self,
        spec: &GitSubscription,
        plan: &GitPlan,
        creds: &Credentials,
        previous: Option<&GitDiscoveryResult>,
    ) -> Result<GitDiscoveryResult, GitDiscoveryError> {
        discover_planned_commits(self.0, spec, plan, creds, previous).await
    }
}

/// `previous` when it belongs to this repository and recorded exactly `observed`.
fn unchanged<'a>(
    previous: Option<&'a GitDiscoveryResult>,
    sub: &GitSubscription,
    observed: &GitDiscoveryRefs,
) -> Option<&'a GitDiscoveryResult> {
    previous.filter(|p| p.repo_url == sub.repo_url && p.observed_refs.as_ref() == Some(observed))
}

/// `observedRefs` of a branch whose tip is `head`.
fn branch_refs(head: &str) -> GitDiscoveryRefs {
    GitDiscoveryRefs {
        branch_head: Some(head.to_string()),
        tags: Vec::new(),
    }
}

/// `observedRefs` for the filtered tags `names`, sorted by name; `None` above
/// [`MAX_OBSERVED_TAGS`] (a truncated list could match while a dropped tag moved).
fn tag_refs(names: &[String], tags: &BTreeMap<String, String>) -> Option<GitDiscoveryRefs> {
    if names.len() > MAX_OBSERVED_TAGS {
        return None;
    }
    let mut refs: Vec<DiscoveredRef> = names
        .iter()
        .filter_map(|n| {
            Some(DiscoveredRef {
                name: n.clone(),
                id: tags.get(n)?.clone(),
            })
        })
        .collect();
    refs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Some(GitDiscoveryRefs {
        branch_head: None,
        tags: refs,
    })
}

/// The branch `HEAD` points to, else `main`, else `master` (else `main`, which then is not
/// found).
fn default_branch(refs: &[(String, String)], head: Option<String>) -> Result<String, String> {
    if let Some(h) = head {
        validate_branch(&h)?;
        return Ok(h);
    }
    let has = |b: &str| refs.iter().any(|(n, _)| n == &format!("refs/heads/{b}"));
    Ok(if !has("main") && has("master") {
        "master".into()
    } else {
        "main".into()
    })
}

/// The tags in `ls-remote` output: name → the object the ref names (the tag object of an
/// annotated tag, so a re-created tag counts as a change).
fn remote_tags(refs: &[(String, String)]) -> BTreeMap<String, String> {
    refs.iter()
        .filter_map(|(name, sha)| {
            let tag = name.strip_prefix("refs/tags/")?;
            (!tag.ends_with("^{}")).then(|| (tag.to_string(), sha.clone()))
        })
        .collect()
}

// ------------------------------------------------------------------------------------- the plan

/// A git subscription compiled once: its selection settings, regexes, constraint and path
/// selectors.
pub struct GitPlan {
    strategy: CommitSelectionStrategy,
    branch: Option<String>,
    filter: TagFilter,
    constraint: Option<Constraint>,
    strict: bool,
    expression: Option<String>,
    include: Vec<PathSelector>,
    exclude: Vec<PathSelector>,
    since: Option<Timestamp>,
    limit: usize,
}

impl SubscriptionProblem {
    /// The discovery error of a git subscription that does not compile.
    pub fn into_error(self, sub: &GitSubscription) -> GitDiscoveryError {
        GitDiscoveryError::InvalidSubscription {
            repo_url: display_url(&sub.repo_url),
            field: self.field,
            reason: self.message,
        }
    }
}

impl GitPlan {
    /// Compiles `sub`, or names the first problem.
    pub fn compile(sub: &GitSubscription) -> Result<Self, SubscriptionProblem> {
        Self::new(sub).map_err(|(field, reason)| SubscriptionProblem::new(field, reason))
    }

    fn new(sub: &GitSubscription) -> Result<Self, (&'static str, String)> {
        let strategy = sub.commit_selection_strategy;
        let tags = strategy != CommitSelectionStrategy::NewestFromBranch;
        let branch = sub
            .branch
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty());
        if let Some(b) = branch {
            validate_branch(b).map_err(|r| ("branch", r))?;
        }
        if tags && sub.allow_tags.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err((
                "allowTags",
                "no longer supported; use allowTagsRegexes".into(),
            ));
        }
        if tags && !sub.ignore_tags.is_empty() {
            return Err((
                "ignoreTags",
                "no longer supported; use ignoreTagsRegexes".into(),
            ));
        }
        let filter = if tags {
            TagFilter::of(sub).map_err(|e| {
                (
                    e.field,
                    format!("invalid regular expression {:?}: {}", e.pattern, e.error),
                )
            })?
        } else {
            TagFilter::allow_all()
        };
        // As Kargo: only an empty constraint is no constraint; blanks are refused.
        let raw_constraint = sub.semver_constraint.as_deref().filter(|c| !c.is_empty());
        let constraint = match (strategy, raw_constraint) {
            (CommitSelectionStrategy::SemVer, Some(c)) => {
                Some(Constraint::parse(c).map_err(|e| ("semverConstraint", e.reason))?)
            }
            _ => None,
        };
        let expression = sub
            .expression_filter
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        if let Some(expr) = &expression {
            check_expression_syntax(expr).map_err(|r| ("expressionFilter", r))?;
        }
        let include = parse_selectors(&sub.include_paths).map_err(|r| ("includePaths", r))?;
        let exclude = parse_selectors(&sub.exclude_paths).map_err(|r| ("excludePaths", r))?;
        let since = sub.since.as_ref().map(|t| t.0);
        let limit = usize::try_from(sub.discovery_limit.clamp(1, 100)).unwrap_or(20);
        Ok(Self {
            strategy,
            branch: branch.map(str::to_string),
            filter,
            constraint,
            strict: sub.strict_semvers,
            expression,
            include,
            exclude,
            since,
            limit,
        })
    }

    fn has_path_filters(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Whether commits or tags may be dropped after their metadata is read.
    fn filters_metadata(&self) -> bool {
        self.has_path_filters() || self.expression.is_some()
    }

    /// Kargo's `MatchesRef`: whether a pushed ref (`refs/heads/…` or `refs/tags/…`) concerns
    /// this subscription, so a webhook refreshes only the Warehouses a push can change. A
    /// branch subscription without a branch follows the default branch, which a push does not
    /// name; like Kargo, `main` and `master` are taken for it.
    pub fn matches_ref(&self, pushed: &str) -> bool {
        if self.strategy == CommitSelectionStrategy::NewestFromBranch {
            return pushed
                .strip_prefix("refs/heads/")
                .is_some_and(|b| match &self.branch {
                    Some(branch) => branch == b,
                    None => b == "main" || b == "master",
                });
        }
        let Some(tag) = pushed.strip_prefix("refs/tags/") else {
            return false;
        };
        if !self.filter.matches(tag) {
            return false;
        }
        if self.strategy != CommitSelectionStrategy::SemVer {
            return true;
        }
        parse_version(tag, self.strict)
            .is_some_and(|v| self.constraint.as_ref().is_none_or(|c| c.matches(&v)))
    }

    /// Whether a push that changed `paths` can yield a commit under the subscription's
    /// `includePaths` / `excludePaths` (always, without path filters).
    pub fn matches_changed_paths(&self, paths: &[String]) -> bool {
        !self.has_path_filters() || self.paths_match(paths)
    }

    /// Kargo's rule: at least one changed path is included (or no include selectors) and not
    /// excluded.
    fn paths_match(&self, paths: &[String]) -> bool {
        paths.iter().any(|p| {
            (self.include.is_empty() || self.include.iter().any(|s| s.matches(p)))
                && !self.exclude.iter().any(|s| s.matches(p))
        })
    }
}

/// Branch names git and Kargo's `BRANCH_PATTERN` accept; nothing that could read as an option.
fn validate_branch(b: &str) -> Result<(), String> {
    let ok = !b.is_empty()
        && b.len() <= 255
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && !b.contains("/.")
        && !b
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{b:?} is not a valid branch name"))
    }
}

/// Rejects an expression that does not parse (evaluation errors only show with real values).
fn check_expression_syntax(expr: &str) -> Result<(), String> {
    let mut env = Env::new();
    for name in [
        "id",
        "commitDate",
        "creatorDate",
        "author",
        "committer",
        "subject",
        "tag",
        "tagger",
        "annotation",
    ] {
        env.set(name, Value::String(String::new()));
    }
    match evaluate_expression(expr, &env, &NoFunctions) {
        Err(e) if e.kind == ErrorKind::Syntax => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Go's `strconv.ParseBool` of the value's `%v` text, as Kargo reads a non-bool result.
fn go_bool(v: &Value) -> Option<bool> {
    let text = match v {
        Value::Bool(b) => return Some(*b),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    match text.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

// ------------------------------------------------------------------------------ path selectors

/// One `includePaths` / `excludePaths` entry.
#[derive(Debug, Clone)]
enum PathSelector {
    /// A directory or file and everything below it (Kargo's base-dir matcher). Empty: all.
    Prefix(String),
    /// `glob:` (doublestar syntax, as Kargo).
    Glob(Glob),
    /// `regex:` / `regexp:` (unanchored).
    Regex(Regex),
}

impl PathSelector {
    fn parse(selector: &str) -> Result<Self, String> {
        if let Some(glob) = selector.strip_prefix("glob:") {
            return Glob::new(glob).map(Self::Glob).map_err(|e| e.to_string());
        }
        if let Some(re) = selector
            .strip_prefix("regex:")
            .or_else(|| selector.strip_prefix("regexp:"))
        {
            return Regex::new(re)
                .map(Self::Regex)
                .map_err(|e| format!("invalid regular expression {re:?}: {e}"));
        }
        Ok(Self::Prefix(clean_path(selector)))
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Prefix(base) => {
                base.is_empty()
                    || path
                        .strip_prefix(base.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            Self::Glob(g) => g.matches(path),
            Self::Regex(re) => re.is_match(path),
        }
    }
}

fn parse_selectors(selectors: &[String]) -> Result<Vec<PathSelector>, String> {
    selectors.iter().map(|s| PathSelector::parse(s)).collect()
}

/// A repository-relative path with `.`, `..` and empty components resolved (`./a//b/` → `a/b`).
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

// ------------------------------------------------------------------------------- git metadata

/// One commit from `git log`.
#[derive(Debug, Clone)]
struct LoggedCommit {
    id: String,
    /// Empty for a root commit, and for a commit at the boundary of a shallow history.
    parents: Vec<String>,
    author: String,
    committer: String,
    time: i64,
    /// The committer's UTC offset in seconds, which Kargo's `commitDate` keeps.
    offset: i32,
    subject: String,
    /// Paths changed against the first parent (only listed when path filters are set).
    paths: Vec<String>,
}

/// Parses `git log -z` output made with [`LOG_FORMAT`] (and `--name-only`).
fn parse_log(out: &str) -> Vec<LoggedCommit> {
    out.split('\u{1e}')
        .filter_map(|record| {
            let mut items = record.split('\0');
            let header = items.next()?;
            let f: Vec<&str> = header.splitn(8, '\u{1f}').collect();
            if f.len() < 8 || f[0].is_empty() {
                return None;
            }
            let paths = items
                .map(|p| p.trim_start_matches('\n'))
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            Some(LoggedCommit {
                id: f[0].to_string(),
                parents: f[1].split_whitespace().map(str::to_string).collect(),
                author: person(f[2], f[3]),
                committer: person(f[4], f[5]),
                time: raw_date(f[6]).0.unwrap_or(0),
                offset: raw_date(f[6]).1,
                subject: f[7].trim_end_matches(['\n', '\r']).to_string(),
                paths,
            })
        })
        .collect()
}

/// Git's raw date, `1700000000 +0130`: Unix seconds and the UTC offset in seconds.
fn raw_date(raw: &str) -> (Option<i64>, i32) {
    let mut parts = raw.split_whitespace();
    let secs = parts.next().and_then(|s| s.parse().ok());
    let offset = parts
        .next()
        .filter(|z| z.len() == 5 && z.is_char_boundary(1) && z.is_char_boundary(3))
        .and_then(|z| {
            let sign = match &z[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hours: i32 = z[1..3].parse().ok()?;
            let minutes: i32 = z[3..].parse().ok()?;
            Some(sign * (hours * 3600 + minutes * 60))
        })
        .unwrap_or(0);
    (secs, offset)
}

/// `Name <email>`; `email` may already carry its angle brackets.
fn person(name: &str, email: &str) -> String {
    let email = email.trim().trim_start_matches('<').trim_end_matches('>');
    match (name.trim(), email) {
        ("", "") => String::new(),
        (n, "") => n.to_string(),
        ("", e) => format!("<{e}>"),
        (n, e) => format!("{n} <{e}>"),
    }
}

/// One tag from `git for-each-ref` with [`TAG_FORMAT`].
#[derive(Debug, Clone)]
struct TagMeta {
    name: String,
    commit: String,
    created: Option<i64>,
    /// The tagger's (or, for a lightweight tag, the committer's) UTC offset in seconds.
    created_offset: i32,
    author: String,
    committer: String,
    subject: String,
    tagger: String,
    annotation: String,
}

/// Parses `git for-each-ref` output made with [`TAG_FORMAT`]. Tags that do not lead to a commit
/// (in one step) are left out.
fn parse_tags(out: &str) -> Vec<TagMeta> {
    out.split('\u{1e}')
        .filter_map(|record| {
            let f: Vec<&str> = record.splitn(19, '\u{1f}').collect();
            if f.len() < 19 {
                return None;
            }
            let name = f[0].strip_prefix("refs/tags/")?.to_string();
            let (created, created_offset) = raw_date(f[5]);
            match (f[1], f[3]) {
                ("commit", _) => Some(TagMeta {
                    name,
                    commit: f[2].to_string(),
                    created,
                    created_offset,
                    author: person(f[8], f[9]),
                    committer: person(f[10], f[11]),
                    subject: f[12].to_string(),
                    tagger: String::new(),
                    annotation: String::new(),
                }),
                ("tag", "commit") => Some(TagMeta {
                    name,
                    commit: f[4].to_string(),
                    created,
                    created_offset,
                    author: person(f[13], f[14]),
                    committer: person(f[15], f[16]),
                    subject: f[17].to_string(),
                    tagger: person(f[6], f[7]),
                    annotation: f[18].trim_end().to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Parses `git log --no-walk --name-only -z --format=%x1e%H` output: paths by commit.
fn parse_paths(out: &str) -> HashMap<String, Vec<String>> {
    out.split('\u{1e}')
        .filter_map(|record| {
            let mut items = record.split('\0');
            let id = items.next()?.trim();
            if id.is_empty() {
                return None;
            }
            let paths = items
                .map(|p| p.trim_start_matches('\n'))
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            Some((id.to_string(), paths))
        })
        .collect()
}

#[cfg(test)]
fn rfc3339(secs: Option<i64>) -> String {
    secs.and_then(|s| Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A date for `expressionFilter` at its UTC offset, as Kargo parses git's dates (so `.Hour()`
/// is the committer's hour); Go's zero time (January 1, year 1, UTC) when git gave none.
fn go_time(secs: Option<i64>, offset: i32) -> jiff::Zoned {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    let at = secs
        .and_then(|s| Timestamp::from_second(s).ok())
        .or_else(|| Timestamp::from_second(GO_ZERO_TIME).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let zone = match jiff::tz::Offset::from_seconds(offset) {
        Ok(o) if offset != 0 => jiff::tz::TimeZone::fixed(o),
        _ => jiff::tz::TimeZone::UTC,
    };
    at.to_zoned(zone)
}

fn time(secs: Option<i64>) -> Option<Time> {
    secs.and_then(|s| Timestamp::from_second(s).ok()).map(Time)
}

/// Kargo's `shortenString(subject, 80)`, by characters.
fn shorten(subject: &str) -> String {
    if subject.chars().count() <= MAX_SUBJECT_CHARS {
        return subject.to_string();
    }
    let mut s: String = subject.chars().take(MAX_SUBJECT_CHARS - 3).collect();
    s.push_str("...");
    s
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The URL for messages and logs: no password, and no user name for http(s).
fn display_url(raw: &str) -> String {
    let url = raw.trim();
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let scheme = url[..scheme_end].to_ascii_lowercase();
    let userinfo = &rest[..at];
    let keep = match userinfo.split_once(':') {
        _ if scheme == "http" || scheme == "https" => "",
        Some((user, _)) => user,
        None => userinfo,
    };
    let sep = if keep.is_empty() { "" } else { "@" };
    format!("{}://{keep}{sep}{}", &url[..scheme_end], &rest[at + 1..])
}

/// How discovery talks to the subscription's repository.
pub fn remote_options(sub: &GitSubscription) -> RemoteOptions {
    RemoteOptions {
        skip_tls_verify: sub.insecure_skip_tls_verify == Some(true),
        blobless: sub.blobless == Some(true),
    }
}

// ---------------------------------------------------------------------------------- selection

/// One discovery run's context.
struct Run<'a> {
    cache: &'a RepoCache,
    creds: &'a Credentials,
    sub: &'a GitSubscription,
    plan: &'a GitPlan,
    repo: &'a str,
}

impl Run<'_> {
    fn invalid(&self, field: &'static str, reason: String) -> GitDiscoveryError {
        GitDiscoveryError::InvalidSubscription {
            repo_url: self.repo.to_string(),
            field,
            reason,
        }
    }

    fn git_err(&self, e: GitError) -> GitDiscoveryError {
        GitDiscoveryError::from_git(self.repo, e)
    }

    async fn fetch_and_read(
        &self,
        refspecs: &[String],
        depth: Option<u32>,
        reads: &[Vec<String>],
    ) -> Result<Option<Vec<String>>, GitDiscoveryError> {
        self.cache
            .fetch_and_read(
                &self.sub.repo_url,
                self.creds,
                remote_options(self.sub),
                refspecs,
                depth,
                reads,
            )
            .await
            .map_err(|e| self.git_err(e))
    }

    /// Whether the expression filter (if any) keeps the commit or tag described by `vars`.
    /// `date` is the commit's or tag's date variable, its Unix seconds and UTC offset.
    fn expression_keeps(
        &self,
        vars: Vec<(&str, String)>,
        date: (&str, Option<i64>, i32),
    ) -> Result<bool, GitDiscoveryError> {
        let Some(expr) = &self.plan.expression else {
            return Ok(true);
        };
        let mut env = Env::new();
        for (k, v) in vars {
            env.set(k, Value::String(v));
        }
        env.set_time(date.0, go_time(date.1, date.2));
        let v = evaluate_expression(expr, &env, &NoFunctions)
            .map_err(|e| self.invalid("expressionFilter", e.to_string()))?;
        go_bool(&v).ok_or_else(|| {
            self.invalid(
                "expressionFilter",
                format!("the expression must produce a boolean, got {v}"),
            )
        })
    }

    /// `NewestFromBranch`: the fetched head and the selected commits of `branch`.
    async fn select_from_branch(
        &self,
        branch: &str,
    ) -> Result<(String, Vec<DiscoveredCommit>), GitDiscoveryError> {
        let plan = self.plan;
        let limit = plan.limit;
        let with_paths = plan.has_path_filters();
        let refspec = vec![format!("+refs/heads/{branch}:refs/remotes/origin/{branch}")];
        let tracking = format!("refs/remotes/origin/{branch}");
        let step = u32::try_from(limit).unwrap_or(100);
        let mut depth = if plan.filters_metadata() {
            (step * 4).max(40)
        } else {
            step
        };
        loop {
            let full = depth > MAX_SHALLOW_DEPTH;
            let mut log: Vec<String> = ["log", "--first-parent", "--no-renames", "-z", LOG_FORMAT]
                .map(String::from)
                .to_vec();
            if with_paths {
                log.extend(["--diff-merges=first-parent", "--name-only"].map(String::from));
            }
            if !full {
                log.push(format!("--max-count={depth}"));
            }
            log.push(tracking.clone());
            let reads = [
                vec![
                    "rev-parse".to_string(),
                    "--verify".to_string(),
                    format!("{tracking}^{{commit}}"),
                ],
                log,
            ];
            let fetch_depth = (!full).then_some(depth);
            let Some(out) = self.fetch_and_read(&refspec, fetch_depth, &reads).await? else {
                return Err(GitDiscoveryError::BranchNotFound {
                    repo_url: self.repo.to_string(),
                    branch: branch.to_string(),
                });
            };
            let head = out[0].trim().to_string();
            let commits = parse_log(&out[1]);
            let hit_max = !full && commits.len() >= depth as usize;
            // A parentless last commit is either the root or the edge of a shallow history.
            let boundary = match commits.last() {
                Some(last) if !full && last.parents.is_empty() => self.is_grafted(&last.id).await?,
                _ => false,
            };
            let mut selected = Vec::new();
            let mut done = false;
            for (i, c) in commits.iter().enumerate() {
                if plan.since.is_some_and(|s| c.time < s.as_second()) {
                    done = true;
                    break;
                }
                if with_paths && boundary && i + 1 == commits.len() {
                    // Its diff against the (missing) parent is unknown: deepen first.
                    break;
                }
                let keep = self.expression_keeps(
                    vec![
                        ("id", c.id.clone()),
                        ("author", c.author.clone()),
                        ("committer", c.committer.clone()),
                        ("subject", c.subject.clone()),
                    ],
                    ("commitDate", Some(c.time), c.offset),
                )?;
                if !keep || (with_paths && !plan.paths_match(&c.paths)) {
                    continue;
                }
                selected.push(DiscoveredCommit {
                    id: Some(c.id.clone()),
                    branch: Some(branch.to_string()),
                    tag: None,
                    subject: non_empty(shorten(&c.subject)),
                    author: non_empty(c.author.clone()),
                    committer: non_empty(c.committer.clone()),
                    creator_date: time(Some(c.time)),
                });
                if selected.len() >= limit {
                    done = true;
                    break;
                }
            }
            if done || (!hit_max && !boundary) {
                tracing::debug!(repo = %self.repo, branch, depth, listed = commits.len(),
                    selected = selected.len(), "selected commits from branch");
                return Ok((head, selected));
            }
            tracing::debug!(repo = %self.repo, branch, depth, selected = selected.len(),
                "not enough commits pass the filters; deepening the history");
            depth = depth.saturating_mul(4);
        }
    }

    /// Whether the parentless commit `id` has parents that a shallow fetch left out.
    async fn is_grafted(&self, id: &str) -> Result<bool, GitDiscoveryError> {
        let reads = [vec![
            "cat-file".to_string(),
            "commit".to_string(),
            id.to_string(),
        ]];
        let raw = self
            .fetch_and_read(&[], None, &reads)
            .await?
            .and_then(|o| o.into_iter().next())
            .unwrap_or_default();
        Ok(raw
            .lines()
            .take_while(|l| !l.is_empty())
            .any(|l| l.starts_with("parent ")))
    }

    /// Fetches `names` (with enough history for their first-parent diffs when path filters
    /// are set) and reads their metadata.
    async fn tag_metadata(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, TagMeta>, GitDiscoveryError> {
        let depth = if self.plan.has_path_filters() { 2 } else { 1 };
        let mut metas = HashMap::new();
        for chunk in names.chunks(TAG_CHUNK) {
            let refspecs: Vec<String> = chunk
                .iter()
                .map(|n| format!("+refs/tags/{n}:refs/tags/{n}"))
                .collect();
            let mut read = vec!["for-each-ref".to_string(), TAG_FORMAT.to_string()];
            read.extend(chunk.iter().map(|n| format!("refs/tags/{n}")));
            let Some(out) = self.fetch_and_read(&refspecs, Some(depth), &[read]).await? else {
                return Err(GitDiscoveryError::RefsChanged {
                    repo_url: self.repo.to_string(),
                });
            };
            for m in parse_tags(&out[0]) {
                if chunk.contains(&m.name) {
                    metas.insert(m.name.clone(), m);
                }
            }
        }
        Ok(metas)
    }

    /// Changed paths (against the first parent) of already fetched commits.
    async fn commit_paths(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<String>>, GitDiscoveryError> {
        let mut unique: Vec<&str> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut paths = HashMap::new();
        for chunk in unique.chunks(TAG_CHUNK) {
            let mut read: Vec<String> = [
                "log",
                "--no-walk=unsorted",
                "--diff-merges=first-parent",
                "--no-renames",
                "--name-only",
                "-z",
                "--format=%x1e%H",
            ]
            .map(String::from)
            .to_vec();
            read.extend(chunk.iter().map(|s| s.to_string()));
            let out = self.fetch_and_read(&[], None, &[read]).await?;
            if let Some(text) = out.as_ref().and_then(|o| o.first()) {
                paths.extend(parse_paths(text));
            }
        }
        Ok(paths)
    }

    /// Applies the expression and path filters to the `ordered` tags, appending those that
    /// pass to `selected` until the limit.
    async fn keep_tags(
        &self,
        ordered: &[&TagMeta],
        selected: &mut Vec<DiscoveredCommit>,
    ) -> Result<(), GitDiscoveryError> {
        let paths = if self.plan.has_path_filters() {
            let ids: Vec<&str> = ordered.iter().map(|m| m.commit.as_str()).collect();
            self.commit_paths(&ids).await?
        } else {
            HashMap::new()
        };
        for m in ordered {
            if selected.len() >= self.plan.limit {
                break;
            }
            let keep = self.expression_keeps(
                vec![
                    ("tag", m.name.clone()),
                    ("id", m.commit.clone()),
                    ("author", m.author.clone()),
                    ("committer", m.committer.clone()),
                    ("subject", m.subject.clone()),
                    ("tagger", m.tagger.clone()),
                    ("annotation", m.annotation.clone()),
                ],
                ("creatorDate", m.created, m.created_offset),
            )?;
            if !keep {
                continue;
            }
            if self.plan.has_path_filters() {
                let changed = paths.get(&m.commit).map(Vec::as_slice).unwrap_or_default();
                if !self.plan.paths_match(changed) {
                    continue;
                }
            }
            selected.push(DiscoveredCommit {
                id: Some(m.commit.clone()),
                branch: None,
                tag: Some(m.name.clone()),
                subject: non_empty(shorten(&m.subject)),
                author: non_empty(m.author.clone()),
                committer: non_empty(m.committer.clone()),
                creator_date: time(m.created),
            });
        }
        Ok(())
    }

    /// `SemVer` / `Lexical`: `candidates` are already in order; metadata is fetched a batch at
    /// a time until enough pass the filters.
    async fn tags_in_order(
        &self,
        candidates: &[String],
    ) -> Result<Vec<DiscoveredCommit>, GitDiscoveryError> {
        let limit = self.plan.limit;
        let batch = if self.plan.filters_metadata() {
            limit * 2
        } else {
            limit
        };
        let mut selected = Vec::new();
        for chunk in candidates.chunks(batch.max(1)) {
            let metas = self.tag_metadata(chunk).await?;
            let ordered: Vec<&TagMeta> = chunk.iter().filter_map(|n| metas.get(n)).collect();
            self.keep_tags(&ordered, &mut selected).await?;
            if selected.len() >= limit {
                break;
            }
        }
        Ok(selected)
    }

    /// `NewestTag`: every candidate's creation date is needed to order them.
    async fn newest_tags(
        &self,
        candidates: &[String],
    ) -> Result<Vec<DiscoveredCommit>, GitDiscoveryError> {
        let metas = self.tag_metadata(candidates).await?;
        let order = newest_build_order(
            metas
                .values()
                .map(|m| (m.name.clone(), m.created))
                .collect(),
        );
        let ordered: Vec<&TagMeta> = order.iter().filter_map(|n| metas.get(n)).collect();
        let limit = self.plan.limit;
        let batch = if self.plan.filters_metadata() {
            limit * 2
        } else {
            limit
        };
        let mut selected = Vec::new();
        for chunk in ordered.chunks(batch.max(1)) {
            self.keep_tags(chunk, &mut selected).await?;
            if selected.len() >= limit {
                break;
            }
        }
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde_json::json;

    use super::*;
    use crate::git::tests::cache;

    const T0: i64 = 1_700_000_000;

    fn git_at(dir: &Path, args: &[&str], when: Option<i64>) -> String {
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Alice Author")
            .env("GIT_AUTHOR_EMAIL", "alice@example.com")
            .env("GIT_COMMITTER_NAME", "Bob Committer")
            .env("GIT_COMMITTER_EMAIL", "bob@example.com")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
        if let Some(t) = when {
            cmd.env("GIT_AUTHOR_DATE", format!("@{t} +0000"))
                .env("GIT_COMMITTER_DATE", format!("@{t} +0000"));
        }
        let out = cmd.output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        git_at(dir, args, None)
    }

    /// A bare "remote" (file://) and a work clone that pushes to it. Every commit or annotated
    /// tag is a minute later than the previous one.
    struct Remote {
        _tmp: tempfile::TempDir,
        url: String,
        work: PathBuf,
        clock: Cell<i64>,
    }

    impl Remote {
        fn new() -> Self {
            Self::with_default_branch("main")
        }

        fn with_default_branch(branch: &str) -> Self {
            let tmp = tempfile::tempdir().expect("tempdir");
            let bare = tmp.path().join("remote.git");
            let work = tmp.path().join("work");
            git(
                tmp.path(),
                &["init", "-q", "--bare", "-b", branch, "remote.git"],
            );
            git(tmp.path(), &["init", "-q", "-b", branch, "work"]);
            let url = format!("file://{}", bare.display());
            git(&work, &["remote", "add", "origin", &url]);
            Self {
                _tmp: tmp,
                url,
                work,
                clock: Cell::new(T0),
            }
        }

        fn tick(&self) -> i64 {
            let t = self.clock.get() + 60;
            self.clock.set(t);
            t
        }

        /// Commits `files` on the current branch (without pushing); returns the SHA.
        fn commit_local(&self, files: &[(&str, &str)], msg: &str) -> String {
            for (path, content) in files {
                let p = self.work.join(path);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(p, content).expect("write");
            }
            git(&self.work, &["add", "-A"]);
            let when = self.tick();
            git_at(
                &self.work,
                &["commit", "-q", "--allow-empty", "-m", msg],
                Some(when),
            );
            git(&self.work, &["rev-parse", "HEAD"])
        }

        /// Commits `files` and pushes the current branch.
        fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
            let sha = self.commit_local(files, msg);
            self.push_head();
            sha
        }

        fn commit_at(&self, when: i64, msg: &str) -> String {
            git_at(
                &self.work,
                &["commit", "-q", "--allow-empty", "-m", msg],
                Some(when),
            );
            self.push_head();
            git(&self.work, &["rev-parse", "HEAD"])
        }

        fn push_head(&self) {
            let branch = git(&self.work, &["symbolic-ref", "--short", "HEAD"]);
            git(
                &self.work,
                &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
            );
        }

        /// Tags HEAD (annotated when `message` is given) and pushes the tag.
        fn tag(&self, name: &str, message: Option<&str>) {
            match message {
                Some(m) => {
                    let when = self.tick();
                    git_at(&self.work, &["tag", "-a", name, "-m", m], Some(when));
                }
                None => {
                    git(&self.work, &["tag", name]);
                }
            }
            git(
                &self.work,
                &["push", "-q", "origin", &format!("refs/tags/{name}")],
            );
        }

        fn head(&self) -> String {
            git(&self.work, &["rev-parse", "HEAD"])
        }
    }

    fn sub(url: &str, extra: Value) -> GitSubscription {
        let mut v = json!({ "repoURL": url });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        serde_json::from_value(v).expect("valid subscription")
    }

    fn ids(r: &GitDiscoveryResult) -> Vec<String> {
        r.commits.iter().filter_map(|c| c.id.clone()).collect()
    }

    fn tags(r: &GitDiscoveryResult) -> Vec<String> {
        r.commits.iter().filter_map(|c| c.tag.clone()).collect()
    }

    fn subjects(r: &GitDiscoveryResult) -> Vec<String> {
        r.commits.iter().filter_map(|c| c.subject.clone()).collect()
    }

    async fn discover(
        cache: &RepoCache,
        sub: &GitSubscription,
        previous: Option<&GitDiscoveryResult>,
    ) -> GitDiscoveryResult {
        discover_commits(cache, sub, &Credentials::None, previous)
            .await
            .unwrap_or_else(|e| panic!("discovery failed: {e}"))
    }

    async fn discover_err(cache: &RepoCache, sub: &GitSubscription) -> GitDiscoveryError {
        match discover_commits(cache, sub, &Credentials::None, None).await {
            Ok(r) => panic!("expected an error, got {r:?}"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn newest_from_branch_lists_first_parent_history_with_metadata() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let mut shas = Vec::new();
        for i in 1..=4 {
            shas.push(remote.commit(&[(&format!("f{i}.txt"), "x")], &format!("commit {i}")));
        }
        git(&remote.work, &["checkout", "-q", "-b", "side"]);
        let side = remote.commit_local(&[("side.txt", "s")], "side work");
        git(&remote.work, &["checkout", "-q", "main"]);
        let when = remote.tick();
        git_at(
            &remote.work,
            &[
                "merge",
                "-q",
                "--no-ff",
                "side",
                "-m",
                "Merge side\n\nwith a body",
            ],
            Some(when),
        );
        remote.push_head();
        let merge = remote.head();

        let s = sub(&remote.url, json!({ "discoveryLimit": 3 }));
        let r = discover(&cache, &s, None).await;
        assert_eq!(
            ids(&r),
            vec![merge.clone(), shas[3].clone(), shas[2].clone()]
        );
        assert!(!ids(&r).contains(&side), "first parent only");
        let c = &r.commits[0];
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert_eq!(c.tag, None);
        assert_eq!(c.subject.as_deref(), Some("Merge side"));
        assert_eq!(
            c.author.as_deref(),
            Some("Alice Author <alice@example.com>")
        );
        assert_eq!(
            c.committer.as_deref(),
            Some("Bob Committer <bob@example.com>")
        );
        assert_eq!(c.creator_date.as_ref().map(|t| t.0.as_second()), Some(when));
        assert_eq!(r.repo_url, remote.url);
        assert_eq!(r.observed_refs, Some(branch_refs(&merge)));
        assert_eq!(cache.stats().clones, 1);

        // The whole (short) history when the limit is larger.
        let all = discover(&cache, &sub(&remote.url, json!({})), None).await;
        assert_eq!(all.commits.len(), 5);
        assert_eq!(all.commits[4].id.as_deref(), Some(shas[0].as_str()));
    }

    #[tokio::test]
    async fn unchanged_refs_skip_the_fetch() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        remote.commit(&[("a.txt", "1")], "one");
        let s = sub(&remote.url, json!({ "branch": "main" }));

        let first = discover(&cache, &s, None).await;
        let before = cache.stats();
        assert!(before.fetches >= 1);
        let second = discover(&cache, &s, Some(&first)).await;
        assert_eq!(second, first);
        assert_eq!(
            cache.stats(),
            before,
            "nothing fetched when the head is unchanged"
        );

        // The name of the previous result is kept.
        let named = GitDiscoveryResult {
            subscription_name: Some("app".into()),
            ..first.clone()
        };
        assert_eq!(
            discover(&cache, &s, Some(&named))
                .await
                .subscription_name
                .as_deref(),
            Some("app")
        );
        assert_eq!(cache.stats(), before);

        // A new commit moves the head: fetched and listed first.
        let new = remote.commit(&[("a.txt", "2")], "two");
        let third = discover(&cache, &s, Some(&second)).await;
        assert_eq!(third.commits[0].id.as_deref(), Some(new.as_str()));
        assert!(cache.stats().fetches > before.fetches);

        // Kargo's observedRefs shape: the branch tip only.
        assert_eq!(third.observed_refs, Some(branch_refs(&new)));

        // An observation Kargo wrote that still matches is honoured: nothing fetched.
        let before = cache.stats();
        let kargo: GitDiscoveryResult = serde_json::from_value(json!({
            "repoURL": remote.url,
            "commits": [{ "id": new, "subject": "listed by Kargo" }],
            "observedRefs": { "branchHead": new },
        }))
        .expect("Kargo-shaped result");
        let kept = discover(&cache, &s, Some(&kargo)).await;
        assert_eq!(kept.commits, kargo.commits);
        assert_eq!(cache.stats(), before);

        // haul's older observedRefs (a list of strings) reads as none: one full discovery.
        let before = cache.stats();
        let old: GitDiscoveryResult = serde_json::from_value(json!({
            "repoURL": remote.url,
            "name": "app",
            "commits": [{ "id": new }],
            "observedRefs": ["config=00", format!("refs/heads/main={new}")],
        }))
        .expect("older haul result");
        assert_eq!(old.observed_refs, None);
        assert_eq!(old.subscription_name.as_deref(), Some("app"));
        let redone = discover(&cache, &s, Some(&old)).await;
        assert_eq!(redone.commits[0].subject.as_deref(), Some("two"));
        assert!(cache.stats().fetches > before.fetches);

        // A previous result of another repository is ignored.
        let before = cache.stats();
        let other = GitDiscoveryResult {
            repo_url: "file:///elsewhere".into(),
            ..third.clone()
        };
        discover(&cache, &s, Some(&other)).await;
        assert!(cache.stats().fetches > before.fetches);
    }

    #[tokio::test]
    async fn default_branch_follows_the_remote_head() {
        let remote = Remote::with_default_branch("trunk");
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let sha = remote.commit(&[("a.txt", "1")], "on trunk");
        let r = discover(&cache, &sub(&remote.url, json!({})), None).await;
        assert_eq!(ids(&r), vec![sha.clone()]);
        assert_eq!(r.commits[0].branch.as_deref(), Some("trunk"));
        assert_eq!(r.observed_refs, Some(branch_refs(&sha)));

        let e = discover_err(&cache, &sub(&remote.url, json!({ "branch": "nope" }))).await;
        assert!(
            matches!(&e, GitDiscoveryError::BranchNotFound { branch, .. } if branch == "nope"),
            "{e:?}"
        );
        assert!(e.to_string().contains(&remote.url), "{e}");
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn path_filters_deepen_the_history_until_enough_commits_match() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let oldest = remote.commit(&[("app/a.txt", "1")], "app a");
        for i in 0..60 {
            remote.commit_local(&[(&format!("docs/{i}.md"), "d")], &format!("docs {i}"));
        }
        remote.commit_local(&[("app/README.md", "r")], "app readme");
        let b = remote.commit_local(&[("app/b.txt", "b")], "app b");
        git(&remote.work, &["checkout", "-q", "-b", "side"]);
        remote.commit_local(&[("app/c.txt", "c")], "app c on side");
        git(&remote.work, &["checkout", "-q", "main"]);
        remote.commit_local(&[("docs/after.md", "x")], "docs after");
        let when = remote.tick();
        git_at(
            &remote.work,
            &["merge", "-q", "--no-ff", "side", "-m", "merge side"],
            Some(when),
        );
        remote.push_head();
        let merge = remote.head();

        let s = sub(
            &remote.url,
            json!({
                "discoveryLimit": 3,
                "includePaths": ["app"],
                "excludePaths": ["glob:**/*.md"],
            }),
        );
        let r = discover(&cache, &s, None).await;
        assert_eq!(ids(&r), vec![merge.clone(), b.clone(), oldest.clone()]);
        assert!(cache.stats().fetches >= 2, "the history was deepened");

        // Without enough matches the walk ends at the root.
        let s = sub(
            &remote.url,
            json!({ "includePaths": ["regex:^app/[ab]\\.txt$"] }),
        );
        let r = discover(&cache, &s, None).await;
        assert_eq!(ids(&r), vec![b.clone(), oldest.clone()]);

        // Excluded everywhere: nothing.
        let s = sub(&remote.url, json!({ "excludePaths": ["app", "docs"] }));
        assert!(discover(&cache, &s, None).await.commits.is_empty());

        // An exact path.
        let s = sub(&remote.url, json!({ "includePaths": ["docs/after.md"] }));
        assert_eq!(subjects(&discover(&cache, &s, None).await), ["docs after"]);
    }

    #[tokio::test]
    async fn since_stops_the_walk_at_older_commits() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let year = 365 * 24 * 3600;
        remote.commit_at(T0, "old");
        remote.commit_at(T0 + year, "middle");
        let newer = remote.commit_at(T0 + 2 * year, "newer");
        let newest = remote.commit_at(T0 + 3 * year, "newest");
        let since = rfc3339(Some(T0 + year + 1));
        let r = discover(&cache, &sub(&remote.url, json!({ "since": since })), None).await;
        assert_eq!(ids(&r), vec![newest, newer]);
    }

    #[tokio::test]
    async fn expression_filter_sees_commit_metadata() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        remote.commit(&[("a", "1")], "feat: one");
        remote.commit(&[("a", "2")], "chore: two");
        remote.commit(&[("a", "3")], "fix: three");
        let s = sub(
            &remote.url,
            json!({ "expressionFilter": "!(subject startsWith 'chore') && author contains 'Alice'" }),
        );
        assert_eq!(
            subjects(&discover(&cache, &s, None).await),
            ["fix: three", "feat: one"]
        );
        let s = sub(
            &remote.url,
            json!({ "expressionFilter": "commitDate.After(date('2023-11-14T22:15:00Z')) && id != ''" }),
        );
        assert_eq!(
            subjects(&discover(&cache, &s, None).await),
            ["fix: three", "chore: two"]
        );
        // Dates are times: Go's methods and comparisons with date() work on them.
        let s = sub(
            &remote.url,
            json!({ "expressionFilter": "commitDate.Year() == 2023 && commitDate > date('2023-11-14T22:15:00Z') && commitDate.Unix() > 0" }),
        );
        assert_eq!(
            subjects(&discover(&cache, &s, None).await),
            ["fix: three", "chore: two"]
        );
        // Comparing a time with a string is an error, as in Kargo.
        let e = discover_err(
            &cache,
            &sub(
                &remote.url,
                json!({ "expressionFilter": "commitDate > '2023-11-14T22:15:00Z'" }),
            ),
        )
        .await;
        assert!(
            matches!(
                e,
                GitDiscoveryError::InvalidSubscription {
                    field: "expressionFilter",
                    ..
                }
            ),
            "{e:?}"
        );

        // Not a boolean.
        let e = discover_err(
            &cache,
            &sub(&remote.url, json!({ "expressionFilter": "subject" })),
        )
        .await;
        assert!(
            matches!(
                e,
                GitDiscoveryError::InvalidSubscription {
                    field: "expressionFilter",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn semver_tags_highest_version_first() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let c1 = remote.commit(&[("a", "1")], "first");
        remote.tag("v1.0.0", None);
        remote.tag("latest", None);
        let c2 = remote.commit(&[("a", "2")], "second");
        remote.tag("v1.2.0", Some("release 1.2.0"));
        remote.tag("v1.5", None);
        remote.tag("v1.3.0-ignored", None);
        let c3 = remote.commit(&[("a", "3")], "third");
        remote.tag("v1.10.0", Some("release 1.10.0"));
        remote.tag("v2.0.0-rc.1", None);
        remote.tag("v2.0.0", None);

        let s = sub(
            &remote.url,
            json!({
                "commitSelectionStrategy": "SemVer",
                "semverConstraint": "<2.0.0",
                "ignoreTagsRegexes": ["ignored"],
            }),
        );
        let r = discover(&cache, &s, None).await;
        assert_eq!(tags(&r), ["v1.10.0", "v1.2.0", "v1.0.0"]);
        assert_eq!(ids(&r), vec![c3.clone(), c2.clone(), c1.clone()]);
        let annotated = &r.commits[1];
        assert_eq!(annotated.subject.as_deref(), Some("second"));
        assert_eq!(
            annotated.author.as_deref(),
            Some("Alice Author <alice@example.com>")
        );
        assert_eq!(annotated.branch, None);
        // An annotated tag's date is the tagger's, after the commit's.
        let tag_date = annotated.creator_date.as_ref().map(|t| t.0.as_second());
        assert!(tag_date > Some(T0 + 60 * 2), "{tag_date:?}");
        let observed = r.observed_refs.as_ref().expect("observedRefs");
        assert_eq!(observed.branch_head, None);
        let names: Vec<&str> = observed.tags.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["v1.0.0", "v1.10.0", "v1.2.0"], "{observed:?}");

        let s = sub(
            &remote.url,
            json!({
                "commitSelectionStrategy": "SemVer",
                "strictSemvers": false,
                "allowTagsRegexes": ["^v1\\."],
                "discoveryLimit": 2,
            }),
        );
        assert_eq!(tags(&discover(&cache, &s, None).await), ["v1.10.0", "v1.5"]);

        // Expression over tag metadata.
        let s = sub(
            &remote.url,
            json!({
                "commitSelectionStrategy": "SemVer",
                "expressionFilter": "annotation startsWith 'release' && tagger contains 'Bob'",
            }),
        );
        assert_eq!(
            tags(&discover(&cache, &s, None).await),
            ["v1.10.0", "v1.2.0"]
        );
        // creatorDate is the annotated tag's date, a time.
        let after = rfc3339(tag_date.map(|d| d - 1));
        let s = sub(
            &remote.url,
            json!({
                "commitSelectionStrategy": "SemVer",
                "expressionFilter": format!("creatorDate.Year() >= 2023 && creatorDate.After(date('{after}'))"),
            }),
        );
        assert_eq!(
            tags(&discover(&cache, &s, None).await),
            ["v2.0.0", "v2.0.0-rc.1", "v1.10.0", "v1.2.0"]
        );
    }

    #[tokio::test]
    async fn lexical_and_newest_tag_order() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        remote.commit(&[("a", "1")], "one");
        remote.tag("build-20240315", None);
        remote.commit(&[("a", "2")], "two");
        remote.tag("build-20231201", Some("annotated later"));
        remote.tag("other", None);
        remote.commit(&[("a", "3")], "three");
        remote.tag("build-20240101", None);

        let s = sub(
            &remote.url,
            json!({
                "commitSelectionStrategy": "Lexical",
                "allowTagsRegexes": ["^build-"],
                "discoveryLimit": 2,
            }),
        );
        assert_eq!(
            tags(&discover(&cache, &s, None).await),
            ["build-20240315", "build-20240101"]
        );

        // Creation dates: build-20240315 at commit one, build-20231201 when it was annotated
        // (after commit two), build-20240101 at commit three, other at commit two.
        let s = sub(
            &remote.url,
            json!({ "commitSelectionStrategy": "NewestTag" }),
        );
        assert_eq!(
            tags(&discover(&cache, &s, None).await),
            [
                "build-20240101",
                "build-20231201",
                "other",
                "build-20240315"
            ]
        );
    }

    #[tokio::test]
    async fn tag_fast_path_and_path_filters() {
        let remote = Remote::new();
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        remote.commit(&[("charts/app/values.yaml", "1")], "chart");
        remote.tag("v1.0.0", None);
        remote.commit(&[("docs/readme.md", "1")], "docs");
        remote.tag("v1.1.0", None);
        let s = sub(
            &remote.url,
            json!({
                "commitSelectionStrategy": "SemVer",
                "includePaths": ["charts"],
                "ignoreTagsRegexes": ["-skip$"],
            }),
        );
        let first = discover(&cache, &s, None).await;
        assert_eq!(tags(&first), ["v1.0.0"]);

        let before = cache.stats();
        assert_eq!(discover(&cache, &s, Some(&first)).await, first);
        // An ignored tag changes nothing that matters.
        remote.tag("v9.0.0-skip", None);
        assert_eq!(discover(&cache, &s, Some(&first)).await, first);
        assert_eq!(cache.stats(), before);

        remote.commit(&[("charts/app/values.yaml", "2")], "chart 2");
        remote.tag("v1.2.0", None);
        let second = discover(&cache, &s, Some(&first)).await;
        assert_eq!(tags(&second), ["v1.2.0", "v1.0.0"]);
        assert!(cache.stats().fetches > before.fetches);
    }

    #[tokio::test]
    async fn invalid_settings_name_the_field_before_any_git_traffic() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let url = "file:///nonexistent/repo.git";
        let cases = [
            (
                json!({ "commitSelectionStrategy": "SemVer", "allowTagsRegexes": ["(x"] }),
                "allowTagsRegexes",
            ),
            (
                json!({ "commitSelectionStrategy": "Lexical", "ignoreTagsRegex": ["[z-a]"] }),
                "ignoreTagsRegexes",
            ),
            (
                json!({ "commitSelectionStrategy": "SemVer", "semverConstraint": ">>1" }),
                "semverConstraint",
            ),
            (
                json!({ "commitSelectionStrategy": "SemVer", "allowTags": "^v" }),
                "allowTags",
            ),
            (json!({ "includePaths": ["glob:[abc"] }), "includePaths"),
            (json!({ "excludePaths": ["regex:(x"] }), "excludePaths"),
            (json!({ "branch": "-x" }), "branch"),
            (
                json!({ "expressionFilter": "subject ==" }),
                "expressionFilter",
            ),
        ];
        for (extra, field) in cases {
            let e = discover_err(&cache, &sub(url, extra.clone())).await;
            assert!(
                matches!(&e, GitDiscoveryError::InvalidSubscription { field: f, .. } if *f == field),
                "{extra}: {e:?}"
            );
            assert!(e.to_string().contains(field), "{e}");
            assert!(!e.is_transient());
        }
        assert_eq!(cache.stats(), Default::default());

        let strict = RepoCache::new(root.path().join("strict")).expect("cache");
        let e = discover_err(&strict, &sub(url, json!({}))).await;
        assert!(
            matches!(
                e,
                GitDiscoveryError::InvalidSubscription {
                    field: "repoURL",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn missing_and_empty_repositories() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = cache(root.path());
        let missing = format!("file://{}/missing.git", root.path().display());
        let e = discover_err(&cache, &sub(&missing, json!({}))).await;
        assert!(matches!(e, GitDiscoveryError::RepoNotFound { .. }), "{e:?}");
        assert!(!e.is_transient());

        let remote = Remote::new();
        let e = discover_err(&cache, &sub(&remote.url, json!({}))).await;
        assert!(
            matches!(&e, GitDiscoveryError::BranchNotFound { branch, .. } if branch == "main"),
            "{e:?}"
        );
        let s = sub(
            &remote.url,
            json!({ "commitSelectionStrategy": "NewestTag" }),
        );
        let r = discover(&cache, &s, None).await;
        assert!(r.commits.is_empty());
        assert_eq!(r.observed_refs, Some(GitDiscoveryRefs::default()));
    }

    #[test]
    fn prefix_and_regex_selectors() {
        let cases: &[(&str, &str, bool)] = &[
            ("charts/app", "charts/app/values.yaml", true),
            ("charts/app", "charts/app", true),
            ("charts/app", "charts/application/x", false),
            ("./charts/app/", "charts/app/x", true),
            ("charts/../docs", "docs/a.md", true),
            ("", "anything", true),
            (".", "anything", true),
            ("regex:^src/.*\\.rs$", "src/a/b.rs", true),
            ("regexp:\\.md$", "x/readme.md", true),
            ("regex:^docs", "src/docs", false),
            ("glob:**/*.md", "docs/a.md", true),
            ("glob:charts/**", "charts", true),
            ("glob:*.md", "docs/a.md", false),
        ];
        for (selector, path, want) in cases {
            let sel = PathSelector::parse(selector).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sel.matches(path), *want, "{selector} vs {path}");
        }
    }

    #[test]
    fn urls_for_messages_carry_no_credentials() {
        let cases = [
            (
                "https://user:s3cret@git.example.com/a.git",
                "https://git.example.com/a.git",
            ),
            (
                "https://token@git.example.com/a.git",
                "https://git.example.com/a.git",
            ),
            ("https://u:p@ss word@host/x", "https://host/x"),
            ("ssh://git:pw@host/x.git", "ssh://git@host/x.git"),
            ("ssh://git@host/x.git", "ssh://git@host/x.git"),
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
            (" https://host/x?a@b ", "https://host/x?a@b"),
        ];
        for (raw, want) in cases {
            assert_eq!(display_url(raw), want, "{raw}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(go_bool(&json!(true)), Some(true));
        assert_eq!(go_bool(&json!("T")), Some(true));
        assert_eq!(go_bool(&json!(0)), Some(false));
        assert_eq!(go_bool(&json!("yes")), None);
        assert_eq!(go_bool(&Value::Null), None);
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), 80);
        assert!(shorten(&long).ends_with("..."));
        assert_eq!(shorten("short"), "short");
        assert_eq!(person("A", "<a@x>"), "A <a@x>");
        assert_eq!(person("A", "a@x"), "A <a@x>");
        assert_eq!(person("A", ""), "A");
        assert_eq!(rfc3339(Some(0)), "1970-01-01T00:00:00Z");

        let e = GitDiscoveryError::from_git(
            "https://h/x",
            GitError::Network {
                repo_url: "https://h/x".into(),
                op: "fetch",
                detail: "connection refused".into(),
            },
        );
        assert!(e.is_transient());
        assert_eq!(e.repo_url(), "https://h/x");
        let e = GitDiscoveryError::Auth {
            repo_url: "https://h/x".into(),
        };
        assert!(!e.is_transient());
        assert!(e.to_string().contains("kargo.akuity.io/cred-type: git"));
    }

    #[test]
    fn dates_keep_the_committers_offset_as_in_kargo() {
        assert_eq!(raw_date("1700000000 +0130"), (Some(1_700_000_000), 5400));
        assert_eq!(raw_date("1700000000 -0800"), (Some(1_700_000_000), -28800));
        assert_eq!(raw_date("1700000000"), (Some(1_700_000_000), 0));
        assert_eq!(raw_date(""), (None, 0));
        let log =
            "\u{1e}abc\u{1f}\u{1f}A\u{1f}a@x\u{1f}C\u{1f}c@x\u{1f}1700000000 -0800\u{1f}subject\n";
        let c = &parse_log(log)[0];
        assert_eq!(
            (c.time, c.offset, c.subject.as_str()),
            (1_700_000_000, -28800, "subject")
        );
        // 22:13:20 UTC is 14:13:20 at -08:00, the hour `commitDate.Hour()` gives.
        let t = go_time(Some(c.time), c.offset);
        assert_eq!((t.hour(), t.timestamp().as_second()), (14, 1_700_000_000));
        assert_eq!(go_time(None, 0).year(), 1);
    }

    #[test]
    fn observed_tags_are_sorted_pairs_and_none_above_the_cap() {
        let tags: BTreeMap<String, String> = (0..1001)
            .map(|i| (format!("t{i:04}"), format!("{i:040x}")))
            .collect();
        let names: Vec<String> = tags.keys().rev().cloned().collect();
        assert_eq!(tag_refs(&names, &tags), None);
        let few = tag_refs(&names[names.len() - 2..], &tags).expect("few tags");
        let want: Vec<DiscoveredRef> = (0..2)
            .map(|i| DiscoveredRef {
                name: format!("t{i:04}"),
                id: format!("{i:040x}"),
            })
            .collect();
        assert_eq!(few.tags, want);
        assert_eq!(few.branch_head, None);
    }
}
