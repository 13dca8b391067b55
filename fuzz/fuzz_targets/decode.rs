//! Value decode: whole buffer and take-from-front, both envelopes, tight and default
//! limits. Properties: whatever decodes re-encodes to bytes that decode to the same
//! value (and, from the borrowed view, to the very same bytes); the node count stays
//! within the input length; the owned decoder accepts exactly what the borrowed one
//! accepts and fails with the same error; serde's reading of the opcode stream accepts
//! exactly what the tape accepts.
#![no_main]

use execnet_core::{decode, encode, Envelope, Limits, Node, StrConfig, Value, ValueRef};
use libfuzzer_sys::fuzz_target;

/// Nodes in the decoded tree.
fn count(v: &ValueRef<'_, '_>) -> usize {
    1 + match v {
        ValueRef::List(s) | ValueRef::Tuple(s) | ValueRef::Set(s) | ValueRef::FrozenSet(s) => {
            s.iter().map(|i| count(&i)).sum()
        }
        ValueRef::Dict(m) => m.iter().map(|(k, v)| count(&k) + count(&v)).sum(),
        _ => 0,
    }
}

fn check(v: &ValueRef<'_, '_>, original: &[u8], envelope: Envelope) {
    // Memory stays proportional to the input: every node comes from its own input byte.
    let nodes = count(v);
    assert!(
        nodes <= original.len(),
        "{nodes} nodes from {} bytes",
        original.len()
    );
    let bytes = encode::to_vec(v, envelope).expect("a decoded value re-encodes");
    assert_eq!(bytes, original, "borrowed re-encode differs");
    let owned = Value::from_ref(v, StrConfig::LOADS);
    let again = encode::to_vec(&owned, envelope).expect("owned re-encodes");
    let back = match envelope {
        Envelope::Internal => Value::decode_internal(&again, &Limits::DEFAULT),
        Envelope::Dumps(_) => Value::decode_dumps(&again, &Limits::DEFAULT).map(|(_, v)| v),
    }
    .expect("owned re-encoding decodes");
    let same = encode::to_vec(&back, envelope).expect("re-encodes");
    assert_eq!(same, again, "owned value not stable across a round trip");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = if selector & 1 == 0 {
        Limits::DEFAULT
    } else {
        Limits::TIGHT
    };
    let mut nodes: Vec<Node> = Vec::new();
    match (selector >> 1) % 6 {
        0 => {
            if let Ok(v) = decode::decode_internal(input, &mut nodes, &limits) {
                check(&v, input, Envelope::Internal);
            }
        }
        1 => {
            if let Ok((ver, v)) = decode::decode_dumps(input, &mut nodes, &limits) {
                check(&v, input, Envelope::Dumps(ver));
            }
        }
        2 => {
            if let Ok((v, rest)) = decode::take_internal(input, &mut nodes, &limits) {
                let used = input.len() - rest.len();
                check(&v, &input[..used], Envelope::Internal);
            }
        }
        3 => {
            let borrowed = decode::decode_internal(input, &mut nodes, &limits)
                .map(|v| encode::to_vec(&Value::from_ref(&v, StrConfig::LOADS), Envelope::Internal).ok());
            let owned = Value::decode_internal(input, &limits)
                .map(|v| encode::to_vec(&v, Envelope::Internal).ok());
            assert_eq!(owned, borrowed, "owned and borrowed decoders disagree");
        }
        4 => {
            let tape = decode::decode_internal(input, &mut nodes, &limits).is_ok();
            let serde = execnet_core::serde::from_internal::<serde::de::IgnoredAny>(
                input,
                &limits,
                StrConfig::GATEWAY,
            )
            .is_ok();
            assert_eq!(serde, tape, "serde and the tape disagree");
        }
        _ => {
            // Fixed storage: must agree with Vec storage or report StorageFull.
            let mut fixed = [Node::EMPTY; 16];
            let a = decode::decode_dumps(input, fixed.as_mut_slice(), &limits)
                .map(|(_, v)| encode::to_vec(&v, Envelope::Internal).ok());
            let b = decode::decode_dumps(input, &mut nodes, &limits)
                .map(|(_, v)| encode::to_vec(&v, Envelope::Internal).ok());
            match (a, b) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(e), Ok(_)) => assert!(
                    matches!(e.kind, execnet_core::DecodeErrorKind::StorageFull { .. }),
                    "{e}"
                ),
                (Ok(_), Err(e)) => panic!("fixed storage decoded what Vec storage refused: {e}"),
                (Err(_), Err(_)) => {}
            }
        }
    }
});
