//! A span tree over the original text, built from granit-parser events.
//!
//! granit-parser gives byte spans per event but no tree, and serde-saphyr's values drop spans
//! and quoting style; this small tree keeps exactly what the editors need: node kinds, scalar
//! values and styles, and byte ranges into the unmodified input.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

use super::YamlEditError;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Byte offset of the node's content (after any anchor or tag).
    pub start: usize,
    /// Byte offset just past the node's content. For block collections this is the end of the
    /// last child, so trailing comments and blank lines are not included.
    pub end: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Mapping {
        flow: bool,
        entries: Vec<(Node, Node)>,
    },
    Sequence {
        flow: bool,
        items: Vec<Node>,
    },
    Alias,
}

impl Node {
    /// A human name for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } => "scalar",
            Kind::Mapping { .. } => "mapping",
            Kind::Sequence { .. } => "sequence",
            Kind::Alias => "alias",
        }
    }

    /// The kind with its article, for "is not a list" style messages.
    pub fn a_kind(&self) -> &'static str {
        match &self.kind {
            Kind::Alias => "an alias",
            Kind::Scalar { .. } => "a scalar",
            Kind::Mapping { .. } => "a mapping",
            Kind::Sequence { .. } => "a sequence",
        }
    }

    /// An empty plain scalar (`key:` with nothing after it) has an empty span.
    pub fn is_empty_scalar(&self) -> bool {
        matches!(
            self.kind,
            Kind::Scalar {
                style: ScalarStyle::Plain,
                ..
            }
        ) && self.start == self.end
    }

    pub fn scalar_value(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } if !self.is_empty_scalar() => Some(value),
            _ => None,
        }
    }

    /// Value of `key` in a mapping node, by scalar key text. `Err(n)` when the key occurs `n > 1`
    /// times.
    pub fn get(&self, key: &str) -> Result<Option<&Node>, usize> {
        let Kind::Mapping { entries, .. } = &self.kind else {
            return Ok(None);
        };
        let mut found = entries
            .iter()
            .filter(|(k, _)| k.scalar_value() == Some(key))
            .map(|(_, v)| v);
        let first = found.next();
        let extra = found.count();
        if extra > 0 {
            return Err(extra + 1);
        }
        Ok(first)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub root: Node,
}

enum Frame {
    Mapping {
        flow: bool,
        start: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
    Sequence {
        flow: bool,
        start: usize,
        items: Vec<Node>,
    },
}

fn push_node(text: &str, stack: &mut [Frame], root: &mut Option<Node>, mut node: Node) {
    match stack.last_mut() {
        Some(Frame::Mapping { entries, key, .. }) => match key.take() {
            Some(k) => {
                // The parser puts an empty value (`key:`) at the `:`; move it past the colon so
                // a replacement lands after it.
                if node.is_empty_scalar() {
                    let rest = &text[k.end..];
                    if let Some(colon) = rest.find(':')
                        && rest[..colon].trim().is_empty()
                    {
                        node.start = k.end + colon + 1;
                        node.end = node.start;
                    }
                }
                entries.push((k, node))
            }
            None => *key = Some(node),
        },
        Some(Frame::Sequence { items, .. }) => items.push(node),
        None => *root = Some(node),
    }
}

/// Parses every document of `text`.
pub(crate) fn parse(text: &str) -> Result<Vec<Document>, YamlEditError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    for next in Parser::new_from_str(text) {
        let (event, span) = next.map_err(|e| YamlEditError::Parse(e.to_string()))?;
        let range = span
            .byte_range()
            .ok_or_else(|| YamlEditError::Parse("parser reported no byte offsets".into()))?;
        match event {
            Event::Scalar(value, style, _, _) => {
                let node = Node {
                    kind: Kind::Scalar {
                        value: value.into_owned(),
                        style,
                    },
                    start: range.start,
                    end: range.end,
                };
                push_node(text, &mut stack, &mut root, node);
            }
            Event::Alias(_) => {
                let node = Node {
                    kind: Kind::Alias,
                    start: range.start,
                    end: range.end,
                };
                push_node(text, &mut stack, &mut root, node);
            }
            Event::MappingStart(style, _, _) => stack.push(Frame::Mapping {
                flow: style == StructureStyle::Flow,
                start: range.start,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceStart(style, _, _) => {
                let flow = style == StructureStyle::Flow;
                stack.push(Frame::Sequence {
                    flow,
                    start: if flow {
                        range.start
                    } else {
                        first_dash(text, range.start)
                    },
                    items: Vec::new(),
                })
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match stack.pop() {
                    Some(Frame::Mapping {
                        flow,
                        start,
                        entries,
                        ..
                    }) => {
                        let end =
                            collection_end(flow, start, range.end, entries.last().map(|e| &e.1));
                        Node {
                            kind: Kind::Mapping { flow, entries },
                            start,
                            end,
                        }
                    }
                    Some(Frame::Sequence { flow, start, items }) => {
                        let end = collection_end(flow, start, range.end, items.last());
                        Node {
                            kind: Kind::Sequence { flow, items },
                            start,
                            end,
                        }
                    }
                    None => return Err(YamlEditError::Parse("unbalanced collection end".into())),
                };
                push_node(text, &mut stack, &mut root, node);
            }
            Event::DocumentEnd => {
                let root = root
                    .take()
                    .ok_or_else(|| YamlEditError::Parse("document without content".into()))?;
                docs.push(Document { root });
            }
            // Comments, anchors, stream and document starts carry nothing the editors need.
            _ => {}
        }
    }
    Ok(docs)
}

/// The `-` of a block sequence's first item. The parser reports an indented sequence at its
/// dash but a compact one (`key:\n- a`) at the first item's content, just after the dash.
fn first_dash(text: &str, pos: usize) -> usize {
    if text[pos..].starts_with('-') {
        return pos;
    }
    text[..pos].rfind('-').unwrap_or(pos)
}

/// Flow collections end at their closing bracket; block collections end with their last child
/// (the parser reports a block end at the next token, which may be lines further down).
fn collection_end(flow: bool, start: usize, end_event: usize, last: Option<&Node>) -> usize {
    if flow {
        end_event
    } else {
        last.map_or(start, |n| n.end.max(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_scalar_source_including_quotes() {
        let text = "a: \"x\"\nb: {c: 'd'}\ne:\n- 1\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 1);
        let root = &docs[0].root;
        let a = root.get("a").unwrap().unwrap();
        assert_eq!(&text[a.start..a.end], "\"x\"");
        let b = root.get("b").unwrap().unwrap();
        assert_eq!(&text[b.start..b.end], "{c: 'd'}");
        let e = root.get("e").unwrap().unwrap();
        assert_eq!(&text[e.start..e.end], "- 1");
        assert_eq!(&text[root.start..root.end], text.trim_end());
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let docs = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(docs[0].root.get("a").unwrap_err(), 2);
    }

    #[test]
    fn multiple_documents() {
        let docs = parse("a: 1\n---\nb: 2\n...\n---\n# c\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[2].root.is_empty_scalar());
    }
}
