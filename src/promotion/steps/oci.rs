//! oci-download and oci-push (Kargo `oci_downloader.go`, `oci_pusher.go`): one layer of an OCI
//! artifact (image or `oci://` Helm chart) written to a file in the work directory, and an
//! artifact copied or retagged to another reference with optional annotations. The transfers
//! are `crate::discovery::artifacts`, over image discovery's registry client; credentials are
//! the project's `image` Secrets (`helm` for `oci://` references), as discovery finds them; for
//! ECR, AWS keys or the AWS credentials chain (IRSA) give a registry token, as in discovery.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::{Needs, step};
use super::toolkit::{StepError, StepOutcome, lenient, path_in};
use crate::discovery::artifacts::{ArtifactError, ArtifactRef, Reference};
use crate::discovery::{
    DiscovererConfig, ImageDiscoverer, ImageDiscoveryError, RegistryCredentials,
};

/// Kargo's limit on a downloaded layer.
pub const MAX_DOWNLOAD_BYTES: u64 = 100 << 20;
/// Kargo's default limit on the compressed size of an artifact pushed across repositories.
pub const DEFAULT_MAX_PUSH_BYTES: i64 = 1 << 30;
/// Kargo's setting for it: `-1` no limit, `0` no cross-repository push.
pub const MAX_PUSH_ENV: &str = "MAX_OCI_PUSH_ARTIFACT_SIZE";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownloadConfig {
    /// `registry/repo:tag` or `registry/repo@sha256:...`; `oci://` for a Helm chart.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    image_ref: String,
    /// The file to write, in the work directory.
    out_path: String,
    /// Replace an existing file (default: fail when it exists).
    #[serde(default)]
    allow_overwrite: bool,
    /// The media type of the layer to write (default: the first layer).
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushConfig {
    /// The source, by tag or digest; `oci://` for a Helm chart.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    src_ref: String,
    /// The destination, with a tag.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    dest_ref: String,
    /// Annotations to set; `index:` / `manifest:` prefixes choose the index or the image
    /// manifests (unprefixed: image manifests).
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
}

step! {
    pub struct OciDownload = "oci-download", DownloadConfig,
    |cfg, env| download(cfg, env)
}

step! {
    pub struct OciPush = "oci-push", PushConfig,
    needs: Needs { push: true, ..Needs::NOTHING },
    |cfg, env| push(cfg, env)
}

/// One client for the steps of this process: connection pools, learnt auth, rate limits and
/// ECR clients and tokens are shared across Promotions, as discovery shares them across
/// Warehouses.
fn registry() -> Result<&'static ImageDiscoverer, StepError> {
    static CLIENT: OnceLock<ImageDiscoverer> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let c = ImageDiscoverer::new(DiscovererConfig::from_env())
        .map_err(|e| StepError::Errored(format!("cannot build the registry client: {e}")))?;
    Ok(CLIENT.get_or_init(|| c))
}

fn parse_ref(text: &str, field: &str) -> Result<ArtifactRef, StepError> {
    ArtifactRef::parse(text)
        .map_err(|e| StepError::Failed(format!("invalid config: config.{field}: {text:?}: {e}")))
}

/// The credentials for an artifact's repository, from the project's Secrets.
async fn credentials(
    env: &StepEnv<'_>,
    artifact: &ArtifactRef,
) -> Result<Option<RegistryCredentials>, StepError> {
    let url = artifact.cred_url();
    let found = env.credentials.registry(artifact.cred_type(), &url).await?;
    let creds = crate::discovery::images::registry_credentials(found.as_ref())
        .map_err(|e| StepError::Failed(format!("credentials for {url}: {e}")))?;
    // ECR with AWS keys or IRSA: a registry token, as image discovery gets it.
    registry()?
        .registry_api_credentials(&artifact.repo, creds)
        .await
        .map_err(|e| ecr_token_error(&e))
}

