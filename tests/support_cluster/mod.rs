//! Test support for running gwtest against a cluster: an embedded API server started by the
//! test process (TLS, bearer token, the Gateway API and demo CRDs from fixtures/ registered),
//! its kubeconfig, kube-rs helpers the test uses to watch and change the cluster while gwtest
//! runs (and to look for leftovers afterwards), a small status controller standing in for the
//! one a gateway would run, and kubectl helpers (`$KUBECTL` or kubectl on PATH).
//!
//! Declare `mod support; mod support_cluster;` in the test file. Every wait here has a deadline.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::support::{Gwtest, RunOutput, Workspace};

pub const RUN_LABEL: &str = "gwtest.dev/run";
pub const UPSTREAM: (&str, &str) = ("demo.gwtest.dev/v1alpha1", "Upstream");

/// Deadline of one helper call (a get, a list, a patch) from the test thread.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The API server's own tokio runtime, kept apart from the test thread, which blocks on gwtest.
pub struct TestCluster {
    rt: tokio::runtime::Runtime,
    server: Option<ApiServer>,
    pub kube: Kube,
    dir: PathBuf,
    /// Owns `dir`: removed when the cluster is dropped.
    _ws: Workspace,
    kubeconfig: PathBuf,
}

impl TestCluster {
    /// An API server with the CRDs of fixtures/ and a kubeconfig for it.
    pub fn start() -> TestCluster {
        Self::start_with(ApiServerConfig::default())
    }

