//! Parity: the same suite passes whether the status a controller would write comes from
//! kube-rs (a controller in the test process), from kubectl run by the test process, from
//! kubectl run by an `exec` step, or from a gwtest `patch` step with `subresource: status`;
//! and the kubectl commands gwtest prints (kept namespaces, reproduce lines) work.
//!
//! kubectl is `$KUBECTL` or the one on PATH. `kubectl patch --subresource` needs kubectl ≥ 1.24:
//! with an older one (Debian's 1.20) the tests check kubectl's own error for it, and the
//! test-process writer falls back to `kubectl replace --raw .../status`, which 1.20 has.
//! Run both ways: `cargo test --test cluster_kubectl` and
//! `KUBECTL=/path/to/kubectl-1.20 cargo test --test cluster_kubectl`.

mod support;
mod support_cluster;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Workspace, test_doc};
use support_cluster::{
    Kube, KubectlRun, Mode, TestCluster, UPSTREAM, kubectl, kubectl_bin, kubectl_minor, name_of,
    upstream_test, with_kubectl,
};

/// The first kubectl minor version with `--subresource`.
const SUBRESOURCE_SINCE: u32 = 24;
const SUBRESOURCE_ERROR: &str = "unknown flag: --subresource";

/// The status a controller would write for `generation`.
fn status(generation: i64) -> Value {
    json!({"status": {"conditions": [{
        "type": "Accepted", "status": "True", "reason": "Discovered",
        "message": "written for the parity test", "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

/// The parity suite: `writer(generation)` gives the steps (maybe none) that write status.
fn parity_suite(ws: &Workspace, writer: impl Fn(i64) -> String) {
    ws.suite("parity", "defaults: {timeout: 10s}");
    let steps = format!(
        r#"  - apply:
      manifest: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, metadata: {{name: u}}, spec: {{port: 80}}}}
{w1}  - assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      conditions: [{{type: Accepted, status: "True", reason: Discovered}}]
  - patch:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      merge: {{spec: {{port: 81}}}}
{w2}  - assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
      conditions: [{{type: Accepted, status: "True", reason: Discovered}}]
      fields: {{metadata: {{generation: 2}}, spec: {{port: 81}}}}
"#,
        w1 = writer(1),
        w2 = writer(2),
    );
    ws.write("parity/t.test.yaml", &test_doc("parity", "", &steps));
}

/// Run the parity suite with kubectl first on PATH.
fn run_parity(cluster: &TestCluster, ws: &Workspace) -> support::RunOutput {
    with_kubectl(cluster.gwtest(ws, &["run", "parity"]), ws).run()
}

fn assert_parity_passed(cluster: &TestCluster, out: &support::RunOutput) {
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
    assert!(cluster.labelled_objects().is_empty(), "{}", out.dump());
}

#[test]
fn status_written_by_kube_rs() {
    let cluster = TestCluster::start();
    let ctl = cluster.controller(Mode::Fresh {
        delay: Duration::from_millis(200),
    });
    let ws = Workspace::new("parity-kube");
    parity_suite(&ws, |_| String::new());
    let out = run_parity(&cluster, &ws);
    assert_parity_passed(&cluster, &out);
    assert_eq!(ctl.writes(), 2);
}

#[test]
fn status_written_by_a_gwtest_patch_step() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("parity-patch");
    parity_suite(&ws, |g| {
        format!(
            "  - patch:\n      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}\n      subresource: status\n      merge: {}\n",
            status(g)
        )
    });
    let out = run_parity(&cluster, &ws);
    assert_parity_passed(&cluster, &out);
}

/// An `exec` step: `kubectl patch --subresource=status`.
fn kubectl_exec_step(g: i64) -> String {
    format!(
        "  - exec:\n      command: [kubectl, --kubeconfig, \"${{kubeconfig}}\", --request-timeout=10s, -n, \"${{namespace}}\", patch, upstream, u, --type=merge, --subresource=status, -p, '{}']\n      expect: {{exit: 0}}\n    timeout: 2s\n",
        status(g)
    )
}

#[test]
fn status_written_by_kubectl_in_an_exec_step() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("parity-exec");
    parity_suite(&ws, kubectl_exec_step);
    let out = run_parity(&cluster, &ws);
    if kubectl_minor(&kubectl_bin()) >= SUBRESOURCE_SINCE {
        assert_parity_passed(&cluster, &out);
    } else {
        // kubectl itself says what it lacks, and gwtest shows it with the exec step.
        out.assert_exit(1);
        let o = out.outcome("parity/parity");
        o.line(r#"^  step 2 "exec kubectl .*" \(exec\) at parity/t\.test\.yaml:8:5$"#);
        o.line(r#"; last: exit 1 \(expected exit 0\), stderr: .* \[exit\]$"#);
        o.line(&format!(
            r"^    Error: {}$",
            regex::escape(SUBRESOURCE_ERROR)
        ));
        assert!(cluster.labelled_objects().is_empty(), "{}", out.dump());
    }
}

/// Write status with kubectl: `patch --subresource=status` where kubectl has it; otherwise
/// check kubectl's error for it and `replace --raw` the status subresource instead.
async fn kubectl_write_status(
    kube: &Kube,
    dir: &std::path::Path,
    kc: &std::path::Path,
    ns: &str,
    generation: i64,
) -> KubectlRun {
    let patch = status(generation).to_string();
    let args = [
        "-n",
        ns,
        "patch",
        "upstream",
        "u",
        "--type=merge",
        "--subresource=status",
        "-p",
        &patch,
    ];
    let run = kubectl(dir, kc, &args).await;
    if kubectl_minor(&kubectl_bin()) >= SUBRESOURCE_SINCE {
        return run;
    }
    assert!(!run.ok, "kubectl < 1.24 has no --subresource: {run:?}");
    assert!(run.stderr.contains(SUBRESOURCE_ERROR), "{run:?}");
    let mut obj = kube.get(UPSTREAM, Some(ns), "u").await.expect("u");
    obj["status"] = status(generation)["status"].clone();
    let file = dir.join(format!("status-{ns}-{generation}.json"));
    std::fs::write(&file, obj.to_string()).unwrap();
    let path = format!("/apis/demo.gwtest.dev/v1alpha1/namespaces/{ns}/upstreams/u/status");
    kubectl(
        dir,
        kc,
        &["replace", "--raw", &path, "-f", &file.display().to_string()],
    )
    .await
}

#[test]
fn status_written_by_kubectl_run_by_the_test_process() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("parity-kubectl");
    parity_suite(&ws, |_| String::new());
    // A controller made of kubectl calls: for each generation of `u` seen, write its status.
    let (kube, dir, kc) = (
        cluster.kube.clone(),
        cluster.dir().to_path_buf(),
        cluster.kubeconfig().to_path_buf(),
    );
    let writer = cluster.spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_secs(40);
        let mut written = Vec::new();
        while written.len() < 2 && tokio::time::Instant::now() < until {
            let found = kube.list(UPSTREAM, None, "").await;
            if let Some(u) = found.iter().find(|u| name_of(u) == "u") {
                let ns = u["metadata"]["namespace"].as_str().unwrap().to_owned();
                let generation = u["metadata"]["generation"].as_i64().unwrap();
                if !written.contains(&generation) {
                    let run = kubectl_write_status(&kube, &dir, &kc, &ns, generation).await;
                    assert!(run.ok, "kubectl wrote no status: {run:?}");
                    written.push(generation);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        written
    });
    let out = run_parity(&cluster, &ws);
    assert_parity_passed(&cluster, &out);
    assert_eq!(writer.join(&cluster), vec![1, 2]);
}

/// Split a printed command line (no quoting in what these tests print) into argv.
fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_kubectl_commands_gwtest_prints_work() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("printed");
    ws.suite("s", "defaults: {timeout: 500ms}");
    ws.write(
        "s/t.test.yaml",
        &upstream_test("fails", 80, "      fields: {spec: {port: 81}}\n"),
    );
    let out = cluster
        .gwtest(&ws, &["run", "s", "--keep", "on-failure"])
        .run();
    out.assert_exit(1);
    let line = |re: &str| -> Vec<String> {
        argv(
            out.stdout_line(&format!(r"^    (kubectl {re})$"))
                .get(1)
                .unwrap()
                .as_str(),
        )
    };
    let reproduce = line(r"--kubeconfig \S+ get upstreams\.demo\.gwtest\.dev u -n \S+ -o yaml");
    // The kinds the test applied are listed too: `all` has no custom resources.
    let look = line(
        r"--kubeconfig \S+ get all,gateways,httproutes,configmaps,upstream\.demo\.gwtest\.dev -n \S+",
    );
    let events = line(r"--kubeconfig \S+ get events -n \S+ --sort-by=\.lastTimestamp");
    let delete = line(r"--kubeconfig \S+ delete namespace \S+");
    let ns = delete.last().unwrap().clone();
    let dir = cluster.dir().to_path_buf();
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        cluster.block(async move {
            let mut cmd = tokio::process::Command::new(kubectl_bin());
            cmd.args(&args[1..])
                .env("HOME", &dir)
                .kill_on_drop(true)
                .stdin(std::process::Stdio::null());
            let o = tokio::time::timeout(Duration::from_secs(30), cmd.output())
                .await
                .expect("kubectl finished")
                .expect("kubectl ran");
            support::output::succeeded(&o, format_args!("{args:?}"))
        })
    };
    let yaml = run(reproduce);
    assert!(
        yaml.contains("kind: Upstream") && yaml.contains("port: 80"),
        "{yaml}"
    );
    let listed = run(look);
    assert!(listed.contains("u "), "{listed}");
    run(events);
    run(delete);
    assert!(
        support::eventually(Duration::from_secs(10), || !cluster
            .namespaces()
            .contains(&ns)),
        "the printed delete command removed {ns}"
    );
}

/// For the kubectl-dependent tests above: which kubectl ran.
#[test]
fn kubectl_is_there() {
    let bin: PathBuf = kubectl_bin();
    let minor = kubectl_minor(&bin);
    assert!(minor >= 20, "kubectl 1.{minor} at {}", bin.display());
}
