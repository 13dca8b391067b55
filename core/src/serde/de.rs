//! execnet values into `Deserialize` types, from a decoded value (the tape).
//!
//! [`from_internal`] and [`from_dumps`] first read the opcode stream directly (see
//! `stream.rs`); this deserializer over the decoded tape is what they fall back on, and
//! what [`from_value`] uses. Its errors carry the input offset of the value they failed
//! on.

use core::fmt;

use ::serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::{DecodeError, DecodeErrorKind, Message};
use crate::strconfig::{Loaded, Reader, StrConfig};
use crate::value::{PyStr, ValueRef};

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::unplaced(DecodeErrorKind::Custom(Message::from_display(
            msg,
            "deserialize error (text needs the alloc feature)",
        )))
    }
}

impl DecodeError {
    /// The error placed at `at`, unless it already has a place (the innermost value that
    /// saw it first knows best).
    pub(crate) fn placed(mut self, at: Option<usize>) -> Self {
        if self.offset.is_none() {
            self.offset = at;
        }
        self
    }
}

pub(crate) fn mismatch(expected: &'static str, found: &'static str) -> DecodeError {
    DecodeError::unplaced(DecodeErrorKind::Mismatch { expected, found })
}

/// A serde `Deserializer` over a decoded [`ValueRef`].
pub struct Deserializer<'a, 's> {
    value: ValueRef<'a, 's>,
    /// Offset of the value's opcode, when known.
    at: Option<usize>,
    config: StrConfig,
}

impl<'a, 's> Deserializer<'a, 's> {
    /// Deserializes from `value`, loading strings under `config` (execnet 2.x rules).
    pub fn new(value: ValueRef<'a, 's>, config: StrConfig) -> Self {
        Deserializer {
            value,
            at: None,
            config,
        }
    }

    pub(crate) fn placed(value: ValueRef<'a, 's>, at: usize, config: StrConfig) -> Self {
        Deserializer {
            value,
            at: Some(at),
            config,
        }
    }

    /// The string config strings load under.
    pub fn config(&self) -> StrConfig {
        self.config
    }
}

/// Decodes a channel payload and deserializes a `T` from it (string config of
/// `loads()`), reading the opcodes directly and, where that cannot decide, from the
/// decoded tape in temporary node storage on the heap.
#[cfg(feature = "alloc")]
pub fn from_internal<'a, T: de::Deserialize<'a>>(
    input: &'a [u8],
    limits: &crate::Limits,
    config: StrConfig,
) -> Result<T, DecodeError> {
    if let Ok(v) = super::stream::from_stream(input, 0, limits, config) {
        return Ok(v);
    }
    from_tape(input, 0, limits, config)
}

/// Decodes `dumps` output and deserializes a `T` from it, as [`from_internal`] does.
#[cfg(feature = "alloc")]
pub fn from_dumps<'a, T: de::Deserialize<'a>>(
    input: &'a [u8],
    limits: &crate::Limits,
    config: StrConfig,
) -> Result<T, DecodeError> {
    if crate::decode::Version::from_byte(input.first().copied().unwrap_or(0)).is_some() {
        if let Ok(v) = super::stream::from_stream(input, 1, limits, config) {
            return Ok(v);
        }
    }
    from_tape(input, 1, limits, config)
}

/// Decodes the value at `start` into a tape in temporary node storage on the heap and
/// deserializes a `T` from it, errors placed in the input.
#[cfg(feature = "alloc")]
fn from_tape<'a, T: de::Deserialize<'a>>(
    input: &'a [u8],
    start: usize,
    limits: &crate::Limits,
    config: StrConfig,
) -> Result<T, DecodeError> {
    let mut nodes = alloc::vec::Vec::new();
    let (v, at) = crate::decode::decode_placed(input, start, &mut nodes, limits)?;
    T::deserialize(Deserializer::placed(v, at, config))
}

