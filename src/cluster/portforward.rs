//! Port-forward through the API server (`pods/portforward`, kube-rs): a listener on
//! 127.0.0.1 whose every connection is tunnelled to a ready pod — of a Service (its
//! selector picks the pods, its port maps to the pod's target port) or a named pod — the way
//! `kubectl port-forward` reaches a gateway on kind on macOS, on private clusters, anywhere
//! without a LoadBalancer. It works the same against the sandbox (whose API server serves the
//! demo gateway's data-plane pods) and any real cluster.
//!
//! A forward keeps following its Service: each new connection checks that the pod in use is
//! still there and ready, and otherwise picks another ready pod; a tunnel that cannot be
//! opened to the pod in use (it just went) is tried once more on a freshly picked pod. A
//! connection that cannot be tunnelled is closed, which the client sees as a reset.
//!
//! This is the client layer: one look at the cluster ([`ready_pod`]) and the forward itself.
//! Waiting for a ready pod (a deadline, retries) is the caller's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::ClusterError;
use crate::util::shell_quote;

/// What a forward points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Service(String),
    Pod(String),
}

/// A forward: namespace, Service or pod, and the Service's (or pod's) port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ForwardSpec {
    pub namespace: String,
    pub target: Target,
    pub port: u16,
}

impl ForwardSpec {
    /// `service/gw` or `pod/gw-abcde`, as kubectl names it.
    pub fn resource(&self) -> String {
        match &self.target {
            Target::Service(s) => format!("service/{s}"),
            Target::Pod(p) => format!("pod/{p}"),
        }
    }

    /// `Service gwtest-infra/gw port 80`
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Service(s) => format!("Service {}/{s} port {}", self.namespace, self.port),
            Target::Pod(p) => format!("pod {}/{p} port {}", self.namespace, self.port),
        }
    }
}

/// Why no pod can take a forward's connections (one look).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The Service or pod does not exist (yet).
    #[error("{0}")]
    Missing(String),
    /// It exists, but no pod is Running and Ready.
    #[error("{0}")]
    NoReadyPod(String),
    /// The Service has no such port, or the pod no such named port (yet).
    #[error("{0}")]
    Port(String),
    /// Waiting cannot help: a Service without a selector.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Api(#[from] ClusterError),
}

/// Running and Ready, and not being deleted: a pod that can take connections.
pub fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// `gw-abcde Pending`, `gw-xyz Running, not Ready`, `gw-q terminating`.
fn pod_state(p: &Pod) -> String {
    let name = p.metadata.name.as_deref().unwrap_or("?");
    if p.metadata.deletion_timestamp.is_some() {
        return format!("{name} terminating");
    }
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => format!("{name} Running, not Ready"),
        Some(phase) => format!("{name} {phase}"),
        None => format!("{name} without status (not scheduled?)"),
    }
}

