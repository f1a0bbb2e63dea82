//! Test support for end-to-end tests of the real binary: a loopback HTTP server with
//! selectable misbehaviour, temporary suite directories, and a runner for `gwtest` under a
//! hard timeout.
//!
//! Each test file that uses it declares `mod support;`; not every file uses every helper.
#![allow(dead_code)]

pub mod apiserver;
pub mod output;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

// ---------------------------------------------------------------------------------------
// The test HTTP server

/// A canned response.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(status: u16, v: serde_json::Value) -> Self {
        Canned::new(status, v.to_string()).header("content-type", "application/json")
    }
}

/// How a path answers. Request numbers count from 1 per path.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 "ok".
    Ok,
    /// 503 "no healthy upstream" for the first N requests, then 200 "ok".
    HealthyAfter(u32),
    /// 503 "no healthy upstream" until D after the path's first request, then 200 "ok".
    HealthyAfterTime(Duration),
    /// 200 "ok" for the first N requests, then 404 "route not found".
    FlapAfter(u32),
    /// 200 "ok" until D after the path's first request, then 404 "route not found".
    FlapAfterTime(Duration),
    /// 200 "ok" after waiting D.
    Slow(Duration),
    /// Reads the request, never writes a byte, never closes.
    Hang,
    /// Always the same answer (wrong status, headers, body or JSON).
    Respond(Canned),
    /// Request n gets status `codes[(n-1) % len]` (body "ok" for < 400, else "bad").
    Cycle(Vec<u16>),
    /// 200 with a JSON description of the request: method, path, query, headers, body.
    Echo,
    /// 302 to the given location.
    Redirect(String),
    /// Request n behaves like `seq[(n-1) % len]` would on its first request.
    Sequence(Vec<Behavior>),
    /// 200 with a body that never ends (`x` forever, in 64 KiB chunks).
    Endless,
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lowercased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct PathState {
    count: u32,
    first: Option<Instant>,
    seen: Vec<Seen>,
}

struct Shared {
    routes: Mutex<Vec<(String, Behavior)>>,
    paths: Mutex<HashMap<String, PathState>>,
    /// Keep every request (for `seen`); the benchmark turns this off.
    record: bool,
}

