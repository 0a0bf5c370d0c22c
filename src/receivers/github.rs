//! GitHub: `push` (with the changed files, for path filters), `package`/`registry_package` and
//! `ping` events, signed with HMAC-SHA256 (`X-Hub-Signature-256`).

use hmac::Mac;
use serde_json::Value;

use super::registry::Receiver;
use super::{
    Event, RequestError, commit_paths, git_repo_urls, header, image_repo_urls, parse_json,
    pull_request_closed, push_commits, refresh, refresh_paths, sha256_mac, str_at, unhex,
};

pub static GITHUB: Receiver = Receiver::new(
    "github",
    |c| c.github.as_ref().map(|s| &s.secret_ref),
    |r| {
        verify_github(header(r.headers, "x-hub-signature-256"), r.body, r.secret)?;
        parse_github(
            header(r.headers, "x-github-event").unwrap_or_default(),
            r.body,
        )
    },
);

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex hmac of the raw body>`.
pub fn verify_github(
    signature: Option<&str>,
    body: &[u8],
    secret: &[u8],
) -> Result<(), RequestError> {
    let sig = signature
        .filter(|s| !s.is_empty())
        .ok_or(RequestError::MissingSignature)?;
    let presented = sig
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or(RequestError::Unauthorized)?;
    // verify_slice compares in constant time.
    sha256_mac(secret, body)
        .verify_slice(&presented)
        .map_err(|_| RequestError::Unauthorized)
}

/// A GitHub event (`X-GitHub-Event`) with its verified body.
pub fn parse_github(event_type: &str, body: &[u8]) -> Result<Event, RequestError> {
    match event_type {
        "ping" => Ok(Event::Ping),
        "push" => {
            let v = parse_json(body)?;
            // Kargo uses clone_url only; the ssh URL is added so Warehouses subscribed over
            // ssh are found too.
            let urls = git_repo_urls(&v, &["/repository/clone_url", "/repository/ssh_url"]);
            // GitHub lists at most 2048 commits; a longer push may have changed anything, so
            // path filters are not applied to it (as Kargo).
            let commits = push_commits(&v);
            let paths = if commits.len() < 2048 {
                commit_paths(commits.iter().chain(v.get("head_commit")))
            } else {
                Vec::new()
            };
            Ok(refresh_paths(
                urls,
                vec![str_at(&v, "/ref").to_string()],
                paths,
            ))
        }
        "package" | "registry_package" => {
            let v = parse_json(body)?;
            if !matches!(str_at(&v, "/action"), "published" | "updated") {
                return Ok(Event::Ignored);
            }
            let pkg = v
                .get("package")
                .or_else(|| v.get("registry_package"))
                .filter(|p| p.get("package_version").is_some_and(Value::is_object))
                .ok_or(RequestError::InvalidBody)?;
            if !matches!(
                str_at(pkg, "/package_type"),
                "CONTAINER" | "container" | "docker"
            ) {
                return Ok(Event::Ignored);
            }
            let url = str_at(pkg, "/package_version/package_url");
            let tag = str_at(pkg, "/package_version/container_metadata/tag/name");
            Ok(refresh(image_repo_urls(url), vec![tag.to_string()]))
        }
        "pull_request" => {
            let v = parse_json(body)?;
            if str_at(&v, "/action") != "closed" {
                return Ok(Event::Ignored);
            }
            Ok(pull_request_closed(str_at(&v, "/pull_request/html_url")))
        }
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
    }
}
