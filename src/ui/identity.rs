//! Whose identity the UI acts with. Locally (`haul ui`) that is the caller's kubeconfig: one
//! client, the person's own credentials. In a cluster, behind an authenticating proxy, every
//! request names its user in `X-Forwarded-User` / `X-Forwarded-Groups`; those headers are
//! believed only when the request also carries the shared secret the proxy was given, and the
//! UI then acts by Kubernetes impersonation, so the API server applies that user's RBAC.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use http::HeaderMap;
use subtle::ConstantTimeEq;

/// The header carrying the user's name, set by the authenticating proxy.
pub const USER_HEADER: &str = "x-forwarded-user";
/// The header carrying the user's groups (comma-separated, or repeated).
pub const GROUPS_HEADER: &str = "x-forwarded-groups";
/// The header by which the proxy proves it is the trusted one.
pub const SECRET_HEADER: &str = "x-haul-proxy-secret";

/// How many impersonating clients are kept (one per user and groups).
const CLIENT_CACHE: usize = 256;

/// Why a request gets no client.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "this haul UI serves only requests from its authenticating proxy: the {SECRET_HEADER} header is missing or wrong"
    )]
    Untrusted,
    #[error("the authenticating proxy named no user: the {USER_HEADER} header is missing or empty")]
    NoUser,
    #[error("the {0} header is not valid text")]
    BadHeader(&'static str),
    #[error("building the API client for user {user}: {message}")]
    Client { user: String, message: String },
}

/// Who the UI acts as.
pub enum Identity {
    /// The caller's kubeconfig, for every request.
    Local(kube::Client),
    /// Impersonation of the user the trusted proxy names.
    Proxy(Box<Proxy>),
}

/// Impersonation behind a trusted proxy.
pub struct Proxy {
    /// The UI's own connection (its service account); it must be allowed to impersonate.
    base: kube::Config,
    secret: Vec<u8>,
    clients: Mutex<lru::LruCache<(String, Vec<String>), kube::Client>>,
}

impl Proxy {
    pub fn new(base: kube::Config, secret: Vec<u8>) -> Self {
        let size = NonZeroUsize::new(CLIENT_CACHE).unwrap_or(NonZeroUsize::MIN);
        Self {
            base,
            secret,
            clients: Mutex::new(lru::LruCache::new(size)),
        }
    }
}

/// The user and groups a trusted request names (pure: header checks only).
pub fn proxied_user(
    headers: &HeaderMap,
    secret: &[u8],
) -> Result<(String, Vec<String>), IdentityError> {
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // An empty configured secret never matches: the mode needs one.
    if secret.is_empty() || !bool::from(given.ct_eq(secret)) {
        return Err(IdentityError::Untrusted);
    }
    let user = headers
        .get(USER_HEADER)
        .ok_or(IdentityError::NoUser)?
        .to_str()
        .map_err(|_| IdentityError::BadHeader(USER_HEADER))?
        .trim()
        .to_string();
    if user.is_empty() {
        return Err(IdentityError::NoUser);
    }
    let mut groups = Vec::new();
    for v in headers.get_all(GROUPS_HEADER) {
        let v = v
            .to_str()
            .map_err(|_| IdentityError::BadHeader(GROUPS_HEADER))?;
        groups.extend(
            v.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from),
        );
    }
    groups.sort();
    groups.dedup();
    Ok((user, groups))
}

/// The key that names one identity (user and groups) among the UI's users: what live feeds are
/// shared by. Header values cannot hold a line break, so the parts cannot run into each other.
pub fn identity_key(user: &str, groups: &[String]) -> String {
    format!("user:{user}\ngroups:{}", groups.join(","))
}

impl Identity {
    /// The client to serve a request with, and the key of the identity it acts as.
    pub fn resolve(&self, headers: &HeaderMap) -> Result<(String, kube::Client), IdentityError> {
        match self {
            // One identity: the kubeconfig's.
            Identity::Local(c) => Ok(("local".into(), c.clone())),
            Identity::Proxy(p) => {
                let key = proxied_user(headers, &p.secret)?;
                let name = identity_key(&key.0, &key.1);
                if let Ok(mut cache) = p.clients.lock()
                    && let Some(c) = cache.get(&key)
                {
                    return Ok((name, c.clone()));
                }
                let mut config = p.base.clone();
                config.auth_info.impersonate = Some(key.0.clone());
                config.auth_info.impersonate_groups = (!key.1.is_empty()).then(|| key.1.clone());
                let client = kube::Client::try_from(config).map_err(|e| IdentityError::Client {
                    user: key.0.clone(),
                    message: e.to_string(),
                })?;
                if let Ok(mut cache) = p.clients.lock() {
                    cache.put(key, client.clone());
                }
                Ok((name, client))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn only_the_shared_secret_makes_headers_believed() {
        let ok = headers(&[
            (SECRET_HEADER, "s3cret"),
            (USER_HEADER, "alice"),
            (GROUPS_HEADER, "dev, ops"),
            (GROUPS_HEADER, "dev"),
        ]);
        assert_eq!(
            proxied_user(&ok, b"s3cret").expect("trusted"),
            ("alice".into(), vec!["dev".into(), "ops".into()])
        );
        let forged = headers(&[(SECRET_HEADER, "guess"), (USER_HEADER, "admin")]);
        assert!(matches!(
            proxied_user(&forged, b"s3cret"),
            Err(IdentityError::Untrusted)
        ));
        let none = headers(&[(USER_HEADER, "admin")]);
        assert!(matches!(
            proxied_user(&none, b"s3cret"),
            Err(IdentityError::Untrusted)
        ));
        assert!(matches!(
            proxied_user(&headers(&[(SECRET_HEADER, "")]), b""),
            Err(IdentityError::Untrusted)
        ));
        assert!(matches!(
            proxied_user(&headers(&[(SECRET_HEADER, "s3cret")]), b"s3cret"),
            Err(IdentityError::NoUser)
        ));
    }

    #[test]
    fn identities_differing_in_user_or_groups_have_different_keys() {
        let k = |u: &str, g: &[&str]| {
            identity_key(u, &g.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_ne!(k("alice", &["dev"]), k("alice", &["dev", "ops"]));
        assert_ne!(k("alice", &[]), k("bob", &[]));
        assert_ne!(k("a,b", &[]), k("a", &["b"]));
        assert_eq!(k("alice", &["dev"]), k("alice", &["dev"]));
    }
}
