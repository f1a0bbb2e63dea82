//! What happened during a run, as data. The engine emits these; reporters (terminal, JUnit,
//! JSON, GitHub annotations, the run's own trace) only consume them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;

use super::retry::{AttemptRecord, Class, Section};
use crate::suite::spanned::Loc;

/// Identifies one test run (one repetition of one test).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TestKey {
    pub suite: String,
    pub name: String,
    /// The test file, as given (relative paths stay relative so annotations point right).
    pub file: PathBuf,
    pub loc: Loc,
    /// 0-based repetition with `--repeat`.
    pub repeat: u32,
}

pub type TestId = Arc<TestKey>;

impl fmt::Display for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.suite, self.name)?;
        if self.repeat > 0 {
            write!(f, "#{}", self.repeat + 1)?;
        }
        Ok(())
    }
}

/// Why a step failed, beyond "its assertion never held".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCause {
    /// The step timeout passed without the assertion holding.
    Timeout,
    /// The test-timeout passed while this step ran.
    TestTimeout,
    /// `hold` was broken.
    Hold,
    /// An error waiting could not fix (rejected manifest, unknown variable, bad URL).
    Error,
    /// Ctrl-C.
    Interrupted,
}

/// Everything needed to understand a failed step without rerunning it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub cause: FailureCause,
    /// The class of the last failed attempt (or the dominant one).
    pub class: Option<Class>,
    /// One paragraph: attempts summary and the last attempt.
    pub headline: String,
    /// What the step expected, one line.
    pub expected: Option<String>,
    /// Last response, object, diff, spans seen...
    pub sections: Vec<Section>,
    /// Commands that reproduce the attempt by hand (curl, kubectl).
    pub reproduce: Vec<String>,
    /// What to try, e.g. "raise attempt-timeout or use --timeout-scale".
    pub hints: Vec<String>,
    /// What the suite's `diagnostics:` collected for the failed try, before cleanup.
    pub diagnostics: Option<Diagnostics>,
}

/// The evidence the diagnostics collectors of a failed try wrote into its failure bundle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostics {
    /// The directory of the files.
    pub dir: PathBuf,
    /// Collectors that did their work.
    pub collected: usize,
    /// The files written, one per collector (`logs.txt`, `events.txt`, ...).
    pub files: Vec<String>,
    /// Collectors that failed or ran out of time: `exec: timed out after 10s`.
    pub failed: Vec<String>,
}

impl Diagnostics {
    /// `diagnostics: 2 collected, 1 failed (exec: timed out after 2s), see DIR`
    pub fn summary(&self) -> String {
        let failed = if self.failed.is_empty() {
            String::new()
        } else {
            format!(
                ", {} failed ({})",
                self.failed.len(),
                self.failed.join("; ")
            )
        };
        format!(
            "diagnostics: {} collected{failed}, see {}",
            self.collected,
            self.dir.display()
        )
    }
}

impl Failure {
    pub fn new(cause: FailureCause, class: Option<Class>, headline: impl Into<String>) -> Self {
        Failure {
            cause,
            class,
            headline: headline.into(),
            expected: None,
            sections: Vec::new(),
            reproduce: Vec::new(),
            hints: Vec::new(),
            diagnostics: None,
        }
    }

