//! `a + b` on Python's numbers as CPython 3.11 computes it: `bool` counts as `int`, ints
//! are exact (up to [`MAX_DIGITS`] digits here), an int meets a float as the float nearest
//! to it (ints of up to 18 digits here), and a real number meets a complex one as
//! `complex(x, 0.0)`, so that `1.5 + complex(0, -0.0)` has an imaginary part of `+0.0`.
//!
//! Ints beyond 32 bits are added as decimal text, digit by digit: this CPU divides 32-bit
//! numbers in one instruction, and 64- or 128-bit arithmetic would link kilobytes of
//! helper routines.

use execnet_core::encode::{Encode, Encoder};
use execnet_core::sink::Sink;
use execnet_core::value::IntKind;
use execnet_core::{EncodeError, ValueRef};

use crate::calls::Failure;

/// Most characters of a sum, sign included: `add` takes ints of up to 70 digits (2**232),
/// which keeps its three numbers small on the stack. Echo takes longer ones.
const SUM_LEN: usize = MAX_DIGITS + 2;
/// Most digits of an int `add` takes.
pub const MAX_DIGITS: usize = 70;

/// A number as `add` sees it.
#[derive(Clone, Copy)]
enum Num<'a> {
    /// An int that came as `INT` (always 32-bit), or a bool.
    Int(i32),
    /// An int that came as decimal text (`LONGINT`: beyond 32 bits, from the reference).
    Big(&'a str),
    Float(f64),
    Complex(f64, f64),
}

/// Room for the digits of an `i32`.
type IntDigits = [u8; 10];

impl<'a> Num<'a> {
    fn of(v: &ValueRef<'a, '_>) -> Option<Num<'a>> {
        Some(match *v {
            ValueRef::Bool(b) => Num::Int(i32::from(b)),
            ValueRef::Int(i, _) => Num::Int(i32::try_from(i).ok()?),
            ValueRef::BigInt(t, _) => Num::Big(t),
            ValueRef::Float(f) => Num::Float(f),
            ValueRef::Complex(r, i) => Num::Complex(r, i),
            _ => return None,
        })
    }

    /// An int's sign and decimal digits, without leading zeros (zero has none): the text
    /// of a `Big` as it came (validated `[+-]?[0-9]+`), an `Int` written into `buf`. Ints
    /// of more than [`MAX_DIGITS`] digits are beyond what this device adds.
    fn digits<'b>(self, buf: &'b mut IntDigits) -> Result<(bool, &'b [u8]), Failure<'static>>
    where
        'a: 'b,
    {
        let (negative, digits) = match self {
            Num::Big(t) => match t.as_bytes() {
                [b'-', rest @ ..] => (true, rest),
                [b'+', rest @ ..] => (false, rest),
                all => (false, all),
            },
            Num::Int(i) => {
                let mut m = i.unsigned_abs();
                let mut at = buf.len();
                while m > 0 && at > 0 {
                    at -= 1;
                    if let Some(d) = buf.get_mut(at) {
                        *d = b'0' + (m % 10) as u8;
                    }
                    m /= 10;
                }
                (i < 0, buf.get(at..).unwrap_or(&[]))
            }
            // Not reached: only ints are added or converted as digits.
            Num::Float(_) | Num::Complex(..) => (false, &[][..]),
        };
        let start = digits
            .iter()
            .position(|&c| c != b'0')
            .unwrap_or(digits.len());
        let digits = digits.get(start..).unwrap_or(&[]);
        if digits.len() > MAX_DIGITS {
            return Err(Failure::IntTooLong);
        }
        Ok((negative, digits))
    }

    /// As a float, rounded to nearest (ties to even) as Python's `float(int)` rounds; ints
    /// of more than 18 digits are beyond what this device converts. Ints go through their
    /// digits, so that one conversion (from 64 bits) serves both kinds.
    fn real(self) -> Result<f64, Failure<'static>> {
        if let Num::Float(f) = self {
            return Ok(f);
        }
        let mut buf = IntDigits::default();
        let (negative, digits) = self
            .digits(&mut buf)
            .map_err(|_| Failure::IntTooLargeForFloat)?;
        if digits.len() > 18 {
            return Err(Failure::IntTooLargeForFloat);
        }
        let m = value_of(digits);
        Ok((if negative { -m } else { m }) as f64)
    }

    /// As a complex number: a real one `x` is `complex(x, 0.0)`.
    fn complex(self) -> Result<(f64, f64), Failure<'static>> {
        match self {
            Num::Complex(r, i) => Ok((r, i)),
            real => Ok((real.real()?, 0.0)),
        }
    }
}

/// The value of at most 18 decimal digits.
fn value_of(digits: &[u8]) -> i64 {
    digits
        .iter()
        .fold(0i64, |m, c| m * 10 + i64::from(c - b'0'))
}

