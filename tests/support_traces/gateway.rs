//! A test gateway for end-to-end runs: an HTTP server that, for each request, continues the
//! incoming W3C `traceparent` (extracted with the OTel propagator) and sends its spans with
//! the stock opentelemetry-otlp exporters to the endpoints the request names:
//!
//! - `x-otlp-grpc: URL[,URL]` / `x-otlp-http: URL[,URL]`: where to export (OTLP/gRPC, or
//!   OTLP/HTTP protobuf with `URL/v1/traces`); a suite passes `${otlp.grpc}` / `${otlp.http}`.
//!   Without either, the gateway's default endpoint (if set) is used.
//! - `x-export-delay-ms: N`: export N ms after answering (late spans).
//! - `x-spans: full | decoy | orphan | none` (default `full`), see [`Mode`].
//! - `x-fail-first: N`: the first N requests to this path answer 503 (spans are sent anyway,
//!   so a retried request step leaves spans under every attempt).
//! - `x-note: TEXT`: recorded with the request (to see what a suite's variables became).
//!
//! Every request is recorded (path, trace context, ids of the spans sent) so a test can
//! build the exact lines it expects, and every export error is kept so that a test can tell
//! "gwtest missed it" from "the gateway never sent it".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use super::{HeaderExtractor, grpc_exporter, http_exporter, span_data};

pub const SERVICE: &str = "test-gateway";
pub const SIDECAR: &str = "auth-sidecar";

/// What a request makes the gateway send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In the request's trace, under the traceparent's span (service test-gateway):
    /// `GET /example` (server; http.response.status_code=200 int, or 503 when it answered 503, http.route="/example",
    /// upstream.latency_ms=12.5, retry.enabled=true) → `route example` (internal,
    /// route.name="example") → two `cache lookup` (internal) and `upstream call` (client,
    /// server.port=8080); plus `auth check` (internal, service auth-sidecar) under
    /// `GET /example`.
    Full,
    /// Only `GET /other` in the request's trace; `GET /example` and `route example` go to a
    /// fresh, unrelated trace.
    Decoy,
    /// The `full` spans in a fresh trace: the traceparent is ignored (a gateway that does not
    /// propagate).
    Orphan,
    /// Nothing is exported.
    None,
}

/// One request as the gateway saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub traceparent: Option<String>,
    /// Every `traceparent` header value, in order (W3C: more than one makes it invalid).
    pub traceparents: Vec<String>,
    /// The request's trace (the incoming one; a fresh one without a traceparent).
    pub trace_id: [u8; 16],
    /// The incoming parent span id (the request attempt's id).
    pub parent: Option<[u8; 8]>,
    /// The id of the `GET /example` (or `GET /other`) server span.
    pub server_span: [u8; 8],
    /// The unrelated trace of a decoy or orphan request.
    pub other_trace: Option<[u8; 16]>,
    pub mode: Mode,
    pub status: u16,
    pub note: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Seen>>,
    errors: Mutex<Vec<String>>,
    /// Export calls finished (successfully or not).
    exports_done: AtomicUsize,
    exports_started: AtomicUsize,
    default_grpc: Mutex<Option<String>>,
}

