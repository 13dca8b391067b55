//! `execnet`: run code in Python workers, inspect interpreters, and convert between
//! execnet's wire format and Python literals.
//!
//! Exit statuses (stable, for scripts):
//! - 0: success;
//! - 1: the remote code raised an exception (`exec`);
//! - 2: bad input: usage, spec, malformed bytes, malformed literal;
//! - 3: a gateway could not be started or was lost (missing interpreter, dead worker);
//! - 4: output could not be written.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use execnet::core::{decode, encode, Envelope, Limits, StrConfig, Value, Version};
use execnet::literal::{self, ParseMode, ReprMode};
use execnet::OutputMode;
use execnet::{Error, Group, Options};

#[derive(Parser)]
#[command(name = "execnet", version, about = "Run code in Python workers of any generation, and read or write execnet's wire format", long_about = None)]
struct Cli {
    /// Progress and timing on stderr (default: only when stderr is a terminal).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a gateway, run code in it, print every value it sends.
    ///
    /// The code sees `channel`; each value it sends is printed on its own line (as a
    /// Python literal, or JSON with --json). If the code raises, its traceback goes to
    /// stderr and the exit status is 1.
    Exec(ExecArgs),
    /// Start gateways in parallel and print a table of their interpreters.
    Info(InfoArgs),
    /// Read `dumps` bytes and print the value as a Python literal (or JSON).
    Decode(DecodeArgs),
    /// Read a Python literal and write its `dumps` bytes.
    Encode(EncodeArgs),
    /// Serve registered Rust functions over the protocol on stdin/stdout (after a
    /// bootstrap line, as a Python master sends it) or on a TCP socket.
    ///
    /// Functions: echo(**kwargs) sends its kwargs back; mirror() sends back every value
    /// it receives; add(a, b) sends a + b; fail(message) raises; info() sends the
    /// worker's pid and version. A Python master reaches them with
    /// `execnet.makegateway("popen//python=/path/to/execnet")` and
    /// `gw.remote_exec(echo, x=1)` where `echo` is any Python function of that name.
    Worker(WorkerArgs),
    /// Accept TCP connections and start a worker for each, after authentication.
    ///
    /// Binds loopback unless told otherwise. Requires a shared secret by default
    /// (--secret-file, at least 16 random bytes in a file only its owner can read; clients
    /// use `socket=HOST:PORT//secret=FILE`): each session runs the Noise handshake
    /// NNpsk0 over it and is then encrypted and integrity-protected, so that a client
    /// without the secret, or a party on the path, can neither run code nor read or alter
    /// a session. Connections get --handshake-timeout to authenticate, and the number of
    /// connections is capped. --insecure-no-auth serves the reference's bootstrap from
    /// Python masters that cannot authenticate (it runs anyone's code; it warns).
    ///
    /// Prints `listening on HOST:PORT` on stdout and nothing else there: the log, and
    /// whatever the workers print, goes to stderr.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8888")]
    bind: String,
    /// File with the shared secret (at least 16 bytes; mode 600 or stricter).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "insecure_no_auth"
    )]
    secret_file: Option<PathBuf>,
    /// Accept connections without authentication or encryption: anyone who can connect
    /// runs code as this user.
    #[arg(long, conflicts_with = "secret_file")]
    insecure_no_auth: bool,
    /// Python interpreter for the workers.
    #[arg(long, default_value = "python3", conflicts_with = "rust_worker")]
    python: String,
    /// Serve the built-in Rust functions instead of Python.
    #[arg(long)]
    rust_worker: bool,
    /// Exit after serving this many authenticated connections (connections that never
    /// authenticate do not count).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds a connection has to authenticate (in the insecure mode: to send its
    /// first byte) before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = execnet::serve::DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64())]
    handshake_timeout: f64,
    /// Most connections authenticating at once; one more is closed as soon as accepted.
    #[arg(long, value_name = "N", default_value_t = execnet::serve::DEFAULT_MAX_UNAUTHENTICATED, value_parser = at_least_one)]
    max_unauthenticated: usize,
    /// Most connections open at once, authenticated or not; one more is closed as soon
    /// as accepted.
    #[arg(long, value_name = "N", default_value_t = execnet::serve::DEFAULT_MAX_CONCURRENT, value_parser = at_least_one)]
    max_concurrent: usize,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of at least 1, found {text:?}"
        )),
    }
}

