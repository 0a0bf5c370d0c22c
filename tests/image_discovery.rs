//! Image discovery against real registries: Debian's docker-registry (anonymous and htpasswd)
//! and moto's ECR + STS, all on 127.0.0.1.
//!
//! Services: those named by `HAUL_TEST_MOTO_URL`, `HAUL_TEST_REGISTRY`, `HAUL_TEST_REGISTRY_AUTH`,
//! `HAUL_TEST_REGISTRY_USER` and `HAUL_TEST_REGISTRY_PASSWORD` when set (e.g. by a CI script);
//! otherwise one set started with `hack/test-services.sh start <tmpdir>` on first use and shared
//! by the tests of this binary. They are stopped by an `atexit` hook and, should the binary be
//! killed, by a watchdog shell that waits for this process to end.
//!
//! ECR tests run in a child process (this binary, one `#[ignore]`d `child_*` test) because the
//! AWS SDK reads its configuration (IRSA variables, endpoint) from the process environment, which
//! a multi-threaded test process must not change.

#[path = "support/aws_child.rs"]
mod aws_child;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use aws_child::{ECR_ACCOUNT, ECR_REGION};
use haul::api::warehouse::{DiscoveredImageReference, ImageSubscription};
use haul::discovery::{
    DiscovererConfig, ImageDiscoverer, ImageDiscoveryError, RateLimits, RegistryCredentials,
    RequestCounts,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

// ------------------------------------------------------------------------------------- services

#[derive(Debug, Clone)]
struct Services {
    moto_url: String,
    registry: String,
    registry_auth: String,
    user: String,
    password: String,
}

static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();
static OWNED_DIR: OnceLock<PathBuf> = OnceLock::new();

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/test-services.sh")
}

extern "C" fn stop_services_at_exit() {
    if let Some(dir) = OWNED_DIR.get() {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn services() -> &'static Services {
    match SERVICES.get_or_init(start_services) {
        Ok(s) => s,
        Err(e) => panic!("test services unavailable: {e}"),
    }
}

fn from_env() -> Option<Services> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(Services {
        moto_url: get("HAUL_TEST_MOTO_URL")?,
        registry: get("HAUL_TEST_REGISTRY")?,
        registry_auth: get("HAUL_TEST_REGISTRY_AUTH")?,
        user: get("HAUL_TEST_REGISTRY_USER")?,
        password: get("HAUL_TEST_REGISTRY_PASSWORD")?,
    })
}

fn start_services() -> Result<Services, String> {
    if let Some(s) = from_env() {
        return Ok(s);
    }
    // Short path: the git server's unix socket path must fit in sun_path.
    let dir = tempfile::Builder::new()
        .prefix("himg")
        .tempdir_in("/tmp")
        .map_err(|e| format!("tempdir: {e}"))?
        .keep();
    let _ = OWNED_DIR.set(dir.clone());
    // SAFETY: registering a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(stop_services_at_exit);
    }
    // Stops the services if this process dies without running atexit hooks (SIGKILL, abort).
    let _ = Command::new("setsid")
        .arg("bash")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; bash "$2" stop "$3" >/dev/null 2>&1; rm -rf "$3""#)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(script())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let out = Command::new("bash")
        .arg(script())
        .arg("start")
        .arg(&dir)
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} start failed (run `hack/test-services.sh install` first?):\n{}",
            script().display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let vars = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1/env"; printf '%s\0' "$HAUL_TEST_MOTO_URL" "$HAUL_TEST_REGISTRY" "$HAUL_TEST_REGISTRY_AUTH" "$HAUL_TEST_REGISTRY_USER" "$HAUL_TEST_REGISTRY_PASSWORD""#)
        .arg("_")
        .arg(&dir)
        .output()
        .map_err(|e| format!("bash: {e}"))?;
    let text = String::from_utf8_lossy(&vars.stdout).into_owned();
    let v: Vec<&str> = text.split('\0').collect();
    if v.len() < 5 || v.iter().take(5).any(|s| s.is_empty()) {
        return Err(format!("bad env file: {text:?}"));
    }
    Ok(Services {
        moto_url: v[0].to_owned(),
        registry: v[1].to_owned(),
        registry_auth: v[2].to_owned(),
        user: v[3].to_owned(),
        password: v[4].to_owned(),
    })
}

/// A repository name unique to this test run.
fn unique(name: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{n}", std::process::id())
}

// -------------------------------------------------------------------------------- OCI push helper

fn sha256(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Pushes images with the distribution API only (no Docker).
struct Pusher {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
}

/// A pushed manifest.
#[derive(Debug, Clone)]
struct Pushed {
    digest: String,
    size: usize,
}

/// What goes into a test image.
struct Img<'a> {
    created: &'a str,
    platform: &'a str,
    labels: Value,
    annotations: Value,
    content: &'a str,
}