    /// A failure that is an error, not an assertion (bad input at run time, API rejection).
    pub fn error(message: impl Into<String>) -> Self {
        Failure::new(FailureCause::Error, Some(Class::Error), message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// An earlier step failed (or the test was interrupted) so this one did not run.
    NotRun,
    /// A `pause` step without `--pause`.
    Skipped,
}

/// Which list of a test a step is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `steps:`, the test itself.
    #[default]
    Steps,
    /// `catch:`, run when a step failed.
    Catch,
    /// `finally:`, always run.
    Finally,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Steps => "steps",
            Phase::Catch => "catch",
            Phase::Finally => "finally",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    /// 0-based position in its list (`phase`).
    pub index: usize,
    pub name: String,
    /// The action key: request, assert, apply...
    pub kind: &'static str,
    pub phase: Phase,
    /// The file the step is written in when it is not the test's own (a suite's default
    /// `catch`/`finally` step, in suite.yaml).
    pub file: Option<PathBuf>,
    pub loc: Loc,
    pub status: StepStatus,
    pub duration: Duration,
    pub attempts: u32,
    /// The step's timeout (after defaults and `--timeout-scale`), for the flake report's
    /// timeout advice; `None` when the step did not run.
    pub timeout: Option<Duration>,
    pub failure: Option<Failure>,
}

impl StepReport {
    /// `step 2`, `catch step 1`, `finally step 1`: how messages name it (1-based).
    pub fn label(&self) -> String {
        match self.phase {
            Phase::Steps => format!("step {}", self.index + 1),
            p => format!("{} step {}", p.as_str(), self.index + 1),
        }
    }

    /// The file the step is written in, given its test's file.
    pub fn file_in<'a>(&'a self, test_file: &'a Path) -> &'a Path {
        self.file.as_deref().unwrap_or(test_file)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestStatus {
    Passed,
    /// Failed, then passed on a re-run (`retries`).
    Flaky,
    Failed,
    /// Not started (fail-fast, interrupted, or its suite's setup failed).
    Skipped,
}

/// One try of a test (the first run, or a re-run).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TryReport {
    pub passed: bool,
    /// Namespace creation, steps and pauses: cleanup is not part of it.
    pub duration: Duration,
    pub steps: Vec<StepReport>,
    /// The `catch:` steps (not run when no step failed).
    pub catch: Vec<StepReport>,
    /// The `finally:` steps.
    pub finally: Vec<StepReport>,
    /// Set when the test failed outside a step (namespace, setup, cleanup).
    pub error: Option<Failure>,
    pub namespace: Option<String>,
    /// What cleanup did while the test held its slot (none when nothing was to clean).
    pub cleanup: Option<CleanupReport>,
}

/// A try's cleanup.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CleanupReport {
    /// Time in the test's slot: deleting (and waiting for) what another test could collide
    /// with.
    pub duration: Duration,
    /// The namespace left to delete in the background (`BackgroundCleanup` says when it was
    /// gone).
    pub background: Option<String>,
}

impl TryReport {
    /// A try with these steps, nothing in `catch`/`finally`, no error, namespace or cleanup.
    pub fn new(passed: bool, duration: Duration, steps: Vec<StepReport>) -> Self {
        TryReport {
            passed,
            duration,
            steps,
            catch: Vec::new(),
            finally: Vec::new(),
            error: None,
            namespace: None,
            cleanup: None,
        }
    }

    /// The failed step that decided this try: the failed step of the test, else a failed
    /// `finally` step (which fails a test that had passed). A `catch` step never decides.
    pub fn failed_step(&self) -> Option<&StepReport> {
        let failed = |s: &&StepReport| s.status == StepStatus::Failed;
        self.steps
            .iter()
            .find(failed)
            .or_else(|| self.finally.iter().find(failed))
    }

    /// Failed `catch` and `finally` steps that did not decide the try (told with it).
    pub fn other_failed_steps(&self) -> impl Iterator<Item = &StepReport> {
        let decided = self.failed_step().map(|s| (s.phase, s.index));
        self.catch
            .iter()
            .chain(&self.finally)
            .filter(move |s| s.status == StepStatus::Failed && Some((s.phase, s.index)) != decided)
    }

