//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A simplified model of the real server's structured-merge-diff:
//! - a field set is the `fieldsV1` tree (`f:<name>`, `k:{<keys>}` for items of associative
//!   lists, `.` for "this container itself");
//! - maps are always recursed; lists are atomic (one leaf), except associative lists: those a
//!   CRD schema marks `x-kubernetes-list-type: map` (items keyed by
//!   `x-kubernetes-list-map-keys`) and, for built-in kinds, the well-known keyed lists
//!   (`containers` by name, `ports` by port, `conditions` by type, ...);
//! - an Update (POST/PUT/non-apply PATCH) gives its manager the fields it changed and takes
//!   them away from other managers; removed fields leave every set;
//! - an Apply owns exactly the fields of its configuration; applying a field another manager
//!   owns with a different value is a conflict (409) unless `force=true`, which moves the
//!   field to the applier; fields the applier owned before and no longer applies are removed
//!   from the object unless another manager still owns them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::store::strings;

/// A `fieldsV1` tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeMap<String, FieldSet>);

impl FieldSet {
    pub fn from_json(v: &Value) -> FieldSet {
        let mut s = FieldSet::default();
        if let Some(m) = v.as_object() {
            for (k, child) in m {
                s.0.insert(k.clone(), FieldSet::from_json(child));
            }
        }
        s
    }

    pub fn to_json(&self) -> Value {
        // BTreeMap order puts "." first, then f:, k:, v: entries sorted, as the real server.
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert_path(&mut self, path: &[String]) {
        let mut cur = self;
        for p in path {
            cur = cur.0.entry(p.clone()).or_default();
        }
    }

    /// True when `path` is an entry of the set.
    pub fn contains_path(&self, path: &[String]) -> bool {
        self.node(path).is_some()
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut cur = self;
        for p in path {
            cur = cur.0.get(p)?;
        }
        Some(cur)
    }

    /// Removes the entry at `path` (and whatever is under it), pruning emptied parents.
    pub fn remove_path(&mut self, path: &[String]) {
        fn rec(set: &mut FieldSet, path: &[String]) -> bool {
            match path {
                [] => true,
                [last] => {
                    set.0.remove(last);
                    set.0.is_empty()
                }
                [first, rest @ ..] => {
                    if let Some(child) = set.0.get_mut(first)
                        && rec(child, rest)
                    {
                        set.0.remove(first);
                    }
                    set.0.is_empty()
                }
            }
        }
        rec(self, path);
    }

    /// Paths of all entries without children (`.` entries included).
    pub fn leaves(&self) -> Vec<Vec<String>> {
        fn rec(set: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            for (k, child) in &set.0 {
                prefix.push(k.clone());
                if child.is_empty() {
                    out.push(prefix.clone());
                } else {
                    rec(child, prefix, out);
                }
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        rec(self, &mut Vec::new(), &mut out);
        out
    }

    pub fn union(&mut self, other: &FieldSet) {
        for p in other.leaves() {
            self.insert_path(&p);
        }
    }

    pub fn subtract(&mut self, other: &FieldSet) {
        for p in other.leaves() {
            if self.node(&p).is_some_and(FieldSet::is_empty) {
                self.remove_path(&p);
            }
        }
    }

    /// True when the set has an entry at or under `prefix`.
    pub fn has_under(&self, prefix: &[String]) -> bool {
        self.node(prefix).is_some()
    }
}

/// How a list is merged and tracked.
#[derive(Clone, Debug, PartialEq)]
pub enum ListType {
    Atomic,
    Map(Vec<String>),
}

/// The schema (if any) at a point of an object, for list types.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    schema: Option<&'a Value>,
    /// Use the built-in table of keyed lists where no schema says otherwise.
    heuristics: bool,
}

impl<'a> Shape<'a> {
    pub fn new(schema: Option<&'a Value>, builtin: bool) -> Shape<'a> {
        Shape {
            schema,
            heuristics: builtin,
        }
    }

    pub fn field(&self, key: &str) -> Shape<'a> {
        let schema = self.schema.and_then(|s| {
            s.get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        });
        Shape {
            schema,
            heuristics: self.heuristics,
        }
    }

    pub fn metadata() -> Shape<'static> {
        Shape {
            schema: None,
            heuristics: true,
        }
    }

    pub fn items(&self) -> Shape<'a> {
        Shape {
            schema: self.schema.and_then(|s| s.get("items")),
            heuristics: self.heuristics,
        }
    }

