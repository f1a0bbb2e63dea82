//! The sandbox's API server with the official Gateway API v1.6.1 standard CRDs, over HTTP:
//! every published standard example (tests/data/gateway-api-examples, vendored unmodified)
//! is accepted, and for every CRD of the channel at least three invalid variants of an
//! example are rejected with the shape a real kube-apiserver gives them (golden 07 and 09:
//! `kind: Status`, 422 Invalid, the causes' field, reason and message, the `<nil>` cause when
//! schema errors stop the CEL rules): a schema error, a CEL rule (where the CRD has rules) and
//! an update (the transition rule for GatewayClass).

mod support;

use std::path::{Path, PathBuf};

use gwtest_sandbox::apiserver::ApiServer;
use serde_json::{Value, json};

const GROUP: &str = "gateway.networking.k8s.io";

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gateway-api-examples")
}

/// Plural and scope of the kinds the examples hold.
fn resource(kind: &str) -> Option<(&'static str, bool)> {
    Some(match kind {
        "GatewayClass" => ("gatewayclasses", false),
        "Gateway" => ("gateways", true),
        "HTTPRoute" => ("httproutes", true),
        "GRPCRoute" => ("grpcroutes", true),
        "ReferenceGrant" => ("referencegrants", true),
        "BackendTLSPolicy" => ("backendtlspolicies", true),
        "ListenerSet" => ("listenersets", true),
        "TCPRoute" => ("tcproutes", true),
        "TLSRoute" => ("tlsroutes", true),
        "UDPRoute" => ("udproutes", true),
        "Namespace" => ("namespaces", false),
        "Service" => ("services", true),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        _ => return None,
    })
}

struct Api {
    server: ApiServer,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Api {
    async fn start() -> Api {
        let (server, http) = support::apiserver::plain_http().await;
        gwtest_sandbox::register_crds(&server).expect("CRDs");
        Api { server, http }
    }

    fn path(obj: &Value, name: Option<&str>) -> String {
        let kind = obj["kind"].as_str().expect("kind");
        let api_version = obj["apiVersion"].as_str().expect("apiVersion");
        let (plural, namespaced) = resource(kind).unwrap_or_else(|| panic!("kind {kind}"));
        let prefix = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let ns = if namespaced {
            format!(
                "/namespaces/{}",
                obj["metadata"]["namespace"].as_str().unwrap_or("default")
            )
        } else {
            String::new()
        };
        let name = name.map(|n| format!("/{n}")).unwrap_or_default();
        format!("{prefix}{ns}/{plural}{name}")
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Answer {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(self.server.token())
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let body = resp.json().await.expect("JSON");
        Answer { status, body }
    }

    async fn create(&self, obj: &Value) -> Answer {
        let path = format!("{}?fieldValidation=Strict", Api::path(obj, None));
        self.send(reqwest::Method::POST, &path, obj).await
    }

    async fn update(&self, obj: &Value) -> Answer {
        let name = obj["metadata"]["name"].as_str().expect("name");
        let path = format!("{}?fieldValidation=Strict", Api::path(obj, Some(name)));
        self.send(reqwest::Method::PUT, &path, obj).await
    }

    async fn delete(&self, obj: &Value) {
        let name = obj["metadata"]["name"].as_str().expect("name");
        let a = self
            .send(
                reqwest::Method::DELETE,
                &Api::path(obj, Some(name)),
                &json!({}),
            )
            .await;
        assert!(a.status == 200 || a.status == 404, "{}", a.body);
    }
}

fn read_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("example");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("example YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            example_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn every_published_standard_example_is_accepted() {
    let api = Api::start().await;
    let mut files = Vec::new();
    example_files(&examples_dir(), &mut files);
    assert!(files.len() > 70, "{} example files", files.len());
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for file in &files {
        let docs = read_docs(file);
        let mut created = Vec::new();
        // Namespaces first (an example may create the one it uses), then the rest.
        let (namespaces, objects): (Vec<&Value>, Vec<&Value>) =
            docs.iter().partition(|d| d["kind"] == "Namespace");
        for ns in &namespaces {
            let a = api.create(ns).await;
            assert!(
                a.status == 201 || a.status == 409,
                "{}: {}",
                file.display(),
                a.body
            );
        }
        for obj in &objects {
            if let Some(n) = obj["metadata"]["namespace"].as_str() {
                let _ = api
                    .create(
                        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}),
                    )
                    .await;
            }
            let a = api.create(obj).await;
            assert_eq!(
                a.status,
                201,
                "{} {} {}: {}",
                file.display(),
                obj["kind"],
                obj["metadata"]["name"],
                a.body
            );
            *kinds
                .entry(obj["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
            created.push(*obj);
        }
        for obj in created.into_iter().rev() {
            api.delete(obj).await;
        }
    }
    for kind in [
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "ReferenceGrant",
        "BackendTLSPolicy",
        "ListenerSet",
        "TCPRoute",
        "TLSRoute",
        "UDPRoute",
    ] {
        assert!(
            kinds.get(kind).is_some_and(|n| *n > 0),
            "no {kind} example: {kinds:?}"
        );
    }
    api.server.shutdown().await;
}

/// The document of `kind` in an example file.
fn example(file: &str, kind: &str) -> Value {
    read_docs(&examples_dir().join(file))
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {file}"))
}

/// The 422 a real server gives: the whole `kind: Status` body.
fn invalid(kind: &str, name: &str, causes: &[(&str, &str, &str)]) -> Value {
    let rendered: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
    let joined = if rendered.len() == 1 {
        rendered[0].clone()
    } else {
        format!("[{}]", rendered.join(", "))
    };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind}.{GROUP} {name:?} is invalid: {joined}"),
        "reason": "Invalid",
        "details": {"name": name, "group": GROUP, "kind": kind,
            "causes": causes.iter().map(|(f, r, m)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>()},
        "code": 422,
    })
}

