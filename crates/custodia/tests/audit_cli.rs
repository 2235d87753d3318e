//! `custodia audit` as an auditor uses it, through the real binary: verify a vault's log with
//! only its key, keep the last accepted checkpoint, catch a fork, a rollback and a tampered
//! mirror, and write and check tlog-proofs offline.

use std::path::Path;
use std::process::{Command, Output};

fn custodia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custodia")).args(args).env("CUSTODIA_LOG", "error").output().expect("runs")
}

fn ok(args: &[&str]) -> String {
    let out = custodia(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = custodia(args);
    assert!(!out.status.success(), "{args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn enroll(vault: &Path, lane: &str, root: &Path) {
    ok(&[
        "device",
        "enroll",
        "--vault",
        p(vault),
        "--site",
        "anzalduas",
        "--lane",
        lane,
        "--lane-dir",
        p(&root.join(format!("lane-{}-{lane}", vault.file_name().unwrap().to_str().unwrap()))),
    ]);
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

#[test]
fn an_auditor_verifies_proves_and_catches_forks_rollbacks_and_tampering() {
    let root = tempfile::tempdir().unwrap();
    let vault = root.path().join("vault");
    ok(&["init", "--dir", p(&vault), "--site", "anzalduas"]);
    enroll(&vault, "lane-1", root.path());
    let key = ok(&["audit", "key", "--vault", p(&vault)]).trim().to_string();
    assert!(key.starts_with("custodia/anzalduas+"), "{key}");
    let state = root.path().join("auditor.checkpoint");

    // First look: accepted and remembered.
    let out = ok(&["audit", "verify", p(&vault), "--key", &key, "--state", p(&state), "--quiet"]);
    assert!(out.contains("first checkpoint seen"), "{out}");
    assert!(state.exists());

    // Two copies of the vault, same key, diverge from here: the "two histories".
    let fork = root.path().join("fork");
    copy_dir(&vault, &fork);
    enroll(&vault, "lane-2", root.path());
    enroll(&fork, "lane-9", root.path());
    let out = ok(&["audit", "verify", p(&vault), "--key", &key, "--state", p(&state), "--quiet"]);
    assert!(out.contains("extends your last accepted checkpoint"), "{out}");
    // The fork has the same size and another root: refused, saying so.
    let err = fails(&["audit", "verify", p(&fork), "--key", &key, "--state", p(&state), "--quiet"]);
    assert!(err.contains("history rewritten") && err.contains("fork at tree size"), "{err}");

    // A rollback: a copy taken before lane-3 was enrolled shown after the auditor saw lane-3.
    let old = root.path().join("old");
    copy_dir(&vault, &old);
    enroll(&vault, "lane-3", root.path());
    ok(&["audit", "verify", p(&vault), "--key", &key, "--state", p(&state), "--quiet"]);
    let err = fails(&["audit", "verify", p(&old), "--key", &key, "--state", p(&state), "--quiet"]);
    assert!(err.contains("rollback"), "{err}");
    // A longer fork (not a prefix): enrol twice more on the fork.
    enroll(&fork, "lane-10", root.path());
    enroll(&fork, "lane-11", root.path());
    let err = fails(&["audit", "verify", p(&fork), "--key", &key, "--state", p(&state), "--quiet"]);
    assert!(err.contains("history rewritten") && err.contains("is not a prefix"), "{err}");

    // Another key: refused.
    let other = root.path().join("other");
    ok(&["init", "--dir", p(&other), "--site", "anzalduas"]);
    let other_key = ok(&["audit", "key", "--vault", p(&other)]).trim().to_string();
    let err =
        fails(&["audit", "verify", p(&vault), "--key", &other_key, "--state", p(&root.path().join("s2")), "--quiet"]);
    assert!(err.contains("does not verify under the log key"), "{err}");

    // A mirror verifies; one flipped bit anywhere in it does not, and the error says where.
    let mirror = root.path().join("mirror");
    ok(&["audit", "export", "--vault", p(&vault), "--out", p(&mirror)]);
    ok(&["audit", "verify", p(&mirror), "--key", &key, "--state", p(&root.path().join("s3")), "--quiet"]);
    let partial = std::fs::read_dir(mirror.join("tile/0/000.p")).unwrap().next().unwrap().unwrap().file_name();
    let tile = mirror.join("tile/0/000.p").join(partial);
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&tile, &bytes).unwrap();
    let err = fails(&["audit", "verify", p(&mirror), "--key", &key, "--state", p(&root.path().join("s4")), "--quiet"]);
    assert!(err.contains("tile/0/000.p/") && err.contains("differs from the entries"), "{err}");
    // Truncated: the last entry bundle missing.
    bytes[40] ^= 1;
    std::fs::write(&tile, &bytes).unwrap();
    let bundles: Vec<_> = std::fs::read_dir(mirror.join("tile/entries/000.p")).unwrap().collect();
    std::fs::remove_file(bundles[0].as_ref().unwrap().path()).unwrap();
    let err = fails(&["audit", "verify", p(&mirror), "--key", &key, "--state", p(&root.path().join("s5")), "--quiet"]);
    assert!(err.contains("tile/entries/000.p/"), "{err}");

    // Tail prints the latest events, each checked against the signed tree.
    let out = ok(&["audit", "tail", p(&vault), "--key", &key, "--count", "1"]);
    assert!(out.starts_with("checkpoint: size ") && out.contains("device-enrolled"), "{out}");

    // Proofs: written by the vault, checked offline with the key only.
    let proof = root.path().join("entry.proof");
    let entry = root.path().join("entry.json");
    ok(&["audit", "prove", "2", "--vault", p(&vault), "--out", p(&proof), "--entry-out", p(&entry)]);
    let out = ok(&["audit", "check", p(&proof), "--key", &key, "--entry", p(&entry)]);
    assert!(out.contains("ok: entry 2"), "{out}");
    let err = fails(&["audit", "check", p(&proof), "--key", &other_key, "--entry", p(&entry)]);
    assert!(err.contains("does not verify"), "{err}");
    let good = std::fs::read(&proof).unwrap();
    for at in [30, good.len() / 2, good.len() - 3] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&proof, &bad).unwrap();
        fails(&["audit", "check", p(&proof), "--key", &key, "--entry", p(&entry)]);
    }
    std::fs::write(&proof, &good).unwrap();
    let mut e = std::fs::read(&entry).unwrap();
    e[10] ^= 0x01;
    std::fs::write(&entry, &e).unwrap();
    fails(&["audit", "check", p(&proof), "--key", &key, "--entry", p(&entry)]);
}
