//! Runtime values and the Go-compatible text forms Kargo's results go through.
//!
//! Kargo renders every non-string result with Go's `encoding/json` and re-parses the text, so
//! the exact bytes matter (HTML escaping, float formats, struct field order): they decide what
//! a mixed template like `tag-${{ x }}` produces.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    ArtifactReference, Chart, DiscoveredCommit, DiscoveredImageReference, FreightOrigin, GitCommit,
    Image,
};

/// A value during evaluation. It mirrors the Go types Kargo's environment holds: JSON data
/// (`map[string]any`), `map[string]string` (annotations, Secrets), and the API structs that
/// functions such as `imageFrom` return, which are read by Go field name (`.Tag`) but rendered
/// with their JSON tags (`"tag"`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Val>),
    Map(BTreeMap<String, Val>),
    /// A Go `map[string]string`: a missing key reads as `""`, not nil.
    StrMap(BTreeMap<String, String>),
    Struct(Box<GoStruct>),
    /// A Go `time.Duration` in nanoseconds, from `duration()`.
    Duration(i64),
    /// A Go `time.Time`, from `now()`, `date()` or a commit's or tag's date.
    Time(Box<jiff::Zoned>),
    /// A Go `*time.Location`, from `timezone()`.
    Location(Box<jiff::tz::TimeZone>),
    /// Go's `time.Month` or `time.Weekday`: integers that print as names and, being other
    /// types than `int`, never equal one (`t.Month() == 6` is false in expr-lang).
    TimeUnit(super::time::TimeUnit),
    /// A Masterminds `*semver.Version`, from `semverParse()`.
    SemVer(Box<super::semver_value::SemVer>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GoStruct {
    pub(crate) type_name: &'static str,
    pub(crate) fields: Vec<GoField>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GoField {
    /// The Go field name, used for member access.
    pub(crate) name: &'static str,
    /// The JSON tag, used when rendering.
    pub(crate) json: &'static str,
    pub(crate) omitempty: bool,
    pub(crate) value: Val,
}

impl GoStruct {
    pub(crate) fn field(&self, name: &str) -> Option<&Val> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    pub(crate) fn field_names(&self) -> Vec<&'static str> {
        self.fields.iter().map(|f| f.name).collect()
    }
}

fn field(name: &'static str, json: &'static str, value: Val) -> GoField {
    GoField {
        name,
        json,
        omitempty: true,
        value,
    }
}

fn opt_str(s: &Option<String>) -> Val {
    Val::Str(s.clone().unwrap_or_default())
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "nil",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float",
            Val::Str(_) => "string",
            Val::Array(_) => "array",
            Val::Map(_) | Val::StrMap(_) => "map",
            Val::Struct(s) => s.type_name,
            Val::Duration(_) => "time.Duration",
            Val::Time(_) => "time.Time",
            Val::Location(_) => "*time.Location",
            Val::SemVer(_) => "*semver.Version",
            Val::TimeUnit(u) => u.type_name(),
        }
    }

    pub(crate) fn from_json(v: &serde_json::Value) -> Val {
        match v {
            serde_json::Value::Null => Val::Nil,
            serde_json::Value::Bool(b) => Val::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Val::Str(s.clone()),
            serde_json::Value::Array(a) => Val::Array(a.iter().map(Val::from_json).collect()),
            serde_json::Value::Object(m) => Val::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Val::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value as Go's `json.Unmarshal` would hand it over: every number is a float64, so a
    /// big integer loses precision exactly as in Kargo.
    pub(crate) fn from_go_json(v: &serde_json::Value) -> Val {
        match v {
            serde_json::Value::Number(n) => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::Array(a) => Val::Array(a.iter().map(Val::from_go_json).collect()),
            serde_json::Value::Object(m) => Val::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Val::from_go_json(v)))
                    .collect(),
            ),
            other => Val::from_json(other),
        }
    }

    /// Converts to JSON the way Kargo's result ends up after a JSON round trip: structs use
    /// their JSON tags, and integral floats become integers so that `42` stays `42`.
    pub(crate) fn to_json(&self) -> Result<serde_json::Value, String> {
        Ok(match self {
            Val::Nil => serde_json::Value::Null,
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Int(i) | Val::Duration(i) => serde_json::Value::from(*i),
            // Go marshals a time as RFC 3339 and a Location (no exported fields) as {}.
            Val::Time(t) => serde_json::Value::String(super::time::rfc3339(t)),
            Val::Location(_) => serde_json::Value::Object(serde_json::Map::new()),
            // Masterminds marshals a version as its String().
            Val::SemVer(v) => serde_json::Value::String(v.string()),
            Val::TimeUnit(u) => serde_json::Value::from(u.number()),
            Val::Float(f) => serde_json::Value::Number(json_number(*f)?),
            Val::Str(s) => serde_json::Value::String(s.clone()),
            Val::Array(a) => {
                serde_json::Value::Array(a.iter().map(Val::to_json).collect::<Result<_, _>>()?)
            }
            Val::Map(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), v.to_json()?);
                }
                serde_json::Value::Object(out)
            }
            Val::StrMap(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            ),
            Val::Struct(s) => {
                let mut out = serde_json::Map::new();
                for f in &s.fields {
                    if f.omitempty && f.value.is_empty() {
                        continue;
                    }
                    out.insert(f.json.to_string(), f.value.to_json()?);
                }
                serde_json::Value::Object(out)
            }
        })
    }

    /// Go's `omitempty` notion of empty.
    fn is_empty(&self) -> bool {
        match self {
            Val::Nil => true,
            Val::Bool(b) => !b,
            Val::Int(i) | Val::Duration(i) => *i == 0,
            // A struct in Go, never empty for omitempty.
            Val::Time(_) | Val::Location(_) | Val::SemVer(_) => false,
            Val::TimeUnit(u) => u.number() == 0,
            Val::Float(f) => *f == 0.0,
            Val::Str(s) => s.is_empty(),
            Val::Array(a) => a.is_empty(),
            Val::Map(m) => m.is_empty(),
            Val::StrMap(m) => m.is_empty(),
            Val::Struct(_) => false,
        }
    }

    /// Renders like Go's `json.Marshal` (compact, HTML-escaped, sorted map keys).
    pub(crate) fn go_json(&self) -> Result<String, String> {
        let mut out = String::new();
        self.write_go_json(&mut out, None, 0)?;
        Ok(out)
    }

    /// Renders like Go's `json.MarshalIndent(v, "", indent)`.
    pub(crate) fn go_json_indent(&self, indent: &str) -> Result<String, String> {
        let mut out = String::new();
        self.write_go_json(&mut out, Some(indent), 0)?;
        Ok(out)
    }

    fn write_go_json(
        &self,
        out: &mut String,
        indent: Option<&str>,
        depth: usize,
    ) -> Result<(), String> {
        let newline = |out: &mut String, depth: usize| {
            if let Some(ind) = indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(ind);
                }
            }
        };
        let colon = if indent.is_some() { ": " } else { ":" };
        match self {
            Val::Nil => out.push_str("null"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Int(i) | Val::Duration(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => out.push_str(&go_json_float(*f)?),
            Val::Time(t) => write_go_json_string(out, &super::time::rfc3339(t)),
            Val::Location(_) => out.push_str("{}"),
            Val::SemVer(v) => write_go_json_string(out, &v.string()),
            Val::TimeUnit(u) => {
                let _ = write!(out, "{}", u.number());
            }
            Val::Str(s) => write_go_json_string(out, s),
            Val::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    v.write_go_json(out, indent, depth + 1)?;
                }
                if !a.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            Val::Map(_) | Val::StrMap(_) | Val::Struct(_) => {
                let entries: Vec<(&str, std::borrow::Cow<'_, Val>)> = match self {
                    Val::Map(m) => m
                        .iter()
                        .map(|(k, v)| (k.as_str(), std::borrow::Cow::Borrowed(v)))
                        .collect(),
                    Val::StrMap(m) => m
                        .iter()
                        .map(|(k, v)| (k.as_str(), std::borrow::Cow::Owned(Val::Str(v.clone()))))
                        .collect(),
                    Val::Struct(s) => s
                        .fields
                        .iter()
                        .filter(|f| !(f.omitempty && f.value.is_empty()))
                        .map(|f| (f.json, std::borrow::Cow::Borrowed(&f.value)))
                        .collect(),
                    _ => Vec::new(),
                };
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_go_json_string(out, k);
                    out.push_str(colon);
                    v.write_go_json(out, indent, depth + 1)?;
                }
                if !entries.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
        Ok(())
    }

    /// Go's `fmt.Sprint` (`%v`), which expr's `string()` uses.
    pub(crate) fn go_display(&self) -> String {
        match self {
            Val::Nil => "<nil>".to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Duration(d) => super::duration::go_duration_string(*d),
            Val::Time(t) => super::time::go_string(t),
            Val::Location(tz) => super::time::location_name(tz),
            Val::SemVer(v) => v.string(),
            Val::TimeUnit(u) => u.name().to_string(),
            Val::Float(f) => go_float_g(*f),
            Val::Str(s) => s.clone(),
            Val::Array(a) => {
                let items: Vec<String> = a.iter().map(Val::go_display).collect();
                format!("[{}]", items.join(" "))
            }
            Val::Map(m) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.go_display()))
                    .collect();
                format!("map[{}]", items.join(" "))
            }
            Val::StrMap(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", items.join(" "))
            }
            Val::Struct(s) => {
                let items: Vec<String> = s.fields.iter().map(|f| f.value.go_display()).collect();
                format!("{{{}}}", items.join(" "))
            }
        }
    }

    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Val::Str(s) => format!("string {s:?}"),
            Val::Nil => "nil".to_string(),
            Val::Array(_) | Val::Map(_) | Val::StrMap(_) | Val::Struct(_) => {
                self.type_name().to_string()
            }
            other => format!("{} {}", other.type_name(), other.go_display()),
        }
    }
}

