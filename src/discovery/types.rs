//! What every discovery back end shares: registry credentials, the errors of image discovery,
//! platforms and parsed image repositories (ECR hosts included). It imports no back end, so
//! `images`, `ecr` and `oci` depend on it and never on each other for these.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest as _, Sha256};

/// Docker Hub's registry API host (what `docker.io` resolves to).
const DOCKER_HUB_REGISTRY: &str = "index.docker.io";

// ------------------------------------------------------------------------------------ credentials

/// Credentials for an image registry, from a Secret labelled `kargo.akuity.io/cred-type: image`
/// (the caller finds the Secret; see [`RegistryCredentials::from_secret_data`]). `Debug` never
/// shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryCredentials {
    /// Basic credentials; also used for the registry's bearer-token endpoint when it has one.
    Basic { username: String, password: String },
    /// A ready bearer token sent as is (`Authorization: Bearer ...`).
    Bearer { token: String },
    /// AWS access keys for ECR (Kargo's `awsAccessKeyID` / `awsSecretAccessKey` / `awsRegion`).
    /// The region of the repository URL is used for the API calls; `region` is kept for
    /// repositories whose URL has none.
    AwsStatic {
        access_key_id: String,
        secret_access_key: String,
        region: Option<String>,
    },
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
            Self::AwsStatic {
                access_key_id,
                region,
                ..
            } => f
                .debug_struct("AwsStatic")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .field("region", region)
                .finish(),
        }
    }
}

/// Secret data that cannot be turned into credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// One key of a pair is present without the other.
    #[error("credentials secret has {present} but no {missing}")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    /// A value is not UTF-8.
    #[error("credentials secret key {0} is not valid UTF-8")]
    NotUtf8(&'static str),
}

impl RegistryCredentials {
    /// Kargo's image credential keys: `awsAccessKeyID` + `awsSecretAccessKey` (+ optional
    /// `awsRegion`) give [`AwsStatic`](Self::AwsStatic), else `username` + `password` give
    /// [`Basic`](Self::Basic). `Ok(None)` when the data has neither (anonymous access, as Kargo
    /// does with an empty Secret); empty values count as absent.
    pub fn from_secret_data(
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Option<Self>, CredentialsError> {
        let get = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match data.get(key) {
                None => Ok(None),
                Some(v) => {
                    let s = std::str::from_utf8(v).map_err(|_| CredentialsError::NotUtf8(key))?;
                    let s = s.trim_end_matches(['\r', '\n']);
                    Ok((!s.is_empty()).then(|| s.to_owned()))
                }
            }
        };
        let pair = |a: &'static str, b: &'static str| {
            Ok::<_, CredentialsError>(match (get(a)?, get(b)?) {
                (Some(x), Some(y)) => Some((x, y)),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(CredentialsError::Incomplete {
                        present: a,
                        missing: b,
                    });
                }
                (None, Some(_)) => {
                    return Err(CredentialsError::Incomplete {
                        present: b,
                        missing: a,
                    });
                }
            })
        };
        if let Some((access_key_id, secret_access_key)) =
            pair("awsAccessKeyID", "awsSecretAccessKey")?
        {
            return Ok(Some(Self::AwsStatic {
                access_key_id,
                secret_access_key,
                region: get("awsRegion")?,
            }));
        }
        Ok(pair("username", "password")?
            .map(|(username, password)| Self::Basic { username, password }))
    }

    /// A stable, non-reversible identifier of these credentials for cache keys.
    pub(crate) fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        match self {
            Self::Basic { username, password } => {
                h.update(b"basic\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.as_bytes());
            }
            Self::Bearer { token } => {
                h.update(b"bearer\0");
                h.update(token.as_bytes());
            }
            Self::AwsStatic {
                access_key_id,
                secret_access_key,
                ..
            } => {
                h.update(b"aws\0");
                h.update(access_key_id.as_bytes());
                h.update(b"\0");
                h.update(secret_access_key.as_bytes());
            }
        }
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

// ----------------------------------------------------------------------------------------- errors

/// Why discovery failed. Every variant names the subscription's repository URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageDiscoveryError {
    /// The subscription itself is invalid (bad regex, constraint, platform or URL).
    #[error("invalid image subscription for {repo}: {reason}")]
    InvalidSubscription { repo: String, reason: String },
    /// The repository does not exist (or is hidden from these credentials).
    #[error("image repository {repo} not found")]
    NotFound { repo: String },
    /// Missing, rejected or expired credentials, or access denied.
    #[error("authentication to image repository {repo} failed: {reason}")]
    Auth { repo: String, reason: String },
    /// The registry asked us to slow down (HTTP 429, ECR `ThrottlingException`).
    #[error("image registry throttled requests for {repo}{}: {reason}", retry_hint(.retry_after))]
    Throttled {
        repo: String,
        retry_after: Option<Duration>,
        reason: String,
    },
    /// Connection failure, timeout or a 5xx answer.
    #[error("image registry for {repo} unreachable: {reason}")]
    Unreachable { repo: String, reason: String },
    /// The registry answered something discovery cannot use.
    #[error("unexpected answer from the image registry for {repo}: {reason}")]
    Protocol { repo: String, reason: String },
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {}s)", d.as_secs()))
        .unwrap_or_default()
}