impl<'a> Img<'a> {
    fn new(created: &'a str, content: &'a str) -> Self {
        Self {
            created,
            platform: "linux/amd64",
            labels: json!({}),
            annotations: Value::Null,
            content,
        }
    }
}

impl Pusher {
    fn new(host: &str, auth: Option<(&str, &str)>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{host}"),
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        }
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    async fn blob(&self, repo: &str, bytes: &[u8]) -> (String, usize) {
        let digest = sha256(bytes);
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await
            .expect("upload start");
        assert_eq!(resp.status().as_u16(), 202, "blob upload start");
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload location")
            .to_owned();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", self.base)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let resp = self
            .req(reqwest::Method::PUT, &format!("{loc}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("blob put");
        assert_eq!(resp.status().as_u16(), 201, "blob upload");
        (digest, bytes.len())
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Pushed {
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{reference}", self.base),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("manifest put");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            status.as_u16(),
            201,
            "manifest put {repo}:{reference}: {text}"
        );
        Pushed {
            digest: sha256(body),
            size: body.len(),
        }
    }

    /// Pushes a single-platform image; `reference` is a tag or `None` (pushed by digest).
    async fn image(&self, repo: &str, reference: Option<&str>, img: &Img<'_>) -> Pushed {
        let (layer, layer_size) = self.blob(repo, img.content.as_bytes()).await;
        let mut parts = img.platform.splitn(3, '/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        let mut config = json!({
            "created": img.created,
            "os": os,
            "architecture": arch,
            "config": {"Labels": img.labels},
            "rootfs": {"type": "layers", "diff_ids": [sha256(img.content.as_bytes())]},
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).expect("json");
        let (config_digest, config_size) = self.blob(repo, &config).await;
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
        });
        if !img.annotations.is_null() {
            manifest["annotations"] = img.annotations.clone();
        }
        let body = serde_json::to_vec(&manifest).expect("json");
        let digest = sha256(&body);
        self.put_manifest(
            repo,
            reference.unwrap_or(&digest),
            "application/vnd.oci.image.manifest.v1+json",
            &body,
        )
        .await
    }

    /// Pushes an OCI index over `entries` (manifest, platform, entry annotations).
    async fn index(
        &self,
        repo: &str,
        tag: &str,
        entries: &[(&Pushed, &str, Value)],
        annotations: Value,
    ) -> Pushed {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(p, platform, ann)| {
                let mut parts = platform.splitn(3, '/');
                let mut plat = json!({"os": parts.next(), "architecture": parts.next()});
                if let Some(v) = parts.next() {
                    plat["variant"] = json!(v);
                }
                let mut e = json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": p.digest, "size": p.size, "platform": plat,
                });
                if !ann.is_null() {
                    e["annotations"] = ann.clone();
                }
                e
            })
            .collect();
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        if !annotations.is_null() {
            index["annotations"] = annotations;
        }
        let body = serde_json::to_vec(&index).expect("json");
        self.put_manifest(repo, tag, "application/vnd.oci.image.index.v1+json", &body)
            .await
    }
}

// ------------------------------------------------------------------------------------- helpers

fn sub(v: Value) -> ImageSubscription {
    serde_json::from_value(v).expect("valid subscription")
}

fn discoverer() -> ImageDiscoverer {
    ImageDiscoverer::new(DiscovererConfig::default()).expect("discoverer")
}

fn tags(refs: &[DiscoveredImageReference]) -> Vec<&str> {
    refs.iter().map(|r| r.tag.as_str()).collect()
}

