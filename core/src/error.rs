//! Error types of the codec, the framing and the engine.

use core::fmt;

/// What went wrong while decoding a value.
///
/// Each variant names what was expected and what was found; [`DecodeError`] adds where.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended inside an opcode's operands or before `STOP`.
    UnexpectedEnd {
        /// Bytes the operand needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length or count operand was negative.
    NegativeLength(i32),
    /// A string or bytes length points past the end of the input.
    LengthBeyondInput {
        /// The length the operand announced.
        len: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A string or bytes payload is longer than [`Limits::max_bytes`](crate::Limits).
    StringTooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// `NEWLIST n` announces more items than the rest of the input could hold (each
    /// item costs at least 7 bytes) or than [`Limits::max_items`](crate::Limits) allows.
    ListTooLong {
        /// The announced count.
        count: usize,
        /// The largest count the input and limits allow here.
        max: usize,
    },
    /// An opcode needed more values on the stack than there were.
    StackUnderflow {
        /// Values the opcode pops.
        needed: usize,
        /// Values on the stack.
        available: usize,
    },
    /// `SETITEM` whose target is neither a list nor a dict.
    NotAContainer,
    /// `SETITEM` on a list whose key is not an int.
    ListIndexNotInt,
    /// `SETITEM` on a list with an index other than the next slot (items must arrive as
    /// `INT 0 .. INT n-1`, in order, each once).
    ListIndexOutOfOrder {
        /// The index the next item must have.
        expected: usize,
        /// The index found (after counting a negative index from the end), if it fits.
        found: i64,
    },
    /// A list was used before all of its announced items were set.
    ListIncomplete {
        /// Items announced by `NEWLIST`.
        expected: usize,
        /// Items set.
        found: usize,
    },
    /// A dict key or set member is a list, dict or set (or a tuple holding one).
    Unhashable,
    /// `PY3STRING` or `UNICODE` bytes are not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the first bad byte within the string.
        valid_up_to: usize,
    },
    /// `LONGINT` / `LONGLONG` text is not an optional `-`/`+` followed by ASCII digits.
    InvalidIntText,
    /// `LONGINT` / `LONGLONG` text has more digits than
    /// [`Limits::max_bigint_digits`](crate::Limits).
    IntTooLong {
        /// Digits found.
        digits: usize,
        /// The limit.
        max: u32,
    },
    /// An opcode byte that the format does not define.
    UnknownOpcode(u8),
    /// The input ended without `STOP`.
    MissingStop,
    /// `STOP` with a stack of more or fewer than one value.
    BadStopStack(usize),
    /// The `dumps` envelope starts with a version byte other than 0x01 or 0x02.
    UnknownVersion(u8),
    /// Nesting deeper than [`Limits::max_depth`](crate::Limits).
    TooDeep {
        /// The limit.
        max: u32,
    },
    /// More values than [`Limits::max_items`](crate::Limits).
    TooManyItems {
        /// The limit.
        max: u32,
    },
    /// Bytes follow `STOP` in a whole-buffer decode.
    TrailingBytes(usize),
    /// The input (or, for `take_*`, the value taken) is longer than
    /// [`Limits::max_message`](crate::Limits).
    MessageTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The caller's node storage is too small for this input.
    StorageFull {
        /// Nodes the storage holds.
        capacity: usize,
        /// Nodes that are always enough for this input (see
        /// [`node_bound`](crate::decode::node_bound)).
        needed: usize,
    },
    /// The decoded value has a different shape than the requested Rust type (serde).
    Mismatch {
        /// What the Rust type asked for.
        expected: &'static str,
        /// What the payload holds.
        found: &'static str,
    },
    /// A serde `Deserialize` implementation reported an error; the text is lost without
    /// `alloc`.
    Custom(Message),
    /// The decoder broke one of its own invariants: a bug in this crate, not in the
    /// input. Please report it with the input.
    Internal,
}

