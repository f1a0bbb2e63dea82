//! The one retry engine (DESIGN §1.2). Every assertion, and every action retried on transient
//! errors, runs here: attempt; on failure wait (`interval`, doubling up to `max-interval`, with
//! jitter, via backon) until the deadline; `consecutive` successes in a row to pass; then,
//! with `hold`, every attempt within `hold` must pass too. Every attempt is recorded so a
//! failure can say what happened without a rerun.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::util::{fmt_duration, fmt_secs, truncate};

/// What kind of failure an attempt had (DESIGN §1.2), used to group attempts in summaries.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    // HTTP
    Refused,
    Dns,
    Tls,
    Timeout,
    Reset,
    Status,
    Header,
    Body,
    Json,
    // resources
    NotFound,
    Stale,
    Condition,
    Field,
    ApiError,
    Replaced,
    // spans
    NoTrace,
    MissingSpan,
    UnexpectedSpan,
    Attribute,
    // `cel:` checks (any step kind)
    Cel,
    // exec
    Exit,
    Output,
    // anything else (bad input found at run time, I/O)
    Error,
}

impl Class {
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Refused => "refused",
            Class::Dns => "dns",
            Class::Tls => "tls",
            Class::Timeout => "timeout",
            Class::Reset => "reset",
            Class::Status => "status",
            Class::Header => "header",
            Class::Body => "body",
            Class::Json => "json",
            Class::NotFound => "not-found",
            Class::Stale => "stale",
            Class::Condition => "condition",
            Class::Field => "field",
            Class::ApiError => "api-error",
            Class::Replaced => "replaced",
            Class::NoTrace => "no-trace",
            Class::MissingSpan => "missing-span",
            Class::UnexpectedSpan => "unexpected-span",
            Class::Attribute => "attribute",
            Class::Cel => "cel",
            Class::Exit => "exit",
            Class::Output => "output",
            Class::Error => "error",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A titled block of context shown with a failure (last response, object, diff, spans seen).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    /// What it is, for code that looks for one (the title is for people).
    #[serde(skip)]
    pub kind: SectionKind,
    pub title: String,
    pub body: String,
}

/// The kinds of [`Section`] code needs to tell apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SectionKind {
    #[default]
    Other,
    LastResponse,
    LastObject,
    LastRun,
    Diff,
    SpansSeen,
    SpanAttributes,
    TransportError,
}

impl Section {
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Self {
        Section::of(SectionKind::Other, title, body)
    }

    pub fn of(kind: SectionKind, title: impl Into<String>, body: impl Into<String>) -> Self {
        Section {
            kind,
            title: title.into(),
            body: body.into(),
        }
    }
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Miss {
    pub class: Class,
    /// A phrase attempts are grouped by: `timed out after 3s (attempt-timeout)`, `got status 503`.
    pub summary: String,
    /// This attempt in full, one line: `status 503, body "no healthy upstream"`.
    pub detail: String,
    /// Waiting cannot fix it (a rejected manifest, a bad URL): stop retrying.
    pub fatal: bool,
    /// Shown with the failure when this is the last attempt.
    pub context: Vec<Section>,
}

impl Miss {
    pub fn new(class: Class, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Miss {
            class,
            summary: summary.into(),
            detail: detail.into(),
            fatal: false,
            context: Vec::new(),
        }
    }

    /// A failure no retry can fix.
    pub fn fatal(class: Class, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Miss {
            class,
            summary: detail.clone(),
            detail,
            fatal: true,
            context: Vec::new(),
        }
    }

    pub fn with_context(mut self, s: Section) -> Self {
        self.context.push(s);
        self
    }
}

/// Timing and success rules of one step, after defaults and `--timeout-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub timeout: Duration,
    pub interval: Duration,
    pub max_interval: Duration,
    pub consecutive: u32,
    pub hold: Option<Duration>,
}

impl Policy {
    /// A single try for actions: no waiting, no repeats.
    pub fn once(timeout: Duration) -> Self {
        Policy {
            timeout,
            interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(2),
            consecutive: 1,
            hold: None,
        }
    }
}

