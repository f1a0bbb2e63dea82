//! The run as a trace (`--otlp-export`): a reporter that turns engine events into spans
//! run → suite → test (one span per try) → step → request attempt, with the engine's own ids,
//! and sends them with opentelemetry-otlp (OTLP/HTTP protobuf by default, or gRPC).
//!
//! OpenTelemetry conventions: the endpoint and protocol follow the `OTEL_EXPORTER_OTLP_*`
//! variables (resolved in `config::resolve_export`); `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`,
//! `_COMPRESSION` and `_TIMEOUT` are read by opentelemetry-otlp itself (gwtest sets none of
//! them, so compression is `none` unless asked for); the resource is the SDK's, with
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, `service.name` being `gwtest` when
//! neither names it. A request attempt is an HTTP client span named after its method, with
//! `http.request.method`, `url.full`, `server.address`, `server.port`,
//! `http.response.status_code` and `error.type`; tests and steps carry `code.file.path` and
//! `code.line.number`. An export that fails is a warning naming the endpoint, never a failed
//! run.
//!
//! The reporter runs on the hub's blocking thread and never blocks on the network: finished
//! spans go to a thread of its own (with a small Tokio runtime) that exports them in batches.
//! `finish()` closes whatever is still open (Ctrl-C), flushes, and waits at most
//! [`FLUSH_TIMEOUT`]; an unreachable endpoint is an error in the report, never a hang.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use gwtest_sandbox::tracecontext::parse_id;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::mpsc;

use crate::config::ExportProtocol;
use crate::engine::events::{
    Event, Failure, FailureCause, RunSummary, StepReport, StepStatus, TestId, TestReport,
    TestStatus, TryReport,
};
use crate::engine::retry::{AttemptRecord, Class, HttpAttempt};
use crate::report::Reporter;

/// The longest `finish()` waits for the last spans to be sent.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// One export request's deadline.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans per export request.
const BATCH: usize = 512;
/// A finished span waits at most this long before it is sent.
const BATCH_DELAY: Duration = Duration::from_secs(2);
/// Attempt spans exported per step (a long `hold` makes many).
const MAX_ATTEMPT_SPANS: u32 = 1000;

enum Cmd {
    Span(Box<SpanData>),
    /// Send what is buffered, then stop; exports end by the deadline.
    Finish(tokio::time::Instant),
}

/// What the export thread did, reported when it ends.
#[derive(Debug, Default)]
struct Outcome {
    exported: usize,
    failed: usize,
    first_error: Option<String>,
}

/// A span not finished yet.
struct Open {
    id: [u8; 8],
    parent: [u8; 8],
    name: String,
    start: SystemTime,
    kind: SpanKind,
    attrs: Vec<KeyValue>,
}

