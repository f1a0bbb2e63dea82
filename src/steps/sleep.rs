//! The `sleep` step: wait, bounded by the test deadline and Ctrl-C.

use tokio::time::Instant;

use super::{StepCtx, StepResult};
use crate::engine::events::{Failure, FailureCause};
use crate::suite::spanned::Dur;
use crate::util::fmt_duration;

pub async fn run(d: Dur, ctx: &mut StepCtx<'_>) -> StepResult {
    let until = Instant::now() + d.0;
    let limit = ctx.limits.test_deadline;
    tokio::select! {
        _ = ctx.limits.cancel.cancelled() => {
            StepResult::failed(0, Failure::new(FailureCause::Interrupted, None, "interrupted during sleep"))
        }
        _ = tokio::time::sleep_until(until.min(limit)) => {
            if until > limit {
                StepResult::failed(0, Failure::new(
                    FailureCause::TestTimeout,
                    None,
                    format!("test-timeout ({}) reached during sleep {}", fmt_duration(ctx.limits.test_timeout), d),
                ))
            } else {
                StepResult::passed(1)
            }
        }
    }
}
