//! YAML text -> a tree of located nodes.
//!
//! serde-saphyr parses (anchors, merge keys, multi-document streams, syntax errors with their
//! location); we keep every node's location so the typed models can be deserialized from the
//! tree one piece at a time (see `de.rs`), which lets one file report many errors instead of
//! stopping at the first.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::spanned::{Loc, ViaAny};

/// One YAML node and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct YNode {
    pub loc: Loc,
    /// Byte range of a scalar in the source, to recover the text of plain numbers and
    /// booleans (`1.10` stays "1.10" where a string is expected).
    pub span: Option<(u32, u32)>,
    pub v: YVal,
}

#[derive(Clone, Debug, PartialEq)]
pub enum YVal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<YNode>),
    Map(Vec<(YNode, YNode)>),
}

impl YNode {
    /// The entry of a map by key.
    pub fn get(&self, key: &str) -> Option<&YNode> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node of a map entry.
    pub fn entry(&self, key: &str) -> Option<(&YNode, &YNode)> {
        match &self.v {
            YVal::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            YVal::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar as written (numbers and booleans keep their spelling).
    pub fn scalar_text(&self, source: &str) -> Option<String> {
        let from_source = || {
            let (start, len) = self.span?;
            source
                .get(start as usize..(start + len) as usize)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && !s.contains('\n'))
        };
        match &self.v {
            YVal::Str(s) => Some(s.clone()),
            YVal::Bool(b) => Some(from_source().unwrap_or_else(|| b.to_string())),
            YVal::Int(i) => Some(from_source().unwrap_or_else(|| i.to_string())),
            YVal::Float(f) => Some(from_source().unwrap_or_else(|| f.to_string())),
            _ => None,
        }
    }

    /// What kind of value this is, for messages.
    pub fn describe(&self) -> String {
        match &self.v {
            YVal::Null => "null".into(),
            YVal::Bool(b) => format!("boolean {b}"),
            YVal::Int(i) => format!("number {i}"),
            YVal::Float(f) => format!("number {f}"),
            YVal::Str(s) => format!("string {s:?}"),
            YVal::Seq(_) => "a list".into(),
            YVal::Map(_) => "a map".into(),
        }
    }
}

#[derive(Default)]
struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = YVal;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<YVal, E> {
        Ok(YVal::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<YVal, E> {
        Ok(YVal::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YVal, D::Error> {
        d.deserialize_any(ValVisitor)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<YVal, E> {
        Ok(YVal::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<YVal, E> {
        Ok(YVal::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<YVal, E> {
        Ok(i64::try_from(v).map_or(YVal::Float(v as f64), YVal::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<YVal, E> {
        Ok(i64::try_from(v).map_or(YVal::Float(v as f64), YVal::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<YVal, E> {
        Ok(i64::try_from(v).map_or(YVal::Float(v as f64), YVal::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<YVal, E> {
        Ok(YVal::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<YVal, E> {
        Ok(YVal::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<YVal, E> {
        Ok(YVal::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<YVal, E> {
        Ok(YVal::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<YVal, A::Error> {
        let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0));
        while let Some(n) = a.next_element::<YNode>()? {
            items.push(n);
        }
        Ok(YVal::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<YVal, A::Error> {
        let mut entries = Vec::with_capacity(a.size_hint().unwrap_or(0));
        while let Some(k) = a.next_key::<YNode>()? {
            let v = a.next_value::<YNode>()?;
            entries.push((k, v));
        }
        Ok(YVal::Map(entries))
    }
}

impl<'de> Deserialize<'de> for YNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<ViaAny<ValVisitor>>::deserialize(d)?;
        let span = match &s.value.0 {
            YVal::Bool(_) | YVal::Int(_) | YVal::Float(_) => {
                let sp = s.defined.span();
                sp.byte_offset()
                    .zip(sp.byte_len())
                    .map(|(o, l)| (o as u32, l as u32))
            }
            _ => None,
        };
        Ok(YNode {
            loc: s.referenced.into(),
            span,
            v: s.value.0,
        })
    }
}

/// A YAML syntax (or structure) error with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
}

/// Every non-empty document of a YAML stream.
pub fn parse_documents(text: &str) -> Result<Vec<YNode>, SyntaxError> {
    let mut options = serde_saphyr::options::Options::default();
    options.emit_comments = false;
    serde_saphyr::from_str_multiple_with_options::<YNode, Vec<YNode>>(text, options).map_err(|e| {
        SyntaxError {
            loc: e.location().map(Loc::from).unwrap_or(Loc::UNKNOWN),
            message: yaml_message(&e),
        }
    })
}

/// serde-saphyr's message for an error, in the suite language's words, without its location
/// (ours is added with the file name) or snippet. Decided by the error's variant, never by
/// its text: a duplicate key named `a, set b` is still the key `a, set b`.
pub(crate) fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::{DefaultMessageFormatter, Error, MessageFormatter};
    let mut e = e;
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = e {
        e = error;
    }
    if let Error::DuplicateMappingKey { key, .. } = e {
        // serde-saphyr's hint about its own options means nothing to a suite author.
        return match key {
            Some(k) => format!("duplicate key `{k}`: a key may appear only once in a map"),
            None => "duplicate key: a key may appear only once in a map".to_string(),
        };
    }
    let text = DefaultMessageFormatter.format_message(e);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("invalid YAML: {}", text.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_locations_and_scalar_text() {
        let text = "a: 1.10\nb:\n  - x\n  - {c: yes}\n---\n---\nd: 0x10\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2, "empty documents are skipped");
        let a = docs[0].get("a").unwrap();
        assert_eq!(a.loc, Loc::new(1, 4));
        assert_eq!(a.scalar_text(text).as_deref(), Some("1.10"));
        let b = docs[0].get("b").unwrap();
        let YVal::Seq(items) = &b.v else {
            panic!("{b:?}")
        };
        assert_eq!(items[1].loc.line, 4);
        assert_eq!(
            items[1].get("c").unwrap().scalar_text(text).as_deref(),
            Some("yes")
        );
        assert_eq!(
            docs[1].get("d").unwrap().scalar_text(text).as_deref(),
            Some("0x10")
        );
    }

    #[test]
    fn duplicate_keys_are_errors_at_the_second_key_named_whatever_they_spell() {
        for (text, loc, key) in [
            ("a: 1\nb: 2\na: 3\n", Loc::new(3, 1), "a"),
            // The key once was cut out of serde-saphyr's message at ", set ".
            (
                "\"a, set b\": 1\n\"a, set b\": 2\n",
                Loc::new(2, 1),
                "a, set b",
            ),
        ] {
            let e = parse_documents(text).unwrap_err();
            assert_eq!(e.loc, loc, "{text:?}");
            assert_eq!(
                e.message,
                format!("duplicate key `{key}`: a key may appear only once in a map"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_have_locations() {
        let e = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.loc.is_known(), "{e:?}");
        assert!(e.message.starts_with("invalid YAML"), "{e:?}");
        // serde-saphyr's own location is not repeated: ours is added with the file name.
        assert!(!e.message.contains("line"), "{e:?}");
    }
}
