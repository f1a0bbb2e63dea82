//! The data plane: one HTTP server per port of a Gateway's programmed listeners (listeners
//! declaring the same port share it, as on a real gateway), on a free loopback port that stays
//! the same for as long as the Gateway has a listener on that port. A request goes to the
//! listener whose hostname matches it most specifically (listener isolation), is matched
//! against that listener's routes (see [`super::routes`]), goes through the route's filters
//! (header modifiers, URL rewrite, or a redirect), and is answered by the echo backend; faults
//! of the route's namespace (of the Gateway's when nothing matched) apply first. Each request
//! records its spans.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::faults::{FaultMap, Faults, Flaps};
use super::log::GatewayLog;
use super::model::{Key, RequestRedirect};
use super::routes::{self, Found, RequestInfo, Table};
use super::spans::{MatchedRoute, RequestRecord, SpanSink};

/// A listener: its Gateway and its name.
pub type ListenerKey = (Key, String);

/// A served port: the Gateway and the port its listeners declare.
pub type PortKey = (Key, i64);

/// What requests are matched against, swapped as a whole by each reconcile.
#[derive(Debug, Default)]
pub struct PlaneSnapshot {
    pub faults: FaultMap,
    /// The listeners of each served port, with their routes.
    pub ports: HashMap<PortKey, Vec<Arc<Table>>>,
}

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct DataPlane {
    snapshot: RwLock<Arc<PlaneSnapshot>>,
    servers: Mutex<HashMap<PortKey, Server>>,
    pub flaps: Flaps,
    /// The demo gateway's log, per Gateway (`pods/log` in the sandbox).
    pub log: GatewayLog,
    spans: SpanSink,
    /// Wakes the reconciler (a flapping route's status is due).
    reconcile: Arc<Notify>,
    cancel: CancellationToken,
}

/// How long a closed listener may take to finish its requests before it is aborted.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

impl DataPlane {
    pub fn new(
        spans: SpanSink,
        reconcile: Arc<Notify>,
        cancel: CancellationToken,
    ) -> Arc<DataPlane> {
        Arc::new(DataPlane {
            snapshot: RwLock::new(Arc::new(PlaneSnapshot::default())),
            servers: Mutex::new(HashMap::new()),
            flaps: Flaps::default(),
            log: GatewayLog::default(),
            spans,
            reconcile,
            cancel,
        })
    }

    fn snapshot(&self) -> Arc<PlaneSnapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn publish(&self, snap: PlaneSnapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
    }

    /// The address serving a Gateway's port, binding a server for it first if there is none.
    pub async fn ensure(self: &Arc<Self>, key: &PortKey) -> std::io::Result<SocketAddr> {
        if let Some(s) = self.lock_servers().get(key) {
            return Ok(s.addr);
        }
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let stop = self.cancel.child_token();
        let ctx = Ctx {
            plane: self.clone(),
            key: Arc::new(key.clone()),
            stop: stop.clone(),
        };
        let app = Router::new().fallback(handle).with_state(ctx);
        let signal = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!("demo gateway listener {addr}: {e}");
            }
        });
        self.lock_servers()
            .insert(key.clone(), Server { addr, stop, task });
        Ok(addr)
    }

    fn lock_servers(&self) -> std::sync::MutexGuard<'_, HashMap<PortKey, Server>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Close every port not in `keep` (in the background, bounded).
    pub fn retain(&self, keep: &HashSet<PortKey>) {
        let closed: Vec<Server> = {
            let mut servers = self.lock_servers();
            let gone: Vec<PortKey> = servers
                .keys()
                .filter(|k| !keep.contains(*k))
                .cloned()
                .collect();
            gone.iter().filter_map(|k| servers.remove(k)).collect()
        };
        for s in closed {
            tokio::spawn(close(s));
        }
    }

    /// Close every listener and wait (bounded) for them.
    pub async fn shutdown(&self) {
        let all: Vec<Server> = self.lock_servers().drain().map(|(_, s)| s).collect();
        futures::future::join_all(all.into_iter().map(close)).await;
    }

    /// The listeners served, with the address of their port.
    pub fn addresses(&self) -> Vec<(ListenerKey, SocketAddr)> {
        let snap = self.snapshot();
        let servers = self.lock_servers();
        let mut v: Vec<_> = servers
            .iter()
            .flat_map(|(k, s)| {
                snap.ports
                    .get(k)
                    .into_iter()
                    .flatten()
                    .map(move |t| ((k.0.clone(), t.listener.clone()), s.addr))
            })
            .collect();
        v.sort();
        v
    }
}

