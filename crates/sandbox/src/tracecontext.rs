//! W3C Trace Context (`traceparent`) and trace and span ids, by opentelemetry: headers are
//! read and written by its `TraceContextPropagator`, ids come from its `RandomIdGenerator`.
//! The runner (request attempts, the run's own trace) and the demo gateway (incoming
//! requests) both use these, so the two sides of a request agree on one reading of the header.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

const TRACEPARENT: &str = "traceparent";

/// The trace and parent span a request continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// A `traceparent` header value, when the propagator finds a valid context in it (version
/// `ff` and all-zero ids are invalid; upper-case hex is refused; a later version may carry
/// more fields).
pub fn parse(value: &str) -> Option<TraceParent> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        sampled: sc.is_sampled(),
    })
}

/// The `traceparent` header value of a sampled context, as the propagator writes it.
pub fn format(trace_id: [u8; 16], span_id: [u8; 8]) -> String {
    struct Traceparent(String);
    impl Injector for Traceparent {
        fn set(&mut self, key: &str, value: String) {
            // `tracestate` is written too, empty: not sent.
            if key == TRACEPARENT {
                self.0 = value;
            }
        }
    }
    let sc = SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let mut header = Traceparent(String::new());
    TraceContextPropagator::new()
        .inject_context(&Context::new().with_remote_span_context(sc), &mut header);
    header.0
}

/// A random, valid (non-zero) trace id.
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let id = RandomIdGenerator::default().new_trace_id();
        if id != TraceId::INVALID {
            return id.to_bytes();
        }
    }
}

/// A random, valid (non-zero) span id.
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id = RandomIdGenerator::default().new_span_id();
        if id != SpanId::INVALID {
            return id.to_bytes();
        }
    }
}

/// Lower-case hex of bytes: ids in events and messages, bytes attribute values, Go's `%x`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An id written by [`hex`] (a trace id: N = 16, a span id: N = 8), by opentelemetry's parser.
pub fn parse_id<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let bytes: Vec<u8> = match N {
        16 => TraceId::from_hex(hex).ok()?.to_bytes().to_vec(),
        8 => SpanId::from_hex(hex).ok()?.to_bytes().to_vec(),
        _ => return None,
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_w3c() {
        let tp = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.span_id[7], 0xb7);
        assert!(tp.sampled);
        let unsampled = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!unsampled.unwrap().sampled);
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-zz-1-01",
            "garbage",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        // A future version may carry more fields.
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more").is_some());
    }

    #[test]
    fn formats_what_it_parses_and_ids_round_trip() {
        let (t, s) = (new_trace_id(), new_span_id());
        let tp = format(t, s);
        assert_eq!(tp.len(), 55);
        assert_eq!(tp, format!("00-{}-{}-01", hex(&t), hex(&s)));
        assert_eq!(
            parse(&tp),
            Some(TraceParent {
                trace_id: t,
                span_id: s,
                sampled: true
            })
        );
        assert_eq!(parse_id::<16>(&hex(&t)), Some(t));
        assert_eq!(parse_id::<8>(&hex(&s)), Some(s));
        assert_eq!(
            parse_id::<8>("0102030405060708"),
            Some([1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(parse_id::<8>("01020304"), None);
        assert_eq!(parse_id::<8>("zz02030405060708"), None);
        assert_ne!(new_span_id(), s);
    }
}
