//! The program server's request decoder never panics, and what it accepts
//! is a well-formed request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tourbillon_cogs::program::Request;

fuzz_target!(|data: &[u8]| {
    match Request::decode(data) {
        Ok(r) => {
            // A decoded request re-encodes as JSON and has a program name.
            assert!(serde_json::to_string(&r.data).is_ok());
            let _ = r.program.len();
        }
        Err((id, message)) => {
            assert!(!message.is_empty());
            let _ = id;
        }
    }
});
