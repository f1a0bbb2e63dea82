//! The JUnit XML reporter (`--junit PATH`), written on `finish()`, also when the run was
//! interrupted. The file is valid against Jenkins' `junit-10.xsd` (the schema the xUnit plugin
//! enforces and pytest's output follows; a copy is in tests/junit-10.xsd, which
//! tests/junit_schema.rs validates against), and keeps nextest's conventions for re-runs:
//!
//! - `<testsuites name="gwtest" tests failures errors time>`;
//! - one `<testsuite>` per gwtest suite, in plan order, with `timestamp` (when it started),
//!   `hostname`, `file` (its suite.yaml), `skipped`, and `run-id`/`trace-id` properties (one
//!   pair per shard in a merged report);
//! - one `<testcase>` per test: `name` (`name#2` for the second `--repeat`), `classname` = the
//!   suite, `time`;
//! - a failed test: `<failure message="HEADLINE" type="CLASS">` whose text is the full story
//!   (failing step and location, expected, headline, hints, what the test echoed, reproduce
//!   commands), with a `<rerunFailure>` for each earlier try when it was re-run;
//! - a flaky test (passed on a re-run): a passing testcase with a `<flakyFailure>` per failed
//!   try. In both kinds of re-run the story is in `<stackTrace>` and what the test echoed (the
//!   last response, an exec's output) in `<system-out>`, as nextest writes them;
//! - a skipped test: `<skipped message="REASON">`; a test cut short by Ctrl-C before any step
//!   failed is skipped with `interrupted` (and the story of where it stopped), one that never
//!   ran because the run ended is skipped with `not run` (`not run: the run could not start:
//!   WHY` when what the run needs could not be brought up, exit 3); a suite whose setup failed fails its
//!   tests with that failure;
//! - notices about a test (and resources kept after it) go to its `<system-out>`, then a line
//!   per try saying how long its cleanup took (in the slot, and in the background), then a
//!   `[[ATTACHMENT|path]]` line per diagnostics file of its failed tries; the failure text
//!   ends with `diagnostics: N collected, see DIR`.
//!
//! quick-junit (used to read reports back in tests) always writes `skipped` on
//! `<testsuites>`, which junit-10.xsd rejects, so the file is written here.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::Reporter;
use super::collect::{
    Record, SuiteRecord, failure_story, failure_type, is_setup_failure, output, story,
    story_without_output, test_name, write_atomic,
};
use crate::engine::events::{Event, TestReport, TestStatus, TryReport};
use crate::util::visible_controls;

pub struct Junit {
    path: PathBuf,
    record: Record,
}

impl Junit {
    pub fn new(path: PathBuf) -> Self {
        Junit {
            path,
            record: Record::new(),
        }
    }

    /// The report as XML.
    pub fn render(&self) -> String {
        render(&self.record)
    }
}

/// A `[[ATTACHMENT|path]]` line (the Jenkins JUnit attachments convention) per diagnostics
/// file of the test's failed tries.
fn attachments(report: &TestReport) -> Vec<String> {
    report
        .tries
        .iter()
        .filter_map(|t| t.failure()?.diagnostics.as_ref())
        .flat_map(|d| {
            d.files
                .iter()
                .map(|f| format!("[[ATTACHMENT|{}]]", d.dir.join(f).display()))
        })
        .collect()
}

