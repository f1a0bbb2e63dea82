//! Helpers shared by the traces tests: spans built the way an OTel SDK builds them, and the
//! real opentelemetry-otlp exporters pointed at a receiver.
#![allow(dead_code)]

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gwtest::traces::{Receiver, SpanStore};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};

pub fn span_data(
    trace: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &str,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
) -> SpanData {
    let start = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace),
            SpanId::from_bytes(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: false,
        span_kind: kind,
        name: Cow::Owned(name.to_string()),
        start_time: start,
        end_time: start + Duration::from_millis(3),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

pub fn resource(service: &str) -> Resource {
    Resource::builder_empty()
        .with_service_name(service.to_string())
        .build()
}

/// The stock OTLP/gRPC exporter (gzip), as any OTel-instrumented gateway would configure it.
pub fn grpc_exporter(endpoint: &str, service: &str) -> opentelemetry_otlp::SpanExporter {
    let mut e = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("grpc exporter");
    e.set_resource(&resource(service));
    e
}

/// The stock OTLP/HTTP protobuf exporter (gzip); `endpoint` is the receiver's base URL.
pub fn http_exporter(endpoint: &str, service: &str) -> opentelemetry_otlp::SpanExporter {
    let mut e = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("http exporter");
    e.set_resource(&resource(service));
    e
}

/// Run a test body, failing it after `secs` seconds.
pub async fn bounded(secs: u64, test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .expect("test timed out");
}

/// gwtest's receiver on free ports, storing up to `cap` spans.
pub fn receiver(cap: usize) -> (Arc<SpanStore>, Receiver) {
    let store = Arc::new(SpanStore::new(cap));
    let r = Receiver::start("127.0.0.1:0", "127.0.0.1:0", store.clone()).expect("receiver starts");
    (store, r)
}

/// Reads a `traceparent` out of HTTP headers for the OTel propagator.
pub struct HeaderExtractor<'a>(pub &'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Wait (bounded) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub mod gateway;
pub mod steps;
