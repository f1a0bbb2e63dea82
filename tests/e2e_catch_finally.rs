//! `catch:` and `finally:` through the real binary against an embedded API server: catch runs
//! only when a step failed, with the test's objects still in place (before cleanup); finally
//! always runs, after the steps and after catch; neither changes the outcome, except a failing
//! finally step on a passing test, which fails it and is reported as such; suite.yaml gives
//! both to tests without their own; both are bounded by test-timeout + cleanup-timeout; the
//! terminal, JSON and JUnit reports show them; their steps are validated like `steps:`.

mod support;
mod support_cluster;

use serde_json::Value;
use support::{Workspace, one_test, suite_with_manifest, test_doc};
use support_cluster::TestCluster;

/// The first try of test `name` in the JSON report.
fn first_try(report: &Value, name: &str) -> Value {
    for s in report["suites"].as_array().unwrap() {
        for t in s["tests"].as_array().unwrap() {
            if t["name"] == name {
                return t["tries"][0].clone();
            }
        }
    }
    panic!("no test {name} in {report}")
}

fn statuses(steps: &Value) -> Vec<&str> {
    steps
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {steps}"))
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect()
}

/// Appends `WORD` to log.txt in the suite directory.
fn log_step(word: &str) -> String {
    format!("  - exec:\n      command: [sh, -c, 'echo {word} >> log.txt']\n")
}

fn log(ws: &Workspace, suite: &str) -> String {
    std::fs::read_to_string(ws.path().join(suite).join("log.txt")).unwrap_or_default()
}

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n";

#[test]
fn catch_runs_on_failure_before_cleanup_and_finally_always_without_changing_the_outcome() {
    let cluster = TestCluster::start();
    let ws = suite_with_manifest("catch-finally", "s", "cm.yaml", CM);
    // The second step fails; catch sees the object still there (cleanup comes after), a failing
    // catch step does not stop the next one, and finally runs after catch.
    let steps = format!(
        "  - apply: cm.yaml\n  - name: wrong color\n    timeout: 300ms\n    assert:\n      \
         resource: {{apiVersion: v1, kind: ConfigMap, name: settings}}\n      fields: {{data: \
         {{color: red}}}}\n{steps_log}catch:\n  - name: broken dump\n    exec:\n      command: \
         [sh, -c, 'exit 4']\n  - name: still there\n    assert:\n      resource: {{apiVersion: \
         v1, kind: ConfigMap, name: settings}}\n      fields: {{data: {{color: blue}}}}\n{c}\
         finally:\n{f}",
        steps_log = log_step("step"),
        c = log_step("catch"),
        f = log_step("finally"),
    );
    ws.write("s/fail.test.yaml", &test_doc("fail", "", &steps));
    // A passing test: catch does not run, finally does, the test passes.
    ws.write(
        "s/pass.test.yaml",
        &test_doc(
            "pass",
            "",
            &format!(
                "  - apply: cm.yaml\ncatch:\n{}finally:\n{}",
                log_step("pass-catch"),
                log_step("pass-finally")
            ),
        ),
    );
    let out = cluster
        .gwtest(
            &ws,
            &[
                "run", "s", "-j", "1", "--json", "r.json", "--junit", "r.xml",
            ],
        )
        .run();
    out.assert_exit(1);
    out.assert_counts(1, 0, 1, 0);
    let log = log(&ws, "s");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        !lines.contains(&"step"),
        "the steps stopped at the failure: {log}"
    );
    assert!(
        lines.contains(&"pass-finally") && !lines.contains(&"pass-catch"),
        "{log}"
    );
    let order: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with("pass"))
        .collect();
    assert_eq!(order, ["catch", "finally"], "{log}");

    // The terminal: the failure is the step's; catch and finally are listed, the failed catch
    // step is told beside it.
    let fail = out.outcome("s/fail");
    assert_eq!(fail.tag, "FAIL", "{}", out.dump());
    assert!(
        fail.block.contains("step 2 \"wrong color\" (assert) at"),
        "{}",
        fail.block
    );
    assert!(
        regex::Regex::new(r"(?m)^  catch: ✗ broken dump \([0-9.]+s\)  ✓ still there \([0-9.]+s\)  ✓ exec sh -c echo catch")
            .unwrap()
            .is_match(&fail.block),
        "{}",
        fail.block
    );
    assert!(
        fail.block
            .contains("  finally: ✓ exec sh -c echo finally >> log.txt ("),
        "{}",
        fail.block
    );
    assert!(
        fail.block
            .contains("also: catch step 1 \"broken dump\" (exec) at"),
        "{}",
        fail.block
    );
    assert_eq!(out.outcome("s/pass").tag, "PASS");

    // JSON: each list with its steps' status.
    let report = ws.json("r.json");
    let t = first_try(&report, "fail");
    assert_eq!(statuses(&t["steps"]), ["passed", "failed", "not-run"]);
    assert_eq!(statuses(&t["catch"]), ["failed", "passed", "passed"]);
    assert_eq!(statuses(&t["finally"]), ["passed"]);
    assert_eq!(t["catch"][0]["name"], "broken dump");
    let t = first_try(&report, "pass");
    assert_eq!(t["passed"], true);
    assert_eq!(statuses(&t["catch"]), ["not-run"]);
    assert_eq!(statuses(&t["finally"]), ["passed"]);

    // `gwtest merge` reads both lists back: the merged report has them as the run wrote them.
    let merged = ws
        .gwtest(&["merge", "r.json", "--json", "merged.json"])
        .run();
    merged.assert_exit(0);
    let m = first_try(&ws.json("merged.json"), "fail");
    let t = first_try(&report, "fail");
    for key in ["steps", "catch", "finally"] {
        assert_eq!(m[key], t[key], "{key} after merge");
    }

    // JUnit: the failure's story lists catch and finally.
    let xml = std::fs::read_to_string(ws.path().join("r.xml")).unwrap();
    assert!(xml.contains("catch: ✗ broken dump ("), "{xml}");
    assert!(xml.contains("finally: ✓ exec sh -c echo finally"), "{xml}");
    assert!(
        xml.contains("also: catch step 1 \"broken dump\" (exec) at"),
        "{xml}"
    );
}

