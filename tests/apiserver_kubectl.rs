//! The real `kubectl` against the embedded API server, through the kubeconfig it writes (TLS,
//! bearer token), following the calls recorded in tests/golden/apiserver/kubectl-calls.txt:
//! get/create namespaces (kubectl sends protobuf for `create <kind>`), client-side apply,
//! get -o json / jsonpath, CRD apply and `wait --for=condition=Established`, server-side
//! apply, status patches, `wait` for a condition a background writer sets and for a jsonpath
//! value, namespace deletion with `--wait`, CRD deletion.
//!
//! kubectl must be on PATH (or named by `$KUBECTL`): without it these tests fail (CI installs
//! it). Every kubectl call has `--request-timeout` and a process deadline. TLS only: kubectl
//! does not send bearer tokens over plain HTTP (kube-rs does; see apiserver_kube.rs).

mod support;

use std::time::{Duration, Instant};

use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use support::{KubectlRun, Workspace};

struct Kubectl {
    /// Its kubeconfig, cache and `$HOME`.
    ws: Workspace,
}

impl Kubectl {
    /// A TLS API server and a kubectl for it.
    async fn start(tag: &str) -> (ApiServer, Kubectl) {
        gwtest::install_crypto_provider();
        let server = ApiServer::start(ApiServerConfig::default())
            .await
            .expect("start");
        let ws = Workspace::new(&format!("kubectl-{tag}"));
        server
            .write_kubeconfig(&ws.path().join("kubeconfig"))
            .expect("kubeconfig");
        (server, Kubectl { ws })
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.ws.path().join(name);
        std::fs::write(&p, content).expect("write manifest");
        p.to_string_lossy().into_owned()
    }

    async fn run(&self, args: &[&str]) -> KubectlRun {
        let cache = format!("--cache-dir={}", self.ws.path().join("cache").display());
        let args: Vec<&str> = args.iter().copied().chain([cache.as_str()]).collect();
        support::kubectl(self.ws.path(), &self.ws.path().join("kubeconfig"), &args).await
    }

    /// The client's minor version (`32` for v1.32.4).
    async fn minor(&self) -> u32 {
        let out = self.ok(&["version", "--client", "-o", "json"]).await;
        let v: Value = serde_json::from_str(&out).expect("kubectl version JSON");
        let minor = v["clientVersion"]["minor"].as_str().unwrap_or("0");
        minor
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0)
    }

    /// Runs and requires success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(
            r.ok,
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// A field of gizmo `name` in kcrec, by jsonpath.
    async fn gizmo_field(&self, name: &str, path: &str) -> String {
        let output = format!("jsonpath={path}");
        self.ok(&["-n", "kcrec", "get", "gizmo", name, "-o", &output])
            .await
    }

    /// Runs, requires success and `want` in stdout.
    async fn says(&self, args: &[&str], want: &str) {
        let out = self.ok(args).await;
        assert!(
            out.contains(want),
            "kubectl {args:?}: no {want:?} in:\n{out}"
        );
    }

    /// Runs, requires success; stdout as JSON.
    async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}: {out}"))
    }

    /// Runs what kubectl 1.`minor` is too old for: it must refuse, saying `error`.
    async fn too_old(&self, args: &[&str], minor: u32, error: &str, note: &str) {
        let r = self.run(args).await;
        assert!(
            !r.ok && r.stderr.contains(error),
            "kubectl 1.{minor}: {}",
            r.stderr
        );
        eprintln!("note: kubectl 1.{minor} {note}");
    }

    /// Runs and requires a NotFound failure.
    async fn not_found(&self, args: &[&str]) {
        let r = self.run(args).await;
        assert!(!r.ok && r.stderr.contains("NotFound"), "{}", r.stderr);
    }
}

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  labels: {app: a}\ndata:\n  k: v\n";
const CM2: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  labels: {app: a}\ndata:\n  k: v2\n  extra: x\n";
const CRD: &str = include_str!("data/gizmo-crd.yaml");
const GIZMOS: &str = "apiVersion: acc.gwtest.test/v1\nkind: Gizmo\nmetadata: {name: g1}\nspec: {size: 1}\n---\napiVersion: acc.gwtest.test/v1\nkind: Gizmo\nmetadata: {name: g2}\nspec: {size: 2}\n";

