//! # execnet-core
//!
//! The codec and protocol of [execnet](https://pypi.org/project/execnet/) for any Rust
//! target, `no_std` and allocation-optional: the value serializer with zero-copy
//! decoding, the message framing, and the protocol as a sans-IO state machine. It reads
//! and writes exactly the bytes of Python's execnet 1.9 and 2.x, and refuses hostile
//! input with an error instead of a crash or an unbounded allocation.
//!
//! ```
//! use execnet_core::{decode, encode, Limits, Node, ValueRef};
//! // execnet.dumps(["hello", "world"]) from execnet 2.x on Python 3
//! let bytes = b"\x02K\x00\x00\x00\x02F\x00\x00\x00\x00N\x00\x00\x00\x05helloP\
//!               F\x00\x00\x00\x01N\x00\x00\x00\x05worldPQ";
//! let mut nodes = [Node::EMPTY; 8]; // no allocation: the value's structure lives here
//! let (version, value) = decode::decode_dumps(bytes, &mut nodes, &Limits::DEFAULT)?;
//! let ValueRef::List(items) = value else { panic!("not a list") };
//! let words: Vec<&str> = items.iter().filter_map(|v| v.as_str()).collect();
//! assert_eq!(words, ["hello", "world"]); // borrowed from `bytes`
//!
//! let mut out = [0u8; 64];
//! let written = encode::to_slice(&value, encode::Envelope::Dumps(version), &mut out)?;
//! assert_eq!(&written[..], &bytes[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Modules, in the order data flows
//!
//! - [`value`]: the borrowed data model ([`ValueRef`], and [`Node`], 16 bytes of offsets
//!   that one storage reuses for input after input); [`Value`] is the owned one
//!   (feature `alloc`).
//! - [`decode`]: the zero-copy decoder, into caller-provided node storage laid out as a
//!   flat tape (a container's children side by side, so indexing is O(1)), and
//!   [`Value::decode_internal`], which builds an owned value in one pass with no nodes.
//! - [`encode`] and [`sink`]: the encoder and where its bytes go.
//! - [`strconfig`]: how the string opcodes load under `(py2str_as_py3str,
//!   py3str_as_py2str)`.
//! - [`serde`](mod@crate::serde) (feature `serde`): Rust types to and from execnet
//!   values, read straight from the opcodes; with `alloc`, [`Value`] is a serde citizen
//!   (`to_value`, `from_value`).
//! - `repr` (feature `alloc`): Python's `repr` of a value, which `Value`'s `Display`
//!   prints.
//! - [`limits`] and [`error`]: bounds on hostile input, which the encoder checks too, and
//!   what went wrong where.
//! - [`frame`] and [`buffer`]: the 9-byte message header, the frame reader, and the
//!   buffers frames wait in.
//! - [`engine`]: the protocol as a sans-IO driver, [`engine::Connection`].
//! - [`protocol`]: the wire format and the protocol, described in prose.
//!
//! ## The data path
//!
//! Out: a value ([`ValueRef`], [`Value`], or any `Serialize` through
//! `serde::Serde`, feature `serde`) is encoded by [`encode::Encoder`] (`encode.rs`)
//! into a [`sink::Sink`] (`sink.rs`); [`engine::Engine::send`]
//! (`engine/connection.rs`) encodes it straight into the output queue behind a
//! [`frame::Header`] (`frame.rs`), or refuses with `OutputFull` and leaves the queue as it
//! was; the host takes the queued bytes from [`engine::Engine::poll_transmit`] and writes
//! them to its transport (a large value goes there directly with
//! [`engine::Engine::send_to`]). In: the host hands received bytes to
//! [`frame::FrameReader`] (`frame.rs`, buffers in `buffer.rs`), which yields whole frames;
//! [`engine::Engine::handle_frame`] checks each against the channel table
//! (`engine/table.rs`) and returns an [`engine::Event`]; the payload of an
//! `Event::Data` decodes with [`decode::decode_internal`] (`decode.rs`) into a
//! [`ValueRef`] that borrows it (`value.rs`), into an owned [`Value`] (`owned.rs`), or
//! into a Rust type (`serde::from_internal`).
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | implies `alloc`; `std::error::Error`, `std::io::Write` sink |
//! | `alloc` | via `std` | owned [`Value`], `Vec` node storage and sinks |
//! | `serde` | no | `Serializer` / `Deserializer` (borrowing `&str` / `&[u8]`); with `alloc`, `Value: Serialize + Deserialize` |
//! | `heapless` | no | `heapless::Vec` as node storage and as a sink |
//! | `embedded-io` | no | `embedded_io::Write` sink (embedded-io 0.6) |
//! | `defmt` | no | `defmt::Format` on public types |
//!
//! With no features the crate builds for bare-metal targets such as
//! `thumbv7em-none-eabihf`, and nothing in it allocates.
//!
//! ## Sinks: why not postcard's `Flavor`
//!
//! The [`sink::Sink`] trait has the shape of postcard's `ser_flavors::Flavor`, but it is
//! our own: adopting postcard's would make postcard, `serde` and `cobs` mandatory
//! dependencies of a crate whose serde support is optional, and postcard's error cannot
//! tell a full buffer from a failed writer. The benchmarks run postcard on comparable
//! data as an anchor.
//!
//! ## Equal dict keys
//!
//! A reference writer never sends two equal dict keys or set members; hostile bytes can.
//! The borrowed view shows entries exactly as they came; the owned decoder and
//! [`Value::from_ref`] apply Python's rule (first key, last value; first set member;
//! `1 == 1.0 == True`; a NaN equals nothing), in linear or n log n time whatever the
//! keys: each key is reduced to a canonical form, equal forms are found with a hash
//! index whose probes are budgeted, and a stable sort takes over when hostile keys
//! collide, so no secret seed is needed.
#![no_std]
// docs.rs builds with `--cfg docsrs` on nightly: feature-gated items get their badge.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod buffer;
pub mod decode;
pub mod encode;
pub mod engine;
pub mod error;
pub mod frame;
pub mod limits;
pub mod opcode;
#[doc = include_str!("../PROTOCOL.md")]
pub mod protocol {}
#[cfg(feature = "alloc")]
mod owned;
#[cfg(feature = "alloc")]
mod pyeq;
#[cfg(feature = "alloc")]
pub mod repr;
#[cfg(feature = "serde")]
pub mod serde;
pub mod sink;
pub mod strconfig;
pub mod value;

pub use decode::Version;
pub use encode::Envelope;
pub use error::{DecodeError, DecodeErrorKind, EncodeError, Limit};
pub use limits::Limits;
#[cfg(feature = "alloc")]
pub use owned::{Int, Value};
pub use strconfig::StrConfig;
pub use value::{Node, ValueRef};
