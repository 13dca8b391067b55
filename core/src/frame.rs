//! Message framing: the 9-byte header (`int8 code`, `int32 channel`, `int32 length`, all
//! big-endian and signed) and an incremental reader with a maximum message size.

use core::fmt;

pub use crate::buffer::{FixedBuf, InputBuf};

/// The message types (see [`protocol`](crate::protocol), section 2).
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

/// What the reader found at the front of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A whole frame, its payload borrowed from the reader until its next call.
    Frame(Frame<'a>),
    /// A frame within the maximum message size but larger than this reader's buffer can
    /// hold: its payload is skipped as it arrives, and the protocol refuses that one
    /// message (see [`Engine::handle_oversized`](crate::engine::Engine::handle_oversized)).
    Oversized(Header),
}

/// What the reader is in the middle of.
#[derive(Debug)]
enum State {
    /// Between frames, or gathering a frame in the buffer.
    Idle,
    /// Dropping the rest of an oversized frame's payload: this many bytes.
    Skip(u32),
    /// Receiving a large frame's payload into its own allocation (feature `alloc`), so
    /// that it can be handed over without a copy.
    #[cfg(feature = "alloc")]
    Direct {
        header: Header,
        /// What has come of the payload, in an allocation of its full size; past
        /// `filled`, zeroes that [`FrameReader::space`] handed out to be read into.
        payload: alloc::vec::Vec<u8>,
        filled: usize,
        /// The bytes `payload` takes in all.
        total: usize,
        /// Set when the payload is one string received split (see
        /// [`FrameReader::with_split_strings`]): `payload` holds the string's bytes and
        /// the `STOP` after them, and this is the stand-in the frame shows, the same
        /// opcode with an empty string.
        split: Option<[u8; STAND_IN_LEN]>,
    },
}

/// A payload that is one string: opcode, 4-byte length, the bytes, `STOP`. The opcode
/// and the length are what a split leaves out of the allocation.
#[cfg(feature = "alloc")]
const STRING_PREFIX: usize = 5;
/// What the payload of a string value adds to its bytes: the opcode and the length
/// before them, the `STOP` after.
pub const STRING_OVERHEAD: usize = 6;
/// The stand-in of a split string: its opcode, length 0, `STOP`.
#[cfg(feature = "alloc")]
const STAND_IN_LEN: usize = STRING_OVERHEAD;

/// The stand-in for a payload of `len` bytes that starts with `prefix`, when the payload
/// is one string: a string opcode whose length leaves room for exactly the `STOP`.
#[cfg(feature = "alloc")]
fn string_stand_in(prefix: &[u8; STRING_PREFIX], len: usize) -> Option<[u8; STAND_IN_LEN]> {
    use crate::opcode as op;
    let [code, l0, l1, l2, l3] = *prefix;
    let is_string = matches!(
        code,
        op::BYTES | op::PY2STRING | op::PY3STRING | op::UNICODE
    );
    let announced = i32::from_be_bytes([l0, l1, l2, l3]);
    let fits = usize::try_from(announced).is_ok_and(|n| n + STAND_IN_LEN == len);
    (is_string && fits).then_some([code, 0, 0, 0, 0, op::STOP])
}

