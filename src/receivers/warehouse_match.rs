//! Which Warehouses a delivery refreshes (Kargo's `refreshWarehouses` / `shouldRefresh`): those
//! with a subscription to one of the pushed repositories that the pushed ref, tag or version
//! concerns. Pure, so each rule has a unit test.
//!
//! - Git: a branch subscription (NewestFromBranch) matches a push to its branch (`main` or
//!   `master` when it names none); a tag subscription (SemVer, Lexical, NewestTag) matches a
//!   pushed tag its `allowTagsRegexes` / `ignoreTagsRegexes` (and, for SemVer, its constraint)
//!   keep. When the delivery lists the changed files, at least one must pass the
//!   subscription's `includePaths` / `excludePaths`.
//! - Image: a pushed tag the subscription's filters keep (Digest: its one tag).
//! - Chart: a pushed version within the `semverConstraint`.
//!
//! A delivery that names no ref or tag at all refreshes every subscribed Warehouse, as in
//! Kargo. A subscription that does not compile is refreshed rather than skipped: its Warehouse
//! then reports the problem (Kargo fails the whole delivery instead).

use std::collections::BTreeSet;

use crate::api::{RepoSubscription, Warehouse};
use crate::discovery::{ChartPlan, GitPlan, ImagePlan};
use crate::urls::{normalize_chart, normalize_git, normalize_image};

/// What a delivery says was pushed; repository URLs are normalised.
#[derive(Debug, Clone, Copy)]
pub struct Pushed<'a> {
    pub repo_urls: &'a [String],
    /// Pushed refs (`refs/heads/main`, `refs/tags/v1`), image tags or chart versions.
    pub qualifiers: &'a [String],
    /// Files the pushed commits changed; empty when unknown (no path filtering then).
    pub changed_paths: &'a [String],
}

/// Whether one subscription is to one of the pushed repositories and concerned by the push.
fn subscription_matches(s: &RepoSubscription, pushed: &Pushed<'_>) -> bool {
    let any = |pred: &dyn Fn(&str) -> bool| {
        pushed.qualifiers.is_empty() || pushed.qualifiers.iter().any(|q| pred(q))
    };
    if let Some(g) = &s.git
        && pushed.repo_urls.contains(&normalize_git(&g.repo_url))
    {
        let Ok(plan) = GitPlan::compile(g) else {
            return true;
        };
        if any(&|q| plan.matches_ref(q))
            && (pushed.changed_paths.is_empty() || plan.matches_changed_paths(pushed.changed_paths))
        {
            return true;
        }
    }
    if let Some(i) = &s.image
        && pushed.repo_urls.contains(&normalize_image(&i.repo_url))
    {
        match ImagePlan::compile(i) {
            Ok(plan) if !any(&|q| plan.matches_tag(q)) => {}
            _ => return true,
        }
    }
    if let Some(c) = &s.chart
        && pushed.repo_urls.contains(&normalize_chart(&c.repo_url))
    {
        match ChartPlan::compile(c) {
            Ok(plan) if !any(&|q| plan.matches_version(q)) => {}
            _ => return true,
        }
    }
    false
}

/// Whether `w` subscribes to any of the normalised `repo_urls`, whatever was pushed.
pub fn subscribes_to(w: &Warehouse, repo_urls: &[String]) -> bool {
    let pushed = Pushed {
        repo_urls,
        qualifiers: &[],
        changed_paths: &[],
    };
    w.spec
        .subscriptions
        .iter()
        .any(|s| subscription_matches(s, &pushed))
}

/// Whether the push concerns `w`.
pub fn should_refresh(w: &Warehouse, pushed: &Pushed<'_>) -> bool {
    w.spec
        .subscriptions
        .iter()
        .any(|s| subscription_matches(s, pushed))
}

/// Names of the Warehouses the push concerns, sorted and distinct.
pub fn matching_warehouses(warehouses: &[Warehouse], pushed: &Pushed<'_>) -> Vec<String> {
    warehouses
        .iter()
        .filter(|w| should_refresh(w, pushed))
        .filter_map(|w| w.metadata.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
