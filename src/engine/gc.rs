//! `gwtest gc`: delete what interrupted runs left behind — every object labelled
//! `gwtest.dev/run`: namespaces first (their contents go with them), then labelled objects
//! elsewhere, of every kind the cluster serves.
//!
//! With `--run ID`, only that run's: objects it labelled or holds (`hold.gwtest.dev/ID`). An
//! object another run holds too (a shared fixture) only loses ID's hold; it is deleted when ID
//! was the last holder, as that run's own teardown would have done.

use std::time::Duration;

use kube::api::ListParams;
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;
use tokio::time::Instant;

use super::cleanup::{CleanupProblem, release_and_delete};
use super::cluster_retry::{OpError, call_until, limits_until, wait_one_gone};
use super::lifecycle::run_of;
use crate::Exit;
use crate::cli::GcArgs;
use crate::cluster::{Cluster, ClusterError, Kind, RUN_LABEL, Tracked, holds};

/// Deleting may take this long in total before gc gives up (it can be run again).
const GC_TIMEOUT: Duration = Duration::from_secs(120);

/// What gc does with an object it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Delete,
    /// Only the run's hold goes: other runs still hold it.
    Release {
        held_by: Vec<String>,
    },
}

/// One object gc found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub run: String,
    pub action: Action,
}

/// What gc found and what it could not do.
#[derive(Debug, Default)]
pub struct Collected {
    pub found: Vec<Leftover>,
    pub problems: Vec<CleanupProblem>,
}

pub async fn command(args: GcArgs) -> Exit {
    let cluster = match crate::cli::connect_or_exit(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )
    .await
    {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let collected = match collect(&cluster, args.run.as_deref(), args.dry_run).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Infra;
        }
    };
    let dry = args.dry_run;
    let mut deleted = 0;
    for l in &collected.found {
        let ns = l
            .namespace
            .as_ref()
            .map(|n| format!(" -n {n}"))
            .unwrap_or_default();
        match &l.action {
            Action::Delete => {
                deleted += 1;
                let verb = if dry { "would delete" } else { "deleted" };
                println!("{verb} {} {}{ns} (run {})", l.kind, l.name, l.run);
            }
            Action::Release { held_by } => {
                let verb = if dry { "would release" } else { "released" };
                println!(
                    "{verb} {} {}{ns} (still held by run {})",
                    l.kind,
                    l.name,
                    held_by.join(", ")
                );
            }
        }
    }
    println!(
        "{deleted} object{} {}",
        if deleted == 1 { "" } else { "s" },
        if dry { "would be deleted" } else { "deleted" }
    );
    if collected.problems.is_empty() {
        Exit::Passed
    } else {
        for p in &collected.problems {
            eprintln!("error: {p}");
        }
        Exit::Infra
    }
}

/// Whether gc (with `--run run`, or for every run) takes the object, and what it does.
fn action(obj: &Value, run: Option<&str>) -> Option<Action> {
    let Some(run) = run else {
        return Some(Action::Delete);
    };
    let holders = holds::holders(obj);
    let ours = run_of(obj) == Some(run) || holders.iter().any(|h| h == run);
    if !ours {
        return None;
    }
    let others: Vec<String> = holders.into_iter().filter(|h| h != run).collect();
    Some(if others.is_empty() {
        Action::Delete
    } else {
        Action::Release { held_by: others }
    })
}

fn leftover(kind: &str, o: &Value, action: Action) -> Leftover {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).map(str::to_owned);
    Leftover {
        kind: kind.to_owned(),
        namespace: s("/metadata/namespace"),
        name: s("/metadata/name").unwrap_or_default(),
        run: run_of(o).unwrap_or_default().to_owned(),
        action,
    }
}

fn as_tracked(kind: &Kind, l: &Leftover) -> Tracked {
    Tracked {
        api_version: kind.ar.api_version.clone(),
        kind: kind.ar.kind.clone(),
        namespace: l.namespace.clone(),
        name: l.name.clone(),
        uid: String::new(),
    }
}

