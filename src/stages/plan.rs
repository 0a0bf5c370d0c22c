//! The Stage reconciler's decisions (Kargo reference §2.4, §4, §5), as a pure function of
//! what the controller observed: the Stage's new status, and the effects to apply before it
//! is written (Freight `currentlyIn` / `verifiedIn`, an AnalysisRun, an auto-promotion,
//! Events), in the order they must happen.
//!
//! The controller reads what [`plan`] needs first; the few reads that depend on the Stage's
//! own bookkeeping (which health checks to run, which AnalysisRun to read, whether
//! AnalysisTemplates are needed) are decided by [`needs`], from the same pure steps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::analysis_run::RunState;
use super::candidates::{self, CONTROLLER_ACTOR, Decision};
use super::health::{self, Checked, StageHealth};
use super::promotions::{self, Tracked};
use super::verification::{self, Verdict};
use super::{graph, policy};
use crate::api::{
    ANNOTATION_CREATE_ACTOR, ANNOTATION_REFRESH, ANNOTATION_STAGE, AnalysisRunReference,
    CONDITION_HEALTHY, CONDITION_READY, CONDITION_VERIFIED, Freight, HealthCheckStep, LABEL_STAGE,
    ProjectConfig, Promotion, PromotionSpec, Stage, StageStatus, shorten_label_value,
};
use crate::controller::conditions::{self, Desired};

/// Requeue while something is in motion (promoting, unhealthy, verifying).
pub const REQUEUE_BUSY: Duration = Duration::from_secs(5);
/// Requeue of a settled Stage: a safety net behind the watches.
pub const REQUEUE_IDLE: Duration = Duration::from_secs(300);

/// Everything the plan decides from.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The Stage as just read.
    pub stage: Stage,
    /// The project's Warehouse names, Stages, Freight and Promotions.
    pub warehouses: BTreeSet<String>,
    pub stages: Vec<Arc<Stage>>,
    pub freights: Vec<Arc<Freight>>,
    pub promotions: Vec<Arc<Promotion>>,
    pub config: Option<ProjectConfig>,
    /// The result of the health checks [`Needs::health_checks`] named; `None` when not run.
    pub health: Option<Checked>,
    /// The state of the AnalysisRun [`Needs::analysis_run`] named.
    pub analysis_run: Option<Result<RunState, String>>,
    /// The Stage's AnalysisTemplates, when [`Needs::analysis_templates`].
    pub analysis_templates: Option<Result<Vec<Value>, String>>,
    /// Why creating the AnalysisRun this plan asked for failed (a second plan records it).
    pub analysis_create_error: Option<String>,
    /// Fresh ULIDs (lowercase) for the objects a plan may create.
    pub ids: Ids,
}

/// Fresh identifiers, so that planning stays deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub verification: String,
    pub analysis_run: String,
    pub promotion: String,
}

impl Ids {
    pub fn generate() -> Self {
        let new = || ulid::Ulid::generate().to_string().to_lowercase();
        Self {
            verification: new(),
            analysis_run: new(),
            promotion: new(),
        }
    }
}

/// An Event about the Stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
    /// Kargo's `event.kargo.akuity.io/*` annotations ([`crate::event_annotations`]).
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    pub fn normal(reason: &'static str, action: &'static str, note: String) -> Self {
        Self {
            warning: false,
            reason,
            action,
            note,
            annotations: BTreeMap::new(),
        }
    }

    pub fn with_annotations(mut self, annotations: BTreeMap<String, String>) -> Self {
        self.annotations = annotations;
        self
    }

    pub fn warning(reason: &'static str, action: &'static str, note: String) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, action, note)
        }
    }
}

/// A change outside the Stage's status, applied in order before the status is written.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The Freight left the Stage: drop `currentlyIn.<stage>`, and record the soak that ended
    /// as `verifiedIn.<stage>.longestSoak` when given.
    LeaveFreight {
        freight: String,
        longest_soak: Option<String>,
    },
    /// The Freight entered the Stage: `currentlyIn.<stage>.since`.
    EnterFreight {
        freight: String,
        since: Time,
    },
    /// The Freight was verified in the Stage: `verifiedIn.<stage>.verifiedAt`.
    MarkVerified {
        freight: String,
        at: Time,
    },
    /// Create this AnalysisRun; when that fails, plan again with the error observed.
    CreateAnalysisRun {
        name: String,
        run: Value,
    },
    /// Terminate this AnalysisRun (`spec.terminate: true`): its verification was aborted.
    TerminateAnalysisRun {
        namespace: String,
        name: String,
    },
    /// Create this auto-promotion.
    CreatePromotion(Box<Promotion>),
    Event(Event),
}

