//! Message framing: the 9-byte header (`int8 code`, `int32 channel`, `int32 length`, all
//! big-endian and signed) and an incremental reader with a maximum message size.

use core::fmt;

/// The message types (PROTOCOL.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum MsgCode {
    /// Ask for the worker's status; answered on the given channel.
    Status = 0,
    /// New string config, for the gateway (channel 0) or one channel.
    Reconfigure = 1,
    /// The receiver stops.
    GatewayTerminate = 2,
    /// Execute source on a new channel.
    ChannelExec = 3,
    /// One value on a channel.
    ChannelData = 4,
    /// The channel is closed.
    ChannelClose = 5,
    /// The channel is closed with an error (the payload is the traceback text).
    ChannelCloseError = 6,
    /// The sender will send no more on the channel, but may still receive.
    ChannelLastMessage = 7,
}

impl MsgCode {
    /// The code for a header byte.
    pub const fn from_byte(b: u8) -> Option<MsgCode> {
        Some(match b {
            0 => MsgCode::Status,
            1 => MsgCode::Reconfigure,
            2 => MsgCode::GatewayTerminate,
            3 => MsgCode::ChannelExec,
            4 => MsgCode::ChannelData,
            5 => MsgCode::ChannelClose,
            6 => MsgCode::ChannelCloseError,
            7 => MsgCode::ChannelLastMessage,
            _ => return None,
        })
    }

    /// The reference's name for the message type.
    pub const fn name(self) -> &'static str {
        match self {
            MsgCode::Status => "STATUS",
            MsgCode::Reconfigure => "RECONFIGURE",
            MsgCode::GatewayTerminate => "GATEWAY_TERMINATE",
            MsgCode::ChannelExec => "CHANNEL_EXEC",
            MsgCode::ChannelData => "CHANNEL_DATA",
            MsgCode::ChannelClose => "CHANNEL_CLOSE",
            MsgCode::ChannelCloseError => "CHANNEL_CLOSE_ERROR",
            MsgCode::ChannelLastMessage => "CHANNEL_LAST_MESSAGE",
        }
    }
}

/// Length of a message header.
pub const HEADER_LEN: usize = 9;

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Message type.
    pub code: MsgCode,
    /// Channel id (0 for gateway-wide messages).
    pub channel: i32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// The header's 9 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let c = self.channel.to_be_bytes();
        let l = self.len.to_be_bytes();
        b[0] = self.code as u8;
        b[1..5].copy_from_slice(&c);
        b[5..9].copy_from_slice(&l);
        b
    }

    /// Parses and checks a header: a known code, a non-negative length within `max`.
    pub fn parse(b: &[u8; HEADER_LEN], max_message: u32) -> Result<Header, FrameError> {
        let [code, c0, c1, c2, c3, l0, l1, l2, l3] = *b;
        let code = MsgCode::from_byte(code).ok_or(FrameError::UnknownCode(code))?;
        let channel = i32::from_be_bytes([c0, c1, c2, c3]);
        let len = i32::from_be_bytes([l0, l1, l2, l3]);
        let len = u32::try_from(len).map_err(|_| FrameError::NegativeLength(len))?;
        if len > max_message {
            return Err(FrameError::TooLarge {
                len,
                max: max_message,
            });
        }
        Ok(Header { code, channel, len })
    }
}

/// A complete message, its payload borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Message type.
    pub code: MsgCode,
    /// Channel id.
    pub channel: i32,
    /// The payload.
    pub payload: &'a [u8],
}

/// A framing violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// A message code outside 0..=7.
    UnknownCode(u8),
    /// A negative payload length.
    NegativeLength(i32),
    /// A payload longer than the configured maximum.
    TooLarge {
        /// Announced length.
        len: u32,
        /// The maximum.
        max: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::UnknownCode(c) => write!(f, "unknown message code {c}"),
            FrameError::NegativeLength(n) => write!(f, "negative message length {n}"),
            FrameError::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes exceeds the maximum message size of {max}"
            ),
        }
    }
}

impl core::error::Error for FrameError {}

/// Result of looking for a frame at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// More bytes are needed: at least this many beyond what the buffer holds.
    Partial(usize),
    /// A frame, and the number of buffer bytes it took.
    Complete(Frame<'a>, usize),
}

/// Looks for one frame at the front of `buf`. The header is checked as soon as its 9
/// bytes are there, so an oversized or malformed message is refused before its payload
/// is waited for (or buffered).
pub fn parse_frame(buf: &[u8], max_message: u32) -> Result<Parsed<'_>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Parsed::Partial(HEADER_LEN - buf.len()));
    };
    let header = Header::parse(head, max_message)?;
    let total = HEADER_LEN + header.len as usize;
    match buf.get(HEADER_LEN..total) {
        Some(payload) => Ok(Parsed::Complete(
            Frame {
                code: header.code,
                channel: header.channel,
                payload,
            },
            total,
        )),
        None => Ok(Parsed::Partial(total - buf.len())),
    }
}

/// A growable or fixed byte buffer the [`FrameReader`] accumulates input in.
pub trait ByteBuf {
    /// The bytes held.
    fn bytes(&self) -> &[u8];
    /// Appends as much of `data` as fits; returns how much was taken.
    fn append(&mut self, data: &[u8]) -> usize;
    /// Drops the first `n` bytes.
    fn consume(&mut self, n: usize);
}

#[cfg(feature = "alloc")]
impl ByteBuf for alloc::vec::Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn append(&mut self, data: &[u8]) -> usize {
        self.extend_from_slice(data);
        data.len()
    }
    fn consume(&mut self, n: usize) {
        self.drain(..n.min(self.len()));
    }
}

