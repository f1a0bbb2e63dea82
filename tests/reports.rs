//! The JUnit, JSON and GitHub-annotation reporters through the real binary, with suites of
//! `exec` steps only (no cluster): a pass, a failure, a flaky test, and an interrupted run.

mod support;

use quick_junit::{FlakyOrRerun, Report, TestCaseStatus};
use support::{RunOutput, Workspace};

/// `gwtest ARGS` in `ws` as GitHub Actions runs it.
fn gwtest(ws: &Workspace, args: &[&str]) -> support::Running {
    ws.gwtest(args).env("GITHUB_ACTIONS", "true").spawn()
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

const CHECKS: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: passes
steps:
  - name: succeed
    exec:
      command: ["true"]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: fails
steps:
  - name: fine
    exec:
      command: ["true"]
  - name: boom
    timeout: 300ms
    exec:
      command: [sh, -c, "echo no luck; exit 1"]
  - name: never reached
    exec:
      command: ["true"]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: flaky
retries: 1
steps:
  - name: count tries
    exec:
      command: [sh, -c, "echo x >> tries.txt"]
  - name: second try passes
    timeout: 300ms
    exec:
      command: [sh, -c, "test $(wc -l < tries.txt) -ge 2"]
"#;

#[test]
fn junit_json_and_annotations_for_a_pass_a_failure_and_a_flaky_test() {
    let ws = Workspace::new("reports");
    let dir = ws.path();
    ws.suite("web", "name: web");
    ws.write("web/checks.test.yaml", CHECKS);
    let out = gwtest(
        &ws,
        &[
            "run",
            "web",
            "--junit",
            "out/junit.xml",
            "--json",
            "out/report.json",
        ],
    )
    .wait();
    out.assert_exit(1);
    let stdout = &out.stdout;

    // GitHub annotations, at the failing steps.
    let boom = line_of(CHECKS, "- name: boom");
    let second = line_of(CHECKS, "- name: second try passes");
    let error = format!(
        "::error file=web/checks.test.yaml,line={boom},col=5,title=web/fails%3A step \"boom\" failed::expected: exit 0%0A"
    );
    let warning = format!(
        "::warning file=web/checks.test.yaml,line={second},col=5,title=web/flaky%3A step \"second try passes\" flaky%3A failed on try 1%2C passed on try 2::"
    );
    // (Echoed output is fenced with ::stop-commands:: lines; the annotations are the rest.)
    let annotations: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("::error ") || l.starts_with("::warning "))
        .collect();
    // The failure, the re-run notice and the flaky test's story.
    assert_eq!(stdout.matches("::stop-commands::").count(), 3, "{stdout}");
    assert_eq!(annotations.len(), 2, "{stdout}");
    assert!(
        annotations.iter().any(|l| l.starts_with(&error)),
        "no {error:?} in:\n{stdout}"
    );
    assert!(
        annotations.iter().any(|l| l.starts_with(&warning)),
        "no {warning:?} in:\n{stdout}"
    );

    // JUnit.
    let xml = std::fs::read_to_string(dir.join("out/junit.xml")).unwrap();
    let r = Report::deserialize_from_str(&xml).unwrap();
    assert_eq!((r.tests, r.failures), (3, 1), "{xml}");
    assert_eq!(r.test_suites.len(), 1);
    let suite = &r.test_suites[0];
    assert_eq!(suite.name.as_str(), "web");
    assert_eq!(suite.skipped, 0);
    assert_eq!(suite.extra.get("file").unwrap().as_str(), "web/suite.yaml");
    let case = |n: &str| {
        suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == n)
            .unwrap_or_else(|| panic!("no testcase {n} in {xml}"))
    };
    for n in ["passes", "fails", "flaky"] {
        let c = case(n);
        assert_eq!(c.classname.as_ref().unwrap().as_str(), "web");
        assert!(c.time.is_some());
    }
    assert!(matches!(
        &case("passes").status,
        TestCaseStatus::Success { flaky_runs } if flaky_runs.is_empty()
    ));
    match &case("fails").status {
        TestCaseStatus::NonSuccess {
            message,
            ty,
            description,
            reruns,
            ..
        } => {
            assert!(
                message.as_ref().unwrap().as_str().contains("exit 1"),
                "{xml}"
            );
            assert_eq!(ty.as_ref().unwrap().as_str(), "exit");
            let body = description.as_ref().unwrap().as_str();
            for want in [
                format!("step 2 \"boom\" (exec) failed at web/checks.test.yaml:{boom}:5"),
                "expected: exit 0".to_owned(),
                "no luck".to_owned(),
                "reproduce:".to_owned(),
                "· never reached (not run)".to_owned(),
            ] {
                assert!(body.contains(&want), "no {want:?} in:\n{body}");
            }
            assert!(reruns.runs.is_empty(), "no retries, no reruns");
        }
        other => panic!("fails: {other:?}"),
    }
    match &case("flaky").status {
        TestCaseStatus::Success { flaky_runs } => {
            assert_eq!(flaky_runs.len(), 1, "{xml}");
            assert_eq!(flaky_runs[0].ty.as_ref().unwrap().as_str(), "exit");
        }
        other => panic!("flaky: {other:?}"),
    }

    // JSON.
    let v = ws.json("out/report.json");
    assert_eq!(v["interrupted"], false);
    assert_eq!(
        v["counts"],
        serde_json::json!({"passed": 1, "flaky": 1, "failed": 1, "skipped": 0, "total": 3})
    );
    assert_eq!(v["trace_id"].as_str().unwrap().len(), 32);
    let s = &v["suites"][0];
    assert_eq!(s["name"], "web");
    assert_eq!(s["file"], "web/suite.yaml");
    let tests = s["tests"].as_array().unwrap();
    let t = |n: &str| tests.iter().find(|t| t["name"] == n).unwrap();
    assert_eq!(t("passes")["status"], "passed");
    assert_eq!(t("fails")["status"], "failed");
    assert_eq!(t("fails")["line"], line_of(CHECKS, "name: fails") - 2);
    let steps = t("fails")["tries"][0]["steps"].as_array().unwrap();
    let statuses: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "not-run"]);
    assert_eq!(steps[1]["line"], boom);
    assert_eq!(steps[1]["kind"], "exec");
    assert_eq!(steps[1]["failure"]["class"], "exit");
    assert_eq!(steps[1]["failure"]["expected"], "exit 0");
    assert!(steps[1]["attempts"].as_u64().unwrap() >= 1);
    let flaky = t("flaky");
    assert_eq!(flaky["status"], "flaky");
    let tries: Vec<bool> = flaky["tries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(tries, [false, true]);
}

