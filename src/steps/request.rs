//! The `request` step: a curl-style HTTP request run by the retry engine until its
//! expectations hold. Every attempt carries a fresh W3C `traceparent`; connections are reused
//! across attempts; a failure prints the curl command that reproduces the last attempt.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::{RequestTrace, StepCtx, StepResult, failure_from};
use crate::engine::events::Failure;
use crate::engine::retry::{self, Class, Miss, Missed, Section, SectionKind};
use crate::engine::{new_span_id, new_trace_id};
use crate::matching::{self, Text, cel};
use crate::suite::model::{HeaderExpect, HttpExpect, RequestSpec};
use crate::suite::spanned::{JsonPathExpr, Loc, Node};
use crate::suite::vars::{VarError, Vars};
use crate::util::{error_chain, fmt_duration, shell_quote, truncate};

/// The largest response body read; more is cut (and said so).
const MAX_BODY: usize = 16 << 20;

/// TLS and redirect settings that need their own client; everything else is per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    insecure: bool,
    ca: Option<PathBuf>,
    follow_redirects: bool,
}

/// HTTP clients shared by every request step of a run, one per TLS/redirect setting, so
/// connections are kept alive across attempts and steps. A client is built (its CA file read)
/// outside the lock; when two steps race, the first one stored is kept.
#[derive(Debug, Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl HttpClients {
    async fn get(&self, key: &ClientKey) -> Result<reqwest::Client, String> {
        if let Some(c) = self.lock().get(key) {
            return Ok(c.clone());
        }
        let client = build_client(key).await?;
        Ok(self.lock().entry(key.clone()).or_insert(client).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, reqwest::Client>> {
        self.clients.lock().expect("http client cache poisoned")
    }
}

async fn build_client(key: &ClientKey) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(if key.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        })
        .pool_idle_timeout(Duration::from_secs(30))
        .dns_resolver(Arc::new(Resolver))
        .user_agent(concat!("gwtest/", env!("CARGO_PKG_VERSION")));
    if key.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some(ca) = &key.ca {
        let pem = tokio::fs::read(ca)
            .await
            .map_err(|e| format!("cannot read ca {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca {} is not a PEM certificate bundle: {e}", ca.display()))?;
        if certs.is_empty() {
            return Err(format!("ca {} holds no certificate", ca.display()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The system resolver (getaddrinfo, through tokio), failing with a [`DnsError`] so that an
/// unresolved host is told apart by its type, not by the words of a message.
struct Resolver;

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("could not resolve host {host}: {source}")]
struct DnsError {
    host: String,
    source: std::io::Error,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let looked_up = tokio::net::lookup_host((host.clone(), 0)).await;
            match looked_up {
                Ok(addrs) => {
                    let addrs: reqwest::dns::Addrs =
                        Box::new(addrs.collect::<Vec<_>>().into_iter());
                    Ok(addrs)
                }
                Err(source) => Err(Box::new(DnsError { host, source }) as _),
            }
        })
    }
}

/// A request with every variable substituted, ready to send as many times as needed.
#[derive(Clone, Debug)]
struct Prepared {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    /// Shared by every attempt (cloning it is a reference count).
    body: Option<bytes::Bytes>,
    /// A traceparent the suite set itself (then every attempt reuses it).
    fixed_trace: Option<RequestTrace>,
    key: ClientKey,
    attempt_timeout: Duration,
}

/// The expectations with every variable substituted.
#[derive(Debug)]
struct Expect {
    status: Option<Vec<u16>>,
    headers: Vec<(String, HeaderCheck)>,
    absent: Vec<String>,
    body: Option<Text>,
    json: Vec<(JsonPathExpr, Value)>,
    /// `cel:` expressions over `response`.
    cel: Vec<cel::Check>,
}

#[derive(Debug)]
enum HeaderCheck {
    Exact(String),
    Matches(regex::Regex),
}

/// What an attempt got back, kept for captures and for the failure report.
#[derive(Clone, Debug)]
struct Response {
    status: u16,
    version: reqwest::Version,
    headers: HeaderMap,
    body: Vec<u8>,
    truncated: bool,
}

