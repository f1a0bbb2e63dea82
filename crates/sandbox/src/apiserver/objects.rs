//! The object lifecycle, independent of HTTP: create, get, list, update, patch, apply,
//! delete, finalizers, namespace and CRD termination, owner-reference garbage collection.
//! Every function runs under the store lock, so each request is one atomic step.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::fields::{self, ManagedEntry, Section, Shape, Writer};
use super::patch::{self, PatchType};
use super::resources::{GroupResource, NameRule, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause, delete_success};
use super::store::{Inner, meta, meta_mut, meta_str, strings};
use super::{crd, gojson};
use gwtest_schema::{Rejected, Write, unknown_field};

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_PLURAL: &str = "customresourcedefinitions";
const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// RFC 3339 with seconds, as Kubernetes timestamps are.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// What a request addresses.
#[derive(Clone, Debug)]
pub struct Target {
    pub def: Arc<ResourceDef>,
    /// The version the client asked for (objects are presented in it).
    pub version: String,
    /// "" for cluster-scoped resources and all-namespace lists.
    pub namespace: String,
    /// "" for collections.
    pub name: String,
    /// The /status subresource.
    pub status: bool,
}

impl Target {
    pub fn gr(&self) -> GroupResource {
        self.def.gr()
    }

    pub fn api_version(&self) -> String {
        self.def.api_version(&self.version)
    }

    fn section(&self) -> Section {
        if self.status {
            Section::Status
        } else if self.def.status_subresource {
            Section::Main
        } else {
            Section::All
        }
    }

    fn shape(&self) -> Shape<'_> {
        Shape::new(self.def.schema(&self.version), self.def.builtin)
    }

    fn with_name(&self, namespace: &str, name: &str) -> Target {
        Target {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ..self.clone()
        }
    }
}

/// `fieldValidation`.
pub use gwtest_schema::FieldValidation;

/// Options of a write.
#[derive(Clone, Debug)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// fieldManager, or the default derived from the User-Agent.
    pub manager: String,
    /// Whether `fieldManager` was given explicitly (server-side apply requires it).
    pub manager_given: bool,
    pub validation: FieldValidation,
    pub force: bool,
}

impl Default for WriteOpts {
    fn default() -> Self {
        WriteOpts {
            dry_run: false,
            manager: "unknown".into(),
            manager_given: false,
            validation: FieldValidation::Warn,
            force: false,
        }
    }
}

/// Options of a delete (query parameters and the DeleteOptions body).
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// Work to do after answering (namespace and CRD termination run right after the DELETE).
#[derive(Clone, Debug, PartialEq)]
pub enum Followup {
    FinalizeNamespace(String),
    FinalizeCrd(String),
}

/// The answer of a write.
#[derive(Debug)]
pub struct Outcome {
    pub code: u16,
    pub body: Value,
    /// `Warning` headers.
    pub warnings: Vec<String>,
    pub followups: Vec<Followup>,
}

impl Outcome {
    fn new(code: u16, body: Value) -> Outcome {
        Outcome {
            code,
            body,
            warnings: Vec::new(),
            followups: Vec::new(),
        }
    }
}

fn is_namespace(gr: &GroupResource) -> bool {
    gr.group.is_empty() && gr.plural == "namespaces"
}

fn is_crd(gr: &GroupResource) -> bool {
    gr.group == CRD_GROUP && gr.plural == CRD_PLURAL
}

fn ns_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        plural: "namespaces".into(),
    }
}

fn crd_gr() -> GroupResource {
    GroupResource {
        group: CRD_GROUP.into(),
        plural: CRD_PLURAL.into(),
    }
}

const TOP_ORDER_BUILTIN: [&str; 3] = ["kind", "apiVersion", "metadata"];
const TOP_ORDER_CR: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Puts keys in the order a real server serialises them (kind/apiVersion/metadata first,
/// metadata fields in ObjectMeta order, status last).
fn ordered(obj: Value, builtin: bool) -> Value {
    let Value::Object(mut m) = obj else {
        return obj;
    };
    let mut out = Map::new();
    let top = if builtin {
        TOP_ORDER_BUILTIN
    } else {
        TOP_ORDER_CR
    };
    for k in top {
        if let Some(v) = m.remove(k) {
            let v = if k == "metadata" { order_meta(v) } else { v };
            out.insert(k.to_string(), v);
        }
    }
    let status = m.remove("status");
    out.extend(m);
    if let Some(s) = status {
        out.insert("status".into(), s);
    }
    Value::Object(out)
}

fn order_meta(v: Value) -> Value {
    let Value::Object(mut m) = v else { return v };
    let mut out = Map::new();
    for k in gwtest_schema::OBJECT_META {
        if let Some(v) = m.remove(k) {
            out.insert(k.to_string(), v);
        }
    }
    out.extend(m);
    Value::Object(out)
}

/// An object as served in the requested version (conversion "None": apiVersion rewritten).
pub fn present(def: &ResourceDef, version: &str, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(def.api_version(version)));
        m.insert("kind".into(), json!(def.kind));
    }
    ordered(o, def.builtin)
}

