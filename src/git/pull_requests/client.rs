//! The IO side of pull requests: sends what a [`ProviderApi`] builds, with the token, and the
//! rules shared by every provider (which pull request to adopt, when a merge is not ready).

use std::time::Duration;

use serde_json::Value;

use super::{Branch, Mergeable, NewPullRequest, PrError, ProviderApi, PullRequest, Request};

/// Per request; pull request APIs answer in well under a second.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body a message quotes.
const MAX_MESSAGE: usize = 300;

/// What a merge attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeResult {
    Merged(PullRequest),
    /// Open, but not mergeable yet (checks, drafts, the provider still computing): why.
    NotReady(String),
}

/// A provider's API for one repository, with the token to call it.
pub struct Client {
    api: Box<dyn ProviderApi>,
    http: reqwest::Client,
    /// The authentication header; never logged.
    auth: (&'static str, String),
    /// For messages.
    repo_url: String,
}

struct Response {
    status: u16,
    body: Value,
}

impl Client {
    pub fn new(
        api: Box<dyn ProviderApi>,
        token: &str,
        insecure_skip_tls_verify: bool,
        repo_url: &str,
    ) -> Result<Self, PrError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .tls_danger_accept_invalid_certs(insecure_skip_tls_verify)
            .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PrError::Unavailable {
                provider: api.kind().name(),
                method: "-".into(),
                path: repo_url.to_string(),
                message: e.to_string(),
            })?;
        let auth = api.auth_header(token);
        Ok(Self {
            api,
            http,
            auth,
            repo_url: repo_url.to_string(),
        })
    }

    pub fn provider(&self) -> &'static str {
        self.api.kind().name()
    }

    /// Sends `req`; statuses in `expected` are returned, other failures are errors.
    async fn send(&self, req: &Request, expected: &[u16]) -> Result<Response, PrError> {
        let provider = self.provider();
        let path = reqwest::Url::parse(&req.url)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| req.url.clone());
        let method = req.method.to_string();
        tracing::debug!(provider, %method, %path, "pull request API call");
        let mut builder = self
            .http
            .request(req.method.clone(), &req.url)
            .header(self.auth.0, &self.auth.1)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &req.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let unavailable = |message: String| PrError::Unavailable {
            provider,
            method: method.clone(),
            path: path.clone(),
            message,
        };
        let resp = builder
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| unavailable(e.to_string()))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) || expected.contains(&status) {
            return Ok(Response { status, body });
        }
        let message = error_message(&body, &bytes);
        if status >= 500 || status == 429 {
            return Err(unavailable(format!("{status}: {message}")));
        }
        Err(PrError::Refused {
            provider,
            method,
            path,
            status,
            message,
        })
    }

    /// Sends `req` as built elsewhere (github-push's Git database calls); statuses in
    /// `expected` are returned with the body, other failures are errors.
    pub(crate) async fn call(
        &self,
        req: &Request,
        expected: &[u16],
    ) -> Result<(u16, Value), PrError> {
        let resp = self.send(req, expected).await?;
        Ok((resp.status, resp.body))
    }

    fn bad(&self, message: String) -> PrError {
        PrError::BadResponse {
            provider: self.provider(),
            message,
        }
    }

    /// The head of `name`, `None` when the branch does not exist.
    pub async fn branch(&self, name: &str) -> Result<Option<Branch>, PrError> {
        let resp = self.send(&self.api.branch(name), &[404]).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        self.api
            .parse_branch(name, &resp.body)
            .map_err(|e| self.bad(e))
    }

    /// The pull request from `head` into `base` to adopt instead of opening one: among those
    /// whose head is `head_sha`, an open one, else a merged one, the newest first (Kargo's
    /// order). A closed, unmerged one is never adopted.
    pub async fn find(
        &self,
        head: &str,
        base: &str,
        head_sha: &str,
    ) -> Result<Option<PullRequest>, PrError> {
        let resp = self.send(&self.api.find(head, base), &[]).await?;
        let found = self.api.parse_list(&resp.body).map_err(|e| self.bad(e))?;
        Ok(adoptable(found, head, base, head_sha))
    }

    /// Opens a pull request (and labels it where that is a second call).
    pub async fn open(&self, new: &NewPullRequest) -> Result<PullRequest, PrError> {
        let resp = self.send(&self.api.create(new), &[]).await?;
        let pr = self.api.parse_pr(&resp.body).map_err(|e| self.bad(e))?;
        if let Some(labels) = self.api.after_create(pr.number, &new.labels) {
            self.send(&labels, &[]).await?;
        }
        Ok(pr)
    }

    /// Pull request `number`, `None` when there is none.
    pub async fn get(&self, number: u64) -> Result<Option<PullRequest>, PrError> {
        let resp = self.send(&self.api.get(number), &[404]).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let mut pr = self.api.parse_pr(&resp.body).map_err(|e| self.bad(e))?;
        if let Some(sha) = pr.merge_commit.clone()
            && let Some(req) = self.api.full_commit(&sha)
        {
            let resp = self.send(&req, &[]).await?;
            pr.merge_commit = self.api.parse_commit(&resp.body).or(Some(sha));
        }
        Ok(Some(pr))
    }

    /// Merges pull request `number` when it can be merged now. A merged one is returned as
    /// it is; a closed one, one with conflicts or one that does not exist is an error.
    pub async fn merge(
        &self,
        number: u64,
        method: Option<&str>,
    ) -> Result<Option<MergeResult>, PrError> {
        let Some(pr) = self.get(number).await? else {
            return Ok(None);
        };
        if pr.merged {
            return Ok(Some(MergeResult::Merged(pr)));
        }
        if !pr.open {
            return Err(PrError::ClosedUnmerged {
                number,
                repo_url: self.repo_url.clone(),
            });
        }
        match &pr.mergeable {
            Mergeable::Ready => {}
            Mergeable::NotYet(why) => return Ok(Some(MergeResult::NotReady(why.clone()))),
            Mergeable::Conflict(why) => {
                return Err(PrError::Unmergeable {
                    number,
                    repo_url: self.repo_url.clone(),
                    why: why.clone(),
                });
            }
        }
        let req = self.api.merge(&pr, method)?;
        // 405/406/409/422: the providers' "not mergeable right now" (checks, a moved head);
        // 202: Bitbucket merging in the background.
        let resp = self.send(&req, &[202, 405, 406, 409, 422]).await?;
        if resp.status >= 400 {
            let message = error_message(&resp.body, b"");
            // GitHub: "Merge method … not allowed" never changes by waiting.
            if message.contains("not allowed") {
                return Err(PrError::Unmergeable {
                    number,
                    repo_url: self.repo_url.clone(),
                    why: message,
                });
            }
            return Ok(Some(MergeResult::NotReady(format!(
                "{} refused the merge for now ({}): {message}",
                self.provider(),
                resp.status
            ))));
        }
        // Read it back: the merge response does not carry the merge commit everywhere.
        match self.get(number).await? {
            Some(after) if after.merged => Ok(Some(MergeResult::Merged(after))),
            _ => Ok(Some(MergeResult::NotReady(
                "the merge was accepted and is still in progress".into(),
            ))),
        }
    }
}

