//! The `request` step through the real binary, against local servers that become healthy
//! late, flap, answer slowly, never answer, or answer wrongly (DESIGN §1.2, §1.3; S2, S4, S5).

mod support;

use std::time::Duration;

use support::{
    Behavior, Canned, TestServer, Workspace, about, closed_port, cut_off_request, failed_outcome,
    late_route_suites, one_test, secs, test_doc,
};

#[test]
fn a_healthy_route_passes_after_three_good_answers_in_a_row() {
    let srv = TestServer::start([("/ok", Behavior::Ok)]);
    let ws = one_test(
        "pass",
        "",
        "",
        &format!(
            "  - request:\n      url: {}\n      expect: {{status: 200, body: {{equals: ok}}}}\n",
            srv.url("/ok")
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    out.stdout_line(r"^gwtest: running 1 test from 1 suite \(-j 4, run \d{8}-\d{6}-[a-z0-9]{6}\)$");
    assert_eq!(out.outcome("s/t").tag, "PASS");
    out.assert_counts(1, 0, 0, 0);
    // Request steps need 3 passing attempts in a row by default, sent back to back.
    assert_eq!(srv.count("/ok"), 3);
}

#[test]
fn healthy_after_n_counts_consecutive_successes_exactly() {
    let srv = TestServer::start([
        ("/a", Behavior::HealthyAfter(4)),
        ("/b", Behavior::HealthyAfter(4)),
        ("/c", Behavior::HealthyAfter(2)),
    ]);
    let ws = one_test(
        "consecutive",
        "defaults: {interval: 10ms, max-interval: 20ms}",
        "",
        &format!(
            "  - request: {{url: {a}, expect: {{status: 200}}}}\n\
             \x20 - request: {{url: {b}, expect: {{status: 200}}}}\n\
             \x20   consecutive: 1\n\
             \x20 - request: {{url: {c}, expect: {{status: 200}}}}\n\
             \x20   consecutive: 5\n",
            a = srv.url("/a"),
            b = srv.url("/b"),
            c = srv.url("/c"),
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    // 4 x 503, then exactly as many 200s as the step needs in a row.
    assert_eq!(srv.count("/a"), 4 + 3, "{}", out.dump());
    assert_eq!(srv.count("/b"), 4 + 1, "{}", out.dump());
    assert_eq!(srv.count("/c"), 2 + 5, "{}", out.dump());
}

#[test]
fn a_route_that_never_passes_three_in_a_row_fails_and_says_why() {
    let srv = TestServer::start([("/flip", Behavior::Cycle(vec![200, 200, 503]))]);
    let ws = one_test(
        "never-three",
        "",
        "",
        &format!(
            "  - request: {{url: {}, expect: {{status: 200}}}}\n    timeout: 1s\n    interval: 20ms\n",
            srv.url("/flip")
        ),
    );
    let o = failed_outcome(&ws);
    assert_eq!(o.tag, "FAIL");
    let c = o.line(&format!(
        r#"^  (\d+) attempts in {}: (\d+) got status 503, (\d+) passed; last: status 503, body "bad" \(needs 3 passing attempts in a row\){} \[status\]$"#,
        about(1.0),
        cut_off_request("GET", &srv.url("/flip"))
    ));
    let (n, bad, good): (u32, u32, u32) = (
        c[1].parse().unwrap(),
        c[2].parse().unwrap(),
        c[3].parse().unwrap(),
    );
    assert_eq!(n, bad + good);
    // An attempt the deadline cut off reached the server and is not counted.
    assert_eq!(n + u32::from(o.has("; cut off after")), srv.count("/flip"));
    assert!(bad >= 3 && good >= 2 * (bad - 1), "{}", o.block);
}

#[test]
fn a_wrong_status_fails_with_the_attempt_summary_the_last_response_and_a_curl_line() {
    let srv = TestServer::start([(
        "/down",
        Behavior::Respond(Canned::new(503, "no healthy upstream").header("x-upstream", "none")),
    )]);
    let ws = one_test(
        "status",
        "",
        "",
        &format!(
            "  - name: route answers\n    request:\n      url: {}\n      headers: {{Host: example.com}}\n      expect:\n        status: [200, 204]\n    timeout: 1s\n",
            srv.url("/down")
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(0, 0, 1, 0);
    out.stdout_line(r"^failed: s/t$");
    let o = out.outcome("s/t");
    assert_eq!(o.tag, "FAIL");
    o.line(r#"^  step 1 "route answers" \(request\) at s/t\.test\.yaml:6:5$"#);
    o.line(r"^  expected: status one of 200, 204$");
    let c = o.line(&format!(
        r#"^  (\d+) attempts in {}: (\d+) got status 503; last: status 503, body "no healthy upstream"{} \[status\]$"#,
        about(1.0),
        cut_off_request("GET", &srv.url("/down"))
    ));
    assert_eq!(&c[1], &c[2]);
    let n: u32 = c[1].parse().unwrap();
    // 1s at 100ms doubling (jitter only shortens waits): 0, .1, .3, .7 -> 4 or 5 attempts.
    assert!((4..=6).contains(&n), "{}", o.block);
    assert_eq!(n + u32::from(o.has("; cut off after")), srv.count("/down"));
    o.line(r"^  last response:\n    HTTP/1\.1 503\n(    .*\n)*    x-upstream: none\n(    .*\n)*    no healthy upstream$");
    o.line(&format!(
        r"^  reproduce:\n    curl -sS -i -H 'host: example\.com' --max-time 10 {}$",
        regex::escape(&srv.url("/down"))
    ));
    o.line(&format!(
        r"^  steps: ✗ route answers \({}, \d attempts\)$",
        about(1.0)
    ));
}

/// Several wrong answers, one test each, in one run: each names its class and what differed.
#[test]
fn wrong_headers_bodies_and_json_each_name_their_class_and_difference() {
    let json_doc = serde_json::json!({
        "items": [{"name": "a", "v": 1}, {"name": "b", "v": 2, "extra": true}],
        "meta": {"count": 2, "x": "y"}
    });
    let srv = TestServer::start([
        (
            "/text",
            Behavior::Respond(
                Canned::new(200, "hello world")
                    .header("content-type", "text/plain")
                    .header("x-debug", "1"),
            ),
        ),
        ("/json", Behavior::Respond(Canned::json(200, json_doc))),
    ]);
    let ws = Workspace::new("wrong");
    ws.suite("s", "defaults: {timeout: 300ms, consecutive: 1}");
    let text = srv.url("/text");
    let json = srv.url("/json");
    let cases: Vec<(&str, String)> = vec![
        (
            "header-exact",
            format!("{{url: {text}, expect: {{headers: {{Content-Type: application/json}}}}}}"),
        ),
        (
            "header-missing",
            format!("{{url: {text}, expect: {{headers: {{x-request-id: abc}}}}}}"),
        ),
        (
            "header-regex",
            format!("{{url: {text}, expect: {{headers: {{content-type: {{matches: json}}}}}}}}"),
        ),
        (
            "header-regex-ok",
            format!("{{url: {json}, expect: {{headers: {{content-type: {{matches: json}}}}}}}}"),
        ),
        (
            "absent",
            format!("{{url: {text}, expect: {{absent-headers: [X-Debug]}}}}"),
        ),
        (
            "absent-ok",
            format!("{{url: {json}, expect: {{absent-headers: [x-debug]}}}}"),
        ),
        (
            "body-equals",
            format!("{{url: {text}, expect: {{body: {{equals: hello}}}}}}"),
        ),
        (
            "body-contains",
            format!("{{url: {text}, expect: {{body: {{contains: bye}}}}}}"),
        ),
        (
            "body-matches",
            format!("{{url: {text}, expect: {{body: {{matches: '^world'}}}}}}"),
        ),
        (
            "body-matches-ok",
            format!("{{url: {text}, expect: {{body: {{matches: 'w.rld$'}}}}}}"),
        ),
        (
            "json-ok",
            format!(
                "{{url: {json}, expect: {{json: {{$.items: [{{name: b}}, {{name: a, v: 1}}], $.meta: {{count: 2}}}}}}}}"
            ),
        ),
        (
            "json-scalar-type",
            format!("{{url: {json}, expect: {{json: {{$.meta: {{count: \"2\"}}}}}}}}"),
        ),
        (
            "json-list",
            format!("{{url: {json}, expect: {{json: {{$.items: [{{name: a}}, {{name: a}}]}}}}}}"),
        ),
        (
            "json-nothing",
            format!("{{url: {json}, expect: {{json: {{$.missing: 1}}}}}}"),
        ),
        (
            "not-json",
            format!("{{url: {text}, expect: {{json: {{$.a: 1}}}}}}"),
        ),
    ];
    for (name, req) in &cases {
        ws.write(
            &format!("s/{name}.test.yaml"),
            &test_doc(name, "", &format!("  - request: {req}\n")),
        );
    }
    let out = ws.gwtest(&["run", "s", "-j", "16"]).run();
    out.assert_exit(1);
    out.assert_counts(4, 0, cases.len() - 4, 0);
    for ok in ["header-regex-ok", "absent-ok", "body-matches-ok", "json-ok"] {
        assert_eq!(
            out.outcome(&format!("s/{ok}")).tag,
            "PASS",
            "{ok}\n{}",
            out.dump()
        );
    }
    let fail = |name: &str, expected: &str, headline: &str| {
        let o = out.outcome(&format!("s/{name}"));
        assert_eq!(o.tag, "FAIL", "{name}");
        o.line(&format!("^  expected: {}$", regex::escape(expected)));
        o.line(&format!(r"^  \d+ attempts? in 0\.\ds: {headline}$"));
    };
    fail(
        "header-exact",
        "status below 400, header content-type: \"application/json\"",
        r#"\d+ had header content-type: "text/plain"; last: status 200, header content-type: "text/plain" \(expected "application/json"\) \[header\]"#,
    );
    fail(
        "header-missing",
        "status below 400, header x-request-id: \"abc\"",
        r"\d+ had no header x-request-id; last: status 200, no header x-request-id \[header\]",
    );
    fail(
        "header-regex",
        "status below 400, header content-type matches /json/",
        r#"\d+ had header content-type: "text/plain"; last: status 200, header content-type: "text/plain" \(expected /json/\) \[header\]"#,
    );
    fail(
        "absent",
        "status below 400, no header x-debug",
        r#"\d+ had header x-debug \(expected absent\); last: status 200, header x-debug: "1" should be absent \[header\]"#,
    );
    fail(
        "body-equals",
        "status below 400, body equals \"hello\"",
        r#"\d+ body did not match \(equals "hello"\); last: status 200, body "hello world"; expected body equals "hello" \[body\]"#,
    );
    fail(
        "body-contains",
        "status below 400, body contains \"bye\"",
        r#"\d+ body did not match \(contains "bye"\); last: status 200, body "hello world"; expected body contains "bye" \[body\]"#,
    );
    fail(
        "body-matches",
        "status below 400, body matches /^world/",
        r#"\d+ body did not match \(matches /\^world/\); last: status 200, body "hello world"; expected body matches /\^world/ \[body\]"#,
    );
    fail(
        "json-scalar-type",
        "status below 400, $.meta = {\"count\":\"2\"}",
        r#"\d+ \$\.meta was \{"count":2,"x":"y"\}; last: status 200, \$\.meta\.count: expected a string "2", got a number 2 \(values compare with their type\) \[json\]"#,
    );
    fail(
        "json-list",
        "status below 400, $.items = [{\"name\":\"a\"},{\"name\":\"a\"}]",
        r#"\d+ \$\.items was .*; last: status 200, \$\.items\[\*\]: 2 expected elements need distinct matches; \{"name":"a"\} is left without one.* \[json\]"#,
    );
    fail(
        "json-nothing",
        "status below 400, $.missing = 1",
        r"\d+ \$\.missing matched nothing; last: status 200, \$\.missing matched nothing in the body \[json\]",
    );
    fail(
        "not-json",
        "status below 400, $.a = 1",
        r#"\d+ body was not JSON; last: status 200, body "hello world"; body is not JSON: .* \[json\]"#,
    );
}

#[test]
fn requests_carry_method_headers_bodies_and_a_fresh_traceparent_per_attempt() {
    let srv = TestServer::start([
        ("/echo", Behavior::Echo),
        ("/json-body", Behavior::Echo),
        ("/fixed-trace", Behavior::Echo),
    ]);
    let fixed = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let ws = one_test(
        "echo",
        "vars: {token: s3cret}",
        "",
        &format!(
            r#"  - request:
      method: POST
      url: {echo}
      headers: {{X-Token: "${{token}}", Host: example.com}}
      body: "plain ${{token}} text"
      expect:
        status: 200
        headers: {{content-type: {{matches: json}}}}
        json:
          $.method: POST
          $.body: plain s3cret text
          $.headers: {{x-token: s3cret, host: example.com}}
  - request:
      method: PUT
      url: {json_body}
      body: {{name: demo, ports: [80, 443], nested: {{enabled: true}}}}
      expect:
        json: {{"$.headers['content-type']": application/json}}
    consecutive: 1
  - request:
      url: {fixed_trace}
      headers: {{traceparent: "{fixed}"}}
"#,
            echo = srv.url("/echo"),
            json_body = srv.url("/json-body"),
            fixed_trace = srv.url("/fixed-trace"),
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);

    let seen = srv.seen("/echo");
    assert_eq!(seen.len(), 3, "{}", out.dump());
    let tp = regex::Regex::new(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$").unwrap();
    let mut traces = std::collections::HashSet::new();
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.header("x-token"), Some("s3cret"));
        assert_eq!(s.header("host"), Some("example.com"));
        assert_eq!(s.body_text(), "plain s3cret text");
        let t = s.header("traceparent").expect("traceparent sent");
        let c = tp
            .captures(t)
            .unwrap_or_else(|| panic!("bad traceparent {t}"));
        assert_ne!(&c[1], "00000000000000000000000000000000");
        traces.insert(c[1].to_owned());
    }
    assert_eq!(traces.len(), 3, "each attempt starts its own trace");

    let put = srv.seen("/json-body");
    assert_eq!(put.len(), 1);
    assert_eq!(put[0].method, "PUT");
    assert_eq!(put[0].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&put[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": "demo", "ports": [80, 443], "nested": {"enabled": true}})
    );

    let fixed_seen = srv.seen("/fixed-trace");
    assert_eq!(fixed_seen.len(), 3);
    for s in &fixed_seen {
        let all: Vec<&str> = s
            .headers
            .iter()
            .filter(|(k, _)| k == "traceparent")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            all,
            vec![fixed],
            "a suite's own traceparent is sent as is, once"
        );
    }
}

#[test]
fn captures_feed_later_steps_and_escaped_dollars_reach_the_server_literally() {
    let srv = TestServer::start([
        (
            "/create",
            Behavior::Respond(Canned::json(
                201,
                serde_json::json!({"id": "abc-42", "owner": {"name": "ann"}}),
            )),
        ),
        ("/items/*", Behavior::Echo),
    ]);
    let ws = one_test(
        "capture",
        "",
        "",
        &format!(
            r#"  - request:
      method: POST
      url: {create}
      expect: {{status: 201}}
      capture: {{id: $.id, owner: $.owner.name}}
    consecutive: 1
  - request:
      url: "{items}/${{id}}?q=$${{literal}}"
      headers: {{X-Owner: "${{owner}}", X-Raw: "$${{not_a_var}}"}}
      expect:
        json: {{$.path: /items/abc-42, "$.headers['x-owner']": ann}}
    consecutive: 1
"#,
            create = srv.url("/create"),
            items = srv.url("/items"),
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(0);
    let seen = srv.seen("/items/abc-42");
    assert_eq!(seen.len(), 1, "{}", out.dump());
    assert_eq!(seen[0].header("x-owner"), Some("ann"));
    assert_eq!(seen[0].header("x-raw"), Some("${not_a_var}"));
    assert_eq!(seen[0].query.as_deref(), Some("q=${literal}"));
}

#[test]
fn redirects_are_answers_unless_follow_redirects_is_set() {
    let srv = TestServer::start([
        ("/old", Behavior::Redirect("/new".into())),
        ("/new", Behavior::Ok),
    ]);
    let ws = Workspace::new("redirect");
    ws.suite("s", "defaults: {consecutive: 1, timeout: 500ms}");
    let old = srv.url("/old");
    ws.write(
        "s/a.test.yaml",
        &test_doc(
            "not-followed",
            "",
            &format!(
                "  - request: {{url: {old}, expect: {{status: 302, headers: {{location: /new}}}}}}\n"
            ),
        ),
    );
    ws.write(
        "s/b.test.yaml",
        &test_doc(
            "followed",
            "",
            &format!(
                "  - request: {{url: {old}, follow-redirects: true, expect: {{status: 200, body: {{equals: ok}}}}}}\n"
            ),
        ),
    );
    ws.write(
        "s/c.test.yaml",
        &test_doc(
            "expects-200",
            "",
            &format!("  - request: {{url: {old}, expect: {{status: 200}}}}\n"),
        ),
    );
    // One at a time, so the counts below belong to one test each.
    let out = ws.gwtest(&["run", "s", "-k", "not-followed"]).run();
    out.assert_exit(0);
    assert_eq!(srv.count("/new"), 0, "a 3xx is the answer by default");
    let out = ws.gwtest(&["run", "s", "-k", "/followed"]).run();
    out.assert_exit(0);
    assert_eq!(srv.count("/new"), 1);
    let out = ws.gwtest(&["run", "s", "-k", "expects-200"]).run();
    out.assert_exit(1);
    let o = out.outcome("s/expects-200");
    o.line(
        r"^  \d+ attempts? in 0\.\ds: \d+ got status 302; last: status 302, empty body \[status\]$",
    );
    assert_eq!(srv.count("/new"), 1);
    // The curl line says -L only when redirects are followed.
    o.line(&format!(
        r"^    curl -sS -i --max-time 10 {}$",
        regex::escape(&old)
    ));
}

#[test]
fn an_attempt_timeout_shorter_than_the_answer_fails_every_attempt_and_says_so() {
    let srv = TestServer::start([
        ("/slow", Behavior::Slow(Duration::from_secs(1))),
        ("/slow2", Behavior::Slow(Duration::from_secs(1))),
    ]);
    let ws = Workspace::new("attempt-timeout");
    ws.suite("s", "defaults: {attempt-timeout: 500ms, consecutive: 1}");
    ws.write(
        "s/tight.test.yaml",
        &test_doc(
            "tight",
            "",
            &format!(
                "  - request: {{url: {}, expect: {{status: 200}}}}\n    timeout: 2s\n",
                srv.url("/slow")
            ),
        ),
    );
    ws.write(
        "s/roomy.test.yaml",
        &test_doc(
            "roomy",
            "",
            &format!(
                "  - request: {{url: {}, attempt-timeout: 2s, expect: {{status: 200}}}}\n    timeout: 5s\n",
                srv.url("/slow2")
            ),
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(1, 0, 1, 0);
    assert_eq!(out.outcome("s/roomy").tag, "PASS");
    assert_eq!(srv.count("/slow2"), 1);
    let o = out.outcome("s/tight");
    let c = o.line(
        r"^  (\d+) attempts in 2\.\ds: (\d+) timed out after 500ms \(attempt-timeout\); last: timed out after 500ms \(attempt-timeout\)(; cut off after \d+\.\ds: GET \S+ \(attempt-timeout 500ms, no response yet\))? \[timeout\]$",
    );
    assert_eq!(&c[1], &c[2]);
    assert!(c[1].parse::<u32>().unwrap() >= 2, "{}", o.block);
    o.line(r"^  hint: most attempts ran into the attempt-timeout \(500ms\): if the gateway is just slow here, raise `attempt-timeout` or run with --timeout-scale; try the curl command by hand$");
    o.line(&format!(
        r"^    curl -sS -i --max-time 0\.5 {}$",
        regex::escape(&srv.url("/slow"))
    ));
}

/// S4: a server that accepts and never answers; the test must end at its test-timeout and
/// say which step was running and what it was waiting for.
#[test]
fn a_hanging_server_ends_the_test_at_its_test_timeout() {
    let srv = TestServer::start([("/hang", Behavior::Hang)]);
    let ws = one_test(
        "hang",
        "",
        "timeout: 2s",
        &format!(
            "  - name: first\n    exec: {{command: [\"true\"]}}\n  - name: waits forever\n    request: {{url: {}}}\n  - name: never reached\n    sleep: 1s\n",
            srv.url("/hang")
        ),
    );
    let o = failed_outcome(&ws);
    assert_eq!(
        srv.count("/hang"),
        1,
        "one attempt, still pending at the deadline"
    );
    o.line(r#"^  step 2 "waits forever" \(request\) at s/t\.test\.yaml:\d+:5$"#);
    o.line(&format!(
        r"^  test-timeout \(2s\) reached during this step: no attempt finished in {two}; cut off after {two}: GET {} \(attempt-timeout 10s, no response yet\)$",
        regex::escape(&srv.url("/hang")),
        two = about(2.0)
    ));
    o.line(&format!(
        r"^  steps: ✓ first \(\d+\.\ds\)  ✗ waits forever \({}\)  · never reached \(not run\)$",
        about(2.0)
    ));
}

/// S2: every attempt dies at the attempt-timeout while the step timeout keeps retrying.
#[test]
fn a_hanging_server_under_a_short_attempt_timeout_times_out_each_attempt() {
    let srv = TestServer::start([("/hang", Behavior::Hang)]);
    let ws = one_test(
        "hang-attempts",
        "",
        "",
        &format!(
            "  - request: {{url: {}, attempt-timeout: 300ms}}\n    timeout: 2s\n",
            srv.url("/hang")
        ),
    );
    let o = failed_outcome(&ws);
    let c = o.line(
        r"^  (\d+) attempts in 2\.\ds: (\d+) timed out after 300ms \(attempt-timeout\); last: timed out after 300ms \(attempt-timeout\)",
    );
    assert_eq!(&c[1], &c[2]);
    let n: u32 = c[1].parse().unwrap();
    assert!(n >= 3, "{}", o.block);
    // Each timed-out attempt left a connection the server is still holding: one request each.
    assert!(srv.count("/hang") >= n, "{}", o.block);
    o.line(r"^  hint: most attempts ran into the attempt-timeout \(300ms\)");
}

/// S5: right once, then wrong. `hold` catches it and says for how long it held.
#[test]
fn hold_catches_a_route_that_flips_back_and_says_how_long_it_held() {
    let srv = TestServer::start([
        (
            "/flap-time",
            Behavior::FlapAfterTime(Duration::from_secs(1)),
        ),
        ("/flap-count", Behavior::FlapAfter(3)),
        ("/steady", Behavior::Ok),
    ]);
    let ws = Workspace::new("hold");
    ws.suite("s", "");
    let step = |path: &str, extra: &str| {
        format!(
            "  - request: {{url: {}, expect: {{status: 200}}}}\n{extra}",
            srv.url(path)
        )
    };
    ws.write(
        "s/a.test.yaml",
        &test_doc(
            "time",
            "",
            &step("/flap-time", "    consecutive: 1\n    hold: 5s\n"),
        ),
    );
    ws.write(
        "s/b.test.yaml",
        &test_doc("count", "", &step("/flap-count", "    hold: 2s\n")),
    );
    ws.write(
        "s/c.test.yaml",
        &test_doc(
            "steady",
            "",
            &step(
                "/steady",
                "    consecutive: 1\n    hold: 1s\n    timeout: 200ms\n",
            ),
        ),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(1, 0, 2, 0);

    let o = out.outcome("s/time");
    let c =
        o.line(r#"^  held (\d\.\d)s of 5s, then: status 404, body "route not found" \[status\]$"#);
    let held = secs(&c[1]);
    // The server flips 1s after its first answer; a loaded machine notices a little late.
    assert!((0.7..=2.5).contains(&held), "held {held}s\n{}", o.block);

    let o = out.outcome("s/count");
    o.line(r#"^  held 0\.\ds of 2s, then: status 404, body "route not found" \[status\]$"#);
    assert_eq!(
        srv.count("/flap-count"),
        4,
        "3 good in a row, then the first flip"
    );

    // Steady: hold outlives the 200ms step timeout, attempting at `interval` (100ms).
    assert_eq!(out.outcome("s/steady").tag, "PASS");
    let n = srv.count("/steady");
    // At most 3 fit in the 200ms step timeout: more say the hold kept attempting after it.
    assert!((4..=12).contains(&n), "{n} attempts in a 1s hold at 100ms");
}

#[test]
fn timeout_scale_turns_a_failing_step_timeout_into_a_passing_one() {
    let ws = Workspace::new("scale");
    let _srv = late_route_suites(&ws);
    failed_outcome(&ws).line(r"^  \d+ attempts in 1\.\ds: \d+ got status 503; last: status 503");
    let out = ws.gwtest(&["run", "u", "--timeout-scale", "3"]).run();
    out.assert_exit(0);
    assert_eq!(out.outcome("u/t").tag, "PASS");
}

#[test]
fn a_refused_connection_is_reported_briefly_with_the_full_error_kept() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}/x");
    let ws = one_test(
        "refused",
        "",
        "",
        &format!("  - request: {{url: {url}}}\n    timeout: 500ms\n"),
    );
    let o = failed_outcome(&ws);
    o.line(&format!(
        r"^  \d+ attempts in {}: \d+ connection refused; last: connection refused \(127\.0\.0\.1:{port}\){} \[refused\]$",
        about(0.5),
        cut_off_request("GET", &url)
    ));
    o.line(&format!(
        r"^  hint: nothing accepted connections at 127\.0\.0\.1:{port}: is the gateway's listener up and is the address right\?$"
    ));
    // The whole error chain is still there, below.
    o.line(r"^  transport error:\n    .*[Cc]onnection refused");
}

#[test]
fn an_unresolvable_host_is_a_dns_failure() {
    let ws = one_test(
        "dns",
        "",
        "",
        "  - request: {url: \"http://no-such-host.invalid/x\"}\n    timeout: 300ms\n",
    );
    let o = failed_outcome(&ws);
    o.line(&format!(
        r"^  \d+ attempts? in {}: \d+ could not resolve host; last: could not resolve host no-such-host\.invalid{} \[dns\]$",
        about(0.3),
        cut_off_request("GET", "http://no-such-host.invalid/x")
    ));
    o.line(r#"^  hint: the host "no-such-host\.invalid" does not resolve from here$"#);
}

/// A request to a server that closes every connection without answering, at `path`: the
/// failure is a reset, with its summary line checked.
fn reset_outcome(name: &str, path: &str) -> support::Outcome {
    let srv = support::ClosingServer::start();
    let url = srv.url(path);
    let ws = one_test(
        name,
        "",
        "",
        &format!("  - request: {{url: {url}}}\n    timeout: 300ms\n"),
    );
    let o = failed_outcome(&ws);
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    o.line(&format!(
        r"^  \d+ attempts? in {}: \d+ connection reset; last: connection reset \(127\.0\.0\.1:{port}\): .+{} \[reset\]$",
        about(0.3),
        cut_off_request("GET", &url)
    ));
    o
}

#[test]
fn a_connection_closed_without_an_answer_is_a_reset() {
    let o = reset_outcome("reset", "/x");
    o.line(r"^  transport error:\n    error sending request for url");
}

#[test]
fn a_reset_is_a_reset_whatever_words_the_url_holds() {
    // The error's text holds the URL: words in it must not make a reset look like TLS.
    reset_outcome("reset-words", "/tls/certificate/handshake/incomplete");
}

#[test]
fn a_hold_longer_than_the_test_timeout_says_it_was_still_holding() {
    let srv = TestServer::start([("/steady", Behavior::Ok)]);
    let ws = one_test(
        "hold-cut",
        "",
        "timeout: 1s",
        &format!(
            "  - request: {{url: {}}}\n    hold: 5s\n",
            srv.url("/steady")
        ),
    );
    let o = failed_outcome(&ws);
    let c = o.line(&format!(
        r"^  test-timeout \(1s\) reached during this step: still holding \((\d+\.\d)s of 5s held, every attempt passed\); (\d+) attempts in {}: (\d+) passed$",
        about(1.0)
    ));
    assert!(secs(&c[1]) >= 0.9, "{}", o.block);
    assert_eq!(&c[2], &c[3]);
    assert_eq!(c[2].parse::<u32>().unwrap(), srv.count("/steady"));
}

/// Different failures are counted apart in the summary, most frequent first (S2's message).
#[test]
fn the_attempt_summary_groups_timeouts_and_bad_statuses() {
    let srv = TestServer::start([(
        "/mixed",
        Behavior::Sequence(vec![
            Behavior::Slow(Duration::from_secs(2)),
            Behavior::Slow(Duration::from_secs(2)),
            Behavior::Respond(Canned::new(503, "no healthy upstream")),
        ]),
    )]);
    let ws = one_test(
        "mixed",
        "",
        "",
        &format!(
            "  - request: {{url: {}, attempt-timeout: 200ms, expect: {{status: 200}}}}\n    timeout: 2s\n    interval: 10ms\n    max-interval: 10ms\n",
            srv.url("/mixed")
        ),
    );
    let o = failed_outcome(&ws);
    let c = o.line(
        r"^  (\d+) attempts in \d+\.\ds: (\d+) timed out after 200ms \(attempt-timeout\), (\d+) got status 503; last: (.*) \[(timeout|status)\]$",
    );
    let (n, t, s): (u32, u32, u32) = (
        c[1].parse().unwrap(),
        c[2].parse().unwrap(),
        c[3].parse().unwrap(),
    );
    assert_eq!(n, t + s, "{}", o.block);
    // Two slow answers for each 503, in that order.
    assert!(t >= 2 * s && t <= 2 * s + 2, "{}", o.block);
    assert!(n >= 6, "{}", o.block);
    o.line(r"^  hint: most attempts ran into the attempt-timeout \(200ms\)");
    // The response shown is from an earlier attempt, and says so.
    if &c[5] == "timeout" || c[4].contains("; cut off after") {
        let k: u32 = o
            .line(r"^  last response \(attempt (\d+); no response after it\):\n    HTTP/1\.1 503$")
            [1]
        .parse()
        .unwrap();
        assert!(k <= n && k.is_multiple_of(3), "{}", o.block);
    } else {
        o.line(r"^  last response:\n    HTTP/1\.1 503$");
    }
}

#[test]
fn a_body_cut_at_the_cap_says_the_match_ran_on_its_first_part() {
    let srv = TestServer::start([("/endless", Behavior::Endless)]);
    let ws = one_test(
        "endless",
        "",
        "",
        &format!(
            "  - name: endless body\n    request:\n      url: {}\n      expect:\n        status: 200\n        body: {{contains: the-end}}\n    timeout: 1s\n",
            srv.url("/endless")
        ),
    );
    let o = failed_outcome(&ws);
    // The 1s deadline can cut a next attempt still reading the endless body (a loaded machine
    // may take most of the second over the first).
    o.line(&format!(
        r#"^  \d+ attempts? in \d+\.\ds: \d+ body did not match \(contains "the-end"\); last: status 200, body "x+…"; expected body contains "the-end"; body cut at 16 MiB: the match ran on the first 16 MiB{} \[body\]$"#,
        cut_off_request("GET", &srv.url("/endless"))
    ));
}

#[test]
fn cel_checks_see_the_response_and_explain_a_miss() {
    let srv = TestServer::start([("/echo", Behavior::Echo)]);
    let ws = one_test(
        "cel",
        "",
        "",
        &format!(
            r#"  - name: echo
    request:
      method: POST
      url: {url}
      headers: {{X-Test: one}}
      body: {{a: 1}}
      expect:
        cel:
          - response.status == 200
          - response.json.method == 'POST' && response.json.body.contains('"a":1')
          - response.headers['content-type'][0].startsWith('application/json')
          - response.body.size() > 10 && response.json.headers['x-test'] == 'one'
  - name: wrong
    request:
      url: {url}
      expect:
        cel: ["response.json.method == 'PUT'"]
    timeout: 300ms
"#,
            url = srv.url("/echo")
        ),
    );
    let o = failed_outcome(&ws);
    o.line(r#"^  step 2 "wrong" \(request\) at s/t\.test\.yaml:\d+:5$"#);
    o.line(r#"^  expected: status below 400, cel `response\.json\.method == 'PUT'`$"#);
    o.line(&format!(
        r#"^  \d+ attempts in \d+\.\ds: \d+ cel `response\.json\.method == 'PUT'` was false; last: status 200, cel `response\.json\.method == 'PUT'` was false: response\.json\.method was "GET"{} \[cel\]$"#,
        cut_off_request("GET", &srv.url("/echo"))
    ));
    o.line(r"^  steps: ✓ echo \(\d+\.\ds, 3 attempts\)  ✗ wrong");
}
