//! Debugging aids: pause (interactive prompt), failure bundles (artifacts) and the
//! diagnostics collected into them.

pub mod bundle;
pub mod diagnostics;
pub mod pause;
