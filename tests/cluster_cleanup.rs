//! Cleanup off the critical path, through the real binary, against an API server whose
//! namespace controller takes seconds (as a real one does, ~5 s): a test's slot is free as
//! soon as its namespace's deletion is requested, test durations leave the deletion out, the
//! run waits for every namespace (and the fixtures) before it exits, also after Ctrl-C; a
//! second Ctrl-C exits at once and `gwtest gc` removes what is left. Then: two runs sharing
//! one cluster and its fixtures, and the API server going away mid-run and coming back.

mod support;
mod support_cluster;

use std::time::Duration;

use gwtest_sandbox::apiserver::ApiServerConfig;
use serde_json::Value;
use support::{Gwtest, Workspace, eventually, gwtest, test_doc};
use support_cluster::{TestCluster, cm_test, json_report, run_id};

/// How long the emulated namespace controller keeps a namespace Terminating.
const TERMINATION: Duration = Duration::from_secs(3);

fn slow_cluster() -> TestCluster {
    TestCluster::start_with(ApiServerConfig {
        namespace_termination: TERMINATION,
        ..ApiServerConfig::default()
    })
}

fn ms(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a number of ms: {v}"))
}

/// A fixture file: a namespace of its own with a ConfigMap in it.
fn fixture(ws: &Workspace, file: &str, ns: &str) {
    ws.write(
        file,
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: shared, namespace: {ns}}}\ndata: {{from: fixture}}\n"
        ),
    );
}

/// Wait for a line of gwtest's output matching `re` (a readiness line), bounded.
fn wait_for_line(running: &support::Running, re: &str) {
    let r = regex::Regex::new(&format!("(?m){re}")).unwrap();
    assert!(
        eventually(Duration::from_secs(60), || r
            .is_match(&running.stdout_so_far())),
        "no line /{re}/ in:\n{}",
        running.stdout_so_far()
    );
}

#[test]
fn namespaces_go_in_the_background_and_the_run_waits_for_all_of_them() {
    let cluster = slow_cluster();
    let rec = cluster.record_namespaces();
    let ws = Workspace::new("bg-cleanup");
    // Fixtures without a namespace of their own: the run's namespaces are its tests'.
    ws.write(
        "fx.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: bg-class}\nspec: {controllerName: example.com/nobody}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bg-fixture, namespace: default}\n",
    );
    ws.suite("s", "fixtures: [../fx.yaml]");
    for name in ["one", "two", "three", "four"] {
        ws.write(&format!("s/{name}.test.yaml"), &cm_test(name));
    }
    // One test at a time: with cleanup in the slot, no two test namespaces could ever exist
    // at once.
    let (out, report) = cluster.run_with_report(&ws, &["run", "s", "-j", "1"], 0);
    out.assert_counts(4, 0, 0, 0);
    // Nothing is left the moment gwtest is gone: no waiting here.
    cluster.assert_nothing_left_now(&out.dump());

    // Order: the next test started while the previous test's namespace was still going.
    let run = run_id(&out.stdout);
    assert_eq!(rec.of_run(&run).len(), 4, "{}", out.dump());
    assert!(
        rec.peak(&run) >= 2,
        "each test waited for its namespace: never two at once\n{}",
        out.dump()
    );
    assert_eq!(rec.peak_active(&run), 1, "-j 1 ran tests at once");
    // The output: every test, then the wait for the background deletions, then the summary.
    let pos = |re: &str| {
        let r = regex::Regex::new(&format!("(?m){re}")).unwrap();
        r.find(&out.stdout)
            .unwrap_or_else(|| panic!("no /{re}/\n{}", out.dump()))
            .start()
    };
    let last_test = ["one", "two", "three", "four"]
        .iter()
        .map(|t| pos(&format!(r"^PASS +\d+\.\ds  s/{t} \(cleanup \d+\.\ds\)$")))
        .max()
        .unwrap();
    let waiting = pos(
        r"^cleanup: waiting for \d+ background deletions? \(namespaces of finished tests, suite fixtures\)$",
    );
    let summary = pos(r"^4 tests: 4 passed");
    assert!(last_test < waiting && waiting < summary, "{}", out.dump());
    out.stdout_line(r"^cleanup: 5 background deletions, slowest \d+\.\ds \(.+\)$");

    // Durations: each namespace took the controller's time to go, in the background; the
    // test's own duration and its time in the slot leave that out.
    let tests = report["suites"][0]["tests"].as_array().unwrap();
    for t in tests {
        let c = &t["tries"][0]["cleanup"];
        let background = ms(&c["background_ms"]);
        // The deletion is requested in the slot (its cleanup time), then waited for in the
        // background: the controller's time spans both (+1 for two truncations to ms).
        assert!(
            background + ms(&c["duration_ms"]) + 1 >= TERMINATION.as_millis() as u64,
            "{t}\n{}",
            out.dump()
        );
        assert!(
            ms(&t["duration_ms"]) + ms(&c["duration_ms"]) < background,
            "the test's duration includes its namespace's deletion: {t}"
        );
        assert!(c.get("background_error").is_none(), "{t}");
    }
}

