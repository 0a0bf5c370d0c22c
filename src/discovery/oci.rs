//! A small client for the OCI distribution API (`/v2/...`) as image discovery needs it: the tag
//! list (following `Link` pagination), manifests by HEAD and GET, and config blobs, with
//! anonymous, basic and bearer-token auth, a per-registry rate limit and request counters.
//!
//! Why not `oci-client`: it builds its own HTTP client, so neither the per-registry rate limiter
//! nor the request counters could see its requests (token requests in particular); its
//! `list_tags` returns a single page and does not follow `Link` headers; and its errors do not
//! carry the HTTP status and `Retry-After` needed to tell `Throttled` from `Unreachable`. What is
//! needed here is a handful of GETs and HEADs, so it is written directly on `reqwest` (rustls with
//! aws-lc-rs, the same crypto provider as kube, so `ring` stays out of the build).
//!
//! The manifest model (`ManifestMeta`) is shared with the ECR path, which reads manifests
//! through `BatchGetImage`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::jiff::Timestamp;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::registry_limits::{HostBudget, RequestKind, lock};
use super::types::{ImageDiscoveryError, Platform, RegistryCredentials};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The manifest media types discovery understands (sent as `Accept`).
pub(crate) const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// `org.opencontainers.image.created`.
pub(crate) const OCI_CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// `org.label-schema.build-date` (Label Schema, the predecessor of the OCI annotations).
pub(crate) const LABEL_SCHEMA_BUILD_DATE: &str = "org.label-schema.build-date";

/// Largest manifest or config accepted (distribution itself caps manifests at 4 MiB).
const MAX_DOCUMENT_BYTES: usize = 4 << 20;
/// Largest tag-list page accepted.
const MAX_TAG_PAGE_BYTES: usize = 64 << 20;
/// Upper bound on `Link`-followed tag pages (guards against a registry that loops).
const MAX_TAG_PAGES: usize = 100_000;
/// Bearer tokens without `expires_in` live 60 s (distribution's token spec).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Renew tokens this long before they expire.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------ model

/// What an image config tells discovery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ConfigInfo {
    /// `org.opencontainers.image.created` or `org.label-schema.build-date` label, else `created`.
    pub created: Option<Timestamp>,
    pub platform: Option<Platform>,
}

/// A single-platform image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageMeta {
    pub annotations: BTreeMap<String, String>,
    pub config_digest: String,
    /// The config, once fetched; it is only fetched when needed (for the platform, or for the
    /// creation time when no manifest annotation gives it).
    pub config: Option<ConfigInfo>,
}

impl ImageMeta {
    /// Creation time from the manifest annotations alone (Kargo's first sources).
    pub fn annotated_created(&self) -> Option<Timestamp> {
        created_from(&self.annotations)
    }

    /// Kargo's `getCreationTime`: manifest annotations, then config labels, then config
    /// `created`.
    pub fn created(&self) -> Option<Timestamp> {
        self.annotated_created()
            .or_else(|| self.config.as_ref().and_then(|c| c.created))
    }
}

/// One entry of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub digest: String,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

impl IndexEntry {
    /// Entries without a real platform (`unknown/unknown`: build attestations) are not images.
    pub fn is_image(&self) -> bool {
        self.platform.as_ref().is_some_and(|p| {
            !p.os.is_empty() && !p.arch.is_empty() && p.os != "unknown" && p.arch != "unknown"
        })
    }
}

/// An index (OCI image index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexMeta {
    pub annotations: BTreeMap<String, String>,
    pub manifests: Vec<IndexEntry>,
}

impl IndexMeta {
    /// The first image entry whose platform matches.
    pub fn entry_for(&self, platform: &Platform) -> Option<&IndexEntry> {
        self.manifests
            .iter()
            .find(|e| e.is_image() && e.platform.as_ref() == Some(platform))
    }
}

