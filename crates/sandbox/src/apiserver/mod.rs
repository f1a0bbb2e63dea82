//! The embedded Kubernetes API server of the sandbox (DESIGN §4 item 1).
//!
//! An in-memory API server on loopback that real clients use unchanged: kube-rs (typed and
//! dynamic APIs, discovery, server-side apply, patches, the status subresource, watches and
//! `kube::runtime::watcher`) and kubectl (get, create, client-side and server-side apply,
//! patch, wait, delete). Its answers follow a real kube-apiserver's, as recorded in
//! `tests/golden/apiserver/` (status codes, `kind: Status` bodies, generation and
//! resourceVersion semantics, CRD establishment, watch events, namespace termination).
//!
//! # Interface
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
//! let server = ApiServer::start(ApiServerConfig::default()).await?; // TLS on 127.0.0.1:0
//! server.apply_manifest(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "seed", "namespace": "default"}, "data": {"k": "v"}
//! }))?;
//! let client = kube::Client::try_from(server.kube_config())?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?; // for kubectl
//! # drop(client);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! - [`ApiServer::start`] binds `cfg.addr` (default `127.0.0.1:0`), serves HTTPS with a CA
//!   and certificate made at start (or plain HTTP with `tls: false`), and requires the bearer
//!   token `cfg.token` (a random one when `None`) on every request (401 otherwise).
//! - [`ApiServer::url`], [`ApiServer::token`]; [`ApiServer::kubeconfig_yaml`] /
//!   [`ApiServer::write_kubeconfig`] give a kubeconfig (context `gwtest-sandbox`, namespace
//!   `default`, the CA as `certificate-authority-data`) that kubectl and kube-rs accept;
//!   [`ApiServer::kube_config`] is the same as a `kube::Config`.
//! - [`ApiServer::apply_manifest`] server-side applies an object (or a `kind: List`) in
//!   process, as field manager `gwtest-sandbox` with force: CRDs applied this way are
//!   established (discovery, storage) before it returns.
//! - [`ApiServer::compact_history`] forgets the change history: open watches end with 410
//!   Expired and clients re-list (for tests of watch recovery).
//! - [`ApiServer::shutdown`] stops accepting, ends watches cleanly and waits (bounded) for
//!   connections to close.
//! - [`ApiServer::stop_serving`] / [`ApiServer::serve_again`]: the server goes away
//!   (connections refused) and comes back on the same address, keeping what it stores, as a
//!   real API server restarting does (for tests of outages).
//! - `cfg.namespace_termination`: how long a deleted namespace stays `Terminating` before its
//!   contents and itself go (a real namespace controller takes ~5 s; default: at once).
//!
//! # Behaviour
//!
//! - Kinds: the built-ins of [`resources::builtin_defs`] (namespaces, configmaps, secrets,
//!   services, serviceaccounts, pods, events, endpoints, deployments, leases, RBAC, CRDs, ...)
//!   stored as plain JSON, plus whatever CRDs register. Namespaces `default`, `kube-system`,
//!   `kube-public` and `kube-node-lease` exist at start. Nothing runs: pods stay as written.
//! - Discovery in the legacy JSON form (kubectl falls back to it from aggregated
//!   discovery; `kube::Discovery::run` works, `run_aggregated` does not).
//! - CRDs: a created CRD gets `NamesAccepted`/`Established` in the same request (the create
//!   answer itself shows `conditions: null`, as a real server's does); its kind is served at
//!   once. Its schema drives pruning of unknown fields (`fieldValidation=Strict` answers
//!   400, `Warn` a `Warning` header), defaulting (status included), the structural schema's
//!   checks and every `x-kubernetes-validations` CEL rule (422), through gwtest-schema's
//!   engine (rules compiled once per version, on first use); server-side apply of an
//!   ill-typed configuration is the real server's 500 `failed to create typed patch object`.
//!   Deleting a CRD marks it Terminating, deletes its objects, then removes it and its kind.
//! - Writes: create, update (stale resourceVersion -> 409), JSON merge patch, JSON patch,
//!   strategic merge patch (built-ins; keyed lists for the well-known fields), server-side
//!   apply (see [`fields`] for the simplified ownership model), `dryRun=All`, the status
//!   subresource (main writes keep status, /status writes keep everything else),
//!   `generation` (+1 when anything but metadata changes, status excepted for kinds with a
//!   status subresource), one global
//!   `resourceVersion` counter (starting at the start time in milliseconds, so a restarted
//!   server's versions are above its predecessor's), no-op writes not bumping it.
//! - Deletion: finalizers hold an object (deletionTimestamp set) until an update removes the
//!   last one; namespaces turn Terminating, their contents are deleted, then they go (creating
//!   in a Terminating namespace is 403); owner references are garbage-collected in the
//!   background (a Foreground or Orphan propagation policy is treated as Background).
//! - Watches (`watch=1|true`): from a resourceVersion (410 Expired ERROR event when older
//!   than the last [`store::HISTORY_CAPACITY`] changes; one not reached yet is waited for
//!   up to 3 s, then a 504 ResourceVersionTooLarge ERROR event), or the current state as ADDED;
//!   `sendInitialEvents`, BOOKMARKs every second with `allowWatchBookmarks`,
//!   `timeoutSeconds`, label and field selectors (objects entering/leaving a selection are
//!   ADDED/DELETED).
//! - Encodings: JSON in and out (YAML accepted in request bodies). Protobuf request bodies are
//!   decoded for the kinds `kubectl create namespace|configmap|secret|serviceaccount` sends
//!   that way (kubectl >= 1.33); answers are always JSON, which clients accept.
//! - OpenAPI: just what kubectl needs to leave validation to the server ([`openapi`]); no
//!   schemas (`kubectl explain` does not work).
//! - TLS or plain HTTP: kube-rs sends the token either way; kubectl sends bearer tokens only
//!   over TLS, so use the default (TLS) for kubectl. Verified with kubectl 1.27 to 1.33.
//! - Not checked: label syntax, most built-in field validation (only names).
//!   `events.k8s.io/v1` and core `v1` Events are stored apart.
//! - Not served: Table output (kubectl prints NAME/AGE columns itself), aggregated discovery,
//!   exec/proxy/scale subresources. `pods/portforward` (WebSocket, `v4.channel.k8s.io`) and
//!   `pods/log` are served for the pods a registered [`pods::Kubelet`] runs (the demo
//!   gateway's data-plane pods); other pods never run.

