//! CLI entry: parse, load config, run, map the outcome to an exit code.
#![allow(clippy::large_enum_variant)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use gwtest::Exit;
use gwtest::cli::{Cli, Command, CompletionsArgs, ListArgs, ManArgs, SchemaArgs, ValidateArgs};
use gwtest::config;
use gwtest::engine::select;
use gwtest::suite::load;

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
                gwtest::engine::run::command(args).await
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

fn default_paths(paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    if paths.is_empty() {
        vec![config::DEFAULT_SUITES_DIR.into()]
    } else {
        paths.to_vec()
    }
}

fn cmd_validate(args: ValidateArgs) -> Exit {
    let mut raw = config::env_vars();
    raw.extend(args.var.iter().cloned());
    let vars = match config::parse_vars(&raw) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let paths = default_paths(&args.paths);
    let names: Vec<String> = vars.into_iter().map(|(k, _)| k).collect();
    let suites = match load::load_checked(&paths, &names) {
        Ok(s) => s,
        Err(errors) => {
            gwtest::report::print_load_errors(&errors);
            return Exit::Invalid;
        }
    };
    let manifests = gwtest::suite::crdcheck::check(&suites, &args.crds);
    if !manifests.errors.is_empty() {
        gwtest::report::print_load_errors(&manifests.errors);
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
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let file = config::find_config_file(&cwd);
    let selection = config::load_profile(file.as_deref(), args.profile.as_deref(), config::in_ci())
        .and_then(|(_, p)| config::resolve_selection(&args.select, &p));
    let selection = match selection {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let paths = default_paths(&args.paths);
    let suites = match load::load(&paths) {
        Ok(s) => s,
        Err(errors) => {
            gwtest::report::print_load_errors(&errors);
            return Exit::Invalid;
        }
    };
    let picks = select::pick(&suites, &selection);
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
