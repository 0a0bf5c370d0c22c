//! git-tag (an annotated tag on a worktree's HEAD) and what git-push does with `tag`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::git::git_err;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in, repo_of};
use crate::git::{Author, Credentials, Worktree};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaggerConfig {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    email: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagConfig {
    path: String,
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    tag: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    #[schemars(with = "Option<lenient::Text>")]
    message: Option<String>,
    #[serde(default)]
    force: bool,
    tagger: Option<TaggerConfig>,
}

fn tagger(cfg: Option<&TaggerConfig>, default: &Author) -> Author {
    super::git::identity_or(
        cfg.and_then(|t| t.name.as_ref()),
        cfg.and_then(|t| t.email.as_ref()),
        default,
    )
}

/// Creates the tag on HEAD; outputs `tag` and `commit` as Kargo does.
pub async fn tag(cfg: TagConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.tag.trim().is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.tag: a tag name is required".into(),
        ));
    }
    let dir = path_in(env, &cfg.path, "path")?;
    let repo = repo_of(env.work_dir, &dir, "path")?;
    let wt = env.git.open_worktree(&repo, &dir).await.map_err(git_err)?;
    // git refuses an annotated tag without a message; the tag name is git's own convention.
    let message = cfg
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| cfg.tag.clone());
    let default = wt.author().unwrap_or_else(|| env.author.clone());
    let who = tagger(cfg.tagger.as_ref(), &default);
    if !wt.signing_key_recorded() {
        // After a restart the worktree's key is forgotten; the default author's still applies.
        wt.set_signing_key(env.default_signing_key()?);
    }
    let made = wt
        .create_tag(&cfg.tag, &message, &who, cfg.force)
        .await
        .map_err(|e| tag_err(e, "config.tag"))?;
    let mut out = Map::new();
    out.insert("tag".into(), Value::String(cfg.tag));
    out.insert("commit".into(), Value::String(made.commit));
    Ok(StepOutcome {
        message: made
            .existed
            .then(|| "the tag already named HEAD; left as it was".to_string()),
        ..StepOutcome::succeeded(out)
    })
}

fn tag_err(e: crate::git::GitError, field: &str) -> StepError {
    match e {
        crate::git::GitError::InvalidArgument { .. } => StepError::Failed(format!("{field}: {e}")),
        other => git_err(other),
    }
}

/// git-push's `tag`: once the branch is pushed, pushes the tag. If the branch push rebased
/// the tagged commit onto new remote commits, the tag is moved to the rebased commit first,
/// so it names what is on the branch (Kargo pushes tags without integrating, and fails then).
pub async fn push_tag(
    wt: &Worktree,
    creds: &Credentials,
    author: &Author,
    name: &str,
    tagged_before: Option<&str>,
    head_before: &str,
    force: bool,
) -> Result<(), StepError> {
    let head = wt.head().await.map_err(git_err)?;
    if tagged_before == Some(head_before) && head != head_before {
        wt.retag_head(name, author).await.map_err(git_err)?;
    }
    wt.push_tag(creds, name, force)
        .await
        .map_err(|e| tag_err(e, "config.tag"))?;
    Ok(())
}

/// The web URL of `sha` in `repo_url`, for the git providers Kargo knows, named by `provider`
/// or recognised from the host as Kargo does. `None` for any other host.
pub fn commit_url(repo_url: &str, provider: Option<&str>, sha: &str) -> Option<String> {
    let (host, path) = host_and_path(repo_url)?;
    let path = path.trim_matches('/').trim_end_matches(".git");
    if path.is_empty() {
        return None;
    }
    let provider = match provider {
        Some(p) => p.to_string(),
        None => infer_provider(&host)?.to_string(),
    };
    let base = format!("https://{host}/{path}");
    match provider.as_str() {
        "github" | "gitea" | "azure" => Some(format!("{base}/commit/{sha}")),
        "gitlab" => Some(format!("{base}/-/commit/{sha}")),
        "bitbucket" => Some(format!("{base}/commits/{sha}")),
        _ => None,
    }
}

fn infer_provider(host: &str) -> Option<&'static str> {
    let host = host.to_ascii_lowercase();
    if host == "github.com" || host.starts_with("github.") {
        Some("github")
    } else if host == "gitlab.com" || host.starts_with("gitlab.") {
        Some("gitlab")
    } else if host == "bitbucket.org" {
        Some("bitbucket")
    } else if host == "dev.azure.com" || host.ends_with(".visualstudio.com") {
        Some("azure")
    } else if host.starts_with("gitea.") {
        Some("gitea")
    } else {
        None
    }
}

/// Host (without userinfo or port) and path of an http(s), ssh:// or scp-like git URL.
fn host_and_path(url: &str) -> Option<(String, String)> {
    let strip_user = |s: &str| s.rsplit_once('@').map_or(s, |(_, h)| h).to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "http" | "https" | "ssh" | "git") {
            return None;
        }
        let (authority, path) = rest.split_once('/')?;
        let host = strip_user(authority);
        let host = host.split(':').next().unwrap_or_default().to_string();
        return (!host.is_empty()).then(|| (host, path.to_string()));
    }
    // scp-like: git@github.com:org/repo.git
    let (authority, path) = url.split_once(':')?;
    let host = strip_user(authority);
    (!host.is_empty() && !host.contains('/')).then(|| (host, path.to_string()))
}

step! { pub struct GitTag = "git-tag", TagConfig, |cfg, env| tag(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_urls_for_known_providers() {
        let sha = "abc123";
        let cases = [
            (
                "https://github.com/org/repo.git",
                None,
                Some("https://github.com/org/repo/commit/abc123"),
            ),
            (
                "git@github.com:org/repo.git",
                None,
                Some("https://github.com/org/repo/commit/abc123"),
            ),
            (
                "ssh://git@gitlab.com:22/group/sub/repo.git",
                None,
                Some("https://gitlab.com/group/sub/repo/-/commit/abc123"),
            ),
            (
                "https://user@bitbucket.org/org/repo",
                None,
                Some("https://bitbucket.org/org/repo/commits/abc123"),
            ),
            (
                "https://dev.azure.com/org/proj/_git/repo",
                None,
                Some("https://dev.azure.com/org/proj/_git/repo/commit/abc123"),
            ),
            (
                "https://git.example.com/org/repo.git",
                Some("gitea"),
                Some("https://git.example.com/org/repo/commit/abc123"),
            ),
            ("https://git.example.com/org/repo.git", None, None),
            ("/srv/git/repo.git", None, None),
            ("file:///srv/git/repo.git", None, None),
        ];
        for (url, provider, want) in cases {
            assert_eq!(
                commit_url(url, provider, sha).as_deref(),
                want,
                "{url} {provider:?}"
            );
        }
    }
}
