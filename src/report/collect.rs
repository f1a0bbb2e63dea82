//! What the file reporters (JUnit, JSON) keep of a run: the plan, every finished test, suite
//! setup failures and notices. They write the whole run in plan order on `finish()`, also when
//! the run was interrupted: a planned test that never finished is reported as not run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use crate::engine::events::{
    Event, Failure, RunSummary, StepReport, StepStatus, TestId, TestKey, TestReport, TestStatus,
    TryReport,
};
use crate::suite::spanned::Loc;
use crate::util::fmt_secs;

/// One run, as far as it got (or, after `gwtest merge`, several shards of one).
#[derive(Debug, Default)]
pub struct Record {
    pub run_id: String,
    pub trace_id: String,
    pub started: Option<SystemTime>,
    /// The machine the run ran on (JUnit `hostname`).
    pub hostname: String,
    pub suites: Vec<SuiteRecord>,
    /// Notices not about one test (teardown trouble, the interrupt message).
    pub notices: Vec<String>,
    pub summary: Option<RunSummary>,
    /// The shards a merged record was made of (empty for a live run).
    pub merged: Vec<MergedRun>,
    by_id: HashMap<TestId, (usize, usize)>,
}

/// One shard's report, as `gwtest merge` read it.
#[derive(Clone, Debug, PartialEq)]
pub struct MergedRun {
    pub file: PathBuf,
    pub run_id: String,
    pub trace_id: String,
    pub hostname: String,
    pub started: Option<SystemTime>,
    pub duration: Duration,
    pub interrupted: bool,
}

#[derive(Debug)]
pub struct SuiteRecord {
    /// Position among every suite loaded (the same in every shard).
    pub index: usize,
    pub name: String,
    pub file: PathBuf,
    /// When the suite started (JUnit `timestamp`); unset when it never started.
    pub started: Option<SystemTime>,
    /// Unset when the suite never finished.
    pub duration: Option<Duration>,
    pub setup_error: Option<Failure>,
    pub tests: Vec<TestRecord>,
    /// Its teardown (fixtures, namespace) in the background, once it ended.
    pub teardown: Option<Background>,
}

#[derive(Debug)]
pub struct TestRecord {
    pub id: TestId,
    /// Unset when the test never finished.
    pub report: Option<TestReport>,
    /// Notices about this test and resources kept after it.
    pub notices: Vec<String>,
    /// Its namespaces deleted in the background, by try.
    pub background: Vec<Background>,
    /// In a merged record: the index in `Record::merged` of the shard that ran it.
    pub shard: Option<usize>,
    /// Its labels and its suite's (conformance reports read profiles and features here).
    pub labels: Vec<String>,
}

/// A background deletion that ended (`Event::BackgroundCleanup`).
#[derive(Clone, Debug, PartialEq)]
pub struct Background {
    pub try_no: u32,
    pub what: String,
    pub duration: Duration,
    pub error: Option<String>,
}

impl TestRecord {
    /// The background deletion of try `try_no`, once it ended.
    pub fn background_of(&self, try_no: u32) -> Option<&Background> {
        self.background.iter().find(|b| b.try_no == try_no)
    }

    /// One line per try that cleaned up: time in the test's slot, and the background
    /// deletion (JUnit's system-out).
    pub fn cleanup_lines(&self, report: &TestReport) -> Vec<String> {
        report
            .tries
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let c = t.cleanup.as_ref()?;
                let mut s = format!("cleanup (try {}): {}", i + 1, fmt_secs(c.duration));
                if let Some(ns) = &c.background {
                    match self.background_of(i as u32 + 1) {
                        Some(b) => match &b.error {
                            None => s.push_str(&format!(
                                "; namespace {ns} gone after {} in the background",
                                fmt_secs(b.duration)
                            )),
                            Some(e) => s.push_str(&format!(
                                "; namespace {ns} not gone after {} in the background: {e}",
                                fmt_secs(b.duration)
                            )),
                        },
                        None => s.push_str(&format!(
                            "; namespace {ns} still being deleted when the run ended"
                        )),
                    }
                }
                Some(s)
            })
            .collect()
    }
}