/// The `--otlp-export` reporter.
pub struct OtlpExport {
    endpoint: String,
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    done: std::sync::mpsc::Receiver<Outcome>,
    trace_id: Option<[u8; 16]>,
    run: Option<Open>,
    suites: HashMap<String, Open>,
    tests: HashMap<TestId, Open>,
    steps: HashMap<(TestId, usize), (Open, &'static str)>,
    sent: usize,
}

impl OtlpExport {
    /// Start the export thread for `url` (the full URL, see `config::export_url`). Fails on
    /// an unusable endpoint; an unreachable one is only found out (and reported by `finish`)
    /// later.
    pub fn new(url: &str, protocol: ExportProtocol) -> anyhow::Result<OtlpExport> {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => anyhow::bail!(
                "invalid OTLP export endpoint {url:?}: use an http:// or https:// URL"
            ),
        }
        let url = url.to_owned();
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let u = url.clone();
        std::thread::Builder::new()
            .name("gwtest-otlp-export".into())
            .spawn(move || export_thread(u, protocol, rx, ready_tx, done_tx))?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("cannot export the run to {url}: {e}"),
            Err(_) => anyhow::bail!("cannot export the run to {url}: the exporter did not start"),
        }
        Ok(OtlpExport {
            endpoint: url,
            tx: Some(tx),
            done,
            trace_id: None,
            run: None,
            suites: HashMap::new(),
            tests: HashMap::new(),
            steps: HashMap::new(),
            sent: 0,
        })
    }

    /// The URL spans go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn emit(&mut self, open: Open, end: SystemTime, status: Status, extra: Vec<KeyValue>) {
        let Some(trace_id) = self.trace_id else {
            return;
        };
        let mut attrs = open.attrs;
        attrs.extend(extra);
        let data = SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(trace_id),
                SpanId::from_bytes(open.id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from_bytes(open.parent),
            parent_span_is_remote: false,
            span_kind: open.kind,
            name: Cow::Owned(open.name),
            start_time: open.start,
            end_time: end.max(open.start),
            attributes: attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope(),
        };
        if let Some(tx) = &self.tx
            && tx.send(Cmd::Span(Box::new(data))).is_ok()
        {
            self.sent += 1;
        }
    }

    fn run_span_id(&self) -> [u8; 8] {
        self.run.as_ref().map_or([0; 8], |r| r.id)
    }

    fn close_test(&mut self, id: &TestId, outcome: &str, try_report: Option<&TryReport>) {
        let Some(open) = self.tests.remove(id) else {
            return;
        };
        let end = match try_report {
            Some(t) => open.start + t.duration,
            None => SystemTime::now(),
        };
        let mut extra = vec![KeyValue::new("gwtest.outcome", outcome.to_string())];
        let mut status = Status::Ok;
        if let Some(t) = try_report {
            if let Some(ns) = &t.namespace {
                extra.push(KeyValue::new("gwtest.namespace", ns.clone()));
            }
            if let Some(f) = t.failure() {
                status = Status::error(f.headline.clone());
                push_failure(&mut extra, f);
            } else if !t.passed {
                status = Status::error("failed");
            }
        }
        if outcome == "interrupted" {
            status = Status::error("interrupted");
        }
        self.emit(open, end, status, extra);
    }

    /// Close the steps, tests and suites still open (cut short), innermost first.
    fn close_open(&mut self, now: SystemTime) {
        let steps: Vec<_> = self.steps.drain().map(|(_, (o, _))| o).collect();
        for o in steps {
            let extra = vec![KeyValue::new("gwtest.outcome", "interrupted")];
            self.emit(o, now, Status::error("interrupted"), extra);
        }
        let tests: Vec<TestId> = self.tests.keys().cloned().collect();
        for id in tests {
            self.close_test(&id, "interrupted", None);
        }
        let suites: Vec<_> = self.suites.drain().map(|(_, o)| o).collect();
        for o in suites {
            self.emit(o, now, Status::Unset, vec![]);
        }
    }

    /// Close everything still open: the event stream ended without `RunFinished`.
    fn close_all(&mut self) {
        let now = SystemTime::now();
        self.close_open(now);
        if let Some(r) = self.run.take() {
            let extra = vec![KeyValue::new("gwtest.interrupted", true)];
            self.emit(r, now, Status::error("the run did not finish"), extra);
        }
    }
}

