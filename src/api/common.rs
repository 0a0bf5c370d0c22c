//! Types shared by several Kargo kinds, well-known label and annotation keys, and the schema
//! helpers used to keep the generated CRDs structural and close to Kargo's own.

use std::{collections::BTreeMap, fmt, str::FromStr};

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    },
    apimachinery::pkg::apis::meta::v1::Time,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// API group of every Kargo kind.
pub const GROUP: &str = "kargo.akuity.io";
/// The only API version Kargo serves.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Kargo object.
pub const API_VERSION: &str = "kargo.akuity.io/v1alpha1";

// Label keys (Kargo `api/v1alpha1/labels.go`).
/// Label holding a Freight's alias; aliases are unique per namespace.
pub const LABEL_ALIAS: &str = "kargo.akuity.io/alias";
/// Label on Secrets saying which kind of credentials they hold.
pub const LABEL_CRED_TYPE: &str = "kargo.akuity.io/cred-type";
/// Label tying an AnalysisRun to the FreightCollection it verifies.
pub const LABEL_FREIGHT_COLLECTION: &str = "kargo.akuity.io/freight-collection";
/// Label marking a namespace as a Project namespace (value `true`).
pub const LABEL_PROJECT: &str = "kargo.akuity.io/project";
/// Label naming the Promotion a resource belongs to.
pub const LABEL_PROMOTION: &str = "kargo.akuity.io/promotion";
/// Label selecting the controller shard responsible for an object.
pub const LABEL_SHARD: &str = "kargo.akuity.io/shard";
/// Label (and Promotion annotation) naming the Stage a resource belongs to.
pub const LABEL_STAGE: &str = "kargo.akuity.io/stage";
/// Value used by boolean labels such as [`LABEL_PROJECT`].
pub const LABEL_VALUE_TRUE: &str = "true";
/// [`LABEL_CRED_TYPE`] values.
pub const CRED_TYPE_GIT: &str = "git";
pub const CRED_TYPE_HELM: &str = "helm";
pub const CRED_TYPE_IMAGE: &str = "image";
pub const CRED_TYPE_GENERIC: &str = "generic";

// Annotation keys (Kargo `api/v1alpha1/annotations.go` and the Argo CD integration).
/// Stamped by the control plane with the actor that created a resource.
pub const ANNOTATION_CREATE_ACTOR: &str = "kargo.akuity.io/create-actor";
/// Any change of its value requests a reconcile; the handled value is echoed in
/// `status.lastHandledRefresh`.
pub const ANNOTATION_REFRESH: &str = "kargo.akuity.io/refresh";
/// Requests re-verification of a Stage's current Freight.
pub const ANNOTATION_REVERIFY: &str = "kargo.akuity.io/reverify";
/// Aborts a verification (on a Stage) or a running Promotion.
pub const ANNOTATION_ABORT: &str = "kargo.akuity.io/abort";
/// Free-text description shown by UIs.
pub const ANNOTATION_DESCRIPTION: &str = "kargo.akuity.io/description";
/// On an Argo CD Application: `<project>:<stage>` (comma-separated list allowed) allowed to
/// modify it.
pub const ANNOTATION_AUTHORIZED_STAGE: &str = "kargo.akuity.io/authorized-stage";
/// Keeps a Project's namespace when the Project is deleted.
pub const ANNOTATION_KEEP_NAMESPACE: &str = "kargo.akuity.io/keep-namespace";
/// Lists the Argo CD Applications involved in a Stage's last Promotion.
pub const ANNOTATION_ARGOCD_CONTEXT: &str = "kargo.akuity.io/argocd-context";
/// On a Promotion: the full name of its Stage (the label [`LABEL_STAGE`] may be shortened).
pub const ANNOTATION_STAGE: &str = "kargo.akuity.io/stage";
/// On an AnalysisRun: the Promotion whose verification it is.
pub const ANNOTATION_PROMOTION: &str = "kargo.akuity.io/promotion";
/// On a Promotion: it establishes an auto-promotion hold for this origin (`Warehouse/<name>`).
pub const ANNOTATION_AUTO_PROMOTION_HOLD: &str = "kargo.akuity.io/auto-promotion-hold";
/// On a Promotion: once it succeeds, it releases the auto-promotion hold of this origin.
pub const ANNOTATION_AUTO_PROMOTION_RESUME: &str = "kargo.akuity.io/auto-promotion-resume";
/// Value used by boolean annotations.
pub const ANNOTATION_VALUE_TRUE: &str = "true";
/// Finalizer Kargo puts on the resources it cleans up after.
pub const FINALIZER: &str = "kargo.akuity.io/finalizer";

