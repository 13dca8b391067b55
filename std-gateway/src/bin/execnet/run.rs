//! The commands that start gateways (`exec`, `info`, and `rsync` through [`Session`]):
//! one deadline for the whole command, what the command is doing when it runs out, and
//! the teardown of every gateway on a signal, a timeout or the end.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use execnet::core::repr::ReprMode;
use execnet::core::{StrConfig, Value};
use execnet::OutputMode;
use execnet::{Error, Gateway, Group, Options};

use crate::literal::{self, ParseMode};
use crate::{output_failed, Fail, Verbosity};

#[derive(clap::Args)]
pub struct ExecArgs {
    /// Gateway spec, e.g. `popen//python=python3`.
    spec: String,
    /// Python source to run (or use -f).
    #[arg(allow_hyphen_values = true)]
    code: Option<String>,
    /// Read the source from this file (`-` for stdin).
    #[arg(short = 'f', long = "file", conflicts_with = "code")]
    file: Option<PathBuf>,
    /// A Python literal to send to the code before reading its output (repeatable).
    #[arg(long = "send", value_name = "VALUE", allow_hyphen_values = true)]
    send: Vec<String>,
    /// Print values as JSON lines.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds, whatever the command is doing: starting the
    /// gateway, setting it up, sending, or waiting for values. Status 3.
    #[arg(long, value_name = "SECONDS", value_parser = crate::seconds, allow_hyphen_values = true)]
    timeout: Option<Duration>,
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Gateway specs.
    #[arg(required = true)]
    specs: Vec<String>,
    /// Print a JSON array, one object per spec (failures carry `"error"`).
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds (status 3); gateways not ready by then fail.
    #[arg(long, value_name = "SECONDS", value_parser = crate::seconds, allow_hyphen_values = true)]
    timeout: Option<Duration>,
}

/// Groups of the running command, ended by a signal, the timeout, or the end.
static LIVE_GROUPS: Mutex<Vec<Arc<Group>>> = Mutex::new(Vec::new());
/// What the command is doing, for the timeout's message.
static PHASE: Mutex<String> = Mutex::new(String::new());
/// Set when `--timeout` ran out: every error after it is reported as the timeout.
static TIMED_OUT: AtomicBool = AtomicBool::new(false);
/// The timeout's message, fixed when it ran out.
static TIMEOUT_MESSAGE: Mutex<String> = Mutex::new(String::new());
/// Held by whoever ends the process: the main thread's report, the signal thread, or
/// the timeout's last resort; the others then wait for the exit.
static EXITING: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records what the command does now (said when the timeout runs out).
pub fn phase(what: impl Into<String>) {
    *lock(&PHASE) = what.into();
}

