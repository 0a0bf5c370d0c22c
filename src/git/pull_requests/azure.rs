//! Azure DevOps Services: Git REST API 7.1
//! (<https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests>,
//! <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/refs/list>). Repositories are
//! `https://dev.azure.com/<org>/<project>/_git/<repo>` or the legacy
//! `https://<org>.visualstudio.com/[DefaultCollection/]<project>/_git/<repo>`; both are served
//! by dev.azure.com. A personal access token authenticates as basic auth with an empty user.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    Branch, Mergeable, NewPullRequest, PrError, ProviderApi, ProviderKind, PullRequest, RepoUrl,
    Request, escape, number, text,
};

const VERSION: &str = "api-version=7.1";
/// `GitPullRequestCompletionOptions.mergeStrategy`.
const MERGE_METHODS: [&str; 4] = ["noFastForward", "rebase", "rebaseMerge", "squash"];

pub struct Azure {
    /// `<org url>/<project>/_apis/git/repositories/<repo>`.
    repo: String,
}

impl Azure {
    pub fn new(url: &RepoUrl) -> Result<Self, String> {
        let (org, project, repo) = parts(url)?;
        Ok(Self::at(
            &format!("https://dev.azure.com/{}", escape(&org)),
            &project,
            &repo,
        ))
    }

    /// The API of organization URL `org_url` (tests point it at a loopback server).
    pub fn at(org_url: &str, project: &str, repo: &str) -> Self {
        Self {
            repo: format!(
                "{org_url}/{}/_apis/git/repositories/{}",
                escape(project),
                escape(repo)
            ),
        }
    }
}

/// Organization, project and repository of a modern or legacy URL.
fn parts(url: &RepoUrl) -> Result<(String, String, String), String> {
    let s: Vec<&str> = url.segments.iter().map(String::as_str).collect();
    let wrong = || "expected <org>/<project>/_git/<repository>".to_string();
    if url.host == "dev.azure.com" {
        match s.as_slice() {
            [org, project, "_git", repo] => {
                Ok((org.to_string(), project.to_string(), repo.to_string()))
            }
            _ => Err(wrong()),
        }
    } else if let Some(org) = url.host.strip_suffix(".visualstudio.com") {
        let s = s.strip_prefix(&["DefaultCollection"]).unwrap_or(&s);
        match s {
            [project, "_git", repo] => Ok((org.to_string(), project.to_string(), repo.to_string())),
            _ => Err(wrong()),
        }
    } else {
        Err("Azure DevOps repositories are on dev.azure.com or *.visualstudio.com".into())
    }
}

fn heads(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

impl ProviderApi for Azure {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Azure
    }

    fn auth_header(&self, token: &str) -> (&'static str, String) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{token}"));
        ("authorization", format!("Basic {basic}"))
    }

    fn find(&self, head: &str, base: &str) -> Request {
        Request::get(format!(
            "{}/pullrequests?searchCriteria.sourceRefName={}&searchCriteria.targetRefName={}&searchCriteria.status=all&$top=100&{VERSION}",
            self.repo,
            escape(&heads(head)),
            escape(&heads(base))
        ))
    }

    fn parse_list(&self, body: &Value) -> Result<Vec<PullRequest>, String> {
        body.get("value")
            .and_then(Value::as_array)
            .ok_or("expected {\"value\": [...]}")?
            .iter()
            .map(|v| self.parse_pr(v))
            .collect()
    }

    fn create(&self, pr: &NewPullRequest) -> Request {
        let mut body = json!({
            "sourceRefName": heads(&pr.head),
            "targetRefName": heads(&pr.base),
            "title": pr.title,
            "description": pr.description,
        });
        if !pr.labels.is_empty() {
            body["labels"] = pr.labels.iter().map(|l| json!({ "name": l })).collect();
        }
        Request::with(
            Method::POST,
            format!("{}/pullrequests?{VERSION}", self.repo),
            body,
        )
    }

    fn get(&self, number: u64) -> Request {
        Request::get(format!("{}/pullrequests/{number}?{VERSION}", self.repo))
    }

    fn parse_pr(&self, v: &Value) -> Result<PullRequest, String> {
        let status = text(v, "/status").unwrap_or_default();
        let merged = status == "completed";
        let id = number(v, "/pullRequestId")?;
        let draft = v.get("isDraft").and_then(Value::as_bool).unwrap_or(false);
        let mergeable = match text(v, "/mergeStatus").as_deref() {
            _ if draft => Mergeable::NotYet("it is a draft".into()),
            Some("succeeded") => Mergeable::Ready,
            Some("conflicts") => Mergeable::Conflict("it has conflicts".into()),
            Some(other) => Mergeable::NotYet(format!("mergeStatus is {other}")),
            None => Mergeable::NotYet("Azure DevOps gave no mergeStatus yet".into()),
        };
        let strip = |s: Option<String>| s.map(|r| r.trim_start_matches("refs/heads/").to_string());
        Ok(PullRequest {
            number: id,
            url: text(v, "/repository/webUrl")
                .map(|w| format!("{w}/pullrequest/{id}"))
                .unwrap_or_default(),
            open: status == "active",
            merged,
            merge_commit: if merged {
                text(v, "/lastMergeCommit/commitId")
            } else {
                None
            },
            head_sha: text(v, "/lastMergeSourceCommit/commitId"),
            source_branch: strip(text(v, "/sourceRefName")),
            target_branch: strip(text(v, "/targetRefName")),
            created_at: text(v, "/creationDate"),
            mergeable,
        })
    }

    /// Completing a pull request is an update of its status.
    fn merge(&self, pr: &PullRequest, method: Option<&str>) -> Result<Request, PrError> {
        let mut body = json!({
            "status": "completed",
            "lastMergeSourceCommit": { "commitId": pr.head_sha.clone().unwrap_or_default() },
        });
        if let Some(m) = method {
            if !MERGE_METHODS.contains(&m) {
                return Err(PrError::UnsupportedMergeMethod {
                    provider: "azure",
                    method: m.to_string(),
                    known: MERGE_METHODS.join(", "),
                });
            }
            body["completionOptions"] = json!({ "mergeStrategy": m });
        }
        Ok(Request::with(
            Method::PATCH,
            format!("{}/pullrequests/{}?{VERSION}", self.repo, pr.number),
            body,
        ))
    }

    /// `filter` matches a prefix: the exact name is picked from the list.
    fn branch(&self, name: &str) -> Request {
        Request::get(format!(
            "{}/refs?filter={}&{VERSION}",
            self.repo,
            escape(&format!("heads/{name}"))
        ))
    }

    fn parse_branch(&self, name: &str, v: &Value) -> Result<Option<Branch>, String> {
        let refs = v
            .get("value")
            .and_then(Value::as_array)
            .ok_or("expected {\"value\": [...]}")?;
        let want = heads(name);
        Ok(refs
            .iter()
            .find(|r| text(r, "/name").as_deref() == Some(want.as_str()))
            .and_then(|r| text(r, "/objectId"))
            .map(|sha| Branch { sha, message: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_and_legacy_urls() {
        let u = RepoUrl::parse("https://dev.azure.com/acme/web/_git/site").expect("url");
        assert_eq!(parts(&u), Ok(("acme".into(), "web".into(), "site".into())));
        let u = RepoUrl::parse("https://acme.visualstudio.com/DefaultCollection/web/_git/site")
            .expect("url");
        assert_eq!(parts(&u), Ok(("acme".into(), "web".into(), "site".into())));
        let u = RepoUrl::parse("https://dev.azure.com/acme/site").expect("url");
        assert!(parts(&u).is_err());
    }
}
