//! Python's equality between dict keys and set members, as a Python 3 reader sees them,
//! used to merge equal keys the way `dict` and `set` do, in linear time whatever the keys.
//!
//! Python's rules: `1 == 1.0 == True`, `0 == -0.0 == False`, an int equals a float only
//! when the float is exactly that integer, `complex(x, 0) == x`, text equals text
//! whatever its opcode, bytes never equal text, and NaN equals nothing (each decoded
//! float is a new object, so not even identity makes two NaNs one key). Which strings
//! are text depends on the string config (a `PY2STRING` is latin-1 text only with
//! `py2str_as_py3str`).
//!
//! Each key is reduced to a canonical byte string that two keys share exactly when Python
//! finds them equal; a key holding a NaN gets none and is never merged. Equal canonical
//! strings are then found with a hash index whose probes are budgeted: hostile keys that
//! collide in the (fixed, public) hash exhaust the budget, and the index gives way to a
//! stable sort of the canonical strings, which costs n log n comparisons whatever the
//! input. `no_std` offers no randomness for a keyed hash; this needs none.

use alloc::vec;
use alloc::vec::Vec;

use crate::owned::{Int, Value};
use crate::strconfig::StrConfig;

// Tags of the canonical form. Every encoding is self-delimiting (a tag, then either a
// fixed-size field or a length and that many bytes), so that tuples and frozensets can
// concatenate their members' encodings.
const T_NONE: u8 = 0;
const T_SMALL: u8 = 1;
const T_INT_FLOAT: u8 = 2;
const T_BIG: u8 = 3;
const T_FLOAT: u8 = 4;
const T_COMPLEX: u8 = 5;
const T_BYTES: u8 = 6;
const T_TEXT: u8 = 7;
const T_CHANNEL: u8 = 8;
const T_TUPLE: u8 = 9;
const T_FROZENSET: u8 = 10;

/// A key that equals nothing: it holds a NaN (or is not a key at all).
#[derive(Debug)]
pub(crate) struct Unique;

/// A real number reduced to the form equality works on.
enum Real {
    /// An integer within `i64`.
    Small(i64),
    /// An integral float beyond `i64` (bits, sign included): big ints equal to it take
    /// this form too.
    IntFloat(u64),
    /// A float that is not an integer, or an infinity.
    Frac(u64),
}

const SIGN: u64 = 1 << 63;
const MANTISSA: u64 = (1 << 52) - 1;

/// The form of a float, or `None` for a NaN. Integer logic only: `f64::trunc` needs std.
fn real(f: f64) -> Option<Real> {
    if f.is_nan() {
        return None;
    }
    let bits = f.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0x7ff {
        return Some(Real::Frac(bits));
    }
    if bits & !SIGN == 0 {
        return Some(Real::Small(0));
    }
    if biased < 1023 {
        // 0 < |f| < 1 (subnormals included).
        return Some(Real::Frac(bits));
    }
    let mantissa = (bits & MANTISSA) | (1 << 52);
    let exp = biased - 1075;
    if exp < 0 && mantissa & ((1u64 << -exp) - 1) != 0 {
        return Some(Real::Frac(bits));
    }
    if biased < 1023 + 63 {
        let magnitude = if exp >= 0 {
            mantissa << exp
        } else {
            mantissa >> -exp
        } as i64;
        return Some(Real::Small(if bits & SIGN != 0 {
            -magnitude
        } else {
            magnitude
        }));
    }
    if f == -9_223_372_036_854_775_808.0 {
        return Some(Real::Small(i64::MIN));
    }
    Some(Real::IntFloat(bits))
}

