//! The encoder: values, serde types and builder calls into any [`Sink`].
//!
//! [`Encoder`] is a thin builder over the opcodes that writes exactly what the reference
//! writes: list items as `INT i, item, SETITEM`, dict entries as `key, value, SETITEM`,
//! tuple and set members followed by their count, ints in the signed 32-bit range as
//! `INT`, larger ones as `LONGINT` decimal text. Ints below -2^31 also go out as
//! `LONGINT` text (the reference cannot write them but reads them fine).
//!
//! Anything that implements [`Encode`] (a [`ValueRef`], an owned
//! [`Value`](crate::Value), a serde type through [`Serde`](crate::serde::Serde)) can be
//! written with [`encode`] into a slice, a `heapless::Vec`, a `Vec` or an
//! `embedded_io::Write`.

use core::fmt;

use crate::decode::Version;
use crate::error::{EncodeError, Limit};
use crate::limits::Limits;
use crate::opcode as op;
use crate::sink::{Sink, SliceSink};
use crate::value::{IntKind, PyStr, ValueRef};

/// Which envelope to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Envelope {
    /// A channel payload: the value and `STOP`, no version byte.
    Internal,
    /// `dumps` output: a version byte, the value, `STOP`.
    Dumps(Version),
}

/// Low-level builder: one method per opcode (or per value written the reference's way).
///
/// The builder checks the [`Limits`] a decoder applies ([`Limits::DEFAULT`] unless made
/// with [`with_limits`](Self::with_limits)), so that it never writes what a decoder with
/// the same limits refuses: string and big-int lengths and the value count as each value
/// is written, the encoded size as it grows, and the nesting depth through
/// [`enter`](Self::enter) and [`leave`](Self::leave), which every [`Encode`]
/// implementation of this crate calls around a container (builder users who nest by
/// hand call them too, or depth goes unchecked).
///
/// ```
/// use execnet_core::encode::Encoder;
/// let mut out = [0u8; 64];
/// let mut e = Encoder::new(execnet_core::sink::SliceSink::new(&mut out));
/// e.new_list(2)?;
/// for (i, s) in ["hello", "world"].iter().enumerate() {
///     e.list_index(i)?;
///     e.str(s)?;
///     e.setitem()?;
/// }
/// e.stop()?;
/// let bytes = e.finish()?;
/// assert_eq!(bytes.len(), 38); // execnet.dumps(["hello", "world"]), less its version byte
/// # Ok::<(), execnet_core::EncodeError>(())
/// ```
pub struct Encoder<S> {
    sink: S,
    limits: Limits,
    depth: u32,
    items: u32,
    written: usize,
}

/// Formats an integer as decimal into `buf`, returning the text.
///
/// Each digit is the remainder of a long division of the magnitude's bytes by 10, which
/// needs only 32-bit arithmetic: on 32-bit devices 128-bit division is a kilobyte of
/// helper code, while this is a few instructions.
fn decimal(v: i128, buf: &mut [u8; 48]) -> &[u8] {
    let mut limbs = v.unsigned_abs().to_be_bytes();
    let mut first = limbs.iter().position(|&b| b != 0).unwrap_or(limbs.len());
    let mut at = buf.len();
    loop {
        let mut rem = 0u32;
        for limb in limbs.iter_mut().skip(first) {
            let cur = (rem << 8) | u32::from(*limb);
            *limb = (cur / 10) as u8;
            rem = cur % 10;
        }
        at -= 1;
        if let Some(slot) = buf.get_mut(at) {
            *slot = b'0' + rem as u8;
        }
        while limbs.get(first) == Some(&0) {
            first += 1;
        }
        if first == limbs.len() {
            break;
        }
    }
    if v < 0 {
        at -= 1;
        if let Some(slot) = buf.get_mut(at) {
            *slot = b'-';
        }
    }
    buf.get(at..).unwrap_or(&[])
}

impl<S: Sink> Encoder<S> {
    /// A builder writing into `sink`, checking [`Limits::DEFAULT`].
    pub fn new(sink: S) -> Self {
        Self::with_limits(sink, &Limits::DEFAULT)
    }

