//! The owned value (feature `alloc`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::decode::reader::within_message;
use crate::decode::{self, Version};
use crate::encode::{Encode, Encoder};
use crate::error::{DecodeError, EncodeError};
use crate::limits::Limits;
use crate::sink::Sink;
use crate::strconfig::StrConfig;
use crate::value::{IntKind, PyStr, ValueRef};

/// An integer of any size: `i64` when it fits, canonical decimal text otherwise (no
/// leading zeros, no `+`, a `-` for negatives). Never converted to a float.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Int {
    /// Fits `i64`.
    Small(i64),
    /// Beyond `i64`: canonical decimal text.
    Big(Box<str>),
}

impl Int {
    /// Parses `[+-]?[0-9]+` (leading zeros allowed) into canonical form; `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Int> {
        let digits = text
            .strip_prefix('-')
            .or_else(|| text.strip_prefix('+'))
            .unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(crate::decode::owned::int_from_text(text.as_bytes()))
    }

    /// The value as `i128`, if it fits.
    pub fn as_i128(&self) -> Option<i128> {
        match self {
            Int::Small(v) => Some(i128::from(*v)),
            Int::Big(t) => crate::value::parse_i128(t),
        }
    }

    fn encode<S: Sink>(&self, kind: IntKind, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        match self {
            Int::Small(v) => e.int_kind(i128::from(*v), kind),
            Int::Big(t) => e.big_int(t, kind),
        }
    }
}

impl core::fmt::Display for Int {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Int::Small(v) => write!(f, "{v}"),
            Int::Big(t) => f.write_str(t),
        }
    }
}

/// An owned execnet value: the whole data model, with Python 2's `long` and the three
/// string kinds kept apart so that values from any writer re-encode to the same opcodes.
///
/// Converted from a [`ValueRef`] with [`Value::from_ref`], which applies Python's rule for
/// equal dict keys and set members (see the crate docs); ints are normalized (a
/// `LONGINT` whose text fits 32 bits comes back out as `INT`), everything else is kept
/// as it came.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// `int`.
    Int(Int),
    /// Python 2 `long`.
    Long(Int),
    /// `float`, bit for bit.
    Float(f64),
    /// `complex`.
    Complex(f64, f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// Python 3 `str` (`PY3STRING`).
    Str(String),
    /// Python 2 `unicode` (`UNICODE`).
    Unicode(String),
    /// Python 2 `str` (`PY2STRING`), raw bytes.
    Py2Str(Vec<u8>),
    /// `list`.
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `set`, in insertion order.
    Set(Vec<Value>),
    /// `frozenset`, in insertion order.
    FrozenSet(Vec<Value>),
    /// `dict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A channel reference.
    Channel(i32),
}

