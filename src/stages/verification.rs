//! Verification of a Stage's current Freight (Kargo reference §2.4): once the Stage is
//! healthy and idle, without `verification.analysisTemplates` it is verified at once; with
//! them an Argo Rollouts AnalysisRun decides. The outcome is recorded in the Stage's
//! `verificationHistory`, on the Freight (`verifiedIn`) and as an Event.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::Value;

use super::analysis_run::{self, RunState};
use super::candidates::CONTROLLER_ACTOR;
use super::plan::{Effect, Event};
use super::promotions::names;
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_REVERIFY, AnalysisRunReference, Stage, StageStatus,
    VerificationInfo,
};
use crate::event_annotations;

const RUNNING: &str = "Running";
const SUCCESSFUL: &str = "Successful";
const FAILED: &str = "Failed";
const ERROR: &str = "Error";
const INCONCLUSIVE: &str = "Inconclusive";
/// How many verifications a FreightCollection keeps.
const HISTORY: usize = 10;

/// How a verification ended: Kargo's verification phase (Successful, Failed, Error or
/// Inconclusive: an AnalysisRun's phase is taken as it is) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub message: String,
    phase: &'static str,
}

impl Verdict {
    pub(crate) fn new(ok: bool, message: impl Into<String>) -> Self {
        Self {
            ok,
            message: message.into(),
            phase: if ok { SUCCESSFUL } else { FAILED },
        }
    }

    fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            phase: ERROR,
        }
    }

    /// The verdict of an AnalysisRun that ended in `state`; `None` while it runs.
    fn of_run(run: &str, state: &RunState) -> Option<Self> {
        let (phase, message) = match state {
            RunState::Running => return None,
            RunState::Successful => (SUCCESSFUL, format!("AnalysisRun {run} succeeded")),
            RunState::Failed(m) => (FAILED, m.clone()),
            RunState::Error(m) => (ERROR, m.clone()),
            RunState::Inconclusive(m) => (INCONCLUSIVE, m.clone()),
        };
        Some(Self {
            ok: phase == SUCCESSFUL,
            message,
            phase,
        })
    }

    /// The verdict of a verification that has ended, as recorded in the Stage's status.
    fn recorded(phase: Option<&str>, message: String) -> Self {
        let phase = match phase {
            Some(SUCCESSFUL) => SUCCESSFUL,
            Some(ERROR) => ERROR,
            Some(INCONCLUSIVE) => INCONCLUSIVE,
            _ => FAILED,
        };
        Self {
            ok: phase == SUCCESSFUL,
            message,
            phase,
        }
    }

    /// Kargo's verification phase.
    pub fn phase(&self) -> &'static str {
        self.phase
    }

    /// Whether the verification ended Inconclusive: Kargo's Verified condition is then
    /// Unknown rather than False (the Freight is not verified either way).
    pub fn inconclusive(&self) -> bool {
        self.phase == INCONCLUSIVE
    }

    /// The reason of the Verified condition, as Kargo's (`Verification<Phase>` unless verified).
    pub fn reason(&self) -> &'static str {
        match self.phase {
            SUCCESSFUL => "Verified",
            ERROR => "VerificationError",
            INCONCLUSIVE => "VerificationInconclusive",
            _ => "VerificationFailed",
        }
    }

    /// The reason of the Events recording the outcome, one per Freight, as Kargo's.
    fn event_reason(&self) -> &'static str {
        match self.phase {
            SUCCESSFUL => "FreightVerificationSucceeded",
            ERROR => "FreightVerificationErrored",
            INCONCLUSIVE => "FreightVerificationInconclusive",
            _ => "FreightVerificationFailed",
        }
    }
}

/// What verification needs beyond the Stage and its status.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The Stage is healthy and no Promotion is running.
    pub can_run: bool,
    /// The reverify annotation asks for a new verification ([`reverify_request`]).
    pub reverify: Option<&'a Request>,
    /// The abort annotation asks to end the running verification ([`abort_request`]).
    pub abort: Option<&'a Request>,
    /// The state of the running AnalysisRun ([`running_run`]), as read.
    pub run_state: Option<&'a Result<RunState, String>>,
    /// The Stage's AnalysisTemplates, read when a verification with them starts ([`starts`]).
    pub templates: Option<&'a Result<Vec<Value>, String>>,
    /// Why creating the AnalysisRun failed, once it has.
    pub create_error: Option<&'a str>,
    /// The id of a verification started now.
    pub verification_id: &'a str,
    /// The name of an AnalysisRun created now.
    pub run_name: &'a str,
    pub now: &'a Time,
    /// The project's Freight, for the Events' annotations.
    pub freights: &'a [std::sync::Arc<crate::api::Freight>],
}

