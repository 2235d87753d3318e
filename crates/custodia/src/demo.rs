//! `custodia demo`: the whole pipeline on generated traffic, in one folder, with nothing to set up.
//!
//! It creates a vault for one land-border site, enrols four lane devices (each fed by a different
//! ALPR engine format), generates 45 days of synthetic traffic (rendered plates, drawn vehicles and
//! faces: no real people), drops each capture's files into its lane's inbox the way cameras and
//! engines do, runs the four lane agents against the vault over loopback HTTP, then scans every
//! file it wrote for plaintext images and plates.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use custodia_lane::{Lane, LaneConfig, LaneDir};
use custodia_seal::DeviceSigningKey;
use custodia_synth::{FileRole, LaneSpec, TrafficConfig, Vendor};
use custodia_vault::clock::{Clock, SystemClock};
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::scan::Patterns;

const SITE: &str = "anzalduas";
const MARKER: &str = ".custodia-demo";

/// Options of `custodia demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The folder to run in (replaced if it holds an earlier demo).
    #[arg(long, default_value = "custodia-demo")]
    pub dir: PathBuf,
    /// How many vehicle passes to generate.
    #[arg(long, default_value_t = 2000)]
    pub captures: u32,
    /// How many days of traffic they span (ending now).
    #[arg(long, default_value_t = 45)]
    pub days: u32,
    /// Seed of the traffic generator (same seed, same traffic).
    #[arg(long, default_value_t = 20190531)]
    pub seed: u64,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
    /// Keep the vault's keys in a PKCS#11 token through this module (e.g.
    /// /usr/lib/softhsm/libsofthsm2.so) instead of the file keystore.
    #[arg(long, requires_all = ["hsm_token", "pin_env"])]
    pub hsm_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, requires = "hsm_module")]
    pub hsm_token: Option<String>,
    /// Environment variable holding the token's user PIN.
    #[arg(long, requires = "hsm_module")]
    pub pin_env: Option<String>,
}

struct DemoLane {
    name: String,
    vendor: Vendor,
    dir: LaneDir,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    if args.captures == 0 || args.days == 0 {
        bail!("--captures and --days must be at least 1");
    }
    let started = Instant::now();
    prepare_folder(&args.dir)?;
    let clock = SystemClock;
    let now = clock.now_ms();
    let start_ms = now - i64::from(args.days) * DAY_MS;

