//! Reporters: consumers of engine events (the nextest model). The terminal, JUnit, JSON,
//! GitHub annotations and the run's own trace are peers; none of them is called by a step.

use std::io::Write;

use crate::config::RunConfig;
use crate::engine::events::{self, Event, EventSink, EventStream};
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
    /// An event channel and the hub feeding it to `reporters`; it ends after `RunFinished`
    /// (or when every sink is dropped).
    pub fn start(reporters: Vec<Box<dyn Reporter>>) -> (EventSink, Hub) {
        let (sink, stream) = events::channel();
        (sink, Hub::consume(stream, reporters))
    }

    /// Start consuming `rx`; ends after `RunFinished` (or when every sender is dropped).
    fn consume(mut rx: EventStream, mut reporters: Vec<Box<dyn Reporter>>) -> Hub {
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
                let last = matches!(e, Event::RunFinished { .. });
                let dropped = rx.dropped_attempts();
                if last && dropped > 0 {
                    let note = Event::Notice {
                        id: None,
                        message: format!(
                            "{dropped} attempt events were not shown: the output did not keep \
                             up (progress only; every result is reported)"
                        ),
                    };
                    for r in reporters.iter_mut() {
                        r.event(&note);
                    }
                }
                for r in reporters.iter_mut() {
                    r.event(&e);
                }
                if last {
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

/// A writer tests hand to a reporter and read back.
#[cfg(test)]
pub(crate) mod test_output {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{MAX_QUEUED_ATTEMPTS, RunSummary, TestKey};
    use crate::engine::retry::AttemptRecord;
    use crate::suite::spanned::Loc;
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    /// Records what it gets; the first event blocks it until `gate` opens (a terminal whose
    /// reader stopped reading).
    struct Stuck {
        gate: Option<mpsc::Receiver<()>>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Reporter for Stuck {
        fn event(&mut self, e: &Event) {
            if let Some(g) = self.gate.take() {
                g.recv().unwrap();
            }
            self.seen.lock().unwrap().push(match e {
                Event::Attempt { .. } => "attempt".into(),
                Event::Notice { message, .. } => format!("notice {message}"),
                Event::RunFinished { .. } => "finished".into(),
                _ => "other".into(),
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_reporter_bounds_the_attempt_backlog_and_loses_no_result() {
        let (open, gate) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (events, hub) = Hub::start(vec![Box::new(Stuck {
            gate: Some(gate),
            seen: seen.clone(),
        })]);
        let id = Arc::new(TestKey {
            suite: "s".into(),
            name: "t".into(),
            file: "t.test.yaml".into(),
            loc: Loc::new(1, 1),
            repeat: 0,
        });
        let record = AttemptRecord {
            n: 1,
            start: Duration::ZERO,
            duration: Duration::ZERO,
            class: None,
            summary: String::new(),
            http: None,
        };
        events.emit(Event::Notice {
            id: None,
            message: "first".into(),
        });
        // Never blocks, however far behind the reporter is.
        let extra = 1000;
        for _ in 0..MAX_QUEUED_ATTEMPTS + extra {
            events.emit(Event::Attempt {
                id: id.clone(),
                index: 0,
                record: record.clone(),
            });
        }
        events.emit(Event::Notice {
            id: None,
            message: "result".into(),
        });
        events.emit(Event::RunFinished {
            summary: RunSummary::default(),
        });
        open.send(()).unwrap();
        assert!(hub.finish().await.is_empty());
        let seen = seen.lock().unwrap();
        let attempts = seen.iter().filter(|s| *s == "attempt").count();
        assert_eq!(attempts, MAX_QUEUED_ATTEMPTS);
        let n = seen.len();
        assert_eq!(seen[0], "notice first");
        assert_eq!(seen[n - 3], "notice result");
        assert_eq!(
            seen[n - 2],
            format!(
                "notice {extra} attempt events were not shown: the output did not keep up \
                 (progress only; every result is reported)"
            )
        );
        assert_eq!(seen[n - 1], "finished");
    }
}
