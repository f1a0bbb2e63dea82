//! Evidence on failure: for every failed test try, before cleanup, the suite's `diagnostics:`
//! collectors (`logs`, `events`, `get`, `exec`) — and the events of the test's namespace even
//! when not listed — write what they find into the try's failure bundle,
//! `<bundle>/diagnostics/<collector>.txt`. Each runs under its own timeout (default 10s),
//! all at once; one that fails or runs out of time is noted and the run goes on. The failure
//! says `diagnostics: N collected, see DIR`.
//!
//! The bundle is `--artifacts DIR`'s; without `--artifacts`, diagnostics go to
//! `$TMPDIR/gwtest-<run id>/` so that they are never lost.
//!
//! The same hook completes the failure's reproduce commands: a command that goes through a
//! `port-forward` variable's local address gets the `kubectl port-forward` command that
//! makes that address work by hand. After cleanup, [`namespace_deleted`] notes that commands
//! naming the test's namespace no longer find it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::cluster::target::Target;
use crate::engine::RunContext;
use crate::engine::events::{Diagnostics, Failure, StepReport, StepStatus, TestKey};
use crate::suite::load::{Suite, Test};
use crate::suite::model::{Collector, EventsCollector, ExecCollector, LogsCollector, Since};
use crate::suite::vars::Vars;
use crate::util::truncate;

/// A collector's time unless it says otherwise (scaled by `--timeout-scale`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The failure that decided a try: its failed step's, else its setup error.
fn deciding<'a>(
    reports: &'a mut [StepReport],
    setup_error: &'a mut Option<Failure>,
) -> Option<&'a mut Failure> {
    match reports.iter_mut().find(|r| r.status == StepStatus::Failed) {
        Some(r) => r.failure.as_mut(),
        None => setup_error.as_mut(),
    }
}

/// Where a run's failure bundles go: `--artifacts DIR`, else a directory of the run under
/// the system's temporary directory.
pub fn bundle_root(ctx: &RunContext) -> PathBuf {
    ctx.config
        .artifacts
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("gwtest-{}", ctx.run_id)))
}

/// What the collectors of one try see.
struct Scope<'a> {
    ctx: &'a RunContext,
    vars: &'a Vars,
    namespace: Option<&'a str>,
    try_started: SystemTime,
    dir: &'a Path,
}

/// For a failed try, before cleanup: the kubectl port-forward commands its reproduce lines
/// need, and the diagnostics collectors (the suite's, and the test namespace's events).
#[allow(clippy::too_many_arguments)]
pub async fn on_failure(
    ctx: &Arc<RunContext>,
    suite: &Suite,
    test: &Test,
    id: &TestKey,
    try_no: u32,
    vars: &Vars,
    namespace: Option<&str>,
    try_started: SystemTime,
    reports: &mut [StepReport],
    setup_error: &mut Option<Failure>,
) {
    let Some(failure) = deciding(reports, setup_error) else {
        return;
    };
    if let Some(cluster) = &ctx.cluster {
        let forwards = cluster
            .forwards
            .commands_for(&failure.reproduce, &ctx.kubectl_flags());
        if !forwards.is_empty() {
            failure.reproduce.splice(0..0, forwards);
        }
    }
    let collectors = collectors_for(suite, namespace.is_some());
    if collectors.is_empty() {
        return;
    }
    let dir = crate::debug::bundle::dir_for(&bundle_root(ctx), id, try_no).join("diagnostics");
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        failure.diagnostics = Some(Diagnostics {
            dir: dir.clone(),
            collected: 0,
            files: Vec::new(),
            failed: vec![format!("cannot create {}: {e}", dir.display())],
        });
        return;
    }
    let scope = Scope {
        ctx,
        vars,
        namespace,
        try_started,
        dir: &dir,
    };
    let base = test.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let names = file_names(&collectors);
    let runs = collectors.iter().zip(&names).map(|(c, file)| {
        let (scope, base) = (&scope, &base);
        async move { (file.clone(), run_one(scope, c, file, base).await) }
    });
    let results = futures::future::join_all(runs).await;
    let mut d = Diagnostics {
        dir: dir.clone(),
        collected: 0,
        files: Vec::new(),
        failed: Vec::new(),
    };
    for (file, r) in results {
        match r {
            Ok(()) => d.collected += 1,
            Err(why) => d.failed.push(why),
        }
        if scope.dir.join(&file).exists() {
            d.files.push(file);
        }
    }
    failure.diagnostics = Some(d);
}

