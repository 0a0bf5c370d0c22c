//! Gitea (and Forgejo): API v1 (<https://gitea.com/api/swagger>: `repoListPullRequests`,
//! `repoCreatePullRequest`, `repoGetPullRequest`, `repoMergePullRequest`, `repoGetBranch`,
//! `issueAddLabel`). The token goes in `Authorization: token …`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Branch, Mergeable, NewPullRequest, PrError, ProviderApi, ProviderKind, PullRequest, RepoUrl,
    Request, escape, number, text,
};

/// `MergePullRequestOption.Do`.
const MERGE_METHODS: [&str; 5] = [
    "merge",
    "rebase",
    "rebase-merge",
    "squash",
    "manually-merged",
];

pub struct Gitea {
    /// `<api>/repos/<owner>/<repo>`.
    repo: String,
}

impl Gitea {
    pub fn new(url: &RepoUrl) -> Result<Self, String> {
        Self::at(&format!("{}/api/v1", url.origin()), url)
    }

    pub fn at(api: &str, url: &RepoUrl) -> Result<Self, String> {
        let (owner, repo) = url.owner_and_repo()?;
        Ok(Self {
            repo: format!("{api}/repos/{}/{}", escape(&owner), escape(&repo)),
        })
    }
}

impl ProviderApi for Gitea {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gitea
    }

    fn auth_header(&self, token: &str) -> (&'static str, String) {
        ("authorization", format!("token {token}"))
    }

    /// Gitea's list cannot filter by branch; the client keeps those from `head` into `base`.
    fn find(&self, _head: &str, _base: &str) -> Request {
        Request::get(format!(
            "{}/pulls?state=all&sort=recentupdate&limit=50",
            self.repo
        ))
    }

    fn parse_list(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        body.as_array()
            .ok_or("expected a JSON array of pull requests")?
            .iter()
            .map(|v| self.parse_pr(v))
            .collect()
    }

    fn create(&self, pr: &NewPullRequest) -> Request {
        Request::with(
            Method::POST,
            format!("{}/pulls", self.repo),
            json!({
                "head": pr.head,
                "base": pr.base,
                "title": pr.title,
                "body": pr.description,
            }),
        )
    }

    /// The create call takes label IDs only; adding them to the issue takes names.
    fn after_create(&self, number: u64, labels: &[String]) -> Option<Request> {
        (!labels.is_empty()).then(|| {
            Request::with(
                Method::POST,
                format!("{}/issues/{number}/labels", self.repo),
                json!({ "labels": labels }),
            )
        })
    }

    fn get(&self, number: u64) -> Request {
        Request::get(format!("{}/pulls/{number}", self.repo))
    }

    fn parse_pr(&self, v: &Value) -> Result<PullRequest, String> {
        let merged = v.get("merged").and_then(Value::as_bool).unwrap_or(false);
        let draft = v.get("draft").and_then(Value::as_bool).unwrap_or(false);
        let mergeable = if draft {
            Mergeable::NotYet("it is a draft".into())
        } else if v.get("mergeable").and_then(Value::as_bool) == Some(true) {
            Mergeable::Ready
        } else {
            Mergeable::NotYet("Gitea says it is not mergeable (conflicts or checks)".into())
        };
        Ok(PullRequest {
            number: number(v, "/number")?,
            url: text(v, "/html_url").unwrap_or_default(),
            open: text(v, "/state").as_deref() == Some("open"),
            merged,
            merge_commit: if merged {
                text(v, "/merge_commit_sha")
            } else {
                None
            },
            head_sha: text(v, "/head/sha"),
            source_branch: text(v, "/head/ref"),
            target_branch: text(v, "/base/ref"),
            created_at: text(v, "/created_at"),
            mergeable,
        })
    }

    fn merge(&self, pr: &PullRequest, method: Option<&str>) -> Result<Request, PrError> {
        let method = method.unwrap_or("merge");
        if !MERGE_METHODS.contains(&method) {
            return Err(PrError::UnsupportedMergeMethod {
                provider: "gitea",
                method: method.to_string(),
                known: MERGE_METHODS.join(", "),
            });
        }
        let mut body = json!({ "Do": method });
        if let Some(sha) = &pr.head_sha {
            body["head_commit_id"] = json!(sha);
        }
        Ok(Request::with(
            Method::POST,
            format!("{}/pulls/{}/merge", self.repo, pr.number),
            body,
        ))
    }

    fn branch(&self, name: &str) -> Request {
        Request::get(format!("{}/branches/{}", self.repo, escape(name)))
    }

    fn parse_branch(&self, _name: &str, v: &Value) -> Result<Option<Branch>, String> {
        Ok(Some(Branch {
            sha: text(v, "/commit/id").ok_or("branch without commit.id")?,
            message: text(v, "/commit/message"),
        }))
    }
}
