//! Stage: a promotion target. It requests Freight from Warehouses or upstream Stages and says
//! how to promote it (a template of steps) and how to verify it.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    common::{
        Condition, DURATION_PATTERN, ExpressionVariable, FreightCollection, FreightOrigin,
        FreightReference, PromotionStep, add_item_validations, conditions_list, json_value_map,
        plain_string, preserve_unknown_fields,
    },
    promotion::PromotionStatus,
};

/// Spec describes sources of Freight used by the Stage and how to incorporate Freight into the
/// Stage.
// Repeated `type_ = ...` in printcolumn(...) is not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "Stage",
    namespaced,
    status = "StageStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Stage is the Kargo API's main type.",
    printcolumn(name = "Shard", type_ = "string", json_path = ".spec.shard"),
    printcolumn(
        name = "Current Freight",
        type_ = "string",
        json_path = ".status.freightSummary"
    ),
    printcolumn(name = "Health", type_ = "string", json_path = ".status.health.status"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    /// Shard is the name of the shard that this Stage belongs to. It is kept in sync with the
    /// kargo.akuity.io/shard label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Vars is a list of variables that can be referenced anywhere in the StageSpec that
    /// supports expressions (the promotion template, verification arguments).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// RequestedFreight expresses the Stage's need for Freight, each from a particular origin.
    #[schemars(length(min = 1))]
    pub requested_freight: Vec<FreightRequest>,
    /// PromotionTemplate describes how to incorporate Freight into the Stage using a Promotion.
    /// A Stage without one is a control-flow Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_template: Option<PromotionTemplate>,
    /// Verification describes how to verify a Stage's current Freight is fit for promotion
    /// downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Targets makes a Stage govern Targets (Kargo Enterprise; accepted, not used by haul).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<StageTargets>,
}

impl StageSpec {
    /// A Stage without promotion steps only passes Freight along.
    pub fn is_control_flow(&self) -> bool {
        self.promotion_template
            .as_ref()
            .is_none_or(|t| t.spec.steps.is_empty())
    }

    /// What the Stage requests from `origin`, if it requests Freight from there.
    pub fn request_for(&self, origin: &FreightOrigin) -> Option<&FreightRequest> {
        self.requested_freight.iter().find(|r| r.origin == *origin)
    }
}

/// A Stage's need for Freight from one origin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FreightRequest {
    /// Origin specifies from where the requested Freight must have originated.
    pub origin: FreightOrigin,
    /// Sources describes where the requested Freight may be obtained from.
    pub sources: FreightSources,
}

impl FreightRequest {
    /// Whether auto-promotion picks the Freight the upstream Stages hold (`MatchUpstream`).
    pub fn matches_upstream(&self) -> bool {
        matches!(
            self.sources
                .auto_promotion_options
                .as_ref()
                .and_then(|o| o.selection_policy),
            Some(AutoPromotionSelectionPolicy::MatchUpstream)
        )
    }
}

/// Where requested Freight may be obtained from: directly from its origin and/or from upstream
/// Stages.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightSources {
    /// Direct indicates the requested Freight may be obtained directly from the Warehouse from
    /// which it originated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<bool>,
    /// Stages identifies upstream Stages as potential sources of the requested Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    /// RequiredSoakTime is the minimum time the Freight must have continuously spent in an
    /// upstream Stage before becoming available here. A manual approval overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub required_soak_time: Option<String>,
    /// AvailabilityStrategy specifies whether Freight must be verified in one (OneOf, the
    /// default) or all (All) upstream Stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_strategy: Option<AvailabilityStrategy>,
    /// AutoPromotionOptions specifies options pertaining to auto-promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_options: Option<AutoPromotionOptions>,
}

/// How requested Freight is made available from upstream Stages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AvailabilityStrategy {
    /// Verified (and soaked) in all upstream Stages.
    All,
    /// Verified (and soaked) in at least one upstream Stage.
    #[default]
    OneOf,
    /// Unset; treated as OneOf.
    #[serde(rename = "")]
    Unspecified,
}

/// Options pertaining to auto-promotion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionOptions {
    /// SelectionPolicy specifies which Freight is eligible for auto-promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_policy: Option<AutoPromotionSelectionPolicy>,
}

/// Which Freight auto-promotion picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AutoPromotionSelectionPolicy {
    /// The newest Freight available to the Stage.
    #[default]
    NewestFreight,
    /// The Freight currently used by the (single) upstream Stage.
    MatchUpstream,
}

/// How to build Promotions for a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTemplate {
    /// The (partial) specification of the Promotions created for the Stage.
    pub spec: PromotionTemplateSpec,
}

/// The variables and steps copied into every Promotion of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTemplateSpec {
    /// Vars is a list of variables that can be referenced by expressions in promotion steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps specifies the directives to be executed as part of a Promotion, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1), transform = template_steps)]
    pub steps: Vec<PromotionStep>,
}

fn template_steps(schema: &mut Schema) {
    add_item_validations(
        schema,
        &[
            (
                "(has(self.uses) ? !has(self.task) : has(self.task))",
                "PromotionTemplate step must have exactly one of uses or task set",
            ),
            (
                "!has(self.task) || !has(self.continueOnError)",
                "PromotionTemplate step referencing a task cannot set continueOnError",
            ),
            (
                "!has(self.task) || !has(self.retry)",
                "PromotionTemplate step referencing a task cannot set retry",
            ),
        ],
    );
}

/// How a Stage's current Freight is verified (with Argo Rollouts AnalysisRuns).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// AnalysisTemplates from which AnalysisRuns are created to verify the Stage's Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis_templates: Vec<AnalysisTemplateReference>,
    /// AnalysisRunMetadata contains metadata applied to all AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Args lists arguments that should be added to all AnalysisRuns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
}

