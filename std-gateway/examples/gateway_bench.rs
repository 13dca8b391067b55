//! Our side of the gateway benchmark (`benches/compare_gateway.py` drives it, with the
//! reference execnet beside it in the same rounds).
//!
//! `gateway_bench serve PYTHON` starts one gateway to a Python worker and one to a Rust
//! worker (this binary again, see below), then answers commands read one per line on
//! stdin with one line of JSON each on stdout:
//!
//! | command | measures |
//! |---|---|
//! | `startup K` | K fresh gateways, spec to first reply (ms each); the command line's worker has started before, so the agent is sent as the code that worker compiled |
//! | `startup_first K` | the same, each with a command line of its own (`-X execnet_first=N`), so the agent is compiled from source, as for a command's first gateway |
//! | `rtt N` | N round trips of a small int on one channel (mean, and CPU per round trip of this process and of the worker) |
//! | `rtt_slow N` | the same with a worker that takes 1 ms to answer |
//! | `small_up N`, `small_down N` | N small tuples one way, then one reply (messages per second) |
//! | `bulk_up K`, `bulk_down K` | K `bytes` values of 1 MiB one way (MiB/s, worker CPU per MiB) |
//! | `value SIZE K` | K round trips of a `bytes` value of SIZE bytes (MiB/s each way) |
//! | `channels N` | N channels started, each sent a value and answered (ms for all) |
//! | `rust_rtt N`, `rust_bulk_up K`, `rust_bulk_down K` | the same against the Rust worker |
//!
//! Given as a worker's interpreter (`popen//python=.../gateway_bench`, started as
//! `gateway_bench -u -c BOOTSTRAP`), it serves the functions `mirror`, `sink` and `source`
//! as a Rust [`Worker`](execnet::worker::Worker).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use execnet::worker::Worker;
use execnet::{Channel, Gateway, Group, Value};

const MIB: usize = 1 << 20;

/// CPU time of this process so far (every thread, ended ones included), in seconds.
fn self_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 * 1e-6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// CPU time of process `pid` so far (all its threads), in seconds: clock ticks of
/// 1/100 s from `/proc`, so only long runs measure it well.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn bytes_len(v: Value) -> Res<usize> {
    match v {
        Value::Bytes(b) => Ok(b.len()),
        other => Err(format!("expected bytes, found {}", other.type_name()).into()),
    }
}

struct Bench {
    spec: String,
    python: String,
    /// Makes each `startup_first` command line new.
    first: usize,
    _group: Group,
    gw: Gateway,
    pid: u32,
    echo: Channel,
    rust: Gateway,
    mirror: Channel,
}

const ECHO: &str = "for x in channel:\n    channel.send(x)\n";
/// An echo that takes a millisecond to answer: what polling for a reply costs when it
/// does not come soon.
const SLOW_ECHO: &str =
    "import time\nfor x in channel:\n    time.sleep(0.001)\n    channel.send(x)\n";
const COUNT: &str =
    "n = 0\nfor x in channel:\n    if x is None:\n        break\n    n += 1\nchannel.send(n)\n";
const SINK: &str = "total = 0\nfor x in channel:\n    if x is None:\n        break\n    total += len(x)\nchannel.send(total)\n";
const SOURCE: &str =
    "block = b'\\x07' * (1 << 20)\nfor _ in range(channel.receive()):\n    channel.send(block)\n";
const SMALL_SOURCE: &str = "for i in range(channel.receive()):\n    channel.send((i, 'item'))\n";
const ANSWER: &str = "channel.send(channel.receive() * 2)";

impl Bench {
    fn new(python: &str) -> Res<Bench> {
        let spec = format!("popen//python={python}");
        let group = Group::new();
        let gw = group.makegateway(&spec)?;
        let pid = gw.pid().ok_or("no local worker")?;
        let echo = gw.remote_exec(ECHO)?;
        let me = std::env::current_exe()?;
        let rust = group.makegateway(&format!("popen//python={}", me.display()))?;
        let mirror = rust.remote_exec_call("", "mirror", &Value::Dict(vec![]))?;
        Ok(Bench {
            spec,
            python: python.to_string(),
            first: 0,
            _group: group,
            gw,
            pid,
            echo,
            rust,
            mirror,
        })
    }

