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
use super::model::{API_VERSION, Action, Defaults, Step, StepKeys, SuiteDoc, TestDoc, VarDef};
use super::spanned::{Loc, Spanned};
use super::validate::{self, Local};
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
    /// The `catch:` steps the test runs: its own, or its suite's when it has none.
    pub catch: StepList,
    /// The `finally:` steps the test runs: its own, or its suite's when it has none.
    pub finally: StepList,
}

/// Steps beside a test's main ones (`catch:`, `finally:`) and the file they are written in
/// (the test's, or suite.yaml for a suite's defaults).
#[derive(Clone, Debug, Default)]
pub struct StepList {
    pub steps: Vec<Spanned<Step>>,
    pub file: PathBuf,
}

impl StepList {
    fn of(steps: &Option<Vec<Spanned<Step>>>, file: &Path) -> Self {
        StepList {
            steps: steps.clone().unwrap_or_default(),
            file: file.to_path_buf(),
        }
    }
}

impl Test {
    /// Every step the test may run, with the file it is written in: the steps, then the
    /// `catch` and `finally` steps.
    pub fn all_steps(&self) -> impl Iterator<Item = (&Path, &Spanned<Step>)> {
        let main = self.doc.steps.iter().map(|s| (self.file.as_path(), s));
        let extra = [&self.catch, &self.finally]
            .into_iter()
            .flat_map(|l| l.steps.iter().map(|s| (l.file.as_path(), s)));
        main.chain(extra)
    }

    /// Whether any step talks to a cluster.
    pub fn needs_cluster(&self) -> bool {
        self.all_steps().any(|(_, s)| s.value.needs_cluster())
    }

    /// Whether any step checks spans.
    pub fn needs_spans(&self) -> bool {
        self.all_steps()
            .any(|(_, s)| matches!(s.value.action, Action::Spans(_)))
    }
}

impl Suite {
    /// Whether the suite itself needs a cluster (fixtures, or variables read from it).
    pub fn setup_needs_cluster(&self) -> bool {
        !self.doc.fixtures.is_empty() || self.doc.vars.iter().any(|(_, v)| v.from_cluster())
    }
}

/// Errors shown per file; the rest are counted ("… and N more"), so a file with thousands of
/// mistakes costs neither quadratic time nor megabytes of output.
pub const MAX_ERRORS_PER_FILE: usize = 50;
/// Characters of a source line shown on each side of the caret in a snippet.
const SNIPPET_WINDOW: usize = 120;

/// A problem in a suite file: where, what, and the lines around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub loc: Loc,
    pub message: String,
    /// The source lines around `loc` with a caret, attached by [`finish_errors`] to the
    /// errors that are shown.
    pub snippet: Option<String>,
    /// Text to find on or after `loc` to point at it exactly (a `${name}` in a string).
    pub needle: Option<String>,
    /// For the "… and N more" entry that ends a file's list: how many errors it stands for.
    pub hidden: usize,
}

impl LoadError {
    pub fn new(file: &Path, loc: Loc, message: impl Into<String>) -> Self {
        LoadError {
            file: file.to_path_buf(),
            loc,
            message: crate::util::cut_message(message.into()),
            snippet: None,
            needle: None,
            hidden: 0,
        }
    }

