//! oci-download, oci-push, argocd-wait and github-push run by the promotion engine against
//! real components on 127.0.0.1: Debian's docker-registry (anonymous, and with htpasswd basic
//! auth, credentials from project Secrets on the real kube-apiserver), the Argo CD Application
//! CRD on the real control plane (the tests play Argo CD by writing `status`), and the git
//! server over HTTP for github-push's git half. GitHub's API is not faked: github-push is run
//! until its first API call, which the git server cannot answer; the API request plan is
//! unit-tested in `haul::git::pull_requests::github_push`.

mod support;

use std::path::Path;

use haul::api::argocd::Application;
use haul::api::{FreightCollection, PromotionPhase, PromotionStatus, PromotionStep, StepStatus};
use haul::discovery::artifacts::ArtifactRef;
use haul::discovery::{DiscovererConfig, ImageDiscoverer};
use haul::expressions::PromotionContext;
use haul::git::{Author, Credentials, RepoCache};
use haul::promotion::engine::{Progress, step_once};
use haul::promotion::steps::{ClusterCredentials, CredentialsProvider, FixedCredentials, StepEnv};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use support::services::services;

// ------------------------------------------------------------------------------------ harness

/// A work directory, a git cache and the steps' environment.
struct Env {
    dir: tempfile::TempDir,
    cache: RepoCache,
    freight: FreightCollection,
    author: Author,
    client: Option<kube::Client>,
    namespace: String,
    promotion: String,
}

impl Env {
    /// With the real control plane: credentials from Secrets in `namespace`, Argo CD
    /// Applications in `namespace` too.
    async fn cluster(prefix: &str) -> Self {
        // Started outside the test's runtime: the control plane runs its own.
        let cp = tokio::task::spawn_blocking(support::cp)
            .await
            .expect("control plane");
        let client = cp.client().await.expect("client");
        let namespace = cp.namespace(prefix).await.expect("namespace");
        Self::with(Some(client), namespace)
    }

    fn local() -> Self {
        Self::with(None, String::new())
    }

    fn with(client: Option<kube::Client>, namespace: String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(dir.path().join("cache")).expect("cache");
        Self {
            dir,
            cache,
            freight: FreightCollection::default(),
            author: Author::default(),
            client,
            namespace,
            promotion: format!("uat.01{}", unique("")),
        }
    }

    fn work(&self) -> &Path {
        self.dir.path()
    }

    fn step_env<'a>(&'a self, creds: &'a dyn CredentialsProvider) -> StepEnv<'a> {
        StepEnv {
            client: self.client.as_ref(),
            argocd_namespace: self.client.as_ref().map(|_| self.namespace.as_str()),
            credentials: creds,
            push_allowed: true,
            runner: "test",
            git: &self.cache,
            work_dir: self.dir.path(),
            project: &self.namespace,
            shared_namespace: None,
            stage: "uat",
            promotion: &self.promotion,
            actor: "a",
            freight: &self.freight,
            author: &self.author,
            previous_output: None,
            signing_key: &haul::promotion::steps::env::NO_SIGNING_KEY,
        }
    }

    /// Runs the next `n` steps, each of which must succeed.
    async fn steps(&self, run: &mut Run, creds: &dyn CredentialsProvider, n: usize) {
        let env = self.step_env(creds);
        for _ in 0..n {
            let p = step_once(
                &run.steps,
                &[],
                &PromotionContext::default(),
                &mut run.status,
                &env,
            )
            .await;
            assert_eq!(p, Progress::Continue, "{:?}", run.status);
        }
    }

    /// Runs `steps` until the engine waits or finishes.
    async fn run(&self, run: &mut Run, creds: &dyn CredentialsProvider) -> Progress {
        let env = self.step_env(creds);
        loop {
            let p = step_once(
                &run.steps,
                &[],
                &PromotionContext::default(),
                &mut run.status,
                &env,
            )
            .await;
            if p != Progress::Continue {
                return p;
            }
        }
    }

    async fn run_with_secrets(&self, run: &mut Run) -> Progress {
        let client = self.client.as_ref().expect("cluster env");
        let creds = ClusterCredentials {
            client,
            project: &self.namespace,
            shared_namespace: None,
        };
        self.run(run, &creds).await
    }

