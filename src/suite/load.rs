//! Files -> suites, keeping locations for every error.
//!
//! A suite is a directory holding `suite.yaml`; its tests are the `kind: Test` documents of
//! the `*.test.yaml` files directly in it. Subdirectories with their own `suite.yaml` are
//! separate suites. A path to one `*.test.yaml` runs that file's tests within its directory's
//! suite.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::model::{API_VERSION, DocHeader, SuiteDoc, TestDoc};
use super::spanned::Loc;

pub const SUITE_FILE: &str = "suite.yaml";
pub const TEST_SUFFIX: &str = ".test.yaml";

/// A loaded suite: its `suite.yaml` and the tests of its `*.test.yaml` files.
#[derive(Clone, Debug)]
pub struct Suite {
    pub name: String,
    /// The suite directory.
    pub dir: PathBuf,
    /// Its suite.yaml.
    pub file: PathBuf,
    pub doc: SuiteDoc,
    /// Tests in file-name order, then document order.
    pub tests: Vec<Test>,
}

#[derive(Clone, Debug)]
pub struct Test {
    pub name: String,
    pub file: PathBuf,
    /// Where the test's document starts.
    pub loc: Loc,
    pub doc: TestDoc,
    /// The test's labels followed by its suite's.
    pub labels: Vec<String>,
}

impl Test {
    /// Whether any step talks to a cluster.
    pub fn needs_cluster(&self) -> bool {
        self.doc.steps.iter().any(|s| s.value.needs_cluster())
    }

    /// Whether any step checks spans.
    pub fn needs_spans(&self) -> bool {
        self.doc.steps.iter().any(|s| s.value.spans.is_some())
    }
}

impl Suite {
    /// Whether the suite itself needs a cluster (fixtures, or variables read from it).
    pub fn setup_needs_cluster(&self) -> bool {
        !self.doc.fixtures.is_empty()
            || self
                .doc
                .vars
                .iter()
                .any(|(_, v)| matches!(v, super::model::VarDef::From(_)))
    }
}

/// A problem in a suite file: where, what, and the lines around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub loc: Loc,
    pub message: String,
    /// The source lines around `loc` with a caret, when the file could be read.
    pub snippet: Option<String>,
}

impl LoadError {
    pub fn new(file: &Path, loc: Loc, message: impl Into<String>) -> Self {
        LoadError {
            file: file.to_path_buf(),
            loc,
            message: message.into(),
            snippet: None,
        }
    }

