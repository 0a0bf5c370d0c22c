//! Unit tests of the gitea, bitbucket, azure, harbor and artifactory receivers through the
//! registry, as the server calls them: headers, body and secret in, an `Event` or a refusal out.
//! Payloads are Kargo's test vectors and the vendors' documented examples.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::registry::Request;
use super::{Event, Platform, RequestError, hex, hmac_sha256};
use crate::api::WebhookReceiverConfig;

const SECRET: &str = "mysupersecrettoken";

fn deliver(
    kind: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    config: Value,
) -> Result<Event, RequestError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    let config: WebhookReceiverConfig = serde_json::from_value(config).expect("config");
    Platform::find(kind).expect(kind).handle(Request {
        headers: &map,
        query: "",
        body,
        secret: SECRET.as_bytes(),
        config: &config,
    })
}

fn no_config() -> Value {
    json!({"name": "r"})
}

fn sign(body: &[u8]) -> String {
    hex(&hmac_sha256(SECRET.as_bytes(), body))
}

fn refresh(urls: &[&str], qualifiers: &[&str], paths: &[&str]) -> Result<Event, RequestError> {
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(Event::Refresh {
        repo_urls: v(urls),
        qualifiers: v(qualifiers),
        changed_paths: v(paths),
    })
}

// --------------------------------------------------------------------------------------- Gitea

/// Kargo's `giteaWebhookRequestBodyPushWithCommits`.
const GITEA_PUSH: &str = r#"{
    "ref": "refs/heads/main",
    "repository": {"clone_url": "https://gitea.com/example/repo.git"},
    "commits": [{
        "added": ["apps/foo/values.yaml"],
        "modified": ["apps/foo/deployment.yaml"],
        "removed": []
    }]
}"#;

#[test]
fn gitea_push_signed_either_way_gitea_1_24_signs() {
    let body = GITEA_PUSH.as_bytes();
    let want = refresh(
        &["https://gitea.com/example/repo"],
        &["refs/heads/main"],
        &["apps/foo/deployment.yaml", "apps/foo/values.yaml"],
    );
    // Gitea sends both headers; Kargo checks X-Hub-Signature-256.
    let hub = format!("sha256={}", sign(body));
    let bare = sign(body);
    let both = [
        ("X-Gitea-Event", "push"),
        ("X-Gitea-Signature", bare.as_str()),
        ("X-Hub-Signature-256", hub.as_str()),
    ];
    assert_eq!(deliver("gitea", &both, body, no_config()), want);
    assert_eq!(deliver("gitea", &both[..2], body, no_config()), want);
    assert_eq!(
        deliver("gitea", &[both[0], both[2]], body, no_config()),
        want
    );
}

#[test]
fn gitea_bad_and_missing_signatures_are_refused() {
    let body = GITEA_PUSH.as_bytes();
    assert_eq!(
        deliver("gitea", &[("X-Gitea-Event", "push")], body, no_config()),
        Err(RequestError::MissingSignature)
    );
    let other = hex(&hmac_sha256(b"not the secret", body));
    for headers in [
        [
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Signature", other.as_str()),
        ],
        [
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Signature", "totally-invalid-signature"),
        ],
        [
            ("X-Gitea-Event", "push"),
            ("X-Hub-Signature-256", &format!("sha256={other}")),
        ],
    ] {
        let err = deliver("gitea", &headers, body, no_config()).expect_err("refused");
        assert_eq!(
            (err.clone(), err.status()),
            (RequestError::Unauthorized, 401)
        );
    }
    // A wrong X-Hub-Signature-256 is not rescued by a right X-Gitea-Signature.
    assert_eq!(
        deliver(
            "gitea",
            &[
                ("X-Gitea-Event", "push"),
                ("X-Hub-Signature-256", &format!("sha256={other}")),
                ("X-Gitea-Signature", &sign(body)),
            ],
            body,
            no_config()
        ),
        Err(RequestError::Unauthorized)
    );
}

