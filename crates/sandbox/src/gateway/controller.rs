//! The controller: kube-rs watchers keep a store per kind, and every change wakes one
//! level-triggered reconcile that computes, from the stores as a whole, the listeners to
//! serve, every listener's route table, the faults in force, and the status every object
//! should have. The data plane gets the new tables at once; status differences go to the
//! [`StatusWriter`].
//!
//! Watchers reconnect on their own (with a backoff) when the API server goes away or ends a
//! watch with 410 Expired, and re-list; nothing is reconciled from a kind until its first
//! list is complete, so a restart never looks like "everything was deleted".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::store::{Store, Writer};
use kube::runtime::watcher::{self, watcher};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::dataplane::{DataPlane, ListenerKey, PlaneSnapshot, PortKey};
use super::discovery;
use super::faults::{self, FaultMap, Faults};
use super::model::{
    self, BackendRef, GATEWAY_GROUP, GatewayClassSpec, GatewaySpec, HttpRouteSpec, Key, Listener,
    ParentRef, ReferenceGrantSpec,
};
use super::routes::{self, CompiledRule, RouteEntry, Table};
use super::status::{StatusWriter, Write, condition, now_rfc3339};

pub const CONTROLLER_NAME: &str = "demo.gwtest.dev/gateway-controller";
pub const ADDRESS_ANNOTATION: &str = "demo.gwtest.dev/address";
pub const SPAN_NAME_ANNOTATION: &str = "demo.gwtest.dev/span-name";
/// Reconcile at least this often, whatever the watches say.
const RESYNC: Duration = Duration::from_secs(30);
/// Bounds of the delay before a failed watch starts over.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long Gateways wait for the first list of the kinds they can do without
/// (ReferenceGrants, Namespaces: a cluster may lack the CRD or the permission).
const OPTIONAL_GRACE: Duration = Duration::from_secs(5);

/// One kind's store, and whether its first list is in.
#[derive(Clone)]
pub struct Watched {
    store: Store<DynamicObject>,
    ready: Arc<AtomicBool>,
}

