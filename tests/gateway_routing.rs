//! The demo gateway's controller and data plane against a real embedded API server: Gateway
//! and GatewayClass status, address annotations, listener lifecycle, HTTPRoute parents
//! status, and requests through the listener (matching, precedence, filters, echo, errors).

mod support_gateway;

use std::time::Duration;

use gwtest_sandbox::gateway::model;
use serde_json::{Value, json};

use support_gateway::*;

const LIMIT: Duration = Duration::from_secs(60);

/// method, path, headers, the backend that must answer.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_status_address_and_listener_lifecycle() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = env.fixture_gateway().await;
        let gw = env
            .wait_object(&model::gateway_ar(), "gwtest-infra", "gw", "Accepted+Programmed", |o| {
                o.pointer("/status/listeners").is_some()
            })
            .await;
        assert_eq!(gw["metadata"]["generation"], 1);
        for t in ["Accepted", "Programmed"] {
            let c = cond(&gw["status"]["conditions"], t);
            assert_eq!(c["status"], "True", "{t}: {c}");
            assert_eq!(c["observedGeneration"], 1, "{t}: {c}");
            assert!(c["lastTransitionTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{c}");
        }
        assert_eq!(gw["status"]["addresses"], json!([{"type": "IPAddress", "value": "127.0.0.1"}]));
        let l = &gw["status"]["listeners"][0];
        assert_eq!(l["name"], "http");
        assert_eq!(l["attachedRoutes"], 0);
        assert_eq!(l["supportedKinds"], json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]));
        for t in ["Accepted", "Programmed", "ResolvedRefs"] {
            assert_eq!(cond(&l["conditions"], t)["status"], "True", "{t}");
        }
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        assert_eq!(
            gw["metadata"]["annotations"]["demo.gwtest.dev/address-http"].as_str(),
            Some(addr.as_str())
        );
        // Written by server-side apply as demo-gateway.
        assert!(
            gw["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["manager"] == "demo-gateway" && m["operation"] == "Apply"),
            "{}",
            gw["metadata"]["managedFields"]
        );
        let class = env
            .wait_object(&model::gateway_class_ar(), "", "gwtest-demo", "Accepted", |o| {
                o.pointer("/status/conditions/0/reason") == Some(&json!("Accepted"))
            })
            .await;
        assert_eq!(cond(&class["status"]["conditions"], "Accepted")["observedGeneration"], 1);

        // The listener answers (no route yet: 404).
        let r = env.request("GET", &format!("http://{addr}/"), &[]).await;
        assert_eq!(r.status, 404);

        // A spec change: generation 2, status follows, the port stays.
        env.apply(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gwtest-infra}\nspec:\n  gatewayClassName: gwtest-demo\n  listeners:\n    - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}\n    - {name: admin, protocol: HTTP, port: 8081}\n    - {name: tls, protocol: TLS, port: 443, tls: {mode: Passthrough}}\n",
        );
        let gw = env
            .wait_object(&model::gateway_ar(), "gwtest-infra", "gw", "generation 2 status", |o| {
                o["metadata"]["generation"] == 2
                    && o.pointer("/status/conditions/0/observedGeneration") == Some(&json!(2))
                    && o.pointer("/metadata/annotations/demo.gwtest.dev~1address-admin").is_some()
            })
            .await;
        let ann = &gw["metadata"]["annotations"];
        assert_eq!(ann["demo.gwtest.dev/address"].as_str(), Some(addr.as_str()), "the port is stable");
        assert_eq!(ann["demo.gwtest.dev/address-http"].as_str(), Some(addr.as_str()));
        let admin = ann["demo.gwtest.dev/address-admin"].as_str().unwrap().to_string();
        assert_ne!(admin, addr);
        assert!(ann.get("demo.gwtest.dev/address-tls").is_none());
        let accepted = cond(&gw["status"]["conditions"], "Accepted");
        assert_eq!(accepted["reason"], "ListenersNotValid");
        assert_eq!(accepted["status"], "True");
        let tls = gw["status"]["listeners"].as_array().unwrap().iter().find(|l| l["name"] == "tls").unwrap();
        assert_eq!(cond(&tls["conditions"], "Accepted")["reason"], "UnsupportedProtocol");
        assert_eq!(cond(&tls["conditions"], "Programmed")["status"], "False");
        assert_eq!(env.request("GET", &format!("http://{admin}/"), &[]).await.status, 404);

        // Removing a listener closes it and drops its annotation; deleting the Gateway closes all.
        env.apply(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gwtest-infra}\nspec:\n  gatewayClassName: gwtest-demo\n  listeners:\n    - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}\n",
        );
        env.wait_object(&model::gateway_ar(), "gwtest-infra", "gw", "no admin annotation", |o| {
            o.pointer("/metadata/annotations/demo.gwtest.dev~1address-admin").is_none()
                && o.pointer("/status/conditions/0/observedGeneration") == Some(&json!(3))
        })
        .await;
        env.wait("the admin listener to close", Duration::from_secs(5), || async {
            env.try_request("GET", &format!("http://{admin}/"), &[]).await.is_err().then_some(())
        })
        .await;
        env.delete(&model::gateway_ar(), "gwtest-infra", "gw").await;
        env.wait("the http listener to close", Duration::from_secs(5), || async {
            env.try_request("GET", &format!("http://{addr}/"), &[]).await.is_err().then_some(())
        })
        .await;
        assert!(env.gateway.as_ref().unwrap().listeners().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_of_other_classes_are_left_alone() {
    Env::run(LIMIT, Options::default(), async |env| {
        env.namespace("other");
        env.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: someone-else}\nspec: {controllerName: example.com/other}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: theirs, namespace: other}\nspec:\n  gatewayClassName: someone-else\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n");
        let addr = env.fixture_gateway().await;
        assert!(addr.starts_with("127.0.0.1:"));
        let theirs = env.get(&model::gateway_ar(), "other", "theirs").await.unwrap();
        assert_eq!(cond(&theirs["status"]["conditions"], "Accepted")["reason"], "Pending");
        assert!(theirs["metadata"].get("annotations").is_none());
        let class = env.get(&model::gateway_class_ar(), "", "someone-else").await.unwrap();
        assert_eq!(cond(&class["status"]["conditions"], "Accepted")["status"], "Unknown");
        assert_eq!(env.gateway.as_ref().unwrap().listeners().len(), 1);
    })
    .await;
}

