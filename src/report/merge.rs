//! `gwtest merge`: the JSON reports of the shards of one run (`--shard I/N` in a CI matrix)
//! made into one JSON and/or JUnit report, as an unsharded run would have written it: the
//! same tests, counts, flaky entries and failures, suites and tests in plan order.
//!
//! A JSON report holds everything the reports show, so the merged record is rebuilt from the
//! files alone. Two reports holding the same test (the same shard twice, or overlapping
//! selections) are an error rather than a double count.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::collect::{Background, MergedRun, Record, SuiteRecord, TestRecord, write_atomic};
use super::json::FORMAT_VERSION;
use crate::Exit;
use crate::cli::MergeArgs;
use crate::engine::events::{
    CleanupReport, Counts, Diagnostics, Failure, FailureCause, Phase, RunSummary, StepReport,
    StepStatus, TestKey, TestReport, TestStatus, TryReport,
};
use crate::engine::retry::{Class, Section};
use crate::suite::model::ACTION_KEYS;
use crate::suite::spanned::Loc;

/// A report that cannot be merged: which file, and why.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error(
        "test {test} is in both {first} and {second}: give each shard's report once (the \
         shards of one run never share a test)"
    )]
    Duplicate {
        test: String,
        first: PathBuf,
        second: PathBuf,
    },
}

