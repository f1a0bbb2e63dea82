//! In the sandbox, the demo gateway deploys like real implementations do: per Gateway of its
//! class, a Service named as the Gateway (in its namespace, a port per listener port) and a
//! data-plane Pod labelled `gateway.networking.k8s.io/gateway-name: <gateway>`, Running and
//! Ready in its status. Both are owned by the Gateway (ownerReferences), so they go with it.
//!
//! The pod is a handle on the in-process data plane: [`PodRuntime`] is the sandbox's kubelet
//! for these pods. `pods/portforward` to port P reaches the Gateway's listener whose spec
//! port is P; `pods/log` shows the demo gateway's log for the Gateway ([`super::log`]). A pod
//! that is deleted stops (its forwarded connections close) and is replaced by a new one, as
//! a Deployment would replace it.
//!
//! Against a real cluster nothing of this runs: the data plane runs where gwtest runs.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::controller::{WatchHealth, Watched, watch as watch_kind};
use super::dataplane::DataPlane;
use super::model::{self, Key};
use crate::apiserver::pods::{Kubelet, KubeletError, PodRef};

pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "gwtest-demo-gateway";
/// The node the data-plane pods are "scheduled" on.
pub const NODE: &str = "gwtest-sandbox";
/// The pods' one container.
pub const CONTAINER: &str = "gateway";
const FIELD_MANAGER: &str = "demo-gateway";
/// A pod just created counts as there until the watch shows it (no second pod meanwhile).
const CREATE_GRACE: Duration = Duration::from_secs(5);
/// Reconcile at least this often (a failed write is tried again).
const RESYNC: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A Gateway to deploy: its listeners' (name, spec port), valid ones only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub key: Key,
    pub uid: String,
    pub listeners: Vec<(String, u16)>,
}

struct Running {
    uid: String,
    gateway: Key,
    stop: CancellationToken,
}

/// The sandbox's kubelet for the data-plane pods.
pub struct PodRuntime {
    plane: Arc<DataPlane>,
    pods: Mutex<HashMap<(String, String), Running>>,
    listeners: Mutex<HashMap<Key, Vec<(String, u16)>>>,
}

impl PodRuntime {
    fn new(plane: Arc<DataPlane>) -> Self {
        PodRuntime {
            plane,
            pods: Mutex::new(HashMap::new()),
            listeners: Mutex::new(HashMap::new()),
        }
    }

    fn running(&self, pod: &PodRef) -> Result<(Key, CancellationToken), KubeletError> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        match pods.get(&(pod.namespace.clone(), pod.name.clone())) {
            Some(r) if pod.uid.is_empty() || r.uid == pod.uid => {
                Ok((r.gateway.clone(), r.stop.clone()))
            }
            _ => Err(KubeletError::NotRunning),
        }
    }

    /// The listeners of each Gateway its pods serve.
    fn set_listeners(&self, wanted: &[Wanted]) {
        *self.listeners.lock().unwrap_or_else(|e| e.into_inner()) = wanted
            .iter()
            .map(|w| (w.key.clone(), w.listeners.clone()))
            .collect();
    }

    /// A pod runs from now on: before it is reported Ready, so that a client that sees it
    /// Ready can reach it.
    fn start(&self, namespace: &str, name: &str, uid: &str, gateway: &Key) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let k = (namespace.to_string(), name.to_string());
        if pods.get(&k).is_some_and(|r| r.uid == uid) {
            return;
        }
        if let Some(old) = pods.insert(
            k,
            Running {
                uid: uid.to_string(),
                gateway: gateway.clone(),
                stop: CancellationToken::new(),
            },
        ) {
            old.stop.cancel();
        }
    }

    /// The pods that run from now on (uid and Gateway by namespace/name); the others stop.
    fn set(&self, now: HashMap<(String, String), (String, Key)>) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.retain(|k, r| {
            let keep = now.get(k).is_some_and(|(uid, _)| *uid == r.uid);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        for (k, (uid, gateway)) in now {
            pods.entry(k).or_insert_with(|| Running {
                uid,
                gateway,
                stop: CancellationToken::new(),
            });
        }
    }
}

