//! The client-facing event parser: JSON objects and NDJSON lines. Any input must give an event or an error
//! naming a field, never a panic; an accepted event must pass or fail validation cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidelog::event::{parse_event_json, validate_event, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for line in std::iter::once(text).chain(text.lines()) {
        if let Ok(event) = parse_event_json(line) {
            // What validation accepts is stored as the client's JSON text and must read back as JSON.
            if validate_event(&event, &Limits::default()).is_ok() {
                assert!(serde_json::from_str::<serde_json::Value>(&event.payload).is_ok(), "{}", event.payload);
                if let Some(metadata) = &event.metadata {
                    assert!(serde_json::from_str::<serde_json::Value>(metadata).is_ok(), "{metadata}");
                }
            }
        }
    }
});