// ---------------------------------------------------------------------------------------
// Names and bodies

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && (if first_alpha {
            b[0].is_ascii_lowercase()
        } else {
            alnum(b[0])
        })
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// The messages `metadata.name` gets under a name rule (empty: valid).
pub fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push("must be no more than 253 characters".to_string());
            }
            if !name.split('.').all(|l| is_label(l, false)) {
                errs.push(SUBDOMAIN_MSG.to_string());
            }
        }
        NameRule::Label | NameRule::Dns1035 => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".to_string());
            }
            let dns1035 = rule == NameRule::Dns1035;
            if !is_label(name, dns1035) {
                errs.push(if dns1035 { DNS1035_MSG } else { LABEL_MSG }.to_string());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errs.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    errs.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    errs
}

/// Parses a JSON request body; a malformed one gets the real server's 400.
pub fn parse_body(def: &ResourceDef, raw: &[u8]) -> Result<Value, ApiError> {
    if let Some(e) = gojson::syntax_error(raw) {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} ({})",
            def.kind,
            gojson::summarize(raw)
        )));
    }
    let v: Value = serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !v.is_object() {
        let ty = match v {
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "bool",
            _ => "null",
        };
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: json: cannot unmarshal {ty} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }} ({})",
            def.kind,
            gojson::summarize(raw)
        )));
    }
    Ok(v)
}

fn check_type(t: &Target, obj: &Value) -> Result<(), ApiError> {
    let expected = t.api_version();
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != expected
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != t.def.kind
    {
        return Err(ApiError::bad_request(format!(
            "{k} in version {:?} cannot be handled as a {}: no kind {k:?} is registered for version {expected:?}",
            t.version, t.def.kind
        )));
    }
    Ok(())
}

fn check_namespace_field(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let m = meta_mut(obj);
    if t.def.namespaced {
        let given = m.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !given.is_empty() && given != t.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        m.insert("namespace".into(), json!(t.namespace));
    } else {
        m.remove("namespace");
    }
    Ok(())
}

fn check_url_name(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let m = meta_mut(obj);
    let given = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if given.is_empty() {
        m.insert("name".into(), json!(t.name));
    } else if given != t.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({})",
            t.name
        )));
    }
    Ok(())
}

/// Server-set metadata a client cannot write: ObjectMeta's selfLink through
/// deletionGracePeriodSeconds (uid, resourceVersion, generation and the timestamps), its
/// managedFields, and the namespace (the URL's).
fn server_meta() -> impl Iterator<Item = &'static str> {
    gwtest_schema::OBJECT_META[3..10]
        .iter()
        .copied()
        .chain(["managedFields", "namespace"])
}