/// A label value of at most 63 characters, as Kargo's `ShortenLabelValue`: longer values keep
/// their leading characters, then `-` and the first 8 hex digits of the SHA-256 of the whole.
pub fn shorten_label_value(value: &str) -> String {
    const MAX: usize = 63;
    const HASH: usize = 8;
    if value.len() <= MAX {
        return value.to_string();
    }
    use sha2::Digest;
    let sum = sha2::Sha256::digest(value.as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    let mut cut = MAX - (HASH + 1);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{}", value[..cut].trim_end_matches('-'), &hex[..HASH])
}

// Condition types (Kargo `api/v1alpha1/conditions.go`).
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_RECONCILING: &str = "Reconciling";
pub const CONDITION_STALLED: &str = "Stalled";
pub const CONDITION_HEALTHY: &str = "Healthy";
pub const CONDITION_PROMOTING: &str = "Promoting";
pub const CONDITION_VERIFIED: &str = "Verified";
pub const CONDITION_FREIGHT_CREATION_CRITERIA_SATISFIED: &str = "FreightCreationCriteriaSatisfied";
pub const CONDITION_FREIGHT_CREATED: &str = "FreightCreated";

/// Go `metav1.Duration` strings as Kargo accepts them, e.g. `5m0s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$";
/// RFC 1123 subdomain, as Kargo validates object names referenced from specs.
pub const K8S_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Names of expression variables.
pub const VARIABLE_NAME_PATTERN: &str = r"^[a-zA-Z_]\w*$";

// Bounds on the identifying fields of Freight artifacts (Kargo has none). They keep the
// estimated cost of Freight's whole-list CEL immutability rules small on any API server
// version; free text (commit message, author, image annotations) stays unbounded so that
// real-world data always fits.
pub(crate) const MAX_ARTIFACTS: u32 = 100;
pub(crate) const MAX_URL_LENGTH: u32 = 4096;
pub(crate) const MAX_FIELD_LENGTH: u32 = 1024;

/// The kind of resource Freight originates from. Kargo only knows Warehouses.
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
pub enum FreightOriginKind {
    #[default]
    Warehouse,
}

impl FreightOriginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FreightOriginKind::Warehouse => "Warehouse",
        }
    }
}

impl fmt::Display for FreightOriginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a piece of Freight came from.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct FreightOrigin {
    /// Kind is the kind of resource from which Freight may have originated. At present, this can
    /// only be "Warehouse".
    pub kind: FreightOriginKind,
    /// Name is the name of the resource of the kind indicated by the Kind field from which
    /// Freight may originate.
    #[schemars(length(max = 253))]
    pub name: String,
}

impl FreightOrigin {
    pub fn warehouse(name: impl Into<String>) -> Self {
        Self {
            kind: FreightOriginKind::Warehouse,
            name: name.into(),
        }
    }
}

/// `Warehouse/<name>`: the key Kargo uses for origins in maps (Stage status, annotations), so
/// the format must not change.
impl fmt::Display for FreightOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Error parsing a `Warehouse/<name>` origin key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Freight origin {0:?}: expected Warehouse/<name>")]
pub struct ParseFreightOriginError(pub String);

impl FromStr for FreightOrigin {
    type Err = ParseFreightOriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some(("Warehouse", name)) if !name.is_empty() && !name.contains('/') => {
                Ok(FreightOrigin::warehouse(name))
            }
            _ => Err(ParseFreightOriginError(s.to_string())),
        }
    }
}

