//! Work distribution: any number of workers take tasks from one queue, the pattern of
//! pytest-xdist.
//!
//! A [`Distributor`] runs one Python function, defined by source you give, in a loop on
//! each of its gateways. Tasks go to whichever worker has room (each holds at most
//! [`prefetch`](Distributor::prefetch) tasks, so that none waits for its next one), and
//! results come back as they complete ([`as_completed`](Distributor::as_completed)) or in
//! the order of the tasks ([`in_order`](Distributor::in_order),
//! [`map`](Distributor::map)).
//!
//! When a worker dies (its process killed, its host gone), the tasks it held go back to
//! the front of the queue and run on another worker; every task still yields exactly one
//! result. A task that was running when its worker died
//! [`max_attempts`](Distributor::max_attempts) times is given up with
//! [`TaskError::WorkerDied`], so that a task that kills workers cannot kill them all (the
//! tasks queued behind it in the same worker are not counted against). [`on_worker_lost`](Distributor::on_worker_lost) may hand over a
//! replacement gateway.
//!
//! Results come once, but a requeued task may have run partly, or wholly, on the worker
//! that died: tasks should be safe to run again. A worker that hangs (as opposed to
//! dying) keeps its tasks: nothing here times a task out.
//!
//! ```no_run
//! use execnet::distribute::Distributor;
//! use execnet::Group;
//!
//! let group = Group::new();
//! let gateways = group.makegateways(&["popen//python=python3"; 4])?;
//! let mut pool = Distributor::new(
//!     &gateways,
//!     "def square(x):\n    return x * x\n",
//!     "square",
//! )?;
//! for (index, result) in pool.as_completed(0..100) {
//!     println!("task {index}: {:?}", result);
//! }
//! let squares = pool.map(0..10);             // in task order
//! assert_eq!(squares.len(), 10);
//! # Ok::<(), execnet::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::iter::Fuse;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::gateway::Gateway;
use crate::Value;

/// The worker loop, appended to the caller's source.
pub const REMOTE_SOURCE: &str = include_str!("agent/distribute_remote.py");

/// Why a task has no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task function raised: its traceback.
    Raised(String),
    /// Every worker that took the task died before answering.
    WorkerDied {
        /// How many workers died holding it.
        attempts: u32,
        /// Why the last one was lost.
        cause: String,
    },
    /// No worker was left to run the task.
    NoWorkers,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Raised(tb) => write!(f, "the task raised: {}", tb.trim_end()),
            TaskError::WorkerDied { attempts, cause } => write!(
                f,
                "{attempts} worker{} died running the task; the last: {cause}",
                if *attempts == 1 { "" } else { "s" }
            ),
            TaskError::NoWorkers => f.write_str("no worker left to run the task"),
        }
    }
}

impl std::error::Error for TaskError {}

/// A worker the distributor lost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LostWorker {
    /// The gateway's id.
    pub gateway: String,
    /// Why: the gateway's death, the remote error, or what failed.
    pub cause: String,
    /// Tasks it held that went back to the queue.
    pub requeued: usize,
}

type Replace = Box<dyn FnMut(&Gateway, &str) -> Option<Gateway> + Send>;

/// A message from a worker, or (`None`) the end of its channel.
type Event = crate::multi::Routed;

struct Slot {
    gateway: Gateway,
    channel: Option<Channel>,
    /// Task ids sent and not answered, oldest first.
    inflight: Vec<u64>,
}

/// Runs a Python function over a stream of tasks on many workers; see the [module
/// documentation](self).
pub struct Distributor {
    source: String,
    function: String,
    slots: Vec<Slot>,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    next_id: u64,
    prefetch: usize,
    max_attempts: u32,
    lost: Vec<LostWorker>,
    replace: Option<Replace>,
}