impl Kubelet for PodRuntime {
    fn port(
        &self,
        pod: &PodRef,
        port: u16,
    ) -> Result<(SocketAddr, CancellationToken), KubeletError> {
        let (gateway, stop) = self.running(pod)?;
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&gateway)
            .cloned()
            .unwrap_or_default();
        let served = self.plane.addresses();
        let addr = listeners
            .iter()
            .filter(|(_, p)| *p == port)
            .find_map(|(name, _)| {
                served
                    .iter()
                    .find(|((k, l), _)| *k == gateway && l == name)
                    .map(|(_, a)| *a)
            });
        match addr {
            Some(a) => Ok((a, stop)),
            None => {
                let have: Vec<String> = listeners
                    .iter()
                    .map(|(n, p)| format!("{n} on {p}"))
                    .collect();
                Err(KubeletError::Port(format!(
                    "no listener of Gateway {gateway} on port {port} (listeners: {}): connection \
                     refused",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                )))
            }
        }
    }

    fn logs(
        &self,
        pod: &PodRef,
        _container: &str,
    ) -> Result<Vec<(SystemTime, String)>, KubeletError> {
        let (gateway, _) = self.running(pod)?;
        Ok(self
            .plane
            .log
            .lines(&gateway, None)
            .into_iter()
            .map(|l| (l.time, l.render()))
            .collect())
    }
}

/// Deploys Services and Pods for the Gateways the controller reconciles.
pub struct Deployer {
    wanted: watch::Sender<Option<Vec<Wanted>>>,
    runtime: Arc<PodRuntime>,
}

impl Deployer {
    /// Start watching the pods and Services it manages, and deploying.
    pub fn start(
        client: &kube::Client,
        plane: Arc<DataPlane>,
        health: &Arc<WatchHealth>,
        cancel: CancellationToken,
    ) -> (Deployer, Vec<JoinHandle<()>>) {
        let wake = Arc::new(Notify::new());
        let selector =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let (pods, pw) = watch_kind(
            client,
            pod_ar(),
            selector.clone(),
            wake.clone(),
            health.clone(),
        );
        let (services, sw) = watch_kind(
            client,
            model::service_ar(),
            selector,
            wake.clone(),
            health.clone(),
        );
        let (tx, rx) = watch::channel(None);
        let runtime = Arc::new(PodRuntime::new(plane.clone()));
        let r = Reconciler {
            client: client.clone(),
            plane,
            pods,
            services,
            runtime: runtime.clone(),
            recent: HashMap::new(),
            refused: HashSet::new(),
        };
        let task = tokio::spawn(r.run(rx, wake, cancel));
        (
            Deployer {
                wanted: tx,
                runtime,
            },
            vec![pw, sw, task],
        )
    }

    /// The Gateways to deploy, after a reconcile.
    pub fn publish(&self, wanted: Vec<Wanted>) {
        self.wanted.send_if_modified(|w| {
            if w.as_ref() == Some(&wanted) {
                false
            } else {
                *w = Some(wanted);
                true
            }
        });
    }

    pub fn kubelet(&self) -> Arc<dyn Kubelet> {
        self.runtime.clone()
    }
}

struct Reconciler {
    client: kube::Client,
    plane: Arc<DataPlane>,
    pods: Watched,
    services: Watched,
    runtime: Arc<PodRuntime>,
    /// Pods created and not seen by the watch yet: namespace/name → (Gateway, when).
    recent: HashMap<(String, String), (Key, String, Instant)>,
    /// Services named as a Gateway that are someone else's: left alone (logged once).
    refused: HashSet<Key>,
}

fn pod_ar() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&())
}

fn owner(w: &Wanted) -> Value {
    json!([{
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": w.key.name,
        "uid": w.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

fn labels(w: &Wanted) -> Value {
    json!({GATEWAY_NAME_LABEL: w.key.name, MANAGED_BY_LABEL: MANAGED_BY})
}

/// A port name: the listener's, when it is a valid one (IANA_SVC_NAME for containers).
fn port_name(name: &str, max: usize) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().any(|c| c.is_ascii_lowercase());
    ok.then(|| name.to_string())
}

/// One port per distinct listener port, in listener order: `port(number)`, named after the
/// listener when that is a valid port name of at most `max_name` characters.
fn ports(w: &Wanted, max_name: usize, port: impl Fn(u16) -> Value) -> Vec<Value> {
    let mut seen = HashSet::new();
    w.listeners
        .iter()
        .filter(|(_, p)| seen.insert(*p))
        .map(|(n, p)| {
            let mut v = port(*p);
            if let Some(name) = port_name(n, max_name) {
                v["name"] = json!(name);
            }
            v
        })
        .collect()
}

fn service(w: &Wanted) -> Value {
    let ports = ports(
        w,
        63,
        |p| json!({"port": p, "targetPort": p, "protocol": "TCP"}),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": w.key.name,
            "namespace": w.key.namespace,
            "labels": labels(w),
            "ownerReferences": owner(w),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {GATEWAY_NAME_LABEL: w.key.name},
            "ports": ports,
        },
    })
}

fn pod(w: &Wanted, name: &str) -> Value {
    let ports = ports(w, 15, |p| json!({"containerPort": p, "protocol": "TCP"}));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": w.key.namespace,
            "labels": labels(w),
            "ownerReferences": owner(w),
        },
        "spec": {
            "nodeName": NODE,
            "containers": [{
                "name": CONTAINER,
                "image": "gwtest.dev/demo-gateway:sandbox",
                "ports": ports,
            }],
        },
    })
}

