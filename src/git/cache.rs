//! The repository cache: one bare repository per remote, fetched incrementally, worktrees added
//! from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use super::cmd::{Auth, Runner};
use super::error::{GitError, Result, classify};
use super::url::{RepoUrl, hex_digest};
use super::worktree::Worktree;
use super::{Author, Checkout, Credentials, GitRef, RemoteOptions, locks};

/// git's "infinite" depth: fetching with it un-shallows a history.
const INFINITE_DEPTH: u32 = 2_147_483_647;
/// Prefix of the local branches of worktrees.
pub(crate) const LOCAL_BRANCH_PREFIX: &str = "haul-wt/";

/// Settings of a [`RepoCache`].
#[derive(Debug, Clone)]
pub struct RepoCacheConfig {
    /// The git binary (default `git` from `PATH`).
    pub git_binary: PathBuf,
    /// The ssh binary git uses for `ssh://` and SCP-style URLs (default `ssh` from `PATH`).
    pub ssh_binary: PathBuf,
    /// Limit for any single git process; it is killed (with its children) after that.
    pub command_timeout: Duration,
    /// Most git processes running at once for this cache.
    pub max_concurrent_processes: usize,
    /// Accept `file://` URLs and absolute paths. Off by default: a tenant's repoURL must not
    /// read the operator's local files (including other tenants' cached repositories).
    pub allow_file_urls: bool,
    /// Repository URL → the URL it is fetched from and pushed to instead (`haul run-local
    /// --repo-override`). Keys are compared in normalized form. Callers keep using the URL as
    /// written; only the git processes see the replacement.
    pub fetch_urls: BTreeMap<String, String>,
}

impl Default for RepoCacheConfig {
    fn default() -> Self {
        Self {
            git_binary: PathBuf::from("git"),
            ssh_binary: PathBuf::from("ssh"),
            command_timeout: Duration::from_secs(600),
            max_concurrent_processes: 16,
            allow_file_urls: false,
            fetch_urls: BTreeMap::new(),
        }
    }
}

/// Counters of what the cache did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cached repositories created (the equivalent of a clone).
    pub clones: u64,
    /// Successful fetches into cached repositories.
    pub fetches: u64,
}

/// Cached bare repositories under one root directory, shared by all promotions of the process.
/// Cheap to clone.
#[derive(Clone)]
pub struct RepoCache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    root: PathBuf,
    repos: PathBuf,
    pub(crate) runner: Runner,
    /// `RepoCacheConfig::fetch_urls`, keyed by normalized URL.
    fetch_urls: BTreeMap<String, String>,
    clones: AtomicU64,
    fetches: AtomicU64,
    /// Signing keys of live worktrees, by worktree path (see [`Worktree::set_signing_key`]).
    /// In memory only: key material is never written to the cache.
    pub(crate) signing:
        std::sync::Mutex<std::collections::HashMap<PathBuf, super::worktree::WorktreeKeys>>,
    /// Worktrees this process checked out or opened, by path, so reopening one (every git
    /// step after git-clone does) spawns no git process. Entries go with [`Worktree::remove`]
    /// or a new checkout at the path.
    opened: std::sync::Mutex<std::collections::HashMap<PathBuf, Opened>>,
    /// Cached repositories whose `remote.origin.url` this process set or checked, with it
    /// (spares a `git config` per checkout).
    url_checked: std::sync::Mutex<std::collections::HashMap<PathBuf, String>>,
    /// Cached repositories this process fetched refs into (spares a `git for-each-ref`).
    fetched: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    /// Cached repositories pruned of stale worktrees and branches by this process. Later
    /// checkouts skip the prune: worktrees this process removes take their branches along.
    pruned: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    /// When the last successful fetch of (cached repository, refspec) started: a checkout
    /// asked for after that needs no fetch of its own (see [`RepoCache::checkout`]).
    fetch_started: std::sync::Mutex<std::collections::HashMap<(PathBuf, String), Instant>>,
}

impl std::fmt::Debug for RepoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoCache")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

/// How much history a fetch brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// `--depth=n` from the fetched tip.
    Shallow(u32),
    /// The full history (un-shallowing if needed).
    Full,
    /// Whatever connects the new tip to what is already there (no depth option).
    Incremental,
    /// `--deepen=n` below the current shallow boundary.
    Deepen(u32),
}

/// What [`RepoCache::open_worktree`] would find out about a worktree of this process.
#[derive(Clone)]
pub(crate) struct Opened {
    url: RepoUrl,
    repo_dir: PathBuf,
    branch: Option<String>,
    local_branch: Option<String>,
    skip_tls_verify: bool,
}

