//! A serde deserializer over the located YAML tree (`yaml.rs`).
//!
//! Why not deserialize straight from the text: serde stops at the first error of a document.
//! From the tree we can deserialize a document, and when it fails, each of its keys (and each
//! step) on its own, so one file reports all its mistakes. Every error carries the location of
//! the innermost node it concerns: an unknown key points at the key, a bad value at the value,
//! a missing key at the map.

use std::fmt::{self, Display};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};

use super::spanned::Loc;
use super::yaml::{YNode, YVal};

/// The newtype-struct name `Spanned<T>` asks for; this deserializer answers it with the node's
/// location (any other deserializer just sees a newtype).
pub const SPANNED_NAME: &str = "__gwtest_spanned";
pub(crate) const LOC_KEY: &str = "__gwtest_loc";

/// Marks a location inside a custom error message (`located`), so visitors that only see a
/// generic `D::Error` can still point at a key they read.
const LOC_MARK: char = '\u{1}';

/// A deserialization error at a location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeError {
    pub message: String,
    pub loc: Loc,
    /// Set for "missing required key" errors (they depend on the whole map).
    pub missing: Option<String>,
}

impl DeError {
    /// Attach `loc` unless a more precise (inner) location is already known.
    pub fn at(mut self, loc: Loc) -> Self {
        if !self.loc.is_known() {
            self.loc = loc;
        }
        self
    }
}

impl Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// A custom error that carries its own location (see `LOC_MARK`).
pub fn located<E: de::Error>(loc: Loc, msg: impl Display) -> E {
    if loc.is_known() {
        E::custom(format!("{LOC_MARK}{}:{}{LOC_MARK}{msg}", loc.line, loc.col))
    } else {
        E::custom(msg)
    }
}

fn unmark(s: &str) -> (Loc, String) {
    if let Some(rest) = s.strip_prefix(LOC_MARK)
        && let Some((pos, msg)) = rest.split_once(LOC_MARK)
        && let Some((l, c)) = pos.split_once(':')
        && let (Ok(l), Ok(c)) = (l.parse(), c.parse())
    {
        return (Loc::new(l, c), msg.to_owned());
    }
    // A marker deeper in a wrapped message (serde's untagged/flatten wrappers): keep the text.
    (Loc::UNKNOWN, s.replace(LOC_MARK, ""))
}

/// A map of which exactly one key may be set (`set`: the ones that are): `value`, or the
/// error for none (`none`) or several (`several`, given the keys found).
pub fn exactly_one<T, E: serde::de::Error>(
    value: T,
    set: &[&str],
    none: &str,
    several: impl FnOnce(String) -> String,
) -> Result<T, E> {
    match set {
        [_] => Ok(value),
        [] => Err(E::custom(none)),
        keys => Err(E::custom(several(list(keys)))),
    }
}

