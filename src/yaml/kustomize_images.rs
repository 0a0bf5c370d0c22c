//! Kargo's `kustomize-set-image`, as a byte-preserving edit of `kustomization.yaml`.
//!
//! Kargo decodes `images`, merges the targets in, sorts the list by name and re-marshals the whole
//! file with kyaml, normalising indentation, quoting and flow style (`kustomize_image_setter.go`).
//! We touch only the scalars that change and append what is missing, in the style of the
//! surrounding YAML. Differences from Kargo, all deliberate:
//! * The `images` list is never reordered (Kargo sorts it by name), so diffs stay one line long
//!   and comments stay with their entries.
//! * A field the update leaves unset (`None`) is left alone. Kargo replaces the whole entry, so
//!   setting a digest drops an existing `newTag` and an unset `newName` removes the old one; we
//!   keep both: kustomize 5 renders `repo:tag@digest`, which container runtimes pull by digest
//!   (checked against `kubectl kustomize` in `tests/kustomize_renders_edits.rs`).
//! * As in Kargo, `"*"` in `new_name`, `new_tag` or `digest` keeps the existing value.

use std::fmt::Write as _;

use serde_json::Value;

use super::quoting::{self, Style};
use super::scalar_edit::{replacement, splice};
use super::tree::{self, Kind, Node};
use super::{YamlEditError, after_line, insert_lines, line_ending, line_start};

/// Kargo's marker for "keep the value the kustomization already has".
const KEEP: &str = "*";

/// One image to set in a kustomization's `images` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUpdate {
    /// The entry's `name`: the image as written in the base manifests. Kargo defaults it to the
    /// step's `image`; callers resolve that default.
    pub name: String,
    /// `newName`, or `"*"` to keep the current one.
    pub new_name: Option<String>,
    /// `newTag`, or `"*"` to keep the current one.
    pub new_tag: Option<String>,
    /// `digest`, or `"*"` to keep the current one.
    pub digest: Option<String>,
}

impl ImageUpdate {
    /// Fields this update writes, in kustomize's canonical order, without `None` and `"*"`.
    fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("newName", &self.new_name),
            ("newTag", &self.new_tag),
            ("digest", &self.digest),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| *v != KEEP).map(|v| (k, v)))
        .collect()
    }
}

fn err(msg: impl Into<String>) -> YamlEditError {
    YamlEditError::Kustomization(msg.into())
}

/// Byte column of `pos` within its line.
fn column(text: &str, pos: usize) -> usize {
    pos - line_start(text, pos)
}

/// The single document's root, or `None` for an empty file. Kustomizations are one document;
/// guessing which of several to edit would be wrong half the time.
fn root(docs: &[tree::Document]) -> Result<Option<&Node>, YamlEditError> {
    match docs {
        [] => Ok(None),
        [doc] if doc.root.is_empty_scalar() => Ok(None),
        [doc] => Ok(Some(&doc.root)),
        _ => Err(err(format!(
            "expected a single YAML document, found {}",
            docs.len()
        ))),
    }
}

