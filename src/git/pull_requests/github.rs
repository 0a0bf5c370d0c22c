//! GitHub and GitHub Enterprise Server: REST API v3
//! (<https://docs.github.com/en/rest/pulls/pulls>, <https://docs.github.com/en/rest/branches/branches>,
//! <https://docs.github.com/en/rest/issues/labels>). github.com's API is api.github.com; an
//! Enterprise server's is `https://<host>/api/v3`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Branch, Mergeable, NewPullRequest, PrError, ProviderApi, ProviderKind, PullRequest, RepoUrl,
    Request, escape, number, text,
};

const MERGE_METHODS: [&str; 3] = ["merge", "squash", "rebase"];

pub struct Github {
    /// `<api>/repos/<owner>/<repo>`.
    repo: String,
    owner: String,
}

impl Github {
    pub fn new(url: &RepoUrl) -> Result<Self, String> {
        let api = if url.host == "github.com" {
            "https://api.github.com".to_string()
        } else {
            format!("{}/api/v3", url.origin())
        };
        Self::at(&api, url)
    }

    /// The API at `api` (tests point it at a loopback server).
    pub fn at(api: &str, url: &RepoUrl) -> Result<Self, String> {
        let (owner, repo) = url.owner_and_repo()?;
        Ok(Self {
            repo: format!("{api}/repos/{}/{}", escape(&owner), escape(&repo)),
            owner,
        })
    }
}

impl ProviderApi for Github {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Github
    }

    fn auth_header(&self, token: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {token}"))
    }

    fn find(&self, head: &str, base: &str) -> Request {
        // `head` filters by "user:ref-name"; the PRs steps open come from the same repository.
        Request::get(format!(
            "{}/pulls?state=all&head={}&base={}&per_page=100",
            self.repo,
            escape(&format!("{}:{head}", self.owner)),
            escape(base)
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
                "title": pr.title,
                "head": pr.head,
                "base": pr.base,
                "body": pr.description,
                "maintainer_can_modify": false,
            }),
        )
    }

    /// Labels are set on the pull request's issue.
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
        let merged = v.get("merged_at").is_some_and(|m| !m.is_null());
        let open = text(v, "/state").as_deref() == Some("open");
        let draft = v.get("draft").and_then(Value::as_bool).unwrap_or(false);
        // GitHub computes `mergeable` in the background: null means "not yet known".
        let mergeable = match text(v, "/mergeable_state").as_deref() {
            Some("clean" | "unstable" | "has_hooks" | "blocked" | "behind") => Mergeable::Ready,
            Some("dirty") => Mergeable::Conflict("it has conflicts".into()),
            Some("draft") => Mergeable::NotYet("it is a draft".into()),
            Some("unknown") | None if v.get("mergeable").is_none_or(Value::is_null) => {
                Mergeable::NotYet("GitHub has not computed whether it is mergeable yet".into())
            }
            _ if draft => Mergeable::NotYet("it is a draft".into()),
            _ if v.get("mergeable").and_then(Value::as_bool) == Some(false) => {
                Mergeable::NotYet("GitHub says it is not mergeable".into())
            }
            _ => Mergeable::Ready,
        };
        Ok(PullRequest {
            number: number(v, "/number")?,
            url: text(v, "/html_url").unwrap_or_default(),
            open,
            merged,
            // Set for open pull requests too (a test merge): only meaningful once merged.
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
        let mut body = json!({});
        if let Some(m) = method {
            if !MERGE_METHODS.contains(&m) {
                return Err(PrError::UnsupportedMergeMethod {
                    provider: "github",
                    method: m.to_string(),
                    known: MERGE_METHODS.join(", "),
                });
            }
            body["merge_method"] = json!(m);
        }
        // Merge only the head the checks ran on.
        if let Some(sha) = &pr.head_sha {
            body["sha"] = json!(sha);
        }
        Ok(Request::with(
            Method::PUT,
            format!("{}/pulls/{}/merge", self.repo, pr.number),
            body,
        ))
    }

    fn branch(&self, name: &str) -> Request {
        Request::get(format!("{}/branches/{}", self.repo, escape(name)))
    }

    fn parse_branch(&self, _name: &str, v: &Value) -> Result<Option<Branch>, String> {
        Ok(Some(Branch {
            sha: text(v, "/commit/sha").ok_or("branch without commit.sha")?,
            message: text(v, "/commit/commit/message"),
        }))
    }
}