    /// A credentials Secret (`image`, `helm` or `git`) for `repo_url`.
    async fn secret(&self, cred_type: &str, repo_url: &str, user: &str, password: &str) {
        let api: Api<Secret> =
            Api::namespaced(self.client.clone().expect("cluster env"), &self.namespace);
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": unique("creds"), "labels": {"kargo.akuity.io/cred-type": cred_type}},
            "stringData": {"repoURL": repo_url, "username": user, "password": password}
        }))
        .expect("secret");
        api.create(&PostParams::default(), &s)
            .await
            .expect("create secret");
    }
}

struct Run {
    steps: Vec<PromotionStep>,
    status: PromotionStatus,
}

impl Run {
    fn new(steps: Value) -> Self {
        Self {
            steps: serde_json::from_value(steps).expect("steps"),
            status: PromotionStatus::default(),
        }
    }

    fn step(&self, i: usize) -> (Option<StepStatus>, String) {
        let m = &self.status.step_execution_metadata[i];
        (m.status, m.message.clone().unwrap_or_default())
    }

    fn output(&self, alias: &str) -> Value {
        self.status
            .state
            .as_ref()
            .and_then(|s| s.get(alias))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}{}x{n}x{nanos}", std::process::id())
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn succeeded(p: &Progress) -> bool {
    matches!(p, Progress::Done(PromotionPhase::Succeeded, _))
}

// ------------------------------------------------------------------------------- registry side

/// Pushes fixtures with plain distribution API calls (not through haul's client).
struct Registry {
    http: reqwest::Client,
    host: String,
    auth: Option<(String, String)>,
}

impl Registry {
    fn anonymous() -> Self {
        Self {
            http: reqwest::Client::new(),
            host: services().var("HAUL_TEST_REGISTRY").to_string(),
            auth: None,
        }
    }

    fn basic_auth() -> Self {
        let s = services();
        Self {
            http: reqwest::Client::new(),
            host: s.var("HAUL_TEST_REGISTRY_AUTH").to_string(),
            auth: Some((
                s.var("HAUL_TEST_REGISTRY_USER").to_string(),
                s.var("HAUL_TEST_REGISTRY_PASSWORD").to_string(),
            )),
        }
    }

    fn user(&self) -> (&str, &str) {
        let (u, p) = self.auth.as_ref().expect("auth registry");
        (u, p)
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("http://{}/v2/{path}", self.host));
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    async fn blob(&self, repo: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let resp = self
            .req(reqwest::Method::POST, &format!("{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("upload start");
        assert_eq!(resp.status().as_u16(), 202);
        let loc = resp.headers()["location"]
            .to_str()
            .expect("loc")
            .to_string();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("http://{}{loc}", self.host)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let mut put = self
            .http
            .put(format!("{loc}{sep}digest={digest}"))
            .body(bytes.to_vec());
        if let Some((u, p)) = &self.auth {
            put = put.basic_auth(u, Some(p));
        }
        assert_eq!(put.send().await.expect("put").status().as_u16(), 201);
        json!({"digest": digest, "size": bytes.len()})
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        doc: &Value,
    ) -> String {
        let body = serde_json::to_vec(doc).expect("json");
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("{repo}/manifests/{reference}"),
            )
            .header("content-type", media_type)
            .body(body.clone())
            .send()
            .await
            .expect("manifest put");
        let status = resp.status().as_u16();
        assert_eq!(status, 201, "{}", resp.text().await.unwrap_or_default());
        sha256(&body)
    }

    /// An image whose layers are `(media type, content)`; its manifest digest.
    async fn image(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) -> String {
        let config = self
            .blob(repo, br#"{"architecture":"amd64","os":"linux"}"#)
            .await;
        let mut descs = Vec::new();
        for (mt, content) in layers {
            let mut d = self.blob(repo, content).await;
            d["mediaType"] = json!(mt);
            descs.push(d);
        }
        let mut config = config;
        config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let m = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": descs,
        });
        self.put_manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &m)
            .await
    }