#[derive(clap::Args)]
struct WorkerArgs {
    /// Accept one TCP connection on this address instead of using stdin/stdout.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

#[derive(clap::Args)]
struct ExecArgs {
    /// Gateway spec, e.g. `popen//python=python3`.
    spec: String,
    /// Python source to run (or use -f).
    #[arg(allow_hyphen_values = true)]
    code: Option<String>,
    /// Read the source from this file.
    #[arg(short = 'f', long = "file", conflicts_with = "code")]
    file: Option<PathBuf>,
    /// A Python literal to send to the code before reading its output (repeatable).
    #[arg(long = "send", value_name = "VALUE", allow_hyphen_values = true)]
    send: Vec<String>,
    /// Print values as JSON lines.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// Gateway specs.
    #[arg(required = true)]
    specs: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum VersionArg {
    #[value(name = "1")]
    V1,
    #[value(name = "2")]
    V2,
}

#[derive(clap::Args)]
struct DecodeArgs {
    /// Input file, or `-` for stdin (default).
    input: Option<PathBuf>,
    /// The input is a channel payload (no version byte).
    #[arg(long)]
    internal: bool,
    /// Print JSON instead of a Python literal.
    #[arg(long)]
    json: bool,
    /// Load Python 2 `str` as text (latin-1), as `loads(py2str_as_py3str=True)`.
    #[arg(long)]
    py2str_as_py3str: bool,
    /// Load Python 3 `str` as bytes, as `loads(py3str_as_py2str=True)`.
    #[arg(long)]
    py3str_as_py2str: bool,
    /// Print as Python 2.7 would (`u'..'`, `123L`).
    #[arg(long)]
    py2: bool,
}

#[derive(clap::Args)]
struct EncodeArgs {
    /// The literal, or `-` for stdin (default).
    #[arg(allow_hyphen_values = true)]
    expr: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Format version byte to write.
    #[arg(long, value_enum, default_value = "2")]
    version: VersionArg,
    /// Python 2 kinds: plain strings are `str` (bytes), `u'..'` is unicode, `1L` is long.
    #[arg(long)]
    py2: bool,
    /// Write a channel payload (no version byte).
    #[arg(long)]
    internal: bool,
}

/// A failure with its exit status.
struct Fail(u8, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let code = match &e {
            Error::Remote(_) => 1,
            Error::Spec(_) | Error::Decode(_) | Error::Encode(_) => 2,
            _ => 3,
        };
        Fail(code, e.to_string())
    }
}

fn read_input(path: Option<&PathBuf>) -> Result<Vec<u8>, Fail> {
    let mut data = Vec::new();
    match path {
        Some(p) if p.as_os_str() != "-" => {
            data = std::fs::read(p)
                .map_err(|e| Fail(2, format!("cannot read {}: {e}", p.display())))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut data)
                .map_err(|e| Fail(2, format!("cannot read stdin: {e}")))?;
        }
    }
    Ok(data)
}

fn write_out(bytes: &[u8]) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| Fail(4, format!("cannot write output: {e}")))
}

fn show(v: &Value, json: bool) -> String {
    if json {
        execnet::json::to_json(v).to_string()
    } else {
        literal::repr(v, ReprMode::Py3(StrConfig::GATEWAY))
    }
}

/// Groups of the running command, ended when SIGINT, SIGTERM or SIGHUP arrives.
static LIVE_GROUPS: std::sync::Mutex<Vec<std::sync::Arc<Group>>> =
    std::sync::Mutex::new(Vec::new());
