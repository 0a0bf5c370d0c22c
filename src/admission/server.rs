//! The admission webhook's HTTPS server. The API server only calls webhooks over TLS; the
//! certificate comes from a directory holding `tls.crt` and `tls.key` (a mounted `kubernetes.io/tls`
//! Secret) and is reloaded when those files change, so a rotation (cert-manager, or a `helm
//! upgrade` that renews it) needs no restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum_server::tls_rustls::RustlsConfig;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The path the chart's MutatingWebhookConfiguration calls.
pub const MUTATE_PROMOTION_PATH: &str = "/mutate-promotion";
/// The path the chart's ValidatingWebhookConfiguration calls for Projects.
pub const VALIDATE_PROJECT_PATH: &str = "/validate-project";

/// How often the certificate files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook certificate {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("webhook server on {addr}: {source}")]
    Serve {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The certificate and key of `dir`.
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn new(dir: &Path) -> Self {
        Self {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    /// The newest modification time of the two files (following the symlinks a Secret volume
    /// swaps on update).
    fn modified(&self) -> Option<SystemTime> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        m(&self.cert).max(m(&self.key))
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, WebhookError> {
        let bad = |path: &Path, reason: String| WebhookError::Certificate {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(&self.cert, format!("reading PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad(&self.cert, "holds no PEM certificate".into()));
        }
        // The error of a key file never quotes the key.
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| bad(&self.key, format!("reading the PEM private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&self.cert, format!("does not match its key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

async fn mutate_promotion(
    axum::extract::State(client): axum::extract::State<Option<kube::Client>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(super::review_promotion_checked(client.as_ref(), review).await)
}

async fn validate_project(
    axum::extract::State(client): axum::extract::State<Option<kube::Client>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(super::project::review_project(client.as_ref(), review).await)
}

/// The webhook's routes. `client` creates project namespaces; without one, Projects are
/// admitted unchanged and the reconciler creates them.
pub fn router(client: Option<kube::Client>) -> axum::Router {
    axum::Router::new()
        .route(MUTATE_PROMOTION_PATH, axum::routing::post(mutate_promotion))
        .route(VALIDATE_PROJECT_PATH, axum::routing::post(validate_project))
        .with_state(client)
}

/// Loads the certificate of `cert_dir` (an error here stops the process with a clear message) and
/// serves the webhook on `addr` until the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    cert_dir: &Path,
    client: Option<kube::Client>,
) -> Result<(), WebhookError> {
    serve_with_reload(addr, cert_dir, RELOAD_CHECK, client).await
}

/// [`serve`], checking the certificate files for a change every `check`.
pub async fn serve_with_reload(
    addr: std::net::SocketAddr,
    cert_dir: &Path,
    check: Duration,
    client: Option<kube::Client>,
) -> Result<(), WebhookError> {
    let files = CertFiles::new(cert_dir);
    let tls = RustlsConfig::from_config(Arc::new(files.server_config()?));
    tokio::spawn(reload(files, tls.clone(), check));
    tracing::info!(%addr, path = MUTATE_PROMOTION_PATH, "admission webhook listening");
    axum_server::bind_rustls(addr, tls)
        .serve(router(client).into_make_service())
        .await
        .map_err(|source| WebhookError::Serve { addr, source })
}

/// Swaps in a renewed certificate. A broken renewal keeps the old one serving and says why.
async fn reload(files: CertFiles, tls: RustlsConfig, check: Duration) {
    let mut seen = files.modified();
    loop {
        tokio::time::sleep(check).await;
        let now = files.modified();
        if now == seen {
            continue;
        }
        match files.server_config() {
            Ok(config) => {
                tls.reload_from_config(Arc::new(config));
                seen = now;
                tracing::info!(cert = %files.cert.display(), "reloaded the webhook certificate");
            }
            Err(e) => tracing::warn!(error = %e, "keeping the previous webhook certificate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haul_testenv::pki::Ca;

    fn write_cert(dir: &Path, ca: &Ca) {
        let pair = ca.serving_cert().expect("serving cert");
        // A Secret volume swaps both files at once; writing the key first keeps a reload from
        // pairing a new certificate with the old key for long.
        std::fs::write(dir.join("tls.key"), pair.key_pem).expect("key");
        std::fs::write(dir.join("tls.crt"), pair.cert_pem).expect("cert");
    }

    fn client(ca: &Ca) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).expect("pem")])
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
    }

    async fn review(client: &reqwest::Client, port: u16) -> Result<serde_json::Value, String> {
        let body = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1", "operation": "CREATE", "name": "p", "namespace": "ns",
                "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Promotion"},
                "resource": {"group": "kargo.akuity.io", "version": "v1alpha1", "resource": "promotions"},
                "userInfo": {"username": "alice"},
                "object": {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
                           "metadata": {"name": "p"}, "spec": {"stage": "dev", "freight": "f"}}
            }
        });
        let url = format!("https://localhost:{port}{MUTATE_PROMOTION_PATH}");
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// Serves reviews over TLS, and a rotated certificate (signed by a new CA) is picked up
    /// without a restart.
    #[tokio::test]
    async fn serves_over_tls_and_reloads_a_rotated_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old_ca, new_ca) = (Ca::new("old").expect("ca"), Ca::new("new").expect("ca"));
        write_cert(dir.path(), &old_ca);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let path = dir.path().to_path_buf();
        let server = tokio::spawn(async move {
            serve_with_reload(addr, &path, Duration::from_millis(100), None).await
        });

        let mut answer = Err(String::new());
        for _ in 0..50 {
            answer = review(&client(&old_ca), port).await;
            if answer.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer = answer.expect("the webhook answers over TLS");
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");

        // mtimes have whole-second granularity on some file systems.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        write_cert(dir.path(), &new_ca);
        let mut rotated = false;
        for _ in 0..50 {
            if review(&client(&new_ca), port).await.is_ok() {
                rotated = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(rotated, "the rotated certificate was not served within 5 s");
        assert!(
            review(&client(&old_ca), port).await.is_err(),
            "the old certificate is still served"
        );
        server.abort();
    }

    #[test]
    fn a_missing_or_mismatched_certificate_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles::new(dir.path());
        let e = files.server_config().expect_err("no files").to_string();
        assert!(
            e.contains("tls.crt") && e.contains("reading PEM certificates"),
            "{e}"
        );

        let ca = Ca::new("ca").expect("ca");
        write_cert(dir.path(), &ca);
        let other = ca.serving_cert().expect("cert");
        std::fs::write(dir.path().join("tls.key"), other.key_pem).expect("key");
        let e = files.server_config().expect_err("mismatch").to_string();
        assert!(e.contains("does not match its key"), "{e}");
        assert!(
            !e.contains("PRIVATE KEY"),
            "the key leaked into the error: {e}"
        );
    }
}
