//! Byte buffers for the protocol driver: where received bytes wait until they make a
//! whole frame ([`InputBuf`]), and where outgoing frames wait for the transport
//! ([`OutputBuf`]).
//!
//! [`FixedBuf`] serves both sides without an allocator; [`GrowBuf`] (feature `alloc`) is
//! the growable input buffer, and a `Vec<u8>` is the growable output queue.

/// Where a [`FrameReader`](crate::frame::FrameReader) keeps received bytes.
///
/// A host either reads its transport straight into [`space`](Self::space) and then
/// [`commit`](Self::commit)s what it read (no copy), or hands over bytes it read elsewhere
/// through [`FrameReader::feed`](crate::frame::FrameReader::feed).
pub trait InputBuf {
    /// Bytes received and not yet consumed.
    fn data(&self) -> &[u8];
    /// Room to receive into, at least `want` bytes where the buffer can make it (a
    /// growable buffer grows; a fixed one gives what it has, possibly nothing).
    fn space(&mut self, want: usize) -> &mut [u8];
    /// Marks the first `n` bytes of the last [`space`](Self::space) as received.
    fn commit(&mut self, n: usize);
    /// Drops the first `n` received bytes.
    fn consume(&mut self, n: usize);
    /// The most bytes the buffer can ever hold (`usize::MAX` when it grows).
    fn capacity(&self) -> usize;
}

/// Where a [`Engine`](crate::engine::Engine) queues outgoing frames.
///
/// Appends are all or nothing, so that a frame that does not fit leaves the queue as it
/// was.
pub trait OutputBuf {
    /// Bytes queued and not yet transmitted.
    fn pending(&self) -> &[u8];
    /// Drops the first `n` queued bytes (they were transmitted).
    fn consume(&mut self, n: usize);
    /// Bytes that can still be appended.
    fn spare(&self) -> usize;
    /// Appends `bytes` whole, or nothing (returns `false`) when they do not fit.
    fn extend(&mut self, bytes: &[u8]) -> bool;
    /// Shortens the queue to `len` bytes (drops a partly written frame).
    fn truncate(&mut self, len: usize);
    /// Overwrites queued bytes from offset `at` (fills in a length written as zeros).
    fn patch(&mut self, at: usize, bytes: &[u8]);
}

/// A buffer lent by mutable reference: a device can keep its buffers in statics (where the
/// linker places them, and where they count as static data rather than stack) and hand
/// the driver `&'static mut` ones.
impl<B: InputBuf + ?Sized> InputBuf for &mut B {
    fn data(&self) -> &[u8] {
        (**self).data()
    }
    fn space(&mut self, want: usize) -> &mut [u8] {
        (**self).space(want)
    }
    fn commit(&mut self, n: usize) {
        (**self).commit(n);
    }
    fn consume(&mut self, n: usize) {
        (**self).consume(n);
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
}

/// An output queue lent by mutable reference (see the [`InputBuf`] impl).
impl<B: OutputBuf + ?Sized> OutputBuf for &mut B {
    fn pending(&self) -> &[u8] {
        (**self).pending()
    }
    fn consume(&mut self, n: usize) {
        (**self).consume(n);
    }
    fn spare(&self) -> usize {
        (**self).spare()
    }
    fn extend(&mut self, bytes: &[u8]) -> bool {
        (**self).extend(bytes)
    }
    fn truncate(&mut self, len: usize) {
        (**self).truncate(len);
    }
    fn patch(&mut self, at: usize, bytes: &[u8]) {
        (**self).patch(at, bytes);
    }
}

/// Bytes held in a run `start..end` of some storage: what both buffers share.
#[derive(Clone, Debug, Default)]
struct Window<S> {
    data: S,
    start: usize,
    end: usize,
}

impl<S: AsRef<[u8]> + AsMut<[u8]>> Window<S> {
    fn held(&self) -> &[u8] {
        self.data.as_ref().get(self.start..self.end).unwrap_or(&[])
    }

    fn free(&mut self) -> &mut [u8] {
        let end = self.end;
        self.data.as_mut().get_mut(end..).unwrap_or(&mut [])
    }

    fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.as_ref().len());
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the held bytes to the front, so that all free room is at the end.
    fn compact(&mut self) {
        if self.start > 0 {
            let (start, end) = (self.start, self.end);
            self.data.as_mut().copy_within(start..end, 0);
            self.end -= start;
            self.start = 0;
        }
    }
}