fn created(r: &DiscoveredImageReference) -> String {
    r.created_at
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// Counts for `host` between two snapshots.
fn spent(d: &ImageDiscoverer, host: &str, before: &RequestCounts) -> RequestCounts {
    d.stats().registry(host).since(before)
}

// ------------------------------------------------------------------------------------ OCI tests

#[tokio::test]
async fn oci_semver_constraint_and_tag_regexes() {
    let s = services();
    let repo = unique("team/semver");
    let p = Pusher::new(&s.registry, None);
    let mut digests = BTreeMap::new();
    for (i, tag) in [
        "1.0.0",
        "1.1.0",
        "1.2.0-rc.1",
        "2.0.0",
        "v1.3.0",
        "latest",
        "1.4.0-skip",
        "1.5",
    ]
    .iter()
    .enumerate()
    {
        let created = format!("2024-01-0{}T00:00:00Z", i + 1);
        let pushed = p.image(&repo, Some(tag), &Img::new(&created, tag)).await;
        digests.insert(*tag, pushed.digest);
    }
    let url = format!("{}/{repo}", s.registry);
    let d = discoverer();

    let r = d
        .discover(
            &sub(json!({"repoURL": url, "constraint": "^1.0", "ignoreTagsRegexes": ["skip"]})),
            None,
        )
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["v1.3.0", "1.1.0", "1.0.0"]);
    assert_eq!(r.repo_url, url);
    assert_eq!(r.references[0].digest, digests["v1.3.0"]);
    assert_eq!(created(&r.references[0]), "2024-01-05T00:00:00Z");

    // Legacy field name, loose semvers, allow regexes (both spellings), a limit.
    let r = d
        .discover(
            &sub(
                json!({"repoURL": url, "semverConstraint": ">=1.1.0-0", "strictSemvers": false,
                "allowTagsRegexes": ["^1\\."], "allowTagsRegex": ["^2\\."], "discoveryLimit": 3}),
            ),
            None,
        )
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["2.0.0", "1.5", "1.4.0-skip"]);

    // No constraint: every semver tag, newest first.
    let r = d
        .discover(&sub(json!({"repoURL": url})), None)
        .await
        .expect("discover");
    assert_eq!(
        tags(&r.references),
        [
            "2.0.0",
            "1.4.0-skip",
            "v1.3.0",
            "1.2.0-rc.1",
            "1.1.0",
            "1.0.0"
        ]
    );
}

