//! The span store: every span the receiver got during the run, shared by all tests.
//!
//! Spans live in one arrival-ordered queue (the arrival sequence number is the position
//! `trace: any` starts from) with three indexes: by trace id, by parent span id and by span
//! id. The parent index makes "the subtree under this request attempt" cheap even when the
//! whole run shares one trace id (a run exported with `--otlp-export`). The store is bounded:
//! past the cap the oldest spans are evicted first, and counted.
//!
//! Writers convert a whole export request outside the lock (strings are interned, so a
//! million spans with repeating names and attribute keys stay small) and then take the write
//! lock once per request; readers take the read lock only to copy out `Arc`s.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde_json::Value;
use tokio::sync::Notify;

use crate::suite::model::SpanKind;

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// A typed attribute value, as OTLP carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Str(Arc<str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Arc<[u8]>),
    Array(Box<[AttrValue]>),
    Map(Box<[(Arc<str>, AttrValue)]>),
    /// An AnyValue with nothing set.
    Empty,
}

impl AttrValue {
    /// As JSON, for matching and messages (bytes become lowercase hex).
    pub fn to_json(&self) -> Value {
        match self {
            AttrValue::Str(s) => Value::String(s.to_string()),
            AttrValue::Int(i) => Value::from(*i),
            AttrValue::Double(d) => Value::from(*d),
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Bytes(b) => Value::String(crate::engine::hex(b)),
            AttrValue::Array(items) => Value::Array(items.iter().map(AttrValue::to_json).collect()),
            AttrValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            AttrValue::Empty => Value::Null,
        }
    }

    /// The string, for a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The span status code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error,
}

/// What the store keeps of a span: what matching and failure reports need.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSpan {
    /// Arrival sequence number (0-based, over the whole run).
    pub seq: u64,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: Arc<str>,
    /// `None` for SPAN_KIND_UNSPECIFIED.
    pub kind: Option<SpanKind>,
    /// The resource attribute `service.name`.
    pub service: Option<Arc<str>>,
    pub attributes: Box<[(Arc<str>, AttrValue)]>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status: SpanStatus,
}

impl StoredSpan {
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    pub fn kind_str(&self) -> &'static str {
        self.kind.map_or("unspecified", |k| k.as_str())
    }
}

/// Which spans a `spans` step looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every span of one trace. `request` is the span id the request sent as the parent id
    /// (spans under it are shown as under "the request").
    Trace {
        trace_id: TraceId,
        request: Option<SpanId>,
    },
    /// The spans of `trace_id` that descend from `root` (a request attempt's span id, which
    /// is the parent id the system under test gets in `traceparent`). `root` itself is never
    /// stored: gwtest does not send spans to its own receiver.
    Subtree { trace_id: TraceId, root: SpanId },
    /// Every span that arrived at or after this position (`trace: any`).
    Since(u64),
}

/// A span as selected, with its parent when the store has it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub span: Arc<StoredSpan>,
    pub parent: Option<Arc<StoredSpan>>,
}

/// The result of a selection, with the store's counters at that moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// In arrival order.
    pub spans: Vec<Seen>,
    /// Spans accepted since the run started (evicted ones included).
    pub total_received: u64,
    pub evicted: u64,
    /// Spans currently stored.
    pub stored: usize,
    pub cap: usize,
}

/// What an ingest did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub accepted: usize,
    /// Spans with an invalid trace or span id.
    pub rejected: usize,
    /// Spans already stored (an exporter's retry), skipped.
    pub duplicates: usize,
    /// Why spans were rejected, for the OTLP partial-success answer.
    pub error: Option<String>,
}

/// Span and trace ids are random: a cheap multiplicative hash is enough and much faster than
/// SipHash on the ingest path.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_usize(&mut self, _len: usize) {
        // Array lengths are constant; leave them out.
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Inner {
    /// Sequence number of `spans[0]`.
    base: u64,
    spans: VecDeque<Arc<StoredSpan>>,
    by_trace: IdMap<TraceId, VecDeque<u64>>,
    by_parent: IdMap<SpanId, VecDeque<u64>>,
    by_id: IdMap<SpanId, u64>,
}

impl Inner {
    fn get(&self, seq: u64) -> Option<&Arc<StoredSpan>> {
        let i = seq.checked_sub(self.base)?;
        self.spans.get(usize::try_from(i).ok()?)
    }

    fn next_seq(&self) -> u64 {
        self.base + self.spans.len() as u64
    }

    fn span_by_id(&self, trace_id: &TraceId, id: &SpanId) -> Option<&Arc<StoredSpan>> {
        let s = self.get(*self.by_id.get(id)?)?;
        (s.trace_id == *trace_id).then_some(s)
    }

