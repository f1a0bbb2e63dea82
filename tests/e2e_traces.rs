//! Traces through the real binary: suites with `request` + `spans` steps run by `gwtest run`
//! against a test gateway that continues the request's `traceparent` and sends its spans with
//! the stock opentelemetry-otlp exporters (gRPC and HTTP) to the run's receiver, found through
//! `${otlp.grpc}` / `${otlp.http}` or a reserved `--otlp-listen` port. Then the run's own
//! export (`--otlp-export`, flags or `OTEL_EXPORTER_OTLP_*`) into a collector in this process,
//! on a passing, a failing and an interrupted run, and a taken receiver port (exit 3).

mod support;
mod support_traces;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gwtest::engine::hex;
use gwtest::traces::store::{AttrValue, SpanStatus, StoredSpan};
use gwtest::traces::{Receiver, Selection, SpanStore};
use support::{RunOutput, Workspace};
use support_traces::gateway::{Seen, TestGateway};

/// A suite `name` in `ws` with one test file.
fn suite(ws: &Workspace, name: &str, tests: &str) {
    ws.suite(name, &format!("name: {name}"));
    ws.write(&format!("{name}/t.test.yaml"), tests);
}

/// `gwtest ARGS` in `dir` (see [`support::gwtest`]), waited for off the runtime.
async fn gwtest(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> RunOutput {
    support::gwtest(args).cwd(dir).envs(env).run_async().await
}

/// The lines of the failure block of test `name` (from its `FAIL` line to the blank line).
fn block(stdout: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("FAIL") && l.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("no FAIL block for {name} in:\n{stdout}"));
    lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.to_string())
        .collect()
}

/// Durations and attempt counts vary from run to run: `(1.0s, 5 attempts)` -> `(T, N attempts)`.
fn normalize(line: &str) -> String {
    let re = regex::Regex::new(r"\(\d+\.\ds(, \d+ attempts)?\)").unwrap();
    re.replace_all(line, |c: &regex::Captures| {
        if c.get(1).is_some() {
            "(T, N attempts)".to_string()
        } else {
            "(T)".to_string()
        }
    })
    .into_owned()
}

/// The line of `text` (1-based) that is `line` (surrounding blanks ignored).
fn line_of(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l.trim() == line)
        .unwrap_or_else(|| panic!("no {line:?} in the suite"))
        + 1
}

/// Assert a failure block line by line; `...` in an expected line stands for the varying
/// `N attempts in T: <per-class counts>; ` part of the summary line, and durations and
/// attempt counts in parentheses are compared by shape (see [`normalize`]).
fn assert_block(out: &RunOutput, test: &str, expected: &[String]) {
    let got = block(&out.stdout, test);
    assert_eq!(
        got.len(),
        expected.len(),
        "block of {test}:\n{}\nexpected:\n{}\n{out}",
        got.join("\n"),
        expected.join("\n")
    );
    let summary = regex::Regex::new(r"^\d+ attempts in \d+\.\ds: .*; $").unwrap();
    for (g, e) in got.iter().zip(expected) {
        let ok = match e.split_once("...") {
            Some((pre, post)) => {
                g.len() >= pre.len() + post.len()
                    && g.starts_with(pre)
                    && g.ends_with(post)
                    && summary.is_match(&g[pre.len()..g.len() - post.len()])
            }
            None => normalize(g) == normalize(e),
        };
        assert!(ok, "in the block of {test}:\n got: {g}\nwant: {e}\n{out}");
    }
}

/// The run exited with `code` and its summary line says `summary`.
fn assert_summary(out: &RunOutput, code: i32, summary: &str) {
    assert_eq!(out.code, Some(code), "{out}");
    assert!(out.stdout.contains(summary), "{out}");
}

