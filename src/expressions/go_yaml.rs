//! Kargo's `asYAML(v)`: `yaml.Marshal` of go-yaml v3 (`go.yaml.in/yaml/v3`) on the Go value.
//! So the output has go-yaml v3's shape: block style with its indentation rule (4 spaces,
//! rounded to a multiple of 4, +2 inside a `- ` item), keys in its natural order (`a2` before
//! `a10`), strings quoted only when needed (double quotes when YAML would read them as
//! something else, `yes`, `1.0`; single quotes when plain text would not parse; `|-` blocks for
//! multi-line text), floats as Go's `%g` (`1e+06`), durations as `1h0m0s`, times as RFC 3339.
//!
//! Hand-written because no maintained Rust YAML emitter reproduces go-yaml v3's choices, and
//! the text ends up in users' files, where each difference is a diff. The expected outputs in
//! the tests are go-yaml v3.0.4's.

use std::cmp::Ordering;

use super::value::{Val, go_float_g};
use crate::yaml::quoting::{double_quoted, plain_ok, resolves_to_non_string};

const BEST_INDENT: usize = 4;

/// The YAML text of `v`, ending in a newline.
pub(crate) fn to_yaml(v: &Val) -> Result<String, String> {
    let v = normalize(v)?;
    let mut out = String::new();
    if is_block(&v) {
        write_block(&mut out, &v, 0);
    } else {
        // A top-level scalar's block content is indented as go-yaml's flow indent.
        out.push_str(&scalar_text(&v, BEST_INDENT));
        out.push('\n');
    }
    Ok(out)
}

/// Reduces Go types to what go-yaml writes for them: structs by their JSON form (go-yaml would
/// lower-case the field names; haul's API values carry JSON tags), text marshalers as strings.
fn normalize(v: &Val) -> Result<Val, String> {
    Ok(match v {
        Val::Array(items) => Val::Array(items.iter().map(normalize).collect::<Result<_, _>>()?),
        Val::Map(m) => Val::Map(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), normalize(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Val::StrMap(m) => Val::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), Val::Str(v.clone())))
                .collect(),
        ),
        Val::Struct(_) | Val::Location(_) => Val::from_json(&v.to_json()?),
        Val::Duration(_) | Val::Time(_) | Val::SemVer(_) => Val::Str(match v {
            Val::Time(t) => super::time::rfc3339(t),
            other => other.go_display(),
        }),
        Val::TimeUnit(u) => Val::Int(u.number()),
        other => other.clone(),
    })
}

fn is_block(v: &Val) -> bool {
    match v {
        Val::Map(m) => !m.is_empty(),
        Val::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// go-yaml v3's indent for a node under a mapping key: the next multiple of 4.
fn under_key(indent: usize) -> usize {
    BEST_INDENT * ((indent + BEST_INDENT) / BEST_INDENT)
}

/// Writes a non-empty map or sequence whose first line starts at the cursor and whose other
/// lines start at `indent`.
fn write_block(out: &mut String, v: &Val, indent: usize) {
    match v {
        Val::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| key_order(a, b));
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    pad(out, indent);
                }
                out.push_str(&string_text(k, under_key(indent)));
                out.push(':');
                let value = &m[k];
                let child = under_key(indent);
                if is_block(value) {
                    out.push('\n');
                    pad(out, child);
                    write_block(out, value, child);
                } else {
                    out.push(' ');
                    out.push_str(&scalar_text(value, child));
                    out.push('\n');
                }
            }
        }
        Val::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    pad(out, indent);
                }
                out.push_str("- ");
                // Inside an item, go-yaml only skips the "- ".
                if is_block(item) {
                    write_block(out, item, indent + 2);
                } else {
                    out.push_str(&scalar_text(item, indent + 2));
                    out.push('\n');
                }
            }
        }
        scalar => {
            out.push_str(&scalar_text(scalar, indent));
            out.push('\n');
        }
    }
}

