//! Which tags an image subscription considers and in what order (Kargo's `pkg/image/*_selector.go`).
//!
//! Every function returns candidates best first. The caller then fetches image metadata one tag
//! at a time until `discoveryLimit` images are found (SemVer, Lexical), or for every candidate and
//! then orders them with [`sort_newest_build_by`] (NewestBuild). They take the tag list by value
//! and hand the same `String`s back, so a 10,000-tag repository costs one parse per tag and a sort.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::Version;

use super::semver_constraint::{Constraint, cmp_precedence, parse_version};
use super::tag_filter::TagFilter;

/// `imageSelectionStrategy`; the API default (an empty value) is `SemVer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    #[default]
    SemVer,
    Lexical,
    NewestBuild,
    /// Tracks the digest of one mutable tag (the subscription's `constraint`); no tag listing.
    Digest,
}

/// An `imageSelectionStrategy` value that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image selection strategy {0:?} (expected SemVer, Lexical, NewestBuild or Digest)")]
pub struct UnknownStrategy(pub String);

impl Strategy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SemVer => "SemVer",
            Self::Lexical => "Lexical",
            Self::NewestBuild => "NewestBuild",
            Self::Digest => "Digest",
        }
    }
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "SemVer" => Ok(Self::SemVer),
            "Lexical" => Ok(Self::Lexical),
            "NewestBuild" => Ok(Self::NewestBuild),
            "Digest" => Ok(Self::Digest),
            other => Err(UnknownStrategy(other.to_owned())),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SemVer strategy: tags that pass `filter`, parse as semantic versions (`strict` =
/// `strictSemvers`) and satisfy `constraint` if one is set, newest version first. Equal versions
/// (`1.0` and `1.0.0`, or differing only in build metadata) are ordered by the tag string,
/// descending, as Kargo does, so the order never depends on the registry's listing order.
pub fn semver_candidates<T>(
    tags: T,
    filter: &TagFilter,
    constraint: Option<&Constraint>,
    strict: bool,
) -> Vec<String>
where
    T: IntoIterator<Item = String>,
{
    let mut versions: Vec<(Version, String)> = tags
        .into_iter()
        .filter(|tag| filter.matches(tag))
        .filter_map(|tag| {
            let version = parse_version(&tag, strict)?;
            constraint
                .is_none_or(|c| c.matches(&version))
                .then_some((version, tag))
        })
        .collect();
    // Unstable is fine: the tag string breaks every tie, and registries list each tag once.
    versions.sort_unstable_by(|(va, ta), (vb, tb)| cmp_precedence(vb, va).then_with(|| tb.cmp(ta)));
    versions.into_iter().map(|(_, tag)| tag).collect()
}

/// Lexical strategy: tags that pass `filter`, in reverse byte-wise order (Go's string order).
pub fn lexical_candidates<T>(tags: T, filter: &TagFilter) -> Vec<String>
where
    T: IntoIterator<Item = String>,
{
    let mut kept: Vec<String> = tags.into_iter().filter(|t| filter.matches(t)).collect();
    kept.sort_unstable_by(|a, b| b.cmp(a));
    kept
}

/// NewestBuild strategy, first step: the tags whose metadata must be fetched (all that pass
/// `filter`; the order does not matter since every one is fetched).
pub fn newest_build_candidates<T>(tags: T, filter: &TagFilter) -> Vec<String>
where
    T: IntoIterator<Item = String>,
{
    tags.into_iter().filter(|t| filter.matches(t)).collect()
}

/// NewestBuild strategy, second step: orders fetched images by creation time, newest first, then
/// by tag descending. A missing creation time sorts as the oldest (Kargo then sees Go's zero
/// time). `T` is any ordered timestamp: Unix seconds (`i64`), nanoseconds (`i128`), ...
pub fn sort_newest_build_by<I, T, C, G>(items: &mut [I], created: C, tag: G)
where
    T: Ord,
    C: Fn(&I) -> Option<T>,
    G: Fn(&I) -> &str,
{
    items.sort_unstable_by(|a, b| compare_newest(created(a), tag(a), created(b), tag(b)));
}

/// [`sort_newest_build_by`] for plain `(tag, created)` pairs; returns the tags in order.
pub fn newest_build_order<T: Ord>(mut items: Vec<(String, Option<T>)>) -> Vec<String> {
    items.sort_unstable_by(|(ta, ca), (tb, cb)| compare_newest(ca.as_ref(), ta, cb.as_ref(), tb));
    items.into_iter().map(|(tag, _)| tag).collect()
}

/// Newest first; `None < Some(_)`, so a missing time is the oldest. Ties: tag descending.
fn compare_newest<T: Ord>(
    created_a: Option<T>,
    tag_a: &str,
    created_b: Option<T>,
    tag_b: &str,
) -> Ordering {
    created_b.cmp(&created_a).then_with(|| tag_b.cmp(tag_a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| (*t).to_owned()).collect()
    }

    fn filter(allow: &[&str], ignore: &[&str]) -> TagFilter {
        TagFilter::new(allow, ignore).unwrap_or_else(|e| panic!("{e}"))
    }

    fn constraint(c: &str) -> Constraint {
        Constraint::parse(c).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn strategy_round_trips_and_defaults_to_semver() {
        for s in [
            Strategy::SemVer,
            Strategy::Lexical,
            Strategy::NewestBuild,
            Strategy::Digest,
        ] {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!("".parse::<Strategy>(), Ok(Strategy::SemVer));
        assert_eq!(Strategy::default(), Strategy::SemVer);
        let err = "semver".parse::<Strategy>().err();
        assert_eq!(err, Some(UnknownStrategy("semver".to_owned())));
        assert!(
            err.map(|e| e.to_string())
                .is_some_and(|m| m.contains("\"semver\""))
        );
    }

    #[test]
    fn tag_filter_cases() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "anything", true),
            (&["^v1\\."], &[], "v1.2.3", true),
            (&["^v1\\."], &[], "v2.0.0", false),
            // unanchored, like Go's MatchString
            (&["rc"], &[], "1.0.0-rc.1", true),
            (&["^v1\\.", "^v2\\."], &[], "v2.0.0", true),
            (&[], &["-rc"], "1.0.0-rc.1", false),
            (&[], &["-rc"], "1.0.0", true),
            // ignore is applied first and wins
            (&["^1\\."], &["-rc"], "1.0.0-rc.1", false),
            (&["^1\\."], &["-rc"], "1.0.0", true),
            (&["(?i)^release-"], &[], "RELEASE-1", true),
            (&["^\\d+$"], &[], "123", true),
        ];
        for (allow, ignore, tag, want) in cases {
            assert_eq!(
                filter(allow, ignore).matches(tag),
                *want,
                "allow {allow:?} ignore {ignore:?} tag {tag:?}"
            );
        }
        assert!(TagFilter::allow_all().matches(""));
    }

    #[test]
    fn tag_filter_errors_name_the_regex_and_field() {
        let err = TagFilter::new(&["^ok$", "(unclosed"], &[] as &[&str]).err();
        let msg = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("\"(unclosed\""), "{msg}");
        assert!(msg.contains("allowTagsRegexes"), "{msg}");
        assert_eq!(err.map(|e| e.pattern), Some("(unclosed".to_owned()));

        let err = TagFilter::new(&[] as &[&str], &["[z-a]"]).err();
        assert_eq!(err.as_ref().map(|e| e.field), Some("ignoreTagsRegexes"));
        assert_eq!(err.map(|e| e.pattern), Some("[z-a]".to_owned()));
    }

    #[test]
    fn semver_candidates_cases() {
        let tags = [
            "latest",
            "1.0.0",
            "1.0",
            "v1.0.0",
            "1.10.0",
            "1.9.0",
            "1.2.3",
            "v1.2",
            "2.0.0-rc.1",
            "2.0.0",
            "01.5.0",
            "1.5.0+build.1",
            "1.5.0+build.2",
            "sha-abc",
            "1.2.3.4",
            "3.0.0-beta",
            "v2.1.0",
        ];
        type Case<'a> = (
            Option<&'a str>,
            bool,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            // (constraint, strict, allow, ignore, want)
            (
                None,
                true,
                &[],
                &[],
                &[
                    "3.0.0-beta",
                    "v2.1.0",
                    "2.0.0",
                    "2.0.0-rc.1",
                    "1.10.0",
                    "1.9.0",
                    "1.5.0+build.2",
                    "1.5.0+build.1",
                    "1.2.3",
                    "v1.0.0",
                    "1.0.0",
                ],
            ),
            (
                None,
                false,
                &[],
                &[],
                &[
                    "3.0.0-beta",
                    "v2.1.0",
                    "2.0.0",
                    "2.0.0-rc.1",
                    "1.10.0",
                    "1.9.0",
                    "1.5.0+build.2",
                    "1.5.0+build.1",
                    "01.5.0",
                    "1.2.3",
                    "v1.2",
                    "v1.0.0",
                    "1.0.0",
                    "1.0",
                ],
            ),
            // a constraint without a prerelease drops prereleases
            (
                Some("^1.2"),
                true,
                &[],
                &[],
                &["1.10.0", "1.9.0", "1.5.0+build.2", "1.5.0+build.1", "1.2.3"],
            ),
            (
                Some(">=1.0.0 <2.0.0"),
                false,
                &[],
                &[],
                &[
                    "1.10.0",
                    "1.9.0",
                    "1.5.0+build.2",
                    "1.5.0+build.1",
                    "01.5.0",
                    "1.2.3",
                    "v1.2",
                    "v1.0.0",
                    "1.0.0",
                    "1.0",
                ],
            ),
            (Some("~1"), true, &["^v"], &[], &["v1.0.0"]),
            (
                Some(">=2.0.0-0"),
                true,
                &[],
                &["beta"],
                &["v2.1.0", "2.0.0", "2.0.0-rc.1"],
            ),
            (
                Some("^2 || ^3.0.0-0"),
                true,
                &[],
                &[],
                &["3.0.0-beta", "v2.1.0", "2.0.0"],
            ),
            (Some("1.2.x"), false, &[], &[], &["1.2.3", "v1.2"]),
            (Some("=1.2.3"), true, &[], &[], &["1.2.3"]),
            (Some("!=1.2.3"), true, &["^1\\.[0-2]\\."], &[], &["1.0.0"]),
            (Some("^9"), true, &[], &[], &[]),
        ];
        for (c, strict, allow, ignore, want) in cases {
            let parsed = c.map(constraint);
            let got = semver_candidates(
                strings(&tags),
                &filter(allow, ignore),
                parsed.as_ref(),
                *strict,
            );
            assert_eq!(got, strings(want), "constraint {c:?} strict {strict}");
        }
    }

    #[test]
    fn lexical_candidates_cases() {
        let tags = strings(&[
            "nightly-20240102",
            "nightly-20240101",
            "nightly-20231231",
            "Nightly-x",
            "latest",
            "nightly-2024010",
        ]);
        assert_eq!(
            lexical_candidates(tags.clone(), &filter(&["^nightly-"], &[])),
            strings(&[
                "nightly-20240102",
                "nightly-20240101",
                "nightly-2024010",
                "nightly-20231231"
            ])
        );
        // byte order: lowercase after uppercase
        assert_eq!(
            lexical_candidates(tags, &filter(&[], &["^nightly"])),
            strings(&["latest", "Nightly-x"])
        );
    }

    #[test]
    fn newest_build_orders_by_time_then_tag() {
        let items = vec![
            ("a".to_owned(), Some(100i64)),
            ("b".to_owned(), Some(300)),
            ("c".to_owned(), Some(300)),
            ("d".to_owned(), None),
            ("e".to_owned(), Some(200)),
            ("f".to_owned(), None),
        ];
        assert_eq!(
            newest_build_order(items),
            strings(&["c", "b", "e", "a", "f", "d"])
        );

        struct Image {
            tag: String,
            created_nanos: Option<i128>,
        }
        let mut images: Vec<Image> = [("x", Some(5)), ("y", Some(7)), ("z", Some(5))]
            .into_iter()
            .map(|(tag, created_nanos)| Image {
                tag: tag.to_owned(),
                created_nanos,
            })
            .collect();
        sort_newest_build_by(&mut images, |i| i.created_nanos, |i| &i.tag);
        let order: Vec<&str> = images.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(order, ["y", "z", "x"]);

        let tags = strings(&["keep-1", "skip-1", "keep-2"]);
        assert_eq!(
            newest_build_candidates(tags, &filter(&["^keep"], &[])),
            strings(&["keep-1", "keep-2"])
        );
    }

    /// Benchmark-sized input: 10,000 tags must stay cheap (one parse per tag and a sort).
    #[test]
    fn ten_thousand_tags() {
        let tags: Vec<String> = (0..10_000)
            .map(|i| match i % 4 {
                0 => format!("v{}.{}.{}", i / 1000, (i / 10) % 100, i % 10),
                1 => format!("{}.{}.{}-rc.{}", i / 1000, (i / 10) % 100, i % 10, i % 7),
                2 => format!("sha-{i:08x}"),
                _ => format!("{}.{}", i / 1000, i % 100),
            })
            .collect();
        let c = constraint(">=3.0.0 <8");
        let got = semver_candidates(tags.clone(), &TagFilter::allow_all(), Some(&c), true);
        assert!(!got.is_empty());
        assert_eq!(got.first().map(String::as_str), Some("v7.99.6"));
        let parsed: Vec<Version> = got.iter().filter_map(|t| parse_version(t, true)).collect();
        assert!(
            parsed
                .windows(2)
                .all(|w| cmp_precedence(&w[0], &w[1]) != Ordering::Less)
        );
        assert_eq!(
            lexical_candidates(tags, &TagFilter::allow_all()).len(),
            10_000
        );
    }
}
