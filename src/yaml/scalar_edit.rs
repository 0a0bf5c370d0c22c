//! Kargo's `yaml-update`: set existing scalars addressed by dotted keys, changing nothing else.
//!
//! Kargo splices `QuoteIfNecessary(value)` from the scalar's column to the end of its line
//! (`pkg/yaml/yaml.go`), which drops the old quotes and any trailing flow-mapping siblings. We
//! replace exactly the scalar's byte span instead, so `limits: { cpu: 500m, memory: 128Mi }`,
//! trailing comments and the original quoting survive.
//!
//! Semantics, matching Kargo unless noted:
//! * Keys use Kargo's sjson-style syntax (`pkg/sjson/split_key.go`): `.` separates parts, `\.`
//!   and `\:` escape, and a leading `:` forces a numeric part to be a mapping key.
//! * Integer parts index sequences.
//! * The key must exist and be a scalar; nothing is created.
//! * Multi-document files: each key is looked up in the documents in order and the first
//!   document in which the whole key exists is edited (Kargo reads only the first document).
//! * Keys are not resolved through aliases or merge keys (`<<`): editing an alias would change
//!   the anchored node elsewhere, so we refuse. An anchored scalar (`&a 1`) keeps its anchor.
//! * Block scalars (`|`, `>`) are refused rather than reflowed.

use serde_json::Value;

use super::YamlEditError;
use super::quoting::{self, Style};
use super::tree::{self, Document, Kind, Node};

/// One part of a dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPart {
    pub text: String,
    /// Written with a leading `:`, so it names a mapping key even if it looks like an index.
    pub force_key: bool,
}

/// Splits a dotted key as Kargo's `SplitKey` does.
pub(crate) fn split_key(key: &str) -> Result<Vec<KeyPart>, YamlEditError> {
    let invalid = |reason: &str| YamlEditError::InvalidKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = key.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty key"));
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut force_key = false;
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('.' | ':')) => current.push(e),
                _ => return Err(invalid("only \\. and \\: escapes are allowed")),
            },
            '.' => {
                if current.is_empty() {
                    return Err(invalid("empty key part"));
                }
                parts.push(KeyPart {
                    text: std::mem::take(&mut current),
                    force_key,
                });
                force_key = false;
            }
            ':' if current.is_empty() => force_key = true,
            ':' => return Err(invalid("unescaped colon inside a key part")),
            c => current.push(c),
        }
    }
    if current.is_empty() {
        return Err(invalid("empty key part"));
    }
    parts.push(KeyPart {
        text: current,
        force_key,
    });
    Ok(parts)
}

/// A scalar found by key, and whether it sits inside a flow collection (which restricts plain
/// scalars further).
pub(crate) struct Found<'a> {
    pub node: &'a Node,
    pub in_flow: bool,
}

/// Walks `parts` from `root`. `NotFound` means "try the next document"; any other error is final.
fn resolve<'a>(root: &'a Node, parts: &[KeyPart], key: &str) -> Result<Found<'a>, YamlEditError> {
    let mut node = root;
    let mut in_flow = false;
    for part in parts {
        if matches!(node.kind, Kind::Alias) {
            return Err(alias_error(key));
        }
        let next = match &node.kind {
            Kind::Mapping { flow, .. } => {
                in_flow |= *flow;
                node.get(&part.text)
                    .map_err(|_| YamlEditError::DuplicateKey {
                        key: key.to_owned(),
                        part: part.text.clone(),
                    })?
            }
            Kind::Sequence { flow, items } if !part.force_key => {
                in_flow |= *flow;
                part.text.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        node = next.ok_or_else(|| YamlEditError::NotFound(key.to_owned()))?;
    }
    match &node.kind {
        Kind::Scalar { style, .. } if Style::of(*style).is_none() => {
            Err(YamlEditError::Unsupported {
                key: key.to_owned(),
                reason: "it is a block scalar (| or >)".to_owned(),
            })
        }
        Kind::Scalar { .. } => Ok(Found { node, in_flow }),
        Kind::Alias => Err(alias_error(key)),
        _ => Err(YamlEditError::NotScalar {
            key: key.to_owned(),
            kind: node.kind_name(),
        }),
    }
}

fn alias_error(key: &str) -> YamlEditError {
    YamlEditError::Unsupported {
        key: key.to_owned(),
        reason: "it goes through an alias (*name); edit the anchored node instead".to_owned(),
    }
}

/// Finds `key` in the first document that has it.
pub(crate) fn find<'a>(docs: &'a [Document], key: &str) -> Result<Found<'a>, YamlEditError> {
    let parts = split_key(key)?;
    for doc in docs {
        match resolve(&doc.root, &parts, key) {
            Err(YamlEditError::NotFound(_)) => continue,
            other => return other,
        }
    }
    Err(YamlEditError::NotFound(key.to_owned()))
}

