//! The one list of the webhook receivers haul serves. Everything receiver-specific that the
//! ProjectConfig reconciler (which kinds are supported, their Secret keys, their paths) and the
//! server (authentication and parsing) need is read from here.
//!
//! Adding a receiver: a file in `receivers/` with a `static` [`Receiver`], a
//! `mod` line in `receivers/mod.rs`, and one line in [`RECEIVERS`]. The test below adds one
//! that way.

use std::fmt;

use http::HeaderMap;

use super::{
    ConfigError, Event, RequestError, artifactory, azure, bitbucket, dockerhub, generic, gitea,
    github, gitlab, harbor, quay,
};
use crate::api::{LocalSecretReference, WebhookReceiverConfig};

/// A request as a receiver sees it: its headers, query and raw body, the shared secret from
/// the receiver's Secret, and the receiver's configuration (for kinds with settings beyond the
/// secret).
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?` (empty when there is none).
    pub query: &'a str,
    pub body: &'a [u8],
    pub secret: &'a [u8],
    pub config: &'a WebhookReceiverConfig,
}

/// The Secret reference of this kind's field of a `WebhookReceiverConfig`, when it is set.
type Field = fn(&WebhookReceiverConfig) -> Option<&LocalSecretReference>;

/// Authenticates a request against the shared secret and says what it asks for. Errors never
/// contain the secret or the presented signature/token.
type Handle = fn(Request<'_>) -> Result<Event, RequestError>;

/// One receiver kind: a `static` in its own file, built with [`Receiver::new`]; [`Platform`] is
/// the handle callers keep.
pub struct Receiver {
    /// Kargo's receiver type: the `WebhookReceiverConfig` field and the path segment after the
    /// base path. Changing it changes every published URL of the kind.
    kind: &'static str,
    /// The Secret data key holding the shared secret (Kargo's key for this kind).
    secret_key: &'static str,
    field: Field,
    handle: Handle,
}

impl Receiver {
    /// A receiver of `kind`, configured by `field`, whose Secret keeps the shared secret under
    /// `secret` (Kargo's key for every kind but GitLab; see [`Self::with_secret_key`]).
    pub const fn new(kind: &'static str, field: Field, handle: Handle) -> Self {
        Self {
            kind,
            secret_key: "secret",
            field,
            handle,
        }
    }

    /// The same receiver with its shared secret under another Secret data key.
    pub const fn with_secret_key(self, secret_key: &'static str) -> Self {
        Self { secret_key, ..self }
    }

    /// The Secret referenced by this kind's `WebhookReceiverConfig` field, when the field is set.
    fn secret_ref<'c>(&self, cfg: &'c WebhookReceiverConfig) -> Option<&'c LocalSecretReference> {
        (self.field)(cfg)
    }
}

/// Every receiver haul serves, one line each.
pub static RECEIVERS: &[&Receiver] = &[
    &github::GITHUB,
    &gitlab::GITLAB,
    &quay::QUAY,
    &dockerhub::DOCKERHUB,
    &gitea::GITEA,
    &bitbucket::BITBUCKET,
    &azure::AZURE,
    &harbor::HARBOR,
    &artifactory::ARTIFACTORY,
    &generic::GENERIC,
];

/// A registered receiver: cheap to copy, compared and shown by its kind.
#[derive(Clone, Copy)]
pub struct Platform(&'static Receiver);

impl Platform {
    /// The registered receiver of `kind` (`"github"`, …).
    pub fn find(kind: &str) -> Option<Self> {
        find_in(RECEIVERS, kind)
    }

    /// The receiver type, the first path segment after the base path.
    pub fn as_str(self) -> &'static str {
        self.0.kind
    }

    /// The Secret data key holding the shared secret (Kargo's per-platform key).
    pub fn secret_key(self) -> &'static str {
        self.0.secret_key
    }

    /// Authenticates a request against the shared secret and says what it asks for. Errors never
    /// contain the secret or the presented signature/token.
    pub fn handle(self, req: Request<'_>) -> Result<Event, RequestError> {
        (self.0.handle)(req)
    }
}

impl PartialEq for Platform {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Platform {}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Platform").field(&self.as_str()).finish()
    }
}

/// The platform of a receiver and the Secret it references.
pub fn platform_of(
    cfg: &WebhookReceiverConfig,
) -> Result<(Platform, &LocalSecretReference), ConfigError> {
    platform_of_in(RECEIVERS, cfg)
}

fn find_in(receivers: &[&'static Receiver], kind: &str) -> Option<Platform> {
    receivers
        .iter()
        .find(|r| r.kind == kind)
        .map(|r| Platform(r))
}

fn platform_of_in<'c>(
    receivers: &[&'static Receiver],
    cfg: &'c WebhookReceiverConfig,
) -> Result<(Platform, &'c LocalSecretReference), ConfigError> {
    let name = cfg.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(ConfigError::NoName { name });
    }
    let found: Vec<(Platform, &LocalSecretReference)> = receivers
        .iter()
        .filter_map(|r| Some((Platform(r), r.secret_ref(cfg)?)))
        .collect();
    match found.as_slice() {
        [] => Err(ConfigError::NoPlatform { name }),
        [p] => Ok(*p),
        _ => Err(ConfigError::ManyPlatforms { name }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use http::HeaderValue;
    use serde_json::{Value, json};

    use super::*;
    use crate::receivers::webhook_path;

    /// A new receiver exactly as its own file (`receivers/example.rs`) would hold it: a
    /// `static` `Receiver` and its handler, built from the shared helpers. A stand-in only: it
    /// reuses the `gitea` field and checks a token header as GitLab does.
    mod example {
        use crate::receivers::registry::{Receiver, Request};
        use crate::receivers::{
            Event, RequestError, constant_time_eq, header, parse_json, refresh, str_at,
        };

        pub static EXAMPLE: Receiver = Receiver::new(
            "example",
            |c| c.gitea.as_ref().map(|s| &s.secret_ref),
            handle,
        );

        fn handle(req: Request<'_>) -> Result<Event, RequestError> {
            match header(req.headers, "x-test-token") {
                Some(t) if constant_time_eq(t.as_bytes(), req.secret) => {}
                _ => return Err(RequestError::Unauthorized),
            }
            let v = parse_json(req.body)?;
            let url = str_at(&v, "/repository/clone_url");
            Ok(refresh(
                vec![crate::git::normalize_url(url)],
                vec![str_at(&v, "/ref").to_string()],
            ))
        }
    }

    /// The registry with the stand-in in place of the receiver whose field it borrows.
    fn test_receivers() -> Vec<&'static Receiver> {
        let mut receivers: Vec<&'static Receiver> = RECEIVERS
            .iter()
            .copied()
            .filter(|r| r.kind != "gitea")
            .collect();
        receivers.push(&example::EXAMPLE);
        receivers
    }

    fn cfg(v: Value) -> WebhookReceiverConfig {
        serde_json::from_value(v).expect("cfg")
    }

    #[test]
    fn every_receiver_is_configured_by_the_field_named_by_its_kind() {
        let mut kinds = BTreeSet::new();
        for r in RECEIVERS {
            let kind = r.kind;
            assert!(kinds.insert(kind), "{kind} registered twice");
            let c = cfg(json!({"name": "r", kind: {"secretRef": {"name": "s"}}}));
            let (p, s) = platform_of(&c).expect(kind);
            assert_eq!((p.as_str(), s.name.as_str()), (kind, "s"));
            assert_eq!(Platform::find(kind), Some(p));
        }
        assert_eq!(Platform::find("gitea-typo"), None);
    }

    #[test]
    fn a_receiver_registered_in_one_line_is_configured_and_served() {
        let receivers = test_receivers();
        let example_cfg = cfg(json!({"name": "r", "gitea": {"secretRef": {"name": "s"}}}));
        let (p, s) = platform_of_in(&receivers, &example_cfg).expect("example is registered");
        assert_eq!(
            (p.as_str(), p.secret_key(), s.name.as_str()),
            ("example", "secret", "s")
        );
        assert_eq!(find_in(&receivers, "example"), Some(p));
        assert!(webhook_path("", "proj", p, "r", &["x"]).starts_with("/example/"));

        let body = json!({
            "ref": "refs/heads/main",
            "repository": {"clone_url": "https://gitea.example.com/org/app.git"}
        })
        .to_string();
        let no_token = HeaderMap::new();
        let mut with_token = HeaderMap::new();
        with_token.insert("x-test-token", HeaderValue::from_static("s3cret"));
        let request = |headers| Request {
            headers,
            query: "",
            body: body.as_bytes(),
            secret: b"s3cret",
            config: &example_cfg,
        };
        assert_eq!(
            p.handle(request(&no_token)),
            Err(RequestError::Unauthorized)
        );
        assert_eq!(
            p.handle(request(&with_token)),
            Ok(Event::Refresh {
                repo_urls: vec!["https://gitea.example.com/org/app".into()],
                qualifiers: vec!["refs/heads/main".into()],
                changed_paths: vec![],
            })
        );

        // One platform per receiver.
        assert!(matches!(
            platform_of_in(
                &receivers,
                &cfg(json!({
                    "name": "r",
                    "gitea": {"secretRef": {"name": "s"}},
                    "github": {"secretRef": {"name": "s"}}
                }))
            ),
            Err(ConfigError::ManyPlatforms { .. })
        ));
    }
}
