//! The `delete` step: delete an object (by name) or the objects matching a selector, and wait
//! until they are gone (finalizers done), bounded by the step timeout. Both phases run in the
//! retry engine: the deletes are retried on transient errors, the wait is woken by a watch.

use std::time::Duration;

use super::{StepCtx, StepResult, failure_from};
use crate::cluster::{Deleted, Kind};
use crate::engine::cluster_retry::{miss, wait_gone};
use crate::engine::retry::{self, Class, Miss, Policy};
use crate::suite::model::DeleteSpec;

pub async fn run(spec: &DeleteSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let (cluster, target) = match ctx.cluster_target("delete", &spec.resource.value) {
        Ok(ct) => ct,
        Err(r) => return r,
    };
    if target.name.is_none()
        && target
            .selector
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
    {
        // A variable that came out empty must not turn into "delete everything".
        return StepResult::error(
            "delete: the selector is empty after substitution; it would delete every object of the kind",
        );
    }
    let what = target.describe(true);
    let policy = Policy {
        consecutive: 1,
        hold: None,
        max_interval: ctx.policy.max_interval.min(Duration::from_secs(1)),
        ..ctx.policy
    };

    // Delete (a missing named object is an error: a typo must not pass silently).
    let pending = format!("deleting {what}");
    let mut observer = ctx.observer();
    let result = retry::eventually(&policy, &ctx.limits, &pending, &mut observer, |_| {
        let (cluster, target, what) = (&cluster, &target, &what);
        async move {
            let kind = cluster
                .resolve(&target.api_version, &target.kind)
                .await
                .map_err(|e| miss(&e, what))?;
            let ns = if kind.namespaced {
                target.namespace.as_deref()
            } else {
                None
            };
            let names = match &target.name {
                Some(n) => match cluster.delete(&kind, ns, n).await {
                    Ok(Deleted::Started) => vec![n.clone()],
                    Ok(Deleted::AlreadyGone) => {
                        return Err(Miss::fatal(
                            Class::NotFound,
                            format!("{what} does not exist"),
                        ));
                    }
                    Err(e) => return Err(miss(&e, what)),
                },
                None => {
                    let sel = target.selector.clone().unwrap_or_default();
                    let items = cluster
                        .list(&kind, ns, &sel)
                        .await
                        .map_err(|e| miss(&e, what))?;
                    let mut names = Vec::new();
                    for o in items {
                        let n = o
                            .pointer("/metadata/name")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned();
                        // Gone in the meantime is as good as deleted.
                        cluster
                            .delete(&kind, ns, &n)
                            .await
                            .map_err(|e| miss(&e, &format!("{} {n}", target.kind)))?;
                        names.push(n);
                    }
                    names
                }
            };
            Ok::<(Kind, Vec<String>), Miss>((kind, names))
        }
    })
    .await;
    let ((kind, names), deletes) = match result {
        Ok((deleted, h)) => (deleted, h.attempts),
        Err(g) => {
            let mut f = failure_from(&g, &ctx.limits);
            f.expected = Some(format!("{what} deleted and gone"));
            ctx.add_near_misses(&mut f, &g, &cluster, &target).await;
            return StepResult::failed(g.history.attempts, f);
        }
    };
    let ns = if kind.namespaced {
        target.namespace.clone()
    } else {
        None
    };
    ctx.state
        .tracked
        .retain(|t| !(t.kind == kind.ar.kind && t.namespace == ns && names.contains(&t.name)));

    // Then wait until every one is gone.
    let mut observer = ctx.observer();
    match wait_gone(
        &cluster,
        &kind,
        ns.as_deref(),
        &names,
        &ctx.limits,
        &mut observer,
    )
    .await
    {
        Ok(waits) => StepResult::passed(deletes + waits),
        Err(g) => {
            let mut f = failure_from(&g, &ctx.limits);
            f.expected = Some(format!("{what} deleted and gone"));
            StepResult::failed(deletes + g.history.attempts, f)
        }
    }
}
