//! The serializer's opcode bytes: each value is a little program for a stack machine.

/// Pop n values, push a tuple of them.
pub const BUILDTUPLE: u8 = b'@';
/// Push bytes (int4 length, then the bytes).
pub const BYTES: u8 = b'A';
/// Push a reference to a channel of this gateway (int4 id).
pub const CHANNEL: u8 = b'B';
/// Push False.
pub const FALSE: u8 = b'C';
/// Push a float (8-byte big-endian IEEE-754 double).
pub const FLOAT: u8 = b'D';
/// Pop n values, push a frozenset.
pub const FROZENSET: u8 = b'E';
/// Push an int (int4).
pub const INT: u8 = b'F';
/// Push a Python 2 `long` (int4).
pub const LONG: u8 = b'G';
/// Push an int from decimal text (int4 length, then ASCII).
pub const LONGINT: u8 = b'H';
/// Push a Python 2 `long` from decimal text.
pub const LONGLONG: u8 = b'I';
/// Push an empty dict.
pub const NEWDICT: u8 = b'J';
/// Push a list of n `None` (int4 n).
pub const NEWLIST: u8 = b'K';
/// Push None.
pub const NONE: u8 = b'L';
/// Push a Python 2 `str` (raw bytes).
pub const PY2STRING: u8 = b'M';
/// Push a Python 3 `str` (UTF-8).
pub const PY3STRING: u8 = b'N';
/// Pop n values, push a set.
pub const SET: u8 = b'O';
/// Pop value, pop key, `top[key] = value`.
pub const SETITEM: u8 = b'P';
/// End of the value.
pub const STOP: u8 = b'Q';
/// Push True.
pub const TRUE: u8 = b'R';
/// Push text (Python 2 `unicode`, UTF-8).
pub const UNICODE: u8 = b'S';
/// Push a complex (two doubles: real, imaginary).
pub const COMPLEX: u8 = b'T';

/// The opcode's name, or `None` for a byte that is not an opcode.
pub const fn name(op: u8) -> Option<&'static str> {
    Some(match op {
        BUILDTUPLE => "BUILDTUPLE",
        BYTES => "BYTES",
        CHANNEL => "CHANNEL",
        FALSE => "FALSE",
        FLOAT => "FLOAT",
        FROZENSET => "FROZENSET",
        INT => "INT",
        LONG => "LONG",
        LONGINT => "LONGINT",
        LONGLONG => "LONGLONG",
        NEWDICT => "NEWDICT",
        NEWLIST => "NEWLIST",
        NONE => "NONE",
        PY2STRING => "PY2STRING",
        PY3STRING => "PY3STRING",
        SET => "SET",
        SETITEM => "SETITEM",
        STOP => "STOP",
        TRUE => "TRUE",
        UNICODE => "UNICODE",
        COMPLEX => "COMPLEX",
        _ => return None,
    })
}

/// The version byte execnet 1.x writes in front of `dumps` output.
pub const VERSION_1: u8 = 0x01;
/// The version byte execnet 2.x writes in front of `dumps` output.
pub const VERSION_2: u8 = 0x02;