/// The kind of an analysis template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AnalysisTemplateKind {
    #[default]
    AnalysisTemplate,
    ClusterAnalysisTemplate,
}

/// A reference to an (Cluster)AnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisTemplateReference {
    /// Name is the name of the AnalysisTemplate in the same namespace as the Stage.
    pub name: String,
    /// Kind is AnalysisTemplate (the default) or ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AnalysisTemplateKind>,
}

/// Labels and annotations applied to all AnalysisRuns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRunMetadata {
    /// Additional labels to apply to an AnalysisRun.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Additional annotations to apply to an AnalysisRun.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An argument added to an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRunArgument {
    /// Name is the name of the argument.
    pub name: String,
    /// Value is the value of the argument.
    pub value: String,
}

/// Selects the Targets a Stage governs (Kargo Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageTargets {
    /// Selectors select Targets in the Stage's Project by label; their union is governed.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub selectors: Vec<LabelSelector>,
}

/// A Stage's current and recent Freight, health, and more.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// Conditions contains the last observations of the Stage's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = conditions_list)]
    pub conditions: Vec<Condition>,
    /// LastHandledRefresh holds the value of the most recent refresh annotation handled by the
    /// controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh: Option<String>,
    /// FreightHistory is a list of recent Freight selections deployed to the Stage, most recent
    /// (the current one) first. By default, the last ten are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freight_history: Vec<FreightCollection>,
    /// FreightSummary is human-readable text summarizing the Freight currently deployed to the
    /// Stage: the Freight's name, or "n/m Fulfilled".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight_summary: Option<String>,
    /// Health is the Stage's last observed health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// CurrentPromotion is a reference to the currently Running promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_promotion: Option<PromotionReference>,
    /// LastPromotion is a reference to the last completed promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionReference>,
    /// ObservedGeneration represents the .metadata.generation that this Stage status was
    /// reconciled against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// AutoPromotionEnabled indicates whether automatic promotion is enabled for the Stage
    /// based on the ProjectConfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// AutoPromotionHolds records active auto-promotion holds, keyed by origin
    /// (`Warehouse/<name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auto_promotion_holds: BTreeMap<String, AutoPromotionHold>,
    /// EffectiveAutoPromotionHolds is the set of holds in effect right now, recomputed on every
    /// reconcile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effective_auto_promotion_holds: BTreeMap<String, AutoPromotionHold>,
    /// Metadata is a map of arbitrary metadata associated with the Stage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "json_value_map")]
    pub metadata: BTreeMap<String, Value>,
    /// CurrentPromotionRequest is the PromotionRequest fanning Freight out to the Stage's
    /// Targets (Kargo Enterprise; haul keeps what it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_promotion_request: Option<PromotionRequestReference>,
    /// LastPromotionRequest is the last PromotionRequest to reach a terminal phase (Kargo
    /// Enterprise; haul keeps what it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion_request: Option<PromotionRequestReference>,
    /// PromotionWindowStatus reports whether promotion windows permit promotion now (Kargo
    /// Enterprise; haul keeps what it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_window_status: Option<PromotionWindowStatus>,
}

/// A PromotionRequest as a Stage observes it (Kargo Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequestReference {
    /// Name is the name of the PromotionRequest.
    pub name: String,
    /// Freight identifies the Freight being promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<PromotionRequestFreightReference>,
    /// Phase is a high-level summary of the PromotionRequest's lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// FinishedAt is the time at which the PromotionRequest completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// The Freight a PromotionRequest promotes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionRequestFreightReference {
    /// Name is the name of the Freight.
    pub name: String,
}

/// Whether promotion windows currently permit promotion of a Stage (Kargo Enterprise).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionWindowStatus {
    /// Closed is true when a window currently blocks promotion.
    pub closed: bool,
    /// Reason explains why promotion is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// NextOpen is when promotion is next expected to be permitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open: Option<Time>,
    /// NextClose is when promotion is next expected to be blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_close: Option<Time>,
    /// NextCloseReason explains the next expected block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_close_reason: Option<String>,
}

/// The overall health of a Stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum HealthState {
    Healthy,
    Unhealthy,
    Progressing,
    #[default]
    Unknown,
    NotApplicable,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "Healthy",
            HealthState::Unhealthy => "Unhealthy",
            HealthState::Progressing => "Progressing",
            HealthState::Unknown => "Unknown",
            HealthState::NotApplicable => "NotApplicable",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Stage's health.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Status describes the health of the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "plain_string")]
    pub status: Option<HealthState>,
    /// Issues clarifies why a Stage in any state other than Healthy is in that state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<String>,
    /// Config is the opaque configuration of all health checks performed on this Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub config: Option<Value>,
    /// Output is the opaque output of all health checks performed on this Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub output: Option<Value>,
}

/// A reference to a Promotion, as recorded in a Stage's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReference {
    /// Name is the name of the Promotion.
    pub name: String,
    /// Freight is the freight being promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    /// Status is the (optional) status of the Promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromotionStatus>,
    /// FinishedAt is the time at which the Promotion was completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// An auto-promotion hold on one origin, established by a Promotion that selected Freight other
/// than the auto-promotion candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionHold {
    /// Origin is the FreightOrigin pinned by this hold; it matches the map key.
    pub origin: FreightOrigin,
    /// FreightName is the name of the Freight selected when the hold was created.
    pub freight_name: String,
    /// PromotionName is the name of the Promotion that established this hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_name: Option<String>,
    /// Actor identifies the user who triggered the hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// CreatedAt is the creation timestamp of the Promotion that established this hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}
