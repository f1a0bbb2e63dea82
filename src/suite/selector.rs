//! Kubernetes label selectors (`app=web,tier in (a,b),!legacy`), parsed so that a typo is a
//! load-time error and the cluster code can match objects with the same rules.
//!
//! Grammar (as `kubectl -l`): requirements separated by commas, each one of `key`, `!key`,
//! `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`.

use std::collections::BTreeMap;
use std::fmt;

/// How a requirement compares a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key=value` (or `==`).
    Equals,
    /// `key!=value`: the label is missing or has another value.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`: the label is missing or has none of the values.
    NotIn,
}

/// One comma-separated part of a selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
    /// One value for `=`/`!=`, one or more for `in`/`notin`, none otherwise.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether an object with these labels satisfies the requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
            Operator::Equals | Operator::In => v.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => !v.is_some_and(|v| self.values.contains(v)),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, self.values[0]),
            Operator::NotEquals => write!(f, "{}!={}", self.key, self.values[0]),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

/// Whether every requirement holds for these labels.
pub fn matches_all(reqs: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| r.matches(labels))
}

/// The selector in the canonical form the Kubernetes API accepts (`labelSelector=`).
pub fn to_query(reqs: &[Requirement]) -> String {
    reqs.iter()
        .map(Requirement::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse a label selector; the error says what is wrong and what was expected.
pub fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    if s.trim().is_empty() {
        return Err("empty label selector: expected e.g. `app=web` or `tier in (a,b)`".into());
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                return Err(format!(
                    "unbalanced `)` in selector {}",
                    crate::util::quoted(s)
                ));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unclosed `(` in selector {}",
            crate::util::quoted(s)
        ));
    }
    parts.push(&s[start..]);
    parts.into_iter().map(parse_requirement).collect()
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let p = part.trim();
    if p.is_empty() {
        return Err("empty requirement (two commas in a row, or a trailing comma)".into());
    }
    if let Some(rest) = p.strip_prefix('!') {
        let key = rest.trim();
        check_key(key)?;
        return Ok(Requirement {
            key: key.to_owned(),
            op: Operator::DoesNotExist,
            values: Vec::new(),
        });
    }
    let key_end = p.find(|c: char| !is_key_char(c)).unwrap_or(p.len());
    let key = &p[..key_end];
    if key.is_empty() {
        return Err(format!(
            "{}: a requirement starts with a label key",
            crate::util::quoted(p)
        ));
    }
    check_key(key)?;
    let rest = p[key_end..].trim_start();
    let (op, values) = if rest.is_empty() {
        (Operator::Exists, Vec::new())
    } else if let Some(v) = rest.strip_prefix("!=") {
        (Operator::NotEquals, vec![single_value(v)?])
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        (Operator::Equals, vec![single_value(v)?])
    } else if let Some(v) = word(rest, "notin") {
        (Operator::NotIn, value_list(v)?)
    } else if let Some(v) = word(rest, "in") {
        (Operator::In, value_list(v)?)
    } else {
        return Err(format!(
            "unexpected {qr} after label key `{key}`: expected `=`, `!=`, `in (...)` or \
             `notin (...)`",
            qr = crate::util::quoted(rest)
        ));
    };
    Ok(Requirement {
        key: key.to_owned(),
        op,
        values,
    })
}

/// `rest` without a leading keyword followed by a space or `(`.
fn word<'a>(rest: &'a str, kw: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(kw)?;
    (after.starts_with(char::is_whitespace) || after.starts_with('(')).then_some(after)
}

fn single_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    check_value(v)?;
    Ok(v.to_owned())
}

fn value_list(v: &str) -> Result<Vec<String>, String> {
    let v = v.trim();
    let inner = v
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| {
            format!(
                "expected a list of values in parentheses, e.g. (a,b), found {}",
                crate::util::quoted(v)
            )
        })?;
    if inner.trim().is_empty() {
        return Err("`in`/`notin` need at least one value: (a,b)".into());
    }
    inner.split(',').map(single_value).collect()
}

fn name_ok(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !s.is_empty()
        && s.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS-1123 label (a namespace, a part of a label key's prefix): 1-63 lowercase letters,
/// digits and `-`, starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label);
        if !ok {
            return Err(format!(
                "invalid label key {qk}: the prefix before `/` must be a DNS subdomain \
                 (lowercase letters, digits, `-` and `.`)",
                qk = crate::util::quoted(key)
            ));
        }
    }
    if !name_ok(name, 63) {
        return Err(format!(
            "invalid label key {qk}: a name is 1-63 letters, digits, `-`, `_` or `.`, \
             starting and ending with a letter or digit",
            qk = crate::util::quoted(key)
        ));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || name_ok(v, 63) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {qv}: at most 63 letters, digits, `-`, `_` or `.`, starting \
             and ending with a letter or digit",
            qv = crate::util::quoted(v)
        ))
    }
}

/// Check one label key and value (for selectors written as a map).
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    check_key(key)?;
    check_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let r = parse_label_selector(
            "app=web, tier in (a, b),!legacy,env!=prod,demo.gwtest.dev/discover==true,x notin (1),y",
        )
        .unwrap();
        let ops: Vec<Operator> = r.iter().map(|r| r.op).collect();
        assert_eq!(
            ops,
            vec![
                Operator::Equals,
                Operator::In,
                Operator::DoesNotExist,
                Operator::NotEquals,
                Operator::Equals,
                Operator::NotIn,
                Operator::Exists
            ]
        );
        assert_eq!(r[1].values, vec!["a", "b"]);
        assert_eq!(r[4].key, "demo.gwtest.dev/discover");
        assert_eq!(
            to_query(&r),
            "app=web,tier in (a,b),!legacy,env!=prod,demo.gwtest.dev/discover=true,x notin (1),y"
        );
    }

    #[test]
    fn matches_like_kubernetes() {
        let r = parse_label_selector("app=web,tier in (a,b),!legacy,env!=prod").unwrap();
        assert!(matches_all(&r, &labels(&[("app", "web"), ("tier", "a")])));
        assert!(matches_all(
            &r,
            &labels(&[("app", "web"), ("tier", "b"), ("env", "dev")])
        ));
        assert!(!matches_all(&r, &labels(&[("app", "web"), ("tier", "c")])));
        assert!(!matches_all(
            &r,
            &labels(&[("app", "web"), ("tier", "a"), ("legacy", "")])
        ));
        assert!(!matches_all(
            &r,
            &labels(&[("app", "web"), ("tier", "a"), ("env", "prod")])
        ));
    }

    #[test]
    fn rejects_what_kubectl_rejects() {
        for (bad, why) in [
            ("", "empty"),
            ("app=web,", "empty requirement"),
            ("app in (a,b", "unclosed"),
            ("app in a,b", "parentheses"),
            ("app in ()", "at least one value"),
            ("app ~ web", "expected `=`"),
            ("-app=web", "invalid label key"),
            ("Foo_/app=x", "prefix"),
            ("app=we b", "invalid label value"),
            ("app=web)", "unbalanced"),
        ] {
            let e = parse_label_selector(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
