//! The invariants of `x-kubernetes-list-type`: the items of a `set` are unique, the items of
//! a `map` are unique by their `x-kubernetes-list-map-keys`. A repeated item is a
//! `Duplicate value` error at its index (for a map: the key fields, printed as a Go map).
//! These errors do not stop the CEL rules.

use serde_json::{Map, Value};

use crate::cause::Cause;

/// The duplicates in `v` (an object validated by `schema`), depth first.
pub fn validate(schema: &Value, v: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    walk(schema, v, "", &mut out);
    out
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                let s = props.and_then(|p| p.get(k)).or(additional);
                if let Some(s) = s {
                    walk(s, child, &child_path(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            out.push(Cause::duplicate(format!("{path}[{i}]"), item));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let key_of = |item: &Value| -> Option<Map<String, Value>> {
                        let m = item.as_object()?;
                        let mut key = Map::new();
                        for k in &keys {
                            if let Some(x) = m.get(*k) {
                                key.insert((*k).to_string(), x.clone());
                            }
                        }
                        Some(key)
                    };
                    let mut seen: Vec<Map<String, Value>> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let Some(key) = key_of(item) else { continue };
                        if seen.contains(&key) {
                            out.push(Cause::duplicate(
                                format!("{path}[{i}]"),
                                &Value::Object(key),
                            ));
                        } else {
                            seen.push(key);
                        }
                    }
                }
                _ => {}
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(is, item, &format!("{path}[{i}]"), out);
                }
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
    fn duplicates_in_sets_and_maps() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "hostnames": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "listeners": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}}}}}});
        let o = json!({"spec": {"hostnames": ["a", "b", "a"],
            "listeners": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}});
        let msgs: Vec<String> = validate(&schema, &o).iter().map(Cause::render).collect();
        assert_eq!(
            msgs,
            [
                "spec.hostnames[2]: Duplicate value: \"a\"",
                "spec.listeners[1]: Duplicate value: map[string]interface {}{\"name\":\"http\"}",
            ]
        );
    }
}
