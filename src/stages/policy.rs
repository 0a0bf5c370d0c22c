//! Which ProjectConfig promotion policy applies to a Stage (Kargo: the first match wins; a
//! selector name may be exact, `regex:`/`regexp:` or `glob:`; labels must all match).

use std::collections::BTreeMap;

use crate::api::{ProjectConfig, PromotionPolicy, PromotionPolicySelector};

/// Whether a name pattern matches; an invalid pattern matches nothing.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if let Some(re) = pattern
        .strip_prefix("regex:")
        .or_else(|| pattern.strip_prefix("regexp:"))
    {
        return regex::Regex::new(re).is_ok_and(|r| r.is_match(name));
    }
    if let Some(g) = pattern.strip_prefix("glob:") {
        return crate::doublestar::Glob::new(g).is_ok_and(|p| p.matches(name));
    }
    pattern == name
}

fn labels_match(sel: &PromotionPolicySelector, labels: &BTreeMap<String, String>) -> bool {
    let exact = sel
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs = sel.match_expressions.iter().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    exact && exprs
}

fn policy_matches(p: &PromotionPolicy, stage: &str, labels: &BTreeMap<String, String>) -> bool {
    if let Some(s) = &p.stage {
        return s == stage;
    }
    match &p.stage_selector {
        Some(sel) => {
            sel.name.as_deref().is_none_or(|n| name_matches(n, stage)) && labels_match(sel, labels)
        }
        None => false,
    }
}

/// The first policy of the ProjectConfig that applies to the Stage.
pub fn find<'a>(
    config: Option<&'a ProjectConfig>,
    stage: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'a PromotionPolicy> {
    config?
        .spec
        .promotion_policies
        .iter()
        .find(|p| policy_matches(p, stage, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_pattern() {
        assert!(name_matches("dev", "dev"));
        assert!(!name_matches("dev", "dev2"));
        assert!(name_matches("regex:^dev-.*$", "dev-eu"));
        assert!(name_matches("glob:dev-*", "dev-us"));
        assert!(!name_matches("glob:dev-*", "prod"));
        assert!(!name_matches("regex:(", "("));
    }

    #[test]
    fn first_matching_policy_wins() {
        let pc: ProjectConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "ProjectConfig",
            "metadata": {"name": "p", "namespace": "p"},
            "spec": {"promotionPolicies": [
                {"stageSelector": {"matchLabels": {"tier": "prod"}}, "autoPromotionEnabled": false},
                {"stageSelector": {"name": "glob:*"}, "autoPromotionEnabled": true}
            ]}
        }))
        .expect("config");
        let prod: BTreeMap<String, String> = [("tier".to_string(), "prod".to_string())].into();
        assert_eq!(
            find(Some(&pc), "prod", &prod).and_then(|p| p.auto_promotion_enabled),
            Some(false)
        );
        assert_eq!(
            find(Some(&pc), "dev", &BTreeMap::new()).and_then(|p| p.auto_promotion_enabled),
            Some(true)
        );
        assert!(find(None, "dev", &BTreeMap::new()).is_none());
    }
}
