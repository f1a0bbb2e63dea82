//! Route matching: HTTPRoute rules compiled into a listener's table, and the Gateway API
//! precedence between everything that matches a request.
//!
//! Precedence (Gateway API, HTTPRoute): the most specific hostname (characters of a
//! matching exact hostname, then of a matching wildcard), then an Exact path over a
//! PathPrefix, the longer prefix first, then a method match, then more header matches, then
//! more query parameter matches; remaining ties go to the oldest route, then
//! `namespace/name` alphabetically, then the first rule and match within the route.

use std::cmp::Reverse;
use std::sync::Arc;

use http::HeaderMap;
use regex::Regex;

use super::model::{
    HeaderModifier, Key, PathModifier, RequestRedirect, RouteMatch, Rule, UrlRewrite, ValueMatch,
};

/// How a rule matches the path.
#[derive(Clone, Debug)]
pub enum PathRule {
    Exact(String),
    /// `trimmed`: the prefix without its trailing slash ("" for "/"); `value` as written.
    Prefix {
        trimmed: String,
        value: String,
    },
    Regex(Regex),
}

impl PathRule {
    pub fn compile(type_: &str, value: &str) -> Result<PathRule, String> {
        match type_ {
            "Exact" => {
                if !value.starts_with('/') {
                    return Err(format!("path {value:?} must start with '/'"));
                }
                Ok(PathRule::Exact(value.to_string()))
            }
            "PathPrefix" | "" => {
                if !value.starts_with('/') {
                    return Err(format!("path prefix {value:?} must start with '/'"));
                }
                Ok(PathRule::Prefix {
                    trimmed: value.trim_end_matches('/').to_string(),
                    value: value.to_string(),
                })
            }
            "RegularExpression" => Regex::new(&format!("^(?:{value})$"))
                .map(PathRule::Regex)
                .map_err(|e| format!("path regex {value:?}: {e}")),
            other => Err(format!("unsupported path match type {other:?}")),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathRule::Exact(v) => path == v,
            // By path segments: /foo matches /foo, /foo/ and /foo/bar, never /foobar.
            PathRule::Prefix { trimmed: p, .. } => {
                p.is_empty()
                    || path == p
                    || (path.starts_with(p.as_str()) && path.as_bytes()[p.len()] == b'/')
            }
            PathRule::Regex(r) => r.is_match(path),
        }
    }

    /// Exact over prefix (longer first) over regex.
    fn rank(&self) -> (u8, usize) {
        match self {
            PathRule::Exact(v) => (2, v.len()),
            PathRule::Prefix { trimmed, .. } => (1, trimmed.len()),
            PathRule::Regex(_) => (0, 0),
        }
    }

    /// The path as written in the rule (`http.route`, span names).
    pub fn display(&self) -> String {
        match self {
            PathRule::Exact(v) => v.clone(),
            PathRule::Prefix { value, .. } => value.clone(),
            PathRule::Regex(r) => {
                let s = r.as_str();
                s[4..s.len() - 2].to_string()
            }
        }
    }
}

#[derive(Clone, Debug)]
enum ValueRule {
    Exact(String),
    Regex(Regex),
}

impl ValueRule {
    fn compile(m: &ValueMatch) -> Result<ValueRule, String> {
        match m.type_.as_deref().unwrap_or("Exact") {
            "Exact" => Ok(ValueRule::Exact(m.value.clone())),
            "RegularExpression" => Regex::new(&format!("^(?:{})$", m.value))
                .map(ValueRule::Regex)
                .map_err(|e| format!("regex {:?}: {e}", m.value)),
            other => Err(format!("unsupported match type {other:?}")),
        }
    }

    fn matches(&self, v: &str) -> bool {
        match self {
            ValueRule::Exact(e) => e == v,
            ValueRule::Regex(r) => r.is_match(v),
        }
    }
}

/// One `matches[]` entry.
#[derive(Clone, Debug)]
pub struct CompiledMatch {
    pub path: PathRule,
    /// Lower-case names.
    headers: Vec<(String, ValueRule)>,
    query: Vec<(String, ValueRule)>,
    method: Option<String>,
}