/// The suite's collectors, plus the test namespace's events unless they are listed.
fn collectors_for(suite: &Suite, has_namespace: bool) -> Vec<Collector> {
    let mut out: Vec<Collector> = suite
        .doc
        .diagnostics
        .iter()
        .map(|c| c.value.clone())
        .collect();
    let listed = out
        .iter()
        .any(|c| c.events.as_ref().is_some_and(|e| e.namespace.is_none()));
    if has_namespace && !listed {
        out.push(Collector {
            logs: None,
            events: Some(EventsCollector::default()),
            get: None,
            exec: None,
            timeout: None,
        });
    }
    out
}

/// `logs.txt`, `events.txt`, `get.yaml`, `exec.txt`; a second one of a kind `logs-2.txt`.
fn file_names(collectors: &[Collector]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    collectors
        .iter()
        .map(|c| {
            let kind = c.kind();
            let n = seen.entry(kind).or_insert(0);
            *n += 1;
            let ext = if kind == "get" { "yaml" } else { "txt" };
            if *n == 1 {
                format!("{kind}.{ext}")
            } else {
                format!("{kind}-{n}.{ext}")
            }
        })
        .collect()
}

/// Run one collector under its timeout (and Ctrl-C); its output, or why there is none,
/// goes to its file. `Err`: the note for the failure.
async fn run_one(scope: &Scope<'_>, c: &Collector, file: &str, base: &Path) -> Result<(), String> {
    let limit = c
        .timeout
        .map_or(DEFAULT_TIMEOUT, |t| t.0)
        .mul_f64(scope.ctx.config.timeout_scale);
    let kind = c.kind();
    let work = collect(scope, c, base);
    let (text, outcome) = tokio::select! {
        r = tokio::time::timeout(limit, work) => match r {
            Ok(Ok(text)) => (text, Ok(())),
            Ok(Err((text, why))) => (text, Err(format!("{kind}: {why}"))),
            Err(_) => (
                String::new(),
                Err(format!("{kind}: timed out after {}", crate::util::fmt_duration(limit))),
            ),
        },
        _ = scope.ctx.cancel.cancelled() => (String::new(), Err(format!("{kind}: interrupted"))),
    };
    let body = match &outcome {
        Ok(()) => text,
        Err(why) if text.is_empty() => format!("# collector failed: {why}\n"),
        Err(why) => format!("# collector failed: {why}\n{text}"),
    };
    if let Err(e) = tokio::fs::write(scope.dir.join(file), body).await {
        return Err(format!("{kind}: cannot write {file}: {e}"));
    }
    outcome
}

/// What a collector found; `Err((partial output, why it failed))`.
type Collected = Result<String, (String, String)>;

fn fail(why: impl Into<String>) -> Collected {
    Err((String::new(), why.into()))
}

async fn collect(scope: &Scope<'_>, c: &Collector, base: &Path) -> Collected {
    if let Some(x) = &c.exec {
        return exec(scope, x, base).await;
    }
    let Some(cluster) = scope.ctx.cluster.as_deref() else {
        return fail("no cluster is connected");
    };
    if let Some(l) = &c.logs {
        logs(scope, cluster, l).await
    } else if let Some(e) = &c.events {
        events(scope, cluster, e).await
    } else if let Some(g) = &c.get {
        let target = Target::from_ref(g, scope.vars, scope.namespace)
            .map_err(|e| (String::new(), e.to_string()))?;
        get(cluster, &target).await
    } else {
        fail("nothing to collect")
    }
}

/// The collector's namespace, else the test's.
fn namespace(
    scope: &Scope<'_>,
    given: &Option<crate::suite::spanned::Template>,
) -> Result<String, (String, String)> {
    match given {
        Some(t) => scope
            .vars
            .expand(t)
            .map_err(|e| (String::new(), e.to_string())),
        None => scope.namespace.map(str::to_owned).ok_or_else(|| {
            (
                String::new(),
                "the test has no namespace: give `namespace`".to_string(),
            )
        }),
    }
}

