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
use support_cluster::{
    Mode, TestCluster, UPSTREAM, cm_test, distinct, run_id, uid_of, upstream_test,
};

const CM: (&str, &str) = ("v1", "ConfigMap");

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

#[test]
fn each_test_gets_its_own_namespace_which_is_gone_after_the_run() {
    let cluster = TestCluster::start();
    let rec = cluster.record_namespaces();
    let ws = Workspace::new("per-test");
    ws.suite("s", "");
    for name in ["alpha", "beta", "gamma"] {
        ws.write(&format!("s/{name}.test.yaml"), &cm_test(name));
    }
    let (out, report) = cluster.run_with_report(&ws, &["run", "s"], 0);
    out.assert_counts(3, 0, 0, 0);
    let run = run_id(&out.stdout);
    let report = namespaces_in_report(&report);
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
    cluster.assert_nothing_left_now(&out.dump());
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
    let (out, report) = cluster.run_with_report(&ws, &["run", "shared"], 0);
    out.assert_counts(2, 0, 0, 0);
    let run = run_id(&out.stdout);
    let report = namespaces_in_report(&report);
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
    cluster.assert_nothing_left_now(&out.dump());
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
    let (out, report) = cluster.run_with_report(&ws, &["run", "."], 0);
    out.assert_counts(2, 0, 0, 0);
    let report = namespaces_in_report(&report);
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
    cluster.assert_nothing_left_now(&out.dump());
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
    cluster.assert_nothing_left_now(&out.dump());
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
    cluster.assert_nothing_left_now(&out.dump());
}

/// SCENARIOS S1: `example-svc` is created, deleted, and created again by the next test. The
/// controller skips the status write for a name it has seen before in the same namespace.
fn s1_suite(ws: &Workspace, namespace: &str) {
    ws.suite(
        "discovery",
        &format!("namespace: {namespace}\ndefaults: {{timeout: 2s}}"),
    );
    let test = |name: &str| {
        test_doc(
            name,
            "",
            r#"  - apply:
      manifest: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, metadata: {name: example-svc}, spec: {port: 8080}}
  - assert:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: example-svc}
      conditions: [{type: Accepted, status: "True"}]
  - delete:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: example-svc}
"#,
        )
    };
    ws.write(
        "discovery/t.test.yaml",
        &format!("{}---\n{}", test("first"), test("second")),
    );
}

#[test]
fn s1_a_reused_name_gets_no_status_in_a_fixed_namespace_and_is_named_by_uid() {
    let cluster = TestCluster::start();
    let ctl = cluster.controller(Mode::SkipSeenNames);
    let ws = Workspace::new("s1-fixed");
    s1_suite(&ws, "discovery-fixed");
    let out = cluster
        .gwtest(&ws, &["run", "discovery", "--keep", "on-failure"])
        .run();
    out.assert_exit(1);
    out.assert_counts(1, 0, 1, 0);
    assert_eq!(out.outcome("discovery/first").tag, "PASS");
    // The second object is kept (the test failed): its uid and creation time are in the message.
    let u = cluster
        .get(UPSTREAM, Some("discovery-fixed"), "example-svc")
        .expect("the failed test's object is kept");
    assert_eq!(
        ctl.skipped(),
        vec![format!("discovery-fixed/example-svc {}", uid_of(&u))]
    );
    let o = out.outcome("discovery/second");
    o.line(
        r#"^  step 2 "assert Upstream/example-svc" \(assert\) at discovery/t\.test\.yaml:\d+:5$"#,
    );
    o.line(&format!(
        r"^  \d+ attempts in 2\.\ds: \d+ had no status conditions; last: Upstream example-svc in discovery-fixed has no status for its generation 1 \(uid {}, created {}\): nothing has reported on this object(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[condition\]$",
        uid_of(&u),
        u["metadata"]["creationTimestamp"].as_str().unwrap()
    ));
    // Clean up what was kept.
    let gc = cluster.gc(&ws, &[]);
    cluster.assert_nothing_left_now(&gc.dump());
}

