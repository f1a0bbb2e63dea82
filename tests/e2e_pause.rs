//! Pausing through the real binary: `--pause-on-failure` stops after the failed step with
//! everything in place until Enter (cleanup after), `pause:` steps are honoured only with
//! `--pause`, and Ctrl-C ends a pause.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Workspace, test_doc};

/// Start gwtest with piped stdin/stdout; lines of stdout arrive on the channel.
fn spawn(ws: &Workspace, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(support::BIN)
        .args(args)
        .current_dir(ws.path())
        // A person at a terminal: not CI (where pauses are skipped), plain output.
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Wait for a line containing `want`; everything read so far is returned for messages.
fn wait_for(rx: &mpsc::Receiver<String>, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = l.contains(want);
            seen.push(l);
            if hit {
                return;
            }
        }
    }
    panic!("no line with {want:?} in:\n{}", seen.join("\n"));
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gwtest did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let (mut child, rx) = spawn(&ws, &["run", "s", "--pause-on-failure"]);
    let mut seen = Vec::new();
    wait_for(
        &rx,
        "PAUSED s/t: step 1 (exec sh -c exit 3) failed",
        &mut seen,
    );
    // While it waits, the failure and the command to try by hand are on screen.
    wait_for(&rx, "exit 3 (expected exit 0)", &mut seen);
    wait_for(&rx, "reproduce:", &mut seen);
    wait_for(&rx, "(cd s && sh -c 'exit 3')", &mut seen);
    wait_for(&rx, "press Enter to continue", &mut seen);
    // Still paused a while later: nothing finished.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "gwtest did not wait:\n{}",
        seen.join("\n")
    );
    assert!(
        rx.try_iter().all(|l| !l.starts_with("FAIL")),
        "the test finished while paused"
    );
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 1);
    let rest: Vec<String> = rx.iter().collect();
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
    let (mut child, rx) = spawn(&ws, &["run", "s", "--pause"]);
    let mut seen = Vec::new();
    wait_for(&rx, "PAUSED s/t: pause: look at the route", &mut seen);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "gwtest did not wait");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 130);
    // The step after the pause never ran: the test did not pass, and did not fail either
    // (nothing in it failed): it was interrupted, and says where.
    let rest: Vec<String> = rx.iter().collect();
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
    let (mut child, rx) = spawn(&ws, &["run", "s", "--pause"]);
    let mut seen = Vec::new();
    wait_for(&rx, "PAUSED s/t: pause: take your time", &mut seen);
    std::thread::sleep(Duration::from_millis(1500));
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    let rest: Vec<String> = rx.iter().collect();
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
    let mut child = Command::new(support::BIN)
        .args(["run", "s", "--pause-on-failure"])
        .current_dir(ws.path())
        .env("CI", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 1);
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("note: s/t: not pausing in CI ($CI is set): step 1"),
        "{out}"
    );
    assert!(!out.contains("PAUSED"), "{out}");
}
