//! The sandbox (DESIGN §4): an embedded Kubernetes API server with the Gateway API kinds and
//! the demo `Upstream` kind registered, and the demo gateway reconciling against it — in one
//! process, on loopback, with no cluster. `gwtest sandbox` serves it until Ctrl-C; `gwtest run
//! --sandbox` starts it in-process. Everything talks to it through the same kube client and
//! HTTP paths as to a real cluster.

pub mod apiserver;
pub mod gateway;
pub mod tracecontext;

pub use tracecontext::hex;

use std::path::{Path, PathBuf};

use anyhow::Context;

use apiserver::{ApiServer, ApiServerConfig};
use gateway::{DemoGateway, DemoGatewayConfig};

/// The demo gateway's CRD (`Upstream`), the file a user applies to a real cluster.
pub const DEMO_CRDS: &str = include_str!("../../../fixtures/demo-crds.yaml");

/// The CRDs the sandbox starts with: the official Gateway API standard channel (vendored
/// unmodified in gwtest-schema, see [`gwtest_schema::gateway_api`]) and the demo CRDs.
pub fn sandbox_crds() -> anyhow::Result<Vec<serde_json::Value>> {
    let mut crds = gwtest_schema::gateway_api::crds();
    crds.extend(parse_manifests(DEMO_CRDS)?);
    Ok(crds)
}

/// Registers [`sandbox_crds`] on an API server, as a client applying them would.
pub fn register_crds(api: &ApiServer) -> anyhow::Result<()> {
    for crd in sandbox_crds()? {
        api.apply_manifest(crd)
            .context("registering the sandbox CRDs")?;
    }
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct SandboxConfig {
    /// Where to write the kubeconfig (default: a temporary file removed at shutdown).
    pub kubeconfig_out: Option<PathBuf>,
    /// Where the demo gateway sends its spans: an OTLP/gRPC endpoint, or OTLP/HTTP when the
    /// URL ends in `/v1/traces` (see [`demo_gateway_config`]).
    pub otlp_endpoint: Option<String>,
    /// How long a deleted namespace stays Terminating (see [`ApiServerConfig`]).
    pub namespace_termination: std::time::Duration,
}

/// The demo gateway's configuration for spans sent to `otlp_endpoint`: OTLP/HTTP when the
/// URL's path ends in `/v1/traces` (the OTLP/HTTP traces path), OTLP/gRPC otherwise.
pub fn demo_gateway_config(otlp_endpoint: Option<String>) -> DemoGatewayConfig {
    let http = otlp_endpoint
        .as_deref()
        .is_some_and(|u| u.trim_end_matches('/').ends_with("/v1/traces"));
    DemoGatewayConfig {
        otlp_endpoint,
        otlp_protocol_http: http,
        deploy: false,
    }
}

/// Start the demo gateway against the cluster `kube` reaches (what `run --demo-gateway`
/// and `sandbox --demo-gateway-only` do; the sandbox starts its own).
pub async fn start_demo_gateway(
    client: kube::Client,
    otlp_endpoint: Option<String>,
) -> anyhow::Result<DemoGateway> {
    DemoGateway::start(client, demo_gateway_config(otlp_endpoint))
        .await
        .context("starting the demo gateway")
}

/// A running sandbox.
pub struct Sandbox {
    api: ApiServer,
    gateway: DemoGateway,
    kubeconfig: PathBuf,
    /// A directory we created for the kubeconfig, removed at shutdown.
    temp_dir: Option<PathBuf>,
}

/// Parse a multi-document YAML manifest into JSON objects.
pub fn parse_manifests(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).context("parsing manifests")?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

impl Sandbox {
    /// Start the API server, register the CRDs, write the kubeconfig, start the demo gateway
    /// against the API server.
    pub async fn start(cfg: SandboxConfig) -> anyhow::Result<Sandbox> {
        let api = ApiServer::start(ApiServerConfig {
            namespace_termination: cfg.namespace_termination,
            ..ApiServerConfig::default()
        })
        .await
        .context("starting the embedded API server")?;
        register_crds(&api)?;
        let (kubeconfig, temp_dir) = match cfg.kubeconfig_out {
            Some(p) => (p, None),
            None => {
                let dir = std::env::temp_dir().join(format!("gwtest-sandbox-{}", random_suffix(8)));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        if let Some(parent) = kubeconfig.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        api.write_kubeconfig(&kubeconfig)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        // In the sandbox the gateway deploys a Service and a data-plane pod per Gateway, and
        // runs those pods for the API server (port-forward, logs).
        let started = match kube::Client::try_from(api.kube_config()) {
            Ok(client) => DemoGateway::start(
                client,
                DemoGatewayConfig {
                    deploy: true,
                    ..demo_gateway_config(cfg.otlp_endpoint)
                },
            )
            .await
            .context("starting the demo gateway"),
            Err(e) => Err(anyhow::Error::new(e).context("a client for the embedded API server")),
        };
        let gateway = match started {
            Ok(g) => {
                if let Some(k) = g.kubelet() {
                    api.set_kubelet(k);
                }
                g
            }
            Err(e) => {
                api.shutdown().await;
                if let Some(d) = temp_dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                return Err(e);
            }
        };
        Ok(Sandbox {
            api,
            gateway,
            kubeconfig,
            temp_dir,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn url(&self) -> &str {
        self.api.url()
    }

    /// A kube client configuration for the API server.
    pub fn kube_config(&self) -> kube::Config {
        self.api.kube_config()
    }

    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    pub fn demo_gateway(&self) -> &DemoGateway {
        &self.gateway
    }

    /// Stop everything (the gateway first, flushing its spans) and remove the temporary
    /// kubeconfig.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.api.shutdown().await;
        if let Some(d) = self.temp_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// `n` random lower-case letters and digits (unique temporary names).
fn random_suffix(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| CHARS[fastrand::usize(..CHARS.len())] as char)
        .collect()
}