    fn run(&mut self, cmd: &str, n: usize, k: usize) -> Res<String> {
        Ok(match cmd {
            "startup" | "startup_first" => {
                let mut ms = Vec::new();
                for _ in 0..n {
                    let spec = if cmd == "startup" {
                        self.spec.clone()
                    } else {
                        self.first += 1;
                        format!(
                            "popen//python={} -X execnet_first={}",
                            self.python, self.first
                        )
                    };
                    let t = Instant::now();
                    let group = Group::new();
                    let gw = group.makegateway(&spec)?;
                    gw.remote_exec("channel.send(1)")?.receive::<i64>()?;
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                    group.terminate(Duration::from_secs(2));
                }
                format!("{{\"ms\": {ms:?}}}")
            }
            "rtt" => {
                let c = proc_cpu(self.pid);
                let (us, cpu) = round_trips(&self.echo, n)?;
                let worker = (proc_cpu(self.pid) - c) * 1e6 / n as f64;
                format!("{{\"us\": {us:.3}, \"cpu_us\": {cpu:.3}, \"worker_cpu_us\": {worker:.3}}}")
            }
            "rtt_slow" => {
                let ch = self.gw.remote_exec(SLOW_ECHO)?;
                let (us, cpu) = round_trips(&ch, n)?;
                ch.close()?;
                format!("{{\"us\": {us:.3}, \"cpu_us\": {cpu:.3}}}")
            }
            "rust_rtt" => {
                let (us, cpu) = round_trips(&self.mirror, n)?;
                format!("{{\"us\": {us:.3}, \"cpu_us\": {cpu:.3}}}")
            }
            "small_up" => {
                let ch = self.gw.remote_exec(COUNT)?;
                let t = Instant::now();
                for i in 0..n {
                    ch.send(&(i, "item"))?;
                }
                ch.send(&Value::None)?;
                let got: usize = ch.receive()?;
                let rate = n as f64 / t.elapsed().as_secs_f64();
                check(got == n, "count")?;
                format!("{{\"per_s\": {rate:.1}}}")
            }
            "small_down" => {
                let ch = self.gw.remote_exec(SMALL_SOURCE)?;
                let t = Instant::now();
                ch.send(&n)?;
                for i in 0..n {
                    let (j, _): (usize, String) = ch.receive()?;
                    check(i == j, "order")?;
                }
                let rate = n as f64 / t.elapsed().as_secs_f64();
                format!("{{\"per_s\": {rate:.1}}}")
            }
            "bulk_up" => {
                let ch = self.gw.remote_exec(SINK)?;
                let (mibs, cpu) = self.timed(|| bulk_up(&ch, n))?;
                format!("{{\"mib_s\": {mibs:.2}, \"worker_cpu_ms_per_mib\": {cpu:.4}}}")
            }
            "bulk_down" => {
                let ch = self.gw.remote_exec(SOURCE)?;
                let (mibs, cpu) = self.timed(|| bulk_down(&ch, n))?;
                format!("{{\"mib_s\": {mibs:.2}, \"worker_cpu_ms_per_mib\": {cpu:.4}}}")
            }
            "rust_bulk_up" => {
                let ch = self
                    .rust
                    .remote_exec_call("", "sink", &Value::Dict(vec![]))?;
                let mibs = bulk_up(&ch, n)?;
                format!("{{\"mib_s\": {mibs:.2}}}")
            }
            "rust_bulk_down" => {
                let ch = self
                    .rust
                    .remote_exec_call("", "source", &Value::Dict(vec![]))?;
                let mibs = bulk_down(&ch, n)?;
                format!("{{\"mib_s\": {mibs:.2}}}")
            }
            "value" => {
                let size = n;
                let value = Value::Bytes(vec![7u8; size]);
                self.echo.send(&value)?;
                bytes_len(self.echo.receive()?)?;
                let t = Instant::now();
                for _ in 0..k {
                    self.echo.send(&value)?;
                    check(bytes_len(self.echo.receive()?)? == size, "size")?;
                }
                let mibs = (size * k) as f64 / MIB as f64 / t.elapsed().as_secs_f64();
                format!("{{\"mib_s\": {mibs:.2}}}")
            }
            "channels" => {
                let t = Instant::now();
                let chans = (0..n)
                    .map(|_| self.gw.remote_exec(ANSWER))
                    .collect::<Result<Vec<_>, _>>()?;
                for (i, ch) in chans.iter().enumerate() {
                    ch.send(&i)?;
                }
                for (i, ch) in chans.iter().enumerate() {
                    check(ch.receive::<usize>()? == 2 * i, "answer")?;
                }
                let ms = t.elapsed().as_secs_f64() * 1e3;
                for ch in &chans {
                    ch.wait_close(Some(Duration::from_secs(10)))?;
                }
                format!("{{\"ms\": {ms:.2}}}")
            }
            other => return Err(format!("unknown command {other:?}").into()),
        })
    }

