//! The terminal reporter. On a terminal: an indicatif display with a line per running test
//! (its current step, attempts, elapsed time) and a bar for the run. Otherwise (pipes, CI,
//! `NO_COLOR`): plain lines, one per finished test. Failures are printed in full as they
//! happen; the run ends with counts, the slowest tests and the flaky ones.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use console::{Style, Term};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Reporter;
use crate::config::RunConfig;
use crate::engine::events::{
    Event, Failure, StepReport, StepStatus, TestId, TestReport, TestStatus, TryReport,
};
use crate::util::fmt_secs;

/// Whether to draw progress bars: a terminal, and neither CI nor NO_COLOR set.
fn interactive() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    Term::stdout().is_term() && !set("NO_COLOR") && !set("CI")
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
    bar: ProgressBar,
    step: String,
    attempts: u32,
}

pub struct Terminal {
    out: Box<dyn Write + Send>,
    multi: Option<MultiProgress>,
    total_bar: Option<ProgressBar>,
    running: HashMap<TestId, Running>,
    styles: Styles,
    finished: Vec<(TestId, TestStatus, Duration, u32)>,
    keep_hint: bool,
}

impl Terminal {
    pub fn new(_config: &RunConfig) -> Self {
        let tty = interactive();
        Terminal::with_output(Box::new(std::io::stdout()), tty)
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
            keep_hint: false,
        }
    }

    fn line(&mut self, s: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => {
                let _ = writeln!(self.out, "{s}");
                let _ = self.out.flush();
            }
        }
    }

    fn update_bar(&self, id: &TestId) {
        if let Some(r) = self.running.get(id) {
            let attempts = if r.attempts > 1 {
                format!(" (attempt {})", r.attempts)
            } else {
                String::new()
            };
            r.bar.set_message(format!("{id} › {}{attempts}", r.step));
        }
    }

    fn test_finished(&mut self, report: &TestReport) {
        if let Some(r) = self.running.remove(&report.id) {
            if let Some(m) = &self.multi {
                m.remove(&r.bar);
            }
            r.bar.finish_and_clear();
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
        let line = format!("{tag} {dur}  {}{extra}", report.id);
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
            self.line(&block);
        }
        let tries = report.tries.len() as u32;
        self.finished
            .push((report.id.clone(), report.status, report.duration, tries));
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
        if !flaky.is_empty() {
            lines.push(
                st.flaky
                    .apply_to(format!("flaky: {}", flaky.join(", ")))
                    .to_string(),
            );
        }
        let failed: Vec<String> = self
            .finished
            .iter()
            .filter(|(_, s, _, _)| *s == TestStatus::Failed)
            .map(|(id, _, _, _)| id.to_string())
            .collect();
        if !failed.is_empty() {
            lines.push(
                st.fail
                    .apply_to(format!("failed: {}", failed.join(", ")))
                    .to_string(),
            );
        }
        if self.keep_hint {
            lines.push("kept resources stay until deleted (commands above) or `gwtest gc`".into());
        }
        for l in lines {
            self.line(&l);
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
    format!("{mark} {} ({detail}{attempts})", s.name)
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
                "  step {} {:?} ({}) at {}:{}",
                s.index + 1,
                s.name,
                s.kind,
                id.file.display(),
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
    if !t.steps.is_empty() {
        out.push(format!(
            "  steps: {}",
            t.steps
                .iter()
                .map(|s| step_mark(s, st))
                .collect::<Vec<_>>()
                .join("  ")
        ));
    }
    if t.failed_step().is_some()
        && let Some(e) = &t.error
    {
        out.push(format!("  also: {}", e.headline));
    }
    out.join("\n")
}

fn failure_lines(f: &Failure, st: &Styles) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = &f.expected {
        out.push(format!("  expected: {e}"));
    }
    let class = f.class.map(|c| format!(" [{c}]")).unwrap_or_default();
    out.push(format!(
        "  {}{}",
        st.fail.apply_to(&f.headline),
        st.dim.apply_to(class)
    ));
    for h in &f.hints {
        out.push(format!("  hint: {h}"));
    }
    for s in &f.sections {
        out.push(format!("  {}:", s.title));
        out.push(indent(s.body.trim_end(), "    "));
    }
    if !f.reproduce.is_empty() {
        out.push("  reproduce:".into());
        for r in &f.reproduce {
            out.push(format!("    {r}"));
        }
    }
    out
}

