//! `gwtest validate`'s offline check of manifests against the CRDs gwtest knows: the embedded
//! Gateway API CRDs (gwtest-schema), every CRD among the suites' own manifests, and the files
//! given with `--crds`. Every fixture and every `apply` manifest (file or inline) whose content
//! holds no `${...}` goes through the engine the sandbox uses: unknown fields (as
//! `fieldValidation=Strict` reports them), the structural schema and every CEL rule. A
//! violation is an error at the offending field's line and column.
//!
//! Manifests with run-time variables are skipped (and counted); objects of kinds no known CRD
//! defines (built-ins such as Services) are not checked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use gwtest_schema::{Catalog, Cause, Lookup, structural, unknown_field};

use super::load::{LoadError, Suite};
use super::model::{Action, ApplyItem};
use super::spanned::{Loc, Node, Spanned};

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<LoadError>,
    /// Objects checked against a CRD's schema.
    pub checked: usize,
    /// Manifests not checked because they hold run-time variables.
    pub skipped: usize,
}

/// One manifest document and where it is.
struct Doc {
    file: PathBuf,
    node: Spanned<Node>,
}

/// Checks every manifest the suites apply. `crd_paths` are files or directories of YAML
/// holding more CRDs.
pub fn check(suites: &[Suite], crd_paths: &[PathBuf]) -> Report {
    let mut report = Report::default();
    let mut catalog = Catalog::with_gateway_api();
    for p in crd_paths {
        for file in yaml_files(p, &mut report.errors) {
            for doc in read_docs(&file, &mut report.errors) {
                add_crds(&mut catalog, &doc, &mut report.errors);
            }
        }
    }

    // Every manifest once, in suite order.
    let mut docs: Vec<Doc> = Vec::new();
    let mut files_seen: HashSet<PathBuf> = HashSet::new();
    let mut read = |file: PathBuf, docs: &mut Vec<Doc>, errors: &mut Vec<LoadError>| {
        if files_seen.insert(file.clone()) {
            docs.extend(read_docs(&file, errors));
        }
    };
    for suite in suites {
        let dir = suite.file.parent().unwrap_or(Path::new("."));
        for f in &suite.doc.fixtures {
            if !f.raw.contains("${") {
                read(dir.join(&f.raw), &mut docs, &mut report.errors);
            } else {
                report.skipped += 1;
            }
        }
        // A suite's catch/finally steps serve every test without its own: checked once.
        let mut steps_seen: HashSet<(&Path, Loc)> = HashSet::new();
        for test in &suite.tests {
            for (file, step) in test.all_steps() {
                let Action::Apply(spec) = &step.value.action else {
                    continue;
                };
                if !steps_seen.insert((file, step.loc)) {
                    continue;
                }
                let dir = file.parent().unwrap_or(Path::new("."));
                for item in &spec.0 {
                    match item {
                        ApplyItem::File(t) if t.raw.contains("${") => report.skipped += 1,
                        ApplyItem::File(t) => read(dir.join(&t.raw), &mut docs, &mut report.errors),
                        ApplyItem::Manifest(node) => docs.push(Doc {
                            file: file.to_path_buf(),
                            node: node.clone(),
                        }),
                    }
                }
            }
        }
    }

    // The suites' own CRDs first: the objects they define are checked against them.
    let mut objects: Vec<(&Doc, Vec<(Loc, &Node)>)> = Vec::new();
    for d in &docs {
        if has_variables(&d.node.value) {
            report.skipped += 1;
            continue;
        }
        add_crds(&mut catalog, d, &mut report.errors);
        objects.push((d, items(&d.node)));
    }
    for (d, items) in objects {
        for (loc, node) in items {
            check_object(&catalog, &d.file, loc, node, &mut report);
        }
    }
    finish(&mut report.errors);
    report
}

/// Duplicates out (a file applied by several tests), errors in file order (first seen) then
/// by position, capped per file, each shown one with its snippet (the loader's finishing).
fn finish(errors: &mut Vec<LoadError>) {
    let mut rank: HashMap<PathBuf, usize> = HashMap::new();
    for e in errors.iter() {
        let n = rank.len();
        rank.entry(e.file.clone()).or_insert(n);
    }
    *errors = super::load::finish_errors(std::mem::take(errors), &rank);
}

