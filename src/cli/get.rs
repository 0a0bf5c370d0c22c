//! `haul get`: Warehouses, Freight, Stages and Promotions as tables with the columns a person
//! needs (more than the CRDs' printer columns, which `kubectl get` shows), or as YAML/JSON
//! exactly as the API server returns them.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, TypeMeta};
use kube::core::Resource;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::connect::Cluster;
use super::table::{Table, age};
use super::{CliError, GetArgs, Kind, Output};
use crate::api::{
    CONDITION_READY, Condition, Freight, Promotion, PromotionStatus, Stage, StepStatus, Warehouse,
};

pub async fn run(args: GetArgs) -> Result<(), CliError> {
    let cluster = Cluster::connect(&args.cluster).await?;
    let name = args.name.as_deref();
    let out = args.output;
    match args.kind {
        Kind::Warehouses => {
            let table = ToTable::of(warehouses);
            show::<Warehouse>(&cluster, name, out, "Warehouse", "warehouses", table).await
        }
        Kind::Freight => {
            show::<Freight>(
                &cluster,
                name,
                out,
                "Freight",
                "freight",
                ToTable::of(freight),
            )
            .await
        }
        Kind::Stages => {
            show::<Stage>(&cluster, name, out, "Stage", "stages", ToTable::of(stages)).await
        }
        Kind::Promotions => {
            let table = ToTable::of(promotions).with_siblings();
            show::<Promotion>(&cluster, name, out, "Promotion", "promotions", table).await
        }
    }
}

/// How objects are shown as a table.
struct ToTable<K> {
    build: fn(&[K], bool, Timestamp) -> Table,
    /// One object's row depends on the others of its namespace (a Promotion's place in its
    /// Stage's queue): a single object is shown from the whole list.
    siblings: bool,
}

impl<K> ToTable<K> {
    fn of(build: fn(&[K], bool, Timestamp) -> Table) -> Self {
        Self {
            build,
            siblings: false,
        }
    }

    fn with_siblings(mut self) -> Self {
        self.siblings = true;
        self
    }
}

async fn show<K>(
    cluster: &Cluster,
    name: Option<&str>,
    output: Option<Output>,
    kind: &'static str,
    plural: &'static str,
    to_table: ToTable<K>,
) -> Result<(), CliError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Debug,
{
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &ar);
    let ns = &cluster.namespace;
    // A table row that depends on the other objects is made from the whole list.
    let one = name.filter(|_| !(to_table.siblings && matches!(output, None | Some(Output::Wide))));
    let mut objects = match one {
        Some(n) => match api
            .get_opt(n)
            .await
            .map_err(CliError::api(format!("getting {kind} {n}"), None))?
        {
            Some(o) => vec![o],
            None => {
                return Err(CliError::NotFound {
                    kind,
                    plural,
                    name: n.to_string(),
                    namespace: ns.clone(),
                });
            }
        },
        None => {
            let items = api
                .list(&ListParams::default())
                .await
                .map_err(CliError::api(format!("listing {plural} in {ns}"), None))?
                .items;
            match name {
                Some(n) if !items.iter().any(|o| o.metadata.name.as_deref() == Some(n)) => {
                    return Err(CliError::NotFound {
                        kind,
                        plural,
                        name: n.to_string(),
                        namespace: ns.clone(),
                    });
                }
                _ => items,
            }
        }
    };
    objects.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for o in &mut objects {
        o.types = Some(TypeMeta {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
        });
    }
    let document = |objects: Vec<DynamicObject>| -> Result<Value, CliError> {
        let to_value = |o: DynamicObject| {
            serde_json::to_value(o).map_err(|e| CliError::Other(format!("encoding: {e}")))
        };
        if name.is_some() {
            objects
                .into_iter()
                .next()
                .map(to_value)
                .unwrap_or(Ok(Value::Null))
        } else {
            let items = objects
                .into_iter()
                .map(to_value)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": items,
                "metadata": {"resourceVersion": ""},
            }))
        }
    };
    match output {
        Some(Output::Json) => {
            let text = serde_json::to_string_pretty(&document(objects)?)
                .map_err(|e| CliError::Other(format!("encoding JSON: {e}")))?;
            println!("{text}");
        }
        Some(Output::Yaml) => {
            let text = serde_saphyr::to_string(&document(objects)?)
                .map_err(|e| CliError::Other(format!("encoding YAML: {e}")))?;
            print!("{text}");
        }
        table => {
            if objects.is_empty() {
                eprintln!("No resources found in {ns} namespace.");
                return Ok(());
            }
            let typed = objects
                .into_iter()
                .map(|o| {
                    let n = o.metadata.name.clone().unwrap_or_default();
                    serde_json::to_value(o)
                        .and_then(serde_json::from_value::<K>)
                        .map_err(|e| CliError::Other(format!("{kind} {n} is malformed: {e}")))
                })
                .collect::<Result<Vec<K>, _>>()?;
            let wide = table == Some(Output::Wide);
            let mut t = (to_table.build)(&typed, wide, Timestamp::now());
            if let Some(n) = name.filter(|_| to_table.siblings) {
                t.rows.retain(|r| r.first().map(String::as_str) == Some(n));
            }
            print!("{}", t.render());
        }
    }
    Ok(())
}

