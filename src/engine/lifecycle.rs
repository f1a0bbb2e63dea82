//! One try of one test, in phases: its namespace (`open_namespace`), its steps in order under
//! the test deadline (`run_steps_bounded`, which pauses on a failure with
//! `--pause-on-failure`), what a failure leaves for people before anything is removed
//! (`after_failure`: failure bundle, diagnostics), the `catch` steps when a step failed and
//! the `finally` steps always (`run_steps_bounded` again, under the test deadline plus
//! cleanup-timeout), then cleanup (`clean_up`: always, bounded by cleanup-timeout; the test's
//! own namespace goes in the background).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::RunContext;
use super::cleanup::{
    CleanupError, Owner, delete_objects, request_namespace_deletion, wait_namespace_gone,
};
use super::cluster_retry::{OpError, call_until, limits_until};
use super::events::{
    Answer, CleanupReport, Event, Failure, FailureCause, Phase, StepReport, StepStatus, TestId,
    TryReport,
};
use super::retry::{Limits, Policy};
use crate::cluster::{Cluster, Kind, is_deleting};
use crate::debug::pause::Clock;
use crate::steps::{self, RequestTrace, StepCtx, TestState};
use crate::suite::load::{Suite, Test};
use crate::suite::model::{Action, Step};
use crate::suite::spanned::{PositiveDur, Spanned};
use crate::suite::vars::Vars;
use tokio_util::sync::CancellationToken;

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

/// One list of a test's steps (`steps`, `catch`, `finally`) and how it runs.
struct StepsOf<'a> {
    phase: Phase,
    steps: &'a [Spanned<Step>],
    /// The file the steps are written in (their relative paths are relative to it).
    file: &'a std::path::Path,
    /// How long beyond the test's deadline the list may run: none for the steps,
    /// cleanup-timeout for `catch` and `finally`.
    beyond: Duration,
    /// A failed step decides the try: `--pause-on-failure` pauses on it, and the steps after
    /// it do not run. (A `catch` or `finally` step failing does not stop the next one.)
    decides: bool,
    /// What stops the steps: Ctrl-C, except for `finally` steps, which run to their end like
    /// cleanup (a second Ctrl-C exits at once).
    cancel: CancellationToken,
}

impl<'a> StepsOf<'a> {
    /// `catch` or `finally`: up to `beyond` past the test's deadline, a failure not deciding.
    fn after(
        phase: Phase,
        list: &'a crate::suite::load::StepList,
        beyond: Duration,
        cancel: CancellationToken,
    ) -> Self {
        StepsOf {
            phase,
            steps: &list.steps,
            file: &list.file,
            beyond,
            decides: false,
            cancel,
        }
    }
}

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
    let pick = |s: Option<PositiveDur>, s2: Option<PositiveDur>, def: Duration| {
        s.or(s2).map_or(def, |x| x.0)
    };
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