/// The HTTP client semantic conventions for one attempt: the span name (the method), the
/// attributes, and `error.type` when the attempt is an HTTP error (a status of 400 or more,
/// or no response at all: then the transport class, `timeout`, `refused`...).
fn http_client_span(
    h: &HttpAttempt,
    class: Option<Class>,
) -> (String, Vec<KeyValue>, Option<String>) {
    const KNOWN: &[&str] = &[
        "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
    ];
    let mut attrs = Vec::new();
    let method = if KNOWN.contains(&&*h.method) {
        h.method.to_string()
    } else {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            h.method.to_string(),
        ));
        "_OTHER".to_owned()
    };
    let name = if method == "_OTHER" {
        "HTTP".to_owned()
    } else {
        method.clone()
    };
    attrs.push(KeyValue::new("http.request.method", method));
    if let Ok(mut url) = reqwest::Url::parse(&h.url) {
        if let Some(host) = url.host_str() {
            attrs.push(KeyValue::new(
                "server.address",
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            ));
        }
        if let Some(port) = url.port_or_known_default() {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }
        // Credentials never go into a trace.
        if !url.username().is_empty() {
            let _ = url.set_username("REDACTED");
        }
        if url.password().is_some() {
            let _ = url.set_password(Some("REDACTED"));
        }
        attrs.push(KeyValue::new("url.full", url.to_string()));
    }
    let error = match h.status {
        Some(code) => {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
            (code >= 400).then(|| code.to_string())
        }
        None => Some(class.map_or("_OTHER", |c| c.as_str()).to_owned()),
    };
    if let Some(e) = &error {
        attrs.push(KeyValue::new("error.type", e.clone()));
    }
    (name, attrs, error)
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("gwtest")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn push_failure(attrs: &mut Vec<KeyValue>, f: &Failure) {
    if let Some(c) = f.class {
        attrs.push(KeyValue::new("gwtest.class", c.as_str()));
    }
    attrs.push(KeyValue::new(
        "gwtest.failure",
        crate::util::truncate(&f.headline, 1000),
    ));
}

fn test_status_str(s: TestStatus) -> &'static str {
    match s {
        TestStatus::Passed => "passed",
        TestStatus::Flaky => "flaky",
        TestStatus::Failed => "failed",
        TestStatus::Skipped => "skipped",
    }
}

fn step_status_str(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "failed",
        StepStatus::NotRun => "not-run",
        StepStatus::Skipped => "skipped",
    }
}

/// One event each: the spans it opens or closes.
impl OtlpExport {
    /// Test span opened (a try of a test).
    fn test_started(
        &mut self,
        id: &TestId,
        try_no: u32,
        namespace: Option<&str>,
        span_id: &str,
        now: SystemTime,
    ) {
        let Some(sid) = parse_id::<8>(span_id) else {
            return;
        };
        let parent = self
            .suites
            .get(&id.suite)
            .map_or_else(|| self.run_span_id(), |s| s.id);
        let mut attrs = vec![
            KeyValue::new("gwtest.test", id.name.clone()),
            KeyValue::new("gwtest.suite", id.suite.clone()),
            KeyValue::new("gwtest.try", i64::from(try_no)),
            KeyValue::new("code.file.path", id.file.display().to_string()),
            KeyValue::new("code.line.number", i64::from(id.loc.line)),
        ];
        if id.repeat > 0 {
            attrs.push(KeyValue::new("gwtest.repeat", i64::from(id.repeat)));
        }
        if let Some(ns) = namespace {
            attrs.push(KeyValue::new("gwtest.namespace", ns.to_owned()));
        }
        self.tests.insert(
            id.clone(),
            Open {
                id: sid,
                parent,
                name: format!("test {id}"),
                start: now,
                kind: SpanKind::Internal,
                attrs,
            },
        );
    }

    /// A request attempt: an HTTP client span under its step (others are not exported).
    fn attempt(&mut self, id: &TestId, index: usize, record: &AttemptRecord) {
        let Some((step, kind)) = self.steps.get(&(id.clone(), index)) else {
            return;
        };
        // Only request attempts are parents of the system under test's spans.
        if *kind != "request" || record.n > MAX_ATTEMPT_SPANS {
            return;
        }
        let start = step.start + record.start;
        let mut attrs = vec![KeyValue::new("gwtest.attempt", i64::from(record.n))];
        let mut name = format!("attempt {}", record.n);
        let mut http_error = None;
        if let Some(h) = &record.http {
            let (span_name, semconv, error) = http_client_span(h, record.class);
            name = span_name;
            attrs.extend(semconv);
            http_error = error;
        }
        let open = Open {
            id: super::attempt_span_id(&step.id, record.n),
            parent: step.id,
            name,
            start,
            kind: SpanKind::Client,
            attrs,
        };
        let (status, extra) = match record.class {
            None => match http_error {
                // Passed, yet an HTTP error by the conventions (an expected 503).
                Some(e) => (
                    Status::error(format!("HTTP {e}")),
                    vec![KeyValue::new("gwtest.outcome", "passed")],
                ),
                None => (Status::Ok, vec![KeyValue::new("gwtest.outcome", "passed")]),
            },
            Some(c) => (
                Status::error(record.summary.clone()),
                vec![
                    KeyValue::new("gwtest.outcome", "failed"),
                    KeyValue::new("gwtest.class", c.as_str()),
                ],
            ),
        };
        self.emit(open, start + record.duration, status, extra);
    }