impl Watched {
    pub(super) fn state(&self) -> Vec<Arc<DynamicObject>> {
        self.store.state()
    }
    pub(super) fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Watch `ar` in every namespace into a store; every change wakes `wake`.
///
/// After any error the watch starts over with a fresh list (after a backoff of 0.1 s
/// doubling to 5 s) instead of resuming from the last resourceVersion: an API server that
/// came back with a new history (the sandbox's is in memory) would otherwise be watched from
/// a version it has not reached, and its changes missed. The store keeps the previous state
/// until the new list is complete.
pub(super) fn watch(
    client: &kube::Client,
    ar: ApiResource,
    cfg: watcher::Config,
    wake: Arc<Notify>,
    health: Arc<WatchHealth>,
) -> (Watched, JoinHandle<()>) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut writer = Writer::new(ar.clone());
    let watched = Watched {
        store: writer.as_reader(),
        ready: Arc::new(AtomicBool::new(false)),
    };
    let ready = watched.ready.clone();
    let task = tokio::spawn(async move {
        let mut delay = RETRY_MIN;
        let mut last_error = String::new();
        loop {
            let stream = watcher(api.clone(), cfg.clone());
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        writer.apply_watcher_event(&event);
                        match event {
                            watcher::Event::InitDone => {
                                ready.store(true, Ordering::Release);
                                delay = RETRY_MIN;
                                last_error.clear();
                                health.set(&ar.plural, None);
                                wake.notify_one();
                            }
                            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                                wake.notify_one()
                            }
                            watcher::Event::Init | watcher::Event::InitApply(_) => {}
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_error {
                            tracing::warn!("demo gateway: watching {}: {msg}", ar.plural);
                            health.set(&ar.plural, Some(msg.clone()));
                            last_error = msg;
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(delay.mul_f64(0.5 + fastrand::f64())).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    });
    (watched, task)
}

/// The watches that fail at the moment (kind plural → the last error), for people: a
/// cluster without the CRDs, or without the permission to list them, shows up here.
#[derive(Debug, Default)]
pub struct WatchHealth {
    errors: std::sync::Mutex<BTreeMap<String, String>>,
}

impl WatchHealth {
    fn set(&self, plural: &str, error: Option<String>) {
        let mut e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        match error {
            Some(msg) => e.insert(plural.to_string(), msg),
            None => e.remove(plural),
        };
    }

    pub fn errors(&self) -> BTreeMap<String, String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub struct Watches {
    classes: Watched,
    gateways: Watched,
    routes: Watched,
    grants: Watched,
    services: Watched,
    namespaces: Watched,
    configmaps: Watched,
    upstreams: Watched,
}

impl Watches {
    pub fn start(
        client: &kube::Client,
        wake: &Arc<Notify>,
        health: &Arc<WatchHealth>,
    ) -> (Watches, Vec<JoinHandle<()>>) {
        let mut tasks = Vec::new();
        let mut w = |ar: ApiResource, cfg: watcher::Config| {
            let (watched, task) = watch(client, ar, cfg, wake.clone(), health.clone());
            tasks.push(task);
            watched
        };
        let all = watcher::Config::default;
        let watches = Watches {
            classes: w(model::gateway_class_ar(), all()),
            gateways: w(model::gateway_ar(), all()),
            routes: w(model::http_route_ar(), all()),
            grants: w(model::reference_grant_ar(), all()),
            services: w(model::service_ar(), all()),
            namespaces: w(model::namespace_ar(), all()),
            configmaps: w(
                model::config_map_ar(),
                all().fields(&format!("metadata.name={}", faults::CONFIGMAP)),
            ),
            upstreams: w(model::upstream_ar(), all()),
        };
        (watches, tasks)
    }
}

pub struct Controller {
    watches: Watches,
    plane: Arc<DataPlane>,
    writer: Arc<StatusWriter>,
    wake: Arc<Notify>,
    /// Namespaces where `fail-closed` was on at the last reconcile.
    fail_closed: HashSet<String>,
    /// S3: routes (uid → generation at the recovery) left without config by a recovery.
    stale_routes: HashMap<String, i64>,
    started: Instant,
    /// Services and data-plane pods per Gateway (the sandbox only).
    deploy: Option<super::deploy::Deployer>,
}

/// A Gateway of ours, as this reconcile sees it.
struct Gw {
    meta: model::Meta,
    status: Value,
    listeners: Vec<Lst>,
}

struct Lst {
    spec: Listener,
    /// Why it cannot be accepted: (reason, message).
    invalid: Option<(&'static str, String)>,
    kinds_ok: bool,
    addr: Result<std::net::SocketAddr, String>,
    attached: HashSet<Key>,
}

impl Controller {
    pub fn new(
        watches: Watches,
        plane: Arc<DataPlane>,
        writer: Arc<StatusWriter>,
        wake: Arc<Notify>,
    ) -> Controller {
        Controller {
            watches,
            plane,
            writer,
            wake,
            fail_closed: HashSet::new(),
            stale_routes: HashMap::new(),
            started: Instant::now(),
            deploy: None,
        }
    }

    /// Deploy a Service and a data-plane pod per Gateway (see [`super::deploy`]).
    pub fn with_deployer(mut self, deploy: super::deploy::Deployer) -> Controller {
        self.deploy = Some(deploy);
        self
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let grace = tokio::time::sleep(OPTIONAL_GRACE);
        tokio::pin!(grace);
        let mut grace_done = false;
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = resync.tick() => {}
                _ = &mut grace, if !grace_done => grace_done = true,
                _ = cancel.cancelled() => return,
            }
            self.reconcile().await;
        }
    }

    fn faults(&self) -> FaultMap {
        self.watches
            .configmaps
            .state()
            .iter()
            .filter(|c| c.metadata.name.as_deref() == Some(faults::CONFIGMAP))
            .map(|c| {
                let data: BTreeMap<String, String> = c
                    .data
                    .get("data")
                    .and_then(|d| serde_json::from_value(d.clone()).ok())
                    .unwrap_or_default();
                let f = Faults::parse(&data);
                if !f.invalid.is_empty() {
                    tracing::warn!(
                        "demo gateway: {}/{}: {}",
                        c.metadata.namespace.as_deref().unwrap_or_default(),
                        faults::CONFIGMAP,
                        f.invalid.join("; ")
                    );
                }
                (c.metadata.namespace.clone().unwrap_or_default(), f)
            })
            .collect()
    }

    async fn reconcile(&mut self) {
        let w = &self.watches;
        if !w.configmaps.ready() {
            return;
        }
        let faults = self.faults();
        self.plane.log.faults(&faults);
        let now = now_rfc3339();
        let mut writes = Vec::new();
        let core = [&w.classes, &w.gateways, &w.routes, &w.services];
        let optional = [&w.namespaces, &w.grants];
        if core.iter().all(|x| x.ready())
            && (optional.iter().all(|x| x.ready()) || self.started.elapsed() >= OPTIONAL_GRACE)
        {
            self.gateway_api(&faults, &now, &mut writes).await;
        }
        let w = &self.watches;
        if w.services.ready() && w.upstreams.ready() {
            writes.extend(discovery::plan(
                &w.services.state(),
                &w.upstreams.state(),
                &faults,
                &now,
            ));
        }
        self.plane.log.status_writes(&writes);
        self.writer.submit(writes);
    }

    /// GatewayClasses, Gateways and HTTPRoutes: listeners, tables, status.
    async fn gateway_api(&mut self, faults: &FaultMap, now: &str, writes: &mut Vec<Write>) {
        let instant = Instant::now();
        let classes = self.accept_classes(now, writes);
        let (mut gws, keep) = self.gateways(&classes).await;
        let routes = self.watches.routes.state();
        self.track_recoveries(faults, &routes);
        let refs = Refs::new(&self.watches);
        let mut tables = Tables::new();
        for r in &routes {
            let Some(route) = self.route(r, &refs, faults, instant) else {
                continue;
            };
            let parents = attach_route(&route, &mut gws, &refs, now, &mut tables);
            if parents != route.parents && !hangs(faults, &route.meta.key.namespace) {
                writes.push(Write::Status {
                    ar: model::http_route_ar(),
                    key: route.meta.key.clone(),
                    resource_version: route.meta.resource_version.clone(),
                    status: json!({"parents": parents}),
                });
            }
        }

        // The data plane first (requests see the new state at once), then the listeners
        // that are gone.
        self.plane.publish(snapshot(faults, &gws, tables));
        self.plane.retain(&keep);
        self.plane.log.retain(&gws.keys().cloned().collect());
        if let Some(d) = &self.deploy {
            d.publish(wanted(&gws));
        }
        self.gateway_writes(&gws, faults, now, writes);
    }

    /// GatewayClasses with our controllerName (their names), marked Accepted.
    fn accept_classes(&self, now: &str, writes: &mut Vec<Write>) -> HashSet<String> {
        let mut classes = HashSet::new();
        for c in self.watches.classes.state() {
            let meta = model::meta(&c);
            let Ok(spec) = model::spec::<GatewayClassSpec>(&c) else {
                continue;
            };
            if spec.controller_name != CONTROLLER_NAME || meta.deleting {
                continue;
            }
            classes.insert(meta.key.name.clone());
            let current = model::status(&c);
            let desired = json!({"conditions": [condition(
                current.get("conditions").unwrap_or(&Value::Null),
                "Accepted", "True", "Accepted",
                "handled by the demo gateway", meta.generation, now,
            )]});
            if differs(current, &desired) {
                writes.push(Write::Status {
                    ar: model::gateway_class_ar(),
                    key: meta.key.clone(),
                    resource_version: meta.resource_version.clone(),
                    status: desired,
                });
            }
        }
        classes
    }

    /// Gateways of those classes, their listeners bound; and the ports to keep serving.
    async fn gateways(&self, classes: &HashSet<String>) -> (HashMap<Key, Gw>, HashSet<PortKey>) {
        let mut gws: HashMap<Key, Gw> = HashMap::new();
        let mut keep: HashSet<PortKey> = HashSet::new();
        for g in self.watches.gateways.state() {
            let meta = model::meta(&g);
            let spec = match model::spec::<GatewaySpec>(&g) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("demo gateway: Gateway {}: {e}", meta.key);
                    continue;
                }
            };
            if meta.deleting || !classes.contains(&spec.gateway_class_name) {
                continue;
            }
            let listeners = self.listeners(&meta.key, spec.listeners, &mut keep).await;
            gws.insert(
                meta.key.clone(),
                Gw {
                    status: model::status(&g).clone(),
                    meta,
                    listeners,
                },
            );
        }
        (gws, keep)
    }

