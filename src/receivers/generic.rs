//! The generic receiver (Kargo's `generic`): any POST, with no signature — the secret path is
//! the authentication. Each configured action runs when its `whenExpression` (a bare expression
//! over the request) is true, and refreshes the Warehouses its `targetSelectionCriteria` select
//! by name, labels and/or subscribed repository URL, whose values may be `${{ }}` templates over
//! the request.
//!
//! Expressions see what Kargo gives them: `request.header(name)`, `request.headers(name)`,
//! `request.params(name)` (the query), `request.body` (the JSON body, nil when empty),
//! `params` (the action's parameters, as written) and `normalizeGit`, `normalizeImage`,
//! `normalizeChart`. This file turns a request into resolved selections ([`Action`]); choosing
//! Warehouses from them is [`select_warehouses`], both pure.

use std::collections::{BTreeMap, BTreeSet};

use http::HeaderMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

use super::registry::{Receiver, Request};
use super::{Event, RequestError};
use crate::api::{GenericWebhookAction, GenericWebhookTargetSelectionCriteria, Warehouse};
use crate::expressions::{Env, Functions, evaluate_expression, evaluate_template};
use crate::urls::{normalize_chart, normalize_git, normalize_image};

pub static GENERIC: Receiver = Receiver::new(
    "generic",
    |c| c.generic.as_ref().map(|g| &g.secret_ref),
    |r: Request<'_>| {
        let actions = r
            .config
            .generic
            .as_ref()
            .map(|g| g.actions.as_slice())
            .unwrap_or_default();
        plan_actions(r.headers, r.query, r.body, actions).map(Event::Actions)
    },
);

/// Kargo's summaries, shown in the response per action.
pub const SUMMARY_NOT_MATCHED: &str = "Request did not match whenExpression";
pub const SUMMARY_MATCHING_ERROR: &str = "Error evaluating whenExpression";
pub const SUMMARY_SELECTION_ERROR: &str = "Error evaluating targetSelectionCriteria";

/// One configured action, resolved against a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The action as configured, echoed in the response as Kargo does.
    pub config: GenericWebhookAction,
    pub outcome: Outcome,
}

/// What became of an action before anything is refreshed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `whenExpression` is false: nothing to do.
    NotMatched,
    /// `whenExpression` failed or is not a bool.
    WhenError(String),
    /// A selection value failed to evaluate, or the action or kind is not supported.
    SelectionError(String),
    /// Refresh the Warehouses any of these selections select.
    Refresh(Vec<Selection>),
}

/// One `targetSelectionCriteria` entry with its values evaluated; its parts are ANDed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    pub name: Option<String>,
    pub labels: Option<LabelSelector>,
    /// `subscribedURLs` requirements: (equal, value).
    pub subscribed_urls: Vec<(bool, String)>,
}

/// Resolves every action against the request. Only an unparsable body fails the request.
pub fn plan_actions(
    headers: &HeaderMap,
    query: &str,
    body: &[u8],
    actions: &[GenericWebhookAction],
) -> Result<Vec<Action>, RequestError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|_| RequestError::InvalidBody)?
    };
    let request = RequestFunctions { headers, query };
    Ok(actions
        .iter()
        .map(|a| {
            let params: Map<String, Value> = a
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let env = Env::new()
                .with("request", serde_json::json!({ "body": body }))
                .with("params", Value::Object(params));
            Action {
                config: a.clone(),
                outcome: resolve(a, &env, &request),
            }
        })
        .collect())
}