/// One line of a possibly multi-line message.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ready(conditions: &[Condition]) -> (String, String) {
    conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| (c.status.clone(), one_line(&c.message)))
        .unwrap_or_default()
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

fn warehouses(items: &[Warehouse], wide: bool, now: Timestamp) -> Table {
    let mut header = vec!["NAME", "READY", "LAST FREIGHT", "MESSAGE"];
    if wide {
        header.extend(["INTERVAL", "SUBSCRIPTIONS"]);
    }
    header.push("AGE");
    let mut t = Table::new(header);
    for w in items {
        let status = w.status.clone().unwrap_or_default();
        let (ready, message) = ready(&status.conditions);
        let mut row = vec![
            name_of(&w.metadata),
            ready,
            status.last_freight_id.unwrap_or_default(),
            message,
        ];
        if wide {
            let subs: Vec<String> = w
                .spec
                .subscriptions
                .iter()
                .filter_map(|s| {
                    s.image
                        .as_ref()
                        .map(|i| format!("image:{}", i.repo_url))
                        .or_else(|| s.git.as_ref().map(|g| format!("git:{}", g.repo_url)))
                        .or_else(|| {
                            s.chart.as_ref().map(|c| match &c.name {
                                Some(n) => format!("chart:{}/{n}", c.repo_url),
                                None => format!("chart:{}", c.repo_url),
                            })
                        })
                })
                .collect();
            row.push(w.spec.interval.clone());
            row.push(subs.join(","));
        }
        row.push(age(w.metadata.creation_timestamp.as_ref(), now));
        t.rows.push(row);
    }
    t
}

/// The keys of a map, comma-separated.
fn keys<V>(m: &std::collections::BTreeMap<String, V>) -> String {
    m.keys().cloned().collect::<Vec<_>>().join(",")
}

fn freight(items: &[Freight], wide: bool, now: Timestamp) -> Table {
    let mut header = vec!["NAME", "ALIAS", "ORIGIN", "IMAGES", "VERIFIED IN"];
    if wide {
        header.extend(["CURRENTLY IN", "APPROVED FOR"]);
    }
    header.push("AGE");
    let mut t = Table::new(header);
    for f in items {
        let status = f.status.clone().unwrap_or_default();
        let alias = f
            .alias
            .clone()
            .or_else(|| {
                f.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::api::LABEL_ALIAS).cloned())
            })
            .unwrap_or_default();
        let images: Vec<String> = f
            .images
            .iter()
            .map(|i| {
                let repo = i.repo_url.clone().unwrap_or_default();
                match (&i.tag, &i.digest) {
                    (Some(tag), _) => format!("{repo}:{tag}"),
                    (None, Some(d)) => format!("{repo}@{d}"),
                    (None, None) => repo,
                }
            })
            .collect();
        let mut row = vec![
            name_of(&f.metadata),
            alias,
            f.origin.to_string(),
            images.join(","),
            keys(&status.verified_in),
        ];
        if wide {
            row.push(keys(&status.currently_in));
            row.push(keys(&status.approved_for));
        }
        row.push(age(f.metadata.creation_timestamp.as_ref(), now));
        t.rows.push(row);
    }
    t
}

