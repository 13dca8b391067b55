//! Groups of gateways: ids, parallel start, and termination with one deadline.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gateway::{Gateway, Options};
use crate::spec::{ExecModel, Spec};

/// A set of gateways with unique ids.
///
/// Dropping the group ends the gateways it still holds (within half a second): the group
/// owns its workers, as Python execnet's does at exit. A [`Gateway`] handle kept after
/// its group is dropped is then a handle to an ended gateway, whose calls fail with
/// [`Error::GatewayDied`]. [`Gateway::exit`] takes a gateway out of its group.
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
    inner: Arc<Members>,
}

/// What a group holds; gateways point back at it weakly, to leave it on exit.
pub(crate) struct Members {
    gateways: Mutex<Vec<Gateway>>,
    /// Ids given to gateways that are still starting: taken as much as a live gateway's.
    starting: Mutex<std::collections::BTreeSet<String>>,
    next: Mutex<usize>,
    options: Options,
    execmodel: Mutex<ExecModel>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Members {
    /// Takes `gateway` out of the group (it exited): that handle's gateway, not whichever
    /// has its id now.
    pub(crate) fn remove(&self, gateway: &Gateway) {
        lock(&self.gateways).retain(|g| !g.same(gateway));
    }
}

/// An id held for a gateway that is starting; given back when dropped, once the gateway
/// joined the group's list or failed to start.
struct Reserved<'g> {
    members: &'g Members,
    id: String,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        lock(&self.members.starting).remove(&self.id);
    }
}

impl Group {
    /// An empty group with default options.
    pub fn new() -> Group {
        Group::with_options(Options::default())
    }

    /// An empty group whose gateways start with `options`.
    pub fn with_options(options: Options) -> Group {
        Group {
            inner: Arc::new(Members {
                gateways: Mutex::new(Vec::new()),
                starting: Mutex::new(Default::default()),
                next: Mutex::new(0),
                options,
                execmodel: Mutex::new(ExecModel::Thread),
            }),
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
        *lock(&self.inner.execmodel) = execmodel;
    }

    /// The execution model of gateways whose spec names none.
    pub fn execmodel(&self) -> ExecModel {
        *lock(&self.inner.execmodel)
    }

    /// The id a gateway of `spec` gets in this group, written into the spec: its own
    /// `id=` when no live gateway of the group has it (an error otherwise), else the next
    /// free `gwN`, as the reference's `Group.allocate_id` does.
    ///
    /// ```
    /// let group = execnet::Group::new();
    /// let mut spec = execnet::Spec::parse("popen//python=python3")?;
    /// assert_eq!(group.allocate_id(&mut spec)?, "gw0");
    /// assert_eq!(spec.id.as_deref(), Some("gw0"));
    /// # Ok::<(), execnet::Error>(())
    /// ```
    pub fn allocate_id(&self, spec: &mut Spec) -> Result<String> {
        let starting = lock(&self.inner.starting);
        self.allocate_id_among(spec, &starting)
    }

    /// [`allocate_id`](Self::allocate_id), where ids of gateways still starting (and
    /// those in `starting`) are taken too.
    fn allocate_id_among(
        &self,
        spec: &mut Spec,
        starting: &std::collections::BTreeSet<String>,
    ) -> Result<String> {
        let taken = |id: &str| starting.contains(id) || self.get(id).is_some();
        if let Some(id) = &spec.id {
            if taken(id) {
                return Err(Error::DuplicateId(id.clone()));
            }
            return Ok(id.clone());
        }
        let mut next = lock(&self.inner.next);
        loop {
            let id = format!("gw{}", *next);
            *next += 1;
            if !taken(&id) {
                spec.id = Some(id.clone());
                return Ok(id);
            }
        }
    }

    /// Starts a gateway for `spec` and adds it to the group.
    pub fn makegateway(&self, spec: &str) -> Result<Gateway> {
        let mut spec = Spec::parse(spec)?;
        let reserved = self.reserve(std::slice::from_mut(&mut spec))?;
        let gw = self.open(spec)?;
        lock(&self.inner.gateways).push(gw.clone());
        drop(reserved);
        Ok(gw)
    }

    /// Gives each spec its id, in order, and holds the ids until the caller is done
    /// starting them: an id is taken while its gateway starts as much as once it runs, so
    /// concurrent starts never share one. Two specs naming the same id are refused, and a
    /// `gwN` given to one is never another's `id=`.
    fn reserve(&self, specs: &mut [Spec]) -> Result<Vec<Reserved<'_>>> {
        let mut starting = lock(&self.inner.starting);
        // A dead gateway gives its id up to a new one (a respawn with the same spec).
        lock(&self.inner.gateways).retain(Gateway::is_alive);
        let mut named = std::collections::BTreeSet::new();
        for spec in specs.iter() {
            if let Some(id) = &spec.id {
                if !named.insert(id.clone()) {
                    return Err(Error::DuplicateId(id.clone()));
                }
            }
        }
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs.iter_mut() {
            let id = if spec.id.is_some() {
                self.allocate_id_among(spec, &starting)?
            } else {
                loop {
                    let id = self.allocate_id_among(spec, &starting)?;
                    if !named.contains(&id) {
                        break id;
                    }
                    spec.id = None;
                }
            };
            ids.push(id);
        }
        for id in &ids {
            starting.insert(id.clone());
        }
        Ok(ids
            .into_iter()
            .map(|id| Reserved {
                members: &self.inner,
                id,
            })
            .collect())
    }

