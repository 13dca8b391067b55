//! [`Value`] as a serde citizen (features `serde` and `alloc`), in the manner of
//! `serde_json::Value`: it serializes to and deserializes from any format, and
//! [`to_value`] / [`from_value`](super::from_value) convert between it and Rust types.
//!
//! Python kinds that serde's data model lacks travel as newtype structs with reserved
//! names (a set as `"$execnet::set"` around its members, a Python 2 `str` as
//! `"$execnet::py2str"` around its bytes, and so on): other formats see only the inner
//! value (a JSON array for a set), while this crate's serializer writes the exact opcode.
//! Deserializing a `Value` from this crate's deserializers hands it the value's own
//! encoding, so every kind survives: tuples, sets, bytes, the three string kinds, `long`,
//! big ints, complex numbers, channels. From other formats a `Value` is built from what
//! they show (lists, dicts with their keys, ints, floats, text, bytes, None).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use ::serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use ::serde::ser::{self, Serialize, SerializeMap, SerializeSeq, SerializeTuple};

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::limits::Limits;
use crate::owned::{Int, Value};
use crate::strconfig::StrConfig;
use crate::value::ValueRef;

use super::de::{mismatch, visit_big, visit_entries, visit_items, visit_str, Enum, TreeNode};
use super::names;

/// Limits that refuse nothing, for encodings this crate made or already checked.
pub(crate) const UNBOUNDED: Limits = Limits {
    max_depth: u32::MAX,
    max_items: u32::MAX,
    max_bytes: u32::MAX,
    max_bigint_digits: u32::MAX,
    max_message: u32::MAX,
};

/// An exact encoding as handed to a `Value`: the string config and limits to decode it
/// under, then the payload (internal envelope).
pub(crate) fn exact_payload(config: StrConfig, limits: &Limits, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(21 + payload.len());
    out.push(u8::from(config.py2str_as_py3str) | (u8::from(config.py3str_as_py2str) << 1));
    for l in [
        limits.max_depth,
        limits.max_items,
        limits.max_bytes,
        limits.max_bigint_digits,
        limits.max_message,
    ] {
        out.extend_from_slice(&l.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn decode_exact(b: &[u8]) -> Result<Value, DecodeError> {
    let bad = || DecodeError::unplaced(DecodeErrorKind::Internal);
    let (&flags, rest) = b.split_first().ok_or_else(bad)?;
    let (head, payload) = rest.split_at_checked(20).ok_or_else(bad)?;
    let mut l = [0u32; 5];
    for (slot, c) in l.iter_mut().zip(head.chunks_exact(4)) {
        if let &[a, b, c, d] = c {
            *slot = u32::from_be_bytes([a, b, c, d]);
        }
    }
    let limits = Limits {
        max_depth: l[0],
        max_items: l[1],
        max_bytes: l[2],
        max_bigint_digits: l[3],
        max_message: l[4],
    };
    let config = StrConfig::new(flags & 1 != 0, flags & 2 != 0);
    Value::decode_internal_with(payload, &limits, config)
}

/// A map of one entry, [`names::EXACT`] to an exact encoding: how this crate's
/// deserializers answer a `Value`.
pub(crate) struct ExactMap {
    bytes: Option<Vec<u8>>,
}

impl ExactMap {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        ExactMap { bytes: Some(bytes) }
    }
}

impl<'de> MapAccess<'de> for ExactMap {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.bytes.is_none() {
            return Ok(None);
        }
        seed.deserialize(de::value::BorrowedStrDeserializer::new(names::EXACT))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let bytes = self.bytes.take().unwrap_or_default();
        seed.deserialize(de::value::BytesDeserializer::new(&bytes))
    }
}

/// Encodes `v` (a tree this crate checked already) and hands it to `visitor` exactly.
pub(crate) fn visit_exact<'de, V: Visitor<'de>, E: crate::encode::Encode + ?Sized>(
    v: &E,
    config: StrConfig,
    visitor: V,
) -> Result<V::Value, DecodeError> {
    let bytes =
        crate::encode::encode_with_limits(v, crate::Envelope::Internal, Vec::new(), &UNBOUNDED)
            .map_err(|_| DecodeError::unplaced(DecodeErrorKind::Internal))?;
    visitor.visit_map(ExactMap::new(exact_payload(config, &UNBOUNDED, &bytes)))
}

/// Converts any `Serialize` value into a [`Value`], with the mapping of this crate's
/// serializer (see the [module docs](super)).
///
/// ```
/// use execnet_core::serde::to_value;
/// use execnet_core::Value;
/// let v = to_value(&(1, "a", vec![2.5])).unwrap();
/// assert_eq!(v, Value::Tuple(vec![Value::int(1), Value::from("a"), Value::List(vec![Value::Float(2.5)])]));
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, EncodeError> {
    let bytes = crate::encode::encode_with_limits(
        &super::Serde(value),
        crate::Envelope::Internal,
        Vec::new(),
        &UNBOUNDED,
    )?;
    Value::decode_internal_with(&bytes, &UNBOUNDED, StrConfig::LOADS)
        .map_err(|_| EncodeError::Misuse("a serializer wrote what the decoder refuses"))
}

/// Where [`from_value`](super::from_value) can read from: a decoded [`ValueRef`] or an
/// owned [`Value`] by reference (borrowing its strings).
pub trait Source<'a> {
    /// Deserializes a `T`, loading strings under `config`.
    #[doc(hidden)]
    fn deserialize_into<T: de::Deserialize<'a>>(self, config: StrConfig) -> Result<T, DecodeError>;
}