    pub fn list_type(&self, field: &str, items: &[Value]) -> ListType {
        let keys: Vec<String> = match self
            .schema
            .and_then(|s| s.get("x-kubernetes-list-type"))
            .and_then(Value::as_str)
        {
            Some("map") => strings(
                self.schema
                    .and_then(|s| s.get("x-kubernetes-list-map-keys")),
            ),
            Some(_) => return ListType::Atomic,
            None if self.heuristics => builtin_merge_key(field, items)
                .into_iter()
                .map(String::from)
                .collect(),
            None => return ListType::Atomic,
        };
        // Items lacking a key cannot be tracked by key: treat the list as a whole.
        let keyed = !keys.is_empty()
            && items.iter().all(|i| {
                i.as_object()
                    .is_some_and(|o| keys.iter().all(|k| o.contains_key(k)))
            });
        if keyed {
            ListType::Map(keys)
        } else {
            ListType::Atomic
        }
    }
}

/// Merge keys of the well-known keyed lists of built-in kinds (strategic merge patch keys).
pub fn builtin_merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |k: &str| items.first().and_then(|i| i.get(k)).is_some();
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "ports" if has("containerPort") => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

fn key_element(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    format!("k:{}", Value::Object(m))
}

/// Which part of an object a write covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Everything but status (kinds with a status subresource).
    Main,
    /// Everything including status (kinds without a status subresource).
    All,
    /// Only status (the /status subresource).
    Status,
}

const META_TRACKED: [&str; 5] = [
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "generateName",
];

fn node_fields(v: &Value, shape: Shape<'_>, field: &str, dots: bool) -> FieldSet {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut s = map_fields(m, shape, dots);
            if dots {
                s.0.insert(".".into(), FieldSet::default());
            }
            s
        }
        Value::Array(items) => match shape.list_type(field, items) {
            ListType::Map(keys) => {
                let mut s = FieldSet::default();
                if dots {
                    s.0.insert(".".into(), FieldSet::default());
                }
                for item in items {
                    let mut item_set = item
                        .as_object()
                        .map(|m| map_fields(m, shape.items(), dots))
                        .unwrap_or_default();
                    item_set.0.insert(".".into(), FieldSet::default());
                    s.0.insert(key_element(item, &keys), item_set);
                }
                s
            }
            ListType::Atomic => FieldSet::default(),
        },
        _ => FieldSet::default(),
    }
}

fn map_fields(m: &Map<String, Value>, shape: Shape<'_>, dots: bool) -> FieldSet {
    let mut s = FieldSet::default();
    for (k, v) in m {
        s.0.insert(format!("f:{k}"), node_fields(v, shape.field(k), k, dots));
    }
    s
}

/// The fields an object sets, within `section`. `dots` adds `.` entries for containers, as
/// Update operations record them (Apply operations record only item `.` entries).
pub fn fields_of(obj: &Value, shape: Shape<'_>, section: Section, dots: bool) -> FieldSet {
    let mut s = FieldSet::default();
    let Some(m) = obj.as_object() else { return s };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if section == Section::Status {
                    continue;
                }
                let Some(meta) = v.as_object() else { continue };
                let mut ms = FieldSet::default();
                for (mk, mv) in meta {
                    if META_TRACKED.contains(&mk.as_str()) {
                        ms.0.insert(
                            format!("f:{mk}"),
                            node_fields(mv, Shape::metadata(), mk, dots),
                        );
                    }
                }
                if !ms.is_empty() {
                    s.0.insert("f:metadata".into(), ms);
                }
            }
            "status" if section == Section::Main => {}
            _ if section == Section::Status && k != "status" => {}
            _ => {
                s.0.insert(format!("f:{k}"), node_fields(v, shape.field(k), k, dots));
            }
        }
    }
    s
}

