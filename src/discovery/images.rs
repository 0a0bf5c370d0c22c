//! Image discovery for Warehouse image subscriptions, as Kargo does it (`pkg/image/*_selector.go`):
//! list tags, filter and order them with [`super::tag_selection`], fetch metadata for as few
//! tags as the strategy needs, and return up to `discoveryLimit` references, newest first.
//!
//! Two back ends:
//! * **ECR** (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>`, with no credentials or AWS keys):
//!   `DescribeImages` gives tags, digest and push time in one paginated call, so no strategy
//!   fetches a manifest, except that a `platform` filter reads the candidates' manifests with
//!   `BatchGetImage` (see [`super::ecr`]).
//! * **Any OCI distribution registry** (see [`super::oci_registry`] and [`super::oci`]).
//!
//! Both are an [`ImageRegistry`]; this module picks one per repository and credentials.
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

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use reqwest::Url;

use super::config::DiscovererConfig;
use super::ecr::EcrRegistry;
use super::ecr_clients::EcrClients;
use super::image_plan::ImagePlan;
use super::oci::{OciClient, OciRepo};
use super::oci_registry::{OciMemos, OciRegistry};
use super::registry::ImageRegistry;
use super::registry_context::RegistryContext;
use super::registry_limits::{BoundedCache, RegistryBudgets, RegistryStats};
use super::subscription::{Subscriber, describe_problems};
use super::types::{
    DiscovererInitError, ImageDiscoveryError, ImageRepository, RegistryCredentials,
};
use crate::api::warehouse::{ImageDiscoveryResult, ImageSubscription};
use crate::credentials::{CredType, FoundCredentials};

struct Inner {
    ctx: RegistryContext,
    memos: OciMemos,
}

/// The back end serving one repository.
enum Registry<'a> {
    Ecr(EcrRegistry<'a>),
    Oci(OciRegistry<'a>),
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
            .field("config", &self.inner.ctx.config)
            .field("metadata_cache_len", &self.inner.ctx.metadata.len())
            .finish_non_exhaustive()
    }
}

impl ImageDiscoverer {
    pub fn new(config: DiscovererConfig) -> Result<Self, DiscovererInitError> {
        let oci = OciClient::new(config.request_timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                ctx: RegistryContext {
                    budgets: RegistryBudgets::new(config.rate_limits.clone()),
                    metadata: BoundedCache::new(config.metadata_cache_entries),
                    oci,
                    ecr: EcrClients::default(),
                    config,
                },
                memos: OciMemos::default(),
            }),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &DiscovererConfig {
        &self.inner.ctx.config
    }

    /// Requests sent so far, per registry and kind, and cache counters.
    pub fn stats(&self) -> RegistryStats {
        self.inner.ctx.budgets.stats()
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
        let plan = ImagePlan::compile(sub).map_err(|p| invalid(describe_problems(&p)))?;
        self.discover_planned(sub, &plan, creds).await
    }

