//! Freight: an immutable set of artifact versions from one origin. It has no `spec`: its fields
//! sit at the top level next to `metadata` and `status`, so the root type is hand-written.

use std::collections::BTreeMap;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
        CustomResourceDefinitionSpec, CustomResourceDefinitionVersion,
        CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeStruct};
use serde_json::Value;

use super::common::{
    API_VERSION, ArtifactReference, Chart, FreightOrigin, FreightReference, GROUP, GitCommit,
    Image, MAX_ARTIFACTS, VERSION, json_value_map, normalize_crd, root_object, root_schema,
};

/// Freight represents a collection of versioned artifacts.
///
/// The name is a SHA-1 derived from the origin and the artifacts. Origin and artifacts are
/// immutable (enforced by CEL rules in the CRD); the alias and status are not.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "Freight represents a collection of versioned artifacts.",
    transform = root_object,
    extend("x-kubernetes-validations" = [
        {
            "rule": "self.origin == oldSelf.origin",
            "message": "Freight origin is immutable",
            "fieldPath": ".origin",
        },
        {
            "rule": "has(self.commits) == has(oldSelf.commits) && (!has(self.commits) || self.commits == oldSelf.commits)",
            "message": "Freight commits are immutable",
            "fieldPath": ".commits",
        },
        {
            "rule": "has(self.images) == has(oldSelf.images) && (!has(self.images) || self.images == oldSelf.images)",
            "message": "Freight images are immutable",
            "fieldPath": ".images",
        },
        {
            "rule": "has(self.charts) == has(oldSelf.charts) && (!has(self.charts) || self.charts == oldSelf.charts)",
            "message": "Freight charts are immutable",
            "fieldPath": ".charts",
        },
        {
            "rule": "has(self.artifacts) == has(oldSelf.artifacts) && (!has(self.artifacts) || self.artifacts == oldSelf.artifacts)",
            "message": "Freight artifacts are immutable",
            "fieldPath": ".artifacts",
        },
    ]),
)]
pub struct Freight {
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Alias is a human-friendly alias for a piece of Freight, kept in sync with the
    /// kargo.akuity.io/alias label. It is mutable and unique within the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Origin describes a kind of Freight in terms of its origin.
    pub origin: FreightOrigin,
    /// DiscoveredAt is the time at which this Freight was discovered/created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_at: Option<Time>,
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
    /// Status describes the current status of this Freight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FreightStatus>,
}

impl Freight {
    /// A Freight with the given name and origin and no artifacts.
    pub fn new(name: &str, origin: FreightOrigin) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            alias: None,
            origin,
            discovered_at: None,
            commits: Vec::new(),
            images: Vec::new(),
            charts: Vec::new(),
            artifacts: Vec::new(),
            status: None,
        }
    }

    /// This Freight as the reference Stages and Promotions record.
    pub fn to_reference(&self) -> FreightReference {
        FreightReference {
            name: self.metadata.name.clone(),
            origin: Some(self.origin.clone()),
            commits: self.commits.clone(),
            images: self.images.clone(),
            charts: self.charts.clone(),
            artifacts: self.artifacts.clone(),
        }
    }

    /// The CRD Kargo installs for Freight, with the immutability rules.
    pub fn crd() -> CustomResourceDefinition {
        // The schema comes from static types; a failure is a bug caught by the unit tests.
        let schema = root_schema::<Freight>().expect("Freight schema is valid JSONSchemaProps");
        normalize_crd(CustomResourceDefinition {
            metadata: ObjectMeta {
                name: Some(format!("freights.{GROUP}")),
                ..ObjectMeta::default()
            },
            spec: CustomResourceDefinitionSpec {
                group: GROUP.into(),
                names: CustomResourceDefinitionNames {
                    kind: "Freight".into(),
                    list_kind: Some("FreightList".into()),
                    plural: "freights".into(),
                    singular: Some("freight".into()),
                    ..CustomResourceDefinitionNames::default()
                },
                scope: "Namespaced".into(),
                versions: vec![CustomResourceDefinitionVersion {
                    name: VERSION.into(),
                    served: true,
                    storage: true,
                    schema: Some(CustomResourceValidation {
                        open_api_v3_schema: Some(schema),
                    }),
                    subresources: Some(CustomResourceSubresources {
                        status: Some(CustomResourceSubresourceStatus(Value::Object(
                            serde_json::Map::new(),
                        ))),
                        scale: None,
                    }),
                    additional_printer_columns: Some(vec![
                        column(
                            "Alias",
                            "string",
                            ".metadata.labels.kargo\\.akuity\\.io/alias",
                        ),
                        column("Origin (Kind)", "string", ".origin.kind"),
                        column("Origin (Name)", "string", ".origin.name"),
                        column("Age", "date", ".metadata.creationTimestamp"),
                    ]),
                    ..CustomResourceDefinitionVersion::default()
                }],
                ..CustomResourceDefinitionSpec::default()
            },
            status: None,
        })
    }
}

