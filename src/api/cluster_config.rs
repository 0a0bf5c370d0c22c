//! ClusterConfig: cluster-level configuration (git client identity and signing key, cluster
//! webhook receivers, UI links, promotion windows). Only the one named [`CLUSTER_CONFIG_NAME`]
//! is honoured, as in Kargo.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    Condition, LocalSecretReference, conditions_list, preserve_unknown_object_list,
};
use super::project_config::{WebhookReceiverConfig, WebhookReceiverDetails};

/// The name of the only ClusterConfig Kargo (and haul) reads.
pub const CLUSTER_CONFIG_NAME: &str = "cluster";

/// The data key of the signing key in `gitClient.signingKeySecret`.
pub const SIGNING_KEY_DATA_KEY: &str = "signingKey";

/// ClusterConfigSpec describes cluster-level Kargo configuration.
// Repeated `type_ = ...` in printcolumn(...) is not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "ClusterConfig",
    status = "ClusterConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "clusterconfig",
    shortname = "clusterconfigs",
    doc = "ClusterConfig is a resource type that describes cluster-level Kargo configuration.",
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
pub struct ClusterConfigSpec {
    /// WebhookReceivers describes cluster-scoped webhook receivers used for processing events
    /// from various external platforms. Their Secrets live in the system resources namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_receivers: Vec<WebhookReceiverConfig>,
    /// GitClient describes cluster-level configuration for the Git client: committer identity
    /// and an optional signing key. It takes precedence over the install-time settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_client: Option<GitClientConfig>,
    /// FreightLinks defines deep links shown when viewing any Freight (stored for the UI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub freight_links: Vec<Value>,
    /// StageLinks defines deep links shown when viewing any Stage (stored for the UI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub stage_links: Vec<Value>,
    /// PromotionWindows are Kargo Enterprise time windows gating promotions. Accepted but not
    /// enforced by haul; the `PromotionWindowsEnforced` condition says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserve_unknown_object_list")]
    pub promotion_windows: Vec<Value>,
}

/// Cluster-level configuration of the Git client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitClientConfig {
    /// Name is the name used for Git commits.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Email is the email address used for Git commits.
    #[schemars(length(min = 1), extend("format" = "email"))]
    pub email: String,
    /// SigningKeySecret references a Secret in the system namespace whose `signingKey` data
    /// key holds a GPG (or OpenSSH) private key without passphrase that signs commits and tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret: Option<LocalSecretReference>,
}

/// The current status of a ClusterConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigStatus {
    /// Conditions contains the last observations of the ClusterConfig's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = conditions_list)]
    pub conditions: Vec<Condition>,
    /// ObservedGeneration represents the .metadata.generation this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// LastHandledRefresh holds the value of the most recent refresh annotation handled by the
    /// controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh: Option<String>,
    /// WebhookReceivers describes the status of cluster-scoped webhook receivers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_receivers: Vec<WebhookReceiverDetails>,
}

/// The ClusterConfig CRD, refusing any name but [`CLUSTER_CONFIG_NAME`] (Kargo's admission
/// webhook does the same).
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    use kube::CustomResourceExt;
    let mut crd = ClusterConfig::crd();
    for v in &mut crd.spec.versions {
        if let Some(schema) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema
                .x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(ValidationRule {
                    rule: format!("self.metadata.name == '{CLUSTER_CONFIG_NAME}'"),
                    message: Some(format!("name must be {CLUSTER_CONFIG_NAME:?}")),
                    ..ValidationRule::default()
                });
        }
    }
    crd
}
