//! Byte-preserving edits of JSON text for json-update: only the bytes of the value being set
//! change; indentation, key order, spacing and number formatting elsewhere stay as written.
//! Keys use sjson's path syntax (the one Kargo's json-update documents): `.` separates keys,
//! `\.` is a literal dot, a number indexes an array, and `-1` appends to one.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonEditError {
    #[error("not valid JSON: {0}")]
    Invalid(String),
    #[error("key {0:?} is empty or has an empty part")]
    EmptyKey(String),
    #[error("key {key:?}: {at:?} is {found}, not an object or array")]
    NotAContainer {
        key: String,
        at: String,
        found: &'static str,
    },
    #[error(
        "key {key:?}: {at:?} is an array of {len} item(s); {index:?} is not an index in it or -1 to append"
    )]
    BadIndex {
        key: String,
        at: String,
        index: String,
        len: usize,
    },
}

/// A value in the text: its byte span, and for containers their parts.
#[derive(Debug)]
enum Node {
    Object {
        open: usize,
        close: usize,
        members: Vec<Member>,
    },
    Array {
        open: usize,
        close: usize,
        items: Vec<Node>,
    },
    Scalar {
        start: usize,
        end: usize,
        kind: &'static str,
    },
}

#[derive(Debug)]
struct Member {
    key: String,
    key_start: usize,
    key_end: usize,
    value: Node,
}

impl Node {
    fn span(&self) -> (usize, usize) {
        match self {
            Node::Object { open, close, .. } | Node::Array { open, close, .. } => {
                (*open, *close + 1)
            }
            Node::Scalar { start, end, .. } => (*start, *end),
        }
    }
}

/// Splits an sjson path into keys.
pub fn split_key(key: &str) -> Result<Vec<String>, JsonEditError> {
    let mut parts = vec![String::new()];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push(next);
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    if parts.iter().any(String::is_empty) {
        return Err(JsonEditError::EmptyKey(key.to_string()));
    }
    Ok(parts)
}

/// Sets `key` to `value` in `text`, creating missing object keys (and appending to arrays with
/// `-1`), changing no other byte.
pub fn set(text: &str, key: &str, value: &Value) -> Result<String, JsonEditError> {
    // An empty (or blank) file is an empty object, as Kargo's json-update (sjson) treats it:
    // the keys are written into it.
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| JsonEditError::Invalid(e.to_string()))?;
    let parts = split_key(key)?;
    let b = text.as_bytes();
    let mut p = Parser { b, i: 0 };
    let root = p.value()?;
    let rendered = |v: &Value| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let mut node = &root;
    for (depth, part) in parts.iter().enumerate() {
        let at = parts[..depth].join(".");
        match node {
            Node::Object { open, members, .. } => match members.iter().find(|m| &m.key == part) {
                Some(m) => node = &m.value,
                None => {
                    let new_value = nested(&parts[depth + 1..], value);
                    let entry = format!(
                        "{}{}{}",
                        rendered(&Value::String(part.clone())),
                        colon_style(text, members),
                        rendered(&new_value)
                    );
                    let starts: Vec<usize> = members.iter().map(|m| m.key_start).collect();
                    let ends: Vec<usize> = members.iter().map(|m| m.value.span().1).collect();
                    return Ok(insert(text, *open, &starts, &ends, &entry));
                }
            },
            Node::Array { open, items, .. } => {
                let index = part.parse::<i64>().ok();
                match index {
                    Some(i) if i >= 0 && (i as usize) < items.len() => node = &items[i as usize],
                    Some(i) if i == -1 || i as usize == items.len() => {
                        let entry = rendered(&nested(&parts[depth + 1..], value));
                        let starts: Vec<usize> = items.iter().map(|n| n.span().0).collect();
                        let ends: Vec<usize> = items.iter().map(|n| n.span().1).collect();
                        return Ok(insert(text, *open, &starts, &ends, &entry));
                    }
                    _ => {
                        return Err(JsonEditError::BadIndex {
                            key: key.to_string(),
                            at,
                            index: part.clone(),
                            len: items.len(),
                        });
                    }
                }
            }
            Node::Scalar { kind, .. } => {
                return Err(JsonEditError::NotAContainer {
                    key: key.to_string(),
                    at,
                    found: kind,
                });
            }
        }
    }
    let (start, end) = node.span();
    Ok(format!(
        "{}{}{}",
        &text[..start],
        rendered(value),
        &text[end..]
    ))
}

