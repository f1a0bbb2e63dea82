//! What server-side apply checks before it merges anything: the apply configuration is
//! converted to a typed value of the CRD's schema (structured-merge-diff's validation), and a
//! value of the wrong type, a field the schema does not declare, or an item of an associative
//! list without its key fails the whole request with `500 failed to create typed patch object
//! (...)`: how kube-apiserver 1.28 answers (golden 09), whatever `fieldValidation` says.
//!
//! Paths are structured-merge-diff's: `.spec.rules[0]` for atomic lists, `[name="x"]` for an
//! item of a `map` list, `[="v"]` for a `set` item. Only types are checked here; bounds,
//! patterns, enums and CEL rules are the validation's (422) after the merge.

use serde_json::{Map, Value};

use crate::cause::{go_quote, go_sharp_v, go_type, go_v};

/// The fields of `metadata` (ObjectMeta), in the order the API server writes them.
pub const OBJECT_META: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The errors of an apply configuration against a CRD version's schema, as one message
/// (`<path>: <error>`, or `errors:` and one indented line per error), or None when it is
/// well-typed.
pub fn apply_errors(schema: &Value, config: &Value) -> Option<String> {
    let mut errs = Vec::new();
    let Some(m) = config.as_object() else {
        return Some(format!("expected map, got {}", unstructured_v(config)));
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in m {
        let path = format!(".{k}");
        match k.as_str() {
            "apiVersion" | "kind" => scalar("string", v, &path, &mut errs),
            "metadata" => metadata(v, &path, &mut errs),
            _ => match props.and_then(|p| p.get(k)) {
                Some(s) => walk(s, v, &path, &mut errs),
                None if preserves(schema) => {}
                None => {
                    errs.push(format!("{path}: field not declared in schema"));
                    break;
                }
            },
        }
    }
    match errs.len() {
        0 => None,
        1 => errs.pop(),
        _ => Some(
            std::iter::once("errors:".to_string())
                .chain(errs.iter().map(|e| format!("  {e}")))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// `%v` of structured-merge-diff's value wrapper (`&{...}`).
fn unstructured_v(v: &Value) -> String {
    format!("&{{{}}}", go_v(v))
}

/// `%#v` of structured-merge-diff's value wrapper.
fn unstructured_sharp_v(v: &Value) -> String {
    format!("&value.valueUnstructured{{Value:{}}}", go_sharp_v(v))
}

fn scalar(ty: &str, v: &Value, path: &str, errs: &mut Vec<String>) {
    let ok = matches!(
        (ty, v),
        (_, Value::Null)
            | ("string", Value::String(_))
            | ("boolean", Value::Bool(_))
            | ("integer" | "number", Value::Number(_))
            | (
                "untyped",
                Value::String(_) | Value::Number(_) | Value::Bool(_)
            )
    );
    if ok {
        return;
    }
    let msg = match ty {
        "string" => format!("expected string, got {}", unstructured_sharp_v(v)),
        "boolean" => format!("expected boolean, got {}", unstructured_v(v)),
        "integer" | "number" => format!("expected numeric (int or float), got {}", go_type(v)),
        _ => format!("expected scalar, got {}", unstructured_v(v)),
    };
    errs.push(format!("{path}: {msg}"));
}

/// The map of `v`; None for null (an empty map) and for anything else (an error).
fn map_value<'a>(
    v: &'a Value,
    path: &str,
    errs: &mut Vec<String>,
) -> Option<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        Value::Null => None,
        other => {
            errs.push(format!(
                "{path}: expected map, got {}",
                unstructured_v(other)
            ));
            None
        }
    }
}

fn metadata(v: &Value, path: &str, errs: &mut Vec<String>) {
    let Some(m) = map_value(v, path, errs) else {
        return;
    };
    for (k, x) in m {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "labels" | "annotations" => match x {
                Value::Object(entries) => {
                    for (ek, ev) in entries {
                        scalar("string", ev, &format!("{p}.{ek}"), errs);
                    }
                }
                Value::Null => {}
                other => errs.push(format!("{p}: expected map, got {}", unstructured_v(other))),
            },
            "finalizers" => match x {
                Value::Array(items) => {
                    for item in items {
                        scalar(
                            "string",
                            item,
                            &format!("{p}[={}]", value_string(item)),
                            errs,
                        );
                    }
                }
                Value::Null => {}
                other => errs.push(format!("{p}: expected list, got {}", unstructured_v(other))),
            },
            "generation" | "deletionGracePeriodSeconds" => scalar("integer", x, &p, errs),
            "ownerReferences" | "managedFields" => {}
            k if OBJECT_META.contains(&k) => scalar("string", x, &p, errs),
            _ => {
                errs.push(format!("{p}: field not declared in schema"));
                return;
            }
        }
    }
}

