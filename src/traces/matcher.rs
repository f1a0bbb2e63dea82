//! Span matching: a `spans` expectation (variables already substituted) against a selection
//! of the span store. One call is one attempt of the retry engine; a failure says what was
//! seen so nobody has to open a tracing UI to know why.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::store::{Seen, Selection, Snapshot, SpanStatus, SpanStore};
use crate::engine::hex;
use crate::engine::retry::{Class, Miss, Section, SectionKind};
use crate::matching::{self, cel};
use crate::suite::model::SpanKind;
use crate::util::truncate;

/// How a span's name is matched.
#[derive(Clone, Debug)]
pub enum NameMatch {
    Exact(String),
    Regex(regex::Regex),
}

impl NameMatch {
    pub fn is_match(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(n) => n == name,
            NameMatch::Regex(r) => r.is_match(name),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            NameMatch::Exact(n) => format!("{n:?}"),
            NameMatch::Regex(r) => format!("matching /{}/", r.as_str()),
        }
    }
}

/// One `expect` entry, resolved.
#[derive(Clone, Debug)]
pub struct ExpectedSpan {
    pub name: NameMatch,
    pub kind: Option<SpanKind>,
    /// Attribute name -> expected value (typed; `null` means "must not be set").
    pub attributes: Vec<(String, Value)>,
    /// Exactly this many; `None` is "at least one".
    pub count: Option<u32>,
    /// The parent span's name.
    pub parent: Option<String>,
    /// `cel:` expressions over `span`; a span matches when every one is true.
    pub cel: Vec<cel::Check>,
}

impl ExpectedSpan {
    pub fn describe(&self) -> String {
        let mut s = self.name.describe();
        let mut extra = Vec::new();
        if let Some(k) = self.kind {
            extra.push(k.as_str().to_string());
        }
        for (k, v) in &self.attributes {
            extra.push(format!("{k}={}", matching::short(v)));
        }
        if let Some(n) = self.count {
            extra.push(format!("exactly {n}"));
        }
        if !extra.is_empty() {
            let _ = write!(s, " ({})", extra.join(", "));
        }
        if let Some(p) = &self.parent {
            let _ = write!(s, " under {p:?}");
        }
        for c in &self.cel {
            let _ = write!(s, " where `{}`", c.source);
        }
        s
    }
}

/// A `spans` step with every variable substituted.
#[derive(Clone, Debug, Default)]
pub struct SpanQuery {
    /// The resource attribute `service.name` every considered span must have.
    pub service: Option<String>,
    pub expect: Vec<ExpectedSpan>,
    /// Names that must not appear.
    pub absent: Vec<String>,
}

impl SpanQuery {
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.expect.iter().map(ExpectedSpan::describe).collect();
        for a in &self.absent {
            parts.push(format!("no span {a:?}"));
        }
        if parts.is_empty() {
            parts.push("at least one span".into());
        }
        let mut s = parts.join("; ");
        if let Some(svc) = &self.service {
            s = format!("from service {svc:?}: {s}");
        }
        s
    }
}

/// What a passing check saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// Spans in the selection (before the service filter).
    pub spans: usize,
}

/// A failure of one expectation, before they are folded into one `Miss`.
struct Problem {
    class: Class,
    summary: String,
    detail: String,
    extra: Option<Section>,
}

impl Problem {
    fn new(class: Class, summary: String, detail: String) -> Self {
        Problem {
            class,
            summary,
            detail,
            extra: None,
        }
    }
}

/// One attempt: does the selection hold the expected spans?
///
/// `test_start` is the store position when the test started (to tell "spans arrived for other
/// traces during this test" in a no-trace message).
pub fn check(
    query: &SpanQuery,
    store: &SpanStore,
    sel: &Selection,
    test_start: u64,
) -> Result<Matched, Miss> {
    let snap = store.select(sel);
    if snap.spans.is_empty() {
        return Err(no_trace(store, sel, &snap, test_start));
    }
    check_snapshot(query, sel, &snap)
}

