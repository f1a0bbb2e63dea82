//! What a run stands on, brought up before its tests and taken down after them: the OTLP
//! receiver, the cluster (connected, or an in-process sandbox) and the demo gateway. `main`
//! composes it with the run (`engine::run`); a failure to bring something up is a
//! [`StartError`], which the run reports through its events (exit 3).

use std::path::PathBuf;
use std::sync::Arc;

use gwtest_sandbox::gateway::DemoGateway;
use gwtest_sandbox::{Sandbox, SandboxConfig};

use super::RunContext;
use super::events::EventSink;
use super::run::{Needs, Run};
use crate::cluster::Cluster;
use crate::cluster::connect::{self, CONNECT_TIMEOUT};
use crate::config::RunConfig;
use crate::traces::receiver::Receiver;
use crate::traces::store::SpanStore;

/// Why what the run needs could not be brought up. Every one is an infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Receiver(#[from] crate::traces::BindError),
    #[error("the sandbox failed to start: {0:#}")]
    Sandbox(anyhow::Error),
    #[error("the sandbox's API server does not answer: {0}")]
    SandboxApi(crate::cluster::ClusterError),
    /// The cluster the picked tests (or `--demo-gateway`) need cannot be used.
    #[error("{error}\n  (needed by {needed_by})")]
    Cluster {
        error: crate::cluster::ClusterError,
        needed_by: String,
    },
    #[error("the kubeconfig for ${{kubeconfig}}: {0}")]
    Kubeconfig(String),
    #[error("the demo gateway failed to start: {0:#}")]
    DemoGateway(anyhow::Error),
}

/// The receiver, cluster and demo gateway of one run, as far as it needs them.
#[derive(Default)]
pub struct Infra {
    receiver: Option<Receiver>,
    store: Option<Arc<SpanStore>>,
    cluster: Option<Arc<Cluster>>,
    /// `${kubeconfig}`: one usable file, whatever the run was given.
    kubeconfig: Option<PathBuf>,
    /// The private directory holding that file, removed at shutdown.
    kubeconfig_dir: Option<PathBuf>,
    sandbox: Option<Sandbox>,
    demo_gateway: Option<DemoGateway>,
}

impl Infra {
    /// Bring up what `needs` and the configuration ask for; on failure, take down what was
    /// already up.
    pub async fn start(
        config: &RunConfig,
        needs: &Needs,
        namespace_termination: std::time::Duration,
    ) -> Result<Infra, StartError> {
        let mut infra = Infra::default();
        match infra.bring_up(config, needs, namespace_termination).await {
            Ok(()) => Ok(infra),
            Err(e) => {
                infra.shutdown().await;
                Err(e)
            }
        }
    }

    async fn bring_up(
        &mut self,
        config: &RunConfig,
        needs: &Needs,
        namespace_termination: std::time::Duration,
    ) -> Result<(), StartError> {
        // The OTLP receiver: for spans steps, on request, and for the demo gateway to report to.
        if needs.spans.is_some() || config.otlp_receiver || config.sandbox || config.demo_gateway {
            let store = Arc::new(SpanStore::new(config.max_spans));
            self.receiver = Some(Receiver::start(
                &config.otlp_listen,
                &config.otlp_http_listen,
                store.clone(),
            )?);
            self.store = Some(store);
        }
        let otlp = self
            .receiver
            .as_ref()
            .map(|r| r.grpc_endpoint().to_string());
        if config.sandbox {
            let sandbox = Sandbox::start(SandboxConfig {
                kubeconfig_out: None,
                otlp_endpoint: otlp,
                namespace_termination,
            })
            .await
            .map_err(StartError::Sandbox)?;
            let kubeconfig = sandbox.kubeconfig().to_path_buf();
            let kube_config = sandbox.kube_config();
            self.sandbox = Some(sandbox);
            let cluster =
                connect::connect_with(kube_config, Some(kubeconfig.clone()), CONNECT_TIMEOUT)
                    .await
                    .map_err(StartError::SandboxApi)?;
            self.cluster = Some(Arc::new(cluster));
            self.kubeconfig = Some(kubeconfig);
            // The sandbox runs its own demo gateway.
            return Ok(());
        }
        if needs.cluster.is_none() && !config.demo_gateway {
            return Ok(());
        }
        let cluster = connect::connect(
            config.kubeconfig.as_deref(),
            config.context.as_deref(),
            CONNECT_TIMEOUT,
        )
        .await
        .map_err(|error| StartError::Cluster {
            error,
            needed_by: match &needs.cluster {
                Some(step) => step.to_string(),
                None => "--demo-gateway".to_owned(),
            },
        })?;
        let cluster = Arc::new(cluster);
        self.cluster = Some(cluster.clone());
        // `${kubeconfig}`: one usable file whatever the run was given (a merged $KUBECONFIG
        // list, --context as the current context, in-cluster credentials).
        // (Files read and written off the async threads.)
        let (explicit, context) = (config.kubeconfig.clone(), config.context.clone());
        let written = tokio::task::spawn_blocking(move || {
            use crate::cluster::kubeconfig::{for_programs, write_private};
            for_programs(explicit.as_deref(), context.as_deref())
                .map_err(|e| e.to_string())?
                .map(|kc| write_private(&kc))
                .transpose()
        })
        .await
        .map_err(|e| StartError::Kubeconfig(e.to_string()))?
        .map_err(StartError::Kubeconfig)?;
        if let Some((dir, file)) = written {
            self.kubeconfig = Some(file);
            self.kubeconfig_dir = Some(dir);
        }
        // --demo-gateway: the demo gateway in this process against the cluster, its spans to
        // the run's receiver.
        if config.demo_gateway {
            let otlp = self
                .receiver
                .as_ref()
                .map(|r| r.grpc_endpoint().to_string());
            let gateway = gwtest_sandbox::start_demo_gateway(cluster.client().clone(), otlp)
                .await
                .map_err(StartError::DemoGateway)?;
            self.demo_gateway = Some(gateway);
        }
        Ok(())
    }

    /// The context the tests of run `run` share, on what is up.
    pub fn context(&self, config: RunConfig, events: EventSink, run: &Run) -> RunContext {
        let mut ctx = RunContext::local(config, events);
        ctx.run_id = run.run_id.clone();
        ctx.trace_id = run.trace_id;
        ctx.cluster = self.cluster.clone();
        ctx.kubeconfig = self.kubeconfig.clone();
        ctx.exporting = ctx.config.otlp_export.is_some();
        ctx.spans = self.store.clone();
        ctx.otlp = self.receiver.as_ref().map(|r| r.endpoints());
        ctx
    }

    /// Take everything down, the gateway before the cluster it reconciles.
    pub async fn shutdown(self) {
        if let Some(g) = self.demo_gateway {
            g.shutdown().await;
        }
        if let Some(s) = self.sandbox {
            s.shutdown().await;
        }
        if let Some(d) = self.kubeconfig_dir {
            let _ = tokio::fs::remove_dir_all(d).await;
        }
        if let Some(r) = self.receiver {
            r.shutdown().await;
        }
    }
}