pub mod crd;
pub mod discovery;
pub mod fields;
mod gojson;
pub mod handlers;
pub mod kubeconfig;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pods;
mod protobuf;
pub mod resources;
pub mod selectors;
mod server;
pub mod status;
pub mod store;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use handlers::AppState;
use objects::{Target, WriteOpts};
use patch::PatchType;
use store::Store;

/// How to start the API server.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    /// Listen address; default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// HTTPS with a generated certificate (default) or plain HTTP.
    pub tls: bool,
    /// The bearer token clients must send; a random one when `None`.
    pub token: Option<String>,
    /// How long a deleted namespace stays Terminating before its contents and itself go, as
    /// a real namespace controller takes (~5 s); zero (default): at once.
    pub namespace_termination: std::time::Duration,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        ApiServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: None,
            namespace_termination: std::time::Duration::ZERO,
        }
    }
}

/// A running API server.
pub struct ApiServer {
    url: String,
    token: String,
    ca_pem: Option<String>,
    ca_der: Option<Vec<u8>>,
    store: Arc<Store>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
    kubelet: pods::KubeletSlot,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    namespace_termination: std::time::Duration,
}

/// Field manager of objects the sandbox itself applies.
pub const SANDBOX_MANAGER: &str = "gwtest-sandbox";