    /// Attach the lines around the location, read from `text`.
    pub fn with_source(mut self, text: &str) -> Self {
        self.snippet = snippet(text, self.loc);
        self
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.is_known() {
            write!(f, "{}:{}: {}", self.file.display(), self.loc, self.message)?;
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

/// Up to two lines of context before `loc`, the line itself, and a caret under the column.
pub fn snippet(text: &str, loc: Loc) -> Option<String> {
    if !loc.is_known() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let line = loc.line as usize;
    if line == 0 || line > lines.len() + 1 {
        return None;
    }
    let first = line.saturating_sub(2).max(1);
    let width = line.to_string().len();
    let mut out = Vec::new();
    for n in first..=line.min(lines.len()) {
        out.push(format!("{n:>width$} | {}", lines[n - 1]));
    }
    let col = (loc.col as usize).max(1);
    out.push(format!("{:>width$} | {}^", "", " ".repeat(col - 1)));
    Some(out.join("\n"))
}

/// The message of a YAML error without serde-saphyr's own location suffix and snippet.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let s = e.without_snippet().to_string();
    let s = match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => s[..i].to_string(),
        _ => s,
    };
    s.trim().to_string()
}

fn yaml_error(file: &Path, text: &str, e: &serde_saphyr::Error) -> LoadError {
    let loc = e.location().map(Loc::from).unwrap_or(Loc::UNKNOWN);
    LoadError::new(file, loc, yaml_message(e)).with_source(text)
}

fn parse_docs<T: DeserializeOwned>(file: &Path, text: &str) -> Result<Vec<T>, LoadError> {
    serde_saphyr::from_str_multiple::<T, Vec<T>>(text).map_err(|e| yaml_error(file, text, &e))
}

/// Check every document's apiVersion and kind before the strict parse, so a Suite in a test
/// file (or a typo in `kind`) is reported as such rather than as a pile of unknown fields.
fn check_headers(file: &Path, text: &str, kind: &str) -> Result<usize, LoadError> {
    let headers: Vec<DocHeader> = parse_docs(file, text)?;
    for h in &headers {
        match &h.api_version {
            None => {
                let loc = h.kind.as_ref().map_or(Loc::new(1, 1), |k| k.loc);
                return Err(LoadError::new(
                    file,
                    loc,
                    format!("missing `apiVersion: {API_VERSION}`"),
                )
                .with_source(text));
            }
            Some(v) if v.value != API_VERSION => {
                return Err(LoadError::new(
                    file,
                    v.loc,
                    format!(
                        "unsupported apiVersion {:?}: expected {API_VERSION}",
                        v.value
                    ),
                )
                .with_source(text));
            }
            _ => {}
        }
        match &h.kind {
            None => {
                let loc = h.api_version.as_ref().map_or(Loc::new(1, 1), |k| k.loc);
                return Err(
                    LoadError::new(file, loc, format!("missing `kind: {kind}`")).with_source(text)
                );
            }
            Some(k) if k.value != kind => {
                let why = if kind == "Test" {
                    format!(
                        "expected kind Test in a {TEST_SUFFIX} file, found {:?} (a Suite belongs in {SUITE_FILE})",
                        k.value
                    )
                } else {
                    format!("expected kind Suite in {SUITE_FILE}, found {:?}", k.value)
                };
                return Err(LoadError::new(file, k.loc, why).with_source(text));
            }
            _ => {}
        }
    }
    Ok(headers.len())
}

fn read(file: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(file)
        .map_err(|e| LoadError::new(file, Loc::UNKNOWN, format!("cannot read: {e}")))
}

fn load_suite_doc(file: &Path) -> Result<SuiteDoc, LoadError> {
    let text = read(file)?;
    let n = check_headers(file, &text, "Suite")?;
    if n != 1 {
        return Err(LoadError::new(
            file,
            Loc::new(1, 1),
            format!("{SUITE_FILE} must hold exactly one document, found {n}"),
        ));
    }
    let mut docs: Vec<SuiteDoc> = parse_docs(file, &text)?;
    Ok(docs.remove(0))
}

fn load_test_file(file: &Path, suite_labels: &[String]) -> Result<Vec<Test>, LoadError> {
    let text = read(file)?;
    check_headers(file, &text, "Test")?;
    let docs: Vec<TestDoc> = parse_docs(file, &text)?;
    Ok(docs
        .into_iter()
        .map(|doc| {
            let mut labels = doc.labels.clone();
            labels.extend(
                suite_labels
                    .iter()
                    .filter(|l| !doc.labels.contains(l))
                    .cloned(),
            );
            Test {
                name: doc.name.value.clone(),
                file: file.to_path_buf(),
                loc: doc.api_version.loc,
                doc,
                labels,
            }
        })
        .collect())
}

/// Load one suite directory; `only` restricts it to one test file.
fn load_suite(dir: &Path, only: Option<&Path>, errors: &mut Vec<LoadError>) -> Option<Suite> {
    let file = dir.join(SUITE_FILE);
    let doc = match load_suite_doc(&file) {
        Ok(d) => d,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let name = match &doc.name {
        Some(n) => n.value.clone(),
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string()),
    };
    let mut files: Vec<PathBuf> = match only {
        Some(f) => vec![f.to_path_buf()],
        None => match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().ends_with(TEST_SUFFIX))
                })
                .collect(),
            Err(e) => {
                errors.push(LoadError::new(
                    dir,
                    Loc::UNKNOWN,
                    format!("cannot list: {e}"),
                ));
                return None;
            }
        },
    };
    files.sort();
    let mut tests = Vec::new();
    let before = errors.len();
    for f in files {
        match load_test_file(&f, &doc.labels) {
            Ok(t) => tests.extend(t),
            Err(e) => errors.push(e),
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Suite {
        name,
        dir: dir.to_path_buf(),
        file,
        doc,
        tests,
    })
}

/// Every directory under `root` (itself included) that holds a suite.yaml, sorted.
fn suite_dirs(root: &Path, out: &mut Vec<PathBuf>) {
    if root.join(SUITE_FILE).is_file() {
        out.push(root.to_path_buf());
    }
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for d in subdirs {
        suite_dirs(&d, out);
    }
}

/// Load every suite under `paths` (directories or `*.test.yaml` files).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Suite>, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut suites: Vec<Suite> = Vec::new();
    let mut seen: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for p in paths {
        let mut targets: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
        if p.is_dir() {
            let mut dirs = Vec::new();
            suite_dirs(p, &mut dirs);
            if dirs.is_empty() {
                errors.push(LoadError::new(
                    p,
                    Loc::UNKNOWN,
                    format!("no {SUITE_FILE} found in this directory or below it"),
                ));
            }
            targets.extend(dirs.into_iter().map(|d| (d, None)));
        } else if p.is_file() {
            if !p.to_string_lossy().ends_with(TEST_SUFFIX) {
                errors.push(LoadError::new(
                    p,
                    Loc::UNKNOWN,
                    format!("not a suite directory or a *{TEST_SUFFIX} file"),
                ));
                continue;
            }
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.join(SUITE_FILE).is_file() {
                errors.push(LoadError::new(
                    p,
                    Loc::UNKNOWN,
                    format!("no {SUITE_FILE} next to this test file"),
                ));
                continue;
            }
            targets.push((dir.to_path_buf(), Some(p.clone())));
        } else {
            errors.push(LoadError::new(p, Loc::UNKNOWN, "no such file or directory"));
        }
        for (dir, only) in targets {
            let key = (
                dir.canonicalize().unwrap_or(dir.clone()),
                only.as_ref().and_then(|o| o.canonicalize().ok()),
            );
            if seen.contains(&key) || seen.contains(&(key.0.clone(), None)) {
                continue;
            }
            seen.push(key);
            if let Some(s) = load_suite(&dir, only.as_deref(), &mut errors) {
                suites.push(s);
            }
        }
    }
    if errors.is_empty() {
        Ok(suites)
    } else {
        Err(errors)
    }
}
