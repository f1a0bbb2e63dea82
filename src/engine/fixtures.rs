//! Suite setup and teardown on a cluster: the shared namespace (`per-suite` or a fixed name),
//! fixtures (applied once before the first test, removed newest-first after the last), and
//! variables read from the cluster (`vars: {x: {from: ...}}`), waited for by the retry engine.
//!
//! Sharing. Suites of one run that apply the same fixture object share it (counted here); runs
//! that share a cluster share it through holds (`cluster::holds`): each run holds what it uses
//! and the last one out deletes it. A fixture found being deleted (another run's teardown, an
//! earlier suite's) is waited for and applied anew. Teardown runs in the background (the
//! run's `Reaper`); a suite that applies fixtures waits until an earlier teardown is done.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::RunContext;
use super::cleanup::{
    CleanupError, Owner, delete_namespace, namespace_tracked, release_and_delete, wait_tracked_gone,
};
use super::cluster_retry::{OpError, call_until, limits_until, miss, wait_one_gone};
use super::events::Failure;
use super::lifecycle::{self, NamespaceMode, create_namespace};
use super::retry::{self, Class, Limits, Miss, Policy};
use crate::cluster::{Cluster, Kind, Tracked, holds, is_deleting, manifests, tracked};
use crate::steps::failure_from;
use crate::suite::load::Suite;
use crate::suite::model::VarDef;
use crate::suite::vars::Vars;

/// What a suite's setup made or took, for its teardown.
#[derive(Debug, Default)]
pub struct SuiteResources {
    /// Fixture objects this suite holds, in apply order.
    pub fixtures: Vec<Tracked>,
    /// A per-suite namespace the setup created (deleted at teardown).
    pub namespace: Option<String>,
    /// A fixed namespace gwtest created (this run or another): held, deleted by the last run
    /// out.
    pub held_namespace: Option<String>,
}

/// Suite resources by suite file, shared by setup and teardown, and how many suites of the
/// run hold each fixture object: suites running at the same time may share fixtures (one
/// Gateway for all), and an object goes only when the last suite using it is done.
#[derive(Debug, Default)]
pub struct SuiteRegistry {
    /// Filled while setup runs, so what a setup cut short by Ctrl-C made is still removed.
    map: Mutex<HashMap<PathBuf, Arc<Mutex<SuiteResources>>>>,
    /// One suite at a time in a fixed namespace: they would share it, and the one that
    /// created it deletes it.
    fixed: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    holders: Mutex<HashMap<FixtureKey, usize>>,
    /// Applying and removing fixtures never overlap, so a suite never applies what another
    /// suite's (background) teardown is deleting.
    fixtures: Arc<tokio::sync::Mutex<()>>,
}

/// apiVersion, kind, namespace, name.
type FixtureKey = (String, String, Option<String>, String);

fn fixture_key(t: &Tracked) -> FixtureKey {
    (
        t.api_version.clone(),
        t.kind.clone(),
        t.namespace.clone(),
        t.name.clone(),
    )
}

/// Setup gets as long as one of the suite's tests may take.
fn setup_deadline(ctx: &RunContext, suite: &Suite) -> Instant {
    let timeout = suite
        .doc
        .defaults
        .test_timeout
        .map_or(lifecycle::DEFAULT_TEST_TIMEOUT, |d| d.0);
    Instant::now() + timeout.mul_f64(ctx.config.timeout_scale)
}

fn setup_failure(e: OpError) -> Failure {
    Failure::error(e.to_string())
}

/// Wait until no other suite of the run works in fixed namespace `ns`; held until the
/// suite's teardown is done.
pub async fn hold_fixed_namespace(ctx: &RunContext, ns: &str) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = ctx
        .suites
        .fixed
        .lock()
        .expect("poisoned")
        .entry(ns.to_owned())
        .or_default()
        .clone();
    lock.lock_owned().await
}

