//! Pull requests on git hosting providers (GitHub and GitHub Enterprise, GitLab, Gitea,
//! Bitbucket Cloud, Azure DevOps), for the git-open-pr, git-wait-for-pr and git-merge-pr steps.
//!
//! Each provider is a [`ProviderApi`]: pure functions from what haul wants (find, open, get or
//! merge a pull request, read a branch) to the HTTP request its public API documents, and from
//! the documented response bodies back to a [`PullRequest`]. [`Client`] is the only place that
//! does IO; it adds the token, sends, and applies the rules every provider shares (which found
//! pull request to adopt, when a merge is not ready yet). The provider is chosen by [`pick`]:
//! from the step's `provider`, else from the repository URL's host the way Kargo does.

mod azure;
mod bitbucket;
mod client;
mod gitea;
mod github;
pub mod github_push;
mod gitlab;
mod repo_url;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
pub(crate) mod mock;

use serde_json::Value;

pub use client::{Client, MergeResult};
pub use repo_url::RepoUrl;

/// The providers Kargo names in `provider:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Azure,
    Bitbucket,
    Gitea,
    Github,
    Gitlab,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Azure,
        ProviderKind::Bitbucket,
        ProviderKind::Gitea,
        ProviderKind::Github,
        ProviderKind::Gitlab,
    ];

    /// The name `provider:` gives.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Azure => "azure",
            ProviderKind::Bitbucket => "bitbucket",
            ProviderKind::Gitea => "gitea",
            ProviderKind::Github => "github",
            ProviderKind::Gitlab => "gitlab",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kargo's host predicates: a host containing "github" (or a GHE.com tenant), "gitlab" or
    /// "gitea"; exactly bitbucket.org; dev.azure.com or a legacy *.visualstudio.com.
    fn from_host(host: &str) -> Option<Self> {
        let host = host.to_ascii_lowercase();
        if host.contains("github") || host.ends_with(".ghe.com") {
            Some(ProviderKind::Github)
        } else if host.contains("gitlab") {
            Some(ProviderKind::Gitlab)
        } else if host.contains("gitea") {
            Some(ProviderKind::Gitea)
        } else if host == "bitbucket.org" {
            Some(ProviderKind::Bitbucket)
        } else if host == "dev.azure.com" || host.ends_with(".visualstudio.com") {
            Some(ProviderKind::Azure)
        } else {
            None
        }
    }
}

/// Why a pull request operation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrError {
    #[error(
        "config.provider: unknown provider {name:?}; Kargo's providers are azure, bitbucket, gitea, github and gitlab"
    )]
    UnknownProvider { name: String },
    #[error(
        "config.repoURL: cannot tell which git provider hosts {repo_url} (neither its host name nor the server says); set config.provider (azure, bitbucket, gitea, github or gitlab)"
    )]
    NoProviderForHost { repo_url: String },
    #[error("config.repoURL: {repo_url} is not a {provider} repository URL: {why}")]
    BadRepoUrl {
        repo_url: String,
        provider: &'static str,
        why: String,
    },
    #[error("config.mergeMethod: {provider} has no merge method {method:?} (it has: {known})")]
    UnsupportedMergeMethod {
        provider: &'static str,
        method: String,
        known: String,
    },
    /// The API refused the request (4xx other than the ones an operation expects).
    #[error("{provider} API {method} {path} answered {status}: {message}")]
    Refused {
        provider: &'static str,
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// The API could not be reached or failed on its side (worth retrying).
    #[error("{provider} API {method} {path}: {message}")]
    Unavailable {
        provider: &'static str,
        method: String,
        path: String,
        message: String,
    },
    /// The API answered with a body that is not what its documentation describes.
    #[error("{provider} API answered unexpectedly: {message}")]
    BadResponse {
        provider: &'static str,
        message: String,
    },
    #[error("pull request {number} in {repo_url} was closed without being merged")]
    ClosedUnmerged { number: u64, repo_url: String },
    #[error("pull request {number} in {repo_url} cannot be merged: {why}")]
    Unmergeable {
        number: u64,
        repo_url: String,
        why: String,
    },
}

