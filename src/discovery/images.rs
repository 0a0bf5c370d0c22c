//! Image discovery for Warehouse image subscriptions, as Kargo does it (`pkg/image/*_selector.go`):
//! list tags, filter and order them with [`super::tag_selection`], fetch metadata for as few
//! tags as the strategy needs, and return up to `discoveryLimit` references, newest first.
//!
//! Two back ends:
//! * **ECR** (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>`, with no credentials or AWS keys):
//!   `DescribeImages` gives tags, digest and push time in one paginated call, so no strategy
//!   fetches a manifest, except that a `platform` filter reads the candidates' manifests with
//!   `BatchGetImage` (see [`super::ecr`]).
//! * **Any OCI distribution registry** (see [`super::oci`]).
//!
//! Registry load is bounded by a per-registry rate limiter and three caches:
//! * manifest metadata by digest (an LRU, [`DiscovererConfig::metadata_cache_entries`]); digests
//!   are immutable, so this is always valid;
//! * a tag → digest memo per repository. A memo entry younger than
//!   [`DiscovererConfig::tag_memo_ttl`] (or any entry when the subscription sets `cacheByTag`) is
//!   trusted; an older one is revalidated with a manifest `HEAD` (a request, but no manifest
//!   transfer and no config blob);
//! * the previous selection per subscription: when the tag list is identical to the previous
//!   run's and that selection is younger than the TTL (or `cacheByTag` is set), SemVer, Lexical
//!   and NewestBuild return it again after the single tag-list request.
//!
//! So tag-based strategies treat a tag as immutable for at most the TTL (default one hour);
//! tracking a mutable tag is what the Digest strategy is for, and it always costs one `HEAD`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use reqwest::Url;
use sha2::{Digest as _, Sha256};

use crate::api::warehouse::{
    DEFAULT_DISCOVERY_LIMIT, DiscoveredImageReference, ImageDiscoveryResult,
    ImageSelectionStrategy, ImageSubscription,
};

use super::ecr::{EcrClients, EcrRepository};
use super::oci::{
    FetchedManifest, HeadOutcome, ImageMeta, IndexMeta, ManifestMeta, OciClient, OciRepo,
};
use super::registry_limits::{
    BoundedCache, DEFAULT_METADATA_CACHE_ENTRIES, RateLimits, RegistryBudgets, RegistryStats, lock,
};
use super::semver_constraint::Constraint;
use super::tag_selection::{
    Strategy, TagFilter, lexical_candidates, newest_build_candidates, semver_candidates,
    sort_newest_build_by,
};

/// Largest `discoveryLimit` (the CRD's maximum).
pub const MAX_DISCOVERY_LIMIT: usize = 100;
/// Default time a tag → digest mapping (and a selection) is trusted without a `HEAD`.
pub const DEFAULT_TAG_MEMO_TTL: Duration = Duration::from_secs(3600);
/// Default concurrency of metadata fetches within one discovery.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 8;
/// Repositories whose tag memo is kept.
const TAG_MEMO_REPOSITORIES: usize = 4096;
/// Subscriptions whose previous selection is kept.
const SELECTION_MEMO_ENTRIES: usize = 16384;
/// Docker Hub's registry API host (what `docker.io` resolves to).
const DOCKER_HUB_REGISTRY: &str = "index.docker.io";

// ------------------------------------------------------------------------------------ credentials

/// Credentials for an image registry, from a Secret labelled `kargo.akuity.io/cred-type: image`
/// (the caller finds the Secret; see [`RegistryCredentials::from_secret_data`]). `Debug` never
/// shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryCredentials {
    /// Basic credentials; also used for the registry's bearer-token endpoint when it has one.
    Basic { username: String, password: String },
    /// A ready bearer token sent as is (`Authorization: Bearer ...`).
    Bearer { token: String },
    /// AWS access keys for ECR (Kargo's `awsAccessKeyID` / `awsSecretAccessKey` / `awsRegion`).
    /// The region of the repository URL is used for the API calls; `region` is kept for
    /// repositories whose URL has none.
    AwsStatic {
        access_key_id: String,
        secret_access_key: String,
        region: Option<String>,
    },
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
            Self::AwsStatic {
                access_key_id,
                region,
                ..
            } => f
                .debug_struct("AwsStatic")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .field("region", region)
                .finish(),
        }
    }
}

/// Secret data that cannot be turned into credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// One key of a pair is present without the other.
    #[error("credentials secret has {present} but no {missing}")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    /// A value is not UTF-8.
    #[error("credentials secret key {0} is not valid UTF-8")]
    NotUtf8(&'static str),
}