fn stages(items: &[Stage], wide: bool, now: Timestamp) -> Table {
    let mut header = vec!["NAME", "CURRENT FREIGHT", "HEALTH", "READY", "MESSAGE"];
    if wide {
        header.extend(["SOURCES", "LAST PROMOTION"]);
    }
    header.push("AGE");
    let mut t = Table::new(header);
    for s in items {
        let status = s.status.clone().unwrap_or_default();
        let (ready, message) = ready(&status.conditions);
        let mut row = vec![
            name_of(&s.metadata),
            status.freight_summary.clone().unwrap_or_default(),
            status
                .health
                .as_ref()
                .and_then(|h| h.status)
                .map(|h| h.to_string())
                .unwrap_or_default(),
            ready,
            message,
        ];
        if wide {
            let many = s.spec.requested_freight.len() > 1;
            let sources: Vec<String> = s
                .spec
                .requested_freight
                .iter()
                .map(|r| {
                    let mut from: Vec<String> = Vec::new();
                    if r.sources.direct == Some(true) {
                        from.push("direct".into());
                    }
                    from.extend(r.sources.stages.iter().cloned());
                    if many {
                        format!("{}:{}", r.origin, from.join("+"))
                    } else {
                        from.join(",")
                    }
                })
                .collect();
            row.push(sources.join(" "));
            row.push(
                status
                    .last_promotion
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
            );
        }
        row.push(age(s.metadata.creation_timestamp.as_ref(), now));
        t.rows.push(row);
    }
    t
}

/// `current/total` steps: the step running now, or for a finished Promotion the step that
/// failed it (the last one otherwise).
pub(crate) fn step_progress(status: &PromotionStatus) -> String {
    let total = status.steps.len();
    if total == 0 {
        return String::new();
    }
    let current = status.current_step.unwrap_or(0).max(0) as usize;
    let shown = if status.is_terminal() {
        status
            .step_execution_metadata
            .iter()
            .position(|m| {
                matches!(
                    m.status,
                    Some(StepStatus::Failed | StepStatus::Errored | StepStatus::Aborted)
                ) && !m.continue_on_error.unwrap_or(false)
            })
            .map(|i| i + 1)
            .unwrap_or(current.min(total))
    } else {
        (current + 1).min(total)
    };
    format!("{shown}/{total}")
}

/// Where each waiting Promotion of `items` stands in its Stage's queue: (the Promotion at the
/// head, how many are ahead), by name. The controller does not write this on the Promotion
/// (rewriting every queued Promotion whenever the queue moves would cost the API server a write
/// per queued Promotion per finished one), so it is computed here from the listed Promotions,
/// in the controller's queue order.
fn queue_positions(items: &[Promotion]) -> BTreeMap<String, (String, usize)> {
    let mut by_stage: BTreeMap<&str, Vec<&Promotion>> = BTreeMap::new();
    for p in items {
        by_stage.entry(p.spec.stage.as_str()).or_default().push(p);
    }
    let mut out = BTreeMap::new();
    for queue in by_stage.into_values() {
        let queue = crate::controller::promotion::queue_order(
            queue.into_iter().map(PromotionRef).collect(),
        );
        let head = queue.first().map(|p| name_of(&p.0.metadata));
        for (pos, p) in queue.iter().enumerate().skip(1) {
            if let Some(head) = &head {
                out.insert(name_of(&p.0.metadata), (head.clone(), pos));
            }
        }
    }
    out
}

/// A borrowed Promotion for [`crate::controller::promotion::queue_order`].
struct PromotionRef<'a>(&'a Promotion);

impl AsRef<Promotion> for PromotionRef<'_> {
    fn as_ref(&self) -> &Promotion {
        self.0
    }
}

