//! Objects as this process's own writes returned them, until the reflector store shows that
//! version or a newer one. A reconcile reading the store right after its own status write
//! would otherwise plan from the copy before it (redoing effects, or writing an older status
//! back); with this it reads from memory and still sees its own writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Resource;

/// How long a remembered write may wait for the store before it is dropped (the object was
/// deleted, or the store is not being updated).
const TTL: Duration = Duration::from_secs(600);

/// Per UID, the last object this process wrote.
pub struct OwnWrites<K>(Mutex<HashMap<String, (Instant, Arc<K>)>>);

impl<K> Default for OwnWrites<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Resource> OwnWrites<K> {
    /// Remembers `written`, as the API server returned it.
    pub fn remember(&self, written: K) {
        let Some(uid) = written.meta().uid.clone() else {
            return;
        };
        if let Ok(mut w) = self.0.lock() {
            w.retain(|_, (at, _)| at.elapsed() < TTL);
            w.insert(uid, (Instant::now(), Arc::new(written)));
        }
    }

    /// The newest copy of `cached` (from the store) this process knows: its own last write
    /// when the store does not show it yet. `None` when the versions cannot be compared: the
    /// caller reads live.
    pub fn freshest(&self, cached: &Arc<K>) -> Option<Arc<K>> {
        let uid = cached.meta().uid.as_deref()?;
        let mut w = self.0.lock().ok()?;
        let Some((_, written)) = w.get(uid) else {
            return Some(cached.clone());
        };
        if newer_version(
            written.meta().resource_version.as_deref(),
            cached.meta().resource_version.as_deref(),
        )? {
            return Some(written.clone());
        }
        w.remove(uid);
        Some(cached.clone())
    }
}

/// Whether resourceVersion `a` is newer than `b`; `None` when either is not a number.
/// Kubernetes calls resourceVersions opaque, but an etcd-backed API server issues etcd's
/// revisions, which only grow; where that does not hold the caller reads live instead.
fn newer_version(a: Option<&str>, b: Option<&str>) -> Option<bool> {
    let a: u64 = a?.parse().ok()?;
    let b: u64 = b?.parse().ok()?;
    Some(a > b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Stage;

    fn stage(rv: &str, note: &str) -> Stage {
        let mut s = Stage::new("dev", Default::default());
        s.metadata.uid = Some("u1".into());
        s.metadata.resource_version = Some(rv.into());
        s.metadata.annotations = Some([("note".to_string(), note.to_string())].into());
        s
    }

    fn note(s: &Stage) -> String {
        s.metadata.annotations.as_ref().unwrap()["note"].clone()
    }

    #[test]
    fn own_write_wins_until_the_store_catches_up() {
        let w = OwnWrites::default();
        let before = Arc::new(stage("10", "store"));
        assert_eq!(note(&w.freshest(&before).unwrap()), "store");
        w.remember(stage("12", "written"));
        // The store still shows the version before the write.
        assert_eq!(note(&w.freshest(&before).unwrap()), "written");
        // The store has it (or something newer): the store's copy, and the entry is gone.
        let caught_up = Arc::new(stage("13", "newer"));
        assert_eq!(note(&w.freshest(&caught_up).unwrap()), "newer");
        assert_eq!(note(&w.freshest(&before).unwrap()), "store");
    }

    #[test]
    fn versions_that_are_not_numbers_mean_read_live() {
        let w = OwnWrites::default();
        w.remember(stage("abc", "written"));
        assert!(w.freshest(&Arc::new(stage("10", "store"))).is_none());
    }
}
