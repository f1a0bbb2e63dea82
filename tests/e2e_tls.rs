//! `request` over TLS through the real binary: `insecure: true` must be explicit, `ca: FILE`
//! trusts a CA, and a certificate nobody trusts is a `tls` failure with a hint.

mod support;

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use support::{Workspace, failed_outcome, one_test, test_doc};

/// An HTTPS server on 127.0.0.1:0 answering `ok` on every path, on its own thread; returns
/// its address and the PEM of the CA that signed its certificate.
fn https_server() -> (SocketAddr, String) {
    gwtest::install_crypto_provider();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tls = gwtest_sandbox::apiserver::tls::generate().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((listener.local_addr().unwrap(), tls.ca_pem.clone()))
                .unwrap();
            let app = axum::Router::new().fallback(|| async { "ok" });
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (tls.acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that rejects the certificate ends the handshake: nothing to serve.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

#[test]
fn tls_needs_explicit_trust_insecure_or_a_ca_file() {
    let (addr, ca_pem) = https_server();
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let ws = Workspace::new("tls");
    ws.suite("s", "");
    ws.write("s/ca.pem", &ca_pem);
    let step = |extra: &str| {
        format!(
            "  - request:\n      url: {url}\n{extra}      expect: {{status: 200, body: {{equals: ok}}}}\n    consecutive: 1\n    timeout: 1s\n"
        )
    };
    ws.write(
        "s/insecure.test.yaml",
        &test_doc("insecure", "", &step("      insecure: true\n")),
    );
    ws.write(
        "s/ca.test.yaml",
        &test_doc("ca", "", &step("      ca: ca.pem\n")),
    );
    ws.write(
        "s/untrusted.test.yaml",
        &test_doc("untrusted", "", &step("")),
    );
    let out = ws.gwtest(&["run", "s"]).run();
    out.assert_exit(1);
    out.assert_counts(2, 0, 1, 0);
    let o = out.outcome("s/untrusted");
    o.line(r"^  \d+ attempts? in \d\.\ds: \d+ TLS failed; last: .*\[tls\]$");
    o.line(r"^  hint: TLS failed: give the gateway's CA with `ca: FILE` \(or `insecure: true`\)$");
    o.line(r"^    curl -sS -i --max-time 10 https://127\.0\.0\.1:\d+/$");
    // The reproduction carries the same trust settings as the step.
    let ws2 = one_test(
        "tls-repro",
        "",
        "",
        &format!(
            "  - request:\n      url: {url}nope\n      insecure: true\n      expect: {{status: 404}}\n    consecutive: 1\n    timeout: 500ms\n"
        ),
    );
    failed_outcome(&ws2).line(r"^    curl -sS -i -k --max-time 10 https://127\.0\.0\.1:\d+/nope$");
}
