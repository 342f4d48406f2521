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
            let again = serde_json::to_vec(&serde_json::json!({
                "id": r.id, "program": r.program, "data_pool": r.data, "metadata": r.metadata,
            }))
            .unwrap();
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
        Just("\"data_pool\":".to_owned()),
        Just("\"metadata\":".to_owned()),
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

#[test]
fn ryuso_request_bodies_decode_and_data_stays_another_name_for_data_pool() {
    let r =
        Request::decode(br#"{"program": "my_program", "data_pool": {"a": "variable A", "b": 2.345}, "metadata": {}}"#)
            .unwrap();
    assert_eq!(r.id, Value::Null, "id is optional");
    assert_eq!(r.program, "my_program");
    assert_eq!(r.data, serde_json::json!({"a": "variable A", "b": 2.345}));
    assert_eq!(r.metadata, serde_json::json!({}));
    let old = Request::decode(br#"{"id": 3, "program": "p", "data": {"a": 1}}"#).unwrap();
    assert_eq!(
        (old.id, old.data, old.metadata),
        (3.into(), serde_json::json!({"a": 1}), Value::Null)
    );
    let both = Request::decode(br#"{"id": 4, "program": "p", "data": {}, "data_pool": {}}"#).unwrap_err();
    assert_eq!(both.0, 4);
    assert!(both.1.contains("not both"), "{}", both.1);
    let meta = Request::decode(br#"{"program": "p", "metadata": [1]}"#).unwrap_err();
    assert!(meta.1.contains("`metadata` must be a dict, not list"), "{}", meta.1);
    let unknown = Request::decode(br#"{"program": "p", "datapool": {}}"#).unwrap_err();
    assert!(unknown.1.contains("unknown request field `datapool`"), "{}", unknown.1);
}