/// `a`, `b` or `c` as "`a`, `b`, `c`".
pub fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                crate::matching::edit_distance(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn unexpected(u: &Unexpected) -> String {
    match u {
        Unexpected::Bool(b) => format!("boolean {b}"),
        Unexpected::Unsigned(n) => format!("number {n}"),
        Unexpected::Signed(n) => format!("number {n}"),
        Unexpected::Float(n) => format!("number {n}"),
        Unexpected::Char(c) => format!("string {c:?}"),
        Unexpected::Str(s) => format!("string {}", crate::util::quoted(s)),
        Unexpected::Unit | Unexpected::Option => "null".into(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Map => "a map".into(),
        other => other.to_string(),
    }
}

/// serde's "expected" phrases in the words of the suite language.
fn expected(e: &dyn Display) -> String {
    let s = e.to_string();
    match s.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "a boolean (true or false)".into(),
        "a sequence" => "a list".into(),
        "struct Step" => "a step: a map with one action key (apply, assert, request, ...)".into(),
        "struct TestDoc" | "struct SuiteDoc" => "a map of keys".into(),
        "struct TextMatchKeys" => "a map with one of `equals`, `contains`, `matches`".into(),
        "struct ResourceRef" => "a map: {apiVersion, kind, name or selector}".into(),
        other if other.starts_with("struct ") => "a map".into(),
        other if other.starts_with("a map") => other.into(),
        other if other.starts_with("a ") || other.starts_with("an ") => other.into(),
        other if other.contains(" or ") || other.contains('{') => other.into(),
        other => format!("a {other}"),
    }
}

impl de::Error for DeError {
    fn custom<T: Display>(msg: T) -> Self {
        let (loc, message) = unmark(&msg.to_string());
        DeError {
            message,
            loc,
            missing: None,
        }
    }

    fn invalid_type(unexp: Unexpected, exp: &dyn Expected) -> Self {
        let exp = expected(&format_args!("{exp}"));
        <DeError as de::Error>::custom(format!(
            "wrong type: expected {exp}, found {}",
            unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected, exp: &dyn Expected) -> Self {
        let exp = expected(&format_args!("{exp}"));
        <DeError as de::Error>::custom(format!(
            "invalid value {}: expected {exp}",
            unexpected(&unexp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        <DeError as de::Error>::custom(format!(
            "wrong number of items ({len}): expected {}",
            expected(&format_args!("{exp}"))
        ))
    }

    fn unknown_variant(variant: &str, options: &'static [&'static str]) -> Self {
        let hint = did_you_mean(variant, options.iter().copied())
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        <DeError as de::Error>::custom(format!(
            "unknown value `{variant}`{hint}; expected one of {}",
            list(options)
        ))
    }

    fn unknown_field(field: &str, options: &'static [&'static str]) -> Self {
        // A step's map: a key of an action written one level too high is a common slip.
        const INNER: [(&str, &str); 12] = [
            ("expect", "request"),
            ("capture", "request"),
            ("url", "request"),
            ("method", "request"),
            ("headers", "request"),
            ("body", "request"),
            ("attempt-timeout", "request"),
            ("resource", "assert"),
            ("conditions", "assert"),
            ("fields", "assert"),
            ("command", "exec"),
            ("merge", "patch"),
        ];
        if options.contains(&"apply")
            && options.contains(&"sleep")
            && let Some((_, action)) = INNER.iter().find(|(k, _)| *k == field)
        {
            return DeError::custom(format!(
                "unknown key `{field}` in a step: it belongs inside the action (e.g. \
                 `{action}: {{{field}: ...}}`); check the indentation"
            ));
        }
        let shown = crate::util::shown(field);
        let field = &*shown;
        let msg = match did_you_mean(field, options.iter().copied()) {
            Some(c) => format!("unknown key `{field}`: did you mean `{c}`?"),
            None if options.is_empty() => {
                format!("unknown key `{field}`: no keys are allowed here")
            }
            None => format!("unknown key `{field}`: expected one of {}", list(options)),
        };
        <DeError as de::Error>::custom(msg)
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            message: format!("missing required key `{field}`"),
            loc: Loc::UNKNOWN,
            missing: Some(field.to_owned()),
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        <DeError as de::Error>::custom(format!("duplicate key `{}`", crate::util::shown(field)))
    }
}

/// Deserializes one node. `text` is the file's source, for the spelling of plain scalars.
#[derive(Clone, Copy)]
pub struct NodeDe<'a> {
    pub node: &'a YNode,
    pub text: &'a str,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a YNode, text: &'a str) -> Self {
        NodeDe { node, text }
    }

    fn scalar_or_any<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.v {
            YVal::Bool(_) | YVal::Int(_) | YVal::Float(_) => {
                let text = self.node.scalar_text(self.text).unwrap_or_default();
                v.visit_str(&text)
            }
            _ => self.any(v),
        }
    }

    fn any<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.v {
            YVal::Null => v.visit_unit(),
            YVal::Bool(b) => v.visit_bool(*b),
            YVal::Int(i) => v.visit_i64(*i),
            YVal::Float(f) => v.visit_f64(*f),
            YVal::Str(s) => v.visit_str(s),
            YVal::Seq(items) => {
                let mut access = SeqDe {
                    iter: items.iter(),
                    text: self.text,
                };
                let out = v.visit_seq(&mut access)?;
                match access.iter.next() {
                    Some(extra) => Err(<DeError as de::Error>::custom(
                        "too many items in this list",
                    )
                    .at(extra.loc)),
                    None => Ok(out),
                }
            }
            YVal::Map(entries) => v.visit_map(MapDe {
                iter: entries.iter(),
                value: None,
                text: self.text,
            }),
        }
    }
}

