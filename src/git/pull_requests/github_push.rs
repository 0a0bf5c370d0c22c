//! The GitHub REST calls of github-push (Kargo `github_pusher.go`), built and read without IO:
//! after the local commits reach GitHub under a staging ref, the range `base..HEAD` is read
//! with the compare API and each commit is re-created with the Git database API
//! (`POST /git/commits`, same tree and message, parents mapped onto the re-created ones), then
//! the target branch is created or moved (`POST /git/refs`, `PATCH /git/refs/heads/..`).
//! Commits re-created without author and committer are attributed to the token's user and
//! signed by GitHub ("Verified"); Kargo does that for commits signed by a trusted key (or for
//! all when told to), and keeps the original author and committer otherwise.
//! Docs: <https://docs.github.com/en/rest/commits/commits#compare-two-commits>,
//! <https://docs.github.com/en/rest/git/commits#create-a-commit>,
//! <https://docs.github.com/en/rest/git/refs>.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::Client;
use super::github::Github;
use super::{PrError, RepoUrl, Request, escape};
use crate::git::CommitSignature;

/// A person of a commit as the API reports and takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
    /// ISO 8601, as GitHub gives it.
    pub date: Option<String>,
}

/// One commit of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeCommit {
    pub sha: String,
    pub tree: String,
    pub message: String,
    pub author: Option<Person>,
    pub committer: Option<Person>,
    pub parents: Vec<String>,
}

/// The compare API's answer for `base...head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// `identical`, `ahead`, `behind` or `diverged`.
    pub status: String,
    pub merge_base: String,
    /// The commits of `head` not in `base`, oldest first.
    pub commits: Vec<RangeCommit>,
}

/// What to do with a comparison (Kargo's switch on its status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The target already is the source: nothing to push.
    Identical,
    /// Re-create the source-only commits on the merge base and move the target.
    Replay,
    /// Not now: the next attempt integrates the remote branch first.
    Retry(String),
    /// No attempt can succeed.
    Fail(String),
}

pub fn decide(status: &str, force: bool) -> Decision {
    match (status, force) {
        ("identical", _) => Decision::Identical,
        ("ahead", _) | ("behind" | "diverged", true) => Decision::Replay,
        ("behind", false) => Decision::Retry(
            "source branch is behind target branch and force pushing is not enabled".into(),
        ),
        ("diverged", false) => Decision::Retry(
            "source and target branches have diverged and force pushing is not enabled".into(),
        ),
        (other, _) => Decision::Fail(format!("unexpected comparison status {other:?}")),
    }
}

/// Where a re-created commit's parent comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// The comparison's merge base.
    MergeBase,
    /// The commit re-created at this index of the plan.
    Replayed(usize),
    /// A commit outside the range, kept as is (the other side of a merge).
    Original(String),
}

/// One `POST /git/commits` to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommit {
    pub original: String,
    pub tree: String,
    pub message: String,
    /// `None`: left to GitHub, which then attributes and signs the commit.
    pub author: Option<Person>,
    pub committer: Option<Person>,
    pub parents: Vec<Parent>,
}

/// Kargo's `replayCommits`/`buildReplayCommit`/`resolveParents`: a commit signed by a trusted
/// key (or any, with `verify_untrusted`) loses its author and committer, so GitHub signs it,
/// and gains a `Co-authored-by` trailer when its author is not its signer; other commits keep
/// theirs. A single-parent commit goes on the previous re-created one (the merge base first);
/// a merge commit's parents are mapped through the commits re-created so far.
/// `signatures[i]` belongs to `commits[i]`.
pub fn plan_replay(
    comparison: &Comparison,
    signatures: &[CommitSignature],
    verify_untrusted: bool,
) -> Vec<PlannedCommit> {
    let mut plan: Vec<PlannedCommit> = Vec::with_capacity(comparison.commits.len());
    for (i, c) in comparison.commits.iter().enumerate() {
        let sig = signatures.get(i).cloned().unwrap_or_default();
        let mut commit = PlannedCommit {
            original: c.sha.clone(),
            tree: c.tree.clone(),
            message: c.message.clone(),
            author: None,
            committer: None,
            parents: Vec::new(),
        };
        if sig.trusted || verify_untrusted {
            if let Some(a) = &c.author
                && !a.name.is_empty()
                && !a.email.is_empty()
                && (a.name != sig.signer_name || a.email != sig.signer_email)
            {
                commit.message = format!(
                    "{}\n\nCo-authored-by: {} <{}>",
                    commit.message, a.name, a.email
                );
            }
        } else {
            commit.author = c.author.clone();
            commit.committer = c.committer.clone();
        }
        commit.parents = if c.parents.len() <= 1 {
            vec![if i == 0 {
                Parent::MergeBase
            } else {
                Parent::Replayed(i - 1)
            }]
        } else {
            c.parents
                .iter()
                .map(|p| {
                    if *p == comparison.merge_base {
                        Parent::MergeBase
                    } else if let Some(j) = plan.iter().position(|q| q.original == *p) {
                        Parent::Replayed(j)
                    } else {
                        Parent::Original(p.clone())
                    }
                })
                .collect()
        };
        plan.push(commit);
    }
    plan
}

/// The SHAs of `parents`, given the merge base and the SHAs re-created so far.
pub fn resolve_parents(parents: &[Parent], merge_base: &str, created: &[String]) -> Vec<String> {
    parents
        .iter()
        .map(|p| match p {
            Parent::MergeBase => merge_base.to_string(),
            Parent::Replayed(j) => created.get(*j).cloned().unwrap_or_default(),
            Parent::Original(sha) => sha.clone(),
        })
        .collect()
}

