//! Removing what a run made (DESIGN §1.6). Objects another test could collide with — what a
//! test applied outside its own namespace, its objects in a shared namespace — are deleted and
//! waited for while the test still holds its slot. A per-test or per-suite namespace, and a
//! suite's fixtures, go in the background (the `Reaper`): the slot is free at once, and the
//! run waits for every background deletion before it exits, each bounded by its
//! `cleanup-timeout`. Ctrl-C does not stop cleanup (a second Ctrl-C exits at once).

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::cluster_retry::{OpError, call_until, wait_one_gone};
use super::events::{Event, EventSink, TestId};
use super::retry::{Class, Limits};
use crate::cluster::{Cluster, ClusterError, Deleted, Kind, Tracked, holds};

/// One thing cleanup could not do.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CleanupProblem {
    #[error(transparent)]
    Op(#[from] OpError),
    /// Deleted, and still there when the deadline passed.
    #[error("{what} was still {state} when cleanup-timeout ran out{}", still_there(.holding))]
    StillThere {
        what: String,
        /// "terminating" (a namespace) or "there".
        state: &'static str,
        /// What holds it (objects with finalizers, the namespace's own conditions).
        holding: Vec<String>,
    },
}

fn still_there(holding: &[String]) -> String {
    if holding.is_empty() {
        String::new()
    } else {
        format!("; still there: {}", holding.join("; "))
    }
}

/// What cleanup could not do, all of it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CleanupError(pub Vec<CleanupProblem>);

impl CleanupError {
    pub fn check(problems: Vec<CleanupProblem>) -> Result<(), CleanupError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CleanupError(problems))
        }
    }
}

