//! `pods/portforward` and `pods/log`: what a real API server hands to the pod's kubelet. The
//! sandbox has no nodes; a [`Kubelet`] registered with [`super::ApiServer::set_kubelet`] (the
//! demo gateway's, for its data-plane pods) stands in for one. Other pods never run: their
//! port-forward and log requests fail as for a pod whose containers have not started.
//!
//! Port-forward speaks the protocol a kubelet speaks over WebSocket (what kube-rs's
//! `Api::<Pod>::portforward` uses): subprotocol `v4.channel.k8s.io` (or none, binary);
//! for the i-th requested port, channel `2i` carries data and `2i+1` errors; each channel
//! first carries the port number (2 bytes, little endian); every frame is the channel byte
//! followed by the payload; an error is sent as text on the error channel. The connection
//! closes when every port's target closed, when the client closes it, or when the pod stops.
//! SPDY (kubectl before 1.31) is not spoken.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use super::handlers::{AppState, authorized, error_response, percent_decode};
use super::objects::{self, Target};
use super::status::ApiError;

/// A running pod, as the API server names it to its kubelet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Why a kubelet cannot serve a request for a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeletError {
    /// The pod does not run here (never started, or stopped).
    NotRunning,
    /// The pod runs but nothing listens on the port: the text a forward reports.
    Port(String),
}

/// What runs pods in the sandbox.
pub trait Kubelet: Send + Sync {
    /// Where `port` of the running pod is served, and a token cancelled when the pod stops.
    fn port(
        &self,
        pod: &PodRef,
        port: u16,
    ) -> Result<(SocketAddr, CancellationToken), KubeletError>;
    /// The container's log lines (time, text), oldest first.
    fn logs(
        &self,
        pod: &PodRef,
        container: &str,
    ) -> Result<Vec<(SystemTime, String)>, KubeletError>;
}

/// The kubelet the API server asks, once one is registered.
pub type KubeletSlot = Arc<RwLock<Option<Arc<dyn Kubelet>>>>;

/// How long connecting to a pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const V4: &str = "v4.channel.k8s.io";

#[derive(Clone)]
struct PodState {
    app: Arc<AppState>,
    kubelet: KubeletSlot,
}

pub fn router(app: Arc<AppState>, kubelet: KubeletSlot) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            get(portforward).post(portforward),
        )
        .route("/api/v1/namespaces/{namespace}/pods/{name}/log", get(log))
        .with_state(PodState { app, kubelet })
}

/// The pod object, its uid, and the kubelet that runs it (if any).
fn pod(st: &PodState, namespace: &str, name: &str) -> Result<(Value, PodRef), ApiError> {
    let inner = st.app.store.lock();
    let def = inner
        .registry
        .lookup("", "v1", "pods")
        .ok_or_else(ApiError::unknown_resource)?;
    let t = Target {
        def,
        version: "v1".into(),
        namespace: namespace.into(),
        name: name.into(),
        status: false,
    };
    let obj = objects::get(&inner, &t)?;
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((
        obj,
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
            uid,
        },
    ))
}

fn kubelet(st: &PodState) -> Option<Arc<dyn Kubelet>> {
    st.kubelet.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A pod must be scheduled before its kubelet can be asked anything.
fn require_host(obj: &Value, name: &str) -> Result<(), ApiError> {
    match obj.pointer("/spec/nodeName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        ))),
    }
}

fn not_running(pod: &PodRef) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!(
            "unable to upgrade connection: pod does not exist (pod {}/{} is not running: in the \
             sandbox only the demo gateway's data-plane pods run)",
            pod.namespace, pod.name
        ),
    )
}

/// `ports=80,8080` and/or `ports=80&ports=8080` (the API's name; the kubelet's is `port`).
fn requested_ports(query: Option<&str>) -> Result<Vec<u16>, ApiError> {
    let mut ports = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "ports" && k != "port" {
            continue;
        }
        let v = percent_decode(v);
        for p in v.split(',').filter(|p| !p.is_empty()) {
            let n: u16 = p.parse().map_err(|e| {
                ApiError::bad_request(format!("unable to parse {p:?} as a port: {e}"))
            })?;
            if n == 0 {
                return Err(ApiError::bad_request(format!("port {p:?} must be > 0")));
            }
            ports.push(n);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"ports\" is required: the pod ports to forward",
        ));
    }
    Ok(ports)
}

/// The subprotocol to answer with: `v4.channel.k8s.io` when offered; none when the client
/// offered none (binary framing either way).
fn subprotocol(headers: &HeaderMap) -> Result<Option<&'static str>, ApiError> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    if offered.iter().any(|p| p == V4) {
        return Ok(Some(V4));
    }
    Err(ApiError::bad_request(format!(
        "requested protocol(s) are not supported: {offered:?}; supports [{V4:?}]"
    )))
}