pub fn command(args: MergeArgs) -> Exit {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let file = crate::config::find_config_file(&cwd);
    let conformance = crate::config::load_profile(
        file.as_deref(),
        args.profile.as_deref(),
        crate::config::in_ci(),
    )
    .and_then(|(_, p)| {
        let base = file
            .as_deref()
            .and_then(std::path::Path::parent)
            .unwrap_or(&cwd)
            .to_path_buf();
        crate::config::resolve_conformance(&args.conformance, &p, &base)
    });
    let conformance = match conformance {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let record = match merge(&args.reports) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let mut written = Vec::new();
    let to_stdout = args.junit.is_none() && args.json.is_none() && conformance.is_none();
    let json = super::json::render(&record);
    if let Some(p) = &args.json {
        let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
        text.push('\n');
        if let Err(e) = write_atomic(p, text.as_bytes()) {
            eprintln!("error: {e:#}");
            return Exit::Infra;
        }
        written.push(p.display().to_string());
    }
    if let Some(p) = &args.junit {
        if let Err(e) = write_atomic(p, super::junit::render(&record).as_bytes()) {
            eprintln!("error: {e:#}");
            return Exit::Infra;
        }
        written.push(p.display().to_string());
    }
    if let Some(cfg) = &conformance {
        let written_ok = super::conformance::render(&record, cfg)
            .and_then(|text| write_atomic(&cfg.path, text.as_bytes()));
        if let Err(e) = written_ok {
            eprintln!("error: {e:#}");
            return Exit::Infra;
        }
        written.push(cfg.path.display().to_string());
    }
    let c = &json["counts"];
    let line = format!(
        "merged {} report{}: {} tests: {} passed, {} flaky, {} failed, {} skipped{}",
        args.reports.len(),
        if args.reports.len() == 1 { "" } else { "s" },
        c["total"],
        c["passed"],
        c["flaky"],
        c["failed"],
        c["skipped"],
        if written.is_empty() {
            String::new()
        } else {
            format!(" -> {}", written.join(", "))
        }
    );
    if to_stdout {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Exit::Passed
}

/// Merge the JSON reports in `files` into one record.
pub fn merge(files: &[PathBuf]) -> Result<Record, MergeError> {
    let mut record = Record::new();
    let mut seen: HashMap<(String, String, u32), PathBuf> = HashMap::new();
    let mut suites: Vec<SuiteRecord> = Vec::new();
    let mut started: Option<SystemTime> = None;
    for (shard, file) in files.iter().enumerate() {
        let invalid = |message: String| MergeError::Invalid {
            file: file.clone(),
            message,
        };
        let text = std::fs::read_to_string(file).map_err(|e| invalid(e.to_string()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not a JSON report: {e}")))?;
        let version = v["version"].as_u64();
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(invalid(format!(
                "report format version {} (this gwtest reads version {FORMAT_VERSION}; write \
                 the shards' reports with `gwtest run --json`)",
                v["version"]
            )));
        }
        let run = MergedRun {
            file: file.clone(),
            run_id: str_of(&v["run_id"]),
            trace_id: str_of(&v["trace_id"]),
            hostname: str_of(&v["hostname"]),
            started: time_of(&v["started"]).map_err(&invalid)?,
            duration: ms_of(&v["duration_ms"]),
            interrupted: v["interrupted"].as_bool().unwrap_or(false),
        };
        started = match (started, run.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        record.merged.push(run);
        record.notices.extend(strings(&v["notices"]));
        for (si, s) in array(&v["suites"], "suites")
            .map_err(&invalid)?
            .iter()
            .enumerate()
        {
            let at = |m: String| invalid(format!("suites[{si}]: {m}"));
            let mut suite = parse_suite(s).map_err(at)?;
            for (ti, t) in array(&s["tests"], "tests")
                .map_err(|m| invalid(format!("suites[{si}].{m}")))?
                .iter()
                .enumerate()
            {
                let mut test = parse_test(&suite.name, t)
                    .map_err(|m| invalid(format!("suites[{si}].tests[{ti}]: {m}")))?;
                test.shard = Some(shard);
                let key = (suite.name.clone(), test.id.name.clone(), test.id.repeat);
                if let Some(first) = seen.insert(key, file.clone()) {
                    return Err(MergeError::Duplicate {
                        test: test.id.to_string(),
                        first,
                        second: file.clone(),
                    });
                }
                suite.tests.push(test);
            }
            match suites
                .iter_mut()
                .find(|x| x.name == suite.name && x.file == suite.file)
            {
                Some(x) => {
                    x.tests.append(&mut suite.tests);
                    x.setup_error = x.setup_error.take().or(suite.setup_error);
                    x.started = match (x.started, suite.started) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    x.duration = match (x.duration, suite.duration) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                None => suites.push(suite),
            }
        }
    }
    // Plan order: suites as loaded, tests by file name, then document order, then repeat.
    suites.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.name.cmp(&b.name)));
    for s in &mut suites {
        s.tests.sort_by(|a, b| {
            (&a.id.file, a.id.loc.line, a.id.repeat).cmp(&(&b.id.file, b.id.loc.line, b.id.repeat))
        });
    }
    let mut counts = Counts::default();
    for s in &suites {
        for t in &s.tests {
            counts.add(record.outcome(s, t).status);
        }
    }
    for s in suites {
        record.push_suite(s);
    }
    let runs = &record.merged;
    record.run_id = runs
        .iter()
        .map(|m| m.run_id.as_str())
        .collect::<Vec<_>>()
        .join("+");
    record.trace_id = match runs.first() {
        Some(f) if runs.iter().all(|m| m.trace_id == f.trace_id) => f.trace_id.clone(),
        _ => String::new(),
    };
    record.hostname = runs.first().map(|m| m.hostname.clone()).unwrap_or_default();
    record.started = started;
    record.summary = Some(RunSummary {
        counts,
        duration: runs.iter().map(|m| m.duration).max().unwrap_or_default(),
        interrupted: runs.iter().any(|m| m.interrupted),
        // Each shard's own exit code says what its cleanup and cluster did.
        cleanup_failed: 0,
        cluster_unusable: None,
        not_started: None,
        quit: false,
    });
    Ok(record)
}

/// The strings of a list (anything else: none).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn ms_of(v: &Value) -> Duration {
    Duration::from_millis(v.as_u64().unwrap_or(0))
}

fn time_of(v: &Value) -> Result<Option<SystemTime>, String> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => humantime::parse_rfc3339_weak(s)
            .map(Some)
            .map_err(|e| format!("invalid time {s:?}: {e}")),
    }
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("`{what}` is not a list"))
}

fn loc(line: &Value, col: &Value) -> Loc {
    match line.as_u64() {
        Some(l) if l > 0 => Loc::new(l as u32, col.as_u64().unwrap_or(1) as u32),
        _ => Loc::UNKNOWN,
    }
}