/// Deserializer methods that read the node as it is (a struct as its map, a tuple as its
/// list), their arguments other than the visitor ignored.
macro_rules! forward_any {
    ($($m:ident $(($($arg:ident: $ty:ty),*))?)*) => {
        $(fn $m<V: Visitor<'de>>(self, $($($arg: $ty,)*)? v: V) -> Result<V::Value, DeError> {
            self.any(v).map_err(|e| e.at(self.node.loc))
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    forward_any! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
        deserialize_unit_struct(_name: &'static str)
        deserialize_tuple(_len: usize)
        deserialize_tuple_struct(_name: &'static str, _len: usize)
        deserialize_struct(_name: &'static str, _fields: &'static [&'static str])
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.scalar_or_any(v).map_err(|e| e.at(self.node.loc))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.node.v {
            YVal::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
        .map_err(|e| e.at(self.node.loc))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED_NAME {
            v.visit_map(SpannedAccess { de: self, state: 0 })
        } else {
            v.visit_newtype_struct(self)
        }
        .map_err(|e| e.at(self.node.loc))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.v {
            YVal::Str(_) | YVal::Bool(_) | YVal::Int(_) | YVal::Float(_) => {
                let text = self.node.scalar_text(self.text).unwrap_or_default();
                v.visit_enum(IntoDeserializer::<DeError>::into_deserializer(text))
            }
            _ => Err(<DeError as de::Error>::custom(format!(
                "wrong type: expected one of the allowed words, found {}",
                self.node.describe()
            ))),
        }
        .map_err(|e| e.at(self.node.loc))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct SeqDe<'a> {
    iter: std::slice::Iter<'a, YNode>,
    text: &'a str,
}

impl<'de> SeqAccess<'de> for &mut SeqDe<'_> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(n) => from_node_seed(seed, n, self.text).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a, I: Iterator<Item = &'a (YNode, YNode)>> {
    iter: I,
    value: Option<&'a YNode>,
    text: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a (YNode, YNode)>> MapAccess<'de> for MapDe<'a, I> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                from_node_seed(seed, k, self.text).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("a map value was asked for twice"))?;
        from_node_seed(seed, v, self.text)
    }
}

/// `{__gwtest_loc: LINE<<32|COL, value: T}`, read by `Spanned<T>`.
struct SpannedAccess<'a> {
    de: NodeDe<'a>,
    state: u8,
}

impl<'de> MapAccess<'de> for SpannedAccess<'_> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let key = match self.state {
            0 => LOC_KEY,
            1 => "value",
            _ => return Ok(None),
        };
        seed.deserialize(IntoDeserializer::<DeError>::into_deserializer(key))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        self.state += 1;
        if self.state == 1 {
            let loc = self.de.node.loc;
            let packed = (u64::from(loc.line) << 32) | u64::from(loc.col);
            seed.deserialize(IntoDeserializer::<DeError>::into_deserializer(packed))
        } else {
            seed.deserialize(self.de)
        }
    }
}

/// A deserializer over some entries of a map (to try its keys one at a time).
struct EntriesDe<'a> {
    entries: Vec<&'a (YNode, YNode)>,
    loc: Loc,
    text: &'a str,
}

impl<'de> de::Deserializer<'de> for EntriesDe<'_> {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_map(MapDe {
            iter: self.entries.into_iter(),
            value: None,
            text: self.text,
        })
        .map_err(|e| e.at(self.loc))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// Deserialize a `T` from a node.
pub fn from_node<T: DeserializeOwned>(node: &YNode, text: &str) -> Result<T, DeError> {
    from_node_seed(std::marker::PhantomData::<T>, node, text)
}

/// Deserialize `seed` from a node; an error without a more precise location gets the node's.
fn from_node_seed<'de, T: DeserializeSeed<'de>>(
    seed: T,
    node: &YNode,
    text: &str,
) -> Result<T::Value, DeError> {
    seed.deserialize(NodeDe::new(node, text))
        .map_err(|e| e.at(node.loc))
}

