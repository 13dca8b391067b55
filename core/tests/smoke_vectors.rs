use execnet_core::{decode, encode, Envelope, Limits, Node, Value};

#[test]
fn vectors_round_trip_quick() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors");
    for name in [
        "small_msg",
        "ints_10k",
        "floats_10k",
        "strs_10k",
        "bytes_1m",
        "nested",
        "bigints",
    ] {
        let data = std::fs::read(format!("{dir}/{name}.bin")).unwrap();
        let mut nodes: Vec<Node> = Vec::new();
        let (ver, v) = decode::decode_dumps(&data, &mut nodes, &Limits::DEFAULT).unwrap();
        let out = encode::to_vec(&v, Envelope::Dumps(ver)).unwrap();
        assert_eq!(out, data, "{name}");
        let (_, owned) = Value::decode_dumps(&data, &Limits::DEFAULT).unwrap();
        let out2 = encode::to_vec(&owned, Envelope::Dumps(ver)).unwrap();
        assert_eq!(out2, data, "{name} owned");
        let need = decode::node_bound(&data[1..]).unwrap();
        let mut fixed = vec![Node::EMPTY; need];
        decode::decode_dumps(&data, fixed.as_mut_slice(), &Limits::DEFAULT).unwrap();
        let mut small = vec![Node::EMPTY; 3];
        let e = decode::decode_dumps(&data, small.as_mut_slice(), &Limits::DEFAULT);
        if need > 3 {
            assert!(e.is_err(), "{name}");
            println!("{name}: {}", e.unwrap_err());
        }
    }
}