#[test]
fn gitea_truncated_commits_tags_pull_requests_and_unknown_events() {
    // Kargo's `giteaWebhookRequestBodyPushTruncated`: 25 commits, one sent, so no path filter.
    let truncated = br#"{
        "ref": "refs/tags/v1.2.0",
        "repository": {"clone_url": "https://gitea.com/example/repo.git",
                       "ssh_url": "git@gitea.com:example/repo.git"},
        "commits": [{"added": ["apps/bar/values.yaml"], "modified": [], "removed": []}],
        "total_commits": 25
    }"#;
    let signed = |event: &'static str, body: &[u8]| {
        deliver(
            "gitea",
            &[("X-Gitea-Event", event), ("X-Gitea-Signature", &sign(body))],
            body,
            no_config(),
        )
    };
    assert_eq!(
        signed("push", truncated),
        refresh(
            &[
                "https://gitea.com/example/repo",
                "ssh://git@gitea.com/example/repo"
            ],
            &["refs/tags/v1.2.0"],
            &[]
        )
    );
    let pr = br#"{"action": "closed", "pull_request": {"html_url": "https://gitea.com/example/repo/pulls/1"}}"#;
    assert_eq!(
        signed("pull_request", pr),
        Ok(Event::PullRequestClosed {
            url: "https://gitea.com/example/repo/pulls/1".into()
        })
    );
    let opened = br#"{"action": "opened", "pull_request": {"html_url": "https://gitea.com/example/repo/pulls/1"}}"#;
    assert_eq!(signed("pull_request", opened), Ok(Event::Ignored));
    assert_eq!(
        signed("issues", pr),
        Err(RequestError::UnsupportedEvent("issues".into()))
    );
    assert_eq!(
        signed("push", b"invalid json"),
        Err(RequestError::InvalidBody)
    );
}

// ----------------------------------------------------------------------------------- Bitbucket

/// Kargo's Bitbucket Cloud push: bare branch names in `push.changes[].new`.
const BITBUCKET_CLOUD_PUSH: &str = r#"{
    "actor": {"name": "admin", "emailAddress": "admin@example.com"},
    "push": {"changes": [
        {"new": {"type": "branch", "name": "main"}},
        {"new": {"type": "tag", "name": "v1.0.0"}},
        {"new": null, "old": {"type": "branch", "name": "gone"}}
    ]},
    "repository": {"links": {"html": {"href": "https://bitbucket.org/example/repo"}}}
}"#;

/// Kargo's Bitbucket Data Center `repo:refs_changed`.
const BITBUCKET_SERVER_PUSH: &str = r#"{
    "actor": {"name": "admin", "emailAddress": "admin@example.com"},
    "changes": [{"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"}}],
    "repository": {"links": {"clone": [
        {"name": "http", "href": "https://example.org/bitbucket/scm/example/repo.git"},
        {"name": "ssh", "href": "ssh://git@bitbucket.example.org:7999/example/repo.git"}
    ]}}
}"#;

fn bitbucket(event: &str, signature: Option<&str>, body: &[u8]) -> Result<Event, RequestError> {
    let mut headers = vec![("X-Event-Key", event)];
    headers.extend(signature.map(|s| ("X-Hub-Signature", s)));
    deliver("bitbucket", &headers, body, no_config())
}