/// A reverify or abort request, as Kargo's `VerificationRequest`: the annotation's value is the
/// ID of the verification it is about, or `{"id": …, "actor": …, "controlPlane": …}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub control_plane: bool,
}

/// The request in `stage`'s annotation `key`; `None` when absent or naming no verification.
pub fn request(stage: &Stage, key: &str) -> Option<Request> {
    let raw = stage.annotations().get(key)?.trim();
    let request = if raw.starts_with('{') {
        serde_json::from_str::<Request>(raw).ok()?
    } else {
        Request {
            id: raw.to_string(),
            ..Default::default()
        }
    };
    (!request.id.is_empty()).then_some(request)
}

/// The current Freight's latest verification.
fn last(status: &StageStatus) -> Option<&VerificationInfo> {
    status.freight_history.first()?.verification_history.first()
}

/// The request `key` on `stage` when it names the current Freight's latest verification.
fn request_for_last(stage: &Stage, status: &StageStatus, key: &str) -> Option<Request> {
    let last = last(status)?;
    request(stage, key).filter(|r| last.id.as_deref() == Some(r.id.as_str()))
}

/// The reverify request, when it names the current Freight's latest verification and that has
/// ended (Kargo: a new verification gets a new ID, so a request is handled once).
pub fn reverify_request(stage: &Stage, status: &StageStatus) -> Option<Request> {
    request_for_last(stage, status, ANNOTATION_REVERIFY)
        .filter(|_| last(status).is_some_and(|l| l.phase.as_deref() != Some(RUNNING)))
}

/// Whether a reverify request is to be handled now.
pub fn reverify_requested(stage: &Stage, status: &StageStatus) -> bool {
    reverify_request(stage, status).is_some()
}

/// The abort request, when it names the current Freight's verification while it runs.
pub fn abort_request(stage: &Stage, status: &StageStatus) -> Option<Request> {
    request_for_last(stage, status, ANNOTATION_ABORT)
        .filter(|_| last(status).is_some_and(|l| l.phase.as_deref() == Some(RUNNING)))
}

/// Kargo's message on a verification aborted by request.
pub const ABORTED_MESSAGE: &str = "Verification aborted by user";

fn has_analysis(stage: &Stage) -> bool {
    stage
        .spec
        .verification
        .as_ref()
        .is_some_and(|v| !v.analysis_templates.is_empty())
}

/// The AnalysisRun of the current Freight's verification, while it runs.
pub fn running_run(status: &StageStatus, reverify: bool) -> Option<&AnalysisRunReference> {
    if reverify {
        return None;
    }
    let last = status
        .freight_history
        .first()?
        .verification_history
        .first()?;
    if last.phase.as_deref() != Some(RUNNING) {
        return None;
    }
    last.analysis_run.as_ref()
}

/// Whether a verification with AnalysisTemplates starts now, so their templates are needed.
pub fn starts_analysis(stage: &Stage, status: &StageStatus, can_run: bool, reverify: bool) -> bool {
    can_run
        && has_analysis(stage)
        && status
            .freight_history
            .first()
            .is_some_and(|c| reverify || c.verification_history.is_empty())
}

/// The message of a verification still running (an AnalysisRun), if one is.
pub fn running_message(status: &StageStatus) -> Option<String> {
    let last = status
        .freight_history
        .first()?
        .verification_history
        .first()?;
    (last.phase.as_deref() == Some(RUNNING)).then(|| last.message.clone().unwrap_or_default())
}