fn promotions(items: &[Promotion], wide: bool, now: Timestamp) -> Table {
    let mut header = vec!["NAME", "STAGE", "FREIGHT", "PHASE", "STEP"];
    if wide {
        header.extend(["ACTOR", "MESSAGE"]);
    }
    header.push("AGE");
    let mut t = Table::new(header);
    let queued = queue_positions(items);
    for p in items {
        let mut status = p.status.clone().unwrap_or_default();
        let place = queued.get(&name_of(&p.metadata));
        let step = match place {
            Some((_, ahead)) => format!("queued, {ahead} ahead"),
            None => step_progress(&status),
        };
        if let Some((head, ahead)) = place {
            status.message = Some(format!(
                "Waiting for Promotion {head} to finish ({ahead} ahead in the queue of Stage {})",
                p.spec.stage
            ));
        }
        let mut row = vec![
            name_of(&p.metadata),
            p.spec.stage.clone(),
            p.spec.freight.clone().unwrap_or_default(),
            status.phase.map(|ph| ph.to_string()).unwrap_or_default(),
            step,
        ];
        if wide {
            row.push(
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(crate::api::ANNOTATION_CREATE_ACTOR).cloned())
                    .unwrap_or_default(),
            );
            row.push(one_line(status.message.as_deref().unwrap_or_default()));
        }
        row.push(age(p.metadata.creation_timestamp.as_ref(), now));
        t.rows.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(status: Value) -> Promotion {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": "dev.01abc.1234567", "namespace": "p"},
            "spec": {"stage": "dev", "freight": "1234567890"},
            "status": status,
        }))
        .expect("promotion")
    }

    #[test]
    fn step_column_shows_the_running_or_failing_step() {
        let steps = json!([{"uses": "git-clone"}, {"uses": "git-commit"}, {"uses": "git-push"}]);
        let p = promotion(json!({"phase": "Running", "currentStep": 1, "steps": steps}));
        assert_eq!(step_progress(p.status.as_ref().expect("status")), "2/3");
        let p = promotion(json!({
            "phase": "Failed", "currentStep": 3, "steps": steps,
            "stepExecutionMetadata": [
                {"alias": "a", "status": "Succeeded"},
                {"alias": "b", "status": "Failed"},
                {"alias": "c", "status": "Skipped"},
            ],
        }));
        assert_eq!(step_progress(p.status.as_ref().expect("status")), "2/3");
        let p = promotion(json!({"phase": "Succeeded", "currentStep": 3, "steps": steps}));
        assert_eq!(step_progress(p.status.as_ref().expect("status")), "3/3");
        assert_eq!(step_progress(&PromotionStatus::default()), "");
    }

    #[test]
    fn queued_promotions_show_their_place_computed_from_the_list() {
        let p = |name: &str, stage: &str, created: &str, phase: Option<&str>| -> Promotion {
            serde_json::from_value(json!({
                "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
                "metadata": {"name": name, "namespace": "p", "creationTimestamp": created},
                "spec": {"stage": stage, "freight": "f"},
                "status": phase.map_or(json!({}), |ph| json!({"phase": ph})),
            }))
            .expect("promotion")
        };
        let items = [
            p("done", "dev", "2026-01-01T00:00:00Z", Some("Succeeded")),
            p("third", "dev", "2026-01-01T00:00:03Z", Some("Pending")),
            p("head", "dev", "2026-01-01T00:00:02Z", Some("Running")),
            p("second", "dev", "2026-01-01T00:00:01Z", Some("Pending")),
            p("alone", "uat", "2026-01-01T00:00:04Z", None),
        ];
        let t = promotions(&items, true, Timestamp::now());
        let row = |name: &str| t.rows.iter().find(|r| r[0] == name).cloned().expect("row");
        // Running first, then by creation time.
        assert_eq!(row("second")[4], "queued, 1 ahead");
        assert_eq!(row("third")[4], "queued, 2 ahead");
        assert_eq!(
            row("third")[6],
            "Waiting for Promotion head to finish (2 ahead in the queue of Stage dev)"
        );
        assert_eq!(row("head")[4], "");
        assert_eq!(row("alone")[4], "");
        assert_eq!(row("done")[4], "");
    }

    #[test]
    fn freight_table_lists_images_and_verification() {
        let f: Freight = serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
            "metadata": {"name": "abc", "namespace": "p"},
            "alias": "wonky-wombat",
            "origin": {"kind": "Warehouse", "name": "w"},
            "images": [{"repoURL": "r/app", "tag": "1006", "digest": "sha256:1"}],
            "status": {"verifiedIn": {"dev": {}, "uat": {}}},
        }))
        .expect("freight");
        let t = freight(&[f], false, Timestamp::now());
        let text = t.render();
        let row = text.lines().nth(1).expect("row");
        let cells: Vec<&str> = row
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "abc",
                "wonky-wombat",
                "Warehouse/w",
                "r/app:1006",
                "dev,uat",
                "<unknown>"
            ]
        );
    }
}