/// The command's deadline, if it has one.
#[derive(Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// Starts the clock for `--timeout` (and the watchdog that enforces it).
    pub fn start(timeout: Option<Duration>) -> Deadline {
        let at = timeout.and_then(|t| Instant::now().checked_add(t));
        if let (Some(at), Some(t)) = (at, timeout) {
            arm_watchdog(at, t);
        }
        Deadline(at)
    }

    /// Time left, or `None` without a deadline.
    pub fn left(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Gateway options whose own waits (connecting, the handshake, the setup of
    /// `chdir=`/`env:`) end by the deadline, so that a gateway that has not started by
    /// then is ended by the library, which still holds its process.
    pub fn options(self, mut options: Options) -> Options {
        if let Some(left) = self.left() {
            let left = left.max(Duration::from_millis(1));
            options.startup_timeout = options.startup_timeout.min(left);
            options.connect_timeout = options.connect_timeout.min(left);
        }
        options
    }
}

/// After the deadline: ends every gateway (which unblocks whatever waits on them), lets
/// the main thread report, and exits by itself if it does not within a moment.
fn arm_watchdog(at: Instant, limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("execnet-timeout".into())
        .spawn(move || {
            let left = at.saturating_duration_since(Instant::now());
            std::thread::sleep(left);
            let what = lock(&PHASE).clone();
            *lock(&TIMEOUT_MESSAGE) = format!(
                "timed out after {} s{}",
                fmt_secs(limit),
                if what.is_empty() {
                    String::new()
                } else {
                    format!(" while {what}")
                }
            );
            TIMED_OUT.store(true, Ordering::SeqCst);
            end_all_gateways(Duration::from_millis(500));
            std::thread::sleep(Duration::from_millis(1500));
            let _exiting = lock(&EXITING);
            crate::run::clear_spinner();
            eprintln!("execnet: {}", lock(&TIMEOUT_MESSAGE));
            std::process::exit(3);
        });
    if spawned.is_err() {
        eprintln!("execnet: cannot start the timeout's thread; --timeout is not enforced");
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

/// Held while gateways are being ended, so that whoever comes second waits until the
/// first has finished (the process must not exit with a worker half-ended).
static ENDING: Mutex<()> = Mutex::new(());

/// Ends every gateway of every live group, all within about `grace`.
fn end_all_gateways(grace: Duration) {
    let _ending = lock(&ENDING);
    let groups = std::mem::take(&mut *lock(&LIVE_GROUPS));
    std::thread::scope(|s| {
        for g in &groups {
            s.spawn(move || g.terminate(grace));
        }
    });
}

/// A group that a signal, the timeout and the end of the command all end.
pub fn live_group(options: Options) -> Arc<Group> {
    let group = Arc::new(Group::with_options(options));
    lock(&LIVE_GROUPS).push(group.clone());
    group
}

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread (call before any thread starts;
/// workers get a clean mask, as std resets it for children) and waits for them in one
/// thread that ends every gateway, then exits with 128 + the signal's number.
pub fn tear_down_on_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("execnet-signals".into())
        .spawn(move || {
            let Ok(sig) = set.wait() else { return };
            let _exiting = lock(&EXITING);
            clear_spinner();
            end_all_gateways(Duration::from_secs(2));
            eprintln!("execnet: {}: gateways ended", sig.as_str());
            std::process::exit(128 + sig as i32);
        });
}

/// Ends what is left and turns the command's result into the exit status: the timeout's
/// message when it ran out, else the command's own.
pub fn finish(result: Result<(), Fail>) -> std::process::ExitCode {
    use std::process::ExitCode;
    clear_spinner();
    end_all_gateways(Duration::from_millis(500));
    let _exiting = lock(&EXITING);
    if TIMED_OUT.load(Ordering::SeqCst) && result.as_ref().is_err_and(|f| f.0 != 0) {
        eprintln!("execnet: {}", lock(&TIMEOUT_MESSAGE));
        return ExitCode::from(3);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("execnet: {}", msg.lines().collect::<Vec<_>>().join(" | "));
            }
            ExitCode::from(code)
        }
    }
}

static SPINNER: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// A spinner on stderr while gateways start (Jython takes seconds), on a terminal only.
pub fn spinner(v: Verbosity, message: String) {
    if !v.animate() {
        return;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    *lock(&SPINNER) = Some(bar);
}

/// Changes the spinner's message, if there is one.
pub fn spinner_message(message: String) {
    if let Some(bar) = &*lock(&SPINNER) {
        bar.set_message(message);
    }
}

/// Removes the spinner, if there is one, before anything else is printed.
pub fn clear_spinner() {
    if let Some(bar) = lock(&SPINNER).take() {
        bar.finish_and_clear();
    }
}

/// Starts a gateway, with the spinner; a failure to start is status 3 (2 for a bad
/// spec), and names the spec. An exception in the setup of `chdir=` or `env:` is a
/// failure to start, not the user's code raising.
pub fn start_gateway(group: &Group, spec: &str) -> Result<Gateway, Fail> {
    group
        .makegateway(spec)
        .map_err(|e| startup_failure(spec, e))
}

fn startup_failure(spec: &str, e: Error) -> Fail {
    match e {
        Error::Spec(_) => Fail::usage(e.to_string()),
        Error::Remote(r) => Fail(
            3,
            format!(
                "{spec}: the worker started, but applying chdir= or env: failed: {}",
                r.summary()
            ),
        ),
        e => Fail(3, format!("{spec}: {e}")),
    }
}

/// Prints one value, as a Python literal or a JSON line.
fn print_value(out: &mut impl Write, v: &Value, json: bool) -> std::io::Result<()> {
    if json {
        crate::json::write(&mut *out, v)?;
    } else {
        crate::codec::write_literal(&mut *out, v, ReprMode::Py3(StrConfig::GATEWAY))?;
    }
    out.write_all(b"\n")
}

/// The bound on values received and not yet printed: a printer needs no more, and the
/// worker waits (backpressure) while the terminal catches up.
const EXEC_QUEUE_BOUND: usize = 16 << 20;

pub fn cmd_exec(a: ExecArgs, v: Verbosity) -> Result<(), Fail> {
    tear_down_on_signals();
    let deadline = Deadline::start(a.timeout);
    let source = match (&a.code, &a.file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) if f.as_os_str() == "-" => {
            let raw = crate::read_input(None)?;
            String::from_utf8(raw)
                .map_err(|_| Fail::usage("the code on stdin is not UTF-8 text"))?
        }
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| Fail::usage(format!("cannot read {}: {e}", f.display())))?,
        (None, None) => return Err(Fail::usage("give the code as an argument or with -f FILE")),
    };
    let sends = a
        .send
        .iter()
        .map(|t| {
            literal::parse(t, ParseMode::Py3)
                .map_err(|e| Fail::usage(format!("bad --send value {t:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = deadline.options(
        Options::new()
            .output(OutputMode::Forward)
            .max_queued_bytes(EXEC_QUEUE_BOUND),
    );
    let start = Instant::now();
    let group = live_group(options);
    phase(format!("starting the gateway {}", a.spec));
    spinner(v, format!("starting {}", a.spec));
    let started = start_gateway(&group, &a.spec);
    clear_spinner();
    let gw = started?;
    if v.timings() {
        eprintln!(
            "execnet: {} started in {:.3} s",
            gw.id(),
            start.elapsed().as_secs_f64()
        );
    }
    phase("sending the code");
    let ch = gw.remote_exec(&source)?;
    for (i, value) in sends.iter().enumerate() {
        phase(format!("sending --send value {} of {}", i + 1, sends.len()));
        ch.send(value)?;
    }
    // Nothing more will be sent: code that iterates over its channel ends.
    ch.send_last_message()?;
    phase("waiting for values from the remote code");
    let mut out = crate::stdout();
    loop {
        // Values that are already here go out together; before waiting for more, what
        // was printed is flushed, so that each line shows as soon as it can.
        let next = match ch.receive_with_config::<Value>(Some(Duration::ZERO)) {
            Err(Error::Timeout(_)) => {
                out.flush().map_err(output_failed)?;
                ch.receive_with_config::<Value>(deadline.left())
            }
            other => other,
        };
        match next {
            Ok((value, _)) => print_value(&mut out, &value, a.json).map_err(output_failed)?,
            Err(Error::Eof) => break,
            Err(Error::Remote(r)) => {
                out.flush().map_err(output_failed)?;
                eprint!("{}", r.traceback);
                if !r.traceback.ends_with('\n') {
                    eprintln!();
                }
                return Err(Fail(1, String::new()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush().map_err(output_failed)?;
    group.terminate(Duration::from_secs(5));
    if v.timings() {
        eprintln!("execnet: done in {:.3} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// One row of `info`.
struct Row {
    spec: String,
    result: Result<(execnet::RInfo, f64), Fail>,
}

pub fn cmd_info(a: InfoArgs, v: Verbosity) -> Result<(), Fail> {
    tear_down_on_signals();
    let deadline = Deadline::start(a.timeout);
    let group = live_group(deadline.options(Options::default()));
    let group = &*group;
    phase(format!(
        "starting {} gateways and asking each for its details",
        a.specs.len()
    ));
    spinner(v, format!("starting {} gateways", a.specs.len()));
    let done = std::sync::atomic::AtomicUsize::new(0);
    let rows: Vec<Row> = std::thread::scope(|s| {
        let handles: Vec<_> = a
            .specs
            .iter()
            .map(|spec| {
                let done = &done;
                let total = a.specs.len();
                s.spawn(move || {
                    let t = Instant::now();
                    let result = start_gateway(group, spec).and_then(|gw| {
                        let elapsed = t.elapsed().as_secs_f64();
                        let info = gw.rinfo().map_err(|e| Fail(3, format!("{spec}: {e}")))?;
                        Ok((info, elapsed))
                    });
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    spinner_message(format!("{n} of {total} gateways ready"));
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&a.specs)
            .map(|(h, spec)| Row {
                spec: spec.clone(),
                result: h
                    .join()
                    .unwrap_or_else(|_| Err(Fail(3, format!("{spec}: a thread panicked")))),
            })
            .collect()
    });
    clear_spinner();
    group.terminate(Duration::from_secs(5));
    let mut out = crate::stdout();
    let written = if a.json {
        write_info_json(&mut out, &rows)
    } else {
        write_info_table(&mut out, &rows)
    };
    written.and_then(|()| out.flush()).map_err(output_failed)?;
    let mut failed: Option<u8> = None;
    for row in &rows {
        if let Err(f) = &row.result {
            if !TIMED_OUT.load(Ordering::SeqCst) {
                eprintln!("execnet: {}", f.1);
            }
            failed.get_or_insert(f.0);
        }
    }
    if v.timings() {
        eprintln!("execnet: {} gateways queried", rows.len());
    }
    match failed {
        Some(code) => Err(Fail(code, String::new())),
        None => Ok(()),
    }
}

fn version(i: &execnet::RInfo) -> String {
    let (ma, mi, pa, ..) = i.version_info;
    format!("{ma}.{mi}.{pa}")
}

fn write_info_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let mut table = vec![[
        "spec".to_string(),
        "executable".into(),
        "version".into(),
        "platform".into(),
        "pid".into(),
        "cwd".into(),
        "startup".into(),
    ]];
    for row in rows {
        if let Ok((i, secs)) = &row.result {
            table.push([
                row.spec.clone(),
                i.executable.clone(),
                version(i),
                i.platform.clone(),
                i.pid.to_string(),
                i.cwd.clone(),
                format!("{secs:.3}s"),
            ]);
        }
    }
    if table.len() == 1 {
        return Ok(());
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn write_info_json(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    use serde_json::json;
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| match &row.result {
            Ok((i, secs)) => json!({
                "spec": row.spec,
                "executable": i.executable,
                "version": version(i),
                "version_info": [i.version_info.0, i.version_info.1, i.version_info.2,
                                 i.version_info.3, i.version_info.4],
                "platform": i.platform,
                "pid": i.pid,
                "cwd": i.cwd,
                "startup_seconds": secs,
            }),
            Err(f) => json!({ "spec": row.spec, "error": f.1 }),
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &items)?;
    out.write_all(b"\n")
}