impl PrError {
    /// Whether trying again later may succeed (network, the provider's own failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, PrError::Unavailable { .. })
    }
}

pub use client::answers_like_gitea;

/// Chooses the provider: `provider` when given, else from the repository URL's host.
pub fn pick(repo_url: &str, provider: Option<&str>) -> Result<ProviderKind, PrError> {
    match provider.filter(|p| !p.is_empty()) {
        Some(name) => ProviderKind::from_name(name).ok_or_else(|| PrError::UnknownProvider {
            name: name.to_string(),
        }),
        None => RepoUrl::parse(repo_url)
            .ok()
            .and_then(|u| ProviderKind::from_host(&u.host))
            .ok_or_else(|| PrError::NoProviderForHost {
                repo_url: repo_url.to_string(),
            }),
    }
}

/// The API of `kind` for the repository at `repo_url`, at its documented address.
pub fn api_for(kind: ProviderKind, repo_url: &str) -> Result<Box<dyn ProviderApi>, PrError> {
    let url = RepoUrl::parse(repo_url).map_err(|why| PrError::BadRepoUrl {
        repo_url: repo_url.to_string(),
        provider: kind.name(),
        why,
    })?;
    let bad = |why: String| PrError::BadRepoUrl {
        repo_url: repo_url.to_string(),
        provider: kind.name(),
        why,
    };
    Ok(match kind {
        ProviderKind::Github => Box::new(github::Github::new(&url).map_err(bad)?),
        ProviderKind::Gitlab => Box::new(gitlab::Gitlab::new(&url).map_err(bad)?),
        ProviderKind::Gitea => Box::new(gitea::Gitea::new(&url).map_err(bad)?),
        ProviderKind::Bitbucket => Box::new(bitbucket::Bitbucket::new(&url).map_err(bad)?),
        ProviderKind::Azure => Box::new(azure::Azure::new(&url).map_err(bad)?),
    })
}

/// A pull request (GitLab: a merge request), as the steps see it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PullRequest {
    /// The number users see (GitHub/Gitea `number`, GitLab `iid`, Bitbucket `id`, Azure
    /// `pullRequestId`).
    pub number: u64,
    /// Its web page.
    pub url: String,
    pub open: bool,
    pub merged: bool,
    /// The commit the merge made on the target branch, once merged.
    pub merge_commit: Option<String>,
    /// The commit at the head of its source branch.
    pub head_sha: Option<String>,
    pub source_branch: Option<String>,
    pub target_branch: Option<String>,
    /// RFC 3339, as the provider gives it (to prefer the newest of several).
    pub created_at: Option<String>,
    /// Whether the provider would merge it now.
    pub mergeable: Mergeable,
}

/// Whether an open pull request can be merged now, as far as its provider says.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Mergeable {
    /// Try it (the merge request itself may still be refused for a transient reason).
    #[default]
    Ready,
    /// Not yet: checks are still running, it is a draft, or the provider is still computing.
    NotYet(String),
    /// Never without a change to the pull request (conflicts).
    Conflict(String),
}

/// What git-open-pr asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPullRequest {
    pub title: String,
    pub description: String,
    /// The source branch.
    pub head: String,
    /// The target branch.
    pub base: String,
    pub labels: Vec<String>,
}

/// A branch head.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub sha: String,
    /// The head commit's message, when the branch endpoint includes it.
    pub message: Option<String>,
}

/// One HTTP request, as a provider's API documentation describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: reqwest::Method,
    /// The absolute URL, query included.
    pub url: String,
    pub body: Option<Value>,
}

impl Request {
    fn get(url: String) -> Self {
        Self {
            method: reqwest::Method::GET,
            url,
            body: None,
        }
    }