/// Visits a string as the reader under `config` loads it: text (borrowed when it can
/// be) or bytes.
pub(crate) fn visit_str<'a, V: Visitor<'a>>(
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

/// Visits big-integer text: as `i64`, `u64`, `i128` or `u128`, whichever holds it, else
/// as the text itself.
pub(crate) fn visit_big<'a, V: Visitor<'a>>(
    text: &'a str,
    visitor: V,
) -> Result<V::Value, DecodeError> {
    if let Some(v) = crate::value::parse_i128(text) {
        return visit_wide(v, visitor);
    }
    match text.strip_prefix('+').unwrap_or(text).parse::<u128>() {
        Ok(u) => visitor.visit_u128(u),
        Err(_) => visitor.visit_borrowed_str(text),
    }
}

/// Visits big-integer text given as validated ASCII bytes, making a `str` of them only
/// when no integer type holds the value.
#[cfg(feature = "alloc")]
pub(crate) fn visit_big_bytes<'a, V: Visitor<'a>>(
    text: &'a [u8],
    visitor: V,
) -> Result<V::Value, DecodeError> {
    match crate::value::parse_i128_bytes(text) {
        Some(v) => visit_wide(v, visitor),
        None => visit_big(core::str::from_utf8(text).unwrap_or("0"), visitor),
    }
}

/// Visits an `i128` as the narrowest of `i64`, `u64`, `i128` that holds it.
fn visit_wide<'a, V: Visitor<'a>>(v: i128, visitor: V) -> Result<V::Value, DecodeError> {
    if let Ok(i) = i64::try_from(v) {
        return visitor.visit_i64(i);
    }
    match u64::try_from(v) {
        Ok(u) => visitor.visit_u64(u),
        Err(_) => visitor.visit_i128(v),
    }
}

impl<'a> de::Deserializer<'a> for Deserializer<'a, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let (at, config) = (self.at, self.config);
        let r = match self.value {
            ValueRef::None => visitor.visit_unit(),
            ValueRef::Bool(b) => visitor.visit_bool(b),
            ValueRef::Int(i, _) => visitor.visit_i64(i),
            ValueRef::BigInt(text, _) => visit_big(text, visitor),
            ValueRef::Float(f) => visitor.visit_f64(f),
            ValueRef::Complex(re, im) => {
                visitor.visit_seq(de::value::SeqDeserializer::new([re, im].into_iter()))
            }
            ValueRef::Bytes(b) => visitor.visit_borrowed_bytes(b),
            ValueRef::Str(s) => visit_str(s, config, visitor),
            ValueRef::Channel(id) => visitor.visit_i32(id),
            ValueRef::List(seq)
            | ValueRef::Tuple(seq)
            | ValueRef::Set(seq)
            | ValueRef::FrozenSet(seq) => visit_items(
                visitor,
                seq.with_offsets()
                    .map(|(value, at)| Deserializer::placed(value, at, config)),
            ),
            ValueRef::Dict(map) => visit_entries(
                visitor,
                map.with_offsets().map(|((k, k_at), (v, v_at))| {
                    (
                        Deserializer::placed(k, k_at, config),
                        Deserializer::placed(v, v_at, config),
                    )
                }),
            ),
        };
        r.map_err(|e: DecodeError| e.placed(at))
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            ValueRef::None => visitor
                .visit_none()
                .map_err(|e: DecodeError| e.placed(self.at)),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        #[cfg(feature = "alloc")]
        if name == super::names::VALUE {
            return super::value::visit_exact(&self.value, self.config, visitor)
                .map_err(|e: DecodeError| e.placed(self.at));
        }
        let _ = name;
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            ValueRef::Bytes(b) => visitor
                .visit_borrowed_bytes(b)
                .map_err(|e: DecodeError| e.placed(self.at)),
            ValueRef::Str(s) => visitor
                .visit_borrowed_bytes(s.as_bytes())
                .map_err(|e: DecodeError| e.placed(self.at)),
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
        let (value, at, config) = (self.value, self.at, self.config);
        let r = match value {
            ValueRef::Str(_) => visitor.visit_enum(Enum {
                tag: self,
                content: None,
            }),
            ValueRef::Dict(map) if map.len() == 1 => match map.with_offsets().next() {
                Some(((tag, t), (content, c))) => visitor.visit_enum(Enum {
                    tag: Deserializer::placed(tag, t, config),
                    content: Some(Deserializer::placed(content, c, config)),
                }),
                None => Err(mismatch("a one-entry dict", "an empty dict")),
            },
            _ => Err(mismatch(
                "an enum (a str or a one-entry dict)",
                value.type_name(),
            )),
        };
        r.map_err(|e: DecodeError| e.placed(at))
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

impl<'a> TreeNode<'a> for Deserializer<'a, '_> {
    fn is_none(&self) -> bool {
        matches!(self.value, ValueRef::None)
    }
    fn type_name(&self) -> &'static str {
        self.value.type_name()
    }
    fn at(&self) -> Option<usize> {
        self.at
    }
}