#[test]
fn a_failing_finally_step_fails_a_passing_test_and_says_so() {
    let cluster = TestCluster::start();
    let ws = one_test(
        "finally-fails",
        "",
        "",
        "  - apply: cm.yaml\ncatch:\n  - exec:\n      command: [\"true\"]\nfinally:\n  - name: \
         teardown check\n    exec:\n      command: [sh, -c, 'exit 5']\n  - name: after it\n    \
         exec:\n      command: [\"true\"]\n",
    );
    ws.write("s/cm.yaml", CM);
    let out = cluster
        .gwtest(&ws, &["run", "s", "--json", "r.json", "--junit", "r.xml"])
        .run();
    out.assert_exit(1);
    let t = out.outcome("s/t");
    assert_eq!(t.tag, "FAIL", "{}", out.dump());
    assert!(
        t.block
            .contains("finally step 1 \"teardown check\" (exec) at"),
        "{}",
        t.block
    );
    assert!(t.block.contains("exit 5 (expected exit 0)"), "{}", t.block);
    assert!(t.block.contains("  steps: ✓ apply cm.yaml"), "{}", t.block);
    let report = ws.json("r.json");
    let tr = first_try(&report, "t");
    assert_eq!(tr["passed"], false);
    assert_eq!(statuses(&tr["steps"]), ["passed"]);
    assert_eq!(statuses(&tr["catch"]), ["not-run"]);
    // A finally step failing does not stop the next one.
    assert_eq!(statuses(&tr["finally"]), ["failed", "passed"]);
    let xml = std::fs::read_to_string(ws.path().join("r.xml")).unwrap();
    assert!(
        xml.contains("finally step 1 \"teardown check\" (exec) failed at"),
        "{xml}"
    );
}

