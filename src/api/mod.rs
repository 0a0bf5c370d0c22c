//! Types for Kargo's `kargo.akuity.io/v1alpha1` API, shaped so that manifests written for Kargo
//! validate unchanged against the CRDs generated from them, plus a minimal view of Argo CD's
//! `Application`.

pub mod argocd;
pub mod cluster_config;
pub mod common;
pub mod freight;
pub mod project;
pub mod project_config;
pub mod promotion;
pub mod promotion_task;
mod resource_impls;
pub mod stage;
pub mod warehouse;

#[cfg(test)]
mod kargo_status_tests;
#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use argocd::{Application, application_crd};
pub use cluster_config::{
    CLUSTER_CONFIG_NAME, ClusterConfig, ClusterConfigSpec, ClusterConfigStatus, GitClientConfig,
    SIGNING_KEY_DATA_KEY,
};
pub use common::*;
pub use freight::{ApprovedStage, CurrentStage, Freight, FreightStatus, VerifiedStage};
pub use project::{HealthStats, Project, ProjectStats, ProjectStatus, ResourceStats};
pub use project_config::{
    GenericWebhookAction, GenericWebhookReceiverConfig, GenericWebhookTargetSelectionCriteria,
    IndexSelector, IndexSelectorRequirement, ProjectConfig, ProjectConfigSpec, ProjectConfigStatus,
    PromotionPolicy, PromotionPolicySelector, WebhookReceiverConfig, WebhookReceiverDetails,
    WebhookReceiverSecret,
};
pub use promotion::{
    Promotion, PromotionPhase, PromotionSpec, PromotionStatus, StepExecutionMetadata, StepStatus,
};
pub use promotion_task::{
    ClusterPromotionTask, ClusterPromotionTaskSpec, PromotionTask, PromotionTaskSpec,
};
pub use stage::{
    AnalysisRunArgument, AnalysisRunMetadata, AnalysisTemplateKind, AnalysisTemplateReference,
    AutoPromotionHold, AutoPromotionOptions, AutoPromotionSelectionPolicy, AvailabilityStrategy,
    FreightRequest, FreightSources, Health, HealthState, PromotionReference,
    PromotionRequestFreightReference, PromotionRequestReference, PromotionTemplate,
    PromotionTemplateSpec, PromotionWindowStatus, Stage, StageSpec, StageStatus, StageTargets,
    Verification,
};
pub use warehouse::{
    ChartDiscoveryResult, ChartSubscription, CommitSelectionStrategy, DiscoveredArtifacts,
    DiscoveredCommit, DiscoveredImageReference, DiscoveredRef, DiscoveryResult,
    FreightCreationCriteria, FreightCreationPolicy, GitDiscoveryRefs, GitDiscoveryResult,
    GitSubscription, ImageDiscoveryResult, ImageSelectionStrategy, ImageSubscription,
    RepoSubscription, Warehouse, WarehouseSpec, WarehouseStatus,
};

/// The nine Kargo CRDs to install, in a stable order: Project first (it owns namespaces), then
/// the namespaced kinds roughly in pipeline order, then the promotion tasks and ClusterConfig. Unlike the bare
/// `Kind::crd()` of derived kinds, these declare `apiVersion`, `kind` and `metadata` at the
/// schema root and a `listKind`, as Kargo's CRDs do.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    [
        Project::crd(),
        ProjectConfig::crd(),
        Warehouse::crd(),
        Freight::crd(),
        Stage::crd(),
        Promotion::crd(),
        PromotionTask::crd(),
        ClusterPromotionTask::crd(),
        cluster_config::crd(),
    ]
    .into_iter()
    .map(common::normalize_crd)
    .collect()
}
