//! The `argocd-update` promotion step (Kargo `argocd_updater.go`): it points the sources of
//! Argo CD Applications at new revisions and starts a sync, then reports the sync's progress on
//! later reconciles until Argo CD has applied the desired revisions.
//!
//! [`plan`] decides, from an Application as read, whether a sync must be started and builds the
//! JSON merge patch that starts it; [`run`] reads the Applications, plans every one of them
//! before changing anything, and sends the patches.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::health::ArgoCdHealthCheck;
use super::{
    ANNOTATION_REFRESH, AppRef, DEFAULT_INITIATOR, Error, PROMOTION_INFO_KEY, REFRESH_HARD, app_key,
};
use crate::api::argocd::{
    Application, ApplicationSource, Info, OPERATION_ERROR, OPERATION_FAILED, OPERATION_SUCCEEDED,
};
use crate::api::{ANNOTATION_AUTHORIZED_STAGE, HealthCheckStep, StepStatus};

/// The `info` entry Kargo adds next to the Promotion name, shown in Argo CD's UI.
const SYNC_REASON: &str = "Promotion triggered a sync of this Application resource.";
/// Field manager of our patches.
const FIELD_MANAGER: &str = "haul-controller";
/// Reads and patches per Application before giving up on optimistic-lock conflicts.
const PATCH_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The step's configuration (Kargo `argocd-update-config.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConfig {
    pub apps: Vec<AppUpdate>,
}

/// One Application (by name) or a set of them (by label selector) to update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to the controller's Argo CD namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<AppSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceUpdate>>,
}

impl AppUpdate {
    /// The source updates (none when `sources` is omitted).
    pub fn sources(&self) -> &[SourceUpdate] {
        self.sources.as_deref().unwrap_or_default()
    }

    /// The name, when one is given (Kargo treats `""` like an absent name).
    pub fn app_name(&self) -> Option<&str> {
        self.name.as_deref().filter(|n| !n.is_empty())
    }
}

/// A label selector over Applications.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum SelectorOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl AppSelector {
    /// The selector in the API server's `labelSelector` query syntax, requirements in a stable
    /// order (labels by key, then expressions as given).
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            parts.push(match e.operator {
                SelectorOperator::In => format!("{} in ({})", e.key, e.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", e.key, e.values.join(",")),
                SelectorOperator::Exists => e.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", e.key),
            });
        }
        parts.join(",")
    }
}

/// How one source of the Application(s) changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceUpdate {
    /// With `chart`, identifies the source: it must equal the source's `repoURL` (Git URLs are
    /// compared in normalized form).
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// The revision the source must be observed synced to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_revision: Option<String>,
    /// Also set the source's `targetRevision` to `desiredRevision`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub update_target_revision: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmUpdates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeUpdates>,
}

impl SourceUpdate {
    fn chart(&self) -> &str {
        self.chart.as_deref().unwrap_or_default()
    }

    fn desired(&self) -> &str {
        self.desired_revision.as_deref().unwrap_or_default()
    }

    fn describe(&self) -> String {
        match self.chart.as_deref() {
            Some(c) if !c.is_empty() => format!("repoURL {} and chart {c}", self.repo_url),
            _ => format!("repoURL {}", self.repo_url),
        }
    }
}

/// Helm parameters to set on a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmUpdates {
    pub images: Vec<HelmImageUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmImageUpdate {
    /// The Helm parameter name, e.g. `image.tag`.
    pub key: String,
    pub value: String,
}

/// Kustomize images to set on a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizeUpdates {
    #[serde(default)]
    pub images: Vec<KustomizeImageUpdate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizeImageUpdate {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
}

