//! Reading Python literals: what `ast.literal_eval` accepts, plus what `repr` prints
//! (`nan`, `inf`, `(nan+infj)`, `set([1])`, `123L` and `u'..'` in Python 2 mode), so that
//! `execnet decode` then `execnet encode` gives back the same bytes. The printing side is
//! `execnet_core::repr`.
//!
//! Part of the binary, not of the library; the `literal` fuzz target includes this file
//! by path.

use std::fmt;

use execnet_core::{Int, Value};

/// Which Python's literals to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseMode {
    /// Python 3: `'..'` is `str`, `b'..'` is `bytes`.
    Py3,
    /// Python 2: `'..'` and `b'..'` are `str` (bytes), `u'..'` is `unicode`, `1L` and
    /// ints beyond 64 bits are `long`.
    Py2,
}

/// A literal that does not parse, with the byte offset of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the text.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// Deepest nesting accepted (the parser recurses once per level).
const MAX_DEPTH: usize = 500;

/// Parses one Python literal; anything that is not a literal (a call, a name) is refused
/// with the offset where it starts.
pub fn parse(text: &str, mode: ParseMode) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        mode,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.pos < p.s.len() {
        return Err(p.err("unexpected text after the literal"));
    }
    Ok(v)
}

struct Parser<'t> {
    s: &'t [u8],
    text: &'t str,
    pos: usize,
    mode: ParseMode,
    depth: usize,
}

/// A number before it becomes a value: ints stay exact, complex keeps signed zeros.
enum Num {
    Int(Int, bool),
    Float(f64),
    Imag(f64),
}