/// Kargo's `GitCommit` as its expressions see it.
pub(crate) fn commit_val(c: &GitCommit) -> Val {
    Val::Struct(Box::new(GoStruct {
        type_name: "GitCommit",
        fields: vec![
            field("RepoURL", "repoURL", opt_str(&c.repo_url)),
            field("ID", "id", opt_str(&c.id)),
            field("Branch", "branch", opt_str(&c.branch)),
            field("Tag", "tag", opt_str(&c.tag)),
            field("Message", "message", opt_str(&c.message)),
            field("Author", "author", opt_str(&c.author)),
            field("Committer", "committer", opt_str(&c.committer)),
            field(
                "SubscriptionName",
                "subscriptionName",
                opt_str(&c.subscription_name),
            ),
        ],
    }))
}

/// Kargo's `Image` as its expressions see it.
pub(crate) fn image_val(i: &Image) -> Val {
    Val::Struct(Box::new(GoStruct {
        type_name: "Image",
        fields: vec![
            field("RepoURL", "repoURL", opt_str(&i.repo_url)),
            field("Tag", "tag", opt_str(&i.tag)),
            field("Digest", "digest", opt_str(&i.digest)),
            field(
                "Annotations",
                "annotations",
                Val::StrMap(i.annotations.clone()),
            ),
            field(
                "SubscriptionName",
                "subscriptionName",
                opt_str(&i.subscription_name),
            ),
        ],
    }))
}

