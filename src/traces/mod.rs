//! Traces: the OTLP receiver (gRPC + HTTP), the span store, span matching, and the run's own
//! export.
//!
//! # Public API (what the run wires)
//!
//! - [`SpanStore::new(cap)`](SpanStore::new): the run's span store, shared by every test
//!   (`Arc<SpanStore>` in `RunContext.spans`). [`SpanStore::position`] is the arrival
//!   sequence (`TestState.spans_since`), [`SpanStore::total_received`] and
//!   [`SpanStore::evicted`] are the counters to report, [`SpanStore::subscribe`] gives the
//!   `Notify` a `spans` step waits on.
//! - [`Receiver::start(grpc, http, store)`](Receiver::start) binds OTLP/gRPC and OTLP/HTTP
//!   (`127.0.0.1:0` by default) and serves into the store; a taken port is a
//!   [`BindError`] naming the address (exit 3). [`Receiver::endpoints`] gives
//!   `${otlp.grpc}` / `${otlp.http}`; [`Receiver::shutdown`] stops it.
//! - [`matcher::check`] runs one attempt of a `spans` step ([`matcher::SpanQuery`], the step
//!   with its variables substituted) against a [`Selection`] of the store;
//!   `crate::steps::spans` drives it with the retry engine.
//! - [`OtlpExport::new(endpoint, protocol)`](OtlpExport::new) is a `Reporter` exporting the run
//!   as a trace (run → suite → test → step, request attempts under their step), flushed
//!   with a deadline in `finish()`.
//! - [`attempt_span_id`] is the span id request attempt `n` of a step sends as its
//!   `traceparent` parent id when the run is exported; the exporter exports an attempt span
//!   with exactly that id, so the system under test's spans nest under it.

pub mod export;
pub mod matcher;
pub mod receiver;
pub mod store;

pub use export::OtlpExport;
pub use receiver::{BindError, Receiver};
pub use store::{Selection, SpanStore, StoredSpan};

/// The span id of attempt `n` (1-based) of the step whose span id is `step_span`: derived,
/// not random, so that the run's exporter (which only sees attempt numbers in events) can
/// export the attempt span the system under test's spans point at.
pub fn attempt_span_id(step_span: &[u8; 8], n: u32) -> [u8; 8] {
    // splitmix64: a bijective mix, so distinct attempts of one step never collide.
    let mut z = u64::from_be_bytes(*step_span)
        .wrapping_add(u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 {
        z = 1;
    }
    z.to_be_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn attempt_span_ids_are_stable_distinct_and_valid() {
        let step = [7u8; 8];
        let a1 = super::attempt_span_id(&step, 1);
        assert_eq!(a1, super::attempt_span_id(&step, 1));
        assert_ne!(a1, super::attempt_span_id(&step, 2));
        assert_ne!(a1, step);
        assert_ne!(a1, super::attempt_span_id(&[8u8; 8], 1));
        assert_ne!(a1, [0; 8]);
    }
}
