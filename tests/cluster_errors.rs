//! A cluster gwtest cannot use is an infrastructure failure (exit 3), reported with the server
//! and the cause: a closed port, a port that accepts and never answers, refused credentials,
//! an untrusted certificate, a missing kubeconfig or context. Suites that need no cluster never
//! connect. The time bound (DESIGN: ≤ 15 s) shows in what is said (`no answer within 5s`, one
//! error and no attempt summary), not in a wall clock: that would flake on a loaded machine.

mod support;
mod support_cluster;

use gwtest_sandbox::apiserver::kubeconfig;
use support::{Workspace, closed_port, one_test, test_doc};
use support_cluster::TestCluster;

/// A workspace with a suite of one cluster step, and a kubeconfig for `server` with `token`
/// (and `ca`), whose path is returned with it.
fn setup(name: &str, server: &str, token: &str, ca: Option<&str>) -> (Workspace, String) {
    let ws = one_test(
        name,
        "",
        "",
        "  - apply:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n",
    );
    let kc = ws.write("kubeconfig", &kubeconfig::render(server, token, ca));
    (ws, kc.display().to_string())
}

/// Runs `gwtest run s --kubeconfig KC`: exit 3, and stderr has a line matching `re`, in which
/// `{server}` stands for `server`; returns stderr.
fn run_infra(ws: &Workspace, kc: &str, re: &str, server: &str) -> String {
    let out = ws.gwtest(&["run", "s", "--kubeconfig", kc]).run();
    out.assert_exit(3);
    // Nothing ran: no test result lines.
    assert!(out.results().is_empty(), "{}", out.dump());
    assert_line(&out.stderr, &re.replace("{server}", &regex::escape(server)));
    out.stderr
}

fn assert_line(text: &str, re: &str) {
    let r = regex::Regex::new(&format!("(?m){re}")).unwrap();
    assert!(r.is_match(text), "no line matches /{re}/ in:\n{text}");
}

#[test]
fn a_closed_port_is_exit_3_naming_the_server_and_the_cause() {
    let server = format!("https://127.0.0.1:{}", closed_port());
    let (ws, kc) = setup("closed", &server, "t", None);
    let err = run_infra(
        &ws,
        &kc,
        r"^error: cannot reach the Kubernetes API at {server}: .*tcp connect error: Connection refused \(os error 111\)$",
        &server,
    );
    assert_line(
        &err,
        r#"^  \(needed by s/t\.test\.yaml:6:5: step "apply ConfigMap/x" \(apply\)\)$"#,
    );
}

#[test]
fn a_port_that_accepts_and_never_answers_is_exit_3_within_the_bound() {
    // Accepts connections (the kernel does, from the backlog) and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("https://{}", listener.local_addr().unwrap());
    let (ws, kc) = setup("silent", &server, "t", None);
    run_infra(
        &ws,
        &kc,
        r"^error: cannot reach the Kubernetes API at {server}: no answer within 5s \(connecting: TCP and TLS handshake\)$",
        &server,
    );
    drop(listener);
}

#[test]
fn refused_credentials_are_exit_3_naming_the_credentials() {
    let cluster = TestCluster::start();
    let (ws, kc) = setup(
        "token",
        &cluster.url(),
        "not-the-token",
        cluster.server().ca_pem(),
    );
    run_infra(
        &ws,
        &kc,
        r"^error: credentials for the Kubernetes API at {server}: refused \(401 Unauthorized\): Unauthorized$",
        &cluster.url(),
    );
    assert!(cluster.run_namespaces(None).is_empty());
}

#[test]
fn an_untrusted_certificate_is_exit_3_naming_tls() {
    let cluster = TestCluster::start();
    let other = TestCluster::start();
    // The right token, another server's CA.
    let (ws, kc) = setup(
        "tls",
        &cluster.url(),
        cluster.server().token(),
        other.server().ca_pem(),
    );
    run_infra(
        &ws,
        &kc,
        r"^error: TLS with the Kubernetes API at {server} failed: .*invalid peer certificate: BadSignature$",
        &cluster.url(),
    );
}

