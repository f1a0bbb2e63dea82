//! The terminal reporter. On a terminal: an indicatif display with a line per running test
//! (its current step, attempts, elapsed time) and a bar for the run. Otherwise (pipes, CI,
//! `NO_COLOR`): plain lines, one per finished test, and a `SLOW` line for a test still running
//! after 10 s, then every 30 s (as nextest does). Failures are printed in full as they
//! happen; the run ends with counts, the slowest tests, the flaky ones, and with `--repeat`
//! the flake statistics.
//!
//! What a test echoes (a response body, an exec's output, an object's fields) is printed with
//! its control characters and escape sequences made visible, never executed by the terminal;
//! under GitHub Actions every block that holds echoed text is fenced with
//! `::stop-commands::TOKEN` … `::TOKEN::`, so a `::error::` in it is text, not a command.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use console::{Style, Term};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Reporter;
use crate::config::RunConfig;
use crate::engine::events::{
    Answer, Event, Failure, Phase, RunSummary, StepReport, StepStatus, SuitePlan, TestId,
    TestReport, TestStatus, TryReport,
};
use crate::util::{fmt_secs, visible_controls};

/// A test still running this long gets a `SLOW` line in plain output...
pub const SLOW_AFTER: Duration = Duration::from_secs(10);
/// ...and another one every this long after that.
pub const SLOW_EVERY: Duration = Duration::from_secs(30);

/// Whether to draw progress bars: a terminal, and neither CI nor NO_COLOR set.
fn interactive() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    Term::stdout().is_term() && !set("NO_COLOR") && !set("CI")
}

/// Echoed text, safe to print.
fn vis(s: &str) -> std::borrow::Cow<'_, str> {
    visible_controls(s)
}

struct Styles {
    pass: Style,
    fail: Style,
    flaky: Style,
    skip: Style,
    dim: Style,
    bold: Style,
}

impl Styles {
    fn new(color: bool) -> Self {
        let s = |st: Style| st.force_styling(color);
        Styles {
            pass: s(Style::new().green().bold()),
            fail: s(Style::new().red().bold()),
            flaky: s(Style::new().yellow().bold()),
            skip: s(Style::new().dim()),
            dim: s(Style::new().dim()),
            bold: s(Style::new().bold()),
        }
    }
}

struct Running {
    /// Its progress line (on a terminal).
    bar: Option<ProgressBar>,
    step: String,
    attempts: u32,
    since: Instant,
    /// When the next `SLOW` line is due, counted from `since`.
    next_slow: Duration,
}

impl Running {
    fn what(&self, id: &TestId) -> String {
        let attempts = if self.attempts > 1 {
            format!(" (attempt {})", self.attempts)
        } else {
            String::new()
        };
        format!("{} › {}{attempts}", vis(&id.to_string()), vis(&self.step))
    }
}

pub struct Terminal {
    out: Box<dyn Write + Send>,
    multi: Option<MultiProgress>,
    total_bar: Option<ProgressBar>,
    running: HashMap<TestId, Running>,
    styles: Styles,
    finished: Vec<(TestId, TestStatus, Duration, u32)>,
    /// Every finished test, for the `--repeat` statistics.
    reports: Vec<TestReport>,
    keep_hint: bool,
    /// Background deletions that ended: (whose, how long, failed).
    background: Vec<(String, Duration, bool)>,
    /// GitHub Actions: fence echoed output from workflow commands.
    fence: bool,
    /// A test is paused: the progress display is hidden so the prompt and what the person
    /// types stay on screen.
    paused: bool,
    /// The header line (and the number of tests) of a run whose tests have not started yet.
    header: Option<(String, u64)>,
}

impl Terminal {
    pub fn new(config: &RunConfig) -> Self {
        let tty = interactive();
        let color = crate::config::use_color(config.color, Term::stdout().is_term());
        console::set_colors_enabled(color);
        let mut t = Terminal::with_output(Box::new(std::io::stdout()), tty);
        t.styles = Styles::new(color);
        t.fence = super::github::enabled();
        t
    }

