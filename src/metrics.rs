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

/// A request of haul's kube client: the verb and resource as kube-apiserver's
/// `apiserver_request_total` names them (`GET`/`stages`, `APPLY`/`stages/status`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeRequestLabel {
    pub verb: String,
    pub resource: String,
}

/// A part of a promotion's time (see `controller::promotion_phases`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PromotionPhaseLabel {
    pub phase: String,
}

/// 1 ms .. ~33 s: promotion phases on loopback take milliseconds.
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
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
    /// Per promotion, the time of each of its phases.
    pub promotion_phase: Family<PromotionPhaseLabel, Histogram, fn() -> Histogram>,
    pub discovery_duration: Histogram,
    pub leader: Gauge,
    /// 1 while this controller runs under another identity than haul's admission policies
    /// expect (its auto-promotions are refused); see `controller::identity`.
    pub identity_mismatch: Gauge,
    /// Requests the controller's kube client sent, by verb and resource (see `kube_client`).
    pub kube_requests: Family<KubeRequestLabel, Counter>,
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
            promotion_phase: Family::new_with_constructor(phase_histogram),
            discovery_duration: seconds_histogram(),
            leader: Gauge::default(),
            identity_mismatch: Gauge::default(),
            kube_requests: Family::default(),
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
                "promotion_phase_seconds",
                "Time a promotion spent in each phase: queue (created to started, whole \
                 seconds), prepare, status (writes), event, step/<step>, git/fetch, \
                 git/worktree, git/push (within their steps)",
                m.promotion_phase.clone(),
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
            r.register(
                "identity_mismatch",
                "1 while the controller runs under another identity than haul's admission \
                 policies expect (its auto-promotions are refused)",
                m.identity_mismatch.clone(),
            );
            r.register(
                "kube_requests",
                "Requests this process sent to the Kubernetes API server, by verb and resource",
                m.kube_requests.clone(),
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
///
/// `/healthz` fails (503) while a watch, work queue or reconcile of `health` stops making
/// progress, naming which; `/healthz` and `/readyz` also show the notices of `health` (such as a
/// controller identity the admission policies do not expect) without failing.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    health: Health,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let m = metrics.clone();
    let live = health.clone();
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
        .route(
            "/healthz",
            get(move || {
                let h = live.clone();
                async move {
                    let (code, body) =
                        healthz(h.liveness.check(&h.thresholds), &h.liveness.notices());
                    (status(code), body)
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                let h = health.clone();
                async move {
                    let (code, body) = readyz(
                        ready.load(std::sync::atomic::Ordering::Relaxed),
                        &h.liveness.notices(),
                    );
                    (status(code), body)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

/// What `/healthz` and `/readyz` read: the progress of the controllers and when its lack fails
/// liveness.
#[derive(Clone, Default)]
pub struct Health {
    pub liveness: Arc<crate::controller::liveness::Liveness>,
    pub thresholds: crate::controller::liveness::Thresholds,
}

/// The `/healthz` answer: 200 `ok` (and the notices), or 503 naming what stopped making
/// progress.
pub fn healthz(verdict: Result<(), Vec<String>>, notices: &[String]) -> (u16, String) {
    let (code, mut lines) = match verdict {
        Ok(()) => (200, vec!["ok".to_string()]),
        Err(problems) => (
            503,
            problems
                .into_iter()
                .map(|p| format!("unhealthy: {p}"))
                .collect(),
        ),
    };
    lines.extend(notices.iter().cloned());
    (code, lines.join("\n") + "\n")
}

/// The `/readyz` answer: 200 `ready` once started (and the notices), else 503 `starting`.
pub fn readyz(ready: bool, notices: &[String]) -> (u16, String) {
    let (code, first) = if ready {
        (200, "ready")
    } else {
        (503, "starting")
    };
    let mut lines = vec![first.to_string()];
    lines.extend(notices.iter().cloned());
    (code, lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_fails_naming_each_problem_and_shows_notices() {
        assert_eq!(healthz(Ok(()), &[]), (200, "ok\n".to_string()));
        let notice = ["warning: runs as the wrong user".to_string()];
        assert_eq!(
            healthz(Ok(()), &notice),
            (200, "ok\nwarning: runs as the wrong user\n".to_string())
        );
        let (code, body) = healthz(
            Err(vec!["watch of stages down".into(), "queue stuck".into()]),
            &notice,
        );
        assert_eq!(code, 503);
        assert_eq!(
            body,
            "unhealthy: watch of stages down\nunhealthy: queue stuck\nwarning: runs as the wrong user\n"
        );
    }

    #[test]
    fn readyz_shows_notices_without_failing() {
        assert_eq!(readyz(false, &[]), (503, "starting\n".to_string()));
        assert_eq!(
            readyz(true, &["warning: x".to_string()]),
            (200, "ready\nwarning: x\n".to_string())
        );
    }

    #[test]
    fn identity_mismatch_is_exported() {
        let m = Metrics::default();
        m.identity_mismatch.set(1);
        assert!(
            m.encode().contains("haul_identity_mismatch 1"),
            "{}",
            m.encode()
        );
    }
}
