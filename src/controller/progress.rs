//! Whether the controllers make progress: per controller, when its last reconcile finished and
//! when each reconcile still running started. Liveness (`/healthz`) reads it; the reconcilers
//! write it through [`super::within_deadline`], so every reconcile is counted once.
//!
//! ```
//! use haul::controller::progress::Progress;
//! let p = Progress::default();
//! let r = p.reconcile_started("stage");
//! assert_eq!(p.oldest_in_flight().map(|(c, _)| c), Some("stage"));
//! p.reconcile_finished(r);
//! assert!(p.oldest_in_flight().is_none());
//! assert!(p.last_finished("stage").is_some());
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One reconcile in flight, as [`Progress::reconcile_started`] returns it; hand it back to
/// [`Progress::reconcile_finished`]. Reconciles of one controller run concurrently (one per
/// object), so each is tracked on its own: a stuck one stays visible while others finish.
#[derive(Debug)]
#[must_use = "pass it to Progress::reconcile_finished"]
pub struct InFlight {
    controller: &'static str,
    id: u64,
}

#[derive(Debug, Default)]
struct Entry {
    in_flight: BTreeMap<u64, Instant>,
    last_finished: Option<Instant>,
}

/// Reconcile progress of every controller (`"stage"`, `"promotion"`, `"warehouse"`, ...).
/// Cheap to update (one short lock), safe to share (`Arc<Progress>`, on the controller
/// Context as `progress`).
#[derive(Debug, Default)]
pub struct Progress {
    next: AtomicU64,
    by_controller: Mutex<HashMap<&'static str, Entry>>,
}

impl Progress {
    /// Records that a reconcile of `controller` starts now.
    pub fn reconcile_started(&self, controller: &'static str) -> InFlight {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.by_controller.lock() {
            m.entry(controller)
                .or_default()
                .in_flight
                .insert(id, Instant::now());
        }
        InFlight { controller, id }
    }

    /// Records that the reconcile `r` ended (successfully or not, or cut off by its deadline).
    pub fn reconcile_finished(&self, r: InFlight) {
        if let Ok(mut m) = self.by_controller.lock() {
            let e = m.entry(r.controller).or_default();
            e.in_flight.remove(&r.id);
            e.last_finished = Some(Instant::now());
        }
    }

    /// The reconcile running longest, of any controller: its controller and when it started.
    pub fn oldest_in_flight(&self) -> Option<(&'static str, Instant)> {
        let m = self.by_controller.lock().ok()?;
        m.iter()
            .filter_map(|(c, e)| e.in_flight.values().min().map(|at| (*c, *at)))
            .min_by_key(|(_, at)| *at)
    }

    /// When the last reconcile of `controller` finished; `None` before the first one.
    pub fn last_finished(&self, controller: &str) -> Option<Instant> {
        self.by_controller
            .lock()
            .ok()?
            .get(controller)
            .and_then(|e| e.last_finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_reconcile_stays_oldest_while_others_finish() {
        let p = Progress::default();
        let stuck = p.reconcile_started("stage");
        let (_, stuck_at) = p.oldest_in_flight().expect("in flight");
        for _ in 0..3 {
            let r = p.reconcile_started("stage");
            p.reconcile_finished(r);
        }
        let w = p.reconcile_started("warehouse");
        assert_eq!(p.oldest_in_flight(), Some(("stage", stuck_at)));
        assert!(p.last_finished("stage").is_some());
        assert!(p.last_finished("warehouse").is_none());
        p.reconcile_finished(stuck);
        assert_eq!(p.oldest_in_flight().map(|(c, _)| c), Some("warehouse"));
        p.reconcile_finished(w);
        assert_eq!(p.oldest_in_flight(), None);
    }
}