/// The steps of the last try of `test` in the JSON report.
fn json_steps(report: &serde_json::Value, test: &str) -> Vec<serde_json::Value> {
    for s in report["suites"].as_array().unwrap() {
        for t in s["tests"].as_array().unwrap() {
            if t["name"] == test {
                let tries = t["tries"].as_array().unwrap();
                return tries.last().unwrap()["steps"].as_array().unwrap().clone();
            }
        }
    }
    panic!("no test {test} in the JSON report: {report:#}");
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const MATCHING: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: grpc
steps:
  - name: call
    request:
      url: ${gw}/grpc
      headers: {x-otlp-grpc: "${otlp.grpc}"}
      expect: {status: 200}
    consecutive: 1
  - name: gateway spans
    timeout: 10s
    spans:
      service: test-gateway
      expect:
        - name: GET /example
          kind: server
          attributes:
            http.response.status_code: 200
            http.route: /example
            upstream.latency_ms: 12.5
            retry.enabled: true
            not.there: null
          count: 1
        - name-matches: "^route ex"
          kind: internal
          parent: GET /example
          attributes: {route.name: example}
        - name: cache lookup
          parent: route example
          count: 2
        - name: upstream call
          kind: client
          parent: route example
          attributes: {server.port: 8080}
      absent: [auth check, error-vhost]
  - name: sidecar spans
    spans:
      service: auth-sidecar
      expect:
        - {name: auth check, parent: GET /example, kind: internal, count: 1}
      absent: [GET /example]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: http
steps:
  - name: call
    request:
      url: ${gw}/http
      headers: {x-otlp-http: "${otlp.http}"}
      expect: {status: 200}
    consecutive: 1
  - name: gateway spans
    timeout: 10s
    spans:
      trace: last-request
      expect:
        - name: GET /example
          kind: server
          attributes: {http.response.status_code: 200, upstream.latency_ms: 12.5}
          count: 1
        - {name: auth check, parent: GET /example, count: 1}
        - {name: cache lookup, count: 2}
      absent: [GET /other]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: late
steps:
  - name: call
    request:
      url: ${gw}/late
      headers: {x-otlp-http: "${otlp.http}", x-export-delay-ms: "1500"}
      expect: {status: 200}
    consecutive: 1
  - name: late spans
    timeout: 15s
    spans:
      expect:
        - {name: upstream call, kind: client, parent: route example}
        - {name: auth check}
---
apiVersion: gwtest/v1alpha1
kind: Test
name: any
steps:
  - name: call
    request:
      url: ${gw}/any
      headers: {x-otlp-grpc: "${otlp.grpc}", x-spans: decoy}
      expect: {status: 200}
    consecutive: 1
  - name: in the request's trace
    timeout: 10s
    spans:
      expect: [{name: GET /other, kind: server, count: 1}]
      absent: [GET /example]
  - name: in any trace of the test
    timeout: 10s
    spans:
      trace: any
      expect:
        - {name: GET /example, count: 1}
        - {name: route example, parent: GET /example}
        - {name: GET /other}
---
apiVersion: gwtest/v1alpha1
kind: Test
name: own-traceparent
steps:
  - name: call
    request:
      url: ${gw}/own-traceparent
      headers:
        x-otlp-grpc: "${otlp.grpc}"
        traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
      expect: {status: 200}
    consecutive: 2
  - name: the suite's trace
    timeout: 10s
    spans:
      expect: [{name: GET /example, count: 2}, {name: auth check, count: 2}]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: invalid-traceparent
steps:
  - name: call
    request:
      url: ${gw}/invalid-traceparent
      headers: {x-otlp-grpc: "${otlp.grpc}", traceparent: not-a-trace-context}
      expect: {status: 200}
    consecutive: 1
  - name: the gateway started a trace of its own
    timeout: 10s
    spans:
      trace: any
      expect: [{name: GET /example, count: 1}, {name: auth check}]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: retried
steps:
  - name: call
    request:
      url: ${gw}/retried
      headers: {x-otlp-grpc: "${otlp.grpc}", x-fail-first: "2"}
      expect: {status: 200}
    consecutive: 1
    interval: 50ms
  - name: the deciding attempt
    timeout: 10s
    spans:
      expect:
        - {name: GET /example, count: 1, attributes: {http.response.status_code: 200}}
      absent: [GET /other]
  - name: every attempt
    timeout: 10s
    spans:
      trace: any
      expect:
        - {name: GET /example, count: 3}
        - {name: GET /example, count: 2, attributes: {http.response.status_code: 503}}
        # The sidecar's batch follows the gateway's: waiting for it too, the run (this is its
        # last test with -j 1) does not end while the test gateway still exports to it.
        - {name: auth check, count: 3}
"#;

/// Spans sent by real OTLP exporters (gRPC and HTTP) from a gateway that continues the
/// request's traceparent, matched by every property a `spans` step has; late spans; `trace:
/// any` against a decoy trace; a retried request step's spans step looks at the deciding
/// attempt's trace, and every attempt had a fresh sampled traceparent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_from_real_exporters_match_through_the_binary() {
    gwtest::install_crypto_provider();
    let gw = TestGateway::start().await;
    let dir = Workspace::new("matching");
    suite(&dir, "matching", MATCHING);
    let var = format!("gw={}", gw.url);
    let out = gwtest(
        dir.path(),
        &[
            "run",
            "matching",
            "--var",
            &var,
            "-j",
            "1",
            "--json",
            "report.json",
        ],
        &[],
    )
    .await;
    assert_summary(&out, 0, "7 tests: 7 passed, 0 flaky, 0 failed, 0 skipped");
    gw.exports_settled().await;
    let report = read_json(&dir.path().join("report.json"));

    // Late spans: the step waited for them (it failed at least once, then passed).
    let late = json_steps(&report, "late");
    assert_eq!(late[1]["name"], "late spans");
    assert_eq!(late[1]["status"], "passed");
    assert!(late[1]["attempts"].as_u64().unwrap() >= 2, "{late:?}");
    assert!(late[1]["duration_ms"].as_u64().unwrap() >= 1000, "{late:?}");

    // Three attempts, each with its own sampled trace; the last one decided.
    let retried = json_steps(&report, "retried");
    assert_eq!(retried[0]["attempts"], 3, "{retried:?}");
    let reqs = gw.requests_to("/retried");
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 200]
    );
    let mut traces: Vec<[u8; 16]> = reqs.iter().map(|r| r.trace_id).collect();
    traces.dedup();
    assert_eq!(traces.len(), 3, "a fresh trace per attempt: {reqs:?}");
    // A traceparent the suite set is sent as it is, on every attempt, and the spans step
    // reads that trace (both attempts' spans: same trace).
    let own = gw.requests_to("/own-traceparent");
    assert_eq!(own.len(), 2);
    for r in &own {
        assert_eq!(
            r.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }
    // An invalid one too: gwtest adds no second traceparent (that would change what the
    // gateway sees).
    assert_eq!(
        gw.request("/invalid-traceparent").traceparents,
        ["not-a-trace-context"]
    );
    for r in gw
        .requests()
        .into_iter()
        .filter(|r| r.path != "/invalid-traceparent")
    {
        assert_eq!(r.traceparents.len(), 1, "{r:?}");
        let tp = r
            .traceparent
            .as_deref()
            .expect("every attempt has a traceparent");
        assert_eq!(
            tp,
            format!("00-{}-{}-01", hex(&r.trace_id), hex(&r.parent.unwrap())),
            "W3C traceparent, sampled"
        );
    }
}

/// A request step whose gateway sends the `full` spans (or `x-spans: MODE`) over gRPC, then
/// a spans step with `spans` (indented YAML) and a 2s timeout.
fn failing_test(name: &str, mode: &str, spans: &str) -> String {
    format!(
        r#"apiVersion: gwtest/v1alpha1
kind: Test
name: {name}
steps:
  - name: call
    request:
      url: ${{gw}}/{name}
      headers: {{x-otlp-grpc: "${{otlp.grpc}}", x-spans: {mode}, x-note: "${{otlp.grpc}} ${{otlp.http}}"}}
      expect: {{status: 200}}
    consecutive: 1
  - name: check
    timeout: 2s
    spans:
{spans}"#
    )
}

