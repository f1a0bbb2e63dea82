//! Every cluster step kind and option through the real binary against an embedded API server
//! started by the test (DESIGN §1.1–1.5): apply (files, multi-document files, lists, inline,
//! `${}`, namespace defaulting, explicit namespaces, cluster-scoped kinds, a CRD then its kind,
//! the run label, a rejected manifest), patch (merge, status), delete (waiting for a finalizer,
//! by selector, a missing object), assert (by name, by selector + count, conditions with
//! reason, freshness, no status, fields with unordered lists and diffs, absent, capture,
//! replaced) and `vars.from`. Status a controller would write is written by the test.

mod support;
mod support_cluster;

use std::time::Duration;

use serde_json::{Value, json};
use support::{RunOutput, Workspace, suite_with_manifest, test_doc};
use support_cluster::{
    Mode, TestCluster, UPSTREAM, json_report, name_of, namespace_of, run_id, uid_of,
};

const CM: (&str, &str) = ("v1", "ConfigMap");

/// Any test's namespace, in a failure line.
const ANY_NS: &str = r"gwtest-[a-z-]+-[a-z0-9]{6}";

/// The run failed: test `passed` passed, the `failed` others failed.
fn assert_only_passed(out: &RunOutput, passed: &str, failed: usize) {
    out.assert_exit(1);
    out.assert_counts(1, 0, failed, 0);
    assert_eq!(out.outcome(passed).tag, "PASS");
}

/// The namespace of the first try of test `test` in the JSON report.
fn test_namespace(report: &Value, test: &str) -> String {
    for s in report["suites"].as_array().unwrap() {
        for t in s["tests"].as_array().unwrap() {
            if t["name"] == test {
                return t["tries"][0]["namespace"]
                    .as_str()
                    .expect("namespace")
                    .to_owned();
            }
        }
    }
    panic!("no test {test} in {report}")
}

#[test]
fn apply_files_lists_inline_variables_namespaces_and_cluster_scoped_objects() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("apply-forms");
    ws.suite("s", "vars:\n  color: blue\n  port: 8080");
    ws.write(
        "s/one.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  color: ${color}\n  test: ${test}\n",
    );
    ws.write(
        "s/multi.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: multi-a}\ndata: {n: \"1\"}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: multi-b}\ndata: {n: \"2\"}\n",
    );
    ws.write(
        "s/manifests/listed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: listed}\ndata: {ns: \"${namespace}\"}\n",
    );
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "forms",
            "",
            r#"  - apply: one.yaml
  - apply: multi.yaml
  - apply: [manifests/listed.yaml, one.yaml]
  - name: inline, cluster-scoped and explicit namespace
    apply:
      - manifest: {apiVersion: v1, kind: Namespace, metadata: {name: "explicit-${unique}"}}
      - manifest:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: elsewhere, namespace: "explicit-${unique}"}
          data: {text: "port ${port}"}
      - manifest:
          apiVersion: demo.gwtest.dev/v1alpha1
          kind: Upstream
          metadata: {name: typed, namespace: "explicit-${unique}"}
          spec: {port: "${port}"}
      - manifest:
          apiVersion: gateway.networking.k8s.io/v1
          kind: GatewayClass
          metadata: {name: "class-${unique}", namespace: "ignored-for-cluster-scoped"}
          spec: {controllerName: example.com/gateway}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: elsewhere, namespace: "explicit-${unique}"}
      fields: {data: {text: "port 8080"}}
      capture: {explicit_ns: $.metadata.namespace}
  - assert:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: typed, namespace: "explicit-${unique}"}
      fields: {spec: {port: 8080}}
  - assert:
      resource: {apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, name: "class-${unique}"}
      fields: {spec: {controllerName: example.com/gateway}}
      capture: {class: $.metadata.name}
  - exec:
      command: [sh, -c, 'printf "%s %s %s" "$NS" "$EXPLICIT" "$CLASS" > "names-$RUN"']
      env: {NS: "${namespace}", EXPLICIT: "${explicit_ns}", CLASS: "${class}", RUN: "${run}"}
