//! The run as a trace: `OtlpExport` fed a synthetic event sequence, received by gwtest's own
//! OTLP receiver: ids, nesting, attributes, status, and a system-under-test span that joins
//! the trace under a request attempt.

mod support;
mod support_traces;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gwtest::config::ExportProtocol;
use gwtest::engine::events::{
    Counts, Event, Failure, FailureCause, Phase, RunSummary, StepReport, StepStatus, TestKey,
    TestReport, TestStatus, TryReport,
};
use gwtest::engine::retry::{AttemptRecord, Class};
use gwtest::engine::{hex, new_span_id, new_trace_id};
use gwtest::report::Reporter;
use gwtest::suite::spanned::Loc;
use gwtest::traces::store::{AttrValue, SpanStatus, StoredSpan};
use gwtest::traces::{OtlpExport, Selection, attempt_span_id};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanExporter as _;
use support::closed_port;
use support_traces::*;

struct Ids {
    trace: [u8; 16],
    suite: [u8; 8],
    test: [u8; 8],
    step0: [u8; 8],
    step1: [u8; 8],
}

fn test_id() -> Arc<TestKey> {
    Arc::new(TestKey {
        suite: "tracing".into(),
        name: "span-names".into(),
        file: "suites/tracing/names.test.yaml".into(),
        loc: Loc::new(3, 1),
        repeat: 0,
    })
}

fn step_report(
    index: usize,
    kind: &'static str,
    attempts: u32,
    failure: Option<Failure>,
) -> StepReport {
    StepReport {
        index,
        name: if index == 0 {
            "GET /example".into()
        } else {
            "span names".into()
        },
        kind,
        phase: Phase::Steps,
        file: None,
        loc: Loc::new(7 + index as u32 * 5, 5),
        status: if failure.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Passed
        },
        duration: Duration::from_millis(40),
        attempts,
        timeout: Some(Duration::from_secs(30)),
        failure,
    }
}

/// A run with one suite, one failing test: a request step (2 attempts) and a spans step.
/// With `finished = false` the stream stops mid-step, as after a second Ctrl-C.
fn events(ids: &Ids, finished: bool) -> Vec<Event> {
    let id = test_id();
    let mut ev = vec![
        Event::RunStarted {
            run_id: "20260101-000000-abcdef".into(),
            trace_id: hex(&ids.trace),
            started: SystemTime::now(),
            suites: vec![],
            parallel: 2,
        },
        Event::SuiteStarted {
            suite: "tracing".into(),
            span_id: hex(&ids.suite),
        },
        Event::TestStarted {
            id: id.clone(),
            try_no: 1,
            namespace: None,
            span_id: hex(&ids.test),
        },
        Event::StepStarted {
            id: id.clone(),
            index: 0,
            phase: Phase::Steps,
            name: "GET /example".into(),
            kind: "request",
            span_id: hex(&ids.step0),
        },
        Event::Attempt {
            id: id.clone(),
            index: 0,
            record: AttemptRecord {
                n: 1,
                start: Duration::ZERO,
                duration: Duration::from_millis(5),
                class: Some(Class::Status),
                summary: "got status 503".into(),
                http: None,
            },
        },
        Event::Attempt {
            id: id.clone(),
            index: 0,
            record: AttemptRecord {
                n: 2,
                start: Duration::from_millis(20),
                duration: Duration::from_millis(5),
                class: None,
                summary: String::new(),
                http: None,
            },
        },
        Event::StepFinished {
            id: id.clone(),
            report: step_report(0, "request", 2, None),
        },
        Event::StepStarted {
            id: id.clone(),
            index: 1,
            phase: Phase::Steps,
            name: "span names".into(),
            kind: "spans",
            span_id: hex(&ids.step1),
        },
    ];
    if !finished {
        return ev;
    }
    let mut failure = Failure::new(
        FailureCause::Timeout,
        Some(Class::NoTrace),
        "3 attempts in 1.0s: 3 no span for the request's trace",
    );
    failure.expected = Some("\"GET /example\"".into());
    let failed = step_report(1, "spans", 3, Some(failure));
    ev.push(Event::StepFinished {
        id: id.clone(),
        report: failed.clone(),
    });
    let try_report = TryReport {
        passed: false,
        duration: Duration::from_millis(120),
        steps: vec![step_report(0, "request", 2, None), failed],
        catch: Vec::new(),
        finally: Vec::new(),
        error: None,
        namespace: None,
        cleanup: None,
    };
    ev.push(Event::TestFinished {
        report: TestReport {
            id,
            status: TestStatus::Failed,
            duration: Duration::from_millis(120),
            tries: vec![try_report],
            skip_reason: None,
        },
    });
    ev.push(Event::SuiteFinished {
        suite: "tracing".into(),
        duration: Duration::from_millis(150),
    });
    ev.push(Event::RunFinished {
        summary: RunSummary {
            counts: Counts {
                failed: 1,
                ..Counts::default()
            },
            duration: Duration::from_millis(200),
            interrupted: false,
            cleanup_failed: 0,
            cluster_unusable: None,
            not_started: None,
            quit: false,
        },
    });
    ev
}