    /// Point at the first `needle` on or after the location once the error is shown.
    pub fn at_needle(mut self, needle: impl Into<String>) -> Self {
        self.needle = Some(needle.into());
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

/// How many errors a finished list stands for (the shown ones and those counted in "… and N
/// more" entries).
pub fn error_count(errors: &[LoadError]) -> usize {
    errors
        .iter()
        .map(|e| if e.hidden > 0 { e.hidden } else { 1 })
        .sum()
}

/// A file's text with the byte offset of every line start, to reach a line in O(1).
struct Source {
    text: String,
    starts: Vec<usize>,
}

impl Source {
    fn new(text: String) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source { text, starts }
    }

    /// Line `n` (1-based) without its line break.
    fn line(&self, n: usize) -> Option<&str> {
        let start = *self.starts.get(n.checked_sub(1)?)?;
        let end = self.starts.get(n).map_or(self.text.len(), |e| e - 1);
        let line = self.text.get(start..end.max(start))?;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    /// The first `needle` at or after `loc` (within a few lines: a block scalar starts on the
    /// line of its key).
    fn find_from(&self, loc: Loc, needle: &str) -> Option<Loc> {
        let first = loc.line as usize;
        for n in first..first + 50 {
            let line = self.line(n)?;
            let from = if n == first {
                line.char_indices()
                    .nth(loc.col.saturating_sub(1) as usize)
                    .map_or(line.len(), |(b, _)| b)
            } else {
                0
            };
            if let Some(b) = line[from..].find(needle) {
                let col = line[..from + b].chars().count() + 1;
                return Some(Loc::new(n as u32, col as u32));
            }
        }
        None
    }

    /// Up to two lines of context before `loc`, the line itself, and a caret under the
    /// column; long lines are cut to a window around the column.
    fn snippet(&self, loc: Loc) -> Option<String> {
        if !loc.is_known() {
            return None;
        }
        let line = loc.line as usize;
        if line == 0 || line > self.starts.len() {
            return None;
        }
        let col = (loc.col as usize).max(1);
        let first = line.saturating_sub(2).max(1);
        let width = line.to_string().len();
        let mut out = Vec::new();
        let mut caret = col - 1;
        for n in first..=line {
            let text = self.line(n).unwrap_or("");
            let (shown, offset) = window(text, if n == line { col - 1 } else { 0 });
            if n == line {
                caret = caret - offset.min(caret) + usize::from(offset > 0);
            }
            out.push(format!("{n:>width$} | {shown}"));
        }
        out.push(format!("{:>width$} | {}^", "", " ".repeat(caret)));
        Some(out.join("\n"))
    }
}

/// `line` cut to `SNIPPET_WINDOW` characters on each side of character `at` (with `…` where
/// cut), and how many characters were cut at the start.
fn window(line: &str, at: usize) -> (String, usize) {
    let total = line.chars().count();
    if total <= 2 * SNIPPET_WINDOW {
        return (line.to_string(), 0);
    }
    let start = at.saturating_sub(SNIPPET_WINDOW);
    let end = (at + SNIPPET_WINDOW).min(total);
    let mut s: String = line.chars().skip(start).take(end - start).collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < total {
        s.push('…');
    }
    (s, start)
}

/// Errors as they are shown: in file order (`ranks`: discovery order) then position, without
/// duplicates, at most [`MAX_ERRORS_PER_FILE`] per file followed by one "… and N more" entry,
/// each pointed at its needle and given its snippet (each file read once). Linear in the
/// number of errors, apart from the sort.
pub fn finish_errors(
    mut errors: Vec<LoadError>,
    ranks: &HashMap<PathBuf, usize>,
) -> Vec<LoadError> {
    let rank = |e: &LoadError| ranks.get(&e.file).copied().unwrap_or(usize::MAX);
    errors.sort_by(|a, b| (rank(a), &a.file, a.loc).cmp(&(rank(b), &b.file, b.loc)));
    errors.dedup();
    let mut out = Vec::new();
    let mut errors = errors.into_iter().peekable();
    while let Some(head) = errors.next() {
        let file = head.file.clone();
        let mut group = vec![head];
        let mut hidden = 0;
        while let Some(e) = errors.next_if(|e| e.file == file) {
            if group.len() < MAX_ERRORS_PER_FILE {
                group.push(e);
            } else {
                hidden += 1;
            }
        }
        let mut source = None;
        for e in group.iter_mut().filter(|e| e.loc.is_known()) {
            let Some(src) = source.get_or_insert_with(|| read_lossy(&file).map(Source::new)) else {
                break;
            };
            if let Some(n) = e.needle.take() {
                e.loc = src.find_from(e.loc, &n).unwrap_or(e.loc);
            }
            e.snippet = src.snippet(e.loc);
        }
        group.sort_by_key(|e| e.loc);
        out.extend(group);
        if hidden > 0 {
            let mut more = LoadError::new(
                &file,
                Loc::UNKNOWN,
                format!(
                    "… and {hidden} more error{} in this file (the first {MAX_ERRORS_PER_FILE} \
                     are shown)",
                    if hidden == 1 { "" } else { "s" }
                ),
            );
            more.hidden = hidden;
            out.push(more);
        }
    }
    out
}

/// A file's text for snippets, invalid UTF-8 replaced.
fn read_lossy(file: &Path) -> Option<String> {
    std::fs::read(file)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn de_errors(file: &Path, errors: Vec<DeError>) -> impl Iterator<Item = LoadError> {
    errors
        .into_iter()
        .map(move |e| LoadError::new(file, e.loc, e.message))
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
                    v.scalar_text("")
                        .map_or(v.describe(), |t| crate::util::quoted(&t))
                ),
            ));
        }
        _ => {}
    }
    match doc.get("kind") {
        None => Err((doc.loc, format!("missing `kind: {kind}`{}", near("kind")))),
        Some(k) if k.as_str() != Some(kind) => {
            let found = k
                .scalar_text("")
                .map_or(k.describe(), |t| crate::util::quoted(&t));
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
    read_text(file).map_err(|e| match e {
        ReadError::Io(e) => LoadError::new(file, Loc::UNKNOWN, format!("cannot read: {e}")),
        ReadError::NotUtf8(loc, msg) => LoadError::new(file, loc, msg),
    })
}

/// Why a file could not be read as text.
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// Where the first invalid byte is, and a message naming it.
    NotUtf8(Loc, String),
}

