//! The structural schema of a custom resource: pruning of unknown fields, defaulting, and
//! validation of the OpenAPI v3 keywords, worded and ordered as the API server's OpenAPI
//! validator (kube-openapi) words them and as `ValidateCustomResource` turns them into field
//! errors.
//!
//! Per schema node the checks run in kube-openapi's order: type, `anyOf`/`oneOf`/`allOf`/`not`,
//! string (`maxLength`, `minLength`, `pattern`: the first failing one), `format`, number
//! (`multipleOf`, `maximum`, `minimum`), array (items, `minItems`, `maxItems`), `enum`, object
//! (`minProperties`/`maxProperties`, properties, `required`). A type error does not stop the
//! checks that still apply (an enum is checked whatever the type). Where the real validator
//! walks Go maps (in random order) this walks the object's keys in the order they were written.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::{Value, json};

use crate::cause::{Cause, go_float, go_quote};
use crate::formats;

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

const ROOT_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

// ---------------------------------------------------------------------------------------
// Defaulting

/// Applies `default` values (recursively, including inside applied defaults), after dropping
/// `null`s of fields that are not `nullable` (as the API server does before defaulting). The
/// root's `metadata` is left alone.
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

// ---------------------------------------------------------------------------------------
// Pruning

/// Removes fields the schema does not declare; returns their paths (`spec.foo`,
/// `spec.rules[0].bar`), which `fieldValidation=Strict` reports and `Warn` warns about.
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
                if (root || embedded) && ROOT_META.contains(&k.as_str()) {
                    continue;
                }
                let child_path = join(path, &k);
                if let Some(ps) = props.and_then(|p| p.get(&k)) {
                    if m.get(&k).is_some_and(Value::is_null) && !flag(ps, "nullable") {
                        m.remove(&k);
                        continue;
                    }
                    if let Some(child) = m.get_mut(&k) {
                        prune_rec(ps, child, &child_path, false, unknown);
                    }
                } else if let Some(ap) = additional.filter(|a| a.is_object()) {
                    if let Some(child) = m.get_mut(&k) {
                        prune_rec(ap, child, &child_path, false, unknown);
                    }
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

// ---------------------------------------------------------------------------------------
// Validation

static REGEXES: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether `s` matches the ECMA-262 `pattern` (compiled once per pattern; the Gateway API's
/// patterns are in the common subset the regex crate shares with Go's RE2).
fn pattern_matches(pattern: &str, s: &str) -> bool {
    let mut cache = REGEXES.lock().unwrap_or_else(|e| e.into_inner());
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok());
    // A pattern this engine cannot compile is not held against the object.
    re.as_ref().is_none_or(|r| r.is_match(s))
}

/// The JSON type name kube-openapi infers for decoded data.
fn data_type(v: &Value) -> &'static str {
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

/// The format kube-openapi infers for decoded data (`int64` for integers, `float64` else).
fn data_format(v: &Value) -> &'static str {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        _ => "",
    }
}