impl RegistryCredentials {
    /// Kargo's image credential keys: `awsAccessKeyID` + `awsSecretAccessKey` (+ optional
    /// `awsRegion`) give [`AwsStatic`](Self::AwsStatic), else `username` + `password` give
    /// [`Basic`](Self::Basic). `Ok(None)` when the data has neither (anonymous access, as Kargo
    /// does with an empty Secret); empty values count as absent.
    pub fn from_secret_data(
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Option<Self>, CredentialsError> {
        let get = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match data.get(key) {
                None => Ok(None),
                Some(v) => {
                    let s = std::str::from_utf8(v).map_err(|_| CredentialsError::NotUtf8(key))?;
                    let s = s.trim_end_matches(['\r', '\n']);
                    Ok((!s.is_empty()).then(|| s.to_owned()))
                }
            }
        };
        let pair = |a: &'static str, b: &'static str| {
            Ok::<_, CredentialsError>(match (get(a)?, get(b)?) {
                (Some(x), Some(y)) => Some((x, y)),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(CredentialsError::Incomplete {
                        present: a,
                        missing: b,
                    });
                }
                (None, Some(_)) => {
                    return Err(CredentialsError::Incomplete {
                        present: b,
                        missing: a,
                    });
                }
            })
        };
        if let Some((access_key_id, secret_access_key)) =
            pair("awsAccessKeyID", "awsSecretAccessKey")?
        {
            return Ok(Some(Self::AwsStatic {
                access_key_id,
                secret_access_key,
                region: get("awsRegion")?,
            }));
        }
        Ok(pair("username", "password")?
            .map(|(username, password)| Self::Basic { username, password }))
    }

    /// A stable, non-reversible identifier of these credentials for cache keys.
    pub(crate) fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        match self {
            Self::Basic { username, password } => {
                h.update(b"basic\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.as_bytes());
            }
            Self::Bearer { token } => {
                h.update(b"bearer\0");
                h.update(token.as_bytes());
            }
            Self::AwsStatic {
                access_key_id,
                secret_access_key,
                ..
            } => {
                h.update(b"aws\0");
                h.update(access_key_id.as_bytes());
                h.update(b"\0");
                h.update(secret_access_key.as_bytes());
            }
        }
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

// ----------------------------------------------------------------------------------------- errors

/// Why discovery failed. Every variant names the subscription's repository URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageDiscoveryError {
    /// The subscription itself is invalid (bad regex, constraint, platform or URL).
    #[error("invalid image subscription for {repo}: {reason}")]
    InvalidSubscription { repo: String, reason: String },
    /// The repository does not exist (or is hidden from these credentials).
    #[error("image repository {repo} not found")]
    NotFound { repo: String },
    /// Missing, rejected or expired credentials, or access denied.
    #[error("authentication to image repository {repo} failed: {reason}")]
    Auth { repo: String, reason: String },
    /// The registry asked us to slow down (HTTP 429, ECR `ThrottlingException`).
    #[error("image registry throttled requests for {repo}{}: {reason}", retry_hint(.retry_after))]
    Throttled {
        repo: String,
        retry_after: Option<Duration>,
        reason: String,
    },
    /// Connection failure, timeout or a 5xx answer.
    #[error("image registry for {repo} unreachable: {reason}")]
    Unreachable { repo: String, reason: String },
    /// The registry answered something discovery cannot use.
    #[error("unexpected answer from the image registry for {repo}: {reason}")]
    Protocol { repo: String, reason: String },
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {}s)", d.as_secs()))
        .unwrap_or_default()
}

impl ImageDiscoveryError {
    /// The repository URL the error is about.
    pub fn repo(&self) -> &str {
        match self {
            Self::InvalidSubscription { repo, .. }
            | Self::NotFound { repo }
            | Self::Auth { repo, .. }
            | Self::Throttled { repo, .. }
            | Self::Unreachable { repo, .. }
            | Self::Protocol { repo, .. } => repo,
        }
    }

    /// The registry's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying later may succeed without a change to the subscription or credentials.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unreachable { .. })
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the registry HTTP client: {0}")]
pub struct DiscovererInitError(#[from] reqwest::Error);

// --------------------------------------------------------------------------------------- platform

/// `os/arch[/variant]`, compared exactly as Kargo does (`linux/arm64` does not match an entry
/// whose variant is `v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

/// A platform string without `os/arch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?} (expected os/arch[/variant])")]
pub struct InvalidPlatform(pub String);

impl FromStr for Platform {
    type Err = InvalidPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant) if !os.is_empty() && !arch.is_empty() => Ok(Self {
                os: os.to_owned(),
                arch: arch.to_owned(),
                variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
            }),
            _ => Err(InvalidPlatform(s.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------ repo parsing

/// A parsed `repoURL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepository {
    /// Registry host as `host[:port]` (lowercase); Docker Hub is `index.docker.io`.
    pub registry: String,
    /// Repository path in the registry (`library/nginx`).
    pub path: String,
    /// Set for ECR repositories.
    pub ecr: Option<EcrRepository>,
}

impl ImageRepository {
    /// Parses a repoURL the way Docker references are parsed: the first component is the
    /// registry when it contains `.` or `:` or is `localhost`; otherwise the image is on
    /// Docker Hub (single names get `library/`). A tag or digest is rejected.
    pub fn parse(repo_url: &str) -> Result<Self, String> {
        let s = repo_url.trim();
        let s = s
            .strip_prefix("oci://")
            .or_else(|| s.strip_prefix("docker://"))
            .unwrap_or(s)
            .trim_end_matches('/');
        if s.is_empty() {
            return Err("empty repository URL".into());
        }
        if s.contains('@') {
            return Err("repository URL must not contain a digest".into());
        }
        let (first, rest) = match s.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, s),
        };
        if rest
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
        {
            return Err("repository URL must not contain a tag".into());
        }
        if rest.is_empty() || rest.split('/').any(str::is_empty) {
            return Err("invalid repository path".into());
        }
        let host = first.map(str::to_ascii_lowercase);
        let (registry, path) = match host.as_deref() {
            None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io") => {
                let path = if rest.contains('/') {
                    rest.to_owned()
                } else {
                    format!("library/{rest}")
                };
                (DOCKER_HUB_REGISTRY.to_owned(), path)
            }
            Some(h) => (h.to_owned(), rest.to_owned()),
        };
        let ecr = EcrRepository::from_host(&registry);
        Ok(Self {
            registry,
            path,
            ecr,
        })
    }

    /// The host without the port.
    fn hostname(&self) -> &str {
        if let Some(v6) = self.registry.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        self.registry.split(':').next().unwrap_or(&self.registry)
    }

