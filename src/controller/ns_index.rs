//! The names of a reflector store's objects by namespace, kept by the watch that fills the
//! store: a reconcile reads its project's objects without walking every object of the
//! cluster. (kube's `Store` has no index; with 50,000 Freight, filtering the whole store on
//! every Stage reconcile made reaching an idle cluster grow with the square of its size.)

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};

#[derive(Clone, Default)]
pub struct ByNamespace(Arc<RwLock<HashMap<String, BTreeSet<String>>>>);

impl ByNamespace {
    /// Records that `obj` is in its store (`present`) or was deleted from it.
    pub fn observe<K: kube::Resource>(&self, obj: &K, present: bool) {
        let meta = obj.meta();
        let (Some(ns), Some(name)) = (meta.namespace.as_ref(), meta.name.as_ref()) else {
            return;
        };
        let Ok(mut map) = self.0.write() else { return };
        if present {
            map.entry(ns.clone()).or_default().insert(name.clone());
        } else if let Some(names) = map.get_mut(ns) {
            names.remove(name);
            if names.is_empty() {
                map.remove(ns);
            }
        }
    }

    /// The objects of `ns` in `store`, in name order. Names the store no longer has (deleted
    /// while the watch was re-listing, which sends no deletion) are skipped and forgotten.
    pub fn get<K>(&self, store: &Store<K>, ns: &str) -> Vec<Arc<K>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let names: Vec<String> = match self.0.read() {
            Ok(map) => map
                .get(ns)
                .map(|n| n.iter().cloned().collect())
                .unwrap_or_default(),
            Err(_) => return Vec::new(),
        };
        let mut gone = Vec::new();
        let found = names
            .into_iter()
            .filter_map(|name| {
                let obj = store.get(&ObjectRef::<K>::new(&name).within(ns));
                if obj.is_none() {
                    gone.push(name);
                }
                obj
            })
            .collect();
        if !gone.is_empty()
            && let Ok(mut map) = self.0.write()
            && let Some(names) = map.get_mut(ns)
        {
            for name in gone {
                // Unless it came back meanwhile.
                if store.get(&ObjectRef::<K>::new(&name).within(ns)).is_none() {
                    names.remove(&name);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Stage, StageSpec};
    use kube::runtime::watcher::Event;

    // Any namespaced kind will do.
    type Freight = Stage;

    fn freight(ns: &str, name: &str) -> Freight {
        let mut f = Stage::new(name, StageSpec::default());
        f.metadata.namespace = Some(ns.into());
        f
    }

    #[test]
    fn lists_a_namespace_from_the_store_and_forgets_what_it_lost() {
        let (reader, mut writer) = kube::runtime::reflector::store::<Freight>();
        let index = ByNamespace::default();
        for f in [freight("a", "f2"), freight("a", "f1"), freight("b", "f1")] {
            writer.apply_watcher_event(&Event::Apply(f.clone()));
            index.observe(&f, true);
        }
        let names = |v: Vec<Arc<Freight>>| -> Vec<String> {
            v.iter().filter_map(|f| f.metadata.name.clone()).collect()
        };
        assert_eq!(names(index.get(&reader, "a")), ["f1", "f2"]);
        assert_eq!(names(index.get(&reader, "b")), ["f1"]);
        assert!(index.get(&reader, "c").is_empty());

        // Deleted with an event, and deleted during a re-list (no event).
        writer.apply_watcher_event(&Event::Delete(freight("a", "f1")));
        index.observe(&freight("a", "f1"), false);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(freight("a", "f2")));
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(names(index.get(&reader, "a")), ["f2"]);
        assert!(index.get(&reader, "b").is_empty());
        assert!(
            index
                .0
                .read()
                .expect("lock")
                .get("b")
                .is_some_and(|n| n.is_empty())
        );
    }
}
