//! Runs a Promotion's steps one at a time, the way Kargo's orchestrator does (reference §3.1):
//! `if` before a step first starts, config evaluated then validated, outputs kept by alias,
//! `continueOnError`, `retry` (timeout, errorThreshold), and the final phase from the step
//! statuses. The caller saves the status after every call, so a restarted controller resumes
//! at the step where it stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::{Map, Value};

use super::cluster_data::{ClusterData, Needs};
use super::inflate::{TASK_SEPARATOR, task_of};
use super::steps::{self, Refusal, StepEnv, StepError, StepSpec};
use crate::api::{
    ArtifactReference, Chart, ExpressionVariable, Freight, FreightCollection, FreightOrigin,
    GitCommit, Image, PromotionPhase, PromotionStatus, PromotionStep, Stage, StepExecutionMetadata,
    StepStatus,
};
use crate::expressions::{self, Env, Functions, PromotionContext};

/// What happened in one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A step finished; call again for the next one.
    Continue,
    /// The current step is running (or will be retried); call again after this long.
    Wait(Duration),
    /// Every step is done; the Promotion's final phase and message.
    Done(PromotionPhase, String),
    /// The current step needs something the environment withholds (a push, in `haul
    /// run-local` without `--push`): it was not started and nothing more runs. Says why.
    Stopped(String),
}

/// Default wait before calling a Running step again.
const RUNNING_POLL: Duration = Duration::from_secs(5);

/// The `Functions` expressions call during a promotion.
pub struct PromotionFunctions<'a> {
    pub freight: &'a FreightCollection,
    pub metas: &'a [StepExecutionMetadata],
    /// The task of the step being evaluated, so `status('x')` finds a sibling in the task.
    pub task: Option<&'a str>,
    /// `status.metadata` of the Project's Stages and Freight, read before evaluating a step
    /// that calls `freightMetadata`/`stageMetadata`; `None` when it does not.
    pub cluster_metadata: Option<&'a ClusterMetadata>,
    /// Secrets and ConfigMaps, read before evaluating a step that calls `secret`, `configMap`,
    /// `sharedSecret` or `sharedConfigMap`; `None` when it does not.
    pub cluster_data: Option<&'a ClusterData>,
}

/// The `status.metadata` of every Stage and Freight in a Project, by name, or why it could
/// not be read.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub stages: BTreeMap<String, Map<String, Value>>,
    pub freight: BTreeMap<String, Map<String, Value>>,
    /// Each Freight's whole `status` as JSON, for `freightStatus(name)`.
    pub freight_status: BTreeMap<String, Map<String, Value>>,
    pub unavailable: Option<String>,
}

impl ClusterMetadata {
    /// Reads the metadata from the cluster, if there is one.
    async fn load(env: &StepEnv<'_>) -> Self {
        let Some(client) = env.client else {
            return Self {
                unavailable: Some(format!(
                    "needs a cluster to read Stage and Freight metadata, and {} has none",
                    env.runner
                )),
                ..Default::default()
            };
        };
        let to_map = |m: BTreeMap<String, Value>| m.into_iter().collect::<Map<String, Value>>();
        let lp = ListParams::default();
        let stages = Api::<Stage>::namespaced(client.clone(), env.project)
            .list(&lp)
            .await;
        let freight = Api::<Freight>::namespaced(client.clone(), env.project)
            .list(&lp)
            .await;
        match (stages, freight) {
            (Ok(stages), Ok(freight)) => Self {
                stages: stages
                    .items
                    .into_iter()
                    .map(|s| (s.name_any(), to_map(s.status.unwrap_or_default().metadata)))
                    .collect(),
                freight_status: freight
                    .items
                    .iter()
                    .map(|f| {
                        let status =
                            match serde_json::to_value(f.status.clone().unwrap_or_default()) {
                                Ok(Value::Object(m)) => m,
                                _ => Map::new(),
                            };
                        (f.metadata.name.clone().unwrap_or_default(), status)
                    })
                    .collect(),
                freight: freight
                    .items
                    .into_iter()
                    .map(|f| {
                        (
                            f.metadata.name.clone().unwrap_or_default(),
                            to_map(f.status.unwrap_or_default().metadata),
                        )
                    })
                    .collect(),
                unavailable: None,
            },
            (Err(e), _) | (_, Err(e)) => Self {
                unavailable: Some(format!("reading Stage and Freight metadata: {e}")),
                ..Default::default()
            },
        }
    }

