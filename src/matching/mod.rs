//! Matching semantics shared by `fields`, `json`, text and span expectations (DESIGN §1.3).
//!
//! Maps match as subsets; an expected list matches when each of its elements matches a
//! distinct actual element in any order; scalars compare by value and type.

pub mod cel;

use std::fmt;

use serde_json::Value;

/// Why an expected value does not match, at the first place it stops matching.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// JSONPath-like location, e.g. `$.status.parents[0].conditions`.
    pub path: String,
    pub expected: Value,
    /// `None` when the key is missing.
    pub actual: Option<Value>,
    pub note: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.actual {
            None => write!(
                f,
                "{}: missing (expected {})",
                self.path,
                short(&self.expected)
            ),
            Some(a) if self.note.is_empty() => {
                write!(
                    f,
                    "{}: expected {}, got {}",
                    self.path,
                    short(&self.expected),
                    short(a)
                )
            }
            Some(_) => write!(f, "{}: {}", self.path, self.note),
        }
    }
}

impl Mismatch {
    /// A unified diff of expected vs actual, for values too large for one line.
    pub fn diff(&self) -> Option<String> {
        let actual = self.actual.as_ref()?;
        if !(is_big(&self.expected) || is_big(actual)) {
            return None;
        }
        Some(diff_values(&self.expected, actual))
    }
}

fn is_big(v: &Value) -> bool {
    matches!(v, Value::Object(_) | Value::Array(_)) && v.to_string().len() > 60
}

/// A compact one-line rendering of a value for messages.
pub fn short(v: &Value) -> String {
    crate::util::truncate(&v.to_string(), 120)
}

/// Check that `expected` is a subset of `actual` (see module docs).
pub fn subset(expected: &Value, actual: &Value) -> Result<(), Mismatch> {
    subset_at("$", expected, actual)
}

fn subset_at(path: &str, expected: &Value, actual: &Value) -> Result<(), Mismatch> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = child_path(path, k);
                match a.get(k) {
                    None => {
                        return Err(Mismatch {
                            path: p,
                            expected: ev.clone(),
                            actual: None,
                            note: String::new(),
                        });
                    }
                    Some(av) => subset_at(&p, ev, av)?,
                }
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => list_subset(path, e, a),
        (e, a) if scalar_eq(e, a) => Ok(()),
        (e, a) => Err(Mismatch {
            path: path.to_owned(),
            expected: e.clone(),
            actual: Some(a.clone()),
            note: type_note(e, a),
        }),
    }
}

/// Numbers compare by value (`1` equals `1.0`); other scalars must be equal and of one type.
fn scalar_eq(e: &Value, a: &Value) -> bool {
    match (e, a) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => e == a,
    }
}

fn type_note(e: &Value, a: &Value) -> String {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    if std::mem::discriminant(e) != std::mem::discriminant(a) {
        format!(
            "expected {} {}, got {} {} (values compare with their type)",
            kind(e),
            short(e),
            kind(a),
            short(a)
        )
    } else {
        String::new()
    }
}

fn child_path(path: &str, key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("{path}.{key}")
    } else {
        format!("{path}['{key}']")
    }
}

