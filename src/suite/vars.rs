//! Variables (DESIGN §1.5): `${name}` inside string scalars, `$${` for a literal `${`.
//!
//! A string that is exactly one reference (`"${port}"`) takes the variable's typed value where
//! a value is expected (manifests, JSON bodies, expected fields), so a captured number stays a
//! number. Inside a longer string a value is written as text (JSON for maps and lists).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::spanned::{Loc, Node, Template};

/// Names every run defines (DESIGN §1.5). `env.NAME` is handled separately.
pub const BUILTINS: [&str; 8] = [
    "namespace",
    "test",
    "suite",
    "run",
    "unique",
    "kubeconfig",
    "otlp.grpc",
    "otlp.http",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarError {
    pub message: String,
    pub loc: Loc,
}

impl fmt::Display for VarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VarError {}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    /// A literal `${` written as `$${`.
    Escaped,
    Ref(&'a str),
}

/// Split a template into text and references; an unclosed or empty `${` is an error.
pub fn parse(raw: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let (mut i, mut text_start) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'$' && raw[i..].starts_with("$${") {
            if text_start < i {
                out.push(Segment::Text(&raw[text_start..i]));
            }
            out.push(Segment::Escaped);
            i += 3;
            text_start = i;
        } else if bytes[i] == b'$' && raw[i..].starts_with("${") {
            if text_start < i {
                out.push(Segment::Text(&raw[text_start..i]));
            }
            let rest = &raw[i + 2..];
            let end = rest.find('}').ok_or_else(|| {
                format!(
                    "unclosed `${{` in {} (write `$${{` for a literal `${{`)",
                    crate::util::quoted(raw)
                )
            })?;
            let name = &rest[..end];
            if name.is_empty() || !name.chars().all(valid_name_char) {
                return Err(format!(
                    "invalid variable reference {} in {}",
                    crate::util::quoted(&format!("${{{name}}}")),
                    crate::util::quoted(raw)
                ));
            }
            out.push(Segment::Ref(name));
            i += 2 + end + 1;
            text_start = i;
        } else {
            i += 1;
        }
    }
    if text_start < raw.len() {
        out.push(Segment::Text(&raw[text_start..]));
    }
    Ok(out)
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// The names a template refers to (for load-time checks).
pub fn references(raw: &str) -> Result<Vec<&str>, String> {
    Ok(parse(raw)?
        .into_iter()
        .filter_map(|s| {
            if let Segment::Ref(n) = s {
                Some(n)
            } else {
                None
            }
        })
        .collect())
}

/// The values a test can refer to.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    values: BTreeMap<String, Value>,
}

impl Vars {
    pub fn new() -> Self {
        Vars::default()
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.values.insert(name.into(), value.into());
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A variable's value; `env.NAME` reads the environment.
    pub fn get(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.values.get(name) {
            return Some(v.clone());
        }
        let var = name.strip_prefix("env.")?;
        std::env::var(var).ok().map(Value::String)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    fn lookup(&self, name: &str, t: &Template) -> Result<Value, VarError> {
        self.get(name).ok_or_else(|| {
            let message = match name.strip_prefix("env.") {
                Some(var) => {
                    format!("environment variable {var} is not set (used as `${{{name}}}`)")
                }
                None => match unset_builtin(name) {
                    Some(why) => format!("`${{{name}}}` is not set in this run: {why}"),
                    None => format!("unknown variable `${{{name}}}`{}", self.suggest(name)),
                },
            };
            VarError {
                message,
                loc: t.loc,
            }
        })
    }

    fn suggest(&self, name: &str) -> String {
        let best = self
            .values
            .keys()
            .map(String::as_str)
            .chain(BUILTINS)
            .map(|k| (crate::matching::edit_distance(name, k), k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min();
        match best {
            Some((_, k)) => format!(" (did you mean `${{{k}}}`?)"),
            None => String::new(),
        }
    }

    /// The template with every reference replaced by its value as text.
    pub fn expand(&self, t: &Template) -> Result<String, VarError> {
        if !t.raw.contains('$') {
            return Ok(t.raw.clone());
        }
        let segments = parse(&t.raw).map_err(|message| VarError {
            message,
            loc: t.loc,
        })?;
        let mut out = String::with_capacity(t.raw.len());
        for s in segments {
            match s {
                Segment::Text(x) => out.push_str(x),
                Segment::Escaped => out.push_str("${"),
                Segment::Ref(name) => out.push_str(&as_text(&self.lookup(name, t)?)),
            }
        }
        Ok(out)
    }

    /// Like `expand`, but a template that is exactly one reference keeps the value's type.
    pub fn expand_value(&self, t: &Template) -> Result<Value, VarError> {
        if t.raw.starts_with("${") {
            let segments = parse(&t.raw).map_err(|message| VarError {
                message,
                loc: t.loc,
            })?;
            if let [Segment::Ref(name)] = segments.as_slice() {
                return self.lookup(name, t);
            }
        }
        self.expand(t).map(Value::String)
    }

    /// A YAML value as JSON with every string expanded (typed where it is one reference).
    pub fn expand_node(&self, n: &Node) -> Result<Value, VarError> {
        Ok(match n {
            Node::Str(t) => self.expand_value(t)?,
            Node::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.expand_node(i))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(entries) => {
                let mut m = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    m.insert(k.value.clone(), self.expand_node(v)?);
                }
                Value::Object(m)
            }
            other => other.to_json(),
        })
    }
}

/// Why a built-in variable can be missing at run time.
fn unset_builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "namespace" => "it is set only for tests that use a cluster (apply, assert, patch, delete)",
        "kubeconfig" => {
            "it is set only when the run has a cluster (--kubeconfig, $KUBECONFIG, --sandbox)"
        }
        "otlp.grpc" | "otlp.http" => {
            "it is set only when the OTLP receiver runs (a spans step in the run, --otlp-receiver, \
             --sandbox or --demo-gateway)"
        }
        _ => return None,
    })
}

