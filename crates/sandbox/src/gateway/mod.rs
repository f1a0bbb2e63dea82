//! The demo gateway (DESIGN §4 items 2 and 3): a small, honest Gateway API implementation
//! and the system under test of the shipped suites. An ordinary kube-rs controller, so it
//! runs against the sandbox's API server or any cluster with the Gateway API CRDs and
//! `fixtures/demo-crds.yaml` installed.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> anyhow::Result<()> {
//! use gwtest_sandbox::gateway::{DemoGateway, DemoGatewayConfig};
//! let gw = DemoGateway::start(client, DemoGatewayConfig {
//!     otlp_endpoint: Some("http://127.0.0.1:4317".into()),
//!     otlp_protocol_http: false,
//!     deploy: false,
//! }).await?;
//! // ... the Gateway's annotation demo.gwtest.dev/address says where it listens ...
//! gw.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! What it does:
//! - **GatewayClass** with `controllerName: demo.gwtest.dev/gateway-controller`: Accepted.
//! - **Gateway** of such a class: an HTTP server per port its `HTTP` listeners declare, on
//!   `127.0.0.1:0` (listeners of the same port share it and a request goes to the listener
//!   whose hostname matches it most specifically; the loopback port stays the same while the
//!   Gateway listens on that port; redirects use the declared port); status
//!   `addresses` (127.0.0.1), Accepted and Programmed, `listeners[]` with attachedRoutes;
//!   annotations `demo.gwtest.dev/address` (first listener) and
//!   `demo.gwtest.dev/address-<listener>`, by server-side apply as field manager
//!   `demo-gateway`. Other protocols are not accepted (UnsupportedProtocol); of listeners
//!   with the same name the first counts.
//! - **HTTPRoute** with parentRefs to such Gateways (`sectionName`, `port`, allowedRoutes
//!   `Same`/`All`/`Selector` and `kinds`, listener/route hostname intersection): a
//!   `status.parents[]` entry per parentRef (Accepted, ResolvedRefs; other controllers'
//!   entries are kept). Matching and precedence: [`routes`]. Filters:
//!   RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect (scheme, hostname, port,
//!   path, statusCode) and URLRewrite (hostname, path) (others: Accepted False,
//!   UnsupportedValue). Backends: Services (cross-namespace with a ReferenceGrant), picked
//!   by weight; the gateway answers as the echo backend itself, 200 with JSON `{path, host,
//!   method, headers, namespace, route, backend, query}` (the path and host after any
//!   rewrite) and the response headers `X-Echo-Set-Header: Name:value,...` asks for; an
//!   unresolved backend answers 500, no match 404.
//! - **Services** labelled `demo.gwtest.dev/discover: "true"`: [`discovery`].
//! - **Spans**: [`spans`], to `otlp_endpoint` (nothing without one).
//! - **Faults**: [`faults`].
//! - **Deployment** (the sandbox only, `deploy`): a Service and a data-plane Pod per
//!   Gateway, [`deploy`]; its own log per Gateway, [`log`].
//!
//! Status carries `observedGeneration` and keeps `lastTransitionTime` while a condition does
//! not change. Every write has a deadline; watches reconnect with a backoff (0.1 s to 5 s).

pub mod controller;
pub mod dataplane;
pub mod deploy;
pub mod discovery;
pub mod faults;
pub mod log;
pub mod model;
pub mod routes;
pub mod spans;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use controller::{Controller, WatchHealth, Watches};
use dataplane::DataPlane;
use spans::ExportProtocol;
use status::StatusWriter;

pub use controller::{ADDRESS_ANNOTATION, CONTROLLER_NAME, SPAN_NAME_ANNOTATION};

/// How the demo gateway reports.
#[derive(Clone, Debug, Default)]
pub struct DemoGatewayConfig {
    /// OTLP endpoint for spans, a full URL: e.g. `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318/v1/traces` (HTTP); none: no spans are exported.
    pub otlp_endpoint: Option<String>,
    /// OTLP/HTTP (protobuf) instead of gRPC.
    pub otlp_protocol_http: bool,
    /// Deploy like real implementations: a Service and a data-plane Pod per Gateway, run by
    /// [`DemoGateway::kubelet`] (the sandbox only: on a real cluster no pod would run).
    pub deploy: bool,
}