    /// A Gateway's listeners (the first of each name), the valid ones bound.
    async fn listeners(
        &self,
        gw: &Key,
        specs: Vec<Listener>,
        keep: &mut HashSet<PortKey>,
    ) -> Vec<Lst> {
        let mut listeners: Vec<Lst> = Vec::new();
        for l in specs {
            if listeners.iter().any(|x| x.spec.name == l.name) {
                continue;
            }
            let invalid = (l.protocol != "HTTP").then(|| {
                (
                    "UnsupportedProtocol",
                    format!("protocol {:?} is not supported (HTTP is)", l.protocol),
                )
            });
            let kinds_ok = l.allowed_routes.kinds.is_empty()
                || l.allowed_routes.kinds.iter().any(|k| {
                    k.kind == "HTTPRoute"
                        && k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
                });
            // Listeners declaring the same port share its socket (and its address).
            let addr = if invalid.is_none() {
                let pk = (gw.clone(), l.port);
                let a = self.plane.ensure(&pk).await.map_err(|e| e.to_string());
                keep.insert(pk);
                a
            } else {
                Err("not served".to_string())
            };
            listeners.push(Lst {
                spec: l,
                invalid,
                kinds_ok,
                addr,
                attached: HashSet::new(),
            });
        }
        listeners
    }