/// The name of this machine, for reports (empty when it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and we stop at the buffer's end otherwise).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Record {
    pub fn new() -> Self {
        Record::default()
    }

    pub fn event(&mut self, e: &Event) {
        match e {
            Event::RunStarted {
                run_id,
                trace_id,
                started,
                suites,
                ..
            } => {
                self.run_id = run_id.clone();
                self.trace_id = trace_id.clone();
                self.started = Some(*started);
                self.hostname = hostname();
                for plan in suites {
                    let si = self.suites.len();
                    let tests = plan
                        .tests
                        .iter()
                        .enumerate()
                        .map(|(ti, id)| {
                            self.by_id.insert(id.clone(), (si, ti));
                            TestRecord {
                                id: id.clone(),
                                report: None,
                                notices: Vec::new(),
                                background: Vec::new(),
                                shard: None,
                                labels: plan.labels.get(ti).cloned().unwrap_or_default(),
                            }
                        })
                        .collect();
                    self.suites.push(SuiteRecord {
                        index: plan.index,
                        name: plan.name.clone(),
                        file: plan.file.clone(),
                        started: None,
                        duration: None,
                        setup_error: None,
                        tests,
                        teardown: None,
                    });
                }
            }
            Event::SuiteStarted { suite, .. } => {
                let si = self.suite_index(suite, None);
                self.suites[si].started.get_or_insert_with(SystemTime::now);
            }
            Event::SuiteSetupFailed {
                suite,
                file,
                failure,
            } => {
                let si = self.suite_index(suite, Some(file));
                self.suites[si].setup_error = Some(failure.clone());
            }
            Event::SuiteFinished { suite, duration } => {
                if let Some(s) = self
                    .suites
                    .iter_mut()
                    .find(|s| s.name == *suite && s.duration.is_none())
                {
                    s.duration = Some(*duration);
                }
            }
            Event::TestFinished { report } => {
                let t = self.test_mut(&report.id);
                t.report = Some(report.clone());
            }
            Event::Notice { id, message } => match id {
                Some(id) => self.test_mut(id).notices.push(message.clone()),
                None => self.notices.push(message.clone()),
            },
            Event::Kept {
                id,
                namespace,
                commands,
            } => {
                let mut s = format!("kept namespace {namespace}; to look:");
                for c in commands {
                    s.push_str("\n    ");
                    s.push_str(c);
                }
                self.test_mut(id).notices.push(s);
            }
            Event::BackgroundCleanup {
                id,
                try_no,
                suite,
                what,
                duration,
                error,
            } => {
                let b = Background {
                    try_no: *try_no,
                    what: what.clone(),
                    duration: *duration,
                    error: error.clone(),
                };
                match id {
                    Some(id) => self.test_mut(id).background.push(b),
                    None => {
                        if let Some(e) = error {
                            self.notices
                                .push(format!("suite {suite}: cleanup of {what}: {e}"));
                        }
                        let si = self.suite_index(suite, None);
                        self.suites[si].teardown = Some(b);
                    }
                }
            }
            Event::RunFinished { summary } => self.summary = Some(summary.clone()),
            Event::CleanupWaiting { .. }
            | Event::TestStarted { .. }
            | Event::StepStarted { .. }
            | Event::Attempt { .. }
            | Event::StepFinished { .. }
            | Event::TestRetrying { .. }
            | Event::Paused { .. }
            | Event::Resumed { .. } => {}
        }
    }

    /// Add a whole suite (`gwtest merge`), its tests findable by id.
    pub fn push_suite(&mut self, s: SuiteRecord) {
        let si = self.suites.len();
        for (ti, t) in s.tests.iter().enumerate() {
            self.by_id.insert(t.id.clone(), (si, ti));
        }
        self.suites.push(s);
    }

    /// The suite named `name` (and with `file`, when given), added if the plan lacked it.
    fn suite_index(&mut self, name: &str, file: Option<&Path>) -> usize {
        let found = self
            .suites
            .iter()
            .position(|s| s.name == name && file.is_none_or(|f| s.file == f));
        found.unwrap_or_else(|| {
            self.suites.push(SuiteRecord {
                index: usize::MAX,
                name: name.to_owned(),
                file: file.map(Path::to_path_buf).unwrap_or_default(),
                started: None,
                duration: None,
                setup_error: None,
                tests: Vec::new(),
                teardown: None,
            });
            self.suites.len() - 1
        })
    }

    /// A test's record; one not in the plan (which the engine never sends) is kept anyway.
    fn test_mut(&mut self, id: &TestId) -> &mut TestRecord {
        let (si, ti) = match self.by_id.get(id) {
            Some(&at) => at,
            None => {
                let si = self.suite_index(&id.suite, None);
                let ti = self.suites[si].tests.len();
                self.suites[si].tests.push(TestRecord {
                    id: id.clone(),
                    report: None,
                    notices: Vec::new(),
                    background: Vec::new(),
                    shard: None,
                    labels: Vec::new(),
                });
                self.by_id.insert(id.clone(), (si, ti));
                (si, ti)
            }
        };
        &mut self.suites[si].tests[ti]
    }

    /// Interrupted by Ctrl-C, or ended without `RunFinished` (the engine stopped early).
    pub fn interrupted(&self) -> bool {
        self.summary.as_ref().is_none_or(|s| s.interrupted)
    }

    /// Why the run could not start (nothing ran), if it could not.
    pub fn not_started(&self) -> Option<&str> {
        self.summary.as_ref()?.not_started.as_deref()
    }

    pub fn duration(&self) -> Duration {
        match (&self.summary, self.started) {
            (Some(s), _) => s.duration,
            (None, Some(t)) => t.elapsed().unwrap_or_default(),
            (None, None) => Duration::ZERO,
        }
    }

    /// The report to write for a test: its own, or, if it never finished, a failure with its
    /// suite's setup error or a skip.
    pub fn outcome(&self, suite: &SuiteRecord, t: &TestRecord) -> TestReport {
        if let Some(r) = &t.report {
            return r.clone();
        }
        match &suite.setup_error {
            Some(f) => TestReport {
                id: t.id.clone(),
                status: TestStatus::Failed,
                duration: Duration::ZERO,
                tries: vec![TryReport {
                    error: Some(f.clone()),
                    ..TryReport::new(false, Duration::ZERO, Vec::new())
                }],
                skip_reason: None,
            },
            None => TestReport {
                id: t.id.clone(),
                status: TestStatus::Skipped,
                duration: Duration::ZERO,
                tries: Vec::new(),
                skip_reason: Some(match self.not_started() {
                    Some(why) => format!("not run: the run could not start: {why}"),
                    None if self.interrupted() => "not run: the run was interrupted".into(),
                    None => "not run".into(),
                }),
            },
        }
    }
}

