//! `kind: Status` error bodies, shaped exactly like a real kube-apiserver's (golden files
//! 02, 03, 04, 06 and 08): key order, reason, code and `details`.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::resources::ResourceDef;

/// An API error: rendered as a `kind: Status` body with its HTTP code.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details`, absent for some reasons (BadRequest, Expired, Unauthorized).
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The `details` of errors about one object: name, group (non-core only), kind = plural.
pub(crate) fn object_details(def: &ResourceDef, name: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !def.group.is_empty() {
        d.insert("group".into(), json!(def.group));
    }
    d.insert("kind".into(), json!(def.plural));
    Value::Object(d)
}

/// `configmaps "x"` or `widgets.golden.example.com "x"` (a qualified resource and a name).
fn subject(def: &ResourceDef, name: &str) -> String {
    if name.is_empty() {
        def.qualified()
    } else {
        format!("{} {:?}", def.qualified(), name)
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{} not found", subject(def, name)))
            .with_details(object_details(def, name))
    }

    /// The namespace of a namespaced request does not exist.
    pub fn namespace_not_found(namespace: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("namespaces {namespace:?} not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    /// An unknown resource, group or path.
    pub fn unknown_resource() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} already exists", subject(def, name)),
        )
        .with_details(object_details(def, name))
    }

    /// Optimistic-concurrency conflict (a stale resourceVersion or a failed precondition).
    pub fn conflict(def: &ResourceDef, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}: {why}",
                subject(def, name)
            ),
        )
        .with_details(object_details(def, name))
    }

    pub fn stale(def: &ResourceDef, name: &str) -> ApiError {
        ApiError::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn forbidden(def: &ResourceDef, name: &str, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!("{} is forbidden: {why}", subject(def, name)),
        )
        .with_details(object_details(def, name))
    }

    /// An error the real server did not classify: 500 without a reason (e.g. server-side
    /// apply's `failed to create typed patch object`).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// A watch from a resourceVersion older than the kept history.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// A watch from a resourceVersion the server has not reached (the real watch cache waits
    /// up to 3 s for it first).
    pub fn too_large_resource_version(requested: u64, current: u64) -> ApiError {
        ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }))
    }

    /// 422 Invalid: `Kind "name" is invalid: <causes>` (Kind qualified with the group for
    /// non-core kinds, as the real server words it).
    pub fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
        let kind = if def.group.is_empty() {
            def.kind.clone()
        } else {
            format!("{}.{}", def.kind, def.group)
        };
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !def.group.is_empty() {
            d.insert("group".into(), json!(def.group));
        }
        d.insert("kind".into(), json!(def.kind));
        d.insert(
            "causes".into(),
            Value::Array(
                causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect(),
            ),
        );
        ApiError::new(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {joined}"),
        )
        .with_details(Value::Object(d))
    }

    /// The `kind: Status` body.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        // An internal error (500) has no reason, as on the real server.
        if !self.reason.is_empty() {
            m.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }
}

/// One cause of a 422 Invalid (shared with the validation engine).
pub use gwtest_schema::Cause;

/// The `kind: Status` body of a successful delete (golden 03/06): no message, reason or code.
pub(crate) fn delete_success(def: &ResourceDef, name: &str, uid: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !def.group.is_empty() {
        d.insert("group".into(), json!(def.group));
    }
    d.insert("kind".into(), json!(def.plural));
    d.insert("uid".into(), json!(uid));
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": Value::Object(d)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_real_shape() {
        let def = super::super::resources::builtin_defs()
            .into_iter()
            .find(|d| d.plural == "configmaps")
            .unwrap();
        let body = ApiError::not_found(&def, "missing").body();
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "kind",
                "apiVersion",
                "metadata",
                "status",
                "message",
                "reason",
                "details",
                "code"
            ]
        );
        assert_eq!(body["message"], "configmaps \"missing\" not found");
        assert_eq!(
            body["details"],
            json!({"name": "missing", "kind": "configmaps"})
        );
    }
}