fn yaml_files(p: &Path, errors: &mut Vec<LoadError>) -> Vec<PathBuf> {
    if p.is_file() {
        return vec![p.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(p) else {
        errors.push(LoadError::new(
            p,
            Loc::UNKNOWN,
            "--crds: no such file or directory",
        ));
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.is_file()
                && f.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    files
}

fn read_docs(file: &Path, errors: &mut Vec<LoadError>) -> Vec<Doc> {
    // Missing files and YAML syntax are the loader's errors: nothing to add here.
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    match serde_saphyr::from_str_multiple::<Spanned<Node>, Vec<_>>(&text) {
        Ok(nodes) => nodes
            .into_iter()
            .filter(|n| !matches!(n.value, Node::Null))
            .map(|node| Doc {
                file: file.to_path_buf(),
                node,
            })
            .collect(),
        Err(e) => {
            let loc = e.location().map(Loc::from).unwrap_or(Loc::UNKNOWN);
            errors.push(LoadError::new(file, loc, e.without_snippet().to_string()));
            Vec::new()
        }
    }
}

fn has_variables(n: &Node) -> bool {
    let mut ts = Vec::new();
    n.templates(&mut ts);
    ts.iter().any(|t| t.raw.contains("${"))
}

/// The objects of a document: itself, or the items of a `kind: List`.
fn items(doc: &Spanned<Node>) -> Vec<(Loc, &Node)> {
    let is_list = doc.value.get("kind").and_then(scalar_str) == Some("List");
    match (is_list, doc.value.get("items")) {
        (true, Some(Node::Seq(items))) => items
            .iter()
            .map(|n| (node_loc(n).unwrap_or(doc.loc), n))
            .collect(),
        _ => vec![(doc.loc, &doc.value)],
    }
}

fn scalar_str(n: &Node) -> Option<&str> {
    match n {
        Node::Str(t) => Some(t.raw.as_str()),
        _ => None,
    }
}

fn add_crds(catalog: &mut Catalog, d: &Doc, errors: &mut Vec<LoadError>) {
    for (loc, node) in items(&d.node) {
        let obj = node.to_json();
        if Catalog::is_crd(&obj)
            && let Err(e) = catalog.add_crd(&obj)
        {
            errors.push(LoadError::new(&d.file, loc, format!("invalid CRD: {e}")));
        }
    }
}

fn check_object(catalog: &Catalog, file: &Path, loc: Loc, node: &Node, report: &mut Report) {
    let mut obj = node.to_json();
    let (Some(api_version), Some(kind)) = (
        obj.get("apiVersion")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        obj.get("kind").and_then(|v| v.as_str()).map(str::to_owned),
    ) else {
        return; // the loader reports manifests without apiVersion/kind
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned();
    let schema = match catalog.lookup(&api_version, &kind) {
        Lookup::Found(s) => s,
        Lookup::Unknown => return,
        Lookup::VersionNotServed { served } => {
            let at = node.get("apiVersion").and_then(node_loc).unwrap_or(loc);
            report.errors.push(LoadError::new(
                file,
                at,
                format!(
                    "{kind} {name}: {api_version} is not a served version of {kind} (served: {})",
                    served.join(", ")
                ),
            ));
            return;
        }
    };
    report.checked += 1;
    let what = format!("{kind} {name}");
    for path in structural::prune(schema.root(), &mut obj) {
        report.errors.push(LoadError::new(
            file,
            locate(node, &path).unwrap_or(loc),
            format!("{what}: {}", unknown_field(&path)),
        ));
    }
    structural::apply_defaults(schema.root(), &mut obj);
    for c in schema.validate(&obj, None, false) {
        if c == gwtest_schema::cause::rules_not_checked() {
            continue; // a note on the errors above, not a violation of its own
        }
        report.errors.push(LoadError::new(
            file,
            cause_loc(node, &c).unwrap_or(loc),
            format!("{what}: {}", c.render()),
        ));
    }
}

/// Where a cause points: its field, else the field named in a composite message
/// (`"spec.addresses[0]" must validate ...`).
fn cause_loc(node: &Node, c: &Cause) -> Option<Loc> {
    if c.field != "<nil>" {
        return locate(node, &c.field);
    }
    let quoted = c.message.split('"').nth(3)?;
    locate(node, quoted)
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// The location of the first thing in a node (a map's first key, a string), if it has one.
fn node_loc(n: &Node) -> Option<Loc> {
    match n {
        Node::Map(entries) => entries.first().map(|(k, _)| k.loc),
        Node::Str(t) => Some(t.loc).filter(Loc::is_known),
        Node::Seq(items) => items.iter().find_map(node_loc),
        _ => None,
    }
}

/// The location of the deepest part of `path` (`spec.rules[0].matches`) found in the node:
/// the key of a map entry, an item of a list.
fn locate(node: &Node, path: &str) -> Option<Loc> {
    let mut cur = node;
    let mut best = None;
    for seg in segments(path) {
        match (seg, cur) {
            (Seg::Key(k), Node::Map(entries)) => {
                let Some((key, v)) = entries.iter().find(|(key, _)| key.value == k) else {
                    break;
                };
                best = Some(key.loc);
                cur = v;
            }
            (Seg::Index(i), Node::Seq(items)) => {
                let Some(item) = items.get(i) else { break };
                best = node_loc(item).or(best);
                cur = item;
            }
            _ => break,
        }
    }
    // A scalar value: point at the value rather than its key.
    if let Node::Str(t) = cur
        && t.loc.is_known()
    {
        best = Some(t.loc);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_keys_and_indexes() {
        let s = segments("spec.rules[0].matches[12].path");
        let rendered: Vec<String> = s
            .iter()
            .map(|x| match x {
                Seg::Key(k) => k.to_string(),
                Seg::Index(i) => format!("#{i}"),
            })
            .collect();
        assert_eq!(rendered, ["spec", "rules", "#0", "matches", "#12", "path"]);
    }
}
