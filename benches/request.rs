//! A `request` step doing 1000 consecutive successful attempts on loopback, against a loop
//! that runs `curl` once per attempt (what shell-based e2e frameworks do): wall time and
//! CPU time (user + sys of the child processes) of both, in the same run, on the same
//! server. Targets: >= 20x less CPU than curl-per-attempt, >= 2,000 attempts/s.
//!
//! Run: `cargo bench --bench request` (results go in docs/benchmarks.md).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Behavior, TestServer, Workspace, test_doc};

const ATTEMPTS: u32 = 1000;
const ROUNDS: usize = 3;

/// User + system CPU time of every waited-for child of this process so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we hand it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// Run `f` (which must wait for every process it starts) and measure it.
fn measure(f: impl FnOnce()) -> Sample {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    f();
    Sample {
        wall: t0.elapsed(),
        cpu: children_cpu() - cpu0,
    }
}

fn median(mut v: Vec<Sample>, key: fn(&Sample) -> Duration) -> Duration {
    v.sort_by_key(key);
    key(&v[v.len() / 2])
}

/// A suite whose one request step needs `n` passing attempts in a row.
fn suite(ws: &Workspace, dir: &str, url: &str, n: u32) {
    ws.suite(dir, "defaults: {test-timeout: 10m}");
    ws.write(
        &format!("{dir}/t.test.yaml"),
        &test_doc(
            "t",
            "",
            &format!(
                "  - request: {{url: {url}, attempt-timeout: 10s, expect: {{status: 200, body: {{equals: ok}}}}}}\n    consecutive: {n}\n    timeout: 5m\n"
            ),
        ),
    );
}

fn gwtest(ws: &Workspace, dir: &str) {
    let out = ws.gwtest(&["run", dir]).run();
    assert_eq!(out.code, Some(0), "{}", out.dump());
}

fn curl_loop(url: &str) {
    for _ in 0..ATTEMPTS {
        let st = Command::new("curl")
            .args(["-s", "-f", "-o", "/dev/null", url])
            .stdin(Stdio::null())
            .status()
            .expect("run curl");
        assert!(st.success(), "curl failed: {st}");
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that short.
    let quick = !std::env::args().any(|a| a == "--bench");
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed: the comparison cannot run");
        std::process::exit(1);
    }
    let srv = TestServer::start_unrecorded([
        ("/gw", Behavior::Ok),
        ("/one", Behavior::Ok),
        ("/curl", Behavior::Ok),
    ]);
    let ws = Workspace::new("bench-request");
    suite(&ws, "many", &srv.url("/gw"), ATTEMPTS);
    suite(&ws, "one", &srv.url("/one"), 1);

    // Warm the page cache and the binary once.
    gwtest(&ws, "one");

    let rounds = if quick { 1 } else { ROUNDS };
    let (mut gw, mut base, mut curl) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        gw.push(measure(|| gwtest(&ws, "many")));
        base.push(measure(|| gwtest(&ws, "one")));
        if quick {
            break;
        }
        curl.push(measure(|| curl_loop(&srv.url("/curl"))));
    }
    assert_eq!(srv.count("/gw"), ATTEMPTS * rounds as u32);
    if quick {
        println!("request bench: smoke run ok (use `cargo bench --bench request` for numbers)");
        return;
    }
    assert_eq!(srv.count("/curl"), ATTEMPTS * rounds as u32);

    let wall = |v: &Vec<Sample>| median(v.clone(), |s| s.wall);
    let cpu = |v: &Vec<Sample>| median(v.clone(), |s| s.cpu);
    let (gw_wall, gw_cpu) = (wall(&gw), cpu(&gw));
    let (base_wall, base_cpu) = (wall(&base), cpu(&base));
    let (curl_wall, curl_cpu) = (wall(&curl), cpu(&curl));
    let rate = f64::from(ATTEMPTS) / gw_wall.as_secs_f64();
    let net_wall = gw_wall.saturating_sub(base_wall);
    let net_rate = f64::from(ATTEMPTS - 1) / net_wall.as_secs_f64().max(1e-9);
    let cpu_ratio = curl_cpu.as_secs_f64() / gw_cpu.as_secs_f64();
    let wall_ratio = curl_wall.as_secs_f64() / gw_wall.as_secs_f64();

    println!(
        "request step vs curl-per-attempt, {ATTEMPTS} attempts on loopback, median of {rounds} rounds"
    );
    println!(
        "| | wall | CPU (user+sys) | attempts/s |\n|---|---|---|---|\n\
         | gwtest, one `request` step, `consecutive: {ATTEMPTS}` (whole process) | {} | {} | {:.0} |\n\
         | gwtest, same suite with `consecutive: 1` (start-up cost) | {} | {} | |\n\
         | `curl -s -o /dev/null` x {ATTEMPTS}, one process each | {} | {} | {:.0} |",
        ms(gw_wall),
        ms(gw_cpu),
        rate,
        ms(base_wall),
        ms(base_cpu),
        ms(curl_wall),
        ms(curl_cpu),
        f64::from(ATTEMPTS) / curl_wall.as_secs_f64(),
    );
    println!(
        "CPU: curl-per-attempt / gwtest = {cpu_ratio:.1}x (target >= 20x); wall: {wall_ratio:.1}x"
    );
    println!(
        "gwtest: {rate:.0} attempts/s for the whole process, {net_rate:.0} attempts/s net of \
         start-up (target >= 2,000)"
    );
    let ok = cpu_ratio >= 20.0 && rate >= 2000.0;
    println!("targets {}", if ok { "met" } else { "MISSED" });
}
