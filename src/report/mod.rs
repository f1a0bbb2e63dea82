//! Reporters: consumers of engine events (the nextest model). The terminal, JUnit, JSON,
//! GitHub annotations and the run's own trace are peers; none of them is called by a step.

use std::io::Write;

use tokio::sync::mpsc;

use crate::config::RunConfig;
use crate::engine::events::Event;
use crate::suite::load::LoadError;

pub mod artifacts;
pub mod collect;
pub mod conformance;
pub mod flakes;
pub mod github;
pub mod json;
pub mod junit;
pub mod merge;
pub mod summary;
pub mod terminal;

/// A reporter's trouble that is not the run's: printed as a warning (the run's own trace
/// could not be exported), where a report that could not be written is an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Warning(pub String);

/// Something that turns events into output.
pub trait Reporter: Send {
    fn event(&mut self, e: &Event);
    /// Called about once a second while no event comes (heartbeats for slow tests).
    fn tick(&mut self) {}
    /// Called once after the last event: write files, flush. Errors are reported, not fatal.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How often reporters get a `tick` (heartbeats).
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Feeds every event to every reporter, in order, on its own task.
pub struct Hub {
    handle: tokio::task::JoinHandle<Vec<anyhow::Error>>,
}

impl Hub {
    /// Start consuming `rx`; ends after `RunFinished` (or when every sender is dropped).
    pub fn start(
        mut rx: mpsc::UnboundedReceiver<Event>,
        mut reporters: Vec<Box<dyn Reporter>>,
    ) -> Hub {
        let runtime = tokio::runtime::Handle::current();
        let handle = tokio::task::spawn_blocking(move || {
            let mut last_tick = std::time::Instant::now();
            loop {
                // Not a runtime worker: blocking on the receive (with a deadline) is fine.
                let next = runtime.block_on(tokio::time::timeout(TICK, rx.recv()));
                if last_tick.elapsed() >= TICK {
                    last_tick = std::time::Instant::now();
                    for r in reporters.iter_mut() {
                        r.tick();
                    }
                }
                let e = match next {
                    Ok(Some(e)) => e,
                    Ok(None) => break,
                    Err(_) => continue,
                };
                for r in reporters.iter_mut() {
                    r.event(&e);
                }
                if matches!(e, Event::RunFinished { .. }) {
                    break;
                }
            }
            reporters
                .iter_mut()
                .filter_map(|r| r.finish().err())
                .collect()
        });
        Hub { handle }
    }

    /// Wait for the reporters to finish (after every sender is gone).
    pub async fn finish(self) -> Vec<anyhow::Error> {
        self.handle
            .await
            .unwrap_or_else(|e| vec![anyhow::anyhow!("a reporter panicked: {e}")])
    }
}

/// The reporters a run's configuration asks for.
pub fn reporters(config: &RunConfig) -> Vec<Box<dyn Reporter>> {
    let mut out: Vec<Box<dyn Reporter>> = vec![Box::new(terminal::Terminal::new(config))];
    if let Some(p) = &config.junit {
        out.push(Box::new(junit::Junit::new(p.clone())));
    }
    if let Some(p) = &config.json {
        out.push(Box::new(json::Json::new(p.clone())));
    }
    if github::enabled() {
        out.push(Box::new(github::Github::new()));
    }
    if let Some(s) = summary::StepSummary::from_env() {
        out.push(Box::new(s));
    }
    if let Some(c) = &config.conformance {
        out.push(Box::new(conformance::Conformance::new(c.clone())));
    }
    if let Some(p) = &config.artifacts {
        out.push(Box::new(artifacts::Artifacts::new(p.clone())));
    }
    out
}

/// Suite errors on stderr, each with file:line:column and a snippet, then a count.
pub fn print_load_errors(errors: &[LoadError]) {
    let mut err = std::io::stderr().lock();
    for e in errors {
        let _ = writeln!(err, "error: {e}");
    }
    let n = crate::suite::load::error_count(errors);
    let _ = writeln!(err, "{n} error{} found", if n == 1 { "" } else { "s" });
}
