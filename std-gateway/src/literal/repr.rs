//! `repr()` of a loaded value: the printer lives in `execnet_core::repr`, one for the
//! library's `Display` and the command line alike.

pub use execnet_core::repr::{repr, write_repr, ReprMode};