/// What the reconciler does.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: StageStatus,
    /// The status differs from the one read, so it must be written.
    pub write_status: bool,
    pub effects: Vec<Effect>,
    pub requeue: Duration,
}

/// The reads that depend on the Stage's own bookkeeping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs {
    /// Run these stored health checks (those of the last, successful, Promotion).
    pub health_checks: Option<Vec<HealthCheckStep>>,
    /// Read this AnalysisRun (the running verification's).
    pub analysis_run: Option<AnalysisRunReference>,
    /// Read the Stage's AnalysisTemplates (a verification with them starts).
    pub analysis_templates: bool,
}

/// The status after the Promotions are tracked, as [`plan`] starts from it.
fn tracked<'a>(o: &'a Observed, status: &mut StageStatus, now: &Time) -> Tracked<'a> {
    promotions::track(&o.stage, status, &o.promotions, now)
}

/// What to read beyond the project's objects. Health checks come first: whether templates
/// are needed depends on their result, so call this again once `o.health` is set.
pub fn needs(o: &Observed, now: Timestamp) -> Needs {
    let t = Time(now);
    let mut status = o.stage.status.clone().unwrap_or_default();
    let progress = tracked(o, &mut status, &t);
    let promoting = progress.active.is_some();
    let reverify = verification::reverify_requested(&o.stage, &status);
    let healthy = health::evaluate(&status, promoting, o.health.as_ref()).is_healthy();
    Needs {
        health_checks: health::checks_to_run(&status, promoting).map(<[_]>::to_vec),
        analysis_run: verification::running_run(&status, reverify).cloned(),
        analysis_templates: verification::starts_analysis(
            &o.stage,
            &status,
            healthy && !promoting,
            reverify,
        ),
    }
}

