//! `custodia simulate`: many lanes against one vault over loopback HTTP, for load and soak runs
//! (issue #6, part 5).
//!
//! It starts a vault (in a temporary folder unless `--dir`) and `custodia_server::run` on
//! 127.0.0.1:0 in this process, enrols `--lanes` devices, and drives that many simulated lanes:
//! together they capture `--rate` vehicle passes a second, round-robin over the lanes, and each
//! lane uploads its captures the way `custodia lane run` does (see [`upload_loop`]). Every second
//! it prints what was acknowledged, the acknowledgement latency, the backlog and this process's
//! resident memory (the vault runs in it); at the end, a summary and the exactly-once check: the
//! vault's record count equals the number of captures acknowledged.
//!
//! What a capture is: three retention-class groups (plate crop with the metadata part, overview,
//! face), each sealed to its published epoch key with a fresh data key, signed by its device,
//! with a unique per-device sequence number; the metadata carries a plate read with candidates
//! and, per image, the six `pdq-fast-v1` hashes a lane computes (full + five standard crops), so
//! the vault indexes what it would in service. The image plaintexts come from a pool made once
//! (random bytes of `--image-kb` in all: the vault never decodes images at ingest, and ciphertext
//! of a JPEG is as random as ciphertext of noise); the hashes and plates in the pool are random.
//!
//! What it is not: a lane. It does not read an inbox, strip metadata or hash images (see
//! `cargo bench -p custodia-lane` for that cost), and it keeps a lane's backlog as a queue of
//! capture events in memory rather than sealed files in an outbox: a capture is sealed when its
//! lane's uploader takes it. The sealing still runs on the same cores as the vault, so the
//! throughput it finds is the vault's *with* its lanes' sealing beside it: a lower bound on the
//! vault alone.
//!
//! ```text
//! custodia simulate --lanes 4 --rate 200 --duration 5s
//! custodia simulate --lanes 64 --rate 800 --duration 10min --json > soak.jsonl
//! ```

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use clap::Args;
use custodia_seal::epochs::{EpochSet, SignedEpochSet};
use custodia_seal::metadata::{
    CandidateRecord, CaptureMetadata, ImageRecord, ImageRole, METADATA_VERSION, PdqRecord, PlateReadRecord,
};
use custodia_seal::{
    CaptureHeader, DeviceId, DeviceSigningKey, GroupToSeal, LaneName, PartKind, PartToSeal, RetentionClass, SiteName,
    VaultVerifyingKey,
};
use custodia_vault::clock::{Clock, SystemClock};
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use rand_core::{OsRng, RngCore};

const SITE: &str = "anzalduas";
/// More lanes than one site has; beyond it connections, not the vault, become the subject.
pub const MAX_LANES: u32 = 1000;
/// Captures a second across all lanes; far above what one machine's disk acknowledges durably.
pub const MAX_RATE: f64 = 100_000.0;
/// A day: epochs are published for the whole run up front.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Image plaintext per capture: up to a full-resolution lane capture (a few MB).
pub const MAX_IMAGE_KB: u32 = 4096;
/// Distinct plaintext captures in the pool.
const POOL: usize = 64;
/// How the upload backoff grows and caps, as the lane agent's (`custodia_lane::agent`).
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// After the drain, how long a capture already in an uploader's hands may keep retrying before
/// the run gives up on knowing its fate (the vault would have to be down).
const RESOLVE_LIMIT: Duration = Duration::from_secs(120);

/// Options of `custodia simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Simulated lanes (enrolled devices), at most 1000.
    #[arg(long, default_value_t = 4)]
    pub lanes: u32,
    /// Captures a second, all lanes together, at most 100000.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// How long captures are generated: `30s`, `10min`, `2h`, `500ms` (a bare number is seconds).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Keep the vault in this folder (created; must be absent or empty) instead of a temporary
    /// one that is removed at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// One JSON object a line (each second, then `{"summary": …}`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Image plaintext per capture in KB, split plate crop 1/4, overview 1/2, face 1/4. The
    /// default keeps a 10-minute soak within a few GB of disk; 250 is a full lane capture.
    #[arg(long, default_value_t = 6)]
    pub image_kb: u32,
    /// Perceptual hashes per image in the metadata, 0 to 6 (a lane sends 6: the whole image and
    /// five standard crops). The vault indexes each, on disk and in its in-memory leak index.
    #[arg(long, default_value_t = 6)]
    pub hashes_per_image: usize,
    /// Uploads in flight per lane (the lane agent's default is 4).
    #[arg(long, default_value_t = 4)]
    pub upload_concurrency: usize,
    /// After `--duration`, how long lanes keep uploading their backlog (no new captures).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain: Duration,
}

