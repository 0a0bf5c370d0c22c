//! Helm's `Chart.lock`, computed without Helm (pure; the helm-update-chart step does the IO).
//!
//! `helm dependency build` (what Argo CD runs) refuses a lock whose `digest` differs from
//! `sha256(json.Marshal([2][]*chart.Dependency{Chart.yaml dependencies, locked dependencies}))`
//! (Helm: `internal/resolver.HashReq`). So the lock is kept consistent by recomputing that digest
//! byte for byte: the `Dependency` struct's JSON field order and `omitempty` rules, and Go's
//! string escaping (`<`, `>`, `&` as `\u003c`…).

use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// One entry of `dependencies` in Chart.yaml (Helm's `chart.Dependency`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub import_values: Vec<Value>,
    pub alias: String,
}

/// A locked dependency: name, resolved version, repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub name: String,
    pub version: String,
    pub repository: String,
}

/// What Chart.yaml declares, as Helm reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartFile {
    pub api_version: String,
    pub dependencies: Vec<Dependency>,
}

/// What Chart.lock says.
#[derive(Debug, Clone, PartialEq)]
pub struct LockFile {
    pub digest: String,
    pub dependencies: Vec<Locked>,
}

/// A scalar read as its text: Go's YAML decoding keeps `version: 1.10` as "1.10" in a string
/// field, so no number parsing may happen on the way.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(String::new()))
            }
        }
        d.deserialize_str(V)
    }
}

fn text(t: Option<Text>) -> String {
    t.map(|t| t.0).unwrap_or_default()
}

#[derive(Deserialize)]
struct RawChart {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<Text>,
    #[serde(default)]
    dependencies: Option<Vec<RawDependency>>,
}

#[derive(Deserialize)]
struct RawDependency {
    #[serde(default)]
    name: Option<Text>,
    #[serde(default)]
    version: Option<Text>,
    #[serde(default)]
    repository: Option<Text>,
    #[serde(default)]
    condition: Option<Text>,
    #[serde(default)]
    tags: Option<Vec<Text>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, rename = "import-values")]
    import_values: Option<Vec<Value>>,
    #[serde(default)]
    alias: Option<Text>,
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    digest: Option<Text>,
    #[serde(default)]
    dependencies: Option<Vec<RawDependency>>,
}

/// Reads Chart.yaml.
pub fn parse_chart(text_: &str) -> Result<ChartFile, String> {
    let raw: RawChart = serde_saphyr::from_str(text_).map_err(|e| first_line(&e.to_string()))?;
    Ok(ChartFile {
        api_version: text(raw.api_version),
        dependencies: raw
            .dependencies
            .unwrap_or_default()
            .into_iter()
            .map(|d| Dependency {
                name: text(d.name),
                version: text(d.version),
                repository: text(d.repository),
                condition: text(d.condition),
                tags: d
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.0)
                    .collect(),
                enabled: d.enabled.unwrap_or(false),
                import_values: d.import_values.unwrap_or_default(),
                alias: text(d.alias),
            })
            .collect(),
    })
}

/// Reads Chart.lock.
pub fn parse_lock(text_: &str) -> Result<LockFile, String> {
    let raw: RawLock = serde_saphyr::from_str(text_).map_err(|e| first_line(&e.to_string()))?;
    Ok(LockFile {
        digest: text(raw.digest),
        dependencies: raw
            .dependencies
            .unwrap_or_default()
            .into_iter()
            .map(|d| Locked {
                name: text(d.name),
                version: text(d.version),
                repository: text(d.repository),
            })
            .collect(),
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_owned()
}

/// Helm's `HashReq(req, lock)`: `sha256:` and the hex SHA-256 of the JSON of both lists.
pub fn digest(req: &[Dependency], lock: &[Locked]) -> String {
    let mut json = String::from("[");
    list(&mut json, req.iter().map(dependency_json));
    json.push(',');
    list(
        &mut json,
        lock.iter().map(|l| {
            dependency_json(&Dependency {
                name: l.name.clone(),
                version: l.version.clone(),
                repository: l.repository.clone(),
                ..Dependency::default()
            })
        }),
    );
    json.push(']');
    let hash = Sha256::digest(json.as_bytes());
    let mut out = String::from("sha256:");
    for b in hash.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A Go slice: `null` when empty (Helm's lists are nil then), else `[a,b]`.
fn list(out: &mut String, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        out.push_str("null");
        return;
    }
    out.push('[');
    out.push_str(&items.join(","));
    out.push(']');
}

/// `chart.Dependency` as `encoding/json` writes it: declaration order, `omitempty` honoured.
fn dependency_json(d: &Dependency) -> String {
    let mut s = format!("{{\"name\":{}", go_string(&d.name));
    if !d.version.is_empty() {
        let _ = write!(s, ",\"version\":{}", go_string(&d.version));
    }
    let _ = write!(s, ",\"repository\":{}", go_string(&d.repository));
    if !d.condition.is_empty() {
        let _ = write!(s, ",\"condition\":{}", go_string(&d.condition));
    }
    if !d.tags.is_empty() {
        let tags: Vec<String> = d.tags.iter().map(|t| go_string(t)).collect();
        let _ = write!(s, ",\"tags\":[{}]", tags.join(","));
    }
    if d.enabled {
        s.push_str(",\"enabled\":true");
    }
    if !d.import_values.is_empty() {
        let values: Vec<String> = d.import_values.iter().map(go_value).collect();
        let _ = write!(s, ",\"import-values\":[{}]", values.join(","));
    }
    if !d.alias.is_empty() {
        let _ = write!(s, ",\"alias\":{}", go_string(&d.alias));
    }
    s.push('}');
    s
}

/// Any JSON value as Go writes an `interface{}`: maps with sorted keys.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => go_string(s),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", go_string(k), go_value(&m[k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
    }
}

/// A string as Go's `encoding/json` writes it (Helm hashes the JSON Go wrote).
fn go_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::expressions::write_go_json_string(&mut out, s);
    out
}

