//! A Warehouse's `spec.freightCreationCriteria.expression` (Kargo:
//! `internal/controller/warehouses/warehouses.go: freightCreationCriteriaSatisfied`).
//!
//! A bare expr-lang expression over the latest discovery: `imageFrom(repo)`, `commitFrom(repo)`
//! and `chartFrom(repo[, name])` return the newest discovered artifact of that repository
//! (`.Tag`, `.Digest`, `.Annotations`, `.CreatedAt`; `.ID`, `.Subject`, …; `.Version`), or nil.
//! Typical use: create Freight only when two images carry the same tag,
//! `imageFrom('ghcr.io/acme/api').Tag == imageFrom('ghcr.io/acme/web').Tag`.

use std::collections::BTreeMap;

use super::template::eval_expression;
use super::value::Val;
use super::{ErrorKind, ExpressionError, Functions};
use crate::api::DiscoveredArtifacts;

/// The field every criteria error names.
pub const CRITERIA_FIELD: &str = "spec.freightCreationCriteria.expression";

/// The discovery as the artifact functions see it; nothing else is available.
struct Discovered<'a>(&'a DiscoveredArtifacts);

impl Functions for Discovered<'_> {
    fn discovered_artifacts(&self) -> Option<&DiscoveredArtifacts> {
        Some(self.0)
    }
}

fn error(kind: ErrorKind, expression: &str, message: String) -> ExpressionError {
    ExpressionError {
        kind,
        step: None,
        path: CRITERIA_FIELD.to_string(),
        expression: Some(expression.to_string()),
        position: None,
        message,
    }
}

/// Checks only the syntax, so a typo is reported before any registry is asked.
pub fn parse_criteria(expression: &str) -> Result<(), ExpressionError> {
    let expression = expression.trim();
    if expression.is_empty() {
        return Ok(());
    }
    super::parser::parse(expression).map(|_| ()).map_err(|e| {
        let mut err = super::template::span_error(ErrorKind::Syntax, expression, expression, e);
        err.path = CRITERIA_FIELD.to_string();
        err
    })
}

