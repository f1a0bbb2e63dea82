//! Profiles (`gwtest.toml`) and their precedence through the real binary: flag > GWTEST_*
//! environment > profile > built-in default; `CI` picks the `ci` profile (DESIGN §2).

mod support;

use std::time::Duration;

use support::{
    Behavior, RunOutput, TestServer, Workspace, late_route_suites, one_test, request_within_1s,
    test_doc,
};

const PROFILES: &str = r#"
[profile.default]
parallel = 2
retries = 1

[profile.ci]
inherits = "default"
parallel = 3

[profile.wide]
parallel = 7

[profile.patient]
timeout-scale = 3.0
"#;

/// One suite with a test that fails on its first try and passes on a re-run: FLAKY when
/// retries >= 1, FAIL otherwise.
fn workspace(name: &str, profiles: Option<&str>) -> Workspace {
    let ws = one_test(
        name,
        "",
        "",
        r#"  - exec:
      command: [sh, -c, 'if [ -e "marker-$RUN" ]; then exit 0; fi; touch "marker-$RUN"; exit 1']
      env: {RUN: "${run}"}
"#,
    );
    match profiles {
        Some(p) => {
            ws.write("gwtest.toml", p);
        }
        // Without one at all: the search for one goes on in the parents.
        None => std::fs::remove_file(ws.path().join("gwtest.toml")).unwrap(),
    }
    ws
}

/// The `-j` the run says it uses.
fn parallel(out: &RunOutput) -> usize {
    out.stdout_line(r"^gwtest: running .* \(-j (\d+), run ")[1]
        .parse()
        .unwrap()
}

fn tag(out: &RunOutput) -> String {
    out.outcome("s/t").tag
}

#[test]
fn the_built_in_defaults_apply_without_a_config_file() {
    let ws = workspace("no-config", None);
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    assert_eq!(parallel(&out), 4);
    assert_eq!(tag(&out), "FAIL", "retries default to 0");
}