    /// A reporter writing plain lines to `out` (tests), or drawing progress when `tty`.
    pub fn with_output(out: Box<dyn Write + Send>, tty: bool) -> Self {
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Terminal {
            out,
            multi,
            total_bar: None,
            running: HashMap::new(),
            styles: Styles::new(tty),
            finished: Vec::new(),
            reports: Vec::new(),
            keep_hint: false,
            background: Vec::new(),
            fence: false,
            paused: false,
            header: None,
        }
    }

    /// A test's spinner (or, on a re-run, its line again).
    fn run_started(&mut self, suites: &[SuitePlan], parallel: usize, run_id: &str) {
        let total: usize = suites.iter().map(|s| s.tests.len()).sum();
        let line = format!(
            "gwtest: running {total} test{} from {} suite{} (-j {parallel}, run {run_id})",
            if total == 1 { "" } else { "s" },
            suites.len(),
            if suites.len() == 1 { "" } else { "s" }
        );
        // Said once the tests start: a run that cannot start never says "running".
        self.header = Some((line, total as u64));
    }

    fn step_started(&mut self, id: &TestId, phase: Phase, name: &str) {
        if let Some(r) = self.running.get_mut(id) {
            r.step = match phase {
                Phase::Steps => name.to_owned(),
                p => format!("{}: {name}", p.as_str()),
            };
            r.attempts = 0;
        }
        self.update_bar(id);
    }

    fn test_retrying(&mut self, id: &TestId, report: &TryReport) {
        let st = &self.styles;
        let mut block = format!(
            "{} {}: failed, re-running",
            st.flaky.apply_to("RETRY"),
            vis(&id.to_string())
        );
        block.push('\n');
        block.push_str(&failure_block(id, report, st));
        self.echoed(&block);
    }

    fn suite_setup_failed(&mut self, suite: &str, file: &Path, failure: &Failure) {
        let mut lines = vec![format!(
            "{} suite {suite} ({}): setup failed",
            self.styles.fail.apply_to("FAIL "),
            file.display()
        )];
        lines.extend(failure_lines(failure, &self.styles));
        self.echoed(&lines.join("\n"));
    }

    fn kept(&mut self, id: &TestId, namespace: &str, commands: &[String]) {
        self.keep_hint = true;
        let mut s = format!("kept {id}: namespace {namespace}; to look:");
        for c in commands {
            s.push_str(&format!("\n    {}", vis(c)));
        }
        self.echoed(&s);
    }

    fn resumed(&mut self, id: &TestId, answer: Answer) {
        let what = match answer {
            Answer::Continue => String::new(),
            Answer::Retry => " (r: running the step again)".into(),
            Answer::Keep => " (k: its resources will be kept)".into(),
            Answer::Quit => " (q: stopping the run)".into(),
            Answer::Interrupted => " (interrupted)".into(),
        };
        self.line(&format!("resumed {id}{what}"));
        self.show_progress(true);
    }

    fn background_cleanup(
        &mut self,
        id: Option<&TestId>,
        suite: &str,
        what: &str,
        duration: Duration,
        error: Option<&str>,
    ) {
        let who = match id {
            Some(id) => id.to_string(),
            None => format!("suite {suite}"),
        };
        if let Some(e) = error {
            self.line(&format!(
                "note: {who}: cleanup of {what} ended after {}: {e}",
                fmt_secs(duration)
            ));
        }
        self.background.push((who, duration, error.is_some()));
    }

