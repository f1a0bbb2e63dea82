//! `port-forward` variables through the real binary and the sandbox: requests reach the
//! demo gateway through the API server's `pods/portforward` (kube-rs, as against a real
//! cluster), the forward follows its Service to a new pod when its pod is replaced mid-run,
//! a failure's reproduce lines start with the equivalent `kubectl port-forward`, and a
//! forward that finds no ready pod fails the suite's setup with what it saw.

mod support;
mod support_cluster;

use support::{Workspace, test_doc};
use support_cluster::{backend_route, gateway_workspace};

/// The suite's lines after the demo gateway and `${gateway}`: `${direct}` is the gateway's own
/// address.
const SUITE: &str = r#"  direct:
    from:
      resource: {apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, namespace: gwtest-infra, name: gw}
      path: "$.metadata.annotations['demo.gwtest.dev/address']"
      timeout: 30s
defaults: {timeout: 20s, interval: 50ms}"#;

fn workspace(name: &str) -> Workspace {
    let ws = gateway_workspace(name, "pf", SUITE);
    ws.write("pf/route.yaml", &backend_route("pf", "pf.example"));
    ws
}

#[test]
fn requests_go_through_the_api_server_and_follow_the_service_to_a_replaced_pod() {
    let ws = workspace("pf-follow");
    ws.write(
        "pf/t.test.yaml",
        &test_doc(
            "follows",
            "",
            r#"  - name: the forward is not the gateway's own address
    exec:
      command: [test, "${gateway}", "!=", "${direct}"]
  - apply: route.yaml
  - name: through the forward
    request:
      url: http://${gateway}/hello
      headers: {Host: pf.example}
      expect: {status: 200, json: {$.route: pf, $.namespace: "${namespace}"}}
  - name: the data-plane pod goes
    delete:
      resource: {apiVersion: v1, kind: Pod, namespace: gwtest-infra, selector: "gateway.networking.k8s.io/gateway-name=gw"}
  - name: through the forward, to the new pod
    request:
      url: http://${gateway}/again
      headers: {Host: pf.example}
      expect: {status: 200, json: {$.path: /again}}
    consecutive: 5
  - name: one new pod, ready
    assert:
      resource: {apiVersion: v1, kind: Pod, namespace: gwtest-infra, selector: "gateway.networking.k8s.io/gateway-name=gw"}
      count: 1
      conditions: [{type: Ready, status: "True"}]
"#,
        ),
    );
    let out = ws.gwtest(&["run", "pf", "--sandbox"]).run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
}

#[test]
fn a_failure_through_a_forward_reproduces_with_kubectl_port_forward() {
    let ws = workspace("pf-reproduce");
    ws.write(
        "pf/t.test.yaml",
        &test_doc(
            "teapot",
            "",
            r#"  - apply: route.yaml
  - request:
      url: http://${gateway}/tea
      headers: {Host: pf.example}
      expect: {status: 418}
    timeout: 1s
"#,
        ),
    );
    let art = ws.path().join("art");
    let out = ws
        .gwtest(&[
            "run",
            "pf",
            "--sandbox",
            "--artifacts",
            art.to_str().unwrap(),
        ])
        .run();
    out.assert_exit(1);
    let block = out.outcome("pf/teapot").block;
    let forward = regex::Regex::new(
        r"(?m)^    kubectl --kubeconfig \S+ port-forward -n gwtest-infra service/gw (\d+):80 & sleep 1\n    curl .*http://127\.0\.0\.1:(\d+)/tea$",
    )
    .unwrap();
    let c = forward
        .captures(&block)
        .unwrap_or_else(|| panic!("no kubectl port-forward before the curl line:\n{block}"));
    assert_eq!(&c[1], &c[2], "the same local port:\n{block}");
    let sh = std::fs::read_to_string(art.join("pf/teapot/try-1/reproduce.sh")).unwrap();
    assert!(
        sh.contains(&format!("service/gw {}:80 & sleep 1", &c[1])),
        "{sh}"
    );
}

/// Suite `suite` (`suite_yaml`) of one test requesting `http://${VAR}/`: its setup fails in the
/// sandbox with a line matching `failure`.
fn assert_setup_fails(ws: &Workspace, suite: &str, suite_yaml: &str, var: &str, failure: &str) {
    ws.suite(suite, suite_yaml);
    ws.write(
        &format!("{suite}/t.test.yaml"),
        &test_doc(
            "t",
            "",
            &format!("  - request: {{url: \"http://${{{var}}}/\"}}"),
        ),
    );
    let out = ws.gwtest(&["run", suite, "--sandbox"]).run();
    out.assert_exit(1);
    out.stdout_line(failure);
}

#[test]
fn no_ready_pod_fails_the_suite_setup_with_what_was_seen() {
    let ws = Workspace::new("pf-none");
    assert_setup_fails(
        &ws,
        "none",
        "vars:\n  gateway:\n    port-forward: {service: nope, namespace: default, port: 80, timeout: 1s}",
        "gateway",
        r"^  variable `gateway` \(port-forward to Service default/nope port 80\): \d+ attempts in \d+\.\ds: \d+ not found; last: Service default/nope does not exist \[not-found\]$",
    );

    // A pod that exists but never runs (the sandbox runs only the gateway's pods).
    ws.write(
        "pending/pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec: {containers: [{name: app, image: x}]}\n",
    );
    assert_setup_fails(
        &ws,
        "pending",
        "namespace: per-suite\nfixtures: [pod.yaml]\nvars:\n  app:\n    port-forward: {pod: app, port: 8080, timeout: 1s}",
        "app",
        r"^  variable `app` \(port-forward to pod gwtest-pending-\w+/app port 8080\): \d+ attempts in \d+\.\ds: \d+ no ready pod; last: pod gwtest-pending-\w+/app without status \(not scheduled\?\) is not ready \[condition\]$",
    );
}