"#,
        ),
    );
    let (out, report) = cluster.run_with_report(&ws, &["run", "s", "--keep", "always"], 0);
    out.assert_counts(1, 0, 0, 0);
    let run = run_id(&out.stdout);
    let names = std::fs::read_to_string(ws.path().join(format!("s/names-{run}"))).unwrap();
    let names: Vec<&str> = names.split(' ').collect();
    let (ns, explicit, class) = (names[0], names[1], names[2]);
    assert!(ns.starts_with("gwtest-forms-"), "{ns}");
    assert_eq!(test_namespace(&report, "forms"), ns);

    // Kept (--keep always): everything is where the suite said, substituted and labelled.
    let label = |o: &Value| {
        o.pointer("/metadata/labels/gwtest.dev~1run")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let one = cluster
        .get(CM, Some(ns), "one")
        .expect("one in the test namespace");
    assert_eq!(one["data"], json!({"color": "blue", "test": "forms"}));
    for name in ["multi-a", "multi-b", "listed", "one"] {
        let o = cluster
            .get(CM, Some(ns), name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(label(&o).as_deref(), Some(run.as_str()), "{name}: {o}");
        let fields = o["metadata"]["managedFields"].as_array().unwrap();
        let managers: Vec<&str> = fields
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"gwtest"), "{name}: {managers:?}");
        assert!(
            fields
                .iter()
                .any(|m| m["manager"] == "gwtest" && m["operation"] == "Apply"),
            "{name} was server-side applied: {o}"
        );
    }
    assert_eq!(
        cluster.get(CM, Some(ns), "listed").unwrap()["data"]["ns"],
        ns
    );
    // A multi-document file is every document.
    assert_eq!(
        cluster.get(CM, Some(ns), "multi-b").unwrap()["data"]["n"],
        "2"
    );
    // An explicit namespace wins; a whole-string `${port}` keeps its type (the CRD's schema
    // wants an integer), inside a longer string it is text.
    assert!(explicit.starts_with("explicit-"), "{explicit}");
    let elsewhere = cluster.get(CM, Some(explicit), "elsewhere").unwrap();
    assert_eq!(elsewhere["data"]["text"], "port 8080");
    let typed = cluster.get(UPSTREAM, Some(explicit), "typed").unwrap();
    assert_eq!(typed["spec"]["port"], 8080);
    assert!(cluster.get(CM, Some(ns), "elsewhere").is_none());
    // Cluster-scoped: no namespace.
    let gc = cluster
        .get(
            ("gateway.networking.k8s.io/v1", "GatewayClass"),
            None,
            class,
        )
        .expect("the GatewayClass");
    assert!(gc["metadata"].get("namespace").is_none(), "{gc}");
    assert_eq!(label(&gc).as_deref(), Some(run.as_str()));
    let test_ns = cluster.get(("v1", "Namespace"), None, ns).unwrap();
    assert_eq!(label(&test_ns).as_deref(), Some(run.as_str()));
    let explicit_ns = cluster.get(("v1", "Namespace"), None, explicit).unwrap();
    assert_eq!(label(&explicit_ns).as_deref(), Some(run.as_str()));

    // The same suite without --keep leaves nothing: the namespace, and the cluster-scoped and
    // explicit-namespace objects it created, are deleted and waited for.
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(0);
    let run2 = run_id(&out.stdout);
    let left: Vec<String> = cluster
        .labelled_objects()
        .into_iter()
        .filter(|o| !o.contains(ns) && !o.contains(explicit) && !o.contains(class))
        .collect();
    assert!(left.is_empty(), "run {run2} left {left:?}\n{}", out.dump());
    assert!(cluster.run_namespaces(Some(&run2)).is_empty());
}

const GIZMO_CRD: &str = include_str!("data/gizmo-crd.yaml");

#[test]
fn a_crd_applied_in_one_step_serves_its_kind_in_the_next_and_goes_after_the_test() {
    let cluster = TestCluster::start();
    let ws = suite_with_manifest("crd", "s", "crd.yaml", GIZMO_CRD);
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "crd",
            "",
            r#"  - apply: crd.yaml
  - apply:
      manifest: {apiVersion: acc.gwtest.test/v1, kind: Gizmo, metadata: {name: g}, spec: {size: 3}}
  - assert:
      resource: {apiVersion: acc.gwtest.test/v1, kind: Gizmo, name: g}
      fields: {spec: {size: 3}}
"#,
        ),
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
    // Cleanup removed the CRD (cluster-scoped, tracked) after the objects of its kind.
    assert!(
        cluster
            .get(
                ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                None,
                "gizmos.acc.gwtest.test"
            )
            .is_none()
    );
    cluster.assert_nothing_left(Duration::from_secs(5), &out.dump());
}

#[test]
fn an_apply_the_server_rejects_fails_with_its_message_and_the_manifest_file_and_line() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("reject");
    ws.suite("s", "");
    ws.write(
        "s/upstreams.yaml",
        "apiVersion: demo.gwtest.dev/v1alpha1\nkind: Upstream\nmetadata: {name: good}\nspec: {port: 80}\n\
         ---\n# the port is not a number\napiVersion: demo.gwtest.dev/v1alpha1\nkind: Upstream\n\
         metadata: {name: bad}\nspec: {port: eighty}\n",
    );
    ws.write(
        "s/t.test.yaml",
        &test_doc("reject", "", "  - apply: upstreams.yaml\n"),
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 1, 0);
    let o = out.outcome("s/reject");
    o.line(r#"^  step 1 "apply upstreams\.yaml" \(apply\) at s/t\.test\.yaml:6:5$"#);
    o.line(r"^  expected: Upstream bad \(s/upstreams\.yaml:7\) accepted by the API server$");
    // Server-side apply of an ill-typed field: kube-apiserver's 500 (golden 09), final.
    o.line(
        r#"^  Upstream bad \(s/upstreams\.yaml:7\) was rejected: 500: failed to create typed patch object \(gwtest-reject-\w+/bad; demo\.gwtest\.dev/v1alpha1, Kind=Upstream\): \.spec\.port: expected numeric \(int or float\), got string \[api-error\]$"#,
    );
    // Rejected at once: not retried.
    o.line(r"^  steps: ✗ apply upstreams\.yaml \(0\.\ds, 2 attempts\)$");
    // The object before it in the file was applied, and cleaned up with the namespace.
    cluster.assert_nothing_left(Duration::from_secs(5), &out.dump());
}

