//! Runs the picked tests: at most `-j` at a time across all suites, suite setup before a
//! suite's first test and teardown after its last, re-runs (`retries`), fail-fast, Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::RunContext;
use super::events::{
    Counts, Event, Failure, FailureCause, TestId, TestReport, TestStatus, TryReport,
};
use super::lifecycle::{self, NamespaceMode, SuiteEnv};
use super::select::SuitePick;
use crate::suite::load::Suite;
use crate::suite::model::VarDef;
use crate::suite::vars::Vars;

struct Shared {
    ctx: Arc<RunContext>,
    permits: Semaphore,
    /// Set by fail-fast after the first failure: nothing new starts.
    stop: AtomicBool,
}

/// Run every picked test; returns the counts by status.
pub async fn run(ctx: Arc<RunContext>, suites: Vec<Arc<Suite>>, picks: Vec<SuitePick>) -> Counts {
    let shared = Arc::new(Shared {
        permits: Semaphore::new(ctx.config.parallel),
        stop: AtomicBool::new(false),
        ctx,
    });
    let mut counts = Counts::default();
    // -j 1: one test after the other in plan order (suites in directory order, tests in
    // file-name then document order), which a race for the only slot would not give.
    if shared.ctx.config.parallel == 1 {
        for pick in picks {
            let suite = suites[pick.suite].clone();
            let c = run_suite(shared.clone(), suite, pick).await;
            counts.passed += c.passed;
            counts.flaky += c.flaky;
            counts.failed += c.failed;
            counts.skipped += c.skipped;
        }
        return counts;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for pick in picks {
        let suite = suites[pick.suite].clone();
        tasks.spawn(run_suite(shared.clone(), suite, pick));
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(c) => {
                counts.passed += c.passed;
                counts.flaky += c.flaky;
                counts.failed += c.failed;
                counts.skipped += c.skipped;
            }
            Err(e) => {
                shared.ctx.events.emit(Event::Notice {
                    id: None,
                    message: format!("internal error: a suite task failed: {e}"),
                });
                counts.failed += 1;
            }
        }
    }
    counts
}

/// Plain suite variables and --var (which wins), expanded in order.
fn base_vars(ctx: &RunContext, suite: &Suite) -> Result<Vars, Failure> {
    let mut vars = Vars::new();
    for (k, v) in &ctx.config.vars {
        vars.set(k.clone(), v.clone());
    }
    super::lifecycle::suite_builtins(ctx, &suite.name, &mut vars);
    for (name, def) in suite.doc.vars.iter() {
        if ctx.config.vars.iter().any(|(k, _)| *k == name.value) {
            continue;
        }
        if let VarDef::Value(node) = def {
            let v = vars.expand_node(node).map_err(|e| {
                Failure::error(format!(
                    "suite variable `{}`: {e} ({}:{})",
                    name.value,
                    suite.file.display(),
                    e.loc
                ))
            })?;
            vars.set(name.value.clone(), v);
        }
    }
    Ok(vars)
}

async fn run_suite(shared: Arc<Shared>, suite: Arc<Suite>, pick: SuitePick) -> Counts {
    let ctx = shared.ctx.clone();
    let started = Instant::now();
    ctx.events.emit(Event::SuiteStarted {
        suite: suite.name.clone(),
        span_id: super::hex(&super::new_span_id()),
    });
    let mut counts = Counts::default();

    let needs_cluster = suite.setup_needs_cluster()
        || pick
            .tests
            .iter()
            .any(|(ti, _)| suite.tests[*ti].needs_cluster());
    let setup = async {
        let mut vars = base_vars(&ctx, &suite)?;
        let namespace = match (&ctx.cluster, needs_cluster) {
            (Some(cluster), true) => {
                super::fixtures::setup(&ctx, cluster, &suite, &mut vars).await?
            }
            _ => NamespaceMode::PerTest,
        };
        Ok::<_, Failure>(SuiteEnv {
            suite: suite.clone(),
            vars,
            namespace,
        })
    };
    // Suites in one fixed namespace take turns (taken before a test slot, so a waiting suite
    // never holds a slot the running one needs).
    let fixed = suite
        .doc
        .namespace
        .as_ref()
        .map(|n| n.value.as_str())
        .filter(|n| !matches!(*n, "per-test" | "per-suite"));
    let _namespace_turn = match (&ctx.cluster, fixed, needs_cluster) {
        (Some(_), Some(ns), true) => tokio::select! {
            g = super::fixtures::hold_fixed_namespace(&ctx, ns) => Some(g),
            _ = ctx.cancel.cancelled() => None,
        },
        _ => None,
    };
    // Suite setup holds a test slot so that at most -j things happen at once; Ctrl-C stops
    // it (what it made so far is removed by the teardown).
    let env = {
        let _permit = tokio::select! {
            p = shared.permits.acquire() => p.ok(),
            _ = ctx.cancel.cancelled() => None,
        };
        if ctx.cancel.is_cancelled() {
            None
        } else {
            tokio::select! {
                r = setup => Some(r),
                _ = ctx.cancel.cancelled() => None,
            }
        }
    };
    let env = match env {
        None => {
            for (_, id) in &pick.tests {
                counts.add(skip(&ctx, id, "interrupted"));
            }
            teardown(&ctx, &suite, &counts).await;
            return counts;
        }
        Some(Err(failure)) => {
            ctx.events.emit(Event::SuiteSetupFailed {
                suite: suite.name.clone(),
                file: suite.file.clone(),
                failure: failure.clone(),
            });
            for (_, id) in &pick.tests {
                let tr = TryReport {
                    error: Some(failure.clone()),
                    ..TryReport::new(false, Duration::ZERO, Vec::new())
                };
                let report = TestReport {
                    id: id.clone(),
                    status: TestStatus::Failed,
                    duration: Duration::ZERO,
                    tries: vec![tr],
                    skip_reason: None,
                };
                ctx.events.emit(Event::TestFinished { report });
                counts.add(TestStatus::Failed);
            }
            if ctx.config.fail_fast {
                shared.stop.store(true, Ordering::SeqCst);
            }
            teardown(&ctx, &suite, &counts).await;
            ctx.events.emit(Event::SuiteFinished {
                suite: suite.name.clone(),
                duration: started.elapsed(),
            });
            return counts;
        }
        Some(Ok(env)) => Arc::new(env),
    };

    if env.namespace == NamespaceMode::PerTest && ctx.config.parallel > 1 {
        let mut tasks = tokio::task::JoinSet::new();
        for (ti, id) in pick.tests.clone() {
            tasks.spawn(run_test(shared.clone(), env.clone(), ti, id));
        }
        while let Some(r) = tasks.join_next().await {
            counts.add(r.unwrap_or(TestStatus::Failed));
        }
    } else {
        // Tests sharing a namespace (or all tests, with -j 1) run one at a time, in order.
        for (ti, id) in pick.tests.clone() {
            counts.add(run_test(shared.clone(), env.clone(), ti, id).await);
        }
    }
    teardown(&ctx, &suite, &counts).await;
    ctx.events.emit(Event::SuiteFinished {
        suite: suite.name.clone(),
        duration: started.elapsed(),
    });
    counts
}

