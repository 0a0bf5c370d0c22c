//! Problems in a Stage's place in the pipeline graph: a missing Warehouse or upstream Stage, a
//! cycle, or misuse of MatchUpstream. Kargo does not check these; haul reports them on the
//! Stage instead of letting Freight silently never arrive.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use crate::api::Stage;

/// Each problem as a reason (for the condition) and a message naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// Checks `stage` against the Warehouses and Stages of its project (owned or shared, e.g.
/// `Arc<Stage>` from a cache).
pub fn check<S: Borrow<Stage>>(
    stage: &Stage,
    warehouses: &BTreeSet<String>,
    stages: &[S],
) -> Vec<Problem> {
    let name = stage.metadata.name.clone().unwrap_or_default();
    let by_name: BTreeMap<String, &Stage> = stages
        .iter()
        .map(Borrow::borrow)
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
        .collect();
    let mut problems = Vec::new();
    let mut origins = BTreeSet::new();
    for (i, req) in stage.spec.requested_freight.iter().enumerate() {
        let at = format!("spec.requestedFreight[{i}]");
        if !origins.insert(req.origin.to_string()) {
            problems.push(Problem {
                reason: "InvalidSpec",
                message: format!("{at}: origin {} is requested twice", req.origin),
            });
        }
        if !warehouses.contains(&req.origin.name) {
            problems.push(Problem {
                reason: "MissingWarehouse",
                message: format!("{at}.origin: Warehouse {} does not exist", req.origin.name),
            });
        }
        let direct = req.sources.direct == Some(true);
        if !direct && req.sources.stages.is_empty() {
            problems.push(Problem {
                reason: "InvalidSpec",
                message: format!("{at}.sources: set direct: true or name upstream stages"),
            });
        }
        for up in &req.sources.stages {
            if up == &name {
                problems.push(Problem {
                    reason: "Cycle",
                    message: format!("{at}.sources.stages: Stage {name} names itself as upstream"),
                });
            } else if !by_name.contains_key(up) {
                problems.push(Problem {
                    reason: "MissingUpstream",
                    message: format!("{at}.sources.stages: upstream Stage {up} does not exist"),
                });
            }
        }
        let match_upstream = req.matches_upstream();
        if match_upstream && (direct || req.sources.stages.len() != 1) {
            problems.push(Problem {
                reason: "InvalidSpec",
                message: format!(
                    "{at}.sources.autoPromotionOptions: MatchUpstream needs exactly one upstream Stage and no direct source"
                ),
            });
        }
    }
    if let Some(cycle) = find_cycle(&name, &by_name) {
        problems.push(Problem {
            reason: "Cycle",
            message: format!("Stage graph has a cycle: {}", cycle.join(" -> ")),
        });
    }
    problems
}

/// A path from `start` back to itself through upstream edges, if there is one.
fn find_cycle(start: &str, stages: &BTreeMap<String, &Stage>) -> Option<Vec<String>> {
    fn upstreams(s: &Stage) -> impl Iterator<Item = &String> {
        s.spec
            .requested_freight
            .iter()
            .flat_map(|r| r.sources.stages.iter())
    }
    let mut stack: Vec<(String, Vec<String>)> = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        let Some(s) = stages.get(&node) else { continue };
        for up in upstreams(s) {
            if up == start && path.len() > 1 {
                let mut p = path.clone();
                p.push(up.clone());
                return Some(p);
            }
            if up != start && seen.insert(up.clone()) {
                let mut p = path.clone();
                p.push(up.clone());
                stack.push((up.clone(), p));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::availability::tests::stage;

    #[test]
    fn a_sound_pipeline_has_no_problems() {
        let stages = vec![
            stage("dev", serde_json::json!({"direct": true})),
            stage("uat", serde_json::json!({"stages": ["dev"]})),
            stage("prod", serde_json::json!({"stages": ["uat"]})),
        ];
        let w: BTreeSet<String> = ["w".to_string()].into();
        for s in &stages {
            assert!(check(s, &w, &stages).is_empty());
        }
    }

    #[test]
    fn missing_things_and_cycles_are_named() {
        let stages = vec![
            stage("a", serde_json::json!({"stages": ["b"]})),
            stage("b", serde_json::json!({"stages": ["a"]})),
            stage("c", serde_json::json!({"stages": ["ghost"]})),
        ];
        let none = BTreeSet::new();
        let p = check(&stages[0], &none, &stages);
        assert!(
            p.iter()
                .any(|p| p.reason == "MissingWarehouse" && p.message.contains("Warehouse w"))
        );
        assert!(
            p.iter()
                .any(|p| p.reason == "Cycle" && p.message.contains("a -> b -> a")),
            "{p:?}"
        );
        let p = check(&stages[2], &none, &stages);
        assert!(
            p.iter()
                .any(|p| p.reason == "MissingUpstream" && p.message.contains("ghost"))
        );
        let bad = stage(
            "m",
            serde_json::json!({"direct": true, "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}),
        );
        let p = check(&bad, &["w".to_string()].into(), std::slice::from_ref(&bad));
        assert!(p.iter().any(|p| p.message.contains("MatchUpstream")));
    }
}
