//! One try of one test, in phases: its namespace (`open_namespace`), its steps in order under
//! the test deadline (`run_steps_bounded`), what a failure leaves for people before anything
//! is removed (`after_failure`: pause, failure bundle), then cleanup (`clean_up`: always,
//! bounded by cleanup-timeout; the test's own namespace goes in the background).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::RunContext;
use super::cleanup::{
    CleanupError, Owner, delete_objects, request_namespace_deletion, wait_namespace_gone,
};
use super::cluster_retry::{OpError, call_until, limits_until};
use super::events::{
    CleanupReport, Event, Failure, FailureCause, StepReport, StepStatus, TestId, TryReport,
};
use super::retry::{Limits, Policy};
use crate::cluster::{Cluster, Kind, is_deleting};
use crate::steps::{self, RequestTrace, StepCtx, TestState};
use crate::suite::load::{Suite, Test};
use crate::suite::model::{Action, Step};
use crate::suite::vars::Vars;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Request steps want a few good answers in a row by default: one lucky answer proves little.
pub const DEFAULT_REQUEST_CONSECUTIVE: u32 = 3;
/// If a step ignores its deadline (a bug), the test still ends this long after it.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// Where a suite's tests put their objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new namespace per test (default).
    PerTest,
    /// One namespace shared by every test of the suite (per-suite, or a fixed name).
    Shared(String),
}

/// What a suite's tests share once its setup ran.
#[derive(Clone, Debug)]
pub struct SuiteEnv {
    pub suite: Arc<Suite>,
    /// Suite variables (resolved), --var and the suite-level built-ins; the per-test ones come
    /// on top.
    pub vars: Vars,
    pub namespace: NamespaceMode,
}

fn scale(d: Duration, f: f64) -> Duration {
    d.mul_f64(f)
}

/// The retry policy of a step after step keys, suite defaults, built-ins, `--timeout-scale`.
pub fn policy_for(step: &Step, suite: &Suite, timeout_scale: f64) -> Policy {
    let d = &suite.doc.defaults;
    let pick = |s: Option<crate::suite::spanned::Dur>,
                s2: Option<crate::suite::spanned::Dur>,
                def: Duration| { s.or(s2).map_or(def, |x| x.0) };
    let default_consecutive = if matches!(step.action, Action::Request(_)) {
        DEFAULT_REQUEST_CONSECUTIVE
    } else {
        1
    };
    Policy {
        timeout: scale(
            pick(step.timeout, d.timeout, DEFAULT_TIMEOUT),
            timeout_scale,
        ),
        interval: pick(step.interval, d.interval, DEFAULT_INTERVAL),
        max_interval: pick(step.max_interval, d.max_interval, DEFAULT_MAX_INTERVAL),
        consecutive: step
            .consecutive
            .or(d.consecutive)
            .unwrap_or(default_consecutive)
            .max(1),
        hold: step.hold.map(|h| h.0),
    }
}

pub fn test_timeout(test: &Test, suite: &Suite, timeout_scale: f64) -> Duration {
    let t = test
        .doc
        .timeout
        .or(suite.doc.defaults.test_timeout)
        .map_or(DEFAULT_TEST_TIMEOUT, |d| d.0);
    scale(t, timeout_scale)
}

pub fn cleanup_timeout(suite: &Suite, timeout_scale: f64) -> Duration {
    scale(
        suite
            .doc
            .defaults
            .cleanup_timeout
            .map_or(DEFAULT_CLEANUP_TIMEOUT, |d| d.0),
        timeout_scale,
    )
}

fn attempt_timeout(suite: &Suite, timeout_scale: f64) -> Duration {
    scale(
        suite
            .doc
            .defaults
            .attempt_timeout
            .map_or(DEFAULT_ATTEMPT_TIMEOUT, |d| d.0),
        timeout_scale,
    )
}

fn not_run(index: usize, step: &crate::suite::spanned::Spanned<Step>) -> StepReport {
    StepReport {
        index,
        name: step.value.display_name(),
        kind: step.value.kind(),
        loc: step.loc,
        status: StepStatus::NotRun,
        duration: Duration::ZERO,
        attempts: 0,
        timeout: None,
        failure: None,
    }
}