fn resolve(a: &GenericWebhookAction, env: &Env, funcs: &RequestFunctions<'_>) -> Outcome {
    let when = a.when_expression.as_deref().map(str::trim).unwrap_or("");
    if !when.is_empty() {
        match evaluate_expression(when, env, funcs) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => return Outcome::NotMatched,
            Ok(other) => {
                return Outcome::WhenError(format!(
                    "whenExpression evaluated to {other}; expected a bool"
                ));
            }
            Err(e) => return Outcome::WhenError(e.to_string()),
        }
    }
    if a.action_type != "Refresh" {
        return Outcome::SelectionError(format!(
            "action {:?} is not supported (only Refresh)",
            a.action_type
        ));
    }
    a.target_selection_criteria
        .iter()
        .enumerate()
        .map(|(i, c)| {
            selection(c, env, funcs).map_err(|e| format!("targetSelectionCriteria[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_or_else(Outcome::SelectionError, Outcome::Refresh)
}

fn selection(
    c: &GenericWebhookTargetSelectionCriteria,
    env: &Env,
    funcs: &RequestFunctions<'_>,
) -> Result<Selection, String> {
    if c.kind != "Warehouse" {
        return Err(format!(
            "kind {:?} is not supported (only Warehouse)",
            c.kind
        ));
    }
    let eval = |s: &str| eval_as_string(s, env, funcs);
    let name = c
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(eval)
        .transpose()?;
    let labels = c
        .label_selector
        .as_ref()
        .map(|ls| {
            let mut ls = ls.clone();
            for v in ls.match_labels.iter_mut().flat_map(|m| m.values_mut()) {
                *v = eval(v)?;
            }
            for e in ls.match_expressions.iter_mut().flatten() {
                for v in e.values.iter_mut().flatten() {
                    *v = eval(v)?;
                }
            }
            Ok::<_, String>(ls)
        })
        .transpose()?;
    let mut subscribed_urls = Vec::new();
    for r in c.index_selector.iter().flat_map(|i| &i.match_indices) {
        if r.key != "subscribedURLs" {
            return Err(format!("index {:?} is not an index of Warehouses", r.key));
        }
        let equal = match r.operator.as_str() {
            "Equals" => true,
            "NotEquals" => false,
            other => return Err(format!("unsupported operator {other:?} in index selector")),
        };
        subscribed_urls.push((equal, eval(&r.value)?));
    }
    Ok(Selection {
        name,
        labels,
        subscribed_urls,
    })
}

/// Kargo's `evalAsString`: a static string or a template that must give a string.
fn eval_as_string(s: &str, env: &Env, funcs: &RequestFunctions<'_>) -> Result<String, String> {
    match evaluate_template(&Value::String(s.to_string()), env, funcs) {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Err(format!(
            "expression {s:?} evaluated to {other}; not a string"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The request's functions: `request.header/headers/params` and the URL normalisers.
struct RequestFunctions<'a> {
    headers: &'a HeaderMap,
    query: &'a str,
}

fn one_string(args: &[Value]) -> Result<&str, String> {
    match args {
        [Value::String(s)] => Ok(s),
        _ => Err("expected one string argument".to_string()),
    }
}

impl Functions for RequestFunctions<'_> {
    fn function(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let normalize: fn(&str) -> String = match name {
            "normalizeGit" => normalize_git,
            "normalizeImage" => normalize_image,
            "normalizeChart" => normalize_chart,
            _ => return None,
        };
        Some(one_string(args).map(|s| Value::String(normalize(s))))
    }

    fn method(&self, receiver: &str, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if receiver.trim() != "request" || !matches!(name, "header" | "headers" | "params") {
            return None;
        }
        let key = match one_string(args) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        let mut values = self
            .headers
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(String::from);
        Some(Ok(match name {
            // Go's Header.Get: the first value, "" when absent.
            "header" => Value::String(values.next().unwrap_or_default()),
            "headers" => Value::from(values.collect::<Vec<_>>()),
            _ => Value::String(query_param(self.query, key).unwrap_or_default()),
        }))
    }
}

/// Go's `URL.Query().Get`: the first value of `key`, percent- and `+`-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(k, _)| decode(k) == key)
        .map(|(_, v)| decode(v))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The normalised repository URLs a Warehouse subscribes to (Kargo's `subscribedURLs` index).
fn subscribed_urls(w: &Warehouse) -> BTreeSet<String> {
    w.spec
        .subscriptions
        .iter()
        .flat_map(|s| {
            [
                s.git.as_ref().map(|g| normalize_git(&g.repo_url)),
                s.image.as_ref().map(|i| normalize_image(&i.repo_url)),
                s.chart.as_ref().map(|c| normalize_chart(&c.repo_url)),
            ]
        })
        .flatten()
        .collect()
}

/// Whether a label selector selects `labels` (Kubernetes' rules); an unknown operator is an
/// error, as the API server's would be.
fn labels_match(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let exact = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let mut all = exact;
    for e in sel.match_expressions.iter().flatten() {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        all &= match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => return Err(format!("unsupported label selector operator {other:?}")),
        };
    }
    Ok(all)
}

fn selects(s: &Selection, w: &Warehouse) -> Result<bool, String> {
    if s.name
        .as_ref()
        .is_some_and(|n| w.metadata.name.as_ref() != Some(n))
    {
        return Ok(false);
    }
    if let Some(ls) = &s.labels
        && !labels_match(ls, w.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))?
    {
        return Ok(false);
    }
    if !s.subscribed_urls.is_empty() {
        let urls = subscribed_urls(w);
        if !s
            .subscribed_urls
            .iter()
            .all(|(equal, v)| urls.contains(v) == *equal)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The names of the Warehouses any of `selections` selects, sorted and distinct.
pub fn select_warehouses(
    warehouses: &[Warehouse],
    selections: &[Selection],
) -> Result<Vec<String>, String> {
    let mut names = BTreeSet::new();
    for s in selections {
        for w in warehouses {
            if selects(s, w)?
                && let Some(n) = &w.metadata.name
            {
                names.insert(n.clone());
            }
        }
    }
    Ok(names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn actions(v: Value) -> Vec<GenericWebhookAction> {
        serde_json::from_value(v).expect("actions")
    }

    fn push_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-event-type", HeaderValue::from_static("push"));
        h
    }

    fn warehouse(name: &str, labels: Value, repo: &str) -> Warehouse {
        serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1",
            "kind": "Warehouse",
            "metadata": {"name": name, "namespace": "p", "labels": labels},
            "spec": {"subscriptions": [{"git": {"repoURL": repo}}]},
        }))
        .expect("warehouse")
    }

    /// Kargo's "partial success" case: labels and the subscribed-URL index, ANDed.
    #[test]
    fn labels_and_subscribed_urls_select_warehouses_as_kargo_does() {
        let config = actions(json!([{
            "action": "Refresh",
            "parameters": {"foo": "bar"},
            "whenExpression": "request.header('X-Event-Type') == 'push'",
            "targetSelectionCriteria": [{
                "kind": "Warehouse",
                "labelSelector": {
                    "matchLabels": {"foo": "bar"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend", "frontend"]}]
                },
                "indexSelector": {"matchIndices": [{
                    "key": "subscribedURLs", "operator": "Equals",
                    "value": "${{ normalizeGit(request.body.repository.url) }}"
                }]}
            }]
        }]));
        let body = br#"{"repository": {"url": "http://github.com/example/repo.git"}}"#;
        let planned = plan_actions(&push_headers(), "", body, &config).expect("planned");
        let Outcome::Refresh(selections) = &planned[0].outcome else {
            panic!("{planned:?}");
        };
        let repo = "http://github.com/example/repo.git";
        let ws = vec![
            warehouse(
                "api-warehouse",
                json!({"foo": "bar", "tier": "backend"}),
                repo,
            ),
            warehouse(
                "other-api-warehouse",
                json!({"foo": "bar", "tier": "backend"}),
                "http://github.com/example/other-repo.git",
            ),
            warehouse("ui-warehouse", json!({"foo": "bar"}), repo),
            warehouse(
                "failure-warehouse",
                json!({"foo": "bar", "tier": "backend"}),
                repo,
            ),
        ];
        assert_eq!(
            select_warehouses(&ws, selections),
            Ok(vec!["api-warehouse".into(), "failure-warehouse".into()])
        );
    }

    #[test]
    fn when_expressions_that_fail_do_not_match_or_are_not_bools() {
        let when = |expr: &str| {
            let config = actions(json!([{
                "action": "Refresh",
                "whenExpression": expr,
                "targetSelectionCriteria": [{"kind": "Warehouse", "name": "doesntmatter"}]
            }]));
            plan_actions(&push_headers(), "", b"{}", &config)
                .expect("planned")
                .remove(0)
                .outcome
        };
        assert!(matches!(when("{x!kj\"}"), Outcome::WhenError(_)));
        assert!(matches!(when("foo()"), Outcome::WhenError(_)));
        assert!(matches!(
            when("request.header('X-Event-Type')"),
            Outcome::WhenError(_)
        ));
        assert_eq!(
            when("request.header('X-Event-Type') == 'pull_request'"),
            Outcome::NotMatched
        );
        assert_eq!(
            when("request.header('X-Event-Type') == 'push'"),
            Outcome::Refresh(vec![Selection {
                name: Some("doesntmatter".into()),
                ..Selection::default()
            }])
        );
        assert!(matches!(when("true"), Outcome::Refresh(_)));
    }

    #[test]
    fn names_come_from_templates_over_the_body_query_headers_and_params() {
        let config = actions(json!([{
            "action": "Refresh",
            "parameters": {"suffix": "-wh"},
            "targetSelectionCriteria": [
                {"kind": "Warehouse", "name": "${{ request.body.repository.name }}${{ params.suffix }}"},
                {"kind": "Warehouse", "name": "${{ request.params('warehouse') }}"},
                {"kind": "Warehouse", "name": "${{ request.headers('X-Event-Type')[0] }}"}
            ]
        }]));
        let planned = plan_actions(
            &push_headers(),
            "x=1&warehouse=from%20query",
            br#"{"repository": {"name": "api"}}"#,
            &config,
        )
        .expect("planned");
        let Outcome::Refresh(selections) = &planned[0].outcome else {
            panic!("{planned:?}");
        };
        let names: Vec<_> = selections.iter().filter_map(|s| s.name.clone()).collect();
        assert_eq!(names, ["api-wh", "from query", "push"]);
    }

    #[test]
    fn unsupported_actions_kinds_and_indices_are_selection_errors() {
        let outcome = |action: Value| {
            plan_actions(&push_headers(), "", b"", &actions(json!([action])))
                .expect("planned")
                .remove(0)
                .outcome
        };
        for a in [
            json!({"action": "Delete", "targetSelectionCriteria": [{"kind": "Warehouse", "name": "a"}]}),
            json!({"action": "Refresh", "targetSelectionCriteria": [{"kind": "Stage", "name": "a"}]}),
            json!({"action": "Refresh", "targetSelectionCriteria": [{"kind": "Warehouse",
                "indexSelector": {"matchIndices": [{"key": "receiverPaths", "operator": "Equals", "value": "x"}]}}]}),
            json!({"action": "Refresh", "targetSelectionCriteria": [{"kind": "Warehouse",
                "name": "${{ 1 + 1 }}"}]}),
        ] {
            assert!(
                matches!(outcome(a.clone()), Outcome::SelectionError(_)),
                "{a}"
            );
        }
        // An empty body is nil, not an error; an unparsable one fails the request.
        assert_eq!(
            plan_actions(&push_headers(), "", b"not json", &[]),
            Err(RequestError::InvalidBody)
        );
    }

    #[test]
    fn not_equals_excludes_warehouses_subscribed_to_the_url() {
        let s = Selection {
            subscribed_urls: vec![(false, "https://github.com/example/repo".into())],
            ..Selection::default()
        };
        let ws = vec![
            warehouse("repo", json!({}), "https://github.com/example/repo.git"),
            warehouse("other", json!({}), "https://github.com/example/other"),
        ];
        assert_eq!(select_warehouses(&ws, &[s]), Ok(vec!["other".into()]));
    }
}