impl Parser<'_> {
    fn err(&self, message: &str) -> ParseError {
        ParseError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == b'\x0c' {
                self.pos += 1;
            } else if c == b'\\' && self.s.get(self.pos + 1) == Some(&b'\n') {
                self.pos += 2;
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", char::from(c))))
        }
    }

    fn word(&mut self) -> &str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let v = self.sum();
        self.depth -= 1;
        v
    }

    /// A term, and for numbers `a + bj` / `a - bj` (how complex numbers are written).
    fn sum(&mut self) -> Result<Value, ParseError> {
        self.ws();
        let start = self.pos;
        let first = self.term()?;
        self.ws();
        let op = match self.peek() {
            Some(b'+') => 1.0,
            Some(b'-') => -1.0,
            _ => return Ok(first),
        };
        let re = match &first {
            // `(-0-1j)` is how Python prints a complex with a real part of -0.0.
            Value::Int(Int::Small(0)) if self.s.get(start) == Some(&b'-') => -0.0,
            Value::Int(i) | Value::Long(i) => int_to_f64(i),
            Value::Float(f) => *f,
            _ => {
                self.pos = start;
                return Err(self.err("only numbers can be added"));
            }
        };
        self.pos += 1;
        self.ws();
        match self.number()? {
            Num::Imag(im) if im.is_nan() => Ok(Value::Complex(re, f64::NAN)),
            Num::Imag(im) => Ok(Value::Complex(re, op * im)),
            _ => Err(self.err("the right side of + or - must be imaginary (like 2j)")),
        }
    }

    fn term(&mut self) -> Result<Value, ParseError> {
        self.ws();
        match self.peek() {
            None => Err(self.err("expected a literal, found the end")),
            Some(b'(') => {
                self.pos += 1;
                let (items, trailing_comma) = self.items(b')')?;
                if items.len() == 1 && !trailing_comma {
                    Ok(items.into_iter().next().unwrap_or(Value::None))
                } else {
                    Ok(Value::Tuple(items))
                }
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Value::List(self.items(b']')?.0))
            }
            Some(b'{') => {
                self.pos += 1;
                self.braces()
            }
            Some(b'\'' | b'"') => self.strings(),
            Some(c) if c.is_ascii_digit() || c == b'.' || c == b'-' || c == b'+' => {
                Ok(num_value(self.number()?, self.mode))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let save = self.pos;
                let w = self.word().to_string();
                if self.peek().is_some_and(|c| c == b'\'' || c == b'"')
                    && w.len() <= 2
                    && w.chars().all(|c| "rRbBuU".contains(c))
                {
                    self.pos = save;
                    return self.strings();
                }
                match w.as_str() {
                    "None" => Ok(Value::None),
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "nan" | "inf" | "nanj" | "infj" => {
                        self.pos = save;
                        Ok(num_value(self.number()?, self.mode))
                    }
                    "set" | "frozenset" => {
                        self.expect(b'(')?;
                        let items = if self.eat(b')') {
                            Vec::new()
                        } else {
                            let inner = self.value()?;
                            self.eat(b',');
                            self.expect(b')')?;
                            match inner {
                                Value::List(v)
                                | Value::Tuple(v)
                                | Value::Set(v)
                                | Value::FrozenSet(v) => v,
                                Value::Dict(entries) => {
                                    entries.into_iter().map(|(k, _)| k).collect()
                                }
                                _ => return Err(self.err(
                                    "set() and frozenset() take a list, tuple, set or dict literal",
                                )),
                            }
                        };
                        Ok(if w == "set" {
                            Value::Set(items)
                        } else {
                            Value::FrozenSet(items)
                        })
                    }
                    _ => {
                        self.pos = save;
                        Err(self.err(&format!("{w:?} is not a literal")))
                    }
                }
            }
            Some(_) => Err(self.err("expected a literal")),
        }
    }

    /// Comma-separated values up to `close`; also says whether a trailing comma came.
    fn items(&mut self, close: u8) -> Result<(Vec<Value>, bool), ParseError> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            if self.eat(close) {
                return Ok((items, trailing));
            }
            items.push(self.value()?);
            trailing = self.eat(b',');
            if !trailing {
                self.expect(close)?;
                return Ok((items, false));
            }
        }
    }

    fn braces(&mut self) -> Result<Value, ParseError> {
        if self.eat(b'}') {
            return Ok(Value::Dict(Vec::new()));
        }
        let first = self.value()?;
        if self.eat(b':') {
            let mut entries = vec![(first, self.value()?)];
            while self.eat(b',') {
                if self.eat(b'}') {
                    return Ok(Value::Dict(entries));
                }
                let k = self.value()?;
                self.expect(b':')?;
                entries.push((k, self.value()?));
            }
            self.expect(b'}')?;
            return Ok(Value::Dict(entries));
        }
        let mut items = vec![first];
        while self.eat(b',') {
            if self.eat(b'}') {
                return Ok(Value::Set(items));
            }
            items.push(self.value()?);
        }
        self.expect(b'}')?;
        Ok(Value::Set(items))
    }

    fn number(&mut self) -> Result<Num, ParseError> {
        self.ws();
        let start = self.pos;
        let mut neg = false;
        while let Some(c @ (b'-' | b'+')) = self.peek() {
            neg ^= c == b'-';
            self.pos += 1;
            self.ws();
        }
        let body_start = self.pos;
        // Names first: nan, inf, and their imaginary forms.
        if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            let w = self.word().to_string();
            let sign = if neg { -1.0 } else { 1.0 };
            return match w.as_str() {
                // Python prints every NaN as `nan`, whatever its sign: `-nan` is `nan`.
                "nan" => Ok(Num::Float(f64::NAN)),
                "inf" => Ok(Num::Float(sign * f64::INFINITY)),
                "nanj" => Ok(Num::Imag(f64::NAN)),
                "infj" => Ok(Num::Imag(sign * f64::INFINITY)),
                _ => {
                    self.pos = start;
                    Err(self.err("expected a number"))
                }
            };
        }
        let lower = |c: u8| c.to_ascii_lowercase();
        if self.peek() == Some(b'0')
            && self
                .s
                .get(self.pos + 1)
                .is_some_and(|&c| matches!(lower(c), b'x' | b'o' | b'b'))
        {
            let radix = match self.s.get(self.pos + 1).map(|&c| lower(c)) {
                Some(b'x') => 16,
                Some(b'o') => 8,
                _ => 2,
            };
            self.pos += 2;
            let digits_start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_hexdigit() || c == b'_')
            {
                self.pos += 1;
            }
            let digits: String = self
                .text
                .get(digits_start..self.pos)
                .unwrap_or("")
                .chars()
                .filter(|c| *c != '_')
                .collect();
            let value = radix_to_int(&digits, radix, neg)
                .ok_or_else(|| self.err("bad digits for the number's base"))?;
            let long = self.long_suffix();
            return Ok(Num::Int(value, long));
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == b'_' || c == b'.')
        {
            self.pos += 1;
        }
        if self.peek().is_some_and(|c| lower(c) == b'e') {
            let save = self.pos;
            self.pos += 1;
            if self.peek().is_some_and(|c| c == b'+' || c == b'-') {
                self.pos += 1;
            }
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'_') {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let body: String = self
            .text
            .get(body_start..self.pos)
            .unwrap_or("")
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if body.is_empty() || body == "." {
            self.pos = start;
            return Err(self.err("expected a number"));
        }
        let is_float = body.contains(['.', 'e', 'E']);
        if self.peek().is_some_and(|c| lower(c) == b'j') {
            self.pos += 1;
            let f: f64 = body.parse().map_err(|_| self.err("bad imaginary number"))?;
            return Ok(Num::Imag(if neg { -f } else { f }));
        }
        if is_float {
            let f: f64 = body.parse().map_err(|_| self.err("bad float"))?;
            return Ok(Num::Float(if neg { -f } else { f }));
        }
        if body.len() > 1 && body.starts_with('0') && body.bytes().any(|b| b != b'0') {
            return Err(self.err("leading zeros in a decimal integer are not permitted"));
        }
        let text = if neg { format!("-{body}") } else { body };
        let value = Int::parse(&text).ok_or_else(|| self.err("bad integer"))?;
        let long = self.long_suffix();
        Ok(Num::Int(value, long))
    }

    fn long_suffix(&mut self) -> bool {
        if self.mode == ParseMode::Py2 && self.peek().is_some_and(|c| c == b'L' || c == b'l') {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// One or more adjacent string literals of the same kind.
    fn strings(&mut self) -> Result<Value, ParseError> {
        let mut text: Option<(Kind, Vec<u32>)> = None;
        loop {
            self.ws();
            let save = self.pos;
            let prefix = self.word().to_ascii_lowercase();
            if !self.peek().is_some_and(|c| c == b'\'' || c == b'"') {
                self.pos = save;
                break;
            }
            let raw = prefix.contains('r');
            let kind = if prefix.contains('b') {
                Kind::Bytes
            } else if prefix.contains('u') {
                Kind::Unicode
            } else {
                Kind::Plain
            };
            if prefix.chars().any(|c| !"rbu".contains(c))
                || (prefix.contains('u') && (raw || prefix.contains('b')))
            {
                self.pos = save;
                return Err(self.err("unknown string prefix"));
            }
            let chars = self.one_string(raw, kind == Kind::Bytes)?;
            text = Some(match text {
                None => (kind, chars),
                Some((k, mut acc)) => {
                    if (k == Kind::Bytes) != (kind == Kind::Bytes) {
                        return Err(self.err("cannot mix bytes and text literals"));
                    }
                    acc.extend(chars);
                    (k, acc)
                }
            });
        }
        let (kind, chars) = text.ok_or_else(|| self.err("expected a string"))?;
        let as_string = |chars: &[u32]| -> Result<String, ParseError> {
            chars
                .iter()
                .map(|&c| char::from_u32(c).ok_or_else(|| self.err("lone surrogate in text")))
                .collect()
        };
        let as_bytes = |chars: &[u32]| -> Vec<u8> { chars.iter().map(|&c| c as u8).collect() };
        Ok(match (self.mode, kind) {
            (ParseMode::Py3, Kind::Bytes) => Value::Bytes(as_bytes(&chars)),
            (ParseMode::Py3, _) => Value::Str(as_string(&chars)?),
            (ParseMode::Py2, Kind::Unicode) => Value::Unicode(as_string(&chars)?),
            (ParseMode::Py2, Kind::Bytes) => Value::Py2Str(as_bytes(&chars)),
            // A Python 2 str literal holds bytes: escapes and characters up to \xff
            // are byte values; text beyond that can only be UTF-8.
            (ParseMode::Py2, Kind::Plain) => {
                if chars.iter().all(|&c| c < 0x100) {
                    Value::Py2Str(as_bytes(&chars))
                } else {
                    Value::Py2Str(as_string(&chars)?.into_bytes())
                }
            }
        })
    }

    /// One quoted literal (after its prefix); code points, or byte values for bytes.
    fn one_string(&mut self, raw: bool, bytes: bool) -> Result<Vec<u32>, ParseError> {
        let q = self.peek().ok_or_else(|| self.err("expected a quote"))?;
        let triple = self.s.get(self.pos..self.pos + 3) == Some(&[q, q, q][..]);
        self.pos += if triple { 3 } else { 1 };
        let mut out = Vec::new();
        loop {
            let rest = self
                .text
                .get(self.pos..)
                .ok_or_else(|| self.err("bad text"))?;
            let c = rest
                .chars()
                .next()
                .ok_or_else(|| self.err("unterminated string"))?;
            if c as u32 == u32::from(q) {
                if !triple {
                    self.pos += 1;
                    return Ok(out);
                }
                if self.s.get(self.pos..self.pos + 3) == Some(&[q, q, q][..]) {
                    self.pos += 3;
                    return Ok(out);
                }
            }
            if c == '\n' && !triple {
                return Err(self.err("end of line inside a string"));
            }
            if bytes && !c.is_ascii() {
                return Err(self.err("bytes literals can only hold ASCII characters"));
            }
            self.pos += c.len_utf8();
            if c != '\\' {
                out.push(c as u32);
                continue;
            }
            let e = self
                .text
                .get(self.pos..)
                .and_then(|r| r.chars().next())
                .ok_or_else(|| self.err("unterminated string"))?;
            if raw {
                out.push('\\' as u32);
                if e == '\\' || e as u32 == u32::from(q) {
                    out.push(e as u32);
                    self.pos += 1;
                }
                continue;
            }
            self.pos += e.len_utf8();
            let simple = match e {
                '\n' => None,
                '\\' => Some('\\' as u32),
                '\'' => Some('\'' as u32),
                '"' => Some('"' as u32),
                'a' => Some(7),
                'b' => Some(8),
                'f' => Some(12),
                'n' => Some(10),
                'r' => Some(13),
                't' => Some(9),
                'v' => Some(11),
                '0'..='7' => {
                    let mut v = e as u32 - '0' as u32;
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    if bytes && v > 0xff {
                        return Err(self.err("octal escape beyond \\377 in bytes"));
                    }
                    Some(v)
                }
                'x' => Some(self.hex_escape(2)?),
                'u' if !bytes => Some(self.hex_escape(4)?),
                'U' if !bytes => {
                    let v = self.hex_escape(8)?;
                    if v > 0x10ffff {
                        return Err(self.err("\\U escape beyond U+10FFFF"));
                    }
                    Some(v)
                }
                'N' if !bytes => return Err(self.err("\\N{...} escapes are not supported")),
                other => {
                    out.push('\\' as u32);
                    Some(other as u32)
                }
            };
            if let Some(v) = simple {
                out.push(v);
            }
        }
    }

    fn hex_escape(&mut self, n: usize) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.pos..self.pos + n)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err(&format!("escape needs {n} hex digits")))?;
        self.pos += n;
        u32::from_str_radix(digits, 16).map_err(|_| self.err("bad hex escape"))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Unicode,
    Bytes,
}