#[test]
fn ctrl_c_during_background_deletion_waits_for_it_and_a_second_one_leaves_it_to_gc() {
    let cluster = slow_cluster();
    let ws = Workspace::new("bg-ctrl-c");
    ws.suite("s", "");
    for name in ["one", "two"] {
        ws.write(&format!("s/{name}.test.yaml"), &cm_test(name));
    }

    // One Ctrl-C while the run waits for its namespaces: cleanup still finishes.
    let mut running = cluster.gwtest(&ws, &["run", "s"]).spawn();
    wait_for_line(&running, r"^cleanup: waiting for \d+ background deletions?");
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.assert_exit(130);
    out.assert_counts(2, 0, 0, 0);
    assert!(out.summary().ends_with("(interrupted)"), "{}", out.dump());
    cluster.assert_nothing_left_now(&out.dump());

    // Two: gwtest exits at once, the namespaces still terminating; gc removes them.
    let mut running = cluster.gwtest(&ws, &["run", "s"]).spawn();
    wait_for_line(&running, r"^cleanup: waiting for \d+ background deletions?");
    let run = run_id(&running.stdout_so_far());
    running.signal(libc::SIGINT);
    wait_for_line(&running, r"^note: interrupted: ");
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.assert_exited_on_second_interrupt();
    let left = cluster.run_namespaces(Some(&run));
    assert!(!left.is_empty(), "nothing left to gc\n{}", out.dump());
    let gc = cluster.gc(&ws, &["--run", &run]);
    cluster.assert_nothing_left_now(&gc.dump());
}

/// `gwtest sandbox` as a separate process, with a slow namespace controller.
struct SandboxProcess {
    running: Option<support::Running>,
    kubeconfig: String,
}

impl SandboxProcess {
    fn start(ws: &Workspace) -> SandboxProcess {
        let kc = ws.path().join("sandbox/kubeconfig");
        let running = gwtest(&[
            "sandbox",
            "--kubeconfig-out",
            &kc.display().to_string(),
            "--namespace-termination",
            "1s",
        ])
        .hang_after(Duration::from_secs(900))
        .spawn();
        wait_for_line(&running, r"^ready kubeconfig=\S+ api=\S+$");
        SandboxProcess {
            running: Some(running),
            kubeconfig: kc.display().to_string(),
        }
    }

    fn gwtest(&self, ws: &Workspace, args: &[&str]) -> Gwtest {
        ws.gwtest(args).arg("--kubeconfig").arg(&self.kubeconfig)
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(support_cluster::kubectl_bin())
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=10s")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run kubectl");
        support::output::succeeded(&out, format_args!("kubectl {args:?}"))
    }

    /// `kind/name` of everything labelled by a gwtest run, of the kinds the fixture has.
    fn labelled(&self) -> Vec<String> {
        let out = self.kubectl(&[
            "get",
            "namespaces,configmaps,gatewayclasses",
            "-A",
            "-l",
            "gwtest.dev/run",
            "-o",
            "name",
        ]);
        out.lines().map(str::to_owned).collect()
    }

    /// `gwtest run SUITE`, started and holding `what`; with its run id.
    fn run_holding(&self, ws: &Workspace, suite: &str, what: &str) -> (support::Running, String) {
        let running = self.gwtest(ws, &["run", suite]).spawn();
        wait_for_line(&running, r"^gwtest: running ");
        let run = run_id(&running.stdout_so_far());
        assert!(
            eventually(Duration::from_secs(30), || self
                .holders(what)
                .contains(&run)),
            "run {run} never held {what}\n{}",
            running.stdout_so_far()
        );
        (running, run)
    }

    /// The runs holding an object (`hold.gwtest.dev/<run>` annotations).
    fn holders(&self, what: &str) -> Vec<String> {
        let out = self.kubectl(&["get", what, "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut h: Vec<String> = v["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix("hold.gwtest.dev/").map(str::to_owned))
            .collect();
        h.sort();
        h
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.signal(libc::SIGINT);
            let _ = r.wait();
        }
    }
}

