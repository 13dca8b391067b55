//! The decoders.
//!
//! The zero-copy decoder takes a `&'a [u8]` and gives a [`ValueRef`] whose strings and
//! bytes are slices of that input and whose structure lives in [`Node`] storage the
//! caller provides, in the manner of httparse's header array:
//!
//! - a plain slice `&mut [Node]` or array (fixed, no allocation),
//! - a `heapless::Vec<Node, N>` (feature `heapless`),
//! - a `Vec<Node>` (feature `alloc`), sized on first use by a quick scan of the input
//!   ([`node_bound`]) and grown when a later input needs more.
//!
//! Nodes hold offsets into the input, not borrows, so one storage serves input after
//! input. When fixed storage is too small the error is
//! [`StorageFull`](crate::DecodeErrorKind::StorageFull) with a node count that is enough.
//! [`Value::decode_internal`](crate::Value::decode_internal) builds an owned value in one
//! pass instead, with no nodes at all.
//!
//! Entry points come in pairs: `decode_*` wants exactly one value and rejects bytes after
//! `STOP`; `take_*` decodes the value at the front and returns the rest. The `dumps`
//! envelope starts with a version byte (0x01 from execnet 1.x, 0x02 from 2.x); the
//! internal envelope, used for channel payloads, has none.
//!
//! Rules beyond what the reference checks (it trusts its input): every length and
//! count is checked against the input and the [`Limits`] before anything is reserved;
//! list items must arrive as `INT 0 .. INT n-1`, in order, each once (every known writer
//! sends them that way, it lets a list reserve its run of nodes up front, and it makes
//! every accepted input re-encode to the same bytes; Python would also take negative or `LONG` indexes
//! and leave unset slots `None`); a list must be complete
//! before it is used; dict keys and set members must be hashable; `LONGINT` text must be
//! an optional `+`/`-` and ASCII digits (stricter than Python's `int()`, which also takes
//! spaces and underscores); `NEWLIST n` is refused when the rest of the input cannot fill
//! every list still open (7 bytes an item not yet begun), so that reservations stay
//! within the input's length. The decoders never recurse and never panic.

use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::limits::Limits;
use crate::opcode as op;
use crate::value::{Node, ValueRef};

#[cfg(feature = "alloc")]
pub(crate) mod owned;
pub(crate) mod reader;
mod tape;

use reader::within_message;

/// The `dumps` format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Version {
    /// Byte 0x01, written and read by execnet 1.x (Python 2 era).
    V1,
    /// Byte 0x02, written and read by execnet 2.x.
    #[default]
    V2,
}

impl Version {
    /// The version byte.
    pub const fn byte(self) -> u8 {
        match self {
            Version::V1 => op::VERSION_1,
            Version::V2 => op::VERSION_2,
        }
    }

    /// The version a byte stands for.
    pub const fn from_byte(b: u8) -> Option<Version> {
        match b {
            op::VERSION_1 => Some(Version::V1),
            op::VERSION_2 => Some(Version::V2),
            _ => None,
        }
    }
}

/// Storage that a decode writes its nodes into.
///
/// Implemented for `[Node]` (and so for arrays and `&mut` slices), `heapless::Vec<Node,
/// N>` and `Vec<Node>`. A `heapless::Vec` or `Vec` keeps its working length between
/// decodes, so that reusing it costs nothing; the decoded value borrows a prefix of it.
pub trait NodeStorage {
    /// The slots to decode into; a growable storage sizes itself for `input` first.
    #[doc(hidden)]
    fn slots(&mut self, input: &[u8]) -> &mut [Node];
    /// After `StorageFull`: grows for `input` and says whether to try again.
    #[doc(hidden)]
    fn grow(&mut self, _input: &[u8]) -> bool {
        false
    }
    /// The slots, for the decoded value to borrow.
    #[doc(hidden)]
    fn nodes(&self) -> &[Node];
}

impl NodeStorage for [Node] {
    fn slots(&mut self, _input: &[u8]) -> &mut [Node] {
        self
    }
    fn nodes(&self) -> &[Node] {
        self
    }
}

impl<const N: usize> NodeStorage for [Node; N] {
    fn slots(&mut self, _input: &[u8]) -> &mut [Node] {
        self
    }
    fn nodes(&self) -> &[Node] {
        self
    }
}

#[cfg(feature = "heapless")]
impl<const N: usize> NodeStorage for heapless::Vec<Node, N> {
    fn slots(&mut self, _input: &[u8]) -> &mut [Node] {
        // Filling to capacity cannot fail: N slots are what the vector holds.
        let _ = self.resize(N, Node::EMPTY);
        self.as_mut_slice()
    }
    fn nodes(&self) -> &[Node] {
        self.as_slice()
    }
}

