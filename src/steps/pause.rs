//! The `pause` step: a breakpoint, honoured only with `--pause`.

use super::{StepCtx, StepResult};

pub async fn run(message: &str, ctx: &mut StepCtx<'_>) -> StepResult {
    if !ctx.run.config.pause {
        return StepResult {
            skipped: true,
            ..StepResult::passed(0)
        };
    }
    let state = &ctx.state;
    let paused = crate::debug::pause::wait(
        ctx.run,
        ctx.test,
        state.namespace.as_deref(),
        &state.tracked,
        message,
    )
    .await;
    ctx.state.paused += paused;
    StepResult::passed(1)
}
