//! CLI entry: parse, load config, run, map the outcome to an exit code.
#![allow(clippy::large_enum_variant)]

use std::io::Write;
use std::process::ExitCode;

use std::sync::Arc;

use clap::Parser;
use gwtest::Exit;
use gwtest::cli::{
    Cli, Command, CompletionsArgs, ListArgs, ManArgs, RunArgs, SchemaArgs, SelectArgs, ValidateArgs,
};
use gwtest::config::{self, ProfileInForce, RunConfig, SuiteInputs};
use gwtest::engine::events::{Event, EventSink, RunSummary};
use gwtest::engine::infra::Infra;
use gwtest::engine::run::Run;
use gwtest::engine::select::{self, Unusable};
use gwtest::report;
use gwtest::suite::load::Suite;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(if e.use_stderr() {
                Exit::Invalid.code() as u8
            } else {
                0
            });
        }
    };
    gwtest::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Infra.code() as u8);
        }
    };
    let exit = runtime.block_on(async move {
        match cli.command {
            Command::Run(mut args) => {
                args.color = cli.color;
                cmd_run(args).await
            }
            Command::Validate(args) => cmd_validate(args),
            Command::List(args) => cmd_list(args),
            Command::Schema(args) => cmd_schema(args),
            Command::Sandbox(args) => gwtest::sandbox::command(args).await,
            Command::Gc(args) => gwtest::engine::gc::command(args).await,
            Command::Merge(args) => gwtest::report::merge::command(args),
            Command::Completions(args) => cmd_completions(args),
            Command::Man(args) => cmd_man(args),
        }
    });
    // Don't wait for stray blocking tasks (a stdin read under --pause-on-failure).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(exit.code() as u8)
}

/// `gwtest run`: configuration, suites, reporters, what the tests need (the sandbox, the
/// cluster, the receiver, the demo gateway), the run, and its exit code. The reporters start
/// before anything is brought up, so a run that cannot start still writes its reports.
async fn cmd_run(args: RunArgs) -> Exit {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let config = match RunConfig::resolve(&args, &cwd) {
        Ok(c) => c,
        Err(e) => return invalid(e),
    };
    let namespace_termination = match gwtest::sandbox::namespace_termination_from_env() {
        Ok(d) => d,
        Err(e) => return invalid(e),
    };
    let (suites, picks) = match load_and_pick(&config.suite_inputs()) {
        Ok(s) => s,
        Err(u) => return unusable(u),
    };
    if config.conformance.is_some()
        && let Err(e) = report::conformance::check_profiles(&suites, &picks)
    {
        return invalid(e);
    }
    let mut reporters = report::reporters(&config);
    if let Some(url) = &config.otlp_export {
        match gwtest::traces::OtlpExport::new(url, config.otlp_export_protocol) {
            Ok(r) => reporters.push(Box::new(r)),
            Err(e) => return invalid(format!("--otlp-export {url}: {e:#}")),
        }
    }
    let (events, hub) = report::Hub::start(reporters);
    let run = Run::announce(suites, picks, config.parallel, events.clone());
    let mut signals = None;
    let summary = match Infra::start(&config, &run.needs(), namespace_termination).await {
        Err(e) => run.could_not_start(e.to_string()),
        Ok(infra) => {
            let ctx = Arc::new(infra.context(config, events.clone(), &run));
            signals = Some(tokio::spawn(watch_signals(ctx.cancel.clone(), events)));
            let summary = run.execute(ctx).await;
            infra.shutdown().await;
            summary
        }
    };
    finish_reports(hub).await;
    // Only now: a run stuck writing its output must still yield to a second Ctrl-C.
    if let Some(s) = signals {
        s.abort();
    }
    exit_code(&summary)
}

/// How the run ended, as an exit code (DESIGN §2).
fn exit_code(s: &RunSummary) -> Exit {
    if s.quit {
        // `q` at a pause: the tests that ran are the story, as after a failure.
        Exit::Failed
    } else if s.interrupted {
        Exit::Interrupted
    } else if s.not_started.is_some() || s.cluster_unusable.is_some() {
        // Nothing could run, or credentials or TLS went bad: the failures say nothing about
        // the tests.
        Exit::Infra
    } else if s.counts.failed > 0 {
        Exit::Failed
    } else if s.cleanup_failed > 0 {
        // Everything passed, and something was left behind.
        Exit::Infra
    } else {
        Exit::Passed
    }
}

/// Wait for the reporters (files written, output flushed); what they could not do is said.
async fn finish_reports(hub: report::Hub) {
    for e in hub.finish().await {
        match e.downcast_ref::<report::Warning>() {
            Some(w) => eprintln!("warning: {w}"),
            None => eprintln!("error: writing a report: {e:#}"),
        }
    }
}

