//! Byte-preserving YAML edits for promotion steps.
//!
//! haul's promise over Kargo, Flux image automation and Argo CD Image Updater is that an edit
//! leaves a file byte-identical except for the values it changes: comments, quoting, indentation,
//! blank lines, flow collections, key order, CRLF line endings and the other documents of a
//! multi-document file all survive.
//!
//! How: [granit-parser](https://docs.rs/granit-parser) (the YAML 1.2 event parser behind
//! serde-saphyr, reached through its `serde_saphyr::granit_parser` re-export, so it costs no extra
//! dependency) reports the exact byte span of every scalar and collection. We build a small span
//! tree from its events (`tree.rs`), find the scalars to change, render each new value in the old
//! scalar's quoting style (`quoting.rs`) and splice the rendered text into the original string.
//! Every edit is re-parsed and checked before it is returned, so a rendering mistake surfaces as
//! [`YamlEditError::Verification`] instead of a corrupted file in Git.
//!
//! * [`scalar_edit::set_values`]: Kargo's `yaml-update` (dotted keys, existing scalars only).
//! * [`kustomize_images::set_images`]: Kargo's `kustomize-set-image`, without re-serialising the
//!   kustomization.

pub mod kustomize_images;
pub(crate) mod quoting;
pub mod scalar_edit;
mod tree;

pub use kustomize_images::{ImageUpdate, commit_message, set_images};
pub use scalar_edit::set_values;

/// Why a YAML edit was refused. Nothing is written when any update fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlEditError {
    /// The input is not valid YAML.
    #[error("invalid YAML: {0}")]
    Parse(String),
    /// The dotted key is malformed (empty part, bad escape, stray colon).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// The key does not exist in any document.
    #[error("key {0} not found")]
    NotFound(String),
    /// The key exists but addresses a collection or an alias.
    #[error("key {key} is a {kind}, not a scalar")]
    NotScalar { key: String, kind: &'static str },
    /// A mapping on the way to the key has the same key twice; we refuse to guess which one.
    #[error("key {key} is ambiguous: {part:?} appears more than once in the same mapping")]
    DuplicateKey { key: String, part: String },
    /// The key exists but editing it in place is not supported (block scalars, aliases).
    #[error("key {key} cannot be edited in place: {reason}")]
    Unsupported { key: String, reason: String },
    /// The new value is a JSON object or array; only scalars can be spliced in.
    #[error("value for key {key} must be a string, number, boolean or null")]
    InvalidValue { key: String },
    /// The kustomization does not have the shape `kustomize-set-image` needs.
    #[error("kustomization: {0}")]
    Kustomization(String),
    /// The edited text did not re-read as intended. This is a bug in haul; the edit is dropped.
    #[error("internal error: edited YAML failed verification: {0}")]
    Verification(String),
}

/// Line ending used by the document: CRLF when its first line break is CRLF.
fn line_ending(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if i > 0 && text.as_bytes()[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

/// Byte offset of the start of the line that contains `pos`.
fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

/// Byte offset just past the line break of the line that contains `pos` (or the end of the
/// text). A span that already ends right after a line break (block scalars do) stays where it is.
fn after_line(text: &str, pos: usize) -> usize {
    if pos > 0 && text.as_bytes()[pos - 1] == b'\n' {
        return pos;
    }
    text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1)
}

/// Inserts `lines` (each already terminated by `eol`) at `pos`, adding a line break first when
/// the text ends without one.
fn insert_lines(text: &str, pos: usize, lines: &str, eol: &str) -> String {
    let mut out = String::with_capacity(text.len() + lines.len() + eol.len());
    out.push_str(&text[..pos]);
    if pos == text.len() && !text.is_empty() && !text.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(lines);
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the golden tests of both editors.

    use std::path::PathBuf;

    pub fn fixture(name: &str) -> String {
        let path: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "fixtures",
            "yaml",
            name,
        ]
        .iter()
        .collect();
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
    }

    /// Splits into lines, keeping each line's terminator so CRLF changes show up.
    fn lines(s: &str) -> Vec<&str> {
        s.split_inclusive('\n').collect()
    }

    /// Line diff by longest common subsequence: (removed lines, added lines), in order.
    pub fn diff_lines<'a>(before: &'a str, after: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
        let (a, b) = (lines(before), lines(after));
        let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                i += 1;
                j += 1;
            } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
                added.push(b[j]);
                j += 1;
            } else {
                removed.push(a[i]);
                i += 1;
            }
        }
        (removed, added)
    }

    /// Asserts that going from `before` to `after` removed exactly `removed` and added exactly
    /// `added` (whole lines, terminators included).
    #[track_caller]
    pub fn assert_diff(before: &str, after: &str, removed: &[&str], added: &[&str]) {
        let (r, a) = diff_lines(before, after);
        assert_eq!(r, removed, "removed lines differ");
        assert_eq!(a, added, "added lines differ");
    }

    /// Parses every document with serde-saphyr, an independent reading of the result.
    pub fn reparse(text: &str) -> Vec<serde_json::Value> {
        serde_saphyr::from_multiple::<serde_json::Value>(text)
            .unwrap_or_else(|e| panic!("edited YAML does not re-parse: {e}\n{text}"))
    }
}