#[cfg(feature = "alloc")]
impl NodeStorage for alloc::vec::Vec<Node> {
    fn slots(&mut self, input: &[u8]) -> &mut [Node] {
        if self.is_empty() {
            let bound = scan(input).0;
            self.resize(bound + bound / 8 + 16, Node::EMPTY);
        }
        self.as_mut_slice()
    }
    fn grow(&mut self, input: &[u8]) -> bool {
        // First to what the input's opcodes can need; past that only hostile input that
        // reserves list slots it never fills can ask for more, and no input can ask for
        // more than one slot per byte plus its reservations (a seventh of the rest).
        let bound = scan(input).0;
        let enough = bound + bound / 8 + 16;
        let most = input.len() + input.len() / 7 + 16;
        let target = if self.len() < enough { enough } else { most };
        if target <= self.len() {
            return false;
        }
        self.resize(target, Node::EMPTY);
        true
    }
    fn nodes(&self) -> &[Node] {
        self.as_slice()
    }
}

/// Counts the value-pushing opcodes up to the first `STOP` (or up to where the opcodes
/// stop making sense): the nodes a decode can need at once, and the floor of any decode,
/// as it reads every opcode and skips every operand.
pub(crate) fn scan(input: &[u8]) -> (usize, Option<DecodeError>) {
    let mut pos = 0usize;
    let mut count = 0usize;
    let len = input.len();
    loop {
        let Some(&code) = input.get(pos) else {
            return (count, None);
        };
        let at = pos;
        pos += 1;
        let skip = match code {
            op::STOP => return (count, None),
            op::SETITEM => continue,
            op::NONE | op::TRUE | op::FALSE | op::NEWDICT => 0,
            op::INT
            | op::LONG
            | op::CHANNEL
            | op::NEWLIST
            | op::BUILDTUPLE
            | op::SET
            | op::FROZENSET => {
                if len - pos < 4 {
                    return (count, Some(short(input, pos, at, code)));
                }
                4
            }
            op::FLOAT => 8,
            op::COMPLEX => 16,
            op::BYTES
            | op::PY2STRING
            | op::PY3STRING
            | op::UNICODE
            | op::LONGINT
            | op::LONGLONG => {
                let n = match input.get(pos..pos + 4) {
                    Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
                    _ => return (count, Some(short(input, pos, at, code))),
                };
                if n < 0 {
                    return (
                        count,
                        Some(DecodeError::new(K::NegativeLength(n), at, Some(code))),
                    );
                }
                4 + n as usize
            }
            other => {
                return (
                    count,
                    Some(DecodeError::new(K::UnknownOpcode(other), at, Some(other))),
                )
            }
        };
        count += 1;
        pos = pos.saturating_add(skip);
    }
}

#[cold]
fn short(input: &[u8], pos: usize, at: usize, code: u8) -> DecodeError {
    DecodeError::new(
        K::UnexpectedEnd {
            needed: 4,
            available: input.len().saturating_sub(pos),
        },
        at,
        Some(code),
    )
}

/// Upper bound on the nodes a decode of `input` (internal envelope) can need at once:
/// the number of value-pushing opcodes up to the first `STOP`. Scans without storage.
///
/// Returns the decode error when the input cannot be scanned (bad opcode, truncated
/// operand).
pub fn node_bound(input: &[u8]) -> Result<usize, DecodeError> {
    match scan(input) {
        (n, None) => Ok(n),
        (_, Some(e)) => Err(e),
    }
}

/// The input the decoder reads: node offsets are 32-bit, and no message can be longer.
fn addressable(input: &[u8]) -> &[u8] {
    input.get(..u32::MAX as usize).unwrap_or(input)
}

/// A whole-buffer decode (`start` 0: internal envelope; 1: `dumps`), returning the value
/// with the input offset of its root opcode, for errors that say where.
#[cfg(all(feature = "serde", feature = "alloc"))]
pub(crate) fn decode_placed<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    start: usize,
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(ValueRef<'a, 's>, usize), DecodeError> {
    within_message(input.len(), limits)?;
    if start == 1 {
        version_of(input)?;
    }
    let (v, end, at) = decode_root(input, start, storage, limits)?;
    no_trailing(input, end)?;
    Ok((v, at))
}

fn decode_at<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    start: usize,
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(ValueRef<'a, 's>, usize), DecodeError> {
    decode_root(input, start, storage, limits).map(|(v, end, _)| (v, end))
}

