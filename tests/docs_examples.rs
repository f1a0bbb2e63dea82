//! Every complete suite-language example in docs/*.md is valid: checked by the real binary
//! (`gwtest validate`) and against the JSON Schema (`gwtest schema`).
//!
//! Convention for ```yaml blocks in docs:
//! - A block whose first line is `# file: PATH` is written to PATH in a temporary suite made
//!   for its page (one suite per page; blocks naming the same file become documents of one
//!   stream, in page order). Use it for suite.yaml, `*.test.yaml` files and the manifests
//!   they name.
//! - A block that is a complete gwtest document (after its comments, it starts with
//!   `apiVersion: gwtest/v1alpha1`) must have such a line; the test fails otherwise.
//! - A block whose first line is `# from: PATH` quotes a file of this repository (a shipped
//!   suite's test, run on the sandbox by tests/scenarios.rs): the rest of the block must be
//!   exactly that file.
//! - Other blocks (fragments, shell, output) are not checked.
//!
//! A page without a `# file: suite.yaml` block gets a minimal suite.yaml.

mod lang_support;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use lang_support::{SUITE, validate};
use serde_json::Value;
use support::Workspace;

struct Block {
    line: usize,
    text: String,
}

fn yaml_blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        match &mut cur {
            None if t == "```yaml" || t == "```yml" => {
                cur = Some(Block {
                    line: i + 2,
                    text: String::new(),
                })
            }
            Some(_) if t.starts_with("```") => out.push(cur.take().unwrap()),
            Some(b) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            None => {}
        }
    }
    out
}

fn is_gwtest_document(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l == "apiVersion: gwtest/v1alpha1")
}

fn first_line_tag(text: &str, tag: &str) -> Option<String> {
    text.lines()
        .next()?
        .trim()
        .strip_prefix(tag)
        .map(|p| p.trim().to_owned())
}

fn file_of(text: &str) -> Option<String> {
    first_line_tag(text, "# file:")
}

fn schema(args: &[&str]) -> (boon::Schemas, boon::SchemaIndex) {
    let dir = Workspace::new("docs");
    let mut all = vec!["schema"];
    all.extend_from_slice(args);
    let out = dir.gwtest(&all).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let id = v["$id"].as_str().unwrap().to_owned();
    let mut schemas = boon::Schemas::new();
    let mut c = boon::Compiler::new();
    c.add_resource(&id, v).unwrap();
    let idx = c.compile(&id, &mut schemas).unwrap();
    (schemas, idx)
}

#[test]
fn every_complete_example_in_the_docs_is_valid() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&docs)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    let (test_schemas, test_idx) = schema(&[]);
    let (suite_schemas, suite_idx) = schema(&["--suite"]);

    let mut problems = Vec::new();
    let mut checked_docs = BTreeMap::new();
    for page in &pages {
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        let md = std::fs::read_to_string(page).unwrap();
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut count = 0;
        for b in yaml_blocks(&md) {
            if let Some(src) = first_line_tag(&b.text, "# from:") {
                let quoted = b.text.split_once('\n').map_or("", |(_, rest)| rest);
                let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&src);
                match std::fs::read_to_string(&path) {
                    Ok(real) if real == quoted => count += 1,
                    Ok(_) => problems.push(format!(
                        "{name}:{}: the block differs from {src}: copy the file again",
                        b.line
                    )),
                    Err(e) => problems.push(format!("{name}:{}: {src}: {e}", b.line)),
                }
                continue;
            }
            let complete = is_gwtest_document(&b.text);
            let Some(path) = file_of(&b.text) else {
                if complete {
                    problems.push(format!(
                        "{name}:{}: a complete example needs a `# file: NAME` first line",
                        b.line
                    ));
                }
                continue;
            };
            if complete {
                let docs: Vec<Value> = match serde_saphyr::from_multiple(&b.text) {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push(format!("{name}:{}: not YAML: {e}", b.line));
                        continue;
                    }
                };
                for doc in docs {
                    count += 1;
                    let (schemas, idx) = if doc["kind"] == "Suite" {
                        (&suite_schemas, suite_idx)
                    } else {
                        (&test_schemas, test_idx)
                    };
                    if let Err(e) = schemas.validate(&doc, idx) {
                        problems.push(format!(
                            "{name}:{}: rejected by the JSON Schema: {e:#}",
                            b.line
                        ));
                    }
                }
            }
            match files.get_mut(&path) {
                Some(existing) => {
                    existing.push_str("---\n");
                    existing.push_str(&b.text);
                }
                None => {
                    order.push(path.clone());
                    files.insert(path, b.text);
                }
            }
        }
        if files.is_empty() {
            continue;
        }
        checked_docs.insert(name.clone(), count);
        let dir = Workspace::new("docs");
        if !files.contains_key("suite.yaml") {
            dir.write("suite.yaml", SUITE);
        }
        for path in &order {
            dir.write(path, &files[path]);
        }
        let out = validate(&dir);
        if out.code != Some(0) {
            problems.push(format!(
                "{name}: the examples are not a valid suite (files: {order:?}):\n{}",
                out.stderr
            ));
        } else if !out.stdout.starts_with("ok:") {
            problems.push(format!("{name}: unexpected output {:?}", out.stdout));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The reference must really be checked: a broken extractor would find nothing.
    let reference = checked_docs.get("reference.md").copied().unwrap_or(0);
    assert!(
        reference >= 8,
        "expected the reference's examples to be checked, found {reference}: {checked_docs:?}"
    );
}

#[test]
fn a_broken_example_is_caught() {
    // The same machinery on a deliberately wrong page: validate must fail.
    let md = "```yaml\n# file: bad.test.yaml\napiVersion: gwtest/v1alpha1\nkind: Test\nname: x\nsteps:\n  - slep: 1s\n```\n";
    let blocks = yaml_blocks(md);
    assert_eq!(blocks.len(), 1);
    assert!(is_gwtest_document(&blocks[0].text));
    assert_eq!(file_of(&blocks[0].text).as_deref(), Some("bad.test.yaml"));
    let dir = Workspace::with(
        "docs",
        &[("suite.yaml", SUITE), ("bad.test.yaml", &blocks[0].text)],
    );
    let out = validate(&dir);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("unknown key `slep`: did you mean `sleep`?"),
        "{}",
        out.stderr
    );
}

/// README's test command is what CI runs: every line of its block is a line of `.ci/run`,
/// in order, and that block installs cargo-nextest before using it (a fresh machine has only
/// Rust); `ci/install-deps.sh` is what does it.
#[test]
fn ci_runs_the_readme_test_command() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let anchor = readme
        .find("Run gwtest's own tests")
        .expect("README has the test command");
    let rest = &readme[anchor..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let block = &rest[start..start + rest[start..].find("```").unwrap()];
    let readme_lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        readme_lines,
        [
            "bash ci/install-deps.sh",
            "cargo nextest run --locked --no-fail-fast"
        ]
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let ci_lines: Vec<&str> = ci.lines().map(str::trim).collect();
    let mut at = 0;
    for want in &readme_lines {
        let found = ci_lines[at..]
            .iter()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!(".ci/run lacks {want:?} (after line {at}):\n{ci}"));
        at += found + 1;
    }
    let deps = std::fs::read_to_string(root.join("ci/install-deps.sh")).unwrap();
    assert!(
        deps.contains("cargo nextest --version")
            && deps.contains("cargo install --locked cargo-nextest"),
        "ci/install-deps.sh installs cargo-nextest when it is missing"
    );
    // And the script runs under bash as written.
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(root.join("ci/install-deps.sh"))
        .status()
        .unwrap();
    assert!(syntax.success());
}