    /// The manifest at `reference` as stored, and its digest.
    async fn manifest(&self, repo: &str, reference: &str) -> (Value, String) {
        let resp = self
            .req(reqwest::Method::GET, &format!("{repo}/manifests/{reference}"))
            .header(
                "accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await
            .expect("get manifest");
        assert_eq!(resp.status().as_u16(), 200, "{repo}:{reference}");
        let bytes = resp.bytes().await.expect("body");
        (
            serde_json::from_slice(&bytes).expect("json"),
            sha256(&bytes),
        )
    }
}

const TEXT: &str = "text/plain";
const OTHER: &str = "application/vnd.example.data";

fn download(image_ref: &str, extra: Value) -> Value {
    let mut config = json!({"imageRef": image_ref, "outPath": "out/artifact"});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"uses": "oci-download", "as": "dl", "config": config})
}

// ----------------------------------------------------------------------------------- oci-download

#[tokio::test]
async fn oci_download_picks_the_layer_by_media_type_with_secret_credentials() {
    let env = Env::cluster("oci-dl").await;
    let reg = Registry::basic_auth();
    let repo = unique("steps/dl");
    let digest = reg
        .image(
            &repo,
            "v1",
            &[
                (OTHER, b"first layer"),
                (TEXT, b"hello from the text layer"),
            ],
        )
        .await;
    let image = format!("{}/{repo}", reg.host);
    let (user, password) = reg.user();

    // No Secret yet: the registry's refusal is reported.
    let mut run = Run::new(json!([download(&format!("{image}:v1"), json!({}))]));
    let p = env.run_with_secrets(&mut run).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Errored, _)),
        "{p:?}"
    );
    let (_, msg) = run.step(0);
    assert!(msg.contains("no credentials were found"), "{msg}");

    env.secret("image", &image, user, password).await;
    let mut run = Run::new(json!([download(
        &format!("{image}:v1"),
        json!({"mediaType": TEXT})
    )]));
    let p = env.run_with_secrets(&mut run).await;
    assert!(succeeded(&p), "{p:?}: {:?}", run.status);
    let out = env.work().join("out/artifact");
    assert_eq!(
        std::fs::read(&out).expect("written"),
        b"hello from the text layer"
    );
    // Kargo's step outputs nothing.
    assert_eq!(run.output("dl"), json!({}));
    // No temporary file left next to it.
    let names: Vec<_> = std::fs::read_dir(env.work().join("out"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("artifact")]);

    // The file exists: refused unless allowOverwrite; by digest, no media type: first layer.
    let by_digest = format!("{image}@{digest}");
    let mut run = Run::new(json!([download(&by_digest, json!({}))]));
    let p = env.run_with_secrets(&mut run).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Failed, _)),
        "{p:?}"
    );
    assert_eq!(
        run.step(0).1,
        "file already exists at out/artifact and overwrite is not allowed"
    );
    let mut run = Run::new(json!([download(
        &by_digest,
        json!({"allowOverwrite": true})
    )]));
    assert!(
        succeeded(&env.run_with_secrets(&mut run).await),
        "{:?}",
        run.status
    );
    assert_eq!(std::fs::read(&out).expect("written"), b"first layer");

    // A media type the image does not have; a path out of the work directory.
    let mut run = Run::new(json!([download(
        &by_digest,
        json!({"mediaType": "application/x-none", "allowOverwrite": true})
    )]));
    assert!(matches!(
        env.run_with_secrets(&mut run).await,
        Progress::Done(PromotionPhase::Failed, _)
    ));
    assert!(
        run.step(0)
            .1
            .contains("no layer found with media type \"application/x-none\""),
        "{}",
        run.step(0).1
    );
    let mut run = Run::new(
        json!([{"uses": "oci-download", "config": {"imageRef": by_digest, "outPath": "../escape"}}]),
    );
    assert!(matches!(
        env.run_with_secrets(&mut run).await,
        Progress::Done(PromotionPhase::Failed, _)
    ));
    assert!(
        run.step(0).1.contains("config.outPath"),
        "{}",
        run.step(0).1
    );
    let mut run = Run::new(json!([download(&image, json!({}))]));
    assert!(matches!(
        env.run_with_secrets(&mut run).await,
        Progress::Done(PromotionPhase::Failed, _)
    ));
    assert!(
        run.step(0).1.contains("config.imageRef"),
        "{}",
        run.step(0).1
    );
}