/// Locks one of the in-memory memos (poisoned only by a panic elsewhere; the data is intact).
fn memo<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RepoCache {
    /// A cache under `root` (created if missing) with default settings.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::with_config(root, RepoCacheConfig::default())
    }

    /// A cache under `root` (created if missing).
    pub fn with_config(root: impl Into<PathBuf>, config: RepoCacheConfig) -> Result<Self> {
        let root =
            std::path::absolute(root.into()).map_err(GitError::io("resolving cache root"))?;
        let repos = root.join("repos");
        let home = root.join("home");
        for d in [&repos, &home] {
            std::fs::create_dir_all(d).map_err(GitError::io("creating the git cache directory"))?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
                .map_err(GitError::io("restricting the git cache directory"))?;
        }
        remove_stale_temp_dirs(&repos);
        Ok(Self {
            inner: Arc::new(Inner {
                runner: Runner {
                    git: config.git_binary,
                    ssh: config.ssh_binary,
                    timeout: config.command_timeout,
                    procs: Semaphore::new(config.max_concurrent_processes.max(1)),
                    known_hosts: root.join("known_hosts"),
                    home,
                    allow_file: config.allow_file_urls,
                },
                fetch_urls: config
                    .fetch_urls
                    .into_iter()
                    .map(|(from, to)| (super::url::normalize_url(&from), to))
                    .collect(),
                root,
                repos,
                clones: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                signing: Default::default(),
                opened: Default::default(),
                url_checked: Default::default(),
                fetched: Default::default(),
                pruned: Default::default(),
                fetch_started: Default::default(),
            }),
        })
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            clones: self.inner.clones.load(Ordering::Relaxed),
            fetches: self.inner.fetches.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn runner(&self) -> &Runner {
        &self.inner.runner
    }

    /// The URL git fetches `url` from: its replacement in `fetch_urls`, or itself.
    pub(crate) fn parse_url(&self, url: &str) -> Result<RepoUrl> {
        let url = self
            .inner
            .fetch_urls
            .get(&super::url::normalize_url(url))
            .map_or(url, String::as_str);
        RepoUrl::parse(url, self.inner.runner.allow_file)
    }

    pub(crate) fn repo_dir(&self, url: &RepoUrl) -> PathBuf {
        self.inner.repos.join(format!("{}.git", url.cache_key()))
    }

    /// The cached partial clone (`--filter=blob:none`) of `url`, apart from the full one.
    pub(crate) fn blobless_repo_dir(&self, url: &RepoUrl) -> PathBuf {
        self.inner
            .repos
            .join(format!("{}{BLOBLESS_SUFFIX}", url.cache_key()))
    }

    /// The remote's refs (`git ls-remote`): `(refname, sha)` pairs, including `HEAD` and peeled
    /// tags (`refs/tags/v1^{}`). Needs no cached repository.
    pub async fn ls_remote(
        &self,
        repo_url: &str,
        creds: &Credentials,
    ) -> Result<Vec<(String, String)>> {
        Ok(self
            .ls_remote_refs(repo_url, creds, RemoteOptions::default(), false)
            .await?
            .0)
    }

    /// [`RepoCache::ls_remote`] plus the branch the remote's `HEAD` points to (`git ls-remote
    /// --symref`; `None` when the server does not say, e.g. for an empty repository).
    pub async fn ls_remote_with_head(
        &self,
        repo_url: &str,
        creds: &Credentials,
        opts: RemoteOptions,
    ) -> Result<(Vec<(String, String)>, Option<String>)> {
        self.ls_remote_refs(repo_url, creds, opts, true).await
    }

    async fn ls_remote_refs(
        &self,
        repo_url: &str,
        creds: &Credentials,
        opts: RemoteOptions,
        symref: bool,
    ) -> Result<(Vec<(String, String)>, Option<String>)> {
        let url = self.parse_url(repo_url)?;
        let auth = self
            .runner()
            .auth(&url, creds)?
            .skip_tls_verify(opts.skip_tls_verify);
        let home = self.inner.runner.home.clone();
        let mut cmd = self
            .runner()
            .cmd("ls-remote", &url.remote, &home)
            .auth(&auth)
            .arg("ls-remote");
        if symref {
            cmd = cmd.arg("--symref");
        }
        let out = cmd.arg(&url.remote).ok().await?;
        let mut head = None;
        let mut refs = Vec::new();
        for l in out.stdout.lines() {
            let Some((sha, name)) = l.split_once('\t') else {
                continue;
            };
            if let Some(target) = sha.strip_prefix("ref: ") {
                if name.trim() == "HEAD" {
                    head = target
                        .trim()
                        .strip_prefix("refs/heads/")
                        .map(str::to_string);
                }
                continue;
            }
            refs.push((name.trim().to_string(), sha.trim().to_string()));
        }
        Ok((refs, head))
    }

    /// For artifact discovery, which needs commit metadata but no worktree: fetches `refspecs`
    /// of `repo_url` into its cached repository (created on first use), then runs each of
    /// `reads` in it, still holding the repository's lock so no concurrent fetch changes the
    /// history in between. A read is the arguments of a local, read-only git command (`log`,
    /// `rev-list`, `for-each-ref`, `cat-file`, `rev-parse` or `show-ref`).
    ///
    /// `depth` is `git fetch --depth` while the cached repository is new or shallow; one that
    /// already holds complete history is fetched incrementally instead, so discovery never
    /// makes it shallow again. `None` fetches the complete history. Without refspecs nothing is
    /// fetched. Returns the standard output of each read, or `None` when the remote lacks one of
    /// the refs.
    pub async fn fetch_and_read(
        &self,
        repo_url: &str,
        creds: &Credentials,
        opts: RemoteOptions,
        refspecs: &[String],
        depth: Option<u32>,
        reads: &[Vec<String>],
    ) -> Result<Option<Vec<String>>> {
        const READ_ONLY: [&str; 6] = [
            "log",
            "rev-list",
            "for-each-ref",
            "cat-file",
            "rev-parse",
            "show-ref",
        ];
        let url = self.parse_url(repo_url)?;
        for read in reads {
            let command = read.first().map(String::as_str).unwrap_or_default();
            if !READ_ONLY.contains(&command) || read.iter().any(|a| a.starts_with("--output")) {
                return Err(GitError::InvalidArgument {
                    what: "git read",
                    reason: format!("{command:?} is not a read-only git command"),
                });
            }
        }
        if let Some(bad) = refspecs.iter().find(|r| r.is_empty() || r.starts_with('-')) {
            return Err(GitError::InvalidArgument {
                what: "refspec",
                reason: format!("{bad:?}"),
            });
        }
        let auth = self
            .runner()
            .auth(&url, creds)?
            .skip_tls_verify(opts.skip_tls_verify);
        let dir = if opts.blobless {
            self.blobless_repo_dir(&url)
        } else {
            self.repo_dir(&url)
        };
        let dir_key = dir.to_string_lossy().into_owned();
        let _repo_guard = locks::repo(&dir_key).await;
        self.ensure_repo(&url, &dir).await?;
        if !refspecs.is_empty() {
            let depth = match depth {
                None => Depth::Full,
                Some(n) => {
                    let has_refs = self.has_refs(&url, &dir).await?;
                    if has_refs && !dir.join("shallow").exists() {
                        Depth::Incremental
                    } else {
                        Depth::Shallow(n.max(1))
                    }
                }
            };
            let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
            if !self
                .fetch_refspecs(&url, &dir, &auth, &specs, depth)
                .await?
            {
                return Ok(None);
            }
        }
        let mut outputs = Vec::with_capacity(reads.len());
        for read in reads {
            let out = self
                .runner()
                .cmd("read", &url.remote, &dir)
                .git_dir(&dir)
                .args(read)
                .ok()
                .await?;
            outputs.push(out.stdout);
        }
        Ok(Some(outputs))
    }

    /// Checks out `checkout` of `repo_url` as a new worktree at `work_path`.
    ///
    /// The cached repository is created on first use and fetched (only the requested ref) on
    /// every call. Whatever is at `work_path` from an earlier run of the same promotion (a
    /// worktree of this cache, possibly with uncommitted changes) is discarded; anything else
    /// there is an error. Safe to call concurrently, also for the same repository and branch.
    pub async fn checkout(
        &self,
        repo_url: &str,
        creds: &Credentials,
        checkout: &Checkout,
        work_path: &Path,
    ) -> Result<Worktree> {
        let url = self.parse_url(repo_url)?;
        match &checkout.reference {
            GitRef::Branch(b) => validate_ref_name("branch", b)?,
            GitRef::Tag(t) => validate_ref_name("tag", t)?,
            GitRef::Commit(c) => validate_sha(c)?,
        }
        let work_path =
            std::path::absolute(work_path).map_err(GitError::io("resolving the work path"))?;
        let auth = self
            .runner()
            .auth(&url, creds)?
            .skip_tls_verify(checkout.skip_tls_verify);
        let dir = if checkout.blobless {
            self.blobless_repo_dir(&url)
        } else {
            self.repo_dir(&url)
        };
        let dir_key = dir.to_string_lossy().into_owned();
        let started = Instant::now();
        let fetched_before = super::timing::reported("fetch");

        let mut repo_guard = locks::repo(&dir_key).await;
        self.ensure_repo(&url, &dir).await?;
        // Shallow only for the first fetch into the cache. Fetching again with --depth makes
        // the server send the whole tree of the new tip (it becomes the new shallow boundary),
        // which costs as much as a fresh clone on a large repository; a plain fetch sends only
        // the objects new since what the cache already has.
        let depth = match checkout.depth {
            Some(n) => {
                let has_refs = self.has_refs(&url, &dir).await?;
                if has_refs {
                    Depth::Incremental
                } else {
                    Depth::Shallow(n.max(1))
                }
            }
            None => Depth::Full,
        };
        // Prune (three git processes) only when something may be stale: on this process's
        // first checkout of the repository, at a work path used before, or when a registered
        // worktree's directory is gone (deleted behind git's back).
        let reused_path = tokio::fs::symlink_metadata(&work_path).await.is_ok();
        let pruned =
            reused_path || !memo(&self.inner.pruned).contains(&dir) || has_missing_worktree(&dir);
        let worktrees = if pruned {
            let w = self.prune(&url, &dir).await?;
            memo(&self.inner.pruned).insert(dir.clone());
            w
        } else {
            Vec::new()
        };
        self.clear_work_path(&url, &dir, &work_path, &worktrees)
            .await?;

        let (branch, local_branch) = match &checkout.reference {
            GitRef::Branch(b) => {
                let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}");
                // Group fetch: a fetch of this branch that started after this checkout was
                // asked for (while it waited for the repository) brought all it would.
                let fresh = depth == Depth::Incremental
                    && memo(&self.inner.fetch_started)
                        .get(&(dir.clone(), refspec.clone()))
                        .is_some_and(|t| *t >= started);
                if fresh {
                    tracing::debug!(repo = %url.remote, branch = %b, "fetched since asked; not fetching again");
                } else if !self.fetch(&url, &dir, &auth, &refspec, depth).await? {
                    if !checkout.create_branch_if_missing {
                        return Err(GitError::BranchNotFound {
                            repo_url: url.remote.clone(),
                            branch: b.clone(),
                        });
                    }
                    // Lock order: branch before repository.
                    drop(repo_guard);
                    let branch_guard = locks::branch(&url.normalized, b).await;
                    repo_guard = locks::repo(&dir_key).await;
                    if !self.fetch(&url, &dir, &auth, &refspec, depth).await? {
                        self.create_orphan_branch(&url, &dir, &auth, b, &checkout.author)
                            .await?;
                        if !self.fetch(&url, &dir, &auth, &refspec, depth).await? {
                            return Err(GitError::BranchNotFound {
                                repo_url: url.remote.clone(),
                                branch: b.clone(),
                            });
                        }
                    }
                    drop(branch_guard);
                }
                let local = local_branch_name(&work_path, b);
                let add = || {
                    // With auth: a partial clone fetches the blobs it checks out.
                    let mut add = self
                        .runner()
                        .cmd("worktree add", &url.remote, &dir)
                        .git_dir(&dir)
                        .auth(&auth)
                        .args(["worktree", "add", "--quiet"]);
                    if !checkout.sparse.is_empty() {
                        add = add.arg("--no-checkout");
                    }
                    add.args(["--track", "-B", &local])
                        .arg(&work_path)
                        .arg(format!("refs/remotes/origin/{b}"))
                        .ok()
                };
                match add().await {
                    Ok(_) => {}
                    // Something unexpected was left behind: prune and try once more.
                    Err(e) if !pruned => {
                        tracing::debug!(repo = %url.remote, error = %e, "worktree add failed; pruning and retrying");
                        let worktrees = self.prune(&url, &dir).await?;
                        self.clear_work_path(&url, &dir, &work_path, &worktrees)
                            .await?;
                        add().await?;
                    }
                    Err(e) => return Err(e),
                }
                self.apply_sparse(&url, &auth, &work_path, &checkout.sparse)
                    .await?;
                (Some(b.clone()), Some(local))
            }
            GitRef::Tag(t) => {
                let refspec = format!("+refs/tags/{t}:refs/tags/{t}");
                if !self.fetch(&url, &dir, &auth, &refspec, depth).await? {
                    return Err(GitError::RefNotFound {
                        repo_url: url.remote.clone(),
                        kind: "tag",
                        reference: t.clone(),
                    });
                }
                self.add_detached(
                    &url,
                    &dir,
                    &auth,
                    &work_path,
                    &format!("refs/tags/{t}^{{commit}}"),
                )
                .await?;
                (None, None)
            }
            GitRef::Commit(c) => {
                let present = self
                    .runner()
                    .cmd("cat-file", &url.remote, &dir)
                    .git_dir(&dir)
                    .args(["cat-file", "-e", &format!("{c}^{{commit}}")])
                    .output()
                    .await?
                    .success();
                if !present && !self.fetch(&url, &dir, &auth, c, depth).await? {
                    return Err(GitError::RefNotFound {
                        repo_url: url.remote.clone(),
                        kind: "commit",
                        reference: c.clone(),
                    });
                }
                self.add_detached(&url, &dir, &auth, &work_path, c).await?;
                (None, None)
            }
        };
        let wt = Worktree {
            cache: self.clone(),
            url,
            repo_dir: dir,
            path: work_path,
            branch,
            local_branch,
            skip_tls_verify: checkout.skip_tls_verify,
        };
        // The rest touches only this worktree's own files and refs: other checkouts of the
        // repository need not wait for it.
        drop(repo_guard);
        wt.set_base("HEAD").await?;
        super::worktree::mark_skip_tls_verify(&wt.path, checkout.skip_tls_verify)?;
        self.remember_opened(&wt);
        if checkout.recurse_submodules {
            wt.update_submodules(creds).await?;
        }
        // What is not fetching: waiting for the repository, pruning, `worktree add`.
        let fetched = super::timing::reported("fetch").saturating_sub(fetched_before);
        super::timing::report("worktree", started.elapsed().saturating_sub(fetched));
        tracing::info!(repo = %wt.url.remote, reference = ?checkout.reference,
            depth = ?checkout.depth, path = %wt.path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64, "checked out git worktree");
        Ok(wt)
    }

    /// Re-attaches to a worktree made by [`RepoCache::checkout`] (e.g. after a restart, when a
    /// promotion's steps continue in the same work dir).
    pub async fn open_worktree(&self, repo_url: &str, work_path: &Path) -> Result<Worktree> {
        let url = self.parse_url(repo_url)?;
        let dir = self.repo_dir(&url);
        let path =
            std::path::absolute(work_path).map_err(GitError::io("resolving the work path"))?;
        let not_ours = || GitError::WorkPathInUse {
            path: path.clone(),
            repo_url: url.remote.clone(),
        };
        if !path.join(".git").is_file() {
            return Err(not_ours());
        }
        let known = memo(&self.inner.opened).get(&path).cloned();
        if let Some(o) = known.filter(|o| o.url.normalized == url.normalized) {
            return Ok(Worktree {
                cache: self.clone(),
                url: o.url,
                repo_dir: o.repo_dir,
                path,
                branch: o.branch,
                local_branch: o.local_branch,
                skip_tls_verify: o.skip_tls_verify,
            });
        }
        let mut wt = Worktree {
            cache: self.clone(),
            url: url.clone(),
            repo_dir: dir.clone(),
            path: path.clone(),
            branch: None,
            local_branch: None,
            skip_tls_verify: false,
        };
        let common = wt.cmd("rev-parse").args(["rev-parse", "--git-common-dir"]);
        let common = match common.read().await {
            Ok(c) => PathBuf::from(c),
            Err(_) => return Err(not_ours()),
        };
        let common = if common.is_absolute() {
            common
        } else {
            path.join(common)
        };
        let blobless = self.blobless_repo_dir(&url);
        if same_path(&common, &blobless) {
            wt.repo_dir = blobless;
        } else if !same_path(&common, &dir) {
            return Err(not_ours());
        }
        wt.skip_tls_verify = super::worktree::skips_tls_verify(&path);
        let head = wt
            .cmd("symbolic-ref")
            .args(["symbolic-ref", "-q", "--short", "HEAD"])
            .output()
            .await?;
        if head.success() {
            let local = head.stdout.trim().to_string();
            let merge = wt
                .cmd("config")
                .args(["config", "--get", &format!("branch.{local}.merge")])
                .output()
                .await?;
            wt.branch = merge
                .stdout
                .trim()
                .strip_prefix("refs/heads/")
                .map(str::to_string);
            wt.local_branch = Some(local);
        }
        self.remember_opened(&wt);
        Ok(wt)
    }

    fn remember_opened(&self, wt: &Worktree) {
        memo(&self.inner.opened).insert(
            wt.path.clone(),
            Opened {
                url: wt.url.clone(),
                repo_dir: wt.repo_dir.clone(),
                branch: wt.branch.clone(),
                local_branch: wt.local_branch.clone(),
                skip_tls_verify: wt.skip_tls_verify,
            },
        );
    }

    pub(crate) fn forget_opened(&self, path: &Path) {
        memo(&self.inner.opened).remove(path);
    }

    async fn add_detached(
        &self,
        url: &RepoUrl,
        dir: &Path,
        auth: &Auth,
        work_path: &Path,
        commitish: &str,
    ) -> Result<()> {
        self.runner()
            .cmd("worktree add", &url.remote, dir)
            .git_dir(dir)
            .auth(auth)
            .args(["worktree", "add", "--quiet", "--detach"])
            .arg(work_path)
            .arg(commitish)
            .ok()
            .await?;
        Ok(())
    }

    /// Restricts a worktree added with `--no-checkout` to `dirs` (cone mode) and writes only
    /// those files; nothing to do when `dirs` is empty.
    async fn apply_sparse(
        &self,
        url: &RepoUrl,
        auth: &Auth,
        work_path: &Path,
        dirs: &[String],
    ) -> Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        for d in dirs {
            if d.starts_with('-') || d.split('/').any(|c| c == "..") {
                return Err(GitError::InvalidArgument {
                    what: "sparse checkout directory",
                    reason: format!("{d:?}"),
                });
            }
        }
        let run = |op: &'static str| {
            self.runner()
                .cmd(op, &url.remote, work_path)
                .env("GIT_DIR", work_path.join(".git"))
                .env("GIT_WORK_TREE", work_path)
                .auth(auth)
        };
        run("sparse-checkout")
            .args(["sparse-checkout", "set", "--cone", "--"])
            .args(
                dirs.iter()
                    .map(|d| d.trim_start_matches("./").trim_end_matches('/')),
            )
            .ok()
            .await?;
        run("read-tree")
            .args(["read-tree", "-mu", "HEAD"])
            .ok()
            .await?;
        Ok(())
    }

    /// Whether the cached repository at `dir` has any ref yet (something was fetched into it).
    async fn has_refs(&self, url: &RepoUrl, dir: &Path) -> Result<bool> {
        if memo(&self.inner.fetched).contains(dir) {
            return Ok(true);
        }
        Ok(!self
            .runner()
            .cmd("for-each-ref", &url.remote, dir)
            .git_dir(dir)
            .args(["for-each-ref", "--count=1", "--format=x"])
            .read()
            .await?
            .is_empty())
    }

    /// Creates the bare repository for `url` if it does not exist yet (atomically: built in a
    /// temp dir, then renamed), and keeps its remote URL current. Caller holds the repo lock.
    async fn ensure_repo(&self, url: &RepoUrl, dir: &Path) -> Result<()> {
        let r = self.runner();
        if dir.join("HEAD").is_file() {
            if memo(&self.inner.url_checked).get(dir) == Some(&url.remote) {
                return Ok(());
            }
            let current = r
                .cmd("config", &url.remote, dir)
                .git_dir(dir)
                .args(["config", "--get", "remote.origin.url"])
                .output()
                .await?;
            if current.stdout.trim() != url.remote {
                r.cmd("config", &url.remote, dir)
                    .git_dir(dir)
                    .args(["config", "remote.origin.url", &url.remote])
                    .ok()
                    .await?;
            }
            memo(&self.inner.url_checked).insert(dir.to_path_buf(), url.remote.clone());
            return Ok(());
        }
        let tmp = self.inner.repos.join(format!(
            ".tmp-{}",
            hex_digest(&fastrand::u64(..).to_le_bytes(), 8)
        ));
        r.cmd("init", &url.remote, &self.inner.repos)
            .args(["init", "--quiet", "--bare", "--template="])
            .arg(&tmp)
            .ok()
            .await?;
        // A partial clone: blobs come from origin on demand (what `clone --filter=blob:none`
        // configures).
        let partial: &[(&str, &str)] = if is_blobless(dir) {
            &[
                ("core.repositoryFormatVersion", "1"),
                ("extensions.partialClone", "origin"),
                ("remote.origin.promisor", "true"),
                ("remote.origin.partialCloneFilter", "blob:none"),
            ]
        } else {
            &[]
        };
        let settings: [(&str, &str); 7] = [
            ("remote.origin.url", &url.remote),
            ("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
            // Concurrent worktrees update refs of this repository; wait for ref locks instead
            // of failing at once.
            ("core.filesRefLockTimeout", "10000"),
            ("core.packedRefsTimeout", "10000"),
            // Auto-gc runs in the foreground, inside the process group and timeout of the
            // command that triggered it.
            ("gc.autoDetach", "false"),
            ("core.logAllRefUpdates", "false"),
            ("fetch.showForcedUpdates", "false"),
        ];
        for (k, v) in settings.iter().chain(partial) {
            r.cmd("config", &url.remote, &self.inner.repos)
                .git_dir(&tmp)
                .args(["config", k, v])
                .ok()
                .await?;
        }
        tokio::fs::rename(&tmp, dir)
            .await
            .map_err(GitError::io("moving the new cached repository into place"))?;
        self.inner.clones.fetch_add(1, Ordering::Relaxed);
        tracing::info!(repo = %url.remote, dir = %dir.display(), "created cached git repository");
        Ok(())
    }

    /// Fetches `refspec` from origin. `Ok(false)` when the remote has no such ref. Caller holds
    /// the repo lock.
    pub(crate) async fn fetch(
        &self,
        url: &RepoUrl,
        dir: &Path,
        auth: &Auth,
        refspec: &str,
        depth: Depth,
    ) -> Result<bool> {
        let started = Instant::now();
        let found = self
            .fetch_refspecs(url, dir, auth, &[refspec], depth)
            .await?;
        if found {
            memo(&self.inner.fetch_started)
                .insert((dir.to_path_buf(), refspec.to_string()), started);
        }
        Ok(found)
    }

    /// [`RepoCache::fetch`] of several refspecs in one round trip; `Ok(false)` when the remote
    /// lacks any of them. Caller holds the repo lock.
    async fn fetch_refspecs(
        &self,
        url: &RepoUrl,
        dir: &Path,
        auth: &Auth,
        refspecs: &[&str],
        depth: Depth,
    ) -> Result<bool> {
        let mut cmd = self
            .runner()
            .cmd("fetch", &url.remote, dir)
            .git_dir(dir)
            .auth(auth)
            .args([
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
            ]);
        if is_blobless(dir) {
            cmd = cmd.arg("--filter=blob:none");
        }
        match depth {
            Depth::Shallow(n) => cmd = cmd.arg(format!("--depth={n}")),
            Depth::Full if dir.join("shallow").exists() => {
                cmd = cmd.arg(format!("--depth={INFINITE_DEPTH}"));
            }
            Depth::Full | Depth::Incremental => {}
            Depth::Deepen(n) => cmd = cmd.arg(format!("--deepen={n}")),
        }
        let started = std::time::Instant::now();
        let out = cmd.arg("origin").args(refspecs).output().await?;
        super::timing::report("fetch", started.elapsed());
        if out.success() {
            self.inner.fetches.fetch_add(1, Ordering::Relaxed);
            memo(&self.inner.fetched).insert(dir.to_path_buf());
            return Ok(true);
        }
        let e = out.stderr.to_ascii_lowercase();
        if e.contains("couldn't find remote ref")
            || e.contains("not our ref")
            || e.contains("no such remote ref")
            || e.contains("unadvertised object")
        {
            return Ok(false);
        }
        Err(classify(&url.remote, "fetch", out.code, &out.stderr))
    }

    /// Removes registrations of worktrees whose directories are gone and the local branches
    /// they left behind. Returns the paths of the remaining worktrees. Caller holds the lock.
    async fn prune(&self, url: &RepoUrl, dir: &Path) -> Result<Vec<PathBuf>> {
        let r = self.runner();
        r.cmd("worktree prune", &url.remote, dir)
            .git_dir(dir)
            .args(["worktree", "prune"])
            .ok()
            .await?;
        let list = r
            .cmd("worktree list", &url.remote, dir)
            .git_dir(dir)
            .args(["worktree", "list", "--porcelain"])
            .ok()
            .await?
            .stdout;
        let mut paths = Vec::new();
        let mut in_use = Vec::new();
        for line in list.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                // A worktree in the middle of a rebase (a push retry) shows as detached, so
                // its branch is also recognised by the path hash in its name.
                in_use.push(local_branch_stem(Path::new(p)));
                paths.push(PathBuf::from(p));
            } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                in_use.push(format!("{b}/"));
            }
        }
        let branches = r
            .cmd("for-each-ref", &url.remote, dir)
            .git_dir(dir)
            .args([
                "for-each-ref",
                "--format=%(refname:strip=2)",
                &format!("refs/heads/{LOCAL_BRANCH_PREFIX}"),
            ])
            .ok()
            .await?
            .stdout;
        let stale: Vec<&str> = branches
            .lines()
            .map(str::trim)
            .filter(|b| !b.is_empty() && !in_use.iter().any(|u| format!("{b}/").starts_with(u)))
            .collect();
        if !stale.is_empty() {
            tracing::debug!(repo = %url.remote, count = stale.len(), "deleting stale worktree branches");
            // Best effort: git itself refuses to delete a branch checked out (or being rebased)
            // in a worktree, and the next checkout tries again.
            let out = r
                .cmd("branch -D", &url.remote, dir)
                .git_dir(dir)
                .args(["branch", "--quiet", "-D"])
                .args(&stale)
                .output()
                .await?;
            if !out.success() {
                tracing::debug!(repo = %url.remote, stderr = %out.stderr.trim(),
                    "some stale worktree branches were not deleted");
            }
        }
        Ok(paths)
    }

    /// Makes `work_path` free for `git worktree add`. Caller holds the repo lock.
    async fn clear_work_path(
        &self,
        url: &RepoUrl,
        dir: &Path,
        work_path: &Path,
        worktrees: &[PathBuf],
    ) -> Result<()> {
        if worktrees.iter().any(|w| same_path(w, work_path)) {
            tracing::info!(repo = %url.remote, path = %work_path.display(),
                "discarding the worktree left at the work path by an earlier run");
            self.runner()
                .cmd("worktree remove", &url.remote, dir)
                .git_dir(dir)
                .args(["worktree", "remove", "--force", "--force"])
                .arg(work_path)
                .ok()
                .await?;
        }
        match tokio::fs::symlink_metadata(work_path).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::io("inspecting the work path")(e)),
            Ok(m) if m.is_dir() => {
                let mut entries = tokio::fs::read_dir(work_path)
                    .await
                    .map_err(GitError::io("reading the work path"))?;
                let empty = entries
                    .next_entry()
                    .await
                    .map_err(GitError::io("reading the work path"))?
                    .is_none();
                if empty {
                    tokio::fs::remove_dir(work_path)
                        .await
                        .map_err(GitError::io("clearing the work path"))?;
                } else if self.is_stale_worktree_of(dir, work_path).await {
                    tokio::fs::remove_dir_all(work_path)
                        .await
                        .map_err(GitError::io("clearing the work path"))?;
                } else {
                    return Err(GitError::WorkPathInUse {
                        path: work_path.to_path_buf(),
                        repo_url: url.remote.clone(),
                    });
                }
            }
            Ok(_) => {
                return Err(GitError::WorkPathInUse {
                    path: work_path.to_path_buf(),
                    repo_url: url.remote.clone(),
                });
            }
        }
        if let Some(parent) = work_path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(GitError::io("creating the work path's parent"))?;
        }
        Ok(())
    }

    /// Whether `path/.git` is a gitfile pointing into this cached repository's worktrees.
    async fn is_stale_worktree_of(&self, dir: &Path, path: &Path) -> bool {
        let Ok(content) = tokio::fs::read_to_string(path.join(".git")).await else {
            return false;
        };
        let Some(target) = content.trim().strip_prefix("gitdir: ") else {
            return false;
        };
        let target = Path::new(target);
        target.parent().is_some_and(|p| {
            p.file_name().is_some_and(|n| n == "worktrees")
                && p.parent().is_some_and(|d| same_path(d, dir))
        })
    }

    /// Pushes an empty root commit "Initial commit" as branch `b`. A concurrent creation by
    /// someone else is not an error (the caller fetches whatever is there). Caller holds the
    /// branch and repo locks.
    async fn create_orphan_branch(
        &self,
        url: &RepoUrl,
        dir: &Path,
        auth: &Auth,
        b: &str,
        author: &Author,
    ) -> Result<()> {
        let r = self.runner();
        let tree = r
            .cmd("hash-object", &url.remote, dir)
            .git_dir(dir)
            .args(["hash-object", "-t", "tree", "/dev/null"])
            .read()
            .await?;
        let commit = r
            .cmd("commit-tree", &url.remote, dir)
            .git_dir(dir)
            .args(["commit-tree", &tree, "-m", "Initial commit"])
            .env("GIT_AUTHOR_NAME", &author.name)
            .env("GIT_AUTHOR_EMAIL", &author.email)
            .env("GIT_COMMITTER_NAME", &author.name)
            .env("GIT_COMMITTER_EMAIL", &author.email)
            .read()
            .await?;
        let out = r
            .cmd("push", &url.remote, dir)
            .git_dir(dir)
            .auth(auth)
            .args(["push", "--porcelain", "origin"])
            .arg(format!("{commit}:refs/heads/{b}"))
            .output()
            .await?;
        if out.success() {
            tracing::info!(repo = %url.remote, branch = b, %commit, "created missing branch");
            return Ok(());
        }
        if out.stdout.contains("[rejected]") {
            tracing::info!(repo = %url.remote, branch = b, "branch was created concurrently");
            return Ok(());
        }
        Err(classify(&url.remote, "push", out.code, &out.stderr))
    }
}

