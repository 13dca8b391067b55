//! Several channels used as one.

use std::sync::mpsc;
use std::time::Duration;

use execnet_core::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::channel::Channel;
use crate::error::{Error, Result};

/// A set of channels, typically one per gateway of a [`Group`](crate::Group).
///
/// ```
/// let group = execnet::Group::new();
/// group.makegateways(&["popen//python=python3", "popen//python=python3"])?;
/// let mc = group.remote_exec("channel.send(channel.receive() + channel.gateway.id)")?;
/// mc.send_each("hello from ")?;
/// let answers: Vec<String> = mc.receive_each()?;
/// assert_eq!(answers, ["hello from gw0-worker", "hello from gw1-worker"]); // spec order
/// mc.wait_close(None)?;
/// # Ok::<(), execnet::Error>(())
/// ```
pub struct MultiChannel {
    channels: Vec<Channel>,
}

/// What [`MultiChannel::make_receive_queue`] delivers: a value, or the end of one
/// channel.
#[derive(Debug, PartialEq)]
pub enum QueueItem<T = Value> {
    /// A value from the channel at this position.
    Value(usize, T),
    /// The channel at this position ended.
    End(usize),
}

impl MultiChannel {
    /// Bundles channels.
    pub fn new(channels: Vec<Channel>) -> MultiChannel {
        MultiChannel { channels }
    }

    /// The channels.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Sends `value` on every channel.
    pub fn send_each<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.channels.iter().try_for_each(|c| c.send(value))
    }

    /// Receives one value from each channel, in channel order, as `T` (a [`Value`] for
    /// dynamic data).
    pub fn receive_each<T: DeserializeOwned + 'static>(&self) -> Result<Vec<T>> {
        self.channels.iter().map(Channel::receive).collect()
    }

    /// Routes every channel's values, decoded as `T`, into one queue as they arrive
    /// (through callbacks), each tagged with the channel's position; each channel's end
    /// comes as [`QueueItem::End`].
    ///
    /// With a gateway to each interpreter (here twice the same one):
    ///
    /// ```
    /// # use execnet::multi::QueueItem;
    /// let group = execnet::Group::new();
    /// group.makegateways(&["popen//python=python3", "popen//python=python3"])?;
    /// let mc = group.remote_exec("import sys; channel.send(sys.version_info[0])")?;
    /// let queue = mc.make_receive_queue::<i64>()?;
    /// let mut majors = Vec::new();
    /// while majors.len() < 2 {
    ///     if let QueueItem::Value(_, major) = queue.recv().unwrap() {
    ///         majors.push(major);
    ///     }
    /// }
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn make_receive_queue<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<mpsc::Receiver<QueueItem<T>>> {
        let (tx, rx) = mpsc::channel();
        for (i, ch) in self.channels.iter().enumerate() {
            let values = tx.clone();
            let end = tx.clone();
            ch.set_callback_with_end(
                move |v: T| {
                    let _ = values.send(QueueItem::Value(i, v));
                },
                move || {
                    let _ = end.send(QueueItem::End(i));
                },
            )?;
        }
        Ok(rx)
    }

    /// Waits until every channel is closed; the first remote error is returned.
    pub fn wait_close(&self, timeout: Option<Duration>) -> Result<()> {
        let mut first: Option<Error> = None;
        for ch in &self.channels {
            if let Err(e) = ch.wait_close(timeout) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// One message of several channels routed into one queue: the channel's key and a value,
/// or `None` when that channel ended.
pub(crate) type Routed = (usize, Option<Value>);

/// Routes every value `ch` receives, and then its end, into `tx` under `key`, so that
/// one thread can wait on many channels at once.
pub(crate) fn route(ch: &Channel, key: usize, tx: &mpsc::Sender<Routed>) -> Result<()> {
    let (values, end) = (tx.clone(), tx.clone());
    ch.set_callback_with_end(
        move |v: Value| {
            let _ = values.send((key, Some(v)));
        },
        move || {
            let _ = end.send((key, None));
        },
    )
}
