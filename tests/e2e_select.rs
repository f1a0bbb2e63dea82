//! Which tests run, through the real binary: `--shard I/N` (a stable partition: adding a
//! test never moves another), `--label`, `-k/--filter`, `--repeat` (DESIGN §2).

mod support;

use std::collections::BTreeSet;

use support::{Behavior, TestServer, Workspace, alike_tests, one_test, test_doc};

/// Suites `alpha` (8 tests in 3 files, one a multi-document stream) and `beta` (6 tests).
fn workspace(name: &str) -> Workspace {
    let ws = Workspace::new(name);
    ws.suite("suites/alpha", "");
    ws.suite("suites/beta", "");
    let sleep = "  - sleep: 1ms\n";
    for i in 1..=3 {
        ws.write(
            &format!("suites/alpha/a{i}.test.yaml"),
            &test_doc(&format!("a{i}"), "labels: [fast]", sleep),
        );
    }
    let stream: Vec<String> = (4..=8)
        .map(|i| test_doc(&format!("a{i}"), "labels: [slow, http]", sleep))
        .collect();
    ws.write("suites/alpha/more.test.yaml", &stream.join("---\n"));
    for i in 1..=6 {
        ws.write(
            &format!("suites/beta/b{i}.test.yaml"),
            &test_doc(
                &format!("b{i}"),
                if i % 2 == 0 { "labels: [slow]" } else { "" },
                sleep,
            ),
        );
    }
    ws
}

fn list(ws: &Workspace, args: &[&str]) -> Vec<String> {
    let mut a = vec!["list", "suites"];
    a.extend_from_slice(args);
    let out = ws.gwtest(&a).run();
    out.assert_exit(0);
    out.stdout.lines().map(str::to_owned).collect()
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// The ids `alpha/aI` for each I in `alpha` and `beta/bJ` for each J in `beta`.
fn ids(
    alpha: impl IntoIterator<Item = u32>,
    beta: impl IntoIterator<Item = u32>,
) -> BTreeSet<String> {
    alpha
        .into_iter()
        .map(|i| format!("alpha/a{i}"))
        .chain(beta.into_iter().map(|i| format!("beta/b{i}")))
        .collect()
}

/// FNV-1a of `suite/test`, as DESIGN promises: a stable hash, so shards never move.
fn fnv_shard(id: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h % n + 1
}

#[test]
fn shards_partition_the_tests_and_adding_a_test_moves_no_other() {
    let ws = workspace("shards");
    let full = list(&ws, &[]);
    let expected = ids(1..=8, 1..=6);
    assert_eq!(set(&full), expected);
    assert_eq!(full.len(), expected.len(), "no duplicates: {full:?}");

    let mut before = Vec::new();
    for n in 2..=4u64 {
        let shards: Vec<Vec<String>> = (1..=n)
            .map(|i| list(&ws, &["--shard", &format!("{i}/{n}")]))
            .collect();
        let total: usize = shards.iter().map(Vec::len).sum();
        assert_eq!(
            total,
            full.len(),
            "shards of {n} overlap or miss: {shards:?}"
        );
        let union: BTreeSet<String> = shards.iter().flatten().cloned().collect();
        assert_eq!(union, expected, "shards of {n}: {shards:?}");
        for (i, shard) in shards.iter().enumerate() {
            for id in shard {
                assert_eq!(
                    fnv_shard(id, n),
                    i as u64 + 1,
                    "{id} in shard {}/{n}",
                    i + 1
                );
            }
        }
        before.push((n, shards));
    }

    // A new test in each suite; every earlier test keeps its shard.
    ws.write(
        "suites/alpha/new.test.yaml",
        &test_doc("a-new", "", "  - sleep: 1ms\n"),
    );
    ws.write(
        "suites/beta/b1.test.yaml",
        &[
            test_doc("b1", "", "  - sleep: 1ms\n"),
            test_doc("b-new", "", "  - sleep: 1ms\n"),
        ]
        .join("---\n"),
    );
    for (n, shards) in before {
        let mut seen_new = 0;
        for (i, old) in shards.iter().enumerate() {
            let now = list(&ws, &["--shard", &format!("{}/{n}", i + 1)]);
            let kept: Vec<String> = now
                .iter()
                .filter(|id| !id.ends_with("-new"))
                .cloned()
                .collect();
            assert_eq!(&kept, old, "shard {}/{n} changed after adding tests", i + 1);
            seen_new += now.len() - kept.len();
        }
        assert_eq!(
            seen_new, 2,
            "each new test lands in exactly one shard of {n}"
        );
    }
}

#[test]
fn run_with_a_shard_runs_exactly_the_listed_tests() {
    let ws = workspace("shard-run");
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let listed = list(&ws, &["--shard", &shard]);
        let out = ws.gwtest(&["run", "suites", "--shard", &shard]).run();
        out.assert_exit(0);
        let ran: Vec<String> = out.results().into_iter().map(|(_, id)| id).collect();
        assert_eq!(set(&ran), set(&listed), "{}", out.dump());
        assert_eq!(ran.len(), listed.len());
        out.assert_counts(listed.len(), 0, 0, 0);
    }
}

