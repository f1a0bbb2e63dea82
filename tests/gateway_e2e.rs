//! Everything works: the real binary with the sandbox (`gwtest run --sandbox`) on a suite that
//! applies the shipped Gateway fixture, a discovered Service and an HTTPRoute, asserts their
//! status, sends a request through the demo gateway at the address its annotation gives, and
//! checks the gateway's spans of that request. Also `gwtest sandbox` and `gwtest sandbox
//! --demo-gateway-only` as processes.

mod support;
mod support_gateway;

use std::time::{Duration, Instant};

use support::{RunOutput, Workspace};

const SUITE: &str = r#"apiVersion: gwtest/v1alpha1
kind: Suite
name: demo
vars:
  gw:
    from:
      resource: {apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, namespace: gwtest-infra, name: gw}
      path: "$.metadata.annotations['demo.gwtest.dev/address']"
      timeout: 30s
fixtures:
  - ../fixtures/gateway.yaml
defaults:
  timeout: 30s
  interval: 50ms
"#;

const APP: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: example-svc
  labels: {app: example, demo.gwtest.dev/discover: "true"}
spec:
  selector: {app: example}
  ports:
    - {name: http, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: example
spec:
  parentRefs:
    - {name: gw, namespace: gwtest-infra}
  hostnames: [example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /example}}]
      backendRefs: [{name: example-svc, port: 8080}]
"#;

const TEST: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: everything
steps:
  - name: service and route
    apply: app.yaml
  - name: gateway programmed
    assert:
      resource: {apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, namespace: gwtest-infra, name: gw}
      conditions:
        - {type: Accepted, status: "True"}
        - {type: Programmed, status: "True"}
      fields:
        status:
          addresses: [{type: IPAddress, value: 127.0.0.1}]
          listeners: [{name: http, attachedRoutes: 1}]
  - name: route accepted
    assert:
      resource: {apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: example}
      conditions:
        - {type: Accepted, status: "True"}
        - {type: ResolvedRefs, status: "True"}
  - name: upstream discovered
    assert:
      resource: {apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: example-svc}
      conditions:
        - {type: Accepted, status: "True"}
      fields:
        spec: {service: example-svc, port: 8080}
  - name: request through the gateway
    request:
      url: http://${gw}/example/hello?x=1
      headers: {Host: example.com}
      expect:
        status: 200
        headers: {content-type: application/json}
        json:
          $.path: /example/hello
          $.route: example
          $.backend: example-svc
          $.namespace: ${namespace}
          $.query.x: "1"
  - name: the gateway's spans of that request
    spans:
      trace: last-request
      service: demo-gateway
      expect:
        - name: "GET /example"
          kind: server
          attributes: {http.response.status_code: 200, http.route: /example, url.path: /example/hello}
          count: 1
        - name: route example
          kind: internal
          parent: "GET /example"
      absent: [error-vhost]
  - name: nothing matches elsewhere
    request:
      url: http://${gw}/nothing
      headers: {Host: other.test}
      expect: {status: 404}
"#;

/// The suite `demo` with its test `everything`, and the fixture it applies.
fn write_demo(ws: &Workspace) {
    ws.write("fixtures/gateway.yaml", support_gateway::GATEWAY_YAML);
    ws.write("demo/suite.yaml", SUITE);
    ws.write("demo/app.yaml", APP);
    ws.write("demo/everything.test.yaml", TEST);
}

fn assert_everything_passed(out: &RunOutput) {
    out.assert_exit(0);
    assert_eq!(
        out.results(),
        vec![("PASS".to_string(), "demo/everything".to_string())],
        "{}",
        out.dump()
    );
}

#[test]
fn run_sandbox_everything_works() {
    let ws = Workspace::new("gateway-everything");
    write_demo(&ws);
    let junit = ws.path().join("junit.xml");
    let out = ws
        .gwtest(&[
            "run",
            "--sandbox",
            "demo",
            "--junit",
            junit.to_str().unwrap(),
        ])
        .run();
    assert_everything_passed(&out);
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("everything") && !xml.contains("<failure"),
        "{xml}"
    );
}

#[test]
fn run_sandbox_fails_a_wrong_expectation_about_the_gateway() {
    // The same path fails when the gateway does not do what the suite says: a span that is
    // not there, a status that is not there.
    let ws = Workspace::new("gateway-wrong");
    ws.write("fixtures/gateway.yaml", support_gateway::GATEWAY_YAML);
    ws.write(
        "demo/suite.yaml",
        &SUITE.replace("  timeout: 30s\n  interval", "  timeout: 3s\n  interval"),
    );
    ws.write("demo/app.yaml", APP);
    ws.write(
        "demo/wrong.test.yaml",
        &TEST
            .replace("name: everything", "name: wrong")
            .replace("name: route example\n", "name: route elsewhere\n"),
    );
    let out = ws.gwtest(&["run", "--sandbox", "demo"]).run();
    out.assert_exit(1);
    let o = out.outcome("demo/wrong");
    assert_eq!(o.tag, "FAIL", "{}", out.dump());
    assert!(o.block.contains("route elsewhere"), "{}", out.dump());
}