const NOT_CHECKED: (&str, &str, &str) = (
    "<nil>",
    "FieldValueInvalid",
    "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
);

/// One invalid variant: a change to a valid example, made on create or on an update of the
/// created example.
struct Case {
    what: &'static str,
    update: bool,
    change: fn(&mut Value),
    causes: Vec<(&'static str, &'static str, &'static str)>,
}

async fn check(api: &Api, base: &Value, cases: Vec<Case>) {
    let kind = base["kind"].as_str().unwrap();
    assert!(cases.len() >= 3, "{kind}: at least three invalid variants");
    for case in cases {
        let mut obj = base.clone();
        let name = format!(
            "{}-{}",
            obj["metadata"]["name"].as_str().unwrap(),
            case.what
        );
        obj["metadata"]["name"] = json!(name);
        if case.update {
            let a = api.create(&obj).await;
            assert_eq!(a.status, 201, "{kind} {}: {}", case.what, a.body);
            obj["metadata"]["resourceVersion"] = a.body["metadata"]["resourceVersion"].clone();
        }
        (case.change)(&mut obj);
        let a = if case.update {
            api.update(&obj).await
        } else {
            api.create(&obj).await
        };
        let want = invalid(kind, &name, &case.causes);
        assert_eq!(a.status, 422, "{kind} {}: {}", case.what, a.body);
        assert_eq!(
            a.body, want,
            "{kind} {}:\n ours   {}\n wanted {}",
            case.what, a.body["message"], want["message"]
        );
        api.delete(&obj).await;
    }
}

fn c(
    field: &'static str,
    reason: &'static str,
    message: &'static str,
) -> (&'static str, &'static str, &'static str) {
    (field, reason, message)
}

const INVALID: &str = "FieldValueInvalid";

/// The first listener twice: Gateways and ListenerSets share the listener rules, so the same
/// causes but the one naming the duplicate (`duplicate`).
fn duplicate_listener(duplicate: &'static str) -> Case {
    Case {
        what: "dup",
        update: false,
        change: |o| {
            let l = o["spec"]["listeners"][0].clone();
            o["spec"]["listeners"].as_array_mut().unwrap().push(l);
        },
        causes: vec![
            c("spec.listeners[1]", "FieldValueDuplicate", duplicate),
            c(
                "spec.listeners",
                INVALID,
                "Invalid value: \"array\": Listener name must be unique within the Gateway",
            ),
            c(
                "spec.listeners",
                INVALID,
                "Invalid value: \"array\": Combination of port, protocol and hostname must be unique for each listener",
            ),
        ],
    }
}

#[tokio::test]
async fn invalid_variants_of_every_standard_crd_are_rejected_as_a_real_server_rejects_them() {
    let api = Api::start().await;

    check(&api, &example("basic-http.yaml", "GatewayClass"), vec![
        Case { what: "pattern", update: false,
            change: |o| o["spec"]["controllerName"] = json!("no-slash"),
            causes: vec![c("spec.controllerName", INVALID, r#"Invalid value: "no-slash": spec.controllerName in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$'"#)] },
        Case { what: "too-long", update: false,
            change: |o| o["spec"]["description"] = json!("d".repeat(65)),
            causes: vec![c("spec.description", "FieldValueTooLong", "Too long: may not be longer than 64"), NOT_CHECKED] },
        Case { what: "immutable", update: true,
            change: |o| o["spec"]["controllerName"] = json!("acme.io/other-controller"),
            causes: vec![c("spec.controllerName", INVALID, "Invalid value: \"string\": Value is immutable")] },
    ]).await;

    check(&api, &example("basic-http.yaml", "Gateway"), vec![
        Case { what: "port", update: false,
            change: |o| o["spec"]["listeners"][0]["port"] = json!(70000),
            causes: vec![c("spec.listeners[0].port", INVALID, "Invalid value: 70000: spec.listeners[0].port in body should be less than or equal to 65535")] },
        duplicate_listener("Duplicate value: map[string]interface {}{\"name\":\"http\"}"),
        Case { what: "tls-on-http", update: false,
            change: |o| o["spec"]["listeners"][0]["tls"] = json!({"mode": "Terminate"}),
            causes: vec![
                c("spec.listeners", INVALID, "Invalid value: \"array\": tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"),
                c("spec.listeners[0].tls", INVALID, "Invalid value: \"object\": no such key: certificateRefs evaluating rule: certificateRefs or options must be specified when mode is Terminate")] },
        Case { what: "tls-mode", update: true,
            change: |o| o["spec"]["listeners"][0]["protocol"] = json!("TLS"),
            causes: vec![c("spec.listeners", INVALID, "Invalid value: \"array\": tls mode must be set for protocol TLS")] },
    ]).await;

    check(&api, &example("basic-http.yaml", "HTTPRoute"), vec![
        Case { what: "typed", update: false,
            change: |o| o["spec"]["rules"][0]["matches"] = json!([{"headers": [{"name": "x-a", "value": true}]}]),
            causes: vec![
                c("spec.rules[0].matches[0].headers[0].value", "FieldValueTypeInvalid", "Invalid value: \"boolean\": spec.rules[0].matches[0].headers[0].value in body must be of type string: \"boolean\""),
                NOT_CHECKED] },
        Case { what: "noslash", update: false,
            change: |o| o["spec"]["rules"][0]["matches"] = json!([{"path": {"type": "PathPrefix", "value": "noslash"}}]),
            causes: vec![c("spec.rules[0].matches[0].path", INVALID, "Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']")] },
        Case { what: "filter", update: false,
            change: |o| o["spec"]["rules"][0]["filters"] = json!([{"type": "RequestHeaderModifier"}]),
            causes: vec![c("spec.rules[0].filters[0]", INVALID, "Invalid value: \"object\": filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type")] },
        Case { what: "dotdot", update: true,
            change: |o| o["spec"]["rules"][0]["matches"] = json!([{"path": {"type": "Exact", "value": "/a/../b"}}]),
            causes: vec![c("spec.rules[0].matches[0].path", INVALID, "Invalid value: \"object\": must not contain '/../' when type one of ['Exact', 'PathPrefix']")] },
    ]).await;

    check(&api, &example("basic-grpc.yaml", "GRPCRoute"), vec![
        Case { what: "enum", update: false,
            change: |o| o["spec"]["rules"][0]["matches"][0]["method"]["type"] = json!("Prefix"),
            causes: vec![
                c("spec.rules[0].matches[0].method.type", "FieldValueNotSupported", "Unsupported value: \"Prefix\": supported values: \"Exact\", \"RegularExpression\""),
                NOT_CHECKED] },
        Case { what: "method", update: false,
            change: |o| o["spec"]["rules"][0]["matches"][0]["method"] = json!({"type": "Exact"}),
            causes: vec![c("spec.rules[0].matches[0].method", INVALID, "Invalid value: \"object\": One or both of 'service' or 'method' must be specified")] },
        Case { what: "port", update: true,
            change: |o| { o["spec"]["rules"][0]["backendRefs"][0].as_object_mut().unwrap().remove("port"); },
            causes: vec![c("spec.rules[0].backendRefs[0]", INVALID, "Invalid value: \"object\": Must have port for Service reference")] },
    ]).await;

    check(&api, &example("reference-grant.yaml", "ReferenceGrant"), vec![
        Case { what: "required", update: false,
            change: |o| { o["spec"]["from"][0].as_object_mut().unwrap().remove("kind"); },
            causes: vec![c("spec.from[0].kind", "FieldValueRequired", "Required value")] },
        Case { what: "pattern", update: false,
            change: |o| o["spec"]["from"][0]["namespace"] = json!("Prod"),
            causes: vec![c("spec.from[0].namespace", INVALID, "Invalid value: \"Prod\": spec.from[0].namespace in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'")] },
        Case { what: "empty-to", update: true,
            change: |o| o["spec"]["to"] = json!([]),
            causes: vec![c("spec.to", INVALID, "Invalid value: 0: spec.to in body should have at least 1 items")] },
    ]).await;

    check(&api, &example("backendtlspolicy/backendtlspolicy-ca-certs.yaml", "BackendTLSPolicy"), vec![
        Case { what: "hostname", update: false,
            change: |o| o["spec"]["validation"]["hostname"] = json!("Auth_Example"),
            causes: vec![c("spec.validation.hostname", INVALID, r#"Invalid value: "Auth_Example": spec.validation.hostname in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"#)] },
        Case { what: "both-cas", update: false,
            change: |o| o["spec"]["validation"]["wellKnownCACertificates"] = json!("System"),
            causes: vec![c("spec.validation", INVALID, "Invalid value: \"object\": must not contain both CACertificateRefs and WellKnownCACertificates")] },
        Case { what: "no-ca", update: true,
            change: |o| { o["spec"]["validation"].as_object_mut().unwrap().remove("caCertificateRefs"); },
            causes: vec![c("spec.validation", INVALID, "Invalid value: \"object\": must specify either CACertificateRefs or WellKnownCACertificates")] },
    ]).await;

    let mut listener_set = example("listenerset/listenerset.yaml", "ListenerSet");
    listener_set["metadata"]["namespace"] = json!("default");
    check(&api, &listener_set, vec![
        Case { what: "port", update: false,
            change: |o| o["spec"]["listeners"][0]["port"] = json!(0),
            causes: vec![c("spec.listeners[0].port", INVALID, "Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1")] },
        duplicate_listener("Duplicate value: map[string]interface {}{\"name\":\"first\"}"),
        Case { what: "tls-on-http", update: true,
            change: |o| o["spec"]["listeners"][0]["protocol"] = json!("HTTP"),
            causes: vec![c("spec.listeners", INVALID, "Invalid value: \"array\": tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")] },
    ]).await;

    for (file, kind) in [
        ("tcp-routing/tcp-route.yaml", "TCPRoute"),
        ("udp-routing/udp-route.yaml", "UDPRoute"),
    ] {
        check(&api, &example(file, kind), vec![
            Case { what: "weight", update: false,
                change: |o| o["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(-1),
                causes: vec![c("spec.rules[0].backendRefs[0].weight", INVALID, "Invalid value: -1: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0")] },
            Case { what: "port", update: false,
                change: |o| { o["spec"]["rules"][0]["backendRefs"][0].as_object_mut().unwrap().remove("port"); },
                causes: vec![c("spec.rules[0].backendRefs[0]", INVALID, "Invalid value: \"object\": Must have port for Service reference")] },
            Case { what: "section", update: true,
                change: |o| { let p = json!({"name": o["spec"]["parentRefs"][0]["name"]}); o["spec"]["parentRefs"] = json!([p.clone(), p]); },
                // Neither names a section: consistent (the first rule holds), not unique.
                causes: vec![
                    c("spec.parentRefs", INVALID, "Invalid value: \"array\": sectionName must be unique when parentRefs includes 2 or more references to the same parent")] },
        ]).await;
    }

    check(&api, &example("tls-routing/tls-route.yaml", "TLSRoute"), vec![
        Case { what: "weight", update: false,
            change: |o| o["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(1000001),
            causes: vec![c("spec.rules[0].backendRefs[0].weight", INVALID, "Invalid value: 1000001: spec.rules[0].backendRefs[0].weight in body should be less than or equal to 1000000")] },
        Case { what: "ip", update: false,
            change: |o| o["spec"]["hostnames"] = json!(["10.0.0.1"]),
            causes: vec![c("spec.hostnames", INVALID, "Invalid value: \"array\": Hostnames cannot contain an IP")] },
        Case { what: "port", update: true,
            change: |o| { o["spec"]["rules"][0]["backendRefs"][0].as_object_mut().unwrap().remove("port"); },
            causes: vec![c("spec.rules[0].backendRefs[0]", INVALID, "Invalid value: \"object\": Must have port for Service reference")] },
    ]).await;

    api.server.shutdown().await;
}

#[tokio::test]
async fn unknown_fields_follow_field_validation() {
    let api = Api::start().await;
    let mut obj = example("reference-grant.yaml", "ReferenceGrant");
    obj["spec"]["bogus"] = json!(1);
    let a = api.create(&obj).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "ReferenceGrant in version \"v1\" cannot be handled as a ReferenceGrant: strict decoding error: unknown field \"spec.bogus\"",
            "reason": "BadRequest", "code": 400})
    );
    // Warn (the default): created, pruned, and a Warning header.
    let resp = api
        .http
        .post(format!("{}{}", api.server.url(), Api::path(&obj, None)))
        .bearer_auth(api.server.token())
        .json(&obj)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 201);
    let warning = resp.headers().get("warning").expect("a Warning header");
    assert_eq!(
        warning.to_str().unwrap(),
        "299 - \"unknown field \\\"spec.bogus\\\"\""
    );
    let body: Value = resp.json().await.unwrap();
    assert!(body["spec"].get("bogus").is_none(), "{body}");
    api.server.shutdown().await;
}

#[tokio::test]
async fn patches_and_status_writes_are_validated_too() {
    let api = Api::start().await;
    let route = example("basic-http.yaml", "HTTPRoute");
    let a = api.create(&route).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let path = Api::path(&route, Some("http-app-1"));
    let noslash = (
        "spec.rules[0].matches[0].path",
        INVALID,
        "Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
    );
    let patch = |ct: &'static str, sub: &'static str, body: Value| {
        let url = format!("{}{path}{sub}", api.server.url());
        let req = api
            .http
            .patch(url)
            .bearer_auth(api.server.token())
            .header("content-type", ct)
            .body(body.to_string());
        async move {
            let resp = req.send().await.expect("patch");
            Answer {
                status: resp.status().as_u16(),
                body: resp.json().await.expect("JSON"),
            }
        }
    };
    let merge = json!({"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "noslash"}}]}]}});
    let a = patch("application/merge-patch+json", "", merge).await;
    assert_eq!(a.body, invalid("HTTPRoute", "http-app-1", &[noslash]));
    let json_patch = json!([{"op": "replace", "path": "/spec/rules/0/matches", "value": [{"path": {"type": "PathPrefix", "value": "noslash"}}]}]);
    let a = patch("application/json-patch+json", "", json_patch).await;
    assert_eq!(a.body, invalid("HTTPRoute", "http-app-1", &[noslash]));
    let apply = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "http-app-1"},
        "spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "noslash"}}]}]}});
    let url = format!("{}{path}?fieldManager=test&force=true", api.server.url());
    let resp = api
        .http
        .patch(url)
        .bearer_auth(api.server.token())
        .header("content-type", "application/apply-patch+yaml")
        .body(apply.to_string())
        .send()
        .await
        .expect("apply");
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, invalid("HTTPRoute", "http-app-1", &[noslash]));

    // The status subresource: status is checked, its messages relative to it.
    let status = json!({"status": {"parents": [{"parentRef": {"name": "gw"}, "controllerName": "example.com/demo",
        "conditions": [{"type": "Accepted", "status": "Maybe", "reason": "Accepted", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}});
    let a = patch("application/merge-patch+json", "/status", status).await;
    assert_eq!(
        a.body,
        invalid(
            "HTTPRoute",
            "http-app-1",
            &[
                (
                    "status.parents[0].conditions[0].status",
                    "FieldValueNotSupported",
                    "Unsupported value: \"Maybe\": supported values: \"True\", \"False\", \"Unknown\"",
                ),
                NOT_CHECKED
            ]
        )
    );
    api.server.shutdown().await;
}
