//! Azure: Azure Container Registry pushes and Azure DevOps git pushes, told apart by the
//! `User-Agent` the two services send (`AzureContainerRegistry…`, `VSServices…`). Neither signs
//! its requests; the secret path is the only authentication, as in Kargo.

use serde_json::Value;

use super::registry::{Receiver, Request};
use super::{
    Event, RequestError, git_repo_urls, header, image_repo_urls_of_media_type, parse_json,
    pull_request_closed, refresh, str_at,
};

pub static AZURE: Receiver = Receiver::new(
    "azure",
    |c| c.azure.as_ref().map(|s| &s.secret_ref),
    |r: Request<'_>| parse_azure(header(r.headers, "user-agent").unwrap_or_default(), r.body),
);

/// An Azure delivery, by the service its `User-Agent` names.
pub fn parse_azure(user_agent: &str, body: &[u8]) -> Result<Event, RequestError> {
    if user_agent.starts_with("AzureContainerRegistry") {
        parse_acr(body)
    } else if user_agent.starts_with("VSServices") {
        parse_devops(body)
    } else {
        Err(RequestError::UnsupportedSender)
    }
}

/// An ACR webhook event: `push` (of an image or an OCI chart) or `ping`.
fn parse_acr(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    match str_at(&v, "/action") {
        "push" => {
            let repo = format!(
                "{}/{}",
                str_at(&v, "/request/host"),
                str_at(&v, "/target/repository")
            );
            Ok(refresh(
                image_repo_urls_of_media_type(&repo, str_at(&v, "/target/mediaType")),
                vec![str_at(&v, "/target/tag").to_string()],
            ))
        }
        "ping" => Ok(Event::Ping),
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
    }
}

/// An Azure DevOps service hook: `git.push`; a merged or abandoned pull request refreshes the
/// Promotions waiting on it.
fn parse_devops(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    match str_at(&v, "/eventType") {
        "git.push" => {
            let refs = v
                .pointer("/resource/refUpdates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|u| u.get("name").and_then(Value::as_str))
                .map(String::from)
                .collect();
            Ok(refresh(
                git_repo_urls(&v, &["/resource/repository/remoteUrl"]),
                refs,
            ))
        }
        "git.pullrequest.merged" => {
            Ok(pull_request_closed(str_at(&v, "/resource/_links/web/href")))
        }
        // An update matters only when it abandons the pull request.
        "git.pullrequest.updated" if str_at(&v, "/resource/status") == "abandoned" => {
            Ok(pull_request_closed(str_at(&v, "/resource/_links/web/href")))
        }
        "git.pullrequest.updated" => Ok(Event::Ignored),
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
    }
}
