//! The witness: cosigns a log's checkpoints only while each extends the last it cosigned, so a
//! log that shows two histories is caught; the vault publishes the cosignatures it collects.

use std::sync::Arc;

use custodia_tlog::{
    Checkpoint, CosignatureSigner, MemoryHashStore, NoteSigner, NoteVerifier, SignedCheckpoint, Verifiers, VerifyError,
    prove_tree, tree_hash,
};
use custodia_vault::audit::witness::{Witness, WitnessError, add_checkpoint_body, parse_add_checkpoint};
use custodia_vault::clock::ManualClock;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const ORIGIN: &str = "custodia/test-log";

fn history(tag: &str, n: u64) -> MemoryHashStore {
    let mut s = MemoryHashStore::new();
    for i in 0..n {
        // Both histories agree on the first 5 entries, then differ.
        let who = if i < 5 { "common" } else { tag };
        s.append(format!("{who} event {i}").as_bytes());
    }
    s
}

fn signed(log: &NoteSigner, store: &MemoryHashStore, size: u64) -> String {
    let cp = Checkpoint::new(ORIGIN, size, tree_hash(size, store).unwrap()).unwrap();
    log.sign(&cp.to_text()).unwrap()
}

#[test]
fn a_witness_cosigns_one_history_and_refuses_the_other() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let log = NoteSigner::generate(ORIGIN, &mut rng).unwrap();
    let wkey = CosignatureSigner::generate("oig.example/witness", &mut rng).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wver = wkey.verifier();
    let witness = Witness::new(wkey, log.verifier(), &dir.path().join("state"));
    let (a, b) = (history("alice", 20), history("bob", 20));

    // First sight of the log, then growth along history A.
    let line = witness.add_checkpoint(add_checkpoint_body(0, &[], &signed(&log, &a, 8)).as_bytes(), 1000).unwrap();
    assert!(line.starts_with("— oig.example/witness "));
    let cons = prove_tree(12, 8, &a).unwrap();
    witness.add_checkpoint(add_checkpoint_body(8, &cons, &signed(&log, &a, 12)).as_bytes(), 1001).unwrap();
    // The cosignature verifies as C2SP cosignature/v1 over the checkpoint.
    let note = custodia_tlog::add_signature_lines(
        &signed(&log, &a, 12),
        &[witness.add_checkpoint(add_checkpoint_body(12, &[], &signed(&log, &a, 12)).as_bytes(), 1002).unwrap()],
    )
    .unwrap();
    let known: Verifiers = [log.verifier(), wver.clone()].into_iter().collect();
    let opened = SignedCheckpoint::open(note.as_bytes(), ORIGIN, &log.verifier(), &known).unwrap();
    assert!(opened.note.is_signed_by(&wver));

    // History B at the same size: a fork, refused and named.
    let err = witness.add_checkpoint(add_checkpoint_body(12, &[], &signed(&log, &b, 12)).as_bytes(), 1003).unwrap_err();
    assert!(matches!(err, WitnessError::Inconsistent(VerifyError::Fork { tree_size: 12, .. })), "{err}");
    // History B larger, with B's own (valid for B) proof from 12: not a prefix, refused.
    let cons_b = prove_tree(16, 12, &b).unwrap();
    let err =
        witness.add_checkpoint(add_checkpoint_body(12, &cons_b, &signed(&log, &b, 16)).as_bytes(), 1004).unwrap_err();
    assert!(
        matches!(err, WitnessError::Inconsistent(VerifyError::NotPrefix { old_size: 12, new_size: 16, .. })),
        "{err}"
    );
    // A rollback, and a stale `old`: the witness answers with what it knows.
    let err = witness.add_checkpoint(add_checkpoint_body(8, &cons, &signed(&log, &a, 8)).as_bytes(), 1005).unwrap_err();
    assert!(matches!(err, WitnessError::Conflict { known_size: 12, claimed: 8 }), "{err}");
    let err = witness.add_checkpoint(add_checkpoint_body(12, &[], &signed(&log, &a, 8)).as_bytes(), 1005).unwrap_err();
    assert!(matches!(err, WitnessError::Inconsistent(VerifyError::Shrunk { .. })), "{err}");
    // Signed by another key: refused.
    let other = NoteSigner::generate(ORIGIN, &mut rng).unwrap();
    let err =
        witness.add_checkpoint(add_checkpoint_body(12, &[], &signed(&other, &a, 14)).as_bytes(), 1006).unwrap_err();
    assert!(matches!(err, WitnessError::NotSigned(_)), "{err}");
    // A flipped bit in the proof: refused. History A continues fine afterwards.
    let mut bad = prove_tree(20, 12, &a).unwrap();
    bad[0].0[3] ^= 1;
    assert!(witness.add_checkpoint(add_checkpoint_body(12, &bad, &signed(&log, &a, 20)).as_bytes(), 1007).is_err());
    let good = prove_tree(20, 12, &a).unwrap();
    witness.add_checkpoint(add_checkpoint_body(12, &good, &signed(&log, &a, 20)).as_bytes(), 1008).unwrap();
    assert_eq!(witness.last().unwrap().unwrap().size(), 20);
    // Malformed bodies are refused before anything else.
    for body in [&b"old 01\n\nx"[..], b"old 1", b"new 1\n\n", b"old 1\nnot base64\n\n"] {
        assert!(matches!(parse_add_checkpoint(body), Err(WitnessError::Malformed(_))), "{body:?}");
    }
}

#[tokio::test]
async fn the_vault_publishes_the_cosignatures_it_collects() {
    let dir = tempfile::tempdir().unwrap();
    let config = VaultConfig { sites: vec!["anzalduas".into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let now = 1_780_000_000_000;
    let vault = Vault::open(dir.path(), Arc::new(ManualClock::new(now)), Box::new(ChaCha20Rng::seed_from_u64(2)), None)
        .unwrap();
    let log_key = NoteVerifier::from_vkey(&vault.log_verifier_key()).unwrap();
    let wkey = CosignatureSigner::generate("oig.example/witness", &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
    let wver = wkey.verifier();
    let witness = Witness::new(wkey, log_key.clone(), &dir.path().join("witness-state"));

    let mut cosigned = 0;
    for round in 0..3 {
        vault.ensure_epochs(now + round * 86_400_000, now + (round + 1) * 86_400_000).unwrap();
        let p = vault.publish_checkpoint().unwrap();
        let proof = vault.audit_log().prove_consistency(cosigned, p.size).unwrap();
        let line = witness
            .add_checkpoint(add_checkpoint_body(cosigned, &proof, &p.text).as_bytes(), 1_780_000_000 + round as u64)
            .unwrap();
        vault.audit_log().add_cosignatures(p.size, &[line]).unwrap();
        cosigned = p.size;
    }
    let text = std::fs::read(dir.path().join("log").join("checkpoint")).unwrap();
    let known: Verifiers = [log_key.clone(), wver.clone()].into_iter().collect();
    let cp = SignedCheckpoint::open(&text, vault.audit_log().origin(), &log_key, &known).unwrap();
    assert!(cp.note.is_signed_by(&wver));
    assert_eq!(cp.checkpoint.size(), cosigned);
}
