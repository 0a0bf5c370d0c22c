//! Which Freight a Stage may receive (Kargo's `Stage.IsFreightAvailable`, reference §2.4): the
//! Freight's origin must be requested by the Stage, and then it must be approved for the Stage,
//! or taken directly from its Warehouse, or verified (and soaked) in one / all upstream Stages.
//! This is the rule that keeps prod from receiving Freight that never passed uat.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{AvailabilityStrategy, Freight, Stage};

/// Why Freight is not available to a Stage, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Freight {freight} is not available to Stage {stage}: {reason}")]
pub struct NotAvailable {
    pub freight: String,
    pub stage: String,
    pub reason: String,
}

fn soaked(f: &Freight, upstream: &str, required: Option<Duration>, now: Timestamp) -> bool {
    let Some(required) = required.filter(|d| !d.is_zero()) else {
        return true;
    };
    let Some(status) = f.status.as_ref() else {
        return false;
    };
    let longest = status
        .verified_in
        .get(upstream)
        .and_then(|v| v.longest_soak.as_deref())
        .and_then(|s| crate::duration::parse(s).ok())
        .unwrap_or_default();
    let current = status
        .currently_in
        .get(upstream)
        .and_then(|c| c.since.as_ref())
        .and_then(|since| Duration::try_from(now.duration_since(since.0)).ok())
        .unwrap_or_default();
    longest.max(current) >= required
}

fn verified(f: &Freight, upstream: &str) -> bool {
    f.status
        .as_ref()
        .is_some_and(|s| s.verified_in.contains_key(upstream))
}

/// `Ok(())` when `freight` may be promoted to `stage` at `now`.
pub fn check(stage: &Stage, freight: &Freight, now: Timestamp) -> Result<(), NotAvailable> {
    let stage_name = stage.metadata.name.clone().unwrap_or_default();
    let freight_name = freight.metadata.name.clone().unwrap_or_default();
    let no = |reason: String| NotAvailable {
        freight: freight_name.clone(),
        stage: stage_name.clone(),
        reason,
    };
    if stage.metadata.namespace != freight.metadata.namespace {
        return Err(no("it is in another project".into()));
    }
    let Some(req) = stage.spec.request_for(&freight.origin) else {
        return Err(no(format!(
            "the Stage does not request Freight from {}",
            freight.origin
        )));
    };
    if freight
        .status
        .as_ref()
        .is_some_and(|s| s.approved_for.contains_key(&stage_name))
    {
        return Ok(());
    }
    if req.sources.direct == Some(true) {
        return Ok(());
    }
    let ups = &req.sources.stages;
    if ups.is_empty() {
        return Err(no(format!(
            "the Stage takes Freight from {} only from upstream Stages, and names none",
            freight.origin
        )));
    }
    let soak = req
        .sources
        .required_soak_time
        .as_deref()
        .and_then(|s| crate::duration::parse(s).ok());
    let ok = |up: &String| verified(freight, up) && soaked(freight, up, soak, now);
    let all = matches!(
        req.sources.availability_strategy,
        Some(AvailabilityStrategy::All)
    );
    let passes = if all {
        ups.iter().all(ok)
    } else {
        ups.iter().any(ok)
    };
    if passes {
        return Ok(());
    }
    let missing: Vec<String> = ups
        .iter()
        .filter(|u| !ok(u))
        .map(|u| {
            if !verified(freight, u) {
                format!("not verified in {u}")
            } else {
                format!(
                    "verified in {u} but not yet soaked there for {}",
                    req.sources
                        .required_soak_time
                        .as_deref()
                        .unwrap_or_default()
                )
            }
        })
        .collect();
    let how = if all { "every one of" } else { "one of" };
    Err(no(format!(
        "it must be verified in {how} {} first ({}), or approved for {stage_name}",
        ups.join(", "),
        missing.join("; ")
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Stage `name` requesting Freight from Warehouse `w` through `sources`.
    pub(crate) fn stage(name: &str, sources: serde_json::Value) -> Stage {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}]}
        }))
        .expect("stage")
    }

    fn freight(status: serde_json::Value) -> Freight {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": "f", "namespace": "p"},
            "origin": {"kind": "Warehouse", "name": "w"},
            "images": [{"repoURL": "r", "tag": "1", "digest": "sha256:1"}],
            "status": status
        }))
        .expect("freight")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn prod_refuses_freight_not_verified_in_uat() {
        let prod = stage("prod", serde_json::json!({"stages": ["uat"]}));
        let f = freight(serde_json::json!({"verifiedIn": {"dev": {}}}));
        let e = check(&prod, &f, Timestamp::now()).expect_err("not available");
        assert!(e.to_string().contains("not verified in uat"), "{e}");
        let f = freight(serde_json::json!({"verifiedIn": {"uat": {}}}));
        assert!(check(&prod, &f, Timestamp::now()).is_ok());
        // The hotfix path: approval bypasses verification.
        let f = freight(serde_json::json!({"approvedFor": {"prod": {}}}));
        assert!(check(&prod, &f, Timestamp::now()).is_ok());
    }

    #[test]
    fn direct_and_origin_rules() {
        let dev = stage("dev", serde_json::json!({"direct": true}));
        assert!(check(&dev, &freight(serde_json::json!({})), Timestamp::now()).is_ok());
        let mut other = freight(serde_json::json!({}));
        other.origin = crate::api::FreightOrigin::warehouse("other");
        let e = check(&dev, &other, Timestamp::now()).expect_err("origin");
        assert!(
            e.to_string()
                .contains("does not request Freight from Warehouse/other"),
            "{e}"
        );
    }

    #[test]
    fn all_vs_one_of_and_soak_time() {
        let one = stage("s", serde_json::json!({"stages": ["a", "b"]}));
        let all = stage(
            "s",
            serde_json::json!({"stages": ["a", "b"], "availabilityStrategy": "All"}),
        );
        let f = freight(serde_json::json!({"verifiedIn": {"a": {}}}));
        assert!(check(&one, &f, Timestamp::now()).is_ok());
        let e = check(&all, &f, Timestamp::now()).expect_err("all");
        assert!(e.to_string().contains("not verified in b"), "{e}");

        let soak = stage(
            "s",
            serde_json::json!({"stages": ["a"], "requiredSoakTime": "1h"}),
        );
        let f = freight(serde_json::json!({
            "verifiedIn": {"a": {}},
            "currentlyIn": {"a": {"since": "2026-01-01T00:00:00Z"}}
        }));
        assert!(check(&soak, &f, at("2026-01-01T00:30:00Z")).is_err());
        assert!(check(&soak, &f, at("2026-01-01T01:00:01Z")).is_ok());
        let f = freight(serde_json::json!({"verifiedIn": {"a": {"longestSoak": "2h0m0s"}}}));
        assert!(check(&soak, &f, at("2026-01-01T00:00:00Z")).is_ok());
    }
}
