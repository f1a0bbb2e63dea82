//! `x-kubernetes-validations` rules, evaluated with kube-cel (the Kubernetes CEL libraries on
//! the `cel` interpreter), and their failures turned into the API server's field errors:
//!
//! - a rule that is false: `<field>: Invalid value: "<type of the node>": <message>`, where
//!   the message is the `messageExpression`'s result, else `message`, else `failed rule:
//!   <rule>`, and `reason` picks the error (`FieldValueForbidden` -> `Forbidden: ...`,
//!   `FieldValueRequired` -> `Required value: ...`, `FieldValueDuplicate` -> `Duplicate
//!   value: ...`); `fieldPath` moves it to a field below the rule's node;
//! - a rule that fails to evaluate: `Invalid value: "<type>": <error> evaluating rule:
//!   <message or rule>` (e.g. `no such key: certificateRefs evaluating rule: ...`);
//! - transition rules (those using `oldSelf`) run on updates only, with `oldSelf` the old
//!   object's value at the same place.
//!
//! Errors come in the order the API server reports them: an object's nodes depth first (the
//! node's own rules before its children's), the keys of an object in the order written.

use std::sync::LazyLock;

use kube_cel::{CompiledSchema, ErrorKind, ValidationError, Validator};
use serde_json::{Value, json};

use crate::cause::Cause;

/// The Kubernetes CEL function libraries, registered once.
static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::new);

/// A CRD version's rules, compiled.
pub struct Rules {
    compiled: CompiledSchema,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules").finish_non_exhaustive()
    }
}

impl Rules {
    pub fn compile(schema: &Value) -> Rules {
        let reduced = for_cel(schema).unwrap_or_else(|| json!({}));
        Rules {
            compiled: kube_cel::compile_schema(&reduced),
        }
    }

    /// How many rules compiled, and the messages of those that did not.
    pub fn summary(&self) -> (usize, Vec<String>) {
        fn rec(c: &CompiledSchema, ok: &mut usize, errs: &mut Vec<String>) {
            for r in &c.validations {
                match r {
                    Ok(_) => *ok += 1,
                    Err(e) => errs.push(e.to_string()),
                }
            }
            let children = c
                .properties
                .values()
                .chain(c.items.as_deref())
                .chain(c.additional_properties.as_deref())
                .chain(c.all_of.iter())
                .chain(c.one_of.iter())
                .chain(c.any_of.iter());
            for ch in children {
                rec(ch, ok, errs);
            }
        }
        let (mut ok, mut errs) = (0, Vec::new());
        rec(&self.compiled, &mut ok, &mut errs);
        (ok, errs)
    }
}

/// The part of a schema CEL evaluation needs: the nodes with rules, the nodes on the way to
/// them, and whatever changes how a value under a kept node converts to CEL (`date-time`,
/// `duration` and `byte` formats, maps, embedded resources). kube-cel converts the value
/// under every schema node it walks, so walking only these nodes keeps a validation from
/// costing the object's size times its depth; the values, paths and results are the same.
fn for_cel(s: &Value) -> Option<Value> {
    let m = s.as_object()?;
    let mut out = serde_json::Map::new();
    let mut keep = false;
    if let Some(r) = m
        .get("x-kubernetes-validations")
        .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))
    {
        out.insert("x-kubernetes-validations".into(), r.clone());
        keep = true;
    }
    if let Some(f) = m.get("format").and_then(Value::as_str)
        && matches!(f, "date-time" | "datetime" | "duration" | "byte")
    {
        out.insert("format".into(), json!(f));
        keep = true;
    }
    for flag in [
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
    ] {
        if let Some(v) = m.get(flag) {
            out.insert(flag.into(), v.clone());
            keep |= flag == "x-kubernetes-embedded-resource";
        }
    }
    match m.get("additionalProperties") {
        Some(Value::Bool(true)) => {
            out.insert("additionalProperties".into(), json!(true));
            keep = true;
        }
        Some(a @ Value::Object(_)) => {
            out.insert(
                "additionalProperties".into(),
                for_cel(a).unwrap_or_else(|| json!({})),
            );
            keep = true;
        }
        _ => {}
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        let kept: serde_json::Map<String, Value> = props
            .iter()
            .filter_map(|(k, p)| for_cel(p).map(|p| (k.clone(), p)))
            .collect();
        if !kept.is_empty() {
            out.insert("properties".into(), Value::Object(kept));
            keep = true;
        }
    }
    if let Some(items) = m.get("items").and_then(for_cel) {
        out.insert("items".into(), items);
        keep = true;
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        if let Some(branches) = m.get(k).and_then(Value::as_array) {
            let kept: Vec<Value> = branches.iter().filter_map(for_cel).collect();
            if !kept.is_empty() {
                out.insert(k.into(), Value::Array(kept));
                keep = true;
            }
        }
    }
    keep.then_some(Value::Object(out))
}

