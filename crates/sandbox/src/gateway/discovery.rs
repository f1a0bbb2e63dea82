//! Upstream discovery: every Service labelled `demo.gwtest.dev/discover: "true"` gets an
//! `Upstream` of the same name and namespace (spec copied from the Service, an owner
//! reference to it) with status Accepted. An Upstream whose Service went (or lost the label)
//! is deleted by the gateway itself: garbage collection is not something every API server
//! it runs against does promptly.

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::faults::FaultMap;
use super::model::{self, Key, ServiceSpec};
use super::status::{self, UpstreamState, Write};

pub const DISCOVER_LABEL: &str = "demo.gwtest.dev/discover";

/// The Upstream `spec` for a Service.
pub fn upstream_spec(svc: &model::Meta, spec: &ServiceSpec) -> Value {
    // The first port's number (an odd one is left out: the Upstream schema wants an integer).
    let port = spec
        .ports
        .first()
        .and_then(|p| p.get("port"))
        .filter(|p| p.is_i64())
        .cloned()
        .unwrap_or(Value::Null);
    let mut s = json!({
        "service": svc.key.name,
        "ports": spec.ports,
        "selector": spec.selector.clone().unwrap_or_default(),
        "labels": svc.labels,
    });
    if !port.is_null() {
        s["port"] = port;
    }
    s
}

fn owner_ref(svc: &model::Meta) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "name": svc.key.name,
        "uid": svc.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The Service uid an Upstream was discovered from (its controller owner reference).
fn owner_uid(obj: &DynamicObject) -> Option<&str> {
    obj.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.api_version == "v1" && o.kind == "Service" && o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// The writes that bring Upstreams in line with the Services.
pub fn plan(
    services: &[Arc<DynamicObject>],
    upstreams: &[Arc<DynamicObject>],
    faults: &FaultMap,
    now: &str,
) -> Vec<Write> {
    let existing: HashMap<Key, &DynamicObject> = upstreams
        .iter()
        .map(|u| (model::meta(u).key, u.as_ref()))
        .collect();
    let mut wanted: HashMap<Key, String> = HashMap::new();
    let mut writes = Vec::new();
    for svc in services {
        let meta = model::meta(svc);
        if meta.deleting || meta.labels.get(DISCOVER_LABEL).map(String::as_str) != Some("true") {
            continue;
        }
        let spec: ServiceSpec = match model::spec(svc) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("demo gateway: Service {}: {e}", meta.key);
                continue;
            }
        };
        wanted.insert(meta.key.clone(), meta.uid.clone());
        let desired = upstream_spec(&meta, &spec);
        let current = existing.get(&meta.key);
        if current
            .and_then(|u| owner_uid(u))
            .is_some_and(|o| o != meta.uid)
        {
            // The Service was re-created: its old Upstream goes first (below), and the new
            // one is a new object.
            continue;
        }
        let up_to_date = current.is_some_and(|u| {
            u.data.get("spec") == Some(&desired) && owner_uid(u) == Some(meta.uid.as_str())
        });
        let apply = (!up_to_date).then(|| {
            json!({
                "apiVersion": model::upstream_ar().api_version,
                "kind": "Upstream",
                "metadata": {
                    "name": meta.key.name,
                    "namespace": meta.key.namespace,
                    "labels": {"app.kubernetes.io/managed-by": status::MANAGER},
                    "ownerReferences": [owner_ref(&meta)],
                },
                "spec": desired,
            })
        });
        let current = current.map(|u| UpstreamState::of(u));
        let f = faults.get(&meta.key.namespace);
        let status_ok = current.as_ref().is_some_and(|c| {
            c.status == status::upstream_status(&c.status, &meta.key.name, c.generation, now)
        });
        if apply.is_none() && status_ok {
            continue;
        }
        writes.push(Write::Upstream {
            key: meta.key.clone(),
            service: meta.key.name.clone(),
            apply,
            current,
            stale_status: f.is_some_and(|f| f.stale_status),
            hang: f.is_some_and(|f| f.hang),
        });
    }
    for u in upstreams {
        let meta = model::meta(u);
        let Some(owner) = owner_uid(u) else { continue };
        if meta.deleting || wanted.get(&meta.key).is_some_and(|uid| uid == owner) {
            continue;
        }
        writes.push(Write::Delete {
            ar: model::upstream_ar(),
            key: meta.key,
            uid: meta.uid,
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Arc<DynamicObject> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn svc(name: &str, uid: &str, discover: bool) -> Arc<DynamicObject> {
        let labels = if discover {
            json!({DISCOVER_LABEL: "true", "tier": "gold"})
        } else {
            json!({})
        };
        obj(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels},
            "spec": {"ports": [{"port": 8080, "name": "http"}, {"port": 9090}], "selector": {"app": name}}
        }))
    }

    fn upstream(
        name: &str,
        uid: &str,
        owner: &str,
        spec: Value,
        status: Value,
    ) -> Arc<DynamicObject> {
        obj(json!({
            "apiVersion": "demo.gwtest.dev/v1alpha1", "kind": "Upstream",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": 1, "resourceVersion": "5",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": owner, "controller": true}]},
            "spec": spec,
            "status": status,
        }))
    }

    #[test]
    fn discovers_labelled_services_and_deletes_orphans() {
        let services = vec![svc("a", "sa", true), svc("plain", "sp", false)];
        let w = plan(&services, &[], &FaultMap::new(), "2030-01-01T00:00:00Z");
        assert_eq!(w.len(), 1);
        let Write::Upstream {
            key,
            apply: Some(body),
            ..
        } = &w[0]
        else {
            panic!("{w:?}")
        };
        assert_eq!(key, &Key::new("ns", "a"));
        assert_eq!(body["spec"]["port"], 8080);
        assert_eq!(body["spec"]["service"], "a");
        assert_eq!(body["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(body["spec"]["labels"]["tier"], "gold");
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "sa");

        // Up to date and Accepted: nothing to do.
        let spec = body["spec"].clone();
        let st = status::upstream_status(&Value::Null, "a", 1, "2020-01-01T00:00:00Z");
        let ups = vec![upstream("a", "ua", "sa", spec.clone(), st)];
        assert!(plan(&services, &ups, &FaultMap::new(), "2030-01-01T00:00:00Z").is_empty());

        // The Service went: the Upstream goes. Re-created (new uid): re-applied.
        let w = plan(&[], &ups, &FaultMap::new(), "2030-01-01T00:00:00Z");
        assert!(matches!(&w[..], [Write::Delete { uid, .. }] if uid == "ua"));
        let w = plan(&[svc("a", "sa2", true)], &ups, &FaultMap::new(), "now");
        assert!(
            matches!(&w[..], [Write::Delete { uid, .. }] if uid == "ua"),
            "{w:?}"
        );
        let w = plan(&[svc("a", "sa2", true)], &[], &FaultMap::new(), "now");
        assert!(
            matches!(&w[..], [Write::Upstream { apply: Some(_), .. }]),
            "{w:?}"
        );
    }
}
