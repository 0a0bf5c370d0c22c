//! `glob:` patterns with the semantics Kargo gets from `github.com/bmatcuk/doublestar/v4`: git
//! `includePaths`/`excludePaths`, ProjectConfig Stage selectors, and untar's ignore rules.
//!
//! The `glob` crate does the matching (character by character, as doublestar: globset matches
//! bytes, so its `?` is not one `☺`). This module validates a pattern the way doublestar does and
//! spells it as one or more `glob` patterns where the two differ:
//! * `{a,b}` alternatives are expanded (the `glob` crate has none);
//! * `**` is recursive only as a whole path component; elsewhere it is `*` (`a**` = `a*`);
//! * `dir/**` also matches `dir` itself;
//! * a character class may match `/` (`a[!x]b` matches `a/b`), `[^x]` negates like `[!x]`,
//!   `\` escapes inside a class, and `-` after a range is literal (`[a-b-d]`);
//! * `\` escapes a character; an unmatched `}`, `[]` or `[!]` is an error.
//!
//! Matching is case-sensitive and `*`, `?` never cross `/`.

use glob::{MatchOptions, Pattern};

/// Expansions of `{...}` and of classes that may match `/` beyond which a pattern is refused.
const MAX_VARIANTS: usize = 1024;

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// A pattern that is not valid doublestar syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    pub pattern: String,
    pub reason: String,
}

/// A compiled `glob:` pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    /// Matches when any of them does.
    variants: Vec<Pattern>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let err = |reason: String| GlobError {
            pattern: pattern.to_owned(),
            reason,
        };
        let mut variants = Vec::new();
        for expanded in expand_braces(pattern).map_err(|r| err(r.to_owned()))? {
            for p in translate(&expanded).map_err(|r| err(r.to_owned()))? {
                variants.push(Pattern::new(&p).map_err(|e| err(e.msg.to_owned()))?);
            }
            if variants.len() > MAX_VARIANTS {
                return Err(err("too many alternatives".into()));
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            variants,
        })
    }

    /// Whether the whole of `path` (`/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        self.variants.iter().any(|p| p.matches_with(path, OPTIONS))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// The patterns `{...}` stands for, spliced in as doublestar does; escapes are kept.
fn expand_braces(pattern: &str) -> Result<Vec<String>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '}' => return Err("'}' without '{'"),
            '{' => {
                let (close, commas) = alternatives(&chars, i)?;
                let before: String = chars[..i].iter().collect();
                let after: String = chars[close + 1..].iter().collect();
                let mut bounds = vec![i];
                bounds.extend(&commas);
                bounds.push(close);
                let mut out = Vec::new();
                for w in bounds.windows(2) {
                    let alt: String = chars[w[0] + 1..w[1]].iter().collect();
                    out.extend(expand_braces(&format!("{before}{alt}{after}"))?);
                    if out.len() > MAX_VARIANTS {
                        return Err("too many alternatives");
                    }
                }
                return Ok(out);
            }
            _ => {}
        }
        i += 1;
    }
    Ok(vec![pattern.to_owned()])
}

/// The matching `}` of the `{` at `open`, and its top-level commas.
fn alternatives(chars: &[char], open: usize) -> Result<(usize, Vec<usize>), &'static str> {
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' if depth == 0 => return Ok((i, commas)),
            '}' => depth -= 1,
            ',' if depth == 0 => commas.push(i),
            _ => {}
        }
        i += 1;
    }
    Err("unclosed '{'")
}

/// The `glob` patterns whose union is the brace-free doublestar `pattern`.
fn translate(pattern: &str) -> Result<Vec<String>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    // Every variant so far; a class that may match `/` doubles them.
    let mut outs = vec![String::new()];
    let push = |outs: &mut Vec<String>, s: &str| outs.iter_mut().for_each(|o| o.push_str(s));
    let mut at_segment_start = true;
    let mut recursive_tail = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        recursive_tail = false;
        let mut next_at_start = false;
        match c {
            '\\' => {
                let escaped = *chars.get(i + 1).ok_or("ends with an escape character")?;
                push(&mut outs, &literal(escaped));
                next_at_start = escaped == '/';
                i += 1;
            }
            '*' => {
                let run = chars[i..].iter().take_while(|c| **c == '*').count();
                let after = chars.get(i + run);
                if run == 2 && at_segment_start && matches!(after, None | Some('/')) {
                    if after.is_some() && i + run + 1 == chars.len() {
                        // `dir/**/`: directories below `dir`, spelled so `glob` ends with `/`.
                        recursive_tail = i > 0;
                        push(&mut outs, "**/*/");
                        i += 1;
                    } else {
                        recursive_tail = after.is_none() && i > 0;
                        push(&mut outs, "**");
                    }
                } else {
                    push(&mut outs, "*");
                }
                i += run - 1;
            }
            '?' => push(&mut outs, "?"),
            '[' => {
                let (class, slash, end) = class(&chars, i)?;
                i = end;
                if slash {
                    let mut with_slash = outs.clone();
                    push(&mut with_slash, "/");
                    push(&mut outs, &class);
                    outs.extend(with_slash);
                    if outs.len() > MAX_VARIANTS {
                        return Err("too many alternatives");
                    }
                } else {
                    push(&mut outs, &class);
                }
            }
            '/' => {
                push(&mut outs, "/");
                next_at_start = true;
            }
            c => push(&mut outs, &literal(c)),
        }
        at_segment_start = next_at_start;
        i += 1;
    }
    if recursive_tail {
        // doublestar: `dir/**` and `dir/**/` also match `dir` and `dir/`.
        let dirs: Vec<String> = outs
            .iter()
            .filter_map(|o| o.strip_suffix("/**").or_else(|| o.strip_suffix("/**/*/")))
            .flat_map(|d| [d.to_owned(), format!("{d}/")])
            .collect();
        outs.extend(dirs);
    }
    Ok(outs)
}

