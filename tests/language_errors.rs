//! The suite language through the real binary: every kind of mistake is reported by
//! `gwtest validate` and `gwtest run` with exit code 2, `file:line:column`, a message that
//! says what is wrong and what is expected, and a snippet with a caret. Plus the positive
//! side: discovery, multi-document files, every step kind, escapes, list and schema.

mod lang_support;
mod support;

use lang_support::{SUITE, assert_error, error_blocks, position, suite_with_test, validate_fails};
use support::{RunOutput, Workspace};

const HEAD: &str = "apiVersion: gwtest/v1alpha1\nkind: Test\n";

/// A suite with `suite.yaml` (default `SUITE`) and one test file `t.test.yaml`.
fn one_test(test: &str) -> Workspace {
    suite_with_test("lang", test, &[])
}

/// `gwtest validate` and `gwtest run` on `target` (plus `extra`), which must both fail with
/// exit 2: each command with its output.
fn both_fail(dir: &Workspace, target: &str, extra: &[&str]) -> Vec<(&'static str, RunOutput)> {
    ["validate", "run"]
        .into_iter()
        .map(|cmd| {
            let mut args = vec![cmd, target];
            args.extend_from_slice(extra);
            let out = dir.gwtest(&args).run();
            assert_eq!(
                out.code,
                Some(2),
                "gwtest {cmd}: expected exit 2\nstdout:\n{}\nstderr:\n{}",
                out.stdout,
                out.stderr
            );
            (cmd, out)
        })
        .collect()
}

/// `validate` and `run` both fail with exit 2 and report each `(file, needle, message)` at
/// the position of `needle` in that file's text.
fn expect_errors(dir: &Workspace, files: &[(&str, &str)], errors: &[(&str, &str, &str)]) {
    expect_errors_args(dir, files, errors, &[]);
}

fn expect_errors_args(
    dir: &Workspace,
    files: &[(&str, &str)],
    errors: &[(&str, &str, &str)],
    extra: &[&str],
) {
    for (_, out) in both_fail(dir, dir.path_str(), extra) {
        for (file, needle, message) in errors {
            let text = files
                .iter()
                .find(|(f, _)| f == file)
                .map(|(_, t)| *t)
                .unwrap_or_else(|| panic!("no file {file}"));
            assert_error(&out.stderr, file, text, needle, message);
        }
    }
}

/// `validate` of a test file whose one step is `step`, which must fail: its output.
fn validate_step(step: &str) -> RunOutput {
    validate_fails(&one_test(&format!("{HEAD}name: t\nsteps:\n  - {step}\n")))
}

/// One test file with one mistake.
fn expect_test_error(test: &str, needle: &str, message: &str) {
    let dir = one_test(test);
    expect_errors(
        &dir,
        &[("t.test.yaml", test)],
        &[("t.test.yaml", needle, message)],
    );
}

/// A suite.yaml (and no test) with one mistake.
fn expect_suite_error(suite: &str, needle: &str, message: &str) {
    let dir = Workspace::with("lang", &[("suite.yaml", suite)]);
    expect_errors(
        &dir,
        &[("suite.yaml", suite)],
        &[("suite.yaml", needle, message)],
    );
}

fn expect_valid(dir: &Workspace, extra: &[&str]) -> String {
    let mut args = vec!["validate", dir.path_str()];
    args.extend_from_slice(extra);
    let out = dir.gwtest(&args).run();
    assert_eq!(out.code, Some(0), "expected valid:\n{}", out.stderr);
    out.stdout
}

// ---------------------------------------------------------------------------------------
// shape

#[test]
fn unknown_key_with_did_you_mean() {
    let t = format!("{HEAD}name: t\nsteps:\n  - sleep: 1s\n    tiemout: 2s\n");
    expect_test_error(
        &t,
        "tiemout",
        "unknown key `tiemout`: did you mean `timeout`?",
    );
}

#[test]
fn unknown_key_lists_the_expected_keys() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: http://127.0.0.1/\n      zzz: 1\n"
    );
    expect_test_error(
        &t,
        "zzz",
        "unknown key `zzz`: expected one of `method`, `url`",
    );
}

#[test]
fn two_actions_in_one_step() {
    let t = format!("{HEAD}name: t\nsteps:\n  - name: both\n    sleep: 1s\n    pause: look\n");
    expect_test_error(
        &t,
        "name: both",
        "step has 2 actions (`sleep`, `pause`): a step does exactly one thing",
    );
}

#[test]
fn no_action() {
    let t = format!("{HEAD}name: t\nsteps:\n  - name: idle\n    timeout: 2s\n");
    expect_test_error(
        &t,
        "name: idle",
        "step has no action: give exactly one of `apply`",
    );
}

#[test]
fn bad_durations() {
    for (value, msg) in [
        ("5", "duration \"5\" has no unit: write it as e.g. \"5s\""),
        ("soon", "invalid duration \"soon\""),
        ("\"${wait}\"", "variables are not allowed in durations"),
        ("0s", "a zero duration makes no sense here"),
    ] {
        let t = format!(
            "{HEAD}name: t\nsteps:\n  - request: {{url: http://127.0.0.1/}}\n    timeout: {value}\n"
        );
        expect_test_error(&t, value, msg);
    }
}