    fn evict_oldest(&mut self) {
        let Some(s) = self.spans.pop_front() else {
            return;
        };
        self.base += 1;
        // Each index list is in arrival order, so the evicted span is at its front.
        if let Entry::Occupied(mut e) = self.by_trace.entry(s.trace_id) {
            if e.get().front() == Some(&s.seq) {
                e.get_mut().pop_front();
            }
            if e.get().is_empty() {
                e.remove();
            }
        }
        if let Some(p) = s.parent_span_id
            && let Entry::Occupied(mut e) = self.by_parent.entry(p)
        {
            if e.get().front() == Some(&s.seq) {
                e.get_mut().pop_front();
            }
            if e.get().is_empty() {
                e.remove();
            }
        }
        if self.by_id.get(&s.span_id) == Some(&s.seq) {
            self.by_id.remove(&s.span_id);
        }
    }
}

/// Strings that repeat (span names, attribute keys, services, short values) are shared.
/// Bounded so a stream of unique values cannot grow it without end.
#[derive(Default)]
struct Interner {
    set: HashSet<Arc<str>>,
}

const INTERN_MAX_ENTRIES: usize = 200_000;
const INTERN_MAX_LEN: usize = 128;

impl Interner {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if s.len() <= INTERN_MAX_LEN && self.set.len() < INTERN_MAX_ENTRIES {
            self.set.insert(a.clone());
        }
        a
    }
}

/// Spans received during the run, indexed by trace, parent and span id. See the module docs.
pub struct SpanStore {
    cap: usize,
    inner: RwLock<Inner>,
    received: AtomicU64,
    evicted: AtomicU64,
    rejected: AtomicU64,
    interner: Mutex<Interner>,
    wakers: Mutex<Vec<Weak<Notify>>>,
}

impl std::fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanStore")
            .field("cap", &self.cap)
            .field("received", &self.total_received())
            .field("evicted", &self.evicted())
            .finish()
    }
}

impl Default for SpanStore {
    fn default() -> Self {
        SpanStore::new(crate::config::DEFAULT_MAX_SPANS)
    }
}

