//! `Serialize` types into execnet values.

use core::fmt;

use ::serde::ser::{self, Serialize};

use crate::encode::{Encode, Encoder};
use crate::error::EncodeError;
use crate::sink::Sink;

/// Wraps a `Serialize` value so that it can be passed wherever an
/// [`Encode`] is expected.
pub struct Serde<'t, T: ?Sized>(pub &'t T);

impl<T: Serialize + ?Sized> Encode for Serde<'_, T> {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        self.0.serialize(Serializer::new(e))
    }
}

/// What a reserved newtype name (see `value.rs`) asks the inner value to be written as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    Set,
    FrozenSet,
    Unicode,
    Py2Str,
    Long,
    BigInt,
    Complex,
    /// One of the two doubles of a complex: eight raw bytes.
    ComplexPart,
    Channel,
}

impl Special {
    fn of(name: &str) -> Special {
        use super::names;
        match name {
            names::SET => Special::Set,
            names::FROZENSET => Special::FrozenSet,
            names::UNICODE => Special::Unicode,
            names::PY2STR => Special::Py2Str,
            names::LONG => Special::Long,
            names::BIGINT => Special::BigInt,
            names::COMPLEX => Special::Complex,
            names::CHANNEL => Special::Channel,
            _ => Special::None,
        }
    }
}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError::Custom(crate::error::Message::from_display(
            msg,
            "serialize error (text needs the alloc feature)",
        ))
    }
}

/// The serde `Serializer`: writes one value's opcodes into an [`Encoder`].
pub struct Serializer<'e, S> {
    e: &'e mut Encoder<S>,
    special: Special,
}

impl<'e, S: Sink> Serializer<'e, S> {
    /// A serializer writing through `e`.
    pub fn new(e: &'e mut Encoder<S>) -> Self {
        Serializer {
            e,
            special: Special::None,
        }
    }

    fn int(self, v: i128) -> Result<(), EncodeError> {
        match self.special {
            Special::Long => self.e.int_kind(v, crate::value::IntKind::Long),
            Special::Channel => self.e.channel(
                i32::try_from(v)
                    .map_err(|_| EncodeError::Unsupported("a channel id beyond i32"))?,
            ),
            Special::ComplexPart => Err(EncodeError::Unsupported(
                "a complex part that is not a float",
            )),
            _ => self.e.int(v),
        }
    }
}