/// The value at a field path (`.` = the container itself).
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for p in path {
        cur = step(cur, p)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, element: &str) -> Option<&'a Value> {
    if element == "." {
        Some(cur)
    } else if let Some(f) = element.strip_prefix("f:") {
        cur.get(f)
    } else if let Some(k) = element.strip_prefix("k:") {
        let keys: Map<String, Value> = serde_json::from_str(k).ok()?;
        cur.as_array()?
            .iter()
            .find(|item| keys.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
    } else {
        None
    }
}

/// Removes what `path` designates from the object (a field, a keyed item, or with a final
/// `.` the container itself).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let (parent_path, last) = match path {
        [] => return,
        [rest @ .., last] if last == "." => {
            if rest.is_empty() {
                return;
            }
            (&rest[..rest.len() - 1], &rest[rest.len() - 1])
        }
        [rest @ .., last] => (rest, last),
    };
    let mut cur = obj;
    for p in parent_path {
        let next = if let Some(f) = p.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = p.strip_prefix("k:") {
            let Ok(keys) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| keys.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:")
        && let Ok(keys) = serde_json::from_str::<Map<String, Value>>(k)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|item| !keys.iter().all(|(kk, kv)| item.get(kk) == Some(kv)));
    }
}

/// `.data.a`, `.spec.listeners[name="http"].port` (structured-merge-diff's path syntax).
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if p == "." {
            continue;
        }
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = keys.iter().map(|(kk, kv)| format!("{kk}={kv}")).collect();
            s.push('[');
            s.push_str(&parts.join(","));
            s.push(']');
        }
    }
    s
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn same_identity(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How the real server names a manager in conflict messages.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

pub fn parse_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            ManagedEntry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e
                    .get("fieldsV1")
                    .map(FieldSet::from_json)
                    .unwrap_or_default(),
            }
        })
        .collect()
}

pub fn render_managed(entries: &[ManagedEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(e.operation));
                m.insert("apiVersion".into(), json!(e.api_version));
                m.insert("time".into(), json!(e.time));
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.fields.to_json());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Identity of the writer of an operation.
#[derive(Clone, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub time: &'a str,
}

