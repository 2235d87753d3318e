//! Fuzzes custodia-tlog's parsers: checkpoints, signed notes, tlog-proof files, tile paths,
//! entry bundles and key strings. Every input that parses must re-encode to exactly itself
//! (the encodings are canonical), and verification with an unrelated key must fail cleanly.

#![no_main]

use custodia_tlog::{
    Checkpoint, NoteVerifier, Tile, TilePath, TlogProof, Verifiers, format_entry_bundle, open_note, parse_entry_bundle,
    parse_tile_path, stored_hashes_from_tile,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a width for the bundle and tile parsers; the rest is the input.
    let Some((&sel, data)) = data.split_first() else { return };
    let width = u16::from(sel) + 1;

    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse(s) {
            assert_eq!(cp.to_text(), s);
        }
        match parse_tile_path(s) {
            Ok(TilePath::Hash(t)) => assert_eq!(t.path(), s),
            Ok(TilePath::Entries(t)) => assert_eq!(t.path(), s),
            Err(_) => {}
        }
        if let Ok(v) = NoteVerifier::from_vkey(s) {
            assert_eq!(v.to_vkey().to_lowercase(), s.to_lowercase());
        }
    }

    // A fixed key cannot have signed fuzzer output; unknown signatures never verify a note.
    let key = ed25519_dalek_key();
    let known: Verifiers = [key].into_iter().collect();
    if let Ok(n) = open_note(data, &known) {
        panic!("fuzzer forged a signature: {n:?}");
    }
    let _ = open_note(data, &Verifiers::new()).map(|_| panic!("note opened with no keys"));

    if let Ok(p) = TlogProof::parse(data) {
        assert_eq!(p.to_text().as_bytes(), data);
        let key = ed25519_dalek_key();
        assert!(p.verify(b"entry", "o", &key, &known).is_err());
    }

    if let Ok(entries) = parse_entry_bundle(data, width) {
        assert_eq!(format_entry_bundle(&entries).unwrap(), data);
    }

    if width <= 256 && data.len() == usize::from(width) * 32 {
        let t = Tile { level: 0, n: u64::from(sel), width };
        let hashes = stored_hashes_from_tile(&t, data).unwrap();
        assert!(hashes.len() >= usize::from(width));
    }
});

fn ed25519_dalek_key() -> NoteVerifier {
    let sk = custodia_tlog::ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    custodia_tlog::NoteSigner::from_signing_key(custodia_tlog::KeyName::new("fuzz.example/log").unwrap(), sk).verifier()
}
