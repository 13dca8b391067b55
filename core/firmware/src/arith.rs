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

    /// As a float, rounded to nearest (ties to even) as Python's `float(int)` rounds; ints
    /// of more than 18 digits are beyond what this device converts. Ints go through their
    /// digits, so that one conversion (from 64 bits) serves both kinds.
    fn real(self) -> Result<f64, Failure<'static>> {
        if let Num::Float(f) = self {
            return Ok(f);
        }
        let d = Decimal::of(self).map_err(|_| Failure::IntTooLargeForFloat)?;
        let digits = d.digits();
        if digits.len() > 18 {
            return Err(Failure::IntTooLargeForFloat);
        }
        let m = digits
            .iter()
            .fold(0i64, |m, c| m * 10 + i64::from(c - b'0'));
        Ok((if d.negative { -m } else { m }) as f64)
    }

    /// As a complex number: a real one `x` is `complex(x, 0.0)`.
    fn complex(self) -> Result<(f64, f64), Failure<'static>> {
        match self {
            Num::Complex(r, i) => Ok((r, i)),
            real => Ok((real.real()?, 0.0)),
        }
    }
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
        _ => add_decimal(&Decimal::of(x)?, &Decimal::of(y)?)?,
    })
}

/// An int as text: a sign and decimal digits, right-aligned in a fixed buffer.
pub struct Decimal {
    negative: bool,
    buf: [u8; SUM_LEN],
    /// Digits at the end of `buf` (no leading zeros; zero has none).
    len: usize,
}

impl Decimal {
    const fn zero() -> Decimal {
        Decimal {
            negative: false,
            buf: [0; SUM_LEN],
            len: 0,
        }
    }

    fn digits(&self) -> &[u8] {
        self.buf.get(SUM_LEN - self.len..).unwrap_or(&[])
    }

    /// Puts `c` before the characters so far.
    fn prepend(&mut self, c: u8) -> Result<(), Failure<'static>> {
        self.len += 1;
        let slot = SUM_LEN
            .checked_sub(self.len)
            .and_then(|i| self.buf.get_mut(i));
        match slot {
            Some(s) => {
                *s = c;
                Ok(())
            }
            // Not reached: operands have at most MAX_DIGITS digits.
            None => Err(Failure::IntTooLong),
        }
    }

    fn of_i32(v: i32) -> Decimal {
        let mut d = Decimal::zero();
        d.negative = v < 0;
        let mut m = v.unsigned_abs();
        while m > 0 {
            // Ten digits always fit.
            let _ = d.prepend(b'0' + (m % 10) as u8);
            m /= 10;
        }
        d
    }

    /// Reads validated int text (`[+-]?[0-9]+`, as the decoder checked it), of at most
    /// [`MAX_DIGITS`] digits.
    fn parse(t: &str) -> Result<Decimal, Failure<'static>> {
        let (negative, digits) = match t.as_bytes() {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            all => (false, all),
        };
        let start = digits
            .iter()
            .position(|&c| c != b'0')
            .unwrap_or(digits.len());
        let digits = digits.get(start..).unwrap_or(&[]);
        if digits.len() > MAX_DIGITS {
            return Err(Failure::IntTooLong);
        }
        let mut d = Decimal::zero();
        d.negative = negative;
        d.len = digits.len();
        if let Some(dst) = d.buf.get_mut(SUM_LEN - d.len..) {
            dst.copy_from_slice(digits);
        }
        Ok(d)
    }

    fn of(n: Num<'_>) -> Result<Decimal, Failure<'static>> {
        match n {
            Num::Big(t) => Decimal::parse(t),
            Num::Int(i) => Ok(Decimal::of_i32(i)),
            // Not reached: only ints are added or converted as decimals.
            Num::Float(_) | Num::Complex(..) => Ok(Decimal::zero()),
        }
    }

    /// The text, sign included (after [`add_decimal`] put it there).
    fn as_str(&self) -> &str {
        core::str::from_utf8(self.digits()).unwrap_or("0")
    }
}

/// Whether magnitude `a` is smaller than magnitude `b` (no leading zeros in either).
fn smaller(a: &[u8], b: &[u8]) -> bool {
    a.len() < b.len() || (a.len() == b.len() && a < b)
}

/// `a + b` on decimal digits, schoolbook style, from the last digit up.
fn add_decimal(a: &Decimal, b: &Decimal) -> Result<Sum, Failure<'static>> {
    let (x, y) = (a.digits(), b.digits());
    // Same signs add magnitudes; different signs subtract the smaller from the larger
    // and take the larger's sign.
    let (big, small, negative, subtract) = if a.negative == b.negative {
        (x, y, a.negative, false)
    } else if smaller(x, y) {
        (y, x, b.negative, true)
    } else {
        (x, y, a.negative, true)
    };
    let digit = |s: &[u8], k: usize| -> i8 {
        s.len()
            .checked_sub(k + 1)
            .and_then(|i| s.get(i))
            .map_or(0, |c| (c - b'0') as i8)
    };
    let mut sum = Decimal::zero();
    let mut carry = 0i8;
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
        sum.prepend(b'0' + d as u8)?;
    }
    while sum.digits().first() == Some(&b'0') {
        sum.len -= 1;
    }
    // A sum of large ints of opposite signs can be small: the reference writes it as a
    // 32-bit INT then, and so does this device.
    if sum.len <= 10 {
        let m = sum
            .digits()
            .iter()
            .fold(0i64, |m, c| m * 10 + i64::from(c - b'0'));
        if let Ok(v) = i32::try_from(if negative { -m } else { m }) {
            return Ok(Sum::Int(v));
        }
    }
    if negative {
        sum.prepend(b'-')?;
    }
    Ok(Sum::Big(sum))
}