/// Parsed metadata of a manifest, cached by digest (manifests are immutable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManifestMeta {
    Image(ImageMeta),
    Index(IndexMeta),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    digest: String,
    #[serde(default)]
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

impl RawPlatform {
    fn into_platform(self) -> Platform {
        Platform {
            os: self.os,
            arch: self.architecture,
            variant: self.variant.filter(|v| !v.is_empty()),
        }
    }
}

/// Parses a manifest body. `content_type` is the response's `Content-Type` (or ECR's
/// `imageManifestMediaType`), used when the body has no `mediaType`.
pub(crate) fn parse_manifest(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<ManifestMeta, String> {
    let raw: RawManifest =
        serde_json::from_slice(body).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    if raw.schema_version == Some(1) {
        return Err("Docker schema 1 manifests are not supported".into());
    }
    let media_type = raw
        .media_type
        .as_deref()
        .or(content_type)
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_owned())
        .unwrap_or_default();
    let is_index = media_type == OCI_INDEX
        || media_type == DOCKER_MANIFEST_LIST
        || (raw.manifests.is_some() && raw.config.is_none());
    let annotations = raw.annotations.unwrap_or_default();
    if is_index {
        let manifests = raw
            .manifests
            .unwrap_or_default()
            .into_iter()
            .map(|d| IndexEntry {
                digest: d.digest,
                platform: d.platform.map(RawPlatform::into_platform),
                annotations: d.annotations.unwrap_or_default(),
            })
            .collect();
        return Ok(ManifestMeta::Index(IndexMeta {
            annotations,
            manifests,
        }));
    }
    let Some(config) = raw.config else {
        return Err(format!(
            "manifest of media type {media_type:?} has neither a config nor manifests"
        ));
    };
    Ok(ManifestMeta::Image(ImageMeta {
        annotations,
        config_digest: config.digest,
        config: None,
    }))
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<RawConfigInner>,
}

#[derive(Deserialize)]
struct RawConfigInner {
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses an image config. Configs that are not image configs (Helm charts, other artifacts)
/// give no creation time and no platform rather than an error.
pub(crate) fn parse_config(body: &[u8]) -> ConfigInfo {
    let Ok(raw) = serde_json::from_slice::<RawConfig>(body) else {
        return ConfigInfo::default();
    };
    let labels = raw.config.and_then(|c| c.labels).unwrap_or_default();
    let created = created_from(&labels).or_else(|| raw.created.as_deref().and_then(parse_time));
    let platform = match (raw.os, raw.architecture) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => Some(Platform {
            os,
            arch,
            variant: raw.variant.filter(|v| !v.is_empty()),
        }),
        _ => None,
    };
    ConfigInfo { created, platform }
}

/// `org.opencontainers.image.created`, else `org.label-schema.build-date`, if it parses.
pub(crate) fn created_from(map: &BTreeMap<String, String>) -> Option<Timestamp> {
    [OCI_CREATED_ANNOTATION, LABEL_SCHEMA_BUILD_DATE]
        .iter()
        .find_map(|k| map.get(*k).and_then(|v| parse_time(v)))
}

/// RFC 3339 timestamps (what Go's `time.Time` JSON and the annotation spec use).
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.trim().parse::<Timestamp>().ok()
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

mod artifacts;
pub(crate) use artifacts::{BlobUpload, RawDocument};

// ----------------------------------------------------------------------------------------- client

/// How a registry wants to be authenticated, learnt from its `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Basic,
    Bearer,
}

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    expires: Instant,
}

/// Shared HTTP state: connection pools and learnt auth (schemes and bearer tokens). Tokens are
/// keyed by registry, repository and a fingerprint of the credentials, never by the secret.
#[derive(Debug)]
pub(crate) struct OciClient {
    http: reqwest::Client,
    /// For `insecureSkipTLSVerify`.
    http_insecure: reqwest::Client,
    schemes: Mutex<HashMap<(String, String), Scheme>>,
    tokens: Mutex<HashMap<(String, String, String), CachedToken>>,
}

