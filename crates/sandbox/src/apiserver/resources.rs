//! The resource catalogue: built-in kinds (stored as plain JSON objects) and the kinds CRDs
//! register. Discovery, routing and storage all look kinds up here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gwtest_schema::VersionSchema;
use serde_json::Value;

/// Which name rule `metadata.name` must satisfy (the real server's per-kind validators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// DNS-1123 label: namespaces.
    Label,
    /// DNS-1035 label: services.
    Dns1035,
    /// Any valid path segment: RBAC kinds (`system:foo`).
    PathSegment,
}

/// One resource (a plural within a group), served in one or more versions.
#[derive(Clone, Debug)]
pub struct ResourceDef {
    /// API group, "" for core.
    pub group: String,
    /// Served versions, most preferred first.
    pub versions: Vec<String>,
    /// The version objects are stored in (apiVersion is rewritten on read: conversion "None").
    pub storage_version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<&'static str>,
    pub status_subresource: bool,
    /// Built-in (typed in a real server): list items carry no kind/apiVersion.
    pub builtin: bool,
    /// Keeps metadata.generation (bumped on spec changes).
    pub generation: bool,
    /// DELETE answers with the object instead of a Status.
    pub return_deleted: bool,
    pub name_rule: NameRule,
    /// The schema per version (CRDs), for pruning, defaulting and validation (its CEL rules
    /// compiled on first use).
    pub schemas: BTreeMap<String, Arc<VersionSchema>>,
    /// additionalPrinterColumns per version (CRDs).
    pub printer_columns: BTreeMap<String, Vec<Value>>,
}

/// (group, plural): the storage identity of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub plural: String,
}

impl ResourceDef {
    pub fn gr(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// `configmaps` or `widgets.golden.example.com`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The `openAPIV3Schema` of a version.
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas.get(version).map(|s| s.root())
    }

    pub fn version_schema(&self, version: &str) -> Option<&Arc<VersionSchema>> {
        self.schemas.get(version)
    }

    pub fn is_crd_kind(&self) -> bool {
        !self.builtin
    }
}

const STD_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Custom resources list their verbs in this order (golden 01/05).
pub const CR_VERBS: [&str; 8] = [
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// A built-in resource; every one is served at v1 only.
struct B {
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    generation: bool,
}

const BUILTIN_VERSION: &str = "v1";

const fn b(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> B {
    B {
        group,
        plural,
        kind,
        namespaced,
        short,
        categories: &[],
        status: false,
        generation: false,
    }
}

impl B {
    const fn status(mut self) -> B {
        self.status = true;
        self
    }
    const fn generation(mut self) -> B {
        self.generation = true;
        self
    }
    const fn all(mut self) -> B {
        self.categories = &["all"];
        self
    }
    /// What the workload controllers own: status, generation, in `kubectl get all`.
    const fn workload(self) -> B {
        self.status().generation().all()
    }
}

fn builtins() -> Vec<B> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    const NETWORKING: &str = "networking.k8s.io";
    vec![
        b("", "configmaps", "ConfigMap", true, &["cm"]),
        b("", "endpoints", "Endpoints", true, &["ep"]),
        b("", "events", "Event", true, &["ev"]),
        b("", "limitranges", "LimitRange", true, &["limits"]),
        b("", "namespaces", "Namespace", false, &["ns"]).status(),
        b("", "nodes", "Node", false, &["no"]).status(),
        b(
            "",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
        )
        .status(),
        b("", "persistentvolumes", "PersistentVolume", false, &["pv"]).status(),
        b("", "pods", "Pod", true, &["po"]).status().all(),
        b("", "podtemplates", "PodTemplate", true, &[]),
        b(
            "",
            "replicationcontrollers",
            "ReplicationController",
            true,
            &["rc"],
        )
        .workload(),
        b("", "resourcequotas", "ResourceQuota", true, &["quota"]).status(),
        b("", "secrets", "Secret", true, &[]),
        b("", "serviceaccounts", "ServiceAccount", true, &["sa"]),
        b("", "services", "Service", true, &["svc"]).status().all(),
        b(
            "apps",
            "controllerrevisions",
            "ControllerRevision",
            true,
            &[],
        ),
        b("apps", "daemonsets", "DaemonSet", true, &["ds"]).workload(),
        b("apps", "deployments", "Deployment", true, &["deploy"]).workload(),
        b("apps", "replicasets", "ReplicaSet", true, &["rs"]).workload(),
        b("apps", "statefulsets", "StatefulSet", true, &["sts"]).workload(),
        b("batch", "cronjobs", "CronJob", true, &["cj"]).workload(),
        b("batch", "jobs", "Job", true, &[]).workload(),
        b("coordination.k8s.io", "leases", "Lease", true, &[]),
        b(
            "discovery.k8s.io",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
        ),
        b("events.k8s.io", "events", "Event", true, &["ev"]),
        b(NETWORKING, "ingressclasses", "IngressClass", false, &[]).generation(),
        b(NETWORKING, "ingresses", "Ingress", true, &["ing"])
            .status()
            .generation(),
        b(
            NETWORKING,
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
        )
        .generation(),
        b(
            "policy",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
        )
        .status()
        .generation(),
        b(
            RBAC,
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
        ),
        b(RBAC, "clusterroles", "ClusterRole", false, &[]),
        b(RBAC, "rolebindings", "RoleBinding", true, &[]),
        b(RBAC, "roles", "Role", true, &[]),
        b(
            "scheduling.k8s.io",
            "priorityclasses",
            "PriorityClass",
            false,
            &["pc"],
        ),
        b(
            "storage.k8s.io",
            "storageclasses",
            "StorageClass",
            false,
            &["sc"],
        ),
        b(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        )
        .status()
        .generation(),
    ]
}

/// The built-in resource definitions.
pub fn builtin_defs() -> Vec<ResourceDef> {
    builtins()
        .into_iter()
        .map(|b| {
            let mut categories: Vec<String> = b.categories.iter().map(|s| s.to_string()).collect();
            if b.plural == "customresourcedefinitions" {
                categories = vec!["api-extensions".into()];
            }
            let verbs: Vec<&'static str> = if b.plural == "namespaces" {
                // Namespaces have no deletecollection (golden 01).
                STD_VERBS
                    .iter()
                    .copied()
                    .filter(|v| *v != "deletecollection")
                    .collect()
            } else {
                STD_VERBS.to_vec()
            };
            let name_rule = match (b.group, b.plural) {
                ("", "namespaces") => NameRule::Label,
                ("", "services") => NameRule::Dns1035,
                ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
                _ => NameRule::Subdomain,
            };
            ResourceDef {
                group: b.group.into(),
                versions: vec![BUILTIN_VERSION.into()],
                storage_version: BUILTIN_VERSION.into(),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                kind: b.kind.into(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories,
                verbs,
                status_subresource: b.status,
                builtin: true,
                generation: b.generation,
                return_deleted: matches!((b.group, b.plural), ("", "pods") | ("", "services")),
                name_rule,
                schemas: BTreeMap::new(),
                printer_columns: BTreeMap::new(),
            }
        })
        .collect()
}

/// The set of served resources, by (group, plural); CRDs add and remove entries.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    defs: BTreeMap<GroupResource, Arc<ResourceDef>>,
    /// Which CRD (by name) registered which resource.
    by_crd: HashMap<String, GroupResource>,
}

