//! `gwtest merge` through the real binary: a run split into shards (`--shard I/3`, each with
//! `--json`) and merged gives the counts, the tests and their statuses, the flaky entries and
//! the failures of the same run unsharded, in the same order; the merged JUnit is valid
//! against junit-10.xsd. Bad input is exit 2 with the file named.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::{Workspace, assert_valid_junit, test_doc};

const IMPLEMENTATION: &str =
    "organization=o,project=p,url=https://example.com,version=v1,contact=c";

fn pass(name: &str) -> String {
    test_doc(
        name,
        "",
        "  - name: ok\n    exec:\n      command: [\"true\"]\n",
    )
}

fn fail(name: &str) -> String {
    test_doc(
        name,
        "",
        &format!(
            "  - name: ok\n    exec:\n      command: [\"true\"]\n  - name: breaks\n    \
             timeout: 200ms\n    exec:\n      command: [sh, -c, \"echo {name} is broken; exit 3\"]\n"
        ),
    )
}

/// Fails on its first try and passes on the re-run, in every repeat: each try adds a line to
/// a counter file (one per test and run; `-j 1` keeps a test's repeats apart) and passes on
/// an even count.
fn flaky(name: &str) -> String {
    test_doc(
        name,
        "retries: 1",
        &format!(
            "  - name: count\n    exec:\n      command: [sh, -c, \"echo x >> ${{env.RUN_TAG}}-{name}\"]\n  \
             - name: second try\n    timeout: 200ms\n    exec:\n      \
             command: [sh, -c, \"test $(( $(wc -l < ${{env.RUN_TAG}}-{name}) % 2 )) -eq 0\"]\n"
        ),
    )
}

/// What must match between the merged and the unsharded report: per test, its status, its
/// tries' outcomes and the failure headlines of each try.
type Digest = Vec<(String, String, String, Vec<(bool, Vec<String>)>)>;

fn digest(v: &Value) -> Digest {
    let mut out = Vec::new();
    for s in v["suites"].as_array().unwrap() {
        for t in s["tests"].as_array().unwrap() {
            let tries = t["tries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|tr| {
                    let heads = tr["steps"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|st| st["failure"]["headline"].as_str())
                        // Attempt timings differ between runs; what failed does not.
                        .map(|h| h.split(" in ").last().unwrap_or(h).to_owned())
                        .collect();
                    (tr["passed"].as_bool().unwrap(), heads)
                })
                .collect();
            out.push((
                s["name"].as_str().unwrap().to_owned(),
                format!("{}#{}", t["name"].as_str().unwrap(), t["repeat"]),
                t["status"].as_str().unwrap().to_owned(),
                tries,
            ));
        }
    }
    out
}

#[test]
fn merged_shards_equal_the_unsharded_run() {
    let ws = Workspace::new("merge");
    ws.suite(
        "alpha",
        "name: alpha\nlabels: [\"profile:GATEWAY-HTTP\", \"feature:HTTPRoute\"]",
    );
    ws.write(
        "alpha/a.test.yaml",
        &[pass("a1"), fail("a2"), flaky("a3"), pass("a4")].join("---\n"),
    );
    ws.write(
        "alpha/b.test.yaml",
        &[pass("b1"), flaky("b2")].join("---\n"),
    );
    ws.suite("beta", "name: beta");
    ws.write(
        "beta/c.test.yaml",
        &[pass("c1"), pass("c2"), fail("c3"), pass("c4"), pass("c5")].join("---\n"),
    );

    // The same run each time; `tag` keeps the flaky tests' counter files of the runs apart.
    let run = |tag: &str, args: &[&str]| {
        ws.gwtest(&["run", ".", "-j", "1", "--repeat", "2"])
            .args(args)
            .env("RUN_TAG", tag)
            .run()
    };
    let whole = run(
        "whole",
        &[
            "--json",
            "whole.json",
            "--conformance-report",
            "whole-conformance.yaml",
            "--implementation",
            IMPLEMENTATION,
        ],
    );
    whole.assert_exit(1);
    let mut shard_files = Vec::new();
    for i in 1..=3 {
        let file = format!("shard-{i}.json");
        let out = run(
            &format!("shard{i}"),
            &["--shard", &format!("{i}/3"), "--json", &file],
        );
        assert!(matches!(out.code, Some(0 | 1)), "{}", out.dump());
        shard_files.push(file);
    }
    let mut args = vec![
        "merge",
        "--json",
        "merged.json",
        "--junit",
        "merged.xml",
        "--conformance-report",
        "merged-conformance.yaml",
        "--implementation",
        IMPLEMENTATION,
    ];
    args.extend(shard_files.iter().map(String::as_str));
    let out = ws.gwtest(&args).run();
    out.assert_exit(0);
    out.assert_stdout_has("merged 3 reports: 22 tests: 14 passed, 4 flaky, 4 failed, 0 skipped");

    // The conformance report from the merged shards is the unsharded run's (but its date).
    let conformance = |f: &str| -> Value {
        let mut v: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(ws.path().join(f)).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("date");
        v
    };
    let merged_report = conformance("merged-conformance.yaml");
    assert_eq!(merged_report, conformance("whole-conformance.yaml"));
    assert_eq!(merged_report["profiles"][0]["core"]["result"], "failure");
    assert_eq!(
        merged_report["profiles"][0]["core"]["failedTests"],
        serde_json::json!(["a2"])
    );

    let (whole, merged) = (ws.json("whole.json"), ws.json("merged.json"));
    assert_eq!(merged["counts"], whole["counts"]);
    assert_eq!(
        merged["counts"],
        serde_json::json!({"passed": 14, "flaky": 4, "failed": 4, "skipped": 0, "total": 22})
    );
    assert_eq!(digest(&merged), digest(&whole));
    // The flake statistics survive the merge too.
    let rates = |v: &Value| -> BTreeMap<String, Value> {
        v["repeats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    format!("{}/{}", t["suite"], t["test"]),
                    t["pass_rate"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(rates(&merged), rates(&whole));
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 3);

    // The merged JUnit: valid, and the same verdicts as the unsharded run's.
    assert_valid_junit(&ws.path().join("merged.xml"));
    let xml = std::fs::read_to_string(ws.path().join("merged.xml")).unwrap();
    let r = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!((r.tests, r.failures), (22, 4));
    assert_eq!(xml.matches("<flakyFailure ").count(), 4, "{xml}");
    assert!(
        xml.matches("<property name=\"run-id\"").count() >= 2,
        "{xml}"
    );
}

#[test]
fn bad_reports_are_command_line_errors() {
    let ws = Workspace::new("merge-bad");
    ws.write("bad.json", "{\"version\": 1, \"suites\": 3}");
    let out = ws
        .gwtest(&["merge", "bad.json", "--json", "out.json"])
        .run();
    out.assert_exit(2)
        .assert_stderr_has("bad.json: `suites` is not a list");
    ws.gwtest(&["merge", "missing.json"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("missing.json");
    let out = ws.gwtest(&["merge"]).run();
    out.assert_exit(2);
}
