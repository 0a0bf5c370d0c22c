//! Pure Project planning (Kargo's `management/projects` reconciler): what the project namespace,
//! its default user ServiceAccounts and RoleBindings, and the Project's status should be. No IO:
//! the reconciler (`super`) observes, calls these and applies what they return.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::{
    ANNOTATION_KEEP_NAMESPACE, ANNOTATION_VALUE_TRUE, CONDITION_HEALTHY, CONDITION_READY,
    CONDITION_RECONCILING, CONDITION_STALLED, Condition, FINALIZER, HealthStats, LABEL_PROJECT,
    LABEL_VALUE_TRUE, ProjectStats, ProjectStatus, ResourceStats, Stage, Warehouse,
};
use crate::controller::conditions::{self, Desired};

/// Kargo's annotation on the ServiceAccounts, Roles and RoleBindings it manages per project.
pub const ANNOTATION_RBAC_MANAGED: &str = "rbac.kargo.akuity.io/managed";

/// Reason of `Ready=False` when the project namespace exists without the project label.
pub const REASON_NAMESPACE_NOT_LABELLED: &str = "ExistingNamespaceMissingLabel";
/// Reason of `Ready=False` when the namespace could not be ensured (Kargo's).
pub const REASON_ENSURING_NAMESPACE_FAILED: &str = "EnsuringNamespaceFailed";
/// Reason of `Ready=False` when the default user roles could not be ensured (Kargo's).
pub const REASON_ENSURING_ROLES_FAILED: &str = "EnsuringDefaultUserRoles";

/// What to do about the namespace named like the Project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceAction {
    /// None exists: create it, labelled and with the finalizer.
    Create,
    /// It is the project's (labelled) but lacks the finalizer that keeps it while the Project
    /// lives: add it.
    AddFinalizer,
    /// It is the project's and complete.
    Keep,
    /// It exists and is not the project's (no label), or is being deleted: the Project cannot
    /// use it. The message names the namespace and says why.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// Decides what to do with `ns`, the namespace named `project` if it exists.
pub fn namespace_action(project: &str, ns: Option<&Namespace>) -> NamespaceAction {
    let Some(ns) = ns else {
        return NamespaceAction::Create;
    };
    if !has_project_label(&ns.metadata) {
        return NamespaceAction::Refuse {
            reason: REASON_NAMESPACE_NOT_LABELLED,
            message: format!(
                "Namespace {project:?} already exists but is not labeled as a Project namespace using label \"{LABEL_PROJECT}\": label it \"{LABEL_PROJECT}={LABEL_VALUE_TRUE}\" to adopt it"
            ),
        };
    }
    if ns.metadata.deletion_timestamp.is_some() {
        return NamespaceAction::Refuse {
            reason: REASON_ENSURING_NAMESPACE_FAILED,
            message: format!(
                "Namespace {project:?} is still being terminated; it is recreated once it is gone"
            ),
        };
    }
    if has_finalizer(&ns.metadata) {
        NamespaceAction::Keep
    } else {
        NamespaceAction::AddFinalizer
    }
}

/// Whether an object carries `kargo.akuity.io/project: "true"`.
pub fn has_project_label(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(LABEL_PROJECT))
        .is_some_and(|v| v == LABEL_VALUE_TRUE)
}

/// Whether an object carries Kargo's finalizer.
pub fn has_finalizer(meta: &ObjectMeta) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// The project namespace as Kargo creates it: labelled as a project namespace, with Kargo's
/// finalizer so that deleting the namespace alone waits for its Project to go.
pub fn new_namespace(project: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(project.to_string()),
            labels: Some(BTreeMap::from([(
                LABEL_PROJECT.to_string(),
                LABEL_VALUE_TRUE.to_string(),
            )])),
            finalizers: Some(vec![FINALIZER.to_string()]),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Whether deleting the Project leaves its namespace (and everything in it) in place: the keep
/// annotation on the Project or on the namespace, as Kargo reads it.
pub fn keep_namespace(project: &ObjectMeta, ns: &ObjectMeta) -> bool {
    let keep = |m: &ObjectMeta| {
        m.annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_KEEP_NAMESPACE))
            .is_some_and(|v| v == ANNOTATION_VALUE_TRUE)
    };
    keep(project) || keep(ns)
}

/// The ClusterRoles the default project roles are bound to (the chart's user roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRoles {
    pub admin: String,
    pub promoter: String,
    pub viewer: String,
}

impl Default for ProjectRoles {
    fn default() -> Self {
        Self {
            admin: "haul-admin".into(),
            promoter: "haul-promoter".into(),
            viewer: "haul-viewer".into(),
        }
    }
}