/// The replacement text for scalar `node` of `text`, in the node's own style. An empty value
/// (`key:`) gets a separating space, as Kargo adds one.
pub(crate) fn replacement(
    text: &str,
    node: &Node,
    value: &Value,
    in_flow: bool,
    key: &str,
) -> Result<String, YamlEditError> {
    let style = match &node.kind {
        Kind::Scalar { style, .. } => Style::of(*style),
        _ => None,
    }
    .ok_or_else(|| YamlEditError::NotScalar {
        key: key.to_owned(),
        kind: node.kind_name(),
    })?;
    let rendered =
        quoting::render_json(value, style, in_flow).ok_or_else(|| YamlEditError::InvalidValue {
            key: key.to_owned(),
        })?;
    if !node.is_empty_scalar() {
        return Ok(rendered);
    }
    // The tree moves empty mapping values to just after their `:`; anything else (an empty
    // sequence item) has no reliable position to write at.
    if !text[..node.start]
        .trim_end_matches([' ', '\t'])
        .ends_with(':')
    {
        return Err(YamlEditError::Unsupported {
            key: key.to_owned(),
            reason: "it is an empty sequence item".to_owned(),
        });
    }
    // An empty value's span is zero-width: keep the text separated from `:` and from a comment.
    let before = if text[..node.start].ends_with([' ', '\t']) {
        ""
    } else {
        " "
    };
    let after = match text[node.start..].chars().next() {
        Some(c) if !c.is_whitespace() && !matches!(c, ',' | ']' | '}') => " ",
        _ => "",
    };
    Ok(format!("{before}{rendered}{after}"))
}