fn copy_server_meta(obj: &mut Value, old: &Value) {
    let old_meta = meta(old).clone();
    let m = meta_mut(obj);
    for k in server_meta().chain(["name"]) {
        match old_meta.get(k) {
            Some(v) => {
                m.insert(k.to_string(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    strings(meta(obj).get("finalizers"))
}

fn is_deleting(obj: &Value) -> bool {
    meta(obj)
        .get("deletionTimestamp")
        .is_some_and(|d| !d.is_null())
}

// ---------------------------------------------------------------------------------------
// Kind-specific behaviour of built-ins

fn prepare_kind(
    inner: &mut Inner,
    t: &Target,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let def = &t.def;
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => {
            let name = meta_str(obj, "name").to_string();
            let m = meta_mut(obj);
            if !m.get("labels").is_some_and(Value::is_object) {
                m.insert("labels".into(), json!({}));
            }
            m["labels"]["kubernetes.io/metadata.name"] = json!(name);
            match old {
                None => {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                    obj["status"] = json!({"phase": "Active"});
                }
                Some(old) if !t.status => {
                    // spec.finalizers change only through /finalize.
                    obj["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
                }
                Some(_) => {}
            }
        }
        ("", "secrets") => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                if !obj.get("data").is_some_and(Value::is_object) {
                    obj["data"] = json!({});
                }
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or("").to_string();
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "services") if !t.status => {
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            let spec = obj["spec"].as_object_mut().expect("object");
            let ty = spec
                .entry("type")
                .or_insert(json!("ClusterIP"))
                .as_str()
                .unwrap_or("")
                .to_string();
            spec.entry("sessionAffinity").or_insert(json!("None"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert(json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        p.entry("targetPort").or_insert(port);
                    }
                }
            }
            if ty != "ExternalName" && !spec.contains_key("clusterIP") {
                let old_ip = old
                    .and_then(|o| o.get("spec"))
                    .and_then(|s| s.get("clusterIP"))
                    .cloned();
                let ip = match old_ip {
                    Some(ip) => ip,
                    None => {
                        let n = inner.next_cluster_ip;
                        inner.next_cluster_ip += 1;
                        json!(format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff))
                    }
                };
                spec.insert("clusterIPs".into(), json!([ip.clone()]));
                spec.insert("clusterIP".into(), ip);
                spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
                spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
                spec.entry("internalTrafficPolicy")
                    .or_insert(json!("Cluster"));
            }
            if old.is_none() {
                obj["status"] = json!({"loadBalancer": {}});
            }
        }
        (CRD_GROUP, CRD_PLURAL) if !t.status => {
            crd::default_crd(obj);
            let causes = crd::validate_crd(obj);
            if !causes.is_empty() {
                return Err(ApiError::invalid(def, meta_str(obj, "name"), causes));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Pruning, defaulting and validation from a CRD's schema (and its CEL rules), as the real
/// server admits a custom resource write.
fn apply_schema(
    t: &Target,
    obj: &mut Value,
    old: Option<&Value>,
    o: &WriteOpts,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Some(sc) = t.def.version_schema(&t.version) else {
        return Ok(());
    };
    let w = Write {
        old,
        status: t.status,
        field_validation: o.validation,
    };
    match sc.admit(obj, &w) {
        Ok(w) => {
            warnings.extend(w);
            Ok(())
        }
        Err(Rejected::UnknownFields(unknown)) => {
            let list: Vec<String> = unknown.iter().map(|f| unknown_field(f)).collect();
            Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                t.def.kind,
                t.version,
                t.def.kind,
                list.join(", ")
            )))
        }
        Err(Rejected::Invalid(causes)) => {
            Err(ApiError::invalid(&t.def, meta_str(obj, "name"), causes))
        }
    }
}

fn spec_changed(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        for k in ["metadata", "apiVersion", "kind"] {
            m.remove(k);
        }
        if def.status_subresource {
            m.remove("status");
        }
        m
    };
    strip(old) != strip(new)
}

/// Equal apart from managedFields times (such a write is a no-op).
fn same_state(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        if let Some(mf) = v
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
            .and_then(Value::as_array_mut)
        {
            for e in mf.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
        v
    };
    norm(a) == norm(b)
}

fn set_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let m = meta_mut(obj);
    if entries.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), fields::render_managed(entries));
    }
}

/// The managedFields after a write: `managed` when the write computed them (an apply),
/// else `old`'s with this write recorded as `manager`'s update.
fn managed_after(
    managed: Option<Vec<ManagedEntry>>,
    t: &Target,
    old: Option<&Value>,
    obj: &Value,
    section: Section,
    manager: &str,
    time: &str,
) -> Vec<ManagedEntry> {
    managed.unwrap_or_else(|| {
        let mut e = old.map(fields::parse_managed).unwrap_or_default();
        let av = t.api_version();
        let w = writer(t, manager, &av, time);
        fields::record_update(&mut e, old, obj, t.shape(), section, &w);
        e
    })
}

fn writer<'a>(t: &'a Target, manager: &'a str, api_version: &'a str, time: &'a str) -> Writer<'a> {
    Writer {
        manager,
        api_version,
        subresource: if t.status { "status" } else { "" },
        time,
    }
}

// ---------------------------------------------------------------------------------------
// Reads

pub fn get(inner: &Inner, t: &Target) -> Result<Value, ApiError> {
    let obj = inner
        .get(&t.gr(), &t.namespace, &t.name)
        .ok_or_else(|| ApiError::not_found(&t.def, &t.name))?;
    Ok(present(&t.def, &t.version, obj))
}

/// The object of a list item as the real server shows it (typed lists omit kind/apiVersion).
fn list_item(def: &ResourceDef, version: &str, obj: &Value) -> Value {
    let mut o = present(def, version, obj);
    if def.builtin
        && let Some(m) = o.as_object_mut()
    {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

/// Continue tokens: base64 of {"rv", "ns", "name"}: the first page's resourceVersion (so that
/// a watch from it misses nothing) and the last key served.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        v.get("ns")?.as_str()?.to_string(),
        v.get("name")?.as_str()?.to_string(),
    ))
}

/// Selection of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

