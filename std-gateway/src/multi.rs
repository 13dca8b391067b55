//! Several channels used as one.

use std::sync::mpsc;
use std::time::Duration;

use execnet_core::Value;
use serde::Serialize;

use crate::channel::Channel;
use crate::error::{Error, Result};

/// A set of channels, typically one per gateway of a [`Group`](crate::Group).
pub struct MultiChannel {
    channels: Vec<Channel>,
}

/// What [`MultiChannel::make_receive_queue`] delivers: a value, or the end of one
/// channel.
#[derive(Debug)]
pub enum QueueItem {
    /// A value from the channel with this id (and gateway position).
    Value(usize, Value),
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

    /// Receives one value from each channel, in channel order.
    pub fn receive_each(&self) -> Result<Vec<Value>> {
        self.channels.iter().map(Channel::receive_value).collect()
    }

    /// Routes every channel's values into one queue as they arrive (through callbacks),
    /// each tagged with the channel's position; each channel's end comes as
    /// [`QueueItem::End`].
    pub fn make_receive_queue(&self) -> Result<mpsc::Receiver<QueueItem>> {
        let (tx, rx) = mpsc::channel();
        for (i, ch) in self.channels.iter().enumerate() {
            let tx = tx.clone();
            // A unique end marker per channel: a tuple nobody else sends.
            let marker = Value::Tuple(vec![
                Value::Str("execnet-end-of-channel".into()),
                Value::int(i as i64),
            ]);
            let expect = marker.clone();
            ch.set_callback(
                move |v| {
                    let item = if v == expect {
                        QueueItem::End(i)
                    } else {
                        QueueItem::Value(i, v)
                    };
                    let _ = tx.send(item);
                },
                Some(marker),
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