#[test]
fn bitbucket_cloud_and_server_pushes_yield_refs() {
    let cloud = BITBUCKET_CLOUD_PUSH.as_bytes();
    assert_eq!(
        bitbucket("repo:push", Some(&format!("sha256={}", sign(cloud))), cloud),
        refresh(
            &["https://bitbucket.org/example/repo"],
            &["refs/heads/main", "refs/tags/v1.0.0"],
            &[]
        )
    );
    let server = BITBUCKET_SERVER_PUSH.as_bytes();
    assert_eq!(
        bitbucket(
            "repo:refs_changed",
            Some(&format!("sha256={}", sign(server))),
            server
        ),
        refresh(
            &[
                "https://example.org/bitbucket/scm/example/repo",
                "ssh://git@bitbucket.example.org:7999/example/repo"
            ],
            &["refs/heads/main"],
            &[]
        )
    );
    let pr = br#"{"pullrequest": {"links": {"html": {"href": "https://bitbucket.org/example/repo/pull-requests/42"}}}}"#;
    assert_eq!(
        bitbucket(
            "pullrequest:fulfilled",
            Some(&format!("sha256={}", sign(pr))),
            pr
        ),
        Ok(Event::PullRequestClosed {
            url: "https://bitbucket.org/example/repo/pull-requests/42".into()
        })
    );
    let server = br#"{"pullRequest": {"links": {"self": [{"href": "https://bitbucket.example.com/projects/P/repos/r/pull-requests/3"}]}}}"#;
    assert_eq!(
        bitbucket(
            "pr:declined",
            Some(&format!("sha256={}", sign(server))),
            server
        ),
        Ok(Event::PullRequestClosed {
            url: "https://bitbucket.example.com/projects/P/repos/r/pull-requests/3".into()
        })
    );
}

#[test]
fn bitbucket_refuses_bad_signatures_and_unknown_events_first() {
    let body = BITBUCKET_CLOUD_PUSH.as_bytes();
    assert_eq!(
        bitbucket("repo:push", None, body),
        Err(RequestError::MissingSignature)
    );
    for bad in [
        "totally-invalid-signature".to_string(),
        sign(body), // no sha256= prefix
        format!("sha256={}", hex(&hmac_sha256(b"other", body))),
    ] {
        assert_eq!(
            bitbucket("repo:push", Some(&bad), body),
            Err(RequestError::Unauthorized)
        );
    }
    // As Kargo: the event is checked before the signature.
    assert_eq!(
        bitbucket("nonsense", None, body),
        Err(RequestError::UnsupportedEvent("nonsense".into()))
    );
}

// --------------------------------------------------------------------------------------- Azure

