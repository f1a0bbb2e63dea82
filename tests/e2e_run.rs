//! The runner through the real binary: re-runs and flaky tests, fail-fast, parallelism,
//! Ctrl-C, exec and sleep steps under their deadlines (DESIGN §1.1, §1.2, §2; S4).

mod support;

use std::time::Duration;

use support::{
    Behavior, TestServer, Workspace, about, alike_tests, eventually, failed_outcome, one_test,
    process_gone, request_within_1s, test_doc,
};

/// An exec step that fails on the first try of a run and passes on every later one, and
/// logs each try to `tries-<run id>` next to the test file.
const FAIL_ONCE: &str = r#"  - name: fails once
    exec:
      command: [sh, -c, 'echo try >> "tries-$RUN"; if [ -e "marker-$RUN" ]; then exit 0; fi; touch "marker-$RUN"; echo "first try fails" >&2; exit 1']
      env: {RUN: "${run}"}
"#;

/// An exec step that always fails, logging each try like `FAIL_ONCE`.
const FAIL_ALWAYS: &str = r#"  - name: always fails
    exec:
      command: [sh, -c, 'echo try >> "tries-$RUN"; exit 1']
      env: {RUN: "${run}"}
"#;

/// How many tries the `tries-*` logs in `dir` hold.
fn tries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("tries-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum()
}

