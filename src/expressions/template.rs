//! `${{ … }}` templates as Kargo's `pkg/expressions/json_templates.go` evaluates them: every
//! expression is rendered to text, the pieces are joined, and the joined text is then coerced
//! back to a JSON type. The coercion applies to the whole string, so `${{ a }}.${{ b }}` with
//! `a = 1`, `b = 2` gives the number 1.2, exactly as in Kargo.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex};

use lru::LruCache;

use super::eval::{Evaluator, parse_go_float};
use super::parser::{Expr, SpanError, parse};
use super::value::{Val, json_number};
use super::{ErrorKind, ExpressionError, Functions, Position};

const DELIMITERS: [(&str, &str); 2] = [("${{", "}}"), ("${%", "%}")];

pub(crate) fn has_delimiter(s: &str) -> bool {
    DELIMITERS.iter().any(|(open, _)| s.contains(open))
}

/// Line and column (1-based, in characters) of a byte offset, as expr reports them.
fn position(src: &str, offset: usize) -> Position {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    // u32 keeps the error small; no expression has four billion lines.
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

pub(crate) fn span_error(
    kind: ErrorKind,
    expression: &str,
    src: &str,
    e: SpanError,
) -> ExpressionError {
    ExpressionError {
        kind,
        step: None,
        path: String::new(),
        expression: Some(expression.to_string()),
        position: Some(position(src, e.offset)),
        message: e.message,
    }
}

/// How many parsed expressions are kept. A controller evaluates the same few hundred step
/// configs and `if` conditions over and over; beyond this the least recently used go.
const PARSE_CACHE_CAPACITY: usize = 2048;

/// Parsed expressions by source text, so each `${{ }}` is parsed once rather than on every
/// evaluation (steps are re-evaluated on every reconcile, criteria on every discovery).
/// Syntax errors are not cached: they are rare and reported once.
static PARSED: LazyLock<Mutex<LruCache<String, Arc<Expr>>>> = LazyLock::new(|| {
    Mutex::new(LruCache::new(
        NonZeroUsize::new(PARSE_CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN),
    ))
});

fn parse_cached(src: &str) -> Result<Arc<Expr>, SpanError> {
    // A poisoned lock only means another thread panicked mid-update; the cache is still sound.
    let lock = || PARSED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(expr) = lock().get(src) {
        return Ok(Arc::clone(expr));
    }
    let expr = Arc::new(parse(src)?);
    lock().put(src.to_string(), Arc::clone(&expr));
    Ok(expr)
}

/// Empties the parse cache, so a benchmark can measure evaluation with parsing.
#[doc(hidden)]
pub fn clear_parse_cache() {
    PARSED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Parses (once per source text) and evaluates one bare expression.
pub(crate) fn eval_expression(
    src: &str,
    shown: &str,
    roots: &BTreeMap<String, Val>,
    funcs: &dyn Functions,
) -> Result<Val, ExpressionError> {
    let expr = parse_cached(src).map_err(|e| span_error(ErrorKind::Syntax, shown, src, e))?;
    let ev = Evaluator::new(roots, funcs, src);
    ev.eval(&expr)
        .map_err(|e| span_error(ErrorKind::Evaluation, shown, src, e))
}

/// Evaluates one template string to a JSON value.
pub(crate) fn evaluate_string(
    template: &str,
    roots: &BTreeMap<String, Val>,
    funcs: &dyn Functions,
) -> Result<serde_json::Value, ExpressionError> {
    // Without delimiters the string stays as written, so "42" remains a string.
    if !has_delimiter(template) {
        return Ok(serde_json::Value::String(template.to_string()));
    }
    let mut rendered = String::new();
    let mut rest = template;
    loop {
        let next = DELIMITERS
            .iter()
            .filter_map(|(open, close)| rest.find(open).map(|i| (i, *open, *close)))
            .min_by_key(|(i, _, _)| *i);
        let Some((start, open, close)) = next else {
            rendered.push_str(rest);
            break;
        };
        rendered.push_str(&rest[..start]);
        let body_start = start + open.len();
        let Some(len) = rest[body_start..].find(close) else {
            return Err(ExpressionError {
                kind: ErrorKind::Template,
                step: None,
                path: String::new(),
                expression: Some(rest[start..].to_string()),
                position: None,
                message: format!(
                    "unclosed expression: expected {close:?} but reached end of template"
                ),
            });
        };
        let src = &rest[body_start..body_start + len];
        let shown = &rest[start..body_start + len + close.len()];
        let value = eval_expression(src, shown, roots, funcs)?;
        match value {
            Val::Str(s) => rendered.push_str(&s),
            other => {
                let text = other.go_json().map_err(|m| result_error(shown, m))?;
                rendered.push_str(&text);
            }
        }
        rest = &rest[body_start + len + close.len()..];
    }
    coerce(rendered).map_err(|m| result_error(template, m))
}

fn result_error(expression: &str, message: String) -> ExpressionError {
    ExpressionError {
        kind: ErrorKind::Evaluation,
        step: None,
        path: String::new(),
        expression: Some(expression.to_string()),
        position: None,
        message,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Kargo's coercion of a rendered template: quoted text is a string, then a float, a bool and
/// any JSON are tried in that order, and anything else stays a string.
fn coerce(mut text: String) -> Result<serde_json::Value, String> {
    // A `|` block scalar ends in a newline, which must not stop `42\n` from being a number.
    let removed_newline = text.ends_with('\n');
    if removed_newline {
        text.pop();
    }
    let restore = |mut s: String| {
        if removed_newline {
            s.push('\n');
        }
        serde_json::Value::String(s)
    };
    if text.len() > 1 && text.starts_with('"') && text.ends_with('"') {
        return Ok(restore(text[1..text.len() - 1].to_string()));
    }
    if let Some(f) = parse_go_float(&text) {
        return json_number(f).map(serde_json::Value::Number);
    }
    if let Some(b) = parse_go_bool(&text) {
        return Ok(serde_json::Value::Bool(b));
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        // Go decodes every number as a float64; re-encoding gives the same integers back.
        return Val::from_go_json(&v).to_json();
    }
    Ok(restore(text))
}

/// Appends an object key to a JSON path: `a.b`, or `a["b c"]` when the key is not a plain name.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// Evaluates every string inside `value`; keys are left alone.
pub(crate) fn walk(
    value: &serde_json::Value,
    path: &str,
    roots: &BTreeMap<String, Val>,
    funcs: &dyn Functions,
) -> Result<serde_json::Value, ExpressionError> {
    Ok(match value {
        serde_json::Value::String(s) => evaluate_string(s, roots, funcs).map_err(|mut e| {
            e.path = path.to_string();
            e
        })?,
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| walk(v, &format!("{path}[{i}]"), roots, funcs))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), walk(v, &join_key(path, k), roots, funcs)?);
            }
            serde_json::Value::Object(out)
        }
        other => other.clone(),
    })
}
