//! The sandbox: an embedded Kubernetes API server and the demo gateway (DESIGN §4).

pub mod apiserver;

use crate::Exit;
use crate::cli::SandboxArgs;

/// `gwtest sandbox`.
pub async fn command(_args: SandboxArgs) -> Exit {
    eprintln!("error: gwtest sandbox is not built yet");
    Exit::Invalid
}
