//! Writes the story of every failed (or flaky) test try into its failure bundle under
//! `--artifacts DIR` (see `debug::bundle`), next to the cluster dump the engine took before
//! cleanup.

use std::path::PathBuf;

use super::Reporter;
use super::collect::story;
use crate::debug::bundle::{dir_for, section_file};
use crate::engine::events::{Event, TestId, TryReport};

pub struct Artifacts {
    root: PathBuf,
    errors: Vec<String>,
}

impl Artifacts {
    pub fn new(root: PathBuf) -> Self {
        Artifacts {
            root,
            errors: Vec::new(),
        }
    }

    fn write_try(&mut self, id: &TestId, try_no: u32, t: &TryReport) {
        let dir = dir_for(&self.root, id, try_no);
        let mut files = vec![("failure.txt".to_string(), story(id, t, None))];
        if let Some(f) = t.failure() {
            for (i, s) in f.sections.iter().enumerate() {
                files.push((
                    section_file(i, &s.title),
                    format!("{}\n\n{}\n", s.title, s.body),
                ));
            }
            if !f.reproduce.is_empty() {
                files.push((
                    "reproduce.sh".into(),
                    format!("#!/bin/sh\n{}\n", f.reproduce.join("\n")),
                ));
            }
        }
        let r = std::fs::create_dir_all(&dir).and_then(|_| {
            for (name, body) in &files {
                std::fs::write(dir.join(name), body)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            self.errors.push(format!("{}: {e}", dir.display()));
        }
    }
}

impl Reporter for Artifacts {
    fn event(&mut self, e: &Event) {
        if let Event::TestFinished { report } = e {
            for (i, t) in report.tries.iter().enumerate() {
                if !t.passed {
                    self.write_try(&report.id, i as u32 + 1, t);
                }
            }
        }
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "failure bundles could not be written: {}",
                self.errors.join("; ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{TestReport, TestStatus};
    use crate::report::collect::sample::{failed_try, id, passed_try};
    use std::time::Duration;

    #[test]
    fn a_flaky_test_gets_a_bundle_for_its_failed_try_only() {
        let root = crate::util::test_dir("artifacts");
        let mut a = Artifacts::new(root.clone());
        let tid = id("web", "routes", 12, 0);
        let report = TestReport {
            id: tid.clone(),
            status: TestStatus::Flaky,
            duration: Duration::from_secs(4),
            tries: vec![
                failed_try("7 attempts in 3.0s: 7 got status 503", 14),
                passed_try(),
            ],
            skip_reason: None,
        };
        a.event(&Event::TestFinished { report });
        a.finish().unwrap();
        let dir = root.join("web").join("routes").join("try-1");
        let story = std::fs::read_to_string(dir.join("failure.txt")).unwrap();
        assert!(
            story.contains("7 attempts in 3.0s: 7 got status 503"),
            "{story}"
        );
        let resp = std::fs::read_to_string(dir.join("01-last-response.txt")).unwrap();
        assert!(resp.contains("no healthy upstream"), "{resp}");
        let sh = std::fs::read_to_string(dir.join("reproduce.sh")).unwrap();
        assert!(sh.contains("curl -sS -i"), "{sh}");
        assert!(!root.join("web").join("routes").join("try-2").exists());
        std::fs::remove_dir_all(root).unwrap();
    }
}
