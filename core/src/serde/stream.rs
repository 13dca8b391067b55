//! execnet values into `Deserialize` types straight from the opcode stream, with no tree.
//!
//! The stream is not always enough to decide: tuples, sets and frozensets come as their
//! members first and their opcode last, so a value that starts with a scalar may be that
//! scalar or the first member of something; a dict announces no size, so where it ends
//! depends on what follows it. This reader lets the Rust type guide it and takes the
//! simplest reading at each such point, then checks every opcode it passes exactly as
//! the stack machine would execute it (list indexes in order, `SETITEM` after each item
//! and entry, the closing opcode's count, hashable keys and members, every limit). A
//! reading that gets through to `STOP` is therefore the one execution of the input. Any
//! failure, whether a wrong guess or bad input, sends the caller to the decoded tape,
//! which decides for certain and reports errors with their place.

use ::serde::de::{self, DeserializeSeed, Visitor};

use crate::decode::reader::{index_at, within_message, ListRoom, Reader};
use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::limits::Limits;
use crate::opcode as op;
use crate::strconfig::StrConfig;
use crate::value::PyStr;

use super::de::{mismatch, visit_big_bytes, visit_str};

/// Deserializes a `T` from the value starting at `start`, which must fill the input.
pub(crate) fn from_stream<'a, T: de::Deserialize<'a>>(
    input: &'a [u8],
    start: usize,
    limits: &Limits,
    config: StrConfig,
) -> Result<T, DecodeError> {
    within_message(input.len(), limits)?;
    let mut s = Stream {
        r: Reader::new(input, start),
        limits,
        max_depth: limits.depth_cap(),
        config,
        depth: 0,
        values: 0,
        room: ListRoom::default(),
        hashable: true,
        follows: Follows::Stop,
    };
    let v = T::deserialize(&mut s)?;
    if s.r.input.get(s.r.pos) != Some(&op::STOP) || s.r.pos + 1 != input.len() {
        return Err(guess());
    }
    Ok(v)
}

/// A reading that does not fit: the caller decides on the tape.
#[cold]
#[inline(never)]
fn guess() -> DecodeError {
    DecodeError::unplaced(K::Internal)
}

/// What must follow the value being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follows {
    /// `SETITEM`: a list item or a dict value.
    SetItem,
    /// `STOP`: the whole value.
    Stop,
    /// The value: a dict key.
    Value,
    /// Another member or the closing opcode: a tuple or set member.
    Member,
}

pub(crate) struct Stream<'a, 'l> {
    r: Reader<'a>,
    limits: &'l Limits,
    max_depth: u32,
    config: StrConfig,
    /// Containers open around the cursor.
    depth: u32,
    values: u32,
    room: ListRoom,
    /// Whether the value read last may be a dict key or set member.
    hashable: bool,
    /// What follows the value about to be read.
    follows: Follows,
}

