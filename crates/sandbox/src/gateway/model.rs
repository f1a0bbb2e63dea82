//! The objects the demo gateway reads, parsed leniently from `DynamicObject`s: every field
//! optional with the Gateway API defaults, so an odd object is skipped (with the reason)
//! instead of breaking a watch or a reconcile.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
pub const DEMO_GROUP: &str = "demo.gwtest.dev";

/// The kinds the controller watches.
pub fn gateway_class_ar() -> ApiResource {
    ar(GATEWAY_GROUP, "v1", "GatewayClass", "gatewayclasses")
}
pub fn gateway_ar() -> ApiResource {
    ar(GATEWAY_GROUP, "v1", "Gateway", "gateways")
}
pub fn http_route_ar() -> ApiResource {
    ar(GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes")
}
pub fn reference_grant_ar() -> ApiResource {
    ar(
        GATEWAY_GROUP,
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
    )
}
pub fn upstream_ar() -> ApiResource {
    ar(DEMO_GROUP, "v1alpha1", "Upstream", "upstreams")
}
pub fn service_ar() -> ApiResource {
    ar("", "v1", "Service", "services")
}
pub fn config_map_ar() -> ApiResource {
    ar("", "v1", "ConfigMap", "configmaps")
}
pub fn namespace_ar() -> ApiResource {
    ar("", "v1", "Namespace", "namespaces")
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Namespace ("" for cluster-scoped) and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Key {
        Key {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// What every object carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub key: Key,
    pub uid: String,
    pub generation: i64,
    pub resource_version: String,
    pub creation_timestamp: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub deleting: bool,
}

pub fn meta(obj: &DynamicObject) -> Meta {
    let m = &obj.metadata;
    Meta {
        key: Key::new(
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default(),
        ),
        uid: m.uid.clone().unwrap_or_default(),
        generation: m.generation.unwrap_or(0),
        resource_version: m.resource_version.clone().unwrap_or_default(),
        creation_timestamp: m
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
    }
}

/// `spec` parsed as `T` (a missing spec is the default one).
pub fn spec<T: for<'de> Deserialize<'de> + Default>(obj: &DynamicObject) -> Result<T, String> {
    match obj.data.get("spec") {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => T::deserialize(v).map_err(|e| format!("invalid spec: {e}")),
    }
}

/// `status` as JSON (`Null` when absent).
pub fn status(obj: &DynamicObject) -> &Value {
    obj.data.get("status").unwrap_or(&Value::Null)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayClassSpec {
    pub controller_name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    pub listeners: Vec<Listener>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    pub hostname: Option<String>,
    pub port: i64,
    pub protocol: String,
    pub allowed_routes: AllowedRoutes,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AllowedRoutes {
    pub namespaces: RouteNamespaces,
    pub kinds: Vec<RouteGroupKind>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` (the default), `All` or `Selector`.
    pub from: Option<String>,
    pub selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteGroupKind {
    pub group: Option<String>,
    pub kind: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let v = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => v.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => v.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteSpec {
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<String>,
    pub rules: Vec<Rule>,
}

/// Just the parentRefs of an HTTPRoute whose spec does not parse otherwise.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentRefsOnly {
    pub parent_refs: Vec<ParentRef>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i64>,
}

impl ParentRef {
    /// A Gateway (the defaults included)?
    pub fn is_gateway(&self) -> bool {
        self.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
            && self.kind.as_deref().unwrap_or("Gateway") == "Gateway"
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rule {
    pub name: Option<String>,
    pub matches: Vec<RouteMatch>,
    pub filters: Vec<Filter>,
    pub backend_refs: Vec<BackendRef>,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            name: None,
            matches: vec![RouteMatch::default()],
            filters: Vec::new(),
            backend_refs: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    pub method: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch {
            type_: "PathPrefix".into(),
            value: "/".into(),
        }
    }
}

/// A header or query parameter match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ValueMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Filter {
    #[serde(rename = "type")]
    pub type_: String,
    pub request_header_modifier: Option<HeaderModifier>,
    pub response_header_modifier: Option<HeaderModifier>,
    pub request_redirect: Option<RequestRedirect>,
    #[serde(rename = "urlRewrite")]
    pub url_rewrite: Option<UrlRewrite>,
}

/// `requestRedirect`: answer with a redirect instead of sending the request on.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestRedirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<i64>,
    pub status_code: Option<i64>,
}

/// `urlRewrite`: change the host and/or path the backend sees.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

/// `ReplaceFullPath` or `ReplacePrefixMatch`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PathModifier {
    #[serde(rename = "type")]
    pub type_: String,
    pub replace_full_path: Option<String>,
    pub replace_prefix_match: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderModifier {
    pub set: Vec<NameValue>,
    pub add: Vec<NameValue>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i64>,
    pub weight: Option<i64>,
}

impl BackendRef {
    pub fn is_service(&self) -> bool {
        self.group.as_deref().unwrap_or("").is_empty()
            && self.kind.as_deref().unwrap_or("Service") == "Service"
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub ports: Vec<Value>,
    pub selector: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    pub name: Option<String>,
}

/// Does a ReferenceGrant in `to_ns` let HTTPRoutes of `from_ns` refer to Service `name`?
pub fn grant_allows(grant: &ReferenceGrantSpec, from_ns: &str, name: &str) -> bool {
    grant
        .from
        .iter()
        .any(|f| f.group == GATEWAY_GROUP && f.kind == "HTTPRoute" && f.namespace == from_ns)
        && grant.to.iter().any(|t| {
            t.group.is_empty() && t.kind == "Service" && t.name.as_deref().is_none_or(|n| n == name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_defaults_and_odd_fields() {
        let spec: HttpRouteSpec = serde_json::from_value(json!({
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}, {}]
        }))
        .unwrap();
        assert!(spec.parent_refs[0].is_gateway());
        assert_eq!(
            spec.rules[0].matches.len(),
            1,
            "a rule without matches matches all"
        );
        assert!(spec.rules[0].backend_refs[0].is_service());
        let odd: Result<HttpRouteSpec, _> =
            serde_json::from_value(json!({"rules": [{"matches": "nope"}]}));
        assert!(odd.is_err());
    }

    #[test]
    fn selectors() {
        let s: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"team": "a"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "ci"]},
                                 {"key": "legacy", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(s.matches(&labels(&[("team", "a"), ("env", "ci")])));
        assert!(!s.matches(&labels(&[("team", "a"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("team", "a"), ("env", "ci"), ("legacy", "y")])));
        assert!(!s.matches(&labels(&[("env", "ci")])));
    }

    #[test]
    fn grants() {
        let g: ReferenceGrantSpec = serde_json::from_value(json!({
            "from": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "namespace": "apps"}],
            "to": [{"group": "", "kind": "Service", "name": "db"}]
        }))
        .unwrap();
        assert!(grant_allows(&g, "apps", "db"));
        assert!(!grant_allows(&g, "apps", "other"));
        assert!(!grant_allows(&g, "elsewhere", "db"));
    }
}
