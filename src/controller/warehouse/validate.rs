//! Problems with a Warehouse's spec that no retry can fix, found before any registry is asked.

use std::time::Duration;

use crate::api::{ImageSelectionStrategy, RepoSubscription, Warehouse};
use crate::discovery::{ChartSource, Constraint, TagFilter};
use crate::expressions::parse_criteria;

/// Problems with a Warehouse's spec that no retry can fix, each naming the field.
pub fn validate(w: &Warehouse, min_interval: Duration) -> Result<Duration, Vec<String>> {
    let mut problems = Vec::new();
    let interval = match crate::duration::parse(&w.spec.interval) {
        Ok(d) => d.max(min_interval).max(Duration::from_secs(1)),
        Err(e) => {
            problems.push(format!("spec.interval: {e}"));
            Duration::from_secs(300)
        }
    };
    let mut seen_names = std::collections::BTreeSet::new();
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
        if let Some(img) = &sub.image {
            let at = format!("{at}.image");
            if let Err(e) = TagFilter::new(&allow_regexes(img), &ignore_regexes(img)) {
                problems.push(format!("{at}: {e}"));
            }
            if img.allow_tags.is_some() || !img.ignore_tags.is_empty() {
                problems.push(format!(
                    "{at}: allowTags/ignoreTags were removed in Kargo v1.11; use allowTagsRegexes/ignoreTagsRegexes"
                ));
            }
            let strategy = &img.image_selection_strategy;
            match (
                matches!(strategy, ImageSelectionStrategy::SemVer),
                img.effective_constraint(),
            ) {
                (true, Some(c)) if !c.is_empty() => {
                    if let Err(e) = Constraint::parse(c) {
                        problems.push(format!("{at}.constraint: {e}"));
                    }
                }
                (false, None) if matches!(strategy, ImageSelectionStrategy::Digest) => problems
                    .push(format!(
                        "{at}.constraint: the Digest strategy needs the tag to track in constraint"
                    )),
                _ => {}
            }
        }
        if let Some(chart) = &sub.chart {
            problems.extend(validate_chart(chart, &format!("{at}.chart")));
        }
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
        Ok(interval)
    } else {
        Err(problems)
    }
}

/// A chart subscription's problems (Kargo's webhook rules), each naming the field.
fn validate_chart(chart: &crate::api::ChartSubscription, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = ChartSource::of(chart) {
        let field = if e.contains("name") {
            "name"
        } else {
            "repoURL"
        };
        problems.push(format!("{at}.{field}: {e}"));
    }
    if let Some(c) = chart
        .semver_constraint
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        && let Err(e) = Constraint::parse(c)
    {
        problems.push(format!("{at}.semverConstraint: {e}"));
    }
    if !(1..=100).contains(&chart.discovery_limit) {
        problems.push(format!(
            "{at}.discoveryLimit: must be between 1 and 100 (found {})",
            chart.discovery_limit
        ));
    }
    problems
}

fn allow_regexes(img: &crate::api::ImageSubscription) -> Vec<String> {
    img.allow_tags_regexes
        .iter()
        .chain(img.allow_tags_regex.iter())
        .cloned()
        .collect()
}

fn ignore_regexes(img: &crate::api::ImageSubscription) -> Vec<String> {
    img.ignore_tags_regexes
        .iter()
        .chain(img.ignore_tags_regex.iter())
        .cloned()
        .collect()
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
}
