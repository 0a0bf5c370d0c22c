//! Kargo's `semverParse(s)`: a Masterminds `*semver.Version` whose Go methods expressions call
//! (`.Major()`, `.IncMinor().String()`, `.GreaterThan(semverParse('2.0.0'))`, …). Parsing and
//! precedence are discovery's port of Masterminds v3 ([`crate::discovery::semver_version`]).

use semver::Version;

use super::value::Val;
use crate::discovery::semver_version::{
    cmp_precedence, new_version, validate_metadata, validate_prerelease,
};

/// A parsed version and the text it came from (Masterminds keeps both: `Original()` returns the
/// text, `String()` the normalised form without `v`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SemVer {
    pub(crate) original: String,
    pub(crate) version: Version,
}

impl SemVer {
    /// Masterminds' `Version.String()`: `1.2.3[-pre][+meta]`, never a `v`.
    pub(crate) fn string(&self) -> String {
        self.version.to_string()
    }

    /// `originalVPrefix()`: the `v` the original text started with, kept by `Inc*()`.
    fn v_prefix(&self) -> &'static str {
        if self.original.starts_with('v') {
            "v"
        } else {
            ""
        }
    }

    fn derived(&self, version: Version) -> Val {
        let original = format!("{}{}", self.v_prefix(), version);
        Val::SemVer(Box::new(SemVer { original, version }))
    }
}

/// `semverParse(s)`, with Kargo's error text.
pub(crate) fn parse(s: &str) -> Result<Val, String> {
    let version = new_version(s).map_err(|e| format!("invalid semantic version: {e}"))?;
    Ok(Val::SemVer(Box::new(SemVer {
        original: s.to_string(),
        version,
    })))
}