/// The text of an error reported by a serde implementation.
///
/// One type under every feature set, so that enabling `alloc` anywhere in a build changes
/// no signature: with `alloc` it holds the text itself, without it a fixed note (there
/// is nowhere to keep a formatted text).
#[derive(Clone, PartialEq, Eq)]
pub struct Message(MessageText);

#[cfg(feature = "alloc")]
type MessageText = alloc::string::String;
#[cfg(not(feature = "alloc"))]
type MessageText = &'static str;

impl Message {
    /// The text.
    pub fn as_str(&self) -> &str {
        AsRef::<str>::as_ref(&self.0)
    }

    /// A message from anything printable: its text under `alloc`, otherwise `note`.
    #[cfg(all(feature = "serde", feature = "alloc"))]
    pub(crate) fn from_display(text: impl fmt::Display, _note: &'static str) -> Message {
        Message(alloc::format!("{text}"))
    }

    /// A message from anything printable: its text under `alloc`, otherwise `note`.
    #[cfg(all(feature = "serde", not(feature = "alloc")))]
    pub(crate) fn from_display(_text: impl fmt::Display, note: &'static str) -> Message {
        Message(note)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Message {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

/// A decode failure: what, at which byte offset, under which opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset in the input of the opcode being processed (or of the end of input);
    /// for a serde error, of the value being deserialized. `None` when the error has no
    /// place in an input (a serde error over a value built by hand).
    pub offset: Option<usize>,
    /// The opcode being processed, when there was one.
    pub opcode: Option<u8>,
}

impl DecodeError {
    /// A new error at byte `offset`.
    pub const fn new(kind: DecodeErrorKind, offset: usize, opcode: Option<u8>) -> Self {
        DecodeError {
            kind,
            offset: Some(offset),
            opcode,
        }
    }

    /// A new error with no place in an input.
    pub const fn unplaced(kind: DecodeErrorKind) -> Self {
        DecodeError {
            kind,
            offset: None,
            opcode: None,
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        match self {
            UnexpectedEnd { needed, available } => write!(
                f,
                "input ends early: needed {needed} more bytes, {available} left"
            ),
            NegativeLength(n) => write!(f, "negative length or count {n}"),
            LengthBeyondInput { len, available } => write!(
                f,
                "length {len} reaches past the end of the input ({available} bytes left)"
            ),
            StringTooLong { len, max } => {
                write!(f, "string of {len} bytes exceeds the limit of {max}")
            }
            ListTooLong { count, max } => write!(
                f,
                "list of {count} items announced, but at most {max} can follow"
            ),
            StackUnderflow { needed, available } => write!(
                f,
                "opcode needs {needed} values on the stack, found {available}"
            ),
            NotAContainer => f.write_str("SETITEM target is neither a list nor a dict"),
            ListIndexNotInt => f.write_str("list index is not an int"),
            ListIndexOutOfOrder { expected, found } => write!(
                f,
                "list index {found} out of order: items must come as 0..n-1 in order, expected {expected}"
            ),
            ListIncomplete { expected, found } => write!(
                f,
                "list used with {found} of its {expected} items set"
            ),
            Unhashable => f.write_str("dict key or set member is unhashable (list, dict or set)"),
            InvalidUtf8 { valid_up_to } => {
                write!(f, "text is not valid UTF-8 after byte {valid_up_to}")
            }
            InvalidIntText => {
                f.write_str("integer text is not an optional sign followed by ASCII digits")
            }
            IntTooLong { digits, max } => {
                write!(f, "integer of {digits} digits exceeds the limit of {max}")
            }
            UnknownOpcode(op) => write!(f, "unknown opcode 0x{op:02x}"),
            MissingStop => f.write_str("input ends without STOP"),
            BadStopStack(n) => write!(f, "STOP with {n} values on the stack, expected 1"),
            UnknownVersion(v) => {
                write!(f, "unknown format version byte 0x{v:02x} (expected 0x01 or 0x02)")
            }
            TooDeep { max } => write!(f, "nesting deeper than the limit of {max}"),
            TooManyItems { max } => write!(f, "more than the limit of {max} values"),
            TrailingBytes(n) => write!(f, "{n} bytes follow STOP"),
            MessageTooLong { len, max } => write!(
                f,
                "message of {len} bytes exceeds the limit of {max} (Limits::max_message)"
            ),
            StorageFull { capacity, needed } => write!(
                f,
                "node storage of {capacity} nodes is too small; {needed} nodes are enough"
            ),
            Mismatch { expected, found } => write!(f, "expected {expected}, found {found}"),
            Custom(m) => f.write_str(m.as_str()),
            Internal => f.write_str("internal decoder error (a bug: please report the input)"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        if let Some(op) = self.opcode {
            match crate::opcode::name(op) {
                Some(name) => write!(f, " (opcode {name})")?,
                None => write!(f, " (opcode 0x{op:02x})")?,
            }
        }
        Ok(())
    }
}

/// One of the bounds of [`Limits`](crate::Limits), named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_depth`](crate::Limits::max_depth).
    Depth,
    /// [`Limits::max_items`](crate::Limits::max_items).
    Items,
    /// [`Limits::max_bytes`](crate::Limits::max_bytes).
    Bytes,
    /// [`Limits::max_bigint_digits`](crate::Limits::max_bigint_digits).
    BigIntDigits,
    /// [`Limits::max_message`](crate::Limits::max_message).
    Message,
}

impl Limit {
    /// The field's name in [`Limits`](crate::Limits).
    pub const fn name(self) -> &'static str {
        match self {
            Limit::Depth => "max_depth",
            Limit::Items => "max_items",
            Limit::Bytes => "max_bytes",
            Limit::BigIntDigits => "max_bigint_digits",
            Limit::Message => "max_message",
        }
    }

    /// What the limit counts, for messages.
    const fn what(self) -> &'static str {
        match self {
            Limit::Depth => "nesting depth",
            Limit::Items => "value count",
            Limit::Bytes => "string or bytes length",
            Limit::BigIntDigits => "integer digit count",
            Limit::Message => "encoded size in bytes",
        }
    }
}

/// Why a value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The sink is full (a fixed slice or a `heapless::Vec`).
    SinkFull,
    /// The underlying writer failed.
    Io,
    /// A length or count does not fit the format's signed 32-bit field.
    TooLong(usize),
    /// The value is beyond one of the [`Limits`](crate::Limits) the encoder was given,
    /// which a decoder with the same limits would refuse.
    LimitExceeded {
        /// Which bound.
        limit: Limit,
        /// What the value has (or reaches first).
        found: usize,
        /// The bound.
        max: u32,
    },
    /// Big-integer text that is not an optional `-` followed by ASCII digits.
    InvalidIntText,
    /// The Rust value has no execnet representation (serde); says which.
    Unsupported(&'static str),
    /// A builder call out of place (for example `SETITEM` with no open container).
    Misuse(&'static str),
    /// A serde `Serialize` implementation reported an error.
    Custom(Message),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::SinkFull => f.write_str("output buffer is full"),
            EncodeError::Io => f.write_str("writing the output failed"),
            EncodeError::TooLong(n) => {
                write!(f, "length {n} does not fit a signed 32-bit field")
            }
            EncodeError::LimitExceeded { limit, found, max } => write!(
                f,
                "{} {found} exceeds Limits::{} ({max}), which a decoder with the same limits refuses",
                limit.what(),
                limit.name()
            ),
            EncodeError::InvalidIntText => {
                f.write_str("integer text is not an optional '-' followed by ASCII digits")
            }
            EncodeError::Unsupported(what) => write!(f, "cannot encode {what}"),
            EncodeError::Misuse(what) => write!(f, "encoder misuse: {what}"),
            EncodeError::Custom(m) => f.write_str(m.as_str()),
        }
    }
}

impl core::error::Error for DecodeError {}
impl core::error::Error for EncodeError {}