/// `value` under the keys `rest` (objects; a numeric key makes an array padded with nulls).
fn nested(rest: &[String], value: &Value) -> Value {
    rest.iter()
        .rev()
        .fold(value.clone(), |inner, k| match k.parse::<usize>() {
            Ok(n) => {
                let mut items = vec![Value::Null; n];
                items.push(inner);
                Value::Array(items)
            }
            Err(_) => {
                let mut m = serde_json::Map::new();
                m.insert(k.clone(), inner);
                Value::Object(m)
            }
        })
}

/// The text between the first member's key and value (`": "` or `":"`), `": "` when none.
fn colon_style<'a>(text: &'a str, members: &[Member]) -> &'a str {
    members
        .first()
        .map(|m| &text[m.key_end..m.value.span().0])
        .filter(|s| s.trim() == ":")
        .unwrap_or(": ")
}

/// Inserts `entry` as the last element of the container opened at `open`, whose
/// elements start at `starts` and end at `ends`, in the container's own layout: one per line
/// with the first element's indentation, or inline.
fn insert(text: &str, open: usize, starts: &[usize], ends: &[usize], entry: &str) -> String {
    let (Some(&first), Some(&last_end)) = (starts.first(), ends.last()) else {
        // Empty container: keep whatever whitespace was inside it after the entry.
        return format!("{}{entry}{}", &text[..=open], &text[open + 1..]);
    };
    let lead = &text[open + 1..first];
    let sep = match lead.rfind('\n') {
        Some(nl) => format!(",\n{}", &lead[nl + 1..]),
        None => {
            // Inline: reuse the spacing after the first comma, if there is a second element.
            let after_comma = starts
                .get(1)
                .and_then(|&second| {
                    let between = &text[ends[0]..second];
                    between.find(',').map(|c| between[c + 1..].to_string())
                })
                .unwrap_or_else(|| " ".to_string());
            format!(",{after_comma}")
        }
    };
    format!("{}{sep}{entry}{}", &text[..last_end], &text[last_end..])
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> JsonEditError {
        JsonEditError::Invalid(format!("{what} at byte {}", self.i))
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Node, JsonEditError> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let start = self.i;
                self.string()?;
                Ok(Node::Scalar {
                    start,
                    end: self.i,
                    kind: "a string",
                })
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.b.len()
                    && !matches!(
                        self.b[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.i += 1;
                }
                let kind = match &self.b[start..self.i] {
                    b"true" | b"false" => "a bool",
                    b"null" => "null",
                    _ => "a number",
                };
                Ok(Node::Scalar {
                    start,
                    end: self.i,
                    kind,
                })
            }
            None => Err(self.err("unexpected end")),
        }
    }

    /// Skips a string starting at the current `"`.
    fn string(&mut self) -> Result<(), JsonEditError> {
        self.i += 1;
        while let Some(&c) = self.b.get(self.i) {
            self.i += 1;
            match c {
                b'\\' => self.i += 1,
                b'"' => return Ok(()),
                _ => {}
            }
        }
        Err(self.err("unterminated string"))
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonEditError> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {:?}", c as char)))
        }
    }

    fn object(&mut self) -> Result<Node, JsonEditError> {
        let open = self.i;
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            let close = self.i;
            self.i += 1;
            return Ok(Node::Object {
                open,
                close,
                members,
            });
        }
        loop {
            self.ws();
            let key_start = self.i;
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            self.string()?;
            let key_end = self.i;
            let raw = std::str::from_utf8(&self.b[key_start..key_end])
                .map_err(|_| self.err("key is not UTF-8"))?;
            let key: String =
                serde_json::from_str(raw).map_err(|e| JsonEditError::Invalid(e.to_string()))?;
            self.expect(b':')?;
            let value = self.value()?;
            members.push(Member {
                key,
                key_start,
                key_end,
                value,
            });
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    let close = self.i;
                    self.i += 1;
                    return Ok(Node::Object {
                        open,
                        close,
                        members,
                    });
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self) -> Result<Node, JsonEditError> {
        let open = self.i;
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            let close = self.i;
            self.i += 1;
            return Ok(Node::Array { open, close, items });
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    let close = self.i;
                    self.i += 1;
                    return Ok(Node::Array { open, close, items });
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_file_gets_the_keys() {
        for empty in ["", "\n", "  \n"] {
            let out = set(empty, "image.tag", &json!("v2")).expect("set");
            assert_eq!(
                serde_json::from_str::<Value>(&out).expect("JSON"),
                json!({"image": {"tag": "v2"}}),
                "{out:?}"
            );
        }
    }

    const DOC: &str = "{\n  \"image\": {\n    \"repo\": \"r\",\n    \"tag\": \"v1.0.0\"\n  },\n  \"example.com/version\": 1.50,\n  \"containers\": [\n    { \"name\": \"a\", \"image\": \"a:v1\" }\n  ],\n  \"empty\": {},\n  \"list\": [1, 2]\n}\n";

    #[test]
    fn sets_only_the_value_bytes() {
        let out = set(DOC, "image.tag", &json!("v2.0.0")).expect("set");
        assert_eq!(out, DOC.replace("\"v1.0.0\"", "\"v2.0.0\""));
        let out = set(DOC, "example\\.com/version", &json!(2)).expect("set");
        assert_eq!(out, DOC.replace("1.50", "2"));
        let out = set(DOC, "containers.0.image", &json!("a:v2")).expect("set");
        assert_eq!(out, DOC.replace("a:v1", "a:v2"));
        let out = set(DOC, "image.pull", &json!(true)).expect("add");
        assert_eq!(
            out,
            DOC.replace(
                "\"tag\": \"v1.0.0\"\n",
                "\"tag\": \"v1.0.0\",\n    \"pull\": true\n"
            )
        );
    }

    #[test]
    fn creates_keys_and_appends_in_the_containers_layout() {
        let out = set(DOC, "list.-1", &json!(3)).expect("append");
        assert!(out.contains("\"list\": [1, 2, 3]"), "{out}");
        let out = set(DOC, "list.2", &json!(3)).expect("append by index");
        assert!(out.contains("\"list\": [1, 2, 3]"), "{out}");
        let out = set(DOC, "empty.a.b", &json!("x")).expect("nested");
        assert!(out.contains("\"empty\": {\"a\": {\"b\":\"x\"}}"), "{out}");
        let out = set("{\"a\":1}", "b", &json!(2)).expect("compact");
        assert_eq!(out, "{\"a\":1, \"b\":2}");
        assert_eq!(
            set("{\"a\":1,\"c\":3}", "b", &json!(2)).expect("compact"),
            "{\"a\":1,\"c\":3,\"b\":2}"
        );
        let out = set(DOC, "top", &json!("t")).expect("top level");
        assert!(
            out.ends_with("\"list\": [1, 2],\n  \"top\": \"t\"\n}\n"),
            "{out}"
        );
        serde_json::from_str::<Value>(&out).expect("still JSON");
    }

    #[test]
    fn refuses_what_it_cannot_set() {
        assert!(matches!(
            set(DOC, "image.tag.x", &json!(1)),
            Err(JsonEditError::NotAContainer { .. })
        ));
        let e = set(DOC, "list.7", &json!(1)).expect_err("index");
        assert_eq!(
            e.to_string(),
            "key \"list.7\": \"list\" is an array of 2 item(s); \"7\" is not an index in it or -1 to append"
        );
        assert!(matches!(
            set("{\"a\": }", "a", &json!(1)),
            Err(JsonEditError::Invalid(_))
        ));
        assert!(matches!(
            set(DOC, "a..b", &json!(1)),
            Err(JsonEditError::EmptyKey(_))
        ));
    }
}