#[tokio::test]
async fn oci_lexical_and_missing_repository() {
    let s = services();
    let repo = unique("team/lexical");
    let p = Pusher::new(&s.registry, None);
    for tag in [
        "nightly-20240101",
        "nightly-20240103",
        "nightly-20240102",
        "release-1",
    ] {
        p.image(&repo, Some(tag), &Img::new("2024-01-01T00:00:00Z", tag))
            .await;
    }
    let url = format!("{}/{repo}", s.registry);
    let d = discoverer();
    let r = d
        .discover(
            &sub(json!({"repoURL": url, "imageSelectionStrategy": "Lexical",
                "allowTagsRegexes": ["^nightly-"], "discoveryLimit": 2})),
            None,
        )
        .await
        .expect("discover");
    assert_eq!(
        tags(&r.references),
        ["nightly-20240103", "nightly-20240102"]
    );
    let before = d.stats().registry(&s.registry);

    let missing = format!("{}/{}", s.registry, unique("no/such-repo"));
    let err = d
        .discover(&sub(json!({"repoURL": missing})), None)
        .await
        .expect_err("missing repository");
    assert!(
        matches!(&err, ImageDiscoveryError::NotFound { repo } if *repo == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
    assert_eq!(spent(&d, &s.registry, &before).list, 1);
}

#[tokio::test]
async fn oci_newest_build_uses_annotations_labels_and_config_time() {
    let s = services();
    let repo = unique("team/newest");
    let p = Pusher::new(&s.registry, None);
    p.image(&repo, Some("a"), &Img::new("2024-01-03T00:00:00Z", "a"))
        .await;
    p.image(&repo, Some("b"), &Img::new("2024-01-01T00:00:00Z", "b"))
        .await;
    // A Label Schema build date wins over the config's `created`.
    let mut c = Img::new("2024-01-02T00:00:00Z", "c");
    c.labels = json!({"org.label-schema.build-date": "2024-01-05T00:00:00Z"});
    p.image(&repo, Some("c"), &c).await;
    // The manifest annotation wins over everything in the config.
    let mut dimg = Img::new("2025-01-01T00:00:00Z", "d");
    dimg.annotations =
        json!({"org.opencontainers.image.created": "2023-12-31T00:00:00Z", "team": "x"});
    p.image(&repo, Some("d"), &dimg).await;
    p.image(
        &repo,
        Some("ignored"),
        &Img::new("2030-01-01T00:00:00Z", "i"),
    )
    .await;
    let url = format!("{}/{repo}", s.registry);
    let d = discoverer();
    let subscription = sub(
        json!({"repoURL": url, "imageSelectionStrategy": "NewestBuild",
        "ignoreTagsRegexes": ["^ignored$"]}),
    );
    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(tags(&r.references), ["c", "a", "b", "d"]);
    assert_eq!(created(&r.references[0]), "2024-01-05T00:00:00Z");
    assert_eq!(created(&r.references[3]), "2023-12-31T00:00:00Z");
    assert_eq!(
        r.references[3].annotations.get("team").map(String::as_str),
        Some("x")
    );

    // Repeat with the tag list unchanged: only the tag list is requested.
    let before = d.stats().registry(&s.registry);
    let again = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(again, r);
    let c = spent(&d, &s.registry, &before);
    assert_eq!((c.list, c.total()), (1, 1), "{c}");

    let mut limited = subscription.clone();
    limited.discovery_limit = 2;
    let r = d.discover(&limited, None).await.expect("discover");
    assert_eq!(tags(&r.references), ["c", "a"]);
}

#[tokio::test]
async fn oci_digest_strategy_follows_a_moved_tag() {
    let s = services();
    let repo = unique("team/digest");
    let p = Pusher::new(&s.registry, None);
    let first = p
        .image(
            &repo,
            Some("latest"),
            &Img::new("2024-01-01T00:00:00Z", "one"),
        )
        .await;
    let url = format!("{}/{repo}", s.registry);
    let d = discoverer();
    let subscription =
        sub(json!({"repoURL": url, "imageSelectionStrategy": "Digest", "constraint": "latest"}));

    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(tags(&r.references), ["latest"]);
    assert_eq!(r.references[0].digest, first.digest);

    // Unchanged: one HEAD, nothing else.
    let before = d.stats().registry(&s.registry);
    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(r.references[0].digest, first.digest);
    let c = spent(&d, &s.registry, &before);
    assert_eq!((c.head, c.total()), (1, 1), "{c}");

    let second = p
        .image(
            &repo,
            Some("latest"),
            &Img::new("2024-02-01T00:00:00Z", "two"),
        )
        .await;
    assert_ne!(first.digest, second.digest);
    let before = d.stats().registry(&s.registry);
    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(r.references[0].digest, second.digest);
    assert_eq!(created(&r.references[0]), "2024-02-01T00:00:00Z");
    let c = spent(&d, &s.registry, &before);
    assert_eq!((c.head, c.manifest, c.blob, c.list), (1, 1, 1, 0), "{c}");

    // A tag that does not exist: empty, not an error.
    let r = d
        .discover(
            &sub(json!({"repoURL": url, "imageSelectionStrategy": "Digest", "constraint": "nope"})),
            None,
        )
        .await
        .expect("discover");
    assert!(r.references.is_empty());
}

#[tokio::test]
async fn oci_platform_filter_with_index() {
    let s = services();
    let repo = unique("team/multiarch");
    let p = Pusher::new(&s.registry, None);
    let amd = p
        .image(&repo, None, &Img::new("2024-03-01T00:00:00Z", "amd"))
        .await;
    let mut arm_img = Img::new("2024-03-02T00:00:00Z", "arm");
    arm_img.platform = "linux/arm64/v8";
    let arm = p.image(&repo, None, &arm_img).await;
    let attestation = p
        .image(&repo, None, &Img::new("2030-01-01T00:00:00Z", "att"))
        .await;
    let both = p
        .index(
            &repo,
            "1.0.0",
            &[
                (&amd, "linux/amd64", json!({"entry": "amd64"})),
                (&arm, "linux/arm64/v8", Value::Null),
                (&attestation, "unknown/unknown", Value::Null),
            ],
            json!({"org.opencontainers.image.source": "https://example.invalid/src"}),
        )
        .await;
    p.index(
        &repo,
        "1.1.0",
        &[(&arm, "linux/arm64/v8", Value::Null)],
        Value::Null,
    )
    .await;
    p.image(
        &repo,
        Some("1.2.0"),
        &Img::new("2024-04-01T00:00:00Z", "single-amd"),
    )
    .await;
    let mut single_arm = Img::new("2024-05-01T00:00:00Z", "single-arm");
    single_arm.platform = "linux/arm64/v8";
    p.image(&repo, Some("1.3.0"), &single_arm).await;

    let url = format!("{}/{repo}", s.registry);
    let d = discoverer();
    let r = d
        .discover(
            &sub(json!({"repoURL": url, "platform": "linux/amd64", "discoveryLimit": 2})),
            None,
        )
        .await
        .expect("discover");
    assert_eq!(r.platform.as_deref(), Some("linux/amd64"));
    // 1.3.0 and 1.1.0 have no linux/amd64 image and do not count toward the limit.
    assert_eq!(tags(&r.references), ["1.2.0", "1.0.0"]);
    let idx = &r.references[1];
    assert_eq!(idx.digest, both.digest, "the index digest");
    assert_eq!(
        created(idx),
        "2024-03-01T00:00:00Z",
        "the amd64 image's time"
    );
    assert_eq!(
        idx.annotations.get("entry").map(String::as_str),
        Some("amd64")
    );
    assert!(
        idx.annotations
            .contains_key("org.opencontainers.image.source")
    );

    let r = d
        .discover(
            &sub(json!({"repoURL": url, "platform": "linux/arm64/v8", "constraint": "<1.2"})),
            None,
        )
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["1.1.0", "1.0.0"]);

    // No filter: an index is as new as its newest image (the attestation does not count).
    let r = d
        .discover(&sub(json!({"repoURL": url, "constraint": "1.0.0"})), None)
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["1.0.0"]);
    assert_eq!(created(&r.references[0]), "2024-03-02T00:00:00Z");
}