/// Whether Freight may be created from `artifacts`. As in Kargo, an empty expression or an empty
/// discovery is satisfied, and a non-bool result counts when Go's `strconv.ParseBool` accepts
/// its text (`"true"`, `1`, …).
pub fn freight_creation_criteria_satisfied(
    expression: &str,
    artifacts: &DiscoveredArtifacts,
) -> Result<bool, ExpressionError> {
    let expression = expression.trim();
    if expression.is_empty()
        || (artifacts.images.is_empty() && artifacts.git.is_empty() && artifacts.charts.is_empty())
    {
        return Ok(true);
    }
    let roots = BTreeMap::new();
    let result = eval_expression(expression, expression, &roots, &Discovered(artifacts)).map_err(
        |mut e| {
            e.path = CRITERIA_FIELD.to_string();
            e
        },
    )?;
    if let Val::Bool(b) = result {
        return Ok(b);
    }
    let text = result.go_display();
    parse_go_bool(&text).ok_or_else(|| {
        error(
            ErrorKind::NotBool,
            expression,
            format!(
                "expression must evaluate to a boolean, got {}",
                result.describe()
            ),
        )
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{
        ArtifactReference, ChartDiscoveryResult, DiscoveredCommit, DiscoveredImageReference,
        DiscoveryResult, GitDiscoveryResult, ImageDiscoveryResult,
    };

    fn image(repo: &str, tags: &[&str]) -> ImageDiscoveryResult {
        ImageDiscoveryResult {
            repo_url: repo.to_string(),
            references: tags
                .iter()
                .map(|t| DiscoveredImageReference {
                    tag: t.to_string(),
                    digest: format!("sha256:{:0>64}", t.len()),
                    annotations: BTreeMap::from([("team".to_string(), "core".to_string())]),
                    created_at: "2024-05-01T10:00:00Z".parse().ok().map(Time),
                })
                .collect(),
            ..ImageDiscoveryResult::default()
        }
    }

    fn artifacts() -> DiscoveredArtifacts {
        DiscoveredArtifacts {
            discovered_at: None,
            images: vec![
                image("ghcr.io/acme/api", &["1.4.0", "1.3.0"]),
                image("ghcr.io/acme/web", &["1.3.0"]),
                image("nginx", &["1.27.0"]),
                image("ghcr.io/acme/none", &[]),
            ],
            git: vec![GitDiscoveryResult {
                repo_url: "https://github.com/acme/config.git".to_string(),
                commits: vec![DiscoveredCommit {
                    id: Some("abc123".to_string()),
                    branch: Some("main".to_string()),
                    subject: Some("release 1.4.0".to_string()),
                    creator_date: "2025-03-01T08:00:00Z".parse().ok().map(Time),
                    ..DiscoveredCommit::default()
                }],
                ..GitDiscoveryResult::default()
            }],
            charts: vec![
                ChartDiscoveryResult {
                    repo_url: "oci://ghcr.io/acme/charts/api".to_string(),
                    versions: vec!["1.4.0".to_string()],
                    ..ChartDiscoveryResult::default()
                },
                ChartDiscoveryResult {
                    repo_url: "https://charts.example.com".to_string(),
                    name: Some("web".to_string()),
                    versions: vec!["2.0.0".to_string()],
                    ..ChartDiscoveryResult::default()
                },
            ],
            results: vec![
                DiscoveryResult {
                    subscription_name: "bundle".to_string(),
                    artifact_references: vec![],
                },
                DiscoveryResult {
                    subscription_name: "bundle".to_string(),
                    artifact_references: vec![ArtifactReference {
                        artifact_type: None,
                        subscription_name: "bundle".to_string(),
                        version: "v1.4.0".to_string(),
                        metadata: Some(serde_json::json!({"channel": "stable"})),
                    }],
                },
            ],
        }
    }

    #[test]
    fn artifact_functions_read_the_newest_discovered_artifact() {
        let a = artifacts();
        let cases = [
            ("imageFrom('ghcr.io/acme/api').Tag == '1.4.0'", true),
            (
                "imageFrom('ghcr.io/acme/api').Tag == imageFrom('ghcr.io/acme/web').Tag",
                false,
            ),
            // Docker Hub names compare normalised, as in Kargo.
            ("imageFrom('docker.io/library/nginx').Tag == '1.27.0'", true),
            (
                "imageFrom('ghcr.io/acme/api').Annotations['team'] == 'core'",
                true,
            ),
            // Dates are times (Go's *metav1.Time): methods and date() comparisons work, and
            // equality with a string is false, as in expr-lang.
            (
                "imageFrom('ghcr.io/acme/api').CreatedAt.Equal(date('2024-05-01T10:00:00Z'))",
                true,
            ),
            (
                "imageFrom('ghcr.io/acme/api').CreatedAt.Year() == 2024",
                true,
            ),
            (
                "imageFrom('ghcr.io/acme/api').CreatedAt == '2024-05-01T10:00:00Z'",
                false,
            ),
            (
                "commitFrom('https://github.com/acme/config').CreatorDate.After(date('2025-01-01'))",
                true,
            ),
            (
                "commitFrom('https://github.com/acme/config').CreatorDate.Year() >= 2026",
                false,
            ),
            ("imageFrom('ghcr.io/acme/none') == nil", true),
            ("imageFrom('ghcr.io/acme/other') == nil", true),
            (
                "commitFrom('https://github.com/ACME/config').Subject contains '1.4.0'",
                true,
            ),
            (
                "commitFrom('https://github.com/acme/config.git').ID == 'abc123'",
                true,
            ),
            (
                "chartFrom('oci://ghcr.io/acme/charts/api').Version == imageFrom('ghcr.io/acme/api').Tag",
                true,
            ),
            (
                "chartFrom('https://charts.example.com', 'web').Version == '2.0.0'",
                true,
            ),
            (
                "chartFrom('https://charts.example.com', 'api') == nil",
                true,
            ),
            // Generic subscriptions: the newest discovered artifact, or nil.
            ("artifactFrom('bundle').Version == 'v1.4.0'", true),
            ("artifactFrom('bundle').Metadata.channel == 'stable'", true),
            ("artifactFrom('other') == nil", true),
            ("'true'", true),
            ("1", true),
            ("'False'", false),
        ];
        for (expr, want) in cases {
            assert_eq!(
                freight_creation_criteria_satisfied(expr, &a),
                Ok(want),
                "{expr}"
            );
        }
    }

    #[test]
    fn empty_expression_or_discovery_is_satisfied() {
        assert_eq!(
            freight_creation_criteria_satisfied("  ", &artifacts()),
            Ok(true)
        );
        assert_eq!(
            freight_creation_criteria_satisfied("false", &DiscoveredArtifacts::default()),
            Ok(true)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let a = artifacts();
        let msg = |expr: &str| {
            freight_creation_criteria_satisfied(expr, &a)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let m = msg("imageFrom('ghcr.io/acme/api').Tag ==");
        assert!(m.starts_with(CRITERIA_FIELD), "{m}");
        let m = msg("imageFrom('ghcr.io/acme/other').Tag == '1'");
        assert!(
            m.starts_with(CRITERIA_FIELD) && m.contains("among the discovered artifacts"),
            "{m}"
        );
        let m = msg("imageFrom('ghcr.io/acme/api', warehouse('w')).Tag == '1'");
        assert!(
            m.contains("imageFrom: invalid number of arguments (expected 1, got 2)"),
            "{m}"
        );
        let m = msg("imageFrom('ghcr.io/acme/api').Tag");
        assert!(
            m.contains("must evaluate to a boolean, got string \"1.4.0\""),
            "{m}"
        );
        let e = parse_criteria("a ==").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|m| m.starts_with(CRITERIA_FIELD)),
            "{e:?}"
        );
        assert_eq!(parse_criteria("imageFrom('x').Tag == 'y'"), Ok(()));
        assert_eq!(parse_criteria(""), Ok(()));
    }
}