impl<'a> Source<'a> for ValueRef<'a, '_> {
    fn deserialize_into<T: de::Deserialize<'a>>(self, config: StrConfig) -> Result<T, DecodeError> {
        T::deserialize(super::Deserializer::new(self, config))
    }
}

impl<'a> Source<'a> for &'a Value {
    fn deserialize_into<T: de::Deserialize<'a>>(self, config: StrConfig) -> Result<T, DecodeError> {
        T::deserialize(ValueDeserializer {
            value: self,
            config,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Serialize

struct Members<'v>(&'v [Value]);

impl Serialize for Members<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

/// An int: `i64` or `i128` when it fits, else its text, wrapped as a big int (`long`:
/// inside the `long` name already, which takes text as it is).
struct IntText<'v>(&'v Int, bool);

impl Serialize for IntText<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Int::Small(v) => s.serialize_i64(*v),
            Int::Big(t) => match crate::value::parse_i128(t) {
                Some(v) => s.serialize_i128(v),
                None if self.1 => s.serialize_str(t),
                None => s.serialize_newtype_struct(names::BIGINT, &**t),
            },
        }
    }
}

struct Bytes<'v>(&'v [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::None => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => IntText(i, false).serialize(s),
            Value::Long(i) => s.serialize_newtype_struct(names::LONG, &IntText(i, true)),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Complex(re, im) => s.serialize_newtype_struct(names::COMPLEX, &(*re, *im)),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Str(t) => s.serialize_str(t),
            Value::Unicode(t) => s.serialize_newtype_struct(names::UNICODE, t),
            Value::Py2Str(b) => s.serialize_newtype_struct(names::PY2STR, &Bytes(b)),
            Value::List(items) => Members(items).serialize(s),
            Value::Tuple(items) => {
                let mut t = s.serialize_tuple(items.len())?;
                for v in items {
                    t.serialize_element(v)?;
                }
                t.end()
            }
            Value::Set(items) => s.serialize_newtype_struct(names::SET, &Members(items)),
            Value::FrozenSet(items) => {
                s.serialize_newtype_struct(names::FROZENSET, &Members(items))
            }
            Value::Dict(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Value::Channel(id) => s.serialize_newtype_struct(names::CHANNEL, id),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Deserialize

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(int_of(i128::from(v))))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(int_of(v)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Int(match i128::try_from(v) {
            Ok(v) => int_of(v),
            Err(_) => Int::Big(alloc::format!("{v}").into_boxed_str()),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = a.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let Some(first) = a.next_key::<Value>()? else {
            return Ok(Value::Dict(Vec::new()));
        };
        if matches!(&first, Value::Str(k) if k == names::EXACT) {
            let bytes: ExactBytes = a.next_value()?;
            return decode_exact(&bytes.0).map_err(de::Error::custom);
        }
        let mut entries = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096) + 1);
        entries.push((first, a.next_value()?));
        while let Some(e) = a.next_entry()? {
            entries.push(e);
        }
        Ok(Value::Dict(entries))
    }
}

