//! Kargo's Freight naming algorithm, reproduced so the same artifacts get the same name in haul
//! and in Kargo: SHA-1 over the origin and the sorted artifact identities.

use sha1::{Digest, Sha1};

use crate::api::Freight;
use crate::urls::{normalize_chart, normalize_git};

/// The name of a Freight with these artifacts and origin (40 lowercase hex characters).
pub fn freight_id(f: &Freight) -> String {
    let mut parts: Vec<String> =
        Vec::with_capacity(f.commits.len() + f.images.len() + f.charts.len() + f.artifacts.len());
    for c in &f.commits {
        let repo = normalize_git(c.repo_url.as_deref().unwrap_or_default());
        let id = c.id.as_deref().unwrap_or_default();
        // A tag is part of the identity: re-tagging a commit must produce new Freight.
        parts.push(match c.tag.as_deref().filter(|t| !t.is_empty()) {
            Some(tag) => format!("{repo}:{tag}:{id}"),
            None => format!("{repo}:{id}"),
        });
    }
    for i in &f.images {
        // Both tag and digest: a mutable tag moving, or a digest re-tagged, is new Freight.
        parts.push(format!(
            "{}:{}@{}",
            i.repo_url.as_deref().unwrap_or_default(),
            i.tag.as_deref().unwrap_or_default(),
            i.digest.as_deref().unwrap_or_default()
        ));
    }
    for h in &f.charts {
        let repo = normalize_chart(h.repo_url.as_deref().unwrap_or_default());
        let name = h.name.as_deref().unwrap_or_default();
        parts.push(format!(
            "{}:{}",
            path_join(&repo, name),
            h.version.as_deref().unwrap_or_default()
        ));
    }
    for a in &f.artifacts {
        parts.push(format!(
            "{}:{}:{}",
            a.artifact_type.as_deref().unwrap_or_default(),
            a.subscription_name,
            a.version
        ));
    }
    parts.sort();
    let input = format!("{}:{}", f.origin, parts.join("|"));
    let digest = Sha1::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Go's `path.Join(a, b)`: the non-empty elements joined with `/`, then `path.Clean`ed. Kargo
/// relies on it for charts, so an HTTP(S) repository hashes as `https:/host/path/name` (Clean
/// folds the `//`), and haul must do the same to name Freight as Kargo does.
fn path_join(a: &str, b: &str) -> String {
    let joined = match (a.is_empty(), b.is_empty()) {
        (true, true) => return String::new(),
        (true, false) => b.to_string(),
        (false, true) => a.to_string(),
        (false, false) => format!("{a}/{b}"),
    };
    go_path_clean(&joined)
}

/// Go's `path.Clean`: one `/` between elements, `.` removed, `..` folded, no trailing `/`.
fn go_path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{FreightOrigin, GitCommit, Image};

    fn image(repo: &str, tag: &str, digest: &str) -> Image {
        serde_json::from_value(serde_json::json!({"repoURL": repo, "tag": tag, "digest": digest}))
            .expect("image")
    }

    #[test]
    fn name_is_sha1_of_origin_and_sorted_parts() {
        let mut f = Freight::new("", FreightOrigin::warehouse("my-app"));
        f.images = vec![image(
            "123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app",
            "1006",
            "sha256:abc",
        )];
        // sha1("Warehouse/my-app:123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1006@sha256:abc")
        let expected = {
            let d = Sha1::digest(
                b"Warehouse/my-app:123456789012.dkr.ecr.eu-central-1.amazonaws.com/my-app:1006@sha256:abc",
            );
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        assert_eq!(freight_id(&f), expected);
        assert_eq!(freight_id(&f).len(), 40);
    }

    #[test]
    fn order_of_artifacts_does_not_matter_but_content_does() {
        let mut a = Freight::new("", FreightOrigin::warehouse("w"));
        a.images = vec![image("r1", "1", "sha256:1"), image("r2", "2", "sha256:2")];
        let mut b = a.clone();
        b.images.reverse();
        assert_eq!(freight_id(&a), freight_id(&b));
        let mut c = a.clone();
        c.images[0].digest = Some("sha256:moved".into());
        assert_ne!(freight_id(&a), freight_id(&c));
        let mut d = a.clone();
        d.origin = FreightOrigin::warehouse("other");
        assert_ne!(freight_id(&a), freight_id(&d));
    }

    fn sha1_hex(s: &str) -> String {
        Sha1::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn charts_hash_like_kargo_path_join() {
        let chart = |url: &str, name: Option<&str>, v: &str| -> crate::api::Chart {
            serde_json::from_value(serde_json::json!({"repoURL": url, "name": name, "version": v}))
                .expect("chart")
        };
        let mut f = Freight::new("", FreightOrigin::warehouse("w"));
        // OCI: oci:// dropped, lower-cased, empty name ignored by path.Join.
        f.charts = vec![chart("oci://GHCR.io/Acme/charts/api", None, "1.2.3")];
        assert_eq!(
            freight_id(&f),
            sha1_hex("Warehouse/w:ghcr.io/acme/charts/api:1.2.3")
        );
        // HTTP(S): Go's path.Clean folds "https://" to "https:/" and drops a trailing "/".
        f.charts = vec![chart(
            "https://Charts.example.com/stable/",
            Some("web"),
            "2.0.0",
        )];
        assert_eq!(
            freight_id(&f),
            sha1_hex("Warehouse/w:https:/charts.example.com/stable/web:2.0.0")
        );
        // Sorted together with the other artifacts.
        f.images = vec![image("r", "1", "sha256:1")];
        assert_eq!(
            freight_id(&f),
            sha1_hex("Warehouse/w:https:/charts.example.com/stable/web:2.0.0|r:1@sha256:1")
        );
    }

    #[test]
    fn go_path_clean_cases() {
        for (input, want) in [
            ("a//b/./c/", "a/b/c"),
            ("https://x/y", "https:/x/y"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("", "."),
        ] {
            assert_eq!(go_path_clean(input), want, "{input}");
        }
    }

    #[test]
    fn git_urls_are_normalised_and_tags_count() {
        let commit = |url: &str, tag: Option<&str>| -> GitCommit {
            serde_json::from_value(serde_json::json!({"repoURL": url, "id": "abc123", "tag": tag}))
                .expect("commit")
        };
        let mut a = Freight::new("", FreightOrigin::warehouse("w"));
        a.commits = vec![commit("https://GitHub.com/x/y.git", None)];
        let mut b = a.clone();
        b.commits = vec![commit("https://github.com/x/y", None)];
        assert_eq!(freight_id(&a), freight_id(&b));
        let mut c = a.clone();
        c.commits = vec![commit("https://github.com/x/y", Some("v1.0.0"))];
        assert_ne!(freight_id(&a), freight_id(&c));
    }
}