impl CompiledMatch {
    fn compile(m: &RouteMatch) -> Result<CompiledMatch, String> {
        let path = match &m.path {
            Some(p) => PathRule::compile(&p.type_, &p.value)?,
            None => PathRule::compile("PathPrefix", "/")?,
        };
        let mut headers: Vec<(String, ValueRule)> = Vec::new();
        for h in &m.headers {
            let name = h.name.to_ascii_lowercase();
            // Only the first of equivalent names counts (Gateway API).
            if !headers.iter().any(|(n, _)| *n == name) {
                headers.push((name, ValueRule::compile(h)?));
            }
        }
        let mut query: Vec<(String, ValueRule)> = Vec::new();
        for q in &m.query_params {
            if !query.iter().any(|(n, _)| *n == q.name) {
                query.push((q.name.clone(), ValueRule::compile(q)?));
            }
        }
        Ok(CompiledMatch {
            path,
            headers,
            query,
            method: m.method.clone(),
        })
    }

    fn matches(&self, req: &RequestInfo) -> bool {
        self.path.matches(&req.path)
            && self.method.as_deref().is_none_or(|m| m == req.method)
            && self.headers.iter().all(|(name, rule)| {
                req.headers
                    .get_all(name.as_str())
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| rule.matches(v)))
            })
            && self.query.iter().all(|(name, rule)| {
                req.query
                    .iter()
                    .find(|(k, _)| k == name)
                    .is_some_and(|(_, v)| rule.matches(v))
            })
    }
}

/// A Service backend of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    pub namespace: String,
    pub name: String,
    pub port: Option<i64>,
    pub weight: u32,
    /// Resolved (a Service the route may refer to, and it exists).
    pub resolved: bool,
}

#[derive(Clone, Debug)]
pub struct CompiledRule {
    pub name: Option<String>,
    pub matches: Vec<CompiledMatch>,
    pub request_headers: Vec<HeaderModifier>,
    pub response_headers: Vec<HeaderModifier>,
    /// Answer with a redirect (the rule then has no backends).
    pub redirect: Option<RequestRedirect>,
    pub rewrite: Option<UrlRewrite>,
    pub backends: Vec<Backend>,
}

/// A path after a `ReplaceFullPath` / `ReplacePrefixMatch` modifier, `matched` being the rule's
/// path match (a prefix replacement needs a PathPrefix match). The matched prefix is replaced
/// as whole segments: `/prefix/one` + `/prefix/one/two` with `/one` is `/one/two`; with `/` it
/// is `/two`, and the bare prefix becomes `/`.
pub fn modify_path(m: &PathModifier, matched: &PathRule, path: &str) -> String {
    match (
        m.type_.as_str(),
        &m.replace_full_path,
        &m.replace_prefix_match,
    ) {
        ("ReplaceFullPath", Some(full), _) => full.clone(),
        ("ReplacePrefixMatch", _, Some(replacement)) => {
            let PathRule::Prefix { trimmed, .. } = matched else {
                return path.to_string();
            };
            let rest = path.get(trimmed.len()..).unwrap_or_default();
            let replacement = replacement.trim_end_matches('/');
            let joined = format!("{replacement}{rest}");
            if joined.is_empty() {
                "/".to_string()
            } else if joined.starts_with('/') {
                joined
            } else {
                format!("/{joined}")
            }
        }
        _ => path.to_string(),
    }
}