fn int_of(v: i128) -> Int {
    match i64::try_from(v) {
        Ok(v) => Int::Small(v),
        Err(_) => Int::Big(alloc::format!("{v}").into_boxed_str()),
    }
}

/// The bytes of an exact encoding.
struct ExactBytes(Vec<u8>);

impl<'de> de::Deserialize<'de> for ExactBytes {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExactBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ExactBytes, E> {
                Ok(ExactBytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ExactBytes, E> {
                Ok(ExactBytes(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_newtype_struct(names::VALUE, ValueVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// A Deserializer over &Value

/// A serde `Deserializer` over an owned [`Value`], borrowing its strings.
struct ValueDeserializer<'a> {
    value: &'a Value,
    config: StrConfig,
}

impl<'a> de::Deserializer<'a> for ValueDeserializer<'a> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        use crate::value::PyStr;
        let config = self.config;
        let node = move |value| ValueDeserializer { value, config };
        match self.value {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(Int::Small(i)) | Value::Long(Int::Small(i)) => visitor.visit_i64(*i),
            Value::Int(Int::Big(t)) | Value::Long(Int::Big(t)) => visit_big(t, visitor),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Complex(re, im) => {
                visitor.visit_seq(de::value::SeqDeserializer::new([*re, *im].into_iter()))
            }
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::Str(s) => visit_str(PyStr::Py3(s), config, visitor),
            Value::Unicode(s) => visit_str(PyStr::Unicode(s), config, visitor),
            Value::Py2Str(b) => visit_str(PyStr::Py2(b), config, visitor),
            Value::Channel(id) => visitor.visit_i32(*id),
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_items(visitor, items.iter().map(node)),
            Value::Dict(entries) => {
                visit_entries(visitor, entries.iter().map(|(k, v)| (node(k), node(v))))
            }
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::None => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if name == names::VALUE {
            return visit_exact(self.value, self.config, visitor);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Bytes(b) | Value::Py2Str(b) => visitor.visit_borrowed_bytes(b),
            Value::Str(s) | Value::Unicode(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
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
        let (value, config) = (self.value, self.config);
        match value {
            Value::Str(_) | Value::Unicode(_) | Value::Py2Str(_) => visitor.visit_enum(Enum {
                tag: self,
                content: None,
            }),
            Value::Dict(entries) if entries.len() == 1 => match entries.first() {
                Some((tag, content)) => visitor.visit_enum(Enum {
                    tag: ValueDeserializer { value: tag, config },
                    content: Some(ValueDeserializer {
                        value: content,
                        config,
                    }),
                }),
                None => Err(mismatch("a one-entry dict", "an empty dict")),
            },
            other => Err(mismatch(
                "an enum (a str or a one-entry dict)",
                other.type_name(),
            )),
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

impl<'a> TreeNode<'a> for ValueDeserializer<'a> {
    fn is_none(&self) -> bool {
        matches!(self.value, Value::None)
    }
    fn type_name(&self) -> &'static str {
        self.value.type_name()
    }
    fn at(&self) -> Option<usize> {
        // An owned value has no input to point into.
        None
    }
}