    /// Loopback hosts (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        let h = self.hostname();
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

// ----------------------------------------------------------------------------------------- config

/// Settings of an [`ImageDiscoverer`].
#[derive(Debug, Clone)]
pub struct DiscovererConfig {
    /// Per-registry client-side rate limits (default 20 req/s, burst 10).
    pub rate_limits: RateLimits,
    /// Capacity of the manifest metadata cache (default 100,000).
    pub metadata_cache_entries: usize,
    /// Concurrent metadata fetches within one discovery (default 8).
    pub fetch_concurrency: usize,
    /// How long a tag → digest mapping and a selection are trusted without revalidation
    /// (default 1 h; zero revalidates with a `HEAD` on every run). `cacheByTag: true` trusts them
    /// for good.
    pub tag_memo_ttl: Duration,
    /// Registries spoken to over plain HTTP besides loopback hosts (`host` or `host:port`).
    pub plain_http_hosts: Vec<String>,
    /// Whether credentials may be sent over plain HTTP to hosts other than loopback (Kargo's
    /// `ALLOW_CREDENTIALS_OVER_HTTP`).
    pub allow_credentials_over_http: bool,
    /// Timeout of one registry request (connect 10 s; this bounds the wait for each read).
    pub request_timeout: Duration,
    /// Base URL of ECR's registry API (`https://<host>` when unset). Only used to read config
    /// blobs for a `platform` filter on single-platform ECR images; tests point it elsewhere.
    pub ecr_registry_endpoint: Option<String>,
}

impl Default for DiscovererConfig {
    fn default() -> Self {
        Self {
            rate_limits: RateLimits::default(),
            metadata_cache_entries: DEFAULT_METADATA_CACHE_ENTRIES,
            fetch_concurrency: DEFAULT_FETCH_CONCURRENCY,
            tag_memo_ttl: DEFAULT_TAG_MEMO_TTL,
            plain_http_hosts: Vec::new(),
            allow_credentials_over_http: false,
            request_timeout: Duration::from_secs(30),
            ecr_registry_endpoint: None,
        }
    }
}

impl DiscovererConfig {
    /// Defaults overridden by the environment: `IMAGE_REGISTRY_RATE_LIMIT` (req/s, 0 =
    /// unlimited), `MAX_IMAGE_CACHE_ENTRIES`, `ALLOW_CREDENTIALS_OVER_HTTP` (Kargo's names),
    /// `HAUL_IMAGE_FETCH_CONCURRENCY`, `HAUL_IMAGE_TAG_MEMO_TTL_SECONDS` and
    /// `HAUL_PLAIN_HTTP_REGISTRIES` (comma-separated hosts). Unparsable values are ignored with a
    /// warning.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) with another source of variables.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        fn parsed<T: FromStr>(get: &impl Fn(&str) -> Option<String>, key: &str) -> Option<T> {
            let v = get(key)?;
            let out = v.trim().parse().ok();
            if out.is_none() {
                tracing::warn!(variable = key, value = %v, "ignoring unparsable setting");
            }
            out
        }
        let mut c = Self::default();
        if let Some(r) = parsed::<f64>(&get, "IMAGE_REGISTRY_RATE_LIMIT") {
            c.rate_limits.per_second = r;
        }
        if let Some(n) = parsed(&get, "MAX_IMAGE_CACHE_ENTRIES") {
            c.metadata_cache_entries = n;
        }
        if let Some(b) = parsed(&get, "ALLOW_CREDENTIALS_OVER_HTTP") {
            c.allow_credentials_over_http = b;
        }
        if let Some(n) = parsed::<usize>(&get, "HAUL_IMAGE_FETCH_CONCURRENCY") {
            c.fetch_concurrency = n.max(1);
        }
        if let Some(s) = parsed(&get, "HAUL_IMAGE_TAG_MEMO_TTL_SECONDS") {
            c.tag_memo_ttl = Duration::from_secs(s);
        }
        if let Some(hosts) = get("HAUL_PLAIN_HTTP_REGISTRIES") {
            c.plain_http_hosts = hosts
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
        }
        c
    }
}

// ------------------------------------------------------------------------------------- discoverer

/// The plan derived from a validated subscription.
#[derive(Debug)]
pub(crate) struct Plan {
    pub strategy: Strategy,
    pub filter: TagFilter,
    pub constraint: Option<Constraint>,
    /// Digest strategy: the tag to track.
    pub digest_tag: Option<String>,
    pub strict: bool,
    pub limit: usize,
    pub platform: Option<Platform>,
    pub cache_by_tag: bool,
    pub insecure: bool,
    /// Identifies the subscription's selection inputs (for the selection memo).
    pub fingerprint: [u8; 32],
}

impl Plan {
    fn from_subscription(sub: &ImageSubscription) -> Result<Self, String> {
        if sub.allow_tags.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err("allowTags is no longer supported; use allowTagsRegexes".into());
        }
        if !sub.ignore_tags.is_empty() {
            return Err("ignoreTags is no longer supported; use ignoreTagsRegexes".into());
        }
        let strategy = match sub.image_selection_strategy {
            ImageSelectionStrategy::SemVer => Strategy::SemVer,
            ImageSelectionStrategy::Lexical => Strategy::Lexical,
            ImageSelectionStrategy::NewestBuild => Strategy::NewestBuild,
            ImageSelectionStrategy::Digest => Strategy::Digest,
        };
        let allow: Vec<&String> = sub
            .allow_tags_regexes
            .iter()
            .chain(&sub.allow_tags_regex)
            .collect();
        let ignore: Vec<&String> = sub
            .ignore_tags_regexes
            .iter()
            .chain(&sub.ignore_tags_regex)
            .collect();
        let filter = TagFilter::new(&allow, &ignore).map_err(|e| e.to_string())?;
        let raw_constraint = sub.effective_constraint().filter(|c| !c.trim().is_empty());
        let (constraint, digest_tag) = match strategy {
            Strategy::SemVer => (
                raw_constraint
                    .map(Constraint::parse)
                    .transpose()
                    .map_err(|e| e.to_string())?,
                None,
            ),
            Strategy::Digest => {
                let tag = raw_constraint
                    .ok_or("the Digest strategy needs the tag to track in constraint")?;
                (None, Some(tag.trim().to_owned()))
            }
            Strategy::Lexical | Strategy::NewestBuild => (None, None),
        };
        let platform = sub
            .platform
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(Platform::from_str)
            .transpose()
            .map_err(|e| e.to_string())?;
        let limit = match usize::try_from(sub.discovery_limit) {
            Ok(0) | Err(_) => DEFAULT_DISCOVERY_LIMIT as usize,
            Ok(n) => n.min(MAX_DISCOVERY_LIMIT),
        };
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, s: &str| {
            h.update(s.len().to_le_bytes());
            h.update(s.as_bytes());
        };
        field(&mut h, &sub.repo_url);
        field(&mut h, strategy.as_str());
        field(&mut h, raw_constraint.unwrap_or(""));
        field(
            &mut h,
            if sub.strict_semvers {
                "strict"
            } else {
                "loose"
            },
        );
        for a in &allow {
            field(&mut h, "allow");
            field(&mut h, a);
        }
        for i in &ignore {
            field(&mut h, "ignore");
            field(&mut h, i);
        }
        field(
            &mut h,
            &platform.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        );
        field(&mut h, &limit.to_string());
        Ok(Self {
            strategy,
            filter,
            constraint,
            digest_tag,
            strict: sub.strict_semvers,
            limit,
            platform,
            cache_by_tag: sub.cache_by_tag.unwrap_or(false),
            insecure: sub.insecure_skip_tls_verify.unwrap_or(false),
            fingerprint: h.finalize().into(),
        })
    }

    /// The tag-based candidates, best first (NewestBuild: unordered).
    pub(crate) fn candidates(&self, tags: Vec<String>) -> Vec<String> {
        match self.strategy {
            Strategy::SemVer => {
                semver_candidates(tags, &self.filter, self.constraint.as_ref(), self.strict)
            }
            Strategy::Lexical => lexical_candidates(tags, &self.filter),
            Strategy::NewestBuild => newest_build_candidates(tags, &self.filter),
            Strategy::Digest => Vec::new(),
        }
    }
}

