//! Which kubeconfig a run uses, loaded as kubectl loads it, and the one file `${kubeconfig}`
//! names.
//!
//! - `--kubeconfig PATH`: that file (it must exist);
//! - else `$KUBECONFIG`: a list of files (`:`-separated), merged first-wins; a file of the
//!   list that does not exist is skipped, as kubectl skips it;
//! - else `~/.kube/config` when it exists;
//! - else in-cluster (the service account's token and CA, `KUBERNETES_SERVICE_HOST`).
//!
//! A program a test runs (`kubectl --kubeconfig ${kubeconfig}` in an `exec` step) needs one
//! usable file, whatever the run was given: gwtest writes the merged configuration (current
//! context: `--context`, when given) — or, in-cluster, a kubeconfig pointing at the service
//! account's files — to a private file for the run.

use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster as KubeCluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};

use super::{ClusterError, error_chain};

/// Where the service account's files are, in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A kubeconfig as loaded, and what it was loaded from (for messages).
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Kubeconfig,
    /// `--kubeconfig a.yaml`, `$KUBECONFIG (a:b)`, `~/.kube/config`.
    pub source: String,
    /// Files of `$KUBECONFIG` that did not exist.
    pub skipped: Vec<PathBuf>,
}

/// A kubeconfig that cannot be used: the cluster is unusable for the run (exit 3).
fn invalid(msg: String) -> ClusterError {
    ClusterError::Config(msg)
}

fn read(path: &Path) -> Result<Kubeconfig, ClusterError> {
    Kubeconfig::read_from(path).map_err(|e| {
        invalid(format!(
            "cannot read kubeconfig {}: {}",
            path.display(),
            error_chain(&e)
        ))
    })
}

/// The kubeconfig kubectl would use, or `None` (then: in-cluster). `kubeconfig_env` is the
/// value of `$KUBECONFIG`, `home` of `$HOME`.
pub fn load_from(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&std::ffi::OsStr>,
    home: Option<&Path>,
) -> Result<Option<Loaded>, ClusterError> {
    if let Some(p) = explicit {
        return Ok(Some(Loaded {
            config: read(p)?,
            source: format!("--kubeconfig {}", p.display()),
            skipped: Vec::new(),
        }));
    }
    if let Some(list) = kubeconfig_env.filter(|v| !v.is_empty()) {
        let mut merged: Option<Kubeconfig> = None;
        let mut skipped = Vec::new();
        for p in std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()) {
            if !p.exists() {
                skipped.push(p);
                continue;
            }
            let next = read(&p)?;
            merged = Some(match merged {
                None => next,
                Some(m) => m.merge(next).map_err(|e| {
                    invalid(format!(
                        "merging kubeconfig {}: {}",
                        p.display(),
                        error_chain(&e)
                    ))
                })?,
            });
        }
        let source = format!("$KUBECONFIG ({})", list.to_string_lossy());
        return Ok(merged.map(|config| Loaded {
            config,
            source,
            skipped,
        }));
    }
    let default = home.map(|h| h.join(".kube").join("config"));
    match default {
        Some(p) if p.is_file() => Ok(Some(Loaded {
            config: read(&p)?,
            source: p.display().to_string(),
            skipped: Vec::new(),
        })),
        _ => Ok(None),
    }
}

/// [`load_from`] with this process's environment.
pub fn load(explicit: Option<&Path>) -> Result<Option<Loaded>, ClusterError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    load_from(
        explicit,
        std::env::var_os("KUBECONFIG").as_deref(),
        home.as_deref(),
    )
}

/// Make `context` the current context, or say it is not there (and which are).
pub fn use_context(loaded: &mut Loaded, context: &str) -> Result<(), ClusterError> {
    if !loaded.config.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = loaded
            .config
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(invalid(format!(
            "context {context:?} not found in {} (contexts: {})",
            loaded.source,
            crate::util::list_or_none(&known)
        )));
    }
    loaded.config.current_context = Some(context.to_owned());
    Ok(())
}