/// The kind of a tracked object; `None` when the cluster no longer serves it (its CRD is gone,
/// and its objects with it).
async fn resolve_tracked(
    cluster: &Cluster,
    t: &Tracked,
    limits: &Limits,
) -> Result<Option<Kind>, CleanupProblem> {
    match call_until(&format!("resolving {}", t.kind), limits, || {
        cluster.resolve(&t.api_version, &t.kind)
    })
    .await
    {
        Ok(k) => Ok(Some(k)),
        Err(OpError::Refused {
            error: ClusterError::UnknownKind { .. },
            ..
        }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Delete one object (retrying transient errors) and wait until it is gone.
pub async fn delete_object(
    cluster: &Cluster,
    t: &Tracked,
    limits: &Limits,
) -> Result<(), CleanupProblem> {
    let Some(kind) = resolve_tracked(cluster, t, limits).await? else {
        return Ok(());
    };
    let ns = t.namespace.as_deref();
    call_until(&format!("deleting {}", t.describe()), limits, || {
        cluster.delete(&kind, ns, &t.name)
    })
    .await?;
    wait_gone_or_say_why(cluster, &kind, t, &[], limits).await
}

/// Take this run's hold off a shared object (a fixture, a fixed namespace) and, when no other
/// run holds it, delete it — conditioned on the version just read, so a run taking a hold in
/// between keeps its object. Returns whether the object is being deleted (to wait for).
pub async fn release_and_delete(
    cluster: &Cluster,
    t: &Tracked,
    run: &str,
    limits: &Limits,
) -> Result<bool, CleanupProblem> {
    let Some(kind) = resolve_tracked(cluster, t, limits).await? else {
        return Ok(false);
    };
    let ns = t.namespace.as_deref();
    // A conflict means another run took a hold since the read: read again (bounded).
    for _ in 0..10 {
        let released = call_until(&format!("releasing {}", t.describe()), limits, || {
            cluster.release_hold(&kind, ns, &t.name, run)
        })
        .await?;
        let Some(obj) = released else {
            return Ok(false);
        };
        if !holds::holders(&obj).is_empty() {
            return Ok(false);
        }
        let Some(rv) = holds::resource_version(&obj) else {
            return Ok(false);
        };
        let deleted = call_until(&format!("deleting {}", t.describe()), limits, || async {
            match cluster.delete_at(&kind, ns, &t.name, rv).await {
                Err(e) if e.code() == Some(409) => Ok(None),
                other => other.map(Some),
            }
        })
        .await?;
        match deleted {
            Some(Deleted::Started) => return Ok(true),
            Some(Deleted::AlreadyGone) => return Ok(false),
            None => continue,
        }
    }
    Err(OpError::GaveUp {
        what: format!("deleting {}", t.describe()),
        detail: "other runs kept changing it".into(),
    }
    .into())
}

/// Wait until a tracked object is gone; when it is not, say what holds it (`inside`: the
/// objects applied into it, when it is a namespace).
pub async fn wait_tracked_gone(
    cluster: &Cluster,
    t: &Tracked,
    inside: &[Tracked],
    limits: &Limits,
) -> Result<(), CleanupProblem> {
    let Some(kind) = resolve_tracked(cluster, t, limits).await? else {
        return Ok(());
    };
    wait_gone_or_say_why(cluster, &kind, t, inside, limits).await
}

/// Wait until the object is gone; when it is not, say what holds it.
async fn wait_gone_or_say_why(
    cluster: &Cluster,
    kind: &Kind,
    t: &Tracked,
    inside: &[Tracked],
    limits: &Limits,
) -> Result<(), CleanupProblem> {
    let what = t.describe().replacen("Namespace", "namespace", 1);
    let ns = t.namespace.as_deref();
    let Err(g) = wait_one_gone(cluster, kind, ns, &t.name, limits).await else {
        return Ok(());
    };
    match g.last {
        // The last look could not reach the server: that is the story, not what holds it.
        Some(m) if m.class != Class::Field => Err(OpError::GaveUp {
            what: format!("waiting for {what} to be gone"),
            detail: m.detail,
        }
        .into()),
        last => {
            let namespace = kind.ar.kind == "Namespace";
            let holding = if namespace {
                cluster.holding(inside, &t.name).await
            } else {
                last.map(|m| m.detail).into_iter().collect()
            };
            Err(CleanupProblem::StillThere {
                what,
                state: if namespace { "terminating" } else { "there" },
                holding,
            })
        }
    }
}

/// Delete the objects a test (or suite) applied, newest first, each waited for — except
/// those inside `own_namespace`, which go with it.
pub async fn delete_objects(
    cluster: &Cluster,
    tracked: &[Tracked],
    own_namespace: Option<&str>,
    limits: &Limits,
) -> Vec<CleanupProblem> {
    let mut problems = Vec::new();
    for t in tracked.iter().rev() {
        if own_namespace.is_some() && t.namespace.as_deref() == own_namespace {
            continue;
        }
        if let Err(p) = delete_object(cluster, t, limits).await {
            problems.push(p);
        }
    }
    problems
}

/// Ask for a namespace's deletion (retrying transient errors); it is Terminating when this
/// returns.
pub async fn request_namespace_deletion(
    cluster: &Cluster,
    ns: &str,
    limits: &Limits,
) -> Result<(), CleanupProblem> {
    let kind = Kind::namespace();
    call_until(&format!("deleting namespace {ns}"), limits, || {
        cluster.delete(&kind, None, ns)
    })
    .await?;
    Ok(())
}

/// Wait until a namespace is gone (Terminating, then 404); when it does not go, say what
/// holds it (`inside`: the objects applied into it).
pub async fn wait_namespace_gone(
    cluster: &Cluster,
    ns: &str,
    inside: &[Tracked],
    limits: &Limits,
) -> Result<(), CleanupProblem> {
    wait_gone_or_say_why(
        cluster,
        &Kind::namespace(),
        &namespace_tracked(ns),
        inside,
        limits,
    )
    .await
}

/// Delete a namespace and wait until it is gone.
pub async fn delete_namespace(
    cluster: &Cluster,
    ns: &str,
    inside: &[Tracked],
    limits: &Limits,
) -> Result<(), CleanupProblem> {
    request_namespace_deletion(cluster, ns, limits).await?;
    wait_namespace_gone(cluster, ns, inside, limits).await
}

/// A namespace as a tracked object.
pub fn namespace_tracked(ns: &str) -> Tracked {
    Tracked {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: ns.to_owned(),
        uid: String::new(),
    }
}

/// Whom a background deletion belongs to, for reports.
#[derive(Clone, Debug)]
pub struct Owner {
    /// The test try (a per-test namespace), or `None` for a suite's teardown.
    pub test: Option<(TestId, u32)>,
    pub suite: String,
}

/// Background deletions of a run. The run waits for all of them (`finish`) before it exits.
#[derive(Debug, Default)]
pub struct Reaper {
    tasks: Mutex<JoinSet<()>>,
    failed: Arc<AtomicUsize>,
}

impl Reaper {
    /// Run `work` in the background; when it ends, a `BackgroundCleanup` event says how long it
    /// took and what it could not do. `work` must be bounded (its cleanup-timeout).
    pub fn spawn<F>(&self, events: &EventSink, owner: Owner, what: String, work: F)
    where
        F: Future<Output = Result<(), CleanupError>> + Send + 'static,
    {
        let events = events.clone();
        let failed = self.failed.clone();
        let started = Instant::now();
        self.tasks.lock().expect("poisoned").spawn(async move {
            let result = work.await;
            if result.is_err() {
                failed.fetch_add(1, Ordering::SeqCst);
            }
            events.emit(Event::BackgroundCleanup {
                id: owner.test.as_ref().map(|(id, _)| id.clone()),
                try_no: owner.test.as_ref().map_or(0, |(_, t)| *t),
                suite: owner.suite,
                what,
                duration: started.elapsed(),
                error: result.err().map(|e| e.to_string()),
            });
        });
    }

    /// Background deletions not finished yet.
    pub fn pending(&self) -> usize {
        self.tasks.lock().expect("poisoned").len()
    }

    /// Wait for every background deletion; returns how many could not finish their work.
    pub async fn finish(&self) -> usize {
        loop {
            let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("poisoned"));
            if tasks.is_empty() {
                break;
            }
            while tasks.join_next().await.is_some() {}
        }
        self.failed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn problems_say_what_holds_a_namespace() {
        let e = CleanupError(vec![
            CleanupProblem::StillThere {
                what: "namespace gwtest-t-abc123".into(),
                state: "terminating",
                holding: vec!["ConfigMap held (finalizers: x/y)".into()],
            },
            CleanupProblem::Op(OpError::GaveUp {
                what: "deleting GatewayClass c".into(),
                detail: "cannot reach the Kubernetes API at s: refused".into(),
            }),
        ]);
        assert_eq!(
            e.to_string(),
            "namespace gwtest-t-abc123 was still terminating when cleanup-timeout ran out; \
             still there: ConfigMap held (finalizers: x/y); deleting GatewayClass c: cannot \
             reach the Kubernetes API at s: refused"
        );
        assert_eq!(CleanupError::check(Vec::new()), Ok(()));
    }

    #[tokio::test]
    async fn the_reaper_waits_for_everything_and_counts_failures() {
        let (events, mut rx) = crate::engine::events::channel();
        let reaper = Reaper::default();
        let owner = Owner {
            test: None,
            suite: "s".into(),
        };
        reaper.spawn(&events, owner.clone(), "namespace a".into(), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        });
        reaper.spawn(&events, owner, "namespace b".into(), async {
            Err(CleanupError(vec![CleanupProblem::StillThere {
                what: "namespace b".into(),
                state: "terminating",
                holding: vec![],
            }]))
        });
        assert_eq!(reaper.pending(), 2);
        assert_eq!(reaper.finish().await, 1);
        assert_eq!(reaper.pending(), 0);
        let mut seen = Vec::new();
        while let Some(e) = rx.try_recv() {
            if let Event::BackgroundCleanup { what, error, .. } = e {
                seen.push((what, error.is_some()));
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                ("namespace a".to_string(), false),
                ("namespace b".to_string(), true)
            ]
        );
    }
}
