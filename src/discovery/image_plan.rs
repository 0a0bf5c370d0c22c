//! An image subscription compiled once (regexes, constraint, platform, limit): what discovery
//! runs and what the Warehouse's validation checks.

use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::semver_constraint::{Constraint, parse_version};
use super::subscription::SubscriptionProblem;
use super::tag_filter::{TagFilter, TagRegexes};
use super::tag_selection::{
    Strategy, lexical_candidates, newest_build_candidates, semver_candidates,
};
use super::types::Platform;
use crate::api::warehouse::{DEFAULT_DISCOVERY_LIMIT, ImageSelectionStrategy, ImageSubscription};

/// Largest `discoveryLimit` (the CRD's maximum).
pub const MAX_DISCOVERY_LIMIT: usize = 100;

/// A compiled image subscription.
#[derive(Debug)]
pub struct ImagePlan {
    pub strategy: Strategy,
    pub filter: TagFilter,
    pub constraint: Option<Constraint>,
    /// Digest strategy: the tag to track.
    pub digest_tag: Option<String>,
    pub strict: bool,
    pub limit: usize,
    pub platform: Option<Platform>,
    pub cache_by_tag: bool,
    pub insecure: bool,
    /// Identifies the subscription's selection inputs (for the selection memo).
    pub fingerprint: [u8; 32],
}

impl ImagePlan {
    /// Kargo's `MatchesTag`: whether a pushed tag concerns this subscription, so a webhook
    /// refreshes only the Warehouses a push can change. Digest tracks its one tag; the others
    /// keep the tags their filters keep (SemVer: also a version within the constraint).
    pub fn matches_tag(&self, tag: &str) -> bool {
        match self.strategy {
            Strategy::Digest => self.digest_tag.as_deref() == Some(tag),
            Strategy::SemVer => {
                self.filter.matches(tag)
                    && parse_version(tag, self.strict)
                        .is_some_and(|v| self.constraint.as_ref().is_none_or(|c| c.matches(&v)))
            }
            Strategy::Lexical | Strategy::NewestBuild => self.filter.matches(tag),
        }
    }

    /// Compiles `sub`, or names every problem (the field relative to the subscription).
    pub fn compile(sub: &ImageSubscription) -> Result<Self, Vec<SubscriptionProblem>> {
        let mut problems = Vec::new();
        let strategy = match sub.image_selection_strategy {
            ImageSelectionStrategy::SemVer => Strategy::SemVer,
            ImageSelectionStrategy::Lexical => Strategy::Lexical,
            ImageSelectionStrategy::NewestBuild => Strategy::NewestBuild,
            ImageSelectionStrategy::Digest => Strategy::Digest,
        };
        let allow = sub.allow_regexes();
        let ignore = sub.ignore_regexes();
        let filter = TagFilter::of(sub)
            .map_err(|e| problems.push(SubscriptionProblem::new("", e.to_string())))
            .unwrap_or_default();
        if sub.allow_tags.is_some() || !sub.ignore_tags.is_empty() {
            problems.push(SubscriptionProblem::new(
                "",
                "allowTags/ignoreTags were removed in Kargo v1.11; use allowTagsRegexes/ignoreTagsRegexes",
            ));
        }
        let raw_constraint = sub.effective_constraint().filter(|c| !c.trim().is_empty());
        let (constraint, digest_tag) = match strategy {
            // As Kargo: only an empty constraint is no constraint; blanks are refused.
            Strategy::SemVer => (
                sub.effective_constraint()
                    .filter(|c| !c.is_empty())
                    .and_then(|c| {
                        Constraint::parse(c)
                            .map_err(|e| {
                                problems.push(SubscriptionProblem::new("constraint", e.to_string()))
                            })
                            .ok()
                    }),
                None,
            ),
            Strategy::Digest => {
                if raw_constraint.is_none() {
                    problems.push(SubscriptionProblem::new(
                        "constraint",
                        "the Digest strategy needs the tag to track in constraint",
                    ));
                }
                (None, raw_constraint.map(|t| t.trim().to_owned()))
            }
            Strategy::Lexical | Strategy::NewestBuild => (None, None),
        };
        let platform = sub
            .platform
            .as_deref()
            .filter(|p| !p.is_empty())
            .and_then(|p| {
                Platform::from_str(p)
                    .map_err(|e| problems.push(SubscriptionProblem::new("platform", e.to_string())))
                    .ok()
            });
        if !problems.is_empty() {
            return Err(problems);
        }
        let limit = match usize::try_from(sub.discovery_limit) {
            Ok(0) | Err(_) => DEFAULT_DISCOVERY_LIMIT as usize,
            Ok(n) => n.min(MAX_DISCOVERY_LIMIT),
        };
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, s: &str| {
            h.update(s.len().to_le_bytes());
            h.update(s.as_bytes());
        };
        field(&mut h, &sub.repo_url);
        field(&mut h, strategy.as_str());
        field(&mut h, raw_constraint.unwrap_or(""));
        field(
            &mut h,
            if sub.strict_semvers {
                "strict"
            } else {
                "loose"
            },
        );
        for a in &allow {
            field(&mut h, "allow");
            field(&mut h, a);
        }
        for i in &ignore {
            field(&mut h, "ignore");
            field(&mut h, i);
        }
        field(
            &mut h,
            &platform.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        );
        field(&mut h, &limit.to_string());
        Ok(Self {
            strategy,
            filter,
            constraint,
            digest_tag,
            strict: sub.strict_semvers,
            limit,
            platform,
            cache_by_tag: sub.cache_by_tag.unwrap_or(false),
            insecure: sub.insecure_skip_tls_verify.unwrap_or(false),
            fingerprint: h.finalize().into(),
        })
    }