/// A fixed-capacity buffer for hosts without an allocator.
#[derive(Clone, Debug)]
pub struct FixedBuf<const N: usize> {
    data: [u8; N],
    len: usize,
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedBuf {
            data: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteBuf for FixedBuf<N> {
    fn bytes(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or(&[])
    }
    fn append(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(N - self.len);
        if let (Some(dst), Some(src)) = (self.data.get_mut(self.len..self.len + n), data.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
            n
        } else {
            0
        }
    }
    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// Accumulates input bytes and yields complete frames.
///
/// ```
/// use execnet_core::frame::{FrameReader, MsgCode};
/// let mut r = FrameReader::new(Vec::new(), 1 << 20);
/// r.feed(&[4, 0, 0, 0, 1, 0, 0, 0, 2, b'L']); // CHANNEL_DATA on 1, 2 bytes, 1 so far
/// assert!(r.next_frame().unwrap().is_none());
/// r.feed(b"Q");
/// let f = r.next_frame().unwrap().unwrap();
/// assert_eq!((f.code, f.channel, f.payload), (MsgCode::ChannelData, 1, &b"LQ"[..]));
/// ```
pub struct FrameReader<B> {
    buf: B,
    max_message: u32,
    pending: usize,
}

impl<B: ByteBuf> FrameReader<B> {
    /// A reader over `buf` that refuses messages longer than `max_message` bytes.
    pub fn new(buf: B, max_message: u32) -> Self {
        FrameReader {
            buf,
            max_message,
            pending: 0,
        }
    }

    /// Adds input; returns how many bytes were taken (less than all only when a fixed
    /// buffer is full: take a frame out, then feed the rest).
    pub fn feed(&mut self, data: &[u8]) -> usize {
        self.release();
        self.buf.append(data)
    }

    fn release(&mut self) {
        if self.pending > 0 {
            self.buf.consume(self.pending);
            self.pending = 0;
        }
    }

    /// The next complete frame, or `None` when more input is needed. The frame borrows
    /// the reader until the next call.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        self.release();
        match parse_frame(self.buf.bytes(), self.max_message)? {
            Parsed::Partial(_) => Ok(None),
            Parsed::Complete(frame, used) => {
                self.pending = used;
                Ok(Some(frame))
            }
        }
    }

    /// Bytes still needed to complete the frame in progress (9 when idle).
    pub fn needed(&self) -> usize {
        let held = self.buf.bytes().get(self.pending..).unwrap_or(&[]);
        match parse_frame(held, self.max_message) {
            Ok(Parsed::Partial(n)) => n,
            Ok(Parsed::Complete(..)) | Err(_) => 0,
        }
    }

    /// Bytes buffered and not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.buf.bytes().len() - self.pending.min(self.buf.bytes().len())
    }
}

/// Writes a whole message (header, then payload) into a sink.
pub fn write_frame<S: crate::sink::Sink>(
    sink: &mut S,
    code: MsgCode,
    channel: i32,
    payload: &[u8],
) -> Result<(), crate::EncodeError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| i32::try_from(*l).is_ok())
        .ok_or(crate::EncodeError::TooLong(payload.len()))?;
    sink.try_extend(&Header { code, channel, len }.to_bytes())?;
    sink.try_extend(payload)
}

/// Encodes `value` (internal envelope) as the payload of one message appended to `out`,
/// patching the header's length once the payload is written (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn push_value_frame<V: crate::encode::Encode + ?Sized>(
    out: &mut alloc::vec::Vec<u8>,
    code: MsgCode,
    channel: i32,
    value: &V,
) -> Result<(), crate::EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut e = crate::encode::Encoder::new(&mut *out);
    value.encode(&mut e)?;
    e.stop()?;
    let len = out.len() - start - HEADER_LEN;
    let len32 = u32::try_from(len)
        .ok()
        .filter(|l| i32::try_from(*l).is_ok())
        .ok_or(crate::EncodeError::TooLong(len));
    let len32 = match len32 {
        Ok(l) => l,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let header = Header {
        code,
        channel,
        len: len32,
    }
    .to_bytes();
    if let Some(dst) = out.get_mut(start..start + HEADER_LEN) {
        dst.copy_from_slice(&header);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            code: MsgCode::ChannelExec,
            channel: -3,
            len: 77,
        };
        assert_eq!(Header::parse(&h.to_bytes(), 100), Ok(h));
        assert_eq!(
            Header::parse(&h.to_bytes(), 10),
            Err(FrameError::TooLarge { len: 77, max: 10 })
        );
        let mut b = h.to_bytes();
        b[0] = 8;
        assert_eq!(Header::parse(&b, 100), Err(FrameError::UnknownCode(8)));
        let b = [4, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Header::parse(&b, 100), Err(FrameError::NegativeLength(-1)));
    }

    #[test]
    fn two_gib_header_is_refused_before_payload() {
        let mut r = FrameReader::new(FixedBuf::<32>::new(), 1 << 20);
        r.feed(&[4, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(r.next_frame(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn fixed_buffer_chunked_feed() {
        let mut msg = [0u8; 14];
        msg[..9].copy_from_slice(
            &Header {
                code: MsgCode::ChannelData,
                channel: 2,
                len: 5,
            }
            .to_bytes(),
        );
        msg[9..].copy_from_slice(b"hello");
        let mut r = FrameReader::new(FixedBuf::<16>::new(), 64);
        for chunk in msg.chunks(3) {
            assert_eq!(r.feed(chunk), chunk.len());
        }
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.payload, b"hello");
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.needed(), 9);
    }
}
