//! Helpers shared by the interop tests.
pub mod interp;
pub mod procs;
pub mod sshd;
pub mod suite;

use execnet::{Gateway, Group, Options};

/// A group with `options` and one popen gateway to the interpreter `name`; `None` where
/// [`interp::require`] finds no such interpreter (outside CI, where it says so).
pub fn popen(name: &str, options: Options) -> Option<(Group, Gateway)> {
    let py = interp::require(name)?;
    let group = Group::with_options(options);
    let gw = group
        .makegateway(&format!("popen//python={}", py.path.display()))
        .unwrap_or_else(|e| panic!("{name}: the gateway does not start: {e}"));
    Some((group, gw))
}

/// Tests that each run one case function on one interpreter:
/// `cases! { test_name => case_fn("cpython3.11"), ... }`.
#[macro_export]
macro_rules! cases {
    ($($test:ident => $case:ident($name:expr)),* $(,)?) => {$(
        #[test]
        fn $test() {
            $case($name);
        }
    )*};
}
