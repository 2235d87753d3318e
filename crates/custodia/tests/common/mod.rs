//! Set-up shared by the integration tests that run lanes against a vault: enrolling a lane,
//! dropping camera traffic into its inbox, starting `custodia serve` and asking its `/healthz`,
//! and looking at what ended up on disk.

#![allow(dead_code)] // each test file uses its own part of it

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custodia_lane::{LaneConfig, LaneDir};
use custodia_seal::DeviceSigningKey;
use custodia_synth::SyntheticCapture;
use custodia_vault::Vault;

/// How a test lane paces itself: `(settle_ms, pair_grace_ms, upload_concurrency)`.
pub type LanePace = (u64, u64, usize);

/// Enrols a new device for `site`/`lane` with `vault` and creates its lane folder in `dir`,
/// pointed at `vault_url` with the vault's epoch key pinned.
pub fn enrol_lane(vault: &Vault, site: &str, lane: &str, dir: &LaneDir, vault_url: String, pace: LanePace) {
    let key = DeviceSigningKey::generate(&mut rand_core::OsRng);
    let device = vault.enroll_device(site, lane, &key.verifying_key()).unwrap();
    let (settle_ms, pair_grace_ms, upload_concurrency) = pace;
    dir.create(
        &LaneConfig {
            device_id: device.id.to_string(),
            site: site.into(),
            lane: lane.into(),
            vault_url,
            vault_epoch_key: hex::encode(vault.epoch_signing_public_key().unwrap()),
            settle_ms,
            pair_grace_ms,
            upload_concurrency,
        },
        &key,
    )
    .unwrap();
}

/// Drops a capture's files into the lane's inbox the way a camera does: each written whole under
/// a dot-name the lane skips, then all renamed in at once (a lane seals an image alone after its
/// pairing grace). A capture with no engine output is dated by a lane from its files'
/// modification time (`assemble::plan_group`), so its files get the capture time as theirs.
pub fn drop_capture(dir: &LaneDir, capture: SyntheticCapture) {
    let mtime = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(capture.time_ms).unwrap());
    let dated = !capture.files.iter().any(|f| f.name.ends_with(".json"));
    let mut renames = Vec::new();
    for file in capture.files {
        let tmp = dir.inbox().join(format!(".{}.tmp", file.name));
        std::fs::write(&tmp, &file.bytes).unwrap();
        if dated {
            std::fs::File::options().write(true).open(&tmp).unwrap().set_modified(mtime).unwrap();
        }
        renames.push((tmp, dir.inbox().join(&file.name)));
    }
    for (tmp, name) in renames {
        std::fs::rename(tmp, name).unwrap();
    }
}

/// Whether the lane's inbox and outbox are both empty.
pub fn lane_idle(dir: &LaneDir) -> bool {
    files_in(&dir.inbox()).is_empty() && custodia_lane::outbox::pending_in(&dir.outbox()).unwrap().is_empty()
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `custodia serve` for the vault in `dir` on 127.0.0.1:`port`, its stderr to `stderr`,
/// and returns once `/healthz` answers; panics if that takes longer than `within`.
pub fn spawn_serve(dir: &Path, port: u16, stderr: impl Into<Stdio>, within: Duration) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(["serve", "--dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("custodia serve starts");
    let deadline = Instant::now() + within;
    while healthz_records(port).is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("custodia serve on port {port} did not answer /healthz within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// The record count from `/healthz`, or None if the vault does not answer.
pub fn healthz_records(port: u16) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["records"].as_u64()
}

/// Every file below `dir`, at any depth; nothing if `dir` does not exist.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// How many sealed-capture blobs (`*.cap`) the vault in `vault_dir` holds.
pub fn blob_files(vault_dir: &Path) -> u64 {
    files_in(&vault_dir.join("blobs")).iter().filter(|p| p.extension().is_some_and(|e| e == "cap")).count() as u64
}