impl ImageDiscoveryError {
    /// The repository URL the error is about.
    pub fn repo(&self) -> &str {
        match self {
            Self::InvalidSubscription { repo, .. }
            | Self::NotFound { repo }
            | Self::Auth { repo, .. }
            | Self::Throttled { repo, .. }
            | Self::Unreachable { repo, .. }
            | Self::Protocol { repo, .. } => repo,
        }
    }

    /// The registry's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying later may succeed without a change to the subscription or credentials.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unreachable { .. })
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the registry HTTP client: {0}")]
pub struct DiscovererInitError(#[from] reqwest::Error);

// --------------------------------------------------------------------------------------- platform

/// `os/arch[/variant]`, compared exactly as Kargo does (`linux/arm64` does not match an entry
/// whose variant is `v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

/// A platform string without `os/arch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?} (expected os/arch[/variant])")]
pub struct InvalidPlatform(pub String);

impl FromStr for Platform {
    type Err = InvalidPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant) if !os.is_empty() && !arch.is_empty() => Ok(Self {
                os: os.to_owned(),
                arch: arch.to_owned(),
                variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
            }),
            _ => Err(InvalidPlatform(s.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------ repo parsing

/// A parsed `repoURL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRepository {
    /// Registry host as `host[:port]` (lowercase); Docker Hub is `index.docker.io`.
    pub registry: String,
    /// Repository path in the registry (`library/nginx`).
    pub path: String,
    /// Set for ECR repositories.
    pub ecr: Option<EcrRepository>,
}

impl ImageRepository {
    /// Parses a repoURL the way Docker references are parsed: the first component is the
    /// registry when it contains `.` or `:` or is `localhost`; otherwise the image is on
    /// Docker Hub (single names get `library/`). A tag or digest is rejected.
    pub fn parse(repo_url: &str) -> Result<Self, String> {
        let s = repo_url.trim();
        let s = s
            .strip_prefix("oci://")
            .or_else(|| s.strip_prefix("docker://"))
            .unwrap_or(s)
            .trim_end_matches('/');
        if s.is_empty() {
            return Err("empty repository URL".into());
        }
        if s.contains('@') {
            return Err("repository URL must not contain a digest".into());
        }
        let (first, rest) = match s.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, s),
        };
        if rest
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
        {
            return Err("repository URL must not contain a tag".into());
        }
        if rest.is_empty() || rest.split('/').any(str::is_empty) {
            return Err("invalid repository path".into());
        }
        let host = first.map(str::to_ascii_lowercase);
        let (registry, path) = match host.as_deref() {
            None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io") => {
                let path = if rest.contains('/') {
                    rest.to_owned()
                } else {
                    format!("library/{rest}")
                };
                (DOCKER_HUB_REGISTRY.to_owned(), path)
            }
            Some(h) => (h.to_owned(), rest.to_owned()),
        };
        let ecr = EcrRepository::from_host(&registry);
        Ok(Self {
            registry,
            path,
            ecr,
        })
    }

    /// The host without the port.
    pub(crate) fn hostname(&self) -> &str {
        if let Some(v6) = self.registry.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6);
        }
        self.registry.split(':').next().unwrap_or(&self.registry)
    }

    /// Loopback hosts (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        let h = self.hostname();
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Account and region of an ECR repository host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRepository {
    pub account: String,
    pub region: String,
}

impl EcrRepository {
    /// `<12 digits>.dkr.ecr.<region>.amazonaws.com[.cn]` (Kargo's ECR URL pattern, plus China).
    pub fn from_host(host: &str) -> Option<Self> {
        let rest = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
        let (account, rest) = rest.split_once(".dkr.ecr.")?;
        let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let valid_region = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (valid_account && valid_region).then(|| Self {
            account: account.to_owned(),
            region: rest.to_owned(),
        })
    }
}

pub(crate) fn to_time(t: Timestamp) -> Time {
    Time(t)
}

