//! `haul promote`, `approve`, `refresh` and `abort`: the writes a person makes, each checked
//! client side first so a refusal says why and what to do next.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::Resource;
use serde_json::json;

use super::connect::Cluster;
use super::get::step_progress;
use super::{
    AbortArgs, AbortTarget, ApproveArgs, CliError, FreightArg, PromoteArgs, RefreshArgs,
    RefreshTarget,
};
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_CREATE_ACTOR, ANNOTATION_REFRESH, ANNOTATION_STAGE,
    CONDITION_READY, Freight, LABEL_ALIAS, LABEL_STAGE, Promotion, PromotionPhase, PromotionSpec,
    Stage, StepStatus, Warehouse, shorten_label_value,
};

/// How often waits poll the API server.
const POLL: Duration = Duration::from_secs(1);

async fn get_stage(cluster: &Cluster, name: &str) -> Result<Stage, CliError> {
    let api: Api<Stage> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    api.get_opt(name)
        .await
        .map_err(CliError::api(format!("reading Stage {name}"), None))?
        .ok_or_else(|| CliError::NotFound {
            kind: "Stage",
            plural: "stages",
            name: name.to_string(),
            namespace: cluster.namespace.clone(),
        })
}

/// The Freight `arg` names, by name or by alias.
async fn get_freight(cluster: &Cluster, arg: &FreightArg) -> Result<Freight, CliError> {
    let api: Api<Freight> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let ns = &cluster.namespace;
    if let Some(name) = &arg.freight {
        return api
            .get_opt(name)
            .await
            .map_err(CliError::api(format!("reading Freight {name}"), None))?
            .ok_or_else(|| CliError::NotFound {
                kind: "Freight",
                plural: "freight",
                name: name.clone(),
                namespace: ns.clone(),
            });
    }
    let alias = arg.alias.clone().unwrap_or_default();
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(CliError::api(format!("listing Freight in {ns}"), None))?;
    all.items
        .into_iter()
        .find(|f| {
            f.alias.as_deref() == Some(alias.as_str())
                || f.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_ALIAS))
                    .is_some_and(|a| *a == alias)
        })
        .ok_or_else(|| {
            CliError::Usage(format!(
                "no Freight has the alias {alias:?} in project {ns}\nlist them with: haul get freight -n {ns}"
            ))
        })
}

fn name_of<K: Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

/// What a person can do when `freight` is not available to `stage`.
pub(crate) fn next_steps(stage: &Stage, freight: &Freight, ns: &str) -> String {
    let s = name_of(stage);
    let f = name_of(freight);
    let approve = format!("haul approve -n {ns} --freight {f} --stage {s}");
    let Some(req) = stage.spec.request_for(&freight.origin) else {
        let origins: Vec<String> = stage
            .spec
            .requested_freight
            .iter()
            .map(|r| r.origin.to_string())
            .collect();
        return format!(
            "next: Stage {s} takes Freight from {}; pick Freight from there (haul get freight -n {ns})",
            origins.join(", ")
        );
    };
    let verified = |u: &String| {
        freight
            .status
            .as_ref()
            .is_some_and(|st| st.verified_in.contains_key(u))
    };
    let unverified: Vec<&String> = req.sources.stages.iter().filter(|u| !verified(u)).collect();
    let all = matches!(
        req.sources.availability_strategy,
        Some(crate::api::AvailabilityStrategy::All)
    );
    let mut lines = Vec::new();
    if let Some(first) = unverified.first() {
        let names: Vec<&str> = unverified.iter().map(|u| u.as_str()).collect();
        let which = match (names.len(), all) {
            (1, _) => names[0].to_string(),
            (_, true) => format!("each of {}", names.join(", ")),
            (_, false) => format!("one of {}", names.join(", ")),
        };
        lines.push(format!(
            "promote it to {which} first and let it be verified there: haul promote -n {ns} --stage {first} --freight {f}"
        ));
    } else if let Some(soak) = &req.sources.required_soak_time {
        lines.push(format!(
            "wait until it has spent {soak} in {} after verification",
            req.sources.stages.join(", ")
        ));
    }
    if lines.is_empty() {
        lines.push(format!("approve it for {s}: {approve}"));
    } else {
        lines.push(format!("or approve it for {s}: {approve}"));
    }
    format!("next: {}", lines.join("\n      "))
}

