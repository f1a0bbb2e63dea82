//! The `spans` step: checks on the spans the system under test sent to the run's OTLP
//! receiver, run by the retry engine (spans arrive late) and woken as soon as new spans land.

use std::sync::Arc;

use super::{StepCtx, StepResult, failure_from};
use crate::engine::hex;
use crate::engine::retry;
use crate::suite::model::{SpansSpec, TraceSelector};
use crate::traces::matcher::{self, ExpectedSpan, NameMatch, SpanQuery};
use crate::traces::{Selection, SpanStore};

pub async fn run(spec: &SpansSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let Some(store) = ctx.run.spans.clone() else {
        return StepResult::error(
            "this spans step needs the OTLP receiver, and it is not running in this run",
        );
    };
    let query = match resolve(spec, ctx) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let selection = match selection(spec, ctx) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let since = ctx.state.spans_since;
    let mut limits = ctx.limits.clone();
    limits.wake = Some(store.subscribe());
    let pending = format!("waiting for spans ({})", describe_selection(&selection));
    let mut observer = ctx.observer();
    let result = retry::eventually(&ctx.policy, &limits, &pending, &mut observer, |_| {
        let r = matcher::check(&query, &store, &selection, since);
        async move { r }
    })
    .await;
    match result {
        Ok((_, history)) => StepResult::passed(history.attempts),
        Err(gave_up) => {
            let mut f = failure_from(&gave_up, &ctx.limits);
            f.expected = Some(format!(
                "{} in {}",
                query.describe(),
                describe_selection(&selection)
            ));
            f.hints.extend(hints(&gave_up, &store, ctx));
            StepResult::failed(gave_up.history.attempts, f)
        }
    }
}

/// The trace a `spans` step looks at.
fn selection(spec: &SpansSpec, ctx: &StepCtx<'_>) -> Result<Selection, StepResult> {
    Ok(match spec.trace {
        TraceSelector::Any => Selection::Since(ctx.state.spans_since),
        TraceSelector::LastRequest => {
            let Some(t) = ctx.state.last_request else {
                return Err(StepResult::error(
                    "`trace: last-request` needs a request step before this spans step in the \
                     same test; use `trace: any` to check every span received during the test",
                ));
            };
            // When the run is exported every request shares the run's trace id: only the
            // spans under the deciding attempt belong to this request.
            if ctx.run.exporting && t.trace_id == ctx.run.trace_id {
                Selection::Subtree {
                    trace_id: t.trace_id,
                    root: t.span_id,
                }
            } else {
                Selection::Trace {
                    trace_id: t.trace_id,
                    request: Some(t.span_id),
                }
            }
        }
    })
}

fn describe_selection(s: &Selection) -> String {
    match s {
        Selection::Trace { trace_id, .. } => {
            format!("trace {} of the last request", hex(trace_id))
        }
        Selection::Subtree { trace_id, root } => format!(
            "trace {} under the last request's span {}",
            hex(trace_id),
            hex(root)
        ),
        Selection::Since(_) => "the spans received during this test".into(),
    }
}

