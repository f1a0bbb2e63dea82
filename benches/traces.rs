//! Traces benchmarks (harness = false, plain timing):
//!
//! 1. a `spans` match with 1,000,000 spans stored (100,000 traces of 10 spans), through the
//!    trace index and through the parent index (the whole million in one trace, as when the
//!    run is exported), p50/p99 over repeated matches, plus peak memory for the million;
//! 2. ingest rate over OTLP/gRPC: N concurrent opentelemetry-otlp exporters (tonic, 512 spans
//!    per request) into the embedded receiver, on the same machine (client encoding included).
//!
//! Run: `cargo bench --bench traces` (results go to docs/benchmarks.md, "## Traces").

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gwtest::suite::model::SpanKind as Kind;
use gwtest::traces::matcher::{self, ExpectedSpan, NameMatch, SpanQuery};
use gwtest::traces::{Receiver, Selection, SpanStore};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as PKeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use serde_json::json;

const MILLION: usize = 1_000_000;
const SPANS_PER_TRACE: usize = 10;
const MATCHES: usize = 2_000;
const INGEST_SPANS: usize = 400_000;
const BATCH: usize = 512;

fn vm(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn trace_id(i: usize) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    t[8..].copy_from_slice(
        &(i as u64 ^ 0x5a5a_5a5a)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_be_bytes(),
    );
    t
}

