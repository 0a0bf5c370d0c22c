use super::*;
use serde_json::json;

use crate::api::{Warehouse, WebhookReceiverConfig};

fn platform(kind: &str) -> Platform {
    Platform::find(kind).expect(kind)
}

#[test]
fn path_is_sha256_of_project_name_and_secret_under_the_type() {
    // sha256("kargo-demo" + "gh-wh-receiver" + "your-secret-here")
    let hash = "4590ee30a06539ca03418680be9f92e63ba2425228cd1eae3ea7e4d638ce61e4";
    for base in ["", "/"] {
        assert_eq!(
            webhook_path(
                base,
                "kargo-demo",
                platform("github"),
                "gh-wh-receiver",
                &["your-secret-here"]
            ),
            format!("/github/{hash}")
        );
    }
    assert_eq!(
        webhook_path(
            "/webhooks/",
            "kargo-demo",
            platform("gitlab"),
            "gh-wh-receiver",
            &["your-secret-here"]
        ),
        format!("/webhooks/gitlab/{hash}")
    );
}

#[test]
fn details_join_the_base_url_origin_and_path() {
    let d = details(
        Some("https://hooks.example.com/kargo/"),
        "kargo-demo",
        "gh-wh-receiver",
        platform("github"),
        "your-secret-here",
    );
    let path = "/kargo/github/4590ee30a06539ca03418680be9f92e63ba2425228cd1eae3ea7e4d638ce61e4";
    assert_eq!(d.path.as_deref(), Some(path));
    assert_eq!(
        d.url.as_deref(),
        Some(format!("https://hooks.example.com{path}").as_str())
    );
    assert_eq!(d.name.as_deref(), Some("gh-wh-receiver"));
    let no_base = details(None, "p", "r", platform("quay"), "s");
    assert_eq!(no_base.url, None);
    assert!(no_base.path.is_some_and(|p| p.starts_with("/quay/")));
    let bare = details(
        Some("http://127.0.0.1:8081"),
        "p",
        "r",
        platform("quay"),
        "s",
    );
    assert!(
        bare.url
            .is_some_and(|u| u.starts_with("http://127.0.0.1:8081/quay/"))
    );
}

#[test]
fn hmac_matches_rfc4231_and_githubs_documented_example() {
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // A key longer than the block size is hashed first (RFC 4231 test case 6).
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // GitHub's "Validating webhook deliveries" example.
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(
        verify_github(Some(sig), b"Hello, World!", b"It's a Secret to Everybody"),
        Ok(())
    );
}

#[test]
fn github_signature_failures_are_401_and_say_nothing_about_the_secret() {
    let body = b"Hello, World!";
    let secret = b"It's a Secret to Everybody";
    assert_eq!(
        verify_github(None, body, secret),
        Err(RequestError::MissingSignature)
    );
    for bad in [
        "sha256=0000000000000000000000000000000000000000000000000000000000000000",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=zz",
        "sha256=757107",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ] {
        let err = verify_github(Some(bad), body, secret).expect_err(bad);
        assert_eq!(err.status(), 401);
        assert!(!err.to_string().contains("Secret"));
    }
    // The body is signed as sent: one changed byte fails.
    let sig = format!("sha256={}", hex(&hmac_sha256(secret, body)));
    assert!(verify_github(Some(&sig), b"Hello, World?", secret).is_err());
}

#[test]
fn gitlab_token_must_match_exactly() {
    assert_eq!(verify_gitlab(Some("s3cret"), b"s3cret"), Ok(()));
    assert_eq!(
        verify_gitlab(Some("s3cre"), b"s3cret"),
        Err(RequestError::Unauthorized)
    );
    assert_eq!(
        verify_gitlab(None, b"s3cret"),
        Err(RequestError::Unauthorized)
    );
    assert!(constant_time_eq(b"", b""));
    assert!(!constant_time_eq(b"a", b""));
}

/// A trimmed GitHub `push` delivery (fields as GitHub documents them).
fn github_push() -> Vec<u8> {
    json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0000000000000000000000000000000000000000",
        "repository": {
            "id": 186853002,
            "name": "kargo-demo",
            "full_name": "Example/kargo-demo",
            "html_url": "https://github.com/Example/kargo-demo",
            "clone_url": "https://github.com/Example/kargo-demo.git",
            "ssh_url": "git@github.com:Example/kargo-demo.git",
            "default_branch": "main"
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "commits": []
    })
    .to_string()
    .into_bytes()
}