/// Find (and unless `dry_run`, remove and wait for) everything gwtest runs left behind:
/// labelled namespaces first (their contents go with them), then labelled objects of every
/// other kind outside them. What fails is reported and the rest goes on.
pub async fn collect(
    cluster: &Cluster,
    run: Option<&str>,
    dry_run: bool,
) -> Result<Collected, ClusterError> {
    let limits = limits_until(Instant::now() + GC_TIMEOUT, None);
    let timed_out = |what: &str| ClusterError::Unreachable {
        server: cluster.server().to_owned(),
        cause: format!("timed out {what}"),
    };
    let deadline = limits.deadline();
    let mut out = Collected::default();
    let ns_kind = Kind::namespace();
    let namespaces = tokio::time::timeout_at(deadline, cluster.list(&ns_kind, None, RUN_LABEL))
        .await
        .map_err(|_| timed_out("listing namespaces"))??;
    let mut doomed: Vec<String> = Vec::new();
    for n in &namespaces {
        let Some(a) = action(n, run) else { continue };
        let l = leftover("Namespace", n, a);
        if l.action == Action::Delete {
            doomed.push(l.name.clone());
        }
        if !dry_run {
            let done = remove(cluster, &ns_kind, &l, run, &limits).await;
            out.problems.extend(done.err());
        }
        out.found.push(l);
    }

    let discovery =
        tokio::time::timeout_at(deadline, Discovery::new(cluster.client().clone()).run())
            .await
            .map_err(|_| timed_out("discovering the cluster's kinds"))?
            .map_err(|e| ClusterError::from_kube(e, cluster.server()))?;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if ar.kind == "Namespace"
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            let kind = Kind {
                namespaced: caps.scope == Scope::Namespaced,
                has_status: false,
                ar,
            };
            let api = cluster.api(&kind, None);
            let listed = tokio::time::timeout_at(
                deadline,
                api.list(&ListParams::default().labels(RUN_LABEL)),
            )
            .await;
            let Ok(Ok(list)) = listed else { continue };
            for o in list.items {
                let o = crate::cluster::to_value(o);
                let Some(a) = action(&o, run) else { continue };
                let l = leftover(&kind.ar.kind, &o, a);
                // Objects in a namespace being deleted go with it.
                if l.namespace.as_ref().is_some_and(|n| doomed.contains(n)) {
                    continue;
                }
                if !dry_run {
                    let done = remove(cluster, &kind, &l, run, &limits).await;
                    out.problems.extend(done.err());
                }
                out.found.push(l);
            }
        }
    }
    if !dry_run {
        for ns in &doomed {
            if wait_one_gone(cluster, &ns_kind, None, ns, &limits)
                .await
                .is_err()
            {
                out.problems.push(CleanupProblem::StillThere {
                    what: format!("namespace {ns}"),
                    state: "terminating",
                    holding: cluster.holding(&[], ns).await,
                });
            }
        }
    }
    Ok(out)
}

/// Delete a leftover, or (with `--run`) release the run's hold and delete it if it was the last.
async fn remove(
    cluster: &Cluster,
    kind: &Kind,
    l: &Leftover,
    run: Option<&str>,
    limits: &super::retry::Limits,
) -> Result<(), CleanupProblem> {
    match run {
        Some(run) => release_and_delete(cluster, &as_tracked(kind, l), run, limits)
            .await
            .map(|_| ()),
        None => call_until(
            &format!("deleting {} {}", kind.ar.kind, l.name),
            limits,
            || cluster.delete(kind, l.namespace.as_deref(), &l.name),
        )
        .await
        .map(|_| ())
        .map_err(|e: OpError| e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leftovers_and_what_gc_does_with_them() {
        let o = json!({"metadata": {"name": "cm", "namespace": "ns",
            "labels": {"gwtest.dev/run": "r1", "app": "x"}}});
        assert_eq!(
            leftover("ConfigMap", &o, Action::Delete),
            Leftover {
                kind: "ConfigMap".into(),
                namespace: Some("ns".into()),
                name: "cm".into(),
                run: "r1".into(),
                action: Action::Delete,
            }
        );
        assert_eq!(action(&o, None), Some(Action::Delete));
        assert_eq!(action(&o, Some("r1")), Some(Action::Delete));
        assert_eq!(action(&o, Some("r2")), None);

        // A shared fixture, last applied by r2, held by r1 and r2.
        let shared = json!({"metadata": {"name": "gwtest-infra",
            "labels": {"gwtest.dev/run": "r2"},
            "annotations": {"hold.gwtest.dev/r1": "t", "hold.gwtest.dev/r2": "t"}}});
        assert_eq!(
            action(&shared, Some("r1")),
            Some(Action::Release {
                held_by: vec!["r2".into()]
            })
        );
        assert_eq!(
            action(&shared, Some("r2")),
            Some(Action::Release {
                held_by: vec!["r1".into()]
            })
        );
        assert_eq!(action(&shared, Some("r3")), None);
        assert_eq!(action(&shared, None), Some(Action::Delete));
        // Held by r1 only, labelled by r2 (which finished): r1's gc deletes it.
        let last = json!({"metadata": {"name": "c", "labels": {"gwtest.dev/run": "r2"},
            "annotations": {"hold.gwtest.dev/r1": "t"}}});
        assert_eq!(action(&last, Some("r1")), Some(Action::Delete));
        let ns =
            json!({"metadata": {"name": "gwtest-a-123456", "labels": {"gwtest.dev/run": "r2"}}});
        assert_eq!(leftover("Namespace", &ns, Action::Delete).namespace, None);
        assert_eq!(leftover("Namespace", &ns, Action::Delete).run, "r2");
    }
}
