//! The embedded API server as the raw-HTTP tests (golden replay, CRD validation) use it.

use std::time::Duration;

use gwtest_sandbox::apiserver::{ApiServer, ApiServerConfig};

/// A plain-HTTP API server (TLS is covered by the kube-rs and kubectl tests) and an HTTP
/// client for it.
pub async fn plain_http() -> (ApiServer, reqwest::Client) {
    let server = ApiServer::start(ApiServerConfig {
        tls: false,
        ..Default::default()
    })
    .await
    .expect("start");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    (server, http)
}
