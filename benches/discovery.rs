//! Warehouse image discovery against real registries (docker-registry and moto's ECR on
//! 127.0.0.1): a repository with many tags, each strategy run twice (first run on a fresh
//! discoverer, then a repeat with the tag list unchanged), reporting wall time and registry
//! requests by kind.
//!
//!     hack/test-services.sh install      # once
//!     cargo bench --bench discovery
//!
//! Starts and stops its own services (or uses those named by `HAUL_TEST_REGISTRY` and
//! `HAUL_TEST_MOTO_URL`). Knobs: `HAUL_BENCH_TAGS` (default 10000), `HAUL_BENCH_ECR_IMAGES`
//! (default 10000), `HAUL_BENCH_SEED_SECONDS` (time budget for pushing each repository, default
//! 300; whatever was pushed by then is measured). The report is printed as Markdown and written
//! to `target/bench-discovery.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use haul::api::warehouse::ImageSubscription;
use haul::discovery::{
    DiscovererConfig, ImageDiscoverer, RateLimits, RegistryCredentials, RequestCounts,
};
use serde_json::{Value, json};

#[path = "support/registry.rs"]
mod registry;

use registry::{BenchResult, push_image, seed_oci, sha256, tag, upload_blob};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const ECR_REGION: &str = "us-east-1";

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ------------------------------------------------------------------------------------- services

struct Services {
    registry: String,
    moto_url: String,
    owned: Option<PathBuf>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/test-services.sh")
}

impl Services {
    fn start() -> BenchResult<Self> {
        if let (Ok(registry), Ok(moto_url)) = (
            std::env::var("HAUL_TEST_REGISTRY"),
            std::env::var("HAUL_TEST_MOTO_URL"),
        ) {
            return Ok(Self {
                registry,
                moto_url,
                owned: None,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("hbench")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?
            .keep();
        // Stops the services should this process be killed before `Drop` runs.
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
        let mut services = Self {
            registry: String::new(),
            moto_url: String::new(),
            owned: Some(dir.clone()),
        };
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "test-services start failed (run `hack/test-services.sh install`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let vars = Command::new("bash")
            .arg("-c")
            .arg(r#". "$1/env"; printf '%s\0' "$HAUL_TEST_REGISTRY" "$HAUL_TEST_MOTO_URL""#)
            .arg("_")
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&vars.stdout).into_owned();
        let mut v = text.split('\0');
        services.registry = v.next().unwrap_or_default().to_owned();
        services.moto_url = v.next().unwrap_or_default().to_owned();
        if services.registry.is_empty() || services.moto_url.is_empty() {
            return Err(format!("bad env file: {text:?}"));
        }
        Ok(services)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned {
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
}

// ---------------------------------------------------------------------------------------- seeding

fn ecr_seed_client(moto: &str) -> aws_sdk_ecr::Client {
    let conf = aws_sdk_ecr::Config::builder()
        .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
        .region(aws_sdk_ecr::config::Region::new(ECR_REGION))
        .endpoint_url(moto)
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "seed", "seed", None, None, "bench",
        ))
        .build();
    aws_sdk_ecr::Client::from_conf(conf)
}

/// PutImage of `n` distinct manifests (with `imageDigest`, which moto does not compute), at most
/// `budget` long.
async fn seed_ecr(
    moto: &str,
    repo: &str,
    n: usize,
    budget: Duration,
) -> BenchResult<(usize, Duration)> {
    let client = ecr_seed_client(moto);
    client
        .create_repository()
        .repository_name(repo)
        .send()
        .await
        .map_err(|e| format!("create repository: {e:?}"))?;
    let t0 = Instant::now();
    let results: Vec<BenchResult<bool>> = stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move {
                if t0.elapsed() > budget {
                    return Ok(false);
                }
                let body = json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(format!("config {i}").as_bytes()), "size": 1},
                    "layers": [],
                })
                .to_string();
                let digest = sha256(body.as_bytes());
                client
                    .put_image()
                    .repository_name(repo)
                    .image_manifest(body)
                    .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                    .image_tag(tag(i))
                    .image_digest(digest)
                    .send()
                    .await
                    .map_err(|e| format!("put image: {e:?}"))?;
                Ok(true)
            }
        })
        .buffer_unordered(4)
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

// ---------------------------------------------------------------------------------------- running

struct Row {
    target: String,
    strategy: String,
    run: &'static str,
    wall: Duration,
    found: usize,
    counts: RequestCounts,
}

