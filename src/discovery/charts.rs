//! Chart discovery for Kargo's chart subscriptions (Kargo: `pkg/helm/chart/*_selector.go`).
//!
//! * `oci://host/repo/chart`: the chart's versions are the repository's tags. OCI tags cannot
//!   hold `+`, so Helm writes build metadata with `_`; a tag counts when, with `_` read as `+`,
//!   it is a strict semantic version.
//! * `http(s)://host/path` with `name`: the versions of `entries.<name>` in `<repoURL>/index.yaml`,
//!   parsed leniently (`v1.2` counts).
//!
//! Both then keep the versions that satisfy `semverConstraint`, sort them newest first (ties
//! broken by the version text, descending) and keep `discoveryLimit`. That selection and the index
//! parsing are pure ([`select_versions`], [`index_versions`]); the IO is [`discover_chart`].

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::images::ImageDiscoverer;
use super::semver_constraint::{Constraint, cmp_precedence, parse_version};
use super::semver_version::strict_new_version;
use super::subscription::{Subscriber, SubscriptionProblem, describe_problems};
use super::types::{ImageDiscoveryError, RegistryCredentials};
use crate::api::{ChartDiscoveryResult, ChartSubscription};
use crate::credentials::{CredType, FoundCredentials};

/// Largest `index.yaml` accepted (public indexes reach tens of MiB).
const MAX_INDEX_BYTES: usize = 256 << 20;
/// Timeout of one index request; indexes are large, so generous.
const INDEX_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a chart subscription's versions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// `oci://…`: the tags of this repository (the URL without `oci://`).
    Oci { repository: String },
    /// A classic repository: `index_url` and the chart's `name` in it.
    Http { index_url: String, name: String },
}

impl ChartSource {
    /// Reads a subscription the way Kargo's webhook validates it: `name` is required for
    /// HTTP(S) repositories and forbidden for OCI ones.
    pub fn of(sub: &ChartSubscription) -> Result<Self, String> {
        let url = sub.repo_url.trim();
        let name = sub.name.as_deref().unwrap_or("").trim();
        if let Some(rest) = url.strip_prefix("oci://") {
            if !name.is_empty() {
                return Err("name must be empty when repoURL starts with oci://".into());
            }
            let repository = rest.trim_end_matches('/');
            if repository.is_empty() || !repository.contains('/') {
                return Err(format!("repoURL {url:?} names no chart repository"));
            }
            return Ok(Self::Oci {
                repository: repository.to_owned(),
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            if name.is_empty() {
                return Err("name is required when repoURL starts with http:// or https://".into());
            }
            return Ok(Self::Http {
                index_url: format!("{}/index.yaml", url.trim_end_matches('/')),
                name: name.to_owned(),
            });
        }
        Err(format!(
            "repoURL {url:?} must start with oci://, http:// or https://"
        ))
    }
}

/// The versions to record, newest first: candidates that parse (strictly for OCI tags, with
/// `_` read as `+`), satisfy `constraint`, sorted by precedence then by text, at most `limit`.
pub fn select_versions<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    oci: bool,
    constraint: Option<&Constraint>,
    limit: usize,
) -> Vec<String> {
    let mut parsed: Vec<(semver::Version, String)> = candidates
        .into_iter()
        .filter_map(|c| {
            let text = if oci {
                c.replace('_', "+")
            } else {
                c.to_owned()
            };
            // Kargo: StrictNewVersion for OCI tags (so no `v` prefix), NewVersion for an index.
            let v = if oci {
                strict_new_version(&text).ok()?
            } else {
                parse_version(&text, false)?
            };
            Some((v, text))
        })
        .filter(|(v, _)| constraint.is_none_or(|c| c.matches(v)))
        .collect();
    parsed.sort_by(|(va, ta), (vb, tb)| match cmp_precedence(vb, va) {
        Ordering::Equal => tb.cmp(ta),
        o => o,
    });
    parsed.dedup_by(|a, b| a.1 == b.1);
    parsed.truncate(limit);
    parsed.into_iter().map(|(_, t)| t).collect()
}

/// A repository index that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IndexError(String);

/// The versions listed for `chart` in an `index.yaml`, in file order; `None` when the index has
/// no such chart. Only that chart's entries are kept in memory.
pub fn index_versions(body: &[u8], chart: &str) -> Result<Option<Vec<String>>, IndexError> {
    let text = std::str::from_utf8(body).map_err(|_| IndexError("not UTF-8".into()))?;
    // Large public indexes exceed the parser's default node budget by far.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_INDEX_BYTES),
            max_events: 100_000_000,
            max_nodes: 50_000_000,
            max_total_scalar_bytes: MAX_INDEX_BYTES,
        },
    };
    CHART.with(|c| *c.borrow_mut() = chart.to_owned());
    let index: Index = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| IndexError(first_line(&e.to_string())))?;
    match index.entries {
        None => Err(IndexError("no entries".into())),
        Some(found) => Ok(found.0),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_owned()
}

