//! What the terminal output does for the people and programs that read it, through the real
//! binary: `--color` and the NO_COLOR / CLICOLOR_FORCE / FORCE_COLOR conventions, the `SLOW`
//! heartbeat in plain output, `-j 1` in file-name order, and echoed output that can neither
//! drive the terminal (escape sequences made visible) nor a GitHub workflow (fenced with
//! `::stop-commands::`).

mod support;

use support::{Behavior, Canned, TestServer, Workspace, one_file, one_test, test_doc};

const ESC: char = '\u{1b}';

#[test]
fn colour_follows_the_flag_then_no_color_then_the_forcing_variables() {
    let ws = one_test(
        "color",
        "name: s",
        "",
        "  - name: boom\n    timeout: 200ms\n    exec:\n      command: [sh, -c, \"echo oops; exit 1\"]\n",
    );
    let has_color = |args: &[&str], env: &[(&str, &str)]| {
        let mut g = ws.gwtest(args);
        for (k, v) in env {
            g = g.env(k, v);
        }
        let out = g.run();
        out.assert_exit(1);
        out.stdout.contains(ESC)
    };
    // stdout is a pipe: no colour unless asked for.
    assert!(!has_color(&["run", "s"], &[]));
    assert!(has_color(&["run", "s", "--color", "always"], &[]));
    assert!(
        has_color(&["--color=always", "run", "s"], &[]),
        "global flag"
    );
    assert!(has_color(&["run", "s"], &[("FORCE_COLOR", "1")]));
    assert!(has_color(&["run", "s"], &[("CLICOLOR_FORCE", "1")]));
    assert!(!has_color(&["run", "s"], &[("FORCE_COLOR", "0")]));
    assert!(!has_color(
        &["run", "s"],
        &[("NO_COLOR", "1"), ("FORCE_COLOR", "1")]
    ));
    assert!(!has_color(
        &["run", "s", "--color", "never"],
        &[("FORCE_COLOR", "1")]
    ));
    assert!(has_color(
        &["run", "s", "--color", "always"],
        &[("NO_COLOR", "1")]
    ));
    assert!(has_color(&["run", "s"], &[("GWTEST_COLOR", "always")]));
    // gwtest.toml's profile key.
    ws.write("gwtest.toml", "[profile.default]\ncolor = \"always\"\n");
    assert!(has_color(&["run", "s"], &[]));
    let out = ws.gwtest(&["run", "s", "--color", "sometimes"]).run();
    out.assert_exit(2);
}

#[test]
fn a_long_test_gets_a_slow_line_in_plain_output() {
    let ws = one_file(
        "slow",
        "name: s",
        &[test_doc("sleepy", "", "  - name: nap\n    sleep: 11s\n")],
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    let slow = out.stdout_line(r"^SLOW  \[>10\.0s\] s/sleepy › nap$");
    drop(slow);
    // Before the result line, once.
    let at = |p: &str| out.stdout.find(p).unwrap();
    assert!(at("SLOW ") < at("PASS "), "{}", out.dump());
    assert_eq!(out.stdout.matches("SLOW ").count(), 1, "{}", out.dump());
}

#[test]
fn one_at_a_time_runs_in_file_name_order() {
    let ws = Workspace::new("order");
    let step = |tag: &str| {
        format!("  - exec:\n      command: [sh, -c, \"echo {tag} >> ${{env.ORDER_FILE}}\"]\n")
    };
    ws.suite("a", "name: a");
    ws.suite("b", "name: b");
    ws.suite("b/nested", "name: nested");
    // Written in an order unlike the file names, several documents in one file.
    ws.write("b/z.test.yaml", &test_doc("bz", "", &step("b/z")));
    ws.write(
        "a/2-second.test.yaml",
        &[
            test_doc("a2x", "", &step("a/2x")),
            test_doc("a2y", "", &step("a/2y")),
        ]
        .join("---\n"),
    );
    ws.write("a/1-first.test.yaml", &test_doc("a1", "", &step("a/1")));
    ws.write(
        "b/nested/n.test.yaml",
        &test_doc("n", "", &step("b/nested")),
    );
    ws.write("b/c.test.yaml", &test_doc("bc", "", &step("b/c")));
    let order = ws.path().join("order.txt");
    for _ in 0..3 {
        let _ = std::fs::remove_file(&order);
        let out = ws
            .gwtest(&["run", ".", "-j", "1"])
            .env("ORDER_FILE", order.to_str().unwrap())
            .run();
        out.assert_exit(0);
        assert_eq!(
            std::fs::read_to_string(&order).unwrap(),
            "a/1\na/2x\na/2y\nb/c\nb/z\nb/nested\n"
        );
        let ids: Vec<String> = out.results().into_iter().map(|r| r.1).collect();
        assert_eq!(ids, ["a/a1", "a/a2x", "a/a2y", "b/bc", "b/bz", "nested/n"]);
    }
}

#[test]
fn echoed_output_cannot_make_workflow_commands_or_drive_the_terminal() {
    let srv = TestServer::start([(
        "/body",
        Behavior::Respond(Canned::new(
            500,
            "::warning::from-the-body\n\u{1b}[2Jcleared",
        )),
    )]);
    let ws = one_file(
        "inject",
        "name: s",
        &[
            test_doc(
                "exec",
                "",
                "  - name: echo\n    timeout: 200ms\n    exec:\n      \
                 command: [sh, -c, \"printf '::error::injected\\\\n\\\\033[31mred'; exit 1\"]\n",
            ),
            test_doc(
                "request",
                "",
                &format!(
                    "  - name: get\n    timeout: 200ms\n    request:\n      url: {}\n      \
                     expect: {{status: 200}}\n",
                    srv.url("/body")
                ),
            ),
        ],
    );
    let out = ws.gwtest(&["run", "s"]).env("GITHUB_ACTIONS", "true").run();
    out.assert_exit(1);
    // Every line that would be a workflow command is inside a stop-commands fence, except
    // gwtest's own annotations.
    let mut fence: Option<String> = None;
    let mut fenced = Vec::new();
    for l in out.stdout.lines() {
        match &fence {
            Some(end) if l == end => fence = None,
            Some(_) => fenced.push(l.to_owned()),
            None => {
                if let Some(t) = l.strip_prefix("::stop-commands::") {
                    fence = Some(format!("::{t}::"));
                } else if l.trim_start().starts_with("::") {
                    assert!(
                        l.starts_with("::error file=s/t.test.yaml,line="),
                        "an unfenced workflow command: {l:?}\n{}",
                        out.dump()
                    );
                }
            }
        }
    }
    assert!(fence.is_none(), "a fence left open\n{}", out.dump());
    assert!(
        fenced.iter().any(|l| l.trim() == "::error::injected"),
        "{}",
        out.dump()
    );
    assert!(
        fenced
            .iter()
            .any(|l| l.trim() == "::warning::from-the-body"),
        "{}",
        out.dump()
    );
    // The annotations themselves carry the echoed text escaped, on one line.
    let annotations: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), 2, "{}", out.dump());
    // Escape sequences are shown, not executed.
    assert!(!out.stdout.contains(ESC), "{}", out.dump());
    assert!(out.stdout.contains("\\x1b[31mred"), "{}", out.dump());
    assert!(out.stdout.contains("\\x1b[2Jcleared"), "{}", out.dump());
}