pub struct TestGateway {
    pub url: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header<'a>(h: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn endpoints(h: &axum::http::HeaderMap, name: &str) -> Vec<String> {
    header(h, name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn random_trace() -> [u8; 16] {
    gwtest::engine::new_trace_id()
}

fn random_span() -> [u8; 8] {
    gwtest::engine::new_span_id()
}

/// The `full` spans of one request, split by service.
fn full_spans(
    trace: [u8; 16],
    parent: Option<[u8; 8]>,
    server: [u8; 8],
    status: u16,
) -> (Vec<SpanData>, Vec<SpanData>) {
    let route = random_span();
    let mut gateway = vec![
        span_data(
            trace,
            server,
            parent,
            "GET /example",
            SpanKind::Server,
            vec![
                KeyValue::new("http.response.status_code", i64::from(status)),
                KeyValue::new("http.route", "/example"),
                KeyValue::new("upstream.latency_ms", 12.5f64),
                KeyValue::new("retry.enabled", true),
            ],
        ),
        span_data(
            trace,
            route,
            Some(server),
            "route example",
            SpanKind::Internal,
            vec![KeyValue::new("route.name", "example")],
        ),
    ];
    let under_route = [
        ("cache lookup", SpanKind::Internal, vec![]),
        ("cache lookup", SpanKind::Internal, vec![]),
        (
            "upstream call",
            SpanKind::Client,
            vec![KeyValue::new("server.port", 8080i64)],
        ),
    ];
    for (name, kind, attributes) in under_route {
        gateway.push(span_data(
            trace,
            random_span(),
            Some(route),
            name,
            kind,
            attributes,
        ));
    }
    let sidecar = vec![span_data(
        trace,
        random_span(),
        Some(server),
        "auth check",
        SpanKind::Internal,
        vec![],
    )];
    (gateway, sidecar)
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        let state = Arc::new(State::default());
        let st = state.clone();
        let handler = move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let st = st.clone();
            async move {
                let status = handle(&st, uri.path(), &headers);
                (axum::http::StatusCode::from_u16(status).unwrap(), "ok")
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestGateway { url, state, server }
    }

    /// Where requests without `x-otlp-*` headers export to (OTLP/gRPC).
    pub fn set_default_grpc(&self, endpoint: &str) {
        *self.state.default_grpc.lock().unwrap() = Some(endpoint.to_string());
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The single request to `path` (panics otherwise).
    pub fn request(&self, path: &str) -> Seen {
        let r = self.requests_to(path);
        assert_eq!(r.len(), 1, "requests to {path}: {r:?}");
        r.into_iter().next().unwrap()
    }

    pub fn errors(&self) -> Vec<String> {
        self.state.errors.lock().unwrap().clone()
    }

    /// Wait (bounded) until every export started has finished; panics on export errors.
    pub async fn exports_settled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let started = self.state.exports_started.load(Ordering::SeqCst);
            let done = self.state.exports_done.load(Ordering::SeqCst);
            if started == done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway exports still running: {done} of {started} done"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let errors = self.errors();
        assert!(errors.is_empty(), "gateway export errors: {errors:?}");
    }
}

/// Answer a request (the status code) and send its spans.
fn handle(st: &Arc<State>, path: &str, h: &axum::http::HeaderMap) -> u16 {
    use opentelemetry::propagation::TextMapPropagator;
    let mode = match header(h, "x-spans").unwrap_or("full") {
        "full" => Mode::Full,
        "decoy" => Mode::Decoy,
        "orphan" => Mode::Orphan,
        "none" => Mode::None,
        other => panic!("unknown x-spans mode {other:?}"),
    };
    let cx =
        opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&HeaderExtractor(h));
    let incoming = cx.span().span_context().clone();
    let (trace_id, parent) = if incoming.is_valid() {
        (
            incoming.trace_id().to_bytes(),
            Some(incoming.span_id().to_bytes()),
        )
    } else {
        (random_trace(), None)
    };
    let server = random_span();
    let fail_first: usize = header(h, "x-fail-first").map_or(0, |v| v.parse().unwrap());
    let mut requests = st.requests.lock().unwrap();
    let before = requests.iter().filter(|r| r.path == path).count();
    let status = if before < fail_first { 503 } else { 200 };
    let (mut gateway, mut sidecar, seen_trace, other_trace) = match mode {
        Mode::Full | Mode::None => {
            let (g, s) = full_spans(trace_id, parent, server, status);
            (g, s, trace_id, None)
        }
        Mode::Orphan => {
            let other = random_trace();
            let (g, s) = full_spans(other, None, server, status);
            (g, s, trace_id, Some(other))
        }
        Mode::Decoy => {
            let other = random_trace();
            let (mut g, _) = full_spans(other, None, random_span(), status);
            g.truncate(2);
            g.push(span_data(
                trace_id,
                server,
                parent,
                "GET /other",
                SpanKind::Server,
                vec![KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                )],
            ));
            (g, vec![], trace_id, Some(other))
        }
    };
    if mode == Mode::None {
        gateway.clear();
        sidecar.clear();
    }
    requests.push(Seen {
        path: path.to_string(),
        traceparent: header(h, "traceparent").map(str::to_string),
        traceparents: h
            .get_all("traceparent")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect(),
        trace_id: seen_trace,
        parent,
        server_span: server,
        other_trace,
        mode,
        status,
        note: header(h, "x-note").map(str::to_string),
    });
    drop(requests);
    let mut grpc = endpoints(h, "x-otlp-grpc");
    let http = endpoints(h, "x-otlp-http");
    if grpc.is_empty()
        && http.is_empty()
        && let Some(d) = st.default_grpc.lock().unwrap().clone()
    {
        grpc.push(d);
    }
    if gateway.is_empty() && sidecar.is_empty() {
        return status;
    }
    let delay = header(h, "x-export-delay-ms")
        .map(|v| Duration::from_millis(v.parse().expect("x-export-delay-ms")))
        .unwrap_or_default();
    let targets: Vec<(bool, String)> = grpc
        .into_iter()
        .map(|e| (true, e))
        .chain(http.into_iter().map(|e| (false, e)))
        .collect();
    for (is_grpc, endpoint) in targets {
        // One task per endpoint, the gateway's batch first: arrival order is deterministic.
        st.exports_started.fetch_add(1, Ordering::SeqCst);
        let st = st.clone();
        let batches = [(SERVICE, gateway.clone()), (SIDECAR, sidecar.clone())];
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for (service, batch) in batches {
                if batch.is_empty() {
                    continue;
                }
                let exporter = if is_grpc {
                    grpc_exporter(&endpoint, service)
                } else {
                    http_exporter(&endpoint, service)
                };
                if let Err(e) = exporter.export(batch).await {
                    st.errors
                        .lock()
                        .unwrap()
                        .push(format!("{service} to {endpoint}: {e}"));
                }
            }
            st.exports_done.fetch_add(1, Ordering::SeqCst);
        });
    }
    status
}
