//! What the `http` step may connect to: never a link-local address (169.254.0.0/16, fe80::/10,
//! and their IPv4-mapped forms) nor the EC2 instance metadata service's IPv6 address
//! (fd00:ec2::254). On EKS those reach the node's instance metadata, so a Stage author could
//! read the node's credentials into a Promotion's outputs. Kargo's hardened transport refuses
//! link-local addresses after DNS resolution; haul does the same (a resolver that drops them)
//! and also checks literal addresses, which the connector does not resolve, on the first
//! request and on every redirect.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The EC2 instance metadata service over IPv6 (a unique local address, not link-local).
const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254);

/// Most redirects followed, as reqwest's default policy (and Go's client, Kargo's).
const MAX_REDIRECTS: usize = 10;

/// Whether the step must not connect to `ip`.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            // fe80::/10 (Ipv6Addr::is_unicast_link_local is fe80::/10 on stable).
            v6.is_unicast_link_local() || v6 == EC2_METADATA_V6
        }
    }
}

/// Refuses a URL whose host is a forbidden literal address (names are checked when they are
/// resolved).
pub fn check_url(url: &reqwest::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    // IPv6 literals keep their brackets in the host.
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    if forbidden(ip) {
        return Err(refusal(&ip.to_string()));
    }
    Ok(())
}

const REFUSED: &str = "connections to link-local and instance metadata addresses are not permitted";

fn refusal(host: &str) -> String {
    format!("{REFUSED} (host {host})")
}

/// Whether an error message is this guard's refusal.
pub fn is_refusal(message: &str) -> bool {
    message.contains(REFUSED)
}

/// Resolves names with `inner` and drops forbidden addresses; a name that resolves only to
/// forbidden addresses is an error.
pub struct GuardedResolver {
    inner: Arc<dyn Resolve>,
}