/// Gathers received bytes into frames: the framing half of the protocol driver.
///
/// Headers are checked as soon as their 9 bytes are in, so a message beyond the maximum
/// size is refused before any of its payload is waited for. A frame too large for the
/// buffer (a fixed one) is skipped as it arrives and reported as
/// [`Incoming::Oversized`]; the reader then goes on with the next frame.
///
/// ```
/// use execnet_core::buffer::GrowBuf;
/// use execnet_core::frame::{FrameReader, Incoming, MsgCode};
/// let mut r = FrameReader::new(GrowBuf::new(), 1 << 20);
/// r.feed(&[4, 0, 0, 0, 1, 0, 0, 0, 2, b'L']); // CHANNEL_DATA on 1, 2 bytes, 1 so far
/// assert!(r.next_frame().unwrap().is_none());
/// r.feed(b"Q");
/// let Some(Incoming::Frame(f)) = r.next_frame().unwrap() else { panic!() };
/// assert_eq!((f.code, f.channel, f.payload), (MsgCode::ChannelData, 1, &b"LQ"[..]));
/// ```
#[derive(Debug)]
pub struct FrameReader<B> {
    buf: B,
    max_message: u32,
    state: State,
    /// Buffer bytes of the frame handed out last, consumed at the next call.
    pending: usize,
    /// The frame handed out last was a direct one (its allocation goes at the next call).
    handed_direct: bool,
    /// Payloads at least this long are received into their own allocation (0: never).
    #[cfg(feature = "alloc")]
    direct_min: usize,
    /// Whether direct CHANNEL_DATA payloads that are one string are received split.
    #[cfg(feature = "alloc")]
    split_strings: bool,
}

/// A split string's whole payload again: opcode and length, then the bytes and `STOP`.
#[cfg(feature = "alloc")]
fn join_split(split: &Option<[u8; STAND_IN_LEN]>, rest: &[u8]) -> alloc::vec::Vec<u8> {
    let mut whole = alloc::vec::Vec::with_capacity(rest.len() + STRING_PREFIX);
    if let Some(stand_in) = split {
        // The length counts the bytes before the last byte of `rest` (the STOP, or
        // whatever stood there in a payload that turned out not to be one string).
        whole.extend_from_slice(&string_prefix(stand_in[0], rest.len().saturating_sub(1)));
    }
    whole.extend_from_slice(rest);
    whole
}

/// A string's opcode and its 4-byte length.
#[cfg(feature = "alloc")]
fn string_prefix(code: u8, len: usize) -> [u8; STRING_PREFIX] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [code, n[0], n[1], n[2], n[3]]
}

/// The payload of a string value, put back together from its opcode and its bytes (as
/// [`FrameReader::take_string`] hands them out): one copy (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn string_payload(code: u8, bytes: &[u8]) -> alloc::vec::Vec<u8> {
    let mut whole = alloc::vec::Vec::with_capacity(bytes.len() + STRING_OVERHEAD);
    whole.extend_from_slice(&string_prefix(code, bytes.len()));
    whole.extend_from_slice(bytes);
    whole.push(crate::opcode::STOP);
    whole
}

impl<B: InputBuf> FrameReader<B> {
    /// A reader over `buf` that refuses messages longer than `max_message` bytes.
    pub fn new(buf: B, max_message: u32) -> Self {
        FrameReader {
            buf,
            max_message,
            state: State::Idle,
            pending: 0,
            handed_direct: false,
            #[cfg(feature = "alloc")]
            direct_min: 0,
            #[cfg(feature = "alloc")]
            split_strings: false,
        }
    }

    /// Receives payloads of at least `min` bytes into an allocation of their own, so that
    /// [`take_payload`](Self::take_payload) hands them over without a copy (feature
    /// `alloc`; 0 turns it off, the default).
    #[cfg(feature = "alloc")]
    pub fn with_direct_payloads(mut self, min: usize) -> Self {
        self.direct_min = min;
        self
    }

    /// With direct payloads (see [`with_direct_payloads`](Self::with_direct_payloads)):
    /// a CHANNEL_DATA payload that is one string value (`bytes`, `str` of either
    /// generation, `unicode`: opcode, length, the bytes, `STOP`) is received with the
    /// string's bytes alone at the start of its allocation, so that
    /// [`take_string`](Self::take_string) hands them over as they are, with neither a
    /// copy nor a shift (feature `alloc`).
    ///
    /// Such a frame then shows a stand-in as its payload: the same opcode with an empty
    /// string. It is the same kind of value and names the same channels (none), which is
    /// all the protocol engine looks at; [`take_string`](Self::take_string) (or
    /// [`take_payload`](Self::take_payload), which puts the whole payload back together)
    /// gives the real one. The split is decided when the payload starts, from its first
    /// five bytes: when they have not come yet, or the byte after the string is not
    /// `STOP`, the payload is received whole as usual.
    #[cfg(feature = "alloc")]
    pub fn with_split_strings(mut self, on: bool) -> Self {
        self.split_strings = on;
        self
    }

