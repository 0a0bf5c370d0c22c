//! What the OCI steps need beyond discovery's reads: raw manifests, blob streams, and the
//! writes of a copy (blob existence, cross-repository mount, monolithic upload, manifest PUT).
//! Same client, auth and rate limits as discovery; bearer tokens are requested with the scope
//! the registry's challenge names, which for a write includes `push`.

use reqwest::header;
use reqwest::{Method, StatusCode, Url};

use super::{MANIFEST_MEDIA_TYPES, MAX_DOCUMENT_BYTES, OciRepo, read_limited, sha256_digest};
use crate::discovery::registry_limits::RequestKind;
use crate::discovery::types::ImageDiscoveryError;

/// A manifest or index as stored: its bytes, media type and digest.
#[derive(Debug, Clone)]
pub(crate) struct RawDocument {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

/// Where a blob upload stands after asking the registry to mount it.
pub(crate) enum BlobUpload {
    /// Mounted from the other repository: nothing to send.
    Mounted,
    /// An upload session to PUT the blob to.
    Session(Url),
}

impl OciRepo<'_> {
    /// The manifest `reference` (tag or digest) as stored; `None` on 404. Fetched by digest, the
    /// bytes are checked against it.
    pub(crate) async fn get_raw_manifest(
        &self,
        reference: &str,
    ) -> Result<Option<RawDocument>, ImageDiscoveryError> {
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
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let bytes = read_limited(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| self.transport_error(&e))?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(self.protocol(format!("manifest {reference} has content digest {digest}")));
        }
        // The document's own mediaType wins over a generic Content-Type.
        let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
        let media_type = declared.or(content_type).unwrap_or_default();
        Ok(Some(RawDocument {
            bytes,
            media_type,
            digest,
        }))
    }

    /// `GET` of a blob, for the caller to stream.
    pub(crate) async fn get_blob(
        &self,
        digest: &str,
    ) -> Result<reqwest::Response, ImageDiscoveryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self.send(RequestKind::Blob, Method::GET, url, None).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let what = format!("blob {digest}");
        Err(match self.status_error(resp, &what).await {
            ImageDiscoveryError::NotFound { repo } => ImageDiscoveryError::Protocol {
                repo,
                reason: format!("{what} not found"),
            },
            e => e,
        })
    }

    /// Whether the repository has the blob (`HEAD`).
    pub(crate) async fn has_blob(&self, digest: &str) -> Result<bool, ImageDiscoveryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let resp = self
            .send(RequestKind::Head, Method::HEAD, url, None)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(resp, "blob HEAD").await),
        }
    }

    /// Starts a blob upload, asking to mount `digest` from `from` (a repository path on the same
    /// registry) when given; registries that cannot mount open an upload session instead.
    pub(crate) async fn start_upload(
        &self,
        mount: Option<(&str, &str)>,
    ) -> Result<BlobUpload, ImageDiscoveryError> {
        let mut url = self.url("blobs/uploads/")?;
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from);
        }
        let resp = self
            .send_body(
                RequestKind::Blob,
                Method::POST,
                url.clone(),
                None,
                Some(("application/octet-stream", &[])),
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(BlobUpload::Mounted),
            StatusCode::ACCEPTED => {
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| self.protocol("blob upload without a Location".into()))?;
                let session = url.join(location).map_err(|e| {
                    self.protocol(format!("invalid upload Location {location:?}: {e}"))
                })?;
                Ok(BlobUpload::Session(session))
            }
            _ => Err(self.status_error(resp, "blob upload start").await),
        }
    }

    /// Completes an upload session with the whole blob in one `PUT`. The body is streamed, so a
    /// rejected credential is not answered again: the session's `POST` already was.
    pub(crate) async fn finish_upload(
        &self,
        mut session: Url,
        digest: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), ImageDiscoveryError> {
        session.query_pairs_mut().append_pair("digest", digest);
        let mut req = self
            .http()
            .put(session)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body);
        if let Some(a) = self.authorization() {
            req = req.header(header::AUTHORIZATION, a);
        }
        self.budget.spend(RequestKind::Blob).await;
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self
                .status_error(resp, &format!("blob upload {digest}"))
                .await)
        }
    }

    /// `PUT` of a manifest or index under `reference`; its digest.
    pub(crate) async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, ImageDiscoveryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let resp = self
            .send_body(
                RequestKind::Manifest,
                Method::PUT,
                url,
                None,
                Some((media_type, bytes)),
            )
            .await?;
        if resp.status().is_success() {
            Ok(sha256_digest(bytes))
        } else {
            Err(self
                .status_error(resp, &format!("manifest PUT {reference}"))
                .await)
        }
    }

    /// The repository path, as `from` of a mount names it.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }
}