async fn teardown(ctx: &Arc<RunContext>, suite: &Arc<Suite>, counts: &Counts) {
    if let Some(cluster) = &ctx.cluster {
        let keep = lifecycle::keep(ctx, counts.failed > 0);
        super::fixtures::teardown(ctx, cluster, suite, keep).await;
    }
}

fn skip(ctx: &RunContext, id: &TestId, reason: &str) -> TestStatus {
    let report = TestReport {
        id: id.clone(),
        status: TestStatus::Skipped,
        duration: Duration::ZERO,
        tries: Vec::new(),
        skip_reason: Some(reason.to_owned()),
    };
    ctx.events.emit(Event::TestFinished { report });
    TestStatus::Skipped
}

async fn run_test(shared: Arc<Shared>, env: Arc<SuiteEnv>, ti: usize, id: TestId) -> TestStatus {
    let ctx = &shared.ctx;
    let _permit = tokio::select! {
        p = shared.permits.acquire() => p.ok(),
        _ = ctx.cancel.cancelled() => None,
    };
    if ctx.cancel.is_cancelled() {
        return skip(ctx, &id, "interrupted");
    }
    if shared.stop.load(Ordering::SeqCst) {
        return skip(ctx, &id, "fail-fast: an earlier test failed");
    }
    let test = &env.suite.tests[ti];
    // Credentials refused, TLS broken: every cluster call would fail the same way.
    if test.needs_cluster()
        && let Some(e) = ctx.cluster.as_ref().and_then(|c| c.unusable())
    {
        return skip(ctx, &id, &format!("the cluster is unusable: {e}"));
    }
    let retries = ctx.config.retries.or(test.doc.retries).unwrap_or(0);
    let mut tries = Vec::new();
    let mut status = TestStatus::Failed;
    for try_no in 1..=retries + 1 {
        let report = lifecycle::run_try(ctx, &env, test, &id, try_no).await;
        let passed = report.passed;
        let interrupted = ctx.cancel.is_cancelled();
        if passed {
            status = if try_no == 1 {
                TestStatus::Passed
            } else {
                TestStatus::Flaky
            };
        }
        let last = passed || try_no == retries + 1 || interrupted;
        if !last {
            ctx.events.emit(Event::TestRetrying {
                id: id.clone(),
                report: report.clone(),
            });
        }
        tries.push(report);
        if last {
            break;
        }
    }
    // Cut short by Ctrl-C before any step failed on its own: not a failure of the product.
    let mut skip_reason = None;
    if status == TestStatus::Failed
        && tries
            .last()
            .and_then(TryReport::failure)
            .is_some_and(|f| f.cause == FailureCause::Interrupted)
    {
        status = TestStatus::Skipped;
        skip_reason = Some("interrupted".to_owned());
    }
    if status == TestStatus::Failed && ctx.config.fail_fast {
        shared.stop.store(true, Ordering::SeqCst);
    }
    let report = TestReport {
        id: id.clone(),
        status,
        // The tries' own time: cleanup is reported apart.
        duration: tries.iter().map(|t| t.duration).sum(),
        tries,
        skip_reason,
    };
    ctx.events.emit(Event::TestFinished { report });
    status
}
