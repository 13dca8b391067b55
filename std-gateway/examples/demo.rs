//! The demo: start a CPython worker, run code in it, send and receive.
//!
//! `cargo run -p execnet --example demo [PYTHON]` (default: `python3` on `PATH`).

use std::time::{Duration, Instant};

use execnet::core::repr::{repr, ReprMode};
use execnet::core::StrConfig;
use execnet::{Group, Value};

fn main() -> Result<(), execnet::Error> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let group = Group::new();
    let t = Instant::now();
    let gw = group.makegateway(&format!("popen//python={python}"))?;
    let info = gw.rinfo()?;
    println!(
        "started {} (Python {}.{}.{}, pid {}) in {:.1} ms",
        info.executable,
        info.version_info.0,
        info.version_info.1,
        info.version_info.2,
        info.pid,
        t.elapsed().as_secs_f64() * 1e3
    );

    // Remote code: square whatever comes, until the channel closes.
    let ch = gw.remote_exec(
        "for x in channel:\n    channel.send({'input': x, 'square': x * x, 'type': type(x).__name__})\n",
    )?;
    for x in [3i64, 1 << 40] {
        ch.send(&x)?;
        let reply = ch.receive::<Value>()?;
        println!(
            "sent {x:>14} -> {}",
            repr(&reply, ReprMode::Py3(StrConfig::GATEWAY))
        );
    }
    ch.send(&Value::Float(1.5))?;
    let reply = ch.receive::<Value>()?;
    println!(
        "sent            1.5 -> {}",
        repr(&reply, ReprMode::Py3(StrConfig::GATEWAY))
    );
    ch.close()?;

    // Errors come back with the remote traceback.
    let err = gw
        .remote_exec("1/0")?
        .wait_close(Some(Duration::from_secs(10)));
    if let Err(execnet::Error::Remote(e)) = err {
        println!("remote error: {}", e.summary());
    }
    group.terminate(Duration::from_secs(5));
    println!("worker ended: {:?}", gw.exit_status());
    Ok(())
}
