//! The UI's reads beyond the live snapshot, and its writes. Every write goes through the same
//! functions as `haul promote`, `approve`, `refresh` and `abort` (crate::cli::promote), made
//! with the requesting user's client, so the checks, messages and RBAC are the CLI's.

use axum::Json;
use axum::http::StatusCode;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{ANNOTATION_REVERIFY, Freight, HealthState, Project, Stage, Warehouse};
use crate::cli::promote as cli;
use crate::cli::{CliError, Cluster, FreightArg};

/// An action's refusal, as the page shows it.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub error: String,
}

pub type Reply<T> = Result<Json<T>, (StatusCode, Json<Failure>)>;

/// The HTTP status and message of a failed CLI-path action.
pub fn failure(e: CliError) -> (StatusCode, Json<Failure>) {
    let code = match &e {
        CliError::Api { code, .. } => {
            StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        CliError::NotFound { .. } => StatusCode::NOT_FOUND,
        CliError::NotAvailable { .. } | CliError::Usage(_) => StatusCode::CONFLICT,
        CliError::Connect { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        code,
        Json(Failure {
            error: e.to_string(),
        }),
    )
}

fn bad(message: String) -> (StatusCode, Json<Failure>) {
    (StatusCode::BAD_REQUEST, Json(Failure { error: message }))
}

/// A required, non-empty field of a request body.
pub fn field<'a>(
    v: &'a Option<String>,
    name: &str,
) -> Result<&'a str, (StatusCode, Json<Failure>)> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            bad(format!(
                "the request names no {name}: the field `{name}` is required"
            ))
        })
}

/// The body of every action: which objects it is about.
#[derive(Debug, Default, Deserialize)]
pub struct Target {
    pub stage: Option<String>,
    pub freight: Option<String>,
    pub warehouse: Option<String>,
    pub promotion: Option<String>,
}

/// What an action did, in words.
#[derive(Debug, Serialize)]
pub struct Done {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<String>,
}

fn by_name(freight: &str) -> FreightArg {
    FreightArg {
        freight: Some(freight.to_string()),
        alias: None,
    }
}

pub async fn promote(cluster: Cluster, t: Target) -> Reply<Done> {
    let stage = field(&t.stage, "stage")?;
    let freight = field(&t.freight, "freight")?;
    let (name, freight) = cli::create_promotion(&cluster, stage, &by_name(freight))
        .await
        .map_err(failure)?;
    Ok(Json(Done {
        message: format!("Promotion {name} created (Freight {freight} to Stage {stage})"),
        promotion: Some(name),
    }))
}

pub async fn approve(cluster: Cluster, t: Target) -> Reply<Done> {
    let stage = field(&t.stage, "stage")?;
    let freight = field(&t.freight, "freight")?;
    let (name, newly) = cli::approve_freight(&cluster, &by_name(freight), stage)
        .await
        .map_err(failure)?;
    let message = if newly {
        format!("Freight {name} approved for Stage {stage}")
    } else {
        format!("Freight {name} is already approved for Stage {stage}")
    };
    Ok(Json(Done {
        message,
        promotion: None,
    }))
}

pub async fn refresh(cluster: Cluster, t: Target) -> Reply<Done> {
    let warehouse = field(&t.warehouse, "warehouse")?;
    let api: Api<Warehouse> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    cli::annotate(&api, warehouse, "Warehouse", "warehouses", &cluster)
        .await
        .map_err(failure)?;
    Ok(Json(Done {
        message: format!("Warehouse {warehouse} refresh requested"),
        promotion: None,
    }))
}

pub async fn abort_promotion(cluster: Cluster, t: Target) -> Reply<Done> {
    let promotion = field(&t.promotion, "promotion")?;
    cli::abort_promotion(&cluster, promotion)
        .await
        .map_err(failure)?;
    Ok(Json(Done {
        message: format!("Promotion {promotion} abort requested"),
        promotion: Some(promotion.to_string()),
    }))
}

pub async fn abort_verification(cluster: Cluster, t: Target) -> Reply<Done> {
    let stage = field(&t.stage, "stage")?;
    cli::abort_verification(&cluster, stage)
        .await
        .map_err(failure)?;
    Ok(Json(Done {
        message: format!("Stage {stage} verification abort requested"),
        promotion: None,
    }))
}

