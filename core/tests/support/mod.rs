//! Helpers for the codec tests: strict equality of values, the keys that tell which
//! floats Python finds equal to which ints, and a temporary directory. The differential
//! tests of the workspace's `tests` crate include this file by path.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;

use execnet_core::value::{IntKind, PyStr};
use execnet_core::{Int, Value, ValueRef};

fn bits_eq(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

/// Strict equality of owned values: floats bit for bit, every opcode family kept apart,
/// order everywhere.
pub fn strict_eq(a: &Value, b: &Value) -> bool {
    use Value as V;
    match (a, b) {
        (V::Float(x), V::Float(y)) => bits_eq(*x, *y),
        (V::Complex(a, b), V::Complex(c, d)) => bits_eq(*a, *c) && bits_eq(*b, *d),
        (V::List(x), V::List(y))
        | (V::Tuple(x), V::Tuple(y))
        | (V::Set(x), V::Set(y))
        | (V::FrozenSet(x), V::FrozenSet(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| strict_eq(p, q))
        }
        (V::Dict(x), V::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| strict_eq(k1, k2) && strict_eq(v1, v2))
        }
        _ => a == b,
    }
}

/// The borrowed view shows exactly the owned value, opcode for opcode.
pub fn ref_eq(r: &ValueRef<'_, '_>, v: &Value) -> bool {
    let int_eq = |x: &ValueRef<'_, '_>, want: &Int| match *x {
        ValueRef::Int(i, _) => *want == Int::Small(i),
        ValueRef::BigInt(t, _) => Int::parse(t).as_ref() == Some(want),
        _ => false,
    };
    match (*r, v) {
        (ValueRef::None, Value::None) => true,
        (ValueRef::Bool(a), Value::Bool(b)) => a == *b,
        (ValueRef::Int(_, IntKind::Int) | ValueRef::BigInt(_, IntKind::Int), Value::Int(i)) => {
            int_eq(r, i)
        }
        (ValueRef::Int(_, IntKind::Long) | ValueRef::BigInt(_, IntKind::Long), Value::Long(i)) => {
            int_eq(r, i)
        }
        (ValueRef::Float(a), Value::Float(b)) => bits_eq(a, *b),
        (ValueRef::Complex(a, b), Value::Complex(c, d)) => bits_eq(a, *c) && bits_eq(b, *d),
        (ValueRef::Bytes(a), Value::Bytes(b)) => a == b.as_slice(),
        (ValueRef::Str(PyStr::Py3(a)), Value::Str(b)) => a == b,
        (ValueRef::Str(PyStr::Unicode(a)), Value::Unicode(b)) => a == b,
        (ValueRef::Str(PyStr::Py2(a)), Value::Py2Str(b)) => a == b.as_slice(),
        (ValueRef::Channel(a), Value::Channel(b)) => a == *b,
        (ValueRef::List(a), Value::List(b))
        | (ValueRef::Tuple(a), Value::Tuple(b))
        | (ValueRef::Set(a), Value::Set(b))
        | (ValueRef::FrozenSet(a), Value::FrozenSet(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ref_eq(&x, y))
        }
        (ValueRef::Dict(a), Value::Dict(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((k1, v1), (k2, v2))| ref_eq(&k1, k2) && ref_eq(&v1, v2))
        }
        _ => false,
    }
}

/// Exact decimal text of an integral float.
pub fn float_int_text(f: f64) -> String {
    if f.abs() < 9.2e18 {
        return (f as i64).to_string();
    }
    let bits = f.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    // Little-endian base-10^9 limbs of mantissa * 2^exp (exp >= 0 here).
    let mut limbs: Vec<u64> = vec![mantissa % 1_000_000_000, mantissa / 1_000_000_000];
    for _ in 0..exp {
        let mut carry = 0;
        for limb in limbs.iter_mut() {
            let v = *limb * 2 + carry;
            *limb = v % 1_000_000_000;
            carry = v / 1_000_000_000;
        }
        if carry > 0 {
            limbs.push(carry);
        }
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut s = String::from(if f < 0.0 { "-" } else { "" });
    for (i, limb) in limbs.iter().rev().enumerate() {
        if i == 0 {
            let _ = write!(s, "{limb}");
        } else {
            let _ = write!(s, "{limb:09}");
        }
    }
    s
}

/// A float's part of a hash key: an integral float shares its key with the int of the
/// same value (`n:TEXT`), as Python finds them equal; every NaN is `nan`.
pub fn float_key(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_finite() && f == f.trunc() {
        format!("n:{}", float_int_text(f))
    } else {
        format!("f:{:x}", f.to_bits())
    }
}

/// A directory `execnet-NAME-PID` in the temporary directory, emptied when made and
/// removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("execnet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
