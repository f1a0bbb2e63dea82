//! The `delete` step.

use super::{StepCtx, StepResult};

pub async fn run(_spec: &crate::suite::model::DeleteSpec, _ctx: &mut StepCtx<'_>) -> StepResult {
    StepResult::error("not implemented yet")
}
