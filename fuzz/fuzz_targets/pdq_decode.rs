//! Fuzzes `custodia_pdq::hash_bytes` (both pipelines, plus the dihedral path) with arbitrary
//! bytes: it must never panic. Whatever it accepts must hash consistently: the dihedral
//! original equals the single hash, quality stays in 0..=100, and the result names the
//! pipeline asked for.

#![no_main]

use custodia_pdq::{Pipeline, hash_bytes, hash_bytes_dihedral};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for p in Pipeline::ALL {
        let Ok(r) = hash_bytes(data, p) else {
            continue;
        };
        assert!(r.quality <= 100);
        assert_eq!(r.pipeline, p);
        let d = hash_bytes_dihedral(data, p).expect("accepted once, accepted twice");
        assert_eq!(d.original(), r);
    }
});