/// A deadline or delay of zero is refused wherever it is written, with its location: the
/// step's `attempt-timeout` and a port-forward's or a collector's `timeout` as much as the
/// suite's defaults (a zero attempt-timeout would fail every attempt at once).
#[test]
fn zero_deadlines_are_refused_wherever_they_are_written() {
    const ZERO: &str = "a zero duration makes no sense here";
    let t = format!(
        "{HEAD}name: t\ntimeout: 0s\nsteps:\n  - request: {{url: http://127.0.0.1/, attempt-timeout: 0ms}}\n"
    );
    let dir = one_test(&t);
    expect_errors(
        &dir,
        &[("t.test.yaml", &t)],
        &[("t.test.yaml", "0s", ZERO), ("t.test.yaml", "0ms", ZERO)],
    );
    for suite in [
        "apiVersion: gwtest/v1alpha1\nkind: Suite\ndefaults:\n  attempt-timeout: 0s\n",
        "apiVersion: gwtest/v1alpha1\nkind: Suite\nnamespace: n\nvars:\n  gw:\n    port-forward: {service: gw, port: 80, timeout: 0s}\n",
        "apiVersion: gwtest/v1alpha1\nkind: Suite\ndiagnostics:\n  - events: {}\n    timeout: 0s\n",
    ] {
        expect_suite_error(suite, "0s", ZERO);
    }
}

#[test]
fn zero_sleep_and_consecutive_zero() {
    let t = format!("{HEAD}name: t\nsteps:\n  - sleep: 0ms\n");
    expect_test_error(&t, "0ms", "`sleep: 0s` does nothing");
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request: {{url: http://127.0.0.1/}}\n    consecutive: 0\n"
    );
    expect_test_error(
        &t,
        "0\n",
        "`consecutive: 0` would pass without a single success",
    );
}

#[test]
fn yaml_syntax_error() {
    let t = format!("{HEAD}name: t\nsteps:\n  - request: {{url: [unclosed\n");
    let dir = one_test(&t);
    for (_, out) in both_fail(&dir, dir.path_str(), &[]) {
        let blocks = error_blocks(&out.stderr);
        let b = blocks
            .iter()
            .find(|b| b.contains("invalid YAML"))
            .unwrap_or_else(|| panic!("{}", out.stderr));
        // serde-saphyr's location: line and column inside the file, with our snippet.
        let first = b.lines().next().unwrap();
        let rest = first.split("t.test.yaml:").nth(1).unwrap();
        let mut nums = rest.split(':');
        let line: usize = nums.next().unwrap().parse().unwrap();
        let col: usize = nums.next().unwrap().parse().unwrap();
        assert!((5..=6).contains(&line) && col >= 1, "{first}");
        assert!(b.contains(&format!("{line} | ")), "{b}");
        assert!(b.lines().any(|l| l.trim_end().ends_with('^')), "{b}");
    }
}

#[test]
fn wrong_api_version() {
    let t = "apiVersion: gwtest/v1\nkind: Test\nname: t\nsteps:\n  - sleep: 1s\n";
    expect_test_error(
        t,
        "gwtest/v1",
        "unsupported apiVersion \"gwtest/v1\": expected gwtest/v1alpha1",
    );
}

#[test]
fn suite_in_a_test_file_and_test_in_suite_yaml() {
    let t = "apiVersion: gwtest/v1alpha1\nkind: Suite\n";
    expect_test_error(
        t,
        "Suite",
        "expected kind Test in a *.test.yaml file, found \"Suite\"",
    );

    expect_suite_error(
        "apiVersion: gwtest/v1alpha1\nkind: Test\nname: x\n",
        "Test",
        "expected kind Suite in suite.yaml, found \"Test\"",
    );
}

#[test]
fn unknown_kind_and_missing_api_version() {
    let t = "apiVersion: gwtest/v1alpha1\nkind: Tset\nname: t\nsteps: []\n";
    expect_test_error(t, "Tset", "unknown kind \"Tset\": expected Test");
    let t = "apiversion: gwtest/v1alpha1\nkind: Test\nname: t\nsteps: []\n";
    expect_test_error(
        t,
        "apiversion",
        "missing `apiVersion: gwtest/v1alpha1` (found `apiversion`: keys are case-sensitive)",
    );
}

#[test]
fn missing_name() {
    let t = format!("{HEAD}steps:\n  - sleep: 1s\n");
    expect_test_error(&t, "apiVersion", "missing required key `name`");
}

#[test]
fn wrong_types() {
    for (steps, needle, msg) in [
        (
            "steps:\n  - sleep: 1s\n    timeout: [1]\n",
            "[1]",
            "wrong type: expected a duration with a unit, e.g. 500ms, 30s or 2m, found a list",
        ),
        (
            "steps:\n  - request:\n      url: http://127.0.0.1/\n      expect: {status: \"abc\"}\n",
            "\"abc\"",
            "wrong type: expected an HTTP status code such as 200 or a list of codes, found string \"abc\"",
        ),
        (
            "steps: {a: 1}\n",
            "{a: 1}",
            "wrong type: expected a list, found a map",
        ),
        (
            "steps:\n  - assert:\n      resource: {apiVersion: v1, kind: Pod, name: p}\n      absent: maybe\n",
            "maybe",
            "wrong type: expected a boolean (true or false), found string \"maybe\"",
        ),
    ] {
        expect_test_error(&format!("{HEAD}name: t\n{steps}"), needle, msg);
    }
}

#[test]
fn invalid_regexes() {
    for (yaml, needle) in [
        (
            "  - request:\n      url: http://127.0.0.1/\n      expect: {body: {matches: \"a(\"}}\n",
            "\"a(\"",
        ),
        (
            "  - request:\n      url: http://127.0.0.1/\n      expect: {headers: {x-a: {matches: \"[z\"}}}\n",
            "\"[z\"",
        ),
        (
            "  - spans:\n      expect: [{name-matches: \"(x\"}]\n",
            "\"(x\"",
        ),
    ] {
        let t = format!("{HEAD}name: t\nsteps:\n{yaml}");
        expect_test_error(&t, needle, "invalid regex");
    }
}

#[test]
fn invalid_jsonpaths() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: http://127.0.0.1/\n      capture: {{pod: \"$.[\"}}\n"
    );
    expect_test_error(&t, "\"$.[\"", "invalid JSONPath \"$.[\"");
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: http://127.0.0.1/\n      expect:\n        json: {{\"pod\": 1}}\n"
    );
    expect_test_error(&t, "\"pod\"", "invalid JSONPath \"pod\"");
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  gw:\n    from:\n      resource: {apiVersion: v1, kind: Service, name: gw}\n      path: status.x\n";
    expect_suite_error(s, "status.x", "invalid JSONPath \"status.x\"");
}

