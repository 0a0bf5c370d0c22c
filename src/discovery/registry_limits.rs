//! Per-registry request budget and bookkeeping for image discovery: a client-side rate limiter
//! per registry host (Kargo: `IMAGE_REGISTRY_RATE_LIMIT`, 20 req/s), request counters by kind
//! (exported by [`super::images::ImageDiscoverer::stats`] for tests, benchmarks and metrics) and
//! a bounded LRU of manifest metadata keyed by digest (Kargo: `MAX_IMAGE_CACHE_ENTRIES`, 100k).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Default client-side rate limit per registry host, in requests per second.
pub const DEFAULT_RATE_LIMIT_PER_SECOND: f64 = 20.0;
/// Default burst: requests that may go out back to back before the rate applies.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 10;
/// Default capacity of the metadata cache (manifests by digest).
pub const DEFAULT_METADATA_CACHE_ENTRIES: usize = 100_000;

/// Locks a mutex, recovering the data if another thread panicked while holding it: every value
/// guarded here (caches, counters, limiter state) stays valid after a partial update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A GCRA ("leaky bucket as a meter") limiter: `rate` requests per second on average, with up to
/// `burst` requests allowed back to back. Each [`acquire`](Self::acquire) reserves the next slot
/// and sleeps until it, so concurrent callers are spaced out rather than rejected.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between two requests; `None` means unlimited.
    interval: Option<Duration>,
    /// How far ahead of the theoretical arrival time a request may go.
    tolerance: Duration,
    /// Theoretical arrival time of the next request.
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `rate_per_second <= 0` (or not finite) means unlimited. `burst` 0 is treated as 1.
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let interval = (rate_per_second.is_finite() && rate_per_second > 0.0)
            .then(|| Duration::from_secs_f64(1.0 / rate_per_second));
        let tolerance = interval
            .map(|i| i.saturating_mul(burst.max(1) - 1))
            .unwrap_or_default();
        Self {
            interval,
            tolerance,
            tat: Mutex::new(None),
        }
    }

    /// An unlimited limiter.
    pub fn unlimited() -> Self {
        Self::new(0.0, 1)
    }

    /// How long the caller must wait for its slot (and reserves it).
    fn reserve(&self) -> Duration {
        let Some(interval) = self.interval else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut tat = lock(&self.tat);
        let t = tat.map_or(now, |t| t.max(now));
        let allowed_at = t.checked_sub(self.tolerance).unwrap_or(now);
        *tat = Some(t + interval);
        allowed_at.saturating_duration_since(now)
    }

    /// Waits for the next request slot.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The kinds of registry request that are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// `GET /v2/<repo>/tags/list` (one per page).
    List,
    /// `GET /v2/<repo>/manifests/<ref>`: a manifest or index body.
    Manifest,
    /// `HEAD /v2/<repo>/manifests/<tag>`: the digest only.
    Head,
    /// `GET /v2/<repo>/blobs/<digest>`: an image config.
    Blob,
    /// A bearer-token request to the registry's auth realm.
    Token,
    /// ECR `DescribeImages` (one per page).
    EcrDescribe,
    /// ECR `BatchGetImage` (manifests of up to 100 images).
    EcrBatchGet,
    /// ECR `GetAuthorizationToken` (only needed to read config blobs from ECR's data plane).
    EcrToken,
}

impl RequestKind {
    pub const ALL: [RequestKind; 8] = [
        Self::List,
        Self::Manifest,
        Self::Head,
        Self::Blob,
        Self::Token,
        Self::EcrDescribe,
        Self::EcrBatchGet,
        Self::EcrToken,
    ];

    /// A stable label, e.g. for a metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Manifest => "manifest",
            Self::Head => "head",
            Self::Blob => "blob",
            Self::Token => "token",
            Self::EcrDescribe => "ecr-describe",
            Self::EcrBatchGet => "ecr-batch-get",
            Self::EcrToken => "ecr-token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Requests sent to one registry, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub list: u64,
    pub manifest: u64,
    pub head: u64,
    pub blob: u64,
    pub token: u64,
    pub ecr_describe: u64,
    pub ecr_batch_get: u64,
    pub ecr_token: u64,
}

impl RequestCounts {
    pub fn get(&self, kind: RequestKind) -> u64 {
        match kind {
            RequestKind::List => self.list,
            RequestKind::Manifest => self.manifest,
            RequestKind::Head => self.head,
            RequestKind::Blob => self.blob,
            RequestKind::Token => self.token,
            RequestKind::EcrDescribe => self.ecr_describe,
            RequestKind::EcrBatchGet => self.ecr_batch_get,
            RequestKind::EcrToken => self.ecr_token,
        }
    }

