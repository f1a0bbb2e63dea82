//! Files -> suites, keeping locations for every error.
//!
//! A suite is a directory holding `suite.yaml`; its tests are the `kind: Test` documents of
//! the `*.test.yaml` files directly in it. Subdirectories with their own `suite.yaml` are
//! separate suites. A path to one `*.test.yaml` runs that file's tests within its directory's
//! suite.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::de::{self, DeError};
use super::model::{API_VERSION, Defaults, Step, SuiteDoc, TestDoc, VarDef};
use super::spanned::{Loc, Spanned};
use super::validate;
use super::yaml::{self, YNode, YVal};

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
        !self.doc.fixtures.is_empty() || self.doc.vars.iter().any(|(_, v)| v.from_cluster())
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

fn de_errors(file: &Path, text: &str, errors: Vec<DeError>) -> impl Iterator<Item = LoadError> {
    errors
        .into_iter()
        .map(move |e| LoadError::new(file, e.loc, e.message).with_source(text))
}

/// A document's `apiVersion` and `kind`, checked before the strict parse so that a Suite in a
/// test file (or a typo in `kind`) is reported as such rather than as a pile of unknown keys.
fn check_header(doc: &YNode, kind: &str) -> Result<(), (Loc, String)> {
    let YVal::Map(entries) = &doc.v else {
        return Err((
            doc.loc,
            format!(
                "expected a `kind: {kind}` document (a map with apiVersion, kind, ...), found {}",
                doc.describe()
            ),
        ));
    };
    let near = |want: &str| {
        entries
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .find(|k| de::did_you_mean(k, [want]).is_some())
            .map(|k| format!(" (found `{k}`: keys are case-sensitive)"))
            .unwrap_or_default()
    };
    match doc.get("apiVersion") {
        None => {
            return Err((
                doc.loc,
                format!("missing `apiVersion: {API_VERSION}`{}", near("apiVersion")),
            ));
        }
        Some(v) if v.as_str() != Some(API_VERSION) => {
            return Err((
                v.loc,
                format!(
                    "unsupported apiVersion {}: expected {API_VERSION}",
                    v.scalar_text("").map_or(v.describe(), |t| format!("{t:?}"))
                ),
            ));
        }
        _ => {}
    }
    match doc.get("kind") {
        None => Err((doc.loc, format!("missing `kind: {kind}`{}", near("kind")))),
        Some(k) if k.as_str() != Some(kind) => {
            let found = k.scalar_text("").map_or(k.describe(), |t| format!("{t:?}"));
            let why = match (kind, k.as_str()) {
                ("Test", Some("Suite")) => format!(
                    "expected kind Test in a *{TEST_SUFFIX} file, found \"Suite\": a Suite \
                     belongs in {SUITE_FILE}"
                ),
                ("Suite", Some("Test")) => format!(
                    "expected kind Suite in {SUITE_FILE}, found \"Test\": tests belong in \
                     *{TEST_SUFFIX} files next to it"
                ),
                _ => format!("unknown kind {found}: expected {kind}"),
            };
            Err((k.loc, why))
        }
        _ => Ok(()),
    }
}

fn read(file: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(file)
        .map_err(|e| LoadError::new(file, Loc::UNKNOWN, format!("cannot read: {e}")))
}

/// Parse a file into documents, reporting a YAML syntax error.
fn documents(file: &Path, text: &str, errors: &mut Vec<LoadError>) -> Option<Vec<YNode>> {
    match yaml::parse_documents(text) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(LoadError::new(file, e.loc, e.message).with_source(text));
            None
        }
    }
}

fn load_suite_doc(file: &Path, errors: &mut Vec<LoadError>) -> Option<SuiteDoc> {
    let text = match read(file) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let docs = documents(file, &text, errors)?;
    let Some(doc) = docs.first() else {
        errors.push(LoadError::new(
            file,
            Loc::UNKNOWN,
            format!(
                "{SUITE_FILE} is empty: expected `apiVersion: {API_VERSION}` and `kind: Suite`"
            ),
        ));
        return None;
    };
    if let Some(extra) = docs.get(1) {
        errors.push(
            LoadError::new(
                file,
                extra.loc,
                format!(
                    "{SUITE_FILE} must hold exactly one document, found {}: tests go in \
                     *{TEST_SUFFIX} files",
                    docs.len()
                ),
            )
            .with_source(&text),
        );
    }
    if let Err((loc, msg)) = check_header(doc, "Suite") {
        errors.push(LoadError::new(file, loc, msg).with_source(&text));
        return None;
    }
    match de::from_node_all::<SuiteDoc>(doc, &text, &|k, v| suite_key_errors(k, v, &text)) {
        Ok(d) => {
            validate::check_suite_doc(&d, doc, file, &text, errors);
            Some(d)
        }
        Err(es) => {
            errors.extend(de_errors(file, &text, es));
            None
        }
    }
}

