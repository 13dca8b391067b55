//! Python 2 and 3 values in files: read what execnet 1.9 on Python 2.7 wrote, and write
//! for both generations.
//!
//! `cargo run -p execnet --example py2_values -- IN_FILE OUT_DIR`
//! (IN_FILE: `execnet.dumps(['hello', 'world'])` from Python 2.7 with execnet 1.9.0.)

use execnet::core::{decode, encode, Envelope, Limits, StrConfig, Value, Version};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(out_dir)) = (args.next(), args.next()) else {
        eprintln!("usage: py2_values IN_FILE OUT_DIR");
        std::process::exit(2);
    };
    let data = std::fs::read(&input).expect("read input");
    let mut nodes = Vec::new();
    let (version, value) =
        decode::decode_dumps(&data, &mut nodes, &Limits::DEFAULT).expect("decode");
    // Python 2 `str` is raw bytes; load it as text the way loads(py2str_as_py3str=True) does.
    let config = StrConfig::new(true, false);
    let words: Vec<String> = match value {
        execnet::core::ValueRef::List(items) => items
            .iter()
            .filter_map(|v| match v {
                execnet::core::ValueRef::Str(s) => s.load_text(config).map(|t| t.into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    println!("version {version:?}: {words:?}");

    // Write the same list for both generations: version 1 for execnet 1.x readers (Python
    // 2), version 2 for execnet 2.x.
    let list = Value::List(
        words
            .iter()
            .map(|w| Value::Py2Str(w.clone().into_bytes()))
            .collect(),
    );
    for (version, name) in [
        (Version::V1, "for-execnet1.bin"),
        (Version::V2, "for-execnet2.bin"),
    ] {
        let bytes = encode::to_vec(&list, Envelope::Dumps(version)).expect("encode");
        std::fs::write(std::path::Path::new(&out_dir).join(name), &bytes).expect("write");
        println!("wrote {name}: {} bytes", bytes.len());
    }
}
