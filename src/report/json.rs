//! The JSON reporter (`--json PATH`): the whole run, written on `finish()` (also when the run
//! was interrupted). Field names are stable; fields marked `?` are left out when empty.
//!
//! ```text
//! {
//!   "version": 1,
//!   "run_id": "20250101-120000-abc123", "trace_id": "<32 hex>",
//!   "started": "2025-01-01T12:00:00.000Z",        // RFC 3339, UTC
//!   "hostname": "ci-runner-3",
//!   "duration_ms": 1234, "interrupted": false,
//!   "counts": {"passed", "flaky", "failed", "skipped", "total"},
//!   "notices": ["..."],                            // not about one test
//!   "not_started"?: "...",                         // why nothing ran (exit 3)
//!   "merged_from"?: [{                             // `gwtest merge` only: the shards
//!     "file", "run_id", "trace_id", "hostname", "started", "duration_ms", "interrupted"}],
//!   "suites": [{
//!     "name", "file",                              // file: the suite.yaml
//!     "index",                                     // position among the suites loaded
//!     "started",                                   // RFC 3339, null if it never started
//!     "duration_ms",                               // null if the suite never finished
//!     "setup_error"?: FAILURE,
//!     "tests": [{
//!       "name", "file", "line",                    // where the test's document starts
//!       "repeat",                                  // 0-based repetition (--repeat)
//!       "status": "passed" | "flaky" | "failed" | "skipped",
//!       "duration_ms", "skip_reason"?, "namespace"?, "notices"?,
//!       "labels": [string],                        // the test's and its suite's
//!       "run_id"?,                                 // merged reports: the shard's run
//!       "tries": [{                                // first run first; empty when skipped
//!         "passed", "duration_ms", "namespace"?, "error"?: FAILURE,
//!         "cleanup"?: {                            // when the try had something to clean
//!           "duration_ms",                         // in the test's slot (not in duration_ms)
//!           "namespace"?,                          // deleted in the background, then:
//!           "background_ms"?, "background_error"?  // how long until gone; what was left
//!         },
//!         "steps": [STEP],
//!         "catch"?: [STEP],                        // when the test has catch steps
//!         "finally"?: [STEP]                       // when the test has finally steps
//!       }]
//!     }]
//!   }],
//!   "repeats"?: [REPEAT_STATS]                     // with --repeat N > 1, see flakes.rs
//! }
//! STEP = {"index",                             // 0-based, in its list
//!         "name", "kind",
//!         "file"?,                                 // when not the test's: suite.yaml
//!         "line", "column",
//!         "status": "passed" | "failed" | "not-run" | "skipped",
//!         "duration_ms", "attempts",
//!         "timeout_ms",                            // the step's timeout; null if not run
//!         "failure"?: FAILURE}
//! FAILURE = {"cause": "timeout" | "test-timeout" | "hold" | "error" | "interrupted",
//!            "class": "status" | "exit" | ... | null, "headline", "expected": string | null,
//!            "hints": [string], "sections": [{"title", "body"}], "reproduce": [string],
//!            "diagnostics"?: {"dir",                   // the failure bundle's diagnostics/
//!                             "collected", "files": [string], "failed": [string]}}
//! ```
//! `catch` steps are `not-run` when no step failed; a failed `finally` step fails a try whose
//! steps passed (it is then the try's failure). Lines and columns are 1-based, or null when
//! unknown. A test that never finished (the run
//! was interrupted) is `skipped` with `skip_reason` "not run: the run was interrupted"; one cut
//! short by Ctrl-C before any of its steps failed is `skipped` with "interrupted" and keeps its
//! tries. When what the run needs could not be brought up (exit 3), every picked test is
//! `skipped` with "not run: the run could not start: <why>". A merged report's `trace_id` is null when its shards were several traces.
//! `gwtest merge` reads these files back, so everything a report shows is here.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::Reporter;
use super::collect::{Background, Record, TestRecord, write_atomic};
use crate::engine::events::{
    Counts, Event, Failure, StepReport, StepStatus, TestReport, TestStatus, TryReport,
};
use crate::suite::spanned::Loc;

/// Bumped only when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

pub struct Json {
    path: PathBuf,
    record: Record,
}

impl Json {
    pub fn new(path: PathBuf) -> Self {
        Json {
            path,
            record: Record::new(),
        }
    }

    /// The report as a JSON value.
    pub fn render(&self) -> Value {
        render(&self.record)
    }
}

fn time(t: Option<SystemTime>) -> Value {
    t.map(|t| humantime::format_rfc3339_millis(t).to_string())
        .into()
}