    pub fn start_with(cfg: ApiServerConfig) -> TestCluster {
        gwtest::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(async {
            let server = ApiServer::start(cfg).await.expect("start the API server");
            gwtest_sandbox::register_crds(&server).expect("register the CRDs");
            server
        });
        let ws = Workspace::new("cluster");
        let dir = ws.path().to_path_buf();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let client = {
            let _g = rt.enter();
            Client::try_from(server.kube_config()).expect("client")
        };
        TestCluster {
            rt,
            server: Some(server),
            kube: Kube { client },
            dir,
            _ws: ws,
            kubeconfig,
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn kubeconfig_str(&self) -> String {
        self.kubeconfig.display().to_string()
    }

    pub fn url(&self) -> String {
        self.server.as_ref().expect("running").url().to_owned()
    }

    pub fn server(&self) -> &ApiServer {
        self.server.as_ref().expect("running")
    }

    /// The API server goes away (connections refused, watches end), keeping what it stores.
    pub fn stop_serving(&mut self) {
        let server = self.server.as_mut().expect("running");
        self.rt.block_on(server.stop_serving());
    }

    /// The API server comes back on the same address, with the same objects.
    pub fn serve_again(&mut self) {
        let server = self.server.as_mut().expect("running");
        self.rt
            .block_on(server.serve_again())
            .expect("serve again on the same address");
    }

    /// A scratch directory that goes with the cluster.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run a future on the cluster's runtime, bounded.
    pub fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, f).await })
            .expect("a cluster call finished in time")
    }

    /// Run a future in the background on the cluster's runtime; aborted when the handle drops.
    pub fn spawn<F>(&self, f: F) -> Background<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Background(Some(self.rt.spawn(f)))
    }

    /// `gwtest ARGS --kubeconfig K` in the workspace.
    pub fn gwtest(&self, ws: &Workspace, args: &[&str]) -> Gwtest {
        ws.gwtest(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig.as_os_str())
    }

    /// `gwtest ARGS --json r.json` against the cluster: it exits `code`; its output and report.
    pub fn run_with_report(&self, ws: &Workspace, args: &[&str], code: i32) -> (RunOutput, Value) {
        let out = self.gwtest(ws, args).args(["--json", "r.json"]).run();
        out.assert_exit(code);
        let report = json_report(ws, "r.json");
        (out, report)
    }

    /// `gwtest gc ARGS` against the cluster; it exits 0.
    pub fn gc(&self, ws: &Workspace, args: &[&str]) -> RunOutput {
        let out = self.gwtest(ws, &[&["gc"], args].concat()).run();
        out.assert_exit(0);
        out
    }

    // -- synchronous conveniences -------------------------------------------------------

    pub fn get(&self, gvk: (&str, &str), ns: Option<&str>, name: &str) -> Option<Value> {
        self.block(self.kube.get(gvk, ns, name))
    }

    pub fn list(&self, gvk: (&str, &str), ns: Option<&str>, selector: &str) -> Vec<Value> {
        self.block(self.kube.list(gvk, ns, selector))
    }

    pub fn apply(&self, obj: Value) -> Value {
        self.block(self.kube.apply(obj))
    }

    pub fn patch(&self, gvk: (&str, &str), ns: Option<&str>, name: &str, p: Value) -> Value {
        self.block(self.kube.patch(gvk, ns, name, p, false))
    }

    pub fn patch_status(
        &self,
        gvk: (&str, &str),
        ns: Option<&str>,
        name: &str,
        status: Value,
    ) -> Value {
        self.block(
            self.kube
                .patch(gvk, ns, name, json!({ "status": status }), true),
        )
    }

    pub fn delete(&self, gvk: (&str, &str), ns: Option<&str>, name: &str) {
        self.block(self.kube.delete(gvk, ns, name))
    }

    /// Namespaces labelled by a gwtest run (any run, or `run`), with their phase.
    pub fn run_namespaces(&self, run: Option<&str>) -> Vec<String> {
        let sel = match run {
            Some(r) => format!("{RUN_LABEL}={r}"),
            None => RUN_LABEL.to_owned(),
        };
        self.list(("v1", "Namespace"), None, &sel)
            .iter()
            .map(|n| name_of(n).to_owned())
            .collect()
    }

    /// Every object labelled by a gwtest run, of the kinds these tests use: `Kind ns/name`.
    pub fn labelled_objects(&self) -> Vec<String> {
        self.block(self.kube.labelled_objects())
    }

    /// Fail unless nothing labelled by a gwtest run is left, waiting up to `within`.
    pub fn assert_nothing_left(&self, within: Duration, context: &str) {
        let mut left = Vec::new();
        let ok = crate::support::eventually(within, || {
            left = self.labelled_objects();
            left.is_empty()
        });
        assert!(ok, "left behind: {left:?}\n{context}");
    }

    /// Fail unless nothing labelled by a gwtest run is left right now: for what gwtest (or
    /// gc) must have removed before it exited.
    pub fn assert_nothing_left_now(&self, context: &str) {
        self.assert_nothing_left(Duration::ZERO, context);
    }

    /// Namespace names, every one there is.
    pub fn namespaces(&self) -> Vec<String> {
        self.list(("v1", "Namespace"), None, "")
            .iter()
            .map(|n| name_of(n).to_owned())
            .collect()
    }

    /// Start a status controller (see [`StatusController`]).
    pub fn controller(&self, mode: Mode) -> StatusController {
        StatusController::start(self, mode)
    }

    /// Record the names of namespaces created while the returned recorder lives.
    pub fn record_namespaces(&self) -> NamespaceRecorder {
        let seen: Seen = Default::default();
        let peak: Arc<Mutex<HashMap<String, (usize, usize)>>> = Default::default();
        let active: Active = Default::default();
        let (s2, p2, a2) = (seen.clone(), peak.clone(), active.clone());
        let api: Api<DynamicObject> = Api::all_with(self.kube.client.clone(), &ns_resource());
        let task = self.spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let (o, alive) = match ev {
                    Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => (o, true),
                    Ok(watcher::Event::Delete(o)) => (o, false),
                    _ => continue,
                };
                let name = o.metadata.name.clone().unwrap_or_default();
                let labels: HashMap<String, String> = o
                    .metadata
                    .labels
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let mut seen = s2.lock().unwrap();
                let new = !seen.iter().any(|(n, _)| *n == name);
                if new && alive {
                    seen.push((name.clone(), labels.clone()));
                }
                // Namespaces of a run in use at once: neither Terminating nor gone.
                let terminating = o.metadata.deletion_timestamp.is_some()
                    || o.data.pointer("/status/phase").and_then(Value::as_str)
                        == Some("Terminating");
                if let Some(run) = labels.get(RUN_LABEL) {
                    let mut active = a2.lock().unwrap();
                    let (now, max) = active.entry(run.clone()).or_default();
                    if alive && !terminating {
                        now.insert(name.clone());
                        *max = (*max).max(now.len());
                    } else {
                        now.remove(&name);
                    }
                }
                // Namespaces of a run that exist at once (Terminating ones included).
                if let Some(run) = labels.get(RUN_LABEL) {
                    let mut peak = p2.lock().unwrap();
                    let (now, max) = peak.entry(run.clone()).or_default();
                    if new && alive {
                        *now += 1;
                        *max = (*max).max(*now);
                    } else if !alive {
                        *now = now.saturating_sub(1);
                    }
                }
            }
        });
        NamespaceRecorder {
            seen,
            peak,
            active,
            _task: task,
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
            });
        }
    }
}

