//! String coercion: what a text string and bytes become on a Python 2 or 3 worker, by
//! default and after `reconfigure`.
//!
//! `cargo run -p execnet --example string_coercion -- PYTHON`

use std::time::Duration;

use execnet::Value;

fn main() -> Result<(), execnet::Error> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let group = execnet::Group::new();
    let gw = group.makegateway(&format!("popen//python={python}"))?;
    let ch = gw.remote_exec("for x in channel:\n    channel.send(type(x).__name__)\n")?;
    let probe = |label: &str| -> Result<(), execnet::Error> {
        ch.send_value(&Value::Str("text".into()))?;
        let text: String = ch.receive()?;
        ch.send_value(&Value::Bytes(b"raw".to_vec()))?;
        let bytes: String = ch.receive()?;
        println!("{label:<28} str -> {text:<8} bytes -> {bytes}");
        Ok(())
    };
    probe("default")?;
    gw.reconfigure(false, true)?;
    probe("gateway (False, True)")?;
    gw.reconfigure(true, false)?;
    ch.reconfigure(false, true)?;
    probe("channel (False, True)")?;
    group.terminate(Duration::from_secs(5));
    Ok(())
}