    /// S3: a namespace recovering from fail-closed leaves its routes unconfigured until
    /// they are modified. Flaps are forgotten in namespaces that no longer flap.
    fn track_recoveries(&mut self, faults: &FaultMap, routes: &[Arc<DynamicObject>]) {
        let fail_closed: HashSet<String> = faults
            .iter()
            .filter(|(_, f)| f.fail_closed)
            .map(|(ns, _)| ns.clone())
            .collect();
        let recovered: HashSet<&String> = self.fail_closed.difference(&fail_closed).collect();
        let mut current: HashMap<String, i64> = HashMap::new();
        for r in routes {
            let m = model::meta(r);
            if recovered.contains(&m.key.namespace) {
                self.stale_routes.insert(m.uid.clone(), m.generation);
            }
            current.insert(m.uid, m.generation);
        }
        self.fail_closed = fail_closed;
        self.stale_routes
            .retain(|uid, g| current.get(uid).is_some_and(|now| now <= g));
        self.plane
            .flaps
            .retain_namespaces(|ns| faults.get(ns).is_some_and(|f| f.flap.is_some()));
    }

    /// An HTTPRoute compiled against what it may refer to; None when it is being deleted or
    /// not even its parentRefs parse.
    fn route<'a>(
        &self,
        r: &'a DynamicObject,
        refs: &Refs,
        faults: &FaultMap,
        instant: Instant,
    ) -> Option<RouteView<'a>> {
        let meta = model::meta(r);
        if meta.deleting {
            return None;
        }
        let (spec, invalid) = route_spec(r, &meta.key)?;
        let rns = &meta.key.namespace;
        let resolve = |b: &BackendRef| refs.resolve(rns, b);
        let compiled = match invalid {
            Some(e) => Err(e),
            None => spec
                .rules
                .iter()
                .map(|rule| CompiledRule::compile(rule, &resolve))
                .collect(),
        };
        let stale = self
            .stale_routes
            .get(&meta.uid)
            .is_some_and(|g| meta.generation <= *g);
        let flapped = faults
            .get(rns)
            .and_then(|f| f.flap)
            .is_some_and(|after| self.plane.flaps.reverted(&meta.uid, after, instant));
        Some(RouteView {
            obj: r,
            parents: model::status(r)
                .get("parents")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            unresolved: refs.unresolved(rns, &spec),
            span_name: meta.annotations.get(SPAN_NAME_ANNOTATION).cloned(),
            compiled,
            stale,
            flapped,
            spec,
            meta,
        })
    }

    /// Logs each Gateway's state, and writes its annotations and status where they differ.
    fn gateway_writes(
        &self,
        gws: &HashMap<Key, Gw>,
        faults: &FaultMap,
        now: &str,
        writes: &mut Vec<Write>,
    ) {
        for gw in gws.values() {
            let (annotations, status) = gateway_status(gw, now);
            self.plane
                .log
                .reconciled(&gw.meta.key, gw.meta.generation, &annotations, &status);
            if hangs(faults, &gw.meta.key.namespace) {
                continue;
            }
            let current_ann = &gw.meta.annotations;
            let annotations_differ = annotations
                .iter()
                .any(|(k, v)| current_ann.get(k) != Some(v))
                || current_ann
                    .keys()
                    .any(|k| k.starts_with(ADDRESS_ANNOTATION) && !annotations.contains_key(k));
            let status_differs = differs(&gw.status, &status);
            if annotations_differ || status_differs {
                writes.push(Write::Gateway {
                    key: gw.meta.key.clone(),
                    resource_version: gw.meta.resource_version.clone(),
                    annotations: annotations_differ.then_some(annotations),
                    status: status_differs.then_some(status),
                });
            }
        }
    }
}

/// Does the `hang` fault hold writes back in this namespace?
fn hangs(faults: &FaultMap, ns: &str) -> bool {
    faults.get(ns).is_some_and(|f| f.hang)
}

/// Each listener's routes, as the reconcile collects them.
type Tables = HashMap<ListenerKey, Vec<Arc<RouteEntry>>>;

/// What routes may refer to, and the labels listeners select namespaces by.
struct Refs {
    services: HashSet<Key>,
    /// ReferenceGrants with their namespace.
    grants: Vec<(String, ReferenceGrantSpec)>,
    ns_labels: HashMap<String, BTreeMap<String, String>>,
}