/// Whether a schema holds any `x-kubernetes-validations` rule.
pub fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || m.iter()
                    .filter(|(k, _)| *k != "default" && *k != "enum" && *k != "example")
                    .any(|(_, v)| has_rules(v))
        }
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

/// The causes of every failing rule of `obj` (and of `old` for transition rules).
pub fn evaluate(rules: &Rules, schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let errors = match VALIDATOR.validate_compiled(&rules.compiled, obj, old) {
        Ok(()) => return Vec::new(),
        Err(e) => e.into_vec(),
    };
    let nodes = rule_nodes(schema, obj);
    let mut out: Vec<(usize, Cause)> = errors
        .iter()
        .map(|e| {
            let found = nodes.iter().find_map(|n| {
                n.rules()
                    .find(|r| {
                        r.get("rule").and_then(Value::as_str) == Some(e.rule.as_str())
                            && effective_path(&n.path, r.get("fieldPath").and_then(Value::as_str))
                                == e.field_path
                    })
                    .map(|r| (n, r))
            });
            match found {
                Some((n, rule)) => (n.order, cause(e, n, rule)),
                None => (usize::MAX, fallback_cause(e)),
            }
        })
        .collect();
    out.sort_by_key(|(order, _)| *order);
    out.into_iter().map(|(_, c)| c).collect()
}

/// A schema node that has rules, where it applies in the object, in walk order.
struct Node<'a> {
    path: String,
    schema: &'a Value,
    /// The object's value there (`self`).
    value: &'a Value,
    order: usize,
}

impl<'a> Node<'a> {
    fn rules(&self) -> impl Iterator<Item = &'a Value> {
        self.schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }

    /// The node's type as the error shows it (`object`, `array`, `string`, ...).
    fn type_name(&self) -> &'a str {
        self.schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Every (schema node with rules, object path) pair, depth first: a node before its
/// children, object keys in written order, combinator branches after the children (as
/// kube-cel evaluates them). Paths are spelled as kube-cel spells them.
fn rule_nodes<'a>(schema: &'a Value, obj: &'a Value) -> Vec<Node<'a>> {
    fn rec<'a>(
        s: &'a Value,
        v: &'a Value,
        path: &str,
        out: &mut Vec<Node<'a>>,
        counter: &mut usize,
    ) {
        *counter += 1;
        if s.get("x-kubernetes-validations").is_some() {
            out.push(Node {
                path: path.to_string(),
                schema: s,
                value: v,
                order: *counter,
            });
        }
        match v {
            Value::Object(m) => {
                let props = s.get("properties").and_then(Value::as_object);
                let preserve = s
                    .get("x-kubernetes-preserve-unknown-fields")
                    .and_then(Value::as_bool)
                    == Some(true);
                let additional = s
                    .get("additionalProperties")
                    .filter(|a| a.is_object() && !preserve);
                for (k, child) in m {
                    let cs = props.and_then(|p| p.get(k)).or(additional);
                    if let Some(cs) = cs {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        rec(cs, child, &p, out, counter);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(is) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        let p = if path.is_empty() {
                            format!("[{i}]")
                        } else {
                            format!("{path}[{i}]")
                        };
                        rec(is, item, &p, out, counter);
                    }
                }
            }
            _ => {}
        }
        for k in ["allOf", "oneOf", "anyOf"] {
            for b in s.get(k).and_then(Value::as_array).into_iter().flatten() {
                rec(b, v, path, out, counter);
            }
        }
    }
    let mut out = Vec::new();
    let mut counter = 0;
    rec(schema, obj, "", &mut out, &mut counter);
    out
}

