//! The shipped suites through the real binary against the sandbox: the main job passes, and
//! each failure story of SCENARIOS.md (suites/lab, reproduced with the demo gateway's fault
//! switches) is caught and explained well enough that nobody needs to rerun it.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    wall: Duration,
}

/// One sandbox run at a time in this process. `cargo test` runs a binary's tests in parallel
/// threads, so without this the main job (-j 4) and the lab stories (-j 6) — two sandboxes,
/// ten tests at once — load the machine exactly while S2 measures its attempt timeouts
/// (nextest gives each test its own process, and these never share one).
static SANDBOX_RUN: Mutex<()> = Mutex::new(());

/// Run gwtest in the repository (so its gwtest.toml applies), plain output, under a deadline;
/// its output is read as it comes (a full pipe would stall the run).
fn gwtest(args: &[&str], deadline: Duration) -> Out {
    let _turn = SANDBOX_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gwtest"))
        .args(args)
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gwtest {args:?} overran {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Out {
        code,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        wall: start.elapsed(),
    }
}

impl Out {
    /// The block printed for one test: its result line and the indented lines after it.
    fn block(&self, id: &str) -> String {
        let mut lines = self.stdout.lines();
        let mut out = Vec::new();
        // `FAIL     9.9s  lab/s2 (cleanup 0.0s)`
        let head = regex::Regex::new(&format!(
            r"^(FAIL|PASS) +\d+\.\ds  {}( \(.*\))?$",
            regex::escape(id)
        ))
        .unwrap();
        while let Some(l) = lines.next() {
            if head.is_match(l) {
                out.push(l.to_string());
                for l in lines.by_ref() {
                    if !l.starts_with("  ") {
                        break;
                    }
                    out.push(l.to_string());
                }
                return out.join("\n");
            }
        }
        panic!("no result for {id} in:\n{}\n{}", self.stdout, self.stderr);
    }

    fn expect_line(&self, id: &str, re: &str) {
        let b = self.block(id);
        let r = regex::Regex::new(&format!("(?m){re}")).unwrap();
        assert!(r.is_match(&b), "no line matches /{re}/ in:\n{b}");
    }
}

#[test]
fn the_main_job_passes_on_the_sandbox() {
    let out = gwtest(&["run", "--sandbox", "suites"], Duration::from_secs(240));
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(" passed, 0 flaky, 0 failed, 0 skipped"),
        "{}",
        out.stdout
    );
    // The lab stories are left out by the repository's gwtest.toml.
    assert!(!out.stdout.contains("lab/"), "{}", out.stdout);
}

#[test]
fn every_failure_story_is_caught_and_explained() {
    let out = gwtest(
        &[
            "run",
            "--sandbox",
            "suites/lab",
            "--label",
            "lab",
            "-j",
            "6",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("6 tests: 1 passed, 0 flaky, 5 failed, 0 skipped"),
        "{}",
        out.stdout
    );

    // S1: status from a previous same-named object: not "timed out", but "no status for its
    // generation", with the object's uid and creation time.
    let s1 = "lab-s1/s1-example-svc-again";
    out.expect_line(s1, r#"^  step 2 "upstream accepted" \(assert\) at suites/lab/s1-stale-status/2-again\.test\.yaml:6:5$"#);
    out.expect_line(
        s1,
        r"; last: Upstream example-svc in gwtest-lab-s1 has no status for its generation 1 \(uid [0-9a-f-]{36}, created \d{4}-\d\d-\d\dT[0-9:]+Z\): nothing has reported on this object \[condition\]$",
    );

    // S2: an attempt timeout too tight: every attempt timed out after 3s, and the hint.
    let s2 = "lab/s2-tight-attempt-timeout";
    out.expect_line(s2, r"^  \d+ attempts in 10\.\ds: \d+ timed out after 3s \(attempt-timeout\); last: timed out after 3s \(attempt-timeout\)");
    out.expect_line(s2, r"^  hint: most attempts ran into the attempt-timeout \(3s\): if the gateway is just slow here, raise `attempt-timeout` or run with --timeout-scale; try the curl command by hand$");
    out.expect_line(s2, r"^    curl -sS -i -H 'host: s2-tight-attempt-timeout\.lab\.example' --max-time 3 http://127\.0\.0\.1:\d+/example$");

    // S3: one route does not come back: the failure names it, with its last status.
    let s3 = "lab/s3-route-does-not-come-back";
    out.expect_line(s3, r#"^  step 9 "route b serves again" \(request\) at suites/lab/s3-route-does-not-come-back\.test\.yaml:43:5$"#);
    out.expect_line(s3, r#"^  \d+ attempts in 5\.\ds: \d+ got status 404; last: status 404, body "no route matched" \[status\]$"#);
    out.expect_line(s3, r"✓ route a serves again");

    // S4: a hang is a test-timeout naming the step and the attempt still waiting; the run
    // ends on time. (The step's share of the 6s depends on how fast the steps before it were.)
    let s4 = "lab/s4-gateway-hangs";
    out.expect_line(s4, r#"^  step 5 "the route answers" \(request\)"#);
    out.expect_line(
        s4,
        r"^  test-timeout \(6s\) reached during this step: no attempt finished in [1-6]\.\ds; cut off after [1-6]\.\ds: GET http://127\.0\.0\.1:\d+/example \(attempt-timeout 30s, no response yet\)$",
    );
    assert!(
        out.wall < Duration::from_secs(40),
        "the run took {:?}",
        out.wall
    );
    assert!(!out.stdout.contains("cleanup failed"), "{}", out.stdout);

    // S5: right once, then wrong: hold catches the flip and says how long it held (the
    // fault reverts the route 1s after it first serves; a loaded machine notices later).
    let s5 = "lab/s5-value-flips-back";
    out.expect_line(
        s5,
        r#"^  held [12]\.\ds of 5s, then: status 404, body "no route matched" \[status\]$"#,
    );
}
