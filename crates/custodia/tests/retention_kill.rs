//! A retention run killed halfway (issue #6, part 1): `custodia demo --captures 30 --days 10`
//! leaves a vault with some 250 epochs that the `cap-3min` profile has expired;
//! `custodia retention run --profile cap-3min` is started as a child process and SIGKILLed after
//! seeded random delays (5 ms up to about 3 s), then run to completion. Checked:
//!
//! - after every kill, before anything reopens the vault: every destroyed epoch key has its
//!   `shredded` event in the durable log (the event is written first), and no epoch has two;
//! - after every other kill, the vault reopened with the library (which reconciles the log's
//!   last frame): an epoch's key is destroyed **if and only if** the log holds its `shredded`
//!   event, and its index row says so too. (The other rounds leave that repair to the next
//!   `retention run`'s own open.)
//! - at the end: exactly one `shredded` event for every epoch the profile expired, none for any
//!   other, every such key destroyed and every other present; no blob left whose every group's
//!   epoch is shredded, every blob file has its index row and the reverse, the purge queue is
//!   empty, no temporary file is left; `custodia audit verify` accepts the log.
//!
//! Run: `cargo test -p custodia --test retention_kill -- --nocapture`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_seal::{EpochId, SealedCapture};
use custodia_store::file_keystore::FileKeystore;
use custodia_store::index::Index;
use custodia_store::{KeyName, KeyState, Keystore};
use custodia_vault::Vault;
use custodia_vault::audit::{Action, Event, LogFile};
use custodia_vault::clock::SystemClock;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

mod common;
use common::files_in;

const PROFILE: &str = "cap-3min";
/// Kill delays: one random point in each bracket (ms), shortest first.
const BRACKETS: [(u64, u64); 9] =
    [(5, 10), (20, 40), (50, 100), (100, 200), (200, 400), (400, 800), (800, 1600), (1600, 3200), (3200, 6400)];

fn custodia() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custodia"))
}

/// Kills the retention run on drop, so a panic leaves no child behind.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the durable log says: every epoch id with an `epoch-created` event, and epoch id ->
/// number of `shredded` events.
struct LogView {
    created: BTreeMap<String, ()>,
    shredded: BTreeMap<String, u32>,
}

fn read_log(vault: &Path) -> LogView {
    let log = LogFile::open_read_only(&vault.join("log").join("entries.ctl")).unwrap();
    let mut view = LogView { created: BTreeMap::new(), shredded: BTreeMap::new() };
    for i in 0..log.size() {
        match Event::parse(&log.entry(i).unwrap()).unwrap().action {
            Action::EpochCreated { epoch, .. } => {
                view.created.insert(epoch.as_str().to_string(), ());
            }
            Action::Shredded { epoch, .. } => *view.shredded.entry(epoch.as_str().to_string()).or_default() += 1,
            _ => {}
        }
    }
    view
}

/// Epoch id -> (key name, row marked destroyed).
fn epoch_rows(vault: &Path, view: &LogView) -> BTreeMap<String, (KeyName, bool)> {
    let index = Index::open(&vault.join("index.sqlite3")).unwrap();
    view.created
        .keys()
        .map(|id| {
            let row = index
                .epoch(&id.parse::<EpochId>().unwrap())
                .unwrap()
                .unwrap_or_else(|| panic!("epoch {id} has no row"));
            (id.clone(), (KeyName::new(&row.key_name).unwrap(), row.destroyed_at_ms.is_some()))
        })
        .collect()
}

/// The checks that hold at any crash point, read from disk without reopening the vault; with
/// `reconciled`, also the converse (every logged shred has its key destroyed and row marked).
/// Returns how many epochs are shredded.
fn check_keys_against_log(vault: &Path, reconciled: bool) -> usize {
    let view = read_log(vault);
    for (epoch, n) in &view.shredded {
        assert_eq!(*n, 1, "epoch {epoch} has {n} shredded events");
        assert!(view.created.contains_key(epoch), "shredded event for unknown epoch {epoch}");
    }
    let rows = epoch_rows(vault, &view);
    let keystore = FileKeystore::open(&vault.join("keystore"), None).unwrap();
    for (epoch, (name, marked)) in &rows {
        let destroyed = keystore.state(name).unwrap() == KeyState::Destroyed;
        let logged = view.shredded.contains_key(epoch);
        assert!(!destroyed || logged, "key of epoch {epoch} ({name}) destroyed without its shredded event");
        assert!(!marked || logged, "epoch {epoch} marked destroyed without its shredded event");
        if reconciled {
            assert!(destroyed == logged, "epoch {epoch}: shredded event {logged} but key destroyed {destroyed}");
            assert!(*marked == logged, "epoch {epoch}: shredded event {logged} but row marked {marked}");
        }
    }
    view.shredded.len()
}

fn retention_run(vault: &Path) -> Command {
    let mut c = custodia();
    c.args(["retention", "run", "--profile", PROFILE, "--dir"]).arg(vault);
    c
}

