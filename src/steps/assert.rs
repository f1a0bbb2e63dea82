//! The `assert` step: eventually, the object (by name) or the objects (by selector) exist — or
//! not, with `absent` — with fresh conditions and matching fields. Driven by a watch: the step
//! re-checks the moment something changes, with the backoff as a safety net. Every check reads
//! the object from the API server (never a cache), so a stale copy can't pass it.
//!
//! Freshness (DESIGN §1.4): a condition counts only when its observedGeneration equals the
//! object's generation; otherwise the attempt's class is `stale`.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::Notify;

use super::{StepCtx, StepResult, failure_from};
use crate::cluster::target::Target;
use crate::cluster::watch::Changes;
use crate::cluster::{Cluster, Kind, Tracked};
use crate::engine::cluster_retry::miss;
use crate::engine::retry::{self, Class, Miss, Missed, Section, SectionKind};
use crate::matching::{self, cel};
use crate::suite::model::AssertSpec;
use crate::util::truncate;

/// A condition expectation with variables substituted.
#[derive(Clone, Debug)]
pub struct Cond {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
}

/// What the assertion wants, ready to check.
#[derive(Clone, Debug)]
pub struct Expect {
    pub conditions: Vec<Cond>,
    pub fields: Option<Value>,
    pub absent: bool,
    pub count: Option<u32>,
    pub fresh: bool,
    /// `cel:` expressions over the object (`self`).
    pub cel: Vec<cel::Check>,
    /// The values of what is checked are not shown: a Secret without `--show-secrets`.
    pub hide_values: bool,
}

impl Expect {
    fn describe(&self, what: &str) -> String {
        if self.absent {
            return format!("{what} absent");
        }
        let mut parts = vec![match self.count {
            Some(n) => format!("exactly {n} × {what}"),
            None => format!("{what} exists"),
        }];
        for c in &self.conditions {
            let mut s = format!("{}={}", c.type_, c.status);
            if let Some(r) = &c.reason {
                s.push_str(&format!(" (reason {r})"));
            }
            parts.push(s);
        }
        if let Some(f) = &self.fields {
            let mut f = f.clone();
            if self.hide_values {
                crate::redact::redact_secret(&mut f);
            }
            parts.push(format!("fields {}", matching::short(&f)));
        }
        for c in &self.cel {
            parts.push(format!("cel `{}`", c.source));
        }
        if !self.conditions.is_empty() && self.fresh {
            parts.push("conditions fresh".into());
        }
        parts.join(", ")
    }
}