impl Response {
    /// `response` for `cel:` checks: status, headers (lower-case name -> list of values),
    /// body (text) and json (the parsed body, or null).
    fn cel_value(&self) -> cel::Value {
        let mut headers: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for (k, v) in &self.headers {
            headers
                .entry(k.as_str().to_string())
                .or_default()
                .push(Value::String(
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                ));
        }
        let headers: serde_json::Map<String, Value> = headers
            .into_iter()
            .map(|(k, v)| (k, Value::Array(v)))
            .collect();
        let json = serde_json::from_slice::<Value>(&self.body).unwrap_or(Value::Null);
        cel::from_json(&serde_json::json!({
            "status": self.status,
            "headers": headers,
            "body": self.body_text(),
            "json": json,
        }))
    }

    /// The body as text, borrowed when it is UTF-8.
    fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// `status 503, body "no healthy upstream"`
    fn brief(&self) -> String {
        let body = self.body_text();
        if body.trim().is_empty() {
            format!("status {}, empty body", self.status)
        } else {
            format!(
                "status {}, body {:?}",
                self.status,
                truncate(body.trim(), 160)
            )
        }
    }

    fn dump(&self) -> String {
        let mut s = format!("{:?} {}\n", self.version, self.status);
        for (k, v) in &self.headers {
            s.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("<binary>")));
        }
        s.push('\n');
        let body = self.body_text();
        let shown: String = body.chars().take(4096).collect();
        s.push_str(&shown);
        if body.chars().count() > 4096 || self.truncated {
            s.push_str("\n… (body cut)");
        }
        s
    }
}

pub async fn run(spec: &RequestSpec, ctx: &mut StepCtx<'_>) -> StepResult {
    let prepared = match prepare(spec, ctx) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let expect = match expectations(spec.expect.as_ref(), ctx.vars) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let client = match ctx.run.http.get(&prepared.key).await {
        Ok(c) => c,
        Err(e) => return StepResult::error(e),
    };
    let traces = AttemptTraces::new(prepared.fixed_trace, ctx.state.step_span);
    let pending = format!(
        "{} {} (attempt-timeout {}, no response yet)",
        prepared.method,
        prepared.url,
        fmt_duration(prepared.attempt_timeout)
    );
    // Each attempt's event says what was sent and what came back (the run's trace describes
    // attempts as HTTP client spans).
    let mut observer = HttpObserver {
        forward: ctx.observer(),
        method: prepared.method.as_str().into(),
        url: prepared.url.as_str().into(),
    };
    let result = retry::eventually(&ctx.policy, &ctx.limits, &pending, &mut observer, |n| {
        let (client, prepared, expect) = (&client, &prepared, &expect);
        let trace = traces.of(n);
        async move {
            let resp = send(client, prepared, trace).await?;
            match check(expect, &resp) {
                Ok(()) => Ok(resp),
                Err(m) => Err(Missed::seen(m, resp)),
            }
        }
    })
    .await;

    match result {
        Ok((resp, history)) => {
            ctx.state.last_request = Some(traces.of(history.attempts));
            if let Err(e) = capture(spec, &resp, ctx.vars) {
                return StepResult::failed(history.attempts, e);
            }
            StepResult::passed(history.attempts)
        }
        Err(gave_up) => {
            let started = gave_up.started();
            ctx.state.last_request = (started > 0).then(|| traces.of(started));
            let mut f = failure_from(&gave_up, &ctx.limits);
            f.expected = Some(describe_expect(&expect));
            if let Some(retry::Produced {
                attempt: n,
                value: r,
            }) = &gave_up.produced
                && !f
                    .sections
                    .iter()
                    .any(|s| s.kind == SectionKind::LastResponse)
            {
                // Say so when later attempts got no response (timeouts, resets).
                let title = if *n < gave_up.history.attempts || gave_up.pending.is_some() {
                    format!("last response (attempt {n}; no response after it)")
                } else {
                    "last response".to_string()
                };
                f.sections
                    .push(Section::of(SectionKind::LastResponse, title, r.dump()));
            }
            f.reproduce
                .push(curl_command(&prepared, ctx.run.config.show_secrets));
            f.hints.extend(hints(&gave_up.history, &prepared));
            StepResult::failed(gave_up.history.attempts, f)
        }
    }
}