impl<'a> Stream<'a, '_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.r.input.get(self.r.pos).copied()
    }

    #[inline(always)]
    fn count_value(&mut self) -> Result<(), DecodeError> {
        self.values += 1;
        if self.values > self.limits.max_items {
            return Err(guess());
        }
        Ok(())
    }

    #[inline(always)]
    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(guess());
        }
        Ok(())
    }

    /// Expects `SETITEM` at the cursor.
    #[inline(always)]
    fn setitem(&mut self) -> Result<(), DecodeError> {
        if self.peek() != Some(op::SETITEM) {
            return Err(guess());
        }
        self.r.pos += 1;
        Ok(())
    }

    /// `INT` at the cursor.
    #[inline(always)]
    fn int<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, DecodeError> {
        let v = match self.r.input.get(self.r.pos + 1..self.r.pos + 5) {
            Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
            _ => return Err(guess()),
        };
        self.r.pos += 5;
        self.count_value()?;
        self.hashable = true;
        visitor.visit_i64(i64::from(v))
    }

    /// `FLOAT` at the cursor.
    #[inline(always)]
    fn float<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, DecodeError> {
        let f = match self.r.input.get(self.r.pos + 1..self.r.pos + 9) {
            Some(&[a, b, c, d, e, f, g, h]) => f64::from_be_bytes([a, b, c, d, e, f, g, h]),
            _ => return Err(guess()),
        };
        self.r.pos += 9;
        self.count_value()?;
        self.hashable = true;
        visitor.visit_f64(f)
    }

    /// Reads the scalar at the cursor and visits it.
    #[inline(always)]
    fn scalar<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, DecodeError> {
        let limits = self.limits;
        let code = self.r.next_op().ok_or_else(guess)?;
        self.count_value()?;
        self.hashable = true;
        match code {
            op::INT | op::LONG => visitor.visit_i64(i64::from(self.r.int4()?)),
            op::FLOAT => visitor.visit_f64(self.r.f64()?),
            op::PY3STRING | op::UNICODE => {
                let (at, len) = self.r.blob(limits)?;
                let text = core::str::from_utf8(self.r.bytes(at, len)).map_err(|_| guess())?;
                let s = if code == op::PY3STRING {
                    PyStr::Py3(text)
                } else {
                    PyStr::Unicode(text)
                };
                visit_str(s, self.config, visitor)
            }
            op::NONE => visitor.visit_unit(),
            op::TRUE => visitor.visit_bool(true),
            op::FALSE => visitor.visit_bool(false),
            op::LONGINT | op::LONGLONG => {
                let (at, len) = self.r.int_text(limits)?;
                visit_big_bytes(self.r.bytes(at, len), visitor)
            }
            op::BYTES => {
                let (at, len) = self.r.blob(limits)?;
                visitor.visit_borrowed_bytes(self.r.bytes(at, len))
            }
            op::PY2STRING => {
                let (at, len) = self.r.blob(limits)?;
                visit_str(PyStr::Py2(self.r.bytes(at, len)), self.config, visitor)
            }
            op::COMPLEX => {
                let re = self.r.f64()?;
                let im = self.r.f64()?;
                visitor.visit_seq(de::value::SeqDeserializer::new([re, im].into_iter()))
            }
            op::CHANNEL => visitor.visit_i32(self.r.int4()?),
            _ => Err(guess()),
        }
    }

    /// A list: `NEWLIST n`, then `INT i`, an item, `SETITEM` for each i in order.
    fn list<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, DecodeError> {
        self.r.next_op();
        let n = self.r.count()?;
        self.room.reserve(&self.r, n, self.limits)?;
        self.count_value()?;
        self.enter()?;
        let mut items = List { s: self, n, i: 0 };
        let v = visitor.visit_seq(&mut items)?;
        if items.i != n {
            return Err(guess());
        }
        self.depth -= 1;
        self.hashable = false;
        Ok(v)
    }

    /// A dict: `NEWDICT`, then key, value, `SETITEM` for each entry, ending where a
    /// `SETITEM` or `STOP` follows (any other end is left to the tape).
    fn dict<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, DecodeError> {
        self.r.next_op();
        self.count_value()?;
        self.enter()?;
        let v = visitor.visit_map(&mut Dict { s: self })?;
        if !matches!(self.peek(), Some(op::SETITEM | op::STOP)) {
            return Err(guess());
        }
        self.depth -= 1;
        self.hashable = false;
        Ok(v)
    }

    /// A tuple, set or frozenset: members, then the opcode with their count.
    fn members<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, DecodeError> {
        self.enter()?;
        let mut m = Members {
            s: self,
            n: 0,
            hashable: true,
        };
        let v = visitor.visit_seq(&mut m)?;
        let (n, hashable) = (m.n, m.hashable);
        let code = self.r.next_op().ok_or_else(guess)?;
        if !matches!(code, op::BUILDTUPLE | op::SET | op::FROZENSET)
            || self.r.count()? != n
            || (code != op::BUILDTUPLE && !hashable)
        {
            return Err(guess());
        }
        self.count_value()?;
        self.depth -= 1;
        self.hashable = match code {
            op::BUILDTUPLE => hashable,
            op::SET => false,
            _ => true,
        };
        Ok(v)
    }

    /// Where the scalar at the cursor ends.
    #[inline(always)]
    fn after_scalar(&self) -> Option<usize> {
        let pos = self.r.pos;
        Some(
            pos + match *self.r.input.get(pos)? {
                op::NONE | op::TRUE | op::FALSE => 1,
                op::INT | op::LONG | op::CHANNEL => 5,
                op::FLOAT => 9,
                op::COMPLEX => 17,
                _ => 5 + usize::try_from(self.r.i32_at(pos + 1)).ok()?,
            },
        )
    }

    /// Whether the value at the cursor, which starts with a scalar, is more than that
    /// scalar: a tuple or set whose first member it is. Known only where a `SETITEM` or
    /// `STOP` must follow the value; elsewhere the scalar is taken for the value.
    #[inline(always)]
    fn starts_members(&self) -> bool {
        match self.follows {
            Follows::SetItem | Follows::Stop => self
                .after_scalar()
                .and_then(|at| self.r.input.get(at))
                .is_some_and(|&c| c != op::SETITEM && c != op::STOP),
            Follows::Value | Follows::Member => false,
        }
    }

    /// Whether the cursor is at the closing opcode of `n` members.
    #[inline(always)]
    fn closes(&self, n: usize) -> bool {
        matches!(self.peek(), Some(op::BUILDTUPLE | op::SET | op::FROZENSET))
            && self.r.i32_at(self.r.pos + 1) as u32 as usize == n
    }
}

