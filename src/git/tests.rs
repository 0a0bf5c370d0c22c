//! Unit tests against local bare repositories (`file://`) in temp dirs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Someone Else")
        .env("GIT_AUTHOR_EMAIL", "else@example.com")
        .env("GIT_COMMITTER_NAME", "Someone Else")
        .env("GIT_COMMITTER_EMAIL", "else@example.com")
        .env("GIT_PROTOCOL_FROM_USER", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare "remote" with `commits` commits on main (file `shared.txt` plus one file per commit),
/// and a scratch clone of it for pushing changes "from elsewhere".
struct Remote {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    url: String,
    scratch: PathBuf,
}

impl Remote {
    fn new(commits: usize) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bare = tmp.path().join("remote.git");
        let scratch = tmp.path().join("scratch");
        git(
            tmp.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(tmp.path(), &["init", "-q", "-b", "main", "scratch"]);
        std::fs::write(scratch.join("shared.txt"), "line one\nline two\n").expect("write");
        git(&scratch, &["add", "-A"]);
        git(&scratch, &["commit", "-q", "-m", "seed"]);
        for i in 1..commits {
            std::fs::write(scratch.join(format!("f{i}.txt")), format!("{i}\n")).expect("write");
            git(&scratch, &["add", "-A"]);
            git(&scratch, &["commit", "-q", "-m", &format!("commit {i}")]);
        }
        let url = format!("file://{}", bare.display());
        git(&scratch, &["remote", "add", "origin", &url]);
        git(&scratch, &["push", "-q", "origin", "main"]);
        Self {
            _tmp: tmp,
            bare,
            url,
            scratch,
        }
    }

    fn empty() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bare = tmp.path().join("remote.git");
        git(
            tmp.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let url = format!("file://{}", bare.display());
        let scratch = tmp.path().join("scratch");
        Self {
            _tmp: tmp,
            bare,
            url,
            scratch,
        }
    }

    fn head(&self, branch: &str) -> String {
        git(&self.bare, &["rev-parse", &format!("refs/heads/{branch}")])
    }

    fn log(&self, branch: &str) -> Vec<String> {
        git(&self.bare, &["log", "--format=%s", branch])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Commits `content` to `file` from the scratch clone and pushes it to main.
    fn push_external(&self, file: &str, content: &str, msg: &str) -> String {
        git(&self.scratch, &["pull", "-q", "--rebase", "origin", "main"]);
        std::fs::write(self.scratch.join(file), content).expect("write");
        git(&self.scratch, &["add", "-A"]);
        git(&self.scratch, &["commit", "-q", "-m", msg]);
        git(&self.scratch, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.scratch, &["rev-parse", "HEAD"])
    }
}

/// A cache that accepts the `file://` remotes the tests create.
pub(crate) fn cache(root: &Path) -> RepoCache {
    RepoCache::with_config(
        root,
        RepoCacheConfig {
            allow_file_urls: true,
            ..RepoCacheConfig::default()
        },
    )
    .expect("cache")
}

fn fast_push() -> PushOptions {
    PushOptions {
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
            ..Backoff::default()
        },
        ..PushOptions::default()
    }
}

fn author() -> Author {
    Author {
        name: "Haul Test".into(),
        email: "haul@example.com".into(),
    }
}

fn status(wt: &Worktree) -> String {
    git(wt.path(), &["status", "--porcelain"])
}

#[test]
fn normalize_url_matches_kargo() {
    let cases = [
        ("https://not a url", "https://not a url"),
        (
            "http://github.com/example/repo?foo=bar",
            "http://github.com/example/repo?foo=bar",
        ),
        ("not even remotely a url", "not even remotely a url"),
        (
            "https://github.com/example%20repo",
            "https://github.com/example%20repo",
        ),
        ("https://github.com", "https://github.com"),
        ("https://github.com/", "https://github.com"),
        ("https://foo:bar@github.com/", "https://github.com"),
        (
            "https://github.com/example/repo.git/",
            "https://github.com/example/repo",
        ),
        (
            "https://foo:bar@localhost:8443/Example/Repo.git",
            "https://localhost:8443/example/repo",
        ),
        ("ssh://git.example.com/", "ssh://git.example.com"),
        ("ssh://git@git.example.com", "ssh://git@git.example.com"),
        (
            "ssh://git@localhost:2222/example/repo.git/",
            "ssh://git@localhost:2222/example/repo",
        ),
        ("git.example.com", "ssh://git.example.com"),
        ("git@git.example.com", "ssh://git@git.example.com"),
        ("github.com:example/repo/", "ssh://github.com/example/repo"),
        (
            "git@github.com:Example/Repo.git",
            "ssh://git@github.com/example/repo",
        ),
        (
            " \u{feff}https://github.com/example/repo",
            "https://github.com/example/repo",
        ),
        (
            "\tssh://github.com/example/repo\t",
            "ssh://github.com/example/repo",
        ),
        (
            "\u{00A0}https://github.com/example/repo\u{00A0}",
            "https://github.com/example/repo",
        ),
        (
            "\u{200B}https://github.com/example/repo\u{200B}",
            "https://github.com/example/repo",
        ),
        // haul: never a password, not even for ssh.
        ("ssh://git:secret@host/repo", "ssh://git@host/repo"),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_url(input), want, "normalize_url({input:?})");
    }
}