async fn portforward(
    State(st): State<PodState>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    match start_portforward(&st, &namespace, &name, req) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn start_portforward(
    st: &PodState,
    namespace: &str,
    name: &str,
    mut req: Request,
) -> Result<Response, ApiError> {
    if !authorized(req.headers(), &st.app.token) {
        return Err(ApiError::unauthorized());
    }
    let (obj, pod) = pod(st, namespace, name)?;
    let ports = requested_ports(req.uri().query())?;
    require_host(&obj, name)?;
    let headers = req.headers();
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .cloned()
        .filter(|_| websocket)
    else {
        return Err(ApiError::bad_request(
            "port-forward is served over WebSocket (subprotocol v4.channel.k8s.io, as kube-rs \
             speaks it); SPDY is not supported by the sandbox",
        ));
    };
    let protocol = subprotocol(headers)?;
    let Some(kubelet) = kubelet(st) else {
        return Err(not_running(&pod));
    };
    // Resolve every port before upgrading: a pod that is not running is an HTTP error, a
    // port nobody listens on is reported on its error channel, as a kubelet does.
    let mut targets = Vec::with_capacity(ports.len());
    let mut stop = CancellationToken::new();
    for &p in &ports {
        match kubelet.port(&pod, p) {
            Ok((addr, s)) => {
                stop = s;
                targets.push(Ok(addr));
            }
            Err(KubeletError::NotRunning) => return Err(not_running(&pod)),
            Err(KubeletError::Port(why)) => targets.push(Err(why)),
        }
    }
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::bad_request(
            "the connection cannot be upgraded (HTTP/1.1 is needed for WebSocket)",
        ));
    };
    let server_cancel = st.app.cancel.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = forward(ws, &pod, &ports, targets, stop) => {}
            _ = server_cancel.cancelled() => {}
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    Ok(r)
}

enum FromTarget {
    Data(u8, Vec<u8>),
    /// A port's target closed (or failed).
    Closed,
}

fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut b = Vec::with_capacity(payload.len() + 1);
    b.push(channel);
    b.extend_from_slice(payload);
    Message::binary(b)
}