fn span_id(i: usize) -> [u8; 8] {
    ((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).to_be_bytes()
}

fn attempt_id(i: usize) -> [u8; 8] {
    ((i as u64 + 7).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1).to_be_bytes()
}

fn kv(k: &str, v: any_value::Value) -> PKeyValue {
    PKeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// One request's spans as a gateway emits them: a server span under the request attempt, a
/// route span, and internal spans (filters, upstream selection...). Span ids are unique over
/// the whole run (`n` is the request number).
fn request_spans(n: usize, trace: [u8; 16]) -> Vec<Span> {
    let base = n * SPANS_PER_TRACE;
    let server = span_id(base);
    let route = span_id(base + 1);
    let t0 = 1_700_000_000_000_000_000u64 + n as u64 * 1_000_000;
    let mut out = vec![
        Span {
            trace_id: trace.to_vec(),
            span_id: server.to_vec(),
            parent_span_id: attempt_id(n).to_vec(),
            name: format!("GET /route-{}", n % 50),
            kind: 2,
            start_time_unix_nano: t0,
            end_time_unix_nano: t0 + 900_000,
            attributes: vec![
                kv(
                    "http.request.method",
                    any_value::Value::StringValue("GET".into()),
                ),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
                kv(
                    "url.path",
                    any_value::Value::StringValue(format!("/route-{}/item/{n}", n % 50)),
                ),
                kv(
                    "server.address",
                    any_value::Value::StringValue("example.com".into()),
                ),
            ],
            ..Default::default()
        },
        Span {
            trace_id: trace.to_vec(),
            span_id: route.to_vec(),
            parent_span_id: server.to_vec(),
            name: format!("route route-{}", n % 50),
            kind: 1,
            start_time_unix_nano: t0 + 10_000,
            end_time_unix_nano: t0 + 800_000,
            attributes: vec![kv(
                "gateway.route",
                any_value::Value::StringValue(format!("route-{}", n % 50)),
            )],
            ..Default::default()
        },
    ];
    for j in 2..SPANS_PER_TRACE {
        out.push(Span {
            trace_id: trace.to_vec(),
            span_id: span_id(base + j).to_vec(),
            parent_span_id: route.to_vec(),
            name: format!("filter-{j}"),
            kind: 1,
            start_time_unix_nano: t0 + 20_000 * j as u64,
            end_time_unix_nano: t0 + 20_000 * j as u64 + 5_000,
            attributes: vec![kv("filter.index", any_value::Value::IntValue(j as i64))],
            ..Default::default()
        });
    }
    out
}

fn request_of(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PResource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("demo-gateway".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Fill a store with a million spans, 10 per request; `shared` puts them all in one trace.
fn fill(store: &SpanStore, shared: bool) -> Duration {
    let t0 = Instant::now();
    let requests = MILLION / SPANS_PER_TRACE;
    let per_export = BATCH / SPANS_PER_TRACE;
    let mut n = 0;
    while n < requests {
        let mut spans = Vec::with_capacity(BATCH);
        for k in n..(n + per_export).min(requests) {
            let t = if shared {
                trace_id(usize::MAX - 1)
            } else {
                trace_id(k)
            };
            spans.extend(request_spans(k, t));
        }
        n += per_export;
        store.ingest(request_of(spans));
    }
    t0.elapsed()
}

fn query(n: usize, missing: bool) -> SpanQuery {
    let route = if missing {
        format!("route route-{}x", n % 50)
    } else {
        format!("route route-{}", n % 50)
    };
    SpanQuery {
        service: Some("demo-gateway".into()),
        expect: vec![
            ExpectedSpan {
                name: NameMatch::Exact(format!("GET /route-{}", n % 50)),
                kind: Some(Kind::Server),
                attributes: vec![("http.response.status_code".into(), json!(200))],
                count: Some(1),
                parent: None,
                cel: vec![],
            },
            ExpectedSpan {
                name: NameMatch::Exact(route),
                kind: None,
                attributes: vec![],
                count: None,
                parent: Some(format!("GET /route-{}", n % 50)),
                cel: vec![],
            },
        ],
        absent: vec!["error-vhost".into()],
    }
}

struct Timing {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn time_matches(store: &SpanStore, shared: bool, missing: bool) -> Timing {
    let requests = MILLION / SPANS_PER_TRACE;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut samples = Vec::with_capacity(MATCHES);
    for _ in 0..MATCHES {
        let n = rng.usize(..requests);
        let sel = if shared {
            Selection::Subtree {
                trace_id: trace_id(usize::MAX - 1),
                root: attempt_id(n),
            }
        } else {
            Selection::Trace {
                trace_id: trace_id(n),
                request: Some(attempt_id(n)),
            }
        };
        let q = query(n, missing);
        let t0 = Instant::now();
        let r = matcher::check(&q, store, &sel, 0);
        samples.push(t0.elapsed());
        assert_eq!(r.is_ok(), !missing, "{r:?}");
    }
    samples.sort();
    Timing {
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        max: *samples.last().unwrap(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn sdk_span(i: usize) -> SpanData {
    let start = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace_id(i / SPANS_PER_TRACE)),
            SpanId::from_bytes(span_id(i)),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes(attempt_id(i / SPANS_PER_TRACE)),
        parent_span_is_remote: true,
        span_kind: SpanKind::Server,
        name: Cow::Owned(format!("GET /route-{}", i % 50)),
        start_time: start,
        end_time: start + Duration::from_micros(900),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200i64),
            KeyValue::new("url.path", format!("/route-{}/item/{i}", i % 50)),
            KeyValue::new("server.address", "example.com"),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("bench").build(),
    }
}

/// Spans per second from `exporters` concurrent OTLP/gRPC exporters into the receiver.
fn ingest_grpc(exporters: usize) -> (f64, Duration) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(SpanStore::new(MILLION));
        let r = Receiver::start("127.0.0.1:0", "127.0.0.1:0", store.clone()).unwrap();
        let per = INGEST_SPANS / exporters;
        // Batches are built before the clock starts: the client's span creation is not the
        // receiver's cost (its protobuf encoding still is, on the same two cores).
        let mut work = Vec::new();
        for e in 0..exporters {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(r.grpc_endpoint())
                .with_timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let spans: Vec<SpanData> = (e * per..(e + 1) * per).map(sdk_span).collect();
            let mut batches = Vec::new();
            let mut it = spans.into_iter().peekable();
            while it.peek().is_some() {
                batches.push(it.by_ref().take(BATCH).collect::<Vec<_>>());
            }
            work.push((exporter, batches));
        }
        // Warm the connections.
        for (x, _) in &work {
            x.export(vec![sdk_span(INGEST_SPANS + 1)]).await.unwrap();
        }
        let before = store.total_received();
        let t0 = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|(x, batches)| {
                tokio::spawn(async move {
                    for b in batches {
                        x.export(b).await.expect("export");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let took = t0.elapsed();
        let got = store.total_received() - before;
        assert_eq!(got as usize, per * exporters);
        r.shutdown().await;
        (got as f64 / took.as_secs_f64(), took)
    })
}

/// Decoded requests straight into the store: the store's share of the ingest cost.
fn ingest_store_only() -> f64 {
    let store = SpanStore::new(MILLION);
    let requests: Vec<ExportTraceServiceRequest> = (0..INGEST_SPANS / BATCH)
        .map(|b| {
            let mut spans = Vec::with_capacity(BATCH);
            let mut k = b * (BATCH / SPANS_PER_TRACE);
            while spans.len() + SPANS_PER_TRACE <= BATCH {
                spans.extend(request_spans(k, trace_id(k)));
                k += 1;
            }
            request_of(spans)
        })
        .collect();
    let total: usize = requests
        .iter()
        .map(|r| r.resource_spans[0].scope_spans[0].spans.len())
        .sum();
    let t0 = Instant::now();
    for r in requests {
        store.ingest(r);
    }
    total as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("traces benchmark: {cores} cores");

    // --- match with a million spans (memory first, while the high-water mark is clean)
    let hwm0 = vm("VmHWM:");
    let rss0 = vm("VmRSS:");
    let store = SpanStore::new(MILLION);
    let fill_time = fill(&store, false);
    assert_eq!(store.len(), MILLION);
    let hwm1 = vm("VmHWM:");
    let rss1 = vm("VmRSS:");
    let hit = time_matches(&store, false, false);
    let miss = time_matches(&store, false, true);
    drop(store);

    let shared = SpanStore::new(MILLION);
    fill(&shared, true);
    let sub_hit = time_matches(&shared, true, false);
    let sub_miss = time_matches(&shared, true, true);
    drop(shared);

    println!();
    println!(
        "| 1,000,000 spans stored ({} traces × {SPANS_PER_TRACE}) | p50 | p99 | max |",
        MILLION / SPANS_PER_TRACE
    );
    println!("|---|---|---|---|");
    for (name, t) in [
        ("`spans` match, passing (trace index)", &hit),
        (
            "`spans` match, failing: missing span, closest names, spans-seen table (trace index)",
            &miss,
        ),
        (
            "`spans` match, passing, all spans in one trace (parent index, exported run)",
            &sub_hit,
        ),
        (
            "`spans` match, failing, all spans in one trace (parent index)",
            &sub_miss,
        ),
    ] {
        println!("| {name} | {} | {} | {} |", ms(t.p50), ms(t.p99), ms(t.max));
    }
    println!();
    println!(
        "fill: {:.2}s ({:.0} spans/s into the store); memory for the million: VmRSS +{:.0} MiB (now {:.0} MiB), peak VmHWM {:.0} MiB (was {:.0} MiB before), {:.0} bytes/span",
        fill_time.as_secs_f64(),
        MILLION as f64 / fill_time.as_secs_f64(),
        mib(rss1.saturating_sub(rss0)),
        mib(rss1),
        mib(hwm1),
        mib(hwm0),
        (rss1.saturating_sub(rss0) * 1024) as f64 / MILLION as f64,
    );

    // --- ingest
    println!();
    println!("| ingest ({INGEST_SPANS} spans, {BATCH} per request) | spans/s | time |");
    println!("|---|---|---|");
    for n in [1, 2, 4, 8] {
        let (rate, took) = ingest_grpc(n);
        println!(
            "| OTLP/gRPC, {n} concurrent exporter{} | {:.0} | {:.2}s |",
            if n == 1 { "" } else { "s" },
            rate,
            took.as_secs_f64()
        );
    }
    println!(
        "| store only (decoded requests, one thread) | {:.0} | |",
        ingest_store_only()
    );
}
