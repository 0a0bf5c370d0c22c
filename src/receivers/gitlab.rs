//! GitLab: `Push Hook` and `Tag Push Hook` events, authenticated by `X-Gitlab-Token`.

use super::registry::Receiver;
use super::{
    Event, RequestError, changed_paths, constant_time_eq, git_repo_urls, header, parse_json,
    pull_request_closed, refresh_paths, str_at,
};

pub static GITLAB: Receiver = Receiver::new(
    "gitlab",
    |c| c.gitlab.as_ref().map(|s| &s.secret_ref),
    |r| {
        verify_gitlab(header(r.headers, "x-gitlab-token"), r.secret)?;
        parse_gitlab(
            header(r.headers, "x-gitlab-event").unwrap_or_default(),
            r.body,
        )
    },
)
// Kargo's key for GitLab differs from the others.
.with_secret_key("secret-token");

/// Checks GitLab's `X-Gitlab-Token` against the shared token.
pub fn verify_gitlab(token: Option<&str>, secret: &[u8]) -> Result<(), RequestError> {
    match token {
        Some(t) if constant_time_eq(t.as_bytes(), secret) => Ok(()),
        _ => Err(RequestError::Unauthorized),
    }
}

/// A GitLab event (`X-Gitlab-Event`) with its authenticated body.
pub fn parse_gitlab(event_type: &str, body: &[u8]) -> Result<Event, RequestError> {
    match event_type {
        "Push Hook" | "Tag Push Hook" => {
            let v = parse_json(body)?;
            let urls = git_repo_urls(&v, &["/repository/git_http_url", "/repository/git_ssh_url"]);
            // As Kargo, only branch pushes filter by the changed files (when not truncated).
            let paths = if event_type == "Push Hook" {
                changed_paths(&v, "/total_commits_count")
            } else {
                Vec::new()
            };
            Ok(refresh_paths(
                urls,
                vec![str_at(&v, "/ref").to_string()],
                paths,
            ))
        }
        "Merge Request Hook" => {
            let v = parse_json(body)?;
            if !matches!(str_at(&v, "/object_attributes/action"), "merge" | "close") {
                return Ok(Event::Ignored);
            }
            Ok(pull_request_closed(str_at(&v, "/object_attributes/url")))
        }
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
    }
}