/// Suite setup: the shared namespace (per-suite or fixed), fixtures, `from` variables.
pub async fn setup(
    ctx: &Arc<RunContext>,
    cluster: &Cluster,
    suite: &Suite,
    vars: &mut Vars,
) -> Result<NamespaceMode, Failure> {
    let deadline = setup_deadline(ctx, suite);
    let res = Arc::new(Mutex::new(SuiteResources::default()));
    ctx.suites
        .map
        .lock()
        .expect("poisoned")
        .insert(suite.file.clone(), res.clone());
    let limits = limits_until(deadline, Some(ctx.cancel.clone()));
    let mode = namespace(ctx, cluster, suite, &res, &limits).await?;
    let shared_ns = match &mode {
        NamespaceMode::Shared(ns) => {
            vars.set("namespace", ns.clone());
            Some(ns.clone())
        }
        NamespaceMode::PerTest => None,
    };
    apply_fixtures(
        ctx,
        cluster,
        suite,
        vars,
        &res,
        shared_ns.as_deref(),
        &limits,
    )
    .await?;
    resolve_vars(ctx, cluster, suite, vars, shared_ns.as_deref()).await?;
    Ok(mode)
}

/// The suite's namespace: a new per-suite one, or a fixed one (made when missing, held).
async fn namespace(
    ctx: &RunContext,
    cluster: &Cluster,
    suite: &Suite,
    res: &Mutex<SuiteResources>,
    limits: &Limits,
) -> Result<NamespaceMode, Failure> {
    let run = ctx.run_id.as_str();
    match suite.doc.namespace.as_ref().map(|n| n.value.as_str()) {
        None | Some("per-test") => Ok(NamespaceMode::PerTest),
        Some("per-suite") => {
            let ns = crate::cluster::namespace_name(&suite.name);
            create_namespace(cluster, &ns, run, &[], limits)
                .await
                .map_err(|e| Failure::error(format!("the suite namespace: {e}")))?;
            res.lock().expect("poisoned").namespace = Some(ns.clone());
            Ok(NamespaceMode::Shared(ns))
        }
        Some(fixed) => {
            let kind = Kind::namespace();
            // Bounded: a fixed namespace someone else holds in Terminating state must not
            // keep us waiting past the setup deadline.
            for _ in 0..10 {
                let existing = call_until(&format!("reading namespace {fixed}"), limits, || {
                    cluster.get(&kind, None, fixed)
                })
                .await
                .map_err(setup_failure)?;
                match existing {
                    // Still terminating (an earlier suite's or run's teardown): nothing can be
                    // created in it, so wait until it is gone and make it anew.
                    Some(n) if is_deleting(&n) => {
                        wait_one_gone(cluster, &kind, None, fixed, limits)
                            .await
                            .map_err(|_| {
                                Failure::error(format!(
                                    "namespace {fixed} is still terminating (from an earlier \
                                     run?): nothing can be created in it"
                                ))
                            })?;
                    }
                    // Not gwtest's, or kept by an earlier suite of this run (`--keep`): used,
                    // never deleted.
                    Some(n) if !labelled(&n) || holds::holders(&n).iter().any(|h| h == run) => {
                        return Ok(NamespaceMode::Shared(fixed.into()));
                    }
                    // Another run made it: hold it too.
                    Some(_) => {
                        let held =
                            call_until(&format!("holding namespace {fixed}"), limits, || {
                                cluster.add_hold(&kind, None, fixed, run)
                            })
                            .await;
                        match held {
                            Ok(n) if !is_deleting(&n) => {
                                res.lock().expect("poisoned").held_namespace =
                                    Some(fixed.to_owned());
                                return Ok(NamespaceMode::Shared(fixed.into()));
                            }
                            Ok(_) => continue,
                            Err(e) if e.cluster_error().is_some_and(|c| c.is_not_found()) => {
                                continue;
                            }
                            Err(e) => return Err(setup_failure(e)),
                        }
                    }
                    None => {
                        let hold = [(holds::hold_key(run), now())];
                        match create_namespace(cluster, fixed, run, &hold, limits).await {
                            Ok(()) => {
                                res.lock().expect("poisoned").held_namespace =
                                    Some(fixed.to_owned());
                                return Ok(NamespaceMode::Shared(fixed.into()));
                            }
                            // Another run made it in between: look again.
                            Err(e) if e.cluster_error().and_then(|c| c.code()) == Some(409) => {}
                            Err(e) => return Err(setup_failure(e)),
                        }
                    }
                }
            }
            Err(Failure::error(format!(
                "namespace {fixed} kept changing under gwtest (other runs creating and \
                 deleting it)"
            )))
        }
    }
}