/// The exact decimal digits of an integral float of at least 2^63 in magnitude, written
/// into `buf`; returns the digits.
fn int_float_digits(f: f64, buf: &mut [u8; 320]) -> &[u8] {
    let bits = f.to_bits();
    let mantissa = (bits & MANTISSA) | (1 << 52);
    let shift = (((bits >> 52) & 0x7ff) as usize).saturating_sub(1075);
    // mantissa << shift in little-endian 32-bit limbs: at most 53 + 971 bits.
    let mut limbs = [0u32; 34];
    let (word, bit) = (shift / 32, shift % 32);
    let wide = u128::from(mantissa) << bit;
    for (i, slot) in limbs.iter_mut().skip(word).take(3).enumerate() {
        *slot = (wide >> (32 * i)) as u32;
    }
    let mut used = (word + 3).min(limbs.len());
    let mut at = buf.len();
    loop {
        while used > 0 && limbs.get(used - 1) == Some(&0) {
            used -= 1;
        }
        if used == 0 {
            break;
        }
        // Divide by 10^9, keeping the remainder: nine more digits.
        let mut rem = 0u64;
        for limb in limbs.iter_mut().take(used).rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        for _ in 0..9 {
            at = at.saturating_sub(1);
            if let Some(slot) = buf.get_mut(at) {
                *slot = b'0' + (rem % 10) as u8;
            }
            rem /= 10;
        }
    }
    let digits = buf.get(at..).unwrap_or(&[]);
    let zeros = digits.iter().take_while(|&&d| d == b'0').count();
    digits.get(zeros..).unwrap_or(&[])
}

