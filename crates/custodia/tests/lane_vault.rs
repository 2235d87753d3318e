//! A lane against a real `custodia serve` process that is killed (SIGKILL) mid-stream and
//! restarted: every capture must end up stored exactly once, readable, with index and blob store
//! in agreement, and the lane's outbox empty.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use custodia_lane::{Lane, LaneDir};
use custodia_seal::SealedCapture;
use custodia_synth::{LaneSpec, TrafficConfig, Vendor};
use custodia_vault::clock::{Clock, SystemClock};
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};

mod common;

const SITE: &str = "anzalduas";
const CAPTURES: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_capture_is_stored_exactly_once_across_a_vault_crash() {
    let root = tempfile::tempdir().unwrap();
    let vault_dir = root.path().join("vault");
    let now = SystemClock.now_ms();
    let config = VaultConfig { sites: vec![SITE.into()], max_capture_age_ms: 3 * DAY_MS, ..VaultConfig::default() };
    Vault::init(&vault_dir, &config, MasterKey::KeyFile, &mut rand_core::OsRng).unwrap();
    // The traffic spans the last day, and `custodia serve` runs retention as it starts: keep
    // faces two days here so none of it is shredded before its lane gets to upload it.
    let policy = custodia_vault::policy::DEFAULT_POLICY.replace("face = \"12h\"", "face = \"2d\"");
    assert_ne!(policy, custodia_vault::policy::DEFAULT_POLICY);
    std::fs::write(vault_dir.join("policy.toml"), policy).unwrap();
    let port = common::free_port();
    let lane_dir = LaneDir::new(root.path().join("lane-1"));
    {
        let vault = Vault::open(&vault_dir, Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap();
        vault.ensure_epochs(now - 2 * DAY_MS, now + 2 * DAY_MS).unwrap();
        common::enrol_lane(&vault, SITE, "lane-1", &lane_dir, format!("http://127.0.0.1:{port}"), (20, 300, 2));
    }

    // Camera traffic for one lane over the last day, dropped all at once.
    let traffic = TrafficConfig {
        seed: 7,
        site: SITE.into(),
        lanes: vec![LaneSpec { lane: "lane-1".into(), camera_id: 1, vendor: Vendor::OpenAlprV2 }],
        start_ms: now - DAY_MS,
        days: 1,
        captures: CAPTURES as u32,
    };
    for capture in custodia_synth::generate(&traffic) {
        common::drop_capture(&lane_dir, capture);
    }

    let mut vault = common::spawn_serve(&vault_dir, port, Stdio::null(), Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let mut lane = Lane::open(lane_dir.clone()).unwrap();
    let flag = stop.clone();
    let agent =
        tokio::spawn(async move { lane.run(flag, Duration::from_millis(10)).await.map(|()| lane.status().clone()) });

    // Kill the vault as soon as part of the stream is stored, then bring it back.
    let deadline = Instant::now() + Duration::from_secs(120);
    while common::healthz_records(port).unwrap_or(0) < CAPTURES / 4 {
        assert!(Instant::now() < deadline, "no progress before the crash");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    vault.kill().unwrap();
    vault.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    vault = common::spawn_serve(&vault_dir, port, Stdio::null(), Duration::from_secs(30));

    while !(common::lane_idle(&lane_dir) && common::healthz_records(port) == Some(CAPTURES)) {
        assert!(Instant::now() < deadline, "lane did not drain: {:?} stored", common::healthz_records(port));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let status = agent.await.unwrap().unwrap();
    vault.kill().unwrap();
    vault.wait().unwrap();

    assert_eq!(status.rejected, 0, "{status:?}");
    assert_eq!(status.uploaded, CAPTURES, "{status:?}");

    // Index and blob store agree, every blob is the capture its record says, nothing half-stored.
    let vault = Vault::open(&vault_dir, Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap();
    assert_eq!(vault.record_count().unwrap(), CAPTURES);
    let records = vault.record_blob_keys().unwrap();
    let mut sequences: Vec<u64> = records.iter().map(|(id, _)| id.sequence).collect();
    sequences.sort();
    sequences.dedup();
    assert_eq!(sequences.len() as u64, CAPTURES);
    for (id, key) in &records {
        let blob = vault.sealed_blob(key).await.unwrap();
        let capture = SealedCapture::parse(&blob).unwrap();
        assert_eq!(capture.header().sequence, id.sequence);
        assert_eq!(vault.record(id).unwrap().unwrap().content_digest, capture.content_digest());
    }
    assert_eq!(common::blob_files(&vault_dir), CAPTURES, "a blob without its index row, or the reverse");
}
