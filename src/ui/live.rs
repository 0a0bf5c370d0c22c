//! Live project pages. For each (user identity, project) one feed watches the project's
//! Warehouses, Stages, Freight and Promotions with that user's client (kube's watcher and
//! reflector), keeps the latest [`Snapshot`](super::snapshot::Snapshot) serialized once, and
//! the user's permissions (re-asked when the Stages change, periodically, and after an action
//! was refused). Every open page of that user and project reads the same feed as
//! Server-Sent Events; a feed outlives its last page for [`LINGER`], so reopening or
//! reloading a page gets the snapshot at once from warm caches instead of listing again.
//!
//! Feeds are keyed by the identity: two users never share one, so nobody sees a project
//! through another user's permissions.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::Event;
use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::permissions;
use super::snapshot;
use crate::api::{Freight, Promotion, Stage, Warehouse};

/// Changes closer together than this are sent as one snapshot (a Promotion's steps update
/// status many times a second). The first snapshot goes out as soon as all four are listed.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How long a feed keeps watching after its last page closed.
pub const LINGER: Duration = Duration::from_secs(300);
/// How often the user's permissions are asked again while a feed runs (RBAC can change
/// without any change to the project's objects).
pub const PERMISSIONS_PERIOD: Duration = Duration::from_secs(45);
/// How often a feed checks whether it is still wanted.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// What a page is sent: each part serialized once per change, shared by every page.
#[derive(Debug, Clone, Default)]
struct Latest {
    snapshot: Option<Arc<str>>,
    permissions: Option<Arc<str>>,
    problem: Option<Arc<str>>,
}

/// Who watches what: the identity's key (see [`super::identity::Identity::resolve`]) and the
/// project.
type FeedKey = (String, String);

struct Feed {
    latest: watch::Sender<Latest>,
    /// Ask the permissions again now (an action was refused).
    recheck: Arc<Notify>,
}

/// The running feeds.
#[derive(Default)]
pub struct Hub {
    feeds: Mutex<HashMap<FeedKey, Feed>>,
}

impl Hub {
    /// A receiver of the feed of `project` as `identity` sees it through `client`, started when
    /// none runs.
    fn subscribe(
        self: &Arc<Self>,
        identity: &str,
        client: kube::Client,
        project: &str,
    ) -> watch::Receiver<Latest> {
        let key = (identity.to_string(), project.to_string());
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = feeds.get(&key) {
            return feed.latest.subscribe();
        }
        let (latest, rx) = watch::channel(Latest::default());
        let recheck = Arc::new(Notify::new());
        feeds.insert(
            key.clone(),
            Feed {
                latest: latest.clone(),
                recheck: recheck.clone(),
            },
        );
        tokio::spawn(run(self.clone(), key, client, latest, recheck));
        rx
    }

    /// Starts the feed of `project` as `identity` sees it before any page asks for it, so the
    /// page opened next renders from warm caches instead of listing first (a 150-Stage
    /// project's listing is most of its first paint). Unread, it ends after [`LINGER`] like a
    /// feed whose pages closed.
    pub fn warm(self: &Arc<Self>, identity: &str, client: kube::Client, project: &str) {
        drop(self.subscribe(identity, client, project));
    }

    /// Asks `identity`'s permissions in `project` again, if a feed runs.
    pub fn recheck(&self, identity: &str, project: &str) {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = feeds.get(&(identity.to_string(), project.to_string())) {
            feed.recheck.notify_one();
        }
    }

    /// Ends the feed `key` if nobody has read it for [`LINGER`]; decided under the lock, so a
    /// page subscribing meanwhile keeps it.
    fn retire_if_idle(&self, key: &FeedKey, idle_since: Option<Instant>) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        let Some(feed) = feeds.get(key) else {
            return true;
        };
        let idle =
            feed.latest.receiver_count() == 0 && idle_since.is_some_and(|t| t.elapsed() >= LINGER);
        if idle {
            feeds.remove(key);
        }
        idle
    }

    fn receivers(&self, key: &FeedKey) -> usize {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        feeds
            .get(key)
            .map(|f| f.latest.receiver_count())
            .unwrap_or(0)
    }
}