#[test]
fn an_interrupted_run_still_writes_both_reports() {
    let ws = Workspace::new("reports-int");
    let dir = ws.path();
    ws.suite("slow", "name: slow");
    let test = |n: &str| {
        format!(
            "apiVersion: gwtest/v1alpha1\nkind: Test\nname: {n}\nsteps:\n  - name: wait\n    \
             timeout: 60s\n    exec:\n      command: [sh, -c, \"touch {n}.started; sleep 30\"]\n"
        )
    };
    ws.write(
        "slow/s.test.yaml",
        &format!("{}---\n{}", test("one"), test("two")),
    );
    let mut run = gwtest(
        &ws,
        &[
            "run",
            "slow",
            "-j",
            "1",
            "--junit",
            "junit.xml",
            "--json",
            "report.json",
        ],
    );
    // Ready: a test's step is running (it touches its file, then sleeps).
    run.wait_for("a test started", || {
        dir.join("slow/one.started").exists() || dir.join("slow/two.started").exists()
    });
    run.signal(libc::SIGINT);
    let out: RunOutput = run.wait();
    out.assert_exit(130);

    let v = ws.json("report.json");
    assert_eq!(v["interrupted"], true);
    let tests = v["suites"][0]["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2);
    let statuses: Vec<&str> = tests
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    // Cut short (one) or never started (the other): both interrupted, neither failed.
    assert_eq!(statuses, ["skipped", "skipped"], "{v:#}");
    assert!(
        tests.iter().all(|t| t["skip_reason"] == "interrupted"),
        "{v:#}"
    );
    let cut = tests
        .iter()
        .find(|t| !t["tries"].as_array().unwrap().is_empty())
        .unwrap();
    assert_eq!(
        cut["tries"][0]["steps"][0]["failure"]["cause"],
        "interrupted"
    );

    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let r = Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(
        (r.tests, r.failures, r.test_suites[0].skipped),
        (2, 0, 2),
        "{xml}"
    );
    // No retries configured: nothing is reported as a re-run.
    for c in &r.test_suites[0].test_cases {
        if let TestCaseStatus::NonSuccess { reruns, .. } = &c.status {
            assert!(reruns.runs.is_empty() && reruns.kind == FlakyOrRerun::Rerun);
        }
    }
}