/// Errors of each variable and each default on its own.
fn suite_key_errors(key: &str, value: &YNode, text: &str) -> Option<Vec<DeError>> {
    let YVal::Map(entries) = &value.v else {
        return None;
    };
    match key {
        "vars" => Some(
            entries
                .iter()
                .filter_map(|(_, v)| de::from_node::<VarDef>(v, text).err())
                .collect(),
        ),
        "defaults" => de::from_node_all::<Defaults>(value, text, &|_, _| None).err(),
        _ => None,
    }
}

/// Errors of each step on its own, so one bad step does not hide the next.
fn step_errors(key: &str, value: &YNode, text: &str) -> Option<Vec<DeError>> {
    let YVal::Seq(steps) = &value.v else {
        return None;
    };
    if key != "steps" {
        return None;
    }
    Some(
        steps
            .iter()
            .filter_map(|s| de::from_node_all::<Step>(s, text, &|_, _| None).err())
            .flatten()
            .collect(),
    )
}

fn load_test_file(file: &Path, suite_labels: &[String], errors: &mut Vec<LoadError>) -> Vec<Test> {
    let text = match read(file) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    let Some(docs) = documents(file, &text, errors) else {
        return Vec::new();
    };
    if docs.is_empty() {
        errors.push(LoadError::new(
            file,
            Loc::UNKNOWN,
            format!(
                "no test in this file: expected documents with `apiVersion: {API_VERSION}` and \
                 `kind: Test`"
            ),
        ));
    }
    let mut tests = Vec::with_capacity(docs.len());
    for node in &docs {
        if let Err((loc, msg)) = check_header(node, "Test") {
            errors.push(LoadError::new(file, loc, msg).with_source(&text));
            continue;
        }
        let doc = match de::from_node_all::<TestDoc>(node, &text, &|k, v| step_errors(k, v, &text))
        {
            Ok(d) => d,
            Err(es) => {
                errors.extend(de_errors(file, &text, es));
                if let Some(YVal::Seq(steps)) = node.get("steps").map(|n| &n.v) {
                    for s in steps {
                        if let Ok(step) = de::from_node::<Spanned<Step>>(s, &text) {
                            validate::check_step_alone(&step, s, file, &text, errors);
                        }
                    }
                }
                continue;
            }
        };
        // A test with errors is still returned (with the errors): the checks across files
        // then see it too.
        validate::check_test_doc(&doc, node, file, &text, errors);
        let mut labels = doc.labels.clone();
        labels.extend(
            suite_labels
                .iter()
                .filter(|l| !doc.labels.contains(l))
                .cloned(),
        );
        tests.push(Test {
            name: doc.name.value.clone(),
            file: file.to_path_buf(),
            loc: doc.api_version.loc,
            doc,
            labels,
        });
    }
    tests
}

/// The tests of one file and its errors.
type FileResult = (Vec<Test>, Vec<LoadError>);

