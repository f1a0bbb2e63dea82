//! The JSON Schema of the suite language, generated from the model types.

use super::model::{SuiteDoc, TestDoc};

/// Schema of `*.test.yaml` documents.
pub fn test_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TestDoc)).expect("schema serializes")
}

/// Schema of `suite.yaml`.
pub fn suite_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SuiteDoc)).expect("schema serializes")
}