/// `deserialize_*` methods for scalar types: a scalar opcode is read as the value, the
/// one the type most likely meets (`INT` for integers, `FLOAT` for floats) first.
macro_rules! scalar_requests {
    ($($method:ident $likely:ident $read:ident,)*) => {$(
        #[inline]
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.peek() {
                Some(op::$likely) => self.$read(visitor),
                Some(op::NEWLIST | op::NEWDICT | op::BUILDTUPLE | op::SET | op::FROZENSET)
                | None => de::Deserializer::deserialize_any(self, visitor),
                _ => self.scalar(visitor),
            }
        }
    )*};
}

impl<'a> de::Deserializer<'a> for &mut Stream<'a, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek().ok_or_else(guess)? {
            op::NEWLIST => self.list(visitor),
            op::NEWDICT => self.dict(visitor),
            op::BUILDTUPLE | op::SET | op::FROZENSET if self.closes(0) => self.members(visitor),
            _ if self.starts_members() => self.members(visitor),
            _ => self.scalar(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek().ok_or_else(guess)? {
            op::NEWLIST => self.list(visitor),
            op::NEWDICT => Err(mismatch("a sequence", "dict")),
            op::COMPLEX => self.scalar(visitor),
            _ => self.members(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek() {
            Some(op::NEWDICT) => self.dict(visitor),
            _ => Err(guess()),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.peek() == Some(op::NONE) {
            self.r.pos += 1;
            self.count_value()?;
            self.hashable = true;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        #[cfg(feature = "alloc")]
        if name == super::names::VALUE {
            // A `Value` wants its exact encoding: the rest of the input when the value is
            // the whole payload (it checks it with the same limits); elsewhere the tape
            // has it.
            if self.follows != Follows::Stop {
                return Err(guess());
            }
            let rest = self.r.input.get(self.r.pos..).unwrap_or(&[]);
            let bytes = super::value::exact_payload(self.config, self.limits, rest);
            let v = visitor.visit_map(super::value::ExactMap::new(bytes))?;
            self.r.pos = self.r.input.len().saturating_sub(1);
            return Ok(v);
        }
        let _ = name;
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.peek() {
            Some(op::PY2STRING | op::PY3STRING | op::UNICODE) => {
                let limits = self.limits;
                let code = self.r.next_op().ok_or_else(guess)?;
                self.count_value()?;
                self.hashable = true;
                let (at, len) = self.r.blob(limits)?;
                let bytes = self.r.bytes(at, len);
                if code != op::PY2STRING && core::str::from_utf8(bytes).is_err() {
                    return Err(guess());
                }
                visitor.visit_borrowed_bytes(bytes)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.peek() {
            Some(op::PY2STRING | op::PY3STRING | op::UNICODE) => {
                visitor.visit_enum(UnitVariant { s: self })
            }
            Some(op::NEWDICT) => {
                self.r.next_op();
                self.count_value()?;
                self.enter()?;
                let v = visitor.visit_enum(DictVariant { s: &mut *self })?;
                self.setitem()?;
                if !matches!(self.peek(), Some(op::SETITEM | op::STOP)) {
                    return Err(guess());
                }
                self.depth -= 1;
                self.hashable = false;
                Ok(v)
            }
            _ => Err(guess()),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_any(de::IgnoredAny)?;
        visitor.visit_unit()
    }

    // A Rust scalar type asks for a scalar: the opcode is read as one. Were it the first
    // member of a tuple, what follows it would not fit where it is, and the reading fails.
    scalar_requests! {
        deserialize_bool TRUE scalar,
        deserialize_i8 INT int,
        deserialize_i16 INT int,
        deserialize_i32 INT int,
        deserialize_i64 INT int,
        deserialize_i128 INT int,
        deserialize_u8 INT int,
        deserialize_u16 INT int,
        deserialize_u32 INT int,
        deserialize_u64 INT int,
        deserialize_u128 INT int,
        deserialize_f32 FLOAT float,
        deserialize_f64 FLOAT float,
        deserialize_char PY3STRING scalar,
        deserialize_str PY3STRING scalar,
        deserialize_string PY3STRING scalar,
        deserialize_identifier PY3STRING scalar,
    }

    ::serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        unit unit_struct
    }
}

struct List<'s, 'a, 'l> {
    s: &'s mut Stream<'a, 'l>,
    n: usize,
    i: usize,
}

impl<'a> de::SeqAccess<'a> for List<'_, 'a, '_> {
    type Error = DecodeError;
    #[inline]
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.i == self.n {
            return Ok(None);
        }
        let s = &mut *self.s;
        if !index_at(s.r.input, s.r.pos, self.i) {
            return Err(guess());
        }
        s.r.pos += 5;
        s.room.begin();
        s.follows = Follows::SetItem;
        let v = seed.deserialize(&mut *s)?;
        s.setitem()?;
        s.room.end();
        self.i += 1;
        Ok(Some(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.n - self.i)
    }
}

struct Dict<'s, 'a, 'l> {
    s: &'s mut Stream<'a, 'l>,
}

impl<'a> de::MapAccess<'a> for Dict<'_, 'a, '_> {
    type Error = DecodeError;
    #[inline]
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if matches!(self.s.peek(), Some(op::SETITEM | op::STOP) | None) {
            return Ok(None);
        }
        self.s.follows = Follows::Value;
        let k = seed.deserialize(&mut *self.s)?;
        if !self.s.hashable {
            return Err(guess());
        }
        Ok(Some(k))
    }
    #[inline]
    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        self.s.follows = Follows::SetItem;
        let v = seed.deserialize(&mut *self.s)?;
        self.s.setitem()?;
        Ok(v)
    }
}

