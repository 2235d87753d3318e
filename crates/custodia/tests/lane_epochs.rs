//! A lane's plaintext never waits for an epoch that cannot come, and waiting captures never starve
//! new ones.
//!
//! Against a vault (in process, on loopback) whose faces older than about 13 hours have been
//! shredded by a retention run, one lane's inbox receives:
//! - captures from the last 30 hours: sealed, each without the faces whose epoch is gone;
//! - captures from ten days ago that have waited in the inbox since (the agent was down), older
//!   than every live epoch: destroyed unsealed;
//! - captures dated ten days ago that arrive now (a camera clock ten days behind): held, never
//!   destroyed, since their time disagrees with their arrival;
//! - over 64 captures dated four days ahead (a camera clock wrong by days), named to come first in
//!   the inbox: held, unsealed, and looked at again only after `HOLD_RECHECK`, so they cannot
//!   fill the passes' 64-group budget and stall the others.
//!
//! A second test starts a lane while its vault is down and nothing is cached: its captures are
//! held without being judged, and the first pass that reaches the vault again releases them, so
//! they are sealed at once rather than after a back-off grown through the outage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use custodia_lane::{Lane, LaneDir};
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::{CaptureMetadata, ImageRole};
use custodia_seal::{RetentionClass, SealedCapture, SiteName, VaultVerifyingKey};
use custodia_synth::{FileRole, LaneSpec, TrafficConfig, Vendor};
use custodia_vault::audit::Actor;
use custodia_vault::clock::{Clock, SystemClock};
use custodia_vault::config::DAY_MS;
use custodia_vault::retention::RetentionRules;
use custodia_vault::{MasterKey, Vault, VaultConfig};

mod common;

const SITE: &str = "anzalduas";
const HOUR_MS: i64 = DAY_MS / 24;

/// Synthetic captures for one lane from `start_ms`, only those with engine output (an image
/// alone is a quarantine capture dated by its file's time, not the engine's).
fn traffic(seed: u64, start_ms: i64, captures: u32) -> Vec<custodia_synth::SyntheticCapture> {
    custodia_synth::generate(&TrafficConfig {
        seed,
        site: SITE.into(),
        lanes: vec![LaneSpec { lane: "lane-1".into(), camera_id: 1, vendor: Vendor::OpenAlprV2 }],
        start_ms,
        days: 1,
        captures,
    })
    .filter(|c| c.files.iter().any(|f| f.role == FileRole::EngineJson))
    .collect()
}

/// Writes a capture's files of `roles` into the inbox as a camera does. With `arrived_ms`, their
/// modification times are set to it: files that have waited in the inbox since then (a lane
/// agent that was down), rather than files that just arrived.
fn drop_into(
    inbox: &std::path::Path,
    capture: &custodia_synth::SyntheticCapture,
    prefix: &str,
    roles: &[FileRole],
    arrived_ms: Option<i64>,
) {
    for file in capture.files.iter().filter(|f| roles.contains(&f.role)) {
        let name = format!("{prefix}{}", file.name);
        let tmp = inbox.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, &file.bytes).unwrap();
        if let Some(ms) = arrived_ms {
            set_modified(&tmp, ms);
        }
        std::fs::rename(&tmp, inbox.join(name)).unwrap();
    }
}

fn set_modified(path: &std::path::Path, ms: i64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_modified(time).unwrap();
}