/// Parses `30s`, `10min`, `1.5m`, `2h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30s or 10min"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "m" | "min" | "mins" => value * 60.0,
        "h" | "hour" | "hours" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use ms, s, min or h")),
    };
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A capture a lane has made but the vault has not yet acknowledged.
struct Pending {
    sequence: u64,
    time_ms: i64,
    born: Instant,
    pool: usize,
}

struct SimLane {
    device_id: DeviceId,
    key: DeviceSigningKey,
    lane: LaneName,
    queue: Mutex<VecDeque<Pending>>,
    wake: tokio::sync::Notify,
    next_sequence: AtomicU64,
}

/// One plaintext capture of the pool.
struct Plain {
    metadata: Vec<u8>,
    plate: Vec<u8>,
    overview: Vec<u8>,
    face: Vec<u8>,
}

/// Latencies in log-spaced buckets (2 % wide, 1 µs to ~400 s): fixed memory however long the run.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

const BUCKETS: usize = 1000;
const GROWTH: f64 = 1.02;

impl Histogram {
    fn new() -> Self {
        Self { counts: vec![0; BUCKETS], total: 0, max_us: 0 }
    }
    fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = if us <= 1 { 0 } else { ((us as f64).ln() / GROWTH.ln()) as usize + 1 };
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }
    fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max_us = 0;
    }
    /// The `p` quantile in milliseconds (the bucket's midpoint), or `None` when empty.
    fn quantile_ms(&self, p: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((self.total as f64 * p).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let low = if i == 0 { 1.0 } else { GROWTH.powi(i as i32 - 1) };
                let mid = (low * (1.0 + GROWTH) / 2.0).min(self.max_us as f64);
                return Some(mid / 1e3);
            }
        }
        Some(self.max_us as f64 / 1e3)
    }
}

#[derive(Default)]
struct Counters {
    generated: AtomicU64,
    acknowledged: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    transient: AtomicU64,
}

struct Stats {
    counters: Counters,
    /// This second's acknowledgements: end-to-end latency (capture made → acknowledged).
    second: Mutex<(u64, Histogram)>,
    /// Whole run, end to end.
    total: Mutex<Histogram>,
    /// Whole run, one successful POST's round trip.
    round_trip: Mutex<Histogram>,
}

/// Runs the simulation.
pub async fn run(args: SimulateArgs) -> Result<()> {
    if args.lanes == 0 || args.lanes > MAX_LANES {
        bail!("--lanes must be 1 to {MAX_LANES} (asked for {})", args.lanes);
    }
    if !(args.rate > 0.0 && args.rate <= MAX_RATE) {
        bail!("--rate must be above 0 and at most {MAX_RATE} captures/s (asked for {})", args.rate);
    }
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        bail!("--duration must be above 0 and at most 24h");
    }
    if args.image_kb == 0 || args.image_kb > MAX_IMAGE_KB {
        bail!("--image-kb must be 1 to {MAX_IMAGE_KB}");
    }
    if args.hashes_per_image > 1 + custodia_pdq::crops::STANDARD_CROP_NAMES.len() {
        bail!("--hashes-per-image must be 0 to 6");
    }
    if args.upload_concurrency == 0 || args.upload_concurrency > 64 {
        bail!("--upload-concurrency must be 1 to 64");
    }
    let folder = Folder::prepare(args.dir.as_deref())?;
    let result = simulate(&args, &folder.path).await;
    drop(folder);
    result
}

/// The run's folder; a temporary one is removed when dropped, also on error.
struct Folder {
    path: PathBuf,
    temporary: bool,
}

