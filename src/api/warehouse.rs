//! Warehouse: subscribes to artifact repositories and produces Freight.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Deserializer, Serialize};

use super::common::{
    ArtifactReference, Condition, DURATION_PATTERN, conditions_list, default_true,
};

/// Pattern Kargo applies to Git repository URLs (HTTP(S), SSH and SCP-style).
pub const GIT_REPO_URL_PATTERN: &str = r"(?:^(ssh|https?)://(?:([\w-]+)(:(.+))?@)?([\w-]+(?:\.[\w-]+)*)(?::(\d{1,5}))?(/.*)$)|(?:^([\w-]+)@([\w+]+(?:\.[\w-]+)*):(/?.*))";
/// Pattern Kargo applies to image repository URLs (no tag, no scheme).
pub const IMAGE_REPO_URL_PATTERN: &str =
    r"^(\w+([\.-]\w+)*(:[\d]+)?/)?(\w+([\.-]\w+)*)(/\w+([\.-]\w+)*)*$";
/// Pattern Kargo applies to chart repository URLs (HTTP(S) or OCI).
pub const CHART_REPO_URL_PATTERN: &str = r"^(((https?)|(oci))://)([\w\d\.\-]+)(:[\d]+)?(/.*)*$";
/// Pattern Kargo applies to Git branch names.
pub const BRANCH_PATTERN: &str = r"^[a-zA-Z0-9]([a-zA-Z0-9._\/-]*[a-zA-Z0-9_-])?$";

/// Default reconciliation interval.
pub const DEFAULT_INTERVAL: &str = "5m0s";
/// Default number of discovered artifacts kept per subscription.
pub const DEFAULT_DISCOVERY_LIMIT: i32 = 20;

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_string()
}

fn default_discovery_limit() -> i32 {
    DEFAULT_DISCOVERY_LIMIT
}

/// Spec describes sources of artifacts.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "Warehouse",
    namespaced,
    status = "WarehouseStatus",
    derive = "PartialEq",
    doc = "Warehouse is a source of Freight.",
    printcolumn(name = "Shard", type_ = "string", json_path = ".spec.shard"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseSpec {
    /// Shard is the name of the shard that this Warehouse belongs to. It is kept in sync with
    /// the kargo.akuity.io/shard label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Interval is the reconciliation interval for this Warehouse. On each reconciliation, the
    /// Warehouse will discover new artifacts and optionally produce new Freight.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: String,
    /// FreightCreationPolicy describes how Freight is created by this Warehouse.
    #[serde(default)]
    pub freight_creation_policy: FreightCreationPolicy,
    /// Subscriptions describes sources of artifacts to be included in Freight produced by this
    /// Warehouse.
    #[schemars(length(min = 1))]
    pub subscriptions: Vec<RepoSubscription>,
    /// FreightCreationCriteria defines criteria that must be satisfied for Freight to be created
    /// automatically from new artifacts following discovery. This field has no effect when the
    /// FreightCreationPolicy is `Manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight_creation_criteria: Option<FreightCreationCriteria>,
}

/// How Freight is created by a Warehouse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FreightCreationPolicy {
    /// New Freight is created automatically when any new artifact is discovered.
    #[default]
    Automatic,
    /// New Freight is never created automatically.
    Manual,
}

/// Criteria that must be satisfied for Freight to be created automatically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FreightCreationCriteria {
    /// Expression is an expr-lang expression that must evaluate to true for Freight to be
    /// created automatically from new artifacts following discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// A subscription to ONE OF a Git repository, a container image repository, or a Helm chart
/// repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RepoSubscription {
    /// Name optionally identifies the subscription; artifacts it discovers carry it as their
    /// subscriptionName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Git describes a subscriptions to a Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSubscription>,
    /// Image describes a subscription to container image repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSubscription>,
    /// Chart describes a subscription to a Helm chart repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartSubscription>,
}

/// How the newest commit of interest is selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CommitSelectionStrategy {
    /// The commit referenced by the lexicographically greatest tag.
    Lexical,
    /// The latest commit on the branch (or the default branch).
    #[default]
    NewestFromBranch,
    /// The commit referenced by the most recently created tag.
    NewestTag,
    /// The commit referenced by the semantically greatest tag.
    SemVer,
}

