//! Discovery documents in the legacy (non-aggregated) JSON form: `/version`, `/api`,
//! `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`. kubectl asks for
//! aggregated discovery first and falls back to these when the answer is plain
//! `application/json`.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::resources::{Registry, ResourceDef};

/// SHA-256 through the one crypto provider in the build (aws-lc-rs, via rustls).
fn sha256(data: &[u8]) -> Vec<u8> {
    use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
    match TLS13_AES_128_GCM_SHA256 {
        rustls::SupportedCipherSuite::Tls13(s) => {
            s.common.hash_provider.hash(data).as_ref().to_vec()
        }
        _ => unreachable!("a TLS 1.3 suite"),
    }
}

/// `storageVersionHash`: base64 of the first 8 bytes of sha256("<group>/<storage version>/<kind>").
pub fn storage_version_hash(d: &ResourceDef) -> String {
    let digest = sha256(format!("{}/{}/{}", d.group, d.storage_version, d.kind).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// The version the sandbox reports (the k8s-openapi API level gwtest is built against).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-gwtest-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(json!({}))})
}

pub fn groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let (g, vs) = reg.groups().into_iter().find(|(g, _)| g == name)?;
    let mut v = group_entry(&g, &vs);
    let m = v.as_object_mut()?;
    let mut out = Map::new();
    out.insert("kind".into(), json!("APIGroup"));
    out.insert("apiVersion".into(), json!("v1"));
    out.append(m);
    Some(Value::Object(out))
}

/// The APIResourceList of a group version, or None if nothing is served there.
pub fn resources(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for d in reg
        .all()
        .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
    {
        let mut r = Map::new();
        r.insert("name".into(), json!(d.plural));
        r.insert("singularName".into(), json!(d.singular));
        r.insert("namespaced".into(), json!(d.namespaced));
        r.insert("kind".into(), json!(d.kind));
        r.insert("verbs".into(), json!(d.verbs));
        if !d.short_names.is_empty() {
            r.insert("shortNames".into(), json!(d.short_names));
        }
        if !d.categories.is_empty() {
            r.insert("categories".into(), json!(d.categories));
        }
        r.insert("storageVersionHash".into(), json!(storage_version_hash(d)));
        list.push(Value::Object(r));
        if d.status_subresource {
            list.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut out = Map::new();
    out.insert("kind".into(), json!("APIResourceList"));
    if !group.is_empty() {
        out.insert("apiVersion".into(), json!("v1"));
    }
    out.insert("groupVersion".into(), json!(gv));
    out.insert("resources".into(), Value::Array(list));
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_group_documents() {
        let reg = Registry::with_builtins();
        let core = resources(&reg, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"namespaces")
                && names.contains(&"namespaces/status")
                && names.contains(&"configmaps")
        );
        assert!(core.get("apiVersion").is_none());
        let gs = groups(&reg);
        assert!(
            gs["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "apps")
        );
        assert!(
            gs["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["name"] != "")
        );
        assert_eq!(
            group(&reg, "apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(resources(&reg, "nope.example.com", "v1").is_none());
        let cm = &core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "configmaps")
            .unwrap();
        assert_eq!(cm["storageVersionHash"], "qFsyl6wFWjQ=");
    }
}
