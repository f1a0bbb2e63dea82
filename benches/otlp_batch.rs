//! Why `--otlp-export` batches its own spans instead of using the OpenTelemetry SDK's batch
//! processor (docs/tracing.md): the same burst of finished spans sent by
//!
//! 1. gwtest's `OtlpExport` reporter (fed engine events, as the reporter hub does),
//! 2. the SDK's stock `BatchSpanProcessor` (its own thread, `futures_executor::block_on`),
//! 3. the SDK's experimental Tokio `BatchSpanProcessor`
//!    (`experimental_trace_batch_span_processor_with_async_runtime`),
//!
//! each with both exporters gwtest offers (OTLP/gRPC through tonic, OTLP/HTTP through the async
//! reqwest client) into gwtest's own receiver, then once more against an endpoint nobody
//! listens on. It prints, per case: spans received of spans sent, the time from the first span
//! to the flush returning, panics seen, and what the caller is told.
//!
//! Run: `cargo bench --bench otlp_batch` (results in docs/benchmarks.md, "## OTLP export").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gwtest::config::{EndpointKind, ExportProtocol, export_url};
use gwtest::engine::events::{Event, TestKey};
use gwtest::engine::{hex, new_span_id, new_trace_id};
use gwtest::report::Reporter;
use gwtest::suite::spanned::Loc;
use gwtest::traces::export::build_exporter;
use gwtest::traces::{OtlpExport, Receiver, SpanStore};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
#[path = "../tests/support_traces/steps.rs"]
mod steps;
use steps::passed_steps;

use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, span_processor_with_async_runtime,
};

/// A large run's worth of step spans, past the SDK's default queue (2048).
const SPANS: usize = 10_000;

static PANICS: AtomicUsize = AtomicUsize::new(0);
static FIRST_PANIC: Mutex<Option<String>> = Mutex::new(None);

#[derive(Clone, Copy, PartialEq)]
enum Pipeline {
    Gwtest,
    SdkThread,
    SdkTokio,
    /// The same with a queue that holds the whole burst.
    SdkThreadBigQueue,
    SdkTokioBigQueue,
}

impl Pipeline {
    fn name(self) -> &'static str {
        match self {
            Pipeline::Gwtest => "gwtest OtlpExport",
            Pipeline::SdkThread => "SDK BatchSpanProcessor",
            Pipeline::SdkTokio => "SDK async-runtime BatchSpanProcessor",
            Pipeline::SdkThreadBigQueue => "SDK BatchSpanProcessor, queue 10000",
            Pipeline::SdkTokioBigQueue => "SDK async-runtime BatchSpanProcessor, queue 10000",
        }
    }
}

struct Outcome {
    received: u64,
    sent: usize,
    elapsed: Duration,
    panics: usize,
    told: String,
}

fn main() {
    // Count panics on the exporters' threads instead of printing each one.
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        let mut first = FIRST_PANIC.lock().unwrap();
        first.get_or_insert_with(|| {
            info.payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        });
    }));
    gwtest::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{SPANS} finished spans in one burst, then flushed (SDK defaults: queue 2048, batch 512)\n"
    );
    println!(
        "| pipeline | protocol | endpoint | received / sent | burst + flush | panics | what the caller is told |"
    );
    println!("|---|---|---|---|---|---|---|");
    for live in [true, false] {
        for protocol in [ExportProtocol::Grpc, ExportProtocol::HttpProtobuf] {
            for pipeline in [
                Pipeline::Gwtest,
                Pipeline::SdkThread,
                Pipeline::SdkThreadBigQueue,
                Pipeline::SdkTokio,
                Pipeline::SdkTokioBigQueue,
            ] {
                let o = rt.block_on(case(pipeline, protocol, live));
                let first = FIRST_PANIC.lock().unwrap().take();
                let told = match first {
                    Some(p) if o.panics > 0 => format!("{} (panic: {})", o.told, cut(&p, 90)),
                    _ => o.told.clone(),
                };
                println!(
                    "| {} | {} | {} | {} / {} | {:.0} ms | {} | {} |",
                    pipeline.name(),
                    match protocol {
                        ExportProtocol::Grpc => "gRPC",
                        ExportProtocol::HttpProtobuf => "HTTP",
                    },
                    if live { "receiver" } else { "closed port" },
                    o.received,
                    o.sent,
                    o.elapsed.as_secs_f64() * 1000.0,
                    o.panics,
                    cut(&told, 160).replace('|', "/"),
                );
            }
        }
    }
}