const FULL_TABLE: [&str; 7] = [
    "    name           service       kind      parent",
    "    GET /example   test-gateway  server    (the request)",
    "    route example  test-gateway  internal  \"GET /example\"",
    "    cache lookup   test-gateway  internal  \"route example\"",
    "    cache lookup   test-gateway  internal  \"route example\"",
    "    upstream call  test-gateway  client    \"route example\"",
    "    auth check     auth-sidecar  internal  \"GET /example\"",
];

/// Every way a spans step fails, through the binary: the exact lines it prints (what was
/// expected, the last attempt's verdict and class, the spans seen, the closest names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_was_seen() {
    gwtest::install_crypto_provider();
    let gw = TestGateway::start().await;
    let dir = Workspace::new("failing");
    let tests = [
        failing_test("decoy", "decoy", "      expect: [{name: GET /example}]\n"),
        failing_test(
            "typo",
            "full",
            "      expect: [{name: GET /exampel, kind: server}]\n",
        ),
        failing_test(
            "no-regex-match",
            "full",
            "      expect: [{name-matches: \"^POST \"}]\n",
        ),
        failing_test(
            "string-is-not-int",
            "full",
            "      service: test-gateway\n      expect:\n        - name: GET /example\n          attributes: {http.response.status_code: \"200\"}\n",
        ),
        failing_test(
            "too-many",
            "full",
            "      expect: [{name: cache lookup, count: 1}]\n",
        ),
        failing_test(
            "too-few",
            "full",
            "      expect: [{name: cache lookup, count: 3}]\n",
        ),
        failing_test("absent", "full", "      absent: [cache lookup]\n"),
        failing_test(
            "wrong-parent",
            "full",
            "      expect: [{name: upstream call, parent: GET /example}]\n",
        ),
        failing_test(
            "wrong-kind",
            "full",
            "      expect: [{name: route example, kind: server}]\n",
        ),
        failing_test(
            "wrong-service",
            "full",
            "      service: edge-proxy\n      expect: [{name: GET /example}]\n",
        ),
    ];
    let tests = tests.join("---\n");
    suite(&dir, "failing", &tests);
    let var = format!("gw={}", gw.url);
    let out = gwtest(
        dir.path(),
        &["run", "failing", "--var", &var, "-j", "10"],
        &[],
    )
    .await;
    assert_summary(&out, 1, "10 tests: 0 passed, 0 flaky, 10 failed, 0 skipped");
    gw.exports_settled().await;

    let expect = |test: &str, spans_expected: &str, last: &str, extra: &[&str]| {
        let trace = hex(&gw.request(&format!("/{test}")).trace_id);
        // The spans step starts 8 lines after the test's `name:` line.
        let line = line_of(&tests, &format!("name: {test}")) + 8;
        let mut lines = vec![
            format!("  step 2 \"check\" (spans) at failing/t.test.yaml:{line}:5"),
            format!(
                "  expected: {} in trace {trace} of the last request",
                spans_expected
            ),
            format!("  ...last: {} ", last.replace("TRACE", &trace)),
        ];
        // `...` stops before "last:", the class closes the line.
        let (pre, post) = last.rsplit_once(" [").unwrap();
        lines[2] = format!("  ...last: {} [{post}", pre.replace("TRACE", &trace));
        lines.extend(extra.iter().map(|s| s.to_string()));
        lines.push("  steps: ✓ call (0.0s)  ✗ check (2.0s, 5 attempts)".into());
        assert_block(&out, &format!("failing/{test}"), &lines);
    };
    let mut seen_full = vec!["  spans seen:"];
    seen_full.extend(FULL_TABLE);

    expect(
        "decoy",
        "\"GET /example\"",
        "no span \"GET /example\" among 1 span (closest: \"GET /other\") [missing-span]",
        &[
            "  spans seen:",
            "    name        service       kind    parent",
            "    GET /other  test-gateway  server  (the request)",
        ],
    );
    expect(
        "typo",
        "\"GET /exampel\" (server)",
        "no span \"GET /exampel\" among 6 spans (closest: \"GET /example\", \"route example\", \"upstream call\") [missing-span]",
        &seen_full,
    );
    expect(
        "no-regex-match",
        "matching /^POST /",
        "no span matching /^POST / among 6 spans [missing-span]",
        &seen_full,
    );
    let mut with_attributes = seen_full.clone();
    with_attributes.extend([
        "  attributes of GET /example:",
        "    http.response.status_code: 200",
        "    http.route: \"/example\"",
        "    upstream.latency_ms: 12.5",
        "    retry.enabled: true",
    ]);
    expect(
        "string-is-not-int",
        "from service \"test-gateway\": \"GET /example\" (http.response.status_code=\"200\")",
        "span \"GET /example\": http.response.status_code: expected a string \"200\", got a number 200 (values compare with their type) [attribute]",
        &with_attributes,
    );
    expect(
        "too-many",
        "\"cache lookup\" (exactly 1)",
        "expected exactly 1 span \"cache lookup\", got 2 [unexpected-span]",
        &seen_full,
    );
    expect(
        "too-few",
        "\"cache lookup\" (exactly 3)",
        "expected exactly 3 spans \"cache lookup\", got 2 so far [missing-span]",
        &seen_full,
    );
    expect(
        "absent",
        "no span \"cache lookup\"",
        "span \"cache lookup\" must not appear, found 2 (under \"route example\", \"route example\") [unexpected-span]",
        &seen_full,
    );
    expect(
        "wrong-parent",
        "\"upstream call\" under \"GET /example\"",
        "span \"upstream call\" is not under \"GET /example\"; its parent: \"route example\" [missing-span]",
        &seen_full,
    );
    expect(
        "wrong-kind",
        "\"route example\" (server)",
        "span \"route example\" is internal, expected server [attribute]",
        &seen_full,
    );
    expect(
        "wrong-service",
        "from service \"edge-proxy\": \"GET /example\"",
        "6 spans in trace TRACE, none from service \"edge-proxy\" (services seen: auth-sidecar, test-gateway) [missing-span]",
        &seen_full,
    );
}