/// A new vault for [`SITE`] in `root/vault`, with epochs from `from_ms` to `to_ms`.
fn vault_with_epochs(root: &std::path::Path, from_ms: i64, to_ms: i64) -> Vault {
    let vault_dir = root.join("vault");
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(&vault_dir, &config, MasterKey::KeyFile, &mut rand_core::OsRng).unwrap();
    let vault = Vault::open(&vault_dir, Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap();
    vault.ensure_epochs(from_ms, to_ms).unwrap();
    vault
}

fn faces(capture: &custodia_synth::SyntheticCapture) -> usize {
    capture.files.iter().filter(|f| f.role == FileRole::Face).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_captures_are_destroyed_and_held_ones_do_not_starve_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let now = SystemClock.now_ms();
    let vault = vault_with_epochs(root.path(), now - 3 * DAY_MS, now + 2 * DAY_MS);
    // Faces are kept 12 hours after their hourly epoch ends: those older than ~13 h go now.
    let report = vault.run_retention(&RetentionRules::default(), &Actor::system()).await.unwrap();
    assert!(report.epochs_shredded() > 0, "the retention run shredded no face epoch");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vault_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(custodia_server::run(listener, vault.clone(), std::future::pending()));

    let lane_dir = LaneDir::new(root.path().join("lane-1"));
    common::enrol_lane(&vault, SITE, "lane-1", &lane_dir, vault_url, (0, 0, 4));

    // The lane was enrolled a month ago; its agent was down while the camera kept writing.
    set_modified(&root.path().join("lane-1").join("device.key"), now - 30 * DAY_MS);
    let recent = traffic(1, now - 30 * HOUR_MS, 12);
    let ancient = traffic(2, now - 10 * DAY_MS, 3);
    // Dated ten days back but arriving now: the camera's clock is wrong, not the data old.
    let misdated = traffic(4, now - 10 * DAY_MS, 3);
    let early = traffic(3, now + 4 * DAY_MS, 80);
    assert!(early.len() > 64, "more held captures than one pass takes");
    let inbox = lane_dir.inbox();
    let all = [FileRole::EngineJson, FileRole::Overview, FileRole::PlateCrop, FileRole::Face];
    for capture in &early {
        // Sorted before every other stem: the passes meet these first. Their engine output
        // alone is enough to be held (and keeps the test quick).
        drop_into(&inbox, capture, "0-", &[FileRole::EngineJson], None);
    }
    for capture in recent.iter().chain(&ancient) {
        drop_into(&inbox, capture, "", &all, Some(capture.time_ms + 2_000));
    }
    for capture in &misdated {
        drop_into(&inbox, capture, "m-", &all, None);
    }

    let mut lane = Lane::open(lane_dir.clone()).unwrap();
    lane.expects_engine_output = true;
    for _ in 0..3 {
        lane.seal_pass().await.unwrap();
    }
    let status = lane.status().clone();
    assert_eq!(status.sealed, recent.len() as u64, "{status:?}");
    assert_eq!(status.expired_unsealed, ancient.len() as u64, "{status:?}");
    assert_eq!(status.held_without_epoch, (early.len() + misdated.len()) as u64, "{status:?}");

    // Only the early and misdated captures' files are left, untouched; nothing of the ancient
    // ones remains.
    let mut left: Vec<String> =
        std::fs::read_dir(&inbox).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let mut expected_left: Vec<String> = early
        .iter()
        .flat_map(|c| c.files.iter().filter(|f| f.role == FileRole::EngineJson).map(|f| format!("0-{}", f.name)))
        .chain(misdated.iter().flat_map(|c| c.files.iter().map(|f| format!("m-{}", f.name))))
        .collect();
    expected_left.sort();
    assert_eq!(left, expected_left);

    // Which faces should have been dropped, by the set the lane judged with (its cache).
    let cached = std::fs::read(lane_dir.state().join("epochs.json")).unwrap();
    let set = SignedEpochSet::from_json(&cached)
        .unwrap()
        .verify(&VaultVerifyingKey::from_bytes(&vault.epoch_signing_public_key().unwrap()).unwrap())
        .unwrap();
    let site = SiteName::new(SITE).unwrap();
    let face_live = |time_ms| set.find(&site, RetentionClass::Face, time_ms).is_some();
    let dropped: usize = recent.iter().filter(|c| !face_live(c.time_ms)).map(faces).sum();
    let kept: usize = recent.iter().filter(|c| face_live(c.time_ms)).map(faces).sum();
    assert!(
        dropped > 0 && kept > 0,
        "the traffic must have faces on both sides of the shredded line: {dropped} / {kept}"
    );
    assert_eq!(status.expired_images_dropped, dropped as u64, "{status:?}");

    // Upload, and check each stored capture has a face group exactly when its faces were live.
    while !custodia_lane::outbox::pending_in(&lane_dir.outbox()).unwrap().is_empty() {
        assert!(lane.upload_pass().await.unwrap() > 0, "{:?}", lane.status());
    }
    assert_eq!(lane.status().rejected, 0, "{:?}", lane.status());
    assert_eq!(vault.record_count().unwrap(), recent.len() as u64);
    let by_time: BTreeMap<i64, &custodia_synth::SyntheticCapture> = recent.iter().map(|c| (c.time_ms, c)).collect();
    for (id, blob_key) in vault.record_blob_keys().unwrap() {
        let blob = vault.sealed_blob(&blob_key).await.unwrap();
        let capture = SealedCapture::parse(&blob).unwrap();
        let time = capture.header().capture_time_ms;
        let truth = by_time[&time];
        let has_face_group = capture.groups().iter().any(|g| g.class() == RetentionClass::Face);
        assert_eq!(has_face_group, faces(truth) > 0 && face_live(time), "capture at {time}");

        // Its metadata names each face the lane destroyed unsealed, by role and size.
        let (group, part) = capture.metadata_part().unwrap();
        let key = vault.group_data_key_in(&id, &capture, group as u8).unwrap();
        let metadata = CaptureMetadata::from_slice(&capture.open_part(group, part, &key).unwrap()).unwrap();
        let expected = if face_live(time) { 0 } else { faces(truth) };
        assert_eq!(metadata.expired_images.len(), expected, "capture at {time}");
        let face_bytes: u64 =
            truth.files.iter().filter(|f| f.role == FileRole::Face).map(|f| f.bytes.len() as u64).sum();
        for image in &metadata.expired_images {
            assert_eq!(image.role, ImageRole::Face, "capture at {time}");
            assert!(image.bytes > 0 && image.bytes <= face_bytes, "capture at {time}: {image:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_held_through_a_vault_outage_are_sealed_once_it_answers() {
    let root = tempfile::tempdir().unwrap();
    let now = SystemClock.now_ms();
    let vault = vault_with_epochs(root.path(), now - DAY_MS, now + 2 * DAY_MS);

    // The vault's address, not yet listening: the lane starts during an outage.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let lane_dir = LaneDir::new(root.path().join("lane-1"));
    common::enrol_lane(&vault, SITE, "lane-1", &lane_dir, format!("http://127.0.0.1:{port}"), (0, 0, 4));
    let captures = traffic(5, now - HOUR_MS, 4);
    let (during, after) = captures.split_at(captures.len() - 1);
    let inbox = lane_dir.inbox();
    for capture in during {
        // Engine output alone is a capture, and keeps the test quick.
        drop_into(&inbox, capture, "", &[FileRole::EngineJson], None);
    }

    let mut lane = Lane::open(lane_dir.clone()).unwrap();
    for _ in 0..3 {
        assert_eq!(lane.seal_pass().await.unwrap(), 0);
    }
    assert_eq!(lane.status().held_without_epoch, during.len() as u64, "{:?}", lane.status());

    // The vault comes back. No new capture arrives: the lane's own retry of the fetch (its
    // backoff is short after so few failures) releases the held captures well before their
    // 60 s hold ends.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(custodia_server::run(listener, vault.clone(), std::future::pending()));
    let came_back = std::time::Instant::now();
    let mut sealed = 0;
    while sealed < during.len() {
        assert!(came_back.elapsed() < Duration::from_secs(10), "held captures still unsealed: {:?}", lane.status());
        sealed += lane.seal_pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sealed, during.len());
    drop_into(&inbox, &after[0], "", &[FileRole::EngineJson], None);
    assert_eq!(lane.seal_pass().await.unwrap(), 1);
    assert_eq!(lane.status().held_without_epoch, 0, "{:?}", lane.status());
    assert_eq!(lane.status().sealed, captures.len() as u64);
    assert!(std::fs::read_dir(&inbox).unwrap().next().is_none(), "the inbox is empty");
}