#[test]
fn s1_per_test_namespaces_make_the_name_collision_impossible() {
    let cluster = TestCluster::start();
    let ctl = cluster.controller(Mode::SkipSeenNames);
    let ws = Workspace::new("s1-per-test");
    s1_suite(&ws, "per-test");
    let out = cluster.gwtest(&ws, &["run", "discovery"]).run();
    out.assert_exit(0);
    out.assert_counts(2, 0, 0, 0);
    assert!(ctl.skipped().is_empty(), "{:?}", ctl.skipped());
    cluster.assert_nothing_left_now(&out.dump());
}

/// A suite whose tests `pass` and `fail` (its assert can never hold) each apply a ConfigMap.
fn pass_and_fail(ws: &Workspace) {
    ws.suite("s", "defaults: {timeout: 500ms}");
    ws.write("s/pass.test.yaml", &cm_test("pass"));
    ws.write(
        "s/fail.test.yaml",
        &test_doc(
            "fail",
            "",
            r#"  - apply:
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: evidence}, data: {v: "1"}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: evidence}
      fields: {data: {v: "2"}}
"#,
        ),
    );
}

/// The `kept ...` block for `id` in namespace `ns`.
fn assert_kept(out: &support::RunOutput, id: &str, ns: &str, kubeconfig: &str) {
    let block = format!(
        "kept {id}: namespace {ns}; to look:\n    kubectl --kubeconfig {kubeconfig} get all,gateways,httproutes,configmaps -n {ns}\n    \
         kubectl --kubeconfig {kubeconfig} get events -n {ns} --sort-by=.lastTimestamp\n    \
         kubectl --kubeconfig {kubeconfig} delete namespace {ns}\n"
    );
    assert!(
        out.stdout.contains(&block),
        "no block\n{block}\n{}",
        out.dump()
    );
}

#[test]
fn keep_on_failure_keeps_the_failed_tests_namespace_and_says_how_to_look() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("keep-on-failure");
    pass_and_fail(&ws);
    let (out, report) = cluster.run_with_report(&ws, &["run", "s", "--keep", "on-failure"], 1);
    out.assert_counts(1, 0, 1, 0);
    let report = namespaces_in_report(&report);
    let ns_of = |t: &str| report.iter().find(|(n, _)| n == t).unwrap().1.clone();
    let (kept, gone) = (ns_of("fail"), ns_of("pass"));
    assert_kept(&out, "s/fail", &kept, &cluster.kubeconfig_str());
    assert!(!out.stdout.contains("kept s/pass"), "{}", out.dump());
    out.stdout_line(r"^kept resources stay until deleted \(commands above\) or `gwtest gc`$");
    let all = cluster.namespaces();
    assert!(all.contains(&kept) && !all.contains(&gone), "{all:?}");
    assert_eq!(
        cluster.get(CM, Some(&kept), "evidence").unwrap()["data"]["v"],
        "1"
    );
    // `gwtest gc` removes what was kept.
    let gc = cluster.gc(&ws, &[]);
    cluster.assert_nothing_left_now(&gc.dump());
}

#[test]
fn keep_always_keeps_every_tests_namespace() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("keep-always");
    pass_and_fail(&ws);
    let (out, report) = cluster.run_with_report(&ws, &["run", "s", "--keep", "always"], 1);
    let kc = cluster.kubeconfig_str();
    for (test, ns) in namespaces_in_report(&report) {
        assert_kept(&out, &format!("s/{test}"), &ns, &kc);
        assert!(cluster.namespaces().contains(&ns));
    }
    assert_eq!(cluster.run_namespaces(Some(&run_id(&out.stdout))).len(), 2);
}

/// A suite of two tests that apply objects (one cluster-scoped) and then wait for a
/// condition nobody writes, for a minute.
fn waiting_suite(ws: &Workspace) {
    ws.suite("s", "defaults: {timeout: 60s}");
    for name in ["w1", "w2"] {
        ws.write(
            &format!("s/{name}.test.yaml"),
            &test_doc(
                name,
                "",
                r#"  - apply:
      - manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}
      - manifest: {apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: "class-${test}"}, spec: {controllerName: example.com/x}}
      - manifest: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, metadata: {name: u}, spec: {port: 1}}
  - assert:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}
      conditions: [{type: Accepted, status: "True"}]