/// A pod port by number or by container port name.
fn pod_port(p: &Pod, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => p
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

/// One look: a ready pod for `spec` (not `avoid` when there is another) and the pod port to
/// forward to.
pub async fn ready_pod(
    client: &kube::Client,
    server: &str,
    spec: &ForwardSpec,
    avoid: Option<&str>,
) -> Result<(String, u16), NotReady> {
    let err = |e: kube::Error| NotReady::Api(ClusterError::from_kube(e, server));
    let ns = &spec.namespace;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match &spec.target {
        Target::Pod(name) => {
            let p = pods
                .get_opt(name)
                .await
                .map_err(err)?
                .ok_or_else(|| NotReady::Missing(format!("pod {ns}/{name} does not exist")))?;
            if !pod_ready(&p) {
                return Err(NotReady::NoReadyPod(format!(
                    "pod {ns}/{} is not ready",
                    pod_state(&p)
                )));
            }
            Ok((name.clone(), spec.port))
        }
        Target::Service(name) => {
            let services: Api<Service> = Api::namespaced(client.clone(), ns);
            let svc =
                services.get_opt(name).await.map_err(err)?.ok_or_else(|| {
                    NotReady::Missing(format!("Service {ns}/{name} does not exist"))
                })?;
            let sspec = svc.spec.unwrap_or_default();
            let selector: Vec<String> = sspec
                .selector
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if selector.is_empty() {
                return Err(NotReady::Invalid(format!(
                    "Service {ns}/{name} has no selector: port-forward needs the pods it selects"
                )));
            }
            let sp = sspec
                .ports
                .unwrap_or_default()
                .into_iter()
                .find(|p| p.port == i32::from(spec.port));
            let Some(sp) = sp else {
                return Err(NotReady::Port(format!(
                    "Service {ns}/{name} has no port {}",
                    spec.port
                )));
            };
            let target = sp
                .target_port
                .unwrap_or(IntOrString::Int(i32::from(spec.port)));
            let selector = selector.join(",");
            let mut list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(err)?
                .items;
            if list.is_empty() {
                return Err(NotReady::NoReadyPod(format!(
                    "no pod matches the selector {selector} of Service {ns}/{name}"
                )));
            }
            // The oldest ready pod: the one a forward keeps while it lasts.
            list.sort_by(|a, b| {
                (&a.metadata.creation_timestamp, &a.metadata.name)
                    .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
            });
            let candidates: Vec<&Pod> = list.iter().filter(|p| pod_ready(p)).collect();
            let pick = candidates
                .iter()
                .find(|p| p.metadata.name.as_deref() != avoid)
                .or(candidates.first());
            let Some(p) = pick else {
                let states: Vec<String> = list.iter().map(pod_state).collect();
                return Err(NotReady::NoReadyPod(format!(
                    "no ready pod behind Service {ns}/{name} (selector {selector}): {}",
                    states.join(", ")
                )));
            };
            let port = pod_port(p, &target).ok_or_else(|| {
                NotReady::Port(format!(
                    "pod {ns}/{} has no port named {target:?} (the target port of Service \
                     {ns}/{name} port {})",
                    p.metadata.name.as_deref().unwrap_or("?"),
                    spec.port
                ))
            })?;
            Ok((p.metadata.name.clone().unwrap_or_default(), port))
        }
    }
}

struct Shared {
    client: kube::Client,
    server: String,
    spec: ForwardSpec,
    /// The pod in use and its port.
    current: Mutex<Option<(String, u16)>>,
    stop: CancellationToken,
}

/// A running forward: stops when dropped.
pub struct Forward {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// How long opening one tunnel may take.
const TUNNEL_TIMEOUT: Duration = Duration::from_secs(10);

impl Forward {
    /// Listen on 127.0.0.1 (a free port) and forward to `first` (a ready pod and its port,
    /// from [`ready_pod`]) until the pod goes, then to another one.
    pub async fn start(
        client: kube::Client,
        server: &str,
        spec: ForwardSpec,
        first: (String, u16),
    ) -> std::io::Result<Forward> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client,
            server: server.to_owned(),
            spec,
            current: Mutex::new(Some(first)),
            stop: CancellationToken::new(),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = s.stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((conn, _)) => {
                        let _ = conn.set_nodelay(true);
                        tokio::spawn(tunnel(s.clone(), conn));
                    }
                    // Out of descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        Ok(Forward { addr, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn spec(&self) -> &ForwardSpec {
        &self.shared.spec
    }

    /// The pod connections go to now.
    pub fn pod(&self) -> Option<String> {
        lock(&self.shared.current).as_ref().map(|(p, _)| p.clone())
    }

    /// The equivalent kubectl command, on the same local port (`flags`: ` --kubeconfig ...`,
    /// as [`super::kubectl_flags`] gives them).
    pub fn kubectl(&self, flags: &str) -> String {
        let s = &self.shared.spec;
        format!(
            "kubectl{flags} port-forward -n {} {} {}:{}",
            shell_quote(&s.namespace),
            shell_quote(&s.resource()),
            self.addr.port(),
            s.port
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The pod for a new connection: the one in use while it is still ready (checked), else
    /// another ready one.
    async fn pick(&self, avoid: Option<&str>) -> Option<(String, u16)> {
        let current = lock(&self.current).clone();
        if let Some((pod, port)) = &current
            && avoid != Some(pod.as_str())
        {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.spec.namespace);
            if let Ok(Some(p)) = pods.get_opt(pod).await
                && pod_ready(&p)
            {
                return Some((pod.clone(), *port));
            }
        }
        let avoid = avoid.or(current.as_ref().map(|(p, _)| p.as_str()));
        let next = ready_pod(&self.client, &self.server, &self.spec, avoid)
            .await
            .ok()?;
        *lock(&self.current) = Some(next.clone());
        Some(next)
    }
}

/// One local connection, tunnelled to a pod until either side closes.
async fn tunnel(s: Arc<Shared>, mut local: TcpStream) {
    let work = async {
        let mut avoid: Option<String> = None;
        // The pod in use, then once more on a freshly picked pod if that one just went.
        for _ in 0..2 {
            let Some((pod, port)) = s.pick(avoid.as_deref()).await else {
                return;
            };
            let pods: Api<Pod> = Api::namespaced(s.client.clone(), &s.spec.namespace);
            let opened =
                tokio::time::timeout(TUNNEL_TIMEOUT, pods.portforward(&pod, &[port])).await;
            let Ok(Ok(mut pf)) = opened else {
                avoid = Some(pod);
                continue;
            };
            let (Some(mut remote), Some(error)) = (pf.take_stream(port), pf.take_error(port))
            else {
                pf.abort();
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut local, &mut remote) => {}
                // The pod reported an error on the port (nothing listens): the connection ends.
                Some(_) = error => {}
            }
            pf.abort();
            return;
        }
    };
    tokio::select! {
        _ = work => {}
        _ = s.stop.cancelled() => {}
    }
}

/// The run's forwards, shared by the suites that ask for the same one.
#[derive(Default)]
pub struct Forwards {
    map: Mutex<HashMap<ForwardSpec, Arc<tokio::sync::OnceCell<Arc<Forward>>>>>,
}

impl Forwards {
    /// The forward for `spec`, started by `start` when there is none yet. Two suites asking
    /// for the same one at once share it; different ones start independently.
    pub async fn get_or_start<F, Fut, E>(
        &self,
        spec: &ForwardSpec,
        start: F,
    ) -> Result<Arc<Forward>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Forward, E>>,
    {
        let cell = lock(&self.map).entry(spec.clone()).or_default().clone();
        cell.get_or_try_init(|| async { start().await.map(Arc::new) })
            .await
            .cloned()
    }

    fn started(&self) -> Vec<Arc<Forward>> {
        lock(&self.map)
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    /// The kubectl commands of the forwards a reproduce command goes through (it names
    /// their local address), each in the background.
    pub fn commands_for(&self, lines: &[String], flags: &str) -> Vec<String> {
        let mut out: Vec<(u16, String)> = self
            .started()
            .into_iter()
            .filter(|f| {
                let addr = f.addr().to_string();
                lines.iter().any(|l| l.contains(&addr))
            })
            .map(|f| (f.addr().port(), format!("{} & sleep 1", f.kubectl(flags))))
            .collect();
        out.sort();
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// Stop every forward.
    pub fn stop(&self) {
        lock(&self.map).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_the_resource_and_both_ports() {
        let spec = ForwardSpec {
            namespace: "gwtest-infra".into(),
            target: Target::Service("gw".into()),
            port: 80,
        };
        assert_eq!(spec.resource(), "service/gw");
        assert_eq!(spec.describe(), "Service gwtest-infra/gw port 80");
        let pod = ForwardSpec {
            target: Target::Pod("gw-abcde".into()),
            ..spec
        };
        assert_eq!(pod.resource(), "pod/gw-abcde");
    }

    #[test]
    fn named_target_ports_are_looked_up_in_the_pods_containers() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .unwrap();
        assert_eq!(
            pod_port(&p, &IntOrString::String("http".into())),
            Some(8080)
        );
        assert_eq!(pod_port(&p, &IntOrString::String("grpc".into())), None);
        assert_eq!(pod_port(&p, &IntOrString::Int(9000)), Some(9000));
        assert!(!pod_ready(&p));
        assert_eq!(pod_state(&p), "p without status (not scheduled?)");
    }
}