fn prepare(spec: &RequestSpec, ctx: &StepCtx<'_>) -> Result<Prepared, StepResult> {
    let vars = &*ctx.vars;
    let method_s = match &spec.method {
        Some(m) => vars.expand(m)?,
        None => "GET".into(),
    };
    let method = reqwest::Method::from_bytes(method_s.as_bytes())
        .map_err(|_| StepResult::error(format!("invalid HTTP method {method_s:?}")))?;
    let url_s = vars.expand(&spec.url)?;
    let url = reqwest::Url::parse(&url_s).map_err(|e| {
        StepResult::error(format!("invalid url {url_s:?}: {e}{}", at(spec.url.loc)))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StepResult::error(format!(
            "url {url_s:?} must be http:// or https://"
        )));
    }
    let mut headers = HeaderMap::new();
    for (k, v) in spec.headers.iter() {
        let name = HeaderName::from_bytes(k.value.as_bytes()).map_err(|_| {
            StepResult::error(format!("invalid header name {:?}{}", k.value, at(k.loc)))
        })?;
        let value = vars.expand(v)?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            StepResult::error(format!(
                "invalid value for header {}: {value:?}{}",
                k.value,
                at(v.loc)
            ))
        })?;
        headers.append(name, value);
    }
    let body = match &spec.body {
        None => None,
        Some(n) => match &n.value {
            Node::Null => None,
            Node::Str(t) => Some(vars.expand(t)?.into_bytes().into()),
            other => {
                let v = vars.expand_node(other)?;
                if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
                    headers.insert(
                        reqwest::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
                Some(
                    serde_json::to_vec(&v)
                        .expect("JSON values serialize")
                        .into(),
                )
            }
        },
    };
    let fixed_trace = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let ca = match &spec.ca {
        Some(t) => Some(ctx.base_dir().join(vars.expand(t)?)),
        None => None,
    };
    let attempt_timeout = match spec.attempt_timeout {
        Some(d) => d.0.mul_f64(ctx.run.config.timeout_scale),
        None => ctx.attempt_timeout,
    };
    Ok(Prepared {
        method,
        url,
        headers,
        body,
        fixed_trace,
        key: ClientKey {
            insecure: spec.insecure,
            ca,
            follow_redirects: spec.follow_redirects,
        },
        attempt_timeout,
    })
}

fn at(loc: Loc) -> String {
    if loc.is_known() {
        format!(" (at {loc})")
    } else {
        String::new()
    }
}

fn expectations(e: Option<&HttpExpect>, vars: &Vars) -> Result<Expect, StepResult> {
    let Some(e) = e else {
        return Ok(Expect {
            status: None,
            headers: vec![],
            absent: vec![],
            body: None,
            json: vec![],
            cel: vec![],
        });
    };
    let mut headers = Vec::new();
    for (k, v) in e.headers.iter() {
        let check = match v {
            HeaderExpect::Exact(t) => HeaderCheck::Exact(vars.expand(t)?),
            HeaderExpect::Matches(p) => HeaderCheck::Matches(super::compile(p, vars)?),
        };
        headers.push((k.value.to_ascii_lowercase(), check));
    }
    let absent = e
        .absent_headers
        .iter()
        .map(|t| vars.expand(t).map(|s| s.to_ascii_lowercase()))
        .collect::<Result<Vec<_>, VarError>>()?;
    let body = e
        .body
        .as_ref()
        .map(|t| super::text_match(t, vars))
        .transpose()?;
    let mut json = Vec::new();
    for (k, v) in e.json.iter() {
        let path = JsonPathExpr::parse(&k.value, k.loc)
            .map_err(|m| StepResult::error(format!("{m}{}", at(k.loc))))?;
        json.push((path, vars.expand_node(v)?));
    }
    let cel = e
        .cel
        .iter()
        .map(|c| cel::Check::prepare(c, vars))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StepResult::error)?;
    Ok(Expect {
        status: e.status.as_ref().map(|s| s.0.clone()),
        headers,
        absent,
        body,
        json,
        cel,
    })
}

