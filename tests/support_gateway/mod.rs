//! Shared by the demo gateway's tests (`tests/gateway_*.rs`): an embedded API server with the
//! CRDs and `fixtures/gateway.yaml`, an OTLP receiver for the gateway's spans, the demo
//! gateway itself, and bounded helpers to wait for objects and send requests.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gwtest::traces::{Receiver, SpanStore};
use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
use gwtest_sandbox::gateway::{DemoGateway, DemoGatewayConfig, model};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

pub const GATEWAY_YAML: &str = include_str!("../../fixtures/gateway.yaml");

/// Run a test body under a hard deadline.
pub async fn bounded<F: Future<Output = ()>>(limit: Duration, f: F) {
    tokio::time::timeout(limit, f)
        .await
        .expect("the test finished in time");
}

pub struct Env {
    pub api: ApiServer,
    pub client: kube::Client,
    pub gateway: Option<DemoGateway>,
    pub store: Arc<SpanStore>,
    pub receiver: Option<Receiver>,
    pub http: reqwest::Client,
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// How a test wants its environment.
#[derive(Clone, Default)]
pub struct Options {
    /// Plain HTTP API server on this address (for restarts on the same port).
    pub plain_http_on: Option<SocketAddr>,
    /// OTLP/HTTP instead of gRPC to the receiver.
    pub otlp_http: bool,
    /// Send spans here instead of the receiver.
    pub otlp_endpoint: Option<String>,
    /// CRDs (by name) not to install.
    pub without_crds: Vec<&'static str>,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(Options::default()).await
    }

    /// Runs `test` under `limit` on an environment started with `o`, then stops it.
    pub async fn run(limit: Duration, o: Options, test: impl AsyncFnOnce(&Env)) {
        bounded(limit, async {
            let env = Env::start_with(o).await;
            test(&env).await;
            env.stop().await;
        })
        .await;
    }

    pub async fn start_with(o: Options) -> Env {
        gwtest::install_crypto_provider();
        let cfg = match o.plain_http_on {
            Some(addr) => ApiServerConfig {
                addr,
                tls: false,
                token: Some("gateway-test-token".into()),
                ..ApiServerConfig::default()
            },
            None => ApiServerConfig::default(),
        };
        let api = ApiServer::start(cfg).await.expect("API server");
        seed_without(&api, &o.without_crds);
        let client = kube::Client::try_from(api.kube_config()).expect("client");
        let store = Arc::new(SpanStore::new(100_000));
        let receiver =
            Receiver::start("127.0.0.1:0", "127.0.0.1:0", store.clone()).expect("receiver");
        let endpoint = o.otlp_endpoint.clone().unwrap_or_else(|| {
            if o.otlp_http {
                receiver.http_endpoint()
            } else {
                receiver.grpc_endpoint()
            }
        });
        let gateway = DemoGateway::start(
            client.clone(),
            DemoGatewayConfig {
                otlp_endpoint: Some(endpoint),
                otlp_protocol_http: o.otlp_http,
                ..Default::default()
            },
        )
        .await
        .expect("demo gateway");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Env {
            api,
            client,
            gateway: Some(gateway),
            store,
            receiver: Some(receiver),
            http,
        }
    }