/// A value as it appears inside a longer string.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> Template {
        Template {
            raw: s.into(),
            loc: Loc::new(3, 7),
        }
    }

    #[test]
    fn substitutes_escapes_and_keeps_text() {
        let mut v = Vars::new();
        v.set("host", "example.com");
        v.set("port", 8080);
        assert_eq!(
            v.expand(&t("http://${host}:${port}/x")).unwrap(),
            "http://example.com:8080/x"
        );
        assert_eq!(
            v.expand(&t("cost: $5 and $${host}")).unwrap(),
            "cost: $5 and ${host}"
        );
        assert_eq!(v.expand_value(&t("${port}")).unwrap(), json!(8080));
        assert_eq!(v.expand_value(&t("${port}/")).unwrap(), json!("8080/"));
    }

    /// The error of expanding `raw`, which must say each of `parts`.
    fn expand_error(v: &Vars, raw: &str, parts: &[&str]) -> VarError {
        let e = v.expand(&t(raw)).unwrap_err();
        for part in parts {
            assert!(e.message.contains(part), "{raw}: {}", e.message);
        }
        e
    }

    #[test]
    fn unknown_names_are_errors_with_location_and_suggestion() {
        let mut v = Vars::new();
        v.set("backend_pod", "p");
        let e = expand_error(
            &v,
            "${backend_pd}",
            &[
                "unknown variable `${backend_pd}`",
                "did you mean `${backend_pod}`",
            ],
        );
        assert_eq!(e.loc, Loc::new(3, 7));
        expand_error(
            &v,
            "${env.GWTEST_SURELY_UNSET_VAR}",
            &["GWTEST_SURELY_UNSET_VAR is not set"],
        );
    }

    #[test]
    fn a_builtin_missing_at_run_time_says_when_it_is_set() {
        let e = expand_error(&Vars::new(), "${otlp.grpc}", &[]);
        assert!(
            e.message.starts_with(
                "`${otlp.grpc}` is not set in this run: it is set only when the OTLP receiver runs"
            ),
            "{}",
            e.message
        );
        expand_error(
            &Vars::new(),
            "${namespace}",
            &["only for tests that use a cluster"],
        );
    }

    #[test]
    fn syntax_errors() {
        assert!(parse("${open").unwrap_err().contains("unclosed"));
        assert!(
            parse("${}")
                .unwrap_err()
                .contains("invalid variable reference")
        );
        assert!(
            parse("${a b}")
                .unwrap_err()
                .contains("invalid variable reference")
        );
        assert_eq!(
            references("${a}-${env.B}-$${c}").unwrap(),
            vec!["a", "env.B"]
        );
    }
}