impl SpanStore {
    /// A store keeping at most `cap` spans (at least one).
    pub fn new(cap: usize) -> Self {
        SpanStore {
            cap: cap.max(1),
            inner: RwLock::new(Inner::default()),
            received: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            interner: Mutex::new(Interner::default()),
            wakers: Mutex::new(Vec::new()),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The next arrival sequence number: spans arriving from now on are at or after it.
    pub fn position(&self) -> u64 {
        self.read().next_seq()
    }

    /// Spans accepted since the run started, evicted ones included.
    pub fn total_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Spans dropped because the store was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Spans refused because of invalid ids.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Spans currently stored.
    pub fn len(&self) -> usize {
        self.read().spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A `Notify` that gets a permit whenever spans arrive (for the retry engine's
    /// `Limits.wake`). It is forgotten once every clone is dropped.
    pub fn subscribe(&self) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        let mut w = self.wakers.lock().expect("span store wakers poisoned");
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(&n));
        n
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Store the spans of one OTLP export request.
    pub fn ingest(&self, req: ExportTraceServiceRequest) -> Ingested {
        let mut out = Ingested::default();
        let mut batch = Vec::new();
        {
            let mut interner = self.interner.lock().unwrap_or_else(|e| e.into_inner());
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(interner.intern(s)),
                        _ => None,
                    });
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        let (Ok(trace_id), Ok(span_id)) = (
                            <TraceId>::try_from(s.trace_id.as_slice()),
                            <SpanId>::try_from(s.span_id.as_slice()),
                        ) else {
                            out.rejected += 1;
                            out.error.get_or_insert_with(|| {
                                format!(
                                    "span {:?} has an invalid trace id ({} bytes) or span id ({} bytes)",
                                    s.name,
                                    s.trace_id.len(),
                                    s.span_id.len()
                                )
                            });
                            continue;
                        };
                        let parent_span_id = <SpanId>::try_from(s.parent_span_id.as_slice())
                            .ok()
                            .filter(|p| *p != [0; 8]);
                        batch.push(StoredSpan {
                            seq: 0,
                            trace_id,
                            span_id,
                            parent_span_id,
                            name: interner.intern(&s.name),
                            kind: kind_of(s.kind),
                            service: service.clone(),
                            attributes: attributes(&mut interner, &s.attributes),
                            start_unix_nano: s.start_time_unix_nano,
                            end_unix_nano: s.end_time_unix_nano,
                            status: match s.status.map(|st| st.code) {
                                Some(1) => SpanStatus::Ok,
                                Some(2) => SpanStatus::Error,
                                _ => SpanStatus::Unset,
                            },
                        });
                    }
                }
            }
        }
        if out.rejected > 0 {
            self.rejected
                .fetch_add(out.rejected as u64, Ordering::Relaxed);
        }
        let (accepted, duplicates) = self.insert(batch);
        out.accepted = accepted;
        out.duplicates = duplicates;
        out
    }

    /// Store converted spans (their `seq` is assigned here). Returns (accepted, duplicates).
    pub fn insert(&self, batch: Vec<StoredSpan>) -> (usize, usize) {
        if batch.is_empty() {
            return (0, 0);
        }
        let mut accepted = 0;
        let mut duplicates = 0;
        let mut evicted = 0u64;
        {
            let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
            for mut s in batch {
                if let Some(&old) = g.by_id.get(&s.span_id)
                    && g.get(old).is_some_and(|o| o.trace_id == s.trace_id)
                {
                    duplicates += 1;
                    continue;
                }
                let seq = g.next_seq();
                s.seq = seq;
                g.by_trace.entry(s.trace_id).or_default().push_back(seq);
                if let Some(p) = s.parent_span_id {
                    g.by_parent.entry(p).or_default().push_back(seq);
                }
                g.by_id.insert(s.span_id, seq);
                g.spans.push_back(Arc::new(s));
                accepted += 1;
                if g.spans.len() > self.cap {
                    g.evict_oldest();
                    evicted += 1;
                }
            }
        }
        self.received.fetch_add(accepted as u64, Ordering::Relaxed);
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        if accepted > 0 {
            let mut w = self.wakers.lock().expect("span store wakers poisoned");
            w.retain(|x| match x.upgrade() {
                Some(n) => {
                    n.notify_one();
                    true
                }
                None => false,
            });
        }
        (accepted, duplicates)
    }

    /// The spans a selection covers, each with its parent (when stored), in arrival order.
    pub fn select(&self, sel: &Selection) -> Snapshot {
        let g = self.read();
        let seqs: Vec<u64> = match sel {
            Selection::Trace { trace_id: t, .. } => g
                .by_trace
                .get(t)
                .map(|q| q.iter().copied().collect())
                .unwrap_or_default(),
            Selection::Subtree { trace_id, root } => {
                let mut out = Vec::new();
                let mut frontier = vec![*root];
                let mut visited: IdMap<SpanId, ()> = IdMap::default();
                while let Some(p) = frontier.pop() {
                    if visited.insert(p, ()).is_some() {
                        continue;
                    }
                    for &seq in g.by_parent.get(&p).into_iter().flatten() {
                        if let Some(s) = g.get(seq)
                            && s.trace_id == *trace_id
                        {
                            out.push(seq);
                            frontier.push(s.span_id);
                        }
                    }
                }
                out.sort_unstable();
                out
            }
            Selection::Since(pos) => (g.base.max(*pos)..g.next_seq()).collect(),
        };
        let spans = seqs
            .into_iter()
            .filter_map(|seq| g.get(seq))
            .map(|s| Seen {
                parent: s
                    .parent_span_id
                    .and_then(|p| g.span_by_id(&s.trace_id, &p))
                    .cloned(),
                span: s.clone(),
            })
            .collect();
        Snapshot {
            spans,
            total_received: self.total_received(),
            evicted: self.evicted(),
            stored: g.spans.len(),
            cap: self.cap,
        }
    }

    /// Every stored span of a trace, in arrival order.
    pub fn trace(&self, trace_id: &TraceId) -> Vec<Arc<StoredSpan>> {
        let g = self.read();
        g.by_trace
            .get(trace_id)
            .into_iter()
            .flatten()
            .filter_map(|&seq| g.get(seq).cloned())
            .collect()
    }

    /// How many spans of a trace are stored.
    pub fn trace_len(&self, trace_id: &TraceId) -> usize {
        self.read().by_trace.get(trace_id).map_or(0, VecDeque::len)
    }

    /// How many stored traces other than `trace_id` got spans at or after `since`.
    pub fn other_traces_since(&self, trace_id: &TraceId, since: u64) -> usize {
        let g = self.read();
        let mut seen: IdMap<TraceId, ()> = IdMap::default();
        let start = g.base.max(since);
        for seq in start..g.next_seq() {
            if let Some(s) = g.get(seq)
                && s.trace_id != *trace_id
            {
                seen.insert(s.trace_id, ());
                if seen.len() >= 1000 {
                    break;
                }
            }
        }
        seen.len()
    }
}

fn kind_of(k: i32) -> Option<SpanKind> {
    match k {
        1 => Some(SpanKind::Internal),
        2 => Some(SpanKind::Server),
        3 => Some(SpanKind::Client),
        4 => Some(SpanKind::Producer),
        5 => Some(SpanKind::Consumer),
        _ => None,
    }
}