/// The methods of Masterminds' `Version`.
pub(crate) fn method(v: &SemVer, name: &str, args: &[Val]) -> Result<Val, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{name} takes {n} argument(s), got {}", args.len()))
        }
    };
    let other = || match args.first() {
        Some(Val::SemVer(o)) => Ok(o.as_ref()),
        Some(other) => Err(format!(
            "cannot use {} as argument (type *semver.Version) to call {name}; use semverParse()",
            other.type_name()
        )),
        None => Err(format!("not enough arguments to call {name}")),
    };
    let text = || match args.first() {
        Some(Val::Str(s)) => Ok(s.as_str()),
        Some(other) => Err(format!(
            "cannot use {} as argument (type string) to call {name}",
            other.type_name()
        )),
        None => Err(format!("not enough arguments to call {name}")),
    };
    let int = |n: u64| Ok(Val::Int(i64::try_from(n).unwrap_or(i64::MAX)));
    let ver = &v.version;
    match name {
        "Compare" | "LessThan" | "LessThanEqual" | "GreaterThan" | "GreaterThanEqual" | "Equal" => {
            want(1)?;
            let o = cmp_precedence(ver, &other()?.version);
            Ok(match name {
                "Compare" => Val::Int(o as i64),
                "LessThan" => Val::Bool(o.is_lt()),
                "LessThanEqual" => Val::Bool(o.is_le()),
                "GreaterThan" => Val::Bool(o.is_gt()),
                "GreaterThanEqual" => Val::Bool(o.is_ge()),
                _ => Val::Bool(o.is_eq()),
            })
        }
        "SetPrerelease" | "SetMetadata" => {
            want(1)?;
            let s = text()?;
            let mut next = ver.clone();
            if name == "SetPrerelease" {
                if !s.is_empty() {
                    validate_prerelease(s).map_err(|e| e.to_string())?;
                }
                next.pre = semver::Prerelease::new(s).map_err(|e| e.to_string())?;
            } else {
                if !s.is_empty() {
                    validate_metadata(s).map_err(|e| e.to_string())?;
                }
                next.build = semver::BuildMetadata::new(s).map_err(|e| e.to_string())?;
            }
            Ok(v.derived(next))
        }
        _ => {
            want(0)?;
            match name {
                "Major" => int(ver.major),
                "Minor" => int(ver.minor),
                "Patch" => int(ver.patch),
                "Prerelease" => Ok(Val::Str(ver.pre.to_string())),
                "Metadata" => Ok(Val::Str(ver.build.to_string())),
                "Original" => Ok(Val::Str(v.original.clone())),
                "String" => Ok(Val::Str(v.string())),
                "IncMajor" | "IncMinor" | "IncPatch" => {
                    let mut next = Version::new(ver.major, ver.minor, ver.patch);
                    match name {
                        "IncMajor" => {
                            next.major = ver.major.saturating_add(1);
                            next.minor = 0;
                            next.patch = 0;
                        }
                        "IncMinor" => {
                            next.minor = ver.minor.saturating_add(1);
                            next.patch = 0;
                        }
                        // A prerelease's patch release is the release itself (semver §9).
                        _ if ver.pre.is_empty() => next.patch = ver.patch.saturating_add(1),
                        _ => {}
                    }
                    Ok(v.derived(next))
                }
                other => Err(format!("type *semver.Version has no method {other}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(s: &str, name: &str, args: &[Val]) -> Val {
        match parse(s) {
            Ok(Val::SemVer(v)) => method(&v, name, args).expect("method"),
            other => panic!("{other:?}"),
        }
    }

    fn text(v: Val, name: &str) -> Val {
        match v {
            Val::SemVer(v) => method(&v, name, &[]).expect("method"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn components_and_increments_as_masterminds() {
        assert_eq!(call("v1.2.3-rc.1+b5", "Major", &[]), Val::Int(1));
        assert_eq!(call("v1.2.3-rc.1+b5", "Minor", &[]), Val::Int(2));
        assert_eq!(call("v1.2.3-rc.1+b5", "Patch", &[]), Val::Int(3));
        assert_eq!(
            call("v1.2.3-rc.1+b5", "Prerelease", &[]),
            Val::Str("rc.1".into())
        );
        assert_eq!(
            call("v1.2.3-rc.1+b5", "Metadata", &[]),
            Val::Str("b5".into())
        );
        assert_eq!(call("v1.2", "String", &[]), Val::Str("1.2.0".into()));
        assert_eq!(call("v1.2", "Original", &[]), Val::Str("v1.2".into()));
        let s = |v: &str, m: &str| text(call(v, m, &[]), "String");
        assert_eq!(s("1.2.3+meta", "IncPatch"), Val::Str("1.2.4".into()));
        assert_eq!(s("1.2.3-rc.1", "IncPatch"), Val::Str("1.2.3".into()));
        assert_eq!(s("1.2.3-rc.1", "IncMinor"), Val::Str("1.3.0".into()));
        assert_eq!(s("1.2.3", "IncMajor"), Val::Str("2.0.0".into()));
        assert_eq!(
            text(call("v1.2.3", "IncMinor", &[]), "Original"),
            Val::Str("v1.3.0".into())
        );
    }

    #[test]
    fn comparisons_ignore_metadata() {
        let two = parse("2.0.0+x").expect("version");
        assert_eq!(
            call("2.0.0", "Equal", std::slice::from_ref(&two)),
            Val::Bool(true)
        );
        assert_eq!(
            call("2.0.0-rc.1", "LessThan", std::slice::from_ref(&two)),
            Val::Bool(true)
        );
        assert_eq!(
            call("10.0.0", "Compare", std::slice::from_ref(&two)),
            Val::Int(1)
        );
        let Ok(Val::SemVer(v)) = parse("1.0.0") else {
            panic!("version")
        };
        let e = method(&v, "GreaterThan", &[Val::Str("0.1.0".into())]).err();
        assert!(e.is_some_and(|m| m.contains("*semver.Version")));
    }

    #[test]
    fn invalid_versions_are_errors() {
        assert_eq!(
            parse("1.2.3.4").err().as_deref(),
            Some("invalid semantic version: invalid semantic version")
        );
        assert!(parse("").is_err());
    }
}
