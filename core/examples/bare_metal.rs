//! The codec as a microcontroller would use it: no allocator, node storage in a fixed
//! array, output into a `heapless::Vec`. (Run on the host here; the same code builds for
//! `thumbv7em-none-eabihf`.)
//!
//! `cargo run -p execnet-core --example bare_metal --features heapless`

use execnet_core::encode::{self, Encoder, Envelope};
use execnet_core::{decode, Limits, Node, ValueRef};

fn main() {
    // A command as a Python master would send it: {"cmd": "blink", "times": 3}
    let mut out: heapless::Vec<u8, 64> = heapless::Vec::new();
    {
        let mut e = Encoder::new(&mut out);
        e.new_dict().unwrap();
        e.str("cmd").unwrap();
        e.str("blink").unwrap();
        e.setitem().unwrap();
        e.str("times").unwrap();
        e.int(3).unwrap();
        e.setitem().unwrap();
        e.stop().unwrap();
    }

    // Decode it into a fixed array of nodes: no heap anywhere.
    let mut nodes = [Node::EMPTY; 8];
    let value = decode::decode_internal(&out, &mut nodes, &Limits::TIGHT).unwrap();
    let ValueRef::Dict(map) = value else {
        panic!("expected a dict")
    };
    let cmd = map.get_str("cmd").and_then(|v| v.as_str()).unwrap();
    let times = map.get_str("times").and_then(|v| v.as_i64()).unwrap();
    println!("cmd={cmd} times={times}");

    // Storage that is too small says how much it needs.
    let mut tiny = [Node::EMPTY; 2];
    let err = decode::decode_internal(&out, &mut tiny, &Limits::TIGHT).unwrap_err();
    println!("with 2 nodes: {err}");

    // Re-encode the borrowed view into a second heapless buffer: identical bytes.
    let again: heapless::Vec<u8, 64> = encode::to_heapless(&value, Envelope::Internal).unwrap();
    assert_eq!(again, out);
    println!("re-encoded {} bytes identically", again.len());

    // The same array serves frame after frame: nodes hold offsets into the input, not
    // borrows of it, so a firmware can keep one `static` array for every message.
    let second = b"K\x00\x00\x00\x01F\x00\x00\x00\x00F\x00\x00\x00\x07PQ"; // [7]
    for frame in [&out[..], &second[..]] {
        let v = decode::decode_internal(frame, &mut nodes, &Limits::TIGHT).unwrap();
        println!("{} bytes: {}", frame.len(), v.type_name());
    }
}