pub fn list(
    inner: &Inner,
    t: &Target,
    sel: &Selection,
    limit: Option<usize>,
    cont: Option<&str>,
) -> Result<Value, ApiError> {
    let mut rv = inner.current_rv();
    let mut start: Option<(String, String)> = None;
    if let Some(token) = cont.filter(|c| !c.is_empty()) {
        let (trv, ns, name) = decode_continue(token).ok_or_else(|| {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion",
            )
        })?;
        rv = trv;
        start = Some((ns, name));
    }
    let ns = if t.namespace.is_empty() {
        None
    } else {
        Some(t.namespace.as_str())
    };
    let mut matched = inner.list(&t.gr(), ns).into_iter().filter(|o| {
        if let Some((sns, sname)) = &start {
            let key = (meta_str(o, "namespace"), meta_str(o, "name"));
            if key <= (sns.as_str(), sname.as_str()) {
                return false;
            }
        }
        sel.matches(o)
    });
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = 0usize;
    for o in matched.by_ref() {
        if limit.is_some_and(|l| l > 0 && items.len() >= l) {
            remaining = 1;
            break;
        }
        items.push(o);
    }
    if remaining > 0 {
        remaining += matched.count();
        if let Some(last) = items.last() {
            next = Some(encode_continue(
                rv,
                meta_str(last, "namespace"),
                meta_str(last, "name"),
            ));
        }
    }
    let mut lm = Map::new();
    lm.insert("resourceVersion".into(), json!(rv.to_string()));
    match next {
        Some(token) => {
            lm.insert("continue".into(), json!(token));
            lm.insert("remainingItemCount".into(), json!(remaining));
        }
        None if !t.def.builtin => {
            lm.insert("continue".into(), json!(""));
        }
        None => {}
    }
    Ok(json!({
        "kind": t.def.list_kind,
        "apiVersion": t.api_version(),
        "metadata": Value::Object(lm),
        "items": items.into_iter().map(|o| list_item(&t.def, &t.version, o)).collect::<Vec<_>>(),
    }))
}

// ---------------------------------------------------------------------------------------
// Writes

fn namespace_ready(inner: &Inner, t: &Target, name: &str) -> Result<(), ApiError> {
    if !t.def.namespaced {
        return Ok(());
    }
    let ns = inner
        .get(&ns_gr(), "", &t.namespace)
        .ok_or_else(|| ApiError::namespace_not_found(&t.namespace))?;
    if is_deleting(ns) {
        return Err(ApiError::forbidden(
            &t.def,
            name,
            &format!(
                "unable to create new content in namespace {} because it is being terminated",
                t.namespace
            ),
        ));
    }
    Ok(())
}

fn crd_of(def: &ResourceDef) -> String {
    format!("{}.{}", def.plural, def.group)
}

fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

pub fn create(
    inner: &mut Inner,
    t: &Target,
    body: Value,
    o: &WriteOpts,
) -> Result<Outcome, ApiError> {
    create_obj(inner, t, body, o, None)
}

fn create_obj(
    inner: &mut Inner,
    t: &Target,
    mut obj: Value,
    o: &WriteOpts,
    managed: Option<Vec<ManagedEntry>>,
) -> Result<Outcome, ApiError> {
    let def = t.def.clone();
    check_type(t, &obj)?;
    check_namespace_field(t, &mut obj)?;
    let mut name = meta_str(&obj, "name").to_string();
    if name.is_empty() {
        let prefix = meta_str(&obj, "generateName").to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &def,
                "",
                vec![Cause::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        name = generated_name(&prefix);
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    let errs = name_errors(def.name_rule, &name);
    if !errs.is_empty() {
        let causes = errs
            .iter()
            .map(|e| Cause::invalid("metadata.name", &json!(name), e))
            .collect();
        return Err(ApiError::invalid(&def, &name, causes));
    }
    namespace_ready(inner, t, &name)?;
    if def.is_crd_kind()
        && inner
            .get(&crd_gr(), "", &crd_of(&def))
            .is_some_and(|c| is_deleting(c))
    {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        )
        .with_details(json!({})));
    }
    if inner.get(&def.gr(), &t.namespace, &name).is_some() {
        return Err(ApiError::already_exists(&def, &name));
    }
    let time = now();
    {
        let m = meta_mut(&mut obj);
        for k in server_meta() {
            if k != "namespace" {
                m.remove(k);
            }
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(time));
        if def.generation {
            m.insert("generation".into(), json!(1));
        }
    }
    obj["apiVersion"] = json!(def.api_version(&def.storage_version));
    obj["kind"] = json!(def.kind);
    if def.status_subresource
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    let target = t.with_name(&t.namespace, &name);
    prepare_kind(inner, &target, None, &mut obj)?;
    let mut warnings = Vec::new();
    apply_schema(&target, &mut obj, None, o, &mut warnings)?;
    if is_crd(&def.gr()) {
        obj["status"] = crd::initial_status(&obj);
    }
    let section = if def.status_subresource {
        Section::Main
    } else {
        Section::All
    };
    let entries = managed_after(managed, t, None, &obj, section, &o.manager, &time);
    set_managed(&mut obj, &entries);
    let obj = ordered(obj, def.builtin);
    if o.dry_run {
        return Ok(Outcome {
            warnings,
            ..Outcome::new(201, present(&def, &t.version, &obj))
        });
    }
    let stored = inner.put(&def.gr(), obj);
    if is_crd(&def.gr()) {
        sync_crd(inner, &stored);
    }
    Ok(Outcome {
        warnings,
        ..Outcome::new(201, present(&def, &t.version, &stored))
    })
}