fn describe_expect(e: &Expect) -> String {
    let mut parts = Vec::new();
    match &e.status {
        Some(codes) if codes.len() == 1 => parts.push(format!("status {}", codes[0])),
        Some(codes) => parts.push(format!(
            "status one of {}",
            codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => parts.push("status below 400".into()),
    }
    for (k, c) in &e.headers {
        match c {
            HeaderCheck::Exact(v) => parts.push(format!("header {k}: {v:?}")),
            HeaderCheck::Matches(r) => parts.push(format!("header {k} matches /{}/", r.as_str())),
        }
    }
    for k in &e.absent {
        parts.push(format!("no header {k}"));
    }
    if let Some(b) = &e.body {
        parts.push(format!("body {}", b.describe()));
    }
    for (p, v) in &e.json {
        parts.push(format!("{} = {}", p.raw, matching::short(v)));
    }
    for c in &e.cel {
        parts.push(format!("cel `{}`", c.source));
    }
    parts.join(", ")
}

/// A fresh sampled trace context: a child of the step's span when the run is traced (with the
/// span id the run's exporter derives for attempt `n`, so the attempt span it exports is the
/// parent of the system under test's spans), otherwise a new trace.
/// The trace context each attempt sends: the suite's own traceparent when it set one; else a
/// child of the step's span (run export on); else a new trace per attempt. Derived from the
/// attempt number, so the last attempt's context is known even when a deadline cut it off.
#[derive(Clone, Copy, Debug)]
struct AttemptTraces {
    fixed: Option<RequestTrace>,
    parent: Option<RequestTrace>,
    /// Per step, for attempts without a parent: mixed with the attempt number.
    seed: RequestTrace,
}

impl AttemptTraces {
    fn new(fixed: Option<RequestTrace>, parent: Option<RequestTrace>) -> Self {
        AttemptTraces {
            fixed,
            parent,
            seed: RequestTrace {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
            },
        }
    }

    fn of(&self, n: u32) -> RequestTrace {
        if let Some(t) = self.fixed {
            return t;
        }
        match self.parent {
            Some(p) => RequestTrace {
                trace_id: p.trace_id,
                span_id: crate::traces::attempt_span_id(&p.span_id, n),
            },
            None => {
                // Each attempt its own trace: the two halves of the id mixed apart per attempt
                // (a bijection of n, so attempts of one step never share a trace).
                let mut trace_id = [0u8; 16];
                let (hi, lo) = self.seed.trace_id.split_at(8);
                let hi: [u8; 8] = hi.try_into().expect("8 bytes");
                let lo: [u8; 8] = lo.try_into().expect("8 bytes");
                trace_id[..8].copy_from_slice(&crate::traces::attempt_span_id(&hi, n));
                trace_id[8..].copy_from_slice(&crate::traces::attempt_span_id(&lo, n));
                RequestTrace {
                    trace_id,
                    span_id: crate::traces::attempt_span_id(&self.seed.span_id, n),
                }
            }
        }
    }
}

/// Forwards attempt records with what was sent and the status that came back (the run's
/// trace describes attempts as HTTP client spans).
struct HttpObserver<O> {
    forward: O,
    method: Arc<str>,
    url: Arc<str>,
}

impl<O: FnMut(&retry::AttemptRecord) + Send> retry::AttemptObserver<Response> for HttpObserver<O> {
    fn attempt_finished(&mut self, r: &retry::AttemptRecord, produced: Option<&Response>) {
        let mut r = r.clone();
        r.http = Some(retry::HttpAttempt {
            method: self.method.clone(),
            url: self.url.clone(),
            status: produced.map(|resp| resp.status),
        });
        (self.forward)(&r);
    }
}

/// The `traceparent` header an attempt sends (W3C, by opentelemetry's propagator).
pub fn traceparent(t: &RequestTrace) -> String {
    gwtest_sandbox::tracecontext::format(t.trace_id, t.span_id)
}

/// A traceparent the suite set itself, when the propagator accepts it.
fn parse_traceparent(s: &str) -> Option<RequestTrace> {
    gwtest_sandbox::tracecontext::parse(s).map(|t| RequestTrace {
        trace_id: t.trace_id,
        span_id: t.span_id,
    })
}

async fn send(
    client: &reqwest::Client,
    p: &Prepared,
    trace: RequestTrace,
) -> Result<Response, Miss> {
    // Assembled from the prepared parts, not through a builder (which re-inserts every
    // header): header values and the body are `Bytes`, so copying them is a reference count.
    // The URL alone is copied: reqwest's request owns a `Url`, which has no shared form.
    let mut req = reqwest::Request::new(p.method.clone(), p.url.clone());
    *req.headers_mut() = p.headers.clone();
    // A traceparent the suite set, even one that does not parse, is sent alone: a second
    // header would change what the system under test sees.
    if !p.headers.contains_key("traceparent") {
        let value = HeaderValue::try_from(traceparent(&trace)).expect("a traceparent is ASCII");
        req.headers_mut().insert("traceparent", value);
    }
    *req.body_mut() = p.body.clone().map(reqwest::Body::from);
    let timeout = p.attempt_timeout;
    let attempt = async {
        let resp = client
            .execute(req)
            .await
            .map_err(|e| classify(&e, &p.url, timeout))?;
        let mut resp = resp;
        let (status, version) = (resp.status().as_u16(), resp.version());
        let headers = std::mem::take(resp.headers_mut());
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| classify(&e, &p.url, timeout))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                body.extend_from_slice(&chunk[..MAX_BODY - body.len()]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            version,
            headers,
            body,
            truncated,
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(timeout)),
    }
}

fn timed_out(t: Duration) -> Miss {
    let s = format!("timed out after {} (attempt-timeout)", fmt_duration(t));
    Miss::new(Class::Timeout, s.clone(), s)
}

/// Map a transport error to an outcome class, as curl's exit codes would, from the types in
/// its source chain (our resolver's `DnsError`, rustls errors, I/O error kinds, hyper's
/// closed/incomplete): never from the words of a message, which also hold the URL. The detail
/// stays one short line (`connection refused (127.0.0.1:9)`); the whole chain is kept as a
/// context section for the failure report.
fn classify(e: &reqwest::Error, url: &reqwest::Url, timeout: Duration) -> Miss {
    if e.is_timeout() {
        return timed_out(timeout);
    }
    let url = e.url().unwrap_or(url);
    let host = url.host_str().unwrap_or("?");
    let target = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
    let root = truncate(&root_cause(e), 160);
    let (class, summary, detail) = match transport_failure(e) {
        Transport::Refused => (
            Class::Refused,
            "connection refused",
            format!("connection refused ({target})"),
        ),
        Transport::Dns => (
            Class::Dns,
            "could not resolve host",
            format!("could not resolve host {host}"),
        ),
        Transport::Tls => (
            Class::Tls,
            "TLS failed",
            format!("TLS failed ({target}): {root}"),
        ),
        Transport::Reset => (
            Class::Reset,
            "connection reset",
            format!("connection reset ({target}): {root}"),
        ),
        Transport::Other => (
            Class::Reset,
            "transport error",
            format!("transport error ({target}): {root}"),
        ),
    };
    Miss::new(class, summary, detail).with_context(Section::of(
        SectionKind::TransportError,
        "transport error",
        error_chain(e),
    ))
}

/// What a transport error was, by type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Refused,
    Dns,
    Tls,
    Reset,
    Other,
}

