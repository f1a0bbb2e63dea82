//! The demo gateway's spans: per request a server span `<METHOD> <route path>` and a child
//! `route <name>`, in the trace of an incoming W3C `traceparent` (or a new one), exported
//! with the stock opentelemetry-otlp exporter. Requests hand spans to a bounded queue and
//! never wait: an unreachable endpoint costs dropped spans, not latency.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SERVICE_NAME: &str = "demo-gateway";
/// How long a finished span may wait for the batch it goes out with.
const BATCH_DELAY: Duration = Duration::from_millis(20);
const BATCH_MAX: usize = 512;
/// Spans waiting to be exported; beyond it new spans are dropped (and counted).
const QUEUE: usize = 8192;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

pub use crate::tracecontext::TraceParent;

/// The request's `traceparent`, when there is exactly one and the W3C propagator accepts it.
pub fn parse_traceparent(headers: &http::HeaderMap) -> Option<TraceParent> {
    let mut values = headers.get_all("traceparent").iter();
    let v = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    crate::tracecontext::parse(v)
}

/// What a finished request contributes to its spans.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub parent: Option<TraceParent>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub method: String,
    pub path: String,
    pub server_address: String,
    pub status: u16,
    /// The matched route: (namespace, name, the rule's path, span name override).
    pub route: Option<MatchedRoute>,
}

#[derive(Clone, Debug)]
pub struct MatchedRoute {
    pub namespace: String,
    pub name: String,
    pub http_route: String,
    pub span_name: Option<String>,
    pub backend: Option<String>,
}