    fn slot(&mut self, kind: RequestKind) -> &mut u64 {
        match kind {
            RequestKind::List => &mut self.list,
            RequestKind::Manifest => &mut self.manifest,
            RequestKind::Head => &mut self.head,
            RequestKind::Blob => &mut self.blob,
            RequestKind::Token => &mut self.token,
            RequestKind::EcrDescribe => &mut self.ecr_describe,
            RequestKind::EcrBatchGet => &mut self.ecr_batch_get,
            RequestKind::EcrToken => &mut self.ecr_token,
        }
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        RequestKind::ALL.iter().map(|k| self.get(*k)).sum()
    }

    /// Requests that transfer a manifest body (OCI `GET` manifests plus ECR `BatchGetImage`).
    pub fn manifest_fetches(&self) -> u64 {
        self.manifest + self.ecr_batch_get
    }

    /// `self - earlier`, per kind (saturating).
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        let mut out = RequestCounts::default();
        for k in RequestKind::ALL {
            *out.slot(k) = self.get(k).saturating_sub(earlier.get(k));
        }
        out
    }

    fn add(&mut self, other: &RequestCounts) {
        for k in RequestKind::ALL {
            *self.slot(k) += other.get(k);
        }
    }
}

impl fmt::Display for RequestCounts {
    /// `list=1 manifest=20 ...`, kinds with a zero count omitted (`none` when all are zero).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in RequestKind::ALL {
            let n = self.get(k);
            if n > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{k}={n}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Counters of cache effectiveness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Manifest metadata found in the digest cache.
    pub metadata_hits: u64,
    /// Manifest metadata that had to be fetched.
    pub metadata_misses: u64,
    /// Discoveries answered from the previous selection because the tag list was unchanged.
    pub selections_reused: u64,
}

impl CacheCounts {
    pub fn since(&self, earlier: &CacheCounts) -> CacheCounts {
        CacheCounts {
            metadata_hits: self.metadata_hits.saturating_sub(earlier.metadata_hits),
            metadata_misses: self.metadata_misses.saturating_sub(earlier.metadata_misses),
            selections_reused: self
                .selections_reused
                .saturating_sub(earlier.selections_reused),
        }
    }
}

/// A snapshot of the request counters of an [`ImageDiscoverer`](super::images::ImageDiscoverer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Requests per registry host (`host[:port]`).
    pub registries: BTreeMap<String, RequestCounts>,
    pub cache: CacheCounts,
}

impl RegistryStats {
    /// The counts for one registry host (zero if it was never contacted).
    pub fn registry(&self, host: &str) -> RequestCounts {
        self.registries.get(host).copied().unwrap_or_default()
    }

    /// The counts summed over all registries.
    pub fn total(&self) -> RequestCounts {
        let mut out = RequestCounts::default();
        for c in self.registries.values() {
            out.add(c);
        }
        out
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &RegistryStats) -> RegistryStats {
        RegistryStats {
            registries: self
                .registries
                .iter()
                .map(|(host, c)| (host.clone(), c.since(&earlier.registry(host))))
                .collect(),
            cache: self.cache.since(&earlier.cache),
        }
    }
}

/// Per-host state: the limiter and the counters.
#[derive(Debug)]
pub(crate) struct HostBudget {
    limiter: RateLimiter,
    counts: [AtomicU64; RequestKind::ALL.len()],
}

impl HostBudget {
    /// Waits for a slot and counts one request of `kind`.
    pub(crate) async fn spend(&self, kind: RequestKind) {
        self.acquire().await;
        self.record(kind);
    }

    /// Waits for a slot without counting (when it is not yet known whether a request follows).
    pub(crate) async fn acquire(&self) {
        self.limiter.acquire().await;
    }

    /// Counts one request of `kind`.
    pub(crate) fn record(&self, kind: RequestKind) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        let mut out = RequestCounts::default();
        for k in RequestKind::ALL {
            *out.slot(k) = self.counts[k.index()].load(Ordering::Relaxed);
        }
        out
    }
}

/// The rate limit settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Requests per second per registry host; `0` = unlimited.
    pub per_second: f64,
    /// Requests that may go out back to back.
    pub burst: u32,
    /// Per-host overrides of `per_second` (key `host[:port]`).
    pub per_host: HashMap<String, f64>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_second: DEFAULT_RATE_LIMIT_PER_SECOND,
            burst: DEFAULT_RATE_LIMIT_BURST,
            per_host: HashMap::new(),
        }
    }
}

/// The budgets of all registry hosts plus the cache counters.
#[derive(Debug)]
pub(crate) struct RegistryBudgets {
    limits: RateLimits,
    hosts: Mutex<HashMap<String, Arc<HostBudget>>>,
    pub(crate) metadata_hits: AtomicU64,
    pub(crate) metadata_misses: AtomicU64,
    pub(crate) selections_reused: AtomicU64,
}

