//! `worker` and `serve`: the built-in Rust functions, on stdin/stdout, one TCP
//! connection, or behind the socket server.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use execnet::core::Value;
use execnet::Error;

use crate::Fail;

#[derive(clap::Args)]
pub struct ServeArgs {
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
pub struct WorkerArgs {
    /// Accept one TCP connection on this address instead of using stdin/stdout.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
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

pub fn cmd_serve(a: ServeArgs) -> Result<(), Fail> {
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

pub fn cmd_worker(a: WorkerArgs, bootstrap: bool) -> Result<(), Fail> {
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