impl ProjectRoles {
    /// Kargo's default role names, each with the ClusterRole that grants it in haul.
    pub fn by_kargo_name(&self) -> [(&'static str, &str); 3] {
        [
            ("kargo-admin", self.admin.as_str()),
            ("kargo-promoter", self.promoter.as_str()),
            ("kargo-viewer", self.viewer.as_str()),
        ]
    }
}

fn managed_meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        annotations: Some(BTreeMap::from([(
            ANNOTATION_RBAC_MANAGED.to_string(),
            ANNOTATION_VALUE_TRUE.to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// Kargo's default ServiceAccounts of a project: `kargo-admin`, `kargo-promoter`,
/// `kargo-viewer`.
pub fn service_accounts(project: &str, roles: &ProjectRoles) -> Vec<ServiceAccount> {
    roles
        .by_kargo_name()
        .iter()
        .map(|(name, _)| ServiceAccount {
            metadata: managed_meta(name, project),
            ..ServiceAccount::default()
        })
        .collect()
}

/// One RoleBinding per default role, binding the ServiceAccount of that name to the ClusterRole
/// that grants the role. Binding ClusterRoles (instead of creating Roles as Kargo does) keeps the
/// controller's own rights to `bind` on three named ClusterRoles: it never holds, and cannot
/// grant, anything else.
pub fn role_bindings(project: &str, roles: &ProjectRoles) -> Vec<RoleBinding> {
    roles
        .by_kargo_name()
        .iter()
        .map(|(name, cluster_role)| RoleBinding {
            metadata: managed_meta(name, project),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: cluster_role.to_string(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: name.to_string(),
                namespace: Some(project.to_string()),
                ..Subject::default()
            }]),
        })
        .collect()
}

fn is_true(conds: &[Condition], type_: &str) -> bool {
    conditions::get(conds, type_).is_some_and(|c| c.status == "True")
}

/// Kargo's project stats: Warehouses and Stages (control-flow Stages not counted), each with
/// how many report `Healthy=True`.
pub fn stats<'a>(
    stages: impl IntoIterator<Item = &'a Stage>,
    warehouses: impl IntoIterator<Item = &'a Warehouse>,
) -> ProjectStats {
    let (mut wh, mut wh_healthy) = (0i64, 0i64);
    for w in warehouses {
        wh += 1;
        if w.status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, CONDITION_HEALTHY))
        {
            wh_healthy += 1;
        }
    }
    let (mut st, mut st_healthy) = (0i64, 0i64);
    for s in stages {
        if s.spec.is_control_flow() {
            continue;
        }
        st += 1;
        if s.status
            .as_ref()
            .is_some_and(|x| is_true(&x.conditions, CONDITION_HEALTHY))
        {
            st_healthy += 1;
        }
    }
    // Kargo's fields are `omitempty` int64s: a zero is absent.
    let count = |n: i64| (n != 0).then_some(n);
    let resource = |n: i64, healthy: i64| ResourceStats {
        count: count(n),
        health: Some(HealthStats {
            healthy: count(healthy),
        }),
    };
    ProjectStats {
        warehouses: Some(resource(wh, wh_healthy)),
        stages: Some(resource(st, st_healthy)),
    }
}

/// How syncing the project's namespace and roles went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// Namespace and roles are in place.
    Synced,
    /// The namespace exists and is not the project's.
    NamespaceRefused {
        reason: &'static str,
        message: String,
    },
    /// A call failed; `reason` is Kargo's for the step, `message` the API server's words.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// The Project's new status: Kargo's conditions for `sync` and, once it is ready, `stats`.
/// Transition times move only when a condition's status changes, so an unchanged project plans
/// an identical status (and the reconciler writes nothing).
pub fn status(
    previous: Option<&ProjectStatus>,
    sync: &Sync,
    stats: Option<ProjectStats>,
    generation: Option<i64>,
    now: &Time,
) -> ProjectStatus {
    let mut st = previous.cloned().unwrap_or_default();
    let conds = &mut st.conditions;
    match sync {
        Sync::Synced => {
            conditions::remove(conds, CONDITION_RECONCILING);
            conditions::remove(conds, CONDITION_STALLED);
            conditions::set(
                conds,
                Desired {
                    type_: CONDITION_READY,
                    status: true,
                    reason: "Synced",
                    message: "Project is synced and ready for use".into(),
                },
                generation,
                now,
            );
            st.stats = stats;
        }
        Sync::NamespaceRefused { reason, message } | Sync::Failed { reason, message } => {
            let stalled = matches!(sync, Sync::NamespaceRefused { .. });
            conditions::set(
                conds,
                Desired {
                    type_: CONDITION_RECONCILING,
                    status: true,
                    reason: "Syncing",
                    message: "Ensuring project namespace and permissions".into(),
                },
                generation,
                now,
            );
            if stalled {
                conditions::set(
                    conds,
                    Desired {
                        type_: CONDITION_STALLED,
                        status: true,
                        reason,
                        message: message.clone(),
                    },
                    generation,
                    now,
                );
            } else {
                conditions::remove(conds, CONDITION_STALLED);
            }
            conditions::set(
                conds,
                Desired {
                    type_: CONDITION_READY,
                    status: false,
                    reason,
                    message: message.clone(),
                },
                generation,
                now,
            );
        }
    }
    st
}

#[cfg(test)]
mod tests;