"#,
            ),
        );
    }
}

/// Wait until both tests of `waiting_suite` applied everything; returns the labelled objects.
fn wait_for_waiting_tests(cluster: &TestCluster, out: &support::Running) -> Vec<String> {
    let mut objects = Vec::new();
    // The kinds are listed one after the other: wait for a listing that has all of them.
    let ok = eventually(Duration::from_secs(20), || {
        objects = cluster.labelled_objects();
        ["Namespace ", "ConfigMap ", "GatewayClass ", "Upstream "]
            .iter()
            .all(|k| objects.iter().filter(|o| o.starts_with(k)).count() == 2)
    });
    assert!(
        ok,
        "the tests never got going: {objects:?}\n{}",
        out.stdout_so_far()
    );
    objects
}

#[test]
fn ctrl_c_mid_run_still_cleans_up_and_exits_130() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("ctrl-c");
    waiting_suite(&ws);
    let mut running = cluster.gwtest(&ws, &["run", "s"]).spawn();
    wait_for_waiting_tests(&cluster, &running);
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.assert_exit(130);
    // Cut short by Ctrl-C, not failed: both are reported as interrupted (skipped).
    support::assert_reports_written_after_interrupt(&out, 0, 2);
    // Cleanup waited for deletion: nothing is left when the process is gone.
    cluster.assert_nothing_left_now(&out.dump());
}

#[test]
fn ctrl_c_also_removes_the_suites_fixtures_and_shared_namespace() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("ctrl-c-suite");
    fixture(&ws, "fx.yaml", "fx-interrupted");
    ws.suite(
        "s",
        "namespace: per-suite\nfixtures: [../fx.yaml]\ndefaults: {timeout: 60s}",
    );
    ws.write(
        "s/t.test.yaml",
        &upstream_test(
            "waits",
            1,
            "      conditions: [{type: Accepted, status: \"True\"}]\n",
        ),
    );
    let mut running = cluster.gwtest(&ws, &["run", "s"]).spawn();
    let mut objects = Vec::new();
    // The fixture's namespace, its ConfigMap, the suite's namespace, the test's Upstream (the
    // kinds are listed one after the other: wait for a listing that has all of them).
    let ok = eventually(Duration::from_secs(20), || {
        objects = cluster.labelled_objects();
        objects.contains(&"Namespace fx-interrupted".to_owned())
            && objects.contains(&"ConfigMap fx-interrupted/shared".to_owned())
            && objects.iter().any(|o| o.starts_with("Namespace gwtest-s-"))
            && objects.iter().any(|o| o.starts_with("Upstream gwtest-s-"))
    });
    assert!(ok, "{objects:?}\n{}", running.stdout_so_far());
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.assert_exit(130);
    cluster.assert_nothing_left_now(&out.dump());
}

#[test]
fn gc_removes_what_a_killed_run_left_and_dry_run_only_lists_it() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("gc");
    waiting_suite(&ws);
    let mut running = cluster.gwtest(&ws, &["run", "s"]).spawn();
    let mut left = wait_for_waiting_tests(&cluster, &running);
    let run = run_id(&running.stdout_so_far());
    running.signal(libc::SIGKILL);
    let out = running.wait();
    assert_eq!(out.signal, Some(libc::SIGKILL));
    // Killed: no cleanup ran.
    left.sort();
    let mut now = cluster.labelled_objects();
    now.sort();
    assert_eq!(left, now);
    let namespaces = cluster.run_namespaces(Some(&run));
    assert_eq!(namespaces.len(), 2, "{now:?}");

    let dry = cluster.gc(&ws, &["--dry-run"]);
    for ns in &namespaces {
        dry.stdout_line(&format!(r"^would delete Namespace {ns} \(run {run}\)$"));
    }
    for class in ["class-w1", "class-w2"] {
        dry.stdout_line(&format!(
            r"^would delete GatewayClass {class} \(run {run}\)$"
        ));
    }
    dry.stdout_line(r"^4 objects would be deleted$");
    let mut after_dry = cluster.labelled_objects();
    after_dry.sort();
    assert_eq!(after_dry, now, "--dry-run deleted something");

    let gc = cluster.gc(&ws, &[]);
    for ns in &namespaces {
        gc.stdout_line(&format!(r"^deleted Namespace {ns} \(run {run}\)$"));
    }
    gc.stdout_line(r"^4 objects deleted$");
    // gc waits for the namespaces to be gone.
    cluster.assert_nothing_left_now(&gc.dump());
    let again = cluster.gc(&ws, &[]);
    again.stdout_line(r"^0 objects deleted$");
}

