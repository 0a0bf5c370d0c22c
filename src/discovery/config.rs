//! Settings of an [`ImageDiscoverer`](super::ImageDiscoverer), from the environment.

use std::str::FromStr;
use std::time::Duration;

use super::registry_limits::{DEFAULT_METADATA_CACHE_ENTRIES, RateLimits};

/// Default time a tag → digest mapping (and a selection) is trusted without a `HEAD`.
pub const DEFAULT_TAG_MEMO_TTL: Duration = Duration::from_secs(3600);
/// Default concurrency of metadata fetches within one discovery.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 8;

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
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
}
