//! The JUnit XML reporter (`--junit PATH`), written with quick-junit on `finish()`, also when the
//! run was interrupted.
//!
//! - one `<testsuite>` per gwtest suite, in plan order, with `run-id` and `trace-id` properties;
//! - one `<testcase>` per test: `name` (`name#2` for the second `--repeat`), `classname` = the
//!   suite, `file` = the test file, `time`;
//! - a failed test: `<failure message="HEADLINE" type="CLASS">` whose text is the full story
//!   (failing step and location, expected, headline, hints, sections, reproduce commands),
//!   with `<rerunFailure>` for each earlier try when it was re-run (`retries`);
//! - a flaky test (passed on a re-run): a passing testcase with a `<flakyFailure>` per failed try;
//! - a skipped test: `<skipped message="REASON">`; a test that never ran because the run ended
//!   is skipped with `not run`; a suite whose setup failed fails its tests with that failure;
//! - notices about a test (and resources kept after it) go to its `<system-out>`, then a line
//!   per try saying how long its cleanup took (in the slot, and in the background), then a
//!   `[[ATTACHMENT|path]]` line per diagnostics file of its failed tries; the failure text
//!   ends with `diagnostics: N collected, see DIR`.

use std::path::PathBuf;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::Reporter;
use super::collect::{
    Record, SuiteRecord, failure_story, failure_type, is_setup_failure, story, test_name,
    write_atomic,
};
use crate::engine::events::{Event, TestReport, TestStatus, TryReport};

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
    pub fn render(&self) -> anyhow::Result<String> {
        let r = &self.record;
        let mut report = Report::new("gwtest");
        report.set_time(r.duration());
        for s in &r.suites {
            let mut suite = TestSuite::new(s.name.as_str());
            if let Some(d) = s.duration {
                suite.set_time(d);
            }
            suite.add_property(Property::new("run-id", r.run_id.as_str()));
            suite.add_property(Property::new("trace-id", r.trace_id.as_str()));
            if let Some(f) = &s.setup_error {
                let mut text = format!("suite setup failed ({})\n", s.file.display());
                text.push_str(&failure_story(f));
                suite.set_system_out(text);
            }
            for t in &s.tests {
                let report = r.outcome(s, t);
                let mut case = TestCase::new(test_name(&t.id), status(&report, s));
                case.set_classname(s.name.as_str());
                case.extra
                    .insert("file".into(), t.id.file.display().to_string().into());
                case.set_time(report.duration);
                let mut out = t.notices.clone();
                out.extend(t.cleanup_lines(&report));
                out.extend(attachments(&report));
                if !out.is_empty() {
                    case.set_system_out(out.join("\n"));
                }
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        Ok(report.to_string()?)
    }
}

/// The diagnostics files of the failed tries, as `[[ATTACHMENT|path]]` lines (the
/// convention GitLab and Jenkins show as attachments of a test case).
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

/// The failed try's headline, type and story.
fn describe(report: &TestReport, t: &TryReport, suite: &SuiteRecord) -> (String, String, String) {
    let setup = is_setup_failure(t, suite.setup_error.as_ref()).then_some(suite.file.as_path());
    let text = story(&report.id, t, setup);
    match t.failure() {
        Some(f) => {
            let headline = if setup.is_some() {
                format!("suite setup failed: {}", f.headline)
            } else {
                f.headline.clone()
            };
            (headline, failure_type(f), text)
        }
        None => ("failed".into(), "error".into(), text),
    }
}

fn rerun(report: &TestReport, t: &TryReport, suite: &SuiteRecord) -> TestRerun {
    let (message, ty, text) = describe(report, t, suite);
    let mut r = TestRerun::new(NonSuccessKind::Failure);
    r.set_message(message)
        .set_type(ty)
        .set_description(text)
        .set_time(t.duration);
    r
}

fn status(report: &TestReport, suite: &SuiteRecord) -> TestCaseStatus {
    match report.status {
        TestStatus::Passed => TestCaseStatus::success(),
        TestStatus::Flaky => {
            let mut st = TestCaseStatus::success();
            st.add_reruns(
                report
                    .tries
                    .iter()
                    .filter(|t| !t.passed)
                    .map(|t| rerun(report, t, suite)),
            );
            st
        }
        TestStatus::Failed => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            if let Some((last, earlier)) = report.tries.split_last() {
                let (message, ty, text) = describe(report, last, suite);
                st.set_message(message).set_type(ty).set_description(text);
                st.add_reruns(earlier.iter().map(|t| rerun(report, t, suite)));
            } else {
                st.set_message("failed");
            }
            st
        }
        TestStatus::Skipped => {
            let mut st = TestCaseStatus::skipped();
            if let Some(reason) = &report.skip_reason {
                st.set_message(reason.as_str());
            }
            st
        }
    }
}

