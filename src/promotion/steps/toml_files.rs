//! toml-update (byte-preserving edits of existing scalars, through toml_edit), and the TOML
//! document as JSON that toml-parse reads (see `data_files`).
//!
//! Kargo's rules (`pkg/toml`): keys use sjson's dotted syntax (a number indexes an array or an
//! array of tables); only an existing scalar may be set; a missing key or one naming a table or
//! array fails the step. haul keeps the replaced string's quoting style where the new value
//! allows it (Kargo writes go-toml's literal `'…'` form whenever it can).

use serde_json::Value;
use toml_edit::{DocumentMut, Item};

use super::data_files::{UpdateConfig, read};
use super::env::StepEnv;
use super::json_edit;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, write_edited};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TomlEditError {
    #[error("not valid TOML: {0}")]
    Invalid(String),
    #[error("key {0:?}: key path not found")]
    NotFound(String),
    #[error("key {key:?}: key path addresses {found} instead of a scalar")]
    NotScalar { key: String, found: &'static str },
    #[error("key {key:?}: {reason}")]
    BadValue { key: String, reason: String },
    #[error(transparent)]
    Key(#[from] json_edit::JsonEditError),
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(toml_edit::Value::Array(_)) => "an array",
        Item::Value(toml_edit::Value::InlineTable(_)) => "an inline table",
        Item::Value(_) => "a scalar",
    }
}

/// What a key path names: a value (possibly a scalar) or some kind of table.
enum Target<'a> {
    Value(&'a mut toml_edit::Value),
    Other(&'static str),
}

fn walk<'a>(item: &'a mut Item, parts: &[String]) -> Option<Target<'a>> {
    let Some((first, rest)) = parts.split_first() else {
        return match item {
            Item::Value(v) => Some(Target::Value(v)),
            other => Some(Target::Other(item_kind(other))),
        };
    };
    match item {
        Item::Table(t) => walk(t.get_mut(first)?, rest),
        Item::ArrayOfTables(a) => {
            let t = a.get_mut(first.parse::<usize>().ok()?)?;
            match rest.split_first() {
                None => Some(Target::Other("a table")),
                Some((k, rest)) => walk(t.get_mut(k)?, rest),
            }
        }
        Item::Value(v) => walk_value(v, parts),
        Item::None => None,
    }
}

fn walk_value<'a>(v: &'a mut toml_edit::Value, parts: &[String]) -> Option<Target<'a>> {
    let Some((first, rest)) = parts.split_first() else {
        return Some(Target::Value(v));
    };
    match v {
        toml_edit::Value::InlineTable(t) => walk_value(t.get_mut(first)?, rest),
        toml_edit::Value::Array(a) => walk_value(a.get_mut(first.parse::<usize>().ok()?)?, rest),
        _ => None,
    }
}

/// The TOML rendering of a config value; `literal` asks for `'…'` when the text allows it.
fn render(key: &str, value: &Value, literal: bool) -> Result<toml_edit::Value, TomlEditError> {
    let bad = |reason: &str| TomlEditError::BadValue {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    Ok(match value {
        Value::String(s) => {
            let can_be_literal = !s.contains('\'') && !s.chars().any(char::is_control);
            if literal && can_be_literal {
                format!("'{s}'")
                    .parse::<toml_edit::Value>()
                    .map_err(|e| bad(&e.to_string()))?
            } else {
                toml_edit::Value::from(s.as_str())
            }
        }
        Value::Bool(b) => toml_edit::Value::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml_edit::Value::from(i),
            (None, Some(f)) if n.is_f64() => toml_edit::Value::from(f),
            _ => return Err(bad("integer out of TOML's 64-bit signed range")),
        },
        _ => {
            return Err(bad(
                "value must be a string, number or bool (a TOML scalar)",
            ));
        }
    })
}

/// Applies the updates to `text`; pure, so nothing is written when one fails. Untouched bytes,
/// and the whitespace and comments around each replaced value, are kept.
pub fn set_values(text: &str, updates: &[(String, Value)]) -> Result<String, TomlEditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| TomlEditError::Invalid(e.to_string()))?;
    for (key, value) in updates {
        let parts = json_edit::split_key(key)?;
        let target =
            walk(doc.as_item_mut(), &parts).ok_or_else(|| TomlEditError::NotFound(key.clone()))?;
        let old = match target {
            Target::Value(v) => v,
            Target::Other(found) => {
                return Err(TomlEditError::NotScalar {
                    key: key.clone(),
                    found,
                });
            }
        };
        let found = match old {
            toml_edit::Value::Array(_) => Some("an array"),
            toml_edit::Value::InlineTable(_) => Some("an inline table"),
            _ => None,
        };
        if let Some(found) = found {
            return Err(TomlEditError::NotScalar {
                key: key.clone(),
                found,
            });
        }
        let literal = matches!(old, toml_edit::Value::String(s)
            if s.display_repr().starts_with('\''));
        let mut new = render(key, value, literal)?;
        *new.decor_mut() = old.decor().clone();
        *old = new;
    }
    Ok(doc.to_string())
}

