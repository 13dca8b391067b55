//! Python's `repr()` of a value, character for character as CPython prints it (feature
//! `alloc`): what `Value`'s `Display` prints, and what the `execnet decode` command
//! prints.
//!
//! The printer writes into any [`core::fmt::Write`] (a `String`, a `Formatter`, an
//! adapter over a buffered stream) with no allocation of its own, so that a large value
//! can be printed as it is written out.

use core::fmt::{self, Write};

use crate::owned::{Int, Value};
use crate::strconfig::{load_as, Decoding, Loaded, Reader, StrConfig, StrKind};

mod printable;

use printable::NON_PRINTABLE;

/// Which interpreter's `repr` to reproduce, and how strings load there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReprMode {
    /// CPython 3 with execnet 2.x, strings loaded under this config (`loads()` uses
    /// [`StrConfig::LOADS`], channels [`StrConfig::GATEWAY`]).
    Py3(StrConfig),
    /// CPython 2.7 with execnet 1.9 `loads()`: `str`, `u'...'`, `123L`.
    Py2,
}

/// The value as the interpreter of `mode` prints it. Sets print their members in the
/// order they came (Python's own order depends on its hash seed); a channel prints as
/// `<Channel id=N>`.
///
/// ```
/// use execnet_core::repr::{repr, ReprMode};
/// use execnet_core::{StrConfig, Value};
/// let v = Value::List(vec![Value::Float(1e16), Value::Str("it's".into()), Value::Tuple(vec![Value::int(1)])]);
/// assert_eq!(repr(&v, ReprMode::Py3(StrConfig::LOADS)), "[1e+16, \"it's\", (1,)]");
/// ```
pub fn repr(v: &Value, mode: ReprMode) -> alloc::string::String {
    let mut out = alloc::string::String::new();
    // Writing into a String cannot fail.
    let _ = write_repr(&mut out, v, mode);
    out
}

/// Writes the value as the interpreter of `mode` prints it (see [`repr`]).
pub fn write_repr<W: Write + ?Sized>(out: &mut W, v: &Value, mode: ReprMode) -> fmt::Result {
    Printer { out, mode }.value(v)
}

/// `Display` is Python 3's `repr` of the value as a channel receives it (string config
/// [`StrConfig::GATEWAY`], under which a Python 2 `str` is latin-1 text); use [`repr`]
/// for another reader.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_repr(f, self, ReprMode::Py3(StrConfig::GATEWAY))
    }
}

fn printable(c: char) -> bool {
    let cp = c as u32;
    NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                core::cmp::Ordering::Less
            } else if lo > cp {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// Python's quote choice: `'` unless the text holds `'` and no `"`.
fn quote_for(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// A small stack buffer to format into.
struct Buf {
    b: [u8; 48],
    n: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf { b: [0; 48], n: 0 }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(self.b.get(..self.n).unwrap_or(&[])).unwrap_or("")
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.n + s.len();
        self.b
            .get_mut(self.n..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.n = end;
        Ok(())
    }
}

fn zeros<W: Write + ?Sized>(out: &mut W, n: usize) -> fmt::Result {
    (0..n).try_for_each(|_| out.write_char('0'))
}

/// CPython's `float_repr_style = 'short'`: the shortest digits that round-trip, in fixed
/// notation for exponents -4 to 15 and scientific otherwise. `dot0` adds `.0` to
/// integral values (floats do, the parts of a complex do not).
pub(crate) fn write_float<W: Write + ?Sized>(out: &mut W, f: f64, dot0: bool) -> fmt::Result {
    if f.is_nan() {
        return out.write_str("nan");
    }
    if f.is_infinite() {
        return out.write_str(if f > 0.0 { "inf" } else { "-inf" });
    }
    // Rust's `{:e}` gives the shortest round-trip digits as d.ddde[-]x.
    let mut sci = Buf::new();
    write!(sci, "{f:e}")?;
    let sci = sci.as_str();
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let mut digits = Buf::new();
    for c in mantissa.chars().filter(|c| *c != '.') {
        digits.write_char(c)?;
    }
    let digits = digits.as_str();
    if neg {
        out.write_char('-')?;
    }
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.write_str("0.")?;
            zeros(out, (-point) as usize)?;
            out.write_str(digits)
        } else if (point as usize) >= digits.len() {
            out.write_str(digits)?;
            zeros(out, point as usize - digits.len())?;
            if dot0 {
                out.write_str(".0")?;
            }
            Ok(())
        } else {
            let (a, b) = digits.split_at(point as usize);
            write!(out, "{a}.{b}")
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.write_str(first)?;
        if !rest.is_empty() {
            write!(out, ".{rest}")?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exp.unsigned_abs())
    }
}

struct Printer<'w, W: ?Sized> {
    out: &'w mut W,
    mode: ReprMode,
}

