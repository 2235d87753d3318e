//! A lane against a real `custodia serve` process that is killed (SIGKILL) mid-stream and
//! restarted: every capture must end up stored exactly once, readable, with index and blob store
//! in agreement, and the lane's outbox empty.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_vault(dir: &Path, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(["serve", "--dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("custodia serve starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_records(port).is_none() {
        assert!(Instant::now() < deadline, "vault did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The record count from `/healthz`, or None if the vault does not answer.
fn stored_records(port: u16) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["records"].as_u64()
}

fn lane_idle(dir: &LaneDir) -> bool {
    std::fs::read_dir(dir.inbox()).unwrap().next().is_none()
        && custodia_lane::outbox::pending_in(&dir.outbox()).unwrap().is_empty()
}

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
    let port = free_port();
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
        for file in capture.files {
            let tmp = lane_dir.inbox().join(format!(".{}.tmp", file.name));
            std::fs::write(&tmp, &file.bytes).unwrap();
            std::fs::rename(&tmp, lane_dir.inbox().join(&file.name)).unwrap();
        }
    }

    let mut vault = start_vault(&vault_dir, port);
    let stop = Arc::new(AtomicBool::new(false));
    let mut lane = Lane::open(lane_dir.clone()).unwrap();
    let flag = stop.clone();
    let agent =
        tokio::spawn(async move { lane.run(flag, Duration::from_millis(10)).await.map(|()| lane.status().clone()) });

    // Kill the vault as soon as part of the stream is stored, then bring it back.
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored_records(port).unwrap_or(0) < CAPTURES / 4 {
        assert!(Instant::now() < deadline, "no progress before the crash");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    vault.kill().unwrap();
    vault.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    vault = start_vault(&vault_dir, port);

    while !(lane_idle(&lane_dir) && stored_records(port) == Some(CAPTURES)) {
        assert!(Instant::now() < deadline, "lane did not drain: {:?} stored", stored_records(port));
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
    let mut blob_files = 0;
    let mut stack = vec![vault_dir.join("blobs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.path().extension().is_some_and(|e| e == "cap") {
                blob_files += 1;
            }
        }
    }
    assert_eq!(blob_files, CAPTURES, "a blob without its index row, or the reverse");
}