#[test]
fn an_apply_a_cel_rule_rejects_fails_at_once_with_the_rules_message() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("cel");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "cel",
            "",
            "  - apply:\n      manifest:\n        apiVersion: gateway.networking.k8s.io/v1\n        kind: HTTPRoute\n\
             \x20       metadata: {name: r}\n        spec:\n          parentRefs: [{name: gw}]\n\
             \x20         rules: [{matches: [{path: {type: PathPrefix, value: noslash}}]}]\n",
        ),
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 1, 0);
    let o = out.outcome("s/cel");
    o.line(
        r#"^  HTTPRoute r \(s/t\.test\.yaml:8\) was rejected: 422 Invalid: HTTPRoute\.gateway\.networking\.k8s\.io "r" is invalid: spec\.rules\[0\]\.matches\[0\]\.path: Invalid value: "object": value must be an absolute path and start with '/' when type one of \['Exact', 'PathPrefix'\] \[api-error\]$"#,
    );
    // One attempt: not retried.
    o.line(r"^  steps: ✗ apply HTTPRoute/r \(0\.\ds\)$");
}

/// An Upstream `u` (generation 1) in the test's namespace.
const UPSTREAM_U: &str = r#"  - apply:
      manifest:
        apiVersion: demo.gwtest.dev/v1alpha1
        kind: Upstream
        metadata: {name: u}
        spec:
          service: web
          port: 80
          ports: [{name: http, port: 80, protocol: TCP}, {name: https, port: 443}]
"#;

#[test]
fn a_missing_object_names_the_near_misses_of_its_kind_where_it_was_looked_for() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("nearmiss");
    ws.suite("s", "defaults: {timeout: 500ms}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "typo",
            "",
            &format!(
                r#"{UPSTREAM_U}  - apply:
      manifest: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, metadata: {{name: web-api}}, spec: {{service: web, port: 80}}}}
  - assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: web-apx}}
"#
            ),
        ),
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    let o = out.outcome("s/typo");
    o.line(r"^  \d+ attempts in \d+\.\ds: \d+ not found; last: Upstream web-apx in gwtest-typo-[a-z0-9]{6} does not exist(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[not-found\]$");
    // Closest first.
    o.line(r"^  hint: no Upstream web-apx in namespace gwtest-typo-[a-z0-9]{6}; Upstreams there: web-api, u$");
}

/// `UPSTREAM_U`, then an assert on it with `body` (YAML lines under `assert:`).
fn upstream_assert(body: &str) -> String {
    format!(
        "{UPSTREAM_U}  - assert:\n      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}\n{body}"
    )
}

#[test]
fn patch_merges_into_the_object_and_writes_status_through_the_subresource() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("patch");
    ws.suite("s", "defaults: {timeout: 2s}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "patch",
            "",
            &format!(
                r#"{UPSTREAM_U}  - patch:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      merge: {{metadata: {{labels: {{tier: gold}}}}, spec: {{port: 81}}}}
  - patch:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      subresource: status
      merge:
        status:
          conditions: [{{type: Accepted, status: "True", reason: Patched, message: by gwtest, observedGeneration: 2}}]
  - name: a status in a write to the object itself is ignored
    patch:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      merge: {{status: {{conditions: [{{type: Accepted, status: "False", reason: Ignored, observedGeneration: 2}}]}}}}
  - assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      conditions: [{{type: Accepted, status: "True", reason: Patched}}]
      fields: {{metadata: {{generation: 2, labels: {{tier: gold}}}}, spec: {{port: 81, service: web}}}}
"#
            ),
        ),
    );
    ws.write(
        "s/missing.test.yaml",
        &test_doc(
            "missing",
            "",
            r#"  - patch:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: nope}
      merge: {spec: {port: 1}}
"#,
        ),
    );
    let (out, report) = cluster.run_with_report(&ws, &["run", "s", "--keep", "always"], 1);
    out.assert_counts(1, 0, 1, 0);
    let o = out.outcome("s/missing");
    o.line(r"^  expected: Upstream nope in gwtest-missing-[a-z0-9]{6} patched$");
    o.line(r"^  Upstream nope in gwtest-missing-[a-z0-9]{6} does not exist \[not-found\]$");
    o.line(
        r"^  hint: no Upstream nope in namespace gwtest-missing-[a-z0-9]{6}; no Upstreams there$",
    );

    // The status went through the status subresource: its managed fields say so.
    let ns = test_namespace(&report, "patch");
    let u = cluster.get(UPSTREAM, Some(&ns), "u").unwrap();
    let mf = u["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter()
            .any(|m| m["subresource"] == "status" && m["fieldsV1"]["f:status"].is_object()),
        "{u}"
    );
    assert_eq!(u["status"]["conditions"][0]["reason"], "Patched");
}

/// Suite `s` of one test per case `(name, value)`, each asserting `KEY: VALUE` on [`UPSTREAM_U`]
/// (within 1s), run: the first case passes, the others fail.
fn upstream_cases(
    cluster: &TestCluster,
    ws_name: &str,
    key: &str,
    cases: &[(&str, &str)],
) -> RunOutput {
    let ws = Workspace::new(ws_name);
    ws.suite("s", "defaults: {timeout: 1s}");
    for (name, value) in cases {
        ws.write(
            &format!("s/{name}.test.yaml"),
            &test_doc(
                name,
                "",
                &upstream_assert(&format!("      {key}: {value}\n")),
            ),
        );
    }
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    assert_only_passed(&out, &format!("s/{}", cases[0].0), cases.len() - 1);
    out
}