#[tokio::test]
async fn oci_download_refuses_a_layer_over_the_size_limit() {
    let env = Env::local();
    let reg = Registry::anonymous();
    let repo = unique("steps/big");
    // The manifest declares a layer over Kargo's 100 MiB limit (the registry checks that the
    // blob exists, not its size): refused before anything is downloaded.
    let config = reg.blob(&repo, b"{}").await;
    let layer = reg.blob(&repo, b"small").await;
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": TEXT, "digest": layer["digest"], "size": 200u64 << 20}],
    });
    let resp = reg
        .req(reqwest::Method::PUT, &format!("{repo}/manifests/big"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&m).expect("json"))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status().as_u16(), 201);
    let mut run = Run::new(json!([download(
        &format!("{}/{repo}:big", reg.host),
        json!({})
    )]));
    let p = env
        .run(&mut run, &FixedCredentials(Credentials::None))
        .await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Failed, _)),
        "{p:?}"
    );
    assert_eq!(
        run.step(0).1,
        format!(
            "layer size {} exceeds maximum allowed size of {} bytes",
            200u64 << 20,
            100u64 << 20
        )
    );
    assert!(!env.work().join("out/artifact").exists());
}

#[tokio::test]
async fn oci_download_of_a_helm_chart_uses_helm_credentials() {
    let env = Env::cluster("oci-chart").await;
    let reg = Registry::basic_auth();
    let (user, password) = reg.user();
    let home = tempfile::tempdir().expect("helm home");
    let repo = unique("charts");
    support::charts::push_oci(
        home.path(),
        &reg.host,
        &repo,
        "demo",
        &["1.2.3"],
        Some((user, password)),
    );
    let chart = format!("oci://{}/{repo}/demo", reg.host);
    env.secret("helm", &chart, user, password).await;
    let mut run = Run::new(json!([download(
        &format!("{chart}:1.2.3"),
        json!({"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "outPath": "demo.tgz"})
    )]));
    let p = env.run_with_secrets(&mut run).await;
    assert!(succeeded(&p), "{p:?}: {:?}", run.status);
    let tgz = std::fs::read(env.work().join("demo.tgz")).expect("chart");
    assert_eq!(&tgz[..2], &[0x1f, 0x8b], "a gzip archive");
    let listing = support::charts::helm(
        home.path(),
        &[
            "show",
            "chart",
            &env.work().join("demo.tgz").display().to_string(),
        ],
    );
    assert!(listing.contains("version: 1.2.3"), "{listing}");
}

// --------------------------------------------------------------------------------------- oci-push

#[tokio::test]
async fn oci_push_copies_across_registries_with_annotations_and_retags_in_place() {
    let env = Env::cluster("oci-push").await;
    let src = Registry::anonymous();
    let dst = Registry::basic_auth();
    let (user, password) = dst.user();
    let repo = unique("steps/src");
    let src_digest = src.image(&repo, "v1", &[(TEXT, b"payload")]).await;
    let dest_repo = unique("steps/dest");
    let dest_image = format!("{}/{dest_repo}", dst.host);
    env.secret("image", &dest_image, user, password).await;

    let mut run = Run::new(json!([{"uses": "oci-push", "as": "push", "config": {
        "srcRef": format!("{}/{repo}:v1", src.host),
        "destRef": format!("{dest_image}:prod"),
        "annotations": {"org.example.promoted-by": "haul", "index:ignored": "x"}
    }}]));
    let p = env.run_with_secrets(&mut run).await;
    assert!(succeeded(&p), "{p:?}: {:?}", run.status);
    let (manifest, digest) = dst.manifest(&dest_repo, "prod").await;
    assert_eq!(
        run.output("push"),
        json!({"image": format!("{dest_image}:prod"), "digest": digest, "tag": "prod"})
    );
    assert_eq!(
        manifest["annotations"],
        json!({"org.example.promoted-by": "haul"})
    );
    assert_ne!(digest, src_digest, "annotated, so a new manifest");
    // The layer came along.
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_string();
    let resp = dst
        .req(reqwest::Method::GET, &format!("{dest_repo}/blobs/{layer}"))
        .send()
        .await
        .expect("blob");
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), b"payload");

    // Retag in place, no annotations: the very same manifest.
    let mut run = Run::new(json!([{"uses": "oci-push", "as": "push", "config": {
        "srcRef": format!("{}/{repo}@{src_digest}", src.host),
        "destRef": format!("{}/{repo}:stable", src.host)
    }}]));
    let p = env.run_with_secrets(&mut run).await;
    assert!(succeeded(&p), "{p:?}: {:?}", run.status);
    assert_eq!(run.output("push")["digest"], json!(src_digest));
    assert_eq!(src.manifest(&repo, "stable").await.1, src_digest);

    // A digest as destination is refused.
    let mut run = Run::new(json!([{"uses": "oci-push", "config": {
        "srcRef": format!("{}/{repo}:v1", src.host),
        "destRef": format!("{}/{repo}@{src_digest}", src.host)
    }}]));
    assert!(matches!(
        env.run_with_secrets(&mut run).await,
        Progress::Done(PromotionPhase::Failed, _)
    ));
    assert!(
        run.step(0).1.contains("config.destRef"),
        "{}",
        run.step(0).1
    );
}

