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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn warehouse(name: &str, subscription: Value) -> Warehouse {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"subscriptions": [subscription]},
        }))
        .expect("warehouse")
    }

    const REPO: &str = "https://git.example.com/org/app";

    fn pushed_to<'a>(
        repo_urls: &'a [String],
        qualifiers: &'a [String],
        changed_paths: &'a [String],
    ) -> Pushed<'a> {
        Pushed {
            repo_urls,
            qualifiers,
            changed_paths,
        }
    }

    fn names(ws: &[Warehouse], urls: &[&str], qualifiers: &[&str], paths: &[&str]) -> Vec<String> {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (u, q, p) = (v(urls), v(qualifiers), v(paths));
        matching_warehouses(ws, &pushed_to(&u, &q, &p))
    }

    fn git_warehouses() -> Vec<Warehouse> {
        vec![
            warehouse("main", json!({"git": {"repoURL": REPO, "branch": "main"}})),
            warehouse(
                "default",
                json!({"git": {"repoURL": format!("{REPO}.git")}}),
            ),
            warehouse(
                "release",
                json!({"git": {"repoURL": REPO, "branch": "release"}}),
            ),
            warehouse(
                "semver",
                json!({"git": {"repoURL": REPO, "commitSelectionStrategy": "SemVer",
                               "semverConstraint": "^1.0.0"}}),
            ),
            warehouse(
                "lexical",
                json!({"git": {"repoURL": REPO, "commitSelectionStrategy": "Lexical",
                               "allowTagsRegexes": ["^nightly-"]}}),
            ),
            warehouse(
                "newest-tag",
                json!({"git": {"repoURL": REPO, "commitSelectionStrategy": "NewestTag",
                               "ignoreTagsRegexes": ["-rc"]}}),
            ),
            warehouse(
                "other-repo",
                json!({"git": {"repoURL": "https://git.example.com/org/other", "branch": "main"}}),
            ),
        ]
    }

    #[test]
    fn a_branch_push_refreshes_the_subscriptions_to_that_branch() {
        let ws = git_warehouses();
        assert_eq!(
            names(&ws, &[REPO], &["refs/heads/main"], &[]),
            ["default", "main"]
        );
        assert_eq!(
            names(&ws, &[REPO], &["refs/heads/master"], &[]),
            ["default"]
        );
        assert_eq!(
            names(&ws, &[REPO], &["refs/heads/release"], &[]),
            ["release"]
        );
        assert!(names(&ws, &[REPO], &["refs/heads/feature"], &[]).is_empty());
        // A tag is not a branch.
        assert!(!names(&ws, &[REPO], &["refs/tags/main"], &[]).contains(&"main".to_string()));
    }

    #[test]
    fn a_tag_push_refreshes_the_tag_subscriptions_whose_filters_keep_it() {
        let ws = git_warehouses();
        assert_eq!(
            names(&ws, &[REPO], &["refs/tags/v1.4.0"], &[]),
            ["newest-tag", "semver"]
        );
        // Outside the constraint, and not a version at all.
        assert_eq!(
            names(&ws, &[REPO], &["refs/tags/v2.0.0"], &[]),
            ["newest-tag"]
        );
        assert_eq!(
            names(&ws, &[REPO], &["refs/tags/nightly-2024"], &[]),
            ["lexical", "newest-tag"]
        );
        // Ignored by ignoreTagsRegexes; a prerelease is outside a constraint without one.
        assert!(names(&ws, &[REPO], &["refs/tags/v1.5.0-rc.1"], &[]).is_empty());
        // Either of two pushed refs is enough.
        assert_eq!(
            names(
                &ws,
                &[REPO],
                &["refs/heads/release", "refs/tags/v1.0.0"],
                &[]
            ),
            ["newest-tag", "release", "semver"]
        );
    }

    #[test]
    fn without_a_ref_every_subscribed_warehouse_is_refreshed() {
        let ws = git_warehouses();
        assert_eq!(
            names(&ws, &[REPO], &[], &[]),
            [
                "default",
                "lexical",
                "main",
                "newest-tag",
                "release",
                "semver"
            ]
        );
        assert!(names(&ws, &["https://git.example.com/org/none"], &[], &[]).is_empty());
    }

    #[test]
    fn changed_paths_must_pass_the_path_filters() {
        let ws = vec![
            warehouse(
                "foo",
                json!({"git": {"repoURL": REPO, "branch": "main", "includePaths": ["apps/foo"]}}),
            ),
            warehouse(
                "not-docs",
                json!({"git": {"repoURL": REPO, "branch": "main", "excludePaths": ["glob:docs/**"]}}),
            ),
            warehouse("all", json!({"git": {"repoURL": REPO, "branch": "main"}})),
        ];
        let main = ["refs/heads/main"];
        assert_eq!(names(&ws, &[REPO], &main, &["docs/a.md"]), ["all"]);
        assert_eq!(
            names(&ws, &[REPO], &main, &["apps/foo/values.yaml"]),
            ["all", "foo", "not-docs"]
        );
        // Unknown changes (a truncated list): no path filtering.
        assert_eq!(names(&ws, &[REPO], &main, &[]), ["all", "foo", "not-docs"]);
    }

    #[test]
    fn image_and_chart_tags_must_pass_the_subscription_filters() {
        let ws = vec![
            warehouse(
                "semver",
                json!({"image": {"repoURL": "harbor.example.com/library/alpine",
                                 "constraint": "^1.0.0", "strictSemvers": false}}),
            ),
            warehouse(
                "semver-strict",
                json!({"image": {"repoURL": "harbor.example.com/library/alpine",
                                 "strictSemvers": true}}),
            ),
            warehouse(
                "lexical",
                json!({"image": {"repoURL": "harbor.example.com/library/alpine",
                                 "imageSelectionStrategy": "Lexical",
                                 "allowTagsRegexes": ["^nightly"]}}),
            ),
            warehouse(
                "digest",
                json!({"image": {"repoURL": "harbor.example.com/library/alpine",
                                 "imageSelectionStrategy": "Digest", "constraint": "latest"}}),
            ),
            warehouse(
                "chart",
                json!({"chart": {"repoURL": "oci://harbor.example.com/library/alpine",
                                 "semverConstraint": ">=2"}}),
            ),
        ];
        let repo = "harbor.example.com/library/alpine";
        assert_eq!(
            names(&ws, &[repo], &["v1.0.0"], &[]),
            ["semver", "semver-strict"]
        );
        assert_eq!(names(&ws, &[repo], &["1.2"], &[]), ["semver"]);
        assert_eq!(
            names(&ws, &[repo], &["v2.0.0"], &[]),
            ["chart", "semver-strict"]
        );
        assert_eq!(names(&ws, &[repo], &["latest"], &[]), ["digest"]);
        assert_eq!(names(&ws, &[repo], &["nightly-3"], &[]), ["lexical"]);
        assert_eq!(names(&ws, &[repo], &["v1.0.0", "latest"], &[]).len(), 3);
    }

    #[test]
    fn a_subscription_that_does_not_compile_is_refreshed_to_report_itself() {
        let ws = vec![warehouse(
            "broken",
            json!({"image": {"repoURL": "ghcr.io/org/app", "allowTagsRegexes": ["("]}}),
        )];
        assert_eq!(names(&ws, &["ghcr.io/org/app"], &["v1"], &[]), ["broken"]);
    }
}
