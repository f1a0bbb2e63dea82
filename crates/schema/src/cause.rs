//! One cause of a 422 Invalid, worded as the Kubernetes API server words its field errors
//! (`k8s.io/apimachinery/pkg/util/validation/field`), and the Go renderings of values those
//! messages embed (`%q`, `%v`, `%#v` of decoded JSON).

use serde_json::Value;

/// A field error: `reason` is the Status cause's reason (`FieldValueInvalid`, ...), `message`
/// what follows the field in the error text, `field` the path (`spec.rules[0]`, or `<nil>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

/// Where a field error's value is shown: the value itself, or no value (a composite error of
/// the OpenAPI validator has the empty string; a missing value is `null`).
fn body(kind: &str, value: &Value, detail: &str) -> String {
    let v = go_field_value(value);
    if detail.is_empty() {
        format!("{kind}: {v}")
    } else {
        format!("{kind}: {v}: {detail}")
    }
}

impl Cause {
    /// `Invalid value: <v>: <detail>` (FieldValueInvalid).
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            message: body("Invalid value", value, detail),
            field: field.into(),
        }
    }

    /// A value of the wrong type or format (FieldValueTypeInvalid); worded like `invalid`.
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueTypeInvalid",
            message: body("Invalid value", value, detail),
            field: field.into(),
        }
    }

    pub fn required(field: impl Into<String>, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            message,
            field: field.into(),
        }
    }

    /// `Unsupported value: <v>: supported values: "a", "b"` (every supported value quoted).
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[Value]) -> Cause {
        let list: Vec<String> = supported
            .iter()
            .map(|s| match s {
                Value::String(s) => go_quote(s),
                other => go_quote(&other.to_string()),
            })
            .collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: body(
                "Unsupported value",
                value,
                &format!("supported values: {}", list.join(", ")),
            ),
            field: field.into(),
        }
    }

    pub fn too_long(field: impl Into<String>, max: u64) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be longer than {max}"),
            field: field.into(),
        }
    }

    pub fn too_many(field: impl Into<String>, got: usize, max: u64) -> Cause {
        Cause {
            reason: "FieldValueTooMany",
            message: format!("Too many: {got}: must have at most {max} items"),
            field: field.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            message: if detail.is_empty() {
                "Forbidden".to_string()
            } else {
                format!("Forbidden: {detail}")
            },
            field: field.into(),
        }
    }

    /// `Duplicate value: <v>` (no detail, as the real server).
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Cause {
        Cause {
            reason: "FieldValueDuplicate",
            message: body("Duplicate value", value, ""),
            field: field.into(),
        }
    }

    /// Whether this error stops the CEL rules (the API server's `hasBlockingErr`: a missing
    /// required field, an unsupported enum value, a too long string, too many items, a value
    /// of the wrong type).
    pub fn blocks_cel(&self) -> bool {
        matches!(
            self.reason,
            "FieldValueNotSupported"
                | "FieldValueRequired"
                | "FieldValueTooLong"
                | "FieldValueTooMany"
                | "FieldValueTypeInvalid"
        )
    }

    /// `field: message`, as the 422's top-level message lists causes.
    pub fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// The cause added when schema errors kept the CEL rules from running.
pub fn rules_not_checked() -> Cause {
    Cause::invalid(
        "<nil>",
        &Value::Null,
        "some validation rules were not checked because the object was invalid; correct the \
         existing errors to complete validation",
    )
}

/// How `field.Error` shows its value: `null` for none, numbers and booleans bare, strings
/// quoted, anything else in Go syntax (`%#v`).
pub fn go_field_value(v: &Value) -> String {
    match v {
        Value::Null => go_quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        other => go_sharp_v(other),
    }
}

/// Go's `strconv.Quote`: double quotes, the usual escapes, printable Unicode kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"))
                } else {
                    out.push_str(&format!("\\U{n:08x}"))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number as Go prints the value decoded from it: integers as `int64`, the rest as
/// `float64`.
pub fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(0.0))
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits, in
/// exponent form when the exponent is below -4 or at least 6 (`1e+06`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and the decimal exponent, from Rust's `{:e}`.
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let eprec = 6;
    let sign = if neg { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let s = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}", digits, "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{s}")
}

/// Go's `%#v` of a decoded JSON value (`map[string]interface {}{"a":1}`,
/// `[]interface {}{"x", 2}`, map keys sorted).
pub fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp_v(&m[k])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", entries.join(", "))
        }
    }
}

/// Go's `%v` of a decoded JSON value (`map[a:1]`, `[x 2]`, strings bare, null `<nil>`).
pub fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(go_v).collect::<Vec<_>>().join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_v(&m[k])))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

/// Go's `%T` of a decoded JSON value.
pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_values_as_go_does() {
        assert_eq!(go_field_value(&json!("a\"b")), "\"a\\\"b\"");
        assert_eq!(go_field_value(&Value::Null), "\"null\"");
        assert_eq!(go_field_value(&json!(70000)), "70000");
        assert_eq!(
            go_sharp_v(&json!({"name": "http", "port": 80})),
            "map[string]interface {}{\"name\":\"http\", \"port\":80}"
        );
        assert_eq!(
            go_sharp_v(&json!(["a", 1, null])),
            "[]interface {}{\"a\", 1, interface {}(nil)}"
        );
        assert_eq!(
            go_v(&json!({"b": [1, "x"], "a": true})),
            "map[a:true b:[1 x]]"
        );
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(65535.0), "65535");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(123456789.0), "1.23456789e+08");
    }
}