#[test]
fn conditions_with_status_and_reason_written_by_a_controller() {
    let cluster = TestCluster::start();
    // Status arrives 300ms after the object: the asserts wait for it.
    let ctl = cluster.controller(Mode::Fresh {
        delay: Duration::from_millis(300),
    });
    let out = upstream_cases(
        &cluster,
        "conditions",
        "conditions",
        &[
            (
                "reason",
                r#"[{type: Accepted, status: "True", reason: Discovered}]"#,
            ),
            (
                "wrong-reason",
                r#"[{type: Accepted, status: "True", reason: Ready}]"#,
            ),
            ("wrong-status", r#"[{type: Accepted, status: "False"}]"#),
            ("missing-type", r#"[{type: Programmed, status: "True"}]"#),
        ],
    );
    let ns = ANY_NS;
    let o = out.outcome("s/wrong-reason");
    o.line(&format!(
        r"^  expected: Upstream u in {ns} exists, Accepted=True \(reason Ready\), conditions fresh$"
    ));
    o.line(&format!(
        r#"^  \d+ attempts in 1\.\ds: (\d+ had no status conditions, )?\d+ had Accepted reason Discovered; last: Upstream u in {ns}: Accepted has reason "Discovered", expected "Ready"(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[condition\]$"#
    ));
    let o = out.outcome("s/wrong-status");
    o.line(&format!(
        r"; last: Upstream u in {ns}: Accepted=True \(reason Discovered: discovered by the test controller\), expected False \[condition\]$"
    ));
    let o = out.outcome("s/missing-type");
    o.line(&format!(
        r"; last: Upstream u in {ns} has no condition Programmed \(has: Accepted\) \[condition\]$"
    ));
    assert!(ctl.writes() >= 4, "{} status writes", ctl.writes());
}

#[test]
fn a_condition_for_an_older_generation_is_stale_unless_fresh_is_false() {
    let cluster = TestCluster::start();
    // Reports the first generation it sees and never again: after the spec change its
    // Accepted=True is for generation 1.
    let _ctl = cluster.controller(Mode::FirstGenerationOnly);
    let ws = Workspace::new("stale");
    ws.suite("s", "defaults: {timeout: 1s}");
    let steps = |fresh: &str| {
        format!(
            r#"{UPSTREAM_U}  - assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      conditions: [{{type: Accepted, status: "True"}}]
  - patch:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      merge: {{spec: {{port: 81}}}}
  - name: accepted after the change
    assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      conditions: [{{type: Accepted, status: "True"}}]
{fresh}"#
        )
    };
    ws.write("s/stale.test.yaml", &test_doc("stale", "", &steps("")));
    ws.write(
        "s/not-fresh.test.yaml",
        &test_doc("not-fresh", "", &steps("      fresh: false\n")),
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    assert_only_passed(&out, "s/not-fresh", 1);
    let o = out.outcome("s/stale");
    o.line(r#"^  step 4 "accepted after the change" \(assert\) at s/stale\.test\.yaml:21:5$"#);
    o.line(r"^  expected: Upstream u in gwtest-stale-[a-z0-9]{6} exists, Accepted=True, conditions fresh$");
    o.line(r"^  \d+ attempts in 1\.\ds: \d+ had Accepted=True for an older generation; last: Accepted=True is for generation 1, object is at generation 2(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[stale\]$");
    o.line(r"^  hint: a stale condition was written for an older generation: the controller has not reconciled the latest spec \(or its status writer skipped the write\)$");
    o.line(r#"^        "generation": 2,$"#);
    o.line(r#"^            "observedGeneration": 1,$"#);
}

#[test]
fn an_object_nobody_reported_on_is_named_with_its_uid_and_creation_time() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("nostatus");
    ws.suite("s", "defaults: {timeout: 1s}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "nostatus",
            "",
            &upstream_assert("      conditions: [{type: Accepted, status: \"True\"}]\n"),
        ),
    );
    let (out, report) = cluster.run_with_report(&ws, &["run", "s", "--keep", "on-failure"], 1);
    let ns = test_namespace(&report, "nostatus");
    let u = cluster.get(UPSTREAM, Some(&ns), "u").expect("kept");
    let created = u["metadata"]["creationTimestamp"].as_str().unwrap();
    out.outcome("s/nostatus").line(&format!(
        r"^  \d+ attempts in 1\.\ds: \d+ had no status conditions; last: Upstream u in {ns} has no status for its generation 1 \(uid {}, created {created}\): nothing has reported on this object(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[condition\]$",
        uid_of(&u)
    ));
}

#[test]
fn fields_match_as_subsets_with_unordered_lists_and_mismatches_show_a_diff() {
    let cluster = TestCluster::start();
    let out = upstream_cases(
        &cluster,
        "fields",
        "fields",
        &[
            // Out of order, partial elements, and keys not mentioned: a match.
            (
                "subset",
                "{spec: {ports: [{port: 443}, {name: http, protocol: TCP}]}}",
            ),
            (
                "list-mismatch",
                "{spec: {ports: [{name: grpc, port: 9090}, {port: 80}]}}",
            ),
            ("type-mismatch", r#"{spec: {port: "80"}}"#),
            ("missing-key", "{spec: {weight: 1}}"),
        ],
    );
    let ns = ANY_NS;
    let o = out.outcome("s/list-mismatch");
    o.line(&format!(
        r#"; last: Upstream u in {ns}: \$\.spec\.ports\[\*\]: no element of the list \(2 elements\) matches \{{"name":"grpc","port":9090\}}; closest: \$\.spec\.ports\[1\]\.name: expected "grpc", got "https" \[field\]$"#
    ));
    o.line(r"^  diff at \$\.spec\.ports\[\*\]:$");
    o.line(r#"^    -  "name": "grpc",$"#);
    o.line(r#"^    \+    "name": "https",$"#);
    out.outcome("s/type-mismatch").line(&format!(
        r#"; last: Upstream u in {ns}: \$\.spec\.port: expected a string "80", got a number 80 \(values compare with their type\) \[field\]$"#
    ));
    out.outcome("s/missing-key").line(&format!(
        r"; last: Upstream u in {ns}: \$\.spec\.weight: missing \(expected 1\) \[field\]$"
    ));
}

#[test]
fn delete_waits_for_finalizers_deletes_by_selector_and_a_missing_object_is_an_error() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("delete");
    ws.suite("s", "defaults: {timeout: 10s}");
    ws.write(
        "s/cms.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [gwtest.test/hold]}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-1, labels: {app: web}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-2, labels: {app: web}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db, labels: {app: db}}\n",
    );
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "delete",
            "",
            r#"  - apply: cms.yaml
  - name: delete held
    delete:
      resource: {apiVersion: v1, kind: ConfigMap, name: held}
  - name: gone once the step passed
    assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: held}
      absent: true
    timeout: 300ms
  - delete:
      resource: {apiVersion: v1, kind: ConfigMap, selector: {app: web}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, selector: "app in (web, db)"}
      count: 1
      fields: {metadata: {name: db}}
    timeout: 300ms
"#,
        ),
    );
    ws.write(
        "s/missing.test.yaml",
        &test_doc(
            "missing",
            "",
            "  - delete:\n      resource: {apiVersion: v1, kind: ConfigMap, name: nope}\n",
        ),
    );
    // The finalizer is removed 700ms after the object is marked for deletion.
    let kube = cluster.kube.clone();
    let release = cluster.spawn(async move {
        let marked =
            |o: &Value| name_of(o) == "held" && o.pointer("/metadata/deletionTimestamp").is_some();
        let Some(o) = kube.wait_for(CM, "", Duration::from_secs(20), marked).await else {
            return false;
        };
        tokio::time::sleep(Duration::from_millis(700)).await;
        let p = json!({"metadata": {"finalizers": null}});
        kube.patch(CM, Some(namespace_of(&o)), "held", p, false)
            .await;
        true
    });
    let out = cluster.gwtest(&ws, &["run", "s", "--json", "r.json"]).run();
    assert!(
        release.join(&cluster),
        "the delete step marked `held` for deletion"
    );
    out.assert_exit(1);
    out.assert_counts(1, 0, 1, 0);
    let report = json_report(&ws, "r.json");
    let delete_test = report["suites"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "delete")
        .unwrap();
    let held_ms = delete_test["tries"][0]["steps"][1]["duration_ms"]
        .as_u64()
        .unwrap();
    assert!(
        held_ms >= 700,
        "the delete step returned after {held_ms}ms, before the finalizer went\n{}",
        out.dump()
    );
    let o = out.outcome("s/missing");
    o.line(r#"^  step 1 "delete ConfigMap/nope" \(delete\) at s/missing\.test\.yaml:6:5$"#);
    o.line(r"^  ConfigMap nope in gwtest-missing-[a-z0-9]{6} does not exist \[not-found\]$");
    o.line(
        r"^  hint: no ConfigMap nope in namespace gwtest-missing-[a-z0-9]{6}; no ConfigMaps there$",
    );
    cluster.assert_nothing_left(Duration::from_secs(5), &out.dump());
}

#[test]
fn assert_by_selector_and_count_waits_for_the_objects() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("selector");
    ws.suite("s", "defaults: {timeout: 1s}");
    let apply = r#"  - apply:
      - manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: a, labels: {app: web}}}
      - manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: b, labels: {app: web}}}
      - manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, labels: {app: db}}}
