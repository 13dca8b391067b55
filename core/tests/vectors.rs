//! Golden vectors: every `tests/vectors/*.bin` (real `execnet.dumps` output of execnet
//! 2.1.2, described by `manifest.json`) decodes, through every storage and into the owned
//! model, to exactly the value its manifest expression describes, and re-encodes to the
//! identical bytes.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use execnet_core::{decode, encode, DecodeErrorKind, Envelope, Int, Limits, Node, Value, Version};
use support::{ref_eq, strict_eq, TempDir};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// One manifest entry.
#[derive(Debug)]
struct Entry {
    name: String,
    python: String,
    items: usize,
    encoded_bytes: usize,
}

/// Reads `manifest.json` in `dir` and checks it against the `.bin` files there: every file
/// has an entry, every entry has a file, and each file has the announced length.
fn audit(dir: &Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .map_err(|e| format!("manifest.json: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("manifest.json: {e}"))?;
    let payloads = json
        .get("payloads")
        .and_then(|p| p.as_object())
        .ok_or("manifest.json has no \"payloads\" object")?;
    let mut entries = Vec::new();
    for (name, p) in payloads {
        let field = |k: &str| p.get(k).ok_or(format!("{name}: no {k}"));
        let python = field("python")?
            .as_str()
            .ok_or(format!("{name}: python is not a string"))?
            .to_string();
        let count = |k: &str| -> Result<usize, String> {
            field(k)?
                .as_u64()
                .map(|n| n as usize)
                .ok_or(format!("{name}: {k} is not a count"))
        };
        entries.push(Entry {
            name: name.clone(),
            python,
            items: count("items")?,
            encoded_bytes: count("encoded_bytes")?,
        });
    }
    let files: BTreeSet<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".bin").map(str::to_string)
        })
        .collect();
    let listed: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    if let Some(extra) = files.difference(&listed).next() {
        return Err(format!("{extra}.bin is not in the manifest"));
    }
    if let Some(missing) = listed.difference(&files).next() {
        return Err(format!("manifest entry {missing} has no {missing}.bin"));
    }
    for e in &entries {
        let len = std::fs::metadata(dir.join(format!("{}.bin", e.name)))
            .map_err(|err| format!("{}.bin: {err}", e.name))?
            .len() as usize;
        if len != e.encoded_bytes {
            return Err(format!(
                "{}.bin has {len} bytes, the manifest says {}",
                e.name, e.encoded_bytes
            ));
        }
    }
    Ok(entries)
}

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

fn big(text: &str) -> Value {
    Value::Int(Int::parse(text).expect("decimal text"))
}

/// The value each manifest expression describes, built here independently.
fn expected(name: &str) -> (Value, &'static str) {
    match name {
        "small_msg" => (
            Value::Dict(vec![
                (s("id"), Value::int(17)),
                (s("op"), s("run")),
                (s("args"), Value::List(vec![s("a"), s("b")])),
                (s("ok"), Value::Bool(true)),
                (s("t"), Value::Float(1.5)),
            ]),
            "{\"id\": 17, \"op\": \"run\", \"args\": [\"a\", \"b\"], \"ok\": True, \"t\": 1.5}",
        ),
        "ints_10k" => (
            Value::List((-5000..5000).map(Value::int).collect()),
            "list(range(-5000, 5000))",
        ),
        "floats_10k" => (
            Value::List((0..10000).map(|i| Value::Float(f64::from(i) * 0.5)).collect()),
            "[i * 0.5 for i in range(10000)]",
        ),
        "strs_10k" => (
            Value::List((0..10000).map(|i| s(&format!("item-{i}"))).collect()),
            "[\"item-%d\" % i for i in range(10000)]",
        ),
        "bytes_1m" => (
            Value::Bytes((0..=255u8).cycle().take(256 * 4096).collect()),
            "bytes(range(256)) * 4096",
        ),
        "nested" => (
            Value::Dict(
                (0..100i64)
                    .map(|k| {
                        let rows = (0..10i64)
                            .map(|j| {
                                Value::Tuple(vec![
                                    Value::int(k * 10 + j),
                                    s(&format!("s{j}")),
                                    Value::Float(j as f64 * 0.25),
                                    Value::None,
                                    Value::Bool(true),
                                ])
                            })
                            .collect();
                        (s(&format!("key-{k}")), Value::List(rows))
                    })
                    .collect(),
            ),
            "{\"key-%d\" % k: [(k * 10 + j, \"s%d\" % j, j * 0.25, None, True) for j in range(10)] for k in range(100)}",
        ),
        "bigints" => (
            Value::List(
                (0..1000i128)
                    .map(|i| big(&((1i128 << 100) + i).to_string()))
                    .collect(),
            ),
            "[2**100 + i for i in range(1000)]",
        ),
        other => panic!("no expected value for vector {other}: add one to core/tests/vectors.rs"),
    }
}

/// What the manifest calls items: a list's length; for a dict of lists, the rows of all
/// its lists; otherwise 1.
fn items(v: &Value) -> usize {
    match v {
        Value::List(x) => x.len(),
        Value::Dict(entries) if entries.iter().all(|(_, v)| matches!(v, Value::List(_))) => entries
            .iter()
            .map(|(_, v)| match v {
                Value::List(x) => x.len(),
                _ => 0,
            })
            .sum(),
        _ => 1,
    }
}

