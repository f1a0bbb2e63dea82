//! The demo gateway's fault switches (SCENARIOS S1–S5), each through a real `demo-faults`
//! ConfigMap, a real API server and real HTTP: what the fault does, that it stays in its
//! namespace, and what happens when it is switched off.

mod support_gateway;

use std::time::{Duration, Instant};

use gwtest_sandbox::gateway::model;
use serde_json::json;
use support_gateway::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Sample `host` for `d`: every answer's status must be `status`.
async fn holds(env: &Env, addr: &str, host: &str, status: u16, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let r = env.host(addr, host).await;
        assert_eq!(r.status, status, "{host}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A client that gives up after 500 ms, to tell a slow or hanging answer.
fn impatient() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Wait until `client`'s requests to `url` with `host` time out.
async fn wait_timeouts(env: &Env, client: &reqwest::Client, url: &str, host: &str, what: &str) {
    env.wait(what, Duration::from_secs(10), || async {
        let r = client.get(url).header("host", host).send().await;
        r.is_err_and(|e| e.is_timeout()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_stale_status_skips_a_recreated_upstream() {
    Env::run(LIMIT, Options::default(), async |env| {
        env.namespace("fixed");
        env.apply(&faults_yaml("fixed", &[("stale-status", "true")]));
        env.apply(&service_yaml("fixed", "example-svc", true));
        let first = env.wait_upstream_accepted("fixed", "example-svc").await;
        env.recreate_service("fixed", "example-svc").await;
        let svc_uid = env
            .get(&model::service_ar(), "fixed", "example-svc")
            .await
            .expect("the re-created Service")["metadata"]["uid"]
            .clone();
        // The Upstream of the new Service (owned by its uid): a controller working from a
        // cache may first re-create one for the old Service, which garbage collection removes.
        let second = env
            .wait_object(
                &model::upstream_ar(),
                "fixed",
                "example-svc",
                "the re-created Upstream",
                |o| {
                    o["metadata"]["uid"] != first["metadata"]["uid"]
                        && o["metadata"]["ownerReferences"][0]["uid"] == svc_uid
                },
            )
            .await;
        // Never gets status while the fault is on (a spec change included).
        env.merge(
            &model::service_ar(),
            "fixed",
            "example-svc",
            json!({"spec": {"ports": [{"port": 9999}]}}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = env
            .get(&model::upstream_ar(), "fixed", "example-svc")
            .await
            .unwrap();
        assert_eq!(
            now["metadata"]["uid"], second["metadata"]["uid"],
            "second: {second}\nnow: {now}"
        );
        assert_eq!(
            now["spec"]["port"], 9999,
            "the spec is still kept up to date"
        );
        assert!(now.get("status").is_none(), "{}", now["status"]);

        // A different name in the same namespace is not affected.
        env.apply(&service_yaml("fixed", "other-svc", true));
        env.wait_upstream_accepted("fixed", "other-svc").await;

        // Switched off: the cache's uid check is back and the status is written.
        env.apply(&faults_yaml("fixed", &[("stale-status", "false")]));
        env.wait_upstream_accepted("fixed", "example-svc").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_slow_delays_responses_in_its_namespace() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = env.serve_routes("s2", false, &["slow"]).await;
        env.serve_routes("calm", false, &["calm"]).await;

        env.apply(&faults_yaml("s2", &[("slow", "1500ms")]));
        let tight = impatient();
        let url = format!("http://{addr}/");
        wait_timeouts(
            env,
            &tight,
            &url,
            "slow.test",
            "requests to time out at 500ms",
        )
        .await;
        let started = Instant::now();
        let r = env.host(&addr, "slow.test").await;
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "answered after {:?}",
            started.elapsed()
        );
        // Another namespace's route is not slowed.
        let r = tight
            .get(&url)
            .header("host", "calm.test")
            .send()
            .await
            .expect("calm answers in time");
        assert_eq!(r.status(), 200);

        // Nothing matched: the Gateway's namespace decides.
        env.apply(&faults_yaml("gwtest-infra", &[("slow", "600ms")]));
        env.wait(
            "unmatched requests to be slow",
            Duration::from_secs(10),
            || async {
                let started = Instant::now();
                let r = env.host(&addr, "nothing.test").await;
                (r.status == 404 && started.elapsed() >= Duration::from_millis(600)).then_some(())
            },
        )
        .await;

        env.delete(&model::config_map_ar(), "s2", "demo-faults")
            .await;
        env.wait(
            "requests to be fast again",
            Duration::from_secs(10),
            || async {
                tight
                    .get(&url)
                    .header("host", "slow.test")
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
            },
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_fail_closed_recovery_only_brings_back_modified_routes() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = env.serve_routes("s3", false, &["a", "b"]).await;
        let other = env.serve_routes("bystander", false, &["c"]).await;
        assert_eq!(addr, other);

        env.apply(&faults_yaml("s3", &[("fail-closed", "true")]));
        let r = env.host_until(503, &addr, "a.test").await;
        assert!(r.body.contains("fail-closed"), "{}", r.body);
        assert_eq!(env.host(&addr, "b.test").await.status, 503);
        assert_eq!(env.host(&addr, "c.test").await.status, 200);

        // Recovery: nothing serves until modified.
        env.apply(&faults_yaml("s3", &[("fail-closed", "false")]));
        env.host_until(404, &addr, "a.test").await;
        holds(env, &addr, "b.test", 404, Duration::from_millis(300)).await;
        // ... while the status still says all is well.
        let b = env.get(&model::http_route_ar(), "s3", "b").await.unwrap();
        assert!(route_condition(&b, "Accepted", "True"), "{}", b["status"]);

        // A modified route serves again; the other stays 404.
        env.merge(&model::http_route_ar(), "s3", "a", json!({"spec": {"rules": [{"backendRefs": [{"name": "svc", "port": 8080, "weight": 2}]}]}})).await;
        env.host_until(200, &addr, "a.test").await;
        holds(env, &addr, "b.test", 404, Duration::from_millis(300)).await;
        holds(env, &addr, "a.test", 200, Duration::from_millis(300)).await;
        // A label is not a modification (no new generation).
        env.merge(&model::http_route_ar(), "s3", "b", json!({"metadata": {"labels": {"touched": "yes"}}})).await;
        holds(env, &addr, "b.test", 404, Duration::from_millis(300)).await;
        // A route made after the recovery serves.
        env.apply(&svc_route_yaml("s3", "new", "new.test"));
        env.host_until(200, &addr, "new.test").await;
        // Removing the ConfigMap changes nothing for b; modifying it does.
        env.delete(&model::config_map_ar(), "s3", "demo-faults").await;
        holds(env, &addr, "b.test", 404, Duration::from_millis(300)).await;
        env.merge(&model::http_route_ar(), "s3", "b", json!({"spec": {"hostnames": ["b.test", "b2.test"]}})).await;
        env.host_until(200, &addr, "b.test").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_hang_never_answers_and_stops_status_writes() {
    bounded(LIMIT, async {
        let env = Env::start().await;
        let addr = env.serve_routes("s4", false, &["stuck"]).await;
        env.apply(&faults_yaml("s4", &[("hang", "true")]));
        let tight = impatient();
        let url = format!("http://{addr}/");
        wait_timeouts(&env, &tight, &url, "stuck.test", "requests to hang").await;
        // The connection is accepted: a raw client connects, sends, and reads nothing.
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connects");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(b"GET / HTTP/1.1\r\nhost: stuck.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(500), conn.read(&mut buf))
                .await
                .is_err(),
            "no byte comes back"
        );
        // No status for a new route in that namespace.
        env.apply(&svc_route_yaml("s4", "late", "late.test"));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let late = env
            .get(&model::http_route_ar(), "s4", "late")
            .await
            .unwrap();
        assert!(our_parent(&late).is_none(), "{}", late["status"]);

        env.apply(&faults_yaml("s4", &[("hang", "false")]));
        env.wait_route("s4", "late", "Accepted", "True").await;
        env.host_until(200, &addr, "stuck.test").await;
        // Shutting down with a hanging request still open is bounded.
        env.apply(&faults_yaml("s4", &[("hang", "true")]));
        wait_timeouts(&env, &tight, &url, "stuck.test", "requests to hang again").await;
        let pending = tokio::spawn({
            let http = env.http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .header("host", "stuck.test")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        env.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "shutdown took {:?}",
            started.elapsed()
        );
        let outcome = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("the hanging request ends")
            .unwrap();
        assert_ne!(outcome.ok(), Some(200));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_flap_reverts_a_route_after_it_served() {
    Env::run(LIMIT, Options::default(), async |env| {
        let addr = env.serve_routes("s5", false, &["flappy"]).await;
        env.apply(&faults_yaml("s5", &[("flap", "800ms")]));
        // Let the fault arrive before the first request it counts from.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let first_sent = Instant::now();
        let r = env.host(&addr, "flappy.test").await;
        assert_eq!(r.status, 200, "right once");
        let reverted = loop {
            let r = env.host(&addr, "flappy.test").await;
            if r.status == 404 {
                break Instant::now();
            }
            assert_eq!(r.status, 200);
            assert!(
                first_sent.elapsed() < Duration::from_secs(10),
                "never reverted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            reverted - first_sent >= Duration::from_millis(800),
            "reverted after {:?}",
            reverted - first_sent
        );
        holds(env, &addr, "flappy.test", 404, Duration::from_millis(500)).await;
        let route = env.wait_route("s5", "flappy", "Accepted", "Unknown").await;
        assert_eq!(
            cond(&our_parent(&route).unwrap()["conditions"], "Accepted")["reason"],
            "Pending"
        );

        env.delete(&model::config_map_ar(), "s5", "demo-faults")
            .await;
        env.host_until(200, &addr, "flappy.test").await;
        env.wait_route("s5", "flappy", "Accepted", "True").await;
        holds(env, &addr, "flappy.test", 200, Duration::from_millis(1000)).await;
    })
    .await;
}