    // The vault: one site; captures up to `days` old are accepted because the demo replays them.
    let vault_dir = args.dir.join("vault");
    let mut config = VaultConfig {
        sites: vec![SITE.to_string()],
        max_capture_age_ms: (i64::from(args.days) + 1) * DAY_MS,
        ..VaultConfig::default()
    };
    let pin = match (&args.hsm_module, &args.hsm_token, &args.pin_env) {
        (Some(module), Some(token_label), Some(_)) => {
            let pin = crate::passphrase(&args.pin_env)?.expect("the PIN variable is named");
            crate::init_on_token(&vault_dir, &mut config, module, token_label, &pin)?;
            Some(zeroize::Zeroizing::new(pin))
        }
        _ => {
            // The master key lives beside the vault folder, not in it: a copy of the vault
            // folder alone opens nothing, and shredding holds against it (docs/retention.md).
            let keys = args.dir.join("keys");
            std::fs::create_dir_all(&keys)?;
            let keys = std::fs::canonicalize(&keys)?;
            Vault::init(&vault_dir, &config, MasterKey::KeyFileAt(keys.join("master.key")), &mut rand_core::OsRng)?;
            None
        }
    };
    let vault =
        Vault::open(&vault_dir, Arc::new(clock), Box::new(rand_core::OsRng), pin.as_ref().map(|p| p.as_slice()))?;
    say(&args, &format!("Vault created at {}; publishing key epochs for {} days…", vault_dir.display(), args.days));
    let publisher = vault.clone();
    let ahead = config.publish_ahead_ms;
    let epochs = tokio::task::spawn_blocking(move || publisher.ensure_epochs(start_ms - DAY_MS, now + ahead)).await??;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custodia_server::run(listener, vault.clone(), async {
        let _ = server_stopped.await;
    }));

    // Four lanes, each fed by another engine's format.
    let vendors =
        [Vendor::OpenAlprV2, Vendor::RekorScoutGroup, Vendor::PlateRecognizerSnapshot, Vendor::PlateRecognizerStream];
    let epoch_key = hex::encode(vault.epoch_signing_public_key()?);
    let mut lanes = Vec::new();
    for (i, vendor) in vendors.into_iter().enumerate() {
        let name = format!("lane-{}", i + 1);
        let key = DeviceSigningKey::generate(&mut rand_core::OsRng);
        let row = vault.enroll_device(SITE, &name, &key.verifying_key())?;
        let dir = LaneDir::new(args.dir.join("lanes").join(&name));
        dir.create(
            &LaneConfig {
                device_id: row.id.to_string(),
                site: SITE.into(),
                lane: name.clone(),
                vault_url: url.clone(),
                vault_epoch_key: epoch_key.clone(),
                // The demo writes each file atomically and the engine JSON last.
                settle_ms: 100,
                pair_grace_ms: 2_000,
                upload_concurrency: 4,
            },
            &key,
        )?;
        lanes.push(DemoLane { name, vendor, dir });
    }
    say(&args, &format!("Enrolled 4 lane devices at {SITE}; published {epochs} key epochs. Vault on {url}."));

    let stop_lanes = Arc::new(AtomicBool::new(false));
    let mut agents = Vec::new();
    for lane in &lanes {
        let mut agent = Lane::open(lane.dir.clone())?;
        let stop = stop_lanes.clone();
        agents.push(tokio::spawn(async move {
            agent.run(stop, Duration::from_millis(50)).await.map(|()| agent.status().clone())
        }));
    }

    // Traffic: rendered on worker threads, dropped into the inboxes by this task.
    let traffic = TrafficConfig {
        seed: args.seed,
        site: SITE.into(),
        lanes: lanes
            .iter()
            .enumerate()
            .map(|(i, lane)| LaneSpec { lane: lane.name.clone(), camera_id: i as u32 + 1, vendor: lane.vendor })
            .collect(),
        start_ms,
        days: args.days,
        captures: args.captures,
    };
    let progress = progress_bar(&args, u64::from(args.captures) + 2);
    let (patterns, generated) = drop_traffic(&traffic, &lanes, &vault, &progress).await?;

    // Two inputs a lane cannot use: they must end up quarantined, sealed, visible, not lost.
    drop_file(
        &lanes[0].dir.inbox(),
        "bad-0001.json",
        b"{\"version\": 2, \"data_type\": \"alpr_results\", \"results\": [",
    )?;
    drop_file(&lanes[2].dir.inbox(), "junk-0001.jpg", b"this is not an image")?;
    let expected = generated + 2;

    // Wait until every capture is acknowledged and every lane is idle.
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        let count = vault.record_count()?;
        progress.set_position(count);
        let idle = lanes.iter().all(|lane| lane_is_idle(&lane.dir).unwrap_or(false));
        if count >= expected && idle {
            break;
        }
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(120) {
            bail!("no progress for two minutes ({count} of {expected} stored); see the lanes' state/status.json");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();

    stop_lanes.store(true, Ordering::SeqCst);
    let mut statuses = Vec::new();
    for agent in agents {
        statuses.push(agent.await??);
    }
    let _ = stop_server.send(());
    server.await??;

    let records = vault.record_count()?;
    let quarantined: u64 = statuses.iter().map(|s| s.quarantined).sum();
    let rejected: u64 = statuses.iter().map(|s| s.rejected).sum();
    let blob_bytes = folder_size(&vault_dir.join("blobs"))?;
    let scan = patterns.scan(&args.dir).context("scanning the demo folder")?;

    println!();
    println!("Custodia demo: site {SITE}, 4 lanes, {} simulated days", args.days);
    println!("  vehicle passes generated     {generated}");
    println!("  captures sealed and stored   {records} ({quarantined} quarantined inputs, {rejected} refused)");
    let mut reasons = std::collections::BTreeMap::<String, u64>::new();
    for status in &statuses {
        for (reason, _) in &status.recent_quarantine {
            let kind = reason.split(':').next().unwrap_or(reason).to_string();
            *reasons.entry(kind).or_default() += 1;
        }
    }
    for (reason, count) in &reasons {
        println!("      quarantined: {count:>5} × {reason}");
    }
    println!(
        "  sealed bytes stored          {:.1} MB ({:.0} KB a capture)",
        blob_bytes as f64 / 1e6,
        blob_bytes as f64 / 1e3 / records.max(1) as f64
    );
    println!(
        "  wall time                    {:.1} s, {:.0} captures/s end to end (rendering the synthetic images and the lanes' perceptual hashing are most of it)",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64()
    );
    println!();
    println!("Where everything lives ({}):", args.dir.display());
    println!("  vault/blobs/          sealed captures exactly as the lanes sent them (ciphertext)");
    println!("  vault/index.sqlite3   times, lanes, devices, epochs; plates only as keyed blind-index values");
    if args.hsm_module.is_some() {
        println!("  (token)               every private key, non-extractable, in the PKCS#11 token");
    } else {
        println!("  vault/keystore/       epoch private keys, encrypted under keys/master.key");
        println!("  keys/master.key       the keystore master key (mode 0600), outside the vault folder: a copy");
        println!("                        of vault/ alone opens nothing, and shredding holds against it");
    }
    println!("  vault/access.sqlite3  principals, token hashes, grants; vault/policy.toml absent = default policy");
    println!("  lanes/lane-N/         each lane's inbox and outbox (both empty now) and state; device.key (0600)");
    println!();
    if scan.findings.is_empty() {
        println!(
            "Plaintext scan: {} files, {:.1} MB read; no JPEG/PNG image, EXIF block, camera quantisation table or plate text found.",
            scan.files,
            scan.bytes as f64 / 1e6
        );
    } else {
        println!("Plaintext scan FOUND {} hit(s):", scan.findings.len());
        for finding in scan.findings.iter().take(20) {
            println!("  {} at byte {}: {}", finding.path.display(), finding.offset, finding.what);
        }
        bail!("plaintext found on disk");
    }
    println!();
    println!("Next: `custodia device list --vault {}` lists the lane devices;", vault_dir.display());
    println!(
        "      `custodia lane status --dir {}` shows a lane's counters and quarantine.",
        lanes[0].dir.root().display()
    );
    Ok(())
}