/// Escaped for XML; control characters (not valid in XML 1.0, or terminal escape sequences a
/// viewer would show as garbage) made visible. In an attribute also quotes, and line breaks
/// and tabs as character references (an XML parser would turn them into spaces otherwise).
fn escape(s: &str, attribute: bool) -> String {
    let s = visible_controls(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn attr(s: &str) -> String {
    escape(s, true)
}

fn text(s: &str) -> String {
    escape(s, false)
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `<name attrs>text</name>`, or `<name attrs/>` without text.
fn element(
    out: &mut String,
    indent: &str,
    name: &str,
    attrs: &[(&str, String)],
    body: Option<&str>,
) {
    let _ = write!(out, "{indent}<{name}");
    for (k, v) in attrs {
        let _ = write!(out, " {k}=\"{}\"", attr(v));
    }
    match body {
        Some(b) => {
            let _ = writeln!(out, ">{}</{name}>", text(b));
        }
        None => out.push_str("/>\n"),
    }
}

/// The failed try's headline, type and story.
fn describe(
    report: &TestReport,
    t: &TryReport,
    suite: &SuiteRecord,
    with_output: bool,
) -> (String, String, String) {
    let setup = is_setup_failure(t, suite.setup_error.as_ref()).then_some(suite.file.as_path());
    let story = if with_output {
        story(&report.id, t, setup)
    } else {
        story_without_output(&report.id, t, setup)
    };
    match t.failure() {
        Some(f) => {
            let headline = if setup.is_some() {
                format!("suite setup failed: {}", f.headline)
            } else {
                f.headline.clone()
            };
            (headline, failure_type(f), story)
        }
        None => ("failed".into(), "error".into(), story),
    }
}

/// A `<flakyFailure>` or `<rerunFailure>`: attributes `message` and `type` (required by the
/// schema, which has no `time`), the story in `<stackTrace>`, the echoed output in
/// `<system-out>`.
fn rerun(out: &mut String, tag: &str, report: &TestReport, t: &TryReport, suite: &SuiteRecord) {
    let (message, ty, story) = describe(report, t, suite, false);
    let _ = writeln!(
        out,
        "      <{tag} message=\"{}\" type=\"{}\">",
        attr(&message),
        attr(&ty)
    );
    element(out, "        ", "stackTrace", &[], Some(&story));
    if let Some(o) = output(t) {
        element(out, "        ", "system-out", &[], Some(&o));
    }
    let _ = writeln!(out, "      </{tag}>");
}

fn testcase(out: &mut String, r: &Record, s: &SuiteRecord, t: &super::collect::TestRecord) {
    let report = r.outcome(s, t);
    let attrs = [
        ("name", test_name(&t.id)),
        ("classname", s.name.clone()),
        ("time", secs(report.duration)),
    ];
    let mut body = String::new();
    match report.status {
        TestStatus::Passed => {}
        TestStatus::Flaky => {
            for tr in report.tries.iter().filter(|tr| !tr.passed) {
                rerun(&mut body, "flakyFailure", &report, tr, s);
            }
        }
        TestStatus::Failed => match report.tries.split_last() {
            Some((last, earlier)) => {
                let (message, ty, story) = describe(&report, last, s, true);
                element(
                    &mut body,
                    "      ",
                    "failure",
                    &[("message", message), ("type", ty)],
                    Some(&story),
                );
                for tr in earlier {
                    rerun(&mut body, "rerunFailure", &report, tr, s);
                }
            }
            None => element(
                &mut body,
                "      ",
                "failure",
                &[("message", "failed".into()), ("type", "error".into())],
                None,
            ),
        },
        TestStatus::Skipped => {
            let reason = report
                .skip_reason
                .clone()
                .unwrap_or_else(|| "skipped".into());
            // Cut short by Ctrl-C: where it stopped.
            let story = report
                .tries
                .last()
                .filter(|tr| tr.failure().is_some())
                .map(|tr| story(&report.id, tr, None));
            element(
                &mut body,
                "      ",
                "skipped",
                &[("message", reason)],
                story.as_deref(),
            );
        }
    }
    let mut lines = t.notices.clone();
    lines.extend(t.cleanup_lines(&report));
    lines.extend(attachments(&report));
    if !lines.is_empty() {
        element(
            &mut body,
            "      ",
            "system-out",
            &[],
            Some(&lines.join("\n")),
        );
    }
    if body.is_empty() {
        element(out, "    ", "testcase", &attrs, None);
    } else {
        let _ = write!(out, "    <testcase");
        for (k, v) in &attrs {
            let _ = write!(out, " {k}=\"{}\"", attr(v));
        }
        out.push_str(">\n");
        out.push_str(&body);
        out.push_str("    </testcase>\n");
    }
}

/// The runs (run id, trace id) that produced a suite's results.
fn runs_of(r: &Record, s: &SuiteRecord) -> Vec<(String, String)> {
    if r.merged.is_empty() {
        return vec![(r.run_id.clone(), r.trace_id.clone())];
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for t in &s.tests {
        if let Some(m) = t.shard.and_then(|i| r.merged.get(i)) {
            let pair = (m.run_id.clone(), m.trace_id.clone());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

/// A whole record as JUnit XML.
pub fn render(r: &Record) -> String {
    let mut suites = String::new();
    let (mut total, mut failed) = (0usize, 0usize);
    for s in &r.suites {
        let statuses: Vec<TestStatus> = s.tests.iter().map(|t| r.outcome(s, t).status).collect();
        let count = |st: TestStatus| statuses.iter().filter(|x| **x == st).count();
        let (tests, failures, skipped) = (
            statuses.len(),
            count(TestStatus::Failed),
            count(TestStatus::Skipped),
        );
        total += tests;
        failed += failures;
        let mut attrs = vec![
            ("name", s.name.clone()),
            ("tests", tests.to_string()),
            ("failures", failures.to_string()),
            ("errors", "0".to_string()),
            ("skipped", skipped.to_string()),
        ];
        if let Some(d) = s.duration {
            attrs.push(("time", secs(d)));
        }
        if let Some(t) = s.started {
            attrs.push(("timestamp", timestamp(t)));
        }
        let host = suite_hostname(r, s);
        if !host.is_empty() {
            attrs.push(("hostname", host));
        }
        attrs.push(("file", s.file.display().to_string()));
        let _ = write!(suites, "  <testsuite");
        for (k, v) in &attrs {
            let _ = write!(suites, " {k}=\"{}\"", attr(v));
        }
        suites.push_str(">\n    <properties>\n");
        for (run_id, trace_id) in runs_of(r, s) {
            element(
                &mut suites,
                "      ",
                "property",
                &[("name", "run-id".into()), ("value", run_id)],
                None,
            );
            element(
                &mut suites,
                "      ",
                "property",
                &[("name", "trace-id".into()), ("value", trace_id)],
                None,
            );
        }
        suites.push_str("    </properties>\n");
        for t in &s.tests {
            testcase(&mut suites, r, s, t);
        }
        if let Some(f) = &s.setup_error {
            let mut t = format!("suite setup failed ({})\n", s.file.display());
            t.push_str(&failure_story(f));
            element(&mut suites, "    ", "system-out", &[], Some(t.trim_end()));
        }
        suites.push_str("  </testsuite>\n");
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"gwtest\" tests=\"{total}\" failures=\"{failed}\" errors=\"0\" time=\"{}\">",
        secs(r.duration())
    );
    out.push_str(&suites);
    out.push_str("</testsuites>\n");
    out
}

/// The machine a suite ran on: the run's, or in a merged record the shard's that ran its
/// first test.
fn suite_hostname(r: &Record, s: &SuiteRecord) -> String {
    s.tests
        .iter()
        .find_map(|t| t.shard.and_then(|i| r.merged.get(i)))
        .map_or_else(|| r.hostname.clone(), |m| m.hostname.clone())
}

impl Reporter for Junit {
    fn event(&mut self, e: &Event) {
        self.record.event(e);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let xml = self.render();
        write_atomic(&self.path, xml.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::sample;
    use quick_junit::{FlakyOrRerun, NonSuccessKind, Report, TestCase, TestCaseStatus};

    fn render_sample(complete: bool) -> (String, Report) {
        let mut j = Junit::new(PathBuf::from("unused.xml"));
        sample::feed(&mut j, complete);
        let xml = j.render();
        let parsed = Report::deserialize_from_str(&xml).unwrap();
        (xml, parsed)
    }

    fn case<'a>(r: &'a Report, suite: &str, name: &str) -> &'a TestCase {
        r.test_suites
            .iter()
            .find(|s| s.name.as_str() == suite)
            .and_then(|s| s.test_cases.iter().find(|c| c.name.as_str() == name))
            .unwrap_or_else(|| panic!("no testcase {suite}/{name}"))
    }

    #[test]
    fn one_testsuite_per_suite_in_plan_order_and_one_testcase_per_test() {
        let (xml, r) = render_sample(true);
        let suites: Vec<&str> = r.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(suites, ["web", "infra"]);
        let web = &r.test_suites[0];
        let names: Vec<&str> = web.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ok", "ok#2", "flaky", "broken", "later", "never"]);
        assert_eq!((r.tests, r.failures, r.errors), (8, 3, 0));
        // junit-10.xsd has no `skipped` on <testsuites>: only the suites count them.
        assert!(xml.contains("<testsuites name=\"gwtest\" tests=\"8\" failures=\"3\" errors=\"0\" time=\"9.500\">"), "{xml}");
        assert_eq!((web.tests, web.failures, web.skipped), (6, 1, 1));
        assert_eq!(web.time, Some(Duration::from_millis(9000)));
        assert!(web.timestamp.is_some(), "{xml}");
        assert_eq!(
            web.extra.get("file").map(|x| x.as_str()),
            Some("suites/web/suite.yaml")
        );
        assert!(web.extra.contains_key("hostname"));
        let props: Vec<(&str, &str)> = web
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("run-id", "run-1"),
                ("trace-id", "0af7651916cd43dd8448eb211c80319c")
            ]
        );
        for c in &web.test_cases {
            assert_eq!(c.classname.as_ref().map(|x| x.as_str()), Some("web"));
            assert!(
                c.extra.is_empty(),
                "no attributes junit-10.xsd lacks: {:?}",
                c.extra
            );
        }
        assert_eq!(case(&r, "web", "ok").time, Some(Duration::from_millis(40)));
        assert_eq!(
            case(&r, "web", "ok")
                .system_out
                .as_ref()
                .map(|s| s.as_str()),
            Some(
                "cleanup: namespace gwtest-t-def456 took 20s to go\n\
                 cleanup (try 1): 0.0s; namespace gwtest-t-def456 gone after 5.1s in the background"
            )
        );
    }

    #[test]
    fn failures_carry_headline_class_and_the_full_story_with_earlier_tries_as_reruns() {
        let (xml, r) = render_sample(true);
        let TestCaseStatus::NonSuccess {
            kind,
            message,
            ty,
            description,
            reruns,
        } = &case(&r, "web", "broken").status
        else {
            panic!("broken is not a failure");
        };
        assert_eq!(*kind, NonSuccessKind::Failure);
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "try three: got status 500\nsecond line"
        );
        assert_eq!(ty.as_ref().unwrap().as_str(), "status");
        let body = description.as_ref().unwrap().as_str();
        for want in [
            "step 2 \"route answers\" (request) failed at suites/web/routes.test.yaml:44:5\n",
            "expected: status 200\n",
            "try three: got status 500\nsecond line [status]\n",
            "hint: raise timeout\n",
            "last response:\n    HTTP/1.1 503\n    \n    no healthy upstream\n",
            "reproduce:\n    curl -sS -i 'http://gw/a?x=1&y=2'\n",
            "steps: ✓ apply route (0.0s)  ✗ route answers (3.0s, 7 attempts)  · afterwards (not run)\n",
            "\nnamespace: gwtest-t-abc123",
        ] {
            assert!(body.contains(want), "missing {want:?} in:\n{body}");
        }
        assert!(body.ends_with("namespace: gwtest-t-abc123"), "{body}");
        assert_eq!(reruns.kind, FlakyOrRerun::Rerun);
        let msgs: Vec<&str> = reruns
            .runs
            .iter()
            .map(|x| x.message.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(
            msgs,
            [
                "try one: got status 503 <body> & \"quotes\"",
                "try two: got status 502"
            ]
        );
        // nextest's layout: the story in <stackTrace>, what the test echoed in <system-out>,
        // no `time` (junit-10.xsd has none on re-runs).
        let first = &reruns.runs[0];
        assert_eq!(first.time, None);
        assert_eq!(first.description, None);
        let trace = first.stack_trace.as_ref().unwrap().as_str();
        assert!(
            trace.starts_with("step 2 \"route answers\" (request) failed at"),
            "{trace}"
        );
        assert!(!trace.contains("no healthy upstream"), "{trace}");
        assert_eq!(
            first.system_out.as_ref().unwrap().as_str(),
            "last response:\n    HTTP/1.1 503\n    \n    no healthy upstream"
        );
        assert_eq!(xml.matches("<rerunFailure ").count(), 2);
        // Special characters are escaped, not breaking the XML.
        assert!(xml.contains("try one: got status 503 &lt;body&gt; &amp; &quot;quotes&quot;"));
    }

    #[test]
    fn flaky_tests_pass_with_a_flaky_failure_per_failed_try() {
        let (xml, r) = render_sample(true);
        let TestCaseStatus::Success { flaky_runs } = &case(&r, "web", "flaky").status else {
            panic!("flaky is not a success");
        };
        assert_eq!(flaky_runs.len(), 1);
        let run = &flaky_runs[0];
        assert_eq!(run.kind, NonSuccessKind::Failure);
        assert_eq!(
            run.message.as_ref().unwrap().as_str(),
            "100% of 7 attempts got status 503, a,b: c"
        );
        assert_eq!(run.ty.as_ref().unwrap().as_str(), "status");
        assert!(run.stack_trace.as_ref().unwrap().as_str().starts_with(
            "step 2 \"route answers\" (request) failed at suites/web/routes.test.yaml:24:5\n"
        ));
        assert!(
            run.system_out
                .as_ref()
                .unwrap()
                .as_str()
                .contains("no healthy upstream")
        );
        assert_eq!(xml.matches("<flakyFailure ").count(), 1);
        assert!(matches!(
            case(&r, "web", "ok#2").status,
            TestCaseStatus::Success { ref flaky_runs } if flaky_runs.is_empty()
        ));
    }

    #[test]
    fn skipped_tests_and_suite_setup_failures() {
        let (_, r) = render_sample(true);
        let TestCaseStatus::Skipped { message, .. } = &case(&r, "web", "later").status else {
            panic!("later is not skipped");
        };
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "fail-fast: an earlier test failed"
        );
        let infra = &r.test_suites[1];
        assert_eq!((infra.tests, infra.failures), (2, 2));
        for name in ["a", "b"] {
            let TestCaseStatus::NonSuccess {
                message,
                ty,
                description,
                ..
            } = &case(&r, "infra", name).status
            else {
                panic!("{name} is not a failure");
            };
            assert_eq!(
                message.as_ref().unwrap().as_str(),
                "suite setup failed: fixture ../../fixtures/gw.yaml: the API server rejected it: 422"
            );
            assert_eq!(ty.as_ref().unwrap().as_str(), "error");
            assert!(
                description
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .starts_with("suite setup failed (suites/infra/suite.yaml)\n")
            );
        }
        let out = infra.system_out.as_ref().unwrap().as_str();
        assert!(out.starts_with("suite setup failed (suites/infra/suite.yaml)\nfixture"));
    }

    #[test]
    fn control_characters_in_echoed_output_are_visible_and_the_xml_stays_valid() {
        let mut j = Junit::new(PathBuf::from("unused.xml"));
        let mut events = sample::events(true);
        for e in &mut events {
            if let Event::TestFinished { report } = e
                && report.id.name == "broken"
                && let Some(f) = report.tries[2].steps[1].failure.as_mut()
            {
                f.sections[0].body = "\u{1b}[31mred\u{0}\u{8}".into();
            }
        }
        for e in &events {
            j.event(e);
        }
        let xml = j.render();
        assert!(!xml.chars().any(|c| c.is_control() && c != '\n'), "{xml}");
        assert!(xml.contains("\\x1b[31mred\\x00\\x08"), "{xml}");
        Report::deserialize_from_str(&xml).unwrap();
    }

    #[test]
    fn an_interrupted_run_is_written_with_the_unfinished_tests_skipped() {
        let dir = crate::util::test_dir("junit");
        let path = dir.join("nested/report.xml");
        let mut j = Junit::new(path.clone());
        sample::feed(&mut j, false);
        j.finish().unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        let r = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((r.tests, r.failures), (8, 3));
        let skipped: usize = r.test_suites.iter().map(|s| s.skipped).sum();
        assert_eq!(skipped, 2);
        let TestCaseStatus::Skipped { message, .. } = &case(&r, "web", "never").status else {
            panic!("never is not skipped");
        };
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "not run: the run was interrupted"
        );
        // The web suite never finished: no time rather than a made-up one.
        assert_eq!(r.test_suites[0].time, None);
        let left: Vec<_> = std::fs::read_dir(dir.join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["report.xml"], "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