/// A background task, aborted when dropped.
pub struct Background<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Background<T> {
    pub fn is_finished(&self) -> bool {
        self.0.as_ref().is_none_or(|h| h.is_finished())
    }

    /// The task's result; it must have finished (check `is_finished`) or finish within 30s.
    pub fn join(mut self, cluster: &TestCluster) -> T {
        let h = self.0.take().expect("joined once");
        cluster.block(h).expect("background task panicked")
    }
}

impl<T> Drop for Background<T> {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// Namespace names with their labels, in the order they appeared.
type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

/// run id -> (namespaces in use now, the most in use at once)
type Active = Arc<Mutex<HashMap<String, (HashSet<String>, usize)>>>;

/// Namespaces seen (in creation order, with their labels) since the recorder started.
pub struct NamespaceRecorder {
    seen: Seen,
    /// run id -> (namespaces existing now, the most that existed at once)
    peak: Arc<Mutex<HashMap<String, (usize, usize)>>>,
    active: Active,
    _task: Background<()>,
}

impl NamespaceRecorder {
    /// Namespaces the run `run` labelled.
    pub fn of_run(&self, run: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.get(RUN_LABEL).map(String::as_str) == Some(run))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The most namespaces of run `run` that existed at the same time (Terminating included).
    pub fn peak(&self, run: &str) -> usize {
        self.peak.lock().unwrap().get(run).map_or(0, |p| p.1)
    }

    /// The most namespaces of run `run` in use at the same time (not Terminating).
    pub fn peak_active(&self, run: &str) -> usize {
        self.active.lock().unwrap().get(run).map_or(0, |p| p.1)
    }
}

pub fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn namespace_of(o: &Value) -> &str {
    o.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn uid_of(o: &Value) -> &str {
    o.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn ns_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces")
}

/// The run id gwtest printed: `gwtest: running ... (-j N, run ID)`.
pub fn run_id(stdout: &str) -> String {
    let r = regex::Regex::new(r"run (\d{8}-\d{6}-[a-z0-9]{6})\)").unwrap();
    r.captures(stdout)
        .unwrap_or_else(|| panic!("no run id in:\n{stdout}"))[1]
        .to_owned()
}

/// A JSON report gwtest wrote into the workspace.
pub fn json_report(ws: &Workspace, name: &str) -> Value {
    let text = std::fs::read_to_string(ws.path().join(name)).expect("json report");
    serde_json::from_str(&text).expect("json report parses")
}

// ---------------------------------------------------------------------------------------
// kube-rs helpers

/// A kube client with the dynamic helpers the tests need.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
}

impl Kube {
    /// The resource (plural) and scope of a kind, through discovery.
    pub async fn resource(&self, (api_version, kind): (&str, &str)) -> (ApiResource, bool) {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("discovery of {api_version} {kind}: {e}"));
        (ar, caps.scope == kube::discovery::Scope::Namespaced)
    }

    pub async fn api(&self, gvk: (&str, &str), ns: Option<&str>) -> Api<DynamicObject> {
        let (ar, namespaced) = self.resource(gvk).await;
        match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    pub async fn get(&self, gvk: (&str, &str), ns: Option<&str>, name: &str) -> Option<Value> {
        self.api(gvk, ns)
            .await
            .get_opt(name)
            .await
            .expect("get")
            .map(|o| serde_json::to_value(o).unwrap())
    }

    pub async fn list(&self, gvk: (&str, &str), ns: Option<&str>, selector: &str) -> Vec<Value> {
        let lp = ListParams::default().labels(selector);
        self.api(gvk, ns)
            .await
            .list(&lp)
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect()
    }

    /// Server-side apply as field manager `test`, with force.
    pub async fn apply(&self, obj: Value) -> Value {
        let av = obj["apiVersion"].as_str().expect("apiVersion").to_owned();
        let kind = obj["kind"].as_str().expect("kind").to_owned();
        let name = obj["metadata"]["name"].as_str().expect("name").to_owned();
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
        let api = self.api((&av, &kind), ns.as_deref()).await;
        let pp = PatchParams::apply("test").force();
        serde_json::to_value(
            api.patch(&name, &pp, &Patch::Apply(&obj))
                .await
                .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}")),
        )
        .unwrap()
    }