/// Walk the source chain (into the error an `io::Error` wraps, which its `source()` skips);
/// the most specific finding wins: refused, DNS and TLS at once, a reset once nothing more
/// specific turned up.
fn transport_failure(e: &(dyn std::error::Error + 'static)) -> Transport {
    use std::io::ErrorKind as K;
    let mut found = Transport::Other;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<DnsError>() {
            return Transport::Dns;
        }
        if err.is::<rustls::Error>() {
            return Transport::Tls;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                K::ConnectionRefused => return Transport::Refused,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    found = Transport::Reset
                }
                _ => {}
            }
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            found = Transport::Reset;
        }
        cur = err.source();
    }
    found
}

/// The innermost error's message: the most specific one (`invalid peer certificate: ...`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// A body or JSON expectation that fails on a body cut at [`MAX_BODY`] says so: the match
/// ran on the first part only.
fn check(e: &Expect, r: &Response) -> Result<(), Miss> {
    check_response(e, r).map_err(|mut m| {
        if r.truncated && matches!(m.class, Class::Body | Class::Json) {
            let cap = fmt_size(MAX_BODY);
            m.detail = format!(
                "{}; body cut at {cap}: the match ran on the first {cap}",
                m.detail
            );
        }
        m
    })
}

/// `16 MiB`, `512 KiB`, `100 bytes`.
fn fmt_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