/// No span for the request's trace: with nothing received at all, the step says the exporter
/// never reached the receiver and where to point it; with spans of another trace only, how
/// many arrived and that the traceparent is probably not propagated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_trace_says_how_many_spans_the_receiver_got() {
    gwtest::install_crypto_provider();
    let gw = TestGateway::start().await;
    let silent = Workspace::new("silent");
    let orphan = Workspace::new("orphan");
    let spans = "      expect: [{name: GET /example}]\n";
    let silent_suite = failing_test("silent", "none", spans);
    let orphan_suite = failing_test("orphan", "orphan", spans);
    suite(&silent, "silent", &silent_suite);
    suite(&orphan, "orphan", &orphan_suite);
    let var = format!("gw={}", gw.url);
    let s = silent.gwtest(&["run", "silent", "--var", &var]).spawn();
    let o = orphan.gwtest(&["run", "orphan", "--var", &var]).spawn();
    let (s, o) = tokio::join!(s.finish(), o.finish());
    assert_eq!(s.code, Some(1), "{s}");
    assert_eq!(o.code, Some(1), "{o}");
    gw.exports_settled().await;
    let line = line_of(&silent_suite, "- name: check");

    let req = gw.request("/silent");
    let trace = hex(&req.trace_id);
    let note = req.note.unwrap();
    let (grpc, http) = note.split_once(' ').unwrap();
    assert!(grpc.starts_with("http://127.0.0.1:"), "{note}");
    assert!(http.starts_with("http://127.0.0.1:"), "{note}");
    assert_ne!(grpc, http);
    assert_block(
        &s,
        "silent/silent",
        &[
            format!("  step 2 \"check\" (spans) at silent/t.test.yaml:{line}:5"),
            format!("  expected: \"GET /example\" in trace {trace} of the last request"),
            format!(
                "  ...last: no span for trace {trace} (the receiver got no span at all since the \
                 run started: the exporter never reached it) [no-trace]"
            ),
            format!(
                "  hint: point the system under test's OTLP exporter at {grpc} (gRPC) or \
                 {http}/v1/traces (HTTP)"
            ),
            "  steps: ✓ call (0.0s)  ✗ check (2.0s, 5 attempts)".into(),
        ],
    );

    let req = gw.request("/orphan");
    let trace = hex(&req.trace_id);
    assert_ne!(req.other_trace, Some(req.trace_id));
    assert_block(
        &o,
        "orphan/orphan",
        &[
            format!("  step 2 \"check\" (spans) at orphan/t.test.yaml:{line}:5"),
            format!("  expected: \"GET /example\" in trace {trace} of the last request"),
            format!(
                "  ...last: no span for trace {trace} (the receiver got 6 spans in total, 1 other \
                 trace since this test started (is the traceparent header propagated?)) [no-trace]"
            ),
            "  hint: spans arrive, but not for this request: does the system under test continue \
             the incoming traceparent header?"
                .into(),
            "  steps: ✓ call (0.0s)  ✗ check (2.0s, 5 attempts)".into(),
        ],
    );
}

/// A port that was free a moment ago (the listener is dropped: a tiny race, retried on).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const FIXED_PORTS: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: default-endpoint
steps:
  - name: call
    request:
      url: ${gw}/default-endpoint
      headers: {x-note: "${otlp.grpc} ${otlp.http}"}
      expect: {status: 200}
    consecutive: 1
  - name: check
    timeout: 10s
    spans:
      expect: [{name: GET /example, count: 1}, {name: auth check}]
---
apiVersion: gwtest/v1alpha1
kind: Test
name: http-by-address
steps:
  - name: call
    request:
      url: ${gw}/http-by-address
      headers: {x-otlp-http: "${http}"}
      expect: {status: 200}
    consecutive: 1
  - name: check
    timeout: 10s
    spans:
      expect: [{name: upstream call, kind: client}, {name: auth check}]
"#;

/// `--otlp-listen` / `--otlp-http-listen` with ports the test reserved: the receiver listens
/// there, `${otlp.grpc}` / `${otlp.http}` name them, and a gateway configured with the
/// address (not told by the suite) reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_listen_addresses() {
    gwtest::install_crypto_provider();
    let dir = Workspace::new("fixed");
    suite(&dir, "fixed", FIXED_PORTS);
    for round in 1..=3 {
        let gw = TestGateway::start().await;
        let (p, q) = (free_port(), free_port());
        if p == q {
            continue;
        }
        gw.set_default_grpc(&format!("http://127.0.0.1:{p}"));
        let (grpc, http) = (format!("127.0.0.1:{p}"), format!("127.0.0.1:{q}"));
        let vars = [
            format!("gw={}", gw.url),
            format!("http=http://127.0.0.1:{q}"),
        ];
        let args = [
            "run",
            "fixed",
            "--otlp-listen",
            &grpc,
            "--otlp-http-listen",
            &http,
            "--var",
            &vars[0],
            "--var",
            &vars[1],
        ];
        let out = gwtest(dir.path(), &args, &[]).await;
        if out.code == Some(3) && out.stderr.contains("cannot listen on") && round < 3 {
            // Someone took the reserved port in between: reserve again.
            continue;
        }
        assert_eq!(out.code, Some(0), "{out}");
        gw.exports_settled().await;
        assert_eq!(
            gw.request("/default-endpoint").note.as_deref(),
            Some(format!("http://127.0.0.1:{p} http://127.0.0.1:{q}").as_str())
        );
        assert_eq!(gw.request("/http-by-address").status, 200);
        return;
    }
    panic!("no free port pair in 3 rounds");
}

