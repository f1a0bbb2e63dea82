//! Flake hunting through the real binary: `--repeat N` ends with a table per test (pass rate;
//! per step attempts and time to pass, p50/p95/max) and timeout advice for a step that runs
//! close to its timeout; the same in the JSON report, and as Markdown appended to
//! `$GITHUB_STEP_SUMMARY`.

mod support;

use support::{one_file, test_doc};

#[test]
fn repeats_end_with_pass_rates_step_statistics_and_timeout_advice() {
    let ws = one_file(
        "repeat",
        "name: s",
        &[
            // Passes on every other run (a counter file; each repeat counts once, and `-j 1`
            // keeps the repeats from counting at the same time).
            test_doc(
                "halves",
                "",
                "  - name: every other run\n    timeout: 300ms\n    exec:\n      \
                 command: [sh, -c, \"echo x >> halves.count; test $(( $(wc -l < halves.count) % 2 )) -eq 0\"]\n",
            ),
            // Takes 350ms of its 400ms timeout (or, on a slow machine, runs out).
            test_doc(
                "tight",
                "",
                "  - name: quick\n    exec:\n      command: [\"true\"]\n  \
                 - name: nearly too slow\n    timeout: 400ms\n    exec:\n      command: [sleep, \"0.35\"]\n",
            ),
        ],
    );
    ws.write("summary.md", "earlier content\n");
    let out = ws
        .gwtest(&["run", "s", "-j", "1", "--repeat", "4", "--json", "r.json"])
        .env(
            "GITHUB_STEP_SUMMARY",
            ws.path().join("summary.md").to_str().unwrap(),
        )
        .run();
    out.assert_exit(1);
    out.assert_stdout_has(
        "repeats: 2 tests, up to 4 runs each (per step: attempts and time to pass, p50/p95/max)",
    );
    out.assert_stdout_has("  s/halves: passed 2/4 (50%)");
    out.stdout_line(r"^     1\. every other run  passed 2/4  attempts \d+/\d+/\d+  time \d\.\ds/\d\.\ds/\d\.\ds, timeout 300ms$");
    out.stdout_line(
        r"^     1\. quick +passed 4/4  attempts 1/1/1  time 0\.\ds/0\.\ds/0\.\ds, timeout 30s$",
    );
    let advice = out.stdout_line(
        r#"^    advice: step 2 "nearly too slow" (took up to 0\.\ds in 4 runs, p95 0\.\ds; its timeout 400ms leaves \d+%|ran out of its 400ms timeout in \d of 4 runs.*): raise it or fix the slowness$"#,
    );
    drop(advice);
    assert!(!out.stdout.contains("advice: step 1"), "{}", out.dump());

    let v = ws.json("r.json");
    let repeats = v["repeats"].as_array().unwrap();
    let t = |n: &str| repeats.iter().find(|r| r["test"] == n).unwrap();
    assert_eq!(t("halves")["pass_rate"], 0.5);
    assert_eq!(t("halves")["runs"], 4);
    let slow = &t("tight")["steps"][1];
    assert_eq!(slow["timeout_ms"], 400);
    assert!(
        slow["advice"]
            .as_str()
            .unwrap()
            .contains("raise it or fix the slowness")
    );
    assert!(t("tight")["steps"][0].get("advice").is_none());

    let md = std::fs::read_to_string(ws.path().join("summary.md")).unwrap();
    assert!(
        md.starts_with("earlier content\n## gwtest: failed\n"),
        "{md}"
    );
    assert!(md.contains("### Repeats"), "{md}");
    assert!(md.contains("**s/halves**: passed 2/4 (50%)"), "{md}");
    assert!(
        md.contains("> [!WARNING]\n> step 2 \"nearly too slow\""),
        "{md}"
    );
}
