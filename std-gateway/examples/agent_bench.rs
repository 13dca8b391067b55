//! Worker-side costs of one Python worker: round-trip latency, bulk both ways (1 MiB
//! `bytes` values), and small messages from the worker, each as wall time and as the
//! worker's own CPU time (user + system, from `/proc`, which a busy machine disturbs far
//! less). Prints one JSON object; `benches/agent_ab.py` runs two builds of it (two
//! agents) in interleaved rounds.
//!
//! Usage: `agent_bench PYTHON`.

use std::time::{Duration, Instant};

use execnet::{Group, Value};

/// The worker's CPU time so far (all its threads, ended ones included), in seconds.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name), in
    // clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let spec = format!("popen//python={python}");
    // Startup: spec to the first reply, median of 11.
    let mut startups = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        let group = Group::new();
        let gw = group.makegateway(&spec)?;
        gw.remote_exec("channel.send(1)")?.receive::<i64>()?;
        startups.push(t.elapsed());
        group.terminate(Duration::from_secs(2));
    }
    startups.sort();
    let startup = startups[startups.len() / 2];

    let group = Group::new();
    let gw = group.makegateway(&spec)?;
    let pid = gw.pid().ok_or("no local worker")?;

    // Round trip: one small value there and back.
    let echo = gw.remote_exec("for x in channel:\n    channel.send(x)\n")?;
    for i in 0..200 {
        echo.send(&i)?;
        echo.receive::<i64>()?;
    }
    let n = 20000;
    let (t, c) = (Instant::now(), cpu(pid));
    for i in 0..n {
        echo.send(&i)?;
        echo.receive::<i64>()?;
    }
    let rtt = t.elapsed() / n;
    let rtt_cpu = (cpu(pid) - c) / f64::from(n);
    echo.close()?;

    // Bulk down: the worker sends 1 MiB bytes values.
    let k = 512usize;
    let down = gw.remote_exec(
        "block = b'\\x07' * (1 << 20)\nfor _ in range(channel.receive()):\n    channel.send(block)\n",
    )?;
    let (t, c) = (Instant::now(), cpu(pid));
    down.send(&k)?;
    let mut total = 0usize;
    for _ in 0..k {
        match down.receive::<Value>()? {
            Value::Bytes(b) | Value::Py2Str(b) => total += b.len(),
            other => return Err(format!("unexpected {}", other.type_name()).into()),
        }
    }
    let bulk_down = total as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    let bulk_down_cpu = (cpu(pid) - c) / (total as f64 / (1 << 20) as f64);

    // Bulk up: the master sends 1 MiB bytes values.
    let up = gw.remote_exec(
        "total = 0\nfor x in channel:\n    if x is None:\n        break\n    total += len(x)\nchannel.send(total)\n",
    )?;
    let block = Value::Bytes(vec![7u8; 1 << 20]);
    let (t, c) = (Instant::now(), cpu(pid));
    for _ in 0..k {
        up.send(&block)?;
    }
    up.send(&Value::None)?;
    let got: u64 = up.receive()?;
    let bulk_up = got as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    let bulk_up_cpu = (cpu(pid) - c) / (got as f64 / (1 << 20) as f64);

    // Small messages from the worker.
    let m = 100_000;
    let small =
        gw.remote_exec("for i in range(channel.receive()):\n    channel.send((i, 'item'))\n")?;
    let (t, c) = (Instant::now(), cpu(pid));
    small.send(&m)?;
    for _ in 0..m {
        small.receive::<Value>()?;
    }
    let small_down = f64::from(m) / t.elapsed().as_secs_f64();
    let small_down_cpu = (cpu(pid) - c) / f64::from(m);
    group.terminate(Duration::from_secs(2));

    println!(
        "{{\"startup_ms\": {:.2}, \"rtt_us\": {:.2}, \"rtt_worker_cpu_us\": {:.2}, \"bulk_down_mib_s\": {:.1}, \"bulk_down_worker_cpu_ms_per_mib\": {:.3}, \"bulk_up_mib_s\": {:.1}, \"bulk_up_worker_cpu_ms_per_mib\": {:.3}, \"small_down_per_s\": {:.0}, \"small_down_worker_cpu_us\": {:.2}}}",
        startup.as_secs_f64() * 1e3,
        rtt.as_secs_f64() * 1e6,
        rtt_cpu * 1e6,
        bulk_down,
        bulk_down_cpu * 1e3,
        bulk_up,
        bulk_up_cpu * 1e3,
        small_down,
        small_down_cpu * 1e6
    );
    Ok(())
}