/// A whole record as JSON.
pub fn render(r: &Record) -> Value {
    {
        let mut counts = Counts::default();
        let suites: Vec<Value> = r
            .suites
            .iter()
            .map(|s| {
                let tests: Vec<Value> = s
                    .tests
                    .iter()
                    .map(|t| {
                        let report = r.outcome(s, t);
                        counts.add(report.status);
                        let mut v = test(&report, t);
                        v["labels"] = t.labels.clone().into();
                        if let Some(m) = t.shard.and_then(|i| r.merged.get(i)) {
                            v["run_id"] = m.run_id.clone().into();
                        }
                        v
                    })
                    .collect();
                let mut o = Map::new();
                o.insert("name".into(), s.name.clone().into());
                o.insert("file".into(), path(&s.file));
                o.insert("index".into(), s.index.into());
                o.insert("started".into(), time(s.started));
                o.insert("duration_ms".into(), s.duration.map(ms).into());
                if let Some(f) = &s.setup_error {
                    o.insert("setup_error".into(), failure(f));
                }
                o.insert("tests".into(), tests.into());
                Value::Object(o)
            })
            .collect();
        let mut v = json!({
            "version": FORMAT_VERSION,
            "run_id": r.run_id,
            "trace_id": if r.trace_id.is_empty() { Value::Null } else { r.trace_id.clone().into() },
            "started": time(r.started),
            "hostname": r.hostname,
            "duration_ms": ms(r.duration()),
            "interrupted": r.interrupted(),
            "counts": {
                "passed": counts.passed,
                "flaky": counts.flaky,
                "failed": counts.failed,
                "skipped": counts.skipped,
                "total": counts.total(),
            },
            "notices": r.notices,
        });
        if let Some(why) = r.not_started() {
            v["not_started"] = why.into();
        }
        if !r.merged.is_empty() {
            v["merged_from"] = r
                .merged
                .iter()
                .map(|m| {
                    json!({
                        "file": path(&m.file),
                        "run_id": m.run_id,
                        "trace_id": m.trace_id,
                        "hostname": m.hostname,
                        "started": time(m.started),
                        "duration_ms": ms(m.duration),
                        "interrupted": m.interrupted,
                    })
                })
                .collect::<Vec<_>>()
                .into();
        }
        v["suites"] = suites.into();
        let repeats = super::flakes::stats(r);
        if !repeats.is_empty() {
            v["repeats"] = repeats
                .iter()
                .map(super::flakes::TestStats::to_json)
                .collect::<Vec<_>>()
                .into();
        }
        v
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

fn path(p: &Path) -> Value {
    p.display().to_string().into()
}

fn pos(n: u32) -> Value {
    if n > 0 { n.into() } else { Value::Null }
}

fn line(l: Loc) -> Value {
    if l.is_known() {
        pos(l.line)
    } else {
        Value::Null
    }
}

fn column(l: Loc) -> Value {
    if l.is_known() {
        pos(l.col)
    } else {
        Value::Null
    }
}

fn status(s: TestStatus) -> &'static str {
    match s {
        TestStatus::Passed => "passed",
        TestStatus::Flaky => "flaky",
        TestStatus::Failed => "failed",
        TestStatus::Skipped => "skipped",
    }
}

fn step_status(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "failed",
        StepStatus::NotRun => "not-run",
        StepStatus::Skipped => "skipped",
    }
}

fn failure(f: &Failure) -> Value {
    let mut v = json!({
        "cause": f.cause,
        "class": f.class.map(|c| c.as_str()),
        "headline": f.headline,
        "expected": f.expected,
        "hints": f.hints,
        "sections": f.sections.iter().map(|s| json!({"title": s.title, "body": s.body})).collect::<Vec<_>>(),
        "reproduce": f.reproduce,
    });
    if let Some(d) = &f.diagnostics {
        v["diagnostics"] = json!({
            "dir": path(&d.dir),
            "collected": d.collected,
            "files": d.files,
            "failed": d.failed,
        });
    }
    v
}

fn step(s: &StepReport) -> Value {
    let mut o = Map::new();
    o.insert("index".into(), s.index.into());
    o.insert("name".into(), s.name.clone().into());
    o.insert("kind".into(), s.kind.into());
    if let Some(f) = &s.file {
        o.insert("file".into(), path(f));
    }
    o.insert("line".into(), line(s.loc));
    o.insert("column".into(), column(s.loc));
    o.insert("status".into(), step_status(s.status).into());
    o.insert("duration_ms".into(), ms(s.duration).into());
    o.insert("attempts".into(), s.attempts.into());
    o.insert("timeout_ms".into(), s.timeout.map(ms).into());
    if let Some(f) = &s.failure {
        o.insert("failure".into(), failure(f));
    }
    Value::Object(o)
}