#[test]
fn credentials_debug_is_redacted() {
    let b = Credentials::Basic {
        username: "user".into(),
        password: "hunter2-secret".into(),
    };
    let s = Credentials::SshKey {
        private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nsecretkey".into(),
    };
    let d = format!("{b:?} {s:?}");
    assert!(!d.contains("hunter2") && !d.contains("secretkey"), "{d}");
    assert!(d.contains("user"), "{d}");
}

#[test]
fn urls_are_checked_and_stripped() {
    let u = url::RepoUrl::parse("https://bob:p%40ss@example.com/org/repo.git", false).expect("ok");
    assert_eq!(u.remote, "https://example.com/org/repo.git");
    assert_eq!(u.embedded, Some(("bob".into(), "p@ss".into())));
    assert!(!format!("{u:?}").contains("p@ss"));
    let s = url::RepoUrl::parse("ssh://git:pw@example.com/repo", false).expect("ok");
    assert_eq!(s.remote, "ssh://git@example.com/repo");
    for bad in [
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/x",
        "file:///tmp/repo",
        "/tmp/repo",
        "ftp://example.com/repo",
        "",
    ] {
        assert!(url::RepoUrl::parse(bad, false).is_err(), "{bad:?} accepted");
    }
    assert!(url::RepoUrl::parse("file:///tmp/repo", true).is_ok());
    assert!(url::RepoUrl::parse("git@github.com:org/repo.git", false).is_ok());
    let e = url::RepoUrl::parse("ftp://u:topsecret@h/r", false).expect_err("bad scheme");
    assert!(!e.to_string().contains("topsecret"), "{e}");
}

#[test]
fn backoff_grows_caps_and_jitters() {
    let b = Backoff::default();
    for attempt in 1..=20 {
        let d = b.delay(attempt).as_secs_f64();
        let raw = (1.5f64.powi(attempt as i32 - 1)).min(30.0);
        assert!(d >= raw && d <= raw * 1.5 + 1e-9, "attempt {attempt}: {d}");
    }
}

#[tokio::test]
async fn clone_commit_push() {
    let remote = Remote::new(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("work/promo-1/repo"),
        )
        .await
        .expect("checkout");
    assert_eq!(wt.head().await.expect("head"), remote.head("main"));
    assert_eq!(wt.branch(), Some("main"));
    std::fs::write(wt.path().join("app.yaml"), "image: v2\n").expect("write");
    let c = wt
        .commit_all("Update app to v2", &author())
        .await
        .expect("commit");
    let CommitOutcome::Committed(sha) = c else {
        panic!("expected a commit, got {c:?}")
    };
    let out = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(out.commit, sha);
    assert_eq!(out.branch, "main");
    assert!(!out.already_pushed);
    assert_eq!(out.attempts, 1);
    assert_eq!(remote.head("main"), sha);
    assert_eq!(
        git(
            &remote.bare,
            &["log", "-1", "--format=%an <%ae>|%s", "main"]
        ),
        "Haul Test <haul@example.com>|Update app to v2"
    );
    // The remote-tracking ref follows the push.
    assert_eq!(git(wt.path(), &["rev-parse", "origin/main"]), sha);
    assert_eq!(status(&wt), "");
}

#[tokio::test]
async fn nothing_to_commit() {
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    let head = remote.head("main");
    // Rewriting a file with the same content is no change either.
    std::fs::write(wt.path().join("shared.txt"), "line one\nline two\n").expect("write");
    let c = wt.commit_all("noop", &author()).await.expect("commit");
    assert_eq!(c, CommitOutcome::NothingToCommit(head.clone()));
    assert_eq!(c.sha(), head);
    let out = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(out.commit, head);
    assert_eq!(remote.log("main").len(), 1);
}