/// A receiver address already in use is an infrastructure error (exit 3) naming it, before
/// any test runs; for the gRPC and the HTTP listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_receiver_port_exits_3_naming_the_address() {
    let dir = Workspace::new("taken");
    suite(&dir, "fixed", FIXED_PORTS);
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().to_string();
    for (flag, what) in [
        ("--otlp-listen", "OTLP/gRPC"),
        ("--otlp-http-listen", "OTLP/HTTP"),
    ] {
        let out = gwtest(
            dir.path(),
            &[
                "run",
                "fixed",
                flag,
                &taken,
                "--var",
                "gw=http://127.0.0.1:9",
                "--var",
                "http=x",
            ],
            &[],
        )
        .await;
        assert_eq!(out.code, Some(3), "{out}");
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: cannot listen on {taken} ({what}): ")),
            "{out}"
        );
        assert!(!out.stdout.contains("running"), "{out}");
    }
    drop(held);
}

const EXPORTED: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: traced
steps:
  - name: call
    request:
      url: ${gw}/traced
      headers: {x-otlp-grpc: "${otlp.grpc},${collector}", x-fail-first: "1"}
      expect: {status: 200}
    consecutive: 1
    interval: 50ms
  - name: gateway spans
    timeout: 10s
    spans:
      expect:
        - {name: GET /example, count: 1, attributes: {http.response.status_code: 200}}
        - {name: route example, parent: GET /example}
        - {name: auth check}
"#;

const BROKEN: &str = r#"---
apiVersion: gwtest/v1alpha1
kind: Test
name: broken
retries: 1
steps:
  - name: call
    request:
      url: ${gw}/broken
      headers: {x-otlp-grpc: "${otlp.grpc},${collector}"}
      expect: {status: 200}
    consecutive: 1
  - name: missing span
    timeout: 1s
    spans:
      expect: [{name: GET /missing}]
  - name: never
    sleep: 1ms
"#;

/// The collector: gwtest's own receiver and span store, in this process.
fn collector() -> (Arc<SpanStore>, Receiver) {
    let store = Arc::new(SpanStore::new(100_000));
    let r = Receiver::start("127.0.0.1:0", "127.0.0.1:0", store.clone()).unwrap();
    (store, r)
}

fn all_spans(store: &SpanStore) -> Vec<Arc<StoredSpan>> {
    store
        .select(&Selection::Since(0))
        .spans
        .into_iter()
        .map(|s| s.span)
        .collect()
}

fn dump(spans: &[Arc<StoredSpan>]) -> String {
    let mut s = String::new();
    for sp in spans {
        s.push_str(&format!(
            "{} {} parent={:?} {:?} svc={:?} {:?} {:?}\n",
            hex(&sp.trace_id),
            hex(&sp.span_id),
            sp.parent_span_id.map(|p| hex(&p)),
            sp.name,
            sp.service,
            sp.status,
            sp.attributes
        ));
    }
    s
}

fn str_attr<'a>(s: &'a StoredSpan, key: &str) -> Option<&'a str> {
    s.attribute(key).and_then(AttrValue::as_str)
}

fn int_attr(s: &StoredSpan, key: &str) -> Option<i64> {
    match s.attribute(key) {
        Some(AttrValue::Int(i)) => Some(*i),
        _ => None,
    }
}

/// What the collector got, with lookups that explain themselves when they fail.
struct Collected {
    spans: Vec<Arc<StoredSpan>>,
    /// The `service.name` of gwtest's own spans.
    service: String,
}

impl Collected {
    fn dump(&self) -> String {
        dump(&self.spans)
    }

    /// The one span named `name` whose parent is `parent` (`None`: a root span).
    fn child(&self, parent: Option<&StoredSpan>, name: &str) -> Arc<StoredSpan> {
        let want = parent.map(|p| p.span_id);
        let found: Vec<_> = self
            .spans
            .iter()
            .filter(|s| &*s.name == name && s.parent_span_id == want)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one span {name:?} under {:?}; collected:\n{}",
            parent.map(|p| &p.name),
            self.dump()
        );
        found[0].clone()
    }

    fn children(&self, parent: &StoredSpan) -> Vec<Arc<StoredSpan>> {
        self.spans
            .iter()
            .filter(|s| s.parent_span_id == Some(parent.span_id))
            .cloned()
            .collect()
    }
}

/// Check the attributes a gwtest span carries: outcome, attempts, class.
fn assert_outcome(
    s: &StoredSpan,
    outcome: &str,
    attempts: Option<i64>,
    class: Option<&str>,
    all: &Collected,
) {
    let ctx = || format!("span {:?}; collected:\n{}", s.name, all.dump());
    assert_eq!(str_attr(s, "gwtest.outcome"), Some(outcome), "{}", ctx());
    if let Some(n) = attempts {
        assert_eq!(int_attr(s, "gwtest.attempts"), Some(n), "{}", ctx());
    }
    assert_eq!(str_attr(s, "gwtest.class"), class, "{}", ctx());
    assert_eq!(
        s.service.as_deref(),
        Some(all.service.as_str()),
        "{}",
        ctx()
    );
    let status = if outcome == "passed" {
        SpanStatus::Ok
    } else {
        SpanStatus::Error
    };
    assert_eq!(s.status, status, "{}", ctx());
}

