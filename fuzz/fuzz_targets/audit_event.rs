//! Fuzzes `custodia_vault::audit::Event::parse` with arbitrary bytes. It must never panic, and
//! the encoding is canonical: every input that parses re-encodes to exactly itself, so a log
//! entry's leaf hash identifies one event. An accepted event also stays within the size bound.

#![no_main]

use custodia_vault::audit::Event;
use custodia_vault::audit::event::MAX_EVENT_SIZE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = Event::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_EVENT_SIZE);
    assert_eq!(event.to_bytes(), data, "accepted a non-canonical encoding");
    assert_eq!(Event::parse(&event.to_bytes()).as_ref(), Ok(&event));
});
