//! Kubernetes-style status conditions: set one by type, keeping its transition time when its
//! status does not change, so re-reconciling an unchanged object writes identical status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What a reconciler wants a condition to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

/// Sets (or adds) the condition of `d.type_`.
pub fn set(conds: &mut Vec<Condition>, d: Desired<'_>, generation: Option<i64>, now: &Time) {
    let status = if d.status { "True" } else { "False" };
    set_status(conds, d, status, generation, now)
}

/// Sets (or adds) the condition of `d.type_` with status `Unknown` (`d.status` is ignored).
pub fn set_unknown(
    conds: &mut Vec<Condition>,
    d: Desired<'_>,
    generation: Option<i64>,
    now: &Time,
) {
    set_status(conds, d, "Unknown", generation, now)
}

fn set_status(
    conds: &mut Vec<Condition>,
    d: Desired<'_>,
    status: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = status.to_string();
    match conds.iter_mut().find(|c| c.type_ == d.type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.clone();
            }
            c.status = status;
            c.reason = d.reason.to_string();
            c.message = d.message;
            c.observed_generation = generation;
        }
        None => conds.push(Condition {
            type_: d.type_.to_string(),
            status,
            reason: d.reason.to_string(),
            message: d.message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
}

/// Removes the condition of this type, if present.
pub fn remove(conds: &mut Vec<Condition>, type_: &str) {
    conds.retain(|c| c.type_ != type_);
}

/// The condition of this type, if present.
pub fn get<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("time"))
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut c = Vec::new();
        let d = |status, reason: &'static str| Desired {
            type_: "Ready",
            status,
            reason,
            message: reason.to_string(),
        };
        set(&mut c, d(false, "Discovering"), Some(1), &t(10));
        set(&mut c, d(false, "StillDiscovering"), Some(1), &t(20));
        assert_eq!(c[0].last_transition_time, t(10));
        assert_eq!(c[0].reason, "StillDiscovering");
        set(&mut c, d(true, "Ready"), Some(2), &t(30));
        assert_eq!(c[0].last_transition_time, t(30));
        set_unknown(&mut c, d(false, "Unsure"), Some(2), &t(40));
        set_unknown(&mut c, d(false, "Unsure"), Some(2), &t(50));
        assert_eq!(
            (c[0].status.as_str(), &c[0].last_transition_time),
            ("Unknown", &t(40))
        );
        assert_eq!(c.len(), 1);
        remove(&mut c, "Ready");
        assert!(get(&c, "Ready").is_none());
    }
}
