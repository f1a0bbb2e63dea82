//! `gwtest run` after loading: announce the plan, run the picked tests on what `main`
//! brought up (`engine::infra`), wait for background cleanup, and end with the summary that
//! `main` turns into an exit code. It starts nothing and prints nothing: everything it has to
//! say is an event for the reporters, and they get the whole run on every path (a run that
//! could not start, Ctrl-C).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::events::{Event, EventSink, RunSummary, SuitePlan};
use super::select::SuitePick;
use super::{RunContext, scheduler};
use crate::suite::load::Suite;
use crate::suite::model::Action;
use crate::suite::spanned::Loc;

/// The first step (in run order) that needs something, for messages.
#[derive(Clone, Debug)]
pub struct StepRef {
    pub file: PathBuf,
    pub loc: Loc,
    pub name: String,
    pub kind: &'static str,
}

impl std::fmt::Display for StepRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: step {:?} ({})",
            self.file.display(),
            self.loc,
            self.name,
            self.kind
        )
    }
}

/// What the picked tests need from the outside world.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub cluster: Option<StepRef>,
    pub spans: Option<StepRef>,
}

impl Needs {
    pub fn of(suites: &[Arc<Suite>], picks: &[SuitePick]) -> Needs {
        let mut n = Needs::default();
        for p in picks {
            let suite = &suites[p.suite];
            if n.cluster.is_none() && suite.setup_needs_cluster() {
                n.cluster = Some(StepRef {
                    file: suite.file.clone(),
                    loc: suite.doc.api_version.loc,
                    name: suite.name.clone(),
                    kind: "suite fixtures/vars",
                });
            }
            for (ti, _) in &p.tests {
                let test = &suite.tests[*ti];
                for (file, s) in test.all_steps() {
                    let r = || StepRef {
                        file: file.to_path_buf(),
                        loc: s.loc,
                        name: s.value.display_name(),
                        kind: s.value.kind(),
                    };
                    if n.cluster.is_none() && s.value.needs_cluster() {
                        n.cluster = Some(r());
                    }
                    if n.spans.is_none() && matches!(s.value.action, Action::Spans(_)) {
                        n.spans = Some(r());
                    }
                }
            }
        }
        n
    }
}

/// A run of the picked tests of loaded, valid suites, announced to the reporters.
pub struct Run {
    pub run_id: String,
    pub trace_id: [u8; 16],
    started: Instant,
    suites: Vec<Arc<Suite>>,
    picks: Vec<SuitePick>,
    events: EventSink,
}

impl Run {
    /// Tell the reporters what will run (`RunStarted`: the plan).
    pub fn announce(
        suites: Vec<Suite>,
        picks: Vec<SuitePick>,
        parallel: usize,
        events: EventSink,
    ) -> Run {
        let run = Run {
            run_id: super::new_run_id(),
            trace_id: super::new_trace_id(),
            started: Instant::now(),
            suites: suites.into_iter().map(Arc::new).collect(),
            picks,
            events,
        };
        let plans = run
            .picks
            .iter()
            .map(|p| {
                let suite = &run.suites[p.suite];
                SuitePlan {
                    index: p.suite,
                    name: suite.name.clone(),
                    file: suite.file.clone(),
                    tests: p.tests.iter().map(|(_, id)| id.clone()).collect(),
                    labels: p
                        .tests
                        .iter()
                        .map(|(ti, _)| suite.tests[*ti].labels.clone())
                        .collect(),
                }
            })
            .collect();
        run.events.emit(Event::RunStarted {
            run_id: run.run_id.clone(),
            trace_id: super::hex(&run.trace_id),
            started: SystemTime::now(),
            suites: plans,
            parallel,
        });
        run
    }

    /// What the picked tests need from the outside world.
    pub fn needs(&self) -> Needs {
        Needs::of(&self.suites, &self.picks)
    }

    /// What the run needs could not be brought up: no test ran, and the reporters say why.
    pub fn could_not_start(self, why: String) -> RunSummary {
        let summary = RunSummary {
            duration: self.started.elapsed(),
            not_started: Some(why),
            ..RunSummary::default()
        };
        self.events.emit(Event::RunFinished {
            summary: summary.clone(),
        });
        summary
    }

    /// Run the tests on `ctx` (which carries this run's ids), then wait for the background
    /// deletions, and end the run.
    pub async fn execute(self, ctx: Arc<RunContext>) -> RunSummary {
        let events = &self.events;
        let counts = scheduler::run(ctx.clone(), self.suites, self.picks).await;
        if let Some(c) = &ctx.cluster {
            c.forwards.stop();
        }
        // Namespaces and fixtures still being deleted in the background: nothing is left
        // behind when gwtest exits (each deletion is bounded by its cleanup-timeout; Ctrl-C
        // does not stop it, a second one exits at once).
        let pending = ctx.reaper.pending();
        if pending > 0 {
            events.emit(Event::CleanupWaiting { pending });
        }
        let cleanup_failed = ctx.reaper.finish().await;
        if let Some(s) = &ctx.spans
            && s.evicted() > 0
        {
            events.emit(Event::Notice {
                id: None,
                message: format!(
                    "the span store dropped its {} oldest spans (cap {}, --max-spans)",
                    s.evicted(),
                    s.cap()
                ),
            });
        }
        let summary = RunSummary {
            counts,
            duration: self.started.elapsed(),
            interrupted: ctx.cancel.is_cancelled(),
            cleanup_failed,
            cluster_unusable: ctx
                .cluster
                .as_ref()
                .and_then(|c| c.unusable())
                .map(|e| e.to_string()),
            not_started: None,
            quit: ctx.prompt.quit(),
        };
        events.emit(Event::RunFinished {
            summary: summary.clone(),
        });
        summary
    }
}
