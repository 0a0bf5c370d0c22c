//! Group commit: pushes to one branch that queue up while another push to it is in flight are
//! combined into one fetch-rebase-push round.
//!
//! Per (cached repository, branch) a queue. A pusher enqueues its worktree and, if no leader is
//! running for that queue, starts one (a spawned task, so a caller that gives up cannot leave
//! the others waiting). The leader, holding the branch lock, takes what is queued and, in
//! order: skips a promotion already on the remote (dedupe by trailer), rebases each worktree's
//! own commits onto the previous one's (objects are shared: the worktrees belong to one cached
//! repository), and pushes the last one. Every worktree ends on its own commit of the chain, so
//! each caller's outcome names its own commit. A rebase conflict fails only that entry. A
//! non-fast-forward rejection costs one fetch and a rebuilt chain, as a single push would.
//! Worktrees of separate caches never share a queue (their commits are in separate object
//! databases), nor do pushes with different credentials (one caller's credentials never push
//! another's commits).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use tokio::sync::oneshot;

use super::{PushAttempt, Worktree};
use crate::git::cache::Depth;
use crate::git::cmd::Auth;
use crate::git::error::{GitError, Result};
use crate::git::{Credentials, PROMOTION_TRAILER, PushOptions, PushOutcome, locks};

/// (cached repository dir, target branch).
type Key = (PathBuf, String);

struct Request {
    wt: Worktree,
    creds: Credentials,
    opts: PushOptions,
    reply: oneshot::Sender<Result<PushOutcome>>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Request>,
    /// A leader task is running for this queue.
    leading: bool,
}

static QUEUES: LazyLock<Mutex<HashMap<Key, Queue>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn queues() -> std::sync::MutexGuard<'static, HashMap<Key, Queue>> {
    // Poisoned only if a thread panicked while holding it; the map itself is intact.
    QUEUES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queues `wt`'s push of HEAD to `target` and waits for its outcome.
pub(super) async fn submit(
    wt: Worktree,
    target: String,
    creds: Credentials,
    opts: PushOptions,
) -> Result<PushOutcome> {
    let (reply, rx) = oneshot::channel();
    let key = (wt.repo_dir.clone(), target);
    let start = {
        let mut map = queues();
        let q = map.entry(key.clone()).or_default();
        q.pending.push_back(Request {
            wt,
            creds,
            opts,
            reply,
        });
        !std::mem::replace(&mut q.leading, true)
    };
    if start {
        tokio::spawn(lead(key));
    }
    rx.await.unwrap_or_else(|_| {
        Err(GitError::Io {
            op: "pushing",
            source: std::io::Error::other("the push task ended without an outcome"),
        })
    })
}

/// Ends leadership if the leader task unwinds: the queue must not stay marked as led, and
/// waiting callers get an error (their reply senders are dropped) rather than hang.
struct LeaderGuard {
    key: Key,
    done: bool,
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if !self.done {
            queues().remove(&self.key);
        }
    }
}

async fn lead(key: Key) {
    let mut guard = LeaderGuard {
        key: key.clone(),
        done: false,
    };
    loop {
        // The URL for the branch lock; only the leader removes entries, so the queue can only
        // grow between this look and taking the batch.
        let url = {
            let mut map = queues();
            match map.get(&key).and_then(|q| q.pending.front()) {
                Some(r) => r.wt.url.normalized.clone(),
                None => {
                    map.remove(&key);
                    guard.done = true;
                    return;
                }
            }
        };
        let _branch = locks::branch(&url, &key.1).await;
        let batch = take_batch(&key);
        if !batch.is_empty() {
            run_batch(batch, &key.1).await;
        }
    }
}

/// Everything queued that pushes with the first entry's credentials and TLS setting.
fn take_batch(key: &Key) -> Vec<Request> {
    let mut map = queues();
    let Some(q) = map.get_mut(key) else {
        return Vec::new();
    };
    let Some(first) = q.pending.front() else {
        return Vec::new();
    };
    let (creds, tls) = (first.creds.clone(), first.wt.skip_tls_verify);
    let (batch, rest): (Vec<_>, Vec<_>) = q
        .pending
        .drain(..)
        .partition(|r| r.creds == creds && r.wt.skip_tls_verify == tls);
    q.pending = rest.into();
    batch
}