/// The spans of one request: the server span, then (for a matched route) its child.
pub fn request_spans(r: &RequestRecord) -> Vec<SpanData> {
    // An unsampled parent is honoured: nothing recorded (OTel's parent-based sampling).
    if r.parent.is_some_and(|p| !p.sampled) {
        return Vec::new();
    }
    let trace_id = r
        .parent
        .map_or_else(crate::tracecontext::new_trace_id, |p| p.trace_id);
    let server_id = crate::tracecontext::new_span_id();
    let name = match &r.route {
        Some(m) => m
            .span_name
            .clone()
            .unwrap_or_else(|| format!("{} {}", r.method, m.http_route)),
        None => r.method.clone(),
    };
    let mut attrs = vec![
        KeyValue::new("http.request.method", r.method.clone()),
        KeyValue::new("url.path", r.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(r.status)),
        KeyValue::new("server.address", r.server_address.clone()),
    ];
    if let Some(m) = &r.route {
        attrs.push(KeyValue::new("http.route", m.http_route.clone()));
    }
    let status = if r.status >= 500 {
        Status::error(format!("status {}", r.status))
    } else {
        Status::Unset
    };
    let mut out = vec![span(
        trace_id,
        server_id,
        r.parent.map(|p| p.span_id),
        name,
        SpanKind::Server,
        (r.start, r.end),
        attrs,
        status,
    )];
    if let Some(m) = &r.route {
        let mut attrs = vec![
            KeyValue::new("route.name", m.name.clone()),
            KeyValue::new("route.namespace", m.namespace.clone()),
        ];
        if let Some(b) = &m.backend {
            attrs.push(KeyValue::new("backend.name", b.clone()));
        }
        out.push(span(
            trace_id,
            crate::tracecontext::new_span_id(),
            Some(server_id),
            format!("route {}", m.name),
            SpanKind::Internal,
            (r.start, r.end),
            attrs,
            Status::Unset,
        ));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace_id: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    (start, end): (SystemTime, SystemTime),
    attributes: Vec<KeyValue>,
    status: Status,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace_id),
            SpanId::from_bytes(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: kind == SpanKind::Server && parent.is_some(),
        span_kind: kind,
        name: Cow::Owned(name),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: InstrumentationScope::builder(SERVICE_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    }
}

/// Where requests put their spans. Cheap to clone; never blocks.
#[derive(Clone, Debug, Default)]
pub struct SpanSink {
    tx: Option<mpsc::Sender<SpanData>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub queued: AtomicU64,
    pub dropped: AtomicU64,
    pub exported: AtomicU64,
    pub failed: AtomicU64,
}

impl SpanSink {
    pub fn record(&self, r: &RequestRecord) {
        let Some(tx) = &self.tx else { return };
        for s in request_spans(r) {
            match tx.try_send(s) {
                Ok(()) => self.counters.queued.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// The export task.
pub struct SpanExport {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Start exporting to `endpoint` (none: a sink that drops everything, nothing exported).
/// Whether a URL names a path beyond `/`.
fn has_path(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/').is_some_and(|(_, p)| !p.is_empty())
}

/// How spans are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportProtocol {
    Grpc,
    HttpProtobuf,
}

pub fn start(
    endpoint: Option<&str>,
    protocol: ExportProtocol,
) -> anyhow::Result<(SpanSink, Option<SpanExport>)> {
    let Some(endpoint) = endpoint else {
        return Ok((SpanSink::default(), None));
    };
    // The caller gives a URL with its scheme (the runner normalises what a user typed); a
    // bare OTLP/HTTP base gets the traces path, as OTel SDKs do with a generic endpoint.
    let url = match protocol {
        ExportProtocol::HttpProtobuf if !has_path(endpoint) => {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        }
        _ => endpoint.to_string(),
    };
    let built = match protocol {
        ExportProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&url)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        ExportProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&url)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    };
    let mut exporter =
        built.with_context(|| format!("the demo gateway's span exporter for {url}"))?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_service_name(SERVICE_NAME)
            .build(),
    );
    let (tx, rx) = mpsc::channel(QUEUE);
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(export_loop(exporter, rx, stop.clone(), counters.clone()));
    Ok((
        SpanSink {
            tx: Some(tx),
            counters,
        },
        Some(SpanExport { stop, task }),
    ))
}

impl SpanExport {
    /// Send what is queued (bounded by `deadline`) and stop.
    pub async fn shutdown(self, deadline: Duration) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    stop: CancellationToken,
    counters: Arc<Counters>,
) {
    let export = |batch: Vec<SpanData>| {
        let n = batch.len() as u64;
        let counters = counters.clone();
        let fut = exporter.export(batch);
        async move {
            match tokio::time::timeout(EXPORT_TIMEOUT, fut).await {
                Ok(Ok(())) => counters.exported.fetch_add(n, Ordering::Relaxed),
                Ok(Err(e)) => {
                    tracing::debug!("demo gateway: exporting {n} spans: {e}");
                    counters.failed.fetch_add(n, Ordering::Relaxed)
                }
                Err(_) => counters.failed.fetch_add(n, Ordering::Relaxed),
            };
        }
    };
    loop {
        let first = tokio::select! {
            s = rx.recv() => s,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let flush_at = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH_MAX {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => batch.push(s),
                    None => break,
                },
                _ = tokio::time::sleep_until(flush_at) => break,
                _ = stop.cancelled() => break,
            }
        }
        export(batch).await;
    }
    // Shutting down: what is still queued goes out in full batches.
    let mut batch = Vec::new();
    while let Ok(s) = rx.try_recv() {
        batch.push(s);
        if batch.len() == BATCH_MAX {
            export(std::mem::take(&mut batch)).await;
        }
    }
    if !batch.is_empty() {
        export(batch).await;
    }
    let _ = exporter.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append("traceparent", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn one_valid_traceparent_header_is_continued() {
        let one = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = parse_traceparent(&headers(&[one])).unwrap();
        assert_eq!(
            (tp.trace_id[0], tp.span_id[7], tp.sampled),
            (0x4b, 0xb7, true)
        );
        assert_eq!(parse_traceparent(&headers(&["garbage"])), None);
        assert_eq!(parse_traceparent(&http::HeaderMap::new()), None);
        assert_eq!(
            parse_traceparent(&headers(&[one, one])),
            None,
            "two headers"
        );
    }

    #[test]
    fn spans_of_a_request() {
        let now = SystemTime::now();
        let parent = TraceParent {
            trace_id: [1; 16],
            span_id: [2; 8],
            sampled: true,
        };
        let mut r = RequestRecord {
            parent: Some(parent),
            start: now,
            end: now,
            method: "GET".into(),
            path: "/example/x".into(),
            server_address: "example.com".into(),
            status: 200,
            route: Some(MatchedRoute {
                namespace: "ns".into(),
                name: "example".into(),
                http_route: "/example".into(),
                span_name: None,
                backend: Some("svc".into()),
            }),
        };
        let spans = request_spans(&r);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].name, "GET /example");
        assert_eq!(spans[0].span_kind, SpanKind::Server);
        assert_eq!(spans[0].parent_span_id, SpanId::from_bytes([2; 8]));
        assert_eq!(
            spans[0].span_context.trace_id(),
            TraceId::from_bytes([1; 16])
        );
        assert_eq!(spans[1].name, "route example");
        assert_eq!(spans[1].parent_span_id, spans[0].span_context.span_id());
        assert!(
            spans[0]
                .attributes
                .contains(&KeyValue::new("http.response.status_code", 200i64))
        );
        r.route.as_mut().unwrap().span_name = Some("custom".into());
        r.parent = None;
        let spans = request_spans(&r);
        assert_eq!(spans[0].name, "custom");
        assert_ne!(
            spans[0].span_context.trace_id(),
            TraceId::from_bytes([1; 16])
        );
        assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
        r.route = None;
        assert_eq!(request_spans(&r).len(), 1);
        r.parent = Some(TraceParent {
            sampled: false,
            ..parent
        });
        assert!(request_spans(&r).is_empty());
    }
}
