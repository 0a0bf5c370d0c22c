//! Real Argo CD for the tests that sync through it: started once per test binary on
//! [`super::cp`], and a wait that reports Argo CD's logs when it times out.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use haul_testenv::ArgoCd;

/// Argo CD's own waits are in seconds (a 60 s reconciliation cadence); a loaded CI machine may
/// take a while to clone and render.
pub const ARGO_WAIT: u64 = 180;

/// The Argo CD of this test binary, started once on its control plane.
pub fn argocd() -> &'static ArgoCd {
    static A: OnceLock<ArgoCd> = OnceLock::new();
    A.get_or_init(|| {
        let cp = super::cp();
        ArgoCd::start(cp, &cp.dir().join("argocd"))
            .unwrap_or_else(|e| panic!("cannot start Argo CD: {e}"))
    })
}

/// Polls `f` until it returns `Some`; on timeout panics with `what` and Argo CD's log tails.
pub fn wait_argo<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(ARGO_WAIT);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline && !argocd().exited(),
            "timed out after {ARGO_WAIT}s waiting for {what}\n{}",
            argocd().log_tails()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