async fn close(s: Server) {
    s.stop.cancel();
    let mut task = s.task;
    if tokio::time::timeout(CLOSE_GRACE, &mut task).await.is_err() {
        task.abort();
    }
}

#[derive(Clone)]
struct Ctx {
    plane: Arc<DataPlane>,
    key: Arc<PortKey>,
    stop: CancellationToken,
}

fn text(status: StatusCode, body: &str) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let start = SystemTime::now();
    let (parts, _body) = req.into_parts();
    let snap = ctx.plane.snapshot();
    let info = RequestInfo {
        method: parts.method.as_str().to_string(),
        host: routes::request_host(&parts.headers, &parts.uri),
        path: parts.uri.path().to_string(),
        query: routes::parse_query(parts.uri.query()),
        raw_query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
    };
    let now = Instant::now();
    let table = snap
        .ports
        .get(&*ctx.key)
        .and_then(|tables| routes::pick_listener(tables, &info.host));
    let found = table.and_then(|t| {
        t.find(&info, |r| {
            // S5: a flapped route is not served.
            snap.faults
                .get(&r.key.namespace)
                .and_then(|f| f.flap)
                .is_some_and(|after| ctx.plane.flaps.reverted(&r.uid, after, now))
        })
    });
    let fault_ns = found
        .as_ref()
        .map_or(&ctx.key.0.namespace, |f| &f.route.key.namespace);
    let no_faults = Faults::default();
    let faults = snap.faults.get(fault_ns).unwrap_or(&no_faults);
    if faults.hang {
        // S4: accept, never answer (until the listener closes).
        ctx.stop.cancelled().await;
        return text(StatusCode::SERVICE_UNAVAILABLE, "listener closed\n");
    }
    if let Some(d) = faults.slow {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = ctx.stop.cancelled() => return text(StatusCode::SERVICE_UNAVAILABLE, "listener closed\n"),
        }
    }
    let (response, matched) = match &found {
        None => (text(StatusCode::NOT_FOUND, "no route matched\n"), None),
        Some(f) if faults.fail_closed => (
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "fail-closed: the route is replaced by an error route\n",
            ),
            Some(matched_route(f, None)),
        ),
        Some(f) => {
            if let Some(after) = faults.flap
                && ctx
                    .plane
                    .flaps
                    .served(&f.route.uid, &f.route.key.namespace, now)
            {
                // The status follows the data plane when the route reverts.
                let reconcile = ctx.plane.reconcile.clone();
                let stop = ctx.plane.cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(after) => reconcile.notify_one(),
                        _ = stop.cancelled() => {}
                    }
                });
            }
            serve(f, &info, table.map_or(80, |t| t.port))
        }
    };
    let port = ctx.key.1.to_string();
    ctx.plane.log.request(
        &ctx.key.0,
        table.map_or(port.as_str(), |t| t.listener.as_str()),
        &info.method,
        &info.host,
        &info.path,
        response.status().as_u16(),
        found.as_ref().map(|f| &f.route.key),
        now.elapsed(),
    );
    ctx.plane.spans.record(&RequestRecord {
        parent: super::spans::parse_traceparent(&info.headers),
        start,
        end: SystemTime::now(),
        method: info.method.clone(),
        path: info.path.clone(),
        server_address: info.host.clone(),
        status: response.status().as_u16(),
        route: matched,
    });
    response
}

fn matched_route(f: &Found, backend: Option<String>) -> MatchedRoute {
    MatchedRoute {
        namespace: f.route.key.namespace.clone(),
        name: f.route.key.name.clone(),
        http_route: f.path().display(),
        span_name: f.route.span_name.clone(),
        backend,
    }
}

