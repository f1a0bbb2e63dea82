//! Engine events for a run of many passing steps: the export tests and benches/otlp_batch.rs
//! (which includes this file by path) feed them to `OtlpExport`.

use std::ops::Range;
use std::time::Duration;

use gwtest::engine::events::{Event, Phase, StepReport, StepStatus, TestId};
use gwtest::engine::{hex, new_span_id};
use gwtest::suite::spanned::Loc;

/// `StepStarted` then `StepFinished` (passed, one attempt) for each `assert` step in `indices`
/// of test `id`: one span each.
pub fn passed_steps(id: &TestId, indices: Range<usize>) -> Vec<Event> {
    indices
        .flat_map(|index| {
            let name = format!("step {index}");
            let report = StepReport {
                index,
                name: name.clone(),
                kind: "assert",
                phase: Phase::Steps,
                file: None,
                loc: Loc::new(index as u32 + 2, 5),
                status: StepStatus::Passed,
                duration: Duration::from_millis(1),
                attempts: 1,
                timeout: Some(Duration::from_secs(30)),
                failure: None,
            };
            [
                Event::StepStarted {
                    id: id.clone(),
                    index,
                    phase: Phase::Steps,
                    name,
                    kind: "assert",
                    span_id: hex(&new_span_id()),
                },
                Event::StepFinished {
                    id: id.clone(),
                    report,
                },
            ]
        })
        .collect()
}