    /// Runs `f` (which returns MiB/s) and also gives the worker's CPU per MiB, in ms.
    fn timed(&self, f: impl FnOnce() -> Res<f64>) -> Res<(f64, f64)> {
        let c = proc_cpu(self.pid);
        let t = Instant::now();
        let mibs = f()?;
        let mib = mibs * t.elapsed().as_secs_f64();
        Ok((mibs, (proc_cpu(self.pid) - c) * 1e3 / mib))
    }
}

fn check(ok: bool, what: &str) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("wrong {what} in a reply").into())
    }
}

/// Mean round trip and this process's CPU per round trip, in microseconds.
fn round_trips(ch: &Channel, n: usize) -> Res<(f64, f64)> {
    for i in 0..200 {
        ch.send(&i)?;
        ch.receive::<i64>()?;
    }
    let c = self_cpu();
    let t = Instant::now();
    for i in 0..n as i64 {
        ch.send(&i)?;
        check(ch.receive::<i64>()? == i, "echo")?;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let cpu = (self_cpu() - c) * 1e6 / n as f64;
    Ok((us, cpu))
}

fn bulk_up(ch: &Channel, k: usize) -> Res<f64> {
    let block = Value::Bytes(vec![7u8; MIB]);
    let t = Instant::now();
    for _ in 0..k {
        ch.send(&block)?;
    }
    ch.send(&Value::None)?;
    let total: usize = ch.receive()?;
    check(total == k * MIB, "total")?;
    Ok(total as f64 / MIB as f64 / t.elapsed().as_secs_f64())
}

fn bulk_down(ch: &Channel, k: usize) -> Res<f64> {
    let t = Instant::now();
    ch.send(&k)?;
    let mut total = 0;
    for _ in 0..k {
        total += bytes_len(ch.receive()?)?;
    }
    check(total == k * MIB, "total")?;
    Ok(total as f64 / MIB as f64 / t.elapsed().as_secs_f64())
}

/// The Rust worker's functions.
fn worker() -> Worker {
    let mut w = Worker::new();
    w.register("mirror", |ch, _: Value| {
        for v in ch {
            ch.send(&v.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    w.register("sink", |ch, _: Value| {
        let mut total = 0usize;
        for v in ch {
            match v.map_err(|e| e.to_string())? {
                Value::Bytes(b) => total += b.len(),
                _ => break,
            }
        }
        ch.send(&total).map_err(|e| e.to_string())
    });
    w.register("source", |ch, _: Value| {
        let k: usize = ch.receive().map_err(|e| e.to_string())?;
        let block = Value::Bytes(vec![7u8; MIB]);
        for _ in 0..k {
            ch.send(&block).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    w
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-c") {
        // Started as a worker's interpreter.
        return Ok(worker().serve_bootstrapped(std::io::stdin(), std::io::stdout())?);
    }
    let (Some("serve"), Some(python)) = (args.first().map(String::as_str), args.get(1)) else {
        return Err("usage: gateway_bench serve PYTHON (then commands on stdin)".into());
    };
    let mut bench = Bench::new(python)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(cmd) = words.first() else { continue };
        let num = |i: usize| -> Res<usize> {
            words.get(i).map_or(Ok(0), |w| {
                w.parse().map_err(|e| format!("{w:?}: {e}").into())
            })
        };
        let reply = bench.run(cmd, num(1)?, num(2)?)?;
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}