#[test]
fn invalid_shards_are_command_line_errors() {
    let ws = workspace("shard-bad");
    for bad in ["0/3", "4/3", "1/0", "x", "2-3"] {
        for cmd in ["list", "run"] {
            ws.gwtest(&[cmd, "suites", "--shard", bad])
                .run()
                .assert_exit(2)
                .assert_stderr_has(&format!(
                    "invalid --shard {bad:?}: expected I/N with 1 <= I <= N, e.g. 2/4"
                ));
        }
    }
}

#[test]
fn labels_and_filters_select_tests() {
    let ws = workspace("labels");
    let slow = list(&ws, &["--label", "slow"]);
    assert_eq!(set(&slow), ids(4..=8, [2, 4, 6]));

    // Repeated or comma-separated labels: any of them.
    let any = list(&ws, &["--label", "fast,http"]);
    assert_eq!(set(&any), ids(1..=8, []));
    assert_eq!(list(&ws, &["--label", "fast", "--label", "http"]), any);

    // `!L` excludes.
    let not_slow = list(&ws, &["--label", "!slow"]);
    assert_eq!(set(&not_slow), ids(1..=3, [1, 3, 5]));

    // -k matches `suite/test` as a regex; several are alternatives.
    assert_eq!(
        list(&ws, &["-k", "^beta/b[12]$"]),
        vec!["beta/b1", "beta/b2"]
    );
    let two = list(&ws, &["-k", "a1$", "-k", "b6"]);
    assert_eq!(set(&two), set(&["alpha/a1".into(), "beta/b6".into()]));
    // Filters and labels combine.
    assert_eq!(list(&ws, &["-k", "^beta/", "--label", "!slow"]).len(), 3);
    // The environment works like the flag.
    let out = ws
        .gwtest(&["list", "suites"])
        .env("GWTEST_FILTER", "alpha/a[23]")
        .run();
    out.assert_exit(0);
    assert_eq!(out.stdout, "alpha/a2\nalpha/a3\n");

    // A run that selects nothing is an error, not a green run.
    ws.gwtest(&["run", "suites", "-k", "nothing-like-this"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("error: no test matches the given --filter/--label");
    ws.gwtest(&["run", "suites", "-k", "("])
        .run()
        .assert_exit(2)
        .assert_stderr_has("invalid --filter regex \"(\"");

    // A run with a label runs just those.
    let out = ws.gwtest(&["run", "suites", "--label", "http"]).run();
    out.assert_exit(0);
    out.assert_counts(5, 0, 0, 0);
}

#[test]
fn repeat_runs_each_selected_test_n_times() {
    let srv = TestServer::start([("/ok", Behavior::Ok)]);
    let ws = one_test(
        "repeat",
        "",
        "",
        &format!(
            "  - request: {{url: {}}}\n    consecutive: 1\n",
            srv.url("/ok")
        ),
    );
    ws.write("s/u.test.yaml", &test_doc("u", "", "  - sleep: 1ms\n"));
    let out = ws
        .gwtest(&["list", "s", "--repeat", "3", "-k", "/t$"])
        .run();
    out.assert_exit(0);
    assert_eq!(out.stdout, "s/t\ns/t#2\ns/t#3\n");

    let out = ws.gwtest(&["run", "s", "--repeat", "3"]).run();
    out.assert_exit(0);
    out.assert_counts(6, 0, 0, 0);
    for id in ["s/t", "s/t#2", "s/t#3", "s/u", "s/u#2", "s/u#3"] {
        assert_eq!(out.outcome(id).tag, "PASS");
    }
    assert_eq!(srv.count("/ok"), 3);
    out.stdout_line(r"^gwtest: running 6 tests from 1 suite ");

    ws.gwtest(&["run", "s", "--repeat", "0"])
        .run()
        .assert_exit(2)
        .assert_stderr_has("--repeat must be at least 1");
}

#[test]
fn list_json_describes_suites_and_tests() {
    let ws = workspace("list-json");
    let out = ws
        .gwtest(&["list", "suites", "--json", "-k", "a[45]$"])
        .run();
    out.assert_exit(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["suite"], "alpha");
    let tests = v[0]["tests"].as_array().unwrap();
    let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["a4", "a5"]);
    assert_eq!(tests[0]["labels"], serde_json::json!(["slow", "http"]));
    assert_eq!(tests[0]["file"], "suites/alpha/more.test.yaml");
    // a5 is the second document of the stream: its line is past the first document.
    assert!(tests[1]["line"].as_u64().unwrap() > tests[0]["line"].as_u64().unwrap());
}

/// A shard may be empty after filtering (a small selection split many ways): that is not the
/// "nothing matches" mistake, and exits 0.
#[test]
fn an_empty_shard_of_a_filtered_run_is_fine() {
    let ws = alike_tests(
        "empty-shard",
        &["one", "two"],
        "labels: [smoke]",
        "  - exec:\n      command: [\"true\"]\n",
    );
    let mut ran = 0;
    let mut empty = 0;
    for i in 1..=8 {
        let shard = format!("{i}/8");
        let out = ws
            .gwtest(&["run", "s", "--label", "smoke", "--shard", &shard])
            .run();
        out.assert_exit(0);
        let n = out.results().len();
        ran += n;
        if n == 0 {
            empty += 1;
        }
    }
    assert_eq!(ran, 2, "the shards together run each test once");
    assert!(empty >= 6, "{empty} empty shards");
}

/// Two files of one suite, or a file and its directory, are one suite: each test once, and
/// one suite setup (they share a suite.yaml).
#[test]
fn paths_into_one_suite_make_one_suite() {
    let ws = alike_tests(
        "one-suite",
        &["a", "b", "c"],
        "",
        "  - exec:\n      command: [\"true\"]\n",
    );
    let list = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["list", "--json"];
        a.extend_from_slice(args);
        let out = ws.gwtest(&a).run();
        out.assert_exit(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let suite = s["suite"].as_str().unwrap().to_owned();
                s["tests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |t| format!("{suite}:{}", t["name"].as_str().unwrap()))
            })
            .collect()
    };
    assert_eq!(list(&["s/a.test.yaml", "s/c.test.yaml"]), ["s:a", "s:c"]);
    assert_eq!(
        list(&["s/b.test.yaml", "s", "s/a.test.yaml"]),
        ["s:a", "s:b", "s:c"]
    );
    let out = ws.gwtest(&["run", "s/a.test.yaml", "s/b.test.yaml"]).run();
    out.assert_exit(0);
    out.assert_counts(2, 0, 0, 0);
}
