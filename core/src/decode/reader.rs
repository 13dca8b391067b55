//! Reading opcodes and their operands: the small inlined readers every decoder shares,
//! with each error built out of line, and the bookkeeping that bounds list reservations.

use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::limits::Limits;

/// A cursor over the input that remembers the opcode being processed, for errors.
pub(crate) struct Reader<'a> {
    pub(crate) input: &'a [u8],
    pub(crate) pos: usize,
    /// Offset of the opcode being processed.
    pub(crate) at: usize,
    /// The opcode being processed.
    pub(crate) code: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8], pos: usize) -> Self {
        Reader {
            input,
            pos,
            at: pos,
            code: 0,
        }
    }

    /// The next opcode, or `None` at the end of the input.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn next_op(&mut self) -> Option<u8> {
        let code = *self.input.get(self.pos)?;
        self.at = self.pos;
        self.code = code;
        self.pos += 1;
        Some(code)
    }

    /// An error about the opcode being processed.
    #[cold]
    #[inline(never)]
    pub(crate) fn err(&self, kind: K) -> DecodeError {
        DecodeError::new(kind, self.at, Some(self.code))
    }

    #[cold]
    #[inline(never)]
    fn short(&self, needed: usize) -> DecodeError {
        self.err(K::UnexpectedEnd {
            needed,
            available: self.input.len().saturating_sub(self.pos),
        })
    }

    /// The input ended before `STOP`.
    #[cold]
    #[inline(never)]
    pub(crate) fn missing_stop(&self) -> DecodeError {
        DecodeError::new(K::MissingStop, self.pos, None)
    }

    /// A signed 32-bit big-endian operand.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn int4(&mut self) -> Result<i32, DecodeError> {
        match self.input.get(self.pos..self.pos + 4) {
            Some(&[a, b, c, d]) => {
                self.pos += 4;
                Ok(i32::from_be_bytes([a, b, c, d]))
            }
            _ => Err(self.short(4)),
        }
    }

    /// A length or count operand, which must not be negative.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.int4()?;
        if n < 0 {
            return Err(self.err(K::NegativeLength(n)));
        }
        Ok(n as usize)
    }

    /// Eight bytes, returned as the offset where they start.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn skip8(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        if self.input.len().saturating_sub(at) < 8 {
            return Err(self.short(8));
        }
        self.pos += 8;
        Ok(at)
    }

    /// A big-endian double.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        match self.input.get(self.pos..self.pos + 8) {
            Some(&[a, b, c, d, e, f, g, h]) => {
                self.pos += 8;
                Ok(f64::from_be_bytes([a, b, c, d, e, f, g, h]))
            }
            _ => Err(self.short(8)),
        }
    }

    /// A length-prefixed payload: its offset and length, checked against the input and
    /// `max_bytes`.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn blob(&mut self, limits: &Limits) -> Result<(usize, usize), DecodeError> {
        let len = self.count()?;
        let available = self.input.len() - self.pos;
        if len > available {
            return Err(self.err(K::LengthBeyondInput { len, available }));
        }
        if len > limits.max_bytes as usize {
            return Err(self.err(K::StringTooLong {
                len,
                max: limits.max_bytes,
            }));
        }
        let at = self.pos;
        self.pos += len;
        Ok((at, len))
    }

    /// The payload bytes of a blob read by [`blob`](Self::blob).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn bytes(&self, at: usize, len: usize) -> &'a [u8] {
        self.input.get(at..at + len).unwrap_or(&[])
    }

    /// A UTF-8 payload (`PY3STRING`, `UNICODE`): its offset and length.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn text(&mut self, limits: &Limits) -> Result<(usize, usize), DecodeError> {
        let (at, len) = self.blob(limits)?;
        self.check_utf8(self.bytes(at, len))?;
        Ok((at, len))
    }

    /// A UTF-8 payload (`PY3STRING`, `UNICODE`) as an owned `String`.
    #[cfg(feature = "alloc")]
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn string(&mut self, limits: &Limits) -> Result<alloc::string::String, DecodeError> {
        let (at, len) = self.blob(limits)?;
        self.utf8(self.bytes(at, len))
            .map(alloc::string::String::from)
    }

    /// Checks that `bytes` are UTF-8, where the text itself is not needed.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn check_utf8(&self, bytes: &[u8]) -> Result<(), DecodeError> {
        // Short ASCII strings, the usual dict key or word, skip the general validator's
        // setup.
        if !SMALL_CODE && bytes.len() <= 16 && short_ascii(bytes) {
            return Ok(());
        }
        match core::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.err(K::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            })),
        }
    }

    #[cfg(feature = "alloc")]
    #[cfg_attr(not(target_os = "none"), inline(always))]
    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(e) => Err(self.err(K::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            })),
        }
    }

    /// Big-integer text (`LONGINT`, `LONGLONG`): an optional sign and ASCII digits, no
    /// more digits than `max_bigint_digits`.
    #[inline]
    pub(crate) fn int_text(&mut self, limits: &Limits) -> Result<(usize, usize), DecodeError> {
        let (at, len) = self.blob(limits)?;
        let b = self.bytes(at, len);
        let digits = match b.first() {
            Some(b'-' | b'+') => b.get(1..).unwrap_or(&[]),
            _ => b,
        };
        if digits.is_empty() || !all_digits(digits) {
            return Err(self.err(K::InvalidIntText));
        }
        if digits.len() > limits.max_bigint_digits as usize {
            return Err(self.err(K::IntTooLong {
                digits: digits.len(),
                max: limits.max_bigint_digits,
            }));
        }
        Ok((at, len))
    }

    /// The signed 32-bit operand at `pos` (for re-reading a list's announced count).
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn i32_at(&self, pos: usize) -> i32 {
        match self.input.get(pos..pos + 4) {
            Some(&[a, b, c, d]) => i32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }
}

