//! gwtest's validation of custom resources, shared by the sandbox's API server and
//! `gwtest validate`: the official Gateway API CRDs (vendored unmodified in `crds/`) and the
//! engine that admits an object as kube-apiserver does:
//!
//! 1. pruning of fields the schema does not declare (`fieldValidation`: `Strict` rejects
//!    them, `Warn` warns, `Ignore` drops them silently);
//! 2. defaulting;
//! 3. the structural schema's checks (types, formats, enums, patterns, bounds, lengths, item
//!    counts, required fields, `anyOf`/`oneOf`/`not`) — [`structural`];
//! 4. the `x-kubernetes-list-type` invariants (unique set items and map keys);
//! 5. every `x-kubernetes-validations` rule with kube-cel, unless step 3 found an error that
//!    stops them, in which case a `<nil>` cause says the rules were not checked.
//!
//! Server-side apply first checks the apply configuration's types
//! ([`VersionSchema::apply_errors`]), as structured-merge-diff does.

pub mod cause;
mod cel;
mod formats;
mod listtype;
pub mod structural;
mod typed;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub use cause::Cause;
pub use typed::OBJECT_META;

/// One version of a CRD: its structural schema and its CEL rules. The rules are compiled
/// once, the first time an object of this version is validated (so registering the whole
/// standard channel costs no compilation; see docs/sandbox.md).
pub struct VersionSchema {
    root: Value,
    has_rules: bool,
    rules: OnceLock<cel::Rules>,
}

impl std::fmt::Debug for VersionSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionSchema")
            .field("has_rules", &self.has_rules)
            .finish_non_exhaustive()
    }
}

/// `fieldValidation`: what happens to fields the schema does not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// A write to admit.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// The stored object an update replaces (transition rules see it as `oldSelf`).
    pub old: Option<&'a Value>,
    /// A write to the status subresource: only `status` is checked against the schema.
    pub status: bool,
    pub field_validation: FieldValidation,
}

/// Why an object was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// `fieldValidation=Strict` and these fields (paths) are not in the schema: 400.
    UnknownFields(Vec<String>),
    /// The schema or a rule refused the object: 422 with these causes.
    Invalid(Vec<Cause>),
}

/// `unknown field "spec.bogus"`, as strict decoding and its warning say it.
pub fn unknown_field(path: &str) -> String {
    format!("unknown field {}", cause::go_quote(path))
}

impl VersionSchema {
    pub fn new(root: Value) -> VersionSchema {
        VersionSchema {
            has_rules: cel::has_rules(&root),
            root,
            rules: OnceLock::new(),
        }
    }

    /// The `openAPIV3Schema`.
    pub fn root(&self) -> &Value {
        &self.root
    }

    fn rules(&self) -> &cel::Rules {
        self.rules.get_or_init(|| cel::Rules::compile(&self.root))
    }

    /// Compiles the rules now (if not yet): how many compiled, and the errors of those that
    /// did not.
    pub fn compile_rules(&self) -> (usize, Vec<String>) {
        self.rules().summary()
    }

    /// Prunes, defaults and validates `obj` as the API server admits a custom resource
    /// write; returns the warnings (`fieldValidation=Warn`).
    pub fn admit(&self, obj: &mut Value, w: &Write<'_>) -> Result<Vec<String>, Rejected> {
        let unknown = structural::prune(&self.root, obj);
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            match w.field_validation {
                FieldValidation::Strict => return Err(Rejected::UnknownFields(unknown)),
                FieldValidation::Warn => {
                    warnings.extend(unknown.iter().map(|u| unknown_field(u)));
                }
                FieldValidation::Ignore => {}
            }
        }
        structural::apply_defaults(&self.root, obj);
        let causes = self.validate(obj, w.old, w.status);
        if causes.is_empty() {
            Ok(warnings)
        } else {
            Err(Rejected::Invalid(causes))
        }
    }

    /// The causes of an object already pruned and defaulted: the schema's, the list-type
    /// invariants', then the CEL rules' (or the `<nil>` cause when schema errors stop them).
    pub fn validate(&self, obj: &Value, old: Option<&Value>, status: bool) -> Vec<Cause> {
        let mut causes = if status {
            match (
                self.root.get("properties").and_then(|p| p.get("status")),
                obj.get("status"),
            ) {
                (Some(s), Some(v)) => structural::validate_at(s, v, "status"),
                _ => Vec::new(),
            }
        } else {
            structural::validate(&self.root, obj)
        };
        // Updates are held to the list invariants only if the stored object met them.
        if old.is_none_or(|o| listtype::validate(&self.root, o).is_empty()) {
            causes.extend(listtype::validate(&self.root, obj));
        }
        if self.has_rules {
            if causes.iter().any(Cause::blocks_cel) {
                causes.push(cause::rules_not_checked());
            } else {
                causes.extend(cel::evaluate(self.rules(), &self.root, obj, old));
            }
        }
        causes
    }

    /// The type errors of a server-side apply configuration (structured-merge-diff's
    /// conversion), as one message; None when it is well-typed.
    pub fn apply_errors(&self, config: &Value) -> Option<String> {
        typed::apply_errors(&self.root, config)
    }
}

