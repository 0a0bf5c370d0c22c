//! Git URL handling: Kargo-compatible normalisation, credential stripping and cache keys.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use super::error::GitError;

/// `[user@]host.xz[:path]`, with Go RE2's ASCII `\w` (Kargo's `scpSyntaxRegex`).
static SCP_SYNTAX: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^((?:[0-9A-Za-z_-]+@)?[0-9A-Za-z_-]+(?:\.[0-9A-Za-z_-]+)*)(?::(.*))?$").ok()
});

/// `scheme://userinfo@` anywhere in a text, for scrubbing git's messages.
static URL_USERINFO: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]+@").ok());

/// Normalises a git URL the way Kargo's `urls.NormalizeGit` does, for comparing URLs and for
/// keys (the repository cache, push locks, Freight IDs):
///
/// * leading/trailing whitespace (and invisible characters such as a BOM) is removed; a URL with
///   internal whitespace (also percent-encoded) is returned unchanged;
/// * `http[s]://` URLs lose their userinfo; `ssh://` URLs keep the user name (it selects the
///   account on the server) but, unlike Kargo, never a password;
/// * a trailing `/` and then a trailing `.git` are removed from the path;
/// * SCP-style `[user@]host:path` becomes `ssh://[user@]host/path`;
/// * the result is lower-cased.
///
/// Anything else (a query string, `file://`, a local path, an unparseable URL) is returned as
/// given (trimmed), like Kargo; `file://` paths keep their case, as they name local directories.
pub fn normalize_url(repo: &str) -> String {
    if has_internal_spaces(repo) {
        return repo.to_string();
    }
    let trimmed: String = repo.chars().filter(|c| !is_space(*c)).collect();
    if trimmed.is_empty() {
        return repo.to_string();
    }
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("ssh://")
    {
        let Some(parts) = UrlParts::parse(&trimmed) else {
            return trimmed;
        };
        if parts.query.is_some() {
            return trimmed;
        }
        let userinfo = if parts.scheme.eq_ignore_ascii_case("ssh") {
            parts.user.map(|u| format!("{u}@")).unwrap_or_default()
        } else {
            String::new()
        };
        let path = trim_repo_path(parts.path);
        let fragment = parts.fragment.map(|f| format!("#{f}")).unwrap_or_default();
        return format!(
            "{}://{userinfo}{}{path}{fragment}",
            parts.scheme, parts.host_port
        )
        .to_lowercase();
    }
    if lower.starts_with("file://") || trimmed.starts_with('/') {
        return trimmed.trim_end_matches('/').to_string();
    }
    let Some(re) = SCP_SYNTAX.as_ref() else {
        return trimmed;
    };
    let Some(caps) = re.captures(&trimmed) else {
        return trimmed;
    };
    let user_host = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
    let path = caps.get(2).map(|m| m.as_str()).unwrap_or_default();
    let path = trim_repo_path(path);
    if path.is_empty() {
        format!("ssh://{user_host}").to_lowercase()
    } else {
        format!("ssh://{user_host}/{}", path.trim_start_matches('/')).to_lowercase()
    }
}

fn trim_repo_path(path: &str) -> &str {
    let p = path.strip_suffix('/').unwrap_or(path);
    p.strip_suffix(".git").unwrap_or(p)
}

/// Go's `unicode.IsSpace(r) || !unicode.IsPrint(r)`, approximated: whitespace, control
/// characters and the common invisible format characters.
fn is_space(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

fn has_internal_spaces(repo: &str) -> bool {
    let decoded = percent_decode(repo).unwrap_or_else(|| repo.to_string());
    let trimmed = decoded.trim_matches(is_space);
    trimmed.chars().any(is_space)
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The pieces of `scheme://[user[:password]@]host[:port][/path][?query][#fragment]`.
struct UrlParts<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    password: Option<&'a str>,
    host_port: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    fn parse(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, if q.is_empty() { None } else { Some(q) }),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(u), Some(p)),
                None => (Some(ui), None),
            },
            None => (None, None),
        };
        Some(Self {
            scheme,
            user,
            password,
            host_port,
            path,
            query,
            fragment,
        })
    }
}