pub async fn run(spec: &AssertSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let (cluster, target) = match ctx.cluster_target("assert", &spec.resource.value) {
        Ok(ct) => ct,
        Err(r) => return r,
    };
    let mut conditions = Vec::new();
    for c in &spec.conditions {
        let expand = |t| ctx.vars.expand(t);
        let cond = (|| {
            Ok::<_, crate::suite::vars::VarError>(Cond {
                type_: expand(&c.value.type_)?,
                status: expand(&c.value.status)?,
                reason: c.value.reason.as_ref().map(expand).transpose()?,
            })
        })();
        match cond {
            Ok(c) => conditions.push(c),
            Err(e) => return e.into(),
        }
    }
    let fields = match spec
        .fields
        .as_ref()
        .map(|f| ctx.vars.expand_node(&f.value))
        .transpose()
    {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let cel = match spec
        .cel
        .iter()
        .map(|c| cel::Check::prepare(c, ctx.vars))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(c) => c,
        Err(e) => return StepResult::error(e),
    };
    let expect = Expect {
        conditions,
        fields,
        absent: spec.absent,
        count: spec.count,
        cel,
        hide_values: !ctx.run.config.show_secrets
            && crate::redact::is_secret_kind(&target.api_version, &target.kind),
        fresh: spec.fresh,
    };

    // The watch starts as soon as the kind resolves: now, or on the attempt that first finds
    // it (a CRD applied a moment ago), waking the engine through the same Notify.
    let wake = Arc::new(Notify::new());
    let changes: OnceLock<Changes> = OnceLock::new();
    let start_watch = |k: &Kind| {
        changes.get_or_init(|| {
            let ns = if k.namespaced {
                target.namespace.as_deref()
            } else {
                None
            };
            Changes::start(
                &cluster,
                k,
                ns,
                target.name.as_deref(),
                target.selector.as_deref(),
                wake.clone(),
            )
        });
    };
    let kind = ctx.resolve_early(&cluster, &target).await;
    if let Some(k) = &kind {
        start_watch(k);
    }
    let mut limits = ctx.limits.clone();
    limits.wake = Some(wake.clone());

    let tracked = ctx.state.tracked.clone();
    let what = target.describe(kind.as_ref().is_none_or(|k| k.namespaced));
    let pending = format!("reading {what}");
    let mut observer = ctx.observer();
    let result = retry::eventually(&ctx.policy, &limits, &pending, &mut observer, |_| {
        let (cluster, target, expect, tracked, start_watch) =
            (&cluster, &target, &expect, &tracked, &start_watch);
        async move {
            // One resolve per attempt: while the kind is missing each one refreshes discovery.
            let kind = cluster
                .resolve(&target.api_version, &target.kind)
                .await
                .map_err(|e| miss(&e, &target.describe(true)))?;
            start_watch(&kind);
            attempt(cluster, &kind, target, expect, tracked).await
        }
    })
    .await;

    match result {
        Ok((found, h)) => {
            for (name, path) in spec.capture.iter() {
                match matching::query_one(path, &found) {
                    Ok(v) => ctx.vars.set(name.value.clone(), v),
                    Err(e) => {
                        return StepResult::failed(
                            h.attempts,
                            crate::engine::events::Failure::error(format!(
                                "capture `{}`: {e}",
                                name.value
                            )),
                        );
                    }
                }
            }
            StepResult::passed(h.attempts)
        }
        Err(g) => gave_up(ctx, &g, &expect, &what, &cluster, &target, kind.as_ref()).await,
    }
}

/// The failure of an assert that gave up: the last object read, the near misses, why nobody
/// may be reconciling it, and how to look at it.
async fn gave_up(
    ctx: &mut StepCtx<'_>,
    g: &retry::GaveUp<Value>,
    expect: &Expect,
    what: &str,
    cluster: &Cluster,
    target: &Target,
    kind: Option<&Kind>,
) -> StepResult {
    let mut f = failure_from(g, &ctx.limits);
    f.expected = Some(expect.describe(what));
    // Nobody reconciling a Gateway API object is the usual reason its status never
    // comes: say so first.
    let seen = g.produced.as_ref().map(|p| &p.value);
    if !expect.absent
        && g.cause != retry::Cause::Cancelled
        && let Some(obj) = seen
        && let Some(h) = crate::cluster::controllers::unreconciled(cluster, obj).await
    {
        f.hints.insert(0, h);
    }
    if let Some(obj) = seen
        && !f.sections.iter().any(|s| s.kind == SectionKind::LastObject)
    {
        f.sections.push(Section::of(
            SectionKind::LastObject,
            "last object",
            show_object(obj, expect.hide_values),
        ));
    }
    if !expect.absent {
        ctx.add_near_misses(&mut f, g, cluster, target).await;
    }
    if let Some(k) = kind {
        f.reproduce.push(target.kubectl_get(
            &k.ar.plural,
            &k.ar.group,
            k.namespaced,
            &cluster.kubectl_flags(),
        ));
    }
    if g.history
        .class_counts()
        .iter()
        .any(|(c, _)| *c == Class::Stale)
    {
        f.hints.push(
            "a stale condition was written for an older generation: the controller has not \
             reconciled the latest spec (or its status writer skipped the write)"
                .into(),
        );
    }
    StepResult::failed(g.history.attempts, f)
}