const SEED_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// Binds, seeds the default namespaces and starts serving.
    pub async fn start(cfg: ApiServerConfig) -> anyhow::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind(cfg.addr)
            .await
            .with_context(|| format!("binding the API server to {}", cfg.addr))?;
        let local_addr = listener.local_addr()?;
        let token = match cfg.token {
            Some(t) if !t.is_empty() => t,
            Some(_) => bail!("the API server token must not be empty"),
            None => format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        };
        let tls = if cfg.tls {
            Some(tls::generate().context("making the API server certificate")?)
        } else {
            None
        };
        let scheme = if cfg.tls { "https" } else { "http" };
        let url = format!("{scheme}://{local_addr}");

        let store = Arc::new(Store::new());
        {
            let mut inner = store.lock();
            let ns = inner
                .registry
                .lookup("", "v1", "namespaces")
                .context("namespaces are built in")?;
            let opts = WriteOpts {
                manager: "kube-apiserver".into(),
                ..WriteOpts::default()
            };
            for name in SEED_NAMESPACES {
                let t = Target {
                    def: ns.clone(),
                    version: "v1".into(),
                    namespace: String::new(),
                    name: String::new(),
                    status: false,
                };
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                objects::create(&mut inner, &t, body, &opts)
                    .map_err(|e| anyhow::anyhow!("seeding namespace {name}: {e}"))?;
            }
            inner.seal_history();
        }

        let mut server = ApiServer {
            url,
            token,
            ca_pem: tls.as_ref().map(|t| t.ca_pem.clone()),
            ca_der: tls.as_ref().map(|t| t.ca_der.clone()),
            store,
            cancel: CancellationToken::new(),
            task: None,
            local_addr,
            kubelet: pods::KubeletSlot::default(),
            acceptor: tls.map(|t| t.acceptor),
            namespace_termination: cfg.namespace_termination,
        };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        self.cancel = CancellationToken::new();
        let state = Arc::new(AppState {
            store: self.store.clone(),
            token: self.token.clone(),
            cancel: self.cancel.clone(),
            server_address: self.local_addr.to_string(),
            namespace_termination: self.namespace_termination,
        });
        let router =
            handlers::router(state.clone()).merge(pods::router(state, self.kubelet.clone()));
        self.task = Some(tokio::spawn(server::serve(
            listener,
            router,
            self.acceptor.clone(),
            self.cancel.clone(),
        )));
    }

    /// Goes away as a real API server does while it restarts: stops accepting (connections
    /// are refused), ends watches and closes connections. What it stores stays (as in etcd),
    /// and so does the namespace controller's work in progress. [`ApiServer::serve_again`]
    /// comes back on the same address with the same certificate and token.
    pub async fn stop_serving(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves again after [`ApiServer::stop_serving`], on the same address (retrying the bind
    /// for a moment while the old socket goes).
    pub async fn serve_again(&mut self) -> anyhow::Result<()> {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.local_addr).await {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("binding {} again", self.local_addr));
                }
            }
        };
        self.serve(listener);
        Ok(())
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The CA certificate (PEM) clients must trust; None for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url, &self.token, self.ca_pem.as_deref())
    }

    /// Writes the kubeconfig (mode 0600: it holds the token).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut f = opts.open(path)?;
        f.write_all(self.kubeconfig_yaml().as_bytes())
    }

    /// A client configuration for this server (`kube::Client::try_from(server.kube_config())`).
    pub fn kube_config(&self) -> kube::Config {
        let uri = self.url.parse().expect("the server URL is a valid URI");
        let mut c = kube::Config::new(uri);
        c.default_namespace = "default".into();
        c.root_cert = self.ca_der.clone().map(|d| vec![d]);
        // AuthInfo keeps the token as a secrecy::SecretString; build it through serde.
        c.auth_info =
            serde_json::from_value(json!({"token": self.token})).expect("an AuthInfo with a token");
        c
    }

    /// Server-side applies `obj` (or each item of a `kind: List`) as `gwtest-sandbox`, with
    /// force. Namespaced objects without a namespace go to `default`.
    pub fn apply_manifest(&self, obj: Value) -> anyhow::Result<()> {
        if obj
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List")
            && let Some(items) = obj.get("items").and_then(Value::as_array)
        {
            for item in items {
                self.apply_manifest(item.clone())?;
            }
            return Ok(());
        }
        let text = |pointer: &str| obj.pointer(pointer).and_then(Value::as_str);
        let api_version = text("/apiVersion").context("the manifest has no apiVersion")?;
        let kind = text("/kind").context("the manifest has no kind")?;
        let name = text("/metadata/name").context("the manifest has no metadata.name")?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let mut inner = self.store.lock();
        let def = inner
            .registry
            .all()
            .find(|d| d.group == group && d.kind == kind && d.versions.iter().any(|v| v == version))
            .cloned()
            .with_context(|| format!("no resource serves {kind} in {api_version}"))?;
        let namespace = if def.namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
        } else {
            ""
        };
        let t = Target {
            def,
            version: version.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            status: false,
        };
        let opts = WriteOpts {
            manager: SANDBOX_MANAGER.into(),
            manager_given: true,
            force: true,
            ..WriteOpts::default()
        };
        let raw = serde_json::to_vec(&obj)?;
        objects::patch(&mut inner, &t, PatchType::Apply, &raw, &opts)
            .map_err(|e| anyhow::anyhow!("applying {kind} {name}: {}", e.message))?;
        Ok(())
    }

    /// What runs pods from now on: `pods/portforward` and `pods/log` of the pods it runs are
    /// served through it (see [`pods`]).
    pub fn set_kubelet(&self, kubelet: std::sync::Arc<dyn pods::Kubelet>) {
        *self.kubelet.write().unwrap_or_else(|e| e.into_inner()) = Some(kubelet);
    }

    /// Forgets the change history (an etcd compaction plus watch-cache restart): open watches
    /// end with a 410 Expired ERROR event and clients must re-list, as after a real API server
    /// restart. For tests of watch recovery.
    pub fn compact_history(&self) {
        self.store.lock().compact();
    }

    /// Stops the server: no new connections, watches end, open connections close (bounded).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ApiServer {
    /// Dropped without [`ApiServer::shutdown`]: stop serving without waiting.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