#[tokio::test]
async fn oci_basic_auth_registry() {
    let s = services();
    let repo = unique("private/app");
    let p = Pusher::new(&s.registry_auth, Some((&s.user, &s.password)));
    p.image(&repo, Some("1.0.0"), &Img::new("2024-01-01T00:00:00Z", "x"))
        .await;
    let url = format!("{}/{repo}", s.registry_auth);
    let subscription = sub(json!({"repoURL": url}));
    let d = discoverer();

    let good = RegistryCredentials::Basic {
        username: s.user.clone(),
        password: s.password.clone(),
    };
    let r = d
        .discover(&subscription, Some(&good))
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["1.0.0"]);

    let wrong = RegistryCredentials::Basic {
        username: s.user.clone(),
        password: "wrong".into(),
    };
    let fresh = discoverer();
    let err = fresh
        .discover(&subscription, Some(&wrong))
        .await
        .expect_err("wrong password");
    assert!(matches!(err, ImageDiscoveryError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "no secret in errors: {err}"
    );
    assert!(fresh.stats().registry(&s.registry_auth).total() <= 2);

    let err = discoverer()
        .discover(&subscription, None)
        .await
        .expect_err("anonymous");
    assert!(matches!(err, ImageDiscoveryError::Auth { .. }), "{err:?}");
}

#[tokio::test]
async fn oci_repeat_discovery_fetches_no_manifest() {
    let s = services();
    let repo = unique("team/repeat");
    let p = Pusher::new(&s.registry, None);
    for (i, tag) in ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]
        .iter()
        .enumerate()
    {
        p.image(
            &repo,
            Some(tag),
            &Img::new(&format!("2024-01-0{}T00:00:00Z", i + 1), tag),
        )
        .await;
    }
    let url = format!("{}/{repo}", s.registry);
    let subscription = sub(json!({"repoURL": url, "discoveryLimit": 3}));
    let d = discoverer();

    let before = d.stats().registry(&s.registry);
    let first = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(tags(&first.references), ["1.4.0", "1.3.0", "1.2.0"]);
    let c = spent(&d, &s.registry, &before);
    assert_eq!(
        (c.list, c.manifest, c.blob, c.head),
        (1, 3, 3, 0),
        "first run: {c}"
    );

    let before = d.stats().registry(&s.registry);
    let again = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(again, first);
    let c = spent(&d, &s.registry, &before);
    assert_eq!((c.list, c.total()), (1, 1), "repeat run: {c}");
    assert!(d.stats().cache.selections_reused >= 1);

    // A new tag: only its manifest is fetched; the others come from the memo and the cache.
    p.image(
        &repo,
        Some("1.9.0"),
        &Img::new("2024-02-01T00:00:00Z", "new"),
    )
    .await;
    let before = d.stats().registry(&s.registry);
    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(tags(&r.references), ["1.9.0", "1.4.0", "1.3.0"]);
    let c = spent(&d, &s.registry, &before);
    assert_eq!(
        (c.list, c.manifest, c.blob, c.head),
        (1, 1, 1, 0),
        "new tag: {c}"
    );

    // With no trust in the memo, tags are revalidated with HEADs, still without manifest GETs.
    let strict = ImageDiscoverer::new(DiscovererConfig {
        tag_memo_ttl: Duration::ZERO,
        ..DiscovererConfig::default()
    })
    .expect("discoverer");
    strict
        .discover(&subscription, None)
        .await
        .expect("discover");
    let before = strict.stats().registry(&s.registry);
    let r = strict
        .discover(&subscription, None)
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["1.9.0", "1.4.0", "1.3.0"]);
    let c = spent(&strict, &s.registry, &before);
    assert_eq!(
        (c.list, c.head, c.manifest, c.blob),
        (1, 3, 0, 0),
        "revalidation: {c}"
    );
}

#[tokio::test]
async fn oci_rate_limit_is_applied_per_registry() {
    let s = services();
    let repo = unique("team/limited");
    let p = Pusher::new(&s.registry, None);
    for tag in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"] {
        p.image(&repo, Some(tag), &Img::new("2024-01-01T00:00:00Z", tag))
            .await;
    }
    let url = format!("{}/{repo}", s.registry);
    // 10 req/s without burst: 1 list + 4 manifests + 4 blobs = 9 requests, 8 intervals.
    let d = ImageDiscoverer::new(DiscovererConfig {
        rate_limits: RateLimits {
            per_second: 10.0,
            burst: 1,
            ..RateLimits::default()
        },
        ..DiscovererConfig::default()
    })
    .expect("discoverer");
    let t0 = std::time::Instant::now();
    let r = d
        .discover(&sub(json!({"repoURL": url})), None)
        .await
        .expect("discover");
    assert_eq!(r.references.len(), 4);
    assert_eq!(d.stats().registry(&s.registry).total(), 9);
    assert!(
        t0.elapsed() >= Duration::from_millis(750),
        "{:?}",
        t0.elapsed()
    );
}