#[test]
fn gc_run_removes_only_that_runs_objects() {
    let cluster = TestCluster::start();
    let labelled = |run: &str| json!({"gwtest.dev/run": run});
    for run in ["20260101-000000-aaaaaa", "20260101-000000-bbbbbb"] {
        let ns = format!("left-{}", &run[16..]);
        cluster.apply(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": labelled(run)}}));
        cluster.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("in-default-{}", &run[16..]), "namespace": "default", "labels": labelled(run)}}));
    }
    // Unlabelled objects are never touched.
    cluster.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "not-ours", "namespace": "default"}}));
    let ws = Workspace::new("gc-run");
    let gc = cluster.gc(&ws, &["--run", "20260101-000000-aaaaaa"]);
    gc.stdout_line(r"^deleted Namespace left-aaaaaa \(run 20260101-000000-aaaaaa\)$");
    gc.stdout_line(
        r"^deleted ConfigMap in-default-aaaaaa -n default \(run 20260101-000000-aaaaaa\)$",
    );
    gc.stdout_line(r"^2 objects deleted$");
    let mut left = cluster.labelled_objects();
    left.sort();
    assert_eq!(
        left,
        vec![
            "ConfigMap default/in-default-bbbbbb".to_owned(),
            "Namespace left-bbbbbb".to_owned()
        ]
    );
    assert!(cluster.get(CM, Some("default"), "not-ours").is_some());
}

/// A namespace that does not go within cleanup-timeout (a finalizer nobody removes) does not
/// fail the test that used it — its steps passed and its slot was long free — but the run
/// says what is left and what holds it, and exits 3 since nothing failed.
#[test]
fn cleanup_timeout_bounds_a_namespace_stuck_terminating_and_says_so() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("stuck");
    ws.suite("s", "defaults: {cleanup-timeout: 1s}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "stuck",
            "",
            "  - apply:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: held, finalizers: [gwtest.test/never]}}\n",
        ),
    );
    let (out, report) = cluster.run_with_report(&ws, &["run", "s"], 3);
    out.assert_counts(1, 0, 0, 0);
    let ns = namespaces_in_report(&report)[0].1.clone();
    let held = format!(
        "namespace {ns} was still terminating when cleanup-timeout ran out; still there: ConfigMap held (finalizers: gwtest.test/never)"
    );
    out.stdout_line(&format!(
        r"^note: s/stuck: cleanup of namespace {ns} ended after \d+\.\ds: {}$",
        regex::escape(&held)
    ));
    out.stdout_line(r"^cleanup: 1 background deletion, slowest \d+\.\ds \(s/stuck\), 1 left something behind \(see the notes above\)$");
    let cleanup = &report["suites"][0]["tests"][0]["tries"][0]["cleanup"];
    assert_eq!(cleanup["namespace"], ns.as_str());
    assert_eq!(cleanup["background_error"], held.as_str());
    assert_eq!(
        cluster.get(("v1", "Namespace"), None, &ns).unwrap()["status"]["phase"],
        "Terminating"
    );
    // Release it: the namespace then goes.
    cluster.patch(
        CM,
        Some(&ns),
        "held",
        json!({"metadata": {"finalizers": null}}),
    );
    cluster.assert_nothing_left(Duration::from_secs(10), &out.dump());
}