/// Matching proper, on an already selected snapshot (non-empty).
pub fn check_snapshot(
    query: &SpanQuery,
    sel: &Selection,
    snap: &Snapshot,
) -> Result<Matched, Miss> {
    let root = match sel {
        Selection::Subtree { root, .. } => Some(*root),
        Selection::Trace { request, .. } => *request,
        Selection::Since(_) => None,
    };
    let pool: Vec<&Seen> = snap
        .spans
        .iter()
        .filter(|s| match &query.service {
            Some(svc) => s.span.service.as_deref() == Some(svc.as_str()),
            None => true,
        })
        .collect();
    let seen_section = || Section::of(SectionKind::SpansSeen, "spans seen", table(snap, root));
    let mut problems: Vec<Problem> = Vec::new();

    if let Some(svc) = &query.service
        && pool.is_empty()
    {
        let mut services: Vec<&str> = snap
            .spans
            .iter()
            .map(|s| s.span.service.as_deref().unwrap_or("(no service.name)"))
            .collect();
        services.sort_unstable();
        services.dedup();
        let summary = format!("no span from service {svc:?}");
        let detail = format!(
            "{} in {}, none from service {svc:?} (services seen: {})",
            plural(snap.spans.len(), "span"),
            scope(sel),
            services.join(", ")
        );
        return Err(fold(
            vec![Problem::new(Class::MissingSpan, summary, detail)],
            snap,
            seen_section(),
        ));
    }

    for e in &query.expect {
        if let Some(p) = check_one(e, &pool, root) {
            problems.push(p);
        }
    }
    for name in &query.absent {
        let found: Vec<&&Seen> = pool.iter().filter(|s| &*s.span.name == name).collect();
        if !found.is_empty() {
            let parents: Vec<String> = found.iter().take(3).map(|s| parent_name(s, root)).collect();
            problems.push(Problem::new(
                Class::UnexpectedSpan,
                format!("span {name:?} must not appear"),
                format!(
                    "span {name:?} must not appear, found {} (under {})",
                    found.len(),
                    parents.join(", ")
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(Matched {
            spans: snap.spans.len(),
        })
    } else {
        Err(fold(problems, snap, seen_section()))
    }
}

/// Check one expectation against the (service-filtered) pool; `None` when it holds.
fn check_one(e: &ExpectedSpan, pool: &[&Seen], root: Option<[u8; 8]>) -> Option<Problem> {
    let what = e.name.describe();
    let funnel = Funnel::new(e, pool);
    let got = funnel.cel_ok.len();
    match e.count {
        Some(n) if got == n as usize => None,
        None if got >= 1 => None,
        Some(n) if got > n as usize => Some(Problem::new(
            Class::UnexpectedSpan,
            format!(
                "expected exactly {} {what}, got more",
                plural(n as usize, "span")
            ),
            format!(
                "expected exactly {} {what}, got {got}",
                plural(n as usize, "span")
            ),
        )),
        _ => Some(too_few(e, &what, &funnel, pool, root)),
    }
}

/// The candidates for one expectation, narrowed one criterion at a time (name, kind, parent,
/// attributes, `cel:`), so that a miss can say where the funnel emptied.
struct Funnel<'a> {
    named: Vec<&'a Seen>,
    kind_ok: Vec<&'a Seen>,
    parent_ok: Vec<&'a Seen>,
    attr_ok: Vec<&'a Seen>,
    cel_ok: Vec<&'a Seen>,
    /// The first failing expression of each candidate that reached `cel:`, to explain a miss.
    cel_misses: Vec<cel::CelMiss>,
}

impl<'a> Funnel<'a> {
    fn new(e: &ExpectedSpan, pool: &[&'a Seen]) -> Self {
        let narrow = |from: &[&'a Seen], keep: &dyn Fn(&Seen) -> bool| -> Vec<&'a Seen> {
            from.iter().copied().filter(|s| keep(s)).collect()
        };
        let named = narrow(pool, &|s| e.name.is_match(&s.span.name));
        let kind_ok = narrow(&named, &|s| e.kind.is_none() || s.span.kind == e.kind);
        let parent_ok = narrow(&kind_ok, &|s| match &e.parent {
            Some(p) => s.parent.as_ref().is_some_and(|x| &*x.name == p),
            None => true,
        });
        let attr_ok = narrow(&parent_ok, &|s| attr_mismatches(e, s).is_empty());
        // `cel:` last: the most expensive check, on the fewest candidates.
        let mut cel_misses = Vec::new();
        let cel_ok = attr_ok
            .iter()
            .copied()
            .filter(|s| match cel_miss(e, s) {
                None => true,
                Some(m) => {
                    cel_misses.push(m);
                    false
                }
            })
            .collect();
        Funnel {
            named,
            kind_ok,
            parent_ok,
            attr_ok,
            cel_ok,
            cel_misses,
        }
    }
}

/// Fewer matching spans than needed: the problem at the first criterion that left none.
fn too_few(
    e: &ExpectedSpan,
    what: &str,
    f: &Funnel,
    pool: &[&Seen],
    root: Option<[u8; 8]>,
) -> Problem {
    if f.named.is_empty() {
        return no_such_name(e, what, pool);
    }
    if f.kind_ok.is_empty() {
        let kinds: Vec<&str> = distinct_sorted(f.named.iter().map(|s| s.span.kind_str()));
        let want = e.kind.map_or("", |k| k.as_str());
        return Problem::new(
            Class::Attribute,
            format!("span {what} is not {want}"),
            format!("span {what} is {}, expected {want}", kinds.join(" and ")),
        );
    }
    if f.parent_ok.is_empty() {
        let want = e.parent.as_deref().unwrap_or_default();
        let parents = distinct_sorted(f.kind_ok.iter().map(|s| parent_name(s, root)));
        return Problem::new(
            Class::MissingSpan,
            format!("span {what} is not under {want:?}"),
            format!(
                "span {what} is not under {want:?}; its parent: {}",
                parents.join(", ")
            ),
        );
    }
    if f.attr_ok.is_empty() {
        return attributes_differ(e, what, &f.parent_ok);
    }
    if f.cel_ok.is_empty()
        && let Some(m) = f.cel_misses.first()
    {
        return Problem::new(
            Class::Cel,
            format!("span {what}: {}", m.summary),
            format!(
                "span {what}{}: {}",
                if f.attr_ok.len() > 1 {
                    format!(" (first of {})", f.attr_ok.len())
                } else {
                    String::new()
                },
                m.detail
            ),
        );
    }
    let needed = e.count.unwrap_or(1) as usize;
    Problem::new(
        Class::MissingSpan,
        format!("expected exactly {} {what}", plural(needed, "span")),
        format!(
            "expected exactly {} {what}, got {} so far",
            plural(needed, "span"),
            f.cel_ok.len()
        ),
    )
}

/// No span by that name: with an exact name, the closest names seen.
fn no_such_name(e: &ExpectedSpan, what: &str, pool: &[&Seen]) -> Problem {
    let mut detail = format!("no span {what} among {}", plural(pool.len(), "span"));
    if let NameMatch::Exact(n) = &e.name {
        let mut distinct: HashSet<&str> = HashSet::new();
        for s in pool {
            if distinct.len() >= 10_000 {
                break;
            }
            distinct.insert(&s.span.name);
        }
        let close = matching::closest(n, distinct.iter().copied(), 3);
        if !close.is_empty() {
            let list: Vec<String> = close.iter().map(|c| format!("{c:?}")).collect();
            let _ = write!(detail, " (closest: {})", list.join(", "));
        }
    }
    Problem::new(Class::MissingSpan, format!("no span {what}"), detail)
}

/// No candidate has the expected attributes: explained with the one that misses the fewest,
/// its attributes shown in a section.
fn attributes_differ(e: &ExpectedSpan, what: &str, candidates: &[&Seen]) -> Problem {
    let best = candidates
        .iter()
        .min_by_key(|s| attr_mismatches(e, s).len())
        .expect("candidates is not empty");
    let mism = attr_mismatches(e, best);
    let keys: Vec<&str> = mism.iter().map(|(k, _)| k.as_str()).collect();
    let mut p = Problem::new(
        Class::Attribute,
        format!("span {what}: attribute {} differs", keys.join(", ")),
        format!(
            "span {what}{}: {}",
            if candidates.len() > 1 {
                format!(" (closest of {})", candidates.len())
            } else {
                String::new()
            },
            mism.iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    p.extra = Some(Section::of(
        SectionKind::SpanAttributes,
        format!("attributes of {}", truncate(&best.span.name, 80)),
        attributes_text(best),
    ));
    p
}

/// The first `cel:` expression of `e` that `s` does not satisfy.
fn cel_miss(e: &ExpectedSpan, s: &Seen) -> Option<cel::CelMiss> {
    if e.cel.is_empty() {
        return None;
    }
    let attributes: serde_json::Map<String, Value> = s
        .span
        .attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect();
    let status = match s.span.status {
        SpanStatus::Unset => "unset",
        SpanStatus::Ok => "ok",
        SpanStatus::Error => "error",
    };
    let parent = s.parent.as_ref().map(|p| &*p.name);
    let span = cel::from_json(&serde_json::json!({
        "name": &*s.span.name,
        "kind": s.span.kind_str(),
        "attributes": attributes,
        "status": status,
        "parent": parent,
    }));
    e.cel.iter().find_map(|c| c.run("span", span.clone()).err())
}

/// (attribute, message) for every expected attribute the span does not have as expected.
fn attr_mismatches(e: &ExpectedSpan, s: &Seen) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, want) in &e.attributes {
        let got = s.span.attribute(k).map(|v| v.to_json());
        match (want, got) {
            (Value::Null, None) => {}
            (Value::Null, Some(g)) => out.push((
                k.clone(),
                format!("{k}: expected not set, got {}", matching::short(&g)),
            )),
            (w, None) => out.push((
                k.clone(),
                format!("{k}: missing (expected {})", matching::short(w)),
            )),
            (w, Some(g)) => {
                if let Err(m) = matching::subset(w, &g) {
                    let msg = if m.note.is_empty() {
                        format!(
                            "{k}: expected {}, got {}",
                            matching::short(w),
                            matching::short(&g)
                        )
                    } else {
                        format!("{k}: {}", m.note)
                    };
                    out.push((k.clone(), msg));
                }
            }
        }
    }
    out
}

fn fold(problems: Vec<Problem>, snap: &Snapshot, seen: Section) -> Miss {
    let first = &problems[0];
    let mut detail = problems
        .iter()
        .map(|p| p.detail.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(e) = evicted(snap) {
        let _ = write!(detail, " ({e}, cap {})", snap.cap);
    }
    let mut m = Miss::new(first.class, first.summary.clone(), detail).with_context(seen);
    for p in problems {
        if let Some(x) = p.extra {
            m = m.with_context(x);
        }
    }
    m
}

fn no_trace(store: &SpanStore, sel: &Selection, snap: &Snapshot, test_start: u64) -> Miss {
    let total = snap.total_received;
    let tail = if total == 0 {
        "the receiver got no span at all since the run started: the exporter never reached it"
            .to_string()
    } else {
        match sel {
            Selection::Trace { trace_id: t, .. } | Selection::Subtree { trace_id: t, .. } => {
                let others = store.other_traces_since(t, test_start);
                let here = store.trace_len(t);
                let mut s = format!(
                    "the receiver got {} in total",
                    plural(total as usize, "span")
                );
                if matches!(sel, Selection::Subtree { .. }) && here > 0 {
                    let _ = write!(
                        s,
                        "; {} of this trace, none under the request",
                        plural(here, "span")
                    );
                }
                if others > 0 {
                    let _ = write!(
                        s,
                        ", {} other trace{} since this test started (is the traceparent header propagated?)",
                        if others >= 1000 {
                            "1000+".to_string()
                        } else {
                            others.to_string()
                        },
                        if others == 1 { "" } else { "s" }
                    );
                } else {
                    s.push_str(", none since this test started");
                }
                s
            }
            Selection::Since(_) => {
                format!(
                    "the receiver got {} in total, none since this test started",
                    plural(total as usize, "span")
                )
            }
        }
    };
    let (summary, what) = match sel {
        Selection::Trace { trace_id: t, .. } => (
            "no span for the request's trace".to_string(),
            format!("no span for trace {}", hex(t)),
        ),
        Selection::Subtree { trace_id, root } => (
            "no span under the request".to_string(),
            format!(
                "no span under request span {} in trace {}",
                hex(root),
                hex(trace_id)
            ),
        ),
        Selection::Since(_) => (
            "no span since the test started".to_string(),
            "no span received since this test started".to_string(),
        ),
    };
    let mut detail = format!("{what} ({tail})");
    if let Some(e) = evicted(snap) {
        let _ = write!(detail, "; {e} (cap {})", snap.cap);
    }
    Miss::new(Class::NoTrace, summary, detail)
}

/// `3 spans evicted from the span store`, when the store had to drop spans to stay in its cap.
fn evicted(snap: &Snapshot) -> Option<String> {
    (snap.evicted > 0).then(|| {
        format!(
            "{} evicted from the span store",
            plural(snap.evicted as usize, "span")
        )
    })
}

fn scope(sel: &Selection) -> String {
    match sel {
        Selection::Trace { trace_id: t, .. } => format!("trace {}", hex(t)),
        Selection::Subtree { trace_id, .. } => {
            format!("the request's part of trace {}", hex(trace_id))
        }
        Selection::Since(_) => "the spans received during this test".into(),
    }
}

fn parent_name(s: &Seen, root: Option<[u8; 8]>) -> String {
    match (&s.parent, s.span.parent_span_id) {
        (Some(p), _) => format!("{:?}", &*p.name),
        (None, Some(pid)) if Some(pid) == root => "(the request)".into(),
        (None, Some(pid)) => format!("(span {} not received)", hex(&pid)),
        (None, None) => "(root)".into(),
    }
}

fn distinct_sorted<T: Ord>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = it.collect();
    v.sort();
    v.dedup();
    v
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

const TABLE_ROWS: usize = 40;

/// The spans of a snapshot as a table: name, service, kind, parent.
pub fn table(snap: &Snapshot, root: Option<[u8; 8]>) -> String {
    let rows: Vec<[String; 4]> = snap
        .spans
        .iter()
        .take(TABLE_ROWS)
        .map(|s| {
            [
                truncate(&s.span.name, 60),
                truncate(s.span.service.as_deref().unwrap_or("-"), 30),
                s.span.kind_str().to_string(),
                truncate(&parent_name(s, root), 60),
            ]
        })
        .collect();
    let header = ["name", "service", "kind", "parent"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if snap.spans.len() > TABLE_ROWS {
        let _ = writeln!(out, "… and {} more", snap.spans.len() - TABLE_ROWS);
    }
    out
}

fn attributes_text(s: &Seen) -> String {
    let mut out = String::new();
    for (k, v) in s.span.attributes.iter() {
        let _ = writeln!(out, "{k}: {}", matching::short(&v.to_json()));
    }
    if out.is_empty() {
        out.push_str("(no attributes)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::store::{AttrValue, StoredSpan};
    use serde_json::json;
    use std::sync::Arc;

    const T1: [u8; 16] = [1; 16];
    const T2: [u8; 16] = [2; 16];
    const ATTEMPT: [u8; 8] = [0xaa; 8];

    fn sp(
        trace: [u8; 16],
        id: u8,
        parent: Option<[u8; 8]>,
        name: &str,
        service: &str,
        kind: SpanKind,
        attrs: &[(&str, AttrValue)],
    ) -> StoredSpan {
        StoredSpan {
            seq: 0,
            trace_id: trace,
            span_id: [id; 8],
            parent_span_id: parent,
            name: Arc::from(name),
            kind: Some(kind),
            service: Some(Arc::from(service)),
            attributes: attrs
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect(),
            start_unix_nano: 0,
            end_unix_nano: 0,
            status: Default::default(),
        }
    }

    /// The route span under the server span (span 1) of trace 1.
    fn route_example(id: u8) -> StoredSpan {
        sp(
            T1,
            id,
            Some([1; 8]),
            "route example",
            "demo-gateway",
            SpanKind::Internal,
            &[],
        )
    }

    /// The demo gateway's shape: server span under the attempt, a route span under it.
    fn gateway_store() -> SpanStore {
        let store = SpanStore::new(1000);
        store.insert(vec![
            sp(
                T1,
                1,
                Some(ATTEMPT),
                "GET /example",
                "demo-gateway",
                SpanKind::Server,
                &[
                    ("http.response.status_code", AttrValue::Int(200)),
                    ("http.route", AttrValue::Str(Arc::from("/example"))),
                    ("ratio", AttrValue::Double(0.5)),
                    ("cached", AttrValue::Bool(false)),
                ],
            ),
            route_example(2),
            sp(
                T1,
                3,
                Some([1; 8]),
                "upstream",
                "backend",
                SpanKind::Client,
                &[],
            ),
            // Another trace, with a span named like the missing one.
            sp(
                T2,
                9,
                None,
                "route other",
                "demo-gateway",
                SpanKind::Internal,
                &[],
            ),
        ]);
        store
    }

    fn exact(n: &str) -> ExpectedSpan {
        ExpectedSpan {
            name: NameMatch::Exact(n.into()),
            kind: None,
            attributes: vec![],
            count: None,
            parent: None,
            cel: vec![],
        }
    }

    fn q(expect: Vec<ExpectedSpan>) -> SpanQuery {
        SpanQuery {
            service: None,
            expect,
            absent: vec![],
        }
    }

    fn tr(trace_id: [u8; 16]) -> Selection {
        Selection::Trace {
            trace_id,
            request: Some(ATTEMPT),
        }
    }

    fn sub() -> Selection {
        Selection::Subtree {
            trace_id: T1,
            root: ATTEMPT,
        }
    }

    /// A miss of `class` whose detail says `phrase`.
    fn assert_miss(m: &Miss, class: Class, phrase: &str) {
        assert_eq!(m.class, class, "{}", m.detail);
        assert_detail(m, phrase);
    }

    fn assert_detail(m: &Miss, phrase: &str) {
        assert!(m.detail.contains(phrase), "{}", m.detail);
    }

    #[test]
    fn by_name_kind_parent_and_typed_attributes() {
        let store = gateway_store();
        let mut server = exact("GET /example");
        server.kind = Some(SpanKind::Server);
        server.attributes = vec![
            ("http.response.status_code".into(), json!(200)),
            ("http.route".into(), json!("/example")),
            ("ratio".into(), json!(0.5)),
            ("cached".into(), json!(false)),
            ("error.type".into(), Value::Null),
        ];
        server.count = Some(1);
        let mut route = exact("route example");
        route.parent = Some("GET /example".into());
        let mut by_regex = exact("");
        by_regex.name = NameMatch::Regex(regex::Regex::new("^route ").unwrap());
        let m = check(&q(vec![server, route, by_regex]), &store, &sub(), 0).unwrap();
        assert_eq!(m.spans, 3);
        // Same through the whole trace.
        let mut e = exact("upstream");
        e.kind = Some(SpanKind::Client);
        check(&q(vec![e]), &store, &tr(T1), 0).unwrap();
    }

    #[test]
    fn a_number_does_not_match_a_string_attribute_and_says_so() {
        let store = gateway_store();
        let mut e = exact("GET /example");
        e.attributes = vec![("http.response.status_code".into(), json!("200"))];
        let m = check(&q(vec![e.clone()]), &store, &sub(), 0).unwrap_err();
        assert_miss(&m, Class::Attribute, "http.response.status_code");
        assert_detail(&m, "a string");
        let attrs = m
            .context
            .iter()
            .find(|s| s.kind == SectionKind::SpanAttributes)
            .unwrap();
        assert!(
            attrs.body.contains("http.response.status_code: 200"),
            "{}",
            attrs.body
        );

        e.attributes = vec![("http.response.status_code".into(), json!(503))];
        let m = check(&q(vec![e.clone()]), &store, &sub(), 0).unwrap_err();
        assert_detail(&m, "http.response.status_code: expected 503, got 200");
        // A double expectation matches an int attribute by value.
        e.attributes = vec![("http.response.status_code".into(), json!(200.0))];
        check(&q(vec![e]), &store, &sub(), 0).unwrap();
    }

    #[test]
    fn kind_and_parent_mismatches() {
        let store = gateway_store();
        let mut e = exact("route example");
        e.kind = Some(SpanKind::Server);
        let m = check(&q(vec![e]), &store, &sub(), 0).unwrap_err();
        assert_miss(&m, Class::Attribute, "is internal, expected server");

        let mut e = exact("route example");
        e.parent = Some("GET /other".into());
        let m = check(&q(vec![e]), &store, &sub(), 0).unwrap_err();
        assert_miss(
            &m,
            Class::MissingSpan,
            r#"is not under "GET /other"; its parent: "GET /example""#,
        );
    }

    #[test]
    fn missing_span_lists_what_was_seen_and_the_closest_names() {
        let store = gateway_store();
        let m = check(&q(vec![exact("route exmaple")]), &store, &sub(), 0).unwrap_err();
        assert_miss(
            &m,
            Class::MissingSpan,
            r#"among 3 spans (closest: "route example""#,
        );
        assert_eq!(m.summary, r#"no span "route exmaple""#);
        let seen = m
            .context
            .iter()
            .find(|s| s.kind == SectionKind::SpansSeen)
            .unwrap();
        assert!(seen.body.starts_with("name"), "{}", seen.body);
        assert!(seen.body.contains("GET /example"), "{}", seen.body);
        assert!(seen.body.contains("(the request)"), "{}", seen.body);
        assert!(seen.body.contains("internal"), "{}", seen.body);
        // The other trace's span is not in the table.
        assert!(!seen.body.contains("route other"), "{}", seen.body);
    }

    #[test]
    fn count_absent_and_service_filter() {
        let store = gateway_store();
        // A second one, beside span 2.
        store.insert(vec![route_example(4)]);
        let mut e = exact("route example");
        e.count = Some(1);
        let m = check(&q(vec![e.clone()]), &store, &sub(), 0).unwrap_err();
        assert_miss(
            &m,
            Class::UnexpectedSpan,
            "expected exactly 1 span \"route example\", got 2",
        );
        e.count = Some(3);
        let m = check(&q(vec![e.clone()]), &store, &sub(), 0).unwrap_err();
        assert_miss(&m, Class::MissingSpan, "got 2 so far");
        // The summary counts attempts by it ("7 expected exactly 3 spans ..."): plural too.
        assert_eq!(m.summary, r#"expected exactly 3 spans "route example""#);
        e.count = Some(0);
        let m = check(&q(vec![e.clone()]), &store, &sub(), 0).unwrap_err();
        assert_eq!(m.class, Class::UnexpectedSpan);
        assert_eq!(
            m.summary,
            r#"expected exactly 0 spans "route example", got more"#
        );
        e.count = Some(2);
        check(&q(vec![e]), &store, &sub(), 0).unwrap();

        let mut query = q(vec![exact("GET /example")]);
        query.absent = vec!["upstream".into()];
        let m = check(&query, &store, &sub(), 0).unwrap_err();
        assert_miss(
            &m,
            Class::UnexpectedSpan,
            r#"span "upstream" must not appear, found 1 (under "GET /example")"#,
        );
        // `upstream` is the backend's: with the service filter it is out of scope.
        query.service = Some("demo-gateway".into());
        check(&query, &store, &sub(), 0).unwrap();
        // ...and a span of the backend is not found through the gateway's filter.
        let mut query = q(vec![exact("upstream")]);
        query.service = Some("demo-gateway".into());
        assert_eq!(
            check(&query, &store, &sub(), 0).unwrap_err().class,
            Class::MissingSpan
        );
        query.service = Some("nobody".into());
        let m = check(&query, &store, &sub(), 0).unwrap_err();
        assert_detail(&m, "services seen: backend, demo-gateway");
    }

    #[test]
    fn a_span_of_another_trace_does_not_satisfy_last_request() {
        let store = gateway_store();
        // "route other" exists, in trace 2 only.
        let m = check(&q(vec![exact("route other")]), &store, &sub(), 0).unwrap_err();
        assert_eq!(m.class, Class::MissingSpan);
        let m = check(&q(vec![exact("route other")]), &store, &tr(T1), 0).unwrap_err();
        assert_eq!(m.class, Class::MissingSpan);
        // `trace: any` sees it.
        check(
            &q(vec![exact("route other")]),
            &store,
            &Selection::Since(0),
            0,
        )
        .unwrap();
        // A subtree under a different attempt of the same trace sees nothing.
        let other_attempt = Selection::Subtree {
            trace_id: T1,
            root: [0xbb; 8],
        };
        let m = check(&q(vec![exact("GET /example")]), &store, &other_attempt, 0).unwrap_err();
        assert_miss(
            &m,
            Class::NoTrace,
            "3 spans of this trace, none under the request",
        );
    }

    #[test]
    fn no_trace_says_how_many_spans_the_receiver_got() {
        let empty = SpanStore::new(10);
        let m = check(&q(vec![exact("x")]), &empty, &tr([7; 16]), 0).unwrap_err();
        assert_miss(&m, Class::NoTrace, "no span for trace 0707");
        assert_detail(&m, "the exporter never reached it");

        let store = gateway_store();
        let m = check(&q(vec![exact("x")]), &store, &tr([7; 16]), 0).unwrap_err();
        assert_detail(
            &m,
            "the receiver got 4 spans in total, 2 other traces since this test started",
        );
        let m = check(&q(vec![exact("x")]), &store, &tr([7; 16]), 4).unwrap_err();
        assert_detail(&m, "none since this test started");
        let m = check(&q(vec![exact("x")]), &store, &Selection::Since(4), 4).unwrap_err();
        assert_eq!(m.summary, "no span since the test started");
    }
}
