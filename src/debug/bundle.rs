//! Failure bundles (`--artifacts DIR`): for every failed test, a directory holding the failure
//! story, each context section (last response, object, diff, spans seen) as a file, and — for
//! tests with a namespace — a dump of every object in it and its events, taken before cleanup.
//! A CI job uploads DIR and nobody needs to rerun to look.
//!
//! Layout: `DIR/<suite>/<test>[#N]/try-<T>/` with `failure.txt`, `NN-<section>.txt`, and
//! `cluster/<Kind>.<name>.yaml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::discovery::{Discovery, Scope, verbs};

use crate::cluster::{Cluster, Kind};
use crate::engine::events::TestKey;

/// Where a test try's bundle goes.
pub fn dir_for(root: &Path, id: &TestKey, try_no: u32) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut test = clean(&id.name);
    if id.repeat > 0 {
        test.push_str(&format!("#{}", id.repeat + 1));
    }
    root.join(clean(&id.suite))
        .join(test)
        .join(format!("try-{try_no}"))
}

/// A file name for a section title: `02-last-response.txt`.
pub fn section_file(index: usize, title: &str) -> String {
    let slug: String = title
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("{:02}-{slug}.txt", index + 1)
}

const DUMP_TIMEOUT: Duration = Duration::from_secs(20);

/// Write every object of `namespace` (managedFields dropped, Secrets' values redacted unless
/// `show_secrets`) under `dir/cluster/`. Returns how many objects were written. Bounded in
/// time; what could not be read is skipped.
pub async fn dump_namespace(
    cluster: &Cluster,
    namespace: &str,
    dir: &Path,
    show_secrets: bool,
) -> anyhow::Result<usize> {
    let out = dir.join("cluster");
    tokio::fs::create_dir_all(&out).await?;
    let work = async {
        let discovery = Discovery::new(cluster.client().clone()).run().await?;
        let mut n = 0;
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                    continue;
                }
                let kind = Kind {
                    namespaced: true,
                    has_status: false,
                    ar,
                };
                let Ok(items) = cluster.list(&kind, Some(namespace), "").await else {
                    continue;
                };
                for mut o in items {
                    if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                        m.remove("managedFields");
                    }
                    // List items do not say their kind: the file is a manifest again.
                    if let Some(m) = o.as_object_mut() {
                        let api_version = match kind.ar.group.as_str() {
                            "" => kind.ar.version.clone(),
                            g => format!("{g}/{}", kind.ar.version),
                        };
                        m.entry("apiVersion").or_insert(api_version.into());
                        m.entry("kind").or_insert(kind.ar.kind.clone().into());
                    }
                    if !show_secrets {
                        crate::redact::redact_object(&mut o);
                    }
                    let name = o
                        .pointer("/metadata/name")
                        .and_then(|v| v.as_str())
                        .unwrap_or("unnamed")
                        .to_owned();
                    let yaml = serde_saphyr::to_string(&o).unwrap_or_else(|_| o.to_string());
                    // The group keeps same-named kinds apart (core and events.k8s.io Events).
                    let file = match kind.ar.group.as_str() {
                        "" => format!("{}.{name}.yaml", kind.ar.kind),
                        g => format!("{}.{g}.{name}.yaml", kind.ar.kind),
                    };
                    tokio::fs::write(out.join(file), yaml).await?;
                    n += 1;
                }
            }
        }
        anyhow::Ok(n)
    };
    tokio::time::timeout(DUMP_TIMEOUT, work)
        .await
        .map_err(|_| {
            anyhow::anyhow!("dumping namespace {namespace} took longer than {DUMP_TIMEOUT:?}")
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::spanned::Loc;

    #[test]
    fn bundle_paths_are_safe_and_distinct() {
        let id = TestKey {
            suite: "s/x".into(),
            name: "a b".into(),
            file: "f".into(),
            loc: Loc::UNKNOWN,
            repeat: 1,
        };
        assert_eq!(
            dir_for(Path::new("/art"), &id, 2),
            PathBuf::from("/art/s_x/a_b#2/try-2")
        );
        assert_eq!(section_file(1, "Last response"), "02-last-response.txt");
        assert_eq!(
            section_file(0, "diff at $.spec.port"),
            "01-diff-at-spec-port.txt"
        );
    }
}