impl Folder {
    fn prepare(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(dir) => {
                if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
                    bail!("{} is not empty; give an absent or empty --dir", dir.display());
                }
                std::fs::create_dir_all(dir)?;
                Ok(Self { path: dir.to_path_buf(), temporary: false })
            }
            None => {
                let nanos =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                let path = std::env::temp_dir().join(format!("custodia-simulate-{}-{nanos}", std::process::id()));
                std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
                Ok(Self { path, temporary: true })
            }
        }
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn simulate(args: &SimulateArgs, root: &Path) -> Result<()> {
    let say = |line: &str| {
        if !args.json {
            eprintln!("{line}");
        }
    };
    let now = SystemClock.now_ms();
    let vault_dir = root.join("vault");
    let keys = root.join("keys");
    std::fs::create_dir_all(&keys)?;
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(&vault_dir, &config, MasterKey::KeyFileAt(keys.join("master.key")), &mut OsRng)
        .with_context(|| format!("creating a vault at {}", vault_dir.display()))?;
    let vault = Vault::open(&vault_dir, Arc::new(SystemClock), Box::new(OsRng), None)?;
    let span_end = now + args.duration.as_millis() as i64 + args.drain.as_millis() as i64 + DAY_MS;
    let publisher = vault.clone();
    tokio::task::spawn_blocking(move || publisher.ensure_epochs(now - DAY_MS, span_end)).await??;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custodia_server::run(listener, vault.clone(), async {
        let _ = server_stopped.await;
    }));

    say(&format!("Vault at {}; enrolling {} lane devices…", vault_dir.display(), args.lanes));
    let enroller = vault.clone();
    let lane_count = args.lanes;
    let enrolled = tokio::task::spawn_blocking(move || -> Result<Vec<SimLane>> {
        (0..lane_count)
            .map(|i| {
                let key = DeviceSigningKey::generate(&mut OsRng);
                let name = format!("lane-{}", i + 1);
                let row = enroller.enroll_device(SITE, &name, &key.verifying_key())?;
                Ok(SimLane {
                    device_id: row.id,
                    key,
                    lane: LaneName::new(name).map_err(|e| anyhow::anyhow!("lane name: {e}"))?,
                    queue: Mutex::new(VecDeque::new()),
                    wake: tokio::sync::Notify::new(),
                    next_sequence: AtomicU64::new(0),
                })
            })
            .collect()
    })
    .await??;
    let lanes: Arc<Vec<SimLane>> = Arc::new(enrolled);

    // The lanes' epoch keys come over HTTP and are verified against the key pinned at enrolment,
    // as `custodia lane` does.
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()?;
    let pinned = VaultVerifyingKey::from_bytes(&vault.epoch_signing_public_key()?)
        .map_err(|e| anyhow::anyhow!("vault key: {e}"))?;
    let epoch_json = client.get(format!("{base}/v1/epochs")).send().await?.error_for_status()?.bytes().await?;
    let epochs = Arc::new(
        SignedEpochSet::from_json(&epoch_json)
            .and_then(|s| s.verify(&pinned))
            .map_err(|e| anyhow::anyhow!("epoch set: {e}"))?,
    );
    let pool = Arc::new(make_pool(args.image_kb as usize * 1024, args.hashes_per_image));
    let capture_bytes = sample_size(&pool[0], &lanes[0], &epochs)?;
    say(&format!(
        "Vault on {base}; {} lanes capturing {} captures/s for {:.0} s; ~{:.1} KB a sealed capture (three groups, {} perceptual hashes).",
        args.lanes,
        args.rate,
        args.duration.as_secs_f64(),
        capture_bytes as f64 / 1e3,
        3 * args.hashes_per_image
    ));

    let stats = Arc::new(Stats {
        counters: Counters::default(),
        second: Mutex::new((0, Histogram::new())),
        total: Mutex::new(Histogram::new()),
        round_trip: Mutex::new(Histogram::new()),
    });
    let generating = Arc::new(AtomicBool::new(true));
    let draining_until = Arc::new(Mutex::new(None::<Instant>));
    let sealers = Arc::new(tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

    let started = Instant::now();
    let mut uploaders = Vec::new();
    for index in 0..lanes.len() {
        let context = UploadContext {
            lanes: lanes.clone(),
            index,
            client: client.clone(),
            url: format!("{base}/v1/captures"),
            epochs: epochs.clone(),
            pool: pool.clone(),
            stats: stats.clone(),
            generating: generating.clone(),
            draining_until: draining_until.clone(),
            sealers: sealers.clone(),
            concurrency: args.upload_concurrency,
        };
        uploaders.push(tokio::spawn(upload_loop(context)));
    }
    let generator =
        tokio::spawn(generate(lanes.clone(), stats.clone(), generating.clone(), args.rate, args.duration, started));

    // One line a second until generation ends and the backlog drains (or the drain time is up).
    let mut report = Report::default();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_deadline = None;
    loop {
        ticker.tick().await;
        report.generation_over = generator.is_finished();
        let line = report.second(&stats, started);
        if args.json {
            println!("{}", serde_json::to_string(&line.json())?);
        } else {
            println!("{}", line.text());
        }
        if generator.is_finished() && drain_deadline.is_none() {
            let deadline = Instant::now() + args.drain;
            drain_deadline = Some(deadline);
            *draining_until.lock().expect("drain lock") = Some(deadline);
            for lane in lanes.iter() {
                lane.wake.notify_one();
            }
        }
        let uploaders_done = uploaders.iter().all(|u| u.is_finished());
        if uploaders_done {
            break;
        }
    }
    let acked_in_duration = generator.await?;
    for uploader in uploaders {
        uploader.await??;
    }
    let elapsed = started.elapsed();
    let _ = stop_server.send(());
    server.await??;
    vault.publish_checkpoint()?;

    let records = vault.record_count()?;
    let counters = &stats.counters;
    let generated = counters.generated.load(Ordering::SeqCst);
    let acknowledged = counters.acknowledged.load(Ordering::SeqCst);
    let refused = counters.refused.load(Ordering::SeqCst);
    let left = lanes.iter().map(|l| l.queue.lock().expect("queue lock").len() as u64).sum::<u64>();
    let total = stats.total.lock().expect("stats lock").clone();
    let round_trip = stats.round_trip.lock().expect("stats lock").clone();
    let exactly_once = records == acknowledged && refused == 0 && generated == acknowledged + left;
    let summary = Summary {
        lanes: args.lanes,
        rate: args.rate,
        duration_s: args.duration.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        capture_bytes,
        generated,
        acknowledged,
        duplicates: counters.duplicates.load(Ordering::SeqCst),
        refused,
        transient_failures: counters.transient.load(Ordering::SeqCst),
        left_unsent: left,
        acknowledged_in_duration: acked_in_duration,
        throughput: acked_in_duration as f64 / args.duration.as_secs_f64(),
        latency: total,
        round_trip,
        max_backlog: report.max_backlog,
        rss_first_mb: report.rss_first_mb,
        rss_max_mb: report.rss_max_mb,
        rss_last_mb: rss_mb(),
        records,
        exactly_once,
    };
    if args.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "summary": summary.json() }))?);
    } else {
        summary.print();
    }
    if !exactly_once {
        bail!(
            "exactly-once check failed: the vault holds {records} records, {acknowledged} captures were acknowledged, \
             {refused} refused, {generated} generated, {left} never sent"
        );
    }
    Ok(())
}