    fn lookup(
        found: Option<&Self>,
        which: fn(&Self) -> &BTreeMap<String, Map<String, Value>>,
        name: &str,
    ) -> Result<Option<Map<String, Value>>, String> {
        let m = found.ok_or("not available here")?;
        if let Some(why) = &m.unavailable {
            return Err(why.clone());
        }
        Ok(which(m).get(name).filter(|v| !v.is_empty()).cloned())
    }
}

/// Whether a step (or the promotion's vars) calls a function reading cluster metadata.
fn reads_cluster_metadata(step: &PromotionStep, vars: &[ExpressionVariable]) -> bool {
    let text = step_text(step, vars);
    text.contains("freightMetadata")
        || text.contains("stageMetadata")
        || text.contains("freightStatus")
}

/// A step's and the promotion's vars' text, scanned for the functions that read the cluster.
fn step_text(step: &PromotionStep, vars: &[ExpressionVariable]) -> String {
    format!(
        "{} {}",
        serde_json::to_string(step).unwrap_or_default(),
        serde_json::to_string(vars).unwrap_or_default()
    )
}

impl PromotionFunctions<'_> {
    fn pick<T: Clone>(
        &self,
        what: &str,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
        items: impl Fn(&crate::api::FreightReference) -> Vec<T>,
    ) -> Result<Option<T>, String> {
        let mut found: Vec<(String, T)> = Vec::new();
        for (key, f) in &self.freight.items {
            if let Some(o) = origin
                && *key != o.to_string()
            {
                continue;
            }
            for item in items(f) {
                found.push((key.clone(), item));
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop().map(|(_, v)| v)),
            _ => Err(format!(
                "more than one requested origin has a {what} from {repo_url}; pass warehouse(\"name\") to say which"
            )),
        }
    }
}

impl Functions for PromotionFunctions<'_> {
    fn image_from(
        &self,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<Image>, String> {
        self.pick("image", repo_url, origin, |f| {
            f.images
                .iter()
                .filter(|i| i.repo_url.as_deref() == Some(repo_url))
                .cloned()
                .collect()
        })
    }

    fn commit_from(
        &self,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<GitCommit>, String> {
        self.pick("commit", repo_url, origin, |f| {
            f.commits
                .iter()
                .filter(|c| c.repo_url.as_deref() == Some(repo_url))
                .cloned()
                .collect()
        })
    }

    fn chart_from(
        &self,
        repo_url: &str,
        name: Option<&str>,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<Chart>, String> {
        self.pick("chart", repo_url, origin, |f| {
            f.charts
                .iter()
                .filter(|c| {
                    c.repo_url.as_deref() == Some(repo_url)
                        && (name.is_none() || c.name.as_deref() == name)
                })
                .cloned()
                .collect()
        })
    }

    fn step_status(&self, alias: &str) -> Option<String> {
        let scoped = self.task.map(|t| format!("{t}{TASK_SEPARATOR}{alias}"));
        let find = |a: &str| {
            self.metas
                .iter()
                .find(|m| m.alias.as_deref() == Some(a))
                .and_then(|m| m.status)
                .map(|s| format!("{s:?}"))
        };
        scoped.as_deref().and_then(find).or_else(|| find(alias))
    }

    fn any_failed(&self) -> bool {
        earlier_failure(self.metas)
    }

    fn freight_metadata(&self, freight: &str) -> Result<Option<Map<String, Value>>, String> {
        ClusterMetadata::lookup(self.cluster_metadata, |m| &m.freight, freight)
    }

    fn stage_metadata(&self, stage: &str) -> Result<Option<Map<String, Value>>, String> {
        ClusterMetadata::lookup(self.cluster_metadata, |m| &m.stages, stage)
    }

    fn freight_status(&self, freight: &str) -> Result<Option<Map<String, Value>>, String> {
        let m = self.cluster_metadata.ok_or("not available here")?;
        if let Some(why) = &m.unavailable {
            return Err(why.clone());
        }
        Ok(m.freight_status.get(freight).cloned())
    }

    fn artifact_from(
        &self,
        subscription: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<ArtifactReference>, String> {
        self.pick("artifact", subscription, origin, |f| {
            f.artifacts
                .iter()
                .filter(|a| a.subscription_name == subscription)
                .take(1)
                .cloned()
                .collect()
        })
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        ClusterData::lookup(self.cluster_data.and_then(|d| d.secrets.as_ref()), name)
    }

    fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        ClusterData::lookup(self.cluster_data.and_then(|d| d.config_maps.as_ref()), name)
    }

    fn shared_secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        ClusterData::lookup(
            self.cluster_data.and_then(|d| d.shared_secrets.as_ref()),
            name,
        )
    }

    fn shared_config_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        ClusterData::lookup(
            self.cluster_data
                .and_then(|d| d.shared_config_maps.as_ref()),
            name,
        )
    }
}

