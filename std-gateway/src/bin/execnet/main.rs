//! `execnet`: run code in Python workers, inspect interpreters, send trees to them, and
//! convert between execnet's wire format and Python literals.
//!
//! Exit statuses (stable, for scripts):
//! - 0: success (also when the reader of our output went away, as in `| head`);
//! - 1: the remote code raised an exception (`exec`), or files failed (`rsync`);
//! - 2: bad input: usage, spec, malformed bytes, malformed literal;
//! - 3: a gateway could not be started, was lost, or `--timeout` ran out;
//! - 4: output could not be written.
//!
//! Built only with the `cli` feature, so that the library's users build none of this.

mod codec;
mod json;
mod literal;
mod run;
mod serve;
mod sync;

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "execnet",
    version,
    propagate_version = true,
    about = "Run code in Python workers of any generation, and read or write execnet's wire format",
    long_about = None
)]
struct Cli {
    /// More on stderr: timings (-v), the library's tracing at info, debug, trace level
    /// (-v, -vv, -vvv). `EXECNET_DEBUG` in the environment turns debug tracing on for
    /// this command and its Python workers.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    /// Nothing on stderr but errors: no spinner, no progress bar.
    #[arg(short, long, global = true)]
    quiet: bool,
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
    Exec(run::ExecArgs),
    /// Start gateways in parallel and print a table (or JSON) of their interpreters.
    Info(run::InfoArgs),
    /// Send a directory tree (or a file) to one or more gateways at once.
    ///
    /// Each target is `SPEC:DEST` (the destination follows the last `:`), for example
    /// `popen//python=python3:/tmp/copy`. Only what differs is sent, each file read
    /// once for every target. The summary goes to stdout; progress to stderr (a bar on a
    /// terminal, a line per file otherwise).
    Rsync(sync::RsyncArgs),
    /// Read `dumps` bytes and print the value as a Python literal (or JSON).
    Decode(codec::DecodeArgs),
    /// Read a Python literal and write its `dumps` bytes.
    Encode(codec::EncodeArgs),
    /// Serve registered Rust functions over the protocol on stdin/stdout (after a
    /// bootstrap line, as a Python master sends it) or on a TCP socket.
    ///
    /// Functions: echo(**kwargs) sends its kwargs back; mirror() sends back every value
    /// it receives; add(a, b) sends a + b; fail(message) raises; info() sends the
    /// worker's pid and version. A Python master reaches them with
    /// `execnet.makegateway("popen//python=/path/to/execnet")` and
    /// `gw.remote_exec(echo, x=1)` where `echo` is any Python function of that name.
    Worker(serve::WorkerArgs),
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
    Serve(serve::ServeArgs),
    /// Print a completion script for a shell (`execnet completions bash > ...`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A failure with its exit status; an empty message prints nothing.
pub struct Fail(pub u8, pub String);

impl Fail {
    /// Bad input.
    pub fn usage(msg: impl Into<String>) -> Fail {
        Fail(2, msg.into())
    }
}

impl From<execnet::Error> for Fail {
    fn from(e: execnet::Error) -> Fail {
        use execnet::Error;
        let code = match &e {
            Error::Remote(_) => 1,
            Error::Spec(_) | Error::Decode(_) | Error::Encode(_) => 2,
            _ => 3,
        };
        Fail(code, e.to_string())
    }
}

/// A failed write to stdout: the reader went away (`| head`), which ends the command
/// quietly with status 0 as Unix tools do, or another error (status 4).
pub fn output_failed(e: io::Error) -> Fail {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Fail(0, String::new())
    } else {
        Fail(4, format!("cannot write output: {e}"))
    }
}

/// Stdout, buffered: every command writes through one of these and flushes at the end.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(1 << 16, io::stdout().lock())
}

/// The whole of a file, or of stdin for `None` or `-`.
pub fn read_input(path: Option<&PathBuf>) -> Result<Vec<u8>, Fail> {
    let mut data = Vec::new();
    match path {
        Some(p) if p.as_os_str() != "-" => {
            data = std::fs::read(p)
                .map_err(|e| Fail::usage(format!("cannot read {}: {e}", p.display())))?;
        }
        _ => {
            io::stdin()
                .read_to_end(&mut data)
                .map_err(|e| Fail::usage(format!("cannot read stdin: {e}")))?;
        }
    }
    Ok(data)
}

