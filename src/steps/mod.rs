//! One file per action. The engine hands a step a `StepCtx` (clients, variables, deadlines,
//! cancellation) and gets back a `StepResult`; it knows nothing of the step's internals.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::RunContext;
use crate::engine::events::{EventSink, Failure, FailureCause, TestId};
use crate::engine::retry::{
    AttemptRecord, Cause, GaveUp, Limits, Miss, Policy, Section, SectionKind,
};
use crate::suite::model::{Action, Step};
use crate::suite::spanned::Loc;
use crate::suite::vars::{VarError, Vars};

pub mod apply;
pub mod assert;
pub mod delete;
pub mod exec;
pub mod patch;
pub mod pause;
pub mod request;
pub mod sleep;
pub mod spans;

/// How long listing the near-miss names may take once the step has given up.
const NEAR_MISS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Names listed in a not-found failure, closest first.
const NEAR_MISS_NAMES: usize = 10;

/// `Upstreams`, `GatewayClasses`, `Policies`: a kind's plural for messages.
fn plural(kind: &str) -> String {
    if kind.ends_with('s') || kind.ends_with('x') || kind.ends_with("ch") || kind.ends_with("sh") {
        format!("{kind}es")
    } else if let Some(stem) = kind.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    }
}

/// The W3C trace context of a request attempt: what `trace: last-request` looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTrace {
    pub trace_id: [u8; 16],
    /// The span id sent as the traceparent's parent id.
    pub span_id: [u8; 8],
}

/// State a test carries from step to step.
#[derive(Debug, Default)]
pub struct TestState {
    /// The test's namespace, when it talks to a cluster.
    pub namespace: Option<String>,
    /// Trace context of the last attempt of the last request step.
    pub last_request: Option<RequestTrace>,
    /// Span store position when the test started (`trace: any`).
    pub spans_since: u64,
    /// Objects the test applied, newest last, for cleanup and `replaced` detection.
    pub tracked: Vec<crate::cluster::Tracked>,
    /// The trace context of the current step's own span (run export), parent of attempts.
    pub step_span: Option<RequestTrace>,
    /// The test's deadline, stopped while the test is paused.
    pub clock: Arc<crate::debug::pause::Clock>,
    /// A person asked to keep the test's resources (`k` at the pause prompt).
    pub keep: bool,
}

impl TestState {
    /// What a pause shows of the test, and its clock.
    pub fn view(&self) -> crate::debug::pause::TestView<'_> {
        crate::debug::pause::TestView {
            namespace: self.namespace.as_deref(),
            tracked: &self.tracked,
            clock: &self.clock,
        }
    }
}

/// What a step gets from the engine.
pub struct StepCtx<'a> {
    pub test: &'a TestId,
    pub index: usize,
    pub step: &'a Step,
    /// Where the step is in its file.
    pub loc: Loc,
    /// The test file; relative paths in the step are relative to its directory.
    pub file: &'a Path,
    pub vars: &'a mut Vars,
    /// Retry policy after defaults and `--timeout-scale`.
    pub policy: Policy,
    /// One HTTP attempt's deadline after defaults and `--timeout-scale`.
    pub attempt_timeout: Duration,
    pub limits: Limits,
    pub run: &'a Arc<RunContext>,
    pub state: &'a mut TestState,
    pub events: &'a EventSink,
}

