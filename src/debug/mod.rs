//! Debugging aids: pause (interactive prompt) and failure bundles (artifacts).

pub mod bundle;
pub mod pause;
