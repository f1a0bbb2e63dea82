//! The `patch` step: a JSON merge patch on an object (or its status subresource). An action:
//! retried only while the error is transient.

use super::{StepCtx, StepResult, failure_from};
use crate::cluster::ClusterError;
use crate::engine::retry::{self, Class, Miss, Policy};
use crate::suite::model::{PatchSpec, Subresource};

pub async fn run(spec: &PatchSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let (cluster, target) = match ctx.cluster_target("patch", &spec.resource.value) {
        Ok(ct) => ct,
        Err(r) => return r,
    };
    let Some(name) = target.name.clone() else {
        return StepResult::error("patch needs `resource.name`");
    };
    let patch = match ctx.vars.expand_node(&spec.merge.value) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    let status = spec.subresource == Some(Subresource::Status);
    let policy = Policy {
        consecutive: 1,
        hold: None,
        ..ctx.policy
    };
    // Resolved here only to name the object with its namespace; the attempts resolve again
    // (a kind not served yet is retried there).
    let namespaced = ctx
        .resolve_early(&cluster, &target)
        .await
        .map_or(target.namespace.is_some(), |k| k.namespaced);
    let what = target.describe(namespaced);
    let pending = format!("patching {what}");
    let mut observer = ctx.observer();
    let result = retry::eventually(&policy, &ctx.limits, &pending, &mut observer, |_| {
        let (cluster, target, patch, name, what) = (&cluster, &target, &patch, &name, &what);
        async move {
            let kind = cluster
                .resolve(&target.api_version, &target.kind)
                .await
                .map_err(|e| miss(e, what))?;
            let ns = if kind.namespaced {
                target.namespace.as_deref()
            } else {
                None
            };
            cluster
                .merge_patch(&kind, ns, name, patch, status)
                .await
                .map_err(|e| miss(e, what))
        }
    })
    .await;
    match result {
        Ok((_, h)) => StepResult::passed(h.attempts),
        Err(g) => {
            let mut f = failure_from(&g, &ctx.limits);
            f.expected = Some(format!(
                "{what} patched{}",
                if status { " (status)" } else { "" }
            ));
            ctx.add_near_misses(&mut f, &g, &cluster, &target).await;
            StepResult::failed(g.history.attempts, f)
        }
    }
}

/// The cluster rule, except that patching an object that does not exist is final: a patch
/// names what it changes.
fn miss(e: ClusterError, what: &str) -> Miss {
    if e.is_not_found() && !matches!(e, ClusterError::UnknownKind { .. }) {
        return Miss::fatal(Class::NotFound, format!("{what} does not exist"));
    }
    crate::engine::cluster_retry::miss(&e, what)
}