/// A loopback HTTP/1.1 server on its own thread and runtime; stopped (connections and all)
/// when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serve `routes`: a path answers with its behaviour; a route ending in `*` matches by
    /// prefix; anything else gets 404 "no route".
    pub fn start<'a>(routes: impl IntoIterator<Item = (&'a str, Behavior)>) -> TestServer {
        Self::start_with(routes, true)
    }

    /// Like `start`, without keeping request contents (long benchmarks).
    pub fn start_unrecorded<'a>(routes: impl IntoIterator<Item = (&'a str, Behavior)>) -> Self {
        Self::start_with(routes, false)
    }

    fn start_with<'a>(
        routes: impl IntoIterator<Item = (&'a str, Behavior)>,
        record: bool,
    ) -> TestServer {
        let shared = Arc::new(Shared {
            routes: Mutex::new(routes.into_iter().map(|(p, b)| (p.to_owned(), b)).collect()),
            paths: Mutex::new(HashMap::new()),
            record,
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-server-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
                    let app = axum::Router::new().fallback(handle).with_state(s2);
                    tokio::select! {
                        r = axum::serve(listener, app) => { r.expect("serve"); }
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime aborts every connection task, hanging ones included.
                drop(rt);
            })
            .expect("spawn server thread");
        TestServer {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Change how a path answers from now on.
    pub fn set(&self, path: &str, b: Behavior) {
        let mut routes = self.shared.routes.lock().unwrap();
        match routes.iter_mut().find(|(p, _)| p == path) {
            Some(r) => r.1 = b,
            None => routes.push((path.to_owned(), b)),
        }
    }

    /// Requests received on exactly this path (counted on arrival, hanging ones included).
    pub fn count(&self, path: &str) -> u32 {
        self.shared
            .paths
            .lock()
            .unwrap()
            .get(path)
            .map_or(0, |s| s.count)
    }

    /// Requests received on exactly this path, oldest first.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.shared
            .paths
            .lock()
            .unwrap()
            .get(path)
            .map_or_else(Vec::new, |s| s.seen.clone())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn route_for(routes: &[(String, Behavior)], path: &str) -> Option<Behavior> {
    routes
        .iter()
        .find(|(p, _)| p == path)
        .or_else(|| {
            routes
                .iter()
                .find(|(p, _)| p.ends_with('*') && path.starts_with(&p[..p.len() - 1]))
        })
        .map(|(_, b)| b.clone())
}

fn canned(c: &Canned) -> Response {
    let mut b = Response::builder().status(c.status);
    for (k, v) in &c.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Body::from(c.body.clone())).expect("valid response")
}

fn ok() -> Response {
    canned(&Canned::new(200, "ok"))
}

fn unavailable() -> Response {
    canned(&Canned::new(503, "no healthy upstream"))
}

fn gone() -> Response {
    canned(&Canned::new(404, "route not found"))
}

/// 200 "ok", or `other`'s answer while `instead` holds (the behaviours that switch once).
fn ok_or(instead: bool, other: fn() -> Response) -> Response {
    if instead { other() } else { ok() }
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let (n, since_first) = {
        let mut paths = s.paths.lock().unwrap();
        let st = paths.entry(path.clone()).or_default();
        st.count += 1;
        let first = *st.first.get_or_insert_with(Instant::now);
        if s.record {
            st.seen.push(seen.clone());
        }
        (st.count, first.elapsed())
    };
    let behavior = route_for(&s.routes.lock().unwrap(), &path);
    let Some(mut behavior) = behavior else {
        return canned(&Canned::new(404, "no route"));
    };
    let mut n = n;
    while let Behavior::Sequence(seq) = behavior {
        behavior = seq[(n as usize - 1) % seq.len()].clone();
        n = 1;
    }
    match behavior {
        Behavior::Ok => ok(),
        Behavior::HealthyAfter(k) => ok_or(n <= k, unavailable),
        Behavior::HealthyAfterTime(d) => ok_or(since_first < d, unavailable),
        Behavior::FlapAfter(k) => ok_or(n > k, gone),
        Behavior::FlapAfterTime(d) => ok_or(since_first >= d, gone),
        Behavior::Slow(d) => {
            tokio::time::sleep(d).await;
            ok()
        }
        Behavior::Hang => std::future::pending().await,
        Behavior::Respond(c) => canned(&c),
        Behavior::Cycle(codes) => {
            let code = codes[(n as usize - 1) % codes.len()];
            canned(&Canned::new(code, if code < 400 { "ok" } else { "bad" }))
        }
        Behavior::Echo => {
            let mut headers = serde_json::Map::new();
            for (k, v) in &seen.headers {
                let v = match headers.get(k) {
                    Some(serde_json::Value::String(prev)) => format!("{prev}, {v}"),
                    _ => v.clone(),
                };
                headers.insert(k.clone(), serde_json::Value::String(v));
            }
            canned(&Canned::json(
                200,
                serde_json::json!({
                    "method": seen.method,
                    "path": seen.path,
                    "query": seen.query,
                    "headers": headers,
                    "body": seen.body_text(),
                }),
            ))
        }
        Behavior::Redirect(to) => canned(&Canned::new(302, "").header("location", &to)),
        Behavior::Endless => {
            let chunk = bytes::Bytes::from(vec![b'x'; 64 << 10]);
            let stream = futures::stream::repeat_with(move || {
                Ok::<_, std::convert::Infallible>(chunk.clone())
            });
            Response::new(Body::from_stream(stream))
        }
        Behavior::Sequence(_) => unreachable!("unwrapped above"),
    }
}

/// A raw TCP server that reads a request and closes the connection without answering.
pub struct ClosingServer {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ClosingServer {
    pub fn start() -> ClosingServer {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut c) = conn {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf);
                    drop(c);
                }
            }
        });
        ClosingServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for ClosingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------------------