fn ids() -> Ids {
    Ids {
        trace: new_trace_id(),
        suite: new_span_id(),
        test: new_span_id(),
        step0: new_span_id(),
        step1: new_span_id(),
    }
}

/// Feed the events on a blocking thread, as the reporter hub does.
async fn report(
    endpoint: String,
    protocol: ExportProtocol,
    events: Vec<Event>,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let url =
            gwtest::config::export_url(&endpoint, protocol, gwtest::config::EndpointKind::Given)
                .map_err(anyhow::Error::msg)?;
        let mut r = OtlpExport::new(&url, protocol)?;
        for e in &events {
            r.event(e);
        }
        r.finish()
    })
    .await
    .expect("reporter thread")
}

fn by_name<'a>(spans: &'a [Arc<StoredSpan>], name: &str) -> &'a StoredSpan {
    spans.iter().find(|s| &*s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} in {:?}",
            spans.iter().map(|s| &*s.name).collect::<Vec<_>>()
        )
    })
}

fn attr<'a>(s: &'a StoredSpan, k: &str) -> &'a AttrValue {
    s.attribute(k)
        .unwrap_or_else(|| panic!("{} has no {k}: {:?}", s.name, s.attributes))
}

fn str_attr(s: &StoredSpan, k: &str) -> String {
    attr(s, k).as_str().unwrap_or_default().to_string()
}

/// [`exported_run_nests_run_suite_test_step_attempt`], bounded.
async fn exported_run(protocol: ExportProtocol) {
    bounded(30, exported_run_nests_run_suite_test_step_attempt(protocol)).await;
}

