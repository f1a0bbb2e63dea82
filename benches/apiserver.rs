//! Embedded API server benchmarks (plain timing, `harness = false`):
//! - start-up: `ApiServer::start` (TLS: certificate generation included) until it returns, and
//!   until a kube-rs client got its first answer (`/version` over a fresh TLS connection);
//! - round trip: create a ConfigMap, get it, and receive its ADDED event on an open watch;
//! - the whole sandbox (API server, the Gateway API and demo CRDs, the kubeconfig, the demo
//!   gateway): `Sandbox::start` until it returns, and `gwtest sandbox` from process start to
//!   its `ready` line (what a script waiting on it pays);
//! - validation with the official Gateway API CRDs: registering the whole standard channel
//!   (parsing the embedded CRDs and creating them through the API server), compiling every
//!   version's CEL rules (paid once, on first use of a version), the engine alone admitting
//!   the HTTPRoute of `tests/data/httproute-every-rule.yaml` (every field with a CEL rule),
//!   and that route created over HTTPS with `fieldValidation=Strict` by a kube-rs client.
//!
//! Run: `cargo bench --bench apiserver`.

#[path = "../tests/support/mod.rs"]
mod support;

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

/// The namespace `bench`, where the benchmarks create their objects.
async fn create_namespace(client: &Client) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
}

async fn round_trips() {
    let server = ApiServer::start(ApiServerConfig::default())
        .await
        .expect("start");
    let client = Client::try_from(server.kube_config()).expect("client");
    create_namespace(&client).await;
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
        let mut child = support::command(None)
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

const ROUTE: &str = include_str!("../tests/data/httproute-every-rule.yaml");
const CREATES: usize = 500;

async fn crd_registration() {
    let mut parse = Vec::new();
    let mut register = Vec::new();
    for _ in 0..STARTS {
        let server = ApiServer::start(ApiServerConfig {
            tls: false,
            ..Default::default()
        })
        .await
        .expect("start");
        let t0 = Instant::now();
        let crds = gwtest_schema::gateway_api::crds();
        parse.push(t0.elapsed());
        let t1 = Instant::now();
        for crd in crds {
            server.apply_manifest(crd).expect("register");
        }
        register.push(t1.elapsed());
        server.shutdown().await;
    }
    summary("standard channel: parse the embedded CRDs", parse);
    summary("standard channel: register (create) all 10", register);
    let mut compile = Vec::new();
    for _ in 0..5 {
        let mut versions = Vec::new();
        for crd in gwtest_schema::gateway_api::crds() {
            for v in crd["spec"]["versions"].as_array().expect("versions") {
                versions.push(gwtest_schema::VersionSchema::new(
                    v["schema"]["openAPIV3Schema"].clone(),
                ));
            }
        }
        let t0 = Instant::now();
        let mut rules = 0;
        for v in &versions {
            let (ok, errs) = v.compile_rules();
            assert!(errs.is_empty(), "{errs:?}");
            rules += ok;
        }
        compile.push(t0.elapsed());
        assert!(rules > 200, "{rules}");
    }
    summary("standard channel: compile every version's CEL", compile);
}

async fn validated_creates() {
    use gwtest_schema::{Catalog, FieldValidation, Lookup, Write};
    let route: serde_json::Value = serde_saphyr::from_str(ROUTE).expect("route");
    let Lookup::Found(schema) =
        Catalog::with_gateway_api().lookup("gateway.networking.k8s.io/v1", "HTTPRoute")
    else {
        panic!("HTTPRoute")
    };
    schema.compile_rules();
    let w = Write {
        old: None,
        status: false,
        field_validation: FieldValidation::Strict,
    };
    let mut engine = Vec::new();
    for _ in 0..CREATES {
        let mut obj = route.clone();
        let t0 = Instant::now();
        let r = schema.admit(&mut obj, &w);
        engine.push(t0.elapsed());
        assert_eq!(r, Ok(vec![]));
    }
    summary("HTTPRoute, every rule: engine admit", engine);

    let server = ApiServer::start(ApiServerConfig::default())
        .await
        .expect("start");
    gwtest_sandbox::register_crds(&server).expect("CRDs");
    let client = Client::try_from(server.kube_config()).expect("client");
    create_namespace(&client).await;
    let mut creates = Vec::new();
    // The first create compiles HTTPRoute's rules (once): timed apart.
    for i in 0..=CREATES {
        let mut obj = route.clone();
        obj["metadata"]["name"] = json!(format!("route-{i}"));
        let req = http::Request::post(
            "/apis/gateway.networking.k8s.io/v1/namespaces/bench/httproutes?fieldValidation=Strict",
        )
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&obj).expect("json"))
        .expect("request");
        let t0 = Instant::now();
        let created: serde_json::Value = client.request(req).await.expect("create");
        let took = t0.elapsed();
        assert_eq!(created["metadata"]["generation"], 1);
        if i == 0 {
            println!(
                "{:<44} {:>7.3} ms (compiles HTTPRoute v1's rules)",
                "HTTPRoute, every rule: first create",
                took.as_secs_f64() * 1000.0
            );
        } else {
            creates.push(took);
        }
    }
    summary("HTTPRoute, every rule: create over HTTPS", creates);
    let mut plain = Vec::new();
    let cms: Api<ConfigMap> = Api::namespaced(client, "bench");
    for i in 0..CREATES {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).expect("cm");
        let t0 = Instant::now();
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
        plain.push(t0.elapsed());
    }
    summary("ConfigMap (no schema): create over HTTPS", plain);
    server.shutdown().await;
}

fn main() {
    gwtest::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        startup(true).await;
        startup(false).await;
        round_trips().await;
        sandbox_startup().await;
        crd_registration().await;
        validated_creates().await;
    });
    process_ready();
}