thread_local! {
    /// The chart [`index_versions`] looks for, read by the `entries` visitor (serde offers no
    /// seed through a derived struct).
    static CHART: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[derive(serde::Deserialize)]
struct Index {
    #[serde(default)]
    entries: Option<OneChart>,
}

/// `entries`, keeping only the versions of [`CHART`].
struct OneChart(Option<Vec<String>>);

impl<'de> serde::Deserialize<'de> for OneChart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneChart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of chart names to chart versions")
            }
            fn visit_unit<E: de::Error>(self) -> Result<OneChart, E> {
                Ok(OneChart(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OneChart, A::Error> {
                let want = CHART.with(|c| c.borrow().clone());
                let mut found = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == want {
                        let entries: Option<Vec<Entry>> = map.next_value()?;
                        found = Some(
                            entries
                                .unwrap_or_default()
                                .into_iter()
                                .filter_map(|e| e.version.map(|v| v.0))
                                .collect(),
                        );
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(OneChart(found))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(default)]
    version: Option<Text>,
}

/// A scalar read as text: Go's YAML decoder accepts `version: 1.0` into a string field.
struct Text(String);

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a version")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        // Asking for a string gets a plain scalar's text: `2.0` stays "2.0", as in Go.
        d.deserialize_str(V)
    }
}

// ----------------------------------------------------------------------------------------- errors

/// Why chart discovery failed. Every variant names the repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartDiscoveryError {
    #[error("invalid chart subscription for {repo}: {reason}")]
    InvalidSubscription { repo: String, reason: String },
    /// The OCI repository or the index does not exist.
    #[error("chart repository {repo} not found{detail}")]
    NotFound { repo: String, detail: String },
    /// A classic repository's index lists no chart of that name.
    #[error("chart {name:?} not found in {index_url}")]
    NoSuchChart { index_url: String, name: String },
    #[error("authentication to chart repository {repo} failed: {reason}")]
    Auth { repo: String, reason: String },
    #[error("chart repository {repo} throttled requests{}: {reason}",
        .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Throttled {
        repo: String,
        retry_after: Option<Duration>,
        reason: String,
    },
    #[error("chart repository {repo} unreachable: {reason}")]
    Unreachable { repo: String, reason: String },
    #[error("malformed index.yaml at {index_url}: {reason}")]
    MalformedIndex { index_url: String, reason: String },
    #[error("unexpected answer from chart repository {repo}: {reason}")]
    Protocol { repo: String, reason: String },
}

impl ChartDiscoveryError {
    /// The repository's `Retry-After`, when it sent one with a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Restates a registry error in chart terms, naming the subscription's repoURL.
    fn from_registry(repo: &str, e: ImageDiscoveryError) -> Self {
        let repo = repo.to_owned();
        match e {
            ImageDiscoveryError::InvalidSubscription { reason, .. } => {
                Self::InvalidSubscription { repo, reason }
            }
            ImageDiscoveryError::NotFound { .. } => Self::NotFound {
                repo,
                detail: String::new(),
            },
            ImageDiscoveryError::Auth { reason, .. } => Self::Auth { repo, reason },
            ImageDiscoveryError::Throttled {
                retry_after,
                reason,
                ..
            } => Self::Throttled {
                repo,
                retry_after,
                reason,
            },
            ImageDiscoveryError::Unreachable { reason, .. } => Self::Unreachable { repo, reason },
            ImageDiscoveryError::Protocol { reason, .. } => Self::Protocol { repo, reason },
        }
    }
}