#[tokio::test]
async fn concurrent_pushers_lose_no_commit() {
    let remote = Remote::new(2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let n = 5;
    let mut tasks = Vec::new();
    for i in 0..n {
        let cache = cache.clone();
        let url = remote.url.clone();
        let path = tmp.path().join(format!("work/p{i}/repo"));
        tasks.push(tokio::spawn(async move {
            let mut wt = cache
                .checkout(
                    &url,
                    &Credentials::None,
                    &Checkout::branch("main").with_depth(1),
                    &path,
                )
                .await?;
            std::fs::write(wt.path().join(format!("env-{i}.yaml")), format!("v: {i}\n"))
                .map_err(GitError::io("write"))?;
            wt.commit_all_with_trailers(
                &format!("promotion {i}"),
                &author(),
                &[(PROMOTION_TRAILER, &format!("promo-{i}"))],
            )
            .await?;
            wt.push(&Credentials::None, &fast_push()).await
        }));
    }
    let mut commits = Vec::new();
    for t in tasks {
        let out = t.await.expect("task").expect("push");
        assert!(!out.already_pushed);
        commits.push(out.commit);
    }
    let log = remote.log("main");
    assert_eq!(log.len(), 2 + n, "remote log: {log:?}");
    for i in 0..n {
        assert!(
            log.contains(&format!("promotion {i}")),
            "promotion {i} lost: {log:?}"
        );
    }
    // Every reported commit is on the remote branch, and it is linear.
    for c in &commits {
        git(&remote.bare, &["merge-base", "--is-ancestor", c, "main"]);
    }
    assert_eq!(
        git(&remote.bare, &["rev-list", "--merges", "--count", "main"]),
        "0"
    );
    // Each file landed.
    let files = git(&remote.bare, &["ls-tree", "--name-only", "main"]);
    for i in 0..n {
        assert!(files.contains(&format!("env-{i}.yaml")), "{files}");
    }
}

#[tokio::test]
async fn concurrent_pushers_with_separate_caches() {
    // Separate caches share nothing on disk, so every stale push really is rejected by the
    // remote and goes through fetch + rebase + retry.
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = 4;
    let mut tasks = Vec::new();
    for i in 0..n {
        let cache = cache(&tmp.path().join(format!("cache-{i}")));
        let url = remote.url.clone();
        let path = tmp.path().join(format!("work/p{i}"));
        tasks.push(tokio::spawn(async move {
            let mut wt = cache
                .checkout(&url, &Credentials::None, &Checkout::branch("main"), &path)
                .await?;
            std::fs::write(wt.path().join(format!("f{i}")), "x").map_err(GitError::io("write"))?;
            wt.commit_all(&format!("c{i}"), &author()).await?;
            wt.push(&Credentials::None, &fast_push()).await
        }));
    }
    let mut retried = 0;
    for t in tasks {
        let out = t.await.expect("task").expect("push");
        if out.attempts > 1 {
            retried += 1;
        }
    }
    assert_eq!(remote.log("main").len(), 1 + n);
    assert!(retried >= 1, "no push needed a retry");
}

#[tokio::test]
async fn external_push_is_rebased_onto() {
    let remote = Remote::new(2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main").with_depth(1),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("ours.txt"), "ours\n").expect("write");
    wt.commit_all("ours", &author()).await.expect("commit");
    let theirs = remote.push_external("theirs.txt", "theirs\n", "theirs");
    let out = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(out.attempts, 2);
    assert_eq!(remote.head("main"), out.commit);
    assert_eq!(git(&remote.bare, &["rev-parse", "main~1"]), theirs);
    assert_eq!(
        remote.log("main")[..2],
        ["ours".to_string(), "theirs".to_string()]
    );
    // The worktree is on the pushed commit and clean.
    assert_eq!(wt.head().await.expect("head"), out.commit);
    assert_eq!(status(&wt), "");
}

#[tokio::test]
async fn conflicting_change_fails_cleanly() {
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("shared.txt"), "line one\nOURS\n").expect("write");
    let ours = wt.commit_all("ours", &author()).await.expect("commit");
    let theirs = remote.push_external("shared.txt", "line one\nTHEIRS\n", "theirs");
    let err = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect_err("conflict");
    match &err {
        GitError::RebaseConflict {
            files,
            branch,
            repo_url,
        } => {
            assert_eq!(files, &["shared.txt".to_string()]);
            assert_eq!(branch, "main");
            assert_eq!(repo_url, &remote.url);
        }
        other => panic!("expected RebaseConflict, got {other:?}"),
    }
    assert!(err.is_terminal());
    assert!(err.to_string().contains("shared.txt"), "{err}");
    // Remote unchanged, worktree clean and back on our commit, no rebase in progress.
    assert_eq!(remote.head("main"), theirs);
    assert_eq!(status(&wt), "");
    assert_eq!(wt.head().await.expect("head"), ours.sha());
    assert_eq!(
        std::fs::read_to_string(wt.path().join("shared.txt")).expect("read"),
        "line one\nOURS\n"
    );
}

#[tokio::test]
async fn second_checkout_fetches_instead_of_cloning() {
    let remote = Remote::new(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let w1 = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w1"),
        )
        .await
        .expect("checkout 1");
    assert_eq!(
        cache.stats(),
        CacheStats {
            clones: 1,
            fetches: 1
        }
    );
    let repo_dirs: Vec<_> = std::fs::read_dir(cache.root().join("repos"))
        .expect("read")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(repo_dirs.len(), 1);
    let ino = std::fs::metadata(&repo_dirs[0]).expect("meta").ino();
    let new = remote.push_external("new.txt", "new\n", "new");
    // Same repository under another spelling of the URL.
    let other_spelling = format!("{}/", remote.url);
    let w2 = cache
        .checkout(
            &other_spelling,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w2"),
        )
        .await
        .expect("checkout 2");
    assert_eq!(
        cache.stats(),
        CacheStats {
            clones: 1,
            fetches: 2
        }
    );
    assert_eq!(std::fs::metadata(&repo_dirs[0]).expect("meta").ino(), ino);
    assert_eq!(w2.head().await.expect("head"), new);
    // The first worktree is untouched by the second checkout.
    assert_ne!(w1.head().await.expect("head"), new);
    // No URL-derived names in the cache.
    let name = repo_dirs[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.len() == 36 && name.ends_with(".git"), "{name}");
}

#[tokio::test]
async fn shallow_checkout_and_unshallow() {
    let remote = Remote::new(20);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main").with_depth(1),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    assert_eq!(git(wt.path(), &["rev-list", "--count", "HEAD"]), "1");
    std::fs::write(wt.path().join("x"), "x").expect("write");
    wt.commit_all("from shallow", &author())
        .await
        .expect("commit");
    wt.push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(remote.log("main").len(), 21);
    let full = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w2"),
        )
        .await
        .expect("full checkout");
    assert_eq!(git(full.path(), &["rev-list", "--count", "HEAD"]), "21");
}