/// Makes capture events at `rate` a second, round-robin over the lanes, for `duration`.
/// Returns how many captures the vault had acknowledged when generation ended.
async fn generate(
    lanes: Arc<Vec<SimLane>>,
    stats: Arc<Stats>,
    generating: Arc<AtomicBool>,
    rate: f64,
    duration: Duration,
    started: Instant,
) -> u64 {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut made: u64 = 0;
    let mut pool_index = 0usize;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().min(duration);
        let due = (elapsed.as_secs_f64() * rate) as u64;
        let time_ms = SystemClock.now_ms();
        let born = Instant::now();
        while made < due {
            let lane = &lanes[(made % lanes.len() as u64) as usize];
            let sequence = lane.next_sequence.fetch_add(1, Ordering::SeqCst);
            lane.queue.lock().expect("queue lock").push_back(Pending { sequence, time_ms, born, pool: pool_index });
            pool_index = (pool_index + 1) % POOL;
            stats.counters.generated.fetch_add(1, Ordering::SeqCst);
            lane.wake.notify_one();
            made += 1;
        }
        if elapsed >= duration {
            generating.store(false, Ordering::SeqCst);
            return stats.counters.acknowledged.load(Ordering::SeqCst);
        }
    }
}

struct UploadContext {
    lanes: Arc<Vec<SimLane>>,
    index: usize,
    client: reqwest::Client,
    url: String,
    epochs: Arc<EpochSet>,
    pool: Arc<Vec<Plain>>,
    stats: Arc<Stats>,
    generating: Arc<AtomicBool>,
    draining_until: Arc<Mutex<Option<Instant>>>,
    sealers: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
}

