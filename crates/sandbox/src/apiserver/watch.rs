//! Watches: a task per watch streams JSON lines (`{"type":..., "object":...}`) from the change
//! history. Writers never wait for it: it wakes on the store's resourceVersion channel and
//! catches up; a watcher that falls behind the kept history gets a 410 Expired ERROR event,
//! exactly like one that asks for a too-old resourceVersion.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::objects::{Selection, Target, present};
use super::status::ApiError;
use super::store::{EventType, Store};

/// How often BOOKMARK events are sent when asked for.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a watch from a resourceVersion not reached yet waits for it (the real watch
/// cache's blockTimeout).
pub const TOO_LARGE_WAIT: Duration = Duration::from_secs(3);
/// Watch length when the client gives no timeoutSeconds (the real server: 30 to 60 minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The current state as ADDED events, then changes (no resourceVersion, or "0").
    Current,
    /// Changes after this resourceVersion.
    After(u64),
}

pub struct WatchParams {
    pub target: Target,
    pub selection: Selection,
    pub start: Start,
    /// sendInitialEvents=true: the current state, then a BOOKMARK marking its end.
    pub send_initial: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": t.def.kind, "apiVersion": t.api_version(), "metadata": meta}),
    )
}

/// Waits (at most [`TOO_LARGE_WAIT`]) until the store has reached `rv`. `Err(Some(current))`
/// when it has not by then, `Err(None)` when the watch ended meanwhile.
async fn reached(
    store: &Store,
    notify: &mut tokio::sync::watch::Receiver<u64>,
    rv: u64,
    cancel: &CancellationToken,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), Option<u64>> {
    let deadline = tokio::time::Instant::now() + TOO_LARGE_WAIT;
    loop {
        let current = store.lock().current_rv();
        if current >= rv {
            return Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(None),
            _ = tx.closed() => return Err(None),
            changed = notify.changed() => if changed.is_err() { return Err(None) },
            _ = tokio::time::sleep_until(deadline) => return Err(Some(current)),
        }
    }
}

/// Starts a watch; the returned body streams its events until timeout, shutdown or the client
/// going away.
pub fn start(store: Arc<Store>, p: WatchParams, cancel: CancellationToken) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut notify = store.subscribe();
    tokio::spawn(async move {
        let t = &p.target;
        let snapshot = p.send_initial || p.start == Start::Current;
        if let Start::After(rv) = p.start
            && !snapshot
            && let Err(current) = reached(&store, &mut notify, rv, &cancel, &tx).await
        {
            if let Some(current) = current {
                let err = ApiError::too_large_resource_version(rv, current);
                let _ = tx.send(line("ERROR", &err.body())).await;
            }
            return;
        }
        let mut pending: Vec<Bytes> = Vec::new();
        let mut last_rv;
        let mut finished = false;
        let epoch;
        {
            let inner = store.lock();
            last_rv = inner.current_rv();
            epoch = inner.epoch();
            match p.start {
                Start::After(rv) if !snapshot => {
                    if rv < inner.history_start() {
                        pending.push(line(
                            "ERROR",
                            &ApiError::expired(rv, inner.history_start()).body(),
                        ));
                        finished = true;
                    } else {
                        last_rv = rv;
                    }
                }
                _ => {
                    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
                    for obj in inner.list(&t.gr(), ns) {
                        if p.selection.matches(obj) {
                            pending.push(line("ADDED", &present(&t.def, &t.version, obj)));
                        }
                    }
                    if p.send_initial && p.bookmarks {
                        pending.push(bookmark(t, last_rv, true));
                    }
                }
            }
        }
        for b in pending.drain(..) {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if finished {
            return;
        }
        let deadline = tokio::time::Instant::now() + p.timeout;
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Catch up at once: changes may have landed between the snapshot and the subscription.
        let mut wake = true;
        loop {
            if wake {
                let (events, ended) = collect(&store, &p, epoch, &mut last_rv);
                for b in events {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
                if ended {
                    return;
                }
            }
            wake = false;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => {
                    let (events, ended) = collect(&store, &p, epoch, &mut last_rv);
                    for b in events {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                    if !ended && p.bookmarks {
                        let _ = tx.send(bookmark(t, last_rv, false)).await;
                    }
                    return;
                }
                changed = notify.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    wake = true;
                }
                _ = ticker.tick(), if p.bookmarks => {
                    let (events, ended) = collect(&store, &p, epoch, &mut last_rv);
                    for b in events {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                    if ended || tx.send(bookmark(t, last_rv, false)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>))
}

/// The events after `last_rv` this watch should see; `true` when the watch must end (fell out
/// of the history window, the history was compacted, or its kind was removed).
fn collect(store: &Store, p: &WatchParams, epoch: u64, last_rv: &mut u64) -> (Vec<Bytes>, bool) {
    let t = &p.target;
    let mut matched: Vec<(&'static str, Arc<Value>)> = Vec::new();
    {
        let inner = store.lock();
        if inner
            .registry
            .get(&t.gr())
            .is_none_or(|d| !Arc::ptr_eq(d, &t.def) && d.kind != t.def.kind)
        {
            return (Vec::new(), true);
        }
        if inner.epoch() != epoch {
            let body = ApiError::expired(*last_rv, inner.history_start()).body();
            return (vec![line("ERROR", &body)], true);
        }
        let changes = match inner.changes_after(*last_rv) {
            Ok(c) => c,
            Err(start) => {
                return (
                    vec![line("ERROR", &ApiError::expired(*last_rv, start).body())],
                    true,
                );
            }
        };
        let gr = t.gr();
        for c in changes {
            *last_rv = c.rv;
            if c.gr != gr || (!t.namespace.is_empty() && c.namespace != t.namespace) {
                continue;
            }
            let now = p.selection.matches(&c.object);
            let before = c.prev.as_deref().is_some_and(|o| p.selection.matches(o));
            let ty = match c.event {
                EventType::Added if now => "ADDED",
                EventType::Modified if now && before => "MODIFIED",
                EventType::Modified if now => "ADDED",
                EventType::Modified if before => "DELETED",
                EventType::Deleted if now => "DELETED",
                _ => continue,
            };
            matched.push((ty, c.object.clone()));
        }
        *last_rv = (*last_rv).max(inner.current_rv());
    }
    let events = matched
        .into_iter()
        .map(|(ty, obj)| line(ty, &present(&t.def, &t.version, &obj)))
        .collect();
    (events, false)
}