/// Verifies the current Freight, updating its `verificationHistory` and adding the effects
/// of a verification that ends or starts now: `Some` once verified or failed, `None` while it
/// cannot run yet or is still running.
pub fn verify(
    stage: &Stage,
    status: &mut StageStatus,
    i: &Inputs<'_>,
    effects: &mut Vec<Effect>,
) -> Option<Verdict> {
    let current = status.freight_history.first_mut()?;
    let freight = names(current);
    if let Some(last) = current.verification_history.first_mut()
        && i.reverify.is_none()
    {
        if last.phase.as_deref() == Some(RUNNING)
            && let Some(run) = last.analysis_run.as_mut()
        {
            // Aborted by request: the run is terminated and the verification failed, with
            // Kargo's message (the run itself would end "Successful" once terminated).
            if let Some(req) = i.abort {
                effects.push(Effect::TerminateAnalysisRun {
                    namespace: run.namespace.clone(),
                    name: run.name.clone(),
                });
                let verdict = Verdict::new(false, ABORTED_MESSAGE);
                run.phase = verdict.phase().into();
                last.phase = Some(verdict.phase().into());
                last.message = Some(verdict.message.clone());
                last.finish_time = Some(i.now.clone());
                if let Some(actor) = &req.actor {
                    last.actor = Some(actor.clone());
                }
                conclude(stage, &freight, &verdict, last, i, effects);
                return Some(verdict);
            }
            // Not read (or unreadable): still running as far as the Stage knows.
            let verdict = match i.run_state {
                Some(Ok(state)) => Verdict::of_run(&run.name, state)?,
                Some(Err(_)) | None => return None,
            };
            run.phase = verdict.phase().into();
            last.phase = Some(verdict.phase().into());
            last.message = Some(verdict.message.clone());
            last.finish_time = Some(i.now.clone());
            conclude(stage, &freight, &verdict, last, i, effects);
            return Some(verdict);
        }
        return Some(Verdict::recorded(
            last.phase.as_deref(),
            last.message.clone().unwrap_or_default(),
        ));
    }
    if !i.can_run {
        return None;
    }
    let mut info = VerificationInfo {
        id: Some(i.verification_id.to_string()),
        actor: Some(
            i.reverify
                .and_then(|r| r.actor.clone())
                .unwrap_or_else(|| CONTROLLER_ACTOR.into()),
        ),
        start_time: Some(i.now.clone()),
        ..Default::default()
    };
    let verdict = if has_analysis(stage) {
        match (i.templates, i.create_error) {
            // The templates were not read: decide once they are.
            (None, _) => return None,
            // A verification that cannot start is an Error in Kargo, as a run that errs.
            (Some(Err(m)), _) => Some(Verdict::error(m.clone())),
            (Some(Ok(_)), Some(m)) => Some(Verdict::error(m)),
            (Some(Ok(templates)), None) => {
                match analysis_run::build_run(stage, templates, current, i.run_name) {
                    Err(m) => Some(Verdict::error(m)),
                    Ok(run) => {
                        effects.push(Effect::CreateAnalysisRun {
                            name: i.run_name.to_string(),
                            run,
                        });
                        info.phase = Some(RUNNING.into());
                        info.message = Some(format!("AnalysisRun {} is running", i.run_name));
                        info.analysis_run = Some(AnalysisRunReference {
                            name: i.run_name.to_string(),
                            namespace: stage.namespace().unwrap_or_default(),
                            phase: RUNNING.into(),
                        });
                        None
                    }
                }
            }
        }
    } else {
        Some(Verdict::new(
            true,
            "Stage is healthy after the promotion (no verification configured)",
        ))
    };
    if let Some(v) = &verdict {
        info.phase = Some(v.phase().into());
        info.message = Some(v.message.clone());
        info.finish_time = Some(i.now.clone());
    }
    current.verification_history.insert(0, info.clone());
    current.verification_history.truncate(HISTORY);
    if let Some(v) = &verdict {
        conclude(stage, &freight, v, &info, i, effects);
    }
    verdict
}

/// Records the outcome on the Freight (verifiedIn) and as one Event per Freight, with Kargo's
/// reasons (`FreightVerificationSucceeded`/`Failed`) and event annotations.
fn conclude(
    stage: &Stage,
    freight: &BTreeSet<String>,
    verdict: &Verdict,
    info: &VerificationInfo,
    i: &Inputs<'_>,
    effects: &mut Vec<Effect>,
) {
    let name = stage.name_any();
    let project = stage.namespace().unwrap_or_default();
    for f in freight {
        let annotations = i
            .freights
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(f.as_str()))
            .map(|o| event_annotations::verification(&project, CONTROLLER_ACTOR, &name, o, info))
            .unwrap_or_default();
        let event = if verdict.ok {
            effects.push(Effect::MarkVerified {
                freight: f.clone(),
                at: i.now.clone(),
            });
            Event::normal(
                verdict.event_reason(),
                "Verify",
                format!("Freight {f} verified in Stage {name}"),
            )
        } else {
            Event::warning(verdict.event_reason(), "Verify", verdict.message.clone())
        };
        effects.push(Effect::Event(event.with_annotations(annotations)));
    }
}