/// Set once a signal is being handled: the main thread then leaves the exit to it.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A group that the signal handler ends with the command.
fn live_group(options: Options) -> std::sync::Arc<Group> {
    let group = std::sync::Arc::new(Group::with_options(options));
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(group.clone());
    group
}

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread (call before any thread starts;
/// workers get a clean mask, as std resets it for children) and waits for them in one
/// thread that ends every gateway, then exits with 128 + the signal's number.
fn tear_down_on_signals() {
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
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            let groups =
                std::mem::take(&mut *LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner()));
            for g in &groups {
                g.terminate(Duration::from_secs(2));
            }
            eprintln!("execnet: {}: gateways ended", sig.as_str());
            std::process::exit(128 + sig as i32);
        });
}

fn cmd_exec(a: ExecArgs, verbose: bool) -> Result<(), Fail> {
    let source = match (&a.code, &a.file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| Fail(2, format!("cannot read {}: {e}", f.display())))?,
        (None, None) => {
            return Err(Fail(
                2,
                "give the code as an argument or with -f FILE".into(),
            ))
        }
    };
    let sends = a
        .send
        .iter()
        .map(|t| {
            literal::parse(t, ParseMode::Py3)
                .map_err(|e| Fail(2, format!("bad --send value {t:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = Options::new().output(OutputMode::Forward);
    let start = Instant::now();
    let group = live_group(options);
    let gw = group.makegateway(&a.spec)?;
    if verbose {
        eprintln!(
            "execnet: {} started in {:.3} s",
            gw.id(),
            start.elapsed().as_secs_f64()
        );
    }
    let ch = gw.remote_exec(&source)?;
    for v in &sends {
        ch.send(v)?;
    }
    // Nothing more will be sent: code that iterates over its channel ends.
    ch.send_last_message()?;
    let deadline = a
        .timeout
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut stdout = std::io::stdout().lock();
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match ch.receive_with_config::<Value>(left) {
            Ok((v, _)) => {
                writeln!(stdout, "{}", show(&v, a.json))
                    .map_err(|e| Fail(4, format!("cannot write output: {e}")))?;
            }
            Err(Error::Eof) => break,
            Err(Error::Remote(r)) => {
                let _ = stdout.flush();
                eprint!("{}", r.traceback);
                if !r.traceback.ends_with('\n') {
                    eprintln!();
                }
                return Err(Fail(1, String::new()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let _ = stdout.flush();
    group.terminate(Duration::from_secs(5));
    if verbose {
        eprintln!("execnet: done in {:.3} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

fn cmd_info(a: InfoArgs, verbose: bool) -> Result<(), Fail> {
    let group = live_group(Options::default());
    let group = &*group;
    let rows: Vec<Result<(String, execnet::RInfo, f64), Fail>> = std::thread::scope(|s| {
        let handles: Vec<_> = a
            .specs
            .iter()
            .map(|spec| {
                s.spawn(move || {
                    let t = Instant::now();
                    let gw = group.makegateway(spec).map_err(Fail::from)?;
                    let elapsed = t.elapsed().as_secs_f64();
                    let info = gw.rinfo().map_err(Fail::from)?;
                    Ok((spec.clone(), info, elapsed))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Fail(3, "a gateway thread panicked".into())))
            })
            .collect()
    });
    group.terminate(Duration::from_secs(5));
    let mut failed: Option<Fail> = None;
    let mut table = vec![[
        "spec".to_string(),
        "executable".into(),
        "version".into(),
        "platform".into(),
        "pid".into(),
        "cwd".into(),
        "startup".into(),
    ]];
    for (spec, row) in a.specs.iter().zip(rows) {
        match row {
            Ok((spec, i, secs)) => {
                let (ma, mi, pa, ..) = i.version_info;
                table.push([
                    spec,
                    i.executable,
                    format!("{ma}.{mi}.{pa}"),
                    i.platform,
                    i.pid.to_string(),
                    i.cwd,
                    format!("{:.3}s", secs),
                ]);
            }
            Err(f) => {
                eprintln!("execnet: {spec}: {}", f.1);
                failed.get_or_insert(f);
            }
        }
    }
    if table.len() > 1 {
        let widths: Vec<usize> = (0..7)
            .map(|c| {
                table
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        write_out(out.as_bytes())?;
    }
    if verbose {
        eprintln!("execnet: {} gateways queried", table.len() - 1);
    }
    match failed {
        Some(f) => Err(Fail(f.0, String::new())),
        None => Ok(()),
    }
}

fn cmd_decode(a: DecodeArgs) -> Result<(), Fail> {
    let data = read_input(a.input.as_ref())?;
    let config = StrConfig::new(a.py2str_as_py3str, a.py3str_as_py2str);
    let mut nodes = Vec::new();
    let v = if a.internal {
        decode::decode_internal(&data, &mut nodes, &Limits::DEFAULT)
    } else {
        decode::decode_dumps(&data, &mut nodes, &Limits::DEFAULT).map(|(_, v)| v)
    }
    .map_err(|e| Fail(2, format!("malformed input: {e}")))?;
    let value = Value::from_ref(&v, config);
    let text = if a.json {
        execnet::json::to_json(&value).to_string()
    } else if a.py2 {
        literal::repr(&value, ReprMode::Py2)
    } else {
        literal::repr(&value, ReprMode::Py3(config))
    };
    write_out(format!("{text}\n").as_bytes())
}

fn cmd_encode(a: EncodeArgs) -> Result<(), Fail> {
    let text = match a.expr.as_deref() {
        Some(e) if e != "-" => e.to_string(),
        _ => {
            let raw = read_input(None)?;
            String::from_utf8(raw).map_err(|_| Fail(2, "input is not UTF-8 text".into()))?
        }
    };
    let mode = if a.py2 {
        ParseMode::Py2
    } else {
        ParseMode::Py3
    };
    let value =
        literal::parse(&text, mode).map_err(|e| Fail(2, format!("malformed literal: {e}")))?;
    let envelope = if a.internal {
        Envelope::Internal
    } else {
        Envelope::Dumps(match a.version {
            VersionArg::V1 => Version::V1,
            VersionArg::V2 => Version::V2,
        })
    };
    let bytes =
        encode::to_vec(&value, envelope).map_err(|e| Fail(2, format!("cannot encode: {e}")))?;
    match &a.output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| Fail(4, format!("cannot write {}: {e}", path.display()))),
        None => write_out(&bytes),
    }
}

fn builtin_worker() -> execnet::worker::Worker {
    let mut w = execnet::worker::Worker::new();
    w.register("echo", |ch, kwargs: Value| {
        ch.send(&kwargs).map_err(|e| e.to_string())
    });
    w.register("mirror", |ch, _: Value| loop {
        match ch.receive::<Value>() {
            Ok(v) => ch.send(&v).map_err(|e| e.to_string())?,
            Err(Error::Eof) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    });
    w.register("add", |ch, kwargs: Value| {
        let arg = |name: &str| -> Result<i128, String> {
            let Value::Dict(entries) = &kwargs else {
                return Err("TypeError: kwargs is not a dict".into());
            };
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .and_then(|(_, v)| match v {
                    Value::Int(i) | Value::Long(i) => i.as_i128(),
                    _ => None,
                })
                .ok_or_else(|| format!("TypeError: add() needs an int argument {name:?}"))
        };
        let sum = arg("a")?
            .checked_add(arg("b")?)
            .ok_or("OverflowError: sum out of range")?;
        ch.send(&sum).map_err(|e| e.to_string())
    });
    w.register("fail", |_, kwargs: Value| {
        let message = match &kwargs {
            Value::Dict(e) => e
                .iter()
                .find(|(k, _)| k.as_str() == Some("message"))
                .and_then(|(_, v)| v.as_str().map(String::from)),
            _ => None,
        };
        Err(format!(
            "RuntimeError: {}",
            message.unwrap_or_else(|| "failed on request".into())
        ))
    });
    w.register("info", |ch, _: Value| {
        ch.send(&Value::Dict(vec![
            (Value::from("pid"), Value::from(std::process::id())),
            (Value::from("implementation"), Value::from("execnet-rs")),
            (
                Value::from("version"),
                Value::from(env!("CARGO_PKG_VERSION")),
            ),
        ]))
        .map_err(|e| e.to_string())
    });
    w
}

fn cmd_serve(a: ServeArgs) -> Result<(), Fail> {
    let secret = match &a.secret_file {
        Some(path) => Some(
            execnet::serve::Secret::from_file(path)
                .map_err(|e| Fail(2, format!("cannot use the secret: {e}")))?,
        ),
        None => None,
    };
    let handshake_timeout = Some(a.handshake_timeout)
        .filter(|t| *t > 0.0)
        .and_then(|t| Duration::try_from_secs_f64(t).ok())
        .filter(|t| *t <= Duration::from_secs(24 * 3600))
        .ok_or_else(|| {
            Fail(
                2,
                format!(
                    "--handshake-timeout: expected seconds above 0 and at most a day, found {}",
                    a.handshake_timeout
                ),
            )
        })?;
    let backend = if a.rust_worker {
        execnet::serve::Backend::Rust(builtin_worker())
    } else {
        execnet::serve::Backend::Python(a.python.clone())
    };
    let mut opts = execnet::serve::ServeOptions::new(a.bind.clone(), secret, backend);
    opts.max_connections = a.max_connections;
    opts.handshake_timeout = handshake_timeout;
    opts.max_unauthenticated = a.max_unauthenticated;
    opts.max_concurrent = a.max_concurrent;
    execnet::serve::serve(
        opts,
        |addr| {
            println!("listening on {addr}");
            let _ = std::io::stdout().flush();
        },
        |line| eprintln!("execnet serve: {line}"),
    )
    .map_err(|e| Fail(3, e.to_string()))
}

fn cmd_worker(a: WorkerArgs, bootstrap: bool) -> Result<(), Fail> {
    let worker = builtin_worker();
    let served = match &a.listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|e| Fail(3, format!("cannot listen on {addr}: {e}")))?;
            let (stream, _) = listener
                .accept()
                .map_err(|e| Fail(3, format!("accept failed: {e}")))?;
            let input = stream.try_clone().map_err(|e| Fail(3, e.to_string()))?;
            worker.serve_bootstrapped(input, stream)
        }
        None if bootstrap => worker.serve_bootstrapped(std::io::stdin(), std::io::stdout()),
        None => worker.serve(std::io::stdin(), std::io::stdout()),
    };
    served.map_err(Fail::from)
}

/// A Python master starts its worker as `PYTHON -u [-B] -c BOOTSTRAP`: when this binary
/// is given as the interpreter, it acts as a Rust worker.
fn started_as_interpreter(args: &[String]) -> bool {
    args.iter().any(|a| a == "-c") && args.iter().any(|a| a == execnet::bootstrap::BOOTSTRAP_LINE)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if started_as_interpreter(&args) {
        return match cmd_worker(WorkerArgs { listen: None }, true) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Fail(code, msg)) => {
                eprintln!("execnet worker: {msg}");
                ExitCode::from(code)
            }
        };
    }
    let cli = Cli::parse();
    let verbose = cli.verbose || std::io::stderr().is_terminal();
    if matches!(cli.command, Cmd::Exec(_) | Cmd::Info(_)) {
        tear_down_on_signals();
    }
    let result = match cli.command {
        Cmd::Exec(a) => cmd_exec(a, verbose),
        Cmd::Info(a) => cmd_info(a, verbose),
        Cmd::Decode(a) => cmd_decode(a),
        Cmd::Encode(a) => cmd_encode(a),
        Cmd::Worker(a) => cmd_worker(a, false),
        Cmd::Serve(a) => cmd_serve(a),
    };
    // The last handles: dropping them ends what an early error left running.
    drop(std::mem::take(
        &mut *LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner()),
    ));
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // The signal thread is ending the gateways and will exit with its status.
        loop {
            std::thread::park();
        }
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