#[test]
fn github_push_yields_the_clone_and_ssh_urls_normalised() {
    assert_eq!(
        parse_github("push", &github_push()),
        Ok(Event::Refresh {
            repo_urls: vec![
                "https://github.com/example/kargo-demo".into(),
                "ssh://git@github.com/example/kargo-demo".into(),
            ],
            qualifiers: vec!["refs/heads/main".into()],
            changed_paths: vec![],
        })
    );
}

/// GitHub's `pull_request` event: only `closed` (merged or not) concerns a waiting Promotion.
#[test]
fn github_closed_pull_requests_name_their_page() {
    let body = |action: &str| {
        json!({"action": action, "number": 5, "pull_request": {
            "number": 5, "merged": true,
            "html_url": "https://github.com/example/kargo-demo/pull/5"}})
        .to_string()
        .into_bytes()
    };
    assert_eq!(
        parse_github("pull_request", &body("closed")),
        Ok(Event::PullRequestClosed {
            url: "https://github.com/example/kargo-demo/pull/5".into()
        })
    );
    assert_eq!(
        parse_github("pull_request", &body("synchronize")),
        Ok(Event::Ignored)
    );
}

#[test]
fn github_package_events_yield_the_image_repository() {
    let body = |action: &str, key: &str, package_type: &str| {
        json!({
            "action": action,
            key: {
                "name": "my-app",
                "package_type": package_type,
                "package_version": {
                    "version": "sha256:3da11d",
                    "package_url": "ghcr.io/example/my-app:",
                    "container_metadata": {
                        "tag": {"name": "v1.2.3", "digest": "sha256:3da11d"},
                        "manifest": {"config": {"media_type": "application/vnd.oci.image.config.v1+json"}}
                    }
                }
            }
        })
        .to_string()
        .into_bytes()
    };
    let want = Event::Refresh {
        repo_urls: vec!["ghcr.io/example/my-app".into()],
        qualifiers: vec!["v1.2.3".into()],
        changed_paths: vec![],
    };
    assert_eq!(
        parse_github("package", &body("published", "package", "CONTAINER")),
        Ok(want.clone())
    );
    assert_eq!(
        parse_github(
            "registry_package",
            &body("updated", "registry_package", "container")
        ),
        Ok(want)
    );
    assert_eq!(
        parse_github("package", &body("deleted", "package", "CONTAINER")),
        Ok(Event::Ignored)
    );
    assert_eq!(
        parse_github("package", &body("published", "package", "npm")),
        Ok(Event::Ignored)
    );
    assert_eq!(
        parse_github("package", br#"{"action":"published","package":{}}"#),
        Err(RequestError::InvalidBody)
    );
}

#[test]
fn github_ping_unknown_events_and_bad_bodies() {
    assert_eq!(
        parse_github("ping", br#"{"zen":"Keep it logically awesome."}"#),
        Ok(Event::Ping)
    );
    assert_eq!(
        parse_github("issues", b"{}"),
        Err(RequestError::UnsupportedEvent("issues".into()))
    );
    assert_eq!(
        parse_github("push", b"not json"),
        Err(RequestError::InvalidBody)
    );
    assert_eq!(parse_github("push", b"[]"), Err(RequestError::InvalidBody));
}

#[test]
fn gitlab_push_and_tag_push_yield_http_and_ssh_urls() {
    // Trimmed from GitLab's "Push events" webhook documentation.
    let push = json!({
        "object_kind": "push",
        "ref": "refs/heads/master",
        "project": {"path_with_namespace": "mike/diaspora"},
        "repository": {
            "name": "Diaspora",
            "git_http_url": "http://example.com/mike/diaspora.git",
            "git_ssh_url": "git@example.com:mike/diaspora.git",
            "homepage": "http://example.com/mike/diaspora"
        },
        "total_commits_count": 0,
        "commits": []
    })
    .to_string();
    let want_urls = vec![
        "http://example.com/mike/diaspora".to_string(),
        "ssh://git@example.com/mike/diaspora".to_string(),
    ];
    assert_eq!(
        parse_gitlab("Push Hook", push.as_bytes()),
        Ok(Event::Refresh {
            repo_urls: want_urls.clone(),
            qualifiers: vec!["refs/heads/master".into()],
            changed_paths: vec![],
        })
    );
    let tag = push.replace("refs/heads/master", "refs/tags/v1.0.0");
    assert_eq!(
        parse_gitlab("Tag Push Hook", tag.as_bytes()),
        Ok(Event::Refresh {
            repo_urls: want_urls,
            qualifiers: vec!["refs/tags/v1.0.0".into()],
            changed_paths: vec![],
        })
    );
    assert_eq!(
        parse_gitlab("Merge Request Hook", b"{}"),
        Ok(Event::Ignored)
    );
    let merged = br#"{"object_kind": "merge_request", "object_attributes": {"iid": 4, "action": "merge", "url": "https://gitlab.com/g/sub/r/-/merge_requests/4"}}"#;
    assert_eq!(
        parse_gitlab("Merge Request Hook", merged),
        Ok(Event::PullRequestClosed {
            url: "https://gitlab.com/g/sub/r/-/merge_requests/4".into()
        })
    );
    let opened = br#"{"object_kind": "merge_request", "object_attributes": {"iid": 4, "action": "open", "url": "https://gitlab.com/g/sub/r/-/merge_requests/4"}}"#;
    assert_eq!(
        parse_gitlab("Merge Request Hook", opened),
        Ok(Event::Ignored)
    );
    assert!(matches!(
        parse_gitlab("Issue Hook", b"{}"),
        Err(RequestError::UnsupportedEvent(_))
    ));
}

#[test]
fn quay_and_dockerhub_pushes_yield_image_repositories() {
    // Quay's "Repository Push" notification.
    let quay = json!({
        "repository": "mynamespace/repository",
        "namespace": "mynamespace",
        "name": "repository",
        "docker_url": "quay.io/mynamespace/repository",
        "homepage": "https://quay.io/repository/mynamespace/repository",
        "updated_tags": ["latest", "v2"]
    })
    .to_string();
    assert_eq!(
        parse_quay(quay.as_bytes()),
        Ok(Event::Refresh {
            repo_urls: vec!["quay.io/mynamespace/repository".into()],
            qualifiers: vec!["latest".into(), "v2".into()],
            changed_paths: vec![],
        })
    );
    // Docker Hub's push notification; official images lose the library/ prefix.
    let hub = |repo: &str| {
        json!({
            "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
            "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
            "repository": {"repo_name": repo, "namespace": "svendowideit", "name": "testhook"}
        })
        .to_string()
    };
    assert_eq!(
        parse_dockerhub(hub("svendowideit/testhook").as_bytes()),
        Ok(Event::Refresh {
            repo_urls: vec!["svendowideit/testhook".into()],
            qualifiers: vec!["latest".into()],
            changed_paths: vec![],
        })
    );
    assert_eq!(
        parse_dockerhub(hub("library/nginx").as_bytes()),
        Ok(Event::Refresh {
            repo_urls: vec!["nginx".into()],
            qualifiers: vec!["latest".into()],
            changed_paths: vec![],
        })
    );
    assert_eq!(parse_quay(b"{"), Err(RequestError::InvalidBody));
}

fn warehouse(name: &str, subscriptions: Value) -> Warehouse {
    serde_json::from_value(json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": name, "namespace": "kargo-demo"},
        "spec": {"subscriptions": subscriptions},
    }))
    .expect("warehouse")
}