/// `name`, or `name#3` for the third repetition with `--repeat`.
pub fn test_name(id: &TestKey) -> String {
    if id.repeat > 0 {
        format!("{}#{}", id.name, id.repeat + 1)
    } else {
        id.name.clone()
    }
}

/// Whether a try is exactly its suite's setup failure (the engine fails every test of a suite
/// whose setup failed with that failure).
pub fn is_setup_failure(t: &TryReport, setup: Option<&Failure>) -> bool {
    t.steps.is_empty() && setup.is_some() && t.error.as_ref() == setup
}

/// Where a failed try points in the suite files: the failing step, else the test.
pub fn failure_loc<'a>(id: &'a TestKey, t: &'a TryReport) -> (&'a Path, Loc) {
    match t.failed_step() {
        Some(s) if s.loc.is_known() => (s.file_in(&id.file), s.loc),
        _ => (&id.file, id.loc),
    }
}

/// The full story of a failed try as plain text (no trailing newline): where, what was expected, what happened,
/// hints, context sections, how to reproduce, and every step's status.
pub fn story(id: &TestKey, t: &TryReport, suite_setup: Option<&Path>) -> String {
    story_with(id, t, suite_setup, true)
}

/// The story without its context sections (what the test echoed: the last response, an
/// exec's output), which [`output`] gives separately.
pub fn story_without_output(id: &TestKey, t: &TryReport, suite_setup: Option<&Path>) -> String {
    story_with(id, t, suite_setup, false)
}

