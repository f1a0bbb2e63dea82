//! The client layer (kube-rs): connection, kind resolution through discovery (refreshed when a
//! kind is missing, so CRDs applied earlier in the run work), server-side apply, reads,
//! patches, deletes, watches that wake assertions, namespaces, holds on shared objects, and
//! what holds a namespace that does not go.
//!
//! Every call here is one request (or a bounded read), with a typed error: it knows nothing of
//! the engine (retries, deadlines, tests) or of steps. Waiting and retrying are the engine's
//! (`engine::cluster_retry`), lifecycles (namespaces, fixtures, cleanup) too.
//!
//! Everything here works the same against a real cluster and the embedded sandbox API server:
//! the sandbox is reached through the same kube client.

pub mod connect;
pub mod controllers;
pub mod holds;
pub mod kubeconfig;
pub mod manifests;
pub mod portforward;
pub mod target;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};

/// The label every object gwtest creates carries, with the run id, for `gwtest gc`.
pub const RUN_LABEL: &str = "gwtest.dev/run";
/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "gwtest";

/// An object a test applied, remembered for cleanup and `replaced` detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Tracked {
    /// `Kind name` or `Kind name -n ns`, for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {} in {ns}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// What went wrong talking to the cluster, by what it means for the caller: worth retrying
/// (`is_transient`), the cluster unusable for this run (`is_unusable`: credentials, TLS,
/// kubeconfig), or an answer about the request itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// No connection, a dropped connection, no answer: the server may come back.
    #[error("cannot reach the Kubernetes API at {server}: {cause}")]
    Unreachable { server: String, cause: String },
    /// The credentials were refused (401) or could not be obtained (exec plugin, token file).
    #[error("credentials for the Kubernetes API at {server}: {cause}")]
    Auth { server: String, cause: String },
    /// The TLS handshake failed (an untrusted or wrong certificate).
    #[error("TLS with the Kubernetes API at {server} failed: {cause}")]
    Tls { server: String, cause: String },
    /// The kubeconfig (or in-cluster configuration) cannot be used.
    #[error("{0}")]
    Config(String),
    /// The server answered with a `kind: Status` error.
    #[error("{message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("the cluster has no kind {kind} in {api_version} (is its CRD applied?)")]
    UnknownKind { api_version: String, kind: String },
    /// An answer gwtest cannot read (not the JSON the API promises).
    #[error("the Kubernetes API at {server} sent an answer gwtest cannot read: {cause}")]
    Decode { server: String, cause: String },
    /// A request gwtest cannot make (a manifest without a name, a namespaced kind without a
    /// namespace).
    #[error("{0}")]
    Invalid(String),
}

