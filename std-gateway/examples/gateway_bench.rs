//! Gateway benchmark: startup, round-trip latency, small-message and bulk throughput to
//! one Python worker. Prints one JSON object; `benches/compare_gateway.py` runs it beside
//! the reference execnet in the same run.
//!
//! Usage: `gateway_bench PYTHON [ROUNDS]`.

use std::time::{Duration, Instant};

use execnet::{Group, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let python = args.next().unwrap_or_else(|| "python3".into());
    let scale: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let spec = format!("popen//python={python}");

    // Startup: spec to a gateway that has answered one round trip.
    let mut startups = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let group = Group::new();
        let gw = group.makegateway(&spec)?;
        let ch = gw.remote_exec("channel.send(1)")?;
        ch.receive::<i64>()?;
        startups.push(t.elapsed());
        group.terminate(Duration::from_secs(2));
    }
    startups.sort();

    let group = Group::new();
    let gw = group.makegateway(&spec)?;

    // Round trip: one small value there and back.
    let echo = gw.remote_exec("for x in channel:\n    channel.send(x)\n")?;
    let n = 2000 * scale;
    for i in 0..100 {
        echo.send(&i)?;
        echo.receive::<i64>()?;
    }
    let t = Instant::now();
    for i in 0..n {
        echo.send(&i)?;
        echo.receive::<i64>()?;
    }
    let rtt = t.elapsed() / n;
    echo.close()?;

    // Small messages, one way, then one reply.
    let sink = gw.remote_exec(
        "n = 0\nfor x in channel:\n    if x is None:\n        break\n    n += 1\nchannel.send(n)\n",
    )?;
    let m = 20000 * scale;
    let t = Instant::now();
    for i in 0..m {
        sink.send(&(i, "item"))?;
    }
    sink.send(&Value::None)?;
    let count: u32 = sink.receive()?;
    let small = f64::from(m) / t.elapsed().as_secs_f64();
    assert_eq!(count, m);

    // Bulk: 1 MiB bytes values.
    let bulk = gw.remote_exec(
        "total = 0\nfor x in channel:\n    if x is None:\n        break\n    total += len(x)\nchannel.send(total)\n",
    )?;
    let block = Value::Bytes(vec![7u8; 1 << 20]);
    let k = 64 * scale;
    let t = Instant::now();
    for _ in 0..k {
        bulk.send(&block)?;
    }
    bulk.send(&Value::None)?;
    let total: u64 = bulk.receive()?;
    let mbps = total as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    group.terminate(Duration::from_secs(2));

    println!(
        "{{\"startup_ms\": {:.3}, \"rtt_us\": {:.2}, \"small_msgs_per_s\": {:.0}, \"bulk_mib_per_s\": {:.1}}}",
        startups[startups.len() / 2].as_secs_f64() * 1e3,
        rtt.as_secs_f64() * 1e6,
        small,
        mbps
    );
    Ok(())
}