/// The built-in variables (DESIGN §1.5, `suite::vars::BUILTINS`) of the run and a suite:
/// `run`, `suite`, `kubeconfig`, `otlp.grpc`, `otlp.http`. The only place they are set; a
/// test try adds its own ([`test_vars`]), a shared namespace its `namespace`.
pub fn suite_builtins(ctx: &RunContext, suite: &str, vars: &mut Vars) {
    vars.set("run", ctx.run_id.clone());
    vars.set("suite", suite.to_owned());
    if let Some(k) = &ctx.kubeconfig {
        vars.set("kubeconfig", k.display().to_string());
    }
    if let Some(o) = &ctx.otlp {
        vars.set("otlp.grpc", o.grpc.clone());
        vars.set("otlp.http", o.http.clone());
    }
}

/// The variables of one test try: the suite's (built-ins included) plus `test`, `unique` and
/// the test's `namespace`.
fn test_vars(env: &SuiteEnv, test: &Test, namespace: Option<&str>) -> Vars {
    let mut vars = env.vars.clone();
    vars.set("test", test.name.clone());
    vars.set("unique", crate::util::random_suffix(6));
    if let Some(ns) = namespace {
        vars.set("namespace", ns.to_owned());
    }
    vars
}

/// Run one try of a test: its namespace, its steps under the test deadline, what a failure
/// leaves for people (pause, failure bundle), then cleanup. The try's slot is free when this
/// returns; its namespace may still be terminating in the background (the run's `Reaper`).
pub async fn run_try(
    ctx: &Arc<RunContext>,
    env: &SuiteEnv,
    test: &Test,
    id: &TestId,
    try_no: u32,
) -> TryReport {
    let suite = &env.suite;
    let started = Instant::now();
    let test_timeout = test_timeout(test, suite, ctx.config.timeout_scale);
    let deadline = started + test_timeout;
    let test_span = super::new_span_id();

    let t = Try {
        ctx,
        env,
        test,
        id,
        try_no,
        test_timeout,
    };
    let mut state = TestState {
        spans_since: ctx.spans.as_ref().map_or(0, |s| s.position()),
        ..TestState::default()
    };
    let mut setup_error = open_namespace(&t, &mut state, deadline).await;
    ctx.events.emit(Event::TestStarted {
        id: id.clone(),
        try_no,
        namespace: state.namespace.clone(),
        span_id: super::hex(&test_span),
    });
    let mut vars = test_vars(env, test, state.namespace.as_deref());

    let mut reports: Vec<StepReport> = Vec::with_capacity(test.doc.steps.len());
    if setup_error.is_none() {
        run_steps_bounded(&t, &mut vars, &mut state, deadline, &mut reports).await;
    }
    for (i, step) in test.doc.steps.iter().enumerate().skip(reports.len()) {
        reports.push(not_run(i, step));
    }
    // Stopped by Ctrl-C between steps: the steps left did not run, so the test did not pass.
    if setup_error.is_none()
        && ctx.cancel.is_cancelled()
        && !reports.iter().any(|r| r.status == StepStatus::Failed)
        && reports.iter().any(|r| r.status == StepStatus::NotRun)
    {
        setup_error = Some(Failure::new(
            FailureCause::Interrupted,
            None,
            "interrupted before every step ran",
        ));
    }
    let failed = setup_error.is_some() || reports.iter().any(|r| r.status == StepStatus::Failed);
    if failed {
        after_failure(&t, &vars, &state, started, &mut reports, &mut setup_error).await;
    }
    let duration = started.elapsed();

    let (cleanup, cleanup_error) = clean_up(&t, &state, failed).await;
    // The reproduce commands of a failure may name the namespace cleanup is deleting.
    if failed && let Some(ns) = cleanup.as_ref().and_then(|c| c.background.as_deref()) {
        crate::debug::diagnostics::namespace_deleted(&mut reports, &mut setup_error, ns);
    }
    let error = setup_error.or(cleanup_error);
    let passed = !failed && error.is_none();
    TryReport {
        passed,
        duration,
        steps: reports,
        error,
        namespace: state.namespace,
        cleanup,
    }
}

