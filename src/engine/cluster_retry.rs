//! Cluster calls run by the retry engine: what a `ClusterError` means to it (`miss`), an
//! action retried while its errors are transient (`call_until`), and waiting, woken by a
//! watch, until objects are gone (`wait_gone`). Steps and the engine's lifecycles (namespaces,
//! fixtures, cleanup) use these; the cluster layer itself never retries or waits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retry::{self, AttemptObserver, Class, GaveUp, Limits, Miss, Policy};
use crate::cluster::{Cluster, ClusterError, Kind, finalizers, watch};

/// What a failed cluster call means to the retry engine, for every cluster step and the
/// engine's lifecycles: a kind not served yet, a missing object and transient errors are worth
/// waiting for; anything else the server refused is final, with its message. A cluster that
/// became unusable (credentials, TLS, kubeconfig) is final at once.
pub fn miss(e: &ClusterError, what: &str) -> Miss {
    match e {
        ClusterError::UnknownKind { .. } => Miss::new(
            Class::NotFound,
            "kind not served (yet)",
            format!("{what}: {e}"),
        ),
        e if e.is_not_found() => Miss::new(Class::NotFound, "not found", format!("{what}: {e}")),
        e if e.is_transient() => Miss::new(Class::ApiError, "API error", format!("{what}: {e}")),
        ClusterError::Api {
            code,
            reason,
            message,
        } => {
            // A 500 carries no reason.
            let status = if reason.is_empty() {
                code.to_string()
            } else {
                format!("{code} {reason}")
            };
            Miss::fatal(
                Class::ApiError,
                format!("{what} was rejected: {status}: {message}"),
            )
        }
        other => Miss::fatal(Class::ApiError, format!("{what}: {other}")),
    }
}

/// A cluster operation of the engine's lifecycles that did not succeed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OpError {
    /// The server refused it, or the cluster is unusable: retrying cannot help.
    #[error("{what}: {error}")]
    Refused { what: String, error: ClusterError },
    /// It kept failing (transient errors) or was not done when its deadline passed.
    #[error("{what}: {detail}")]
    GaveUp { what: String, detail: String },
}

impl OpError {
    fn gave_up<T>(what: &str, g: &GaveUp<T>) -> OpError {
        OpError::GaveUp {
            what: what.to_owned(),
            detail: g
                .last
                .as_ref()
                .map(|m| m.detail.clone())
                .unwrap_or_else(|| g.headline()),
        }
    }

    /// The cluster error that ended it, when the server refused.
    pub fn cluster_error(&self) -> Option<&ClusterError> {
        match self {
            OpError::Refused { error, .. } => Some(error),
            OpError::GaveUp { .. } => None,
        }
    }
}

/// Limits for lifecycle work: `deadline` only, deaf to Ctrl-C unless `cancel` is given
/// (cleanup is what runs after Ctrl-C).
pub fn limits_until(deadline: Instant, cancel: Option<CancellationToken>) -> Limits {
    let left = deadline.saturating_duration_since(Instant::now());
    Limits::for_step(
        Instant::now(),
        left,
        deadline,
        left,
        cancel.unwrap_or_default(),
    )
}

fn lifecycle_policy(limits: &Limits) -> Policy {
    Policy {
        timeout: limits.deadline().saturating_duration_since(Instant::now()),
        interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(2),
        consecutive: 1,
        hold: None,
    }
}

/// Run a cluster action until it succeeds, retrying while its errors are transient (the API
/// server restarting, 5xx, a conflict), within `limits`.
pub async fn call_until<T, F, Fut>(what: &str, limits: &Limits, action: F) -> Result<T, OpError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let policy = lifecycle_policy(limits);
    let pending = what.to_owned();
    let result = retry::eventually_unobserved(&policy, limits, &pending, |_| async {
        match action().await {
            Ok(v) => Ok(Ok(v)),
            Err(e) if e.is_transient() => Err(miss(&e, what)),
            // Final: handed back as the value, typed.
            Err(e) => Ok(Err(e)),
        }
    })
    .await;
    match result {
        Ok((Ok(v), _)) => Ok(v),
        Ok((Err(error), _)) => Err(OpError::Refused {
            what: what.to_owned(),
            error,
        }),
        Err(g) => Err(OpError::gave_up(what, &g)),
    }
}

/// One attempt at "these objects are gone": a miss naming the first one still there.
pub async fn check_gone(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    names: &[String],
) -> Result<(), Miss> {
    for n in names {
        let what = format!("{} {n}", kind.ar.kind);
        if let Some(o) = cluster
            .get(kind, namespace, n)
            .await
            .map_err(|e| miss(&e, &what))?
        {
            let fin = finalizers(&o);
            let fin = if fin.is_empty() {
                "none".to_owned()
            } else {
                format!("{fin:?}")
            };
            return Err(Miss::new(
                Class::Field,
                "still exists",
                format!("{what} still exists (finalizers: {fin})"),
            ));
        }
    }
    Ok(())
}

