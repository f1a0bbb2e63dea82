//! Cluster access (kube-rs): connection, kind resolution through discovery (refreshed when a
//! kind is missing, so CRDs applied earlier in the run work), server-side apply, reads,
//! patches, delete-and-wait, watches that wake assertions, namespaces and cleanup.
//!
//! Everything here works the same against a real cluster and the embedded sandbox API server:
//! the sandbox is reached through the same kube client.

pub mod connect;
pub mod gc;
pub mod kubeconfig;
pub mod manifests;
pub mod suite;
pub mod target;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::engine::retry::{self, AttemptObserver, Class, GaveUp, Limits, Miss, Policy};

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

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the Kubernetes API at {server}: {cause}")]
    Unreachable { server: String, cause: String },
    #[error("{message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("the cluster has no kind {kind} in {api_version} (is its CRD applied?)")]
    UnknownKind { api_version: String, kind: String },
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
    /// conflict.
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Unreachable { .. } => true,
            ClusterError::Api { code, .. } => matches!(code, 409 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    pub fn from_kube(e: kube::Error, server: &str) -> ClusterError {
        match e {
            kube::Error::Api(s) => ClusterError::Api {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => ClusterError::Unreachable {
                server: server.to_owned(),
                cause: error_chain(&other),
            },
        }
    }
}

pub use crate::util::error_chain;

/// What a failed cluster call means to the retry engine, for every cluster step and suite
/// setup: a kind not served yet, a missing object and transient errors are worth waiting for;
/// anything else the server refused is final, with its message.
pub fn miss(e: &ClusterError, what: &str) -> Miss {
    match e {
        ClusterError::UnknownKind { .. } => Miss::new(
            Class::NotFound,
            "kind not served (yet)",
            format!("{what}: {e}"),
        ),
        e if e.is_not_found() => Miss::new(Class::NotFound, "not found", format!("{what}: {e}")),
        e if e.is_transient() => Miss::new(Class::ApiError, "API error", format!("{what}: {e}")),
        ClusterError::Api {
            code,
            reason,
            message,
        } => Miss::fatal(
            Class::ApiError,
            format!("{what} was rejected: {code} {reason}: {message}"),
        ),
        other => Miss::fatal(Class::ApiError, format!("{what}: {other}")),
    }
}

/// A resolved kind.
#[derive(Clone, Debug)]
pub struct Kind {
    pub ar: ApiResource,
    pub namespaced: bool,
    pub has_status: bool,
}

/// A connected cluster.
pub struct Cluster {
    client: kube::Client,
    server: String,
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context in use (`--context`), for the commands shown to people.
    context: Option<String>,
    kinds: Mutex<HashMap<(String, String), Kind>>,
    pub(crate) suites: suite::SuiteRegistry,
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
            suites: Default::default(),
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

    fn err(&self, e: kube::Error) -> ClusterError {
        ClusterError::from_kube(e, &self.server)
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

    /// Delete an object; `Ok(false)` when it was already gone.
    pub async fn delete(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, ClusterError> {
        let dp = DeleteParams::background();
        match self.api(kind, namespace).delete(name, &dp).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// One attempt at "these objects are gone": a miss naming the first one still there.
    pub async fn check_gone(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        names: &[String],
    ) -> Result<(), Miss> {
        for n in names {
            let what = format!("{} {n}", kind.ar.kind);
            if let Some(o) = self
                .get(kind, namespace, n)
                .await
                .map_err(|e| miss(&e, &what))?
            {
                let fin = o
                    .pointer("/metadata/finalizers")
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "none".into());
                return Err(Miss::new(
                    Class::Field,
                    "still exists",
                    format!("{what} still exists (finalizers: {fin})"),
                ));
            }
        }
        Ok(())
    }

    /// Wait, by the retry engine woken by a watch, until every named object is gone.
    pub async fn wait_gone(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        names: &[String],
        limits: &Limits,
        observer: &mut dyn AttemptObserver,
    ) -> Result<u32, Box<GaveUp>> {
        let one = match names {
            [n] => Some(n.as_str()),
            _ => None,
        };
        let changes = watch::Changes::start(self, kind, namespace, one, None);
        let mut limits = limits.clone();
        limits.wake = Some(changes.notify.clone());
        let timeout = limits.deadline().saturating_duration_since(Instant::now());
        let policy = Policy {
            timeout,
            interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(1),
            consecutive: 1,
            hold: None,
        };
        let what = match names {
            [n] => format!("{} {n}", kind.ar.kind),
            _ => format!("{} {}", names.len(), kind.ar.plural),
        };
        let pending = format!("waiting for {what} to be gone");
        retry::eventually(&policy, &limits, &pending, observer, |_| {
            self.check_gone(kind, namespace, names)
        })
        .await
        .map(|(_, h)| h.attempts)
    }

    /// `wait_gone` for cleanup: bounded by `deadline`, deaf to Ctrl-C (cleanup is what runs
    /// after it).
    pub(crate) async fn wait_gone_until(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        deadline: Instant,
    ) -> Result<(), String> {
        let limits = Limits::for_step(
            Instant::now(),
            deadline.saturating_duration_since(Instant::now()),
            deadline,
            deadline.saturating_duration_since(Instant::now()),
            tokio_util::sync::CancellationToken::new(),
        );
        self.wait_gone(
            kind,
            namespace,
            &[name.to_owned()],
            &limits,
            &mut |_: &retry::AttemptRecord| {},
        )
        .await
        .map(|_| ())
        .map_err(|g| {
            g.last
                .map(|m| m.detail)
                .unwrap_or_else(|| format!("{} {name} still exists", kind.ar.kind))
        })
    }

    /// Create a namespace labelled with the run id.
    pub async fn create_namespace(
        &self,
        name: &str,
        run_id: &str,
        deadline: Instant,
    ) -> Result<(), String> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &namespace_resource());
        let mut obj = DynamicObject::new(name, &namespace_resource());
        obj.metadata.labels = Some([(RUN_LABEL.to_owned(), run_id.to_owned())].into());
        let pp = PostParams::default();
        match tokio::time::timeout_at(deadline, api.create(&pp, &obj)).await {
            Err(_) => Err(format!("timed out creating namespace {name}")),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.err(e).to_string()),
        }
    }

    /// Delete a namespace and wait until it is gone (Terminating -> 404).
    pub async fn delete_namespace(&self, name: &str, deadline: Instant) -> Result<(), String> {
        let kind = Kind {
            ar: namespace_resource(),
            namespaced: false,
            has_status: true,
        };
        let del = self.delete(&kind, None, name);
        match tokio::time::timeout_at(deadline, del).await {
            Err(_) => return Err(format!("timed out deleting namespace {name}")),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(_)) => {}
        }
        self.wait_gone_until(&kind, None, name, deadline)
            .await
            .map_err(|_| {
                format!("namespace {name} was still terminating when cleanup-timeout ran out")
            })
    }

    /// Delete tracked objects newest first, then the namespace, and wait until gone.
    pub async fn cleanup(
        &self,
        tracked: &[Tracked],
        namespace: Option<&str>,
        deadline: Instant,
    ) -> Result<(), String> {
        // Every call inside has the deadline too; this bounds the whole, whatever the server
        // does (a dead cluster included).
        let grace = Duration::from_secs(2);
        match tokio::time::timeout_at(
            deadline + grace,
            self.cleanup_inner(tracked, namespace, deadline),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(
                "cleanup did not finish within cleanup-timeout (is the API server answering?)"
                    .into(),
            ),
        }
    }

    async fn cleanup_inner(
        &self,
        tracked: &[Tracked],
        namespace: Option<&str>,
        deadline: Instant,
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        for t in tracked.iter().rev() {
            // Objects inside the namespace go with it; delete the others one by one.
            if namespace.is_some() && t.namespace.as_deref() == namespace {
                continue;
            }
            let kind = match self.resolve(&t.api_version, &t.kind).await {
                Ok(k) => k,
                Err(ClusterError::UnknownKind { .. }) => continue,
                Err(e) => {
                    problems.push(format!("{} {}: {e}", t.kind, t.name));
                    continue;
                }
            };
            let ns = t.namespace.as_deref();
            match tokio::time::timeout_at(deadline, self.delete(&kind, ns, &t.name)).await {
                Err(_) => problems.push(format!("{} {}: timed out", t.kind, t.name)),
                Ok(Err(e)) => problems.push(format!("{} {}: {e}", t.kind, t.name)),
                Ok(Ok(_)) => {
                    if let Err(e) = self.wait_gone_until(&kind, ns, &t.name, deadline).await {
                        problems.push(e.to_string());
                    }
                }
            }
        }
        if let Some(ns) = namespace
            && let Err(e) = self.delete_namespace(ns, deadline).await
        {
            let holding = self.holding(tracked, ns).await;
            if holding.is_empty() {
                problems.push(e);
            } else {
                problems.push(format!("{e}; still there: {}", holding.join("; ")));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// What keeps a terminating namespace: the test's objects still in it (with their
    /// finalizers) and the namespace's own conditions saying what remains (a real API server
    /// sets them). Best effort, bounded: this runs after cleanup-timeout already ran out.
    async fn holding(&self, tracked: &[Tracked], ns: &str) -> Vec<String> {
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
                    let fin: Vec<&str> = o
                        .pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .map(|f| f.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    out.push(if fin.is_empty() {
                        format!("{} {}", t.kind, t.name)
                    } else {
                        format!("{} {} (finalizers: {})", t.kind, t.name, fin.join(", "))
                    });
                }
            }
            let ns_kind = Kind {
                ar: namespace_resource(),
                namespaced: false,
                has_status: true,
            };
            if let Ok(Some(n)) = self.get(&ns_kind, None, ns).await {
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

pub fn namespace_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces")
}

pub fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
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
