//! OCI artifacts for the `oci-download` and `oci-push` steps (Kargo `oci_downloader.go`,
//! `oci_pusher.go`): one layer of an image or Helm chart pulled into a file, and an image or
//! index copied (or retagged) to another reference with optional annotations. Through image
//! discovery's registry client ([`super::oci`]), so auth (anonymous, basic, bearer token),
//! plain-HTTP rules and rate limits are the same.
//!
//! The pure parts (reference parsing, layer choice, annotation scopes and rewriting, sizes) are
//! separate from the transfers and unit-tested.

use std::collections::BTreeMap;
use std::path::Path;

use futures::TryStreamExt as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::images::ImageDiscoverer;
use super::oci::{BlobUpload, DOCKER_MANIFEST_LIST, OCI_INDEX, OciRepo, RawDocument};
use super::types::{ImageDiscoveryError, ImageRepository, RegistryCredentials};
use crate::credentials::CredType;

/// The platform an image index is resolved to when pulling, as go-containerregistry (Kargo's
/// client) defaults.
const DEFAULT_OS: &str = "linux";
const DEFAULT_ARCH: &str = "amd64";

// ------------------------------------------------------------------------------------- references

/// A tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

/// An artifact reference as the steps take it: `[oci://]registry/repo:tag` or
/// `[oci://]registry/repo@sha256:...`. `oci://` marks a Helm chart (credentials of type `helm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    pub repo: ImageRepository,
    pub reference: Reference,
    pub helm: bool,
}

impl ArtifactRef {
    /// Parses a reference; a tag or digest is required (Kargo's schema requires one).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (helm, rest) = match text.trim().strip_prefix("oci://") {
            Some(r) => (true, r),
            None => (false, text.trim()),
        };
        let (repo, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| format!("digest {digest:?} is not sha256:<hex>"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("digest {digest:?} is not sha256:<64 hex digits>"));
            }
            (repo, Reference::Digest(digest.to_ascii_lowercase()))
        } else {
            let slash = rest.rfind('/').map_or(0, |i| i + 1);
            let colon = rest[slash..]
                .rfind(':')
                .map(|i| slash + i)
                .ok_or_else(|| "a tag (:tag) or digest (@sha256:...) is required".to_string())?;
            let tag = &rest[colon + 1..];
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !valid {
                return Err(format!("invalid tag {tag:?}"));
            }
            (&rest[..colon], Reference::Tag(tag.to_string()))
        };
        Ok(Self {
            repo: ImageRepository::parse(repo)?,
            reference,
            helm,
        })
    }

    /// The tag or digest, as the registry API takes it.
    pub fn reference(&self) -> &str {
        match &self.reference {
            Reference::Tag(t) | Reference::Digest(t) => t,
        }
    }

    /// `registry/repo`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.repo.registry, self.repo.path)
    }

    /// `registry/repo:tag` or `registry/repo@digest` (no `oci://`, as Kargo outputs it).
    pub fn name(&self) -> String {
        match &self.reference {
            Reference::Tag(t) => format!("{}:{t}", self.repository()),
            Reference::Digest(d) => format!("{}@{d}", self.repository()),
        }
    }

    /// The credential type to look up: `helm` for `oci://` references, else `image`.
    pub fn cred_type(&self) -> CredType {
        if self.helm {
            CredType::Helm
        } else {
            CredType::Image
        }
    }

    /// The URL credentials are matched against (`oci://registry/repo` for Helm, as Kargo).
    pub fn cred_url(&self) -> String {
        if self.helm {
            format!("oci://{}", self.repository())
        } else {
            self.repository()
        }
    }
}

// ---------------------------------------------------------------------------------------- errors

/// What can go wrong moving an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Retrying cannot help: a layer that is not there, a size over the limit, an unsupported
    /// manifest.
    #[error("{0}")]
    Terminal(String),
    /// The registry failed or refused (retryable unless it is an auth problem).
    #[error(transparent)]
    Registry(#[from] ImageDiscoveryError),
    /// Writing the file failed.
    #[error("{0}")]
    Io(String),
}

// ------------------------------------------------------------------------------------- pure parts

/// One descriptor of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