/// The request step `call` of `test`: its attempt spans in order (HTTP client spans, as the
/// semantic conventions name and describe them), and under each the gateway's spans for that
/// attempt (the traceparent it got was the attempt span's id).
fn assert_request_step(all: &Collected, test: &StoredSpan, reqs: &[Seen], url: &str) {
    let call = all.child(Some(test), "call");
    assert_outcome(&call, "passed", Some(reqs.len() as i64), None, all);
    let mut attempts = all.children(&call);
    attempts.sort_by_key(|a| int_attr(a, "gwtest.attempt"));
    assert_eq!(attempts.len(), reqs.len(), "{}", all.dump());
    let port = reqwest::Url::parse(url).unwrap().port().unwrap();
    for (i, (req, attempt)) in reqs.iter().zip(&attempts).enumerate() {
        assert_eq!(&*attempt.name, "GET", "{}", all.dump());
        assert_eq!(attempt.kind_str(), "client");
        assert_eq!(int_attr(attempt, "gwtest.attempt"), Some(i as i64 + 1));
        assert_eq!(str_attr(attempt, "http.request.method"), Some("GET"));
        assert_eq!(str_attr(attempt, "url.full"), Some(url));
        assert_eq!(str_attr(attempt, "server.address"), Some("127.0.0.1"));
        assert_eq!(int_attr(attempt, "server.port"), Some(i64::from(port)));
        assert_eq!(
            int_attr(attempt, "http.response.status_code"),
            Some(i64::from(req.status))
        );
        if req.status == 200 {
            assert_outcome(attempt, "passed", None, None, all);
            assert_eq!(str_attr(attempt, "error.type"), None);
        } else {
            assert_outcome(attempt, "failed", None, Some("status"), all);
            assert_eq!(
                str_attr(attempt, "error.type"),
                Some(req.status.to_string().as_str())
            );
        }
        // The gateway continued exactly this attempt's traceparent.
        assert_eq!(req.trace_id, attempt.trace_id, "{}", all.dump());
        assert_eq!(req.parent, Some(attempt.span_id), "{}", all.dump());
        let server = all.child(Some(attempt), "GET /example");
        assert_eq!(server.service.as_deref(), Some("test-gateway"));
        assert_eq!(server.span_id, req.server_span);
        assert_eq!(
            int_attr(&server, "http.response.status_code"),
            Some(i64::from(req.status))
        );
        let route = all.child(Some(&server), "route example");
        assert_eq!(all.children(&route).len(), 3, "{}", all.dump());
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Flags,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL), `OTEL_SERVICE_NAME`, `_PROTOCOL` only for
    /// gRPC (http/protobuf is the default).
    Env,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL, winning over a wrong generic one),
    /// `_TRACES_PROTOCOL`, gzip by `OTEL_EXPORTER_OTLP_COMPRESSION`, the service name from
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    TracesEnv,
}

/// `gwtest run` exporting to an in-process collector over `protocol` (given by flags or by
/// `OTEL_EXPORTER_OTLP_*`), with a passing test (a request retried once, then a spans
/// step) and, when `failing`, a test whose spans step fails.
async fn export_run(protocol: &str, via: Via, failing: bool) {
    gwtest::install_crypto_provider();
    let gw = TestGateway::start().await;
    let (store, col) = collector();
    let dir = Workspace::new("export");
    let tests = if failing {
        format!("{EXPORTED}{BROKEN}")
    } else {
        EXPORTED.to_string()
    };
    suite(&dir, "ex", &tests);
    // The endpoint of the other protocol would fail: spans arriving prove the protocol.
    let endpoint = match protocol {
        "grpc" => col.grpc_endpoint(),
        _ => col.http_endpoint(),
    };
    let vars = [
        format!("gw={}", gw.url),
        format!("collector={}", col.grpc_endpoint()),
    ];
    let mut args = vec![
        "run", "ex", "--var", &vars[0], "--var", &vars[1], "--json", "r.json",
    ];
    let mut env = vec![];
    let traces_url = format!("{}/v1/traces", col.http_endpoint());
    let closed = format!("http://127.0.0.1:{}", free_port());
    let service = match via {
        Via::Flags => {
            args.extend([
                "--otlp-export",
                &endpoint,
                "--otlp-export-protocol",
                protocol,
            ]);
            "gwtest"
        }
        Via::Env => {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()));
            env.push(("OTEL_SERVICE_NAME", "edge-e2e"));
            env.push((
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=not-this,team=edge",
            ));
            // http/protobuf is the default: leave the variable out then.
            if protocol != "http/protobuf" {
                env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", protocol));
            }
            "edge-e2e"
        }
        Via::TracesEnv => {
            assert_eq!(protocol, "http/protobuf");
            env.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_url.as_str()));
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", closed.as_str()));
            env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"));
            env.push(("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"));
            env.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"));
            env.push(("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"));
            "from-attrs"
        }
    };
    let out = gwtest(dir.path(), &args, &env).await;
    assert_eq!(out.code, Some(if failing { 1 } else { 0 }), "{out}");
    assert!(out.stderr.is_empty(), "{out}");
    gw.exports_settled().await;
    let report = read_json(&dir.path().join("r.json"));
    let all = Collected {
        spans: all_spans(&store),
        service: service.to_owned(),
    };
    col.shutdown().await;

    // One trace: the run's, as the JSON report names it.
    let trace_id = report["trace_id"].as_str().unwrap();
    for s in &all.spans {
        assert_eq!(hex(&s.trace_id), trace_id, "{}", all.dump());
    }
    let run = all.child(None, "gwtest run");
    assert_eq!(run.service.as_deref(), Some(service));
    assert_eq!(str_attr(&run, "gwtest.run_id"), report["run_id"].as_str());
    assert_eq!(int_attr(&run, "gwtest.tests.passed"), Some(1));
    assert_eq!(
        int_attr(&run, "gwtest.tests.failed"),
        Some(if failing { 1 } else { 0 })
    );
    assert_eq!(
        run.attribute("gwtest.interrupted"),
        Some(&AttrValue::Bool(false))
    );
    let suite_span = all.child(Some(&run), "suite ex");
    assert_eq!(str_attr(&suite_span, "gwtest.suite"), Some("ex"));

    let traced = all.child(Some(&suite_span), "test ex/traced");
    assert_outcome(&traced, "passed", None, None, &all);
    assert_eq!(int_attr(&traced, "gwtest.try"), Some(1));
    assert_request_step(
        &all,
        &traced,
        &gw.requests_to("/traced"),
        &format!("{}/traced", gw.url),
    );
    assert_eq!(
        gw.requests_to("/traced")
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [503, 200]
    );
    let spans_step = all.child(Some(&traced), "gateway spans");
    let attempts = json_steps(&report, "traced")[1]["attempts"]
        .as_i64()
        .unwrap();
    assert_outcome(&spans_step, "passed", Some(attempts), None, &all);
    assert_eq!(str_attr(&spans_step, "gwtest.step.kind"), Some("spans"));
    assert_eq!(
        int_attr(&spans_step, "code.line.number"),
        Some(line_of(&tests, "- name: gateway spans") as i64)
    );
    assert_eq!(all.children(&traced).len(), 2, "{}", all.dump());

    let mut expected = 1 + 1 + 1 + (1 + 2 + 2 * 6) + 1;
    if failing {
        // Two tries (`retries: 1`): the first closed as retrying, each with its own steps.
        let mut tries: Vec<_> = all
            .children(&suite_span)
            .into_iter()
            .filter(|s| &*s.name == "test ex/broken")
            .collect();
        tries.sort_by_key(|s| int_attr(s, "gwtest.try"));
        assert_eq!(tries.len(), 2, "{}", all.dump());
        let reqs = gw.requests_to("/broken");
        assert_eq!(reqs.len(), 2);
        let steps = json_steps(&report, "broken");
        for (i, (broken, outcome)) in tries.iter().zip(["retrying", "failed"]).enumerate() {
            assert_eq!(int_attr(broken, "gwtest.try"), Some(i as i64 + 1));
            assert_outcome(broken, outcome, None, Some("missing-span"), &all);
            assert_request_step(&all, broken, &reqs[i..=i], &format!("{}/broken", gw.url));
            let missing = all.child(Some(broken), "missing span");
            let attempts = (i == 1).then(|| steps[1]["attempts"].as_i64().unwrap());
            assert_outcome(&missing, "failed", attempts, Some("missing-span"), &all);
            assert!(
                str_attr(&missing, "gwtest.failure")
                    .unwrap()
                    .ends_with("last: no span \"GET /missing\" among 6 spans (closest: \"GET /example\", \"auth check\", \"cache lookup\")"),
                "{}",
                all.dump()
            );
            // The step that never ran has no span.
            assert_eq!(all.children(broken).len(), 2, "{}", all.dump());
        }
        expected += 2 * (1 + (1 + 1 + 6) + 1);
    }
    assert_eq!(all.spans.len(), expected, "{}", all.dump());
}