/// Kargo's Promotion name: `<stage>.<ulid>.<first 7 characters of the Freight>`, lower-cased,
/// so names sort by creation time.
pub(crate) fn promotion_name(stage: &str, freight: &str) -> String {
    let short: String = freight.chars().take(7).collect();
    format!("{stage}.{}.{short}", ulid::Ulid::generate()).to_lowercase()
}

pub async fn promote(args: PromoteArgs) -> Result<(), CliError> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let (name, freight_name) = create_promotion(&cluster, &args.stage, &args.freight).await?;
    println!(
        "promotion.kargo.akuity.io/{name} created (Freight {freight_name} to Stage {})",
        args.stage
    );
    if args.wait {
        let api: Api<Promotion> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        follow(&api, &name, args.timeout, &cluster.namespace).await?;
    }
    Ok(())
}

/// Checks that the Freight is available to the Stage and creates the Promotion as the
/// cluster's user; returns the Promotion's and the Freight's names. `haul promote` and the web
/// UI both promote through this.
pub(crate) async fn create_promotion(
    cluster: &Cluster,
    stage_name: &str,
    freight_arg: &FreightArg,
) -> Result<(String, String), CliError> {
    let ns = cluster.namespace.clone();
    let stage = get_stage(cluster, stage_name).await?;
    let freight = get_freight(cluster, freight_arg).await?;
    let freight_name = name_of(&freight);
    if let Err(e) = crate::availability::check(&stage, &freight, Timestamp::now()) {
        return Err(CliError::NotAvailable {
            reason: e.to_string(),
            next: next_steps(&stage, &freight, &ns),
        });
    }
    let actor = cluster.whoami().await;
    let name = promotion_name(stage_name, &freight_name);
    let mut promotion = Promotion {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            // The Stage label and annotation Kargo's webhook always sets, also without ours.
            labels: Some(BTreeMap::from([(
                LABEL_STAGE.to_string(),
                shorten_label_value(stage_name),
            )])),
            annotations: Some(
                actor
                    .as_ref()
                    .map(|a| (ANNOTATION_CREATE_ACTOR.to_string(), a.clone()))
                    .into_iter()
                    .chain([(ANNOTATION_STAGE.to_string(), stage_name.to_string())])
                    .collect(),
            ),
            owner_references: stage.meta().uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: Stage::api_version(&()).into_owned(),
                    kind: Stage::kind(&()).into_owned(),
                    name: stage_name.to_string(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..Default::default()
        },
        spec: PromotionSpec {
            stage: stage_name.to_string(),
            freight: Some(freight_name.clone()),
            ..Default::default()
        },
        status: None,
    };
    // The Stage's shard runs it (Kargo's webhook sets this label).
    crate::controller::shard::label_for_stage(&mut promotion, &stage);
    let api: Api<Promotion> = Api::namespaced(cluster.client.clone(), &ns);
    api.create(&PostParams::default(), &promotion)
        .await
        .map_err(CliError::api(
            format!("creating Promotion {name}"),
            Some(format!(
                "promoting to Stage {stage_name} needs `create` on promotions and the `promote` verb on stages/{stage_name} in {ns} (see docs/authorization.md)"
            )),
        ))?;
    Ok((name, freight_name))
}