/// structured-merge-diff's `value.ToString` of a key value (JSON-like).
fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

fn schema_kind(schema: &Value) -> &str {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return "untyped";
    }
    match schema.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None if schema.get("properties").is_some()
            || schema.get("additionalProperties").is_some() =>
        {
            "object"
        }
        None if schema.get("items").is_some() => "array",
        None => "any",
    }
}

fn walk(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    match schema_kind(schema) {
        "object" => object(schema, v, path, errs),
        "array" => list(schema, v, path, errs),
        "any" => {}
        t => scalar(t, v, path, errs),
    }
}

fn object(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let Some(m) = map_value(v, path, errs) else {
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let open = preserves(schema)
        || additional.and_then(Value::as_bool) == Some(true)
        || (props.is_none() && additional.is_none());
    for (k, x) in m {
        let p = format!("{path}.{k}");
        if let Some(s) = props.and_then(|ps| ps.get(k)) {
            walk(s, x, &p, errs);
        } else if let Some(s) = additional.filter(|a| a.is_object()) {
            walk(s, x, &p, errs);
        } else if !open {
            errs.push(format!("{p}: field not declared in schema"));
            return;
        }
    }
}

fn list(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let items = match v {
        Value::Null => return,
        Value::Array(items) => items,
        other => {
            errs.push(format!(
                "{path}: expected list, got {}",
                unstructured_v(other)
            ));
            return;
        }
    };
    let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
    let list_type = schema
        .get("x-kubernetes-list-type")
        .and_then(Value::as_str)
        .unwrap_or("atomic");
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let element = match list_type {
            "map" => match map_key(&item_schema, &keys, item) {
                Ok(k) => k,
                Err(e) => {
                    errs.push(format!("{path}: element {i}: {e}"));
                    continue;
                }
            },
            "set" => match item {
                Value::Object(_) => {
                    errs.push(format!(
                        "{path}: element {i}: associative list without keys has an element that's a map type"
                    ));
                    continue;
                }
                Value::Array(_) => {
                    errs.push(format!(
                        "{path}: element {i}: not supported: associative list with lists as elements"
                    ));
                    continue;
                }
                Value::Null => {
                    errs.push(format!(
                        "{path}: element {i}: associative list without keys has an element that's an explicit null"
                    ));
                    continue;
                }
                x => format!("[={}]", value_string(x)),
            },
            _ => format!("[{i}]"),
        };
        walk(&item_schema, item, &format!("{path}{element}"), errs);
    }
}

/// The `[k1=v1,k2=v2]` path element of an item of a `map` list (keys sorted).
fn map_key(item_schema: &Value, keys: &[&str], item: &Value) -> Result<String, String> {
    let m: &Map<String, Value> = match item {
        Value::Null => return Err("associative list with keys may not have a null element".into()),
        Value::Object(m) => m,
        _ => return Err("associative list with keys may not have non-map elements".into()),
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    for k in keys {
        let v = match m.get(*k) {
            Some(v) => v.clone(),
            None => match item_schema
                .get("properties")
                .and_then(|p| p.get(*k))
                .and_then(|p| p.get("default"))
            {
                Some(d) => d.clone(),
                None => {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                        go_quote(k)
                    ));
                }
            },
        };
        parts.push((k.to_string(), value_string(&v)));
    }
    parts.sort();
    Ok(format!(
        "[{}]",
        parts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "rules": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "object", "properties": {
                    "matches": {"type": "array", "items": {"type": "object", "properties": {
                        "headers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}}}}}}}},
                "hostnames": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "port": {"type": "integer"}}}}})
    }

    #[test]
    fn typed_errors_as_structured_merge_diff_words_them() {
        let cfg = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "ssa-typed"},
            "spec": {"rules": [{"matches": [{"headers": [{"name": "x-a", "value": true}]}]}]}});
        assert_eq!(
            apply_errors(&schema(), &cfg).as_deref(),
            Some(
                ".spec.rules[0].matches[0].headers[name=\"x-a\"].value: expected string, got &value.valueUnstructured{Value:true}"
            )
        );
        let cfg = json!({"spec": {"port": "80", "bogus": 1, "hostnames": [5]}});
        assert_eq!(
            apply_errors(&schema(), &cfg).as_deref(),
            Some(
                "errors:\n  .spec.port: expected numeric (int or float), got string\n  .spec.bogus: field not declared in schema"
            )
        );
        assert_eq!(
            apply_errors(
                &schema(),
                &json!({"spec": {"rules": [{"matches": [{"headers": [{"value": "v"}]}]}]}})
            )
            .as_deref(),
            Some(
                ".spec.rules[0].matches[0].headers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
            )
        );
        assert!(apply_errors(&schema(), &json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"hostnames": ["a"]}})).is_none());
    }
}