impl Reporter for Junit {
    fn event(&mut self, e: &Event) {
        self.record.event(e);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let xml = self.render()?;
        write_atomic(&self.path, xml.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::sample;
    use quick_junit::FlakyOrRerun;
    use std::time::Duration;

    fn render(complete: bool) -> (String, Report) {
        let mut j = Junit::new(PathBuf::from("unused.xml"));
        for e in sample::events(complete) {
            j.event(&e);
        }
        let xml = j.render().unwrap();
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
        let (_, r) = render(true);
        let suites: Vec<&str> = r.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(suites, ["web", "infra"]);
        let web = &r.test_suites[0];
        let names: Vec<&str> = web.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ok", "ok#2", "flaky", "broken", "later", "never"]);
        assert_eq!((r.tests, r.failures, r.skipped, r.errors), (8, 3, 1, 0));
        assert_eq!((web.tests, web.failures, web.skipped), (6, 1, 1));
        assert_eq!(web.time, Some(Duration::from_millis(9000)));
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
            assert_eq!(
                c.extra.get("file").map(|x| x.as_str()),
                Some(sample::WEB_FILE)
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
        // A try whose background deletion never reported: the run ended first.
        assert_eq!(
            case(&r, "web", "ok#2")
                .system_out
                .as_ref()
                .map(|s| s.as_str()),
            Some(
                "cleanup (try 1): 0.0s; namespace gwtest-t-def456 still being deleted when the \
                 run ended"
            )
        );
    }

    #[test]
    fn failures_carry_headline_class_and_the_full_story_with_earlier_tries_as_reruns() {
        let (xml, r) = render(true);
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
        assert_eq!(reruns.runs[0].time, Some(Duration::from_millis(3100)));
        assert_eq!(xml.matches("<rerunFailure ").count(), 2);
        // Special characters are escaped, not breaking the XML.
        assert!(xml.contains("try one: got status 503 &lt;body&gt; &amp; &quot;quotes&quot;"));
    }

    #[test]
    fn flaky_tests_pass_with_a_flaky_failure_per_failed_try() {
        let (xml, r) = render(true);
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
        assert!(run.description.as_ref().unwrap().as_str().starts_with(
            "step 2 \"route answers\" (request) failed at suites/web/routes.test.yaml:24:5\n"
        ));
        assert_eq!(xml.matches("<flakyFailure ").count(), 1);
        assert!(matches!(
            case(&r, "web", "ok#2").status,
            TestCaseStatus::Success { ref flaky_runs } if flaky_runs.is_empty()
        ));
    }

    #[test]
    fn skipped_tests_and_suite_setup_failures() {
        let (_, r) = render(true);
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
    fn an_interrupted_run_is_written_with_the_unfinished_tests_skipped() {
        let dir = std::env::temp_dir().join(format!(
            "gwtest-junit-{}-{}",
            std::process::id(),
            crate::util::random_suffix(6)
        ));
        let path = dir.join("nested/report.xml");
        let mut j = Junit::new(path.clone());
        for e in sample::events(false) {
            j.event(&e);
        }
        j.finish().unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        let r = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((r.tests, r.failures, r.skipped), (8, 3, 2));
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
