//! haul's git layer against a real git server over HTTP with basic auth (nginx + fcgiwrap +
//! git http-backend on 127.0.0.1).
//!
//! Uses the server named by `HAUL_TEST_GIT_URL` / `HAUL_TEST_GIT_ROOT` / `HAUL_TEST_GIT_USER` /
//! `HAUL_TEST_GIT_PASSWORD` when set (e.g. by `.ci/run`); otherwise each test starts its own
//! services with `hack/test-services.sh start <tmpdir>` and stops them when done.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use haul::git::{Author, Checkout, CommitOutcome, Credentials, GitError, PushOptions, RepoCache};
use support::gitops::percent_encode;

struct Services {
    url: String,
    root: PathBuf,
    user: String,
    password: String,
    /// Set when this test started the services (stopped on drop).
    owned: Option<tempfile::TempDir>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Services {
    fn get() -> Self {
        if let (Ok(url), Ok(root), Ok(user), Ok(password)) = (
            std::env::var("HAUL_TEST_GIT_URL"),
            std::env::var("HAUL_TEST_GIT_ROOT"),
            std::env::var("HAUL_TEST_GIT_USER"),
            std::env::var("HAUL_TEST_GIT_PASSWORD"),
        ) {
            return Self {
                url,
                root: PathBuf::from(root),
                user,
                password,
                owned: None,
            };
        }
        // Short path: the fcgiwrap socket path must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("hgit")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let script = repo_root().join("hack/test-services.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{} start failed (run `hack/test-services.sh install` first?):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -a; . "$1/env"; printf '%s\0' "$HAUL_TEST_GIT_URL" "$HAUL_TEST_GIT_ROOT" "$HAUL_TEST_GIT_USER" "$HAUL_TEST_GIT_PASSWORD""#,
            )
            .arg("_")
            .arg(dir.path())
            .output()
            .expect("bash runs");
        let text = String::from_utf8(vars.stdout).expect("utf-8 env");
        let v: Vec<&str> = text.split('\0').collect();
        assert!(v.len() >= 4 && !v[0].is_empty(), "bad env file: {text:?}");
        let svc = Self {
            url: v[0].to_string(),
            root: PathBuf::from(v[1]),
            user: v[2].to_string(),
            password: v[3].to_string(),
            owned: Some(dir),
        };
        assert!(svc.url.starts_with("http://127.0.0.1:"), "{}", svc.url);
        svc
    }

    /// A new empty bare repository on the server; its URL.
    fn new_repo(&self, name: &str) -> String {
        let name = format!("{name}-{}.git", std::process::id());
        let path = self.root.join(&name);
        git(&self.root, &["init", "-q", "--bare", "-b", "main", &name]);
        git(&path, &["config", "http.receivepack", "true"]);
        format!("{}/{name}", self.url)
    }

    fn bare(&self, url: &str) -> PathBuf {
        self.root.join(url.rsplit('/').next().expect("repo name"))
    }