/// Seconds for `--timeout`: above 0, finite, and small enough to add to a clock.
pub fn seconds(text: &str) -> Result<Duration, String> {
    const MAX: f64 = 1e9;
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX => {
            Duration::try_from_secs_f64(s).map_err(|e| format!("{e} ({text:?})"))
        }
        _ => Err(format!(
            "expected seconds above 0 and at most {MAX:e}, found {text:?}"
        )),
    }
}

/// How much the command says on stderr.
#[derive(Clone, Copy)]
pub struct Verbosity {
    /// -1 with -q, else the number of -v.
    pub level: i8,
    /// Whether stderr is a terminal (spinners and bars only there).
    pub terminal: bool,
}

impl Verbosity {
    /// Spinners and progress bars: on a terminal, unless -q.
    pub fn animate(self) -> bool {
        self.terminal && self.level >= 0
    }
    /// Plain progress lines where a bar cannot be drawn: unless -q.
    pub fn progress_lines(self) -> bool {
        self.level >= 0
    }
    /// Timings and counts: with -v.
    pub fn timings(self) -> bool {
        self.level >= 1
    }
}

fn debug_requested() -> bool {
    std::env::var_os("EXECNET_DEBUG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Tracing to stderr: -v info, -vv debug, -vvv trace; `EXECNET_DEBUG` at least debug.
/// When debug is on, workers started from here inherit `EXECNET_DEBUG`, and our agent
/// then logs its own life to its stderr.
fn start_tracing(v: Verbosity) {
    use tracing_subscriber::filter::LevelFilter;
    let mut level = match v.level {
        i8::MIN..=0 => LevelFilter::OFF,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    if debug_requested() && level < LevelFilter::DEBUG {
        level = LevelFilter::DEBUG;
    }
    if level == LevelFilter::OFF {
        return;
    }
    if !debug_requested() && level >= LevelFilter::DEBUG {
        // Before any thread starts: nothing else reads the environment concurrently.
        std::env::set_var("EXECNET_DEBUG", "1");
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(level)
        .try_init();
}

/// Clap's usage errors in our form: one line starting with `execnet:`, status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("execnet: {first} (see execnet --help)");
            ExitCode::from(2)
        }
    }
}

/// A Python master starts its worker as `PYTHON -u [-B] -c BOOTSTRAP`: when this binary
/// is given as the interpreter, it acts as a Rust worker.
fn started_as_interpreter(args: &[String]) -> bool {
    args.iter().any(|a| a == "-c") && args.iter().any(|a| a == execnet::bootstrap::BOOTSTRAP_LINE)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if started_as_interpreter(&args) {
        return match serve::cmd_worker(serve::WorkerArgs { listen: None }, true) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Fail(code, msg)) => {
                eprintln!("execnet worker: {msg}");
                ExitCode::from(code)
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let verbosity = Verbosity {
        level: if cli.quiet {
            -1
        } else {
            cli.verbose.min(100) as i8
        },
        terminal: io::stderr().is_terminal(),
    };
    start_tracing(verbosity);
    let result = match cli.command {
        Cmd::Exec(a) => run::cmd_exec(a, verbosity),
        Cmd::Info(a) => run::cmd_info(a, verbosity),
        Cmd::Rsync(a) => sync::cmd_rsync(a, verbosity),
        Cmd::Decode(a) => codec::cmd_decode(a),
        Cmd::Encode(a) => codec::cmd_encode(a),
        Cmd::Worker(a) => serve::cmd_worker(a, false),
        Cmd::Serve(a) => serve::cmd_serve(a),
        Cmd::Completions { shell } => {
            let mut out = stdout();
            clap_complete::generate(shell, &mut Cli::command(), "execnet", &mut out);
            out.flush().map_err(output_failed)
        }
    };
    run::finish(result)
}