/// A tag's memoised digest and when it was last confirmed by the registry.
#[derive(Debug, Clone)]
struct TagMemoEntry {
    digest: String,
    confirmed: Instant,
}

type TagMemo = Mutex<HashMap<String, TagMemoEntry>>;

/// The previous selection of a subscription.
#[derive(Debug)]
struct SelectionMemo {
    tags: [u8; 32],
    refs: Vec<DiscoveredImageReference>,
    at: Instant,
}

pub(crate) struct Inner {
    pub(crate) config: DiscovererConfig,
    pub(crate) budgets: RegistryBudgets,
    pub(crate) metadata: BoundedCache<String, ManifestMeta>,
    tag_memos: BoundedCache<String, TagMemo>,
    selections: BoundedCache<[u8; 32], SelectionMemo>,
    pub(crate) oci: OciClient,
    pub(crate) ecr: EcrClients,
}

/// Discovers images for image subscriptions. Cheap to clone; clones share rate limiters,
/// caches, HTTP connection pools, ECR clients and counters, so one per process is the intent.
#[derive(Clone)]
pub struct ImageDiscoverer {
    inner: Arc<Inner>,
}

impl fmt::Debug for ImageDiscoverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageDiscoverer")
            .field("config", &self.inner.config)
            .field("metadata_cache_len", &self.inner.metadata.len())
            .finish_non_exhaustive()
    }
}

impl ImageDiscoverer {
    pub fn new(config: DiscovererConfig) -> Result<Self, DiscovererInitError> {
        let oci = OciClient::new(config.request_timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                budgets: RegistryBudgets::new(config.rate_limits.clone()),
                metadata: BoundedCache::new(config.metadata_cache_entries),
                tag_memos: BoundedCache::new(TAG_MEMO_REPOSITORIES),
                selections: BoundedCache::new(SELECTION_MEMO_ENTRIES),
                oci,
                ecr: EcrClients::default(),
                config,
            }),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &DiscovererConfig {
        &self.inner.config
    }

    /// Requests sent so far, per registry and kind, and cache counters.
    pub fn stats(&self) -> RegistryStats {
        self.inner.budgets.stats()
    }