/// Whether a finished step failed without `continueOnError`.
fn earlier_failure(metas: &[StepExecutionMetadata]) -> bool {
    metas.iter().any(|m| {
        matches!(m.status, Some(StepStatus::Failed | StepStatus::Errored))
            && !m.continue_on_error.unwrap_or(false)
    })
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// The final phase and message from the step statuses (Kargo's DetermineFinalPhase).
pub fn final_phase(metas: &[StepExecutionMetadata]) -> (PromotionPhase, String) {
    let worst = metas
        .iter()
        .filter(|m| !m.continue_on_error.unwrap_or(false))
        .filter_map(|m| m.status.map(|s| (s, m)))
        .filter(|(s, _)| {
            matches!(
                s,
                StepStatus::Errored | StepStatus::Failed | StepStatus::Aborted
            )
        })
        .max_by_key(|(s, _)| s.severity());
    match worst {
        None => (PromotionPhase::Succeeded, "All steps completed".into()),
        Some((s, m)) => {
            let phase = match s {
                StepStatus::Errored => PromotionPhase::Errored,
                StepStatus::Aborted => PromotionPhase::Aborted,
                _ => PromotionPhase::Failed,
            };
            let message = format!(
                "step {:?} {}: {}",
                m.alias.as_deref().unwrap_or_default(),
                format!("{s:?}").to_lowercase(),
                m.message.as_deref().unwrap_or("no message")
            );
            (phase, message)
        }
    }
}

/// Evaluates vars in order, each able to read the ones before it.
fn eval_vars(
    env: &mut Env,
    vars: &[ExpressionVariable],
    funcs: &dyn Functions,
    at: &str,
) -> Result<(), expressions::ExpressionError> {
    for v in vars {
        let raw = Value::String(v.value.clone().unwrap_or_default());
        let value = expressions::evaluate_template(&raw, env, funcs)
            .map_err(|e| e.under(&format!("{at}.{}", v.name)))?;
        env.set_var(&v.name, value);
    }
    Ok(())
}

/// The environment a step's `if` and `config` are evaluated in, as Kargo builds it: the
/// Promotion's vars (which cannot see outputs), then `outputs` and the task's own `task.outputs`,
/// then the step's vars (which can).
fn step_env(
    ctx: &PromotionContext,
    promotion_vars: &[ExpressionVariable],
    step: &PromotionStep,
    state: &Map<String, Value>,
    task: Option<&str>,
    funcs: &dyn Functions,
) -> Result<Env, expressions::ExpressionError> {
    let mut e = Env::for_promotion(ctx);
    eval_vars(&mut e, promotion_vars, funcs, "vars")?;
    e.set("outputs", Value::Object(state.clone()));
    if let Some(t) = task {
        let prefix = format!("{t}{TASK_SEPARATOR}");
        let scoped: Map<String, Value> = state
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
            .collect();
        e.set("task", serde_json::json!({ "outputs": scoped }));
    }
    eval_vars(&mut e, &step.vars, funcs, "vars")?;
    Ok(e)
}

fn parse_timeout(
    step: &PromotionStep,
    spec: Option<&StepSpec>,
) -> Result<Option<Duration>, String> {
    match step.retry.as_ref().and_then(|r| r.timeout.as_deref()) {
        Some(t) => crate::duration::parse(t)
            .map(|d| (!d.is_zero()).then_some(d))
            .map_err(|e| format!("retry.timeout: {e}")),
        None => Ok(spec.and_then(|s| s.defaults.timeout)),
    }
}

fn finish(meta: &mut StepExecutionMetadata, status: StepStatus, message: Option<String>) {
    meta.status = Some(status);
    meta.message = message;
    meta.finished_at = Some(now());
}

/// Runs (or continues) the current step and records the result in `status`.
pub async fn step_once(
    steps_list: &[PromotionStep],
    promotion_vars: &[ExpressionVariable],
    ctx: &PromotionContext,
    status: &mut PromotionStatus,
    env: &StepEnv<'_>,
) -> Progress {
    let i = status.current_step.unwrap_or(0).max(0) as usize;
    let Some(step) = steps_list.get(i) else {
        let (phase, message) = final_phase(&status.step_execution_metadata);
        return Progress::Done(phase, message);
    };
    let alias = step
        .r#as
        .clone()
        .unwrap_or_else(|| format!("step-{}", i + 1));
    let uses = step.uses.clone().unwrap_or_default();
    // Unknown steps have no spec; running one reports it.
    let spec = steps::find(&uses);
    while status.step_execution_metadata.len() <= i {
        let n = status.step_execution_metadata.len();
        status.step_execution_metadata.push(StepExecutionMetadata {
            alias: steps_list
                .get(n)
                .and_then(|s| s.r#as.clone())
                .or(Some(format!("step-{}", n + 1))),
            continue_on_error: steps_list.get(n).and_then(|s| s.continue_on_error),
            ..Default::default()
        });
    }
    let advance = |status: &mut PromotionStatus| {
        status.current_step = Some(i as i64 + 1);
        Progress::Continue
    };
    if status.step_execution_metadata[i]
        .status
        .is_some_and(|s| s.is_terminal())
    {
        return advance(status);
    }

    let state: Map<String, Value> = status
        .state
        .as_ref()
        .and_then(|s| s.as_object().cloned())
        .unwrap_or_default();
    let task = task_of(&alias).map(str::to_string);
    let mut step_ctx = ctx.clone();
    step_ctx.step_alias = Some(alias.clone());
    // A copy: the funcs read earlier steps while this step's metadata is updated.
    let earlier: Vec<StepExecutionMetadata> = status.step_execution_metadata[..i].to_vec();
    let cluster_metadata = if reads_cluster_metadata(step, promotion_vars) {
        Some(ClusterMetadata::load(env).await)
    } else {
        None
    };
    let needs = Needs::of(&step_text(step, promotion_vars));
    let cluster_data = if needs.any() {
        Some(
            ClusterData::load(
                env.client,
                env.runner,
                env.project,
                env.shared_namespace,
                needs,
            )
            .await,
        )
    } else {
        None
    };
    let funcs = PromotionFunctions {
        freight: env.freight,
        metas: &earlier,
        task: task.as_deref(),
        cluster_metadata: cluster_metadata.as_ref(),
        cluster_data: cluster_data.as_ref(),
    };

    // `if` is evaluated only before the step first starts.
    if status.step_execution_metadata[i].started_at.is_none() {
        let run = match &step.r#if {
            None => !earlier_failure(&earlier),
            Some(cond) => {
                // Kargo evaluates `if` with exactly the vars `config` sees: a task's
                // `vars.openpr` set by the Stage must decide which branch of the task runs.
                let e = match step_env(
                    &step_ctx,
                    promotion_vars,
                    step,
                    &state,
                    task.as_deref(),
                    &funcs,
                ) {
                    Ok(e) => e,
                    Err(err) => {
                        let msg = err.in_step(&alias).to_string();
                        finish(
                            &mut status.step_execution_metadata[i],
                            StepStatus::Errored,
                            Some(msg),
                        );
                        return advance(status);
                    }
                };
                match expressions::evaluate_bool(cond, &e, &funcs) {
                    Ok(b) => b,
                    Err(err) => {
                        let msg = err.under("if").in_step(&alias).to_string();
                        finish(
                            &mut status.step_execution_metadata[i],
                            StepStatus::Errored,
                            Some(msg),
                        );
                        return advance(status);
                    }
                }
            }
        };
        let meta = &mut status.step_execution_metadata[i];
        if !run {
            meta.started_at = Some(now());
            finish(
                meta,
                StepStatus::Skipped,
                Some("skipped: its if condition is false or an earlier step failed".into()),
            );
            return advance(status);
        }
        // A step this environment cannot run is not evaluated: its needs decide what happens.
        if let Some(refusal) = spec.and_then(|s| env.refusal(s.name, &s.needs)) {
            match refusal {
                Refusal::Stop(why) => return Progress::Stopped(why),
                Refusal::Skip(message) => {
                    meta.started_at = Some(now());
                    finish(meta, StepStatus::Skipped, Some(message));
                    return advance(status);
                }
                Refusal::Fail(message) => {
                    meta.started_at = Some(now());
                    finish(meta, StepStatus::Failed, Some(message));
                    return advance(status);
                }
            }
        }
        meta.started_at = Some(now());
        meta.status = Some(StepStatus::Running);
    }

    let evaluated = step_env(
        &step_ctx,
        promotion_vars,
        step,
        &state,
        task.as_deref(),
        &funcs,
    )
    .and_then(|e| {
        let config = step.config.clone().unwrap_or(Value::Null);
        expressions::evaluate_template(&config, &e, &funcs).map_err(|err| err.under("config"))
    });
    let config = match evaluated {
        Ok(c) => c,
        Err(err) => {
            let msg = err.in_step(&alias).to_string();
            finish(
                &mut status.step_execution_metadata[i],
                StepStatus::Failed,
                Some(msg),
            );
            return advance(status);
        }
    };

    let timeout = match parse_timeout(step, spec) {
        Ok(t) => t,
        Err(m) => {
            finish(
                &mut status.step_execution_metadata[i],
                StepStatus::Failed,
                Some(format!("step {alias:?}: {m}")),
            );
            return advance(status);
        }
    };
    let started = status.step_execution_metadata[i]
        .started_at
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);

    // A step called again while Running sees what it output last time (Kargo's shared state).
    let step_env = StepEnv {
        previous_output: state.get(&alias).and_then(Value::as_object),
        ..*env
    };
    let result = steps::run(&uses, config, &step_env).await;
    let threshold = step
        .retry
        .as_ref()
        .and_then(|r| r.error_threshold)
        .unwrap_or_else(|| {
            spec.map_or(1, |s| {
                i32::try_from(s.defaults.error_threshold).unwrap_or(i32::MAX)
            })
        })
        .max(1);
    let meta = &mut status.step_execution_metadata[i];
    match result {
        Ok(outcome) => match outcome.status {
            StepStatus::Running => {
                let elapsed = Duration::try_from(Timestamp::now().duration_since(started))
                    .unwrap_or_default();
                if let Some(t) = timeout
                    && elapsed >= t
                {
                    finish(
                        meta,
                        StepStatus::Errored,
                        Some(format!(
                            "step {alias:?} timed out after {t:?}: {}",
                            outcome.message.unwrap_or_default()
                        )),
                    );
                    return advance(status);
                }
                meta.status = Some(StepStatus::Running);
                meta.message = outcome.message;
                // A running step's output is kept as Kargo keeps it (git-wait-for-pr's `pr.url`
                // is how a pull request's webhook finds the Promotions waiting on it).
                if !outcome.output.is_empty() {
                    let mut state = state;
                    state.insert(alias.clone(), Value::Object(outcome.output));
                    status.state = Some(Value::Object(state));
                }
                Progress::Wait(
                    outcome
                        .retry_after
                        .unwrap_or(RUNNING_POLL)
                        .max(Duration::from_secs(1)),
                )
            }
            s => {
                finish(meta, s, outcome.message);
                let mut state = state;
                let out = Value::Object(outcome.output);
                // Some steps (compose-output) inside a task publish to the task's alias too, so
                // steps after the task can read `outputs['task'].x` (Kargo's output propagation).
                if spec.is_some_and(|s| s.outputs_to_task)
                    && let Some(t) = &task
                {
                    let entry = state
                        .entry(t.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let (Value::Object(dst), Value::Object(src)) = (entry, &out) {
                        dst.extend(src.clone());
                    }
                }
                state.insert(alias.clone(), out);
                status.state = Some(Value::Object(state));
                if let Some(h) = outcome.health_check {
                    status.health_checks.push(h);
                }
                advance(status)
            }
        },
        Err(StepError::Failed(m)) => {
            finish(meta, StepStatus::Failed, Some(m));
            advance(status)
        }
        Err(StepError::Errored(m)) => {
            finish(meta, StepStatus::Errored, Some(m));
            advance(status)
        }
        Err(StepError::Retryable(m)) => {
            let count = meta.error_count.unwrap_or(0) + 1;
            meta.error_count = Some(count);
            if count >= threshold {
                finish(
                    meta,
                    StepStatus::Errored,
                    Some(format!("{m} (after {count} attempt(s))")),
                );
                return advance(status);
            }
            meta.status = Some(StepStatus::Running);
            meta.message = Some(format!("attempt {count} of {threshold} failed: {m}"));
            Progress::Wait(Duration::from_secs(2u64.pow(count.min(6) as u32)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(alias: &str, s: StepStatus, coe: bool) -> StepExecutionMetadata {
        StepExecutionMetadata {
            alias: Some(alias.into()),
            status: Some(s),
            continue_on_error: Some(coe),
            message: Some(format!("{alias} said so")),
            ..Default::default()
        }
    }

    #[test]
    fn final_phase_is_the_worst_step_not_allowed_to_fail() {
        assert_eq!(final_phase(&[]).0, PromotionPhase::Succeeded);
        let m = [
            meta("a", StepStatus::Succeeded, false),
            meta("b", StepStatus::Failed, true),
            meta("c", StepStatus::Skipped, false),
        ];
        assert_eq!(final_phase(&m).0, PromotionPhase::Succeeded);
        let m = [
            meta("a", StepStatus::Failed, false),
            meta("b", StepStatus::Errored, false),
        ];
        let (p, msg) = final_phase(&m);
        assert_eq!(p, PromotionPhase::Errored);
        assert!(msg.contains("\"b\" errored: b said so"), "{msg}");
        assert_eq!(
            final_phase(&[meta("x", StepStatus::Aborted, false)]).0,
            PromotionPhase::Aborted
        );
    }

    #[test]
    fn functions_find_artifacts_and_refuse_ambiguity() {
        let mut fc = FreightCollection::default();
        let img = |repo: &str, tag: &str| -> Image {
            serde_json::from_value(serde_json::json!({"repoURL": repo, "tag": tag})).expect("image")
        };
        let mut a = crate::api::FreightReference::default();
        a.images.push(img("r", "1"));
        let mut b = crate::api::FreightReference::default();
        b.images.push(img("r", "2"));
        fc.items.insert("Warehouse/a".into(), a);
        let f = PromotionFunctions {
            freight: &fc,
            metas: &[],
            task: None,
            cluster_metadata: None,
            cluster_data: None,
        };
        assert_eq!(
            f.image_from("r", None).ok().flatten().and_then(|i| i.tag),
            Some("1".into())
        );
        assert_eq!(f.image_from("other", None), Ok(None));
        fc.items.insert("Warehouse/b".into(), b);
        let f = PromotionFunctions {
            freight: &fc,
            metas: &[],
            task: None,
            cluster_metadata: None,
            cluster_data: None,
        };
        assert!(f.image_from("r", None).is_err());
        let o = FreightOrigin::warehouse("b");
        assert_eq!(
            f.image_from("r", Some(&o))
                .ok()
                .flatten()
                .and_then(|i| i.tag),
            Some("2".into())
        );
    }

    /// Runs `steps` with the engine in an environment like run-local's: no cluster, no Argo
    /// CD, no pushing. Returns every call's progress and the final status.
    async fn run_without_a_cluster(steps: serde_json::Value) -> (Vec<Progress>, PromotionStatus) {
        let test_env = crate::promotion::steps::env::TestEnv::new();
        let env = test_env.env("run-local");
        let steps: Vec<PromotionStep> = serde_json::from_value(steps).expect("steps");
        let mut status = PromotionStatus::default();
        let ctx = PromotionContext::default();
        let mut seen = Vec::new();
        loop {
            let p = step_once(&steps, &[], &ctx, &mut status, &env).await;
            let last = !matches!(p, Progress::Continue);
            seen.push(p);
            if last {
                return (seen, status);
            }
        }
    }

    #[tokio::test]
    async fn needs_the_environment_lacks_skip_fail_or_stop_a_step() {
        let (seen, status) = run_without_a_cluster(serde_json::json!([
            {"uses": "argocd-update", "config": {"apps": [{"name": "a"}]}},
            {"uses": "git-push", "config": {"path": "./src"}},
            {"uses": "compose-output", "config": {"x": 1}},
        ]))
        .await;
        assert_eq!(
            seen.last(),
            Some(&Progress::Stopped(
                "git-push pushes, and run-local may not push".into()
            ))
        );
        let m = &status.step_execution_metadata;
        assert_eq!(m[0].status, Some(StepStatus::Skipped));
        assert_eq!(
            m[0].message.as_deref(),
            Some("skipped: argocd-update needs a cluster, and run-local has none")
        );
        // The push is not started, and nothing after it runs.
        assert_eq!((m[1].status, m[1].started_at.is_none()), (None, true));
        assert_eq!(m.len(), 2);
        assert_eq!(status.current_step, Some(1));

        let (seen, status) = run_without_a_cluster(serde_json::json!([
            {"uses": "set-metadata", "config": {"updates": [{"kind": "Stage", "name": "s"}]}},
        ]))
        .await;
        let m = &status.step_execution_metadata;
        assert_eq!(m[0].status, Some(StepStatus::Failed));
        assert_eq!(
            m[0].message.as_deref(),
            Some(
                "set-metadata needs a cluster (it writes the status of Stages and Freight), and run-local has none"
            )
        );
        assert!(matches!(
            seen.last(),
            Some(Progress::Done(PromotionPhase::Failed, _))
        ));
    }

    #[test]
    fn status_resolves_siblings_inside_a_task_first() {
        let metas = [
            meta("clone", StepStatus::Failed, false),
            meta("t::clone", StepStatus::Succeeded, false),
        ];
        let fc = FreightCollection::default();
        let f = PromotionFunctions {
            freight: &fc,
            metas: &metas,
            task: Some("t"),
            cluster_metadata: None,
            cluster_data: None,
        };
        assert_eq!(f.step_status("clone").as_deref(), Some("Succeeded"));
        let f = PromotionFunctions {
            freight: &fc,
            metas: &metas,
            task: None,
            cluster_metadata: None,
            cluster_data: None,
        };
        assert_eq!(f.step_status("clone").as_deref(), Some("Failed"));
        assert!(f.any_failed());
    }
}