pub(crate) fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        ..CustomResourceColumnDefinition::default()
    }
}

// Written by hand so that `apiVersion` and `kind` are always present, as kube's derive does.
impl Serialize for Freight {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Freight", 11)?;
        s.serialize_field("apiVersion", API_VERSION)?;
        s.serialize_field("kind", "Freight")?;
        s.serialize_field("metadata", &self.metadata)?;
        match &self.alias {
            Some(alias) => s.serialize_field("alias", alias)?,
            None => s.skip_field("alias")?,
        }
        s.serialize_field("origin", &self.origin)?;
        match &self.discovered_at {
            Some(at) => s.serialize_field("discoveredAt", at)?,
            None => s.skip_field("discoveredAt")?,
        }
        serialize_list(&mut s, "commits", &self.commits)?;
        serialize_list(&mut s, "images", &self.images)?;
        serialize_list(&mut s, "charts", &self.charts)?;
        serialize_list(&mut s, "artifacts", &self.artifacts)?;
        match &self.status {
            Some(status) => s.serialize_field("status", status)?,
            None => s.skip_field("status")?,
        }
        s.end()
    }
}

fn serialize_list<S: SerializeStruct, T: Serialize>(
    s: &mut S,
    key: &'static str,
    items: &[T],
) -> Result<(), S::Error> {
    if items.is_empty() {
        s.skip_field(key)
    } else {
        s.serialize_field(key, items)
    }
}

super::resource_impls::hand_written_resource!(
    Freight,
    FreightStatus,
    kube::core::NamespaceResourceScope,
    "freights"
);

/// The current status of a piece of Freight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightStatus {
    /// CurrentlyIn describes the Stages in which this Freight is currently in use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub currently_in: BTreeMap<String, CurrentStage>,
    /// VerifiedIn describes the Stages in which this Freight has been verified through
    /// promotion and subsequent health checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verified_in: BTreeMap<String, VerifiedStage>,
    /// ApprovedFor describes the Stages for which this Freight has been approved manually, so
    /// it can be promoted there without transiting the pipeline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub approved_for: BTreeMap<String, ApprovedStage>,
    /// Metadata is a map of arbitrary metadata associated with the Freight (written by the
    /// `set-metadata` step).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "json_value_map")]
    pub metadata: BTreeMap<String, Value>,
}

/// A Stage's current use of Freight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CurrentStage {
    /// Since is the time at which the Stage most recently started using the Freight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// A Stage in which Freight has been verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedStage {
    /// VerifiedAt is the time at which the Freight was verified in the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Time>,
    /// LongestCompletedSoak is the longest time (a Go duration) the Freight was continuously
    /// in use by the Stage, updated when the Freight leaves the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_soak: Option<String>,
}

/// A Stage for which Freight has been manually approved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedStage {
    /// ApprovedAt is the time at which the Freight was approved for the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
}
