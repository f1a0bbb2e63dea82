//! The demo gateway's spans, received by gwtest's own OTLP receiver: names, kinds,
//! attributes, parent/child, a continued `traceparent`, OTLP/gRPC and OTLP/HTTP, and a data
//! plane that does not care whether the endpoint is up.

mod support_gateway;

use std::sync::Arc;
use std::time::Duration;

use gwtest::suite::model::SpanKind;
use gwtest::traces::store::{AttrValue, Selection, SpanStatus, StoredSpan};
use gwtest_sandbox::gateway::model;
use support_gateway::*;

const LIMIT: Duration = Duration::from_secs(60);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(s: &StoredSpan, k: &str) -> AttrValue {
    s.attribute(k)
        .cloned()
        .unwrap_or_else(|| panic!("span {:?} has no attribute {k}: {:?}", s.name, s.attributes))
}

fn str_attr(v: &str) -> AttrValue {
    AttrValue::Str(v.into())
}

/// A W3C traceparent, sampled or not.
fn traceparent(trace: [u8; 16], parent: [u8; 8], sampled: bool) -> String {
    let flags = if sampled { "01" } else { "00" };
    format!("00-{}-{}-{flags}", hex(&trace), hex(&parent))
}

/// `GET http://{addr}{path}` with `host` and `traceparent`.
async fn traced(env: &Env, addr: &str, path: &str, host: &str, traceparent: &str) -> Response {
    env.request(
        "GET",
        &format!("http://{addr}{path}"),
        &[("host", host), ("traceparent", traceparent)],
    )
    .await
}

async fn trace_spans(env: &Env, trace: [u8; 16], n: usize) -> Vec<Arc<StoredSpan>> {
    env.wait(
        &format!("{n} spans in trace {}", hex(&trace)),
        Duration::from_secs(10),
        || async {
            let spans = env.store.trace(&trace);
            (spans.len() >= n).then_some(spans)
        },
    )
    .await
}