impl fmt::Debug for Distributor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Distributor")
            .field("function", &self.function)
            .field("workers", &self.workers())
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl Distributor {
    /// Starts the worker loop on every gateway: `source` is run there, and `function`
    /// (a name it defines, taking one argument) is called for each task. Fails when any
    /// worker cannot start it (the source raises, the function is missing), naming the
    /// gateway.
    pub fn new(gateways: &[Gateway], source: &str, function: &str) -> Result<Distributor> {
        let (tx, rx) = mpsc::channel();
        let mut pool = Distributor {
            source: format!("{}\n{REMOTE_SOURCE}", source.trim_end()),
            function: function.to_string(),
            slots: Vec::new(),
            tx,
            rx,
            next_id: 0,
            prefetch: 2,
            max_attempts: 3,
            lost: Vec::new(),
            replace: None,
        };
        // All start at once; then each is waited for.
        let started = gateways
            .iter()
            .map(|gw| (gw, pool.begin(gw)))
            .collect::<Vec<_>>();
        for (gw, ch) in started {
            let ch = ch?;
            pool.finish_start(gw, ch)?;
        }
        Ok(pool)
    }

    /// How many tasks each worker holds at most (default 2, at least 1): more hides the
    /// round trip between tasks, fewer spreads short queues more evenly.
    pub fn prefetch(mut self, tasks: usize) -> Distributor {
        self.prefetch = tasks.max(1);
        self
    }

    /// How many workers may die running one task before it is given up (default 3, at
    /// least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Distributor {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Called with a lost worker's gateway and the cause; a gateway it returns joins as
    /// a replacement.
    pub fn on_worker_lost(
        mut self,
        replace: impl FnMut(&Gateway, &str) -> Option<Gateway> + Send + 'static,
    ) -> Distributor {
        self.replace = Some(Box::new(replace));
        self
    }

    /// Adds a worker.
    pub fn add_worker(&mut self, gateway: &Gateway) -> Result<()> {
        let ch = self.begin(gateway)?;
        self.finish_start(gateway, ch)
    }

    /// Workers alive.
    pub fn workers(&self) -> usize {
        self.slots.iter().filter(|s| s.channel.is_some()).count()
    }

    /// The workers lost so far, in order.
    pub fn lost(&self) -> &[LostWorker] {
        &self.lost
    }

    /// Runs every task; yields `(index, result)` as results arrive, `index` counting the
    /// tasks from 0. Tasks are taken from `tasks` only as workers have room.
    pub fn as_completed<T, I>(&mut self, tasks: I) -> AsCompleted<'_, I::IntoIter>
    where
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        AsCompleted {
            pool: self,
            tasks: tasks.into_iter().fuse(),
            produced: 0,
            mine: HashMap::new(),
            requeue: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// Runs every task; yields the results in the order of the tasks.
    pub fn in_order<T, I>(&mut self, tasks: I) -> InOrder<'_, I::IntoIter>
    where
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        InOrder {
            inner: self.as_completed(tasks),
            waiting: BTreeMap::new(),
            next: 0,
        }
    }

    /// Runs every task and collects the results in the order of the tasks.
    pub fn map<T, I>(&mut self, tasks: I) -> Vec<Result<Value, TaskError>>
    where
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        self.in_order(tasks).collect()
    }

    fn begin(&self, gateway: &Gateway) -> Result<Channel> {
        let ch = gateway.remote_exec(&self.source)?;
        // The source may already have failed and closed the channel: what it raised is
        // the better error, and the first receive reports it.
        let _ = ch.send(&self.function);
        Ok(ch)
    }

    fn finish_start(&mut self, gateway: &Gateway, ch: Channel) -> Result<()> {
        let on = |error: Error| Error::On {
            gateway: gateway.id().into(),
            error: Box::new(error),
        };
        let ready = ch.receive::<Value>().map_err(on)?;
        let ok = matches!(&ready, Value::Tuple(items)
            if items.first().and_then(Value::as_str) == Some("ready"));
        if !ok {
            return Err(on(Error::UnexpectedReply(format!(
                "the worker loop did not start: it sent {ready}"
            ))));
        }
        let slot = self.slots.len();
        crate::multi::route(&ch, slot, &self.tx)?;
        self.slots.push(Slot {
            gateway: gateway.clone(),
            channel: Some(ch),
            inflight: Vec::new(),
        });
        Ok(())
    }

    /// Drops worker `slot`, records why, and asks for a replacement; returns the task ids
    /// it held.
    fn lose(&mut self, slot: usize, cause: String, requeued: usize) -> Vec<u64> {
        let Some(s) = self.slots.get_mut(slot) else {
            return Vec::new();
        };
        if let Some(ch) = s.channel.take() {
            let _ = ch.close();
        }
        let held = std::mem::take(&mut s.inflight);
        let gateway = s.gateway.clone();
        self.lost.push(LostWorker {
            gateway: gateway.id().to_string(),
            cause: cause.clone(),
            requeued,
        });
        if let Some(replace) = self.replace.as_mut() {
            if let Some(fresh) = replace(&gateway, &cause) {
                if let Err(e) = self.add_worker(&fresh) {
                    self.lost.push(LostWorker {
                        gateway: fresh.id().to_string(),
                        cause: format!("the replacement did not start: {e}"),
                        requeued: 0,
                    });
                }
            }
        }
        held
    }
}