/// Refuses the items a visitor left: serde's fixed-size types (tuples, arrays, structs
/// from sequences) stop asking, and extra items would otherwise be lost unnoticed.
#[cold]
pub(crate) fn leftover(left: usize) -> DecodeError {
    DecodeError::unplaced(DecodeErrorKind::Mismatch {
        expected: "no more items",
        found: if left == 1 { "one more" } else { "more" },
    })
}

/// A deserializer over one node of a decoded tree (the tape here, an owned `Value` in
/// `value.rs`): what the sequence, map and enum access below need of it, so that both
/// trees share them.
pub(crate) trait TreeNode<'a>: de::Deserializer<'a, Error = DecodeError> {
    /// Whether the node is `None`, the one content a unit variant may carry.
    fn is_none(&self) -> bool;
    /// The node's Python type name, for errors.
    fn type_name(&self) -> &'static str;
    /// The input offset of the node's opcode, when known.
    fn at(&self) -> Option<usize>;
}

/// Visits the nodes of `items` as a sequence, refusing any the visitor leaves.
pub(crate) fn visit_items<'a, V, I>(visitor: V, items: I) -> Result<V::Value, DecodeError>
where
    V: Visitor<'a>,
    I: ExactSizeIterator,
    I::Item: TreeNode<'a>,
{
    let mut access = Items(items);
    let v = visitor.visit_seq(&mut access)?;
    match access.0.len() {
        0 => Ok(v),
        n => Err(leftover(n)),
    }
}

/// Visits the key and value nodes of `entries` as a map, refusing any entry the visitor
/// leaves.
pub(crate) fn visit_entries<'a, V, I, D>(visitor: V, entries: I) -> Result<V::Value, DecodeError>
where
    V: Visitor<'a>,
    I: ExactSizeIterator<Item = (D, D)>,
    D: TreeNode<'a>,
{
    let mut access = Entries {
        entries,
        value: None,
    };
    let v = visitor.visit_map(&mut access)?;
    match access.entries.len() {
        0 => Ok(v),
        n => Err(leftover(n)),
    }
}

struct Items<I>(I);

impl<'a, I> de::SeqAccess<'a> for Items<I>
where
    I: ExactSizeIterator,
    I::Item: TreeNode<'a>,
{
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.0.next() {
            Some(item) => seed.deserialize(item).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<I, D> {
    entries: I,
    /// The value of the entry whose key was handed out last.
    value: Option<D>,
}

impl<'a, I, D> de::MapAccess<'a> for Entries<I, D>
where
    I: ExactSizeIterator<Item = (D, D)>,
    D: TreeNode<'a>,
{
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key).map(Some)
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
            .ok_or_else(|| mismatch("a map value", "nothing"))?;
        seed.deserialize(value)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum: a unit variant's name alone, or a one-entry dict `{name: content}`.
pub(crate) struct Enum<D> {
    pub(crate) tag: D,
    pub(crate) content: Option<D>,
}

impl<'a, D: TreeNode<'a>> de::EnumAccess<'a> for Enum<D> {
    type Error = DecodeError;
    type Variant = Variant<D>;
    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<D>), DecodeError> {
        let tag = seed.deserialize(self.tag)?;
        Ok((tag, Variant(self.content)))
    }
}

pub(crate) struct Variant<D>(Option<D>);

impl<D> Variant<D> {
    fn content(self, expected: &'static str) -> Result<D, DecodeError> {
        self.0
            .ok_or_else(|| mismatch(expected, "a unit variant name"))
    }
}

impl<'a, D: TreeNode<'a>> de::VariantAccess<'a> for Variant<D> {
    type Error = DecodeError;
    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.0 {
            Some(other) if !other.is_none() => {
                Err(mismatch("a unit variant", other.type_name()).placed(other.at()))
            }
            _ => Ok(()),
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