fn cut(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

async fn case(pipeline: Pipeline, protocol: ExportProtocol, live: bool) -> Outcome {
    let store = Arc::new(SpanStore::new(4 * SPANS));
    let receiver = Receiver::start("127.0.0.1:0", "127.0.0.1:0", store.clone()).unwrap();
    let endpoint = if live {
        match protocol {
            ExportProtocol::Grpc => receiver.grpc_endpoint(),
            ExportProtocol::HttpProtobuf => receiver.http_endpoint(),
        }
    } else {
        // A port that was free a moment ago: connections are refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let url = export_url(&endpoint, protocol, EndpointKind::Given).unwrap();
    PANICS.store(0, Ordering::Relaxed);
    let (sent, elapsed, told) = match pipeline {
        Pipeline::Gwtest => tokio::task::spawn_blocking(move || gwtest_export(&url, protocol))
            .await
            .unwrap(),
        _ => sdk_export(pipeline, &url, protocol).await,
    };
    // Let anything still in flight land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = store.total_received();
    receiver.shutdown().await;
    Outcome {
        received,
        sent,
        elapsed,
        panics: PANICS.load(Ordering::Relaxed),
        told,
    }
}

/// One run of `SPANS - 3` steps: run, suite, test and step spans as the engine's events make
/// them, fed on a blocking thread like the reporter hub, then `finish()`.
fn gwtest_export(url: &str, protocol: ExportProtocol) -> (usize, Duration, String) {
    let id = Arc::new(TestKey {
        suite: "bench".into(),
        name: "many-steps".into(),
        file: "suites/bench/many.test.yaml".into(),
        loc: Loc::new(1, 1),
        repeat: 0,
    });
    let mut r = OtlpExport::new(url, protocol).unwrap();
    let start = Instant::now();
    r.event(&Event::RunStarted {
        run_id: "bench".into(),
        trace_id: hex(&new_trace_id()),
        started: SystemTime::now(),
        suites: vec![],
        parallel: 1,
    });
    r.event(&Event::SuiteStarted {
        suite: "bench".into(),
        span_id: hex(&new_span_id()),
    });
    r.event(&Event::TestStarted {
        id: id.clone(),
        try_no: 1,
        namespace: None,
        span_id: hex(&new_span_id()),
    });
    for e in &passed_steps(&id, 0..SPANS - 3) {
        r.event(e);
    }
    // Closes the test, suite and run spans (as after Ctrl-C) and flushes.
    let told = match r.finish() {
        Ok(()) => "Ok".to_string(),
        Err(e) => format!("warning: {e}"),
    };
    (SPANS, start.elapsed(), told)
}

/// The same number of spans with the same attributes through an SDK tracer provider. The
/// exporter is built inside the runtime (tonic needs one to build a channel); spans are made
/// and flushed on a blocking thread, like the reporter hub's.
async fn sdk_export(
    pipeline: Pipeline,
    url: &str,
    protocol: ExportProtocol,
) -> (usize, Duration, String) {
    let exporter = build_exporter(url, protocol).unwrap();
    let mut config = BatchConfigBuilder::default();
    if matches!(
        pipeline,
        Pipeline::SdkThreadBigQueue | Pipeline::SdkTokioBigQueue
    ) {
        config = config.with_max_queue_size(SPANS);
    }
    let config = config.build();
    let provider = match pipeline {
        Pipeline::SdkThread | Pipeline::SdkThreadBigQueue => SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(config)
                    .build(),
            )
            .build(),
        _ => SdkTracerProvider::builder()
            .with_span_processor(
                span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .with_batch_config(config)
                .build(),
            )
            .build(),
    };
    tokio::task::spawn_blocking(move || {
        let tracer = provider.tracer("bench");
        let start = Instant::now();
        for index in 0..SPANS {
            let mut span = tracer.start(format!("step {index}"));
            span.set_attributes([
                KeyValue::new("gwtest.step.kind", "assert"),
                KeyValue::new("gwtest.step.index", index as i64),
                KeyValue::new("gwtest.step.phase", "steps"),
                KeyValue::new("code.file.path", "suites/bench/many.test.yaml"),
            ]);
            span.end();
        }
        let flushed = provider.force_flush();
        let shut = provider.shutdown();
        let told = format!("force_flush: {flushed:?}; shutdown: {shut:?}");
        (SPANS, start.elapsed(), told)
    })
    .await
    .unwrap()
}