#[tokio::test]
async fn oci_push_of_an_index_annotates_children_and_index_by_scope() {
    let env = Env::local();
    let reg = Registry::anonymous();
    let repo = unique("steps/multi");
    let amd = reg.image(&repo, "amd", &[(TEXT, b"amd64 bits")]).await;
    let arm = reg.image(&repo, "arm", &[(TEXT, b"arm64 bits")]).await;
    let (amd_m, _) = reg.manifest(&repo, &amd).await;
    let (arm_m, _) = reg.manifest(&repo, &arm).await;
    let size = |v: &Value| serde_json::to_vec(v).expect("json").len();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": size(&amd_m), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": size(&arm_m), "platform": {"os": "linux", "architecture": "arm64"}}
        ]
    });
    reg.put_manifest(
        &repo,
        "v1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
    let dest = unique("steps/multi-dest");
    let mut run = Run::new(json!([{"uses": "oci-push", "as": "push", "config": {
        "srcRef": format!("{}/{repo}:v1", reg.host),
        "destRef": format!("{}/{dest}:v1", reg.host),
        "annotations": {"index:scope": "index", "manifest:scope": "image"}
    }}]));
    let p = env
        .run(&mut run, &FixedCredentials(Credentials::None))
        .await;
    assert!(succeeded(&p), "{p:?}: {:?}", run.status);
    let (idx, digest) = reg.manifest(&dest, "v1").await;
    assert_eq!(run.output("push")["digest"], json!(digest));
    assert_eq!(idx["annotations"], json!({"scope": "index"}));
    for entry in idx["manifests"].as_array().expect("entries") {
        let d = entry["digest"].as_str().expect("digest");
        let (child, child_digest) = reg.manifest(&dest, d).await;
        assert_eq!(child_digest, d);
        assert_eq!(entry["size"], json!(size(&child)));
        assert_eq!(child["annotations"], json!({"scope": "image"}));
    }

    // oci-download resolves the index to linux/amd64.
    let mut run = Run::new(json!([download(
        &format!("{}/{dest}:v1", reg.host),
        json!({})
    )]));
    assert!(succeeded(
        &env.run(&mut run, &FixedCredentials(Credentials::None))
            .await
    ));
    assert_eq!(
        std::fs::read(env.work().join("out/artifact")).expect("file"),
        b"amd64 bits"
    );
}

#[tokio::test]
async fn artifact_copy_enforces_the_cross_repository_size_limit() {
    let reg = Registry::anonymous();
    let repo = unique("steps/limit");
    reg.image(&repo, "v1", &[(TEXT, &[7u8; 4096])]).await;
    let registry = ImageDiscoverer::new(DiscovererConfig::default()).expect("client");
    let src = ArtifactRef::parse(&format!("{}/{repo}:v1", reg.host)).expect("src");
    let other = ArtifactRef::parse(&format!("{}/{repo}-copy:v1", reg.host)).expect("dst");
    let same = ArtifactRef::parse(&format!("{}/{repo}:v2", reg.host)).expect("same");
    let none = Default::default();
    let err = registry
        .copy_artifact(&src, None, &other, None, false, &none, Some(1024))
        .await
        .expect_err("over the limit");
    assert!(
        err.to_string().starts_with(
            "compressed artifact size 4.0 KiB exceeds maximum allowed size of 1.0 KiB"
        ),
        "{err}"
    );
    let err = registry
        .copy_artifact(&src, None, &other, None, false, &none, Some(0))
        .await
        .expect_err("disabled");
    assert_eq!(err.to_string(), "cross-repository push is disabled");
    // Within one repository no blob moves: no limit applies.
    registry
        .copy_artifact(&src, None, &same, None, false, &none, Some(0))
        .await
        .expect("retag");
}

