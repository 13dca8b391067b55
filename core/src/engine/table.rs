//! The channel table: each open channel's protocol state, and a slot for the host's own
//! data about it, so that no host keeps a second map of channels.

/// Protocol state of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChannelState {
    /// The peer may still send to us (it has sent neither LAST_MESSAGE nor a close).
    pub receiving: bool,
    /// We may still send (we have sent neither LAST_MESSAGE nor a close).
    pub sending: bool,
    /// How values that come on this channel load: the gateway's config when the channel
    /// was created, or what a RECONFIGURE for the channel set since.
    pub config: crate::StrConfig,
}

/// One row of the table: the protocol's state and the host's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<D> {
    /// The protocol's state.
    pub state: ChannelState,
    /// The host's data (a queue and a condition variable in the std crate, nothing on a
    /// microcontroller).
    pub data: D,
}

/// Where an [`Engine`](super::Engine) keeps its channels.
pub trait ChannelTable {
    /// The host's data per channel.
    type Data;
    /// The row of channel `id`.
    fn get(&self, id: i32) -> Option<&Entry<Self::Data>>;
    /// The row of channel `id`, to change.
    fn get_mut(&mut self, id: i32) -> Option<&mut Entry<Self::Data>>;
    /// Adds channel `id`; gives the row back when the table is full.
    fn insert(&mut self, id: i32, entry: Entry<Self::Data>) -> Result<(), Entry<Self::Data>>;
    /// Removes channel `id`, giving back its row.
    fn remove(&mut self, id: i32) -> Option<Entry<Self::Data>>;
    /// Number of channels.
    fn len(&self) -> usize;
    /// Whether there are no channels.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Calls `f` on every row, in no particular order.
    fn for_each(&mut self, f: &mut dyn FnMut(i32, &mut Entry<Self::Data>));
}

/// A table of at most `N` channels in a plain array, for hosts without an allocator.
#[derive(Clone, Debug)]
pub struct FixedTable<D, const N: usize> {
    slots: [Option<(i32, Entry<D>)>; N],
}

impl<D, const N: usize> FixedTable<D, N> {
    const FREE: Option<(i32, Entry<D>)> = None;

    /// An empty table.
    pub const fn new() -> Self {
        FixedTable {
            slots: [Self::FREE; N],
        }
    }
}

impl<D, const N: usize> Default for FixedTable<D, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D, const N: usize> ChannelTable for FixedTable<D, N> {
    type Data = D;
    fn get(&self, id: i32) -> Option<&Entry<D>> {
        self.slots.iter().find_map(|s| match s {
            Some((i, e)) if *i == id => Some(e),
            _ => None,
        })
    }
    fn get_mut(&mut self, id: i32) -> Option<&mut Entry<D>> {
        self.slots.iter_mut().find_map(|s| match s {
            Some((i, e)) if *i == id => Some(e),
            _ => None,
        })
    }
    fn insert(&mut self, id: i32, entry: Entry<D>) -> Result<(), Entry<D>> {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some((id, entry));
                Ok(())
            }
            None => Err(entry),
        }
    }
    fn remove(&mut self, id: i32) -> Option<Entry<D>> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| matches!(s, Some((i, _)) if *i == id))?;
        slot.take().map(|(_, e)| e)
    }
    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
    fn for_each(&mut self, f: &mut dyn FnMut(i32, &mut Entry<D>)) {
        for (id, e) in self.slots.iter_mut().flatten() {
            f(*id, e);
        }
    }
}

/// A growable table (feature `alloc`).
#[cfg(feature = "alloc")]
impl<D> ChannelTable for alloc::collections::BTreeMap<i32, Entry<D>> {
    type Data = D;
    fn get(&self, id: i32) -> Option<&Entry<D>> {
        alloc::collections::BTreeMap::get(self, &id)
    }
    fn get_mut(&mut self, id: i32) -> Option<&mut Entry<D>> {
        alloc::collections::BTreeMap::get_mut(self, &id)
    }
    fn insert(&mut self, id: i32, entry: Entry<D>) -> Result<(), Entry<D>> {
        alloc::collections::BTreeMap::insert(self, id, entry);
        Ok(())
    }
    fn remove(&mut self, id: i32) -> Option<Entry<D>> {
        alloc::collections::BTreeMap::remove(self, &id)
    }
    fn len(&self) -> usize {
        alloc::collections::BTreeMap::len(self)
    }
    fn for_each(&mut self, f: &mut dyn FnMut(i32, &mut Entry<D>)) {
        for (id, e) in self.iter_mut() {
            f(*id, e);
        }
    }
}
