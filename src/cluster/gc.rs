//! `gwtest gc`: delete what interrupted runs left behind — every object labelled
//! `gwtest.dev/run` (or `gwtest.dev/run=<id>` with `--run`): namespaces first (their contents go
//! with them), then labelled objects elsewhere, of every kind the cluster serves.

use std::time::Duration;

use kube::api::ListParams;
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;
use tokio::time::Instant;

use super::{Cluster, Kind, RUN_LABEL};
use crate::Exit;
use crate::cli::GcArgs;

/// Deleting may take this long in total before gc gives up (it can be run again).
const GC_TIMEOUT: Duration = Duration::from_secs(120);

/// One object gc found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub run: String,
}

pub async fn command(args: GcArgs) -> Exit {
    let cluster = match super::connect::connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
        super::connect::CONNECT_TIMEOUT,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Infra;
        }
    };
    match collect(&cluster, args.run.as_deref(), args.dry_run).await {
        Ok((found, problems)) => {
            let verb = if args.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for l in &found {
                let ns = l
                    .namespace
                    .as_ref()
                    .map(|n| format!(" -n {n}"))
                    .unwrap_or_default();
                println!("{verb} {} {}{ns} (run {})", l.kind, l.name, l.run);
            }
            println!(
                "{} object{} {}",
                found.len(),
                if found.len() == 1 { "" } else { "s" },
                if args.dry_run {
                    "would be deleted"
                } else {
                    "deleted"
                }
            );
            if problems.is_empty() {
                Exit::Passed
            } else {
                for p in &problems {
                    eprintln!("error: {p}");
                }
                Exit::Infra
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Infra
        }
    }
}

fn selector(run: Option<&str>) -> String {
    match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => RUN_LABEL.to_owned(),
    }
}

fn leftover(kind: &str, o: &Value) -> Leftover {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).map(str::to_owned);
    Leftover {
        kind: kind.to_owned(),
        namespace: s("/metadata/namespace"),
        name: s("/metadata/name").unwrap_or_default(),
        run: o
            .pointer(&format!(
                "/metadata/labels/{}",
                RUN_LABEL.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// Find (and unless `dry_run`, delete and wait for) everything gwtest runs left behind:
/// labelled namespaces first (their contents go with them), then labelled objects of every
/// other kind outside them. A delete that fails is reported and the rest goes on; the second
/// list holds the problems.
pub async fn collect(
    cluster: &Cluster,
    run: Option<&str>,
    dry_run: bool,
) -> Result<(Vec<Leftover>, Vec<String>), String> {
    let deadline = Instant::now() + GC_TIMEOUT;
    let sel = selector(run);
    let ns_kind = Kind {
        ar: super::namespace_resource(),
        namespaced: false,
        has_status: true,
    };
    let namespaces = tokio::time::timeout_at(deadline, cluster.list(&ns_kind, None, &sel))
        .await
        .map_err(|_| "timed out listing namespaces".to_string())?
        .map_err(|e| e.to_string())?;
    let ns_names: Vec<String> = namespaces
        .iter()
        .filter_map(|n| {
            n.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let mut found: Vec<Leftover> = namespaces
        .iter()
        .map(|n| leftover("Namespace", n))
        .collect();
    let mut problems = Vec::new();
    let delete = |kind: Kind, ns: Option<String>, name: String| async move {
        match tokio::time::timeout_at(deadline, cluster.delete(&kind, ns.as_deref(), &name)).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{} {name}: {e}", kind.ar.kind)),
            Err(_) => Some(format!("{} {name}: timed out", kind.ar.kind)),
        }
    };
    if !dry_run {
        for ns in &ns_names {
            problems.extend(delete(ns_kind.clone(), None, ns.clone()).await);
        }
    }

    let discovery =
        tokio::time::timeout_at(deadline, Discovery::new(cluster.client().clone()).run())
            .await
            .map_err(|_| "timed out discovering the cluster's kinds".to_string())?
            .map_err(|e| super::error_chain(&e))?;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if ar.kind == "Namespace"
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            let kind = Kind {
                namespaced: caps.scope == Scope::Namespaced,
                has_status: false,
                ar,
            };
            let api = cluster.api(&kind, None);
            let listed =
                tokio::time::timeout_at(deadline, api.list(&ListParams::default().labels(&sel)))
                    .await;
            let Ok(Ok(list)) = listed else { continue };
            for o in list.items {
                let l = leftover(&kind.ar.kind, &super::to_value(o));
                // Objects in a namespace being deleted go with it.
                if l.namespace.as_ref().is_some_and(|n| ns_names.contains(n)) {
                    continue;
                }
                if !dry_run {
                    problems
                        .extend(delete(kind.clone(), l.namespace.clone(), l.name.clone()).await);
                }
                found.push(l);
            }
        }
    }
    if !dry_run {
        for ns in &ns_names {
            if let Err(e) = cluster.wait_gone_until(&ns_kind, None, ns, deadline).await {
                problems.push(format!("namespace {ns}: {e}"));
            }
        }
    }
    Ok((found, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_and_leftovers() {
        assert_eq!(selector(None), "gwtest.dev/run");
        assert_eq!(selector(Some("r1")), "gwtest.dev/run=r1");
        let o = json!({"metadata": {"name": "cm", "namespace": "ns",
            "labels": {"gwtest.dev/run": "r1", "app": "x"}}});
        assert_eq!(
            leftover("ConfigMap", &o),
            Leftover {
                kind: "ConfigMap".into(),
                namespace: Some("ns".into()),
                name: "cm".into(),
                run: "r1".into(),
            }
        );
        let ns =
            json!({"metadata": {"name": "gwtest-a-123456", "labels": {"gwtest.dev/run": "r2"}}});
        assert_eq!(leftover("Namespace", &ns).namespace, None);
        assert_eq!(leftover("Namespace", &ns).run, "r2");
    }
}
