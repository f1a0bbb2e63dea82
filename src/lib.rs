//! gwtest: a conformance and end-to-end test runner for Kubernetes gateways.
//!
//! The binary (`src/main.rs`) parses the command line and maps outcomes to exit codes; this
//! library holds everything else so that benchmarks and tests can drive it directly.

// Errors and events carry whole failure reports by value on purpose: they are built once per
// failure, never on a hot path, and boxing them would only add noise.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod cli;
pub mod cluster;
pub mod config;
pub mod debug;
pub mod engine;
pub mod matching;
pub mod process;
pub mod redact;
pub mod report;
pub mod sandbox;
pub mod steps;
pub mod suite;
pub mod traces;
pub mod util;

/// Process exit codes (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// All tests passed (flaky tests pass and are reported).
    Passed = 0,
    /// A test failed.
    Failed = 1,
    /// The suites or the command line are invalid.
    Invalid = 2,
    /// Infrastructure: cluster unreachable, port taken, sandbox failed.
    Infra = 3,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Install the one rustls crypto provider gwtest is built with (aws-lc-rs), once per process,
/// before the first TLS connection: with two providers in the dependency tree rustls cannot
/// pick one and panics. The binary, the OTLP export thread and the tests all call this.
pub fn install_crypto_provider() {
    // Err means a provider is installed already: the same one, as every caller is here.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
