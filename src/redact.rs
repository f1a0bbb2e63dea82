//! Secrets stay out of what gwtest prints and writes (terminal, JUnit, JSON, failure bundles,
//! OTLP export): a `Secret`'s `data` and `stringData` values become `<redacted N bytes>`,
//! and the values of credential headers in printed curl lines `<redacted>`, unless
//! `--show-secrets` is given. Assertions always compare the real values; only what is shown
//! is redacted, at the place it is rendered.

use base64::Engine as _;
use serde_json::Value;

/// Request headers whose values are credentials.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Whether `api_version`/`kind` name the core `v1` `Secret`.
pub fn is_secret_kind(api_version: &str, kind: &str) -> bool {
    api_version == "v1" && kind == "Secret"
}

/// Whether `obj` says it is a core `v1` `Secret` (items of a list often do not say: callers
/// that know the kind use [`redact_secret`]).
pub fn is_secret(obj: &Value) -> bool {
    is_secret_kind(
        obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
    )
}

/// `<redacted N bytes>`.
pub fn marker(bytes: usize) -> String {
    format!("<redacted {bytes} bytes>")
}

/// Replace the values of a Secret's `data` (their decoded size) and `stringData`; a list
/// (`{"items": [...]}`) has each Secret in it redacted. Anything else is left alone.
pub fn redact_object(obj: &mut Value) {
    if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(redact_object);
    } else if is_secret(obj) {
        redact_secret(obj);
    }
}

/// Like [`redact_object`], for an object (or list) the caller knows to hold Secrets.
pub fn redact_secret(obj: &mut Value) {
    if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(redact_secret);
        return;
    }
    if let Some(data) = obj.get_mut("data") {
        redact_values(data, true);
    }
    if let Some(data) = obj.get_mut("stringData") {
        redact_values(data, false);
    }
}

/// Every string in `v` replaced by its marker, with the size of its base64-decoded bytes when
/// `base64` (a Secret's `data`).
fn redact_values(v: &mut Value, base64: bool) {
    match v {
        Value::String(s) => {
            let n = if base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_or(s.len(), |b| b.len())
            } else {
                s.len()
            };
            *s = marker(n);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_values(x, base64)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_values(x, base64)),
        Value::Number(_) | Value::Bool(_) | Value::Null => {}
    }
}

/// A value found at `path` (`$.data.password`) of a Secret, redacted if it is inside its
/// `data` or `stringData` (a mismatch shown in a failure).
pub fn redact_at(path: &str, v: &mut Value) {
    let under = |p: &str| {
        path == p || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}["))
    };
    if under("$.data") {
        redact_values(v, true);
    } else if under("$.stringData") {
        redact_values(v, false);
    }
}

/// A request header's value as it may be printed.
pub fn header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if CREDENTIAL_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
    {
        "<redacted>"
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_become_markers_with_their_size() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "abc"}});
        redact_object(&mut s);
        assert_eq!(s["data"]["password"], "<redacted 7 bytes>");
        assert_eq!(s["stringData"]["token"], "<redacted 3 bytes>");
        assert_eq!(s["metadata"]["name"], "s");
        let mut list = json!({"items": [{"apiVersion": "v1", "kind": "Secret", "data": {"a": "YQ=="}},
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "visible"}}]});
        redact_object(&mut list);
        assert_eq!(list["items"][0]["data"]["a"], "<redacted 1 bytes>");
        assert_eq!(list["items"][1]["data"]["a"], "visible");
    }

    #[test]
    fn paths_and_headers() {
        let mut v = json!("aHVudGVyMg==");
        redact_at("$.data.password", &mut v);
        assert_eq!(v, "<redacted 7 bytes>");
        let mut v = json!({"a": "xyz"});
        redact_at("$.stringData", &mut v);
        assert_eq!(v, json!({"a": "<redacted 3 bytes>"}));
        let mut v = json!("visible");
        redact_at("$.dataset", &mut v);
        assert_eq!(v, "visible");
        assert_eq!(header_value("Authorization", "Bearer x"), "<redacted>");
        assert_eq!(header_value("x-api", "v"), "v");
    }
}
