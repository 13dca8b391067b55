//! A Rust struct to execnet bytes and back, borrowing strings from the input.
//!
//! `cargo run -p execnet-core --example serde_struct --features serde`

use execnet_core::serde::{from_dumps, to_vec};
use execnet_core::{Envelope, Limits, StrConfig, Version};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Job<'a> {
    id: u32,
    name: &'a str,
    args: Vec<i64>,
    retry: Option<u8>,
}

fn main() {
    let job = Job {
        id: 7,
        name: "resize",
        args: vec![640, 480],
        retry: None,
    };
    let bytes = to_vec(&job, Envelope::Dumps(Version::V2)).unwrap();
    println!("{} bytes: {:02x?}", bytes.len(), &bytes[..12]);
    let back: Job<'_> = from_dumps(&bytes, &Limits::DEFAULT, StrConfig::LOADS).unwrap();
    assert_eq!(back, job);
    println!("{back:?}");
}