/// What the phases of one try share.
struct Try<'a> {
    ctx: &'a Arc<RunContext>,
    env: &'a SuiteEnv,
    test: &'a Test,
    id: &'a TestId,
    try_no: u32,
    test_timeout: Duration,
}

/// The try's namespace: the suite's shared one, or a new one, created (retrying transient
/// errors) before the test's deadline or Ctrl-C. An error is the try's failure.
async fn open_namespace(t: &Try<'_>, state: &mut TestState, deadline: Instant) -> Option<Failure> {
    let (ctx, env, test) = (t.ctx, t.env, t.test);
    if !test.needs_cluster() {
        return None;
    }
    match (&env.namespace, &ctx.cluster) {
        (NamespaceMode::Shared(ns), _) => {
            state.namespace = Some(ns.clone());
            None
        }
        (NamespaceMode::PerTest, Some(cluster)) => {
            let ns = crate::cluster::namespace_name(&test.name);
            let limits = limits_until(deadline, Some(ctx.cancel.clone()));
            match create_namespace(cluster, &ns, &ctx.run_id, &[], &limits).await {
                Ok(()) => {
                    state.namespace = Some(ns);
                    None
                }
                Err(e) => {
                    // Maybe created before the answer was lost: cleanup removes it too.
                    state.namespace = Some(ns);
                    Some(Failure::error(format!(
                        "cannot create the test namespace: {e}"
                    )))
                }
            }
        }
        (NamespaceMode::PerTest, None) => Some(Failure::error(
            "this test needs a cluster, and none is connected",
        )),
    }
}

/// Create a namespace labelled with the run, retrying transient errors (an API server
/// restarting) until `limits` run out. A retry that finds the namespace already there with our
/// run's label is our own earlier attempt, whose answer was lost.
pub async fn create_namespace(
    cluster: &Cluster,
    ns: &str,
    run: &str,
    annotations: &[(String, String)],
    limits: &Limits,
) -> Result<(), OpError> {
    let what = format!("creating namespace {ns}");
    let attempt = || async {
        match cluster.create_namespace(ns, run, annotations).await {
            Err(e) if e.code() == Some(409) => {
                let ours = cluster
                    .get(&Kind::namespace(), None, ns)
                    .await?
                    .is_some_and(|n| run_of(&n) == Some(run) && !is_deleting(&n));
                if ours { Ok(Ok(())) } else { Ok(Err(e)) }
            }
            Err(e) => Err(e),
            Ok(_) => Ok(Ok(())),
        }
    };
    match call_until(&what, limits, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(OpError::Refused { what, error }),
        Err(e) => Err(e),
    }
}

/// The run label of an object.
pub fn run_of(o: &serde_json::Value) -> Option<&str> {
    o.pointer("/metadata/labels")
        .and_then(|l| l.get(crate::cluster::RUN_LABEL))
        .and_then(serde_json::Value::as_str)
}

/// Steps in order under the test deadline, which `pause:` steps move later; a step that
/// overruns the deadline (a bug) is cut and recorded as a test-timeout.
async fn run_steps_bounded(
    t: &Try<'_>,
    vars: &mut Vars,
    state: &mut TestState,
    deadline: Instant,
    reports: &mut Vec<StepReport>,
) {
    let (ctx, test, id, test_timeout) = (t.ctx, t.test, t.id, t.test_timeout);
    let started = Instant::now();
    // The deadline moves later by the time spent in `pause:` steps: a person decides.
    let moving = std::sync::Mutex::new(deadline);
    let steps_run = run_steps(t, vars, state, &moving, reports);
    // A safety net for a step that ignores its deadline (a bug): it follows the moves.
    let overrun = async {
        loop {
            let d = *moving.lock().expect("poisoned") + DEADLINE_GRACE;
            tokio::time::sleep_until(d).await;
            if Instant::now() >= *moving.lock().expect("poisoned") + DEADLINE_GRACE {
                return;
            }
        }
    };
    let overran = tokio::select! {
        _ = steps_run => false,
        _ = overrun => true,
    };
    if !overran {
        return;
    }
    // A step overran its deadline: record it as a test-timeout on the running step.
    let i = reports.len();
    if let Some(step) = test.doc.steps.get(i) {
        let mut r = not_run(i, step);
        r.status = StepStatus::Failed;
        r.duration = started.elapsed();
        r.failure = Some(Failure::new(
            FailureCause::TestTimeout,
            None,
            format!(
                "test-timeout ({}) reached and the step did not stop within {}s",
                crate::util::fmt_duration(test_timeout),
                DEADLINE_GRACE.as_secs()
            ),
        ));
        ctx.events.emit(Event::StepFinished {
            id: id.clone(),
            report: r.clone(),
        });
        reports.push(r);
    }
}