#[test]
fn the_failure_bundle_holds_the_failure_and_the_namespace_dump() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("artifacts");
    pass_and_fail(&ws);
    let out = cluster
        .gwtest(&ws, &["run", "s", "--artifacts", "art"])
        .run();
    out.assert_exit(1);
    let dir = ws.path().join("art/s/fail/try-1");
    let mut files: Vec<String> = walk(&dir);
    files.sort();
    assert_eq!(
        files,
        [
            "01-last-object.txt",
            "cluster/ConfigMap.evidence.yaml",
            "diagnostics/events.txt",
            "failure.txt",
            "reproduce.sh"
        ],
        "{}",
        out.dump()
    );
    let failure = std::fs::read_to_string(dir.join("failure.txt")).unwrap();
    let lines: Vec<&str> = failure.lines().collect();
    assert_eq!(
        lines[0],
        r#"step 2 "assert ConfigMap/evidence" (assert) failed at s/fail.test.yaml:8:5"#
    );
    let ns = regex::Regex::new(r"(?m)^namespace: (gwtest-fail-[a-z0-9]{6})$")
        .unwrap()
        .captures(&failure)
        .unwrap_or_else(|| panic!("no namespace line in {failure}"))[1]
        .to_owned();
    assert!(
        failure.contains(&format!(
            "; last: ConfigMap evidence in {ns}: $.data.v: expected \"2\", got \"1\" [field]\n"
        )),
        "{failure}"
    );
    // The namespace as it was before cleanup, as YAML, without managedFields.
    let dumped = std::fs::read_to_string(dir.join("cluster/ConfigMap.evidence.yaml")).unwrap();
    let obj: Value = serde_saphyr::from_str(&dumped).expect("the dump is YAML");
    assert_eq!(obj["data"], json!({"v": "1"}));
    assert_eq!(obj["metadata"]["namespace"], ns.as_str());
    assert!(obj["metadata"].get("managedFields").is_none(), "{dumped}");
    // Then cleaned up as usual; a passing test has no bundle.
    assert!(!cluster.namespaces().contains(&ns));
    assert!(!ws.path().join("art/s/pass").exists());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            for f in walk(&p) {
                out.push(format!("{}/{f}", e.file_name().to_string_lossy()));
            }
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// A fixed namespace still terminating from an earlier run (a finalizer holds it) is waited
/// for and made anew, instead of every apply into it failing with 403.
#[test]
fn a_fixed_namespace_still_terminating_is_waited_for_and_recreated() {
    let cluster = TestCluster::start();
    cluster.apply(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fixed-busy"}}),
    );
    cluster.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "leftover", "namespace": "fixed-busy", "finalizers": ["gwtest.test/hold"]}}));
    cluster.delete(("v1", "Namespace"), None, "fixed-busy");
    assert_eq!(
        cluster
            .get(("v1", "Namespace"), None, "fixed-busy")
            .unwrap()["status"]["phase"],
        "Terminating"
    );
    let ws = Workspace::new("fixed-busy");
    ws.suite("s", "namespace: fixed-busy");
    ws.write("s/t.test.yaml", &cm_test("fresh"));
    let run = cluster.gwtest(&ws, &["run", "s"]).spawn();
    // The earlier run's object goes a little later; only then can the namespace be reused.
    std::thread::sleep(Duration::from_millis(700));
    cluster.patch(
        CM,
        Some("fixed-busy"),
        "leftover",
        json!({"metadata": {"finalizers": null}}),
    );
    let out = run.wait();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
    // gwtest made the namespace, so it removed it too.
    assert!(!cluster.namespaces().contains(&"fixed-busy".to_owned()));
}

/// Two suites in one fixed namespace take turns: neither deletes it under the other.
#[test]
fn suites_sharing_a_fixed_namespace_take_turns() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("fixed-shared");
    for s in ["one", "two"] {
        ws.suite(s, "namespace: fixed-shared");
        for t in ["a", "b"] {
            ws.write(&format!("{s}/{t}.test.yaml"), &cm_test(&format!("{s}-{t}")));
        }
    }
    let out = cluster.gwtest(&ws, &["run", ".", "-j", "4"]).run();
    out.assert_exit(0);
    out.assert_counts(4, 0, 0, 0);
    assert!(!cluster.namespaces().contains(&"fixed-shared".to_owned()));
    cluster.assert_nothing_left_now(&out.dump());
}