/// Every expected element must match a distinct actual element (bipartite matching).
fn list_subset(path: &str, expected: &[Value], actual: &[Value]) -> Result<(), Mismatch> {
    // compat[i] = actual indices that expected[i] matches
    let compat: Vec<Vec<usize>> = expected
        .iter()
        .map(|e| {
            (0..actual.len())
                .filter(|&j| subset_at("$", e, &actual[j]).is_ok())
                .collect()
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; actual.len()];
    for i in 0..expected.len() {
        let mut seen = vec![false; actual.len()];
        if !augment(i, &compat, &mut owner, &mut seen) {
            let e = &expected[i];
            // Explain with the closest candidate: the one whose mismatch is deepest.
            let closest = actual
                .iter()
                .enumerate()
                .filter_map(|(j, a)| {
                    subset_at(&format!("{path}[{j}]"), e, a)
                        .err()
                        .map(|m| (depth(&m.path), m))
                })
                .max_by_key(|(d, _)| *d);
            let note = if compat[i].is_empty() {
                format!(
                    "no element of the list ({} elements) matches {}",
                    actual.len(),
                    short(e)
                )
            } else {
                format!(
                    "{} expected elements need distinct matches; {} is left without one",
                    expected.len(),
                    short(e)
                )
            };
            let mut m = Mismatch {
                path: format!("{path}[*]"),
                expected: e.clone(),
                actual: Some(Value::Array(actual.to_vec())),
                note,
            };
            if let Some((_, c)) = closest {
                m.note.push_str(&format!("; closest: {c}"));
            }
            return Err(m);
        }
    }
    Ok(())
}

fn augment(
    i: usize,
    compat: &[Vec<usize>],
    owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for &j in &compat[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        if owner[j].is_none() || augment(owner[j].unwrap(), compat, owner, seen) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

fn depth(path: &str) -> usize {
    path.matches(['.', '[']).count()
}

/// A unified diff of two values rendered as pretty JSON.
pub fn diff_values(expected: &Value, actual: &Value) -> String {
    // Trailing newlines keep the diff free of "\ No newline at end of file" markers.
    let e = serde_json::to_string_pretty(expected).unwrap_or_default() + "\n";
    let a = serde_json::to_string_pretty(actual).unwrap_or_default() + "\n";
    similar::TextDiff::from_lines(&e, &a)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// The single value a JSONPath selects (captures, `from` variables).
pub fn query_one(path: &crate::suite::spanned::JsonPathExpr, doc: &Value) -> Result<Value, String> {
    let nodes = path.path.query(doc).all();
    match nodes.len() {
        0 => Err(format!("{} matched nothing", path.raw)),
        1 => Ok(nodes[0].clone()),
        n => Err(format!(
            "{} matched {n} values; make it select exactly one",
            path.raw
        )),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidates closest to `target` (at most `n`), best first.
pub fn closest<'a>(
    target: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(target, c), c))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Text expectations: `equals`, `contains`, `matches`, already expanded.
#[derive(Clone, Debug)]
pub enum Text {
    Equals(String),
    Contains(String),
    Matches(regex::Regex),
}

impl Text {
    pub fn check(&self, actual: &str) -> Result<(), String> {
        let ok = match self {
            Text::Equals(e) => actual == e,
            Text::Contains(e) => actual.contains(e.as_str()),
            Text::Matches(r) => r.is_match(actual),
        };
        if ok { Ok(()) } else { Err(self.describe()) }
    }

    /// What was expected, e.g. `contains "example-svc"`.
    pub fn describe(&self) -> String {
        match self {
            Text::Equals(e) => format!("equals {:?}", crate::util::truncate(e, 80)),
            Text::Contains(e) => format!("contains {:?}", crate::util::truncate(e, 80)),
            Text::Matches(r) => format!("matches /{}/", r.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_match_as_subsets() {
        let actual = json!({"spec": {"port": 8080, "name": "x"}, "kind": "Svc"});
        assert!(subset(&json!({"spec": {"port": 8080}}), &actual).is_ok());
        let m = subset(&json!({"spec": {"port": "8080"}}), &actual).unwrap_err();
        assert_eq!(m.path, "$.spec.port");
        assert!(m.note.contains("a string"), "{m}");
        let m = subset(&json!({"spec": {"host": "h"}}), &actual).unwrap_err();
        assert_eq!(m.actual, None);
        assert_eq!(m.to_string(), "$.spec.host: missing (expected \"h\")");
    }

    #[test]
    fn lists_match_unordered_with_distinct_elements() {
        let actual = json!({"conditions": [
            {"type": "Programmed", "status": "True"},
            {"type": "Accepted", "status": "True", "reason": "Accepted"}
        ]});
        let ok =
            json!({"conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed"}]});
        assert!(subset(&ok, &actual).is_ok());
        // Two expected elements cannot both be satisfied by the same actual element.
        let twice =
            json!({"conditions": [{"status": "True"}, {"status": "True"}, {"status": "True"}]});
        let m = subset(&twice, &actual).unwrap_err();
        assert!(m.note.contains("distinct"), "{m}");
        let bad = json!({"conditions": [{"type": "Accepted", "status": "False"}]});
        let m = subset(&bad, &actual).unwrap_err();
        assert!(
            m.note
                .contains("closest: $.conditions[1].status: expected \"False\", got \"True\""),
            "{m}"
        );
    }

    #[test]
    fn matching_needs_augmenting_paths() {
        // Greedy would give actual[0] to the first expected element and fail the second.
        let actual = json!([{"a": 1, "b": 2}, {"a": 1}]);
        assert!(subset(&json!([{"a": 1}, {"b": 2}]), &actual).is_ok());
    }

    #[test]
    fn numbers_compare_by_value_not_representation() {
        assert!(subset(&json!(1), &json!(1.0)).is_ok());
        assert!(subset(&json!(1), &json!(2)).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("route exampl", ["GET /example", "route example", "x"], 1),
            vec!["route example"]
        );
    }
}
