//! `gwtest schema`: the emitted schemas are valid JSON Schema (checked against the draft's
//! meta-schema by the boon validator), describe every key, and accept and reject the same
//! documents as the loader does.

mod lang_support;
mod support;

use lang_support::{SUITE, validate};
use serde_json::Value;
use support::Workspace;

fn schema(args: &[&str]) -> Value {
    let dir = Workspace::new("schema");
    let mut all = vec!["schema"];
    all.extend_from_slice(args);
    let out = dir.gwtest(&all).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("schema is JSON")
}

struct Compiled {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

/// Compiling validates the schema against its draft's meta-schema.
fn compile(schema: Value) -> Compiled {
    let id = schema["$id"].as_str().expect("$id").to_owned();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(&id, schema).unwrap();
    let index = compiler
        .compile(&id, &mut schemas)
        .unwrap_or_else(|e| panic!("invalid schema: {e:#}"));
    Compiled { schemas, index }
}

impl Compiled {
    fn check(&self, yaml: &str) -> Result<(), String> {
        let doc: Value = serde_saphyr::from_str(yaml).expect("test YAML parses");
        self.schemas
            .validate(&doc, self.index)
            .map_err(|e| format!("{e:#}"))
    }
}

/// Every property of every object schema has a description (editors show them on hover).
fn undocumented(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                for (k, p) in props {
                    let described = p.get("description").is_some()
                        || p.get("allOf")
                            .and_then(|a| a.get(0))
                            .and_then(|a| a.get("description"))
                            .is_some();
                    if !described {
                        out.push(format!("{path}.{k}"));
                    }
                }
            }
            for (k, c) in m {
                undocumented(c, &format!("{path}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, c) in items.iter().enumerate() {
                undocumented(c, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

const GOOD_TEST: &str = r#"
apiVersion: gwtest/v1alpha1
kind: Test
name: good
steps:
  - apply: m.yaml
  - apply: {manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: x}
      conditions: [{type: Ready, status: "True"}]
      fields: {data: {a: b}}
      capture: {uid: $.metadata.uid}
      cel: ["self.data.a == 'b'"]
    timeout: 1m30s
  - request:
      url: http://127.0.0.1/
      headers: {X-Count: 5}
      expect:
        status: [200, 204]
        headers: {x-a: {matches: "^a"}}
        body: {contains: ok}
        json: {$.a: 1}
        cel: [response.status == 200]
    consecutive: 3
    hold: 2s
  - spans: {expect: [{name-matches: "^GET", kind: server, cel: ["span.kind == 'server'"]}], absent: [x]}
  - patch: {resource: {apiVersion: v1, kind: ConfigMap, name: x}, merge: {data: {a: c}}}
  - delete: {resource: {apiVersion: v1, kind: ConfigMap, selector: "app in (a,b)"}}
  - exec: {command: [echo, hi], expect: {stdout: {equals: "hi\n"}}}
  - sleep: 500ms
  - pause: look
"#;

#[test]
fn schemas_are_valid_json_schema_in_both_drafts() {
    for draft in [&[][..], &["--draft07"][..]] {
        for suite in [false, true] {
            let mut args: Vec<&str> = draft.to_vec();
            if suite {
                args.push("--suite");
            }
            let s = schema(&args);
            assert!(
                s["$id"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://gwtest.dev/schemas/")
            );
            assert!(s["title"].as_str().unwrap().starts_with("gwtest "));
            let mut missing = Vec::new();
            undocumented(&s, "", &mut missing);
            assert!(
                missing.is_empty(),
                "keys without a description ({args:?}): {missing:?}"
            );
            compile(s);
        }
    }
}

#[test]
fn test_schema_accepts_and_rejects_like_the_loader() {
    let drafts = [compile(schema(&[])), compile(schema(&["--draft07"]))];
    for c in &drafts {
        c.check(GOOD_TEST).unwrap();
    }
    // What is wrong: the good document with one replacement.
    both_reject(
        &drafts,
        ("t.test.yaml", GOOD_TEST),
        &[("suite.yaml", SUITE), ("m.yaml", CONFIG_MAP)],
        &[
            ("unknown key", "hold: 2s", "hodl: 2s"),
            (
                "two actions",
                "  - pause: look",
                "  - pause: look\n    sleep: 1s",
            ),
            ("no action", "  - pause: look", "  - name: nothing"),
            ("consecutive 0", "consecutive: 3", "consecutive: 0"),
            ("duration without unit", "hold: 2s", "hold: \"2\""),
            ("status type", "status: [200, 204]", "status: abc"),
            ("kind", "kind: Test", "kind: Suite"),
            ("apiVersion", "gwtest/v1alpha1", "gwtest/v1"),
            (
                "two text matches",
                "{equals: \"hi\\n\"}",
                "{equals: a, contains: b}",
            ),
            ("span kind", "kind: server", "kind: serverr"),
            ("missing name", "name: good\n", ""),
            (
                "cel not a list of strings",
                "cel: [response.status == 200]",
                "cel: {a: 1}",
            ),
        ],
    );
}

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n";

/// Each `(what, from, to)` makes a variant of `doc` (its first `from` replaced) that every
/// schema of `schemas` and `gwtest validate` (exit 2) reject; `doc` is written with `beside`.
fn both_reject(
    schemas: &[Compiled],
    (file, doc): (&str, &str),
    beside: &[(&str, &str)],
    bad: &[(&str, &str, &str)],
) {
    for (what, from, to) in bad {
        let variant = doc.replacen(from, to, 1);
        assert_ne!(variant, doc, "{what}: the replacement did not apply");
        for c in schemas {
            assert!(
                c.check(&variant).is_err(),
                "{what}: the schema should reject it:\n{variant}"
            );
        }
        let mut files = beside.to_vec();
        files.push((file, &variant));
        let out = validate(&Workspace::with("schema-bad", &files));
        assert_eq!(
            out.code,
            Some(2),
            "{what}: the loader should reject it: {}",
            out.stderr
        );
    }
}

#[test]
fn the_loader_agrees_on_the_good_document() {
    let dir = Workspace::with(
        "schema",
        &[
            ("suite.yaml", SUITE),
            ("t.test.yaml", GOOD_TEST),
            ("m.yaml", CONFIG_MAP),
        ],
    );
    let out = validate(&dir);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn suite_schema_accepts_and_rejects_like_the_loader() {
    let c = compile(schema(&["--suite"]));
    let good = "apiVersion: gwtest/v1alpha1\nkind: Suite\nname: s\nvars:\n  host: example.com\n  n: 3\n  gw:\n    from:\n      resource: {apiVersion: v1, kind: Service, name: gw}\n      path: $.spec.clusterIP\nfixtures: [a.yaml]\ndefaults: {timeout: 10s, consecutive: 2}\nnamespace: per-suite\n";
    let shared = good.replace("per-suite", "shared-ns");
    let fixture = [("a.yaml", CONFIG_MAP)];
    for doc in [good, &shared] {
        c.check(doc).unwrap();
        let mut files = fixture.to_vec();
        files.push(("suite.yaml", doc));
        let out = validate(&Workspace::with("schema-suite", &files));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    both_reject(
        &[c],
        ("suite.yaml", good),
        &fixture,
        &[
            ("namespace", "per-suite", "Per_Suite"),
            ("duration without unit", "timeout: 10s", "timeout: 10"),
            ("unknown key", "fixtures", "fixture"),
            ("kind", "kind: Suite", "kind: Test"),
        ],
    );
}

const FORWARD_SUITE: &str = r#"apiVersion: gwtest/v1alpha1
kind: Suite
name: s
vars:
  gateway:
    port-forward: {service: gw, namespace: gwtest-infra, port: 80, timeout: 60s}
  admin:
    port-forward: {pod: gw-abcde, namespace: gwtest-infra, port: 9000}
diagnostics:
  - logs: {namespace: gwtest-infra, selector: "gateway.networking.k8s.io/gateway-name=gw", since: test, tail: 200}
  - logs: {namespace: gwtest-infra, selector: {app: web}, container: app, since: 5m}
  - events: {}
  - events: {namespace: gwtest-infra}
  - get: {apiVersion: v1, kind: ConfigMap, namespace: gwtest-infra}
  - exec: {command: [kubectl, --kubeconfig, "${kubeconfig}", get, gateways, -A], env: {A: b}}
    timeout: 20s
"#;

/// `port-forward` variables and `diagnostics` collectors: the schema and the loader accept
/// and reject the same documents.
#[test]
fn the_suite_schema_knows_port_forward_and_diagnostics() {
    let c = compile(schema(&["--suite"]));
    c.check(FORWARD_SUITE).unwrap();
    let dir = Workspace::with("schema-forward", &[("suite.yaml", FORWARD_SUITE)]);
    let out = validate(&dir);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    both_reject(
        &[c],
        ("suite.yaml", FORWARD_SUITE),
        &[],
        &[
            (
                "service and pod",
                "{service: gw, namespace",
                "{service: gw, pod: p, namespace",
            ),
            ("no target", "{service: gw, namespace", "{namespace"),
            ("no port", ", port: 80, timeout", ", timeout"),
            ("port 0", "port: 80", "port: 0"),
            ("unknown key", "timeout: 60s}", "timeout: 60s, local: 8080}"),
            ("since", "since: test,", "since: yesterday,"),
            (
                "two collectors",
                "  - events: {}\n",
                "  - events: {}\n    exec: {command: [x]}\n",
            ),
            ("no collector", "  - events: {}\n", "  - timeout: 1s\n"),
            (
                "unknown collector",
                "  - events: {}\n",
                "  - describe: {}\n",
            ),
            ("collector key", "tail: 200", "tial: 200"),
        ],
    );
}
