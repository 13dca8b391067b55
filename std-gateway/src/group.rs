//! Groups of gateways: ids, parallel start, and termination with one deadline.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gateway::{Gateway, Options};
use crate::spec::{ExecModel, Spec};

/// A set of gateways with unique ids.
///
/// ```no_run
/// let group = execnet::Group::new();
/// let gw = group.makegateway("popen//python=python3")?;
/// let ch = gw.remote_exec("channel.send(channel.receive() * 2)")?;
/// ch.send(&21)?;
/// assert_eq!(ch.receive::<i64>()?, 42);
/// group.terminate(std::time::Duration::from_secs(5));
/// # Ok::<(), execnet::Error>(())
/// ```
pub struct Group {
    gateways: Mutex<Vec<Gateway>>,
    next: Mutex<usize>,
    options: Options,
    execmodel: Mutex<ExecModel>,
}

impl Group {
    /// An empty group with default options.
    pub fn new() -> Group {
        Group::with_options(Options::default())
    }

    /// An empty group whose gateways start with `options`.
    pub fn with_options(options: Options) -> Group {
        Group {
            gateways: Mutex::new(Vec::new()),
            next: Mutex::new(0),
            options,
            execmodel: Mutex::new(ExecModel::Thread),
        }
    }

    /// An empty group whose gateways run remote code under `execmodel` unless their spec
    /// names one (as `execnet.Group(execmodel=...)`).
    ///
    /// ```no_run
    /// use execnet::{spec::ExecModel, Group};
    /// let group = Group::with_execmodel(ExecModel::MainThreadOnly);
    /// let gw = group.makegateway("popen//python=python3")?;
    /// assert_eq!(gw.remote_status()?.execmodel, "main_thread_only");
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn with_execmodel(execmodel: ExecModel) -> Group {
        let group = Group::new();
        group.set_execmodel(execmodel);
        group
    }

    /// Sets the execution model of gateways started from now on without `execmodel=`.
    pub fn set_execmodel(&self, execmodel: ExecModel) {
        *self.execmodel.lock().unwrap_or_else(|e| e.into_inner()) = execmodel;
    }

    /// The execution model of gateways whose spec names none.
    pub fn execmodel(&self) -> ExecModel {
        *self.execmodel.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn allocate_id(&self, spec: &Spec) -> Result<String> {
        let taken = |id: &str| self.get(id).is_some();
        if let Some(id) = &spec.id {
            if taken(id) {
                return Err(Error::Other(format!("a gateway with id {id:?} exists")));
            }
            return Ok(id.clone());
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let id = format!("gw{}", *next);
            *next += 1;
            if !taken(&id) {
                return Ok(id);
            }
        }
    }

    /// Starts a gateway for `spec` and adds it to the group.
    pub fn makegateway(&self, spec: &str) -> Result<Gateway> {
        let mut spec = Spec::parse(spec)?;
        let id = self.allocate_id(&spec)?;
        spec.execmodel.get_or_insert(self.execmodel());
        // The agent shows it to remote code as `channel.gateway.id` (`ID-worker`).
        spec.id.get_or_insert_with(|| id.clone());
        let gw = match &spec.via {
            Some(via) => {
                let through = self.get(via).ok_or_else(|| {
                    Error::Other(format!("via={via}: no gateway with that id in the group"))
                })?;
                crate::via::open(&through, spec, &id, &self.options)?
            }
            None => Gateway::open_with(spec, &id, &self.options)?,
        };
        self.gateways
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(gw.clone());
        Ok(gw)
    }

    /// Starts gateways for all `specs` in parallel; returns them in the same order, or
    /// the first error (the others that started stay in the group).
    pub fn makegateways<S: AsRef<str>>(&self, specs: &[S]) -> Result<Vec<Gateway>> {
        let results: Arc<Mutex<Vec<Option<Result<Gateway>>>>> =
            Arc::new(Mutex::new((0..specs.len()).map(|_| None).collect()));
        thread::scope(|s| {
            for (i, spec) in specs.iter().enumerate() {
                let results = results.clone();
                let spec = spec.as_ref();
                s.spawn(move || {
                    let r = self.makegateway(spec);
                    if let Some(slot) = results.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i)
                    {
                        *slot = Some(r);
                    }
                });
            }
        });
        let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Other("gateway start did not finish".into()))))
            .collect()
    }

    /// The gateway with this id.
    pub fn get(&self, id: &str) -> Option<Gateway> {
        self.gateways
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|g| g.id() == id)
            .cloned()
    }

    /// All gateways, in start order.
    pub fn gateways(&self) -> Vec<Gateway> {
        self.gateways
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A multi-channel: runs `source` on every gateway.
    pub fn remote_exec(&self, source: &str) -> Result<crate::multi::MultiChannel> {
        let channels = self
            .gateways()
            .iter()
            .map(|g| g.remote_exec(source))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::multi::MultiChannel::new(channels))
    }

    /// Ends every gateway in parallel, all within `timeout` (half of it for the workers
    /// to exit by themselves, the rest for `SIGTERM`, then `SIGKILL`), and removes them
    /// from the group.
    pub fn terminate(&self, timeout: Duration) {
        let gws = std::mem::take(&mut *self.gateways.lock().unwrap_or_else(|e| e.into_inner()));
        thread::scope(|s| {
            for gw in &gws {
                s.spawn(move || gw.exit_timeout(timeout / 2));
            }
        });
    }
}

impl Default for Group {
    fn default() -> Self {
        Group::new()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.terminate(Duration::from_millis(500));
    }
}
