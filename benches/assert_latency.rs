//! From the moment a status write is accepted (its PATCH returned) to the moment an `assert`
//! on that status passes, against the embedded API server, for:
//!
//! - gwtest: the real `assert` step (`gwtest::steps::run`: watch, retry engine, GET, check)
//!   driven through the library with a `RunContext` connected like `gwtest run` connects, with
//!   the built-in retry policy (interval 100ms doubling to 2s). Each sample starts the step
//!   on a new object with no status, lets it wait 150–650ms (so it sits in a backoff sleep at
//!   a random phase), then writes `Accepted=True`.
//! - a poller that GETs every 100ms (what the Gateway API conformance suite does);
//! - `kubectl wait --for=condition=Accepted`, started when the write returned (process start
//!   included: what a shell step pays), and started before the write (its watch only).
//!
//! Targets for gwtest: p50 <= 10ms, p99 <= 50ms.
//! Run: `cargo bench --bench assert_latency` (results go in docs/benchmarks.md). kubectl is
//! `$KUBECTL` or the one on PATH; without one its rows say so.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gwtest::cluster::Cluster;
use gwtest::engine::RunContext;
use gwtest::engine::events::{EventSink, TestKey};
use gwtest::engine::retry::{Limits, Policy};
use gwtest::steps::{StepCtx, TestState};
use gwtest::suite::model::Step;
use gwtest::suite::spanned::Loc;
use gwtest::suite::vars::Vars;
use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

const NS: &str = "bench";
/// Samples for gwtest and the poller, for each kubectl row, and warm-up rounds; without
/// `--bench` (`cargo test --benches`) a few of each, as a smoke test.
const SAMPLES: [usize; 2] = [200, 5];
const KUBECTL_SAMPLES: [usize; 2] = [25, 2];
const WARMUP: [usize; 2] = [10, 1];

fn upstreams(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("demo.gwtest.dev", "v1alpha1", "Upstream"),
        "upstreams",
    );
    Api::namespaced_with(client.clone(), NS, &ar)
}

