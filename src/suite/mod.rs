//! The suite language (DESIGN §1): typed models, loading with locations, variables,
//! validation and the JSON Schema.

pub mod crdcheck;
pub mod de;
pub mod load;
pub mod model;
pub mod schema;
pub mod selector;
pub mod spanned;
pub mod validate;
pub mod vars;
pub mod yaml;

pub use selector::{Operator, Requirement, parse_label_selector};