fn labelled(o: &Value) -> bool {
    lifecycle::run_of(o).is_some()
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

async fn apply_fixtures(
    ctx: &Arc<RunContext>,
    cluster: &Cluster,
    suite: &Suite,
    vars: &Vars,
    res: &Mutex<SuiteResources>,
    shared_ns: Option<&str>,
    limits: &Limits,
) -> Result<(), Failure> {
    if suite.doc.fixtures.is_empty() {
        return Ok(());
    }
    // Not while another suite's teardown removes fixtures (it may be removing these).
    let _fixtures = tokio::select! {
        g = ctx.suites.fixtures.clone().lock_owned() => g,
        _ = ctx.cancel.cancelled() => return Err(Failure::error("interrupted")),
    };
    for f in &suite.doc.fixtures {
        let rel = vars
            .expand(f)
            .map_err(|e| Failure::error(format!("fixture {}: {e}", f.raw)))?;
        let path = suite.dir.join(rel);
        let objs = manifests::read_file(&path, vars)
            .await
            .map_err(Failure::error)?;
        for m in objs {
            let t = apply_fixture(ctx, cluster, &m, shared_ns, limits).await?;
            *ctx.suites
                .holders
                .lock()
                .expect("poisoned")
                .entry(fixture_key(&t))
                .or_insert(0) += 1;
            res.lock().expect("poisoned").fixtures.push(t);
        }
    }
    Ok(())
}

/// Apply one fixture object and hold it for the run; one found being deleted is waited for and
/// applied anew.
async fn apply_fixture(
    ctx: &Arc<RunContext>,
    cluster: &Cluster,
    m: &manifests::Manifest,
    shared_ns: Option<&str>,
    limits: &Limits,
) -> Result<Tracked, Failure> {
    let what = format!("fixture {}", m.origin());
    for _ in 0..10 {
        // As the apply step: retried while the error is transient or the kind is not served
        // yet (a CRD earlier in the same file), bounded, and stopped by Ctrl-C.
        let policy = Policy::once(limits.deadline().saturating_duration_since(Instant::now()));
        let applied =
            retry::eventually_unobserved(&policy, limits, &format!("applying {what}"), |_| async {
                cluster
                    .apply(m.value.clone(), shared_ns, &ctx.run_id)
                    .await
                    .map_err(|e| miss(&e, &what))
            })
            .await;
        let (kind, mut obj) = match applied {
            Ok((o, _)) => o,
            Err(g) => return Err(failure_from(&g, limits)),
        };
        let t = tracked(&obj);
        let ns = t.namespace.as_deref();
        let held_in_run = ctx
            .suites
            .holders
            .lock()
            .expect("poisoned")
            .get(&fixture_key(&t))
            .is_some_and(|n| *n > 0);
        if !held_in_run {
            match call_until(&format!("holding {what}"), limits, || {
                cluster.add_hold(&kind, ns, &t.name, &ctx.run_id)
            })
            .await
            {
                Ok(o) => obj = o,
                // Deleted between the apply and the hold: apply again.
                Err(e) if e.cluster_error().is_some_and(|c| c.is_not_found()) => continue,
                Err(e) => return Err(setup_failure(e)),
            }
        }
        if !is_deleting(&obj) {
            return Ok(t);
        }
        // Being deleted (another run was the last out, or an earlier suite's teardown): wait
        // until it is gone, then make it anew.
        wait_one_gone(cluster, &kind, ns, &t.name, limits)
            .await
            .map_err(|g| {
                let mut f = failure_from(&g, limits);
                f.headline = format!("{what} is being deleted and did not go: {}", f.headline);
                f
            })?;
    }
    Err(Failure::error(format!(
        "{what} kept being deleted under gwtest (other runs removing it)"
    )))
}

/// The suite's `from` variables (and any other variable source that needs the cluster).
async fn resolve_vars(
    ctx: &Arc<RunContext>,
    cluster: &Cluster,
    suite: &Suite,
    vars: &mut Vars,
    shared_ns: Option<&str>,
) -> Result<(), Failure> {
    for (name, def) in suite.doc.vars.iter() {
        if ctx.config.vars.iter().any(|(k, _)| *k == name.value) {
            continue;
        }
        let v = match def {
            VarDef::Value(_) => continue,
            VarDef::From(from) => {
                read_var(
                    ctx,
                    cluster,
                    suite,
                    vars,
                    &name.value,
                    &from.value,
                    shared_ns,
                )
                .await?
            }
            VarDef::PortForward(pf) => {
                super::forward::port_forward_var(
                    ctx,
                    cluster,
                    suite,
                    vars,
                    &name.value,
                    &pf.value,
                    shared_ns,
                )
                .await?
            }
        };
        vars.set(name.value.clone(), v);
    }
    Ok(())
}

async fn read_var(
    ctx: &Arc<RunContext>,
    cluster: &Cluster,
    suite: &Suite,
    vars: &Vars,
    name: &str,
    from: &crate::suite::model::VarFrom,
    shared_ns: Option<&str>,
) -> Result<Value, Failure> {
    let r = &from.resource.value;
    let expand = |t: &crate::suite::spanned::Template| {
        vars.expand(t)
            .map_err(|e| Failure::error(format!("variable `{name}`: {e}")))
    };
    let (api_version, kind_name) = (expand(&r.api_version)?, expand(&r.kind)?);
    let obj_name = match &r.name {
        Some(n) => expand(n)?,
        None => {
            return Err(Failure::error(format!(
                "variable `{name}`: `from.resource` needs a name"
            )));
        }
    };
    let ns = match &r.namespace {
        Some(n) => Some(expand(n)?),
        None => shared_ns.map(str::to_owned),
    };
    let (policy, limits) = super::forward::var_wait(ctx, suite, from.timeout);
    let what = format!(
        "{kind_name} {obj_name}{}",
        ns.as_ref().map(|n| format!(" in {n}")).unwrap_or_default()
    );
    let pending = format!("reading {} of {what}", from.path.raw);
    let read = || async {
        let kind = cluster
            .resolve(&api_version, &kind_name)
            .await
            .map_err(|e| miss(&e, &what))?;
        let obj = cluster
            .get(&kind, ns.as_deref(), &obj_name)
            .await
            .map_err(|e| miss(&e, &what))?
            .ok_or_else(|| {
                Miss::new(
                    Class::NotFound,
                    "not found",
                    format!("{what} does not exist"),
                )
            })?;
        Ok::<_, Miss>((kind, obj))
    };
    let result = retry::eventually_unobserved(&policy, &limits, &pending, |_| async {
        let (_, obj) = read().await?;
        crate::matching::query_one(&from.path, &obj)
            .map_err(|e| Miss::new(Class::Field, "field not set", format!("{what}: {e}")))
    })
    .await;
    match result {
        Ok((v, _)) => Ok(v),
        Err(g) => {
            let mut f = failure_from(&g, &limits);
            f.headline = format!("variable `{name}` from {}: {}", from.path.raw, f.headline);
            // Nobody reconciling the object is the usual reason a field never appears.
            if g.cause != retry::Cause::Cancelled
                && let Ok(Ok((_, obj))) = tokio::time::timeout(Duration::from_secs(5), read()).await
                && let Some(h) = crate::cluster::controllers::unreconciled(cluster, &obj).await
            {
                f.hints.insert(0, h);
            }
            Err(f)
        }
    }
}

/// Suite teardown: the fixtures no other suite of the run holds, newest first, each released
/// and (if no other run holds it) deleted and waited for, then the suite's own namespace —
/// all in the background. A fixed namespace is released (and deleted if nobody else holds
/// it) before the next suite in it starts; it is gone before that suite creates it anew.
pub async fn teardown(ctx: &Arc<RunContext>, cluster: &Arc<Cluster>, suite: &Suite, keep: bool) {
    let res = ctx.suites.map.lock().expect("poisoned").remove(&suite.file);
    let Some(res) = res else { return };
    let res = std::mem::take(&mut *res.lock().expect("poisoned"));
    if keep {
        // Kept fixtures stay held: no other suite's teardown removes them either.
        return;
    }
    let deadline = Instant::now() + lifecycle::cleanup_timeout(suite, ctx.config.timeout_scale);
    let run = ctx.run_id.clone();
    let owner = Owner {
        test: None,
        suite: suite.name.clone(),
    };

    // A fixed namespace: released and its deletion requested now, under the suite's turn in
    // it, so the next suite there finds it held by no one or terminating.
    let mut problems = Vec::new();
    let mut fixed_gone = None;
    if let Some(ns) = &res.held_namespace {
        let t = namespace_tracked(ns);
        let limits = limits_until(deadline, None);
        match release_and_delete(cluster, &t, &run, &limits).await {
            Ok(true) => fixed_gone = Some(ns.clone()),
            Ok(false) => {}
            Err(p) => problems.push(p),
        }
    }

    // No suite applies fixtures while this one removes its own (in the background).
    let guard = if res.fixtures.is_empty() {
        None
    } else {
        Some(ctx.suites.fixtures.clone().lock_owned().await)
    };
    // Only objects no other suite of the run holds any more go.
    let unheld: Vec<Tracked> = {
        let mut holders = ctx.suites.holders.lock().expect("poisoned");
        res.fixtures
            .into_iter()
            .filter(|t| {
                let key = fixture_key(t);
                match holders.get_mut(&key) {
                    Some(n) if *n > 1 => {
                        *n -= 1;
                        false
                    }
                    _ => {
                        holders.remove(&key);
                        true
                    }
                }
            })
            .collect()
    };
    if unheld.is_empty() && res.namespace.is_none() && fixed_gone.is_none() && problems.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if !unheld.is_empty() {
        parts.push("fixtures".to_owned());
    }
    if let Some(ns) = res.namespace.as_ref().or(fixed_gone.as_ref()) {
        parts.push(format!("namespace {ns}"));
    }
    let what = format!("{} of suite {}", parts.join(" and "), suite.name);
    let cluster = cluster.clone();
    let own_ns = res.namespace;
    ctx.reaper.spawn(&ctx.events, owner, what, async move {
        let limits = limits_until(deadline, None);
        for t in unheld.iter().rev() {
            // Objects inside the suite's own namespace go with it.
            if own_ns.is_some() && t.namespace == own_ns {
                continue;
            }
            // Each waited for before the next (older) one: a controller may need the older
            // ones (its class, its namespace) to finish with the newer.
            let done = match release_and_delete(&cluster, t, &run, &limits).await {
                Ok(true) => wait_tracked_gone(&cluster, t, &unheld, &limits).await,
                Ok(false) => Ok(()),
                Err(p) => Err(p),
            };
            if let Err(p) = done {
                problems.push(p);
            }
        }
        drop(guard);
        if let Some(ns) = &own_ns
            && let Err(p) = delete_namespace(&cluster, ns, &unheld, &limits).await
        {
            problems.push(p);
        }
        if let Some(ns) = &fixed_gone
            && let Err(p) = wait_tracked_gone(&cluster, &namespace_tracked(ns), &[], &limits).await
        {
            problems.push(p);
        }
        CleanupError::check(problems)
    });
}