/// Deadlines and signals a step runs under.
#[derive(Clone, Debug)]
pub struct Limits {
    /// When the step started: its timeout, and the time its attempt summary reports, count
    /// from here (not from the first attempt, which preparing the step delays).
    pub started: Instant,
    /// When the step gives up (start + timeout, never later than the test deadline).
    pub step_deadline: Instant,
    /// The test's hard deadline; hitting it is reported as a test-timeout.
    pub test_deadline: Instant,
    /// The test-timeout, for messages.
    pub test_timeout: Duration,
    /// Ctrl-C.
    pub cancel: CancellationToken,
    /// Woken by a watch when something changed: retry now instead of sleeping.
    pub wake: Option<Arc<Notify>>,
}

impl Limits {
    /// The step deadline for a given start and timeout, capped by the test deadline.
    pub fn for_step(
        start: Instant,
        timeout: Duration,
        test_deadline: Instant,
        test_timeout: Duration,
        cancel: CancellationToken,
    ) -> Self {
        Limits {
            started: start,
            step_deadline: (start + timeout).min(test_deadline),
            test_deadline,
            test_timeout,
            cancel,
            wake: None,
        }
    }

    /// A step starting now, in a test that has `test_timeout` left.
    pub fn starting_now(
        timeout: Duration,
        test_timeout: Duration,
        cancel: CancellationToken,
    ) -> Self {
        let now = Instant::now();
        Limits::for_step(now, timeout, now + test_timeout, test_timeout, cancel)
    }

    /// The earliest deadline in force.
    pub fn deadline(&self) -> Instant {
        self.step_deadline.min(self.test_deadline)
    }
}

/// One recorded attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// 1-based.
    pub n: u32,
    /// Since the step started.
    pub start: Duration,
    pub duration: Duration,
    /// `None` for a success.
    pub class: Option<Class>,
    /// The grouping phrase (empty for a success).
    pub summary: String,
    /// For an HTTP request attempt: what was sent and what came back (the run's trace
    /// describes it with the HTTP client semantic conventions). Filled in by the step.
    pub http: Option<HttpAttempt>,
}

/// An HTTP request attempt, as its span describes it. Method and URL are shared by every
/// attempt of a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HttpAttempt {
    pub method: Arc<str>,
    /// The URL requested.
    pub url: Arc<str>,
    /// The response status; `None` when no response came (refused, timed out...).
    pub status: Option<u16>,
}

/// The attempts of one step. Keeps every record up to a cap, and counts beyond it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    pub attempts: u32,
    pub passed: u32,
    pub elapsed: Duration,
    pub records: Vec<AttemptRecord>,
    /// (summary, class, count) in first-seen order.
    groups: Vec<(String, Class, u32)>,
}

const MAX_RECORDS: usize = 10_000;

impl History {
    fn record(&mut self, rec: AttemptRecord) {
        self.attempts += 1;
        match rec.class {
            None => self.passed += 1,
            Some(class) => {
                match self
                    .groups
                    .iter_mut()
                    .find(|(s, c, _)| *c == class && *s == rec.summary)
                {
                    Some(g) => g.2 += 1,
                    None => self.groups.push((rec.summary.clone(), class, 1)),
                }
            }
        }
        if self.records.len() < MAX_RECORDS {
            self.records.push(rec);
        }
    }

    /// Failed attempts per class.
    pub fn class_counts(&self) -> Vec<(Class, u32)> {
        let mut out: Vec<(Class, u32)> = Vec::new();
        for (_, c, n) in &self.groups {
            match out.iter_mut().find(|(k, _)| k == c) {
                Some(e) => e.1 += n,
                None => out.push((*c, *n)),
            }
        }
        out
    }

    /// The failed attempts' class with the most attempts.
    pub fn dominant_class(&self) -> Option<Class> {
        self.class_counts()
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(c, _)| c)
    }

    /// `41 attempts in 30.0s: 38 timed out after 3s (attempt-timeout), 3 got status 503`
    pub fn summary(&self) -> String {
        let noun = if self.attempts == 1 {
            "attempt"
        } else {
            "attempts"
        };
        let mut parts: Vec<String> = Vec::new();
        let mut groups = self.groups.clone();
        groups.sort_by_key(|g| std::cmp::Reverse(g.2));
        for (summary, _, n) in groups.iter().take(5) {
            parts.push(format!("{n} {summary}"));
        }
        if groups.len() > 5 {
            let rest: u32 = groups[5..].iter().map(|g| g.2).sum();
            parts.push(format!("{rest} other failures"));
        }
        if self.passed > 0 {
            parts.push(format!("{} passed", self.passed));
        }
        format!(
            "{} {noun} in {}: {}",
            self.attempts,
            fmt_secs(self.elapsed),
            parts.join(", ")
        )
    }
}

