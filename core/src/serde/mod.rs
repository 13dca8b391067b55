//! serde support (feature `serde`): any `Serialize` type encodes to execnet values, and
//! any `Deserialize` type decodes from them, borrowing `&str` and `&[u8]` from the input.
//!
//! ## The mapping
//!
//! | Rust (serde data model) | execnet / Python | back to Rust |
//! |---|---|---|
//! | `bool` | `TRUE` / `FALSE` | `bool` |
//! | `i8`..`i128`, `u8`..`u128` | `INT` in the 32-bit range, `LONGINT` text beyond | any integer type that holds it; ints beyond `i128`/`u128` only as their decimal text (`String` / `&str`) |
//! | `f32`, `f64` | `FLOAT` | `f64` / `f32` (ints also convert) |
//! | `char`, `&str`, `String` | `PY3STRING` (`str`) | `&str` borrowed from the input, or `String` |
//! | bytes (`serde_bytes`) | `BYTES` | `&[u8]` borrowed, or `Vec<u8>` via `serde_bytes` |
//! | `Option::None`, `()`, unit struct | `NONE` | `Option::None`, `()` |
//! | `Some(x)`, newtype struct | `x` | |
//! | sequence (`Vec`, slice; length must be known) | `list` | any sequence |
//! | tuple, tuple struct | `tuple` | tuple, tuple struct, sequence |
//! | map, struct | `dict` (struct fields as `str` keys) | map, struct |
//! | unit variant | `str` (the variant name) | the variant |
//! | newtype / tuple / struct variant | `{name: value}`, a one-entry dict | the variant |
//!
//! Decoding also accepts what Python writes that Rust structs do not produce: `UNICODE`
//! and ASCII `PY2STRING` as `str` (a `PY2STRING` is bytes under the `loads()` default
//! string config and latin-1 text under the gateway default; see
//! [`StrConfig`](crate::StrConfig)); sets and frozensets as sequences; `complex` as a
//! two-float sequence `(real, imag)`; a channel reference as its `i32` id.

/// Reserved newtype names for the kinds serde's data model lacks.
pub(crate) mod names {
    pub const SET: &str = "$execnet::set";
    pub const FROZENSET: &str = "$execnet::frozenset";
    pub const UNICODE: &str = "$execnet::unicode";
    pub const PY2STR: &str = "$execnet::py2str";
    pub const LONG: &str = "$execnet::long";
    pub const BIGINT: &str = "$execnet::bigint";
    pub const COMPLEX: &str = "$execnet::complex";
    pub const CHANNEL: &str = "$execnet::channel";
    /// The newtype a `Value` asks for, to get its exact encoding from this crate.
    #[cfg(feature = "alloc")]
    pub const VALUE: &str = "$execnet::Value";
    /// The one key of the map that carries that encoding.
    #[cfg(feature = "alloc")]
    pub const EXACT: &str = "\u{0}$execnet::exact";
}

mod de;
mod ser;
#[cfg(feature = "alloc")]
mod stream;
#[cfg(feature = "alloc")]
mod value;

pub use de::Deserializer;
pub use ser::{Serde, Serializer};

#[cfg(feature = "alloc")]
pub use de::{from_dumps, from_internal};
#[cfg(feature = "alloc")]
pub use value::{to_value, Source};

/// Deserializes a `T` from a decoded [`ValueRef`](crate::ValueRef) or (feature `alloc`)
/// an owned [`Value`](crate::Value) by reference, borrowing strings from it, with strings
/// loaded under `config`.
///
/// ```
/// # #[cfg(feature = "alloc")] {
/// use execnet_core::serde::{from_value, to_value};
/// use execnet_core::StrConfig;
/// let v = to_value(&("a", 1)).unwrap();
/// let (s, n): (&str, i64) = from_value(&v, StrConfig::LOADS).unwrap();
/// assert_eq!((s, n), ("a", 1));
/// # }
/// ```
pub fn from_value<'a, T: ::serde::Deserialize<'a>>(
    value: impl ValueSource<'a>,
    config: crate::StrConfig,
) -> Result<T, crate::DecodeError> {
    value.deserialize_into(config)
}

#[cfg(feature = "alloc")]
use value::Source as ValueSource;

/// Where [`from_value`] can read from.
#[cfg(not(feature = "alloc"))]
pub trait ValueSource<'a> {
    /// Deserializes a `T`, loading strings under `config`.
    #[doc(hidden)]
    fn deserialize_into<T: ::serde::Deserialize<'a>>(
        self,
        config: crate::StrConfig,
    ) -> Result<T, crate::DecodeError>;
}

#[cfg(not(feature = "alloc"))]
impl<'a> ValueSource<'a> for crate::ValueRef<'a, '_> {
    fn deserialize_into<T: ::serde::Deserialize<'a>>(
        self,
        config: crate::StrConfig,
    ) -> Result<T, crate::DecodeError> {
        T::deserialize(Deserializer::new(self, config))
    }
}

/// Encodes a `Serialize` value as a channel payload into a new `Vec` (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn to_vec<T: ::serde::Serialize + ?Sized>(
    value: &T,
    envelope: crate::Envelope,
) -> Result<alloc::vec::Vec<u8>, crate::EncodeError> {
    crate::encode::to_vec(&Serde(value), envelope)
}

/// Encodes a `Serialize` value into a new `Vec`, refusing what a decoder with `limits`
/// would refuse (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn to_vec_with_limits<T: ::serde::Serialize + ?Sized>(
    value: &T,
    envelope: crate::Envelope,
    limits: &crate::Limits,
) -> Result<alloc::vec::Vec<u8>, crate::EncodeError> {
    crate::encode::encode_with_limits(&Serde(value), envelope, alloc::vec::Vec::new(), limits)
}

/// Encodes a `Serialize` value into `buf`; returns the written prefix.
pub fn to_slice<'b, T: ::serde::Serialize + ?Sized>(
    value: &T,
    envelope: crate::Envelope,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], crate::EncodeError> {
    crate::encode::to_slice(&Serde(value), envelope, buf)
}
