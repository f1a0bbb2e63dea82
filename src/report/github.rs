//! GitHub Actions annotations (when `GITHUB_ACTIONS=true`): as each test finishes, a failed
//! test prints `::error file=PATH,line=L,col=C,title=TITLE::MESSAGE` pointing at its failing
//! step in the suite file, and a flaky one a `::warning` at the step that failed first. A suite
//! whose setup failed gets one annotation at its suite.yaml (not one per test).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::Reporter;
use super::collect::{failure_loc, failure_type, is_setup_failure, test_name};
use crate::engine::events::{Event, Failure, Phase, TestReport, TestStatus, TryReport};
use crate::suite::spanned::Loc;

pub struct Github {
    out: Box<dyn Write + Send>,
    /// Setup failures by suite name: their tests are already annotated at the suite.
    setup_failed: HashMap<String, Failure>,
}

/// Whether this process runs in a GitHub Actions job.
pub fn enabled() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

impl Github {
    pub fn new() -> Self {
        Github::with_output(Box::new(std::io::stdout()))
    }

    pub fn with_output(out: Box<dyn Write + Send>) -> Self {
        Github {
            out,
            setup_failed: HashMap::new(),
        }
    }

    fn print(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn test_finished(&mut self, r: &TestReport) {
        let (level, t, verdict) = match r.status {
            TestStatus::Failed => {
                let Some(t) = r.tries.last() else { return };
                let verdict = if r.tries.len() > 1 {
                    format!("failed on all {} tries", r.tries.len())
                } else {
                    "failed".to_owned()
                };
                ("error", t, verdict)
            }
            TestStatus::Flaky => {
                let Some((i, t)) = r.tries.iter().enumerate().find(|(_, t)| !t.passed) else {
                    return;
                };
                let verdict = format!(
                    "flaky: failed on try {}, passed on try {}",
                    i + 1,
                    r.tries.len()
                );
                ("warning", t, verdict)
            }
            TestStatus::Passed | TestStatus::Skipped => return,
        };
        if r.tries.len() == 1 && is_setup_failure(t, self.setup_failed.get(&r.id.suite)) {
            return;
        }
        let id = &r.id;
        let what = match t.failed_step() {
            Some(s) if s.phase == Phase::Steps => format!("step {:?}", s.name),
            Some(s) => format!("{} step {:?}", s.phase.as_str(), s.name),
            None => "setup/cleanup".to_owned(),
        };
        let title = format!("{}/{}: {what} {verdict}", id.suite, test_name(id));
        let (file, loc) = failure_loc(id, t);
        let line = annotation(level, file, loc, &title, &message(t));
        self.print(&line);
    }
}

impl Default for Github {
    fn default() -> Self {
        Github::new()
    }
}

/// What the annotation says: expected, headline, hints and how to reproduce (the full story
/// with responses and diffs is in the log and the JUnit report).
fn message(t: &TryReport) -> String {
    match t.failure() {
        Some(f) => failure_message(f),
        None => "failed".to_owned(),
    }
}

fn failure_message(f: &Failure) -> String {
    let mut lines = Vec::new();
    if let Some(e) = &f.expected {
        lines.push(format!("expected: {e}"));
    }
    lines.push(format!("{} [{}]", f.headline, failure_type(f)));
    for h in &f.hints {
        lines.push(format!("hint: {h}"));
    }
    if !f.reproduce.is_empty() {
        lines.push("reproduce:".to_owned());
        lines.extend(f.reproduce.iter().map(|r| format!("  {r}")));
    }
    lines.join("\n")
}

/// A workflow command line.
pub fn annotation(level: &str, file: &Path, loc: Loc, title: &str, message: &str) -> String {
    let mut props = vec![format!(
        "file={}",
        escape_property(&file.display().to_string())
    )];
    if loc.is_known() {
        props.push(format!("line={}", loc.line));
        if loc.col > 0 {
            props.push(format!("col={}", loc.col));
        }
    }
    props.push(format!(
        "title={}",
        escape_property(&crate::util::visible_controls(title))
    ));
    format!(
        "::{level} {}::{}",
        props.join(","),
        escape_data(&crate::util::visible_controls(message))
    )
}

/// The message part of a workflow command (as in @actions/core's `escapeData`).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value (as in @actions/core's `escapeProperty`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

impl Reporter for Github {
    fn event(&mut self, e: &Event) {
        match e {
            Event::SuiteSetupFailed {
                suite,
                file,
                failure,
            } => {
                self.setup_failed.insert(suite.clone(), failure.clone());
                let title = format!("suite {suite}: setup failed");
                let line = annotation(
                    "error",
                    file,
                    Loc::UNKNOWN,
                    &title,
                    &failure_message(failure),
                );
                self.print(&line);
            }
            Event::TestFinished { report } => self.test_finished(report),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::sample;

    use crate::report::test_output::Buf;

    fn lines(buf: &Buf) -> Vec<String> {
        String::from_utf8(buf.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn escaping_follows_the_actions_toolkit() {
        assert_eq!(escape_data("100% a,b: c\r\nd"), "100%25 a,b: c%0D%0Ad");
        assert_eq!(
            escape_property("100% a,b: c\r\nd"),
            "100%25 a%2Cb%3A c%0D%0Ad"
        );
        assert_eq!(
            annotation(
                "error",
                Path::new("a,b:c.yaml"),
                Loc::new(3, 7),
                "t: x",
                "m\nn"
            ),
            "::error file=a%2Cb%3Ac.yaml,line=3,col=7,title=t%3A x::m%0An"
        );
        assert_eq!(
            annotation("error", Path::new("s.yaml"), Loc::UNKNOWN, "t", "m"),
            "::error file=s.yaml,title=t::m"
        );
    }

    #[test]
    fn failed_and_flaky_tests_are_annotated_as_they_finish_at_the_failing_step() {
        let buf = Buf::default();
        let mut g = Github::with_output(Box::new(buf.clone()));
        let events = sample::events(true);
        // Nothing before the first failure event.
        let setup_at = events
            .iter()
            .position(|e| matches!(e, Event::SuiteSetupFailed { .. }))
            .unwrap();
        for e in &events[..setup_at] {
            g.event(e);
        }
        assert!(lines(&buf).is_empty());
        for e in &events[setup_at..] {
            g.event(e);
        }
        let got = lines(&buf);
        let common = "%0Ahint: raise timeout%0Areproduce:%0A  curl -sS -i 'http://gw/a?x=1&y=2'";
        assert_eq!(
            got,
            [
                "::error file=suites/infra/suite.yaml,title=suite infra%3A setup failed::\
                 fixture ../../fixtures/gw.yaml: the API server rejected it: 422 [error]"
                    .to_owned(),
                format!(
                    "::warning file={},line=24,col=5,title=web/flaky%3A step \"route answers\" \
                     flaky%3A failed on try 1%2C passed on try 2::expected: status 200%0A\
                     100%25 of 7 attempts got status 503, a,b: c [status]{common}",
                    sample::WEB_FILE
                ),
                format!(
                    "::error file={},line=44,col=5,title=web/broken%3A step \"route answers\" \
                     failed on all 3 tries::expected: status 200%0A\
                     try three: got status 500%0Asecond line [status]{common}",
                    sample::WEB_FILE
                ),
            ]
        );
    }

    #[test]
    fn a_test_failing_outside_a_step_points_at_the_test() {
        let buf = Buf::default();
        let mut g = Github::with_output(Box::new(buf.clone()));
        let id = sample::id("web", "ns", 12, 2);
        g.event(&Event::TestFinished {
            report: TestReport {
                id,
                status: TestStatus::Failed,
                duration: Default::default(),
                tries: vec![TryReport {
                    error: Some(Failure::error("creating namespace: forbidden")),
                    ..TryReport::new(false, Default::default(), Vec::new())
                }],
                skip_reason: None,
            },
        });
        assert_eq!(
            lines(&buf),
            [format!(
                "::error file={},line=12,col=1,title=web/ns#3%3A setup/cleanup failed::\
                 creating namespace: forbidden [error]",
                sample::WEB_FILE
            )]
        );
    }
}