#[test]
fn a_missing_kubeconfig_or_context_is_exit_3_and_says_which() {
    let cluster = TestCluster::start();
    let (ws, _) = setup("kubeconfig", "https://127.0.0.1:1", "t", None);
    let missing = ws.path().join("nope/kubeconfig");
    let out = ws
        .gwtest(&["run", "s", "--kubeconfig", &missing.display().to_string()])
        .run();
    out.assert_exit(3);
    assert_line(
        &out.stderr,
        &format!(
            r"^error: cannot read kubeconfig {}: .*$",
            regex::escape(&missing.display().to_string())
        ),
    );
    let out = cluster
        .gwtest(&ws, &["run", "s", "--context", "elsewhere"])
        .run();
    out.assert_exit(3);
    assert_line(
        &out.stderr,
        &format!(
            r#"^error: context "elsewhere" not found in --kubeconfig {} \(contexts: gwtest-sandbox\)$"#,
            regex::escape(&cluster.kubeconfig_str())
        ),
    );
}

/// `$KUBECONFIG` as a list: files that do not exist are skipped (as kubectl skips them), the
/// rest merged, and `${kubeconfig}` is one file a program can use — with `--context` current.
#[test]
fn a_kubeconfig_list_with_a_missing_file_works_and_kubeconfig_is_one_file() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("kubeconfig-list");
    // A second file holding another context, to merge.
    let other = ws.write(
        "other.yaml",
        &kubeconfig::render("https://127.0.0.1:1", "other-token", None)
            .replace("gwtest-sandbox", "other"),
    );
    ws.suite("s", "");
    ws.write(
        "s/t.test.yaml",
        &test_doc(
            "t",
            "",
            "  - apply:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: here}}\n  \
             - name: one file\n    exec:\n      command: [test, -f, \"${kubeconfig}\"]\n  \
             - name: kubectl reaches the run's cluster\n    exec:\n      \
             command: [kubectl, --kubeconfig, \"${kubeconfig}\", get, configmap, here, -n, \"${namespace}\", -o, name, --request-timeout=10s]\n      \
             expect: {stdout: {equals: \"configmap/here\\n\"}}\n    timeout: 20s\n  \
             - name: both contexts, the chosen one current\n    exec:\n      \
             command: [kubectl, --kubeconfig, \"${kubeconfig}\", config, current-context]\n      \
             expect: {stdout: {equals: \"gwtest-sandbox\\n\"}}\n",
        ),
    );
    let missing = ws.path().join("missing.yaml");
    let list =
        std::env::join_paths([missing.as_path(), other.as_path(), cluster.kubeconfig()]).unwrap();
    let out = ws
        .gwtest(&["run", "s", "--context", "gwtest-sandbox"])
        .env("KUBECONFIG", list.to_str().unwrap())
        .run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
    // And a context neither file has is named as such.
    let out = ws
        .gwtest(&["run", "s", "--context", "nope"])
        .env("KUBECONFIG", list.to_str().unwrap())
        .run();
    out.assert_exit(3);
    assert_line(
        &out.stderr,
        r#"^error: context "nope" not found in \$KUBECONFIG \(.*\) \(contexts: other, gwtest-sandbox\)$"#,
    );
}

#[test]
fn a_suite_without_cluster_steps_never_connects() {
    let ws = one_test(
        "no-cluster",
        "",
        "",
        "  - exec:\n      command: [\"true\"]\n",
    );
    let kc = ws.write(
        "kubeconfig",
        &kubeconfig::render(&format!("https://127.0.0.1:{}", closed_port()), "t", None),
    );
    let out = ws
        .gwtest(&["run", "s", "--kubeconfig", &kc.display().to_string()])
        .run();
    out.assert_exit(0);
    out.assert_counts(1, 0, 0, 0);
}

