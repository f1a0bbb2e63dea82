//! Objects in memory, the global resourceVersion counter and the bounded change history that
//! watches replay. Writers never wait for watchers: a change is appended to the history and a
//! `watch` channel carries the newest resourceVersion; each watcher catches up at its own pace
//! and gets 410 Expired if it falls out of the window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::resources::{GroupResource, Registry};

/// How many changes are kept for watches to resume from.
pub const HISTORY_CAPACITY: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub gr: GroupResource,
    pub event: EventType,
    pub namespace: String,
    pub name: String,
    /// The object after the change (for DELETED: the last state, with the deletion's RV).
    pub object: Arc<Value>,
    /// The object before the change (selectors need it to turn MODIFIED into ADDED/DELETED).
    pub prev: Option<Arc<Value>>,
}

/// (namespace or "", name).
pub type ObjKey = (String, String);

/// Everything behind the store lock.
pub struct Inner {
    rv: u64,
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<ObjKey, Arc<Value>>>,
    /// uid -> where the object lives (owner-reference garbage collection).
    uids: HashMap<String, (GroupResource, ObjKey)>,
    history: VecDeque<Arc<Change>>,
    /// Watches may start from any resourceVersion >= this one.
    history_start: u64,
    notify: watch::Sender<u64>,
    /// Bumped by [`Inner::compact`]: watches opened before end with 410 Expired.
    epoch: u64,
    /// Next ClusterIP handed to a Service (10.96.0.0/16).
    pub next_cluster_ip: u32,
}

/// The store: a mutex around [`Inner`] plus the change notification channel.
pub struct Store {
    inner: Mutex<Inner>,
    notify: watch::Sender<u64>,
}

impl Store {
    pub fn new() -> Store {
        let base = first_resource_version();
        let (notify, _) = watch::channel(base);
        Store {
            inner: Mutex::new(Inner {
                rv: base,
                registry: Registry::with_builtins(),
                objects: HashMap::new(),
                uids: HashMap::new(),
                history: VecDeque::with_capacity(HISTORY_CAPACITY),
                history_start: base,
                notify: notify.clone(),
                epoch: 0,
                next_cluster_ip: 1,
            }),
            notify,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that sees the newest committed resourceVersion.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }
}

/// Where the resourceVersion counter starts: the start time in milliseconds. The store is in
/// memory, so a server restarted on the same address starts a new history; numbering it
/// above the previous one's means a client still watching from an old version is told it is
/// too old (410) and re-lists, instead of being served the new history from the middle.
fn first_resource_version() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

pub fn meta(obj: &Value) -> &Value {
    obj.get("metadata").unwrap_or(&Value::Null)
}

pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    meta(obj).get(key).and_then(Value::as_str).unwrap_or("")
}

/// The strings of a JSON array (anything else: none).
pub fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

