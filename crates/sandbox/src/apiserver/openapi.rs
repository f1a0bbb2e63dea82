//! The OpenAPI documents kubectl needs for client-side `apply`, `create -f` and `replace`.
//!
//! kubectl validates field names itself unless the server supports `fieldValidation`, which it
//! checks in `/openapi/v3`; each group version's document here lists, per kind, a PATCH
//! operation tagged `x-kubernetes-group-version-kind` that takes the `fieldValidation` query
//! parameter, so kubectl leaves validation to the server. kubectl 1.27/1.28 first load the
//! protobuf `/openapi/v2` and fail without it: it is served as an empty but valid document
//! (swagger 2.0, no paths, no definitions). There are no schemas: `kubectl explain` does not
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
        ["v2"] => {
            let mut info = Vec::new();
            pb_string(&mut info, 1, "Kubernetes");
            pb_string(&mut info, 2, "v1.33.0");
            let mut doc = Vec::new();
            pb_string(&mut doc, 1, "2.0");
            pb_bytes(&mut doc, 2, &info);
            let mut r = doc.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            Ok(r)
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

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    pb_varint(out, (field << 3) | 2);
    pb_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn pb_string(out: &mut Vec<u8>, field: u64, s: &str) {
    pb_bytes(out, field, s.as_bytes())
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

    #[test]
    fn openapi_v2_is_a_minimal_protobuf_document() {
        let reg = Registry::with_builtins();
        let r = serve(&reg, &["v2"], &HeaderMap::new()).unwrap();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        );
        let mut expected = vec![0x0a, 3];
        expected.extend_from_slice(b"2.0");
        expected.extend_from_slice(&[0x12, 21, 0x0a, 10]);
        expected.extend_from_slice(b"Kubernetes");
        expected.extend_from_slice(&[0x12, 7]);
        expected.extend_from_slice(b"v1.33.0");
        let body = futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1024)).unwrap();
        assert_eq!(body.as_ref(), expected.as_slice());
        let index = serve(&reg, &["v3"], &HeaderMap::new()).unwrap();
        assert_eq!(index.status(), 200);
        assert_eq!(
            serve(&reg, &["v3", "apis", "nope", "v1"], &HeaderMap::new())
                .unwrap_err()
                .code,
            404
        );
    }
}
