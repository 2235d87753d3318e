//! Go's own test vectors (golang.org/x/mod v0.7.0, BSD-3-Clause; see testdata/README.md).

use custodia_tlog::{
    Checkpoint, NoteError, NoteSigner, NoteVerifier, TilePath, Verifiers, leaf_hash, open_note, parse_tile_path,
};

fn vectors() -> Vec<(String, String)> {
    include_str!("../testdata/go-x-mod-sumdb-vectors.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_owned(), v.replace("\\n", "\n"))
        })
        .collect()
}

fn get(k: &str) -> String {
    vectors().into_iter().find(|(kk, _)| kk == k).unwrap().1
}

fn all(k: &str) -> Vec<String> {
    vectors().into_iter().filter(|(kk, _)| kk == k).map(|(_, v)| v).collect()
}

#[test]
fn go_keys_parse_and_format_identically() {
    let v = NoteVerifier::from_vkey(&get("peter.vkey")).unwrap();
    assert_eq!(v.name().as_str(), "PeterNeumann");
    assert_eq!(v.key_id(), 0xc74f20a3);
    assert_eq!(v.to_vkey(), get("peter.vkey"));
    let s = NoteSigner::from_skey(&get("peter.skey")).unwrap();
    assert_eq!(s.verifier(), v);
    assert_eq!(*s.to_skey(), get("peter.skey"));
    assert_eq!(NoteVerifier::from_vkey(&get("enoch.vkey")).unwrap().to_vkey(), get("enoch.vkey"));
    for bad in all("bad.vkey") {
        assert!(NoteVerifier::from_vkey(&bad).is_err(), "{bad}");
    }
}

#[test]
fn go_signature_is_reproduced_byte_for_byte() {
    let s = NoteSigner::from_skey(&get("peter.skey")).unwrap();
    let signed = s.sign(&get("text")).unwrap();
    assert_eq!(signed, format!("{}\n{}", get("text"), get("peter.sig")));
}

#[test]
fn go_open_cases() {
    let text = get("text");
    let peter = NoteVerifier::from_vkey(&get("peter.vkey")).unwrap();
    let enoch = NoteVerifier::from_vkey(&get("enoch.vkey")).unwrap();
    let (psig, esig) = (get("peter.sig"), get("enoch.sig"));
    let only_peter: Verifiers = [peter.clone()].into_iter().collect();
    let both: Verifiers = [peter.clone(), enoch.clone()].into_iter().collect();

    // One verified, one unknown (kept, not trusted).
    let n = open_note(format!("{text}\n{psig}{esig}").as_bytes(), &only_peter).unwrap();
    assert_eq!(n.text(), text);
    assert_eq!(n.verified_signatures().len(), 1);
    assert_eq!(n.unverified_signatures().len(), 1);
    assert_eq!(n.unverified_signatures()[0].key_id, 0xaf0cfe78);
    assert!(n.is_signed_by(&peter) && !n.is_signed_by(&enoch));

    // Both verified.
    let n = open_note(format!("{text}\n{psig}{esig}").as_bytes(), &both).unwrap();
    assert_eq!(n.verified_signatures().len(), 2);

    // Only unknown signatures: rejected.
    let only_enoch_known: Verifiers = [enoch].into_iter().collect();
    assert_eq!(
        open_note(format!("{text}\n{psig}").as_bytes(), &only_enoch_known),
        Err(NoteError::Unverified { unverified: 1 })
    );

    // A known key's bad signature rejects the note (Go: enochABCD-style corruption).
    let bad = esig.replace("5n2tiOHp", "5nABCD2tiOHp");
    assert!(matches!(
        open_note(format!("{text}\n{psig}{bad}").as_bytes(), &both),
        Err(NoteError::InvalidSignature { .. } | NoteError::Malformed(_))
    ));

    // Go's badMsgs: all malformed.
    let bad_msgs = [
        text.clone(),
        format!("{text}\n"),
        format!("{text}\n{}", &psig[..psig.len() - 1]),
        format!("\x01{text}\n{psig}"),
        format!(
            "{text}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{text}\n{psig}Unexpected line.\n"),
    ];
    for m in &bad_msgs {
        assert!(matches!(open_note(m.as_bytes(), &only_peter), Err(NoteError::Malformed(_))), "{m:?}");
    }
    let mut invalid_utf8 = b"\xff".to_vec();
    invalid_utf8.extend_from_slice(format!("{text}\n{psig}").as_bytes());
    assert!(matches!(open_note(&invalid_utf8, &only_peter), Err(NoteError::Malformed(_))));
}

#[test]
fn go_tree_text_parses_as_checkpoint() {
    let cp = Checkpoint::parse(&get("tree.text")).unwrap();
    assert_eq!(cp.origin(), "go.sum database tree");
    assert_eq!(cp.size(), get("tree.size").parse::<u64>().unwrap());
    assert_eq!(cp.hash(), leaf_hash(get("tree.leaf").as_bytes()));
    assert_eq!(cp.to_text(), get("tree.text"));
    for bad in all("tree.bad") {
        assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
    }
}

/// Go's tile paths carry the height; with it removed they are C2SP paths with the same
/// index encoding. Full widths depend on the height, so only partial widths are compared.
#[test]
fn go_tile_paths_index_encoding() {
    for v in all("tilepath") {
        let f: Vec<&str> = v.split(' ').collect();
        let (go_path, h, l, n, w) = (f[0], f[1], f[2], f[3].parse::<u64>().unwrap(), f[4].parse::<u16>().unwrap());
        let c2sp = go_path.replacen(&format!("tile/{h}/"), "tile/", 1);
        let TilePath::Hash(t) = parse_tile_path(&c2sp).unwrap() else { panic!("{c2sp}") };
        assert_eq!(t.level.to_string(), l);
        assert_eq!(t.n, n);
        if c2sp.contains(".p/") {
            assert_eq!(t.width, w);
        }
        assert_eq!(t.path(), c2sp);
    }
    for v in all("badtilepath") {
        let c2sp = v.replacen("tile/3/", "tile/", 1);
        assert!(parse_tile_path(&c2sp).is_err(), "{c2sp}");
    }
}
