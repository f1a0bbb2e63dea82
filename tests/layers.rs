//! The source tree reads top-down (src/engine/mod.rs): `cluster/` is the client layer and
//! knows no engine, step, debug aid or reporter; `debug/` knows no step; steps see of the
//! engine only what it hands them (retry, events, the run context, cluster_retry), never its
//! lifecycles. A use that breaks this fails here, naming the file and line.

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `file:line: text` of every line under `dir` that mentions one of `forbidden`.
fn uses(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for f in rust_files(&Path::new(SRC).join(dir)) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if forbidden.iter().any(|p| code.contains(p)) {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_cluster_layer_knows_no_engine_step_debug_aid_or_reporter() {
    let found = uses(
        "cluster",
        &[
            "crate::engine",
            "crate::steps",
            "crate::debug",
            "crate::report",
            "crate::cli",
            "crate::Exit",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn debug_aids_know_no_step() {
    let found = uses("debug", &["crate::steps"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn steps_do_not_reach_into_the_engines_lifecycles() {
    let found = uses(
        "steps",
        &[
            "engine::lifecycle",
            "engine::scheduler",
            "engine::fixtures",
            "engine::cleanup",
            "engine::gc",
            "engine::run",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}