/// Deserialize a `T` from a map node; when that fails, find the errors of each key on its
/// own (`split` may replace a key's errors by a finer search, e.g. one per list item), plus
/// any required key that is missing. Errors come back in file order.
pub fn from_node_all<T: DeserializeOwned>(
    node: &YNode,
    text: &str,
    split: &dyn Fn(&str, &YNode) -> Option<Vec<DeError>>,
) -> Result<T, Vec<DeError>> {
    let first = match from_node::<T>(node, text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let YVal::Map(entries) = &node.v else {
        return Err(vec![first]);
    };
    let mut errors = Vec::new();
    let mut bad_keys: Vec<&str> = Vec::new();
    let mut good = Vec::new();
    for entry in entries {
        let key = entry.0.as_str().unwrap_or_default();
        let alone = T::deserialize(EntriesDe {
            entries: vec![entry],
            loc: node.loc,
            text,
        });
        match alone {
            Err(e) if e.missing.is_none() => {
                let finer = split(key, &entry.1).filter(|f| !f.is_empty());
                errors.extend(finer.unwrap_or_else(|| vec![e.at(entry.0.loc)]));
                bad_keys.push(key);
            }
            _ => good.push(entry),
        }
    }
    // What is missing, or wrong only in combination, shows with the good keys together.
    if let Err(e) = T::deserialize(EntriesDe {
        entries: good,
        loc: node.loc,
        text,
    }) {
        let spurious = e.missing.as_deref().is_some_and(|m| bad_keys.contains(&m));
        if !spurious {
            errors.push(e.at(node.loc));
        }
    }
    if errors.is_empty() {
        errors.push(first);
    }
    errors.sort_by_key(|e| e.loc);
    errors.dedup();
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::spanned::{Dur, Spanned};
    use crate::suite::yaml::parse_documents;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Demo {
        name: Spanned<String>,
        timeout: Option<Dur>,
        #[serde(default)]
        items: Vec<Spanned<u32>>,
    }

    fn doc(text: &str) -> YNode {
        parse_documents(text).unwrap().remove(0)
    }

    #[test]
    fn values_keep_their_locations() {
        let text = "name: 1.10\ntimeout: 2s\nitems:\n  - 1\n  - 2\n";
        let d: Demo = from_node(&doc(text), text).unwrap();
        assert_eq!(d.name.value, "1.10");
        assert_eq!(d.timeout.map(|t| t.0.as_secs()), Some(2));
        assert_eq!(d.name.loc, Loc::new(1, 7));
        assert_eq!(d.items[1].loc, Loc::new(5, 5));
    }

    #[test]
    fn errors_point_at_the_key_or_value() {
        let text = "name: x\ntiemout: 2s\n";
        let e = from_node::<Demo>(&doc(text), text).unwrap_err();
        assert_eq!(e.loc, Loc::new(2, 1));
        assert!(e.message.contains("did you mean `timeout`"), "{e}");
        let text = "name: x\ntimeout: 2\n";
        let e = from_node::<Demo>(&doc(text), text).unwrap_err();
        assert_eq!(e.loc, Loc::new(2, 10));
        assert!(e.message.contains("no unit"), "{e}");
        let text = "name: x\nitems: [1, true]\n";
        let e = from_node::<Demo>(&doc(text), text).unwrap_err();
        assert_eq!(e.loc, Loc::new(2, 12));
        assert!(e.message.contains("wrong type"), "{e}");
    }

    #[test]
    fn collects_one_error_per_key_and_missing_keys() {
        let text = "bogus: 1\ntimeout: 2\nitems: {a: 1}\n";
        let errs = from_node_all::<Demo>(&doc(text), text, &|_, _| None).unwrap_err();
        let locs: Vec<_> = errs.iter().map(|e| (e.loc, e.message.as_str())).collect();
        assert_eq!(errs.len(), 4, "{locs:?}");
        assert_eq!(errs[0].loc, Loc::new(1, 1), "{locs:?}");
        assert!(
            errs.iter()
                .any(|e| e.message.contains("missing required key `name`"))
        );
    }

    #[test]
    fn models_still_deserialize_from_other_deserializers() {
        use crate::suite::model::{RequestSpec, Step};
        use crate::suite::spanned::Node;
        // serde-saphyr directly (with its own spans) ...
        let text = "url: \"http://${host}/\"\nheaders: {X-N: 5}\nbody: {a: [1, \"x\"]}\n";
        let r: RequestSpec = serde_saphyr::from_str(text).unwrap();
        assert_eq!(r.url.raw, "http://${host}/");
        assert_eq!(r.url.loc, Loc::new(1, 6));
        assert_eq!(r.headers.get("X-N").unwrap().raw, "5");
        // ... and any other deserializer, without locations.
        let v = serde_json::json!({"a": [1, "x", null, {"b": true}]});
        let n = Node::deserialize(v.clone()).unwrap();
        assert_eq!(n.to_json(), v);
        let step: Step =
            serde_json::from_value(serde_json::json!({"sleep": "2s", "name": "nap"})).unwrap();
        assert_eq!(step.display_name(), "nap");
        assert!(matches!(step.action, crate::suite::model::Action::Sleep(d) if d.0.as_secs() == 2));
    }

    #[test]
    fn located_custom_errors() {
        let e: DeError = located(Loc::new(3, 4), "boom");
        assert_eq!((e.loc, e.message.as_str()), (Loc::new(3, 4), "boom"));
    }
}