    fn with(method: reqwest::Method, url: String, body: Value) -> Self {
        Self {
            method,
            url,
            body: Some(body),
        }
    }
}

/// One provider's API: requests built and responses read, no IO.
pub trait ProviderApi: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// The authentication header for `token` (name, value).
    fn auth_header(&self, token: &str) -> (&'static str, String);

    /// Pull requests from `head` into `base`, in every state (filtered again by the client,
    /// since not every API can filter by branch).
    fn find(&self, head: &str, base: &str) -> Request;
    fn parse_list(&self, body: &Value) -> Result<Vec<PullRequest>, String>;

    fn create(&self, pr: &NewPullRequest) -> Request;
    /// A request to run after creating pull request `number` (labels, where the create call
    /// cannot set them by name).
    fn after_create(&self, _number: u64, _labels: &[String]) -> Option<Request> {
        None
    }

    fn get(&self, number: u64) -> Request;
    fn parse_pr(&self, body: &Value) -> Result<PullRequest, String>;

    /// The request that merges `pr` with `method` (the provider's default when `None`).
    fn merge(&self, pr: &PullRequest, method: Option<&str>) -> Result<Request, PrError>;

    fn branch(&self, name: &str) -> Request;
    /// The branch head from the branch response (`None`: the response says it does not
    /// exist, for APIs that answer 200 with an empty list).
    fn parse_branch(&self, name: &str, body: &Value) -> Result<Option<Branch>, String>;

    /// Bitbucket reports abbreviated merge commit hashes: the request that reads the full one.
    fn full_commit(&self, _sha: &str) -> Option<Request> {
        None
    }
    fn parse_commit(&self, _body: &Value) -> Option<String> {
        None
    }
}

/// Text of a JSON field, if it is a string.
fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A required unsigned number field.
fn number(v: &Value, pointer: &str) -> Result<u64, String> {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no number at {pointer}"))
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved characters kept).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_comes_from_config_then_host() {
        assert_eq!(
            pick("https://example.com/a/b", Some("gitea")),
            Ok(ProviderKind::Gitea)
        );
        let cases = [
            ("https://github.com/o/r.git", ProviderKind::Github),
            ("https://github.example.com/o/r", ProviderKind::Github),
            ("https://acme.ghe.com/o/r", ProviderKind::Github),
            ("git@github.com:o/r.git", ProviderKind::Github),
            ("https://gitlab.com/g/sub/r.git", ProviderKind::Gitlab),
            ("https://gitlab.internal:8443/g/r", ProviderKind::Gitlab),
            ("https://gitea.example.com/o/r", ProviderKind::Gitea),
            ("https://bitbucket.org/ws/r.git", ProviderKind::Bitbucket),
            ("https://dev.azure.com/org/p/_git/r", ProviderKind::Azure),
            ("https://org.visualstudio.com/p/_git/r", ProviderKind::Azure),
        ];
        for (url, kind) in cases {
            assert_eq!(pick(url, None), Ok(kind), "{url}");
        }
    }

    #[test]
    fn unknown_provider_or_host_names_the_field() {
        let e = pick("https://git.example.com/o/r", None).expect_err("no provider");
        assert_eq!(
            e.to_string(),
            "config.repoURL: cannot tell which git provider hosts https://git.example.com/o/r (neither its host name nor the server says); set config.provider (azure, bitbucket, gitea, github or gitlab)"
        );
        let e = pick("https://github.com/o/r", Some("gogs")).expect_err("unknown");
        assert!(
            e.to_string()
                .starts_with("config.provider: unknown provider \"gogs\"")
        );
    }

    #[test]
    fn escape_keeps_unreserved_only() {
        assert_eq!(escape("group/sub/r"), "group%2Fsub%2Fr");
        assert_eq!(escape("kargo/promotion/x"), "kargo%2Fpromotion%2Fx");
        assert_eq!(escape("a b"), "a%20b");
    }
}