// Temporary directories

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The one temporary directory of the tests: unique under the system temp dir, removed when
/// dropped. It holds an empty `gwtest.toml`, so no configuration from a parent directory
/// (a stray /tmp/gwtest.toml) reaches the runs in it; a test that wants one writes its own
/// (or removes it, to run without one).
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    pub fn new(name: &str) -> Workspace {
        let root = std::env::temp_dir().join(format!(
            "gwtest-test-{name}-{}-{}-{:06x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            fastrand::u32(..0xff_ffff)
        ));
        std::fs::create_dir_all(&root).expect("create workspace");
        std::fs::write(root.join("gwtest.toml"), "").expect("write gwtest.toml");
        Workspace { root }
    }

    /// A workspace holding these files (`path`, `content`).
    pub fn with(name: &str, files: &[(&str, &str)]) -> Workspace {
        let ws = Workspace::new(name);
        for (path, content) in files {
            ws.write(path, content);
        }
        ws
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The workspace's path as a string, for command lines.
    pub fn path_str(&self) -> &str {
        self.root.to_str().expect("a UTF-8 temp dir")
    }

    /// Write a file (creating directories), relative to the workspace.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("create dir");
        }
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// The text of a file in the workspace.
    pub fn read(&self, rel: &str) -> String {
        let p = self.root.join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// A JSON file in the workspace (a report), parsed.
    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
    }

    /// `DIR/suite.yaml` with `extra` (YAML lines, e.g. `defaults: {timeout: 2s}`) appended.
    pub fn suite(&self, dir: &str, extra: &str) -> PathBuf {
        self.write(
            &format!("{dir}/suite.yaml"),
            &format!("apiVersion: gwtest/v1alpha1\nkind: Suite\n{extra}\n"),
        );
        self.root.join(dir)
    }

    /// `gwtest ARGS` with this workspace as the working directory (and `$HOME`).
    pub fn gwtest(&self, args: &[&str]) -> Gwtest {
        gwtest(args).cwd(&self.root)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A `kind: Test` document.
pub fn test_doc(name: &str, extra: &str, steps: &str) -> String {
    format!("apiVersion: gwtest/v1alpha1\nkind: Test\nname: {name}\n{extra}\nsteps:\n{steps}\n")
}

/// A workspace with one suite `s` (`suite_extra` in its suite.yaml) holding one test `t`
/// (`s/t.test.yaml`; `test_extra` and `steps` as [`test_doc`] takes them).
pub fn one_test(name: &str, suite_extra: &str, test_extra: &str, steps: &str) -> Workspace {
    one_file(name, suite_extra, &[test_doc("t", test_extra, steps)])
}

/// A workspace with one suite `s` (`suite_extra` in its suite.yaml) whose one test file
/// `s/t.test.yaml` holds the `tests` documents ([`test_doc`]s).
pub fn one_file(name: &str, suite_extra: &str, tests: &[String]) -> Workspace {
    one_file_in(name, "s", suite_extra, tests)
}

/// [`one_file`] with the suite in `dir` (its test file `DIR/t.test.yaml`).
pub fn one_file_in(name: &str, dir: &str, suite_extra: &str, tests: &[String]) -> Workspace {
    let ws = Workspace::new(name);
    ws.suite(dir, suite_extra);
    ws.write(&format!("{dir}/t.test.yaml"), &tests.join("---\n"));
    ws
}

/// A workspace with a suite `dir` (an empty suite.yaml) holding the manifest `file` (`text`)
/// for its tests to apply.
pub fn suite_with_manifest(name: &str, dir: &str, file: &str, text: &str) -> Workspace {
    let ws = Workspace::new(name);
    ws.suite(dir, "");
    ws.write(&format!("{dir}/{file}"), text);
    ws
}

/// Runs suite `s` of `ws`, which must fail, and returns the outcome of its test `t` (see
/// [`one_test`]).
pub fn failed_outcome(ws: &Workspace) -> Outcome {
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    out.outcome("s/t")
}

/// A request step to `url` that needs one good answer within its 1s timeout, attempting every
/// 50 to 100ms.
pub fn request_within_1s(url: &str) -> String {
    format!(
        "  - request: {{url: {url}}}\n    timeout: 1s\n    consecutive: 1\n    interval: 50ms\n    max-interval: 100ms\n"
    )
}

/// Suites `s` and `u` in `ws`, each with one test `t` of a [`request_within_1s`] to its own
/// path of the returned server, which answers 200 only 1.5s after that path's first request:
/// the test fails unless something stretches its timeout.
pub fn late_route_suites(ws: &Workspace) -> TestServer {
    let late = || Behavior::HealthyAfterTime(Duration::from_millis(1500));
    let srv = TestServer::start([("/a", late()), ("/b", late())]);
    for (suite, path) in [("s", "/a"), ("u", "/b")] {
        ws.suite(suite, "");
        ws.write(
            &format!("{suite}/t.test.yaml"),
            &test_doc("t", "", &request_within_1s(&srv.url(path))),
        );
    }
    srv
}

/// A workspace with one suite `s` holding a test per name (`s/NAME.test.yaml`), all alike:
/// the same `extra` and `steps`.
pub fn alike_tests(name: &str, tests: &[&str], extra: &str, steps: &str) -> Workspace {
    let ws = Workspace::new(name);
    ws.suite("s", "");
    for t in tests {
        ws.write(&format!("s/{t}.test.yaml"), &test_doc(t, extra, steps));
    }
    ws
}

// ---------------------------------------------------------------------------------------
// Running the binary

pub const BIN: &str = env!("CARGO_BIN_EXE_gwtest");

/// How long a run may last before it is taken for a hang: killed, and the test failed with
/// its output. Generous on purpose: it only catches hangs, and three copies of the suite on
/// two busy cores must never reach it. How fast gwtest is is measured in benches/.
pub const HANG: Duration = Duration::from_secs(300);

/// Variables passed through to gwtest; nothing else of the caller's environment is. gwtest
/// reads many (`CI`, `GITHUB_ACTIONS`, `GWTEST_*`, `OTEL_*`, `KUBECONFIG`, `NO_COLOR`,
/// `FORCE_COLOR`, `TERM`, `HOME`, `${env.X}` in suites...): a test that wants one sets it.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "RUST_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// `$HOME` for runs outside a workspace: empty, so no `~/.kube/config` is found.
fn empty_home() -> PathBuf {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("gwtest-test-home-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create empty home");
        d
    })
    .clone()
}