/// One test per way of exporting (a test each, so they run in parallel and fail by name):
/// `name: protocol, via, failing;`, see [`export_run`].
macro_rules! export_tests {
    ($($(#[doc = $doc:expr])* $name:ident: $protocol:expr, $via:expr, $failing:expr;)*) => {$(
        $(#[doc = $doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            export_run($protocol, $via, $failing).await;
        }
    )*};
}

export_tests! {
    /// The run's own trace over OTLP/gRPC (flags), on a failing run (exit 1).
    export_grpc_by_flags_on_a_failing_run: "grpc", Via::Flags, true;
    /// The run's own trace over OTLP/HTTP protobuf (flags; a bare endpoint gets `/v1/traces`).
    export_http_by_flags: "http/protobuf", Via::Flags, false;
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` alone: OTLP/HTTP protobuf, the specification's default.
    export_http_by_env: "http/protobuf", Via::Env, true;
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, no flags.
    export_grpc_by_env: "grpc", Via::Env, false;
    /// The traces-specific variables win over the generic ones; gzip when asked for.
    export_by_the_traces_variables: "http/protobuf", Via::TracesEnv, false;
}

/// `OTEL_SDK_DISABLED=true`: the variables name a collector, nothing is sent to it and nothing
/// is said about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_disabled_turns_the_variables_off() {
    let (store, col) = collector();
    let dir = Workspace::new("disabled");
    suite(
        &dir,
        "ex",
        "apiVersion: gwtest/v1alpha1\nkind: Test\nname: quick\nsteps:\n  - exec: {command: [\"true\"]}\n",
    );
    let endpoint = col.http_endpoint();
    let out = gwtest(
        dir.path(),
        &["run", "ex"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.is_empty(), "{out}");
    // Without the switch the same run does export (so the check above can fail).
    let out = gwtest(
        dir.path(),
        &["run", "ex"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    )
    .await;
    assert_eq!(out.code, Some(0), "{out}");
    let exported = all_spans(&store).len();
    col.shutdown().await;
    assert_eq!(exported, 4, "run, suite, test, step");
}

const SLOW: &str = r#"apiVersion: gwtest/v1alpha1
kind: Test
name: slow
steps:
  - name: call
    request:
      url: ${gw}/slow
      headers: {x-otlp-grpc: "${collector}"}
      expect: {status: 200}
    consecutive: 1
  - name: wait
    sleep: 60s
  - name: never
    sleep: 1ms
---
apiVersion: gwtest/v1alpha1
kind: Test
name: waiting
steps:
  - name: call
    request:
      url: ${gw}/waiting
      headers: {x-otlp-grpc: "${otlp.grpc},${collector}"}
      expect: {status: 200}
    consecutive: 1
  - name: wait
    timeout: 60s
    spans:
      expect: [{name: GET /never}]
  - name: never
    sleep: 1ms
"#;

/// Ctrl-C mid-run (exit 130): what finished is exported, what was running is closed as
/// interrupted, and the last batch is flushed before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_survives_ctrl_c() {
    gwtest::install_crypto_provider();
    let gw = TestGateway::start().await;
    let (store, col) = collector();
    let dir = Workspace::new("sigint");
    suite(&dir, "ex", SLOW);
    let vars = [
        format!("gw={}", gw.url),
        format!("collector={}", col.grpc_endpoint()),
    ];
    let export = col.http_endpoint();
    let args = [
        "run",
        "ex",
        "--var",
        &vars[0],
        "--var",
        &vars[1],
        "--otlp-export",
        &export,
        "--otlp-export-protocol",
        "http/protobuf",
    ];
    let run = dir.gwtest(&args).spawn();
    // Interrupt once the request steps are done and both tests are in their `wait` steps: the
    // `SLOW` lines (after 10s) say so.
    let run = tokio::task::spawn_blocking(move || {
        let mut run = run;
        run.wait_for_line(r"^SLOW .* ex/slow › wait$");
        run.wait_for_line(r"^SLOW .* ex/waiting › wait( \(attempt \d+\))?$");
        run.signal(libc::SIGINT);
        run
    })
    .await
    .unwrap();
    assert_eq!(gw.requests().len(), 2, "the gateway got both requests");
    // Left running, the tests would take their 60s.
    let out =
        tokio::task::spawn_blocking(move || run.wait_within(Duration::from_secs(30), "Ctrl-C"))
            .await
            .unwrap();
    assert_eq!(out.code, Some(130), "{out}");
    gw.exports_settled().await;
    let all = Collected {
        spans: all_spans(&store),
        service: "gwtest".into(),
    };
    col.shutdown().await;

    let run = all.child(None, "gwtest run");
    assert_eq!(
        run.attribute("gwtest.interrupted"),
        Some(&AttrValue::Bool(true)),
        "{}",
        all.dump()
    );
    assert_eq!(run.status, SpanStatus::Error);
    let suite = all.child(Some(&run), "suite ex");
    // A sleep is cut short; a waiting spans step says what it was waiting for.
    for (name, class, failure) in [
        ("slow", None, "interrupted during sleep"),
        (
            "waiting",
            Some("missing-span"),
            "; last: no span \"GET /never\" among 6 spans (closest: \"GET /example\", \"auth check\", \"cache lookup\")",
        ),
    ] {
        let test = all.child(Some(&suite), &format!("test ex/{name}"));
        assert_request_step(
            &all,
            &test,
            &gw.requests_to(&format!("/{name}")),
            &format!("{}/{name}", gw.url),
        );
        let wait_step = all.child(Some(&test), "wait");
        assert_outcome(&wait_step, "interrupted", None, class, &all);
        let headline = str_attr(&wait_step, "gwtest.failure").unwrap();
        assert!(
            headline.starts_with("interrupted") && headline.ends_with(failure),
            "{}",
            all.dump()
        );
        assert_outcome(&test, "interrupted", None, class, &all);
        // The step after the interrupted one never started: no span.
        assert_eq!(all.children(&test).len(), 2, "{}", all.dump());
    }
    let trace = run.trace_id;
    assert!(
        all.spans.iter().all(|s| s.trace_id == trace),
        "{}",
        all.dump()
    );
    assert_eq!(
        all.spans.len(),
        1 + 1 + 2 * (1 + (1 + 1 + 6) + 1),
        "{}",
        all.dump()
    );
}

/// An unreachable collector: the run is not held up (the export gives up within its
/// deadline), the exit code is the tests', and a warning (not a report error) names the
/// endpoint and says how many spans were lost and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_reported_not_waited_on() {
    let dir = Workspace::new("unreachable");
    suite(
        &dir,
        "ex",
        "apiVersion: gwtest/v1alpha1\nkind: Test\nname: quick\nsteps:\n  - exec: {command: [\"true\"]}\n",
    );
    let closed = format!("http://127.0.0.1:{}", free_port());
    for protocol in ["grpc", "http/protobuf"] {
        let out = gwtest(
            dir.path(),
            &[
                "run",
                "ex",
                "--otlp-export",
                &closed,
                "--otlp-export-protocol",
                protocol,
            ],
            &[],
        )
        .await;
        assert_eq!(out.code, Some(0), "{out}");
        let url = if protocol == "grpc" {
            closed.clone()
        } else {
            format!("{closed}/v1/traces")
        };
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        // run, suite, test, step
        let prefix = format!("warning: OTLP export to {url}: 4 of 4 spans not exported: ");
        assert!(lines[0].starts_with(&prefix), "{out}");
    }
}

/// `--otlp-receiver` starts the receiver for a suite without spans steps (say, one that only
/// configures the gateway's exporter): `${otlp.grpc}` / `${otlp.http}` are set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_receiver_flag_sets_the_variables_without_spans_steps() {
    let dir = Workspace::new("receiver-flag");
    suite(
        &dir,
        "ex",
        r#"apiVersion: gwtest/v1alpha1
kind: Test
name: endpoints
steps:
  - exec:
      command: [echo, "${otlp.grpc} ${otlp.http}"]
      expect:
        stdout: {matches: '^http://127\.0\.0\.1:[0-9]+ http://127\.0\.0\.1:[0-9]+\n$'}
"#,
    );
    let out = gwtest(dir.path(), &["run", "ex", "--otlp-receiver"], &[]).await;
    assert_eq!(out.code, Some(0), "{out}");
}

/// `cel:` in span expectations: `span` has the name, kind, attributes, status and parent; a
/// span matches when every expression holds, and a miss shows the operands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_checks_on_spans() {
    gwtest::install_crypto_provider();
    let gw = TestGateway::start().await;
    let dir = Workspace::new("celspans");
    let pass = failing_test(
        "celpass",
        "full",
        "      expect:\n        - name: GET /example\n          cel: [\"span.kind == 'server' && span.attributes['http.response.status_code'] == 200 && span.parent == null\"]\n        - name: upstream call\n          cel: [\"span.parent == 'route example' && span.status != 'error'\"]\n",
    );
    let fail = failing_test(
        "celfail",
        "full",
        "      expect:\n        - name: GET /example\n          cel: [\"span.attributes['upstream.latency_ms'] < 10.0\"]\n",
    );
    suite(&dir, "cel", &[pass, fail].join("---\n"));
    let var = format!("gw={}", gw.url);
    let out = gwtest(dir.path(), &["run", "cel", "--var", &var], &[]).await;
    assert_summary(&out, 1, "2 tests: 1 passed, 0 flaky, 1 failed, 0 skipped");
    let b = block(&out.stdout, "cel/celfail");
    let trace = hex(&gw.request("/celfail").trace_id);
    assert!(
        b.iter().any(|l| l.ends_with(
            "; last: span \"GET /example\": cel `span.attributes['upstream.latency_ms'] < 10.0` \
             was false: span.attributes[\"upstream.latency_ms\"] was 12.5 [cel]"
        )),
        "{}\n{out}",
        b.join("\n")
    );
    assert!(
        b.iter().any(|l| l
            == &format!(
                "  expected: \"GET /example\" where `span.attributes['upstream.latency_ms'] < 10.0` \
                 in trace {trace} of the last request"
            )),
        "{}",
        b.join("\n")
    );
}
