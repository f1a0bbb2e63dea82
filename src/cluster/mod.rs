//! Cluster access (kube-rs): client, discovery, server-side apply, watches, delete-and-wait.

pub mod gc;

/// An object a test applied, remembered for cleanup and `replaced` detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

/// A connected cluster.
#[derive(Debug)]
pub struct Cluster {}

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

/// Commands a person can run to look at a kept or paused namespace.
pub fn inspect_commands(namespace: &str, kubeconfig: Option<&std::path::Path>) -> Vec<String> {
    let kc = kubeconfig
        .map(|k| {
            format!(
                " --kubeconfig {}",
                crate::util::shell_quote(&k.display().to_string())
            )
        })
        .unwrap_or_default();
    vec![
        format!("kubectl{kc} get all,gateways,httproutes -n {namespace}"),
        format!("kubectl{kc} get events -n {namespace} --sort-by=.lastTimestamp"),
        format!("kubectl{kc} delete namespace {namespace}"),
    ]
}

impl Cluster {
    /// Create a test namespace labelled with the run id.
    pub async fn create_namespace(
        &self,
        _name: &str,
        _run_id: &str,
        _deadline: tokio::time::Instant,
    ) -> Result<(), String> {
        Err("cluster support is not built yet".into())
    }

    /// Delete tracked objects newest first, then the namespace, and wait until gone.
    pub async fn cleanup(
        &self,
        _tracked: &[Tracked],
        _namespace: Option<&str>,
        _deadline: tokio::time::Instant,
    ) -> Result<(), String> {
        Err("cluster support is not built yet".into())
    }
}

impl Cluster {
    /// Suite setup: the shared namespace (per-suite or fixed), fixtures, `from` variables.
    pub async fn setup_suite(
        &self,
        _ctx: &std::sync::Arc<crate::engine::RunContext>,
        _suite: &crate::suite::load::Suite,
        _vars: &mut crate::suite::vars::Vars,
    ) -> Result<crate::engine::lifecycle::NamespaceMode, crate::engine::events::Failure> {
        Err(crate::engine::events::Failure::error(
            "cluster support is not built yet",
        ))
    }

    /// Suite teardown: remove fixtures and the shared namespace.
    pub async fn teardown_suite(
        &self,
        _ctx: &std::sync::Arc<crate::engine::RunContext>,
        _suite: &crate::suite::load::Suite,
    ) -> Result<(), String> {
        Ok(())
    }
}