impl Inner {
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn history_start(&self) -> u64 {
        self.history_start
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Forgets the change history, like an etcd compaction followed by a watch-cache restart:
    /// open watches end with 410 Expired and watches may only start from now on.
    pub fn compact(&mut self) {
        self.history.clear();
        self.history_start = self.rv;
        self.epoch += 1;
        self.notify.send_replace(self.rv);
    }

    /// Marks the current state as the oldest a watch may start from (called once seeded).
    pub fn seal_history(&mut self) {
        self.history.clear();
        self.history_start = self.rv;
    }

    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(gr)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of a resource, in one namespace or all, ordered by namespace then name.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&'a str>,
    ) -> Vec<&'a Arc<Value>> {
        let Some(m) = self.objects.get(gr) else {
            return Vec::new();
        };
        match namespace {
            None => m.values().collect(),
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .collect(),
        }
    }

    pub fn count_in_namespace(&self, namespace: &str) -> usize {
        self.objects
            .iter()
            .filter(|(gr, _)| !(gr.group.is_empty() && gr.plural == "namespaces"))
            .map(|(_, m)| {
                m.range((namespace.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == namespace)
                    .count()
            })
            .sum()
    }

    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<(GroupResource, String)> {
        let mut out = Vec::new();
        for (gr, m) in &self.objects {
            if gr.group.is_empty() && gr.plural == "namespaces" {
                continue;
            }
            for ((n, name), _) in m.range((namespace.to_string(), String::new())..) {
                if n != namespace {
                    break;
                }
                out.push((gr.clone(), name.clone()));
            }
        }
        out
    }

    pub fn all_keys(&self, gr: &GroupResource) -> Vec<ObjKey> {
        self.objects
            .get(gr)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn locate_uid(&self, uid: &str) -> Option<&(GroupResource, ObjKey)> {
        self.uids.get(uid)
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<(GroupResource, ObjKey)> {
        let mut out = Vec::new();
        for (gr, m) in &self.objects {
            for (k, obj) in m {
                let owned = meta(obj)
                    .get("ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                    });
                if owned {
                    out.push((gr.clone(), k.clone()));
                }
            }
        }
        out
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, change: Change) {
        if self.history.len() >= HISTORY_CAPACITY
            && let Some(old) = self.history.pop_front()
        {
            self.history_start = old.rv;
        }
        let rv = change.rv;
        self.history.push_back(Arc::new(change));
        self.notify.send_replace(rv);
    }

    /// Stores `obj` (created or replaced) with a fresh resourceVersion; returns the stored object.
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value) -> Arc<Value> {
        let rv = self.bump();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let namespace = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let uid = meta_str(&obj, "uid").to_string();
        let obj = Arc::new(obj);
        let key = (namespace.clone(), name.clone());
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        if !uid.is_empty() {
            self.uids.insert(uid, (gr.clone(), key));
        }
        let event = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv,
            gr: gr.clone(),
            event,
            namespace,
            name,
            object: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object; the returned last state carries the deletion's resourceVersion.
    pub fn remove(
        &mut self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let key = (namespace.to_string(), name.to_string());
        let prev = self.objects.get_mut(gr)?.remove(&key)?;
        let rv = self.bump();
        let mut last = (*prev).clone();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        self.uids.remove(meta_str(&last, "uid"));
        let last = Arc::new(last);
        self.record(Change {
            rv,
            gr: gr.clone(),
            event: EventType::Deleted,
            namespace: namespace.to_string(),
            name: name.to_string(),
            object: last.clone(),
            prev: Some(prev),
        });
        Some(last)
    }

    /// Drops all objects of a resource without events (its kind is gone).
    pub fn drop_resource(&mut self, gr: &GroupResource) {
        if let Some(m) = self.objects.remove(gr) {
            for obj in m.values() {
                self.uids.remove(meta_str(obj, "uid"));
            }
        }
    }

    /// Changes with rv > `after`, or `Err(history_start)` when some of them were evicted.
    pub fn changes_after(&self, after: u64) -> Result<Vec<Arc<Change>>, u64> {
        if after < self.history_start {
            return Err(self.history_start);
        }
        let idx = self.history.partition_point(|c| c.rv <= after);
        Ok(self.history.range(idx..).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr() -> GroupResource {
        GroupResource {
            group: String::new(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn put_and_remove_assign_increasing_versions_and_record_history() {
        let store = Store::new();
        let mut g = store.lock();
        let start = g.current_rv();
        let rv = |o: &Value| meta_str(o, "resourceVersion").parse::<u64>().unwrap() - start;
        let a = g.put(
            &gr(),
            json!({"metadata": {"name": "a", "namespace": "x", "uid": "u1"}}),
        );
        assert_eq!(rv(&a), 1);
        let b = g.put(
            &gr(),
            json!({"metadata": {"name": "a", "namespace": "x", "uid": "u1"}, "data": {}}),
        );
        assert_eq!(rv(&b), 2);
        let gone = g.remove(&gr(), "x", "a").unwrap();
        assert_eq!(rv(&gone), 3);
        let evs: Vec<EventType> = g
            .changes_after(start)
            .unwrap()
            .iter()
            .map(|c| c.event)
            .collect();
        assert_eq!(
            evs,
            [EventType::Added, EventType::Modified, EventType::Deleted]
        );
        assert_eq!(g.changes_after(start + 2).unwrap().len(), 1);
        assert!(g.locate_uid("u1").is_none());
    }

    #[test]
    fn evicted_history_is_reported_as_expired() {
        let store = Store::new();
        let mut g = store.lock();
        let start = g.current_rv();
        for i in 0..(HISTORY_CAPACITY + 10) {
            g.put(
                &gr(),
                json!({"metadata": {"name": format!("o{i}"), "namespace": "x"}}),
            );
        }
        assert_eq!(g.changes_after(start + 1).err(), Some(start + 10));
        assert!(g.changes_after(start + 10).is_ok());
        assert_eq!(g.list(&gr(), Some("x")).len(), HISTORY_CAPACITY + 10);
        assert!(g.list(&gr(), Some("y")).is_empty());
    }
}
