//! The sandbox deploys like real gateway implementations (a Service and a data-plane Pod per
//! Gateway) and its API server serves `pods/portforward` and `pods/log` for those pods,
//! through kube-rs as against a real cluster: `Api::<Pod>::portforward` reaches the
//! Gateway's listener, `Api::<Pod>::logs` shows the demo gateway's log for that Gateway.

use std::time::Duration;

use futures::AsyncBufReadExt;
use futures::StreamExt;
use gwtest::cluster::portforward::pod_ready;
use gwtest_sandbox::{Sandbox, SandboxConfig, parse_manifests};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURE: &str = include_str!("../fixtures/gateway.yaml");
const SELECTOR: &str = "gateway.networking.k8s.io/gateway-name=gw";

async fn sandbox() -> (Sandbox, kube::Client) {
    let s = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    for obj in parse_manifests(FIXTURE).unwrap() {
        s.api().apply_manifest(obj).unwrap();
    }
    let client = kube::Client::try_from(s.kube_config()).unwrap();
    (s, client)
}

/// The ready data-plane pods of Gateway gw, polled until there is one other than `not`.
async fn ready_pod(pods: &Api<Pod>, not: Option<&str>) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = pods
            .list(&ListParams::default().labels(SELECTOR))
            .await
            .unwrap();
        if let Some(p) = list
            .items
            .into_iter()
            .find(|p| pod_ready(p) && p.metadata.name.as_deref() != not)
        {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ready data-plane pod"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 request through a port-forward stream; the whole answer.
async fn http_through(pods: &Api<Pod>, pod: &str, port: u16, path: &str) -> String {
    let mut pf = pods.portforward(pod, &[port]).await.expect("portforward");
    let mut s = pf.take_stream(port).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: nothing-routes-here.example\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_deploys_a_service_and_a_ready_pod_that_port_forward_and_logs_reach() {
    let (sandbox, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gwtest-infra");
    let services: Api<Service> = Api::namespaced(client.clone(), "gwtest-infra");

    let pod = ready_pod(&pods, None).await;
    let name = pod.metadata.name.clone().unwrap();
    assert!(name.starts_with("gw-"), "{name}");
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Gateway", "gw")
    );
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0].container_port,
        80
    );

    let svc = services
        .get("gw")
        .await
        .expect("a Service named as the Gateway");
    let sspec = svc.spec.unwrap();
    assert_eq!(
        sspec
            .selector
            .unwrap()
            .get("gateway.networking.k8s.io/gateway-name"),
        Some(&"gw".to_string())
    );
    let ports = sspec.ports.unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        (ports[0].port, ports[0].name.as_deref()),
        (80, Some("http"))
    );

    // The listener answers through the API server, as the data plane on loopback does.
    let answer = http_through(&pods, &name, 80, "/through-the-api-server").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("no route matched"), "{answer}");

    // A port nobody listens on: the error channel says so, the data stream ends.
    let mut pf = pods.portforward(&name, &[81]).await.expect("upgrade");
    let err = tokio::time::timeout(Duration::from_secs(10), pf.take_error(81).unwrap())
        .await
        .expect("an error in time")
        .expect("an error message");
    assert!(
        err.contains("error forwarding port 81 to pod gwtest-infra/gw-"),
        "{err}"
    );
    assert!(
        err.contains("no listener of Gateway gwtest-infra/gw on port 81"),
        "{err}"
    );

    // The pod's log is the gateway's log for this Gateway: reconciles, status writes,
    // requests.
    let log = pods.logs(&name, &LogParams::default()).await.unwrap();
    assert!(
        log.contains("INFO reconciled Gateway gwtest-infra/gw generation 1"),
        "{log}"
    );
    assert!(
        log.contains("INFO writing Gateway gwtest-infra/gw: status Accepted=True Programmed=True"),
        "{log}"
    );
    assert!(
        log.contains("INFO request GET nothing-routes-here.example/through-the-api-server on listener http: 404, no route"),
        "{log}"
    );
    // A fault switched on in the Gateway's namespace is in its log too.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "gwtest-infra");
    let faults: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "demo-faults"}, "data": {"slow": "1ms"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &faults).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = pods.logs(&name, &LogParams::default()).await.unwrap();
        if log.contains("WARN faults switched in namespace gwtest-infra: slow=1ms (was: none)") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tail = pods
        .logs(
            &name,
            &LogParams {
                tail_lines: Some(1),
                timestamps: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let later = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(5))
        .unwrap();
    let since_later = pods
        .logs(
            &name,
            &LogParams {
                since_time: Some(later),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(since_later, "");

    // Deleted, the pod stops and a new one takes its place.
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let next = ready_pod(&pods, Some(&name)).await;
    let next_name = next.metadata.name.unwrap();
    assert_ne!(next_name, name);
    let answer = http_through(&pods, &next_name, 80, "/after").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    match pods.portforward(&name, &[80]).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
        Err(e) => panic!("expected 404 for the deleted pod, got {e}"),
        Ok(_) => panic!("the deleted pod still forwards"),
    }
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_connection_closes_when_its_pod_goes() {
    let (sandbox, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gwtest-infra");
    let name = ready_pod(&pods, None).await.metadata.name.unwrap();
    let mut pf = pods.portforward(&name, &[80]).await.unwrap();
    let mut s = pf.take_stream(80).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 404");
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("the stream ends when the pod goes")
        .unwrap();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_nothing_runs_answer_as_pods_that_never_started() {
    let (sandbox, client) = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "x"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    match pods.portforward("app", &[80]).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert_eq!(s.message, "pod app does not have a host assigned");
        }
        other => panic!("expected 400, got {:?}", other.err()),
    }
    match pods.logs("app", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert_eq!(
                s.message,
                "container \"app\" in pod \"app\" is waiting to start: ContainerCreating"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
    match pods.portforward("missing", &[80]).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {:?}", other.err()),
    }
    // A log stream ends with what is there (follow is not kept open).
    let gw: Api<Pod> = Api::namespaced(client, "gwtest-infra");
    let name = ready_pod(&gw, None).await.metadata.name.unwrap();
    let mut lines = gw
        .log_stream(&name, &LogParams::default())
        .await
        .unwrap()
        .lines();
    assert!(lines.next().await.is_some());
    sandbox.shutdown().await;
}

/// Against a cluster other than the sandbox the demo gateway deploys nothing: its data plane
/// runs where it runs, and nothing in the cluster would run a pod for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_cluster_the_demo_gateway_creates_no_services_or_pods() {
    use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
    let api = ApiServer::start(ApiServerConfig::default()).await.unwrap();
    gwtest_sandbox::register_crds(&api).unwrap();
    for obj in parse_manifests(FIXTURE).unwrap() {
        api.apply_manifest(obj).unwrap();
    }
    let client = kube::Client::try_from(api.kube_config()).unwrap();
    let gw = gwtest_sandbox::start_demo_gateway(client.clone(), None)
        .await
        .unwrap();
    assert!(gw.kubelet().is_none());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gw.listeners().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "gw never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few reconciles later, still nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gwtest-infra");
    let services: Api<Service> = Api::namespaced(client, "gwtest-infra");
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        services
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    gw.shutdown().await;
    api.shutdown().await;
}
