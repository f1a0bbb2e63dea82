//! The sandbox through the binary (DESIGN §2, §4): `gwtest run --sandbox` runs cluster suites
//! with no cluster and no kubeconfig, `${kubeconfig}` works for kubectl in exec steps; `gwtest
//! sandbox --kubeconfig-out P` prints its ready line, serves gwtest runs and kubectl, and
//! stops on Ctrl-C. Only plain objects are used here, nothing a demo gateway would touch.

mod support;
mod support_cluster;

use std::time::Duration;

use support::{Workspace, eventually, gwtest, test_doc};
use support_cluster::with_kubectl;

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

/// `gwtest ARGS` (a run of [`sandbox_suite`]), kubectl on PATH: its one test passes.
fn assert_sandbox_suite_passes(ws: &Workspace, args: &[&str]) {
    let out = with_kubectl(ws.gwtest(args), ws).run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
}

#[test]
fn run_sandbox_runs_cluster_suites_without_a_cluster() {
    let ws = Workspace::new("run-sandbox");
    sandbox_suite(&ws);
    assert_sandbox_suite_passes(&ws, &["run", "s", "--sandbox"]);
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

    assert_sandbox_suite_passes(&ws, &["run", "s", "--kubeconfig", &path]);

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

/// A script that sends SIGINT as soon as it reads the `ready` line is heard, even when gwtest
/// was started with SIGINT ignored (a background job of a non-interactive shell): the handler
/// is in place before the line is printed.
#[test]
fn a_signal_right_after_the_ready_line_stops_the_sandbox() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gwtest"));
    cmd.arg("sandbox")
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn gwtest sandbox");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(first.starts_with("ready kubeconfig="), "{first}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // Drain the rest so the child never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.count());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gwtest sandbox ignored a SIGINT sent right after its ready line");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = drain.join();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