/// Records an Update: the manager gains the fields it changed, others lose them.
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    shape: Shape<'_>,
    section: Section,
    w: &Writer<'_>,
) {
    let new_set = fields_of(new, shape, section, true);
    let mut changed = FieldSet::default();
    for p in new_set.leaves() {
        let differs = match old {
            None => true,
            Some(o) if p.last().is_some_and(|l| l == ".") => value_at(o, &p).is_none(),
            Some(o) => value_at(o, &p) != value_at(new, &p),
        };
        if differs {
            changed.insert_path(&p);
        }
    }
    let mut removed = FieldSet::default();
    if let Some(o) = old {
        for p in fields_of(o, shape, section, true).leaves() {
            if value_at(new, &p).is_none() {
                removed.insert_path(&p);
            }
        }
    }
    for e in entries.iter_mut() {
        e.fields.subtract(&removed);
        if !e.same_identity(w.manager, "Update", w.subresource) {
            e.fields.subtract(&changed);
        }
    }
    match entries
        .iter_mut()
        .find(|e| e.same_identity(w.manager, "Update", w.subresource))
    {
        Some(e) => {
            e.fields.union(&changed);
            if !changed.is_empty() {
                e.time = w.time.to_string();
                e.api_version = w.api_version.to_string();
            }
        }
        None if !changed.is_empty() => entries.push(ManagedEntry {
            manager: w.manager.to_string(),
            operation: "Update".into(),
            api_version: w.api_version.to_string(),
            time: w.time.to_string(),
            subresource: w.subresource.to_string(),
            fields: changed,
        }),
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// One field two managers disagree on.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub path: String,
}

/// The 409 message the real server gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager, c.path
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry(&c.manager).or_default().push(&c.path);
    }
    let mut lines = Vec::new();
    for (m, paths) in by_manager {
        lines.push(format!("conflicts with {m}:"));
        for p in paths {
            lines.push(format!("- {p}"));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn merge_apply(dst: &mut Value, src: &Value, shape: Shape<'_>, field: &str) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                if sv.is_null() {
                    d.remove(k);
                    continue;
                }
                match d.get_mut(k) {
                    Some(dv) => merge_apply(dv, sv, shape.field(k), k),
                    None => {
                        d.insert(k.clone(), sv.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => match shape.list_type(field, s) {
            ListType::Map(keys)
                if shape.list_type(field, d) != ListType::Atomic || d.is_empty() =>
            {
                for item in s {
                    let found = d
                        .iter_mut()
                        .find(|di| keys.iter().all(|k| di.get(k) == item.get(k)));
                    match found {
                        Some(di) => merge_apply(di, item, shape.items(), ""),
                        None => d.push(item.clone()),
                    }
                }
            }
            _ => *d = s.clone(),
        },
        (d, s) => *d = s.clone(),
    }
}

/// Server-side apply of `config` onto `live` (None: the object does not exist yet). Updates
/// `entries` and returns the merged object, or the conflicts when `force` is false.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    entries: &mut Vec<ManagedEntry>,
    shape: Shape<'_>,
    section: Section,
    force: bool,
    w: &Writer<'_>,
) -> Result<Value, Vec<Conflict>> {
    let config_set = fields_of(config, shape, section, false);
    let mine = |e: &ManagedEntry| e.same_identity(w.manager, "Apply", w.subresource);
    if let Some(live) = live {
        let mut conflicts = Vec::new();
        let mut forced: Vec<(usize, Vec<String>)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if mine(e) {
                continue;
            }
            for p in config_set.leaves() {
                if p.last().is_some_and(|l| l == ".")
                    || !e.fields.node(&p).is_some_and(FieldSet::is_empty)
                {
                    continue;
                }
                if value_at(live, &p) != value_at(config, &p) {
                    conflicts.push(Conflict {
                        manager: e.display(),
                        path: path_string(&p),
                    });
                    forced.push((i, p));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
        for (i, p) in forced {
            entries[i].fields.remove_path(&p);
        }
    }
    let mut obj = match live {
        Some(l) => l.clone(),
        None => json!({}),
    };
    if let Some(prev) = entries.iter().find(|e| mine(e)).map(|e| e.fields.clone()) {
        for p in prev.leaves() {
            if config_set.contains_path(&p) {
                continue;
            }
            let scope: &[String] = if p.last().is_some_and(|l| l == ".") {
                &p[..p.len() - 1]
            } else {
                &p
            };
            let shared = entries
                .iter()
                .any(|e| !mine(e) && e.fields.has_under(scope));
            if !shared {
                remove_at(&mut obj, &p);
            }
        }
    }
    let mut cfg = config.clone();
    if let Some(m) = cfg.as_object_mut() {
        match section {
            Section::Main => {
                m.remove("status");
            }
            Section::Status => {
                m.retain(|k, _| matches!(k.as_str(), "status" | "apiVersion" | "kind"))
            }
            Section::All => {}
        }
    }
    merge_apply(&mut obj, &cfg, shape, "");
    entries.retain(|e| !mine(e));
    entries.retain(|e| !e.fields.is_empty());
    if !config_set.is_empty() {
        entries.push(ManagedEntry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: w.time.to_string(),
            subresource: w.subresource.to_string(),
            fields: config_set,
        });
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "v1",
            subresource: "",
            time: "2026-01-01T00:00:00Z",
        }
    }

    /// `manager` updates a ConfigMap from `old` to `new`.
    fn update(entries: &mut Vec<ManagedEntry>, old: Option<&Value>, new: &Value, manager: &str) {
        let shape = Shape::new(None, true);
        record_update(entries, old, new, shape, Section::All, &w(manager));
    }

    /// `manager` applies `config` over `live` (a kind without a status subresource).
    fn apply_as(
        manager: &str,
        live: Option<&Value>,
        config: &Value,
        entries: &mut Vec<ManagedEntry>,
        shape: Shape<'_>,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        apply(
            live,
            config,
            entries,
            shape,
            Section::All,
            force,
            &w(manager),
        )
    }

    #[test]
    fn update_records_golden_style_fields() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm1", "labels": {"app": "a"}}, "data": {"k": "v"}});
        let mut entries = Vec::new();
        update(&mut entries, None, &obj, "python-requests");
        assert_eq!(
            entries[0].fields.to_json(),
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
        );
        // Another manager changing data.k takes it over; adding a key gives it that key.
        let mut new = obj.clone();
        new["data"]["k"] = json!("v2");
        new["data"]["x"] = json!("1");
        update(&mut entries, Some(&obj), &new, "other");
        assert_eq!(
            entries[1].fields.to_json(),
            json!({"f:data": {"f:k": {}, "f:x": {}}})
        );
        assert_eq!(
            entries[0].fields.to_json(),
            json!({"f:data": {".": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
        );
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let shape = Shape::new(None, true);
        let c1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"a": "1", "b": "2"}});
        let mut entries = Vec::new();
        let live = apply_as("gwtest", None, &c1, &mut entries, shape, false).unwrap();
        assert_eq!(
            entries[0].fields.to_json(),
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        );
        // Same value from another manager: shared, no conflict.
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"a": "1"}});
        let mut e2 = entries.clone();
        assert!(apply_as("other", Some(&live), &same, &mut e2, shape, false).is_ok());
        // Different value: conflict naming the owner and the path.
        let c2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"a": "9"}});
        let err = apply_as(
            "other",
            Some(&live),
            &c2,
            &mut entries.clone(),
            shape,
            false,
        )
        .unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"gwtest\": .data.a"
        );
        // Forced: the field moves.
        let mut e3 = entries.clone();
        let forced = apply_as("other", Some(&live), &c2, &mut e3, shape, true).unwrap();
        assert_eq!(forced["data"], json!({"a": "9", "b": "2"}));
        assert_eq!(e3[0].fields.to_json(), json!({"f:data": {"f:b": {}}}));
        // The first manager drops b: it is removed from the object.
        let c3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"a": "1"}});
        let after = apply_as("gwtest", Some(&live), &c3, &mut entries, shape, false).unwrap();
        assert_eq!(after["data"], json!({"a": "1"}));
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "listeners": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object"}}}}}});
        let shape = Shape::new(Some(&schema), false);
        let live = json!({"spec": {"listeners": [{"name": "a", "port": 1}]}});
        let mut entries = vec![];
        let cfg = json!({"spec": {"listeners": [{"name": "b", "port": 2}]}});
        let out = apply_as("m", Some(&live), &cfg, &mut entries, shape, false).unwrap();
        assert_eq!(
            out["spec"]["listeners"],
            json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])
        );
        assert_eq!(
            entries[0].fields.to_json(),
            json!({"f:spec": {"f:listeners": {"k:{\"name\":\"b\"}": {".": {}, "f:name": {}, "f:port": {}}}}})
        );
        assert_eq!(
            path_string(&[
                "f:spec".into(),
                "f:listeners".into(),
                "k:{\"name\":\"b\"}".into(),
                "f:port".into()
            ]),
            ".spec.listeners[name=\"b\"].port"
        );
    }
}
