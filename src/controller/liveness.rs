//! Liveness that means something: whether the controllers and the shared caches still make
//! progress, for `/healthz`.
//!
//! Three things are tracked, each by a small hook the code that does the work calls:
//! - **watches** ([`Liveness::watch`], [`WatchTracker::observe`]): every item a watcher stream
//!   yields. kube's watcher restarts itself after an error (with backoff), so an error is not a
//!   failure by itself; a watch whose last item was an error, and that has not yielded a good
//!   one for longer than [`Thresholds::watch_down`], is. A quiet watch (no changes) is healthy.
//! - **work queues** ([`Liveness::triggered`]): a controller that was asked to reconcile
//!   something and has not finished any reconcile since, for longer than
//!   [`Thresholds::queue_stalled`].
//! - **reconciles**: one in flight for longer than [`Thresholds::reconcile_stuck`], read from
//!   the Context's [`super::progress::Progress`] (which `within_deadline` records for every
//!   reconcile) once attached, and from [`Liveness::reconcile_started`] guards.
//!
//! [`verdict`] turns a [`Snapshot`] of that state into the answer; it is pure and unit-tested.
//! The state also carries notices (e.g. a controller identity the admission policies do not
//! expect) that `/healthz` and `/readyz` show without failing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a lack of progress counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A watch failing (its last item an error) for longer than this.
    pub watch_down: Duration,
    /// Objects waiting for a controller that has finished no reconcile for longer than this.
    pub queue_stalled: Duration,
    /// One reconcile in flight for longer than this (meant to be 2× the reconcile deadline).
    pub reconcile_stuck: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            watch_down: Duration::from_secs(300),
            queue_stalled: Duration::from_secs(300),
            // 2× the default reconcile deadline.
            reconcile_stuck: super::DEFAULT_RECONCILE_DEADLINE.saturating_mul(2),
        }
    }
}

/// The state of one watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSnapshot {
    pub name: String,
    /// Since when its items have been errors only; `None` while it works.
    pub down_since: Option<Instant>,
    /// The last error it yielded.
    pub last_error: Option<String>,
    /// When it yielded that error.
    pub last_error_at: Option<Instant>,
}

/// The progress of one controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSnapshot {
    pub name: String,
    /// Since when objects have been waiting for it (the first trigger after its last finished
    /// reconcile); `None` when nothing waits.
    pub waiting_since: Option<Instant>,
    /// The oldest reconcile in flight: the object's key and when it started.
    pub oldest_in_flight: Option<(String, Instant)>,
    /// When a reconcile last finished.
    pub last_finished: Option<Instant>,
}

/// What [`verdict`] judges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub watches: Vec<WatchSnapshot>,
    pub controllers: Vec<ControllerSnapshot>,
}

/// `Ok` when every watch, queue and reconcile makes progress; otherwise one sentence per
/// problem, naming the watch or controller.
/// How long without a new error before a failing watch counts as recovered: three times the
/// longest retry delay of kube's watcher (30 s).
pub const ERRORS_STOPPED: Duration = Duration::from_secs(90);

