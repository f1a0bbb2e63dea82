//! Checks beyond the shape of the YAML: one action per step, keys that contradict each other,
//! selectors, URLs, names, variables (unknown, or captured only by a later step), files that
//! do not exist, duplicates. Every error names file:line:column with a snippet.
//!
//! Two kinds: checks of one document (`check_test_doc`, `check_suite_doc`), run by the loader
//! while it still has the YAML tree and so the location of every key; and checks across
//! documents and against the outside world (`validate`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::de::{did_you_mean, list};
use super::load::{LoadError, ReadError, Suite, Test, finish_errors};
use super::model::{
    Action, ApplyItem, AssertSpec, Collector, DeleteSpec, HeaderExpect, HttpExpect, PatchSpec,
    RETRY_KEYS, RequestSpec, ResourceRef, Selector, SpansSpec, Step, SuiteDoc, TestDoc, TextMatch,
    VarDef,
};
use super::selector::{check_label, is_dns_label, parse_label_selector};
use super::spanned::{
    CelExpr, Dur, JsonPathExpr, Loc, Node, PositiveDur, Spanned, SpannedMap, Template,
};
use super::vars::{self, BUILTINS};
use super::yaml::{self, YNode, YVal};

/// Validate loaded suites across documents. `extra_vars` are names given with `--var` (and
/// profile variables).
pub fn validate(suites: &[Suite], extra_vars: &[String]) -> Vec<LoadError> {
    validate_with(suites, Some(extra_vars))
}

/// Like `validate`; with `extra_vars: None` unknown variable names are not reported (the
/// `--var` names are not known), everything else is.
pub fn validate_with(suites: &[Suite], extra_vars: Option<&[String]>) -> Vec<LoadError> {
    let (errors, ranks) = check(suites, extra_vars, HashMap::new());
    finish_errors(errors, &ranks)
}

/// The errors of `validate_with`, not yet sorted, capped or given snippets, and the order of
/// the files they are in (`ranks`: the loader's file order, extended with manifests).
pub(crate) fn check(
    suites: &[Suite],
    extra_vars: Option<&[String]>,
    ranks: HashMap<PathBuf, usize>,
) -> (Vec<LoadError>, HashMap<PathBuf, usize>) {
    let mut c = Checker {
        ranks,
        ..Checker::default()
    };
    let mut suite_names: HashMap<&str, &Suite> = HashMap::new();
    for suite in suites {
        c.rank(&suite.file);
        if let Some(first) = suite_names.get(suite.name.as_str()) {
            let (loc, whence) = match &suite.doc.name {
                Some(n) => (n.loc, ""),
                None => (
                    Loc::new(suite.doc.api_version.loc.line, 1),
                    ", from the directory name",
                ),
            };
            c.push(
                &suite.file,
                loc,
                format!(
                    "duplicate suite name `{}`{whence} (also {}): give one of them another \
                     `name:`",
                    suite.name,
                    first.file.display()
                ),
            );
        } else {
            suite_names.insert(&suite.name, suite);
        }
        c.suite(suite, extra_vars);
    }
    (c.errors, c.ranks)
}

#[derive(Default)]
struct Checker {
    errors: Vec<LoadError>,
    ranks: HashMap<PathBuf, usize>,
    /// Manifests already checked for YAML syntax.
    manifests: HashSet<PathBuf>,
}

impl Checker {
    fn rank(&mut self, file: &Path) {
        let next = self.ranks.len();
        self.ranks.entry(file.to_path_buf()).or_insert(next);
    }

    fn push(&mut self, file: &Path, loc: Loc, message: String) {
        self.errors.push(LoadError::new(file, loc, message));
    }

    fn push_at(&mut self, file: &Path, loc: Loc, message: String, needle: String) {
        self.errors
            .push(LoadError::new(file, loc, message).at_needle(needle));
    }

    fn suite(&mut self, suite: &Suite, extra: Option<&[String]>) {
        let doc = &suite.doc;
        let strict = extra.is_some();
        let extra_names: Vec<&str> = extra
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        let (base, unavailable) = suite_level_names(doc, &extra_names);
        self.suite_vars(suite, &base, &unavailable, &extra_names, strict);
        self.fixtures(suite, &base, &unavailable, strict);

        // Tests see built-ins, every suite variable and --var, plus earlier captures.
        let mut test_known: HashSet<&str> = BUILTINS.into_iter().collect();
        test_known.extend(extra_names.iter().copied());
        test_known.extend(doc.vars.iter().map(|(k, _)| k.value.as_str()));
        self.diagnostics(suite, &test_known, strict);
        self.tests(suite, &test_known, strict);
        // The suite's catch/finally (for tests without their own) see what every test sees,
        // no capture: checked once, here.
        for list in [&doc.catch, &doc.finally].into_iter().flatten() {
            self.steps(&suite.file, list, &mut test_known.clone(), strict);
        }
    }