fn routes(ns: &str) -> String {
    [
        route_yaml(ns, "root", "  rules: [{backendRefs: [{name: svc-root, port: 8080}]}]"),
        route_yaml(ns, "example", "  hostnames: [example.com]\n  rules:\n    - matches: [{path: {type: PathPrefix, value: /example}}]\n      backendRefs: [{name: svc-a, port: 8080}]\n    - matches: [{path: {type: Exact, value: /example/exact}}]\n      backendRefs: [{name: svc-b, port: 8080}]\n    - matches: [{path: {type: PathPrefix, value: /example}, headers: [{name: X-Version, value: v2}]}]\n      filters:\n        - type: RequestHeaderModifier\n          requestHeaderModifier:\n            set: [{name: x-set, value: overwritten}]\n            add: [{name: x-added, value: \"yes\"}]\n            remove: [x-remove-me]\n        - type: ResponseHeaderModifier\n          responseHeaderModifier: {set: [{name: x-response, value: from-gateway}]}\n      backendRefs: [{name: svc-v2, port: 8080}]\n    - matches: [{path: {type: PathPrefix, value: /example}, method: DELETE}]\n      backendRefs: [{name: svc-delete, port: 8080}]"),
        route_yaml(ns, "wild", "  hostnames: [\"*.example.com\"]\n  rules: [{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: svc-wild, port: 8080}]}]"),
        route_yaml(ns, "missing", "  hostnames: [missing.test]\n  rules: [{backendRefs: [{name: nowhere, port: 8080}]}]"),
    ]
    .join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_by_host_path_header_and_method_with_precedence() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = env.fixture_gateway().await;
        env.namespace("apps");
        for s in [
            "svc-root",
            "svc-a",
            "svc-b",
            "svc-v2",
            "svc-delete",
            "svc-wild",
        ] {
            env.apply(&service_yaml("apps", s, false));
        }
        env.apply(&routes("apps"));
        for name in ["root", "example", "wild"] {
            let r = env
                .wait_object(
                    &model::http_route_ar(),
                    "apps",
                    name,
                    "Accepted and ResolvedRefs",
                    |o| {
                        route_condition(o, "Accepted", "True")
                            && route_condition(o, "ResolvedRefs", "True")
                    },
                )
                .await;
            let p = our_parent(&r).unwrap();
            assert_eq!(p["parentRef"]["name"], "gw");
            assert_eq!(p["parentRef"]["namespace"], "gwtest-infra");
        }
        let missing = env
            .wait_route("apps", "missing", "ResolvedRefs", "False")
            .await;
        let rr = cond(&our_parent(&missing).unwrap()["conditions"], "ResolvedRefs");
        assert_eq!(rr["reason"], "BackendNotFound");
        assert!(rr["message"].as_str().unwrap().contains("nowhere"), "{rr}");
        assert_eq!(
            cond(&our_parent(&missing).unwrap()["conditions"], "Accepted")["status"],
            "True"
        );

        let gw = env
            .wait_object(
                &model::gateway_ar(),
                "gwtest-infra",
                "gw",
                "4 attached routes",
                |o| o.pointer("/status/listeners/0/attachedRoutes") == Some(&json!(4)),
            )
            .await;
        assert_eq!(gw["status"]["listeners"][0]["attachedRoutes"], 4);

        let url = |p: &str| format!("http://{addr}{p}");
        let backend = |r: &Response| r.json()["backend"].as_str().unwrap().to_string();
        let cases: &[Case] = &[
            ("GET", "/example/x", &[("host", "example.com")], "svc-a"),
            ("GET", "/example", &[("host", "example.com:8080")], "svc-a"),
            ("GET", "/example/exact", &[("host", "example.com")], "svc-b"),
            (
                "GET",
                "/example/exact/more",
                &[("host", "example.com")],
                "svc-a",
            ),
            (
                "GET",
                "/example/x",
                &[("host", "example.com"), ("x-version", "v2")],
                "svc-v2",
            ),
            (
                "DELETE",
                "/example/x",
                &[("host", "example.com")],
                "svc-delete",
            ),
            // Header matches outrank the method match? No: method first, then headers.
            (
                "DELETE",
                "/example/x",
                &[("host", "example.com"), ("x-version", "v2")],
                "svc-delete",
            ),
            // Exact path outranks everything below it.
            (
                "GET",
                "/example/exact",
                &[("host", "example.com"), ("x-version", "v2")],
                "svc-b",
            ),
            ("GET", "/examplex", &[("host", "example.com")], "svc-root"),
            (
                "GET",
                "/example/x",
                &[("host", "www.example.com")],
                "svc-wild",
            ),
            ("GET", "/example/x", &[("host", "other.test")], "svc-root"),
        ];
        for (method, path, headers, want) in cases {
            let r = env.request(method, &url(path), headers).await;
            assert_eq!(r.status, 200, "{method} {path} {headers:?}: {}", r.body);
            assert_eq!(backend(&r), *want, "{method} {path} {headers:?}");
        }

        // The echo body.
        let r = env
            .request(
                "GET",
                &url("/example/v?a=1&b=two%20words&a=3"),
                &[
                    ("host", "example.com"),
                    ("x-version", "v2"),
                    ("x-set", "original"),
                    ("x-remove-me", "bye"),
                    ("x-added", "first"),
                ],
            )
            .await;
        let body = r.json();
        assert_eq!(body["path"], "/example/v");
        assert_eq!(body["host"], "example.com");
        assert_eq!(body["method"], "GET");
        assert_eq!(body["namespace"], "apps");
        assert_eq!(body["route"], "example");
        assert_eq!(body["backend"], "svc-v2");
        assert_eq!(body["query"], json!({"a": "1,3", "b": "two words"}));
        assert_eq!(body["headers"]["x-set"], "overwritten");
        assert_eq!(body["headers"]["x-added"], "first,yes");
        assert_eq!(body["headers"]["x-version"], "v2");
        assert!(body["headers"].get("x-remove-me").is_none(), "{body}");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-response"], "from-gateway");
        assert!(
            body["headers"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| *k == k.to_lowercase())
        );

        // A missing backend: 500; nothing matching: 404 (no root route for that host? the root
        // route has no hostnames, so use a path only the hostname-bound routes would take).
        let r = env
            .request("GET", &url("/"), &[("host", "missing.test")])
            .await;
        assert_eq!(r.status, 500, "{}", r.body);
        env.delete(&model::http_route_ar(), "apps", "root").await;
        env.request_until(404, "GET", &url("/nothing"), &[("host", "other.test")])
            .await;

        // The backend appears: ResolvedRefs turns True and the route serves.
        env.apply(&service_yaml("apps", "nowhere", false));
        env.wait_route("apps", "missing", "ResolvedRefs", "True")
            .await;
        let r = env
            .request_until(200, "GET", &url("/"), &[("host", "missing.test")])
            .await;
        assert_eq!(r.json()["backend"], "nowhere");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_status_allowed_routes_section_names_and_other_controllers() {
    Env::run(LIMIT, Options::default(), async |env| {
        env.fixture_gateway().await;
        env.namespace("apps");
        env.namespace("team-a");
        env.apply(&service_yaml("apps", "svc", false));
        // A Gateway that only takes routes from its own namespace, and one by label.
        env.apply("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: private, namespace: gwtest-infra}\nspec:\n  gatewayClassName: gwtest-demo\n  listeners:\n    - {name: http, protocol: HTTP, port: 80}\n    - {name: team, protocol: HTTP, port: 81, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}}\n    - {name: hosted, protocol: HTTP, port: 82, hostname: \"*.internal.test\", allowedRoutes: {namespaces: {from: All}}}\n");
        env.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n");
        env.apply(&route_yaml("apps", "not-allowed", "  rules: [{backendRefs: [{name: svc, port: 8080}]}]").replace("name: gw, namespace: gwtest-infra", "name: private, namespace: gwtest-infra, sectionName: http"));
        env.apply(&route_yaml("apps", "no-section", "  rules: [{backendRefs: [{name: svc, port: 8080}]}]").replace("name: gw, namespace: gwtest-infra", "name: private, namespace: gwtest-infra, sectionName: nope"));
        env.apply(&route_yaml("apps", "bad-host", "  hostnames: [example.com]\n  rules: [{backendRefs: [{name: svc, port: 8080}]}]").replace("name: gw, namespace: gwtest-infra", "name: private, namespace: gwtest-infra, sectionName: hosted"));
        env.apply(&route_yaml("team-a", "by-label", "  rules: [{backendRefs: [{name: svc, namespace: apps, port: 8080}]}]").replace("name: gw, namespace: gwtest-infra", "name: private, namespace: gwtest-infra, sectionName: team"));
        env.apply(&route_yaml("apps", "bad-filter", "  rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 8080}}}], backendRefs: [{name: svc, port: 8080}]}]"));

        let reason = |o: &Value, t: &str| {
            our_parent(o).map(|p| cond(&p["conditions"], t)["reason"].clone())
        };
        for (name, want) in [
            ("not-allowed", "NotAllowedByListeners"),
            ("no-section", "NoMatchingParent"),
            ("bad-host", "NoMatchingListenerHostname"),
            ("bad-filter", "UnsupportedValue"),
        ] {
            let r = env
                .wait_route("apps", name, "Accepted", "False")
                .await;
            assert_eq!(reason(&r, "Accepted"), Some(json!(want)), "{name}: {}", r["status"]);
        }
        // Cross-namespace backend without a ReferenceGrant, then with one.
        let r = env
            .wait_object(&model::http_route_ar(), "team-a", "by-label", "accepted, ref not permitted", |o| {
                route_condition(o, "Accepted", "True") && route_condition(o, "ResolvedRefs", "False")
            })
            .await;
        assert_eq!(reason(&r, "ResolvedRefs"), Some(json!("RefNotPermitted")));
        env.apply("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: from-team-a, namespace: apps}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team-a}]\n  to: [{group: \"\", kind: Service}]\n");
        env.wait_route("team-a", "by-label", "ResolvedRefs", "True")
        .await;
        let private = env
            .wait_object(&model::gateway_ar(), "gwtest-infra", "private", "team listener has a route", |o| {
                o["status"]["listeners"]
                    .as_array()
                    .is_some_and(|ls| ls.iter().any(|l| l["name"] == "team" && l["attachedRoutes"] == 1))
            })
            .await;
        let team_addr = private["metadata"]["annotations"]["demo.gwtest.dev/address-team"].as_str().unwrap().to_string();
        let r = env.request_until(200, "GET", &format!("http://{team_addr}/x"), &[]).await;
        assert_eq!(r.json()["namespace"], "apps");
        assert_eq!(r.json()["route"], "by-label");
        // Not attached to the other listeners.
        let http_addr = private["metadata"]["annotations"]["demo.gwtest.dev/address-http"].as_str().unwrap().to_string();
        assert_eq!(env.request("GET", &format!("http://{http_addr}/x"), &[]).await.status, 404);

        // Another controller's parents entry survives our writes; ours follows a spec change.
        let api = env.dyn_api(&model::http_route_ar(), "apps");
        let mut route = env.get(&model::http_route_ar(), "apps", "not-allowed").await.unwrap();
        let mut parents = route["status"]["parents"].as_array().unwrap().clone();
        parents.push(json!({"parentRef": {"name": "elsewhere"}, "controllerName": "example.com/other",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "observedGeneration": 1, "lastTransitionTime": "2020-01-01T00:00:00Z"}]}));
        route["status"]["parents"] = Value::Array(parents);
        api.replace_status("not-allowed", &Default::default(), &serde_json::from_value(route).unwrap())
            .await
            .expect("another controller writes its status");
        env.merge(&model::http_route_ar(), "apps", "not-allowed", json!({"spec": {"parentRefs": [{"name": "gw", "namespace": "gwtest-infra"}]}})).await;
        let r = env
            .wait_route("apps", "not-allowed", "Accepted", "True")
            .await;
        assert_eq!(r["metadata"]["generation"], 2);
        let parents = r["status"]["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 2, "{parents:?}");
        assert!(parents.iter().any(|p| p["controllerName"] == "example.com/other"));
        assert_eq!(our_parent(&r).unwrap()["parentRef"]["name"], "gw");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_objects_do_not_break_the_gateway() {
    Env::run(LIMIT, Options::default(), async |env| {
        env.namespace("apps");
        // A route whose rules do not parse, a Service with odd ports, a ConfigMap with odd
        // fault values — then a good route must still work.
        env.apply(&route_yaml("apps", "odd", "  rules: [{backendRefs: [{name: svc, port: 8080, weight: 0}], timeouts: {request: 1s}}]\n  hostnames: []"));
        env.apply("apiVersion: v1\nkind: Service\nmetadata: {name: odd, namespace: apps, labels: {demo.gwtest.dev/discover: \"true\"}}\nspec: {ports: [{port: \"not-a-number\"}], selector: {x: \"y\"}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: odd-selector, namespace: apps, labels: {demo.gwtest.dev/discover: \"true\"}}\nspec: {ports: [{port: 80}], selector: {x: true}}\n");
        env.apply(&faults_yaml("apps", &[("slow", "not a duration"), ("hang", "maybe")]));
        let addr = env.fixture_gateway().await;
        env.apply(&service_yaml("apps", "svc", false));
        env.apply(&svc_route_yaml("apps", "good", "good.test"));
        let r = env.host_until(200, &addr, "good.test").await;
        assert_eq!(r.json()["route"], "good");
        // All weights 0: 500 (Gateway API), not a crash.
        let r = env.host(&addr, "other.test").await;
        assert_eq!(r.status, 500, "{}", r.body);
        // The odd Service is discovered as it is.
        let up = env
            .wait_object(&model::upstream_ar(), "apps", "odd", "accepted", |o| {
                o.pointer("/status/conditions/0/status") == Some(&json!("True"))
            })
            .await;
        assert!(up["spec"].get("port").is_none(), "{}", up["spec"]);
        assert_eq!(up["spec"]["ports"][0]["port"], "not-a-number");
        // A selector that is not a string map cannot be copied: that Service is skipped.
        assert!(env.get(&model::upstream_ar(), "apps", "odd-selector").await.is_none());
    })
    .await;
}

/// An HTTPRoute CRD that checks nothing in the spec: what a cluster with an older or
/// hand-made CRD has. The official CRD refuses a route the gateway could not parse.
const UNCHECKED_HTTPROUTE_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: httproutes.gateway.networking.k8s.io}
spec:
  group: gateway.networking.k8s.io
  scope: Namespaced
  names: {plural: httproutes, singular: httproute, kind: HTTPRoute, listKind: HTTPRouteList}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_the_gateway_cannot_parse_is_reported() {
    let without_httproute_crd = Options {
        without_crds: vec!["httproutes.gateway.networking.k8s.io"],
        ..Options::default()
    };
    Env::run(LIMIT, without_httproute_crd, async |env| {
        env.apply(UNCHECKED_HTTPROUTE_CRD);
        env.namespace("apps");
        env.fixture_gateway().await;
        // A route whose rules do not parse is reported, not skipped.
        env.apply(&route_yaml("apps", "unparsable", "  rules: [{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x, value: yes}]}}]}]"));
        let r = env
            .wait_route("apps", "unparsable", "Accepted", "False")
            .await;
        let accepted = cond(&our_parent(&r).unwrap()["conditions"], "Accepted");
        assert_eq!(accepted["reason"], "UnsupportedValue");
        assert!(accepted["message"].as_str().unwrap().contains("invalid spec"), "{accepted}");
    })
    .await;
}