/// A failed try, before cleanup, with everything still in place: pause for a person
/// (`--pause-on-failure`), the cluster side of the failure bundle (`--artifacts`), and the
/// suite's diagnostics collectors (with the port-forward commands for the reproduce lines),
/// noted on the failure.
async fn after_failure(
    t: &Try<'_>,
    vars: &Vars,
    state: &TestState,
    started: Instant,
    reports: &mut [StepReport],
    setup_error: &mut Option<Failure>,
) {
    let (ctx, id, try_no) = (t.ctx, t.id, t.try_no);
    // Not bounded by the test deadline: a person is looking; Enter or Ctrl-C ends it.
    if ctx.config.pause_on_failure
        && !ctx.cancel.is_cancelled()
        && let Some(step) = reports.iter().find(|r| r.status == StepStatus::Failed)
    {
        crate::debug::pause::on_failure(ctx, id, state.namespace.as_deref(), &state.tracked, step)
            .await;
    }
    if let (Some(root), Some(cluster), Some(ns)) = (
        &ctx.config.artifacts,
        &ctx.cluster,
        state.namespace.as_deref(),
    ) {
        let dir = crate::debug::bundle::dir_for(root, id, try_no);
        if let Err(e) =
            crate::debug::bundle::dump_namespace(cluster, ns, &dir, ctx.config.show_secrets).await
        {
            ctx.events.emit(Event::Notice {
                id: Some(id.clone()),
                message: format!("failure bundle: {e:#}"),
            });
        }
    }
    let try_started = std::time::SystemTime::now() - started.elapsed();
    crate::debug::diagnostics::on_failure(
        ctx,
        &t.env.suite,
        t.test,
        id,
        try_no,
        vars,
        state.namespace.as_deref(),
        try_started,
        reports,
        setup_error,
    )
    .await;
}

/// Whether `--keep` keeps what a try (or a suite) made.
pub fn keep(ctx: &RunContext, failed: bool) -> bool {
    match ctx.config.keep {
        crate::cli::Keep::Always => true,
        crate::cli::Keep::OnFailure => failed,
        crate::cli::Keep::Never => false,
    }
}