/// Kargo's `Chart` as its expressions see it.
pub(crate) fn chart_val(c: &Chart) -> Val {
    Val::Struct(Box::new(GoStruct {
        type_name: "Chart",
        fields: vec![
            field("RepoURL", "repoURL", opt_str(&c.repo_url)),
            field("Name", "name", opt_str(&c.name)),
            field("Version", "version", opt_str(&c.version)),
            field(
                "SubscriptionName",
                "subscriptionName",
                opt_str(&c.subscription_name),
            ),
        ],
    }))
}

/// A timestamp as Kargo's JSON renders a `metav1.Time` (RFC 3339); nil when unknown.
/// A `*metav1.Time`: nil when absent, else a time whose Go methods (`.After()`, `.Year()`)
/// expressions can call, as expr-lang reaches the embedded `time.Time`'s.
fn opt_time(t: &Option<Time>) -> Val {
    t.as_ref().map_or(Val::Nil, |t| {
        Val::Time(Box::new(t.0.to_zoned(jiff::tz::TimeZone::UTC)))
    })
}

/// Kargo's `DiscoveredImageReference`, what `imageFrom` returns in a Warehouse's
/// `freightCreationCriteria`.
pub(crate) fn discovered_image_val(i: &DiscoveredImageReference) -> Val {
    Val::Struct(Box::new(GoStruct {
        type_name: "DiscoveredImageReference",
        fields: vec![
            field("Tag", "tag", Val::Str(i.tag.clone())),
            field("Digest", "digest", Val::Str(i.digest.clone())),
            field(
                "Annotations",
                "annotations",
                Val::StrMap(i.annotations.clone()),
            ),
            field("CreatedAt", "createdAt", opt_time(&i.created_at)),
        ],
    }))
}

