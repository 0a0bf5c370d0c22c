//! Version parsing and precedence exactly as Masterminds/semver v3.5.0 (what Kargo uses):
//! `NewVersion` (lenient: `v` prefix, missing minor/patch, leading zeros in the numbers) and
//! `StrictNewVersion`, ported line for line, with the result held in a `semver::Version` so the
//! rest of discovery keeps one version type. The `semver` crate's own parser implements Cargo's
//! rules, which differ (no `v`, no `1.2`), hence the port.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use semver::{BuildMetadata, Prerelease, Version};

/// Masterminds' `MaxVersionLen`: longer inputs are refused before any parsing.
pub const MAX_VERSION_LEN: usize = 256;

/// Why a string is not a version, in Masterminds' words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("invalid semantic version")]
    InvalidSemVer,
    #[error("version string empty")]
    Empty,
    #[error("invalid characters in version")]
    InvalidCharacters,
    #[error("version segment starts with 0")]
    SegmentStartsZero,
    #[error("invalid metadata string")]
    InvalidMetadata,
    #[error("invalid prerelease string")]
    InvalidPrerelease,
    #[error("version string is too long (max {MAX_VERSION_LEN} bytes)")]
    TooLong,
    #[error("error parsing version segment: {0:?} is out of range")]
    SegmentRange(String),
}

/// Masterminds' `looseSemVerRegex`, anchored as `NewVersion` uses it.
static LOOSE_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$",
    )
    .expect("static regex")
});

fn number(segment: &str) -> Result<u64, VersionError> {
    segment
        .parse::<u64>()
        .map_err(|_| VersionError::SegmentRange(segment.to_owned()))
}

/// `NewVersion` with its default `CoerceNewVersion = true`: `1`, `v1.2`, `01.2.3`, `1.2-rc.1`.
pub fn new_version(v: &str) -> Result<Version, VersionError> {
    if v.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong);
    }
    let m = LOOSE_VERSION
        .captures(v)
        .ok_or(VersionError::InvalidSemVer)?;
    let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
    let major = number(group(1))?;
    let minor = match group(2) {
        "" => 0,
        s => number(s.trim_start_matches('.'))?,
    };
    let patch = match group(3) {
        "" => 0,
        s => number(s.trim_start_matches('.'))?,
    };
    build(major, minor, patch, group(5), group(8))
}

/// `StrictNewVersion`: exactly `MAJOR.MINOR.PATCH[-pre][+meta]`, no `v`, no leading zeros.
pub fn strict_new_version(v: &str) -> Result<Version, VersionError> {
    if v.is_empty() {
        return Err(VersionError::Empty);
    }
    if v.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong);
    }
    let mut parts: Vec<&str> = v.splitn(3, '.').collect();
    if parts.len() != 3 {
        return Err(VersionError::InvalidSemVer);
    }
    let mut metadata = "";
    if let Some((rest, meta)) = parts[2].split_once('+') {
        metadata = meta;
        parts[2] = rest;
        validate_metadata(metadata)?;
    }
    let mut pre = "";
    if let Some((rest, p)) = parts[2].split_once('-') {
        pre = p;
        parts[2] = rest;
        validate_prerelease(pre)?;
    }
    for p in &parts {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VersionError::InvalidCharacters);
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err(VersionError::SegmentStartsZero);
        }
    }
    build(
        number(parts[0])?,
        number(parts[1])?,
        number(parts[2])?,
        pre,
        metadata,
    )
}

fn build(
    major: u64,
    minor: u64,
    patch: u64,
    pre: &str,
    meta: &str,
) -> Result<Version, VersionError> {
    if !pre.is_empty() {
        validate_prerelease(pre)?;
    }
    if !meta.is_empty() {
        validate_metadata(meta)?;
    }
    // Validation above is Masterminds' and at least as strict as the semver crate's.
    let pre = Prerelease::new(pre).map_err(|_| VersionError::InvalidPrerelease)?;
    let build = BuildMetadata::new(meta).map_err(|_| VersionError::InvalidMetadata)?;
    Ok(Version {
        major,
        minor,
        patch,
        pre,
        build,
    })
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// `validatePrerelease`: non-empty identifiers of `[0-9A-Za-z-]`, numeric ones without leading 0.
pub fn validate_prerelease(p: &str) -> Result<(), VersionError> {
    for id in p.split('.') {
        if id.is_empty() {
            return Err(VersionError::InvalidPrerelease);
        } else if id.bytes().all(|b| b.is_ascii_digit()) {
            if id.len() > 1 && id.starts_with('0') {
                return Err(VersionError::SegmentStartsZero);
            }
        } else if !id.bytes().all(allowed) {
            return Err(VersionError::InvalidPrerelease);
        }
    }
    Ok(())
}

/// `validateMetadata`: non-empty identifiers of `[0-9A-Za-z-]` (leading zeros allowed).
pub fn validate_metadata(m: &str) -> Result<(), VersionError> {
    if m.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(allowed))
    {
        Ok(())
    } else {
        Err(VersionError::InvalidMetadata)
    }
}

/// Kargo's `semver.Parse(tag, strict)`: `NewVersion`, and when strict also `StrictNewVersion` of
/// the tag without one leading `v`. `None` for anything that is not a version (`latest`).
pub fn parse_version(tag: &str, strict: bool) -> Option<Version> {
    let v = new_version(tag).ok()?;
    if strict {
        strict_new_version(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
    }
    Some(v)
}

/// Masterminds' `Version.Compare`: precedence, build metadata ignored.
pub fn cmp_precedence(a: &Version, b: &Version) -> Ordering {
    a.major
        .cmp(&b.major)
        .then(a.minor.cmp(&b.minor))
        .then(a.patch.cmp(&b.patch))
        .then_with(|| match (a.pre.is_empty(), b.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => cmp_prerelease(a.pre.as_str(), b.pre.as_str()),
        })
}

/// `comparePrerelease`: identifier by identifier; a missing one sorts first. Ported rather than
/// using `Prerelease`'s `Ord` because Masterminds treats a numeric identifier too large for u64
/// as alphanumeric.
pub fn cmp_prerelease(a: &str, b: &str) -> Ordering {
    let (mut xs, mut ys) = (a.split('.'), b.split('.'));
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match cmp_pre_part(x, y) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

fn cmp_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => s.cmp(o),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        // Equal numbers in different spellings (leading zeros) cannot be valid prereleases;
        // Masterminds answers -1 then, and so does this.
        (Ok(x), Ok(y)) => x.cmp(&y).then(Ordering::Less),
    }
}