/// One read and check. The object (or `{items: [...]}` of a selector) comes back with the
/// verdict either way, moved, never copied: the report shows the latest one read.
async fn attempt(
    cluster: &Cluster,
    kind: &Kind,
    target: &Target,
    expect: &Expect,
    tracked: &[Tracked],
) -> Result<Value, Missed<Value>> {
    let ns = if kind.namespaced {
        target.namespace.as_deref()
    } else {
        None
    };
    let what = target.describe(kind.namespaced);
    if let Some(name) = &target.name {
        let obj = cluster
            .get(kind, ns, name)
            .await
            .map_err(|e| miss(&e, &what))?;
        let Some(obj) = obj else {
            return if expect.absent {
                Ok(Value::Null)
            } else {
                Err(Miss::new(
                    Class::NotFound,
                    "not found",
                    format!("{what} does not exist"),
                )
                .into())
            };
        };
        let verdict = if expect.absent {
            Err(still_exists(&what, &obj))
        } else {
            check_replaced(kind, target, tracked, &obj)
                .and_then(|()| check_object(expect, &obj, &what))
        };
        return match verdict {
            Ok(()) => Ok(obj),
            Err(m) => Err(Missed::seen(m, obj)),
        };
    }
    let selector = target.selector.as_deref().unwrap_or_default();
    let items = cluster
        .list(kind, ns, selector)
        .await
        .map_err(|e| miss(&e, &what))?;
    let verdict = check_items(expect, target, &what, &items);
    // Moved into place: `json!` would serialize (copy) every object.
    let listed = Value::Object(serde_json::Map::from_iter([(
        "items".to_owned(),
        Value::Array(items),
    )]));
    match verdict {
        Ok(()) => Ok(listed),
        Err(m) => Err(Missed::seen(m, listed)),
    }
}

/// The checks of a selector's objects.
fn check_items(expect: &Expect, target: &Target, what: &str, items: &[Value]) -> Result<(), Miss> {
    if expect.absent {
        return match items.first() {
            None => Ok(()),
            Some(o) => Err(still_exists(
                &format!("{what} ({})", objects(items.len())),
                o,
            )),
        };
    }
    match expect.count {
        Some(n) if items.len() != n as usize => {
            return Err(Miss::new(
                Class::NotFound,
                format!("found {}", objects(items.len())),
                format!(
                    "{what}: found {}, expected {n}{}",
                    objects(items.len()),
                    names(items)
                ),
            ));
        }
        None if items.is_empty() => {
            return Err(Miss::new(
                Class::NotFound,
                "found no object",
                format!("{what}: no object matches"),
            ));
        }
        _ => {}
    }
    for o in items {
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        check_object(expect, o, &format!("{} {name}", target.kind))?;
    }
    Ok(())
}

/// `1 object`, `2 objects`
fn objects(n: usize) -> String {
    format!("{n} object{}", if n == 1 { "" } else { "s" })
}

fn names(items: &[Value]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let n: Vec<&str> = items
        .iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .take(10)
        .collect();
    format!(": {}", n.join(", "))
}

fn still_exists(what: &str, obj: &Value) -> Miss {
    let deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
    let detail = if deleting {
        let fin = obj
            .pointer("/metadata/finalizers")
            .map(|f| f.to_string())
            .unwrap_or_else(|| "[]".into());
        format!("{what} is being deleted but still exists (finalizers {fin})")
    } else {
        format!("{what} still exists")
    };
    Miss::new(Class::Field, "still exists", detail)
}

fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn check_replaced(
    kind: &Kind,
    target: &Target,
    tracked: &[Tracked],
    obj: &Value,
) -> Result<(), Miss> {
    let name = target.name.as_deref().unwrap_or_default();
    let ns = if kind.namespaced {
        obj.pointer("/metadata/namespace").and_then(Value::as_str)
    } else {
        None
    };
    let t = tracked
        .iter()
        .rev()
        .find(|t| t.kind == kind.ar.kind && t.name == name && t.namespace.as_deref() == ns);
    match t {
        Some(t) if !t.uid.is_empty() && t.uid != uid(obj) => Err(Miss::new(
            Class::Replaced,
            "was replaced",
            format!(
                "{} {name} was replaced: the test applied uid {}, the cluster now has uid {} (created {})",
                kind.ar.kind,
                t.uid,
                uid(obj),
                obj.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
        )),
        _ => Ok(()),
    }
}

/// The condition lists of an object: `status.conditions`, or every Gateway API route parent's.
fn condition_sets(obj: &Value) -> Vec<(String, &[Value])> {
    if let Some(c) = obj.pointer("/status/conditions").and_then(Value::as_array) {
        return vec![(String::new(), c.as_slice())];
    }
    if let Some(parents) = obj.pointer("/status/parents").and_then(Value::as_array) {
        return parents
            .iter()
            .map(|p| {
                let name = p
                    .pointer("/parentRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                (
                    format!(" (parent {name})"),
                    p.get("conditions")
                        .and_then(Value::as_array)
                        .map_or(&[][..], Vec::as_slice),
                )
            })
            .collect();
    }
    Vec::new()
}

/// Check conditions (fresh) and fields of one object.
pub fn check_object(expect: &Expect, obj: &Value, what: &str) -> Result<(), Miss> {
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    if !expect.conditions.is_empty() {
        let sets = condition_sets(obj);
        if sets.is_empty() || sets.iter().all(|(_, c)| c.is_empty()) {
            let created = obj
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let gen_text = generation
                .map(|g| format!(" for its generation {g}"))
                .unwrap_or_default();
            return Err(Miss::new(
                Class::Condition,
                "had no status conditions",
                format!(
                    "{what} has no status{gen_text} (uid {}, created {created}): nothing has reported on this object",
                    uid(obj)
                ),
            ));
        }
        for (parent, conds) in &sets {
            for want in &expect.conditions {
                let found = conds
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(want.type_.as_str()));
                let Some(c) = found else {
                    let have: Vec<&str> = conds
                        .iter()
                        .filter_map(|c| c.get("type").and_then(Value::as_str))
                        .collect();
                    return Err(Miss::new(
                        Class::Condition,
                        format!("had no condition {}", want.type_),
                        format!(
                            "{what}{parent} has no condition {} (has: {})",
                            want.type_,
                            crate::util::list_or_none(&have)
                        ),
                    ));
                };
                let status = c.get("status").and_then(Value::as_str).unwrap_or("");
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
                let message = c.get("message").and_then(Value::as_str).unwrap_or("");
                if expect.fresh
                    && let (Some(og), Some(g)) = (
                        c.get("observedGeneration").and_then(Value::as_i64),
                        generation,
                    )
                    && og != g
                {
                    return Err(Miss::new(
                        Class::Stale,
                        format!("had {}={status} for an older generation", want.type_),
                        format!(
                            "{}={status} is for generation {og}, object is at generation {g}{parent}",
                            want.type_
                        ),
                    ));
                }
                if status != want.status {
                    let why = if reason.is_empty() && message.is_empty() {
                        String::new()
                    } else {
                        format!(" (reason {reason}: {})", truncate(message, 160))
                    };
                    return Err(Miss::new(
                        Class::Condition,
                        format!("had {}={status}", want.type_),
                        format!(
                            "{what}{parent}: {}={status}{why}, expected {}",
                            want.type_, want.status
                        ),
                    ));
                }
                if let Some(r) = &want.reason
                    && reason != r
                {
                    return Err(Miss::new(
                        Class::Condition,
                        format!("had {} reason {reason}", want.type_),
                        format!(
                            "{what}{parent}: {} has reason {reason:?}, expected {r:?}",
                            want.type_
                        ),
                    ));
                }
            }
        }
    }
    let hide = expect.hide_values;
    if let Some(f) = &expect.fields
        && let Err(mut m) = matching::subset(f, obj)
    {
        // Compared on the real values; shown redacted.
        if hide {
            crate::redact::redact_at(&m.path, &mut m.expected);
            if let Some(a) = m.actual.as_mut() {
                crate::redact::redact_at(&m.path, a);
            }
        }
        let miss = Miss::new(
            Class::Field,
            format!("{} did not match", m.path),
            format!("{what}: {m}"),
        );
        return Err(super::with_diff(miss, &m, &m.path));
    }
    if !expect.cel.is_empty() {
        let this = cel::from_json(obj);
        for c in &expect.cel {
            c.run("self", this.clone()).map_err(|m| {
                // The operands of an expression over a Secret may be its values.
                let detail = if hide {
                    format!("{} (operand values of a Secret are not shown)", m.summary)
                } else {
                    m.detail
                };
                Miss::new(Class::Cel, m.summary, format!("{what}: {detail}"))
            })?;
        }
    }
    Ok(())
}

