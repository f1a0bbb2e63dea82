//! The demo gateway when its API server goes away and comes back empty, when watches expire
//! (410), and when it is shut down mid-request.

mod support_gateway;

use std::net::SocketAddr;
use std::time::Duration;

use gwtest_sandbox::gateway::model;
use support_gateway::*;

const LIMIT: Duration = Duration::from_secs(90);

fn plain() -> Options {
    Options {
        plain_http_on: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Options::default()
    }
}

/// Route `r.test` in `ns` to a discovered Service, serving.
async fn serve_route(env: &Env, ns: &str) -> String {
    env.serve_routes(ns, true, &["r"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_api_server_restarts() {
    bounded(LIMIT, async {
        let mut env = Env::start_with(plain()).await;
        serve_route(&env, "apps").await;
        env.restart_api(Duration::ZERO).await;
        // Everything is gone from the new server; the gateway re-lists and follows it.
        let addr = serve_route(&env, "apps").await;
        let gw = env
            .wait_object(
                &model::gateway_ar(),
                "gwtest-infra",
                "gw",
                "status from the gateway",
                |o| o.pointer("/status/listeners/0/attachedRoutes") == Some(&serde_json::json!(1)),
            )
            .await;
        assert_eq!(
            gw["metadata"]["annotations"]["demo.gwtest.dev/address"].as_str(),
            Some(addr.as_str())
        );
        env.wait_object(&model::upstream_ar(), "apps", "svc", "rediscovered", |o| {
            o.get("status").is_some()
        })
        .await;
        // And once more, with the server gone for longer than the first backoff steps.
        env.restart_api(Duration::from_secs(2)).await;
        serve_route(&env, "apps").await;
        env.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_expired_watches() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = serve_route(env, "apps").await;
        env.api.compact_history();
        env.apply(&svc_route_yaml("apps", "after", "after.test"));
        env.wait_route("apps", "after", "Accepted", "True").await;
        env.host_until(200, &addr, "after.test").await;
        env.apply(&faults_yaml("apps", &[("fail-closed", "true")]));
        env.host_until(503, &addr, "after.test").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_its_api_server_going_away_for_good() {
    bounded(LIMIT, async {
        let env = Env::start_with(plain()).await;
        let addr = serve_route(&env, "apps").await;
        let Env {
            api,
            gateway,
            receiver,
            http,
            ..
        } = env;
        api.shutdown().await;
        // The data plane keeps serving what it last knew.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = http
            .get(format!("http://{addr}/"))
            .header("host", "r.test")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let started = std::time::Instant::now();
        gateway.unwrap().shutdown().await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "shutdown took {:?}",
            started.elapsed()
        );
        receiver.unwrap().shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_without_the_optional_crds() {
    // A cluster with the Gateway API but neither ReferenceGrant nor the demo's Upstream:
    // Gateways and routes still work (after a grace period for the missing list).
    let without_optional_crds = Options {
        without_crds: vec![
            "referencegrants.gateway.networking.k8s.io",
            "upstreams.demo.gwtest.dev",
        ],
        ..Options::default()
    };
    Env::run(LIMIT, without_optional_crds, async |env| {
        let addr = serve_route(env, "apps").await;
        env.wait_object(
            &model::http_route_ar(),
            "apps",
            "r",
            "Accepted, refs resolved",
            |o| {
                route_condition(o, "Accepted", "True") && route_condition(o, "ResolvedRefs", "True")
            },
        )
        .await;
        assert_eq!(env.host(&addr, "r.test").await.status, 200);
        // What it cannot watch is reported, and only that.
        let errors = env.gateway.as_ref().unwrap().watch_errors();
        assert_eq!(
            errors.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["referencegrants", "upstreams"],
            "{errors:?}"
        );
        // Installing the CRD clears it, and discovery starts.
        let crd = gwtest_sandbox::parse_manifests(gwtest_sandbox::DEMO_CRDS).unwrap();
        env.api.apply_manifest(crd[0].clone()).unwrap();
        env.wait(
            "the upstreams watch to recover",
            Duration::from_secs(15),
            || async {
                (!env
                    .gateway
                    .as_ref()
                    .unwrap()
                    .watch_errors()
                    .contains_key("upstreams"))
                .then_some(())
            },
        )
        .await;
        env.wait_object(
            &model::upstream_ar(),
            "apps",
            "svc",
            "discovered once the CRD is there",
            |o| o.get("status").is_some(),
        )
        .await;
    })
    .await;
}