pub fn update(
    inner: &mut Inner,
    t: &Target,
    mut body: Value,
    o: &WriteOpts,
) -> Result<Outcome, ApiError> {
    check_type(t, &body)?;
    check_url_name(t, &mut body)?;
    check_namespace_field(t, &mut body)?;
    let old = inner
        .get(&t.gr(), &t.namespace, &t.name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.def, &t.name))?;
    let rv = meta_str(&body, "resourceVersion").to_string();
    if rv.is_empty() {
        if !t.def.builtin {
            return Err(ApiError::invalid(
                &t.def,
                &t.name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: "Invalid value: 0x0: must be specified for an update".into(),
                    field: "metadata.resourceVersion".into(),
                }],
            ));
        }
    } else if rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&t.def, &t.name));
    }
    write_existing(inner, t, old, body, o, None)
}

fn write_existing(
    inner: &mut Inner,
    t: &Target,
    old: Arc<Value>,
    mut obj: Value,
    o: &WriteOpts,
    managed: Option<Vec<ManagedEntry>>,
) -> Result<Outcome, ApiError> {
    let def = t.def.clone();
    let section = t.section();
    match section {
        Section::Status => {
            let mut base = (*old).clone();
            match obj.get("status") {
                Some(s) => base["status"] = s.clone(),
                None => {
                    if let Some(m) = base.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            obj = base;
        }
        Section::Main => match old.get("status") {
            Some(s) => obj["status"] = s.clone(),
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        Section::All => {}
    }
    copy_server_meta(&mut obj, &old);
    obj["apiVersion"] = json!(def.api_version(&def.storage_version));
    obj["kind"] = json!(def.kind);
    if is_deleting(&old) {
        let before = finalizers(&old);
        if let Some(added) = finalizers(&obj).into_iter().find(|f| !before.contains(f)) {
            return Err(ApiError::invalid(
                &def,
                &t.name,
                vec![Cause::forbidden(
                    "metadata.finalizers",
                    &format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{added:?}}}"
                    ),
                )],
            ));
        }
    }
    prepare_kind(inner, t, Some(&old), &mut obj)?;
    let mut warnings = Vec::new();
    apply_schema(t, &mut obj, Some(&old), o, &mut warnings)?;
    if def.generation && spec_changed(&def, &old, &obj) {
        let g = meta(&old)
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(&mut obj).insert("generation".into(), json!(g + 1));
    }
    let time = now();
    let entries = managed_after(managed, t, Some(&old), &obj, section, &o.manager, &time);
    set_managed(&mut obj, &entries);
    let obj = ordered(obj, def.builtin);
    if same_state(&old, &obj) {
        return Ok(Outcome {
            warnings,
            ..Outcome::new(200, present(&def, &t.version, &old))
        });
    }
    if o.dry_run {
        return Ok(Outcome {
            warnings,
            ..Outcome::new(200, present(&def, &t.version, &obj))
        });
    }
    // A Terminating namespace is held by the namespace controller's own finalizer
    // (spec.finalizers: kubernetes), not by metadata.finalizers: a write to it never ends it.
    let finished = is_deleting(&obj) && finalizers(&obj).is_empty() && !is_namespace(&def.gr());
    let stored = inner.put(&def.gr(), obj);
    if finished {
        let last = remove_object(inner, &def.gr(), &t.namespace, &t.name).unwrap_or(stored);
        return Ok(Outcome {
            warnings,
            ..Outcome::new(200, present(&def, &t.version, &last))
        });
    }
    if is_crd(&def.gr()) {
        sync_crd(inner, &stored);
    }
    let current = inner
        .get(&def.gr(), &t.namespace, &t.name)
        .cloned()
        .unwrap_or(stored);
    Ok(Outcome {
        warnings,
        ..Outcome::new(200, present(&def, &t.version, &current))
    })
}

/// Parses an apply body (YAML or JSON).
fn parse_apply(raw: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(raw) {
        return Ok(v);
    }
    let text = std::str::from_utf8(raw)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

pub fn patch(
    inner: &mut Inner,
    t: &Target,
    ptype: PatchType,
    raw: &[u8],
    o: &WriteOpts,
) -> Result<Outcome, ApiError> {
    if ptype == PatchType::Apply {
        return apply(inner, t, raw, o);
    }
    if ptype == PatchType::Strategic && !t.def.builtin {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
        .with_details(json!({})));
    }
    let body: Value = serde_json::from_slice(raw)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let old = inner
        .get(&t.gr(), &t.namespace, &t.name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.def, &t.name))?;
    let mut doc = (*old).clone();
    match ptype {
        PatchType::Merge => {
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal patch into an object",
                ));
            }
            patch::merge_patch(&mut doc, &body)
        }
        PatchType::Strategic => patch::strategic_merge(&mut doc, &body),
        PatchType::Json => patch::json_patch(&mut doc, &body).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
            .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": e}]}))
        })?,
        PatchType::Apply => unreachable!("handled above"),
    }
    if !doc.is_object() {
        return Err(ApiError::bad_request("the patched object is not an object"));
    }
    let rv = meta_str(&doc, "resourceVersion").to_string();
    if rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(&t.def, &t.name));
    }
    write_existing(inner, t, old, doc, o, None)
}