/// What one watched stream reported.
enum Change {
    /// The first listing of kind `usize` is in the store.
    Ready(usize),
    Changed,
    Failed(String),
}

fn watch_kind<K>(
    api: Api<K>,
    store: reflector::store::Writer<K>,
    kind: usize,
) -> futures::stream::BoxStream<'static, Change>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    reflector::reflector(
        store,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .map(move |e| match e {
        Ok(watcher::Event::InitDone) => Change::Ready(kind),
        Ok(_) => Change::Changed,
        Err(e) => Change::Failed(e.to_string()),
    })
    .boxed()
}

fn owned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

/// The Server-Sent Events of project `ns` as the identity `identity` (with `client`) sees it:
/// the latest snapshot, permissions and problem at once, then each change.
pub fn project_events(
    hub: &Arc<Hub>,
    identity: &str,
    client: kube::Client,
    ns: String,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let rx = hub.subscribe(identity, client, &ns);
    futures::stream::unfold(
        (rx, Latest::default(), true),
        |(mut rx, mut sent, first)| async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let now = rx.borrow_and_update().clone();
            let events = events_between(&sent, &now);
            sent = now;
            Some((futures::stream::iter(events), (rx, sent, false)))
        },
    )
    .flatten()
}

/// The events that bring a page from `sent` to `now`: the snapshot first, so the page renders
/// before anything else arrives.
fn events_between(sent: &Latest, now: &Latest) -> Vec<Result<Event, Infallible>> {
    let changed = |a: &Option<Arc<str>>, b: &Option<Arc<str>>| match (a, b) {
        (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
        (None, Some(_)) => true,
        _ => false,
    };
    let mut out = Vec::new();
    for (name, before, after) in [
        ("snapshot", &sent.snapshot, &now.snapshot),
        ("permissions", &sent.permissions, &now.permissions),
        ("problem", &sent.problem, &now.problem),
    ] {
        if changed(before, after)
            && let Some(data) = after
        {
            out.push(Ok(Event::default().event(name).data(&**data)));
        }
    }
    out
}

/// The feed's task: watches, snapshots, permissions, until idle for [`LINGER`].
async fn run(
    hub: Arc<Hub>,
    key: FeedKey,
    client: kube::Client,
    latest: watch::Sender<Latest>,
    recheck: Arc<Notify>,
) {
    let ns = key.1.clone();
    let (warehouses, w) = reflector::store::<Warehouse>();
    let (stages, s) = reflector::store::<Stage>();
    let (freight, f) = reflector::store::<Freight>();
    let (promotions, p) = reflector::store::<Promotion>();
    let mut changes = futures::stream::select_all([
        watch_kind(Api::namespaced(client.clone(), &ns), w, 0),
        watch_kind(Api::namespaced(client.clone(), &ns), s, 1),
        watch_kind(Api::namespaced(client.clone(), &ns), f, 2),
        watch_kind(Api::namespaced(client.clone(), &ns), p, 3),
    ]);
    let (names_tx, names_rx) = watch::channel::<Option<Vec<String>>>(None);
    let perms = tokio::spawn(permissions_loop(
        client.clone(),
        ns.clone(),
        names_rx,
        recheck,
        latest.clone(),
    ));
    let started = std::time::Instant::now();
    let mut first = true;
    let mut ready = [false; 4];
    let mut dirty = false;
    let mut last_problem: Option<String> = None;
    let debounce = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(debounce);
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = idle_check.tick() => {
                if hub.receivers(&key) > 0 {
                    idle_since = None;
                } else {
                    idle_since.get_or_insert_with(Instant::now);
                    if hub.retire_if_idle(&key, idle_since) {
                        tracing::debug!(project = %ns, "no page for a while: the project's watches stop");
                        break;
                    }
                }
            }
            change = changes.next() => match change {
                None => break,
                Some(Change::Ready(k)) => {
                    ready[k] = true;
                    dirty = true;
                    if ready.iter().all(|r| *r) && first {
                        // The first snapshot goes out now, not after the debounce.
                        debounce.as_mut().reset(Instant::now());
                        tracing::debug!(project = %ns, ms = started.elapsed().as_millis() as u64, "project listed");
                    }
                }
                Some(Change::Changed) => {
                    if !dirty {
                        debounce.as_mut().reset(Instant::now() + DEBOUNCE);
                    }
                    dirty = true;
                }
                Some(Change::Failed(message)) => {
                    // A refused watch repeats with backoff; say it once.
                    if last_problem.as_deref() != Some(message.as_str()) {
                        let text = format!("watching project {ns}: {message}");
                        tracing::warn!(%text);
                        latest.send_modify(|l| l.problem = Some(text.into()));
                        last_problem = Some(message);
                    }
                }
            },
            _ = &mut debounce, if dirty && ready.iter().all(|r| *r) => {
                dirty = false;
                last_problem = None;
                let snap = snapshot::build(&ns, owned(&warehouses), owned(&stages), owned(&freight), owned(&promotions));
                let names: Vec<String> = snap.graph.nodes.iter().filter(|n| n.kind == "stage").map(|n| n.name.clone()).collect();
                let data: Arc<str> = serde_json::to_string(&snap).unwrap_or_default().into();
                latest.send_modify(|l| {
                    l.snapshot = Some(data);
                    l.problem = None;
                });
                if first {
                    first = false;
                    tracing::debug!(project = %ns, ms = started.elapsed().as_millis() as u64, "first snapshot ready");
                }
                // What the user may do changes with the set of Stages (and RBAC: periodically).
                names_tx.send_if_modified(|n| {
                    let new = n.as_ref() != Some(&names);
                    if new {
                        *n = Some(names);
                    }
                    new
                });
            }
        }
    }
    perms.abort();
}

