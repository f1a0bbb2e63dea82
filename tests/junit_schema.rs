//! The JUnit reports of the real binary are valid against Jenkins' `junit-10.xsd` (the schema
//! the Jenkins xUnit plugin enforces; tests/junit-10.xsd is an unmodified copy of
//! jenkinsci/xunit-plugin's), for a passing, a failing, a flaky and an interrupted run, and for
//! a merged report. The validator is xmllint (Debian: libxml2-utils), which
//! `ci/install-deps.sh` installs: without it these tests fail, they never skip.

mod support;

use std::time::Duration;

use support::{Workspace, assert_valid_junit, eventually, test_doc};

const STEPS_PASS: &str = "  - name: succeed\n    exec:\n      command: [\"true\"]\n";
const STEPS_FAIL: &str = "  - name: boom\n    timeout: 300ms\n    exec:\n      \
     command: [sh, -c, \"printf 'no luck \\\\033[31mred\\\\033[0m <&>'; exit 1\"]\n";
const STEPS_FLAKY: &str = "  - name: count tries\n    exec:\n      \
     command: [sh, -c, \"echo x >> tries.txt\"]\n  - name: second try passes\n    \
     timeout: 300ms\n    exec:\n      command: [sh, -c, \"test $(wc -l < tries.txt) -ge 2\"]\n";

/// Suite `suite` with the tests `docs` in its file `file`.
fn suite_with(ws: &Workspace, suite: &str, file: &str, docs: &[String]) {
    ws.suite(suite, &format!("name: {suite}"));
    ws.write(&format!("{suite}/{file}"), &docs.join("---\n"));
}

/// The report `name` in the workspace, checked against the schema.
fn valid_junit(ws: &Workspace, name: &str) -> String {
    let file = ws.path().join(name);
    assert_valid_junit(&file);
    std::fs::read_to_string(&file).unwrap()
}

#[test]
fn passing_failing_and_flaky_runs_are_valid() {
    let ws = Workspace::new("junit-xsd");
    suite_with(
        &ws,
        "web",
        "checks.test.yaml",
        &[
            test_doc("passes", "", STEPS_PASS),
            test_doc("fails", "retries: 1", STEPS_FAIL),
            test_doc("flaky", "retries: 1", STEPS_FLAKY),
        ],
    );
    suite_with(
        &ws,
        "ok",
        "a.test.yaml",
        &[test_doc("only", "", STEPS_PASS)],
    );

    // A run where everything passes.
    let out = ws
        .gwtest(&["run", "ok", "--junit", "pass.xml", "--repeat", "2"])
        .run();
    out.assert_exit(0);
    valid_junit(&ws, "pass.xml");

    // Failures (with a re-run) and a flaky test.
    let out = ws
        .gwtest(&["run", "web", "ok", "--junit", "mixed.xml"])
        .run();
    out.assert_exit(1);
    let xml = valid_junit(&ws, "mixed.xml");
    for want in [
        "<flakyFailure message=",
        "<rerunFailure message=",
        "<stackTrace>step 2 \"second try passes\" (exec) failed at",
        "<failure message=",
        "hostname=\"",
        "timestamp=\"",
        // What the exec echoed: escaped, its escape sequence visible.
        "no luck \\x1b[31mred\\x1b[0m &lt;&amp;&gt;",
    ] {
        assert!(xml.contains(want), "no {want:?} in:\n{xml}");
    }
    assert!(!xml.contains('\u{1b}'), "{xml}");
}

#[test]
fn an_interrupted_run_is_valid_and_its_cut_test_is_skipped_not_failed() {
    let ws = Workspace::new("junit-xsd-int");
    suite_with(
        &ws,
        "slow",
        "s.test.yaml",
        &[
            test_doc("first", "", STEPS_PASS),
            test_doc(
                "waits",
                "",
                "  - name: wait\n    timeout: 60s\n    exec:\n      \
                 command: [sh, -c, \"touch waits.started; sleep 30\"]\n",
            ),
        ],
    );
    let mut run = ws
        .gwtest(&["run", "slow", "-j", "1", "--junit", "int.xml"])
        .spawn();
    assert!(
        eventually(Duration::from_secs(30), || ws
            .path()
            .join("slow/waits.started")
            .exists()),
        "the test never started"
    );
    run.signal(libc::SIGINT);
    let out = run.wait();
    out.assert_exit(130);
    let xml = valid_junit(&ws, "int.xml");
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert!(xml.contains("<skipped message=\"interrupted\">"), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}