impl ClusterError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Worth retrying: the server is busy or briefly unreachable, or an optimistic-concurrency
    /// conflict. Not a 500 that only means the request is wrong (see
    /// [`ClusterError::is_ill_typed_apply`]).
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Unreachable { .. } => true,
            ClusterError::Api { code, .. } if self.is_ill_typed_apply() => {
                debug_assert_eq!(*code, 500);
                false
            }
            ClusterError::Api { code, .. } => matches!(code, 409 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Server-side apply of a manifest that does not fit the kind's schema (a value of the
    /// wrong type, a field the schema does not declare): kube-apiserver answers `500 failed
    /// to create typed patch object (...)`, the same answer however often it is asked.
    pub fn is_ill_typed_apply(&self) -> bool {
        matches!(self, ClusterError::Api { code: 500, message, .. }
            if message.starts_with("failed to create typed patch object"))
    }

    /// The cluster cannot be used by this run at all, whatever is retried: credentials, TLS,
    /// kubeconfig. The run stops starting tests and exits 3.
    pub fn is_unusable(&self) -> bool {
        matches!(
            self,
            ClusterError::Auth { .. } | ClusterError::Tls { .. } | ClusterError::Config(_)
        )
    }

    /// Classify a kube-rs error by its type and its sources (never by its text).
    pub fn from_kube(e: kube::Error, server: &str) -> ClusterError {
        let server = server.to_owned();
        let cause = error_chain(&e);
        match e {
            kube::Error::Api(s) if s.code == 401 => ClusterError::Auth {
                server,
                cause: format!("refused ({} {}): {}", s.code, s.reason, s.message),
            },
            kube::Error::Api(s) => ClusterError::Api {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            kube::Error::Auth(ref a) => ClusterError::Auth {
                server,
                cause: auth_cause(a),
            },
            kube::Error::RustlsTls(_) => ClusterError::Tls { server, cause },
            kube::Error::InferConfig(_)
            | kube::Error::InferKubeconfig(_)
            | kube::Error::TlsRequired
            | kube::Error::ProxyProtocolUnsupported { .. }
            | kube::Error::ProxyProtocolDisabled { .. } => ClusterError::Config(cause),
            kube::Error::SerdeError(_)
            | kube::Error::FromUtf8(_)
            | kube::Error::LinesCodecMaxLineLengthExceeded => {
                ClusterError::Decode { server, cause }
            }
            kube::Error::BuildRequest(_)
            | kube::Error::HttpError(_)
            | kube::Error::Discovery(_) => ClusterError::Invalid(cause),
            // Transport errors: what is underneath decides.
            other => match transport_kind(&other) {
                Transport::Tls => ClusterError::Tls { server, cause },
                Transport::Auth(a) => ClusterError::Auth { server, cause: a },
                Transport::Other => ClusterError::Unreachable { server, cause },
            },
        }
    }
}

enum Transport {
    Tls,
    /// What the credentials failure says.
    Auth(String),
    Other,
}

/// Look through a transport error's sources (io errors included, whose own `source()` skips
/// the error they wrap) for a TLS failure or a credentials failure.
fn transport_kind(e: &(dyn std::error::Error + 'static)) -> Transport {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return Transport::Tls;
        }
        if let Some(a) = err.downcast_ref::<kube::client::AuthError>() {
            return Transport::Auth(auth_cause(a));
        }
        if let Some(kube::Error::Auth(a)) = err.downcast_ref::<kube::Error>() {
            return Transport::Auth(auth_cause(a));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            match transport_kind(inner) {
                Transport::Other => {}
                found => return found,
            }
        }
        next = err.source();
    }
    Transport::Other
}

/// What a credentials failure says, for people. A failed exec plugin is told by its exit
/// status and stderr: kube's own message repeats the plugin's command line with its
/// environment, which may hold secrets.
fn auth_cause(e: &kube::client::AuthError) -> String {
    use kube::client::AuthError;
    match e {
        AuthError::AuthExecRun { out, .. } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said = stderr.trim();
            format!(
                "the exec credential plugin failed ({}){}",
                out.status,
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {}", crate::util::truncate(said, 300))
                }
            )
        }
        AuthError::AuthExecStart(io) => {
            format!("the exec credential plugin could not be started: {io}")
        }
        other => error_chain(other),
    }
}

/// Whether an io error of `kind` is among the error's sources.
pub(crate) fn has_io_kind(e: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == kind {
                return true;
            }
            if let Some(inner) = io.get_ref()
                && has_io_kind(inner, kind)
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}

pub use crate::util::error_chain;

/// A resolved kind.
#[derive(Clone, Debug)]
pub struct Kind {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub has_status: bool,
}

impl Kind {
    /// Namespaces, which need no discovery.
    pub fn namespace() -> Kind {
        Kind {
            ar: namespace_resource(),
            namespaced: false,
            has_status: true,
        }
    }
}

/// How a delete went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Deletion started (the object may linger while finalizers run).
    Started,
    /// It was already gone.
    AlreadyGone,
}

/// A connected cluster.
pub struct Cluster {
    client: kube::Client,
    server: String,
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context in use (`--context`), for the commands shown to people.
    context: Option<String>,
    kinds: Mutex<HashMap<(String, String), Kind>>,
    /// Port-forwards of the run (`port-forward` variables), shared by the suites.
    pub forwards: portforward::Forwards,
    /// The first error that made the cluster unusable (credentials, TLS), once one happened.
    unusable: Mutex<Option<ClusterError>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .finish()
    }
}

/// `group/version` -> (group, version); `v1` -> ("", "v1").
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