/// Why the engine gave up.
#[derive(Clone, Debug, PartialEq)]
pub enum Cause {
    /// The step timeout passed without the assertion holding.
    Timeout,
    /// The test-timeout passed while this step was running.
    TestTimeout,
    /// `consecutive` reached, then an attempt within `hold` failed.
    HoldBroken { held: Duration, hold: Duration },
    /// An attempt reported a failure waiting cannot fix.
    Fatal,
    /// Ctrl-C.
    Cancelled,
}

/// The engine gave up: why, every attempt, the last failure, and the latest value an attempt
/// produced (the response that did not match, the object whose condition was wrong).
#[derive(Clone, Debug)]
pub struct GaveUp<T = ()> {
    pub cause: Cause,
    pub history: History,
    pub last: Option<Miss>,
    /// The attempt cut off by the deadline, if one was in flight: (what it was doing, for how long).
    pub pending: Option<(String, Duration)>,
    /// `consecutive` was reached and `hold` had lasted this long, every attempt passing, when
    /// a deadline or Ctrl-C cut it.
    pub holding: Option<Duration>,
    pub policy: Policy,
    /// The value of the latest attempt that produced one (a later attempt may have produced
    /// none: no response, an API error).
    pub produced: Option<Produced<T>>,
}

/// A value an attempt produced, and which attempt (1-based) produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Produced<T> {
    pub attempt: u32,
    pub value: T,
}

impl<T> GaveUp<T> {
    /// One paragraph saying what happened, e.g.
    /// `41 attempts in 30.0s: 38 timed out after 3s (attempt-timeout), 3 got status 503; last: status 503`.
    pub fn headline(&self) -> String {
        let last = self.last.as_ref().map(|m| truncate(&m.detail, 300));
        match &self.cause {
            Cause::HoldBroken { held, hold } => format!(
                "held {} of {}, then: {}",
                fmt_secs(*held),
                fmt_duration(*hold),
                last.unwrap_or_default()
            ),
            Cause::Fatal => last.unwrap_or_else(|| "failed".into()),
            _ => {
                let mut s = self.history.summary();
                if self.history.attempts == 0 {
                    s = format!("no attempt finished in {}", fmt_secs(self.history.elapsed));
                }
                if let Some(held) = self.holding {
                    s = format!(
                        "still holding ({} of {} held, every attempt passed); {s}",
                        fmt_secs(held),
                        fmt_duration(self.policy.hold.unwrap_or_default())
                    );
                }
                if let Some(l) = last {
                    s.push_str(&format!("; last: {l}"));
                }
                if self.history.passed > 0 && self.policy.consecutive > 1 && self.holding.is_none()
                {
                    s.push_str(&format!(
                        " (needs {} passing attempts in a row)",
                        self.policy.consecutive
                    ));
                }
                if let Some((what, running)) = &self.pending {
                    s.push_str(&format!("; cut off after {}: {what}", fmt_secs(*running)));
                }
                s
            }
        }
    }

    pub fn class(&self) -> Option<Class> {
        self.last
            .as_ref()
            .map(|m| m.class)
            .or_else(|| self.history.dominant_class())
    }

    /// How many attempts were started: the finished ones and the one a deadline or Ctrl-C
    /// cut off.
    pub fn started(&self) -> u32 {
        self.history.attempts + u32::from(self.pending.is_some())
    }
}

/// A failed attempt that still read something worth keeping for the report.
#[derive(Clone, Debug)]
pub struct Missed<T> {
    pub miss: Miss,
    pub seen: Option<T>,
}

impl<T> Missed<T> {
    pub fn seen(miss: Miss, value: T) -> Self {
        Missed {
            miss,
            seen: Some(value),
        }
    }
}

impl<T> From<Miss> for Missed<T> {
    fn from(miss: Miss) -> Self {
        Missed { miss, seen: None }
    }
}

/// What an attempt returns: `Result<T, Miss>`, or `Result<T, Missed<T>>` when a failed
/// attempt produced a value too.
pub trait AttemptResult {
    type Value;
    fn into_outcome(self) -> Result<Self::Value, Missed<Self::Value>>;
}

impl<T> AttemptResult for Result<T, Miss> {
    type Value = T;
    fn into_outcome(self) -> Result<T, Missed<T>> {
        self.map_err(Missed::from)
    }
}