/// A character that doublestar reads literally, in `glob` syntax.
fn literal(c: char) -> String {
    match c {
        '*' | '?' | '[' | ']' => format!("[{c}]"),
        c => c.to_string(),
    }
}

/// Parses the class opening at `chars[start]` as doublestar does: its `glob` spelling, whether
/// it matches `/`, and the index of its closing `]`.
fn class(chars: &[char], start: usize) -> Result<(String, bool, usize), &'static str> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    match chars.get(i) {
        None => return Err("unclosed character class"),
        Some(']') => return Err("empty character class"),
        _ => {}
    }
    let mut items: Vec<(char, char)> = Vec::new();
    // The previous single character, which a following `-` turns into a range.
    let mut last: Option<char> = None;
    loop {
        let c = *chars.get(i).ok_or("unclosed character class")?;
        match c {
            ']' => break,
            '-' if last.is_some() && !matches!(chars.get(i + 1), None | Some(']')) => {
                let mut hi = chars[i + 1];
                i += 1;
                if hi == '\\' {
                    hi = *chars.get(i + 1).ok_or("unclosed character class")?;
                    i += 1;
                }
                if let (Some(lo), Some(_)) = (last.take(), items.pop()) {
                    items.push((lo, hi));
                }
            }
            '\\' => {
                let e = *chars.get(i + 1).ok_or("unclosed character class")?;
                i += 1;
                items.push((e, e));
                last = Some(e);
            }
            c => {
                items.push((c, c));
                last = Some(c);
            }
        }
        i += 1;
    }
    // A reversed range never matches (doublestar does not reject it).
    items.retain(|(lo, hi)| lo <= hi);
    let has_slash = items.iter().any(|(lo, hi)| *lo <= '/' && '/' <= *hi);
    // `require_literal_separator` keeps `/` out of classes; doublestar does not.
    let slash = negated != has_slash;
    Ok((class_body(items, negated), slash, i))
}

/// A class that matches no character.
const NOTHING: &str = "[!\u{0}-\u{10FFFF}]";

/// The class in `glob` syntax, where only position makes `]`, `-` and `!` literal: `]` first,
/// `-` last, never `!` first.
fn class_body(mut items: Vec<(char, char)>, negated: bool) -> String {
    if items.is_empty() {
        // Nothing listed: no character, or (negated) any character but `/`.
        return if negated { "?" } else { NOTHING }.to_owned();
    }
    let mut take = |c: char| {
        let had = items.contains(&(c, c));
        items.retain(|r| *r != (c, c));
        had
    };
    let close = take(']');
    let dash = take('-');
    let mut lead = String::new();
    let mut tail = String::new();
    if close {
        lead.push(']');
    }
    if dash {
        tail.push('-');
    }
    if !negated && !close && items.first().is_some_and(|(lo, _)| *lo == '!') {
        if items.len() > 1 {
            items.swap(0, 1);
        } else if dash {
            // `-` first is literal too.
            lead = std::mem::take(&mut tail);
        } else if let Some((lo, hi)) = items.first().copied()
            && lo < hi
        {
            // `!-x`: `"-x` then `!`.
            items = vec![('"', hi), (lo, lo)];
        } else {
            // Only `!`: a plain character.
            return "!".to_owned();
        }
    }
    let mut body = String::from(if negated { "[!" } else { "[" });
    body.push_str(&lead);
    for (lo, hi) in items {
        body.push(lo);
        if lo != hi {
            body.push('-');
            body.push(hi);
        }
    }
    body.push_str(&tail);
    body.push(']');
    body
}

#[cfg(test)]
mod tests;
