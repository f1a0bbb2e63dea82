//! Connecting: kubeconfig (`--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`), `--context`, or
//! in-cluster config; then a bounded probe of `/version`, so a dead cluster or bad credentials
//! are reported (exit 3) within seconds, naming the server and the cause.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{Cluster, ClusterError, error_chain};

/// How long connecting may take before the cluster counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A kube client configuration from the usual places.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, ClusterError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let invalid = ClusterError::Config;
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| {
                invalid(format!(
                    "cannot read kubeconfig {}: {}",
                    path.display(),
                    error_chain(&e)
                ))
            })?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| {
                    invalid(format!(
                        "kubeconfig {}: {}",
                        path.display(),
                        error_chain(&e)
                    ))
                })
        }
        None => match kube::Config::from_kubeconfig(&options).await {
            Ok(c) => Ok(c),
            Err(file_err) => {
                if context.is_none()
                    && let Ok(c) = kube::Config::incluster()
                {
                    return Ok(c);
                }
                Err(invalid(format!(
                    "no usable kubeconfig ($KUBECONFIG or ~/.kube/config) and not running in a cluster: {}",
                    error_chain(&file_err)
                )))
            }
        },
    }
}

/// Connect and check the server answers (bounded by `timeout`).
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

/// A copy of the kubeconfig whose current context is `context`, in a new private directory
/// (returned first, to remove after the run): what `${kubeconfig}` hands to programs — kubectl
/// in an `exec` step — so they reach the cluster the run reaches.
pub fn pinned_kubeconfig(
    kubeconfig: Option<&Path>,
    context: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf), ClusterError> {
    let config = |m: String| ClusterError::Config(m);
    let mut kc = match kubeconfig {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|e| config(format!("reading the kubeconfig: {}", error_chain(&e))))?;
    if !kc.contexts.iter().any(|c| c.name == context) {
        return Err(config(format!("the kubeconfig has no context {context:?}")));
    }
    kc.current_context = Some(context.to_owned());
    let yaml =
        serde_saphyr::to_string(&kc).map_err(|e| config(format!("writing a kubeconfig: {e}")))?;
    let dir = std::env::temp_dir().join(format!(
        "gwtest-kubeconfig-{}",
        crate::util::random_suffix(8)
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| config(format!("creating {}: {e}", dir.display())))?;
    let file = dir.join("kubeconfig");
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // It holds credentials.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(yaml.as_bytes()))
        .map_err(|e| config(format!("writing {}: {e}", file.display())))?;
    Ok((dir, file))
}
