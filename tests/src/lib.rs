//! Helpers shared by the interop tests.
pub mod interp;