/// Offset of block sequences from their key in this file (`resources:\n  - a` gives 2), so a
/// new `images` list looks like its neighbours. Kustomize itself writes 0 (compact), our default.
fn sequence_indent(text: &str, mapping: &Node) -> usize {
    let Kind::Mapping { entries, .. } = &mapping.kind else {
        return 0;
    };
    entries
        .iter()
        .find_map(|(k, v)| match &v.kind {
            Kind::Sequence { flow: false, .. } => {
                Some(column(text, v.start).saturating_sub(column(text, k.start)))
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// Quoting style for new scalars: the one every existing value of `entry` shares if they are all
/// quoted alike, otherwise plain (quoted only where needed).
fn sibling_style(entry: Option<&Node>) -> Style {
    let Some(Node {
        kind: Kind::Mapping { entries, .. },
        ..
    }) = entry
    else {
        return Style::Plain;
    };
    let mut styles = entries.iter().filter_map(|(_, v)| match &v.kind {
        Kind::Scalar { style, .. } if !v.is_empty_scalar() => Style::of(*style),
        _ => None,
    });
    match styles.next() {
        Some(first) if first != Style::Plain && styles.all(|s| s == first) => first,
        _ => Style::Plain,
    }
}

/// Renders `name: value` pairs of a new flow mapping, mirroring `{ a: b }` padding if asked.
fn flow_entry(pairs: &[(&str, &str)], style: Style, padded: bool) -> String {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k}: {}", quoting::render_string(v, style, true)))
        .collect::<Vec<_>>()
        .join(", ");
    if padded {
        format!("{{ {body} }}")
    } else {
        format!("{{{body}}}")
    }
}

/// Lines of a new block-style entry: `- name: x` at `dash` columns, further keys at `key`.
fn block_entry(pairs: &[(&str, &str)], style: Style, dash: usize, key: usize, eol: &str) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        let v = quoting::render_string(v, style, false);
        if i == 0 {
            let gap = key.saturating_sub(dash + 1).max(1);
            let _ = write!(out, "{}-{}{k}: {v}{eol}", " ".repeat(dash), " ".repeat(gap));
        } else {
            let _ = write!(out, "{}{k}: {v}{eol}", " ".repeat(key));
        }
    }
    out
}

/// Sets one field of the entry named `name`, creating the entry or the `images` list as needed.
fn set_field(text: &str, name: &str, field: &str, value: &str) -> Result<String, YamlEditError> {
    let docs = tree::parse(text)?;
    let eol = line_ending(text);
    let pairs = [("name", name), (field, value)];
    let Some(root) = root(&docs)? else {
        // Empty file: the whole kustomization is the new list.
        let lines = format!(
            "images:{eol}{}",
            block_entry(&pairs, Style::Plain, 0, 2, eol)
        );
        return Ok(insert_lines(text, text.len(), &lines, eol));
    };
    let Kind::Mapping { flow: false, .. } = root.kind else {
        return Err(err("the document is not a block mapping"));
    };
    let images = root
        .get("images")
        .map_err(|_| err("`images` appears more than once"))?;
    let Some(images) = images else {
        // No `images`: append it after the last top-level entry, before any trailing comments.
        let key_col = column(text, root.start);
        let dash = key_col + sequence_indent(text, root);
        let lines = format!(
            "{}images:{eol}{}",
            " ".repeat(key_col),
            block_entry(&pairs, Style::Plain, dash, dash + 2, eol)
        );
        return Ok(insert_lines(text, after_line(text, root.end), &lines, eol));
    };
    match &images.kind {
        Kind::Sequence { flow, items } => {
            set_in_list(text, images, *flow, items, name, field, value, eol)
        }
        _ if images.is_empty_scalar() => {
            // `images:` with nothing after it: start the list under the key.
            let key_pos = images.start;
            let key_col = root_key_column(text, root, key_pos);
            let dash = key_col + sequence_indent(text, root);
            let lines = block_entry(&pairs, Style::Plain, dash, dash + 2, eol);
            Ok(insert_lines(text, after_line(text, key_pos), &lines, eol))
        }
        _ => Err(err(format!("`images` is {}, not a list", images.a_kind()))),
    }
}

/// Column of the key whose value starts at `value_pos`.
fn root_key_column(text: &str, root: &Node, value_pos: usize) -> usize {
    match &root.kind {
        Kind::Mapping { entries, .. } => entries
            .iter()
            .find(|(_, v)| v.start == value_pos)
            .map_or(0, |(k, _)| column(text, k.start)),
        _ => 0,
    }
}

#[allow(clippy::too_many_arguments)] // all plain data about one list; a struct would only rename them
fn set_in_list(
    text: &str,
    list: &Node,
    list_flow: bool,
    items: &[Node],
    name: &str,
    field: &str,
    value: &str,
    eol: &str,
) -> Result<String, YamlEditError> {
    let mut matches = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if !matches!(item.kind, Kind::Mapping { .. }) {
            return Err(err(format!(
                "images[{i}] is {}, not a mapping",
                item.a_kind()
            )));
        }
        let entry_name = item
            .get("name")
            .map_err(|_| err(format!("images[{i}] has `name` more than once")))?;
        if entry_name.and_then(Node::scalar_value) == Some(name) {
            matches.push((i, item));
        }
    }
    let pairs = [("name", name), (field, value)];
    match matches.as_slice() {
        [] => Ok(append_entry(text, list, list_flow, items, &pairs, eol)),
        [(i, entry)] => set_in_entry(text, *i, entry, list_flow, field, value, eol),
        _ => Err(err(format!(
            "{} entries of `images` are named {name:?}; refusing to guess which to change",
            matches.len()
        ))),
    }
}