    pub async fn stop(mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown().await;
        }
        if let Some(r) = self.receiver.take() {
            r.shutdown().await;
        }
        self.api.shutdown().await;
    }

    /// Stop the API server and start an empty one on the same address (plain HTTP envs only),
    /// with the CRDs. `down` is how long there is none.
    pub async fn restart_api(&mut self, down: Duration) {
        let addr = self.api.local_addr();
        let placeholder = ApiServer::start(ApiServerConfig {
            tls: false,
            ..ApiServerConfig::default()
        })
        .await
        .expect("placeholder");
        let old = std::mem::replace(&mut self.api, placeholder);
        old.shutdown().await;
        tokio::time::sleep(down).await;
        let mut tries = 0;
        let new = loop {
            match ApiServer::start(ApiServerConfig {
                addr,
                tls: false,
                token: Some("gateway-test-token".into()),
                ..ApiServerConfig::default()
            })
            .await
            {
                Ok(s) => break s,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 50, "cannot listen on {addr} again: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        seed(&new);
        let placeholder = std::mem::replace(&mut self.api, new);
        placeholder.shutdown().await;
    }

    /// Server-side apply every document of `yaml` (in process).
    pub fn apply(&self, yaml: &str) {
        for doc in gwtest_sandbox::parse_manifests(yaml).expect("manifests") {
            self.api.apply_manifest(doc).expect("apply");
        }
    }

    pub fn namespace(&self, name: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
        ));
    }

    pub fn dyn_api(&self, ar: &ApiResource, ns: &str) -> Api<DynamicObject> {
        if ns.is_empty() {
            Api::all_with(self.client.clone(), ar)
        } else {
            Api::namespaced_with(self.client.clone(), ns, ar)
        }
    }

    pub async fn get(&self, ar: &ApiResource, ns: &str, name: &str) -> Option<Value> {
        self.dyn_api(ar, ns)
            .get_opt(name)
            .await
            .expect("get")
            .map(|o| serde_json::to_value(o).unwrap())
    }

    pub async fn delete(&self, ar: &ApiResource, ns: &str, name: &str) {
        self.dyn_api(ar, ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    pub async fn merge(&self, ar: &ApiResource, ns: &str, name: &str, patch: Value) -> Value {
        let o = self
            .dyn_api(ar, ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("patch");
        serde_json::to_value(o).unwrap()
    }

    /// Wait (at most `limit`) until `f` gives something.
    pub async fn wait<T, Fut>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Fut) -> T
    where
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the object is gone.
    pub async fn wait_gone(&self, ar: &ApiResource, ns: &str, name: &str, what: &str) {
        self.wait(what, Duration::from_secs(10), || async {
            self.get(ar, ns, name).await.is_none().then_some(())
        })
        .await;
    }

    /// Wait until the object exists and `pred` holds for it; returns it.
    pub async fn wait_object(
        &self,
        ar: &ApiResource,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let last = self.get(ar, ns, name).await;
            if let Some(o) = &last
                && pred(o)
            {
                return o.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {} {ns}/{name}: {what}; last seen:\n{}",
                ar.kind,
                serde_json::to_string_pretty(&last).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the Upstream `ns/name` is Accepted for its generation; returns it.
    pub async fn wait_upstream_accepted(&self, ns: &str, name: &str) -> Value {
        self.wait_object(
            &model::upstream_ar(),
            ns,
            name,
            "Accepted for its generation",
            accepted_for_generation,
        )
        .await
    }

    /// Wait until our parent entry of HTTPRoute `ns/name` has condition `type_` = `status`
    /// for the route's generation; returns the route.
    pub async fn wait_route(&self, ns: &str, name: &str, type_: &str, status: &str) -> Value {
        self.wait_object(
            &model::http_route_ar(),
            ns,
            name,
            &format!("{type_} {status}"),
            |o| route_condition(o, type_, status),
        )
        .await
    }

    /// Delete the discovered Service `ns/name`, wait for its Upstream to go, and create the
    /// Service again.
    pub async fn recreate_service(&self, ns: &str, name: &str) {
        self.delete(&model::service_ar(), ns, name).await;
        self.wait_gone(&model::upstream_ar(), ns, name, "the Upstream to go")
            .await;
        self.apply(&service_yaml(ns, name, true));
    }

    /// The address of the Gateway's first listener, from its annotation.
    pub async fn gateway_address(&self, ns: &str, name: &str) -> String {
        let gw = self
            .wait_object(
                &model::gateway_ar(),
                ns,
                name,
                "an address annotation",
                |o| {
                    o.pointer("/metadata/annotations/demo.gwtest.dev~1address")
                        .is_some()
                },
            )
            .await;
        gw.pointer("/metadata/annotations/demo.gwtest.dev~1address")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    /// The shared fixture's Gateway `gwtest-infra/gw`.
    pub async fn fixture_gateway(&self) -> String {
        self.apply(GATEWAY_YAML);
        self.gateway_address("gwtest-infra", "gw").await
    }

    /// The fixture's Gateway, a Service `svc` in `ns`, and per name a route from host
    /// `<name>.test` to it; returns the Gateway's address once every route serves.
    pub async fn serve_routes(&self, ns: &str, discover: bool, names: &[&str]) -> String {
        let addr = self.fixture_gateway().await;
        self.namespace(ns);
        self.apply(&service_yaml(ns, "svc", discover));
        for n in names {
            self.apply(&svc_route_yaml(ns, n, &format!("{n}.test")));
        }
        for n in names {
            self.host_until(200, &addr, &format!("{n}.test")).await;
        }
        addr
    }

    /// `GET http://{addr}/` with `host`.
    pub async fn host(&self, addr: &str, host: &str) -> Response {
        self.request("GET", &format!("http://{addr}/"), &[("host", host)])
            .await
    }

    /// `GET http://{addr}/` with `host` until the answer has `status`.
    pub async fn host_until(&self, status: u16, addr: &str, host: &str) -> Response {
        self.request_until(status, "GET", &format!("http://{addr}/"), &[("host", host)])
            .await
    }

    pub async fn request(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        self.try_request(method, url, headers)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    pub async fn try_request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, reqwest::Error> {
        let mut req = self.http.request(method.parse().unwrap(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Send until the answer has `status` (bounded); returns it.
    pub async fn request_until(
        &self,
        status: u16,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.try_request(method, url, headers).await;
            if let Ok(r) = &r
                && r.status == status
            {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{method} {url} never answered {status}; last: {:?}",
                r.map(|r| (r.status, r.body))
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Clone for Response {
    fn clone(&self) -> Self {
        Response {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

/// The CRDs the gateway needs.
pub fn seed(api: &ApiServer) {
    seed_without(api, &[]);
}

pub fn seed_without(api: &ApiServer, skip: &[&str]) {
    for doc in gwtest_sandbox::sandbox_crds().unwrap() {
        if !skip.contains(&doc["metadata"]["name"].as_str().unwrap_or_default()) {
            api.apply_manifest(doc).unwrap();
        }
    }
}

/// Is the object's own condition Accepted True for its current generation?
pub fn accepted_for_generation(o: &Value) -> bool {
    o.pointer("/status/conditions").is_some_and(|c| {
        c.as_array().into_iter().flatten().any(|c| {
            c["type"] == "Accepted"
                && c["status"] == "True"
                && c["observedGeneration"] == o["metadata"]["generation"]
        })
    })
}

/// The condition `type_` of a condition list.
pub fn cond<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions}"))
}

/// Our parent entry of an HTTPRoute's status.
pub fn our_parent(route: &Value) -> Option<&Value> {
    route
        .pointer("/status/parents")?
        .as_array()?
        .iter()
        .find(|p| p["controllerName"] == "demo.gwtest.dev/gateway-controller")
}

/// Is condition `type_` of our parent entry `status` for the route's current generation?
pub fn route_condition(route: &Value, type_: &str, status: &str) -> bool {
    our_parent(route).is_some_and(|p| {
        p["conditions"].as_array().into_iter().flatten().any(|c| {
            c["type"] == type_
                && c["status"] == status
                && c["observedGeneration"] == route["metadata"]["generation"]
        })
    })
}

/// An HTTPRoute to the fixture's Gateway.
pub fn route_yaml(ns: &str, name: &str, spec_rest: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gw, namespace: gwtest-infra}}]\n{spec_rest}\n"
    )
}

/// An HTTPRoute to the fixture's Gateway sending `host` to the Service `svc`.
pub fn svc_route_yaml(ns: &str, name: &str, host: &str) -> String {
    route_yaml(
        ns,
        name,
        &format!("  hostnames: [{host}]\n  rules: [{{backendRefs: [{{name: svc, port: 8080}}]}}]"),
    )
}

/// A Service (optionally labelled for discovery).
pub fn service_yaml(ns: &str, name: &str, discover: bool) -> String {
    let labels = if discover {
        "{app: demo, demo.gwtest.dev/discover: \"true\"}"
    } else {
        "{app: demo}"
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 8080, targetPort: 8080}}]\n"
    )
}

pub fn faults_yaml(ns: &str, data: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "demo-faults", "namespace": ns},
        "data": data,
    }))
    .unwrap()
}
