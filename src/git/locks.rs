//! Process-wide async mutexes keyed by a string: one per cached repository (fetch, worktree
//! add/remove) and one per (repository, branch) (push). Entries are dropped when unused.
//!
//! Lock order, to rule out deadlocks: a branch lock is always taken before a repository lock.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Table = Mutex<HashMap<String, Weak<AsyncMutex<()>>>>;

static REPO_LOCKS: LazyLock<Table> = LazyLock::new(|| Mutex::new(HashMap::new()));
static BRANCH_LOCKS: LazyLock<Table> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Held while the guarded operation runs.
pub(crate) type Guard = OwnedMutexGuard<()>;

fn entry(table: &Table, key: String) -> Arc<AsyncMutex<()>> {
    // A poisoned table only means another thread panicked while inserting; the map is intact.
    let mut map = table.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = map.get(&key).and_then(Weak::upgrade) {
        return m;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let m = Arc::new(AsyncMutex::new(()));
    map.insert(key, Arc::downgrade(&m));
    m
}

/// Serialises fetches and worktree bookkeeping on one cached repository (keyed by its directory).
pub(crate) async fn repo(key: &str) -> Guard {
    entry(&REPO_LOCKS, key.to_string()).lock_owned().await
}

/// Serialises pushes to one branch of one repository (keyed by the normalised URL).
pub(crate) async fn branch(normalized_url: &str, branch: &str) -> Guard {
    entry(&BRANCH_LOCKS, format!("{normalized_url}\u{0}{branch}"))
        .lock_owned()
        .await
}