/// The GitHub API of one repository, for github-push.
pub struct GithubPushApi {
    /// `<api>/repos/<owner>/<repo>`.
    repo: String,
}

impl GithubPushApi {
    /// github.com's API is api.github.com; an Enterprise server's `https://<host>/api/v3`.
    pub fn new(repo_url: &str) -> Result<Self, String> {
        let url = RepoUrl::parse(repo_url)?;
        let api = if url.host == "github.com" {
            "https://api.github.com".to_string()
        } else {
            format!("{}/api/v3", url.origin())
        };
        let (owner, repo) = url.owner_and_repo()?;
        Ok(Self {
            repo: format!("{api}/repos/{}/{}", escape(&owner), escape(&repo)),
        })
    }

    /// `GET /git/ref/heads/<branch>`.
    pub fn get_branch(&self, branch: &str) -> Request {
        Request::get(format!("{}/git/ref/heads/{}", self.repo, ref_path(branch)))
    }

    /// `GET /compare/<base>...<head>` (up to 250 commits, as Kargo asks).
    pub fn compare(&self, base: &str, head: &str) -> Request {
        Request::get(format!(
            "{}/compare/{}...{}?per_page=250",
            self.repo,
            escape(base),
            escape(head)
        ))
    }

    /// `POST /git/commits` of a planned commit with its parents resolved.
    pub fn create_commit(&self, commit: &PlannedCommit, parents: &[String]) -> Request {
        let mut body = Map::new();
        body.insert("message".into(), json!(commit.message));
        body.insert("tree".into(), json!(commit.tree));
        body.insert("parents".into(), json!(parents));
        for (key, person) in [("author", &commit.author), ("committer", &commit.committer)] {
            if let Some(p) = person {
                let mut v = json!({"name": p.name, "email": p.email});
                if let Some(d) = &p.date {
                    v["date"] = json!(d);
                }
                body.insert(key.into(), v);
            }
        }
        Request::with(
            Method::POST,
            format!("{}/git/commits", self.repo),
            Value::Object(body),
        )
    }

    /// `POST /git/refs`: a new branch at `sha`.
    pub fn create_branch(&self, branch: &str, sha: &str) -> Request {
        Request::with(
            Method::POST,
            format!("{}/git/refs", self.repo),
            json!({"ref": format!("refs/heads/{branch}"), "sha": sha}),
        )
    }

    /// `PATCH /git/refs/heads/<branch>`.
    pub fn update_branch(&self, branch: &str, sha: &str, force: bool) -> Request {
        Request::with(
            Method::PATCH,
            format!("{}/git/refs/heads/{}", self.repo, ref_path(branch)),
            json!({"sha": sha, "force": force}),
        )
    }

    /// `DELETE /git/refs/<ref>` (`ref` without `refs/`).
    pub fn delete_ref(&self, refname: &str) -> Request {
        Request {
            method: Method::DELETE,
            url: format!(
                "{}/git/refs/{}",
                self.repo,
                ref_path(refname.trim_start_matches("refs/"))
            ),
            body: None,
        }
    }

    /// A client for these calls with `token` (sent as a bearer token, never logged).
    pub fn client(
        repo_url: &str,
        token: &str,
        insecure_skip_tls_verify: bool,
    ) -> Result<Client, PrError> {
        let url = RepoUrl::parse(repo_url).map_err(|e| PrError::BadResponse {
            provider: "GitHub",
            message: e,
        })?;
        let api = Github::new(&url).map_err(|e| PrError::BadResponse {
            provider: "GitHub",
            message: e,
        })?;
        Client::new(Box::new(api), token, insecure_skip_tls_verify, repo_url)
    }
}

/// A ref path with each segment escaped and the slashes kept.
fn ref_path(r: &str) -> String {
    r.split('/').map(escape).collect::<Vec<_>>().join("/")
}

/// The target branch's head from `GET /git/ref/...`.
pub fn parse_ref_sha(body: &Value) -> Result<String, String> {
    body.pointer("/object/sha")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "ref response without object.sha".into())
}

/// The new commit's SHA from `POST /git/commits`.
pub fn parse_created_sha(body: &Value) -> Result<String, String> {
    body.get("sha")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "commit response without sha".into())
}

fn person(v: Option<&Value>) -> Option<Person> {
    let v = v?;
    Some(Person {
        name: v.get("name")?.as_str()?.to_string(),
        email: v.get("email")?.as_str()?.to_string(),
        date: v.get("date").and_then(Value::as_str).map(str::to_string),
    })
}

/// The compare API's answer.
pub fn parse_comparison(body: &Value) -> Result<Comparison, String> {
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .ok_or("comparison without status")?
        .to_string();
    let merge_base = body
        .pointer("/merge_base_commit/sha")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let commits = body
        .get("commits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let missing = || format!("commit {i} in range has missing tree information");
            Ok(RangeCommit {
                sha: c
                    .get("sha")
                    .and_then(Value::as_str)
                    .ok_or_else(missing)?
                    .to_string(),
                tree: c
                    .pointer("/commit/tree/sha")
                    .and_then(Value::as_str)
                    .ok_or_else(missing)?
                    .to_string(),
                message: c
                    .pointer("/commit/message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                author: person(c.pointer("/commit/author")),
                committer: person(c.pointer("/commit/committer")),
                parents: c
                    .get("parents")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| p.get("sha")?.as_str().map(str::to_string))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Comparison {
        status,
        merge_base,
        commits,
    })
}

#[cfg(test)]
mod tests;