// ------------------------------------------------------------------------------------ argocd-wait

fn app_status(health: &str, sync: &str) -> Value {
    json!({
        "health": {"status": health},
        "sync": {"status": sync, "revision": "abc"},
        "reconciledAt": "2026-12-05T07:00:05Z",
        "operationState": {"phase": "Succeeded", "startedAt": "2026-12-05T06:59:58Z",
            "finishedAt": "2026-12-05T07:00:01Z", "syncResult": {"revision": "abc"}}
    })
}

async fn create_app(env: &Env, name: &str, labels: Value, status: Value) -> Api<Application> {
    let api: Api<Application> =
        Api::namespaced(env.client.clone().expect("cluster"), &env.namespace);
    let app: Application = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": env.namespace, "labels": labels},
        "spec": {
            "project": "default",
            "source": {"repoURL": "http://127.0.0.1:1/gitops.git", "targetRevision": "main", "path": "."},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name}
        },
        "status": status
    }))
    .expect("Application");
    api.create(&PostParams::default(), &app)
        .await
        .expect("create Application");
    api
}

async fn set_status(api: &Api<Application>, name: &str, status: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("patch as Argo CD");
}

#[tokio::test]
async fn argocd_wait_runs_until_healthy_and_synced() {
    let env = Env::cluster("argocd-wait").await;
    let api = create_app(
        &env,
        "web",
        json!({"tier": "front"}),
        app_status("Progressing", "Synced"),
    )
    .await;
    create_app(
        &env,
        "api",
        json!({"tier": "front"}),
        app_status("Healthy", "Synced"),
    )
    .await;
    let creds = FixedCredentials(Credentials::None);
    let mut run = Run::new(
        json!([{"uses": "argocd-wait", "as": "wait", "config": {"apps": [
            {"selector": {"matchLabels": {"tier": "front"}}}
        ]}}]),
    );
    let p = env.run(&mut run, &creds).await;
    assert!(matches!(p, Progress::Wait(_)), "{p:?}");
    let (status, msg) = run.step(0);
    assert_eq!(status, Some(StepStatus::Running));
    assert_eq!(
        msg,
        format!(
            "waiting: Argo CD Application {}/web health is Progressing",
            env.namespace
        )
    );

    set_status(&api, "web", app_status("Healthy", "OutOfSync")).await;
    assert!(matches!(env.run(&mut run, &creds).await, Progress::Wait(_)));
    assert!(
        run.step(0).1.ends_with("web sync status is OutOfSync"),
        "{}",
        run.step(0).1
    );

    set_status(&api, "web", app_status("Healthy", "Synced")).await;
    let p = env.run(&mut run, &creds).await;
    assert!(succeeded(&p), "{p:?}: {:?}", run.status);
    let ns = &env.namespace;
    let out = run.output("wait");
    let mut apps = out["apps"].as_array().expect("apps").clone();
    apps.sort_by_key(|a| a["name"].as_str().map(str::to_string));
    assert_eq!(
        apps,
        vec![
            json!({"name": "api", "namespace": ns}),
            json!({"name": "web", "namespace": ns})
        ]
    );
    assert_eq!(
        out["healthStatus"],
        json!({format!("{ns}/api"): "Healthy", format!("{ns}/web"): "Healthy"})
    );
}

