//! Fuzzes what lies *behind* a valid signature, which `tlog_parsers` cannot reach (the fuzzer
//! cannot forge Ed25519): the fuzzer writes checkpoint bodies, this target signs them with a
//! fixed log key, and the signed result goes through `SignedCheckpoint::open`,
//! `TlogProof::verify_leaf_hash` and `check_consistency`. Each verdict is compared with an
//! independent implementation of the RFC 9162 §2.1.3.2 / §2.1.4.2 verification algorithms
//! written here (iterative, bit by bit; custodia-tlog's is recursive, after Go's tlog), so a
//! forged proof that custodia-tlog accepts, or a good one it refuses, is a crash.
//!
//! Input: the first byte picks the mode.
//! - even: a tlog-proof file whose checkpoint part is an *unsigned* checkpoint body; the
//!   entry whose leaf hash is checked is the file's `extra` (empty if none).
//! - odd: `old body` `\n` `new body` `\n` then one base64 hash per line (a consistency proof).

#![no_main]

use custodia_tlog::{
    Checkpoint, EMPTY_TREE_HASH, Hash, KeyName, MAX_TREE_SIZE, NoteSigner, SignedCheckpoint, TlogProof, Verifiers,
    check_consistency, leaf_hash, node_hash,
};
use libfuzzer_sys::fuzz_target;

fn signer() -> NoteSigner {
    let sk = custodia_tlog::ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    NoteSigner::from_signing_key(KeyName::new("fuzz.example/log").unwrap(), sk)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    if mode % 2 == 0 { inclusion(data) } else { consistency(data) }
});

fn inclusion(data: &[u8]) {
    let Ok(p) = TlogProof::parse(data) else { return };
    let Ok(cp) = Checkpoint::parse(&p.checkpoint) else { return };
    let signer = signer();
    let Ok(signed) = signer.sign(&p.checkpoint) else { return };
    let verifier = signer.verifier();
    let known: Verifiers = [verifier.clone()].into_iter().collect();

    let opened =
        SignedCheckpoint::open(signed.as_bytes(), cp.origin(), &verifier, &known).expect("own signature opens");
    assert_eq!(opened.checkpoint, cp);
    assert_eq!(opened.checkpoint.to_text(), p.checkpoint);

    let q = TlogProof { checkpoint: signed, ..p };
    if let Ok(again) = TlogProof::parse(q.to_text().as_bytes()) {
        assert_eq!(again, q);
    }
    let leaf = leaf_hash(q.extra.as_deref().unwrap_or(b""));
    let got = q.verify_leaf_hash(leaf, cp.origin(), &verifier, &known);
    let want = cp.size() <= MAX_TREE_SIZE && rfc9162_inclusion(q.index, cp.size(), leaf, &q.proof, cp.hash());
    assert_eq!(got.is_ok(), want, "custodia-tlog {got:?}, RFC 9162 says {want}");
}

fn consistency(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, "\n\n");
    let (Some(old), Some(new)) = (parts.next(), parts.next()) else { return };
    let (Ok(old), Ok(new)) = (Checkpoint::parse(&format!("{old}\n")), Checkpoint::parse(&format!("{new}\n"))) else {
        return;
    };
    let mut proof = Vec::new();
    for line in parts.next().unwrap_or("").split('\n').filter(|l| !l.is_empty()).take(70) {
        let Some(h) = Hash::from_base64(line) else { return };
        proof.push(h);
    }
    // Both checkpoints also go through signing and opening, extensions and all.
    let signer = signer();
    let verifier = signer.verifier();
    let known: Verifiers = [verifier.clone()].into_iter().collect();
    for cp in [&old, &new] {
        let signed = signer.sign(&cp.to_text()).expect("a parsed checkpoint is signable");
        let opened =
            SignedCheckpoint::open(signed.as_bytes(), cp.origin(), &verifier, &known).expect("own signature opens");
        assert_eq!(&opened.checkpoint, cp);
    }

    let got = check_consistency(&old, &new, &proof);
    let want = old.origin() == new.origin()
        && new.size() >= old.size()
        && if old.size() == new.size() {
            old.hash() == new.hash() && proof.is_empty()
        } else if old.size() == 0 {
            old.hash() == EMPTY_TREE_HASH
        } else {
            new.size() <= MAX_TREE_SIZE && rfc9162_consistency(old.size(), new.size(), old.hash(), new.hash(), &proof)
        };
    assert_eq!(got.is_ok(), want, "custodia-tlog {got:?}, RFC 9162 says {want}");
}

/// RFC 9162 §2.1.3.2, step by step.
fn rfc9162_inclusion(index: u64, size: u64, leaf: Hash, path: &[Hash], root: Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, leaf);
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == root
}

/// RFC 9162 §2.1.4.2 for 0 < first < second, step by step.
fn rfc9162_consistency(first: u64, second: u64, first_hash: Hash, second_hash: Hash, path: &[Hash]) -> bool {
    if path.is_empty() {
        return false;
    }
    let mut path = path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, first_hash);
    }
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == first_hash && sr == second_hash && snode == 0
}
