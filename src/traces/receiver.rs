//! The embedded OTLP receiver: OTLP/gRPC (TraceService, tonic) and OTLP/HTTP (`POST
//! /v1/traces`, protobuf or JSON bodies), gzip accepted on both, every span into the run's
//! span store. Standard OTLP exporters work against it unchanged.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

use super::store::{Ingested, SpanStore};

/// The largest request accepted, compressed or not (OTLP exporters batch a few MiB at most).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The receiver could not start: the lead maps this to exit 3 (infrastructure).
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("invalid {what} listen address {addr:?}: {reason}")]
    Invalid {
        what: &'static str,
        addr: String,
        reason: String,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl BindError {
    /// The address as given.
    pub fn addr(&self) -> &str {
        match self {
            BindError::Invalid { addr, .. } | BindError::Bind { addr, .. } => addr,
        }
    }
}

/// A running receiver. Dropping it stops the servers (without waiting).
pub struct Receiver {
    grpc: SocketAddr,
    http: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// Bind both listeners and start serving into `store`. Addresses are `HOST:PORT`
    /// (`127.0.0.1:0` picks a free port). Must be called from within a Tokio runtime.
    pub fn start(grpc: &str, http: &str, store: Arc<SpanStore>) -> Result<Receiver, BindError> {
        let grpc_listener = bind(grpc, "OTLP/gRPC")?;
        let http_listener = bind(http, "OTLP/HTTP")?;
        let grpc_addr = grpc_listener.local_addr().map_err(|e| BindError::Bind {
            what: "OTLP/gRPC",
            addr: grpc.into(),
            source: e,
        })?;
        let http_addr = http_listener.local_addr().map_err(|e| BindError::Bind {
            what: "OTLP/HTTP",
            addr: http.into(),
            source: e,
        })?;
        let stop = CancellationToken::new();

        let svc = TraceServiceServer::new(GrpcTraces {
            store: store.clone(),
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE);
        // Exporters send requests larger than HTTP/2's default 64 KiB window: a larger window
        // and no Nagle delay keep one exporter from waiting on window updates and delayed ACKs.
        let incoming =
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        let s = stop.clone();
        let grpc_task = tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .initial_stream_window_size(Some(4 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, s.cancelled_owned())
                .await;
            if let Err(e) = r {
                tracing::warn!("OTLP/gRPC receiver stopped: {e}");
            }
        });

        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .layer(DefaultBodyLimit::max(MAX_MESSAGE))
            .with_state(store);
        let s = stop.clone();
        let http_task = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = http_listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await;
            if let Err(e) = r {
                tracing::warn!("OTLP/HTTP receiver stopped: {e}");
            }
        });
        Ok(Receiver {
            grpc: grpc_addr,
            http: http_addr,
            stop,
            tasks: vec![grpc_task, http_task],
        })
    }

    /// `http://127.0.0.1:PORT`, for OTLP/gRPC exporters.
    pub fn grpc_endpoint(&self) -> String {
        endpoint(self.grpc)
    }

    /// `http://127.0.0.1:PORT`, for OTLP/HTTP exporters (which append `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        endpoint(self.http)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Both endpoints, as `${otlp.grpc}` and `${otlp.http}` give them.
    pub fn endpoints(&self) -> crate::engine::OtlpEndpoints {
        crate::engine::OtlpEndpoints {
            grpc: self.grpc_endpoint(),
            http: self.http_endpoint(),
        }
    }

    /// Stop accepting, let requests in flight finish (at most 2s: exporters keep idle
    /// connections open), then stop.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        if tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(tasks))
            .await
            .is_err()
        {
            for a in aborts {
                a.abort();
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn endpoint(a: SocketAddr) -> String {
    // A wildcard bind is reached through loopback.
    let ip = match a.ip() {
        std::net::IpAddr::V4(v) if v.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(v) if v.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(v) => format!("[{v}]"),
        ip => ip.to_string(),
    };
    format!("http://{ip}:{}", a.port())
}

fn bind(addr: &str, what: &'static str) -> Result<tokio::net::TcpListener, BindError> {
    let invalid = |reason: String| BindError::Invalid {
        what,
        addr: addr.into(),
        reason,
    };
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?
        .next()
        .ok_or_else(|| invalid("resolves to no address".into()))?;
    let bind_err = |source| BindError::Bind {
        what,
        addr: addr.into(),
        source,
    };
    let std_listener = std::net::TcpListener::bind(sock).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)
}

struct GrpcTraces {
    store: Arc<SpanStore>,
}

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let r = self.store.ingest(request.into_inner());
        Ok(tonic::Response::new(response(&r)))
    }
}

