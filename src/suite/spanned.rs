//! Values that remember where they came from in a suite file, so every error can name
//! `file:line:column`. Built on `serde_saphyr::Spanned`, wrapped so we can give them a JSON
//! Schema and our own conveniences.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A 1-based line and column in a file. `Loc::UNKNOWN` (0:0) for values not read from a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
}

impl Loc {
    pub const UNKNOWN: Loc = Loc { line: 0, col: 0 };
    pub fn new(line: u32, col: u32) -> Self {
        Loc { line, col }
    }
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<serde_saphyr::Location> for Loc {
    fn from(l: serde_saphyr::Location) -> Self {
        Loc {
            line: l.line() as u32,
            col: l.column() as u32,
        }
    }
}

/// A value with the location of its YAML node.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Spanned<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Spanned { value, loc }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

        struct V<T>(std::marker::PhantomData<T>);
        fn plain<'de, T: Deserialize<'de>, E: de::Error>(
            d: impl Deserializer<'de, Error = E>,
        ) -> Result<Spanned<T>, E> {
            T::deserialize(d).map(|v| Spanned::new(v, Loc::UNKNOWN))
        }
        /// A map whose first key was already read.
        struct Prepend<A> {
            first: Option<String>,
            rest: A,
        }
        impl<'de, A: MapAccess<'de>> MapAccess<'de> for Prepend<A> {
            type Error = A::Error;
            fn next_key_seed<K: de::DeserializeSeed<'de>>(
                &mut self,
                seed: K,
            ) -> Result<Option<K::Value>, A::Error> {
                match self.first.take() {
                    Some(k) => seed.deserialize(k.into_deserializer()).map(Some),
                    None => self.rest.next_key_seed(seed),
                }
            }
            fn next_value_seed<X: de::DeserializeSeed<'de>>(
                &mut self,
                seed: X,
            ) -> Result<X::Value, A::Error> {
                self.rest.next_value_seed(seed)
            }
        }
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            // The suite deserializer (`de.rs`) answers with {loc, value}; any other map is
            // the value itself.
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Spanned<T>, A::Error> {
                let Some(key) = a.next_key::<String>()? else {
                    return plain(MapAccessDeserializer::new(a));
                };
                if key != super::de::LOC_KEY {
                    return plain(MapAccessDeserializer::new(Prepend {
                        first: Some(key),
                        rest: a,
                    }));
                }
                let packed: u64 = a.next_value()?;
                let _ = a.next_key::<String>()?;
                let value: T = a.next_value()?;
                let loc = Loc::new((packed >> 32) as u32, (packed & 0xffff_ffff) as u32);
                Ok(Spanned::new(value, loc))
            }
            // serde-saphyr: its own spans.
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Spanned<T>, D::Error> {
                let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
                Ok(Spanned::new(s.value, s.referenced.into()))
            }
            // Deserializers that forward newtypes to `deserialize_any` (serde's value
            // deserializers, buffered content): the value, without a location.
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Spanned<T>, A::Error> {
                plain(SeqAccessDeserializer::new(a))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Spanned<T>, E> {
                plain(v.into_deserializer())
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Spanned<T>, E> {
                plain(v.into_deserializer())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Spanned<T>, E> {
                plain(v.into_deserializer())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Spanned<T>, E> {
                plain(v.into_deserializer())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Spanned<T>, E> {
                plain(v.into_deserializer())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Spanned<T>, E> {
                plain(v.into_deserializer())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Spanned<T>, E> {
                plain(().into_deserializer())
            }
            fn visit_none<E: de::Error>(self) -> Result<Spanned<T>, E> {
                plain(().into_deserializer())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Spanned<T>, D::Error> {
                plain(d)
            }
        }
        d.deserialize_newtype_struct(super::de::SPANNED_NAME, V(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        T::json_schema(g)
    }
}

/// What visitor `V` reads through `deserialize_any`, as a `Deserialize` type (which
/// `Spanned` needs; the models have visitors).
pub(crate) struct ViaAny<'de, V: Visitor<'de>>(pub V::Value);

impl<'de, V: Visitor<'de> + Default> Deserialize<'de> for ViaAny<'de, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(V::default()).map(ViaAny)
    }
}

/// What visitor `V` reads, with the location of its node.
pub(crate) fn spanned_any<'de, V, D>(d: D) -> Result<Spanned<V::Value>, D::Error>
where
    V: Visitor<'de> + Default,
    D: Deserializer<'de>,
{
    let s = Spanned::<ViaAny<V>>::deserialize(d)?;
    Ok(Spanned::new(s.value.0, s.loc))
}

/// A value that may be a bare string, read by a visitor, which cannot see the string's
/// location; whoever reads it with its node's location pushes that in (`located`).
pub trait BareString {
    fn bare_string(&mut self) -> Option<&mut Template>;
}

impl<T: BareString> Spanned<T> {
    /// The value with its own location pushed into a bare string.
    pub fn located(mut self) -> T {
        if let Some(t) = self.value.bare_string() {
            t.loc = self.loc;
        }
        self.value
    }
}

/// What visitor `V` reads, a bare string located at its node.
pub(crate) fn located_any<'de, V, D>(d: D) -> Result<V::Value, D::Error>
where
    V: Visitor<'de> + Default,
    V::Value: BareString,
    D: Deserializer<'de>,
{
    spanned_any::<V, D>(d).map(Spanned::located)
}

/// A string scalar that may hold `${name}` references (substituted at run time, checked at
/// load time where the name can be known). Plain YAML numbers and booleans are accepted and
/// kept as their text, so `headers: {X-Count: 5}` works.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub raw: String,
    pub loc: Loc,
}

impl Template {
    pub fn literal(s: impl Into<String>) -> Self {
        Template {
            raw: s.into(),
            loc: Loc::UNKNOWN,
        }
    }
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A scalar as text (map keys, templates), transparent to the deserializer.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_text(d).map(ScalarString)
    }
}

/// A scalar's text as written (`1.10` stays "1.10").
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(ScalarText)
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<ScalarString>::deserialize(d)?;
        Ok(Template {
            raw: s.value.0,
            loc: s.loc,
        })
    }
}

impl JsonSchema for Template {
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number", "boolean"],
            "description": "A string; `${name}` is replaced by a variable, `$${` is a literal `${`."
        })
    }
}