/// Wait for a stdout line starting with `prefix` from a running gwtest.
fn ready_line(run: &mut support::Running, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = run.stdout_so_far().lines().find(|l| l.starts_with(prefix)) {
            return l.to_string();
        }
        assert!(
            run.alive(),
            "gwtest exited before {prefix:?}: {}",
            run.stdout_so_far()
        );
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} line: {}",
            run.stdout_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_annotation(rt: &tokio::runtime::Runtime, client: &kube::Client) -> String {
    rt.block_on(async {
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
            client.clone(),
            "gwtest-infra",
            &gwtest_sandbox::gateway::model::gateway_ar(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(o) = api.get("gw").await
                && let Some(a) = o
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("demo.gwtest.dev/address"))
            {
                return a.clone();
            }
            assert!(Instant::now() < deadline, "no address annotation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn get_status(rt: &tokio::runtime::Runtime, url: &str) -> u16 {
    rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .expect("the gateway answers")
            .status()
            .as_u16()
    })
}

#[test]
fn sandbox_command_serves_the_gateway_until_interrupted() {
    gwtest::install_crypto_provider();
    let ws = Workspace::new("gateway-sandbox-cmd");
    let kubeconfig = ws.path().join("kubeconfig");
    let mut run = ws
        .gwtest(&["sandbox", "--kubeconfig-out", kubeconfig.to_str().unwrap()])
        .spawn();
    let line = ready_line(&mut run, "ready ");
    assert!(line.contains("kubeconfig="), "{line}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    });
    rt.block_on(async {
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
            client.clone(),
            &gwtest_sandbox::gateway::model::namespace_ar(),
        );
        for doc in gwtest_sandbox::parse_manifests(support_gateway::GATEWAY_YAML).unwrap() {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let ar = match kind.as_str() {
                "GatewayClass" => gwtest_sandbox::gateway::model::gateway_class_ar(),
                "Namespace" => gwtest_sandbox::gateway::model::namespace_ar(),
                _ => gwtest_sandbox::gateway::model::gateway_ar(),
            };
            let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let api: kube::Api<kube::api::DynamicObject> = match ns {
                Some(ns) => kube::Api::namespaced_with(client.clone(), &ns, &ar),
                None => kube::Api::all_with(client.clone(), &ar),
            };
            api.patch(
                &name,
                &kube::api::PatchParams::apply("test").force(),
                &kube::api::Patch::Apply(doc),
            )
            .await
            .expect("apply");
        }
        drop(api);
    });
    let addr = wait_annotation(&rt, &client);
    assert_eq!(get_status(&rt, &format!("http://{addr}/")), 404);
    run.signal(libc::SIGINT);
    let out = run.wait();
    out.assert_exit(0);
}

/// An existing cluster: an API server with the gateway's CRDs (on its own runtime), and a
/// workspace `tag` holding its kubeconfig.
struct Cluster {
    rt: tokio::runtime::Runtime,
    api: gwtest_sandbox::apiserver::ApiServer,
    ws: Workspace,
    kubeconfig: std::path::PathBuf,
}

impl Cluster {
    fn start(tag: &str) -> Cluster {
        gwtest::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let api = rt.block_on(async {
            let api = gwtest_sandbox::apiserver::ApiServer::start(Default::default())
                .await
                .unwrap();
            support_gateway::seed(&api);
            api
        });
        let ws = Workspace::new(tag);
        let kubeconfig = ws.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        Cluster {
            rt,
            api,
            ws,
            kubeconfig,
        }
    }
}

#[test]
fn demo_gateway_only_runs_against_an_existing_cluster() {
    let Cluster {
        rt,
        api,
        ws,
        kubeconfig,
    } = Cluster::start("gateway-only");
    let gateway_only = [
        "sandbox",
        "--demo-gateway-only",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    let mut run = ws.gwtest(&gateway_only).spawn();
    let line = ready_line(&mut run, "ready ");
    assert!(line.contains(api.url()), "{line}");
    for doc in gwtest_sandbox::parse_manifests(support_gateway::GATEWAY_YAML).unwrap() {
        api.apply_manifest(doc).unwrap();
    }
    let client = {
        let _rt = rt.enter();
        kube::Client::try_from(api.kube_config()).unwrap()
    };
    let addr = wait_annotation(&rt, &client);
    assert_eq!(get_status(&rt, &format!("http://{addr}/")), 404);
    run.signal(libc::SIGINT);
    run.wait().assert_exit(0);
    rt.block_on(api.shutdown());

    // The same, with the cluster gone: an infrastructure error.
    ws.gwtest(&gateway_only).run().assert_exit(3);
}

/// `run --demo-gateway`: only the gateway in the gwtest process, against an existing cluster.
#[test]
fn run_demo_gateway_against_an_existing_cluster() {
    let Cluster {
        rt,
        api,
        ws,
        kubeconfig,
    } = Cluster::start("gateway-run-demo");
    write_demo(&ws);
    let out = ws
        .gwtest(&[
            "run",
            "--demo-gateway",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "demo",
        ])
        .run();
    assert_everything_passed(&out);
    rt.block_on(api.shutdown());
}
