//! The shipped suites at `-j 4` against a cluster whose namespace controller takes as long as
//! a real one (~5 s per namespace): `gwtest sandbox --namespace-termination 5s` in its own
//! process (API server and demo gateway, spans sent to the run's receiver), and `gwtest run
//! suites -j 4` against it, from the repository (its gwtest.toml leaves the `lab` suites out).
//! Wall time of the whole run, nothing left behind when it exits (checked with
//! `gwtest gc --dry-run` at once), and the same with no termination delay for comparison.
//! Target: <= 10 s with the 5 s namespace controller.
//!
//! Run: `cargo bench --bench cleanup` (results go in docs/benchmarks.md).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Running, gwtest};

const ROUNDS: usize = 3;
const REPO: &str = env!("CARGO_MANIFEST_DIR");

struct Sandbox {
    running: Option<Running>,
    kubeconfig: String,
    otlp: String,
}

impl Sandbox {
    fn start(dir: &std::path::Path, termination: &str) -> Sandbox {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let otlp = format!("127.0.0.1:{port}");
        let kc = dir.join(format!("kubeconfig-{termination}"));
        let running = gwtest(&[
            "sandbox",
            "--kubeconfig-out",
            &kc.display().to_string(),
            "--namespace-termination",
            termination,
            "--otlp-export",
            &format!("http://{otlp}"),
        ])
        .hang_after(Duration::from_secs(3600))
        .spawn();
        let ready = support::eventually(Duration::from_secs(60), || {
            running.stdout_so_far().contains("ready kubeconfig=")
        });
        assert!(
            ready,
            "the sandbox did not start: {}",
            running.stdout_so_far()
        );
        Sandbox {
            running: Some(running),
            kubeconfig: kc.display().to_string(),
            otlp,
        }
    }

    /// One run of `paths`: its wall time, or what failed. Either way it must leave nothing
    /// behind.
    fn run(&self, paths: &[&str], expect_tests: usize) -> Result<Duration, String> {
        let mut args = vec!["run"];
        args.extend(paths);
        args.extend([
            "-j",
            "4",
            "--kubeconfig",
            &self.kubeconfig,
            "--otlp-listen",
            &self.otlp,
        ]);
        let t0 = Instant::now();
        let out = gwtest(&args).cwd(std::path::Path::new(REPO)).run();
        let wall = t0.elapsed();
        let failed = match out.code {
            Some(0) => {
                out.assert_counts(expect_tests, 0, 0, 0);
                None
            }
            // A test failed (the shipped suites' own flakiness): reported, not timed.
            Some(1) => Some(
                out.stdout
                    .lines()
                    .filter(|l| l.starts_with("FAIL"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => panic!("the run did not finish normally\n{}", out.dump()),
        };
        let gc = gwtest(&["gc", "--dry-run", "--kubeconfig", &self.kubeconfig]).run();
        gc.assert_exit(0);
        assert!(
            gc.stdout.contains("0 objects would be deleted"),
            "left behind after the run:\n{}\n{}",
            gc.dump(),
            out.dump()
        );
        match failed {
            None => Ok(wall),
            Some(f) => Err(f),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.signal(libc::SIGINT);
            let _ = r.wait();
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let dir = support::Workspace::new("bench-cleanup");
    if quick {
        let sb = Sandbox::start(dir.path(), "1s");
        sb.run(&["suites/discovery"], 2)
            .expect("the discovery suite passes");
        println!("cleanup bench: smoke run ok (use `cargo bench --bench cleanup` for numbers)");
        return;
    }
    let mut rows = Vec::new();
    for termination in ["5s", "0s"] {
        let sb = Sandbox::start(dir.path(), termination);
        // Warm the binary, the page cache and the demo gateway's first reconcile.
        let _ = sb.run(&["suites/discovery"], 2);
        let mut walls = Vec::new();
        let mut failures = Vec::new();
        while walls.len() < ROUNDS && failures.len() < ROUNDS {
            match sb.run(&["suites"], 11) {
                Ok(w) => walls.push(w),
                Err(f) => {
                    eprintln!("a run failed ({termination}): {f}");
                    failures.push(f);
                }
            }
        }
        assert!(!walls.is_empty(), "every run failed: {failures:?}");
        walls.sort();
        rows.push((termination, walls, failures));
    }
    println!("shipped suites (11 tests), -j 4, nothing left after each run:");
    println!("| namespace termination | runs | median | min | max | failed runs |");
    println!("|---|---|---|---|---|---|");
    for (t, w, f) in &rows {
        println!(
            "| {t} | {} | {} | {} | {} | {} |",
            w.len(),
            secs(w[w.len() / 2]),
            secs(w[0]),
            secs(w[w.len() - 1]),
            if f.is_empty() {
                "0".to_string()
            } else {
                format!("{}: {}", f.len(), f.join(" / "))
            }
        );
    }
}
