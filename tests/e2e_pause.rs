//! Pausing through the real binary in a real terminal (tmux): `--pause-on-failure` stops after
//! the failed step with everything in place and takes Enter (go on), `r` (run the step again),
//! `k` (keep the test's resources) and `q` (stop the run); `pause:` steps are honoured only with
//! `--pause`; a pause stops the test's clocks (the safety net too); Ctrl-C ends a pause. Where
//! nobody can answer (stdin a pipe that stays open, /dev/null, `$CI`) gwtest says once why it
//! does not pause and goes on.

mod support;
mod support_cluster;
mod support_tmux;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Workspace, alike_tests, one_test, suite_with_manifest, test_doc};
use support_cluster::{TestCluster, kubectl_bin};
use support_tmux::Terminal;

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n";

/// A test whose second step waits 500 ms for the ConfigMap to be red; it is blue.
fn wrong_color_suite(name: &str) -> Workspace {
    let ws = one_test(
        name,
        "",
        "",
        "  - apply: cm.yaml\n  - name: red\n    timeout: 500ms\n    assert:\n      resource: \
         {apiVersion: v1, kind: ConfigMap, name: settings}\n      fields: {data: {color: \
         red}}\n  - exec:\n      command: [sh, -c, 'echo after >> log.txt']\n",
    );
    ws.write("s/cm.yaml", CM);
    ws
}

