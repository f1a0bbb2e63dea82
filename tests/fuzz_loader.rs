//! The suite loader under generated hostile input: mutations of the shipped suites' files
//! (bytes cut, YAML punctuation and `${` inserted, lines repeated, invalid UTF-8, huge
//! values) must never panic; `gwtest validate` must end with exit 0 or 2 and every error
//! must name its file. A bounded number of cases per run (proptest, fixed seed per run so a
//! failure can be replayed with the seed it prints).

mod lang_support;
mod support;

use std::path::{Path, PathBuf};

use lang_support::SUITE;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::Workspace;

/// Every YAML file of the shipped suites: the seeds the mutations start from.
fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("suites"),
        &mut out,
    );
    assert!(out.len() > 10, "the shipped suites are the seeds");
    out
}

/// Fragments that stress the loader: YAML structure, variables, anchors, odd bytes.
const TOKENS: &[&[u8]] = &[
    b"${",
    b"}",
    b"$${",
    b"${x}",
    b"${env.NOPE}",
    b":",
    b": ",
    b"- ",
    b"\n",
    b"\n  ",
    b"  ",
    b"\"",
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"---\n",
    b"...\n",
    b"#",
    b"|\n",
    b">-\n",
    b"\t",
    b"\xFF",
    b"\xC3",
    b"\0",
    b"~",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"apply: ",
    b"request: ",
    b"assert: ",
    b"steps:",
    b"timeout: ",
    b"consecutive: 0",
    b"url: http://${gateway}/",
    b"resource: {kind: X}",
    b"<<: *a",
    b"? ",
    b"%YAML 1.2\n",
];

#[derive(Clone, Debug)]
enum Mutation {
    Cut { at: usize, len: usize },
    Insert { at: usize, token: usize },
    RepeatLine { line: usize, times: usize },
    Byte { at: usize, byte: u8 },
    HugeValue { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Mutation::Cut { at, len }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 2..300usize)
            .prop_map(|(line, times)| Mutation::RepeatLine { line, times }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Byte { at, byte }),
        (any::<usize>(), 1000..200_000usize).prop_map(|(at, len)| Mutation::HugeValue { at, len }),
    ]
}

fn apply(mut text: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = text.len().max(1);
        match *m {
            Mutation::Cut { at, len } => {
                let at = at % n;
                let end = (at + len).min(text.len());
                text.drain(at.min(end)..end);
            }
            Mutation::Insert { at, token } => {
                let at = at % (text.len() + 1);
                text.splice(at..at, TOKENS[token].iter().copied());
            }
            Mutation::RepeatLine { line, times } => {
                let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
                let i = line % lines.len();
                let mut out = Vec::new();
                for (j, l) in lines.iter().enumerate() {
                    let k = if j == i { times } else { 1 };
                    for _ in 0..k {
                        out.extend_from_slice(l);
                        out.push(b'\n');
                    }
                }
                text = out;
            }
            Mutation::Byte { at, byte } => {
                if !text.is_empty() {
                    let at = at % text.len();
                    text[at] = byte;
                }
            }
            Mutation::HugeValue { at, len } => {
                let at = at % (text.len() + 1);
                text.splice(at..at, std::iter::repeat_n(b'v', len));
            }
        }
    }
    text
}

/// A suite with the mutated file as its suite.yaml or as a test file, beside the other files
/// of the seed's own directory (so relative paths to manifests still resolve).
fn write_case(dir: &Workspace, seed: &Path, mutated: &[u8]) -> PathBuf {
    let name = seed.file_name().unwrap().to_string_lossy().into_owned();
    let src_dir = seed.parent().unwrap();
    for e in std::fs::read_dir(src_dir).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    if !dir.path().join("suite.yaml").exists() {
        std::fs::write(dir.path().join("suite.yaml"), SUITE).unwrap();
    }
    let target = if name.ends_with(".test.yaml") || name == "suite.yaml" {
        name
    } else {
        // A manifest: it is checked as one when a test names it; make sure one does.
        std::fs::write(
            dir.path().join("uses-it.test.yaml"),
            format!("apiVersion: gwtest/v1alpha1\nkind: Test\nname: uses-it\nsteps:\n  - apply: {name}\n"),
        )
        .unwrap();
        name
    };
    std::fs::write(dir.path().join(&target), mutated).unwrap();
    dir.path().join(target)
}

/// A seed (index) and up to five mutations of it.
fn cases() -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (any::<usize>(), proptest::collection::vec(mutation(), 1..6))
}

/// `check` on `cases_n` suites, each a seed with up to five mutations written to a workspace.
fn each_mutated_suite(
    cases_n: u32,
    check: impl Fn(&Workspace) -> Result<(), proptest::test_runner::TestCaseError>,
) {
    let seeds = seeds();
    let mut runner = TestRunner::new(Config {
        cases: cases_n,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&cases(), |(seed, muts)| {
            let (path, text) = &seeds[seed % seeds.len()];
            let dir = Workspace::new("fuzz");
            write_case(&dir, path, &apply(text.clone(), &muts));
            check(&dir)
        })
        .unwrap();
}

/// In-process: the loader and every check never panic, whatever the bytes.
#[test]
fn the_loader_never_panics() {
    each_mutated_suite(400, |dir| {
        let loaded = gwtest::suite::load::load_checked(&[dir.path().to_path_buf()], &[]);
        if let Err(errors) = loaded {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(!e.message.is_empty());
                prop_assert!(e.file.starts_with(dir.path()), "{}", e);
            }
            prop_assert!(gwtest::suite::load::error_count(&errors) >= errors.len());
        }
        Ok(())
    });
}

/// Through the binary: exit 0 or 2, never a panic, every error line naming a file of the
/// suite, and done within the harness's deadline (which kills a run that hangs).
#[test]
fn validate_exits_0_or_2_on_mutated_suites() {
    each_mutated_suite(60, |dir| {
        let target = dir.path_str().to_owned();
        let out = dir.gwtest(&["validate", &target]).run();
        prop_assert!(
            matches!(out.code, Some(0 | 2)),
            "exit {:?}: {}",
            out.code,
            out.stderr
        );
        prop_assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        for line in out.stderr.lines().filter(|l| l.starts_with("error: ")) {
            prop_assert!(line.starts_with(&format!("error: {target}")), "{line}");
        }
        // Errors are capped: output stays small whatever the input.
        prop_assert!(out.stderr.len() < 200_000, "{} bytes", out.stderr.len());
        Ok(())
    });
}
