//! A lane against a vault whose disk is full (issue 6, part 2, end to end): the vault runs in
//! process over a fault-injecting blob store (`custodia_store::faulty`) and serves the real HTTP
//! API on a loopback listener; a real lane agent feeds it synthetic camera traffic.
//!
//! While the disk is full every upload is answered 503 `storage-unavailable` (problem+json, no
//! internals), the lane keeps every sealed capture in its outbox and reports the backlog in
//! `state/status.json`, and the vault stores nothing. When the fault clears the backlog drains by
//! itself and every capture is stored exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use custodia_lane::{Lane, LaneDir};
use custodia_seal::SealedCapture;
use custodia_store::blobs::{BlobStore, Fault, Faults};
use custodia_store::file_keystore::FileKeystore;
use custodia_synth::{LaneSpec, TrafficConfig, Vendor};
use custodia_vault::audit::event::{Action, Event};
use custodia_vault::clock::{Clock, SystemClock};
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};

mod common;

const SITE: &str = "anzalduas";
/// Few: rendering the synthetic images and the lane's perceptual hashing dominate in a debug build.
const CAPTURES: u64 = 12;

fn status_json(lane: &LaneDir) -> Option<serde_json::Value> {
    let bytes = std::fs::read(lane.state().join("status.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn outbox_len(lane: &LaneDir) -> u64 {
    custodia_lane::outbox::pending_in(&lane.outbox()).unwrap().len() as u64
}

async fn wait_for(what: &str, deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_captures_in_the_lane_outbox_and_the_backlog_drains_once_it_clears() {
    let root = tempfile::tempdir().unwrap();
    let vault_dir = root.path().join("vault");
    let now = SystemClock.now_ms();
    let config = VaultConfig { sites: vec![SITE.into()], max_capture_age_ms: 3 * DAY_MS, ..VaultConfig::default() };
    Vault::init(&vault_dir, &config, MasterKey::KeyFile, &mut rand_core::OsRng).unwrap();
    let faults = Faults::new();
    let vault = Vault::assemble_with_blobs(
        &vault_dir,
        config,
        Arc::new(SystemClock),
        Box::new(rand_core::OsRng),
        Arc::new(FileKeystore::open(&vault_dir.join("keystore"), None).unwrap()),
        BlobStore::local_with_faults(&vault_dir.join("blobs"), faults.clone()).unwrap(),
    )
    .unwrap();
    vault.ensure_epochs(now - 2 * DAY_MS, now + 2 * DAY_MS).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custodia_server::run(listener, vault.clone(), async {
        let _ = server_stopped.await;
    }));

    let lane_dir = LaneDir::new(root.path().join("lane-1"));
    common::enrol_lane(&vault, SITE, "lane-1", &lane_dir, url.clone(), (20, 300, 4));

    // The disk fills before the traffic arrives.
    faults.set(Fault::DiskFull);
    let traffic = TrafficConfig {
        seed: 11,
        site: SITE.into(),
        lanes: vec![LaneSpec { lane: "lane-1".into(), camera_id: 1, vendor: Vendor::OpenAlprV2 }],
        start_ms: now - DAY_MS,
        days: 1,
        captures: CAPTURES as u32,
    };
    for capture in custodia_synth::generate(&traffic) {
        common::drop_capture(&lane_dir, capture);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut lane = Lane::open(lane_dir.clone()).unwrap();
    let flag = stop.clone();
    let agent =
        tokio::spawn(async move { lane.run(flag, Duration::from_millis(10)).await.map(|()| lane.status().clone()) });

    // Every capture is sealed into the outbox and held there; the lane reports the backlog and
    // why its uploads fail; the vault stores nothing.
    let deadline = Instant::now() + Duration::from_secs(120);
    wait_for("the lane to seal everything and report its backlog", deadline, || {
        common::files_in(&lane_dir.inbox()).is_empty()
            && outbox_len(&lane_dir) == CAPTURES
            && status_json(&lane_dir).is_some_and(|s| {
                s["backlog"] == CAPTURES && s["sealed"] == CAPTURES && s["last_upload_error"].is_string()
            })
    })
    .await;
    let status = status_json(&lane_dir).unwrap();
    let error = status["last_upload_error"].as_str().unwrap();
    assert!(error.contains("503") && error.contains("storage-unavailable"), "{error}");
    assert_eq!(status["uploaded"], 0);
    assert_eq!(status["rejected"], 0, "a full disk is not a reason to give a capture up");
    assert_eq!(vault.record_count().unwrap(), 0);
    assert_eq!(common::blob_files(&vault_dir), 0);
    assert!(faults.injected() >= 1);

    // What a client sees: 503, problem+json, a clear title, no internals (no errno text, no
    // store name, no path).
    let (_, held) = custodia_lane::outbox::pending_in(&lane_dir.outbox()).unwrap().remove(0);
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{url}/v1/captures"))
        .header("content-type", custodia_server::SEALED_CAPTURE_MEDIA_TYPE)
        .body(std::fs::read(&held).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body = response.text().await.unwrap();
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:custodia:problem:storage-unavailable");
    assert_eq!(problem["status"], 503);
    assert!(problem["title"].as_str().unwrap().starts_with("Storage unavailable"), "{problem}");
    for internal in ["space", "os error", "FaultyStore", "blob", "captures/", vault_dir.to_str().unwrap()] {
        assert!(!body.contains(internal), "the answer leaks {internal:?}: {body}");
    }

    // The disk is freed: the lane drains its backlog by itself (through its backoff).
    faults.clear();
    wait_for("the backlog to drain", deadline, || {
        outbox_len(&lane_dir) == 0 && vault.record_count().unwrap() == CAPTURES
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let status = agent.await.unwrap().unwrap();
    assert_eq!(status.uploaded, CAPTURES, "{status:?}");
    assert_eq!(status.rejected, 0, "{status:?}");
    assert_eq!(status.backlog, 0, "{status:?}");
    assert_eq!(status_json(&lane_dir).unwrap()["backlog"], 0);

    // Exactly once: one row per sequence, each blob the capture its row names, one blob file per
    // row, one `ingested` event per row.
    let rows = vault.record_blob_keys().unwrap();
    let mut sequences: Vec<u64> = rows.iter().map(|(id, _)| id.sequence).collect();
    sequences.sort();
    sequences.dedup();
    assert_eq!(sequences.len() as u64, CAPTURES);
    for (id, key) in &rows {
        let blob = vault.sealed_blob(key).await.unwrap();
        let capture = SealedCapture::parse(&blob).unwrap();
        assert_eq!(capture.header().sequence, id.sequence);
        assert_eq!(vault.record(id).unwrap().unwrap().content_digest, capture.content_digest());
    }
    assert_eq!(common::blob_files(&vault_dir), CAPTURES);
    let log = vault.audit_log();
    let mut ingested: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..log.size() {
        if let Action::Ingested { record, .. } = Event::parse(&log.entry(i).unwrap()).unwrap().action {
            *ingested.entry(record.as_str().to_string()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, u64> = rows.iter().map(|(id, _)| (id.to_string(), 1)).collect();
    assert_eq!(ingested, expected);

    let _ = stop_server.send(());
    server.await.unwrap().unwrap();
}
