//! Kargo's inbound webhook receivers (`ProjectConfig.spec.webhookReceivers`): a push to a git
//! repository or an image registry refreshes the Warehouses of the project that subscribe to
//! it, instead of waiting for their next discovery interval.
//!
//! This module is the pure part: the secret receiver path (as Kargo derives it), the helpers
//! receivers share, and Warehouse matching. Each receiver kind (authentication and payload →
//! repository URLs) is one file, listed once in [`registry`]. [`server`] is the HTTP side; the
//! ProjectConfig reconciler publishes the paths in `status.webhookReceivers`.

mod dockerhub;
mod github;
mod gitlab;
mod quay;
pub mod registry;
pub mod server;

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

use crate::api::{Warehouse, WebhookReceiverDetails};

/// Kargo's limit on a webhook request body (2 MiB).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Why a configured receiver cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("webhook receiver {name:?} has no platform configured")]
    NoPlatform { name: String },
    #[error("webhook receiver {name:?} configures more than one platform")]
    ManyPlatforms { name: String },
    #[error("webhook receiver {name:?}: the {platform} receiver is not supported by haul")]
    Unsupported {
        name: String,
        platform: &'static str,
    },
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
}

impl RequestError {
    /// The HTTP status Kargo answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingSignature | Self::Unauthorized => 401,
            Self::UnsupportedEvent(_) | Self::InvalidBody => 400,
        }
    }
}

/// What an authenticated request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// GitHub's ping: the webhook is configured correctly; nothing to refresh.
    Ping,
    /// An event that refreshes nothing (a deleted package, a non-container package, …).
    Ignored,
    /// Refresh the Warehouses subscribed to any of these normalised repository URLs; the
    /// qualifiers are the pushed refs or tags (reported, not yet used to filter).
    Refresh {
        repo_urls: Vec<String>,
        qualifiers: Vec<String>,
    },
}

fn refresh(repo_urls: Vec<String>, qualifiers: Vec<String>) -> Event {
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

/// Whether `w` subscribes to any of the normalised `repo_urls`.
pub fn subscribes_to(w: &Warehouse, repo_urls: &[String]) -> bool {
    w.spec.subscriptions.iter().any(|s| {
        let mut normalised = Vec::new();
        if let Some(g) = &s.git {
            normalised.push(crate::urls::normalize_git(&g.repo_url));
        }
        if let Some(i) = &s.image {
            normalised.push(crate::urls::normalize_image(&i.repo_url));
        }
        if let Some(c) = &s.chart {
            normalised.push(crate::urls::normalize_chart(&c.repo_url));
        }
        normalised.iter().any(|n| repo_urls.contains(n))
    })
}

/// Names of the Warehouses subscribed to any of `repo_urls`, sorted and distinct.
pub fn matching_warehouses(warehouses: &[Warehouse], repo_urls: &[String]) -> Vec<String> {
    warehouses
        .iter()
        .filter(|w| subscribes_to(w, repo_urls))
        .filter_map(|w| w.metadata.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests;