impl Drop for Distributor {
    fn drop(&mut self) {
        // The loops end when their channels close; the gateways are the caller's.
        for s in &self.slots {
            if let Some(ch) = &s.channel {
                let _ = ch.close();
            }
        }
    }
}

struct Pending<T> {
    index: usize,
    task: T,
    attempts: u32,
}

/// Results as they complete: `(index, result)`. See [`Distributor::as_completed`].
pub struct AsCompleted<'p, I: Iterator> {
    pool: &'p mut Distributor,
    tasks: Fuse<I>,
    produced: usize,
    /// This run's tasks not answered yet: queued again, or held by a worker.
    mine: HashMap<u64, Pending<I::Item>>,
    requeue: VecDeque<u64>,
    ready: VecDeque<(usize, Result<Value, TaskError>)>,
}

impl<I: Iterator> fmt::Debug for AsCompleted<'_, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("produced", &self.produced)
            .field("unanswered", &self.mine.len())
            .finish_non_exhaustive()
    }
}

impl<I> AsCompleted<'_, I>
where
    I: Iterator,
    I::Item: Serialize,
{
    /// A task not sent before: from the queue of returned ones first.
    fn next_task(&mut self) -> Option<u64> {
        if let Some(id) = self.requeue.pop_front() {
            return Some(id);
        }
        let task = self.tasks.next()?;
        let id = self.pool.next_id;
        self.pool.next_id += 1;
        self.mine.insert(
            id,
            Pending {
                index: self.produced,
                task,
                attempts: 0,
            },
        );
        self.produced += 1;
        Some(id)
    }

    /// Gives every live worker tasks up to its prefetch.
    fn dispatch(&mut self) {
        for slot in 0..self.pool.slots.len() {
            loop {
                let s = &self.pool.slots[slot];
                if s.channel.is_none() || s.inflight.len() >= self.pool.prefetch {
                    break;
                }
                let Some(id) = self.next_task() else {
                    return;
                };
                let Some(pending) = self.mine.get(&id) else {
                    continue;
                };
                let sent = match &self.pool.slots[slot].channel {
                    Some(ch) => ch.send(&(id, &pending.task)),
                    None => Err(Error::Closed),
                };
                match sent {
                    Ok(()) => self.pool.slots[slot].inflight.push(id),
                    Err(e) => {
                        self.requeue.push_front(id);
                        let cause = format!("cannot send it a task: {e}");
                        self.worker_lost(slot, cause);
                        break;
                    }
                }
            }
        }
    }

    /// Requeues what worker `slot` held (or gives it up after too many deaths).
    fn worker_lost(&mut self, slot: usize, cause: String) {
        let held: Vec<u64> = self.pool.slots[slot]
            .inflight
            .iter()
            .copied()
            .filter(|id| self.mine.contains_key(id))
            .collect();
        self.pool.lose(slot, cause.clone(), held.len());
        // The loop runs its tasks one after the other, in the order sent: the oldest was
        // running when the worker died, the others had not begun and are not to blame.
        let running = held.first().copied();
        // Oldest first at the front of the queue.
        for id in held.into_iter().rev() {
            let Some(p) = self.mine.get_mut(&id) else {
                continue;
            };
            if Some(id) == running {
                p.attempts += 1;
            }
            if p.attempts >= self.pool.max_attempts {
                if let Some(p) = self.mine.remove(&id) {
                    let error = TaskError::WorkerDied {
                        attempts: p.attempts,
                        cause: cause.clone(),
                    };
                    self.ready.push_back((p.index, Err(error)));
                }
            } else {
                self.requeue.push_front(id);
            }
        }
    }

    fn handle(&mut self, slot: usize, event: Option<Value>) {
        let Some(msg) = event else {
            let cause = match self.pool.slots[slot].channel.take() {
                Some(ch) => match ch.wait_close(Some(Duration::ZERO)) {
                    Ok(()) => "the worker loop closed its channel".to_string(),
                    Err(e) => e.to_string(),
                },
                // Already dropped by this side (it failed to take a task).
                None => return,
            };
            self.worker_lost(slot, cause);
            return;
        };
        if self.pool.slots[slot].channel.is_none() {
            return;
        }
        let parsed = match &msg {
            Value::Tuple(items) if items.len() == 3 => {
                match (items[0].as_i64(), &items[1], &items[2]) {
                    (Some(id), Value::Bool(ok), result) => Some((id, *ok, result)),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((id, ok, result)) = parsed else {
            let cause = format!("unexpected message from the worker loop: {msg:?}");
            self.worker_lost(slot, cause);
            return;
        };
        let id = u64::try_from(id).unwrap_or(u64::MAX);
        self.pool.slots[slot].inflight.retain(|&i| i != id);
        if let Some(p) = self.mine.remove(&id) {
            let outcome = if ok {
                Ok(result.clone())
            } else {
                let text = match result {
                    Value::Bytes(b) | Value::Py2Str(b) => String::from_utf8_lossy(b).into_owned(),
                    other => other
                        .as_str()
                        .map_or_else(|| format!("{other:?}"), str::to_string),
                };
                Err(TaskError::Raised(text))
            };
            self.ready.push_back((p.index, outcome));
        }
    }
}

impl<I> Iterator for AsCompleted<'_, I>
where
    I: Iterator,
    I::Item: Serialize,
{
    type Item = (usize, Result<Value, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.pool.workers() == 0 {
                // Nobody left: what remains fails, one task at a time.
                let id = match self.next_task() {
                    Some(id) => Some(id),
                    None => self.mine.keys().next().copied(),
                }?;
                let p = self.mine.remove(&id)?;
                return Some((p.index, Err(TaskError::NoWorkers)));
            }
            self.dispatch();
            if self.ready.is_empty() && self.mine.is_empty() && self.requeue.is_empty() {
                return None;
            }
            if !self.ready.is_empty() || self.pool.workers() == 0 {
                continue;
            }
            // The distributor keeps a sender, so this waits for the next event.
            let Ok((slot, event)) = self.pool.rx.recv() else {
                return None;
            };
            self.handle(slot, event);
        }
    }
}

/// Results in task order. See [`Distributor::in_order`].
pub struct InOrder<'p, I: Iterator> {
    inner: AsCompleted<'p, I>,
    waiting: BTreeMap<usize, Result<Value, TaskError>>,
    next: usize,
}

impl<I: Iterator> fmt::Debug for InOrder<'_, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InOrder")
            .field("next", &self.next)
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl<I> Iterator for InOrder<'_, I>
where
    I: Iterator,
    I::Item: Serialize,
{
    type Item = Result<Value, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.waiting.remove(&self.next) {
                self.next += 1;
                return Some(r);
            }
            let (index, r) = self.inner.next()?;
            self.waiting.insert(index, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_loop_is_ascii() {
        assert!(REMOTE_SOURCE.is_ascii());
    }

    #[test]
    fn task_errors_say_what_happened() {
        let died = TaskError::WorkerDied {
            attempts: 2,
            cause: "gateway connection lost: killed by SIGKILL".into(),
        };
        assert_eq!(
            died.to_string(),
            "2 workers died running the task; the last: gateway connection lost: killed by SIGKILL"
        );
        let raised = TaskError::Raised("Traceback ...\nValueError: bad\n".into());
        assert_eq!(
            raised.to_string(),
            "the task raised: Traceback ...\nValueError: bad"
        );
        assert_eq!(
            TaskError::NoWorkers.to_string(),
            "no worker left to run the task"
        );
    }
}