    /// The failure that decided this try.
    pub fn failure(&self) -> Option<&Failure> {
        self.failed_step()
            .and_then(|s| s.failure.as_ref())
            .or(self.error.as_ref())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestReport {
    pub id: TestId,
    pub status: TestStatus,
    pub duration: Duration,
    /// Every try, first run first.
    pub tries: Vec<TryReport>,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
}

impl TestReport {
    pub fn last_try(&self) -> Option<&TryReport> {
        self.tries.last()
    }

    /// The failure to show: the last try's for a failed test, the first failed try's for a
    /// flaky one.
    pub fn failure(&self) -> Option<&TryReport> {
        match self.status {
            TestStatus::Failed => self.tries.last(),
            TestStatus::Flaky => self.tries.iter().find(|t| !t.passed),
            _ => None,
        }
    }
}

/// A suite and its tests as planned (after filters and sharding).
#[derive(Clone, Debug, Serialize)]
pub struct SuitePlan {
    /// The suite's position among every suite loaded (the same in every shard of a run, so
    /// `gwtest merge` can restore the unsharded order).
    pub index: usize,
    pub name: String,
    pub file: PathBuf,
    pub tests: Vec<TestId>,
    /// Each test's labels (its own and its suite's), in the order of `tests`.
    pub labels: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: usize,
    pub flaky: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn add(&mut self, s: TestStatus) {
        match s {
            TestStatus::Passed => self.passed += 1,
            TestStatus::Flaky => self.flaky += 1,
            TestStatus::Failed => self.failed += 1,
            TestStatus::Skipped => self.skipped += 1,
        }
    }
    pub fn total(&self) -> usize {
        self.passed + self.flaky + self.failed + self.skipped
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub counts: Counts,
    pub duration: Duration,
    pub interrupted: bool,
    /// Background deletions that did not finish (something was left behind).
    pub cleanup_failed: usize,
    /// Why the cluster became unusable during the run (credentials, TLS), if it did.
    pub cluster_unusable: Option<String>,
    /// Why the run could not start (what it needs could not be brought up): no test ran.
    pub not_started: Option<String>,
    /// A person answered `q` at a pause: the run stopped after a look, not by a signal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quit: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        run_id: String,
        /// The run's trace id (hex); suites, tests and steps are its spans.
        trace_id: String,
        #[serde(skip)]
        started: SystemTime,
        suites: Vec<SuitePlan>,
        parallel: usize,
    },
    SuiteStarted {
        suite: String,
        span_id: String,
    },
    /// Suite setup (namespace, fixtures, cluster variables) failed: its tests are failed.
    SuiteSetupFailed {
        suite: String,
        file: PathBuf,
        failure: Failure,
    },
    SuiteFinished {
        suite: String,
        duration: Duration,
    },
    TestStarted {
        id: TestId,
        /// 1 for the first run, 2 for the first re-run...
        try_no: u32,
        namespace: Option<String>,
        span_id: String,
    },
    StepStarted {
        id: TestId,
        /// Position in its list (`phase`); one step of a test runs at a time.
        index: usize,
        phase: Phase,
        name: String,
        kind: &'static str,
        span_id: String,
    },
    Attempt {
        id: TestId,
        index: usize,
        record: AttemptRecord,
    },
    StepFinished {
        id: TestId,
        report: StepReport,
    },
    /// A test try ended and will be re-run.
    TestRetrying {
        id: TestId,
        report: TryReport,
    },
    TestFinished {
        report: TestReport,
    },
    /// Resources kept after a test (`--keep`), with how to look at them.
    Kept {
        id: TestId,
        namespace: String,
        commands: Vec<String>,
    },
    /// A test stopped for a person to look (`--pause-on-failure`, `pause:` with `--pause`);
    /// the test's clocks stand still until the answer on stdin (a terminal) or Ctrl-C.
    Paused {
        id: TestId,
        reason: String,
        namespace: Option<String>,
        commands: Vec<String>,
        /// The failure that made it stop (`--pause-on-failure`): expected, attempts, last
        /// response, and the curl/kubectl commands to try by hand while it waits. With one,
        /// `r` (run the step again) is an answer.
        failure: Option<Failure>,
    },
    /// Follows every `Paused`.
    Resumed {
        id: TestId,
        answer: Answer,
    },
    /// A background deletion ended: a per-test namespace after its test freed its slot, or a
    /// suite's fixtures and namespace after its last test.
    BackgroundCleanup {
        /// The test it belongs to (`None`: a suite's teardown).
        id: Option<TestId>,
        /// The try of `id` (0 for a suite's teardown).
        try_no: u32,
        suite: String,
        /// `namespace gwtest-x-abc123`, `fixtures and namespace of suite s`.
        what: String,
        /// From the deletion request until gone (or given up).
        duration: Duration,
        /// What it could not do (what is left, and what holds it).
        error: Option<String>,
    },
    /// The tests are done; the run waits for `pending` background deletions before it ends.
    CleanupWaiting {
        pending: usize,
    },
    /// Something worth telling that is not a test result (cleanup trouble, evicted spans).
    Notice {
        id: Option<TestId>,
        message: String,
    },
    RunFinished {
        summary: RunSummary,
    },
}

/// How a pause ended: the answer at the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Enter (or the end of input): go on.
    Continue,
    /// `r`: run the failed step again.
    Retry,
    /// `k`: keep the test's resources, and go on.
    Keep,
    /// `q`: stop the run.
    Quit,
    /// Ctrl-C.
    Interrupted,
}

/// How many attempt events may wait for the reporters at once. Past it (reporters lagging,
/// e.g. stdout a pipe nobody reads) further attempt events are dropped and counted: they only
/// feed progress displays and the run's trace. Every other event is always queued (there
/// are a few per step), so results are never lost.
pub const MAX_QUEUED_ATTEMPTS: usize = 4096;

/// Where the engine sends events. Cheap to clone; never blocks.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: Option<mpsc::UnboundedSender<Event>>,
    backlog: Arc<Backlog>,
}

/// Attempt events queued and dropped, shared by a channel's two ends.
#[derive(Debug, Default)]
struct Backlog {
    queued_attempts: AtomicUsize,
    dropped_attempts: AtomicU64,
}

/// The reporters' end of the event channel.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
    backlog: Arc<Backlog>,
}