/// Kargo's `DiscoveredCommit`, what `commitFrom` returns in a Warehouse's
/// `freightCreationCriteria`.
pub(crate) fn discovered_commit_val(c: &DiscoveredCommit) -> Val {
    Val::Struct(Box::new(GoStruct {
        type_name: "DiscoveredCommit",
        fields: vec![
            field("ID", "id", opt_str(&c.id)),
            field("Branch", "branch", opt_str(&c.branch)),
            field("Tag", "tag", opt_str(&c.tag)),
            field("Subject", "subject", opt_str(&c.subject)),
            field("Author", "author", opt_str(&c.author)),
            field("Committer", "committer", opt_str(&c.committer)),
            field("CreatorDate", "creatorDate", opt_time(&c.creator_date)),
        ],
    }))
}

/// Kargo's `expressionFriendlyArtifactReference`, what `artifactFrom` returns: Go field names
/// without JSON tags (so they render as `ArtifactType`, …), and `Metadata` decoded from JSON
/// (`{}` when there is none).
pub(crate) fn artifact_val(a: &ArtifactReference) -> Val {
    let metadata = match &a.metadata {
        Some(m @ serde_json::Value::Object(_)) => Val::from_go_json(m),
        _ => Val::Map(BTreeMap::new()),
    };
    let plain = |name: &'static str, value: Val| GoField {
        name,
        json: name,
        omitempty: false,
        value,
    };
    Val::Struct(Box::new(GoStruct {
        type_name: "expressionFriendlyArtifactReference",
        fields: vec![
            plain("ArtifactType", opt_str(&a.artifact_type)),
            plain("SubscriptionName", Val::Str(a.subscription_name.clone())),
            plain("Version", Val::Str(a.version.clone())),
            plain("Metadata", metadata),
        ],
    }))
}

pub(crate) const ORIGIN_TYPE: &str = "FreightOrigin";

/// Kargo's `FreightOrigin`, the value `warehouse(name)` returns.
pub(crate) fn origin_val(o: &FreightOrigin) -> Val {
    Val::Struct(Box::new(GoStruct {
        type_name: ORIGIN_TYPE,
        fields: vec![
            GoField {
                name: "Kind",
                json: "kind",
                omitempty: false,
                value: Val::Str(o.kind.to_string()),
            },
            GoField {
                name: "Name",
                json: "name",
                omitempty: false,
                value: Val::Str(o.name.clone()),
            },
        ],
    }))
}

/// Reads back a value made by [`origin_val`]; anything else is not an origin, as in Kargo,
/// where only a real `FreightOrigin` passes the type assertion.
pub(crate) fn as_origin(v: &Val) -> Option<FreightOrigin> {
    match v {
        Val::Struct(s) if s.type_name == ORIGIN_TYPE => match s.field("Name") {
            Some(Val::Str(name)) => Some(FreightOrigin::warehouse(name.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON number for a float as Kargo's output carries it: integral values print without a
/// fraction in Go, so they become integers here (a `replicas: ${{ 3 }}` must stay `3`).
pub(crate) fn json_number(f: f64) -> Result<serde_json::Number, String> {
    if !f.is_finite() {
        return Err(format!("json: unsupported value: {}", go_float_g(f)));
    }
    // 2^63: beyond it an integral float no longer fits an i64.
    if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 {
        return Ok(serde_json::Number::from(f as i64));
    }
    serde_json::Number::from_f64(f).ok_or_else(|| format!("json: unsupported value: {f}"))
}

/// Go's `encoding/json` float format.
fn go_json_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("json: unsupported value: {}", go_float_g(f)));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go writes 'e' format with a two-digit exponent, then trims "e-07" to "e-7".
        let (mant, exp) = split_exp(f);
        if exp < 0 {
            Ok(format!("{mant}e-{}", -exp))
        } else {
            Ok(format!("{mant}e+{exp:02}"))
        }
    } else {
        Ok(format!("{f}"))
    }
}

/// The shortest mantissa and decimal exponent of a finite, non-zero float.
fn split_exp(f: f64) -> (String, i32) {
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub(crate) fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (mant, exp) = split_exp(f);
    // With the shortest precision Go switches to exponent form outside [1e-4, 1e6).
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Appends `s` as Go's `encoding/json` writes a string (HTML-safe escaping on, Go ≥ 1.22).
pub(crate) fn write_go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Go escapes these for safe embedding in HTML and JavaScript.
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `strconv.Quote` (what `fmt.Sprintf("%q", s)` gives), used by Kargo's `quote()`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if go_is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` without Unicode category tables: controls,
/// spaces other than U+0020 and the common invisible format characters are not printable.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{e000}'..='\u{f8ff}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{10ffff}'
    )
}
