//! The `patch` step.

use super::{StepCtx, StepResult};

pub async fn run(_spec: &crate::suite::model::PatchSpec, _ctx: &mut StepCtx<'_>) -> StepResult {
    StepResult::error("not implemented yet")
}