async fn create(api: &Api<DynamicObject>, name: &str) {
    let obj = json!({"apiVersion": "demo.gwtest.dev/v1alpha1", "kind": "Upstream",
        "metadata": {"name": name, "namespace": NS}, "spec": {"port": 80}});
    api.patch(
        name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("create upstream");
}

/// Write `Accepted=True`; returns when the server accepted it.
async fn accept(api: &Api<DynamicObject>, name: &str) -> Instant {
    accept_timed(api, name).await.1
}

/// Write `Accepted=True`; returns when the PATCH was sent and when the server accepted it.
async fn accept_timed(api: &Api<DynamicObject>, name: &str) -> (Instant, Instant) {
    let sent = Instant::now();
    let status = json!({"status": {"conditions": [{"type": "Accepted", "status": "True",
        "reason": "Bench", "message": "", "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status write");
    (sent, Instant::now())
}

fn accepted(o: &Value) -> bool {
    let generation = o.pointer("/metadata/generation").and_then(Value::as_i64);
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Accepted"
                && c["status"] == "True"
                && c["observedGeneration"].as_i64() == generation
        })
}

/// Somewhere in 150–650ms: the waiter sits in a backoff sleep at a random phase.
fn settle() -> Duration {
    Duration::from_millis(150 + fastrand::u64(..500))
}

/// Latency samples in ms; negative when the waiter saw the status before the PATCH answer.
#[derive(Default)]
struct Samples {
    ms: Vec<f64>,
}

impl Samples {
    fn add(&mut self, accepted: Instant, seen: Instant) {
        let ms = if seen >= accepted {
            (seen - accepted).as_secs_f64() * 1e3
        } else {
            -((accepted - seen).as_secs_f64() * 1e3)
        };
        self.ms.push(ms);
    }

    fn pct(&self, p: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i]
    }

    fn row(&self, what: &str) -> String {
        if self.ms.is_empty() {
            return format!("| {what} | 0 | – | – | – | – | – |");
        }
        let mean = self.ms.iter().sum::<f64>() / self.ms.len() as f64;
        format!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.ms.len(),
            self.ms.iter().cloned().fold(f64::MAX, f64::min),
            self.pct(50.0),
            self.pct(99.0),
            self.ms.iter().cloned().fold(f64::MIN, f64::max),
            mean
        )
    }
}

/// One gwtest sample: the `assert` step on `name`, started before the write.
async fn gwtest_sample(
    ctx: &Arc<RunContext>,
    api: &Api<DynamicObject>,
    name: &str,
) -> (Instant, Instant, Instant) {
    create(api, name).await;
    let step: Step = serde_saphyr::from_str(&format!(
        "assert:\n  resource: {{apiVersion: demo.gwtest.dev/v1alpha1, kind: Upstream, name: {name}}}\n  conditions: [{{type: Accepted, status: \"True\"}}]\n"
    ))
    .expect("step parses");
    let ctx2 = ctx.clone();
    let waiter = tokio::spawn(async move {
        let id = Arc::new(TestKey {
            suite: "bench".into(),
            name: "assert".into(),
            file: "bench.test.yaml".into(),
            loc: Loc::UNKNOWN,
            repeat: 0,
        });
        let mut vars = Vars::new();
        vars.set("namespace", NS);
        let mut state = TestState {
            namespace: Some(NS.into()),
            ..TestState::default()
        };
        // The built-in defaults, as `gwtest run` gives an assert step.
        let policy = Policy {
            timeout: Duration::from_secs(30),
            interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(2),
            consecutive: 1,
            hold: None,
        };
        let limits = Limits::starting_now(
            policy.timeout,
            Duration::from_secs(300),
            ctx2.cancel.clone(),
        );
        let events = EventSink::discard();
        let mut sctx = StepCtx {
            test: &id,
            index: 0,
            step: &step,
            loc: Loc::UNKNOWN,
            file: Path::new("bench.test.yaml"),
            vars: &mut vars,
            policy,
            attempt_timeout: Duration::from_secs(10),
            limits,
            run: &ctx2,
            state: &mut state,
            events: &events,
        };
        let r = gwtest::steps::run(&mut sctx).await;
        let at = Instant::now();
        assert!(r.failure.is_none(), "the assert failed: {:?}", r.failure);
        at
    });
    tokio::time::sleep(settle()).await;
    // Still waiting, or the sample measures nothing.
    assert!(
        !waiter.is_finished(),
        "the assert passed before the status write"
    );
    let (sent, at) = accept_timed(api, name).await;
    (sent, at, waiter.await.expect("assert task"))
}

/// One poller sample: GET every 100ms until Accepted.
async fn poller_sample(api: &Api<DynamicObject>, name: &str) -> (Instant, Instant) {
    create(api, name).await;
    let api2 = api.clone();
    let n = name.to_owned();
    let waiter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let o = serde_json::to_value(api2.get(&n).await.expect("get")).unwrap();
            if accepted(&o) {
                return Instant::now();
            }
        }
    });
    tokio::time::sleep(settle()).await;
    assert!(
        !waiter.is_finished(),
        "the poller passed before the status write"
    );
    let at = accept(api, name).await;
    (at, waiter.await.expect("poller task"))
}

