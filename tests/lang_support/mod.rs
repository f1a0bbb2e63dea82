//! Helpers for the suite-language tests: where a needle stands in a file, and gwtest's error
//! blocks with their snippets and carets. Declare `mod support; mod lang_support;`.
#![allow(dead_code)]

use crate::support::{RunOutput, Workspace};

pub const SUITE: &str = "apiVersion: gwtest/v1alpha1\nkind: Suite\n";

/// `gwtest validate` on the whole workspace (by its absolute path), from inside it.
pub fn validate(ws: &Workspace) -> RunOutput {
    ws.gwtest(&["validate", ws.path_str()]).run()
}

/// [`validate`], which must find a mistake (exit 2).
pub fn validate_fails(ws: &Workspace) -> RunOutput {
    let out = validate(ws);
    assert_eq!(
        out.code,
        Some(2),
        "expected exit 2\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    out
}

/// A workspace `name` with `suite.yaml` ([`SUITE`]), the test file `t.test.yaml` and `more`
/// files beside them.
pub fn suite_with_test(name: &str, test: &str, more: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::with(name, &[("suite.yaml", SUITE), ("t.test.yaml", test)]);
    for (path, text) in more {
        ws.write(path, text);
    }
    ws
}

/// 1-based line and column of the first `needle` in `text`.
pub fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"));
    let line = text[..at].matches('\n').count() + 1;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..at].chars().count() + 1)
}

/// The error blocks of gwtest's stderr (`error: ...` and its snippet lines).
pub fn error_blocks(stderr: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if line.starts_with("error: ") {
            blocks.push(line.to_owned());
        } else if let Some(b) = blocks.last_mut() {
            b.push('\n');
            b.push_str(line);
        }
    }
    blocks
}

/// Assert that stderr holds an error at `file:line:col` (the position of `needle` in
/// `text`) whose message contains `message`, with a snippet showing that line and a caret
/// under that column.
pub fn assert_error(stderr: &str, file: &str, text: &str, needle: &str, message: &str) {
    let (line, col) = position(text, needle);
    let head = format!("{file}:{line}:{col}: ");
    let blocks = error_blocks(stderr);
    let block = blocks
        .iter()
        .find(|b| {
            let first = b.lines().next().unwrap_or_default();
            first.contains(&format!("/{head}")) && first.contains(message)
        })
        .unwrap_or_else(|| panic!("no error `{head}...{message}` in stderr:\n{stderr}"));
    let src = text.lines().nth(line - 1).unwrap();
    let numbered = block
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{line} | ")) && l.ends_with(src));
    assert!(
        numbered,
        "snippet does not show line {line} ({src:?}):\n{block}"
    );
    let caret = block.lines().any(|l| {
        l.split_once(" | ").is_some_and(|(n, rest)| {
            n.trim().is_empty() && rest == format!("{}^", " ".repeat(col - 1))
        })
    });
    assert!(caret, "no caret under column {col}:\n{block}");
}