/// A file as UTF-8 text; invalid UTF-8 is located (line and column of the first bad byte).
pub(crate) fn read_text(file: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(file).map_err(ReadError::Io)?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        ReadError::NotUtf8(utf8_loc(bytes, at), invalid_utf8(bytes, at))
    })
}

/// Line and column (in characters) of byte `at`, which follows valid UTF-8.
fn utf8_loc(bytes: &[u8], at: usize) -> Loc {
    let before = &bytes[..at];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    // Valid up to `at`, so the slice is UTF-8.
    let col = std::str::from_utf8(&before[line_start..]).map_or(0, |s| s.chars().count()) + 1;
    Loc::new(line as u32, col as u32)
}

fn invalid_utf8(bytes: &[u8], at: usize) -> String {
    let shown: Vec<String> = bytes[at..]
        .iter()
        .take(4)
        .map(|b| format!("0x{b:02X}"))
        .collect();
    format!(
        "invalid UTF-8 (bytes {}): suite files must be UTF-8 text",
        shown.join(" ")
    )
}

/// Parse a file into documents, reporting a YAML syntax error.
fn documents(file: &Path, text: &str, errors: &mut Vec<LoadError>) -> Option<Vec<YNode>> {
    match yaml::parse_documents(text) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(LoadError::new(file, e.loc, e.message));
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
        errors.push(LoadError::new(
            file,
            extra.loc,
            format!(
                "{SUITE_FILE} must hold exactly one document, found {}: tests go in \
                     *{TEST_SUFFIX} files",
                docs.len()
            ),
        ));
    }
    if let Err((loc, msg)) = check_header(doc, "Suite") {
        errors.push(LoadError::new(file, loc, msg));
        return None;
    }
    match de::from_node_all::<SuiteDoc>(doc, &text, &|k, v| suite_key_errors(k, v, &text)) {
        Ok(d) => {
            validate::check_suite_doc(&mut Local::new(file, &text, errors), &d, doc);
            Some(d)
        }
        Err(es) => {
            errors.extend(de_errors(file, es));
            check_good_steps(doc, file, &text, errors);
            None
        }
    }
}

/// Errors of each variable and each default on its own.
fn suite_key_errors(key: &str, value: &YNode, text: &str) -> Option<Vec<DeError>> {
    let YVal::Map(entries) = &value.v else {
        return None;
    };
    if let Some(steps) = step_list_errors(key, value, text) {
        return Some(steps);
    }
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

/// The keys of a document that hold lists of steps.
const STEP_LISTS: [&str; 3] = ["steps", "catch", "finally"];

/// Errors of each step on its own, so one bad step does not hide the next.
fn step_list_errors(key: &str, value: &YNode, text: &str) -> Option<Vec<DeError>> {
    let YVal::Seq(steps) = &value.v else {
        return None;
    };
    if !STEP_LISTS.contains(&key) {
        return None;
    }
    Some(
        steps
            .iter()
            .filter_map(|s| {
                // Each key's errors on its own; once every key is right, whether the step
                // holds exactly one action.
                match de::from_node_all::<StepKeys>(s, text, &|_, _| None) {
                    Err(es) => Some(es),
                    Ok(_) => de::from_node::<Step>(s, text).err().map(|e| vec![e]),
                }
            })
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
            errors.push(LoadError::new(file, loc, msg));
            continue;
        }
        let doc = match de::from_node_all::<TestDoc>(node, &text, &|k, v| {
            step_list_errors(k, v, &text)
        }) {
            Ok(d) => d,
            Err(es) => {
                errors.extend(de_errors(file, es));
                check_good_steps(node, file, &text, errors);
                continue;
            }
        };
        // A test with errors is still returned (with the errors): the checks across files
        // then see it too.
        validate::check_test_doc(&mut Local::new(file, &text, errors), &doc, node);
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
            catch: StepList::of(&doc.catch, file),
            finally: StepList::of(&doc.finally, file),
            doc,
            labels,
        });
    }
    tests
}

