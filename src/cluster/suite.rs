//! Suite setup and teardown on a cluster: the shared namespace (`per-suite` or a fixed name),
//! fixtures (applied once before the first test, removed newest-first after the last), and
//! variables read from the cluster (`vars: {x: {from: ...}}`), waited for by the retry engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::time::Instant;

use super::{Cluster, Tracked, identity, manifests};
use crate::engine::RunContext;
use crate::engine::events::Failure;
use crate::engine::lifecycle::{self, NamespaceMode};
use crate::engine::retry::{self, Class, Limits, Miss, Policy};
use crate::steps::failure_from;
use crate::suite::load::Suite;
use crate::suite::model::VarDef;
use crate::suite::vars::Vars;

/// What a suite's setup created, for its teardown.
#[derive(Debug, Default)]
pub struct SuiteResources {
    pub fixtures: Vec<Tracked>,
    /// A namespace the setup created (and so deletes).
    pub namespace: Option<String>,
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
    /// Applying and removing fixtures never overlap, so a suite never applies into a
    /// namespace another suite's teardown is deleting.
    fixtures: tokio::sync::Mutex<()>,
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

fn registry(cluster: &Cluster) -> &SuiteRegistry {
    &cluster.suites
}

impl Cluster {
    /// Suite setup: the shared namespace (per-suite or fixed), fixtures, `from` variables.
    pub async fn setup_suite(
        &self,
        ctx: &Arc<RunContext>,
        suite: &Suite,
        vars: &mut Vars,
    ) -> Result<NamespaceMode, Failure> {
        // Setup gets as long as one of the suite's tests may take.
        let timeout = suite
            .doc
            .defaults
            .test_timeout
            .map_or(lifecycle::DEFAULT_TEST_TIMEOUT, |d| d.0);
        let deadline = Instant::now() + timeout.mul_f64(ctx.config.timeout_scale);
        let res = Arc::new(Mutex::new(SuiteResources::default()));
        registry(self)
            .map
            .lock()
            .expect("poisoned")
            .insert(suite.file.clone(), res.clone());
        self.setup_inner(ctx, suite, vars, &res, deadline).await
    }

