//! The gateway spec parser: never panics; what parses prints back to its source and
//! parses again to the same spec.
#![no_main]

use execnet::spec::Spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = Spec::parse(text) {
        let again = Spec::parse(&spec.to_string()).expect("a parsed spec parses again");
        assert_eq!(again, spec);
    }
});