impl<T> AttemptResult for Result<T, Missed<T>> {
    type Value = T;
    fn into_outcome(self) -> Result<T, Missed<T>> {
        self
    }
}

/// Attempt-level progress, for reporters (the progress line, attempt counts). `produced` is
/// the value this attempt produced, if any.
pub trait AttemptObserver<T = ()>: Send {
    fn attempt_finished(&mut self, record: &AttemptRecord, produced: Option<&T>);
}

impl<T, F: FnMut(&AttemptRecord) + Send> AttemptObserver<T> for F {
    fn attempt_finished(&mut self, record: &AttemptRecord, _: Option<&T>) {
        self(record)
    }
}

/// [`eventually`] for work whose attempts nobody follows (fixtures, port-forwards, the
/// cluster work around a test): only the outcome is reported.
pub async fn eventually_unobserved<R, F, Fut>(
    policy: &Policy,
    limits: &Limits,
    pending: &str,
    attempt: F,
) -> Result<(R::Value, History), Box<GaveUp<R::Value>>>
where
    R: AttemptResult,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = R>,
{
    eventually(
        policy,
        limits,
        pending,
        &mut |_: &AttemptRecord| {},
        attempt,
    )
    .await
}

enum Wait {
    Elapsed,
    Woken,
    Deadline,
    Cancelled,
}

async fn wait(delay: Duration, limits: &Limits) -> Wait {
    // Checked first: a stored wake-up must not carry attempts past the deadline.
    if Instant::now() >= limits.deadline() {
        return Wait::Deadline;
    }
    let until = (Instant::now() + delay).min(limits.deadline());
    let woken = async {
        match &limits.wake {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = limits.cancel.cancelled() => Wait::Cancelled,
        _ = woken => Wait::Woken,
        _ = tokio::time::sleep_until(until) => {
            if Instant::now() >= limits.deadline() { Wait::Deadline } else { Wait::Elapsed }
        }
    }
}

fn backoff(policy: &Policy) -> impl Iterator<Item = Duration> {
    let max = policy.max_interval.max(policy.interval);
    backon::ExponentialBuilder::default()
        .with_min_delay(policy.interval)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
        // Jitter downwards only, so neither `interval` nor `max-interval` is ever exceeded.
        .map(|d| d.mul_f64(1.0 - 0.2 * fastrand::f64()))
}

/// Why the loop of [`eventually`] stopped without passing.
struct Stop {
    cause: Cause,
    /// How long the attempt in flight had run, when the stop cut one off.
    cut_off: Option<Duration>,
}

impl Stop {
    fn at(cause: Cause) -> Self {
        Stop {
            cause,
            cut_off: None,
        }
    }
}

/// Where the loop of [`eventually`] stands between attempts: the run of successes, the hold,
/// the backoff, and the last miss.
struct Cadence<'a> {
    policy: &'a Policy,
    limits: &'a Limits,
    delays: Box<dyn Iterator<Item = Duration> + Send + Sync + 'a>,
    streak: u32,
    held_since: Option<Instant>,
    last_miss: Option<Miss>,
}

/// What to do after an attempt.
enum Next {
    Pass,
    Wait(Duration),
    Stop(Stop),
}

impl<'a> Cadence<'a> {
    fn new(policy: &'a Policy, limits: &'a Limits) -> Self {
        Cadence {
            policy,
            limits,
            delays: Box::new(backoff(policy)),
            streak: 0,
            held_since: None,
            last_miss: None,
        }
    }

    /// The deadline an attempt or a wait runs to: during hold the attempts may outlive the
    /// step timeout, but never the test deadline.
    fn deadline(&self) -> Instant {
        if self.held_since.is_some() {
            self.limits.test_deadline
        } else {
            self.limits.deadline()
        }
    }

    /// A deadline hit: during hold only the test deadline is in force.
    fn timed_out(&self) -> Cause {
        let l = self.limits;
        if self.held_since.is_some()
            || (l.test_deadline <= l.step_deadline && Instant::now() >= l.test_deadline)
        {
            Cause::TestTimeout
        } else {
            Cause::Timeout
        }
    }