fn not_run(t: &Try<'_>, list: &StepsOf<'_>, index: usize, step: &Spanned<Step>) -> StepReport {
    StepReport {
        index,
        name: step.value.display_name(),
        kind: step.value.kind(),
        phase: list.phase,
        file: (list.file != t.test.file).then(|| list.file.to_path_buf()),
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
/// leaves for people (failure bundle, diagnostics), `catch` and `finally`, then cleanup. The
/// try's slot is free when this returns; its namespace may still be terminating in the
/// background (the run's `Reaper`).
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
        clock: Arc::new(Clock::new(started + test_timeout)),
        ..TestState::default()
    };
    let mut setup_error = open_namespace(&t, &mut state, started + test_timeout).await;
    ctx.events.emit(Event::TestStarted {
        id: id.clone(),
        try_no,
        namespace: state.namespace.clone(),
        span_id: super::hex(&test_span),
    });
    let mut vars = test_vars(env, test, state.namespace.as_deref());
    let opened = setup_error.is_none();

    let main = StepsOf {
        phase: Phase::Steps,
        steps: &test.doc.steps,
        file: &test.file,
        beyond: Duration::ZERO,
        decides: true,
        cancel: ctx.cancel.clone(),
    };
    let mut reports: Vec<StepReport> = Vec::with_capacity(test.doc.steps.len());
    if opened {
        run_steps_bounded(&t, &main, &mut vars, &mut state, &mut reports).await;
    }
    fill_not_run(&t, &main, &mut reports);
    // Stopped by Ctrl-C (or `q`) between steps: the steps left did not run, so the test did not
    // pass.
    if opened
        && ctx.cancel.is_cancelled()
        && !reports.iter().any(|r| r.status == StepStatus::Failed)
        && reports.iter().any(|r| r.status == StepStatus::NotRun)
    {
        let how = if ctx.prompt.quit() {
            "stopped at the pause prompt (q)"
        } else {
            "interrupted"
        };
        setup_error = Some(Failure::new(
            FailureCause::Interrupted,
            None,
            format!("{how} before every step ran"),
        ));
    }
    let step_failed = reports.iter().any(|r| r.status == StepStatus::Failed);
    let mut failed = setup_error.is_some() || step_failed;
    if failed {
        after_failure(&t, &vars, &state, started, &mut reports, &mut setup_error).await;
    }

    let bound = cleanup_timeout(suite, ctx.config.timeout_scale);
    let catch = StepsOf::after(Phase::Catch, &test.catch, bound, ctx.cancel.clone());
    let mut catch_reports = Vec::new();
    // After Ctrl-C the try was cut short, not failed: nothing to catch.
    if step_failed && !ctx.cancel.is_cancelled() {
        run_steps_bounded(&t, &catch, &mut vars, &mut state, &mut catch_reports).await;
    }
    fill_not_run(&t, &catch, &mut catch_reports);

    let finally = StepsOf::after(
        Phase::Finally,
        &test.finally,
        bound,
        CancellationToken::new(),
    );
    let mut finally_reports = Vec::new();
    if opened {
        run_steps_bounded(&t, &finally, &mut vars, &mut state, &mut finally_reports).await;
    }
    fill_not_run(&t, &finally, &mut finally_reports);
    // A `finally` step failing fails a test that had passed: its failure is the try's.
    let finally_failed = !failed
        && finally_reports
            .iter()
            .any(|r| r.status == StepStatus::Failed);
    if finally_failed {
        failed = true;
        after_failure(
            &t,
            &vars,
            &state,
            started,
            &mut finally_reports,
            &mut setup_error,
        )
        .await;
    }
    let duration = started.elapsed();

    let (cleanup, cleanup_error) = clean_up(&t, &state, failed).await;
    // The reproduce commands of a failure may name the namespace cleanup is deleting.
    if failed && let Some(ns) = cleanup.as_ref().and_then(|c| c.background.as_deref()) {
        let deciding = if finally_failed {
            &mut finally_reports
        } else {
            &mut reports
        };
        crate::debug::diagnostics::namespace_deleted(deciding, &mut setup_error, ns);
    }
    let error = setup_error.or(cleanup_error);
    let passed = !failed && error.is_none();
    TryReport {
        passed,
        duration,
        steps: reports,
        catch: catch_reports,
        finally: finally_reports,
        error,
        namespace: state.namespace,
        cleanup,
    }
}