impl Registry {
    pub fn with_builtins() -> Registry {
        let mut r = Registry::default();
        for d in builtin_defs() {
            r.defs.insert(d.gr(), Arc::new(d));
        }
        r
    }

    pub fn get(&self, gr: &GroupResource) -> Option<&Arc<ResourceDef>> {
        self.defs.get(gr)
    }

    /// The resource served at `group/version` with this plural.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        let gr = GroupResource {
            group: group.to_string(),
            plural: plural.to_string(),
        };
        self.defs
            .get(&gr)
            .filter(|d| d.versions.iter().any(|v| v == version))
            .cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        self.defs.values()
    }

    /// Registers (or replaces) the resource a CRD defines; returns the resource it replaced
    /// when the CRD's names changed (its objects are gone with it).
    pub fn register_crd(&mut self, crd_name: &str, def: ResourceDef) -> Option<GroupResource> {
        let replaced = self.by_crd.remove(crd_name).filter(|old| *old != def.gr());
        if let Some(old) = &replaced {
            self.defs.remove(old);
        }
        self.by_crd.insert(crd_name.to_string(), def.gr());
        self.defs.insert(def.gr(), Arc::new(def));
        replaced
    }

    /// Removes the resource a CRD defined; returns it.
    pub fn unregister_crd(&mut self, crd_name: &str) -> Option<Arc<ResourceDef>> {
        let gr = self.by_crd.remove(crd_name)?;
        self.defs.remove(&gr)
    }

    pub fn crd_resource(&self, crd_name: &str) -> Option<&Arc<ResourceDef>> {
        self.by_crd.get(crd_name).and_then(|gr| self.defs.get(gr))
    }

    /// Groups with their served versions, most preferred version first; core ("") excluded.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values() {
            if d.group.is_empty() {
                continue;
            }
            let vs = groups.entry(d.group.clone()).or_default();
            for v in &d.versions {
                if !vs.contains(v) {
                    vs.push(v.clone());
                }
            }
        }
        let mut out: Vec<(String, Vec<String>)> = groups
            .into_iter()
            .map(|(g, mut vs)| {
                vs.sort_by(|a, b| {
                    version_priority(b)
                        .cmp(&version_priority(a))
                        .then_with(|| a.cmp(b))
                });
                (g, vs)
            })
            .collect();
        // Built-in groups first (as a real server lists them), then CRD groups by name.
        out.sort_by_key(|(g, _)| {
            (
                !self.defs.values().any(|d| d.builtin && &d.group == g),
                g.clone(),
            )
        });
        out
    }
}

/// Kubernetes version priority: GA > beta > alpha > other, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match n.parse::<u64>() {
        Ok(minor) => (level, major, minor),
        Err(_) => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut vs = vec!["v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo"];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(vs, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn builtins_have_the_short_names_kubectl_needs() {
        let r = Registry::with_builtins();
        for (g, p, s) in [
            ("", "namespaces", "ns"),
            ("", "configmaps", "cm"),
            ("", "services", "svc"),
        ] {
            let d = r.lookup(g, "v1", p).unwrap();
            assert!(d.short_names.iter().any(|x| x == s), "{p}");
        }
        let crd = r
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap();
        assert!(!crd.namespaced && crd.short_names.contains(&"crd".to_string()));
    }
}