struct Members<'s, 'a, 'l> {
    s: &'s mut Stream<'a, 'l>,
    n: usize,
    hashable: bool,
}

impl<'a> de::SeqAccess<'a> for Members<'_, 'a, '_> {
    type Error = DecodeError;
    #[inline]
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.s.closes(self.n) {
            return Ok(None);
        }
        self.s.follows = Follows::Member;
        let v = seed.deserialize(&mut *self.s)?;
        self.hashable &= self.s.hashable;
        self.n += 1;
        Ok(Some(v))
    }
}

/// A unit variant: its name as a string.
struct UnitVariant<'s, 'a, 'l> {
    s: &'s mut Stream<'a, 'l>,
}

impl<'a> de::EnumAccess<'a> for UnitVariant<'_, 'a, '_> {
    type Error = DecodeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        let v = seed.deserialize(&mut *self.s)?;
        Ok((v, self))
    }
}

impl<'a> de::VariantAccess<'a> for UnitVariant<'_, 'a, '_> {
    type Error = DecodeError;
    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'a>>(
        self,
        _seed: T,
    ) -> Result<T::Value, DecodeError> {
        Err(guess())
    }
    fn tuple_variant<V: Visitor<'a>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(guess())
    }
    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(guess())
    }
}

/// A variant with content: a one-entry dict `{name: content}`.
struct DictVariant<'s, 'a, 'l> {
    s: &'s mut Stream<'a, 'l>,
}

impl<'a> de::EnumAccess<'a> for DictVariant<'_, 'a, '_> {
    type Error = DecodeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        self.s.follows = Follows::Value;
        let v = seed.deserialize(&mut *self.s)?;
        if !self.s.hashable {
            return Err(guess());
        }
        Ok((v, self))
    }
}