    /// A step's span closed with its outcome.
    fn step_finished(&mut self, id: &TestId, report: &StepReport) {
        let Some((mut open, _)) = self.steps.remove(&(id.clone(), report.index)) else {
            return;
        };
        open.attrs.push(KeyValue::new(
            "code.line.number",
            i64::from(report.loc.line),
        ));
        // A suite's default catch/finally step is written in suite.yaml.
        if let Some(f) = &report.file {
            for a in open
                .attrs
                .iter_mut()
                .filter(|a| a.key.as_str() == "code.file.path")
            {
                a.value = f.display().to_string().into();
            }
        }
        // Cut short by Ctrl-C: the same outcome as a step still open at the end.
        let outcome = match &report.failure {
            Some(f) if f.cause == FailureCause::Interrupted => "interrupted",
            _ => step_status_str(report.status),
        };
        let mut extra = vec![
            KeyValue::new("gwtest.outcome", outcome),
            KeyValue::new("gwtest.attempts", i64::from(report.attempts)),
        ];
        let status = match &report.failure {
            Some(f) => {
                push_failure(&mut extra, f);
                Status::error(f.headline.clone())
            }
            None => Status::Ok,
        };
        let end = open.start + report.duration;
        self.emit(open, end, status, extra);
    }

    /// A test's span closed; a test that never started gets a skipped span.
    fn test_finished(&mut self, report: &TestReport, now: SystemTime) {
        let interrupted = report
            .last_try()
            .and_then(TryReport::failure)
            .is_some_and(|f| f.cause == FailureCause::Interrupted);
        let outcome = if interrupted {
            "interrupted"
        } else {
            test_status_str(report.status)
        };
        if self.tests.contains_key(&report.id) {
            self.close_test(&report.id, outcome, report.last_try());
        } else if report.status == TestStatus::Skipped {
            let parent = self
                .suites
                .get(&report.id.suite)
                .map_or_else(|| self.run_span_id(), |s| s.id);
            let mut attrs = vec![
                KeyValue::new("gwtest.test", report.id.name.clone()),
                KeyValue::new("gwtest.suite", report.id.suite.clone()),
                KeyValue::new("gwtest.outcome", "skipped"),
            ];
            if let Some(r) = &report.skip_reason {
                attrs.push(KeyValue::new("gwtest.skip_reason", r.clone()));
            }
            let open = Open {
                id: crate::engine::new_span_id(),
                parent,
                name: format!("test {}", report.id),
                start: now,
                kind: SpanKind::Internal,
                attrs,
            };
            self.emit(open, now, Status::Unset, vec![]);
        }
    }

    /// The run's span closed with the counts, after whatever was still open.
    fn run_finished(&mut self, summary: &RunSummary, now: SystemTime) {
        // Whatever is still open was cut short.
        self.close_open(now);
        if let Some(r) = self.run.take() {
            let c = &summary.counts;
            let extra = vec![
                KeyValue::new("gwtest.tests.passed", c.passed as i64),
                KeyValue::new("gwtest.tests.flaky", c.flaky as i64),
                KeyValue::new("gwtest.tests.failed", c.failed as i64),
                KeyValue::new("gwtest.tests.skipped", c.skipped as i64),
                KeyValue::new("gwtest.interrupted", summary.interrupted),
            ];
            let status = if summary.interrupted {
                Status::error("interrupted")
            } else if c.failed > 0 {
                Status::error(format!("{} failed", c.failed))
            } else {
                Status::Ok
            };
            let end = r.start + summary.duration;
            self.emit(r, end, status, extra);
        }
    }
}

