//! `allowTagsRegexes` / `ignoreTagsRegexes`: which regexes apply to a subscription (image or
//! git, with Kargo's deprecated singular spellings) and the filter they make. Image discovery,
//! git discovery and the Warehouse's validation all go through [`TagFilter::of`].

use regex::Regex;

use crate::api::{GitSubscription, ImageSubscription};

/// A subscription whose tags can be filtered by regexes.
pub trait TagRegexes {
    /// `allowTagsRegexes`, then the deprecated `allowTagsRegex`.
    fn allow_regexes(&self) -> Vec<&String>;
    /// `ignoreTagsRegexes`, then the deprecated `ignoreTagsRegex`.
    fn ignore_regexes(&self) -> Vec<&String>;
}

/// The regexes of a list field, then those of its deprecated field.
fn then_deprecated<'a>(list: &'a [String], deprecated: &'a [String]) -> Vec<&'a String> {
    list.iter().chain(deprecated).collect()
}

impl TagRegexes for ImageSubscription {
    fn allow_regexes(&self) -> Vec<&String> {
        then_deprecated(&self.allow_tags_regexes, &self.allow_tags_regex)
    }
    fn ignore_regexes(&self) -> Vec<&String> {
        then_deprecated(&self.ignore_tags_regexes, &self.ignore_tags_regex)
    }
}

impl TagRegexes for GitSubscription {
    fn allow_regexes(&self) -> Vec<&String> {
        then_deprecated(&self.allow_tags_regexes, &self.allow_tags_regex)
    }
    fn ignore_regexes(&self) -> Vec<&String> {
        then_deprecated(&self.ignore_tags_regexes, &self.ignore_tags_regex)
    }
}

/// A regex in `allowTagsRegexes` or `ignoreTagsRegexes` that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression {pattern:?} in {field}: {error}")]
pub struct TagFilterError {
    /// `allowTagsRegexes` or `ignoreTagsRegexes`.
    pub field: &'static str,
    pub pattern: String,
    pub error: regex::Error,
}

/// `allowTagsRegexes` / `ignoreTagsRegexes`: a tag is kept if it matches no ignore regex and, when
/// any allow regexes are given, at least one of them. Matching is unanchored, like Go's
/// `MatchString`; the `regex` crate accepts the RE2 syntax Go uses (not `\Q…\E`).
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    allow: Vec<Regex>,
    ignore: Vec<Regex>,
}

impl TagFilter {
    /// The filter of a subscription's allow and ignore regexes.
    pub fn of(sub: &impl TagRegexes) -> Result<Self, TagFilterError> {
        Self::new(&sub.allow_regexes(), &sub.ignore_regexes())
    }

    pub fn new<A, I>(allow: &[A], ignore: &[I]) -> Result<Self, TagFilterError>
    where
        A: AsRef<str>,
        I: AsRef<str>,
    {
        Ok(Self {
            allow: compile(allow, "allowTagsRegexes")?,
            ignore: compile(ignore, "ignoreTagsRegexes")?,
        })
    }

    /// Keeps every tag.
    pub fn allow_all() -> Self {
        Self::default()
    }

    pub fn matches(&self, tag: &str) -> bool {
        // Ignore wins over allow.
        !self.ignore.iter().any(|r| r.is_match(tag))
            && (self.allow.is_empty() || self.allow.iter().any(|r| r.is_match(tag)))
    }
}

fn compile<S: AsRef<str>>(
    patterns: &[S],
    field: &'static str,
) -> Result<Vec<Regex>, TagFilterError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p.as_ref()).map_err(|error| TagFilterError {
                field,
                pattern: p.as_ref().to_owned(),
                error,
            })
        })
        .collect()
}