fn check_response(e: &Expect, r: &Response) -> Result<(), Miss> {
    let ok_status = match &e.status {
        Some(codes) => codes.contains(&r.status),
        None => r.status < 400,
    };
    if !ok_status {
        return Err(Miss::new(
            Class::Status,
            format!("got status {}", r.status),
            r.brief(),
        ));
    }
    for (name, c) in &e.headers {
        let values: Vec<&str> = r
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(Miss::new(
                Class::Header,
                format!("had no header {name}"),
                format!("status {}, no header {name}", r.status),
            ));
        }
        let ok = values.iter().any(|v| match c {
            HeaderCheck::Exact(x) => v == x,
            HeaderCheck::Matches(re) => re.is_match(v),
        });
        if !ok {
            let want = match c {
                HeaderCheck::Exact(x) => format!("{x:?}"),
                HeaderCheck::Matches(re) => format!("/{}/", re.as_str()),
            };
            return Err(Miss::new(
                Class::Header,
                format!("had header {name}: {:?}", truncate(values[0], 60)),
                format!(
                    "status {}, header {name}: {:?} (expected {want})",
                    r.status,
                    values.join(", ")
                ),
            ));
        }
    }
    for name in &e.absent {
        if let Some(v) = r.headers.get(name.as_str()) {
            return Err(Miss::new(
                Class::Header,
                format!("had header {name} (expected absent)"),
                format!(
                    "status {}, header {name}: {:?} should be absent",
                    r.status,
                    v.to_str().unwrap_or("")
                ),
            ));
        }
    }
    if let Some(t) = &e.body {
        let text = r.body_text();
        if let Err(want) = t.check(&text) {
            return Err(Miss::new(
                Class::Body,
                format!("body did not match ({want})"),
                format!("{}; expected body {want}", r.brief()),
            ));
        }
    }
    if !e.json.is_empty() {
        let doc: Value = serde_json::from_slice(&r.body).map_err(|err| {
            Miss::new(
                Class::Json,
                "body was not JSON",
                format!("{}; body is not JSON: {err}", r.brief()),
            )
        })?;
        for (path, want) in &e.json {
            let nodes = path.path.query(&doc).all();
            let single = nodes.len() == 1;
            let got = match nodes.len() {
                0 => {
                    return Err(Miss::new(
                        Class::Json,
                        format!("{} matched nothing", path.raw),
                        format!(
                            "status {}, {} matched nothing in the body",
                            r.status, path.raw
                        ),
                    ));
                }
                1 => std::borrow::Cow::Borrowed(nodes[0]),
                _ => std::borrow::Cow::Owned(Value::Array(nodes.into_iter().cloned().collect())),
            };
            if let Err(mut m) = matching::subset(want, &got) {
                // One node: say where in the body (`$.meta.count`), not where in the node.
                let detail = if single {
                    m.path = format!("{}{}", path.raw, &m.path[1..]);
                    format!("status {}, {m}", r.status)
                } else {
                    format!("status {}, {}: {m}", r.status, path.raw)
                };
                let miss = Miss::new(
                    Class::Json,
                    format!("{} was {}", path.raw, truncate(&got.to_string(), 60)),
                    detail,
                );
                return Err(super::with_diff(miss, &m, &path.raw));
            }
        }
    }
    if !e.cel.is_empty() {
        let response = r.cel_value();
        for c in &e.cel {
            c.run("response", response.clone()).map_err(|m| {
                Miss::new(
                    Class::Cel,
                    m.summary,
                    format!("status {}, {}", r.status, m.detail),
                )
            })?;
        }
    }
    Ok(())
}

