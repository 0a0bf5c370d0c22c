//! A minimal typed view of Argo CD's `Application` (`argoproj.io/v1alpha1`): the fields haul
//! reads for health and sync checks and the ones promotion steps update. It is not one of the
//! CRDs haul installs; [`application_crd`] is a stand-in for tests.
//!
//! Unknown fields are tolerated on read. `spec`, its sources and the object root keep them in
//! `extra` maps so that a read-modify-write does not drop them; status is read-only here.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
        CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceValidation,
        JSONSchemaProps,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::core::{NamespaceResourceScope, Resource};
use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

pub const GROUP: &str = "argoproj.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
pub const KIND: &str = "Application";
pub const PLURAL: &str = "applications";

// Health statuses (Argo CD `health.HealthStatusCode`).
pub const HEALTH_HEALTHY: &str = "Healthy";
pub const HEALTH_PROGRESSING: &str = "Progressing";
pub const HEALTH_DEGRADED: &str = "Degraded";
pub const HEALTH_SUSPENDED: &str = "Suspended";
pub const HEALTH_MISSING: &str = "Missing";
pub const HEALTH_UNKNOWN: &str = "Unknown";
// Sync statuses.
pub const SYNC_SYNCED: &str = "Synced";
pub const SYNC_OUT_OF_SYNC: &str = "OutOfSync";
pub const SYNC_UNKNOWN: &str = "Unknown";
// Operation phases.
pub const OPERATION_RUNNING: &str = "Running";
pub const OPERATION_TERMINATING: &str = "Terminating";
pub const OPERATION_SUCCEEDED: &str = "Succeeded";
pub const OPERATION_FAILED: &str = "Failed";
pub const OPERATION_ERROR: &str = "Error";
// Condition types that make an Application unhealthy for Kargo.
pub const CONDITION_COMPARISON_ERROR: &str = "ComparisonError";
pub const CONDITION_INVALID_SPEC_ERROR: &str = "InvalidSpecError";

/// An Argo CD Application.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Application {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ApplicationSpec,
    #[serde(default)]
    pub status: Option<ApplicationStatus>,
    /// A requested operation (e.g. a sync); Argo CD clears it once started.
    #[serde(default)]
    pub operation: Option<Operation>,
    /// Other top-level fields.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

// Written by hand so that `apiVersion` and `kind` are always present and not duplicated from
// `extra`.
impl Serialize for Application {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("apiVersion", API_VERSION)?;
        m.serialize_entry("kind", KIND)?;
        m.serialize_entry("metadata", &self.metadata)?;
        m.serialize_entry("spec", &self.spec)?;
        if let Some(status) = &self.status {
            m.serialize_entry("status", status)?;
        }
        if let Some(operation) = &self.operation {
            m.serialize_entry("operation", operation)?;
        }
        for (key, value) in &self.extra {
            if !matches!(
                key.as_str(),
                "apiVersion" | "kind" | "metadata" | "spec" | "status" | "operation"
            ) {
                m.serialize_entry(key, value)?;
            }
        }
        m.end()
    }
}

impl Resource for Application {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        API_VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Application {
    /// All sources: `spec.sources` when non-empty (multi-source Applications), else
    /// `spec.source`.
    pub fn sources(&self) -> Vec<&ApplicationSource> {
        if self.spec.sources.is_empty() {
            self.spec.source.iter().collect()
        } else {
            self.spec.sources.iter().collect()
        }
    }
}

/// The desired state of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The Argo CD AppProject.
    #[serde(default)]
    pub project: String,
    /// The single source of a single-source Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources of a multi-source Application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    #[serde(default)]
    pub destination: ApplicationDestination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<Value>,
    /// Other spec fields.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where an Application's manifests come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// Helm chart name (Helm repository sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// Name under which other sources can reference this one (`$ref`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Value>,
    /// Other source fields (directory, plugin, name, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where an Application is deployed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationDestination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The observed state of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// When the Application was last compared with its sources (health may lag behind a sync
    /// until this passes the operation's finishedAt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ApplicationCondition>,
}

/// Application health.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Comparison of the live state with the desired one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Revision compared, for single-source Applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Revisions compared, one per source, for multi-source Applications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_to: Option<Value>,
}

/// The state of the current or last operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    /// Running, Terminating, Succeeded, Failed or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncOperationResult>,
}

/// The revisions a sync operation applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOperationResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
}

/// An Application condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// An operation requested on an Application (top-level `operation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<OperationInitiator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Info>,
    /// Other operation fields (retry, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A sync operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// Other sync fields (prune, syncStrategy, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Who requested an operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationInitiator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<bool>,
}

/// A name/value pair attached to an operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    pub value: String,
}

/// A minimal `applications.argoproj.io` CRD for test clusters without Argo CD: spec, status and
/// operation are free-form objects and, as in Argo CD, there is no status subresource.
pub fn application_crd() -> CustomResourceDefinition {
    let free_object = || JSONSchemaProps {
        type_: Some("object".into()),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..JSONSchemaProps::default()
    };
    let string = || JSONSchemaProps {
        type_: Some("string".into()),
        ..JSONSchemaProps::default()
    };
    let schema = JSONSchemaProps {
        type_: Some("object".into()),
        required: Some(vec!["metadata".into(), "spec".into()]),
        properties: Some(BTreeMap::from([
            ("apiVersion".into(), string()),
            ("kind".into(), string()),
            (
                "metadata".into(),
                JSONSchemaProps {
                    type_: Some("object".into()),
                    ..JSONSchemaProps::default()
                },
            ),
            ("spec".into(), free_object()),
            ("status".into(), free_object()),
            ("operation".into(), free_object()),
        ])),
        ..JSONSchemaProps::default()
    };
    let column =
        |name: &str, json_path: &str, priority: Option<i32>| CustomResourceColumnDefinition {
            name: name.into(),
            type_: "string".into(),
            json_path: json_path.into(),
            priority,
            ..CustomResourceColumnDefinition::default()
        };
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{PLURAL}.{GROUP}")),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.into(),
            names: CustomResourceDefinitionNames {
                kind: KIND.into(),
                list_kind: Some("ApplicationList".into()),
                plural: PLURAL.into(),
                singular: Some("application".into()),
                short_names: Some(vec!["app".into(), "apps".into()]),
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
                subresources: None,
                additional_printer_columns: Some(vec![
                    column("Sync Status", ".status.sync.status", None),
                    column("Health Status", ".status.health.status", None),
                    // Argo CD hides these two unless `-o wide`.
                    column("Revision", ".status.sync.revision", Some(10)),
                    column("Project", ".spec.project", Some(10)),
                ]),
                ..CustomResourceDefinitionVersion::default()
            }],
            ..CustomResourceDefinitionSpec::default()
        },
        status: None,
    }
}
