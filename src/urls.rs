//! Canonical forms of repository URLs, as Kargo computes them, so Freight names and credential
//! lookups agree with Kargo's for the same inputs.

/// Git URLs: lower-cased, no user info for http(s), no trailing `/` or `.git`; SCP-style
/// `[user@]host:path` becomes `ssh://[user@]host/path`. Unparseable input is returned as is.
/// One implementation serves Freight names, credential matching and the git cache:
/// [`crate::git::normalize_url`] (it also drops an ssh password and keeps `file://` paths'
/// case, which Kargo does not; neither appears in a Freight's repository URL in practice).
pub fn normalize_git(repo: &str) -> String {
    crate::git::normalize_url(repo)
}

/// Image repositories: Docker Hub's `docker.io/` / `index.docker.io/` host and `library/`
/// prefix are dropped; other registries keep `host/repo`. A tag or digest is removed.
pub fn normalize_image(repo: &str) -> String {
    let without_digest = repo.split('@').next().unwrap_or(repo);
    // A tag is a ':' after the last '/', so a registry port is not mistaken for one.
    let without_tag = match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    };
    let (registry, path) = match without_tag.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => ("index.docker.io".to_string(), without_tag.to_string()),
    };
    let registry = if registry == "docker.io" {
        "index.docker.io".to_string()
    } else {
        registry
    };
    if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        return path.strip_prefix("library/").unwrap_or(&path).to_string();
    }
    format!("{registry}/{path}")
}

/// Chart repositories: lower-cased, `oci://` removed, then normalised as an image repository.
pub fn normalize_chart(repo: &str) -> String {
    let lower = repo.trim().to_lowercase();
    normalize_image(lower.strip_prefix("oci://").unwrap_or(&lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_normalise_like_kargo() {
        for (input, want) in [
            (
                "https://github.com/Akuity/Kargo.git/",
                "https://github.com/akuity/kargo",
            ),
            (
                "https://user:pass@git.example.com/repo.git",
                "https://git.example.com/repo",
            ),
            (
                "git@github.com:akuity/kargo.git",
                "ssh://git@github.com/akuity/kargo",
            ),
            (
                "ssh://git@github.com/akuity/kargo.git",
                "ssh://git@github.com/akuity/kargo",
            ),
            (
                "http://127.0.0.1:8080/gitops.git",
                "http://127.0.0.1:8080/gitops",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(normalize_git(input), want, "{input}");
        }
    }

    #[test]
    fn image_and_chart_urls_normalise_like_kargo() {
        for (input, want) in [
            ("nginx", "nginx"),
            ("docker.io/library/nginx", "nginx"),
            ("index.docker.io/bitnami/redis", "bitnami/redis"),
            (
                "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app",
                "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app",
            ),
            ("127.0.0.1:5000/team/app:1.0", "127.0.0.1:5000/team/app"),
            ("ghcr.io/a/b@sha256:abc", "ghcr.io/a/b"),
        ] {
            assert_eq!(normalize_image(input), want, "{input}");
        }
        assert_eq!(
            normalize_chart("oci://GHCR.io/Charts/App"),
            "ghcr.io/charts/app"
        );
    }
}