/// Decodes the value at `start`: the value, where it ended, where its root opcode is.
fn decode_root<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    start: usize,
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(ValueRef<'a, 's>, usize, usize), DecodeError> {
    let input = addressable(input);
    let tail = input.get(start..).unwrap_or(&[]);
    let done = loop {
        match tape::run(input, start, storage.slots(tail), limits) {
            Ok(done) => break done,
            Err(e) if matches!(e.kind, K::StorageFull { .. }) && storage.grow(tail) => {}
            Err(e) => return Err(e),
        }
    };
    let storage: &'s S = storage;
    let nodes = storage.nodes().get(..done.tape).unwrap_or(&[]);
    let root = nodes
        .get(done.root)
        .ok_or(DecodeError::new(K::Internal, done.end, None))?;
    Ok((
        ValueRef::from_node(input, nodes, root),
        done.end,
        root.offset(),
    ))
}

fn version_of(input: &[u8]) -> Result<Version, DecodeError> {
    match input.first() {
        None => Err(DecodeError::new(
            K::UnexpectedEnd {
                needed: 1,
                available: 0,
            },
            0,
            None,
        )),
        Some(&b) => Version::from_byte(b).ok_or(DecodeError::new(K::UnknownVersion(b), 0, None)),
    }
}

pub(crate) fn no_trailing(input: &[u8], end: usize) -> Result<(), DecodeError> {
    if end < input.len() {
        Err(DecodeError::new(
            K::TrailingBytes(input.len() - end),
            end,
            None,
        ))
    } else {
        Ok(())
    }
}

/// Decodes one channel payload (internal envelope: no version byte), which must fill the
/// whole input.
///
/// ```
/// use execnet_core::{decode, Limits, Node, ValueRef};
/// let bytes = b"F\x00\x00\x00\x2aQ"; // INT 42, STOP
/// let mut nodes = [Node::EMPTY; 4];
/// let v = decode::decode_internal(bytes, &mut nodes, &Limits::DEFAULT).unwrap();
/// assert_eq!(v.as_i64(), Some(42));
/// ```
pub fn decode_internal<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<ValueRef<'a, 's>, DecodeError> {
    within_message(input.len(), limits)?;
    let (v, end) = decode_at(input, 0, storage, limits)?;
    no_trailing(input, end)?;
    Ok(v)
}

/// Decodes the channel payload at the front of `input` and returns it with the bytes
/// after its `STOP`.
pub fn take_internal<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(ValueRef<'a, 's>, &'a [u8]), DecodeError> {
    let (v, end) = decode_at(input, 0, storage, limits)?;
    within_message(end, limits)?;
    Ok((v, input.get(end..).unwrap_or(&[])))
}

/// Decodes `dumps` output (a version byte, 0x01 or 0x02, then the value), which must fill
/// the whole input.
///
/// ```
/// use execnet_core::{decode, Limits, Node};
/// let mut nodes = [Node::EMPTY; 8];
/// let (version, v) = decode::decode_dumps(b"\x02LQ", &mut nodes, &Limits::DEFAULT).unwrap();
/// assert_eq!(version, decode::Version::V2);
/// assert!(matches!(v, execnet_core::ValueRef::None));
/// ```
pub fn decode_dumps<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(Version, ValueRef<'a, 's>), DecodeError> {
    within_message(input.len(), limits)?;
    let version = version_of(input)?;
    let (v, end) = decode_at(input, 1, storage, limits)?;
    no_trailing(input, end)?;
    Ok((version, v))
}

/// Decodes the `dumps` output at the front of `input` and returns it with the rest.
pub fn take_dumps<'a, 's, S: NodeStorage + ?Sized>(
    input: &'a [u8],
    storage: &'s mut S,
    limits: &Limits,
) -> Result<(Version, ValueRef<'a, 's>, &'a [u8]), DecodeError> {
    let version = version_of(input)?;
    let (v, end) = decode_at(input, 1, storage, limits)?;
    within_message(end, limits)?;
    Ok((version, v, input.get(end..).unwrap_or(&[])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeErrorKind;

    /// Found by the `decode` fuzz target: a list item set with index -1 (which Python
    /// counts from the end) decoded, but re-encoded as index 0.
    #[test]
    fn list_index_must_be_the_next_int() {
        let mut nodes = [Node::EMPTY; 8];
        for bad in [
            &b"K\x00\x00\x00\x01F\xff\xff\xff\xffLPQ"[..],
            b"K\x00\x00\x00\x01G\x00\x00\x00\x00LPQ",
            b"K\x00\x00\x00\x01H\x00\x00\x00\x010LPQ",
        ] {
            let e = decode_internal(bad, &mut nodes[..], &Limits::DEFAULT).unwrap_err();
            assert!(
                matches!(
                    e.kind,
                    DecodeErrorKind::ListIndexOutOfOrder { expected: 0, .. }
                ),
                "{e}"
            );
        }
        assert!(decode_internal(
            b"K\x00\x00\x00\x01F\x00\x00\x00\x00LPQ",
            &mut nodes[..],
            &Limits::DEFAULT
        )
        .is_ok());
    }
}