/// Writes gizmo `name`'s status with kube-rs.
async fn patch_gizmo_status(client: Client, name: &str, status: Value) {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("acc.gwtest.test", "v1", "Gizmo"),
        "gizmos",
    );
    Api::<DynamicObject>::namespaced_with(client, "kcrec", &ar)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("status patch");
}

async fn session(server: &ApiServer, k: &Kubectl) {
    // Discovery, listing, creating a namespace (protobuf body), and a ConfigMap the same way.
    let ns = k.ok(&["get", "ns"]).await;
    assert!(ns.lines().next().unwrap_or("").starts_with("NAME"), "{ns}");
    assert!(ns.contains("default") && ns.contains("kube-system"), "{ns}");
    k.says(&["create", "ns", "kcrec"], "namespace/kcrec created")
        .await;
    k.says(
        &[
            "-n",
            "kcrec",
            "create",
            "configmap",
            "lit",
            "--from-literal=a=b",
        ],
        "configmap/lit created",
    )
    .await;
    let lit = k
        .json(&["-n", "kcrec", "get", "cm", "lit", "-o", "json"])
        .await;
    assert_eq!(lit["data"], json!({"a": "b"}));

    // Client-side apply: create, change, no change.
    let cm = k.file("cm.yaml", CM);
    k.says(
        &["-n", "kcrec", "apply", "-f", &cm],
        "configmap/cm1 created",
    )
    .await;
    let cm2 = k.file("cm2.yaml", CM2);
    k.says(
        &["-n", "kcrec", "apply", "-f", &cm2],
        "configmap/cm1 configured",
    )
    .await;
    k.says(
        &["-n", "kcrec", "apply", "-f", &cm2],
        "configmap/cm1 unchanged",
    )
    .await;
    let got = k
        .json(&["-n", "kcrec", "get", "cm", "cm1", "-o", "json"])
        .await;
    assert_eq!(got["data"], json!({"k": "v2", "extra": "x"}));
    assert!(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let listed = k.ok(&["get", "cm", "-A", "-l", "app=a"]).await;
    assert!(
        listed.contains("kcrec") && listed.contains("cm1") && !listed.contains("lit"),
        "{listed}"
    );

    // A CRD, established; then its kind through server-side apply and its short name.
    let crd = k.file("crd.yaml", CRD);
    k.says(&["apply", "-f", &crd], "gizmos.acc.gwtest.test created")
        .await;
    k.says(
        &[
            "wait",
            "--for=condition=Established",
            "crd/gizmos.acc.gwtest.test",
            "--timeout=20s",
        ],
        "condition met",
    )
    .await;
    let gz = k.file("gizmos.yaml", GIZMOS);
    k.says(
        &["-n", "kcrec", "apply", "--server-side", "-f", &gz],
        "gizmo.acc.gwtest.test/g1 serverside-applied",
    )
    .await;
    let short = k.ok(&["-n", "kcrec", "get", "gz"]).await;
    assert!(short.contains("g1") && short.contains("g2"), "{short}");
    // Client-side apply of a custom resource, then of a change (a JSON merge patch).
    let g3 = k.file("g3.yaml", "apiVersion: acc.gwtest.test/v1\nkind: Gizmo\nmetadata: {name: g3}\nspec: {size: 3, keep: x}\n");
    k.says(
        &["-n", "kcrec", "apply", "-f", &g3],
        "gizmo.acc.gwtest.test/g3 created",
    )
    .await;
    let g3b = k.file(
        "g3b.yaml",
        "apiVersion: acc.gwtest.test/v1\nkind: Gizmo\nmetadata: {name: g3}\nspec: {size: 4}\n",
    );
    k.says(
        &["-n", "kcrec", "apply", "-f", &g3b],
        "gizmo.acc.gwtest.test/g3 configured",
    )
    .await;
    let spec = k.gizmo_field("g3", "{.spec}").await;
    assert_eq!(
        serde_json::from_str::<Value>(&spec).unwrap(),
        json!({"size": 4}),
        "keep was dropped by the 3-way merge"
    );
    let generation = k.gizmo_field("g3", "{.metadata.generation}").await;
    assert_eq!(generation, "2");

    // Status through the subresource; waits on a jsonpath. Older kubectl (Debian's 1.20) lacks
    // both flags: then it must say so itself, and the server side is driven another way.
    let minor = k.minor().await;
    let status_patch = [
        "-n",
        "kcrec",
        "patch",
        "gizmo",
        "g1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"x":"y","conditions":[{"type":"Ready","status":"True","reason":"Ok","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    ];
    if minor >= 24 {
        let patched = k.ok(&status_patch).await;
        assert!(
            patched.contains("gizmo.acc.gwtest.test/g1 patched"),
            "{patched}"
        );
    } else {
        k.too_old(
            &status_patch,
            minor,
            "unknown flag: --subresource",
            "has no `patch --subresource` (1.24+); writing the status with kube-rs",
        )
        .await;
        let status = json!({"status": {"x": "y", "conditions": [{"type": "Ready", "status": "True", "reason": "Ok",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        let client = Client::try_from(server.kube_config()).expect("client");
        patch_gizmo_status(client, "g1", status).await;
    }
    for (path, want) in [("{.status.x}", "y"), ("{.spec.size}", "1")] {
        let cond = format!("--for=jsonpath={path}={want}");
        let wait = [
            "-n",
            "kcrec",
            "wait",
            cond.as_str(),
            "gizmo/g1",
            "--timeout=20s",
        ];
        if minor >= 23 {
            k.ok(&wait).await;
        } else {
            k.too_old(
                &wait,
                minor,
                "unrecognized condition",
                "has no `wait --for=jsonpath` (1.23+); reading the value with -o jsonpath",
            )
            .await;
            assert_eq!(k.gizmo_field("g1", path).await, want);
        }
    }
    let generation = k.gizmo_field("g1", "{.metadata.generation}").await;
    assert_eq!(generation, "1", "the status patch left generation alone");

    // wait --for=condition=Ready on an object whose status a background writer sets later.
    let client = Client::try_from(server.kube_config()).expect("client");
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        patch_gizmo_status(client, "g2", status).await;
    });
    let t0 = Instant::now();
    k.says(
        &[
            "-n",
            "kcrec",
            "wait",
            "--for=condition=Ready",
            "gizmo/g2",
            "--timeout=20s",
        ],
        "condition met",
    )
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "kubectl waited for the background writer"
    );
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("writer finished")
        .expect("writer ok");

    // Deleting the namespace waits until it is gone; then the CRD.
    k.says(
        &["delete", "ns", "kcrec", "--wait", "--timeout=60s"],
        "namespace \"kcrec\" deleted",
    )
    .await;
    k.not_found(&["get", "ns", "kcrec"]).await;
    k.says(&["delete", "crd", "gizmos.acc.gwtest.test"], "deleted")
        .await;
    k.not_found(&["get", "crd", "gizmos.acc.gwtest.test"]).await;
    let no_kind = k.run(&["-n", "default", "get", "gizmos"]).await;
    assert!(
        !no_kind.ok,
        "the kind went with its CRD: {}",
        no_kind.stdout
    );
}

#[tokio::test]
async fn kubectl_session_over_tls() {
    let (server, k) = Kubectl::start("tls").await;
    tokio::time::timeout(Duration::from_secs(240), session(&server, &k))
        .await
        .expect("the session finished in time");
    server.shutdown().await;
}

#[tokio::test]
async fn kubectl_with_a_wrong_token_is_unauthorized() {
    let (server, k) = Kubectl::start("token").await;
    tokio::time::timeout(Duration::from_secs(60), async {
        let out = k.ok(&["get", "ns", "-o", "name"]).await;
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "namespace/default",
                "namespace/kube-node-lease",
                "namespace/kube-public",
                "namespace/kube-system"
            ]
        );
        let kc = std::fs::read_to_string(k.ws.path().join("kubeconfig"))
            .unwrap()
            .replace(server.token(), "wrong");
        std::fs::write(k.ws.path().join("kubeconfig"), kc).unwrap();
        let denied = k.run(&["get", "ns"]).await;
        assert!(!denied.ok, "{}", denied.stdout);
        assert!(
            denied.stderr.contains("provide credentials") || denied.stderr.contains("Unauthorized"),
            "{}",
            denied.stderr
        );
    })
    .await
    .expect("finished in time");
    server.shutdown().await;
}
