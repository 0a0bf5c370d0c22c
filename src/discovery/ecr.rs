//! Amazon ECR through its API (`aws-sdk-ecr`) rather than the registry protocol:
//! `DescribeImages` returns every image's tags, digest and push time in pages of up to 1000, so
//! SemVer, Lexical and NewestBuild need no manifest at all (NewestBuild orders by
//! `imagePushedAt`, which is therefore the `createdAt` of ECR references). Only a `platform`
//! filter reads manifests, with `BatchGetImage` (up to 100 per call, cached by digest); a
//! single-platform manifest's platform is in its config blob, read from ECR's registry API with
//! an authorization token from `GetAuthorizationToken`.
//!
//! Credentials: the SDK's default chain (environment keys, IRSA web identity via STS, EKS Pod
//! Identity, profile, IMDS) or static keys from a Secret. Endpoints follow the SDK's standard
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL_STS`. One client is kept per
//! (region, credentials); the SDK caches the credentials it resolves inside the client and
//! refreshes them before they expire.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{DescribeImagesFilter, ImageIdentifier, TagStatus};
use base64::Engine as _;
use k8s_openapi::jiff::Timestamp;
use reqwest::Url;

use crate::api::warehouse::DiscoveredImageReference;

use super::ecr_clients::{DataPlaneToken, client_key};
use super::image_plan::ImagePlan as Plan;
use super::oci::{MANIFEST_MEDIA_TYPES, ManifestMeta, OciRepo, parse_manifest};
use super::registry::ImageRegistry;
use super::registry_context::RegistryContext as Inner;
use super::registry_limits::{HostBudget, RegistryBudgets, RequestKind};
use super::tag_selection::{Strategy, sort_newest_build_by};
use super::types::{
    EcrRepository, ImageDiscoveryError, ImageRepository, RegistryCredentials, merge_annotations,
    to_time,
};

/// Largest page `DescribeImages` returns.
const DESCRIBE_PAGE_SIZE: i32 = 1000;
/// Largest `imageIds` list `BatchGetImage` accepts.
const BATCH_GET_MAX: usize = 100;
/// ECR authorization tokens are renewed this long before they expire.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(300);
/// Shortest time an authorization token is reused.
const MIN_TOKEN_REUSE: Duration = Duration::from_secs(60);

/// Where the AWS credentials used for an ECR repository come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrIdentity {
    /// `static` (keys from a Secret), `web-identity` (IRSA: STS AssumeRoleWithWebIdentity),
    /// `environment`, or the SDK's names of the credential features.
    pub source: String,
    /// Whether the credentials are temporary (have a session token).
    pub temporary: bool,
}

/// One ECR repository, through the ECR API with the AWS credentials chain (or static keys).
pub(crate) struct EcrRegistry<'a> {
    pub ctx: &'a Inner,
    pub repo_url: &'a str,
    pub repo: &'a ImageRepository,
    pub ecr: &'a EcrRepository,
    pub creds: Option<&'a RegistryCredentials>,
}

impl ImageRegistry for EcrRegistry<'_> {
    async fn discover(
        &self,
        plan: &Plan,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        discover(
            self.ctx,
            self.repo_url,
            self.repo,
            self.ecr,
            plan,
            self.creds,
        )
        .await
    }

    async fn list_tags(&self) -> Result<Vec<String>, ImageDiscoveryError> {
        list_tags(self.ctx, self.repo_url, self.repo, self.ecr, self.creds).await
    }
}

/// Maps an SDK error to a discovery error naming `repo`.
fn sdk_error<E>(err: SdkError<E>, repo: &str) -> ImageDiscoveryError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let reason = DisplayErrorContext(&err).to_string();
    let repo = repo.to_owned();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return ImageDiscoveryError::Auth {
                repo,
                reason: format!("no usable AWS credentials: {reason}"),
            };
        }
        source = e.source();
    }
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            let status = se.raw().status().as_u16();
            match code {
                "RepositoryNotFoundException" => ImageDiscoveryError::NotFound { repo },
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "ExpiredTokenException"
                | "InvalidSignatureException"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "MissingAuthenticationTokenException" => {
                    ImageDiscoveryError::Auth { repo, reason }
                }
                "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                    ImageDiscoveryError::Throttled {
                        repo,
                        retry_after: None,
                        reason,
                    }
                }
                _ if status == 401 || status == 403 => ImageDiscoveryError::Auth { repo, reason },
                _ if status == 429 => ImageDiscoveryError::Throttled {
                    repo,
                    retry_after: None,
                    reason,
                },
                _ if status >= 500 => ImageDiscoveryError::Unreachable { repo, reason },
                _ => ImageDiscoveryError::Protocol { repo, reason },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ImageDiscoveryError::Unreachable { repo, reason }
        }
        SdkError::ConstructionFailure(_) if reason.contains("credentials") => {
            ImageDiscoveryError::Auth { repo, reason }
        }
        _ => ImageDiscoveryError::Protocol { repo, reason },
    }
}

fn pushed_at(t: Option<&aws_sdk_ecr::primitives::DateTime>) -> Option<Timestamp> {
    let t = t?;
    Timestamp::new(t.secs(), i32::try_from(t.subsec_nanos()).ok()?).ok()
}

/// One tagged image from `DescribeImages`.
#[derive(Debug, Clone)]
struct Tagged {
    tag: String,
    digest: String,
    pushed: Option<Timestamp>,
}

/// One ECR discovery run.
struct EcrDiscovery<'a> {
    inner: &'a Inner,
    client: aws_sdk_ecr::Client,
    budget: Arc<HostBudget>,
    repo_url: &'a str,
    repo: &'a ImageRepository,
    ecr: &'a EcrRepository,
    plan: &'a Plan,
    creds: Option<&'a RegistryCredentials>,
}

async fn discover(
    inner: &Inner,
    repo_url: &str,
    repo: &ImageRepository,
    ecr: &EcrRepository,
    plan: &Plan,
    creds: Option<&RegistryCredentials>,
) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
    let d = EcrDiscovery {
        inner,
        client: inner.ecr.client(&ecr.region, creds).await.client,
        budget: inner.budgets.host(&repo.registry),
        repo_url,
        repo,
        ecr,
        plan,
        creds,
    };
    if plan.strategy == Strategy::Digest {
        return d.digest_strategy().await;
    }
    let images = d.describe_all().await?;
    let mut by_tag: HashMap<String, Tagged> =
        images.into_iter().map(|t| (t.tag.clone(), t)).collect();
    let candidates = plan.candidates(by_tag.keys().cloned().collect());
    let mut ordered: Vec<Tagged> = candidates
        .into_iter()
        .filter_map(|tag| by_tag.remove(&tag))
        .collect();
    if plan.strategy == Strategy::NewestBuild {
        sort_newest_build_by(&mut ordered, |t| t.pushed, |t| &t.tag);
    }
    d.take_matching(ordered).await
}

/// Every tag of an ECR repository, from `DescribeImages` (chart discovery: an OCI chart's
/// versions are its tags), with the same credentials as images — IRSA included.
async fn list_tags(
    inner: &Inner,
    repo_url: &str,
    repo: &ImageRepository,
    ecr: &EcrRepository,
    creds: Option<&RegistryCredentials>,
) -> Result<Vec<String>, ImageDiscoveryError> {
    let client = inner.ecr.client(&ecr.region, creds).await.client;
    let budget = inner.budgets.host(&repo.registry);
    let tagged = describe_tagged(&client, &budget, ecr, repo, repo_url).await?;
    Ok(tagged.into_iter().map(|t| t.tag).collect())
}

/// Every tagged image of a repository, paginated by `DescribeImages`.
async fn describe_tagged(
    client: &aws_sdk_ecr::Client,
    budget: &HostBudget,
    ecr: &EcrRepository,
    repo: &ImageRepository,
    repo_url: &str,
) -> Result<Vec<Tagged>, ImageDiscoveryError> {
    let mut pages = client
        .describe_images()
        .registry_id(&ecr.account)
        .repository_name(&repo.path)
        .filter(
            DescribeImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .max_results(DESCRIBE_PAGE_SIZE)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    loop {
        // The paginator sends the next request when polled (and none after the last page).
        budget.acquire().await;
        let Some(page) = pages.next().await else {
            break;
        };
        budget.record(RequestKind::EcrDescribe);
        let page = page.map_err(|e| sdk_error(e, repo_url))?;
        for detail in page.image_details() {
            let Some(digest) = detail.image_digest() else {
                continue;
            };
            let pushed = pushed_at(detail.image_pushed_at());
            out.extend(detail.image_tags().iter().map(|tag| Tagged {
                tag: tag.clone(),
                digest: digest.to_owned(),
                pushed,
            }));
        }
    }
    Ok(out)
}

pub(crate) async fn identity(
    inner: &Inner,
    repo_url: &str,
    ecr: &EcrRepository,
    creds: Option<&RegistryCredentials>,
) -> Result<EcrIdentity, ImageDiscoveryError> {
    let provider = inner
        .ecr
        .client(&ecr.region, creds)
        .await
        .credentials
        .ok_or_else(|| ImageDiscoveryError::Auth {
            repo: repo_url.to_owned(),
            reason: "no AWS credentials provider configured".into(),
        })?;
    let resolved = provider
        .provide_credentials()
        .await
        .map_err(|e| ImageDiscoveryError::Auth {
            repo: repo_url.to_owned(),
            reason: format!("no usable AWS credentials: {}", DisplayErrorContext(&e)),
        })?;
    let features: Vec<String> = resolved
        .get_property::<Vec<AwsCredentialFeature>>()
        .map(|f| f.iter().map(|x| format!("{x:?}")).collect())
        .unwrap_or_default();
    let source = if matches!(creds, Some(RegistryCredentials::AwsStatic { .. })) {
        "static".to_owned()
    } else if features.iter().any(|f| f.contains("WebId")) {
        "web-identity".to_owned()
    } else if features.iter().any(|f| f == "CredentialsEnvVars") {
        "environment".to_owned()
    } else if features.is_empty() {
        "unknown".to_owned()
    } else {
        features.join(",")
    };
    Ok(EcrIdentity {
        source,
        temporary: resolved.session_token().is_some(),
    })
}

/// A password for ECR's registry API (user `AWS`): the token of `GetAuthorizationToken`, asked
/// with the AWS credentials for `creds` (keys from a Secret, else the SDK's chain: IRSA web
/// identity, environment, ...) and kept per (region, credentials) until shortly before it
/// expires. Shared by discovery (config blobs) and the OCI steps. Errors name `repo_url`, never
/// the token.
pub(crate) async fn authorization_token(
    inner: &Inner,
    repo_url: &str,
    repo: &ImageRepository,
    ecr: &EcrRepository,
    creds: Option<&RegistryCredentials>,
) -> Result<String, ImageDiscoveryError> {
    let key = client_key(&ecr.region, creds);
    // Held across the request so concurrent callers wait for one token instead of each asking.
    let mut tokens = inner.ecr.tokens.lock().await;
    if let Some(t) = tokens.get(&key).filter(|t| t.renew_at > Instant::now()) {
        return Ok(t.password.clone());
    }
    let client = inner.ecr.client(&ecr.region, creds).await.client;
    inner
        .budgets
        .host(&repo.registry)
        .spend(RequestKind::EcrToken)
        .await;
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| sdk_error(e, repo_url))?;
    let unreadable = |what: &str| ImageDiscoveryError::Auth {
        repo: repo_url.to_owned(),
        reason: format!("GetAuthorizationToken returned {what}"),
    };
    let data = out
        .authorization_data()
        .first()
        .ok_or_else(|| unreadable("no token"))?;
    let password = data
        .authorization_token()
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(_, p)| p.to_owned()))
        .ok_or_else(|| unreadable("an unreadable token"))?;
    // Renew 5 minutes before expiry (ECR tokens last 12 h), but keep any token for at least a
    // minute so an odd expiry (moto's is in 2015) does not cost a token request per use.
    let left = data
        .expires_at()
        .and_then(|t| SystemTime::try_from(*t).ok())
        .and_then(|t| t.duration_since(SystemTime::now()).ok())
        .unwrap_or_default()
        .saturating_sub(TOKEN_RENEW_MARGIN);
    tokens.insert(
        key,
        DataPlaneToken {
            password: password.clone(),
            renew_at: Instant::now() + left.max(MIN_TOKEN_REUSE),
        },
    );
    Ok(password)
}

impl EcrDiscovery<'_> {
    fn err<E>(&self, e: SdkError<E>) -> ImageDiscoveryError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        sdk_error(e, self.repo_url)
    }

    /// Every tagged image, one entry per tag, through the `DescribeImages` paginator.
    async fn describe_all(&self) -> Result<Vec<Tagged>, ImageDiscoveryError> {
        describe_tagged(
            &self.client,
            &self.budget,
            self.ecr,
            self.repo,
            self.repo_url,
        )
        .await
    }

    /// Digest: `DescribeImages` of the one tag; an unknown tag gives an empty result.
    async fn digest_strategy(&self) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let Some(tag) = self.plan.digest_tag.as_deref() else {
            return Ok(Vec::new());
        };
        self.budget.spend(RequestKind::EcrDescribe).await;
        let resp = self
            .client
            .describe_images()
            .registry_id(&self.ecr.account)
            .repository_name(&self.repo.path)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        let out = match resp {
            Ok(out) => out,
            Err(SdkError::ServiceError(se)) if se.err().is_image_not_found_exception() => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(self.err(e)),
        };
        let found: Vec<Tagged> = out
            .image_details()
            .iter()
            .filter_map(|d| {
                Some(Tagged {
                    tag: tag.to_owned(),
                    digest: d.image_digest()?.to_owned(),
                    pushed: pushed_at(d.image_pushed_at()),
                })
            })
            .take(1)
            .collect();
        self.take_matching(found).await
    }

    /// The first `limit` of `ordered` that pass the platform filter. Without a filter nothing is
    /// fetched; with one, candidates are checked in windows of the number still needed.
    async fn take_matching(
        &self,
        ordered: Vec<Tagged>,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let limit = self.plan.limit;
        let Some(platform) = self.plan.platform.as_ref() else {
            return Ok(ordered
                .into_iter()
                .take(limit)
                .map(|t| DiscoveredImageReference {
                    tag: t.tag,
                    digest: t.digest,
                    annotations: BTreeMap::new(),
                    created_at: t.pushed.map(to_time),
                })
                .collect());
        };
        let mut found = Vec::with_capacity(limit);
        let mut rest = ordered.as_slice();
        while found.len() < limit && !rest.is_empty() {
            let (window, tail) = rest.split_at((limit - found.len()).min(rest.len()));
            rest = tail;
            let digests: Vec<String> = window.iter().map(|t| t.digest.clone()).collect();
            self.load_manifests(&digests).await?;
            for t in window {
                if let Some(annotations) = self.platform_match(&t.digest, platform).await? {
                    found.push(DiscoveredImageReference {
                        tag: t.tag.clone(),
                        digest: t.digest.clone(),
                        annotations,
                        created_at: t.pushed.map(to_time),
                    });
                }
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// Puts the manifests of `digests` that are not cached yet into the metadata cache.
    async fn load_manifests(&self, digests: &[String]) -> Result<(), ImageDiscoveryError> {
        let mut missing: Vec<&String> = Vec::new();
        for d in digests {
            let hit = self.inner.metadata.get(d).is_some();
            RegistryBudgets::count(if hit {
                &self.inner.budgets.metadata_hits
            } else {
                &self.inner.budgets.metadata_misses
            });
            if !hit && !missing.contains(&d) {
                missing.push(d);
            }
        }
        for chunk in missing.chunks(BATCH_GET_MAX) {
            self.budget.spend(RequestKind::EcrBatchGet).await;
            let out = self
                .client
                .batch_get_image()
                .registry_id(&self.ecr.account)
                .repository_name(&self.repo.path)
                .set_image_ids(Some(
                    chunk
                        .iter()
                        .map(|d| ImageIdentifier::builder().image_digest(d.as_str()).build())
                        .collect(),
                ))
                .set_accepted_media_types(Some(
                    MANIFEST_MEDIA_TYPES
                        .iter()
                        .map(|m| (*m).to_owned())
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| self.err(e))?;
            for image in out.images() {
                let (Some(digest), Some(body)) = (
                    image.image_id().and_then(|i| i.image_digest()),
                    image.image_manifest(),
                ) else {
                    continue;
                };
                match parse_manifest(body.as_bytes(), image.image_manifest_media_type()) {
                    Ok(meta) => self
                        .inner
                        .metadata
                        .insert(digest.to_owned(), Arc::new(meta)),
                    Err(e) => {
                        tracing::warn!(repo = self.repo_url, digest, error = %e, "skipping unreadable manifest");
                    }
                }
            }
            for f in out.failures() {
                tracing::debug!(
                    repo = self.repo_url,
                    image = ?f.image_id(),
                    code = ?f.failure_code(),
                    "BatchGetImage failure"
                );
            }
        }
        Ok(())
    }

    /// `Some(annotations)` when the (cached) manifest of `digest` has `platform`.
    async fn platform_match(
        &self,
        digest: &str,
        platform: &super::types::Platform,
    ) -> Result<Option<BTreeMap<String, String>>, ImageDiscoveryError> {
        let Some(meta) = self.inner.metadata.get(digest) else {
            return Ok(None);
        };
        match &*meta {
            ManifestMeta::Index(ix) => Ok(ix
                .entry_for(platform)
                .map(|e| merge_annotations([&ix.annotations, &e.annotations]))),
            ManifestMeta::Image(img) => {
                let img = match &img.config {
                    Some(_) => img.clone(),
                    None => {
                        let config = self
                            .data_plane()
                            .await?
                            .get_config(&img.config_digest)
                            .await?;
                        let full = super::oci::ImageMeta {
                            config: Some(config),
                            ..img.clone()
                        };
                        self.inner.metadata.insert(
                            digest.to_owned(),
                            Arc::new(ManifestMeta::Image(full.clone())),
                        );
                        full
                    }
                };
                let matches =
                    img.config.as_ref().and_then(|c| c.platform.as_ref()) == Some(platform);
                Ok(matches.then(|| img.annotations.clone()))
            }
        }
    }

    /// ECR's registry API with a token from `GetAuthorizationToken`, for config blobs.
    async fn data_plane(&self) -> Result<DataPlane<'_>, ImageDiscoveryError> {
        let password =
            authorization_token(self.inner, self.repo_url, self.repo, self.ecr, self.creds).await?;
        let base = match &self.inner.config.ecr_registry_endpoint {
            Some(e) => format!("{}/", e.trim_end_matches('/')),
            None => format!("https://{}/", self.repo.registry),
        };
        let base = Url::parse(&base).map_err(|e| ImageDiscoveryError::InvalidSubscription {
            repo: self.repo_url.to_owned(),
            reason: format!("invalid ECR registry endpoint {base:?}: {e}"),
        })?;
        Ok(DataPlane {
            creds: RegistryCredentials::Basic {
                username: "AWS".into(),
                password,
            },
            base,
            d: self,
        })
    }
}

/// Owns the token credentials for an [`OciRepo`] on ECR's registry API.
struct DataPlane<'a> {
    creds: RegistryCredentials,
    base: Url,
    d: &'a EcrDiscovery<'a>,
}

impl DataPlane<'_> {
    async fn get_config(
        &self,
        digest: &str,
    ) -> Result<super::oci::ConfigInfo, ImageDiscoveryError> {
        let repo = OciRepo::new(
            &self.d.inner.oci,
            Arc::clone(&self.d.budget),
            self.base.clone(),
            self.d.repo.registry.clone(),
            self.d.repo.path.clone(),
            self.d.repo_url.to_owned(),
            Some(&self.creds),
            self.d.plan.insecure,
        );
        repo.get_config(digest).await
    }
}
