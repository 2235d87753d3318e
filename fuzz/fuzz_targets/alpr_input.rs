//! Fuzzes `custodia_lane::input::parse_engine_output` with arbitrary bytes. It must never panic,
//! and whatever it accepts must respect the documented bounds and normalisation: at most
//! MAX_READS_PER_OUTPUT reads, plates of upper-case A-Z/0-9 within MAX_PLATE_LEN, confidences in
//! 0..=1, at most MAX_CANDIDATES candidates, embedded images that start like a JPEG, and the hash
//! of exactly the input bytes.

#![no_main]

use custodia_lane::input::{
    MAX_CANDIDATES, MAX_EMBEDDED_IMAGE_BYTES, MAX_PLATE_LEN, MAX_READS_PER_OUTPUT, normalise_plate, parse_engine_output,
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn clean_plate(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PLATE_LEN
        && p.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && normalise_plate(p).as_deref() == Some(p)
}

fuzz_target!(|data: &[u8]| {
    let Ok(out) = parse_engine_output(data) else {
        return;
    };
    let digest: [u8; 32] = Sha256::digest(data).into();
    assert_eq!(out.raw_sha256, digest);
    assert!(out.reads.len() <= MAX_READS_PER_OUTPUT);
    assert!(!out.heartbeat || out.reads.is_empty());
    for r in &out.reads {
        assert!(clean_plate(&r.plate));
        assert!((0.0..=1.0).contains(&r.confidence));
        assert!(r.region_confidence.is_none_or(|c| (0.0..=1.0).contains(&c)));
        assert!(r.candidates.len() <= MAX_CANDIDATES);
        for c in &r.candidates {
            assert!(clean_plate(&c.plate));
            assert!(c.confidence.is_none_or(|c| (0.0..=1.0).contains(&c)));
        }
        assert!(r.travel_direction_deg.is_none_or(|d| (0.0..360.0).contains(&d)));
    }
    for img in &out.images {
        assert!(img.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
        assert!(img.jpeg.len() <= MAX_EMBEDDED_IMAGE_BYTES);
    }
});
