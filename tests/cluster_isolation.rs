//! Isolation and cleanup through the real binary (DESIGN §1.4, §1.6; SCENARIOS S1): per-test
//! namespaces, `per-suite` and fixed namespaces, suite fixtures (applied once, removed after
//! the suite, shared between suites), `--keep`, Ctrl-C, `gwtest gc` after a killed run,
//! `cleanup-timeout`, and the failure bundle's cluster dump. After every run the cluster is
//! searched for anything still labelled with a run id.

mod support;
mod support_cluster;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Workspace, eventually, test_doc};
use support_cluster::{Mode, TestCluster, UPSTREAM, distinct, name_of, run_id, uid_of};

const CM: (&str, &str) = ("v1", "ConfigMap");

fn json_report(ws: &Workspace, name: &str) -> Value {
    let text = std::fs::read_to_string(ws.path().join(name)).expect("json report");
    serde_json::from_str(&text).expect("json report parses")
}

/// (test name, namespace of its first try) from the JSON report, in report order.
fn namespaces_in_report(report: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in report["suites"].as_array().unwrap() {
        for t in s["tests"].as_array().unwrap() {
            let ns = t["tries"][0]["namespace"].as_str().unwrap_or("").to_owned();
            out.push((t["name"].as_str().unwrap().to_owned(), ns));
        }
    }
    out
}

/// A test that applies ConfigMap `NAME` (data from `${test}` and `${namespace}`) and asserts it.
fn cm_test(name: &str) -> String {
    test_doc(
        name,
        "",
        &format!(
            r#"  - apply:
      manifest: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: {name}}}, data: {{test: "${{test}}", ns: "${{namespace}}"}}}}
  - assert:
      resource: {{apiVersion: v1, kind: ConfigMap, name: {name}}}
      fields: {{data: {{test: {name}}}}}
"#
        ),
    )
}

#[test]
fn each_test_gets_its_own_namespace_which_is_gone_after_the_run() {
    let cluster = TestCluster::start();
    let rec = cluster.record_namespaces();
    let ws = Workspace::new("per-test");
    ws.suite("s", "");
    for name in ["alpha", "beta", "gamma"] {
        ws.write(&format!("s/{name}.test.yaml"), &cm_test(name));
    }
    let out = cluster.gwtest(&ws, &["run", "s", "--json", "r.json"]).run();
    out.assert_exit(0);
    out.assert_counts(3, 0, 0, 0);
    let run = run_id(&out.stdout);
    let report = namespaces_in_report(&json_report(&ws, "r.json"));
    let seen = rec.of_run(&run);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(distinct(&seen), 3);
    for (test, ns) in &report {
        let re = regex::Regex::new(&format!("^gwtest-{test}-[a-z0-9]{{6}}$")).unwrap();
        assert!(re.is_match(ns), "{test}: {ns}");
        assert!(seen.contains(ns), "{ns} not among {seen:?}");
    }
    // Deleted and waited for: gone when the run ends.
    let all = cluster.namespaces();
    assert!(seen.iter().all(|n| !all.contains(n)), "{all:?}");
    assert!(cluster.run_namespaces(None).is_empty());
    assert!(cluster.labelled_objects().is_empty());
}

#[test]
fn per_suite_tests_share_one_namespace_and_each_tests_objects_are_removed_after_it() {
    let cluster = TestCluster::start();
    let rec = cluster.record_namespaces();
    let ws = Workspace::new("per-suite");
    ws.suite("shared", "namespace: per-suite");
    ws.write(
        "shared/t.test.yaml",
        &format!(
            "{}---\n{}",
            cm_test("first"),
            test_doc(
                "second",
                "",
                r#"  - name: the first test's object went with it
    assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: first}
      absent: true
    timeout: 5s
  - apply:
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: second}, data: {ns: "${namespace}"}}
"#,
            )
        ),
    );
    let out = cluster
        .gwtest(&ws, &["run", "shared", "--json", "r.json"])
        .run();
    out.assert_exit(0);
    out.assert_counts(2, 0, 0, 0);
    let run = run_id(&out.stdout);
    let report = namespaces_in_report(&json_report(&ws, "r.json"));
    assert_eq!(report.len(), 2);
    assert_eq!(report[0].1, report[1].1, "{report:?}");
    let ns = &report[0].1;
    assert!(
        regex::Regex::new("^gwtest-shared-[a-z0-9]{6}$")
            .unwrap()
            .is_match(ns),
        "{ns}"
    );
    assert_eq!(rec.of_run(&run), vec![ns.clone()]);
    assert!(!cluster.namespaces().contains(ns));
    assert!(cluster.labelled_objects().is_empty());
}

