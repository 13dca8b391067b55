//! Helpers shared by the interop tests.
pub mod interp;
pub mod sshd;
pub mod suite;