fn num_value(n: Num, mode: ParseMode) -> Value {
    match n {
        Num::Int(i, long) => {
            // Python 2 makes a long of a literal beyond the machine word.
            if mode == ParseMode::Py2 && (long || matches!(i, Int::Big(_))) {
                Value::Long(i)
            } else {
                Value::Int(i)
            }
        }
        Num::Float(f) => Value::Float(f),
        Num::Imag(im) => Value::Complex(0.0, im),
    }
}

fn int_to_f64(i: &Int) -> f64 {
    match i {
        Int::Small(v) => {
            if *v == 0 {
                0.0
            } else {
                *v as f64
            }
        }
        Int::Big(t) => t.parse().unwrap_or(f64::NAN),
    }
}

/// Digits in `radix` to a canonical int of any size.
fn radix_to_int(digits: &str, radix: u32, neg: bool) -> Option<Int> {
    if digits.is_empty() {
        return None;
    }
    // Little-endian base 10^9 limbs.
    let mut limbs: Vec<u64> = vec![0];
    for c in digits.chars() {
        let d = u64::from(c.to_digit(radix)?);
        let mut carry = d;
        for limb in limbs.iter_mut() {
            let v = *limb * u64::from(radix) + carry;
            *limb = v % 1_000_000_000;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    }
    let mut text = String::new();
    if neg {
        text.push('-');
    }
    let mut first = true;
    for limb in limbs.iter().rev() {
        if first {
            text.push_str(&limb.to_string());
            first = false;
        } else {
            text.push_str(&format!("{limb:09}"));
        }
    }
    Int::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use execnet_core::repr::{repr, ReprMode};
    use execnet_core::StrConfig;

    fn p3(t: &str) -> Value {
        parse(t, ParseMode::Py3).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn literal_eval_subset() {
        assert_eq!(p3("None"), Value::None);
        assert_eq!(
            p3(" [1, 2,] "),
            Value::List(vec![Value::int(1), Value::int(2)])
        );
        assert_eq!(p3("(1,)"), Value::Tuple(vec![Value::int(1)]));
        assert_eq!(p3("(1)"), Value::int(1));
        assert_eq!(p3("0x_ff"), Value::int(255));
        assert_eq!(p3("0b101"), Value::int(5));
        assert_eq!(p3("1_000"), Value::int(1000));
        assert_eq!(p3("-0.0"), Value::Float(-0.0));
        assert_eq!(p3(".5"), Value::Float(0.5));
        assert_eq!(p3("1e+16"), Value::Float(1e16));
        assert_eq!(p3("(-0-1j)"), Value::Complex(-0.0, -1.0));
        assert_eq!(p3("2j"), Value::Complex(0.0, 2.0));
        assert_eq!(p3("'a' \"b\""), Value::Str("ab".into()));
        assert_eq!(p3("b'\\x00\\n'"), Value::Bytes(vec![0, 10]));
        assert_eq!(p3("r'\\n'"), Value::Str("\\n".into()));
        assert_eq!(
            p3("'\\u00e9\\U0001f600'"),
            Value::Str("\u{e9}\u{1F600}".into())
        );
        assert_eq!(
            p3("{1: 2}"),
            Value::Dict(vec![(Value::int(1), Value::int(2))])
        );
        assert_eq!(p3("{1, 2}"), Value::Set(vec![Value::int(1), Value::int(2)]));
        assert_eq!(p3("set()"), Value::Set(vec![]));
        assert_eq!(p3("frozenset({1})"), Value::FrozenSet(vec![Value::int(1)]));
        assert_eq!(p3("set([1])"), Value::Set(vec![Value::int(1)]));
        assert_eq!(
            p3("123456789012345678901234567890"),
            Value::Int(Int::parse("123456789012345678901234567890").unwrap())
        );
        assert!(matches!(p3("nan"), Value::Float(f) if f.is_nan()));
        assert!(matches!(p3("(nan+nanj)"), Value::Complex(r, i) if r.is_nan() && i.is_nan()));
        assert_eq!(p3("-inf"), Value::Float(f64::NEG_INFINITY));
        assert_eq!(p3("infj"), Value::Complex(0.0, f64::INFINITY));
        assert_eq!(p3("(1-infj)"), Value::Complex(1.0, f64::NEG_INFINITY));
    }

    #[test]
    fn nan_sign_is_not_kept_as_python_prints_none() {
        // Found by the `literal` fuzz target: `-nanj` printed as `nanj`, then read back
        // with the other sign.
        for t in ["-nan", "nan", "-nanj", "(1-nanj)", "(-nan+nanj)"] {
            let v = p3(t);
            let again = p3(&repr(&v, ReprMode::Py3(StrConfig::LOADS)));
            let enc = |v: &Value| {
                execnet_core::encode::to_vec(v, execnet_core::Envelope::Internal).unwrap()
            };
            assert_eq!(enc(&v), enc(&again), "{t}");
        }
    }

    #[test]
    fn a_call_is_not_a_literal() {
        let v = p3("{'a': (1, -2.5, b'x'), 'b': frozenset({nan})}");
        assert!(matches!(v, Value::Dict(_)));
        let e = parse("os.system('x')", ParseMode::Py3).unwrap_err();
        assert_eq!(e.offset, 0, "{e}");
    }

    #[test]
    fn python2_mode() {
        let p2 = |t: &str| parse(t, ParseMode::Py2).unwrap();
        assert_eq!(p2("5L"), Value::Long(Int::Small(5)));
        assert_eq!(p2("u'\\xe9'"), Value::Unicode("\u{e9}".into()));
        assert_eq!(p2("'\\xe9'"), Value::Py2Str(vec![0xe9]));
        assert_eq!(p2("frozenset([])"), Value::FrozenSet(vec![]));
        assert!(matches!(p2("99999999999999999999"), Value::Long(_)));
    }

    #[test]
    fn errors_have_offsets() {
        for bad in [
            "",
            "[1,",
            "foo",
            "1 +",
            "'abc",
            "{1: }",
            "01",
            "b'\u{e9}'",
            "1 2",
            "__import__('os')",
            "'\\N{DASH}'",
            "ur'x'",
        ] {
            let e = parse(bad, ParseMode::Py3).unwrap_err();
            assert!(e.offset <= bad.len(), "{bad}: {e}");
        }
        let deep = "[".repeat(10_000);
        assert!(parse(&deep, ParseMode::Py3).is_err());
    }

    #[test]
    fn repr_round_trips() {
        let v = Value::List(vec![
            Value::Float(-0.0),
            Value::Complex(-0.0, -0.0),
            Value::Complex(0.0, -0.0),
            Value::Str("a'\"\\\u{0}\u{7f}\u{e9}\u{200b}\u{1F600}".into()),
            Value::Bytes((0..=255).collect()),
            Value::Set(vec![]),
            Value::FrozenSet(vec![Value::int(1)]),
            Value::Tuple(vec![Value::Tuple(vec![])]),
            Value::Float(1e-310),
            Value::Float(f64::MAX),
        ]);
        let text = repr(&v, ReprMode::Py3(StrConfig::LOADS));
        let back = parse(&text, ParseMode::Py3).unwrap();
        assert_eq!(
            execnet_core::encode::to_vec(&back, execnet_core::Envelope::Internal).unwrap(),
            execnet_core::encode::to_vec(&v, execnet_core::Envelope::Internal).unwrap(),
            "{text}"
        );
    }
}
