//! Where a promotion's time goes, as the controller sees it: consecutive laps (prepare, status
//! writes, events, each step) plus the git layer's round trips inside the steps. Exported as
//! `haul_promotion_phase_seconds{phase}` and logged once per promotion ("promotion phases"),
//! which the promotion benchmark reads.

use std::time::{Duration, Instant};

use crate::git::timing::GitTimes;

/// Phase times of one promotion (of the reconcile that ran it), summed per phase in
/// first-seen order.
#[derive(Debug)]
pub struct PhaseClock {
    /// Wall clock at the start, milliseconds since the Unix epoch (for comparing with other
    /// processes' clocks on the same machine).
    started_unix_ms: u128,
    last: Instant,
    phases: Vec<(String, Duration)>,
}

impl PhaseClock {
    /// Starts the first lap now.
    pub fn start() -> Self {
        Self {
            started_unix_ms: unix_ms(),
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Adds the time since the previous lap to `phase`.
    pub fn lap(&mut self, phase: &str) {
        let now = Instant::now();
        self.add(phase, now.saturating_duration_since(self.last));
        self.last = now;
    }

    /// Adds `d` to `phase` without ending the lap (a part of another phase, or a time
    /// measured elsewhere).
    pub fn add(&mut self, phase: &str, d: Duration) {
        match self.phases.iter_mut().find(|(p, _)| p == phase) {
            Some((_, t)) => *t += d,
            None => self.phases.push((phase.to_string(), d)),
        }
    }

    /// Adds the git layer's times as `git/<phase>`.
    pub fn add_git(&mut self, times: &GitTimes) {
        for (phase, d) in &times.0 {
            self.add(&format!("git/{phase}"), *d);
        }
    }

    pub fn started_unix_ms(&self) -> u128 {
        self.started_unix_ms
    }

    pub fn phases(&self) -> &[(String, Duration)] {
        &self.phases
    }

    /// `phase:milliseconds` pairs joined with commas (`prepare:1.20,status:3.05`): one token,
    /// easy to find in a log line.
    pub fn summary(&self) -> String {
        self.phases
            .iter()
            .map(|(p, d)| format!("{p}:{:.2}", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The time from `created` (a Promotion's creationTimestamp, whole seconds) to now; zero if the
/// clocks disagree.
pub fn since(created: &k8s_openapi::jiff::Timestamp) -> Duration {
    let ms = k8s_openapi::jiff::Timestamp::now().as_millisecond() - created.as_millisecond();
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_laps_and_parts_per_phase_in_order() {
        let mut c = PhaseClock::start();
        c.add("status", Duration::from_millis(3));
        c.add("step/git-clone", Duration::from_millis(10));
        c.add_git(&GitTimes(vec![("fetch", Duration::from_micros(4500))]));
        c.add("status", Duration::from_millis(2));
        assert_eq!(
            c.summary(),
            "status:5.00,step/git-clone:10.00,git/fetch:4.50"
        );
        c.lap("prepare");
        assert_eq!(c.phases().len(), 4);
        assert_eq!(c.phases()[3].0, "prepare");
    }
}
