//! Connecting: kubeconfig (`--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`), `--context`, or
//! in-cluster config; then a bounded probe of `/version`, so a dead cluster or bad credentials
//! are reported (exit 3) within seconds, naming the server and the cause.

use std::path::Path;
use std::time::Duration;

use kube::config::KubeConfigOptions;

use super::{Cluster, ClusterError, error_chain};

/// How long connecting may take before the cluster counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A kube client configuration from the usual places, loaded as kubectl loads them (see
/// [`super::kubeconfig`]): `--kubeconfig`, the `$KUBECONFIG` list (missing files skipped),
/// `~/.kube/config`, else in-cluster. A `--context` the kubeconfig lacks is said so.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, ClusterError> {
    let invalid = ClusterError::Config;
    match super::kubeconfig::load(kubeconfig)? {
        Some(mut loaded) => {
            if let Some(c) = context {
                super::kubeconfig::use_context(&mut loaded, c)?;
            }
            let options = KubeConfigOptions {
                context: context.map(str::to_owned),
                ..Default::default()
            };
            let source = loaded.source.clone();
            kube::Config::from_custom_kubeconfig(loaded.config, &options)
                .await
                .map_err(|e| invalid(format!("kubeconfig {source}: {}", error_chain(&e))))
        }
        None => {
            if let Some(c) = context {
                return Err(invalid(format!(
                    "context {c:?} not found: there is no kubeconfig ($KUBECONFIG names no \
                     existing file, and ~/.kube/config does not exist)"
                )));
            }
            kube::Config::incluster().map_err(|e| {
                invalid(format!(
                    "no usable kubeconfig ($KUBECONFIG or ~/.kube/config) and not running in a \
                     cluster: {}",
                    error_chain(&e)
                ))
            })
        }
    }
}

pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    timeout: Duration,
) -> Result<Cluster, ClusterError> {
    let mut cfg = config(kubeconfig, context).await?;
    cfg.connect_timeout = Some(timeout.min(Duration::from_secs(5)));
    connect_with(cfg, kubeconfig.map(Path::to_path_buf), timeout)
        .await
        .map(|c| c.with_context(context))
}

/// Connect with a prepared configuration (the sandbox hands one over directly).
pub async fn connect_with(
    cfg: kube::Config,
    kubeconfig: Option<std::path::PathBuf>,
    timeout: Duration,
) -> Result<Cluster, ClusterError> {
    let server = cfg.cluster_url.to_string().trim_end_matches('/').to_owned();
    let connect_timeout = cfg.connect_timeout;
    let client = kube::Client::try_from(cfg).map_err(|e| ClusterError::from_kube(e, &server))?;
    match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Err(_) => Err(ClusterError::Unreachable {
            server,
            cause: format!("no answer within {}", crate::util::fmt_duration(timeout)),
        }),
        // /version is open to every authenticated user: a 403 there is about who we are.
        Ok(Err(kube::Error::Api(s))) if s.code == 401 || s.code == 403 => Err(ClusterError::Auth {
            server,
            cause: format!("refused ({} {}): {}", s.code, s.reason, s.message),
        }),
        Ok(Err(e)) => {
            let timed_out = super::has_io_kind(&e, std::io::ErrorKind::TimedOut);
            match ClusterError::from_kube(e, &server) {
                ClusterError::Unreachable { server, cause } => Err(ClusterError::Unreachable {
                    server,
                    cause: match (timed_out, connect_timeout) {
                        // The client's connect timeout covers the TLS handshake too: it is
                        // what a port that accepts and never answers runs into.
                        (true, Some(t)) => format!(
                            "no answer within {} (connecting: TCP and TLS handshake)",
                            crate::util::fmt_duration(t)
                        ),
                        _ => cause,
                    },
                }),
                other => Err(other),
            }
        }
        Ok(Ok(_)) => Ok(Cluster::new(client, server, kubeconfig)),
    }
}