fn effective_path(base: &str, field_path: Option<&str>) -> String {
    match field_path {
        Some(fp) if fp.starts_with('.') => format!("{base}{fp}"),
        Some(fp) if !base.is_empty() => format!("{base}.{fp}"),
        Some(fp) => fp.to_string(),
        None => base.to_string(),
    }
}

fn rule_text(rule: &Value) -> &str {
    rule.get("rule").and_then(Value::as_str).unwrap_or_default()
}

/// `message` (trimmed), or the rule itself: how a runtime error names its rule.
fn rule_error_string(rule: &Value) -> String {
    match rule.get("message").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.trim().to_string(),
        _ => rule_text(rule).trim().to_string(),
    }
}

/// The static message, or `failed rule: <rule>`.
fn message_or_default(rule: &Value) -> String {
    match rule.get("message").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.trim().to_string(),
        _ => format!("failed rule: {}", rule_text(rule).trim()),
    }
}

fn cause(e: &ValidationError, n: &Node<'_>, rule: &Value) -> Cause {
    let ty = json!(n.type_name());
    let path = e.field_path.clone();
    match e.kind {
        ErrorKind::ValidationFailure => {
            // kube-cel resolved messageExpression / message; a blank or multi-line
            // messageExpression result falls back to the static message, as on the server.
            let has_expr = rule.get("messageExpression").is_some();
            let detail = if has_expr {
                let m = e.message.trim();
                if m.is_empty() || m.contains('\n') || m == message_or_default(rule) {
                    message_or_default(rule)
                } else {
                    m.to_string()
                }
            } else {
                message_or_default(rule)
            };
            match rule.get("reason").and_then(Value::as_str) {
                Some("FieldValueForbidden") => Cause::forbidden(path, &detail),
                Some("FieldValueRequired") => Cause::required(path, &detail),
                Some("FieldValueDuplicate") => Cause::duplicate(path, &ty),
                _ => Cause::invalid(path, &ty, &detail),
            }
        }
        ErrorKind::EvaluationError => {
            use kube_cel::cel::ExecutionError as X;
            let x = execution_error(e);
            let mut err = runtime_error(e);
            if matches!(x, Some(X::MissingArgumentOrTarget))
                && let Some(key) = missing_field(rule_text(rule), n.value)
            {
                // The cel crate reports a function argument that failed to evaluate without
                // its cause; a field the rule selects from `self` that the object lacks is
                // what cel-go names.
                err = format!("no such key: {key}");
            }
            let detail = if matches!(x, Some(X::NoSuchOverload)) {
                format!(
                    "'{err}': call arguments did not match a supported operator, function or \
                     macro signature for rule: {}",
                    rule_error_string(rule)
                )
            } else {
                format!("{err} evaluating rule: {}", rule_error_string(rule))
            };
            Cause::invalid(n.path.clone(), &ty, &detail)
        }
        _ => Cause::invalid(path, &ty, &e.message),
    }
}

fn fallback_cause(e: &ValidationError) -> Cause {
    let field = if e.field_path.is_empty() {
        "<nil>".to_string()
    } else {
        e.field_path.clone()
    };
    Cause::invalid(field, &json!("object"), &e.message)
}

/// The first field the rule selects from `self` (`self.name`) that `value` does not have.
fn missing_field(rule: &str, value: &Value) -> Option<String> {
    let m = value.as_object()?;
    let mut rest = rule;
    while let Some(i) = rest.find("self.") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + 5..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !ident.is_empty() && !m.contains_key(&unescape(&ident)) {
            return Some(ident);
        }
    }
    None
}

