//! The bound on received values that wait unread, over all channels of a gateway, and
//! what happens at the bound: the reader stops reading (backpressure, the default), or
//! the gateway ends with [`DeathKind::Overflow`](crate::DeathKind::Overflow).
//!
//! Backpressure must not deadlock a program that waits on one channel while another
//! fills the bound with values it will read later: while anyone waits on an empty channel,
//! the reader goes on past the bound, up to twice it, and only then gives up.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What a gateway does when the values waiting unread reach
/// [`Options::max_queued_bytes`](crate::Options::max_queued_bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Stop reading from the worker until values are received (the worker then blocks on
    /// its writes): memory stays bounded and nothing is lost.
    #[default]
    Wait,
    /// End the gateway with [`DeathKind::Overflow`](crate::DeathKind::Overflow): for
    /// peers that must not be able to stall this side.
    Fail,
}

#[derive(Default)]
struct State {
    queued: usize,
    /// Receivers blocked on an empty channel.
    starving: usize,
}

/// Bytes of received values that wait unread, over all channels of a session.
pub(crate) struct Budget {
    state: Mutex<State>,
    room: Condvar,
    max: usize,
    mode: Overflow,
}

/// How often a paused reader looks again whether its gateway ended.
const RECHECK: Duration = Duration::from_millis(100);

impl Budget {
    pub(crate) fn new(max: usize, mode: Overflow) -> Budget {
        Budget {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            max,
            mode,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bound.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Counts `n` more bytes; `false` when the gateway must end: over the bound in
    /// [`Overflow::Fail`] mode, over twice the bound in [`Overflow::Wait`] mode.
    pub(crate) fn take(&self, n: usize) -> bool {
        let mut st = self.lock();
        st.queued += n;
        let hard = match self.mode {
            Overflow::Fail => self.max,
            Overflow::Wait => self.max.saturating_mul(2),
        };
        if st.queued > hard {
            st.queued -= n;
            return false;
        }
        true
    }

    /// Gives back `n` bytes (received, or dropped with a channel).
    pub(crate) fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut st = self.lock();
        st.queued = st.queued.saturating_sub(n);
        drop(st);
        self.room.notify_all();
    }

    /// Blocks the reader while the bound is reached and nobody starves, in
    /// [`Overflow::Wait`] mode; `stop` says when to give up waiting (the gateway ended).
    pub(crate) fn wait_for_room(&self, stop: impl Fn() -> bool) {
        if self.mode != Overflow::Wait {
            return;
        }
        let mut st = self.lock();
        while st.queued >= self.max && st.starving == 0 && !stop() {
            st = self
                .room
                .wait_timeout(st, RECHECK)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Marks the caller as waiting on an empty channel until the guard is dropped.
    pub(crate) fn starving(&self) -> Starving<'_> {
        self.lock().starving += 1;
        self.room.notify_all();
        Starving(self)
    }
}

/// A receiver waiting on an empty channel (see [`Budget::starving`]).
pub(crate) struct Starving<'b>(&'b Budget);

impl Drop for Starving<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.starving = st.starving.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn fail_mode_refuses_past_the_bound() {
        let b = Budget::new(10, Overflow::Fail);
        assert!(b.take(10));
        assert!(!b.take(1));
        b.give(5);
        assert!(b.take(5));
    }

    #[test]
    fn wait_mode_pauses_until_values_are_received() {
        let b = Arc::new(Budget::new(10, Overflow::Wait));
        assert!(b.take(12));
        let b2 = b.clone();
        let t = Instant::now();
        let giver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            b2.give(12);
        });
        b.wait_for_room(|| false);
        assert!(t.elapsed() >= Duration::from_millis(140));
        giver.join().unwrap();
        // Twice the bound is the hard limit.
        assert!(b.take(20));
        assert!(!b.take(1));
    }

    #[test]
    fn a_starving_receiver_lets_the_reader_past_the_bound() {
        let b = Budget::new(10, Overflow::Wait);
        assert!(b.take(15));
        let guard = b.starving();
        let t = Instant::now();
        b.wait_for_room(|| false);
        assert!(t.elapsed() < Duration::from_millis(50));
        drop(guard);
    }
}