/// The types a schema node declares: `type`, or integer and string for
/// `x-kubernetes-int-or-string`.
fn declared_types(schema: &Value) -> Vec<&str> {
    if flag(schema, "x-kubernetes-int-or-string") {
        return vec!["integer", "string"];
    }
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The errors of one schema node with a count of the checks that applied (kube-openapi's
/// `MatchCount`, which picks the alternative of `anyOf`/`oneOf` whose errors are reported).
#[derive(Default)]
struct Res {
    causes: Vec<Cause>,
    matches: usize,
}

impl Res {
    fn merge(&mut self, other: Res) {
        self.causes.extend(other.causes);
        self.matches += other.matches;
    }
}

struct Walk<'a> {
    /// Field paths start here (`status` when only the status is validated); message paths
    /// are relative to the validated value.
    prefix: &'a str,
}

impl Walk<'_> {
    fn field(&self, path: &str) -> String {
        match (self.prefix.is_empty(), path.is_empty()) {
            (true, true) => "<nil>".into(),
            (true, false) => path.into(),
            (false, true) => self.prefix.into(),
            (false, false) if path.starts_with('[') => format!("{}{path}", self.prefix),
            (false, false) => format!("{}.{path}", self.prefix),
        }
    }

    /// A composite error of the OpenAPI validator: no field of its own, an empty value.
    fn composite(&self, message: String) -> Cause {
        Cause::invalid(self.field(""), &json!(""), &message)
    }

    fn type_error(&self, path: &str, expected: &str, got: &str) -> Cause {
        Cause::type_invalid(
            self.field(path),
            &json!(got),
            &format!(
                "{path} in body must be of type {expected}: {}",
                go_quote(got)
            ),
        )
    }

    fn node(&self, schema: &Value, v: &Value, path: &str, root: bool) -> Res {
        let mut r = Res {
            matches: 1,
            ..Res::default()
        };
        let types = declared_types(schema);
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        if v.is_null() {
            if !types.is_empty() && !flag(schema, "nullable") {
                r.causes
                    .push(self.type_error(path, &types.join(","), "null"));
            }
            self.check_enum(schema, v, path, &mut r);
            return r;
        }

        // type (kube-openapi's typeValidator, including its handling of numeric formats)
        if !types.is_empty() || !format.is_empty() {
            r.matches += 1;
            let (t, f) = (data_type(v), data_format(v));
            let has = |x: &str| types.contains(&x);
            let float_int =
                t == "number" && v.as_f64().is_some_and(|x| x.fract() == 0.0) && has("integer");
            let int_float = t == "integer" && has("number");
            let scalar_text = matches!(v, Value::String(_) | Value::Array(_));
            if !scalar_text
                && !format.is_empty()
                && !(has(t)
                    || f == format
                    || float_int
                    || int_float
                    || (format == "int64" && f == "int32"))
            {
                r.causes.push(self.type_error(path, format, f));
            } else if (has("number") || has("integer") || format.is_empty() || !scalar_text)
                && !types.is_empty()
                && !(has(t) || float_int || int_float)
            {
                r.causes.push(self.type_error(path, &types.join(","), t));
            }
        }

        self.combinators(schema, v, path, &mut r);

        if let Value::String(s) = v {
            r.matches += 1;
            self.check_string(schema, s, v, path, &mut r);
            if !format.is_empty() && formats::known(format) {
                r.matches += 1;
                if !formats::valid(format, s) {
                    r.causes.push(Cause::type_invalid(
                        self.field(path),
                        v,
                        &format!("{path} in body must be of type {format}: {}", go_quote(s)),
                    ));
                }
            }
        }
        if let Value::Number(n) = v {
            r.matches += 1;
            self.check_number(schema, n, v, path, &mut r);
        }
        if let Value::Array(items) = v {
            r.matches += 1;
            if let Some(is) = schema.get("items").filter(|i| i.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    r.merge(self.node(is, item, &format!("{path}[{i}]"), false));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                r.causes.push(Cause::invalid(
                    self.field(path),
                    &json!(items.len()),
                    &format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                r.causes
                    .push(Cause::too_many(self.field(path), items.len(), max));
            }
        }
        self.check_enum(schema, v, path, &mut r);
        if let Value::Object(m) = v {
            r.matches += 1;
            self.check_object(schema, m, path, root, &mut r);
        }
        r
    }

    fn check_enum(&self, schema: &Value, v: &Value, path: &str, r: &mut Res) {
        if let Some(e) = schema.get("enum").and_then(Value::as_array) {
            r.matches += 1;
            if !e.contains(v) {
                r.causes.push(Cause::not_supported(self.field(path), v, e));
            }
        }
    }

    fn combinators(&self, schema: &Value, v: &Value, path: &str, r: &mut Res) {
        let list = |k: &str| schema.get(k).and_then(Value::as_array);
        if let Some(any) = list("anyOf") {
            r.matches += 1;
            let mut best: Option<Res> = None;
            let mut success: Option<Res> = None;
            for s in any {
                let res = self.node(s, v, path, false);
                if res.causes.is_empty() {
                    best = None;
                    success = Some(res);
                    break;
                }
                if best.as_ref().is_none_or(|b| res.matches > b.matches) {
                    best = Some(res);
                }
            }
            if success.is_none() {
                r.causes.push(self.composite(format!(
                    "{} must validate at least one schema (anyOf)",
                    go_quote(path)
                )));
            }
            if let Some(b) = best.or(success) {
                r.merge(b);
            }
        }
        if let Some(one) = list("oneOf") {
            r.matches += 1;
            let mut best: Option<Res> = None;
            let mut first_success: Option<Res> = None;
            let mut validated = 0;
            for s in one {
                let res = self.node(s, v, path, false);
                if res.causes.is_empty() {
                    validated += 1;
                    best = None;
                    if first_success.is_none() {
                        first_success = Some(res);
                    }
                    continue;
                }
                if validated == 0 && best.as_ref().is_none_or(|b| res.matches > b.matches) {
                    best = Some(res);
                }
            }
            if validated != 1 {
                let more = if validated == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {validated} valid alternatives")
                };
                r.causes.push(self.composite(format!(
                    "{} must validate one and only one schema (oneOf). {more}",
                    go_quote(path)
                )));
                if let Some(b) = best {
                    r.merge(b);
                }
            } else if let Some(s) = first_success {
                r.merge(s);
            }
        }
        if let Some(all) = list("allOf") {
            r.matches += 1;
            let mut validated = 0;
            for s in all {
                let res = self.node(s, v, path, false);
                if res.causes.is_empty() {
                    validated += 1;
                }
                r.merge(res);
            }
            if validated != all.len() {
                let more = if validated == 0 {
                    ". None validated"
                } else {
                    ""
                };
                r.causes.push(self.composite(format!(
                    "{} must validate all the schemas (allOf){more}",
                    go_quote(path)
                )));
            }
        }
        if let Some(not) = schema.get("not").filter(|n| n.is_object()) {
            r.matches += 1;
            if self.node(not, v, path, false).causes.is_empty() {
                r.causes.push(self.composite(format!(
                    "{} must not validate the schema (not)",
                    go_quote(path)
                )));
            }
        }
    }

    fn check_string(&self, schema: &Value, s: &str, v: &Value, path: &str, r: &mut Res) {
        let len = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            r.causes.push(Cause::too_long(self.field(path), max));
            return;
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            r.causes.push(Cause::invalid(
                self.field(path),
                v,
                &format!("{path} in body should be at least {min} chars long"),
            ));
            return;
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && !pattern_matches(p, s)
        {
            r.causes.push(Cause::invalid(
                self.field(path),
                v,
                &format!("{path} in body should match '{p}'"),
            ));
        }
    }

    fn check_number(
        &self,
        schema: &Value,
        n: &serde_json::Number,
        v: &Value,
        path: &str,
        r: &mut Res,
    ) {
        let int = n.as_i64();
        let x = n.as_f64().unwrap_or(0.0);
        // A bound shows as an integer against integer data, as a float64 (`%v`) otherwise.
        let bound = |b: f64| match int {
            Some(_) => format!("{}", b.trunc() as i64),
            None => go_float(b),
        };
        if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
            && m > 0.0
            && (x / m).fract() != 0.0
        {
            r.causes.push(Cause::invalid(
                self.field(path),
                v,
                &format!("{path} in body should be a multiple of {}", bound(m)),
            ));
        }
        // (bound, its exclusive flag, the side past it, the relation the value should have).
        let bounds = [
            (
                "maximum",
                "exclusiveMaximum",
                Ordering::Greater,
                "less than",
            ),
            (
                "minimum",
                "exclusiveMinimum",
                Ordering::Less,
                "greater than",
            ),
        ];
        for (key, exclusive, past, relation) in bounds {
            let Some(limit) = schema.get(key).and_then(Value::as_f64) else {
                continue;
            };
            let excl = flag(schema, exclusive);
            let side = match int {
                Some(i) => Some(i.cmp(&(limit.trunc() as i64))),
                None => x.partial_cmp(&limit),
            };
            if side == Some(past) || (excl && side == Some(Ordering::Equal)) {
                let rel = if excl {
                    relation.to_string()
                } else {
                    format!("{relation} or equal to")
                };
                r.causes.push(Cause::invalid(
                    self.field(path),
                    v,
                    &format!("{path} in body should be {rel} {}", bound(limit)),
                ));
            }
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        m: &serde_json::Map<String, Value>,
        path: &str,
        root: bool,
        r: &mut Res,
    ) {
        let n = m.len();
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (n as u64) < min
        {
            r.causes.push(Cause::invalid(
                self.field(path),
                &json!(n),
                &format!("{path} in body should have at least {min} properties"),
            ));
            return;
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && n as u64 > max
        {
            r.causes.push(Cause::too_many(self.field(path), n, max));
            return;
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (k, child) in m {
            if root && ROOT_META.contains(&k.as_str()) {
                continue;
            }
            if let Some(ps) = props.and_then(|p| p.get(k)) {
                r.merge(self.node(ps, child, &join(path, k), false));
            } else if let Some(ap) = additional {
                r.merge(self.node(ap, child, &join(path, k), false));
            }
        }
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for k in req.iter().filter_map(Value::as_str) {
                if root && ROOT_META.contains(&k) {
                    continue;
                }
                if !m.contains_key(k) {
                    r.causes
                        .push(Cause::required(self.field(&join(path, k)), ""));
                }
            }
        }
    }
}

/// Validates an object against its root schema (`apiVersion`, `kind` and `metadata` are
/// left to the object-meta checks).
pub fn validate(schema: &Value, v: &Value) -> Vec<Cause> {
    Walk { prefix: "" }.node(schema, v, "", true).causes
}

/// Validates the value at `field` (e.g. `status`) against its schema, as the status
/// subresource does: field paths start at `field`, message paths at the value.
pub fn validate_at(schema: &Value, v: &Value, field: &str) -> Vec<Cause> {
    Walk { prefix: field }.node(schema, v, "", false).causes
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
                    "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                    "protocol": {"type": "string", "enum": ["HTTP", "HTTPS"]},
                    "allowedRoutes": {"type": "object", "default": {"namespaces": {"from": "Same"}}, "properties": {
                        "namespaces": {"type": "object", "default": {"from": "Same"}, "properties": {
                            "from": {"type": "string", "default": "Same"}}}}}}}},
                "hostnames": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
                "addresses": {"type": "array", "items": {"type": "object",
                    "oneOf": [
                        {"properties": {"type": {"enum": ["IPAddress"]}, "value": {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}}},
                        {"properties": {"type": {"not": {"enum": ["IPAddress"]}}}}],
                    "properties": {"type": {"type": "string", "default": "IPAddress"}, "value": {"type": "string"}}}}}},
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

    fn rendered(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::render).collect()
    }

    #[test]
    fn validation_messages() {
        let o = json!({"spec": {"listeners": [{"port": 0, "protocol": "TCP"}, {}, {}], "hostnames": ["-bad-"]}});
        let msgs = rendered(&validate(&gateway_schema(), &o));
        assert_eq!(
            msgs,
            [
                "spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1",
                "spec.listeners[0].protocol: Unsupported value: \"TCP\": supported values: \"HTTP\", \"HTTPS\"",
                "spec.listeners: Too many: 3: must have at most 2 items",
                "spec.hostnames[0]: Invalid value: \"-bad-\": spec.hostnames[0] in body should match '^[a-z]+$'",
                "spec.gatewayClassName: Required value",
            ]
        );
        let wrong_type = validate(&gateway_schema(), &json!({"spec": {"gatewayClassName": 5}}));
        assert_eq!(wrong_type[0].reason, "FieldValueTypeInvalid");
        assert_eq!(
            wrong_type[0].message,
            "Invalid value: \"integer\": spec.gatewayClassName in body must be of type string: \"integer\""
        );
    }

    #[test]
    fn numeric_formats_and_bounds() {
        let s = gateway_schema();
        let m = |o: Value| {
            rendered(&validate(
                &s,
                &json!({"spec": {"gatewayClassName": "x", "listeners": [o]}}),
            ))
        };
        assert_eq!(
            m(json!({"port": 70000})),
            [
                "spec.listeners[0].port: Invalid value: 70000: spec.listeners[0].port in body should be less than or equal to 65535"
            ]
        );
        assert_eq!(
            m(json!({"port": 1.5})),
            [
                "spec.listeners[0].port: Invalid value: \"float64\": spec.listeners[0].port in body must be of type int32: \"float64\""
            ]
        );
        assert_eq!(
            m(json!({"port": "80"})),
            [
                "spec.listeners[0].port: Invalid value: \"string\": spec.listeners[0].port in body must be of type integer: \"string\""
            ]
        );
        assert!(m(json!({"port": 80.0})).is_empty());
    }

    #[test]
    fn one_of_any_of_and_formats() {
        let s = gateway_schema();
        let o = json!({"spec": {"gatewayClassName": "x", "addresses": [
            {"type": "IPAddress", "value": "10.0.0.1"}, {"type": "Hostname", "value": "example.com"},
            {"type": "IPAddress", "value": "1.2.3.4:8080"}]}});
        let msgs = rendered(&validate(&s, &o));
        assert_eq!(
            msgs,
            [
                "<nil>: Invalid value: \"\": \"spec.addresses[2]\" must validate one and only one schema (oneOf). Found none valid",
                "<nil>: Invalid value: \"\": \"spec.addresses[2].value\" must validate at least one schema (anyOf)",
                "spec.addresses[2].value: Invalid value: \"1.2.3.4:8080\": spec.addresses[2].value in body must be of type ipv4: \"1.2.3.4:8080\"",
            ]
        );
    }

    #[test]
    fn status_paths_start_at_status() {
        let s = gateway_schema();
        let st = json!({"conditions": "nope"});
        let msgs = rendered(&validate_at(&s["properties"]["status"], &st, "status"));
        assert_eq!(
            msgs,
            [
                "status.conditions: Invalid value: \"string\": conditions in body must be of type array: \"string\""
            ]
        );
    }
}
