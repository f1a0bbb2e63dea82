//! `gwtest validate` on a generated tree of 1,000 test files (20 suites of 50 files, each a
//! test with 14 steps covering every step kind, variables and captures).
//!
//! Measures the real thing: the `gwtest` binary cargo built for this bench (the bench
//! profile, i.e. release), as a child process. Wall time from spawn to exit; peak memory is
//! the child's maximum resident set size from `wait4(2)`.
//!
//! Then the shipped suites (`suites/`), whose fixtures and manifests are checked against the
//! official Gateway API CRDs (structural schema and CEL rules); then hostile input: files with
//! 40,000 unknown variable references, 100,000 unknown keys, and a 10 MB bad value — each must
//! be rejected (exit 2) in bounded time, memory and output.
//!
//! Run: `cargo bench --bench validate`. Target: < 1 s and < 100 MB, for each.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SUITES: usize = 20;
const FILES_PER_SUITE: usize = 50;
const RUNS: usize = 7;

fn test_file(suite: usize, n: usize) -> String {
    format!(
        r#"apiVersion: gwtest/v1alpha1
kind: Test
name: route-{suite}-{n}
description: Generated test {n} of suite {suite}
labels: [generated, "shard-{shard}"]
timeout: 2m
steps:
  - name: create the backend
    apply: backend.yaml
  - apply:
      manifest:
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {{name: "route-{n}", labels: {{app: web, test: "${{test}}"}}}}
        spec:
          parentRefs: [{{name: gw, namespace: gwtest-infra}}]
          hostnames: ["{n}.${{host}}"]
          rules:
            - matches: [{{path: {{type: PathPrefix, value: "/r{n}"}}}}]
              backendRefs: [{{name: backend, port: 8080}}]
  - name: route accepted
    assert:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: "route-{n}"}}
      conditions:
        - {{type: Accepted, status: "True"}}
        - {{type: ResolvedRefs, status: "True", reason: ResolvedRefs}}
      fields:
        spec: {{hostnames: ["{n}.${{host}}"]}}
      capture: {{route_uid: $.metadata.uid}}
    timeout: 30s
  - assert:
      resource: {{apiVersion: v1, kind: Pod, selector: "app=web,tier in (a,b),!legacy"}}
      count: 2
  - name: route answers
    request:
      method: GET
      url: "http://${{gateway}}/r{n}?uid=${{route_uid}}"
      headers: {{Host: "{n}.${{host}}", X-Test: "${{test}}"}}
      attempt-timeout: 3s
      expect:
        status: [200, 201]
        headers: {{content-type: application/json, x-id: {{matches: "^[a-f0-9-]+$"}}}}
        absent-headers: [x-debug]
        body: {{contains: backend}}
        json: {{"$.path": "/r{n}", "$.headers.host[0]": "{n}.${{host}}"}}
      capture: {{backend_pod: $.pod}}
    consecutive: 3
    hold: 2s
  - request:
      method: POST
      url: "http://${{gateway}}/echo"
      body: {{pod: "${{backend_pod}}", n: {n}}}
      expect: {{status: 200, json: {{"$.body.n": {n}}}}}
  - name: spans
    spans:
      trace: last-request
      service: demo-gateway
      expect:
        - {{name: "POST /echo", kind: server, attributes: {{http.response.status_code: 200}}, count: 1}}
        - {{name-matches: "^route ", parent: "POST /echo"}}
      absent: [error-vhost]
    timeout: 20s
  - patch:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: "route-{n}"}}
      merge: {{metadata: {{labels: {{tier: gold}}}}}}
  - exec:
      command: [kubectl, get, "httproute/route-{n}", -n, "${{namespace}}", -o, name]
      env: {{KUBECONFIG: "${{kubeconfig}}"}}
      expect: {{exit: 0, stdout: {{matches: "^httproute"}}}}
    interval: 500ms
  - delete:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: "route-{n}"}}
  - assert:
      resource: {{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, name: "route-{n}"}}
      absent: true
  - sleep: 100ms
  - pause: "look at route-{n} ($${{not a variable}})"
  - request:
      url: "http://${{gateway}}/r{n}"
      expect: {{status: 404}}
