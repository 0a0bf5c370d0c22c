//! Project: a cluster-scoped resource that reconciles to a namespace of the same name. It has no
//! `spec` (Kargo removed it in v1.7 in favour of ProjectConfig), so the root type is
//! hand-written.

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
        CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
        CustomResourceSubresources, CustomResourceValidation,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeStruct};
use serde_json::Value;

use super::{
    common::{
        API_VERSION, Condition, GROUP, VERSION, conditions_list, normalize_crd, root_object,
        root_schema,
    },
    freight::column,
};

/// Project is a resource type that reconciles to a specially labeled namespace and other
/// project-level resources.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[schemars(
    description = "Project is a resource type that reconciles to a specially labeled namespace and other project-level resources.",
    transform = root_object
)]
pub struct Project {
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Status describes the Project's current status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProjectStatus>,
}

impl Project {
    pub fn new(name: &str) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            status: None,
        }
    }

    /// The CRD Kargo installs for Projects.
    pub fn crd() -> CustomResourceDefinition {
        // The schema comes from static types; a failure is a bug caught by the unit tests.
        let schema = root_schema::<Project>().expect("Project schema is valid JSONSchemaProps");
        normalize_crd(CustomResourceDefinition {
            metadata: ObjectMeta {
                name: Some(format!("projects.{GROUP}")),
                ..ObjectMeta::default()
            },
            spec: CustomResourceDefinitionSpec {
                group: GROUP.into(),
                names: CustomResourceDefinitionNames {
                    kind: "Project".into(),
                    list_kind: Some("ProjectList".into()),
                    plural: "projects".into(),
                    singular: Some("project".into()),
                    ..CustomResourceDefinitionNames::default()
                },
                scope: "Cluster".into(),
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
                            "Ready",
                            "string",
                            r#".status.conditions[?(@.type=="Ready")].status"#,
                        ),
                        column(
                            "Status",
                            "string",
                            r#".status.conditions[?(@.type=="Ready")].message"#,
                        ),
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

// Written by hand so that `apiVersion` and `kind` are always present, as kube's derive does.
impl Serialize for Project {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Project", 4)?;
        s.serialize_field("apiVersion", API_VERSION)?;
        s.serialize_field("kind", "Project")?;
        s.serialize_field("metadata", &self.metadata)?;
        match &self.status {
            Some(status) => s.serialize_field("status", status)?,
            None => s.skip_field("status")?,
        }
        s.end()
    }
}

super::resource_impls::hand_written_resource!(
    Project,
    ProjectStatus,
    kube::core::ClusterResourceScope,
    "projects"
);

/// The current status of a Project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// Conditions contains the last observations of the Project's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = conditions_list)]
    pub conditions: Vec<Condition>,
    /// Stats contains a summary of the collective state of a Project's constituent resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ProjectStats>,
}

/// A summary of the collective state of a Project's resources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectStats {
    /// Warehouses summarizes the Project's Warehouses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouses: Option<ResourceStats>,
    /// Stages summarizes the Project's Stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<ResourceStats>,
}

/// Counts of one kind of resource in a Project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceStats {
    /// Count contains the total number of resources of this kind in the Project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Health contains a summary of the collective health of these resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStats>,
}

/// Health counts of a set of resources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthStats {
    /// Healthy contains the number of resources that are explicitly healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<i64>,
}
