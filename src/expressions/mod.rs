//! Kargo's `${{ … }}` expressions in promotion step configs and `if` conditions.
//!
//! Kargo evaluates them with expr-lang (`github.com/expr-lang/expr` v1.17) and coerces each
//! rendered template back to a JSON type (`pkg/expressions/json_templates.go`). This module
//! reproduces both: expr-lang's language (literals, member/index access, `?.`, `??`, ternaries,
//! `if`/`else`, `let`, `;` sequences, operators, pipes, slices, predicates with `#`), its
//! builtins, Go's `time.Time`/`time.Duration` values with their methods, and Kargo's functions
//! (`quote`, `asYAML`, `imageFrom`, `artifactFrom`, `semverParse`, `freightStatus`, `status`, …).
//! `conformance.rs` runs expr-lang's own test tables against it.
//!
//! Why not the `expr-lang` crate (2.1.0): its syntax and operators cover this subset, but it
//! cannot give the errors a person needs here. Its AST is private and carries no positions, so
//! runtime errors have no location, and they read like `Invalid operand for operator []:
//! String("commit")` where a missing step output should say which key is missing. It also has
//! no notion of Go structs, which Kargo's `imageFrom` and friends return: they are read by Go
//! field name (`.Tag`) but rendered with their JSON tags (`"tag"`), nor of Go methods on values
//! (`semverParse(v).Major()`, `commitDate.After(…)`).
//!
//! A Warehouse's `freightCreationCriteria` uses the same language; see
//! [`freight_creation_criteria_satisfied`].

mod criteria;
mod duration;
mod eval;
mod go_layout;
mod go_yaml;
mod parser;
mod predicates;
mod semver_value;
mod template;
mod time;
mod value;

#[doc(hidden)]
pub use template::clear_parse_cache;
pub(crate) use value::write_go_json_string;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::api::{ArtifactReference, Chart, DiscoveredArtifacts, FreightOrigin, GitCommit, Image};
pub use criteria::{CRITERIA_FIELD, freight_creation_criteria_satisfied, parse_criteria};
use value::Val;

/// What went wrong, for callers that react differently to each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The expression does not parse.
    Syntax,
    /// The expression parsed but failed while running, or its result cannot be used.
    Evaluation,
    /// The template around the expressions is malformed (an unclosed `${{`).
    Template,
    /// An `if` condition did not produce a bool.
    NotBool,
}

/// A line and column (both 1-based, columns in characters) within the expression text between
/// the delimiters, as expr-lang reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// An expression failure with where it happened:
/// `step "x": config.images[0].tag: ${{ imageFrom(vars.repo).Tag }}: … (1:5)`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ExpressionError {
    pub kind: ErrorKind,
    /// The step alias, set by the caller with [`ExpressionError::in_step`].
    pub step: Option<String>,
    /// The JSON path of the field, e.g. `config.images[0].tag`; `if` for conditions.
    pub path: String,
    /// The failing `${{ … }}` as written (or the bare expression).
    pub expression: Option<String>,
    /// Where in the expression, when known.
    pub position: Option<Position>,
    pub message: String,
}

impl ExpressionError {
    /// Names the step the failing field belongs to.
    pub fn in_step(mut self, alias: impl Into<String>) -> Self {
        self.step = Some(alias.into());
        self
    }

    /// Puts `prefix` in front of the path, e.g. `config` when the caller evaluated a step's
    /// config object and wants `config.path` in the message.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = match (prefix.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => prefix.to_string(),
            (false, false) if self.path.starts_with('[') => format!("{prefix}{}", self.path),
            (false, false) => format!("{prefix}.{}", self.path),
        };
        self
    }
}

impl fmt::Display for ExpressionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(step) = &self.step {
            write!(f, "step {step:?}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        if let Some(expr) = &self.expression {
            write!(f, "{}: ", expr.trim())?;
        }
        f.write_str(&self.message)?;
        if let Some(p) = &self.position {
            write!(f, " ({}:{})", p.line, p.column)?;
        }
        Ok(())
    }
}