#[test]
fn manifest_and_files_agree() {
    let entries = audit(&vectors_dir()).unwrap();
    assert_eq!(entries.len(), 7, "{entries:?}");
    for e in &entries {
        let (value, python) = expected(&e.name);
        assert_eq!(
            e.python, python,
            "{}: the manifest expression changed",
            e.name
        );
        assert_eq!(items(&value), e.items, "{}: item count", e.name);
    }
}

#[test]
fn every_vector_decodes_to_its_value_and_reencodes() {
    let dir = vectors_dir();
    for e in audit(&dir).unwrap() {
        let data = std::fs::read(dir.join(format!("{}.bin", e.name))).unwrap();
        let (value, _) = expected(&e.name);
        assert_eq!(data.len(), e.encoded_bytes, "{}", e.name);
        assert_eq!(data[0], 0x02, "{}: execnet 2.x version byte", e.name);

        // Borrowed, into a growable Vec.
        let mut nodes: Vec<Node> = Vec::new();
        let (version, v) = decode::decode_dumps(&data, &mut nodes, &Limits::DEFAULT).unwrap();
        assert_eq!(version, Version::V2);
        assert!(ref_eq(&v, &value), "{}: borrowed decode differs", e.name);
        let out = encode::to_vec(&v, Envelope::Dumps(version)).unwrap();
        assert!(out == data, "{}: borrowed re-encode differs", e.name);
        let internal = encode::to_vec(&v, Envelope::Internal).unwrap();
        assert!(internal[..] == data[1..], "{}: internal envelope", e.name);

        // Borrowed, into a fixed slice sized by node_bound.
        let need = decode::node_bound(&data[1..]).unwrap();
        let mut fixed = vec![Node::EMPTY; need];
        let (_, v) = decode::decode_dumps(&data, fixed.as_mut_slice(), &Limits::DEFAULT).unwrap();
        assert!(ref_eq(&v, &value), "{}: fixed-slice decode differs", e.name);
        let mut buf = vec![0u8; data.len()];
        let written = encode::to_slice(&v, Envelope::Dumps(Version::V2), &mut buf).unwrap();
        assert!(
            written[..] == data[..],
            "{}: to_slice re-encode differs",
            e.name
        );
        // Too few nodes for a container: the error says how many are enough.
        if need > 1 {
            let mut one = [Node::EMPTY; 1];
            match decode::decode_dumps(&data, &mut one, &Limits::DEFAULT) {
                Err(err) => assert_eq!(
                    err.kind,
                    DecodeErrorKind::StorageFull {
                        capacity: 1,
                        needed: need
                    },
                    "{}",
                    e.name
                ),
                Ok(_) => panic!("{}: decoded into one node", e.name),
            }
        }

        // The internal envelope decodes the same body.
        let v = decode::decode_internal(&data[1..], &mut nodes, &Limits::DEFAULT).unwrap();
        assert!(ref_eq(&v, &value), "{}: internal decode differs", e.name);

        // Owned.
        let (version, owned) = Value::decode_dumps(&data, &Limits::DEFAULT).unwrap();
        assert_eq!(version, Version::V2);
        assert!(
            strict_eq(&owned, &value),
            "{}: owned decode differs",
            e.name
        );
        assert_eq!(items(&owned), e.items, "{}: item count", e.name);
        let out = encode::to_vec(&owned, Envelope::Dumps(Version::V2)).unwrap();
        assert!(out == data, "{}: owned re-encode differs", e.name);
        // Our own encoding of the expected value is the reference's, byte for byte.
        let out = encode::to_vec(&value, Envelope::Dumps(Version::V2)).unwrap();
        assert!(
            out == data,
            "{}: encoding the expected value differs",
            e.name
        );
        // Version 1 differs in the first byte only.
        let v1 = encode::to_vec(&owned, Envelope::Dumps(Version::V1)).unwrap();
        assert_eq!(v1[0], 0x01);
        assert!(v1[1..] == data[1..], "{}: version 1 body", e.name);
    }
}

/// A copy of the vectors directory, less the files named in `skip`.
fn copy_vectors(tag: &str, skip: &[&str]) -> TempDir {
    let tmp = TempDir::new(&format!("vectors-{tag}"));
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !skip.contains(&name.as_str()) {
            std::fs::copy(entry.path(), tmp.0.join(&name)).unwrap();
        }
    }
    tmp
}

#[test]
fn audit_fails_on_a_file_missing_from_the_manifest() {
    let tmp = copy_vectors("extra", &[]);
    std::fs::write(tmp.0.join("stray.bin"), b"\x02LQ").unwrap();
    let err = audit(&tmp.0).unwrap_err();
    assert!(err.contains("stray.bin is not in the manifest"), "{err}");
}

#[test]
fn audit_fails_on_a_manifest_entry_without_its_file() {
    let tmp = copy_vectors("missing", &["nested.bin"]);
    let err = audit(&tmp.0).unwrap_err();
    assert!(err.contains("nested has no nested.bin"), "{err}");
}

#[test]
fn audit_fails_on_a_wrong_length() {
    let tmp = copy_vectors("length", &["small_msg.bin"]);
    std::fs::write(tmp.0.join("small_msg.bin"), b"\x02LQ").unwrap();
    let err = audit(&tmp.0).unwrap_err();
    assert!(err.contains("small_msg.bin has 3 bytes"), "{err}");
    // And the copy with every file intact passes.
    let ok = copy_vectors("intact", &[]);
    assert_eq!(audit(&ok.0).unwrap().len(), 7);
}