fn api_error(cluster: &Cluster, e: kube::Error) -> (String, String) {
    (
        String::new(),
        crate::cluster::ClusterError::from_kube(e, cluster.server()).to_string(),
    )
}

async fn logs(scope: &Scope<'_>, cluster: &Cluster, l: &LogsCollector) -> Collected {
    let ns = namespace(scope, &l.namespace)?;
    let selector = match &l.selector {
        Some(s) => s
            .expand(scope.vars)
            .map_err(|e| (String::new(), e.to_string()))?,
        None => String::new(),
    };
    let container = match &l.container {
        Some(t) => Some(
            scope
                .vars
                .expand(t)
                .map_err(|e| (String::new(), e.to_string()))?,
        ),
        None => None,
    };
    let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), &ns);
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(cluster, e))?
        .items;
    let what = if selector.is_empty() {
        format!("pods in {ns}")
    } else {
        format!("pods {selector} in {ns}")
    };
    if list.is_empty() {
        return Ok(format!("# no {what}\n"));
    }
    list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut params = LogParams {
        tail_lines: l.tail.map(i64::from),
        ..LogParams::default()
    };
    match l.since {
        Since::Test => {
            // Whole seconds, rounded down: kube-rs rounds to the nearest second, which could
            // start after the try did.
            let secs = scope
                .try_started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            params.since_time = k8s_openapi::jiff::Timestamp::from_second(secs as i64).ok();
        }
        Since::All => {}
        Since::Last(d) => params.since_seconds = Some(d.0.as_secs().max(1) as i64),
    }
    let mut out = String::new();
    let mut first_error = None;
    for p in &list {
        let name = p.metadata.name.clone().unwrap_or_default();
        let containers: Vec<String> = match &container {
            Some(c) => vec![c.clone()],
            None => p
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
                .collect(),
        };
        for c in containers {
            out.push_str(&format!("==> pod/{name} container/{c} <==\n"));
            let params = LogParams {
                container: Some(c),
                ..params.clone()
            };
            match pods.logs(&name, &params).await {
                Ok(text) if text.is_empty() => out.push_str("# no lines\n"),
                Ok(text) => {
                    out.push_str(&text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Err(e) => {
                    let why = api_error(cluster, e).1;
                    out.push_str(&format!("# logs unavailable: {why}\n"));
                    first_error.get_or_insert(format!("pod/{name}: {why}"));
                }
            }
        }
    }
    match first_error {
        None => Ok(out),
        Some(why) => Err((out, why)),
    }
}

/// `2025-01-01T12:00:00Z`, or `-`.
fn time(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

async fn events(scope: &Scope<'_>, cluster: &Cluster, e: &EventsCollector) -> Collected {
    let ns = namespace(scope, &e.namespace)?;
    let api: Api<KubeEvent> = Api::namespaced(cluster.client().clone(), &ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(cluster, e))?
        .items;
    if list.is_empty() {
        return Ok(format!("# no events in namespace {ns}\n"));
    }
    let mut rows: Vec<(String, String)> = list
        .iter()
        .map(|ev| {
            let last = ev
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| ev.event_time.as_ref().map(|t| t.0.to_string()))
                .or_else(|| {
                    ev.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                });
            let obj = &ev.involved_object;
            let row = format!(
                "{}  {}  {}  {}/{}  {}{}",
                time(last.clone()),
                ev.type_.as_deref().unwrap_or("-"),
                ev.reason.as_deref().unwrap_or("-"),
                obj.kind.as_deref().unwrap_or("?").to_ascii_lowercase(),
                obj.name.as_deref().unwrap_or("?"),
                ev.message.as_deref().unwrap_or("").trim(),
                match ev.count {
                    Some(n) if n > 1 => format!(" (x{n})"),
                    _ => String::new(),
                }
            );
            (time(last), row)
        })
        .collect();
    rows.sort();
    let mut out = format!(
        "# events in namespace {ns}, oldest first\n# LAST SEEN  TYPE  REASON  OBJECT  MESSAGE\n"
    );
    for (_, r) in rows {
        out.push_str(&r);
        out.push('\n');
    }
    Ok(out)
}

fn yaml(mut o: Value) -> String {
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    serde_saphyr::to_string(&o).unwrap_or_else(|_| o.to_string())
}

async fn get(cluster: &Cluster, t: &Target) -> Collected {
    let kind = cluster
        .resolve(&t.api_version, &t.kind)
        .await
        .map_err(|e| (String::new(), e.to_string()))?;
    let ns = t.namespace.as_deref().filter(|_| kind.namespaced);
    let what = t.describe(kind.namespaced);
    let objects = match &t.name {
        Some(n) => cluster
            .get(&kind, ns, n)
            .await
            .map_err(|e| (String::new(), e.to_string()))?
            .into_iter()
            .collect(),
        None => cluster
            .list(&kind, ns, t.selector.as_deref().unwrap_or(""))
            .await
            .map_err(|e| (String::new(), e.to_string()))?,
    };
    if objects.is_empty() {
        return Ok(format!("# no {what}\n"));
    }
    let docs: Vec<String> = objects.into_iter().map(yaml).collect();
    Ok(format!("# {what}\n{}", docs.join("---\n")))
}

async fn exec(scope: &Scope<'_>, x: &ExecCollector, base: &Path) -> Collected {
    let argv = x
        .command
        .value
        .iter()
        .map(|t| scope.vars.expand(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (String::new(), e.to_string()))?;
    let env = x
        .env
        .iter()
        .map(|(k, v)| scope.vars.expand(v).map(|v| (k.value.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (String::new(), e.to_string()))?;
    let line = argv
        .iter()
        .map(|a| crate::util::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let out = crate::process::run(&argv, &env, base)
        .await
        .map_err(|e| (format!("$ {line}\n"), e))?;
    let text = format!("$ {line}\n{}\n", out.dump());
    if out.code == Some(0) {
        Ok(text)
    } else {
        let why = format!("{}: {}", out.exit_text(), truncate(out.stderr.trim(), 160));
        Err((text, why))
    }
}

/// After cleanup deleted the test's namespace: a failure whose reproduce commands name it
/// says so, and how to keep it next time.
pub fn namespace_deleted(reports: &mut [StepReport], setup_error: &mut Option<Failure>, ns: &str) {
    let Some(f) = deciding(reports, setup_error) else {
        return;
    };
    if f.reproduce.iter().any(|r| r.contains(ns)) {
        f.hints.push(format!(
            "namespace {ns}, which the commands below name, was deleted by cleanup: rerun with \
             `--keep on-failure` to keep it for a look"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(yaml: &str) -> Collector {
        serde_saphyr::from_str(yaml).expect("collector parses")
    }

    #[test]
    fn files_are_named_after_their_collectors() {
        let cs = vec![
            collector("{logs: {selector: app=gw}}"),
            collector("{events: {}}"),
            collector("{logs: {namespace: other}}"),
            collector("{get: {apiVersion: v1, kind: ConfigMap}}"),
            collector("{exec: {command: [date]}, timeout: 1s}"),
        ];
        assert_eq!(
            file_names(&cs),
            [
                "logs.txt",
                "events.txt",
                "logs-2.txt",
                "get.yaml",
                "exec.txt"
            ]
        );
    }

    #[test]
    fn a_collector_has_exactly_one_kind() {
        let e = serde_saphyr::from_str::<Collector>("{timeout: 1s}").unwrap_err();
        assert!(e.to_string().contains("needs one of"), "{e}");
        let e =
            serde_saphyr::from_str::<Collector>("{events: {}, exec: {command: [x]}}").unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
        let c = collector("{logs: {since: 5m, tail: 20}}");
        assert_eq!(
            c.logs.unwrap().since,
            Since::Last(crate::suite::spanned::Dur(Duration::from_secs(300)))
        );
    }

    #[test]
    fn a_deleted_namespace_named_by_a_reproduce_command_gets_a_hint() {
        let mut err = Some(Failure::error("x"));
        err.as_mut().unwrap().reproduce =
            vec!["kubectl get configmaps -n gwtest-t-abc123 -o yaml".into()];
        namespace_deleted(&mut [], &mut err, "gwtest-t-abc123");
        let hints = &err.as_ref().unwrap().hints;
        assert_eq!(hints.len(), 1);
        assert!(hints[0].contains("--keep on-failure"), "{hints:?}");
        let mut other = Some(Failure::error("y"));
        namespace_deleted(&mut [], &mut other, "gwtest-t-abc123");
        assert!(other.unwrap().hints.is_empty());
    }
}
