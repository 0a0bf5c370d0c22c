//! Prometheus metrics: reconciles, errors and durations per controller; promotions by phase;
//! step durations; discovery time; and, read at scrape time, registry requests per registry and
//! kind and git cache clones/fetches.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::discovery::ImageDiscoverer;
use crate::git::RepoCache;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// A failed reconcile: which controller, and why (a condition reason such as
/// `AutoPromotionFailed` or `DeadlineExceeded`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub controller: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub step: String,
    pub status: String,
}

fn seconds_histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// The metrics haul exports.
pub struct Metrics {
    pub registry: std::sync::Mutex<Registry>,
    pub reconciles: Family<ControllerLabel, Counter>,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    pub reconcile_duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    pub promotions: Family<PhaseLabel, Counter>,
    pub step_duration: Family<StepLabel, Histogram, fn() -> Histogram>,
    pub discovery_duration: Histogram,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: std::sync::Mutex::new(Registry::with_prefix("haul")),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(seconds_histogram),
            promotions: Family::default(),
            step_duration: Family::new_with_constructor(seconds_histogram),
            discovery_duration: seconds_histogram(),
            leader: Gauge::default(),
        };
        if let Ok(mut r) = m.registry.lock() {
            r.register(
                "reconciles",
                "Reconciles per controller",
                m.reconciles.clone(),
            );
            r.register(
                "reconcile_errors",
                "Reconciles that failed to do what they decided, by controller and reason",
                m.reconcile_errors.clone(),
            );
            r.register(
                "reconcile_duration_seconds",
                "Reconcile duration per controller",
                m.reconcile_duration.clone(),
            );
            r.register(
                "promotions",
                "Promotions finished, by phase",
                m.promotions.clone(),
            );
            r.register(
                "promotion_step_duration_seconds",
                "Promotion step duration by step and outcome",
                m.step_duration.clone(),
            );
            r.register(
                "warehouse_discovery_duration_seconds",
                "Time to discover the artifacts of one Warehouse",
                m.discovery_duration.clone(),
            );
            r.register(
                "leader",
                "1 while this process holds the leader lease",
                m.leader.clone(),
            );
        }
        m
    }
}

impl Metrics {
    /// Starts timing a reconcile of `controller`; the time is recorded when the guard drops.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer<'_> {
        let label = ControllerLabel {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&label).inc();
        ReconcileTimer {
            metrics: self,
            label,
            start: Instant::now(),
        }
    }

    /// Counts a reconcile of `controller` that failed for `reason`.
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                controller: controller.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Adds the collectors that read registry and git counters when scraped.
    pub fn observe(&self, images: ImageDiscoverer, git: RepoCache) {
        if let Ok(mut r) = self.registry.lock() {
            r.register_collector(Box::new(SourceCollector { images, git }));
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    label: ControllerLabel,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&self.label)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[derive(Debug)]
struct SourceCollector {
    images: ImageDiscoverer,
    git: RepoCache,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    registry: String,
    kind: String,
}

impl Collector for SourceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.images.stats();
        let mut family = encoder.encode_descriptor(
            "registry_requests",
            "Requests sent to image registries, by registry and kind",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (registry, c) in &stats.registries {
            for (kind, n) in [
                ("list", c.list),
                ("manifest", c.manifest),
                ("head", c.head),
                ("blob", c.blob),
                ("token", c.token),
                ("ecr_describe", c.ecr_describe),
                ("ecr_batch_get", c.ecr_batch_get),
                ("ecr_token", c.ecr_token),
            ] {
                let label = RequestLabel {
                    registry: registry.clone(),
                    kind: kind.to_string(),
                };
                let enc = family.encode_family(&label)?;
                ConstCounter::new(n).encode(enc)?;
            }
        }
        let g = self.git.stats();
        for (name, help, n) in [
            (
                "git_clones",
                "Repositories cloned into the git cache",
                g.clones,
            ),
            ("git_fetches", "Fetches into cached repositories", g.fetches),
        ] {
            let enc = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            ConstCounter::new(n).encode(enc)?;
        }
        Ok(())
    }
}

/// Serves /metrics, /healthz and /readyz until the process ends.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let m = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(std::sync::atomic::Ordering::Relaxed) {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
