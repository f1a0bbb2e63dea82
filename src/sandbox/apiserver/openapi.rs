//! The OpenAPI v3 documents kubectl needs for client-side `apply`, `create -f` and `replace`.
//!
//! kubectl validates field names itself unless the server supports `fieldValidation`, which it
//! checks in `/openapi/v3` (falling back to the protobuf `/openapi/v2`, which is not served).
//! So each group version's document lists, per kind, a PATCH operation tagged
//! `x-kubernetes-group-version-kind` that takes the `fieldValidation` query parameter; kubectl
//! then leaves validation to the server. There are no schemas: `kubectl explain` does not
//! work, and client-side apply computes patches from kubectl's built-in types (built-in kinds)
//! or as JSON merge patches (custom resources), which is what it does without schemas.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::resources::{Registry, ResourceDef};
use super::status::ApiError;

/// `api/v1` or `apis/<group>/<version>`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvs(reg: &Registry) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for d in reg.all() {
        for v in &d.versions {
            let gv = (d.group.clone(), v.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out.sort();
    out
}

fn document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = reg
        .all()
        .map(|d| d.as_ref())
        .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
        .collect();
    if defs.is_empty() {
        return None;
    }
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let mut paths = Map::new();
    for d in defs {
        let prefix = format!("/{}", gv_path(group, version));
        let path = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("{prefix}/{}/{{name}}", d.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", d.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": d.kind},
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": op}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": Value::Object(paths),
        "components": {"schemas": {}},
    }))
}

/// FNV-1a of the document: kubectl caches documents by this hash.
fn hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

fn json_ok(v: &Value) -> Response {
    let mut r = serde_json::to_vec(v).unwrap_or_default().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `/openapi/...` (the part after `openapi`).
pub fn serve(reg: &Registry, rest: &[&str], _headers: &HeaderMap) -> Result<Response, ApiError> {
    match rest {
        ["v3"] => {
            let mut paths = Map::new();
            for (g, v) in gvs(reg) {
                let doc = document(reg, &g, &v).unwrap_or(Value::Null);
                let p = gv_path(&g, &v);
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
                );
            }
            Ok(json_ok(&json!({"paths": Value::Object(paths)})))
        }
        ["v3", "api", version] => document(reg, "", version)
            .map(|d| json_ok(&d))
            .ok_or_else(ApiError::unknown_resource),
        ["v3", "apis", group, version] => document(reg, group, version)
            .map(|d| json_ok(&d))
            .ok_or_else(ApiError::unknown_resource),
        _ => Err(ApiError::unknown_resource()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_advertise_field_validation() {
        let reg = Registry::with_builtins();
        let doc = document(&reg, "", "v1").unwrap();
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(doc["paths"].get("/api/v1/namespaces/{name}").is_some());
        assert!(document(&reg, "nope.example.com", "v1").is_none());
    }
}