/// Decides the Stage's status and the effects that go with it.
pub fn plan(o: &Observed, now: Timestamp) -> Plan {
    let t = Time(now);
    let stage = &o.stage;
    let name = stage.name_any();
    let generation = stage.metadata.generation;
    let mut status = stage.status.clone().unwrap_or_default();
    let mut effects = Vec::new();
    let mut busy = false;

    // The Stage's place in the graph. A missing Warehouse or upstream Stage may be created at
    // any time, and that change triggers only the new object: look again soon.
    let problems = graph::check(stage, &o.warehouses, &o.stages);
    if !problems.is_empty() {
        busy = true;
    }

    // Promotions: the one running (or next), and what the newest finished one deployed.
    let progress = tracked(o, &mut status, &t);
    let active = progress.active;
    if active.is_some() {
        busy = true;
    }
    if let Some(moved) = &progress.moved {
        for gone in moved.previous.difference(&moved.current) {
            let freight = o
                .freights
                .iter()
                .find(|f| f.metadata.name.as_deref() == Some(gone.as_str()));
            effects.push(Effect::LeaveFreight {
                freight: gone.clone(),
                longest_soak: promotions::longest_soak(freight.map(AsRef::as_ref), &name, now),
            });
        }
        for new in moved.current.difference(&moved.previous) {
            effects.push(Effect::EnterFreight {
                freight: new.clone(),
                since: t.clone(),
            });
        }
    }

    // Health from the last successful Promotion's checks.
    let health = health::evaluate(&status, active.is_some(), o.health.as_ref());
    let healthy = health.is_healthy();
    // Polled only while health checks can change it (Argo CD may not be watched). A Stage
    // with nothing promoted, or whose last Promotion did not succeed, changes only through
    // Promotions and Freight, which are watched: polling it would cost a pass every few
    // seconds per such Stage for nothing.
    if !healthy && health::checks_to_run(&status, active.is_some()).is_some() {
        busy = true;
    }
    let desired = Desired {
        type_: CONDITION_HEALTHY,
        status: healthy,
        reason: health.reason,
        message: health.message.clone(),
    };
    if health.unassessable {
        conditions::set_unknown(&mut status.conditions, desired, generation, &t);
    } else {
        conditions::set(&mut status.conditions, desired, generation, &t);
    }
    status.health = Some(health.health.clone());

    // Verification of the current Freight once the Stage is healthy and idle.
    let reverify = verification::reverify_request(stage, &status);
    let abort = verification::abort_request(stage, &status);
    let run_name = format!("{name}.{}", o.ids.analysis_run).to_lowercase();
    let verified = verification::verify(
        stage,
        &mut status,
        &verification::Inputs {
            can_run: healthy && active.is_none(),
            reverify: reverify.as_ref(),
            abort: abort.as_ref(),
            run_state: o.analysis_run.as_ref(),
            templates: o.analysis_templates.as_ref(),
            create_error: o.analysis_create_error.as_deref(),
            verification_id: &o.ids.verification,
            run_name: &run_name,
            now: &t,
            freights: &o.freights,
        },
        &mut effects,
    );
    // The refresh token this reconcile handled, as Kargo echoes it.
    if let Some(token) = stage.annotations().get(ANNOTATION_REFRESH) {
        status.last_handled_refresh = Some(token.clone());
    }
    match &verified {
        Some(v) => {
            let d = Desired {
                type_: CONDITION_VERIFIED,
                status: v.ok,
                reason: v.reason(),
                message: v.message.clone(),
            };
            // Kargo: an inconclusive verification leaves Verified Unknown, not False.
            if v.inconclusive() {
                conditions::set_unknown(&mut status.conditions, d, generation, &t);
            } else {
                conditions::set(&mut status.conditions, d, generation, &t);
            }
        }
        None => {
            if !status.freight_history.is_empty() {
                busy = true;
                let message = verification::running_message(&status).unwrap_or_else(|| {
                    format!(
                        "Verification waits for the Stage to be healthy: {}",
                        health.message
                    )
                });
                conditions::set(
                    &mut status.conditions,
                    Desired {
                        type_: CONDITION_VERIFIED,
                        status: false,
                        reason: "Pending",
                        message,
                    },
                    generation,
                    &t,
                );
            }
        }
    }

    // Auto-promotion.
    let auto = policy::find(o.config.as_ref(), &name, stage.labels())
        .and_then(|p| p.auto_promotion_enabled)
        .unwrap_or(false);
    status.auto_promotion_enabled = Some(auto);
    let holds = super::holds::compute(stage, auto, &o.freights, &o.promotions, now);
    status.auto_promotion_holds = holds.durable;
    let mut auto_note = None;
    // A soak time ends with no watch event: look again soon.
    if auto
        && stage
            .spec
            .requested_freight
            .iter()
            .any(|r| r.sources.required_soak_time.is_some())
    {
        busy = true;
    }
    if auto && problems.is_empty() && active.is_none() {
        // Decide on the status as just updated: a Promotion recorded above is current now,
        // and must not be promoted again.
        let mut updated = stage.clone();
        updated.status = Some(status.clone());
        for req in &stage.spec.requested_freight {
            let origin = req.origin.to_string();
            if let Some(h) = holds.effective.get(&origin) {
                auto_note = Some(super::holds::message(&origin, h));
                continue;
            }
            match candidates::decide(&updated, req, &o.freights, &o.promotions, now) {
                Decision::Promote(freight) => {
                    let p = auto_promotion(stage, &freight, &o.ids.promotion);
                    let p_name = p.name_any();
                    let mut created = p.clone();
                    created.metadata.creation_timestamp = Some(t.clone());
                    let freight_obj = o
                        .freights
                        .iter()
                        .find(|f| f.metadata.name.as_deref() == Some(freight.as_str()));
                    let annotations = crate::event_annotations::promotion(
                        &created,
                        freight_obj.map(AsRef::as_ref),
                        CONTROLLER_ACTOR,
                    );
                    effects.push(Effect::CreatePromotion(Box::new(p)));
                    effects.push(Effect::Event(
                        Event::normal(
                            "PromotionCreated",
                            "AutoPromote",
                            format!("Auto-promoting Freight {freight} to Stage {name} ({p_name})"),
                        )
                        .with_annotations(annotations),
                    ));
                    busy = true;
                    break;
                }
                Decision::Wait(_) => {}
            }
        }
    }

    status.effective_auto_promotion_holds = holds.effective;

    // Ready: the graph is sound, the Stage is healthy and its Freight verified.
    let last_failed = status
        .last_promotion
        .as_ref()
        .and_then(|l| l.status.as_ref())
        .filter(|s| {
            s.phase
                .is_some_and(|ph| ph.is_terminal() && ph != crate::api::PromotionPhase::Succeeded)
        })
        .map(|s| {
            (
                health::last_promotion_reason(s.phase),
                s.message.clone().unwrap_or_default(),
            )
        });
    let (ready, reason, message) = readiness(Readiness {
        problems: &problems,
        promoting: active.map(|p| p.name_any()),
        last_failed,
        has_freight: !status.freight_history.is_empty(),
        health: &health,
        verified: verified.as_ref(),
        auto_note,
    });
    let was = conditions::get(&status.conditions, CONDITION_READY).map(|c| c.message.clone());
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_READY,
            status: ready,
            reason,
            message: message.clone(),
        },
        generation,
        &t,
    );
    if !problems.is_empty() && was.as_deref() != Some(message.as_str()) {
        effects.push(Effect::Event(Event::warning(reason, "Validate", message)));
    }
    status.observed_generation = generation;
    Plan {
        write_status: stage.status.as_ref() != Some(&status),
        status,
        effects,
        requeue: if busy { REQUEUE_BUSY } else { REQUEUE_IDLE },
    }
}

