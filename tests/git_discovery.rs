//! Commit discovery for Git subscriptions against a real git server over HTTP with basic auth
//! (nginx + fcgiwrap + git http-backend on 127.0.0.1, from `hack/test-services.sh`). Commits
//! and tags are pushed with the git CLI from a temporary clone.

mod support;

use std::path::Path;

use haul::api::{GitDiscoveryResult, GitSubscription};
use haul::discovery::{GitDiscoveryError, discover_commits};
use haul::git::{Credentials, RepoCache};
use serde_json::{Value, json};
use support::git;
use support::gitops::{encoded_auth_url, percent_encode};
use support::services::services;

fn creds() -> Credentials {
    let s = services();
    Credentials::Basic {
        username: s.var("HAUL_TEST_GIT_USER").to_string(),
        password: s.var("HAUL_TEST_GIT_PASSWORD").to_string(),
    }
}

/// A new repository on the server and a local clone with push access to it.
struct Repo {
    url: String,
    work: tempfile::TempDir,
}

impl Repo {
    fn new(name: &str) -> Self {
        let url = services().new_repo(name);
        let authed = encoded_auth_url(&url);
        let work = tempfile::tempdir().expect("tempdir");
        git(work.path(), &["init", "-q", "-b", "main"]);
        git(work.path(), &["remote", "add", "origin", &authed]);
        Self { url, work }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Commits `file` with `content` and pushes main; returns the commit's SHA.
    fn commit(&self, file: &str, content: &str, msg: &str) -> String {
        let p = self.dir().join(file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        git(self.dir(), &["add", "-A"]);
        git(self.dir(), &["commit", "-q", "-m", msg]);
        git(
            self.dir(),
            &["push", "-q", "origin", "HEAD:refs/heads/main"],
        );
        git(self.dir(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Tags HEAD (annotated when `message` is given) and pushes the tag.
    fn tag(&self, name: &str, message: Option<&str>) {
        match message {
            Some(m) => git(self.dir(), &["tag", "-a", name, "-m", m]),
            None => git(self.dir(), &["tag", name]),
        };
        git(
            self.dir(),
            &["push", "-q", "origin", &format!("refs/tags/{name}")],
        );
    }
}

fn sub(url: &str, extra: Value) -> GitSubscription {
    let mut v = json!({ "repoURL": url });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    serde_json::from_value(v).expect("valid subscription")
}

fn ids(r: &GitDiscoveryResult) -> Vec<String> {
    r.commits.iter().filter_map(|c| c.id.clone()).collect()
}

fn tags(r: &GitDiscoveryResult) -> Vec<String> {
    r.commits.iter().filter_map(|c| c.tag.clone()).collect()
}

async fn discover(
    cache: &RepoCache,
    sub: &GitSubscription,
    previous: Option<&GitDiscoveryResult>,
) -> GitDiscoveryResult {
    discover_commits(cache, sub, &creds(), previous)
        .await
        .unwrap_or_else(|e| panic!("discovery failed: {e}"))
}

#[tokio::test]
async fn branch_and_tags_over_http_with_basic_auth() {
    let repo = Repo::new("discovery-branch-tags");
    let root = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(root.path()).expect("cache");

    let c1 = repo.commit("app/a.txt", "1", "first");
    repo.tag("v1.0.0", Some("release 1.0.0"));
    let c2 = repo.commit("app/a.txt", "2", "second");
    repo.tag("v1.1.0", None);
    let c3 = repo.commit("docs/readme.md", "3", "third");

    // NewestFromBranch on the default branch (the server's HEAD).
    let s = sub(&repo.url, json!({}));
    let first = discover(&cache, &s, None).await;
    assert_eq!(ids(&first), vec![c3.clone(), c2.clone(), c1.clone()]);
    assert_eq!(first.commits[0].branch.as_deref(), Some("main"));
    assert_eq!(first.commits[0].subject.as_deref(), Some("third"));
    assert_eq!(
        first.commits[0].author.as_deref(),
        Some("test <test@example.com>")
    );
    assert_eq!(first.repo_url, repo.url);

    // Unchanged: answered from the previous result without fetching.
    let before = cache.stats();
    assert_eq!(discover(&cache, &s, Some(&first)).await, first);
    assert_eq!(cache.stats(), before);

    // A new commit is fetched.
    let c4 = repo.commit("app/b.txt", "4", "fourth");
    let second = discover(&cache, &s, Some(&first)).await;
    assert_eq!(second.commits[0].id.as_deref(), Some(c4.as_str()));
    assert!(cache.stats().fetches > before.fetches);

    // Path filters.
    let s = sub(
        &repo.url,
        json!({ "branch": "main", "includePaths": ["glob:app/*.txt"], "discoveryLimit": 2 }),
    );
    assert_eq!(ids(&discover(&cache, &s, None).await), vec![c4, c2.clone()]);

    // Tags: the annotated tag resolves to its commit.
    let s = sub(&repo.url, json!({ "commitSelectionStrategy": "SemVer" }));
    let semver = discover(&cache, &s, None).await;
    assert_eq!(tags(&semver), ["v1.1.0", "v1.0.0"]);
    assert_eq!(ids(&semver), vec![c2, c1]);
    assert_eq!(semver.commits[1].subject.as_deref(), Some("first"));
    let before = cache.stats();
    assert_eq!(discover(&cache, &s, Some(&semver)).await, semver);
    assert_eq!(cache.stats(), before);

    let s = sub(
        &repo.url,
        json!({ "commitSelectionStrategy": "NewestTag", "expressionFilter": "annotation != ''" }),
    );
    assert_eq!(tags(&discover(&cache, &s, None).await), ["v1.0.0"]);
}

#[tokio::test]
async fn shallow_history_is_deepened_over_http() {
    let repo = Repo::new("discovery-deepen");
    let root = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(root.path()).expect("cache");
    let app = repo.commit("app/a.txt", "1", "app");
    for i in 0..45 {
        std::fs::write(repo.dir().join(format!("n{i}.md")), "x").expect("write");
        git(repo.dir(), &["add", "-A"]);
        git(repo.dir(), &["commit", "-q", "-m", &format!("note {i}")]);
    }
    repo.commit("last.md", "x", "last");
    let s = sub(
        &repo.url,
        json!({ "includePaths": ["app"], "discoveryLimit": 1 }),
    );
    let r = discover(&cache, &s, None).await;
    assert_eq!(ids(&r), vec![app]);
    assert!(cache.stats().fetches >= 2, "{:?}", cache.stats());
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_auth_errors() {
    let repo = Repo::new("discovery-auth");
    repo.commit("a.txt", "1", "one");
    let root = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(root.path()).expect("cache");
    let s = sub(&repo.url, json!({}));
    let wrong = Credentials::Basic {
        username: services().var("HAUL_TEST_GIT_USER").to_string(),
        password: "not-the-password".to_string(),
    };
    for c in [wrong, Credentials::None] {
        let e = discover_commits(&cache, &s, &c, None)
            .await
            .expect_err("must fail");
        assert!(matches!(e, GitDiscoveryError::Auth { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&repo.url), "{msg}");
        assert!(msg.contains("kargo.akuity.io/cred-type: git"), "{msg}");
        assert!(!msg.contains("not-the-password"), "{msg}");
        assert!(!e.is_transient());
    }

    // Credentials embedded in the URL never show up in errors.
    let password = services().var("HAUL_TEST_GIT_PASSWORD");
    let embedded = repo.url.replacen(
        "http://",
        &format!(
            "http://{}:{}@",
            percent_encode(services().var("HAUL_TEST_GIT_USER")),
            percent_encode(password)
        ),
        1,
    );
    let missing = format!("{}-missing.git", embedded.trim_end_matches(".git"));
    let e = discover_commits(&cache, &sub(&missing, json!({})), &Credentials::None, None)
        .await
        .expect_err("must fail");
    assert!(matches!(e, GitDiscoveryError::RepoNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        !msg.contains(&percent_encode(password)) && !msg.contains(password),
        "{msg}"
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn unreachable_server_is_a_transient_network_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(root.path()).expect("cache");
    // Nothing listens on port 1 of the loopback interface.
    let s = sub("http://127.0.0.1:1/repo.git", json!({}));
    let e = discover_commits(&cache, &s, &creds(), None)
        .await
        .expect_err("must fail");
    assert!(matches!(e, GitDiscoveryError::Network { .. }), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(e.repo_url(), "http://127.0.0.1:1/repo.git");
}