/// The checks of the steps that parse, in a document that does not (so its good steps are
/// still checked).
fn check_good_steps(node: &YNode, file: &Path, text: &str, errors: &mut Vec<LoadError>) {
    let mut l = Local::new(file, text, errors);
    for key in STEP_LISTS {
        if let Some(YVal::Seq(steps)) = node.get(key).map(|n| &n.v) {
            for s in steps {
                if let Ok(step) = de::from_node::<Spanned<Step>>(s, text) {
                    validate::check_step(&mut l, &step, Some(s));
                }
            }
        }
    }
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
    // The suite's catch/finally steps for the tests that have none of their own.
    for t in &mut tests {
        if t.doc.catch.is_none() && doc.catch.is_some() {
            t.catch = StepList::of(&doc.catch, &file);
        }
        if t.doc.finally.is_none() && doc.finally.is_some() {
            t.finally = StepList::of(&doc.finally, &file);
        }
    }
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
    let (checked, ranks) = validate::check(&loaded.suites, None, loaded.ranks.clone());
    let mut errors = loaded.errors;
    errors.extend(checked);
    Err(finish_errors(errors, &ranks))
}

/// Load and validate: every error of every file, in file order. `extra_vars` are the names
/// given with `--var` (and profile variables).
pub fn load_checked(
    paths: &[PathBuf],
    extra_vars: &[String],
) -> Result<Vec<Suite>, Vec<LoadError>> {
    let loaded = load_all(paths);
    let (checked, ranks) = validate::check(&loaded.suites, Some(extra_vars), loaded.ranks.clone());
    let mut errors = loaded.errors;
    errors.extend(checked);
    if errors.is_empty() {
        return Ok(loaded.suites);
    }
    let errors = finish_errors(errors, &ranks);
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_exact_column() {
        let src = Source::new("a:\n  url: \"http://${host}/x\"\n  body: |\n    x ${y}\n".into());
        assert_eq!(
            src.find_from(Loc::new(2, 8), "${host}"),
            Some(Loc::new(2, 16))
        );
        assert_eq!(src.find_from(Loc::new(3, 9), "${y}"), Some(Loc::new(4, 7)));
        assert_eq!(src.find_from(Loc::new(4, 9), "${nope}"), None);
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("url: {}${{bad}}{}", "x".repeat(5000), "y".repeat(5000));
        let src = Source::new(format!("a: 1\n{line}\n"));
        let col = line.find("${bad}").unwrap() + 1;
        let snip = src.snippet(Loc::new(2, col as u32)).unwrap();
        assert!(snip.len() < 600, "{} bytes", snip.len());
        let lines: Vec<&str> = snip.lines().collect();
        assert_eq!(lines[0], "1 | a: 1");
        // The caret is under the `$` of the cut line.
        let caret = lines[2].find('^').unwrap();
        assert_eq!(lines[1][..].chars().nth(caret), Some('$'), "{snip}");
    }

    #[test]
    fn errors_are_capped_per_file_and_counted() {
        let dir =
            std::env::temp_dir().join(format!("gwtest-cap-{}", crate::util::random_suffix(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.test.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let other = dir.join("u.test.yaml");
        let mut errors: Vec<LoadError> = (0..1000)
            .map(|i| LoadError::new(&file, Loc::new(1, 1), format!("e{i}")))
            .collect();
        errors.push(LoadError::new(&other, Loc::UNKNOWN, "elsewhere"));
        let ranks = HashMap::from([(file.clone(), 0), (other.clone(), 1)]);
        let out = finish_errors(errors, &ranks);
        assert_eq!(out.len(), MAX_ERRORS_PER_FILE + 2);
        assert_eq!(error_count(&out), 1001);
        let more = &out[MAX_ERRORS_PER_FILE];
        assert_eq!(more.hidden, 1000 - MAX_ERRORS_PER_FILE);
        assert!(more.message.contains("950 more errors"), "{}", more.message);
        assert!(out[0].snippet.is_some());
        assert_eq!(out.last().unwrap().message, "elsewhere");
        let _ = std::fs::remove_dir_all(dir);
    }
}