impl CompiledRule {
    /// Compile a rule; `resolve` tells whether a backendRef resolves (Service kind, allowed,
    /// exists) and gives its namespace.
    pub fn compile(
        rule: &Rule,
        resolve: &dyn Fn(&super::model::BackendRef) -> (String, bool),
    ) -> Result<CompiledRule, String> {
        let matches = if rule.matches.is_empty() {
            vec![CompiledMatch::compile(&RouteMatch::default())?]
        } else {
            rule.matches
                .iter()
                .map(CompiledMatch::compile)
                .collect::<Result<_, _>>()?
        };
        let mut request_headers = Vec::new();
        let mut response_headers = Vec::new();
        let mut redirect = None;
        let mut rewrite = None;
        for f in &rule.filters {
            match f.type_.as_str() {
                "RequestHeaderModifier" => {
                    request_headers.extend(f.request_header_modifier.clone())
                }
                "ResponseHeaderModifier" => {
                    response_headers.extend(f.response_header_modifier.clone())
                }
                "RequestRedirect" => {
                    let r = f
                        .request_redirect
                        .clone()
                        .ok_or("a RequestRedirect filter needs `requestRedirect`")?;
                    if let Some(code) = r.status_code
                        && !matches!(code, 301 | 302 | 303 | 307 | 308)
                    {
                        return Err(format!("unsupported redirect status code {code}"));
                    }
                    redirect = Some(r);
                }
                "URLRewrite" => {
                    rewrite = Some(
                        f.url_rewrite
                            .clone()
                            .ok_or("a URLRewrite filter needs `urlRewrite`")?,
                    );
                }
                t => return Err(format!("unsupported filter {t:?}")),
            }
        }
        let backends = rule
            .backend_refs
            .iter()
            .map(|b| {
                let (namespace, resolved) = resolve(b);
                Backend {
                    namespace,
                    name: b.name.clone(),
                    port: b.port,
                    weight: b.weight.unwrap_or(1).clamp(0, i64::from(u32::MAX)) as u32,
                    resolved,
                }
            })
            .collect();
        Ok(CompiledRule {
            name: rule.name.clone(),
            matches,
            request_headers,
            response_headers,
            redirect,
            rewrite,
            backends,
        })
    }

    /// A backend picked by weight (`None`: no backend with a weight, which answers 500).
    pub fn pick_backend(&self) -> Option<&Backend> {
        let total: u64 = self.backends.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut n = fastrand::u64(..total);
        for b in &self.backends {
            if n < u64::from(b.weight) {
                return Some(b);
            }
            n -= u64::from(b.weight);
        }
        None
    }
}

/// A route as attached to one listener.
#[derive(Clone, Debug)]
pub struct RouteEntry {
    pub key: Key,
    pub uid: String,
    pub generation: i64,
    pub creation_timestamp: String,
    /// The hostnames requests must match: the route's, else the listener's; empty: any.
    pub hostnames: Vec<String>,
    pub rules: Vec<CompiledRule>,
    /// The `demo.gwtest.dev/span-name` annotation.
    pub span_name: Option<String>,
    /// Not served: left behind by a fail-closed recovery (S3) until modified.
    pub stale: bool,
}

impl RouteEntry {
    /// How specifically the route's hostnames match `host`: (exact characters, characters);
    /// `None` when none matches.
    fn host_score(&self, host: &str) -> Option<(usize, usize)> {
        if self.hostnames.is_empty() {
            return Some((0, 0));
        }
        self.hostnames
            .iter()
            .filter(|h| host_matches(h, host))
            .map(|h| {
                if h.starts_with("*.") {
                    (0, h.len())
                } else {
                    (h.len(), h.len())
                }
            })
            .max()
    }
}

/// What matching needs of a request.
#[derive(Debug)]
pub struct RequestInfo {
    pub method: String,
    /// Lower case, without the port.
    pub host: String,
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// The query as sent (redirects keep it).
    pub raw_query: Option<String>,
    pub headers: HeaderMap,
}

/// The routes of one listener.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// The listener's name.
    pub listener: String,
    pub listener_hostname: Option<String>,
    /// The listener's port as the Gateway declares it (redirects use it).
    pub port: i64,
    pub routes: Vec<Arc<RouteEntry>>,
}

/// The listener (of those sharing a port) a request for `host` goes to: an exact hostname
/// first, then the longest matching wildcard, then one without a hostname; `None` when none
/// matches (Gateway API's listener isolation).
pub fn pick_listener<'a>(tables: &'a [Arc<Table>], host: &str) -> Option<&'a Arc<Table>> {
    tables
        .iter()
        .filter_map(|t| {
            let rank = match &t.listener_hostname {
                None => (0, 0),
                Some(h) if !host_matches(h, host) => return None,
                Some(h) if h.starts_with("*.") => (1, h.len()),
                Some(h) => (2, h.len()),
            };
            Some((rank, t))
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, t)| t)
}

/// The winner of a match.
#[derive(Clone, Debug)]
pub struct Found {
    pub route: Arc<RouteEntry>,
    pub rule: usize,
    pub matched: usize,
}

impl Found {
    pub fn rule(&self) -> &CompiledRule {
        &self.route.rules[self.rule]
    }
    pub fn path(&self) -> &PathRule {
        &self.rule().matches[self.matched].path
    }
}