impl KustomizeImageUpdate {
    /// Argo CD's `kustomize.images` syntax: `repo[=newName][:tag|@digest]`.
    fn to_kustomize_image(&self) -> String {
        let mut s = self.repo_url.clone();
        if let Some(n) = self.new_name.as_deref().filter(|n| !n.is_empty()) {
            s = format!("{s}={n}");
        }
        match (
            self.digest.as_deref().filter(|d| !d.is_empty()),
            self.tag.as_deref().filter(|t| !t.is_empty()),
        ) {
            (Some(d), _) => format!("{s}@{d}"),
            (None, Some(t)) => format!("{s}:{t}"),
            (None, None) => s,
        }
    }
}

impl UpdateConfig {
    /// Parses and validates an (already evaluated) step config. Every error names the field.
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let cfg: UpdateConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                Error::Config(e.inner().to_string())
            } else {
                Error::Config(format!("{path}: {}", e.inner()))
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The checks of Kargo's JSON schema that the types alone do not make; all problems are
    /// reported at once, separated by `; `.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.apps.is_empty() {
            problems.push("apps: at least one Application must be given".to_string());
        }
        for (i, app) in self.apps.iter().enumerate() {
            let at = format!("apps[{i}]");
            match (app.app_name().is_some(), app.selector.is_some()) {
                (true, true) | (false, false) => {
                    problems.push(format!("{at}: exactly one of name or selector must be set"))
                }
                _ => {}
            }
            if app.namespace.as_deref() == Some("") {
                problems.push(format!("{at}.namespace: must not be empty when given"));
            }
            if let Some(sel) = &app.selector {
                validate_selector(sel, &format!("{at}.selector"), &mut problems);
            }
            if let Some(sources) = &app.sources {
                if sources.is_empty() {
                    problems.push(format!(
                        "{at}.sources: must list at least one source when given"
                    ));
                }
                for (j, s) in sources.iter().enumerate() {
                    validate_source(s, &format!("{at}.sources[{j}]"), &mut problems);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }
}

pub(crate) fn validate_selector(sel: &AppSelector, at: &str, problems: &mut Vec<String>) {
    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        problems.push(format!(
            "{at}: must have at least one of matchLabels or matchExpressions"
        ));
    }
    for (k, v) in &sel.match_labels {
        if !is_label_key(k) {
            problems.push(format!("{at}.matchLabels: {k:?} is not a valid label key"));
        }
        if !is_label_value(v) {
            problems.push(format!(
                "{at}.matchLabels.{k}: {v:?} is not a valid label value"
            ));
        }
    }
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        if !is_label_key(&e.key) {
            problems.push(format!("{at}.key: {:?} is not a valid label key", e.key));
        }
        match e.operator {
            SelectorOperator::In | SelectorOperator::NotIn if e.values.is_empty() => {
                problems.push(format!(
                    "{at}.values: must not be empty for operator {:?}",
                    e.operator
                ))
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !e.values.is_empty() => {
                problems.push(format!(
                    "{at}.values: must be empty for operator {:?}",
                    e.operator
                ))
            }
            _ => {}
        }
        for v in &e.values {
            if !is_label_value(v) {
                problems.push(format!("{at}.values: {v:?} is not a valid label value"));
            }
        }
    }
}

