//! Rendering a new scalar value in the style of the scalar it replaces.
//!
//! Hand-written because no crate renders "this value, in that style, only if it still re-reads
//! as a string": yaml-edit picks its own quoting (it drops `"1.2.3"`'s quotes, per our
//! evaluation), and serde-saphyr's serializer formats whole documents. Every plain rendering is
//! re-parsed before use, so the rules below only have to be conservative, not complete.

use std::sync::LazyLock;

use regex::Regex;
use serde_saphyr::granit_parser::ScalarStyle;

use super::tree::{self, Kind};

/// Quoting styles we can write on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    Single,
    Double,
}

impl Style {
    /// The style of an existing scalar; `None` for block scalars (`|`, `>`), which we do not
    /// rewrite.
    pub fn of(style: ScalarStyle) -> Option<Style> {
        match style {
            ScalarStyle::Plain => Some(Style::Plain),
            ScalarStyle::SingleQuoted => Some(Style::Single),
            ScalarStyle::DoubleQuoted => Some(Style::Double),
            _ => None,
        }
    }
}

/// Plain scalars that some YAML reader in the Kubernetes world would not read back as a string:
/// YAML 1.2 core and JSON schema, plus YAML 1.1 (go-yaml v2 under Helm and sigs.k8s.io/yaml):
/// yes/no/on/off/y/n booleans, octal `0123`, `0b…`, `1_000`, sexagesimal `1:30`, dates, `<<`.
/// Semver tags like `1.2.3` and digests like `sha256:…` are deliberately not matched so they stay
/// plain.
static NON_STRING: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:",
        r"~|null|Null|NULL",
        r"|y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        r"|[-+]?[0-9][0-9_]*",
        r"|[-+]?0[bB][01_]+|0o[0-7]+|[-+]?0[xX][0-9a-fA-F_]+",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?",
        r"|[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?",
        r"|<<|=",
        r")$"
    ))
});

/// True when `s`, written plain, would be read as something other than that string.
pub(crate) fn resolves_to_non_string(s: &str) -> bool {
    match &*NON_STRING {
        Ok(re) => re.is_match(s),
        // Unreachable with a literal pattern (a test compiles it); quoting is the safe answer.
        Err(_) => true,
    }
}

fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Whether `s` can be written as a plain scalar in a value position and read back unchanged.
pub(crate) fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.starts_with("...")
        || s.chars().any(|c| is_unsafe_char(c) || c == '\t')
        || (flow && s.contains([',', '[', ']', '{', '}']))
        || resolves_to_non_string(s)
    {
        return false;
    }
    // The rules above are meant to be sufficient; a real parse confirms it.
    let probe = if flow {
        format!("[{s}]")
    } else {
        format!("k: {s}\n")
    };
    let Ok(docs) = tree::parse(&probe) else {
        return false;
    };
    let node = match docs.first().map(|d| &d.root.kind) {
        Some(Kind::Sequence { items, .. }) if items.len() == 1 => &items[0],
        Some(Kind::Mapping { entries, .. }) if entries.len() == 1 => &entries[0].1,
        _ => return false,
    };
    matches!(&node.kind, Kind::Scalar { value, style: ScalarStyle::Plain } if value == s)
}

pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c if c.is_control() => {
                let code = u32::from(c);
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02X}"));
                } else {
                    out.push_str(&format!("\\u{code:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Single quotes cannot escape line breaks or control characters; `None` then.
pub(crate) fn single_quoted(s: &str) -> Option<String> {
    if s.chars().any(is_unsafe_char) {
        return None;
    }
    Some(format!("'{}'", s.replace('\'', "''")))
}

/// Renders a string value: keeps `style` when it can represent the string as a string; plain
/// falls back to double quotes (as Kargo's `QuoteIfNecessary` does) when plain would change type
/// or syntax.
pub(crate) fn render_string(s: &str, style: Style, flow: bool) -> String {
    match style {
        Style::Plain if plain_ok(s, flow) => s.to_owned(),
        Style::Single => single_quoted(s).unwrap_or_else(|| double_quoted(s)),
        Style::Plain | Style::Double => double_quoted(s),
    }
}

/// Renders a JSON scalar for a scalar that was written in `style`. Numbers and booleans keep a
/// quoted style: the file's author typed that field as a string (Kargo writes them bare, which
/// broke Helm schemas, akuity/kargo#876). `null` is always written bare, since quoting it would
/// store the text "null". Objects and arrays give `None`.
pub(crate) fn render_json(value: &serde_json::Value, style: Style, flow: bool) -> Option<String> {
    use serde_json::Value;
    Some(match value {
        Value::String(s) => render_string(s, style, flow),
        Value::Number(n) => quote_as(&n.to_string(), style),
        Value::Bool(b) => quote_as(if *b { "true" } else { "false" }, style),
        Value::Null => "null".to_owned(),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// Wraps text that needs no escaping in the given quotes.
fn quote_as(text: &str, style: Style) -> String {
    match style {
        Style::Plain => text.to_owned(),
        Style::Single => format!("'{text}'"),
        Style::Double => format!("\"{text}\""),
    }
}

/// The text a scalar holds after `value` is written: what a re-parse must find.
pub(crate) fn expected_text(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".to_owned()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_compiles() {
        assert!(NON_STRING.is_ok());
    }

    #[test]
    fn strings_that_would_change_type_are_quoted() {
        for s in [
            "1006",
            "0123",
            "1.20",
            "true",
            "True",
            "yes",
            "off",
            "y",
            "null",
            "~",
            "1e3",
            ".5",
            "-1",
            "+1",
            "0x1F",
            "0o17",
            "0b101",
            "1_000",
            "1:30",
            ".inf",
            "-.Inf",
            ".NaN",
            "2024-01-02",
            "<<",
        ] {
            assert!(resolves_to_non_string(s), "{s} should need quotes");
            assert_eq!(render_string(s, Style::Plain, false), format!("\"{s}\""));
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for s in [
            "1.2.3",
            "v1.2.3",
            "1006-rc1",
            "sha256:abcdef",
            "my-app",
            "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app",
            "500m",
            "a b",
            "a#b",
            "1.2.3-alpha+build.5",
        ] {
            assert!(!resolves_to_non_string(s), "{s}");
            assert_eq!(render_string(s, Style::Plain, false), s);
        }
    }

    #[test]
    fn syntax_that_plain_cannot_carry_is_quoted() {
        for s in [
            "", " a", "a ", "a: b", "a #b", "-a", "*a", "&a", "!a", "'a", "\"a", "a\nb",
        ] {
            assert!(!plain_ok(s, false), "{s:?}");
        }
        assert!(plain_ok("a,b", false));
        assert!(!plain_ok("a,b", true));
        assert!(!plain_ok("a}", true));
    }

    #[test]
    fn quoted_styles_are_kept_and_escaped() {
        assert_eq!(render_string("it's", Style::Single, false), "'it''s'");
        assert_eq!(
            render_string("a\"b\\c", Style::Double, false),
            "\"a\\\"b\\\\c\""
        );
        assert_eq!(render_string("a\nb", Style::Single, false), "\"a\\nb\"");
        assert_eq!(render_string("x\u{1}", Style::Double, false), "\"x\\x01\"");
    }

    #[test]
    fn json_scalars() {
        use serde_json::json;
        assert_eq!(
            render_json(&json!(1006), Style::Double, false).unwrap(),
            "\"1006\""
        );
        assert_eq!(
            render_json(&json!(1006), Style::Plain, false).unwrap(),
            "1006"
        );
        assert_eq!(
            render_json(&json!(true), Style::Single, false).unwrap(),
            "'true'"
        );
        assert_eq!(
            render_json(&json!(null), Style::Double, false).unwrap(),
            "null"
        );
        assert!(render_json(&json!({"a": 1}), Style::Plain, false).is_none());
    }
}