impl GuardedResolver {
    pub fn new(inner: Arc<dyn Resolve>) -> Self {
        Self { inner }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let resolving = self.inner.resolve(name);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = resolving.await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| !forbidden(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{} (it resolves to nothing else)", refusal(&host)).into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The operating system's resolver (getaddrinfo through tokio), what reqwest uses by default.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A client builder that resolves through `resolver` guarded, and checks every redirect's
/// target before following it.
pub fn client_builder(resolver: Arc<dyn Resolve>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(resolver)))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if let Err(e) = check_url(attempt.url()) {
                attempt.error(e)
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_forbidden() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(forbidden(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "169.255.0.1",
            "::1",
            "fd00:ec2::253",
            "fec0::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!forbidden(ip.parse().expect("ip")), "{ip}");
        }
    }

    use std::collections::HashMap;
    use std::sync::Mutex;

    use crate::api::StepStatus;
    use crate::promotion::steps::StepError;
    use crate::promotion::steps::toolkit::parse;

    /// Maps names to addresses without DNS.
    struct TestResolver {
        names: HashMap<&'static str, Vec<IpAddr>>,
    }

    impl Resolve for TestResolver {
        fn resolve(&self, name: Name) -> Resolving {
            let addrs: Vec<SocketAddr> = self
                .names
                .get(name.as_str())
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            Box::pin(async move { Ok(Box::new(addrs.into_iter()) as Addrs) })
        }
    }

    /// What the connector is given: the guarded answer, refused (and recorded, failing the test)
    /// unless it is loopback only, so no packet leaves 127.0.0.0/8 even if the guard breaks.
    struct LoopbackOnly {
        guarded: GuardedResolver,
        leaked: Arc<Mutex<Vec<SocketAddr>>>,
    }

    impl Resolve for LoopbackOnly {
        fn resolve(&self, name: Name) -> Resolving {
            let leaked = self.leaked.clone();
            let resolving = self.guarded.resolve(name);
            Box::pin(async move {
                let addrs: Vec<SocketAddr> = resolving.await?.collect();
                let (ok, bad): (Vec<_>, Vec<_>) =
                    addrs.into_iter().partition(|a| a.ip().is_loopback());
                if !bad.is_empty() {
                    leaked.lock().unwrap_or_else(|p| p.into_inner()).extend(bad);
                    return Err("the test refuses to connect outside loopback".into());
                }
                Ok(Box::new(ok.into_iter()) as Addrs)
            })
        }
    }

    /// A loopback server answering every request with `status` and `location`; its port.
    async fn redirecting(location: String) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = if req.starts_with("GET /ok") {
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
                        .to_string()
                } else {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                };
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    async fn get(url: &str) -> (Result<StatusOf, StepError>, Vec<SocketAddr>) {
        let leaked = Arc::new(Mutex::new(Vec::new()));
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let names = HashMap::from([
            (
                "metadata.test",
                vec!["169.254.169.254".parse().expect("ip")],
            ),
            ("metadata6.test", vec!["fd00:ec2::254".parse().expect("ip")]),
            (
                "mixed.test",
                vec!["169.254.169.254".parse().expect("ip"), lo],
            ),
            ("loopback.test", vec![lo]),
        ]);
        let resolver = LoopbackOnly {
            guarded: GuardedResolver::new(Arc::new(TestResolver { names })),
            leaked: leaked.clone(),
        };
        let cfg = parse(serde_json::json!({"url": url, "timeout": "5s"})).expect("config");
        let result = super::super::http::run_resolving(cfg, Arc::new(resolver))
            .await
            .map(|o| StatusOf(o.status));
        let leaked = leaked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (result, leaked)
    }

    #[derive(Debug, PartialEq)]
    struct StatusOf(StepStatus);

    fn refused(r: &Result<StatusOf, StepError>) -> bool {
        matches!(r, Err(StepError::Failed(m)) if is_refusal(m))
    }

    #[tokio::test]
    async fn names_that_resolve_to_metadata_addresses_are_refused_before_connecting() {
        let port = redirecting(String::new()).await;
        for name in ["metadata.test", "metadata6.test"] {
            let (r, leaked) = get(&format!("http://{name}:{port}/ok")).await;
            assert!(refused(&r), "{name}: {r:?}");
            assert!(leaked.is_empty(), "{leaked:?}");
        }
        // A name with an allowed address too connects to that one only.
        let (r, leaked) = get(&format!("http://mixed.test:{port}/ok")).await;
        assert_eq!(
            r.expect("mixed.test reaches loopback"),
            StatusOf(StepStatus::Succeeded)
        );
        assert!(leaked.is_empty(), "{leaked:?}");
    }

    #[tokio::test]
    async fn redirects_to_metadata_addresses_are_refused() {
        // fe80::1 without a zone cannot even be connected to, so a broken check fails here
        // locally instead of sending anything.
        for target in [
            "http://[fe80::1]/latest/meta-data/".to_string(),
            "http://metadata.test/latest/meta-data/".to_string(),
        ] {
            let port = redirecting(target.clone()).await;
            let (r, leaked) = get(&format!("http://loopback.test:{port}/start")).await;
            assert!(refused(&r), "redirect to {target}: {r:?}");
            assert!(leaked.is_empty(), "{leaked:?}");
        }
        // The first request's literal address is checked too.
        let (r, _) = get("http://[fe80::1]:9/").await;
        assert!(refused(&r), "{r:?}");
    }

    #[test]
    fn literal_hosts_are_checked_names_are_left_to_the_resolver() {
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(check_url(&url("http://169.254.169.254/latest/meta-data/")).is_err());
        assert!(check_url(&url("http://[fd00:ec2::254]/latest/")).is_err());
        assert!(check_url(&url("http://[::ffff:a9fe:a9fe]/")).is_err());
        assert!(check_url(&url("http://127.0.0.1:8080/")).is_ok());
        assert!(check_url(&url("http://metadata.example/")).is_ok());
    }
}