fn clear_tries(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("tries-") || n.starts_with("marker-") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

#[test]
fn a_test_that_passes_on_a_re_run_is_flaky_and_the_run_passes() {
    let ws = one_test("flaky", "", "retries: 3", FAIL_ONCE);
    let dir = ws.path().join("s");
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    out.assert_counts(0, 1, 0, 0);
    assert_eq!(tries(&dir), 2);
    let o = out.outcome("s/t");
    assert_eq!(o.tag, "FLAKY");
    o.line(r"^FLAKY +\d+\.\ds  s/t \(passed on try 2\)$");
    // The first try's failure is shown: that is what makes it flaky.
    o.line(r#"^  step 1 "fails once" \(exec\) at s/t\.test\.yaml:6:5$"#);
    o.line(r#"^  exit 1 \(expected exit 0\), stderr: "first try fails" \[exit\]$"#);
    out.stdout_line(r"^RETRY s/t: failed, re-running$");
    out.stdout_line(r"^flaky: s/t \(passed on try 2\)$");
}

#[test]
fn a_request_that_recovers_after_the_first_try_is_flaky() {
    let srv = TestServer::start([(
        "/late",
        Behavior::HealthyAfterTime(Duration::from_millis(1300)),
    )]);
    let ws = one_test(
        "flaky-request",
        "",
        "retries: 1",
        &request_within_1s(&srv.url("/late")),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    out.assert_counts(0, 1, 0, 0);
    let o = out.outcome("s/t");
    assert_eq!(o.tag, "FLAKY");
    o.line(r"^  \d+ attempts in 1\.\ds: \d+ got status 503; last: status 503");
}

#[test]
fn the_retries_flag_and_environment_override_the_tests_retries() {
    let ws = Workspace::new("retries");
    let dir = ws.suite("s", "");
    ws.write(
        "s/always.test.yaml",
        &test_doc("always", "retries: 2", FAIL_ALWAYS),
    );
    ws.write(
        "s/once.test.yaml",
        &test_doc("once", "retries: 0", FAIL_ONCE),
    );

    let out = ws.gwtest(&["run", "s", "-k", "always"]).run();
    out.assert_exit(1);
    assert_eq!(tries(&dir), 3, "retries: 2 is three tries");
    assert_eq!(out.stdout.matches("RETRY s/always").count(), 2);
    clear_tries(&dir);

    let out = ws
        .gwtest(&["run", "s", "-k", "always", "--retries", "0"])
        .run();
    out.assert_exit(1);
    assert_eq!(tries(&dir), 1, "--retries 0 wins over retries: 2");
    assert!(!out.stdout.contains("RETRY"), "{}", out.dump());
    clear_tries(&dir);

    let out = ws
        .gwtest(&["run", "s", "-k", "always"])
        .env("GWTEST_RETRIES", "1")
        .run();
    out.assert_exit(1);
    assert_eq!(tries(&dir), 2, "GWTEST_RETRIES=1 wins over retries: 2");
    clear_tries(&dir);

    let out = ws.gwtest(&["run", "s", "-k", "once"]).run();
    out.assert_exit(1);
    assert_eq!(out.outcome("s/once").tag, "FAIL");
    clear_tries(&dir);

    let out = ws
        .gwtest(&["run", "s", "-k", "once", "--retries", "1"])
        .run();
    out.assert_exit(0);
    assert_eq!(out.outcome("s/once").tag, "FLAKY");
    assert_eq!(tries(&dir), 2);
}

#[test]
fn fail_fast_skips_the_tests_not_yet_started() {
    let ws = alike_tests(
        "fail-fast",
        &["a", "b", "c"],
        "",
        "  - exec: {command: [\"false\"]}\n",
    );
    let out = ws.gwtest(&["run", "s", "-j", "1", "--fail-fast"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 1, 2);
    let results = out.results();
    assert_eq!(results[0].0, "FAIL", "{}", out.dump());
    for (tag, id) in &results[1..] {
        assert_eq!(tag, "SKIP");
        out.stdout_line(&format!(
            r"^SKIP +0\.0s  {} \(fail-fast: an earlier test failed\)$",
            regex::escape(id)
        ));
    }

    let out = ws.gwtest(&["run", "s", "-j", "1"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 3, 0);
}

/// `-j N` runs N tests at once and never more, shown without a clock: each test waits until
/// N tests have started (with fewer at once it would wait for ever: the step's timeout),
/// then holds one of N slots (a directory only one can create) for a moment.
#[test]
fn parallel_runs_tests_at_once_and_j1_one_after_another() {
    let ws = Workspace::new("parallel");
    ws.suite("s", "");
    for j in [4, 1, 2] {
        let _ = std::fs::remove_dir_all(ws.path().join("s/started"));
        for name in ["a", "b", "c", "d"] {
            let script = format!(
                "mkdir -p started; touch started/{name}
until [ \"$(ls started | wc -l)\" -ge {j} ]; do sleep 0.05; done
i=1
while ! mkdir \"slot$i\" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt {j} ]; then echo \"more than {j} at once\" >&2; exit 1; fi
done
sleep 0.3; rmdir \"slot$i\"
"
            );
            let step = format!(
                "  - exec:\n      command:\n        - sh\n        - -c\n        - |\n{}    timeout: 60s\n",
                script
                    .lines()
                    .map(|l| format!("          {l}\n"))
                    .collect::<String>()
            );
            ws.write(&format!("s/{name}.test.yaml"), &test_doc(name, "", &step));
        }
        let j_arg = j.to_string();
        let out = ws.gwtest(&["run", "s", "-j", &j_arg]).run();
        out.assert_exit(0);
        out.assert_counts(4, 0, 0, 0);
        out.stdout_line(&format!(r"\(-j {j}, run "));
    }
}

/// Ctrl-C mid-run: the running test stops, the rest are skipped, the summary is written, 130.
#[test]
fn ctrl_c_stops_the_run_writes_the_summary_and_exits_130() {
    let srv = TestServer::start([("/hang", Behavior::Hang)]);
    let ws = alike_tests(
        "sigint",
        &["a", "b"],
        "timeout: 60s",
        &format!("  - request: {{url: {}}}\n", srv.url("/hang")),
    );
    let mut run = ws
        .gwtest(&[
            "run",
            "s",
            "-j",
            "1",
            "--junit",
            "out/junit.xml",
            "--json",
            "out/report.json",
        ])
        .spawn();
    run.wait_for("the first test's request", || srv.count("/hang") == 1);
    run.signal(libc::SIGINT);
    // Not stopped, the hanging test would run to its 60s timeout, then the next one.
    let out = run.wait_within(Duration::from_secs(30), "Ctrl-C");
    out.assert_exit(130);
    out.assert_stdout_has(
        "note: interrupted: stopping running tests and cleaning up (Ctrl-C again to exit at once)",
    );
    // Neither test failed on its own: the running one was cut short, the other never started.
    support::assert_reports_written_after_interrupt(&out, 0, 2);
    let json = ws.json("out/report.json");
    assert_eq!(json["interrupted"], true, "{json}");
    assert_eq!(json["counts"]["failed"], 0, "{json}");
    assert_eq!(json["counts"]["skipped"], 2, "{json}");
    let junit = std::fs::read_to_string(ws.path().join("out/junit.xml")).unwrap();
    assert_eq!(
        junit.matches("<skipped message=\"interrupted\"").count(),
        2,
        "{junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
    let results = out.results();
    assert!(results.iter().all(|r| r.0 == "SKIP"), "{results:?}");
    // The one that was running says where it stopped.
    let cut = results
        .iter()
        .map(|r| out.outcome(&r.1))
        .find(|o| o.has("interrupted: no attempt finished"))
        .expect("a test cut short");
    cut.line(&format!(
        r"^  interrupted: no attempt finished in \d+\.\ds; cut off after \d+\.\ds: GET {} \(attempt-timeout 10s, no response yet\)$",
        regex::escape(&srv.url("/hang"))
    ));
    out.stdout_line(r"^SKIP +0\.0s  s/[ab] \(interrupted\)$");
    assert_eq!(srv.count("/hang"), 1, "the second test never started");
}

#[test]
fn sigterm_stops_the_run_like_ctrl_c() {
    let ws = one_test("sigterm", "", "", "  - name: nap\n    sleep: 60s\n");
    let mut run = ws.gwtest(&["run", "s"]).spawn();
    // The readiness line: the `SLOW` line says the sleep is under way.
    run.wait_for_line(r"^SLOW .* s/t › nap$");
    run.signal(libc::SIGTERM);
    let out = run.wait_within(Duration::from_secs(30), "SIGTERM");
    out.assert_exit(130);
    out.outcome("s/t").line(r"^  interrupted during sleep$");
    support::assert_reports_written_after_interrupt(&out, 0, 1);
}

/// A run that cannot finish (here: its output pipe is full and nobody reads it) still
/// exits at once on the second Ctrl-C.
#[test]
fn a_second_ctrl_c_exits_at_once_even_when_the_run_is_stuck() {
    // Each failure prints ~3KB of the program's output: 60 of them overflow a 64KB pipe.
    let ws = one_test(
        "sigint-twice",
        "",
        "",
        "  - exec: {command: [sh, -c, \"head -c 3000 /dev/zero | tr '\\\\0' x; exit 1\"]}\n",
    );
    let mut run = ws
        .gwtest(&["run", "s", "--repeat", "60"])
        .stdout_unread()
        .spawn();
    run.wait_for_stdout_pipe_full();
    run.signal(libc::SIGINT);
    // Nothing to wait for here: what the first Ctrl-C does would be printed, and the pipe is
    // full. This only checks that it is still there a moment later (and gives the first
    // Ctrl-C that moment to be taken, so that the second is a second one).
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        run.alive(),
        "stuck on its output, the first Ctrl-C cannot finish the run"
    );
    run.signal(libc::SIGINT);
    // Stuck, it would never exit without the second Ctrl-C.
    let out = run.wait_within(Duration::from_secs(30), "the second Ctrl-C");
    out.assert_exited_on_second_interrupt();
}

#[test]
fn exec_passes_env_and_checks_exit_stdout_and_stderr() {
    let ws = Workspace::new("exec");
    ws.suite("s", "");
    ws.write("s/data.txt", "from the test's directory\n");
    let script = r#"echo "out:$GREETING"; echo "err:$GREETING" >&2; exit 3"#;
    ws.write(
        "s/ok.test.yaml",
        &test_doc(
            "ok",
            "",
            &format!(
                r#"  - exec:
      command: [sh, -c, '{script}']
      env: {{GREETING: "hello ${{suite}}"}}
      expect: {{exit: 3, stdout: {{equals: "out:hello s\n"}}, stderr: {{contains: "err:hello s"}}}}
  - exec:
      command: [cat, data.txt]
      expect: {{stdout: {{matches: "(?m)^from the test's directory$"}}}}
"#
            ),
        ),
    );
    ws.write(
        "s/exit.test.yaml",
        &test_doc(
            "exit",
            "",
            &format!(
                "  - exec:\n      command: [sh, -c, '{script}']\n      env: {{GREETING: hi}}\n      expect: {{exit: 0}}\n    timeout: 300ms\n"
            ),
        ),
    );
    ws.write(
        "s/output.test.yaml",
        &test_doc(
            "output",
            "",
            "  - exec:\n      command: [echo, nope]\n      expect: {stdout: {contains: yep}}\n    timeout: 300ms\n",
        ),
    );
    ws.write(
        "s/missing.test.yaml",
        &test_doc(
            "missing",
            "",
            "  - exec: {command: [no-such-program-gwtest], expect: {exit: 0}}\n",
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(1, 0, 3, 0);
    assert_eq!(out.outcome("s/ok").tag, "PASS", "{}", out.dump());

    let o = out.outcome("s/exit");
    o.line(r"^  expected: exit 0$");
    o.line(&format!(
        r#"^  \d+ attempts in {}: \d+ exited with exit 3; last: exit 3 \(expected exit 0\), stderr: "err:hi"{} \[exit\]$"#,
        about(0.3),
        support::cut_off(r"GREETING=hi sh -c .+ \(still running\)")
    ));
    o.line(
        r"^  last run:\n    exit 3\n    --- stdout\n    out:hi\n    \n    --- stderr\n    err:hi$",
    );
    o.line(&format!(
        r"^    \(cd {} && GREETING=hi sh -c '{}'\)$",
        "s",
        regex::escape(script)
    ));

    let o = out.outcome("s/output");
    o.line(&format!(
        r#"^  \d+ attempts in {}: \d+ stdout did not match \(contains "yep"\); last: stdout "nope"; expected contains "yep"{} \[output\]$"#,
        about(0.3),
        support::cut_off(r"echo nope \(still running\)")
    ));

    let o = out.outcome("s/missing");
    o.line(r#"^  cannot run "no-such-program-gwtest": .* \[error\]$"#);
    o.line(r"^  steps: ✗ exec no-such-program-gwtest \(\d+\.\ds\)$");
}

/// An exec without `expect` is an action: it runs once, and a failure is final.
#[test]
fn exec_without_expect_runs_once() {
    let ws = one_test("exec-once", "", "", FAIL_ALWAYS);
    let dir = ws.path().join("s");
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    assert_eq!(tries(&dir), 1, "{}", out.dump());
    let o = out.outcome("s/t");
    o.line(r"^  exit 1 \(expected exit 0\) \[exit\]$");
}

/// A program still running at the step deadline is killed with everything it started.
#[test]
fn exec_is_killed_at_its_deadline_with_its_children() {
    let ws = Workspace::new("exec-kill");
    let dir = ws.suite("s", "");
    let script = r#"sleep 30 & echo $! > child.pid; echo $$ > sh.pid; wait"#;
    ws.write(
        "s/action.test.yaml",
        &test_doc(
            "action",
            "",
            &format!("  - exec: {{command: [sh, -c, '{script}']}}\n    timeout: 1s\n"),
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    let o = out.outcome("s/action");
    o.line(&format!(
        r"^  no attempt finished in {one}; cut off after {one}: sh -c {} \(still running\)$",
        regex::escape(&format!("'{script}'")),
        one = about(1.0)
    ));
    for f in ["sh.pid", "child.pid"] {
        let pid: i32 = std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            eventually(Duration::from_secs(2), || process_gone(pid)),
            "{f} {pid} still runs after the deadline"
        );
    }
}

/// Runs test `t` of [`one_test`] (`test_extra`, `steps`), which must fail with the line `re`,
/// where `{one}` stands for the about 1s after which it was cut off.
fn fails_cut_off_after_1s(name: &str, test_extra: &str, steps: &str, re: &str) -> Workspace {
    let ws = one_test(name, "", test_extra, steps);
    failed_outcome(&ws).line(&re.replace("{one}", &about(1.0)));
    ws
}

#[test]
fn exec_with_expect_is_cut_off_at_the_step_deadline() {
    fails_cut_off_after_1s(
        "exec-expect-kill",
        "",
        "  - exec: {command: [sleep, \"30\"], expect: {exit: 0}}\n    timeout: 1s\n",
        r"^  no attempt finished in {one}; cut off after {one}: sleep 30 \(still running\)$",
    );
}

#[test]
fn a_sleep_longer_than_the_test_timeout_ends_at_the_test_timeout() {
    let ws = one_test(
        "sleep",
        "",
        "timeout: 1s",
        "  - sleep: 5s\n  - sleep: 1ms\n",
    );
    ws.write("s/ok.test.yaml", &test_doc("ok", "", "  - sleep: 200ms\n"));
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    let o = out.outcome("s/t");
    o.line(r"^  test-timeout \(1s\) reached during sleep 5s$");
    o.line(&format!(
        r"^  steps: ✗ sleep 5s \({}\)  · sleep 1ms \(not run\)$",
        about(1.0)
    ));
    assert_eq!(out.outcome("s/ok").tag, "PASS");
}

#[test]
fn a_step_after_the_test_deadline_does_not_start() {
    // The exec takes the whole test-timeout; the step after it must not run.
    let ws = fails_cut_off_after_1s(
        "after-deadline",
        "timeout: 1s",
        "  - exec: {command: [sleep, \"5\"]}\n    timeout: 10s\n  - exec: {command: [touch, ran]}\n",
        r"^  test-timeout \(1s\) reached during this step: no attempt finished in {one}; cut off after {one}: sleep 5 \(still running\)$",
    );
    assert!(!ws.path().join("s/ran").exists());
}

/// argv items are text: YAML 1.1 words like `on` and `yes` reach the program as written.
#[test]
fn exec_argv_keeps_yaml_words_as_text() {
    let ws = one_test(
        "exec-argv",
        "",
        "",
        "  - exec:\n      command: [echo, on, yes, 1.10]\n      expect: {stdout: {equals: \"on yes 1.10\\n\"}}\n    timeout: 2s\n",
    );
    ws.gwtest(&["run", "s"]).run().assert_exit(0);
}
