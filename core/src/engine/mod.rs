//! The protocol driver, sans-IO: no threads, no IO, no clock, in the manner of
//! quinn-proto. Every host (the std crate's master and Rust worker, a microcontroller
//! over a UART) moves bytes and reacts to events; none parses a header or assembles a
//! frame.
//!
//! ```text
//! host loop:   read(transport) -> conn.handle_bytes(buf)   (or recv_buf + recv_commit)
//!              while let Some(ev) = conn.poll_event()? { react: deliver, call, reply }
//!              while let Some(out) = conn.poll_transmit() { write(transport, out); conn.transmitted(n) }
//! host verbs:  conn.send / close / exec / status / reconfigure / terminate / last_message
//!              -> one whole frame queued, or Err(SendError::OutputFull { needed }) and the
//!                 queue untouched
//! ```
//!
//! - [`table`]: each channel's state and the host's data for it ([`Entry`]).
//! - [`messages`]: the payloads of RECONFIGURE, CHANNEL_EXEC, the STATUS answer and
//!   CHANNEL_CLOSE_ERROR.
//! - [`connection`]: [`Engine`] (state, table, output queue, verbs, incoming frames) and
//!   [`Connection`] (an engine with its [`FrameReader`](crate::frame::FrameReader)).
//!
//! Channel life cycle, per side: open, then (after the peer's `LAST_MESSAGE`) send-only,
//! then closed (`CLOSE` or `CLOSE_ERROR` either way). A message for a channel this side
//! numbers but never opened ends the connection; one for a channel that is closed, or a
//! peer channel this side never learned of, is dropped as the reference does
//! ([`Event::Dropped`]). Channels come into being on this side when this side opens them,
//! when a CHANNEL_EXEC arrives, or when a payload refers to one (a `CHANNEL` value).
//!
//! A message too large for a fixed input buffer, or a CHANNEL_EXEC beyond a fixed
//! channel table, is refused alone ([`Event::Refused`]): its channel is closed with an
//! error and the connection lives on. A message beyond the configured maximum size is a
//! hostile stream and ends the connection.

pub mod connection;
mod error;
pub mod messages;
pub mod table;

pub use connection::{Connection, Engine, Event};
pub use error::{ProtocolError, Refusal, SendError};
pub use messages::{close_error_text, reconfigure_value, ExecRequest, NoKwargs};
pub use table::{ChannelState, ChannelTable, Entry, FixedTable};

/// Which end of the gateway an engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// The side that created the gateway: odd channel ids.
    Master,
    /// The bootstrapped side: even channel ids.
    Worker,
}

impl Role {
    pub(crate) const fn first_id(self) -> i32 {
        match self {
            Role::Master => 1,
            Role::Worker => 2,
        }
    }

    /// Whether `id` is numbered by this role.
    pub const fn owns(self, id: i32) -> bool {
        match self {
            Role::Master => id % 2 != 0,
            Role::Worker => id % 2 == 0,
        }
    }
}
