//! Suite variables that wait on the cluster: the bounds they wait within, and `port-forward`
//! variables — wait (by the retry engine, up to the variable's `timeout`) for a ready pod,
//! then start a forward through the API server (`cluster::portforward`) that lives for the
//! run and is shared by every suite asking for the same one. The variable is
//! `127.0.0.1:PORT`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::RunContext;
use super::events::Failure;
use super::lifecycle;
use super::retry::{self, Class, Limits, Miss, Policy};
use crate::cluster::Cluster;
use crate::cluster::portforward::{self, Forward, ForwardSpec, NotReady, Target};
use crate::engine::cluster_retry::miss;
use crate::steps::failure_from;
use crate::suite::load::Suite;
use crate::suite::model::PortForward;
use crate::suite::spanned::PositiveDur;
use crate::suite::vars::Vars;

/// How a suite variable waits: its own `timeout` (else the suite's, else 30s, scaled), the
/// suite's intervals, and no test deadline (there is no test yet): running out is reported
/// as that timeout.
pub fn var_wait(ctx: &RunContext, suite: &Suite, timeout: Option<PositiveDur>) -> (Policy, Limits) {
    let d = &suite.doc.defaults;
    let timeout = timeout
        .or(d.timeout)
        .map_or(lifecycle::DEFAULT_TIMEOUT, |t| t.0)
        .mul_f64(ctx.config.timeout_scale);
    let policy = Policy {
        timeout,
        interval: d.interval.map_or(lifecycle::DEFAULT_INTERVAL, |t| t.0),
        max_interval: d
            .max_interval
            .map_or(lifecycle::DEFAULT_MAX_INTERVAL, |t| t.0),
        consecutive: 1,
        hold: None,
    };
    let now = Instant::now();
    let no_test_deadline = now + timeout + Duration::from_secs(1);
    let limits = Limits::for_step(now, timeout, no_test_deadline, timeout, ctx.cancel.clone());
    (policy, limits)
}

fn not_ready_miss(e: &NotReady) -> Miss {
    match e {
        NotReady::Missing(m) => Miss::new(Class::NotFound, "not found", m.clone()),
        NotReady::NoReadyPod(m) => Miss::new(Class::Condition, "no ready pod", m.clone()),
        NotReady::Port(m) => Miss::new(Class::Field, "no such port", m.clone()),
        NotReady::Invalid(m) => Miss::fatal(Class::Error, m.clone()),
        NotReady::Api(e) => miss(e, "port-forward"),
    }
}

/// Resolve a `port-forward` variable: `127.0.0.1:PORT` of a forward to a ready pod.
pub async fn port_forward_var(
    ctx: &Arc<RunContext>,
    cluster: &Cluster,
    suite: &Suite,
    vars: &Vars,
    name: &str,
    pf: &PortForward,
    shared_ns: Option<&str>,
) -> Result<Value, Failure> {
    let expand = |t: &crate::suite::spanned::Template| {
        vars.expand(t)
            .map_err(|e| Failure::error(format!("variable `{name}`: {e}")))
    };
    let namespace = match (&pf.namespace, shared_ns) {
        (Some(n), _) => expand(n)?,
        (None, Some(ns)) => ns.to_owned(),
        (None, None) => {
            return Err(Failure::error(format!(
                "variable `{name}`: port-forward needs `namespace`"
            )));
        }
    };
    let target = match (&pf.service, &pf.pod) {
        (Some(s), _) => Target::Service(expand(s)?),
        (None, Some(p)) => Target::Pod(expand(p)?),
        (None, None) => {
            return Err(Failure::error(format!(
                "variable `{name}`: port-forward needs `service` or `pod`"
            )));
        }
    };
    let spec = ForwardSpec {
        namespace,
        target,
        port: pf.port,
    };
    let started = cluster
        .forwards
        .get_or_start(&spec, || async {
            let (policy, limits) = var_wait(ctx, suite, pf.timeout);
            let pending = format!("waiting for a ready pod of {}", spec.describe());
            let found = retry::eventually_unobserved(&policy, &limits, &pending, |_| async {
                portforward::ready_pod(cluster.client(), cluster.server(), &spec, None)
                    .await
                    .map_err(|e| not_ready_miss(&e))
            })
            .await;
            let first = match found {
                Ok((p, _)) => p,
                Err(g) => {
                    let mut f = failure_from(&g, &limits);
                    f.headline = format!(
                        "variable `{name}` (port-forward to {}): {}",
                        spec.describe(),
                        f.headline
                    );
                    return Err(f);
                }
            };
            Forward::start(
                cluster.client().clone(),
                cluster.server(),
                spec.clone(),
                first,
            )
            .await
            .map_err(|e| {
                Failure::error(format!(
                    "variable `{name}`: cannot listen on 127.0.0.1 for the port-forward: {e}"
                ))
            })
        })
        .await?;
    Ok(Value::String(started.addr().to_string()))
}