/// A repository URL as haul uses it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RepoUrl {
    /// The URL git is given and that is stored in the cache's config: as the caller wrote it
    /// (trimmed), minus any password, and minus the whole userinfo for http(s).
    pub remote: String,
    /// [`normalize_url`] of the URL: the cache and lock key.
    pub normalized: String,
    /// Basic-auth credentials that were embedded in an http(s) URL (percent-decoded).
    pub embedded: Option<(String, String)>,
}

impl std::fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoUrl")
            .field("remote", &self.remote)
            .field("normalized", &self.normalized)
            .field("embedded", &self.embedded.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RepoUrl {
    /// Checks a caller's URL and strips its credentials. Only `https`, `http`, `ssh`, `git`,
    /// SCP-style and (when `allow_file`) `file://` URLs are accepted; in particular git's
    /// `ext::` transport, which runs commands, and option-like strings are refused.
    pub(crate) fn parse(url: &str, allow_file: bool) -> Result<Self, GitError> {
        let trimmed = url.trim_matches(is_space);
        let invalid = |reason: &str| GitError::InvalidUrl {
            url: redact_url(trimmed),
            reason: reason.to_string(),
        };
        if trimmed.is_empty() {
            return Err(invalid("empty URL"));
        }
        if trimmed.starts_with('-') {
            return Err(invalid("a URL cannot start with '-'"));
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("whitespace or control characters in URL"));
        }
        let lower = trimmed.to_ascii_lowercase();
        if let Some(i) = lower.find("://") {
            let scheme = &lower[..i];
            match scheme {
                "http" | "https" | "ssh" | "git" => {}
                "file" if allow_file => {}
                "file" => return Err(invalid("file:// URLs are disabled")),
                _ => return Err(invalid("unsupported URL scheme")),
            }
            let parts = UrlParts::parse(trimmed).ok_or_else(|| invalid("malformed URL"))?;
            if parts.host_port.is_empty() && scheme != "file" {
                return Err(invalid("missing host"));
            }
            let is_http = scheme == "http" || scheme == "https";
            let embedded = match (is_http, parts.user, parts.password) {
                (true, Some(u), Some(p)) => Some((
                    percent_decode(u).unwrap_or_else(|| u.to_string()),
                    percent_decode(p).unwrap_or_else(|| p.to_string()),
                )),
                _ => None,
            };
            let userinfo = match (is_http, parts.user) {
                (false, Some(u)) => format!("{u}@"),
                _ => String::new(),
            };
            let query = parts.query.map(|q| format!("?{q}")).unwrap_or_default();
            let fragment = parts.fragment.map(|f| format!("#{f}")).unwrap_or_default();
            let remote = format!(
                "{}://{userinfo}{}{}{query}{fragment}",
                parts.scheme, parts.host_port, parts.path
            );
            return Ok(Self {
                normalized: normalize_url(&remote),
                remote,
                embedded,
            });
        }
        if trimmed.starts_with('/') {
            if !allow_file {
                return Err(invalid("local paths are disabled"));
            }
            return Ok(Self {
                normalized: normalize_url(trimmed),
                remote: trimmed.to_string(),
                embedded: None,
            });
        }
        if lower.contains("::") {
            return Err(invalid(
                "git remote-helper URLs (<transport>::<address>) are not allowed",
            ));
        }
        let scp_ok = SCP_SYNTAX
            .as_ref()
            .is_some_and(|re| re.is_match(trimmed) && trimmed.contains(':'));
        if !scp_ok {
            return Err(invalid("not a URL git can use"));
        }
        Ok(Self {
            normalized: normalize_url(trimmed),
            remote: trimmed.to_string(),
            embedded: None,
        })
    }

    /// The directory name of this repository in the cache: a hash of the normalised URL, so no
    /// part of the URL (and never a credential) appears on disk as a name.
    pub(crate) fn cache_key(&self) -> String {
        hex_digest(self.normalized.as_bytes(), 16)
    }
}

/// Hex of the first `bytes` bytes of SHA-256(`data`).
pub(crate) fn hex_digest(data: &[u8], bytes: usize) -> String {
    let digest = Sha256::digest(data);
    digest
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL without any userinfo, for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    scrub_userinfo(url)
}

/// Removes `userinfo@` after every `scheme://` in `text`.
pub(crate) fn scrub_userinfo(text: &str) -> String {
    match URL_USERINFO.as_ref() {
        Some(re) => re.replace_all(text, "$1").into_owned(),
        None => text.to_string(),
    }
}