// ------------------------------------------------------------------------------------ ECR tests

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn run_child(name: &str, irsa: bool) {
    let s = services();
    aws_child::run_child(
        name,
        irsa,
        &s.moto_url,
        &[
            ("HAUL_TEST_MOTO_URL", &s.moto_url),
            ("HAUL_TEST_REGISTRY", &s.registry),
            ("HAUL_TEST_REGISTRY_AUTH", &s.registry_auth),
            ("HAUL_TEST_REGISTRY_USER", &s.user),
            ("HAUL_TEST_REGISTRY_PASSWORD", &s.password),
        ],
    );
}

/// In a child: the services from the parent's environment, or `None` when run directly.
fn child_services() -> Option<Services> {
    std::env::var_os("HAUL_TEST_CHILD").and_then(|_| from_env())
}

/// An ECR client for seeding moto (independent of the process's AWS environment).
fn seeding_client(moto: &str) -> aws_sdk_ecr::Client {
    let conf = aws_sdk_ecr::Config::builder()
        .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
        .region(aws_sdk_ecr::config::Region::new(ECR_REGION))
        .endpoint_url(moto)
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "seed", "seed", None, None, "test",
        ))
        .build();
    aws_sdk_ecr::Client::from_conf(conf)
}

async fn ecr_repo(client: &aws_sdk_ecr::Client, name: &str) -> String {
    client
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("create repository");
    format!("{ECR_HOST}/{name}")
}

/// Puts an OCI manifest (with `imageDigest` = sha256 of its bytes, which moto would not compute);
/// returns the digest.
async fn ecr_put(
    client: &aws_sdk_ecr::Client,
    repo: &str,
    tag: Option<&str>,
    manifest: &Value,
) -> String {
    let body = serde_json::to_string(manifest).expect("json");
    let digest = sha256(body.as_bytes());
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    client
        .put_image()
        .repository_name(repo)
        .image_manifest(body)
        .image_manifest_media_type(media_type)
        .set_image_tag(tag.map(str::to_owned))
        .image_digest(&digest)
        .send()
        .await
        .expect("put image");
    digest
}

fn oci_manifest(seed: &str) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(seed.as_bytes()), "size": seed.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(format!("layer {seed}").as_bytes()), "size": 1}],
    })
}

#[test]
fn ecr_irsa_strategies() {
    run_child("child_ecr_irsa_strategies", true);
}

#[test]
fn ecr_platform_filter_with_index() {
    run_child("child_ecr_platform_filter_with_index", true);
}

#[test]
fn ecr_static_keys() {
    run_child("child_ecr_static_keys", false);
}

#[test]
fn ecr_without_credentials_is_an_auth_error() {
    run_child("child_ecr_without_credentials", false);
}

