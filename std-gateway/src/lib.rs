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
//! The pieces: [`spec`] parses gateway specs; [`Group`], [`Gateway`] and [`Channel`] are
//! the execnet API; [`process`] controls worker processes (process groups, signals,
//! reaping); [`transport`] bootstraps interpreters with our own Python agent. The codec
//! and the protocol driver live in [`execnet_core`], re-exported as [`core`].
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
#![deny(missing_docs)]

pub mod auth;
mod budget;
pub mod channel;
pub mod distribute;
pub mod error;
pub mod gateway;
pub mod group;
pub mod multi;
pub mod process;
pub mod rsync;
pub mod serve;
mod session;
pub mod spec;
pub mod transport;
mod via;
pub mod worker;

pub use budget::Overflow;
pub use channel::Channel;
pub use distribute::Distributor;
pub use error::{Death, DeathKind, Error, RemoteError, Result};
pub use execnet_core as core;
pub use execnet_core::Value;
pub use gateway::{Gateway, Options, RInfo, RemoteStatus};
pub use group::Group;
pub use multi::MultiChannel;
pub use rsync::RSync;
pub use spec::Spec;