impl Reporter for OtlpExport {
    fn event(&mut self, e: &Event) {
        let now = SystemTime::now();
        match e {
            Event::RunStarted {
                run_id,
                trace_id,
                started,
                parallel,
                ..
            } => {
                self.trace_id = parse_id::<16>(trace_id);
                self.run = Some(Open {
                    id: crate::engine::new_span_id(),
                    parent: [0; 8],
                    name: "gwtest run".into(),
                    start: *started,
                    kind: SpanKind::Internal,
                    attrs: vec![
                        KeyValue::new("gwtest.run_id", run_id.clone()),
                        KeyValue::new("gwtest.parallel", *parallel as i64),
                    ],
                });
            }
            Event::SuiteStarted { suite, span_id } => {
                let Some(id) = parse_id::<8>(span_id) else {
                    return;
                };
                let parent = self.run_span_id();
                self.suites.insert(
                    suite.clone(),
                    Open {
                        id,
                        parent,
                        name: format!("suite {suite}"),
                        start: now,
                        kind: SpanKind::Internal,
                        attrs: vec![KeyValue::new("gwtest.suite", suite.clone())],
                    },
                );
            }
            Event::SuiteSetupFailed { suite, failure, .. } => {
                if let Some(o) = self.suites.get_mut(suite) {
                    o.attrs.push(KeyValue::new("gwtest.setup_failed", true));
                    push_failure(&mut o.attrs, failure);
                }
            }
            Event::SuiteFinished { suite, duration } => {
                if let Some(o) = self.suites.remove(suite) {
                    let failed = o
                        .attrs
                        .iter()
                        .any(|kv| kv.key.as_str() == "gwtest.setup_failed");
                    let status = if failed {
                        Status::error("suite setup failed")
                    } else {
                        Status::Unset
                    };
                    let end = o.start + *duration;
                    self.emit(o, end, status, vec![]);
                }
            }
            Event::TestStarted {
                id,
                try_no,
                namespace,
                span_id,
            } => self.test_started(id, *try_no, namespace.as_deref(), span_id, now),
            Event::StepStarted {
                id,
                index,
                phase,
                name,
                kind,
                span_id,
            } => {
                let (Some(sid), Some(test)) = (parse_id::<8>(span_id), self.tests.get(id)) else {
                    return;
                };
                let attrs = vec![
                    KeyValue::new("gwtest.step.kind", *kind),
                    KeyValue::new("gwtest.step.index", *index as i64),
                    KeyValue::new("gwtest.step.phase", phase.as_str()),
                    KeyValue::new("code.file.path", id.file.display().to_string()),
                ];
                let open = Open {
                    id: sid,
                    parent: test.id,
                    name: name.clone(),
                    start: now,
                    kind: SpanKind::Internal,
                    attrs,
                };
                self.steps.insert((id.clone(), *index), (open, *kind));
            }
            Event::Attempt { id, index, record } => self.attempt(id, *index, record),
            Event::StepFinished { id, report } => self.step_finished(id, report),
            Event::TestRetrying { id, report } => {
                self.close_test(id, "retrying", Some(report));
            }
            Event::TestFinished { report } => self.test_finished(report, now),
            Event::RunFinished { summary } => self.run_finished(summary, now),
            _ => {}
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.close_all();
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        let _ = tx.send(Cmd::Finish(deadline));
        drop(tx);
        let outcome = match self
            .done
            .recv_timeout(FLUSH_TIMEOUT + Duration::from_secs(1))
        {
            Ok(o) => o,
            Err(_) => {
                return Err(crate::report::Warning(format!(
                    "OTLP export to {}: the last spans were not sent within {}s",
                    self.endpoint,
                    FLUSH_TIMEOUT.as_secs()
                ))
                .into());
            }
        };
        if outcome.failed > 0 {
            return Err(crate::report::Warning(format!(
                "OTLP export to {}: {} of {} spans not exported: {}",
                self.endpoint,
                outcome.failed,
                self.sent,
                outcome.first_error.unwrap_or_default()
            ))
            .into());
        }
        Ok(())
    }
}

impl Drop for OtlpExport {
    fn drop(&mut self) {
        // Without finish(): let the thread end (it sends what it has, bounded).
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Cmd::Finish(
                tokio::time::Instant::now() + Duration::from_secs(2),
            ));
        }
    }
}

