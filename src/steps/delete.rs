//! The `delete` step: delete an object (by name) or the objects matching a selector, and wait
//! until they are gone (finalizers done), bounded by the step timeout.

use std::time::Duration;

use super::{StepCtx, StepResult, failure_from};
use crate::cluster::ClusterError;
use crate::cluster::watch::Changes;
use crate::engine::retry::{self, Class, Miss, Policy};
use crate::suite::model::DeleteSpec;

pub async fn run(spec: &DeleteSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let (cluster, target) = match ctx.cluster_target("delete", &spec.resource.value) {
        Ok(ct) => ct,
        Err(r) => return r,
    };
    let kind = match cluster.resolve(&target.api_version, &target.kind).await {
        Ok(k) => k,
        Err(e) => return StepResult::error(e.to_string()),
    };
    let ns = if kind.namespaced {
        target.namespace.clone()
    } else {
        None
    };
    let what = target.describe(kind.namespaced);

    // Delete once (a missing named object is an error: a typo must not pass silently)...
    let names: Vec<String> = match &target.name {
        Some(n) => match cluster.delete(&kind, ns.as_deref(), n).await {
            Ok(true) => vec![n.clone()],
            Ok(false) => return StepResult::error(format!("{what} does not exist")),
            Err(e) => return StepResult::error(format!("deleting {what}: {e}")),
        },
        None => {
            let sel = target.selector.clone().unwrap_or_default();
            let items = match cluster.list(&kind, ns.as_deref(), &sel).await {
                Ok(i) => i,
                Err(e) => return StepResult::error(format!("listing {what}: {e}")),
            };
            let mut names = Vec::new();
            for o in items {
                let n = o
                    .pointer("/metadata/name")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                if let Err(e) = cluster.delete(&kind, ns.as_deref(), &n).await {
                    return StepResult::error(format!("deleting {} {n}: {e}", target.kind));
                }
                names.push(n);
            }
            names
        }
    };
    ctx.state
        .tracked
        .retain(|t| !(t.kind == kind.ar.kind && t.namespace == ns && names.contains(&t.name)));

    // ...then wait, by the one retry engine, woken by a watch, until every one is gone.
    let changes = Changes::start(
        &cluster,
        &kind,
        ns.as_deref(),
        target.name.as_deref(),
        target.selector.as_deref(),
    );
    let mut limits = ctx.limits.clone();
    limits.wake = Some(changes.notify.clone());
    let policy = Policy {
        consecutive: 1,
        hold: None,
        max_interval: ctx.policy.max_interval.min(Duration::from_secs(1)),
        ..ctx.policy
    };
    let pending = format!("waiting for {what} to be gone");
    let mut observer = ctx.observer();
    let result = retry::eventually(&policy, &limits, &pending, &mut observer, |_| {
        let (cluster, kind, ns, names) = (&cluster, &kind, &ns, &names);
        async move {
            for n in names {
                match cluster.get(kind, ns.as_deref(), n).await {
                    Ok(None) => {}
                    Ok(Some(o)) => {
                        let fin = o
                            .pointer("/metadata/finalizers")
                            .map(|f| f.to_string())
                            .unwrap_or_else(|| "none".into());
                        return Err(Miss::new(
                            Class::Field,
                            "still exists",
                            format!("{} {n} still exists (finalizers: {fin})", kind.ar.kind),
                        ));
                    }
                    Err(e) => return Err(api_miss(e)),
                }
            }
            Ok(())
        }
    })
    .await;
    match result {
        Ok((_, h)) => StepResult::passed(h.attempts + 1),
        Err(g) => {
            let mut f = failure_from(&g, &ctx.limits);
            f.expected = Some(format!("{what} deleted and gone"));
            StepResult::failed(g.history.attempts + 1, f)
        }
    }
}

fn api_miss(e: ClusterError) -> Miss {
    let fatal = !e.is_transient();
    Miss {
        fatal,
        ..Miss::new(Class::ApiError, "API error", e.to_string())
    }
}