/// On bare-metal targets flash is scarce and inputs are small: the word-at-a-time checks
/// of text, which only speed up what a byte loop or the standard UTF-8 check does, are
/// left out of the build there (and under `--cfg execnet_small_code`, as in tape.rs).
const SMALL_CODE: bool = cfg!(any(target_os = "none", execnet_small_code));

/// Whether at most 16 bytes are all ASCII, two words at a time.
#[cfg_attr(not(target_os = "none"), inline(always))]
fn short_ascii(bytes: &[u8]) -> bool {
    let mut w = [0u8; 16];
    if let Some(dst) = w.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    u128::from_le_bytes(w) & 0x8080_8080_8080_8080_8080_8080_8080_8080 == 0
}

/// Whether every byte is an ASCII digit, eight at a time.
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) fn all_digits(bytes: &[u8]) -> bool {
    if SMALL_CODE {
        return bytes.iter().all(u8::is_ascii_digit);
    }
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIX: u64 = 0x0606_0606_0606_0606;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        // Each byte is 0x30-0x39: high nibble 3, and adding 6 does not carry out of it.
        if w & HIGH != ZEROS || (w.wrapping_add(SIX)) & HIGH != ZEROS {
            return false;
        }
    }
    chunks.remainder().iter().all(u8::is_ascii_digit)
}

/// The shape of a "flat" item: what the fast paths take in one go.
pub(crate) enum Flat {
    /// One scalar, then `SETITEM`.
    Scalar,
    /// `k` scalars, then `BUILDTUPLE` / `SET` / `FROZENSET` (the opcode) `k`, then
    /// `SETITEM`.
    Members(usize, u8),
}

/// Most scalars a flat container is looked for in: a longer run is left to the general
/// path, so that a failed look costs little.
const FLAT_MAX: usize = 32;

/// Looks at the input from `pos` for a flat item (only at shapes: the operands are read
/// and checked when the item is taken).
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) fn flat_at(input: &[u8], mut pos: usize) -> Option<Flat> {
    use crate::opcode as op;
    let mut k = 0;
    loop {
        let code = *input.get(pos)?;
        let len = match code {
            op::NONE | op::TRUE | op::FALSE => 1,
            op::INT => 5,
            op::FLOAT => 9,
            op::PY3STRING | op::UNICODE | op::BYTES | op::LONGINT => {
                let n = match input.get(pos + 1..pos + 5)? {
                    &[a, b, c, d] => i32::from_be_bytes([a, b, c, d]),
                    _ => return None,
                };
                5 + usize::try_from(n).ok()?
            }
            op::SETITEM if k == 1 => return Some(Flat::Scalar),
            op::BUILDTUPLE | op::SET | op::FROZENSET if k > 0 => {
                let n = match input.get(pos + 1..pos + 6)? {
                    &[a, b, c, d, op::SETITEM] => i32::from_be_bytes([a, b, c, d]),
                    _ => return None,
                };
                return (n as usize == k && n >= 0).then_some(Flat::Members(k, code));
            }
            _ => return None,
        };
        k += 1;
        if k > FLAT_MAX {
            return None;
        }
        pos = pos.checked_add(len)?;
    }
}

/// Whether the input holds `INT i` at `pos` (a list item's index).
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(crate) fn index_at(input: &[u8], pos: usize, i: usize) -> bool {
    match input.get(pos..pos + 5) {
        Some(&[crate::opcode::INT, a, b, c, d]) => {
            i32::from_be_bytes([a, b, c, d]) >= 0 && i32::from_be_bytes([a, b, c, d]) as usize == i
        }
        _ => false,
    }
}

/// List slots reserved by `NEWLIST` and not yet filled, over all open lists, so that
/// `NEWLIST n` is refused when the rest of the input cannot fill every open list: an item
/// not yet begun costs at least 7 bytes (`INT i`, a value, `SETITEM`), an item begun at
/// least 1 (its `SETITEM`). The cap keeps reservations within the input's length even
/// when lists nest; for a list with no other list open it is the plain "7 bytes an item".
#[derive(Default)]
pub(crate) struct ListRoom {
    /// Reserved slots whose `INT i` has not come yet.
    pub(crate) unstarted: usize,
    /// Slots whose `INT i` came and whose `SETITEM` has not.
    pub(crate) started: usize,
}

impl ListRoom {
    /// Checks `NEWLIST n` and reserves its slots.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn reserve(
        &mut self,
        r: &Reader<'_>,
        n: usize,
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        let rest = r.input.len() - r.pos;
        let max = (rest.saturating_sub(self.started) / 7)
            .saturating_sub(self.unstarted)
            .min(limits.max_items as usize);
        if n > max {
            return Err(r.err(K::ListTooLong { count: n, max }));
        }
        self.unstarted += n;
        Ok(())
    }

    /// An item's index arrived.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn begin(&mut self) {
        self.unstarted = self.unstarted.saturating_sub(1);
        self.started += 1;
    }

    /// An item was set.
    #[cfg_attr(not(target_os = "none"), inline(always))]
    pub(crate) fn end(&mut self) {
        self.started = self.started.saturating_sub(1);
    }
}

/// A whole-buffer check: no more than `max_message` bytes.
pub(crate) fn within_message(len: usize, limits: &Limits) -> Result<(), DecodeError> {
    if len > limits.max_message as usize {
        return Err(DecodeError::new(
            K::MessageTooLong {
                len,
                max: limits.max_message,
            },
            0,
            None,
        ));
    }
    Ok(())
}
