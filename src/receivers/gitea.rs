//! Gitea: `push` events (branches and tags), signed with HMAC-SHA256 of the body. Gitea sends
//! the signature twice: `X-Hub-Signature-256: sha256=<hex>` (what Kargo checks) and
//! `X-Gitea-Signature: <hex>`; the first is checked when present, else the second, so older
//! Gitea versions and Gitea-compatible senders work too. A `pull_request` event that closes
//! (or merges) a pull request refreshes the Promotions waiting on it, as in Kargo.

use super::registry::{Receiver, Request};
use super::{
    Event, RequestError, changed_paths, git_repo_urls, header, parse_json, pull_request_closed,
    refresh_paths, str_at, verify_hmac_hex,
};

pub static GITEA: Receiver =
    Receiver::new("gitea", |c| c.gitea.as_ref().map(|s| &s.secret_ref), handle);

fn handle(r: Request<'_>) -> Result<Event, RequestError> {
    verify_gitea(
        header(r.headers, "x-hub-signature-256"),
        header(r.headers, "x-gitea-signature"),
        r.body,
        r.secret,
    )?;
    parse_gitea(
        header(r.headers, "x-gitea-event").unwrap_or_default(),
        r.body,
    )
}

/// Checks `X-Hub-Signature-256` when present, else `X-Gitea-Signature`.
pub fn verify_gitea(
    hub_signature: Option<&str>,
    gitea_signature: Option<&str>,
    body: &[u8],
    secret: &[u8],
) -> Result<(), RequestError> {
    match hub_signature.filter(|s| !s.trim().is_empty()) {
        Some(sig) => verify_hmac_hex(Some(sig), true, body, secret),
        None => verify_hmac_hex(gitea_signature, false, body, secret),
    }
}

/// A Gitea event (`X-Gitea-Event`) with its verified body.
pub fn parse_gitea(event_type: &str, body: &[u8]) -> Result<Event, RequestError> {
    match event_type {
        "push" => {
            let v = parse_json(body)?;
            // Kargo uses clone_url only; the ssh URL is added so Warehouses subscribed over
            // ssh are found too.
            let urls = git_repo_urls(&v, &["/repository/clone_url", "/repository/ssh_url"]);
            Ok(refresh_paths(
                urls,
                vec![str_at(&v, "/ref").to_string()],
                changed_paths(&v, "/total_commits"),
            ))
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