    /// A builder writing into `sink`, checking `limits`.
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn with_limits(sink: S, limits: &Limits) -> Self {
        Encoder {
            sink,
            limits: *limits,
            depth: 0,
            items: 0,
            written: 0,
        }
    }

    /// Opens a container level: call before writing a container (its opcode or, for a
    /// tuple or set, its first member) and [`leave`](Self::leave) after it.
    pub fn enter(&mut self) -> Result<(), EncodeError> {
        self.depth += 1;
        let max = self.limits.depth_cap();
        if self.depth > max {
            return Err(over(Limit::Depth, self.depth as usize, max));
        }
        Ok(())
    }

    /// Closes a container level opened with [`enter`](Self::enter).
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Counts one more value against `max_items`.
    #[inline]
    fn item(&mut self) -> Result<(), EncodeError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(over(
                Limit::Items,
                self.items as usize,
                self.limits.max_items,
            ));
        }
        Ok(())
    }

    /// Counts `n` more bytes against `max_message`.
    #[inline]
    fn grow(&mut self, n: usize) -> Result<(), EncodeError> {
        self.written = self.written.saturating_add(n);
        if self.written > self.limits.max_message as usize {
            return Err(over(Limit::Message, self.written, self.limits.max_message));
        }
        Ok(())
    }

    #[inline]
    fn put(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.grow(1)?;
        self.sink.try_push(byte)
    }

    #[inline]
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.grow(bytes.len())?;
        self.sink.try_extend(bytes)
    }

    /// Ends the output and gives the sink's result.
    pub fn finish(self) -> Result<S::Output, EncodeError> {
        self.sink.finalize()
    }

    #[inline]
    fn op_len(&mut self, code: u8, n: usize) -> Result<(), EncodeError> {
        let n = i32::try_from(n).map_err(|_| EncodeError::TooLong(n))?;
        self.op_i32(code, n)
    }

    #[inline]
    fn op_i32(&mut self, code: u8, v: i32) -> Result<(), EncodeError> {
        // The operand is copied in whole, here and for doubles: an array written byte by
        // byte takes several times the code on a 32-bit device.
        let mut out = [code; 5];
        if let Some(at) = out.get_mut(1..).and_then(|d| d.first_chunk_mut()) {
            *at = v.to_be_bytes();
        }
        self.put_all(&out)
    }

    fn blob(&mut self, code: u8, bytes: &[u8]) -> Result<(), EncodeError> {
        if bytes.len() > self.limits.max_bytes as usize {
            return Err(over(Limit::Bytes, bytes.len(), self.limits.max_bytes));
        }
        self.item()?;
        self.op_len(code, bytes.len())?;
        self.put_all(bytes)
    }

    fn digits_fit(&self, digits: usize) -> Result<(), EncodeError> {
        if digits > self.limits.max_bigint_digits as usize {
            return Err(over(
                Limit::BigIntDigits,
                digits,
                self.limits.max_bigint_digits,
            ));
        }
        Ok(())
    }

    /// The `dumps` version byte (write it first, and only for the `dumps` envelope).
    pub fn version(&mut self, version: Version) -> Result<(), EncodeError> {
        self.put(version.byte())
    }

    /// `None`.
    pub fn none(&mut self) -> Result<(), EncodeError> {
        self.item()?;
        self.put(op::NONE)
    }

    /// `True` or `False`.
    pub fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
        self.item()?;
        self.put(if b { op::TRUE } else { op::FALSE })
    }

    /// An int, written as the reference writes it: `INT` within the signed 32-bit range,
    /// `LONGINT` decimal text otherwise.
    pub fn int(&mut self, v: i128) -> Result<(), EncodeError> {
        self.int_kind(v, IntKind::Int)
    }

    /// An int of the given kind (`IntKind::Long` for a Python 2 `long`: `LONG` or
    /// `LONGLONG`).
    pub fn int_kind(&mut self, v: i128, kind: IntKind) -> Result<(), EncodeError> {
        let (small, big) = match kind {
            IntKind::Int => (op::INT, op::LONGINT),
            IntKind::Long => (op::LONG, op::LONGLONG),
        };
        match i32::try_from(v) {
            Ok(v) => {
                self.item()?;
                self.op_i32(small, v)
            }
            Err(_) => {
                let mut buf = [0u8; 48];
                let text = decimal(v, &mut buf);
                self.digits_fit(text.len() - usize::from(v < 0))?;
                self.blob(big, text)
            }
        }
    }

    /// `INT` / `LONG` with exactly this 32-bit operand.
    pub fn int32(&mut self, v: i32, kind: IntKind) -> Result<(), EncodeError> {
        self.item()?;
        self.op_i32(
            match kind {
                IntKind::Int => op::INT,
                IntKind::Long => op::LONG,
            },
            v,
        )
    }

    /// `LONGINT` / `LONGLONG` with this decimal text (an optional `+`/`-`, then ASCII
    /// digits), written as given.
    pub fn big_int(&mut self, text: &str, kind: IntKind) -> Result<(), EncodeError> {
        let digits = text
            .strip_prefix('-')
            .or_else(|| text.strip_prefix('+'))
            .unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EncodeError::InvalidIntText);
        }
        self.digits_fit(digits.len())?;
        let code = match kind {
            IntKind::Int => op::LONGINT,
            IntKind::Long => op::LONGLONG,
        };
        self.blob(code, text.as_bytes())
    }

    /// A float, bit for bit.
    pub fn float(&mut self, f: f64) -> Result<(), EncodeError> {
        self.item()?;
        let mut out = [op::FLOAT; 9];
        if let Some(at) = out.get_mut(1..).and_then(|d| d.first_chunk_mut()) {
            *at = f.to_be_bytes();
        }
        self.put_all(&out)
    }

    /// A complex number.
    pub fn complex(&mut self, re: f64, im: f64) -> Result<(), EncodeError> {
        self.item()?;
        let mut out = [op::COMPLEX; 17];
        if let Some((re_at, im_at)) = out.get_mut(1..).and_then(|d| d.split_first_chunk_mut()) {
            *re_at = re.to_be_bytes();
            if let Some(im_at) = im_at.first_chunk_mut() {
                *im_at = im.to_be_bytes();
            }
        }
        self.put_all(&out)
    }

    /// `bytes`.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        self.blob(op::BYTES, b)
    }

    /// A Python 3 `str` (`PY3STRING`), as execnet 2.x writes every `str`.
    pub fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.blob(op::PY3STRING, s.as_bytes())
    }

    /// A Python 3 `str` holding what `value` displays as, formatted twice (once to
    /// measure, once to write) so that no buffer is needed.
    pub fn str_display<T: fmt::Display + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        /// Counts the UTF-8 length of formatted text.
        struct Count(usize);
        impl fmt::Write for Count {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0 += s.len();
                Ok(())
            }
        }
        /// Streams formatted text into the encoder, remembering the first sink error.
        struct Stream<'e, S> {
            e: &'e mut Encoder<S>,
            err: Option<EncodeError>,
        }
        impl<S: Sink> fmt::Write for Stream<'_, S> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.e.raw(s.as_bytes()).map_err(|err| {
                    self.err = Some(err);
                    fmt::Error
                })
            }
        }
        let failing = EncodeError::Unsupported("a failing Display");
        let mut count = Count(0);
        fmt::write(&mut count, format_args!("{value}")).map_err(|_| failing.clone())?;
        self.str_header(count.0)?;
        let mut stream = Stream { e: self, err: None };
        if fmt::write(&mut stream, format_args!("{value}")).is_err() {
            return Err(stream.err.unwrap_or(failing));
        }
        Ok(())
    }

    /// The `PY3STRING` opcode and length of a string whose bytes follow through
    /// [`raw`](Self::raw).
    fn str_header(&mut self, len: usize) -> Result<(), EncodeError> {
        if len > self.limits.max_bytes as usize {
            return Err(over(Limit::Bytes, len, self.limits.max_bytes));
        }
        self.item()?;
        self.op_len(op::PY3STRING, len)
    }

    /// The `COMPLEX` opcode of a complex whose two doubles follow through
    /// [`raw`](Self::raw).
    #[cfg(feature = "serde")]
    pub(crate) fn complex_header(&mut self) -> Result<(), EncodeError> {
        self.item()?;
        self.put(op::COMPLEX)
    }

    /// Bytes exactly as given.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.put_all(bytes)
    }

    /// Python 2 `unicode` (`UNICODE`).
    pub fn unicode(&mut self, s: &str) -> Result<(), EncodeError> {
        self.blob(op::UNICODE, s.as_bytes())
    }

    /// A Python 2 `str` (`PY2STRING`): raw bytes.
    pub fn py2str(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        self.blob(op::PY2STRING, b)
    }

    /// A string with its opcode.
    pub fn py_str(&mut self, s: PyStr<'_>) -> Result<(), EncodeError> {
        match s {
            PyStr::Py2(b) => self.py2str(b),
            PyStr::Py3(s) => self.str(s),
            PyStr::Unicode(s) => self.unicode(s),
        }
    }

    /// A reference to channel `id`.
    pub fn channel(&mut self, id: i32) -> Result<(), EncodeError> {
        self.item()?;
        self.op_i32(op::CHANNEL, id)
    }

    /// `NEWLIST n`: then, for each index i in order, [`list_index`](Self::list_index),
    /// the item, [`setitem`](Self::setitem).
    pub fn new_list(&mut self, n: usize) -> Result<(), EncodeError> {
        self.item()?;
        self.op_len(op::NEWLIST, n)
    }

    /// `INT i`, the key of a list item.
    pub fn list_index(&mut self, i: usize) -> Result<(), EncodeError> {
        self.op_len(op::INT, i)
    }

    /// `NEWDICT`: then key, value, [`setitem`](Self::setitem) for each entry.
    pub fn new_dict(&mut self) -> Result<(), EncodeError> {
        self.item()?;
        self.put(op::NEWDICT)
    }

    /// `SETITEM`.
    pub fn setitem(&mut self) -> Result<(), EncodeError> {
        self.put(op::SETITEM)
    }

    /// `BUILDTUPLE n`, after the n items.
    pub fn build_tuple(&mut self, n: usize) -> Result<(), EncodeError> {
        self.build(op::BUILDTUPLE, n)
    }

    /// `SET n`, after the n members.
    pub fn build_set(&mut self, n: usize) -> Result<(), EncodeError> {
        self.build(op::SET, n)
    }

    /// `FROZENSET n`, after the n members.
    pub fn build_frozenset(&mut self, n: usize) -> Result<(), EncodeError> {
        self.build(op::FROZENSET, n)
    }

    /// One of the three opcodes that gather the top n values.
    fn build(&mut self, code: u8, n: usize) -> Result<(), EncodeError> {
        self.item()?;
        self.op_len(code, n)
    }

    /// `STOP`.
    pub fn stop(&mut self) -> Result<(), EncodeError> {
        self.put(op::STOP)
    }
}