/// A failed ECR token request: retried when STS/ECR were unreachable or throttled, else
/// terminal (no usable AWS credentials, access denied). The message names the repository.
fn ecr_token_error(e: &ImageDiscoveryError) -> StepError {
    let m = format!("getting an ECR authorization token: {e}");
    if e.is_transient() {
        StepError::Retryable(m)
    } else {
        StepError::Failed(m)
    }
}

fn step_error(e: ArtifactError) -> StepError {
    match e {
        ArtifactError::Terminal(m) => StepError::Failed(m),
        ArtifactError::Io(m) => StepError::Errored(m),
        ArtifactError::Registry(e) => StepError::Retryable(e.to_string()),
    }
}

async fn download(cfg: DownloadConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let artifact = parse_ref(&cfg.image_ref, "imageRef")?;
    if cfg.media_type.as_deref() == Some("") {
        return Err(StepError::Failed(
            "invalid config: config.mediaType: must not be empty when given".into(),
        ));
    }
    let out = path_in(env, &cfg.out_path, "outPath")?;
    if !cfg.allow_overwrite && std::fs::symlink_metadata(&out).is_ok() {
        return Err(StepError::Failed(format!(
            "file already exists at {} and overwrite is not allowed",
            cfg.out_path
        )));
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            StepError::Errored(format!("creating the directory of {}: {e}", cfg.out_path))
        })?;
    }
    let creds = credentials(env, &artifact).await?;
    let pulled = registry()?
        .pull_layer(
            &artifact,
            creds.as_ref(),
            cfg.insecure_skip_tls_verify,
            cfg.media_type.as_deref(),
            MAX_DOWNLOAD_BYTES,
            &out,
        )
        .await
        .map_err(step_error)?;
    tracing::info!(artifact = %artifact.name(), layer = %pulled.layer.digest, bytes = pulled.layer.size, out = %cfg.out_path, "downloaded OCI layer");
    // Kargo's step has no output.
    Ok(StepOutcome::succeeded(Map::new()))
}

/// `MAX_OCI_PUSH_ARTIFACT_SIZE` as a limit: `None` for no limit (`-1`).
fn max_push_size(value: Option<&str>) -> Result<Option<u64>, String> {
    let n = match value.map(str::trim) {
        None | Some("") => DEFAULT_MAX_PUSH_BYTES,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| format!("{MAX_PUSH_ENV}={v:?} is not a number of bytes"))?,
    };
    Ok(u64::try_from(n).ok())
}

async fn push(cfg: PushConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let src = parse_ref(&cfg.src_ref, "srcRef")?;
    let dst = parse_ref(&cfg.dest_ref, "destRef")?;
    let Reference::Tag(tag) = dst.reference.clone() else {
        return Err(StepError::Failed(format!(
            "invalid config: config.destRef: {:?} must name a tag, not a digest",
            cfg.dest_ref
        )));
    };
    let max =
        max_push_size(std::env::var(MAX_PUSH_ENV).ok().as_deref()).map_err(StepError::Errored)?;
    let src_creds = credentials(env, &src).await?;
    let dst_creds = credentials(env, &dst).await?;
    let digest = registry()?
        .copy_artifact(
            &src,
            src_creds.as_ref(),
            &dst,
            dst_creds.as_ref(),
            cfg.insecure_skip_tls_verify,
            &cfg.annotations,
            max,
        )
        .await
        .map_err(step_error)?;
    tracing::info!(src = %src.name(), dest = %dst.name(), %digest, "pushed OCI artifact");
    let mut out = Map::new();
    out.insert("image".into(), Value::String(dst.name()));
    out.insert("digest".into(), Value::String(digest));
    out.insert("tag".into(), Value::String(tag));
    Ok(StepOutcome::succeeded(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_size_limit_setting() {
        assert_eq!(max_push_size(None), Ok(Some(1 << 30)));
        assert_eq!(max_push_size(Some("-1")), Ok(None));
        assert_eq!(max_push_size(Some("0")), Ok(Some(0)));
        assert_eq!(max_push_size(Some("2048")), Ok(Some(2048)));
        assert!(max_push_size(Some("1G")).is_err());
    }
}
