//! # execnet
//!
//! Drive Python interpreters of every generation (CPython 2.7 to 3.13, PyPy, Jython) from
//! Rust: start them as workers, execute code in them and exchange data with them over
//! channels, speaking the wire protocol of Python's `execnet` byte for byte.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use execnet_core as core;