#[test]
fn suite_defaults_serve_tests_without_their_own() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("catch-defaults");
    ws.suite(
        "s",
        &format!(
            "catch:\n{}finally:\n  - name: suite finally\n    exec:\n      command: [sh, -c, \
             'echo suite-finally-$T >> log.txt']\n      env: {{T: \"${{test}}\"}}\n",
            log_step("suite-catch")
        ),
    );
    // Uses both defaults.
    ws.write(
        "s/a.test.yaml",
        &test_doc("a", "", "  - exec:\n      command: [\"false\"]\n"),
    );
    // Its own finally, no catch at all (`[]`).
    ws.write(
        "s/b.test.yaml",
        &test_doc(
            "b",
            "",
            &format!(
                "  - exec:\n      command: [\"false\"]\ncatch: []\nfinally:\n{}",
                log_step("b-finally")
            ),
        ),
    );
    let out = cluster
        .gwtest(&ws, &["run", "s", "-j", "1", "--json", "r.json"])
        .run();
    out.assert_exit(1);
    let mut lines: Vec<String> = log(&ws, "s").lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["b-finally", "suite-catch", "suite-finally-a"],
        "{}",
        out.dump()
    );
    let report = ws.json("r.json");
    let a = first_try(&report, "a");
    // A suite's step names suite.yaml as its file.
    let file = a["finally"][0]["file"]
        .as_str()
        .expect("file of a suite step");
    assert!(file.ends_with("suite.yaml"), "{file}");
    assert_eq!(a["finally"][0]["name"], "suite finally");
    let b = first_try(&report, "b");
    assert!(b.get("catch").is_none(), "{b}");
    assert!(b["finally"][0].get("file").is_none(), "{b}");
}

#[test]
fn catch_and_finally_run_under_the_test_deadline_plus_cleanup_timeout() {
    let cluster = TestCluster::start();
    let ws = one_test(
        "finally-bounded",
        "defaults:\n  test-timeout: 1s\n  cleanup-timeout: 1s\n",
        "",
        "  - exec:\n      command: [\"true\"]\nfinally:\n  - name: endless\n    sleep: 1h\n",
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    let t = out.outcome("s/t");
    assert_eq!(t.tag, "FAIL", "{}", out.dump());
    assert!(
        t.block.contains("finally step 1 \"endless\" (sleep) at"),
        "{}",
        t.block
    );
    assert!(
        t.block
            .contains("test-timeout + cleanup-timeout (1s + 1s) reached"),
        "{}",
        t.block
    );
}

#[test]
fn steps_in_catch_and_finally_are_validated_like_steps() {
    let ws = one_test(
        "catch-invalid",
        "finally:\n  - exec:\n      command: [echo, \"${nope}\"]\n",
        "",
        "  - exec:\n      command: [\"true\"]\ncatch:\n  - frobnicate: {}\nfinally:\n  - \
         sleep: soon\n",
    );
    let out = ws.gwtest(&["validate", "s"]).run();
    out.assert_exit(2);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("t.test.yaml:9:5"), "{text}");
    assert!(text.contains("frobnicate"), "{text}");
    assert!(text.contains("t.test.yaml:11:"), "{text}");
    assert!(text.contains("suite.yaml:5:"), "{text}");
    assert!(text.contains("nope"), "{text}");
}

/// The JSON Schemas of test files and suite.yaml know both keys, as lists of steps.
#[test]
fn the_json_schema_knows_catch_and_finally() {
    let ws = Workspace::new("catch-schema");
    for args in [&["schema"][..], &["schema", "--suite"][..]] {
        let out = ws.gwtest(args).run();
        out.assert_exit(0);
        let schema: Value = serde_json::from_str(&out.stdout).unwrap();
        for key in ["catch", "finally"] {
            let prop = &schema["properties"][key];
            assert!(prop.is_object(), "{args:?}: no {key} in {schema}");
            let text = prop.to_string();
            assert!(
                text.contains("array") && text.contains("Step"),
                "{args:?}: {key} is not a list of steps: {text}"
            );
        }
    }
}

/// Ctrl-C cuts the steps short: the test did not fail, so catch does not run; finally does.
#[test]
fn after_ctrl_c_finally_runs_and_catch_does_not() {
    let cluster = TestCluster::start();
    let ws = one_test(
        "finally-interrupted",
        "",
        "",
        &format!(
            "{}  - sleep: 1h\ncatch:\n{}finally:\n{}",
            log_step("started"),
            log_step("catch"),
            log_step("finally")
        ),
    );
    let mut running = cluster.gwtest(&ws, &["run", "s"]).spawn();
    // Ready once the first step wrote its line.
    assert!(
        support::eventually(std::time::Duration::from_secs(60), || log(&ws, "s")
            == "started\n"),
        "the test never started"
    );
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.assert_exit(130);
    assert_eq!(log(&ws, "s"), "started\nfinally\n", "{}", out.dump());
}
