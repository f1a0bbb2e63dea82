//! Pausing through the real binary: `--pause-on-failure` stops after the failed step with
//! everything in place until Enter (cleanup after), `pause:` steps are honoured only with
//! `--pause`, and Ctrl-C ends a pause.

mod support;

use std::time::Duration;

use support::{Running, Workspace, test_doc};

/// gwtest as a person at a terminal runs it: not CI (where pauses are skipped), with a stdin
/// to press Enter on.
fn at_a_terminal(ws: &Workspace, args: &[&str]) -> Running {
    ws.gwtest(args).env_remove("CI").stdin_piped().spawn()
}

/// The stdout lines after the first one containing `after`.
fn lines_after(stdout: &str, after: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.contains(after))
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn pause_on_failure_waits_for_enter_then_finishes() {
    let ws = Workspace::new("pause-on-failure");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "t",
            "",
            "  - exec:\n      command: [sh, -c, 'exit 3']\n  - sleep: 10ms\n",
        ),
    );
    let mut run = at_a_terminal(&ws, &["run", "s", "--pause-on-failure"]);
    run.wait_for_line(r"PAUSED s/t: step 1 \(exec sh -c exit 3\) failed");
    // While it waits, the failure and the command to try by hand are on screen.
    run.wait_for_line(r"exit 3 \(expected exit 0\)");
    run.wait_for_line("reproduce:");
    run.wait_for_line(r"\(cd s && sh -c 'exit 3'\)");
    run.wait_for_line("press Enter to continue");
    // Still paused a while later: nothing finished.
    std::thread::sleep(Duration::from_millis(700));
    assert!(run.alive(), "gwtest did not wait:\n{}", run.stdout_so_far());
    assert!(
        !run.stdout_so_far().contains("\nFAIL"),
        "the test finished while paused"
    );
    run.send("\n");
    let out = run.wait();
    out.assert_exit(1);
    let rest = lines_after(&out.stdout, "press Enter to continue");
    assert!(rest.iter().any(|l| l == "resumed s/t"), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("FAIL ") && l.ends_with("s/t")),
        "{rest:?}"
    );
}

#[test]
fn pause_steps_need_the_pause_flag_and_ctrl_c_ends_a_pause() {
    let ws = Workspace::new("pause-step");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "t",
            "",
            "  - pause: look at the route\n  - exec:\n      command: [\"true\"]\n",
        ),
    );
    // Without --pause the step is skipped and the run does not wait.
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    assert!(!out.stdout.contains("PAUSED"), "{}", out.dump());

    // With --pause it stops; Ctrl-C ends the pause and the run (130).
    let mut run = at_a_terminal(&ws, &["run", "s", "--pause"]);
    run.wait_for_line("PAUSED s/t: pause: look at the route");
    std::thread::sleep(Duration::from_millis(300));
    assert!(run.alive(), "gwtest did not wait");
    run.signal(libc::SIGINT);
    let out = run.wait();
    out.assert_exit(130);
    // The step after the pause never ran: the test did not pass, and did not fail either
    // (nothing in it failed): it was interrupted, and says where.
    let rest = lines_after(&out.stdout, "PAUSED s/t: pause: look at the route");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("SKIP ") && l.ends_with("s/t (interrupted)")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l == "  interrupted before every step ran"),
        "{rest:?}"
    );
}

/// A `pause:` step does not count against the test-timeout: a person decides how long.
#[test]
fn a_pause_step_outlasts_the_test_timeout() {
    let ws = Workspace::new("pause-long");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "t",
            "timeout: 1s",
            "  - pause: take your time\n  - sleep: 300ms\n",
        ),
    );
    let mut run = at_a_terminal(&ws, &["run", "s", "--pause"]);
    run.wait_for_line("PAUSED s/t: pause: take your time");
    // Longer than the test-timeout (1s), the person looks around before pressing Enter.
    std::thread::sleep(Duration::from_millis(1500));
    run.send("\n");
    let out = run.wait();
    out.assert_exit(0);
    let rest = lines_after(&out.stdout, "PAUSED s/t: pause: take your time");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("PASS ") && l.ends_with("s/t")),
        "{rest:?}"
    );
}

/// In CI nobody is at the keyboard: --pause-on-failure says so and the run goes on, even
/// with a stdin that stays open.
#[test]
fn pause_on_failure_is_skipped_in_ci() {
    let ws = Workspace::new("pause-ci");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc("t", "", "  - exec:\n      command: [\"false\"]\n"),
    );
    // CI=true is how gwtest runs by default here; stdin stays open until it exits.
    let out = ws
        .gwtest(&["run", "s", "--pause-on-failure"])
        .stdin_piped()
        .run();
    out.assert_exit(1);
    out.assert_stdout_has("note: s/t: not pausing in CI ($CI is set): step 1");
    assert!(!out.stdout.contains("PAUSED"), "{}", out.dump());
}