fn capture(spec: &RequestSpec, r: &Response, vars: &mut Vars) -> Result<(), Failure> {
    if spec.capture.is_empty() {
        return Ok(());
    }
    let doc: Value = serde_json::from_slice(&r.body).map_err(|e| {
        Failure::error(format!(
            "cannot capture: the response body is not JSON ({e}); {}",
            r.brief()
        ))
    })?;
    for (name, path) in spec.capture.iter() {
        let v = matching::query_one(path, &doc)
            .map_err(|e| Failure::error(format!("capture `{}`: {e}", name.value)))?;
        vars.set(name.value.clone(), v);
    }
    Ok(())
}

/// A curl command line that sends what the last attempt sent; credential headers' values are
/// `<redacted>` unless `show_secrets`.
fn curl_command(p: &Prepared, show_secrets: bool) -> String {
    let mut parts = vec!["curl".to_string(), "-sS".into(), "-i".into()];
    if p.method != reqwest::Method::GET {
        parts.push("-X".into());
        parts.push(p.method.to_string());
    }
    for (k, v) in &p.headers {
        parts.push("-H".into());
        let value = v.to_str().unwrap_or("");
        let value = if show_secrets {
            value
        } else {
            crate::redact::header_value(k.as_str(), value)
        };
        parts.push(shell_quote(&format!("{k}: {value}")));
    }
    if let Some(b) = &p.body {
        parts.push("--data-binary".into());
        parts.push(shell_quote(&String::from_utf8_lossy(b)));
    }
    if p.key.insecure {
        parts.push("-k".into());
    }
    if let Some(ca) = &p.key.ca {
        parts.push("--cacert".into());
        parts.push(shell_quote(&ca.display().to_string()));
    }
    if p.key.follow_redirects {
        parts.push("-L".into());
    }
    parts.push("--max-time".into());
    parts.push(format!("{}", p.attempt_timeout.as_secs_f64()));
    parts.push(shell_quote(p.url.as_str()));
    parts.join(" ")
}