/// Merges annotation maps, later ones winning.
pub(crate) fn merge_annotations<'a>(
    maps: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for m in maps {
        out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn repository_parsing() {
        let r = ImageRepository::parse("nginx").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("index.docker.io", "library/nginx")
        );
        let r = ImageRepository::parse("docker.io/bitnami/redis").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("index.docker.io", "bitnami/redis")
        );
        let r = ImageRepository::parse("ghcr.io/akuity/kargo").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("ghcr.io", "akuity/kargo")
        );
        assert!(r.ecr.is_none());
        assert!(!r.is_loopback());
        let r = ImageRepository::parse("127.0.0.1:5000/team/app").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("127.0.0.1:5000", "team/app")
        );
        assert!(r.is_loopback());
        assert!(
            ImageRepository::parse("localhost/x")
                .map(|r| r.is_loopback())
                .unwrap_or(false)
        );
        let r = ImageRepository::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app")
            .unwrap_or_else(|e| panic!("{e}"));
        let ecr = r.ecr.unwrap_or_else(|| panic!("not ECR"));
        assert_eq!(
            (ecr.account.as_str(), ecr.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        for bad in [
            "",
            "ghcr.io/a/b:1.0",
            "ghcr.io/a@sha256:00",
            "ghcr.io//a",
            "nginx:latest",
        ] {
            assert!(ImageRepository::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platform_parsing() {
        let p: Platform = "linux/arm64/v8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            "linux/amd64".parse::<Platform>().map(|p| p.to_string()),
            Ok("linux/amd64".to_owned())
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("/amd64".parse::<Platform>().is_err());
    }

    #[test]
    fn credentials_from_secret_data() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect()
        };
        let creds = |pairs: &[(&str, &str)]| RegistryCredentials::from_secret_data(&data(pairs));
        assert_eq!(creds(&[]), Ok(None));
        assert_eq!(
            creds(&[("repoURL", "x"), ("username", "u"), ("password", "p\n")]),
            Ok(Some(RegistryCredentials::Basic {
                username: "u".into(),
                password: "p".into()
            }))
        );
        assert_eq!(
            creds(&[
                ("awsAccessKeyID", "AKIA"),
                ("awsSecretAccessKey", "s3"),
                ("awsRegion", "eu-west-1")
            ]),
            Ok(Some(RegistryCredentials::AwsStatic {
                access_key_id: "AKIA".into(),
                secret_access_key: "s3".into(),
                region: Some("eu-west-1".into())
            }))
        );
        assert_eq!(
            creds(&[("username", "u")]),
            Err(CredentialsError::Incomplete {
                present: "username",
                missing: "password"
            })
        );
        let mut bad = data(&[("username", "u")]);
        bad.insert("password".into(), vec![0xff]);
        assert_eq!(
            RegistryCredentials::from_secret_data(&bad),
            Err(CredentialsError::NotUtf8("password"))
        );
        let secret = RegistryCredentials::AwsStatic {
            access_key_id: "AKIA".into(),
            secret_access_key: "topsecret".into(),
            region: None,
        };
        let shown = format!(
            "{secret:?} {:?} {:?}",
            RegistryCredentials::Basic {
                username: "u".into(),
                password: "topsecret".into()
            },
            RegistryCredentials::Bearer {
                token: "topsecret".into()
            }
        );
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("AKIA"));
        assert_ne!(
            secret.fingerprint(),
            RegistryCredentials::Bearer { token: "x".into() }.fingerprint()
        );
        assert!(!secret.fingerprint().contains("topsecret"));
    }

    #[test]
    fn errors_name_the_repository() {
        let e = ImageDiscoveryError::Throttled {
            repo: "r/x".into(),
            retry_after: Some(Duration::from_secs(30)),
            reason: "HTTP 429".into(),
        };
        assert_eq!(
            e.to_string(),
            "image registry throttled requests for r/x (retry after 30s): HTTP 429"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
        assert!(e.is_transient());
        assert_eq!(e.repo(), "r/x");
        let e = ImageDiscoveryError::NotFound { repo: "r/y".into() };
        assert_eq!(e.to_string(), "image repository r/y not found");
        assert!(!e.is_transient());
    }
    #[test]
    fn ecr_hosts() {
        assert_eq!(
            EcrRepository::from_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Some(EcrRepository {
                account: "123456789012".into(),
                region: "us-east-1".into()
            })
        );
        assert_eq!(
            EcrRepository::from_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
                .map(|e| e.region),
            Some("cn-north-1".into())
        );
        for bad in [
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "ghcr.io",
        ] {
            assert_eq!(EcrRepository::from_host(bad), None, "{bad}");
        }
    }
}