    /// Discovers up to `discoveryLimit` images for `sub`, newest first (Kargo's order for each
    /// strategy). `result.name` is left empty for the caller to fill in.
    #[tracing::instrument(
        name = "discover_images",
        skip_all,
        fields(repo = %sub.repo_url, strategy = ?sub.image_selection_strategy)
    )]
    pub async fn discover(
        &self,
        sub: &ImageSubscription,
        creds: Option<&RegistryCredentials>,
    ) -> Result<ImageDiscoveryResult, ImageDiscoveryError> {
        let invalid = |reason: String| ImageDiscoveryError::InvalidSubscription {
            repo: sub.repo_url.clone(),
            reason,
        };
        let plan = Plan::from_subscription(sub).map_err(invalid)?;
        let repo = ImageRepository::parse(&sub.repo_url).map_err(invalid)?;
        let started = Instant::now();
        let before = self.stats().registry(&repo.registry);
        let references = match (&repo.ecr, creds) {
            (Some(ecr), None | Some(RegistryCredentials::AwsStatic { .. })) => {
                super::ecr::discover(&self.inner, &sub.repo_url, &repo, ecr, &plan, creds).await?
            }
            _ => {
                self.discover_oci(&sub.repo_url, &repo, &plan, creds)
                    .await?
            }
        };
        let spent = self.stats().registry(&repo.registry).since(&before);
        tracing::debug!(
            found = references.len(),
            requests = %spent,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "image discovery done"
        );
        Ok(ImageDiscoveryResult {
            name: None,
            repo_url: sub.repo_url.clone(),
            platform: sub.platform.clone().filter(|p| !p.is_empty()),
            references,
        })
    }

    /// Which AWS credentials an ECR repository would be accessed with, resolving them now
    /// (through STS for IRSA). For diagnostics and tests; no secret is returned.
    pub async fn ecr_identity(
        &self,
        repo_url: &str,
        creds: Option<&RegistryCredentials>,
    ) -> Result<super::ecr::EcrIdentity, ImageDiscoveryError> {
        let repo = ImageRepository::parse(repo_url).map_err(|reason| {
            ImageDiscoveryError::InvalidSubscription {
                repo: repo_url.to_owned(),
                reason,
            }
        })?;
        let ecr = repo
            .ecr
            .as_ref()
            .ok_or_else(|| ImageDiscoveryError::InvalidSubscription {
                repo: repo_url.to_owned(),
                reason: "not an ECR repository".into(),
            })?;
        super::ecr::identity(&self.inner, repo_url, ecr, creds).await
    }

    fn base_url(&self, repo: &ImageRepository) -> Result<(Url, bool), String> {
        let plain = repo.is_loopback()
            || self
                .inner
                .config
                .plain_http_hosts
                .iter()
                .any(|h| *h == repo.registry || h == repo.hostname());
        let scheme = if plain { "http" } else { "https" };
        Url::parse(&format!("{scheme}://{}/", repo.registry))
            .map(|u| (u, plain))
            .map_err(|e| format!("invalid registry host {:?}: {e}", repo.registry))
    }

    /// Every tag of an OCI repository, in the registry's order, through the same client, rate
    /// limits and auth (anonymous, basic, bearer token; ECR through its API with the AWS
    /// credentials chain) as image discovery. Chart discovery uses it: in an OCI registry, a
    /// chart's versions are its tags.
    pub async fn list_tags(
        &self,
        repo_url: &str,
        creds: Option<&RegistryCredentials>,
        insecure: bool,
    ) -> Result<Vec<String>, ImageDiscoveryError> {
        let repo = ImageRepository::parse(repo_url).map_err(|reason| {
            ImageDiscoveryError::InvalidSubscription {
                repo: repo_url.to_owned(),
                reason,
            }
        })?;
        // ECR through its API unless the Secret gives registry credentials, as for images.
        if let Some(ecr) = &repo.ecr
            && matches!(creds, None | Some(RegistryCredentials::AwsStatic { .. }))
        {
            return super::ecr::list_tags(&self.inner, repo_url, &repo, ecr, creds).await;
        }
        let session = self.session(repo_url, &repo, creds, insecure)?;
        session.list_tags().await
    }

    /// A session with one repository; refuses to send credentials over plain HTTP to a host
    /// that is not loopback unless allowed.
    fn session<'a>(
        &'a self,
        repo_url: &str,
        repo: &ImageRepository,
        creds: Option<&'a RegistryCredentials>,
        insecure: bool,
    ) -> Result<OciRepo<'a>, ImageDiscoveryError> {
        let (base, plain) =
            self.base_url(repo)
                .map_err(|reason| ImageDiscoveryError::InvalidSubscription {
                    repo: repo_url.to_owned(),
                    reason,
                })?;
        if plain
            && creds.is_some()
            && !repo.is_loopback()
            && !self.inner.config.allow_credentials_over_http
        {
            return Err(ImageDiscoveryError::Auth {
                repo: repo_url.to_owned(),
                reason:
                    "refusing to send credentials over plain HTTP (set ALLOW_CREDENTIALS_OVER_HTTP)"
                        .into(),
            });
        }
        Ok(OciRepo::new(
            &self.inner.oci,
            self.inner.budgets.host(&repo.registry),
            base,
            repo.registry.clone(),
            repo.path.clone(),
            repo_url.to_owned(),
            creds,
            insecure,
        ))
    }

    async fn discover_oci(
        &self,
        repo_url: &str,
        repo: &ImageRepository,
        plan: &Plan,
        creds: Option<&RegistryCredentials>,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let session = self.session(repo_url, repo, creds, plan.insecure)?;
        let d = OciDiscovery {
            inner: &self.inner,
            s: &session,
            plan,
            memo: self.tag_memo(&repo.registry, &repo.path),
        };
        if plan.strategy == Strategy::Digest {
            return d.digest_strategy().await;
        }
        let tags = session.list_tags().await?;
        let tags_fp = tag_list_fingerprint(&tags);
        if let Some(prev) = self.inner.selections.get(&plan.fingerprint)
            && prev.tags == tags_fp
            && (plan.cache_by_tag || prev.at.elapsed() < self.inner.config.tag_memo_ttl)
        {
            RegistryBudgets::count(&self.inner.budgets.selections_reused);
            tracing::debug!(
                tags = tags.len(),
                "tag list unchanged; reusing the previous selection"
            );
            return Ok(prev.refs.clone());
        }
        let candidates = plan.candidates(tags);
        let refs = match plan.strategy {
            Strategy::NewestBuild => d.newest_build(candidates).await?,
            _ => d.first_matching(candidates).await?,
        };
        self.inner.selections.insert(
            plan.fingerprint,
            Arc::new(SelectionMemo {
                tags: tags_fp,
                refs: refs.clone(),
                at: Instant::now(),
            }),
        );
        Ok(refs)
    }

    fn tag_memo(&self, registry: &str, path: &str) -> Arc<TagMemo> {
        let key = format!("{registry}/{path}");
        if let Some(m) = self.inner.tag_memos.get(&key) {
            return m;
        }
        let m = Arc::new(Mutex::new(HashMap::new()));
        self.inner.tag_memos.insert(key, Arc::clone(&m));
        m
    }
}