/// Asks the user's permissions whenever the Stages change, every [`PERMISSIONS_PERIOD`], and
/// when `recheck` is notified; publishes each answer that differs from the last.
async fn permissions_loop(
    client: kube::Client,
    ns: String,
    mut names: watch::Receiver<Option<Vec<String>>>,
    recheck: Arc<Notify>,
    latest: watch::Sender<Latest>,
) {
    let mut last: Option<String> = None;
    loop {
        let current = names.borrow_and_update().clone();
        if let Some(stages) = current {
            let allowed = permissions::project(&client, &ns, &stages).await;
            let data = serde_json::to_string(&allowed).unwrap_or_default();
            if last.as_deref() != Some(data.as_str()) {
                latest.send_modify(|l| l.permissions = Some(data.clone().into()));
                last = Some(data);
            }
        }
        tokio::select! {
            changed = names.changed() => if changed.is_err() { return },
            _ = recheck.notified() => {}
            _ = tokio::time::sleep(PERMISSIONS_PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_gets_only_what_changed_snapshot_first() {
        let snap: Arc<str> = "{}".into();
        let perms: Arc<str> = "{\"promote\":{}}".into();
        let now = Latest {
            snapshot: Some(snap.clone()),
            permissions: Some(perms.clone()),
            problem: None,
        };
        let all = events_between(&Latest::default(), &now);
        assert_eq!(all.len(), 2);
        let first = format!("{:?}", all[0]);
        assert!(first.contains("snapshot"), "{first}");
        assert!(events_between(&now, &now).is_empty());
        let newer = Latest {
            snapshot: Some("{}".into()),
            ..now.clone()
        };
        let one = events_between(&now, &newer);
        assert_eq!(
            one.len(),
            1,
            "an equal but new snapshot is sent, the same permissions not"
        );
    }
}