impl Value {
    /// Converts a borrowed value, merging equal dict keys and set members the way a
    /// Python 3 reader (execnet 2.x) with string config `config` would: the first key
    /// stays, the last value wins; a set keeps the first of equal members.
    pub fn from_ref(v: &ValueRef<'_, '_>, config: StrConfig) -> Value {
        match *v {
            ValueRef::None => Value::None,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i, IntKind::Int) => Value::Int(Int::Small(i)),
            ValueRef::Int(i, IntKind::Long) => Value::Long(Int::Small(i)),
            ValueRef::BigInt(t, kind) => {
                // The decoder validated the text, so parse cannot fail.
                let i = Int::parse(t).unwrap_or(Int::Small(0));
                match kind {
                    IntKind::Int => Value::Int(i),
                    IntKind::Long => Value::Long(i),
                }
            }
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Complex(r, i) => Value::Complex(r, i),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Str(PyStr::Py2(b)) => Value::Py2Str(b.to_vec()),
            ValueRef::Str(PyStr::Py3(s)) => Value::Str(s.into()),
            ValueRef::Str(PyStr::Unicode(s)) => Value::Unicode(s.into()),
            ValueRef::Channel(c) => Value::Channel(c),
            ValueRef::List(items) => {
                Value::List(items.iter().map(|i| Value::from_ref(&i, config)).collect())
            }
            ValueRef::Tuple(items) => {
                Value::Tuple(items.iter().map(|i| Value::from_ref(&i, config)).collect())
            }
            ValueRef::Set(items) => Value::Set(crate::pyeq::dedup_members(
                items.iter().map(|i| Value::from_ref(&i, config)).collect(),
                config,
            )),
            ValueRef::FrozenSet(items) => Value::FrozenSet(crate::pyeq::dedup_members(
                items.iter().map(|i| Value::from_ref(&i, config)).collect(),
                config,
            )),
            ValueRef::Dict(map) => Value::Dict(crate::pyeq::dedup_entries(
                map.iter()
                    .map(|(k, v)| (Value::from_ref(&k, config), Value::from_ref(&v, config)))
                    .collect(),
                config,
            )),
        }
    }

    /// Decodes one channel payload into an owned value, in one pass and with no node
    /// storage, merging equal keys as `loads()` would (its string config).
    pub fn decode_internal(input: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
        Value::decode_internal_with(input, limits, StrConfig::LOADS)
    }

    /// Decodes one channel payload into an owned value, merging equal keys as a reader
    /// with string config `config` would.
    pub fn decode_internal_with(
        input: &[u8],
        limits: &Limits,
        config: StrConfig,
    ) -> Result<Value, DecodeError> {
        within_message(input.len(), limits)?;
        let (v, end) = decode::owned::decode(input, 0, limits, config)?;
        decode::no_trailing(input, end)?;
        Ok(v)
    }

    /// Decodes `dumps` output into an owned value (string config as `loads()`).
    pub fn decode_dumps(input: &[u8], limits: &Limits) -> Result<(Version, Value), DecodeError> {
        Value::decode_dumps_with(input, limits, StrConfig::LOADS)
    }

    /// Decodes `dumps` output into an owned value, merging equal keys as a reader with
    /// string config `config` would.
    pub fn decode_dumps_with(
        input: &[u8],
        limits: &Limits,
        config: StrConfig,
    ) -> Result<(Version, Value), DecodeError> {
        within_message(input.len(), limits)?;
        let version = match input.first() {
            None => {
                return Err(DecodeError::new(
                    crate::DecodeErrorKind::UnexpectedEnd {
                        needed: 1,
                        available: 0,
                    },
                    0,
                    None,
                ))
            }
            Some(&b) => Version::from_byte(b).ok_or(DecodeError::new(
                crate::DecodeErrorKind::UnknownVersion(b),
                0,
                None,
            ))?,
        };
        let (v, end) = decode::owned::decode(input, 1, limits, config)?;
        decode::no_trailing(input, end)?;
        Ok((version, v))
    }

    /// A small `int`.
    pub const fn int(v: i64) -> Value {
        Value::Int(Int::Small(v))
    }

    /// The Python type name, as a Python 3 reader names it (`long` and `unicode` as
    /// `int` and `str`; a `PY2STRING` as `str`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::Long(_) => "int",
            Value::Float(_) => "float",
            Value::Complex(..) => "complex",
            Value::Bytes(_) => "bytes",
            Value::Str(_) | Value::Unicode(_) | Value::Py2Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Dict(_) => "dict",
            Value::Channel(_) => "Channel",
        }
    }

    /// The text of a `str` / `unicode` (a `PY2STRING` only if it is valid UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Unicode(s) => Some(s),
            Value::Py2Str(b) => core::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The integer if it is an `int`/`long`/`bool` that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(Int::Small(v)) | Value::Long(Int::Small(v)) => Some(*v),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

impl Encode for Value {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        match self {
            Value::None => e.none(),
            Value::Bool(b) => e.bool(*b),
            Value::Int(i) => i.encode(IntKind::Int, e),
            Value::Long(i) => i.encode(IntKind::Long, e),
            Value::Float(f) => e.float(*f),
            Value::Complex(r, i) => e.complex(*r, *i),
            Value::Bytes(b) => e.bytes(b),
            Value::Str(s) => e.str(s),
            Value::Unicode(s) => e.unicode(s),
            Value::Py2Str(b) => e.py2str(b),
            Value::Channel(c) => e.channel(*c),
            Value::List(items) => {
                e.enter()?;
                e.new_list(items.len())?;
                for (i, item) in items.iter().enumerate() {
                    e.list_index(i)?;
                    item.encode(e)?;
                    e.setitem()?;
                }
                e.leave();
                Ok(())
            }
            Value::Tuple(items) => {
                e.enter()?;
                items.iter().try_for_each(|i| i.encode(e))?;
                e.leave();
                e.build_tuple(items.len())
            }
            Value::Set(items) => {
                e.enter()?;
                items.iter().try_for_each(|i| i.encode(e))?;
                e.leave();
                e.build_set(items.len())
            }
            Value::FrozenSet(items) => {
                e.enter()?;
                items.iter().try_for_each(|i| i.encode(e))?;
                e.leave();
                e.build_frozenset(items.len())
            }
            Value::Dict(entries) => {
                e.enter()?;
                e.new_dict()?;
                for (k, v) in entries {
                    k.encode(e)?;
                    v.encode(e)?;
                    e.setitem()?;
                }
                e.leave();
                Ok(())
            }
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(Int::Small(i64::from(v)))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::None, Into::into)
    }
}