impl Cluster {
    pub fn new(client: kube::Client, server: String, kubeconfig: Option<PathBuf>) -> Self {
        Cluster {
            client,
            server,
            kubeconfig,
            context: None,
            kinds: Mutex::new(HashMap::new()),
            forwards: Default::default(),
            unusable: Mutex::new(None),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The API server's URL, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn kubeconfig(&self) -> Option<&Path> {
        self.kubeconfig.as_deref()
    }

    pub fn with_context(mut self, context: Option<&str>) -> Self {
        self.context = context.map(str::to_owned);
        self
    }

    /// `--kubeconfig PATH --context NAME` as this run reaches the cluster, for the kubectl
    /// commands gwtest prints.
    pub fn kubectl_flags(&self) -> String {
        kubectl_flags(self.kubeconfig.as_deref(), self.context.as_deref())
    }

    /// The error that made the cluster unusable for this run, if one happened.
    pub fn unusable(&self) -> Option<ClusterError> {
        self.unusable.lock().expect("poisoned").clone()
    }

    fn err(&self, e: kube::Error) -> ClusterError {
        let e = ClusterError::from_kube(e, &self.server);
        if e.is_unusable() {
            self.unusable
                .lock()
                .expect("poisoned")
                .get_or_insert_with(|| e.clone());
        }
        e
    }

    /// Resolve apiVersion/kind through discovery; a miss is looked up again (never cached), so
    /// kinds registered by a CRD earlier in the run are found.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Kind, ClusterError> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(k) = self.kinds.lock().expect("poisoned").get(&key) {
            return Ok(k.clone());
        }
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok(r) => r,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(ClusterError::UnknownKind {
                    api_version: api_version.into(),
                    kind: kind.into(),
                });
            }
            Err(kube::Error::Discovery(_)) => {
                return Err(ClusterError::UnknownKind {
                    api_version: api_version.into(),
                    kind: kind.into(),
                });
            }
            Err(e) => return Err(self.err(e)),
        };
        let k = Kind {
            namespaced: caps.scope == Scope::Namespaced,
            has_status: caps.subresources.iter().any(|(r, _)| r.plural == "status"),
            ar,
        };
        self.kinds.lock().expect("poisoned").insert(key, k.clone());
        Ok(k)
    }

    /// Forget a resolved kind (its CRD was deleted).
    pub fn forget(&self, api_version: &str, kind: &str) {
        self.kinds
            .lock()
            .expect("poisoned")
            .remove(&(api_version.to_owned(), kind.to_owned()));
    }

    pub fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match (kind.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &kind.ar),
            _ => Api::all_with(self.client.clone(), &kind.ar),
        }
    }

    /// The object, or `None` when it does not exist.
    pub async fn get(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        match self.api(kind, namespace).get_opt(name).await {
            Ok(o) => Ok(o.map(to_value)),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Objects matching a label selector.
    pub async fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let lp = ListParams::default().labels(selector);
        match self.api(kind, namespace).list(&lp).await {
            Ok(l) => Ok(l.items.into_iter().map(to_value).collect()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Server-side apply (field manager `gwtest`, force) of one object. The namespace defaults
    /// to `default_ns` for namespaced kinds; the run label is added.
    pub async fn apply(
        &self,
        mut obj: Value,
        default_ns: Option<&str>,
        run_id: &str,
    ) -> Result<(Kind, Value), ClusterError> {
        let (api_version, kind_name, name) = identity(&obj)?;
        let kind = self.resolve(&api_version, &kind_name).await?;
        let ns = if kind.namespaced {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| default_ns.map(str::to_owned));
            let Some(ns) = ns else {
                return Err(ClusterError::Invalid(format!(
                    "{kind_name} {name} is namespaced and no namespace is set"
                )));
            };
            obj["metadata"]["namespace"] = Value::String(ns.clone());
            Some(ns)
        } else {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("namespace");
            }
            None
        };
        let labels = &mut obj["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[RUN_LABEL] = Value::String(run_id.to_owned());
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        match self
            .api(&kind, ns.as_deref())
            .patch(&name, &pp, &Patch::Apply(&obj))
            .await
        {
            Ok(o) => Ok((kind, to_value(o))),
            Err(e) => Err(self.err(e)),
        }
    }

    /// JSON merge patch, on the object or its status subresource.
    pub async fn merge_patch(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> Result<Value, ClusterError> {
        let api = self.api(kind, namespace);
        let pp = PatchParams::default();
        let r = if status {
            api.patch_status(name, &pp, &Patch::Merge(patch)).await
        } else {
            api.patch(name, &pp, &Patch::Merge(patch)).await
        };
        r.map(to_value).map_err(|e| self.err(e))
    }

    /// Delete an object (background propagation).
    pub async fn delete(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Deleted, ClusterError> {
        self.delete_with(kind, namespace, name, DeleteParams::background())
            .await
    }

    /// Delete an object only if it is still at `resource_version` (409 otherwise): what is
    /// decided from a read is done to what was read.
    pub async fn delete_at(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        resource_version: &str,
    ) -> Result<Deleted, ClusterError> {
        let mut dp = DeleteParams::background();
        dp.preconditions = Some(Preconditions {
            resource_version: Some(resource_version.to_owned()),
            uid: None,
        });
        self.delete_with(kind, namespace, name, dp).await
    }

    async fn delete_with(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        dp: DeleteParams,
    ) -> Result<Deleted, ClusterError> {
        match self.api(kind, namespace).delete(name, &dp).await {
            Ok(_) => Ok(Deleted::Started),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::AlreadyGone),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Create a namespace labelled with the run id (and with `annotations`).
    pub async fn create_namespace(
        &self,
        name: &str,
        run_id: &str,
        annotations: &[(String, String)],
    ) -> Result<Value, ClusterError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &namespace_resource());
        let mut obj = DynamicObject::new(name, &namespace_resource());
        obj.metadata.labels = Some([(RUN_LABEL.to_owned(), run_id.to_owned())].into());
        if !annotations.is_empty() {
            obj.metadata.annotations = Some(annotations.iter().cloned().collect());
        }
        api.create(&PostParams::default(), &obj)
            .await
            .map(to_value)
            .map_err(|e| self.err(e))
    }

    /// What keeps a terminating namespace: the given objects still in it (with their
    /// finalizers) and the namespace's own conditions saying what remains (a real API server
    /// sets them). Best effort, bounded: this runs after a deadline already ran out.
    pub async fn holding(&self, tracked: &[Tracked], ns: &str) -> Vec<String> {
        let look = async {
            let mut out = Vec::new();
            for t in tracked.iter().rev() {
                if t.namespace.as_deref() != Some(ns) {
                    continue;
                }
                let Ok(kind) = self.resolve(&t.api_version, &t.kind).await else {
                    continue;
                };
                if let Ok(Some(o)) = self.get(&kind, Some(ns), &t.name).await {
                    let fin = finalizers(&o);
                    out.push(if fin.is_empty() {
                        format!("{} {}", t.kind, t.name)
                    } else {
                        format!("{} {} (finalizers: {})", t.kind, t.name, fin.join(", "))
                    });
                }
            }
            if let Ok(Some(n)) = self.get(&Kind::namespace(), None, ns).await {
                for c in n
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let remaining = c
                        .get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.ends_with("Remaining"));
                    if remaining
                        && c.get("status").and_then(Value::as_str) == Some("True")
                        && let Some(m) = c.get("message").and_then(Value::as_str)
                    {
                        out.push(m.to_owned());
                    }
                }
            }
            out
        };
        tokio::time::timeout(Duration::from_secs(5), look)
            .await
            .unwrap_or_default()
    }
}

/// An object's finalizers.
pub fn finalizers(o: &Value) -> Vec<&str> {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether an object is being deleted (a deletionTimestamp, or a Terminating namespace).
pub fn is_deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
        || o.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}

/// What to remember about an applied object.
pub fn tracked(obj: &Value) -> Tracked {
    let (api_version, kind_name, name) = identity(obj).unwrap_or_default();
    Tracked {
        api_version,
        kind: kind_name,
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name,
        uid: obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

pub fn namespace_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces")
}

/// An object as JSON, as serde would write it (type fields, metadata, then the rest), but
/// with the body moved, not re-serialized: every assert attempt reads objects through here.
pub fn to_value(o: DynamicObject) -> Value {
    let DynamicObject {
        types,
        metadata,
        data,
    } = o;
    let Value::Object(data) = data else {
        return serde_json::to_value(DynamicObject {
            types,
            metadata,
            data,
        })
        .unwrap_or(Value::Null);
    };
    let mut out = serde_json::Map::new();
    if let Some(t) = types {
        out.insert("apiVersion".to_owned(), Value::String(t.api_version));
        out.insert("kind".to_owned(), Value::String(t.kind));
    }
    out.insert(
        "metadata".to_owned(),
        serde_json::to_value(metadata).unwrap_or(Value::Null),
    );
    out.extend(data);
    Value::Object(out)
}

/// apiVersion, kind and metadata.name of a manifest.
pub fn identity(obj: &Value) -> Result<(String, String, String), ClusterError> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let api_version = s("/apiVersion")
        .ok_or_else(|| ClusterError::Invalid("manifest has no apiVersion".into()))?;
    let kind = s("/kind").ok_or_else(|| ClusterError::Invalid("manifest has no kind".into()))?;
    let name = s("/metadata/name")
        .ok_or_else(|| ClusterError::Invalid(format!("{kind} manifest has no metadata.name")))?;
    Ok((api_version, kind, name))
}

/// `gwtest-<test>-<6 random chars>`, at most 63 characters, a valid DNS label.
pub fn namespace_name(test: &str) -> String {
    let mut base: String = test
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let base = base.trim_matches('-');
    // "gwtest-" (7) + base + "-" (1) + suffix (6) <= 63
    let base: String = base.chars().take(63 - 14).collect();
    let base = base.trim_end_matches('-');
    let suffix = crate::util::random_suffix(6);
    if base.is_empty() {
        format!("gwtest-{suffix}")
    } else {
        format!("gwtest-{base}-{suffix}")
    }
}

/// `--kubeconfig PATH` for kubectl commands shown to people.
pub fn kubeconfig_flag(kubeconfig: Option<&Path>) -> String {
    kubeconfig
        .map(|k| {
            format!(
                " --kubeconfig {}",
                crate::util::shell_quote(&k.display().to_string())
            )
        })
        .unwrap_or_default()
}

/// `--kubeconfig PATH --context NAME` for kubectl commands shown to people.
pub fn kubectl_flags(kubeconfig: Option<&Path>, context: Option<&str>) -> String {
    let mut flags = kubeconfig_flag(kubeconfig);
    if let Some(c) = context {
        flags.push_str(&format!(" --context {}", crate::util::shell_quote(c)));
    }
    flags
}

/// Commands a person can run to look at a kept or paused namespace: the usual kinds plus
/// every kind the test applied there (`all` does not cover custom resources). `flags` are the
/// run's `kubectl_flags`.
pub fn inspect_commands(namespace: &str, flags: &str, tracked: &[Tracked]) -> Vec<String> {
    let kc = flags;
    let mut kinds: Vec<String> = ["all", "gateways", "httproutes", "configmaps"]
        .map(str::to_owned)
        .to_vec();
    let covered = [
        "configmap",
        "gateway.gateway.networking.k8s.io",
        "httproute.gateway.networking.k8s.io",
    ];
    for t in tracked
        .iter()
        .filter(|t| t.namespace.as_deref() == Some(namespace))
    {
        // kubectl takes a kind's lower-case name (its singular) qualified by the group.
        let kind = t.kind.to_ascii_lowercase();
        let name = match split_api_version(&t.api_version).0 {
            "" => kind,
            group => format!("{kind}.{group}"),
        };
        if !covered.contains(&name.as_str()) && !kinds.contains(&name) {
            kinds.push(name);
        }
    }
    vec![
        format!("kubectl{kc} get {} -n {namespace}", kinds.join(",")),
        format!("kubectl{kc} get events -n {namespace} --sort-by=.lastTimestamp"),
        format!("kubectl{kc} delete namespace {namespace}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_convert_as_serde_writes_them() {
        let raw = [
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v"}}),
            // A list item: no type fields.
            json!({"metadata": {"name": "item", "resourceVersion": "7"},
                   "spec": {"port": 80}, "status": {"conditions": [{"type": "Ready"}]}}),
            json!({"apiVersion": "v1", "kind": "Namespace"}),
        ];
        let objects = raw
            .iter()
            .map(|r| serde_json::from_value(r.clone()).unwrap())
            .chain([DynamicObject::new("ns", &namespace_resource())]);
        for o in objects {
            let want = serde_json::to_value(&o).unwrap();
            let got = to_value(o);
            // Key order too: it is what a failure report shows.
            assert_eq!(got.to_string(), want.to_string());
        }
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let n = namespace_name(
            "Spec preserved / with CAPS and a very long name that goes on and on and on",
        );
        assert!(n.len() <= 63, "{n}");
        assert!(n.starts_with("gwtest-spec-preserved-with-caps"), "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{n}"
        );
        assert!(!n.contains("--"), "{n}");
        assert!(namespace_name("!!!").starts_with("gwtest-"));
        assert_ne!(namespace_name("a"), namespace_name("a"));

        let re = regex::Regex::new("^gwtest-[a-z0-9]([a-z0-9-]*[a-z0-9])?-[a-z0-9]{6}$").unwrap();
        // As long as a label may be, never longer; a cut never leaves a dash before the suffix.
        let long = namespace_name(&"a".repeat(100));
        assert_eq!(long.len(), 63, "{long}");
        let cut = namespace_name(&format!("{}-b", "a".repeat(48)));
        assert!(re.is_match(&cut), "{cut}");
        for name in ["Spec_Preserved", "t01", "--x--", "route.v2/tls"] {
            let n = namespace_name(name);
            assert!(re.is_match(&n), "{name}: {n}");
        }
        assert!(namespace_name("Spec_Preserved").starts_with("gwtest-spec-preserved-"));
        assert!(namespace_name("route.v2/tls").starts_with("gwtest-route-v2-tls-"));
    }

    #[test]
    fn inspect_commands_list_the_kinds_the_test_applied() {
        let t = |api_version: &str, kind: &str, ns: &str| Tracked {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some(ns.into()),
            name: "x".into(),
            uid: "u".into(),
        };
        let tracked = [
            t("demo.gwtest.dev/v1alpha1", "Upstream", "ns1"),
            t("v1", "ConfigMap", "ns1"),
            t("v1", "Secret", "ns1"),
            t("gateway.networking.k8s.io/v1", "HTTPRoute", "ns1"),
            t("demo.gwtest.dev/v1alpha1", "Upstream", "ns1"),
            t("example.com/v1", "Other", "elsewhere"),
        ];
        let c = inspect_commands(
            "ns1",
            &kubectl_flags(Some(Path::new("/k c")), None),
            &tracked,
        );
        assert_eq!(
            c,
            [
                "kubectl --kubeconfig '/k c' get all,gateways,httproutes,configmaps,upstream.demo.gwtest.dev,secret -n ns1",
                "kubectl --kubeconfig '/k c' get events -n ns1 --sort-by=.lastTimestamp",
                "kubectl --kubeconfig '/k c' delete namespace ns1",
            ]
        );
        assert_eq!(
            inspect_commands("ns1", "", &[])[0],
            "kubectl get all,gateways,httproutes,configmaps -n ns1"
        );
        assert_eq!(
            inspect_commands(
                "ns1",
                &kubectl_flags(Some(Path::new("/k")), Some("kind-a b")),
                &[]
            )[2],
            "kubectl --kubeconfig /k --context 'kind-a b' delete namespace ns1"
        );
    }

    #[test]
    fn transient_errors_are_retried_and_the_rest_are_not() {
        let api = |code| ClusterError::Api {
            code,
            reason: "R".into(),
            message: "m".into(),
        };
        for code in [409, 429, 500, 502, 503, 504] {
            assert!(api(code).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!api(code).is_transient(), "{code}");
        }
        assert!(api(404).is_not_found());
        let unreachable = ClusterError::Unreachable {
            server: "https://x".into(),
            cause: "refused".into(),
        };
        assert!(unreachable.is_transient());
        assert_eq!(
            unreachable.to_string(),
            "cannot reach the Kubernetes API at https://x: refused"
        );
        let unknown = ClusterError::UnknownKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
        };
        assert!(!unknown.is_transient());
        assert_eq!(
            unknown.to_string(),
            "the cluster has no kind Widget in example.com/v1 (is its CRD applied?)"
        );
    }

    /// Each kind of kube error keeps its kind: an outage is retried, credentials, TLS, a bad
    /// kubeconfig or an unreadable answer are not (and are not "unreachable").
    #[test]
    fn kube_errors_keep_their_kind() {
        use kube::core::Status;
        let server = "https://k:6443";
        let classify = |e: kube::Error| ClusterError::from_kube(e, server);

        let unauthorized = classify(kube::Error::Api(
            Status::failure("Unauthorized", "Unauthorized")
                .with_code(401)
                .boxed(),
        ));
        assert!(
            matches!(&unauthorized, ClusterError::Auth { cause, .. } if cause == "refused (401 Unauthorized): Unauthorized"),
            "{unauthorized:?}"
        );
        assert!(unauthorized.is_unusable() && !unauthorized.is_transient());
        assert_eq!(
            unauthorized.to_string(),
            "credentials for the Kubernetes API at https://k:6443: refused (401 Unauthorized): Unauthorized"
        );

        let exec = classify(kube::Error::Auth(kube::client::AuthError::ExecPluginFailed));
        assert!(matches!(exec, ClusterError::Auth { .. }), "{exec:?}");
        assert!(exec.is_unusable() && !exec.is_transient());

        // An auth error reported by a middleware, wrapped as a service error.
        let wrapped = classify(kube::Error::Service(Box::new(kube::Error::Auth(
            kube::client::AuthError::ExecPluginFailed,
        ))));
        assert!(matches!(wrapped, ClusterError::Auth { .. }), "{wrapped:?}");

        // rustls' certificate error inside the io error of the TLS handshake.
        let tls = classify(kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature),
        ))));
        assert!(matches!(tls, ClusterError::Tls { .. }), "{tls:?}");
        assert!(tls.is_unusable() && !tls.is_transient());

        let refused = classify(kube::Error::Service(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))));
        assert!(
            matches!(refused, ClusterError::Unreachable { .. }),
            "{refused:?}"
        );
        assert!(refused.is_transient() && !refused.is_unusable());

        let config = classify(kube::Error::InferKubeconfig(
            kube::config::KubeconfigError::CurrentContextNotSet,
        ));
        assert!(matches!(config, ClusterError::Config(_)), "{config:?}");
        assert!(config.is_unusable() && !config.is_transient());

        let serde = classify(kube::Error::SerdeError(
            serde_json::from_str::<Value>("{").unwrap_err(),
        ));
        assert!(matches!(serde, ClusterError::Decode { .. }), "{serde:?}");
        assert!(!serde.is_transient() && !serde.is_unusable());

        let conflict = classify(kube::Error::Api(
            Status::failure("changed", "Conflict")
                .with_code(409)
                .boxed(),
        ));
        assert_eq!(conflict.code(), Some(409));
        assert!(conflict.is_transient());
        let forbidden = classify(kube::Error::Api(
            Status::failure("no", "Forbidden").with_code(403).boxed(),
        ));
        assert_eq!(forbidden.code(), Some(403));
        assert!(!forbidden.is_transient() && !forbidden.is_unusable());
    }

    #[test]
    fn timeouts_are_found_among_the_sources() {
        let timed_out = kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline",
        )));
        assert!(has_io_kind(&timed_out, std::io::ErrorKind::TimedOut));
        let refused = kube::Error::Service(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(!has_io_kind(&refused, std::io::ErrorKind::TimedOut));
    }

    #[test]
    fn deleting_objects_are_recognised() {
        assert!(is_deleting(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
        ));
        assert!(is_deleting(&json!({"status": {"phase": "Terminating"}})));
        assert!(!is_deleting(
            &json!({"metadata": {"name": "x"}, "status": {"phase": "Active"}})
        ));
        let t = tracked(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "uid": "u"}}));
        assert_eq!(t.describe(), "ConfigMap c in n");
        assert_eq!(
            finalizers(&json!({"metadata": {"finalizers": ["a/b"]}})),
            ["a/b"]
        );
    }

    #[test]
    fn error_chains_skip_repeated_causes() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "client error (Connect): tcp connect error",
            Some(Box::new(E(
                "tcp connect error",
                Some(Box::new(E("Connection refused", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "client error (Connect): tcp connect error: Connection refused"
        );
    }

    #[test]
    fn api_versions_split() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(
            split_api_version("gateway.networking.k8s.io/v1"),
            ("gateway.networking.k8s.io", "v1")
        );
    }
}
