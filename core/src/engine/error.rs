//! What can go wrong in the protocol, split by whose fault it is: the peer's
//! ([`ProtocolError`], which ends the connection) or a local request the state does not
//! allow ([`SendError`], after which the connection goes on).

use core::fmt;

use crate::error::EncodeError;
use crate::frame::{FrameError, MsgCode};

/// The peer broke the protocol; the connection cannot go on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProtocolError {
    /// Bad framing (unknown message code, negative length, over the maximum size).
    Frame(FrameError),
    /// A frame for a channel id this side numbers but never opened.
    UnknownChannel {
        /// The message.
        code: MsgCode,
        /// The channel id.
        channel: i32,
    },
    /// A message with a channel id it cannot carry (0 or negative where a channel is
    /// needed, an id of the wrong numbering, or a CHANNEL_EXEC reusing an id).
    BadChannelId {
        /// The message.
        code: MsgCode,
        /// The channel id.
        channel: i32,
    },
    /// A message the other role sends (for example CHANNEL_EXEC sent to a master).
    WrongDirection(MsgCode),
    /// A payload that must be empty was not, or a structured payload did not decode.
    BadPayload(MsgCode),
    /// A message after GATEWAY_TERMINATE.
    Terminated,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(e) => write!(f, "framing error: {e}"),
            ProtocolError::UnknownChannel { code, channel } => write!(
                f,
                "{} for channel {channel}, which was never opened",
                code.name()
            ),
            ProtocolError::BadChannelId { code, channel } => {
                write!(f, "{} with invalid channel id {channel}", code.name())
            }
            ProtocolError::WrongDirection(code) => {
                write!(f, "{} is not sent in this direction", code.name())
            }
            ProtocolError::BadPayload(code) => write!(f, "malformed {} payload", code.name()),
            ProtocolError::Terminated => f.write_str("a message arrived after GATEWAY_TERMINATE"),
        }
    }
}

/// Each message includes its cause: no [`source`](core::error::Error::source), so that a
/// printed chain never repeats it.
impl core::error::Error for ProtocolError {}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> Self {
        ProtocolError::Frame(e)
    }
}

/// A local request the protocol state or the output queue does not allow; nothing was
/// queued and the connection goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SendError {
    /// The channel is closed for sending (closed, never opened, or this side sent its
    /// last message).
    Closed(i32),
    /// The gateway has terminated.
    Terminated,
    /// The output queue cannot take the whole frame now: transmit what is queued, then
    /// try again (or, for a value, stream it with
    /// [`Engine::send_header`](super::Engine::send_header)).
    OutputFull {
        /// Bytes the frame takes, header included.
        needed: usize,
    },
    /// The channel table is full, or this side's channel ids ran out.
    TooManyChannels,
    /// A message this role does not send (for example CHANNEL_EXEC from a worker).
    WrongRole(MsgCode),
    /// The value could not be encoded.
    Encode(EncodeError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(id) => write!(f, "channel {id} is closed for sending"),
            SendError::Terminated => f.write_str("the gateway has terminated"),
            SendError::OutputFull { needed } => {
                write!(f, "output queue full: the frame needs {needed} bytes")
            }
            SendError::TooManyChannels => f.write_str("too many open channels"),
            SendError::WrongRole(code) => {
                write!(f, "{} is not sent by this side", code.name())
            }
            SendError::Encode(e) => write!(f, "the value cannot be encoded: {e}"),
        }
    }
}

/// Each message includes its cause (see [`ProtocolError`]).
impl core::error::Error for SendError {}

impl From<EncodeError> for SendError {
    fn from(e: EncodeError) -> Self {
        SendError::Encode(e)
    }
}

/// Why this side refused one message of the peer without ending the connection (see
/// [`Event::Refused`](super::Event::Refused)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Refusal {
    /// The message is larger than this side's input buffer; its payload was skipped.
    TooLarge {
        /// The message's payload length.
        len: u32,
        /// The largest payload the buffer holds.
        max: usize,
    },
    /// A CHANNEL_EXEC when the channel table is full.
    TooManyChannels,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooLarge { len, max } => write!(
                f,
                "a message of {len} bytes is larger than this side's buffer of {max} bytes"
            ),
            Refusal::TooManyChannels => f.write_str("too many open channels"),
        }
    }
}