    /// The tag-based candidates, best first (NewestBuild: unordered).
    pub fn candidates(&self, tags: Vec<String>) -> Vec<String> {
        match self.strategy {
            Strategy::SemVer => {
                semver_candidates(tags, &self.filter, self.constraint.as_ref(), self.strict)
            }
            Strategy::Lexical => lexical_candidates(tags, &self.filter),
            Strategy::NewestBuild => newest_build_candidates(tags, &self.filter),
            Strategy::Digest => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(json: serde_json::Value) -> ImageSubscription {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }
    #[test]
    fn plans_validate_subscriptions() {
        let p = ImagePlan::compile(&sub(serde_json::json!({
            "repoURL": "ghcr.io/a/b", "semverConstraint": "^1.2", "allowTagsRegex": ["^v"],
            "ignoreTagsRegexes": ["rc"], "discoveryLimit": 500, "platform": "linux/amd64"
        })))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.strategy, Strategy::SemVer);
        assert_eq!(p.limit, MAX_DISCOVERY_LIMIT);
        assert!(p.constraint.is_some());
        assert!(
            p.filter.matches("v1.0.0")
                && !p.filter.matches("v1.0.0-rc1")
                && !p.filter.matches("1.0.0")
        );
        assert_eq!(
            p.platform.as_ref().map(|p| p.to_string()).as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(
            p.candidates(vec!["v1.2.0".into(), "v1.3.0".into(), "v2.0.0".into()]),
            vec!["v1.3.0".to_owned(), "v1.2.0".to_owned()]
        );

        let d = ImagePlan::compile(&sub(serde_json::json!({
            "repoURL": "ghcr.io/a/b", "imageSelectionStrategy": "Digest", "constraint": "latest"
        })))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(d.digest_tag.as_deref(), Some("latest"));
        assert_eq!(d.limit, 20);

        for bad in [
            serde_json::json!({"repoURL": "r/x", "imageSelectionStrategy": "Digest"}),
            serde_json::json!({"repoURL": "r/x", "constraint": "not a range"}),
            serde_json::json!({"repoURL": "r/x", "constraint": "  "}),
            serde_json::json!({"repoURL": "r/x", "allowTagsRegexes": ["("]}),
            serde_json::json!({"repoURL": "r/x", "platform": "linux"}),
            serde_json::json!({"repoURL": "r/x", "allowTags": "^v"}),
            serde_json::json!({"repoURL": "r/x", "ignoreTags": ["latest"]}),
        ] {
            assert!(ImagePlan::compile(&sub(bad.clone())).is_err(), "{bad}");
        }
        // A bad constraint names the field, the constraint and what is wrong.
        let problems = ImagePlan::compile(&sub(serde_json::json!({
            "repoURL": "r/x", "constraint": ">=1.0.0 <2.0.0-beta.01"
        })))
        .err()
        .map(|p| super::super::describe_problems(&p));
        assert_eq!(
            problems.as_deref(),
            Some(
                "constraint: invalid semver constraint \">=1.0.0 <2.0.0-beta.01\": \
                 \"2.0.0-beta.01\" is not a valid version: version segment starts with 0"
            )
        );
        // Different selection inputs, different fingerprints.
        let a =
            ImagePlan::compile(&sub(serde_json::json!({"repoURL": "r/x"}))).map(|p| p.fingerprint);
        let b = ImagePlan::compile(&sub(
            serde_json::json!({"repoURL": "r/x", "discoveryLimit": 5}),
        ))
        .map(|p| p.fingerprint);
        assert!(a.is_ok() && a != b);
    }
}