fn parse_suite(s: &Value) -> Result<SuiteRecord, String> {
    Ok(SuiteRecord {
        index: s["index"].as_u64().map_or(usize::MAX, |i| i as usize),
        name: s["name"].as_str().ok_or("no `name`")?.to_owned(),
        file: PathBuf::from(str_of(&s["file"])),
        started: time_of(&s["started"])?,
        duration: s["duration_ms"].as_u64().map(Duration::from_millis),
        setup_error: match &s["setup_error"] {
            Value::Null => None,
            f => Some(parse_failure(f)?),
        },
        tests: Vec::new(),
        teardown: None,
    })
}

fn parse_failure(f: &Value) -> Result<Failure, String> {
    let cause: FailureCause = serde_json::from_value(f["cause"].clone())
        .map_err(|e| format!("failure cause {}: {e}", f["cause"]))?;
    let class: Option<Class> = match &f["class"] {
        Value::Null => None,
        c => Some(serde_json::from_value(c.clone()).map_err(|e| format!("class {c}: {e}"))?),
    };
    let mut out = Failure::new(cause, class, str_of(&f["headline"]));
    out.expected = f["expected"].as_str().map(str::to_owned);
    out.hints = strings(&f["hints"]);
    out.reproduce = strings(&f["reproduce"]);
    out.sections = f["sections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| Section::new(str_of(&s["title"]), str_of(&s["body"])))
                .collect()
        })
        .unwrap_or_default();
    if let Value::Object(d) = &f["diagnostics"] {
        out.diagnostics = Some(Diagnostics {
            dir: PathBuf::from(str_of(&d["dir"])),
            collected: d["collected"].as_u64().unwrap_or(0) as usize,
            files: strings(&d["files"]),
            failed: strings(&d["failed"]),
        });
    }
    Ok(out)
}

fn test_status(s: &str) -> Result<TestStatus, String> {
    Ok(match s {
        "passed" => TestStatus::Passed,
        "flaky" => TestStatus::Flaky,
        "failed" => TestStatus::Failed,
        "skipped" => TestStatus::Skipped,
        other => return Err(format!("unknown test status {other:?}")),
    })
}

fn step_status(s: &str) -> Result<StepStatus, String> {
    Ok(match s {
        "passed" => StepStatus::Passed,
        "failed" => StepStatus::Failed,
        "not-run" => StepStatus::NotRun,
        "skipped" => StepStatus::Skipped,
        other => return Err(format!("unknown step status {other:?}")),
    })
}

fn step_kind(s: &str) -> &'static str {
    ACTION_KEYS
        .iter()
        .find(|k| **k == s)
        .copied()
        .unwrap_or("step")
}

fn parse_step(s: &Value, phase: Phase) -> Result<StepReport, String> {
    Ok(StepReport {
        index: s["index"].as_u64().unwrap_or(0) as usize,
        name: str_of(&s["name"]),
        kind: step_kind(s["kind"].as_str().unwrap_or_default()),
        phase,
        file: s["file"].as_str().map(PathBuf::from),
        loc: loc(&s["line"], &s["column"]),
        status: step_status(s["status"].as_str().unwrap_or_default())?,
        duration: ms_of(&s["duration_ms"]),
        attempts: s["attempts"].as_u64().unwrap_or(0) as u32,
        timeout: s["timeout_ms"].as_u64().map(Duration::from_millis),
        failure: match &s["failure"] {
            Value::Null => None,
            f => Some(parse_failure(f)?),
        },
    })
}

/// A try's list of steps (`catch` and `finally` are left out when the test has none).
fn parse_steps(t: &Value, phase: Phase) -> Result<Vec<StepReport>, String> {
    let key = phase.as_str();
    if phase != Phase::Steps && t[key].is_null() {
        return Ok(Vec::new());
    }
    array(&t[key], key)?
        .iter()
        .map(|s| parse_step(s, phase))
        .collect()
}