    /// The largest message accepted.
    pub fn max_message(&self) -> u32 {
        self.max_message
    }

    fn release(&mut self) {
        if self.pending > 0 {
            self.buf.consume(self.pending);
            self.pending = 0;
        }
        if self.handed_direct {
            self.handed_direct = false;
            self.state = State::Idle;
        }
    }

    /// Room to read the transport into (at least `want` bytes where the buffer can grow);
    /// follow with [`commit`](Self::commit). While a large frame is received directly,
    /// this is the rest of its payload, so a read never runs past it.
    pub fn space(&mut self, want: usize) -> &mut [u8] {
        self.release();
        let want = want.max(self.needed());
        match &mut self.state {
            #[cfg(feature = "alloc")]
            State::Direct {
                payload,
                filled,
                total,
                ..
            } => {
                // Zeroed only here, for a host that reads into a slice; see `fill_direct`.
                payload.resize(*total, 0);
                payload.get_mut(*filled..).unwrap_or(&mut [])
            }
            _ => self.buf.space(want),
        }
    }

    /// While a large payload is received into its own allocation (see
    /// [`with_direct_payloads`](Self::with_direct_payloads)) and still lacks bytes: calls
    /// `f` with the allocation, holding what has come so far, and the number of bytes
    /// still to come, and counts as received whatever `f` appends (at most that many; any
    /// beyond is dropped). This is how a std host reads without zeroing the memory first:
    /// `read.take(n).read_to_end(vec)` reads into the spare capacity. Returns `f`'s
    /// result, or `None` without calling it at any other time (then use
    /// [`space`](Self::space)).
    #[cfg(feature = "alloc")]
    pub fn fill_direct<R>(
        &mut self,
        f: impl FnOnce(&mut alloc::vec::Vec<u8>, usize) -> R,
    ) -> Option<R> {
        self.release();
        match &mut self.state {
            State::Direct {
                payload,
                filled,
                total,
                ..
            } if *filled < *total => {
                payload.truncate(*filled);
                let r = f(payload, *total - *filled);
                payload.truncate(*total);
                *filled = payload.len();
                Some(r)
            }
            _ => None,
        }
    }

    /// Marks `n` bytes of the last [`space`](Self::space) as received.
    pub fn commit(&mut self, n: usize) {
        #[cfg(feature = "alloc")]
        if let State::Direct {
            payload, filled, ..
        } = &mut self.state
        {
            *filled = (*filled + n).min(payload.len());
            return;
        }
        self.buf.commit(n);
        self.skip_held();
    }

    /// Copies received bytes in; returns how many were taken (fewer than all only when a
    /// fixed buffer is full: take frames out, then feed the rest).
    pub fn feed(&mut self, mut data: &[u8]) -> usize {
        let total = data.len();
        while !data.is_empty() {
            let space = self.space(data.len());
            let n = space.len().min(data.len());
            if n == 0 {
                break;
            }
            let (now, later) = data.split_at(n);
            if let Some(dst) = space.get_mut(..n) {
                dst.copy_from_slice(now);
            }
            self.commit(n);
            data = later;
            // A direct payload may be complete with bytes left over: they belong to the
            // next frame, which must wait until this one is taken.
            if self.direct_complete() {
                break;
            }
        }
        total - data.len()
    }

    fn direct_complete(&self) -> bool {
        match &self.state {
            #[cfg(feature = "alloc")]
            State::Direct { filled, total, .. } => *filled == *total,
            _ => false,
        }
    }

