//! Promotion: a request to move a Stage onto a piece of Freight, executed as a list of steps.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    ExpressionVariable, FreightCollection, FreightOrigin, FreightReference, HealthCheckStep,
    K8S_NAME_PATTERN, PromotionStep, add_item_validations, plain_string, preserve_unknown_fields,
};

/// Spec describes the desired transition of a specific Stage into a specific Freight. It is
/// immutable.
// Repeated `type_ = ...` in printcolumn(...) is not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "Promotion",
    namespaced,
    status = "PromotionStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "promo",
    shortname = "promos",
    doc = "Promotion represents a request to transition a particular Stage into a particular Freight.",
    printcolumn(
        name = "Shard",
        type_ = "string",
        json_path = ".metadata.labels.kargo\\.akuity\\.io/shard"
    ),
    printcolumn(name = "Stage", type_ = "string", json_path = ".spec.stage"),
    printcolumn(name = "Freight", type_ = "string", json_path = ".spec.freight"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self == oldSelf", "message": "spec is immutable" },
    {
        "rule": "has(self.freight) != has(self.origin)",
        "message": "exactly one of freight or origin must be set",
    },
]))]
pub struct PromotionSpec {
    /// Stage specifies the name of the Stage to which this Promotion applies. The Stage MUST be
    /// in the same namespace as the Promotion.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub stage: String,
    /// Freight specifies the piece of Freight to be promoted into the Stage. Exactly one of
    /// Freight or Origin must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub freight: Option<String>,
    /// Origin, when set, asks for the current auto-promotion candidate from that origin; it is
    /// resolved into Freight before the Promotion runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// Target optionally names the Target this Promotion promotes to (Kargo Enterprise; accepted,
    /// not used by haul).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub target: Option<String>,
    /// Vars is a list of variables that can be referenced by expressions in promotion steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps specifies the directives to be executed as part of this Promotion, in order. They
    /// are copied from the Stage's promotion template when the Promotion is created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1), transform = promotion_steps)]
    pub steps: Vec<PromotionStep>,
}

fn promotion_steps(schema: &mut Schema) {
    add_item_validations(
        schema,
        &[(
            "has(self.uses) && !has(self.task)",
            "Promotion step must have uses set and must not reference a task",
        )],
    );
}

/// Where a Promotion is in its lifecycle.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum PromotionPhase {
    /// Waiting in the Stage's queue.
    #[default]
    Pending,
    /// Being executed.
    Running,
    /// Executed successfully.
    Succeeded,
    /// Failed (a business failure, e.g. a step's condition was not met).
    Failed,
    /// Failed for technical reasons.
    Errored,
    /// Aborted by a user.
    Aborted,
}

impl PromotionPhase {
    /// Whether the Promotion will not change phase again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PromotionPhase::Succeeded
                | PromotionPhase::Failed
                | PromotionPhase::Errored
                | PromotionPhase::Aborted
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PromotionPhase::Pending => "Pending",
            PromotionPhase::Running => "Running",
            PromotionPhase::Succeeded => "Succeeded",
            PromotionPhase::Failed => "Failed",
            PromotionPhase::Errored => "Errored",
            PromotionPhase::Aborted => "Aborted",
        }
    }
}

impl fmt::Display for PromotionPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one promotion step.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum StepStatus {
    /// Started and not finished (e.g. waiting for something); it will be retried.
    #[default]
    Running,
    Succeeded,
    /// Not run because its `if` expression was false.
    Skipped,
    Failed,
    Errored,
    Aborted,
}

impl StepStatus {
    /// Rank used when merging outcomes, least to most severe: Succeeded, Skipped, Running,
    /// Aborted, Failed, Errored (Kargo's order).
    pub fn severity(self) -> u8 {
        match self {
            StepStatus::Succeeded => 0,
            StepStatus::Skipped => 1,
            StepStatus::Running => 2,
            StepStatus::Aborted => 3,
            StepStatus::Failed => 4,
            StepStatus::Errored => 5,
        }
    }

    pub fn is_terminal(self) -> bool {
        self != StepStatus::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "Running",
            StepStatus::Succeeded => "Succeeded",
            StepStatus::Skipped => "Skipped",
            StepStatus::Failed => "Failed",
            StepStatus::Errored => "Errored",
            StepStatus::Aborted => "Aborted",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current state of the transition represented by a Promotion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// LastHandledRefresh holds the value of the most recent refresh annotation handled by the
    /// controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh: Option<String>,
    /// Phase describes where the Promotion currently is in its lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "plain_string")]
    pub phase: Option<PromotionPhase>,
    /// Message is a display message about the promotion, including any errors preventing it
    /// from being executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Freight is the detail of the piece of freight that was referenced by this promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    /// FreightCollection contains the Freight being promoted plus the Freight from other
    /// origins carried over from the Stage's current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight_collection: Option<FreightCollection>,
    /// HealthChecks contains the health check directives to be executed after the Promotion
    /// has completed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckStep>,
    /// StartedAt is the time when the promotion started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// FinishedAt is the time when the promotion was completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// CurrentStep is the index of the step being executed, so that steps already done are
    /// skipped on later reconciles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<i64>,
    /// StepExecutionMetadata tracks the execution of individual promotion steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_execution_metadata: Vec<StepExecutionMetadata>,
    /// State stores the step outputs (keyed by step alias) between reconciliation attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub state: Option<Value>,
    /// Steps are the steps this Promotion runs, fixed when it starts (haul extension). Kargo's
    /// admission webhook copies them into `spec.steps`; haul needs no webhook, so a Promotion
    /// created with only `stage` and `freight` gets its steps here, and a later edit of the
    /// Stage does not change a running Promotion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<PromotionStep>,
    /// Vars are the promotion-level variables fixed with `steps` (haul extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
}

impl PromotionStatus {
    /// Whether the Promotion has reached a terminal phase.
    pub fn is_terminal(&self) -> bool {
        self.phase.is_some_and(PromotionPhase::is_terminal)
    }
}

/// Execution metadata of one promotion step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepExecutionMetadata {
    /// Alias is the alias of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// StartedAt is the time at which the first attempt to execute the step began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// FinishedAt is the time at which the final attempt to execute the step completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// ErrorCount tracks consecutive failed attempts to execute the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_count: Option<i32>,
    /// Status is the high-level outcome of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "plain_string")]
    pub status: Option<StepStatus>,
    /// Message is a display message about the step, including any errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// ContinueOnError records the step's continueOnError setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_error: Option<bool>,
}