/// A subscription to a Git repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSubscription {
    /// URL is the repository's URL.
    #[serde(rename = "repoURL")]
    #[schemars(length(min = 1), regex(pattern = GIT_REPO_URL_PATTERN))]
    pub repo_url: String,
    /// CommitSelectionStrategy specifies the rules for how to identify the newest commit of
    /// interest in the repository specified by the RepoURL field.
    #[serde(default)]
    pub commit_selection_strategy: CommitSelectionStrategy,
    /// Branch references a particular branch of the repository. Only used by
    /// NewestFromBranch; when empty the repository's default branch is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = BRANCH_PATTERN))]
    pub branch: Option<String>,
    /// StrictSemvers specifies whether only "strict" semver tags (major, minor and patch all
    /// present) should be considered. Only used by SemVer.
    #[serde(default = "default_true")]
    pub strict_semvers: bool,
    /// SemverConstraint specifies constraints on what new tagged commits are considered. Only
    /// used by SemVer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_constraint: Option<String>,
    /// AllowTags is a regular expression limiting the tags considered. Deprecated: use
    /// allowTagsRegexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_tags: Option<String>,
    /// AllowTagsRegexes is a list of regular expressions limiting the tags considered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tags_regexes: Vec<String>,
    /// Singular spelling found in some Kargo v1.10 CRDs. Deprecated: use allowTagsRegexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tags_regex: Vec<String>,
    /// IgnoreTags is a list of tags to ignore. Deprecated: use ignoreTagsRegexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags: Vec<String>,
    /// IgnoreTagsRegexes is a list of regular expressions excluding tags from consideration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags_regexes: Vec<String>,
    /// Singular spelling found in some Kargo v1.10 CRDs. Deprecated: use ignoreTagsRegexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags_regex: Vec<String>,
    /// ExpressionFilter is an expr-lang expression over commit or tag metadata limiting the
    /// commits or tags considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression_filter: Option<String>,
    /// IncludePaths lists path selectors (exact, `glob:` or `regex:`/`regexp:`) whose changes
    /// trigger new Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_paths: Vec<String>,
    /// ExcludePaths lists path selectors whose changes do NOT trigger new Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_paths: Vec<String>,
    /// Since optionally limits commit discovery to commits at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Blobless enables blobless (`--filter=blob:none`) clones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobless: Option<bool>,
    /// DiscoveryLimit is the maximum number of commits discovered for this subscription.
    #[serde(default = "default_discovery_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub discovery_limit: i32,
    /// InsecureSkipTLSVerify specifies whether certificate verification errors should be
    /// ignored when connecting to the repository.
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
}

/// How the newest image of interest is selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ImageSelectionStrategy {
    /// The image currently referenced by the (mutable) tag given in `constraint`.
    Digest,
    /// The image with the lexicographically greatest tag.
    Lexical,
    /// The most recently built image.
    NewestBuild,
    /// The image with the semantically greatest tag.
    #[default]
    SemVer,
}

/// A subscription to a container image repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.semverConstraint) && has(self.constraint))",
        "message": "semverConstraint and constraint fields are mutually exclusive",
    },
    {
        "rule": "!(self.imageSelectionStrategy == 'Digest') || has(self.constraint) || has(self.semverConstraint)",
        "message": "If imageSelectionStrategy is Digest, either constraint or semverConstraint must be set",
    },
]))]
pub struct ImageSubscription {
    /// RepoURL specifies the URL of the image repository to subscribe to. The value in this
    /// field MUST NOT include an image tag.
    #[serde(rename = "repoURL")]
    #[schemars(length(min = 1), regex(pattern = IMAGE_REPO_URL_PATTERN))]
    pub repo_url: String,
    /// ImageSelectionStrategy specifies the rules for how to identify the newest version of the
    /// image specified by the RepoURL field.
    #[serde(default)]
    pub image_selection_strategy: ImageSelectionStrategy,
    /// StrictSemvers specifies whether only "strict" semver tags (major, minor and patch all
    /// present) should be considered. Only used by SemVer.
    #[serde(default = "default_true")]
    pub strict_semvers: bool,
    /// Constraint specifies strategy-specific constraints: a semver range for SemVer, the
    /// mutable tag to track for Digest; ignored by Lexical and NewestBuild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// SemverConstraint is the older name of Constraint. Deprecated: use constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_constraint: Option<String>,
    /// AllowTags is a regular expression limiting the tags considered. Deprecated: use
    /// allowTagsRegexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_tags: Option<String>,
    /// AllowTagsRegexes is a list of regular expressions limiting the tags considered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tags_regexes: Vec<String>,
    /// Singular spelling found in some Kargo v1.10 CRDs. Deprecated: use allowTagsRegexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tags_regex: Vec<String>,
    /// IgnoreTags is a list of tags to ignore. Deprecated: use ignoreTagsRegexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags: Vec<String>,
    /// IgnoreTagsRegexes is a list of regular expressions excluding tags from consideration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags_regexes: Vec<String>,
    /// Singular spelling found in some Kargo v1.10 CRDs. Deprecated: use ignoreTagsRegexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags_regex: Vec<String>,
    /// Platform (`os/arch[/variant]`) limits the images considered to that platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// CacheByTag caches image metadata by tag; only safe with immutable tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_by_tag: Option<bool>,
    /// DiscoveryLimit is the maximum number of images discovered for this subscription.
    #[serde(default = "default_discovery_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub discovery_limit: i32,
    /// InsecureSkipTLSVerify specifies whether certificate verification errors should be
    /// ignored when connecting to the repository.
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
}