impl OciClient {
    pub(crate) fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(timeout)
                .timeout(timeout.saturating_mul(4))
                .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
                .tls_danger_accept_invalid_certs(insecure)
                .build()
        };
        Ok(Self {
            http: build(false)?,
            http_insecure: build(true)?,
            schemes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        })
    }
}

/// Result of a manifest HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadOutcome {
    Digest(String),
    NotFound,
    /// The registry answered without a `Docker-Content-Digest`; a GET is needed.
    NoDigest,
}

/// A fetched manifest.
#[derive(Debug, Clone)]
pub(crate) struct FetchedManifest {
    pub digest: String,
    pub meta: ManifestMeta,
}

/// One repository on one registry, with the credentials for it.
pub(crate) struct OciRepo<'a> {
    client: &'a OciClient,
    budget: Arc<HostBudget>,
    base: Url,
    /// `host[:port]`, the key of rate limits, counters and learnt auth.
    host: String,
    /// Repository path inside the registry.
    path: String,
    /// The subscription's repoURL, for errors.
    repo_url: String,
    creds: Option<&'a RegistryCredentials>,
    creds_fingerprint: String,
    insecure: bool,
}

impl<'a> OciRepo<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: &'a OciClient,
        budget: Arc<HostBudget>,
        base: Url,
        host: String,
        path: String,
        repo_url: String,
        creds: Option<&'a RegistryCredentials>,
        insecure: bool,
    ) -> Self {
        let creds_fingerprint = creds.map(|c| c.fingerprint()).unwrap_or_default();
        Self {
            client,
            budget,
            base,
            host,
            path,
            repo_url,
            creds,
            creds_fingerprint,
            insecure,
        }
    }

    fn http(&self) -> &reqwest::Client {
        if self.insecure {
            &self.client.http_insecure
        } else {
            &self.client.http
        }
    }

    fn url(&self, suffix: &str) -> Result<Url, ImageDiscoveryError> {
        self.base
            .join(&format!("v2/{}/{suffix}", self.path))
            .map_err(|e| self.protocol(format!("cannot build URL: {e}")))
    }

    fn protocol(&self, reason: String) -> ImageDiscoveryError {
        ImageDiscoveryError::Protocol {
            repo: self.repo_url.clone(),
            reason,
        }
    }

    fn auth_error(&self, reason: String) -> ImageDiscoveryError {
        ImageDiscoveryError::Auth {
            repo: self.repo_url.clone(),
            reason,
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> ImageDiscoveryError {
        // reqwest's Display of a request error includes the URL, which carries no credentials.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        ImageDiscoveryError::Unreachable {
            repo: self.repo_url.clone(),
            reason,
        }
    }

    fn scheme_key(&self) -> (String, String) {
        (self.host.clone(), self.creds_fingerprint.clone())
    }

    fn token_key(&self) -> (String, String, String) {
        (
            self.host.clone(),
            self.path.clone(),
            self.creds_fingerprint.clone(),
        )
    }

    /// The `Authorization` header to send, from what the registry asked for before.
    fn authorization(&self) -> Option<HeaderValue> {
        let value = match self.creds {
            Some(RegistryCredentials::Bearer { token }) => format!("Bearer {token}"),
            creds => match lock(&self.client.schemes).get(&self.scheme_key()) {
                Some(Scheme::Basic) => match creds {
                    Some(RegistryCredentials::Basic { username, password }) => {
                        basic(username, password)
                    }
                    _ => return None,
                },
                Some(Scheme::Bearer) => {
                    let tokens = lock(&self.client.tokens);
                    let t = tokens.get(&self.token_key())?;
                    if t.expires <= Instant::now() {
                        return None;
                    }
                    format!("Bearer {}", t.token)
                }
                None => return None,
            },
        };
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Sends one request, answering at most one auth challenge (a 401 with `WWW-Authenticate`).
    async fn send(
        &self,
        kind: RequestKind,
        method: Method,
        url: Url,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, ImageDiscoveryError> {
        self.send_body(kind, method, url, accept, None).await
    }

    /// [`Self::send`] with a small body (`content type`, bytes), sent again after a challenge.
    async fn send_body(
        &self,
        kind: RequestKind,
        method: Method,
        url: Url,
        accept: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Result<reqwest::Response, ImageDiscoveryError> {
        let mut challenged = false;
        loop {
            let mut req = self.http().request(method.clone(), url.clone());
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some((content_type, bytes)) = body {
                req = req
                    .header(header::CONTENT_TYPE, content_type)
                    .body(bytes.to_vec());
            }
            let auth = self.authorization();
            let sent_auth = auth.is_some();
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            self.budget.spend(kind).await;
            let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || challenged {
                return Ok(resp);
            }
            challenged = true;
            let challenge = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_default();
            self.answer_challenge(&challenge, sent_auth).await?;
        }
    }

    async fn answer_challenge(
        &self,
        challenge: &str,
        sent_auth: bool,
    ) -> Result<(), ImageDiscoveryError> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                if sent_auth {
                    return Err(self.auth_error("credentials rejected (HTTP 401)".into()));
                }
                if !matches!(self.creds, Some(RegistryCredentials::Basic { .. })) {
                    return Err(self.auth_error(
                        "registry requires basic authentication and no credentials were found"
                            .into(),
                    ));
                }
                lock(&self.client.schemes).insert(self.scheme_key(), Scheme::Basic);
                Ok(())
            }
            "bearer" => {
                if matches!(self.creds, Some(RegistryCredentials::Bearer { .. })) {
                    return Err(self.auth_error("bearer token rejected (HTTP 401)".into()));
                }
                let realm = params
                    .get("realm")
                    .ok_or_else(|| self.auth_error("bearer challenge without realm".into()))?;
                let scope = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.path));
                let token = self
                    .fetch_token(realm, params.get("service").map(String::as_str), &scope)
                    .await?;
                lock(&self.client.tokens).insert(self.token_key(), token);
                lock(&self.client.schemes).insert(self.scheme_key(), Scheme::Bearer);
                Ok(())
            }
            _ => Err(self.auth_error(format!("HTTP 401 with unsupported challenge {:?}", scheme))),
        }
    }

    /// The distribution token protocol: `GET realm?service=..&scope=..`, with basic credentials
    /// when there are any (anonymous otherwise).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<CachedToken, ImageDiscoveryError> {
        let mut url = Url::parse(realm)
            .map_err(|e| self.auth_error(format!("invalid token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut req = self.http().get(url);
        if let Some(RegistryCredentials::Basic { username, password }) = self.creds {
            req = req.basic_auth(username, Some(password));
        }
        self.budget.spend(RequestKind::Token).await;
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(resp, "token request").await);
        }
        let body = read_limited(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| self.transport_error(&e))?;
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.auth_error(format!("invalid token response: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.auth_error("token response without a token".into()))?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok(CachedToken {
            token,
            expires: Instant::now() + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN),
        })
    }

    /// The error for a non-success response. `what` names the request.
    async fn status_error(&self, resp: reqwest::Response, what: &str) -> ImageDiscoveryError {
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = read_limited(resp, 4096).await.unwrap_or_default();
        let detail = registry_error_detail(&body);
        let reason = if detail.is_empty() {
            format!("{what}: HTTP {status}")
        } else {
            format!("{what}: HTTP {status}: {detail}")
        };
        let repo = self.repo_url.clone();
        match status.as_u16() {
            401 | 403 => ImageDiscoveryError::Auth { repo, reason },
            404 => ImageDiscoveryError::NotFound { repo },
            429 => ImageDiscoveryError::Throttled {
                repo,
                retry_after,
                reason,
            },
            500..=599 => ImageDiscoveryError::Unreachable { repo, reason },
            _ => ImageDiscoveryError::Protocol { repo, reason },
        }
    }

    /// Every tag of the repository, following `Link: <...>; rel="next"` pagination. The order is
    /// the registry's (distribution 2.8 returns them unsorted and in one page).
    pub(crate) async fn list_tags(&self) -> Result<Vec<String>, ImageDiscoveryError> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url("tags/list")?;
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(RequestKind::List, Method::GET, url.clone(), None)
                .await?;
            if !resp.status().is_success() {
                return Err(self.status_error(resp, "listing tags").await);
            }
            let next = next_link(resp.headers());
            let body = read_limited(resp, MAX_TAG_PAGE_BYTES)
                .await
                .map_err(|e| self.transport_error(&e))?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| self.protocol(format!("invalid tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(link) => {
                    url = url
                        .join(&link)
                        .map_err(|e| self.protocol(format!("invalid Link {link:?}: {e}")))?;
                }
                None => return Ok(tags),
            }
        }
        Err(self.protocol(format!("more than {MAX_TAG_PAGES} tag pages")))
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`.
    pub(crate) async fn head_manifest(
        &self,
        reference: &str,
    ) -> Result<HeadOutcome, ImageDiscoveryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let resp = self
            .send(RequestKind::Head, Method::HEAD, url, Some(&accept))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(|d| HeadOutcome::Digest(d.trim().to_owned()))
                .unwrap_or(HeadOutcome::NoDigest)),
            StatusCode::NOT_FOUND => Ok(HeadOutcome::NotFound),
            _ => Err(self.status_error(resp, "manifest HEAD").await),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`; `None` when the registry answers 404. Fetched by
    /// digest, the body is checked against the digest.
    pub(crate) async fn get_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<FetchedManifest>, ImageDiscoveryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let resp = self
            .send(RequestKind::Manifest, Method::GET, url, Some(&accept))
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error(resp, "manifest GET").await),
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(|d| d.trim().to_owned());
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| self.transport_error(&e))?;
        let computed = sha256_digest(&body);
        let digest = if reference.contains(':') {
            if reference.starts_with("sha256:") && computed != reference {
                return Err(self.protocol(format!(
                    "manifest {reference} has content digest {computed}"
                )));
            }
            reference.to_owned()
        } else {
            header_digest.unwrap_or(computed)
        };
        let meta = parse_manifest(&body, content_type.as_deref())
            .map_err(|e| self.protocol(format!("manifest {reference}: {e}")))?;
        Ok(Some(FetchedManifest { digest, meta }))
    }

    /// `GET /v2/<repo>/blobs/<digest>` of an image config.
    pub(crate) async fn get_config(&self, digest: &str) -> Result<ConfigInfo, ImageDiscoveryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self.send(RequestKind::Blob, Method::GET, url, None).await?;
        if !resp.status().is_success() {
            let what = format!("config blob {digest}");
            return Err(match self.status_error(resp, &what).await {
                // A missing blob is not a missing repository.
                ImageDiscoveryError::NotFound { repo } => ImageDiscoveryError::Protocol {
                    repo,
                    reason: format!("{what} not found"),
                },
                e => e,
            });
        }
        let body = read_limited(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok(parse_config(&body))
    }
}