    fn run_finished(&mut self, summary: &RunSummary) {
        if let Some(b) = self.total_bar.take() {
            b.finish_and_clear();
        }
        for (_, r) in self.running.drain() {
            if let Some(bar) = r.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(why) = &summary.not_started {
            // The run's one fatal error, on stderr like every other (exit 3).
            eprintln!("error: {why}");
        } else {
            self.summary(summary.duration, summary.interrupted);
        }
    }

    fn test_started(&mut self, id: &TestId, try_no: u32) {
        let step = if try_no > 1 {
            format!("re-run {try_no}")
        } else {
            "starting".into()
        };
        // A re-run continues the same test: its clock (and SLOW schedule) go on.
        if let Some(r) = self.running.get_mut(id) {
            r.step = step;
            r.attempts = 0;
            self.update_bar(id);
            return;
        }
        let bar = self.multi.as_ref().map(|m| {
            let bar = match &self.total_bar {
                Some(t) => m.insert_before(t, ProgressBar::new_spinner()),
                None => m.add(ProgressBar::new_spinner()),
            };
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        self.running.insert(
            id.clone(),
            Running {
                bar,
                step,
                attempts: 0,
                since: Instant::now(),
                next_slow: SLOW_AFTER,
            },
        );
        self.update_bar(id);
    }

    /// A pause: why, the failure, where to look, and how to go on.
    fn paused(
        &mut self,
        id: &TestId,
        reason: &str,
        namespace: Option<&str>,
        commands: &[String],
        failure: Option<&Failure>,
    ) {
        self.show_progress(false);
        let mut s = format!(
            "{} {id}: {}",
            self.styles.flaky.apply_to("PAUSED"),
            vis(reason)
        );
        if let Some(f) = failure {
            for l in failure_lines(f, &self.styles) {
                s.push('\n');
                s.push_str(&l);
            }
        }
        if let Some(ns) = namespace {
            s.push_str(&format!("\n  namespace {ns} is intact; to look:"));
            for c in commands {
                s.push_str(&format!("\n    {}", vis(c)));
            }
        }
        // The test's clocks stand still until the answer.
        let retry = if failure.is_some() {
            "  r: run the step again  "
        } else {
            "  "
        };
        s.push_str(&format!(
            "\n  Enter: continue{retry}k: keep its resources  q: stop the run  \
             (type the letter, then Enter; Ctrl-C stops too)"
        ));
        self.echoed(&s);
    }

    /// The run's header line and its progress bar, once the tests start.
    fn begin(&mut self) {
        let Some((line, total)) = self.header.take() else {
            return;
        };
        self.line(&line);
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tests {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            self.total_bar = Some(bar);
        }
    }

    /// Fence blocks holding echoed output from GitHub workflow commands (tests).
    pub fn fencing(mut self, on: bool) -> Self {
        self.fence = on;
        self
    }

    fn line(&mut self, s: &str) {
        match &self.multi {
            Some(m) if !self.paused => {
                let _ = m.println(s);
            }
            _ => {
                let _ = writeln!(self.out, "{s}");
                let _ = self.out.flush();
            }
        }
    }

    /// A block with text from outside gwtest: under GitHub Actions, between
    /// `::stop-commands::TOKEN` and `::TOKEN::` (a fresh random token each time), so that
    /// nothing in it is taken for a workflow command.
    fn echoed(&mut self, s: &str) {
        if self.fence {
            let token: String = (0..32)
                .map(|_| char::from_digit(fastrand::u32(..16), 16).unwrap_or('0'))
                .collect();
            self.line(&format!("::stop-commands::{token}\n{s}\n::{token}::"));
        } else {
            self.line(s);
        }
    }

    /// While a test is paused the progress display is off: its redraws would erase what the
    /// person types at the prompt.
    fn show_progress(&mut self, on: bool) {
        if let Some(m) = &self.multi
            && self.paused == on
        {
            if on {
                m.set_draw_target(ProgressDrawTarget::stdout());
            } else {
                let _ = m.clear();
                m.set_draw_target(ProgressDrawTarget::hidden());
            }
        }
        self.paused = !on;
    }

    fn update_bar(&self, id: &TestId) {
        if let Some(r) = self.running.get(id)
            && let Some(bar) = &r.bar
        {
            bar.set_message(r.what(id));
        }
    }

    /// `SLOW` lines for the tests running past [`SLOW_AFTER`] (then every [`SLOW_EVERY`]);
    /// plain output only (the progress display shows elapsed times itself).
    pub fn heartbeat(&mut self, now: Instant) {
        if self.multi.is_some() {
            return;
        }
        let mut due: Vec<(Duration, String)> = Vec::new();
        for (id, r) in self.running.iter_mut() {
            if now.saturating_duration_since(r.since) >= r.next_slow {
                due.push((r.next_slow, r.what(id)));
                r.next_slow += SLOW_EVERY;
            }
        }
        due.sort();
        for (after, what) in due {
            let tag = self.styles.flaky.apply_to("SLOW ");
            self.line(&format!("{tag} [>{:>5}] {what}", fmt_secs(after)));
        }
    }

    fn test_finished(&mut self, report: &TestReport) {
        if let Some(r) = self.running.remove(&report.id)
            && let Some(bar) = r.bar
        {
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
            bar.finish_and_clear();
        }
        if let Some(b) = &self.total_bar {
            b.inc(1);
        }
        let st = &self.styles;
        let (tag, extra) = match report.status {
            TestStatus::Passed => (st.pass.apply_to("PASS "), String::new()),
            TestStatus::Flaky => (
                st.flaky.apply_to("FLAKY"),
                format!(" (passed on try {})", report.tries.len()),
            ),
            TestStatus::Failed => (st.fail.apply_to("FAIL "), String::new()),
            TestStatus::Skipped => (
                st.skip.apply_to("SKIP "),
                report
                    .skip_reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
            ),
        };
        let dur = st.dim.apply_to(format!("{:>7}", fmt_secs(report.duration)));
        // Cleanup is not in the test's duration: what it took in the slot is said apart.
        let cleanup = report
            .last_try()
            .and_then(|t| t.cleanup.as_ref())
            .map(|c| {
                st.dim
                    .apply_to(format!(" (cleanup {})", fmt_secs(c.duration)))
                    .to_string()
            })
            .unwrap_or_default();
        let line = format!(
            "{tag} {dur}  {}{}{cleanup}",
            vis(&report.id.to_string()),
            vis(&extra)
        );
        self.line(&line);
        // A failure's story; for a test cut short by Ctrl-C, where it stopped.
        let story = report.failure().or_else(|| {
            report
                .tries
                .last()
                .filter(|t| report.status == TestStatus::Skipped && t.failure().is_some())
        });
        if let Some(t) = story {
            let block = failure_block(&report.id, t, &self.styles);
            self.echoed(&block);
        }
        let tries = report.tries.len() as u32;
        self.finished
            .push((report.id.clone(), report.status, report.duration, tries));
        self.reports.push(report.clone());
    }

    fn summary(&mut self, duration: Duration, interrupted: bool) {
        let mut counts = [0usize; 4];
        for (_, s, _, _) in &self.finished {
            counts[match s {
                TestStatus::Passed => 0,
                TestStatus::Flaky => 1,
                TestStatus::Failed => 2,
                TestStatus::Skipped => 3,
            }] += 1;
        }
        let total: usize = counts.iter().sum();
        let st = &self.styles;
        let mut lines = vec![String::new()];
        let head = format!(
            "{} test{}: {} passed, {} flaky, {} failed, {} skipped in {}{}",
            total,
            if total == 1 { "" } else { "s" },
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            fmt_secs(duration),
            if interrupted { " (interrupted)" } else { "" }
        );
        lines.push(if counts[2] > 0 || interrupted {
            st.fail.apply_to(head).to_string()
        } else {
            st.pass.apply_to(head).to_string()
        });
        let mut slow: Vec<&(TestId, TestStatus, Duration, u32)> = self
            .finished
            .iter()
            .filter(|(_, s, _, _)| *s != TestStatus::Skipped)
            .collect();
        slow.sort_by_key(|t| std::cmp::Reverse(t.2));
        if slow.len() > 1 {
            let list: Vec<String> = slow
                .iter()
                .take(3)
                .map(|(id, _, d, _)| format!("{id} {}", fmt_secs(*d)))
                .collect();
            lines.push(format!("slowest: {}", list.join(", ")));
        }
        let flaky: Vec<String> = self
            .finished
            .iter()
            .filter(|(_, s, _, _)| *s == TestStatus::Flaky)
            .map(|(id, _, _, tries)| format!("{id} (passed on try {tries})"))
            .collect();
        lines.extend(listed(&st.flaky, "flaky", &flaky));
        let failed: Vec<String> = self
            .finished
            .iter()
            .filter(|(_, s, _, _)| *s == TestStatus::Failed)
            .map(|(id, _, _, _)| id.to_string())
            .collect();
        lines.extend(listed(&st.fail, "failed", &failed));
        if !self.background.is_empty() {
            let n = self.background.len();
            let failed = self.background.iter().filter(|b| b.2).count();
            let slowest = self
                .background
                .iter()
                .max_by_key(|b| b.1)
                .map(|(who, d, _)| format!(", slowest {} ({who})", fmt_secs(*d)))
                .unwrap_or_default();
            let mut l = format!(
                "cleanup: {n} background deletion{}{slowest}",
                if n == 1 { "" } else { "s" }
            );
            if failed > 0 {
                l.push_str(&format!(
                    ", {failed} left something behind (see the notes above)"
                ));
                lines.push(st.fail.apply_to(l).to_string());
            } else {
                lines.push(l);
            }
        }
        if self.keep_hint {
            lines.push("kept resources stay until deleted (commands above) or `gwtest gc`".into());
        }
        for l in lines {
            self.line(&l);
        }
        let repeats = super::flakes::stats_of(&self.reports);
        if !repeats.is_empty() {
            let table = super::flakes::render_text(&repeats);
            self.line("");
            self.echoed(&table);
        }
    }
}

fn indent(s: &str, by: &str) -> String {
    s.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn step_mark(s: &StepReport, st: &Styles) -> String {
    let (mark, detail) = match s.status {
        StepStatus::Passed => (st.pass.apply_to("✓").to_string(), fmt_secs(s.duration)),
        StepStatus::Failed => (st.fail.apply_to("✗").to_string(), fmt_secs(s.duration)),
        StepStatus::NotRun => (st.dim.apply_to("·").to_string(), "not run".into()),
        StepStatus::Skipped => (st.dim.apply_to("-").to_string(), "skipped".into()),
    };
    let attempts = if s.attempts > 1 {
        format!(", {} attempts", s.attempts)
    } else {
        String::new()
    };
    format!("{mark} {} ({detail}{attempts})", vis(&s.name))
}

/// The full story of a failed try: which step, what was expected, what happened, the last
/// response/object, a diff, and commands that reproduce it.
fn failure_block(id: &TestId, t: &TryReport, st: &Styles) -> String {
    let mut out = Vec::new();
    if let Some(ns) = &t.namespace {
        out.push(format!("  namespace: {ns}"));
    }
    let (failure, where_): (Option<&Failure>, String) = match t.failed_step() {
        Some(s) => (
            s.failure.as_ref(),
            format!(
                "  {} {:?} ({}) at {}:{}",
                s.label(),
                s.name,
                s.kind,
                s.file_in(&id.file).display(),
                s.loc
            ),
        ),
        None => (
            t.error.as_ref(),
            match t.error.as_ref().map(|e| e.cause) {
                Some(crate::engine::events::FailureCause::Interrupted) => {
                    "  interrupted".to_string()
                }
                _ => "  test setup/cleanup".to_string(),
            },
        ),
    };
    out.push(st.bold.apply_to(where_).to_string());
    if let Some(f) = failure {
        out.extend(failure_lines(f, st));
    }
    for (label, steps) in [
        ("steps", &t.steps),
        ("catch", &t.catch),
        ("finally", &t.finally),
    ] {
        if !steps.is_empty() {
            out.push(format!(
                "  {label}: {}",
                steps
                    .iter()
                    .map(|s| step_mark(s, st))
                    .collect::<Vec<_>>()
                    .join("  ")
            ));
        }
    }
    if t.failed_step().is_some()
        && let Some(e) = &t.error
    {
        out.push(format!("  also: {}", vis(&e.headline)));
    }
    for s in t.other_failed_steps() {
        out.push(format!(
            "  also: {}",
            vis(&super::collect::also_failed(id, s))
        ));
    }
    out.join("\n")
}

fn failure_lines(f: &Failure, st: &Styles) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &f.expected {
        out.push(format!("  expected: {}", vis(e)));
    }
    let class = f.class.map(|c| format!(" [{c}]")).unwrap_or_default();
    out.push(format!(
        "  {}{}",
        st.fail.apply_to(vis(&f.headline)),
        st.dim.apply_to(class)
    ));
    for h in &f.hints {
        out.push(format!("  hint: {}", vis(h)));
    }
    for s in &f.sections {
        out.push(format!("  {}:", vis(&s.title)));
        out.push(indent(&vis(s.body.trim_end()), "    "));
    }
    if !f.reproduce.is_empty() {
        out.push("  reproduce:".into());
        for r in &f.reproduce {
            out.push(format!("    {}", vis(r)));
        }
    }
    if let Some(d) = &f.diagnostics {
        out.push(format!("  {}", d.summary()));
    }
    out
}

impl Reporter for Terminal {
    fn tick(&mut self) {
        self.heartbeat(Instant::now());
    }

    fn event(&mut self, e: &Event) {
        let not_started =
            matches!(e, Event::RunFinished { summary } if summary.not_started.is_some());
        if !not_started && !matches!(e, Event::RunStarted { .. }) {
            self.begin();
        }
        match e {
            Event::RunStarted {
                suites,
                parallel,
                run_id,
                ..
            } => self.run_started(suites, *parallel, run_id),
            Event::TestStarted { id, try_no, .. } => self.test_started(id, *try_no),
            Event::StepStarted {
                id, name, phase, ..
            } => self.step_started(id, *phase, name),
            Event::Attempt { id, record, .. } => {
                if let Some(r) = self.running.get_mut(id) {
                    r.attempts = record.n;
                }
                self.update_bar(id);
            }
            Event::TestRetrying { id, report } => self.test_retrying(id, report),
            Event::TestFinished { report } => self.test_finished(report),
            Event::SuiteSetupFailed {
                suite,
                file,
                failure,
            } => self.suite_setup_failed(suite, file, failure),
            Event::Kept {
                id,
                namespace,
                commands,
            } => self.kept(id, namespace, commands),
            Event::Paused {
                id,
                reason,
                namespace,
                commands,
                failure,
            } => self.paused(id, reason, namespace.as_deref(), commands, failure.as_ref()),
            Event::Resumed { id, answer } => self.resumed(id, *answer),
            Event::BackgroundCleanup {
                id,
                suite,
                what,
                duration,
                error,
                ..
            } => self.background_cleanup(id.as_ref(), suite, what, *duration, error.as_deref()),
            Event::CleanupWaiting { pending } => self.line(&format!(
                "cleanup: waiting for {pending} background deletion{} (namespaces of finished \
                 tests, suite fixtures)",
                if *pending == 1 { "" } else { "s" }
            )),
            Event::Notice { id, message } => {
                let s = match id {
                    Some(id) => format!("note: {id}: {}", vis(message)),
                    None => format!("note: {}", vis(message)),
                };
                self.echoed(&s);
            }
            Event::RunFinished { summary } => self.run_finished(summary),
            Event::SuiteStarted { .. }
            | Event::SuiteFinished { .. }
            | Event::StepFinished { .. } => {}
        }
    }
}

/// `label: a, b`, styled; nothing for an empty list.
fn listed(style: &Style, label: &str, items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| {
        style
            .apply_to(format!("{label}: {}", items.join(", ")))
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{FailureCause, TestKey};
    use crate::engine::retry::{Class, Section};
    use crate::suite::spanned::Loc;
    use std::sync::Arc;

    use crate::report::test_output::Buf;

    #[test]
    fn a_failure_prints_step_expectation_summary_context_and_reproduction() {
        let buf = Buf::default();
        let mut t = Terminal::with_output(Box::new(buf.clone()), false);
        let id: TestId = Arc::new(TestKey {
            suite: "s".into(),
            name: "t".into(),
            file: "suites/s/t.test.yaml".into(),
            loc: Loc::new(1, 1),
            repeat: 0,
        });
        let mut f = Failure::new(
            FailureCause::Timeout,
            Some(Class::Timeout),
            "3 attempts in 9.0s: 3 timed out after 3s (attempt-timeout)",
        );
        f.expected = Some("status 200".into());
        f.sections.push(Section::new(
            "last response",
            "HTTP/1.1 503\n\nno healthy upstream",
        ));
        f.reproduce.push("curl -sS -i http://x/".into());
        f.hints.push("raise attempt-timeout".into());
        let step = StepReport {
            index: 1,
            name: "route answers".into(),
            kind: "request",
            phase: Phase::Steps,
            file: None,
            loc: Loc::new(9, 5),
            status: StepStatus::Failed,
            duration: Duration::from_secs(9),
            attempts: 3,
            timeout: Some(Duration::from_secs(9)),
            failure: Some(f),
        };
        let tr = TryReport::new(false, Duration::from_secs(9), vec![step]);
        t.event(&Event::TestFinished {
            report: TestReport {
                id,
                status: TestStatus::Failed,
                duration: Duration::from_secs(9),
                tries: vec![tr],
                skip_reason: None,
            },
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        for want in [
            "FAIL ",
            "s/t",
            "step 2 \"route answers\" (request) at suites/s/t.test.yaml:9:5",
            "expected: status 200",
            "3 timed out after 3s (attempt-timeout) [timeout]",
            "hint: raise attempt-timeout",
            "last response:\n    HTTP/1.1 503",
            "reproduce:\n    curl -sS -i http://x/",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains('\u{1b}'), "plain output has no escape codes");
    }

    fn id(name: &str) -> TestId {
        Arc::new(TestKey {
            suite: "s".into(),
            name: name.into(),
            file: "suites/s/t.test.yaml".into(),
            loc: Loc::new(1, 1),
            repeat: 0,
        })
    }

    fn text(buf: &Buf) -> String {
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_slow_test_gets_a_heartbeat_after_10s_then_every_30s() {
        let buf = Buf::default();
        let mut t = Terminal::with_output(Box::new(buf.clone()), false);
        let slow = id("slow");
        t.event(&Event::TestStarted {
            id: slow.clone(),
            try_no: 1,
            namespace: None,
            span_id: "00".into(),
        });
        t.event(&Event::StepStarted {
            id: slow.clone(),
            index: 0,
            phase: Phase::Steps,
            name: "route answers".into(),
            kind: "request",
            span_id: "01".into(),
        });
        let since = t.running[&slow].since;
        t.heartbeat(since + Duration::from_secs(9));
        assert_eq!(text(&buf), "");
        t.heartbeat(since + Duration::from_secs(10));
        t.heartbeat(since + Duration::from_secs(11));
        t.event(&Event::Attempt {
            id: slow.clone(),
            index: 0,
            record: crate::engine::retry::AttemptRecord {
                n: 4,
                start: Duration::ZERO,
                duration: Duration::ZERO,
                class: Some(Class::Status),
                summary: "got status 503".into(),
                http: None,
            },
        });
        t.heartbeat(since + Duration::from_secs(39));
        t.heartbeat(since + Duration::from_secs(40));
        assert_eq!(
            text(&buf),
            "SLOW  [>10.0s] s/slow › route answers\nSLOW  [>40.0s] s/slow › route answers (attempt 4)\n"
        );
    }

    #[test]
    fn echoed_output_is_visible_and_fenced_from_workflow_commands() {
        let buf = Buf::default();
        let mut t = Terminal::with_output(Box::new(buf.clone()), false).fencing(true);
        let mut f = Failure::new(
            FailureCause::Timeout,
            Some(Class::Output),
            "stdout \"::error::injected\"",
        );
        f.sections.push(Section::new(
            "stdout",
            "::error::injected\n\u{1b}]0;title\u{7}\u{1b}[2Jcleared",
        ));
        let step = StepReport {
            index: 0,
            name: "echo".into(),
            kind: "exec",
            phase: Phase::Steps,
            file: None,
            loc: Loc::new(5, 5),
            status: StepStatus::Failed,
            duration: Duration::from_secs(1),
            attempts: 1,
            timeout: Some(Duration::from_secs(1)),
            failure: Some(f),
        };
        t.event(&Event::TestFinished {
            report: TestReport {
                id: id("echo"),
                status: TestStatus::Failed,
                duration: Duration::from_secs(1),
                tries: vec![TryReport::new(false, Duration::from_secs(1), vec![step])],
                skip_reason: None,
            },
        });
        let out = text(&buf);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("FAIL "), "{out}");
        let token = lines[1].strip_prefix("::stop-commands::").expect("a fence");
        assert_eq!(token.len(), 32);
        let end = format!("::{token}::");
        let close = lines
            .iter()
            .position(|l| *l == end)
            .expect("the fence ends");
        let inside = lines
            .iter()
            .position(|l| *l == "    ::error::injected")
            .unwrap();
        assert!(1 < inside && inside < close, "{out}");
        assert!(
            out.contains("    \\x1b]0;title\\x07\\x1b[2Jcleared"),
            "{out}"
        );
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
    }
}