enum Outcome {
    Stored { duplicate: bool, round_trip: Duration },
    Refused(u16, String),
    Transient,
}

/// One lane's uploader, with the lane agent's semantics: captures go in order, `concurrency` at a
/// time; a capture leaves the backlog only when the vault acknowledges it (201, or 200 for one
/// already stored); a transient failure (no answer, 408, 429, 5xx) backs the lane off
/// exponentially from 250 ms to 30 s with up to 250 ms of jitter and retries the same bytes; any
/// other answer is a refusal, counted (and failing the run's check), never retried.
async fn upload_loop(cx: UploadContext) -> Result<()> {
    let lane = &cx.lanes[cx.index];
    let mut backoff = Duration::ZERO;
    loop {
        let drain_deadline = *cx.draining_until.lock().expect("drain lock");
        if drain_deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let chunk: Vec<Pending> = {
            let mut queue = lane.queue.lock().expect("queue lock");
            let take = queue.len().min(cx.concurrency);
            queue.drain(..take).collect()
        };
        if chunk.is_empty() {
            if drain_deadline.is_some() {
                return Ok(());
            }
            // Woken by the generator, or by the end of generation.
            let _ = tokio::time::timeout(Duration::from_millis(200), lane.wake.notified()).await;
            continue;
        }
        let bodies = seal_chunk(&cx, &chunk).await?;
        let mut open: Vec<usize> = (0..chunk.len()).collect();
        let give_up = Instant::now() + RESOLVE_LIMIT.max(Duration::from_secs(1));
        while !open.is_empty() {
            let mut set = tokio::task::JoinSet::new();
            for &i in &open {
                let (client, url, body) = (cx.client.clone(), cx.url.clone(), bodies[i].clone());
                set.spawn(async move { (i, post(&client, &url, body).await) });
            }
            let mut still_open = Vec::new();
            while let Some(joined) = set.join_next().await {
                let (i, outcome) = joined?;
                match outcome {
                    Outcome::Stored { duplicate, round_trip } => {
                        let latency = chunk[i].born.elapsed();
                        let counters = &cx.stats.counters;
                        counters.acknowledged.fetch_add(1, Ordering::SeqCst);
                        if duplicate {
                            counters.duplicates.fetch_add(1, Ordering::SeqCst);
                        }
                        {
                            let mut second = cx.stats.second.lock().expect("stats lock");
                            second.0 += 1;
                            second.1.record(latency);
                        }
                        cx.stats.total.lock().expect("stats lock").record(latency);
                        cx.stats.round_trip.lock().expect("stats lock").record(round_trip);
                    }
                    Outcome::Refused(status, problem) => {
                        cx.stats.counters.refused.fetch_add(1, Ordering::SeqCst);
                        tracing::error!(status, %problem, sequence = chunk[i].sequence, "the vault refused a simulated capture");
                    }
                    Outcome::Transient => {
                        cx.stats.counters.transient.fetch_add(1, Ordering::SeqCst);
                        still_open.push(i);
                    }
                }
            }
            open = still_open;
            if open.is_empty() {
                backoff = Duration::ZERO;
            } else {
                if Instant::now() > give_up && !cx.generating.load(Ordering::SeqCst) {
                    bail!(
                        "{} captures of {} still unacknowledged after {RESOLVE_LIMIT:?} of retries",
                        open.len(),
                        lane.lane
                    );
                }
                backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                let jitter = Duration::from_millis(u64::from(OsRng.next_u32() % 250));
                tokio::time::sleep(backoff + jitter).await;
            }
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, body: Bytes) -> Outcome {
    let sent = Instant::now();
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, custodia_lane::agent::SEALED_CAPTURE_MEDIA_TYPE)
        .body(body)
        .send()
        .await;
    let Ok(response) = response else { return Outcome::Transient };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let round_trip = sent.elapsed();
    match status {
        201 => Outcome::Stored { duplicate: false, round_trip },
        200 => Outcome::Stored { duplicate: true, round_trip },
        408 | 429 | 500..=599 => Outcome::Transient,
        _ => Outcome::Refused(status, text),
    }
}

/// Seals a chunk on the blocking pool, at most one chunk per core at a time.
async fn seal_chunk(cx: &UploadContext, chunk: &[Pending]) -> Result<Vec<Bytes>> {
    let _permit = cx.sealers.acquire().await?;
    let jobs: Vec<(u64, i64, usize)> = chunk.iter().map(|p| (p.sequence, p.time_ms, p.pool)).collect();
    let (lanes, index, epochs, pool) = (cx.lanes.clone(), cx.index, cx.epochs.clone(), cx.pool.clone());
    tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|(sequence, time_ms, p)| {
                seal_one(&lanes[index], &epochs, &pool[p], sequence, time_ms).map(Bytes::from)
            })
            .collect()
    })
    .await?
}