#[test]
fn gc_against_an_unreachable_cluster_is_exit_3() {
    let ws = Workspace::new("gc-closed");
    let server = format!("https://127.0.0.1:{}", closed_port());
    let kc = ws.write("kubeconfig", &kubeconfig::render(&server, "t", None));
    let out = ws
        .gwtest(&["gc", "--kubeconfig", &kc.display().to_string()])
        .run();
    out.assert_exit(3);
    assert_line(
        &out.stderr,
        &format!(
            r"^error: cannot reach the Kubernetes API at {}: .*Connection refused.*$",
            regex::escape(&server)
        ),
    );
}

/// With --context, the run, `${kubeconfig}` (for kubectl in exec steps) and the commands it
/// prints all use that context, not the kubeconfig's current one.
#[test]
fn context_reaches_exec_steps_and_printed_commands() {
    let cluster = TestCluster::start();
    // A kubeconfig whose current context points nowhere, and the sandbox's under its own name.
    let mut kc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(cluster.kubeconfig()).unwrap()).unwrap();
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
        {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}}));
    let user = kc["users"][0]["name"].clone();
    kc["contexts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
        {"name": "broken", "context": {"cluster": "nowhere", "user": user}}));
    kc["current-context"] = "broken".into();
    let ws = one_test(
        "context",
        "",
        "",
        "  - apply:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: here}}\n  - exec:\n      command: [kubectl, get, configmap, here, -n, \"${namespace}\", -o, name, --request-timeout=10s]\n      env: {KUBECONFIG: \"${kubeconfig}\"}\n      expect: {stdout: {equals: \"configmap/here\\n\"}}\n    timeout: 20s\n",
    );
    let file = ws.path().join("two-contexts.yaml");
    std::fs::write(&file, serde_json::to_string(&kc).unwrap()).unwrap();
    let out = support::Workspace::gwtest(
        &ws,
        &[
            "run",
            "s",
            "--kubeconfig",
            file.to_str().unwrap(),
            "--context",
            "gwtest-sandbox",
            "--keep",
            "always",
        ],
    )
    .run();
    out.assert_exit(0);
    let kept = out
        .stdout
        .lines()
        .find(|l| l.contains(" delete namespace "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        kept.contains(" --context gwtest-sandbox delete namespace gwtest-t-"),
        "{}",
        out.dump()
    );
}

/// A kubeconfig whose user gets its token from an exec plugin (as cloud clusters' do), which
/// fails once the file `revoked` exists.
fn exec_kubeconfig(ws: &Workspace, cluster: &TestCluster) -> (String, std::path::PathBuf) {
    let revoked = ws.path().join("revoked");
    let script = ws.write(
        "creds.sh",
        "#!/bin/sh\nif [ -e \"$REVOKED\" ]; then echo 'the identity provider says: revoked' >&2; exit 1; fi\nexp=$(date -u -d '+30 seconds' +%Y-%m-%dT%H:%M:%SZ)\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\",\"expirationTimestamp\":\"%s\"}}\\n' \"$TOKEN\" \"$exp\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut kc: serde_json::Value = serde_saphyr::from_str(&kubeconfig::render(
        &cluster.url(),
        "unused",
        cluster.server().ca_pem(),
    ))
    .unwrap();
    // A token that expires within a minute is fetched again for every request.
    kc["users"][0]["user"] = serde_json::json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": script.display().to_string(),
        "env": [
            {"name": "TOKEN", "value": cluster.server().token()},
            {"name": "REVOKED", "value": revoked.display().to_string()},
        ],
        "interactiveMode": "Never",
    }});
    let kc = ws.write("exec-kubeconfig", &kc.to_string());
    (kc.display().to_string(), revoked)
}

