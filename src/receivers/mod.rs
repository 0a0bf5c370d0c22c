//! Kargo's inbound webhook receivers (`ProjectConfig.spec.webhookReceivers`): a push to a git
//! repository or an image registry refreshes the Warehouses of the project that subscribe to
//! it, instead of waiting for their next discovery interval.
//!
//! This module is the pure part: the secret receiver path (as Kargo derives it), the helpers
//! receivers share, and Warehouse matching. Each receiver kind (authentication and payload →
//! repository URLs) is one file, listed once in [`registry`]. [`server`] is the HTTP side; the
//! ProjectConfig reconciler publishes the paths in `status.webhookReceivers`.

mod artifactory;
mod azure;
mod bitbucket;
mod dockerhub;
pub mod generic;
mod gitea;
mod github;
mod gitlab;
mod harbor;
pub mod promotion_match;
mod quay;
pub mod registry;
pub mod server;
pub mod warehouse_match;

use std::collections::BTreeSet;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use dockerhub::parse_dockerhub;
pub use github::{parse_github, verify_github};
pub use gitlab::{parse_gitlab, verify_gitlab};
pub use quay::parse_quay;
pub use registry::{Platform, RECEIVERS, Receiver, platform_of};
pub use warehouse_match::{Pushed, matching_warehouses, should_refresh, subscribes_to};

use crate::api::WebhookReceiverDetails;

/// Kargo's limit on a webhook request body (2 MiB).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Why a configured receiver cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("webhook receiver {name:?} has no platform configured")]
    NoPlatform { name: String },
    #[error("webhook receiver {name:?} configures more than one platform")]
    ManyPlatforms { name: String },
    #[error("webhook receiver {name:?} has no name")]
    NoName { name: String },
}

/// Kargo's `buildWebhookPath`: `<basePath>/<type>/<hex sha256(project + name + secrets…)>`.
/// The path is itself a secret; changing this changes every published URL.
pub fn webhook_path(
    base_path: &str,
    project: &str,
    platform: Platform,
    receiver_name: &str,
    secret_values: &[&str],
) -> String {
    let mut h = Sha256::new();
    h.update(project.as_bytes());
    h.update(receiver_name.as_bytes());
    for v in secret_values {
        h.update(v.as_bytes());
    }
    let base = base_path.trim_end_matches('/');
    format!("{base}/{}/{}", platform.as_str(), hex(&h.finalize()))
}

/// Splits a base URL into its origin (`scheme://host[:port]`) and path.
fn split_base_url(base_url: &str) -> (&str, &str) {
    let base_url = base_url.split(['?', '#']).next().unwrap_or(base_url);
    let after_scheme = base_url.find("://").map(|i| i + 3).unwrap_or(0);
    match base_url[after_scheme..].find('/') {
        Some(i) => base_url.split_at(after_scheme + i),
        None => (base_url, ""),
    }
}

/// `status.webhookReceivers[]` for one receiver: its path, and its URL when the base URL
/// (`HAUL_RECEIVERS_BASE_URL`) is known.
pub fn details(
    base_url: Option<&str>,
    project: &str,
    receiver_name: &str,
    platform: Platform,
    secret: &str,
) -> WebhookReceiverDetails {
    let (origin, base_path) = base_url.map(split_base_url).unwrap_or(("", ""));
    let path = webhook_path(base_path, project, platform, receiver_name, &[secret]);
    WebhookReceiverDetails {
        name: Some(receiver_name.to_string()),
        url: (!origin.is_empty()).then(|| format!("{origin}{path}")),
        path: Some(path),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    sha256_mac(key, message).finalize().into_bytes().into()
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an empty MAC on the
/// impossible error would only make verification fail.
fn sha256_mac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(message);
    mac
}

/// Checks a hex HMAC-SHA256 of the raw body, as GitHub-style senders sign (`sha256=<hex>`
/// when `prefixed`, bare hex otherwise). Missing or empty is [`RequestError::MissingSignature`].
fn verify_hmac_hex(
    signature: Option<&str>,
    prefixed: bool,
    body: &[u8],
    secret: &[u8],
) -> Result<(), RequestError> {
    let sig = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(RequestError::MissingSignature)?;
    let hex = if prefixed {
        sig.strip_prefix("sha256=")
            .ok_or(RequestError::Unauthorized)?
    } else {
        sig
    };
    let presented = unhex(&hex.to_ascii_lowercase()).ok_or(RequestError::Unauthorized)?;
    // verify_slice compares in constant time.
    sha256_mac(secret, body)
        .verify_slice(&presented)
        .map_err(|_| RequestError::Unauthorized)
}

/// The distinct files a push's commits added, modified or removed, or none when the sender
/// truncated the list (`total` above the commits given): path filters then cannot be applied.
fn changed_paths(v: &Value, total_pointer: &str) -> Vec<String> {
    let commits = push_commits(v);
    let total = v.pointer(total_pointer).and_then(Value::as_u64);
    if total.is_some_and(|t| t > commits.len() as u64) {
        return Vec::new();
    }
    commit_paths(commits)
}

/// A push payload's `commits`.
fn push_commits(v: &Value) -> &[Value] {
    v.get("commits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The files the given commits added, modified or removed.
fn commit_paths<'a>(commits: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    commits
        .into_iter()
        .flat_map(|c| ["added", "modified", "removed"].map(|k| c.get(k)))
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// A request header as text; a missing or non-ASCII header is `None`.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Compares in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Why a request was refused or could not be handled. Messages never contain the secret or
/// the presented signature/token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("missing signature")]
    MissingSignature,
    #[error("unauthorized")]
    Unauthorized,
    #[error("event type {0:?} is not supported")]
    UnsupportedEvent(String),
    #[error("invalid request body")]
    InvalidBody,
    #[error("request does not appear to have originated from a supported service")]
    UnsupportedSender,
    #[error("missing authorization")]
    MissingAuthorization,
}

impl RequestError {
    /// The HTTP status Kargo answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingSignature | Self::MissingAuthorization | Self::Unauthorized => 401,
            Self::UnsupportedEvent(_) | Self::InvalidBody | Self::UnsupportedSender => 400,
        }
    }
}