/// The fix a person makes from another terminal while the test is paused: the ConfigMap
/// `settings` in `ns` turns red.
fn make_it_red(kubeconfig: &str, ns: &str) {
    let out = Command::new(kubectl_bin())
        .args(["--kubeconfig", kubeconfig, "-n", ns])
        .args(["patch", "configmap", "settings", "--type", "merge"])
        .args(["-p", r#"{"data":{"color":"red"}}"#])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fail unless a line of the screen matches `re` (multi-line mode).
fn assert_line(screen: &str, re: &str) {
    assert!(
        regex::Regex::new(&format!("(?m){re}"))
            .unwrap()
            .is_match(screen),
        "no line matches /{re}/ in:\n{screen}"
    );
}

/// The namespace the PAUSED block names.
fn paused_namespace(screen: &str) -> String {
    paused_namespace_of(screen, "t")
}

fn gwtest_in(term_dir: &std::path::Path, cluster: Option<&TestCluster>, args: &[&str]) -> Terminal {
    let mut all: Vec<&str> = args.to_vec();
    let kc;
    if let Some(c) = cluster {
        kc = c.kubeconfig_str();
        all.extend(["--kubeconfig", &kc]);
    }
    Terminal::start(term_dir, support::BIN, &all, &[])
}

/// A run of the wrong-color suite (plus `more` files) with `--pause-on-failure` and `args`, in
/// a terminal, paused at the failure: the cluster, workspace, terminal, screen and namespace.
fn paused_at_wrong_color(
    name: &str,
    args: &[&str],
    more: &[(&str, &str)],
) -> (TestCluster, Workspace, Terminal, String, String) {
    let cluster = TestCluster::start();
    let ws = wrong_color_suite(name);
    for (file, text) in more {
        ws.write(file, text);
    }
    let mut all = vec!["run", "s", "--pause-on-failure"];
    all.extend_from_slice(args);
    let term = gwtest_in(ws.path(), Some(&cluster), &all);
    let screen = term.wait_for("q: stop the run");
    assert!(
        screen.contains("PAUSED s/t: step 2 (red) failed"),
        "{screen}"
    );
    let ns = paused_namespace(&screen);
    (cluster, ws, term, screen, ns)
}

#[test]
fn pause_on_failure_waits_at_the_prompt_then_enter_goes_on() {
    let ws = one_test(
        "pause-on-failure",
        "",
        "",
        "  - exec:\n      command: [sh, -c, 'exit 3']\n  - sleep: 10ms\ncatch:\n  - exec:\n      \
         command: [sh, -c, 'echo catch >> log.txt']\nfinally:\n  - exec:\n      command: \
         [sh, -c, 'echo finally >> log.txt']\n",
    );
    let log = || std::fs::read_to_string(ws.path().join("s/log.txt")).unwrap_or_default();
    let term = gwtest_in(ws.path(), None, &["run", "s", "--pause-on-failure"]);
    let screen = term.wait_for("q: stop the run");
    // The failure, the command to try by hand, and the keys.
    for want in [
        "PAUSED s/t: step 1 (exec sh -c exit 3) failed",
        "exit 3 (expected exit 0)",
        "(cd s && sh -c 'exit 3')",
        "Enter: continue  r: run the step again  k: keep its resources  q: stop the run",
    ] {
        assert!(screen.contains(want), "no {want:?} in:\n{screen}");
    }
    // Still paused a while later: nothing finished.
    std::thread::sleep(Duration::from_millis(700));
    let screen = term.screen();
    assert!(
        !screen.contains("FAIL "),
        "finished while paused:\n{screen}"
    );
    // catch and finally come after the pause.
    assert_eq!(log(), "", "{screen}");
    // Something else than a key it takes: it says what it takes, and still waits.
    term.answer("x");
    term.wait_for("unknown answer \"x\": Enter goes on, r runs the failed step again");
    term.answer("");
    let screen = term.exit(1);
    assert!(screen.contains("resumed s/t\n"), "{screen}");
    let after_resume = &screen[screen.find("resumed s/t").unwrap()..];
    assert!(after_resume.contains("FAIL "), "{screen}");
    assert_eq!(log(), "catch\nfinally\n", "{screen}");
}

/// The cause is fixed from outside with kubectl while the test is paused; `r` runs the failed
/// step again, it passes, and the test goes on to pass.
#[test]
fn r_runs_the_failed_step_again_after_a_fix_from_outside() {
    let (cluster, ws, term, _, ns) = paused_at_wrong_color("pause-retry", &[], &[]);
    // `r` before the fix: the step fails again and the test pauses again.
    term.answer("r");
    term.wait_for("resumed s/t (r: running the step again)");
    let again = || {
        term.screen()
            .matches("PAUSED s/t: step 2 (red) failed")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while again() < 2 {
        assert!(Instant::now() < deadline, "{}", term.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    make_it_red(&cluster.kubeconfig_str(), &ns);
    term.answer("r");
    let screen = term.exit(0);
    assert!(
        screen
            .contains("step 2 (red) failed, then passed when run again from the pause prompt (r)"),
        "{screen}"
    );
    assert_line(&screen, r"^PASS +\d+\.\ds  s/t");
    // The steps after it ran.
    let log = std::fs::read_to_string(ws.path().join("s/log.txt")).unwrap_or_default();
    assert_eq!(log, "after\n", "{screen}");
    assert_eq!(screen.matches("resumed s/t").count(), 2, "{screen}");
}

#[test]
fn k_keeps_the_tests_resources() {
    let (cluster, _ws, term, _, ns) = paused_at_wrong_color("pause-keep", &[], &[]);
    term.answer("k");
    let screen = term.exit(1);
    assert!(
        screen.contains("resumed s/t (k: its resources will be kept)"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("kept s/t: namespace {ns}")),
        "{screen}"
    );
    // Still there after the run.
    let cm = cluster.get(("v1", "ConfigMap"), Some(&ns), "settings");
    assert!(cm.is_some(), "the kept ConfigMap is gone:\n{screen}");
}

#[test]
fn q_stops_the_run_with_cleanup_and_reports() {
    let u = test_doc("u", "", "  - exec:\n      command: [\"true\"]\n");
    let (cluster, ws, term, _, ns) = paused_at_wrong_color(
        "pause-quit",
        &["-j", "1", "--json", "r.json"],
        &[("s/u.test.yaml", &u)],
    );
    term.answer("q");
    let screen = term.exit(1);
    assert!(
        screen.contains("q at the prompt: stopping the run"),
        "{screen}"
    );
    // The other test never ran; the paused one failed; reports are written; cleanup ran.
    assert_line(&screen, r"^FAIL +\d+\.\ds  s/t");
    assert!(!screen.contains("PASS "), "{screen}");
    let report = ws.json("r.json");
    let tests = report["suites"][0]["tests"].as_array().unwrap();
    let status = |n: &str| {
        tests
            .iter()
            .find(|t| t["name"] == n)
            .map(|t| t["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("t").as_deref(), Some("failed"), "{report}");
    assert_eq!(status("u").as_deref(), Some("skipped"), "{report}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.get(("v1", "Namespace"), None, &ns).is_some() {
        assert!(
            Instant::now() < deadline,
            "namespace {ns} was not cleaned up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pause_steps_need_the_pause_flag_and_ctrl_c_ends_a_pause() {
    let ws = one_test(
        "pause-step",
        "",
        "",
        "  - pause: look at the route\n  - exec:\n      command: [\"true\"]\n",
    );
    // Without --pause the step is skipped and the run does not wait.
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    assert!(!out.stdout.contains("PAUSED"), "{}", out.dump());

    // With --pause it stops (no `r`: nothing failed); Ctrl-C ends the pause and the run (130).
    let term = gwtest_in(ws.path(), None, &["run", "s", "--pause"]);
    let screen = term.wait_for("q: stop the run");
    assert!(
        screen.contains("PAUSED s/t: pause: look at the route"),
        "{screen}"
    );
    assert!(
        screen.contains("Enter: continue  k: keep its resources  q: stop the run"),
        "{screen}"
    );
    term.ctrl_c();
    let screen = term.exit(130);
    assert!(screen.contains("resumed s/t (interrupted)"), "{screen}");
    // The step after the pause never ran: the test was interrupted, and says where.
    assert_line(&screen, r"^SKIP .*s/t \(interrupted\)$");
    assert!(
        screen.contains("  interrupted before every step ran"),
        "{screen}"
    );
}

/// A pause stops every clock of its test: a `pause:` step held longer than the test-timeout
/// plus the safety net's grace (5 s) is not killed while a person is at the prompt.
#[test]
fn a_pause_step_outlasts_the_test_timeout_and_the_safety_net() {
    let ws = one_test(
        "pause-long",
        "",
        "timeout: 1s",
        "  - pause: take your time\n  - sleep: 300ms\n",
    );
    let term = gwtest_in(ws.path(), None, &["run", "s", "--pause"]);
    term.wait_for("PAUSED s/t: pause: take your time");
    std::thread::sleep(Duration::from_millis(7500));
    let screen = term.screen();
    assert!(!screen.contains("FAIL "), "killed while paused:\n{screen}");
    term.answer("");
    let screen = term.exit(0);
    assert_line(&screen, r"^PASS +\d+\.\ds  s/t");
}

/// Runs gwtest with stdin `stdin` (never written to, never closed) until it exits.
fn run_with_stdin(ws: &Workspace, stdin: Stdio, ci: bool) -> (i32, String) {
    let mut cmd = support::command(Some(ws.path()));
    cmd.args(["run", "s", "-j", "1", "--pause-on-failure"])
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if ci {
        cmd.env("CI", "true");
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = String::new();
    // stdout is read to its end, so a run that waited forever would never get past here; the
    // pipe on stdin stays open meanwhile (held by `child`).
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, out)
}

fn two_failing_tests(name: &str) -> Workspace {
    alike_tests(
        name,
        &["a", "b"],
        "",
        "  - exec:\n      command: [\"false\"]\n",
    )
}

/// `sleep 100 | gwtest run --pause-on-failure` (a pipe that stays open, `$CI` unset): no
/// pause, said once, and the run goes on.
#[test]
fn no_pause_without_a_terminal_said_once() {
    let ws = two_failing_tests("pause-pipe");
    let (code, out) = run_with_stdin(&ws, Stdio::piped(), false);
    assert_eq!(code, 1, "{out}");
    let note = "note: not pausing: stdin is a pipe, not a terminal (gwtest pauses only where a \
                person can answer); the run goes on";
    assert_eq!(out.matches(note).count(), 1, "{out}");
    assert_eq!(out.matches("not pausing").count(), 1, "{out}");
    assert!(!out.contains("PAUSED"), "{out}");
    assert!(out.contains("s/a") && out.contains("s/b"), "{out}");

    let (code, out) = run_with_stdin(&ws, Stdio::null(), false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "note: not pausing: stdin is closed (/dev/null or another device), not a terminal"
        ),
        "{out}"
    );

    let file = ws.write("input.txt", "\n\n");
    let (code, out) = run_with_stdin(&ws, std::fs::File::open(file).unwrap().into(), false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("note: not pausing: stdin is a file, not a terminal"),
        "{out}"
    );
}

/// In CI nobody is at the keyboard, whatever stdin is.
#[test]
fn pause_on_failure_is_skipped_in_ci() {
    let ws = two_failing_tests("pause-ci");
    let (code, out) = run_with_stdin(&ws, Stdio::piped(), true);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.matches("note: not pausing: $CI is set: nobody is at the keyboard")
            .count(),
        1,
        "{out}"
    );
    assert!(!out.contains("PAUSED"), "{out}");
}

/// What differs from one run to the next (durations, counts, generated names, paths): every
/// run of digits is one `0`, generated suffixes and paths are placeholders.
fn normalized(text: &str) -> String {
    let subs = [
        (r"\d{8}-\d{6}-[a-z0-9]{6}", "RUN"),
        (r"gwtest-(color|infra)-[a-z0-9]{6}", "NS"),
        (r"/tmp/\S+", "PATH"),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "UID",
        ),
        (r"\d+", "0"),
        (r" +", " "),
    ];
    let mut s = text.to_owned();
    for (re, to) in subs {
        s = regex::Regex::new(re)
            .unwrap()
            .replace_all(&s, to)
            .into_owned();
    }
    // Whether the namespace's deletion is still running when the tests end is timing.
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.starts_with("cleanup: waiting for"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ```text block after `<!-- transcript: NAME -->` in docs/debugging.md.
fn doc_transcript(name: &str) -> String {
    let md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/debugging.md")).unwrap();
    let marker = format!("<!-- transcript: {name} -->");
    let at = md
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in docs/debugging.md"));
    let rest = &md[at..];
    let start = rest
        .find("```text\n")
        .expect("a ```text block after the marker")
        + 8;
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].trim_end().to_owned()
}

/// docs/debugging.md shows the prompt with a real transcript: the same run, captured from
/// tmux here, must show the same lines (up to durations, counts and generated names).
#[test]
fn the_prompt_transcript_in_debugging_md_is_true() {
    let cluster = TestCluster::start();
    let ws = suite_with_manifest("pause-transcript", "shop", "settings.yaml", CM);
    ws.write(
        "shop/color.test.yaml",
        "apiVersion: gwtest/v1alpha1\nkind: Test\nname: color\nsteps:\n  - apply: settings.yaml\n  \
         - name: the color is red\n    timeout: 2s\n    assert:\n      resource: {apiVersion: v1, \
         kind: ConfigMap, name: settings}\n      fields: {data: {color: red}}\n",
    );
    let kc = cluster.kubeconfig_str();
    let term = Terminal::start(
        ws.path(),
        support::BIN,
        &["run", "shop", "--pause-on-failure"],
        &[("KUBECONFIG", &kc)],
    );
    let screen = term.wait_for("q: stop the run");
    // An unknown answer, the fix from another terminal, then `r`.
    let ns = paused_namespace_of(&screen, "color");
    term.answer("x");
    term.wait_for("unknown answer");
    make_it_red(&kc, &ns);
    term.answer("r");
    let screen = term.exit(0);
    let shown: String = screen
        .lines()
        .take_while(|l| !l.starts_with("gwtest exited "))
        .collect::<Vec<_>>()
        .join("\n");
    let shown = format!("$ gwtest run shop --pause-on-failure\n{}", shown.trim_end());
    let doc = doc_transcript("pause-prompt");
    assert_eq!(
        normalized(&doc),
        normalized(&shown),
        "docs/debugging.md's transcript is no longer what gwtest shows; the run now shows:\n{shown}"
    );
}

fn paused_namespace_of(screen: &str, test: &str) -> String {
    let r = regex::Regex::new(&format!(r"namespace (gwtest-{test}-[a-z0-9]+) is intact")).unwrap();
    r.captures(screen)
        .unwrap_or_else(|| panic!("no namespace in:\n{screen}"))[1]
        .to_owned()
}
