//! execnet values into `Deserialize` types.

use core::fmt;

use ::serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::{DecodeError, DecodeErrorKind, Message};
use crate::strconfig::{Loaded, Reader, StrConfig};
use crate::value::{MapIter, PyStr, SeqIter, ValueRef};

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::unplaced(DecodeErrorKind::Custom(Message::from_display(
            msg,
            "deserialize error (text needs the alloc feature)",
        )))
    }
}

fn mismatch(expected: &'static str, found: &ValueRef<'_, '_>) -> DecodeError {
    DecodeError::unplaced(DecodeErrorKind::Mismatch {
        expected,
        found: found.type_name(),
    })
}

/// A serde `Deserializer` over a decoded [`ValueRef`].
pub struct Deserializer<'a, 's> {
    value: ValueRef<'a, 's>,
    config: StrConfig,
}

impl<'a, 's> Deserializer<'a, 's> {
    /// Deserializes from `value`, loading strings under `config` (execnet 2.x rules).
    pub fn new(value: ValueRef<'a, 's>, config: StrConfig) -> Self {
        Deserializer { value, config }
    }
}

/// Deserializes a `T` from a decoded value, borrowing strings from the input.
pub fn from_value<'a, T: de::Deserialize<'a>>(
    value: ValueRef<'a, '_>,
    config: StrConfig,
) -> Result<T, DecodeError> {
    T::deserialize(Deserializer::new(value, config))
}

/// Decodes a channel payload and deserializes a `T` from it (string config of
/// `loads()`), with temporary node storage on the heap.
#[cfg(feature = "alloc")]
pub fn from_internal<'a, T: de::Deserialize<'a>>(
    input: &'a [u8],
    limits: &crate::Limits,
    config: StrConfig,
) -> Result<T, DecodeError> {
    let mut nodes = alloc::vec::Vec::new();
    let v = crate::decode::decode_internal(input, &mut nodes, limits)?;
    from_value(v, config)
}

/// Decodes `dumps` output and deserializes a `T` from it.
#[cfg(feature = "alloc")]
pub fn from_dumps<'a, T: de::Deserialize<'a>>(
    input: &'a [u8],
    limits: &crate::Limits,
    config: StrConfig,
) -> Result<T, DecodeError> {
    let mut nodes = alloc::vec::Vec::new();
    let (_, v) = crate::decode::decode_dumps(input, &mut nodes, limits)?;
    from_value(v, config)
}

fn visit_str<'a, V: Visitor<'a>>(
    s: PyStr<'a>,
    config: StrConfig,
    visitor: V,
) -> Result<V::Value, DecodeError> {
    match s.load_as(config, Reader::Execnet2Py3) {
        Loaded::Bytes => visitor.visit_borrowed_bytes(s.as_bytes()),
        Loaded::Text(_) => match s.as_str() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => latin1(s, visitor),
        },
    }
}

#[cfg(feature = "alloc")]
fn latin1<'a, V: Visitor<'a>>(s: PyStr<'a>, visitor: V) -> Result<V::Value, DecodeError> {
    visitor.visit_string(s.chars().collect())
}

#[cfg(not(feature = "alloc"))]
fn latin1<'a, V: Visitor<'a>>(s: PyStr<'a>, visitor: V) -> Result<V::Value, DecodeError> {
    // Without an allocator non-ASCII latin-1 cannot become a `str`; hand over the bytes.
    visitor.visit_borrowed_bytes(s.as_bytes())
}

