//! First contact: the shipped suites against a cluster with no gateway controller (a new user
//! forgetting `--demo-gateway`), and waits on Gateway API objects no controller reports on.
//! The failure says that no controller has reported, names the GatewayClass's
//! controllerName, and for the demo gateway's class, `--demo-gateway` or `--sandbox`.

mod support;
mod support_cluster;

use support::{Workspace, one_file, test_doc};
use support_cluster::TestCluster;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Apply entries: a GatewayClass no controller runs for, and a Gateway of that class.
const CLASS_AND_GATEWAY: &str = r#"      - manifest: {apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: "other-${unique}"}, spec: {controllerName: example.com/gateway}}
      - manifest: {apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: gw}, spec: {gatewayClassName: "other-${unique}", listeners: [{name: http, protocol: HTTP, port: 80}]}}
"#;

#[test]
fn the_shipped_discovery_suite_without_the_demo_gateway_says_no_controller_runs() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("first-contact");
    let suite = format!("{REPO}/suites/discovery");
    // The suite's variable waits 60s for the Gateway's address; scaled to 3s.
    let out = cluster
        .gwtest(&ws, &["run", &suite, "--timeout-scale", "0.05"])
        .run();
    out.assert_exit(1);
    out.stdout_line(r"^FAIL  suite discovery \(.*suite\.yaml\): setup failed$");
    out.stdout_line(
        r#"^  hint: no controller has reported on Gateway gw in gwtest-infra \(its conditions are still the defaults: Accepted=Unknown "Waiting for controller", Programmed=Unknown "Waiting for controller"\); GatewayClass gwtest-demo has not been accepted by any controller \(controllerName demo\.gwtest\.dev/gateway-controller\): is a controller for `demo\.gwtest\.dev/gateway-controller` running\? It is the demo gateway's class: run with --demo-gateway \(the demo gateway against this cluster\) or --sandbox$"#,
    );
    cluster.assert_nothing_left_now(&out.dump());
}

#[test]
fn asserts_on_objects_no_controller_reports_on_name_the_missing_controller() {
    let cluster = TestCluster::start();
    let ws = one_file(
        "no-controller",
        "defaults: {timeout: 1s}",
        &[
            test_doc(
                "gateway",
                "",
                &format!(
                    r#"  - apply:
{CLASS_AND_GATEWAY}  - assert:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, name: gw}}
      conditions: [{{type: Programmed, status: "True"}}]
"#
                ),
            ),
            test_doc(
                "route",
                "",
                &format!(
                    r#"  - apply:
{CLASS_AND_GATEWAY}      - manifest: {{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {{name: r}}, spec: {{parentRefs: [{{name: gw}}]}}}}
  - assert:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: r}}
      fields: {{status: {{parents: [{{conditions: [{{type: Accepted, status: "True"}}]}}]}}}}
"#
                ),
            ),
        ],
    );
    let out = cluster.gwtest(&ws, &["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 2, 0);
    out.outcome("s/gateway").line(
        r#"^  hint: no controller has reported on Gateway gw in gwtest-gateway-[a-z0-9]{6} \(its conditions are still the defaults: Accepted=Unknown "Waiting for controller", Programmed=Unknown "Waiting for controller"\); GatewayClass other-[a-z0-9]{6} has not been accepted by any controller \(controllerName example\.com/gateway\): is a controller for `example\.com/gateway` running\?$"#,
    );
    out.outcome("s/route").line(
        r#"^  hint: no controller has reported on HTTPRoute r in gwtest-route-[a-z0-9]{6} \(status\.parents is empty\), nor on its parent Gateway gw; GatewayClass other-[a-z0-9]{6} has not been accepted by any controller \(controllerName example\.com/gateway\): is a controller for `example\.com/gateway` running\?$"#,
    );
    cluster.assert_nothing_left_now(&out.dump());
}