/// A specific commit from a specific Git repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitCommit {
    /// RepoURL is the URL of a Git repository.
    #[serde(default, rename = "repoURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_URL_LENGTH))]
    pub repo_url: Option<String>,
    /// ID is the ID of a specific commit in the Git repository specified by RepoURL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub id: Option<String>,
    /// Branch denotes the branch of the repository where this commit was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub branch: Option<String>,
    /// Tag denotes a tag in the repository that matched selection criteria and resolved to this
    /// commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub tag: Option<String>,
    /// Message is the message associated with the commit. At present, this only contains the
    /// first line (subject) of the commit message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Author is the author of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Committer is the person who committed the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<String>,
    /// SubscriptionName is the name of the subscription that discovered this commit. This field
    /// is only populated if the subscription was assigned a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub subscription_name: Option<String>,
}

/// A specific version of a container image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// RepoURL describes the repository in which the image can be found.
    #[serde(default, rename = "repoURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_URL_LENGTH))]
    pub repo_url: Option<String>,
    /// Tag identifies a specific version of the image in the repository specified by RepoURL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub tag: Option<String>,
    /// Digest identifies a specific version of the image in the repository specified by
    /// RepoURL. This is a more precise identifier than Tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub digest: Option<String>,
    /// Annotations is a map of arbitrary metadata for the image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// SubscriptionName is the name of the subscription that discovered this image. This field
    /// is only populated if the subscription was assigned a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub subscription_name: Option<String>,
}

/// A specific version of a Helm chart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// RepoURL specifies the URL of a Helm chart repository. Classic chart repositories (using
    /// HTTP/S) can contain differently named charts. When this field points to such a
    /// repository, the Name field will specify the name of the chart within the repository. In
    /// the case of a repository within an OCI registry, the URL implicitly points to a specific
    /// chart and the Name field will be empty.
    #[serde(default, rename = "repoURL", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_URL_LENGTH))]
    pub repo_url: Option<String>,
    /// Name specifies the name of the chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub name: Option<String>,
    /// Version specifies a particular version of the chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub version: Option<String>,
    /// SubscriptionName is the name of the subscription that discovered this chart. This field
    /// is only populated if the subscription was assigned a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_FIELD_LENGTH))]
    pub subscription_name: Option<String>,
}

/// A specific version of an artifact other than a commit, an image or a chart (discovered by
/// generic subscribers).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactReference {
    /// ArtifactType specifies the type of artifact this is. Often, but not always, it will be the
    /// media type (MIME type) of the artifact referenced by this ArtifactReference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_FIELD_LENGTH))]
    pub artifact_type: Option<String>,
    /// SubscriptionName is the name of the Subscription that discovered this artifact.
    #[schemars(length(min = 1, max = MAX_FIELD_LENGTH))]
    pub subscription_name: String,
    /// Version identifies a specific revision of this artifact.
    #[schemars(length(min = 1, max = MAX_FIELD_LENGTH))]
    pub version: String,
    /// Metadata is a JSON object containing a mostly opaque collection of artifact attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub metadata: Option<Value>,
}

/// A simplified representation of a piece of Freight (not a root resource).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightReference {
    /// Name is a system-assigned identifier derived deterministically from the contents of the
    /// Freight. I.e., two pieces of Freight can be compared for equality by comparing their
    /// Names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Origin describes a kind of Freight in terms of its origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// Commits describes specific Git repository commits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ARTIFACTS))]
    pub commits: Vec<GitCommit>,
    /// Images describes specific versions of specific container images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ARTIFACTS))]
    pub images: Vec<Image>,
    /// Charts describes specific versions of specific Helm charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ARTIFACTS))]
    pub charts: Vec<Chart>,
    /// Artifacts describes specific versions of artifacts other than Git repository commits,
    /// container images, and Helm charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ARTIFACTS))]
    pub artifacts: Vec<ArtifactReference>,
}