/// Cleanup of one try, also after Ctrl-C: what another test could collide with (objects
/// outside the test's own namespace, or in a shared one) is deleted and waited for now; the
/// test's own namespace is deleted in the background. Returns what it did, and a failure when
/// something it waited for is still there.
async fn clean_up(
    t: &Try<'_>,
    state: &TestState,
    failed: bool,
) -> (Option<CleanupReport>, Option<Failure>) {
    let (ctx, env, id, try_no) = (t.ctx, t.env, t.id, t.try_no);
    let Some(cluster) = &ctx.cluster else {
        return (None, None);
    };
    if keep(ctx, failed) {
        if let Some(ns) = state.namespace.as_deref() {
            ctx.events.emit(Event::Kept {
                id: id.clone(),
                namespace: ns.to_owned(),
                commands: crate::cluster::inspect_commands(
                    ns,
                    &ctx.kubectl_flags(),
                    &state.tracked,
                ),
            });
        }
        return (None, None);
    }
    let own_ns = matches!(env.namespace, NamespaceMode::PerTest)
        .then_some(())
        .and(state.namespace.clone());
    if own_ns.is_none() && state.tracked.is_empty() {
        return (None, None);
    }
    let started = Instant::now();
    let deadline = started + cleanup_timeout(&env.suite, ctx.config.timeout_scale);
    let limits = limits_until(deadline, None);
    let mut problems = delete_objects(cluster, &state.tracked, own_ns.as_deref(), &limits).await;
    if let Some(ns) = own_ns.clone() {
        // Requested now (one call), so a test's namespace is Terminating before the next test
        // takes the slot; waited for in the background.
        match request_namespace_deletion(cluster, &ns, &limits).await {
            Err(p) => problems.push(p),
            Ok(()) => {
                let (cluster, inside) = (cluster.clone(), state.tracked.clone());
                let owner = Owner {
                    test: Some((id.clone(), try_no)),
                    suite: env.suite.name.clone(),
                };
                ctx.reaper
                    .spawn(&ctx.events, owner, format!("namespace {ns}"), async move {
                        let limits = limits_until(deadline, None);
                        wait_namespace_gone(&cluster, &ns, &inside, &limits)
                            .await
                            .map_err(|p| CleanupError(vec![p]))
                    });
            }
        }
    }
    let report = CleanupReport {
        duration: started.elapsed(),
        background: own_ns,
    };
    let error = CleanupError::check(problems)
        .err()
        .map(|e| Failure::error(format!("cleanup failed: {e}")));
    (Some(report), error)
}

async fn run_steps(
    t: &Try<'_>,
    vars: &mut Vars,
    state: &mut TestState,
    moving_deadline: &std::sync::Mutex<Instant>,
    reports: &mut Vec<StepReport>,
) {
    let (ctx, test, id, test_timeout) = (t.ctx, t.test, t.id, t.test_timeout);
    let suite = &t.env.suite;
    let attempt_timeout = attempt_timeout(suite, ctx.config.timeout_scale);
    for (index, step) in test.doc.steps.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            return;
        }
        let span_id = super::new_span_id();
        state.step_span = ctx.exporting.then_some(RequestTrace {
            trace_id: ctx.trace_id,
            span_id,
        });
        let name = step.value.display_name();
        ctx.events.emit(Event::StepStarted {
            id: id.clone(),
            index,
            name: name.clone(),
            kind: step.value.kind(),
            span_id: super::hex(&span_id),
        });
        let started = Instant::now();
        let deadline = *moving_deadline.lock().expect("poisoned");
        let policy = policy_for(&step.value, suite, ctx.config.timeout_scale);
        let limits = Limits::for_step(
            started,
            policy.timeout,
            deadline,
            test_timeout,
            ctx.cancel.clone(),
        );
        let result = if started >= deadline {
            steps::StepResult::failed(
                0,
                Failure::new(
                    FailureCause::TestTimeout,
                    None,
                    format!(
                        "test-timeout ({}) reached before this step started",
                        crate::util::fmt_duration(test_timeout)
                    ),
                ),
            )
        } else {
            let mut sctx = StepCtx {
                test: id,
                index,
                step: &step.value,
                loc: step.loc,
                file: &test.file,
                vars,
                policy,
                attempt_timeout,
                limits,
                run: ctx,
                state,
                events: &ctx.events,
            };
            steps::run(&mut sctx).await
        };
        let status = match (&result.failure, result.skipped) {
            (Some(_), _) => StepStatus::Failed,
            (None, true) => StepStatus::Skipped,
            (None, false) => StepStatus::Passed,
        };
        let report = StepReport {
            index,
            name,
            kind: step.value.kind(),
            loc: step.loc,
            status,
            duration: started.elapsed(),
            attempts: result.attempts,
            timeout: Some(policy.timeout),
            failure: result.failure,
        };
        ctx.events.emit(Event::StepFinished {
            id: id.clone(),
            report: report.clone(),
        });
        let failed = report.status == StepStatus::Failed;
        reports.push(report);
        if failed {
            return;
        }
        // Time a person spent at a `pause:` step does not count against the test.
        let paused = std::mem::take(&mut state.paused);
        if !paused.is_zero() {
            *moving_deadline.lock().expect("poisoned") += paused;
        }
    }
}