impl<'e, S: Sink> ser::Serializer for Serializer<'e, S> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = List<'e, S>;
    type SerializeTuple = Tuple<'e, S>;
    type SerializeTupleStruct = Tuple<'e, S>;
    type SerializeTupleVariant = Tuple<'e, S>;
    type SerializeMap = Dict<'e, S>;
    type SerializeStruct = Dict<'e, S>;
    type SerializeStructVariant = Dict<'e, S>;

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.e.bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        self.int(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        match i128::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => {
                let mut buf = [0u8; 48];
                let mut at = buf.len();
                let mut n = v;
                loop {
                    at -= 1;
                    if let Some(slot) = buf.get_mut(at) {
                        *slot = b'0' + (n % 10) as u8;
                    }
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                let text = core::str::from_utf8(buf.get(at..).unwrap_or(&[]))
                    .map_err(|_| EncodeError::InvalidIntText)?;
                self.e.big_int(
                    text,
                    if self.special == Special::Long {
                        crate::value::IntKind::Long
                    } else {
                        crate::value::IntKind::Int
                    },
                )
            }
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.e.float(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        if self.special == Special::ComplexPart {
            return self.e.raw(&v.to_bits().to_be_bytes());
        }
        self.e.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.e.str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        match self.special {
            Special::Unicode => self.e.unicode(v),
            Special::BigInt => self.e.big_int(v, crate::value::IntKind::Int),
            Special::Long => self.e.big_int(v, crate::value::IntKind::Long),
            _ => self.e.str(v),
        }
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        match self.special {
            Special::Py2Str => self.e.py2str(v),
            _ => self.e.bytes(v),
        }
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.e.none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.e.none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.e.none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.e.str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(Serializer {
            e: self.e,
            special: Special::of(name),
        })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.e.enter()?;
        self.e.new_dict()?;
        self.e.str(variant)?;
        value.serialize(Serializer::new(&mut *self.e))?;
        self.e.setitem()?;
        self.e.leave();
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<List<'e, S>, EncodeError> {
        let close = match self.special {
            Special::Set => Some(crate::opcode::SET),
            Special::FrozenSet => Some(crate::opcode::FROZENSET),
            _ => None,
        };
        self.e.enter()?;
        if let Some(close) = close {
            // A set: members first, the opcode and their count after.
            return Ok(List {
                e: self.e,
                index: 0,
                len: usize::MAX,
                close: Some(close),
            });
        }
        let len = len.ok_or(EncodeError::Unsupported(
            "a sequence of unknown length (execnet lists announce their length first)",
        ))?;
        self.e.new_list(len)?;
        Ok(List {
            e: self.e,
            index: 0,
            len,
            close: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Tuple<'e, S>, EncodeError> {
        if self.special == Special::Complex {
            if len != 2 {
                return Err(EncodeError::Unsupported(
                    "a complex that is not (real, imag)",
                ));
            }
            self.e.complex_header()?;
            return Ok(Tuple {
                e: self.e,
                len,
                variant: false,
                complex: Some(0),
            });
        }
        self.e.enter()?;
        Ok(Tuple {
            e: self.e,
            len,
            variant: false,
            complex: None,
        })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Tuple<'e, S>, EncodeError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Tuple<'e, S>, EncodeError> {
        self.e.enter()?;
        self.e.new_dict()?;
        self.e.str(variant)?;
        self.e.enter()?;
        Ok(Tuple {
            e: self.e,
            len,
            variant: true,
            complex: None,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Dict<'e, S>, EncodeError> {
        self.e.enter()?;
        self.e.new_dict()?;
        Ok(Dict {
            e: self.e,
            variant: false,
        })
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Dict<'e, S>, EncodeError> {
        self.e.enter()?;
        self.e.new_dict()?;
        Ok(Dict {
            e: self.e,
            variant: false,
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Dict<'e, S>, EncodeError> {
        self.e.enter()?;
        self.e.new_dict()?;
        self.e.str(variant)?;
        self.e.enter()?;
        self.e.new_dict()?;
        Ok(Dict {
            e: self.e,
            variant: true,
        })
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.e.str_display(value)
    }
}

/// Serializes a sequence as a list.
pub struct List<'e, S> {
    e: &'e mut Encoder<S>,
    index: usize,
    len: usize,
    /// For a set: its opcode, written after the members.
    close: Option<u8>,
}

impl<S: Sink> ser::SerializeSeq for List<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        if self.close.is_some() {
            self.index += 1;
            return value.serialize(Serializer::new(&mut *self.e));
        }
        if self.index >= self.len {
            return Err(EncodeError::Misuse("more sequence items than announced"));
        }
        self.e.list_index(self.index)?;
        value.serialize(Serializer::new(&mut *self.e))?;
        self.index += 1;
        self.e.setitem()
    }
    fn end(self) -> Result<(), EncodeError> {
        if let Some(close) = self.close {
            self.e.leave();
            return if close == crate::opcode::SET {
                self.e.build_set(self.index)
            } else {
                self.e.build_frozenset(self.index)
            };
        }
        if self.index == self.len {
            self.e.leave();
            Ok(())
        } else {
            Err(EncodeError::Misuse("fewer sequence items than announced"))
        }
    }
}

/// Serializes a tuple (items, then `BUILDTUPLE n`).
pub struct Tuple<'e, S> {
    e: &'e mut Encoder<S>,
    len: usize,
    variant: bool,
    /// For a complex: how many of its two parts were written.
    complex: Option<usize>,
}

impl<S: Sink> Tuple<'_, S> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        if let Some(parts) = &mut self.complex {
            *parts += 1;
            return value.serialize(Serializer {
                e: &mut *self.e,
                special: Special::ComplexPart,
            });
        }
        value.serialize(Serializer::new(&mut *self.e))
    }
    fn finish(self) -> Result<(), EncodeError> {
        if let Some(parts) = self.complex {
            return if parts == 2 {
                Ok(())
            } else {
                Err(EncodeError::Unsupported(
                    "a complex that is not (real, imag)",
                ))
            };
        }
        self.e.leave();
        self.e.build_tuple(self.len)?;
        if self.variant {
            self.e.setitem()?;
            self.e.leave();
        }
        Ok(())
    }
}

impl<S: Sink> ser::SerializeTuple for Tuple<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.item(value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
}

impl<S: Sink> ser::SerializeTupleStruct for Tuple<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.item(value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
}

impl<S: Sink> ser::SerializeTupleVariant for Tuple<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.item(value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
}

/// Serializes a map or struct as a dict.
pub struct Dict<'e, S> {
    e: &'e mut Encoder<S>,
    variant: bool,
}

impl<S: Sink> ser::SerializeMap for Dict<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(Serializer::new(&mut *self.e))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(Serializer::new(&mut *self.e))?;
        self.e.setitem()
    }
    fn end(self) -> Result<(), EncodeError> {
        self.e.leave();
        Ok(())
    }
}

impl<S: Sink> Dict<'_, S> {
    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.e.str(key)?;
        value.serialize(Serializer::new(&mut *self.e))?;
        self.e.setitem()
    }
}

impl<S: Sink> ser::SerializeStruct for Dict<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.e.leave();
        Ok(())
    }
}

impl<S: Sink> ser::SerializeStructVariant for Dict<'_, S> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.e.leave();
        if self.variant {
            self.e.setitem()?;
            self.e.leave();
        }
        Ok(())
    }
}