    /// Wait until no other suite of the run works in fixed namespace `ns`; held until the
    /// suite's teardown is done.
    pub async fn hold_fixed_namespace(&self, ns: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = registry(self)
            .fixed
            .lock()
            .expect("poisoned")
            .entry(ns.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    async fn setup_inner(
        &self,
        ctx: &Arc<RunContext>,
        suite: &Suite,
        vars: &mut Vars,
        res: &Mutex<SuiteResources>,
        deadline: Instant,
    ) -> Result<NamespaceMode, Failure> {
        let mode =
            match suite.doc.namespace.as_ref().map(|n| n.value.as_str()) {
                None | Some("per-test") => NamespaceMode::PerTest,
                Some("per-suite") => {
                    let ns = super::namespace_name(&suite.name);
                    self.create_namespace(&ns, &ctx.run_id, deadline)
                        .await
                        .map_err(|e| {
                            Failure::error(format!("cannot create the suite namespace {ns}: {e}"))
                        })?;
                    res.lock().expect("poisoned").namespace = Some(ns.clone());
                    NamespaceMode::Shared(ns)
                }
                Some(fixed) => {
                    let kind = super::Kind {
                        ar: super::namespace_resource(),
                        namespaced: false,
                        has_status: true,
                    };
                    let existing = self
                        .get(&kind, None, fixed)
                        .await
                        .map_err(|e| Failure::error(e.to_string()))?;
                    // Still terminating from an earlier run: nothing can be created in it, so
                    // wait until it is gone and make it anew.
                    let terminating = existing.as_ref().is_some_and(|n| {
                        n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
                    });
                    if terminating {
                        self.wait_gone_until(&kind, None, fixed, deadline).await.map_err(|_| {
                        Failure::error(format!(
                            "namespace {fixed} is still terminating (from an earlier run?): \
                             nothing can be created in it"
                        ))
                    })?;
                    }
                    if existing.is_none() || terminating {
                        self.create_namespace(fixed, &ctx.run_id, deadline)
                            .await
                            .map_err(|e| {
                                Failure::error(format!("cannot create namespace {fixed}: {e}"))
                            })?;
                        res.lock().expect("poisoned").namespace = Some(fixed.to_owned());
                    }
                    NamespaceMode::Shared(fixed.to_owned())
                }
            };
        let shared_ns = match &mode {
            NamespaceMode::Shared(ns) => {
                vars.set("namespace", ns.clone());
                Some(ns.clone())
            }
            NamespaceMode::PerTest => None,
        };

        let fixtures_guard = registry(self).fixtures.lock().await;
        for f in &suite.doc.fixtures {
            let rel = vars
                .expand(f)
                .map_err(|e| Failure::error(format!("fixture {}: {e}", f.raw)))?;
            let path = suite.dir.join(rel);
            let objs = manifests::read_file(&path, vars).map_err(Failure::error)?;
            for m in objs {
                // As the apply step: retried while the error is transient or the kind is not
                // served yet (a CRD earlier in the same file), bounded, and stopped by Ctrl-C.
                let limits = Limits::for_step(
                    Instant::now(),
                    deadline.saturating_duration_since(Instant::now()),
                    deadline,
                    deadline.saturating_duration_since(Instant::now()),
                    ctx.cancel.clone(),
                );
                let policy = Policy::once(
                    limits
                        .step_deadline
                        .saturating_duration_since(Instant::now()),
                );
                let what = format!("fixture {}", m.origin());
                let applied = retry::eventually(
                    &policy,
                    &limits,
                    &format!("applying {what}"),
                    &mut |_: &retry::AttemptRecord| {},
                    |_| async {
                        self.apply(m.value.clone(), shared_ns.as_deref(), &ctx.run_id)
                            .await
                            .map_err(|e| super::miss(&e, &what))
                    },
                )
                .await;
                let (_, obj) = match applied {
                    Ok((o, _)) => o,
                    Err(g) => return Err(failure_from(&g, &limits)),
                };
                let t = tracked(&obj);
                *registry(self)
                    .holders
                    .lock()
                    .expect("poisoned")
                    .entry(fixture_key(&t))
                    .or_insert(0) += 1;
                res.lock().expect("poisoned").fixtures.push(t);
            }
        }
        drop(fixtures_guard);

        for (name, def) in suite.doc.vars.iter() {
            if ctx.config.vars.iter().any(|(k, _)| *k == name.value) {
                continue;
            }
            let v = match def {
                VarDef::Value(_) => continue,
                VarDef::From(from) => {
                    self.read_var(
                        ctx,
                        suite,
                        vars,
                        &name.value,
                        &from.value,
                        shared_ns.as_deref(),
                    )
                    .await?
                }
                VarDef::PortForward(pf) => {
                    crate::engine::forward::port_forward_var(
                        ctx,
                        self,
                        suite,
                        vars,
                        &name.value,
                        &pf.value,
                        shared_ns.as_deref(),
                    )
                    .await?
                }
            };
            vars.set(name.value.clone(), v);
        }
        Ok(mode)
    }

    async fn read_var(
        &self,
        ctx: &Arc<RunContext>,
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
        let (policy, limits) = crate::engine::forward::var_wait(ctx, suite, from.timeout);
        let what = format!(
            "{kind_name} {obj_name}{}",
            ns.as_ref().map(|n| format!(" in {n}")).unwrap_or_default()
        );
        let pending = format!("reading {} of {what}", from.path.raw);
        let result = retry::eventually(
            &policy,
            &limits,
            &pending,
            &mut |_: &retry::AttemptRecord| {},
            |_| async {
                let kind = self
                    .resolve(&api_version, &kind_name)
                    .await
                    .map_err(|e| super::miss(&e, &what))?;
                let obj = self
                    .get(&kind, ns.as_deref(), &obj_name)
                    .await
                    .map_err(|e| super::miss(&e, &what))?
                    .ok_or_else(|| {
                        Miss::new(
                            Class::NotFound,
                            "not found",
                            format!("{what} does not exist"),
                        )
                    })?;
                crate::matching::query_one(&from.path, &obj)
                    .map_err(|e| Miss::new(Class::Field, "field not set", format!("{what}: {e}")))
            },
        )
        .await;
        match result {
            Ok((v, _)) => Ok(v),
            Err(g) => {
                let mut f = failure_from(&g, &limits);
                f.headline = format!("variable `{name}` from {}: {}", from.path.raw, f.headline);
                Err(f)
            }
        }
    }

    /// Suite teardown: remove fixtures newest first and the namespace the setup created.
    pub async fn teardown_suite(
        &self,
        ctx: &Arc<RunContext>,
        suite: &Suite,
        keep: bool,
    ) -> Result<(), String> {
        let res = registry(self)
            .map
            .lock()
            .expect("poisoned")
            .remove(&suite.file);
        let Some(res) = res else { return Ok(()) };
        let res = std::mem::take(&mut *res.lock().expect("poisoned"));
        if keep {
            // Kept fixtures stay held: no other suite's teardown removes them either.
            return Ok(());
        }
        let reg = registry(self);
        // No suite applies fixtures while this one removes its own.
        let _fixtures = reg.fixtures.lock().await;
        // Only objects no other suite of the run holds any more go.
        let unheld: Vec<Tracked> = {
            let mut holders = reg.holders.lock().expect("poisoned");
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
        let deadline = Instant::now() + lifecycle::cleanup_timeout(suite, ctx.config.timeout_scale);
        self.cleanup(&unheld, res.namespace.as_deref(), deadline)
            .await
    }
}

/// What to remember about an applied object.
pub fn tracked(obj: &Value) -> Tracked {
    let (api_version, kind_name, name) = identity(obj).unwrap_or_default();
    Tracked {
        api_version,
        kind: kind_name,
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name,
        uid: obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}
