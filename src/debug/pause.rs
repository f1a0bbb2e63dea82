//! Pausing a test with everything still in place, until a person presses Enter (or Ctrl-C).
//! The prompt itself is printed by the terminal reporter from the `Paused` event.

use std::sync::Arc;

use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;

use crate::engine::RunContext;
use crate::engine::events::{Event, Failure, StepReport, TestId};
use crate::engine::retry::Limits;
use crate::steps::TestState;

/// One pause at a time: parallel tests queue up behind the person at the keyboard.
static PAUSE: Mutex<()> = Mutex::const_new(());

async fn pause(
    ctx: &Arc<RunContext>,
    id: &TestId,
    state: &TestState,
    reason: String,
    failure: Option<Failure>,
) {
    let _one = PAUSE.lock().await;
    if ctx.cancel.is_cancelled() {
        return;
    }
    let commands = state
        .namespace
        .as_deref()
        .map(|ns| crate::cluster::inspect_commands(ns, ctx.kubeconfig.as_deref(), &state.tracked))
        .unwrap_or_default();
    ctx.events.emit(Event::Paused {
        id: id.clone(),
        reason,
        namespace: state.namespace.clone(),
        commands,
        failure,
    });
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    tokio::select! {
        // Enter, or end of input (nobody is there: do not wait).
        _ = stdin.read_line(&mut line) => {}
        _ = ctx.cancel.cancelled() => {}
    }
    ctx.events.emit(Event::Resumed { id: id.clone() });
}

/// `--pause-on-failure`: stop after a failed step, before cleanup.
pub async fn on_failure(ctx: &Arc<RunContext>, id: &TestId, state: &TestState, step: &StepReport) {
    pause(
        ctx,
        id,
        state,
        format!("step {} ({}) failed", step.index + 1, step.name),
        step.failure.clone(),
    )
    .await;
}

/// A `pause:` step under `--pause`. The step's own deadline does not apply: a person decides.
pub async fn wait(
    ctx: &Arc<RunContext>,
    id: &TestId,
    state: &TestState,
    message: &str,
    _limits: &Limits,
) {
    pause(ctx, id, state, format!("pause: {message}"), None).await;
}
