//! Embedded API server benchmarks (plain timing, `harness = false`):
//! - start-up: `ApiServer::start` (TLS: certificate generation included) until it returns, and
//!   until a kube-rs client got its first answer (`/version` over a fresh TLS connection);
//! - round trip: create a ConfigMap, get it, and receive its ADDED event on an open watch;
//! - the whole sandbox (API server, the Gateway API and demo CRDs, the kubeconfig, the demo
//!   gateway): `Sandbox::start` until it returns, and `gwtest sandbox` from process start to
//!   its `ready` line (what a script waiting on it pays).
//!
//! Run: `cargo bench --bench apiserver`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const STARTS: usize = 20;
const ROUND_TRIPS: usize = 500;

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<4} min {:>7.3} ms  median {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        samples.len(),
        ms(samples[0]),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(pct(0.99)),
        ms(*samples.last().expect("samples"))
    );
}

async fn startup(tls: bool) {
    let mut started = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..STARTS {
        let t0 = Instant::now();
        let server = ApiServer::start(ApiServerConfig {
            tls,
            ..Default::default()
        })
        .await
        .expect("start");
        started.push(t0.elapsed());
        let client = Client::try_from(server.kube_config()).expect("client");
        client.apiserver_version().await.expect("version");
        ready.push(t0.elapsed());
        server.shutdown().await;
    }
    let mode = if tls { "tls" } else { "http" };
    summary(&format!("start-up ({mode}): start() returned"), started);
    summary(
        &format!("start-up ({mode}): first answer to a new client"),
        ready,
    );
}

async fn round_trips() {
    let server = ApiServer::start(ApiServerConfig::default())
        .await
        .expect("start");
    let client = Client::try_from(server.kube_config()).expect("client");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");
    let mut events = cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let mut create_get = Vec::new();
    let mut full = Vec::new();
    for i in 0..ROUND_TRIPS {
        let name = format!("cm-{i}");
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name}, "data": {"i": i.to_string()}}),
        )
        .expect("cm");
        let t0 = Instant::now();
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
        let got = cms.get(&name).await.expect("get");
        assert_eq!(got.name_any(), name);
        create_get.push(t0.elapsed());
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("a watch event in time")
                .expect("the watch is open")
                .expect("a decodable event");
            if let WatchEvent::Added(c) = ev
                && c.name_any() == name
            {
                break;
            }
        }
        full.push(t0.elapsed());
    }
    summary("round trip: create + get", create_get);
    summary("round trip: create + get + watch ADDED", full);
    server.shutdown().await;
}

async fn sandbox_startup() {
    let mut started = Vec::new();
    for _ in 0..STARTS {
        let t0 = Instant::now();
        let s = gwtest_sandbox::Sandbox::start(Default::default())
            .await
            .expect("sandbox");
        started.push(t0.elapsed());
        s.shutdown().await;
    }
    summary("sandbox: Sandbox::start returned", started);
}

fn process_ready() {
    use std::io::{BufRead, BufReader};
    let mut ready = Vec::new();
    for _ in 0..STARTS {
        let t0 = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gwtest"))
            .arg("sandbox")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gwtest sandbox");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.starts_with("ready kubeconfig="), "{line}");
        ready.push(t0.elapsed());
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        child.wait().expect("exit");
    }
    summary("sandbox: `gwtest sandbox` to its ready line", ready);
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        startup(true).await;
        startup(false).await;
        round_trips().await;
        sandbox_startup().await;
    });
    process_ready();
}
