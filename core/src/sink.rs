//! Where encoded bytes go: one small trait and its implementations.
//!
//! The trait has the shape of postcard's `ser_flavors::Flavor` (`try_push`,
//! `try_extend`, `finalize`), which the field knows, but it is our own: postcard's trait
//! would make `postcard` (and through it `serde` and `cobs`) a mandatory dependency of a
//! crate whose serde support is optional, and its error type cannot say *which* limit
//! was hit. Every encoder entry point is written once, against [`Sink`].

use crate::error::EncodeError;

/// A destination for encoded bytes.
pub trait Sink {
    /// What [`finalize`](Sink::finalize) gives back.
    type Output;
    /// Appends one byte.
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError>;
    /// Appends a run of bytes.
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError>;
    /// Ends the output.
    fn finalize(self) -> Result<Self::Output, EncodeError>;
}

/// Any sink by mutable reference, so that one buffer can be reused; finalizing does
/// nothing.
impl<S: Sink> Sink for &mut S {
    type Output = ();
    #[inline]
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        (**self).try_push(byte)
    }
    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        (**self).try_extend(bytes)
    }
    fn finalize(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// Writes into a fixed slice; [`EncodeError::SinkFull`] when it is full. Finalizes to the
/// written prefix.
pub struct SliceSink<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> SliceSink<'b> {
    /// A sink over `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        SliceSink { buf, len: 0 }
    }
}

impl<'b> Sink for SliceSink<'b> {
    type Output = &'b mut [u8];

    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        let slot = self.buf.get_mut(self.len).ok_or(EncodeError::SinkFull)?;
        *slot = byte;
        self.len += 1;
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(EncodeError::SinkFull)?;
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(EncodeError::SinkFull)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn finalize(self) -> Result<&'b mut [u8], EncodeError> {
        let len = self.len;
        self.buf.get_mut(..len).ok_or(EncodeError::SinkFull)
    }
}

/// Counts the bytes an encoding would take, writing nothing.
#[derive(Default, Debug, Clone, Copy)]
pub struct SizeSink(pub usize);

impl Sink for SizeSink {
    type Output = usize;
    fn try_push(&mut self, _: u8) -> Result<(), EncodeError> {
        self.0 += 1;
        Ok(())
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0 += bytes.len();
        Ok(())
    }
    fn finalize(self) -> Result<usize, EncodeError> {
        Ok(self.0)
    }
}

/// Appends to a `Vec<u8>` (feature `alloc`).
#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    type Output = alloc::vec::Vec<u8>;
    #[inline]
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.push(byte);
        Ok(())
    }
    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    fn finalize(self) -> Result<Self, EncodeError> {
        Ok(self)
    }
}

/// Appends to a `heapless::Vec<u8, N>` (feature `heapless`).
#[cfg(feature = "heapless")]
impl<const N: usize> Sink for heapless::Vec<u8, N> {
    type Output = heapless::Vec<u8, N>;
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.push(byte).map_err(|_| EncodeError::SinkFull)
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.extend_from_slice(bytes)
            .map_err(|_| EncodeError::SinkFull)
    }
    fn finalize(self) -> Result<Self, EncodeError> {
        Ok(self)
    }
}

/// Writes through an [`embedded_io::Write`] (feature `embedded-io`), for UARTs and other
/// byte streams without std. Finalizing flushes and gives the writer back.
#[cfg(feature = "embedded-io")]
pub struct WriteSink<W>(pub W);

#[cfg(feature = "embedded-io")]
impl<W: embedded_io::Write> Sink for WriteSink<W> {
    type Output = W;
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.0.write_all(&[byte]).map_err(|_| EncodeError::Io)
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.write_all(bytes).map_err(|_| EncodeError::Io)
    }
    fn finalize(mut self) -> Result<W, EncodeError> {
        self.0.flush().map_err(|_| EncodeError::Io)?;
        Ok(self.0)
    }
}

/// Writes through a [`std::io::Write`] (feature `std`). Errors keep only their kind, as
/// [`EncodeError::Io`]; wrap the writer to keep more.
#[cfg(feature = "std")]
pub struct IoSink<W>(pub W);

#[cfg(feature = "std")]
impl<W: std::io::Write> Sink for IoSink<W> {
    type Output = W;
    fn try_push(&mut self, byte: u8) -> Result<(), EncodeError> {
        self.0.write_all(&[byte]).map_err(|_| EncodeError::Io)
    }
    fn try_extend(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.write_all(bytes).map_err(|_| EncodeError::Io)
    }
    fn finalize(mut self) -> Result<W, EncodeError> {
        self.0.flush().map_err(|_| EncodeError::Io)?;
        Ok(self.0)
    }
}
