//! CustomResourceDefinitions: defaulting and validation of the CRD object, the resource it
//! registers, and its status conditions (NamesAccepted / Established, Terminating).

use std::collections::BTreeMap;
use std::sync::Arc;

use gwtest_schema::VersionSchema;

use serde_json::{Value, json};

use super::resources::{CR_VERBS, NameRule, ResourceDef, version_priority};
use super::status::Cause;
use super::store::strings;

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = match cur.get(p) {
            Some(c) => c,
            None => return "",
        };
    }
    cur.as_str().unwrap_or("")
}

/// What the real server defaults on a CRD: names.singular/listKind, conversion.
pub fn default_crd(crd: &mut Value) {
    let kind = s(crd, &["spec", "names", "kind"]).to_string();
    if let Some(names) = crd
        .get_mut("spec")
        .and_then(|sp| sp.get_mut("names"))
        .and_then(Value::as_object_mut)
        && !kind.is_empty()
    {
        for (key, default) in [
            ("singular", kind.to_lowercase()),
            ("listKind", format!("{kind}List")),
        ] {
            if names
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                names.insert(key.into(), json!(default));
            }
        }
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut)
        && !spec.contains_key("conversion")
    {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

/// Validation errors of a CRD object (a subset of the real server's rules).
pub fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = s(crd, &["metadata", "name"]);
    let group = s(crd, &["spec", "group"]);
    let plural = s(crd, &["spec", "names", "plural"]);
    let kind = s(crd, &["spec", "names", "kind"]);
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = crd
        .get("spec")
        .and_then(|sp| sp.get("scope"))
        .cloned()
        .unwrap_or(Value::Null);
    if scope != json!("Namespaced") && scope != json!("Cluster") {
        causes.push(Cause::not_supported(
            "spec.scope",
            &scope,
            &[json!("Cluster"), json!("Namespaced")],
        ));
    }
    let versions = crd
        .get("spec")
        .and_then(|sp| sp.get("versions"))
        .and_then(Value::as_array);
    match versions {
        None => causes.push(Cause::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        )),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(Cause::invalid(
                    "spec.versions",
                    &Value::Array(vs.clone()),
                    "must have exactly one version marked as storage version",
                ));
            }
            for (i, v) in vs.iter().enumerate() {
                if s(v, &["name"]).is_empty() {
                    causes.push(Cause::required(format!("spec.versions[{i}].name"), ""));
                }
                if v.get("schema")
                    .and_then(|sc| sc.get("openAPIV3Schema"))
                    .is_none()
                {
                    causes.push(Cause::required(
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        "schemas are required",
                    ));
                }
            }
        }
    }
    causes
}

/// The resource a (valid) CRD defines. The schema of a version whose `openAPIV3Schema` is
/// unchanged from `previous` (the same CRD registered before) is kept, with its compiled
/// rules.
pub fn resource_from_crd(crd: &Value, previous: Option<&ResourceDef>) -> ResourceDef {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let kind = s(&spec, &["names", "kind"]).to_string();
    let list = |key: &str| strings(spec.get("names").and_then(|n| n.get(key)));
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut served: Vec<String> = versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .map(|v| s(v, &["name"]).to_string())
        .collect();
    served.sort_by(|a, b| {
        version_priority(b)
            .cmp(&version_priority(a))
            .then_with(|| a.cmp(b))
    });
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| s(v, &["name"]).to_string())
        .unwrap_or_else(|| served.first().cloned().unwrap_or_default());
    let mut schemas = BTreeMap::new();
    let mut printer_columns = BTreeMap::new();
    let mut status_subresource = false;
    for v in &versions {
        let name = s(v, &["name"]).to_string();
        if let Some(sc) = v.get("schema").and_then(|sc| sc.get("openAPIV3Schema")) {
            let kept = previous
                .and_then(|p| p.schemas.get(&name))
                .filter(|s| s.root() == sc)
                .cloned();
            let schema = kept.unwrap_or_else(|| Arc::new(VersionSchema::new(sc.clone())));
            schemas.insert(name.clone(), schema);
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            printer_columns.insert(name.clone(), cols.clone());
        }
        if v.get("subresources")
            .and_then(|sr| sr.get("status"))
            .is_some()
        {
            status_subresource = true;
        }
    }
    let singular = match s(&spec, &["names", "singular"]) {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let list_kind = match s(&spec, &["names", "listKind"]) {
        "" => format!("{kind}List"),
        x => x.to_string(),
    };
    ResourceDef {
        group: s(&spec, &["group"]).to_string(),
        versions: served,
        storage_version,
        plural: s(&spec, &["names", "plural"]).to_string(),
        singular,
        kind,
        list_kind,
        namespaced: s(&spec, &["scope"]) == "Namespaced",
        short_names: list("shortNames"),
        categories: list("categories"),
        verbs: CR_VERBS.to_vec(),
        status_subresource,
        builtin: false,
        generation: true,
        return_deleted: false,
        name_rule: NameRule::Subdomain,
        schemas,
        printer_columns,
    }
}