    /// [`discover`](Self::discover) of a subscription compiled before.
    pub async fn discover_planned(
        &self,
        sub: &ImageSubscription,
        plan: &ImagePlan,
        creds: Option<&RegistryCredentials>,
    ) -> Result<ImageDiscoveryResult, ImageDiscoveryError> {
        let invalid = |reason: String| ImageDiscoveryError::InvalidSubscription {
            repo: sub.repo_url.clone(),
            reason,
        };
        let repo = ImageRepository::parse(&sub.repo_url).map_err(invalid)?;
        let started = Instant::now();
        let before = self.stats().registry(&repo.registry);
        let references = match self.registry(&sub.repo_url, &repo, creds, plan.insecure)? {
            Registry::Ecr(r) => r.discover(plan).await?,
            Registry::Oci(r) => r.discover(plan).await?,
        };
        let spent = self.stats().registry(&repo.registry).since(&before);
        tracing::debug!(
            found = references.len(),
            requests = %spent,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "image discovery done"
        );
        Ok(ImageDiscoveryResult {
            subscription_name: None,
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
        super::ecr::identity(&self.inner.ctx, repo_url, ecr, creds).await
    }

    /// The credentials to send to `repo`'s registry API: for an ECR repository whose
    /// credentials are AWS keys or absent (IRSA / the SDK's default chain), user `AWS` and an
    /// authorization token from `GetAuthorizationToken`, cached per (region, credentials);
    /// otherwise `creds` unchanged (username/password, including a token pasted into a Secret).
    pub async fn registry_api_credentials(
        &self,
        repo: &ImageRepository,
        creds: Option<RegistryCredentials>,
    ) -> Result<Option<RegistryCredentials>, ImageDiscoveryError> {
        let Some(ecr) = repo.ecr.as_ref() else {
            return Ok(creds);
        };
        if matches!(creds, Some(RegistryCredentials::Basic { .. })) {
            return Ok(creds);
        }
        let repo_url = format!("{}/{}", repo.registry, repo.path);
        let password =
            super::ecr::authorization_token(&self.inner.ctx, &repo_url, repo, ecr, creds.as_ref())
                .await?;
        Ok(Some(RegistryCredentials::Basic {
            username: "AWS".into(),
            password,
        }))
    }

    fn base_url(&self, repo: &ImageRepository) -> Result<(Url, bool), String> {
        let plain = repo.is_loopback()
            || self
                .inner
                .ctx
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
        match self.registry(repo_url, &repo, creds, insecure)? {
            Registry::Ecr(r) => r.list_tags().await,
            Registry::Oci(r) => r.list_tags().await,
        }
    }

    /// The back end of a repository: ECR through its API unless the Secret gives registry
    /// credentials, else the OCI distribution API.
    fn registry<'a>(
        &'a self,
        repo_url: &'a str,
        repo: &'a ImageRepository,
        creds: Option<&'a RegistryCredentials>,
        insecure: bool,
    ) -> Result<Registry<'a>, ImageDiscoveryError> {
        if let Some(ecr) = &repo.ecr
            && matches!(creds, None | Some(RegistryCredentials::AwsStatic { .. }))
        {
            return Ok(Registry::Ecr(EcrRegistry {
                ctx: &self.inner.ctx,
                repo_url,
                repo,
                ecr,
                creds,
            }));
        }
        Ok(Registry::Oci(OciRegistry {
            ctx: &self.inner.ctx,
            memos: &self.inner.memos,
            repo,
            session: self.session(repo_url, repo, creds, insecure)?,
        }))
    }

    /// A session with one repository; refuses to send credentials over plain HTTP to a host
    /// that is not loopback unless allowed.
    pub(crate) fn session<'a>(
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
            && !self.inner.ctx.config.allow_credentials_over_http
        {
            return Err(ImageDiscoveryError::Auth {
                repo: repo_url.to_owned(),
                reason:
                    "refusing to send credentials over plain HTTP (set ALLOW_CREDENTIALS_OVER_HTTP)"
                        .into(),
            });
        }
        Ok(OciRepo::new(
            &self.inner.ctx.oci,
            self.inner.ctx.budgets.host(&repo.registry),
            base,
            repo.registry.clone(),
            repo.path.clone(),
            repo_url.to_owned(),
            creds,
            insecure,
        ))
    }
}

impl Subscriber for ImageDiscoverer {
    type Spec = ImageSubscription;
    type Plan = ImagePlan;
    type Credentials = Option<RegistryCredentials>;
    type Found = ImageDiscoveryResult;
    type Error = ImageDiscoveryError;

    const CRED_TYPE: CredType = CredType::Image;

    fn repo_url(spec: &ImageSubscription) -> &str {
        &spec.repo_url
    }

    fn credentials(found: Option<&FoundCredentials>) -> Result<Self::Credentials, String> {
        registry_credentials(found)
    }

    async fn discover(
        &self,
        spec: &ImageSubscription,
        plan: &ImagePlan,
        creds: &Self::Credentials,
        _previous: Option<&ImageDiscoveryResult>,
    ) -> Result<ImageDiscoveryResult, ImageDiscoveryError> {
        self.discover_planned(spec, plan, creds.as_ref()).await
    }

    fn retry_after(error: &ImageDiscoveryError) -> Option<std::time::Duration> {
        error.retry_after()
    }
}

/// Registry credentials from an `image` or `helm` Secret; the error names the Secret.
pub fn registry_credentials(
    found: Option<&FoundCredentials>,
) -> Result<Option<RegistryCredentials>, String> {
    match found {
        Some(f) => RegistryCredentials::from_secret_data(&f.data)
            .map_err(|e| format!("Secret {}: {e}", f.secret)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(json: serde_json::Value) -> ImageSubscription {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
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
}