fn parse_try(t: &Value) -> Result<TryReport, String> {
    Ok(TryReport {
        passed: t["passed"].as_bool().unwrap_or(false),
        duration: ms_of(&t["duration_ms"]),
        steps: parse_steps(t, Phase::Steps)?,
        catch: parse_steps(t, Phase::Catch)?,
        finally: parse_steps(t, Phase::Finally)?,
        error: match &t["error"] {
            Value::Null => None,
            f => Some(parse_failure(f)?),
        },
        namespace: t["namespace"].as_str().map(str::to_owned),
        cleanup: match &t["cleanup"] {
            Value::Null => None,
            c => Some(CleanupReport {
                duration: ms_of(&c["duration_ms"]),
                background: c["namespace"].as_str().map(str::to_owned),
            }),
        },
    })
}

/// The background deletion of try `try_no`, when its report says it ended.
fn parse_background(try_no: u32, t: &Value) -> Option<Background> {
    let c = &t["cleanup"];
    let ns = c["namespace"].as_str()?;
    Some(Background {
        try_no,
        what: format!("namespace {ns}"),
        duration: Duration::from_millis(c["background_ms"].as_u64()?),
        error: c["background_error"].as_str().map(str::to_owned),
    })
}

fn parse_test(suite: &str, t: &Value) -> Result<TestRecord, String> {
    let id = Arc::new(TestKey {
        suite: suite.to_owned(),
        name: t["name"].as_str().ok_or("no `name`")?.to_owned(),
        file: PathBuf::from(str_of(&t["file"])),
        loc: loc(&t["line"], &Value::Null),
        repeat: t["repeat"].as_u64().unwrap_or(0) as u32,
    });
    let report = TestReport {
        id: id.clone(),
        status: test_status(t["status"].as_str().unwrap_or_default())?,
        duration: ms_of(&t["duration_ms"]),
        tries: array(&t["tries"], "tries")?
            .iter()
            .map(parse_try)
            .collect::<Result<_, _>>()?,
        skip_reason: t["skip_reason"].as_str().map(str::to_owned),
    };
    let background = array(&t["tries"], "tries")?
        .iter()
        .enumerate()
        .filter_map(|(i, tr)| parse_background(i as u32 + 1, tr))
        .collect();
    Ok(TestRecord {
        id,
        report: Some(report),
        notices: strings(&t["notices"]),
        background,
        shard: None,
        labels: strings(&t["labels"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Reporter;
    use crate::report::collect::sample;
    use crate::report::json::Json;
    use crate::util::test_dir;

    #[test]
    fn a_report_merged_alone_renders_as_it_was_written() {
        let dir = test_dir("merge-alone");
        let path = dir.join("r.json");
        let mut j = Json::new(path.clone());
        sample::feed(&mut j, true);
        j.finish().unwrap();
        let original: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let merged = super::super::json::render(&merge(std::slice::from_ref(&path)).unwrap());
        assert_eq!(merged["counts"], original["counts"]);
        assert_eq!(merged["suites"].as_array().unwrap().len(), 2);
        for (m, o) in merged["suites"]
            .as_array()
            .unwrap()
            .iter()
            .zip(original["suites"].as_array().unwrap())
        {
            let strip = |t: &Value| {
                let mut t = t.clone();
                t.as_object_mut().unwrap().remove("run_id");
                t
            };
            let mt: Vec<Value> = m["tests"].as_array().unwrap().iter().map(strip).collect();
            assert_eq!(mt, *o["tests"].as_array().unwrap());
            assert_eq!(m["setup_error"], o["setup_error"]);
        }
        assert_eq!(merged["merged_from"][0]["run_id"], "run-1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_and_overlapping_reports_are_errors_naming_the_file() {
        let dir = test_dir("merge-bad");
        let a = dir.join("a.json");
        std::fs::write(&a, "{\"version\": 7}").unwrap();
        let e = merge(std::slice::from_ref(&a)).unwrap_err().to_string();
        assert!(e.contains("a.json: report format version 7"), "{e}");
        std::fs::write(&a, "not json").unwrap();
        let e = merge(std::slice::from_ref(&a)).unwrap_err().to_string();
        assert!(e.contains("a.json: not a JSON report"), "{e}");

        let mut j = Json::new(a.clone());
        for ev in sample::events(true) {
            j.event(&ev);
        }
        j.finish().unwrap();
        let e = merge(&[a.clone(), a.clone()]).unwrap_err().to_string();
        assert!(e.starts_with("test web/ok is in both"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