impl Reporter for Terminal {
    fn event(&mut self, e: &Event) {
        match e {
            Event::RunStarted {
                suites,
                parallel,
                run_id,
                ..
            } => {
                let total: usize = suites.iter().map(|s| s.tests.len()).sum();
                let line = format!(
                    "gwtest: running {total} test{} from {} suite{} (-j {parallel}, run {run_id})",
                    if total == 1 { "" } else { "s" },
                    suites.len(),
                    if suites.len() == 1 { "" } else { "s" }
                );
                self.line(&line);
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new(total as u64));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:30.cyan/blue} {pos}/{len} tests {elapsed}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    self.total_bar = Some(bar);
                }
            }
            Event::TestStarted { id, try_no, .. } => {
                if let Some(m) = &self.multi {
                    let bar = match &self.total_bar {
                        Some(t) => m.insert_before(t, ProgressBar::new_spinner()),
                        None => m.add(ProgressBar::new_spinner()),
                    };
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .expect("valid template"),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    let step = if *try_no > 1 {
                        format!("re-run {try_no}")
                    } else {
                        "starting".into()
                    };
                    self.running.insert(
                        id.clone(),
                        Running {
                            bar,
                            step,
                            attempts: 0,
                        },
                    );
                    self.update_bar(id);
                }
            }
            Event::StepStarted { id, name, .. } => {
                if let Some(r) = self.running.get_mut(id) {
                    r.step = name.clone();
                    r.attempts = 0;
                }
                self.update_bar(id);
            }
            Event::Attempt { id, record, .. } => {
                if let Some(r) = self.running.get_mut(id) {
                    r.attempts = record.n;
                }
                self.update_bar(id);
            }
            Event::TestRetrying { id, report } => {
                let st = &self.styles;
                let mut block = format!("{} {id}: failed, re-running", st.flaky.apply_to("RETRY"));
                block.push('\n');
                block.push_str(&failure_block(id, report, st));
                self.line(&block);
            }
            Event::TestFinished { report } => self.test_finished(report),
            Event::SuiteSetupFailed {
                suite,
                file,
                failure,
            } => {
                let mut lines = vec![format!(
                    "{} suite {suite} ({}): setup failed",
                    self.styles.fail.apply_to("FAIL "),
                    file.display()
                )];
                lines.extend(failure_lines(failure, &self.styles));
                self.line(&lines.join("\n"));
            }
            Event::Kept {
                id,
                namespace,
                commands,
            } => {
                self.keep_hint = true;
                let mut s = format!("kept {id}: namespace {namespace}; to look:");
                for c in commands {
                    s.push_str(&format!("\n    {c}"));
                }
                self.line(&s);
            }
            Event::Paused {
                id,
                reason,
                namespace,
                commands,
                failure,
            } => {
                let mut s = format!("{} {id}: {reason}", self.styles.flaky.apply_to("PAUSED"));
                if let Some(f) = failure {
                    for l in failure_lines(f, &self.styles) {
                        s.push('\n');
                        s.push_str(&l);
                    }
                }
                if let Some(ns) = namespace {
                    s.push_str(&format!("\n  namespace {ns} is intact; to look:"));
                    for c in commands {
                        s.push_str(&format!("\n    {c}"));
                    }
                }
                s.push_str(
                    "\n  press Enter to continue (cleanup runs after), Ctrl-C to stop the run",
                );
                self.line(&s);
            }
            Event::Resumed { id } => self.line(&format!("resumed {id}")),
            Event::Notice { id, message } => {
                let s = match id {
                    Some(id) => format!("note: {id}: {message}"),
                    None => format!("note: {message}"),
                };
                self.line(&s);
            }
            Event::RunFinished { summary } => {
                if let Some(b) = self.total_bar.take() {
                    b.finish_and_clear();
                }
                for (_, r) in self.running.drain() {
                    r.bar.finish_and_clear();
                }
                self.summary(summary.duration, summary.interrupted);
            }
            Event::SuiteStarted { .. }
            | Event::SuiteFinished { .. }
            | Event::StepFinished { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{FailureCause, TestKey};
    use crate::engine::retry::{Class, Section};
    use crate::suite::spanned::Loc;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

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
            loc: Loc::new(9, 5),
            status: StepStatus::Failed,
            duration: Duration::from_secs(9),
            attempts: 3,
            timeout: Some(Duration::from_secs(9)),
            failure: Some(f),
        };
        let tr = TryReport {
            passed: false,
            duration: Duration::from_secs(9),
            steps: vec![step],
            error: None,
            namespace: None,
        };
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
}