fn descriptor(v: &Value) -> Option<Descriptor> {
    Some(Descriptor {
        media_type: v.get("mediaType")?.as_str()?.to_string(),
        digest: v.get("digest")?.as_str()?.to_string(),
        size: v.get("size")?.as_u64()?,
    })
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// The descriptors of an image manifest: config first, then layers.
pub fn image_blobs(manifest: &Value) -> Result<(Descriptor, Vec<Descriptor>), String> {
    let config = manifest
        .get("config")
        .and_then(descriptor)
        .ok_or("manifest has no valid config descriptor")?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|l| l.iter().map(descriptor).collect::<Option<Vec<_>>>())
        .unwrap_or(Some(Vec::new()))
        .ok_or("manifest has an invalid layer descriptor")?;
    Ok((config, layers))
}

/// Kargo's layer choice: the first layer of `media_type` when given, else the first layer.
pub fn select_layer<'a>(
    layers: &'a [Descriptor],
    media_type: Option<&str>,
) -> Result<&'a Descriptor, String> {
    if layers.is_empty() {
        return Err("image has no layers".into());
    }
    match media_type {
        Some(want) => layers.iter().find(|l| l.media_type == want).ok_or_else(|| {
            let have: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
            format!(
                "no layer found with media type {want:?} (layers: {})",
                have.join(", ")
            )
        }),
        None => Ok(&layers[0]),
    }
}

/// The digest of the index entry for the default platform (linux/amd64).
pub fn default_platform_entry(index: &Value) -> Option<String> {
    index.get("manifests")?.as_array()?.iter().find_map(|m| {
        let p = m.get("platform")?;
        (p.get("os")?.as_str()? == DEFAULT_OS && p.get("architecture")?.as_str()? == DEFAULT_ARCH)
            .then(|| m.get("digest")?.as_str().map(str::to_string))?
    })
}

/// Annotations split by scope: `index:`-prefixed keys go to an index, `manifest:`-prefixed and
/// unprefixed ones to image manifests (Kargo's `parseAnnotationScopes`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AnnotationScopes {
    pub index: BTreeMap<String, String>,
    pub manifest: BTreeMap<String, String>,
}

pub fn annotation_scopes(annotations: &BTreeMap<String, String>) -> AnnotationScopes {
    let mut scopes = AnnotationScopes::default();
    for (k, v) in annotations {
        if let Some(k) = k.strip_prefix("index:") {
            scopes.index.insert(k.to_string(), v.clone());
        } else if let Some(k) = k.strip_prefix("manifest:") {
            scopes.manifest.insert(k.to_string(), v.clone());
        } else {
            scopes.manifest.insert(k.clone(), v.clone());
        }
    }
    scopes
}

/// `doc` with `annotations` merged into its `annotations` (overriding same keys). Without
/// annotations the bytes are returned unchanged, so the digest stays the source's.
pub fn annotate(doc: &[u8], annotations: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    if annotations.is_empty() {
        return Ok(doc.to_vec());
    }
    let mut v: Value = serde_json::from_slice(doc).map_err(|e| format!("invalid manifest: {e}"))?;
    let obj = v.as_object_mut().ok_or("manifest is not a JSON object")?;
    let entry = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if !entry.is_object() {
        *entry = Value::Object(Default::default());
    }
    if let Some(map) = entry.as_object_mut() {
        for (k, val) in annotations {
            map.insert(k.clone(), Value::String(val.clone()));
        }
    }
    serde_json::to_vec(&v).map_err(|e| format!("cannot serialize manifest: {e}"))
}

/// Bytes as Kargo's messages print them (`1.5 GiB`).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

// -------------------------------------------------------------------------------------- transfers

/// A layer written to a file.
#[derive(Debug, Clone)]
pub struct PulledLayer {
    /// The digest of the image manifest the layer belongs to.
    pub manifest_digest: String,
    pub layer: Descriptor,
}