/// Chart.lock as Helm writes it (keys sorted, as sigs.k8s.io/yaml does).
pub fn render_lock(digest: &str, locked: &[Locked], generated: &str) -> String {
    let mut out = String::from("dependencies:\n");
    for l in locked {
        let _ = writeln!(out, "- name: {}", yaml_scalar(&l.name));
        let _ = writeln!(out, "  repository: {}", yaml_scalar(&l.repository));
        if !l.version.is_empty() {
            let _ = writeln!(out, "  version: {}", yaml_scalar(&l.version));
        }
    }
    let _ = writeln!(out, "digest: {digest}");
    let _ = writeln!(out, "generated: \"{generated}\"");
    out
}

/// Plain when that reads back as the same string, else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/:+@~-".contains(c));
    let starts_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '.');
    let looks_typed = s.parse::<f64>().is_ok()
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
        );
    if plain_chars && starts_ok && !looks_typed && !s.ends_with(':') {
        s.to_owned()
    } else {
        go_string(s)
    }
}

/// Whether `version` is one full version rather than a range, so it locks to itself (`1.2`
/// is a range to Helm: it would lock `1.2.0`, or whatever the repository calls it).
pub fn is_exact(version: &str) -> bool {
    crate::discovery::parse_version(version.trim(), true).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Chart.yaml / Chart.lock pair written by `helm dependency update` (Helm 3.17).
    const CHART: &str = "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n- name: app\n  version: 0.2.0\n  repository: oci://127.0.0.1:5000/charts\n- name: web\n  version: \"1.10\"\n  repository: http://127.0.0.1:8080\n  condition: web.enabled\n  tags: [front]\n  alias: site\n  import-values:\n  - child: exports.data\n    parent: mydata\n  - defaults\n";

    #[test]
    fn chart_fields_are_read_as_text() {
        let c = parse_chart(CHART).expect("chart");
        assert_eq!(c.api_version, "v2");
        assert_eq!(c.dependencies.len(), 2);
        assert_eq!(c.dependencies[1].version, "1.10");
        assert_eq!(c.dependencies[1].tags, ["front"]);
        assert_eq!(c.dependencies[1].import_values.len(), 2);
    }

    #[test]
    fn dependency_json_matches_go() {
        let c = parse_chart(CHART).expect("chart");
        assert_eq!(
            dependency_json(&c.dependencies[0]),
            r#"{"name":"app","version":"0.2.0","repository":"oci://127.0.0.1:5000/charts"}"#
        );
        assert_eq!(
            dependency_json(&c.dependencies[1]),
            r#"{"name":"web","version":"1.10","repository":"http://127.0.0.1:8080","condition":"web.enabled","tags":["front"],"import-values":[{"child":"exports.data","parent":"mydata"},"defaults"],"alias":"site"}"#
        );
        assert_eq!(
            go_string("a<b>&\"c\"\n"),
            r#""a\u003cb\u003e\u0026\"c\"\n""#
        );
    }

    #[test]
    fn digest_is_sha256_of_both_lists() {
        let req = vec![Dependency {
            name: "app".into(),
            version: "0.2.0".into(),
            repository: "oci://r/c".into(),
            ..Dependency::default()
        }];
        let lock = vec![Locked {
            name: "app".into(),
            version: "0.2.0".into(),
            repository: "oci://r/c".into(),
        }];
        let json = r#"[[{"name":"app","version":"0.2.0","repository":"oci://r/c"}],[{"name":"app","version":"0.2.0","repository":"oci://r/c"}]]"#;
        let want: String = Sha256::digest(json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest(&req, &lock), format!("sha256:{want}"));
        assert!(digest(&[], &[]).starts_with("sha256:"));
    }

    #[test]
    fn lock_renders_and_parses_back() {
        let locked = vec![Locked {
            name: "web".into(),
            version: "1.10".into(),
            repository: "http://127.0.0.1:8080".into(),
        }];
        let text = render_lock("sha256:ab", &locked, "2025-01-02T03:04:05.000000006Z");
        assert_eq!(
            text,
            "dependencies:\n- name: web\n  repository: http://127.0.0.1:8080\n  version: \"1.10\"\ndigest: sha256:ab\ngenerated: \"2025-01-02T03:04:05.000000006Z\"\n"
        );
        let back = parse_lock(&text).expect("lock");
        assert_eq!(back.dependencies, locked);
        assert_eq!(back.digest, "sha256:ab");
    }

    #[test]
    fn exact_versions_and_ranges() {
        assert!(is_exact("1.2.3"));
        assert!(is_exact("v1.2.3"));
        assert!(!is_exact("1.2"));
        assert!(!is_exact("^1.2.0"));
        assert!(!is_exact("~1.2"));
        assert!(!is_exact(">=1.0.0 <2"));
        assert!(!is_exact("1.x"));
    }
}
