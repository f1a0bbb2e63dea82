//! Conditions and the status writer.
//!
//! The reconciler computes what every object's status should be and hands the differences
//! to the writer as one batch; the writer applies the latest batch (older pending ones are
//! replaced), each write bounded in time, status writes guarded by the resourceVersion the
//! status was computed from (a newer object makes it a 409 and the next reconcile redoes
//! it). Failed writes wake the reconciler again with a backoff.
//!
//! Upstream status goes through a cache of what was last written per namespace/name, as
//! discovery controllers do to skip no-op writes. The cache remembers the uid it wrote for,
//! so a re-created same-named Upstream is a miss — except under the `stale-status` fault
//! (SCENARIOS S1), where a name written before is taken for the same object and skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::model::{self, Key};

/// The field manager of everything the demo gateway writes.
pub const MANAGER: &str = "demo-gateway";
/// One write's deadline.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes in flight at once.
const CONCURRENCY: usize = 8;

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A condition; `previous` is the object's current condition list, whose
/// `lastTransitionTime` is kept when the status did not change.
pub fn condition(
    previous: &Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: &str,
) -> Value {
    let last = previous
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": last,
    })
}

/// `v` without `lastTransitionTime` anywhere (to compare statuses written at other times).
pub fn without_times(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != "lastTransitionTime")
                .map(|(k, v)| (k.clone(), without_times(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

/// What an Upstream looks like now (from the cache or the apply's answer).
#[derive(Clone, Debug)]
pub struct UpstreamState {
    pub uid: String,
    pub generation: i64,
    pub resource_version: String,
    pub status: Value,
}

impl UpstreamState {
    pub fn of(obj: &DynamicObject) -> UpstreamState {
        let m = model::meta(obj);
        UpstreamState {
            uid: m.uid,
            generation: m.generation,
            resource_version: m.resource_version,
            status: model::status(obj).clone(),
        }
    }
}

/// The Upstream status the demo gateway wants.
pub fn upstream_status(previous: &Value, service: &str, generation: i64, now: &str) -> Value {
    json!({"conditions": [condition(
        previous.get("conditions").unwrap_or(&Value::Null),
        "Accepted",
        "True",
        "Accepted",
        &format!("discovered from Service {service}"),
        generation,
        now,
    )]})
}

/// One object's writes.
#[derive(Clone, Debug)]
pub enum Write {
    /// A JSON merge patch of `status`, guarded by `resource_version`.
    Status {
        ar: ApiResource,
        key: Key,
        resource_version: String,
        status: Value,
    },
    /// A Gateway: its address annotations by server-side apply, then its status.
    Gateway {
        key: Key,
        resource_version: String,
        annotations: Option<BTreeMap<String, String>>,
        status: Option<Value>,
    },
    /// An Upstream: created or updated by server-side apply (`apply`), then its status.
    Upstream {
        key: Key,
        service: String,
        apply: Option<Value>,
        current: Option<UpstreamState>,
        /// `stale-status` is on in the namespace.
        stale_status: bool,
        /// `hang` is on: no status write.
        hang: bool,
    },
    /// Delete, if it is still the object with `uid`.
    Delete {
        ar: ApiResource,
        key: Key,
        uid: String,
    },
}

/// What the Upstream status cache holds for a namespace/name.
#[derive(Clone, Debug)]
struct Written {
    uid: String,
    status: Value,
}

pub struct StatusWriter {
    client: kube::Client,
    pending: Mutex<Option<Vec<Write>>>,
    wake: Notify,
    /// The reconciler's trigger (a retry after failed writes).
    reconcile: Arc<Notify>,
    upstream_cache: Mutex<HashMap<Key, Written>>,
}

impl StatusWriter {
    pub fn new(client: kube::Client, reconcile: Arc<Notify>) -> Arc<StatusWriter> {
        Arc::new(StatusWriter {
            client,
            pending: Mutex::new(None),
            wake: Notify::new(),
            reconcile,
            upstream_cache: Mutex::new(HashMap::new()),
        })
    }

    /// Replace the pending batch.
    pub fn submit(&self, batch: Vec<Write>) {
        if batch.is_empty() {
            return;
        }
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(batch);
        self.wake.notify_one();
    }

    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = cancel.cancelled() => return,
            }
            let Some(batch) = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            else {
                continue;
            };
            let writes = futures::stream::iter(batch)
                .map(|w| {
                    let this = self.clone();
                    async move {
                        let what = w.describe();
                        match tokio::time::timeout(WRITE_TIMEOUT, this.write(w)).await {
                            Ok(Ok(())) => true,
                            Ok(Err(e)) => {
                                tracing::debug!("demo gateway: {what}: {e}");
                                false
                            }
                            Err(_) => {
                                tracing::debug!("demo gateway: {what}: timed out");
                                false
                            }
                        }
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<bool>>();
            let results = tokio::select! {
                r = writes => r,
                _ = cancel.cancelled() => return,
            };
            if results.iter().all(|ok| *ok) {
                failures = 0;
                continue;
            }
            // Conflicts and transient errors: reconcile again (from fresher objects) soon.
            failures = failures.saturating_add(1);
            let delay =
                Duration::from_millis(100 * 2u64.pow(failures.min(8))).min(Duration::from_secs(20));
            let reconcile = self.reconcile.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => reconcile.notify_one(),
                    _ = cancel.cancelled() => {}
                }
            });
        }
    }

    fn api(&self, ar: &ApiResource, key: &Key) -> Api<DynamicObject> {
        if key.namespace.is_empty() {
            Api::all_with(self.client.clone(), ar)
        } else {
            Api::namespaced_with(self.client.clone(), &key.namespace, ar)
        }
    }

    async fn write(&self, w: Write) -> Result<(), kube::Error> {
        let result = match w {
            Write::Status {
                ar,
                key,
                resource_version,
                status,
            } => self
                .patch_status(&ar, &key, &resource_version, status)
                .await
                .map(|_| ()),
            Write::Gateway {
                key,
                mut resource_version,
                annotations,
                status,
            } => {
                let ar = model::gateway_ar();
                if let Some(annotations) = annotations {
                    let body = json!({
                        "apiVersion": ar.api_version,
                        "kind": ar.kind,
                        "metadata": {"name": key.name, "namespace": key.namespace, "annotations": annotations},
                    });
                    let obj = self.apply(&ar, &key, body).await?;
                    resource_version = obj.metadata.resource_version.unwrap_or_default();
                }
                match status {
                    Some(s) => self
                        .patch_status(&ar, &key, &resource_version, s)
                        .await
                        .map(|_| ()),
                    None => Ok(()),
                }
            }
            Write::Upstream {
                key,
                service,
                apply,
                current,
                stale_status,
                hang,
            } => {
                self.upstream(key, &service, apply, current, stale_status, hang)
                    .await
            }
            Write::Delete { ar, key, uid } => self
                .api(&ar, &key)
                .delete(
                    &key.name,
                    &DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    },
                )
                .await
                .map(|_| ()),
        };
        match result {
            // Gone already: nothing left to write.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other,
        }
    }

    /// Server-side applies `body` as our field manager, taking over conflicting fields.
    async fn apply(
        &self,
        ar: &ApiResource,
        key: &Key,
        body: Value,
    ) -> Result<DynamicObject, kube::Error> {
        self.api(ar, key)
            .patch(
                &key.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
    }

    async fn patch_status(
        &self,
        ar: &ApiResource,
        key: &Key,
        resource_version: &str,
        status: Value,
    ) -> Result<DynamicObject, kube::Error> {
        let patch = json!({"metadata": {"resourceVersion": resource_version}, "status": status});
        self.api(ar, key)
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
    }

    async fn upstream(
        &self,
        key: Key,
        service: &str,
        apply: Option<Value>,
        current: Option<UpstreamState>,
        stale_status: bool,
        hang: bool,
    ) -> Result<(), kube::Error> {
        let ar = model::upstream_ar();
        let state = match apply {
            Some(body) => {
                let obj = self.apply(&ar, &key, body).await?;
                UpstreamState::of(&obj)
            }
            None => match current {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        if hang {
            return Ok(());
        }
        let desired = upstream_status(&state.status, service, state.generation, &now_rfc3339());
        let comparable = without_times(&desired);
        {
            let cache = self
                .upstream_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match cache.get(&key) {
                // S1: the name was written before, so the cache is taken to be about this
                // object — and the write skipped.
                Some(w) if w.uid != state.uid && stale_status => return Ok(()),
                // Written before for this very object, and nothing changed.
                Some(w)
                    if w.uid == state.uid && w.status == comparable && state.status == desired =>
                {
                    return Ok(());
                }
                _ => {}
            }
        }
        if state.status == desired {
            // Already there (e.g. written before a restart of the gateway).
            return Ok(());
        }
        self.patch_status(&ar, &key, &state.resource_version, desired)
            .await?;
        self.upstream_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                Written {
                    uid: state.uid,
                    status: comparable,
                },
            );
        Ok(())
    }
}

impl Write {
    fn describe(&self) -> String {
        match self {
            Write::Status { ar, key, .. } => format!("writing the status of {} {key}", ar.kind),
            Write::Gateway { key, .. } => format!("writing Gateway {key}"),
            Write::Upstream { key, .. } => format!("writing Upstream {key}"),
            Write::Delete { ar, key, .. } => format!("deleting {} {key}", ar.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let previous = json!([{"type": "Accepted", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]);
        let same = condition(
            &previous,
            "Accepted",
            "True",
            "Accepted",
            "m",
            3,
            "2030-01-01T00:00:00Z",
        );
        assert_eq!(same["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(same["observedGeneration"], 3);
        let flipped = condition(
            &previous,
            "Accepted",
            "False",
            "X",
            "m",
            3,
            "2030-01-01T00:00:00Z",
        );
        assert_eq!(flipped["lastTransitionTime"], "2030-01-01T00:00:00Z");
        let new = condition(
            &Value::Null,
            "Programmed",
            "True",
            "Programmed",
            "m",
            1,
            "2030-01-01T00:00:00Z",
        );
        assert_eq!(new["lastTransitionTime"], "2030-01-01T00:00:00Z");
        assert_eq!(
            without_times(&json!({"conditions": [same]})),
            json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "m", "observedGeneration": 3}]})
        );
    }
}
