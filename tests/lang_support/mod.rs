//! Helpers for the suite-language tests: temp suite trees and the real binary with a deadline.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const SUITE: &str = "apiVersion: gwtest/v1alpha1\nkind: Suite\n";

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "gwtest-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A tree of files (`path`, `content`), directories created as needed.
    pub fn with(tag: &str, files: &[(&str, &str)]) -> TempDir {
        let d = TempDir::new(tag);
        for (path, content) in files {
            d.write(path, content);
        }
        d
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.0.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the gwtest binary in `cwd`, killed after 60s (nothing may hang a test).
pub fn gwtest(args: &[&str], cwd: &Path) -> Out {
    gwtest_env(args, cwd, &[])
}

pub fn gwtest_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gwtest"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The caller's own gwtest settings must not leak into the test.
    for (k, _) in std::env::vars() {
        if k.starts_with("GWTEST_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gwtest");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gwtest {args:?} did not finish within 60s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
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