fn sub(v: Value) -> BenchResult<ImageSubscription> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Runs `sub` twice on a fresh discoverer and records both runs.
async fn measure(
    rows: &mut Vec<Row>,
    target: &str,
    strategy: &str,
    host: &str,
    config: &DiscovererConfig,
    sub: &ImageSubscription,
    creds: Option<&RegistryCredentials>,
) -> BenchResult<()> {
    let d = ImageDiscoverer::new(config.clone()).map_err(|e| e.to_string())?;
    for run in ["first", "repeat"] {
        let before = d.stats().registry(host);
        let t0 = Instant::now();
        let r = d.discover(sub, creds).await.map_err(|e| e.to_string())?;
        let wall = t0.elapsed();
        let counts = d.stats().registry(host).since(&before);
        eprintln!(
            "{target:<5} {strategy:<28} {run:<6} {:>9.1} ms  {:>3} refs  {counts}",
            wall.as_secs_f64() * 1e3,
            r.references.len()
        );
        rows.push(Row {
            target: target.to_owned(),
            strategy: strategy.to_owned(),
            run,
            wall,
            found: r.references.len(),
            counts,
        });
    }
    Ok(())
}

fn report(rows: &[Row], header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}");
    let _ = writeln!(
        s,
        "| target | strategy | run | wall | refs | list | manifest GET | HEAD | blob | token | ecr-describe | ecr-batch-get |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let c = &r.counts;
        let wall = if r.wall.as_secs_f64() >= 1.0 {
            format!("{:.2} s", r.wall.as_secs_f64())
        } else {
            format!("{:.1} ms", r.wall.as_secs_f64() * 1e3)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.strategy,
            r.run,
            wall,
            r.found,
            c.list,
            c.manifest,
            c.head,
            c.blob,
            c.token,
            c.ecr_describe,
            c.ecr_batch_get
        );
    }
    s
}