/// Whether a worktree registered in the cached repository `dir` has lost its directory (read
/// from `worktrees/*/gitdir`, which names the worktree's `.git` file).
fn has_missing_worktree(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir.join("worktrees")) else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("gitdir"))
            .map(|g| !Path::new(g.trim()).exists())
            .unwrap_or(true)
    })
}

/// The local branch of the worktree at `work_path` that tracks remote branch `b`.
/// How the cached partial clone of a URL is named (`<hash>-blobless.git`).
const BLOBLESS_SUFFIX: &str = "-blobless.git";

fn is_blobless(dir: &Path) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(BLOBLESS_SUFFIX))
}

fn local_branch_name(work_path: &Path, b: &str) -> String {
    format!("{}{b}", local_branch_stem(work_path))
}

/// `haul-wt/<hash of the worktree path>/`: the prefix of every local branch of that worktree.
fn local_branch_stem(work_path: &Path) -> String {
    let h = hex_digest(work_path.as_os_str().as_encoded_bytes(), 6);
    format!("{LOCAL_BRANCH_PREFIX}{h}/")
}

/// Compares paths after resolving symlinks where they exist.
pub(crate) fn same_path(a: &Path, b: &Path) -> bool {
    let ca = std::fs::canonicalize(a).unwrap_or_else(|_| a.to_path_buf());
    let cb = std::fs::canonicalize(b).unwrap_or_else(|_| b.to_path_buf());
    ca == cb
}

