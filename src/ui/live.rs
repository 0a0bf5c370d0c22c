//! Live project pages: for each open page the server watches the project's Warehouses,
//! Stages, Freight and Promotions with the page's user's identity (kube's watcher and
//! reflector), and sends the whole [`Snapshot`](super::snapshot::Snapshot) as a Server-Sent
//! Event once all four are listed and again after every burst of changes. The watch ends when
//! the page closes its connection.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::Event;
use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

use super::permissions;
use super::snapshot;
use crate::api::{Freight, Promotion, Stage, Warehouse};

/// Changes closer together than this are sent as one snapshot (a Promotion's steps update
/// status many times a second).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// What one watched stream reported.
enum Change {
    /// The first listing of kind `usize` is in the store.
    Ready(usize),
    Changed,
    Failed(String),
}

fn watch<K>(
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

/// The Server-Sent Events of project `ns` as `client` sees it.
pub fn project_events(
    client: kube::Client,
    ns: String,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = mpsc::channel::<Event>(8);
    tokio::spawn(run(client, ns, tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

async fn run(client: kube::Client, ns: String, tx: mpsc::Sender<Event>) {
    let (warehouses, w) = reflector::store::<Warehouse>();
    let (stages, s) = reflector::store::<Stage>();
    let (freight, f) = reflector::store::<Freight>();
    let (promotions, p) = reflector::store::<Promotion>();
    let mut changes = futures::stream::select_all([
        watch(Api::namespaced(client.clone(), &ns), w, 0),
        watch(Api::namespaced(client.clone(), &ns), s, 1),
        watch(Api::namespaced(client.clone(), &ns), f, 2),
        watch(Api::namespaced(client.clone(), &ns), p, 3),
    ]);
    let started = std::time::Instant::now();
    let mut first = true;
    let mut ready = [false; 4];
    let mut dirty = false;
    let mut last_problem: Option<String> = None;
    let mut stage_names: Option<Vec<String>> = None;
    let debounce = tokio::time::sleep(DEBOUNCE);
    tokio::pin!(debounce);
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            change = changes.next() => match change {
                None => return,
                Some(Change::Ready(k)) => {
                    ready[k] = true;
                    dirty = true;
                    if ready.iter().all(|r| *r) {
                        tracing::debug!(project = %ns, ms = started.elapsed().as_millis() as u64, "project listed");
                    }
                }
                Some(Change::Changed) => {
                    if !dirty {
                        debounce.as_mut().reset(tokio::time::Instant::now() + DEBOUNCE);
                    }
                    dirty = true;
                }
                Some(Change::Failed(message)) => {
                    // A refused watch repeats with backoff; say it once.
                    if last_problem.as_deref() != Some(message.as_str()) {
                        let text = format!("watching project {ns}: {message}");
                        tracing::warn!(%text);
                        if tx.send(Event::default().event("problem").data(text)).await.is_err() {
                            return;
                        }
                        last_problem = Some(message);
                    }
                }
            },
            _ = &mut debounce, if dirty && ready.iter().all(|r| *r) => {
                dirty = false;
                last_problem = None;
                let snap = snapshot::build(&ns, owned(&warehouses), owned(&stages), owned(&freight), owned(&promotions));
                let names: Vec<String> = snap.graph.nodes.iter().filter(|n| n.kind == "stage").map(|n| n.name.clone()).collect();
                let data = serde_json::to_string(&snap).unwrap_or_default();
                if tx.send(Event::default().event("snapshot").data(data)).await.is_err() {
                    return;
                }
                if first {
                    first = false;
                    tracing::debug!(project = %ns, ms = started.elapsed().as_millis() as u64, "first snapshot sent");
                }
                // What the user may do changes with the set of Stages only (or RBAC, which the
                // page re-asks on reconnect).
                if stage_names.as_ref() != Some(&names) {
                    let allowed = permissions::project(&client, &ns, &names).await;
                    let data = serde_json::to_string(&allowed).unwrap_or_default();
                    if tx.send(Event::default().event("permissions").data(data)).await.is_err() {
                        return;
                    }
                    stage_names = Some(names);
                }
            }
        }
    }
}
