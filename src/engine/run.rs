//! `gwtest run`: resolve the configuration, load and check the suites, bring up what the
//! picked tests need (cluster, sandbox, OTLP receiver), run them, and turn the result into an
//! exit code. Reports are written and cleanup runs on every path, Ctrl-C included.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events::{Event, EventSink, RunSummary, SuitePlan};
use super::select::{self, SuitePick};
use super::{RunContext, scheduler};
use crate::Exit;
use crate::cli::RunArgs;
use crate::config::RunConfig;
use crate::report::{self, Hub};
use crate::suite::load::{self, Suite};
use crate::suite::spanned::Loc;
use crate::traces::export::OtlpExport;
use crate::traces::receiver::Receiver;
use crate::traces::store::SpanStore;
use gwtest_sandbox::{Sandbox, SandboxConfig};

pub async fn command(args: RunArgs) -> Exit {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let config = match RunConfig::resolve(&args, &cwd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let names: Vec<String> = config.vars.iter().map(|(k, _)| k.clone()).collect();
    let suites = match load::load_checked(&config.paths, &names) {
        Ok(s) => s,
        Err(errors) => {
            report::print_load_errors(&errors);
            return Exit::Invalid;
        }
    };
    // A filter that matches nothing is a mistake; an empty shard is not (a small run split
    // many ways), so the check ignores sharding.
    if !config.select.filters.is_empty() || !config.select.labels.is_empty() {
        let unsharded = crate::config::Selection {
            shard: None,
            ..config.select.clone()
        };
        if select::pick(&suites, &unsharded).is_empty() {
            eprintln!("error: no test matches the given --filter/--label");
            return Exit::Invalid;
        }
    }
    let picks = select::pick(&suites, &config.select);
    if config.conformance.is_some() {
        let labels: Vec<Vec<String>> = picks
            .iter()
            .flat_map(|p| {
                p.tests
                    .iter()
                    .map(|(ti, _)| suites[p.suite].tests[*ti].labels.clone())
            })
            .collect();
        let unknown = crate::report::conformance::unknown_profiles(&labels);
        if !unknown.is_empty() {
            let known: Vec<&str> = crate::report::conformance::profiles()
                .iter()
                .map(|p| p.name)
                .collect();
            eprintln!(
                "error: --conformance-report: unknown conformance profile{} {} in `profile:` \
                 labels (Gateway API {} has {})",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                crate::config::GATEWAY_API_VERSION,
                known.join(", ")
            );
            return Exit::Invalid;
        }
    }
    execute(config, suites, picks).await
}

/// The first step (in run order) that needs something, for messages.
#[derive(Clone, Debug)]
pub struct StepRef {
    pub file: PathBuf,
    pub loc: Loc,
    pub name: String,
    pub kind: &'static str,
}

impl std::fmt::Display for StepRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: step {:?} ({})",
            self.file.display(),
            self.loc,
            self.name,
            self.kind
        )
    }
}

/// What the picked tests need from the outside world.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub cluster: Option<StepRef>,
    pub spans: Option<StepRef>,
}

impl Needs {
    pub fn of(suites: &[Suite], picks: &[SuitePick]) -> Needs {
        let mut n = Needs::default();
        for p in picks {
            let suite = &suites[p.suite];
            if n.cluster.is_none() && suite.setup_needs_cluster() {
                n.cluster = Some(StepRef {
                    file: suite.file.clone(),
                    loc: suite.doc.api_version.loc,
                    name: suite.name.clone(),
                    kind: "suite fixtures/vars",
                });
            }
            for (ti, _) in &p.tests {
                let test = &suite.tests[*ti];
                for (file, s) in test.all_steps() {
                    let r = || StepRef {
                        file: file.to_path_buf(),
                        loc: s.loc,
                        name: s.value.display_name(),
                        kind: s.value.kind(),
                    };
                    if n.cluster.is_none() && s.value.needs_cluster() {
                        n.cluster = Some(r());
                    }
                    if n.spans.is_none() && s.value.spans.is_some() {
                        n.spans = Some(r());
                    }
                }
            }
        }
        n
    }
}