/// The object for people: managedFields dropped, a Secret's values redacted (`hide`),
/// pretty JSON.
fn show_object(obj: &Value, hide: bool) -> String {
    let mut o = obj.clone();
    if hide {
        crate::redact::redact_secret(&mut o);
    }
    let strip = |o: &mut Value| {
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
    };
    strip(&mut o);
    if let Some(items) = o.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip);
    }
    let s = serde_json::to_string_pretty(&o).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() > 80 {
        format!(
            "{}\n… ({} more lines)",
            lines[..80].join("\n"),
            lines.len() - 80
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(t: &str, s: &str) -> Cond {
        Cond {
            type_: t.into(),
            status: s.into(),
            reason: None,
        }
    }

    fn expect(conds: Vec<Cond>) -> Expect {
        Expect {
            conditions: conds,
            fields: None,
            absent: false,
            count: None,
            fresh: true,
            cel: Vec::new(),
            hide_values: false,
        }
    }

    #[test]
    fn a_condition_for_an_older_generation_is_stale() {
        let obj = json!({"metadata": {"generation": 2, "uid": "u"}, "status": {"conditions": [
            {"type": "Accepted", "status": "True", "observedGeneration": 1}]}});
        let m =
            check_object(&expect(vec![cond("Accepted", "True")]), &obj, "Upstream x").unwrap_err();
        assert_eq!(m.class, Class::Stale);
        assert_eq!(
            m.detail,
            "Accepted=True is for generation 1, object is at generation 2"
        );
        let mut e = expect(vec![cond("Accepted", "True")]);
        e.fresh = false;
        assert!(check_object(&e, &obj, "Upstream x").is_ok());
    }

    #[test]
    fn no_status_names_the_object() {
        let obj = json!({"metadata": {"generation": 1, "uid": "abc", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        let m = check_object(
            &expect(vec![cond("Accepted", "True")]),
            &obj,
            "Upstream example-svc",
        )
        .unwrap_err();
        assert_eq!(m.class, Class::Condition);
        assert!(
            m.detail.contains(
                "has no status for its generation 1 (uid abc, created 2026-01-01T00:00:00Z)"
            ),
            "{}",
            m.detail
        );
    }

    #[test]
    fn route_parents_each_need_the_condition() {
        let obj = json!({"metadata": {"generation": 1}, "status": {"parents": [
            {"parentRef": {"name": "a"}, "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 1}]},
            {"parentRef": {"name": "b"}, "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowed", "observedGeneration": 1}]}
        ]}});
        let m =
            check_object(&expect(vec![cond("Accepted", "True")]), &obj, "HTTPRoute r").unwrap_err();
        assert!(
            m.detail
                .contains("(parent b): Accepted=False (reason NotAllowed"),
            "{}",
            m.detail
        );
    }

    #[test]
    fn fields_mismatch_reports_path() {
        let obj = json!({"spec": {"port": 8081}});
        let e = Expect {
            conditions: vec![],
            fields: Some(json!({"spec": {"port": 8080}})),
            absent: false,
            count: None,
            fresh: true,
            cel: Vec::new(),
            hide_values: false,
        };
        let m = check_object(&e, &obj, "Upstream x").unwrap_err();
        assert_eq!(m.class, Class::Field);
        assert!(
            m.detail.contains("$.spec.port: expected 8080, got 8081"),
            "{}",
            m.detail
        );
    }
}