/// Adds a new entry after the last one, in the last entry's style.
fn append_entry(
    text: &str,
    list: &Node,
    list_flow: bool,
    items: &[Node],
    pairs: &[(&str, &str)],
    eol: &str,
) -> String {
    let last = items.last();
    let style = sibling_style(last);
    let padded = last.is_some_and(|n| text[n.start..].starts_with("{ "));
    if list_flow {
        return match last {
            Some(last) => splice(
                text,
                vec![(
                    last.end,
                    last.end,
                    format!(", {}", flow_entry(pairs, style, padded)),
                )],
            ),
            // `[]`: the entry goes right after the bracket.
            None => splice(
                text,
                vec![(
                    list.start + 1,
                    list.start + 1,
                    flow_entry(pairs, style, false),
                )],
            ),
        };
    }
    // A block list is never empty, so `last` is set; its column layout is copied.
    let dash = column(text, list.start);
    let lines = match last.map(|n| &n.kind) {
        Some(Kind::Mapping { flow: true, .. }) => {
            format!(
                "{}- {}{eol}",
                " ".repeat(dash),
                flow_entry(pairs, style, padded)
            )
        }
        Some(Kind::Mapping { entries, .. }) if !entries.is_empty() => {
            let key = column(text, entries[0].0.start);
            block_entry(pairs, style, dash, key, eol)
        }
        _ => block_entry(pairs, style, dash, dash + 2, eol),
    };
    insert_lines(text, after_line(text, list.end), &lines, eol)
}

/// Sets `field` in an existing entry: rewrites the scalar if present, else adds the field after
/// the entry's last one.
fn set_in_entry(
    text: &str,
    index: usize,
    entry: &Node,
    list_flow: bool,
    field: &str,
    value: &str,
    eol: &str,
) -> Result<String, YamlEditError> {
    let Kind::Mapping { flow, entries } = &entry.kind else {
        return Err(err(format!("images[{index}] is not a mapping")));
    };
    let key = format!("images.{index}.{field}");
    let existing = entry
        .get(field)
        .map_err(|_| err(format!("images[{index}] has `{field}` more than once")))?;
    if let Some(node) = existing {
        if !matches!(node.kind, Kind::Scalar { .. }) {
            return Err(YamlEditError::NotScalar {
                key,
                kind: node.kind_name(),
            });
        }
        let new = replacement(
            text,
            node,
            &Value::String(value.to_owned()),
            *flow || list_flow,
            &key,
        )?;
        return Ok(splice(text, vec![(node.start, node.end, new)]));
    }
    let style = sibling_style(Some(entry));
    let Some((last_key, last_value)) = entries.last() else {
        return Err(err(format!("images[{index}] is empty")));
    };
    let end = last_key.end.max(last_value.end);
    if *flow {
        let rendered = quoting::render_string(value, style, true);
        return Ok(splice(
            text,
            vec![(end, end, format!(", {field}: {rendered}"))],
        ));
    }
    let key_col = column(text, entries[0].0.start);
    let rendered = quoting::render_string(value, style, false);
    let line = format!("{}{field}: {rendered}{eol}", " ".repeat(key_col));
    Ok(insert_lines(text, after_line(text, end), &line, eol))
}

