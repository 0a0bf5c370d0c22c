//! Is the controller running as the identity haul's admission policies expect?
//!
//! The chart's `<release>-haul-create-actor` ValidatingAdmissionPolicy lets only the controller's
//! own identity (the chart's ServiceAccount) create Promotions recording
//! `controller:haul-controller`, i.e. auto-promotions. A controller started under another
//! identity (a kubeconfig of a person, another ServiceAccount) has every auto-promotion refused.
//! The chart names that identity on the policy in the annotation [`EXPECTED_USER_ANNOTATION`];
//! at start and periodically the controller compares it with its own (a SelfSubjectReview) and,
//! when they differ, says so: an error log line, a Warning Event on its Lease, the gauge
//! `haul_identity_mismatch` and a notice on `/healthz` and `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::liveness::Liveness;

/// The annotation on a haul admission policy naming the username the controller must run as.
pub const EXPECTED_USER_ANNOTATION: &str = "haul.kargo.akuity.io/controller-username";

/// How often the check runs after the first time.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("asking the API server who this controller is (SelfSubjectReview): {0}")]
    WhoAmI(#[source] kube::Error),
    #[error(
        "the API server did not say who this controller is (SelfSubjectReview has no username)"
    )]
    Anonymous,
    #[error("listing ValidatingAdmissionPolicies and their bindings: {0}")]
    Policies(#[source] kube::Error),
}

/// A policy that names the identity the controller must have, and how it is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectingPolicy {
    /// The policy's name, e.g. `haul-create-actor`.
    pub policy: String,
    /// The username it expects, e.g. `system:serviceaccount:haul:haul`.
    pub username: String,
    /// Whether a binding of it denies (`Deny` in `validationActions`); otherwise it only warns
    /// or audits.
    pub denies: bool,
}

/// The policies carrying [`EXPECTED_USER_ANNOTATION`] that some binding puts in force (a
/// policy without a binding does nothing).
pub fn expecting(
    policies: &[ValidatingAdmissionPolicy],
    bindings: &[ValidatingAdmissionPolicyBinding],
) -> Vec<ExpectingPolicy> {
    let mut out = Vec::new();
    for p in policies {
        let (Some(name), Some(username)) = (
            p.metadata.name.as_deref(),
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(EXPECTED_USER_ANNOTATION))
                .map(|u| u.trim())
                .filter(|u| !u.is_empty()),
        ) else {
            continue;
        };
        let actions: Vec<&str> = bindings
            .iter()
            .filter_map(|b| b.spec.as_ref())
            .filter(|s| s.policy_name.as_deref() == Some(name))
            .flat_map(|s| s.validation_actions.iter().flatten().map(String::as_str))
            .collect();
        let bound = bindings
            .iter()
            .filter_map(|b| b.spec.as_ref())
            .any(|s| s.policy_name.as_deref() == Some(name));
        if !bound {
            continue;
        }
        out.push(ExpectingPolicy {
            policy: name.to_string(),
            username: username.to_string(),
            denies: actions.contains(&"Deny"),
        });
    }
    out
}

/// One sentence per policy that expects another identity than `me`; empty when all agree.
pub fn mismatches(me: &str, policies: &[ExpectingPolicy]) -> Vec<String> {
    policies
        .iter()
        .filter(|p| p.username != me)
        .map(|p| {
            let consequence = if p.denies {
                "its auto-promotions will be refused".to_string()
            } else {
                "its auto-promotions are reported as violations (the policy's binding only \
                 warns or audits; they will be refused once it denies)"
                    .to_string()
            };
            format!(
                "the installed admission policy {} expects the controller to be {}, but it runs \
                 as {me}: {consequence}. Run the controller as {} (the ServiceAccount of the \
                 release that installed the policy)",
                p.policy, p.username, p.username
            )
        })
        .collect()
}

/// The username this client authenticates as.
pub async fn whoami(client: &kube::Client) -> Result<String, IdentityError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(IdentityError::WhoAmI)?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or(IdentityError::Anonymous)
}

/// The installed policies that expect a controller identity.
pub async fn installed(client: &kube::Client) -> Result<Vec<ExpectingPolicy>, IdentityError> {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let lp = ListParams::default();
    let p = policies.list(&lp).await.map_err(IdentityError::Policies)?;
    let b = bindings.list(&lp).await.map_err(IdentityError::Policies)?;
    Ok(expecting(&p.items, &b.items))
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The username this controller runs as.
    pub me: String,
    /// How many installed (bound) policies name the controller's identity.
    pub policies: usize,
    /// The sentences of [`mismatches`]; empty when every policy names `me`.
    pub mismatches: Vec<String>,
}