/// Order-independent fingerprint of a tag list.
fn tag_list_fingerprint(tags: &[String]) -> [u8; 32] {
    let mut sorted: Vec<&String> = tags.iter().collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for t in sorted {
        h.update(t.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

pub(crate) fn to_time(t: Timestamp) -> Time {
    Time(t)
}

/// Merges annotation maps, later ones winning.
pub(crate) fn merge_annotations<'a>(
    maps: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in maps {
        out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

// ----------------------------------------------------------------------------------- OCI strategy

/// One OCI discovery run.
struct OciDiscovery<'a> {
    inner: &'a Inner,
    s: &'a OciRepo<'a>,
    plan: &'a Plan,
    memo: Arc<TagMemo>,
}

impl OciDiscovery<'_> {
    /// Digest: one HEAD of the tag; a 404 gives an empty result. The metadata of a digest seen
    /// before comes from the cache.
    async fn digest_strategy(&self) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let Some(tag) = self.plan.digest_tag.as_deref() else {
            return Ok(Vec::new());
        };
        let (digest, meta) = match self.s.head_manifest(tag).await? {
            HeadOutcome::NotFound => return Ok(Vec::new()),
            HeadOutcome::Digest(d) => match self.cached(&d) {
                Some(meta) => (d, meta),
                None => match self.fetch_by_digest(&d).await? {
                    Some(meta) => (d, meta),
                    None => return Ok(Vec::new()),
                },
            },
            HeadOutcome::NoDigest => match self.fetch_by_tag(tag).await? {
                Some(f) => f,
                None => return Ok(Vec::new()),
            },
        };
        Ok(self
            .resolve(tag, &digest, meta)
            .await?
            .into_iter()
            .collect())
    }

    /// SemVer and Lexical: candidates in order, fetched in windows of the number still needed,
    /// so without a platform filter at most `limit` tags are fetched.
    async fn first_matching(
        &self,
        candidates: Vec<String>,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let mut found = Vec::with_capacity(self.plan.limit);
        let mut rest = candidates.as_slice();
        while found.len() < self.plan.limit && !rest.is_empty() {
            let (window, tail) = rest.split_at((self.plan.limit - found.len()).min(rest.len()));
            rest = tail;
            // Owned items: a closure over `&String` makes the future not `Send` for every
            // lifetime (rust-lang/rust#102211), which spawned reconcilers need.
            let fetched: Vec<Option<DiscoveredImageReference>> = stream::iter(window.to_vec())
                .map(|tag| async move { self.image_for_tag(&tag).await })
                .buffered(self.inner.config.fetch_concurrency.max(1))
                .try_collect()
                .await?;
            found.extend(fetched.into_iter().flatten());
        }
        found.truncate(self.plan.limit);
        Ok(found)
    }

    /// NewestBuild: metadata of every candidate (bounded concurrency), newest first.
    async fn newest_build(
        &self,
        candidates: Vec<String>,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let mut found: Vec<DiscoveredImageReference> = stream::iter(candidates)
            .map(|tag| async move { self.image_for_tag(&tag).await })
            .buffer_unordered(self.inner.config.fetch_concurrency.max(1))
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await?;
        sort_newest_build_by(
            &mut found,
            |r| r.created_at.as_ref().map(|t| t.0),
            |r| &r.tag,
        );
        found.truncate(self.plan.limit);
        Ok(found)
    }

    fn cached(&self, digest: &str) -> Option<Arc<ManifestMeta>> {
        let hit = self.inner.metadata.get(digest);
        RegistryBudgets::count(if hit.is_some() {
            &self.inner.budgets.metadata_hits
        } else {
            &self.inner.budgets.metadata_misses
        });
        hit
    }

    fn remember_tag(&self, tag: &str, digest: &str, confirmed: Instant) {
        lock(&self.memo).insert(
            tag.to_owned(),
            TagMemoEntry {
                digest: digest.to_owned(),
                confirmed,
            },
        );
    }

    async fn fetch_by_tag(
        &self,
        tag: &str,
    ) -> Result<Option<(String, Arc<ManifestMeta>)>, ImageDiscoveryError> {
        let Some(FetchedManifest { digest, meta }) = self.s.get_manifest(tag).await? else {
            lock(&self.memo).remove(tag);
            return Ok(None);
        };
        // The body may already be known under this digest (with its config).
        let meta = match self.inner.metadata.get(&digest) {
            Some(known) => known,
            None => {
                let meta = Arc::new(meta);
                self.inner
                    .metadata
                    .insert(digest.clone(), Arc::clone(&meta));
                meta
            }
        };
        self.remember_tag(tag, &digest, Instant::now());
        Ok(Some((digest, meta)))
    }

    async fn fetch_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<Arc<ManifestMeta>>, ImageDiscoveryError> {
        let Some(FetchedManifest { meta, .. }) = self.s.get_manifest(digest).await? else {
            return Ok(None);
        };
        let meta = Arc::new(meta);
        self.inner
            .metadata
            .insert(digest.to_owned(), Arc::clone(&meta));
        Ok(Some(meta))
    }

    /// The image behind `tag`, or `None` when the tag vanished or its platform does not match.
    async fn image_for_tag(
        &self,
        tag: &str,
    ) -> Result<Option<DiscoveredImageReference>, ImageDiscoveryError> {
        let memo = lock(&self.memo).get(tag).cloned();
        let known = match memo {
            Some(m)
                if self.plan.cache_by_tag
                    || m.confirmed.elapsed() < self.inner.config.tag_memo_ttl =>
            {
                Some(m.digest)
            }
            Some(_) => match self.s.head_manifest(tag).await? {
                HeadOutcome::Digest(d) => {
                    self.remember_tag(tag, &d, Instant::now());
                    Some(d)
                }
                HeadOutcome::NotFound => {
                    lock(&self.memo).remove(tag);
                    return Ok(None);
                }
                HeadOutcome::NoDigest => None,
            },
            None => None,
        };
        let found = match known {
            Some(d) => match self.cached(&d) {
                Some(meta) => Some((d, meta)),
                None => self.fetch_by_digest(&d).await?.map(|m| (d, m)),
            },
            None => {
                RegistryBudgets::count(&self.inner.budgets.metadata_misses);
                self.fetch_by_tag(tag).await?
            }
        };
        match found {
            Some((digest, meta)) => self.resolve(tag, &digest, meta).await,
            None => Ok(None),
        }
    }

    /// A single-platform image's metadata with its config loaded if `need_config`.
    async fn image_meta(
        &self,
        digest: &str,
        meta: &ImageMeta,
        need_config: bool,
    ) -> Result<ImageMeta, ImageDiscoveryError> {
        if !need_config || meta.config.is_some() {
            return Ok(meta.clone());
        }
        let config = self.s.get_config(&meta.config_digest).await?;
        let full = ImageMeta {
            config: Some(config),
            ..meta.clone()
        };
        self.inner.metadata.insert(
            digest.to_owned(),
            Arc::new(ManifestMeta::Image(full.clone())),
        );
        Ok(full)
    }

    /// The child image of an index, by digest (cached).
    async fn child_image(
        &self,
        digest: &str,
        need_config: bool,
    ) -> Result<Option<ImageMeta>, ImageDiscoveryError> {
        let meta = match self.cached(digest) {
            Some(m) => m,
            None => match self.fetch_by_digest(digest).await? {
                Some(m) => m,
                None => return Ok(None),
            },
        };
        match &*meta {
            ManifestMeta::Image(img) => Ok(Some(self.image_meta(digest, img, need_config).await?)),
            // Nested indices are not images.
            ManifestMeta::Index(_) => Ok(None),
        }
    }

    /// Turns a manifest into a reference, applying the platform filter.
    async fn resolve(
        &self,
        tag: &str,
        digest: &str,
        meta: Arc<ManifestMeta>,
    ) -> Result<Option<DiscoveredImageReference>, ImageDiscoveryError> {
        let platform = self.plan.platform.as_ref();
        let reference = |annotations, created: Option<Timestamp>| DiscoveredImageReference {
            tag: tag.to_owned(),
            digest: digest.to_owned(),
            annotations,
            created_at: created.map(to_time),
        };
        match &*meta {
            ManifestMeta::Image(img) => {
                let need_config = platform.is_some() || img.annotated_created().is_none();
                let img = self.image_meta(digest, img, need_config).await?;
                if let Some(p) = platform
                    && img.config.as_ref().and_then(|c| c.platform.as_ref()) != Some(p)
                {
                    return Ok(None);
                }
                Ok(Some(reference(img.annotations.clone(), img.created())))
            }
            ManifestMeta::Index(ix) => self.resolve_index(ix, platform, reference).await,
        }
    }

    /// An index: with a platform, the matching entry (its child's creation time unless the
    /// index is annotated; annotations of the index then of the entry); without one, the index
    /// annotation or the newest of its image entries (attestations skipped).
    async fn resolve_index(
        &self,
        ix: &IndexMeta,
        platform: Option<&Platform>,
        reference: impl Fn(BTreeMap<String, String>, Option<Timestamp>) -> DiscoveredImageReference,
    ) -> Result<Option<DiscoveredImageReference>, ImageDiscoveryError> {
        let index_created = super::oci::created_from(&ix.annotations);
        if let Some(p) = platform {
            let Some(entry) = ix.entry_for(p) else {
                return Ok(None);
            };
            let created = match index_created {
                Some(t) => Some(t),
                None => self
                    .child_image(&entry.digest, true)
                    .await?
                    .and_then(|c| c.created()),
            };
            let annotations = merge_annotations([&ix.annotations, &entry.annotations]);
            return Ok(Some(reference(annotations, created)));
        }
        let created = match index_created {
            Some(t) => Some(t),
            None => {
                let digests: Vec<String> = ix
                    .manifests
                    .iter()
                    .filter(|e| e.is_image())
                    .map(|e| e.digest.clone())
                    .collect();
                let children: Vec<Option<ImageMeta>> = stream::iter(digests)
                    .map(|d| async move { self.child_image(&d, true).await })
                    .buffered(self.inner.config.fetch_concurrency.max(1))
                    .try_collect()
                    .await?;
                children
                    .iter()
                    .flatten()
                    .filter_map(ImageMeta::created)
                    .max()
            }
        };
        Ok(Some(reference(ix.annotations.clone(), created)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(json: serde_json::Value) -> ImageSubscription {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn repository_parsing() {
        let r = ImageRepository::parse("nginx").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("index.docker.io", "library/nginx")
        );
        let r = ImageRepository::parse("docker.io/bitnami/redis").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("index.docker.io", "bitnami/redis")
        );
        let r = ImageRepository::parse("ghcr.io/akuity/kargo").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("ghcr.io", "akuity/kargo")
        );
        assert!(r.ecr.is_none());
        assert!(!r.is_loopback());
        let r = ImageRepository::parse("127.0.0.1:5000/team/app").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("127.0.0.1:5000", "team/app")
        );
        assert!(r.is_loopback());
        assert!(
            ImageRepository::parse("localhost/x")
                .map(|r| r.is_loopback())
                .unwrap_or(false)
        );
        let r = ImageRepository::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app")
            .unwrap_or_else(|e| panic!("{e}"));
        let ecr = r.ecr.unwrap_or_else(|| panic!("not ECR"));
        assert_eq!(
            (ecr.account.as_str(), ecr.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        for bad in [
            "",
            "ghcr.io/a/b:1.0",
            "ghcr.io/a@sha256:00",
            "ghcr.io//a",
            "nginx:latest",
        ] {
            assert!(ImageRepository::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platform_parsing() {
        let p: Platform = "linux/arm64/v8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            "linux/amd64".parse::<Platform>().map(|p| p.to_string()),
            Ok("linux/amd64".to_owned())
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("/amd64".parse::<Platform>().is_err());
    }

    #[test]
    fn credentials_from_secret_data() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(RegistryCredentials::from_secret_data(&data(&[])), Ok(None));
        assert_eq!(
            RegistryCredentials::from_secret_data(&data(&[
                ("repoURL", "x"),
                ("username", "u"),
                ("password", "p\n")
            ])),
            Ok(Some(RegistryCredentials::Basic {
                username: "u".into(),
                password: "p".into()
            }))
        );
        assert_eq!(
            RegistryCredentials::from_secret_data(&data(&[
                ("awsAccessKeyID", "AKIA"),
                ("awsSecretAccessKey", "s3"),
                ("awsRegion", "eu-west-1")
            ])),
            Ok(Some(RegistryCredentials::AwsStatic {
                access_key_id: "AKIA".into(),
                secret_access_key: "s3".into(),
                region: Some("eu-west-1".into())
            }))
        );
        assert_eq!(
            RegistryCredentials::from_secret_data(&data(&[("username", "u")])),
            Err(CredentialsError::Incomplete {
                present: "username",
                missing: "password"
            })
        );
        let mut bad = data(&[("username", "u")]);
        bad.insert("password".into(), vec![0xff]);
        assert_eq!(
            RegistryCredentials::from_secret_data(&bad),
            Err(CredentialsError::NotUtf8("password"))
        );
        let secret = RegistryCredentials::AwsStatic {
            access_key_id: "AKIA".into(),
            secret_access_key: "topsecret".into(),
            region: None,
        };
        let shown = format!(
            "{secret:?} {:?} {:?}",
            RegistryCredentials::Basic {
                username: "u".into(),
                password: "topsecret".into()
            },
            RegistryCredentials::Bearer {
                token: "topsecret".into()
            }
        );
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("AKIA"));
        assert_ne!(
            secret.fingerprint(),
            RegistryCredentials::Bearer { token: "x".into() }.fingerprint()
        );
        assert!(!secret.fingerprint().contains("topsecret"));
    }

    #[test]
    fn plans_validate_subscriptions() {
        let p = Plan::from_subscription(&sub(serde_json::json!({
            "repoURL": "ghcr.io/a/b", "semverConstraint": "^1.2", "allowTagsRegex": ["^v"],
            "ignoreTagsRegexes": ["rc"], "discoveryLimit": 500, "platform": "linux/amd64"
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.strategy, Strategy::SemVer);
        assert_eq!(p.limit, MAX_DISCOVERY_LIMIT);
        assert!(p.constraint.is_some());
        assert!(
            p.filter.matches("v1.0.0")
                && !p.filter.matches("v1.0.0-rc1")
                && !p.filter.matches("1.0.0")
        );
        assert_eq!(
            p.platform.as_ref().map(|p| p.to_string()).as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(
            p.candidates(vec!["v1.2.0".into(), "v1.3.0".into(), "v2.0.0".into()]),
            vec!["v1.3.0".to_owned(), "v1.2.0".to_owned()]
        );

        let d = Plan::from_subscription(&sub(serde_json::json!({
            "repoURL": "ghcr.io/a/b", "imageSelectionStrategy": "Digest", "constraint": "latest"
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.digest_tag.as_deref(), Some("latest"));
        assert_eq!(d.limit, 20);

        for bad in [
            serde_json::json!({"repoURL": "r/x", "imageSelectionStrategy": "Digest"}),
            serde_json::json!({"repoURL": "r/x", "constraint": "not a range"}),
            serde_json::json!({"repoURL": "r/x", "allowTagsRegexes": ["("]}),
            serde_json::json!({"repoURL": "r/x", "platform": "linux"}),
            serde_json::json!({"repoURL": "r/x", "allowTags": "^v"}),
            serde_json::json!({"repoURL": "r/x", "ignoreTags": ["latest"]}),
        ] {
            assert!(Plan::from_subscription(&sub(bad.clone())).is_err(), "{bad}");
        }
        // Different selection inputs, different fingerprints.
        let a = Plan::from_subscription(&sub(serde_json::json!({"repoURL": "r/x"})))
            .map(|p| p.fingerprint);
        let b = Plan::from_subscription(&sub(
            serde_json::json!({"repoURL": "r/x", "discoveryLimit": 5}),
        ))
        .map(|p| p.fingerprint);
        assert!(a.is_ok() && a != b);
    }

    #[test]
    fn config_from_lookup() {
        let env: HashMap<&str, &str> = [
            ("IMAGE_REGISTRY_RATE_LIMIT", "5"),
            ("MAX_IMAGE_CACHE_ENTRIES", "10"),
            ("HAUL_PLAIN_HTTP_REGISTRIES", "Reg.local:5000, other"),
            ("HAUL_IMAGE_TAG_MEMO_TTL_SECONDS", "0"),
            ("HAUL_IMAGE_FETCH_CONCURRENCY", "nope"),
        ]
        .into();
        let c = DiscovererConfig::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()));
        assert_eq!(c.rate_limits.per_second, 5.0);
        assert_eq!(c.metadata_cache_entries, 10);
        assert_eq!(
            c.plain_http_hosts,
            vec!["reg.local:5000".to_owned(), "other".to_owned()]
        );
        assert_eq!(c.tag_memo_ttl, Duration::ZERO);
        assert_eq!(c.fetch_concurrency, DEFAULT_FETCH_CONCURRENCY);
    }

    #[test]
    fn tag_fingerprint_ignores_order() {
        let a = tag_list_fingerprint(&["b".into(), "a".into()]);
        assert_eq!(a, tag_list_fingerprint(&["a".into(), "b".into()]));
        assert_ne!(
            a,
            tag_list_fingerprint(&["a".into(), "b".into(), "c".into()])
        );
        // No ambiguity from concatenation.
        assert_ne!(
            tag_list_fingerprint(&["ab".into()]),
            tag_list_fingerprint(&["a".into(), "b".into()])
        );
    }

    /// Reconcilers spawn discovery: its future must be `Send` for any lifetime.
    #[tokio::test]
    async fn discover_future_can_be_spawned() {
        let d = ImageDiscoverer::new(DiscovererConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let s = sub(serde_json::json!({"repoURL": "r/x", "constraint": "("}));
        let handle = tokio::spawn(async move { d.discover(&s, None).await });
        let res = handle.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            res,
            Err(ImageDiscoveryError::InvalidSubscription { .. })
        ));
    }

    #[test]
    fn errors_name_the_repository() {
        let e = ImageDiscoveryError::Throttled {
            repo: "r/x".into(),
            retry_after: Some(Duration::from_secs(30)),
            reason: "HTTP 429".into(),
        };
        assert_eq!(
            e.to_string(),
            "image registry throttled requests for r/x (retry after 30s): HTTP 429"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert!(e.is_transient());
        assert_eq!(e.repo(), "r/x");
        let e = ImageDiscoveryError::NotFound { repo: "r/y".into() };
        assert_eq!(e.to_string(), "image repository r/y not found");
        assert!(!e.is_transient());
    }
}