"#;
    let tests = [
        (
            "waits",
            "selector: {app: web}}\n      count: 3\n    timeout: 10s",
        ),
        ("too-few", "selector: \"app=db\"}\n      count: 2"),
        ("none", "selector: {app: cache}}"),
    ];
    for (name, rest) in tests {
        ws.write(
            &format!("s/{name}.test.yaml"),
            &test_doc(
                name,
                "",
                &format!(
                    "{apply}  - assert:\n      resource: {{apiVersion: v1, kind: ConfigMap, {rest}\n"
                ),
            ),
        );
    }
    // A third `app=web` object appears in the `waits` test's namespace 500ms after the others.
    let kube = cluster.kube.clone();
    let third = cluster.spawn(async move {
        let in_waits = |o: &Value| namespace_of(o).starts_with("gwtest-waits-");
        let o = kube
            .wait_for(CM, "app=web", Duration::from_secs(20), in_waits)
            .await
            .expect("no waits namespace");
        tokio::time::sleep(Duration::from_millis(500)).await;
        kube.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "late", "namespace": namespace_of(&o), "labels": {"app": "web"}}}))
            .await;
    });
    let out = cluster.gwtest(&ws, &["run", "s", "--json", "r.json"]).run();
    third.join(&cluster);
    assert_only_passed(&out, "s/waits", 2);
    let o = out.outcome("s/too-few");
    o.line(r#"^  step 2 "assert ConfigMap/\[app=db\]" \(assert\) at s/too-few\.test\.yaml:10:5$"#);
    o.line(r"^  expected: exactly 2 × ConfigMap \[app=db\] in gwtest-too-few-[a-z0-9]{6}$");
    o.line(r"^  \d+ attempts in 1\.\ds: \d+ found 1 object; last: ConfigMap \[app=db\] in gwtest-too-few-[a-z0-9]{6}: found 1 object, expected 2: c(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[not-found\]$");
    o.line(r"^    kubectl --kubeconfig \S+ get configmaps -l app=db -n gwtest-too-few-[a-z0-9]{6} -o yaml$");
    let o = out.outcome("s/none");
    o.line(r"^  expected: ConfigMap \[app=cache\] in gwtest-none-[a-z0-9]{6} exists$");
    o.line(r"; last: ConfigMap \[app=cache\] in gwtest-none-[a-z0-9]{6}: no object matches \[not-found\]$");
}