async fn run(services: &Services) -> BenchResult<String> {
    let n_tags = env_num("HAUL_BENCH_TAGS", 10_000) as usize;
    let n_ecr = env_num("HAUL_BENCH_ECR_IMAGES", 10_000) as usize;
    let budget = Duration::from_secs(env_num("HAUL_BENCH_SEED_SECONDS", 300));
    let mut out = String::new();
    let mut rows = Vec::new();

    // ---- OCI (docker-registry)
    let repo = format!("bench/app-{}", std::process::id());
    let base = format!("http://{}", services.registry);
    let (pushed, took) = seed_oci(&base, &repo, n_tags, budget).await?;
    eprintln!(
        "seeded {pushed} tags into {repo} in {:.1} s",
        took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "OCI: docker-registry 2.8 (filesystem storage), one repository with **{pushed} tags**, each a distinct image \
         (distinct config and creation time; tags `1.<i/100>.<i%100>`); seeding took {:.1} s.\n",
        took.as_secs_f64()
    );
    let url = format!("{}/{repo}", services.registry);
    let unlimited = DiscovererConfig {
        rate_limits: RateLimits {
            per_second: 0.0,
            ..RateLimits::default()
        },
        ..DiscovererConfig::default()
    };
    let default = DiscovererConfig::default();
    let ttl0 = DiscovererConfig {
        tag_memo_ttl: Duration::ZERO,
        ..unlimited.clone()
    };
    let host = services.registry.as_str();
    let cases: Vec<(&str, &DiscovererConfig, Value)> = vec![
        (
            "SemVer `^1.50` (20 req/s)",
            &default,
            json!({"repoURL": url, "constraint": "^1.50"}),
        ),
        ("SemVer, no constraint", &unlimited, json!({"repoURL": url})),
        (
            "Lexical",
            &unlimited,
            json!({"repoURL": url, "imageSelectionStrategy": "Lexical"}),
        ),
        (
            "NewestBuild",
            &unlimited,
            json!({"repoURL": url, "imageSelectionStrategy": "NewestBuild"}),
        ),
        (
            "NewestBuild, tag memo TTL 0",
            &ttl0,
            json!({"repoURL": url, "imageSelectionStrategy": "NewestBuild"}),
        ),
        (
            "Digest `1.99.99`",
            &default,
            json!({"repoURL": url, "imageSelectionStrategy": "Digest", "constraint": "1.99.99"}),
        ),
        (
            "SemVer + platform linux/amd64",
            &unlimited,
            json!({"repoURL": url, "platform": "linux/amd64"}),
        ),
    ];
    for (name, config, s) in &cases {
        measure(&mut rows, "OCI", name, host, config, &sub(s.clone())?, None).await?;
    }

    // One new tag (the newest by version and by time) on warm discoverers.
    let warm_cases = [
        ("SemVer, no constraint", json!({"repoURL": url})),
        (
            "NewestBuild",
            json!({"repoURL": url, "imageSelectionStrategy": "NewestBuild"}),
        ),
    ];
    let mut warm = Vec::new();
    for (name, s) in &warm_cases {
        let d = ImageDiscoverer::new(unlimited.clone()).map_err(|e| e.to_string())?;
        let s = sub(s.clone())?;
        d.discover(&s, None).await.map_err(|e| e.to_string())?;
        warm.push((name, d, s));
    }
    let http = reqwest::Client::new();
    let layer = upload_blob(&http, &base, &repo, b"layer".to_vec()).await?;
    push_image(
        &http,
        &base,
        &repo,
        &layer,
        "1.100.0",
        "2030-01-01T00:00:00Z",
    )
    .await?;
    for (name, d, s) in &warm {
        let before = d.stats().registry(host);
        let t0 = Instant::now();
        let r = d.discover(s, None).await.map_err(|e| e.to_string())?;
        let row = Row {
            target: "OCI".into(),
            strategy: (*name).to_string(),
            run: "after 1 new tag",
            wall: t0.elapsed(),
            found: r.references.len(),
            counts: d.stats().registry(host).since(&before),
        };
        eprintln!(
            "OCI   {name:<28} +1 tag {:>9.1} ms  {}",
            row.wall.as_secs_f64() * 1e3,
            row.counts
        );
        if r.references.first().map(|x| x.tag.as_str()) != Some("1.100.0") {
            return Err(format!("{name}: the new tag is not first"));
        }
        rows.push(row);
    }

    // ---- ECR (moto)
    let ecr_repo = format!("bench/ecr-{}", std::process::id());
    let (pushed_ecr, took_ecr) = seed_ecr(&services.moto_url, &ecr_repo, n_ecr, budget).await?;
    eprintln!(
        "seeded {pushed_ecr} ECR images into {ecr_repo} in {:.1} s",
        took_ecr.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "ECR: moto 5.2.5 `moto_server`, one repository with **{pushed_ecr} images** (one tag each) put with \
         `PutImage` in {:.1} s (moto's PutImage is linear in the repository size). moto ignores `maxResults`, \
         so DescribeImages answers in one page; real ECR would take {} pages of 1000.\n",
        took_ecr.as_secs_f64(),
        pushed_ecr.div_ceil(1000).max(1)
    );
    let ecr_url = format!("{ECR_HOST}/{ecr_repo}");
    let creds = RegistryCredentials::AwsStatic {
        access_key_id: "bench".into(),
        secret_access_key: "bench".into(),
        region: Some(ECR_REGION.into()),
    };
    let ecr_cases: Vec<(&str, Value)> = vec![
        ("SemVer, no constraint", json!({"repoURL": ecr_url})),
        (
            "Lexical",
            json!({"repoURL": ecr_url, "imageSelectionStrategy": "Lexical"}),
        ),
        (
            "NewestBuild",
            json!({"repoURL": ecr_url, "imageSelectionStrategy": "NewestBuild"}),
        ),
        (
            "Digest `1.99.99`",
            json!({"repoURL": ecr_url, "imageSelectionStrategy": "Digest", "constraint": "1.99.99"}),
        ),
    ];
    for (name, s) in &ecr_cases {
        measure(
            &mut rows,
            "ECR",
            name,
            ECR_HOST,
            &default,
            &sub(s.clone())?,
            Some(&creds),
        )
        .await?;
    }

    out.push_str(&report(&rows, ""));
    Ok(out)
}

fn main() {
    // Single-threaded here, before any runtime: the AWS SDK reads its endpoint from the
    // environment, so point it at moto now. IMDS stays off so nothing leaves 127.0.0.1.
    let services = match Services::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("discovery bench: {e}");
            std::process::exit(1);
        }
    };
    // SAFETY: no other thread exists yet.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &services.moto_url);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("discovery bench: runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(run(&services));
    drop(rt);
    drop(services);
    match result {
        Ok(md) => {
            println!("{md}");
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-discovery.md");
            if let Err(e) = std::fs::write(&path, &md) {
                eprintln!("cannot write {}: {e}", path.display());
            } else {
                eprintln!("wrote {}", path.display());
            }
        }
        Err(e) => {
            eprintln!("discovery bench failed: {e}");
            std::process::exit(1);
        }
    }
}
