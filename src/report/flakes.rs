//! Flake hunting (`--repeat N`): per test, how often it passed across the repeats, and per
//! step the attempts and the time it took to pass (p50/p95/max), with timeout advice where a
//! step runs close to its timeout — the number a fixed timeout needs and that a single green
//! run never shows. The terminal prints it at the end of the run, the JSON report has it
//! under `repeats`, and the GitHub step summary gets it as Markdown.
//!
//! Every try of every repeat is a sample of a step (a re-run with `retries` is one more
//! run of the step). Percentiles are nearest-rank.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::collect::Record;
use crate::engine::events::{FailureCause, StepStatus, TestReport, TestStatus};
use crate::util::{fmt_duration, fmt_secs};

/// Advice is given when a step's p95 time-to-pass uses at least this share of its timeout.
pub const ADVICE_SHARE: f64 = 0.75;

/// p50, p95 and max of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread<T> {
    pub p50: T,
    pub p95: T,
    pub max: T,
}

/// Nearest-rank percentiles; `None` without samples.
pub fn spread<T: Copy + Ord>(mut v: Vec<T>) -> Option<Spread<T>> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Spread {
        p50: at(0.50),
        p95: at(0.95),
        max: v[v.len() - 1],
    })
}

#[derive(Clone, Debug)]
pub struct StepStats {
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub line: u32,
    /// Tries in which the step ran.
    pub runs: usize,
    pub passed: usize,
    /// Runs that failed because the step's (or the test's) deadline passed.
    pub ran_out: usize,
    pub timeout: Option<Duration>,
    pub attempts: Option<Spread<u32>>,
    /// Over the runs where the step passed.
    pub time_to_pass: Option<Spread<Duration>>,
}

impl StepStats {
    /// "step 3 "route answers" took up to 4.2s in 20 runs, p95 3.1s; its timeout 5s leaves 16%:
    /// raise it or fix the slowness", when the step runs close to its timeout or ran out.
    pub fn advice(&self) -> Option<String> {
        let timeout = self.timeout.filter(|t| !t.is_zero())?;
        if matches!(self.kind.as_str(), "sleep" | "pause") {
            return None;
        }
        let which = format!("step {} {:?}", self.index + 1, self.name);
        let t = self.time_to_pass;
        if self.ran_out > 0 {
            let passing = match t {
                Some(s) => format!(
                    "; when it passed it took up to {}, p95 {}",
                    fmt_secs(s.max),
                    fmt_secs(s.p95)
                ),
                None => "; it never passed".to_owned(),
            };
            return Some(format!(
                "{which} ran out of its {} timeout in {} of {} runs{passing}: raise it or fix \
                 the slowness",
                fmt_duration(timeout),
                self.ran_out,
                self.runs
            ));
        }
        let s = t?;
        if s.p95.as_secs_f64() < ADVICE_SHARE * timeout.as_secs_f64() {
            return None;
        }
        let left = (1.0 - s.max.as_secs_f64() / timeout.as_secs_f64()).max(0.0);
        Some(format!(
            "{which} took up to {} in {} runs, p95 {}; its timeout {} leaves {:.0}%: raise it \
             or fix the slowness",
            fmt_secs(s.max),
            self.runs,
            fmt_secs(s.p95),
            fmt_duration(timeout),
            left * 100.0
        ))
    }