/// The caller's variables a gwtest run may see ([`PASSED_THROUGH`]), for starters that cannot
/// use [`command`] (a terminal in tmux).
pub fn passed_through() -> Vec<(&'static str, String)> {
    PASSED_THROUGH
        .iter()
        .filter_map(|k| Some((*k, std::env::var(k).ok()?)))
        .collect()
}

/// The gwtest binary with the tests' one environment hygiene: only [`PASSED_THROUGH`] of the
/// caller's environment, `HOME` = `cwd` (or an empty directory), `CI=true`. Tests use
/// [`gwtest`], which also drains the pipes and guards against hangs; a benchmark that must
/// reap the process itself (wait4 for its rusage) starts from this and drains its own pipes.
pub fn command(cwd: Option<&Path>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    for k in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("HOME", cwd.map_or_else(empty_home, Path::to_path_buf));
    cmd.env("CI", "true");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd
}

/// A `gwtest` invocation: a hermetic environment (see [`PASSED_THROUGH`]) with plain output
/// (`CI=true`), both pipes always drained, killed if it outlives [`HANG`].
pub struct Gwtest {
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    hang: Duration,
    read_stdout: bool,
    stdin: bool,
}

pub fn gwtest(args: &[&str]) -> Gwtest {
    Gwtest {
        args: args.iter().map(OsString::from).collect(),
        envs: Vec::new(),
        cwd: None,
        hang: HANG,
        read_stdout: true,
        stdin: false,
    }
}

/// What a finished run left.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// How long it ran (for messages and lower bounds: never assert an upper one).
    pub wall: Duration,
}

impl Gwtest {
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Self {
        self.envs.retain(|(e, _)| e != k);
        self.envs.push((k.into(), Some(v.into())));
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.envs.retain(|(e, _)| e != k);
        self.envs.push((k.into(), None));
        self
    }

    pub fn cwd(mut self, d: &Path) -> Self {
        self.cwd = Some(d.to_owned());
        self
    }

    /// A tighter hang guard than [`HANG`], for runs that wait on something that may never
    /// come. Still a guard, not a speed check: keep it many times what the run needs.
    pub fn hang_after(mut self, d: Duration) -> Self {
        self.hang = d;
        self
    }

    /// Keep stdout a pipe nobody reads: once it is full, gwtest blocks writing to it.
    pub fn stdout_unread(mut self) -> Self {
        self.read_stdout = false;
        self
    }

    /// Give gwtest a stdin pipe to write to ([`Running::send`]); it is /dev/null otherwise.
    pub fn stdin_piped(mut self) -> Self {
        self.stdin = true;
        self
    }

