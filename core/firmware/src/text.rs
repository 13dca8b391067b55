//! Error texts in a fixed buffer: what a master shows in its `RemoteError`.
//!
//! Built by appending pieces, not with `write!`: nothing else in the firmware formats,
//! and `core::fmt` would cost several kilobytes of flash for these few texts.

/// Longest error text; longer ones are cut (at a character boundary). The text and its
/// frame (a 9-byte header, a 5-byte string opcode) fill the output queue at most: a close
/// with an error is queued whole or not at all.
const CAPACITY: usize = crate::serve::OUTPUT - 9 - 5;

/// A short text, cut at [`CAPACITY`] bytes.
pub struct Text {
    buf: [u8; CAPACITY],
    len: usize,
}

impl Text {
    /// An empty text.
    pub const fn new() -> Self {
        Text {
            buf: [0; CAPACITY],
            len: 0,
        }
    }

    /// Appends `s`, as much of it as fits.
    pub fn s(&mut self, s: &str) -> &mut Self {
        let mut n = s.len().min(CAPACITY - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.ascii(s.as_bytes().get(..n).unwrap_or(&[]))
    }

    /// Appends `bytes`, as many as fit: ASCII, or text already cut to fit at a character
    /// boundary, so that the buffer always holds whole characters.
    fn ascii(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(CAPACITY - self.len);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        self
    }

    /// Appends `n` in decimal.
    pub fn n(&mut self, mut n: usize) -> &mut Self {
        // usize division is one instruction on this CPU; wider types would call helpers.
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        self.ascii(digits.get(at..).unwrap_or(&[]))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s cut at character boundaries were copied in.
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}