/// Ready's reason when creating an auto-promotion failed.
pub const REASON_AUTO_PROMOTION_FAILED: &str = "AutoPromotionFailed";
/// Ready's reason when recording Freight `currentlyIn` / `verifiedIn` failed.
pub const REASON_FREIGHT_UPDATE_FAILED: &str = "FreightUpdateFailed";
/// Ready's reason when creating the verification's AnalysisRun failed.
pub const REASON_VERIFICATION_START_FAILED: &str = "VerificationStartFailed";
/// Ready's reason when terminating an aborted verification's AnalysisRun failed.
pub const REASON_VERIFICATION_ABORT_FAILED: &str = "VerificationAbortFailed";
/// Ready's reason when reading what the plan needs (the project's objects) failed.
pub const REASON_READ_FAILED: &str = "ReadFailed";

/// Something the reconcile decided but could not do, as the controller reports it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Ready's reason, also the Event's and the error metric's.
    pub reason: &'static str,
    /// What was being done and what the API server answered.
    pub message: String,
    /// The planned status must not be written: it records the failed effect as done, so the
    /// next plan would not ask for it again. The status read is kept instead.
    pub replan: bool,
}

impl Failure {
    /// The failure of `effect`, with `error` (the API server's message).
    pub fn of_effect(effect: &Effect, error: &str) -> Self {
        let (reason, what, replan) = match effect {
            Effect::CreatePromotion(p) => (
                REASON_AUTO_PROMOTION_FAILED,
                format!(
                    "creating a Promotion for Freight {}",
                    p.spec.freight.as_deref().unwrap_or_default()
                ),
                false,
            ),
            Effect::EnterFreight { freight, .. } => (
                REASON_FREIGHT_UPDATE_FAILED,
                format!("recording Freight {freight} as currently in this Stage"),
                true,
            ),
            Effect::LeaveFreight { freight, .. } => (
                REASON_FREIGHT_UPDATE_FAILED,
                format!("recording that Freight {freight} left this Stage"),
                true,
            ),
            Effect::MarkVerified { freight, .. } => (
                REASON_FREIGHT_UPDATE_FAILED,
                format!("recording Freight {freight} as verified in this Stage"),
                true,
            ),
            Effect::CreateAnalysisRun { name, .. } => (
                REASON_VERIFICATION_START_FAILED,
                format!("creating AnalysisRun {name}"),
                true,
            ),
            // Not recorded as aborted until the run is terminated: the next reconcile retries.
            Effect::TerminateAnalysisRun { name, .. } => (
                REASON_VERIFICATION_ABORT_FAILED,
                format!("terminating AnalysisRun {name}"),
                true,
            ),
            Effect::Event(e) => (
                "EventFailed",
                format!("publishing Event {}", e.reason),
                false,
            ),
        };
        Self {
            reason,
            message: format!("{what} failed: {error}"),
            replan,
        }
    }

    /// A read the plan needs failed; nothing was planned.
    pub fn read(error: &str) -> Self {
        Self {
            reason: REASON_READ_FAILED,
            message: format!("reading the Stage's project failed: {error}"),
            replan: true,
        }
    }
}

