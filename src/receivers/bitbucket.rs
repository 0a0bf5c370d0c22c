//! Bitbucket Cloud (`repo:push`) and Bitbucket Data Center / Server (`repo:refs_changed`),
//! signed with `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`; the event is in
//! `X-Event-Key`. A merged or declined pull request refreshes the Promotions waiting on it.

use serde_json::Value;

use super::registry::{Receiver, Request};
use super::{
    Event, RequestError, git_repo_urls, header, parse_json, pull_request_closed, refresh, str_at,
    verify_hmac_hex,
};

pub static BITBUCKET: Receiver = Receiver::new(
    "bitbucket",
    |c| c.bitbucket.as_ref().map(|s| &s.secret_ref),
    handle,
);

fn handle(r: Request<'_>) -> Result<Event, RequestError> {
    let event_type = header(r.headers, "x-event-key").unwrap_or_default();
    // As Kargo: an event we do not handle is refused before the signature is looked at.
    if !is_supported(event_type) {
        return Err(RequestError::UnsupportedEvent(event_type.to_string()));
    }
    verify_hmac_hex(header(r.headers, "x-hub-signature"), true, r.body, r.secret)?;
    parse_bitbucket(event_type, r.body)
}

fn is_supported(event_type: &str) -> bool {
    matches!(
        event_type,
        "repo:push"
            | "repo:refs_changed"
            | "pullrequest:fulfilled"
            | "pullrequest:rejected"
            | "pr:merged"
            | "pr:declined"
    )
}

/// A Bitbucket event (`X-Event-Key`) with its verified body.
pub fn parse_bitbucket(event_type: &str, body: &[u8]) -> Result<Event, RequestError> {
    match event_type {
        "repo:push" => {
            let v = parse_json(body)?;
            let urls = git_repo_urls(&v, &["/repository/links/html/href"]);
            Ok(refresh(urls, cloud_refs(&v)))
        }
        "repo:refs_changed" => {
            let v = parse_json(body)?;
            let urls = v
                .pointer("/repository/links/clone")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l.get("href").and_then(Value::as_str))
                .map(crate::git::normalize_url)
                .collect();
            let refs = array(&v, "/changes")
                .filter_map(|c| c.pointer("/ref/id").and_then(Value::as_str))
                .map(String::from)
                .collect();
            Ok(refresh(urls, refs))
        }
        // Cloud names the pull request's page; Data Center its `self` link.
        "pullrequest:fulfilled" | "pullrequest:rejected" => {
            let v = parse_json(body)?;
            Ok(pull_request_closed(str_at(
                &v,
                "/pullrequest/links/html/href",
            )))
        }
        "pr:merged" | "pr:declined" => {
            let v = parse_json(body)?;
            Ok(pull_request_closed(str_at(
                &v,
                "/pullRequest/links/self/0/href",
            )))
        }
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
    }
}

fn array<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Bitbucket Cloud names the new head of each change (`push.changes[].new`, null for a
/// deletion) by type and short name; as refs they become `refs/heads/…` or `refs/tags/…`.
fn cloud_refs(v: &Value) -> Vec<String> {
    array(v, "/push/changes")
        .filter_map(|c| {
            let name = c.pointer("/new/name").and_then(Value::as_str)?;
            let kind = c.pointer("/new/type").and_then(Value::as_str);
            Some(if kind == Some("tag") {
                format!("refs/tags/{name}")
            } else {
                format!("refs/heads/{name}")
            })
        })
        .collect()
}