async fn setup(env: &Env) -> String {
    let addr = env.fixture_gateway().await;
    env.namespace("apps");
    env.apply(&service_yaml("apps", "svc", false));
    env.apply(&route_yaml("apps", "example", "  hostnames: [example.com]\n  rules:\n    - matches: [{path: {type: PathPrefix, value: /example}}]\n      backendRefs: [{name: svc, port: 8080}]\n    - matches: [{path: {type: PathPrefix, value: /broken}}]\n      backendRefs: [{name: missing, port: 8080}]"));
    env.apply(&svc_route_yaml("apps", "renamed", "renamed.test").replace(
        "namespace: apps}",
        "namespace: apps, annotations: {demo.gwtest.dev/span-name: error-vhost}}",
    ));
    env.request_until(
        200,
        "GET",
        &format!("http://{addr}/example"),
        &[("host", "example.com")],
    )
    .await;
    env.host_until(200, &addr, "renamed.test").await;
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_incoming_trace() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = setup(env).await;
        let trace = [0x4b; 16];
        let parent = [0x0a; 8];
        let tp = traceparent(trace, parent, true);
        let r = traced(env, &addr, "/example/x?q=1", "example.com", &tp).await;
        assert_eq!(r.status, 200);
        let spans = trace_spans(env, trace, 2).await;
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let server = spans
            .iter()
            .find(|s| s.kind == Some(SpanKind::Server))
            .expect("a server span");
        let child = spans
            .iter()
            .find(|s| s.kind == Some(SpanKind::Internal))
            .expect("an internal span");
        assert_eq!(&*server.name, "GET /example");
        assert_eq!(server.parent_span_id, Some(parent));
        assert_eq!(server.service.as_deref(), Some("demo-gateway"));
        assert_eq!(attr(server, "http.request.method"), str_attr("GET"));
        assert_eq!(attr(server, "url.path"), str_attr("/example/x"));
        assert_eq!(attr(server, "http.route"), str_attr("/example"));
        assert_eq!(
            attr(server, "http.response.status_code"),
            AttrValue::Int(200)
        );
        assert_eq!(attr(server, "server.address"), str_attr("example.com"));
        assert_eq!(server.status, SpanStatus::Unset);
        assert_eq!(&*child.name, "route example");
        assert_eq!(child.parent_span_id, Some(server.span_id));
        assert_eq!(child.service.as_deref(), Some("demo-gateway"));
        assert_eq!(attr(child, "route.namespace"), str_attr("apps"));
        assert!(server.start_unix_nano <= server.end_unix_nano);

        // A 500 is an error span; the span-name annotation renames the server span; nothing
        // matched is a 404.
        let (t2, t3, t4) = ([0x5c; 16], [0x6d; 16], [0x7e; 16]);
        for (t, path, host, status) in [
            (t2, "/broken", "example.com", 500),
            (t3, "/a", "renamed.test", 200),
            (t4, "/nothing", "nowhere.test", 404),
        ] {
            let r = traced(env, &addr, path, host, &traceparent(t, parent, true)).await;
            assert_eq!(r.status, status, "{path} on {host}: {}", r.body);
        }
        let broken = trace_spans(env, t2, 2).await;
        let s = broken
            .iter()
            .find(|s| s.kind == Some(SpanKind::Server))
            .unwrap();
        assert_eq!(&*s.name, "GET /broken");
        assert_eq!(s.status, SpanStatus::Error);
        assert_eq!(attr(s, "http.response.status_code"), AttrValue::Int(500));
        let renamed = trace_spans(env, t3, 2).await;
        assert!(
            renamed
                .iter()
                .any(|s| &*s.name == "error-vhost" && s.kind == Some(SpanKind::Server)),
            "{renamed:#?}"
        );
        assert!(renamed.iter().any(|s| &*s.name == "route renamed"));
        // Nothing matched: one server span named by the method only, no route span.
        let unmatched = trace_spans(env, t4, 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let unmatched_all = env.store.trace(&t4);
        assert_eq!(unmatched_all.len(), 1, "{unmatched_all:#?}");
        assert_eq!(&*unmatched[0].name, "GET");
        assert!(unmatched[0].attribute("http.route").is_none());

        // Without a traceparent: a new trace, the server span a root.
        let before = env.store.position();
        env.request(
            "GET",
            &format!("http://{addr}/example"),
            &[("host", "example.com")],
        )
        .await;
        let fresh = env
            .wait(
                "spans of a request without traceparent",
                Duration::from_secs(10),
                || async {
                    let s = env.store.select(&Selection::Since(before));
                    (s.spans.len() >= 2).then_some(s.spans)
                },
            )
            .await;
        let root = fresh
            .iter()
            .find(|s| s.span.kind == Some(SpanKind::Server))
            .unwrap();
        assert_eq!(root.span.parent_span_id, None);
        assert!(![trace, t2, t3, t4].contains(&root.span.trace_id));
        let child = fresh
            .iter()
            .find(|s| s.span.kind == Some(SpanKind::Internal))
            .unwrap();
        assert_eq!(child.span.trace_id, root.span.trace_id);
        assert_eq!(
            child.parent.as_ref().map(|p| p.span_id),
            Some(root.span.span_id)
        );

        // An unsampled parent: nothing recorded.
        let t5 = [0x11; 16];
        let tp5 = traceparent(t5, parent, false);
        traced(env, &addr, "/example", "example.com", &tp5).await;
        traced(env, &addr, "/example", "example.com", &tp).await;
        trace_spans(env, trace, 4).await;
        assert!(env.store.trace(&t5).is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_over_otlp_http() {
    let otlp_http = Options {
        otlp_http: true,
        ..Options::default()
    };
    Env::run(LIMIT, otlp_http, async |env| {
        let addr = setup(env).await;
        let trace = [0x21; 16];
        let tp = traceparent(trace, [0x31; 8], true);
        traced(env, &addr, "/example", "example.com", &tp).await;
        let spans = trace_spans(env, trace, 2).await;
        assert!(spans.iter().any(|s| &*s.name == "GET /example"));
        assert!(spans.iter().any(|s| &*s.name == "route example"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_costs_spans_not_requests() {
    bounded(LIMIT, async {
        // A port nothing listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let env = Env::start_with(Options {
            otlp_endpoint: Some(format!("http://127.0.0.1:{closed}")),
            ..Options::default()
        })
        .await;
        let addr = env.fixture_gateway().await;
        env.namespace("apps");
        env.apply(&service_yaml("apps", "svc", false));
        env.apply(&route_yaml(
            "apps",
            "example",
            "  rules: [{backendRefs: [{name: svc, port: 8080}]}]",
        ));
        env.request_until(200, "GET", &format!("http://{addr}/"), &[])
            .await;
        for _ in 0..50 {
            assert_eq!(
                env.request("GET", &format!("http://{addr}/"), &[])
                    .await
                    .status,
                200
            );
        }
        let gw = env.gateway.as_ref().unwrap();
        env.wait(
            "failed exports to be counted",
            Duration::from_secs(10),
            || async {
                let (queued, _, exported, failed) = gw.span_counts();
                (queued >= 100 && failed > 0 && exported == 0).then_some(())
            },
        )
        .await;
        assert_eq!(env.store.total_received(), 0);
        let started = std::time::Instant::now();
        env.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown took {:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_no_spans() {
    bounded(LIMIT, async {
        gwtest::install_crypto_provider();
        let api = gwtest_sandbox::apiserver::ApiServer::start(Default::default())
            .await
            .unwrap();
        seed(&api);
        let client = kube::Client::try_from(api.kube_config()).unwrap();
        let gw = gwtest_sandbox::gateway::DemoGateway::start(client.clone(), Default::default())
            .await
            .unwrap();
        for doc in gwtest_sandbox::parse_manifests(GATEWAY_YAML).unwrap() {
            api.apply_manifest(doc).unwrap();
        }
        let api_gw: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(client, "gwtest-infra", &model::gateway_ar());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let o = api_gw.get("gw").await.unwrap();
            if let Some(a) = o
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("demo.gwtest.dev/address"))
            {
                break a.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no address");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(gw.span_counts(), (0, 0, 0, 0));
        gw.shutdown().await;
        api.shutdown().await;
    })
    .await;
}
