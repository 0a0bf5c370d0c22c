//! Bitbucket Cloud: REST API 2.0
//! (<https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/>,
//! <https://developer.atlassian.com/cloud/bitbucket/rest/api-group-refs/>,
//! <https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commits/>), at
//! api.bitbucket.org. The token (an access token or app password used as one) is a bearer
//! token, as Kargo sends it. Pull requests have no labels.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Branch, NewPullRequest, PrError, ProviderApi, ProviderKind, PullRequest, RepoUrl, Request,
    escape, number, text,
};

const API: &str = "https://api.bitbucket.org/2.0";
/// `pullrequest_merge_parameters.merge_strategy`.
const MERGE_METHODS: [&str; 6] = [
    "merge_commit",
    "squash",
    "fast_forward",
    "squash_fast_forward",
    "rebase_fast_forward",
    "rebase_merge",
];

pub struct Bitbucket {
    /// `<api>/repositories/<workspace>/<repo_slug>`.
    repo: String,
}

impl Bitbucket {
    pub fn new(url: &RepoUrl) -> Result<Self, String> {
        Self::at(API, url)
    }

    pub fn at(api: &str, url: &RepoUrl) -> Result<Self, String> {
        let (workspace, slug) = url.owner_and_repo()?;
        Ok(Self {
            repo: format!(
                "{api}/repositories/{}/{}",
                escape(&workspace),
                escape(&slug)
            ),
        })
    }
}

impl ProviderApi for Bitbucket {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bitbucket
    }

    fn auth_header(&self, token: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {token}"))
    }

    /// Bitbucket lists only OPEN pull requests unless every state is asked for.
    fn find(&self, head: &str, base: &str) -> Request {
        let q = format!(r#"source.branch.name="{head}" AND destination.branch.name="{base}""#);
        Request::get(format!(
            "{}/pullrequests?state=OPEN&state=MERGED&state=DECLINED&state=SUPERSEDED&pagelen=50&q={}",
            self.repo,
            escape(&q)
        ))
    }

    fn parse_list(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        body.get("values")
            .and_then(Value::as_array)
            .ok_or("expected a page with values")?
            .iter()
            .map(|v| self.parse_pr(v))
            .collect()
    }

    fn create(&self, pr: &NewPullRequest) -> Request {
        Request::with(
            Method::POST,
            format!("{}/pullrequests", self.repo),
            json!({
                "title": pr.title,
                "description": pr.description,
                "source": {"branch": {"name": pr.head}},
                "destination": {"branch": {"name": pr.base}},
            }),
        )
    }

    fn get(&self, number: u64) -> Request {
        Request::get(format!("{}/pullrequests/{number}", self.repo))
    }

    /// Bitbucket says nothing about mergeability: the merge call itself decides.
    fn parse_pr(&self, v: &Value) -> Result<PullRequest, String> {
        let state = text(v, "/state").unwrap_or_default();
        let merged = state == "MERGED";
        Ok(PullRequest {
            number: number(v, "/id")?,
            url: text(v, "/links/html/href").unwrap_or_default(),
            open: state == "OPEN",
            merged,
            merge_commit: if merged {
                text(v, "/merge_commit/hash")
            } else {
                None
            },
            head_sha: text(v, "/source/commit/hash"),
            source_branch: text(v, "/source/branch/name"),
            target_branch: text(v, "/destination/branch/name"),
            created_at: text(v, "/created_on"),
            mergeable: Default::default(),
        })
    }

    fn merge(&self, pr: &PullRequest, method: Option<&str>) -> Result<Request, PrError> {
        let mut body = json!({ "type": "pullrequest_merge_parameters" });
        if let Some(m) = method {
            if !MERGE_METHODS.contains(&m) {
                return Err(PrError::UnsupportedMergeMethod {
                    provider: "bitbucket",
                    method: m.to_string(),
                    known: MERGE_METHODS.join(", "),
                });
            }
            body["merge_strategy"] = json!(m);
        }
        Ok(Request::with(
            Method::POST,
            format!("{}/pullrequests/{}/merge", self.repo, pr.number),
            body,
        ))
    }

    fn branch(&self, name: &str) -> Request {
        Request::get(format!("{}/refs/branches/{}", self.repo, escape(name)))
    }

    fn parse_branch(&self, _name: &str, v: &Value) -> Result<Option<Branch>, String> {
        Ok(Some(Branch {
            sha: text(v, "/target/hash").ok_or("branch without target.hash")?,
            message: text(v, "/target/message"),
        }))
    }

    /// Pull requests carry a 12-character merge commit hash.
    fn full_commit(&self, sha: &str) -> Option<Request> {
        (sha.len() < 40).then(|| Request::get(format!("{}/commit/{}", self.repo, escape(sha))))
    }

    fn parse_commit(&self, v: &Value) -> Option<String> {
        text(v, "/hash")
    }
}
