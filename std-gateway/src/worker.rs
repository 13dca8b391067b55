//! The Rust worker: serves the execnet protocol from this process, so that a Python
//! execnet master (or ours) can call registered Rust functions.
//!
//! A CHANNEL_EXEC request names the function in `call_name`; its keyword arguments
//! arrive as a dict and the function talks to the master over a [`Channel`], the same
//! type a master's code uses. The
//! source code in the request is not executed (there is no Python here): a request
//! without a known `call_name` closes its channel with an error naming the functions
//! that exist. STATUS is answered; GATEWAY_TERMINATE or the end of input stops the
//! worker.
//!
//! The protocol logic is the sans-IO [`Engine`](execnet_core::engine::Engine) of
//! `execnet-core`, the same one a microcontroller drives over a UART, run by the session
//! the master uses too; this module only adds the function table and a thread per call.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

use execnet_core::engine::{ExecRequest, Role};
use execnet_core::{Limits, StrConfig, Value, ValueRef};
use serde::de::DeserializeOwned;

use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::session::{guarded, Session, SessionConfig};

/// A call, ready to run on its own thread: the function with its arguments decoded.
type Call = Box<dyn FnOnce(&Channel) -> std::result::Result<(), String> + Send>;

/// A registered function with its argument decoding folded in: from the request's
/// keyword arguments to a call, or the `TypeError` text the master gets.
type Function = Arc<dyn Fn(ValueRef<'_, '_>) -> std::result::Result<Call, String> + Send + Sync>;

/// Longest bootstrap line accepted. A Python master sends its whole worker source as one
/// string literal: the reference's is under 100 KB, our agent's about 30 KB.
pub const MAX_BOOTSTRAP_LINE: usize = 1 << 20;

/// A table of Rust functions served over the execnet protocol.
#[derive(Clone)]
pub struct Worker {
    functions: HashMap<String, Function>,
    limits: Limits,
    max_queued: usize,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            functions: HashMap::new(),
            limits: Limits::DEFAULT,
            max_queued: 256 << 20,
        }
    }
}

impl Worker {
    /// A worker with no functions.
    pub fn new() -> Worker {
        Worker::default()
    }

