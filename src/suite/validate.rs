//! Checks that need more than one value at a time (exactly one action per step, variable
//! names, references between keys). Every error names file:line:column.

use super::load::{LoadError, Suite};

/// Validate loaded suites. `extra_vars` are names given with `--var` (and profile vars).
pub fn validate(suites: &[Suite], _extra_vars: &[String]) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for suite in suites {
        for test in &suite.tests {
            for step in &test.doc.steps {
                let keys = step.value.action_keys();
                if keys.len() != 1 {
                    let msg = if keys.is_empty() {
                        "step has no action: give one of apply, assert, request, spans, patch, delete, exec, sleep, pause".to_string()
                    } else {
                        format!(
                            "step has {} actions ({}); a step does exactly one thing",
                            keys.len(),
                            keys.join(", ")
                        )
                    };
                    errors.push(LoadError::new(&test.file, step.loc, msg));
                }
            }
        }
    }
    errors
}