/// The spec with every variable substituted and every regex compiled.
fn resolve(spec: &SpansSpec, ctx: &StepCtx<'_>) -> Result<SpanQuery, StepResult> {
    let vars = &*ctx.vars;
    let service = spec.service.as_ref().map(|t| vars.expand(t)).transpose()?;
    let mut expect = Vec::with_capacity(spec.expect.len());
    for e in &spec.expect {
        let name = match (&e.name, &e.name_matches) {
            (Some(n), None) => NameMatch::Exact(vars.expand(n)?),
            (None, Some(p)) => NameMatch::Regex(super::compile(p, vars)?),
            _ => {
                return Err(StepResult::error(format!(
                    "a spans expectation needs exactly one of name, name-matches (at {})",
                    e.loc
                )));
            }
        };
        let mut attributes = Vec::with_capacity(e.attributes.len());
        for (k, v) in e.attributes.iter() {
            attributes.push((k.value.clone(), vars.expand_node(v)?));
        }
        expect.push(ExpectedSpan {
            name,
            kind: e.kind,
            attributes,
            count: e.count,
            parent: e.parent.as_ref().map(|t| vars.expand(t)).transpose()?,
            cel: e
                .cel
                .iter()
                .map(|c| crate::matching::cel::Check::prepare(c, vars))
                .collect::<Result<Vec<_>, _>>()
                .map_err(StepResult::error)?,
        });
    }
    let absent = spec
        .absent
        .iter()
        .map(|t| vars.expand(t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SpanQuery {
        service,
        expect,
        absent,
    })
}

fn hints<T>(g: &retry::GaveUp<T>, store: &Arc<SpanStore>, ctx: &StepCtx<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if g.class() == Some(retry::Class::NoTrace) {
        if store.total_received() == 0 {
            match &ctx.run.otlp {
                Some(e) => out.push(format!(
                    "point the system under test's OTLP exporter at {} (gRPC) or {}/v1/traces (HTTP)",
                    e.grpc, e.http
                )),
                None => out.push(
                    "point the system under test's OTLP exporter at ${otlp.grpc} or ${otlp.http}"
                        .into(),
                ),
            }
        } else {
            out.push(
                "spans arrive, but not for this request: does the system under test continue \
                 the incoming traceparent header?"
                    .into(),
            );
        }
    }
    if store.evicted() > 0 {
        out.push(format!(
            "{} spans were evicted from the span store (cap {}): raise --max-spans",
            store.evicted(),
            store.cap()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RunContext;
    use crate::engine::events::{EventSink, TestKey};
    use crate::engine::retry::{Class, Limits, Policy, SectionKind};
    use crate::steps::{RequestTrace, TestState};
    use crate::suite::model::Step;
    use crate::suite::spanned::Loc;
    use crate::suite::vars::Vars;
    use crate::traces::store::StoredSpan;
    use std::time::Duration;

    fn step(yaml: &str) -> Step {
        serde_saphyr::from_str(yaml).expect("step parses")
    }

    /// A test whose last request sent this trace context.
    fn after_request(trace_id: [u8; 16], span_id: [u8; 8]) -> TestState {
        TestState {
            last_request: Some(RequestTrace { trace_id, span_id }),
            ..TestState::default()
        }
    }

    fn run_ctx(store: Option<Arc<SpanStore>>, exporting: bool) -> Arc<RunContext> {
        let config = crate::config::RunConfig::resolve(
            &crate::cli::RunArgs::default(),
            std::path::Path::new("/"),
        )
        .expect("default config");
        let mut rc = RunContext::local(config, EventSink::discard());
        rc.spans = store;
        rc.exporting = exporting;
        Arc::new(rc)
    }

    fn span(trace: [u8; 16], id: u8, parent: [u8; 8], name: &str) -> StoredSpan {
        StoredSpan {
            seq: 0,
            trace_id: trace,
            span_id: [id; 8],
            parent_span_id: Some(parent),
            name: Arc::from(name),
            kind: Some(crate::suite::model::SpanKind::Server),
            service: Some(Arc::from("demo-gateway")),
            attributes: Box::new([]),
            start_unix_nano: 0,
            end_unix_nano: 0,
            status: Default::default(),
        }
    }

    async fn run_step(
        s: &Step,
        run: &Arc<RunContext>,
        state: &mut TestState,
        timeout: Duration,
    ) -> StepResult {
        let id = Arc::new(TestKey {
            suite: "s".into(),
            name: "t".into(),
            file: "t.test.yaml".into(),
            loc: Loc::UNKNOWN,
            repeat: 0,
        });
        let mut vars = Vars::new();
        vars.set("svc", "demo-gateway");
        let policy = Policy {
            timeout,
            interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(5),
            consecutive: 1,
            hold: None,
        };
        let limits = Limits::starting_now(timeout, Duration::from_secs(60), run.cancel.clone());
        let mut ctx = StepCtx {
            test: &id,
            index: 0,
            step: s,
            loc: Loc::UNKNOWN,
            file: std::path::Path::new("t.test.yaml"),
            vars: &mut vars,
            policy,
            attempt_timeout: Duration::from_secs(1),
            limits,
            run,
            state,
            events: &run.events,
        };
        crate::steps::run(&mut ctx).await
    }

    const SPEC: &str = r#"
spans:
  service: ${svc}
  expect:
    - name: GET /example
      kind: server
"#;

    #[tokio::test]
    async fn late_spans_pass_and_wake_the_step_before_its_backoff() {
        let store = Arc::new(SpanStore::new(100));
        let run = run_ctx(Some(store.clone()), false);
        let mut state = after_request([3; 16], [4; 8]);
        let s2 = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            s2.insert(vec![span([9; 16], 1, [4; 8], "GET /example")]);
            tokio::time::sleep(Duration::from_millis(50)).await;
            s2.insert(vec![span([3; 16], 2, [4; 8], "GET /example")]);
        });
        let t0 = std::time::Instant::now();
        let r = run_step(&step(SPEC), &run, &mut state, Duration::from_secs(10)).await;
        assert!(r.failure.is_none(), "{:?}", r.failure);
        // The interval is 5s: only the store's wake-up can make it pass this early.
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(r.attempts >= 2, "{}", r.attempts);
    }

    #[tokio::test]
    async fn failures_say_what_was_seen() {
        let store = Arc::new(SpanStore::new(100));
        store.insert(vec![span([3; 16], 2, [4; 8], "GET /exampel")]);
        let run = run_ctx(Some(store.clone()), false);
        let mut state = after_request([3; 16], [4; 8]);
        let r = run_step(&step(SPEC), &run, &mut state, Duration::from_millis(300)).await;
        let f = r.failure.expect("fails");
        assert_eq!(f.class, Some(Class::MissingSpan));
        assert!(
            f.headline.contains(r#"closest: "GET /exampel""#),
            "{}",
            f.headline
        );
        assert!(f.sections.iter().any(|s| s.kind == SectionKind::SpansSeen));
        let expected = f.expected.unwrap();
        assert!(
            expected.contains(r#"from service "demo-gateway""#),
            "{expected}"
        );
    }

    #[tokio::test]
    async fn exported_runs_look_only_under_the_deciding_attempt() {
        let store = Arc::new(SpanStore::new(100));
        let run = run_ctx(Some(store.clone()), true);
        let t = run.trace_id;
        // An earlier attempt's span in the same (run) trace must not count.
        store.insert(vec![span(t, 1, [5; 8], "GET /example")]);
        let mut state = after_request(t, [6; 8]);
        let r = run_step(&step(SPEC), &run, &mut state, Duration::from_millis(200)).await;
        let f = r.failure.expect("fails");
        assert_eq!(f.class, Some(Class::NoTrace));
        store.insert(vec![span(t, 2, [6; 8], "GET /example")]);
        let r = run_step(&step(SPEC), &run, &mut state, Duration::from_millis(200)).await;
        assert!(r.failure.is_none(), "{:?}", r.failure);
    }

    #[tokio::test]
    async fn last_request_without_a_request_step_is_a_clear_error() {
        let run = run_ctx(Some(Arc::new(SpanStore::new(10))), false);
        let mut state = TestState::default();
        let r = run_step(&step(SPEC), &run, &mut state, Duration::from_millis(200)).await;
        let f = r.failure.expect("fails");
        assert_eq!(r.attempts, 0);
        assert!(
            f.headline.contains("needs a request step before"),
            "{}",
            f.headline
        );
        let no_receiver = run_ctx(None, false);
        let r = run_step(
            &step(SPEC),
            &no_receiver,
            &mut state,
            Duration::from_millis(200),
        )
        .await;
        assert!(r.failure.unwrap().headline.contains("OTLP receiver"));
    }

    #[tokio::test]
    async fn no_trace_hints_at_the_receiver_endpoints() {
        let store = Arc::new(SpanStore::new(10));
        let mut rc = RunContext::local(
            crate::config::RunConfig::resolve(&Default::default(), std::path::Path::new("/"))
                .unwrap(),
            EventSink::discard(),
        );
        rc.spans = Some(store);
        rc.otlp = Some(crate::engine::OtlpEndpoints {
            grpc: "http://127.0.0.1:4317".into(),
            http: "http://127.0.0.1:4318".into(),
        });
        let run = Arc::new(rc);
        let mut state = after_request([3; 16], [4; 8]);
        let r = run_step(&step(SPEC), &run, &mut state, Duration::from_millis(150)).await;
        let f = r.failure.unwrap();
        assert_eq!(f.class, Some(Class::NoTrace));
        assert!(
            f.headline.contains("the exporter never reached it"),
            "{}",
            f.headline
        );
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("http://127.0.0.1:4317 (gRPC)")),
            "{:?}",
            f.hints
        );
    }
}
