//! Problems with a Warehouse's spec that no retry can fix, found before any registry is asked.

use std::time::Duration;

use crate::api::{
    ChartSubscription, GitSubscription, ImageSubscription, RepoSubscription, Warehouse,
};
use crate::discovery::{ChartPlan, GitPlan, ImageDiscoveryError, ImagePlan, SubscriptionProblem};
use crate::expressions::parse_criteria;

/// A subscription compiled once, for its discovery.
pub enum Compiled<'a> {
    Image(&'a ImageSubscription, ImagePlan),
    Git(&'a GitSubscription, GitPlan),
    Chart(&'a ChartSubscription, ChartPlan),
    /// Does not compile, but (as before validation covered it) is reported as this
    /// subscription's discovery failure, not as an invalid spec: git settings, image platforms.
    Failing(String),
}

/// A valid spec: the discovery interval and every subscription compiled, in order.
pub struct Valid<'a> {
    pub interval: Duration,
    pub subscriptions: Vec<Compiled<'a>>,
}

/// Problems with a Warehouse's spec that no retry can fix, each naming the field; or the spec
/// compiled for discovery.
pub fn validate(w: &Warehouse, min_interval: Duration) -> Result<Valid<'_>, Vec<String>> {
    let mut problems = Vec::new();
    let interval = match crate::duration::parse(&w.spec.interval) {
        Ok(d) => d.max(min_interval).max(Duration::from_secs(1)),
        Err(e) => {
            problems.push(format!("spec.interval: {e}"));
            Duration::from_secs(300)
        }
    };
    let mut seen_names = std::collections::BTreeSet::new();
    let mut subscriptions = Vec::new();
    for (i, sub) in w.spec.subscriptions.iter().enumerate() {
        let at = format!("spec.subscriptions[{i}]");
        let kinds = [sub.git.is_some(), sub.image.is_some(), sub.chart.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if kinds != 1 {
            problems.push(format!(
                "{at}: exactly one of git, image or chart must be set (found {kinds})"
            ));
        }
        if let Some(name) = &sub.name
            && !seen_names.insert(name.clone())
        {
            problems.push(format!(
                "{at}.name: subscription name {name:?} is used twice"
            ));
        }
        let compiled = if let Some(img) = &sub.image {
            match ImagePlan::compile(img) {
                Ok(plan) => Compiled::Image(img, plan),
                Err(found) => {
                    let (later, now): (Vec<_>, Vec<_>) =
                        found.into_iter().partition(|p| p.field == "platform");
                    problems.extend(now.iter().map(|p| field_problem(&format!("{at}.image"), p)));
                    Compiled::Failing(
                        ImageDiscoveryError::InvalidSubscription {
                            repo: img.repo_url.clone(),
                            reason: later
                                .iter()
                                .map(|p| p.message.as_str())
                                .collect::<Vec<_>>()
                                .join("; "),
                        }
                        .to_string(),
                    )
                }
            }
        } else if let Some(chart) = &sub.chart {
            let at = format!("{at}.chart");
            let compiled = match ChartPlan::compile(chart) {
                Ok(plan) => Compiled::Chart(chart, plan),
                Err(found) => {
                    problems.extend(found.iter().map(|p| field_problem(&at, p)));
                    Compiled::Failing(String::new())
                }
            };
            // Kargo's webhook rule; discovery itself clamps the limit.
            if !(1..=100).contains(&chart.discovery_limit) {
                problems.push(format!(
                    "{at}.discoveryLimit: must be between 1 and 100 (found {})",
                    chart.discovery_limit
                ));
            }
            compiled
        } else if let Some(git) = &sub.git {
            match GitPlan::compile(git) {
                Ok(plan) => Compiled::Git(git, plan),
                Err(p) => Compiled::Failing(p.into_error(git).to_string()),
            }
        } else {
            Compiled::Failing(String::new())
        };
        subscriptions.push(compiled);
    }
    if let Some(expr) = w
        .spec
        .freight_creation_criteria
        .as_ref()
        .and_then(|c| c.expression.as_deref())
        && let Err(e) = parse_criteria(expr)
    {
        problems.push(e.to_string());
    }
    if problems.is_empty() {
        Ok(Valid {
            interval,
            subscriptions,
        })
    } else {
        Err(problems)
    }
}

/// `<at>.<field>: <message>`, or `<at>: <message>` for the subscription as a whole.
fn field_problem(at: &str, p: &SubscriptionProblem) -> String {
    if p.field.is_empty() {
        format!("{at}: {}", p.message)
    } else {
        format!("{at}.{}: {}", p.field, p.message)
    }
}

/// A subscription's label in messages: its name, or its kind and repository.
pub fn describe(sub: &RepoSubscription) -> String {
    let (kind, url) = if let Some(i) = &sub.image {
        ("image", i.repo_url.as_str())
    } else if let Some(g) = &sub.git {
        ("git", g.repo_url.as_str())
    } else if let Some(c) = &sub.chart {
        ("chart", c.repo_url.as_str())
    } else {
        ("subscription", "")
    };
    match &sub.name {
        Some(n) => format!("{kind} subscription {n:?} ({url})"),
        None => format!("{kind} subscription {url}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FreightCreationCriteria;

    fn warehouse(expression: Option<&str>) -> Warehouse {
        let mut w: Warehouse = serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "w", "namespace": "p", "generation": 1},
            "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/api"}}]},
        }))
        .expect("warehouse");
        w.spec.freight_creation_criteria = expression.map(|e| FreightCreationCriteria {
            expression: Some(e.to_string()),
        });
        w
    }

    fn chart_warehouse(chart: serde_json::Value) -> Warehouse {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "w", "namespace": "p", "generation": 1},
            "spec": {"subscriptions": [{"name": "c", "chart": chart}]},
        }))
        .expect("warehouse")
    }

    #[test]
    fn chart_subscriptions_are_validated_like_kargo() {
        let ok = chart_warehouse(serde_json::json!({
            "repoURL": "oci://ghcr.io/acme/charts/api", "semverConstraint": "^1.0"
        }));
        assert!(validate(&ok, Duration::ZERO).is_ok());
        for (chart, want) in [
            (
                serde_json::json!({"repoURL": "https://charts.example.com"}),
                "spec.subscriptions[0].chart.name: name is required",
            ),
            (
                serde_json::json!({"repoURL": "oci://ghcr.io/acme/api", "name": "api"}),
                "spec.subscriptions[0].chart.name: name must be empty",
            ),
            (
                serde_json::json!({"repoURL": "oci://ghcr.io/acme/api", "semverConstraint": ">>1"}),
                "spec.subscriptions[0].chart.semverConstraint: ",
            ),
        ] {
            let problems = validate(&chart_warehouse(chart), Duration::ZERO)
                .err()
                .unwrap_or_default();
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_criteria_syntax_error_is_an_invalid_spec() {
        let problems = validate(&warehouse(Some("imageFrom('x').Tag ==")), Duration::ZERO)
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.freightCreationCriteria.expression: "),
            "{problems:?}"
        );
        assert!(validate(&warehouse(Some("true")), Duration::ZERO).is_ok());
    }

    fn image_warehouse(image: serde_json::Value) -> Warehouse {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "w", "namespace": "p", "generation": 1},
            "spec": {"subscriptions": [{"image": image}]},
        }))
        .expect("warehouse")
    }

    #[test]
    fn image_subscriptions_are_compiled_once_for_validation_and_discovery() {
        let problems = validate(
            &image_warehouse(serde_json::json!({
                "repoURL": "r/x", "allowTagsRegexes": ["("], "allowTags": "^v",
                "constraint": ">=> 1"
            })),
            Duration::ZERO,
        )
        .err()
        .unwrap_or_default();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "spec.subscriptions[0].image: invalid regular expression \"(\" in allowTagsRegexes"
            ),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "spec.subscriptions[0].image: allowTags/ignoreTags were removed in Kargo v1.11; use allowTagsRegexes/ignoreTagsRegexes"
        );
        assert!(problems[2].starts_with("spec.subscriptions[0].image.constraint: "));
        let digest = validate(
            &image_warehouse(
                serde_json::json!({"repoURL": "r/x", "imageSelectionStrategy": "Digest"}),
            ),
            Duration::ZERO,
        )
        .err()
        .unwrap_or_default();
        assert_eq!(
            digest,
            vec!["spec.subscriptions[0].image.constraint: the Digest strategy needs the tag to track in constraint".to_string()]
        );
        let ok = validate(
            &image_warehouse(serde_json::json!({"repoURL": "r/x"})),
            Duration::ZERO,
        )
        .map(|v| v.subscriptions.len());
        assert_eq!(ok.ok(), Some(1));
    }

    #[test]
    fn platform_and_git_problems_stay_discovery_failures() {
        let w = image_warehouse(serde_json::json!({"repoURL": "r/x", "platform": "linux"}));
        let valid = validate(&w, Duration::ZERO).unwrap_or_else(|p| panic!("{p:?}"));
        match &valid.subscriptions[0] {
            Compiled::Failing(m) => assert_eq!(
                m,
                "invalid image subscription for r/x: invalid platform \"linux\" (expected os/arch[/variant])"
            ),
            _ => panic!("compiled"),
        }
        let w: Warehouse = serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": "w", "namespace": "p"},
            "spec": {"subscriptions": [{"git": {
                "repoURL": "https://git.example.com/a.git", "includePaths": ["glob:[abc"]
            }}]},
        }))
        .expect("warehouse");
        let valid = validate(&w, Duration::ZERO).unwrap_or_else(|p| panic!("{p:?}"));
        match &valid.subscriptions[0] {
            Compiled::Failing(m) => assert!(
                m.starts_with(
                    "invalid git subscription for https://git.example.com/a.git: includePaths: "
                ),
                "{m}"
            ),
            _ => panic!("compiled"),
        }
    }
}