/// Kargo's choice among found pull requests (see [`Client::find`]).
fn adoptable(
    found: Vec<PullRequest>,
    head: &str,
    base: &str,
    head_sha: &str,
) -> Option<PullRequest> {
    let mut candidates: Vec<PullRequest> = found
        .into_iter()
        .filter(|p| p.source_branch.as_deref().is_none_or(|b| b == head))
        .filter(|p| p.target_branch.as_deref().is_none_or(|b| b == base))
        .filter(|p| p.head_sha.as_deref() == Some(head_sha))
        .filter(|p| p.open || p.merged)
        .collect();
    candidates.sort_by(|a, b| {
        b.open
            .cmp(&a.open)
            .then(b.merged.cmp(&a.merged))
            .then(b.created_at.cmp(&a.created_at))
    });
    candidates.into_iter().next()
}

/// The provider's error message (`message`, GitLab's `message`/`error`, Bitbucket's
/// `error.message`, Azure's `message`), else the start of the body.
fn error_message(body: &Value, raw: &[u8]) -> String {
    let from_json = ["/message", "/error/message", "/error", "/errors/0/message"]
        .iter()
        .find_map(|p| body.pointer(p))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned());
    let mut text = text.trim().to_string();
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Whether the server hosting `repo_url` answers Gitea's (and Forgejo's) unauthenticated
/// `GET /api/v1/version` with a version. Kargo picks a provider from the host name only, which
/// leaves a self-hosted Gitea on a plain name (or an address) unusable without `provider`;
/// asking the same server the repository lives on costs one request and reaches nothing new.
pub async fn answers_like_gitea(repo_url: &str, insecure_skip_tls_verify: bool) -> bool {
    let Ok(url) = super::repo_url::RepoUrl::parse(repo_url) else {
        return false;
    };
    let Ok(http) = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .tls_danger_accept_invalid_certs(insecure_skip_tls_verify)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
        .build()
    else {
        return false;
    };
    let endpoint = format!("{}://{}/api/v1/version", url.scheme, url.authority);
    let Ok(resp) = http.get(&endpoint).send().await else {
        return false;
    };
    if !resp.status().is_success() {
        return false;
    }
    let Ok(body) = resp.bytes().await else {
        return false;
    };
    serde_json::from_slice::<Value>(&body)
        .is_ok_and(|v| v["version"].as_str().is_some_and(|s| !s.is_empty()))
}

/// A probe is a hint, not an operation: it must not hold the step up for long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(number: u64, open: bool, merged: bool, created: &str, sha: &str) -> PullRequest {
        PullRequest {
            number,
            open,
            merged,
            head_sha: Some(sha.into()),
            source_branch: Some("src".into()),
            target_branch: Some("main".into()),
            created_at: Some(created.into()),
            ..Default::default()
        }
    }

    #[test]
    fn adopts_open_then_merged_newest_first_never_closed_or_stale() {
        let found = vec![
            pr(1, false, false, "2026-01-03T00:00:00Z", "h"),
            pr(2, false, true, "2026-01-01T00:00:00Z", "h"),
            pr(3, true, false, "2026-01-01T00:00:00Z", "h"),
            pr(4, true, false, "2026-01-02T00:00:00Z", "h"),
            pr(5, true, false, "2026-01-05T00:00:00Z", "other"),
        ];
        assert_eq!(
            adoptable(found.clone(), "src", "main", "h").map(|p| p.number),
            Some(4)
        );
        let no_open: Vec<_> = found.into_iter().filter(|p| !p.open).collect();
        assert_eq!(
            adoptable(no_open.clone(), "src", "main", "h").map(|p| p.number),
            Some(2)
        );
        let closed: Vec<_> = no_open.into_iter().filter(|p| !p.merged).collect();
        assert_eq!(adoptable(closed, "src", "main", "h"), None);
    }

    #[test]
    fn error_messages_are_short_and_from_the_body() {
        let body = serde_json::json!({"message": "Validation Failed"});
        assert_eq!(error_message(&body, b""), "Validation Failed");
        let long = "x".repeat(1000);
        assert!(error_message(&Value::Null, long.as_bytes()).chars().count() <= MAX_MESSAGE + 1);
    }
}