/// The float a big integer equals exactly, if any (`digits` without sign or leading
/// zeros, beyond `i64`).
fn exact_float(negative: bool, digits: &str) -> Option<u64> {
    // The largest double has 309 digits; an integer of 2^63 or more that a double holds
    // exactly is an odd number times 2^11 or more, so its last 11 digits say most "no".
    if digits.len() > 309 {
        return None;
    }
    let tail = digits.get(digits.len().saturating_sub(11)..)?;
    if tail.parse::<u64>().ok()? % 2048 != 0 {
        return None;
    }
    let f: f64 = digits.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let mut buf = [0u8; 320];
    if int_float_digits(f, &mut buf) != digits.as_bytes() {
        return None;
    }
    Some(if negative {
        (-f).to_bits()
    } else {
        f.to_bits()
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_be_bytes());
}

fn put_real(out: &mut Vec<u8>, r: Real) {
    match r {
        Real::Small(v) => {
            out.push(T_SMALL);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Real::IntFloat(bits) => {
            out.push(T_INT_FLOAT);
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Real::Frac(bits) => {
            out.push(T_FLOAT);
            out.extend_from_slice(&bits.to_be_bytes());
        }
    }
}

fn put_int(out: &mut Vec<u8>, i: &Int) {
    let text = match i {
        Int::Small(v) => return put_real(out, Real::Small(*v)),
        Int::Big(t) => t,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits = digits.trim_start_matches('0');
    // `Int::Big` is normally beyond i64, but a hand-built one need not be.
    if digits.len() <= 19 {
        if let Ok(m) = digits.parse::<u64>() {
            let v = if negative {
                0i128 - i128::from(m)
            } else {
                i128::from(m)
            };
            if let Ok(v) = i64::try_from(v) {
                return put_real(out, Real::Small(v));
            }
        }
    }
    if let Some(bits) = exact_float(negative, digits) {
        return put_real(out, Real::IntFloat(bits));
    }
    out.push(T_BIG);
    out.push(u8::from(negative));
    put_len(out, digits.len());
    out.extend_from_slice(digits.as_bytes());
}

fn put_text_latin1(out: &mut Vec<u8>, bytes: &[u8]) {
    let utf8_len = bytes.len() + bytes.iter().filter(|&&b| b >= 0x80).count();
    out.push(T_TEXT);
    put_len(out, utf8_len);
    for &b in bytes {
        let mut buf = [0u8; 4];
        out.extend_from_slice(char::from(b).encode_utf8(&mut buf).as_bytes());
    }
}

fn put_blob(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends the canonical form of `v` to `out`: two hashable values get the same bytes
/// exactly when Python finds them equal. [`Unique`] for a value equal to nothing.
pub(crate) fn canon(v: &Value, config: StrConfig, out: &mut Vec<u8>) -> Result<(), Unique> {
    match v {
        Value::None => out.push(T_NONE),
        Value::Bool(b) => put_real(out, Real::Small(i64::from(*b))),
        Value::Int(i) | Value::Long(i) => put_int(out, i),
        Value::Float(f) => put_real(out, real(*f).ok_or(Unique)?),
        Value::Complex(re, im) => {
            if im.is_nan() || re.is_nan() {
                return Err(Unique);
            }
            if *im == 0.0 {
                put_real(out, real(*re).ok_or(Unique)?);
            } else {
                out.push(T_COMPLEX);
                // -0.0 + 0.0 is 0.0: complex(-0.0, 1) == complex(0.0, 1).
                out.extend_from_slice(&(re + 0.0).to_bits().to_be_bytes());
                out.extend_from_slice(&im.to_bits().to_be_bytes());
            }
        }
        Value::Bytes(b) => put_blob(out, T_BYTES, b),
        Value::Unicode(s) => put_blob(out, T_TEXT, s.as_bytes()),
        Value::Str(s) if config.py3str_as_py2str => put_blob(out, T_BYTES, s.as_bytes()),
        Value::Str(s) => put_blob(out, T_TEXT, s.as_bytes()),
        Value::Py2Str(b) if config.py2str_as_py3str => put_text_latin1(out, b),
        Value::Py2Str(b) => put_blob(out, T_BYTES, b),
        Value::Channel(c) => {
            out.push(T_CHANNEL);
            out.extend_from_slice(&c.to_be_bytes());
        }
        Value::Tuple(items) => {
            out.push(T_TUPLE);
            put_len(out, items.len());
            for item in items {
                canon(item, config, out)?;
            }
        }
        Value::FrozenSet(members) => {
            // Members in sorted order of their own forms: equal sets, equal bytes. The
            // members are distinct already (the set was merged when it was built).
            out.push(T_FROZENSET);
            put_len(out, members.len());
            let start = out.len();
            let mut spans = Vec::with_capacity(members.len());
            for m in members {
                let from = out.len() - start;
                canon(m, config, out)?;
                spans.push((from, out.len() - start));
            }
            let block = out.split_off(start);
            let part = |(a, b): (usize, usize)| block.get(a..b).unwrap_or(&[]);
            spans.sort_unstable_by(|x, y| part(*x).cmp(part(*y)));
            for span in spans {
                out.extend_from_slice(part(span));
            }
        }
        Value::List(_) | Value::Dict(_) | Value::Set(_) => return Err(Unique),
    }
    Ok(())
}

/// A fast, fixed hash of a canonical form. Collisions, crafted or not, only cost probes
/// out of the budget below.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    for (slot, b) in w.iter_mut().zip(chunks.remainder()) {
        *slot = *b;
    }
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// No canonical form: the key is [`Unique`].
const NO_SPAN: (usize, usize) = (usize::MAX, 0);

/// For each key, the index of the first key equal to it (itself if none), or `None`
/// when all keys are distinct.
fn first_equal<'v>(
    keys: impl Iterator<Item = &'v Value>,
    n: usize,
    config: StrConfig,
    hasher: fn(&[u8]) -> u64,
) -> Option<Vec<usize>> {
    let mut forms = Vec::new();
    let mut spans = Vec::with_capacity(n);
    for k in keys {
        let from = forms.len();
        match canon(k, config, &mut forms) {
            Ok(()) => spans.push((from, forms.len())),
            Err(Unique) => {
                forms.truncate(from);
                spans.push(NO_SPAN);
            }
        }
    }
    let form = |i: usize| -> Option<&[u8]> {
        let (a, b) = *spans.get(i)?;
        if a == usize::MAX {
            None
        } else {
            forms.get(a..b)
        }
    };

    let mut first: Vec<usize> = (0..n).collect();
    let mut merged = false;
    // Linear probing at load 1/2 averages under 2.5 probes a key; four a key (and a
    // little for small tables) is ample for honest keys and cuts hostile ones short.
    let size = (2 * n).next_power_of_two().max(8);
    let mask = size - 1;
    let mut slots = vec![usize::MAX; size];
    let mut budget = 4 * n + 32;
    'keys: for i in 0..n {
        let Some(f) = form(i) else { continue };
        let mut at = (hasher(f) as usize) & mask;
        loop {
            let Some(slot) = slots.get_mut(at) else {
                break 'keys;
            };
            if *slot == usize::MAX {
                *slot = i;
                continue 'keys;
            }
            let j = *slot;
            if form(j) == Some(f) {
                if let Some(x) = first.get_mut(i) {
                    *x = j;
                }
                merged = true;
                continue 'keys;
            }
            if budget == 0 {
                return sorted_first_equal(n, form);
            }
            budget -= 1;
            at = (at + 1) & mask;
        }
    }
    merged.then_some(first)
}

/// [`first_equal`] by a stable sort of the canonical forms: n log n comparisons, each
/// no longer than the shorter form, whatever the keys.
fn sorted_first_equal<'f>(
    n: usize,
    form: impl Fn(usize) -> Option<&'f [u8]>,
) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).filter(|&i| form(i).is_some()).collect();
    // Stable: equal forms stay in key order, so each run starts with the first key.
    order.sort_by(|&a, &b| form(a).cmp(&form(b)));
    let mut first: Vec<usize> = (0..n).collect();
    let mut merged = false;
    let mut run_start: Option<usize> = None;
    for &i in &order {
        match run_start {
            Some(s) if form(s) == form(i) => {
                if let Some(x) = first.get_mut(i) {
                    *x = s;
                }
                merged = true;
            }
            _ => run_start = Some(i),
        }
    }
    merged.then_some(first)
}