fn apply(inner: &mut Inner, t: &Target, raw: &[u8], o: &WriteOpts) -> Result<Outcome, ApiError> {
    if !o.manager_given {
        return Err(ApiError::bad_request(
            "PATCH request must specify fieldManager for apply requests",
        ));
    }
    let mut config = parse_apply(raw)?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    let av = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        let (g, v) = av.split_once('/').unwrap_or(("", av));
        return Err(ApiError::bad_request(format!(
            "invalid object type: {g}/{v}, Kind={kind}"
        )));
    }
    check_type(t, &config)?;
    if let Some(err) = t
        .def
        .version_schema(&t.version)
        .and_then(|s| s.apply_errors(&config))
    {
        // structured-merge-diff's conversion fails before anything is merged: an untyped
        // error, so a 500 (golden 09).
        return Err(ApiError::internal(format!(
            "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {err}",
            meta_str(&config, "namespace"),
            meta_str(&config, "name"),
            t.def.group,
            t.version,
            t.def.kind
        )));
    }
    check_url_name(t, &mut config)?;
    check_namespace_field(t, &mut config)?;
    let live = inner.get(&t.gr(), &t.namespace, &t.name).cloned();
    if t.status && live.is_none() {
        return Err(ApiError::not_found(&t.def, &t.name));
    }
    let given_rv = meta_str(&config, "resourceVersion").to_string();
    if let Some(l) = &live
        && !given_rv.is_empty()
        && given_rv != meta_str(l, "resourceVersion")
    {
        return Err(ApiError::stale(&t.def, &t.name));
    }
    {
        let m = meta_mut(&mut config);
        for k in server_meta() {
            if k != "namespace" {
                m.remove(k);
            }
        }
    }
    let mut entries = live
        .as_deref()
        .map(fields::parse_managed)
        .unwrap_or_default();
    let time = now();
    let api_version = t.api_version();
    let w = writer(t, &o.manager, &api_version, &time);
    let merged = fields::apply(live.as_deref(), &config, &mut entries, t.shape(), t.section(), o.force, &w)
        .map_err(|conflicts| {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.path}))
                .collect();
            ApiError::new(409, "Conflict", fields::conflict_message(&conflicts)).with_details(json!({"causes": causes}))
        })?;
    match live {
        None => create_obj(inner, t, merged, o, Some(entries)),
        Some(old) => write_existing(inner, t, old, merged, o, Some(entries)),
    }
}

/// DELETE of one object: namespaces and CRDs turn Terminating (their contents go in a
/// follow-up), objects with finalizers are marked, others are removed.
pub fn delete(inner: &mut Inner, t: &Target, d: &DeleteOpts) -> Result<Outcome, ApiError> {
    let def = t.def.clone();
    let gr = def.gr();
    let old = inner
        .get(&gr, &t.namespace, &t.name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&def, &t.name))?;
    let preconditions = [
        (&d.precondition_uid, "uid", "UID"),
        (&d.precondition_rv, "resourceVersion", "ResourceVersion"),
    ];
    for (wanted, field, name) in preconditions {
        if let Some(wanted) = wanted
            && wanted != meta_str(&old, field)
        {
            return Err(ApiError::conflict(
                &def,
                &t.name,
                &format!(
                    "Precondition failed: {name} in precondition: {wanted}, {name} in object meta: {}",
                    meta_str(&old, field)
                ),
            ));
        }
    }
    let time = now();
    if is_namespace(&gr) || is_crd(&gr) {
        if is_deleting(&old) {
            return Ok(Outcome::new(200, present(&def, &t.version, &old)));
        }
        let mut obj = (*old).clone();
        meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(time));
        let followup = if is_namespace(&gr) {
            obj["status"] = json!({"phase": "Terminating"});
            Followup::FinalizeNamespace(t.name.clone())
        } else {
            let m = meta_mut(&mut obj);
            let mut fins = m
                .get("finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !fins.contains(&json!(CRD_FINALIZER)) {
                fins.push(json!(CRD_FINALIZER));
            }
            m.insert("finalizers".into(), Value::Array(fins));
            crd::mark_terminating(&mut obj, &time);
            Followup::FinalizeCrd(t.name.clone())
        };
        let obj = ordered(obj, def.builtin);
        if d.dry_run {
            return Ok(Outcome::new(200, present(&def, &t.version, &obj)));
        }
        let stored = inner.put(&gr, obj);
        let mut out = Outcome::new(200, present(&def, &t.version, &stored));
        out.followups.push(followup);
        return Ok(out);
    }
    if !finalizers(&old).is_empty() {
        if is_deleting(&old) {
            return Ok(Outcome::new(200, present(&def, &t.version, &old)));
        }
        let mut obj = (*old).clone();
        let m = meta_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(time));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        let obj = ordered(obj, def.builtin);
        if d.dry_run {
            return Ok(Outcome::new(200, present(&def, &t.version, &obj)));
        }
        let stored = inner.put(&gr, obj);
        return Ok(Outcome::new(200, present(&def, &t.version, &stored)));
    }
    let last = if d.dry_run {
        old.clone()
    } else {
        remove_object(inner, &gr, &t.namespace, &t.name).unwrap_or(old)
    };
    let body = if def.return_deleted {
        present(&def, &t.version, &last)
    } else {
        delete_success(&def, &t.name, meta_str(&last, "uid"))
    };
    Ok(Outcome::new(200, body))
}

