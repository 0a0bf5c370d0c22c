//! Which Promotions a closed pull request concerns, as Kargo's
//! `RunningPromotionsByPullRequestURL` index decides: Running Promotions with a
//! `git-wait-for-pr` step at or before the current one whose output names the pull request's
//! web URL. Pure, so the rule is tested without a cluster.

use crate::api::{Promotion, PromotionPhase};
use kube::ResourceExt;

/// The names of the Promotions waiting on the pull request at `url`.
pub fn waiting_on(promotions: &[Promotion], url: &str) -> Vec<String> {
    promotions
        .iter()
        .filter(|p| waits_on(p, url))
        .map(|p| p.name_any())
        .collect()
}

fn waits_on(p: &Promotion, url: &str) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    if status.phase != Some(PromotionPhase::Running) {
        return false;
    }
    let current = status.current_step.unwrap_or(0).max(0) as usize;
    let state = status.state.as_ref();
    status
        .steps
        .iter()
        .enumerate()
        .take(current + 1)
        .filter(|(_, step)| step.uses.as_deref() == Some("git-wait-for-pr"))
        .filter_map(|(i, step)| {
            let alias = step
                .r#as
                .clone()
                .unwrap_or_else(|| format!("step-{}", i + 1));
            state?
                .get(&alias)?
                .pointer("/pr/url")?
                .as_str()
                .map(String::from)
        })
        .any(|u| same_url(&u, url))
}

/// Senders differ in trailing slashes and letter case (forges treat owner and repository names
/// case-insensitively); the rest must match.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn promotion(name: &str, phase: &str, current: i64, state: serde_json::Value) -> Promotion {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"stage": "prod", "freight": "f"},
            "status": {
                "phase": phase,
                "currentStep": current,
                "steps": [
                    {"uses": "git-open-pr", "as": "open-pr"},
                    {"uses": "git-wait-for-pr", "as": "task-1::wait-for-pr"},
                    {"uses": "argocd-update"}
                ],
                "state": state
            }
        }))
        .expect("promotion")
    }

    const URL: &str = "http://127.0.0.1:3000/haul/gitops/pulls/7";

    #[test]
    fn running_promotions_whose_wait_step_names_the_pull_request() {
        let waiting = json!({"task-1::wait-for-pr": {"pr": {"id": 7, "url": URL}}});
        let other = json!({"task-1::wait-for-pr": {"pr": {"id": 8, "url": "http://127.0.0.1:3000/haul/gitops/pulls/8"}}});
        let list = [
            promotion("waiting", "Running", 1, waiting.clone()),
            promotion("other-pr", "Running", 1, other),
            promotion("finished", "Succeeded", 3, waiting.clone()),
            // Output from before the current step counts (Kargo's index reads every step up
            // to the current one); no output yet (the step never ran) does not.
            promotion("past-it", "Running", 2, waiting),
            promotion("not-yet", "Running", 0, json!({})),
        ];
        assert_eq!(waiting_on(&list, URL), ["waiting", "past-it"]);
        assert_eq!(
            waiting_on(&list, "HTTP://127.0.0.1:3000/haul/gitops/pulls/7/"),
            ["waiting", "past-it"],
            "case of the scheme and host, trailing slash"
        );
        assert!(waiting_on(&list, "http://127.0.0.1:3000/haul/gitops/pulls/9").is_empty());
    }
}