fn basic(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Reads at most `limit` bytes of the body (the rest is dropped).
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_to_timestamp(v)?;
    let now = Timestamp::now();
    let secs = when.as_second().saturating_sub(now.as_second());
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP requires senders to use.
fn httpdate_to_timestamp(v: &str) -> Option<Timestamp> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let day: u32 = day.parse().ok()?;
    let year: i32 = year.parse().ok()?;
    format!("{year:04}-{month:02}-{day:02}T{time}Z")
        .parse()
        .ok()
}

/// The `code: message` pairs of a distribution error body, if it is one.
fn registry_error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| {
            e.errors
                .iter()
                .map(|e| format!("{} {}", e.code, e.message).trim().to_owned())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// `Bearer realm="https://auth",service="reg",scope="repository:a:pull"` → ("Bearer", params).
pub(crate) fn parse_challenge(v: &str) -> (String, HashMap<String, String>) {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.insert(key, value);
    }
    (scheme.to_owned(), params)
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
            });
            let target = target.trim();
            (is_next && target.starts_with('<') && target.ends_with('>'))
                .then(|| target[1..target.len() - 1].to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="haul-test-registry""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "haul-test-registry");
        let (s, p) = parse_challenge("Bearer realm=https://x/t, service=x");
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://x/t");
        assert_eq!(p["service"], "x");
        assert!(parse_challenge("").1.is_empty());
    }

    #[test]
    fn link_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(next_link(&h), None);
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?last=b&n=2"));
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/next"));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("17"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(17)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            httpdate_to_timestamp("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(ts("1994-11-06T08:49:37Z"))
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn manifest_and_config_parsing() {
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":1},
            "layers":[],"annotations":{"a":"1"}}"#;
        let ManifestMeta::Image(m) = parse_manifest(image, None).unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("not an image")
        };
        assert_eq!(m.config_digest, "sha256:c");
        assert_eq!(m.annotations.get("a").map(String::as_str), Some("1"));
        assert_eq!(m.created(), None);

        let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:amd","size":1,"platform":{"architecture":"amd64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:arm","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"},"annotations":{"x":"y"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:att","size":1,"platform":{"architecture":"unknown","os":"unknown"}}]}"#;
        let ManifestMeta::Index(ix) =
            parse_manifest(index, Some(OCI_INDEX)).unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("not an index")
        };
        assert_eq!(ix.manifests.len(), 3);
        assert!(!ix.manifests[2].is_image());
        let arm: Platform = "linux/arm64/v8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ix.entry_for(&arm).map(|e| e.digest.as_str()),
            Some("sha256:arm")
        );
        let arm_no_variant: Platform = "linux/arm64".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(ix.entry_for(&arm_no_variant).is_none());

        assert!(parse_manifest(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse_manifest(b"nope", None).is_err());

        let cfg = parse_config(
            br#"{"created":"2024-01-02T03:04:05.123Z","os":"linux","architecture":"arm","variant":"v7","config":{}}"#,
        );
        assert_eq!(cfg.created, Some(ts("2024-01-02T03:04:05.123Z")));
        assert_eq!(
            cfg.platform.map(|p| p.to_string()).as_deref(),
            Some("linux/arm/v7")
        );
        // A build-date label wins over `created` (Kargo: labels first, then created).
        let cfg = parse_config(
            br#"{"created":"1970-01-01T00:00:00Z","os":"linux","architecture":"amd64","config":{"Labels":{"org.label-schema.build-date":"2023-05-06T07:08:09Z"}}}"#,
        );
        assert_eq!(cfg.created, Some(ts("2023-05-06T07:08:09Z")));
        assert_eq!(parse_config(b"\x00binary"), ConfigInfo::default());

        // The manifest annotation wins over the config.
        let m = ImageMeta {
            annotations: [(
                OCI_CREATED_ANNOTATION.to_owned(),
                "2025-01-01T00:00:00Z".to_owned(),
            )]
            .into(),
            config_digest: "sha256:c".into(),
            config: Some(ConfigInfo {
                created: Some(ts("2026-01-01T00:00:00Z")),
                platform: None,
            }),
        };
        assert_eq!(m.created(), Some(ts("2025-01-01T00:00:00Z")));
    }

    #[test]
    fn digests() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(
            registry_error_detail(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
            )
            .contains("UNAUTHORIZED authentication required")
        );
        assert_eq!(registry_error_detail(b"<html>"), "");
    }
}