/// What an authenticated request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// GitHub's ping: the webhook is configured correctly; nothing to refresh.
    Ping,
    /// An event that refreshes nothing (a deleted package, a non-container package, …).
    Ignored,
    /// Refresh the Warehouses subscribed to any of these normalised repository URLs that the
    /// pushed refs, tags or versions (`qualifiers`) concern ([`warehouse_match`]); with
    /// `changed_paths`, git subscriptions' path filters apply too.
    Refresh {
        repo_urls: Vec<String>,
        qualifiers: Vec<String>,
        changed_paths: Vec<String>,
    },
    /// The generic receiver's actions, resolved against the request.
    Actions(Vec<generic::Action>),
    /// A pull request was merged or closed: refresh the Running Promotions waiting on it
    /// (a `git-wait-for-pr` step whose output names this web URL), so they see it at once
    /// instead of at their next poll.
    PullRequestClosed { url: String },
}

/// The pull request at `url` ended; nothing to do when the payload names no URL.
fn pull_request_closed(url: &str) -> Event {
    if url.is_empty() {
        Event::Ignored
    } else {
        Event::PullRequestClosed {
            url: url.to_string(),
        }
    }
}

fn refresh(repo_urls: Vec<String>, qualifiers: Vec<String>) -> Event {
    refresh_paths(repo_urls, qualifiers, Vec::new())
}

/// A refresh that also names the files the pushed commits changed.
fn refresh_paths(repo_urls: Vec<String>, qualifiers: Vec<String>, changed: Vec<String>) -> Event {
    let dedup = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    Event::Refresh {
        repo_urls: dedup(repo_urls),
        qualifiers: dedup(qualifiers),
        changed_paths: dedup(changed),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, RequestError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or(RequestError::InvalidBody)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The git repository URLs a push payload gives at `pointers` (the clone URLs), normalised;
/// absent ones are left out.
fn git_repo_urls(v: &Value, pointers: &[&str]) -> Vec<String> {
    pointers
        .iter()
        .map(|p| str_at(v, p))
        .filter(|u| !u.is_empty())
        .map(crate::git::normalize_url)
        .collect()
}

/// An image repository from a payload, normalised both as an image and as an OCI chart
/// repository (Kargo's `getNormalizedImageRepoURLs` / Quay handling); duplicates collapse.
fn image_repo_urls(repo: &str) -> Vec<String> {
    let repo = repo.trim().trim_end_matches(':');
    if repo.is_empty() {
        return Vec::new();
    }
    vec![
        crate::urls::normalize_image(repo),
        crate::urls::normalize_chart(repo),
    ]
}

/// Media types that show a pushed manifest or config belongs to a container image (Kargo's
/// `probableContainerImageMediaTypes`). An OCI image manifest is left out on purpose: Helm
/// charts are pushed with it too.
const IMAGE_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Kargo's `getNormalizedImageRepoURLs`: the repository normalised as a chart when the media
/// type is Helm's, as an image when it is an image's, and as both when it cannot tell.
fn image_repo_urls_of_media_type(repo: &str, media_type: &str) -> Vec<String> {
    let repo = repo.trim().trim_end_matches(':');
    if repo.is_empty() {
        return Vec::new();
    }
    if media_type.starts_with("application/vnd.cncf.helm") {
        return vec![crate::urls::normalize_chart(repo)];
    }
    if IMAGE_MEDIA_TYPES.contains(&media_type) {
        return vec![crate::urls::normalize_image(repo)];
    }
    image_repo_urls(repo)
}

#[cfg(test)]
mod kind_tests;
#[cfg(test)]
mod tests;
