//! The sandbox through the binary (DESIGN §2, §4): `gwtest run --sandbox` runs cluster suites
//! with no cluster and no kubeconfig, `${kubeconfig}` works for kubectl in exec steps; `gwtest
//! sandbox --kubeconfig-out P` prints its ready line, serves gwtest runs and kubectl, and
//! stops on Ctrl-C. Only plain objects are used here, nothing a demo gateway would touch.

mod support;
mod support_cluster;

use std::time::Duration;

use support::{Workspace, eventually, gwtest, test_doc};
use support_cluster::{kubectl_path_dir, path_with};

/// A suite that needs a cluster with the Gateway API CRDs, and kubectl through `${kubeconfig}`.
fn sandbox_suite(ws: &Workspace) {
    ws.suite("s", "defaults: {timeout: 5s}");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "in-sandbox",
            "",
            r#"  - apply:
      - manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}, data: {k: v}}
      - manifest: {apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: "sandbox-${unique}"}, spec: {controllerName: example.com/x}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: cm}
      fields: {data: {k: v}}
  - exec:
      command: [kubectl, --kubeconfig, "${kubeconfig}", --request-timeout=10s, get, crds, -o, name]
      expect: {exit: 0, stdout: {contains: customresourcedefinition.apiextensions.k8s.io/upstreams.demo.gwtest.dev}}
  - exec:
      command: [kubectl, --kubeconfig, "${kubeconfig}", --request-timeout=10s, -n, "${namespace}", get, configmap, cm, -o, "jsonpath={.data.k}"]
      expect: {exit: 0, stdout: {equals: v}}
  - delete:
      resource: {apiVersion: v1, kind: ConfigMap, name: cm}
"#,
        ),
    );
}

#[test]
fn run_sandbox_runs_cluster_suites_without_a_cluster() {
    let ws = Workspace::new("run-sandbox");
    sandbox_suite(&ws);
    let bin = kubectl_path_dir(&ws);
    let out = ws
        .gwtest(&["run", "s", "--sandbox"])
        .env("PATH", path_with(&bin))
        .env("HOME", ws.path().display().to_string())
        .run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
}

#[test]
fn gwtest_sandbox_serves_runs_and_kubectl_until_ctrl_c() {
    let ws = Workspace::new("sandbox-cmd");
    sandbox_suite(&ws);
    let kc = ws.path().join("out/kubeconfig");
    let mut sandbox = gwtest(&["sandbox", "--kubeconfig-out", &kc.display().to_string()]).spawn();
    let re =
        regex::Regex::new(r"(?m)^ready kubeconfig=(\S+) api=(https://127\.0\.0\.1:\d+)$").unwrap();
    let mut ready = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            ready = re
                .captures(&sandbox.stdout_so_far())
                .map(|c| (c[1].to_owned(), c[2].to_owned()));
            ready.is_some()
        }),
        "no ready line: {}",
        sandbox.stdout_so_far()
    );
    let (path, api) = ready.unwrap();
    assert_eq!(path, kc.display().to_string());
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains(&format!("server: \"{api}\"")), "{text}");

    let bin = kubectl_path_dir(&ws);
    let out = ws
        .gwtest(&["run", "s", "--kubeconfig", &path])
        .env("PATH", path_with(&bin))
        .env("HOME", ws.path().display().to_string())
        .run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);

    sandbox.signal(libc::SIGINT);
    // Without the Ctrl-C it serves until killed.
    let done = sandbox.wait_within(Duration::from_secs(60), "Ctrl-C");
    done.assert_exit(0);
}

#[test]
fn the_suite_examples_in_docs_clusters_md_run_in_the_sandbox() {
    let md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/clusters.md")).unwrap();
    let ws = Workspace::new("docs-clusters");
    let block = regex::Regex::new(r"(?s)```yaml\n# file: (\S+)\n(.*?)```").unwrap();
    let mut files = Vec::new();
    for c in block.captures_iter(&md) {
        ws.write(&format!("docs/{}", &c[1]), &c[2]);
        files.push(c[1].to_owned());
    }
    assert!(files.contains(&"suite.yaml".to_owned()), "{files:?}");
    assert!(
        files.contains(&"forwarded/suite.yaml".to_owned()),
        "{files:?}"
    );
    let out = ws.gwtest(&["run", "docs", "--sandbox"]).run();
    out.assert_exit(0);
    // The shared-namespace suite and the port-forward suite, one test each.
    out.assert_counts(2, 0, 0, 0);
}