impl RegistryBudgets {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            hosts: Mutex::new(HashMap::new()),
            metadata_hits: AtomicU64::new(0),
            metadata_misses: AtomicU64::new(0),
            selections_reused: AtomicU64::new(0),
        }
    }

    /// The budget of `host`, created on first use.
    pub(crate) fn host(&self, host: &str) -> Arc<HostBudget> {
        let mut hosts = lock(&self.hosts);
        if let Some(b) = hosts.get(host) {
            return Arc::clone(b);
        }
        let rate = self
            .limits
            .per_host
            .get(host)
            .copied()
            .unwrap_or(self.limits.per_second);
        let budget = Arc::new(HostBudget {
            limiter: RateLimiter::new(rate, self.limits.burst),
            counts: Default::default(),
        });
        hosts.insert(host.to_owned(), Arc::clone(&budget));
        budget
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> RegistryStats {
        let registries = lock(&self.hosts)
            .iter()
            .map(|(host, b)| (host.clone(), b.snapshot()))
            .collect();
        RegistryStats {
            registries,
            cache: CacheCounts {
                metadata_hits: self.metadata_hits.load(Ordering::Relaxed),
                metadata_misses: self.metadata_misses.load(Ordering::Relaxed),
                selections_reused: self.selections_reused.load(Ordering::Relaxed),
            },
        }
    }
}

/// A thread-safe bounded LRU map whose values are shared (`Arc`).
#[derive(Debug)]
pub(crate) struct BoundedCache<K: Hash + Eq, V> {
    inner: Mutex<LruCache<K, Arc<V>>>,
}

impl<K: Hash + Eq, V> BoundedCache<K, V> {
    /// `capacity` 0 is treated as 1.
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(LruCache::new(cap)),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.inner).get(key).cloned()
    }

    pub(crate) fn insert(&self, key: K, value: Arc<V>) {
        lock(&self.inner).put(key, value);
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_spaces_requests_after_the_burst() {
        let l = RateLimiter::new(10.0, 3);
        // Three back to back, then 100 ms apart.
        let waits: Vec<Duration> = (0..6).map(|_| l.reserve()).collect();
        assert!(waits[..3].iter().all(|w| w.is_zero()), "{waits:?}");
        for (i, w) in waits[3..].iter().enumerate() {
            let want = Duration::from_millis(100 * (i as u64 + 1));
            assert!(
                w.abs_diff(want) < Duration::from_millis(20),
                "{i}: {w:?} vs {want:?}"
            );
        }
        let unlimited = RateLimiter::unlimited();
        assert!((0..1000).all(|_| unlimited.reserve().is_zero()));
    }

    #[tokio::test]
    async fn limiter_enforces_rate_over_time() {
        let l = RateLimiter::new(50.0, 1);
        let t0 = Instant::now();
        for _ in 0..11 {
            l.acquire().await;
        }
        // 10 intervals of 20 ms.
        assert!(
            t0.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn budgets_count_per_host_and_kind() {
        let mut limits = RateLimits::default();
        limits.per_host.insert("slow:5000".into(), 1.0);
        let b = RegistryBudgets::new(limits);
        b.host("a").spend(RequestKind::List).await;
        b.host("a").spend(RequestKind::Manifest).await;
        b.host("a").spend(RequestKind::Manifest).await;
        b.host("b").spend(RequestKind::EcrDescribe).await;
        RegistryBudgets::count(&b.metadata_hits);
        let s = b.stats();
        assert_eq!(s.registry("a").list, 1);
        assert_eq!(s.registry("a").manifest, 2);
        assert_eq!(s.registry("a").total(), 3);
        assert_eq!(s.registry("b").ecr_describe, 1);
        assert_eq!(s.registry("nope"), RequestCounts::default());
        assert_eq!(s.total().total(), 4);
        assert_eq!(s.cache.metadata_hits, 1);
        assert_eq!(s.registry("a").to_string(), "list=1 manifest=2");
        assert_eq!(RequestCounts::default().to_string(), "none");

        b.host("a").spend(RequestKind::Head).await;
        let d = b.stats().since(&s);
        assert_eq!(d.registry("a").head, 1);
        assert_eq!(d.registry("a").manifest, 0);
        assert_eq!(d.cache.metadata_hits, 0);
    }

    #[test]
    fn bounded_cache_evicts_least_recently_used() {
        let c: BoundedCache<String, u32> = BoundedCache::new(2);
        c.insert("a".into(), Arc::new(1));
        c.insert("b".into(), Arc::new(2));
        assert_eq!(c.get("a").as_deref(), Some(&1));
        c.insert("c".into(), Arc::new(3));
        assert!(c.get("b").is_none());
        assert_eq!(c.get("a").as_deref(), Some(&1));
        assert_eq!(c.len(), 2);
        assert_eq!(BoundedCache::<String, u32>::new(0).len(), 0);
    }
}
