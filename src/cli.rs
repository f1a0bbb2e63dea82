//! Command-line definitions (clap derive) only; resolution into a run configuration lives in
//! `config.rs`. Flags that a profile may also set are `Option`s so that "not given" can fall
//! through to the environment, then the profile, then the built-in default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gwtest",
    version,
    about = "Conformance and end-to-end test runner for Kubernetes gateways",
    long_about = "gwtest runs declarative YAML suites against a Kubernetes cluster and the \
                  gateway's data plane: resource status, HTTP requests and the spans the gateway \
                  emits, with eventually-consistent assertions and failures that explain \
                  themselves.",
    after_help = "Exit codes: 0 all passed (flaky included), 1 a test failed, 2 invalid suites or \
                  command line, 3 infrastructure (cluster, ports, sandbox), 130 interrupted."
)]
pub struct Cli {
    /// Colour in the output: auto (a terminal, unless NO_COLOR is set; CLICOLOR_FORCE or
    /// FORCE_COLOR force it), always, never.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        env = "GWTEST_COLOR"
    )]
    pub color: Option<ColorWhen>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run suites (default: ./suites).
    Run(RunArgs),
    /// Parse and check suites; needs no cluster.
    Validate(ValidateArgs),
    /// List suites and tests, after filters and sharding.
    List(ListArgs),
    /// Print the JSON Schema of the suite language (for yaml-language-server).
    Schema(SchemaArgs),
    /// Run the embedded API server and the demo gateway until Ctrl-C.
    Sandbox(SandboxArgs),
    /// Delete what interrupted runs left behind (objects labelled gwtest.dev/run).
    Gc(GcArgs),
    /// Merge the JSON reports of a run's shards into one JSON and/or JUnit report.
    Merge(MergeArgs),
    /// Print a shell completion script: gwtest completions bash > /etc/bash_completion.d/gwtest
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one per command into a directory.
    Man(ManArgs),
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ManArgs {
    /// Write gwtest.1 and a page per command (gwtest-run.1, ...) into DIR instead of printing
    /// gwtest.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Which tests: filters and sharding, shared by `run` and `list`.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// Only tests whose `suite/test` name matches this regex (repeatable: any of them).
    #[arg(
        short = 'k',
        long = "filter",
        value_name = "REGEX",
        env = "GWTEST_FILTER"
    )]
    pub filter: Vec<String>,
    /// Only tests with this label (repeatable: any of them); `!L` excludes label L.
    #[arg(
        long = "label",
        value_name = "L",
        env = "GWTEST_LABEL",
        value_delimiter = ','
    )]
    pub label: Vec<String>,
    /// Run shard I of N (1-based), by a stable hash of `suite/test`.
    #[arg(long, value_name = "I/N", env = "GWTEST_SHARD")]
    pub shard: Option<String>,
    /// Run every selected test N times.
    #[arg(long, value_name = "N", env = "GWTEST_REPEAT")]
    pub repeat: Option<u32>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH", env = "GWTEST_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME", env = "GWTEST_CONTEXT")]
    pub context: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Suite directories or `*.test.yaml` files.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Start an in-process sandbox (API server + demo gateway) and run against it.
    #[arg(long, env = "GWTEST_SANDBOX", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sandbox: Option<bool>,
    /// Start only the demo gateway, in-process, against the cluster of --kubeconfig.
    #[arg(long, env = "GWTEST_DEMO_GATEWAY", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub demo_gateway: Option<bool>,

    /// Tests run at once (default 4).
    #[arg(
        short = 'j',
        long = "parallel",
        value_name = "N",
        env = "GWTEST_PARALLEL"
    )]
    pub parallel: Option<usize>,
    /// Stop starting tests after the first failure.
    #[arg(long, env = "GWTEST_FAIL_FAST", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub fail_fast: Option<bool>,
    /// Show Secret values and credential headers in output and reports (redacted by default).
    #[arg(long, env = "GWTEST_SHOW_SECRETS", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub show_secrets: Option<bool>,
    /// Re-run a failed test up to N times (overrides the tests' `retries`).
    #[arg(long, value_name = "N", env = "GWTEST_RETRIES")]
    pub retries: Option<u32>,
    /// Multiply every timeout (never the intervals), e.g. 2 on a slow CI.
    #[arg(long, value_name = "F", env = "GWTEST_TIMEOUT_SCALE")]
    pub timeout_scale: Option<f64>,
    /// Stop at a failed step with the cluster intact until answered: Enter, r(etry), k(eep), q(uit). Only when stdin is a terminal.
    #[arg(long, env = "GWTEST_PAUSE_ON_FAILURE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pause_on_failure: Option<bool>,
    /// Honour `pause:` steps.
    #[arg(long, env = "GWTEST_PAUSE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub pause: Option<bool>,
    /// Keep what tests created: never (default), on-failure, always.
    #[arg(long, value_enum, env = "GWTEST_KEEP")]
    pub keep: Option<Keep>,

    /// Set a variable (repeatable; the value may hold commas): --var host=example.com.
    /// $GWTEST_VAR holds comma-separated K=V pairs.
    #[arg(long = "var", value_name = "K=V")]
    pub var: Vec<String>,

    /// Write a JUnit XML report.
    #[arg(long, value_name = "PATH", env = "GWTEST_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long, value_name = "PATH", env = "GWTEST_JSON")]
    pub json: Option<PathBuf>,
    /// Write failure bundles (responses, objects, spans) under DIR.
    #[arg(long, value_name = "DIR", env = "GWTEST_ARTIFACTS")]
    pub artifacts: Option<PathBuf>,

    /// The OTLP/gRPC receiver's address (default 127.0.0.1:0).
    #[arg(long, value_name = "ADDR", env = "GWTEST_OTLP_LISTEN")]
    pub otlp_listen: Option<String>,
    /// The OTLP/HTTP receiver's address (default 127.0.0.1:0).
    #[arg(long, value_name = "ADDR", env = "GWTEST_OTLP_HTTP_LISTEN")]
    pub otlp_http_listen: Option<String>,
    /// Start the OTLP receiver even when no suite has a `spans` step.
    #[arg(long, env = "GWTEST_OTLP_RECEIVER", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub otlp_receiver: Option<bool>,
    /// Most spans kept by the receiver; past it the oldest spans are evicted (and counted).
    #[arg(long, value_name = "N", env = "GWTEST_MAX_SPANS")]
    pub max_spans: Option<usize>,
    /// Send the run's own spans (run > suite > test > step) to this OTLP endpoint
    /// (default: $OTEL_EXPORTER_OTLP_ENDPOINT when set).
    #[arg(long, value_name = "URL", env = "GWTEST_OTLP_EXPORT")]
    pub otlp_export: Option<String>,
    /// grpc or http/protobuf (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc).
    #[arg(long, value_name = "PROTOCOL", env = "GWTEST_OTLP_EXPORT_PROTOCOL")]
    pub otlp_export_protocol: Option<String>,

    #[command(flatten)]
    pub conformance: ConformanceArgs,

    /// Profile of gwtest.toml to use (default: `ci` when $CI is set and it exists, else `default`).
    #[arg(long, value_name = "NAME", env = "GWTEST_PROFILE")]
    pub profile: Option<String>,

    /// `--color`, given before or after the subcommand (set by main from the global flag).
    #[arg(skip)]
    pub color: Option<ColorWhen>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ValidateArgs {
    /// Suite directories or `*.test.yaml` files (default: ./suites).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Variables the suites may use (repeatable): --var host=example.com.
    /// $GWTEST_VAR holds comma-separated K=V pairs.
    #[arg(long = "var", value_name = "K=V")]
    pub var: Vec<String>,
    /// More CRDs to check manifests against (repeatable): a YAML file or a directory of them.
    /// The embedded Gateway API CRDs and the suites' own CRDs are always known.
    #[arg(long = "crds", value_name = "PATH")]
    pub crds: Vec<PathBuf>,
    /// Profile of gwtest.toml whose `paths` and `vars` apply, as for `run`.
    #[arg(long, value_name = "NAME", env = "GWTEST_PROFILE")]
    pub profile: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ListArgs {
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Variables the suites may use (repeatable), as for `run`: --var host=example.com.
    /// $GWTEST_VAR holds comma-separated K=V pairs.
    #[arg(long = "var", value_name = "K=V")]
    pub var: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Profile of gwtest.toml whose paths, variables and selection (filter, label, shard,
    /// repeat) apply, as for `run`.
    #[arg(long, value_name = "NAME", env = "GWTEST_PROFILE")]
    pub profile: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SchemaArgs {
    /// Print the schema of suite.yaml instead of *.test.yaml.
    #[arg(long)]
    pub suite: bool,
    /// Emit JSON Schema draft-07 instead of 2020-12 (for editors with older validators).
    #[arg(long)]
    pub draft07: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SandboxArgs {
    /// Where to write the kubeconfig (default: a file in the system temp directory).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Send the demo gateway's spans to this OTLP endpoint.
    #[arg(long, value_name = "URL")]
    pub otlp_export: Option<String>,
    /// Run only the demo gateway, against the cluster of --kubeconfig.
    #[arg(long)]
    pub demo_gateway_only: bool,
    /// The cluster for --demo-gateway-only.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for --demo-gateway-only.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Keep a deleted namespace Terminating this long before it goes, as a real namespace
    /// controller does (~5s): to see cleanup with a real cluster's timing. Also applies to
    /// `run --sandbox` through the environment variable.
    #[arg(
        long,
        value_name = "DURATION",
        env = crate::sandbox::NAMESPACE_TERMINATION_ENV,
        value_parser = humantime::parse_duration
    )]
    pub namespace_termination: Option<std::time::Duration>,
}

/// A Gateway API conformance report (`run` and `merge`).
#[derive(Debug, Args, Clone, Default)]
pub struct ConformanceArgs {
    /// Write a Gateway API ConformanceReport (conformance/apis/v1, YAML) to FILE, with
    /// profiles and features read from the tests' `profile:` and `feature:` labels.
    #[arg(long, value_name = "FILE", env = "GWTEST_CONFORMANCE_REPORT")]
    pub conformance_report: Option<PathBuf>,
    /// The implementation the report is for:
    /// organization=O,project=P,url=U,version=V,contact=C (contact repeatable).
    #[arg(long, value_name = "K=V,...", env = "GWTEST_IMPLEMENTATION")]
    pub implementation: Option<String>,
    /// The Gateway API release the report is for (default: the one the shipped suites
    /// follow, v1.6.1).
    #[arg(long, value_name = "VERSION", env = "GWTEST_GATEWAY_API_VERSION")]
    pub gateway_api_version: Option<String>,
    /// The Gateway API channel: standard (default) or experimental.
    #[arg(long, value_name = "CHANNEL", env = "GWTEST_GATEWAY_API_CHANNEL")]
    pub gateway_api_channel: Option<String>,
    /// The implementation's operating mode for the report (default: default).
    #[arg(long, value_name = "MODE", env = "GWTEST_CONFORMANCE_MODE")]
    pub conformance_mode: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct MergeArgs {
    /// The shards' JSON reports (`gwtest run --shard I/N --json PATH`).
    #[arg(value_name = "REPORT.json", required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the merged JSON report here (without --junit and --json: to stdout).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub conformance: ConformanceArgs,
    /// Profile of gwtest.toml whose conformance settings (implementation, ...) apply.
    #[arg(long, value_name = "NAME", env = "GWTEST_PROFILE")]
    pub profile: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GcArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Only what this run left (default: every gwtest run).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `connect` for a one-shot command (`gc`, `sandbox --demo-gateway-only`): an unusable cluster
/// is said on stderr and is exit 3.
pub async fn connect_or_exit(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<crate::cluster::Cluster, crate::Exit> {
    crate::cluster::connect::connect(
        kubeconfig,
        context,
        crate::cluster::connect::CONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| {
        eprintln!("error: {e}");
        crate::Exit::Infra
    })
}

/// Connect and check the server answers (bounded by `timeout`).
#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