fn attributes(interner: &mut Interner, kvs: &[KeyValue]) -> Box<[(Arc<str>, AttrValue)]> {
    kvs.iter()
        .map(|kv| (interner.intern(&kv.key), value(interner, kv.value.as_ref())))
        .collect()
}

fn value(interner: &mut Interner, v: Option<&AnyValue>) -> AttrValue {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => AttrValue::Empty,
        Some(V::StringValue(s)) => AttrValue::Str(interner.intern(s)),
        Some(V::BoolValue(b)) => AttrValue::Bool(*b),
        Some(V::IntValue(i)) => AttrValue::Int(*i),
        Some(V::DoubleValue(d)) => AttrValue::Double(*d),
        Some(V::BytesValue(b)) => AttrValue::Bytes(Arc::from(b.as_slice())),
        Some(V::ArrayValue(a)) => {
            AttrValue::Array(a.values.iter().map(|x| value(interner, Some(x))).collect())
        }
        Some(V::KvlistValue(l)) => AttrValue::Map(attributes(interner, &l.values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    pub(crate) fn span(trace: u8, id: u8, parent: Option<u8>, name: &str) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            kind: 2,
            attributes: vec![KeyValue {
                key: "http.response.status_code".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(200)),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn ingest_indexes_by_trace_parent_and_id() {
        let store = SpanStore::new(100);
        let r = store.ingest(request(
            "gw",
            vec![
                span(1, 10, Some(9), "GET /a"),
                span(1, 11, Some(10), "route a"),
                span(2, 20, Some(19), "GET /b"),
            ],
        ));
        assert_eq!(r.accepted, 3);
        assert_eq!(store.position(), 3);
        assert_eq!(store.total_received(), 3);
        let t = store.trace(&[1; 16]);
        assert_eq!(t.len(), 2);
        assert_eq!(&*t[0].name, "GET /a");
        assert_eq!(t[0].service.as_deref(), Some("gw"));
        assert_eq!(t[0].kind, Some(SpanKind::Server));
        assert_eq!(
            t[0].attribute("http.response.status_code"),
            Some(&AttrValue::Int(200))
        );
        let sub = store.select(&Selection::Subtree {
            trace_id: [1; 16],
            root: [9; 8],
        });
        let names: Vec<&str> = sub.spans.iter().map(|s| &*s.span.name).collect();
        assert_eq!(names, ["GET /a", "route a"]);
        assert_eq!(
            sub.spans[1].parent.as_ref().map(|p| &*p.name),
            Some("GET /a")
        );
        assert!(sub.spans[0].parent.is_none());
        // A subtree root of another trace selects nothing.
        let other = store.select(&Selection::Subtree {
            trace_id: [2; 16],
            root: [9; 8],
        });
        assert!(other.spans.is_empty());
        let since = store.select(&Selection::Since(2));
        assert_eq!(since.spans.len(), 1);
        assert_eq!(&*since.spans[0].span.name, "GET /b");
        assert_eq!(store.other_traces_since(&[1; 16], 0), 1);
    }

    #[test]
    fn eviction_is_oldest_first_and_counted() {
        let store = SpanStore::new(3);
        for i in 0..5u8 {
            store.ingest(request(
                "gw",
                vec![span(i + 1, i + 1, None, &format!("s{i}"))],
            ));
        }
        assert_eq!(store.len(), 3);
        assert_eq!(store.evicted(), 2);
        assert_eq!(store.total_received(), 5);
        assert!(store.trace(&[1; 16]).is_empty());
        assert!(store.trace(&[2; 16]).is_empty());
        assert_eq!(store.trace(&[3; 16]).len(), 1);
        let all = store.select(&Selection::Since(0));
        let names: Vec<&str> = all.spans.iter().map(|s| &*s.span.name).collect();
        assert_eq!(names, ["s2", "s3", "s4"]);
        assert_eq!(all.evicted, 2);
    }

    #[test]
    fn invalid_ids_are_rejected_and_duplicates_skipped() {
        let store = SpanStore::new(10);
        let mut bad = span(1, 1, None, "bad");
        bad.trace_id = vec![1; 3];
        let r = store.ingest(request("gw", vec![bad, span(1, 2, None, "ok")]));
        assert_eq!((r.accepted, r.rejected), (1, 1));
        assert!(r.error.unwrap().contains("invalid trace id (3 bytes)"));
        let r = store.ingest(request("gw", vec![span(1, 2, None, "ok")]));
        assert_eq!((r.accepted, r.duplicates), (0, 1));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn subscribers_are_woken_by_new_spans() {
        let store = Arc::new(SpanStore::new(10));
        let n = store.subscribe();
        let s2 = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            s2.ingest(request("gw", vec![span(1, 1, None, "x")]));
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), n.notified())
            .await
            .expect("woken");
    }
}
