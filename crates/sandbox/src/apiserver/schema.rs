//! OpenAPI v3 structural-schema handling for custom resources: defaulting (`default`),
//! pruning of unknown fields (and `fieldValidation=Strict` errors), and validation of the
//! common keywords (type, enum, pattern, lengths, item counts, bounds, required).
//! `x-kubernetes-validations` (CEL) rules are not evaluated.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::{Value, json};

use super::status::Cause;

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Applies `default` values (recursively, including inside applied defaults). The root's
/// `metadata` is left alone.
pub fn apply_defaults(schema: &Value, v: &mut Value) {
    defaults_rec(schema, v, true)
}

fn defaults_rec(schema: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if root && k == "metadata" {
                        continue;
                    }
                    if m.get(k).is_some_and(Value::is_null) && !flag(ps, "nullable") {
                        m.remove(k);
                    }
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
                for (k, child) in m.iter_mut() {
                    if root && k == "metadata" {
                        continue;
                    }
                    if let Some(ps) = props.get(k) {
                        defaults_rec(ps, child, false);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in m.values_mut() {
                    defaults_rec(ap, child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for item in items {
                    defaults_rec(is, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Removes fields the schema does not declare; returns their paths (`spec.foo`).
pub fn prune(schema: &Value, v: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_rec(schema, v, "", true, &mut unknown);
    unknown
}

fn prune_rec(schema: &Value, v: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_path = join(path, &k);
                if let Some(ps) = props.and_then(|p| p.get(&k)) {
                    if m.get(&k).is_some_and(Value::is_null) && !flag(ps, "nullable") {
                        m.remove(&k);
                        continue;
                    }
                    prune_rec(
                        ps,
                        m.get_mut(&k).expect("present"),
                        &child_path,
                        false,
                        unknown,
                    );
                } else if let Some(ap) = additional.filter(|a| a.is_object()) {
                    prune_rec(
                        ap,
                        m.get_mut(&k).expect("present"),
                        &child_path,
                        false,
                        unknown,
                    );
                } else if additional.and_then(Value::as_bool) == Some(true) || preserve {
                } else {
                    m.remove(&k);
                    unknown.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_rec(is, item, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

static REGEXES: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn pattern_matches(pattern: &str, s: &str) -> bool {
    let mut cache = REGEXES.lock().unwrap_or_else(|e| e.into_inner());
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok());
    // A pattern this engine cannot compile is not held against the object.
    re.as_ref().is_none_or(|r| r.is_match(s))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates an object against its root schema (apiVersion, kind and metadata skipped).
pub fn validate(schema: &Value, v: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_rec(schema, v, "", true, &mut causes);
    causes
}

fn validate_rec(schema: &Value, v: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    if v.is_null() && flag(schema, "nullable") {
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate_rec(s, v, path, root, causes);
        }
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t
            || (t == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            causes.push(Cause::invalid_value(
                path,
                &json!(actual),
                &format!("{path} in body must be of type {t}: {actual:?}"),
            ));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        causes.push(Cause::not_supported(path, v, e));
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause::too_long(path, max));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::invalid_value(
                    path,
                    v,
                    &format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && !pattern_matches(p, s)
            {
                causes.push(Cause::invalid_value(
                    path,
                    v,
                    &format!("{path} in body should match '{p}'"),
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum").filter(|m| m.is_number()) {
                let excl = flag(schema, "exclusiveMinimum");
                let m = min.as_f64().unwrap_or(0.0);
                if x < m || (excl && x == m) {
                    let rel = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    causes.push(Cause::invalid_value(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {min}"),
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").filter(|m| m.is_number()) {
                let excl = flag(schema, "exclusiveMaximum");
                let m = max.as_f64().unwrap_or(0.0);
                if x > m || (excl && x == m) {
                    let rel = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    causes.push(Cause::invalid_value(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {max}"),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                causes.push(Cause::too_many(path, items.len(), max));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                causes.push(Cause::invalid_value(
                    path,
                    &json!(items.len()),
                    &format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_rec(is, item, &format!("{path}[{i}]"), false, causes);
                }
            }
        }
        Value::Object(m) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if root && matches!(r, "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if !m.contains_key(r) {
                        causes.push(Cause::required(join(path, r), ""));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    validate_rec(ps, child, &join(path, k), false, causes);
                } else if let Some(ap) = additional {
                    validate_rec(ap, child, &join(path, k), false, causes);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["gatewayClassName"], "properties": {
                "gatewayClassName": {"type": "string", "maxLength": 253, "minLength": 1},
                "listeners": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "protocol": {"type": "string", "enum": ["HTTP", "HTTPS"]},
                    "allowedRoutes": {"type": "object", "default": {"namespaces": {"from": "Same"}}, "properties": {
                        "namespaces": {"type": "object", "default": {"from": "Same"}, "properties": {
                            "from": {"type": "string", "default": "Same"}}}}}}}},
                "hostnames": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}}},
            "status": {"type": "object", "default": {"conditions": [{"type": "Accepted", "status": "Unknown"}]},
                "properties": {"conditions": {"type": "array", "items": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}}}})
    }

    #[test]
    fn defaults_fill_nested_and_status() {
        let mut o = json!({"metadata": {"name": "gw"}, "spec": {"gatewayClassName": "demo",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
        apply_defaults(&gateway_schema(), &mut o);
        assert_eq!(
            o["spec"]["listeners"][0]["allowedRoutes"],
            json!({"namespaces": {"from": "Same"}})
        );
        assert_eq!(o["status"]["conditions"][0]["status"], "Unknown");
    }

    #[test]
    fn prune_reports_unknown_fields() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "G", "metadata": {"a": 1},
            "spec": {"gatewayClassName": "demo", "bogus": 1, "listeners": [{"name": "a", "extra": true}]},
            "status": {"conditions": [{"anything": 1}]}});
        let unknown = prune(&gateway_schema(), &mut o);
        assert_eq!(unknown, ["spec.bogus", "spec.listeners[0].extra"]);
        assert!(o["spec"].get("bogus").is_none() && o["metadata"]["a"] == 1);
        assert_eq!(o["status"]["conditions"][0]["anything"], 1);
    }

    #[test]
    fn validation_messages() {
        let o = json!({"spec": {"listeners": [{"port": 0, "protocol": "TCP"}, {}, {}], "hostnames": ["-bad-"]}});
        let causes = validate(&gateway_schema(), &o);
        let msgs: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(
            msgs.contains(&"spec.gatewayClassName: Required value".to_string()),
            "{msgs:?}"
        );
        assert!(
            msgs.contains(&"spec.listeners: Too many: 3: must have at most 2 items".to_string()),
            "{msgs:?}"
        );
        assert!(msgs.contains(&"spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1".to_string()), "{msgs:?}");
        assert!(msgs.contains(&"spec.listeners[0].protocol: Unsupported value: \"TCP\": supported values: \"HTTP\", \"HTTPS\"".to_string()), "{msgs:?}");
        assert!(msgs.contains(&"spec.hostnames[0]: Invalid value: \"-bad-\": spec.hostnames[0] in body should match '^[a-z]+$'".to_string()), "{msgs:?}");
        let wrong_type = validate(&gateway_schema(), &json!({"spec": {"gatewayClassName": 5}}));
        assert_eq!(
            wrong_type[0].message,
            "Invalid value: \"integer\": spec.gatewayClassName in body must be of type string: \"integer\""
        );
    }
}