"#,
        shard = n % 4
    )
}

fn generate(root: &Path) -> usize {
    let mut steps = 0;
    for s in 0..SUITES {
        let dir = root.join(format!("suite-{s:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("suite.yaml"),
            format!(
                "apiVersion: gwtest/v1alpha1\nkind: Suite\nname: generated-{s}\nlabels: [bench]\n\
                 vars:\n  host: example.com\n  gateway:\n    from:\n      resource: {{apiVersion: \
                 gateway.networking.k8s.io/v1, kind: Gateway, namespace: gwtest-infra, name: gw}}\n      \
                 path: $.status.addresses[0].value\nfixtures: [backend.yaml]\ndefaults:\n  timeout: 20s\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("backend.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: backend\nspec:\n  ports: [{port: 8080}]\n",
        )
        .unwrap();
        for n in 0..FILES_PER_SUITE {
            let text = test_file(s, n);
            steps += text.matches("\n  - ").count();
            std::fs::write(dir.join(format!("route-{n:03}.test.yaml")), text).unwrap();
        }
    }
    steps
}

/// What one `gwtest validate` run cost.
struct Cost {
    wall: Duration,
    cpu: Duration,
    /// Peak RSS in KiB.
    rss: u64,
    stdout: String,
    /// Bytes written to stderr (error listings).
    stderr_bytes: usize,
}

/// What `runs` successful validations of one tree cost.
struct Runs {
    /// Sorted.
    walls: Vec<Duration>,
    /// Sorted.
    cpus: Vec<Duration>,
    /// Peak RSS in KiB, the largest of the runs.
    peak: u64,
    /// The last run's output.
    last: String,
}

fn repeat(root: &Path, runs: usize) -> Runs {
    let mut r = Runs {
        walls: Vec::new(),
        cpus: Vec::new(),
        peak: 0,
        last: String::new(),
    };
    for _ in 0..runs {
        let c = run(root, 0);
        r.walls.push(c.wall);
        r.cpus.push(c.cpu);
        r.peak = r.peak.max(c.rss);
        r.last = c.stdout;
    }
    r.walls.sort();
    r.cpus.sort();
    r
}

/// Run the binary, expecting `exit`; wall time, CPU time (user + system) and peak RSS from
/// wait4.
fn run(root: &Path, exit: i32) -> Cost {
    let start = Instant::now();
    // Reaped by wait4 below (which also gives the rusage), not by Child::wait.
    #[allow(clippy::zombie_processes)]
    let child = support::command(None)
        .args(["validate", root.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gwtest");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let mut stderr = child.stderr.expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut b);
        b
    });
    let mut status = 0;
    // SAFETY: plain wait4 on our own child, with valid pointers to locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(r, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let out = reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == exit,
        "gwtest validate: status {status}, expected exit {exit}: {out}{}",
        String::from_utf8_lossy(&err[..err.len().min(2000)])
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cost {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        rss: usage.ru_maxrss as u64,
        stdout: out,
        stderr_bytes: err.len(),
    }
}

/// A one-suite tree whose test file has `body` after `steps:`.
fn hostile_tree(root: &Path, steps: &str) -> u64 {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("suite.yaml"),
        "apiVersion: gwtest/v1alpha1\nkind: Suite\nname: hostile\n",
    )
    .unwrap();
    let text = format!("apiVersion: gwtest/v1alpha1\nkind: Test\nname: t\nsteps:\n{steps}");
    std::fs::write(root.join("t.test.yaml"), &text).unwrap();
    text.len() as u64
}

/// Short distinct variable names: a, b, …, aa, ab, …
fn short_name(mut i: usize) -> String {
    let mut s = String::new();
    loop {
        s.insert(0, (b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return s;
        }
        i -= 1;
    }
}

fn hostile(runs: usize) {
    let root = std::env::temp_dir().join(format!("gwtest-bench-hostile-{}", std::process::id()));
    let refs: String = (0..40_000)
        .map(|i| format!("${{{}}}", short_name(i)))
        .collect();
    let keys: String = (0..100_000).map(|i| format!("    k{i}: 1\n")).collect();
    let cases = [
        (
            "40,000 unknown variable references in one string",
            format!("  - request:\n      url: \"http://x/{refs}\"\n"),
        ),
        (
            "100,000 unknown keys in one step",
            format!("  - sleep: 1s\n{keys}"),
        ),
        (
            "one 10 MB invalid value",
            format!("  - sleep: {}\n", "x".repeat(10_000_000)),
        ),
    ];
    for (what, steps) in cases {
        let bytes = hostile_tree(&root, &steps);
        let mut costs: Vec<Cost> = (0..runs).map(|_| run(&root, 2)).collect();
        costs.sort_by_key(|c| c.wall);
        let median = &costs[costs.len() / 2];
        let peak_mb = costs.iter().map(|c| c.rss).max().unwrap_or(0) as f64 / 1024.0;
        println!(
            "hostile: {what} ({:.0} KB file), exit 2",
            bytes as f64 / 1024.0
        );
        println!(
            "  wall median {:.0} ms (cpu {:.0} ms), peak RSS {peak_mb:.1} MB, {} bytes of errors; \
             target < 1 s: {}; < 100 MB: {}",
            ms(median.wall),
            ms(median.cpu),
            median.stderr_bytes,
            if median.wall < Duration::from_secs(1) {
                "met"
            } else {
                "MISSED"
            },
            if peak_mb < 100.0 { "met" } else { "MISSED" },
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` run passes nothing: keep
    // that quick by doing a single run.
    let runs = if std::env::args().any(|a| a == "--bench") {
        RUNS
    } else {
        1
    };
    // GWTEST_BENCH_TREE=DIR keeps the generated tree there (to profile gwtest on it).
    let keep = std::env::var_os("GWTEST_BENCH_TREE").map(PathBuf::from);
    let root: PathBuf = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gwtest-bench-validate-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&root);
    let steps = generate(&root);
    let files = SUITES * FILES_PER_SUITE;
    let bytes: u64 = walk_size(&root);

    let Runs {
        walls,
        cpus,
        peak,
        last,
    } = repeat(&root, runs);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    let expected = format!("ok: {SUITES} suites, {files} tests, {steps} steps;");
    assert!(
        last.trim().starts_with(&expected),
        "unexpected validate output: {last}"
    );

    let median = walls[walls.len() / 2];
    let peak_mb = peak as f64 / 1024.0;
    println!(
        "validate: {files} test files ({steps} steps, {:.1} MB of YAML) in {SUITES} suites",
        bytes as f64 / 1e6
    );
    println!("  command: {} validate <tree>", support::BIN);
    println!(
        "  wall: min {:.0} ms, median {:.0} ms, max {:.0} ms over {runs} run(s)",
        ms(walls[0]),
        ms(median),
        ms(*walls.last().unwrap())
    );
    println!(
        "  cpu (user + system): median {:.0} ms; cores: {}",
        ms(cpus[cpus.len() / 2]),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("  peak RSS: {peak_mb:.1} MB");
    let ok_time = median < Duration::from_secs(1);
    let ok_mem = peak_mb < 100.0;
    println!(
        "  target < 1 s: {}; target < 100 MB: {}",
        if ok_time { "met" } else { "MISSED" },
        if ok_mem { "met" } else { "MISSED" }
    );

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let Runs {
        walls, peak, last, ..
    } = repeat(&shipped, runs);
    assert!(last.starts_with("ok: "), "{last}");
    println!("validate: the shipped suites, with the Gateway API CRDs' schemas and CEL rules");
    println!("  command: {} validate suites", support::BIN);
    println!("  output: {}", last.trim());
    println!(
        "  wall: min {:.0} ms, median {:.0} ms, max {:.0} ms over {runs} run(s); peak RSS {:.1} MB",
        ms(walls[0]),
        ms(walls[walls.len() / 2]),
        ms(*walls.last().unwrap()),
        peak as f64 / 1024.0
    );
    hostile(runs);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn walk_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
