//! A Stage's health (Kargo reference §5): from the health checks the last successful
//! Promotion left, merged to the worst state. A running Promotion, or a last Promotion that
//! failed (then the Healthy condition itself is Unknown, as in Kargo), makes health Unknown; nothing promoted yet is NotApplicable; a stored check that
//! cannot be parsed is reported as such.

use super::health_checks::HealthCheckError;
use crate::api::{Health, HealthCheckStep, HealthState, PromotionPhase, StageStatus};
use crate::argocd::{AppHealth, aggregate};

/// The reason of the Healthy condition when a stored health check cannot be parsed.
pub const REASON_INVALID_HEALTH_CHECK: &str = "InvalidHealthCheck";

/// What the controller found running the last Promotion's health checks: one result per
/// Application checked, or the first record that could not be parsed.
pub type Checked = Result<Vec<AppHealth>, HealthCheckError>;

/// The Stage's health, with what the Healthy condition says.
#[derive(Clone, Debug, PartialEq)]
pub struct StageHealth {
    pub health: Health,
    /// The Healthy condition's reason: the state, or why the checks could not run.
    pub reason: &'static str,
    pub message: String,
    /// The Healthy condition is `Unknown` rather than `False`: health cannot be assessed at
    /// all (Kargo's `LastPromotion<Phase>`).
    pub unassessable: bool,
}

impl StageHealth {
    pub fn is_healthy(&self) -> bool {
        self.health.status == Some(HealthState::Healthy)
    }

    fn new(state: HealthState, issues: Vec<String>, message: String) -> Self {
        Self {
            health: Health {
                status: Some(state),
                issues,
                config: None,
                output: None,
            },
            reason: state.as_str(),
            message,
            unassessable: false,
        }
    }

    fn unknown(message: String) -> Self {
        Self::new(HealthState::Unknown, vec![message.clone()], message)
    }
}

/// Kargo's Healthy message when the last Promotion did not succeed.
pub const CANNOT_ASSESS: &str = "Cannot assess health because last Promotion did not succeed";

/// Kargo's `LastPromotion<Phase>` reason (Healthy and Ready) for a last Promotion that did not
/// succeed.
pub fn last_promotion_reason(phase: Option<PromotionPhase>) -> &'static str {
    match phase {
        Some(PromotionPhase::Failed) => "LastPromotionFailed",
        Some(PromotionPhase::Errored) => "LastPromotionErrored",
        Some(PromotionPhase::Aborted) => "LastPromotionAborted",
        Some(PromotionPhase::Succeeded) => "LastPromotionSucceeded",
        Some(PromotionPhase::Running) => "LastPromotionRunning",
        Some(PromotionPhase::Pending) => "LastPromotionPending",
        None => "LastPromotion",
    }
}

/// The health checks to run, given the status as [`super::promotions::track`] left it:
/// those of the last Promotion when it succeeded and nothing is promoting, else `None`.
pub fn checks_to_run(status: &StageStatus, promoting: bool) -> Option<&[HealthCheckStep]> {
    if promoting {
        return None;
    }
    let last = status.last_promotion.as_ref()?.status.as_ref()?;
    (last.phase == Some(PromotionPhase::Succeeded)).then_some(last.health_checks.as_slice())
}

/// Evaluates health. `checked` is what running [`checks_to_run`]'s checks gave (`None` when
/// they were not run).
pub fn evaluate(status: &StageStatus, promoting: bool, checked: Option<&Checked>) -> StageHealth {
    if promoting {
        return StageHealth::unknown("a Promotion is in progress".into());
    }
    let Some(last) = status
        .last_promotion
        .as_ref()
        .and_then(|l| l.status.as_ref())
    else {
        return StageHealth {
            health: Health {
                status: Some(HealthState::NotApplicable),
                ..Default::default()
            },
            reason: HealthState::NotApplicable.as_str(),
            message: "nothing promoted yet".into(),
            unassessable: false,
        };
    };
    if last.phase != Some(PromotionPhase::Succeeded) {
        // As Kargo: Healthy Unknown, reason `LastPromotion<Phase>` (Ready carries the
        // Promotion's own message).
        return StageHealth {
            reason: last_promotion_reason(last.phase),
            unassessable: true,
            ..StageHealth::unknown(CANNOT_ASSESS.into())
        };
    }
    let results = match checked {
        None => return StageHealth::unknown("the health checks have not run yet".into()),
        Some(Err(e)) => {
            let message = format!(
                "cannot check health: {e}; the Promotion recorded a health check this controller cannot run, promote again"
            );
            return StageHealth {
                reason: REASON_INVALID_HEALTH_CHECK,
                ..StageHealth::unknown(message)
            };
        }
        Some(Ok(results)) => results,
    };
    if results.is_empty() {
        return StageHealth::new(
            HealthState::Healthy,
            Vec::new(),
            "no health checks; the last Promotion succeeded".into(),
        );
    }
    let issues: Vec<String> = results
        .iter()
        .filter(|h| h.state != HealthState::Healthy)
        .map(|h| h.message.clone())
        .collect();
    let worst = aggregate(results.clone());
    let message = if issues.is_empty() {
        worst.message.clone()
    } else {
        issues.join("; ")
    };
    StageHealth::new(worst.state, issues, message)
}