fn seal_one(lane: &SimLane, epochs: &EpochSet, plain: &Plain, sequence: u64, time_ms: i64) -> Result<Vec<u8>> {
    let site = SiteName::new(SITE).map_err(|e| anyhow::anyhow!("site: {e}"))?;
    let epoch =
        |class| epochs.find(&site, class, time_ms).with_context(|| format!("no {class:?} epoch covers {time_ms}"));
    let (plate, overview, face) =
        (epoch(RetentionClass::Plate)?, epoch(RetentionClass::Overview)?, epoch(RetentionClass::Face)?);
    let groups = [
        GroupToSeal {
            class: RetentionClass::Plate,
            epoch_id: plate.epoch_id,
            epoch_key: &plate.public_key,
            parts: vec![
                PartToSeal { kind: PartKind::Metadata, plaintext: &plain.metadata },
                PartToSeal { kind: PartKind::Jpeg, plaintext: &plain.plate },
            ],
        },
        GroupToSeal {
            class: RetentionClass::Overview,
            epoch_id: overview.epoch_id,
            epoch_key: &overview.public_key,
            parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: &plain.overview }],
        },
        GroupToSeal {
            class: RetentionClass::Face,
            epoch_id: face.epoch_id,
            epoch_key: &face.public_key,
            parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: &plain.face }],
        },
    ];
    let header =
        CaptureHeader { device_id: lane.device_id, site, lane: lane.lane.clone(), capture_time_ms: time_ms, sequence };
    custodia_seal::seal(&header, &groups, &lane.key, &mut OsRng).map_err(|e| anyhow::anyhow!("sealing: {e}"))
}

/// The size of one sealed capture from the pool (they all have the same size within a few bytes).
fn sample_size(plain: &Plain, lane: &SimLane, epochs: &EpochSet) -> Result<usize> {
    Ok(seal_one(lane, epochs, plain, u64::MAX, SystemClock.now_ms())?.len())
}

