//! `gwtest validate` checks manifests against the CRDs it knows, through the real binary:
//! a CEL rule's violation, a value of the wrong type and an unknown field in a fixture are
//! exit-2 errors at the field's file:line:column with the server's message; the suites' own
//! CRDs and `--crds` files are used too; manifests with run-time variables are skipped and
//! counted; the shipped suites pass.

mod lang_support;
mod support;

use lang_support::{SUITE, assert_error, error_blocks, suite_with_test, validate_fails};
use support::{Workspace, gwtest};

const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cel}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches:
        - path: {type: PathPrefix, value: noslash}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: typed}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches:
        - headers:
            - name: x-a
              value: yes
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: demo
  bogus: 1
  listeners:
    - {name: http, protocol: HTTP, port: 80}
";

const TEST: &str = "apiVersion: gwtest/v1alpha1
kind: Test
name: t
steps:
  - apply:
      manifest:
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: dup}
        spec:
          gatewayClassName: demo
          listeners:
            - {name: http, protocol: HTTP, port: 80}
            - {name: http, protocol: HTTP, port: 80}
  - apply:
      manifest:
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: \"${test}\"}
        spec: {parentRefs: [{name: gw}], rules: [{matches: [{path: {type: Exact, value: nope}}]}]}
  - apply: ok.yaml
";

const OK: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fine}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: svc, port: 8080}]}]
";

#[test]
fn violations_in_fixtures_and_inline_manifests_are_errors_at_their_field() {
    let suite = format!("{SUITE}name: s\nfixtures: [routes.yaml]\n");
    let dir = Workspace::with(
        "crdcheck",
        &[
            ("suite.yaml", &suite),
            ("routes.yaml", ROUTES),
            ("t.test.yaml", TEST),
            ("ok.yaml", OK),
        ],
    );
    let out = validate_fails(&dir);
    // A CEL rule of the official HTTPRoute CRD.
    assert_error(
        &out.stderr,
        "routes.yaml",
        ROUTES,
        "path: {type: PathPrefix",
        "HTTPRoute cel: spec.rules[0].matches[0].path: Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
    );
    // `yes` is a boolean in YAML: the header value must be a string.
    assert_error(
        &out.stderr,
        "routes.yaml",
        ROUTES,
        "value: yes",
        "HTTPRoute typed: spec.rules[0].matches[0].headers[0].value: Invalid value: \"boolean\": spec.rules[0].matches[0].headers[0].value in body must be of type string: \"boolean\"",
    );
    assert_error(
        &out.stderr,
        "routes.yaml",
        ROUTES,
        "bogus: 1",
        "Gateway gw: unknown field \"spec.bogus\"",
    );
    // Inline manifests: the list-map invariant and the listener rules.
    assert_error(
        &out.stderr,
        "t.test.yaml",
        TEST,
        "listeners:",
        "Gateway dup: spec.listeners: Invalid value: \"array\": Listener name must be unique within the Gateway",
    );
    assert!(
        out.stderr
            .contains("Gateway dup: spec.listeners[1]: Duplicate value: map[string]interface {}{\"name\":\"http\"}"),
        "{}",
        out.stderr
    );
    // The route holding `${test}` is not checked; ok.yaml is valid.
    assert!(!out.stderr.contains("nope"), "{}", out.stderr);
    assert!(!out.stderr.contains("fine"), "{}", out.stderr);
    assert_eq!(error_blocks(&out.stderr).len(), 6, "{}", out.stderr);
    assert!(out.stderr.ends_with("6 errors found\n"), "{}", out.stderr);
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                min: {type: integer}
                max: {type: integer}
              x-kubernetes-validations:
                - {rule: self.min <= self.max, message: min must not exceed max}
";

const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {min: 5, max: 1}
";

#[test]
fn crds_from_the_suites_and_from_the_command_line_are_used() {
    let test = "apiVersion: gwtest/v1alpha1\nkind: Test\nname: t\nsteps:\n  - apply: widget.yaml\n";
    // Without the CRD the Widget is not checked.
    let dir = suite_with_test(
        "crdcheck-cli",
        test,
        &[
            ("widget.yaml", WIDGET),
            ("crds/widget-crd.yaml", WIDGET_CRD),
        ],
    );
    let target = dir.path().join("t.test.yaml");
    let target = target.to_str().unwrap();
    let out = dir.gwtest(&["validate", target]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("0 objects checked against CRDs"),
        "{}",
        out.stdout
    );
    // --crds with a directory: checked, and the rule's message at the object's field.
    let out = dir.gwtest(&["validate", "--crds", "crds", target]).run();
    assert_eq!(out.code, Some(2), "{}", out.stdout);
    assert_error(
        &out.stderr,
        "widget.yaml",
        WIDGET,
        "spec: {min",
        "Widget w: spec: Invalid value: \"object\": min must not exceed max",
    );

    // A CRD the suite applies itself is known too.
    let test = "apiVersion: gwtest/v1alpha1\nkind: Test\nname: t\nsteps:\n  - apply: crd.yaml\n  - apply: widget.yaml\n";
    let dir = suite_with_test(
        "crdcheck-own",
        test,
        &[("crd.yaml", WIDGET_CRD), ("widget.yaml", WIDGET)],
    );
    let out = validate_fails(&dir);
    assert_error(
        &out.stderr,
        "widget.yaml",
        WIDGET,
        "spec: {min",
        "min must not exceed max",
    );
}

#[test]
fn the_shipped_suites_are_valid_and_skipped_manifests_are_counted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = gwtest(&["validate", "suites"]).cwd(root).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let re = regex::Regex::new(
        r"^ok: \d+ suites, \d+ tests, \d+ steps; (\d+) objects checked against CRDs, (\d+) manifests skipped \(run-time variables\)\n$",
    )
    .unwrap();
    let c = re
        .captures(&out.stdout)
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(c[1].parse::<usize>().unwrap() > 0, "{}", out.stdout);
    assert!(c[2].parse::<usize>().unwrap() > 0, "{}", out.stdout);
}
