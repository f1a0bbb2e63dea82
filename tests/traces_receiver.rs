//! The embedded OTLP receiver against real OTLP senders: opentelemetry-otlp's gRPC and
//! HTTP/protobuf exporters, an OTel SDK tracer in a test gateway that continues the incoming
//! traceparent, and raw OTLP/JSON and gzip posts.

mod support_traces;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use gwtest::engine::RunContext;
use gwtest::engine::events::{EventSink, TestKey};
use gwtest::engine::retry::{Class, Limits, Policy};
use gwtest::steps::{RequestTrace, StepResult, TestState};
use gwtest::suite::model::{SpanKind as Kind, Step};
use gwtest::suite::spanned::Loc;
use gwtest::suite::vars::Vars;
use gwtest::traces::store::AttrValue;
use gwtest::traces::{BindError, Receiver, SpanStore};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::SpanExporter as _;
use support_traces::*;

const T: u64 = 20;

fn attrs() -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 200i64),
        KeyValue::new("ratio", 0.25f64),
        KeyValue::new("cached", true),
        KeyValue::new(
            "tags",
            opentelemetry::Value::Array(opentelemetry::Array::String(vec!["a".into(), "b".into()])),
        ),
    ]
}

fn check_stored(store: &SpanStore, trace: [u8; 16], service: &str) {
    let spans = store.trace(&trace);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let server = spans
        .iter()
        .find(|s| &*s.name == "GET /example")
        .expect("server span");
    assert_eq!(server.span_id, [2; 8]);
    assert_eq!(server.parent_span_id, Some([1; 8]));
    assert_eq!(server.kind, Some(Kind::Server));
    assert_eq!(server.service.as_deref(), Some(service));
    assert!(server.start_unix_nano > 0 && server.end_unix_nano > server.start_unix_nano);
    assert_eq!(
        server
            .attribute("http.request.method")
            .and_then(AttrValue::as_str),
        Some("GET")
    );
    assert_eq!(
        server.attribute("http.response.status_code"),
        Some(&AttrValue::Int(200))
    );
    assert_eq!(server.attribute("ratio"), Some(&AttrValue::Double(0.25)));
    assert_eq!(server.attribute("cached"), Some(&AttrValue::Bool(true)));
    assert_eq!(
        server.attribute("tags").map(AttrValue::to_json),
        Some(serde_json::json!(["a", "b"]))
    );
    let route = spans
        .iter()
        .find(|s| &*s.name == "route example")
        .expect("child span");
    assert_eq!(route.parent_span_id, Some([2; 8]));
    assert_eq!(route.kind, Some(Kind::Internal));
}

fn two_spans(trace: [u8; 16]) -> Vec<opentelemetry_sdk::trace::SpanData> {
    vec![
        span_data(
            trace,
            [2; 8],
            Some([1; 8]),
            "GET /example",
            SpanKind::Server,
            attrs(),
        ),
        span_data(
            trace,
            [3; 8],
            Some([2; 8]),
            "route example",
            SpanKind::Internal,
            vec![],
        ),
    ]
}

/// The stock exporter (OTLP/gRPC or OTLP/HTTP) sends two spans of `trace` as `service`: both
/// are stored, and only they.
async fn exported_spans_land(grpc: bool, service: &str, trace: [u8; 16]) {
    bounded(T, async {
        let (store, r) = receiver(1000);
        let endpoint = if grpc {
            r.grpc_endpoint()
        } else {
            r.http_endpoint()
        };
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        let exporter = if grpc {
            grpc_exporter(&endpoint, service)
        } else {
            http_exporter(&endpoint, service)
        };
        exporter.export(two_spans(trace)).await.expect("export");
        check_stored(&store, trace, service);
        assert_eq!(store.total_received(), 2);
        r.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exporter_spans_land_in_the_store() {
    exported_spans_land(true, "demo-gateway", [0x11; 16]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_exporter_spans_land_in_the_store() {
    gwtest::install_crypto_provider();
    exported_spans_land(false, "edge", [0x22; 16]).await;
}

const JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"json-gw"}}]},
  "scopeSpans":[{"scope":{"name":"x"},"spans":[
    {"traceId":"33333333333333333333333333333333","spanId":"0202020202020202",
     "parentSpanId":"0101010101010101","name":"GET /example","kind":"SPAN_KIND_SERVER",
     "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000",
     "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}},
                   {"key":"ratio","value":{"doubleValue":0.5}}]},
    {"traceId":"33333333333333333333333333333333","spanId":"0303030303030303",
     "parentSpanId":"0202020202020202","name":"route example","kind":1}]}]}]}"#;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// POST `body` to `url` as `content_type`, gzip'd or not.