/// The context sections of a failed try (last response, object, diff, an exec's output), or
/// `None` when it has none.
pub fn output(t: &TryReport) -> Option<String> {
    let f = t.failure()?;
    if f.sections.is_empty() {
        return None;
    }
    let mut out = String::new();
    sections_text(&mut out, f);
    out.truncate(out.trim_end().len());
    Some(out)
}

fn story_with(id: &TestKey, t: &TryReport, suite_setup: Option<&Path>, sections: bool) -> String {
    let mut out = String::new();
    let failure = match t.failed_step() {
        Some(s) => {
            let _ = writeln!(
                out,
                "{} {:?} ({}) failed at {}:{}",
                s.label(),
                s.name,
                s.kind,
                s.file_in(&id.file).display(),
                s.loc
            );
            s.failure.as_ref()
        }
        None => {
            match suite_setup {
                Some(file) => {
                    let _ = writeln!(out, "suite setup failed ({})", file.display());
                }
                None => {
                    let _ = writeln!(out, "test setup/cleanup failed");
                }
            }
            t.error.as_ref()
        }
    };
    if let Some(f) = failure {
        failure_text(&mut out, f, sections);
    }
    for (label, steps) in [
        ("steps", &t.steps),
        ("catch", &t.catch),
        ("finally", &t.finally),
    ] {
        if steps.is_empty() {
            continue;
        }
        let steps: Vec<String> = steps
            .iter()
            .map(|s| {
                let (mark, detail) = match s.status {
                    StepStatus::Passed => ("✓", fmt_secs(s.duration)),
                    StepStatus::Failed => ("✗", fmt_secs(s.duration)),
                    StepStatus::NotRun => ("·", "not run".into()),
                    StepStatus::Skipped => ("-", "skipped".into()),
                };
                let attempts = if s.attempts > 1 {
                    format!(", {} attempts", s.attempts)
                } else {
                    String::new()
                };
                format!("{mark} {} ({detail}{attempts})", s.name)
            })
            .collect();
        let _ = writeln!(out, "{label}: {}", steps.join("  "));
    }
    if let Some(ns) = &t.namespace {
        let _ = writeln!(out, "namespace: {ns}");
    }
    if t.failed_step().is_some()
        && let Some(e) = &t.error
    {
        let _ = writeln!(out, "also: {}", e.headline);
    }
    for s in t.other_failed_steps() {
        let _ = writeln!(out, "also: {}", also_failed(id, s));
    }
    out.truncate(out.trim_end().len());
    out
}

/// A failed `catch` or `finally` step told beside the failure that decided the try:
/// `catch step 1 "dump" (exec) at t.test.yaml:12:5 failed: exit 2 (expected exit 0)`.
pub fn also_failed(id: &TestKey, s: &StepReport) -> String {
    format!(
        "{} {:?} ({}) at {}:{} failed: {}",
        s.label(),
        s.name,
        s.kind,
        s.file_in(&id.file).display(),
        s.loc,
        s.failure.as_ref().map_or("", |f| f.headline.as_str())
    )
}

/// A failure as plain text: expected, headline, hints, sections, reproduce commands.
pub fn failure_story(f: &Failure) -> String {
    let mut out = String::new();
    failure_text(&mut out, f, true);
    out
}