/// The steps of a list that did not run, after those that did.
fn fill_not_run(t: &Try<'_>, list: &StepsOf<'_>, reports: &mut Vec<StepReport>) {
    for (i, step) in list.steps.iter().enumerate().skip(reports.len()) {
        reports.push(not_run(t, list, i, step));
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

/// A list of steps in order under the test deadline (plus `beyond`), which stands still
/// while the test is paused; a step that overruns it (a bug) is cut and recorded as a
/// test-timeout.
async fn run_steps_bounded(
    t: &Try<'_>,
    list: &StepsOf<'_>,
    vars: &mut Vars,
    state: &mut TestState,
    reports: &mut Vec<StepReport>,
) {
    if list.steps.is_empty() {
        return;
    }
    let (ctx, id) = (t.ctx, t.id);
    let started = Instant::now();
    let clock = state.clock.clone();
    let steps_run = run_steps(t, list, vars, state, reports);
    // A safety net for a step that ignores its deadline (a bug); a pause stops it too.
    let overran = tokio::select! {
        _ = steps_run => false,
        _ = clock.passed(list.beyond + DEADLINE_GRACE) => true,
    };
    if !overran {
        return;
    }
    // A step overran its deadline: record it as a test-timeout on the running step.
    let i = reports.len();
    if let Some(step) = list.steps.get(i) {
        let mut r = not_run(t, list, i, step);
        r.status = StepStatus::Failed;
        r.duration = started.elapsed();
        r.failure = Some(Failure::new(
            FailureCause::TestTimeout,
            None,
            format!(
                "{} reached and the step did not stop within {}s",
                bound_of(t, list),
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

/// The deadline a list runs under, for messages: `test-timeout (30s)`, or for `catch` and
/// `finally` `test-timeout + cleanup-timeout (30s + 1m)`.
fn bound_of(t: &Try<'_>, list: &StepsOf<'_>) -> String {
    let fmt = crate::util::fmt_duration;
    if list.beyond.is_zero() {
        format!("test-timeout ({})", fmt(t.test_timeout))
    } else {
        format!(
            "test-timeout + cleanup-timeout ({} + {})",
            fmt(t.test_timeout),
            fmt(list.beyond)
        )
    }
}

/// A failed try, before cleanup (and before `catch`), with everything still in place: the
/// cluster side of the failure bundle (`--artifacts`), and the suite's diagnostics collectors
/// (with the port-forward commands for the reproduce lines), noted on the failure. (A pause
/// for a person, `--pause-on-failure`, came before, at the failed step.)
async fn after_failure(
    t: &Try<'_>,
    vars: &Vars,
    state: &TestState,
    started: Instant,
    reports: &mut [StepReport],
    setup_error: &mut Option<Failure>,
) {
    let (ctx, id, try_no) = (t.ctx, t.id, t.try_no);
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
    if keep(ctx, failed) || state.keep {
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

/// The steps of a list in order. With `--pause-on-failure`, a failed step that decides the
/// try pauses the test; `r` runs it again (with its full timeout) until it passes or another
/// answer is given.
async fn run_steps(
    t: &Try<'_>,
    list: &StepsOf<'_>,
    vars: &mut Vars,
    state: &mut TestState,
    reports: &mut Vec<StepReport>,
) {
    let (ctx, id) = (t.ctx, t.id);
    for (index, step) in list.steps.iter().enumerate() {
        if list.cancel.is_cancelled() {
            return;
        }
        let mut report = run_step(t, list, index, step, vars, state, false).await;
        let mut ran_again = false;
        while ctx.config.pause_on_failure
            && list.decides
            && report.status == StepStatus::Failed
            && !ctx.cancel.is_cancelled()
        {
            match crate::debug::pause::on_failure(ctx, id, state.view(), &report).await {
                Answer::Retry => {
                    ran_again = true;
                    report = run_step(t, list, index, step, vars, state, true).await;
                }
                Answer::Keep => {
                    state.keep = true;
                    break;
                }
                Answer::Continue | Answer::Quit | Answer::Interrupted => break,
            }
        }
        if ran_again && report.status == StepStatus::Passed {
            ctx.events.emit(Event::Notice {
                id: Some(id.clone()),
                message: format!(
                    "{} ({}) failed, then passed when run again from the pause prompt (r)",
                    report.label(),
                    report.name
                ),
            });
        }
        let failed = report.status == StepStatus::Failed;
        reports.push(report);
        if failed && list.decides {
            return;
        }
    }
}

/// Run one step of a list under the test's deadline (plus the list's `beyond`). `again`: run
/// from the pause prompt (`r`), with the step's full timeout even where the test had less
/// left.
async fn run_step(
    t: &Try<'_>,
    list: &StepsOf<'_>,
    index: usize,
    step: &Spanned<Step>,
    vars: &mut Vars,
    state: &mut TestState,
    again: bool,
) -> StepReport {
    let (ctx, test, id, test_timeout) = (t.ctx, t.test, t.id, t.test_timeout);
    let suite = &t.env.suite;
    let span_id = super::new_span_id();
    state.step_span = ctx.exporting.then_some(RequestTrace {
        trace_id: ctx.trace_id,
        span_id,
    });
    let name = step.value.display_name();
    ctx.events.emit(Event::StepStarted {
        id: id.clone(),
        index,
        phase: list.phase,
        name: name.clone(),
        kind: step.value.kind(),
        span_id: super::hex(&span_id),
    });
    let started = Instant::now();
    let policy = policy_for(&step.value, suite, ctx.config.timeout_scale);
    if again {
        let wanted = started + policy.timeout;
        state
            .clock
            .extend_to(wanted.checked_sub(list.beyond).unwrap_or(wanted));
    }
    let deadline = state.clock.deadline() + list.beyond;
    let limits = Limits::for_step(
        started,
        policy.timeout,
        deadline,
        test_timeout,
        list.cancel.clone(),
    );
    let result = if started >= deadline {
        steps::StepResult::failed(
            0,
            Failure::new(
                FailureCause::TestTimeout,
                None,
                format!("{} reached before this step started", bound_of(t, list)),
            ),
        )
    } else {
        let mut sctx = StepCtx {
            test: id,
            index,
            step: &step.value,
            loc: step.loc,
            file: list.file,
            vars,
            policy,
            attempt_timeout: attempt_timeout(suite, ctx.config.timeout_scale),
            limits,
            run: ctx,
            state,
            events: &ctx.events,
        };
        steps::run(&mut sctx).await
    };
    let mut failure = result.failure;
    // The retry engine names the test-timeout; `catch` and `finally` run under more.
    if let Some(f) = failure.as_mut()
        && f.cause == FailureCause::TestTimeout
        && !list.beyond.is_zero()
    {
        let engine_says = format!(
            "test-timeout ({}) reached",
            crate::util::fmt_duration(test_timeout)
        );
        f.headline =
            f.headline
                .replacen(&engine_says, &format!("{} reached", bound_of(t, list)), 1);
    }
    let status = match (&failure, result.skipped) {
        (Some(_), _) => StepStatus::Failed,
        (None, true) => StepStatus::Skipped,
        (None, false) => StepStatus::Passed,
    };
    let report = StepReport {
        index,
        name,
        kind: step.value.kind(),
        phase: list.phase,
        file: (list.file != test.file).then(|| list.file.to_path_buf()),
        loc: step.loc,
        status,
        duration: started.elapsed(),
        attempts: result.attempts,
        timeout: Some(policy.timeout),
        failure,
    };
    ctx.events.emit(Event::StepFinished {
        id: id.clone(),
        report: report.clone(),
    });
    report
}