/// A kubeconfig for the pod this runs in, from `KUBERNETES_SERVICE_HOST`/`_PORT` and the
/// service account's files in `sa_dir`; `None` outside a cluster.
pub fn in_cluster(host: Option<&str>, port: Option<&str>, sa_dir: &Path) -> Option<Kubeconfig> {
    let host = host.filter(|h| !h.is_empty())?;
    let port = port.filter(|p| !p.is_empty()).unwrap_or("443");
    let token = sa_dir.join("token");
    if !token.is_file() {
        return None;
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let ca = sa_dir.join("ca.crt");
    let namespace = std::fs::read_to_string(sa_dir.join("namespace"))
        .ok()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    Some(Kubeconfig {
        clusters: vec![NamedCluster {
            name: "in-cluster".into(),
            cluster: Some(KubeCluster {
                server: Some(format!("https://{host}:{port}")),
                certificate_authority: ca.is_file().then(|| ca.display().to_string()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "in-cluster".into(),
            auth_info: Some(AuthInfo {
                token_file: Some(token.display().to_string()),
                ..Default::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: "in-cluster".into(),
            context: Some(Context {
                cluster: "in-cluster".into(),
                user: Some("in-cluster".into()),
                namespace,
                ..Default::default()
            }),
            other: Default::default(),
        }],
        current_context: Some("in-cluster".into()),
        ..Default::default()
    })
}

/// The kubeconfig a run hands to programs: loaded as kubectl would (with `context` current),
/// or the in-cluster one. `Ok(None)` when there is none at all.
pub fn for_programs(
    explicit: Option<&Path>,
    context: Option<&str>,
) -> Result<Option<Kubeconfig>, ClusterError> {
    match load(explicit)? {
        Some(mut l) => {
            if let Some(c) = context {
                use_context(&mut l, c)?;
            }
            Ok(Some(l.config))
        }
        None => Ok(in_cluster(
            std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref(),
            std::env::var("KUBERNETES_SERVICE_PORT").ok().as_deref(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )),
    }
}

/// Write `kc` to a new private directory (returned first, to remove after the run), as a file
/// only its owner can read: it holds credentials.
pub fn write_private(kc: &Kubeconfig) -> Result<(PathBuf, PathBuf), String> {
    let yaml = serde_saphyr::to_string(kc).map_err(|e| format!("writing a kubeconfig: {e}"))?;
    let dir = std::env::temp_dir().join(format!(
        "gwtest-kubeconfig-{}",
        crate::util::random_suffix(8)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = dir.join("kubeconfig");
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(yaml.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok((dir, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_dir;

    fn config(cluster: &str, server: &str, current: Option<&str>) -> String {
        format!(
            "apiVersion: v1\nkind: Config\n{}clusters:\n- name: {cluster}\n  cluster:\n    \
             server: {server}\n    certificate-authority: ca.crt\nusers:\n- name: {cluster}\n  \
             user:\n    token: t-{cluster}\ncontexts:\n- name: {cluster}\n  context:\n    \
             cluster: {cluster}\n    user: {cluster}\n",
            current
                .map(|c| format!("current-context: {c}\n"))
                .unwrap_or_default()
        )
    }

    #[test]
    fn a_kubeconfig_list_is_merged_first_wins_and_missing_files_are_skipped() {
        let d = test_dir("kc-list");
        std::fs::write(d.join("a"), config("a", "https://a:6443", Some("a"))).unwrap();
        std::fs::write(d.join("b"), config("b", "https://b:6443", Some("b"))).unwrap();
        let list = std::env::join_paths([d.join("missing"), d.join("a"), d.join("b")]).unwrap();
        let mut l = load_from(None, Some(&list), None).unwrap().unwrap();
        assert_eq!(l.skipped, [d.join("missing")]);
        assert_eq!(l.config.current_context.as_deref(), Some("a"));
        let names: Vec<&str> = l.config.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // Relative paths were made absolute: the merged file works from anywhere.
        let ca = l.config.clusters[0]
            .cluster
            .as_ref()
            .unwrap()
            .certificate_authority
            .clone();
        assert_eq!(ca, Some(d.join("ca.crt").display().to_string()));
        use_context(&mut l, "b").unwrap();
        assert_eq!(l.config.current_context.as_deref(), Some("b"));
        let e = use_context(&mut l, "nope").unwrap_err().to_string();
        assert!(
            e.contains("context \"nope\" not found in $KUBECONFIG ("),
            "{e}"
        );
        assert!(e.ends_with("(contexts: a, b)"), "{e}");
        // Only missing files: nothing, as kubectl (no fallback to ~/.kube/config).
        let only_missing = std::env::join_paths([d.join("x"), d.join("y")]).unwrap();
        assert!(
            load_from(None, Some(&only_missing), Some(&d))
                .unwrap()
                .is_none()
        );
        // An explicit file must exist.
        assert!(load_from(Some(&d.join("missing")), None, None).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn in_cluster_config_points_at_the_service_account() {
        let d = test_dir("kc-sa");
        assert!(
            in_cluster(Some("10.0.0.1"), Some("443"), &d).is_none(),
            "no token"
        );
        std::fs::write(d.join("token"), "tok").unwrap();
        std::fs::write(d.join("ca.crt"), "ca").unwrap();
        std::fs::write(d.join("namespace"), "team-a\n").unwrap();
        assert!(in_cluster(None, None, &d).is_none(), "not in a cluster");
        let kc = in_cluster(Some("fd00::1"), Some("6443"), &d).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://[fd00::1]:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(d.join("ca.crt").to_str().unwrap())
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some(d.join("token").to_str().unwrap())
        );
        let ctx = kc.contexts[0].context.as_ref().unwrap();
        assert_eq!(ctx.namespace.as_deref(), Some("team-a"));
        // It round-trips through the file kubectl would read.
        let (dir, file) = write_private(&kc).unwrap();
        let back = Kubeconfig::read_from(&file).unwrap();
        assert_eq!(back.current_context.as_deref(), Some("in-cluster"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