/// Re-reads the result and checks every requested field, so a layout we mis-handled fails the
/// step instead of committing a broken kustomization.
fn verify(text: &str, images: &[ImageUpdate]) -> Result<(), YamlEditError> {
    let fail = |m: String| YamlEditError::Verification(m);
    // (name, field, value), a later update of the same image and field replacing an earlier one.
    let mut expected: Vec<(&str, &str, &str)> = Vec::new();
    for img in images {
        for (field, value) in img.fields() {
            expected.retain(|(n, f, _)| !(*n == img.name && *f == field));
            expected.push((&img.name, field, value));
        }
    }
    let docs = tree::parse(text).map_err(|e| fail(e.to_string()))?;
    let root = root(&docs).map_err(|e| fail(e.to_string()))?;
    for (name, field, want) in expected {
        let got = root
            .and_then(|r| r.get("images").ok().flatten())
            .and_then(|l| match &l.kind {
                Kind::Sequence { items, .. } => items.iter().find(|i| {
                    i.get("name").ok().flatten().and_then(Node::scalar_value) == Some(name)
                }),
                _ => None,
            })
            .and_then(|e| e.get(field).ok().flatten())
            .and_then(Node::scalar_value);
        if got != Some(want) {
            return Err(fail(format!(
                "image {name:?} {field} reads back as {got:?}, expected {want:?}"
            )));
        }
    }
    Ok(())
}

/// Applies `images` to the kustomization text `doc`, changing only the affected scalars and
/// appending missing fields, entries or the `images` list. Entries are matched by `name`.
///
/// ```
/// use haul::yaml::{ImageUpdate, set_images};
/// let doc = "images:\n  - name: app # main\n    newTag: \"1005\"\n";
/// let update = ImageUpdate { name: "app".into(), new_tag: Some("1006".into()), ..Default::default() };
/// let out = set_images(doc, &[update]).unwrap();
/// assert_eq!(out, "images:\n  - name: app # main\n    newTag: \"1006\"\n");
/// ```
pub fn set_images(doc: &str, images: &[ImageUpdate]) -> Result<String, YamlEditError> {
    let mut text = doc.to_owned();
    for img in images {
        if img.name.is_empty() {
            return Err(err("image name must not be empty"));
        }
        if img.new_name.is_none() && img.new_tag.is_none() && img.digest.is_none() {
            return Err(err(format!(
                "image {:?}: set at least one of newName, newTag or digest",
                img.name
            )));
        }
        // One field at a time, re-parsing in between, so insertions never work from stale spans.
        for (field, value) in img.fields() {
            text = set_field(&text, &img.name, field, value)?;
        }
    }
    verify(&text, images)?;
    Ok(text)
}

