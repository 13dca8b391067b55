//! Errors of gateways and channels.

use std::fmt;
use std::io;
use std::time::Duration;

use execnet_core::engine::{ProtocolError, SendError};
use execnet_core::{DecodeError, EncodeError};

use crate::process::Exit;
use crate::spec::SpecError;

/// A failure the remote code raised: the formatted traceback it sent with
/// CHANNEL_CLOSE_ERROR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    /// The remote traceback text.
    pub traceback: String,
}

impl RemoteError {
    /// The last line of the traceback: the exception type and message.
    pub fn summary(&self) -> &str {
        self.traceback
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "remote error: {}", self.traceback.trim_end())
    }
}

impl std::error::Error for RemoteError {}

/// The kind of end a gateway came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathKind {
    /// The worker closed the connection (it exited, or closed its output).
    Closed,
    /// The worker's output ended in the middle of a message.
    Truncated,
    /// The worker broke the protocol (bad header, oversized message, unknown channel).
    Protocol,
    /// The worker sent more unread data than the configured bound.
    Overflow,
    /// Reading or writing the connection failed.
    Io,
    /// The worker never completed the handshake.
    Handshake,
    /// The worker terminated the gateway, or this side closed it.
    Terminated,
}

/// Why a gateway's connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Death {
    /// The kind of end.
    pub kind: DeathKind,
    /// What happened, in words.
    pub cause: String,
    /// How the worker process ended, when it is one and has ended.
    pub exit: Option<Exit>,
    /// The last lines the worker wrote to stderr.
    pub stderr_tail: Vec<String>,
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)?;
        if let Some(exit) = &self.exit {
            write!(f, " (worker {exit})")?;
        }
        if !self.stderr_tail.is_empty() {
            write!(f, "; last stderr lines:")?;
            for line in &self.stderr_tail {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

/// Everything that can go wrong with a gateway or channel.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The spec did not parse.
    Spec(SpecError),
    /// The worker program could not be started (for example, the interpreter is not
    /// installed).
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The worker started but did not complete the bootstrap handshake.
    Bootstrap(Death),
    /// An ssh gateway's host could not be reached (ssh exit status 255).
    HostUnreachable {
        /// The host.
        host: String,
        /// ssh's own message.
        message: String,
    },
    /// The remote code failed.
    Remote(RemoteError),
    /// The channel is closed: no more values will come.
    Eof,
    /// The channel is closed for sending.
    Closed,
    /// A wait ran out of time.
    Timeout(Duration),
    /// The gateway's connection ended (the worker died, exited or misbehaved).
    GatewayDied(Death),
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// A value could not be decoded.
    Decode(DecodeError),
    /// A value could not be encoded.
    Encode(EncodeError),
    /// Socket or pipe failure.
    Io(io::Error),
    /// No channel with this id is open on the gateway.
    UnknownChannel(i32),
    /// The channel has a callback: its values go there, not to `receive`, and it cannot
    /// take a second one.
    HasCallback,
    /// This side ended the channel with an error: a callback panicked, a value for the
    /// callback did not decode, or a message on it was refused.
    ChannelFailed(String),
    /// The protocol state does not allow the request (for example, too many channels).
    NotAllowed(SendError),
    /// A server refused us (wrong or missing secret).
    Refused(String),
    /// Anything else, with a description.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec(e) => write!(f, "invalid spec: {e}"),
            Error::Spawn { program, source } => {
                write!(f, "cannot start {program:?}: {source}")
            }
            Error::Bootstrap(d) => write!(f, "worker failed to start: {d}"),
            Error::HostUnreachable { host, message } => {
                write!(f, "host not reachable: {host}: {}", message.trim())
            }
            Error::Remote(e) => e.fmt(f),
            Error::Eof => f.write_str("channel closed: no more values"),
            Error::Closed => f.write_str("channel is closed for sending"),
            Error::Timeout(d) => write!(f, "timed out after {:.3} s", d.as_secs_f64()),
            Error::GatewayDied(d) => write!(f, "gateway connection lost: {d}"),
            Error::Protocol(e) => write!(f, "protocol error from the worker: {e}"),
            Error::Decode(e) => write!(f, "cannot decode value: {e}"),
            Error::Encode(e) => write!(f, "cannot encode value: {e}"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::UnknownChannel(id) => write!(f, "no channel {id} is open on this gateway"),
            Error::HasCallback => {
                f.write_str("the channel has a callback: its values go to the callback")
            }
            Error::ChannelFailed(text) => write!(f, "channel failed: {text}"),
            Error::NotAllowed(e) => write!(f, "not allowed: {e}"),
            Error::Refused(why) => write!(f, "connection refused by server: {why}"),
            Error::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spec(e) => Some(e),
            Error::Spawn { source, .. } => Some(source),
            Error::Remote(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Encode(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::Spec(e)
    }
}
impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}
impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Error::Remote(e)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