#[tokio::test]
async fn argocd_wait_fails_on_a_regression_and_times_out_naming_the_app() {
    let env = Env::cluster("argocd-wait-fail").await;
    let api = create_app(&env, "web", json!({}), app_status("Healthy", "OutOfSync")).await;
    let creds = FixedCredentials(Credentials::None);
    let mut run = Run::new(json!([{"uses": "argocd-wait", "config": {"apps": [{"name": "web"}]}}]));
    assert!(matches!(env.run(&mut run, &creds).await, Progress::Wait(_)));
    set_status(&api, "web", app_status("Degraded", "Synced")).await;
    let p = env.run(&mut run, &creds).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Failed, _)),
        "{p:?}"
    );
    assert_eq!(
        run.step(0).1,
        format!(
            "Argo CD Application {}/web health has regressed from Healthy to Degraded",
            env.namespace
        )
    );

    // Stale health: a hard refresh is requested, and the timeout names the state.
    let mut stale = app_status("Healthy", "Synced");
    stale["reconciledAt"] = json!("2026-12-05T07:00:00Z");
    create_app(&env, "slow", json!({}), stale).await;
    let mut run = Run::new(
        json!([{"uses": "argocd-wait", "retry": {"timeout": "1s"}, "config": {"apps": [
            {"name": "slow", "waitFor": ["health"]}
        ]}}]),
    );
    assert!(matches!(env.run(&mut run, &creds).await, Progress::Wait(_)));
    let slow = api.get("slow").await.expect("slow");
    assert_eq!(
        slow.metadata
            .annotations
            .unwrap_or_default()
            .get("argocd.argoproj.io/refresh")
            .map(String::as_str),
        Some("hard")
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let p = env.run(&mut run, &creds).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Errored, _)),
        "{p:?}"
    );
    let msg = run.step(0).1;
    assert!(msg.contains("timed out after 1s"), "{msg}");
    assert!(
        msg.contains(&format!(
            "Argo CD Application {}/slow: health is stale",
            env.namespace
        )),
        "{msg}"
    );

    // A missing Application is named.
    let mut run =
        Run::new(json!([{"uses": "argocd-wait", "config": {"apps": [{"name": "nope"}]}}]));
    let p = env.run(&mut run, &creds).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Errored, _)),
        "{p:?}"
    );
    assert!(
        run.step(0).1.contains(&format!(
            "Argo CD Application {}/nope not found",
            env.namespace
        )),
        "{}",
        run.step(0).1
    );
}

// ------------------------------------------------------------------------------------ github-push

fn git_creds() -> FixedCredentials {
    let s = services();
    FixedCredentials(Credentials::Basic {
        username: s.var("HAUL_TEST_GIT_USER").to_string(),
        password: s.var("HAUL_TEST_GIT_PASSWORD").to_string(),
    })
}

/// A repository `acme/<unique>` on the git server with one commit on `main`; its URL and bare
/// path.
fn seeded_repo() -> (String, std::path::PathBuf) {
    let s = services();
    let url = s.new_repo(&format!("acme/{}", unique("gh")));
    let bare = s.bare_path(&url);
    let tmp = tempfile::tempdir().expect("tmp");
    support::git(tmp.path(), &["init", "-q", "-b", "main", "w"]);
    let w = tmp.path().join("w");
    std::fs::write(w.join("values.yaml"), "tag: v1\n").expect("write");
    support::git(&w, &["add", "."]);
    support::git(&w, &["commit", "-q", "-m", "seed"]);
    let bare_s = bare.display().to_string();
    support::git(&w, &["push", "-q", &bare_s, "HEAD:refs/heads/main"]);
    (url, bare)
}

