//! HTTP routing: authentication, path parsing (`/api/v1/...`, `/apis/<g>/<v>/...`,
//! namespaced or not, `/status`), query parameters, and dispatch to discovery, objects and
//! watches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::discovery;
use super::objects::{
    self, DeleteOpts, FieldValidation, Followup, Outcome, Selection, Target, WriteOpts,
};
use super::openapi;
use super::patch::PatchType;
use super::protobuf;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::Store;
use super::watch::{self, Start, WatchParams};

/// Shared state of the handlers.
pub struct AppState {
    pub store: Arc<Store>,
    pub token: String,
    pub cancel: CancellationToken,
    /// host:port, for `serverAddressByClientCIDRs`.
    pub server_address: String,
    /// How long a deleted namespace stays Terminating before its contents and itself go (the
    /// namespace controller's work; zero: at once).
    pub namespace_termination: std::time::Duration,
}

/// Request bodies up to this size (CRDs such as Gateway API's are large).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

pub(super) fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.body())
}

fn outcome_response(o: Outcome) -> Response {
    let mut r = json_response(o.code, &o.body);
    for w in o.warnings {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "299 - {}",
            serde_json::to_string(&w).unwrap_or_default()
        )) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

pub(super) fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .is_some_and(|t| t.trim() == token)
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Query = HashMap<String, String>;

fn parse_query(uri: &Uri) -> Query {
    let mut q = HashMap::new();
    if let Some(raw) = uri.query() {
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| percent_decode(&s.replace('+', " "));
            q.insert(dec(k), dec(v));
        }
    }
    q
}

fn truthy(q: &Query, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The default field manager: the User-Agent up to the first '/' (as the real server does).
fn default_manager(headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let prefix = ua.split('/').next().unwrap_or("").trim();
    if prefix.is_empty() {
        "unknown".into()
    } else {
        prefix.chars().take(128).collect()
    }
}

async fn handle(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &st.token) {
        return error_response(&ApiError::unauthorized());
    }
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = parse_query(&uri);
    let call = Call {
        st: &st,
        method: &method,
        q: &q,
        headers: &headers,
        body,
    };
    match dispatch(call, &segs).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// One API request as the handlers read it.
struct Call<'a> {
    st: &'a Arc<AppState>,
    method: &'a Method,
    q: &'a Query,
    headers: &'a HeaderMap,
    body: Bytes,
}

async fn dispatch(call: Call<'_>, segs: &[&str]) -> Result<Response, ApiError> {
    let (st, method) = (call.st, call.method);
    let read_only = |r: Response| {
        if method == Method::GET {
            Ok(r)
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match segs {
        [] => read_only(json_response(
            200,
            &serde_json::json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}),
        )),
        ["healthz" | "livez" | "readyz", ..] => read_only((StatusCode::OK, "ok").into_response()),
        ["version"] => read_only(json_response(200, &discovery::version())),
        ["api"] => read_only(json_response(
            200,
            &discovery::core_versions(&st.server_address),
        )),
        ["api", "v1"] => {
            let inner = st.store.lock();
            let doc = discovery::resources(&inner.registry, "", "v1")
                .ok_or_else(ApiError::unknown_resource)?;
            read_only(json_response(200, &doc))
        }
        ["apis"] => {
            let inner = st.store.lock();
            read_only(json_response(200, &discovery::groups(&inner.registry)))
        }
        ["apis", group] => {
            let inner = st.store.lock();
            let doc =
                discovery::group(&inner.registry, group).ok_or_else(ApiError::unknown_resource)?;
            read_only(json_response(200, &doc))
        }
        ["apis", group, version] => {
            let inner = st.store.lock();
            let doc = discovery::resources(&inner.registry, group, version)
                .ok_or_else(ApiError::unknown_resource)?;
            read_only(json_response(200, &doc))
        }
        ["openapi", rest @ ..] => {
            let inner = st.store.lock();
            let r = openapi::serve(&inner.registry, rest, call.headers)?;
            read_only(r)
        }
        ["api", "v1", rest @ ..] => resource(call, "", "v1", rest).await,
        ["apis", group, version, rest @ ..] => resource(call, group, version, rest).await,
        _ => Err(ApiError::unknown_resource()),
    }
}

/// A parsed resource path.
struct Addr<'a> {
    namespace: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

fn parse_addr<'a>(group: &str, rest: &[&'a str]) -> Option<Addr<'a>> {
    let namespace_object =
        group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    match rest {
        ["namespaces", ns, plural, tail @ ..] if !namespace_object && tail.len() <= 2 => {
            Some(Addr {
                namespace: Some(ns),
                plural,
                name: tail.first().copied(),
                sub: tail.get(1).copied(),
            })
        }
        [plural] => Some(Addr {
            namespace: None,
            plural,
            name: None,
            sub: None,
        }),
        [plural, name] => Some(Addr {
            namespace: None,
            plural,
            name: Some(name),
            sub: None,
        }),
        [plural, name, sub] => Some(Addr {
            namespace: None,
            plural,
            name: Some(name),
            sub: Some(sub),
        }),
        _ => None,
    }
}

fn write_opts(q: &Query, headers: &HeaderMap) -> Result<WriteOpts, ApiError> {
    let validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            )));
        }
    };
    let given = q.get("fieldManager").filter(|m| !m.is_empty());
    Ok(WriteOpts {
        dry_run: dry_run(q)?,
        manager: given.cloned().unwrap_or_else(|| default_manager(headers)),
        manager_given: given.is_some(),
        validation,
        force: truthy(q, "force"),
    })
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
        ))),
    }
}