    /// Each suite variable sees the suite-level names and the variables above it (unless
    /// --var sets it: then its definition is never evaluated).
    fn suite_vars<'a>(
        &mut self,
        suite: &'a Suite,
        base: &HashSet<&'a str>,
        unavailable: &HashMap<String, String>,
        extra_names: &[&str],
        strict: bool,
    ) {
        let doc = &suite.doc;
        let mut known = base.clone();
        for (i, (name, def)) in doc.vars.iter().enumerate() {
            if extra_names.contains(&name.value.as_str()) {
                continue;
            }
            let mut later = unavailable.clone();
            for (n2, _) in doc.vars.iter().skip(i) {
                later.insert(
                    n2.value.clone(),
                    format!(
                        "suite variable `{}` is defined at line {}, after this one: a variable \
                         can only use the variables above it",
                        n2.value, n2.loc.line
                    ),
                );
            }
            let scope = Scope {
                known: &known,
                unavailable: &later,
                strict,
            };
            let mut ts = Vec::new();
            match def {
                VarDef::Value(node) => node.templates(&mut ts),
                VarDef::From(from) => resource_templates(&from.value.resource.value, &mut ts),
                VarDef::PortForward(pf) => {
                    let pf = &pf.value;
                    ts.extend(pf.service.iter().chain(&pf.pod).chain(&pf.namespace));
                }
            }
            for t in ts {
                self.template(&suite.file, t, &scope);
            }
            known.insert(name.value.as_str());
        }
    }

    /// Plain variables are expanded in order, before the fixtures; `from` variables are read
    /// from the cluster after the fixtures are applied. So fixtures see the suite-level names
    /// and the plain variables only.
    fn fixtures<'a>(
        &mut self,
        suite: &'a Suite,
        base: &HashSet<&'a str>,
        unavailable: &HashMap<String, String>,
        strict: bool,
    ) {
        let (file, doc) = (&suite.file, &suite.doc);
        let mut known = base.clone();
        known.extend(
            doc.vars
                .iter()
                .filter(|(_, d)| matches!(d, VarDef::Value(_)))
                .map(|(k, _)| k.value.as_str()),
        );
        let mut unavailable = unavailable.clone();
        for (k, d) in doc.vars.iter() {
            if d.from_cluster() && !known.contains(k.value.as_str()) {
                unavailable.insert(
                    k.value.clone(),
                    format!(
                        "`{}` is read from the cluster once the fixtures are applied: fixtures \
                         cannot use it",
                        k.value
                    ),
                );
            }
        }
        let scope = Scope {
            known: &known,
            unavailable: &unavailable,
            strict,
        };
        for f in &doc.fixtures {
            self.template(file, f, &scope);
            self.file_ref(file, f, true);
        }
    }

    /// Diagnostics run for a failed test try: they see what its steps see.
    fn diagnostics(&mut self, suite: &Suite, known: &HashSet<&str>, strict: bool) {
        let no_later = HashMap::new();
        let scope = Scope {
            known,
            unavailable: &no_later,
            strict,
        };
        for c in &suite.doc.diagnostics {
            let mut ts = Vec::new();
            collector_templates(&c.value, &mut ts);
            for t in ts {
                self.template(&suite.file, t, &scope);
            }
        }
    }

    /// The suite's tests: unique names, and each test's steps.
    fn tests(&mut self, suite: &Suite, known: &HashSet<&str>, strict: bool) {
        let mut names: HashMap<&str, &Test> = HashMap::new();
        for test in &suite.tests {
            self.rank(&test.file);
            if let Some(first) = names.get(test.name.as_str()) {
                self.push(
                    &test.file,
                    test.doc.name.loc,
                    format!(
                        "duplicate test name `{}` (also {}:{}): test names must be unique in a \
                         suite",
                        test.name,
                        first.file.display(),
                        first.doc.name.loc
                    ),
                );
            } else {
                names.insert(&test.name, test);
            }
            self.test(test, known, strict);
        }
    }

    fn test(&mut self, test: &Test, known: &HashSet<&str>, strict: bool) {
        let mut known = known.clone();
        self.steps(&test.file, &test.doc.steps, &mut known, strict);
        // `catch` and `finally` run after the steps: the steps' captures are known to them (one
        // the steps never reached, because an earlier one failed, is a run-time error).
        for own in [&test.doc.catch, &test.doc.finally].into_iter().flatten() {
            self.steps(&test.file, own, &mut known.clone(), strict);
        }
    }

    /// A list of steps in order: variables (a capture is known to the steps after it), files.
    fn steps<'a>(
        &mut self,
        file: &Path,
        steps: &'a [Spanned<Step>],
        known: &mut HashSet<&'a str>,
        strict: bool,
    ) {
        // Every capture and the step that makes it.
        let captures: Vec<(usize, &Spanned<String>)> = steps
            .iter()
            .enumerate()
            .flat_map(|(i, s)| captures_of(&s.value).into_iter().map(move |k| (i, k)))
            .collect();
        for (i, step) in steps.iter().enumerate() {
            let mut later: HashMap<String, String> = HashMap::new();
            for (j, k) in captures.iter().filter(|(j, _)| *j >= i) {
                if known.contains(k.value.as_str()) {
                    continue;
                }
                let msg = if *j == i {
                    format!(
                        "`${{{}}}` is captured by this same step: a capture can only be used by \
                         the steps after it",
                        k.value
                    )
                } else {
                    format!(
                        "`${{{}}}` is captured by a later step (line {}): a capture can only be \
                         used by the steps after it",
                        k.value, k.loc.line
                    )
                };
                later.entry(k.value.clone()).or_insert(msg);
            }
            let scope = Scope {
                known,
                unavailable: &later,
                strict,
            };
            let mut ts = Vec::new();
            step_templates(&step.value, &mut ts);
            for t in ts {
                self.template(file, t, &scope);
            }
            match &step.value.action {
                Action::Apply(a) => {
                    for item in &a.0 {
                        if let ApplyItem::File(t) = item {
                            self.file_ref(file, t, true);
                        }
                    }
                }
                Action::Request(r) => {
                    if let Some(ca) = &r.ca {
                        self.file_ref(file, ca, false);
                    }
                }
                _ => {}
            }
            for (_, k) in captures.iter().filter(|(j, _)| *j == i) {
                known.insert(k.value.as_str());
            }
        }
    }

    /// `${...}` syntax, and names that cannot be known at run time.
    fn template(&mut self, file: &Path, t: &Template, scope: &Scope) {
        if !t.raw.contains("${") {
            return;
        }
        let names = match vars::references(&t.raw) {
            Ok(n) => n,
            Err(msg) => {
                self.push_at(file, t.loc, msg, "${".into());
                return;
            }
        };
        if !scope.strict {
            return;
        }
        for name in names {
            if scope.known.contains(name) {
                continue;
            }
            let needle = format!("${{{name}}}");
            let msg = if let Some(var) = name.strip_prefix("env.") {
                if std::env::var_os(var).is_some() {
                    continue;
                }
                format!(
                    "environment variable {var} is not set (used as `${{env.{var}}}`): set it \
                     before running gwtest"
                )
            } else if let Some(why) = scope.unavailable.get(name) {
                why.clone()
            } else {
                let hint = did_you_mean(name, scope.known.iter().copied())
                    .map(|c| format!(" (did you mean `${{{c}}}`?)"))
                    .unwrap_or_default();
                format!(
                    "unknown variable `{needle}`{hint}: expected a built-in ({}), a suite \
                     variable, a --var or a capture of an earlier step",
                    BUILTINS.join(", ")
                )
            };
            self.push_at(file, t.loc, msg, needle);
        }
    }

    /// A path relative to `file` must exist (unless it holds a variable); manifests must be
    /// valid YAML.
    fn file_ref(&mut self, file: &Path, t: &Template, manifest: bool) {
        if t.raw.contains("${") {
            return;
        }
        let path = file.parent().unwrap_or(Path::new(".")).join(&t.raw);
        if !path.exists() {
            self.push(
                file,
                t.loc,
                format!(
                    "file not found: {} (paths are relative to the file that names them)",
                    crate::util::shown_path(&path)
                ),
            );
            return;
        }
        if manifest && path.is_file() && self.manifests.insert(path.clone()) {
            let ranked = self.ranks.get(file).copied().unwrap_or(usize::MAX);
            match super::load::read_text(&path) {
                Ok(text) => {
                    if let Err(e) = yaml::parse_documents(&text) {
                        self.ranks.entry(path.clone()).or_insert(ranked);
                        self.errors.push(LoadError::new(&path, e.loc, e.message));
                    }
                }
                Err(ReadError::NotUtf8(loc, msg)) => {
                    self.ranks.entry(path.clone()).or_insert(ranked);
                    self.errors.push(LoadError::new(&path, loc, msg));
                }
                Err(ReadError::Io(e)) => self.push(
                    file,
                    t.loc,
                    format!("cannot read {}: {e}", crate::util::shown_path(&path)),
                ),
            }
        }
    }
}