#[test]
fn absent_waits_for_the_object_to_go() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("absent");
    ws.suite("s", "defaults: {timeout: 1s}");
    let steps = "  - apply:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: doomed}}\n  - assert:\n      resource: {apiVersion: v1, kind: ConfigMap, name: doomed}\n      absent: true\n";
    ws.write(
        "s/goes.test.yaml",
        &test_doc("goes", "", &format!("{steps}    timeout: 10s\n")),
    );
    ws.write("s/stays.test.yaml", &test_doc("stays", "", steps));
    // `doomed` of the `goes` test is deleted 500ms after it appears.
    let kube = cluster.kube.clone();
    let deleter = cluster.spawn(async move {
        let doomed =
            |o: &Value| name_of(o) == "doomed" && namespace_of(o).starts_with("gwtest-goes-");
        let o = kube
            .wait_for(CM, "", Duration::from_secs(20), doomed)
            .await
            .expect("doomed never appeared");
        tokio::time::sleep(Duration::from_millis(500)).await;
        kube.delete(CM, Some(namespace_of(&o)), "doomed").await;
    });
    let out = cluster.gwtest(&ws, &["run", "s", "--json", "r.json"]).run();
    deleter.join(&cluster);
    assert_only_passed(&out, "s/goes", 1);
    let o = out.outcome("s/stays");
    o.line(r"^  expected: ConfigMap doomed in gwtest-stays-[a-z0-9]{6} absent$");
    o.line(r"^  \d+ attempts in 1\.\ds: \d+ still exists; last: ConfigMap doomed in gwtest-stays-[a-z0-9]{6} still exists(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[field\]$");
}

#[test]
fn a_captured_value_is_used_by_later_steps() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("capture");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "capture",
            "",
            &upstream_assert(
                r#"      capture: {upstream_uid: $.metadata.uid, https_port: "$.spec.ports[?@.name == 'https'].port"}
  - apply:
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: "for-${upstream_uid}"}, data: {uid: "${upstream_uid}", port: "port ${https_port}"}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: "for-${upstream_uid}"}
      fields: {data: {uid: "${upstream_uid}", port: port 443}}
"#,
            ),
        ),
    );
    let (_, report) = cluster.run_with_report(&ws, &["run", "s", "--keep", "always"], 0);
    let ns = test_namespace(&report, "capture");
    let u = cluster.get(UPSTREAM, Some(&ns), "u").unwrap();
    let cm = cluster
        .get(CM, Some(&ns), &format!("for-{}", uid_of(&u)))
        .expect("the ConfigMap named after the captured uid");
    assert_eq!(cm["data"], json!({"uid": uid_of(&u), "port": "port 443"}));
}

#[test]
fn an_object_deleted_and_re_created_behind_the_tests_back_is_replaced() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("replaced");
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "replaced",
            "",
            r#"  - apply:
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: mine}, data: {v: "1"}}
  - name: wait for the swap
    exec:
      command: [sh, -c, 'test -e "swapped-$RUN"']
      env: {RUN: "${run}"}
      expect: {exit: 0}
    timeout: 10s
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: mine}
      fields: {data: {v: "1"}}
    timeout: 1s