/// A scalar or empty collection; `indent` is where a `|` block's lines go.
fn scalar_text(v: &Val, indent: usize) -> String {
    match v {
        Val::Nil => "null".to_string(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => match go_float_g(*f).as_str() {
            "+Inf" => ".inf".to_string(),
            "-Inf" => "-.inf".to_string(),
            "NaN" => ".nan".to_string(),
            s => s.to_string(),
        },
        Val::Str(s) => string_text(s, indent),
        Val::Array(_) => "[]".to_string(),
        Val::Map(_) => "{}".to_string(),
        other => string_text(&other.go_display(), indent),
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
    let lead = if s.starts_with(' ') {
        BEST_INDENT.to_string()
    } else {
        String::new()
    };
    let mut out = format!("|{lead}{chomp}");
    for line in body.unwrap_or(s).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(&mut out, indent);
            out.push_str(line);
        }
    }
    out
}

/// go-yaml's `keyList.Less` for string keys: letters compare as runes, a letter sorts after
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
    use std::collections::BTreeMap;

    use super::*;

    fn map(entries: &[(&str, Val)]) -> Val {
        Val::Map(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn s(v: &str) -> Val {
        Val::Str(v.to_string())
    }

    /// Each expected text is what go-yaml v3.0.4's `yaml.Marshal` printed for the same Go value.
    #[test]
    fn shapes_as_go_yaml_v3() {
        let y = |v: Val| to_yaml(&v).expect("yaml");
        assert_eq!(
            y(map(&[("foo", s("bar")), ("count", Val::Int(2))])),
            "count: 2\nfoo: bar\n"
        );
        assert_eq!(y(Val::Array(vec![s("one"), s("two")])), "- one\n- two\n");
        assert_eq!(
            y(map(&[
                ("image", map(&[("repo", s("nginx")), ("tag", s("1.27"))])),
                ("ports", Val::Array(vec![Val::Int(80), Val::Int(443)])),
                (
                    "env",
                    Val::Array(vec![map(&[("name", s("A")), ("value", s("yes"))])])
                ),
                ("empty", map(&[])),
                ("none", Val::Array(vec![])),
                ("nil", Val::Nil),
                ("ratio", Val::Float(0.5)),
                ("big", Val::Float(1_000_000.0)),
                ("two", Val::Float(2.0)),
            ])),
            "big: 1e+06\nempty: {}\nenv:\n    - name: A\n      value: \"yes\"\nimage:\n    repo: nginx\n    tag: \"1.27\"\nnil: null\nnone: []\nports:\n    - 80\n    - 443\nratio: 0.5\ntwo: 2\n"
        );
        let long = "word word word word word word word word word word word word word word word word word word word word end";
        assert_eq!(
            y(map(&[
                ("s", s("a: b")),
                ("m", s("l1\nl2")),
                ("t", s("x\n")),
                ("long", s(long)),
                ("hash", s("a #b")),
                ("colon", s("x:")),
                ("ver", s("1.2.3")),
                ("q", s("it's")),
            ])),
            format!(
                "colon: 'x:'\nhash: 'a #b'\nlong: {long}\nm: |-\n    l1\n    l2\nq: it's\ns: 'a: b'\nt: |\n    x\nver: 1.2.3\n"
            )
        );
        assert_eq!(y(s("text")), "text\n");
        assert_eq!(
            y(Val::Array(vec![
                Val::Array(vec![Val::Int(1), Val::Int(2)]),
                Val::Array(vec![Val::Int(3)]),
            ])),
            "- - 1\n  - 2\n- - 3\n"
        );
        assert_eq!(
            y(map(&[(
                "l",
                Val::Array(vec![map(&[
                    ("a", Val::Int(1)),
                    ("b", Val::Array(vec![s("x")]))
                ])])
            )])),
            "l:\n    - a: 1\n      b:\n        - x\n"
        );
    }

    #[test]
    fn keys_in_natural_order() {
        let mut keys = vec!["a10", "a2", "b", "A", "1", "_x", "a02"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, ["_x", "1", "A", "a2", "a02", "a10", "b"]);
    }
}