/// An image manifest and its blobs, read from the source.
struct SourceImage {
    doc: RawDocument,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl SourceImage {
    fn size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

fn parse_json(doc: &RawDocument) -> Result<Value, ArtifactError> {
    serde_json::from_slice(&doc.bytes)
        .map_err(|e| ArtifactError::Terminal(format!("manifest {} is not JSON: {e}", doc.digest)))
}

async fn fetch(
    repo: &OciRepo<'_>,
    what: &str,
    reference: &str,
) -> Result<RawDocument, ArtifactError> {
    repo.get_raw_manifest(reference)
        .await?
        .ok_or_else(|| ArtifactError::Terminal(format!("{what} not found")))
}

async fn fetch_image(
    repo: &OciRepo<'_>,
    what: &str,
    reference: &str,
) -> Result<SourceImage, ArtifactError> {
    let doc = fetch(repo, what, reference).await?;
    let json = parse_json(&doc)?;
    let (config, layers) =
        image_blobs(&json).map_err(|e| ArtifactError::Terminal(format!("{what}: {e}")))?;
    Ok(SourceImage {
        doc,
        config,
        layers,
    })
}

impl ImageDiscoverer {
    /// Writes one layer of `artifact` (the first of `media_type`, else the first) to `out`,
    /// through a temporary file in `out`'s directory renamed into place. A layer over
    /// `max_bytes` (declared or streamed) is refused; the content is checked against its digest.
    pub async fn pull_layer(
        &self,
        artifact: &ArtifactRef,
        creds: Option<&RegistryCredentials>,
        insecure: bool,
        media_type: Option<&str>,
        max_bytes: u64,
        out: &Path,
    ) -> Result<PulledLayer, ArtifactError> {
        let repo_url = artifact.repository();
        let repo = self.session(&repo_url, &artifact.repo, creds, insecure)?;
        let name = artifact.name();
        let mut doc = fetch(&repo, &format!("artifact {name}"), artifact.reference()).await?;
        if is_index(&doc.media_type) {
            let entry = default_platform_entry(&parse_json(&doc)?).ok_or_else(|| {
                ArtifactError::Terminal(format!(
                    "{name} is an image index without a {DEFAULT_OS}/{DEFAULT_ARCH} image"
                ))
            })?;
            doc = fetch(
                &repo,
                &format!("{name} ({DEFAULT_OS}/{DEFAULT_ARCH} image)"),
                &entry,
            )
            .await?;
        }
        let (_, layers) = image_blobs(&parse_json(&doc)?)
            .map_err(|e| ArtifactError::Terminal(format!("{name}: {e}")))?;
        let layer = select_layer(&layers, media_type)
            .map_err(|e| ArtifactError::Terminal(format!("{name}: {e}")))?
            .clone();
        if layer.size > max_bytes {
            return Err(ArtifactError::Terminal(format!(
                "layer size {} exceeds maximum allowed size of {max_bytes} bytes",
                layer.size
            )));
        }
        let dir = out.parent().unwrap_or(Path::new("."));
        let io = |what: &str, e: std::io::Error| ArtifactError::Io(format!("{what}: {e}"));
        let tmp = tempfile::Builder::new()
            .prefix(&format!(
                ".{}.tmp",
                out.file_name().unwrap_or_default().to_string_lossy()
            ))
            .tempfile_in(dir)
            .map_err(|e| io("creating a temporary file", e))?;
        let handle = tmp
            .reopen()
            .map_err(|e| io("opening the temporary file", e))?;
        let mut file = tokio::fs::File::from_std(handle);
        let mut resp = repo.get_blob(&layer.digest).await?;
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        while let Some(chunk) =
            resp.chunk()
                .await
                .map_err(|e| ImageDiscoveryError::Unreachable {
                    repo: repo_url.clone(),
                    reason: format!("reading layer {}: {e}", layer.digest),
                })?
        {
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(ArtifactError::Terminal(format!(
                    "layer {} is larger than the maximum allowed size of {max_bytes} bytes",
                    layer.digest
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| io("writing the temporary file", e))?;
        }
        file.flush()
            .await
            .map_err(|e| io("writing the temporary file", e))?;
        drop(file);
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if layer.digest.starts_with("sha256:") && got != layer.digest {
            return Err(ImageDiscoveryError::Protocol {
                repo: repo_url,
                reason: format!("layer {} has content digest {got}", layer.digest),
            }
            .into());
        }
        tmp.persist(out)
            .map_err(|e| io(&format!("moving the layer to {}", out.display()), e.error))?;
        Ok(PulledLayer {
            manifest_digest: doc.digest,
            layer,
        })
    }

    /// Copies `src` (an image or index) to `dst` (a tag), adding scoped `annotations`, and
    /// returns the digest pushed. Across repositories the compressed size (configs and layers,
    /// from the manifests) must not exceed `max_size` (`None`: no limit; `Some(0)`: copying
    /// across repositories is disabled), as Kargo's `MAX_OCI_PUSH_ARTIFACT_SIZE`.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_artifact(
        &self,
        src: &ArtifactRef,
        src_creds: Option<&RegistryCredentials>,
        dst: &ArtifactRef,
        dst_creds: Option<&RegistryCredentials>,
        insecure: bool,
        annotations: &BTreeMap<String, String>,
        max_size: Option<u64>,
    ) -> Result<String, ArtifactError> {
        let src_url = src.repository();
        let dst_url = dst.repository();
        let from = self.session(&src_url, &src.repo, src_creds, insecure)?;
        let to = self.session(&dst_url, &dst.repo, dst_creds, insecure)?;
        let name = src.name();
        let top = fetch(&from, &format!("source artifact {name}"), src.reference()).await?;
        let scopes = annotation_scopes(annotations);
        let cross_repo = src_url != dst_url;
        let same_registry = src.repo.registry == dst.repo.registry;
        let limit = |size: u64| -> Result<(), ArtifactError> {
            match max_size {
                Some(0) if cross_repo => Err(ArtifactError::Terminal(
                    "cross-repository push is disabled".into(),
                )),
                Some(max) if cross_repo && size > max => Err(ArtifactError::Terminal(format!(
                    "compressed artifact size {} exceeds maximum allowed size of {}",
                    format_bytes(size),
                    format_bytes(max)
                ))),
                _ => Ok(()),
            }
        };
        let copier = BlobCopier {
            from: &from,
            to: &to,
            same_registry,
        };

        if !is_index(&top.media_type) {
            let json = parse_json(&top)?;
            let (config, layers) = image_blobs(&json).map_err(|e| {
                ArtifactError::Terminal(format!("{name}: unsupported artifact: {e}"))
            })?;
            let image = SourceImage {
                doc: top,
                config,
                layers,
            };
            limit(image.size())?;
            copier.blobs(&image).await?;
            let bytes =
                annotate(&image.doc.bytes, &scopes.manifest).map_err(ArtifactError::Terminal)?;
            return Ok(to
                .put_manifest(dst.reference(), &image.doc.media_type, &bytes)
                .await?);
        }

        // An index: every child image (and its blobs) first, then the index.
        let mut index = parse_json(&top)?;
        let entries = index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut children = Vec::with_capacity(entries.len());
        for entry in &entries {
            let d = descriptor(entry)
                .ok_or_else(|| ArtifactError::Terminal(format!("{name}: invalid index entry")))?;
            if is_index(&d.media_type) {
                return Err(ArtifactError::Terminal(format!(
                    "{name}: nested image indexes are not supported"
                )));
            }
            children
                .push(fetch_image(&from, &format!("{name}: child {}", d.digest), &d.digest).await?);
        }
        limit(children.iter().map(SourceImage::size).sum())?;
        let mut rewritten = Vec::with_capacity(entries.len());
        for (mut entry, child) in entries.into_iter().zip(&children) {
            copier.blobs(child).await?;
            let bytes =
                annotate(&child.doc.bytes, &scopes.manifest).map_err(ArtifactError::Terminal)?;
            let digest = to
                .put_manifest(
                    &super::oci::sha256_digest(&bytes),
                    &child.doc.media_type,
                    &bytes,
                )
                .await?;
            entry["digest"] = Value::String(digest);
            entry["size"] = Value::from(bytes.len() as u64);
            rewritten.push(entry);
        }
        let bytes = if scopes.manifest.is_empty() {
            top.bytes.clone()
        } else {
            index["manifests"] = Value::Array(rewritten);
            serde_json::to_vec(&index).map_err(|e| ArtifactError::Terminal(e.to_string()))?
        };
        let bytes = annotate(&bytes, &scopes.index).map_err(ArtifactError::Terminal)?;
        Ok(to
            .put_manifest(dst.reference(), &top.media_type, &bytes)
            .await?)
    }
}

/// Copies blobs the destination does not have: mounted when both repositories are on one
/// registry, else streamed from the source into a monolithic upload.
struct BlobCopier<'a, 'b> {
    from: &'a OciRepo<'b>,
    to: &'a OciRepo<'b>,
    same_registry: bool,
}

impl BlobCopier<'_, '_> {
    async fn blobs(&self, image: &SourceImage) -> Result<(), ArtifactError> {
        for d in std::iter::once(&image.config).chain(&image.layers) {
            self.blob(d).await?;
        }
        Ok(())
    }

    async fn blob(&self, d: &Descriptor) -> Result<(), ArtifactError> {
        if self.to.has_blob(&d.digest).await? {
            return Ok(());
        }
        let mount = (self.same_registry && self.from.path() != self.to.path())
            .then(|| (d.digest.as_str(), self.from.path()));
        let session = match self.to.start_upload(mount).await? {
            BlobUpload::Mounted => return Ok(()),
            BlobUpload::Session(url) => url,
        };
        let resp = self.from.get_blob(&d.digest).await?;
        let body = reqwest::Body::wrap_stream(resp.bytes_stream().map_err(std::io::Error::other));
        self.to
            .finish_upload(session, &d.digest, d.size, body)
            .await?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