/// Ctrl-C or SIGTERM, whichever comes first.
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
async fn watch_signals(cancel: tokio_util::sync::CancellationToken, events: EventSink) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    interrupt(&mut term).await;
    // Said before cancelling: what the cancellation sets off (tests ending, the run's last
    // event) comes after it, so the reporters always get it.
    events.emit(Event::Notice {
        id: None,
        message:
            "interrupted: stopping running tests and cleaning up (Ctrl-C again to exit at once)"
                .into(),
    });
    cancel.cancel();
    interrupt(&mut term).await;
    eprintln!("interrupted twice: exiting without waiting for cleanup");
    std::process::exit(Exit::Interrupted.code());
}

fn invalid(e: impl std::fmt::Display) -> Exit {
    eprintln!("error: {e}");
    Exit::Invalid
}

/// Suites that cannot be used, said the same way by every command.
fn unusable(u: Unusable) -> Exit {
    match u {
        Unusable::Invalid(errors) => report::print_load_errors(&errors),
        Unusable::NoMatch => eprintln!("error: no test matches the given --filter/--label"),
    }
    Exit::Invalid
}

/// The suites, loaded and checked, and the tests the selection picks: `run` and `list` alike.
fn load_and_pick(inputs: &SuiteInputs) -> Result<(Vec<Suite>, Vec<select::SuitePick>), Unusable> {
    let suites = select::load_suites(inputs)?;
    let picks = select::pick_checked(&suites, &inputs.select)?;
    Ok((suites, picks))
}

/// Paths, variables and selection for `validate` and `list`, resolved as `run` resolves them
/// (flags and environment over the gwtest.toml profile).
fn suite_inputs(
    paths: &[std::path::PathBuf],
    vars: &[String],
    select: &SelectArgs,
    profile: Option<&str>,
) -> Result<SuiteInputs, config::ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    ProfileInForce::find(&cwd, profile)?.suite_inputs(paths, vars, select)
}

fn cmd_validate(args: ValidateArgs) -> Exit {
    let inputs = match suite_inputs(
        &args.paths,
        &args.var,
        &SelectArgs::default(),
        args.profile.as_deref(),
    ) {
        Ok(i) => i,
        Err(e) => return invalid(e),
    };
    let suites = match select::load_suites(&inputs) {
        Ok(s) => s,
        Err(u) => return unusable(u),
    };
    let manifests = gwtest::suite::crdcheck::check(&suites, &args.crds);
    if !manifests.errors.is_empty() {
        report::print_load_errors(&manifests.errors);
        return Exit::Invalid;
    }
    let tests: usize = suites.iter().map(|s| s.tests.len()).sum();
    let steps: usize = suites
        .iter()
        .flat_map(|s| &s.tests)
        .map(|t| t.doc.steps.len())
        .sum();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    println!(
        "ok: {}, {}, {}; {} checked against CRDs, {} skipped (run-time variables)",
        plural(suites.len(), "suite"),
        plural(tests, "test"),
        plural(steps, "step"),
        plural(manifests.checked, "object"),
        plural(manifests.skipped, "manifest"),
    );
    Exit::Passed
}

fn cmd_list(args: ListArgs) -> Exit {
    let inputs = match suite_inputs(
        &args.paths,
        &args.var,
        &args.select,
        args.profile.as_deref(),
    ) {
        Ok(i) => i,
        Err(e) => return invalid(e),
    };
    let (suites, picks) = match load_and_pick(&inputs) {
        Ok(s) => s,
        Err(u) => return unusable(u),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = picks
            .iter()
            .map(|p| {
                let s = &suites[p.suite];
                serde_json::json!({
                    "suite": s.name,
                    "file": s.file,
                    "tests": p.tests.iter().map(|(ti, id)| serde_json::json!({
                        "name": id.name,
                        "file": id.file,
                        "line": id.loc.line,
                        "repeat": id.repeat,
                        "labels": s.tests[*ti].labels,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        for p in &picks {
            for (_, id) in &p.tests {
                let _ = writeln!(out, "{id}");
            }
        }
    }
    Exit::Passed
}

fn cmd_schema(args: SchemaArgs) -> Exit {
    use gwtest::suite::schema::{self, Draft};
    let draft = if args.draft07 {
        Draft::Draft07
    } else {
        Draft::Draft2020_12
    };
    let schema = if args.suite {
        schema::suite_schema_for(draft)
    } else {
        schema::test_schema_for(draft)
    };
    let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    // A closed pipe (`gwtest schema | head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Exit::Passed
}

fn cmd_completions(args: CompletionsArgs) -> Exit {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gwtest", &mut out);
    // A closed pipe (`gwtest completions bash | head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(&out);
    Exit::Passed
}

fn cmd_man(args: ManArgs) -> Exit {
    let cmd = <Cli as clap::CommandFactory>::command();
    match args.dir {
        Some(dir) => {
            let written =
                std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(cmd, &dir));
            match written {
                Ok(()) => {
                    println!("wrote the man pages into {}", dir.display());
                    Exit::Passed
                }
                Err(e) => {
                    eprintln!("error: writing man pages into {}: {e}", dir.display());
                    Exit::Infra
                }
            }
        }
        None => {
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
                eprintln!("error: rendering the man page: {e}");
                return Exit::Infra;
            }
            let _ = std::io::stdout().lock().write_all(&out);
            Exit::Passed
        }
    }
}