/// Kargo's ACR push payload (`newAzurePayload`).
fn acr(action: &str, media_type: &str) -> Vec<u8> {
    json!({
        "id": "b7cc4a5e-64ef-4d9d-8e1c-9b5fbd8e8c1d",
        "timestamp": "2023-04-05T12:34:56.789Z",
        "action": action,
        "target": {
            "mediaType": media_type,
            "size": 1234,
            "digest": "sha256:abc123",
            "repository": "fakeimage",
            "tag": "1.0.0"
        },
        "request": {"id": "x", "host": "fakeregistry.azurecr.io", "method": "PUT", "useragent": "docker"}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn azure_container_registry_pushes_by_media_type() {
    let ua = [("User-Agent", "AzureContainerRegistry/1.0")];
    assert_eq!(
        deliver(
            "azure",
            &ua,
            &acr(
                "push",
                "application/vnd.docker.distribution.manifest.v2+json"
            ),
            no_config()
        ),
        refresh(&["fakeregistry.azurecr.io/fakeimage"], &["1.0.0"], &[])
    );
    // Helm's config media type: a chart only.
    assert_eq!(
        deliver(
            "azure",
            &ua,
            &acr("push", "application/vnd.cncf.helm.config.v1+json"),
            no_config()
        ),
        refresh(&["fakeregistry.azurecr.io/fakeimage"], &["1.0.0"], &[])
    );
    assert_eq!(
        deliver(
            "azure",
            &ua,
            &acr(
                "ping",
                "application/vnd.docker.distribution.manifest.v2+json"
            ),
            no_config()
        ),
        Ok(Event::Ping)
    );
    assert_eq!(
        deliver("azure", &ua, &acr("delete", ""), no_config()),
        Err(RequestError::UnsupportedEvent("delete".into()))
    );
    assert_eq!(
        deliver(
            "azure",
            &[("User-Agent", "invalid-user-agent")],
            &acr("push", ""),
            no_config()
        ),
        Err(RequestError::UnsupportedSender)
    );
    assert_eq!(
        deliver("azure", &[], &acr("push", ""), no_config()).map_err(|e| e.status()),
        Err(400)
    );
}

#[test]
fn azure_devops_git_pushes_and_pull_requests() {
    // Trimmed from Azure DevOps' documented `git.push` service hook (and Kargo's test).
    let push = json!({
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "eventType": "git.push",
        "resource": {
            "refUpdates": [{"name": "refs/heads/main", "oldObjectId": "aad331d8", "newObjectId": "33b55f7c"}],
            "repository": {
                "name": "testrepo",
                "remoteUrl": "https://dev.azure.com/testorg/testproject/_git/testrepo"
            }
        }
    })
    .to_string();
    let ua = [("User-Agent", "VSServices/16.255.0.0")];
    assert_eq!(
        deliver("azure", &ua, push.as_bytes(), no_config()),
        refresh(
            &["https://dev.azure.com/testorg/testproject/_git/testrepo"],
            &["refs/heads/main"],
            &[]
        )
    );
    let merged = br#"{"eventType": "git.pullrequest.merged", "resource": {"_links": {"web": {"href": "https://dev.azure.com/o/p/_git/r/pullrequest/1"}}}}"#;
    let pr_url = "https://dev.azure.com/o/p/_git/r/pullrequest/1";
    assert_eq!(
        deliver("azure", &ua, merged, no_config()),
        Ok(Event::PullRequestClosed { url: pr_url.into() })
    );
    let abandoned = br#"{"eventType": "git.pullrequest.updated", "resource": {"status": "abandoned", "_links": {"web": {"href": "https://dev.azure.com/o/p/_git/r/pullrequest/1"}}}}"#;
    assert_eq!(
        deliver("azure", &ua, abandoned, no_config()),
        Ok(Event::PullRequestClosed { url: pr_url.into() })
    );
    let updated = br#"{"eventType": "git.pullrequest.updated", "resource": {"status": "active", "_links": {"web": {"href": "https://dev.azure.com/o/p/_git/r/pullrequest/1"}}}}"#;
    assert_eq!(
        deliver("azure", &ua, updated, no_config()),
        Ok(Event::Ignored)
    );
    assert_eq!(
        deliver(
            "azure",
            &ua,
            br#"{"eventType": "build.complete"}"#,
            no_config()
        ),
        Err(RequestError::UnsupportedEvent("build.complete".into()))
    );
}

// -------------------------------------------------------------------------------------- Harbor

/// Kargo's `validPushArtifactEventMultipleResources`, with the fields Harbor's documentation
/// shows around them.
const HARBOR_PUSH: &str = r#"{
    "type": "PUSH_ARTIFACT",
    "occur_at": 1680501893,
    "operator": "harbor-jobservice",
    "event_data": {
        "resources": [
            {"digest": "sha256:954b378c", "tag": "v1.0.0",
             "resource_url": "harbor.example.com/library/alpine:v1.0.0"},
            {"digest": "sha256:954b378d", "tag": "v1.1.0",
             "resource_url": "harbor.example.com/library/alpine:v1.1.0"}
        ],
        "repository": {"name": "alpine", "namespace": "library",
                       "repo_full_name": "library/alpine", "repo_type": "public"}
    }
}"#;

#[test]
fn harbor_push_artifact_with_the_auth_header() {
    let body = HARBOR_PUSH.as_bytes();
    assert_eq!(
        deliver("harbor", &[("Authorization", SECRET)], body, no_config()),
        refresh(
            &["harbor.example.com/library/alpine"],
            &["v1.0.0", "v1.1.0"],
            &[]
        )
    );
    assert_eq!(
        deliver("harbor", &[], body, no_config()),
        Err(RequestError::MissingAuthorization)
    );
    assert_eq!(
        deliver(
            "harbor",
            &[("Authorization", "Bearer nope")],
            body,
            no_config()
        ),
        Err(RequestError::Unauthorized)
    );
    let scan = br#"{"type": "SCANNING_COMPLETED", "event_data": {}}"#;
    assert_eq!(
        deliver("harbor", &[("Authorization", SECRET)], scan, no_config()),
        Err(RequestError::UnsupportedEvent("SCANNING_COMPLETED".into()))
    );
    assert_eq!(
        deliver("harbor", &[("Authorization", SECRET)], b"{", no_config()),
        Err(RequestError::InvalidBody)
    );
    assert_eq!(
        Platform::find("harbor").map(|p| p.secret_key()),
        Some("auth-header")
    );
}

// --------------------------------------------------------------------------------- Artifactory

/// Kargo's `validImagePushEvent`, as JFrog documents the `docker` domain's `pushed` event.
fn artifactory_push(image_type: &str, path: &str) -> Vec<u8> {
    json!({
        "domain": "docker",
        "event_type": "pushed",
        "data": {
            "repo_key": "test-repo",
            "event_type": "pushed",
            "path": path,
            "name": "manifest.json",
            "sha256": "35c2f0f2c4c0c9e2ae7b0d4e0c5f5e6f",
            "size": 1200,
            "image_name": "test-image",
            "tag": "v1.0.0",
            "image_type": image_type
        },
        "subscription_key": "kargo",
        "jpd_origin": "https://artifactory.example.com",
        "source": "jfrog/user@example.com"
    })
    .to_string()
    .into_bytes()
}

#[test]
fn artifactory_images_and_charts_signed_with_secret_token() {
    let image = artifactory_push("docker", "foo/bar/test-image/latest/manifest.json");
    let signed = |body: &[u8], config: Value| {
        deliver(
            "artifactory",
            &[("X-Jfrog-Event-Auth", &sign(body))],
            body,
            config,
        )
    };
    assert_eq!(
        signed(&image, no_config()),
        refresh(
            &["artifactory.example.com/test-repo/foo/bar/test-image"],
            &["v1.0.0"],
            &[]
        )
    );
    let chart = artifactory_push("oci", "foo/bar/test-chart/latest/chart.tgz");
    let virtual_repo = json!({"name": "r", "artifactory": {
        "secretRef": {"name": "s"}, "virtualRepoName": "virtual-test-repo"}});
    assert_eq!(
        signed(&chart, virtual_repo),
        refresh(
            &["artifactory.example.com/virtual-test-repo/foo/bar/test-chart"],
            &["v1.0.0"],
            &[]
        )
    );
    assert_eq!(
        signed(&artifactory_push("generic", "a/b/c"), no_config()),
        Err(RequestError::UnsupportedEvent("image type generic".into()))
    );
    assert_eq!(
        signed(&artifactory_push("docker", "manifest.json"), no_config()),
        Err(RequestError::InvalidBody)
    );
    let deleted = String::from_utf8_lossy(&image).replace("\"pushed\"", "\"deleted\"");
    assert!(matches!(
        signed(deleted.as_bytes(), no_config()),
        Err(RequestError::UnsupportedEvent(_))
    ));
    assert_eq!(
        Platform::find("artifactory").map(|p| p.secret_key()),
        Some("secret-token")
    );
}

#[test]
fn artifactory_signature_failures() {
    let body = artifactory_push("docker", "test-image/latest/manifest.json");
    assert_eq!(
        deliver("artifactory", &[], &body, no_config()),
        Err(RequestError::MissingSignature)
    );
    for bad in [
        format!("sha256={}", sign(&body)),
        hex(&hmac_sha256(b"other", &body)),
        "zz".to_string(),
    ] {
        assert_eq!(
            deliver(
                "artifactory",
                &[("X-Jfrog-Event-Auth", &bad)],
                &body,
                no_config()
            ),
            Err(RequestError::Unauthorized)
        );
    }
}