async fn exported_run_nests_run_suite_test_step_attempt(protocol: ExportProtocol) {
    let (store, r) = receiver(10_000);
    let endpoint = match protocol {
        ExportProtocol::Grpc => r.grpc_endpoint(),
        ExportProtocol::HttpProtobuf => r.http_endpoint(),
    };
    let ids = ids();
    report(endpoint, protocol, events(&ids, true))
        .await
        .expect("export succeeds");
    let spans = store.trace(&ids.trace);
    assert_eq!(
        spans.len(),
        7,
        "run, suite, test, 2 steps, 2 attempts: {spans:#?}"
    );

    let run = by_name(&spans, "gwtest run");
    assert_eq!(run.parent_span_id, None);
    assert_eq!(run.service.as_deref(), Some("gwtest"));
    assert_eq!(str_attr(run, "gwtest.run_id"), "20260101-000000-abcdef");
    assert_eq!(attr(run, "gwtest.tests.failed"), &AttrValue::Int(1));
    assert_eq!(run.status, SpanStatus::Error);

    let suite = by_name(&spans, "suite tracing");
    assert_eq!(suite.span_id, ids.suite);
    assert_eq!(suite.parent_span_id, Some(run.span_id));

    let test = by_name(&spans, "test tracing/span-names");
    assert_eq!(test.span_id, ids.test);
    assert_eq!(test.parent_span_id, Some(ids.suite));
    assert_eq!(str_attr(test, "gwtest.outcome"), "failed");
    assert_eq!(
        str_attr(test, "code.file.path"),
        "suites/tracing/names.test.yaml"
    );
    assert_eq!(attr(test, "code.line.number"), &AttrValue::Int(3));
    assert_eq!(str_attr(test, "gwtest.class"), "no-trace");
    assert_eq!(test.status, SpanStatus::Error);
    // Real durations: the try took 120ms.
    assert_eq!(test.end_unix_nano - test.start_unix_nano, 120_000_000);

    let request = by_name(&spans, "GET /example");
    assert_eq!(request.span_id, ids.step0);
    assert_eq!(request.parent_span_id, Some(ids.test));
    assert_eq!(str_attr(request, "gwtest.outcome"), "passed");
    assert_eq!(attr(request, "gwtest.attempts"), &AttrValue::Int(2));
    assert_eq!(str_attr(request, "gwtest.step.kind"), "request");
    assert_eq!(attr(request, "code.line.number"), &AttrValue::Int(7));
    assert_eq!(request.status, SpanStatus::Ok);

    let spans_step = by_name(&spans, "span names");
    assert_eq!(spans_step.parent_span_id, Some(ids.test));
    assert_eq!(str_attr(spans_step, "gwtest.outcome"), "failed");
    assert_eq!(str_attr(spans_step, "gwtest.class"), "no-trace");
    assert_eq!(attr(spans_step, "gwtest.attempts"), &AttrValue::Int(3));
    assert_eq!(spans_step.status, SpanStatus::Error);

    let a1 = by_name(&spans, "attempt 1");
    assert_eq!(a1.span_id, attempt_span_id(&ids.step0, 1));
    assert_eq!(a1.parent_span_id, Some(ids.step0));
    assert_eq!(str_attr(a1, "gwtest.class"), "status");
    assert_eq!(a1.status, SpanStatus::Error);
    assert_eq!(a1.kind, Some(gwtest::suite::model::SpanKind::Client));
    let a2 = by_name(&spans, "attempt 2");
    assert_eq!(a2.span_id, attempt_span_id(&ids.step0, 2));
    assert_eq!(a2.start_unix_nano - request.start_unix_nano, 20_000_000);

    // The system under test continues the deciding attempt's traceparent (as the request
    // step sends it when the run is exported): its span joins the run's trace under it.
    let exporter = grpc_exporter(&r.grpc_endpoint(), "demo-gateway");
    exporter
        .export(vec![span_data(
            ids.trace,
            [0x77; 8],
            Some(attempt_span_id(&ids.step0, 2)),
            "GET /example",
            SpanKind::Server,
            vec![],
        )])
        .await
        .unwrap();
    let under_step = store.select(&Selection::Subtree {
        trace_id: ids.trace,
        root: ids.step0,
    });
    let gw = under_step
        .spans
        .iter()
        .find(|s| s.span.service.as_deref() == Some("demo-gateway"))
        .expect("the gateway's span is under the request step");
    assert_eq!(gw.parent.as_ref().map(|p| &*p.name), Some("attempt 2"));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_run_over_grpc() {
    exported_run(ExportProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_run_over_http_protobuf() {
    gwtest::install_crypto_provider();
    exported_run(ExportProtocol::HttpProtobuf).await;
}

/// Ctrl-C twice: the events stop mid-step. Everything open is closed and still sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_is_flushed_with_open_spans_closed() {
    bounded(30, async {
        let (store, r) = receiver(10_000);
        let ids = ids();
        report(r.grpc_endpoint(), ExportProtocol::Grpc, events(&ids, false))
            .await
            .expect("export succeeds");
        let spans = store.trace(&ids.trace);
        assert_eq!(spans.len(), 7, "{spans:#?}");
        let step = by_name(&spans, "span names");
        assert_eq!(str_attr(step, "gwtest.outcome"), "interrupted");
        assert_eq!(step.status, SpanStatus::Error);
        assert_eq!(
            str_attr(by_name(&spans, "test tracing/span-names"), "gwtest.outcome"),
            "interrupted"
        );
        assert_eq!(
            attr(by_name(&spans, "gwtest run"), "gwtest.interrupted"),
            &AttrValue::Bool(true)
        );
        r.shutdown().await;
    })
    .await;
}

/// An endpoint nobody listens on: finish() reports it, quickly, and never hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_reported_not_waited_for() {
    gwtest::install_crypto_provider();
    let port = closed_port();
    for protocol in [ExportProtocol::Grpc, ExportProtocol::HttpProtobuf] {
        let t0 = std::time::Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            report(
                format!("http://127.0.0.1:{port}"),
                protocol,
                events(&ids(), true),
            ),
        )
        .await
        .expect("finish() returned")
        .expect_err("an unreachable endpoint is an error");
        let msg = format!("{err:#}");
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        assert!(
            msg.contains("7 spans not exported") || msg.contains("of 7 spans"),
            "{msg}"
        );
        assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    }
    // An unusable endpoint fails at once.
    let err =
        tokio::task::spawn_blocking(|| OtlpExport::new("ftp://x", ExportProtocol::Grpc).err())
            .await
            .unwrap()
            .expect("rejected");
    assert!(err.to_string().contains("ftp://x"), "{err}");
}

/// A large run to an endpoint nobody listens on: the final flush stops at the first batch that
/// fails and counts the rest with its cause. (It used to retry every remaining batch until its
/// 10 s deadline and say only "the last spans were not sent within 10s".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_to_an_unreachable_endpoint_is_counted_with_its_cause() {
    gwtest::install_crypto_provider();
    let port = closed_port();
    let id = test_id();
    // The run stops mid-step (step 1 open); 20,000 more steps make 40 batches of 512.
    let mut ev = events(&ids(), false);
    ev.extend(steps::passed_steps(&id, 2..20_002));
    let counted =
        regex::Regex::new(r"OTLP export to \S+: (\d+) of (\d+) spans not exported: \S").unwrap();
    for protocol in [ExportProtocol::Grpc, ExportProtocol::HttpProtobuf] {
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            report(format!("http://127.0.0.1:{port}"), protocol, ev.clone()),
        )
        .await
        .expect("finish() returned")
        .expect_err("an unreachable endpoint is an error");
        let msg = format!("{err:#}");
        let c = counted
            .captures(&msg)
            .unwrap_or_else(|| panic!("no count and cause in {msg:?}"));
        assert_eq!(c[1], c[2], "every span is counted as not exported: {msg}");
        let n: usize = c[1].parse().unwrap();
        assert!(n >= 20_000, "{n} spans counted: {msg}");
    }
}