// --------------------------------------------------------------------------------------------- IO

/// Basic credentials from a `kargo.akuity.io/cred-type: helm` Secret (`username`, `password`).
pub type ChartCredentials = RegistryCredentials;

fn http_client(insecure: bool) -> Result<&'static reqwest::Client, String> {
    static SECURE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static INSECURE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if insecure { &INSECURE } else { &SECURE };
    cell.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .timeout(INDEX_TIMEOUT)
            .user_agent(concat!("haul/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A chart subscription compiled once: where its versions come from, its constraint, its
/// limit. The Warehouse's validation and discovery both use it.
#[derive(Debug, Clone)]
pub struct ChartPlan {
    pub source: ChartSource,
    pub constraint: Option<Constraint>,
    pub limit: usize,
    pub insecure: bool,
}

impl ChartPlan {
    /// Kargo's `MatchesVersion`: whether a pushed chart version is a version within the
    /// subscription's `semverConstraint`, so a webhook refreshes only the Warehouses it concerns.
    pub fn matches_version(&self, version: &str) -> bool {
        parse_version(version, false)
            .is_some_and(|v| self.constraint.as_ref().is_none_or(|c| c.matches(&v)))
    }

    /// Compiles `sub`, or names every problem (the field relative to the subscription).
    pub fn compile(sub: &ChartSubscription) -> Result<Self, Vec<SubscriptionProblem>> {
        let mut problems = Vec::new();
        let source = ChartSource::of(sub)
            .map_err(|e| {
                let field = if e.contains("name") {
                    "name"
                } else {
                    "repoURL"
                };
                problems.push(SubscriptionProblem::new(field, e));
            })
            .ok();
        // As Kargo: only an empty constraint is no constraint; blanks are refused.
        let constraint = sub
            .semver_constraint
            .as_deref()
            .filter(|c| !c.is_empty())
            .and_then(|c| {
                Constraint::parse(c)
                    .map_err(|e| {
                        problems.push(SubscriptionProblem::new("semverConstraint", e.to_string()))
                    })
                    .ok()
            });
        match source {
            Some(source) if problems.is_empty() => Ok(Self {
                source,
                constraint,
                limit: usize::try_from(sub.discovery_limit.clamp(1, 100)).unwrap_or(20),
                insecure: sub.insecure_skip_tls_verify.unwrap_or(false),
            }),
            _ => Err(problems),
        }
    }
}

/// Discovers the versions of one chart subscription, newest first. `creds` come from a helm
/// Secret; `images` provides the OCI client, its rate limits and auth.
pub async fn discover_chart(
    images: &ImageDiscoverer,
    sub: &ChartSubscription,
    creds: Option<&ChartCredentials>,
) -> Result<ChartDiscoveryResult, ChartDiscoveryError> {
    let plan = ChartPlan::compile(sub).map_err(|p| ChartDiscoveryError::InvalidSubscription {
        repo: sub.repo_url.clone(),
        reason: describe_problems(&p),
    })?;
    discover_planned_chart(images, sub, &plan, creds).await
}

/// [`discover_chart`] of a subscription compiled before.
#[tracing::instrument(name = "discover_chart", skip_all, fields(repo = %sub.repo_url))]
pub async fn discover_planned_chart(
    images: &ImageDiscoverer,
    sub: &ChartSubscription,
    plan: &ChartPlan,
    creds: Option<&ChartCredentials>,
) -> Result<ChartDiscoveryResult, ChartDiscoveryError> {
    let repo = sub.repo_url.as_str();
    let (source, constraint, limit, insecure) =
        (&plan.source, &plan.constraint, plan.limit, plan.insecure);
    let versions = match source {
        ChartSource::Oci { repository } => {
            let tags = images
                .list_tags(repository, creds, insecure)
                .await
                .map_err(|e| ChartDiscoveryError::from_registry(repo, e))?;
            select_versions(
                tags.iter().map(String::as_str),
                true,
                constraint.as_ref(),
                limit,
            )
        }
        ChartSource::Http { index_url, name } => {
            let body = fetch_index(repo, index_url, creds, insecure).await?;
            let listed =
                index_versions(&body, name).map_err(|e| ChartDiscoveryError::MalformedIndex {
                    index_url: index_url.clone(),
                    reason: e.0,
                })?;
            let Some(listed) = listed else {
                return Err(ChartDiscoveryError::NoSuchChart {
                    index_url: index_url.clone(),
                    name: name.clone(),
                });
            };
            select_versions(
                listed.iter().map(String::as_str),
                false,
                constraint.as_ref(),
                limit,
            )
        }
    };
    tracing::debug!(found = versions.len(), "chart discovery done");
    Ok(ChartDiscoveryResult {
        repo_url: sub.repo_url.clone(),
        name: sub.name.clone().filter(|n| !n.is_empty()),
        semver_constraint: sub.semver_constraint.clone().filter(|c| !c.is_empty()),
        versions,
        subscription_name: None,
    })
}

/// Chart subscriptions, discovered through the image discoverer's clients.
pub struct ChartSubscriber<'a>(pub &'a ImageDiscoverer);

impl Subscriber for ChartSubscriber<'_> {
    type Spec = ChartSubscription;
    type Plan = ChartPlan;
    type Credentials = Option<ChartCredentials>;
    type Found = ChartDiscoveryResult;
    type Error = ChartDiscoveryError;

    const CRED_TYPE: CredType = CredType::Helm;

    fn repo_url(spec: &ChartSubscription) -> &str {
        &spec.repo_url
    }

    fn credentials(found: Option<&FoundCredentials>) -> Result<Self::Credentials, String> {
        super::images::registry_credentials(found)
    }

    async fn discover(
        &self,
        spec: &ChartSubscription,
        plan: &ChartPlan,
        creds: &Self::Credentials,
        _previous: Option<&ChartDiscoveryResult>,
    ) -> Result<ChartDiscoveryResult, ChartDiscoveryError> {
        discover_planned_chart(self.0, spec, plan, creds.as_ref()).await
    }

    fn retry_after(error: &ChartDiscoveryError) -> Option<Duration> {
        error.retry_after()
    }
}

