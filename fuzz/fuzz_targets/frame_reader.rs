//! The frame reader fed in random chunk sizes: the frames it yields are the same whatever
//! the chunking, and a fixed buffer never holds more than its size.
#![no_main]

use execnet_core::frame::{parse_frame, FixedBuf, FrameReader, Parsed};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    // Reference: parse the whole stream at once.
    let mut expected = Vec::new();
    let mut rest = stream;
    let mut fails = false;
    loop {
        match parse_frame(rest, MAX) {
            Ok(Parsed::Complete(f, used)) => {
                expected.push((f.code, f.channel, f.payload.to_vec()));
                rest = &rest[used..];
            }
            Ok(Parsed::Partial(_)) => break,
            Err(_) => {
                fails = true;
                break;
            }
        }
    }
    let chunk = usize::from(step % 17) + 1;
    let mut reader = FrameReader::new(FixedBuf::<{ 9 + MAX as usize }>::new(), MAX);
    let mut got = Vec::new();
    let mut failed = false;
    'outer: for piece in stream.chunks(chunk) {
        let mut piece = piece;
        while !piece.is_empty() {
            let n = reader.feed(piece);
            piece = &piece[n..];
            loop {
                match reader.next_frame() {
                    Ok(Some(f)) => got.push((f.code, f.channel, f.payload.to_vec())),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break 'outer;
                    }
                }
            }
            assert!(reader.buffered() <= 9 + MAX as usize);
        }
    }
    assert_eq!(
        failed, fails,
        "chunked reader and whole parse disagree on errors"
    );
    assert_eq!(got, expected);
});