/// `[prefix/]name`: a DNS-subdomain prefix and a name of at most 63 alphanumerics, `-`, `_`, `.`.
fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// At most 63 characters: alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn is_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_source(s: &SourceUpdate, at: &str, problems: &mut Vec<String>) {
    if s.repo_url.is_empty() {
        problems.push(format!("{at}.repoURL: must not be empty"));
    }
    if s.chart.as_deref() == Some("") {
        problems.push(format!("{at}.chart: must not be empty when given"));
    }
    if s.desired_revision.as_deref() == Some("") {
        problems.push(format!(
            "{at}.desiredRevision: must not be empty when given"
        ));
    }
    if s.update_target_revision && s.desired().is_empty() {
        problems.push(format!(
            "{at}.desiredRevision: required when updateTargetRevision is true"
        ));
    }
    if let Some(h) = &s.helm {
        if h.images.is_empty() {
            problems.push(format!("{at}.helm.images: must list at least one image"));
        }
        for (k, img) in h.images.iter().enumerate() {
            if img.key.is_empty() {
                problems.push(format!("{at}.helm.images[{k}].key: must not be empty"));
            }
        }
    }
    if let Some(kz) = &s.kustomize {
        for (k, img) in kz.images.iter().enumerate() {
            let at = format!("{at}.kustomize.images[{k}]");
            if img.repo_url.is_empty() {
                problems.push(format!("{at}.repoURL: must not be empty"));
            }
            let tag = img.tag.as_deref().is_some_and(|t| !t.is_empty());
            let digest = img.digest.as_deref().is_some_and(|d| !d.is_empty());
            if tag && digest {
                problems.push(format!("{at}: set at most one of tag or digest"));
            }
            if img.new_name.as_deref() == Some("") {
                problems.push(format!("{at}.newName: must not be empty when given"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------------

// The annotation is parsed in one place, shared with the controllers' watches.
pub use super::authorized_stage::{StageRef, authorize};

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

/// Where an Application stands with respect to this Promotion's sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanState {
    /// No usable operation: a sync is to be started with the plan's patch.
    Sync,
    /// An operation not started for this Promotion is pending or running; it is waited out,
    /// then replaced.
    WaitingForOtherOperation,
    /// The sync this Promotion started is pending or running.
    Running,
    /// The sync this Promotion started applied the desired revisions.
    Succeeded,
    /// The sync this Promotion started failed; the message carries Argo CD's.
    Failed,
}

/// The decision for one Application.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The Application and the revisions its sources should be synced to.
    pub app: AppRef,
    pub state: PlanState,
    /// True exactly when `state` is [`PlanState::Sync`]; the patch is then set.
    pub must_sync: bool,
    /// Why, for people: names the Application.
    pub message: String,
    /// The JSON merge patch that starts the sync.
    pub patch: Option<Value>,
}

impl Plan {
    /// The step status this plan contributes once carried out.
    pub fn step_status(&self) -> StepStatus {
        match self.state {
            PlanState::Succeeded => StepStatus::Succeeded,
            PlanState::Failed => StepStatus::Errored,
            PlanState::Sync | PlanState::WaitingForOtherOperation | PlanState::Running => {
                StepStatus::Running
            }
        }
    }
}

/// Decides what to do about one authorized Application (Kargo `mustPerformUpdate`) and, when
/// a sync is needed, builds the merge patch that starts it. Errors when the Application is not
/// authorized for `stage` or a source update matches none of its sources.
pub fn plan(
    app: &Application,
    stage: &StageRef,
    promotion: &str,
    actor: Option<&str>,
    update: &AppUpdate,
) -> Result<Plan, Error> {
    authorize(app, stage)?;
    let key = app_key(app);
    let desired = desired_revisions(update, &app.sources());
    let desired_sources = build_desired_sources(update, app)?;
    let app_ref = AppRef {
        name: app.metadata.name.clone().unwrap_or_default(),
        namespace: app.metadata.namespace.clone().unwrap_or_default(),
        desired_revisions: desired.clone(),
    };
    let (state, message) = decide(app, &key, promotion, &desired);
    let patch = (state == PlanState::Sync)
        .then(|| sync_patch(app, &desired_sources, &desired, promotion, actor));
    Ok(Plan {
        app: app_ref,
        must_sync: state == PlanState::Sync,
        state,
        message,
        patch,
    })
}

fn promotion_of(info: &[Info]) -> Option<&str> {
    info.iter()
        .find(|i| i.name == PROMOTION_INFO_KEY)
        .map(|i| i.value.as_str())
}

/// The Promotion named in a raw `operationState.operation`, and who initiated it.
fn operation_origin(op: Option<&Value>) -> (Option<String>, String) {
    let promotion = op
        .and_then(|o| o.get("info"))
        .and_then(Value::as_array)
        .and_then(|infos| {
            infos
                .iter()
                .find(|i| i.get("name").and_then(Value::as_str) == Some(PROMOTION_INFO_KEY))
        })
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let who = op
        .and_then(|o| o.pointer("/initiatedBy/username"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let automated = op
                .and_then(|o| o.pointer("/initiatedBy/automated"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if automated {
                "Argo CD (automated sync)".to_string()
            } else {
                "an unknown user".to_string()
            }
        });
    (promotion, who)
}

fn initiator_name(who: &str, promotion: Option<&str>) -> String {
    match promotion {
        Some(p) => format!("{who} for Promotion {p}"),
        None => who.to_string(),
    }
}

fn decide(
    app: &Application,
    key: &str,
    promotion: &str,
    desired: &[String],
) -> (PlanState, String) {
    // A requested operation that Argo CD has not finished yet (it clears `operation` when the
    // operation completes). Kargo looks only at operationState; checking this too keeps a
    // second reconcile from re-sending the patch before Argo CD picks the operation up.
    if let Some(op) = &app.operation {
        let op_promotion = promotion_of(&op.info);
        if op_promotion == Some(promotion) {
            return (
                PlanState::Running,
                format!(
                    "Application {key}: the sync started by Promotion {promotion} is in progress"
                ),
            );
        }
        let who = op
            .initiated_by
            .as_ref()
            .and_then(|i| i.username.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "an unknown user".to_string());
        return (
            PlanState::WaitingForOtherOperation,
            format!(
                "Application {key}: waiting for the operation requested by {} to finish before starting a sync",
                initiator_name(&who, op_promotion)
            ),
        );
    }
    let Some(st) = app.status.as_ref().and_then(|s| s.operation_state.as_ref()) else {
        return (
            PlanState::Sync,
            format!("Application {key}: no operation recorded; starting a sync"),
        );
    };
    let phase = st.phase.as_deref().unwrap_or_default();
    let completed = matches!(
        phase,
        OPERATION_SUCCEEDED | OPERATION_FAILED | OPERATION_ERROR
    );
    let (op_promotion, who) = operation_origin(st.operation.as_ref());
    if op_promotion.as_deref() != Some(promotion) {
        let by = initiator_name(&who, op_promotion.as_deref());
        if !completed {
            return (
                PlanState::WaitingForOtherOperation,
                format!(
                    "Application {key}: waiting for the operation started by {by} ({}) to finish before starting a sync",
                    if phase.is_empty() {
                        "phase unknown"
                    } else {
                        phase
                    }
                ),
            );
        }
        return (
            PlanState::Sync,
            format!("Application {key}: the last operation was started by {by}; starting a sync"),
        );
    }
    if !completed {
        return (
            PlanState::Running,
            format!(
                "Application {key}: the sync started by Promotion {promotion} is {}",
                if phase.is_empty() {
                    "in progress"
                } else {
                    phase
                }
            ),
        );
    }
    if phase != OPERATION_SUCCEEDED {
        let why = st
            .message
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or("no message");
        return (
            PlanState::Failed,
            format!("Argo CD Application {key} failed to sync ({phase}): {why}"),
        );
    }
    let Some(result) = st.sync_result.as_ref() else {
        return (
            PlanState::Sync,
            format!(
                "Application {key}: the last sync finished without a sync result; starting another"
            ),
        );
    };
    if desired.iter().all(String::is_empty) {
        return (PlanState::Succeeded, format!("Application {key} synced"));
    }
    let observed: Vec<String> = if result.revisions.is_empty() {
        vec![result.revision.clone().unwrap_or_default()]
    } else {
        result.revisions.clone()
    };
    let mismatch = desired.iter().enumerate().any(|(i, want)| {
        !want.is_empty() && observed.get(i).map(String::as_str) != Some(want.as_str())
    });
    if mismatch {
        return (
            PlanState::Sync,
            format!(
                "Application {key}: the last sync applied revisions {observed:?}, not the desired {desired:?}; starting another"
            ),
        );
    }
    (
        PlanState::Succeeded,
        format!("Application {key} synced to {}", join_nonempty(desired)),
    )
}

fn join_nonempty(revs: &[String]) -> String {
    revs.iter()
        .filter(|r| !r.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a source update targets a source: Helm chart sources by exact `repoURL` and
/// `chart`, Git sources by normalized `repoURL`.
fn source_matches(update: &SourceUpdate, src: &ApplicationSource) -> bool {
    let src_chart = src.chart.as_deref().unwrap_or_default();
    if !src_chart.is_empty() || !update.chart().is_empty() {
        src.repo_url == update.repo_url && src_chart == update.chart()
    } else {
        crate::urls::normalize_git(&src.repo_url) == crate::urls::normalize_git(&update.repo_url)
    }
}

/// One desired revision per source of the Application (`""` where no update says), in the
/// order of its sources (Kargo `getDesiredRevisions`).
pub fn desired_revisions(update: &AppUpdate, sources: &[&ApplicationSource]) -> Vec<String> {
    sources
        .iter()
        .map(|src| {
            update
                .sources()
                .iter()
                .find(|u| source_matches(u, src))
                .map(|u| u.desired().to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// The Application's sources with every source update applied; each update goes to the first
/// source it matches, and one that matches none is an error.
fn build_desired_sources(
    update: &AppUpdate,
    app: &Application,
) -> Result<Vec<ApplicationSource>, Error> {
    let mut sources: Vec<ApplicationSource> = app.sources().into_iter().cloned().collect();
    for su in update.sources() {
        let Some(idx) = sources.iter().position(|s| source_matches(su, s)) else {
            let have: Vec<String> = sources
                .iter()
                .map(|s| match s.chart.as_deref() {
                    Some(c) if !c.is_empty() => format!("{} (chart {c})", s.repo_url),
                    _ => s.repo_url.clone(),
                })
                .collect();
            return Err(Error::SourceMismatch(format!(
                "Application {} has no source matching the update for {}; its sources are: {}",
                app_key(app),
                su.describe(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )));
        };
        apply_source_update(su, &mut sources[idx]);
    }
    Ok(sources)
}

fn apply_source_update(su: &SourceUpdate, src: &mut ApplicationSource) {
    if su.update_target_revision && !su.desired().is_empty() {
        src.target_revision = Some(su.desired().to_string());
    }
    if let Some(kz) = su.kustomize.as_ref().filter(|k| !k.images.is_empty()) {
        with_array(&mut src.kustomize, "images", |images| {
            for img in &kz.images {
                let new = Value::String(img.to_kustomize_image());
                match images
                    .iter_mut()
                    .find(|v| v.as_str().map(kustomize_image_name) == Some(img.repo_url.as_str()))
                {
                    Some(existing) => *existing = new,
                    None => images.push(new),
                }
            }
        });
    }
    if let Some(h) = su.helm.as_ref().filter(|h| !h.images.is_empty()) {
        with_array(&mut src.helm, "parameters", |params| {
            for img in &h.images {
                match params
                    .iter_mut()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(img.key.as_str()))
                {
                    Some(Value::Object(p)) => {
                        p.insert("value".into(), Value::String(img.value.clone()));
                    }
                    Some(other) => *other = json!({"name": img.key, "value": img.value}),
                    None => params.push(json!({"name": img.key, "value": img.value})),
                }
            }
        });
    }
}

/// Edits the array at `slot.key`, making `slot` an object and the key an array first if needed.
fn with_array(slot: &mut Option<Value>, key: &str, edit: impl FnOnce(&mut Vec<Value>)) {
    let mut obj = match slot.take() {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut items = match obj.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    edit(&mut items);
    obj.insert(key.to_string(), Value::Array(items));
    *slot = Some(Value::Object(obj));
}

/// The image an Argo CD `kustomize.images` entry overrides: the part before `=`, or the
/// reference without its tag or digest.
fn kustomize_image_name(entry: &str) -> &str {
    if let Some((name, _)) = entry.split_once('=') {
        return name;
    }
    let no_digest = entry.split_once('@').map_or(entry, |(n, _)| n);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// The `operation` to request, shaped as Argo CD's API writes it (empty fields omitted).
fn new_operation(
    app: &Application,
    desired: &[String],
    promotion: &str,
    actor: Option<&str>,
) -> Value {
    let (username, automated) = match actor.filter(|a| !a.is_empty()) {
        // A person promoted: Argo CD then applies sync windows as for a manual sync.
        Some(a) => (a, false),
        None => (DEFAULT_INITIATOR, true),
    };
    let mut initiated_by = json!({ "username": username });
    if automated {
        initiated_by["automated"] = Value::Bool(true);
    }
    let mut sync = Map::new();
    // A single-source sync names the revision, as Argo CD's API does; multi-source syncs use
    // each source's targetRevision.
    if app.spec.sources.is_empty()
        && app.spec.source.is_some()
        && let Some(rev) = desired.first().filter(|r| !r.is_empty())
    {
        sync.insert("revision".into(), Value::String(rev.clone()));
    }
    let policy = app.spec.sync_policy.as_ref();
    if let Some(opts) = policy
        .and_then(|p| p.get("syncOptions"))
        .filter(|o| o.as_array().is_some_and(|a| !a.is_empty()))
    {
        sync.insert("syncOptions".into(), opts.clone());
    }
    let mut op = json!({
        "initiatedBy": initiated_by,
        "info": [
            {"name": "Reason", "value": SYNC_REASON},
            {"name": PROMOTION_INFO_KEY, "value": promotion},
        ],
        "sync": sync,
    });
    if let Some(retry) = policy.and_then(|p| p.get("retry")).filter(|r| !r.is_null()) {
        op["retry"] = retry.clone();
    }
    op
}

/// RFC 7386 merge patch turning `old` into `new` (keys missing from `new` become `null`).
pub fn merge_patch_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, ov) in o {
                match n.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(nv) if nv != ov => {
                        patch.insert(k.clone(), merge_patch_diff(ov, nv));
                    }
                    Some(_) => {}
                }
            }
            for (k, nv) in n {
                if !o.contains_key(k) {
                    patch.insert(k.clone(), nv.clone());
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// The merge patch that starts a sync (Kargo `syncApplication`): a hard refresh, the updated
/// source(s), a new `operation`, and `status.operationState` cleared (argo-cd#20875). It
/// carries the resourceVersion read, so it fails rather than overwrite a concurrent change.
fn sync_patch(
    app: &Application,
    desired_sources: &[ApplicationSource],
    desired: &[String],
    promotion: &str,
    actor: Option<&str>,
) -> Value {
    let mut metadata = json!({ "annotations": { ANNOTATION_REFRESH: REFRESH_HARD } });
    if let Some(rv) = &app.metadata.resource_version {
        metadata["resourceVersion"] = Value::String(rv.clone());
    }
    let mut patch = json!({ "metadata": metadata });

    let (old_spec, new_spec) = if !app.spec.sources.is_empty() {
        (
            json!({ "sources": app.spec.sources }),
            json!({ "sources": desired_sources }),
        )
    } else if let (Some(src), Some(new)) = (&app.spec.source, desired_sources.first()) {
        (json!({ "source": src }), json!({ "source": new }))
    } else {
        (json!({}), json!({}))
    };
    let spec = merge_patch_diff(&old_spec, &new_spec);
    if spec.as_object().is_some_and(|m| !m.is_empty()) {
        patch["spec"] = spec;
    }

    let op = new_operation(app, desired, promotion, actor);
    patch["operation"] = match &app.operation {
        Some(old) => merge_patch_diff(&serde_json::to_value(old).unwrap_or(Value::Null), &op),
        None => op,
    };

    if app
        .status
        .as_ref()
        .is_some_and(|s| s.operation_state.is_some())
    {
        patch["status"] = json!({ "operationState": null });
    }
    patch
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/// The result of one run of the step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    /// Running (call again later), Succeeded, or Errored (a sync failed).
    pub status: StepStatus,
    /// One line per Application, separated by `; `.
    pub message: String,
    /// The Applications updated, for the health check.
    pub apps: Vec<AppRef>,
}

impl StepOutcome {
    /// The health check record to store on the Promotion (see [`health_check_record`]).
    pub fn health_check(&self) -> Value {
        health_check_record(&self.apps)
    }

    /// The health check to store on the Promotion, typed.
    pub fn health_check_step(&self) -> HealthCheckStep {
        ArgoCdHealthCheck::new(self.apps.clone()).record()
    }
}

/// The health check Kargo stores for this step, as JSON:
/// `{uses: "argocd-update", config: {apps: [{name, namespace, desiredRevisions}]}}`.
pub fn health_check_record(apps: &[AppRef]) -> Value {
    let record = ArgoCdHealthCheck::new(apps.to_vec()).record();
    json!({ "uses": record.uses, "config": record.config })
}

fn api_for(client: &kube::Client, namespace: &str) -> Api<Application> {
    Api::namespaced(client.clone(), namespace)
}

/// Resolves one config entry to the authorized Applications it names.
async fn resolve(
    client: &kube::Client,
    namespace: &str,
    stage: &StageRef,
    update: &AppUpdate,
) -> Result<Vec<Application>, Error> {
    let api = api_for(client, namespace);
    if let Some(name) = update.app_name() {
        let key = format!("{namespace}/{name}");
        let app = api
            .get_opt(name)
            .await
            .map_err(|source| Error::Kube {
                action: "get",
                app: key.clone(),
                source,
            })?
            .ok_or(Error::NotFound(key))?;
        authorize(&app, stage)?;
        return Ok(vec![app]);
    }
    let Some(selector) = &update.selector else {
        return Err(Error::Config(
            "exactly one of name or selector must be set".into(),
        ));
    };
    let query = selector.to_query();
    let list = api
        .list(&ListParams::default().labels(&query))
        .await
        .map_err(|source| Error::Kube {
            action: "list",
            app: format!("{namespace}/* matching {query}"),
            source,
        })?;
    if list.items.is_empty() {
        return Err(Error::NoMatch(format!(
            "no Argo CD Application in namespace {namespace} matches the selector {query}"
        )));
    }
    let total = list.items.len();
    let mut authorized = Vec::new();
    let mut refused = Vec::new();
    for app in list.items {
        match authorize(&app, stage) {
            Ok(()) => authorized.push(app),
            Err(e) => {
                tracing::info!(app = %app_key(&app), stage = %stage, reason = %e, "skipping unauthorized Argo CD Application");
                refused.push(app_key(&app));
            }
        }
    }
    if authorized.is_empty() {
        return Err(Error::Unauthorized(format!(
            "{total} Argo CD Application(s) in namespace {namespace} match the selector {query} ({}), but none is authorized for Stage {stage}: add the annotation {ANNOTATION_AUTHORIZED_STAGE}: {stage} to the ones to update",
            refused.join(", ")
        )));
    }
    Ok(authorized)
}

/// Runs the step: reads the Applications, plans every one (so that an unauthorized App or a
/// source update that does not apply stops the step before anything changes), starts the syncs
/// that are needed, and reports the combined state. Re-entrant: on later reconciles it
/// recognises the operations it started and reports Running or Succeeded without syncing again.
///
/// `Err` means the step could not proceed (see [`Error::is_terminal`]); a failed sync is an
/// `Ok` outcome with status Errored and Argo CD's message.
pub async fn run(
    client: &kube::Client,
    default_namespace: &str,
    project: &str,
    stage: &str,
    promotion: &str,
    actor: Option<&str>,
    config: &UpdateConfig,
) -> Result<StepOutcome, Error> {
    config.validate()?;
    let stage = StageRef::new(project, stage);
    tracing::info!(%stage, promotion, apps = config.apps.len(), "running argocd-update");

    let mut planned: Vec<(usize, Application, Plan)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, update) in config.apps.iter().enumerate() {
        let namespace = update
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(default_namespace);
        for app in resolve(client, namespace, &stage, update).await? {
            let key = app_key(&app);
            if !seen.insert(key.clone()) {
                return Err(Error::Config(format!(
                    "apps[{i}]: Application {key} is already selected by an earlier entry; update each Application from one entry only"
                )));
            }
            let p = plan(&app, &stage, promotion, actor, update)?;
            planned.push((i, app, p));
        }
    }

    let failed: Vec<&Plan> = planned
        .iter()
        .map(|(_, _, p)| p)
        .filter(|p| p.state == PlanState::Failed)
        .collect();
    if !failed.is_empty() {
        let message = failed
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        tracing::warn!(%stage, promotion, %message, "argocd-update: a sync failed");
        return Ok(StepOutcome {
            status: StepStatus::Errored,
            message,
            apps: planned.into_iter().map(|(_, _, p)| p.app).collect(),
        });
    }

    let mut plans = Vec::with_capacity(planned.len());
    for (i, app, p) in planned {
        let p = if p.must_sync {
            sync(client, &stage, promotion, actor, &config.apps[i], app, p).await?
        } else {
            tracing::debug!(app = %p.app, state = ?p.state, "{}", p.message);
            p
        };
        plans.push(p);
    }

    let status = plans
        .iter()
        .map(Plan::step_status)
        .max_by_key(|s| match s {
            StepStatus::Errored => 2,
            StepStatus::Running => 1,
            _ => 0,
        })
        .unwrap_or(StepStatus::Succeeded);
    let message = plans
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    tracing::info!(%stage, promotion, %status, "argocd-update done");
    Ok(StepOutcome {
        status,
        message,
        apps: plans.into_iter().map(|p| p.app).collect(),
    })
}

/// Sends a plan's patch; on an optimistic-lock conflict, reads the Application again and
/// re-plans (a few times) so that a concurrent change is neither lost nor overwritten.
async fn sync(
    client: &kube::Client,
    stage: &StageRef,
    promotion: &str,
    actor: Option<&str>,
    update: &AppUpdate,
    mut app: Application,
    mut p: Plan,
) -> Result<Plan, Error> {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let name = app.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let api = api_for(client, &namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    for attempt in 1..=PATCH_ATTEMPTS {
        let Some(patch) = p.patch.as_ref().filter(|_| p.must_sync) else {
            return Ok(p);
        };
        match api.patch(&name, &params, &Patch::Merge(patch)).await {
            Ok(_) => {
                tracing::info!(app = %key, promotion, actor = actor.unwrap_or(DEFAULT_INITIATOR), "started Argo CD sync");
                p.state = PlanState::Running;
                p.must_sync = false;
                p.message = format!(
                    "Application {key}: sync started for Promotion {promotion}{}",
                    match join_nonempty(&p.app.desired_revisions) {
                        r if r.is_empty() => String::new(),
                        r => format!(" (revision {r})"),
                    }
                );
                return Ok(p);
            }
            Err(kube::Error::Api(status)) if status.is_conflict() && attempt < PATCH_ATTEMPTS => {
                tracing::debug!(app = %key, attempt, "Application changed since read; re-planning");
                app = api
                    .get_opt(&name)
                    .await
                    .map_err(|source| Error::Kube {
                        action: "get",
                        app: key.clone(),
                        source,
                    })?
                    .ok_or_else(|| Error::NotFound(key.clone()))?;
                p = plan(&app, stage, promotion, actor, update)?;
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                return Err(Error::Conflict(key));
            }
            Err(source) => {
                return Err(Error::Kube {
                    action: "patch",
                    app: key,
                    source,
                });
            }
        }
    }
    Err(Error::Conflict(key))
}

#[cfg(test)]
mod tests;