/// A running demo gateway.
pub struct DemoGateway {
    cancel: CancellationToken,
    /// The watchers: aborted at shutdown (they hold nothing that needs finishing).
    watchers: Vec<JoinHandle<()>>,
    /// The reconciler and the status writer: they stop on `cancel`.
    tasks: Vec<JoinHandle<()>>,
    plane: Arc<DataPlane>,
    spans: spans::SpanSink,
    export: Option<spans::SpanExport>,
    health: Arc<WatchHealth>,
    kubelet: Option<Arc<dyn crate::apiserver::pods::Kubelet>>,
}

/// Bounds of [`DemoGateway::shutdown`].
const STOP_TASKS: Duration = Duration::from_secs(2);
const FLUSH_SPANS: Duration = Duration::from_secs(2);

impl DemoGateway {
    /// Start the watchers, the reconciler, the status writer and the span exporter. Returns
    /// at once: listeners come up as Gateways are reconciled (a cluster without the CRDs
    /// yet is watched until they appear).
    pub async fn start(
        client: kube::Client,
        cfg: DemoGatewayConfig,
    ) -> anyhow::Result<DemoGateway> {
        let protocol = if cfg.otlp_protocol_http {
            ExportProtocol::HttpProtobuf
        } else {
            ExportProtocol::Grpc
        };
        let (sink, export) = spans::start(cfg.otlp_endpoint.as_deref(), protocol)?;
        let cancel = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let plane = DataPlane::new(sink.clone(), wake.clone(), cancel.clone());
        let writer = StatusWriter::new(client.clone(), wake.clone());
        let health = Arc::new(WatchHealth::default());
        let (watches, mut watchers) = Watches::start(&client, &wake, &health);
        let mut controller = Controller::new(watches, plane.clone(), writer.clone(), wake);
        let mut kubelet = None;
        if cfg.deploy {
            let (d, tasks) =
                deploy::Deployer::start(&client, plane.clone(), &health, cancel.clone());
            kubelet = Some(d.kubelet());
            controller = controller.with_deployer(d);
            watchers.extend(tasks);
        }
        let tasks = vec![
            tokio::spawn(controller.run(cancel.clone())),
            tokio::spawn(writer.run(cancel.clone())),
        ];
        Ok(DemoGateway {
            cancel,
            watchers,
            tasks,
            plane,
            spans: sink,
            export,
            health,
            kubelet,
        })
    }

    /// What runs its data-plane pods (with `deploy`), for the API server's
    /// `pods/portforward` and `pods/log`.
    pub fn kubelet(&self) -> Option<Arc<dyn crate::apiserver::pods::Kubelet>> {
        self.kubelet.clone()
    }

    /// The listeners being served: (Gateway namespace, Gateway name, listener name, address).
    pub fn listeners(&self) -> Vec<(String, String, String, SocketAddr)> {
        self.plane
            .addresses()
            .into_iter()
            .map(|((k, l), a)| (k.namespace, k.name, l, a))
            .collect()
    }

    /// The kinds it cannot watch at the moment, with the last error (e.g. a cluster without
    /// the Gateway API CRDs): kind plural → error.
    pub fn watch_errors(&self) -> std::collections::BTreeMap<String, String> {
        self.health.errors()
    }

    /// Spans handed to the exporter, dropped (queue full), exported, failed to export.
    pub fn span_counts(&self) -> (u64, u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.spans.counters();
        (
            c.queued.load(Relaxed),
            c.dropped.load(Relaxed),
            c.exported.load(Relaxed),
            c.failed.load(Relaxed),
        )
    }

    /// Stop the controllers and the listeners, then send the spans still queued. Bounded
    /// (a few seconds at most), whatever the API server and the OTLP endpoint do.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for w in &self.watchers {
            w.abort();
        }
        let mut tasks = self.tasks;
        let stop = async {
            self.plane.shutdown().await;
            futures::future::join_all(tasks.iter_mut()).await;
        };
        if tokio::time::timeout(STOP_TASKS, stop).await.is_err() {
            for t in &tasks {
                t.abort();
            }
        }
        if let Some(e) = self.export {
            e.shutdown(FLUSH_SPANS).await;
        }
    }
}