    /// The next move after an attempt that passed (`Ok`) or missed.
    fn after(&mut self, verdict: Result<(), Miss>) -> Next {
        let policy = self.policy;
        match verdict {
            Ok(()) => {
                self.streak += 1;
                let hold = policy.hold.filter(|h| !h.is_zero());
                match (self.held_since, hold) {
                    (Some(since), Some(hold)) if since.elapsed() < hold => {
                        // Attempts during hold run at `interval`, never past its end.
                        Next::Wait(policy.interval.min(hold.saturating_sub(since.elapsed())))
                    }
                    // Held long enough.
                    (Some(_), _) => Next::Pass,
                    (None, Some(hold)) if self.streak >= policy.consecutive.max(1) => {
                        self.held_since = Some(Instant::now());
                        Next::Wait(policy.interval.min(hold))
                    }
                    (None, None) if self.streak >= policy.consecutive.max(1) => Next::Pass,
                    (None, _) => Next::Wait(Duration::ZERO),
                }
            }
            Err(miss) => {
                let fatal = miss.fatal;
                self.last_miss = Some(miss);
                if let Some(since) = self.held_since {
                    return Next::Stop(Stop::at(Cause::HoldBroken {
                        held: since.elapsed(),
                        hold: policy.hold.unwrap_or_default(),
                    }));
                }
                if fatal {
                    return Next::Stop(Stop::at(Cause::Fatal));
                }
                if self.streak > 0 {
                    // A failure after successes restarts the backoff too.
                    self.delays = Box::new(backoff(policy));
                }
                self.streak = 0;
                Next::Wait(self.delays.next().unwrap_or(policy.max_interval))
            }
        }
    }

    /// Wait `delay` before the next attempt; `Err` when a deadline or Ctrl-C ends the loop.
    async fn pause(&self, delay: Duration) -> Result<(), Stop> {
        if delay.is_zero() {
            return match Instant::now() >= self.deadline() {
                true => Err(Stop::at(self.timed_out())),
                false => Ok(()),
            };
        }
        let w = if self.held_since.is_some() {
            // Hold waits ignore the step deadline and watch wake-ups: it is a steady cadence.
            let l = Limits {
                step_deadline: self.limits.test_deadline,
                wake: None,
                ..self.limits.clone()
            };
            wait(delay, &l).await
        } else {
            wait(delay, self.limits).await
        };
        match w {
            Wait::Elapsed | Wait::Woken => Ok(()),
            Wait::Cancelled => Err(Stop::at(Cause::Cancelled)),
            Wait::Deadline => Err(Stop::at(self.timed_out())),
        }
    }
}