impl Refs {
    fn new(w: &Watches) -> Refs {
        Refs {
            services: w
                .services
                .state()
                .iter()
                .map(|s| model::meta(s).key)
                .collect(),
            grants: w
                .grants
                .state()
                .iter()
                .filter_map(|g| Some((model::meta(g).key.namespace, model::spec(g).ok()?)))
                .collect(),
            ns_labels: w
                .namespaces
                .state()
                .iter()
                .map(|n| {
                    let m = model::meta(n);
                    let mut labels = m.labels;
                    labels
                        .entry("kubernetes.io/metadata.name".into())
                        .or_insert_with(|| m.key.name.clone());
                    (m.key.name, labels)
                })
                .collect(),
        }
    }

    /// A backendRef's namespace, and whether it resolves: a Service that exists, in the
    /// route's namespace or one whose ReferenceGrant allows it.
    fn resolve(&self, route_ns: &str, b: &BackendRef) -> (String, bool) {
        let ns = b.namespace.clone().unwrap_or_else(|| route_ns.to_string());
        if !b.is_service() {
            return (ns, false);
        }
        let permitted = ns == route_ns
            || self
                .grants
                .iter()
                .any(|(gns, g)| *gns == ns && model::grant_allows(g, route_ns, &b.name));
        let exists = self.services.contains(&Key::new(&ns, &b.name));
        (ns, permitted && exists)
    }

    /// The first backendRef of a route that does not resolve, as ResolvedRefs' (reason,
    /// message).
    fn unresolved(&self, route_ns: &str, spec: &HttpRouteSpec) -> Option<(&'static str, String)> {
        spec.rules
            .iter()
            .flat_map(|r| &r.backend_refs)
            .find_map(|b| {
                let (ns, resolved) = self.resolve(route_ns, b);
                if !b.is_service() {
                    Some((
                        "InvalidKind",
                        format!(
                            "backendRef {}: kind {}/{} is not supported",
                            b.name,
                            b.group.as_deref().unwrap_or(""),
                            b.kind.as_deref().unwrap_or("Service")
                        ),
                    ))
                } else if resolved {
                    None
                } else if self.services.contains(&Key::new(&ns, &b.name)) {
                    Some((
                        "RefNotPermitted",
                        format!(
                            "no ReferenceGrant in {ns} allows a reference to Service {}",
                            b.name
                        ),
                    ))
                } else {
                    Some((
                        "BackendNotFound",
                        format!("Service {ns}/{} not found", b.name),
                    ))
                }
            })
    }
}

/// An HTTPRoute of this reconcile.
struct RouteView<'a> {
    obj: &'a DynamicObject,
    meta: model::Meta,
    spec: HttpRouteSpec,
    /// `status.parents` as it is.
    parents: Vec<Value>,
    /// Its rules, or why its spec is not valid.
    compiled: Result<Vec<CompiledRule>, String>,
    /// The first backendRef that does not resolve: (reason, message).
    unresolved: Option<(&'static str, String)>,
    span_name: Option<String>,
    /// Left without config by a fail-closed recovery (S3).
    stale: bool,
    /// Reverted by the `flap` fault.
    flapped: bool,
}

/// An HTTPRoute's spec, and why it does not parse: a spec that does not parse is still ours
/// to report on when its parentRefs do.
fn route_spec(r: &DynamicObject, key: &Key) -> Option<(HttpRouteSpec, Option<String>)> {
    match model::spec::<HttpRouteSpec>(r) {
        Ok(s) => Some((s, None)),
        Err(e) => match model::spec::<model::ParentRefsOnly>(r) {
            Ok(p) => Some((
                HttpRouteSpec {
                    parent_refs: p.parent_refs,
                    ..HttpRouteSpec::default()
                },
                Some(e),
            )),
            Err(_) => {
                tracing::debug!("demo gateway: HTTPRoute {key}: {e}");
                None
            }
        },
    }
}

/// Is this entry of a route's `status.parents` ours?
fn is_ours(parent: &Value) -> bool {
    parent.get("controllerName").and_then(Value::as_str) == Some(CONTROLLER_NAME)
}