    /// Starts a gateway for a spec that has its id, not yet in the group's list.
    fn open(&self, mut spec: Spec) -> Result<Gateway> {
        let id = spec.id.clone().unwrap_or_default();
        spec.execmodel.get_or_insert(self.execmodel());
        let gw = match &spec.via {
            Some(via) => {
                let through = self
                    .get(via)
                    .ok_or_else(|| Error::NoSuchGateway(via.clone()))?;
                crate::via::open(&through, spec, &id, &self.inner.options)?
            }
            None => Gateway::open_with(spec, &id, &self.inner.options)?,
        };
        gw.join_group(Arc::downgrade(&self.inner));
        Ok(gw)
    }

    /// Starts gateways for all `specs` in parallel; returns them in the same order, or
    /// the first error (the others that started stay in the group). Their ids are given
    /// and they join the group in that order too, whichever started first. A `via=` must
    /// name a gateway already in the group: one started by the same call is not yet
    /// ([`Error::NoSuchGateway`]); start the hop first.
    pub fn makegateways<S: AsRef<str> + Sync>(&self, specs: &[S]) -> Result<Vec<Gateway>> {
        // Ids are given in spec order before anything starts, as one makegateway after
        // another would give them.
        let mut parsed = specs
            .iter()
            .map(|spec| Spec::parse(spec.as_ref()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let reserved = self.reserve(&mut parsed)?;
        let results: Vec<Result<Gateway>> = thread::scope(|s| {
            let started: Vec<_> = parsed
                .into_iter()
                .map(|spec| s.spawn(move || self.open(spec)))
                .collect();
            started
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|p| Err(Error::Panicked(crate::session::panic_text(&*p))))
                })
                .collect()
        });
        let mut members = lock(&self.inner.gateways);
        for gw in results.iter().flatten() {
            members.push(gw.clone());
        }
        drop(members);
        drop(reserved);
        results.into_iter().collect()
    }

    /// The live gateway with this id.
    pub fn get(&self, id: &str) -> Option<Gateway> {
        lock(&self.inner.gateways)
            .iter()
            .find(|g| g.id() == id && g.is_alive())
            .cloned()
    }

    /// All gateways, in start order.
    pub fn gateways(&self) -> Vec<Gateway> {
        lock(&self.inner.gateways).clone()
    }

    /// Runs `source` on every gateway: their channels as one [`MultiChannel`].
    ///
    /// [`MultiChannel`]: crate::MultiChannel
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
        let gws = std::mem::take(&mut *lock(&self.inner.gateways));
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

/// The group [`makegateway`] starts gateways in, as Python execnet's `default_group`.
/// It lives as long as the program; its workers end when the program does (they see
/// their input close).
pub fn default_group() -> &'static Group {
    static DEFAULT: std::sync::OnceLock<Group> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(Group::new)
}

/// Starts a gateway in the [`default_group`], as `execnet.makegateway(spec)` does.
///
/// ```no_run
/// let gw = execnet::makegateway("popen//python=python3")?;
/// assert_eq!(gw.remote_exec("channel.send(6 * 7)")?.receive::<i64>()?, 42);
/// # Ok::<(), execnet::Error>(())
/// ```
pub fn makegateway(spec: &str) -> Result<Gateway> {
    default_group().makegateway(spec)
}
