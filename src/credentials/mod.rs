//! Credentials from Kubernetes Secrets labelled `kargo.akuity.io/cred-type`, found the way Kargo
//! finds them, so Secrets made for Kargo work unchanged: the project namespace first, then the
//! shared namespace; Secrets sorted by name; the first whose `repoURL` equals the normalised URL,
//! or matches it as a regex when `repoURLIsRegex` is "true", wins.
//!
//! Secrets are read live, not cached: the controller may only read Secrets in project
//! namespaces, and a stale credential is worse than one extra List.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

use crate::api::LABEL_CRED_TYPE;
use crate::urls::{normalize_chart, normalize_git, normalize_image};

/// The kinds of credentials Kargo's label distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredType {
    Git,
    Image,
    Helm,
    Generic,
}

impl CredType {
    pub fn label_value(self) -> &'static str {
        match self {
            CredType::Git => "git",
            CredType::Image => "image",
            CredType::Helm => "helm",
            CredType::Generic => "generic",
        }
    }

    fn normalize(self, url: &str) -> String {
        match self {
            CredType::Git => normalize_git(url),
            CredType::Image => normalize_image(url),
            CredType::Helm => normalize_chart(url),
            CredType::Generic => url.to_string(),
        }
    }
}

/// A Secret that matched, with its data decoded to bytes.
#[derive(Clone)]
pub struct FoundCredentials {
    /// `<namespace>/<name>` of the Secret, for messages (never its contents).
    pub secret: String,
    pub data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for FoundCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundCredentials")
            .field("secret", &self.secret)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FoundCredentials {
    /// A value as UTF-8 text, if present.
    pub fn get(&self, key: &str) -> Option<String> {
        self.data
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "listing Secrets labelled {LABEL_CRED_TYPE}={cred_type} in namespace {namespace}: {source}"
    )]
    List {
        cred_type: &'static str,
        namespace: String,
        source: kube::Error,
    },
}

/// Whether a Secret's data names `repo_url` (already normalised for its type).
pub fn secret_matches(
    data: &BTreeMap<String, Vec<u8>>,
    cred_type: CredType,
    repo_url: &str,
) -> bool {
    let Some(pattern) = data
        .get("repoURL")
        .map(|v| String::from_utf8_lossy(v).into_owned())
    else {
        return false;
    };
    let is_regex = data
        .get("repoURLIsRegex")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"true"));
    let normalized = cred_type.normalize(repo_url);
    if is_regex {
        // A regex is tested against both the raw and the normalised URL, as Kargo does.
        return regex::Regex::new(&pattern)
            .map(|re| re.is_match(repo_url) || re.is_match(&normalized))
            .unwrap_or(false);
    }
    cred_type.normalize(&pattern) == normalized
}

/// Finds the credentials for `repo_url` in `namespace`, then in `shared_namespace`.
pub async fn find(
    client: &kube::Client,
    namespace: &str,
    shared_namespace: Option<&str>,
    cred_type: CredType,
    repo_url: &str,
) -> Result<Option<FoundCredentials>, CredentialsError> {
    let namespaces = std::iter::once(namespace).chain(shared_namespace.filter(|s| *s != namespace));
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let lp =
            ListParams::default().labels(&format!("{LABEL_CRED_TYPE}={}", cred_type.label_value()));
        let mut secrets = api
            .list(&lp)
            .await
            .map_err(|source| CredentialsError::List {
                cred_type: cred_type.label_value(),
                namespace: ns.to_string(),
                source,
            })?;
        secrets
            .items
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for s in secrets.items {
            let data: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            if secret_matches(&data, cred_type, repo_url) {
                return Ok(Some(FoundCredentials {
                    secret: format!("{ns}/{}", s.metadata.name.unwrap_or_default()),
                    data,
                }));
            }
        }
    }
    Ok(None)
}

/// Git credentials from a matched Secret: `sshPrivateKey`, or `username` + `password` (a
/// password alone is used with the user `git`, as token-based servers accept).
pub fn to_git(found: &FoundCredentials) -> Result<crate::git::Credentials, String> {
    if let Some(key) = found.get("sshPrivateKey") {
        return Ok(crate::git::Credentials::SshKey { private_key: key });
    }
    match (found.get("username"), found.get("password")) {
        (Some(username), Some(password)) => {
            Ok(crate::git::Credentials::Basic { username, password })
        }
        (None, Some(password)) => Ok(crate::git::Credentials::Basic {
            username: "git".into(),
            password,
        }),
        _ => Err(format!(
            "Secret {} has neither password nor sshPrivateKey",
            found.secret
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn exact_urls_match_after_normalisation() {
        let d = data(&[("repoURL", "https://Git.Example.com/repo.git")]);
        assert!(secret_matches(
            &d,
            CredType::Git,
            "https://git.example.com/repo"
        ));
        assert!(!secret_matches(
            &d,
            CredType::Git,
            "https://git.example.com/other"
        ));
        let d = data(&[("repoURL", "docker.io/library/nginx")]);
        assert!(secret_matches(&d, CredType::Image, "nginx"));
    }

    #[test]
    fn regex_urls_match_raw_or_normalised() {
        let d = data(&[
            ("repoURL", r"^https://git\.example\.com/team-.*$"),
            ("repoURLIsRegex", "true"),
        ]);
        assert!(secret_matches(
            &d,
            CredType::Git,
            "https://git.example.com/team-a.git"
        ));
        assert!(!secret_matches(
            &d,
            CredType::Git,
            "https://git.example.com/other"
        ));
        // A bad regex matches nothing instead of failing every lookup.
        let d = data(&[("repoURL", "("), ("repoURLIsRegex", "true")]);
        assert!(!secret_matches(&d, CredType::Git, "("));
        // Without repoURL a Secret matches nothing.
        assert!(!secret_matches(&data(&[]), CredType::Git, "x"));
    }
}
