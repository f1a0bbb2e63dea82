//! What a helper program (bash, kubectl, ...) run by a test left.

use std::process::Output;

/// The stdout of a program that must have succeeded; a failure names it (`what`) and shows its
/// stderr.
pub fn succeeded(out: &Output, what: impl std::fmt::Display) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