/// Replaces byte ranges of `text`; edits must not overlap.
pub(crate) fn splice(text: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(text.len() + 16 * edits.len());
    let mut pos = 0;
    for (start, end, replacement) in edits {
        out.push_str(&text[pos..start]);
        out.push_str(&replacement);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Checks that `key` in `text` now reads as `value`, typed as intended.
pub(crate) fn verify(docs: &[Document], key: &str, value: &Value) -> Result<(), YamlEditError> {
    let found = find(docs, key).map_err(|e| YamlEditError::Verification(e.to_string()))?;
    let Kind::Scalar { value: got, style } = &found.node.kind else {
        return Err(YamlEditError::Verification(format!(
            "{key} is no longer a scalar"
        )));
    };
    let want = quoting::expected_text(value).unwrap_or_default();
    let typed_ok = !(value.is_string()
        && Style::of(*style) == Some(Style::Plain)
        && quoting::resolves_to_non_string(got));
    if *got != want || !typed_ok {
        return Err(YamlEditError::Verification(format!(
            "{key} reads back as {got:?}, expected {want:?}"
        )));
    }
    Ok(())
}

/// Sets each existing scalar `key` to its value, leaving every other byte of `doc` unchanged.
///
/// Values may be strings, numbers, booleans or null. The old scalar's quoting style is kept; a
/// plain scalar is quoted only when the new string would otherwise read as another type
/// (`"1006"`, `"true"`, `"1.20"`, `"0123"`). When the same key appears twice, the last value wins.
///
/// ```
/// use haul::yaml::set_values;
/// let doc = "image:\n  tag: \"1005\" # bumped by haul\n";
/// let out = set_values(doc, &[("image.tag".into(), "1006".into())]).unwrap();
/// assert_eq!(out, "image:\n  tag: \"1006\" # bumped by haul\n");
/// ```
pub fn set_values(doc: &str, updates: &[(String, Value)]) -> Result<String, YamlEditError> {
    let docs = tree::parse(doc)?;
    // (start, end, replacement, index of the update that produced it)
    let mut edits: Vec<(usize, usize, String, usize)> = Vec::with_capacity(updates.len());
    for (i, (key, value)) in updates.iter().enumerate() {
        let found = find(&docs, key)?;
        let text = replacement(doc, found.node, value, found.in_flow, key)?;
        let (start, end) = (found.node.start, found.node.end);
        // Distinct scalars never share a start, so this is the same scalar set again: last wins.
        edits.retain(|e| e.0 != start);
        edits.push((start, end, text, i));
    }
    let winners: Vec<usize> = edits.iter().map(|e| e.3).collect();
    let out = splice(
        doc,
        edits.into_iter().map(|(s, e, t, _)| (s, e, t)).collect(),
    );
    let reparsed = tree::parse(&out).map_err(|e| YamlEditError::Verification(e.to_string()))?;
    for i in winners {
        let (key, value) = &updates[i];
        verify(&reparsed, key, value)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::test_support::{assert_diff, fixture, reparse};
    use serde_json::json;

    fn set(doc: &str, key: &str, value: Value) -> Result<String, YamlEditError> {
        set_values(doc, &[(key.to_owned(), value)])
    }

    #[test]
    fn split_key_follows_kargo() {
        let parts = split_key(r"a\.b.:0.c\:d.1").unwrap();
        let texts: Vec<_> = parts
            .iter()
            .map(|p| (p.text.as_str(), p.force_key))
            .collect();
        assert_eq!(
            texts,
            [("a.b", false), ("0", true), ("c:d", false), ("1", false)]
        );
        for bad in ["", "a..b", "a.", ".a", r"a\b", "a:b", ":a:"] {
            assert!(
                matches!(split_key(bad), Err(YamlEditError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keeps_double_single_and_plain_styles() {
        let doc = "a: \"x\"  # c\nb: 'y'\nc: z\n";
        let out = set_values(
            doc,
            &[
                ("a".into(), json!("1006")),
                ("b".into(), json!("1006")),
                ("c".into(), json!("v2")),
            ],
        )
        .unwrap();
        assert_eq!(out, "a: \"1006\"  # c\nb: '1006'\nc: v2\n");
    }

    #[test]
    fn plain_is_quoted_only_when_the_string_would_change_type() {
        for (value, written) in [
            ("1006", "\"1006\""),
            ("true", "\"true\""),
            ("1.20", "\"1.20\""),
            ("0123", "\"0123\""),
            ("1.2.3", "1.2.3"),
        ] {
            let out = set("tag: v1 # c\n", "tag", json!(value)).unwrap();
            assert_eq!(out, format!("tag: {written} # c\n"));
            assert_eq!(reparse(&out)[0]["tag"], json!(value));
        }
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(set("n: 1\n", "n", json!(3)).unwrap(), "n: 3\n");
        assert_eq!(set("n: \"1\"\n", "n", json!(3)).unwrap(), "n: \"3\"\n");
        assert_eq!(set("b: false\n", "b", json!(true)).unwrap(), "b: true\n");
        assert_eq!(set("b: x\n", "b", json!(null)).unwrap(), "b: null\n");
        assert_eq!(set("b:\n", "b", json!("v")).unwrap(), "b: v\n");
        assert_eq!(set("b: # c\n", "b", json!("v")).unwrap(), "b: v # c\n");
        assert_eq!(
            set("l: {b: }\n", "l.b", json!("v")).unwrap(),
            "l: {b: v }\n"
        );
        assert_eq!(set("l: {b:}\n", "l.b", json!("v")).unwrap(), "l: {b: v}\n");
    }

    #[test]
    fn errors_name_the_key() {
        let doc = "image:\n  tag: v1\n  lit: |\n    x\nlist: [1, 2]\nbase: &b {x: 1}\nref: *b\n";
        assert_eq!(
            set(doc, "image.nope", json!("x")).unwrap_err().to_string(),
            "key image.nope not found"
        );
        assert_eq!(
            set(doc, "image", json!("x")).unwrap_err().to_string(),
            "key image is a mapping, not a scalar"
        );
        assert_eq!(
            set(doc, "list", json!("x")).unwrap_err().to_string(),
            "key list is a sequence, not a scalar"
        );
        assert!(matches!(
            set(doc, "list.5", json!("x")),
            Err(YamlEditError::NotFound(_))
        ));
        assert!(matches!(
            set(doc, "list.:0", json!("x")),
            Err(YamlEditError::NotFound(_))
        ));
        assert!(matches!(
            set(doc, "image.lit", json!("x")),
            Err(YamlEditError::Unsupported { .. })
        ));
        assert!(matches!(
            set(doc, "ref.x", json!("x")),
            Err(YamlEditError::Unsupported { .. })
        ));
        assert!(matches!(
            set(doc, "image.tag", json!(["x"])),
            Err(YamlEditError::InvalidValue { .. })
        ));
        assert!(matches!(
            set("a: [\n", "a", json!(1)),
            Err(YamlEditError::Parse(_))
        ));
        assert!(matches!(
            set("a: 1\na: 2\n", "a", json!(1)),
            Err(YamlEditError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn sequences_flow_collections_and_escaped_keys() {
        let doc = "spec:\n  containers:\n    - name: app\n      image: a:1 # x\n\
                   lim: { cpu: 500m, memory: 128Mi }\nann:\n  prometheus.io/port: \"80\"\n";
        let out = set_values(
            doc,
            &[
                ("spec.containers.0.image".into(), json!("a:2")),
                ("lim.cpu".into(), json!("1")),
                ("lim.memory".into(), json!("256Mi")),
                (r"ann.prometheus\.io/port".into(), json!(8080)),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "spec:\n  containers:\n    - name: app\n      image: a:2 # x\n\
             lim: { cpu: \"1\", memory: 256Mi }\nann:\n  prometheus.io/port: \"8080\"\n"
        );
    }

    #[test]
    fn flow_context_quotes_commas() {
        let out = set("l: {a: b}\n", "l.a", json!("x,y")).unwrap();
        assert_eq!(out, "l: {a: \"x,y\"}\n");
        let out = set("l: a\n", "l", json!("x,y")).unwrap();
        assert_eq!(out, "l: x,y\n");
    }

    #[test]
    fn anchored_scalar_keeps_anchor() {
        let out = set("a: &t v1\nb: *t\n", "a", json!("v2")).unwrap();
        assert_eq!(out, "a: &t v2\nb: *t\n");
    }

    #[test]
    fn last_duplicate_update_wins() {
        let out = set_values("a: 1\n", &[("a".into(), json!(2)), ("a".into(), json!(3))]).unwrap();
        assert_eq!(out, "a: 3\n");
    }

    #[test]
    fn values_golden() {
        let before = fixture("values.before.yaml");
        let after = fixture("values.after.yaml");
        let out = set_values(
            &before,
            &[
                ("image.tag".into(), json!("1006")),
                ("replicaCount".into(), json!(3)),
                ("resources.limits.cpu".into(), json!("750m")),
                ("resources.limits.memory".into(), json!("256Mi")),
                ("env.1.value".into(), json!("true")),
                ("ingress.hosts.1".into(), json!("www2.example.com")),
                ("defaults.timeout".into(), json!("45s")),
                (
                    r"podAnnotations.prometheus\.io/scrape".into(),
                    json!("false"),
                ),
            ],
        )
        .unwrap();
        assert_eq!(out, after);
        assert_diff(
            &before,
            &after,
            &[
                "replicaCount: 1\n",
                "  tag: \"1005\"   # updated by haul\n",
                "  timeout: 30s\n",
                "  prometheus.io/scrape: \"true\"\n",
                "  limits: { cpu: 500m, memory: 128Mi }\n",
                "    value: 'false'\n",
                "  hosts: [app.example.com, \"www.example.com\"]\n",
            ],
            &[
                "replicaCount: 3\n",
                "  tag: \"1006\"   # updated by haul\n",
                "  timeout: 45s\n",
                "  prometheus.io/scrape: \"false\"\n",
                "  limits: { cpu: 750m, memory: 256Mi }\n",
                "    value: 'true'\n",
                "  hosts: [app.example.com, \"www2.example.com\"]\n",
            ],
        );
        let mut want = reparse(&before).remove(0);
        want["image"]["tag"] = json!("1006");
        want["replicaCount"] = json!(3);
        want["resources"]["limits"] = json!({"cpu": "750m", "memory": "256Mi"});
        want["env"][1]["value"] = json!("true");
        want["ingress"]["hosts"][1] = json!("www2.example.com");
        want["defaults"]["timeout"] = json!("45s");
        want["service"]["timeout"] = json!("45s");
        want["podAnnotations"]["prometheus.io/scrape"] = json!("false");
        assert_eq!(reparse(&out), vec![want]);
    }

    #[test]
    fn multidoc_golden() {
        let before = fixture("multidoc.before.yaml");
        let after = fixture("multidoc.after.yaml");
        let image = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1006";
        let out = set_values(
            &before,
            &[
                ("spec.template.spec.containers.0.image".into(), json!(image)),
                ("data.BUILD_NUMBER".into(), json!("1006")),
                ("metadata.name".into(), json!("my-app-config-v2")),
            ],
        )
        .unwrap();
        assert_eq!(out, after);
        assert_diff(
            &before,
            &after,
            &[
                "  name: my-app-config\n",
                "  BUILD_NUMBER: \"1005\"\n",
                "          image: 123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1005 # app\n",
            ],
            &[
                "  name: my-app-config-v2\n",
                "  BUILD_NUMBER: \"1006\"\n",
                &format!("          image: {image} # app\n"),
            ],
        );
        let docs = reparse(&out);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["metadata"]["name"], json!("my-app-config-v2"));
        assert_eq!(docs[0]["data"]["BUILD_NUMBER"], json!("1006"));
        assert_eq!(
            docs[1]["spec"]["template"]["spec"]["containers"][0]["image"],
            json!(image)
        );
        assert_eq!(docs[1]["metadata"]["name"], json!("my-app"));
        assert_eq!(docs[2], reparse(&before)[2]);
    }

    #[test]
    fn crlf_and_untouched_round_trip() {
        let doc = "# c\r\na: 1 # x\r\n\r\nb:\r\n  - 'q'\r\n";
        assert_eq!(set_values(doc, &[]).unwrap(), doc);
        let out = set(doc, "b.0", json!("it's")).unwrap();
        assert_eq!(out, "# c\r\na: 1 # x\r\n\r\nb:\r\n  - 'it''s'\r\n");
    }

    #[test]
    fn odd_but_valid_layouts() {
        // Byte order mark, explicit document start, quoted keys, multi-line scalars.
        assert_eq!(
            set("\u{feff}a: 1\n", "a", json!(2)).unwrap(),
            "\u{feff}a: 2\n"
        );
        assert_eq!(
            set("--- # c\n\"image\": {'tag': x}\n", "image.tag", json!("y")).unwrap(),
            "--- # c\n\"image\": {'tag': \"y\"}\n" // `y` is a YAML 1.1 boolean
        );
        assert_eq!(
            set("a: foo\n  bar\nb: \"x\n  y\"\n", "a", json!("z")).unwrap(),
            "a: z\nb: \"x\n  y\"\n"
        );
        assert_eq!(
            set("a: foo\n  bar\nb: \"x\n  y\"\n", "b", json!("z")).unwrap(),
            "a: foo\n  bar\nb: \"z\"\n"
        );
        assert_eq!(
            set("l:\n- - a\n  - b # c\n", "l.0.1", json!("no")).unwrap(),
            "l:\n- - a\n  - \"no\" # c\n"
        );
        assert!(matches!(
            set("l:\n-\n- a\n", "l.0", json!("x")),
            Err(YamlEditError::Unsupported { .. })
        ));
    }
}