/// Kargo's reverify request: the annotation naming the current Freight's latest verification
/// (and who asks), which the Stage controller handles once that verification has ended.
pub async fn reverify(cluster: Cluster, t: Target) -> Reply<Done> {
    let stage = field(&t.stage, "stage")?;
    let ns = cluster.namespace.clone();
    let api: Api<Stage> = Api::namespaced(cluster.client.clone(), &ns);
    let current = api
        .get_opt(stage)
        .await
        .map_err(|e| failure(CliError::api(format!("reading Stage {stage}"), None)(e)))?
        .ok_or_else(|| {
            failure(CliError::NotFound {
                kind: "Stage",
                plural: "stages",
                name: stage.to_string(),
                namespace: ns.clone(),
            })
        })?;
    let last = current
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
        .and_then(|c| c.verification_history.first());
    let Some(last) = last else {
        return Err(failure(CliError::Usage(format!(
            "Stage {stage} has not verified its current Freight yet; there is nothing to re-run"
        ))));
    };
    if last.phase.as_deref() == Some("Running") {
        return Err(failure(CliError::Usage(format!(
            "Stage {stage} is verifying now; wait for it to end (or abort it) before re-running"
        ))));
    }
    let mut request = json!({"id": last.id.clone().unwrap_or_default()});
    if let Some(actor) = cluster.whoami().await {
        request["actor"] = json!(actor);
    }
    let patch = json!({"metadata": {"annotations": {ANNOTATION_REVERIFY: request.to_string()}}});
    api.patch(stage, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            failure(CliError::api(
                format!("reverifying Stage {stage}"),
                Some(format!("reverifying needs `patch` on stages in {ns}")),
            )(e))
        })?;
    Ok(Json(Done {
        message: format!("Stage {stage} reverification requested"),
        promotion: None,
    }))
}

/// One piece of Freight as a promotion candidate for a Stage.
#[derive(Debug, Serialize)]
pub struct Candidate {
    pub name: String,
    pub alias: Option<String>,
    pub origin: String,
    pub available: bool,
    /// Why it is not available, as `haul promote` says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The Freight a Stage requests, newest first, each with whether it may be promoted there now
/// (crate::availability, the check `haul promote` and the admission policy make).
pub async fn candidates(cluster: Cluster, stage: String) -> Reply<Vec<Candidate>> {
    let ns = cluster.namespace.clone();
    let stages: Api<Stage> = Api::namespaced(cluster.client.clone(), &ns);
    let s = stages
        .get_opt(&stage)
        .await
        .map_err(|e| failure(CliError::api(format!("reading Stage {stage}"), None)(e)))?
        .ok_or_else(|| {
            failure(CliError::NotFound {
                kind: "Stage",
                plural: "stages",
                name: stage.clone(),
                namespace: ns.clone(),
            })
        })?;
    let all = Api::<Freight>::namespaced(cluster.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| failure(CliError::api(format!("listing Freight in {ns}"), None)(e)))?;
    let now = Timestamp::now();
    let mut items: Vec<Freight> = all
        .items
        .into_iter()
        .filter(|f| s.spec.request_for(&f.origin).is_some())
        .collect();
    items.sort_by(|a, b| {
        let t = |f: &Freight| f.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(b).cmp(&t(a))
    });
    Ok(Json(
        items
            .iter()
            .map(|f| {
                let check = crate::availability::check(&s, f, now);
                Candidate {
                    name: f.metadata.name.clone().unwrap_or_default(),
                    alias: f.alias.clone(),
                    origin: f.origin.to_string(),
                    available: check.is_ok(),
                    reason: check.err().map(|e| e.reason),
                }
            })
            .collect(),
    ))
}

/// A project on the projects page, with its Stages' health at a glance.
#[derive(Debug, Serialize)]
pub struct ProjectSummary {
    pub name: String,
    pub stages: usize,
    pub healthy: usize,
    pub unhealthy: usize,
    pub progressing: usize,
    pub promoting: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The Projects the user can list (else the kubeconfig's namespace), with Stage health.
pub async fn projects(
    client: kube::Client,
    fallback: Option<String>,
) -> Reply<Vec<ProjectSummary>> {
    let names: Vec<String> = match Api::<Project>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect(),
        // Someone allowed into one project only cannot list Projects: show theirs.
        Err(kube::Error::Api(s)) if s.code == 403 && fallback.is_some() => {
            fallback.into_iter().collect()
        }
        Err(e) => {
            return Err(failure(CliError::api(
                "listing Projects",
                Some("listing Projects needs `list` on projects.kargo.akuity.io; or open /p/<project> directly".into()),
            )(e)));
        }
    };
    let summaries = futures::stream::iter(names)
        .map(|name| {
            let client = client.clone();
            async move {
                let mut s = ProjectSummary {
                    name: name.clone(),
                    stages: 0,
                    healthy: 0,
                    unhealthy: 0,
                    progressing: 0,
                    promoting: 0,
                    error: None,
                };
                match Api::<Stage>::namespaced(client, &name)
                    .list(&ListParams::default())
                    .await
                {
                    Ok(list) => {
                        s.stages = list.items.len();
                        for st in &list.items {
                            let status = st.status.as_ref();
                            match status
                                .and_then(|x| x.health.as_ref())
                                .and_then(|h| h.status)
                            {
                                Some(HealthState::Healthy) => s.healthy += 1,
                                Some(HealthState::Unhealthy) => s.unhealthy += 1,
                                Some(HealthState::Progressing) => s.progressing += 1,
                                _ => {}
                            }
                            if status.is_some_and(|x| x.current_promotion.is_some()) {
                                s.promoting += 1;
                            }
                        }
                    }
                    Err(e) => s.error = Some(e.to_string()),
                }
                s
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    Ok(Json(summaries))
}
