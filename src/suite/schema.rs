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
