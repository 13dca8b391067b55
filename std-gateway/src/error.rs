//! Errors of gateways and channels.

use std::fmt;
use std::io;
use std::time::Duration;

use execnet_core::engine::SendError;
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

    /// The exception's type as Python names it (`ValueError`,
    /// `mypackage.errors.Invalid`): the summary up to its first `": "`.
    pub fn exception_type(&self) -> &str {
        let s = self.summary();
        s.split_once(": ").map_or(s, |(t, _)| t)
    }

    /// The exception's message: the summary after the type (empty when it has none).
    pub fn message(&self) -> &str {
        self.summary().split_once(": ").map_or("", |(_, m)| m)
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
#[non_exhaustive]
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
#[non_exhaustive]
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
///
/// Each variant's text says what happened and includes its cause, so that printing an
/// error once says it all; none has a [`source`](std::error::Error::source), so that
/// printing the chain (as `anyhow`'s `{:#}` does) never says a thing twice.
///
/// ```
/// use execnet::Error;
/// let group = execnet::Group::new();
/// let gw = group.makegateway("popen//python=python3")?;
/// match gw.remote_exec("raise ValueError('bad input')")?.receive::<i64>() {
///     Err(Error::Remote(e)) => {
///         assert_eq!((e.exception_type(), e.message()), ("ValueError", "bad input"));
///         assert!(e.traceback.contains("Traceback"));
///     }
///     other => panic!("expected the remote error, got {other:?}"),
/// }
/// // Refusals of this side are their own variants.
/// assert!(matches!(group.makegateway("popen//nosuchkey=1"), Err(Error::Spec(_))));
/// # Ok::<(), execnet::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec did not parse.
    #[error("invalid spec: {0}")]
    Spec(SpecError),
    /// The worker program could not be started (for example, the interpreter is not
    /// installed).
    #[error("cannot start {program:?}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        error: io::Error,
    },
    /// The worker started but did not complete the bootstrap handshake.
    #[error("worker failed to start: {0}")]
    Bootstrap(Death),
    /// The host of an ssh or socket gateway could not be reached (ssh exit status 255, a
    /// name that does not resolve, a refused connection).
    #[error("host not reachable: {host}: {}", .message.trim())]
    HostUnreachable {
        /// The host.
        host: String,
        /// What ssh or the system said.
        message: String,
    },
    /// The remote code raised an exception.
    #[error("{0}")]
    Remote(RemoteError),
    /// The channel is closed: no more values will come.
    #[error("channel closed: no more values")]
    Eof,
    /// The channel is closed for sending.
    #[error("channel is closed for sending")]
    Closed,
    /// A wait ran out of time.
    #[error("timed out after {:.3} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The gateway's connection ended (the worker died, exited or misbehaved).
    #[error("gateway connection lost: {0}")]
    GatewayDied(Death),
    /// A value could not be decoded.
    #[error("cannot decode value: {0}")]
    Decode(DecodeError),
    /// A value could not be encoded.
    #[error("cannot encode value: {0}")]
    Encode(EncodeError),
    /// Socket or pipe failure.
    #[error("i/o error: {0}")]
    Io(io::Error),
    /// No channel with this id is open on the gateway.
    #[error("no channel {0} is open on this gateway")]
    UnknownChannel(i32),
    /// The channel has a callback: its values go there, not to `receive`, and it cannot
    /// take a second one.
    #[error("the channel has a callback: its values go to the callback")]
    HasCallback,
    /// This side ended the channel with an error: a callback panicked, a value for the
    /// callback did not decode, or a message on it was refused.
    #[error("channel failed: {0}")]
    ChannelFailed(String),
    /// The protocol state does not allow the request (for example, too many channels).
    #[error("not allowed: {0}")]
    NotAllowed(SendError),
    /// A group already holds a live gateway with this id.
    #[error("a gateway with id {0:?} exists in the group")]
    DuplicateId(String),
    /// `via=` names a gateway the group does not hold.
    #[error("via={0}: no gateway with that id in the group")]
    NoSuchGateway(String),
    /// A thread of this library panicked while it worked for the caller.
    #[error("a thread panicked: {0}")]
    Panicked(String),
    /// A server refused us (wrong or missing secret).
    #[error("connection refused by server: {0}")]
    Refused(String),
    /// An argument the caller gave cannot be used (an empty command, a zero bound, a
    /// `via=` spec opened without its group).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A secret file could not be used.
    #[error("secret file {path}: {error}")]
    Secret {
        /// The file.
        path: String,
        /// Why.
        error: io::Error,
    },
    /// The secure session with a server could not be set up (other than a refusal).
    #[error("authenticating with {host}: {error}")]
    Auth {
        /// `host:port`.
        host: String,
        /// What failed.
        error: io::Error,
    },
    /// A server could not listen on its address.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The operating system's error.
        error: io::Error,
    },
    /// What a master sent to start a worker is not a bootstrap line.
    #[error("bad bootstrap: {0}")]
    BadBootstrap(String),
    /// Remote code answered with something its caller does not understand.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// An error that happened on one gateway of several, with that gateway's id.
    #[error("{gateway}: {error}")]
    On {
        /// The gateway id.
        gateway: String,
        /// What went wrong there.
        error: Box<Error>,
    },
    /// An [`RSync`](crate::RSync) run had failures (the report says which files).
    #[error("{0}")]
    Rsync(Box<crate::rsync::RsyncError>),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn no_error_says_its_cause_twice() {
        let errors = [
            Error::Remote(RemoteError {
                traceback: "Traceback (most recent call last):\nValueError: boom".into(),
            }),
            Error::Io(io::Error::other("pipe broke")),
            Error::Spawn {
                program: "python9".into(),
                error: io::ErrorKind::NotFound.into(),
            },
            Error::Decode(DecodeError::new(
                execnet_core::DecodeErrorKind::MissingStop,
                3,
                None,
            )),
        ];
        for e in errors {
            let text = e.to_string();
            let mut chain = text.clone();
            let mut source = e.source();
            while let Some(s) = source {
                chain.push_str(&s.to_string());
                source = s.source();
            }
            assert_eq!(chain, text, "the chain repeats the message");
        }
    }

    #[test]
    fn a_remote_error_names_its_type_and_message() {
        let e = RemoteError {
            traceback: "Traceback (most recent call last):\n  File \"<remote exec>\", line 1\nexecnet.gateway_base.RemoteError: KeyError: 'x'\n".into(),
        };
        assert_eq!(e.exception_type(), "execnet.gateway_base.RemoteError");
        assert_eq!(e.message(), "KeyError: 'x'");
        let bare = RemoteError {
            traceback: "Traceback ...\nKeyboardInterrupt\n".into(),
        };
        assert_eq!(
            (bare.exception_type(), bare.message()),
            ("KeyboardInterrupt", "")
        );
    }
}