/// Running and Ready, as a kubelet reports a started pod.
fn running_status(started: &str) -> Value {
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": started});
    json!({
        "phase": "Running",
        "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": started,
        "containerStatuses": [{
            "name": CONTAINER,
            "ready": true,
            "started": true,
            "restartCount": 0,
            "image": "gwtest.dev/demo-gateway:sandbox",
            "imageID": "",
            "state": {"running": {"startedAt": started}},
        }],
    })
}

fn is_ready(o: &DynamicObject) -> bool {
    o.data.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && o.data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Ready")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
}

fn owner_uid(o: &DynamicObject) -> Option<&str> {
    o.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.kind == "Gateway")
        .map(|r| r.uid.as_str())
}

fn gateway_of(o: &DynamicObject) -> Option<Key> {
    let name = o.metadata.labels.as_ref()?.get(GATEWAY_NAME_LABEL)?;
    Some(Key::new(o.metadata.namespace.as_deref()?, name))
}

/// The ports of a Service as (port, targetPort) pairs, for comparison.
fn service_ports(v: &Value) -> Vec<(u64, String)> {
    v.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.get("port").and_then(Value::as_u64).unwrap_or(0),
                p.get("targetPort")
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}

impl Reconciler {
    async fn run(
        mut self,
        mut wanted: watch::Receiver<Option<Vec<Wanted>>>,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) {
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = wanted.changed() => if r.is_err() { return },
                _ = wake.notified() => {}
                _ = resync.tick() => {}
            }
            let current = wanted.borrow().clone();
            if let Some(w) = current
                && self.pods.ready()
                && self.services.ready()
            {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = self.reconcile(&w) => {}
                }
            }
        }
    }

    async fn reconcile(&mut self, wanted: &[Wanted]) {
        let pods = self.pods.state();
        let services = self.services.state();
        let keys: HashSet<&Key> = wanted.iter().map(|w| &w.key).collect();
        self.refused.retain(|k| keys.contains(k));
        self.recent.retain(|k, (_, _, at)| {
            at.elapsed() < CREATE_GRACE
                && !pods.iter().any(|p| {
                    p.metadata.namespace.as_deref() == Some(k.0.as_str())
                        && p.metadata.name.as_deref() == Some(k.1.as_str())
                })
        });
        self.runtime.set_listeners(wanted);
        let mut running: HashMap<(String, String), (String, Key)> = HashMap::new();
        for w in wanted {
            self.service(w, &services).await;
            let mine: Vec<&Arc<DynamicObject>> = pods
                .iter()
                .filter(|p| {
                    gateway_of(p).as_ref() == Some(&w.key)
                        && owner_uid(p) == Some(w.uid.as_str())
                        && p.metadata.deletion_timestamp.is_none()
                })
                .collect();
            for p in &mine {
                let name = p.metadata.name.clone().unwrap_or_default();
                let uid = p.metadata.uid.clone().unwrap_or_default();
                self.runtime.start(&w.key.namespace, &name, &uid, &w.key);
                if !is_ready(p) {
                    self.mark_running(&w.key.namespace, &name).await;
                }
                running.insert((w.key.namespace.clone(), name), (uid, w.key.clone()));
            }
            let mut pending = false;
            for ((ns, name), (k, uid, _)) in &self.recent {
                if *k == w.key {
                    pending = true;
                    running.insert((ns.clone(), name.clone()), (uid.clone(), k.clone()));
                }
            }
            if mine.is_empty() && !pending {
                self.create_pod(w, &mut running).await;
            }
        }
        // Pods created just now are running (the watch shows them soon).
        self.runtime.set(running);
        // What is left of Gateways that are no longer ours goes (owner references take care
        // of deleted Gateways; this covers a Gateway moved to another class).
        for o in pods.iter().chain(services.iter()) {
            if o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Some(g) = gateway_of(o)
                && !keys.contains(&g)
            {
                let kind = o.types.as_ref().map_or("", |t| t.kind.as_str());
                let ar = if kind == "Service" {
                    model::service_ar()
                } else {
                    pod_ar()
                };
                let api: Api<DynamicObject> = Api::namespaced_with(
                    self.client.clone(),
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    &ar,
                );
                let name = o.metadata.name.clone().unwrap_or_default();
                let _ = tokio::time::timeout(
                    CALL_TIMEOUT,
                    api.delete(&name, &DeleteParams::background()),
                )
                .await;
            }
        }
    }

    async fn service(&mut self, w: &Wanted, services: &[Arc<DynamicObject>]) {
        let desired = service(w);
        let current = services.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(w.key.namespace.as_str())
                && s.metadata.name.as_deref() == Some(w.key.name.as_str())
        });
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &w.key.namespace, &model::service_ar());
        match current {
            Some(s)
                if owner_uid(s) == Some(w.uid.as_str())
                    && service_ports(&s.data) == service_ports(&desired) => {}
            Some(_) => {
                let pp = PatchParams::apply(FIELD_MANAGER).force();
                let r = tokio::time::timeout(
                    CALL_TIMEOUT,
                    api.patch(&w.key.name, &pp, &Patch::Apply(&desired)),
                )
                .await;
                if let Ok(Ok(_)) = r {
                    self.plane
                        .log
                        .gateway(&w.key, format!("INFO updated Service {}", w.key));
                }
            }
            None if self.refused.contains(&w.key) => {}
            None => {
                let Ok(obj) = serde_json::from_value::<DynamicObject>(desired) else {
                    return;
                };
                let r =
                    tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &obj))
                        .await;
                match r {
                    Ok(Ok(_)) => self
                        .plane
                        .log
                        .gateway(&w.key, format!("INFO created Service {}", w.key)),
                    Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                        self.refused.insert(w.key.clone());
                        self.plane.log.gateway(
                            &w.key,
                            format!(
                                "WARN Service {} exists and is not the demo gateway's: left alone",
                                w.key
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    async fn create_pod(
        &mut self,
        w: &Wanted,
        running: &mut HashMap<(String, String), (String, Key)>,
    ) {
        let base: String = w.key.name.chars().take(57).collect();
        let name = format!("{}-{}", base.trim_end_matches('-'), random_suffix());
        let Ok(obj) = serde_json::from_value::<DynamicObject>(pod(w, &name)) else {
            return;
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &w.key.namespace, &pod_ar());
        let created =
            tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &obj)).await;
        let Ok(Ok(created)) = created else { return };
        let uid = created.metadata.uid.unwrap_or_default();
        self.runtime.start(&w.key.namespace, &name, &uid, &w.key);
        self.recent.insert(
            (w.key.namespace.clone(), name.clone()),
            (w.key.clone(), uid.clone(), Instant::now()),
        );
        self.plane.log.gateway(
            &w.key,
            format!("INFO data-plane pod {}/{name} created", w.key.namespace),
        );
        self.mark_running(&w.key.namespace, &name).await;
        running.insert((w.key.namespace.clone(), name), (uid, w.key.clone()));
    }

    /// Report the pod Running and Ready through its status, as its kubelet would.
    async fn mark_running(&self, namespace: &str, name: &str) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &pod_ar());
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let patch = json!({"status": running_status(&now)});
        let _ = tokio::time::timeout(
            CALL_TIMEOUT,
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Wanted {
        Wanted {
            key: Key::new("infra", "gw"),
            uid: "u1".into(),
            listeners: vec![
                ("http".into(), 80),
                ("http-other-host".into(), 80),
                ("Admin_Port".into(), 9000),
            ],
        }
    }

    #[test]
    fn a_service_port_per_listener_port_selecting_the_gateways_pods() {
        let s = service(&wanted());
        assert_eq!(s["metadata"]["name"], "gw");
        assert_eq!(
            s["spec"]["selector"],
            json!({"gateway.networking.k8s.io/gateway-name": "gw"})
        );
        assert_eq!(
            s["spec"]["ports"],
            json!([
                {"port": 80, "targetPort": 80, "protocol": "TCP", "name": "http"},
                {"port": 9000, "targetPort": 9000, "protocol": "TCP"}
            ])
        );
        assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "u1");
        let p = pod(&wanted(), "gw-abcde");
        assert_eq!(p["spec"]["nodeName"], NODE);
        assert_eq!(
            p["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"],
            "gw"
        );
        assert_eq!(
            p["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"},
                   {"containerPort": 9000, "protocol": "TCP"}])
        );
        let st = running_status("2025-01-01T00:00:00Z");
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "status": st
        }))
        .unwrap();
        assert!(is_ready(&obj));
    }
}
