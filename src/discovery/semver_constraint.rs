//! Semantic-version constraints exactly as Masterminds/semver v3.5.0's `NewConstraint` and
//! `Constraints.Check`, which is what Kargo's `constraint` / `semverConstraint` fields use. The
//! `semver` crate implements Cargo's syntax and rules (`1.2` means `^1.2` there, `~1.2` here), so
//! Masterminds' parser is ported: the same regular expressions (Go's RE2 and the `regex` crate
//! both pick the leftmost-first match) and the same per-operator functions, quirks included.
//! Versions are parsed by [`super::semver_version`]. `tests/semver_conformance.rs` runs
//! Masterminds' own test tables against this module.
//!
//! Grammar: alternatives separated by `||`; each is a list of comparisons separated by
//! whitespace or a comma (all must hold). A comparison is an optional operator (`=`, `!=`, `>`,
//! `<`, `>=`, `=>`, `<=`, `=<`, `~`, `~>`, `^`; none means `=`) and a version that may have a `v`
//! prefix, omit the minor and patch, use `x`/`X`/`*` wildcards and carry a prerelease.
//! `A - B` is the range `>= A, <= B`.
//!
//! Prereleases: a prerelease version matches only an alternative in which some comparison names
//! a prerelease (then the whole alternative admits prereleases: `>=1.0.0 <=2.0.0-beta` admits
//! `1.0.1-beta`).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use semver::Version;

use super::semver_version::{VersionError, new_version};
pub use super::semver_version::{cmp_precedence, parse_version};

/// Masterminds' `MaxConstraintLen` (bytes).
pub const MAX_CONSTRAINT_LEN: usize = 512;
/// Masterminds' `MaxConstraintGroups`: alternatives separated by `||`.
pub const MAX_CONSTRAINT_GROUPS: usize = 32;

