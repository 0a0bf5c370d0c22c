//! PromotionTask and ClusterPromotionTask: reusable bundles of promotion steps that a Stage's
//! promotion template references with `task:`; they are inflated when a Promotion is built.

use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use super::common::{ExpressionVariable, PromotionStep, add_item_validations};

/// The variables and steps of a namespaced PromotionTask.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "PromotionTask",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "promotask",
    shortname = "promotasks",
    doc = "PromotionTask is a reusable set of promotion steps.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct PromotionTaskSpec {
    /// Vars specifies the variables available to the task. A value is a default that the
    /// referencing step may override; a variable without one must be supplied by the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps specifies the directives executed as part of this task. Tasks cannot reference
    /// other tasks.
    #[schemars(length(min = 1), transform = task_steps)]
    pub steps: Vec<PromotionStep>,
}

/// The variables and steps of a cluster-scoped ClusterPromotionTask (same shape as
/// [`PromotionTaskSpec`]).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "ClusterPromotionTask",
    derive = "PartialEq",
    derive = "Default",
    shortname = "clusterpromotask",
    shortname = "clusterpromotasks",
    doc = "ClusterPromotionTask is a cluster-scoped, reusable set of promotion steps.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ClusterPromotionTaskSpec {
    /// Vars specifies the variables available to the task. A value is a default that the
    /// referencing step may override; a variable without one must be supplied by the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps specifies the directives executed as part of this task. Tasks cannot reference
    /// other tasks.
    #[schemars(length(min = 1), transform = task_steps)]
    pub steps: Vec<PromotionStep>,
}

impl From<ClusterPromotionTaskSpec> for PromotionTaskSpec {
    fn from(spec: ClusterPromotionTaskSpec) -> Self {
        Self {
            vars: spec.vars,
            steps: spec.steps,
        }
    }
}

fn task_steps(schema: &mut Schema) {
    add_item_validations(
        schema,
        &[(
            "has(self.uses) && !has(self.task)",
            "PromotionTask step must have uses set and must not reference another task",
        )],
    );
}
