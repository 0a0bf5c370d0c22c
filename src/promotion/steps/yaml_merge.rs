//! yaml-merge: layers YAML files over each other, in order, into one output file.
//!
//! Kargo's rules (`pkg/yaml/merge.go`): the first file is the base; mappings merge recursively,
//! key by key (keys compared by their text); a sequence, scalar or explicit null from a later
//! file replaces the earlier value whole; keys present in one file only are kept; an empty file
//! contributes nothing. Key order: the base's keys first, then new keys in the order they appear.
//!
//! Difference from Kargo, documented: Kargo re-encodes yaml.v3 nodes, so it keeps comments and
//! copies anchors, aliases and `<<` merge keys through unresolved. haul merges parsed values:
//! comments are dropped and aliases are expanded in the output.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, path_in};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    in_files: Vec<String>,
    out_file: String,
    #[serde(default)]
    ignore_missing_files: bool,
}

/// A YAML value that keeps mapping key order (serde_json's map sorts keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    /// The text Kargo compares mapping keys by (yaml.v3 `Node.Value`).
    fn key_text(&self) -> String {
        match self {
            Yaml::Null => String::new(),
            Yaml::Bool(b) => b.to_string(),
            Yaml::Int(n) => n.to_string(),
            Yaml::UInt(n) => n.to_string(),
            Yaml::Float(f) => f.to_string(),
            Yaml::Str(s) => s.clone(),
            // Collections as keys are exotic; compare them structurally through their debug form.
            other => format!("{other:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Yaml;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
                Ok(Yaml::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
                Yaml::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Yaml, E> {
                Ok(Yaml::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Yaml, E> {
                Ok(Yaml::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
                Ok(i64::try_from(v).map_or(Yaml::UInt(v), Yaml::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Yaml, E> {
                Ok(Yaml::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Yaml, E> {
                Ok(Yaml::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Yaml, E> {
                Ok(Yaml::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element()? {
                    items.push(v);
                }
                Ok(Yaml::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = a.next_entry()? {
                    entries.push((k, v));
                }
                Ok(Yaml::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Yaml {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Yaml::Null => s.serialize_unit(),
            Yaml::Bool(b) => s.serialize_bool(*b),
            Yaml::Int(n) => s.serialize_i64(*n),
            Yaml::UInt(n) => s.serialize_u64(*n),
            Yaml::Float(f) => s.serialize_f64(*f),
            Yaml::Str(v) => s.serialize_str(v),
            Yaml::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Yaml::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Layers `src` over `dst` with Kargo's rules (see the module docs).
pub fn merge(dst: Yaml, src: Yaml) -> Yaml {
    match (dst, src) {
        (Yaml::Map(dst), Yaml::Map(src)) => merge_maps(dst, src),
        // Kind mismatch, scalar, sequence or null: the later value wins whole.
        (_, src) => src,
    }
}

fn merge_maps(dst: Vec<(Yaml, Yaml)>, src: Vec<(Yaml, Yaml)>) -> Yaml {
    let mut src: Vec<Option<(Yaml, Yaml)>> = src.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(dst.len() + src.len());
    for (k, v) in dst {
        let text = k.key_text();
        let over = src
            .iter_mut()
            .rev() // A duplicate key in one file: the last occurrence wins, as in yaml.v3's map.
            .find(|e| e.as_ref().is_some_and(|(sk, _)| sk.key_text() == text))
            .and_then(Option::take);
        let v = match over {
            Some((_, sv)) => merge(v, sv),
            None => v,
        };
        out.push((k, v));
    }
    let seen: Vec<String> = out.iter().map(|(k, _)| k.key_text()).collect();
    out.extend(
        src.into_iter()
            .flatten()
            .filter(|(k, _)| !seen.contains(&k.key_text())),
    );
    Yaml::Map(out)
}

/// Merges the documents' texts in order. `None` when every input is empty.
pub fn merge_texts(inputs: &[(String, String)]) -> Result<Option<Yaml>, StepError> {
    let mut merged: Option<Yaml> = None;
    for (name, text) in inputs {
        // An empty (or comment-only) file contributes nothing, as in Kargo.
        let doc: Option<Yaml> = serde_saphyr::from_str(text)
            .map_err(|e| StepError::Failed(format!("{name}: not valid YAML: {e}")))?;
        let Some(doc) = doc else { continue };
        merged = Some(match merged {
            None => doc,
            Some(base) => merge(base, doc),
        });
    }
    Ok(merged)
}

/// Kargo's commit message for yaml-merge.
pub fn commit_message(out_file: &str, in_files: &[String]) -> String {
    match in_files {
        [] => String::new(),
        [one] => format!("Merged {one} to {out_file}"),
        many => {
            let mut m = format!("Merged {} YAML files to {out_file}", many.len());
            for f in many {
                m.push_str(&format!("\n- {f}"));
            }
            m
        }
    }
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.in_files.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.inFiles: at least one file is required".into(),
        ));
    }
    let out_file = path_in(env, &cfg.out_file, "outFile")?;
    let mut inputs = Vec::new();
    for (i, rel) in cfg.in_files.iter().enumerate() {
        let file = path_in(env, rel, &format!("inFiles[{i}]"))?;
        match std::fs::read_to_string(&file) {
            Ok(text) => inputs.push((rel.clone(), text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && cfg.ignore_missing_files => {}
            Err(e) => {
                return Err(StepError::Failed(format!(
                    "config.inFiles[{i}]: cannot read {rel}: {e}"
                )));
            }
        }
    }
    if inputs.is_empty() && !cfg.ignore_missing_files {
        return Err(StepError::Failed("no input files found to merge".into()));
    }
    let body = match merge_texts(&inputs)? {
        Some(doc) => serde_saphyr::to_string(&doc)
            .map_err(|e| StepError::Errored(format!("encoding the merged YAML: {e}")))?,
        // Kargo writes an empty file when there is nothing to merge.
        None => String::new(),
    };
    if let Some(parent) = out_file.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StepError::Errored(format!("creating {}: {e}", parent.display())))?;
    }
    std::fs::write(&out_file, body)
        .map_err(|e| StepError::Errored(format!("writing {}: {e}", cfg.out_file)))?;
    let mut out = Map::new();
    out.insert(
        "commitMessage".into(),
        Value::String(commit_message(&cfg.out_file, &cfg.in_files)),
    );
    Ok(StepOutcome::succeeded(out))
}

step! { pub struct YamlMerge = "yaml-merge", Config, |cfg, env| run(cfg, env) }

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(files: &[&str]) -> String {
        let inputs: Vec<(String, String)> = files
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("f{i}.yaml"), t.to_string()))
            .collect();
        match merge_texts(&inputs).expect("merge") {
            Some(doc) => serde_saphyr::to_string(&doc).expect("encode"),
            None => String::new(),
        }
    }

    #[test]
    fn later_files_win_and_maps_merge_recursively_in_order() {
        let base = "image:\n  repo: nginx\n  tag: \"1.0\"\nreplicas: 1\nports: [80, 443]\nlabels:\n  a: x\n";
        let over = "replicas: 3\nimage:\n  tag: \"2.0\"\n  pullPolicy: Always\nports: [8080]\nlabels: null\nextra: true\n";
        let out = merged(&[base, over]);
        let v: serde_json::Value = serde_saphyr::from_str(&out).expect("reparse");
        assert_eq!(
            v,
            serde_json::json!({
                "image": {"repo": "nginx", "tag": "2.0", "pullPolicy": "Always"},
                "replicas": 3, "ports": [8080], "labels": null, "extra": true
            })
        );
        // The base's key order first, new keys after, nested too.
        let order: Vec<usize> = [
            "image:",
            "repo:",
            "tag:",
            "pullPolicy:",
            "replicas:",
            "extra:",
        ]
        .iter()
        .map(|k| out.find(k).expect(k))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    #[test]
    fn kinds_replace_and_empty_files_are_skipped() {
        assert_eq!(merged(&["", "# only a comment\n"]), "");
        let out = merged(&["a:\n  b: 1\n", "", "a: [1, 2]\n"]);
        let v: serde_json::Value = serde_saphyr::from_str(&out).expect("reparse");
        assert_eq!(v, serde_json::json!({"a": [1, 2]}));
        // A string key "1" and an integer key 1 are the same key, as in Kargo.
        let out = merged(&["1: a\n", "\"1\": b\n"]);
        assert_eq!(out.matches('b').count(), 1, "{out}");
        assert!(!out.contains('a'), "{out}");
        let e = merge_texts(&[("bad.yaml".into(), "a: [\n".into())]).expect_err("invalid");
        assert!(e.to_string().starts_with("bad.yaml: not valid YAML"), "{e}");
    }

    #[test]
    fn commit_message_is_kargos() {
        assert_eq!(
            commit_message("out.yaml", &["a.yaml".into()]),
            "Merged a.yaml to out.yaml"
        );
        assert_eq!(
            commit_message("out.yaml", &["a.yaml".into(), "b.yaml".into()]),
            "Merged 2 YAML files to out.yaml\n- a.yaml\n- b.yaml"
        );
    }
}