/// The plaintext pool: random image bytes of the given total, and metadata as a lane writes it.
fn make_pool(image_bytes: usize, hashes_per_image: usize) -> Vec<Plain> {
    let quarter = (image_bytes / 4).max(1);
    let random = |n: usize| {
        let mut bytes = vec![0u8; n];
        OsRng.fill_bytes(&mut bytes);
        bytes
    };
    let hashes = || -> Vec<PdqRecord> {
        std::iter::once("full")
            .chain(custodia_pdq::crops::STANDARD_CROP_NAMES)
            .take(hashes_per_image)
            .map(|variant| PdqRecord {
                pipeline: custodia_pdq::Pipeline::FastV1.name().to_string(),
                variant: variant.to_string(),
                hash: hex::encode(random(32)),
                quality: 60 + OsRng.next_u32() % 41,
            })
            .collect()
    };
    (0..POOL)
        .map(|_| {
            let (plate, overview, face) =
                (random(quarter), random(image_bytes.saturating_sub(2 * quarter).max(1)), random(quarter));
            let letters: String = (0..3).map(|_| char::from(b'A' + (OsRng.next_u32() % 26) as u8)).collect();
            let text = format!("{letters}{:04}", OsRng.next_u32() % 10_000);
            let record = |group, part, role, bytes: &Vec<u8>| ImageRecord {
                group,
                part,
                role,
                bytes: bytes.len() as u64,
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
                stripped: vec![],
                pdq: hashes(),
            };
            let metadata = CaptureMetadata {
                version: METADATA_VERSION,
                read: Some(PlateReadRecord {
                    plate: text.clone(),
                    confidence: 0.91,
                    region: Some("us-tx".into()),
                    candidates: vec![
                        CandidateRecord { plate: text.clone(), confidence: Some(0.91) },
                        CandidateRecord { plate: text.replacen('0', "O", 1), confidence: Some(0.42) },
                    ],
                    bbox: Some([412, 288, 180, 64]),
                    vehicle: vec![("make".into(), "generic".into()), ("color".into(), "silver".into())],
                }),
                other_reads: vec![],
                engine: None,
                images: vec![
                    record(0, 1, ImageRole::PlateCrop, &plate),
                    record(1, 0, ImageRole::Overview, &overview),
                    record(2, 0, ImageRole::Face, &face),
                ],
                quarantine: None,
                expired_images: Vec::new(),
            }
            .to_vec();
            Plain { metadata, plate, overview, face }
        })
        .collect()
}

/// This process's resident set size in MB (`VmRSS` of /proc/self/status), 0 where unavailable.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Default)]
struct Report {
    seconds: u64,
    max_backlog: u64,
    rss_first_mb: f64,
    rss_max_mb: f64,
    generation_over: bool,
}

struct Line {
    second: u64,
    acked: u64,
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
    backlog: u64,
    rss_mb: f64,
    draining: bool,
}

impl Report {
    fn second(&mut self, stats: &Stats, started: Instant) -> Line {
        let (acked, histogram) = {
            let mut second = stats.second.lock().expect("stats lock");
            let taken = (second.0, second.1.clone());
            second.0 = 0;
            second.1.clear();
            taken
        };
        self.seconds += 1;
        let c = &stats.counters;
        let backlog = c
            .generated
            .load(Ordering::SeqCst)
            .saturating_sub(c.acknowledged.load(Ordering::SeqCst) + c.refused.load(Ordering::SeqCst));
        let rss = rss_mb();
        if self.seconds == 1 {
            self.rss_first_mb = rss;
        }
        self.rss_max_mb = self.rss_max_mb.max(rss);
        self.max_backlog = self.max_backlog.max(backlog);
        let draining = self.generation_over;
        Line {
            // Wall-clock seconds since the load began (a loaded machine delays ticks).
            second: started.elapsed().as_secs_f64().round() as u64,
            acked,
            p50: histogram.quantile_ms(0.50),
            p95: histogram.quantile_ms(0.95),
            p99: histogram.quantile_ms(0.99),
            backlog,
            rss_mb: rss,
            draining,
        }
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

impl Line {
    fn text(&self) -> String {
        format!(
            "{:>5} s  acked {:>6}/s  latency p50 {:>7} p95 {:>7} p99 {:>7} ms  backlog {:>7}  rss {:>7.1} MB{}",
            self.second,
            self.acked,
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            self.backlog,
            self.rss_mb,
            if self.draining { "  (draining)" } else { "" }
        )
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "t": self.second,
            "acked": self.acked,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
            "p99_ms": self.p99,
            "backlog": self.backlog,
            "rss_mb": (self.rss_mb * 10.0).round() / 10.0,
            "draining": self.draining,
        })
    }
}