pub fn verdict(now: Instant, s: &Snapshot, t: &Thresholds) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for w in &s.watches {
        let Some(since) = w.down_since else { continue };
        // A controller's own watch reports reconciles, not watch events: on a quiet cluster it
        // yields nothing once it is back. A watch still down keeps failing (kube's watcher
        // retries at least every 30 s), so errors that stopped coming mean it recovered.
        if w.last_error_at
            .is_some_and(|at| now.saturating_duration_since(at) > ERRORS_STOPPED)
        {
            continue;
        }
        let down = now.saturating_duration_since(since);
        if down > t.watch_down {
            problems.push(format!(
                "watch of {} not re-established for {} (limit {}){}",
                w.name,
                human(down),
                human(t.watch_down),
                w.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    for c in &s.controllers {
        if let Some((key, started)) = &c.oldest_in_flight {
            let running = now.saturating_duration_since(*started);
            if running > t.reconcile_stuck {
                problems.push(format!(
                    "{} controller: the reconcile of {key} has been in flight for {} (limit {})",
                    c.name,
                    human(running),
                    human(t.reconcile_stuck)
                ));
            }
        }
        if let Some(since) = c.waiting_since {
            let waiting = now.saturating_duration_since(since);
            let finished_since = c.last_finished.is_some_and(|f| f >= since);
            if waiting > t.queue_stalled && !finished_since {
                problems.push(format!(
                    "{} controller: work queue not draining: objects have waited {} (limit {}) \
                     and no reconcile finished {}",
                    c.name,
                    human(waiting),
                    human(t.queue_stalled),
                    match c.last_finished {
                        Some(f) => format!("since {} ago", human(now.saturating_duration_since(f))),
                        None => "since it started".to_string(),
                    }
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `1h2m`, `5m0s`, `42s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[derive(Debug, Default)]
struct WatchState {
    down_since: Option<Instant>,
    last_error: Option<String>,
    last_error_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct ControllerState {
    in_flight: HashMap<u64, (String, Instant)>,
    waiting_since: Option<Instant>,
    last_finished: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    watches: BTreeMap<String, WatchState>,
    controllers: BTreeMap<String, ControllerState>,
    next_id: u64,
    notices: BTreeMap<String, String>,
}

/// The progress of this process's watches and controllers, shared by the controllers and the
/// `/healthz` handler.
#[derive(Debug, Default)]
pub struct Liveness {
    state: Mutex<State>,
    /// The reconciles the deadline wrapper records ([`super::within_deadline`]).
    progress: std::sync::OnceLock<Arc<super::progress::Progress>>,
}

/// Longest error text kept per watch (errors can quote response bodies).
const MAX_ERROR: usize = 300;

impl Liveness {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock means a panic elsewhere while holding it; the state is still usable.
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        f(&mut s)
    }

    /// Registers a watch stream named `name` (e.g. "freights (shared cache)"), working until it
    /// yields an error.
    pub fn watch(self: &Arc<Self>, name: &str) -> WatchTracker {
        self.with(|s| {
            s.watches.entry(name.to_string()).or_default();
        });
        WatchTracker {
            liveness: self.clone(),
            name: name.to_string(),
        }
    }

    fn watch_item(&self, name: &str, error: Option<String>) {
        self.with(|s| {
            let w = s.watches.entry(name.to_string()).or_default();
            match error {
                None => {
                    w.down_since = None;
                }
                Some(e) => {
                    if w.down_since.is_none() {
                        w.down_since = Some(Instant::now());
                    }
                    w.last_error = Some(e.chars().take(MAX_ERROR).collect());
                    w.last_error_at = Some(Instant::now());
                }
            }
        });
    }

    /// Records that `controller` was asked to reconcile something (an item of its trigger
    /// stream).
    pub fn triggered(&self, controller: &str) {
        self.with(|s| {
            let c = s.controllers.entry(controller.to_string()).or_default();
            if c.waiting_since.is_none() {
                c.waiting_since = Some(Instant::now());
            }
        });
    }

    /// Records the start of a reconcile of `key` by `controller`; the returned guard records
    /// its end when dropped (also when the reconcile future is cancelled).
    pub fn reconcile_started(self: &Arc<Self>, controller: &str, key: &str) -> InFlight {
        let id = self.with(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.controllers
                .entry(controller.to_string())
                .or_default()
                .in_flight
                .insert(id, (key.to_string(), Instant::now()));
            id
        });
        InFlight {
            liveness: self.clone(),
            controller: controller.to_string(),
            id,
        }
    }

    fn reconcile_finished(&self, controller: &str, id: u64) {
        self.with(|s| {
            let c = s.controllers.entry(controller.to_string()).or_default();
            c.in_flight.remove(&id);
            c.last_finished = Some(Instant::now());
            c.waiting_since = None;
        });
    }

    /// Records one item of a kube `Controller::run` stream: an error of the controller's own
    /// watches (`QueueError`) marks the watch "`<controller>` controller" down; any other item
    /// (a reconcile done or failed, an object gone from the store) means the controller's queue
    /// moved: its watches work and nothing waits behind it.
    pub fn controller_item<T, R, Q>(
        &self,
        controller: &str,
        item: &Result<T, kube::runtime::controller::Error<R, Q>>,
    ) where
        R: std::error::Error,
        Q: std::error::Error,
    {
        let name = format!("{controller} controller");
        match item {
            Err(kube::runtime::controller::Error::QueueError(e)) => {
                self.watch_item(&name, Some(e.to_string()))
            }
            _ => {
                self.watch_item(&name, None);
                self.with(|s| {
                    let c = s.controllers.entry(controller.to_string()).or_default();
                    c.last_finished = Some(Instant::now());
                    c.waiting_since = None;
                });
            }
        }
    }

    /// Reads reconciles in flight and finished from `progress` (the Context's) as well; the
    /// first one attached is kept.
    pub fn attach_progress(&self, progress: Arc<super::progress::Progress>) {
        let _ = self.progress.set(progress);
    }

    /// Sets (`Some`) or clears (`None`) a notice shown by `/healthz` and `/readyz` without
    /// failing them.
    pub fn notice(&self, topic: &str, text: Option<String>) {
        self.with(|s| match text {
            Some(t) => {
                s.notices.insert(topic.to_string(), t);
            }
            None => {
                s.notices.remove(topic);
            }
        });
    }

    /// The notices, in topic order.
    pub fn notices(&self) -> Vec<String> {
        self.with(|s| s.notices.values().cloned().collect())
    }

    /// The tracked state as [`verdict`] reads it, with the reconciles of the attached
    /// [`super::progress::Progress`].
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = self.own_snapshot();
        let Some(p) = self.progress.get() else {
            return snap;
        };
        if let Some((controller, at)) = p.oldest_in_flight() {
            let i = match snap.controllers.iter().position(|c| c.name == controller) {
                Some(i) => i,
                None => {
                    snap.controllers.push(ControllerSnapshot {
                        name: controller.to_string(),
                        waiting_since: None,
                        oldest_in_flight: None,
                        last_finished: None,
                    });
                    snap.controllers.len() - 1
                }
            };
            let c = &mut snap.controllers[i];
            if c.oldest_in_flight.as_ref().is_none_or(|(_, own)| at < *own) {
                c.oldest_in_flight = Some(("an object".to_string(), at));
            }
        }
        for c in &mut snap.controllers {
            c.last_finished = c.last_finished.max(p.last_finished(&c.name));
        }
        snap
    }

    fn own_snapshot(&self) -> Snapshot {
        self.with(|s| Snapshot {
            watches: s
                .watches
                .iter()
                .map(|(name, w)| WatchSnapshot {
                    name: name.clone(),
                    down_since: w.down_since,
                    last_error: w.last_error.clone(),
                    last_error_at: w.last_error_at,
                })
                .collect(),
            controllers: s
                .controllers
                .iter()
                .map(|(name, c)| ControllerSnapshot {
                    name: name.clone(),
                    waiting_since: c.waiting_since,
                    oldest_in_flight: c.in_flight.values().min_by_key(|(_, at)| *at).cloned(),
                    last_finished: c.last_finished,
                })
                .collect(),
        })
    }

    /// [`verdict`] of the current state.
    pub fn check(&self, t: &Thresholds) -> Result<(), Vec<String>> {
        verdict(Instant::now(), &self.snapshot(), t)
    }
}

/// Records the items of one watch stream into [`Liveness`].
#[derive(Debug, Clone)]
pub struct WatchTracker {
    liveness: Arc<Liveness>,
    name: String,
}

impl WatchTracker {
    /// Records one item of the stream: `Ok` (an event, a relist) means the watch works.
    pub fn observe<T, E: Display>(&self, item: &Result<T, E>) {
        self.liveness
            .watch_item(&self.name, item.as_ref().err().map(|e| e.to_string()));
    }
}

/// A reconcile in flight; dropping it records its end.
#[derive(Debug)]
pub struct InFlight {
    liveness: Arc<Liveness>,
    controller: String,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.liveness.reconcile_finished(&self.controller, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    fn controller(name: &str) -> ControllerSnapshot {
        ControllerSnapshot {
            name: name.into(),
            waiting_since: None,
            oldest_in_flight: None,
            last_finished: None,
        }
    }

    #[test]
    fn healthy_when_nothing_is_wrong() {
        let t0 = Instant::now();
        let s = Snapshot {
            watches: vec![WatchSnapshot {
                name: "stages (shared cache)".into(),
                down_since: None,
                last_error: Some("an old error, recovered from".into()),
                last_error_at: Some(t0),
            }],
            controllers: vec![ControllerSnapshot {
                waiting_since: Some(at(t0, 10)),
                oldest_in_flight: Some(("p/dev".into(), at(t0, 10))),
                last_finished: Some(at(t0, 5)),
                ..controller("stage")
            }],
        };
        assert_eq!(verdict(at(t0, 60), &s, &Thresholds::default()), Ok(()));
        assert_eq!(
            verdict(t0, &Snapshot::default(), &Thresholds::default()),
            Ok(())
        );
    }

    #[test]
    fn a_watch_down_past_the_threshold_fails_and_is_named() {
        let t0 = Instant::now();
        let s = Snapshot {
            watches: vec![WatchSnapshot {
                name: "freights (shared cache)".into(),
                down_since: Some(t0),
                last_error: Some("connection refused".into()),
                last_error_at: Some(at(t0, 290)),
            }],
            controllers: vec![],
        };
        let t = Thresholds::default();
        assert_eq!(verdict(at(t0, 299), &s, &t), Ok(()), "within the threshold");
        let problems = verdict(at(t0, 301), &s, &t).unwrap_err();
        assert_eq!(
            problems,
            [
                "watch of freights (shared cache) not re-established for 5m1s (limit 5m0s); \
              last error: connection refused"
            ]
        );
    }

    #[test]
    fn a_reconcile_far_past_its_deadline_fails() {
        let t0 = Instant::now();
        let s = Snapshot {
            watches: vec![],
            controllers: vec![ControllerSnapshot {
                oldest_in_flight: Some(("my-app/uat".into(), t0)),
                last_finished: Some(at(t0, 1000)),
                ..controller("promotion")
            }],
        };
        let t = Thresholds {
            reconcile_stuck: Duration::from_secs(600),
            ..Thresholds::default()
        };
        assert_eq!(verdict(at(t0, 600), &s, &t), Ok(()));
        let problems = verdict(at(t0, 3700), &s, &t).unwrap_err();
        assert_eq!(
            problems,
            [
                "promotion controller: the reconcile of my-app/uat has been in flight for 1h1m \
              (limit 10m0s)"
            ]
        );
    }

    #[test]
    fn a_queue_that_does_not_drain_fails_only_while_nothing_finishes() {
        let t0 = Instant::now();
        let t = Thresholds::default();
        let stalled = Snapshot {
            watches: vec![],
            controllers: vec![ControllerSnapshot {
                waiting_since: Some(at(t0, 100)),
                last_finished: Some(t0),
                ..controller("stage")
            }],
        };
        let problems = verdict(at(t0, 500), &stalled, &t).unwrap_err();
        assert_eq!(
            problems,
            [
                "stage controller: work queue not draining: objects have waited 6m40s (limit \
              5m0s) and no reconcile finished since 8m20s ago"
            ]
        );
        // Something finished after the objects began to wait: the queue moves.
        let moving = Snapshot {
            controllers: vec![ControllerSnapshot {
                last_finished: Some(at(t0, 450)),
                ..stalled.controllers[0].clone()
            }],
            ..stalled.clone()
        };
        assert_eq!(verdict(at(t0, 500), &moving, &t), Ok(()));
        // Never finished anything.
        let never = Snapshot {
            controllers: vec![ControllerSnapshot {
                waiting_since: Some(t0),
                ..controller("warehouse")
            }],
            ..Snapshot::default()
        };
        assert!(verdict(at(t0, 400), &never, &t).unwrap_err()[0].ends_with("since it started"));
    }

    #[test]
    fn a_watch_whose_errors_stopped_counts_as_recovered() {
        // A controller's own watch yields nothing once it is back on a quiet cluster.
        let t0 = Instant::now();
        let s = Snapshot {
            watches: vec![WatchSnapshot {
                name: "stage controller".into(),
                down_since: Some(t0),
                last_error: Some("410 Gone".into()),
                last_error_at: Some(at(t0, 20)),
            }],
            controllers: vec![],
        };
        let t = Thresholds {
            watch_down: Duration::from_secs(3),
            ..Thresholds::default()
        };
        assert!(verdict(at(t0, 60), &s, &t).is_err(), "errors still recent");
        assert_eq!(
            verdict(at(t0, 20) + ERRORS_STOPPED + Duration::from_secs(1), &s, &t),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let t0 = Instant::now();
        let s = Snapshot {
            watches: vec![
                WatchSnapshot {
                    name: "stages (shared cache)".into(),
                    down_since: Some(t0),
                    last_error: None,
                    last_error_at: None,
                },
                WatchSnapshot {
                    name: "warehouse controller".into(),
                    down_since: Some(t0),
                    last_error: None,
                    last_error_at: None,
                },
            ],
            controllers: vec![ControllerSnapshot {
                waiting_since: Some(t0),
                oldest_in_flight: Some(("p/w".into(), t0)),
                ..controller("warehouse")
            }],
        };
        let problems = verdict(at(t0, 7200), &s, &Thresholds::default()).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    /// `controller_item` takes the items of kube's `Controller::run` (type-checked only).
    #[allow(dead_code)]
    fn controller_item_fits_controller_run(
        c: kube::runtime::Controller<crate::api::Stage>,
        ctx: Arc<super::super::Context>,
    ) {
        use kube::runtime::controller::Action;
        async fn reconcile(
            _: Arc<crate::api::Stage>,
            _: Arc<super::super::Context>,
        ) -> Result<Action, super::super::Error> {
            Ok(Action::await_change())
        }
        fn error_policy(
            _: Arc<crate::api::Stage>,
            _: &super::super::Error,
            _: Arc<super::super::Context>,
        ) -> Action {
            Action::await_change()
        }
        let live = ctx.liveness.clone();
        drop(c.run(reconcile, error_policy, ctx).for_each(move |res| {
            live.controller_item("stage", &res);
            async {}
        }));
    }

    #[test]
    fn the_hooks_record_state() {
        let live = Arc::new(Liveness::default());
        let w = live.watch("freights (shared cache)");
        w.observe::<(), _>(&Err("410 Gone"));
        let s = live.snapshot();
        assert!(s.watches[0].down_since.is_some());
        assert_eq!(s.watches[0].last_error.as_deref(), Some("410 Gone"));
        w.observe::<_, String>(&Ok(()));
        assert_eq!(live.snapshot().watches[0].down_since, None);

        live.triggered("stage");
        let guard = live.reconcile_started("stage", "p/dev");
        let s = live.snapshot();
        assert_eq!(
            s.controllers[0]
                .oldest_in_flight
                .as_ref()
                .map(|(k, _)| k.as_str()),
            Some("p/dev")
        );
        assert!(s.controllers[0].waiting_since.is_some());
        drop(guard);
        let s = live.snapshot();
        assert_eq!(s.controllers[0].oldest_in_flight, None);
        assert_eq!(s.controllers[0].waiting_since, None);
        assert!(s.controllers[0].last_finished.is_some());

        live.triggered("promotion");
        let watch_error: Result<
            (),
            kube::runtime::controller::Error<std::io::Error, std::io::Error>,
        > = Err(kube::runtime::controller::Error::QueueError(
            std::io::Error::other("gone"),
        ));
        live.controller_item("promotion", &watch_error);
        let s = live.snapshot();
        let w = s
            .watches
            .iter()
            .find(|w| w.name == "promotion controller")
            .expect("watch");
        assert!(w.down_since.is_some());
        let p = s
            .controllers
            .iter()
            .find(|c| c.name == "promotion")
            .expect("controller");
        assert!(p.waiting_since.is_some(), "a watch error moves no queue");
        live.controller_item(
            "promotion",
            &Ok::<_, kube::runtime::controller::Error<std::io::Error, std::io::Error>>(()),
        );
        let s = live.snapshot();
        let w = s
            .watches
            .iter()
            .find(|w| w.name == "promotion controller")
            .expect("watch");
        assert_eq!(w.down_since, None);
        let p = s
            .controllers
            .iter()
            .find(|c| c.name == "promotion")
            .expect("controller");
        assert_eq!(p.waiting_since, None);
        assert!(p.last_finished.is_some());

        let progress = Arc::new(super::super::progress::Progress::default());
        live.attach_progress(progress.clone());
        let r = progress.reconcile_started("warehouse");
        let s = live.snapshot();
        let w = s
            .controllers
            .iter()
            .find(|c| c.name == "warehouse")
            .expect("from progress");
        assert_eq!(
            w.oldest_in_flight.as_ref().map(|(k, _)| k.as_str()),
            Some("an object")
        );
        progress.reconcile_finished(r);
        let s = live.snapshot();
        let w = s.controllers.iter().find(|c| c.name == "warehouse");
        assert!(
            w.is_none(),
            "nothing in flight, nothing tracked of its own: {s:?}"
        );

        live.notice("identity", Some("runs as the wrong user".into()));
        assert_eq!(live.notices(), ["runs as the wrong user"]);
        live.notice("identity", None);
        assert!(live.notices().is_empty());
        assert_eq!(live.check(&Thresholds::default()), Ok(()));
    }
}
