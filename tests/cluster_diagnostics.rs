//! Evidence on failure through the real binary and the sandbox: a suite's `diagnostics:`
//! collectors run for a failed try before cleanup and write into its failure bundle — the
//! demo gateway's own log for its Gateway (`pods/log`), the test namespace's events, objects
//! elsewhere, a program's output — one file per collector; a collector that runs out of time
//! is noted and the run goes on; the failure text, JSON and JUnit point at the bundle. The
//! test namespace's events are collected by default, into `$TMPDIR/gwtest-<run>/` without
//! `--artifacts`. A reproduce command naming a namespace cleanup deleted says so.

mod support;
mod support_cluster;

use std::path::Path;

use support::{RunOutput, one_file_in, test_doc};
use support_cluster::{backend_route, gateway_workspace, run_id};

/// The suite's lines after the demo gateway and `${gateway}`.
const SUITE: &str = r#"defaults: {timeout: 20s, interval: 50ms}
diagnostics:
  - logs: {namespace: gwtest-infra, selector: "gateway.networking.k8s.io/gateway-name=gw", since: test}
  - events: {}
  - get: {apiVersion: v1, kind: ConfigMap, namespace: gwtest-infra, selector: "evidence=${test}"}
  - exec: {command: [sleep, "30"]}
    timeout: 1s"#;

/// Evidence for the collectors: an event on the route, an object elsewhere.
const EVIDENCE: &str = r#"apiVersion: v1
kind: Event
metadata: {name: diag.route-flapped}
involvedObject: {apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: diag}
reason: RouteFlapped
message: the route served, then did not
type: Warning
lastTimestamp: "2025-01-01T00:00:00Z"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: evidence-cm, namespace: gwtest-infra, labels: {evidence: broken}}
data: {seen: "yes"}
"#;

const STEPS: &str = r#"  - apply: app.yaml
  - name: a request the gateway logs
    request:
      url: http://${gateway}/logged-by-the-gateway
      headers: {Host: diag.example}
      expect: {status: 200}
  - name: the failing step
    assert:
      resource: {apiVersion: v1, kind: Service, name: backend}
      fields: {spec: {ports: [{port: 9999}]}}
    timeout: 1s
"#;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The failure block of `id`, which must say `diagnostics: SUMMARY, see DIR`.
fn block_naming_bundle(out: &RunOutput, id: &str, summary: &str, dir: &Path) -> String {
    let block = out.outcome(id).block;
    assert!(
        block.contains(&format!("  diagnostics: {summary}, see {}", dir.display())),
        "{block}"
    );
    block
}

#[test]
fn collectors_write_the_gateway_log_events_objects_and_a_timeout_into_the_bundle() {
    let ws = gateway_workspace("diag-bundle", "diag", SUITE);
    ws.write(
        "diag/app.yaml",
        &format!("{}---\n{EVIDENCE}", backend_route("diag", "diag.example")),
    );
    ws.write("diag/t.test.yaml", &test_doc("broken", "", STEPS));
    let art = ws.path().join("art");
    let json = ws.path().join("report.json");
    let junit = ws.path().join("junit.xml");
    let out = ws
        .gwtest(&[
            "run",
            "diag",
            "--sandbox",
            "--artifacts",
            art.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ])
        .run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 1, 0);
    let dir = art.join("diag/broken/try-1/diagnostics");
    let block = block_naming_bundle(
        &out,
        "diag/broken",
        "3 collected, 1 failed (exec: timed out after 1s)",
        &dir,
    );
    // The reproduce command names the test's namespace, which cleanup deleted.
    let ns = out.stdout_line(r"^  namespace: (gwtest-broken-\w+)$")[1].to_owned();
    assert!(
        block.contains(&format!(
            "  hint: namespace {ns}, which the commands below name, was deleted by cleanup: rerun \
             with `--keep on-failure` to keep it for a look"
        )),
        "{block}"
    );

    let logs = read(&dir.join("logs.txt"));
    assert!(logs.contains("==> pod/gw-"), "{logs}");
    assert!(
        logs.contains(
            "INFO request GET diag.example/logged-by-the-gateway on listener http: 200, route "
        ),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("INFO writing HTTPRoute {ns}/diag status for parent gwtest-infra/gw: Accepted=True ResolvedRefs=True")),
        "{logs}"
    );
    let events = read(&dir.join("events.txt"));
    assert!(
        events.contains(
            "2025-01-01T00:00:00Z  Warning  RouteFlapped  httproute/diag  the route served, then did not"
        ),
        "{events}"
    );
    let get = read(&dir.join("get.yaml"));
    assert!(get.contains("name: evidence-cm"), "{get}");
    assert!(!get.contains("managedFields"), "{get}");
    let exec = read(&dir.join("exec.txt"));
    assert!(
        exec.starts_with("# collector failed: exec: timed out after 1s"),
        "{exec}"
    );

    let report: serde_json::Value = serde_json::from_str(&read(&json)).unwrap();
    let failure = &report["suites"][0]["tests"][0]["tries"][0]["steps"][2]["failure"];
    assert_eq!(
        failure["diagnostics"],
        serde_json::json!({
            "dir": dir.display().to_string(),
            "collected": 3,
            "files": ["logs.txt", "events.txt", "get.yaml", "exec.txt"],
            "failed": ["exec: timed out after 1s"],
        })
    );
    let xml = read(&junit);
    for f in ["logs.txt", "events.txt", "get.yaml", "exec.txt"] {
        let line = format!("[[ATTACHMENT|{}]]", dir.join(f).display());
        assert!(xml.contains(&line), "no {line} in:\n{xml}");
    }
    assert!(
        xml.contains("diagnostics: 3 collected, 1 failed"),
        "the failure text names the bundle:\n{xml}"
    );
}

#[test]
fn the_test_namespace_events_are_collected_by_default_into_a_temporary_bundle() {
    let ws = one_file_in(
        "diag-default",
        "plain",
        "defaults: {timeout: 1s}",
        &[test_doc(
            "evented",
            "",
            r#"  - apply:
      manifest:
        apiVersion: v1
        kind: Event
        metadata: {name: cm.1}
        involvedObject: {kind: ConfigMap, name: cm}
        reason: Evidence
        message: collected without asking
        type: Normal
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: cm}
"#,
        )],
    );
    let tmp = ws.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = ws
        .gwtest(&["run", "plain", "--sandbox", "--keep", "on-failure"])
        .env("TMPDIR", tmp.to_str().unwrap())
        .run();
    out.assert_exit(1);
    let run = run_id(&out.stdout);
    let dir = tmp.join(format!("gwtest-{run}/plain/evented/try-1/diagnostics"));
    let block = block_naming_bundle(&out, "plain/evented", "1 collected", &dir);
    // Kept: nothing was deleted, so no such hint.
    assert!(!block.contains("was deleted by cleanup"), "{block}");
    let events = read(&dir.join("events.txt"));
    assert!(
        events.contains("Normal  Evidence  configmap/cm  collected without asking"),
        "{events}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the events file"
    );
}