/// Dict entries with Python's rule for equal keys: the first key stays, the last value
/// wins, insertion order is that of first appearance.
pub(crate) fn dedup_entries(
    entries: Vec<(Value, Value)>,
    config: StrConfig,
) -> Vec<(Value, Value)> {
    dedup_entries_with(entries, config, hash)
}

fn dedup_entries_with(
    entries: Vec<(Value, Value)>,
    config: StrConfig,
    hasher: fn(&[u8]) -> u64,
) -> Vec<(Value, Value)> {
    let n = entries.len();
    if n < 2 {
        return entries;
    }
    let Some(first) = first_equal(entries.iter().map(|(k, _)| k), n, config, hasher) else {
        return entries;
    };
    let mut out: Vec<(Value, Value)> = Vec::with_capacity(n);
    let mut position = vec![0usize; n];
    for (i, (k, v)) in entries.into_iter().enumerate() {
        let f = first.get(i).copied().unwrap_or(i);
        if f == i {
            if let Some(p) = position.get_mut(i) {
                *p = out.len();
            }
            out.push((k, v));
        } else if let Some(entry) = position.get(f).and_then(|&p| out.get_mut(p)) {
            entry.1 = v;
        }
    }
    out
}

/// Set members with Python's rule: the first of equal members stays.
pub(crate) fn dedup_members(members: Vec<Value>, config: StrConfig) -> Vec<Value> {
    dedup_members_with(members, config, hash)
}

fn dedup_members_with(
    members: Vec<Value>,
    config: StrConfig,
    hasher: fn(&[u8]) -> u64,
) -> Vec<Value> {
    let n = members.len();
    if n < 2 {
        return members;
    }
    let Some(first) = first_equal(members.iter(), n, config, hasher) else {
        return members;
    };
    members
        .into_iter()
        .enumerate()
        .filter(|(i, _)| first.get(*i) == Some(i))
        .map(|(_, m)| m)
        .collect()
}