fn response(r: &Ingested) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (r.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: r.rejected as i64,
            error_message: r.error.clone().unwrap_or_default(),
        }),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Protobuf,
    Json,
}

async fn http_traces(
    State(store): State<Arc<SpanStore>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = match ctype.as_str() {
        "application/x-protobuf" | "application/protobuf" => Body::Protobuf,
        "application/json" => Body::Json,
        other => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {other:?}: send application/x-protobuf or application/json"
                ),
            )
                .into_response();
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "" | "identity" => body,
        "gzip" => match gunzip(&body) {
            Ok(b) => Bytes::from(b),
            Err(e) => return bad_request(format!("invalid gzip body: {e}")),
        },
        other => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content encoding {other:?}: send gzip or no encoding"),
            )
                .into_response();
        }
    };
    let req = match kind {
        Body::Protobuf => match ExportTraceServiceRequest::decode(body) {
            Ok(r) => r,
            Err(e) => return bad_request(format!("invalid OTLP protobuf body: {e}")),
        },
        Body::Json => match parse_json(&body) {
            Ok(r) => r,
            Err(e) => return bad_request(format!("invalid OTLP/JSON body: {e}")),
        },
    };
    // Conversion and indexing of a large request is CPU work: keep it off the I/O threads.
    let r = match tokio::task::spawn_blocking(move || store.ingest(req)).await {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("ingest failed: {e}"),
            )
                .into_response();
        }
    };
    let resp = response(&r);
    match kind {
        Body::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response(),
        Body::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg).into_response()
}

fn gunzip(b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "more than {MAX_MESSAGE} bytes once decompressed"
        )));
    }
    Ok(out)
}

/// OTLP/JSON: ids are hex, 64-bit integers may be strings, and enum fields should be integers
/// but some senders write their names (`"SPAN_KIND_SERVER"`): accept both.
pub fn parse_json(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    for rs in array_mut(&mut v, "resourceSpans") {
        for ss in array_mut(rs, "scopeSpans") {
            for span in array_mut(ss, "spans") {
                enum_name(span, "kind", "SPAN_KIND_", &KINDS);
                if let Some(st) = span.get_mut("status") {
                    enum_name(st, "code", "STATUS_CODE_", &CODES);
                }
            }
        }
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

const KINDS: [&str; 6] = [
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
const CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

fn array_mut<'a>(
    v: &'a mut serde_json::Value,
    key: &str,
) -> impl Iterator<Item = &'a mut serde_json::Value> {
    v.get_mut(key)
        .and_then(|x| x.as_array_mut())
        .into_iter()
        .flatten()
}

fn enum_name(obj: &mut serde_json::Value, key: &str, prefix: &str, names: &[&str]) {
    let Some(field) = obj.get_mut(key) else {
        return;
    };
    if let Some(s) = field.as_str() {
        let bare = s.strip_prefix(prefix).unwrap_or(s);
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(bare)) {
            *field = serde_json::Value::from(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_accepts_enum_names_numbers_and_string_ints() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"gw"}}]},
          "scopeSpans":[{"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
             "parentSpanId":"eee19b7ec3c1b173","name":"GET /x","kind":"SPAN_KIND_SERVER",
             "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
             "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}},
                           {"key":"ok","value":{"boolValue":true}}],
             "status":{"code":"STATUS_CODE_ERROR"}},
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175",
             "name":"child","kind":3}]}]}]}"#;
        let req = parse_json(body).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans[0].kind, 2);
        assert_eq!(spans[0].status.as_ref().unwrap().code, 2);
        assert_eq!(spans[0].trace_id[0], 0x5b);
        assert_eq!(spans[0].start_time_unix_nano, 1544712660000000000);
        assert_eq!(spans[1].kind, 3);
    }

    #[test]
    fn endpoints_use_loopback_for_wildcard_binds() {
        assert_eq!(
            endpoint("0.0.0.0:4317".parse().unwrap()),
            "http://127.0.0.1:4317"
        );
        assert_eq!(endpoint("[::1]:4318".parse().unwrap()), "http://[::1]:4318");
    }
}