/// A set of FreightReferences, one per origin, selected together for deployment to a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightCollection {
    /// ID is a unique and deterministically calculated identifier for the FreightCollection.
    pub id: String,
    /// Freight is a map of FreightReference objects, indexed by their origin
    /// (`Warehouse/<name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items: BTreeMap<String, FreightReference>,
    /// VerificationHistory is a stack of recent VerificationInfo. By default, the last ten
    /// VerificationInfo are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_history: Vec<VerificationInfo>,
}

/// The details of an instance of a Verification process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationInfo {
    /// ID is the identifier of the Verification process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Actor is the name of the entity that initiated or aborted the Verification process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// StartTime is the time at which the Verification process was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// Phase describes the current phase of the Verification process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Message may contain additional information about why the verification process is in
    /// its current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// AnalysisRun is a reference to the Argo Rollouts AnalysisRun that implements the
    /// Verification process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run: Option<AnalysisRunReference>,
    /// FinishTime is the time at which the Verification process finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
}

/// A reference to an Argo Rollouts AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRunReference {
    /// Name is the name of the AnalysisRun.
    pub name: String,
    /// Namespace is the namespace of the AnalysisRun.
    pub namespace: String,
    /// Phase is the last observed phase of the AnalysisRun referenced by Name.
    pub phase: String,
}

/// A variable that expressions may reference (in a Stage, a Promotion, a PromotionTask, a step
/// or verification arguments).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpressionVariable {
    /// Name is the name of the variable.
    #[schemars(length(min = 1), regex(pattern = VARIABLE_NAME_PATTERN))]
    pub name: String,
    /// Value is the value of the variable. It is allowed to utilize expressions in the value.
    /// In a PromotionTask, a variable without a value must be supplied by the referencing step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Older Kargo name for [`ExpressionVariable`].
pub type PromotionVariable = ExpressionVariable;

/// The kind of a task referenced from a promotion step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PromotionTaskKind {
    #[default]
    PromotionTask,
    ClusterPromotionTask,
}

/// A reference to a (Cluster)PromotionTask.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTaskReference {
    /// Name is the name of the (Cluster)PromotionTask.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: String,
    /// Kind is the type of the PromotionTask. Can be either PromotionTask or
    /// ClusterPromotionTask, default is PromotionTask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PromotionTaskKind>,
}

/// The retry policy of a promotion step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStepRetry {
    /// Timeout is the soft maximum interval in which a step that returns a Running status may be
    /// retried (a Go duration such as `5m`). Zero means retry indefinitely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// ErrorThreshold is the number of consecutive times the step must fail (for any reason)
    /// before retries are abandoned and the entire Promotion is marked as failed. Zero means the
    /// step's own default, else the system default of 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_threshold: Option<i32>,
}

/// A directive executed as part of a Promotion: either a step runner (`uses`) or, in templates
/// only, a reference to a PromotionTask (`task`) that is inflated when the Promotion is built.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStep {
    /// Uses identifies a runner that can execute this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub uses: Option<String>,
    /// Task is a reference to a PromotionTask that should be inflated into a Promotion when it
    /// is built from a PromotionTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<PromotionTaskReference>,
    /// As is the alias this step can be referred to as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#as: Option<String>,
    /// If is an optional expression that, if present, must evaluate to a boolean value. If the
    /// expression evaluates to false, the step will be skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#if: Option<String>,
    /// ContinueOnError, if true, lets the Promotion continue with the next step even if this
    /// step fails, without the failure affecting the Promotion's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_error: Option<bool>,
    /// Retry is the retry policy for this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<PromotionStepRetry>,
    /// Vars is a list of variables that can be referenced by expressions in the step's Config.
    /// The values override the values specified in the PromotionSpec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Config is opaque configuration for the step, understood only by its runner. Expressions
    /// may be used at any level of this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub config: Option<Value>,
}

/// A health check directive recorded by a Promotion and run by its Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheckStep {
    /// Uses identifies a runner that can execute this step.
    #[schemars(length(min = 1))]
    pub uses: String,
    /// Config is the configuration for the directive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub config: Option<Value>,
}