type Rank<'a> = (
    (usize, usize),
    (u8, usize),
    bool,
    usize,
    usize,
    Reverse<&'a str>,
    Reverse<&'a Key>,
    Reverse<usize>,
    Reverse<usize>,
);

impl Table {
    /// The best match for `req` among routes `skip` does not rule out.
    pub fn find(&self, req: &RequestInfo, skip: impl Fn(&RouteEntry) -> bool) -> Option<Found> {
        if let Some(h) = &self.listener_hostname
            && !host_matches(h, &req.host)
        {
            return None;
        }
        let mut best: Option<(Rank<'_>, Found)> = None;
        for route in &self.routes {
            if route.stale || skip(route) {
                continue;
            }
            let Some(host) = route.host_score(&req.host) else {
                continue;
            };
            for (ri, rule) in route.rules.iter().enumerate() {
                for (mi, m) in rule.matches.iter().enumerate() {
                    if !m.matches(req) {
                        continue;
                    }
                    let rank: Rank<'_> = (
                        host,
                        m.path.rank(),
                        m.method.is_some(),
                        m.headers.len(),
                        m.query.len(),
                        Reverse(route.creation_timestamp.as_str()),
                        Reverse(&route.key),
                        Reverse(ri),
                        Reverse(mi),
                    );
                    if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                        best = Some((
                            rank,
                            Found {
                                route: route.clone(),
                                rule: ri,
                                matched: mi,
                            },
                        ));
                    }
                }
            }
        }
        best.map(|(_, f)| f)
    }
}

/// Does hostname `pattern` (exact, or `*.suffix`: one or more labels) match `host`?
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Can some host match both hostnames?
pub fn hostnames_intersect(a: &str, b: &str) -> bool {
    match (a.strip_prefix("*."), b.strip_prefix("*.")) {
        (None, None) => a.eq_ignore_ascii_case(b),
        (Some(_), None) => host_matches(a, b),
        (None, Some(_)) => host_matches(b, a),
        (Some(x), Some(y)) => {
            x == y || x.ends_with(&format!(".{y}")) || y.ends_with(&format!(".{x}"))
        }
    }
}

/// Apply a header modifier to `(lower-case name, value)` pairs.
pub fn modify_headers(headers: &mut Vec<(String, String)>, m: &HeaderModifier) {
    for nv in &m.set {
        let name = nv.name.to_ascii_lowercase();
        headers.retain(|(n, _)| *n != name);
        headers.push((name, nv.value.clone()));
    }
    for nv in &m.add {
        headers.push((nv.name.to_ascii_lowercase(), nv.value.clone()));
    }
    for name in &m.remove {
        let name = name.to_ascii_lowercase();
        headers.retain(|(n, _)| *n != name);
    }
}

