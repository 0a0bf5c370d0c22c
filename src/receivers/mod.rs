//! Kargo's inbound webhook receivers (`ProjectConfig.spec.webhookReceivers`): a push to a git
//! repository or an image registry refreshes the Warehouses of the project that subscribe to
//! it, instead of waiting for their next discovery interval.
//!
//! This module is the pure part: the secret receiver path (as Kargo derives it), request
//! authentication, payload → repository URLs, and Warehouse matching. [`server`] is the HTTP
//! side; the ProjectConfig reconciler publishes the paths in `status.webhookReceivers`.

pub mod server;

use std::collections::BTreeSet;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{LocalSecretReference, Warehouse, WebhookReceiverConfig, WebhookReceiverDetails};

/// Kargo's limit on a webhook request body (2 MiB).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// A receiver platform haul implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// GitHub: `push`, `package`/`registry_package` and `ping`; HMAC-SHA256 signature.
    Github,
    /// GitLab: `Push Hook` and `Tag Push Hook`; `X-Gitlab-Token`.
    Gitlab,
    /// Quay: repository push; the secret path is the only authentication.
    Quay,
    /// Docker Hub: repository push; the secret path is the only authentication.
    Dockerhub,
}

impl Platform {
    /// The receiver type, the first path segment after the base path.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Quay => "quay",
            Self::Dockerhub => "dockerhub",
        }
    }

    /// The Secret data key holding the shared secret (Kargo's per-platform key).
    pub fn secret_key(self) -> &'static str {
        match self {
            Self::Gitlab => "secret-token",
            Self::Github | Self::Quay | Self::Dockerhub => "secret",
        }
    }
}

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

/// The platform of a receiver and the Secret it references.
pub fn platform_of(
    cfg: &WebhookReceiverConfig,
) -> Result<(Platform, &LocalSecretReference), ConfigError> {
    let name = cfg.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(ConfigError::NoName { name });
    }
    let mut found: Vec<(&'static str, Option<(Platform, &LocalSecretReference)>)> = Vec::new();
    let supported = [
        (Platform::Github, &cfg.github),
        (Platform::Gitlab, &cfg.gitlab),
        (Platform::Quay, &cfg.quay),
        (Platform::Dockerhub, &cfg.dockerhub),
    ];
    for (p, s) in supported {
        if let Some(s) = s {
            found.push((p.as_str(), Some((p, &s.secret_ref))));
        }
    }
    for (label, present) in [
        ("gitea", cfg.gitea.is_some()),
        ("bitbucket", cfg.bitbucket.is_some()),
        ("azure", cfg.azure.is_some()),
        ("harbor", cfg.harbor.is_some()),
        ("artifactory", cfg.artifactory.is_some()),
        ("generic", cfg.generic.is_some()),
    ] {
        if present {
            found.push((label, None));
        }
    }
    match found.as_slice() {
        [] => Err(ConfigError::NoPlatform { name }),
        [(_, Some(p))] => Ok(*p),
        [(platform, None)] => Err(ConfigError::Unsupported { name, platform }),
        _ => Err(ConfigError::ManyPlatforms { name }),
    }
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
    github_mac(key, message).finalize().into_bytes().into()
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an empty MAC on the
/// impossible error would only make verification fail.
fn github_mac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(message);
    mac
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
    github_mac(secret, body)
        .verify_slice(&presented)
        .map_err(|_| RequestError::Unauthorized)
}

/// Checks GitLab's `X-Gitlab-Token` against the shared token.
pub fn verify_gitlab(token: Option<&str>, secret: &[u8]) -> Result<(), RequestError> {
    match token {
        Some(t) if constant_time_eq(t.as_bytes(), secret) => Ok(()),
        _ => Err(RequestError::Unauthorized),
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

/// A GitHub event (`X-GitHub-Event`) with its verified body.
pub fn parse_github(event_type: &str, body: &[u8]) -> Result<Event, RequestError> {
    match event_type {
        "ping" => Ok(Event::Ping),
        "push" => {
            let v = parse_json(body)?;
            // Kargo uses clone_url only; the ssh URL is added so Warehouses subscribed over
            // ssh are found too.
            let urls = ["/repository/clone_url", "/repository/ssh_url"]
                .iter()
                .map(|p| str_at(&v, p))
                .filter(|u| !u.is_empty())
                .map(crate::git::normalize_url)
                .collect();
            Ok(refresh(urls, vec![str_at(&v, "/ref").to_string()]))
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
        other => Err(RequestError::UnsupportedEvent(other.to_string())),
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

/// A Quay repository-push notification.
pub fn parse_quay(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    let tags = v
        .get("updated_tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(refresh(image_repo_urls(str_at(&v, "/docker_url")), tags))
}

/// A Docker Hub push notification.
pub fn parse_dockerhub(body: &[u8]) -> Result<Event, RequestError> {
    let v = parse_json(body)?;
    Ok(refresh(
        image_repo_urls(str_at(&v, "/repository/repo_name")),
        vec![str_at(&v, "/push_data/tag").to_string()],
    ))
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