"#,
        ),
    );
    // Someone else deletes `mine` and creates another, identical one.
    let kube = cluster.kube.clone();
    let dir = ws.path().join("s");
    let swap = cluster.spawn(async move {
        let o = kube
            .wait_exists(CM, "mine", Duration::from_secs(20))
            .await
            .expect("mine applied");
        let ns = o["metadata"]["namespace"].as_str().unwrap().to_owned();
        let run = o
            .pointer("/metadata/labels/gwtest.dev~1run")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        kube.delete(CM, Some(&ns), "mine").await;
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while kube.get(CM, Some(&ns), "mine").await.is_some() {
            assert!(tokio::time::Instant::now() < until);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let new = kube
            .apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "mine", "namespace": ns}, "data": {"v": "1"}}))
            .await;
        std::fs::write(dir.join(format!("swapped-{run}")), "").unwrap();
        let created = new["metadata"]["creationTimestamp"].as_str().unwrap();
        (
            uid_of(&o).to_owned(),
            uid_of(&new).to_owned(),
            created.to_owned(),
        )
    });
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    let (old, new, created) = swap.join(&cluster);
    out.assert_exit(1);
    let o = out.outcome("s/replaced");
    o.line(&format!(
        r"^  \d+ attempts in 1\.\ds: \d+ was replaced; last: ConfigMap mine was replaced: the test applied uid {old}, the cluster now has uid {new} \(created {created}\)(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[replaced\]$"
    ));
}

/// A Gateway fixture in namespace `from-infra`; the suite reads `${address}` from its status.
fn from_suite(ws: &Workspace, timeout: &str) {
    ws.write(
        "gw.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: from-infra}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: from-infra}\n\
         spec:\n  gatewayClassName: example\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n",
    );
    ws.suite(
        "s",
        &format!(
            r#"fixtures: [../gw.yaml]
vars:
  address:
    from:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, namespace: from-infra, name: gw}}
      path: $.status.addresses[0].value
      timeout: {timeout}"#
        ),
    );
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "uses-address",
            "",
            r#"  - exec:
      command: [sh, -c, 'printf %s "$A" > "address-$RUN"']
      env: {A: "${address}", RUN: "${run}"}
"#,
        ),
    );
}

#[test]
fn a_suite_variable_from_the_cluster_waits_for_its_field() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("from");
    from_suite(&ws, "10s");
    // The address is published 500ms after the fixture's Gateway appears.
    let kube = cluster.kube.clone();
    let gw = ("gateway.networking.k8s.io/v1", "Gateway");
    let writer = cluster.spawn(async move {
        kube.wait_exists(gw, "gw", Duration::from_secs(20))
            .await
            .expect("the fixture's Gateway");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = json!({"status": {"addresses": [{"type": "IPAddress", "value": "10.1.2.3"}]}});
        kube.patch(gw, Some("from-infra"), "gw", status, true).await;
    });
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    writer.join(&cluster);
    out.assert_exit(0);
    let run = run_id(&out.stdout);
    assert_eq!(
        std::fs::read_to_string(ws.path().join(format!("s/address-{run}"))).unwrap(),
        "10.1.2.3"
    );
    // The fixtures went after the suite.
    assert!(
        cluster
            .get(("v1", "Namespace"), None, "from-infra")
            .is_none()
    );
    cluster.assert_nothing_left(Duration::from_secs(5), &out.dump());
}

#[test]
fn a_suite_variable_whose_field_never_appears_fails_the_suite_setup() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("from-missing");
    from_suite(&ws, "1s");
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 1, 0);
    let failure = r"^  variable `address` from \$\.status\.addresses\[0\]\.value: \d+ attempts in 1\.\ds: \d+ field not set; last: Gateway gw in from-infra: \$\.status\.addresses\[0\]\.value matched nothing(?:; cut off after \d+\.\ds: reading .+)? \[field\]$";
    out.stdout_line(r"^FAIL  suite s \(s/suite\.yaml\): setup failed$");
    out.stdout_line(failure);
    let o = out.outcome("s/uses-address");
    o.line(r"^  test setup/cleanup$");
    o.line(failure);
    // The fixtures applied before the variable was read are removed.
    cluster.assert_nothing_left(Duration::from_secs(5), &out.dump());
}

#[test]
fn cel_checks_on_an_object_pass_or_show_their_operands() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("celassert");
    ws.suite("s", "defaults: {timeout: 500ms}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "cel",
            "",
            &upstream_assert(
                r#"      cel:
        - self.spec.port == 80 && self.spec.ports.size() == 2
        - self.spec.ports.exists(p, p.name == 'https' && p.port == 443)
        - "self.metadata.namespace.startsWith('gwtest-') && self.metadata.name == 'u'"
"#,
            ),
        ),
    );
    ws.write(
        "s/f.test.yaml",
        &test_doc(
            "celfail",
            "",
            &upstream_assert(
                r#"      cel:
        - self.spec.port == 80
        - self.spec.ports.size() == 3
"#,
            ),
        ),
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(1, 0, 1, 0);
    let o = out.outcome("s/celfail");
    o.line(r"^  expected: Upstream u in gwtest-celfail-[a-z0-9]{6} exists, cel `self\.spec\.port == 80`, cel `self\.spec\.ports\.size\(\) == 3`$");
    o.line(r"^  \d+ attempts in \d+\.\ds: \d+ cel `self\.spec\.ports\.size\(\) == 3` was false; last: Upstream u in gwtest-celfail-[a-z0-9]{6}: cel `self\.spec\.ports\.size\(\) == 3` was false: self\.spec\.ports\.size\(\) was 2(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[cel\]$");
}

/// Every file under `dir`, with its contents.
fn read_tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(read_tree(&p));
        } else {
            out.push((
                p.clone(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
            ));
        }
    }
    out
}

