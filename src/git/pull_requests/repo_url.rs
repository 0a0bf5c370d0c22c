//! The parts of a repository URL a provider's API address is built from.

/// `https://host[:port]/a/b/c(.git)`, `ssh://git@host/a/b` or `git@host:a/b`.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoUrl {
    /// `http` or `https` (SSH URLs use `https` for the API).
    pub scheme: String,
    /// The host name, lower-cased, without port.
    pub host: String,
    /// Host and port, as the API is reached (the port only for http(s) URLs).
    pub authority: String,
    /// The path segments, without a trailing `.git`.
    pub segments: Vec<String>,
}

impl RepoUrl {
    pub fn parse(repo_url: &str) -> Result<Self, String> {
        let (scheme, authority, path) = if let Some((scheme, rest)) = repo_url.split_once("://") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            match scheme {
                "http" | "https" => (scheme.to_string(), authority.to_string(), path),
                // The API of an SSH-cloned repository is still HTTPS, on the same host.
                "ssh" | "git" => {
                    let host = authority.split(':').next().unwrap_or(authority);
                    ("https".to_string(), host.to_string(), path)
                }
                other => return Err(format!("unsupported scheme {other:?}")),
            }
        } else if let Some((user_host, path)) = repo_url.split_once(':') {
            // SCP-like: git@host:owner/repo.git
            let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
            ("https".to_string(), host.to_string(), path)
        } else {
            return Err("not an http(s) or SSH URL".into());
        };
        let host = authority
            .split(':')
            .next()
            .unwrap_or(&authority)
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err("no host".into());
        }
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Self {
            scheme,
            host,
            authority: authority.to_ascii_lowercase(),
            segments,
        })
    }

    /// `scheme://authority`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// Exactly `owner/repo` (GitHub, Gitea, Bitbucket).
    pub fn owner_and_repo(&self) -> Result<(String, String), String> {
        match self.segments.as_slice() {
            [owner, repo] => Ok((owner.clone(), repo.clone())),
            _ => Err("expected exactly <owner>/<repository> after the host".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_https_ssh_and_scp_forms() {
        let u = RepoUrl::parse("https://user@GitLab.example.com:8443/g/sub/r.git").expect("url");
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.authority.as_str()),
            ("https", "gitlab.example.com", "gitlab.example.com:8443")
        );
        assert_eq!(u.segments, ["g", "sub", "r"]);
        let u = RepoUrl::parse("git@github.com:o/r.git").expect("scp");
        assert_eq!(
            (u.origin(), u.segments),
            ("https://github.com".into(), vec!["o".into(), "r".into()])
        );
        let u = RepoUrl::parse("ssh://git@github.com:22/o/r").expect("ssh");
        assert_eq!(u.origin(), "https://github.com");
        assert!(RepoUrl::parse("file:///tmp/r").is_err());
    }
}