fn sections_text(out: &mut String, f: &Failure) {
    for s in &f.sections {
        let _ = writeln!(out, "{}:", s.title);
        for l in s.body.trim_end().lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
}

fn failure_text(out: &mut String, f: &Failure, sections: bool) {
    if let Some(e) = &f.expected {
        let _ = writeln!(out, "expected: {e}");
    }
    match f.class {
        Some(c) => {
            let _ = writeln!(out, "{} [{c}]", f.headline);
        }
        None => {
            let _ = writeln!(out, "{}", f.headline);
        }
    }
    for h in &f.hints {
        let _ = writeln!(out, "hint: {h}");
    }
    if sections {
        sections_text(out, f);
    }
    if !f.reproduce.is_empty() {
        let _ = writeln!(out, "reproduce:");
        for r in &f.reproduce {
            let _ = writeln!(out, "    {r}");
        }
    }
    if let Some(d) = &f.diagnostics {
        let _ = writeln!(out, "{}", d.summary());
    }
}

/// The failure's class, else its cause: what JUnit's `type` and annotations call it.
pub fn failure_type(f: &Failure) -> String {
    match f.class {
        Some(c) => c.to_string(),
        None => serde_json::to_value(f.cause)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", f.cause)),
    }
}

/// Write `bytes` to `path` via a temporary file in the same directory and a rename, so a
/// reader never sees half a report; parent directories are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// A synthetic run for the reporters' tests: every kind of outcome.
#[cfg(test)]
pub(crate) mod sample {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::engine::events::{
        CleanupReport, Counts, Event, Failure, FailureCause, Phase, RunSummary, StepReport,
        StepStatus, SuitePlan, TestId, TestKey, TestReport, TestStatus, TryReport,
    };
    use crate::engine::retry::{Class, Section};
    use crate::suite::spanned::Loc;

    pub const WEB_FILE: &str = "suites/web/routes.test.yaml";

    pub fn id(suite: &str, name: &str, line: u32, repeat: u32) -> TestId {
        Arc::new(TestKey {
            suite: suite.into(),
            name: name.into(),
            file: if suite == "web" {
                WEB_FILE.into()
            } else {
                format!("suites/{suite}/t.test.yaml").into()
            },
            loc: Loc::new(line, 1),
            repeat,
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn step(index: usize, name: &str, line: u32, status: StepStatus) -> StepReport {
        StepReport {
            index,
            name: name.into(),
            kind: "request",
            phase: Phase::Steps,
            file: None,
            loc: Loc::new(line, 5),
            status,
            duration: ms(if status == StepStatus::Passed { 20 } else { 0 }),
            attempts: if status == StepStatus::Passed { 1 } else { 0 },
            timeout: Some(ms(5000)),
            failure: None,
        }
    }

    /// A try whose second step (line `line`) failed with `headline`.
    pub fn failed_try(headline: &str, line: u32) -> TryReport {
        let mut f = Failure::new(FailureCause::Timeout, Some(Class::Status), headline);
        f.expected = Some("status 200".into());
        f.hints.push("raise timeout".into());
        f.sections.push(Section::new(
            "last response",
            "HTTP/1.1 503\n\nno healthy upstream",
        ));
        f.reproduce.push("curl -sS -i 'http://gw/a?x=1&y=2'".into());
        let mut failed = step(1, "route answers", line, StepStatus::Failed);
        failed.duration = ms(3000);
        failed.attempts = 7;
        failed.failure = Some(f);
        TryReport {
            passed: false,
            duration: ms(3100),
            steps: vec![
                step(0, "apply route", line - 4, StepStatus::Passed),
                failed,
                step(2, "afterwards", line + 6, StepStatus::NotRun),
            ],
            catch: Vec::new(),
            finally: Vec::new(),
            error: None,
            namespace: Some("gwtest-t-abc123".into()),
            cleanup: None,
        }
    }

    pub fn passed_try() -> TryReport {
        TryReport {
            passed: true,
            duration: ms(40),
            steps: vec![
                step(0, "apply route", 10, StepStatus::Passed),
                step(1, "route answers", 14, StepStatus::Passed),
            ],
            catch: Vec::new(),
            finally: Vec::new(),
            error: None,
            namespace: Some("gwtest-t-def456".into()),
            cleanup: Some(CleanupReport {
                duration: ms(5),
                background: Some("gwtest-t-def456".into()),
            }),
        }
    }

    pub fn setup_failure() -> Failure {
        Failure::error("fixture ../../fixtures/gw.yaml: the API server rejected it: 422")
    }

    fn finished(id: TestId, status: TestStatus, tries: Vec<TryReport>) -> Event {
        Event::TestFinished {
            report: TestReport {
                id,
                status,
                duration: tries.iter().map(|t| t.duration).sum(),
                tries,
                skip_reason: None,
            },
        }
    }

    /// The sample run (see [`events`]), event by event, to a reporter.
    pub fn feed(r: &mut impl crate::report::Reporter, complete: bool) {
        for e in events(complete) {
            r.event(&e);
        }
    }

    /// The run: suite `web` (pass, repeat #2, flaky with 2 tries, failed after 3 tries,
    /// skipped by fail-fast, and — when `complete` is false — one never finished) and suite
    /// `infra` whose setup failed. Without `complete`, the run ends without `RunFinished`.
    pub fn events(complete: bool) -> Vec<Event> {
        let web = [
            id("web", "ok", 1, 0),
            id("web", "ok", 1, 1),
            id("web", "flaky", 20, 0),
            id("web", "broken", 40, 0),
            id("web", "later", 60, 0),
            id("web", "never", 80, 0),
        ];
        let infra = [id("infra", "a", 1, 0), id("infra", "b", 9, 0)];
        let mut ev = vec![Event::RunStarted {
            run_id: "run-1".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            suites: vec![
                SuitePlan {
                    index: 0,
                    name: "web".into(),
                    file: "suites/web/suite.yaml".into(),
                    tests: web.to_vec(),
                    labels: vec![vec!["profile:GATEWAY-HTTP".into()]; web.len()],
                },
                SuitePlan {
                    index: 1,
                    name: "infra".into(),
                    file: "suites/infra/suite.yaml".into(),
                    tests: infra.to_vec(),
                    labels: vec![Vec::new(); infra.len()],
                },
            ],
            parallel: 4,
        }];
        ev.push(Event::SuiteStarted {
            suite: "infra".into(),
            span_id: "1".into(),
        });
        ev.push(Event::SuiteSetupFailed {
            suite: "infra".into(),
            file: "suites/infra/suite.yaml".into(),
            failure: setup_failure(),
        });
        for i in &infra {
            let t = TryReport {
                error: Some(setup_failure()),
                ..TryReport::new(false, Duration::ZERO, Vec::new())
            };
            ev.push(finished(i.clone(), TestStatus::Failed, vec![t]));
        }
        ev.push(Event::SuiteFinished {
            suite: "infra".into(),
            duration: ms(500),
        });
        ev.push(Event::SuiteStarted {
            suite: "web".into(),
            span_id: "2".into(),
        });
        ev.push(finished(
            web[0].clone(),
            TestStatus::Passed,
            vec![passed_try()],
        ));
        ev.push(Event::Notice {
            id: Some(web[0].clone()),
            message: "cleanup: namespace gwtest-t-def456 took 20s to go".into(),
        });
        ev.push(Event::BackgroundCleanup {
            id: Some(web[0].clone()),
            try_no: 1,
            suite: "web".into(),
            what: "namespace gwtest-t-def456".into(),
            duration: ms(5100),
            error: None,
        });
        ev.push(finished(
            web[1].clone(),
            TestStatus::Passed,
            vec![passed_try()],
        ));
        let flaky_fail = failed_try("100% of 7 attempts got status 503, a,b: c", 24);
        ev.push(Event::TestRetrying {
            id: web[2].clone(),
            report: flaky_fail.clone(),
        });
        ev.push(finished(
            web[2].clone(),
            TestStatus::Flaky,
            vec![flaky_fail, passed_try()],
        ));
        ev.push(finished(
            web[3].clone(),
            TestStatus::Failed,
            vec![
                failed_try("try one: got status 503 <body> & \"quotes\"", 44),
                failed_try("try two: got status 502", 44),
                failed_try("try three: got status 500\nsecond line", 44),
            ],
        ));
        ev.push(Event::TestFinished {
            report: TestReport {
                id: web[4].clone(),
                status: TestStatus::Skipped,
                duration: Duration::ZERO,
                tries: Vec::new(),
                skip_reason: Some("fail-fast: an earlier test failed".into()),
            },
        });
        ev.push(Event::Notice {
            id: None,
            message: "suite web: teardown: timed out".into(),
        });
        if complete {
            ev.push(finished(
                web[5].clone(),
                TestStatus::Passed,
                vec![passed_try()],
            ));
            ev.push(Event::SuiteFinished {
                suite: "web".into(),
                duration: ms(9000),
            });
            ev.push(Event::RunFinished {
                summary: RunSummary {
                    counts: Counts {
                        passed: 3,
                        flaky: 1,
                        failed: 3,
                        skipped: 1,
                    },
                    duration: ms(9500),
                    interrupted: false,
                    cleanup_failed: 0,
                    cluster_unusable: None,
                    not_started: None,
                    quit: false,
                },
            });
        }
        ev
    }
}