/// Wait, by the retry engine woken by a watch, until every named object is gone.
pub async fn wait_gone(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    names: &[String],
    limits: &Limits,
    observer: &mut dyn AttemptObserver,
) -> Result<u32, Box<GaveUp>> {
    let one = match names {
        [n] => Some(n.as_str()),
        _ => None,
    };
    let wake = Arc::new(Notify::new());
    let _changes = watch::Changes::start(cluster, kind, namespace, one, None, wake.clone());
    let mut limits = limits.clone();
    limits.wake = Some(wake);
    let timeout = limits.deadline().saturating_duration_since(Instant::now());
    let policy = Policy {
        timeout,
        interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(1),
        consecutive: 1,
        hold: None,
    };
    let what = match names {
        [n] => format!("{} {n}", kind.ar.kind),
        _ => format!("{} {}", names.len(), kind.ar.plural),
    };
    let pending = format!("waiting for {what} to be gone");
    retry::eventually(&policy, &limits, &pending, observer, |_| {
        check_gone(cluster, kind, namespace, names)
    })
    .await
    .map(|(_, h)| h.attempts)
}

/// `wait_gone` for one object within `limits`, for the lifecycles.
pub async fn wait_one_gone(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
    limits: &Limits,
) -> Result<(), Box<GaveUp>> {
    wait_gone(
        cluster,
        kind,
        namespace,
        &[name.to_owned()],
        limits,
        &mut |_: &retry::AttemptRecord| {},
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorded answers of a real kube-apiserver to writes it refuses (golden 09): every
    /// one is final at once, with the server's message; the 500 of an ill-typed server-side
    /// apply included.
    #[test]
    fn recorded_rejections_are_final_with_the_servers_message() {
        let golden: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/golden/apiserver/09-validation.json"
        ))
        .expect("golden 09");
        let mut seen = Vec::new();
        for e in golden.as_array().expect("exchanges") {
            let code = e["response"]["status"].as_u64().unwrap_or(0);
            if code < 400 {
                continue;
            }
            let status: kube::core::Status =
                serde_json::from_value(e["response"]["body"].clone()).expect("a Status");
            let err = ClusterError::from_kube(kube::Error::Api(Box::new(status)), "https://x");
            assert!(!err.is_transient(), "{err}");
            let m = miss(&err, "HTTPRoute r (a.yaml:1)");
            assert!(m.fatal, "{}", m.detail);
            let message = e["response"]["body"]["message"].as_str().unwrap();
            assert!(m.detail.ends_with(message), "{}", m.detail);
            seen.push(code);
        }
        assert!(
            seen.contains(&400) && seen.contains(&422) && seen.contains(&500),
            "{seen:?}"
        );
        let typed = ClusterError::Api {
            code: 500,
            reason: String::new(),
            message: "failed to create typed patch object (/r; x/v1, Kind=R): .spec.a: expected string, got &value.valueUnstructured{Value:true}".into(),
        };
        assert_eq!(
            miss(&typed, "R r").detail,
            "R r was rejected: 500: failed to create typed patch object (/r; x/v1, Kind=R): .spec.a: expected string, got &value.valueUnstructured{Value:true}"
        );
        // Any other 500 is the server's trouble: retried.
        let other = ClusterError::Api {
            code: 500,
            reason: "InternalError".into(),
            message: "etcdserver: request timed out".into(),
        };
        assert!(other.is_transient());
    }

    #[test]
    fn unusable_clusters_and_refusals_are_final_and_outages_are_not() {
        let what = "ConfigMap x";
        let auth = ClusterError::Auth {
            server: "https://k".into(),
            cause: "refused (401 Unauthorized): Unauthorized".into(),
        };
        let m = miss(&auth, what);
        assert!(m.fatal);
        assert_eq!(
            m.detail,
            "ConfigMap x: credentials for the Kubernetes API at https://k: refused (401 Unauthorized): Unauthorized"
        );
        let decode = ClusterError::Decode {
            server: "https://k".into(),
            cause: "expected value".into(),
        };
        assert!(miss(&decode, what).fatal);
        let down = ClusterError::Unreachable {
            server: "https://k".into(),
            cause: "Connection refused".into(),
        };
        let m = miss(&down, what);
        assert!(!m.fatal);
        assert_eq!(m.class, Class::ApiError);
        let rejected = ClusterError::Api {
            code: 422,
            reason: "Invalid".into(),
            message: "bad".into(),
        };
        assert_eq!(
            miss(&rejected, what).detail,
            "ConfigMap x was rejected: 422 Invalid: bad"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn call_until_retries_transient_errors_and_hands_back_final_ones() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = AtomicU32::new(0);
        let limits = limits_until(Instant::now() + Duration::from_secs(30), None);
        let r = call_until("creating namespace n", &limits, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(ClusterError::Unreachable {
                    server: "s".into(),
                    cause: "Connection refused".into(),
                })
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let r: Result<(), _> = call_until("creating namespace n", &limits, || async {
            Err(ClusterError::Api {
                code: 403,
                reason: "Forbidden".into(),
                message: "no".into(),
            })
        })
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.cluster_error().and_then(ClusterError::code), Some(403));
        assert_eq!(e.to_string(), "creating namespace n: no");

        let limits = limits_until(Instant::now() + Duration::from_secs(2), None);
        let r: Result<(), _> = call_until("deleting namespace n", &limits, || async {
            Err(ClusterError::Unreachable {
                server: "s".into(),
                cause: "Connection refused".into(),
            })
        })
        .await;
        assert_eq!(
            r.unwrap_err().to_string(),
            "deleting namespace n: deleting namespace n: cannot reach the Kubernetes API at s: Connection refused"
        );
    }
}
