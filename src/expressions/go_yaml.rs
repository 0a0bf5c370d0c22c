//! Kargo's `asYAML(v)`: `sigs.k8s.io/yaml.Marshal`, i.e. Go's JSON encoding of the value read
//! back and written by go-yaml v2. So the output has go-yaml v2's shape: block style, keys in its
//! natural order (`a2` before `a10`), sequences under a key not indented, strings quoted only
//! when needed (double quotes when YAML 1.1 would read them as something else, `yes`, `1.0`;
//! single quotes when plain text would not parse; `|-` blocks for multi-line text).
//!
//! Hand-written because no maintained Rust YAML emitter reproduces go-yaml v2's choices, and
//! the text ends up in users' files, where each difference is a diff.

use std::cmp::Ordering;

use serde_json::Value;

use super::value::{Val, go_float_g};
use crate::yaml::quoting::{double_quoted, plain_ok, resolves_to_non_string};

/// The YAML text of `v`, ending in a newline.
pub(crate) fn to_yaml(v: &Val) -> Result<String, String> {
    let json: Value = serde_json::from_str(&v.go_json()?)
        .map_err(|e| format!("error applying asYAML() function: {e}"))?;
    let mut out = String::new();
    match &json {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        scalar => {
            out.push_str(&scalar_text(scalar, 0));
            out.push('\n');
        }
    }
    Ok(out)
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or empty collection as it follows `key: ` or `- ` at `indent`.
fn scalar_text(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => go_float_g(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => string_text(s, indent),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn string_text(s: &str, indent: usize) -> String {
    if resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if s.contains('\n') && !s.chars().any(|c| c.is_control() && c != '\n') {
        return literal(s, indent);
    }
    if plain_ok(s, false) {
        return s.to_string();
    }
    if s.chars().any(char::is_control) {
        return double_quoted(s);
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// A `|` block: `-` strips a missing final newline, `+` keeps more than one.
fn literal(s: &str, indent: usize) -> String {
    let body = s.strip_suffix('\n');
    let chomp = match body {
        None => "-",
        Some(b) if b.ends_with('\n') || b.is_empty() => "+",
        Some(_) => "",
    };
    let lead = if s.starts_with(' ') { "2" } else { "" };
    let mut out = format!("|{lead}{chomp}");
    for line in body.unwrap_or(s).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(&mut out, indent + 2);
            out.push_str(line);
        }
    }
    out
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| key_order(a, b));
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        let v = &m[k];
        out.push_str(&string_text(k, indent));
        out.push(':');
        match v {
            Value::Object(child) if !child.is_empty() => {
                out.push('\n');
                pad(out, indent + 2);
                write_map(out, child, indent + 2);
            }
            // go-yaml v2 does not indent a sequence under a key.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                pad(out, indent);
                write_seq(out, items, indent);
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar, indent));
                out.push('\n');
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if is_block(v) => write_map(out, m, indent + 2),
            Value::Array(a) if is_block(v) => write_seq(out, a, indent + 2),
            scalar => {
                out.push_str(&scalar_text(scalar, indent));
                out.push('\n');
            }
        }
    }
}

/// go-yaml v2's `keyList.Less` for string keys: letters compare as runes, a letter sorts after
/// anything else, and runs of digits compare by value.
fn key_order(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            // A zero inside a number (after a non-zero digit) is compared as a digit.
            if ar[..i]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .any(|c| *c != '0')
            {
                an = 1;
                bn = 1;
            }
        }
        let digits = |r: &[char], n: &mut i64| {
            let mut end = i;
            while end < r.len() && r[end].is_ascii_digit() {
                *n = n
                    .saturating_mul(10)
                    .saturating_add(i64::from(r[end] as u8 - b'0'));
                end += 1;
            }
            end
        };
        let ai = digits(&ar, &mut an);
        let bi = digits(&br, &mut bn);
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(json: Value) -> String {
        to_yaml(&Val::from_json(&json)).expect("yaml")
    }

    #[test]
    fn shapes_as_go_yaml_v2() {
        assert_eq!(
            yaml(serde_json::json!({"foo": "bar", "count": 2})),
            "count: 2\nfoo: bar\n"
        );
        assert_eq!(yaml(serde_json::json!(["one", "two"])), "- one\n- two\n");
        assert_eq!(
            yaml(serde_json::json!({
                "image": {"repo": "nginx", "tag": "1.27"},
                "ports": [80, 443],
                "env": [{"name": "A", "value": "yes"}],
                "empty": {}, "none": [], "nil": null, "ratio": 0.5,
            })),
            "empty: {}\nenv:\n- name: A\n  value: \"yes\"\nimage:\n  repo: nginx\n  tag: \"1.27\"\nnil: null\nnone: []\nports:\n- 80\n- 443\nratio: 0.5\n"
        );
        assert_eq!(
            yaml(serde_json::json!({"s": "a: b", "m": "l1\nl2", "t": "x\n"})),
            "m: |-\n  l1\n  l2\ns: 'a: b'\nt: |\n  x\n"
        );
        assert_eq!(yaml(serde_json::json!("text")), "text\n");
        assert_eq!(
            yaml(serde_json::json!([[1, 2], [3]])),
            "- - 1\n  - 2\n- - 3\n"
        );
    }

    #[test]
    fn keys_in_natural_order() {
        let mut keys = vec!["a10", "a2", "b", "A", "1", "_x", "a02"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, ["_x", "1", "A", "a2", "a02", "a10", "b"]);
    }
}