/// The names suite.yaml can use, set once per suite before any test (the run's, --var, and
/// `namespace` unless each test has its own), and the per-test names it cannot, with why.
fn suite_level_names<'a>(
    doc: &SuiteDoc,
    extra_names: &[&'a str],
) -> (HashSet<&'a str>, HashMap<String, String>) {
    let per_test = doc.namespace.as_ref().is_none_or(|n| n.value == "per-test");
    let mut base: HashSet<&str> = ["run", "suite", "kubeconfig", "otlp.grpc", "otlp.http"]
        .into_iter()
        .chain(extra_names.iter().copied())
        .collect();
    if !per_test {
        base.insert("namespace");
    }
    let mut unavailable: HashMap<String, String> = HashMap::new();
    for n in ["test", "unique", "namespace"] {
        if !base.contains(n) {
            unavailable.insert(
                n.into(),
                format!(
                    "`${{{n}}}` is per test: it cannot be used in suite.yaml, whose variables \
                     and fixtures are set up once for the whole suite"
                ),
            );
        }
    }
    (base, unavailable)
}

struct Scope<'a> {
    known: &'a HashSet<&'a str>,
    /// Names that exist but not here, with the reason.
    unavailable: &'a HashMap<String, String>,
    /// Report unknown names (false when the --var names are not known).
    strict: bool,
}