/// One queued push and what the batch knows about it.
struct Entry {
    req: Request,
    /// Its HEAD's promotion trailer, when HEAD is not yet on the remote branch.
    promotion: Option<String>,
    /// Its HEAD once chained.
    head: Option<String>,
}

impl Entry {
    fn reply(self, r: Result<PushOutcome>) {
        // The caller may have given up; its worktree was still handled consistently.
        let _ = self.req.reply.send(r);
    }
}

async fn run_batch(batch: Vec<Request>, target: &str) {
    let Some(first) = batch.first() else { return };
    let auth = match first.wt.auth(&first.creds) {
        Ok(a) => a,
        Err(e) => {
            for r in batch {
                let _ = r.reply.send(Err(duplicate(&e)));
            }
            return;
        }
    };
    let tracking = format!("refs/remotes/origin/{target}");
    let max = batch
        .iter()
        .map(|r| r.opts.max_attempts.max(1))
        .max()
        .unwrap_or(1);
    let backoff = first.opts.backoff.clone();
    // Read-only and independent per worktree: all at once.
    let promotions =
        futures::future::join_all(batch.iter().map(|r| r.wt.unpushed_promotion(&tracking))).await;
    let mut live = Vec::with_capacity(batch.len());
    for (req, promotion) in batch.into_iter().zip(promotions) {
        match promotion {
            Ok(promotion) => live.push(Entry {
                req,
                promotion,
                head: None,
            }),
            Err(e) => {
                let _ = req.reply.send(Err(e));
            }
        }
    }
    let size = live.len();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The remote-tracking ref is the cached repository's, shared by all the worktrees.
        let tip = match live.first() {
            Some(e) => match e.req.wt.try_rev_parse(&tracking).await {
                Ok(t) => t,
                Err(err) => {
                    fail_all(live, &err);
                    return;
                }
            },
            None => return,
        };
        live = skip_already_pushed(live, &auth, target, &tracking, tip.is_some(), attempt).await;
        live = chain(live, &auth, target, tip).await;
        let Some(last) = live.last() else { return };
        let pushed = {
            let _g = locks::repo(&last.req.wt.repo_dir.to_string_lossy()).await;
            last.req.wt.try_push(&auth, target, false).await
        };
        match pushed {
            Ok(PushAttempt::Pushed) => {
                tracing::info!(repo = %last.req.wt.url.remote, branch = %target, attempts = attempt,
                    commits = live.len(), queued = size, "pushed");
                for e in live {
                    let r = settle_pushed(&e.req.wt, e.head.as_deref(), target, attempt).await;
                    e.reply(r);
                }
                return;
            }
            Ok(PushAttempt::NonFastForward) if attempt >= max => {
                let repo_url = last.req.wt.url.remote.clone();
                for e in live {
                    e.reply(Err(GitError::PushRetriesExhausted {
                        repo_url: repo_url.clone(),
                        branch: target.to_string(),
                        attempts: attempt,
                    }));
                }
                return;
            }
            Ok(PushAttempt::NonFastForward) => {
                // The first rejection usually means the branch moved once: fetch at once. Back
                // off only when someone keeps moving it.
                let delay = if attempt == 1 {
                    std::time::Duration::ZERO
                } else {
                    backoff.delay(attempt - 1)
                };
                tracing::info!(repo = %last.req.wt.url.remote, branch = %target, attempt,
                    commits = live.len(), delay_ms = delay.as_millis() as u64,
                    "push rejected (non-fast-forward); fetching and rebasing");
                tokio::time::sleep(delay).await;
                let wt = &last.req.wt;
                let fetched = {
                    let _g = locks::repo(&wt.repo_dir.to_string_lossy()).await;
                    let refspec = format!("+refs/heads/{target}:refs/remotes/origin/{target}");
                    wt.cache
                        .fetch(&wt.url, &wt.repo_dir, &auth, &refspec, Depth::Incremental)
                        .await
                };
                if let Err(err) = fetched {
                    fail_all(live, &err);
                    return;
                }
            }
            Err(err) => {
                fail_all(live, &err);
                return;
            }
        }
    }
}

fn fail_all(live: Vec<Entry>, err: &GitError) {
    for e in live {
        e.reply(Err(duplicate(err)));
    }
}