/// The exporter `--otlp-export` sends with (public for benches/otlp_batch.rs, which compares
/// batch processors around this same exporter). gRPC needs a Tokio runtime to build in.
pub fn build_exporter(
    url: &str,
    protocol: ExportProtocol,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    // Compression, headers and the timeout are left to opentelemetry-otlp, which reads the
    // OTEL_EXPORTER_OTLP_* variables for them (a programmatic value would override them).
    let built = match protocol {
        ExportProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .build(),
        ExportProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
    };
    let mut exporter = built.map_err(|e| e.to_string())?;
    exporter.set_resource(&resource());
    Ok(exporter)
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, telemetry.sdk.*),
/// with `service.name` gwtest when the environment does not name the service.
fn resource() -> Resource {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES (the SDK's
    // detectors would let the attributes win).
    let name = env("OTEL_SERVICE_NAME").or_else(|| {
        let attrs = env("OTEL_RESOURCE_ATTRIBUTES")?;
        attrs.split(',').find_map(|kv| {
            kv.trim()
                .strip_prefix("service.name=")
                .map(|v| v.trim().to_owned())
        })
    });
    Resource::builder()
        .with_service_name(name.unwrap_or_else(|| "gwtest".into()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

fn export_thread(
    url: String,
    protocol: ExportProtocol,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    done: std::sync::mpsc::Sender<Outcome>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start a runtime: {e}")));
            return;
        }
    };
    crate::install_crypto_provider();
    rt.block_on(async move {
        let exporter = match build_exporter(&url, protocol) {
            Ok(e) => e,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let mut out = Outcome::default();
        let mut buf: Vec<SpanData> = Vec::new();
        let mut flush_at: Option<tokio::time::Instant> = None;
        let mut finish: Option<tokio::time::Instant> = None;
        loop {
            let timer = async {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let mut closed = false;
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Span(s)) => {
                        buf.push(*s);
                        flush_at.get_or_insert_with(|| tokio::time::Instant::now() + BATCH_DELAY);
                        if buf.len() < BATCH {
                            continue;
                        }
                        // Take what is queued before exporting, so that a `Finish` behind a
                        // burst is seen now and its deadline bounds the exports that follow
                        // (a slow or failing endpoint would otherwise hold it back one batch
                        // at a time).
                        while let Ok(cmd) = rx.try_recv() {
                            match cmd {
                                Cmd::Span(s) => buf.push(*s),
                                Cmd::Finish(d) => {
                                    finish = Some(d);
                                    closed = true;
                                    break;
                                }
                            }
                        }
                    }
                    Some(Cmd::Finish(d)) => {
                        finish = Some(d);
                        // Take whatever is already queued behind it, then stop.
                        while let Ok(Cmd::Span(s)) = rx.try_recv() {
                            buf.push(*s);
                        }
                        closed = true;
                    }
                    None => closed = true,
                },
                _ = timer => {}
            }
            while !buf.is_empty() {
                let n = buf.len().min(BATCH);
                let batch: Vec<SpanData> = buf.drain(..n).collect();
                let deadline = match finish {
                    Some(d) => d.min(tokio::time::Instant::now() + EXPORT_TIMEOUT),
                    None => tokio::time::Instant::now() + EXPORT_TIMEOUT,
                };
                let failed = match tokio::time::timeout_at(deadline, exporter.export(batch)).await {
                    Ok(Ok(())) => {
                        out.exported += n;
                        false
                    }
                    Ok(Err(e)) => {
                        out.failed += n;
                        out.first_error.get_or_insert_with(|| e.to_string());
                        true
                    }
                    Err(_) => {
                        out.failed += n;
                        out.first_error.get_or_insert_with(|| {
                            format!("no answer within {}s", EXPORT_TIMEOUT.as_secs())
                        });
                        true
                    }
                };
                if !closed {
                    break;
                }
                // On the final flush, a batch that failed (after the exporter's own retries)
                // means the rest would fail the same way: count them with its error at once
                // rather than spend the flush deadline retrying each (measured: a closed port
                // held a 10,000-span flush to its 10 s deadline and the warning lost the cause).
                let out_of_time = finish.is_some_and(|d| tokio::time::Instant::now() >= d);
                if (failed || out_of_time) && !buf.is_empty() {
                    out.failed += buf.len();
                    out.first_error
                        .get_or_insert_with(|| "flush deadline reached".into());
                    buf.clear();
                }
            }
            flush_at = (!buf.is_empty()).then(|| tokio::time::Instant::now() + BATCH_DELAY);
            if closed {
                break;
            }
        }
        let _ = exporter.shutdown_with_timeout(Duration::from_secs(1));
        let _ = done.send(out);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(attrs: &'a [KeyValue], k: &str) -> Option<&'a opentelemetry::Value> {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| &kv.value)
    }

    #[test]
    fn attempts_follow_the_http_client_conventions() {
        let h = HttpAttempt {
            method: "GET".into(),
            url: "http://user:secret@127.0.0.1:8080/a?b=1".into(),
            status: Some(503),
        };
        let (name, a, err) = http_client_span(&h, Some(Class::Status));
        assert_eq!(name, "GET");
        assert_eq!(attr(&a, "http.request.method").unwrap().as_str(), "GET");
        assert_eq!(
            attr(&a, "url.full").unwrap().as_str(),
            "http://REDACTED:REDACTED@127.0.0.1:8080/a?b=1"
        );
        assert_eq!(attr(&a, "server.address").unwrap().as_str(), "127.0.0.1");
        assert_eq!(
            attr(&a, "server.port"),
            Some(&opentelemetry::Value::I64(8080))
        );
        assert_eq!(
            attr(&a, "http.response.status_code"),
            Some(&opentelemetry::Value::I64(503))
        );
        assert_eq!(attr(&a, "error.type").unwrap().as_str(), "503");
        assert_eq!(err.as_deref(), Some("503"));

        let h = HttpAttempt {
            method: "PURGE".into(),
            url: "https://gw.example/".into(),
            status: None,
        };
        let (name, a, _) = http_client_span(&h, Some(Class::Timeout));
        assert_eq!(name, "HTTP");
        assert_eq!(attr(&a, "http.request.method").unwrap().as_str(), "_OTHER");
        assert_eq!(
            attr(&a, "http.request.method_original").unwrap().as_str(),
            "PURGE"
        );
        assert_eq!(
            attr(&a, "server.port"),
            Some(&opentelemetry::Value::I64(443))
        );
        assert!(attr(&a, "http.response.status_code").is_none());
        assert_eq!(attr(&a, "error.type").unwrap().as_str(), "timeout");

        let ok = HttpAttempt {
            method: "POST".into(),
            url: "http://h/".into(),
            status: Some(200),
        };
        let (_, a, err) = http_client_span(&ok, None);
        assert!(attr(&a, "error.type").is_none() && err.is_none());
    }
}