#[test]
fn secret_values_and_credentials_are_redacted_everywhere_unless_asked_for() {
    // "hunter2-secret" and its base64 form must not appear in any output or file.
    const PLAIN: &str = "hunter2-secret";
    const B64: &str = "aHVudGVyMi1zZWNyZXQ=";
    const TOKEN: &str = "s3cr3t-t0ken";
    let cluster = TestCluster::start();
    let srv = support::TestServer::start([(
        "/down",
        support::Behavior::Respond(support::Canned::new(503, "down")),
    )]);
    let ws = Workspace::new("redact");
    ws.suite("s", "defaults: {timeout: 300ms}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "secret",
            "",
            &format!(
                r#"  - apply:
      manifest:
        apiVersion: v1
        kind: Secret
        metadata: {{name: creds}}
        data: {{password: {B64}}}
        stringData: {{token: {TOKEN}}}
  - assert:
      resource: {{apiVersion: v1, kind: Secret, name: creds}}
      fields: {{data: {{password: d3Jvbmc=}}}}
"#
            ),
        ),
    );
    ws.write(
        "s/r.test.yaml",
        &test_doc(
            "request",
            "",
            &format!(
                "  - request:\n      url: {}\n      headers: {{Authorization: \"Bearer {TOKEN}\", Cookie: \"session={PLAIN}\", X-Trace: visible}}\n      expect: {{status: 200}}\n",
                srv.url("/down")
            ),
        ),
    );
    ws.write(
        "s/c.test.yaml",
        &test_doc(
            "cel",
            "",
            &format!(
                r#"  - apply:
      manifest: {{apiVersion: v1, kind: Secret, metadata: {{name: creds}}, data: {{password: {B64}}}}}
  - assert:
      resource: {{apiVersion: v1, kind: Secret, name: creds}}
      cel: ["self.data.password == 'd3Jvbmc='"]
"#
            ),
        ),
    );
    let run = |extra: &[&str], tag: &str| {
        let mut args: Vec<String> = ["run", "s", "--json", &format!("{tag}.json")]
            .into_iter()
            .map(String::from)
            .collect();
        args.extend(["--junit".into(), format!("{tag}.xml")]);
        args.extend(["--artifacts".into(), format!("{tag}-artifacts")]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cluster
            .gwtest(&ws, &args)
            .env("GITHUB_ACTIONS", "true")
            .run();
        out.assert_exit(1);
        out.assert_counts(0, 0, 3, 0);
        let mut texts = vec![
            ("stdout".to_string(), out.stdout.clone()),
            ("stderr".to_string(), out.stderr.clone()),
        ];
        for f in [format!("{tag}.json"), format!("{tag}.xml")] {
            texts.push((
                f.clone(),
                std::fs::read_to_string(ws.path().join(&f)).unwrap(),
            ));
        }
        for (p, t) in read_tree(&ws.path().join(format!("{tag}-artifacts"))) {
            texts.push((p.display().to_string(), t));
        }
        (out, texts)
    };

    let (out, texts) = run(&[], "hidden");
    for (name, text) in &texts {
        for secret in [PLAIN, B64, TOKEN] {
            assert!(!text.contains(secret), "{secret} in {name}:\n{text}");
        }
    }
    // What is shown instead, and the comparison still ran on the real values.
    let o = out.outcome("s/secret");
    o.line(r#"^  \d+ attempts in \d+\.\ds: \d+ \$\.data\.password did not match; last: Secret creds in gwtest-secret-[a-z0-9]{6}: \$\.data\.password: expected "<redacted 5 bytes>", got "<redacted 14 bytes>"(?:; cut off after \d+\.\ds: (?:reading|deleting|applying|patching) .+)? \[field\]$"#);
    o.line(r#"^  expected: Secret creds in gwtest-secret-[a-z0-9]{6} exists, fields \{"data":\{"password":"<redacted 5 bytes>"\}\}$"#);
    o.line(r#"^ +"password": "<redacted 14 bytes>",$"#);
    o.line(r#"^ +"token": "<redacted 12 bytes>"$"#);
    out.outcome("s/request").line(&format!(
        r"^    curl -sS -i -H 'authorization: <redacted>' -H 'cookie: <redacted>' -H 'x-trace: visible' --max-time 10 {}$",
        regex::escape(&srv.url("/down"))
    ));
    out.outcome("s/cel").line(r"cel `self\.data\.password == 'd3Jvbmc='` was false \(operand values of a Secret are not shown\) \[cel\]$");
    let dumped = texts
        .iter()
        .find(|(n, t)| n.ends_with("Secret.creds.yaml") && t.contains("password"))
        .expect("the bundle holds the Secret");
    assert!(dumped.1.contains("<redacted 14 bytes>"), "{}", dumped.1);

    // --show-secrets: the values are shown.
    let (out, texts) = run(&["--show-secrets"], "shown");
    out.outcome("s/request")
        .line(&format!("-H 'authorization: Bearer {TOKEN}'"));
    out.outcome("s/cel").line(&format!(
        r#"self\.data\.password was "{}""#,
        regex::escape(B64)
    ));
    assert!(
        texts
            .iter()
            .any(|(n, t)| n.ends_with("Secret.creds.yaml") && t.contains(B64)),
        "the bundle shows the Secret with --show-secrets"
    );
}
