//! What the creator-recording webhook costs a Promotion create: the same creates through the API
//! server with and without the MutatingWebhookConfiguration, interleaved in rounds so that a
//! noisy machine affects both alike. The webhook runs in-process over TLS on loopback, as each
//! controller replica serves it.
//!
//!   cargo bench --bench admission      (HAUL_BENCH_CREATES=200 creates per side, default)

use std::time::{Duration, Instant};

use haul::api::Promotion;
use haul_testenv::ControlPlane;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

const ROUNDS: usize = 10;

fn promotion(ns: &str, name: &str) -> Promotion {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"stage": "dev", "freight": "f1", "steps": [{"uses": "git-clone"}]}
    }))
    .expect("promotion")
}

fn webhook_config(addr: std::net::SocketAddr, ca_pem: &str) -> MutatingWebhookConfiguration {
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca_pem);
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "haul-bench"},
        "webhooks": [{
            "name": "create-actor.promotions.haul.kargo.akuity.io",
            "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "rules": [{"apiGroups": ["kargo.akuity.io"], "apiVersions": ["*"],
                       "operations": ["CREATE"], "resources": ["promotions"]}],
            "clientConfig": {"url": format!("https://{addr}/mutate-promotion"), "caBundle": ca}
        }]
    }))
    .expect("webhook config")
}

/// Creates `n` Promotions one after another; returns the time per create.
async fn creates(api: &Api<Promotion>, ns: &str, prefix: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let p = promotion(ns, &format!("{prefix}-{i}"));
        let t = Instant::now();
        let created = api
            .create(&PostParams::default(), &p)
            .await
            .expect("create");
        out.push(t.elapsed());
        let stamped = created
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(haul::api::ANNOTATION_CREATE_ACTOR));
        assert_eq!(
            stamped,
            prefix.starts_with("hook"),
            "webhook in force mismatch"
        );
    }
    out
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p95(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn main() {
    // The control plane starts (and stops) outside the runtime: it blocks on its own.
    let cp = ControlPlane::start(&haul::crds::local_cluster_crds()).expect("control plane");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(run(&cp));
}

async fn run(cp: &ControlPlane) {
    let per_side: usize = std::env::var("HAUL_BENCH_CREATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let per_round = (per_side / ROUNDS).max(1);
    let client = cp.client().await.expect("client");
    let ns = cp.namespace("bench-admission").await.expect("namespace");
    let dir = cp.dir().join("bench-webhook-tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let cert = cp.loopback_serving_cert().expect("cert");
    std::fs::write(dir.join("tls.crt"), &cert.cert_pem).expect("cert");
    std::fs::write(dir.join("tls.key"), &cert.key_pem).expect("key");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let serve_dir = dir.clone();
    tokio::spawn(async move { haul::admission::server::serve(addr, &serve_dir, None).await });

    let hooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let promotions: Api<Promotion> = Api::namespaced(client, &ns);
    let config = webhook_config(addr, cp.ca_cert_pem());
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        hooks
            .patch(
                "haul-bench",
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&config),
            )
            .await
            .expect("install webhook");
        // The configuration reaches the admission chain asynchronously: wait until a create is
        // stamped.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut probe = 0;
        loop {
            probe += 1;
            let name = format!("probe-{round}-{probe}");
            let created = promotions
                .create(&PostParams::default(), &promotion(&ns, &name))
                .await;
            if created.is_ok_and(|p| {
                p.metadata
                    .annotations
                    .is_some_and(|a| a.contains_key(haul::api::ANNOTATION_CREATE_ACTOR))
            }) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the webhook never came into force"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        with.extend(creates(&promotions, &ns, &format!("hook{round}"), per_round).await);
        hooks
            .delete("haul-bench", &DeleteParams::default())
            .await
            .expect("remove webhook");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            probe += 1;
            let name = format!("probe-{round}-{probe}");
            let created = promotions
                .create(&PostParams::default(), &promotion(&ns, &name))
                .await
                .expect("create");
            if !created
                .metadata
                .annotations
                .is_some_and(|a| a.contains_key(haul::api::ANNOTATION_CREATE_ACTOR))
            {
                break;
            }
            assert!(Instant::now() < deadline, "the webhook never went away");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        without.extend(creates(&promotions, &ns, &format!("plain{round}"), per_round).await);
    }
    let (mw, mo) = (median(&mut with), median(&mut without));
    println!(
        "Promotion create, {} per side in {ROUNDS} interleaved rounds:",
        with.len()
    );
    println!(
        "  without webhook: median {:.2} ms, p95 {:.2} ms",
        mo.as_secs_f64() * 1e3,
        p95(&mut without).as_secs_f64() * 1e3
    );
    println!(
        "  with webhook:    median {:.2} ms, p95 {:.2} ms",
        mw.as_secs_f64() * 1e3,
        p95(&mut with).as_secs_f64() * 1e3
    );
    println!(
        "  ratio of medians: {:.2}x (+{:.2} ms per create)",
        mw.as_secs_f64() / mo.as_secs_f64(),
        (mw.as_secs_f64() - mo.as_secs_f64()) * 1e3
    );
}
