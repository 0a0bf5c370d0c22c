//! JFrog Artifactory: `pushed` events of the `docker` domain (images and OCI charts), signed
//! with `X-Jfrog-Event-Auth: <hex HMAC-SHA256 of the body>` under the Secret's `secret-token`.
//! `virtualRepoName` in the receiver's configuration replaces the local repository the event
//! names, for Warehouses that subscribe through a virtual repository.

use serde_json::Value;

use super::registry::{Receiver, Request};
use super::{Event, RequestError, header, parse_json, refresh, str_at, verify_hmac_hex};

pub static ARTIFACTORY: Receiver = Receiver::new(
    "artifactory",
    |c| c.artifactory.as_ref().map(|s| &s.secret_ref),
    |r: Request<'_>| {
        verify_hmac_hex(
            header(r.headers, "x-jfrog-event-auth"),
            false,
            r.body,
            r.secret,
        )?;
        let virtual_repo = r
            .config
            .artifactory
            .as_ref()
            .and_then(|a| a.extra.get("virtualRepoName"))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty());
        parse_artifactory(r.body, virtual_repo)
    },
)
// Kargo's key for Artifactory.
.with_secret_key("secret-token");

/// An Artifactory event with its verified body.
pub fn parse_artifactory(body: &[u8], virtual_repo: Option<&str>) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    let (event_type, domain) = (str_at(&v, "/event_type"), str_at(&v, "/domain"));
    if event_type != "pushed" || domain != "docker" {
        return Err(RequestError::UnsupportedEvent(format!(
            "{domain}/{event_type}"
        )));
    }
    let image_type = str_at(&v, "/data/image_type");
    // `data.path` is `<image path>/<tag>/manifest.json`: the repository path is what precedes
    // the last two segments.
    let path: Vec<&str> = str_at(&v, "/data/path").split('/').collect();
    let Some(image_path) = path.len().checked_sub(2).map(|n| &path[..n]) else {
        return Err(RequestError::InvalidBody);
    };
    let host = origin_host(str_at(&v, "/jpd_origin")).ok_or(RequestError::InvalidBody)?;
    let repo_name = virtual_repo.unwrap_or_else(|| str_at(&v, "/data/repo_key"));
    let repo = [host, repo_name]
        .into_iter()
        .chain(image_path.iter().copied())
        .collect::<Vec<_>>()
        .join("/");
    let repo_url = match image_type {
        "docker" => crate::urls::normalize_image(&repo),
        "oci" => crate::urls::normalize_chart(&repo),
        other => {
            return Err(RequestError::UnsupportedEvent(format!(
                "image type {other}"
            )));
        }
    };
    Ok(refresh(
        vec![repo_url],
        vec![str_at(&v, "/data/tag").to_string()],
    ))
}

/// The host (and port) of the platform URL in `jpd_origin`.
fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!host.is_empty()).then_some(host)
}