/// A reference to a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct LocalSecretReference {
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// Schema helpers.

/// Free-form JSON of any type, as Kargo's `apiextensionsv1.JSON` fields.
pub(crate) fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A free-form JSON object.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of free-form JSON objects.
pub(crate) fn preserve_unknown_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
    })
}

/// A map of free-form JSON values (Freight and Stage `status.metadata`).
pub(crate) fn json_value_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true },
    })
}

/// A plain string, for Rust enums whose values Kargo's schema leaves open (status fields).
pub(crate) fn plain_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string" })
}

/// Marks a list of conditions as a map keyed by `type`, as `metav1.Condition` lists are.
pub(crate) fn conditions_list(schema: &mut Schema) {
    schema.insert("x-kubernetes-list-type".into(), json!("map"));
    schema.insert("x-kubernetes-list-map-keys".into(), json!(["type"]));
}

/// Adds CEL validation rules (`(rule, message)` pairs) to a schema.
pub(crate) fn add_validations(schema: &mut Schema, rules: &[(&str, &str)]) {
    let rules = rules
        .iter()
        .map(|(rule, message)| json!({ "rule": rule, "message": message }));
    match schema
        .get_mut("x-kubernetes-validations")
        .and_then(Value::as_array_mut)
    {
        Some(existing) => existing.extend(rules),
        None => {
            schema.insert("x-kubernetes-validations".into(), rules.collect());
        }
    }
}

/// Adds CEL validation rules to the item schema of an array schema.
pub(crate) fn add_item_validations(schema: &mut Schema, rules: &[(&str, &str)]) {
    if let Some(items) = schema
        .get_mut("items")
        .and_then(|items| <&mut Schema>::try_from(items).ok())
    {
        add_validations(items, rules);
    }
}

/// Shapes the schema of a hand-written root type (Freight, Project) the way kube's derive does
/// for derived ones: `apiVersion` and `kind` strings, and an opaque, optional `metadata` object.
pub(crate) fn root_object(schema: &mut Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("apiVersion".into(), json!({ "type": "string" }));
        properties.insert("kind".into(), json!({ "type": "string" }));
        properties.insert("metadata".into(), json!({ "type": "object" }));
    }
    let now_empty = match schema.get_mut("required").and_then(Value::as_array_mut) {
        Some(required) => {
            required.retain(|name| name != "metadata");
            required.is_empty()
        }
        None => false,
    };
    if now_empty {
        schema.remove("required");
    }
}

/// The structural OpenAPI v3 schema of a hand-written root type, generated the same way
/// `#[derive(CustomResource)]` does it.
pub(crate) fn root_schema<T: JsonSchema>() -> Result<JSONSchemaProps, serde_json::Error> {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    serde_json::from_value(serde_json::to_value(generator.into_root_schema_for::<T>())?)
}

/// Gives a generated CRD the shape of Kargo's: `apiVersion`, `kind` and `metadata` declared at
/// the root (kube's derive leaves them out), a `listKind`, no schemars `title`, and no
/// `nullable` nor `null` enum values (schemars adds them for `Option`s; Kargo's schemas let the
/// API server prune nulls instead, and haul never writes them).
pub(crate) fn normalize_crd(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let kind = crd.spec.names.kind.clone();
    crd.spec
        .names
        .list_kind
        .get_or_insert_with(|| format!("{kind}List"));
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        root.title = None;
        strip_nullable(root);
        let properties = root.properties.get_or_insert_with(BTreeMap::new);
        for (key, type_) in [
            ("apiVersion", "string"),
            ("kind", "string"),
            ("metadata", "object"),
        ] {
            properties
                .entry(key.into())
                .or_insert_with(|| JSONSchemaProps {
                    type_: Some(type_.into()),
                    ..JSONSchemaProps::default()
                });
        }
    }
    crd
}

fn strip_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_nullable(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        strip_nullable(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = schema.additional_properties.as_mut() {
        strip_nullable(values);
    }
}

pub(crate) fn default_true() -> bool {
    true
}