/// An event channel: attempt events bounded by [`MAX_QUEUED_ATTEMPTS`], the others never
/// dropped.
pub fn channel() -> (EventSink, EventStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog::default());
    (
        EventSink {
            tx: Some(tx),
            backlog: backlog.clone(),
        },
        EventStream { rx, backlog },
    )
}

impl EventSink {
    /// A sink that drops everything (benchmarks, unit tests).
    pub fn discard() -> Self {
        EventSink {
            tx: None,
            backlog: Arc::default(),
        }
    }

    pub fn emit(&self, e: Event) {
        let Some(tx) = &self.tx else { return };
        if matches!(e, Event::Attempt { .. }) {
            let queued = self.backlog.queued_attempts.fetch_add(1, Ordering::Relaxed);
            if queued >= MAX_QUEUED_ATTEMPTS {
                self.backlog.queued_attempts.fetch_sub(1, Ordering::Relaxed);
                self.backlog
                    .dropped_attempts
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // The receiver lives until the run ends; a closed one only means nobody listens.
        let _ = tx.send(e);
    }
}

impl EventStream {
    /// The next event; `None` once every sink is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        let e = self.rx.recv().await?;
        if matches!(e, Event::Attempt { .. }) {
            self.backlog.queued_attempts.fetch_sub(1, Ordering::Relaxed);
        }
        Some(e)
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        let e = self.rx.try_recv().ok()?;
        if matches!(e, Event::Attempt { .. }) {
            self.backlog.queued_attempts.fetch_sub(1, Ordering::Relaxed);
        }
        Some(e)
    }

    /// Attempt events dropped so far because the reporters lagged.
    pub fn dropped_attempts(&self) -> u64 {
        self.backlog.dropped_attempts.load(Ordering::Relaxed)
    }
}