#[test]
fn a_fixed_namespace_is_created_when_missing_and_left_alone_when_it_existed() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("fixed");
    ws.suite("new", "namespace: fixed-new");
    ws.write("new/t.test.yaml", &cm_test("in-new"));
    ws.suite("old", "namespace: fixed-old");
    ws.write("old/t.test.yaml", &cm_test("in-old"));
    // fixed-old exists before the run, with an object of its own.
    cluster
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fixed-old"}}));
    cluster.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "precious", "namespace": "fixed-old"}}));
    let out = cluster.gwtest(&ws, &["run", ".", "--json", "r.json"]).run();
    out.assert_exit(0);
    out.assert_counts(2, 0, 0, 0);
    let report = namespaces_in_report(&json_report(&ws, "r.json"));
    assert!(
        report.contains(&("in-new".into(), "fixed-new".into())),
        "{report:?}"
    );
    assert!(
        report.contains(&("in-old".into(), "fixed-old".into())),
        "{report:?}"
    );
    // gwtest created fixed-new, so it deleted it; fixed-old was there before and stays,
    // with what was in it, without the test's object.
    let all = cluster.namespaces();
    assert!(!all.contains(&"fixed-new".to_owned()), "{all:?}");
    assert!(all.contains(&"fixed-old".to_owned()), "{all:?}");
    assert!(cluster.get(CM, Some("fixed-old"), "precious").is_some());
    assert!(cluster.get(CM, Some("fixed-old"), "in-old").is_none());
    assert!(cluster.labelled_objects().is_empty());
}

/// A fixture file: namespace `NS` and ConfigMap `shared` in it.
fn fixture(ws: &Workspace, file: &str, ns: &str) {
    ws.write(
        file,
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: shared, namespace: {ns}}}\ndata: {{by: fixture}}\n"
        ),
    );
}

/// A test that records the fixture's uid in `uid-<test>-<run>` next to the suite.
fn uses_fixture(name: &str, ns: &str, extra: &str) -> String {
    test_doc(
        name,
        "",
        &format!(
            r#"{extra}  - assert:
      resource: {{apiVersion: v1, kind: ConfigMap, name: shared, namespace: {ns}}}
      fields: {{data: {{by: fixture}}}}
      capture: {{uid: $.metadata.uid}}
  - exec:
      command: [sh, -c, 'printf %s "$UID_" > "uid-$TEST-$RUN"']
      env: {{UID_: "${{uid}}", TEST: "${{test}}", RUN: "${{run}}"}}
"#
        ),
    )
}

#[test]
fn fixtures_are_applied_once_before_the_suite_and_removed_after_it() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("fixtures");
    fixture(&ws, "fx.yaml", "fx-infra");
    ws.suite("s", "fixtures: [../fx.yaml]");
    for name in ["one", "two", "three"] {
        ws.write(
            &format!("s/{name}.test.yaml"),
            &uses_fixture(name, "fx-infra", ""),
        );
    }
    let out = cluster.gwtest(&ws, &["run", "s", "-j", "3"]).run();
    out.assert_exit(0);
    out.assert_counts(3, 0, 0, 0);
    let run = run_id(&out.stdout);
    let uids: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|t| std::fs::read_to_string(ws.path().join(format!("s/uid-{t}-{run}"))).unwrap())
        .collect();
    assert_eq!(distinct(&uids), 1, "one fixture object for all: {uids:?}");
    assert!(!cluster.namespaces().contains(&"fx-infra".to_owned()));
    assert!(cluster.labelled_objects().is_empty());
}

#[test]
fn a_fixture_two_suites_share_stays_until_the_last_of_them_is_done() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("shared-fixture");
    fixture(&ws, "fx.yaml", "fx-shared");
    ws.suite("quick", "fixtures: [../fx.yaml]\ndefaults: {timeout: 3s}");
    ws.write("quick/t.test.yaml", &uses_fixture("quick", "fx-shared", ""));
    ws.suite("slow", "fixtures: [../fx.yaml]\ndefaults: {timeout: 3s}");
    // `slow` looks at the fixture again well after `quick` has finished.
    ws.write(
        "slow/t.test.yaml",
        &uses_fixture(
            "slow",
            "fx-shared",
            r#"  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: shared, namespace: fx-shared}
  - sleep: 1500ms
"#,
        ),
    );
    let out = cluster.gwtest(&ws, &["run", ".", "-j", "4"]).run();
    out.assert_exit(0);
    out.assert_counts(2, 0, 0, 0);
    let run = run_id(&out.stdout);
    let quick = std::fs::read_to_string(ws.path().join(format!("quick/uid-quick-{run}"))).unwrap();
    let slow = std::fs::read_to_string(ws.path().join(format!("slow/uid-slow-{run}"))).unwrap();
    assert_eq!(quick, slow, "the same object, never deleted in between");
    assert!(!cluster.namespaces().contains(&"fx-shared".to_owned()));
    assert!(cluster.labelled_objects().is_empty(), "{}", out.dump());
}