fn captures_of(step: &Step) -> Vec<&Spanned<String>> {
    match &step.action {
        Action::Assert(a) => a.capture.iter().map(|(k, _)| k).collect(),
        Action::Request(r) => r.capture.iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

fn resource_templates<'a>(r: &'a ResourceRef, out: &mut Vec<&'a Template>) {
    out.push(&r.api_version);
    out.push(&r.kind);
    out.extend(&r.name);
    out.extend(&r.namespace);
    match &r.selector {
        Some(Selector::Expr(t)) => out.push(t),
        Some(Selector::Labels(m)) => out.extend(m.iter().map(|(_, v)| v)),
        None => {}
    }
}

fn collector_templates<'a>(c: &'a Collector, out: &mut Vec<&'a Template>) {
    if let Some(l) = &c.logs {
        out.extend(l.namespace.iter().chain(&l.container));
        match &l.selector {
            Some(Selector::Expr(t)) => out.push(t),
            Some(Selector::Labels(m)) => out.extend(m.iter().map(|(_, v)| v)),
            None => {}
        }
    }
    if let Some(e) = &c.events {
        out.extend(&e.namespace);
    }
    if let Some(g) = &c.get {
        resource_templates(g, out);
    }
    if let Some(x) = &c.exec {
        out.extend(x.command.value.iter());
        out.extend(x.env.iter().map(|(_, v)| v));
    }
}

fn text_templates<'a>(m: &'a TextMatch, out: &mut Vec<&'a Template>) {
    out.extend(&m.equals);
    out.extend(&m.contains);
    if let Some(p) = &m.matches {
        out.push(&p.template);
    }
}

/// Every string of a step that may hold `${...}`.
pub fn step_templates<'a>(step: &'a Step, out: &mut Vec<&'a Template>) {
    match &step.action {
        Action::Apply(a) => {
            for item in &a.0 {
                match item {
                    ApplyItem::File(t) => out.push(t),
                    ApplyItem::Manifest(n) => n.value.templates(out),
                }
            }
        }
        Action::Assert(a) => {
            resource_templates(&a.resource.value, out);
            for c in &a.conditions {
                out.push(&c.value.type_);
                out.push(&c.value.status);
                out.extend(&c.value.reason);
            }
            if let Some(f) = &a.fields {
                f.value.templates(out);
            }
            out.extend(a.cel.iter().map(|c| &c.template));
        }
        Action::Request(r) => {
            out.extend(&r.method);
            out.push(&r.url);
            out.extend(r.headers.iter().map(|(_, v)| v));
            if let Some(b) = &r.body {
                b.value.templates(out);
            }
            out.extend(&r.ca);
            if let Some(e) = &r.expect {
                for (_, h) in e.headers.iter() {
                    match h {
                        HeaderExpect::Exact(t) => out.push(t),
                        HeaderExpect::Matches(p) => out.push(&p.template),
                    }
                }
                out.extend(&e.absent_headers);
                if let Some(b) = &e.body {
                    text_templates(b, out);
                }
                for (_, v) in e.json.iter() {
                    v.templates(out);
                }
                out.extend(e.cel.iter().map(|c| &c.template));
            }
        }
        Action::Spans(s) => {
            out.extend(&s.service);
            for e in &s.expect {
                out.extend(&e.value.name);
                if let Some(p) = &e.value.name_matches {
                    out.push(&p.template);
                }
                for (_, v) in e.value.attributes.iter() {
                    v.templates(out);
                }
                out.extend(&e.value.parent);
                out.extend(e.value.cel.iter().map(|c| &c.template));
            }
            out.extend(&s.absent);
        }
        Action::Patch(p) => {
            resource_templates(&p.resource.value, out);
            p.merge.value.templates(out);
        }
        Action::Delete(d) => resource_templates(&d.resource.value, out),
        Action::Exec(e) => {
            out.extend(e.command.value.iter());
            out.extend(e.env.iter().map(|(_, v)| v));
            if let Some(x) = &e.expect {
                if let Some(m) = &x.stdout {
                    text_templates(m, out);
                }
                if let Some(m) = &x.stderr {
                    text_templates(m, out);
                }
            }
        }
        Action::Sleep(_) | Action::Pause(_) => {}
    }
}

// ---------------------------------------------------------------------------------------
// checks of one document, with the YAML tree for the location of every key

/// Where the checks of one document report: its file, its text and the loader's error list.
pub(crate) struct Local<'a> {
    file: &'a Path,
    text: &'a str,
    errors: &'a mut Vec<LoadError>,
}

