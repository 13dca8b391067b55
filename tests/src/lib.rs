//! Helpers shared by the interop tests.
pub mod interp;
pub mod suite;