    /// Drops held bytes that belong to an oversized frame being skipped.
    fn skip_held(&mut self) {
        if let State::Skip(left) = &mut self.state {
            let n = (*left as usize).min(self.buf.data().len());
            self.buf.consume(n);
            *left -= n as u32;
            if *left == 0 {
                self.state = State::Idle;
            }
        }
    }

    /// The next frame, or `None` when more input is needed. The frame borrows the reader
    /// until the next call. A framing error (unknown code, negative length, a message
    /// over the maximum size) is final: the stream cannot be resynchronized.
    pub fn next_frame(&mut self) -> Result<Option<Incoming<'_>>, FrameError> {
        self.release();
        self.skip_held();
        if matches!(self.state, State::Skip(_)) {
            return Ok(None);
        }
        #[cfg(feature = "alloc")]
        if let State::Direct {
            payload,
            filled,
            total,
            split,
            ..
        } = &mut self.state
        {
            if *filled < *total {
                return Ok(None);
            }
            payload.truncate(*total);
            if split.is_some() && payload.last() != Some(&crate::opcode::STOP) {
                // Not one string after all: the payload goes back together.
                let whole = join_split(split, payload);
                *payload = whole;
                *total = payload.len();
                *filled = *total;
                *split = None;
            }
            self.handed_direct = true;
            return Ok(self.direct_frame());
        }
        let Some(head) = self.buf.data().first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::parse(head, self.max_message)?;
        let len = header.len as usize;
        let total = HEADER_LEN + len;
        if total > self.buf.capacity() {
            self.buf.consume(HEADER_LEN);
            self.state = State::Skip(header.len);
            self.skip_held();
            return Ok(Some(Incoming::Oversized(header)));
        }
        #[cfg(feature = "alloc")]
        if self.direct_min > 0 && len >= self.direct_min {
            self.buf.consume(HEADER_LEN);
            let split = match self.buf.data().first_chunk::<STRING_PREFIX>() {
                Some(prefix) if self.split_strings && header.code == MsgCode::ChannelData => {
                    string_stand_in(prefix, len)
                }
                _ => None,
            };
            if split.is_some() {
                self.buf.consume(STRING_PREFIX);
            }
            let total = if split.is_some() {
                len - STRING_PREFIX
            } else {
                len
            };
            // Not zeroed: the bytes are appended as they come (see `fill_direct`).
            let mut payload = alloc::vec::Vec::with_capacity(total);
            let held = self.buf.data();
            let n = held.len().min(total);
            payload.extend_from_slice(held.get(..n).unwrap_or(&[]));
            self.buf.consume(n);
            self.state = State::Direct {
                header,
                payload,
                filled: n,
                total,
                split,
            };
            return self.next_frame();
        }
        match self.buf.data().get(HEADER_LEN..total) {
            Some(payload) => {
                self.pending = total;
                Ok(Some(Incoming::Frame(Frame {
                    code: header.code,
                    channel: header.channel,
                    payload,
                })))
            }
            None => Ok(None),
        }
    }

    #[cfg(feature = "alloc")]
    fn direct_frame(&self) -> Option<Incoming<'_>> {
        match &self.state {
            State::Direct {
                header,
                payload,
                split,
                ..
            } => Some(Incoming::Frame(Frame {
                code: header.code,
                channel: header.channel,
                payload: match split {
                    Some(stand_in) => stand_in,
                    None => payload,
                },
            })),
            _ => None,
        }
    }

    /// The most bytes the input buffer holds.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The payload of the frame handed out last, moved out when it was received into its
    /// own allocation, copied otherwise (feature `alloc`). Empty when no frame is held.
    #[cfg(feature = "alloc")]
    pub fn take_payload(&mut self) -> alloc::vec::Vec<u8> {
        if self.handed_direct {
            if let State::Direct { payload, split, .. } = &mut self.state {
                if split.is_some() {
                    // One copy: the caller asked for the whole payload of a split string.
                    let whole = join_split(split, payload);
                    *split = None;
                    *payload = alloc::vec::Vec::new();
                    return whole;
                }
                return core::mem::take(payload);
            }
        }
        self.buf
            .data()
            .get(HEADER_LEN..self.pending)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// The string of the frame handed out last, when it was received split (see
    /// [`with_split_strings`](Self::with_split_strings)): its opcode and its bytes, in
    /// the allocation they were received into (feature `alloc`). `None`, leaving the
    /// payload where it is, for any other frame.
    #[cfg(feature = "alloc")]
    pub fn take_string(&mut self) -> Option<(u8, alloc::vec::Vec<u8>)> {
        if !self.handed_direct {
            return None;
        }
        match &mut self.state {
            State::Direct {
                payload,
                split: split @ Some(_),
                ..
            } => {
                let code = split.take().map_or(0, |s| s[0]);
                let mut bytes = core::mem::take(payload);
                // The STOP: checked when the payload was complete.
                bytes.pop();
                Some((code, bytes))
            }
            _ => None,
        }
    }

    /// The opcode and length of the string of the frame handed out last, when it was
    /// received split (its payload then shows a stand-in; see
    /// [`with_split_strings`](Self::with_split_strings)).
    #[cfg(feature = "alloc")]
    pub fn split_string(&self) -> Option<(u8, usize)> {
        match &self.state {
            State::Direct {
                split: Some(s),
                total,
                ..
            } if self.handed_direct => Some((s[0], total - 1)),
            _ => None,
        }
    }

    /// The payload of the frame handed out last (empty when none is held; a stand-in
    /// for a string received split, see [`with_split_strings`](Self::with_split_strings)).
    pub fn payload(&self) -> &[u8] {
        #[cfg(feature = "alloc")]
        if self.handed_direct {
            if let State::Direct { payload, split, .. } = &self.state {
                return match split {
                    Some(stand_in) => stand_in,
                    None => payload,
                };
            }
        }
        if self.pending >= HEADER_LEN {
            self.buf.data().get(HEADER_LEN..self.pending).unwrap_or(&[])
        } else {
            &[]
        }
    }

    /// Bytes still needed to complete the frame in progress (9 when idle).
    pub fn needed(&self) -> usize {
        match &self.state {
            State::Skip(left) => *left as usize,
            #[cfg(feature = "alloc")]
            State::Direct { filled, total, .. } => total - filled,
            State::Idle => {
                let held = self.buf.data().get(self.pending..).unwrap_or(&[]);
                match parse_frame(held, self.max_message) {
                    Ok(Parsed::Partial(n)) => n,
                    Ok(Parsed::Complete(..)) | Err(_) => 0,
                }
            }
        }
    }

    /// Bytes received and not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        let held = self.buf.data().len().saturating_sub(self.pending);
        match &self.state {
            #[cfg(feature = "alloc")]
            State::Direct { filled, .. } if !self.handed_direct => held + filled,
            _ => held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::GrowBuf;

    fn frame_bytes(code: MsgCode, channel: i32, payload: &[u8]) -> alloc::vec::Vec<u8> {
        let mut v = Header {
            code,
            channel,
            len: payload.len() as u32,
        }
        .to_bytes()
        .to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn next(r: &mut FrameReader<impl InputBuf>) -> Option<(MsgCode, i32, alloc::vec::Vec<u8>)> {
        match r.next_frame().unwrap()? {
            Incoming::Frame(f) => Some((f.code, f.channel, f.payload.to_vec())),
            Incoming::Oversized(h) => panic!("oversized {h:?}"),
        }
    }

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
        let msg = frame_bytes(MsgCode::ChannelData, 2, b"hello");
        let mut r = FrameReader::new(FixedBuf::<16>::new(), 64);
        for chunk in msg.chunks(3) {
            assert_eq!(r.feed(chunk), chunk.len());
        }
        assert_eq!(next(&mut r).unwrap().2, b"hello");
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.needed(), 9);
    }

    #[test]
    fn frame_larger_than_a_fixed_buffer_is_skipped_and_the_next_one_read() {
        let mut input = frame_bytes(MsgCode::ChannelData, 1, &[7u8; 100]);
        input.extend(frame_bytes(MsgCode::ChannelData, 3, b"ok"));
        let mut r = FrameReader::new(FixedBuf::<32>::new(), 1 << 20);
        let mut seen = alloc::vec::Vec::new();
        for chunk in input.chunks(5) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = r.feed(rest);
                rest = &rest[n..];
                while let Some(item) = r.next_frame().unwrap() {
                    seen.push(match item {
                        Incoming::Oversized(h) => (h.channel, h.len as usize),
                        Incoming::Frame(f) => (f.channel, f.payload.len()),
                    });
                }
            }
        }
        assert_eq!(seen, [(1, 100), (3, 2)]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn large_payloads_arrive_in_their_own_allocation() {
        let big = alloc::vec![9u8; 5000];
        let mut input = frame_bytes(MsgCode::ChannelData, 1, &big);
        input.extend(frame_bytes(MsgCode::ChannelData, 1, b"small"));
        let mut r = FrameReader::new(GrowBuf::new(), 1 << 20).with_direct_payloads(1000);
        let mut rest = &input[..];
        let mut got = alloc::vec::Vec::new();
        while !rest.is_empty() || r.buffered() > 0 {
            let space = r.space(700);
            let n = space.len().min(rest.len()).min(700);
            space[..n].copy_from_slice(&rest[..n]);
            r.commit(n);
            rest = &rest[n..];
            while let Some(Incoming::Frame(f)) = r.next_frame().unwrap() {
                assert_eq!(f.channel, 1);
                got.push(r.take_payload());
            }
            if n == 0 {
                break;
            }
        }
        assert_eq!(got, [big, b"small".to_vec()]);
    }

    /// A frame as read: channel, payload (whole, or the stand-in when split), the split
    /// string's opcode and bytes.
    type Read = (i32, alloc::vec::Vec<u8>, Option<(u8, alloc::vec::Vec<u8>)>);

    /// Feeds `input` in pieces of `step` bytes through `fill_direct` where it applies and
    /// `space` otherwise; collects (channel, payload, string taken split) per frame.
    fn read_split(input: &[u8], step: usize, take_strings: bool) -> alloc::vec::Vec<Read> {
        let mut r = FrameReader::new(GrowBuf::new(), 1 << 20)
            .with_direct_payloads(1000)
            .with_split_strings(true);
        let mut rest = input;
        let mut got = alloc::vec::Vec::new();
        loop {
            let n = match r.fill_direct(|v, need| {
                let n = need.min(step).min(rest.len());
                v.extend_from_slice(&rest[..n]);
                n
            }) {
                Some(n) => n,
                None => {
                    let space = r.space(step);
                    let n = space.len().min(rest.len()).min(step);
                    space[..n].copy_from_slice(&rest[..n]);
                    r.commit(n);
                    n
                }
            };
            rest = &rest[n..];
            while let Some(Incoming::Frame(f)) = r.next_frame().unwrap() {
                let (channel, shown) = (f.channel, f.payload.to_vec());
                let split = r.split_string();
                if take_strings {
                    if let Some((code, bytes)) = r.take_string() {
                        assert_eq!(split, Some((code, bytes.len())));
                        got.push((channel, shown, Some((code, bytes))));
                        continue;
                    }
                }
                got.push((channel, r.take_payload(), None));
            }
            if n == 0 {
                break;
            }
        }
        got
    }

    #[test]
    fn one_large_string_is_received_with_its_bytes_alone() {
        use crate::opcode as op;
        let data: alloc::vec::Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut input = alloc::vec::Vec::new();
        for code in [op::BYTES, op::PY3STRING, op::PY2STRING, op::UNICODE] {
            let mut text = data.clone();
            text.iter_mut().for_each(|b| *b &= 0x7f);
            input.extend(frame_bytes(
                MsgCode::ChannelData,
                1,
                &string_payload(code, &text),
            ));
        }
        for step in [7, 700, 64 * 1024] {
            let got = read_split(&input, step, true);
            assert_eq!(got.len(), 4);
            for ((channel, shown, split), code) in
                got.into_iter()
                    .zip([op::BYTES, op::PY3STRING, op::PY2STRING, op::UNICODE])
            {
                assert_eq!(channel, 1);
                // The frame shows an empty string of the same kind.
                assert_eq!(shown, string_payload(code, b""));
                let (c, bytes) = split.expect("split");
                assert_eq!(c, code);
                assert_eq!(bytes.len(), 5000);
                assert!(bytes.iter().zip(&data).all(|(a, b)| *a == b & 0x7f));
                // Its own allocation: nothing before the bytes, the STOP's byte after.
                assert_eq!(bytes.capacity(), 5001);
            }
            // Asked for whole, the same frames give their payloads back as they came.
            let whole = read_split(&input, step, false);
            let mut rest = &input[..];
            for (_, payload, _) in whole {
                assert_eq!(&rest[9..9 + payload.len()], &payload[..]);
                rest = &rest[9 + payload.len()..];
            }
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn payloads_that_are_not_one_string_are_not_split() {
        use crate::opcode as op;
        let data = alloc::vec![b'x'; 3000];
        // A string followed by another opcode, not STOP: the length still fits the frame.
        let mut not_stop = string_payload(op::BYTES, &data);
        *not_stop.last_mut().unwrap() = op::NONE;
        // A string whose length leaves bytes over, a list, and a string on CHANNEL_CLOSE_ERROR.
        let mut short = string_payload(op::BYTES, &data);
        short[4] -= 1;
        let list = [&[op::NEWLIST, 0, 0, 0, 0][..], &data, &[op::STOP]].concat();
        let mut input = frame_bytes(MsgCode::ChannelData, 1, &not_stop);
        input.extend(frame_bytes(MsgCode::ChannelData, 1, &short));
        input.extend(frame_bytes(MsgCode::ChannelData, 1, &list));
        input.extend(frame_bytes(
            MsgCode::ChannelCloseError,
            1,
            &string_payload(op::PY3STRING, &data),
        ));
        for step in [3, 1000, 100_000] {
            let got = read_split(&input, step, true);
            let want = [
                &not_stop,
                &short,
                &list,
                &string_payload(op::PY3STRING, &data),
            ];
            assert_eq!(got.len(), want.len());
            for ((_, payload, split), want) in got.iter().zip(want) {
                assert!(split.is_none());
                assert_eq!(payload, want);
            }
        }
    }

    #[test]
    fn a_string_whose_prefix_came_late_is_received_whole() {
        use crate::opcode as op;
        let payload = string_payload(op::BYTES, &[1u8; 2000]);
        let input = frame_bytes(MsgCode::ChannelData, 1, &payload);
        // The header and two bytes of the payload first: too few to decide a split.
        let mut r = FrameReader::new(GrowBuf::new(), 1 << 20)
            .with_direct_payloads(1000)
            .with_split_strings(true);
        r.feed(&input[..11]);
        assert!(r.next_frame().unwrap().is_none());
        r.feed(&input[11..]);
        let Some(Incoming::Frame(f)) = r.next_frame().unwrap() else {
            panic!("no frame")
        };
        assert_eq!(f.payload, &payload[..]);
        assert!(r.take_string().is_none());
        assert_eq!(r.take_payload(), payload);
    }
}