#[cold]
fn over(limit: Limit, found: usize, max: u32) -> EncodeError {
    EncodeError::LimitExceeded { limit, found, max }
}

/// A value that can be written with an [`Encoder`].
pub trait Encode {
    /// Writes the value's opcodes (no envelope, no `STOP`).
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError>;
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        (**self).encode(e)
    }
}

impl Encode for ValueRef<'_, '_> {
    /// Writes the value with the very opcodes it was decoded from, so that decoding then
    /// encoding reproduces the input byte for byte.
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        match *self {
            ValueRef::None => e.none(),
            ValueRef::Bool(b) => e.bool(b),
            ValueRef::Int(i, kind) => match i32::try_from(i) {
                Ok(v) => e.int32(v, kind),
                Err(_) => e.int_kind(i128::from(i), kind),
            },
            ValueRef::BigInt(t, kind) => e.big_int(t, kind),
            ValueRef::Float(f) => e.float(f),
            ValueRef::Complex(r, i) => e.complex(r, i),
            ValueRef::Bytes(b) => e.bytes(b),
            ValueRef::Str(s) => e.py_str(s),
            ValueRef::Channel(c) => e.channel(c),
            // One loop for the four sequences: each arm's item would otherwise take its own
            // stack slot in every frame of this recursion (a device's stack bounds how deep
            // a value can nest).
            ValueRef::List(items)
            | ValueRef::Tuple(items)
            | ValueRef::Set(items)
            | ValueRef::FrozenSet(items) => {
                let list = matches!(self, ValueRef::List(_));
                e.enter()?;
                if list {
                    e.new_list(items.len())?;
                }
                for (i, item) in items.iter().enumerate() {
                    if list {
                        e.list_index(i)?;
                    }
                    item.encode(e)?;
                    if list {
                        e.setitem()?;
                    }
                }
                e.leave();
                match self {
                    ValueRef::List(_) => Ok(()),
                    ValueRef::Tuple(_) => e.build(op::BUILDTUPLE, items.len()),
                    ValueRef::Set(_) => e.build(op::SET, items.len()),
                    _ => e.build(op::FROZENSET, items.len()),
                }
            }
            ValueRef::Dict(map) => {
                e.enter()?;
                e.new_dict()?;
                for (k, v) in map.iter() {
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

/// Writes `value` in `envelope` into `sink` and finalizes it, within [`Limits::DEFAULT`].
pub fn encode<S: Sink, V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
    sink: S,
) -> Result<S::Output, EncodeError> {
    encode_with_limits(value, envelope, sink, &Limits::DEFAULT)
}

/// Writes `value` in `envelope` into `sink` and finalizes it, refusing (with
/// [`EncodeError::LimitExceeded`]) anything a decoder with `limits` would refuse.
pub fn encode_with_limits<S: Sink, V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
    sink: S,
    limits: &Limits,
) -> Result<S::Output, EncodeError> {
    let mut e = Encoder::with_limits(sink, limits);
    if let Envelope::Dumps(v) = envelope {
        e.version(v)?;
    }
    value.encode(&mut e)?;
    e.stop()?;
    e.finish()
}

/// The number of bytes `value` takes in `envelope`, computed without writing anything.
pub fn encoded_len<V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
) -> Result<usize, EncodeError> {
    encode(value, envelope, crate::sink::SizeSink::default())
}

/// Writes `value` into `buf`; returns the written prefix.
pub fn to_slice<'b, V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], EncodeError> {
    encode(value, envelope, SliceSink::new(buf))
}