#[tokio::test]
async fn rerun_after_crash_does_not_push_twice() {
    let remote = Remote::new(2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let promo = (PROMOTION_TRAILER, "prod.01hx2.abc");
    let first = {
        let cache = cache(&tmp.path().join("cache-a"));
        let mut wt = cache
            .checkout(
                &remote.url,
                &Credentials::None,
                &Checkout::branch("main"),
                &tmp.path().join("a"),
            )
            .await
            .expect("checkout");
        std::fs::write(wt.path().join("app.yaml"), "image: v2\n").expect("write");
        wt.commit_all_with_trailers("Promote v2", &author(), &[promo])
            .await
            .expect("commit");
        wt.push(&Credentials::None, &fast_push())
            .await
            .expect("push")
            .commit
    };
    // Others push after us before the promotion is re-run.
    for i in 0..3 {
        remote.push_external(&format!("later{i}"), "x", &format!("later {i}"));
    }
    let before = remote.head("main");
    // The re-run: a fresh process (fresh cache), shallow checkout, a commit with the same
    // trailer but not the same bytes (e.g. a timestamp differs).
    let cache = cache(&tmp.path().join("cache-b"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main").with_depth(1),
            &tmp.path().join("b"),
        )
        .await
        .expect("checkout");
    assert_eq!(
        wt.find_commit_with_trailer(&Credentials::None, promo.0, promo.1)
            .await
            .expect("find"),
        Some(first.clone())
    );
    assert_eq!(
        wt.find_commit_with_trailer(&Credentials::None, promo.0, "other")
            .await
            .expect("find"),
        None
    );
    std::fs::write(wt.path().join("app.yaml"), "image: v2 # rerun\n").expect("write");
    wt.commit_all_with_trailers("Promote v2", &author(), &[promo])
        .await
        .expect("commit");
    let out = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert!(out.already_pushed);
    assert_eq!(out.commit, first);
    assert_eq!(remote.head("main"), before);
    assert_eq!(wt.head().await.expect("head"), before);
    assert_eq!(status(&wt), "");
}

#[tokio::test]
async fn missing_branch_is_an_error_or_created() {
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let err = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("env/prod"),
            &tmp.path().join("w"),
        )
        .await
        .expect_err("missing branch");
    assert!(
        matches!(&err, GitError::BranchNotFound { branch, .. } if branch == "env/prod"),
        "{err:?}"
    );
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("env/prod").create_if_missing(true),
            &tmp.path().join("w"),
        )
        .await
        .expect("create branch");
    let created = remote.head("env/prod");
    assert_eq!(wt.head().await.expect("head"), created);
    assert_eq!(
        git(&remote.bare, &["log", "--format=%s|%P", "env/prod"]),
        "Initial commit|"
    );
    assert_eq!(git(&remote.bare, &["ls-tree", "env/prod"]), "");
    std::fs::write(wt.path().join("manifest.yaml"), "kind: X\n").expect("write");
    wt.commit_all("render", &author()).await.expect("commit");
    wt.push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(remote.log("env/prod"), ["render", "Initial commit"]);
    // main untouched
    assert_eq!(remote.log("main"), ["seed"]);
}

#[tokio::test]
async fn empty_remote_gets_initial_commit() {
    let remote = Remote::empty();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main")
                .create_if_missing(true)
                .with_depth(1),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("a"), "a").expect("write");
    wt.commit_all("first", &author()).await.expect("commit");
    wt.push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(remote.log("main"), ["first", "Initial commit"]);
}