#[tokio::test]
#[ignore = "run in a child process by ecr_irsa_strategies"]
async fn child_ecr_irsa_strategies() {
    let Some(s) = child_services() else { return };
    let seed = seeding_client(&s.moto_url);
    let name = unique("team/ecr-app");
    let url = ecr_repo(&seed, &name).await;
    // moto's imagePushedAt has whole seconds: space the pushes.
    let a = ecr_put(&seed, &name, Some("1.0.0"), &oci_manifest("a")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = ecr_put(&seed, &name, Some("2.0.0"), &oci_manifest("b")).await;
    ecr_put(&seed, &name, Some("latest"), &oci_manifest("b")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = ecr_put(&seed, &name, Some("1.5.0"), &oci_manifest("c")).await;
    ecr_put(&seed, &name, Some("nightly-20240102"), &oci_manifest("c")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let dd = ecr_put(&seed, &name, Some("nightly-20240101"), &oci_manifest("d")).await;

    let d = discoverer();
    let id = d.ecr_identity(&url, None).await.expect("identity");
    assert_eq!(id.source, "web-identity", "{id:?}");
    assert!(id.temporary);

    let r = d
        .discover(&sub(json!({"repoURL": url, "constraint": "<2"})), None)
        .await
        .expect("semver");
    assert_eq!(tags(&r.references), ["1.5.0", "1.0.0"]);
    assert_eq!(
        (
            r.references[0].digest.as_str(),
            r.references[1].digest.as_str()
        ),
        (c.as_str(), a.as_str())
    );
    assert!(r.references.iter().all(|r| r.created_at.is_some()));

    let r = d
        .discover(
            &sub(json!({"repoURL": url, "imageSelectionStrategy": "Lexical", "allowTagsRegexes": ["^nightly-"]})),
            None,
        )
        .await
        .expect("lexical");
    assert_eq!(
        tags(&r.references),
        ["nightly-20240102", "nightly-20240101"]
    );

    let r = d
        .discover(
            &sub(json!({"repoURL": url, "imageSelectionStrategy": "NewestBuild", "discoveryLimit": 4})),
            None,
        )
        .await
        .expect("newest build");
    // Push time, newest first; tags of one image tie and go by tag, descending.
    assert_eq!(
        tags(&r.references),
        ["nightly-20240101", "nightly-20240102", "1.5.0", "latest"]
    );
    assert_eq!(r.references[0].digest, dd);
    assert!(created(&r.references[0]) > created(&r.references[3]));

    let r = d
        .discover(
            &sub(
                json!({"repoURL": url, "imageSelectionStrategy": "Digest", "constraint": "latest"}),
            ),
            None,
        )
        .await
        .expect("digest");
    assert_eq!(tags(&r.references), ["latest"]);
    assert_eq!(r.references[0].digest, b);
    let r = d
        .discover(
            &sub(json!({"repoURL": url, "imageSelectionStrategy": "Digest", "constraint": "nope"})),
            None,
        )
        .await
        .expect("digest of a missing tag");
    assert!(r.references.is_empty());

    let counts = d.stats().registry(ECR_HOST);
    assert_eq!(counts.manifest_fetches(), 0, "{counts}");
    assert_eq!(counts.ecr_describe, 5, "{counts}");

    let missing = format!("{ECR_HOST}/{}", unique("no/such-repo"));
    let err = d
        .discover(&sub(json!({"repoURL": missing})), None)
        .await
        .expect_err("missing repository");
    assert!(
        matches!(&err, ImageDiscoveryError::NotFound { repo } if *repo == missing),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "run in a child process by ecr_platform_filter_with_index"]
async fn child_ecr_platform_filter_with_index() {
    let Some(s) = child_services() else { return };
    let seed = seeding_client(&s.moto_url);
    let name = unique("team/ecr-multiarch");
    let url = ecr_repo(&seed, &name).await;
    let amd = oci_manifest("amd");
    let arm = oci_manifest("arm");
    let amd_digest = ecr_put(&seed, &name, None, &amd).await;
    let arm_digest = ecr_put(&seed, &name, None, &arm).await;
    let size = |m: &Value| serde_json::to_string(m).map(|s| s.len()).unwrap_or(0);
    let index = |entries: &[(&str, usize, &str, &str)]| {
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries.iter().map(|(d, size, os, arch)| json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size,
                "platform": {"os": os, "architecture": arch},
                "annotations": {"arch": arch},
            })).collect::<Vec<_>>(),
        })
    };
    let both = ecr_put(
        &seed,
        &name,
        Some("1.0.0"),
        &index(&[
            (&amd_digest, size(&amd), "linux", "amd64"),
            (&arm_digest, size(&arm), "linux", "arm64"),
        ]),
    )
    .await;
    ecr_put(
        &seed,
        &name,
        Some("1.1.0"),
        &index(&[(&arm_digest, size(&arm), "linux", "arm64")]),
    )
    .await;

    let d = discoverer();
    let subscription = sub(json!({"repoURL": url, "platform": "linux/amd64"}));
    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(tags(&r.references), ["1.0.0"]);
    assert_eq!(r.references[0].digest, both);
    assert_eq!(
        r.references[0].annotations.get("arch").map(String::as_str),
        Some("amd64")
    );
    let c = d.stats().registry(ECR_HOST);
    assert_eq!((c.ecr_describe, c.ecr_batch_get), (1, 1), "{c}");

    // Manifests are cached by digest: the repeat run only describes.
    let r2 = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(r2, r);
    let c = d.stats().registry(ECR_HOST);
    assert_eq!((c.ecr_describe, c.ecr_batch_get), (2, 1), "{c}");

    let r = d
        .discover(
            &sub(json!({"repoURL": url, "platform": "linux/arm64"})),
            None,
        )
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["1.1.0", "1.0.0"]);
}