async fn fetch_index(
    repo: &str,
    index_url: &str,
    creds: Option<&ChartCredentials>,
    insecure: bool,
) -> Result<Vec<u8>, ChartDiscoveryError> {
    let unreachable = |reason: String| ChartDiscoveryError::Unreachable {
        repo: repo.to_owned(),
        reason,
    };
    let client = http_client(insecure).map_err(unreachable)?;
    let mut req = client.get(index_url);
    match creds {
        Some(RegistryCredentials::Basic { username, password }) => {
            req = req.basic_auth(username, Some(password));
        }
        Some(RegistryCredentials::Bearer { token }) => req = req.bearer_auth(token),
        Some(RegistryCredentials::AwsStatic { .. }) | None => {}
    }
    let resp = req.send().await.map_err(|e| unreachable(chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let repo = repo.to_owned();
        return Err(match status.as_u16() {
            401 | 403 => ChartDiscoveryError::Auth {
                repo,
                reason: format!("HTTP {status} fetching {index_url}"),
            },
            404 => ChartDiscoveryError::NotFound {
                repo,
                detail: format!(" (HTTP 404 fetching {index_url})"),
            },
            429 => ChartDiscoveryError::Throttled {
                repo,
                retry_after: resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                reason: format!("HTTP {status} fetching {index_url}"),
            },
            s if s >= 500 => ChartDiscoveryError::Unreachable {
                repo,
                reason: format!("HTTP {status} fetching {index_url}"),
            },
            _ => ChartDiscoveryError::Protocol {
                repo,
                reason: format!("HTTP {status} fetching {index_url}"),
            },
        });
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_INDEX_BYTES as u64)
    {
        return Err(ChartDiscoveryError::MalformedIndex {
            index_url: index_url.to_owned(),
            reason: format!("larger than {MAX_INDEX_BYTES} bytes"),
        });
    }
    let mut body = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(chain(&e)))? {
        if body.len() + chunk.len() > MAX_INDEX_BYTES {
            return Err(ChartDiscoveryError::MalformedIndex {
                index_url: index_url.to_owned(),
                reason: format!("larger than {MAX_INDEX_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its sources, which is where reqwest keeps "connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(url: &str, name: Option<&str>) -> ChartSubscription {
        serde_json::from_value(serde_json::json!({"repoURL": url, "name": name}))
            .expect("subscription")
    }

    #[test]
    fn sources_follow_kargo_rules_for_name() {
        assert_eq!(
            ChartSource::of(&sub("oci://ghcr.io/acme/charts/api", None)),
            Ok(ChartSource::Oci {
                repository: "ghcr.io/acme/charts/api".into()
            })
        );
        assert_eq!(
            ChartSource::of(&sub("https://charts.example.com/", Some("web"))),
            Ok(ChartSource::Http {
                index_url: "https://charts.example.com/index.yaml".into(),
                name: "web".into()
            })
        );
        assert!(
            ChartSource::of(&sub("oci://ghcr.io/acme/api", Some("api")))
                .unwrap_err()
                .contains("name must be empty")
        );
        assert!(
            ChartSource::of(&sub("https://charts.example.com", None))
                .unwrap_err()
                .contains("name is required")
        );
        assert!(ChartSource::of(&sub("ftp://x/y", None)).is_err());
    }

    #[test]
    fn oci_tags_are_strict_and_underscore_is_build_metadata() {
        let tags = [
            "1.2.0",
            "1.10.0",
            "1.9.0",
            "latest",
            "v1.11.0",
            "1.2",
            "1.3.0_build.5",
            "2.0.0-rc.1",
        ];
        // `v1.11.0` is not a strict semantic version (Kargo's StrictNewVersion refuses it).
        let got = select_versions(tags, true, None, 20);
        assert_eq!(
            got,
            ["2.0.0-rc.1", "1.10.0", "1.9.0", "1.3.0+build.5", "1.2.0"]
        );
    }

    #[test]
    fn http_versions_are_lenient_and_ties_break_on_text() {
        let got = select_versions(["1.0", "1.0.0", "v0.9", "junk"], false, None, 20);
        assert_eq!(got, ["1.0.0", "1.0", "v0.9"]);
    }

    #[test]
    fn constraint_and_limit_apply() {
        let c = Constraint::parse("^1.2").expect("constraint");
        let got = select_versions(
            ["1.1.0", "1.2.0", "1.2.5", "1.3.0", "2.0.0", "1.3.0-rc.1"],
            true,
            Some(&c),
            2,
        );
        assert_eq!(got, ["1.3.0", "1.2.5"]);
        assert!(select_versions(["1.0.0"], true, None, 0).is_empty());
    }

    #[test]
    fn index_keeps_only_the_named_chart() {
        let index = br#"apiVersion: v1
entries:
  api:
  - name: api
    version: 1.0.0
    urls: [api-1.0.0.tgz]
  web:
  - name: web
    version: 2.1.0
    digest: abc
  - name: web
    version: 2.0
  - name: web
generated: "2024-01-01T00:00:00Z"
"#;
        assert_eq!(
            index_versions(index, "web"),
            Ok(Some(vec!["2.1.0".to_string(), "2.0".to_string()]))
        );
        assert_eq!(
            index_versions(index, "api"),
            Ok(Some(vec!["1.0.0".to_string()]))
        );
        assert_eq!(index_versions(index, "db"), Ok(None));
    }

    #[test]
    fn malformed_indexes_are_errors() {
        assert!(index_versions(b"entries: [1, 2", "x").is_err());
        assert!(index_versions(b"entries: 5\n", "x").is_err());
        assert!(index_versions(b"apiVersion: v1\n", "x").is_err());
        assert!(index_versions(&[0xff, 0xfe], "x").is_err());
    }
}