impl<'a> Local<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str, errors: &'a mut Vec<LoadError>) -> Self {
        Local { file, text, errors }
    }

    fn err(&mut self, loc: Loc, msg: impl Into<String>) {
        self.errors.push(LoadError::new(self.file, loc, msg));
    }
}

/// The location of the key at `path` under `node` (or of the deepest key found, or `fallback`).
fn key_loc(node: Option<&YNode>, path: &[&str], fallback: Loc) -> Loc {
    let mut loc = fallback;
    let mut cur = node;
    for k in path {
        match cur.and_then(|n| n.entry(k)) {
            Some((key, value)) => {
                loc = key.loc;
                cur = Some(value);
            }
            None => break,
        }
    }
    loc
}

/// The part of a namespace a test name gives (`gwtest-<this>-xxxxxx`).
pub fn namespace_part(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn var_name_problem(name: &str) -> Option<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Some(format!(
            "invalid variable name {}: use letters, digits, `_`, `-` and `.`",
            crate::util::quoted(name)
        ));
    }
    if BUILTINS.contains(&name) {
        return Some(format!(
            "`{name}` is a built-in variable: choose another name (built-ins: {})",
            BUILTINS.join(", ")
        ));
    }
    if name.starts_with("env.") {
        return Some(format!(
            "`{name}`: names starting with `env.` read the environment; choose another name"
        ));
    }
    None
}

fn check_labels(l: &mut Local, node: Option<&YNode>) {
    let Some(YVal::Seq(items)) = node.map(|n| &n.v) else {
        return;
    };
    for item in items {
        let text = item.scalar_text(l.text).unwrap_or_default();
        if text.is_empty()
            || text.starts_with('!')
            || text.contains(|c: char| c == ',' || c.is_whitespace())
        {
            l.err(
                item.loc,
                format!(
                    "invalid label {}: a label is a word without spaces or commas, not \
                     starting with `!` (used by --label L and --label '!L')",
                    crate::util::quoted(&text)
                ),
            );
        }
    }
}

/// Checks of one test document (the loader calls this with the document's YAML tree).
pub(crate) fn check_test_doc(l: &mut Local, doc: &TestDoc, node: &YNode) {
    if namespace_part(&doc.name.value).is_empty() {
        l.err(
            doc.name.loc,
            format!(
                "test name {} cannot make a namespace: it needs at least one letter or digit \
                 (tests run in namespace gwtest-<name>-xxxxxx)",
                crate::util::quoted(&doc.name.value)
            ),
        );
    }
    check_labels(l, node.get("labels"));
    if doc.steps.is_empty() {
        l.err(
            key_loc(Some(node), &["steps"], node.loc),
            "a test needs at least one step",
        );
    }
    check_steps(l, node, "steps", &doc.steps);
    for (key, list) in [("catch", &doc.catch), ("finally", &doc.finally)] {
        if let Some(list) = list {
            check_steps(l, node, key, list);
        }
    }
}

/// The checks of each step of the list under `key` of a document.
fn check_steps(l: &mut Local, node: &YNode, key: &str, steps: &[Spanned<Step>]) {
    let step_nodes: &[YNode] = match node.get(key).map(|n| &n.v) {
        Some(YVal::Seq(items)) => items,
        _ => &[],
    };
    for (i, step) in steps.iter().enumerate() {
        check_step(l, step, step_nodes.get(i));
    }
}

/// The checks of one step; `node` is its YAML map, for the location of its keys.
pub(crate) fn check_step(l: &mut Local, step: &Spanned<Step>, node: Option<&YNode>) {
    let s = &step.value;
    let kind = s.kind();
    check_retry_keys(l, step, node);
    check_interval_order(
        l,
        s.interval,
        s.max_interval,
        key_loc(node, &["max-interval"], step.loc),
    );
    match &s.action {
        Action::Apply(a) => {
            for item in &a.0 {
                if let ApplyItem::Manifest(m) = item {
                    check_manifest(l, m);
                }
            }
        }
        Action::Assert(a) => check_assert(l, a, node.and_then(|n| n.get(kind))),
        Action::Request(r) => check_request(l, r),
        Action::Spans(sp) => check_spans(l, sp, key_loc(node, &[kind], step.loc)),
        Action::Patch(p) => check_patch(l, p),
        Action::Delete(d) => check_delete(l, d),
        Action::Exec(e) => check_env_names(l, &e.env),
        Action::Sleep(_) | Action::Pause(_) => {}
    }
}

/// Whether the step sets the retry key `key` (one of [`RETRY_KEYS`]).
fn retry_key_given(s: &Step, key: &str) -> bool {
    match key {
        "timeout" => s.timeout.is_some(),
        "interval" => s.interval.is_some(),
        "max-interval" => s.max_interval.is_some(),
        "consecutive" => s.consecutive.is_some(),
        "hold" => s.hold.is_some(),
        _ => false,
    }
}