fn selection(q: &Query, t: &Target) -> Result<Selection, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &t.def,
    )
    .map_err(ApiError::bad_request)?;
    Ok(Selection { labels, fields })
}

fn body_value(t: &Target, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let unsupported = || {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct:?} for {})",
                t.def.kind
            ),
        )
    };
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(body).map_err(|e| match e {
            Some(msg) => {
                ApiError::bad_request(format!("the object provided is unrecognized: {msg}"))
            }
            None => unsupported(),
        });
    }
    if ct.starts_with("application/cbor") {
        return Err(unsupported());
    }
    if ct.starts_with("application/yaml") || ct.starts_with("application/x-yaml") {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    objects::parse_body(&t.def, body)
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut d = DeleteOpts {
        dry_run: dry_run(q)?,
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = v.get("preconditions") {
            d.precondition_uid = p.get("uid").and_then(Value::as_str).map(String::from);
            d.precondition_rv = p
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(String::from);
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            d.dry_run = true;
        }
    }
    Ok(d)
}

fn spawn_followups(st: &AppState, followups: Vec<Followup>) {
    for f in followups {
        let store = st.store.clone();
        let delay = match f {
            Followup::FinalizeNamespace(_) => st.namespace_termination,
            Followup::FinalizeCrd(_) => std::time::Duration::ZERO,
        };
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut inner = store.lock();
            match f {
                Followup::FinalizeNamespace(ns) => objects::finalize_namespace(&mut inner, &ns),
                Followup::FinalizeCrd(name) => objects::finalize_crd(&mut inner, &name),
            }
        });
    }
}

async fn resource(
    call: Call<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let Call {
        st,
        method,
        q,
        headers,
        body,
    } = call;
    let addr = parse_addr(group, rest).ok_or_else(ApiError::unknown_resource)?;
    let def = st
        .store
        .lock()
        .registry
        .lookup(group, version, addr.plural)
        .ok_or_else(ApiError::unknown_resource)?;
    if addr.namespace.is_some() && !def.namespaced {
        return Err(ApiError::unknown_resource());
    }
    if def.namespaced && addr.namespace.is_none() && addr.name.is_some() {
        return Err(ApiError::unknown_resource());
    }
    let status = match addr.sub {
        None => false,
        Some("status") if def.status_subresource => true,
        Some(_) => return Err(ApiError::unknown_resource()),
    };
    let t = Target {
        def: def.clone(),
        version: version.to_string(),
        namespace: addr.namespace.unwrap_or("").to_string(),
        name: addr.name.unwrap_or("").to_string(),
        status,
    };
    let verb_allowed = |verb: &str| def.verbs.contains(&verb);
    match (method.clone(), addr.name) {
        (Method::GET, None) => {
            let sel = selection(q, &t)?;
            if truthy(q, "watch") {
                return watch_response(st, t, sel, q);
            }
            let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok());
            let cont = q.get("continue").map(String::as_str);
            // Serialise outside the store lock.
            let list = objects::list(&st.store.lock(), &t, &sel, limit, cont)?;
            Ok(json_response(200, &list))
        }
        (Method::GET, Some(name)) => {
            if truthy(q, "watch") {
                let mut sel = selection(q, &t)?;
                sel.fields = FieldSelector::parse(&format!("metadata.name={name}"), &def)
                    .map_err(ApiError::bad_request)?;
                let t = Target {
                    name: String::new(),
                    ..t
                };
                return watch_response(st, t, sel, q);
            }
            let obj = objects::get(&st.store.lock(), &t)?;
            Ok(json_response(200, &obj))
        }
        (Method::POST, None) if !status => {
            if def.namespaced && t.namespace.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            let o = write_opts(q, headers)?;
            let obj = body_value(&t, headers, &body)?;
            let out = objects::create(&mut st.store.lock(), &t, obj, &o)?;
            Ok(outcome_response(out))
        }
        (Method::PUT, Some(_)) => {
            let o = write_opts(q, headers)?;
            let obj = body_value(&t, headers, &body)?;
            let out = objects::update(&mut st.store.lock(), &t, obj, &o)?;
            Ok(outcome_response(out))
        }
        (Method::PATCH, Some(_)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ptype = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"),
                )
                .with_details(serde_json::json!({}))
            })?;
            let o = write_opts(q, headers)?;
            let out = objects::patch(&mut st.store.lock(), &t, ptype, &body, &o)?;
            Ok(outcome_response(out))
        }
        (Method::DELETE, Some(_)) if !status => {
            let d = delete_opts(q, &body)?;
            let mut out = objects::delete(&mut st.store.lock(), &t, &d)?;
            spawn_followups(st, std::mem::take(&mut out.followups));
            Ok(outcome_response(out))
        }
        (Method::DELETE, None) if !status && verb_allowed("deletecollection") => {
            let sel = selection(q, &t)?;
            let d = delete_opts(q, &body)?;
            let mut out = objects::delete_collection(&mut st.store.lock(), &t, &sel, &d)?;
            spawn_followups(st, std::mem::take(&mut out.followups));
            Ok(outcome_response(out))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn watch_response(
    st: &Arc<AppState>,
    t: Target,
    sel: Selection,
    q: &Query,
) -> Result<Response, ApiError> {
    let start = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => Start::Current,
        Some(rv) => Start::After(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(watch::DEFAULT_TIMEOUT);
    let params = WatchParams {
        target: t,
        selection: sel,
        start,
        send_initial: truthy(q, "sendInitialEvents"),
        bookmarks: truthy(q, "allowWatchBookmarks"),
        timeout,
    };
    let body: Body = watch::start(st.store.clone(), params, st.cancel.clone());
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}