/// DELETE on a collection: deletes what the selection matches; answers with the list.
pub fn delete_collection(
    inner: &mut Inner,
    t: &Target,
    sel: &Selection,
    d: &DeleteOpts,
) -> Result<Outcome, ApiError> {
    let ns = if t.namespace.is_empty() {
        None
    } else {
        Some(t.namespace.as_str())
    };
    let targets: Vec<(String, String)> = inner
        .list(&t.gr(), ns)
        .into_iter()
        .filter(|o| sel.matches(o))
        .map(|o| {
            (
                meta_str(o, "namespace").to_string(),
                meta_str(o, "name").to_string(),
            )
        })
        .collect();
    let mut items = Vec::new();
    let mut followups = Vec::new();
    for (ns, name) in targets {
        let one = t.with_name(&ns, &name);
        let mut out = delete(inner, &one, d)?;
        followups.append(&mut out.followups);
        if out.body.get("kind") == Some(&json!("Status")) {
            if let Some(last) = inner.get(&t.gr(), &ns, &name) {
                items.push(list_item(&t.def, &t.version, last));
            }
        } else {
            let mut item = out.body;
            if t.def.builtin
                && let Some(m) = item.as_object_mut()
            {
                m.remove("kind");
                m.remove("apiVersion");
            }
            items.push(item);
        }
    }
    let mut out = Outcome::new(
        200,
        json!({"kind": t.def.list_kind, "apiVersion": t.api_version(),
            "metadata": {"resourceVersion": inner.current_rv().to_string()}, "items": items}),
    );
    out.followups = followups;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Removal, finalization, garbage collection

/// Removes an object for good and runs what follows from it.
fn remove_object(
    inner: &mut Inner,
    gr: &GroupResource,
    namespace: &str,
    name: &str,
) -> Option<Arc<Value>> {
    let last = inner.remove(gr, namespace, name)?;
    if is_crd(gr)
        && let Some(def) = inner.registry.unregister_crd(name)
    {
        inner.drop_resource(&def.gr());
    }
    if !is_namespace(gr) && !is_crd(gr) {
        collect_dependents(inner, meta_str(&last, "uid"));
    }
    if !namespace.is_empty() {
        try_complete_namespace(inner, namespace);
    }
    if !gr.group.is_empty() && !is_crd(gr) {
        let crd_name = format!("{}.{}", gr.plural, gr.group);
        if inner
            .registry
            .crd_resource(&crd_name)
            .is_some_and(|d| d.gr() == *gr)
        {
            try_complete_crd(inner, &crd_name);
        }
    }
    Some(last)
}

/// Deletes an object the way a controller would: mark it if it has finalizers, else remove.
fn delete_internal(inner: &mut Inner, gr: &GroupResource, namespace: &str, name: &str) {
    let Some(obj) = inner.get(gr, namespace, name).cloned() else {
        return;
    };
    if finalizers(&obj).is_empty() {
        remove_object(inner, gr, namespace, name);
    } else if !is_deleting(&obj) {
        let mut o = (*obj).clone();
        let m = meta_mut(&mut o);
        m.insert("deletionTimestamp".into(), json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        inner.put(gr, o);
    }
}

/// Background garbage collection: dependents whose owners are all gone are deleted.
fn collect_dependents(inner: &mut Inner, uid: &str) {
    if uid.is_empty() {
        return;
    }
    for (gr, (ns, name)) in inner.dependents_of(uid) {
        if is_namespace(&gr) || is_crd(&gr) {
            continue;
        }
        let Some(dep) = inner.get(&gr, &ns, &name) else {
            continue;
        };
        let orphaned = meta(dep)
            .get("ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter().all(|r| {
                    r.get("uid")
                        .and_then(Value::as_str)
                        .is_none_or(|u| inner.locate_uid(u).is_none())
                })
            });
        if orphaned {
            delete_internal(inner, &gr, &ns, &name);
        }
    }
}