impl<'a> de::VariantAccess<'a> for DictVariant<'_, 'a, '_> {
    type Error = DecodeError;
    fn unit_variant(self) -> Result<(), DecodeError> {
        if self.s.peek() != Some(op::NONE) {
            return Err(guess());
        }
        self.s.r.pos += 1;
        self.s.count_value()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'a>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        self.s.follows = Follows::SetItem;
        seed.deserialize(&mut *self.s)
    }
    fn tuple_variant<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.s.follows = Follows::SetItem;
        de::Deserializer::deserialize_any(&mut *self.s, visitor)
    }
    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.s.follows = Follows::SetItem;
        de::Deserializer::deserialize_any(&mut *self.s, visitor)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::collections::BTreeMap;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    use ::serde::de::{self, Deserialize, MapAccess, SeqAccess, Visitor};
    use proptest::prelude::*;

    use super::from_stream;
    use crate::decode::decode_placed;
    use crate::serde::de::Deserializer;
    use crate::{encode, Envelope, Int, Limits, StrConfig, Value};

    /// Whatever `deserialize_any` shows, written down: two readings that agree on it
    /// agree on the value.
    #[derive(Debug, PartialEq)]
    struct Shape(String);

    impl<'de> Deserialize<'de> for Shape {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Shape;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("anything")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Shape, E> {
                    Ok(Shape(format!("{v}")))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Shape, E> {
                    Ok(Shape(format!("i{v}")))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Shape, E> {
                    Ok(Shape(format!("u{v}")))
                }
                fn visit_i128<E>(self, v: i128) -> Result<Shape, E> {
                    Ok(Shape(format!("I{v}")))
                }
                fn visit_u128<E>(self, v: u128) -> Result<Shape, E> {
                    Ok(Shape(format!("U{v}")))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Shape, E> {
                    Ok(Shape(format!("f{:x}", v.to_bits())))
                }
                fn visit_str<E>(self, v: &str) -> Result<Shape, E> {
                    Ok(Shape(format!("{v:?}")))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Shape, E> {
                    Ok(Shape(format!("b{v:?}")))
                }
                fn visit_unit<E>(self) -> Result<Shape, E> {
                    Ok(Shape("None".into()))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Shape, A::Error> {
                    let mut out = String::from("[");
                    while let Some(Shape(s)) = a.next_element()? {
                        out.push_str(&s);
                        out.push(',');
                    }
                    out.push(']');
                    Ok(Shape(out))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Shape, A::Error> {
                    let mut out = String::from("{");
                    while let Some((Shape(k), Shape(v))) = a.next_entry()? {
                        out.push_str(&format!("{k}:{v},"));
                    }
                    out.push('}');
                    Ok(Shape(out))
                }
            }
            d.deserialize_any(V)
        }
    }

    fn tape<'a, T: Deserialize<'a>>(input: &'a [u8]) -> Result<T, crate::DecodeError> {
        let mut nodes = Vec::new();
        let (v, at) = decode_placed(input, 0, &mut nodes, &Limits::DEFAULT)?;
        T::deserialize(Deserializer::placed(v, at, StrConfig::GATEWAY))
    }

    /// Where the stream reads a value, it reads what the tape reads.
    fn agree<'a, T: Deserialize<'a> + PartialEq + core::fmt::Debug>(input: &'a [u8]) {
        if let Ok(s) = from_stream::<T>(input, 0, &Limits::DEFAULT, StrConfig::GATEWAY) {
            match tape::<T>(input) {
                Ok(t) => assert_eq!(s, t, "{input:02x?}"),
                Err(e) => panic!("the stream read {s:?} where the tape refuses: {e}"),
            }
        }
    }

    fn check(input: &[u8]) {
        agree::<Shape>(input);
        agree::<Vec<i64>>(input);
        agree::<Vec<(i64, String)>>(input);
        agree::<BTreeMap<String, Vec<Option<f64>>>>(input);
        agree::<(bool, Vec<Shape>)>(input);
        agree::<Option<Vec<Vec<u8>>>>(input);
        let _ = from_stream::<de::IgnoredAny>(input, 0, &Limits::DEFAULT, StrConfig::GATEWAY)
            .map(|_| tape::<de::IgnoredAny>(input).expect("tape agrees"));
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| Value::Int(Int::Small(i))),
            "-?[1-9][0-9]{20,30}".prop_map(|t| Value::Int(Int::parse(&t).unwrap())),
            any::<f64>().prop_map(Value::Float),
            "[a-z]{0,3}".prop_map(|s| Value::from(s.as_str())),
            proptest::collection::vec(any::<u8>(), 0..3).prop_map(Value::Bytes),
            (any::<f64>(), any::<f64>()).prop_map(|(a, b)| Value::Complex(a, b)),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| {
                    Value::Dict(
                        v.into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::from(format!("k{i}").as_str()), v))
                            .collect(),
                    )
                }),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| {
                    Value::Dict(
                        v.into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::int(i as i64), v))
                            .collect(),
                    )
                }),
                proptest::collection::vec(any::<i32>(), 0..4).prop_map(|v| Value::Set(
                    v.into_iter().map(|i| Value::int(i.into())).collect()
                )),
                proptest::collection::vec(any::<u8>(), 0..4).prop_map(|v| Value::FrozenSet(
                    v.into_iter().map(|i| Value::int(i.into())).collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024),
            ..ProptestConfig::default()
        })]

        #[test]
        fn stream_and_tape_agree_on_values(v in value()) {
            let bytes = encode::to_vec(&v, Envelope::Internal).unwrap();
            check(&bytes);
            // The stream reads every value whose shape it can tell from the opcodes.
            let s = from_stream::<Shape>(&bytes, 0, &Limits::DEFAULT, StrConfig::GATEWAY);
            let t = tape::<Shape>(&bytes).ok();
            if readable(&v, Ctx::Ends) {
                prop_assert_eq!(s.ok(), t);
            }
        }

        #[test]
        fn stream_never_accepts_what_the_tape_refuses(
            v in value(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..4),
        ) {
            let mut bytes = encode::to_vec(&v, Envelope::Internal).unwrap();
            for (at, b, how) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at % bytes.len();
                match how {
                    0 => bytes[i] = b,
                    1 => { bytes.remove(i); }
                    _ => bytes.insert(i, b),
                }
            }
            check(&bytes);
        }
    }

    #[derive(Clone, Copy)]
    enum Ctx {
        /// A `SETITEM` or `STOP` follows.
        Ends,
        /// A tuple or set member.
        Member,
    }

    fn scalar(v: &Value) -> bool {
        !matches!(
            v,
            Value::List(_) | Value::Tuple(_) | Value::Set(_) | Value::FrozenSet(_) | Value::Dict(_)
        )
    }

    /// Whether the stream, reading with `deserialize_any` only, can tell `v`'s shape in
    /// `ctx` (what the module docs promise).
    fn readable(v: &Value, ctx: Ctx) -> bool {
        match v {
            Value::List(items) => items.iter().all(|i| readable(i, Ctx::Ends)),
            Value::Dict(entries) => {
                matches!(ctx, Ctx::Ends)
                    && entries
                        .iter()
                        .all(|(k, v)| scalar(k) && readable(v, Ctx::Ends))
            }
            Value::Tuple(m) | Value::Set(m) | Value::FrozenSet(m) => {
                matches!(ctx, Ctx::Ends)
                    && m.first().is_none_or(scalar)
                    && m.iter().all(|x| {
                        scalar(x) || (matches!(x, Value::List(_)) && readable(x, Ctx::Member))
                    })
            }
            _ => true,
        }
    }

    #[test]
    fn typical_shapes_are_read_from_the_stream() {
        let cases = vec![
            Value::List((0..50).map(Value::int).collect()),
            Value::Dict(vec![(
                Value::from("a"),
                Value::List(vec![Value::Tuple(vec![Value::int(1), Value::from("x")])]),
            )]),
            Value::Tuple(vec![Value::None, Value::Float(0.5), Value::Tuple(vec![])]),
        ];
        for v in cases {
            let bytes = encode::to_vec(&v, Envelope::Internal).unwrap();
            assert!(
                from_stream::<Shape>(&bytes, 0, &Limits::DEFAULT, StrConfig::GATEWAY).is_ok(),
                "{v:?}"
            );
        }
    }
}