/// Compares this controller's identity with what the installed policies expect.
pub async fn check(client: &kube::Client) -> Result<Checked, IdentityError> {
    let me = whoami(client).await?;
    let expected = installed(client).await?;
    Ok(Checked {
        mismatches: mismatches(&me, &expected),
        policies: expected.len(),
        me,
    })
}

/// Where the identity check reports.
pub struct Reporting {
    pub liveness: Arc<Liveness>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The object its Warning Events are about (the controller's Lease).
    pub about: ObjectReference,
}

/// The controller's Lease, as the object the identity check's Events are about.
pub fn lease_reference(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("coordination.k8s.io/v1".into()),
        kind: Some("Lease".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Runs the check now and every `period`, reporting a mismatch when it appears (and again
/// after it changes), clearing it when it is gone. Never returns.
pub async fn watch(client: kube::Client, report: Reporting, period: Duration) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "haul".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let mut last: Option<Checked> = None;
    let mut could_not_check = false;
    loop {
        match check(&client).await {
            Ok(found) => {
                could_not_check = false;
                if last.as_ref() != Some(&found) {
                    if found.mismatches.is_empty() {
                        tracing::info!(
                            user = %found.me,
                            policies = found.policies,
                            "identity check: every installed haul admission policy expects the \
                             controller's identity"
                        );
                    }
                    apply(&recorder, &report, &found.mismatches).await;
                    last = Some(found);
                }
            }
            Err(e) => {
                // Not knowing is not a mismatch; say it once per run of failures.
                if !could_not_check {
                    tracing::warn!(error = %e, "cannot check the identity haul's admission policies expect");
                    could_not_check = true;
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

async fn apply(recorder: &Recorder, report: &Reporting, found: &[String]) {
    if found.is_empty() {
        report.metrics.identity_mismatch.set(0);
        report.liveness.notice("identity", None);
        return;
    }
    report.metrics.identity_mismatch.set(1);
    let text = found.join("; ");
    tracing::error!("controller identity mismatch: {text}");
    report
        .liveness
        .notice("identity", Some(format!("warning: {text}")));
    let ev = Event {
        type_: EventType::Warning,
        reason: "IdentityMismatch".into(),
        note: Some(text.chars().take(1000).collect()),
        action: "CheckIdentity".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &report.about).await {
        tracing::warn!(error = %e, "cannot publish the identity mismatch event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, user: Option<&str>) -> ValidatingAdmissionPolicy {
        let mut p = ValidatingAdmissionPolicy::default();
        p.metadata.name = Some(name.into());
        if let Some(u) = user {
            p.metadata.annotations =
                Some([(EXPECTED_USER_ANNOTATION.to_string(), u.to_string())].into());
        }
        p
    }

    fn binding(policy: &str, actions: &[&str]) -> ValidatingAdmissionPolicyBinding {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": policy},
            "spec": {"policyName": policy, "validationActions": actions},
        }))
        .expect("binding")
    }

    const SA: &str = "system:serviceaccount:haul:haul";

    #[test]
    fn only_bound_annotated_policies_expect_an_identity() {
        let policies = [
            policy("haul-create-actor", Some(SA)),
            policy("haul-promote-stage", None),
            policy("unbound", Some("someone")),
        ];
        let bindings = [
            binding("haul-create-actor", &["Deny"]),
            binding("haul-promote-stage", &["Deny"]),
        ];
        assert_eq!(
            expecting(&policies, &bindings),
            [ExpectingPolicy {
                policy: "haul-create-actor".into(),
                username: SA.into(),
                denies: true
            }]
        );
        let warn_only = [binding("haul-create-actor", &["Warn", "Audit"])];
        assert!(!expecting(&policies, &warn_only)[0].denies);
        assert!(expecting(&policies, &[]).is_empty());
    }

    #[test]
    fn the_same_identity_is_no_mismatch() {
        let p = [ExpectingPolicy {
            policy: "haul-create-actor".into(),
            username: SA.into(),
            denies: true,
        }];
        assert!(mismatches(SA, &p).is_empty());
        assert!(mismatches("anyone", &[]).is_empty());
    }

    #[test]
    fn another_identity_is_said_plainly() {
        let p = [ExpectingPolicy {
            policy: "haul-create-actor".into(),
            username: SA.into(),
            denies: true,
        }];
        let m = mismatches("haul-admin", &p);
        assert_eq!(m.len(), 1);
        assert!(
            m[0].starts_with(
                "the installed admission policy haul-create-actor expects the controller to be \
                 system:serviceaccount:haul:haul, but it runs as haul-admin: its auto-promotions \
                 will be refused"
            ),
            "{}",
            m[0]
        );
        let warn = [ExpectingPolicy {
            denies: false,
            ..p[0].clone()
        }];
        assert!(mismatches("haul-admin", &warn)[0].contains("reported as violations"));
    }
}