/// Retry keys on a step that never retries what they tune.
fn check_retry_keys(l: &mut Local, step: &Spanned<Step>, node: Option<&YNode>) {
    let s = &step.value;
    let kind = s.kind();
    let assertion = s.action.is_assertion();
    for k in RETRY_KEYS {
        if !retry_key_given(s, k) {
            continue;
        }
        let pointless = match kind {
            "sleep" | "pause" => true,
            _ => !assertion && matches!(k, "consecutive" | "hold"),
        };
        if pointless {
            let what = if kind == "exec" {
                "an `exec` without `expect` runs once".to_string()
            } else {
                let a = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("this step is {a} `{kind}`")
            };
            l.err(
                key_loc(node, &[k], step.loc),
                format!(
                    "`{k}` only applies to assertions (assert, request, spans, exec with \
                     expect): {what}"
                ),
            );
        }
    }
}

/// `max-interval` below `interval` (of a step, or of a suite's defaults at `loc`).
fn check_interval_order(
    l: &mut Local,
    interval: Option<PositiveDur>,
    max_interval: Option<PositiveDur>,
    loc: Loc,
) {
    if let (Some(i), Some(m)) = (interval, max_interval)
        && m < i
    {
        let (m, i) = (Dur::from(m), Dur::from(i));
        l.err(
            loc,
            format!("max-interval ({m}) is shorter than interval ({i}): the delay only grows"),
        );
    }
}

fn check_request(l: &mut Local, r: &RequestSpec) {
    if let Some(m) = &r.method {
        check_method(l, m);
    }
    check_url(l, &r.url);
    if let (Some(ca), true) = (&r.ca, r.insecure) {
        l.err(
            ca.loc,
            "`ca` and `insecure: true` contradict each other: `insecure` accepts any \
             certificate; keep one",
        );
    }
    for (k, v) in r.headers.iter() {
        check_header_name(l, k);
        if !v.raw.contains("${") && http::HeaderValue::from_str(&v.raw).is_err() {
            l.err(
                v.loc,
                format!(
                    "invalid header value {}: no control characters or line breaks",
                    crate::util::quoted(&v.raw)
                ),
            );
        }
    }
    if let Some(e) = &r.expect {
        check_http_expect(l, e);
    }
    check_capture_names(l, r.capture.iter().map(|(k, _)| k));
}

fn check_http_expect(l: &mut Local, e: &HttpExpect) {
    for (k, _) in e.headers.iter() {
        check_header_name(l, k);
    }
    for h in &e.absent_headers {
        check_header_name(l, &Spanned::new(h.raw.clone(), h.loc));
    }
    for (k, _) in e.json.iter() {
        if let Err(msg) = JsonPathExpr::parse(&k.value, k.loc) {
            l.err(
                k.loc,
                format!("{msg}: `json` keys are JSONPaths such as $.path"),
            );
        }
    }
    check_cel(l, &e.cel, CelScope::Response);
}

/// `loc`: where the step's `spans` key is.
fn check_spans(l: &mut Local, sp: &SpansSpec, loc: Loc) {
    if sp.expect.is_empty() && sp.absent.is_empty() {
        l.err(
            loc,
            "a spans step checks nothing: give `expect` (spans that must be there) \
             and/or `absent` (names that must not)",
        );
    }
    for e in &sp.expect {
        match (&e.value.name, &e.value.name_matches) {
            (Some(_), Some(_)) => l.err(e.loc, "give `name` or `name-matches`, not both"),
            (None, None) => l.err(
                e.loc,
                "a span expectation needs `name` (exact) or `name-matches` (a regex)",
            ),
            _ => {}
        }
        check_cel(l, &e.value.cel, CelScope::Span);
    }
}

fn check_patch(l: &mut Local, p: &PatchSpec) {
    check_resource(l, &p.resource, ResourceUse::One("patch"));
    if !matches!(p.merge.value, Node::Map(_)) {
        l.err(
            p.merge.loc,
            "`merge` must be a map: a JSON merge patch such as {metadata: {labels: {a: b}}}",
        );
    }
}

fn check_delete(l: &mut Local, d: &DeleteSpec) {
    check_resource(l, &d.resource, ResourceUse::NameOrSelector);
    // An empty selector selects every object of the kind: never a delete's intent.
    let empty = match &d.resource.value.selector {
        Some(Selector::Labels(m)) => m.is_empty(),
        Some(Selector::Expr(t)) => t.raw.trim().is_empty(),
        None => false,
    };
    if empty {
        l.err(
            d.resource.loc,
            "delete with an empty selector would delete every object of the kind: \
             give labels to select, or a name",
        );
    }
}

/// An exec step's `env` names.
fn check_env_names(l: &mut Local, env: &SpannedMap<Template>) {
    for (k, _) in env.iter() {
        if k.value.is_empty() || k.value.contains(['=', '\0']) {
            l.err(
                k.loc,
                format!(
                    "invalid environment variable name {}: no `=` and not empty",
                    crate::util::quoted(&k.value)
                ),
            );
        }
    }
}