/// Kargo's commit message: one line per key, each value as TOML writes it.
pub fn update_message(path: &str, updates: &[(String, Value)]) -> String {
    let mut message = format!("Updated {path}\n");
    for (key, value) in updates {
        let shown = render(key, value, true)
            .map(|v| v.to_string().trim().to_string())
            .unwrap_or_else(|_| value.to_string());
        message.push_str(&format!("\n- {key}: {shown}"));
    }
    message
}

pub async fn update(cfg: UpdateConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.updates.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.updates: at least one update is required".into(),
        ));
    }
    let updates: Vec<(String, Value)> = cfg.updates.into_iter().map(|u| (u.key, u.value)).collect();
    let (file, before) = read(env, &cfg.path)?;
    let after = set_values(&before, &updates)
        .map_err(|e| StepError::Failed(format!("{}: {e}", cfg.path)))?;
    write_edited(&file, &before, after, update_message(&cfg.path, &updates))
}

/// A TOML document as JSON, for expressions. Datetimes become their TOML text.
pub fn to_json(item: &Item) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| {
                    Value::Object(t.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
                })
                .collect(),
        ),
    }
}

fn value_to_json(v: &toml_edit::Value) -> Value {
    match v {
        toml_edit::Value::String(s) => Value::String(s.value().clone()),
        toml_edit::Value::Integer(i) => Value::from(*i.value()),
        // NaN and infinities have no JSON form; keep their TOML text.
        toml_edit::Value::Float(f) => serde_json::Number::from_f64(*f.value())
            .map_or_else(|| Value::String(f.value().to_string()), Value::Number),
        toml_edit::Value::Boolean(b) => Value::Bool(*b.value()),
        toml_edit::Value::Datetime(d) => Value::String(d.value().to_string()),
        toml_edit::Value::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        toml_edit::Value::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_string(), value_to_json(v)))
                .collect(),
        ),
    }
}

step! { pub struct TomlUpdate = "toml-update", UpdateConfig, |cfg, env| update(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CARGO: &str = "# app config\n[image]\nrepo = \"nginx\"  # the image\ntag = '1.0'\n\n[[replicas]]\nname = \"a\"\ncount = 1\n\n[[replicas]]\nname = \"b\"\ncount = 2\n\n[server]\nports = [80, 443]\nlimits = { cpu = 0.5, debug = false }\nwhen = 1979-05-27T07:32:00Z\n";

    fn ups(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn updates_change_only_the_values() {
        let out = set_values(
            CARGO,
            &ups(&[
                ("image.repo", json!("ghcr.io/x/nginx")),
                ("image.tag", json!("2.0")),
                ("replicas.1.count", json!(5)),
                ("server.ports.0", json!(8080)),
                ("server.limits.debug", json!(true)),
                ("server.limits.cpu", json!(1.5)),
            ]),
        )
        .expect("set");
        let want = CARGO
            .replace("\"nginx\"", "\"ghcr.io/x/nginx\"")
            .replace("'1.0'", "'2.0'")
            .replace("count = 2", "count = 5")
            .replace("[80, 443]", "[8080, 443]")
            .replace("cpu = 0.5, debug = false", "cpu = 1.5, debug = true");
        assert_eq!(out, want);
    }

    #[test]
    fn missing_keys_and_non_scalars_fail() {
        let e = set_values(CARGO, &ups(&[("image.nope", json!("x"))])).expect_err("missing");
        assert_eq!(e.to_string(), "key \"image.nope\": key path not found");
        let e = set_values(CARGO, &ups(&[("image", json!("x"))])).expect_err("table");
        assert!(e.to_string().contains("a table"), "{e}");
        let e = set_values(CARGO, &ups(&[("server.ports", json!(1))])).expect_err("array");
        assert!(e.to_string().contains("an array"), "{e}");
        let e = set_values(CARGO, &ups(&[("image.tag", json!({"a": 1}))])).expect_err("object");
        assert!(e.to_string().contains("TOML scalar"), "{e}");
        assert!(set_values("a = [", &ups(&[("a", json!(1))])).is_err());
    }

    #[test]
    fn parse_reads_everything_as_json_and_messages_are_kargos() {
        let doc: DocumentMut = CARGO.parse().expect("parse");
        let v = to_json(doc.as_item());
        assert_eq!(v["image"]["tag"], json!("1.0"));
        assert_eq!(v["replicas"][1]["count"], json!(2));
        assert_eq!(v["server"]["limits"], json!({"cpu": 0.5, "debug": false}));
        assert_eq!(v["server"]["when"], json!("1979-05-27T07:32:00Z"));
        assert_eq!(
            update_message(
                "c.toml",
                &ups(&[("image.tag", json!("v2")), ("n", json!(3))])
            ),
            "Updated c.toml\n\n- image.tag: 'v2'\n- n: 3"
        );
    }
}
