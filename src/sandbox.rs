//! `gwtest sandbox`: serves the sandbox crate's API server and demo gateway until Ctrl-C, or
//! only the demo gateway against an existing cluster.

use gwtest_sandbox::{Sandbox, SandboxConfig, gateway, start_demo_gateway};

use crate::Exit;
use crate::cli::SandboxArgs;
use crate::config::{EndpointKind, ExportProtocol, export_url};

/// Environment variable: how long the sandbox keeps a deleted namespace Terminating
/// (`gwtest sandbox --namespace-termination`, and `run --sandbox`).
pub const NAMESPACE_TERMINATION_ENV: &str = "GWTEST_SANDBOX_NAMESPACE_TERMINATION";

/// `$GWTEST_SANDBOX_NAMESPACE_TERMINATION` for `run --sandbox` (unset: none).
pub fn namespace_termination_from_env() -> Result<std::time::Duration, String> {
    match std::env::var(NAMESPACE_TERMINATION_ENV) {
        Ok(v) if !v.trim().is_empty() => humantime::parse_duration(v.trim())
            .map_err(|e| format!("${NAMESPACE_TERMINATION_ENV}: {v:?}: {e}")),
        _ => Ok(std::time::Duration::ZERO),
    }
}

/// SIGINT and SIGTERM, listened for from the moment this is made: made before the `ready`
/// line, so a signal sent as soon as a script reads that line is not lost.
struct Interrupts {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Interrupts {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(&mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.int) => {}
            _ = next(&mut self.term) => {}
        }
    }
}

/// `--otlp-export` as the full URL the demo gateway sends to: OTLP/HTTP when it ends in
/// `/v1/traces`, OTLP/gRPC otherwise; a missing scheme is `http://`.
fn otlp_url(arg: Option<&str>) -> Result<Option<String>, String> {
    let Some(endpoint) = arg else { return Ok(None) };
    let protocol = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        ExportProtocol::HttpProtobuf
    } else {
        ExportProtocol::Grpc
    };
    export_url(endpoint, protocol, EndpointKind::Given).map(Some)
}

/// `gwtest sandbox`.
pub async fn command(args: SandboxArgs) -> Exit {
    if args.demo_gateway_only {
        return demo_gateway_only(args).await;
    }
    if args.kubeconfig.is_some() || args.context.is_some() {
        eprintln!("error: --kubeconfig and --context go with --demo-gateway-only");
        return Exit::Invalid;
    }
    let otlp_endpoint = match otlp_url(args.otlp_export.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let cfg = SandboxConfig {
        kubeconfig_out: args.kubeconfig_out.clone(),
        otlp_endpoint,
        namespace_termination: args.namespace_termination.unwrap_or_default(),
    };
    let mut interrupts = Interrupts::listen();
    let sandbox = match Sandbox::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the sandbox failed to start: {e:#}");
            return Exit::Infra;
        }
    };
    println!(
        "ready kubeconfig={} api={}",
        sandbox.kubeconfig().display(),
        sandbox.url()
    );
    eprintln!(
        "gwtest sandbox: try `kubectl --kubeconfig {} get crds`; Ctrl-C to stop",
        crate::util::shell_quote(&sandbox.kubeconfig().display().to_string())
    );
    interrupts.wait().await;
    sandbox.shutdown().await;
    Exit::Passed
}

/// `gwtest sandbox --demo-gateway-only`: the demo gateway against an existing cluster.
async fn demo_gateway_only(args: SandboxArgs) -> Exit {
    if args.kubeconfig_out.is_some() {
        eprintln!(
            "error: --kubeconfig-out does not go with --demo-gateway-only (no API server is started)"
        );
        return Exit::Invalid;
    }
    let cluster = match crate::cli::connect_or_exit(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
    )
    .await
    {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let otlp_endpoint = match otlp_url(args.otlp_export.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let gateway = match start_demo_gateway(cluster.client().clone(), otlp_endpoint).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: the demo gateway failed to start: {e:#}");
            return Exit::Infra;
        }
    };
    let mut interrupts = Interrupts::listen();
    println!("ready demo-gateway api={}", cluster.server());
    eprintln!(
        "gwtest sandbox: the demo gateway reconciles {} (Gateways of class controller {}); Ctrl-C to stop",
        cluster.server(),
        gateway::CONTROLLER_NAME
    );
    // Say what it cannot watch (missing CRDs, permissions), and when that is over.
    let report = async {
        let mut shown = std::collections::BTreeMap::new();
        loop {
            let now = gateway.watch_errors();
            for (kind, e) in &now {
                if shown.get(kind) != Some(e) {
                    eprintln!("gwtest sandbox: the demo gateway cannot watch {kind}: {e}");
                }
            }
            for kind in shown.keys().filter(|k| !now.contains_key(*k)) {
                eprintln!("gwtest sandbox: the demo gateway watches {kind} again");
            }
            shown = now;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        _ = interrupts.wait() => {}
        _ = report => {}
    }
    gateway.shutdown().await;
    Exit::Passed
}