/// Prints each step's status as it changes until the Promotion finishes.
async fn follow(
    api: &Api<Promotion>,
    name: &str,
    timeout: Duration,
    ns: &str,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<Option<StepStatus>> = Vec::new();
    let mut last: (Option<PromotionPhase>, Option<String>) = (None, None);
    loop {
        let p = api
            .get_opt(name)
            .await
            .map_err(CliError::api(format!("reading Promotion {name}"), None))?
            .ok_or_else(|| CliError::Other(format!("Promotion {name} was deleted")))?;
        let status = p.status.unwrap_or_default();
        let phase_now = (status.phase, status.message.clone());
        if phase_now != last && !status.is_terminal() {
            if let Some(phase) = status.phase {
                match &status.message {
                    Some(m) => println!("{phase}: {m}"),
                    None => println!("{phase}"),
                }
            }
            last = phase_now;
        }
        let total = status.steps.len();
        seen.resize(total, None);
        for (i, step) in status.steps.iter().enumerate() {
            let meta = status.step_execution_metadata.get(i);
            let now = meta.and_then(|m| m.status);
            if now == seen[i] || now.is_none() {
                continue;
            }
            seen[i] = now;
            let alias = meta
                .and_then(|m| m.alias.clone())
                .or_else(|| step.r#as.clone())
                .unwrap_or_else(|| format!("step-{}", i + 1));
            let uses = step.uses.clone().unwrap_or_default();
            let message = meta
                .and_then(|m| m.message.clone())
                .filter(|_| now != Some(StepStatus::Succeeded))
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            println!(
                "  step {}/{total} {alias} ({uses}): {}{message}",
                i + 1,
                now.map(|s| s.to_string()).unwrap_or_default()
            );
        }
        if status.is_terminal() {
            let phase = status.phase.unwrap_or_default();
            let message = status.message.clone().unwrap_or_default();
            if phase == PromotionPhase::Succeeded {
                println!("Promotion {name} Succeeded ({})", step_progress(&status));
                return Ok(());
            }
            return Err(CliError::PromotionEnded {
                name: name.to_string(),
                phase: phase.to_string(),
                message,
            });
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout {
                what: format!("Promotion {name}"),
                after: timeout,
                hint: format!(
                    "it goes on in the cluster; check it with: haul get promotion {name} -n {ns} -o yaml\nno progress at all usually means no haul controller is running"
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn approve(args: ApproveArgs) -> Result<(), CliError> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let (name, newly) = approve_freight(&cluster, &args.freight, &args.stage).await?;
    if newly {
        println!(
            "freight.kargo.akuity.io/{name} approved for Stage {}",
            args.stage
        );
    } else {
        println!(
            "freight.kargo.akuity.io/{name} is already approved for Stage {}",
            args.stage
        );
    }
    Ok(())
}

/// Approves the Freight for the Stage as the cluster's user; returns the Freight's name and
/// whether it was not approved before. `haul approve` and the web UI both approve through this.
pub(crate) async fn approve_freight(
    cluster: &Cluster,
    freight_arg: &FreightArg,
    stage_name: &str,
) -> Result<(String, bool), CliError> {
    let ns = cluster.namespace.clone();
    let stage = get_stage(cluster, stage_name).await?;
    let freight = get_freight(cluster, freight_arg).await?;
    let name = name_of(&freight);
    if !stage
        .spec
        .requested_freight
        .iter()
        .any(|r| r.origin == freight.origin)
    {
        return Err(CliError::Usage(format!(
            "Stage {stage_name} does not request Freight from {}, so approving {name} for it would not make it available\n{}",
            freight.origin,
            next_steps(&stage, &freight, &ns)
        )));
    }
    if freight
        .status
        .as_ref()
        .is_some_and(|s| s.approved_for.contains_key(stage_name))
    {
        return Ok((name, false));
    }
    let api: Api<Freight> = Api::namespaced(cluster.client.clone(), &ns);
    let patch = json!({
        "status": {"approvedFor": {stage_name: {"approvedAt": Timestamp::now().to_string()}}}
    });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(CliError::api(
            format!("approving Freight {name} for Stage {stage_name}"),
            Some(format!(
                "approving needs `patch` on freights/status and the `promote` verb on stages/{stage_name} in {ns} (see docs/authorization.md)"
            )),
        ))?;
    Ok((name, true))
}

/// Asks the Stage's controller to abort its running verification: Kargo's request naming the
/// verification's ID and who asks.
pub(crate) async fn abort_verification(cluster: &Cluster, name: &str) -> Result<(), CliError> {
    let ns = cluster.namespace.clone();
    let stage = get_stage(cluster, name).await?;
    let last = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
        .and_then(|c| c.verification_history.first());
    let Some(last) = last.filter(|v| v.phase.as_deref() == Some("Running")) else {
        return Err(CliError::Usage(format!(
            "Stage {name} has no verification running; there is nothing to abort"
        )));
    };
    let mut request = json!({"id": last.id.clone().unwrap_or_default()});
    if let Some(actor) = cluster.whoami().await {
        request["actor"] = json!(actor);
    }
    let patch = json!({"metadata": {"annotations": {ANNOTATION_ABORT: request.to_string()}}});
    Api::<Stage>::namespaced(cluster.client.clone(), &ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(CliError::api(
            format!("aborting the verification of Stage {name}"),
            Some(format!("aborting needs `patch` on stages in {ns}")),
        ))?;
    Ok(())
}

/// A new refresh token: the time, as Kargo writes it.
fn token() -> String {
    Timestamp::now().to_string()
}

pub async fn refresh(args: RefreshArgs) -> Result<(), CliError> {
    match args.target {
        RefreshTarget::Warehouse {
            name,
            wait,
            timeout,
            cluster,
        } => {
            let cluster = Cluster::connect(&cluster).await?;
            let api: Api<Warehouse> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
            let token = annotate(&api, &name, "Warehouse", "warehouses", &cluster).await?;
            println!("warehouse.kargo.akuity.io/{name} refresh requested");
            if wait {
                wait_warehouse(&api, &name, &token, timeout, &cluster.namespace).await?;
            }
            Ok(())
        }
        RefreshTarget::Stage { name, cluster } => {
            let cluster = Cluster::connect(&cluster).await?;
            let api: Api<Stage> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
            annotate(&api, &name, "Stage", "stages", &cluster).await?;
            println!("stage.kargo.akuity.io/{name} refresh requested");
            Ok(())
        }
    }
}

/// Sets a new `kargo.akuity.io/refresh` token on `name`; returns it.
pub(crate) async fn annotate<K>(
    api: &Api<K>,
    name: &str,
    kind: &'static str,
    plural: &'static str,
    cluster: &Cluster,
) -> Result<String, CliError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let token = token();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_REFRESH: &token}}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(token),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(CliError::NotFound {
            kind,
            plural,
            name: name.to_string(),
            namespace: cluster.namespace.clone(),
        }),
        Err(e) => Err(CliError::api(
            format!("refreshing {kind} {name}"),
            Some(format!(
                "refreshing needs `patch` on {plural} in {}",
                cluster.namespace
            )),
        )(e)),
    }
}

async fn wait_warehouse(
    api: &Api<Warehouse>,
    name: &str,
    token: &str,
    timeout: Duration,
    ns: &str,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        let w = api
            .get_opt(name)
            .await
            .map_err(CliError::api(format!("reading Warehouse {name}"), None))?
            .ok_or_else(|| CliError::Other(format!("Warehouse {name} was deleted")))?;
        let status = w.status.unwrap_or_default();
        if status.last_handled_refresh.as_deref() == Some(token) {
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == CONDITION_READY);
            let freight = status.last_freight_id.unwrap_or_else(|| "none".into());
            return match ready {
                Some(c) if c.status != "True" => Err(CliError::Other(format!(
                    "Warehouse {name} handled the refresh but is not ready: {}",
                    c.message
                ))),
                _ => {
                    println!("warehouse.kargo.akuity.io/{name} refreshed; last Freight: {freight}");
                    Ok(())
                }
            };
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout {
                what: format!("Warehouse {name} to handle the refresh"),
                after: timeout,
                hint: format!(
                    "is a haul controller running? check with: haul get warehouse {name} -n {ns} -o yaml"
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn abort(args: AbortArgs) -> Result<(), CliError> {
    match args.target {
        AbortTarget::Promotion { name, cluster } => {
            let cluster = Cluster::connect(&cluster).await?;
            abort_promotion(&cluster, &name).await?;
            println!("promotion.kargo.akuity.io/{name} abort requested");
        }
        AbortTarget::Verification { stage, cluster } => {
            let cluster = Cluster::connect(&cluster).await?;
            abort_verification(&cluster, &stage).await?;
            println!("stage.kargo.akuity.io/{stage} verification abort requested");
        }
    }
    Ok(())
}

/// Asks the controller to terminate a Promotion that has not finished, as the cluster's user.
/// `haul abort promotion` and the web UI both abort through this.
pub(crate) async fn abort_promotion(cluster: &Cluster, name: &str) -> Result<(), CliError> {
    let ns = cluster.namespace.clone();
    let api: Api<Promotion> = Api::namespaced(cluster.client.clone(), &ns);
    let p = api
        .get_opt(name)
        .await
        .map_err(CliError::api(format!("reading Promotion {name}"), None))?
        .ok_or_else(|| CliError::NotFound {
            kind: "Promotion",
            plural: "promotions",
            name: name.to_string(),
            namespace: ns.clone(),
        })?;
    if let Some(phase) = p
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .filter(|ph| ph.is_terminal())
    {
        return Err(CliError::Usage(format!(
            "Promotion {name} has already finished ({phase}); there is nothing to abort"
        )));
    }
    let mut request = json!({"action": "terminate"});
    if let Some(actor) = cluster.whoami().await {
        request["actor"] = json!(actor);
    }
    let patch = json!({"metadata": {"annotations": {ANNOTATION_ABORT: request.to_string()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(CliError::api(
            format!("aborting Promotion {name}"),
            Some(format!("aborting needs `patch` on promotions in {ns}")),
        ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, sources: serde_json::Value) -> Stage {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name, "namespace": "p"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": sources}]}
        }))
        .expect("stage")
    }

    fn freight(status: serde_json::Value) -> Freight {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": "f0123456789", "namespace": "p"},
            "origin": {"kind": "Warehouse", "name": "w"},
            "status": status
        }))
        .expect("freight")
    }

    #[test]
    fn names_look_like_kargos() {
        let n = promotion_name("prod", "ABCDEF0123456789");
        let parts: Vec<&str> = n.split('.').collect();
        assert_eq!(parts.len(), 3, "{n}");
        assert_eq!(parts[0], "prod");
        assert_eq!(parts[1].len(), 26);
        assert_eq!(parts[2], "abcdef0");
        assert_eq!(n, n.to_lowercase());
    }

    #[test]
    fn next_steps_name_the_upstream_stage_and_the_approval() {
        let prod = stage("prod", json!({"stages": ["uat"]}));
        let text = next_steps(&prod, &freight(json!({"verifiedIn": {"dev": {}}})), "p");
        assert!(
            text.contains("promote it to uat first") && text.contains("--stage uat"),
            "{text}"
        );
        assert!(
            text.contains("haul approve -n p --freight f0123456789 --stage prod"),
            "{text}"
        );
        let other = stage("x", json!({"direct": true}));
        let mut f = freight(json!({}));
        f.origin = crate::api::FreightOrigin::warehouse("elsewhere");
        assert!(next_steps(&other, &f, "p").contains("takes Freight from Warehouse/w"));
    }
}
