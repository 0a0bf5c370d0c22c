//! GitLab (gitlab.com and self-managed, nested groups included): REST API v4
//! (<https://docs.gitlab.com/api/merge_requests/>, <https://docs.gitlab.com/api/branches/>).
//! The project is addressed by its URL-encoded full path; the token goes in `PRIVATE-TOKEN`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Branch, Mergeable, NewPullRequest, PrError, ProviderApi, ProviderKind, PullRequest, RepoUrl,
    Request, escape, number, text,
};

const MERGE_METHODS: [&str; 2] = ["merge", "squash"];

pub struct Gitlab {
    /// `<api>/projects/<url-encoded path>`.
    project: String,
}

impl Gitlab {
    pub fn new(url: &RepoUrl) -> Result<Self, String> {
        Self::at(&format!("{}/api/v4", url.origin()), url)
    }

    pub fn at(api: &str, url: &RepoUrl) -> Result<Self, String> {
        if url.segments.len() < 2 {
            return Err("expected <group>[/<subgroup>…]/<project> after the host".into());
        }
        // GitLab's web URLs may carry `/-/…` after the project path.
        let path: Vec<&str> = url
            .segments
            .iter()
            .map(String::as_str)
            .take_while(|s| *s != "-")
            .collect();
        Ok(Self {
            project: format!("{api}/projects/{}", escape(&path.join("/"))),
        })
    }
}

impl ProviderApi for Gitlab {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gitlab
    }

    fn auth_header(&self, token: &str) -> (&'static str, String) {
        ("private-token", token.to_string())
    }

    fn find(&self, head: &str, base: &str) -> Request {
        Request::get(format!(
            "{}/merge_requests?state=all&source_branch={}&target_branch={}&per_page=100",
            self.project,
            escape(head),
            escape(base)
        ))
    }

    fn parse_list(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        body.as_array()
            .ok_or("expected a JSON array of merge requests")?
            .iter()
            .map(|v| self.parse_pr(v))
            .collect()
    }

    fn create(&self, pr: &NewPullRequest) -> Request {
        let mut body = json!({
            "source_branch": pr.head,
            "target_branch": pr.base,
            "title": pr.title,
            "description": pr.description,
        });
        if !pr.labels.is_empty() {
            // Documented as a comma-separated string.
            body["labels"] = json!(pr.labels.join(","));
        }
        Request::with(
            Method::POST,
            format!("{}/merge_requests", self.project),
            body,
        )
    }

    fn get(&self, number: u64) -> Request {
        Request::get(format!("{}/merge_requests/{number}", self.project))
    }

    fn parse_pr(&self, v: &Value) -> Result<PullRequest, String> {
        let state = text(v, "/state").unwrap_or_default();
        let merged = state == "merged";
        let draft = v.get("draft").and_then(Value::as_bool).unwrap_or(false);
        let mergeable = match text(v, "/detailed_merge_status").as_deref() {
            _ if draft => Mergeable::NotYet("it is a draft".into()),
            Some("mergeable") => Mergeable::Ready,
            Some("conflict") => Mergeable::Conflict("it has conflicts".into()),
            Some(other) => Mergeable::NotYet(format!("detailed_merge_status is {other}")),
            None => Mergeable::NotYet("GitLab gave no detailed_merge_status".into()),
        };
        Ok(PullRequest {
            number: number(v, "/iid")?,
            url: text(v, "/web_url").unwrap_or_default(),
            open: state == "opened" || state == "locked",
            merged,
            // A squash or fast-forward merge records no merge commit: the squash commit, or
            // the source head itself, is then what landed on the target branch.
            merge_commit: if merged {
                text(v, "/merge_commit_sha")
                    .or_else(|| text(v, "/squash_commit_sha"))
                    .or_else(|| text(v, "/sha"))
            } else {
                None
            },
            head_sha: text(v, "/sha"),
            source_branch: text(v, "/source_branch"),
            target_branch: text(v, "/target_branch"),
            created_at: text(v, "/created_at"),
            mergeable,
        })
    }

    fn merge(&self, pr: &PullRequest, method: Option<&str>) -> Result<Request, PrError> {
        let mut body = json!({});
        match method {
            None | Some("merge") => {}
            Some("squash") => body["squash"] = json!(true),
            Some(m) => {
                return Err(PrError::UnsupportedMergeMethod {
                    provider: "gitlab",
                    method: m.to_string(),
                    known: MERGE_METHODS.join(", "),
                });
            }
        }
        if let Some(sha) = &pr.head_sha {
            body["sha"] = json!(sha);
        }
        Ok(Request::with(
            Method::PUT,
            format!("{}/merge_requests/{}/merge", self.project, pr.number),
            body,
        ))
    }

    fn branch(&self, name: &str) -> Request {
        Request::get(format!(
            "{}/repository/branches/{}",
            self.project,
            escape(name)
        ))
    }

    fn parse_branch(&self, _name: &str, v: &Value) -> Result<Option<Branch>, String> {
        Ok(Some(Branch {
            sha: text(v, "/commit/id").ok_or("branch without commit.id")?,
            message: text(v, "/commit/message"),
        }))
    }
}