/// Any YAML value (manifests, expected fields, JSON bodies). Strings keep their locations so an
/// unknown `${name}` deep inside a manifest is reported where it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Template),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<String>, Node)>),
}

impl Node {
    /// The value as JSON, without any variable substitution.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::Float(f) => Value::from(*f),
            Node::Str(t) => Value::String(t.raw.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Every string template inside, depth first (for load-time variable checks).
    pub fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            Node::Str(t) => out.push(t),
            Node::Seq(items) => items.iter().for_each(|n| n.templates(out)),
            Node::Map(entries) => entries.iter().for_each(|(_, v)| v.templates(out)),
            _ => {}
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

#[derive(Default)]
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .or(Ok(Node::Float(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(Template::literal(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(Template::literal(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Spanned<String>, Node)> = Vec::new();
        while let Some(k) = a.next_key::<Spanned<ScalarString>>()? {
            let key = Spanned::new(k.value.0, k.loc);
            if entries.iter().any(|(e, _)| e.value == key.value) {
                return Err(super::de::located(
                    key.loc,
                    format_args!("duplicate key `{}`", key.value),
                ));
            }
            let v = a.next_value::<Node>()?;
            entries.push((key, v));
        }
        Ok(Node::Map(entries))
    }
}

impl BareString for Node {
    fn bare_string(&mut self) -> Option<&mut Template> {
        match self {
            Node::Str(t) => Some(t),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    /// Strings, however deep, carry their own location.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        located_any::<NodeVisitor, D>(d)
    }
}

impl JsonSchema for Node {
    fn schema_name() -> Cow<'static, str> {
        "AnyValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "Any YAML value." })
    }
}

/// A duration written with a unit: `500ms`, `30s`, `2m`, `1h`, `1m30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        if t.contains("${") {
            return Err(format!(
                "variables are not allowed in durations ({qs}): write a literal such as 30s",
                qs = crate::util::quoted(s)
            ));
        }
        if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!(
                "duration {qs} has no unit: write it as e.g. \"{t}s\" or \"{t}ms\"",
                qs = crate::util::quoted(s)
            ));
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| {
            format!(
                "invalid duration {} ({e}); use e.g. 500ms, 30s, 2m, 1h",
                crate::util::quoted(s)
            )
        })
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::util::fmt_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, e.g. 500ms, 30s or 2m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_str(V)
    }
}

/// A duration that must be above zero: a deadline, a retry delay, a hold. A zero is refused
/// where it is written, so no check downstream can forget it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PositiveDur(pub Duration);

impl From<PositiveDur> for Dur {
    fn from(p: PositiveDur) -> Dur {
        Dur(p.0)
    }
}

impl<'de> Deserialize<'de> for PositiveDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Dur::deserialize(d)? {
            Dur(z) if z.is_zero() => Err(de::Error::custom(
                "a zero duration makes no sense here: give a positive duration such as 500ms or \
                 30s (or remove the key for the default)",
            )),
            Dur(p) => Ok(PositiveDur(p)),
        }
    }
}

/// `impl JsonSchema for $ty` as `$as`: for a type written exactly as another is, whose
/// difference (a check, a conversion) the schema does not show.
macro_rules! schema_as {
    ($ty:ty, $as:ty) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                <$as as schemars::JsonSchema>::schema_name()
            }
            fn schema_id() -> std::borrow::Cow<'static, str> {
                <$as as schemars::JsonSchema>::schema_id()
            }
            fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
                <$as as schemars::JsonSchema>::json_schema(g)
            }
        }
    };
}
pub(crate) use schema_as;

// The pattern cannot say "not zero" readably.
schema_as!(PositiveDur, Dur);