/// One port-forward session over an upgraded connection.
async fn forward<S>(
    ws: WebSocketStream<S>,
    pod: &PodRef,
    ports: &[u16],
    targets: Vec<Result<SocketAddr, String>>,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    for (i, p) in ports.iter().enumerate() {
        let ch = 2 * i as u8;
        for c in [ch, ch + 1] {
            if sink.send(frame(c, &p.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<FromTarget>(16);
    let mut writers: Vec<Option<tokio::net::tcp::OwnedWriteHalf>> = Vec::new();
    let mut readers = Vec::new();
    let mut open = 0usize;
    for (i, target) in targets.into_iter().enumerate() {
        let ch = 2 * i as u8;
        let connected = match target {
            Ok(addr) => {
                match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                    .await
                {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
                    Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
                }
            }
            Err(why) => Err(why),
        };
        match connected {
            Ok(conn) => {
                let _ = conn.set_nodelay(true);
                let (mut r, w) = conn.into_split();
                writers.push(Some(w));
                open += 1;
                let tx = tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tx
                                    .send(FromTarget::Data(ch, buf[..n].to_vec()))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send(FromTarget::Closed).await;
                }));
            }
            Err(why) => {
                writers.push(None);
                let msg = format!(
                    "error forwarding port {} to pod {}/{}, uid {}: {why}",
                    ports[i], pod.namespace, pod.name, pod.uid
                );
                if sink.send(frame(ch + 1, msg.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    while open > 0 {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let ch = b[0] as usize;
                    if ch % 2 == 1 {
                        continue;
                    }
                    if let Some(slot) = writers.get_mut(ch / 2)
                        && let Some(w) = slot
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        *slot = None;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            t = rx.recv() => match t {
                Some(FromTarget::Data(ch, data)) => {
                    if sink.send(frame(ch, &data)).await.is_err() {
                        break;
                    }
                }
                Some(FromTarget::Closed) => open -= 1,
                None => break,
            },
            _ = stop.cancelled() => break,
        }
    }
    for r in readers {
        r.abort();
    }
    let _ = sink.send(Message::Close(None)).await;
    let _ = sink.close().await;
}

/// Query parameters of `pods/log`.
#[derive(Debug, Default)]
struct LogQuery {
    container: Option<String>,
    since_seconds: Option<u64>,
    since_time: Option<SystemTime>,
    timestamps: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
    previous: bool,
}

fn log_query(query: Option<&str>) -> Result<LogQuery, ApiError> {
    let mut q = LogQuery::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(&v.replace('+', " "));
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("{k}: {v:?} is not a number")))
        };
        let truthy = v == "1" || v.eq_ignore_ascii_case("true");
        match k {
            "container" => q.container = Some(v.clone()),
            "sinceSeconds" => q.since_seconds = Some(num(&v)?),
            "sinceTime" => {
                let utc = v
                    .strip_suffix("+00:00")
                    .map_or(v.clone(), |t| format!("{t}Z"));
                q.since_time = Some(humantime::parse_rfc3339_weak(&utc).map_err(|e| {
                    ApiError::bad_request(format!("sinceTime: {v:?} is not an RFC 3339 time: {e}"))
                })?)
            }
            "timestamps" => q.timestamps = truthy,
            "tailLines" => q.tail_lines = Some(num(&v)? as usize),
            "limitBytes" => q.limit_bytes = Some(num(&v)? as usize),
            "previous" => q.previous = truthy,
            _ => {}
        }
    }
    Ok(q)
}

async fn log(
    State(st): State<PodState>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    match pod_log(&st, &namespace, &name, &req) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            text,
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

fn pod_log(st: &PodState, namespace: &str, name: &str, req: &Request) -> Result<String, ApiError> {
    if !authorized(req.headers(), &st.app.token) {
        return Err(ApiError::unauthorized());
    }
    let q = log_query(req.uri().query())?;
    let (obj, pod) = pod(st, namespace, name)?;
    let containers: Vec<String> = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let container = match (&q.container, containers.as_slice()) {
        (Some(c), all) if all.contains(c) => c.clone(),
        (Some(c), _) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        (None, [one]) => one.clone(),
        (None, []) => {
            return Err(ApiError::bad_request(format!(
                "pod {name} has no containers"
            )));
        }
        (None, all) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            )));
        }
    };
    if q.previous {
        return Err(ApiError::bad_request(format!(
            "previous terminated container {container:?} in pod {name:?} not found"
        )));
    }
    let waiting = || {
        ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: ContainerCreating"
        ))
    };
    require_host(&obj, name).map_err(|_| waiting())?;
    let lines = kubelet(st)
        .ok_or_else(waiting)?
        .logs(&pod, &container)
        .map_err(|_| waiting())?;
    let since = match (q.since_time, q.since_seconds) {
        (Some(t), _) => Some(t),
        (None, Some(s)) => SystemTime::now().checked_sub(Duration::from_secs(s)),
        (None, None) => None,
    };
    let mut lines: Vec<String> = lines
        .into_iter()
        .filter(|(t, _)| since.is_none_or(|s| *t >= s))
        .map(|(t, text)| {
            if q.timestamps {
                format!("{} {text}\n", humantime::format_rfc3339_nanos(t))
            } else {
                format!("{text}\n")
            }
        })
        .collect();
    if let Some(n) = q.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut text = lines.concat();
    if let Some(limit) = q.limit_bytes
        && text.len() > limit
    {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_comma_separated_or_repeated() {
        assert_eq!(
            requested_ports(Some("&ports=80%2C1234")).unwrap(),
            [80, 1234]
        );
        assert_eq!(
            requested_ports(Some("ports=80&ports=81")).unwrap(),
            [80, 81]
        );
        assert_eq!(requested_ports(Some("x=1")).unwrap_err().code, 400);
        assert!(
            requested_ports(Some("ports=0"))
                .unwrap_err()
                .message
                .contains("must be > 0")
        );
        assert!(
            requested_ports(Some("ports=http"))
                .unwrap_err()
                .message
                .contains("unable to parse")
        );
    }

    #[test]
    fn log_parameters() {
        let q = log_query(Some(
            "container=gateway&sinceTime=2025-01-01T00%3A00%3A00Z&timestamps=true&tailLines=3",
        ))
        .unwrap();
        assert_eq!(q.container.as_deref(), Some("gateway"));
        assert!(q.since_time.is_some());
        assert!(q.timestamps);
        assert_eq!(q.tail_lines, Some(3));
        assert_eq!(log_query(Some("tailLines=x")).unwrap_err().code, 400);
    }

    #[test]
    fn the_v4_subprotocol_is_chosen_when_offered() {
        let mut h = HeaderMap::new();
        assert_eq!(subprotocol(&h).unwrap(), None);
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        assert_eq!(subprotocol(&h).unwrap(), Some(V4));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"),
        );
        assert_eq!(subprotocol(&h).unwrap_err().code, 400);
    }
}