impl<'a> de::Deserializer<'a> for Deserializer<'a, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            ValueRef::None => visitor.visit_unit(),
            ValueRef::Bool(b) => visitor.visit_bool(b),
            ValueRef::Int(i, _) => visitor.visit_i64(i),
            ValueRef::BigInt(text, _) => {
                if let Some(v) = self.value.as_i64() {
                    visitor.visit_i64(v)
                } else if let Some(v) = self.value.as_i128() {
                    match u64::try_from(v) {
                        Ok(u) => visitor.visit_u64(u),
                        Err(_) => visitor.visit_i128(v),
                    }
                } else if let Ok(u) = text.strip_prefix('+').unwrap_or(text).parse::<u128>() {
                    visitor.visit_u128(u)
                } else {
                    visitor.visit_borrowed_str(text)
                }
            }
            ValueRef::Float(f) => visitor.visit_f64(f),
            ValueRef::Complex(re, im) => {
                visitor.visit_seq(de::value::SeqDeserializer::new([re, im].into_iter()))
            }
            ValueRef::Bytes(b) => visitor.visit_borrowed_bytes(b),
            ValueRef::Str(s) => visit_str(s, self.config, visitor),
            ValueRef::Channel(id) => visitor.visit_i32(id),
            ValueRef::List(seq)
            | ValueRef::Tuple(seq)
            | ValueRef::Set(seq)
            | ValueRef::FrozenSet(seq) => visitor.visit_seq(Seq {
                iter: seq.iter(),
                config: self.config,
            }),
            ValueRef::Dict(map) => visitor.visit_map(Map {
                iter: map.iter(),
                value: None,
                config: self.config,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            ValueRef::None => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            ValueRef::Bytes(b) => visitor.visit_borrowed_bytes(b),
            ValueRef::Str(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
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
        match self.value {
            ValueRef::Str(_) => visitor.visit_enum(Enum {
                tag: self.value,
                content: None,
                config: self.config,
            }),
            ValueRef::Dict(map) if map.len() == 1 => {
                let Some((tag, content)) = map.iter().next() else {
                    return Err(mismatch("a one-entry dict", &self.value));
                };
                visitor.visit_enum(Enum {
                    tag,
                    content: Some(content),
                    config: self.config,
                })
            }
            _ => Err(mismatch("an enum (a str or a one-entry dict)", &self.value)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    ::serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct Seq<'a, 's> {
    iter: SeqIter<'a, 's>,
    config: StrConfig,
}

impl<'a> de::SeqAccess<'a> for Seq<'a, '_> {
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.iter.next() {
            Some(value) => seed
                .deserialize(Deserializer {
                    value,
                    config: self.config,
                })
                .map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Map<'a, 's> {
    iter: MapIter<'a, 's>,
    value: Option<ValueRef<'a, 's>>,
    config: StrConfig,
}

impl<'a> de::MapAccess<'a> for Map<'a, '_> {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Deserializer {
                    value: k,
                    config: self.config,
                })
                .map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let value = self
            .value
            .take()
            .ok_or(DecodeError::unplaced(DecodeErrorKind::Mismatch {
                expected: "a map value",
                found: "nothing",
            }))?;
        seed.deserialize(Deserializer {
            value,
            config: self.config,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Enum<'a, 's> {
    tag: ValueRef<'a, 's>,
    content: Option<ValueRef<'a, 's>>,
    config: StrConfig,
}

impl<'a, 's> de::EnumAccess<'a> for Enum<'a, 's> {
    type Error = DecodeError;
    type Variant = Variant<'a, 's>;
    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'a, 's>), DecodeError> {
        let tag = seed.deserialize(Deserializer {
            value: self.tag,
            config: self.config,
        })?;
        Ok((
            tag,
            Variant {
                content: self.content,
                config: self.config,
            },
        ))
    }
}

struct Variant<'a, 's> {
    content: Option<ValueRef<'a, 's>>,
    config: StrConfig,
}

impl<'a, 's> Variant<'a, 's> {
    fn content(self, expected: &'static str) -> Result<Deserializer<'a, 's>, DecodeError> {
        match self.content {
            Some(value) => Ok(Deserializer {
                value,
                config: self.config,
            }),
            None => Err(DecodeError::unplaced(DecodeErrorKind::Mismatch {
                expected,
                found: "a unit variant name",
            })),
        }
    }
}

impl<'a> de::VariantAccess<'a> for Variant<'a, '_> {
    type Error = DecodeError;
    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.content {
            None | Some(ValueRef::None) => Ok(()),
            Some(other) => Err(mismatch("a unit variant", &other)),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'a>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self.content("a newtype variant's content")?)
    }
    fn tuple_variant<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_any(self.content("a tuple variant's items")?, visitor)
    }
    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_any(self.content("a struct variant's fields")?, visitor)
    }
}

impl<'a, 's> IntoDeserializer<'a, DecodeError> for Deserializer<'a, 's> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl Deserializer<'_, '_> {
    /// The string config strings load under.
    pub fn config(&self) -> StrConfig {
        self.config
    }
}