#[tokio::test]
async fn tag_and_commit_checkouts_are_detached() {
    let remote = Remote::new(3);
    git(
        &remote.scratch,
        &["tag", "-a", "-m", "v1", "v1.0.0", "HEAD~1"],
    );
    git(&remote.scratch, &["push", "-q", "origin", "v1.0.0"]);
    let tagged = git(&remote.bare, &["rev-parse", "v1.0.0^{commit}"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::tag("v1.0.0").with_depth(1),
            &tmp.path().join("t"),
        )
        .await
        .expect("tag checkout");
    assert_eq!(wt.head().await.expect("head"), tagged);
    assert_eq!(wt.branch(), None);
    let err = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect_err("detached push needs a target");
    assert!(matches!(err, GitError::InvalidArgument { .. }), "{err:?}");
    std::fs::write(wt.path().join("hotfix"), "x").expect("write");
    wt.commit_all("hotfix", &author()).await.expect("commit");
    let out = wt
        .push(
            &Credentials::None,
            &PushOptions {
                target_branch: Some("release/v1".into()),
                ..fast_push()
            },
        )
        .await
        .expect("push to target");
    assert_eq!(remote.head("release/v1"), out.commit);
    assert_eq!(out.branch, "release/v1");

    let first = git(&remote.bare, &["rev-list", "--max-parents=0", "main"]);
    let wc = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::commit(&first),
            &tmp.path().join("c"),
        )
        .await
        .expect("commit checkout");
    assert_eq!(wc.head().await.expect("head"), first);
    let missing = "0123456789012345678901234567890123456789";
    let err = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::commit(missing),
            &tmp.path().join("m"),
        )
        .await
        .expect_err("unknown commit");
    assert!(
        matches!(err, GitError::RefNotFound { kind: "commit", .. }),
        "{err:?}"
    );
    let err = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::tag("nope"),
            &tmp.path().join("n"),
        )
        .await
        .expect_err("unknown tag");
    assert!(
        matches!(err, GitError::RefNotFound { kind: "tag", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn rerun_checkout_replaces_leftover_worktree() {
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("work/promo/repo");
    let cache = cache(&tmp.path().join("cache"));
    let wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &path,
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("half-done"), "x").expect("write");
    wt.commit_all("unpushed", &author()).await.expect("commit");
    std::fs::write(wt.path().join("dirty"), "x").expect("write");
    drop(wt);
    // A "crash", then the same promotion checks out into the same path again.
    let wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &path,
        )
        .await
        .expect("re-checkout");
    assert_eq!(wt.head().await.expect("head"), remote.head("main"));
    assert_eq!(status(&wt), "");
    assert!(!path.join("half-done").exists());

    // A directory that is not ours is refused.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("keep.txt"), "precious").expect("write");
    let err = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &foreign,
        )
        .await
        .expect_err("foreign dir");
    assert!(matches!(err, GitError::WorkPathInUse { .. }), "{err:?}");
    assert!(foreign.join("keep.txt").exists());
}

#[tokio::test]
async fn remove_and_reopen() {
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let path = tmp.path().join("w");
    let wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &path,
        )
        .await
        .expect("checkout");
    let reopened = cache.open_worktree(&remote.url, &path).await.expect("open");
    assert_eq!(reopened.branch(), Some("main"));
    assert_eq!(
        reopened.head().await.expect("head"),
        wt.head().await.expect("head")
    );
    let repo_dir = wt.repo_dir.clone();
    wt.remove().await.expect("remove");
    assert!(!path.exists());
    let list = git(&repo_dir, &["worktree", "list", "--porcelain"]);
    assert!(!list.contains(&path.display().to_string()), "{list}");
    assert_eq!(git(&repo_dir, &["for-each-ref", "refs/heads/"]), "");
    // A worktree directory deleted behind git's back is cleaned up by the next checkout.
    let p2 = tmp.path().join("w2");
    let w2 = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &p2,
        )
        .await
        .expect("checkout");
    drop(w2);
    std::fs::remove_dir_all(&p2).expect("rm");
    let _w3 = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w3"),
        )
        .await
        .expect("checkout");
    let branches = git(
        &repo_dir,
        &["for-each-ref", "--format=%(refname)", "refs/heads/"],
    );
    assert_eq!(branches.lines().count(), 1, "{branches}");
}