#[test]
fn warehouses_match_by_normalised_subscription_url() {
    let ws = [
        warehouse(
            "git-https",
            json!([{"git": {"repoURL": "https://GitHub.com/Example/kargo-demo"}}]),
        ),
        warehouse(
            "git-ssh",
            json!([{"git": {"repoURL": "git@github.com:example/kargo-demo.git"}}]),
        ),
        warehouse(
            "other-git",
            json!([{"git": {"repoURL": "https://github.com/example/other.git"}}]),
        ),
        warehouse(
            "image",
            json!([
                {"git": {"repoURL": "https://github.com/example/unrelated"}},
                {"image": {"repoURL": "docker.io/library/nginx"}}
            ]),
        ),
        warehouse(
            "chart",
            json!([{"chart": {"repoURL": "oci://GHCR.io/example/my-app"}}]),
        ),
    ];
    let Ok(Event::Refresh { repo_urls, .. }) = parse_github("push", &github_push()) else {
        panic!("push");
    };
    let any = |repo_urls: &[String]| {
        ws.iter()
            .filter(|w| subscribes_to(w, repo_urls))
            .filter_map(|w| w.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(any(&repo_urls), vec!["git-https", "git-ssh"]);
    assert_eq!(any(&["nginx".to_string()]), vec!["image"]);
    assert_eq!(
        any(&image_repo_urls("ghcr.io/example/my-app")),
        vec!["chart"]
    );
    assert!(any(&[]).is_empty());
}

#[test]
fn platform_of_accepts_exactly_one_supported_platform() {
    let cfg = |v: Value| -> WebhookReceiverConfig { serde_json::from_value(v).expect("cfg") };
    let (p, s) = platform_of(&cfg(
        json!({"name": "r", "github": {"secretRef": {"name": "s"}}}),
    ))
    .map(|(p, s)| (p, s.name.clone()))
    .expect("github");
    assert_eq!((p, s.as_str()), (platform("github"), "s"));
    assert_eq!(platform("gitlab").secret_key(), "secret-token");
    assert_eq!(platform("github").secret_key(), "secret");
    for (kind, key) in [
        ("gitea", "secret"),
        ("bitbucket", "secret"),
        ("azure", "secret"),
        ("harbor", "auth-header"),
        ("artifactory", "secret-token"),
        ("generic", "secret"),
    ] {
        let c = cfg(json!({"name": "r", kind: {"secretRef": {"name": "s"}}}));
        let (p, s) = platform_of(&c).expect(kind);
        assert_eq!(
            (p.as_str(), p.secret_key(), s.name.as_str()),
            (kind, key, "s")
        );
    }
    assert!(matches!(
        platform_of(&cfg(json!({"name": "r"}))),
        Err(ConfigError::NoPlatform { .. })
    ));
    assert!(matches!(
        platform_of(&cfg(json!({
            "name": "r",
            "github": {"secretRef": {"name": "s"}},
            "quay": {"secretRef": {"name": "s"}}
        }))),
        Err(ConfigError::ManyPlatforms { .. })
    ));
    assert!(matches!(
        platform_of(&cfg(json!({"github": {"secretRef": {"name": "s"}}}))),
        Err(ConfigError::NoName { .. })
    ));
}

#[test]
fn github_and_gitlab_pushes_name_the_changed_files_unless_truncated() {
    let github = json!({
        "ref": "refs/heads/main",
        "repository": {"clone_url": "https://github.com/example/app.git"},
        "commits": [{"added": ["apps/a.yaml"], "modified": [], "removed": ["old.txt"]}],
        "head_commit": {"added": [], "modified": ["apps/b.yaml"], "removed": []}
    })
    .to_string();
    let Ok(Event::Refresh { changed_paths, .. }) = parse_github("push", github.as_bytes()) else {
        panic!("push");
    };
    assert_eq!(changed_paths, ["apps/a.yaml", "apps/b.yaml", "old.txt"]);

    let gitlab = |total: u64| {
        json!({
            "ref": "refs/heads/main",
            "repository": {"git_http_url": "https://gitlab.com/example/app.git"},
            "commits": [{"added": ["apps/a.yaml"], "modified": [], "removed": []}],
            "total_commits_count": total
        })
        .to_string()
    };
    let paths = |event: &str, body: String| match parse_gitlab(event, body.as_bytes()) {
        Ok(Event::Refresh { changed_paths, .. }) => changed_paths,
        other => panic!("{other:?}"),
    };
    assert_eq!(paths("Push Hook", gitlab(1)), ["apps/a.yaml"]);
    // 30 commits pushed, 1 listed: anything may have changed.
    assert!(paths("Push Hook", gitlab(30)).is_empty());
    assert!(paths("Tag Push Hook", gitlab(1)).is_empty());
}
