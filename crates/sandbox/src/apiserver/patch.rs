//! Patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
//! patch (what kubectl's client-side apply sends for built-in kinds: merge patch plus keyed
//! list merging and the `$patch` / `$setElementOrder` / `$deleteFromPrimitiveList` /
//! `$retainKeys` directives).

use serde_json::{Map, Value};

use super::fields::builtin_merge_key;

/// Patch content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        Some(match base {
            "application/merge-patch+json" => PatchType::Merge,
            "application/json-patch+json" => PatchType::Json,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => PatchType::Apply,
            _ => return None,
        })
    }
}

/// RFC 7386.
pub fn merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

/// RFC 6902; the error is worded like the real server's.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let patch: json_patch::Patch =
        serde_json::from_value(ops.clone()).map_err(|e| e.to_string())?;
    json_patch::patch(doc, &patch.0).map_err(|e| e.to_string())
}

/// Primitive lists that strategic merge patch merges (union) instead of replacing.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch for built-in kinds.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    smp(doc, patch, "")
}

fn smp(doc: &mut Value, patch: &Value, _field: &str) {
    let Some(p) = patch.as_object() else {
        *doc = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        strip_directives(&mut clean);
        *doc = clean;
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    let mut retain: Option<Vec<String>> = None;
    for (k, pv) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(a) = pv.as_array() {
                orders.push((field.to_string(), a.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(del)) = (
                doc.get_mut(field).and_then(Value::as_array_mut),
                pv.as_array(),
            ) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        if k == "$retainKeys" {
            retain = pv.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            });
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let d = doc.as_object_mut().expect("object");
        if pv.is_null() {
            d.remove(k);
            continue;
        }
        match (d.get_mut(k), pv) {
            (Some(dv @ Value::Object(_)), Value::Object(po)) => {
                if po.get("$patch").and_then(Value::as_str) == Some("delete") {
                    d.remove(k);
                } else {
                    smp(dv, pv, k);
                }
            }
            (Some(Value::Array(da)), Value::Array(pa)) => merge_list(da, pa, k),
            _ => {
                let mut clean = pv.clone();
                strip_directives(&mut clean);
                d.insert(k.clone(), clean);
            }
        }
    }
    if let Some(keep) = retain
        && let Some(d) = doc.as_object_mut()
    {
        d.retain(|k, _| keep.contains(k));
    }
    for (field, order) in orders {
        if let Some(list) = doc.get_mut(&field).and_then(Value::as_array_mut) {
            reorder(list, &order, &field);
        }
    }
}

fn merge_list(doc: &mut Vec<Value>, patch: &[Value], field: &str) {
    let all_objects =
        !patch.is_empty() && patch.iter().all(Value::is_object) && doc.iter().all(Value::is_object);
    let key = if all_objects {
        builtin_merge_key(field, patch).or_else(|| builtin_merge_key(field, doc))
    } else {
        None
    };
    if let Some(key) = key {
        for item in patch {
            let id = item.get(key);
            let pos = doc.iter().position(|d| d.get(key) == id && id.is_some());
            let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    doc.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => smp(&mut doc[i], item, field),
                (None, false) => {
                    let mut clean = item.clone();
                    strip_directives(&mut clean);
                    doc.push(clean);
                }
            }
        }
    } else if merges_primitives(field) {
        for item in patch {
            if !doc.contains(item) {
                doc.push(item.clone());
            }
        }
    } else {
        let mut clean = Value::Array(patch.to_vec());
        strip_directives(&mut clean);
        if let Value::Array(a) = clean {
            *doc = a;
        }
    }
}

fn reorder(list: &mut [Value], order: &[Value], field: &str) {
    let key = builtin_merge_key(field, order);
    let pos_of = |v: &Value| -> usize {
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k).is_some() && o.get(k) == v.get(k),
                None => o == v,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(pos_of);
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for child in m.values_mut() {
                strip_directives(child);
            }
        }
        Value::Array(a) => {
            for child in a {
                strip_directives(child);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_keyed_lists() {
        let mut doc = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
            "args": ["1", "2"]}, "metadata": {"finalizers": ["f1"]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}], "args": ["3"]},
            "metadata": {"finalizers": ["f2"], "labels": {"l": "v"}}});
        strategic_merge(&mut doc, &patch);
        assert_eq!(
            doc["spec"]["containers"],
            json!([{"name": "a", "image": "z"}])
        );
        assert_eq!(doc["spec"]["args"], json!(["3"]));
        assert_eq!(doc["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(doc["metadata"]["labels"], json!({"l": "v"}));
        strategic_merge(
            &mut doc,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"], "labels": null}}),
        );
        assert_eq!(doc["metadata"], json!({"finalizers": ["f2"]}));
    }

    #[test]
    fn json_patch_and_merge_patch() {
        let mut doc = json!({"data": {"k": "v"}});
        merge_patch(&mut doc, &json!({"data": {"extra": "x", "k": null}}));
        assert_eq!(doc, json!({"data": {"extra": "x"}}));
        json_patch(
            &mut doc,
            &json!([{"op": "replace", "path": "/data/extra", "value": "y"}]),
        )
        .unwrap();
        assert_eq!(doc, json!({"data": {"extra": "y"}}));
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/data/extra", "value": "z"}])
            )
            .is_err()
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}