/// Kargo's `commitMessage` output for `kustomize-set-image`: `"Updated <path> to use new
/// image(s)\n\n- repo:tag@digest…"`, one line per image, sorted, empty without images. `repo` is
/// the image as deployed (Kargo uses `newName` when set, else `name`).
pub fn commit_message(path: &str, images: &[(String, Option<String>, Option<String>)]) -> String {
    let mut refs: Vec<String> = images
        .iter()
        .map(|(repo, tag, digest)| {
            let mut r = repo.clone();
            if let Some(tag) = tag.as_deref().filter(|t| !t.is_empty()) {
                let _ = write!(r, ":{tag}");
            }
            if let Some(digest) = digest.as_deref().filter(|d| !d.is_empty()) {
                let _ = write!(r, "@{digest}");
            }
            r
        })
        .collect();
    refs.sort();
    refs.dedup();
    if refs.is_empty() {
        return String::new();
    }
    let plural = if refs.len() > 1 { "s" } else { "" };
    let mut msg = format!("Updated {path} to use new image{plural}\n");
    for r in refs {
        let _ = write!(msg, "\n- {r}");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::set_values;
    use crate::yaml::test_support::{assert_diff, fixture, reparse};
    use serde_json::json;

    fn tag(name: &str, tag: &str) -> ImageUpdate {
        ImageUpdate {
            name: name.into(),
            new_tag: Some(tag.into()),
            ..Default::default()
        }
    }

    const ECR: &str = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app";

    #[test]
    fn scenario_golden() {
        let before = fixture("kustomization-scenario.before.yaml");
        let after = fixture("kustomization-scenario.after.yaml");
        let update = ImageUpdate {
            name: "my-app-service".into(),
            new_name: Some(ECR.into()),
            new_tag: Some("1006".into()),
            digest: None,
        };
        let images_only = set_images(&before, &[update]).unwrap();
        assert_diff(
            &before,
            &images_only,
            &["    newTag: \"1005\"\n"],
            &["    newTag: \"1006\"\n"],
        );
        // The full promotion: the image step, then yaml-update of the build annotation.
        let out = set_values(
            &images_only,
            &[(
                "commonAnnotations.git-provider/build_number".into(),
                json!("1006"),
            )],
        )
        .unwrap();
        assert_eq!(out, after);
        let doc = &reparse(&out)[0];
        assert_eq!(
            doc["images"],
            json!([{"name": "my-app-service", "newName": ECR, "newTag": "1006"}])
        );
        assert_eq!(
            doc["commonAnnotations"]["git-provider/build_number"],
            json!("1006")
        );
    }

    #[test]
    fn no_images_block_golden() {
        let before = fixture("kustomization-no-images.before.yaml");
        let after = fixture("kustomization-no-images.after.yaml");
        let out = set_images(
            &before,
            &[
                ImageUpdate {
                    name: "my-app-service".into(),
                    new_name: Some(ECR.into()),
                    new_tag: Some("1006".into()),
                    digest: None,
                },
                ImageUpdate {
                    name: "nginx".into(),
                    digest: Some("sha256:0123456789abcdef".into()),
                    ..Default::default()
                },
            ],
        )
        .unwrap();
        assert_eq!(out, after);
        assert_diff(
            &before,
            &after,
            &[],
            &[
                "images:\n",
                "  - name: my-app-service\n",
                &format!("    newName: {ECR}\n"),
                "    newTag: \"1006\"\n",
                "  - name: nginx\n",
                "    digest: sha256:0123456789abcdef\n",
            ],
        );
        let mut want = reparse(&before).remove(0);
        want["images"] = json!([
            {"name": "my-app-service", "newName": ECR, "newTag": "1006"},
            {"name": "nginx", "digest": "sha256:0123456789abcdef"},
        ]);
        assert_eq!(reparse(&out), vec![want]);
    }

    #[test]
    fn messy_crlf_golden() {
        let before = fixture("kustomization-messy.before.yaml");
        let after = fixture("kustomization-messy.after.yaml");
        assert!(before.contains("\r\n") && !before.replace("\r\n", "").contains('\n'));
        let out = set_images(
            &before,
            &[
                ImageUpdate {
                    name: "my-app".into(),
                    new_name: Some("*".into()),
                    new_tag: Some("1006".into()),
                    digest: Some("*".into()),
                },
                ImageUpdate {
                    name: "sidecar".into(),
                    new_tag: Some("v2".into()),
                    digest: Some("sha256:feedbeef".into()),
                    ..Default::default()
                },
                tag("worker", "1006"),
                tag("new-one", "7"),
            ],
        )
        .unwrap();
        assert_eq!(out, after);
        assert!(
            !out.replace("\r\n", "").contains('\n'),
            "a bare LF crept in"
        );
        assert_diff(
            &before,
            &after,
            &[
                "  newTag: '1005' # single-quoted on purpose\r\n",
                "- {name: sidecar, newTag: v1}  # flow entry\r\n",
            ],
            &[
                "  newTag: '1006' # single-quoted on purpose\r\n",
                "- {name: sidecar, newTag: v2, digest: sha256:feedbeef}  # flow entry\r\n",
                "  newTag: \"1006\"\r\n",
                "- name: new-one\r\n",
                "  newTag: \"7\"\r\n",
            ],
        );
        let doc = &reparse(&out)[0];
        assert_eq!(
            doc["images"],
            json!([
                {"name": "my-app", "newName": "registry.example.com/my-app", "newTag": "1006"},
                {"name": "sidecar", "newTag": "v2", "digest": "sha256:feedbeef"},
                {"name": "worker", "newName": "registry.example.com/worker", "newTag": "1006"},
                {"name": "new-one", "newTag": "7"},
            ])
        );
    }

    #[test]
    fn digest_keeps_tag_and_tag_keeps_digest() {
        let doc = "images:\n- name: a\n  newTag: v1\n  digest: sha256:old\n";
        let out = set_images(
            doc,
            &[ImageUpdate {
                name: "a".into(),
                digest: Some("sha256:new".into()),
                ..Default::default()
            }],
        )
        .unwrap();
        assert_eq!(
            out,
            "images:\n- name: a\n  newTag: v1\n  digest: sha256:new\n"
        );
        let out = set_images(&out, &[tag("a", "v2")]).unwrap();
        assert_eq!(
            out,
            "images:\n- name: a\n  newTag: v2\n  digest: sha256:new\n"
        );
    }

    #[test]
    fn keep_marker_never_writes_a_star() {
        let doc = "images:\n- name: a\n  newTag: v1\n";
        let keep = ImageUpdate {
            name: "a".into(),
            new_name: Some("*".into()),
            new_tag: Some("*".into()),
            digest: Some("*".into()),
        };
        assert_eq!(set_images(doc, std::slice::from_ref(&keep)).unwrap(), doc);
        let missing = ImageUpdate {
            name: "b".into(),
            ..keep
        };
        assert_eq!(set_images(doc, &[missing]).unwrap(), doc);
    }

    #[test]
    fn list_styles() {
        // Compact block list with quoted siblings: new fields and entries follow suit.
        let doc = "images:\n- name: \"a\"\n  newTag: \"v1\"\n";
        let out = set_images(
            doc,
            &[
                ImageUpdate {
                    digest: Some("sha256:x".into()),
                    ..tag("a", "*")
                },
                tag("b", "v2"),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "images:\n- name: \"a\"\n  newTag: \"v1\"\n  digest: \"sha256:x\"\n- name: \"b\"\n  newTag: \"v2\"\n"
        );
        // Flow list, padded flow entries, empty flow list, `images:` with no value.
        let out = set_images("images: [{ name: a, newTag: v1 }]\n", &[tag("b", "1")]).unwrap();
        assert_eq!(
            out,
            "images: [{ name: a, newTag: v1 }, { name: b, newTag: \"1\" }]\n"
        );
        let out = set_images("images: []\n", &[tag("b", "1")]).unwrap();
        assert_eq!(out, "images: [{name: b, newTag: \"1\"}]\n");
        let out = set_images("images: # todo\nresources:\n  - a\n", &[tag("b", "1")]).unwrap();
        assert_eq!(
            out,
            "images: # todo\n  - name: b\n    newTag: \"1\"\nresources:\n  - a\n"
        );
        // Empty file and a file without a final line break.
        assert_eq!(
            set_images("", &[tag("b", "1")]).unwrap(),
            "images:\n- name: b\n  newTag: \"1\"\n"
        );
        assert_eq!(
            set_images("kind: Kustomization", &[tag("b", "1")]).unwrap(),
            "kind: Kustomization\nimages:\n- name: b\n  newTag: \"1\"\n"
        );
    }

    #[test]
    fn refuses_what_it_cannot_do_safely() {
        let dup = "images:\n- name: a\n- name: a\n";
        assert!(matches!(
            set_images(dup, &[tag("a", "1")]),
            Err(YamlEditError::Kustomization(_))
        ));
        let not_list = "images: {a: b}\n";
        assert!(set_images(not_list, &[tag("a", "1")]).is_err());
        let multi = "a: 1\n---\nb: 2\n";
        assert!(set_images(multi, &[tag("a", "1")]).is_err());
        let nothing = ImageUpdate {
            name: "a".into(),
            ..Default::default()
        };
        assert!(set_images("images: []\n", &[nothing]).is_err());
        assert!(set_images("images: []\n", &[tag("", "1")]).is_err());
    }

    #[test]
    fn commit_message_matches_kargo() {
        assert_eq!(commit_message("env/prod", &[]), "");
        assert_eq!(
            commit_message("env/prod", &[(ECR.into(), Some("1006".into()), None)]),
            format!("Updated env/prod to use new image\n\n- {ECR}:1006")
        );
        assert_eq!(
            commit_message(
                "env/prod",
                &[
                    ("z/img".into(), None, Some("sha256:abc".into())),
                    ("a/img".into(), Some("v1".into()), Some("sha256:def".into())),
                ]
            ),
            "Updated env/prod to use new images\n\n- a/img:v1@sha256:def\n- z/img@sha256:abc"
        );
    }
}
