//! The `apply` step: server-side apply (field manager `gwtest`, force) of manifest files and
//! inline manifests, `${}` substituted, namespaced objects defaulted to the test's namespace,
//! every object labelled with the run id and tracked (with its uid) for cleanup. An action:
//! retried only while the error is transient (or the kind is not served yet, as right after
//! its CRD was applied).

use super::{StepCtx, StepResult, failure_from};
use crate::cluster::manifests::{self, Manifest};
use crate::cluster::{ClusterError, tracked};
use crate::engine::retry::{self, Miss, Policy};
use crate::suite::model::{ApplyItem, ApplySpec};

pub async fn run(spec: &ApplySpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let Some(cluster) = ctx.run.cluster.clone() else {
        return StepResult::error("apply needs a cluster, and none is connected");
    };
    let mut objects: Vec<Manifest> = Vec::new();
    for item in &spec.0 {
        let read = match item {
            ApplyItem::File(t) => match ctx.vars.expand(t) {
                Ok(rel) => manifests::read_file(&ctx.base_dir().join(rel), ctx.vars).await,
                Err(e) => return e.into(),
            },
            ApplyItem::Manifest(node) => manifests::from_node(node, ctx.file, ctx.vars),
        };
        match read {
            Ok(m) => objects.extend(m),
            Err(e) => return StepResult::error(e),
        }
    }
    if objects.is_empty() {
        return StepResult::error("apply: the manifests hold no object");
    }

    let namespace = ctx.state.namespace.clone();
    let run_id = ctx.run.run_id.clone();
    let policy = Policy {
        consecutive: 1,
        hold: None,
        ..ctx.policy
    };
    let mut attempts = 0;
    for m in &objects {
        let pending = format!("applying {}", m.origin());
        let mut observer = ctx.observer();
        let result = retry::eventually(&policy, &ctx.limits, &pending, &mut observer, |_| {
            let (cluster, m, namespace, run_id) = (&cluster, m, &namespace, &run_id);
            async move {
                cluster
                    .apply(m.value.clone(), namespace.as_deref(), run_id)
                    .await
                    .map(|(_, obj)| obj)
                    .map_err(|e| apply_miss(&e, m))
            }
        })
        .await;
        match result {
            Ok((obj, h)) => {
                attempts += h.attempts;
                let t = tracked(&obj);
                ctx.state.tracked.retain(|e| {
                    !(e.kind == t.kind
                        && e.namespace == t.namespace
                        && e.name == t.name
                        && e.api_version == t.api_version)
                });
                ctx.state.tracked.push(t);
            }
            Err(g) => {
                let mut f = failure_from(&g, &ctx.limits);
                f.expected = Some(format!("{} accepted by the API server", describe(m)));
                return StepResult::failed(attempts + g.history.attempts, f);
            }
        }
    }
    StepResult::passed(attempts)
}

fn describe(m: &Manifest) -> String {
    let kind = m
        .value
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("object");
    let name = m
        .value
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    format!("{kind} {name} ({})", m.origin())
}

fn apply_miss(e: &ClusterError, m: &Manifest) -> Miss {
    crate::engine::cluster_retry::miss(e, &describe(m))
}
