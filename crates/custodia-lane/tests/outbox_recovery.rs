//! The lane outbox across crashes: sequence numbers are never reused, and a capture staged before
//! a crash is published with its plaintext inputs deleted, never sealed twice.

use custodia_lane::outbox::{ConsumedInput, Outbox, Staged, pending_in};
use sha2::{Digest, Sha256};

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let (outbox, inbox, state) = (root.path().join("outbox"), root.path().join("inbox"), root.path().join("state"));
    for d in [&outbox, &inbox, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    (root, outbox, inbox, state)
}

fn input(inbox: &std::path::Path, name: &str, bytes: &[u8]) -> ConsumedInput {
    std::fs::write(inbox.join(name), bytes).unwrap();
    ConsumedInput { name: name.into(), sha256: hex::encode(Sha256::digest(bytes)) }
}

#[test]
fn sequence_numbers_are_never_reused_after_a_restart() {
    let (_root, outbox_dir, inbox, state) = dirs();
    let mut outbox = Outbox::open(&outbox_dir, &inbox, &state).unwrap();
    let first: Vec<u64> = (0..5).map(|_| outbox.next_sequence().unwrap()).collect();
    assert_eq!(first, [0, 1, 2, 3, 4]);
    drop(outbox); // a crash: nothing else written
    let mut reopened = Outbox::open(&outbox_dir, &inbox, &state).unwrap();
    let next = reopened.next_sequence().unwrap();
    assert!(next > 4, "reused sequence {next}");
}

#[test]
fn commit_publishes_captures_and_deletes_exactly_their_inputs() {
    let (_root, outbox_dir, inbox, state) = dirs();
    let mut outbox = Outbox::open(&outbox_dir, &inbox, &state).unwrap();
    let a = input(&inbox, "a.jpg", b"plaintext image a");
    let b = input(&inbox, "a.json", b"{}");
    std::fs::write(inbox.join("other.jpg"), b"not consumed").unwrap();
    let sequence = outbox.next_sequence().unwrap();
    outbox.commit(vec![Staged { sequence, sealed: b"sealed bytes".to_vec(), inputs: vec![a, b] }]).unwrap();
    let pending = pending_in(&outbox_dir).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(std::fs::read(&pending[0].1).unwrap(), b"sealed bytes");
    let left: Vec<_> = std::fs::read_dir(&inbox).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["other.jpg"]);
}

#[test]
fn a_crash_after_staging_is_finished_on_open_without_sealing_twice() {
    let (_root, outbox_dir, inbox, state) = dirs();
    let consumed = input(&inbox, "cam.jpg", b"plaintext");
    // What step 1 leaves behind when the lane dies before deleting its inputs.
    std::fs::write(outbox_dir.join(format!("{:020}.sealed", 7)), b"sealed seven").unwrap();
    std::fs::write(outbox_dir.join(format!("{:020}.inputs", 7)), serde_json::to_vec(&vec![consumed]).unwrap()).unwrap();
    // And a half-written temporary file from a later capture.
    std::fs::write(outbox_dir.join(format!("{:020}.sealed.tmp", 8)), b"half").unwrap();

    Outbox::open(&outbox_dir, &inbox, &state).unwrap();
    let pending = pending_in(&outbox_dir).unwrap();
    assert_eq!(pending.iter().map(|p| p.0).collect::<Vec<_>>(), [7]);
    assert!(std::fs::read_dir(&inbox).unwrap().next().is_none(), "the input must be gone");
    let names: Vec<String> = std::fs::read_dir(&outbox_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".cap")), "{names:?}");
}

#[test]
fn an_input_replaced_since_sealing_is_kept() {
    let (_root, outbox_dir, inbox, state) = dirs();
    let consumed = input(&inbox, "cam.jpg", b"first frame");
    std::fs::write(inbox.join("cam.jpg"), b"a new frame under the same name").unwrap();
    let mut outbox = Outbox::open(&outbox_dir, &inbox, &state).unwrap();
    let sequence = outbox.next_sequence().unwrap();
    outbox.commit(vec![Staged { sequence, sealed: b"s".to_vec(), inputs: vec![consumed] }]).unwrap();
    assert_eq!(std::fs::read(inbox.join("cam.jpg")).unwrap(), b"a new frame under the same name");
}
