//! Semantic-version constraints with the syntax and semantics of Masterminds/semver v3, which is what
//! Kargo's `constraint` / `semverConstraint` fields accept. The `semver` crate only understands
//! Cargo's syntax (`^1.2, <2`), and Cargo's rules differ (e.g. `1.2` means `^1.2` there but `~1.2`
//! here), so constraints are parsed and evaluated here while versions stay `semver::Version`.
//!
//! Grammar: alternatives separated by `||`; each is a list of comparators separated by whitespace
//! or a comma (all must hold). A comparator is an optional operator (`=`, `!=`, `>`, `<`, `>=`,
//! `=>`, `<=`, `=<`, `~`, `~>`, `^`; none means `=`) and a version that may have a `v` prefix,
//! omit the minor and patch, use `x`/`X`/`*` wildcards and carry a prerelease. `A - B` (spaces
//! required) is a hyphen range, `>= A, <= B`.
//!
//! As in Masterminds, a comparator whose version has no prerelease never matches a prerelease
//! version, so `>=1.0.0` excludes `1.5.0-rc.1` while `>=1.0.0-0` admits it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::{BuildMetadata, Prerelease, Version};

/// A constraint string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver constraint {constraint:?}: {reason}")]
pub struct ConstraintError {
    /// The constraint as given.
    pub constraint: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed Masterminds-style constraint. `Display` gives back the original text.
#[derive(Debug, Clone)]
pub struct Constraint {
    source: String,
    /// Disjunction of conjunctions.
    any_of: Vec<Vec<Comparator>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` or no operator: exact, or a tilde range when the version has wildcards.
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// Which part of the comparator's version was a wildcard or missing (Masterminds' "dirty" flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wild {
    /// `1.2.3`
    None,
    /// `1.2` or `1.2.x`
    Patch,
    /// `1` or `1.x`
    Minor,
    /// `*` or `x`: dirty, yet neither the minor nor the patch flag is set, as in Masterminds.
    All,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    /// Wildcards are zeroed; build metadata is dropped since it never affects matching.
    version: Version,
    wild: Wild,
}

// Two-character operators come first so that `>=` is not read as `>` followed by `=1.0`.
const OPERATORS: [(&str, Op); 11] = [
    (">=", Op::Ge),
    ("=>", Op::Ge),
    ("<=", Op::Le),
    ("=<", Op::Le),
    ("!=", Op::Ne),
    ("~>", Op::Tilde),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("~", Op::Tilde),
    ("^", Op::Caret),
];

/// Go's `\s`, which Masterminds' regular expressions use; narrower than Unicode whitespace.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

fn skip_ws(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

/// Splits off the version text: everything up to whitespace or a comma.
fn take_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| is_ws(c) || c == ',').unwrap_or(s.len());
    s.split_at(end)
}

fn take_op(s: &str) -> (Op, &str, &str) {
    for (text, op) in OPERATORS {
        if let Some(rest) = s.strip_prefix(text) {
            return (op, text, rest);
        }
    }
    (Op::Eq, "", s)
}

impl Constraint {
    /// Parses a constraint such as `^1.2`, `>=1.0.0 <2.0.0`, `~1.2.x || >=3` or `1.2 - 1.4.5`.
    pub fn parse(constraint: &str) -> Result<Self, ConstraintError> {
        let fail = |reason: String| ConstraintError {
            constraint: constraint.to_owned(),
            reason,
        };
        if skip_ws(constraint).is_empty() {
            return Err(fail("the constraint is empty".to_owned()));
        }
        let any_of = constraint
            .split("||")
            .map(parse_conjunction)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(Self {
            source: constraint.to_owned(),
            any_of,
        })
    }

    /// The constraint text as it was given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `version` satisfies the constraint. Build metadata is ignored.
    pub fn matches(&self, version: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.matches(version)))
    }
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_conjunction(group: &str) -> Result<Vec<Comparator>, String> {
    let mut rest = skip_ws(group);
    if rest.is_empty() {
        return Err("an alternative between `||` is empty".to_owned());
    }
    let mut out = Vec::new();
    loop {
        let (op, op_text, after_op) = take_op(rest);
        let (token, mut after) = take_token(skip_ws(after_op));
        if token.is_empty() {
            return Err(if op_text.is_empty() {
                "expected a version".to_owned()
            } else {
                format!("operator {op_text:?} is not followed by a version")
            });
        }
        let (version, wild) = parse_constraint_version(token)?;
        match hyphen_range_upper(op_text, after) {
            Some((upper, after_upper)) => {
                let (upper_version, upper_wild) = parse_constraint_version(upper)?;
                out.push(Comparator {
                    op: Op::Ge,
                    version,
                    wild,
                });
                out.push(Comparator {
                    op: Op::Le,
                    version: upper_version,
                    wild: upper_wild,
                });
                after = after_upper;
            }
            None => out.push(Comparator { op, version, wild }),
        }

        // Comparators are separated by whitespace, a comma, or both; take_token stopped at one.
        rest = skip_ws(after);
        if rest.is_empty() {
            return Ok(out);
        }
        if let Some(r) = rest.strip_prefix(',') {
            rest = skip_ws(r);
            if rest.is_empty() {
                return Err("a comma is not followed by another comparator".to_owned());
            }
        }
    }
}

/// For a bare lower bound, detects ` - UPPER` (whitespace required on both sides of the hyphen, as
/// in Masterminds) and returns UPPER's text and what follows it.
fn hyphen_range_upper<'a>(op_text: &str, after_lower: &'a str) -> Option<(&'a str, &'a str)> {
    if !op_text.is_empty() {
        return None;
    }
    let after_ws = skip_ws(after_lower);
    if after_ws.len() == after_lower.len() {
        return None;
    }
    let after_hyphen = after_ws.strip_prefix('-')?;
    let upper_start = skip_ws(after_hyphen);
    if upper_start.len() == after_hyphen.len() {
        return None;
    }
    let (upper, after_upper) = take_token(upper_start);
    (!upper.is_empty()).then_some((upper, after_upper))
}

/// Parses a comparator's version: `v?` + up to three dot-separated parts, each digits or a
/// wildcard, then an optional `-prerelease` and `+build`.
fn parse_constraint_version(token: &str) -> Result<(Version, Wild), String> {
    let invalid = |why: &str| format!("{token:?} is not a valid version: {why}");
    let body = token.strip_prefix('v').unwrap_or(token);
    let (rest, build) = match body.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (body, None),
    };
    if let Some(build) = build
        && !valid_identifiers(build)
    {
        return Err(invalid("bad build metadata"));
    }
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let pre = match pre {
        Some(pre) if !valid_identifiers(pre) => return Err(invalid("bad prerelease")),
        Some(pre) => {
            Prerelease::new(&normalize_prerelease(pre)).map_err(|e| invalid(&e.to_string()))?
        }
        None => Prerelease::EMPTY,
    };

    let mut parts = [None::<&str>; 3];
    for (i, part) in core.split('.').enumerate() {
        let slot = parts
            .get_mut(i)
            .ok_or_else(|| invalid("more than three version parts"))?;
        // Masterminds' part pattern is the character class [0-9|x|X|\*]+.
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'x' | b'X' | b'*' | b'|'))
        {
            return Err(invalid(
                "each part must be a number or a wildcard (x, X, *)",
            ));
        }
        *slot = Some(part);
    }
    let is_wild = |p: Option<&str>| matches!(p, None | Some("x" | "X" | "*"));
    let number = |p: Option<&str>| -> Result<u64, String> {
        let p = p.unwrap_or("0");
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "each part must be a number or a wildcard (x, X, *)",
            ));
        }
        p.parse::<u64>().map_err(|_| invalid("number too large"))
    };

    // As in Masterminds, everything after the first wildcard (or missing part) is ignored.
    let (major, minor, patch, wild) = if is_wild(parts[0]) {
        (0, 0, 0, Wild::All)
    } else if is_wild(parts[1]) {
        (number(parts[0])?, 0, 0, Wild::Minor)
    } else if is_wild(parts[2]) {
        (number(parts[0])?, number(parts[1])?, 0, Wild::Patch)
    } else {
        (
            number(parts[0])?,
            number(parts[1])?,
            number(parts[2])?,
            Wild::None,
        )
    };
    let version = Version {
        major,
        minor,
        patch,
        pre,
        build: BuildMetadata::EMPTY,
    };
    Ok((version, wild))
}

/// Dot-separated, non-empty identifiers of `[0-9A-Za-z-]`.
fn valid_identifiers(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn has_leading_zero_number(id: &str) -> bool {
    id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit())
}

/// Masterminds' non-strict parser accepts numeric prerelease identifiers with leading zeros and
/// compares them as numbers; `semver::Prerelease` rejects them, so strip the zeros.
fn normalize_prerelease(pre: &str) -> Cow<'_, str> {
    if !pre.split('.').any(has_leading_zero_number) {
        return Cow::Borrowed(pre);
    }
    let ids: Vec<&str> = pre
        .split('.')
        .map(|id| {
            if has_leading_zero_number(id) {
                let trimmed = id.trim_start_matches('0');
                if trimmed.is_empty() { "0" } else { trimmed }
            } else {
                id
            }
        })
        .collect();
    Cow::Owned(ids.join("."))
}

/// Parses an image or git tag as a semantic version the way Kargo does.
///
/// Non-strict (`strictSemvers: false`) accepts an optional `v` and missing minor/patch (`1`,
/// `v1.2`, `1.2-rc.1`), and leading zeros. Strict additionally requires major.minor.patch without
/// leading zeros, in the numbers or in numeric prerelease identifiers; a `v` prefix is still fine.
/// Returns `None` for anything that is not a version, e.g. `latest` or `1.2.3.4`.
pub fn parse_version(tag: &str, strict: bool) -> Option<Version> {
    let body = tag.strip_prefix('v').unwrap_or(tag);
    let (rest, build) = match body.split_once('+') {
        Some((rest, build)) if valid_identifiers(build) => (rest, build),
        Some(_) => return None,
        None => (body, ""),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) if valid_identifiers(pre) => (core, pre),
        Some(_) => return None,
        None => (rest, ""),
    };
    if strict && pre.split('.').any(has_leading_zero_number) {
        return None;
    }

    let mut numbers = [0u64; 3];
    let mut count = 0;
    for (i, part) in core.split('.').enumerate() {
        let slot = numbers.get_mut(i)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if strict && part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *slot = part.parse().ok()?;
        count = i + 1;
    }
    if strict && count != 3 {
        return None;
    }

    let pre = if pre.is_empty() {
        Prerelease::EMPTY
    } else {
        Prerelease::new(&normalize_prerelease(pre)).ok()?
    };
    let build = if build.is_empty() {
        BuildMetadata::EMPTY
    } else {
        BuildMetadata::new(build).ok()?
    };
    Some(Version {
        major: numbers[0],
        minor: numbers[1],
        patch: numbers[2],
        pre,
        build,
    })
}

/// Semantic-version precedence: like `Version::cmp` but ignoring build metadata, as Masterminds
/// and the SemVer spec do.
pub fn cmp_precedence(a: &Version, b: &Version) -> Ordering {
    a.major
        .cmp(&b.major)
        .then(a.minor.cmp(&b.minor))
        .then(a.patch.cmp(&b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

impl Comparator {
    fn dirty(&self) -> bool {
        self.wild != Wild::None
    }

    fn minor_dirty(&self) -> bool {
        self.wild == Wild::Minor
    }

    fn patch_dirty(&self) -> bool {
        self.wild == Wild::Patch
    }

    /// A transcription of Masterminds v3's per-operator functions, quirks included.
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        // Masterminds issue #21: prereleases only match comparators that name a prerelease.
        // `!=` without wildcards is the one operator that skips this check.
        let prerelease_excluded = !v.pre.is_empty() && c.pre.is_empty();
        match self.op {
            Op::Ne => {
                if self.dirty() {
                    if prerelease_excluded {
                        return false;
                    }
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty() {
                        return true;
                    } else if self.minor_dirty() {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty() {
                        return true;
                    } else if self.patch_dirty() {
                        return v.pre != c.pre;
                    }
                }
                cmp_precedence(v, c) != Ordering::Equal
            }
            _ if prerelease_excluded => false,
            Op::Gt => {
                if !self.dirty() {
                    return cmp_precedence(v, c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty() {
                    return false;
                }
                if self.patch_dirty() {
                    return v.minor > c.minor;
                }
                cmp_precedence(v, c) == Ordering::Greater
            }
            Op::Lt => cmp_precedence(v, c) == Ordering::Less,
            Op::Ge => cmp_precedence(v, c) != Ordering::Less,
            Op::Le => {
                if !self.dirty() {
                    return cmp_precedence(v, c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty()))
            }
            Op::Eq if self.dirty() => self.tilde(v),
            Op::Eq => cmp_precedence(v, c) == Ordering::Equal,
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    /// `~1.2.3` → `>=1.2.3 <1.3.0`; `~1` → `>=1.0.0 <2.0.0`; `~*` → anything.
    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if cmp_precedence(v, c) == Ordering::Less {
            return false;
        }
        if c.major == 0
            && c.minor == 0
            && c.patch == 0
            && !self.minor_dirty()
            && !self.patch_dirty()
        {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty())
    }

    /// `^1.2.3` → `>=1.2.3 <2.0.0`; `^0.2.3` → `>=0.2.3 <0.3.0`; `^0.0.3` → `=0.0.3`;
    /// `^0.0` → `<0.1.0`; `^0` → `<1.0.0`.
    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if cmp_precedence(v, c) == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.minor_dirty() {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty() {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        v.patch == c.patch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        match parse_version(s, false) {
            Some(v) => v,
            None => panic!("test version {s:?} does not parse"),
        }
    }

    fn check(constraint: &str, version: &str) -> bool {
        match Constraint::parse(constraint) {
            Ok(c) => c.matches(&v(version)),
            Err(e) => panic!("{e}"),
        }
    }

    /// Cases from Masterminds' own TestConstraintCheck / TestConstraintsCheck, plus the
    /// examples Kargo users write.
    #[test]
    fn matches_like_masterminds() {
        let cases: &[(&str, &str, bool)] = &[
            // exact and implicit-tilde
            ("=2.0.0", "1.2.3", false),
            ("=2.0.0", "2.0.0", true),
            ("=1.2.3", "1.2.3", true),
            ("=1.2.3", "1.2.3+build.5", true),
            ("=1.2.3", "1.2.4", false),
            ("=2.0", "1.2.3", false),
            ("=2.0", "2.0.0", true),
            ("=2.0", "2.0.1", true),
            ("= 2.0", "2.0.0", true),
            ("4.1", "4.1.0", true),
            ("4.1.x", "4.1.3", true),
            ("1.x", "1.4.0", true),
            ("0.0.0", "1.2.3", false),
            ("0.x.x", "1.2.3", false),
            ("0.0.x", "1.2.3", false),
            ("2", "1.0.0", false),
            ("2", "3.4.5", false),
            ("2", "2.1.1", true),
            ("2.1", "2.1.1", true),
            ("2.1", "2.2.1", false),
            ("2.*", "2.1.1", true),
            ("2.*", "3.4.5", false),
            ("2.1.*", "2.1.1", true),
            ("2.1.*", "2.2.1", false),
            ("=0", "1.0.0", false),
            // wildcards
            ("*", "1.0.0", true),
            ("*", "4.5.6", true),
            ("*", "1.2.3-alpha.1", false),
            ("*-0", "1.2.3-alpha.1", true),
            ("x", "0.0.1", true),
            // !=
            ("!=1.2.3", "1.2.3", false),
            ("!=1.2.3", "1.2.4", true),
            ("!=4.1.0", "4.1.0", false),
            ("!=4.1.0", "4.1.1", true),
            ("!=4.1", "4.1.0", false),
            ("!=4.1", "4.1.1", false),
            ("!=4.1", "5.1.0-alpha.1", false),
            ("!=4.1-alpha", "4.1.0", true),
            ("!=4.1-alpha", "4.1.0-alpha", false),
            ("!=4.1-alpha", "4.1.1-alpha", false),
            ("!=4.1", "5.1.0", true),
            ("!=4.x", "5.1.0", true),
            ("!=4.x", "4.1.0", false),
            ("!=4.1.x", "4.2.0", true),
            ("!=4.2.x", "4.2.3", false),
            // < <= > >=
            ("<11", "0.1.0", true),
            ("<11", "11.1.0", false),
            ("<1.1", "0.1.0", true),
            ("<1.1", "1.1.0", false),
            ("<1.1", "1.1.1", false),
            ("<1.x", "1.1.1", false),
            ("<1.x", "0.1.1", true),
            ("<1.x", "2.0.0", false),
            ("<1.1.x", "1.2.1", false),
            ("<1.1.x", "1.1.500", false),
            ("<1.1.x", "1.0.500", true),
            ("<1.2.x", "1.1.1", true),
            ("<=11", "1.2.3", true),
            ("<=11", "12.2.3", false),
            ("<=11", "11.2.3", true),
            ("<=1.1", "1.2.3", false),
            ("<=1.1", "0.1.0", true),
            ("<=1.1", "1.1.0", true),
            ("<=1.1", "1.1.1", true),
            ("<=1.1", "0.1.0-alpha", false),
            ("<=1.1-a", "0.1.0-alpha", true),
            ("<=1.x", "1.1.0", true),
            ("<=2.x", "3.0.0", false),
            ("<=1.1.x", "1.2.500", false),
            ("<=4.5", "3.4.0", true),
            ("<=4.5", "3.7.0", true),
            ("<=4.5", "4.6.3", false),
            (">1.1", "4.1.0", true),
            (">1.1", "1.1.0", false),
            (">0", "0.0.0", false),
            (">0", "1.0.0", true),
            (">0", "0.0.1-alpha", false),
            (">0.0", "0.0.1-alpha", false),
            (">0-0", "0.0.1-alpha", false),
            (">0.0-0", "0.0.1-alpha", false),
            (">0", "0.0.0-alpha", false),
            (">0-0", "0.0.0-alpha", false),
            (">0.0.0-0", "0.0.0-alpha", true),
            (">1.2.3-alpha.1", "1.2.3-alpha.2", true),
            (">1.2.3-alpha.1", "1.3.3-alpha.2", true),
            (">11", "11.1.0", false),
            (">11.1", "11.1.0", false),
            (">11.1", "11.1.1", false),
            (">11.1", "11.2.1", true),
            (">=11", "11.1.2", true),
            (">=11.1", "11.1.2", true),
            (">=11.1", "11.0.2", false),
            (">=1.1", "4.1.0", true),
            (">=1.1", "4.1.0-beta", false),
            (">=1.1", "1.1.0", true),
            (">=1.1", "0.0.9", false),
            (">=0", "0.0.1-alpha", false),
            (">=0.0", "0.0.1-alpha", false),
            (">=0-0", "0.0.1-alpha", true),
            (">=0.0-0", "0.0.1-alpha", true),
            (">=0", "0.0.0-alpha", false),
            (">=0-0", "0.0.0-alpha", true),
            (">=0.0.0-0", "0.0.0-alpha", true),
            (">=0.0.0-0", "1.2.3", true),
            (">=0.0.0-0", "3.4.5-beta.1", true),
            ("<0", "0.0.0-alpha", false),
            ("<0-z", "0.0.0-alpha", true),
            (">=0", "0.0.0", true),
            ("=>1.2", "1.2.0", true),
            ("=<1.2", "1.2.9", true),
            // ~
            ("~1.2.3", "1.2.4", true),
            ("~1.2.3", "1.2.5", true),
            ("~1.2.3", "1.2.2", false),
            ("~1.2.3", "1.3.4", false),
            ("~1.2", "1.2.4", true),
            ("~1.2", "1.3.4", false),
            ("~1", "1.2.4", true),
            ("~1", "2.3.4", false),
            ("~1", "1.3.5-beta", false),
            ("~>1.2", "1.2.9", true),
            ("~>1.2", "1.3.0", false),
            ("~0.2.3", "0.2.5", true),
            ("~0.2.3", "0.3.5", false),
            ("~1.2.3-beta.2", "1.2.3-beta.4", true),
            ("~1.2.3-beta.2", "1.2.4-beta.2", true),
            ("~1.2.3-beta.2", "1.3.4-beta.2", false),
            ("~*", "2.1.1", true),
            ("~0.0.0", "1.2.3", true),
            ("~1.x", "2.1.1", false),
            ("~1.x", "1.3.5", true),
            ("~1.1", "1.1.1-alpha", false),
            ("~1.1-alpha", "1.1.1-beta", true),
            ("~1.1.1-beta", "1.1.1-alpha", false),
            ("~1.1.1-beta", "1.1.1", true),
            ("~1.3.6-alpha", "1.3.5-beta", false),
            ("~1.3.5-alpha", "1.3.5-beta", true),
            // ^
            ("^1.2.3", "1.8.9", true),
            ("^1.2.3", "2.8.9", false),
            ("^1.2.3", "1.2.1", false),
            ("^1.1.0", "2.1.0", false),
            ("^1.2.0", "2.2.1", false),
            ("^1.2.0", "1.2.1-alpha.1", false),
            ("^1.2.0-alpha.0", "1.2.1-alpha.1", true),
            ("^1.2.0-alpha.0", "1.2.1-alpha.0", true),
            ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
            ("^1.2", "1.2.0", true),
            ("^1.2", "1.8.9", true),
            ("^1.2", "1.1.9", false),
            ("^1.2", "2.8.9", false),
            ("^1", "1.8.9", true),
            ("^1", "2.8.9", false),
            ("^0.2.3", "0.2.5", true),
            ("^0.2.3", "0.5.6", false),
            ("^0.2", "0.2.5", true),
            ("^0.2", "0.5.6", false),
            ("^0.0.3", "0.0.3", true),
            ("^0.0.3", "0.0.4", false),
            ("^0.0", "0.0.3", true),
            ("^0.0", "0.1.4", false),
            ("^0.0", "1.0.4", false),
            ("^0", "0.2.3", true),
            ("^0", "1.1.4", false),
            ("^0.0.0", "1.2.3", false),
            ("^0.2.3-beta.2", "0.2.3-beta.4", true),
            ("^0.2.3-beta.2", "0.2.4-beta.2", true),
            ("^0.2.3-beta.2", "0.3.4-beta.2", false),
            ("^0.2.3-beta.2", "0.2.3-beta.2", true),
            ("^1.x", "1.1.1", true),
            ("^2.x", "1.1.1", false),
            ("^1.x", "2.1.1", false),
            ("^1.x", "1.1.1-beta1", false),
            ("^1.1.2-alpha", "1.2.1-beta1", true),
            ("^1.2.x-alpha", "1.1.1-beta1", false),
            // v prefixes on the constraint
            ("^v1.2", "1.5.0", true),
            ("v1.2.3", "1.2.3", true),
            (">=v1.0.0 <v2", "1.9.9", true),
            // AND with spaces and commas
            (">=1.0.0 <2.0.0", "1.9.9", true),
            (">=1.0.0 <2.0.0", "2.0.0", false),
            (">=1.0, <2", "1.0.0", true),
            (">=1.0, <2", "2.0.0", false),
            (">1.1, <2", "1.1.1", false),
            (">1.1, <2", "1.2.1", true),
            (">1.1, <3", "4.3.2", false),
            (">=1.1, <2, !=1.2.3", "1.2.3", false),
            (">1.1 <2", "1.2.1", true),
            (">1.1    <3", "4.3.2", false),
            ("> 1.1, <     2", "1.1.1", false),
            (">   1.1, <2", "1.2.1", true),
            (">= 1.1 <2 != 1.2.3", "1.2.3", false),
            ("\t>=1.0\n<2 ", "1.5.0", true),
            // OR
            (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
            (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", false),
            (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
            (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
            (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
            (">=1.1 <2 !=1.2.3 || > 3", "1.5.0", true),
            ("^1.2||^3", "3.4.0", true),
            ("^1.2||^3", "2.0.0", false),
            // hyphen ranges
            ("1.2 - 1.4.5", "1.2.0", true),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            ("1.2 - 1.4.5", "1.1.9", false),
            ("1.1 - 2", "1.1.1", true),
            ("1.1 - 2", "2.9.0", true),
            ("1.1 - 2", "3.0.0", false),
            ("1.5.0 - 4.5", "3.7.0", true),
            ("1.1 - 3", "4.3.2", false),
            ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
            ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
            ("v1.0.0 - v2.0.0", "2.0.0", true),
            ("1 - 2 || 5", "5.1.0", true),
            // "1.1-3" is the version 1.1.0-3, not a range: no spaces around the hyphen.
            ("1.1-3", "4.3.2", false),
            ("1.1-3", "1.1.5", true),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(c, ver, want)| check(c, ver) != *want)
            .map(|(c, ver, want)| format!("{c:?} vs {ver:?}: want {want}"))
            .collect();
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    }

    #[test]
    fn parse_errors_quote_the_constraint() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("foo", "\"foo\" is not a valid version"),
            (">= bar", "\"bar\" is not a valid version"),
            ("BAR >= 1.2.3", "\"BAR\" is not a valid version"),
            ("12.3.4.1234", "more than three version parts"),
            ("12.3.34~ 1.2.3", "\"12.3.34~\" is not a valid version"),
            (">=", "operator \">=\" is not followed by a version"),
            ("^1.2 ||", "an alternative between `||` is empty"),
            ("|| ^1.2", "an alternative between `||` is empty"),
            (">=1.0,", "a comma is not followed by another comparator"),
            (">=1.0,,<2", "expected a version"),
            ("1.2.3-", "bad prerelease"),
            ("1.2.3+", "bad build metadata"),
            ("1.2.3-a..b", "bad prerelease"),
            ("1x.2", "each part must be a number or a wildcard"),
            ("1..2", "each part must be a number or a wildcard"),
            ("V1.2.3", "\"V1.2.3\" is not a valid version"),
            ("99999999999999999999", "number too large"),
            ("==1.2", "\"=1.2\" is not a valid version"),
            ("1.0 -2.0", "\"-2.0\" is not a valid version"),
        ];
        for (input, want) in cases {
            match Constraint::parse(input) {
                Ok(c) => panic!("{input:?} parsed as {c:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert_eq!(e.constraint, *input);
                    assert!(
                        msg.starts_with(&format!("invalid semver constraint {input:?}: ")),
                        "{msg}"
                    );
                    assert!(msg.contains(want), "{input:?}: {msg:?} lacks {want:?}");
                }
            }
        }
    }

    #[test]
    fn parse_accepts_every_operator_and_keeps_source() {
        for c in [
            "=1",
            "!=1",
            ">1",
            "<1",
            ">=1",
            "=>1",
            "<=1",
            "=<1",
            "~1",
            "~>1",
            "^1",
            "1",
            "*",
            "x",
            "X",
            "1.X",
            "v1",
            "1.2.3-rc.1+build.7",
            "1.2.3-rc.01",
        ] {
            match c.parse::<Constraint>() {
                Ok(parsed) => assert_eq!(parsed.to_string(), c),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn parse_version_strict_and_loose() {
        // (tag, strict result, non-strict result) as "M.m.p[-pre][+build]" or None
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("1.2.3", Some("1.2.3"), Some("1.2.3")),
            ("v1.2.3", Some("1.2.3"), Some("1.2.3")),
            ("1.2.3-rc.1", Some("1.2.3-rc.1"), Some("1.2.3-rc.1")),
            (
                "v1.2.3-rc.1+build.5",
                Some("1.2.3-rc.1+build.5"),
                Some("1.2.3-rc.1+build.5"),
            ),
            (
                "1.2.3+build-x.007",
                Some("1.2.3+build-x.007"),
                Some("1.2.3+build-x.007"),
            ),
            ("1.2.3-rc-1", Some("1.2.3-rc-1"), Some("1.2.3-rc-1")),
            ("0.0.0", Some("0.0.0"), Some("0.0.0")),
            ("1", None, Some("1.0.0")),
            ("1.2", None, Some("1.2.0")),
            ("v1.2", None, Some("1.2.0")),
            ("v1", None, Some("1.0.0")),
            ("1.2-rc.1", None, Some("1.2.0-rc.1")),
            ("01.2.3", None, Some("1.2.3")),
            ("1.02.3", None, Some("1.2.3")),
            ("1.2.3-rc.01", None, Some("1.2.3-rc.1")),
            ("1.2.3-01a", Some("1.2.3-01a"), Some("1.2.3-01a")),
            ("latest", None, None),
            ("", None, None),
            ("v", None, None),
            ("vv1.2.3", None, None),
            ("V1.2.3", None, None),
            ("1.2.3.4", None, None),
            ("1.2.3-", None, None),
            ("1.2.3+", None, None),
            ("1.2.3-a..b", None, None),
            ("1.2.3-a_b", None, None),
            ("1.2.3+a+b", None, None),
            ("1..3", None, None),
            (".1.2", None, None),
            ("1.2.", None, None),
            ("-1.2.3", None, None),
            ("sha-abc123", None, None),
            ("1.2.3 ", None, None),
            ("18446744073709551616.0.0", None, None),
            (
                "18446744073709551615.0.0",
                Some("18446744073709551615.0.0"),
                Some("18446744073709551615.0.0"),
            ),
        ];
        for (tag, strict, loose) in cases {
            let got_strict = parse_version(tag, true).map(|v| v.to_string());
            let got_loose = parse_version(tag, false).map(|v| v.to_string());
            assert_eq!(got_strict.as_deref(), *strict, "strict {tag:?}");
            assert_eq!(got_loose.as_deref(), *loose, "non-strict {tag:?}");
        }
    }

    #[test]
    fn precedence_ignores_build_metadata() {
        for (a, b, want) in [
            ("1.2.3+a", "1.2.3+b", Ordering::Equal),
            ("1.2.3-rc.1", "1.2.3", Ordering::Less),
            ("1.2.3-rc.10", "1.2.3-rc.9", Ordering::Greater),
            ("1.2.3-alpha", "1.2.3-1", Ordering::Greater),
        ] {
            assert_eq!(cmp_precedence(&v(a), &v(b)), want, "{a} vs {b}");
        }
    }

    #[test]
    fn prerelease_needs_a_prerelease_comparator() {
        let rc = v("1.5.0-rc.1");
        for c in ["^1", "~1.5", ">=1.0.0", "<2", "1.x", "*", ">=1.0.0 <2.0.0"] {
            let parsed = Constraint::parse(c).unwrap_or_else(|e| panic!("{e}"));
            assert!(!parsed.matches(&rc), "{c} must not match {rc}");
        }
        for c in ["^1.0.0-0", ">=1.0.0-0", "~1.5.0-rc.0", ">=1.5.0-0 <1.5.0-z"] {
            let parsed = Constraint::parse(c).unwrap_or_else(|e| panic!("{e}"));
            assert!(parsed.matches(&rc), "{c} must match {rc}");
        }
        // Every comparator of an AND group needs its own prerelease.
        let parsed = Constraint::parse(">=1.0.0-0 <2.0.0").unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.matches(&rc));
    }
}