    fn to_json(&self) -> Value {
        let ms = |d: Duration| d.as_millis() as u64;
        let mut v = json!({
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "line": self.line,
            "runs": self.runs,
            "passed": self.passed,
            "ran_out": self.ran_out,
            "timeout_ms": self.timeout.map(ms),
            "attempts": self.attempts.map(|a| json!({"p50": a.p50, "p95": a.p95, "max": a.max})),
            "time_to_pass_ms": self.time_to_pass.map(|t| json!({"p50": ms(t.p50), "p95": ms(t.p95), "max": ms(t.max)})),
        });
        if let Some(a) = self.advice() {
            v["advice"] = a.into();
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct TestStats {
    pub suite: String,
    pub name: String,
    pub file: PathBuf,
    /// Repeats that ran (skipped ones left out).
    pub runs: usize,
    pub passed: usize,
    pub flaky: usize,
    pub failed: usize,
    pub steps: Vec<StepStats>,
}

impl TestStats {
    /// Passed or flaky, out of the repeats that ran.
    pub fn pass_rate(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            (self.passed + self.flaky) as f64 / self.runs as f64
        }
    }

    pub fn advice(&self) -> Vec<String> {
        self.steps.iter().filter_map(StepStats::advice).collect()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "suite": self.suite,
            "test": self.name,
            "file": self.file.display().to_string(),
            "runs": self.runs,
            "passed": self.passed,
            "flaky": self.flaky,
            "failed": self.failed,
            "pass_rate": (self.pass_rate() * 1000.0).round() / 1000.0,
            "steps": self.steps.iter().map(StepStats::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Statistics of every test that ran more than once (`--repeat`), in the order given.
pub fn stats_of<'a>(reports: impl IntoIterator<Item = &'a TestReport>) -> Vec<TestStats> {
    let mut groups: Vec<((String, String), Vec<&TestReport>)> = Vec::new();
    let mut repeated: BTreeMap<(String, String), bool> = BTreeMap::new();
    for r in reports {
        let key = (r.id.suite.clone(), r.id.name.clone());
        *repeated.entry(key.clone()).or_default() |= r.id.repeat > 0;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
        .into_iter()
        .filter(|(k, _)| repeated.get(k).copied().unwrap_or(false))
        .map(|((suite, name), reports)| test_stats(suite, name, &reports))
        .collect()
}

/// The statistics of a record's repeated tests.
pub fn stats(r: &Record) -> Vec<TestStats> {
    let reports: Vec<TestReport> = r
        .suites
        .iter()
        .flat_map(|s| s.tests.iter().map(move |t| r.outcome(s, t)))
        .collect();
    stats_of(&reports)
}

fn test_stats(suite: String, name: String, reports: &[&TestReport]) -> TestStats {
    let ran: Vec<&&TestReport> = reports
        .iter()
        .filter(|r| r.status != TestStatus::Skipped)
        .collect();
    let count = |s: TestStatus| ran.iter().filter(|r| r.status == s).count();
    // Steps by index, named after their first appearance.
    let mut steps: BTreeMap<usize, (StepStats, Vec<u32>, Vec<Duration>)> = BTreeMap::new();
    for r in &ran {
        for t in &r.tries {
            for s in &t.steps {
                if !matches!(s.status, StepStatus::Passed | StepStatus::Failed) {
                    continue;
                }
                let (st, attempts, times) = steps.entry(s.index).or_insert_with(|| {
                    (
                        StepStats {
                            index: s.index,
                            name: s.name.clone(),
                            kind: s.kind.to_owned(),
                            line: s.loc.line,
                            runs: 0,
                            passed: 0,
                            ran_out: 0,
                            timeout: None,
                            attempts: None,
                            time_to_pass: None,
                        },
                        Vec::new(),
                        Vec::new(),
                    )
                });
                st.runs += 1;
                st.timeout = st.timeout.max(s.timeout);
                attempts.push(s.attempts);
                match s.status {
                    StepStatus::Passed => {
                        st.passed += 1;
                        times.push(s.duration);
                    }
                    _ => {
                        if s.failure.as_ref().is_some_and(|f| {
                            matches!(f.cause, FailureCause::Timeout | FailureCause::TestTimeout)
                        }) {
                            st.ran_out += 1;
                        }
                    }
                }
            }
        }
    }
    let steps = steps
        .into_values()
        .map(|(mut st, attempts, times)| {
            st.attempts = spread(attempts);
            st.time_to_pass = spread(times);
            st
        })
        .collect();
    TestStats {
        file: reports
            .first()
            .map(|r| r.id.file.clone())
            .unwrap_or_default(),
        suite,
        name,
        runs: ran.len(),
        passed: count(TestStatus::Passed),
        flaky: count(TestStatus::Flaky),
        failed: count(TestStatus::Failed),
        steps,
    }
}

fn rate(t: &TestStats) -> String {
    let mut s = format!(
        "passed {}/{} ({:.0}%)",
        t.passed + t.flaky,
        t.runs,
        t.pass_rate() * 100.0
    );
    if t.flaky > 0 {
        let _ = write!(s, ", {} flaky", t.flaky);
    }
    s
}

fn spread_text<T: Copy>(s: Option<Spread<T>>, f: impl Fn(T) -> String) -> String {
    match s {
        Some(s) => format!("{}/{}/{}", f(s.p50), f(s.p95), f(s.max)),
        None => "-".into(),
    }
}

/// The table for the terminal (plain text, no trailing newline).
pub fn render_text(stats: &[TestStats]) -> String {
    let mut out = String::new();
    let runs = stats.iter().map(|t| t.runs).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "repeats: {} test{}, up to {runs} runs each (per step: attempts and time to pass, \
         p50/p95/max)",
        stats.len(),
        if stats.len() == 1 { "" } else { "s" }
    );
    for t in stats {
        let _ = writeln!(out, "  {}/{}: {}", t.suite, t.name, rate(t));
        let width = t
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for s in &t.steps {
            let timeout = s
                .timeout
                .map(|d| format!(", timeout {}", fmt_duration(d)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {:>2}. {:<width$}  passed {}/{}  attempts {}  time {}{timeout}",
                s.index + 1,
                crate::util::truncate(&s.name, 40),
                s.passed,
                s.runs,
                spread_text(s.attempts, |a| a.to_string()),
                spread_text(s.time_to_pass, fmt_secs),
            );
        }
        for a in t.advice() {
            let _ = writeln!(out, "    advice: {a}");
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// The table as GitHub-flavoured Markdown.
pub fn render_markdown(stats: &[TestStats]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("### Repeats\n\n");
    for t in stats {
        let _ = writeln!(
            out,
            "**{}/{}**: {}\n",
            cell(&t.suite),
            cell(&t.name),
            rate(t)
        );
        out.push_str(
            "| step | passed | attempts p50/p95/max | time to pass p50/p95/max | timeout |\n\
             |---|---|---|---|---|\n",
        );
        for s in &t.steps {
            let _ = writeln!(
                out,
                "| {}. {} ({}) | {}/{} | {} | {} | {} |",
                s.index + 1,
                cell(&s.name),
                s.kind,
                s.passed,
                s.runs,
                spread_text(s.attempts, |a| a.to_string()),
                spread_text(s.time_to_pass, fmt_secs),
                s.timeout.map(fmt_duration).unwrap_or_else(|| "-".into())
            );
        }
        out.push('\n');
        for a in t.advice() {
            let _ = writeln!(out, "> [!WARNING]\n> {}\n", cell(&a));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{Failure, Phase, StepReport, TestKey, TryReport};
    use crate::suite::spanned::Loc;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn step(index: usize, ms_: u64, attempts: u32, passed: bool, timeout_ms: u64) -> StepReport {
        StepReport {
            index,
            name: format!("s{}", index + 1),
            kind: "request",
            phase: Phase::Steps,
            file: None,
            loc: Loc::new(10 + index as u32, 5),
            status: if passed {
                StepStatus::Passed
            } else {
                StepStatus::Failed
            },
            duration: ms(ms_),
            attempts,
            timeout: Some(ms(timeout_ms)),
            failure: (!passed).then(|| {
                Failure::new(
                    FailureCause::Timeout,
                    None,
                    "5 attempts in 5.0s: status 503",
                )
            }),
        }
    }

    fn report(repeat: u32, steps: Vec<StepReport>) -> TestReport {
        let passed = steps.iter().all(|s| s.status == StepStatus::Passed);
        TestReport {
            id: Arc::new(TestKey {
                suite: "s".into(),
                name: "t".into(),
                file: "s/t.test.yaml".into(),
                loc: Loc::new(1, 1),
                repeat,
            }),
            status: if passed {
                TestStatus::Passed
            } else {
                TestStatus::Failed
            },
            duration: ms(100),
            tries: vec![TryReport::new(passed, ms(100), steps)],
            skip_reason: None,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=20).collect();
        assert_eq!(
            spread(v),
            Some(Spread {
                p50: 10,
                p95: 19,
                max: 20
            })
        );
        assert_eq!(
            spread(vec![7]),
            Some(Spread {
                p50: 7,
                p95: 7,
                max: 7
            })
        );
        assert_eq!(spread::<u32>(vec![]), None);
    }

    #[test]
    fn a_step_close_to_its_timeout_gets_advice_and_a_steady_one_none() {
        // 20 repeats: step 2 takes 3.0s..4.2s of its 5s timeout; step 1 is quick.
        let reports: Vec<TestReport> = (0..20)
            .map(|i| {
                let slow = if i == 19 { 4200 } else { 3000 + 50 * i as u64 };
                report(
                    i,
                    vec![step(0, 10, 1, true, 5000), step(1, slow, 2, true, 5000)],
                )
            })
            .collect();
        let stats = stats_of(&reports);
        assert_eq!(stats.len(), 1);
        let t = &stats[0];
        assert_eq!((t.runs, t.passed, t.failed), (20, 20, 0));
        assert_eq!(t.steps[0].advice(), None);
        let s = &t.steps[1];
        assert_eq!(s.time_to_pass.unwrap().max, ms(4200));
        assert_eq!(
            s.advice().unwrap(),
            "step 2 \"s2\" took up to 4.2s in 20 runs, p95 3.9s; its timeout 5s leaves 16%: \
             raise it or fix the slowness"
        );
        let text = render_text(&stats);
        assert!(text.contains("  s/t: passed 20/20 (100%)"), "{text}");
        assert!(
            text.contains("attempts 2/2/2  time 3.5s/3.9s/4.2s, timeout 5s"),
            "{text}"
        );
        let md = render_markdown(&stats);
        assert!(
            md.contains("| 2. s2 (request) | 20/20 | 2/2/2 | 3.5s/3.9s/4.2s | 5s |"),
            "{md}"
        );
        let j = t.to_json();
        assert_eq!(j["steps"][1]["time_to_pass_ms"]["max"], 4200);
        assert_eq!(j["pass_rate"], 1.0);
    }

    #[test]
    fn a_step_that_ran_out_in_some_repeats_is_named() {
        let reports: Vec<TestReport> = (0..4)
            .map(|i| {
                report(
                    i,
                    vec![step(0, if i == 3 { 5000 } else { 1000 }, 3, i != 3, 5000)],
                )
            })
            .collect();
        let stats = stats_of(&reports);
        let t = &stats[0];
        assert_eq!((t.runs, t.passed, t.failed), (4, 3, 1));
        assert_eq!(
            t.steps[0].advice().unwrap(),
            "step 1 \"s1\" ran out of its 5s timeout in 1 of 4 runs; when it passed it took up \
             to 1.0s, p95 1.0s: raise it or fix the slowness"
        );
        assert_eq!(t.pass_rate(), 0.75);
    }

    #[test]
    fn tests_that_ran_once_have_no_statistics() {
        assert!(stats_of(&[report(0, vec![step(0, 10, 1, true, 5000)])]).is_empty());
    }
}