/// Run `attempt` until it passes per `policy`, or a deadline, a fatal miss, or Ctrl-C.
/// `pending` describes an attempt, for when a deadline cuts one off.
///
/// Returns the value of the last passing attempt; on giving up, the latest value any attempt
/// produced comes back in [`GaveUp::produced`].
pub async fn eventually<R, F, Fut>(
    policy: &Policy,
    limits: &Limits,
    pending: &str,
    observer: &mut dyn AttemptObserver<R::Value>,
    mut attempt: F,
) -> Result<(R::Value, History), Box<GaveUp<R::Value>>>
where
    R: AttemptResult,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = R>,
{
    // The step's clock: what the summary says ("3 attempts in 10.0s") is the time the step's
    // timeout allowed, however long preparing the first attempt took on a loaded machine.
    let started = limits.started.min(Instant::now());
    let mut history = History::default();
    let mut produced: Option<Produced<R::Value>> = None;
    let mut cadence = Cadence::new(policy, limits);

    let stopped = loop {
        if limits.cancel.is_cancelled() {
            break Err(Stop::at(Cause::Cancelled));
        }
        let n = history.attempts + 1;
        let t0 = Instant::now();
        let result = tokio::select! {
            biased;
            _ = limits.cancel.cancelled() => None,
            r = tokio::time::timeout_at(cadence.deadline(), attempt(n)) => Some(r),
        };
        let took = t0.elapsed();
        let (verdict, value) = match result {
            None => {
                break Err(Stop {
                    cause: Cause::Cancelled,
                    cut_off: Some(took),
                });
            }
            Some(Err(_elapsed)) => {
                break Err(Stop {
                    cause: cadence.timed_out(),
                    cut_off: Some(took),
                });
            }
            Some(Ok(r)) => match r.into_outcome() {
                Ok(v) => (Ok(()), Some(v)),
                Err(Missed { miss, seen }) => (Err(miss), seen),
            },
        };
        let rec = AttemptRecord {
            n,
            start: t0 - started,
            duration: took,
            class: verdict.as_ref().err().map(|m| m.class),
            summary: verdict
                .as_ref()
                .err()
                .map(|m| m.summary.clone())
                .unwrap_or_default(),
            http: None,
        };
        observer.attempt_finished(&rec, value.as_ref());
        history.record(rec);
        if let Some(value) = value {
            produced = Some(Produced { attempt: n, value });
        }
        match cadence.after(verdict) {
            Next::Pass => break Ok(()),
            Next::Stop(stop) => break Err(stop),
            Next::Wait(delay) => {
                if let Err(stop) = cadence.pause(delay).await {
                    break Err(stop);
                }
            }
        }
    };

    history.elapsed = started.elapsed();
    let stop = match stopped {
        Ok(()) => {
            let p = produced.expect("a passing attempt produced its value");
            return Ok((p.value, history));
        }
        Err(stop) => stop,
    };
    let holding = match stop.cause {
        Cause::HoldBroken { .. } => None,
        _ => cadence.held_since.map(|s| s.elapsed()),
    };
    Err(Box::new(GaveUp {
        cause: stop.cause,
        history,
        last: cadence.last_miss,
        pending: stop.cut_off.map(|d| (pending.to_owned(), d)),
        holding,
        policy: *policy,
        produced,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(timeout_ms: u64, consecutive: u32, hold_ms: Option<u64>) -> Policy {
        Policy {
            timeout: Duration::from_millis(timeout_ms),
            interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(40),
            consecutive,
            hold: hold_ms.map(Duration::from_millis),
        }
    }

    fn limits(p: &Policy, test_timeout: Duration) -> Limits {
        Limits::starting_now(p.timeout, test_timeout, CancellationToken::new())
    }

    /// Limits with a minute left in the test, and the `Notify` that wakes their attempts.
    fn woken_limits(p: &Policy) -> (Limits, Arc<Notify>) {
        let mut l = limits(p, Duration::from_secs(60));
        let notify = Arc::new(Notify::new());
        l.wake = Some(notify.clone());
        (l, notify)
    }

    fn miss503() -> Miss {
        Miss::new(
            Class::Status,
            "got status 503",
            "status 503, body \"no healthy upstream\"",
        )
    }

    /// The summary's time is the step's: preparing the first attempt (slow on a loaded
    /// machine) counts, as it does against the step's timeout.
    #[tokio::test(start_paused = true)]
    async fn the_summary_counts_from_the_step_start() {
        let p = policy(10_000, 1, None);
        let l = limits(&p, Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gave_up = eventually(&p, &l, "x", &mut |_: &AttemptRecord| {}, |_| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Err::<(), _>(miss503())
        })
        .await
        .unwrap_err();
        assert_eq!(gave_up.history.elapsed, Duration::from_secs(10));
        assert!(
            gave_up
                .headline()
                .starts_with("3 attempts in 10.0s: 3 got status 503")
        );
        assert_eq!(gave_up.history.records[0].start, Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn passes_after_failures_and_counts_attempts() {
        let p = policy(5_000, 1, None);
        let calls = AtomicU32::new(0);
        let (v, h) = eventually_unobserved(&p, &limits(&p, Duration::from_secs(60)), "x", |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 4 { Err(miss503()) } else { Ok(n) } }
        })
        .await
        .unwrap();
        assert_eq!(v, 4);
        assert_eq!(h.attempts, 4);
        assert_eq!(h.passed, 1);
        assert_eq!(
            h.records
                .iter()
                .filter(|r| r.class == Some(Class::Status))
                .count(),
            3
        );
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_resets_on_failure_and_summary_groups_classes() {
        let p = policy(300, 3, None);
        // pass, pass, fail, repeated: never three in a row
        let err = eventually_unobserved(
            &p,
            &limits(&p, Duration::from_secs(60)),
            "x",
            |n| async move { if n % 3 == 0 { Err(miss503()) } else { Ok(()) } },
        )
        .await
        .unwrap_err();
        assert_eq!(err.cause, Cause::Timeout);
        let headline = err.headline();
        assert!(headline.contains("got status 503"), "{headline}");
        assert!(headline.contains("passed"), "{headline}");
        assert!(
            headline.contains("needs 3 passing attempts in a row"),
            "{headline}"
        );
        assert!(headline.contains("; last: status 503"), "{headline}");
    }

    #[tokio::test(start_paused = true)]
    async fn hold_breaks_on_a_flip() {
        let p = policy(5_000, 1, Some(1_000));
        let t0 = Instant::now();
        let err = eventually_unobserved(
            &p,
            &limits(&p, Duration::from_secs(60)),
            "x",
            |_| async move {
                if t0.elapsed() < Duration::from_millis(400) {
                    Ok(())
                } else {
                    Err(Miss::new(Class::Status, "got status 404", "status 404"))
                }
            },
        )
        .await
        .unwrap_err();
        match err.cause {
            Cause::HoldBroken { held, hold } => {
                assert!(
                    held >= Duration::from_millis(390) && held < Duration::from_millis(450),
                    "{held:?}"
                );
                assert_eq!(hold, Duration::from_secs(1));
            }
            c => panic!("unexpected {c:?}"),
        }
        assert!(
            err.headline()
                .starts_with("held 0.4s of 1s, then: status 404"),
            "{}",
            err.headline()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hold_passes_when_steady() {
        let p = policy(100, 2, Some(1_000));
        let t0 = Instant::now();
        let (_, h) =
            eventually_unobserved(&p, &limits(&p, Duration::from_secs(60)), "x", |_| async {
                Ok::<(), Miss>(())
            })
            .await
            .unwrap();
        // Hold outlives the 100ms step timeout by design.
        assert!(t0.elapsed() >= Duration::from_secs(1));
        assert!(
            h.attempts >= 50,
            "attempts at interval during hold: {}",
            h.attempts
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_cut_by_the_test_deadline_says_it_was_still_holding() {
        let p = policy(100, 3, Some(5_000));
        let err = eventually_unobserved(&p, &limits(&p, Duration::from_secs(1)), "x", |_| async {
            Ok::<(), Miss>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.cause, Cause::TestTimeout);
        assert_eq!(err.holding, Some(Duration::from_secs(1)));
        let h = err.headline();
        assert!(
            h.starts_with("still holding (1.0s of 5s held, every attempt passed); "),
            "{h}"
        );
        assert!(!h.contains("in a row"), "consecutive was reached: {h}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_at_the_test_deadline() {
        let p = policy(10_000, 1, None);
        let l = limits(&p, Duration::from_secs(2));
        let t0 = Instant::now();
        let err = eventually(
            &p,
            &l,
            "GET http://x/ (no response yet)",
            &mut |_: &AttemptRecord| {},
            |_| async { std::future::pending::<Result<(), Miss>>().await },
        )
        .await
        .unwrap_err();
        assert_eq!(err.cause, Cause::TestTimeout);
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        let (what, running) = err.pending.clone().unwrap();
        assert_eq!(what, "GET http://x/ (no response yet)");
        assert_eq!(running, Duration::from_secs(2));
        assert!(
            err.headline().contains("cut off after 2.0s"),
            "{}",
            err.headline()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_misses_stop_at_once_and_cancel_is_honoured() {
        let p = policy(10_000, 1, None);
        let err = eventually_unobserved(&p, &limits(&p, Duration::from_secs(60)), "x", |_| async {
            Err::<(), _>(Miss::fatal(Class::ApiError, "422 Invalid"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.cause, Cause::Fatal);
        assert_eq!(err.history.attempts, 1);

        let l = limits(&p, Duration::from_secs(60));
        let c = l.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel();
        });
        let err = eventually(&p, &l, "x", &mut |_: &AttemptRecord| {}, |_| async {
            Err::<(), _>(miss503())
        })
        .await
        .unwrap_err();
        assert_eq!(err.cause, Cause::Cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_retries_before_the_backoff_delay() {
        let p = Policy {
            interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(1),
            ..policy(10_000, 1, None)
        };
        let (l, notify) = woken_limits(&p);
        let t0 = Instant::now();
        let n2 = notify.clone();
        let (_, h) = eventually(&p, &l, "x", &mut |_: &AttemptRecord| {}, move |n| {
            let n2 = n2.clone();
            async move {
                if n == 1 {
                    n2.notify_one();
                    Err(Miss::new(Class::Condition, "no condition", "no condition"))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(h.attempts, 2);
        assert!(t0.elapsed() < Duration::from_millis(10));
    }

    // Real time: attempts that finish on their first poll (blocking work, no timer) while
    // each stores a wake-up; only the deadline check in the wait can end this. (Spawned, so a
    // regression fails the test instead of spinning the test's own thread.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn constant_wake_ups_do_not_outlive_the_deadline() {
        let p = Policy {
            interval: Duration::from_secs(1),
            ..policy(300, 1, None)
        };
        let (l, notify) = woken_limits(&p);
        let t0 = Instant::now();
        // A spinning task can't be cancelled and would keep the runtime from shutting down:
        // a regression aborts instead of hanging the test run.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            if !watchdog.load(std::sync::atomic::Ordering::SeqCst) {
                eprintln!(
                    "constant_wake_ups_do_not_outlive_the_deadline: the step outlived its deadline"
                );
                std::process::abort();
            }
        });
        let run = tokio::spawn(async move {
            let mut observer = |_: &AttemptRecord| {};
            eventually(&p, &l, "x", &mut observer, |_| {
                notify.notify_one();
                std::thread::sleep(Duration::from_millis(5));
                async { Err::<(), _>(miss503()) }
            })
            .await
            .map(|_| ())
            .map_err(|g| g.cause)
        });
        let cause = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the step outlived its deadline")
            .unwrap()
            .unwrap_err();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(cause, Cause::Timeout);
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }

    /// Records the value each attempt produced, as the observer sees it.
    struct Seen(Vec<(u32, Option<u32>)>);

    impl AttemptObserver<u32> for Seen {
        fn attempt_finished(&mut self, r: &AttemptRecord, produced: Option<&u32>) {
            self.0.push((r.n, produced.copied()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn values_come_back_when_passing_and_when_giving_up() {
        // Odd attempts read something that does not match; even ones read nothing.
        let attempt = |n: u32| async move {
            if n % 2 == 1 {
                Err::<u32, _>(Missed::seen(miss503(), n * 10))
            } else {
                Err(Missed::from(Miss::new(Class::Reset, "reset", "reset")))
            }
        };
        let p = policy(300, 1, None);
        let mut seen = Seen(Vec::new());
        let g = eventually(
            &p,
            &limits(&p, Duration::from_secs(60)),
            "x",
            &mut seen,
            attempt,
        )
        .await
        .unwrap_err();
        let last_odd = (g.history.attempts - 1) | 1;
        assert_eq!(
            g.produced,
            Some(Produced {
                attempt: last_odd,
                value: last_odd * 10
            }),
            "the latest value any attempt produced"
        );
        assert_eq!(g.last.as_ref().map(|m| m.class), Some(Class::Reset));
        assert!(seen.0.len() >= 4, "{:?}", seen.0);
        for (n, v) in &seen.0 {
            assert_eq!(*v, (n % 2 == 1).then_some(n * 10), "attempt {n}");
        }

        // The value of the passing attempt, not of an earlier one.
        let mut seen = Seen(Vec::new());
        let (v, h) = eventually(
            &p,
            &limits(&p, Duration::from_secs(60)),
            "x",
            &mut seen,
            |n| async move {
                if n < 3 {
                    Err(Missed::seen(miss503(), n))
                } else {
                    Ok(n * 100)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!((v, h.attempts), (300, 3));
        assert_eq!(seen.0, vec![(1, Some(1)), (2, Some(2)), (3, Some(300))]);
    }

    /// Every way of giving up goes through one exit: the cut-off attempt, the hold and the
    /// produced value are reported the same way whatever stopped the loop.
    #[tokio::test(start_paused = true)]
    async fn every_give_up_reports_the_cut_off_attempt_and_the_started_count() {
        let p = policy(1_000, 1, None);
        let g = eventually(
            &p,
            &limits(&p, Duration::from_secs(60)),
            "slow",
            &mut |_: &AttemptRecord| {},
            |n| async move {
                if n == 1 {
                    Err::<u32, _>(Missed::seen(miss503(), 7))
                } else {
                    std::future::pending().await
                }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(g.cause, Cause::Timeout);
        assert_eq!(g.history.attempts, 1);
        assert_eq!(g.started(), 2, "the attempt cut off by the deadline counts");
        assert_eq!(g.pending.as_ref().map(|(w, _)| w.as_str()), Some("slow"));
        assert_eq!(g.produced.map(|p| (p.attempt, p.value)), Some((1, 7)));
        assert_eq!(g.holding, None);
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let p = policy(1000, 1, None);
        let d: Vec<Duration> = backoff(&p).take(6).collect();
        assert!(d[0] <= Duration::from_millis(10) && d[0] >= Duration::from_millis(8));
        assert!(d[1] <= Duration::from_millis(20) && d[1] >= Duration::from_millis(16));
        assert!(d[5] <= Duration::from_millis(40) && d[5] >= Duration::from_millis(32));
    }
}