/// Rejects names git would refuse or misread (`git check-ref-format` rules, plus no leading
/// `-` so a name can never be taken for an option).
pub(crate) fn validate_ref_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(GitError::InvalidArgument {
            what,
            reason: format!("{name:?}: {reason}"),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return bad("starts with '-' or '/', or ends with '/'");
    }
    if name.ends_with('.') || name.ends_with(".lock") || name == "@" || name == "HEAD" {
        return bad("ends with '.' or '.lock', or is '@' or 'HEAD'");
    }
    if name.contains("..") || name.contains("//") || name.contains("@{") || name.contains("/.") {
        return bad("contains '..', '//', '@{' or '/.'");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return bad("contains a space, control character or one of ~^:?*[\\");
    }
    Ok(())
}

fn validate_sha(sha: &str) -> Result<()> {
    if (sha.len() == 40 || sha.len() == 64) && sha.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(GitError::InvalidArgument {
            what: "commit",
            reason: format!("{sha:?} is not a full commit SHA"),
        })
    }
}

/// Removes `.tmp-*` directories of repository creations interrupted more than an hour ago.
fn remove_stale_temp_dirs(repos: &Path) {
    let Ok(entries) = std::fs::read_dir(repos) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old && std::fs::remove_dir_all(e.path()).is_ok() {
            tracing::debug!(dir = %e.path().display(), "removed interrupted cache directory");
        }
    }
}
