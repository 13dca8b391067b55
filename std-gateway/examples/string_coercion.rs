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
    let source = "for x in channel:\n    channel.send(type(x).__name__)\n";
    let probe = |ch: &execnet::Channel, label: &str| -> Result<(), execnet::Error> {
        ch.send(&Value::Str("text".into()))?;
        let text: String = ch.receive()?;
        ch.send(&Value::Bytes(b"raw".to_vec()))?;
        let bytes: String = ch.receive()?;
        println!("{label:<36} str -> {text:<8} bytes -> {bytes}");
        Ok(())
    };
    let first = gw.remote_exec(source)?;
    probe(&first, "default")?;
    // A gateway reconfigure applies to channels opened afterwards...
    gw.reconfigure(false, true)?;
    probe(
        &gw.remote_exec(source)?,
        "gateway (False, True), new channel",
    )?;
    // ...while a channel keeps the config it was opened with.
    probe(&first, "gateway (False, True), older channel")?;
    gw.reconfigure(true, false)?;
    let ch = gw.remote_exec(source)?;
    ch.reconfigure(false, true)?;
    probe(&ch, "channel (False, True)")?;
    group.terminate(Duration::from_secs(5));
    Ok(())
}
