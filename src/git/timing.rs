//! Where a caller's git time goes: the git layer reports the time of its round trips (fetch,
//! push) and of making worktrees to whoever asked for it with [`measured`]; with no such
//! caller, reporting does nothing. The promotion runner uses it for its per-phase breakdown.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

/// Durations reported by the git layer, summed per phase, in first-reported order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitTimes(pub Vec<(&'static str, Duration)>);

impl GitTimes {
    fn add(&mut self, phase: &'static str, d: Duration) {
        match self.0.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, t)) => *t += d,
            None => self.0.push((phase, d)),
        }
    }
}

tokio::task_local! {
    static TIMES: RefCell<GitTimes>;
}

/// Runs `f` and returns, beside its output, the git time it reported (only what ran in this
/// task: a push handed to another task reports nothing here, its caller times the wait).
pub async fn measured<F: Future>(f: F) -> (F::Output, GitTimes) {
    TIMES
        .scope(RefCell::new(GitTimes::default()), async move {
            let out = f.await;
            let times = TIMES.with(|t| t.take());
            (out, times)
        })
        .await
}

/// Adds `d` to `phase` for the caller of [`measured`], if any.
pub(crate) fn report(phase: &'static str, d: Duration) {
    let _ = TIMES.try_with(|t| t.borrow_mut().add(phase, d));
}

/// What `phase` has summed so far for the caller of [`measured`] (zero without one).
pub(crate) fn reported(phase: &'static str) -> Duration {
    TIMES
        .try_with(|t| {
            t.borrow()
                .0
                .iter()
                .find(|(p, _)| *p == phase)
                .map_or(Duration::ZERO, |(_, d)| *d)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sums_per_phase_inside_a_measured_scope_only() {
        report("fetch", Duration::from_millis(5));
        let ((), times) = measured(async {
            report("fetch", Duration::from_millis(2));
            report("worktree", Duration::from_millis(1));
            report("fetch", Duration::from_millis(3));
        })
        .await;
        assert_eq!(
            times.0,
            vec![
                ("fetch", Duration::from_millis(5)),
                ("worktree", Duration::from_millis(1))
            ]
        );
    }
}