/// The plan to apply instead of `planned` once `failure` happened: `planned`'s status (or the
/// status read, when the failure says so, or when nothing was planned) with Ready=False
/// giving the failure's reason and message, `observedGeneration` still following the spec, and
/// a Warning Event with the same reason. The next successful plan sets Ready again, which
/// clears the failure.
pub fn failed(stage: &Stage, planned: Option<&Plan>, failure: &Failure, now: Timestamp) -> Plan {
    let generation = stage.metadata.generation;
    let mut status = match planned {
        Some(p) if !failure.replan => p.status.clone(),
        _ => stage.status.clone().unwrap_or_default(),
    };
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_READY,
            status: false,
            reason: failure.reason,
            message: failure.message.clone(),
        },
        generation,
        &Time(now),
    );
    status.observed_generation = generation;
    Plan {
        write_status: stage.status.as_ref() != Some(&status),
        status,
        effects: vec![Effect::Event(Event::warning(
            failure.reason,
            "Reconcile",
            failure.message.clone(),
        ))],
        requeue: REQUEUE_BUSY,
    }
}

/// What the Ready condition is decided from.
struct Readiness<'a> {
    problems: &'a [graph::Problem],
    /// The name of the Promotion in progress.
    promoting: Option<String>,
    /// The last Promotion did not succeed: its `LastPromotion<Phase>` reason and its message.
    last_failed: Option<(&'static str, String)>,
    has_freight: bool,
    health: &'a StageHealth,
    verified: Option<&'a Verdict>,
    /// Why auto-promotion is held, if it is.
    auto_note: Option<String>,
}

/// Ready's status, reason and message: the first thing that keeps the Stage from being ready.
fn readiness(r: Readiness<'_>) -> (bool, &'static str, String) {
    if let Some(p) = r.problems.first() {
        let all: Vec<String> = r.problems.iter().map(|p| p.message.clone()).collect();
        (false, p.reason, all.join("; "))
    } else if let Some(p) = r.promoting {
        (false, "Promoting", format!("Promotion {p} is in progress"))
    } else if let Some((reason, message)) = r.last_failed {
        // As Kargo: the failed Promotion's own message says what to fix.
        (false, reason, message)
    } else if !r.has_freight {
        (
            false,
            "NoFreight",
            "No Freight has been promoted to this Stage yet".to_string(),
        )
    } else if !r.health.is_healthy() {
        (false, "Unhealthy", r.health.message.clone())
    } else if let Some(v) = r.verified.filter(|v| !v.ok) {
        (false, v.reason(), v.message.clone())
    } else if r.verified.is_none() {
        (
            false,
            "Verifying",
            "Verifying the current Freight".to_string(),
        )
    } else if let Some(m) = r.auto_note {
        (true, "AutoPromotionHeld", m)
    } else {
        (true, "Ready", "Stage is ready".to_string())
    }
}

/// An auto-promotion named like Kargo's (`<stage>.<ulid>.<freight[0:7]>`), owned by the Stage
/// and recorded as the controller's.
fn auto_promotion(stage: &Stage, freight: &str, ulid: &str) -> Promotion {
    let short: String = freight.chars().take(7).collect();
    let name = format!("{}.{ulid}.{short}", stage.name_any()).to_lowercase();
    let mut p = Promotion {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: Some(stage.namespace().unwrap_or_default()),
            labels: Some(BTreeMap::from([(
                LABEL_STAGE.to_string(),
                shorten_label_value(&stage.name_any()),
            )])),
            annotations: Some(BTreeMap::from([
                (
                    ANNOTATION_CREATE_ACTOR.to_string(),
                    CONTROLLER_ACTOR.to_string(),
                ),
                (ANNOTATION_STAGE.to_string(), stage.name_any()),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: Stage::api_version(&()).into_owned(),
                kind: Stage::kind(&()).into_owned(),
                name: stage.name_any(),
                uid: stage.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: PromotionSpec {
            stage: stage.name_any(),
            freight: Some(freight.to_string()),
            ..Default::default()
        },
        status: None,
    };
    // The Stage's shard runs it (Kargo's webhook sets this label).
    crate::controller::shard::label_for_stage(&mut p, stage);
    p
}

#[cfg(test)]
mod tests;
