//! Many tests at once against one API server: `-j 8` on 50 tests, each in its own namespace,
//! with a controller writing status the tests wait for. All pass, never more than 8 namespaces
//! are in use at once (more may be Terminating: they go in the background), and nothing is
//! left behind.

mod support;
mod support_cluster;

use std::time::Duration;

use support::{Workspace, test_doc};
use support_cluster::{Mode, TestCluster, distinct, run_id};

#[test]
fn fifty_tests_eight_at_a_time_each_in_its_own_namespace_leave_nothing_behind() {
    let cluster = TestCluster::start();
    let ctl = cluster.controller(Mode::Fresh {
        delay: Duration::from_millis(50),
    });
    let rec = cluster.record_namespaces();
    let ws = Workspace::new("many");
    ws.suite("many", "defaults: {timeout: 20s}");
    let steps = r#"  - apply:
      - manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: cfg}, data: {test: "${test}"}}
      - manifest: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, metadata: {name: u}, spec: {port: 80}}
  - assert:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}
      conditions: [{type: Accepted, status: "True"}]
  - patch:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}
      merge: {spec: {port: 81}}
  - assert:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}
      conditions: [{type: Accepted, status: "True"}]
      fields: {spec: {port: 81}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: cfg}
      fields: {data: {test: "${test}"}}
  - delete:
      resource: {apiVersion: v1, kind: ConfigMap, name: cfg}
"#;
    let docs: Vec<String> = (0..50)
        .map(|i| test_doc(&format!("t{i:02}"), "", steps))
        .collect();
    ws.write("many/all.test.yaml", &docs.join("---\n"));
    let out = cluster.gwtest(&ws, &["run", "many", "-j", "8"]).run();
    out.assert_exit(0);
    out.assert_counts(50, 0, 0, 0);
    let run = run_id(&out.stdout);
    let seen = rec.of_run(&run);
    assert_eq!(seen.len(), 50, "{seen:?}");
    assert_eq!(distinct(&seen), 50);
    let peak = rec.peak_active(&run);
    assert!(
        (2..=8).contains(&peak),
        "{peak} namespaces were in use at once with -j 8"
    );
    // Two status writes per test (generation 1, then 2).
    assert!(ctl.writes() >= 100, "{} status writes", ctl.writes());
    cluster.assert_nothing_left_now(&out.dump());
    let all = cluster.namespaces();
    assert!(seen.iter().all(|n| !all.contains(n)));
}
