//! Watches that wake an assertion when the objects it looks at change, so it re-checks at
//! once instead of sleeping out its backoff. The assertion still re-reads the object itself
//! (never a cached copy): waking is all a watch does.

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use tokio::sync::Notify;

use super::{Cluster, Kind};

/// A running watch; stops when dropped.
pub struct Changes {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Changes {
    /// Watch one object (by name) or the objects matching a label selector, waking `notify`
    /// on every change (the caller waits on it, often before the watch exists).
    pub fn start(
        cluster: &Cluster,
        kind: &Kind,
        namespace: Option<&str>,
        name: Option<&str>,
        selector: Option<&str>,
        notify: Arc<Notify>,
    ) -> Changes {
        let api = cluster.api(kind, namespace);
        let mut cfg = watcher::Config::default();
        if let Some(n) = name {
            cfg = cfg.fields(&format!("metadata.name={n}"));
        }
        if let Some(s) = selector.filter(|s| !s.is_empty()) {
            cfg = cfg.labels(s);
        }
        let task = tokio::spawn(async move {
            // After an error the watcher re-lists; kube-runtime's backoff (exponential, with
            // jitter, reset once the watch has been healthy a while) spaces the retries while
            // the server is away. The retry engine still polls meanwhile: the watch only
            // shortens the wait.
            let mut stream = watcher(api, cfg).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                ) = ev
                {
                    notify.notify_one();
                }
            }
        });
        Changes { task }
    }
}