fn check_manifest(l: &mut Local, m: &Spanned<Node>) {
    let has = |path: &[&str]| {
        let mut n = Some(&m.value);
        for k in path {
            n = n.and_then(|n| n.get(k));
        }
        n.is_some()
    };
    let mut missing = Vec::new();
    for (path, name) in [(&["apiVersion"][..], "apiVersion"), (&["kind"][..], "kind")] {
        if !has(path) {
            missing.push(name);
        }
    }
    // Server-side apply needs a name (generateName can't be applied, and gwtest tracks
    // objects by name).
    if !has(&["metadata", "name"]) {
        missing.push("metadata.name");
    }
    if !missing.is_empty() {
        l.err(
            m.loc,
            format!(
                "the inline manifest has no {}: a Kubernetes object needs apiVersion, kind and \
                 metadata.name",
                list(&missing)
            ),
        );
    }
}

enum ResourceUse {
    /// Exactly one object, by name (the action's key for messages).
    One(&'static str),
    NameOrSelector,
    /// One object, the objects of a selector, or every object of the kind.
    Any,
}

fn check_resource(l: &mut Local, r: &Spanned<ResourceRef>, use_: ResourceUse) {
    let res = &r.value;
    match (&res.name, &res.selector, use_) {
        (Some(_), Some(_), _) => l.err(
            r.loc,
            "give `name` (one object) or `selector` (objects with labels), not both",
        ),
        (None, None, ResourceUse::NameOrSelector) => l.err(
            r.loc,
            "the resource needs `name` (one object) or `selector` (objects with labels)",
        ),
        (_, Some(_), ResourceUse::One(what)) | (None, None, ResourceUse::One(what)) => l.err(
            r.loc,
            format!("{what} needs the resource's `name`: it works on one object"),
        ),
        _ => {}
    }
    check_selector(l, &res.selector);
}

fn check_selector(l: &mut Local, selector: &Option<Selector>) {
    match selector {
        Some(Selector::Expr(t)) if !t.raw.contains("${") => {
            if let Err(e) = parse_label_selector(&t.raw) {
                l.err(t.loc, format!("invalid selector: {e}"));
            }
        }
        Some(Selector::Labels(m)) => {
            for (k, v) in m.iter() {
                if k.value.contains("${") || v.raw.contains("${") {
                    continue;
                }
                if let Err(e) = check_label(&k.value, &v.raw) {
                    l.err(k.loc, format!("invalid selector: {e}"));
                }
            }
        }
        _ => {}
    }
}

fn check_assert(l: &mut Local, a: &AssertSpec, node: Option<&YNode>) {
    check_resource(l, &a.resource, ResourceUse::NameOrSelector);
    if a.count.is_some() && a.resource.value.selector.is_none() {
        l.err(
            key_loc(node, &["count"], a.resource.loc),
            "`count` needs `selector`: with `name` there is exactly one object",
        );
    }
    if a.absent {
        let mut clash = Vec::new();
        if !a.conditions.is_empty() {
            clash.push("conditions");
        }
        if a.fields.is_some() {
            clash.push("fields");
        }
        if !a.capture.is_empty() {
            clash.push("capture");
        }
        if a.count.is_some() {
            clash.push("count");
        }
        if !a.cel.is_empty() {
            clash.push("cel");
        }
        if !clash.is_empty() {
            l.err(
                key_loc(node, &["absent"], a.resource.loc),
                format!(
                    "`absent: true` contradicts {}: an object that must not exist has no \
                     conditions or fields; use a separate step",
                    list(&clash)
                ),
            );
        }
    }
    check_capture_names(l, a.capture.iter().map(|(k, _)| k));
    check_cel(l, &a.cel, CelScope::Object);
}

/// What a `cel:` expression can read where it is written.
#[derive(Clone, Copy)]
enum CelScope {
    Object,
    Response,
    Span,
}

impl CelScope {
    fn variable(self) -> &'static str {
        match self {
            CelScope::Object => "self",
            CelScope::Response => "response",
            CelScope::Span => "span",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CelScope::Object => "an assert's expressions see the object as `self`",
            CelScope::Response => {
                "a request's expressions see `response` (status, headers, body, json)"
            }
            CelScope::Span => {
                "a span expectation's expressions see `span` (name, kind, attributes, status, \
                 parent)"
            }
        }
    }
}

/// Every variable a `cel:` expression reads must exist where it runs (a compiled
/// expression; one with `${...}` is checked after substitution, at run time).
fn check_cel(l: &mut Local, exprs: &[CelExpr], scope: CelScope) {
    for e in exprs {
        let Some(program) = &e.compiled else { continue };
        for v in crate::matching::cel::unknown_variables(program, &[scope.variable()]) {
            let why = if v == "oldSelf" {
                "`oldSelf` is for transition rules of a CRD; an assert has no previous object"
                    .to_string()
            } else {
                format!("unknown variable `{v}`")
            };
            l.err(
                e.template.loc,
                format!(
                    "{why} in CEL expression {}: {}",
                    crate::util::quoted(&e.template.raw),
                    scope.describe()
                ),
            );
        }
    }
}