    /// A JSON merge patch, on the object or its status.
    pub async fn patch(
        &self,
        gvk: (&str, &str),
        ns: Option<&str>,
        name: &str,
        p: Value,
        status: bool,
    ) -> Value {
        let api = self.api(gvk, ns).await;
        let pp = PatchParams::default();
        let r = if status {
            api.patch_status(name, &pp, &Patch::Merge(&p)).await
        } else {
            api.patch(name, &pp, &Patch::Merge(&p)).await
        };
        let o = r.unwrap_or_else(|e| panic!("patch {} {name}: {e}", gvk.1));
        serde_json::to_value(o).unwrap()
    }

    pub async fn delete(&self, gvk: (&str, &str), ns: Option<&str>, name: &str) {
        match self
            .api(gvk, ns)
            .await
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {} {name}: {e}", gvk.1),
        }
    }

    /// Wait (bounded) until `name` exists in any namespace; returns it.
    pub async fn wait_exists(
        &self,
        gvk: (&str, &str),
        name: &str,
        within: Duration,
    ) -> Option<Value> {
        self.wait_for(gvk, "", within, |o| name_of(o) == name).await
    }

    /// Wait (bounded) until an object matching `selector` and `found`, in any namespace, is
    /// there; returns it.
    pub async fn wait_for(
        &self,
        gvk: (&str, &str),
        selector: &str,
        within: Duration,
        found: impl Fn(&Value) -> bool + Send,
    ) -> Option<Value> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let listed = self.list(gvk, None, selector).await;
            if let Some(o) = listed.into_iter().find(|o| found(o)) {
                return Some(o);
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Objects labelled by gwtest, of every kind these tests use: `Kind ns/name`.
    pub async fn labelled_objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        for gvk in [
            ("v1", "Namespace"),
            ("v1", "ConfigMap"),
            ("v1", "Service"),
            ("v1", "Secret"),
            UPSTREAM,
            ("gateway.networking.k8s.io/v1", "Gateway"),
            ("gateway.networking.k8s.io/v1", "GatewayClass"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ] {
            for o in self.list(gvk, None, RUN_LABEL).await {
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default();
                out.push(format!("{} {ns}{}", gvk.1, name_of(&o)));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// A status controller standing in for a gateway's

/// How the controller writes Upstream status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `Accepted=True` (reason `Discovered`) for the object's current generation, `delay`
    /// after seeing it (or a spec change).
    Fresh { delay: Duration },
    /// Writes once, for the first generation it sees, and ignores later spec changes: its
    /// condition goes stale.
    FirstGenerationOnly,
    /// SCENARIOS S1: like `Fresh`, but an Upstream whose namespace/name it has seen before
    /// (even under another uid) gets no status write ("nothing changed, skipping report").
    SkipSeenNames,
}

/// Watches every Upstream and writes its status per [`Mode`]. Stops when dropped.
pub struct StatusController {
    writes: Arc<AtomicUsize>,
    skipped: Arc<Mutex<Vec<String>>>,
    _task: Background<()>,
}

impl StatusController {
    fn start(cluster: &TestCluster, mode: Mode) -> StatusController {
        let kube = cluster.kube.clone();
        let writes = Arc::new(AtomicUsize::new(0));
        let skipped: Arc<Mutex<Vec<String>>> = Default::default();
        let (w2, s2) = (writes.clone(), skipped.clone());
        let task = cluster.spawn(async move {
            let (ar, _) = kube.resource(UPSTREAM).await;
            let api: Api<DynamicObject> = Api::all_with(kube.client.clone(), &ar);
            // (namespace, name) -> the uid first seen; uid -> generation written
            let mut seen: HashMap<(String, String), String> = HashMap::new();
            let mut written: HashMap<String, i64> = HashMap::new();
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let o = match ev {
                    Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => o,
                    _ => continue,
                };
                if o.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let name = o.metadata.name.clone().unwrap_or_default();
                let uid = o.metadata.uid.clone().unwrap_or_default();
                let generation = o.metadata.generation.unwrap_or(1);
                let first_uid = seen
                    .entry((ns.clone(), name.clone()))
                    .or_insert(uid.clone());
                if mode == Mode::SkipSeenNames && *first_uid != uid {
                    let mut s = s2.lock().unwrap();
                    let what = format!("{ns}/{name} {uid}");
                    if !s.contains(&what) {
                        s.push(what);
                    }
                    continue;
                }
                match (mode, written.get(&uid)) {
                    (Mode::FirstGenerationOnly, Some(_)) => continue,
                    (_, Some(g)) if *g == generation => continue,
                    _ => {}
                }
                written.insert(uid.clone(), generation);
                let delay = match mode {
                    Mode::Fresh { delay } => delay,
                    _ => Duration::ZERO,
                };
                let (kube, ns, name, w) = (kube.clone(), ns.clone(), name.clone(), w2.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let status = json!({"status": {"conditions": [{
                        "type": "Accepted", "status": "True", "reason": "Discovered",
                        "message": "discovered by the test controller",
                        "observedGeneration": generation,
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }]}});
                    // The object may be gone by now: a failed write is not counted.
                    let api = kube.api(UPSTREAM, Some(&ns)).await;
                    let pp = PatchParams::default();
                    if api
                        .patch_status(&name, &pp, &Patch::Merge(&status))
                        .await
                        .is_ok()
                    {
                        w.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        StatusController {
            writes,
            skipped,
            _task: task,
        }
    }

    /// Status writes that succeeded.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// `ns/name uid` of the objects whose status write was skipped (S1).
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------
// kubectl

// Not every test binary that has this module uses all of them.
#[allow(unused_imports)]
pub use crate::support::{KubectlRun, kubectl, kubectl_bin};

/// kubectl's client minor version (20 for 1.20.2).
pub fn kubectl_minor(bin: &Path) -> u32 {
    let out = std::process::Command::new(bin)
        .args(["version", "--client", "-o", "json"])
        .output()
        .expect("run kubectl version");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "kubectl version -o json: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let minor = v["clientVersion"]["minor"].as_str().unwrap_or("");
    minor
        .trim_end_matches('+')
        .parse()
        .unwrap_or_else(|_| panic!("kubectl minor version in {v}"))
}

/// A directory holding `kubectl` (a link to [`kubectl_bin`]), to put first on gwtest's PATH so
/// `exec: [kubectl, ...]` steps run the same kubectl.
pub fn kubectl_path_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.path().join("kubectl-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(kubectl_bin(), &link).expect("link kubectl");
    dir
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    std::env::join_paths(dirs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `g` with kubectl ([`kubectl_path_dir`]) first on PATH and `$HOME` in the workspace.
pub fn with_kubectl(g: Gwtest, ws: &Workspace) -> Gwtest {
    let bin = kubectl_path_dir(ws);
    g.env("PATH", path_with(&bin))
        .env("HOME", ws.path().display().to_string())
}

/// A test that applies ConfigMap `NAME` (data from `${test}` and `${namespace}`) and asserts it.
pub fn cm_test(name: &str) -> String {
    crate::support::test_doc(
        name,
        "",
        &format!(
            r#"  - apply:
      manifest: {{apiVersion: v1, kind: ConfigMap, metadata: {{name: {name}}}, data: {{test: "${{test}}", ns: "${{namespace}}"}}}}
  - assert:
      resource: {{apiVersion: v1, kind: ConfigMap, name: {name}}}
      fields: {{data: {{test: {name}}}}}
"#
        ),
    )
}

/// A test that applies Upstream `u` (spec.port `port`) and asserts `check` (YAML lines under
/// `assert:`) on it.
pub fn upstream_test(name: &str, port: u16, check: &str) -> String {
    crate::support::test_doc(
        name,
        "",
        &format!(
            r#"  - apply:
      manifest: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, metadata: {{name: u}}, spec: {{port: {port}}}}}
  - assert:
      resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: u}}
{check}"#
        ),
    )
}

/// Distinct values, for "each test had its own namespace".
pub fn distinct(v: &[String]) -> usize {
    v.iter().collect::<HashSet<_>>().len()
}

// ---------------------------------------------------------------------------------------
// The demo gateway of fixtures/gateway.yaml (`--sandbox` runs its pods)

/// A workspace with suite `suite`: the demo gateway as its fixture, `${gateway}` port-forwarded
/// to it, then `more` (suite lines; indented ones add to `vars`).
pub fn gateway_workspace(name: &str, suite: &str, more: &str) -> Workspace {
    let ws = Workspace::new(name);
    ws.write(
        "fixtures/gateway.yaml",
        include_str!("../../fixtures/gateway.yaml"),
    );
    ws.suite(
        suite,
        &format!(
            "fixtures: [../fixtures/gateway.yaml]\nvars:\n  gateway:\n    port-forward: {{service: gw, namespace: gwtest-infra, port: 80, timeout: 30s}}\n{more}"
        ),
    );
    ws
}

/// Service `backend` and HTTPRoute `route` (host `host`) to it through the demo gateway.
pub fn backend_route(route: &str, host: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: backend}}
spec:
  ports: [{{port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {route}}}
spec:
  parentRefs: [{{name: gw, namespace: gwtest-infra}}]
  hostnames: [{host}]
  rules: [{{backendRefs: [{{name: backend, port: 8080}}]}}]
"#
    )
}