fn try_(t: &TryReport, background: Option<&Background>) -> Value {
    let mut o = Map::new();
    o.insert("passed".into(), t.passed.into());
    o.insert("duration_ms".into(), ms(t.duration).into());
    if let Some(ns) = &t.namespace {
        o.insert("namespace".into(), ns.clone().into());
    }
    if let Some(f) = &t.error {
        o.insert("error".into(), failure(f));
    }
    if let Some(c) = &t.cleanup {
        let mut co = Map::new();
        co.insert("duration_ms".into(), ms(c.duration).into());
        if let Some(ns) = &c.background {
            co.insert("namespace".into(), ns.clone().into());
            if let Some(b) = background {
                co.insert("background_ms".into(), ms(b.duration).into());
                if let Some(e) = &b.error {
                    co.insert("background_error".into(), e.clone().into());
                }
            }
        }
        o.insert("cleanup".into(), Value::Object(co));
    }
    o.insert(
        "steps".into(),
        t.steps.iter().map(step).collect::<Vec<_>>().into(),
    );
    for (key, steps) in [("catch", &t.catch), ("finally", &t.finally)] {
        if !steps.is_empty() {
            o.insert(
                key.into(),
                steps.iter().map(step).collect::<Vec<_>>().into(),
            );
        }
    }
    Value::Object(o)
}

fn test(r: &TestReport, record: &TestRecord) -> Value {
    let notices = record.notices.as_slice();
    let id = &r.id;
    let mut o = Map::new();
    o.insert("name".into(), id.name.clone().into());
    o.insert("file".into(), path(&id.file));
    o.insert("line".into(), line(id.loc));
    o.insert("repeat".into(), id.repeat.into());
    o.insert("status".into(), status(r.status).into());
    o.insert("duration_ms".into(), ms(r.duration).into());
    if let Some(reason) = &r.skip_reason {
        o.insert("skip_reason".into(), reason.clone().into());
    }
    if let Some(ns) = r.tries.iter().rev().find_map(|t| t.namespace.as_ref()) {
        o.insert("namespace".into(), ns.clone().into());
    }
    if !notices.is_empty() {
        o.insert("notices".into(), notices.into());
    }
    o.insert(
        "tries".into(),
        r.tries
            .iter()
            .enumerate()
            .map(|(i, t)| try_(t, record.background_of(i as u32 + 1)))
            .collect::<Vec<_>>()
            .into(),
    );
    Value::Object(o)
}

impl Reporter for Json {
    fn event(&mut self, e: &Event) {
        self.record.event(e);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(&self.render())?;
        text.push('\n');
        write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::sample;

    fn render(complete: bool) -> Value {
        let mut j = Json::new(PathBuf::from("unused.json"));
        sample::feed(&mut j, complete);
        // Through text, as a reader gets it.
        serde_json::from_str(&serde_json::to_string(&j.render()).unwrap()).unwrap()
    }

    fn test<'a>(v: &'a Value, suite: usize, name: &str, repeat: u64) -> &'a Value {
        v["suites"][suite]["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name && t["repeat"] == repeat)
            .unwrap_or_else(|| panic!("no test {name}#{repeat}"))
    }