struct Summary {
    lanes: u32,
    rate: f64,
    duration_s: f64,
    elapsed_s: f64,
    capture_bytes: usize,
    generated: u64,
    acknowledged: u64,
    duplicates: u64,
    refused: u64,
    transient_failures: u64,
    left_unsent: u64,
    acknowledged_in_duration: u64,
    throughput: f64,
    latency: Histogram,
    round_trip: Histogram,
    max_backlog: u64,
    rss_first_mb: f64,
    rss_max_mb: f64,
    rss_last_mb: f64,
    records: u64,
    exactly_once: bool,
}

impl Summary {
    fn print(&self) {
        println!();
        println!(
            "custodia simulate: {} lanes, {} captures/s offered for {:.0} s ({:.1} s with the drain), ~{:.1} KB a capture",
            self.lanes,
            self.rate,
            self.duration_s,
            self.elapsed_s,
            self.capture_bytes as f64 / 1e3
        );
        println!("  captures generated          {}", self.generated);
        println!(
            "  acknowledged                {} ({} as already stored after a lost answer), {} refused, {} transient failures retried",
            self.acknowledged, self.duplicates, self.refused, self.transient_failures
        );
        println!("  never sent (left in lanes)  {}", self.left_unsent);
        println!(
            "  throughput                  {:.0} captures/s acknowledged over the {:.0} s of load ({:.1} MB/s)",
            self.throughput,
            self.duration_s,
            self.throughput * self.capture_bytes as f64 / 1e6
        );
        println!(
            "  latency, capture to ack     p50 {} ms, p95 {} ms, p99 {} ms, max {:.1} ms",
            ms(self.latency.quantile_ms(0.50)),
            ms(self.latency.quantile_ms(0.95)),
            ms(self.latency.quantile_ms(0.99)),
            self.latency.max_us as f64 / 1e3
        );
        println!(
            "  latency, POST round trip    p50 {} ms, p95 {} ms, p99 {} ms, max {:.1} ms",
            ms(self.round_trip.quantile_ms(0.50)),
            ms(self.round_trip.quantile_ms(0.95)),
            ms(self.round_trip.quantile_ms(0.99)),
            self.round_trip.max_us as f64 / 1e3
        );
        println!("  max backlog                 {}", self.max_backlog);
        println!(
            "  rss (vault in process)      first {:.1} MB, max {:.1} MB, last {:.1} MB",
            self.rss_first_mb, self.rss_max_mb, self.rss_last_mb
        );
        println!(
            "  exactly once: {} — the vault holds {} records for {} acknowledged captures",
            if self.exactly_once { "ok" } else { "FAILED" },
            self.records,
            self.acknowledged
        );
    }

    fn json(&self) -> serde_json::Value {
        let pct = |h: &Histogram| {
            serde_json::json!({
                "p50_ms": h.quantile_ms(0.50), "p95_ms": h.quantile_ms(0.95),
                "p99_ms": h.quantile_ms(0.99), "max_ms": h.max_us as f64 / 1e3,
            })
        };
        serde_json::json!({
            "lanes": self.lanes,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "elapsed_s": self.elapsed_s,
            "capture_bytes": self.capture_bytes,
            "generated": self.generated,
            "acknowledged": self.acknowledged,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "transient_failures": self.transient_failures,
            "left_unsent": self.left_unsent,
            "acknowledged_in_duration": self.acknowledged_in_duration,
            "throughput": self.throughput,
            "latency": pct(&self.latency),
            "round_trip": pct(&self.round_trip),
            "max_backlog": self.max_backlog,
            "rss_first_mb": self.rss_first_mb,
            "rss_max_mb": self.rss_max_mb,
            "rss_last_mb": self.rss_last_mb,
            "records": self.records,
            "exactly_once": self.exactly_once,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10min").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("0.5min").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("min").is_err());
    }

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (p, expected) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile_ms(p).unwrap();
            assert!((got - expected).abs() / expected < 0.02, "p{p}: {got} vs {expected}");
        }
        assert_eq!(Histogram::new().quantile_ms(0.5), None);
    }
}