/// The data Kargo puts under `ctx` during a promotion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromotionContext {
    pub project: String,
    pub stage: String,
    pub promotion: String,
    pub target_freight: TargetFreight,
    /// Who created the Promotion (`ctx.meta.promotion.actor`).
    pub actor: String,
    pub rollback: bool,
    pub ui_base_url: String,
    /// The alias of the step being evaluated (`ctx.meta.step.alias`), when there is one.
    pub step_alias: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetFreight {
    pub name: String,
    pub alias: String,
    pub origin: FreightOrigin,
}

impl Default for TargetFreight {
    fn default() -> Self {
        TargetFreight {
            name: String::new(),
            alias: String::new(),
            origin: FreightOrigin::warehouse(""),
        }
    }
}

impl PromotionContext {
    /// The `ctx` object as expressions see it.
    pub fn to_value(&self) -> Value {
        let mut meta = serde_json::json!({
            "promotion": {"actor": self.actor, "rollback": self.rollback},
        });
        if let (Some(alias), Some(m)) = (&self.step_alias, meta.as_object_mut()) {
            m.insert("step".to_string(), serde_json::json!({ "alias": alias }));
        }
        serde_json::json!({
            "project": self.project,
            "stage": self.stage,
            "promotion": self.promotion,
            "uiBaseUrl": self.ui_base_url,
            "targetFreight": {
                "name": self.target_freight.name,
                "alias": self.target_freight.alias,
                "origin": {
                    "kind": self.target_freight.origin.kind.to_string(),
                    "name": self.target_freight.origin.name,
                },
            },
            "meta": meta,
        })
    }
}

/// The variables an expression can read: `ctx`, `vars`, `outputs`, `task`, and any other root
/// a caller adds (e.g. `response` for an HTTP step's expressions). A name that is not set reads
/// as nil, as in Kargo, so promotion-level vars, which Kargo evaluates without `outputs`, are
/// evaluated with an `Env` that has no outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Env {
    roots: Map<String, Value>,
    /// Roots that are not JSON (a commit's date is a Go `time.Time`); they win over `roots`.
    typed: BTreeMap<String, Val>,
}

impl Env {
    pub fn new() -> Self {
        Env::default()
    }

    /// An environment with `ctx` set and an empty `vars`.
    pub fn for_promotion(ctx: &PromotionContext) -> Self {
        Env::new().with("ctx", ctx.to_value()).with_vars(Map::new())
    }

    /// Sets a root variable.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.set(name, value);
        self
    }

    pub fn with_vars(self, vars: Map<String, Value>) -> Self {
        self.with("vars", Value::Object(vars))
    }

    /// Step outputs by alias (`outputs['alias'].key`).
    pub fn with_outputs(self, outputs: Map<String, Value>) -> Self {
        self.with("outputs", Value::Object(outputs))
    }

    /// Outputs of the steps of the same PromotionTask, by their alias within the task
    /// (`task.outputs.alias.key`).
    pub fn with_task_outputs(self, outputs: Map<String, Value>) -> Self {
        self.with("task", serde_json::json!({ "outputs": outputs }))
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.typed.remove(name);
        self.roots.insert(name.to_string(), value);
    }

    /// Sets one entry of `vars`, so that later variables can read earlier ones as in Kargo.
    pub fn set_var(&mut self, name: &str, value: Value) {
        match self.roots.get_mut("vars") {
            Some(Value::Object(vars)) => {
                vars.insert(name.to_string(), value);
            }
            _ => {
                let mut vars = Map::new();
                vars.insert(name.to_string(), value);
                self.roots.insert("vars".to_string(), Value::Object(vars));
            }
        }
    }

    /// Sets a root variable to a time (Go's `time.Time` in `at`'s zone), so expressions can
    /// call `.After()`, `.Year()`, … on it and compare it with `date(…)`, as Kargo's git
    /// `expressionFilter` does with `commitDate` and `creatorDate`.
    pub fn set_time(&mut self, name: &str, at: jiff::Zoned) {
        self.roots.remove(name);
        self.typed.insert(name.to_string(), Val::Time(Box::new(at)));
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.roots.get(name)
    }

    fn to_roots(&self) -> BTreeMap<String, Val> {
        let mut roots: BTreeMap<String, Val> = self
            .roots
            .iter()
            .map(|(k, v)| (k.clone(), Val::from_json(v)))
            .collect();
        roots.extend(self.typed.iter().map(|(k, v)| (k.clone(), v.clone())));
        roots
    }
}