/// A CEL field name back to the JSON name (`__namespace__` -> `namespace`, `__dash__` ->
/// `-`, ...), as the API server escapes them.
fn unescape(ident: &str) -> String {
    let reserved = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    if let Some(inner) = ident.strip_prefix("__").and_then(|s| s.strip_suffix("__"))
        && reserved.contains(&inner)
    {
        return inner.to_string();
    }
    ident
        .replace("__underscores__", "__")
        .replace("__dot__", ".")
        .replace("__dash__", "-")
        .replace("__slash__", "/")
}

/// The cel crate's error behind an evaluation failure, when kube-cel kept it.
fn execution_error(e: &ValidationError) -> Option<&kube_cel::cel::ExecutionError> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref())
}

/// A CEL runtime error as cel-go words it (`no such key: x`, `index out of bounds: 3`, ...).
fn runtime_error(e: &ValidationError) -> String {
    use kube_cel::cel::ExecutionError as X;
    let Some(x) = execution_error(e) else {
        return e.message.clone();
    };
    match x {
        X::NoSuchKey(k) => format!("no such key: {k}"),
        X::NoSuchOverload => "no such overload".to_string(),
        X::IndexOutOfBounds(i) => format!("index out of bounds: {}", cel_value(i)),
        X::DivisionByZero(_) => "division by zero".to_string(),
        X::RemainderByZero(_) => "modulus by zero".to_string(),
        X::Overflow(..) => "integer overflow".to_string(),
        X::FunctionError { message, .. } => message.clone(),
        other => {
            let s = other.to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
    }
}

fn cel_value(v: &kube_cel::cel::Value) -> String {
    use kube_cel::cel::Value as V;
    match v {
        V::Int(i) => i.to_string(),
        V::UInt(u) => u.to_string(),
        V::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "listeners": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "protocol": {"type": "string"},
                "tls": {"type": "object", "properties": {
                    "mode": {"type": "string"}, "certificateRefs": {"type": "array", "items": {"type": "object"}}},
                    "x-kubernetes-validations": [{"message": "certificateRefs or options must be specified when mode is Terminate",
                        "rule": "self.mode == 'Terminate' ? size(self.certificateRefs) > 0 : true"}]}}},
                "x-kubernetes-validations": [
                    {"message": "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
                     "rule": "self.all(l, l.protocol in ['HTTP', 'TCP', 'UDP'] ? !has(l.tls) : true)"},
                    {"rule": "self.all(l1, self.exists_one(l2, l1.name == l2.name))"}]},
            "controllerName": {"type": "string", "x-kubernetes-validations": [{"message": "Value is immutable", "rule": "self == oldSelf"}]},
            "deny": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'x'", "message": "no x", "reason": "FieldValueForbidden"}]}}}}})
    }

    fn run(obj: Value, old: Option<Value>) -> Vec<String> {
        let s = schema();
        let rules = Rules::compile(&s);
        evaluate(&rules, &s, &obj, old.as_ref())
            .iter()
            .map(Cause::render)
            .collect()
    }

    #[test]
    fn failing_rules_and_runtime_errors() {
        let msgs = run(
            json!({"spec": {"listeners": [{"name": "a", "protocol": "HTTP", "tls": {"mode": "Terminate"}},
                {"name": "a", "protocol": "HTTPS"}]}}),
            None,
        );
        assert_eq!(
            msgs,
            [
                "spec.listeners: Invalid value: \"array\": tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
                "spec.listeners: Invalid value: \"array\": failed rule: self.all(l1, self.exists_one(l2, l1.name == l2.name))",
                "spec.listeners[0].tls: Invalid value: \"object\": no such key: certificateRefs evaluating rule: certificateRefs or options must be specified when mode is Terminate",
            ]
        );
    }

    #[test]
    fn transition_rules_and_reasons() {
        assert!(run(json!({"spec": {"controllerName": "a"}}), None).is_empty());
        assert_eq!(
            run(
                json!({"spec": {"controllerName": "b"}}),
                Some(json!({"spec": {"controllerName": "a"}}))
            ),
            ["spec.controllerName: Invalid value: \"string\": Value is immutable"]
        );
        assert_eq!(
            run(json!({"spec": {"deny": "x"}}), None),
            ["spec.deny: Forbidden: no x"]
        );
    }
}