fn bare_ref(bare: &Path, r: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args([
            "--git-dir",
            &bare.display().to_string(),
            "rev-parse",
            "--verify",
            "-q",
            r,
        ])
        .output()
        .expect("git");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn clone_edit_commit(url: &str) -> Value {
    json!([
        {"uses": "git-clone", "config": {"repoURL": url, "checkout": [{"branch": "main", "path": "src"}]}},
        {"uses": "yaml-update", "config": {"path": "src/values.yaml", "updates": [{"key": "tag", "value": "v2"}]}},
        {"uses": "git-commit", "config": {"path": "src", "message": "promote v2"}}
    ])
}

fn with_push(mut steps: Value, config: Value) -> Value {
    steps
        .as_array_mut()
        .expect("array")
        .push(json!({"uses": "github-push", "as": "push", "config": config}));
    steps
}

#[tokio::test]
async fn github_push_integrates_and_stages_commits_before_calling_the_api() {
    let env = Env::local();
    let (url, bare) = seeded_repo();
    let creds = git_creds();
    // Clone, edit, commit; then someone else moves main before github-push runs.
    let mut run = Run::new(with_push(clone_edit_commit(&url), json!({"path": "src"})));
    env.steps(&mut run, &creds, 3).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let bare_s = bare.display().to_string();
    support::git(tmp.path(), &["clone", "-q", &bare_s, "other"]);
    let other = tmp.path().join("other");
    std::fs::write(other.join("README.md"), "someone else\n").expect("write");
    support::git(&other, &["add", "."]);
    support::git(&other, &["commit", "-q", "-m", "concurrent change"]);
    support::git(&other, &["push", "-q", "origin", "HEAD:main"]);
    let remote_main = bare_ref(&bare, "refs/heads/main").expect("main");

    let p = env.run(&mut run, &creds).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Errored, _)),
        "{p:?}"
    );
    let (_, msg) = run.step(3);
    // The git server has no GitHub API: the first API call fails, and says which.
    assert!(msg.starts_with("error getting branch main:"), "{msg}");
    // Before that, the local commit was rebased onto the remote's new head and pushed, with
    // its objects, to the hidden staging ref; main itself was not touched.
    let staging = format!("refs/kargo/staging/{}", env.promotion);
    let staged = bare_ref(&bare, &staging).expect("staging ref pushed");
    let local = support::git(&env.work().join("src"), &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    assert_eq!(staged, local);
    assert_eq!(
        bare_ref(&bare, &format!("{staged}^")),
        Some(remote_main.clone())
    );
    assert_eq!(bare_ref(&bare, "refs/heads/main"), Some(remote_main));
    let tree = support::git(&env.work().join("src"), &["show", "HEAD:README.md"]);
    assert_eq!(tree, "someone else\n");
}

#[tokio::test]
async fn github_push_generated_branch_forces_and_skips_integration() {
    let env = Env::local();
    let (url, bare) = seeded_repo();
    let creds = git_creds();
    let mut run = Run::new(with_push(
        clone_edit_commit(&url),
        json!({"path": "src", "generateTargetBranch": true, "maxAttempts": 3}),
    ));
    let p = env.run(&mut run, &creds).await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Errored, _)),
        "{p:?}"
    );
    let (_, msg) = run.step(3);
    // The generated branch does not exist yet: the comparison starts from the worktree's branch.
    assert!(msg.starts_with("error getting branch main:"), "{msg}");
    let generated = format!("refs/heads/kargo/promotion/{}", env.promotion);
    assert_eq!(
        bare_ref(&bare, &generated),
        None,
        "only the API creates the branch"
    );
    assert!(bare_ref(&bare, &format!("refs/kargo/staging/{}", env.promotion)).is_some());
}

#[tokio::test]
async fn github_push_config_and_credential_errors() {
    let env = Env::local();
    let (url, bare) = seeded_repo();
    // No credentials for the repository: Kargo's message, nothing pushed.
    let mut run = Run::new(with_push(clone_edit_commit(&url), json!({"path": "src"})));
    // Clone with credentials, then push without.
    env.steps(&mut run, &git_creds(), 3).await;
    let p = env
        .run(&mut run, &FixedCredentials(Credentials::None))
        .await;
    assert!(
        matches!(p, Progress::Done(PromotionPhase::Failed, _)),
        "{p:?}"
    );
    assert_eq!(run.step(3).1, format!("no credentials found for {url}"));
    assert_eq!(
        bare_ref(&bare, &format!("refs/kargo/staging/{}", env.promotion)),
        None
    );

    for (config, want) in [
        (
            json!({"path": "src", "generateTargetBranch": true, "targetBranch": "x"}),
            "mutually exclusive",
        ),
        (
            json!({"path": "src", "maxAttempts": 0}),
            "config.maxAttempts",
        ),
        (json!({"path": "src", "bogus": 1}), "bogus"),
        (json!({"path": "nowhere"}), "config.path"),
    ] {
        let mut run = Run::new(json!([{"uses": "github-push", "config": config}]));
        let p = env.run(&mut run, &git_creds()).await;
        assert!(
            matches!(p, Progress::Done(PromotionPhase::Failed, _)),
            "{p:?}"
        );
        assert!(run.step(0).1.contains(want), "{want}: {}", run.step(0).1);
    }
}