/// Answers the entries whose promotion is already on the remote branch (their worktree is
/// reset to it); returns the others.
async fn skip_already_pushed(
    live: Vec<Entry>,
    auth: &Auth,
    target: &str,
    tracking: &str,
    tracking_exists: bool,
    attempt: u32,
) -> Vec<Entry> {
    let mut kept = Vec::with_capacity(live.len());
    for e in live {
        let Some(value) = e.promotion.clone() else {
            kept.push(e);
            continue;
        };
        let wt = &e.req.wt;
        let depth = e.req.opts.dedupe_search_depth;
        match wt
            .find_in_tracking(
                auth,
                target,
                PROMOTION_TRAILER,
                &value,
                depth,
                tracking_exists,
            )
            .await
        {
            Ok(None) => kept.push(e),
            Ok(Some(sha)) => {
                let r = wt
                    .settle_already_pushed(auth, tracking, target, sha, &value, attempt)
                    .await;
                e.reply(r);
            }
            Err(err) => e.reply(Err(err)),
        }
    }
    kept
}

/// Rebases each entry's own commits onto the previous entry's HEAD (the first onto `tip`, the
/// remote-tracking branch's commit). An entry that cannot be rebased is answered with its
/// error (its worktree is back where it was) and left out of the chain.
async fn chain(live: Vec<Entry>, auth: &Auth, target: &str, mut tip: Option<String>) -> Vec<Entry> {
    let mut chained = Vec::with_capacity(live.len());
    for mut e in live {
        let wt = &e.req.wt;
        if let Some(t) = &tip
            && let Err(err) = wt.rebase_onto(auth, t, target).await
        {
            e.reply(Err(err));
            continue;
        }
        match wt.head().await {
            Ok(head) => {
                tip = Some(head.clone());
                e.head = Some(head);
                chained.push(e);
            }
            Err(err) => e.reply(Err(err)),
        }
    }
    chained
}

async fn settle_pushed(
    wt: &Worktree,
    head: Option<&str>,
    target: &str,
    attempts: u32,
) -> Result<PushOutcome> {
    let commit = match head {
        Some(h) => h.to_string(),
        None => wt.head().await?,
    };
    wt.set_base(&commit).await?;
    tracing::debug!(repo = %wt.url.remote, branch = %target, %commit, "commit pushed");
    Ok(PushOutcome {
        commit,
        branch: target.to_string(),
        already_pushed: false,
        attempts,
    })
}

/// A copy of `e` for each member of a batch that failed as a whole (`GitError` holds an
/// `io::Error`, which is not `Clone`).
fn duplicate(e: &GitError) -> GitError {
    match e {
        GitError::SigningKey {
            source_name,
            reason,
        } => GitError::SigningKey {
            source_name: source_name.clone(),
            reason: reason.clone(),
        },
        GitError::Auth { repo_url, op } => GitError::Auth {
            repo_url: repo_url.clone(),
            op,
        },
        GitError::RepoNotFound { repo_url, op } => GitError::RepoNotFound {
            repo_url: repo_url.clone(),
            op,
        },
        GitError::BranchNotFound { repo_url, branch } => GitError::BranchNotFound {
            repo_url: repo_url.clone(),
            branch: branch.clone(),
        },
        GitError::Network {
            repo_url,
            op,
            detail,
        } => GitError::Network {
            repo_url: repo_url.clone(),
            op,
            detail: detail.clone(),
        },
        GitError::Timeout {
            repo_url,
            op,
            after,
        } => GitError::Timeout {
            repo_url: repo_url.clone(),
            op,
            after: *after,
        },
        GitError::PushRejected {
            repo_url,
            branch,
            detail,
        } => GitError::PushRejected {
            repo_url: repo_url.clone(),
            branch: branch.clone(),
            detail: detail.clone(),
        },
        GitError::InvalidArgument { what, reason } => GitError::InvalidArgument {
            what,
            reason: reason.clone(),
        },
        GitError::Command {
            repo_url,
            op,
            status,
            stderr,
        } => GitError::Command {
            repo_url: repo_url.clone(),
            op,
            status: *status,
            stderr: stderr.clone(),
        },
        GitError::Io { op, source } => GitError::Io {
            op,
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        // The rest do not arise from a batch-wide step; keep their message.
        other => GitError::Io {
            op: "pushing",
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// How many pushes wait in the queue of (`repo_dir`, `branch`).
#[cfg(test)]
pub(crate) fn queued(repo_dir: &std::path::Path, branch: &str) -> usize {
    queues()
        .get(&(repo_dir.to_path_buf(), branch.to_string()))
        .map_or(0, |q| q.pending.len())
}
