//! The frame reader fed in random chunk sizes, with four buffers: a fixed one that holds
//! every frame, a small fixed one that must skip the frames it cannot hold (and report
//! each as oversized), a growing one that receives large payloads in their own
//! allocation, and one that also splits payloads that are one string (reading them
//! through `fill_direct` where it applies). Each yields what parsing the whole stream at
//! once yields, and a fixed buffer never holds more than its size.
#![no_main]

use execnet_core::buffer::{FixedBuf, GrowBuf, InputBuf};
use execnet_core::frame::{parse_frame, FrameReader, Incoming, Parsed};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 4096;
const SMALL: usize = 64;

/// A frame as seen: `Ok((code, channel, payload))` or `Err((channel, len))` when skipped.
type Seen = Result<(u8, i32, Vec<u8>), (i32, u32)>;

/// How frames are taken from the reader.
#[derive(Clone, Copy, PartialEq)]
enum Take {
    /// The payload as the frame shows it.
    Borrowed,
    /// `take_payload`.
    Whole,
    /// `take_string` when the frame was split (its payload put back together here), and
    /// the bytes fed through `fill_direct` when it applies; `take_payload` otherwise.
    Split,
}

fn run<B: InputBuf>(
    mut reader: FrameReader<B>,
    stream: &[u8],
    chunk: usize,
    take: Take,
) -> (Vec<Seen>, bool) {
    let mut got = Vec::new();
    for piece in stream.chunks(chunk) {
        let mut piece = piece;
        while !piece.is_empty() {
            let direct = match take {
                Take::Split => reader.fill_direct(|v, need| {
                    let n = need.min(piece.len());
                    v.extend_from_slice(&piece[..n]);
                    n
                }),
                _ => None,
            };
            let n = match direct {
                Some(n) => n,
                None => reader.feed(piece),
            };
            piece = &piece[n..];
            loop {
                match reader.next_frame() {
                    Ok(Some(Incoming::Frame(f))) => {
                        let (code, channel) = (f.code as u8, f.channel);
                        let shown = f.payload.to_vec();
                        let split = reader.split_string();
                        let payload = match take {
                            Take::Borrowed => shown,
                            Take::Whole => reader.take_payload(),
                            Take::Split => match reader.take_string() {
                                Some((op, bytes)) => {
                                    assert_eq!(split, Some((op, bytes.len())));
                                    assert_eq!(shown, [op, 0, 0, 0, 0, b'Q']);
                                    let mut whole = vec![op];
                                    whole.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                                    whole.extend_from_slice(&bytes);
                                    whole.push(b'Q');
                                    whole
                                }
                                None => {
                                    assert_eq!(split, None);
                                    reader.take_payload()
                                }
                            },
                        };
                        got.push(Ok((code, channel, payload)));
                    }
                    Ok(Some(Incoming::Oversized(h))) => got.push(Err((h.channel, h.len))),
                    Ok(None) => break,
                    Err(_) => return (got, true),
                }
            }
            assert!(reader.capacity() == usize::MAX || reader.buffered() <= reader.capacity());
        }
    }
    (got, false)
}

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
                expected.push((f.code as u8, f.channel, f.payload.to_vec()));
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
    let whole: Vec<Seen> = expected.iter().cloned().map(Ok).collect();

    let big = FrameReader::new(FixedBuf::<{ 9 + MAX as usize }>::new(), MAX);
    let (got, failed) = run(big, stream, chunk, Take::Borrowed);
    assert_eq!(failed, fails, "chunked reader and whole parse disagree on errors");
    assert_eq!(got, whole);

    let grow = FrameReader::new(GrowBuf::new(), MAX).with_direct_payloads(16);
    let (got, failed) = run(grow, stream, chunk, Take::Whole);
    assert_eq!(failed, fails);
    assert_eq!(got, whole);

    let split = FrameReader::new(GrowBuf::new(), MAX)
        .with_direct_payloads(16)
        .with_split_strings(true);
    let (got, failed) = run(split, stream, chunk, Take::Split);
    assert_eq!(failed, fails);
    assert_eq!(got, whole);

    let small = FrameReader::new(FixedBuf::<SMALL>::new(), MAX);
    let (got, failed) = run(small, stream, chunk, Take::Borrowed);
    let mut skipped: Vec<Seen> = expected
        .iter()
        .map(|(code, channel, payload)| {
            if payload.len() + 9 > SMALL {
                Err((*channel, payload.len() as u32))
            } else {
                Ok((*code, *channel, payload.clone()))
            }
        })
        .collect();
    // A frame cut short by the end of the stream is reported as oversized as soon as its
    // header is in, when the small buffer could not hold it whole.
    if !fails {
        if let Some(head) = rest.first_chunk::<9>() {
            if let Ok(h) = execnet_core::frame::Header::parse(head, MAX) {
                if h.len as usize + 9 > SMALL {
                    skipped.push(Err((h.channel, h.len)));
                }
            }
        }
    }
    assert_eq!(failed, fails);
    assert_eq!(got, skipped);
});
