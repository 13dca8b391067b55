//! Worker-side costs of one Python worker: round-trip latency, bulk both ways (1 MiB
//! `bytes` values), and small messages from the worker. Prints one JSON object;
//! `benches/agent_ab.py` runs two builds of it (two agents) in interleaved rounds.
//!
//! Usage: `agent_bench PYTHON`.

use std::time::{Duration, Instant};

use execnet::{Group, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let group = Group::new();
    let gw = group.makegateway(&format!("popen//python={python}"))?;

    // Round trip: one small value there and back.
    let echo = gw.remote_exec("for x in channel:\n    channel.send(x)\n")?;
    for i in 0..200 {
        echo.send(&i)?;
        echo.receive::<i64>()?;
    }
    let n = 3000;
    let t = Instant::now();
    for i in 0..n {
        echo.send(&i)?;
        echo.receive::<i64>()?;
    }
    let rtt = t.elapsed() / n;
    echo.close()?;

    // Bulk down: the worker sends 1 MiB bytes values.
    let k = 128usize;
    let down = gw.remote_exec(
        "block = b'\\x07' * (1 << 20)\nfor _ in range(channel.receive()):\n    channel.send(block)\n",
    )?;
    let t = Instant::now();
    down.send(&k)?;
    let mut total = 0usize;
    for _ in 0..k {
        match down.receive_value()? {
            Value::Bytes(b) | Value::Py2Str(b) => total += b.len(),
            other => return Err(format!("unexpected {}", other.type_name()).into()),
        }
    }
    let bulk_down = total as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();

    // Bulk up: the master sends 1 MiB bytes values.
    let up = gw.remote_exec(
        "total = 0\nfor x in channel:\n    if x is None:\n        break\n    total += len(x)\nchannel.send(total)\n",
    )?;
    let block = Value::Bytes(vec![7u8; 1 << 20]);
    let t = Instant::now();
    for _ in 0..k {
        up.send_value(&block)?;
    }
    up.send_value(&Value::None)?;
    let got: u64 = up.receive()?;
    let bulk_up = got as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();

    // Small messages from the worker.
    let m = 20000;
    let small =
        gw.remote_exec("for i in range(channel.receive()):\n    channel.send((i, 'item'))\n")?;
    let t = Instant::now();
    small.send(&m)?;
    for _ in 0..m {
        small.receive_value()?;
    }
    let small_down = f64::from(m) / t.elapsed().as_secs_f64();
    group.terminate(Duration::from_secs(2));

    println!(
        "{{\"rtt_us\": {:.2}, \"bulk_down_mib_s\": {:.1}, \"bulk_up_mib_s\": {:.1}, \"small_down_per_s\": {:.0}}}",
        rtt.as_secs_f64() * 1e6,
        bulk_down,
        bulk_up,
        small_down
    );
    Ok(())
}