#[test]
fn a_profile_sets_what_flags_and_environment_leave_unset() {
    let ws = workspace("profile", Some(PROFILES));

    // No CI: `default` (parallel 2, retries 1).
    let out = ws.gwtest(&["run", "s"]).env_remove("CI").run();
    out.assert_exit(0);
    assert_eq!((parallel(&out), tag(&out).as_str()), (2, "FLAKY"));

    // CI=false is not CI.
    let out = ws.gwtest(&["run", "s"]).env("CI", "false").run();
    assert_eq!(parallel(&out), 2);

    // CI set: `ci`, which inherits retries from `default`.
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    assert_eq!((parallel(&out), tag(&out).as_str()), (3, "FLAKY"));

    // A named profile wins over CI's choice; `wide` inherits nothing, so no retries.
    let out = ws.gwtest(&["run", "s", "--profile", "wide"]).run();
    out.assert_exit(1);
    assert_eq!((parallel(&out), tag(&out).as_str()), (7, "FAIL"));
    let out = ws
        .gwtest(&["run", "s"])
        .env("GWTEST_PROFILE", "default")
        .run();
    assert_eq!(parallel(&out), 2);
    // The flag wins over GWTEST_PROFILE.
    let out = ws
        .gwtest(&["run", "s", "--profile", "wide"])
        .env("GWTEST_PROFILE", "default")
        .run();
    assert_eq!(parallel(&out), 7);
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_profile() {
    let ws = workspace("precedence", Some(PROFILES));

    // parallel: profile ci says 3.
    let out = ws.gwtest(&["run", "s"]).env("GWTEST_PARALLEL", "5").run();
    assert_eq!(parallel(&out), 5, "environment over profile");
    let out = ws
        .gwtest(&["run", "s", "-j", "6"])
        .env("GWTEST_PARALLEL", "5")
        .run();
    assert_eq!(parallel(&out), 6, "flag over environment");

    // retries: profile ci (inherited from default) says 1.
    let out = ws.gwtest(&["run", "s"]).env("GWTEST_RETRIES", "0").run();
    out.assert_exit(1);
    assert_eq!(tag(&out), "FAIL", "GWTEST_RETRIES=0 over the profile's 1");
    let out = ws
        .gwtest(&["run", "s", "--retries", "1"])
        .env("GWTEST_RETRIES", "0")
        .run();
    out.assert_exit(0);
    assert_eq!(tag(&out), "FLAKY", "--retries 1 over GWTEST_RETRIES=0");
    let out = ws.gwtest(&["run", "s", "--retries", "0"]).run();
    out.assert_exit(1);
    assert_eq!(tag(&out), "FAIL", "--retries 0 over the profile's 1");
}

#[test]
fn a_profile_timeout_scale_stretches_step_timeouts() {
    let ws = Workspace::new("profile-scale");
    ws.write("gwtest.toml", PROFILES);
    let _srv = late_route_suites(&ws);
    // `ci` has no timeout-scale: the 1s step ends before the 1.5s switch. `patient`
    // stretches it to 3s, so the same test passes on its first try.
    let out = ws.gwtest(&["run", "s", "--retries", "0"]).run();
    out.assert_exit(1);
    let out = ws.gwtest(&["run", "u", "--profile", "patient"]).run();
    out.assert_exit(0);
    assert_eq!(out.outcome("u/t").tag, "PASS");
    // --timeout-scale beats the profile's.
    let srv2 = TestServer::start([(
        "/c",
        Behavior::HealthyAfterTime(Duration::from_millis(1500)),
    )]);
    ws.write(
        "u/t.test.yaml",
        &test_doc("t", "", &request_within_1s(&srv2.url("/c"))),
    );
    let out = ws
        .gwtest(&["run", "u", "--profile", "patient", "--timeout-scale", "1"])
        .run();
    out.assert_exit(1);
}

#[test]
fn the_config_file_is_found_in_a_parent_directory() {
    let ws = workspace("parent", Some(PROFILES));
    let sub = ws.path().join("s");
    let out = support::gwtest(&["run", "."]).cwd(&sub).run();
    assert_eq!(parallel(&out), 3);
}

#[test]
fn unknown_profiles_and_bad_config_files_are_command_line_errors() {
    let ws = workspace("bad-profile", Some(PROFILES));
    let out = ws.gwtest(&["run", "s", "--profile", "nope"]).run();
    out.assert_exit(2);
    let want = format!(
        "error: profile `nope` is not defined in {} (defined: ci, default, patient, wide)",
        ws.path().join("gwtest.toml").display()
    );
    assert!(out.stderr.contains(&want), "want {want:?}\n{}", out.dump());
    assert_eq!(out.stdout, "", "nothing ran");

    let out = ws.gwtest(&["run", "s"]).env("GWTEST_PROFILE", "nope").run();
    out.assert_exit(2);

    let ws = workspace("no-file-profile", None);
    ws.gwtest(&["run", "s", "--profile", "ci"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("error: profile `ci` requested but no gwtest.toml was found");

    let ws = workspace("typo", Some("[profile.default]\nparalel = 2\n"));
    ws.gwtest(&["run", "s"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("gwtest.toml:2:1: unknown field `paralel`");

    let ws = workspace(
        "cycle",
        Some("[profile.a]\ninherits = \"b\"\n[profile.b]\ninherits = \"a\"\n"),
    );
    ws.gwtest(&["run", "s", "--profile", "a"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("profile inheritance cycle: a -> b -> a");
}

#[test]
fn invalid_command_lines_exit_2_and_say_why() {
    let ws = workspace("cli", None);
    for (args, msg) in [
        (
            &["run", "s", "--parallel", "0"][..],
            "--parallel must be at least 1",
        ),
        (
            &["run", "s", "--timeout-scale", "0"],
            "--timeout-scale must be a positive number",
        ),
        (
            &["run", "s", "--timeout-scale", "abc"],
            "invalid value 'abc'",
        ),
        (
            &["run", "s", "--var", "novalue"],
            "invalid --var \"novalue\": expected NAME=VALUE",
        ),
        (
            &["run", "s", "--no-such-flag"],
            "unexpected argument '--no-such-flag'",
        ),
        (
            &["run", "s", "--keep", "sometimes"],
            "invalid value 'sometimes'",
        ),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    ] {
        let out = ws.gwtest(args).run();
        out.assert_exit(2);
        assert!(
            out.stderr.contains(msg),
            "{args:?}: want {msg:?}\n{}",
            out.dump()
        );
    }
    ws.gwtest(&["run", "s"])
        .env("GWTEST_PARALLEL", "many")
        .run()
        .assert_exit(2)
        .assert_stderr_has("invalid value 'many'");
    // --help is not an error.
    let out = ws.gwtest(&["run", "--help"]).run();
    out.assert_exit(0);
    assert!(out.stdout.contains("--timeout-scale"), "{}", out.dump());
}

/// `--var` values may hold commas; `$GWTEST_VAR` is comma-separated pairs; the flag wins.
#[test]
fn var_values_keep_their_commas_and_the_environment_splits_pairs() {
    let ws = one_test(
        "var-commas",
        "",
        "",
        "  - exec:\n      command: [echo, \"${hosts}|${a}|${b}\"]\n      expect: {stdout: {equals: \"x.com,y.com|1|from-flag\\n\"}}\n    timeout: 2s\n",
    );
    let out = ws
        .gwtest(&[
            "run",
            "s",
            "--var",
            "hosts=x.com,y.com",
            "--var",
            "b=from-flag",
        ])
        .env("GWTEST_VAR", "a=1,b=2")
        .run();
    out.assert_exit(0);
    let out = ws
        .gwtest(&["validate", "s", "--var", "hosts=x,y"])
        .env("GWTEST_VAR", "a=1,b=2")
        .run();
    out.assert_exit(0);
}

/// `validate` and `list` read gwtest.toml as `run` does (the profile's paths and vars), and
/// `list` refuses suites `run` would refuse.
#[test]
fn validate_and_list_honour_the_profile_and_the_checks_of_run() {
    let ws = Workspace::new("profile-validate-list");
    ws.suite("elsewhere/s", "");
    ws.write(
        "elsewhere/s/t.test.yaml",
        &test_doc(
            "t",
            "",
            "  - exec:\n      command: [echo, \"${greeting}\"]\n",
        ),
    );
    ws.write(
        "gwtest.toml",
        "[profile.default]\npaths = [\"elsewhere\"]\nvars = { greeting = \"hi\" }\n\n\
         [profile.bare]\npaths = [\"elsewhere\"]\n",
    );
    for cmd in ["validate", "list", "run"] {
        let out = ws.gwtest(&[cmd]).env_remove("CI").run();
        out.assert_exit(0);
        // Without the profile's variable, `${greeting}` is undefined: all three refuse the
        // suite with the same error.
        let out = ws
            .gwtest(&[cmd, "--profile", "bare"])
            .env_remove("CI")
            .run();
        out.assert_exit(2);
        assert!(
            out.stderr
                .contains("elsewhere/s/t.test.yaml:7:24: unknown variable `${greeting}`"),
            "{cmd}: {}",
            out.dump()
        );
        // A flag defines it as well.
        let out = ws
            .gwtest(&[cmd, "--profile", "bare", "--var", "greeting=yo"])
            .env_remove("CI")
            .run();
        out.assert_exit(0);
    }
    let out = ws.gwtest(&["list"]).env_remove("CI").run();
    assert_eq!(out.stdout.trim(), "s/t", "{}", out.dump());
}