/// Attaches a route to the listeners of the Gateways it refers to (adding it to their
/// tables), and gives its `status.parents`: other controllers' as they are, then ours, one
/// per parentRef to a Gateway of ours.
fn attach_route(
    route: &RouteView,
    gws: &mut HashMap<Key, Gw>,
    refs: &Refs,
    now: &str,
    tables: &mut Tables,
) -> Vec<Value> {
    let raw_refs = route
        .obj
        .data
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array);
    let mut parents: Vec<Value> = route
        .parents
        .iter()
        .filter(|p| !is_ours(p))
        .cloned()
        .collect();
    for (i, pref) in route.spec.parent_refs.iter().enumerate() {
        if !pref.is_gateway() {
            continue;
        }
        let gw_key = Key::new(
            pref.namespace
                .as_deref()
                .unwrap_or(&route.meta.key.namespace),
            &pref.name,
        );
        let Some(gw) = gws.get_mut(&gw_key) else {
            continue;
        };
        let selected = Selected::of(gw, pref, route, refs);
        let accepted = accepted_condition(route, pref, &gw_key, &selected);
        if let Ok(rules) = &route.compiled {
            attach(route, rules, gw, &selected.accepted, tables);
        }
        let raw_ref = raw_refs
            .and_then(|r| r.get(i))
            .cloned()
            .unwrap_or_else(|| json!({"name": pref.name}));
        parents.push(parent_status(route, raw_ref, accepted, now));
    }
    parents
}

/// The listeners of a Gateway a parentRef names, and which of them take the route.
struct Selected {
    /// Some listener has the ref's sectionName and port.
    named: bool,
    /// The listeners (indexes) that accept the route.
    accepted: Vec<usize>,
    /// Some named listener allows the route, but its hostname does not intersect.
    hostname_only: bool,
}

impl Selected {
    fn of(gw: &Gw, pref: &ParentRef, route: &RouteView, refs: &Refs) -> Selected {
        let rns = &route.meta.key.namespace;
        let hostnames = &route.spec.hostnames;
        let mut s = Selected {
            named: false,
            accepted: Vec::new(),
            hostname_only: false,
        };
        for (li, l) in gw.listeners.iter().enumerate() {
            let named = pref
                .section_name
                .as_deref()
                .is_none_or(|s| s == l.spec.name)
                && pref.port.is_none_or(|p| p == l.spec.port);
            if !named {
                continue;
            }
            s.named = true;
            let allowed = l.invalid.is_none()
                && l.kinds_ok
                && namespace_allowed(&l.spec, &gw.meta.key.namespace, rns, &refs.ns_labels);
            let hosts = match &l.spec.hostname {
                None => true,
                Some(h) => {
                    hostnames.is_empty()
                        || hostnames
                            .iter()
                            .any(|rh| routes::hostnames_intersect(h, rh))
                }
            };
            if allowed && hosts {
                s.accepted.push(li);
            } else if allowed {
                s.hostname_only = true;
            }
        }
        s
    }
}

/// A condition's (status, reason, message).
type Verdict = (&'static str, &'static str, String);