/// The result of `add`, ready to be sent.
pub enum Sum {
    /// An int within 32 bits (the reference writes those as `INT`).
    Int(i32),
    /// A larger int as decimal text (written as `LONGINT`, as the reference does).
    Big(Decimal),
    /// A float.
    Float(f64),
    /// A complex number.
    Complex(f64, f64),
}

impl Encode for Sum {
    fn encode<S: Sink>(&self, e: &mut Encoder<S>) -> Result<(), EncodeError> {
        match self {
            Sum::Int(i) => e.int32(*i, IntKind::Int),
            Sum::Big(d) => e.big_int(d.as_str(), IntKind::Int),
            Sum::Float(f) => e.float(*f),
            Sum::Complex(r, i) => e.complex(*r, *i),
        }
    }
}

/// `a + b`, or the `TypeError` Python would raise (or a note on what this device does
/// not do). Not inlined: its numbers are on the stack only while it runs.
#[inline(never)]
pub fn add(a: &ValueRef<'_, '_>, b: &ValueRef<'_, '_>) -> Result<Sum, Failure<'static>> {
    let (Some(x), Some(y)) = (Num::of(a), Num::of(b)) else {
        return Err(Failure::Operands(a.type_name(), b.type_name()));
    };
    Ok(match (x, y) {
        (Num::Complex(..), _) | (_, Num::Complex(..)) => {
            let ((r, i), (s, j)) = (x.complex()?, y.complex()?);
            Sum::Complex(r + s, i + j)
        }
        (Num::Float(_), _) | (_, Num::Float(_)) => Sum::Float(x.real()? + y.real()?),
        // Two ints, of any size: sums that fit 32 bits come back as `Sum::Int`.
        _ => add_ints(x, y)?,
    })
}

/// An int as text (a sign and decimal digits), right-aligned in a fixed buffer.
pub struct Decimal {
    buf: [u8; SUM_LEN],
    /// Where the text starts in `buf`.
    start: usize,
}

impl Decimal {
    /// The text.
    fn as_str(&self) -> &str {
        self.buf
            .get(self.start..)
            .and_then(|t| core::str::from_utf8(t).ok())
            .unwrap_or("0")
    }
}

/// Whether magnitude `a` is smaller than magnitude `b` (no leading zeros in either).
fn smaller(a: &[u8], b: &[u8]) -> bool {
    a.len() < b.len() || (a.len() == b.len() && a < b)
}

/// The digit `k` places from the right of `s` (0 beyond its start).
fn digit(s: &[u8], k: usize) -> i8 {
    s.len()
        .checked_sub(k + 1)
        .and_then(|i| s.get(i))
        .map_or(0, |c| (c - b'0') as i8)
}

/// `x + y` for two ints, on their decimal digits, schoolbook style, from the last digit
/// up.
fn add_ints(x: Num<'_>, y: Num<'_>) -> Result<Sum, Failure<'static>> {
    let (mut xbuf, mut ybuf) = (IntDigits::default(), IntDigits::default());
    let (xneg, xd) = x.digits(&mut xbuf)?;
    let (yneg, yd) = y.digits(&mut ybuf)?;
    // Same signs add magnitudes; different signs subtract the smaller from the larger
    // and take the larger's sign.
    let (big, small, negative, subtract) = if xneg == yneg {
        (xd, yd, xneg, false)
    } else if smaller(xd, yd) {
        (yd, xd, yneg, true)
    } else {
        (xd, yd, xneg, true)
    };
    let mut sum = Decimal {
        buf: [0; SUM_LEN],
        start: SUM_LEN,
    };
    let mut carry = 0i8;
    // One digit more than the larger operand has, for the carry; at most MAX_DIGITS + 1,
    // which leaves a place for the sign.
    for k in 0..=big.len() {
        let mut d = if subtract {
            digit(big, k) - digit(small, k) - carry
        } else {
            digit(big, k) + digit(small, k) + carry
        };
        carry = 0;
        if d < 0 {
            d += 10;
            carry = 1;
        } else if d > 9 {
            d -= 10;
            carry = 1;
        }
        sum.start -= 1;
        if let Some(slot) = sum.buf.get_mut(sum.start) {
            *slot = b'0' + d as u8;
        }
    }
    while sum.start < SUM_LEN && sum.buf.get(sum.start) == Some(&b'0') {
        sum.start += 1;
    }
    // A sum of large ints of opposite signs can be small: the reference writes it as a
    // 32-bit INT then, and so does this device.
    let digits = sum.buf.get(sum.start..).unwrap_or(&[]);
    if digits.len() <= 10 {
        let m = value_of(digits);
        if let Ok(v) = i32::try_from(if negative { -m } else { m }) {
            return Ok(Sum::Int(v));
        }
    }
    if negative {
        sum.start -= 1;
        if let Some(slot) = sum.buf.get_mut(sum.start) {
            *slot = b'-';
        }
    }
    Ok(Sum::Big(sum))
}