/// The request host for matching: the Host header (or the URI authority), without the port,
/// lower case, without a trailing dot.
pub fn request_host(headers: &HeaderMap, uri: &http::Uri) -> String {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.as_str().to_string()))
        .unwrap_or_default();
    let no_port = if raw.starts_with('[') {
        raw.split(']')
            .next()
            .map(|s| format!("{s}]"))
            .unwrap_or_default()
    } else {
        raw.rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or(raw)
    };
    no_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Query parameters, percent-decoded (`+` is a space).
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::model::{PathMatch, ValueMatch};

    fn m(path: (&str, &str), headers: &[(&str, &str)], method: Option<&str>) -> RouteMatch {
        RouteMatch {
            path: Some(PathMatch {
                type_: path.0.into(),
                value: path.1.into(),
            }),
            headers: headers
                .iter()
                .map(|(n, v)| ValueMatch {
                    type_: None,
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            query_params: Vec::new(),
            method: method.map(str::to_string),
        }
    }

    const OLDER: &str = "2024-01-01T00:00:00Z";

    /// A route named `name`, created at `created`, with one rule matching `m`.
    fn route(name: &str, created: &str, hostnames: &[&str], m: RouteMatch) -> Arc<RouteEntry> {
        let rule = Rule {
            name: None,
            matches: vec![m],
            filters: Vec::new(),
            backend_refs: Vec::new(),
        };
        Arc::new(RouteEntry {
            key: Key::new("ns", name),
            uid: name.into(),
            generation: 1,
            creation_timestamp: created.into(),
            hostnames: hostnames.iter().map(|s| s.to_string()).collect(),
            rules: vec![CompiledRule::compile(&rule, &|_| (String::new(), true)).unwrap()],
            span_name: None,
            stale: false,
        })
    }

    /// A match on a path prefix alone.
    fn prefix(path: &str) -> RouteMatch {
        m(("PathPrefix", path), &[], None)
    }

    fn req(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> RequestInfo {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        RequestInfo {
            method: method.into(),
            host: host.into(),
            path: path.into(),
            query: Vec::new(),
            raw_query: None,
            headers: h,
        }
    }

    fn winner(t: &Table, r: &RequestInfo) -> Option<String> {
        t.find(r, |_| false).map(|f| f.route.key.name.clone())
    }

    #[test]
    fn prefix_matches_by_segment() {
        let p = PathRule::compile("PathPrefix", "/foo/").unwrap();
        assert!(p.matches("/foo"));
        assert!(p.matches("/foo/"));
        assert!(p.matches("/foo/bar"));
        assert!(!p.matches("/foobar"));
        assert!(
            PathRule::compile("PathPrefix", "/")
                .unwrap()
                .matches("/anything")
        );
        assert_eq!(PathRule::compile("PathPrefix", "/").unwrap().display(), "/");
        assert_eq!(p.display(), "/foo/", "as written");
        let r = PathRule::compile("RegularExpression", "/v[0-9]+/.*").unwrap();
        assert!(r.matches("/v2/x") && !r.matches("/x/v2/x"));
        assert_eq!(r.display(), "/v[0-9]+/.*");
        assert!(PathRule::compile("PathPrefix", "nope").is_err());
    }

    #[test]
    fn hostnames() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "aexample.com"));
        assert!(host_matches("Example.com", "example.com"));
        assert!(hostnames_intersect("*.example.com", "foo.example.com"));
        assert!(hostnames_intersect("*.a.example.com", "*.example.com"));
        assert!(!hostnames_intersect("*.example.com", "example.org"));
        let h = HeaderMap::new();
        let mut hh = HeaderMap::new();
        hh.insert("host", "Foo.Example.com.:8080".parse().unwrap());
        assert_eq!(request_host(&hh, &"/".parse().unwrap()), "foo.example.com");
        assert_eq!(
            request_host(&h, &"http://[::1]:80/".parse().unwrap()),
            "[::1]"
        );
    }

    #[test]
    fn precedence() {
        let t = Table {
            listener: "http".into(),
            port: 80,
            listener_hostname: None,
            routes: vec![
                route("root", OLDER, &[], prefix("/")),
                route("prefix", OLDER, &[], prefix("/a")),
                route("longer", OLDER, &[], prefix("/a/b")),
                route("exact", OLDER, &[], m(("Exact", "/a"), &[], None)),
                route(
                    "post",
                    OLDER,
                    &[],
                    m(("PathPrefix", "/a"), &[], Some("POST")),
                ),
                route(
                    "hdr",
                    OLDER,
                    &[],
                    m(("PathPrefix", "/a"), &[("x-v", "2")], None),
                ),
                route("host", OLDER, &["*.example.com"], prefix("/")),
                route("exacthost", OLDER, &["www.example.com"], prefix("/")),
            ],
        };
        // (method, host, path, headers, the route that wins)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: [Case; 9] = [
            ("GET", "x.org", "/z", &[], "root"),
            ("GET", "x.org", "/a/c", &[], "prefix"),
            ("GET", "x.org", "/a/b/c", &[], "longer"),
            ("GET", "x.org", "/a", &[], "exact"),
            ("POST", "x.org", "/a/x", &[("x-v", "2")], "post"),
            ("GET", "x.org", "/a/x", &[("X-V", "2")], "hdr"),
            ("GET", "x.org", "/a/x", &[("x-v", "3")], "prefix"),
            ("GET", "a.example.com", "/a", &[], "host"),
            ("GET", "www.example.com", "/a", &[], "exacthost"),
        ];
        for (method, host, path, headers, want) in cases {
            assert_eq!(
                winner(&t, &req(method, host, path, headers)).as_deref(),
                Some(want),
                "{method} {host}{path} {headers:?}"
            );
        }
        // Skipped routes fall through to the next best.
        assert_eq!(
            t.find(&req("GET", "x.org", "/a", &[]), |r| r.key.name == "exact")
                .map(|f| f.route.key.name.clone())
                .as_deref(),
            Some("prefix")
        );
    }

    #[test]
    fn ties_go_to_the_oldest_then_by_name() {
        let t = Table {
            listener: "http".into(),
            port: 80,
            listener_hostname: Some("*.example.com".into()),
            routes: vec![
                route("b", OLDER, &[], prefix("/")),
                route("a", OLDER, &[], prefix("/")),
                route("new", "2024-01-02T00:00:00Z", &[], prefix("/")),
            ],
        };
        assert_eq!(
            winner(&t, &req("GET", "x.example.com", "/", &[])).as_deref(),
            Some("a")
        );
        assert_eq!(
            winner(&t, &req("GET", "x.org", "/", &[])),
            None,
            "listener hostname"
        );
    }

    #[test]
    fn path_modifiers_replace_whole_segments() {
        let prefix = |v: &str| PathRule::compile("PathPrefix", v).unwrap();
        let pm = |t: &str, v: &str| PathModifier {
            type_: t.into(),
            replace_full_path: (t == "ReplaceFullPath").then(|| v.to_string()),
            replace_prefix_match: (t == "ReplacePrefixMatch").then(|| v.to_string()),
        };
        let check = |m: &PathModifier, matched: &str, path: &str, after: &str| {
            assert_eq!(
                modify_path(m, &prefix(matched), path),
                after,
                "{m:?} after {matched}: {path}"
            );
        };
        let p = pm("ReplacePrefixMatch", "/one");
        check(&p, "/prefix/one", "/prefix/one/two", "/one/two");
        check(&p, "/prefix/one", "/prefix/one", "/one");
        let strip = pm("ReplacePrefixMatch", "/");
        check(&strip, "/strip-prefix", "/strip-prefix/three", "/three");
        check(&strip, "/strip-prefix", "/strip-prefix", "/");
        check(&strip, "/strip-prefix/", "/strip-prefix/x", "/x");
        let full = pm("ReplaceFullPath", "/full-path-replacement");
        check(
            &full,
            "/full",
            "/full/path/original",
            "/full-path-replacement",
        );
    }

    #[test]
    fn listeners_sharing_a_port_are_picked_by_the_most_specific_hostname() {
        let t = |name: &str, h: Option<&str>| {
            Arc::new(Table {
                listener: name.into(),
                listener_hostname: h.map(str::to_string),
                port: 80,
                routes: vec![],
            })
        };
        let tables = vec![
            t("any", None),
            t("wild", Some("*.example.com")),
            t("deeper", Some("*.a.example.com")),
            t("exact", Some("x.a.example.com")),
        ];
        let pick = |h: &str| pick_listener(&tables, h).map(|t| t.listener.clone());
        assert_eq!(pick("x.a.example.com").as_deref(), Some("exact"));
        assert_eq!(pick("y.a.example.com").as_deref(), Some("deeper"));
        assert_eq!(pick("b.example.com").as_deref(), Some("wild"));
        assert_eq!(pick("example.org").as_deref(), Some("any"));
        assert_eq!(
            pick_listener(&tables[1..], "example.org").map(|t| t.listener.clone()),
            None
        );
    }

    #[test]
    fn header_modifiers_and_query() {
        let mut h = vec![
            ("x-a".to_string(), "1".to_string()),
            ("x-b".into(), "2".into()),
        ];
        modify_headers(
            &mut h,
            &HeaderModifier {
                set: vec![super::super::model::NameValue {
                    name: "X-A".into(),
                    value: "one".into(),
                }],
                add: vec![super::super::model::NameValue {
                    name: "x-b".into(),
                    value: "3".into(),
                }],
                remove: vec!["x-gone".into()],
            },
        );
        assert_eq!(
            h,
            vec![
                ("x-b".to_string(), "2".to_string()),
                ("x-a".into(), "one".into()),
                ("x-b".into(), "3".into())
            ]
        );
        assert_eq!(
            parse_query(Some("a=1&b=x%20y+z&c&d=%zz")),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into())
            ]
        );
    }
}