    #[test]
    fn the_run_header_counts_and_suites() {
        let v = render(true);
        assert_eq!(v["version"], 1);
        assert_eq!(v["run_id"], "run-1");
        assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["started"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["hostname"], crate::report::collect::hostname());
        assert!(v.get("merged_from").is_none());
        assert_eq!(v["suites"][0]["index"], 0);
        assert_eq!(v["suites"][1]["index"], 1);
        assert!(v["suites"][0]["started"].is_string(), "{v:#}");
        // `ok` ran twice (--repeat): its statistics.
        let repeats = v["repeats"].as_array().unwrap();
        assert_eq!(repeats.len(), 1);
        assert_eq!(repeats[0]["test"], "ok");
        assert_eq!(repeats[0]["runs"], 2);
        assert_eq!(repeats[0]["steps"][1]["time_to_pass_ms"]["max"], 20);
        assert_eq!(v["duration_ms"], 9500);
        assert_eq!(v["interrupted"], false);
        assert_eq!(
            v["counts"],
            json!({"passed": 3, "flaky": 1, "failed": 3, "skipped": 1, "total": 8})
        );
        assert_eq!(v["notices"], json!(["suite web: teardown: timed out"]));
        let suites = v["suites"].as_array().unwrap();
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0]["name"], "web");
        assert_eq!(suites[0]["file"], "suites/web/suite.yaml");
        assert_eq!(suites[0]["duration_ms"], 9000);
        assert!(suites[0].get("setup_error").is_none());
        let names: Vec<(&str, u64)> = suites[0]["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap(), t["repeat"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("ok", 0),
                ("ok", 1),
                ("flaky", 0),
                ("broken", 0),
                ("later", 0),
                ("never", 0)
            ]
        );
    }

    #[test]
    fn every_test_step_and_try_with_outcomes_durations_and_failures() {
        let v = render(true);
        let ok = test(&v, 0, "ok", 0);
        assert_eq!(ok["file"], sample::WEB_FILE);
        assert_eq!(ok["line"], 1);
        assert_eq!(ok["status"], "passed");
        assert_eq!(ok["duration_ms"], 40);
        assert_eq!(ok["namespace"], "gwtest-t-def456");
        assert_eq!(
            ok["notices"],
            json!(["cleanup: namespace gwtest-t-def456 took 20s to go"])
        );
        assert!(ok.get("skip_reason").is_none());
        assert!(test(&v, 0, "ok", 1).get("notices").is_none());
        // Cleanup: in the slot, then the namespace in the background (once that ended).
        assert_eq!(
            ok["tries"][0]["cleanup"],
            json!({"duration_ms": 5, "namespace": "gwtest-t-def456", "background_ms": 5100})
        );
        assert_eq!(
            test(&v, 0, "ok", 1)["tries"][0]["cleanup"],
            json!({"duration_ms": 5, "namespace": "gwtest-t-def456"})
        );

        let flaky = test(&v, 0, "flaky", 0);
        assert_eq!(flaky["status"], "flaky");
        let tries = flaky["tries"].as_array().unwrap();
        assert_eq!(tries.len(), 2);
        assert_eq!(tries[0]["passed"], false);
        assert_eq!(tries[0]["duration_ms"], 3100);
        assert_eq!(tries[0]["namespace"], "gwtest-t-abc123");
        assert!(tries[0].get("cleanup").is_none());
        assert_eq!(tries[1]["passed"], true);
        let steps = tries[0]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[1],
            json!({
                "index": 1, "name": "route answers", "kind": "request",
                "line": 24, "column": 5, "status": "failed",
                "duration_ms": 3000, "attempts": 7, "timeout_ms": 5000,
                "failure": {
                    "cause": "timeout",
                    "class": "status",
                    "headline": "100% of 7 attempts got status 503, a,b: c",
                    "expected": "status 200",
                    "hints": ["raise timeout"],
                    "sections": [{"title": "last response", "body": "HTTP/1.1 503\n\nno healthy upstream"}],
                    "reproduce": ["curl -sS -i 'http://gw/a?x=1&y=2'"],
                }
            })
        );
        assert_eq!(steps[2]["status"], "not-run");
        assert!(steps[0].get("failure").is_none());

        let broken = test(&v, 0, "broken", 0);
        assert_eq!(broken["status"], "failed");
        assert_eq!(broken["duration_ms"], 9300);
        let heads: Vec<&str> = broken["tries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["steps"][1]["failure"]["headline"].as_str().unwrap())
            .collect();
        assert_eq!(
            heads,
            [
                "try one: got status 503 <body> & \"quotes\"",
                "try two: got status 502",
                "try three: got status 500\nsecond line"
            ]
        );

        let later = test(&v, 0, "later", 0);
        assert_eq!(later["status"], "skipped");
        assert_eq!(later["skip_reason"], "fail-fast: an earlier test failed");
        assert_eq!(later["tries"], json!([]));
    }

    #[test]
    fn a_suite_setup_failure_is_on_the_suite_and_fails_its_tests() {
        let v = render(true);
        let infra = &v["suites"][1];
        assert_eq!(infra["name"], "infra");
        let err = json!({
            "cause": "error", "class": "error",
            "headline": "fixture ../../fixtures/gw.yaml: the API server rejected it: 422",
            "expected": null, "hints": [], "sections": [], "reproduce": [],
        });
        assert_eq!(infra["setup_error"], err);
        for name in ["a", "b"] {
            let t = test(&v, 1, name, 0);
            assert_eq!(t["status"], "failed");
            assert_eq!(t["tries"][0]["error"], err);
            assert_eq!(t["tries"][0]["steps"], json!([]));
        }
    }

    #[test]
    fn an_interrupted_run_is_written_with_the_unfinished_tests_skipped() {
        let dir = crate::util::test_dir("json");
        let path = dir.join("a/b/report.json");
        let mut j = Json::new(path.clone());
        sample::feed(&mut j, false);
        j.finish().unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["interrupted"], true);
        assert_eq!(
            v["counts"],
            json!({"passed": 2, "flaky": 1, "failed": 3, "skipped": 2, "total": 8})
        );
        let never = test(&v, 0, "never", 0);
        assert_eq!(never["status"], "skipped");
        assert_eq!(never["skip_reason"], "not run: the run was interrupted");
        assert_eq!(v["suites"][0]["duration_ms"], Value::Null);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
