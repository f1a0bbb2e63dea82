//! The `pause` step: a breakpoint, honoured only with `--pause`.

use super::{StepCtx, StepResult};
use crate::engine::events::Answer;

pub async fn run(message: &str, ctx: &mut StepCtx<'_>) -> StepResult {
    if !ctx.run.config.pause {
        return StepResult {
            skipped: true,
            ..StepResult::passed(0)
        };
    }
    // The test's clock stands still meanwhile: a person decides how long a pause lasts.
    let answer = crate::debug::pause::wait(ctx.run, ctx.test, ctx.state.view(), message).await;
    if answer == Answer::Keep {
        ctx.state.keep = true;
    }
    StepResult::passed(1)
}