#[test]
fn a_retention_run_killed_at_random_points_never_destroys_a_key_without_its_event() {
    let seed = std::env::var("CUSTODIA_KILL_SEED").ok().map_or(20_190_531, |s| s.parse().unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _guard = runtime.enter();
    let root = tempfile::tempdir().unwrap();
    let demo = root.path().join("demo");
    let made = Instant::now();
    let out = custodia()
        .args(["demo", "--captures", "30", "--days", "10", "--quiet", "--dir"])
        .arg(&demo)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "demo: {}", String::from_utf8_lossy(&out.stderr));
    let vault = demo.join("vault");
    let made = made.elapsed();
    let before = read_log(&vault);
    assert!(before.shredded.is_empty());
    let records_before = Index::open(&vault.join("index.sqlite3")).unwrap().record_count().unwrap();

    let mut lines = Vec::new();
    for (round, (lo, hi)) in BRACKETS.iter().enumerate() {
        let delay = Duration::from_millis(lo + rng.next_u64() % (hi - lo + 1));
        let mut child = Guard(Some(retention_run(&vault).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()));
        std::thread::sleep(delay);
        let c = child.0.as_mut().unwrap();
        let finished = c.try_wait().unwrap().is_some();
        c.kill().unwrap();
        c.wait().unwrap();
        let reconcile = round % 2 == 1;
        let raw = check_keys_against_log(&vault, false);
        let after = if reconcile {
            drop(Vault::open(&vault, Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap());
            check_keys_against_log(&vault, true)
        } else {
            raw
        };
        lines.push(format!(
            "killed after {:>4} ms: {raw} epochs shredded{}{}",
            delay.as_millis(),
            if reconcile { format!(" ({after} after the library's reconcile)") } else { String::new() },
            if finished { " (the run had already finished)" } else { "" }
        ));
    }

    // Run it to completion.
    let out = retention_run(&vault).output().unwrap();
    assert!(out.status.success(), "retention run: {}", String::from_utf8_lossy(&out.stderr));
    let final_run = String::from_utf8_lossy(&out.stdout).to_string();
    let shredded = check_keys_against_log(&vault, true);

    let opened = Vault::open(&vault, Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap();
    let rules = opened.retention_rules_under(PROFILE).unwrap();
    let now = opened.now_ms();
    let status = opened.retention_status(&rules).unwrap();
    assert!(status.expired.is_empty(), "still expired after a completed run: {:?}", status.expired);
    assert_eq!(status.purge_queue, 0, "blobs left in the purge queue");
    assert_eq!(status.cleanup_epochs, 0, "rows left under destroyed epochs");
    let key = opened.log_verifier_key();
    drop(opened);

    // Exactly the expired epochs are shredded, once each.
    let view = read_log(&vault);
    let rows = epoch_rows(&vault, &view);
    let index = Index::open(&vault.join("index.sqlite3")).unwrap();
    let keystore = FileKeystore::open(&vault.join("keystore"), None).unwrap();
    let mut expired = 0;
    for epoch in view.created.keys() {
        let row = index.epoch(&epoch.parse().unwrap()).unwrap().unwrap();
        let due = rules.expires_at(&row) <= now;
        expired += usize::from(due);
        let events = view.shredded.get(epoch).copied().unwrap_or(0);
        assert_eq!(events, u32::from(due), "epoch {epoch}: expired {due}, {events} shredded events");
        let state = keystore.state(&rows[epoch].0).unwrap();
        assert_eq!(state == KeyState::Destroyed, due, "epoch {epoch}: expired {due}, key {state:?}");
    }
    assert_eq!(expired, shredded);
    assert!(expired > 100, "the demo vault should have many expired epochs, has {expired}");

    // No blob whose every group is shredded; blob files and index rows agree; no temp files.
    let records = index.record_blob_keys().unwrap();
    let keys: HashSet<PathBuf> = records.iter().map(|(_, k)| vault.join("blobs").join(k)).collect();
    let files: HashSet<PathBuf> = files_in(&vault.join("blobs")).into_iter().collect();
    assert_eq!(files, keys, "blob files and index rows differ");
    for path in &files {
        let blob = std::fs::read(path).unwrap();
        let capture = SealedCapture::parse(&blob).unwrap();
        let live = capture.groups().iter().any(|g| {
            let row = index.epoch(&g.epoch_id()).unwrap().unwrap();
            keystore.state(&KeyName::new(&row.key_name).unwrap()).unwrap() == KeyState::Present
        });
        assert!(live, "blob {} is left though every group's key is destroyed", path.display());
    }
    let temps: Vec<_> = files_in(&vault)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".tmp") || name.contains('#')
        })
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");

    let out = custodia()
        .args(["audit", "verify", vault.to_str().unwrap(), "--quiet", "--key", &key, "--state"])
        .arg(root.path().join("auditor.checkpoint"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    println!("retention kill: demo vault of {records_before} records in {:.1} s", made.as_secs_f64());
    for line in &lines {
        println!("retention kill: {line}");
    }
    println!(
        "retention kill: completed run shredded the rest: {shredded} of {} epochs shredded (all {expired} expired), \
         each once, {} records left; {}",
        view.created.len(),
        records.len(),
        final_run.trim().replace('\n', " ")
    );
}