impl StepCtx<'_> {
    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// The connected cluster and what `resource:` points at (variables substituted, the
    /// namespace defaulted to the test's), for the cluster steps.
    pub fn cluster_target(
        &self,
        step: &str,
        r: &crate::suite::model::ResourceRef,
    ) -> Result<(Arc<crate::cluster::Cluster>, crate::cluster::target::Target), StepResult> {
        let Some(cluster) = self.run.cluster.clone() else {
            return Err(StepResult::error(format!(
                "{step} needs a cluster, and none is connected"
            )));
        };
        let target = crate::cluster::target::Target::from_ref(
            r,
            self.vars,
            self.state.namespace.as_deref(),
        )?;
        Ok((cluster, target))
    }

    /// Resolve a kind before the attempts start (to name the object, to start a watch),
    /// within the step's deadline and Ctrl-C; `None` if it can't be yet (attempts retry it).
    pub async fn resolve_early(
        &self,
        cluster: &crate::cluster::Cluster,
        t: &crate::cluster::target::Target,
    ) -> Option<crate::cluster::Kind> {
        let resolve = tokio::time::timeout_at(
            self.limits.deadline(),
            cluster.resolve(&t.api_version, &t.kind),
        );
        tokio::select! {
            r = resolve => r.ok()?.ok(),
            _ = self.limits.cancel.cancelled() => None,
        }
    }

    /// For a named object that never appeared (the step gave up on `not-found`): the names of
    /// that kind where it was looked for, closest first, as the failure's first hint (`no
    /// Upstream example-svc2 in namespace ns; Upstreams there: example-svc`), so a typo or a
    /// wrong namespace shows at once. One list, bounded by a few seconds and Ctrl-C.
    pub async fn add_near_misses<T>(
        &self,
        f: &mut Failure,
        g: &GaveUp<T>,
        cluster: &crate::cluster::Cluster,
        target: &crate::cluster::target::Target,
    ) {
        let Some(name) = &target.name else { return };
        if g.class() != Some(crate::engine::retry::Class::NotFound) {
            return;
        }
        let list = async {
            let kind = cluster
                .resolve(&target.api_version, &target.kind)
                .await
                .ok()?;
            let ns = target.namespace.as_deref().filter(|_| kind.namespaced);
            let items = cluster.list(&kind, ns, "").await.ok()?;
            Some((ns.map(str::to_owned), items))
        };
        let listed = tokio::select! {
            r = tokio::time::timeout(NEAR_MISS_TIMEOUT, list) => r.ok().flatten(),
            _ = self.limits.cancel.cancelled() => None,
        };
        let Some((ns, items)) = listed else { return };
        let names: Vec<&str> = items
            .iter()
            .filter_map(|o| {
                o.pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
            })
            .collect();
        let kinds = plural(&target.kind);
        let here = ns
            .map(|ns| format!(" in namespace {ns}"))
            .unwrap_or_default();
        let there = if names.is_empty() {
            format!("no {kinds} there")
        } else {
            let closest = crate::matching::closest(name, names.iter().copied(), NEAR_MISS_NAMES);
            let more = match names.len() - closest.len() {
                0 => String::new(),
                n => format!(" … and {n} more"),
            };
            format!("{kinds} there: {}{more}", closest.join(", "))
        };
        f.hints
            .insert(0, format!("no {} {name}{here}; {there}", target.kind));
    }

    /// Forwards attempts to the event stream (progress lines, attempt counts).
    pub fn observer(&self) -> impl FnMut(&AttemptRecord) + Send + use<> {
        let (events, id, index) = (self.events.clone(), self.test.clone(), self.index);
        move |r: &AttemptRecord| {
            events.emit(crate::engine::events::Event::Attempt {
                id: id.clone(),
                index,
                record: r.clone(),
            })
        }
    }
}

/// A text expectation (`equals` | `contains` | `matches`) with variables substituted.
pub fn text_match(
    t: &crate::suite::model::TextMatch,
    vars: &Vars,
) -> Result<crate::matching::Text, StepResult> {
    use crate::matching::Text;
    if let Some(e) = &t.equals {
        return Ok(Text::Equals(vars.expand(e)?));
    }
    if let Some(c) = &t.contains {
        return Ok(Text::Contains(vars.expand(c)?));
    }
    if let Some(p) = &t.matches {
        return Ok(Text::Matches(compile(p, vars)?));
    }
    Err(StepResult::error(
        "a text expectation needs one of equals, contains, matches",
    ))
}