#[tokio::test]
#[ignore = "run in a child process by ecr_static_keys"]
async fn child_ecr_static_keys() {
    let Some(s) = child_services() else { return };
    let seed = seeding_client(&s.moto_url);
    let name = unique("team/ecr-static");
    let url = ecr_repo(&seed, &name).await;
    ecr_put(&seed, &name, Some("3.1.4"), &oci_manifest("pi")).await;
    let data: BTreeMap<String, Vec<u8>> = [
        ("awsAccessKeyID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "awsSecretAccessKey",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("awsRegion", ECR_REGION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
    .collect();
    let creds = RegistryCredentials::from_secret_data(&data)
        .expect("valid secret")
        .expect("credentials");
    assert!(!format!("{creds:?}").contains("wJalrXUtnFEMI"));
    let d = discoverer();
    let id = d.ecr_identity(&url, Some(&creds)).await.expect("identity");
    assert_eq!(id.source, "static");
    assert!(!id.temporary);
    let r = d
        .discover(&sub(json!({"repoURL": url})), Some(&creds))
        .await
        .expect("discover");
    assert_eq!(tags(&r.references), ["3.1.4"]);
}

#[tokio::test]
#[ignore = "run in a child process by ecr_without_credentials_is_an_auth_error"]
async fn child_ecr_without_credentials() {
    let Some(s) = child_services() else { return };
    assert!(std::env::var_os("AWS_ROLE_ARN").is_none());
    let seed = seeding_client(&s.moto_url);
    let name = unique("team/ecr-nocreds");
    let url = ecr_repo(&seed, &name).await;
    let d = discoverer();
    let err = d
        .discover(&sub(json!({"repoURL": url})), None)
        .await
        .expect_err("no credentials");
    assert!(matches!(err, ImageDiscoveryError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(d.ecr_identity(&url, None).await.is_err());
}

/// A docker-registry standing in for ECR's registry API: htpasswd with moto's authorization
/// token (`AWS` / `<account>-auth-token`). Killed on drop.
struct FakeEcrDataPlane {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl FakeEcrDataPlane {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "AWS", &format!("{ECR_ACCOUNT}-auth-token")])
            .output()
            .expect("htpasswd (apache2-utils)");
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).expect("htpasswd file");
        let config = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {0}/data}}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd: {{realm: ecr, path: {0}/htpasswd}}\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        let host = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            host,
            _dir: dir,
        }
    }
}

impl Drop for FakeEcrDataPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ecr_platform_filter_reads_configs_from_the_registry_api() {
    run_child("child_ecr_platform_filter_single_manifests", true);
}

#[tokio::test]
#[ignore = "run in a child process by ecr_platform_filter_reads_configs_from_the_registry_api"]
async fn child_ecr_platform_filter_single_manifests() {
    let Some(s) = child_services() else { return };
    let plane = FakeEcrDataPlane::start();
    let token = format!("{ECR_ACCOUNT}-auth-token");
    let pusher = Pusher::new(&plane.host, Some(("AWS", &token)));
    let seed = seeding_client(&s.moto_url);
    let name = unique("team/ecr-single");
    let url = ecr_repo(&seed, &name).await;
    let mut want = BTreeMap::new();
    for (tag, platform) in [
        ("1.0.0", "linux/amd64"),
        ("1.1.0", "linux/arm64"),
        ("1.2.0", "linux/amd64"),
    ] {
        let (os, arch) = platform.split_once('/').expect("os/arch");
        let config = serde_json::to_vec(
            &json!({"created": "2024-01-01T00:00:00Z", "os": os, "architecture": arch,
            "rootfs": {"type": "layers", "diff_ids": []}}),
        )
        .expect("json");
        let (config_digest, size) = pusher.blob(&name, &config).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": size},
            "layers": [],
            "annotations": {"tag": tag},
        });
        want.insert(tag, ecr_put(&seed, &name, Some(tag), &manifest).await);
    }
    let d = ImageDiscoverer::new(DiscovererConfig {
        ecr_registry_endpoint: Some(format!("http://{}", plane.host)),
        ..DiscovererConfig::default()
    })
    .expect("discoverer");
    let subscription = sub(json!({"repoURL": url, "platform": "linux/amd64"}));
    let r = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(tags(&r.references), ["1.2.0", "1.0.0"]);
    assert_eq!(r.references[0].digest, want["1.2.0"]);
    assert_eq!(
        r.references[0].annotations.get("tag").map(String::as_str),
        Some("1.2.0")
    );
    let c = d.stats().registry(ECR_HOST);
    // Four blob requests for three configs: the first is answered with a Basic challenge.
    assert_eq!(
        (c.ecr_describe, c.ecr_batch_get, c.ecr_token, c.blob),
        (1, 1, 1, 4),
        "{c}"
    );

    // Configs are cached with the manifests: the repeat run only describes.
    let again = d.discover(&subscription, None).await.expect("discover");
    assert_eq!(again, r);
    let c2 = d.stats().registry(ECR_HOST).since(&c);
    assert_eq!((c2.ecr_describe, c2.total()), (1, 1), "{c2}");
}