impl ImageSubscription {
    /// The effective constraint: `constraint`, else the deprecated `semverConstraint`.
    pub fn effective_constraint(&self) -> Option<&str> {
        self.constraint
            .as_deref()
            .or(self.semver_constraint.as_deref())
    }
}

/// A subscription to a Helm chart repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartSubscription {
    /// RepoURL specifies the URL of a Helm chart repository: a classic HTTP(S) repository (then
    /// Name is required) or a repository within an OCI registry (then Name must be empty).
    #[serde(rename = "repoURL")]
    #[schemars(length(min = 1), regex(pattern = CHART_REPO_URL_PATTERN))]
    pub repo_url: String,
    /// Name specifies the name of a Helm chart within a classic chart repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SemverConstraint specifies constraints on what new chart versions are permissible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_constraint: Option<String>,
    /// DiscoveryLimit is the maximum number of chart versions discovered for this
    /// subscription.
    #[serde(default = "default_discovery_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub discovery_limit: i32,
    /// InsecureSkipTLSVerify specifies whether certificate verification errors should be
    /// ignored when connecting to the repository.
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
}

/// The Warehouse's most recently observed state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseStatus {
    /// Conditions contains the last observations of the Warehouse's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = conditions_list)]
    pub conditions: Vec<Condition>,
    /// LastHandledRefresh holds the value of the most recent refresh annotation handled by the
    /// controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh: Option<String>,
    /// ObservedGeneration represents the .metadata.generation that this Warehouse was
    /// reconciled against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// LastFreightID is the name of the most recent Freight produced by the Warehouse.
    #[serde(
        default,
        rename = "lastFreightID",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_freight_id: Option<String>,
    /// DiscoveredArtifacts holds the artifacts discovered by the Warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_artifacts: Option<DiscoveredArtifacts>,
}

/// Artifacts discovered by a Warehouse, newest first per subscription, in Kargo's shape
/// (`api/v1alpha1/warehouse_types.go`), so status written by Kargo is read without loss.
///
/// Atomic for server-side apply: each discovery replaces the whole record, as Kargo's does,
/// so nothing another writer (Kargo, before the move) recorded lingers next to haul's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct DiscoveredArtifacts {
    /// DiscoveredAt is the time at which the Warehouse discovered the artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_at: Option<Time>,
    /// Git holds the commits discovered for the Git subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git: Vec<GitDiscoveryResult>,
    /// Images holds the image references discovered for the image subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageDiscoveryResult>,
    /// Charts holds the chart versions discovered for the chart subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartDiscoveryResult>,
    /// Results holds the artifact references discovered for generic subscriptions (written by
    /// Kargo; haul has no generic subscriber and keeps what it reads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<DiscoveryResult>,
}

/// The result of discovery for one Git subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitDiscoveryResult {
    /// RepoURL is the repository URL of the GitSubscription.
    #[serde(rename = "repoURL")]
    #[schemars(length(min = 1))]
    pub repo_url: String,
    /// Commits discovered, newest first. Empty means discovery succeeded but found nothing.
    /// Always written, as Kargo does.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schemars(transform = without_default)]
    pub commits: Vec<DiscoveredCommit>,
    /// SubscriptionName is the name of the subscription that produced this result, when it
    /// has one. (haul before Kargo's shape wrote it as `name`.)
    #[serde(default, alias = "name", skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<String>,
    /// ObservedRefs records the remote ref state seen by the last successful discovery, letting
    /// the next one skip the fetch when nothing relevant moved.
    #[serde(
        default,
        deserialize_with = "observed_refs_or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub observed_refs: Option<GitDiscoveryRefs>,
}