fn check_capture_names<'a>(l: &mut Local, names: impl Iterator<Item = &'a Spanned<String>>) {
    for k in names {
        if let Some(p) = var_name_problem(&k.value) {
            l.err(k.loc, format!("capture: {p}"));
        }
    }
}

fn check_method(l: &mut Local, m: &Template) {
    if m.raw.contains("${") {
        return;
    }
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let token = !m.raw.is_empty()
        && m.raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        l.err(
            m.loc,
            format!(
                "invalid HTTP method {}: expected a token such as GET, POST or PUT",
                crate::util::quoted(&m.raw)
            ),
        );
    } else if !STANDARD.contains(&m.raw.as_str())
        && STANDARD.contains(&m.raw.to_ascii_uppercase().as_str())
    {
        l.err(
            m.loc,
            format!(
                "HTTP methods are case-sensitive: write {} instead of {}",
                m.raw.to_ascii_uppercase(),
                crate::util::quoted(&m.raw)
            ),
        );
    }
}

fn check_url(l: &mut Local, u: &Template) {
    if u.raw.contains("${") {
        return;
    }
    let problem = match reqwest::Url::parse(&u.raw) {
        Err(e) => Some(e.to_string()),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(format!("scheme `{}` is not http or https", url.scheme()))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Some("no host".into()),
        Ok(_) => None,
    };
    if let Some(p) = problem {
        l.err(
            u.loc,
            format!(
                "invalid URL {} ({p}): expected an absolute http:// or https:// URL",
                crate::util::quoted(&u.raw)
            ),
        );
    }
}

fn check_header_name(l: &mut Local, k: &Spanned<String>) {
    if k.value.contains("${") {
        return;
    }
    if http::HeaderName::from_bytes(k.value.as_bytes()).is_err() {
        l.err(
            k.loc,
            format!(
                "invalid header name {}: letters, digits and !#$%&'*+-.^_`|~ only",
                crate::util::quoted(&k.value)
            ),
        );
    }
}

/// Checks of suite.yaml (the loader calls this with the document's YAML tree).
pub(crate) fn check_suite_doc(l: &mut Local, doc: &SuiteDoc, node: &YNode) {
    if let Some(n) = &doc.name
        && n.value.trim().is_empty()
    {
        l.err(
            n.loc,
            "the suite name is empty: remove `name` to use the directory name",
        );
    }
    if let Some(ns) = &doc.namespace {
        let v = ns.value.as_str();
        if !matches!(v, "per-test" | "per-suite") && !is_dns_label(v) {
            let hint = did_you_mean(v, ["per-test", "per-suite"])
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            l.err(
                ns.loc,
                format!(
                    "invalid namespace {qv}{hint}: expected `per-test`, `per-suite` or the name \
                     of a namespace (a DNS-1123 label: lowercase letters, digits and `-`, at \
                     most 63)",
                    qv = crate::util::quoted(v)
                ),
            );
        }
    }
    check_labels(l, node.get("labels"));
    for (key, list) in [("catch", &doc.catch), ("finally", &doc.finally)] {
        if let Some(list) = list {
            check_steps(l, node, key, list);
        }
    }
    for (k, def) in doc.vars.iter() {
        if let Some(p) = var_name_problem(&k.value) {
            l.err(k.loc, format!("suite variable: {p}"));
        }
        if let VarDef::From(from) = def {
            check_resource(
                l,
                &from.value.resource,
                ResourceUse::One("a variable `from`"),
            );
        }
        if let VarDef::PortForward(pf) = def
            && pf.value.namespace.is_none()
            && doc.namespace.as_ref().is_none_or(|n| n.value == "per-test")
        {
            l.err(
                pf.loc,
                "port-forward needs `namespace`: the suite has no namespace of its own to \
                 default to (`namespace: per-test`), and the forward is set up once for the suite",
            );
        }
    }
    for c in &doc.diagnostics {
        if let Some(g) = &c.value.get {
            let r = Spanned::new(g.clone(), c.loc);
            check_resource(l, &r, ResourceUse::Any);
        }
        if let Some(logs) = &c.value.logs {
            check_selector(l, &logs.selector);
        }
    }
    check_interval_order(
        l,
        doc.defaults.interval,
        doc.defaults.max_interval,
        key_loc(Some(node), &["defaults", "max-interval"], node.loc),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_parts() {
        for (name, part) in [
            ("Spec Preserved!", "spec-preserved"),
            ("a__b", "a-b"),
            ("日本", ""),
            ("--", ""),
        ] {
            assert_eq!(namespace_part(name), part, "{name:?}");
        }
    }
}