impl<W: Write + ?Sized> Printer<'_, W> {
    fn py2(&self) -> bool {
        self.mode == ReprMode::Py2
    }

    fn text(&mut self, chars: impl Iterator<Item = char> + Clone, prefix: &str) -> fmt::Result {
        let py2 = self.py2();
        let (s, d) = chars
            .clone()
            .fold((false, false), |(s, d), c| (s || c == '\'', d || c == '"'));
        let q = quote_for(s, d);
        let out = &mut *self.out;
        out.write_str(prefix)?;
        out.write_char(q)?;
        for c in chars {
            match c {
                '\\' => out.write_str("\\\\")?,
                '\t' => out.write_str("\\t")?,
                '\n' => out.write_str("\\n")?,
                '\r' => out.write_str("\\r")?,
                c if c == q => {
                    out.write_char('\\')?;
                    out.write_char(c)?;
                }
                c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32)?,
                c if (c as u32) < 0x7f => out.write_char(c)?,
                // Python 2 escapes every non-ASCII character of a unicode repr.
                c if !py2 && printable(c) => out.write_char(c)?,
                c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32)?,
                c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32)?,
                c => write!(out, "\\U{:08x}", c as u32)?,
            }
        }
        out.write_char(q)
    }

    fn bytes(&mut self, b: &[u8], prefix: &str) -> fmt::Result {
        let q = quote_for(b.contains(&b'\''), b.contains(&b'"'));
        let out = &mut *self.out;
        out.write_str(prefix)?;
        out.write_char(q)?;
        // Escaped text is gathered in a small buffer and written a chunk at a time: one
        // `write_str` per byte costs more than the escaping itself on binary data.
        let hex = |nibble: u8| {
            b"0123456789abcdef"
                .get(usize::from(nibble))
                .copied()
                .unwrap_or(b'0')
        };
        let mut chunk = [0u8; 512];
        let mut n = 0;
        for &c in b {
            if n + 4 > chunk.len() {
                out.write_str(core::str::from_utf8(chunk.get(..n).unwrap_or(&[])).unwrap_or(""))?;
                n = 0;
            }
            let escaped: &[u8] = match c {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                c if char::from(c) == q => {
                    if q == '"' {
                        b"\\\""
                    } else {
                        b"\\'"
                    }
                }
                0x20..=0x7e => core::slice::from_ref(&c),
                c => {
                    let escape = [b'\\', b'x', hex(c >> 4), hex(c & 0xf)];
                    if let Some(slot) = chunk.get_mut(n..n + 4) {
                        slot.copy_from_slice(&escape);
                    }
                    n += 4;
                    continue;
                }
            };
            if let Some(slot) = chunk.get_mut(n..n + escaped.len()) {
                slot.copy_from_slice(escaped);
            }
            n += escaped.len();
        }
        out.write_str(core::str::from_utf8(chunk.get(..n).unwrap_or(&[])).unwrap_or(""))?;
        out.write_char(q)
    }

    fn complex(&mut self, re: f64, im: f64) -> fmt::Result {
        let out = &mut *self.out;
        if re == 0.0 && re.is_sign_positive() {
            write_float(out, im, false)?;
            return out.write_char('j');
        }
        out.write_char('(')?;
        write_float(out, re, false)?;
        // CPython shows no sign on NaN: `(1+nanj)` whatever the sign bit.
        if im.is_nan() || !im.is_sign_negative() {
            out.write_char('+')?;
        }
        write_float(out, im, false)?;
        out.write_str("j)")
    }

    fn seq(&mut self, items: &[Value]) -> fmt::Result {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.write_str(", ")?;
            }
            self.value(item)?;
        }
        Ok(())
    }

    fn string(&mut self, kind: StrKind, raw: &[u8]) -> fmt::Result {
        let py2 = self.py2();
        let (config, reader) = match self.mode {
            ReprMode::Py3(c) => (c, Reader::Execnet2Py3),
            ReprMode::Py2 => (StrConfig::LOADS, Reader::Py2),
        };
        let prefix = if py2 { "u" } else { "" };
        match load_as(kind, config, reader) {
            Loaded::Bytes => self.bytes(raw, if py2 { "" } else { "b" }),
            Loaded::Text(Decoding::Latin1) => self.text(raw.iter().map(|&b| char::from(b)), prefix),
            Loaded::Text(Decoding::Utf8) => match core::str::from_utf8(raw) {
                Ok(s) => self.text(s.chars(), prefix),
                // A hand-built PY3STRING of raw bytes: show the bytes as latin-1.
                Err(_) => self.text(raw.iter().map(|&b| char::from(b)), prefix),
            },
        }
    }

    fn value(&mut self, v: &Value) -> fmt::Result {
        let py2 = self.py2();
        match v {
            Value::Str(s) => self.string(StrKind::Py3Str, s.as_bytes()),
            Value::Unicode(s) => self.string(StrKind::Unicode, s.as_bytes()),
            Value::Py2Str(b) => self.string(StrKind::Py2Str, b),
            Value::Bytes(b) => self.string(StrKind::Bytes, b),
            Value::None => self.out.write_str("None"),
            Value::Bool(true) => self.out.write_str("True"),
            Value::Bool(false) => self.out.write_str("False"),
            Value::Int(i) => {
                write!(self.out, "{i}")?;
                // Python 2 makes a long of any int beyond the machine word.
                if py2 && matches!(i, Int::Big(_)) {
                    self.out.write_char('L')?;
                }
                Ok(())
            }
            Value::Long(i) => {
                write!(self.out, "{i}")?;
                if py2 {
                    self.out.write_char('L')?;
                }
                Ok(())
            }
            Value::Float(f) => write_float(self.out, *f, true),
            Value::Complex(re, im) => self.complex(*re, *im),
            Value::List(items) => {
                self.out.write_char('[')?;
                self.seq(items)?;
                self.out.write_char(']')
            }
            Value::Tuple(items) => {
                self.out.write_char('(')?;
                self.seq(items)?;
                if items.len() == 1 {
                    self.out.write_char(',')?;
                }
                self.out.write_char(')')
            }
            Value::Set(items) | Value::FrozenSet(items) => {
                let name = if matches!(v, Value::Set(_)) {
                    "set"
                } else {
                    "frozenset"
                };
                if py2 {
                    write!(self.out, "{name}([")?;
                    self.seq(items)?;
                    self.out.write_str("])")
                } else if items.is_empty() {
                    write!(self.out, "{name}()")
                } else if name == "set" {
                    self.out.write_char('{')?;
                    self.seq(items)?;
                    self.out.write_char('}')
                } else {
                    self.out.write_str("frozenset({")?;
                    self.seq(items)?;
                    self.out.write_str("})")
                }
            }
            Value::Dict(entries) => {
                self.out.write_char('{')?;
                for (i, (k, val)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.write_str(", ")?;
                    }
                    self.value(k)?;
                    self.out.write_str(": ")?;
                    self.value(val)?;
                }
                self.out.write_char('}')
            }
            Value::Channel(id) => write!(self.out, "<Channel id={id}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    fn py3(v: &Value) -> String {
        repr(v, ReprMode::Py3(StrConfig::LOADS))
    }

    fn float(f: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, f, true).unwrap();
        s
    }

    #[test]
    fn floats_like_cpython() {
        for (f, s) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0.0"),
            (2.5e300, "2.5e+300"),
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float(f), s, "{f}");
        }
    }

    #[test]
    fn complex_like_cpython() {
        for ((re, im), s) in [
            ((1.0, 2.0), "(1+2j)"),
            ((-0.0, 1.0), "(-0+1j)"),
            ((0.0, -0.0), "-0j"),
            ((f64::NAN, f64::NAN), "(nan+nanj)"),
            ((1.0, -f64::NAN), "(1+nanj)"),
            ((1e16, 1e-5), "(1e+16+1e-05j)"),
            ((-0.0, -0.0), "(-0-0j)"),
            ((0.0, f64::INFINITY), "infj"),
            ((1.0, f64::NEG_INFINITY), "(1-infj)"),
        ] {
            assert_eq!(py3(&Value::Complex(re, im)), s);
        }
    }

    #[test]
    fn strings_and_containers() {
        assert_eq!(py3(&Value::Str("it's".into())), "\"it's\"");
        assert_eq!(
            py3(&Value::Str("a'\"\u{e9}\u{1F600}\u{200b}\n".into())),
            "'a\\'\"\u{e9}\u{1F600}\\u200b\\n'"
        );
        assert_eq!(
            py3(&Value::Bytes(b"\x00\xff'".to_vec())),
            "b\"\\x00\\xff'\""
        );
        assert_eq!(
            py3(&Value::Bytes(b"ab\\cd\"e'f\tg".to_vec())),
            "b'ab\\\\cd\"e\\'f\\tg'"
        );
        assert_eq!(py3(&Value::Set(vec![])), "set()");
        assert_eq!(
            py3(&Value::FrozenSet(vec![Value::int(1)])),
            "frozenset({1})"
        );
        assert_eq!(
            repr(&Value::Set(vec![Value::int(1)]), ReprMode::Py2),
            "set([1])"
        );
        assert_eq!(
            repr(&Value::FrozenSet(vec![]), ReprMode::Py2),
            "frozenset([])"
        );
        assert_eq!(
            repr(&Value::Unicode("\u{e9}\u{1234}".into()), ReprMode::Py2),
            "u'\\xe9\\u1234'"
        );
        assert_eq!(
            repr(&Value::Py2Str(b"\xe9\x00\"".to_vec()), ReprMode::Py2),
            "'\\xe9\\x00\"'"
        );
        assert_eq!(repr(&Value::Long(Int::Small(5)), ReprMode::Py2), "5L");
        assert_eq!(py3(&Value::Tuple(vec![])), "()");
        assert_eq!(
            py3(&Value::Dict(vec![(Value::Str("k".into()), Value::None)])),
            "{'k': None}"
        );
        // PY2STRING under loads(): bytes; with py2str_as_py3str: latin-1 text.
        let p = Value::Py2Str(b"\xe9".to_vec());
        assert_eq!(py3(&p), "b'\\xe9'");
        assert_eq!(
            repr(&p, ReprMode::Py3(StrConfig::new(true, false))),
            "'\u{e9}'"
        );
        // Display: a channel's view, where that str is text.
        assert_eq!(alloc::format!("{p}"), "'\u{e9}'");
        assert_eq!(
            alloc::format!(
                "{}",
                Value::List(vec![Value::Channel(3), Value::Bool(true)])
            ),
            "[<Channel id=3>, True]"
        );
    }
}