#[test]
fn exec_command_not_a_list() {
    let t = format!("{HEAD}name: t\nsteps:\n  - exec: {{command: \"kubectl get pods\"}}\n");
    expect_test_error(
        &t,
        "\"kubectl",
        "exec.command must be a list (argv), e.g. [kubectl, get, pods]; gwtest never runs a shell",
    );
}

#[test]
fn text_match_needs_exactly_one_key() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: http://127.0.0.1/\n      expect: {{body: {{equals: a, contains: b}}}}\n"
    );
    expect_test_error(
        &t,
        "{equals",
        "give exactly one of `equals`, `contains` or `matches`, found `equals`, `contains`",
    );
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - exec:\n      command: [\"true\"]\n      expect: {{stdout: {{}}}}\n"
    );
    expect_test_error(&t, "{}", "give one of `equals`, `contains` or `matches`");
}

#[test]
fn span_name_xor_name_matches_and_unknown_kind() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - spans:\n      expect:\n        - {{name: a, name-matches: b}}\n"
    );
    expect_test_error(&t, "{name: a", "give `name` or `name-matches`, not both");
    let t = format!("{HEAD}name: t\nsteps:\n  - spans:\n      expect:\n        - kind: server\n");
    expect_test_error(
        &t,
        "kind: server",
        "a span expectation needs `name` (exact) or `name-matches`",
    );
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - spans:\n      expect:\n        - {{name: a, kind: serverr}}\n"
    );
    expect_test_error(
        &t,
        "serverr",
        "unknown value `serverr` (did you mean `server`?); expected one of `internal`, `server`",
    );
}

#[test]
fn resource_name_and_selector_rules() {
    let cases = [
        (
            "  - assert:\n      resource: {apiVersion: v1, kind: Pod, name: p, selector: app=web}\n",
            "{apiVersion",
            "give `name` (one object) or `selector` (objects with labels), not both",
        ),
        (
            "  - delete:\n      resource: {apiVersion: v1, kind: Pod}\n",
            "{apiVersion",
            "the resource needs `name` (one object) or `selector`",
        ),
        (
            "  - patch:\n      resource: {apiVersion: v1, kind: Pod, selector: app=web}\n      merge: {metadata: {labels: {a: b}}}\n",
            "{apiVersion",
            "patch needs the resource's `name`",
        ),
        (
            "  - assert:\n      resource: {apiVersion: v1, kind: Pod, name: p}\n      count: 2\n",
            "count",
            "`count` needs `selector`",
        ),
    ];
    for (steps, needle, msg) in cases {
        let t = format!("{HEAD}name: t\nsteps:\n{steps}");
        expect_test_error(&t, needle, msg);
    }
}

