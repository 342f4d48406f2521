//! Differential: the lazy JSON index accepts and rejects exactly what
//! serde_json does (with the features this build gives it), reads the same
//! value, writes the bytes back as they were, and an edit writes what the
//! same edit of serde_json's tree holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tourbillon::lazy::{validate, Lazy, NotIndexed};

fuzz_target!(|data: &[u8]| {
    let tree = serde_json::from_slice::<Value>(data).ok();
    assert_eq!(validate(data), tree.is_some(), "validate disagrees with serde_json");
    match Lazy::index(data) {
        Ok(mut lazy) => {
            let tree = tree.expect("indexed bytes parse");
            assert!(tree.is_object());
            assert_eq!(lazy.value(), &tree);
            let mut out = Vec::new();
            lazy.write(&mut out);
            let trimmed = data.trim_ascii();
            assert_eq!(out, trimmed, "unedited bytes are written as they were");
            // Edit the first key (if any) and add one: the written bytes
            // parse to serde_json's edited tree.
            let mut edited = tree.clone();
            let map = edited.as_object_mut().expect("an object");
            let first = map.keys().next().cloned();
            if let Some(k) = first {
                lazy.set(&k, Value::from("x\"y"));
                map.insert(k, Value::from("x\"y"));
            }
            lazy.set("added", Value::from(1));
            map.insert("added".into(), Value::from(1));
            let last = map.keys().last().cloned().expect("a key");
            assert_eq!(lazy.remove(&last), map.remove(&last));
            out.clear();
            lazy.write(&mut out);
            assert_eq!(serde_json::from_slice::<Value>(&out).expect("written JSON parses"), edited);
            assert_eq!(lazy.value(), &edited);
        }
        Err(NotIndexed::Invalid) => assert!(tree.is_none(), "refused valid JSON"),
        Err(NotIndexed::Other) => {}
    }
});