/// A fixed-capacity buffer in a plain array, for hosts without an allocator; it serves as
/// input buffer and as output queue.
#[derive(Clone, Debug)]
pub struct FixedBuf<const N: usize> {
    w: Window<[u8; N]>,
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedBuf {
            w: Window {
                data: [0; N],
                start: 0,
                end: 0,
            },
        }
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> InputBuf for FixedBuf<N> {
    fn data(&self) -> &[u8] {
        self.w.held()
    }
    fn space(&mut self, _want: usize) -> &mut [u8] {
        self.w.compact();
        self.w.free()
    }
    fn commit(&mut self, n: usize) {
        self.w.commit(n);
    }
    fn consume(&mut self, n: usize) {
        self.w.consume(n);
    }
    fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> OutputBuf for FixedBuf<N> {
    fn pending(&self) -> &[u8] {
        self.w.held()
    }
    fn consume(&mut self, n: usize) {
        self.w.consume(n);
    }
    fn spare(&self) -> usize {
        N - (self.w.end - self.w.start)
    }
    fn extend(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.spare() {
            return false;
        }
        if N - self.w.end < bytes.len() {
            self.w.compact();
        }
        match self.w.free().get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.w.end += bytes.len();
                true
            }
            None => false,
        }
    }
    fn truncate(&mut self, len: usize) {
        self.w.end = self.w.end.min(self.w.start + len);
    }
    fn patch(&mut self, at: usize, bytes: &[u8]) {
        let from = self.w.start + at;
        if from + bytes.len() <= self.w.end {
            if let Some(dst) = self.w.data.get_mut(from..from + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
    }
}

/// The growable input buffer (feature `alloc`): received bytes accumulate in one
/// allocation that is zeroed once when it grows, never per read, and reused across
/// frames.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct GrowBuf {
    w: Window<alloc::vec::Vec<u8>>,
}

#[cfg(feature = "alloc")]
impl GrowBuf {
    /// An empty buffer that allocates on first use.
    pub const fn new() -> Self {
        GrowBuf {
            w: Window {
                data: alloc::vec::Vec::new(),
                start: 0,
                end: 0,
            },
        }
    }
}

#[cfg(feature = "alloc")]
impl InputBuf for GrowBuf {
    fn data(&self) -> &[u8] {
        self.w.held()
    }
    fn space(&mut self, want: usize) -> &mut [u8] {
        if self.w.data.len() - self.w.end < want {
            self.w.compact();
        }
        if self.w.data.len() - self.w.end < want {
            let size = (self.w.end + want).max(self.w.data.len() * 2);
            self.w.data.resize(size, 0);
        }
        self.w.free()
    }
    fn commit(&mut self, n: usize) {
        self.w.commit(n);
    }
    fn consume(&mut self, n: usize) {
        self.w.consume(n);
    }
    fn capacity(&self) -> usize {
        usize::MAX
    }
}

/// The growable output queue (feature `alloc`).
#[cfg(feature = "alloc")]
impl OutputBuf for alloc::vec::Vec<u8> {
    fn pending(&self) -> &[u8] {
        self
    }
    fn consume(&mut self, n: usize) {
        self.drain(..n.min(self.len()));
    }
    fn spare(&self) -> usize {
        isize::MAX as usize - self.len()
    }
    fn extend(&mut self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes);
        true
    }
    fn truncate(&mut self, len: usize) {
        alloc::vec::Vec::truncate(self, len);
    }
    fn patch(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_output_is_all_or_nothing() {
        let mut b = FixedBuf::<8>::new();
        assert!(b.extend(b"abcde"));
        assert!(!b.extend(b"fghi"));
        assert_eq!(b.pending(), b"abcde");
        OutputBuf::consume(&mut b, 3);
        assert!(b.extend(b"fghi"));
        assert_eq!(b.pending(), b"defghi");
        b.patch(1, b"E");
        b.truncate(4);
        assert_eq!(b.pending(), b"dEfg");
    }

    #[test]
    fn lent_buffers_drive_a_connection() {
        use crate::engine::{Connection, Event, FixedTable, Role};
        let (mut input, mut output) = (FixedBuf::<64>::new(), FixedBuf::<128>::new());
        let mut worker = Connection::new(
            Role::Worker,
            &mut input,
            &mut output,
            FixedTable::<(), 2>::new(),
            1 << 16,
        );
        // STATUS on channel 1, in two pieces.
        assert_eq!(worker.handle_bytes(&[0, 0, 0, 0]), 4);
        assert_eq!(worker.poll_event(), Ok(None));
        assert_eq!(worker.handle_bytes(&[1, 0, 0, 0, 0]), 5);
        assert_eq!(
            worker.poll_event(),
            Ok(Some(Event::StatusRequest { channel: 1 }))
        );
        worker.status_reply(1, 0, "thread").unwrap();
        let queued = worker.poll_transmit().unwrap().len();
        drop(worker);
        assert_eq!(OutputBuf::pending(&output).len(), queued);
        assert_eq!(InputBuf::capacity(&&mut input), 64);
    }

    #[test]
    fn grow_buffer_keeps_unconsumed_bytes_when_it_grows() {
        let mut b = GrowBuf::new();
        let s = b.space(4);
        s[..4].copy_from_slice(b"abcd");
        b.commit(4);
        b.consume(1);
        let s = b.space(1000);
        assert!(s.len() >= 1000);
        s[..2].copy_from_slice(b"ef");
        b.commit(2);
        assert_eq!(b.data(), b"bcdef");
    }
}
