//! Seeding a distribution registry over its HTTP API: images with distinct configs (and
//! creation times) under semver tags, pushed 16 at a time. Shared by the benches that need a
//! repository with many tags.

// Each bench includes this file with #[path] and uses a different part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub type BenchResult<T> = Result<T, String>;

pub fn sha256(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Tag `i`: `1.<i/100>.<i%100>`, so every tag is a semver and SemVer and Lexical orders differ.
pub fn tag(i: usize) -> String {
    format!("1.{}.{}", i / 100, i % 100)
}

/// Creation time of image `i`: a permutation of minutes, so NewestBuild's order is neither the
/// tag order nor the push order.
pub fn created(i: usize, n: usize) -> String {
    let minutes = (i * 7919) % n.max(1);
    let t = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + 60 * minutes as i64)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    t.to_string()
}

pub async fn upload_blob(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    bytes: Vec<u8>,
) -> BenchResult<String> {
    let digest = sha256(&bytes);
    // distribution 2.8 has no single-POST upload: POST for a location, then PUT the bytes.
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("blob upload start: HTTP {}", resp.status()))?
        .to_owned();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let resp = http
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().as_u16() != 201 {
        return Err(format!("blob upload: HTTP {}", resp.status()));
    }
    Ok(digest)
}

/// Pushes one image (a distinct config with creation time `created`, the shared `layer`) as `tag`.
pub async fn push_image(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    layer: &str,
    tag: &str,
    created: &str,
) -> BenchResult<()> {
    let config = serde_json::to_vec(&json!({
        "created": created, "os": "linux", "architecture": "amd64",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [sha256(b"layer")]},
    }))
    .map_err(|e| e.to_string())?;
    let size = config.len();
    let config_digest = upload_blob(http, base, repo, config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 5}],
    }))
    .map_err(|e| e.to_string())?;
    let resp = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().as_u16() != 201 {
        return Err(format!("manifest put: HTTP {}", resp.status()));
    }
    Ok(())
}

/// Pushes `n` images with distinct configs (and creation times) under `n` tags, at most
/// `budget` long. Returns how many were pushed and the time taken.
pub async fn seed_oci(
    base: &str,
    repo: &str,
    n: usize,
    budget: Duration,
) -> BenchResult<(usize, Duration)> {
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let layer = upload_blob(&http, base, repo, b"layer".to_vec()).await?;
    let results: Vec<BenchResult<bool>> = stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let layer = layer.clone();
            async move {
                if t0.elapsed() > budget {
                    return Ok(false);
                }
                push_image(&http, base, repo, &layer, &tag(i), &created(i, n)).await?;
                Ok(true)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut pushed = 0;
    for r in results {
        if r? {
            pushed += 1;
        }
    }
    Ok((pushed, t0.elapsed()))
}
