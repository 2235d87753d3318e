//! Fuzzes `custodia_lane::strip::strip_metadata` with arbitrary bytes. It must never panic, and
//! whatever it accepts must come out as the same kind of image, no larger than the input, that
//! strips again to itself with nothing more removed (the output holds no metadata segment).

#![no_main]

use custodia_lane::strip::{sniff, strip_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(out) = strip_metadata(data) else {
        return;
    };
    assert_eq!(sniff(data), Some(out.kind));
    assert_eq!(sniff(&out.bytes), Some(out.kind));
    assert!(out.bytes.len() <= data.len());
    let again = strip_metadata(&out.bytes).expect("stripped output strips again");
    assert_eq!(again.bytes, out.bytes);
    assert!(again.removed.is_empty());
});
