//! Pausing a test with everything still in place, until a person presses Enter (or Ctrl-C).
//! The prompt itself is printed by the terminal reporter from the `Paused` event.
//!
//! stdin is read by one thread for the whole process, line by line, so an abandoned pause
//! (Ctrl-C) never leaves a read behind that would swallow the next Enter. In CI (`$CI` set)
//! nobody is at the keyboard: pauses are skipped with a notice, whatever stdin is.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::cluster::Tracked;
use crate::engine::RunContext;
use crate::engine::events::{Event, Failure, StepReport, TestId};

/// One pause at a time: parallel tests queue up behind the person at the keyboard. Holds the
/// lines typed on stdin (`None` once stdin is closed).
static STDIN: OnceLock<Mutex<mpsc::UnboundedReceiver<String>>> = OnceLock::new();

fn stdin_lines() -> &'static Mutex<mpsc::UnboundedReceiver<String>> {
    STDIN.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            // Ends at end of input (or when nobody listens any more).
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        Mutex::new(rx)
    })
}

/// Pause and wait; returns how long it waited.
async fn pause(
    ctx: &Arc<RunContext>,
    id: &TestId,
    namespace: Option<&str>,
    tracked: &[Tracked],
    reason: String,
    failure: Option<Failure>,
) -> Duration {
    if crate::config::in_ci() {
        ctx.events.emit(Event::Notice {
            id: Some(id.clone()),
            message: format!("not pausing in CI ($CI is set): {reason}"),
        });
        return Duration::ZERO;
    }
    let mut lines = stdin_lines().lock().await;
    if ctx.cancel.is_cancelled() {
        return Duration::ZERO;
    }
    let started = Instant::now();
    let commands = namespace
        .map(|ns| crate::cluster::inspect_commands(ns, &ctx.kubectl_flags(), tracked))
        .unwrap_or_default();
    ctx.events.emit(Event::Paused {
        id: id.clone(),
        reason,
        namespace: namespace.map(str::to_owned),
        commands,
        failure,
    });
    tokio::select! {
        // Enter, or end of input (nobody is there: do not wait).
        _ = lines.recv() => {}
        _ = ctx.cancel.cancelled() => {}
    }
    ctx.events.emit(Event::Resumed { id: id.clone() });
    started.elapsed()
}

/// `--pause-on-failure`: stop after a failed step, before cleanup.
pub async fn on_failure(
    ctx: &Arc<RunContext>,
    id: &TestId,
    namespace: Option<&str>,
    tracked: &[Tracked],
    step: &StepReport,
) {
    pause(
        ctx,
        id,
        namespace,
        tracked,
        format!("step {} ({}) failed", step.index + 1, step.name),
        step.failure.clone(),
    )
    .await;
}

/// A `pause:` step under `--pause`. Returns the time paused, which the engine adds to the
/// test's deadline: a person decides how long a pause lasts.
pub async fn wait(
    ctx: &Arc<RunContext>,
    id: &TestId,
    namespace: Option<&str>,
    tracked: &[Tracked],
    message: &str,
) -> Duration {
    pause(
        ctx,
        id,
        namespace,
        tracked,
        format!("pause: {message}"),
        None,
    )
    .await
}
