//! ProjectConfig: per-Project configuration (auto-promotion policies, webhook receivers). Its
//! name must equal the Project's.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    Condition, K8S_NAME_PATTERN, LocalSecretReference, conditions_list, preserve_unknown_object,
    preserve_unknown_object_list,
};

/// Spec describes the configuration of a Project.
// Repeated `type_ = ...` in printcolumn(...) is not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "ProjectConfig",
    namespaced,
    status = "ProjectConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ProjectConfig is a resource type that describes the configuration of a Project.",
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
pub struct ProjectConfigSpec {
    /// PromotionPolicies defines policies governing the promotion of Freight to specific Stages
    /// within the Project. The first matching policy wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion_policies: Vec<PromotionPolicy>,
    /// WebhookReceivers describes Project-specific webhook receivers used for processing events
    /// from various external platforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_receivers: Vec<WebhookReceiverConfig>,
    /// FreightLinks are UI deep links for Freight (accepted, not used by haul).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub freight_links: Vec<Value>,
    /// StageLinks are UI deep links for Stages (accepted, not used by haul).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub stage_links: Vec<Value>,
    /// PromotionWindows are Kargo Enterprise promotion schedules (accepted, not used by haul).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub promotion_windows: Vec<Value>,
}

/// A policy governing the promotion of Freight to the Stages it selects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.stage) ? !has(self.stageSelector) : has(self.stageSelector)",
    "message": "PromotionPolicy must have exactly one of stage or stageSelector set",
}]))]
pub struct PromotionPolicy {
    /// Stage is the name of the Stage to which this policy applies. Deprecated: use
    /// stageSelector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = K8S_NAME_PATTERN))]
    pub stage: Option<String>,
    /// StageSelector selects the Stages to which this policy applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_selector: Option<PromotionPolicySelector>,
    /// AutoPromotionEnabled indicates whether new Freight can automatically be promoted into
    /// the selected Stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// AutoRollback is a Kargo Enterprise setting (accepted, not used by haul).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub auto_rollback: Option<Value>,
}

/// Selects resources by name (exact, `regex:`/`regexp:` or `glob:`) and/or labels; both must
/// match when both are given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct PromotionPolicySelector {
    /// Name is the name of the resource to which this policy applies: an exact name, or a
    /// pattern with a `regex:` or `glob:` prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// matchLabels is a map of {key,value} pairs; the requirements are ANDed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// matchExpressions is a list of label selector requirements; the requirements are ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// The configuration of a single webhook receiver. One platform key is expected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiverConfig {
    /// Name is the name of the webhook receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Receiver for GitHub payloads.
    #[serde(default, rename = "github", skip_serializing_if = "Option::is_none")]
    pub github: Option<WebhookReceiverSecret>,
    /// Receiver for GitLab payloads.
    #[serde(default, rename = "gitlab", skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<WebhookReceiverSecret>,
    /// Receiver for Gitea payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitea: Option<WebhookReceiverSecret>,
    /// Receiver for Bitbucket payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitbucket: Option<WebhookReceiverSecret>,
    /// Receiver for Azure (ACR / Azure DevOps) payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<WebhookReceiverSecret>,
    /// Receiver for Docker Hub payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerhub: Option<WebhookReceiverSecret>,
    /// Receiver for Quay payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quay: Option<WebhookReceiverSecret>,
    /// Receiver for Harbor payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harbor: Option<WebhookReceiverSecret>,
    /// Receiver for Artifactory payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifactory: Option<WebhookReceiverSecret>,
    /// Generic receiver: any POST, matched by expressions, refreshing selected Warehouses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericWebhookReceiverConfig>,
}

/// A receiver for any sender: each action whose `whenExpression` matches the request refreshes
/// the Warehouses its target selection criteria select. The Secret's `secret` key only makes
/// the URL hard to guess.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericWebhookReceiverConfig {
    /// SecretRef references a Secret in the ProjectConfig's namespace.
    pub secret_ref: LocalSecretReference,
    /// Actions is a list of actions to be performed when a webhook event is received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<GenericWebhookAction>,
}

/// An action of the generic receiver and when it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericWebhookAction {
    /// ActionType is the action to perform; `Refresh` is the only one.
    // A string, not an enum: an unknown action is reported by the receiver rather than making
    // the whole ProjectConfig unreadable.
    #[serde(rename = "action")]
    pub action_type: String,
    /// WhenExpression is an expression over the request that must be true for the action to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_expression: Option<String>,
    /// Parameters are action-specific values, static or `${{ }}` templates over the request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// TargetSelectionCriteria select the resources the action applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_selection_criteria: Vec<GenericWebhookTargetSelectionCriteria>,
}

/// Selects resources by name, labels and/or index values (all ANDed); values may be
/// `${{ }}` templates over the request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericWebhookTargetSelectionCriteria {
    /// Kind of the target resource (`Warehouse`).
    pub kind: String,
    /// Name of the target resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// LabelSelector identifies the target resources by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// IndexSelector identifies the target resources by indexed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_selector: Option<IndexSelector>,
}

/// Selection by values in well-known indices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndexSelector {
    /// MatchIndices is a list of index selector requirements (ANDed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_indices: Vec<IndexSelectorRequirement>,
}

/// One index requirement: `key` (`subscribedURLs` or `receiverPaths`) `operator` (`Equals` or
/// `NotEquals`) `value`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndexSelectorRequirement {
    /// Key is the key of the index.
    pub key: String,
    /// Operator is `Equals` or `NotEquals`.
    pub operator: String,
    /// Value is a static string or a template over the request.
    pub value: String,
}

/// A platform-specific webhook receiver: the Secret holding its shared secret. Other
/// platform-specific keys are kept as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct WebhookReceiverSecret {
    /// SecretRef references a Secret in the ProjectConfig's namespace.
    pub secret_ref: LocalSecretReference,
    /// Platform-specific settings other than the secret.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// The current status of a ProjectConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfigStatus {
    /// Conditions contains the last observations of the ProjectConfig's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = conditions_list)]
    pub conditions: Vec<Condition>,
    /// ObservedGeneration is the .metadata.generation this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// LastHandledRefresh holds the value of the most recent refresh annotation handled by the
    /// controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh: Option<String>,
    /// WebhookReceivers describes the status of Project-specific webhook receivers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_receivers: Vec<WebhookReceiverDetails>,
}

/// Where a webhook receiver listens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookReceiverDetails {
    /// Name is the name of the webhook receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path is the path to the receiver's webhook endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// URL includes the full address of the receiver's webhook endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