    fn creds(&self) -> Credentials {
        Credentials::Basic {
            username: self.user.clone(),
            password: self.password.clone(),
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned {
            let _ = Command::new("bash")
                .arg(repo_root().join("hack/test-services.sh"))
                .arg("stop")
                .arg(dir.path())
                .output();
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn author() -> Author {
    Author {
        name: "Haul Test".into(),
        email: "haul@example.com".into(),
    }
}

/// Every file under `dir` (not following symlinks) whose bytes contain one of `needles`.
fn files_containing(dir: &Path, needles: &[&str]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && needles
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
            {
                hits.push(p);
            }
        }
    }
    hits
}

#[tokio::test]
async fn basic_auth_clone_commit_push() {
    let svc = Services::get();
    let url = svc.new_repo("gitops");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(tmp.path().join("cache")).expect("cache");
    let creds = svc.creds();

    // An empty repository: the branch is created with Kargo's empty "Initial commit".
    let mut wt = cache
        .checkout(
            &url,
            &creds,
            &Checkout::branch("main")
                .create_if_missing(true)
                .with_depth(1),
            &tmp.path().join("work/p1/repo"),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("app.yaml"), "image: v1\n").expect("write");
    let sha = match wt
        .commit_all("Promote v1", &author())
        .await
        .expect("commit")
    {
        CommitOutcome::Committed(s) => s,
        other => panic!("{other:?}"),
    };
    let out = wt
        .push(&creds, &PushOptions::default())
        .await
        .expect("push");
    assert_eq!(out.commit, sha);
    let bare = svc.bare(&url);
    assert_eq!(git(&bare, &["rev-parse", "main"]), sha);
    assert_eq!(
        git(&bare, &["log", "--format=%s", "main"]),
        "Promote v1\nInitial commit"
    );

    let refs = cache.ls_remote(&url, &creds).await.expect("ls-remote");
    assert!(
        refs.contains(&("refs/heads/main".to_string(), sha.clone())),
        "{refs:?}"
    );

    // The second checkout reuses the cache and sees the pushed commit.
    let wt2 = cache
        .checkout(
            &url,
            &creds,
            &Checkout::branch("main").with_depth(1),
            &tmp.path().join("work/p2/repo"),
        )
        .await
        .expect("second checkout");
    assert_eq!(wt2.head().await.expect("head"), sha);
    assert_eq!(cache.stats().clones, 1);

    // The password is nowhere on disk: not in .git/config, not anywhere in the cache or the
    // worktrees, neither raw nor URL-encoded.
    let encoded = percent_encode(&svc.password);
    let needles = [svc.password.as_str(), encoded.as_str()];
    let hits = files_containing(tmp.path(), &needles);
    assert!(hits.is_empty(), "password found in {hits:?}");
    let config = std::fs::read_to_string(
        std::fs::read_dir(cache.root().join("repos"))
            .expect("repos")
            .flatten()
            .next()
            .expect("one cached repo")
            .path()
            .join("config"),
    )
    .expect("config");
    assert!(config.contains(&format!("url = {url}")), "{config}");
    assert!(!config.contains('@'), "userinfo in config:\n{config}");
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let svc = Services::get();
    let url = svc.new_repo("locked");
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(tmp.path().join("cache")).expect("cache");
    let wrong_password = "not-the-Password-42";
    let wrong = Credentials::Basic {
        username: svc.user.clone(),
        password: wrong_password.into(),
    };
    let check = |err: &GitError| {
        assert!(
            matches!(err, GitError::Auth { repo_url, .. } if repo_url == &url),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&url), "{msg}");
        assert!(msg.contains("kargo.akuity.io/cred-type: git"), "{msg}");
        assert!(
            !msg.contains(wrong_password) && !msg.contains(&svc.password),
            "{msg}"
        );
        assert!(!format!("{err:?}").contains(wrong_password));
        assert!(err.is_terminal());
    };
    let err = cache
        .checkout(
            &url,
            &wrong,
            &Checkout::branch("main").create_if_missing(true),
            &tmp.path().join("w"),
        )
        .await
        .expect_err("wrong password");
    check(&err);
    let err = cache
        .ls_remote(&url, &wrong)
        .await
        .expect_err("wrong password");
    check(&err);
    // No credentials at all: git must not prompt, and it is an auth error too.
    let err = cache
        .ls_remote(&url, &Credentials::None)
        .await
        .expect_err("no credentials");
    check(&err);
    // The wrong password did not land on disk either.
    assert!(files_containing(tmp.path(), &[wrong_password]).is_empty());

    // Right credentials for the checkout, wrong ones for the push.
    let mut wt = cache
        .checkout(
            &url,
            &svc.creds(),
            &Checkout::branch("main").create_if_missing(true),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout");
    std::fs::write(wt.path().join("x"), "x").expect("write");
    wt.commit_all("x", &author()).await.expect("commit");
    let err = wt
        .push(&wrong, &PushOptions::default())
        .await
        .expect_err("push");
    check(&err);
}

#[tokio::test]
async fn credentials_in_the_url_are_used_but_never_stored() {
    let svc = Services::get();
    let url = svc.new_repo("inline");
    let with_userinfo = url.replacen(
        "http://",
        &format!(
            "http://{}:{}@",
            percent_encode(&svc.user),
            percent_encode(&svc.password)
        ),
        1,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RepoCache::new(tmp.path().join("cache")).expect("cache");
    let mut wt = cache
        .checkout(
            &with_userinfo,
            &Credentials::None,
            &Checkout::branch("main").create_if_missing(true),
            &tmp.path().join("w"),
        )
        .await
        .expect("checkout with userinfo URL");
    assert_eq!(wt.repo_url(), url);
    assert!(!format!("{wt:?}").contains(&percent_encode(&svc.password)));
    std::fs::write(wt.path().join("x"), "x").expect("write");
    wt.commit_all("x", &author()).await.expect("commit");
    wt.push(&Credentials::None, &PushOptions::default())
        .await
        .expect("push with the URL's credentials");
    let encoded = percent_encode(&svc.password);
    let hits = files_containing(tmp.path(), &[svc.password.as_str(), encoded.as_str()]);
    assert!(hits.is_empty(), "password found in {hits:?}");

    let bad = url.replacen("http://", &format!("http://{}:wrong-Pass-99@", svc.user), 1);
    let err = cache
        .ls_remote(&bad, &Credentials::None)
        .await
        .expect_err("wrong");
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-Pass-99"), "{err}");
}

/// Not a correctness test: what a checkout costs over HTTP, cold and warm, on a repository with
/// 3000 files and 200 commits, with bytes served taken from nginx's access log.
/// `cargo test --test git_http measure -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn measure_http_checkout_cost() {
    use std::time::Instant;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let svc = Services::get();
    let services_dir = match (&svc.owned, std::env::var("HAUL_TEST_SERVICES_DIR")) {
        (Some(d), _) => d.path().to_path_buf(),
        (None, Ok(d)) => PathBuf::from(d),
        (None, Err(_)) => panic!("HAUL_TEST_SERVICES_DIR not set"),
    };
    let access_log = services_dir.join("git/logs/access.log");
    let served = || -> u64 {
        std::fs::read_to_string(&access_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                // combined format: ... "REQUEST" STATUS BYTES "REFERER" "UA"
                let after = l.split('"').nth(2)?;
                after.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .sum()
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let scratch = tmp.path().join("scratch");
    git(tmp.path(), &["init", "-q", "-b", "main", "scratch"]);
    for i in 0..3000 {
        let d = scratch.join(format!("apps/app{}", i % 50));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join(format!("m{i}.yaml")),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m{i}\ndata:\n  k: \"{i}\"\n"
            ),
        )
        .expect("write");
    }
    let id = ["-c", "user.name=x", "-c", "user.email=x@x"];
    git(&scratch, &["add", "-A"]);
    git(
        &scratch,
        &[&id[..], &["commit", "-q", "-m", "many files"]].concat(),
    );
    for i in 0..200 {
        std::fs::write(
            scratch.join(format!("apps/app{}/m{i}.yaml", i % 50)),
            format!("v: {i}\n"),
        )
        .expect("write");
        git(
            &scratch,
            &[&id[..], &["commit", "-qam", &format!("history {i}")]].concat(),
        );
    }
    let url = svc.new_repo("big");
    git(
        &scratch,
        &["push", "-q", &svc.bare(&url).display().to_string(), "main"],
    );

    for depth in [None, Some(1)] {
        let cache = RepoCache::new(tmp.path().join(format!("cache-{depth:?}"))).expect("cache");
        let mut co = Checkout::branch("main");
        co.depth = depth;
        for round in 0..3 {
            if round == 2 {
                // Someone else pushes 10 commits before the third promotion.
                for i in 0..10 {
                    std::fs::write(scratch.join("apps/app1/m1.yaml"), format!("w: {i}\n"))
                        .expect("write");
                    git(&scratch, &[&id[..], &["commit", "-qam", "more"]].concat());
                }
                git(
                    &scratch,
                    &["push", "-q", &svc.bare(&url).display().to_string(), "main"],
                );
            }
            let before = served();
            let t = Instant::now();
            let wt = cache
                .checkout(
                    &url,
                    &svc.creds(),
                    &co,
                    &tmp.path().join(format!("w-{depth:?}-{round}")),
                )
                .await
                .expect("checkout");
            let elapsed = t.elapsed();
            // nginx writes the log line after the response; give it a moment.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            println!(
                "depth={depth:?} round={round}: checkout {elapsed:?}, {} KiB served, {:?}",
                (served() - before) / 1024,
                cache.stats()
            );
            drop(wt);
        }
    }
    let before = served();
    let t = Instant::now();
    git(
        tmp.path(),
        &[
            "-c",
            &format!(
                "http.extraHeader=Authorization: Basic {}",
                base64_basic(&svc.user, &svc.password)
            ),
            "clone",
            "-q",
            &url,
            "plain",
        ],
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    println!(
        "baseline full `git clone` per promotion: {:?}, {} KiB served",
        t.elapsed(),
        (served() - before) / 1024
    );
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
