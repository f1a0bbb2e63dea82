//! The GitHub Actions job summary: when `$GITHUB_STEP_SUMMARY` names a file, the run appends
//! a Markdown summary to it on `finish()` — the counts, the failed and flaky tests with their
//! headlines, and with `--repeat` the flake statistics and timeout advice — which GitHub shows
//! on the run's page.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use super::Reporter;
use super::collect::{Record, test_name};
use crate::engine::events::{Counts, Event, TestStatus};
use crate::util::{fmt_secs, truncate, visible_controls};

pub struct StepSummary {
    path: PathBuf,
    record: Record,
}

impl StepSummary {
    /// A reporter when `$GITHUB_STEP_SUMMARY` is set (and not empty).
    pub fn from_env() -> Option<StepSummary> {
        let path = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())?;
        Some(StepSummary {
            path: path.into(),
            record: Record::new(),
        })
    }
}

/// Text for a Markdown table cell or list item: one line, no markup of its own.
fn plain(s: &str) -> String {
    let s = visible_controls(s);
    let mut out = String::with_capacity(s.len());
    for c in truncate(&s, 300).chars() {
        match c {
            '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The whole summary as Markdown.
pub fn render(r: &Record) -> String {
    let mut counts = Counts::default();
    let mut failed = Vec::new();
    let mut flaky = Vec::new();
    for s in &r.suites {
        for t in &s.tests {
            let report = r.outcome(s, t);
            counts.add(report.status);
            let id = format!("{}/{}", s.name, test_name(&t.id));
            let headline = report
                .failure()
                .and_then(|tr| tr.failure())
                .map(|f| f.headline.clone())
                .unwrap_or_default();
            match report.status {
                TestStatus::Failed => failed.push((id, headline)),
                TestStatus::Flaky => flaky.push((id, report.tries.len(), headline)),
                _ => {}
            }
        }
    }
    let mut out = String::new();
    let verdict = if r.interrupted() {
        "interrupted"
    } else if counts.failed > 0 {
        "failed"
    } else {
        "passed"
    };
    let _ = writeln!(
        out,
        "## gwtest: {verdict}\n\n{} tests: {} passed, {} flaky, {} failed, {} skipped in {}\n",
        counts.total(),
        counts.passed,
        counts.flaky,
        counts.failed,
        counts.skipped,
        fmt_secs(r.duration())
    );
    if !failed.is_empty() {
        out.push_str("### Failed\n\n");
        for (id, h) in &failed {
            let _ = writeln!(out, "- **{}**: {}", plain(id), plain(h));
        }
        out.push('\n');
    }
    if !flaky.is_empty() {
        out.push_str("### Flaky\n\n");
        for (id, tries, h) in &flaky {
            let _ = writeln!(
                out,
                "- **{}** (passed on try {tries}): {}",
                plain(id),
                plain(h)
            );
        }
        out.push('\n');
    }
    let repeats = super::flakes::stats(r);
    if !repeats.is_empty() {
        out.push_str(&super::flakes::render_markdown(&repeats));
    }
    out
}

impl Reporter for StepSummary {
    fn event(&mut self, e: &Event) {
        self.record.event(e);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        let text = render(&self.record);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| anyhow::anyhow!("$GITHUB_STEP_SUMMARY {}: {e}", self.path.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::collect::sample;

    #[test]
    fn counts_failures_flaky_tests_and_repeats_in_markdown() {
        let mut r = Record::new();
        for e in sample::events(true) {
            r.event(&e);
        }
        let md = render(&r);
        assert!(
            md.starts_with(
                "## gwtest: failed\n\n8 tests: 3 passed, 1 flaky, 3 failed, 1 skipped in 9.5s\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("- **web/broken**: try three: got status 500 second line\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "- **web/flaky** (passed on try 2): 100% of 7 attempts got status 503, a,b: c\n"
            ),
            "{md}"
        );
        assert!(md.contains("### Repeats"), "{md}");
        assert!(md.contains("**web/ok**: passed 2/2 (100%)"), "{md}");
    }

    #[test]
    fn markup_in_headlines_stays_text() {
        assert_eq!(
            plain("a|b `c` <img> [x](y)"),
            "a\\|b \\`c\\` \\<img\\> \\[x\\](y)"
        );
    }
}