#[tokio::test]
async fn remote_rejection_and_missing_repo() {
    let remote = Remote::new(1);
    let hook = remote.bare.join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().expect("parent")).expect("mkdir");
    std::fs::write(&hook, "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n").expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("x"), "x").expect("write");
    wt.commit_all("x", &author()).await.expect("commit");
    let err = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect_err("rejected");
    assert!(matches!(err, GitError::PushRejected { .. }), "{err:?}");

    let missing = format!("file://{}/nope.git", tmp.path().display());
    let err = cache
        .checkout(
            &missing,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("m"),
        )
        .await
        .expect_err("missing repo");
    assert!(matches!(err, GitError::RepoNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.git"), "{err}");

    let strict = RepoCache::new(tmp.path().join("strict")).expect("cache");
    let err = strict
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("s"),
        )
        .await
        .expect_err("file URLs are off by default");
    assert!(matches!(err, GitError::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn ls_remote_lists_refs() {
    let remote = Remote::new(2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let refs = cache
        .ls_remote(&remote.url, &Credentials::None)
        .await
        .expect("ls-remote");
    assert!(
        refs.contains(&("refs/heads/main".to_string(), remote.head("main"))),
        "{refs:?}"
    );
}

#[tokio::test]
async fn timeout_kills_git() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A "git" that hangs: the timeout must fire and kill it.
    let fake = tmp.path().join("fake-git");
    std::fs::write(&fake, "#!/bin/sh\nsleep 30\n").expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cache = RepoCache::with_config(
        tmp.path().join("cache"),
        RepoCacheConfig {
            git_binary: fake,
            command_timeout: Duration::from_millis(300),
            ..RepoCacheConfig::default()
        },
    )
    .expect("cache");
    let started = Instant::now();
    let err = cache
        .ls_remote("https://127.0.0.1:9/repo.git", &Credentials::None)
        .await
        .expect_err("timeout");
    assert!(matches!(err, GitError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Not a correctness test: prints what a checkout costs cold and warm on a repository with
/// some thousand files. `cargo test --lib git::tests::measure -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn measure_checkout_cost() {
    let files = 3000;
    let remote = Remote::new(1);
    for i in 0..files {
        let d = remote.scratch.join(format!("apps/app{}", i % 50));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join(format!("m{i}.yaml")),
            format!("kind: ConfigMap\nname: m{i}\n"),
        )
        .expect("write");
    }
    git(&remote.scratch, &["add", "-A"]);
    git(&remote.scratch, &["commit", "-q", "-m", "many files"]);
    for i in 0..200 {
        std::fs::write(
            remote.scratch.join("apps/app0/m0.yaml"),
            format!("v: {i}\n"),
        )
        .expect("w");
        git(
            &remote.scratch,
            &["commit", "-qam", &format!("history {i}")],
        );
    }
    git(&remote.scratch, &["push", "-q", "origin", "main"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    for round in 0..2 {
        // Baseline: what a fresh clone per promotion (Kargo) costs.
        let t = Instant::now();
        let dest = tmp.path().join(format!("plain-{round}"));
        git(
            tmp.path(),
            &["clone", "-q", &remote.url, &dest.display().to_string()],
        );
        println!("plain git clone round={round}: {:?}", t.elapsed());
    }
    for depth in [None, Some(1)] {
        let cache = cache(&tmp.path().join(format!("cache-{depth:?}")));
        let mut co = Checkout::branch("main");
        co.depth = depth;
        for round in 0..3 {
            let t = Instant::now();
            let wt = cache
                .checkout(
                    &remote.url,
                    &Credentials::None,
                    &co,
                    &tmp.path().join(format!("w-{depth:?}-{round}")),
                )
                .await
                .expect("checkout");
            let checkout = t.elapsed();
            std::fs::write(
                wt.path().join("apps/app1/new.yaml"),
                format!("r: {round}\n"),
            )
            .expect("w");
            let t = Instant::now();
            wt.commit_all("measure", &author()).await.expect("commit");
            let commit = t.elapsed();
            let size = Command::new("du")
                .args(["-sk"])
                .arg(cache.root().join("repos"))
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .next()
                        .unwrap_or("?")
                        .to_string()
                })
                .unwrap_or_default();
            println!(
                "depth={depth:?} round={round}: checkout {checkout:?}, commit {commit:?}, {:?}, cache {size} KiB",
                cache.stats()
            );
        }
    }
}

#[tokio::test]
async fn ssh_key_goes_to_a_private_file_that_is_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec = tmp.path().join("rec");
    std::fs::create_dir_all(&rec).expect("mkdir");
    // A fake ssh that records how it was called and refuses like a server with another key.
    let fake = tmp.path().join("fake-ssh");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {rec}/args\n\
             while [ $# -gt 0 ]; do [ \"$1\" = -i ] && key=$2; shift; done\n\
             stat -c %a \"$key\" > {rec}/mode\nstat -c %a \"$(dirname \"$key\")\" > {rec}/dirmode\n\
             cp \"$key\" {rec}/key\necho \"$key\" > {rec}/keypath\n\
             echo 'git@example.com: Permission denied (publickey).' >&2\nexit 255\n",
            rec = rec.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cache = RepoCache::with_config(
        tmp.path().join("cache"),
        RepoCacheConfig {
            ssh_binary: fake,
            ..RepoCacheConfig::default()
        },
    )
    .expect("cache");
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretkeymaterial\n-----END OPENSSH PRIVATE KEY-----";
    let err = cache
        .checkout(
            "git@example.com:org/repo.git",
            &Credentials::SshKey {
                private_key: key.into(),
            },
            &Checkout::branch("main"),
            &tmp.path().join("w"),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string().contains("git@example.com:org/repo.git"),
        "{err}"
    );
    let read = |f: &str| std::fs::read_to_string(rec.join(f)).expect("recorded");
    assert_eq!(read("mode").trim(), "600");
    assert_eq!(read("dirmode").trim(), "700");
    assert_eq!(read("key"), format!("{key}\n"));
    let args = read("args");
    for want in [
        "-F /dev/null",
        "BatchMode=yes",
        "StrictHostKeyChecking=accept-new",
        "IdentitiesOnly=yes",
        "git@example.com",
    ] {
        assert!(args.contains(want), "{want} missing in {args}");
    }
    assert!(!args.contains("secretkeymaterial"));
    assert!(
        !Path::new(read("keypath").trim()).exists(),
        "key file left behind"
    );
    assert!(files_under(cache.root()).iter().all(|p| {
        !std::fs::read(p)
            .map(|b| b.windows(17).any(|w| w == b"secretkeymaterial"))
            .unwrap_or(false)
    }));
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

#[tokio::test]
async fn interleaved_checkouts_and_pushes_on_two_branches() {
    // Shallow and full checkouts, commits and pushes to two branches, all on one cache at once.
    let remote = Remote::new(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let cache = cache.clone();
        let url = remote.url.clone();
        let root = tmp.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let branch = if i % 2 == 0 { "main" } else { "env/stage" };
            for round in 0..3 {
                let mut co = Checkout::branch(branch).create_if_missing(true);
                if (i + round) % 2 == 0 {
                    co = co.with_depth(1);
                }
                let path = root.join(format!("work/t{i}-r{round}"));
                let mut wt = cache.checkout(&url, &Credentials::None, &co, &path).await?;
                std::fs::write(path.join(format!("t{i}-r{round}")), "x")
                    .map_err(GitError::io("write"))?;
                wt.commit_all(&format!("t{i} r{round}"), &author()).await?;
                wt.push(&Credentials::None, &fast_push()).await?;
                wt.remove().await?;
            }
            Ok::<_, GitError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("round");
    }
    assert_eq!(remote.log("main").len(), 3 + 9);
    assert_eq!(remote.log("env/stage").len(), 1 + 9);
}

/// A commit signed with an SSH key stays signed, with the same key, when a push has to
/// rebase it onto a commit pushed from elsewhere.
#[tokio::test]
async fn signed_commit_rebased_by_push_is_signed_again() {
    let remote = Remote::new(2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let key_path = tmp.path().join("id");
    let ok = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "signer@example.com",
            "-f",
        ])
        .arg(&key_path)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok);
    let private = std::fs::read_to_string(&key_path).expect("key");
    let public = std::fs::read_to_string(key_path.with_extension("pub")).expect("pub");
    let signers = tmp.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!("signer@example.com namespaces=\"git\" {}", public.trim()),
    )
    .expect("allowed signers");
    let cache = cache(&tmp.path().join("cache"));
    let mut wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main").with_depth(1),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    let key = SigningKey::new(private, "test key");
    std::fs::write(wt.path().join("ours.txt"), "ours\n").expect("write");
    wt.commit_all_signed("ours", &author(), &[], Some(&key))
        .await
        .expect("commit");
    remote.push_external("theirs.txt", "theirs\n", "theirs");
    let out = wt
        .push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    assert_eq!(out.attempts, 2, "the push rebased");
    let verify = |rev: &str| {
        Command::new("git")
            .current_dir(&remote.bare)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .arg("-c")
            .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
            .args(["verify-commit", rev])
            .output()
            .expect("git verify-commit")
            .status
            .success()
    };
    assert!(verify(&out.commit), "the rebased commit is signed");
    assert!(!verify("main~1"), "the external commit is not");
}

/// A garbage key fails before anything is staged or committed.
#[tokio::test]
async fn unusable_key_commits_nothing() {
    let remote = Remote::new(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    let head = wt.head().await.expect("head");
    std::fs::write(wt.path().join("ours.txt"), "ours\n").expect("write");
    let key = SigningKey::new(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64\n-----END OPENSSH PRIVATE KEY-----\n",
        "the test's key",
    );
    let err = wt
        .commit_all_signed("ours", &author(), &[], Some(&key))
        .await
        .expect_err("garbage key");
    assert!(matches!(err, GitError::SigningKey { .. }), "{err}");
    assert!(err.to_string().contains("the test's key"), "{err}");
    assert!(!err.to_string().contains("not base64"), "{err}");
    assert_eq!(wt.head().await.expect("head"), head);
    assert_eq!(status(&wt), "?? ours.txt");
}

/// Counts the ref updates the bare repository receives (one per pushed ref) with an `update`
/// hook.
fn count_pushes(remote: &Remote) -> PathBuf {
    let log = remote.bare.join("pushes.log");
    let hook = remote.bare.join("hooks/update");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", log.display()),
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    log
}

fn pushes(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |s| s.lines().count())
}

/// Checks out `main` at `work/<name>`, writes `file`, commits with the promotion trailer `name`.
async fn promotion_commit(
    cache: &RepoCache,
    remote: &Remote,
    root: &Path,
    name: &str,
    file: &str,
    content: &str,
) -> Worktree {
    let wt = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &root.join("work").join(name),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join(file), content).expect("write");
    wt.commit_all_with_trailers(name, &author(), &[(PROMOTION_TRAILER, name)])
        .await
        .expect("commit");
    wt
}

/// Pushes every worktree at once while the branch lock is held, so that all of them are
/// queued before the first push starts; returns each push's result, in order.
async fn push_queued(wts: Vec<Worktree>) -> Vec<(Worktree, Result<PushOutcome>)> {
    let Some(first) = wts.first() else {
        return Vec::new();
    };
    let repo_dir = first.repo_dir.clone();
    let n = wts.len();
    let lock = first.lock_branch("main").await;
    let tasks: Vec<_> = wts
        .into_iter()
        .map(|mut wt| {
            tokio::spawn(async move {
                let r = wt.push(&Credentials::None, &fast_push()).await;
                (wt, r)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while super::worktree::queued(&repo_dir, "main") < n {
        assert!(Instant::now() < deadline, "pushes never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(lock);
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn trailer_of(remote: &Remote, commit: &str) -> String {
    git(
        &remote.bare,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Haul-Promotion,valueonly)",
            commit,
        ],
    )
}

#[tokio::test]
async fn queued_pushes_to_one_branch_go_in_one_push() {
    let remote = Remote::new(1);
    let log = count_pushes(&remote);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let n = 8;
    let mut wts = Vec::new();
    for i in 0..n {
        let name = format!("promo-{i}");
        wts.push(
            promotion_commit(
                &cache,
                &remote,
                tmp.path(),
                &name,
                &format!("env-{i}.yaml"),
                "v\n",
            )
            .await,
        );
    }
    let results = push_queued(wts).await;
    assert_eq!(pushes(&log), 1, "one push for all queued promotions");
    let mut commits = Vec::new();
    for (i, (wt, r)) in results.into_iter().enumerate() {
        let out = r.expect("push");
        assert!(!out.already_pushed);
        // Each outcome names its own commit: on the branch, carrying its own trailer, and the
        // worktree is on it.
        git(
            &remote.bare,
            &["merge-base", "--is-ancestor", &out.commit, "main"],
        );
        assert_eq!(trailer_of(&remote, &out.commit), format!("promo-{i}"));
        assert_eq!(wt.head().await.expect("head"), out.commit);
        assert_eq!(status(&wt), "");
        commits.push(out.commit);
    }
    // Every promotion's commit exactly once, linear, in queue order.
    let subjects = remote.log("main");
    assert_eq!(subjects.len(), 1 + n, "{subjects:?}");
    for i in 0..n {
        let c = subjects
            .iter()
            .filter(|s| **s == format!("promo-{i}"))
            .count();
        assert_eq!(c, 1, "promo-{i} in {subjects:?}");
    }
    assert_eq!(remote.head("main"), commits[n - 1]);
    assert_eq!(
        git(&remote.bare, &["rev-list", "--merges", "--count", "main"]),
        "0"
    );
}

#[tokio::test]
async fn conflicting_entry_of_a_group_fails_alone() {
    let remote = Remote::new(1);
    let log = count_pushes(&remote);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let root = tmp.path();
    let a = promotion_commit(&cache, &remote, root, "a", "shared.txt", "line one\nA\n").await;
    let b = promotion_commit(&cache, &remote, root, "b", "shared.txt", "line one\nB\n").await;
    let b_commit = b.head().await.expect("head");
    let c = promotion_commit(&cache, &remote, root, "c", "c.txt", "c\n").await;
    let results = push_queued(vec![a, b, c]).await;
    assert_eq!(pushes(&log), 1);
    let mut it = results.into_iter();
    let (_, ra) = it.next().expect("a");
    let (b, rb) = it.next().expect("b");
    let (_, rc) = it.next().expect("c");
    let ra = ra.expect("a pushed");
    let rc = rc.expect("c pushed");
    match rb {
        Err(GitError::RebaseConflict { files, .. }) => assert_eq!(files, ["shared.txt"]),
        other => panic!("b: {other:?}"),
    }
    // b's worktree is back on its own commit, clean; a and c landed.
    assert_eq!(b.head().await.expect("head"), b_commit);
    assert_eq!(status(&b), "");
    assert_eq!(remote.log("main"), ["c", "a", "seed"]);
    assert_eq!(remote.head("main"), rc.commit);
    assert_eq!(trailer_of(&remote, &ra.commit), "a");
}

#[tokio::test]
async fn group_skips_a_promotion_already_on_the_branch() {
    let remote = Remote::new(1);
    let log = count_pushes(&remote);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = cache(&tmp.path().join("cache"));
    let root = tmp.path();
    // A first run of promotion "x" pushed; its re-run (checked out before) commits again.
    let mut first = promotion_commit(&cache, &remote, root, "x", "x.txt", "1\n").await;
    let rerun = cache
        .checkout(
            &remote.url,
            &Credentials::None,
            &Checkout::branch("main"),
            &root.join("work/x-rerun"),
        )
        .await
        .expect("checkout");
    let pushed = first
        .push(&Credentials::None, &fast_push())
        .await
        .expect("push");
    std::fs::write(rerun.path().join("x.txt"), "1\n").expect("write");
    rerun
        .commit_all_with_trailers("x again", &author(), &[(PROMOTION_TRAILER, "x")])
        .await
        .expect("commit");
    let y = promotion_commit(&cache, &remote, root, "y", "y.txt", "y\n").await;
    let results = push_queued(vec![rerun, y]).await;
    assert_eq!(pushes(&log), 2);
    let mut it = results.into_iter();
    let (rerun, rx) = it.next().expect("x");
    let (_, ry) = it.next().expect("y");
    let rx = rx.expect("x");
    let ry = ry.expect("y");
    assert!(rx.already_pushed);
    assert_eq!(rx.commit, pushed.commit);
    assert!(!ry.already_pushed);
    assert_eq!(remote.log("main"), ["y", "x", "seed"]);
    assert_eq!(rerun.head().await.expect("head"), pushed.commit);
}
