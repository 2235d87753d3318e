//! Signed notes, cosignatures, checkpoints and tlog-proof files.

use custodia_tlog::{
    Checkpoint, CheckpointError, CosignatureSigner, KeyName, MAX_NOTE_SIGNATURES, MAX_NOTE_SIZE, MemoryHashStore,
    NoteError, NoteSigner, NoteVerifier, OpenCheckpointError, SignatureType, SignedCheckpoint, TlogProof,
    TlogProofError, Verifiers, add_signature_lines, leaf_hash, open_note, prove_record,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const ORIGIN: &str = "custodia.example/audit";

fn keys() -> (NoteSigner, CosignatureSigner) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    (
        NoteSigner::generate(ORIGIN, &mut rng).unwrap(),
        CosignatureSigner::generate("witness.example/w1", &mut rng).unwrap(),
    )
}

#[test]
fn key_strings_round_trip() {
    let (log, wit) = keys();
    let v = log.verifier();
    assert_eq!(NoteVerifier::from_vkey(&v.to_vkey()).unwrap(), v);
    assert_eq!(NoteSigner::from_skey(&log.to_skey()).unwrap().verifier(), v);
    let wv = wit.verifier();
    assert_eq!(wv.signature_type(), SignatureType::CosignatureV1);
    assert!(wv.to_vkey().starts_with("witness.example/w1+"));
    assert_eq!(NoteVerifier::from_vkey(&wv.to_vkey()).unwrap(), wv);
    assert_eq!(CosignatureSigner::from_skey(&wit.to_skey()).unwrap().verifier(), wv);
    // A cosigner key string is not a log key string and vice versa.
    assert!(NoteSigner::from_skey(&wit.to_skey()).is_err());
    assert!(CosignatureSigner::from_skey(&log.to_skey()).is_err());
    // Debug shows no key material.
    let dbg = format!("{log:?} {wit:?}");
    assert!(!dbg.contains(&log.to_skey()[20..]));
    for bad in ["", "a b", "a+b", "a\u{a0}b", "\u{2003}"] {
        assert!(KeyName::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cosignatures_verify_and_carry_their_time() {
    let (log, wit) = keys();
    let cp = Checkpoint::new(ORIGIN, 5, leaf_hash(b"x")).unwrap();
    let signed = log.sign(&cp.to_text()).unwrap();
    let line = wit.signature_line(&cp.to_text(), 1_679_315_147).unwrap();
    let both = add_signature_lines(&signed, std::slice::from_ref(&line)).unwrap();
    let vs: Verifiers = [log.verifier(), wit.verifier()].into_iter().collect();
    let sc = SignedCheckpoint::open(both.as_bytes(), ORIGIN, &log.verifier(), &vs).unwrap();
    assert_eq!(sc.checkpoint, cp);
    assert!(sc.note.is_signed_by(&wit.verifier()));
    let ws = sc.note.verified_signatures().iter().find(|s| s.name == "witness.example/w1").unwrap();
    assert_eq!(ws.timestamp, Some(1_679_315_147));

    // The cosignature covers the time: change it and the note is rejected.
    let other = wit.signature_line(&cp.to_text(), 1_679_315_148).unwrap();
    let (_, b64) = line.trim_end().rsplit_once(' ').unwrap();
    let (_, b64_other) = other.trim_end().rsplit_once(' ').unwrap();
    use base64::Engine;
    let mut raw = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let raw_other = base64::engine::general_purpose::STANDARD.decode(b64_other).unwrap();
    raw[4..12].copy_from_slice(&raw_other[4..12]);
    let forged = format!("— witness.example/w1 {}\n", base64::engine::general_purpose::STANDARD.encode(&raw));
    let bad = add_signature_lines(&signed, &[forged]).unwrap();
    assert!(matches!(open_note(bad.as_bytes(), &vs), Err(NoteError::InvalidSignature { .. })));

    // A cosignature is not a plain signature: the witness key cannot stand in for the log.
    let only_wit = format!("{}\n{}", cp.to_text(), line);
    assert!(matches!(
        SignedCheckpoint::open(only_wit.as_bytes(), ORIGIN, &log.verifier(), &vs),
        Err(OpenCheckpointError::NotSignedByLog(_))
    ));
    assert!(wit.signature_line(&cp.to_text(), 1 << 63).is_err());
}

#[test]
fn notes_are_bounded_before_parsing() {
    let (log, _) = keys();
    let vs: Verifiers = [log.verifier()].into_iter().collect();
    let big = vec![b'a'; MAX_NOTE_SIZE + 1];
    assert!(matches!(open_note(&big, &vs), Err(NoteError::TooLarge { .. })));
    let text = "hello\n";
    let signed = log.sign(text).unwrap();
    let line = signed.strip_prefix("hello\n\n").unwrap();
    let many = format!("{text}\n{}", line.repeat(MAX_NOTE_SIGNATURES + 1));
    assert!(matches!(open_note(many.as_bytes(), &vs), Err(NoteError::TooManySignatures { .. })));
    // Duplicates of a known signature are collapsed, not rejected.
    let dup = format!("{text}\n{}", line.repeat(3));
    assert_eq!(open_note(dup.as_bytes(), &vs).unwrap().verified_signatures().len(), 1);
    // Non-canonical base64 (flipped padding bits) is malformed.
    let l = line.trim_end();
    let mut chars: Vec<char> = l.chars().collect();
    let pos = chars.iter().rposition(|&c| c != '=').unwrap();
    chars[pos] = if chars[pos] == 'A' { 'B' } else { 'A' };
    let tweaked: String = chars.into_iter().collect();
    let res = open_note(format!("{text}\n{tweaked}\n").as_bytes(), &vs);
    assert!(res.is_err());
    assert!(log.sign("no newline").is_err());
    assert!(log.sign("bell\x07\n").is_err());
}

#[test]
fn checkpoints_are_strict() {
    let h = leaf_hash(b"x").to_base64();
    let good = format!("{ORIGIN}\n10\n{h}\n");
    assert_eq!(Checkpoint::parse(&good).unwrap().to_text(), good);
    let ext = format!("{ORIGIN}\n10\n{h}\nrekor-ish extension\n");
    assert_eq!(Checkpoint::parse(&ext).unwrap().extensions(), ["rekor-ish extension"]);
    assert_eq!(Checkpoint::parse(&format!("{ORIGIN}\n0\n{h}\n")).unwrap().size(), 0);
    let bad = [
        format!("{ORIGIN}\n10\n{h}"),
        format!("{ORIGIN}\n010\n{h}\n"),
        format!("{ORIGIN}\n+10\n{h}\n"),
        format!("{ORIGIN}\n10 \n{h}\n"),
        format!("{ORIGIN}\n9223372036854775808\n{h}\n"),
        format!("{ORIGIN}\n18446744073709551616\n{h}\n"),
        format!("\n10\n{h}\n"),
        format!("{ORIGIN}\n10\n{}\n", &h[..43]),
        format!("{ORIGIN}\n10\n{h}\n\n"),
        format!("{ORIGIN}\n10\n{h}\n\next\n"),
        format!("{ORIGIN}\n10\n"),
        format!("{ORIGIN}\r\n10\n{h}\n"),
        format!("{ORIGIN}\n10\n{}\n", h.replace('=', "")),
    ];
    for b in &bad {
        assert!(Checkpoint::parse(b).is_err(), "{b:?}");
    }
    assert_eq!(Checkpoint::new("", 1, leaf_hash(b"")), Err(CheckpointError::InvalidOrigin));
}

#[test]
fn tlog_proof_files() {
    let (log, wit) = keys();
    let mut s = MemoryHashStore::new();
    for i in 0..1234u32 {
        s.append(format!("event {i}").as_bytes());
    }
    let cp = Checkpoint::new(ORIGIN, s.tree_size(), s.root()).unwrap();
    let signed = log.sign(&cp.to_text()).unwrap();
    let signed = add_signature_lines(&signed, &[wit.signature_line(&cp.to_text(), 42).unwrap()]).unwrap();
    let vs: Verifiers = [log.verifier(), wit.verifier()].into_iter().collect();
    for (idx, extra) in [(0u64, None), (617, Some(b"vrf".to_vec())), (1233, Some(Vec::new()))] {
        let p = TlogProof {
            extra,
            index: idx,
            proof: prove_record(s.tree_size(), idx, &s).unwrap(),
            checkpoint: signed.clone(),
        };
        let text = p.to_text();
        let back = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.to_text(), text);
        let entry = format!("event {idx}");
        back.verify(entry.as_bytes(), ORIGIN, &log.verifier(), &vs).unwrap();
        assert!(matches!(back.verify(b"event 9999", ORIGIN, &log.verifier(), &vs), Err(TlogProofError::Proof(_))));
        assert!(matches!(
            back.verify(entry.as_bytes(), "other.example/log", &log.verifier(), &vs),
            Err(TlogProofError::Checkpoint(OpenCheckpointError::OriginMismatch { .. }))
        ));
        // Every single-bit flip anywhere in the file is caught.
        let bytes = text.as_bytes();
        for pos in (0..bytes.len()).step_by(7) {
            for bit in [0u8, 2, 5] {
                let mut t = bytes.to_vec();
                t[pos] ^= 1 << bit;
                // Policy for this test: the log key and the witness must both have signed.
                let ok = TlogProof::parse(&t)
                    .and_then(|p| p.verify(entry.as_bytes(), ORIGIN, &log.verifier(), &vs))
                    .map(|sc| sc.note.is_signed_by(&wit.verifier()));
                if ok == Ok(true) {
                    // Only the unauthenticated extra line may change without detection.
                    let line_start = bytes[..pos].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    assert!(text[line_start..].starts_with("extra "), "undetected flip at {pos} bit {bit}");
                }
            }
        }
    }
    let p = TlogProof { extra: None, index: 5000, proof: vec![], checkpoint: signed.clone() };
    assert!(matches!(
        TlogProof::parse(p.to_text().as_bytes()).unwrap().verify(b"x", ORIGIN, &log.verifier(), &vs),
        Err(TlogProofError::IndexOutOfRange { .. })
    ));
    for bad in [
        "c2sp.org/tlog-proof@v2\nindex 0\n\nx\n".to_owned(),
        "c2sp.org/tlog-proof@v1\nindex 01\n\nx\n".to_owned(),
        "c2sp.org/tlog-proof@v1\nindex 0\nnot-a-hash\n\nx\n".to_owned(),
        "c2sp.org/tlog-proof@v1\nindex 0\n".to_owned(),
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\nx\n".to_owned(),
        format!("c2sp.org/tlog-proof@v1\nindex 0\n{}\nx\n", format!("{}\n", leaf_hash(b"").to_base64()).repeat(65)),
    ] {
        assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn checkpoint_round_trip(origin in "[a-z./0-9]{1,40}", size in 0u64..(1 << 63), h in any::<[u8; 32]>(),
                             ext in proptest::collection::vec("[ -~]{1,20}", 0..3)) {
        let cp = Checkpoint::with_extensions(&origin, size, custodia_tlog::Hash(h), ext).unwrap();
        prop_assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    }

    #[test]
    fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let vs = Verifiers::new();
        let _ = open_note(&b, &vs);
        let _ = TlogProof::parse(&b);
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = Checkpoint::parse(s);
            let _ = custodia_tlog::parse_tile_path(s);
            let _ = NoteVerifier::from_vkey(s);
        }
        let _ = custodia_tlog::parse_entry_bundle(&b, 3);
    }
}