fn hints(h: &retry::History, p: &Prepared) -> Vec<String> {
    let counts = h.class_counts();
    let failed: u32 = counts.iter().map(|(_, n)| n).sum();
    let count = |c: Class| counts.iter().find(|(k, _)| *k == c).map_or(0, |(_, n)| *n);
    let mut out = Vec::new();
    if failed > 0 && count(Class::Timeout) * 2 >= failed {
        out.push(format!(
            "most attempts ran into the attempt-timeout ({}): if the gateway is just slow here, \
             raise `attempt-timeout` or run with --timeout-scale; try the curl command by hand",
            fmt_duration(p.attempt_timeout)
        ));
    }
    if failed > 0 && count(Class::Refused) == failed {
        out.push(format!(
            "nothing accepted connections at {}:{}: is the gateway's listener up and is the \
             address right?",
            p.url.host_str().unwrap_or("?"),
            p.url.port_or_known_default().unwrap_or(0)
        ));
    }
    if count(Class::Dns) > 0 {
        out.push(format!(
            "the host {:?} does not resolve from here",
            p.url.host_str().unwrap_or("")
        ));
    }
    if count(Class::Tls) > 0 && !p.key.insecure && p.key.ca.is_none() {
        out.push("TLS failed: give the gateway's CA with `ca: FILE` (or `insecure: true`)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_children_share_the_trace() {
        let alone = AttemptTraces::new(None, None);
        let parent = alone.of(1);
        assert_eq!(
            alone.of(1),
            parent,
            "attempt n's context can be derived again"
        );
        assert_ne!(alone.of(2).trace_id, parent.trace_id, "a trace per attempt");
        assert_ne!(alone.of(2).span_id, parent.span_id);
        let children = AttemptTraces::new(None, Some(parent));
        let child = children.of(1);
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        assert_ne!(children.of(2).span_id, child.span_id);
        assert_eq!(children.of(2).trace_id, parent.trace_id);
        let fixed = AttemptTraces::new(Some(child), Some(parent));
        assert_eq!((fixed.of(1), fixed.of(7)), (child, child));
        let tp = traceparent(&child);
        assert_eq!(tp.len(), 55);
        assert!(tp.ends_with("-01"));
        assert_eq!(parse_traceparent(&tp), Some(child));
        assert_eq!(parse_traceparent("00-zz-1-01"), None);
    }

    #[test]
    fn curl_reproduces_method_headers_body_and_tls() {
        let p = Prepared {
            method: reqwest::Method::POST,
            url: reqwest::Url::parse("https://127.0.0.1:8443/a b?x=1").unwrap(),
            headers: {
                let mut h = HeaderMap::new();
                h.insert("host", HeaderValue::from_static("example.com"));
                h
            },
            body: Some(bytes::Bytes::from_static(b"{\"it's\":1}")),
            fixed_trace: None,
            key: ClientKey {
                insecure: true,
                ca: None,
                follow_redirects: true,
            },
            attempt_timeout: Duration::from_secs(3),
        };
        assert_eq!(
            curl_command(&p, false),
            "curl -sS -i -X POST -H 'host: example.com' --data-binary '{\"it'\\''s\":1}' -k -L \
             --max-time 3 'https://127.0.0.1:8443/a%20b?x=1'"
        );
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Response {
            status,
            version: reqwest::Version::HTTP_11,
            headers: h,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn transport_failures_are_told_apart_by_type_not_by_text() {
        use std::io::{Error, ErrorKind};
        let tls = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(transport_failure(&tls), Transport::Tls);
        let dns = Error::other(DnsError {
            host: "x.invalid".into(),
            source: Error::other("lookup failed"),
        });
        assert_eq!(transport_failure(&dns), Transport::Dns);
        // Words are not types.
        let words = Error::new(
            ErrorKind::ConnectionReset,
            "tls certificate handshake dns error",
        );
        assert_eq!(transport_failure(&words), Transport::Reset);
        let refused = Error::new(ErrorKind::ConnectionRefused, "certificate");
        assert_eq!(transport_failure(&refused), Transport::Refused);
        assert_eq!(transport_failure(&Error::other("tls")), Transport::Other);
    }

    #[test]
    fn checks_classify_the_first_broken_expectation() {
        let e = Expect {
            status: Some(vec![200]),
            headers: vec![(
                "content-type".into(),
                HeaderCheck::Matches(regex::Regex::new("json").unwrap()),
            )],
            absent: vec!["x-debug".into()],
            body: Some(Text::Contains("ok".into())),
            json: vec![(
                JsonPathExpr::parse("$.path", Loc::UNKNOWN).unwrap(),
                serde_json::json!("/x"),
            )],
            cel: vec![],
        };
        let good = resp(
            200,
            &[("Content-Type", "application/json")],
            r#"{"path":"/x","ok":1}"#,
        );
        assert!(check(&e, &good).is_ok());
        let m = check(&e, &resp(503, &[], "no healthy upstream")).unwrap_err();
        assert_eq!(
            (m.class, m.summary.as_str()),
            (Class::Status, "got status 503")
        );
        assert_eq!(m.detail, "status 503, body \"no healthy upstream\"");
        let m = check(&e, &resp(200, &[("content-type", "text/plain")], "ok")).unwrap_err();
        assert_eq!(m.class, Class::Header);
        let m = check(
            &e,
            &resp(
                200,
                &[("content-type", "application/json"), ("x-debug", "1")],
                "ok",
            ),
        )
        .unwrap_err();
        assert_eq!(m.class, Class::Header);
        let m = check(
            &e,
            &resp(200, &[("content-type", "application/json")], "{}"),
        )
        .unwrap_err();
        assert_eq!(m.class, Class::Body);
        let m = check(
            &e,
            &resp(
                200,
                &[("content-type", "application/json")],
                r#"{"path":"/y","ok":1}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(m.class, Class::Json);
        assert!(m.detail.contains("$.path"), "{}", m.detail);
    }
}