/// What a function says where its context does not exist (e.g. `imageFrom` in verification
/// arguments).
const NOT_AVAILABLE: &str = "not available here";

/// The functions whose answers come from outside the expression: the Freight being promoted,
/// the status of earlier steps, and cluster data. Errors are messages for the person who wrote
/// the expression; they are shown after the function's name. Each defaults to "not available
/// here", so a context implements only what it has.
pub trait Functions {
    /// The image from `repo_url` in the Freight being promoted, or `None` when there is none
    /// (expressions then see nil, as in Kargo). `Err` for an ambiguous request, e.g. two
    /// requested origins subscribe to the repository and no origin was given.
    fn image_from(
        &self,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<Image>, String> {
        let _ = (repo_url, origin);
        Err(NOT_AVAILABLE.to_string())
    }

    /// As [`Functions::image_from`], for a Git commit.
    fn commit_from(
        &self,
        repo_url: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<GitCommit>, String> {
        let _ = (repo_url, origin);
        Err(NOT_AVAILABLE.to_string())
    }

    /// As [`Functions::image_from`], for a Helm chart; `name` is set for HTTP(S) repositories.
    fn chart_from(
        &self,
        repo_url: &str,
        name: Option<&str>,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<Chart>, String> {
        let _ = (repo_url, name, origin);
        Err(NOT_AVAILABLE.to_string())
    }

    /// The status (`Succeeded`, `Failed`, …) of the earlier step `alias`, resolved within the
    /// current step's task as Kargo does; `None` when there is no such step.
    fn step_status(&self, alias: &str) -> Option<String> {
        let _ = alias;
        None
    }

    /// Whether any earlier step failed or errored (`failure()`; `success()` is its negation).
    fn any_failed(&self) -> bool {
        false
    }

    /// `secret(name)`: the decoded data of a Secret in the Project namespace; empty when it
    /// does not exist.
    fn secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let _ = name;
        Err(NOT_AVAILABLE.to_string())
    }

    /// `configMap(name)`: the data of a ConfigMap in the Project namespace.
    fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let _ = name;
        Err(NOT_AVAILABLE.to_string())
    }

    /// `sharedSecret(name)`: a generic-credentials Secret in the shared namespace.
    fn shared_secret(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let _ = name;
        Err(NOT_AVAILABLE.to_string())
    }

    /// `sharedConfigMap(name)`: a ConfigMap in the shared namespace.
    fn shared_config_map(&self, name: &str) -> Result<BTreeMap<String, String>, String> {
        let _ = name;
        Err(NOT_AVAILABLE.to_string())
    }

    /// `freightMetadata(name)`: the decoded `status.metadata` of a Freight; `None` when the
    /// Freight or its metadata does not exist.
    fn freight_metadata(&self, freight: &str) -> Result<Option<Map<String, Value>>, String> {
        let _ = freight;
        Err(NOT_AVAILABLE.to_string())
    }

    /// `freightStatus(name)`: a Freight's whole `status` as JSON; `None` when there is no such
    /// Freight.
    fn freight_status(&self, freight: &str) -> Result<Option<Map<String, Value>>, String> {
        let _ = freight;
        Err(NOT_AVAILABLE.to_string())
    }

    /// `artifactFrom(subscription[, origin])`: the generic artifact a subscription of that name
    /// put in the Freight being promoted, or `None`. `Err` when the request is ambiguous.
    fn artifact_from(
        &self,
        subscription: &str,
        origin: Option<&FreightOrigin>,
    ) -> Result<Option<ArtifactReference>, String> {
        let _ = (subscription, origin);
        Err(NOT_AVAILABLE.to_string())
    }

    /// `stageMetadata(name)`: the decoded `status.metadata` of a Stage.
    fn stage_metadata(&self, stage: &str) -> Result<Option<Map<String, Value>>, String> {
        let _ = stage;
        Err(NOT_AVAILABLE.to_string())
    }

    /// A function this context adds to Kargo's (the generic webhook receiver's `normalizeGit`,
    /// …), called with its evaluated arguments; `None` when it has none of that name.
    fn function(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let _ = (name, args);
        None
    }

    /// A method call `receiver.name(args…)` on a value this context provides (the generic
    /// webhook receiver's `request.header('X-Event')`); `receiver` is the expression text before
    /// the method. `None` when the context has no such method.
    fn method(&self, receiver: &str, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let _ = (receiver, name, args);
        None
    }

    /// A Warehouse's latest discovery, set only while evaluating its `freightCreationCriteria`.
    /// Then `imageFrom`, `commitFrom` and `chartFrom` take no origin and return the newest
    /// discovered artifact of a repository, as Kargo's `DiscoveredArtifactsOperations` do,
    /// instead of asking the methods above about Freight.
    fn discovered_artifacts(&self) -> Option<&DiscoveredArtifacts> {
        None
    }
}

/// [`Functions`] for contexts without Freight or steps (e.g. verification arguments): the
/// artifact functions fail, `status()` knows no step and nothing has failed.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFunctions;

impl Functions for NoFunctions {}

/// Evaluates every string value in `value` (keys never) as a Kargo template. A string that is
/// exactly one expression keeps the result's type after Kargo's coercion (`${{ 1 + 1 }}` is the
/// number 2, `${{ quote(42) }}` the string "42"); text mixed with expressions is joined first
/// and the joined text is coerced the same way. Strings without `${{`/`${%` are left as they
/// are. Error paths start at the top of `value` (see [`ExpressionError::under`]).
pub fn evaluate_template(
    value: &Value,
    env: &Env,
    funcs: &dyn Functions,
) -> Result<Value, ExpressionError> {
    template::walk(value, "", &env.to_roots(), funcs)
}

/// Evaluates a step's `if` condition, which Kargo reads as a template that must produce a bool
/// (`${{ success() }}`). An empty condition behaves as Kargo's default: run only when no earlier
/// step failed.
pub fn evaluate_bool(
    template: &str,
    env: &Env,
    funcs: &dyn Functions,
) -> Result<bool, ExpressionError> {
    if template.is_empty() {
        return Ok(!funcs.any_failed());
    }
    let result = template::evaluate_string(template, &env.to_roots(), funcs).map_err(|mut e| {
        e.path = "if".to_string();
        e
    })?;
    match result {
        Value::Bool(b) => Ok(b),
        other => {
            let hint = if template::has_delimiter(template) {
                ""
            } else {
                "; a condition must be an expression in ${{ … }}"
            };
            let got = match &other {
                Value::String(s) => format!("string {s:?}"),
                Value::Number(n) => format!("number {n}"),
                Value::Null => "null".to_string(),
                Value::Array(_) => "an array".to_string(),
                Value::Object(_) => "an object".to_string(),
                Value::Bool(_) => "a bool".to_string(),
            };
            Err(ExpressionError {
                kind: ErrorKind::NotBool,
                step: None,
                path: "if".to_string(),
                expression: Some(template.to_string()),
                position: None,
                message: format!("expression must evaluate to a boolean, got {got}{hint}"),
            })
        }
    }
}

/// Evaluates one bare expr-lang expression, without delimiters or template coercion, as Kargo
/// does for expressions that are not templates (an HTTP step's `successExpression`, an output's
/// `fromExpression`, a Warehouse's `freightCreationCriteria`). API structs in the result use
/// their JSON field names, and integral floats become integers.
pub fn evaluate_expression(
    expression: &str,
    env: &Env,
    funcs: &dyn Functions,
) -> Result<Value, ExpressionError> {
    let v = template::eval_expression(expression, expression, &env.to_roots(), funcs)?;
    v.to_json().map_err(|message| ExpressionError {
        kind: ErrorKind::Evaluation,
        step: None,
        path: String::new(),
        expression: Some(expression.to_string()),
        position: None,
        message,
    })
}