/// Credentials that stop working mid-run are not "cannot reach the Kubernetes API" retried
/// until the step's timeout: the step fails at once with what the credentials said, the tests
/// after it are not started, and the run exits 3.
#[test]
fn credentials_that_fail_mid_run_stop_the_run_at_once_with_exit_3() {
    let cluster = TestCluster::start();
    let ws = Workspace::new("exec-creds");
    let (kc, revoked) = exec_kubeconfig(&ws, &cluster);
    ws.suite("s", "namespace: per-suite\ndefaults: {timeout: 60s}");
    ws.write(
        "s/t.test.yaml",
        &format!(
            "{}---\n{}",
            test_doc(
                "revoked",
                "",
                &format!(
                    "  - apply:\n      manifest: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: before}}}}\n  - exec:\n      command: [touch, {}]\n  - apply:\n      manifest: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: after}}}}\n",
                    revoked.display()
                )
            ),
            test_doc(
                "later",
                "",
                "  - apply:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: later}}\n"
            )
        ),
    );
    let out = ws
        .gwtest(&["run", "s", "--kubeconfig", &kc, "--json", "r.json"])
        .run();
    out.assert_exit(3);
    out.assert_counts(0, 0, 1, 1);
    let o = out.outcome("s/revoked");
    o.line(&format!(
        r"^  ConfigMap after \(s/t\.test\.yaml:11\): credentials for the Kubernetes API at {}: the exec credential plugin failed \(exit status: 1\): the identity provider says: revoked \[api-error\]$",
        regex::escape(&cluster.url())
    ));
    assert!(!out.stdout.contains("cannot reach"), "{}", out.dump());
    // The plugin's environment (it holds the token) is never printed.
    assert!(
        !out.stdout.contains(cluster.server().token()),
        "{}",
        out.dump()
    );
    out.outcome("s/later")
        .line(r"^SKIP .*\(the cluster is unusable: credentials for the Kubernetes API at .*\)$");
    // At once: one attempt, not retried until the step's 60s timeout.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join("r.json")).unwrap()).unwrap();
    let step = &report["suites"][0]["tests"][0]["tries"][0]["steps"][2];
    assert_eq!(step["status"], "failed", "{step}");
    assert_eq!(step["attempts"], 1, "{step}");
}

/// A kubeconfig whose credentials cannot be obtained at all is exit 3 before any test, saying
/// so (not "cannot reach").
#[test]
fn credentials_that_cannot_be_obtained_are_exit_3_naming_the_credentials() {
    let cluster = TestCluster::start();
    let (ws, _) = setup("exec-creds-bad", "https://unused", "t", None);
    let (kc, revoked) = exec_kubeconfig(&ws, &cluster);
    std::fs::write(&revoked, "").unwrap();
    run_infra(
        &ws,
        &kc,
        r"^error: credentials for the Kubernetes API at {server}: the exec credential plugin failed \(exit status: 1\): the identity provider says: revoked$",
        &cluster.url(),
    );
}

/// A run that cannot start (the cluster is gone) still writes its reports: every picked test
/// skipped, saying why.
#[test]
fn a_dead_cluster_still_writes_the_reports_saying_why() {
    let server = format!("https://127.0.0.1:{}", closed_port());
    let (ws, kc) = setup("dead-reports", &server, "t", None);
    let (junit, json) = (
        ws.path().join("out/junit.xml"),
        ws.path().join("out/r.json"),
    );
    let out = ws
        .gwtest(&[
            "run",
            "s",
            "--kubeconfig",
            &kc,
            "--junit",
            &junit.display().to_string(),
            "--json",
            &json.display().to_string(),
        ])
        .run();
    out.assert_exit(3);
    assert_line(&out.stderr, r"^error: cannot reach the Kubernetes API at ");
    let why = format!("cannot reach the Kubernetes API at {server}");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit report is written on exit 3");
    assert!(
        xml.contains(&format!(
            "<skipped message=\"not run: the run could not start: {why}"
        )),
        "{xml}"
    );
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&json).expect("the JSON report is written on exit 3"),
    )
    .unwrap();
    assert!(
        v["not_started"].as_str().unwrap().starts_with(&why),
        "{v:#}"
    );
    let t = &v["suites"][0]["tests"][0];
    assert_eq!(t["status"], "skipped", "{v:#}");
    assert!(
        t["skip_reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("not run: the run could not start: {why}")),
        "{v:#}"
    );
    assert_eq!(v["counts"]["skipped"], 1, "{v:#}");
}