async fn post(
    url: &str,
    content_type: &str,
    gzipped: bool,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type);
    if gzipped {
        req = req.header("content-encoding", "gzip");
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_json_and_gzip_posts() {
    gwtest::install_crypto_provider();
    bounded(T, async {
        let (store, r) = receiver(1000);
        let url = format!("{}/v1/traces", r.http_endpoint());

        let resp = post(&url, "application/json", false, JSON).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let spans = store.trace(&[0x33; 16]);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].service.as_deref(), Some("json-gw"));
        assert_eq!(spans[0].kind, Some(Kind::Server));
        assert_eq!(spans[0].parent_span_id, Some([1; 8]));
        assert_eq!(
            spans[0].attribute("http.response.status_code"),
            Some(&AttrValue::Int(200))
        );
        assert_eq!(spans[0].attribute("ratio"), Some(&AttrValue::Double(0.5)));
        assert_eq!(spans[0].start_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(spans[1].kind, Some(Kind::Internal));

        // gzip'd JSON, another trace.
        let body = JSON.replace(
            "33333333333333333333333333333333",
            "44444444444444444444444444444444",
        );
        let resp = post(
            &url,
            "application/json; charset=utf-8",
            true,
            gzip(body.as_bytes()),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(store.trace(&[0x44; 16]).len(), 2);

        // gzip'd protobuf, encoded the way the SDK's exporters encode it.
        let parsed = gwtest::traces::receiver::parse_json(
            JSON.replace(
                "33333333333333333333333333333333",
                "55555555555555555555555555555555",
            )
            .as_bytes(),
        )
        .unwrap();
        let pb = prost::Message::encode_to_vec(&parsed);
        let resp = post(&url, "application/x-protobuf", true, gzip(&pb)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
        assert_eq!(store.trace(&[0x55; 16]).len(), 2);

        // Bad input is refused with a reason, and stores nothing.
        let before = store.total_received();
        let resp = post(&url, "text/plain", false, "x").await;
        assert_eq!(resp.status(), 415);
        let resp = post(&url, "application/json", false, "{not json").await;
        assert_eq!(resp.status(), 400);
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("invalid OTLP/JSON body")
        );
        let resp = post(&url, "application/x-protobuf", true, "not gzip").await;
        assert_eq!(resp.status(), 400);
        assert_eq!(store.total_received(), before);

        // An invalid id is a partial success that names the problem.
        let bad = JSON
            .replace("\"spanId\":\"0303030303030303\"", "\"spanId\":\"03\"")
            .replace(
                "33333333333333333333333333333333",
                "66666666666666666666666666666666",
            );
        let resp = post(&url, "application/json", false, bad).await;
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.unwrap();
        let rejected = &v["partialSuccess"]["rejectedSpans"];
        assert!(rejected == 1 || rejected == "1", "{v}");
        assert!(
            v["partialSuccess"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("invalid")
        );
        assert_eq!(store.trace(&[0x66; 16]).len(), 1);
        r.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_taken_port_is_a_typed_error_naming_the_address() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let store = Arc::new(SpanStore::new(10));
    let Err(e) = Receiver::start(&taken, "127.0.0.1:0", store.clone()) else {
        panic!("bound a taken port");
    };
    assert!(matches!(e, BindError::Bind { .. }), "{e:?}");
    assert_eq!(e.addr(), taken);
    let msg = e.to_string();
    assert!(msg.contains(&taken) && msg.contains("OTLP/gRPC"), "{msg}");
    assert!(msg.to_lowercase().contains("in use"), "{msg}");

    let Err(e) = Receiver::start("127.0.0.1:0", &taken, store.clone()) else {
        panic!("bound a taken port");
    };
    assert!(e.to_string().contains("OTLP/HTTP"), "{e}");

    let Err(e) = Receiver::start("not an address", "127.0.0.1:0", store) else {
        panic!("accepted a bad address");
    };
    assert!(matches!(e, BindError::Invalid { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------
// A test gateway instrumented with the OTel SDK: it continues the incoming traceparent and
// exports a server span and a child span through the SDK's batch processor (so spans arrive
// late), over gRPC or HTTP.

/// How the test gateway sends its spans.
enum Sink {
    /// The OTel SDK: tracer provider + batch span processor (its own thread; gRPC).
    Sdk(opentelemetry_sdk::trace::SdkTracerProvider),
    /// The exporter called from a task 300ms after the request (the SDK's batch processor
    /// thread has no Tokio reactor, which the async HTTP client needs).
    Deferred,
}

struct Gateway {
    url: String,
    sink: Sink,
    server: tokio::task::JoinHandle<()>,
}

fn parent_of(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    use opentelemetry::propagation::TextMapPropagator;
    opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

impl Gateway {
    /// Continue the traceparent with the SDK tracer; spans leave through the batch processor.
    async fn with_sdk(exporter: opentelemetry_otlp::SpanExporter) -> Gateway {
        let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_scheduled_delay(Duration::from_millis(300))
                    .build(),
            )
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_resource(resource("demo-gateway"))
            .build();
        let tracer = provider.tracer("gateway");
        let handler = move |headers: axum::http::HeaderMap| {
            let tracer = tracer.clone();
            async move {
                let parent = parent_of(&headers);
                let server = tracer
                    .span_builder("GET /example")
                    .with_kind(SpanKind::Server)
                    .with_attributes(vec![KeyValue::new("http.response.status_code", 200i64)])
                    .start_with_context(&tracer, &parent);
                let cx = parent.with_span(server);
                let mut route = tracer.start_with_context("route example", &cx);
                opentelemetry::trace::Span::end(&mut route);
                cx.span().end();
                "ok"
            }
        };
        let app = axum::Router::new().route("/example", axum::routing::get(handler));
        Gateway::serve(app, Sink::Sdk(provider)).await
    }

    /// Continue the traceparent by hand; the exporter sends 300ms later.
    async fn deferred(exporter: opentelemetry_otlp::SpanExporter) -> Gateway {
        let exporter = Arc::new(exporter);
        let e = exporter.clone();
        let handler = move |headers: axum::http::HeaderMap| {
            let e = e.clone();
            async move {
                let parent = parent_of(&headers);
                let pc = parent.span().span_context().clone();
                let trace = pc.trace_id().to_bytes();
                let server_id: [u8; 8] = rand_id();
                let spans = vec![
                    span_data(
                        trace,
                        server_id,
                        Some(pc.span_id().to_bytes()),
                        "GET /example",
                        SpanKind::Server,
                        vec![KeyValue::new("http.response.status_code", 200i64)],
                    ),
                    span_data(
                        trace,
                        rand_id(),
                        Some(server_id),
                        "route example",
                        SpanKind::Internal,
                        vec![],
                    ),
                ];
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    e.export(spans).await.expect("gateway export");
                });
                "ok"
            }
        };
        let app = axum::Router::new().route("/example", axum::routing::get(handler));
        Gateway::serve(app, Sink::Deferred).await
    }

    async fn serve(app: axum::Router, sink: Sink) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Gateway { url, sink, server }
    }

    async fn stop(self) {
        self.server.abort();
        if let Sink::Sdk(p) = self.sink {
            tokio::task::spawn_blocking(move || {
                let _ = p.shutdown_with_timeout(Duration::from_secs(2));
            })
            .await
            .unwrap();
        }
    }
}

fn rand_id() -> [u8; 8] {
    gwtest::engine::new_span_id()
}

fn run_ctx(store: Arc<SpanStore>, r: &Receiver, exporting: bool) -> Arc<RunContext> {
    let config =
        gwtest::config::RunConfig::resolve(&Default::default(), std::path::Path::new("/")).unwrap();
    let mut rc = RunContext::local(config, EventSink::discard());
    rc.spans = Some(store);
    rc.otlp = Some(r.endpoints());
    rc.exporting = exporting;
    Arc::new(rc)
}

async fn run_step(
    yaml: &str,
    run: &Arc<RunContext>,
    state: &mut TestState,
    vars: &mut Vars,
) -> StepResult {
    let step: Step = serde_saphyr::from_str(yaml).expect("step parses");
    let id = Arc::new(TestKey {
        suite: "traces".into(),
        name: "t".into(),
        file: "t.test.yaml".into(),
        loc: Loc::UNKNOWN,
        repeat: 0,
    });
    let timeout = step.timeout.map_or(Duration::from_secs(5), |d| d.0);
    let policy = Policy {
        timeout,
        interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(500),
        consecutive: 1,
        hold: None,
    };
    let now = tokio::time::Instant::now();
    let limits = Limits::for_step(
        now,
        timeout,
        now + Duration::from_secs(30),
        Duration::from_secs(30),
        run.cancel.clone(),
    );
    let mut ctx = gwtest::steps::StepCtx {
        test: &id,
        index: 0,
        step: &step,
        loc: Loc::UNKNOWN,
        file: std::path::Path::new("t.test.yaml"),
        vars,
        policy,
        attempt_timeout: Duration::from_secs(2),
        limits,
        run,
        state,
        events: &run.events,
    };
    gwtest::steps::run(&mut ctx).await
}

const REQUEST: &str = "request:\n  url: ${gw}/example\n  expect: {status: 200}\n";
const SPANS: &str = r#"
spans:
  service: demo-gateway
  expect:
    - name: GET /example
      kind: server
      attributes: {http.response.status_code: 200}
      count: 1
    - name: route example
      parent: GET /example
  absent: [error-vhost]
"#;

async fn request_then_spans(exporter_kind: &str) {
    let (store, r) = receiver(10_000);
    let gw = match exporter_kind {
        "grpc" => Gateway::with_sdk(grpc_exporter(&r.grpc_endpoint(), "demo-gateway")).await,
        _ => Gateway::deferred(http_exporter(&r.http_endpoint(), "demo-gateway")).await,
    };
    let run = run_ctx(store.clone(), &r, false);
    let mut vars = Vars::new();
    vars.set("gw", gw.url.clone());
    let mut state = TestState {
        spans_since: store.position(),
        ..TestState::default()
    };
    // Two requests: the spans step must look at the second one's trace only.
    for _ in 0..2 {
        let res = run_step(REQUEST, &run, &mut state, &mut vars).await;
        assert!(res.failure.is_none(), "{:?}", res.failure);
    }
    let last = state.last_request.expect("request step records its trace");
    // The batch processor sends 300ms later: the step waits for them.
    let res = run_step(SPANS, &run, &mut state, &mut vars).await;
    assert!(res.failure.is_none(), "{:?}", res.failure);
    let trace = store.trace(&last.trace_id);
    let server = trace.iter().find(|s| &*s.name == "GET /example").unwrap();
    assert_eq!(
        server.parent_span_id,
        Some(last.span_id),
        "the gateway continued the traceparent"
    );

    // A wrong expectation fails with what was seen.
    let wrong = SPANS.replace("route example\n      parent", "route exampel\n      parent");
    let res = run_step(
        &format!("{wrong}timeout: 1s\n"),
        &run,
        &mut state,
        &mut vars,
    )
    .await;
    let f = res.failure.expect("fails");
    assert_eq!(f.class, Some(Class::MissingSpan));
    assert!(
        f.headline.contains(r#"closest: "route example""#),
        "{}",
        f.headline
    );
    let seen = f
        .sections
        .iter()
        .find(|s| s.title == "spans seen")
        .expect("spans seen");
    assert!(seen.body.contains("(the request)"), "{}", seen.body);
    assert_eq!(
        seen.body.lines().count(),
        3,
        "header + the last request's 2 spans:\n{}",
        seen.body
    );

    // `trace: any` sees both requests' spans: count 1 fails, count 2 passes.
    let any = SPANS.replace("spans:\n", "spans:\n  trace: any\n");
    let res = run_step(&format!("{any}timeout: 1s\n"), &run, &mut state, &mut vars).await;
    assert_eq!(
        res.failure.expect("two server spans").class,
        Some(Class::UnexpectedSpan)
    );
    let res = run_step(
        &any.replace("count: 1", "count: 2"),
        &run,
        &mut state,
        &mut vars,
    )
    .await;
    assert!(res.failure.is_none(), "{:?}", res.failure);
    gw.stop().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_then_spans_over_grpc() {
    bounded(60, request_then_spans("grpc")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_then_spans_over_http() {
    gwtest::install_crypto_provider();
    bounded(60, request_then_spans("http")).await;
}

/// With the run exported, every request shares the run's trace id; `last-request` is the
/// subtree under the deciding attempt, whose span id the exporter derives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_run_requests_are_matched_under_their_attempt() {
    bounded(60, async {
        let (store, r) = receiver(10_000);
        let gw = Gateway::with_sdk(grpc_exporter(&r.grpc_endpoint(), "demo-gateway")).await;
        let run = run_ctx(store.clone(), &r, true);
        let mut vars = Vars::new();
        vars.set("gw", gw.url.clone());
        let mut state = TestState::default();
        for step_span in [[0x51u8; 8], [0x52u8; 8]] {
            state.step_span = Some(RequestTrace {
                trace_id: run.trace_id,
                span_id: step_span,
            });
            let res = run_step(REQUEST, &run, &mut state, &mut vars).await;
            assert!(res.failure.is_none(), "{:?}", res.failure);
            let last = state.last_request.unwrap();
            assert_eq!(last.trace_id, run.trace_id);
            assert_eq!(last.span_id, gwtest::traces::attempt_span_id(&step_span, 1));
        }
        // count: 1 holds although the run's trace holds two server spans.
        let res = run_step(SPANS, &run, &mut state, &mut vars).await;
        assert!(res.failure.is_none(), "{:?}", res.failure);
        eventually("both requests' spans", || {
            store.trace(&run.trace_id).len() == 4
        })
        .await;
        gw.stop().await;
        r.shutdown().await;
    })
    .await;
}