    pub fn spawn(self) -> Running {
        let mut cmd = command(self.cwd.as_deref());
        cmd.args(&self.args)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn gwtest");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let mut held_stdout = None;
        let out = child.stdout.take().expect("piped");
        if self.read_stdout {
            readers.push(reader(out, stdout.clone()));
        } else {
            held_stdout = Some(out);
        }
        readers.push(reader(child.stderr.take().expect("piped"), stderr.clone()));
        Running {
            stdin: child.stdin.take(),
            child,
            started,
            hang: started + self.hang,
            stdout,
            stderr,
            readers,
            held_stdout,
            desc: format!("gwtest {:?}", self.args),
        }
    }

    pub fn run(self) -> RunOutput {
        self.spawn().wait()
    }

    /// [`Gwtest::run`] for async tests: the wait happens off the runtime, so what the test
    /// serves in-process (a gateway, a collector) keeps running meanwhile.
    pub async fn run_async(self) -> RunOutput {
        self.spawn().finish().await
    }
}

fn reader(mut r: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A running `gwtest`; killed if dropped unfinished.
pub struct Running {
    child: Child,
    started: Instant,
    /// Past this it is taken for a hang.
    hang: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    held_stdout: Option<std::process::ChildStdout>,
    stdin: Option<std::process::ChildStdin>,
    desc: String,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send a signal (SIGINT for Ctrl-C). Wait for a readiness line or another observable
    /// effect first ([`Running::wait_for_line`]), never for a fixed time. It is sent once
    /// gwtest has a handler for it: before that the default action would kill it outright.
    pub fn signal(&mut self, sig: i32) {
        let pid = self.pid();
        if sig != libc::SIGKILL {
            self.wait_for(&format!("a handler for signal {sig}"), || catches(pid, sig));
        }
        // SAFETY: kill(2) on our own child's pid; it is not reaped before `wait`.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Still running (not exited)?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Output so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait for a whole stdout line matching `re` and return it. Fails at once if gwtest exits
    /// without printing it, and past the hang guard.
    pub fn wait_for_line(&mut self, re: &str) -> String {
        let r = regex::Regex::new(re).expect("valid regex");
        let mut exited = false;
        loop {
            let out = self.stdout_so_far();
            // Only whole lines: a half-written one could match a prefix of the pattern.
            let whole = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(l) = whole.lines().find(|l| r.is_match(l)) {
                return l.to_owned();
            }
            // After the exit, one more look at what the readers had left to collect.
            if exited || Instant::now() >= self.hang {
                let _ = self.child.kill();
                panic!(
                    "{}: no line matches /{re}/{}\n--- stdout\n{out}\n--- stderr\n{}",
                    self.desc,
                    if exited {
                        " before it exited"
                    } else {
                        " (a hang?)"
                    },
                    self.stderr_so_far()
                );
            }
            if !self.alive() {
                self.join_readers();
                exited = true;
                continue;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until `ready` holds (an effect of the run: a file a step wrote, a request a
    /// server got). Fails at once if gwtest exits first, and past the hang guard.
    pub fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        while !ready() {
            if !self.alive() || Instant::now() >= self.hang {
                let _ = self.child.kill();
                self.join_readers();
                panic!(
                    "{}: never saw {what}\n--- stdout\n{}\n--- stderr\n{}",
                    self.desc,
                    self.stdout_so_far(),
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until gwtest's unread stdout pipe ([`Gwtest::stdout_unread`]) is full.
    pub fn wait_for_stdout_pipe_full(&mut self) {
        while !self.stdout_pipe_full() {
            assert!(
                self.alive() && Instant::now() < self.hang,
                "{}: its stdout pipe never filled up\n--- stderr\n{}",
                self.desc,
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Write to gwtest's stdin (see [`Gwtest::stdin_piped`]).
    pub fn send(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("spawned with stdin_piped()");
        stdin
            .write_all(text.as_bytes())
            .expect("write gwtest's stdin");
        stdin.flush().expect("flush gwtest's stdin");
    }

    /// Whether gwtest is blocked writing to its unread stdout pipe ([`Gwtest::stdout_unread`]):
    /// the pipe holds output nobody read and one of gwtest's threads waits in a pipe write
    /// (its wchan). How many bytes make a pipe full depends on the sizes of the writes.
    pub fn stdout_pipe_full(&self) -> bool {
        use std::os::fd::AsRawFd;
        let fd = self
            .held_stdout
            .as_ref()
            .expect("spawned with stdout_unread()")
            .as_raw_fd();
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD on a pipe we own; `queued` outlives the call.
        let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        assert_eq!(r, 0, "cannot inspect gwtest's stdout pipe");
        let writing = std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|t| {
                std::fs::read_to_string(t.path().join("wchan"))
                    .is_ok_and(|w| w.contains("pipe_write"))
            });
        queued > 0 && writing
    }

    /// Wait for the process; kill it and fail the test if it outlives the hang guard.
    pub fn wait(self) -> RunOutput {
        self.wait_until(None)
    }

    /// Wait for the process, failing the test if it is still running `within` from now
    /// (`after` says what it should have ended on, e.g. "the second Ctrl-C"). For "exits
    /// promptly" checks: arrange the test so that the wrong behaviour would take many times
    /// `within`, and keep `within` generous.
    pub fn wait_within(self, within: Duration, after: &str) -> RunOutput {
        let deadline = Instant::now() + within;
        self.wait_until(Some((deadline, format!("within {within:?} of {after}"))))
    }

    /// [`Running::wait`] for async tests (see [`Gwtest::run_async`]).
    pub async fn finish(self) -> RunOutput {
        tokio::task::spawn_blocking(move || self.wait())
            .await
            .expect("waiting for gwtest")
    }

    fn wait_until(mut self, limit: Option<(Instant, String)>) -> RunOutput {
        let (deadline, what) = match limit {
            Some((d, what)) if d < self.hang => (d, what),
            _ => (
                self.hang,
                format!(
                    "within {:?} (taken for a hang)",
                    self.hang.duration_since(self.started)
                ),
            ),
        };
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.join_readers();
                    panic!(
                        "{} did not exit {what}\n--- stdout\n{}\n--- stderr\n{}",
                        self.desc,
                        self.stdout_so_far(),
                        self.stderr_so_far(),
                    );
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let wall = self.started.elapsed();
        drop(self.held_stdout.take());
        drop(self.stdin.take());
        self.join_readers();
        use std::os::unix::process::ExitStatusExt;
        RunOutput {
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout_so_far(),
            stderr: self.stderr_so_far(),
            wall,
        }
    }

    /// Let the readers collect what is left. Children of gwtest could hold the pipes open:
    /// never wait on them for long.
    fn join_readers(&mut self) {
        let until = Instant::now() + Duration::from_secs(5);
        for r in self.readers.drain(..) {
            while !r.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading the plain output

/// One finished test as the plain output shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// PASS, FAIL, FLAKY or SKIP.
    pub tag: String,
    /// The result line and the failure block under it.
    pub block: String,
}

impl std::fmt::Display for RunOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dump())
    }
}

impl RunOutput {
    /// Every output, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.wall, self.stdout, self.stderr
        )
    }

    /// Fail with the whole output unless the exit code is `code`.
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "wrong exit code\n{}", self.dump());
        self
    }

    /// Fail unless the run exited at once on a second Ctrl-C (130, without waiting for
    /// cleanup).
    pub fn assert_exited_on_second_interrupt(&self) -> &Self {
        self.assert_exit(130);
        assert!(
            self.stderr
                .contains("interrupted twice: exiting without waiting for cleanup"),
            "{}",
            self.dump()
        );
        self
    }

    /// Fail with the whole output unless stdout contains `s`.
    pub fn assert_stdout_has(&self, s: &str) -> &Self {
        self.assert_has("stdout", &self.stdout, s)
    }

    /// Fail with the whole output unless stderr contains `s`.
    pub fn assert_stderr_has(&self, s: &str) -> &Self {
        self.assert_has("stderr", &self.stderr, s)
    }

    fn assert_has(&self, stream: &str, text: &str, s: &str) -> &Self {
        assert!(text.contains(s), "{stream} lacks {s:?}\n{}", self.dump());
        self
    }

    /// Fail with the whole output unless stdout has a line matching `re`; returns the captures.
    pub fn stdout_line(&self, re: &str) -> regex::Captures<'_> {
        let r = regex::Regex::new(&format!("(?m){re}")).expect("valid regex");
        r.captures(&self.stdout)
            .unwrap_or_else(|| panic!("no stdout line matches /{re}/\n{}", self.dump()))
    }

    /// The result lines, `(tag, test id)` in output order.
    pub fn results(&self) -> Vec<(String, String)> {
        let r = regex::Regex::new(r"^(PASS|FAIL|FLAKY|SKIP) +\d+\.\ds  (\S+)").unwrap();
        self.stdout
            .lines()
            .filter_map(|l| r.captures(l))
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect()
    }

    /// The outcome of test `id` (`suite/test`, `#N` for repeats); fails if absent or repeated.
    pub fn outcome(&self, id: &str) -> Outcome {
        let head = regex::Regex::new(r"^(PASS|FAIL|FLAKY|SKIP) +\d+\.\ds  (\S+)").unwrap();
        let mut found: Vec<Outcome> = Vec::new();
        let mut current: Option<Outcome> = None;
        for line in self.stdout.lines() {
            if let Some(c) = head.captures(line) {
                if let Some(o) = current.take() {
                    found.push(o);
                }
                if &c[2] == id {
                    current = Some(Outcome {
                        tag: c[1].to_owned(),
                        block: line.to_owned(),
                    });
                }
                continue;
            }
            // Under GitHub Actions echoed output is fenced from workflow commands
            // (`::stop-commands::TOKEN` … `::TOKEN::`): the fence is not part of the block.
            if line.starts_with("::stop-commands::")
                || (line.len() > 4
                    && line.starts_with("::")
                    && line.ends_with("::")
                    && line[2..line.len() - 2]
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit()))
            {
                continue;
            }
            let ends = line.is_empty()
                || line.starts_with("RETRY ")
                || line.starts_with("note: ")
                || !line.starts_with(' ');
            match &mut current {
                Some(o) if !ends => {
                    o.block.push('\n');
                    o.block.push_str(line);
                }
                Some(_) => found.extend(current.take()),
                None => {}
            }
        }
        found.extend(current);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one result for {id}\n{}",
            self.dump()
        );
        found.pop().unwrap()
    }

    /// The final count line: `N tests: a passed, b flaky, c failed, d skipped in Xs`.
    pub fn summary(&self) -> String {
        let r = regex::Regex::new(
            r"(?m)^\d+ tests?: \d+ passed, \d+ flaky, \d+ failed, \d+ skipped in \d+\.\ds.*$",
        )
        .unwrap();
        r.find(&self.stdout)
            .unwrap_or_else(|| panic!("no summary line\n{}", self.dump()))
            .as_str()
            .to_owned()
    }

    /// Fail unless the summary counts are exactly these.
    pub fn assert_counts(&self, passed: usize, flaky: usize, failed: usize, skipped: usize) {
        let total = passed + flaky + failed + skipped;
        let want = format!(
            "{total} test{}: {passed} passed, {flaky} flaky, {failed} failed, {skipped} skipped in ",
            if total == 1 { "" } else { "s" }
        );
        let s = self.summary();
        assert!(
            s.starts_with(&want),
            "summary {s:?}, want {want:?}\n{}",
            self.dump()
        );
    }
}

impl Outcome {
    /// Fail unless the block has a line matching `re` (multi-line mode); returns the captures.
    pub fn line(&self, re: &str) -> regex::Captures<'_> {
        let r = regex::Regex::new(&format!("(?m){re}")).expect("valid regex");
        r.captures(&self.block)
            .unwrap_or_else(|| panic!("no line matches /{re}/ in:\n{}", self.block))
    }

    pub fn has(&self, s: &str) -> bool {
        self.block.contains(s)
    }

    pub fn assert_has(&self, s: &str) -> &Self {
        assert!(self.block.contains(s), "missing {s:?} in:\n{}", self.block);
        self
    }
}

// ---------------------------------------------------------------------------------------
// Durations as gwtest prints them

/// The seconds of a duration as gwtest prints it: `1.5s` (or `1.5`) -> 1.5.
pub fn secs(text: &str) -> f64 {
    text.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {text:?}"))
}

/// The window in which a printed duration is taken to be `expected` seconds on a loaded
/// machine: a tenth early (rounding to tenths; a clock started a little after the deadline's)
/// up to a second, or half of it, late (timers fire late when the cores are busy).
fn window(expected: f64) -> (f64, f64) {
    (expected - 0.1, expected + (expected / 2.0).max(1.0))
}

/// Whether `actual` (seconds, as printed) is `expected` as a loaded machine reports it.
/// For a duration that is the behaviour under test (a deadline that cut a step); an
/// incidental one is matched by `\d+\.\ds` and not checked.
pub fn near(actual: f64, expected: f64) -> bool {
    let (lo, hi) = window(expected);
    // Both are printed in tenths: compare in tenths.
    let t = (actual * 10.0).round();
    t >= (lo * 10.0).round() && t <= (hi * 10.0).round()
}

/// A regex for a duration, `s` included, that [`near`] accepts: `about(1.0)` matches `0.9s`
/// to `2.0s`.
pub fn about(expected: f64) -> String {
    let (lo, hi) = window(expected);
    let tenths = ((lo * 10.0).round().max(0.0) as u32)..=((hi * 10.0).round() as u32);
    let alts: Vec<String> = tenths.map(|t| format!(r"{}\.{}", t / 10, t % 10)).collect();
    format!("(?:{})s", alts.join("|"))
}

/// The end an attempt summary gets when the step's deadline fell while an attempt was still
/// under way: `; cut off after 0.3s: WHAT`, `what` being a regex for what that attempt was
/// waiting on (`GET URL \(attempt-timeout 10s, no response yet\)`, `CMD \(still running\)`,
/// `reading ...`). Whether the deadline finds one under way is a race the load decides: an
/// anchored summary regex puts this optional group before its `[class]`.
pub fn cut_off(what: &str) -> String {
    format!(r"(?:; cut off after \d+\.\ds: {what})?")
}

/// [`cut_off`] for a request step: `GET URL (attempt-timeout T, no response yet)`.
pub fn cut_off_request(method: &str, url: &str) -> String {
    cut_off(&format!(
        r"{method} {} \(attempt-timeout \S+, no response yet\)",
        regex::escape(url)
    ))
}

/// `$KUBECTL` when set (to test a given version), else `kubectl` on PATH, if there is one.
pub fn find_kubectl() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        return Some(PathBuf::from(k));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// [`find_kubectl`] for the tests that need kubectl: without it they fail (CI installs it).
pub fn kubectl_bin() -> PathBuf {
    find_kubectl()
        .unwrap_or_else(|| panic!("kubectl is not on PATH (or set $KUBECTL): these tests need it"))
}

/// What a kubectl run left.
#[derive(Debug)]
pub struct KubectlRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run kubectl against the cluster (bounded: `--request-timeout` and a process deadline).
pub async fn kubectl(cluster_dir: &Path, kubeconfig: &Path, args: &[&str]) -> KubectlRun {
    let mut cmd = tokio::process::Command::new(kubectl_bin());
    cmd.args(args)
        .arg("--request-timeout=10s")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", cluster_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn kubectl");
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in time"))
        .expect("kubectl output");
    KubectlRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether process `pid` has a handler for signal `sig` (`SigCgt` in /proc/PID/status).
fn catches(pid: i32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Whether a process is gone (or a zombie nobody reaped: it runs no more).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Poll `f` every 20ms until it holds or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reports of an interrupted run are complete. Today gwtest's only report is the terminal
/// output, so this checks its summary line; when `--junit`/`--json` land, check their files
/// here too (written, parseable, the same counts, `interrupted` recorded).
/// The terminal's share of "reports are still written" after Ctrl-C (tests that pass
/// --junit/--json check the files themselves).
pub fn assert_reports_written_after_interrupt(out: &RunOutput, failed: usize, skipped: usize) {
    out.assert_counts(0, 0, failed, skipped);
    let s = out.summary();
    assert!(
        s.ends_with("(interrupted)"),
        "summary {s:?}\n{}",
        out.dump()
    );
}

// ---------------------------------------------------------------------------------------
// JUnit validation

/// Validate `xml` against tests/junit-10.xsd with xmllint; panics with xmllint's complaint.
pub fn assert_valid_junit(xml: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit-10.xsd");
    let out = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(xml)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run xmllint ({e}): install it with `bash ci/install-deps.sh` \
             (Debian package libxml2-utils)"
        ),
    };
    assert!(
        out.status.success(),
        "{} is not valid against junit-10.xsd:\n{}\n{}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(xml).unwrap_or_default()
    );
}
