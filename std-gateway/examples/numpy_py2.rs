//! numpy in a Python 2.7 worker: send 0..9, get back the repr of the grown array.
//!
//! `cargo run -p execnet --example numpy_py2 -- PYTHON2.7`

use std::time::Duration;

fn main() -> Result<(), execnet::Error> {
    let python = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "python2.7".into());
    let group = execnet::Group::new();
    let gw = group.makegateway(&format!("popen//python={python}"))?;
    let ch = gw.remote_exec(
        "import numpy\na = numpy.array([1, 2, 3])\nfor i in range(10):\n    a = numpy.append(a, channel.receive())\nchannel.send(repr(a))\n",
    )?;
    for i in 0..10 {
        ch.send(&i)?;
    }
    let text: String = ch.receive_timeout(Duration::from_secs(60))?;
    println!("{text}");
    group.terminate(Duration::from_secs(5));
    Ok(())
}