/// The status of a CRD just created (before names are accepted), as in golden 05.
pub fn initial_status(crd: &Value) -> Value {
    json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": [storage_version(crd)]})
}

fn storage_version(crd: &Value) -> String {
    crd.get("spec")
        .and_then(|sp| sp.get("versions"))
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .map(|v| s(v, &["name"]).to_string())
        .unwrap_or_default()
}

fn condition(ty: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": ty, "status": status, "lastTransitionTime": now, "reason": reason, "message": message})
}

/// Status after the names were checked: accepted (Established) or in conflict.
pub fn settled_status(crd: &Value, conflict: Option<&str>, now: &str) -> Value {
    let old = crd.get("status").cloned().unwrap_or(json!({}));
    let keep_time = |ty: &str, status: &str| -> String {
        old.get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c.get("type") == Some(&json!(ty)) && c.get("status") == Some(&json!(status))
                })
            })
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| now.to_string())
    };
    let mut stored: Vec<Value> = old
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let sv = json!(storage_version(crd));
    if !stored.contains(&sv) {
        stored.push(sv);
    }
    let (conditions, accepted) = match conflict {
        None => (
            vec![
                condition(
                    "NamesAccepted",
                    "True",
                    "NoConflicts",
                    "no conflicts found",
                    &keep_time("NamesAccepted", "True"),
                ),
                condition(
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                    &keep_time("Established", "True"),
                ),
            ],
            crd.get("spec")
                .and_then(|sp| sp.get("names"))
                .cloned()
                .unwrap_or(json!({})),
        ),
        Some(msg) => (
            vec![
                condition(
                    "NamesAccepted",
                    "False",
                    "PluralConflict",
                    msg,
                    &keep_time("NamesAccepted", "False"),
                ),
                condition(
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                    &keep_time("Established", "False"),
                ),
            ],
            json!({"plural": "", "kind": ""}),
        ),
    };
    json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored})
}

/// Adds the Terminating condition of a CRD being deleted.
pub fn mark_terminating(crd: &mut Value, now: &str) {
    let cond = condition(
        "Terminating",
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        now,
    );
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    let conds = &mut crd["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Some(a) = conds.as_array_mut() {
        a.retain(|c| c.get("type") != Some(&json!("Terminating")));
        a.push(cond);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.golden.example.com"},
            "spec": {"group": "golden.example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    #[test]
    fn crd_defines_a_resource() {
        let mut crd = widget_crd();
        default_crd(&mut crd);
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
        assert!(validate_crd(&crd).is_empty());
        let def = resource_from_crd(&crd, None);
        assert_eq!(def.versions, ["v1", "v1beta1"]);
        assert_eq!(def.storage_version, "v1");
        assert!(def.namespaced && def.status_subresource && def.generation);
        assert_eq!(def.short_names, ["wd"]);
        let st = settled_status(&crd, None, "2026-01-01T00:00:00Z");
        assert_eq!(st["conditions"][1]["type"], "Established");
        assert_eq!(st["storedVersions"], json!(["v1"]));
    }

    #[test]
    fn crd_validation() {
        let mut crd = widget_crd();
        crd["metadata"]["name"] = json!("wrong");
        crd["spec"]["scope"] = json!("Everywhere");
        let causes = validate_crd(&crd);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "spec.scope"]);
    }
}