#[test]
fn absent_contradicts_conditions_and_fields() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - assert:\n      resource: {{apiVersion: v1, kind: Pod, name: p}}\n      absent: true\n      conditions: [{{type: Ready, status: \"True\"}}]\n      fields: {{spec: {{}}}}\n"
    );
    expect_test_error(
        &t,
        "absent",
        "`absent: true` contradicts `conditions`, `fields`",
    );
}

#[test]
fn retry_keys_on_actions() {
    let t = format!("{HEAD}name: t\nsteps:\n  - sleep: 1s\n    hold: 2s\n");
    expect_test_error(&t, "hold", "`hold` only applies to assertions");
    let t =
        format!("{HEAD}name: t\nsteps:\n  - exec: {{command: [\"true\"]}}\n    consecutive: 2\n");
    expect_test_error(&t, "consecutive", "an `exec` without `expect` runs once");
}

#[test]
fn missing_files_relative_to_the_file_that_names_them() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - apply: [here.yaml, nothere.yaml, \"${{unique}}.yaml\"]\n  - request: {{url: https://127.0.0.1/, ca: certs/ca.pem}}\n"
    );
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nfixtures:\n  - ../fixtures/gw.yaml\n";
    let dir = Workspace::with(
        "lang",
        &[
            ("suites/a/suite.yaml", s),
            ("suites/a/t.test.yaml", &t),
            ("suites/a/here.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
        ],
    );
    let target = dir.path().join("suites");
    for (_, out) in both_fail(&dir, target.to_str().unwrap(), &[]) {
        assert_error(
            &out.stderr,
            "t.test.yaml",
            &t,
            "nothere.yaml",
            "file not found",
        );
        assert_error(
            &out.stderr,
            "t.test.yaml",
            &t,
            "certs/ca.pem",
            "file not found",
        );
        assert_error(
            &out.stderr,
            "suite.yaml",
            s,
            "../fixtures",
            "file not found",
        );
        assert_eq!(error_blocks(&out.stderr).len(), 3, "{}", out.stderr);
    }
    // Once the files exist, the suite is valid.
    dir.write(
        "suites/fixtures/gw.yaml",
        "apiVersion: v1\nkind: Namespace\n",
    );
    dir.write("suites/a/nothere.yaml", "apiVersion: v1\nkind: ConfigMap\n");
    dir.write("suites/a/certs/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let out = dir.gwtest(&["validate", target.to_str().unwrap()]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn applied_manifest_with_a_yaml_error() {
    let t = format!("{HEAD}name: t\nsteps:\n  - apply: bad.yaml\n");
    let dir = suite_with_test(
        "lang",
        &t,
        &[("bad.yaml", "apiVersion: v1\nkind: [ConfigMap\n")],
    );
    let out = validate_fails(&dir);
    assert!(
        error_blocks(&out.stderr)
            .iter()
            .any(|b| b.contains("bad.yaml:") && b.contains("invalid YAML")),
        "{}",
        out.stderr
    );
}

#[test]
fn duplicate_test_and_suite_names() {
    let a = format!("{HEAD}name: same\nsteps:\n  - sleep: 1s\n");
    let b = format!(
        "{HEAD}name: other\nsteps:\n  - sleep: 1s\n---\n{HEAD}name: same\nsteps:\n  - sleep: 1s\n"
    );
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nname: dup\n";
    let dir = Workspace::with(
        "lang",
        &[
            ("one/suite.yaml", s),
            ("one/a.test.yaml", &a),
            ("one/b.test.yaml", &b),
            ("two/suite.yaml", s),
        ],
    );
    let b_second = &b[b.find("---").unwrap()..];
    let (line, col) = position(b_second, "same");
    let line = line + b[..b.find("---").unwrap()].matches('\n').count();
    for (_, out) in both_fail(&dir, dir.path_str(), &[]) {
        out.assert_stderr_has(&format!(
            "b.test.yaml:{line}:{col}: duplicate test name `same` (also "
        ));
        assert_error(
            &out.stderr,
            "suite.yaml",
            s,
            "dup",
            "duplicate suite name `dup`",
        );
    }
}

#[test]
fn test_names_that_cannot_make_a_namespace() {
    let t = format!("{HEAD}name: \"--!!--\"\nsteps:\n  - sleep: 1s\n");
    expect_test_error(&t, "\"--!!--\"", "cannot make a namespace");
}

#[test]
fn invalid_namespace_values() {
    for bad in ["Per_Test", "per_suite", "-x", "UPPER"] {
        expect_suite_error(
            &format!("apiVersion: gwtest/v1alpha1\nkind: Suite\nnamespace: {bad}\n"),
            bad,
            "expected `per-test`, `per-suite` or the name of a namespace",
        );
    }
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nnamespace: shared-ns\n";
    let dir = Workspace::with("lang", &[("suite.yaml", s)]);
    expect_valid(&dir, &[]);
}

#[test]
fn suite_vars_named_like_builtins() {
    expect_suite_error(
        "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  namespace: mine\n",
        "namespace:",
        "`namespace` is a built-in variable",
    );
}

#[test]
fn selectors_that_do_not_parse() {
    for (sel, msg) in [
        ("\"app in (a,b\"", "unclosed `(`"),
        (
            "\"app ~ web\"",
            "expected `=`, `!=`, `in (...)` or `notin (...)`",
        ),
        ("\"app=web,\"", "empty requirement"),
        ("{\"bad key!\": x}", "invalid label key"),
    ] {
        let t = format!(
            "{HEAD}name: t\nsteps:\n  - delete:\n      resource: {{apiVersion: v1, kind: Pod, selector: {sel}}}\n"
        );
        let needle = if sel.starts_with('{') {
            "\"bad key!\""
        } else {
            sel
        };
        expect_test_error(&t, needle, msg);
    }
}

#[test]
fn http_method_and_url() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request: {{method: \"GE T\", url: http://127.0.0.1/}}\n"
    );
    expect_test_error(
        &t,
        "\"GE T\"",
        "invalid HTTP method \"GE T\": expected a token",
    );
    for url in ["example.com/x", "ftp://example.com/", "http://"] {
        let t = format!("{HEAD}name: t\nsteps:\n  - request: {{url: \"{url}\"}}\n");
        expect_test_error(
            &t,
            &format!("\"{url}\""),
            "expected an absolute http:// or https:// URL",
        );
    }
    // With a variable the URL is only known at run time.
    let t = format!("{HEAD}name: t\nsteps:\n  - request: {{url: \"${{env.PATH}}\"}}\n");
    expect_valid(&one_test(&t), &[]);
}

// ---------------------------------------------------------------------------------------
// variables

#[test]
fn unknown_variable_with_suggestion() {
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  host: example.com\n";
    let t = format!("{HEAD}name: t\nsteps:\n  - request:\n      url: http://${{hots}}/x\n");
    let dir = Workspace::with("lang", &[("suite.yaml", s), ("t.test.yaml", &t)]);
    expect_errors(
        &dir,
        &[("t.test.yaml", &t)],
        &[(
            "t.test.yaml",
            "${hots}",
            "unknown variable `${hots}` (did you mean `${host}`?)",
        )],
    );
}

#[test]
fn unset_environment_variable() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - exec: {{command: [echo, \"${{env.GWTEST_LANG_SURELY_UNSET}}\"]}}\n"
    );
    expect_test_error(
        &t,
        "${env.",
        "environment variable GWTEST_LANG_SURELY_UNSET is not set",
    );
    let dir = one_test(&t);
    let out = dir
        .gwtest(&["validate", dir.path_str()])
        .envs(&[("GWTEST_LANG_SURELY_UNSET", "1")])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn var_flag_is_honoured() {
    let t = format!("{HEAD}name: t\nsteps:\n  - request: {{url: \"http://${{gw}}/\"}}\n");
    let dir = one_test(&t);
    expect_errors(
        &dir,
        &[("t.test.yaml", &t)],
        &[("t.test.yaml", "${gw}", "unknown variable `${gw}`")],
    );
    expect_valid(&dir, &["--var", "gw=127.0.0.1:1"]);
}

#[test]
fn captures_are_known_only_after_their_step() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: \"http://127.0.0.1/${{early}}\"\n  - request:\n      url: http://127.0.0.1/a\n      capture: {{early: $.a, own: $.b}}\n      expect: {{body: {{contains: \"${{own}}\"}}}}\n  - request: {{url: \"http://127.0.0.1/${{early}}\"}}\n"
    );
    let out = validate_fails(&one_test(&t));
    let (cap_line, _) = position(&t, "capture:");
    assert_error(
        &out.stderr,
        "t.test.yaml",
        &t,
        "${early}",
        &format!("`${{early}}` is captured by a later step (line {cap_line})"),
    );
    assert_error(
        &out.stderr,
        "t.test.yaml",
        &t,
        "${own}",
        "`${own}` is captured by this same step",
    );
    // The third step uses `early` after its capture: no error there.
    assert_eq!(error_blocks(&out.stderr).len(), 2, "{}", out.stderr);
}

#[test]
fn escapes_and_bad_references() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - exec:\n      command: [echo, \"$${{not_a_var}}\", \"cost: $5\"]\n"
    );
    expect_valid(&one_test(&t), &[]);
    let t = format!("{HEAD}name: t\nsteps:\n  - exec: {{command: [echo, \"a ${{open\"]}}\n");
    expect_test_error(&t, "${open", "unclosed `${`");
}

#[test]
fn suite_level_variables_are_checked_in_order() {
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  url: \"http://${host}/\"\n  host: example.com\n  who: \"${test}\"\n";
    let dir = Workspace::with("lang", &[("suite.yaml", s)]);
    expect_errors(
        &dir,
        &[("suite.yaml", s)],
        &[
            (
                "suite.yaml",
                "${host}",
                "suite variable `host` is defined at line 5, after this one",
            ),
            ("suite.yaml", "${test}", "`${test}` is per test"),
        ],
    );
}

#[test]
fn port_forward_and_diagnostics_mistakes() {
    // A forward is set up once per suite: with per-test namespaces it must name one.
    expect_suite_error(
        "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  gw:\n    port-forward: {service: gw, port: 80}\n",
        "{service",
        "port-forward needs `namespace`",
    );
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nnamespace: per-suite\nvars:\n  gw:\n    port-forward: {service: gw, port: 80}\n";
    expect_valid(&Workspace::with("lang", &[("suite.yaml", s)]), &[]);
    expect_suite_error(
        "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  gw:\n    port-forward: {service: gw, pod: p, namespace: n, port: 80}\n",
        "{service",
        "give `service` or `pod`, not both",
    );
    expect_suite_error(
        "apiVersion: gwtest/v1alpha1\nkind: Suite\nvars:\n  gw:\n    port-forward: {service: gw, namespace: n, port: 80}\n    from: x\n",
        "from: x",
        "unknown key `from` next to `port-forward`",
    );
    // Collectors: one kind each, valid selectors, known variables (per-test ones included).
    expect_suite_error(
        "apiVersion: gwtest/v1alpha1\nkind: Suite\ndiagnostics:\n  - events: {}\n    get: {apiVersion: v1, kind: Pod}\n",
        "events",
        "give exactly one of `logs`, `events`, `get` or `exec` per collector, found `events`, `get`",
    );
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\ndiagnostics:\n  - logs: {selector: \"app in (\"}\n  - exec: {command: [echo, \"${namespace}\", \"${test}\", \"${nope}\"]}\n";
    let dir = Workspace::with("lang", &[("suite.yaml", s)]);
    let out = dir
        .gwtest(&["validate", dir.path_str(), "--var", "x=1"])
        .run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_error(
        &out.stderr,
        "suite.yaml",
        s,
        "\"app in (\"",
        "invalid selector",
    );
    assert_error(
        &out.stderr,
        "suite.yaml",
        s,
        "${nope}",
        "unknown variable `${nope}`",
    );
    out.assert_stderr_has("2 errors found");
}

// ---------------------------------------------------------------------------------------
// all errors, in file order

#[test]
fn every_error_of_every_file_in_file_order() {
    let a = format!(
        "{HEAD}name: a\nsteps:\n  - sleep: 1s\n    tiemout: 2s\n  - request: {{url: http://127.0.0.1/}}\n    hold: 5\n  - name: two\n    sleep: 1s\n    pause: p\n"
    );
    let b = format!("{HEAD}name: b\nsteps:\n  - exec: {{command: \"ls -l\"}}\n");
    let c = format!("{HEAD}name: c\nsteps:\n  - request: {{url: \"http://${{nope}}/\"}}\n");
    let dir = Workspace::with(
        "lang",
        &[
            ("suite.yaml", SUITE),
            ("a.test.yaml", &a),
            ("b.test.yaml", &b),
            ("c.test.yaml", &c),
        ],
    );
    let out = validate_fails(&dir);
    let blocks = error_blocks(&out.stderr);
    let heads: Vec<String> = blocks
        .iter()
        .map(|b| {
            let first = b.lines().next().unwrap();
            let end = first.find(".test.yaml:").unwrap();
            let start = first[..end].rfind('/').unwrap() + 1;
            first[start..].split(": ").next().unwrap().to_owned()
        })
        .collect();
    let want = |f: &str, t: &str, n: &str| {
        let (l, c) = position(t, n);
        format!("{f}:{l}:{c}")
    };
    assert_eq!(
        heads,
        vec![
            want("a.test.yaml", &a, "tiemout"),
            want("a.test.yaml", &a, "5\n"),
            want("a.test.yaml", &a, "name: two"),
            want("b.test.yaml", &b, "\"ls -l\""),
            want("c.test.yaml", &c, "${nope}"),
        ],
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.trim_end().ends_with("5 errors found"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------
// the positive side

const EVERY_KIND: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: every-kind
description: one step of each kind
labels: [slow]
timeout: 2m
retries: 1
steps:
  - name: create
    apply: manifest.yaml
  - apply:
      - manifest.yaml
      - manifest:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: "cm-${unique}"}
          data: {port: "8080"}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: "cm-${unique}"}
      conditions: [{type: Ready, status: "True", reason: Done}]
      fields: {data: {port: "8080"}}
      capture: {uid: $.metadata.uid}
      fresh: false
    timeout: 30s
    interval: 200ms
    max-interval: 1s
  - assert:
      resource: {apiVersion: v1, kind: Pod, selector: "app=web,tier in (a,b)"}
      count: 2
  - assert:
      resource: {apiVersion: v1, kind: Pod, selector: {app: web}}
      absent: true
  - request:
      method: POST
      url: "http://127.0.0.1:1/x?uid=${uid}"
      headers: {Host: example.com, X-Count: 5}
      body: {name: "${test}", n: 1}
      attempt-timeout: 3s
      follow-redirects: true
      expect:
        status: [200, 201]
        headers: {content-type: application/json, x-id: {matches: "^[a-f0-9]+$"}}
        absent-headers: [x-debug]
        body: {contains: ok}
        json: {"$.path": /x, "$.items[0].n": 1}
      capture: {pod: $.pod}
    consecutive: 3
    hold: 5s
  - spans:
      trace: any
      service: demo-gateway
      expect:
        - {name: "GET /x", kind: server, attributes: {http.response.status_code: 200}, count: 1}
        - {name-matches: "^route ", parent: "GET /x"}
      absent: [error-vhost]
    timeout: 30s
  - patch:
      resource: {apiVersion: v1, kind: ConfigMap, name: "cm-${unique}"}
      merge: {metadata: {labels: {tier: gold}}}
      subresource: status
  - delete:
      resource: {apiVersion: v1, kind: ConfigMap, name: "cm-${unique}", namespace: "${namespace}"}
  - exec:
      command: [kubectl, get, "pod/${pod}", --output=name]
      env: {KUBECONFIG: "${kubeconfig}"}
      expect: {exit: 0, stdout: {matches: "^pod/"}, stderr: {equals: ""}}
  - sleep: 500ms
  - pause: look at the cluster
  - pause:
"#;

#[test]
fn every_step_kind_parses() {
    let s = "apiVersion: gwtest/v1alpha1\nkind: Suite\nname: kinds\nlabels: [demo]\nvars:\n  host: example.com\n  gw:\n    from:\n      resource: {apiVersion: v1, kind: Service, name: gw, namespace: infra}\n      path: $.spec.clusterIP\n      timeout: 10s\nfixtures: [manifest.yaml]\ndefaults:\n  timeout: 10s\n  interval: 50ms\n  max-interval: 1s\n  attempt-timeout: 2s\n  consecutive: 2\n  test-timeout: 1m\n  cleanup-timeout: 30s\nnamespace: per-suite\n";
    let dir = Workspace::with(
        "lang",
        &[
            ("suite.yaml", s),
            ("kinds.test.yaml", EVERY_KIND),
            (
                "manifest.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n",
            ),
        ],
    );
    let out = expect_valid(&dir, &[]);
    assert_eq!(
        out.trim(),
        "ok: 1 suite, 1 test, 13 steps; 0 objects checked against CRDs, 1 manifest skipped (run-time variables)",
        "{out}"
    );
}

#[test]
fn multi_document_files_and_list() {
    let t = format!(
        "{HEAD}name: first\nsteps:\n  - sleep: 1s\n---\n# a comment between documents\n{HEAD}name: second\nlabels: [slow]\nsteps:\n  - sleep: 1s\n---\n"
    );
    let dir = Workspace::with(
        "lang",
        &[
            (
                "suites/demo/suite.yaml",
                "apiVersion: gwtest/v1alpha1\nkind: Suite\nname: demo\n",
            ),
            ("suites/demo/t.test.yaml", &t),
        ],
    );
    let out = dir.gwtest(&["list"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "demo/first\ndemo/second\n");
    let out = dir.gwtest(&["list", "--label", "slow"]).run();
    assert_eq!(out.stdout, "demo/second\n", "{}", out.stderr);
    let out = dir.gwtest(&["list", "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["tests"][1]["name"], "second");
    assert_eq!(v[0]["tests"][1]["line"], 8);
}

#[test]
fn suite_discovery() {
    let t = |n: &str| format!("{HEAD}name: {n}\nsteps:\n  - sleep: 1s\n");
    let dir = Workspace::with(
        "lang",
        &[
            ("suites/outer/suite.yaml", SUITE),
            ("suites/outer/a.test.yaml", &t("a")),
            ("suites/outer/b.test.yaml", &t("b")),
            ("suites/outer/notes.yaml", "not: a test\n"),
            ("suites/outer/inner/suite.yaml", SUITE),
            ("suites/outer/inner/c.test.yaml", &t("c")),
            ("suites/outer/data/d.test.yaml", &t("ignored")),
        ],
    );
    // Default ./suites: nested suites are separate, named after their directories.
    let out = dir.gwtest(&["list"]).run();
    assert_eq!(out.stdout, "outer/a\nouter/b\ninner/c\n", "{}", out.stderr);
    // One test file: only its tests, within its directory's suite.
    let out = dir.gwtest(&["list", "suites/outer/b.test.yaml"]).run();
    assert_eq!(out.stdout, "outer/b\n", "{}", out.stderr);
    let out = dir.gwtest(&["validate", "suites/outer/inner"]).run();
    assert_eq!(
        out.stdout.trim(),
        "ok: 1 suite, 1 test, 1 step; 0 objects checked against CRDs, 0 manifests skipped (run-time variables)",
        "{}",
        out.stderr
    );
    // Nothing there.
    let empty = Workspace::new("lang");
    empty
        .gwtest(&["validate"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("suites: no such file or directory");
}

#[test]
fn schema_command_emits_the_one_action_rule() {
    let dir = Workspace::new("lang");
    let out = dir.gwtest(&["schema"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(v["properties"]["kind"]["const"], "Test");
    let one_of = v["$defs"]["Step"]["oneOf"].as_array().unwrap();
    let keys: Vec<&str> = one_of
        .iter()
        .map(|o| o["required"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "apply", "assert", "request", "spans", "patch", "delete", "exec", "sleep", "pause"
        ]
    );
    let out = dir.gwtest(&["schema", "--suite", "--draft07"]).run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(v["properties"]["kind"]["const"], "Suite");
}

#[test]
fn many_files_keep_file_order() {
    // Enough files for the loader to read them in parallel: order must not change.
    let mut files: Vec<(String, String)> = vec![("suite.yaml".into(), SUITE.into())];
    for i in 0..40 {
        let extra = "\n".repeat(i % 5);
        let body = if i % 3 == 0 {
            format!("{HEAD}name: t{i}\n{extra}steps:\n  - sleep: 1s\n    bogus{i}: 1\n")
        } else {
            format!("{HEAD}name: t{i}\nsteps:\n  - sleep: 1s\n")
        };
        files.push((format!("f{i:02}.test.yaml"), body));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = Workspace::with("lang", &refs);
    let out = validate_fails(&dir);
    let got: Vec<String> = error_blocks(&out.stderr)
        .iter()
        .map(|b| {
            let first = b.lines().next().unwrap();
            let start = first.find("/f").unwrap() + 1;
            first[start..].split(": ").next().unwrap().to_owned()
        })
        .collect();
    let want: Vec<String> = (0..40)
        .filter(|i| i % 3 == 0)
        .map(|i| {
            let (name, text) = &files[i + 1];
            let (l, c) = position(text, &format!("bogus{i}"));
            format!("{name}:{l}:{c}")
        })
        .collect();
    assert_eq!(got, want, "{}", out.stderr);
    let out = dir.gwtest(&["list", dir.path_str()]).run();
    assert_eq!(out.code, Some(2));
    for i in 0..40 {
        files[i + 1].1 = files[i + 1].1.replace(&format!("    bogus{i}: 1\n"), "");
        dir.write(&files[i + 1].0, &files[i + 1].1);
    }
    let out = dir.gwtest(&["list", dir.path_str()]).run();
    let suite = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let want: String = (0..40).map(|i| format!("{suite}/t{i}\n")).collect();
    assert_eq!(out.stdout, want, "{}", out.stderr);
}

#[test]
fn action_keys_written_at_the_step_level() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: http://127.0.0.1/\n    expect: {{status: 200}}\n"
    );
    expect_test_error(
        &t,
        "expect",
        "unknown key `expect` in a step: it belongs inside the action (e.g. `request: {expect: ...}`)",
    );
}

#[test]
fn duplicate_suite_names_from_directories() {
    let dir = Workspace::with(
        "lang",
        &[("a/same/suite.yaml", SUITE), ("b/same/suite.yaml", SUITE)],
    );
    let out = validate_fails(&dir);
    assert_error(
        &out.stderr,
        "suite.yaml",
        SUITE,
        "apiVersion",
        "duplicate suite name `same`, from the directory name (also ",
    );
    out.assert_stderr_has("b/same/suite.yaml:1:1:");
}

#[test]
fn thousands_of_errors_are_capped_per_file_and_counted() {
    let refs: String = (0..3000).map(|i| format!("${{nope{i}}}")).collect();
    let t = format!("{HEAD}name: t\nsteps:\n  - request:\n      url: \"http://x/{refs}\"\n");
    let dir = one_test(&t);
    for (cmd, out) in both_fail(&dir, dir.path_str(), &[]) {
        let blocks = error_blocks(&out.stderr);
        // 50 shown, then one line that counts the rest.
        assert_eq!(blocks.len(), 51, "{}", &out.stderr[..2000]);
        // The 50th error points at its own reference; its snippet is a window of the line
        // (cut, marked with `…`) with the caret under that `$`.
        let (line, col) = position(&t, "${nope49}");
        let block = blocks
            .iter()
            .find(|b| {
                b.contains(&format!(
                    "t.test.yaml:{line}:{col}: unknown variable `${{nope49}}`"
                ))
            })
            .unwrap_or_else(|| panic!("no error for ${{nope49}}:\n{}", &out.stderr[..3000]));
        let lines: Vec<&str> = block.lines().collect();
        let shown = lines[lines.len() - 2];
        let caret = lines[lines.len() - 1];
        assert!(
            shown.starts_with(&format!("{line} | …")) && shown.ends_with('…'),
            "{shown}"
        );
        // Columns count characters (the `…` is one).
        let at = caret.chars().position(|c| c == '^').unwrap();
        let under: String = shown.chars().skip(at).take("${nope49}".len()).collect();
        assert_eq!(under, "${nope49}", "{block}");
        let more = blocks[50].lines().next().unwrap();
        assert!(
            more.ends_with(
                "t.test.yaml: … and 2950 more errors in this file (the first 50 are shown)"
            ),
            "{more}"
        );
        assert!(out.stderr.ends_with("3000 errors found\n"), "{cmd}");
        // Each snippet shows a window of the 25 KB line, not all of it.
        assert!(
            out.stderr.len() < 60_000,
            "{cmd}: {} bytes",
            out.stderr.len()
        );
    }
}

#[test]
fn a_huge_bad_value_is_quoted_once_and_cut() {
    let value = "x".repeat(2_000_000);
    let out = validate_step(&format!("sleep: {value}"));
    let blocks = error_blocks(&out.stderr);
    assert_eq!(blocks.len(), 1, "{}", out.stderr);
    let first = blocks[0].lines().next().unwrap();
    let want = format!(
        "t.test.yaml:5:12: invalid duration \"{}…\" (2000000 bytes) (expected number at 0); \
         use e.g. 500ms, 30s, 2m, 1h",
        "x".repeat(200)
    );
    assert!(first.ends_with(&want), "{first}");
    // The value is quoted once; the snippet shows a shorter window of its line.
    assert_eq!(
        out.stderr.matches(&"x".repeat(200)).count(),
        1,
        "{}",
        out.stderr
    );
    out.assert_stderr_has(&format!("5 |   - sleep: {}…\n", "x".repeat(120)));
    assert!(out.stderr.len() < 2_000, "{} bytes", out.stderr.len());
}

/// Found by tests/fuzz_loader.rs: a huge value where a file path goes was printed whole.
#[test]
fn a_huge_missing_file_path_is_cut() {
    let name = "v".repeat(150_000);
    let out = validate_step(&format!("apply: {name}.yaml"));
    let first = out.stderr.lines().next().unwrap();
    let cut = regex::Regex::new(r": file not found: [^ ]*v{100}… \((\d+) bytes\) \(paths are")
        .unwrap()
        .captures(first)
        .unwrap_or_else(|| panic!("{first}"));
    assert!(cut[1].parse::<usize>().unwrap() > 150_000, "{first}");
    assert!(out.stderr.len() < 2_000, "{} bytes", out.stderr.len());
}

/// Also from the fuzz test: a key name of 130 KB.
#[test]
fn a_huge_unknown_key_is_cut() {
    let key = "k".repeat(130_000);
    // A key without a value in a flow map: a key before `:` may not pass 1024 characters.
    let out = validate_step(&format!("{{sleep: 1s, {key}}}"));
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.contains(&format!(
            ": unknown key `{}… (130000 bytes)`",
            "k".repeat(200)
        )),
        "{}",
        &first[..first.len().min(1000)]
    );
    assert!(out.stderr.len() < 3_000, "{} bytes", out.stderr.len());
}

#[test]
fn invalid_utf8_names_line_and_column() {
    let dir = Workspace::with("lang", &[("suite.yaml", SUITE)]);
    let mut bytes = format!("{HEAD}name: t\nsteps:\n  - sleep: 1s\n    naïve: ").into_bytes();
    bytes.extend_from_slice(&[0xC3, 0x28, b'\n']);
    std::fs::write(dir.path().join("t.test.yaml"), &bytes).unwrap();
    // A manifest named by a step, not UTF-8 either.
    std::fs::write(dir.path().join("m.yaml"), b"a: 1\nb: \xFF\n").unwrap();
    std::fs::write(
        dir.path().join("u.test.yaml"),
        format!("{HEAD}name: u\nsteps:\n  - apply: m.yaml\n"),
    )
    .unwrap();
    let out = validate_fails(&dir);
    assert!(
        out.stderr.contains(
            "t.test.yaml:6:12: invalid UTF-8 (bytes 0xC3 0x28 0x0A): suite files must be UTF-8 text"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "m.yaml:2:4: invalid UTF-8 (bytes 0xFF 0x0A): suite files must be UTF-8 text"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn cel_expressions_are_compiled_and_their_variables_checked_before_anything_runs() {
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - assert:\n      resource: {{apiVersion: v1, kind: ConfigMap, name: c}}\n      cel:\n        - self.data.a ==\n"
    );
    expect_test_error(
        &t,
        "self.data.a ==",
        "invalid CEL expression \"self.data.a ==\": ",
    );
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - assert:\n      resource: {{apiVersion: v1, kind: ConfigMap, name: c}}\n      cel: [\"self.data.a == oldSelf.data.a\"]\n"
    );
    expect_test_error(
        &t,
        "\"self.data.a == oldSelf",
        "`oldSelf` is for transition rules of a CRD; an assert has no previous object in CEL \
         expression \"self.data.a == oldSelf.data.a\": an assert's expressions see the object as `self`",
    );
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - request:\n      url: http://127.0.0.1:1/\n      expect:\n        cel: [\"self.status == 200\"]\n"
    );
    expect_test_error(
        &t,
        "\"self.status",
        "unknown variable `self` in CEL expression \"self.status == 200\": a request's expressions \
         see `response` (status, headers, body, json)",
    );
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - spans:\n      expect:\n        - name: GET /\n          cel: [\"response.status == 200\"]\n"
    );
    expect_test_error(
        &t,
        "\"response.status",
        "unknown variable `response` in CEL expression \"response.status == 200\": a span \
         expectation's expressions see `span`",
    );
    // Comprehension variables are the expression's own; `${...}` is checked after substitution.
    let t = format!(
        "{HEAD}name: t\nsteps:\n  - assert:\n      resource: {{apiVersion: v1, kind: ConfigMap, name: c}}\n      cel:\n        - self.data.all(k, k.startsWith('a'))\n        - \"self.metadata.name == '${{test}}'\"\n"
    );
    let dir = one_test(&t);
    expect_valid(&dir, &[]);
}