/// A constraint string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver constraint {constraint:?}: {reason}")]
pub struct ConstraintError {
    /// The constraint as given.
    pub constraint: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed Masterminds constraint. `Display` gives back the original text.
#[derive(Debug, Clone)]
pub struct Constraint {
    source: String,
    /// Disjunction of conjunctions.
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    comparisons: Vec<Comparison>,
    /// Some comparison names a prerelease, so the whole group admits prerelease versions.
    contains_pre: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` or no operator: exact, or a tilde range when the version has wildcards.
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

impl Op {
    fn of(text: &str) -> Option<Self> {
        Some(match text {
            "" | "=" => Self::TildeOrEqual,
            "!=" => Self::NotEqual,
            ">" => Self::Greater,
            "<" => Self::Less,
            ">=" | "=>" => Self::GreaterEqual,
            "<=" | "=<" => Self::LessEqual,
            "~" | "~>" => Self::Tilde,
            "^" => Self::Caret,
            _ => return None,
        })
    }
}

/// One comparison, as Masterminds' `constraint` struct.
#[derive(Debug, Clone)]
struct Comparison {
    op: Op,
    /// The operator as written (`origfunc`) and the version as written (`orig`).
    op_text: String,
    version_text: String,
    /// The version with wildcards and missing parts zeroed.
    con: Version,
    /// A wildcard or missing part anywhere (`dirty`), in the minor, or in the patch.
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

// Go's `\s` is ASCII `[\t\n\f\r ]`; the `regex` crate's is Unicode, so it is spelled out.
const WS: &str = r"[\t\n\f\r ]";
// The empty alternative after `=` is Masterminds' (no operator means `=`).
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";
const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";

fn compile(pattern: String) -> Regex {
    Regex::new(&pattern).expect("static regex")
}

/// `constraintRegex`: one comparison, whole string.
static COMPARISON: LazyLock<Regex> =
    LazyLock::new(|| compile(format!(r"^{WS}*({OPS}){WS}*({CV}){WS}*$")));
/// `constraintRangeRegex`: `A - B`.
static RANGE: LazyLock<Regex> =
    LazyLock::new(|| compile(format!(r"{WS}*({CV}){WS}+-{WS}+({CV}){WS}*")));
/// `findConstraintRegex`: the comparisons within a group.
static FIND: LazyLock<Regex> = LazyLock::new(|| compile(format!(r"({OPS}){WS}*({CV})")));
/// `validConstraintRegex`: a whole group.
static VALID_GROUP: LazyLock<Regex> = LazyLock::new(|| {
    compile(format!(
        r"^({WS}*({OPS}){WS}*({CV}){WS}*)((?:{WS}+|,{WS}*)({OPS}){WS}*({CV}){WS}*)*$"
    ))
});

impl Constraint {
    /// Parses a constraint such as `^1.2`, `>=1.0.0 <2.0.0`, `~1.2.x || >=3` or `1.2 - 1.4.5`.
    pub fn parse(constraint: &str) -> Result<Self, ConstraintError> {
        let fail = |reason: String| ConstraintError {
            constraint: constraint.to_owned(),
            reason,
        };
        if constraint.len() > MAX_CONSTRAINT_LEN {
            return Err(fail(format!(
                "the constraint is longer than {MAX_CONSTRAINT_LEN} bytes"
            )));
        }
        let rewritten = rewrite_range(constraint);
        let alternatives: Vec<&str> = rewritten.split("||").collect();
        if alternatives.len() > MAX_CONSTRAINT_GROUPS {
            return Err(fail(format!(
                "more than {MAX_CONSTRAINT_GROUPS} alternatives separated by \"||\""
            )));
        }
        let groups = alternatives
            .into_iter()
            .map(|alt| parse_group(alt, alternatives_hint(constraint)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(Self {
            source: constraint.to_owned(),
            groups,
        })
    }

    /// The constraint text as it was given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Masterminds' `Constraints.String()`: each comparison as operator and version as written,
    /// joined by spaces within an alternative and by ` || ` between them.
    pub fn canonical(&self) -> String {
        self.groups
            .iter()
            .map(|g| {
                g.comparisons
                    .iter()
                    .map(|c| format!("{}{}", c.op_text, c.version_text))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" || ")
    }

    /// How many comparisons each alternative holds (for tests of the parser's structure).
    #[doc(hidden)]
    pub fn shape(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.comparisons.len()).collect()
    }

    /// Masterminds' `Constraints.Check`: whether `version` satisfies the constraint.
    pub fn matches(&self, version: &Version) -> bool {
        self.check(version, false)
    }

    /// `Check` with Masterminds' `IncludePrerelease` set, which Kargo never sets; kept so that
    /// Masterminds' tables for it exercise the comparisons on prerelease versions.
    #[doc(hidden)]
    pub fn matches_including_prereleases(&self, version: &Version) -> bool {
        self.check(version, true)
    }

    fn check(&self, version: &Version, include_prerelease: bool) -> bool {
        self.groups.iter().any(|g| {
            g.comparisons
                .iter()
                .all(|c| c.check(version, include_prerelease || g.contains_pre))
        })
    }
}

/// Whether the empty-alternative wording applies (`""`, `"^1 ||"`).
fn alternatives_hint(constraint: &str) -> bool {
    constraint.contains("||")
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

/// Masterminds' `rewriteRange`: every `A - B` becomes `>= A, <= B `, replacing the first
/// occurrence of each match's text in turn.
#[doc(hidden)]
pub fn rewrite_range(constraint: &str) -> String {
    let mut out = constraint.to_owned();
    for m in RANGE.captures_iter(constraint) {
        let text = |i: usize| m.get(i).map_or("", |g| g.as_str());
        let replacement = format!(">= {}, <= {} ", text(1), text(11));
        out = out.replacen(text(0), &replacement, 1);
    }
    out
}

fn parse_group(alt: &str, has_or: bool) -> Result<Group, String> {
    if !VALID_GROUP.is_match(alt) {
        let trimmed = alt.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'));
        return Err(if trimmed.is_empty() && has_or {
            "an alternative between \"||\" is empty".to_owned()
        } else if trimmed.is_empty() {
            "the constraint is empty".to_owned()
        } else {
            format!(
                "{trimmed:?} is not a valid comparison: expected an optional operator \
                 (=, !=, >, <, >=, <=, ~, ~>, ^) and a version such as 1.2.3, v1.2, 1.x or \
                 1.2.3-rc.1, several joined by spaces or commas, or a range such as 1.2 - 1.4"
            )
        });
    }
    let found: Vec<&str> = FIND.find_iter(alt).map(|m| m.as_str()).collect();
    let found = if found.is_empty() { vec![alt] } else { found };
    let comparisons = found
        .into_iter()
        .map(parse_comparison)
        .collect::<Result<Vec<_>, _>>()?;
    let contains_pre = comparisons.iter().any(|c| !c.con.pre.is_empty());
    Ok(Group {
        comparisons,
        contains_pre,
    })
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

/// Masterminds' `parseConstraint`.
fn parse_comparison(text: &str) -> Result<Comparison, String> {
    let bad_version = |v: &str, e: VersionError| format!("{v:?} is not a valid version: {e}");
    if text.is_empty() {
        // Masterminds: an empty comparison is `*`.
        return Ok(Comparison {
            op: Op::TildeOrEqual,
            op_text: String::new(),
            version_text: String::new(),
            con: Version::new(0, 0, 0),
            dirty: true,
            minor_dirty: false,
            patch_dirty: false,
        });
    }
    let m = COMPARISON
        .captures(text)
        .ok_or_else(|| format!("{text:?} is not a valid comparison"))?;
    let g = |i: usize| m.get(i).map_or("", |g| g.as_str());
    let op = Op::of(g(1)).ok_or_else(|| format!("{:?} is not an operator", g(1)))?;
    let (major, minor, patch, pre) = (g(3), g(4), g(5), g(6));
    let strip = |s: &'_ str| s.strip_prefix('.').unwrap_or(s).to_owned();
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let version = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(&strip(minor)) || minor.is_empty() {
        dirty = true;
        minor_dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(&strip(patch)) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}{minor}.0{pre}")
    } else {
        g(2).to_owned()
    };
    let con = new_version(&version).map_err(|e| bad_version(g(2), e))?;
    Ok(Comparison {
        op,
        op_text: g(1).to_owned(),
        version_text: g(2).to_owned(),
        con,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Comparison {
    /// Masterminds' per-operator `constraint*` functions (the bool half; Kargo ignores reasons).
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        // Whether prereleases may match is decided per alternative and passed in.
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        let cmp = cmp_precedence(v, c);
        match self.op {
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty())
                            && super::semver_version::cmp_prerelease(
                                v.pre.as_str(),
                                c.pre.as_str(),
                            )
                            .is_ne();
                    }
                }
                cmp.is_ne()
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp.is_gt();
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    // `>11` needs 12 or higher.
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                cmp.is_gt()
            }
            Op::Less => cmp.is_lt(),
            Op::GreaterEqual => cmp.is_ge(),
            Op::LessEqual => {
                if !self.dirty {
                    return cmp.is_le();
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::TildeOrEqual if self.dirty => self.tilde(v),
            Op::TildeOrEqual => cmp.is_eq(),
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    /// `~1.2.3` → `>=1.2.3 <1.3.0`; `~1` → `>=1.0.0 <2.0.0`; `~0.0.0` and `~*` → anything.
    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if cmp_precedence(v, c).is_lt() {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }

    /// `^1.2.3` → `>=1.2.3 <2.0.0`; `^0.2.3` → `>=0.2.3 <0.3.0`; `^0.0.3` → `=0.0.3`;
    /// `^0.0` → `<0.1.0`; `^0` → `<1.0.0`.
    fn caret(&self, v: &Version) -> bool {
        let c = &self.con;
        if cmp_precedence(v, c).is_lt() {
            return false;
        }
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
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
    use std::cmp::Ordering;

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
            ("", "the constraint is empty"),
            ("   ", "the constraint is empty"),
            ("foo", "\"foo\" is not a valid comparison"),
            (">= bar", "\">= bar\" is not a valid comparison"),
            ("BAR >= 1.2.3", "is not a valid comparison"),
            ("12.3.4.1234", "is not a valid comparison"),
            (">=", "is not a valid comparison"),
            ("^1.2 ||", "an alternative between \"||\" is empty"),
            ("|| ^1.2", "an alternative between \"||\" is empty"),
            (">=1.0,", "is not a valid comparison"),
            ("1.2.3-a..b", "is not a valid comparison"),
            (
                "v1.2.3-beta.01",
                "\"v1.2.3-beta.01\" is not a valid version: version segment starts with 0",
            ),
            (
                "99999999999999999999",
                "is not a valid version: error parsing version segment",
            ),
            ("1|2", "\"1|2\" is not a valid version"),
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
        let long = ">=1.0.0 ".repeat(70);
        let e = Constraint::parse(&long).err().map(|e| e.reason);
        assert_eq!(
            e.as_deref(),
            Some("the constraint is longer than 512 bytes")
        );
        let many = vec![">=1"; 33].join("||");
        let e = Constraint::parse(&many).err().map(|e| e.reason);
        assert_eq!(
            e.as_deref(),
            Some("more than 32 alternatives separated by \"||\"")
        );
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
            ("1.2.3-rc.01", None, None),
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
        // One prerelease comparison opens its whole AND group to prereleases, not other groups.
        let parsed = Constraint::parse(">=1.0.0-0 <2.0.0").unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.matches(&rc));
        let parsed = Constraint::parse(">= 1.0.0 <= 2.0.0-beta").unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.matches(&v("1.0.1-beta")));
        let parsed = Constraint::parse("^2.0.0-0 || >=1.0.0").unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.matches(&rc));
        // `!=` is no exception.
        let parsed = Constraint::parse("!=4.1.0").unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.matches(&v("5.1.0-alpha.1")));
    }
}
