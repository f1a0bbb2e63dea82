//! The engine: scheduling (parallelism, filters, shards, fail-fast, retries, repeat), the
//! test lifecycle (namespace, fixtures, steps, cleanup), the one retry engine, and the events
//! it emits.
//!
//! Layers, top down: `run` and `scheduler` drive suites (`fixtures`) and test tries
//! (`lifecycle`), which run `steps/`, pause and dump through `debug/`, and remove what they
//! made through `cleanup`. Steps and the lifecycles reach the cluster through `cluster/` (the
//! client layer, which knows no engine and no step) and retry through `retry` and
//! `cluster_retry`; they report through `events`. `retry`, `events` and `RunContext` are what
//! steps see of the engine.

pub mod cleanup;
pub mod cluster_retry;
pub mod events;
pub mod fixtures;
pub mod forward;
pub mod gc;
pub mod infra;
pub mod lifecycle;
pub mod retry;
pub mod run;
pub mod scheduler;
pub mod select;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::RunConfig;
use crate::steps::request::HttpClients;

/// The OTLP receiver's endpoints, as `${otlp.grpc}` and `${otlp.http}` give them.
#[derive(Clone, Debug)]
pub struct OtlpEndpoints {
    /// `http://127.0.0.1:PORT` (OTLP/gRPC)
    pub grpc: String,
    /// `http://127.0.0.1:PORT` (OTLP/HTTP; exporters append /v1/traces)
    pub http: String,
}

/// What every test of a run shares.
pub struct RunContext {
    pub run_id: String,
    pub config: RunConfig,
    pub http: HttpClients,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub kubeconfig: Option<PathBuf>,
    pub spans: Option<Arc<crate::traces::SpanStore>>,
    pub otlp: Option<OtlpEndpoints>,
    /// The run's own trace id; the events carry the span ids of suites, tests and steps.
    pub trace_id: [u8; 16],
    /// The run is exported as a trace (`--otlp-export`): request attempts become children of
    /// their step's span instead of starting traces of their own.
    pub exporting: bool,
    /// Ctrl-C: running steps stop, cleanup runs, nothing new starts.
    pub cancel: CancellationToken,
    pub events: events::EventSink,
    /// Background deletions (test namespaces, suite teardowns) the run waits for at its end.
    pub reaper: cleanup::Reaper,
    /// Suites' fixtures and namespaces, shared by their setup and teardown.
    pub suites: fixtures::SuiteRegistry,
    /// What the run's pauses share (`q` stops the run).
    pub prompt: crate::debug::pause::Prompt,
}

impl RunContext {
    /// A context for running steps with no cluster and no receiver (tests, benchmarks).
    pub fn local(config: RunConfig, events: events::EventSink) -> Self {
        RunContext {
            run_id: new_run_id(),
            config,
            http: HttpClients::default(),
            cluster: None,
            kubeconfig: None,
            spans: None,
            otlp: None,
            trace_id: new_trace_id(),
            exporting: false,
            cancel: CancellationToken::new(),
            events,
            reaper: cleanup::Reaper::default(),
            suites: fixtures::SuiteRegistry::default(),
            prompt: crate::debug::pause::Prompt::default(),
        }
    }
}

impl RunContext {
    /// How kubectl reaches this run's cluster, for the commands gwtest prints.
    pub fn kubectl_flags(&self) -> String {
        self.cluster
            .as_ref()
            .map(|c| c.kubectl_flags())
            .unwrap_or_default()
    }
}

/// A short, sortable, unique-enough run id: `20261121-053412-x7k2p9`.
pub fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    format!(
        "{}-{}-{}",
        &compact[..8],
        &compact[8..14],
        crate::util::random_suffix(6)
    )
}

// Trace and span ids (opentelemetry's generator) and their lower-case hex, shared with the
// demo gateway.
pub use gwtest_sandbox::tracecontext::{hex, new_span_id, new_trace_id};