fn kubectl_wait(bin: &Path, kubeconfig: &Path, home: &Path, name: &str) -> tokio::process::Child {
    tokio::process::Command::new(bin)
        .args([
            "wait",
            "--for=condition=Accepted",
            &format!("upstream/{name}"),
            "-n",
            NS,
            "--timeout=30s",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kubectl")
}

async fn exited_ok(mut child: tokio::process::Child) -> Instant {
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("kubectl wait finished")
        .expect("kubectl wait ran");
    let at = Instant::now();
    assert!(status.success(), "kubectl wait failed: {status}");
    at
}

fn main() {
    gwtest::install_crypto_provider();
    let mode = usize::from(!std::env::args().any(|a| a == "--bench"));
    let (samples, kubectl_samples, warmup) = (SAMPLES[mode], KUBECTL_SAMPLES[mode], WARMUP[mode]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = ApiServer::start(ApiServerConfig::default())
            .await
            .expect("API server");
        for obj in gwtest_sandbox::parse_manifests(gwtest_sandbox::DEMO_CRDS).unwrap() {
            server.apply_manifest(obj).unwrap();
        }
        server
            .apply_manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .unwrap();
        let ws = support::Workspace::new("bench-latency");
        let dir = ws.path();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();

        // gwtest connects as `gwtest run` does; the writer is a separate client (a controller).
        let cluster: Cluster = gwtest::cluster::connect::connect_with(
            server.kube_config(),
            Some(kubeconfig.clone()),
            Duration::from_secs(10),
        )
        .await
        .expect("connect");
        let config = gwtest::config::RunConfig::resolve(
            &gwtest::cli::RunArgs::default(),
            Path::new("/"),
        )
        .expect("default config");
        let mut ctx = RunContext::local(config, EventSink::discard());
        ctx.cluster = Some(Arc::new(cluster));
        let ctx = Arc::new(ctx);
        let writer = Client::try_from(server.kube_config()).expect("client");
        let api = upstreams(&writer);

        for i in 0..warmup {
            gwtest_sample(&ctx, &api, &format!("warm-g{i}")).await;
            poller_sample(&api, &format!("warm-p{i}")).await;
        }

        let mut gw = Samples::default();
        let mut gw_sent = Samples::default();
        let mut poll = Samples::default();
        // Interleaved, so both see the same machine load.
        for i in 0..samples {
            let (sent, a, s) = gwtest_sample(&ctx, &api, &format!("g{i}")).await;
            gw.add(a, s);
            gw_sent.add(sent, s);
            let (a, s) = poller_sample(&api, &format!("p{i}")).await;
            poll.add(a, s);
        }

        let mut kc_after = Samples::default();
        let mut kc_before = Samples::default();
        let kubectl = support::find_kubectl();
        if let Some(bin) = &kubectl {
            for i in 0..kubectl_samples {
                // Started when the write returned: process start, discovery, GET.
                let name = format!("ka{i}");
                create(&api, &name).await;
                tokio::time::sleep(settle()).await;
                let at = accept(&api, &name).await;
                let seen = exited_ok(kubectl_wait(bin, &kubeconfig, dir, &name)).await;
                kc_after.add(at, seen);

                // Started well before the write: its watch only.
                let name = format!("kb{i}");
                create(&api, &name).await;
                let child = kubectl_wait(bin, &kubeconfig, dir, &name);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let at = accept(&api, &name).await;
                kc_before.add(at, exited_ok(child).await);
            }
        }

        println!("assert latency: status write accepted -> assertion passes (ms)");
        println!(
            "{samples} samples each for gwtest and the poller (interleaved), {kubectl_samples} per kubectl row; \
             waiter started 150-650ms before the write"
        );
        println!();
        println!("| waiter | samples | min | p50 | p99 | max | mean |");
        println!("|---|---|---|---|---|---|---|");
        println!("{}", gw.row("gwtest `assert` (watch + retry engine)"));
        println!(
            "{}",
            gw_sent.row("gwtest `assert`, from when the PATCH was sent")
        );
        println!("{}", poll.row("poller, GET every 100ms"));
        let kc = match &kubectl {
            Some(b) => {
                let v = std::process::Command::new(b)
                    .args(["version", "--client", "-o", "json"])
                    .output()
                    .ok()
                    .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                    .and_then(|v| v["clientVersion"]["gitVersion"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "?".into());
                format!("kubectl {v}")
            }
            None => "kubectl (not found: not measured)".into(),
        };
        println!(
            "{}",
            kc_after.row(&format!("`{kc} wait --for=condition`, started at the write"))
        );
        println!(
            "{}",
            kc_before.row(&format!("`{kc} wait --for=condition`, already waiting"))
        );
        let early = gw.ms.iter().filter(|m| **m < 0.0).count();
        println!();
        println!(
            "gwtest passed before the PATCH response reached the writer in {early} of {samples} samples \
             (negative values: the watch event and the PATCH response race on loopback)."
        );
        let (p50, p99) = (gw.pct(50.0), gw.pct(99.0));
        if mode == 1 {
            println!(
                "assert latency bench: smoke run ok (use `cargo bench --bench assert_latency` for numbers)"
            );
        } else {
            println!(
                "targets: gwtest p50 <= 10ms ({}), p99 <= 50ms ({})",
                if p50 <= 10.0 { "met" } else { "MISSED" },
                if p99 <= 50.0 { "met" } else { "MISSED" }
            );
        }
        server.shutdown().await;
    });
}