/// Run picked tests of loaded, valid suites.
pub async fn execute(config: RunConfig, suites: Vec<Suite>, picks: Vec<SuitePick>) -> Exit {
    let needs = Needs::of(&suites, &picks);

    // The OTLP receiver: for spans steps, on request, and for the sandbox's gateway to report to.
    let mut receiver = None;
    let mut store = None;
    if needs.spans.is_some() || config.otlp_receiver || config.sandbox || config.demo_gateway {
        let s = Arc::new(SpanStore::new(config.max_spans));
        match Receiver::start(&config.otlp_listen, &config.otlp_http_listen, s.clone()) {
            Ok(r) => receiver = Some(r),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Infra;
            }
        }
        store = Some(s);
    }
    let mut reporters = report::reporters(&config);
    if let Some(url) = &config.otlp_export {
        match OtlpExport::new(url, config.otlp_export_protocol) {
            Ok(r) => reporters.push(Box::new(r)),
            Err(e) => {
                eprintln!("error: --otlp-export {url}: {e:#}");
                return Exit::Invalid;
            }
        }
    }
    let mut cluster = None;
    let mut kubeconfig = None;
    let mut pinned_dir: Option<PathBuf> = None;
    let mut sandbox = None;
    if config.sandbox {
        let namespace_termination = match crate::sandbox::namespace_termination_from_env() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Invalid;
            }
        };
        let cfg = SandboxConfig {
            kubeconfig_out: None,
            otlp_endpoint: receiver.as_ref().map(|r| r.grpc_endpoint().to_string()),
            namespace_termination,
        };
        let started = Sandbox::start(cfg).await;
        let connected = match started {
            Ok(s) => {
                let c = crate::cluster::connect::connect_with(
                    s.kube_config(),
                    Some(s.kubeconfig().to_path_buf()),
                    crate::cluster::connect::CONNECT_TIMEOUT,
                )
                .await;
                kubeconfig = Some(s.kubeconfig().to_path_buf());
                sandbox = Some(s);
                c
            }
            Err(e) => {
                eprintln!("error: the sandbox failed to start: {e:#}");
                return Exit::Infra;
            }
        };
        match connected {
            Ok(c) => cluster = Some(Arc::new(c)),
            Err(e) => {
                eprintln!("error: the sandbox's API server does not answer: {e}");
                if let Some(s) = sandbox {
                    s.shutdown().await;
                }
                return Exit::Infra;
            }
        }
    } else if needs.cluster.is_some() || config.demo_gateway {
        let connected = crate::cluster::connect::connect(
            config.kubeconfig.as_deref(),
            config.context.as_deref(),
            crate::cluster::connect::CONNECT_TIMEOUT,
        )
        .await;
        match connected {
            Ok(c) => {
                cluster = Some(Arc::new(c));
                // `${kubeconfig}`: one usable file whatever the run was given (a merged
                // $KUBECONFIG list, --context as the current context, in-cluster credentials).
                let written = crate::cluster::kubeconfig::for_programs(
                    config.kubeconfig.as_deref(),
                    config.context.as_deref(),
                )
                .map_err(|e| e.to_string())
                .and_then(|kc| {
                    kc.map(|kc| crate::cluster::kubeconfig::write_private(&kc))
                        .transpose()
                });
                match written {
                    Ok(Some((dir, file))) => {
                        kubeconfig = Some(file);
                        pinned_dir = Some(dir);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("error: the kubeconfig for ${{kubeconfig}}: {e}");
                        return Exit::Infra;
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                match &needs.cluster {
                    Some(step) => eprintln!("  (needed by {step})"),
                    None => eprintln!("  (needed by --demo-gateway)"),
                }
                return Exit::Infra;
            }
        }
    }
    // --demo-gateway: the demo gateway in this process against the cluster, its spans to the
    // run's receiver. (The sandbox starts its own.)
    let mut demo_gateway = None;
    if config.demo_gateway
        && !config.sandbox
        && let Some(c) = &cluster
    {
        let endpoint = receiver.as_ref().map(|r| r.grpc_endpoint().to_string());
        match gwtest_sandbox::start_demo_gateway(c.client().clone(), endpoint).await {
            Ok(g) => demo_gateway = Some(g),
            Err(e) => {
                eprintln!("error: the demo gateway failed to start: {e:#}");
                return Exit::Infra;
            }
        }
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let events = EventSink::new(tx);
    let hub = Hub::start(rx, reporters);
    let mut ctx = RunContext::local(config, events.clone());
    ctx.cluster = cluster;
    ctx.kubeconfig = kubeconfig;
    ctx.exporting = ctx.config.otlp_export.is_some();
    ctx.spans = store.clone();
    ctx.otlp = receiver.as_ref().map(|r| r.endpoints());
    let ctx = Arc::new(ctx);
    let signals = tokio::spawn(watch_signals(ctx.clone()));

    let started = Instant::now();
    let suites: Vec<Arc<Suite>> = suites.into_iter().map(Arc::new).collect();
    let plans = picks
        .iter()
        .map(|p| SuitePlan {
            index: p.suite,
            name: suites[p.suite].name.clone(),
            file: suites[p.suite].file.clone(),
            tests: p.tests.iter().map(|(_, id)| id.clone()).collect(),
            labels: p
                .tests
                .iter()
                .map(|(ti, _)| suites[p.suite].tests[*ti].labels.clone())
                .collect(),
        })
        .collect();
    events.emit(Event::RunStarted {
        run_id: ctx.run_id.clone(),
        trace_id: super::hex(&ctx.trace_id),
        started: SystemTime::now(),
        suites: plans,
        parallel: ctx.config.parallel,
    });
    let counts = scheduler::run(ctx.clone(), suites, picks).await;
    if let Some(c) = &ctx.cluster {
        c.forwards.stop();
    }
    // Namespaces and fixtures still being deleted in the background: nothing is left behind
    // when gwtest exits (each deletion is bounded by its cleanup-timeout; Ctrl-C does not stop
    // it, a second one exits at once).
    let pending = ctx.reaper.pending();
    if pending > 0 {
        events.emit(Event::CleanupWaiting { pending });
    }
    let cleanup_failed = ctx.reaper.finish().await;
    let cluster_unusable = ctx
        .cluster
        .as_ref()
        .and_then(|c| c.unusable())
        .map(|e| e.to_string());
    let interrupted = ctx.cancel.is_cancelled();
    if let Some(s) = &store
        && s.evicted() > 0
    {
        events.emit(Event::Notice {
            id: None,
            message: format!(
                "the span store dropped its {} oldest spans (cap {}, --max-spans)",
                s.evicted(),
                s.cap()
            ),
        });
    }
    events.emit(Event::RunFinished {
        summary: RunSummary {
            counts: counts.clone(),
            duration: started.elapsed(),
            interrupted,
            cleanup_failed,
            cluster_unusable: cluster_unusable.clone(),
        },
    });
    if let Some(g) = demo_gateway {
        g.shutdown().await;
    }
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    if let Some(d) = pinned_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    if let Some(r) = receiver {
        r.shutdown().await;
    }
    for e in hub.finish().await {
        match e.downcast_ref::<crate::report::Warning>() {
            Some(w) => eprintln!("warning: {w}"),
            None => eprintln!("error: writing a report: {e:#}"),
        }
    }
    // Only now: a run stuck writing its output must still yield to a second Ctrl-C.
    signals.abort();
    if ctx.prompt.quit() {
        // `q` at a pause: a person stopped the run after a look, not a signal.
        Exit::Failed
    } else if interrupted {
        Exit::Interrupted
    } else if cluster_unusable.is_some() {
        // Credentials or TLS went bad: the failures say nothing about the tests.
        Exit::Infra
    } else if counts.failed > 0 {
        Exit::Failed
    } else if cleanup_failed > 0 {
        // Everything passed, and something was left behind.
        Exit::Infra
    } else {
        Exit::Passed
    }
}

async fn interrupt(term: &mut Option<tokio::signal::unix::Signal>) {
    match term {
        Some(t) => {
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// First Ctrl-C (or SIGTERM): stop running steps, clean up, write reports. Second: exit at once.
async fn watch_signals(ctx: Arc<RunContext>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    interrupt(&mut term).await;
    // Said before cancelling: what the cancellation sets off (tests ending, the run's last
    // event) comes after it, so the reporters always get it.
    ctx.events.emit(Event::Notice {
        id: None,
        message:
            "interrupted: stopping running tests and cleaning up (Ctrl-C again to exit at once)"
                .into(),
    });
    ctx.cancel.cancel();
    interrupt(&mut term).await;
    eprintln!("interrupted twice: exiting without waiting for cleanup");
    std::process::exit(Exit::Interrupted.code());
}
