//! The JSON Schema of the suite language, generated from the model types (so the editor
//! schema and the parser cannot disagree).
//!
//! Draft 2020-12 by default (what schemars emits); draft-07 on request, for editors whose
//! validator predates 2019-09 (yaml-language-server validates with draft-07 rules).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

use super::model::{SuiteDoc, TestDoc};

/// Base of the schemas' `$id`s (identifiers, not fetched).
pub const SCHEMA_ID_BASE: &str = "https://gwtest.dev/schemas/v1alpha1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draft {
    Draft2020_12,
    Draft07,
}

fn generate<T: JsonSchema>(draft: Draft, file: &str, title: &str) -> serde_json::Value {
    let settings = match draft {
        Draft::Draft2020_12 => SchemaSettings::draft2020_12(),
        Draft::Draft07 => SchemaSettings::draft07(),
    };
    let mut schema: Schema = settings.into_generator().into_root_schema_for::<T>();
    schema.insert("$id".into(), format!("{SCHEMA_ID_BASE}/{file}").into());
    schema.insert("title".into(), title.into());
    // `$schema` and `$id` first, for people reading the file.
    let mut value = schema.to_value();
    standard_formats(&mut value);
    if let serde_json::Value::Object(map) = &mut value {
        let mut ordered = serde_json::Map::new();
        for k in ["$schema", "$id", "title"] {
            if let Some(v) = map.remove(k) {
                ordered.insert(k.into(), v);
            }
        }
        ordered.append(map);
        *map = ordered;
    }
    value
}

/// The keywords that apply to values of some types only.
const TYPE_KEYWORDS: &[(&[&str], &[&str])] = &[
    (
        &["integer", "number"],
        &[
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
        ],
    ),
    (
        &["string"],
        &["pattern", "minLength", "maxLength", "format"],
    ),
    (
        &["array"],
        &[
            "items",
            "prefixItems",
            "minItems",
            "maxItems",
            "uniqueItems",
            "contains",
        ],
    ),
    (
        &["object"],
        &[
            "properties",
            "required",
            "additionalProperties",
            "patternProperties",
            "propertyNames",
            "minProperties",
            "maxProperties",
        ],
    ),
];

/// schemars writes Rust's integer and float types as `format`s (`uint32`, `int32`,
/// `double`...) that JSON Schema does not define; validators in strict mode (ajv's default)
/// refuse unknown formats. They become the bounds they stand for; union types become `anyOf`,
/// and the keys a `oneOf` branch requires are named in its `properties`, so strict mode has
/// nothing to refuse.
fn standard_formats(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let bounds: Option<(Option<i64>, Option<i64>)> =
                match m.get("format").and_then(Value::as_str) {
                    Some("int8") => Some((Some(i8::MIN.into()), Some(i8::MAX.into()))),
                    Some("int16") => Some((Some(i16::MIN.into()), Some(i16::MAX.into()))),
                    Some("int32") => Some((Some(i32::MIN.into()), Some(i32::MAX.into()))),
                    Some("uint8") => Some((Some(0), Some(u8::MAX.into()))),
                    Some("uint16") => Some((Some(0), Some(u16::MAX.into()))),
                    Some("uint32") => Some((Some(0), Some(u32::MAX.into()))),
                    Some("uint" | "uint64") => Some((Some(0), None)),
                    Some("int" | "int64" | "float" | "double") => Some((None, None)),
                    _ => None,
                };
            if let Some((min, max)) = bounds {
                m.remove("format");
                if let Some(min) = min {
                    m.entry("minimum").or_insert(min.into());
                }
                if let Some(max) = max {
                    m.entry("maximum").or_insert(max.into());
                }
            }
            // `"type": [a, b]` as `anyOf` of single types: ajv's strict mode refuses union types
            // unless told otherwise.
            // Keywords that apply to one type move into that type's branch.
            if let Some(Value::Array(types)) = m.get("type").cloned()
                && !m.contains_key("anyOf")
            {
                let mut any = Vec::new();
                for t in &types {
                    let mut branch = serde_json::Map::new();
                    branch.insert("type".into(), t.clone());
                    let keys = TYPE_KEYWORDS
                        .iter()
                        .filter(|(types, _)| types.contains(&t.as_str().unwrap_or_default()))
                        .flat_map(|(_, keys)| keys.iter());
                    for k in keys {
                        if let Some(v) = m.get(*k) {
                            branch.insert((*k).into(), v.clone());
                        }
                    }
                    any.push(Value::Object(branch));
                }
                m.remove("type");
                for k in TYPE_KEYWORDS.iter().flat_map(|(_, keys)| keys.iter()) {
                    m.remove(*k);
                }
                m.insert("anyOf".into(), Value::Array(any));
            }
            // The one-of-these-keys branches (`oneOf: [{required: [apply]}, ...]`) name each
            // key they require in `properties`, as the parent does (ajv's strictRequired wants
            // `required` keys defined next to it).
            let parent_props = m.get("properties").cloned();
            for combinator in ["oneOf", "anyOf", "allOf"] {
                let Some(Value::Array(branches)) = m.get_mut(combinator) else {
                    continue;
                };
                for b in branches.iter_mut() {
                    let Some(Value::Array(req)) = b.get("required").cloned() else {
                        continue;
                    };
                    let Value::Object(bm) = b else { continue };
                    let props = bm
                        .entry("properties")
                        .or_insert_with(|| Value::Object(serde_json::Map::new()));
                    if let Value::Object(props) = props {
                        for k in req.iter().filter_map(Value::as_str) {
                            let schema = parent_props
                                .as_ref()
                                .and_then(|p| p.get(k))
                                .cloned()
                                .unwrap_or(Value::Bool(true));
                            props.entry(k).or_insert(schema);
                        }
                    }
                }
            }
            for child in m.values_mut() {
                standard_formats(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(standard_formats),
        _ => {}
    }
}

/// Schema of `*.test.yaml` documents.
pub fn test_schema_for(draft: Draft) -> serde_json::Value {
    generate::<TestDoc>(draft, "test.schema.json", "gwtest Test (*.test.yaml)")
}

/// Schema of `suite.yaml`.
pub fn suite_schema_for(draft: Draft) -> serde_json::Value {
    generate::<SuiteDoc>(draft, "suite.schema.json", "gwtest Suite (suite.yaml)")
}

/// Schema of `*.test.yaml` documents (draft 2020-12).
pub fn test_schema() -> serde_json::Value {
    test_schema_for(Draft::Draft2020_12)
}

/// Schema of `suite.yaml` (draft 2020-12).
pub fn suite_schema() -> serde_json::Value {
    suite_schema_for(Draft::Draft2020_12)
}