fn try_complete_namespace(inner: &mut Inner, namespace: &str) {
    let terminating = inner
        .get(&ns_gr(), "", namespace)
        .is_some_and(|n| is_deleting(n));
    if terminating && inner.count_in_namespace(namespace) == 0 {
        remove_object(inner, &ns_gr(), "", namespace);
    }
}

fn try_complete_crd(inner: &mut Inner, crd_name: &str) {
    let terminating = inner
        .get(&crd_gr(), "", crd_name)
        .is_some_and(|c| is_deleting(c));
    if !terminating {
        return;
    }
    let empty = match inner.registry.crd_resource(crd_name) {
        Some(def) => inner.all_keys(&def.gr()).is_empty(),
        None => true,
    };
    if empty {
        remove_object(inner, &crd_gr(), "", crd_name);
    }
}

/// The namespace lifecycle controller: delete the namespace's contents, then the namespace.
pub fn finalize_namespace(inner: &mut Inner, namespace: &str) {
    if !inner
        .get(&ns_gr(), "", namespace)
        .is_some_and(|n| is_deleting(n))
    {
        return;
    }
    for (gr, name) in inner.keys_in_namespace(namespace) {
        delete_internal(inner, &gr, namespace, &name);
    }
    try_complete_namespace(inner, namespace);
}

/// The CRD finalizer: delete all instances, then the CRD (which unregisters the kind).
pub fn finalize_crd(inner: &mut Inner, crd_name: &str) {
    if !inner
        .get(&crd_gr(), "", crd_name)
        .is_some_and(|c| is_deleting(c))
    {
        return;
    }
    if let Some(def) = inner.registry.crd_resource(crd_name).cloned() {
        for (ns, name) in inner.all_keys(&def.gr()) {
            delete_internal(inner, &def.gr(), &ns, &name);
        }
    }
    try_complete_crd(inner, crd_name);
}

/// Registers the kind a CRD defines and settles its status (NamesAccepted, Established).
fn sync_crd(inner: &mut Inner, crd_obj: &Arc<Value>) {
    if is_deleting(crd_obj) {
        return;
    }
    let name = meta_str(crd_obj, "name").to_string();
    let def = crd::resource_from_crd(crd_obj, inner.registry.crd_resource(&name).map(|d| &**d));
    let taken = inner.registry.get(&def.gr()).is_some()
        && inner.registry.crd_resource(&name).map(|d| d.gr()) != Some(def.gr());
    let conflict = taken.then(|| format!("{:?} is already in use", def.plural));
    if conflict.is_none()
        && let Some(replaced) = inner.registry.register_crd(&name, def)
    {
        inner.drop_resource(&replaced);
    }
    let time = now();
    let status = crd::settled_status(crd_obj, conflict.as_deref(), &time);
    if crd_obj.get("status") == Some(&status) {
        return;
    }
    let mut obj = (**crd_obj).clone();
    obj["status"] = status;
    let mut entries = fields::parse_managed(crd_obj);
    let w = Writer {
        manager: "kube-apiserver",
        api_version: "apiextensions.k8s.io/v1",
        subresource: "status",
        time: &time,
    };
    fields::record_update(
        &mut entries,
        Some(crd_obj),
        &obj,
        Shape::new(None, true),
        Section::Status,
        &w,
    );
    set_managed(&mut obj, &entries);
    inner.put(&crd_gr(), ordered(obj, true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_meta_is_what_the_server_sets() {
        let mut got: Vec<_> = server_meta().collect();
        got.sort_unstable();
        assert_eq!(
            got.join(" "),
            "creationTimestamp deletionGracePeriodSeconds deletionTimestamp generation \
             managedFields namespace resourceVersion selfLink uid"
        );
    }

    #[test]
    fn name_rules() {
        assert!(name_errors(NameRule::Subdomain, "a.b-c").is_empty());
        assert_eq!(
            name_errors(NameRule::Subdomain, "Bad_Name"),
            [SUBDOMAIN_MSG]
        );
        assert!(name_errors(NameRule::Label, "a.b").len() == 1);
        assert!(name_errors(NameRule::Dns1035, "1abc").len() == 1);
        assert!(name_errors(NameRule::Dns1035, "abc-1").is_empty());
        assert!(name_errors(NameRule::PathSegment, "system:foo").is_empty());
        assert_eq!(
            name_errors(NameRule::Label, &"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns", "name");
        assert_eq!(decode_continue(&t), Some((42, "ns".into(), "name".into())));
        assert_eq!(decode_continue("garbage"), None);
    }
}