/// What `Dur::parse` accepts (humantime's units), for the JSON Schema.
pub const DURATION_PATTERN: &str = "^\\s*([0-9]+(\\.[0-9]+)?\\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\\s*)+$";

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration with a unit, e.g. 500ms, 30s, 2m, 1h."
        })
    }
}

/// An ordered map whose keys keep their locations; duplicate keys are rejected.
#[derive(Clone, Debug, PartialEq)]
pub struct SpannedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for SpannedMap<V> {
    fn default() -> Self {
        SpannedMap(Vec::new())
    }
}

impl<V> SpannedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&Spanned<String>, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapV<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapV<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(SpannedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(Spanned<String>, V)> = Vec::new();
                while let Some(k) = a.next_key::<Spanned<ScalarString>>()? {
                    if out.iter().any(|(e, _)| e.value == k.value.0) {
                        return Err(super::de::located(
                            k.loc,
                            format_args!("duplicate key `{}`", k.value.0),
                        ));
                    }
                    let v = a.next_value::<V>()?;
                    out.push((Spanned::new(k.value.0, k.loc), v));
                }
                Ok(SpannedMap(out))
            }
        }
        d.deserialize_map(MapV(std::marker::PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for SpannedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let v = g.subschema_for::<V>();
        json_schema!({ "type": "object", "additionalProperties": v })
    }
}

/// A template compiled at load time (so a bad one is reported with its location) unless it
/// holds `${...}`, in which case it is compiled after substitution.
#[derive(Clone, Debug)]
pub struct Compiled<P> {
    pub template: Template,
    pub compiled: Option<P>,
}

/// A regular expression (Rust `regex` syntax).
pub type Pattern = Compiled<regex::Regex>;

/// A boolean CEL expression (`cel:` checks, Kubernetes CEL libraries).
pub type CelExpr = Compiled<std::sync::Arc<kube_cel::cel::Program>>;

/// What a [`Compiled`] template compiles into.
pub trait Compile: Sized {
    /// The compiled text, or the error message.
    fn compile(raw: &str) -> Result<Self, String>;
}

impl Compile for regex::Regex {
    fn compile(raw: &str) -> Result<Self, String> {
        regex::Regex::new(raw).map_err(|e| {
            format!(
                "invalid regex {}: {} (Rust regex syntax)",
                crate::util::quoted(raw),
                regex_reason(&e)
            )
        })
    }
}

impl Compile for std::sync::Arc<kube_cel::cel::Program> {
    fn compile(raw: &str) -> Result<Self, String> {
        crate::matching::cel::compile(raw)
            .map(std::sync::Arc::new)
            .map_err(|e| format!("invalid CEL expression {}: {e}", crate::util::quoted(raw)))
    }
}

impl<P> PartialEq for Compiled<P> {
    fn eq(&self, other: &Self) -> bool {
        self.template == other.template
    }
}

impl<'de, P: Compile> Deserialize<'de> for Compiled<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let template = Template::deserialize(d)?;
        let compiled = if template.raw.contains("${") {
            None
        } else {
            Some(P::compile(&template.raw).map_err(de::Error::custom)?)
        };
        Ok(Compiled { template, compiled })
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "regex" })
    }
}

impl JsonSchema for CelExpr {
    fn schema_name() -> Cow<'static, str> {
        "CelExpression".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A boolean CEL expression (Kubernetes CEL libraries)"
        })
    }
}

/// An RFC 9535 JSONPath such as `$.status.addresses[0].value`, parsed at load time.
#[derive(Clone, Debug)]
pub struct JsonPathExpr {
    pub raw: String,
    pub loc: Loc,
    pub path: serde_json_path::JsonPath,
}

impl PartialEq for JsonPathExpr {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl JsonPathExpr {
    pub fn parse(raw: &str, loc: Loc) -> Result<Self, String> {
        serde_json_path::JsonPath::parse(raw)
            .map(|path| JsonPathExpr {
                raw: raw.to_owned(),
                loc,
                path,
            })
            .map_err(|e| {
                format!(
                    "invalid JSONPath {}: {}",
                    crate::util::quoted(raw),
                    one_line(&e)
                )
            })
    }
}

impl<'de> Deserialize<'de> for JsonPathExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Template::deserialize(d)?;
        JsonPathExpr::parse(&t.raw, t.loc).map_err(de::Error::custom)
    }
}

impl JsonSchema for JsonPathExpr {
    fn schema_name() -> Cow<'static, str> {
        "JsonPath".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\$",
            "description": "An RFC 9535 JSONPath, e.g. $.status.addresses[0].value"
        })
    }
}

/// The reason of a regex error without its multi-line drawing of the pattern.
pub fn regex_reason(e: &regex::Error) -> String {
    let s = e.to_string();
    match s
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
    {
        Some(l) => l
            .trim_start()
            .trim_start_matches("error:")
            .trim()
            .to_owned(),
        None => one_line(&s),
    }
}

fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
