//! # execnet
//!
//! Drive Python interpreters of every generation (CPython 2.7 to 3.13, PyPy, Jython) from
//! Rust: start them as workers, execute code in them and exchange data with them over
//! channels, speaking the wire protocol of Python's `execnet` byte for byte.
//!
//! ```no_run
//! use execnet::Group;
//! let group = Group::new();
//! let gw = group.makegateway("popen//python=python3")?;
//! let ch = gw.remote_exec("
//! import sys
//! for x in channel:
//!     channel.send((x * 2, sys.version_info[0]))
//! ")?;
//! for x in 1..=3 {
//!     ch.send(&x)?;
//!     let (doubled, major): (i64, i64) = ch.receive()?;
//!     assert_eq!(doubled, x * 2);
//!     assert!(major >= 2);
//! }
//! ch.close()?;
//! group.terminate(std::time::Duration::from_secs(5));
//! # Ok::<(), execnet::Error>(())
//! ```
//!
//! ## The main types
//!
//! - [`Group`]: a set of gateways with ids; [`Group::makegateway`] starts one from a
//!   spec string ([`Spec`]: `popen//python=...`, `ssh=host//...`, `socket=host:port`,
//!   `via=gw0`), [`Group::makegateways`] several in parallel, [`Group::terminate`] ends
//!   them all. [`makegateway`] uses a [`default_group`].
//! - [`Gateway`]: one worker. [`Gateway::remote_exec`] runs Python source in it (or
//!   [`Gateway::remote_exec_call`], a named function with keyword arguments) and gives
//!   the [`Channel`] to talk to that code; also [`Gateway::rinfo`],
//!   [`Gateway::remote_status`], [`Gateway::exit`].
//! - [`Channel`]: [`Channel::send`] any `Serialize` value, [`Channel::receive`] any
//!   `Deserialize` one ([`Value`] for dynamic data with Python's exact kinds), with
//!   timeout forms, iteration, callbacks and `Read`/`Write` adapters.
//!   [`MultiChannel`] is one channel per gateway of a group.
//! - [`Options`]: timeouts and bounds; [`Error`]: what went wrong, with the remote
//!   traceback ([`RemoteError`]) or the death of the worker ([`Death`]).
//! - [`worker::Worker`]: Rust functions served to a Python (or Rust) master;
//!   [`RSync`] and [`Distributor`]: trees and task queues over many gateways;
//!   [`serve`]: a socket server that starts workers for remote masters.
//!
//! The codec and the protocol driver live in [`execnet_core`], re-exported as
//! [`core`]; [`core::protocol`] describes the wire format.
//!
//! ## Threads, callbacks, timeouts and lifetimes
//!
//! The API blocks; every handle ([`Gateway`], [`Channel`]) is `Send + Sync` and cheap to
//! clone, so any thread may send and receive. Each gateway has one reader thread that
//! parses what the worker sends and queues each value on its channel, plus one thread
//! that keeps the worker's stderr. Sending writes from the calling thread; a value too
//! large for the queue is written straight to the pipe.
//!
//! Callbacks ([`Channel::set_callback`]) run on the reader thread, one at a time, in
//! the order the values came, with no lock held: a callback may send on its own
//! channel. A callback that panics ends its own channel with an error (both sides see
//! it); the gateway and its other channels go on. A slow callback holds up the reader,
//! and so the whole gateway: hand long work to another thread.
//!
//! Every wait has a bounded form: [`Channel::receive_timeout`],
//! [`Channel::send_timeout`], [`Channel::wait_close`], [`Gateway::wait_dead`],
//! [`Options::startup_timeout`] for the start. A worker that dies, from any cause,
//! turns every blocked call into [`Error::GatewayDied`] with the cause.
//!
//! Lifetimes: a [`Group`] owns its workers. Dropping it ends every gateway it still
//! holds, within half a second, even while other [`Gateway`] handles to them are alive:
//! a worker is a process, and the program that made the group is the one that must not
//! leave it behind. Those handles then report [`Error::GatewayDied`]. Dropping the last
//! handle of a gateway that is in no group ends it the same way; [`Gateway::exit`]
//! ends it at once and takes it out of its group. A [`Channel`] dropped while open is
//! closed (or, with a callback, announces its last message and keeps receiving), as
//! Python execnet closes a channel it garbage-collects. Unread values count against
//! [`Options::max_queued_bytes`]; at that bound the reader stops reading
//! ([`Overflow::Wait`]) until the program catches up.
//!
//! ## Platforms
//!
//! Unix only (Linux is what the tests run on; macOS and the BSDs should work). Workers
//! are process groups that this crate signals, reaps and, on Linux, ties to the master
//! with a parent-death signal; pipes, `poll` and process groups have no Windows
//! counterpart that keeps those guarantees. The codec and protocol driver,
//! [`execnet_core`], build for any target, bare-metal and wasm32 included.
//!
//! ## The data path
//!
//! [`Channel::send`] (`channel.rs`) hands the value to the gateway's session
//! (`session.rs`), which measures its encoding; a small value is encoded by
//! `execnet_core`'s engine straight into its output queue under the engine lock, a large
//! one has only its header queued and is encoded straight into the transport. Under one
//! writer lock the queued bytes go to the transport (`transport.rs`: the worker's stdin
//! pipe, ssh's, or a TCP socket, encrypted by `auth.rs` when the server asks for a
//! secret). Coming back, the session's reader thread reads the transport into the
//! engine's frame reader, hands each frame to the engine, and reacts to the event: a
//! value's payload moves (without a copy when it is large) into the channel's queue, or
//! goes to its callback, run with no lock held (`channel.rs`); [`Channel::receive`]
//! decodes it into a [`Value`] or any `Deserialize` type. The Rust worker (`worker.rs`)
//! is the same session in the worker's role, with a thread per call.
#![forbid(unsafe_code)]
// docs.rs builds with `--cfg docsrs` on nightly: feature-gated items get their badge.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod auth;
pub mod bootstrap;
mod budget;
pub mod channel;
pub(crate) mod compiled;
pub mod distribute;
pub mod error;
pub mod gateway;
pub mod group;
pub mod multi;
pub(crate) mod process;
pub mod rsync;
pub mod serve;
mod session;
pub mod spec;
mod transport;
mod via;
pub mod worker;

pub use budget::Overflow;
pub use channel::Channel;
pub use distribute::Distributor;
pub use error::{Death, DeathKind, Error, RemoteError, Result};
pub use execnet_core as core;
pub use execnet_core::Value;
pub use gateway::{Gateway, Options, RInfo, RemoteStatus};
pub use group::{default_group, makegateway, Group};
pub use multi::MultiChannel;
pub use process::{Exit, OutputMode};
pub use rsync::RSync;
pub use spec::Spec;

/// The README's Rust examples, compiled by `cargo test` so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    /// What the crate docs promise: every handle can move to and be shared with any
    /// thread.
    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Gateway>();
        check::<crate::Channel>();
        check::<crate::Group>();
        check::<crate::MultiChannel>();
        check::<crate::Error>();
    }
}