fn say(args: &DemoArgs, line: &str) {
    if !args.quiet {
        eprintln!("{line}");
    }
}

fn progress_bar(args: &DemoArgs, length: u64) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{spinner} stored {pos}/{len} captures [{bar:40}] {per_sec} {msg}")
            .expect("progress template is valid")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Refuses to touch a non-empty folder that is not an earlier demo; replaces an earlier demo.
fn prepare_folder(dir: &Path) -> Result<()> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists();
        let is_empty = std::fs::read_dir(dir)?.next().is_none();
        if is_demo {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing the earlier demo at {}", dir.display()))?;
        } else if !is_empty {
            bail!("{} exists and is not a custodia demo folder; choose another --dir", dir.display());
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(MARKER), b"created by `custodia demo`; the demo replaces this folder when run again\n")?;
    Ok(())
}

/// Renders the traffic on two threads and drops each capture's files into its lane's inbox
/// (images first, engine JSON last, each written under a temporary name and renamed, as cameras
/// do), keeping each inbox's backlog bounded. Returns the scan patterns and the capture count.
async fn drop_traffic(
    traffic: &TrafficConfig,
    lanes: &[DemoLane],
    vault: &Vault,
    progress: &ProgressBar,
) -> Result<(Patterns, u64)> {
    let planner = Arc::new(Mutex::new(custodia_synth::plan(traffic)));
    let (send, receive) = std::sync::mpsc::sync_channel(64);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    for _ in 0..workers {
        let (planner, send, traffic) = (planner.clone(), send.clone(), traffic.clone());
        std::thread::spawn(move || {
            loop {
                let next = planner.lock().expect("planner lock").next();
                let Some(plan) = next else { break };
                if send.send(custodia_synth::render(&traffic, &plan)).is_err() {
                    break;
                }
            }
        });
    }
    drop(send);
    let lane_dirs: Vec<(String, PathBuf)> = lanes.iter().map(|l| (l.name.clone(), l.dir.inbox())).collect();
    let vault = vault.clone();
    let progress = progress.clone();
    tokio::task::spawn_blocking(move || -> Result<(Patterns, u64)> {
        let mut patterns = Patterns::new();
        let mut count = 0u64;
        for capture in receive {
            for plate in capture.plate_text.iter().chain(capture.read_text.iter()) {
                patterns.add_plate(plate);
            }
            let inbox = &lane_dirs
                .iter()
                .find(|(name, _)| *name == capture.lane)
                .context("generated traffic for an unknown lane")?
                .1;
            while std::fs::read_dir(inbox)?.count() > 400 {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut files = capture.files;
            files.sort_by_key(|f| f.role == FileRole::EngineJson);
            for file in &files {
                if file.role != FileRole::EngineJson && count < 64 {
                    patterns.add_jpeg_tables(&file.bytes);
                }
                drop_file(inbox, &file.name, &file.bytes)?;
            }
            count += 1;
            if count.is_multiple_of(16) {
                progress.set_position(vault.record_count().unwrap_or(0));
            }
        }
        Ok((patterns, count))
    })
    .await?
}

fn drop_file(inbox: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = inbox.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, inbox.join(name))?;
    Ok(())
}

fn lane_is_idle(dir: &LaneDir) -> Result<bool> {
    let inbox_empty = std::fs::read_dir(dir.inbox())?.next().is_none();
    Ok(inbox_empty && custodia_lane::outbox::pending_in(&dir.outbox())?.is_empty())
}

fn folder_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}
