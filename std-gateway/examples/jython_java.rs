//! Java objects in a Jython worker: build a `java.util.Vector` there, iterate it here.
//!
//! `cargo run -p execnet --example jython_java -- JYTHON`

use std::time::Duration;

fn main() -> Result<(), execnet::Error> {
    let jython = std::env::args().nth(1).unwrap_or_else(|| "jython".into());
    let group = execnet::Group::new();
    let gw = group.makegateway(&format!("popen//python={jython}"))?;
    let ch = gw.remote_exec(
        "from java.util import Vector\nv = Vector()\nv.add('aaa')\nv.add('bbb')\nfor val in v:\n    channel.send(val)\n",
    )?;
    for item in ch.iter::<String>() {
        println!("{}", item?);
    }
    group.terminate(Duration::from_secs(5));
    Ok(())
}