    /// Registers `f` under `name` (the `call_name` a master sends). The keyword
    /// arguments arrive as an `A`: a struct whose fields are their names, a map, or a
    /// [`Value`] (the dict as it came). Arguments that do not fit `A` fail the call with
    /// a `TypeError` the master sees; an `Err` text from `f` becomes the master's
    /// `RemoteError`.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Add { a: i64, b: i64 }
    /// let mut worker = execnet::worker::Worker::new();
    /// worker.register("add", |ch, args: Add| {
    ///     ch.send(&(args.a + args.b)).map_err(|e| e.to_string())
    /// });
    /// worker.register("echo", |ch, kwargs: execnet::Value| {
    ///     ch.send(&kwargs).map_err(|e| e.to_string())
    /// });
    /// assert_eq!(worker.names(), ["add", "echo"]);
    /// ```
    pub fn register<A, F>(&mut self, name: &str, f: F) -> &mut Self
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(&Channel, A) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let name_text = name.to_string();
        let prepare = move |kwargs: ValueRef<'_, '_>| -> std::result::Result<Call, String> {
            let args: A = if TypeId::of::<A>() == TypeId::of::<Value>() {
                let v: Box<dyn Any> = Box::new(Value::from_ref(&kwargs, StrConfig::GATEWAY));
                *v.downcast::<A>()
                    .map_err(|_| "RuntimeError: internal: argument type".to_string())?
            } else {
                execnet_core::serde::from_value(kwargs, StrConfig::GATEWAY).map_err(|e| {
                    format!("TypeError: {name_text}() got arguments it cannot take: {e}")
                })?
            };
            let f = f.clone();
            Ok(Box::new(move |ch: &Channel| f(ch, args)))
        };
        self.functions.insert(name.into(), Arc::new(prepare));
        self
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.functions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Accepts a Python master's bootstrap on `input` (it writes one line, the source of
    /// its own worker, which is not run here), answers `1`, then serves.
    pub fn serve_bootstrapped<R: Read + Send + 'static, W: Write + Send + 'static>(
        &self,
        input: R,
        mut output: W,
    ) -> Result<()> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut line = Vec::new();
        // Bounded: a peer that never sends the newline must not grow this process.
        (&mut input)
            .take(MAX_BOOTSTRAP_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(Error::Eof);
        }
        if line.last() != Some(&b'\n') && line.len() > MAX_BOOTSTRAP_LINE {
            return Err(Error::BadBootstrap(format!(
                "bootstrap line longer than {MAX_BOOTSTRAP_LINE} bytes without a newline \
                 (expected one line of Python source as a string literal)"
            )));
        }
        output.write_all(b"1")?;
        output.flush()?;
        self.serve(input, output)
    }

    /// Serves the protocol (after any handshake) until GATEWAY_TERMINATE or the end of
    /// input. Calls run on threads of their own; when the connection ends, their channels
    /// fail, so that a call blocked on its channel returns.
    pub fn serve<R: Read, W: Write + Send + 'static>(&self, mut input: R, output: W) -> Result<()> {
        let session = Session::new(SessionConfig {
            name: "worker".into(),
            role: Role::Worker,
            output: Box::new(output),
            limits: self.limits,
            max_queued: self.max_queued,
            overflow: crate::budget::Overflow::Wait,
            process: None,
            closer: None,
            span: None,
        });
        let on_exec =
            |s: &Arc<Session>, channel: i32, payload: &[u8]| self.exec(s, channel, payload);
        let ending = session.run_reader(&mut input, Some(&on_exec));
        let death = session.death_report(ending.kind, ending.cause.clone());
        session.die(death);
        // Whatever the reader queued last (a STATUS answer) still goes out.
        let _ = session.transmit(|_| Ok(()));
        match ending.kind {
            crate::DeathKind::Closed | crate::DeathKind::Terminated => Ok(()),
            _ => Err(Error::GatewayDied(
                session.death_report(ending.kind, ending.cause),
            )),
        }
    }

    fn exec(&self, session: &Arc<Session>, channel: i32, payload: &[u8]) {
        let mut nodes = Vec::new();
        let request = ExecRequest::decode(payload, &mut nodes, &self.limits);
        let (name, kwargs) = match request {
            Ok(r) => (r.call_name, r.kwargs),
            Err(e) => {
                let text = format!("RuntimeError: bad CHANNEL_EXEC request: {e}");
                session.queue_and_flush(|eng| eng.close(channel, Some(&text)).map(|_| ()));
                return;
            }
        };
        let function = name.and_then(|n| self.functions.get(n)).cloned();
        let Some(function) = function else {
            let text = match name {
                Some(n) => format!(
                    "RuntimeError: no Rust function {n:?} is registered in this worker (registered: {})",
                    self.names().join(", ")
                ),
                None => format!(
                    "RuntimeError: this is a Rust worker: it cannot run Python source; call one of its functions by name (registered: {})",
                    self.names().join(", ")
                ),
            };
            session.queue_and_flush(|eng| eng.close(channel, Some(&text)).map(|_| ()));
            return;
        };
        // A request without keyword arguments calls with an empty dict.
        let mut empty = [execnet_core::Node::EMPTY; 1];
        let kwargs = match kwargs {
            Some(m) => Ok(ValueRef::Dict(m)),
            None => execnet_core::decode::decode_internal(b"JQ", &mut empty, &Limits::TIGHT),
        };
        let call = match kwargs.map_err(|e| e.to_string()).and_then(|k| function(k)) {
            Ok(call) => call,
            Err(text) => {
                session.queue_and_flush(|eng| eng.close(channel, Some(&text)).map(|_| ()));
                return;
            }
        };
        let Some(st) = session.chan(channel) else {
            return;
        };
        let ch = Channel::new(session.clone(), channel, st);
        session.executing.fetch_add(1, Ordering::SeqCst);
        let running = session.clone();
        let spawned = thread::Builder::new()
            .name(format!("execnet-exec-{channel}"))
            .spawn(move || {
                let outcome = guarded(|| call(&ch));
                running.executing.fetch_sub(1, Ordering::SeqCst);
                let result = match outcome {
                    Ok(Ok(())) => ch.close(),
                    Ok(Err(text)) => ch.close_with_error(&text),
                    Err(p) => ch.close_with_error(&format!(
                        "RuntimeError: the Rust function panicked: {p}"
                    )),
                };
                // The master may be gone already; nothing is left to tell it.
                let _ = result;
            });
        if let Err(e) = spawned {
            session.executing.fetch_sub(1, Ordering::SeqCst);
            let text = format!("RuntimeError: cannot start a thread: {e}");
            session.queue_and_flush(|eng| eng.close(channel, Some(&text)).map(|_| ()));
        }
    }
}