/// The `Location` of a redirect (Gateway API: the scheme, host and port the filter gives, else
/// the request's; a port left out when the scheme's own; the path per the path modifier; the
/// query kept).
fn location(r: &RequestRedirect, f: &Found, info: &RequestInfo, listener_port: i64) -> String {
    let scheme = r.scheme.clone().unwrap_or_else(|| "http".into());
    let host = r.hostname.clone().unwrap_or_else(|| info.host.clone());
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => p,
        (None, Some(s)) if s == "https" => 443,
        (None, Some(_)) => 80,
        (None, None) => listener_port,
    };
    let default_port = matches!((scheme.as_str(), port), ("http", 80) | ("https", 443));
    let path = match &r.path {
        Some(m) => routes::modify_path(m, f.path(), &info.path),
        None => info.path.clone(),
    };
    let mut out = format!("{scheme}://{host}");
    if !default_port {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(&path);
    if let Some(q) = &info.raw_query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Response headers the echo backend is asked to send: `X-Echo-Set-Header: Name:value,...`
/// (as Gateway API's conformance echo server), so response header filters have something
/// to overwrite.
fn echo_set_headers(info: &RequestInfo) -> Vec<(http::HeaderName, HeaderValue)> {
    info.headers
        .get_all("x-echo-set-header")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((
                http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                HeaderValue::from_str(v.trim()).ok()?,
            ))
        })
        .collect()
}

/// A matched request: filters, then the echo backend (or a redirect).
fn serve(f: &Found, info: &RequestInfo, listener_port: i64) -> (Response, Option<MatchedRoute>) {
    let rule = f.rule();
    if let Some(r) = &rule.redirect {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() =
            StatusCode::from_u16(r.status_code.unwrap_or(302) as u16).unwrap_or(StatusCode::FOUND);
        if let Ok(v) = HeaderValue::from_str(&location(r, f, info, listener_port)) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        return (resp, Some(matched_route(f, None)));
    }
    let Some(backend) = rule.pick_backend() else {
        return (
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the rule has no backend\n",
            ),
            Some(matched_route(f, None)),
        );
    };
    let matched = Some(matched_route(f, Some(backend.name.clone())));
    if !backend.resolved {
        return (
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("backend {}/{} not found\n", backend.namespace, backend.name),
            ),
            matched,
        );
    }
    let mut headers: Vec<(String, String)> = info
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    for m in &rule.request_headers {
        routes::modify_headers(&mut headers, m);
    }
    // URLRewrite: the host and path the backend sees.
    let mut path = info.path.clone();
    if let Some(rw) = &rule.rewrite {
        if let Some(h) = &rw.hostname {
            headers.retain(|(k, _)| k != "host");
            headers.push(("host".into(), h.clone()));
        }
        if let Some(m) = &rw.path {
            path = routes::modify_path(m, f.path(), &info.path);
        }
    }
    let header_map = comma_joined(&headers);
    let query = comma_joined(&info.query);
    let host = headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| info.host.clone());
    let body = json!({
        "path": path,
        "host": host,
        "method": info.method,
        "headers": header_map,
        "namespace": backend.namespace,
        "route": f.route.key.name,
        "backend": backend.name,
        "query": query,
    });
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in echo_set_headers(info) {
        r.headers_mut().insert(name, value);
    }
    for m in &rule.response_headers {
        let h = r.headers_mut();
        let parse = |nv: &super::model::NameValue| {
            Some((
                http::HeaderName::from_bytes(nv.name.as_bytes()).ok()?,
                HeaderValue::from_str(&nv.value).ok()?,
            ))
        };
        for (name, value) in m.set.iter().filter_map(parse) {
            h.insert(name, value);
        }
        for (name, value) in m.add.iter().filter_map(parse) {
            h.append(name, value);
        }
        for name in &m.remove {
            h.remove(name.as_str());
        }
    }
    (r, matched)
}

/// Name-value pairs as a JSON object, the values of a repeated name joined with commas.
fn comma_joined(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in pairs {
        match map.get_mut(k) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(v);
            }
            _ => {
                map.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    map
}