/// Python's `a == b` between two hashable values.
#[cfg(test)]
pub(crate) fn py_eq(a: &Value, b: &Value, config: StrConfig) -> bool {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    canon(a, config, &mut x).is_ok() && canon(b, config, &mut y).is_ok() && x == y
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;

    fn big(s: &str) -> Value {
        Value::Int(Int::parse(s).unwrap())
    }

    #[test]
    fn numeric_equality_follows_python() {
        let c = StrConfig::LOADS;
        assert!(py_eq(&Value::Bool(true), &Value::Float(1.0), c));
        assert!(py_eq(&Value::int(0), &Value::Float(-0.0), c));
        assert!(py_eq(&Value::Bool(false), &Value::Complex(-0.0, 0.0), c));
        assert!(py_eq(&Value::Complex(2.0, 0.0), &Value::int(2), c));
        assert!(py_eq(
            &Value::Complex(-0.0, 1.0),
            &Value::Complex(0.0, 1.0),
            c
        ));
        assert!(!py_eq(&Value::Complex(1.0, 1.0), &Value::int(1), c));
        assert!(!py_eq(&Value::Float(f64::NAN), &Value::Float(f64::NAN), c));
        assert!(!py_eq(&Value::Float(0.5), &Value::int(0), c));
        assert!(py_eq(
            &Value::Float(f64::INFINITY),
            &Value::Complex(f64::INFINITY, 0.0),
            c
        ));
        assert!(!py_eq(
            &Value::Float(f64::INFINITY),
            &Value::Float(f64::NEG_INFINITY),
            c
        ));
        assert!(py_eq(&Value::Float(5e-324), &Value::Float(5e-324), c));
        assert!(py_eq(
            &big("36893488147419103232"),
            &Value::Float(2f64.powi(65)),
            c
        ));
        assert!(py_eq(
            &big("-36893488147419103232"),
            &Value::Float(-(2f64.powi(65))),
            c
        ));
        assert!(!py_eq(
            &big("36893488147419103233"),
            &Value::Float(2f64.powi(65)),
            c
        ));
        assert!(!py_eq(
            &big("36893488147419103232"),
            &Value::Float(-(2f64.powi(65))),
            c
        ));
        assert!(py_eq(
            &big("-9223372036854775808"),
            &Value::Float(-(2f64.powi(63))),
            c
        ));
        assert!(py_eq(
            &big("9223372036854775808"),
            &Value::Float(2f64.powi(63)),
            c
        ));
        assert!(py_eq(
            &Value::int(9_007_199_254_740_993),
            &Value::int(9_007_199_254_740_993),
            c
        ));
        assert!(!py_eq(
            &Value::int(9_007_199_254_740_993),
            &Value::Float(9_007_199_254_740_992.0),
            c
        ));
        assert!(py_eq(&Value::Long(Int::Small(3)), &Value::int(3), c));
        assert!(py_eq(
            &Value::Int(Int::Big("+0007".into())),
            &Value::int(7),
            c
        ));
        // The largest double, exactly.
        let max = f64::MAX;
        let mut buf = [0u8; 320];
        let digits = String::from_utf8(int_float_digits(max, &mut buf).to_vec()).unwrap();
        assert_eq!(digits.len(), 309);
        assert!(digits.starts_with("179769313486231570814527423731704356798070567525844996"));
        assert!(py_eq(&big(&digits), &Value::Float(max), c));
        let mut off_by_one = digits.clone().into_bytes();
        *off_by_one.last_mut().unwrap() += 1;
        assert!(!py_eq(
            &big(core::str::from_utf8(&off_by_one).unwrap()),
            &Value::Float(max),
            c
        ));
        // Every power of two from 2^63 up, and a few neighbours.
        for e in 63..1024 {
            let f = 2f64.powi(e);
            let text = {
                let mut buf = [0u8; 320];
                String::from_utf8(int_float_digits(f, &mut buf).to_vec()).unwrap()
            };
            assert!(py_eq(&big(&text), &Value::Float(f), c), "2^{e}");
            let next = f64::from_bits(f.to_bits() + 1);
            let mut buf = [0u8; 320];
            let t2 = String::from_utf8(int_float_digits(next, &mut buf).to_vec()).unwrap();
            assert!(py_eq(&big(&t2), &Value::Float(next), c), "2^{e}+ulp");
            assert!(!py_eq(&big(&t2), &Value::Float(f), c));
        }
    }

    #[test]
    fn containers_compare_by_their_members() {
        let c = StrConfig::LOADS;
        let t = |v: Vec<Value>| Value::Tuple(v);
        let fs = |v: Vec<Value>| Value::FrozenSet(v);
        assert!(py_eq(
            &t(vec![Value::int(1)]),
            &t(vec![Value::Float(1.0)]),
            c
        ));
        assert!(!py_eq(
            &t(vec![Value::int(1)]),
            &t(vec![Value::int(1), Value::None]),
            c
        ));
        assert!(!py_eq(
            &t(vec![Value::Float(f64::NAN)]),
            &t(vec![Value::Float(f64::NAN)]),
            c
        ));
        assert!(py_eq(
            &fs(vec![Value::int(1), Value::from("a")]),
            &fs(vec![Value::from("a"), Value::Bool(true)]),
            c
        ));
        assert!(!py_eq(&fs(vec![Value::int(1)]), &t(vec![Value::int(1)]), c));
        assert!(!py_eq(
            &fs(vec![Value::int(1), Value::int(2)]),
            &fs(vec![Value::int(1)]),
            c
        ));
        assert!(py_eq(&Value::Channel(3), &Value::Channel(3), c));
        assert!(!py_eq(&Value::Channel(3), &Value::int(3), c));
        assert!(py_eq(&Value::None, &Value::None, c));
        assert!(!py_eq(&Value::None, &Value::int(0), c));
    }

    #[test]
    fn strings_depend_on_config() {
        let py2 = Value::Py2Str(vec![0xe9]);
        let text = Value::Unicode("\u{e9}".into());
        assert!(!py_eq(&py2, &text, StrConfig::LOADS));
        assert!(py_eq(&py2, &text, StrConfig::GATEWAY));
        assert!(py_eq(&py2, &Value::Bytes(vec![0xe9]), StrConfig::LOADS));
        assert!(!py_eq(
            &Value::Bytes(b"a".to_vec()),
            &Value::from("a"),
            StrConfig::LOADS
        ));
        assert!(py_eq(
            &Value::from("a"),
            &Value::Unicode("a".into()),
            StrConfig::LOADS
        ));
        let both = StrConfig::new(true, true);
        assert!(py_eq(&Value::from("a"), &Value::Bytes(b"a".to_vec()), both));
        assert!(py_eq(
            &Value::Py2Str(b"a".to_vec()),
            &Value::Unicode("a".into()),
            both
        ));
    }

    #[test]
    fn dict_rule_first_key_last_value() {
        let d = dedup_entries(
            vec![
                (Value::int(1), Value::from("a")),
                (Value::from("x"), Value::None),
                (Value::Float(1.0), Value::from("b")),
                (Value::Float(f64::NAN), Value::int(1)),
                (Value::Float(f64::NAN), Value::int(2)),
            ],
            StrConfig::LOADS,
        );
        assert_eq!(d.len(), 4);
        assert_eq!(d[0], (Value::int(1), Value::from("b")));
        let s = dedup_members(
            vec![Value::Bool(true), Value::int(1), Value::int(2)],
            StrConfig::LOADS,
        );
        assert_eq!(s, vec![Value::Bool(true), Value::int(2)]);
    }

    /// A hash that sends every key to one slot: the budget runs out and the sort takes
    /// over, with the same result and in n log n time.
    #[test]
    fn colliding_hash_falls_back_to_sorting() {
        fn constant(_: &[u8]) -> u64 {
            7
        }
        let keys: Vec<Value> = (0..3000)
            .map(|i| match i % 3 {
                0 => Value::int(i / 3),
                1 => Value::Float((i / 3) as f64),
                _ => Value::from(format!("k{}", i / 3).as_str()),
            })
            .collect();
        let entries: Vec<(Value, Value)> = keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, Value::int(i as i64)))
            .collect();
        let a = dedup_entries_with(entries.clone(), StrConfig::LOADS, constant);
        let b = dedup_entries_with(entries, StrConfig::LOADS, hash);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2000);
        // int 0 and float 0.0 merged: the int key stays, the float's value wins.
        assert_eq!(a[0], (Value::int(0), Value::int(1)));
        let m1 = dedup_members_with(keys.clone(), StrConfig::LOADS, constant);
        let m2 = dedup_members_with(keys, StrConfig::LOADS, hash);
        assert_eq!(m1, m2);
        assert_eq!(m1.len(), 2000);
    }
}