/// The remote ref state relevant to a Git subscription's selection strategy: the branch head
/// for `NewestFromBranch`, the filtered tags for the tag strategies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitDiscoveryRefs {
    /// BranchHead is the unfiltered commit ID at the tip of the subscribed branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_head: Option<String>,
    /// Tags are the tags that passed the name filters, with the object IDs they reference,
    /// sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<DiscoveredRef>,
}

/// A Git ref name with the ID of the object it resolves to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoveredRef {
    /// Name is the short name of the ref (e.g. a tag such as `v1.2.3`).
    #[schemars(length(min = 1))]
    pub name: String,
    /// ID is the identifier of the object the ref points to (the tag object for an annotated
    /// tag).
    #[schemars(length(min = 1))]
    pub id: String,
}

/// A commit discovered for a Git subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredCommit {
    /// ID is the identifier of the commit (typically a SHA-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub id: Option<String>,
    /// Branch is the branch in which the commit was found (NewestFromBranch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag is the tag that resolved to this commit (tag-based strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Subject is the first line of the commit message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Author is the author of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Committer is the person who committed the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<String>,
    /// CreatorDate is the commit date, or the tagger date for annotated tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_date: Option<Time>,
}

/// The result of discovery for one image subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageDiscoveryResult {
    /// RepoURL is the repository URL of the image, as specified in the ImageSubscription.
    #[serde(rename = "repoURL")]
    #[schemars(length(min = 1))]
    pub repo_url: String,
    /// Platform is the platform constraint of the subscription, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// References discovered, newest first. Empty means discovery succeeded but found nothing.
    /// Always written, as Kargo does.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schemars(transform = without_default)]
    pub references: Vec<DiscoveredImageReference>,
    /// SubscriptionName is the name of the subscription that produced this result, when it
    /// has one. (haul before Kargo's shape wrote it as `name`.)
    #[serde(default, alias = "name", skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<String>,
}

/// An image reference discovered for an image subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredImageReference {
    /// Tag is the tag of the image.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[\w.\-\_]+$"))]
    pub tag: String,
    /// Digest is the digest of the image (of the index, for multi-platform images).
    #[schemars(length(min = 1), regex(pattern = r"^[a-z0-9]+:[a-f0-9]+$"))]
    pub digest: String,
    /// Annotations merged from the descriptor, the manifest or index and the matched platform.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// CreatedAt is the time the image was created, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

/// The result of discovery for one chart subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartDiscoveryResult {
    /// RepoURL is the repository URL of the Helm chart, as specified in the ChartSubscription.
    #[serde(rename = "repoURL")]
    #[schemars(length(min = 1))]
    pub repo_url: String,
    /// Name is the name of the Helm chart, as specified in the ChartSubscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SemverConstraint is the constraint for which versions were discovered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_constraint: Option<String>,
    /// Versions discovered, newest first. Empty means discovery succeeded but found nothing.
    /// Always written, as Kargo does.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schemars(transform = without_default)]
    pub versions: Vec<String>,
    /// SubscriptionName is the name of the subscription, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<String>,
}

/// The result of discovery for one generic subscription (Kargo's `DiscoveryResult`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryResult {
    /// The name of the subscription that discovered these results (JSON `name`, as in Kargo).
    #[serde(rename = "name")]
    #[schemars(length(min = 1))]
    pub subscription_name: String,
    /// ArtifactReferences are the versions of the artifact discovered, newest first.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schemars(transform = without_default)]
    pub artifact_references: Vec<ArtifactReference>,
}

/// Kargo's CRD declares no default for the lists it always writes; neither does haul's.
fn without_default(schema: &mut Schema) {
    schema.remove("default");
}

/// A list Go may have written as `null` (a nil slice without `omitempty`) reads as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Kargo's `observedRefs` object. haul once wrote a list of `ref=sha` strings here: that (or
/// anything else unreadable) reads as no observation, which costs one full discovery.
fn observed_refs_or_none<'de, D>(d: D) -> Result<Option<GitDiscoveryRefs>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(raw.and_then(|v| serde_json::from_value(v).ok()))
}