/// A field mismatch's miss, with the diff at `at` when the two values have one.
pub fn with_diff(miss: Miss, m: &crate::matching::Mismatch, at: &str) -> Miss {
    match m.diff() {
        Some(d) => miss.with_context(Section::of(SectionKind::Diff, format!("diff at {at}"), d)),
        None => miss,
    }
}

/// A pattern's regex: compiled at load time, or now when it held variables.
pub fn compile(
    p: &crate::suite::spanned::Pattern,
    vars: &Vars,
) -> Result<regex::Regex, StepResult> {
    if let Some(r) = &p.compiled {
        return Ok(r.clone());
    }
    let s = vars.expand(&p.template)?;
    regex::Regex::new(&s).map_err(|e| {
        let at = if p.template.loc.is_known() {
            format!(" (at {})", p.template.loc)
        } else {
            String::new()
        };
        StepResult::error(format!("invalid regex {s:?} after substitution: {e}{at}"))
    })
}

/// How a step ended.
#[derive(Clone, Debug, Default)]
pub struct StepResult {
    pub attempts: u32,
    pub failure: Option<Failure>,
    /// A `pause` step without `--pause`.
    pub skipped: bool,
}

impl StepResult {
    pub fn passed(attempts: u32) -> Self {
        StepResult {
            attempts,
            failure: None,
            skipped: false,
        }
    }

    pub fn failed(attempts: u32, failure: Failure) -> Self {
        StepResult {
            attempts,
            failure: Some(failure),
            skipped: false,
        }
    }

    /// A run-time error that is not an assertion failure (unknown variable, unreadable file).
    pub fn error(message: impl Into<String>) -> Self {
        StepResult::failed(0, Failure::error(message))
    }
}

impl From<VarError> for StepResult {
    fn from(e: VarError) -> Self {
        let at = if e.loc.is_known() {
            format!(" (at {})", e.loc)
        } else {
            String::new()
        };
        StepResult::error(format!("{}{at}", e.message))
    }
}

/// Turn the retry engine's verdict into a step failure: cause, class, headline, last context.
pub fn failure_from<T>(g: &GaveUp<T>, limits: &Limits) -> Failure {
    let cause = match g.cause {
        Cause::Timeout => FailureCause::Timeout,
        Cause::TestTimeout => FailureCause::TestTimeout,
        Cause::HoldBroken { .. } => FailureCause::Hold,
        Cause::Fatal => FailureCause::Error,
        Cause::Cancelled => FailureCause::Interrupted,
    };
    let mut headline = g.headline();
    match g.cause {
        Cause::TestTimeout => {
            headline = format!(
                "test-timeout ({}) reached during this step: {headline}",
                crate::util::fmt_duration(limits.test_timeout)
            )
        }
        Cause::Cancelled => headline = format!("interrupted: {headline}"),
        _ => {}
    }
    let mut f = Failure::new(cause, g.class(), headline);
    if let Some(m) = &g.last {
        f.sections.extend(m.context.iter().cloned());
    }
    f
}

/// Run one step.
pub async fn run(ctx: &mut StepCtx<'_>) -> StepResult {
    match &ctx.step.action {
        Action::Apply(a) => apply::run(a, ctx).await,
        Action::Assert(a) => assert::run(a, ctx).await,
        Action::Request(r) => request::run(r, ctx).await,
        Action::Spans(s) => spans::run(s, ctx).await,
        Action::Patch(p) => patch::run(p, ctx).await,
        Action::Delete(d) => delete::run(d, ctx).await,
        Action::Exec(e) => exec::run(e, ctx).await,
        Action::Sleep(d) => sleep::run(*d, ctx).await,
        Action::Pause(m) => pause::run(m, ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn plurals_of_kinds() {
        assert_eq!(plural("Upstream"), "Upstreams");
        assert_eq!(plural("GatewayClass"), "GatewayClasses");
        assert_eq!(plural("BackendTLSPolicy"), "BackendTLSPolicies");
        assert_eq!(plural("Gateway"), "Gateways");
        assert_eq!(plural("Ingress"), "Ingresses");
    }
}
