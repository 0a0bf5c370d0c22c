//! GitLab: `Push Hook` and `Tag Push Hook` events, authenticated by `X-Gitlab-Token`.

use http::HeaderMap;

use super::registry::Receiver;
use super::{Event, RequestError, constant_time_eq, header, parse_json, refresh, str_at};
use crate::api::{LocalSecretReference, WebhookReceiverConfig};

pub struct Gitlab;

impl Receiver for Gitlab {
    fn kind(&self) -> &'static str {
        "gitlab"
    }

    /// Kargo's key for GitLab differs from the others.
    fn secret_key(&self) -> &'static str {
        "secret-token"
    }

    fn secret_ref<'c>(&self, cfg: &'c WebhookReceiverConfig) -> Option<&'c LocalSecretReference> {
        cfg.gitlab.as_ref().map(|s| &s.secret_ref)
    }

    fn handle(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &[u8],
    ) -> Result<Event, RequestError> {
        verify_gitlab(header(headers, "x-gitlab-token"), secret)?;
        parse_gitlab(header(headers, "x-gitlab-event").unwrap_or_default(), body)
    }
}

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
            let urls = ["/repository/git_http_url", "/repository/git_ssh_url"]
                .iter()
                .map(|p| str_at(&v, p))
                .filter(|u| !u.is_empty())
                .map(crate::git::normalize_url)
                .collect();
            Ok(refresh(urls, vec![str_at(&v, "/ref").to_string()]))
        }
        // Kargo refreshes Promotions waiting on the merge request; haul does not yet.
        "Merge Request Hook" => Ok(Event::Ignored),
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
    }
}