/// Load test files, in parallel when there are many (files are independent); results come
/// back in the order of `files`.
fn load_test_files(files: &[PathBuf], labels: &[String]) -> Vec<FileResult> {
    let one = |f: &PathBuf| {
        let mut errors = Vec::new();
        let tests = load_test_file(f, labels, &mut errors);
        (tests, errors)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len() / 4);
    if threads < 2 {
        return files.iter().map(one).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, FileResult)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        out.push((i, one(f)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Load one suite directory; `only` restricts it to one test file. A suite whose suite.yaml
/// is broken is not returned; one with a broken test file is, without that file's tests (so
/// the other files are still checked).
fn load_suite(
    dir: &Path,
    only: Option<&[PathBuf]>,
    errors: &mut Vec<LoadError>,
    ranks: &mut HashMap<PathBuf, usize>,
) -> Option<Suite> {
    let file = dir.join(SUITE_FILE);
    let next = ranks.len();
    ranks.entry(file.clone()).or_insert(next);
    let doc = load_suite_doc(&file, errors);
    let mut files: Vec<PathBuf> = match only {
        Some(f) => f.to_vec(),
        None => match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().ends_with(TEST_SUFFIX))
                        && p.is_file()
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
    let labels = doc.as_ref().map(|d| d.labels.clone()).unwrap_or_default();
    let mut tests = Vec::new();
    for f in &files {
        let next = ranks.len();
        ranks.entry(f.clone()).or_insert(next);
    }
    for (t, e) in load_test_files(&files, &labels) {
        tests.extend(t);
        errors.extend(e);
    }
    let doc = doc?;
    let name = match &doc.name {
        Some(n) => n.value.clone(),
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string()),
    };
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

/// What loading found: the suites that could be read (possibly missing some tests) and every
/// load error.
#[derive(Debug, Default)]
pub struct Loaded {
    pub suites: Vec<Suite>,
    pub errors: Vec<LoadError>,
    /// Discovery order of the files, to report errors in file order.
    ranks: HashMap<PathBuf, usize>,
}

impl Loaded {
    /// Sort errors by file (discovery order), then position; drop exact duplicates.
    pub fn sort_errors(&self, errors: &mut Vec<LoadError>) {
        errors.sort_by(|a, b| {
            let ra = self.ranks.get(&a.file).copied().unwrap_or(usize::MAX);
            let rb = self.ranks.get(&b.file).copied().unwrap_or(usize::MAX);
            (ra, &a.file, a.loc).cmp(&(rb, &b.file, b.loc))
        });
        errors.dedup();
    }
}

/// Load every suite under `paths` (directories or `*.test.yaml` files), collecting every
/// error instead of stopping at the first.
pub fn load_all(paths: &[PathBuf]) -> Loaded {
    let mut out = Loaded::default();
    // Every suite directory once, in first-seen order, with the test files asked for (`None`:
    // all of them): `a.test.yaml b.test.yaml` of one suite, or a file and its directory, make
    // one suite, never two sharing a suite.yaml (and its setup).
    let mut wanted: Vec<(PathBuf, PathBuf, Option<Vec<PathBuf>>)> = Vec::new();
    for p in paths {
        let mut targets: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
        if p.is_dir() {
            let mut dirs = Vec::new();
            suite_dirs(p, &mut dirs);
            if dirs.is_empty() {
                out.errors.push(LoadError::new(
                    p,
                    Loc::UNKNOWN,
                    format!("no {SUITE_FILE} found in this directory or below it"),
                ));
            }
            targets.extend(dirs.into_iter().map(|d| (d, None)));
        } else if p.is_file() {
            if !p.to_string_lossy().ends_with(TEST_SUFFIX) {
                out.errors.push(LoadError::new(
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
                out.errors.push(LoadError::new(
                    p,
                    Loc::UNKNOWN,
                    format!("no {SUITE_FILE} next to this test file"),
                ));
                continue;
            }
            targets.push((dir.to_path_buf(), Some(p.clone())));
        } else {
            out.errors
                .push(LoadError::new(p, Loc::UNKNOWN, "no such file or directory"));
        }
        for (dir, only) in targets {
            let key = dir.canonicalize().unwrap_or(dir.clone());
            match wanted.iter_mut().find(|(k, _, _)| *k == key) {
                None => wanted.push((key, dir, only.map(|f| vec![f]))),
                Some((_, _, files)) => match (files.as_mut(), only) {
                    (Some(files), Some(f)) => {
                        let canon = f.canonicalize().unwrap_or(f.clone());
                        if !files
                            .iter()
                            .any(|e| e.canonicalize().unwrap_or(e.clone()) == canon)
                        {
                            files.push(f);
                        }
                    }
                    // The whole directory was asked for: it holds every file.
                    (_, None) => *files = None,
                    (None, Some(_)) => {}
                },
            }
        }
    }
    for (_, dir, only) in wanted {
        if let Some(s) = load_suite(&dir, only.as_deref(), &mut out.errors, &mut out.ranks) {
            out.suites.push(s);
        }
    }
    out
}

/// Load every suite under `paths`. On error, the list also holds the checks of `validate`
/// (except unknown variable names, which need the `--var` names) for what did load, so a
/// broken file does not hide the mistakes of the others.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Suite>, Vec<LoadError>> {
    let loaded = load_all(paths);
    if loaded.errors.is_empty() {
        return Ok(loaded.suites);
    }
    let mut errors = loaded.errors.clone();
    errors.extend(validate::validate_with(&loaded.suites, None));
    loaded.sort_errors(&mut errors);
    Err(errors)
}

/// Load and validate: every error of every file, in file order. `extra_vars` are the names
/// given with `--var` (and profile variables).
pub fn load_checked(
    paths: &[PathBuf],
    extra_vars: &[String],
) -> Result<Vec<Suite>, Vec<LoadError>> {
    let loaded = load_all(paths);
    let mut errors = loaded.errors.clone();
    errors.extend(validate::validate_with(&loaded.suites, Some(extra_vars)));
    if errors.is_empty() {
        return Ok(loaded.suites);
    }
    loaded.sort_errors(&mut errors);
    Err(errors)
}