/// The Gateway API CRDs gwtest ships: the standard channel of one release, each file as
/// published (see `crds/README.md`).
pub mod gateway_api {
    use serde_json::Value;

    /// The release the files come from.
    pub const VERSION: &str = "v1.6.1";
    /// The channel.
    pub const CHANNEL: &str = "standard";

    /// One vendored CRD file.
    pub struct CrdFile {
        /// Its name in `config/crd/standard/`.
        pub name: &'static str,
        /// The file as published.
        pub yaml: &'static str,
        /// The same documents as JSON (converted at build time, to register fast).
        json: &'static str,
    }

    impl CrdFile {
        /// The CRD object of the file.
        pub fn crd(&self) -> Value {
            let docs: Vec<Value> =
                serde_json::from_str(self.json).expect("build.rs wrote valid JSON");
            docs.into_iter().next().expect("one CRD per file")
        }
    }

    macro_rules! crd_file {
        ($name:literal) => {
            CrdFile {
                name: concat!("gateway.networking.k8s.io_", $name, ".yaml"),
                yaml: include_str!(concat!(
                    "../crds/gateway.networking.k8s.io_",
                    $name,
                    ".yaml"
                )),
                json: include_str!(concat!(
                    env!("OUT_DIR"),
                    "/gateway.networking.k8s.io_",
                    $name,
                    ".json"
                )),
            }
        };
    }

    /// Every CRD of the channel. (The channel's other file, the ValidatingAdmissionPolicy
    /// `safe-upgrades`, guards CRD upgrades on real clusters; it is vendored but not used.)
    pub const FILES: &[CrdFile] = &[
        crd_file!("gatewayclasses"),
        crd_file!("gateways"),
        crd_file!("httproutes"),
        crd_file!("grpcroutes"),
        crd_file!("referencegrants"),
        crd_file!("backendtlspolicies"),
        crd_file!("listenersets"),
        crd_file!("tcproutes"),
        crd_file!("tlsroutes"),
        crd_file!("udproutes"),
    ];

    /// The CRD objects, in install order.
    pub fn crds() -> Vec<Value> {
        FILES.iter().map(CrdFile::crd).collect()
    }
}

/// The string at `pointer` in `v`.
fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Where a kind's schema was looked up.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<VersionSchema>),
    /// The group and kind are known, this version is not served.
    VersionNotServed {
        served: Vec<String>,
    },
    /// No CRD defines this group and kind.
    Unknown,
}

struct Crd {
    versions: BTreeMap<String, Arc<VersionSchema>>,
}

/// The CRDs known offline (for `gwtest validate`): by group and kind, a later CRD replacing
/// an earlier one of the same group and kind.
#[derive(Default)]
pub struct Catalog {
    kinds: BTreeMap<(String, String), Crd>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// A catalog holding the embedded Gateway API CRDs.
    pub fn with_gateway_api() -> Catalog {
        let mut c = Catalog::new();
        for crd in gateway_api::crds() {
            c.add_crd(&crd).expect("the embedded CRDs are valid");
        }
        c
    }

    /// Whether `obj` is a CustomResourceDefinition.
    pub fn is_crd(obj: &Value) -> bool {
        obj.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|a| a.starts_with("apiextensions.k8s.io/"))
    }

    /// Adds (or replaces) the kind a CRD defines, with a schema per served version.
    pub fn add_crd(&mut self, crd: &Value) -> Result<(), String> {
        let spec = crd.get("spec").ok_or("the CRD has no spec")?;
        let group = text(spec, "/group").ok_or("the CRD has no spec.group")?;
        let kind = text(spec, "/names/kind").ok_or("the CRD has no spec.names.kind")?;
        let mut versions = BTreeMap::new();
        for v in spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("the CRD has no spec.versions")?
        {
            if v.get("served").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let name = text(v, "/name").ok_or("a CRD version has no name")?;
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            versions.insert(name.to_string(), Arc::new(VersionSchema::new(schema)));
        }
        self.kinds
            .insert((group.to_string(), kind.to_string()), Crd { versions });
        Ok(())
    }

    /// The schema of `kind` in `api_version`.
    pub fn lookup(&self, api_version: &str, kind: &str) -> Lookup {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        match self.kinds.get(&(group.to_string(), kind.to_string())) {
            None => Lookup::Unknown,
            Some(c) => match c.versions.get(version) {
                Some(s) => Lookup::Found(s.clone()),
                None => Lookup::VersionNotServed {
                    served: c.versions.keys().cloned().collect(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_every_rule_route_is_valid() {
        let c = Catalog::with_gateway_api();
        let Lookup::Found(s) = c.lookup("gateway.networking.k8s.io/v1", "HTTPRoute") else {
            panic!("HTTPRoute")
        };
        let text = include_str!("../../../tests/data/httproute-every-rule.yaml");
        let mut obj: Value = serde_saphyr::from_str(text).unwrap();
        let w = Write {
            old: None,
            status: false,
            field_validation: FieldValidation::Strict,
        };
        let r = s.admit(&mut obj, &w);
        assert_eq!(r, Ok(vec![]), "{r:?}");
        assert!(s.compile_rules().1.is_empty());
    }
}
