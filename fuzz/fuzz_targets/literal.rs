//! The Python-literal parser of `execnet encode`: never panics; what parses encodes, and
//! its repr parses back to a value that encodes to the same bytes.
#![no_main]

use execnet::core::repr::{repr, ReprMode};
use execnet::core::{encode, Envelope, Version};
use libfuzzer_sys::fuzz_target;

// The parser belongs to the `execnet` binary, not to the library.
#[path = "../../std-gateway/src/bin/execnet/literal.rs"]
#[allow(dead_code)]
mod literal;
use literal::{parse, ParseMode};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (pmode, rmode) = if mode & 1 == 0 {
        (
            ParseMode::Py3,
            ReprMode::Py3(execnet::core::StrConfig::LOADS),
        )
    } else {
        (ParseMode::Py2, ReprMode::Py2)
    };
    if let Ok(v) = parse(text, pmode) {
        let Ok(bytes) = encode::to_vec(&v, Envelope::Dumps(Version::V2)) else {
            return;
        };
        let printed = repr(&v, rmode);
        let back = parse(&printed, pmode)
            .unwrap_or_else(|e| panic!("repr {printed:?} does not parse: {e}"));
        let again = encode::to_vec(&back, Envelope::Dumps(Version::V2)).expect("encodes");
        assert_eq!(again, bytes, "repr round trip changed {printed:?}");
    }
});
