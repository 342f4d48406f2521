//! The request decoder never panics, whatever the bytes: every input is a
//! request or a reason, and a rejection built from it is valid JSON.
//! (A property test in place of a `cargo fuzz` target: it runs on stable,
//! in every `cargo test`.)

use proptest::prelude::*;
use serde_json::Value;
use tourbillon_cogs::program::{rejection, Request};

fn check(bytes: &[u8]) {
    match Request::decode(bytes) {
        Ok(r) => {
            let again =
                serde_json::to_vec(&serde_json::json!({ "id": r.id, "program": r.program, "data": r.data })).unwrap();
            assert_eq!(
                Request::decode(&again).unwrap(),
                r,
                "a decoded request survives a round trip"
            );
        }
        Err((id, message)) => {
            assert!(!message.is_empty());
            let line = serde_json::to_string(&rejection(id, message)).unwrap();
            let back: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(back["status"], "rejected");
        }
    }
}

/// JSON-ish text: fragments of requests glued together, so the decoder
/// sees many near-valid inputs, not only noise.
fn jsonish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\"id\":".to_owned()),
        Just("\"program\":".to_owned()),
        Just("\"data\":".to_owned()),
        Just("\"p\"".to_owned()),
        Just(",".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("null".to_owned()),
        Just("1e999".to_owned()),
        Just("-0".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        "[a-z0-9 ]{0,4}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    #[test]
    fn near_valid_requests_never_panic(text in jsonish()) {
        check(text.as_bytes());
    }
}

#[test]
fn a_valid_request_decodes_and_a_bad_one_keeps_its_id() {
    let r = Request::decode(br#"{"id": [1], "program": "p", "data": {"a": 1}}"#).unwrap();
    assert_eq!((r.id, r.program.as_str()), (serde_json::json!([1]), "p"));
    let (id, message) = Request::decode(br#"{"id": "x", "program": 5}"#).unwrap_err();
    assert_eq!(
        (id, message.as_str()),
        (serde_json::json!("x"), "`program` must be a string")
    );
}