/// The route's Accepted condition for one parentRef.
fn accepted_condition(route: &RouteView, pref: &ParentRef, gw_key: &Key, s: &Selected) -> Verdict {
    match &route.compiled {
        Err(e) => ("False", "UnsupportedValue", e.clone()),
        Ok(_) if !s.named => (
            "False",
            "NoMatchingParent",
            format!(
                "Gateway {gw_key} has no listener{}{}",
                pref.section_name
                    .as_deref()
                    .map(|s| format!(" named {s:?}"))
                    .unwrap_or_default(),
                pref.port
                    .map(|p| format!(" on port {p}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(_) if s.accepted.is_empty() && s.hostname_only => (
            "False",
            "NoMatchingListenerHostname",
            "no listener hostname intersects the route's hostnames".to_string(),
        ),
        Ok(_) if s.accepted.is_empty() => (
            "False",
            "NotAllowedByListeners",
            format!("the listeners of Gateway {gw_key} do not allow this route"),
        ),
        Ok(_) if route.flapped => (
            "Unknown",
            "Pending",
            "the route's configuration was reverted".to_string(),
        ),
        Ok(_) => ("True", "Accepted", "accepted".to_string()),
    }
}

/// Attaches the route to the listeners that accepted it, and adds it to the table of each
/// of them that listens (with the route's hostnames that intersect the listener's).
fn attach(
    route: &RouteView,
    rules: &[CompiledRule],
    gw: &mut Gw,
    accepted: &[usize],
    tables: &mut Tables,
) {
    let meta = &route.meta;
    for &li in accepted {
        let l = &mut gw.listeners[li];
        l.attached.insert(meta.key.clone());
        if l.addr.is_err() {
            continue;
        }
        let hostnames = route
            .spec
            .hostnames
            .iter()
            .filter(|h| {
                l.spec
                    .hostname
                    .as_deref()
                    .is_none_or(|lh| routes::hostnames_intersect(lh, h))
            })
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let table = tables
            .entry((gw.meta.key.clone(), l.spec.name.clone()))
            .or_default();
        if table.iter().any(|e| e.key == meta.key) {
            continue;
        }
        table.push(Arc::new(RouteEntry {
            key: meta.key.clone(),
            uid: meta.uid.clone(),
            generation: meta.generation,
            creation_timestamp: meta.creation_timestamp.clone(),
            hostnames,
            rules: rules.to_vec(),
            span_name: route.span_name.clone(),
            stale: route.stale,
        }));
    }
}

/// Our entry of a route's `status.parents` for one parentRef (as written, `raw_ref`).
fn parent_status(route: &RouteView, raw_ref: Value, accepted: Verdict, now: &str) -> Value {
    let previous = route
        .parents
        .iter()
        .find(|p| is_ours(p) && p.get("parentRef") == Some(&raw_ref))
        .and_then(|p| p.get("conditions"))
        .unwrap_or(&Value::Null);
    let (acc_status, acc_reason, acc_message) = accepted;
    let (res_status, res_reason, res_message) = match &route.unresolved {
        None => (
            "True",
            "ResolvedRefs",
            "all references resolved".to_string(),
        ),
        Some((reason, msg)) => ("False", *reason, msg.clone()),
    };
    let generation = route.meta.generation;
    json!({
        "parentRef": raw_ref,
        "controllerName": CONTROLLER_NAME,
        "conditions": [
            condition(previous, "Accepted", acc_status, acc_reason, &acc_message, generation, now),
            condition(previous, "ResolvedRefs", res_status, res_reason, &res_message, generation, now),
        ],
    })
}

/// The data plane's new state: the route table of every listener that listens, by port.
fn snapshot(faults: &FaultMap, gws: &HashMap<Key, Gw>, mut tables: Tables) -> PlaneSnapshot {
    let mut snapshot = PlaneSnapshot {
        faults: faults.clone(),
        ports: HashMap::new(),
    };
    for gw in gws.values() {
        for l in gw.listeners.iter().filter(|l| l.addr.is_ok()) {
            let lk = (gw.meta.key.clone(), l.spec.name.clone());
            let routes = tables.remove(&lk).unwrap_or_default();
            snapshot
                .ports
                .entry((gw.meta.key.clone(), l.spec.port))
                .or_default()
                .push(Arc::new(Table {
                    listener: l.spec.name.clone(),
                    listener_hostname: l.spec.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
                    port: l.spec.port,
                    routes,
                }));
        }
    }
    snapshot
}

/// The Service and data-plane pod each Gateway wants: its valid listeners' ports.
fn wanted(gws: &HashMap<Key, Gw>) -> Vec<super::deploy::Wanted> {
    gws.values()
        .map(|gw| super::deploy::Wanted {
            key: gw.meta.key.clone(),
            uid: gw.meta.uid.clone(),
            listeners: gw
                .listeners
                .iter()
                .filter(|l| l.invalid.is_none())
                .filter_map(|l| Some((l.spec.name.clone(), u16::try_from(l.spec.port).ok()?)))
                .collect(),
        })
        .collect()
}

/// Does a route in `route_ns` pass the listener's `allowedRoutes.namespaces`?
fn namespace_allowed(
    l: &Listener,
    gw_ns: &str,
    route_ns: &str,
    labels: &HashMap<String, BTreeMap<String, String>>,
) -> bool {
    let n = &l.allowed_routes.namespaces;
    match n.from.as_deref().unwrap_or("Same") {
        "All" => true,
        "Same" => gw_ns == route_ns,
        "Selector" => n
            .selector
            .as_ref()
            .zip(labels.get(route_ns))
            .is_some_and(|(s, l)| s.matches(l)),
        _ => false,
    }
}

/// Would merge-patching `desired` into `current` change anything?
fn differs(current: &Value, desired: &Value) -> bool {
    match desired.as_object() {
        Some(d) => d.iter().any(|(k, v)| current.get(k) != Some(v)),
        None => current != desired,
    }
}

/// A Gateway's address annotations and status.
fn gateway_status(gw: &Gw, now: &str) -> (BTreeMap<String, String>, Value) {
    let prev_listeners = gw.status.get("listeners").and_then(Value::as_array);
    let mut annotations = BTreeMap::new();
    let mut listeners = Vec::new();
    for l in &gw.listeners {
        let name = &l.spec.name;
        let prev = prev_listeners
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("conditions"))
            .unwrap_or(&Value::Null);
        if let Ok(addr) = &l.addr {
            annotations
                .entry(ADDRESS_ANNOTATION.to_string())
                .or_insert_with(|| addr.to_string());
            annotations.insert(format!("{ADDRESS_ANNOTATION}-{name}"), addr.to_string());
        }
        let supported = if l.invalid.is_none() && l.kinds_ok {
            json!([{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}])
        } else {
            json!([])
        };
        listeners.push(json!({
            "name": name,
            "attachedRoutes": l.attached.len(),
            "supportedKinds": supported,
            "conditions": listener_conditions(l, prev, gw.meta.generation, now),
        }));
    }
    let status = json!({
        "addresses": [{"type": "IPAddress", "value": "127.0.0.1"}],
        "conditions": gateway_conditions(gw, now),
        "listeners": listeners,
    });
    (annotations, status)
}

/// A listener's Accepted, Programmed and ResolvedRefs conditions (`prev`: as they are).
fn listener_conditions(l: &Lst, prev: &Value, generation: i64, now: &str) -> Vec<Value> {
    let c = |t: &str, s: &str, r: &str, m: &str| condition(prev, t, s, r, m, generation, now);
    let accepted = match &l.invalid {
        Some((reason, msg)) => c("Accepted", "False", reason, msg),
        None => c("Accepted", "True", "Accepted", "accepted"),
    };
    let programmed = match (&l.invalid, &l.addr) {
        (Some((_, msg)), _) => c("Programmed", "False", "Invalid", msg),
        (None, Err(e)) => c(
            "Programmed",
            "False",
            "Pending",
            &format!("cannot listen: {e}"),
        ),
        (None, Ok(addr)) => c(
            "Programmed",
            "True",
            "Programmed",
            &format!("listening on {addr}"),
        ),
    };
    // Route kinds are reported only on a listener that listens (an invalid one never does).
    let resolved = if l.kinds_ok || l.addr.is_err() {
        c("ResolvedRefs", "True", "ResolvedRefs", "no references")
    } else {
        c(
            "ResolvedRefs",
            "False",
            "InvalidRouteKinds",
            "only HTTPRoute is supported",
        )
    };
    vec![accepted, programmed, resolved]
}

/// A Gateway's Accepted and Programmed conditions, from its listeners'.
fn gateway_conditions(gw: &Gw, now: &str) -> [Value; 2] {
    let prev = gw.status.get("conditions").unwrap_or(&Value::Null);
    let c = |t: &str, (s, r, m): (&str, &str, &str)| {
        condition(prev, t, s, r, m, gw.meta.generation, now)
    };
    let valid = gw.listeners.iter().filter(|l| l.invalid.is_none()).count();
    let programmed = gw.listeners.iter().filter(|l| l.addr.is_ok()).count();
    let accepted = if valid == gw.listeners.len() {
        ("True", "Accepted", "accepted by the demo gateway")
    } else if valid > 0 {
        ("True", "ListenersNotValid", "some listeners are not valid")
    } else {
        ("False", "ListenersNotValid", "no listener is valid")
    };
    let programmed = if programmed > 0 && programmed == valid {
        ("True", "Programmed", "listening on 127.0.0.1")
    } else if programmed > 0 {
        ("True", "Programmed", "some listeners are not programmed")
    } else {
        ("False", "Invalid", "no listener is programmed")
    };
    [c("Accepted", accepted), c("Programmed", programmed)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_allowed() {
        let mut l = Listener::default();
        let labels: HashMap<String, BTreeMap<String, String>> = [(
            "apps".to_string(),
            [("team".to_string(), "a".to_string())]
                .into_iter()
                .collect(),
        )]
        .into_iter()
        .collect();
        assert!(namespace_allowed(&l, "gw", "gw", &labels));
        assert!(!namespace_allowed(&l, "gw", "apps", &labels));
        l.allowed_routes.namespaces.from = Some("All".into());
        assert!(namespace_allowed(&l, "gw", "apps", &labels));
        l.allowed_routes.namespaces.from = Some("Selector".into());
        assert!(!namespace_allowed(&l, "gw", "apps", &labels), "no selector");
        l.allowed_routes.namespaces.selector =
            Some(serde_json::from_value(json!({"matchLabels": {"team": "a"}})).unwrap());
        assert!(namespace_allowed(&l, "gw", "apps", &labels));
        assert!(!namespace_allowed(&l, "gw", "other", &labels));
    }

    #[test]
    fn merge_patch_differences() {
        let current = json!({"conditions": [1], "other": true});
        assert!(!differs(&current, &json!({"conditions": [1]})));
        assert!(differs(&current, &json!({"conditions": [2]})));
        assert!(differs(&Value::Null, &json!({"conditions": []})));
    }
}
