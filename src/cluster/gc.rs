//! `gwtest gc`: delete what interrupted runs left behind.

use crate::Exit;
use crate::cli::GcArgs;

pub async fn command(_args: GcArgs) -> Exit {
    eprintln!("error: gwtest gc is not built yet");
    Exit::Invalid
}