/// Writes `value` into a new `Vec` (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn to_vec<V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    encode(value, envelope, alloc::vec::Vec::new())
}

/// Writes `value` into a new `heapless::Vec` (feature `heapless`).
#[cfg(feature = "heapless")]
pub fn to_heapless<const N: usize, V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
) -> Result<heapless::Vec<u8, N>, EncodeError> {
    encode(value, envelope, heapless::Vec::new())
}

/// Writes `value` through an `embedded_io::Write` (feature `embedded-io`).
#[cfg(feature = "embedded-io")]
pub fn to_writer<W: embedded_io::Write, V: Encode + ?Sized>(
    value: &V,
    envelope: Envelope,
    writer: W,
) -> Result<W, EncodeError> {
    encode(value, envelope, crate::sink::WriteSink(writer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_edges() {
        let mut b = [0u8; 48];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(-7, &mut b), b"-7");
        assert_eq!(
            decimal(i128::MIN, &mut b),
            b"-170141183460469231731687303715884105728"
        );
        assert_eq!(
            decimal(i128::MAX, &mut b),
            b"170141183460469231731687303715884105727"
        );
        let mut p: i128 = 1;
        for _ in 0..38 {
            for v in [p, p - 1, p + 1, -p, 1 - p, -p - 1, p * 7 / 3] {
                assert_eq!(decimal(v, &mut b), alloc::format!("{v}").as_bytes());
            }
            p *= 10;
        }
        for shift in 0..127 {
            let v = 1i128 << shift;
            assert_eq!(decimal(v, &mut b), alloc::format!("{v}").as_bytes());
            assert_eq!(decimal(-v, &mut b), alloc::format!("{}", -v).as_bytes());
        }
    }
}