/// Two runs at once against one cluster (two CI jobs), both applying the same fixtures: the
/// first to finish leaves them to the other, the last one out removes them. A run killed while
/// holding them leaves them to `gwtest gc --run`, which removes them once no one else holds
/// them.
#[test]
fn two_runs_share_the_fixtures_and_the_last_one_out_removes_them() {
    let ws = Workspace::new("two-runs");
    let sandbox = SandboxProcess::start(&ws);
    ws.write(
        "fx.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: shared-class}\nspec: {controllerName: example.com/nobody}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shared-infra}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: shared-infra}\ndata: {from: fixture}\n",
    );
    let fixture_there = r#"  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, namespace: shared-infra, name: shared}
      fields: {data: {from: fixture}}
  - assert:
      resource: {apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, name: shared-class}
"#;
    // Run A waits for a go-ahead (a ConfigMap the test makes) between two looks at the
    // fixtures.
    ws.suite("a", "fixtures: [../fx.yaml]\ndefaults: {timeout: 60s}");
    ws.write(
        "a/t.test.yaml",
        &test_doc(
            "long",
            "",
            &format!(
                "{fixture_there}  - assert:\n      resource: {{apiVersion: v1, kind: ConfigMap, namespace: default, name: go-ahead}}\n{fixture_there}"
            ),
        ),
    );
    ws.suite("b", "fixtures: [../fx.yaml]");
    ws.write("b/t.test.yaml", &test_doc("short", "", fixture_there));

    let (a, run_a) = sandbox.run_holding(&ws, "a", "gatewayclass/shared-class");

    // Run B applies the same fixtures, passes, and leaves them: A still holds them.
    let b = sandbox.gwtest(&ws, &["run", "b"]).run();
    b.assert_exit(0);
    b.assert_counts(1, 0, 0, 0);
    assert_eq!(
        sandbox.holders("gatewayclass/shared-class"),
        vec![run_a.clone()],
        "{}",
        b.dump()
    );
    assert_eq!(
        sandbox.holders("namespace/shared-infra"),
        vec![run_a.clone()],
        "{}",
        b.dump()
    );

    // A goes on: the fixtures are still there, and it is the last one out.
    sandbox.kubectl(&["create", "configmap", "go-ahead", "-n", "default"]);
    let a = a.wait();
    a.assert_exit(0);
    a.assert_counts(1, 0, 0, 0);
    let left = sandbox.labelled();
    assert!(left.is_empty(), "left behind: {left:?}\n{}", a.dump());

    // A run killed while it holds them: another run leaves them; gc --run of the killed run
    // removes them (it was the last holder).
    sandbox.kubectl(&["delete", "configmap", "go-ahead", "-n", "default"]);
    let (mut killed, run_k) = sandbox.run_holding(&ws, "a", "namespace/shared-infra");
    killed.signal(libc::SIGKILL);
    let _ = killed.wait();
    let b = sandbox.gwtest(&ws, &["run", "b"]).run();
    b.assert_exit(0);
    assert_eq!(
        sandbox.holders("namespace/shared-infra"),
        vec![run_k.clone()]
    );
    let dry = sandbox
        .gwtest(&ws, &["gc", "--run", &run_k, "--dry-run"])
        .run();
    dry.assert_exit(0);
    dry.assert_stdout_has("would delete GatewayClass shared-class");
    let gc = sandbox.gwtest(&ws, &["gc", "--run", &run_k]).run();
    gc.assert_exit(0);
    gc.assert_stdout_has("deleted Namespace shared-infra");
    let left = sandbox.labelled();
    assert!(
        left.iter().all(|l| l.starts_with("namespace/gwtest-")),
        "left behind: {left:?}\n{}",
        gc.dump()
    );
    // The killed run's own test namespace goes with gc (without --run: everything).
    let gc = sandbox.gwtest(&ws, &["gc"]).run();
    gc.assert_exit(0);
    assert!(sandbox.labelled().is_empty(), "{}", gc.dump());
}

/// The API server goes away 2 s into a run and comes back 13 s later, with what it stored (as
/// a real one restarting does): namespace creation, steps and cleanup retry the connection
/// errors within their timeouts. Every test passes and nothing is left.
#[test]
fn the_api_server_going_away_and_coming_back_fails_nothing_and_leaves_nothing() {
    let mut cluster = slow_cluster();
    let ws = Workspace::new("outage");
    fixture(&ws, "fx.yaml", "fx-outage");
    ws.suite("s", "fixtures: [../fx.yaml]\ndefaults: {timeout: 40s}");
    let steps = r#"  - apply:
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: before}, data: {test: "${test}"}}
  - sleep: 1s
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, name: before}
      fields: {data: {test: "${test}"}}
  - apply:
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: after}}
  - assert:
      resource: {apiVersion: v1, kind: ConfigMap, namespace: fx-outage, name: shared}
"#;
    let docs: Vec<String> = (0..12)
        .map(|i| test_doc(&format!("t{i:02}"), "", steps))
        .collect();
    ws.write("s/all.test.yaml", &docs.join("---\n"));
    let running = cluster
        .gwtest(&ws, &["run", "s", "-j", "2", "--json", "r.json"])
        .spawn();
    wait_for_line(&running, r"^gwtest: running ");
    // Two seconds into the run, with tests under way.
    std::thread::sleep(Duration::from_secs(2));
    cluster.stop_serving();
    // The outage lasts 13 seconds: that is the scenario, not a wait for readiness.
    std::thread::sleep(Duration::from_secs(13));
    cluster.serve_again();
    let out = running.wait();
    out.assert_exit(0);
    out.assert_counts(12, 0, 0, 0);
    assert!(!out.stdout.contains("Connection refused"), "{}", out.dump());
    cluster.assert_nothing_left_now(&out.dump());
    // Tests really ran across the outage: some test took longer than it.
    let report = json_report(&ws, "r.json");
    let longest = report["suites"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| ms(&t["duration_ms"]))
        .max()
        .unwrap();
    assert!(longest >= 10_000, "no test saw the outage\n{}", out.dump());
}
