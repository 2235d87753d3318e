//! End-to-end ingest over loopback with durable acknowledgement, against this disk's own ceiling.
//!
//! 1. Seals `N` captures of ~250 KB (~3 KB metadata + 20 KB plate crop + 200 KB overview + 30 KB
//!    face, three groups) from 8 devices. The metadata is what a lane writes: a plate read with
//!    three candidates (four blind-index rows) and `pdq-fast-v1` hashes of each image, whole and
//!    in the five standard crops (18 rows). Until 2026-12-07 it carried one plate and no hashes,
//!    which left out four fifths of the index work a lane's capture costs (docs/performance.md).
//! 2. Throughput: posts them to `custodia serve` (in process, on 127.0.0.1) over as many
//!    concurrent connections as the vault admits uploads at once (`IntakeLimits::in_flight`, 128),
//!    so the closed loop can fill what intake works on; every request returns only after the blob
//!    and index row are durable.
//! 3. Ceiling: writes the same bytes as files into a fresh folder on the same disk, in batches of
//!    64 with one `syncfs` per batch and then drops the batch's pages from the page cache (what the
//!    vault's committer does, without HTTP, verification, decryption or SQLite), once before the
//!    ingest and once after it, and prints the ratio to their mean (this disk's speed drifts within
//!    a run).
//! 4. Latency: an open-loop load of 500 captures/s for 4 s, each capture sent at its time on its
//!    own, p50/p99 acknowledgement latency (run before the ceilings, after the disk has settled,
//!    so their write-back does not count).
//! 5. Sustained: the goal's 2,000 captures/s offered for 2 s by 64 lanes, each uploading its own
//!    captures one at a time over a kept-alive connection as a lane agent does, with captures
//!    arriving on schedule whether or not earlier ones were answered. It prints the rate
//!    acknowledged and the latency from arrival (including any wait behind the lane's earlier
//!    captures): "kept up" when 99 % of the goal is acknowledged with p99 <= 50 ms. The closed
//!    loop measures capacity; this measures the goal as a fleet would load it.
//! 6. CPU: the process's user and system time over the throughput phase, per capture, and the
//!    rate that would give if the run were CPU-bound: on a day the disk is the limit, what the
//!    software would reach on a faster one; and the share of that rate the closed loop reached,
//!    which changes far less than either figure with the host's speed.
//! 7. Floor: the CPU per capture that the format, the storage design and the transport fix
//!    whatever the vault's code does, measured before the ingest on the same host: the checks
//!    (SHA-256 over the body, Ed25519, the P-256 Diffie-Hellman) on one thread, the ceiling's
//!    file writes (step 3), and the same bytes over loopback TCP without HTTP. It prints the
//!    floor's share of the ingest's CPU per capture, and the CPU per capture at which this run's
//!    share would reach 2,000/s. Beside it, what HTTP adds: the same closed loop posting to a
//!    server on the vault's HTTP stack that reads each body and answers without the vault.
//!
//! `cargo bench -p custodia-server --bench ingest` (set `INGEST_BENCH_CAPTURES` to change N; the
//! `--quick` argument uses a small N for CI smoke runs). Leave a minute between runs: each run
//! deletes its files at the end, and on ext4 without a journal, allocating inodes among ones freed
//! in the last ~30 s is slow enough to halve the next run's figures (docs/performance.md).
//!
//! `cargo bench -p custodia-server --bench ingest -- --page-cache-growth keep|release [GB]` runs
//! instead the experiment behind `BlobStore::release_cached`: it writes `GB` (default 6) gigabytes
//! of 251 KB blobs through the blob store, one sync per 64, and either keeps their pages cached or
//! releases them after each sync, printing the rate and system time per blob for every GB. Run
//! each mode in its own process: the first mode's pages stay cached until its folder is deleted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use custodia_pdq::Pipeline;
use custodia_pdq::crops::STANDARD_CROP_NAMES;
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::{CandidateRecord, ImageRole, PdqRecord};
use custodia_seal::test_capture::TestCapture;
use custodia_seal::{
    Decapsulator as _, DeviceSigningKey, DeviceVerifyingKey, EpochPublicKey, EpochSecretKey, SealedCapture,
    VaultVerifyingKey,
};
use custodia_vault::clock::{Clock, SystemClock};
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const SITE: &str = "anzalduas";
const DEVICES: usize = 8;
/// The throughput goal, captures per second.
const GOAL_RATE: f64 = 2000.0;
/// Candidate readings beside the best one, as an ALPR engine reports them (the demo's engines
/// report one to six; OpenALPR's default is up to ten).
const CANDIDATES: usize = 3;
/// Lanes offering the goal's rate in the sustained phase, each uploading one capture at a time.
const LANES: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--page-cache-growth") {
        let release = match args.get(at + 1).map(String::as_str) {
            Some("keep") => false,
            Some("release") => true,
            other => panic!("--page-cache-growth takes keep or release, not {other:?}"),
        };
        let gigabytes = args.get(at + 2).map_or(6, |gb| gb.parse().expect("a whole number of GB"));
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        return runtime.block_on(page_cache_growth(release, gigabytes));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let captures: usize = std::env::var("INGEST_BENCH_CAPTURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 300 } else { 4000 });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(captures, quick));
}

async fn run(n: usize, quick: bool) {
    // The closed loop's connections (`INGEST_BENCH_CONNECTIONS` overrides): as many as intake works
    // on at once. Fewer leave part of intake idle, and the figure measures the client's
    // concurrency as much as the vault: at 32 the loop reached 74–79 % of the rate the CPU would
    // allow, at 64 80–85 %, at 128 85–89 % (docs/performance.md).
    let connections: usize = std::env::var("INGEST_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(custodia_server::IntakeLimits::default().in_flight);
    let root = tempfile::Builder::new().prefix("custodia-ingest-bench").tempdir_in(std::env::temp_dir()).unwrap();
    let now = SystemClock.now_ms();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(&root.path().join("vault"), &config, MasterKey::KeyFile, &mut rng).unwrap();
    let vault =
        Vault::open(&root.path().join("vault"), Arc::new(SystemClock), Box::new(rand_core::OsRng), None).unwrap();
    vault.ensure_epochs(now - DAY_MS, now + DAY_MS).unwrap();
    let devices: Vec<_> = (0..DEVICES)
        .map(|i| {
            let key = DeviceSigningKey::generate(&mut rng);
            let row = vault.enroll_device(SITE, &format!("lane-{i}"), &key.verifying_key()).unwrap();
            (row.id, key, format!("lane-{i}"))
        })
        .collect();

    let sustained_secs = if quick { 0.25 } else { 2.0 };
    let sustained_count = (GOAL_RATE * sustained_secs) as u64;
    eprintln!("sealing {n} + {} + {sustained_count} captures of ~250 KB…", n / 2);
    let set = SignedEpochSet::from_json(&vault.signed_epoch_set().unwrap())
        .unwrap()
        .verify(&VaultVerifyingKey::from_bytes(&vault.epoch_signing_public_key().unwrap()).unwrap())
        .unwrap();
    let mut images = [vec![0u8; 20_000], vec![0u8; 200_000], vec![0u8; 30_000]];
    let mut seal_one = |sequence: u64| -> Bytes {
        let (device_id, key, lane) = &devices[sequence as usize % DEVICES];
        for image in images.iter_mut() {
            rng.fill_bytes(image);
        }
        let mut capture = TestCapture::new(*device_id, SITE, lane, now - 60_000, sequence)
            .plate(&format!("BENCH{:04}", sequence % 10_000), 0.9)
            .image(ImageRole::PlateCrop, &images[0])
            .image(ImageRole::Overview, &images[1])
            .image(ImageRole::Face, &images[2]);
        // What a lane's metadata carries beyond the images (see the module doc, step 1).
        let read = capture.read.as_mut().expect("a plate read");
        read.region = Some("us-tx".into());
        for k in 0..CANDIDATES {
            let plate = format!("BENCH{:04}C{k}", sequence % 10_000);
            read.candidates.push(CandidateRecord { plate, confidence: Some(0.5) });
        }
        for image in capture.images.iter_mut() {
            for variant in std::iter::once("full").chain(STANDARD_CROP_NAMES) {
                let mut hash = [0u8; 32];
                rng.fill_bytes(&mut hash);
                let pipeline = Pipeline::FastV1.name().to_string();
                let hash = hash.iter().map(|b| format!("{b:02x}")).collect();
                image.pdq.push(PdqRecord { pipeline, variant: variant.into(), hash, quality: 80 });
            }
        }
        Bytes::from(capture.seal(&set, key, &mut ChaCha20Rng::seed_from_u64(sequence)))
    };
    let throughput_set: Vec<Bytes> = (0..n as u64).map(&mut seal_one).collect();
    let latency_set: Vec<Bytes> = (n as u64..(n + n / 2) as u64).map(&mut seal_one).collect();
    let sustained_start = (n + n / 2) as u64;
    let sustained_set: Vec<Bytes> = (sustained_start..sustained_start + sustained_count).map(&mut seal_one).collect();
    let bytes_per_capture = throughput_set.iter().map(|b| b.len()).sum::<usize>() as f64 / n as f64;

    // The floor: the CPU the format and the transport fix for every capture, measured on this
    // run's host (step 7 in the module doc).
    let device_keys: Vec<_> = devices.iter().map(|(_, key, _)| key.verifying_key()).collect();
    let checks_floor = checks_floor(&throughput_set, &device_keys, &mut rng);
    let loopback_floor = loopback_floor(throughput_set.clone(), connections).await;
    let http_floor = http_floor(throughput_set.clone(), connections).await;

    // The disk's ceiling for the same bytes, first measurement (see below). Its CPU per file is
    // the storage part of the floor.
    let files_cpu_before = process_cpu_seconds();
    let ceiling_before = file_ceiling(&root.path().join("ceiling-before"), n, bytes_per_capture as usize);
    let files_floor = cpu_since(files_cpu_before) / n as f64;
    settle_disk(root.path());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let url = format!("{server}/v1/captures");
    tokio::spawn(custodia_server::run(listener, vault.clone(), std::future::pending()));
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(connections).build().unwrap();

    // Lanes keep their connections open, so the loop's are opened before the clock starts (one
    // `/healthz` each, all at once): a short run then measures intake, not 128 handshakes and
    // first buffers (the 300-capture CI run reached 0.65 of its CPU-bound rate without this).
    open_connections(&client, &format!("{server}/healthz"), connections).await;

    // Throughput, closed loop.
    let cpu_before = process_cpu_seconds();
    let machine_before = machine_cpu_seconds();
    let committer_before = vault.committer_stats();
    let started = Instant::now();
    closed_loop(&client, &url, throughput_set, connections).await;
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingest_rate = n as f64 / ingest_secs;
    let cpu_after = process_cpu_seconds();
    let machine_after = machine_cpu_seconds();
    let committer = vault.committer_stats().since(&committer_before);
    let (user_per_capture, system_per_capture) =
        ((cpu_after.0 - cpu_before.0) / n as f64, (cpu_after.1 - cpu_before.1) / n as f64);
    let cpu_per_capture = user_per_capture + system_per_capture;
    // What the host's speed in this run would allow: dividing by it compares settings across runs
    // on a VM whose speed swings by ±20 % between them (docs/performance.md).
    let cpu_bound_rate = available_cores() as f64 / cpu_per_capture;
    assert_eq!(vault.record_count().unwrap(), n as u64);

    // Let the disk finish writing back before the next phase is timed.
    settle_disk(root.path());

    // Latency at a fixed offered rate.
    let target_rate = 500.0;
    let duration = if quick { 1.0 } else { 4.0 };
    let latency = offered_load(&client, &url, latency_set, target_rate, duration, usize::MAX).await;

    // Let the disk finish writing back before the next phase is timed.
    settle_disk(root.path());

    // Sustained: the goal's rate offered by a fleet of lanes (5 in the module doc), so the group
    // commit sizes its batches to the load rather than to the closed loop's pool.
    // Its own client, so its lanes' connections stay open between their uploads.
    let fleet = reqwest::Client::builder().no_proxy().build().unwrap();
    let sustained = offered_load(&fleet, &url, sustained_set, GOAL_RATE, sustained_secs, LANES).await;

    // Let the disk finish writing back before the next phase is timed.
    settle_disk(root.path());

    // The disk's ceiling for the same bytes, in batched syncs, again: this disk's speed drifts
    // over a run, so the ratio is taken against the mean of the ceilings before and after.
    let ceiling_after = file_ceiling(&root.path().join("ceiling-after"), n, bytes_per_capture as usize);
    let ceiling_rate = (ceiling_before + ceiling_after) / 2.0;

    // The raw sequential ceiling: the same bytes appended to one file, fdatasync per 64.
    let raw_path = root.path().join("raw.bin");
    let payload = vec![0x5Au8; bytes_per_capture as usize];
    let started = Instant::now();
    {
        use std::io::Write;
        let mut raw = std::fs::File::create(&raw_path).unwrap();
        for i in 0..n {
            raw.write_all(&payload).unwrap();
            if i % 64 == 63 || i + 1 == n {
                raw.sync_data().unwrap();
                drop_cached_pages(&raw);
            }
        }
    }
    let raw_rate = n as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(&raw_path).unwrap();

    let mb = bytes_per_capture * n as f64 / 1e6;
    println!(
        "ingest-bench: machine {} cores; {n} captures of {:.0} KB, {connections} connections, {DEVICES} devices",
        available_cores(),
        bytes_per_capture / 1e3
    );
    println!(
        "ingest-bench: throughput          {ingest_rate:.0} captures/s ({:.0} MB/s), durable acknowledgement (goal >= 2000/s)",
        mb / ingest_secs
    );
    println!(
        "ingest-bench: disk ceiling        {ceiling_rate:.0} captures/s ({ceiling_before:.0} before, {ceiling_after:.0} after), same bytes as files, one syncfs per 64, then pages dropped"
    );
    println!(
        "ingest-bench: raw disk ceiling    {raw_rate:.0} captures/s ({:.0} MB/s), same bytes appended to one file, fdatasync per 64, then pages dropped",
        raw_rate * bytes_per_capture / 1e6
    );
    println!(
        "ingest-bench: cpu per capture     {:.0} µs (user {:.0} + system {:.0}; server and client), so {:.0} captures/s if CPU-bound on {} cores; the loop reached {:.2} of that",
        cpu_per_capture * 1e6,
        user_per_capture * 1e6,
        system_per_capture * 1e6,
        cpu_bound_rate,
        available_cores(),
        ingest_rate / cpu_bound_rate
    );
    // Where a batch's time goes (see `CommitterStats`): the committer is always busy under load,
    // so this says what one batch cost, not that the committer was the limit.
    let per_batch_ms = |total: Duration| total.as_secs_f64() * 1e3 / committer.batches.max(1) as f64;
    println!(
        "ingest-bench: committer           {} batches of {:.1} captures; per batch syncfs {:.1} ms, log and index {:.1} ms; busy {:.2} of the phase",
        committer.batches,
        committer.mean_batch(),
        per_batch_ms(committer.syncing),
        per_batch_ms(committer.recording),
        (committer.syncing + committer.recording).as_secs_f64() / ingest_secs
    );
    // The rest of the cores over the same phase: why the loop's share is below 1.
    let core_seconds = ingest_secs * available_cores() as f64;
    // The same CPU time as the line above (so "this process" is the loop's share again, here
    // beside where the rest went).
    let process_seconds = cpu_per_capture * n as f64;
    let of_cores = |seconds: f64| seconds / core_seconds;
    println!(
        "ingest-bench: the cores meanwhile this process {:.2}, other processes and kernel threads {:.2}, steal {:.2}, idle {:.2} (waiting on I/O {:.2})",
        of_cores(process_seconds),
        of_cores((machine_after.busy - machine_before.busy - process_seconds).max(0.0)),
        of_cores(machine_after.steal - machine_before.steal),
        of_cores(machine_after.idle - machine_before.idle + machine_after.iowait - machine_before.iowait),
        of_cores(machine_after.iowait - machine_before.iowait)
    );
    // Above the floor is the vault's own work (HTTP, the index, the committer, tasks, buffers);
    // the floor moves only with the format, the storage design or the host.
    let floor = checks_floor + files_floor + loopback_floor;
    let share = ingest_rate / cpu_bound_rate;
    println!(
        "ingest-bench: fixed floor         {:.0} µs per capture, {:.2} of the CPU per capture: checks {:.0} (SHA-256, Ed25519, P-256), files {:.0} (the ceiling's writes), loopback {:.0} (the bytes over TCP, no HTTP); 2000/s at this run's share needs <= {:.0} µs",
        floor * 1e6,
        floor / cpu_per_capture,
        checks_floor * 1e6,
        files_floor * 1e6,
        loopback_floor * 1e6,
        available_cores() as f64 * share / GOAL_RATE * 1e6
    );
    println!(
        "ingest-bench: http over loopback  {:.0} µs per capture with no vault behind it (hyper, reqwest), {:.0} µs more than the bytes over TCP",
        http_floor * 1e6,
        (http_floor - loopback_floor) * 1e6
    );
    println!(
        "ingest-bench: ratio to file ceiling {:.2}, to raw ceiling {:.2} (goal >= 0.60)",
        ingest_rate / ceiling_rate,
        ingest_rate / raw_rate
    );
    println!(
        "ingest-bench: latency at {target_rate:.0}/s     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} captures (goal p99 <= 50 ms)",
        ms(latency.percentile(0.50)),
        ms(latency.percentile(0.99)),
        ms(latency.max()),
        latency.latencies.len()
    );
    println!(
        "ingest-bench: sustained {GOAL_RATE:.0}/s    sent {:.0}/s, acknowledged {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} captures, open loop, cpu {:.0} µs per capture, {} busy answers retried",
        sustained.sent_rate,
        sustained.acknowledged_rate,
        ms(sustained.percentile(0.50)),
        ms(sustained.percentile(0.99)),
        ms(sustained.max()),
        sustained.latencies.len(),
        sustained.cpu_per_capture.as_secs_f64() * 1e6,
        sustained.busy_answers
    );
    // Kept up: acknowledged within 1 % of the goal (the measure's own spread is the difference
    // of the first and last captures' latencies over the span) with no backlog building behind a
    // p99 over 50 ms.
    let kept_up =
        sustained.acknowledged_rate >= 0.99 * GOAL_RATE && sustained.percentile(0.99) <= Duration::from_millis(50);
    let met = |ok: bool| if ok { "met" } else { "not met" };
    let throughput_verdict = if ceiling_rate < GOAL_RATE {
        // A blob store of one file per capture cannot acknowledge 2,000 durable captures a
        // second on a disk that cannot write them as files that fast: the goal is for this
        // machine on a day its disk can.
        format!(
            "out of reach on this disk today (same bytes as files: {ceiling_rate:.0}/s; the CPU would allow {cpu_bound_rate:.0}/s)"
        )
    } else {
        met(ingest_rate >= GOAL_RATE).to_string()
    };
    println!(
        "ingest-bench: verdict            2000/s {throughput_verdict} with {connections} connections, {} when offered; ratio {}; p99 {}",
        if kept_up { "kept up" } else { "not kept up" },
        met(ingest_rate / ceiling_rate >= 0.60),
        met(latency.percentile(0.99) <= Duration::from_millis(50))
    );
}

/// What an open-loop load measured.
struct OfferedLoad {
    /// Each capture's time from its arrival (when it was due to be sent) to its acknowledgement,
    /// sorted.
    latencies: Vec<Duration>,
    /// Sends per second from the first to the last: the rate asked for, unless the sending
    /// client itself fell behind its schedule.
    sent_rate: f64,
    /// Acknowledgements per second from the first to the last: the sent rate when the vault
    /// keeps up, less when a backlog grows.
    acknowledged_rate: f64,
    /// Process CPU time (user + system, server and client) per capture over the load.
    cpu_per_capture: Duration,
    /// Answers of "busy, retry later" (or refused connections) before captures were taken.
    busy_answers: usize,
}

impl OfferedLoad {
    fn percentile(&self, p: f64) -> Duration {
        self.latencies[((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)]
    }

    fn max(&self) -> Duration {
        *self.latencies.last().expect("at least one capture")
    }
}

/// Offers `bodies` at `rate` per second for `seconds` from `lanes` senders and waits for every
/// acknowledgement. Captures arrive on a fixed schedule whether or not earlier ones were answered
/// (an open loop), capture `i` at lane `i % lanes`; each lane uploads its own in order, one at a
/// time over a kept-alive connection, as a lane agent uploads its outbox. So a capture's latency
/// is from its arrival to its acknowledgement, including any wait behind its lane's earlier ones,
/// and the server sees at most `lanes` uploads at once. With `lanes` at least the number of
/// captures, every capture is sent on its own at its time.
async fn offered_load(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<Bytes>,
    rate: f64,
    seconds: f64,
    lanes: usize,
) -> OfferedLoad {
    let count = ((rate * seconds) as usize).min(bodies.len());
    assert!(count >= 2, "an offered load needs at least two captures");
    let lanes = lanes.clamp(1, count);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut queues: Vec<Vec<(usize, Bytes)>> = vec![Vec::new(); lanes];
    for (i, body) in bodies.into_iter().take(count).enumerate() {
        queues[i % lanes].push((i, body));
    }
    let cpu_before = process_cpu_seconds();
    let start = tokio::time::Instant::now();
    let mut pending = Vec::with_capacity(lanes);
    for queue in queues {
        let (client, url) = (client.clone(), url.to_string());
        pending.push(tokio::spawn(async move {
            let mut done = Vec::with_capacity(queue.len());
            for (i, body) in queue {
                let arrival = start + interval * i as u32;
                tokio::time::sleep_until(arrival).await;
                let sent = Instant::now();
                let busy = upload(&client, &url, body).await;
                done.push(Timed { arrival: arrival.into_std(), sent, acknowledged: Instant::now(), busy });
            }
            done
        }));
    }
    let mut times = Vec::with_capacity(count);
    for lane in pending {
        times.extend(lane.await.unwrap());
    }
    let cpu_after = process_cpu_seconds();
    let cpu_per_capture =
        Duration::from_secs_f64((cpu_after.0 + cpu_after.1 - cpu_before.0 - cpu_before.1) / count as f64);
    // Events per second from the first to the last of `instants`.
    let per_second = |instants: Vec<Instant>| {
        let first = *instants.iter().min().expect("count >= 2");
        let last = *instants.iter().max().expect("count >= 2");
        (count - 1) as f64 / (last - first).as_secs_f64()
    };
    let busy_answers = times.iter().map(|t| t.busy).sum();
    let sent_rate = per_second(times.iter().map(|t| t.sent).collect());
    let acknowledged_rate = per_second(times.iter().map(|t| t.acknowledged).collect());
    let mut latencies: Vec<Duration> = times.iter().map(|t| t.acknowledged - t.arrival).collect();
    latencies.sort();
    OfferedLoad { latencies, sent_rate, acknowledged_rate, cpu_per_capture, busy_answers }
}

/// One capture of an offered load.
struct Timed {
    /// When it was due to be sent.
    arrival: Instant,
    /// When its lane began to upload it.
    sent: Instant,
    acknowledged: Instant,
    /// Busy answers retried before it was taken.
    busy: usize,
}

/// Posts one capture until it is taken: a busy intake, or a connection it closed while refusing,
/// is retried after the answer's Retry-After, as a lane agent retries. Returns how many times.
async fn upload(client: &reqwest::Client, url: &str, body: Bytes) -> usize {
    let mut busy = 0;
    loop {
        let response = client
            .post(url)
            .header("content-type", "application/vnd.custodia.sealed-capture")
            .body(body.clone())
            .send()
            .await;
        let retry_after = match response {
            Ok(response) if response.status().as_u16() == 201 => return busy,
            Ok(response) if response.status().as_u16() == 503 => response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs),
            Ok(response) => panic!("HTTP {}: {}", response.status(), response.text().await.unwrap()),
            Err(error) if busy < 100 => {
                eprintln!("retrying after a failed send: {error}");
                Duration::from_secs(1)
            }
            Err(error) => panic!("{error}"),
        };
        busy += 1;
        tokio::time::sleep(retry_after).await;
    }
}

/// Process CPU seconds (user + system) per capture for the checks the format fixes, on one
/// thread: parsing, SHA-256 over the body with the Ed25519 check of its signature, and the P-256
/// Diffie-Hellman of the metadata group's decapsulation. The bench holds no epoch private key
/// (the vault's keystore does), so the Diffie-Hellman runs with a key of its own: any P-256
/// scalar costs the same.
fn checks_floor(bodies: &[Bytes], device_keys: &[DeviceVerifyingKey], rng: &mut ChaCha20Rng) -> f64 {
    let epoch_key = EpochSecretKey::generate(rng);
    let before = process_cpu_seconds();
    for body in bodies {
        let capture = SealedCapture::parse(body).unwrap();
        let device_key = &device_keys[capture.header().sequence as usize % DEVICES];
        std::hint::black_box(capture.verify_signature_with_digest(device_key).unwrap());
        let (group, _) = capture.metadata_part().unwrap();
        let peer = EpochPublicKey::from_sec1_bytes(capture.groups()[group].enc()).unwrap();
        std::hint::black_box(epoch_key.diffie_hellman(&peer).unwrap());
    }
    cpu_since(before) / bodies.len() as f64
}

/// Process CPU seconds per capture for carrying `bodies` over loopback TCP on `connections`
/// kept-open connections without HTTP: each body behind its length, read by the server into a
/// buffer of its own and answered with one byte, as an upload is answered once stored.
async fn loopback_floor(bodies: Vec<Bytes>, connections: usize) -> f64 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                while let Ok(len) = stream.read_u32().await {
                    let mut body = Vec::with_capacity(len as usize);
                    while body.len() < len as usize {
                        assert!(stream.read_buf(&mut body).await.unwrap() > 0, "the client closed mid-body");
                    }
                    std::hint::black_box(&body);
                    stream.write_u8(1).await.unwrap();
                }
            });
        }
    });
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        streams.push(stream);
    }
    let count = bodies.len();
    let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let before = process_cpu_seconds();
    let senders: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let queue = queue.clone();
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some(body) = next else { break };
                    stream.write_u32(body.len() as u32).await.unwrap();
                    stream.write_all(&body).await.unwrap();
                    assert_eq!(stream.read_u8().await.unwrap(), 1);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let per_capture = cpu_since(before) / count as f64;
    server.abort();
    per_capture
}

/// Process CPU seconds per capture for posting `bodies` over loopback HTTP, as the throughput
/// phase does (the same client, connections and closed loop), to a server on the vault's HTTP
/// stack that reads each body as `custodia serve` does and answers 201 without checking or
/// storing anything: what HTTP adds to the bytes over TCP.
async fn http_floor(bodies: Vec<Bytes>, connections: usize) -> f64 {
    use http_body_util::BodyExt as _;
    let read_and_answer = |request: axum::extract::Request| async move {
        let body = http_body_util::Limited::new(request.into_body(), custodia_seal::MAX_CAPTURE_BYTES);
        std::hint::black_box(body.collect().await.unwrap().to_bytes());
        (axum::http::StatusCode::CREATED, "{\"record_id\":\"00000000000000000000000000000000-1\"}")
    };
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/v1/captures", axum::routing::post(read_and_answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(connections).build().unwrap();
    open_connections(&client, &format!("{base}/healthz"), connections).await;
    let count = bodies.len();
    let before = process_cpu_seconds();
    closed_loop(&client, &format!("{base}/v1/captures"), bodies, connections).await;
    let per_capture = cpu_since(before) / count as f64;
    server.abort();
    per_capture
}

/// Opens `connections` kept-alive connections of `client` with one GET of `url` each, all at
/// once.
async fn open_connections(client: &reqwest::Client, url: &str, connections: usize) {
    let opening: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let response = client.get(&url).send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
            })
        })
        .collect();
    for opened in opening {
        opened.await.unwrap();
    }
}

/// Posts every one of `bodies` to `url` as a sealed capture over `connections` concurrent
/// uploads, each sending its next capture when the last one is answered (a closed loop), and
/// requires each answer to be 201 Created.
async fn closed_loop(client: &reqwest::Client, url: &str, bodies: Vec<Bytes>, connections: usize) {
    let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (queue, client, url) = (queue.clone(), client.clone(), url.to_owned());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().next();
                    let Some(body) = next else { break };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/vnd.custodia.sealed-capture")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Captures per second for writing `n` files of `size` bytes into `dir` as the blob store does
/// (a new file, then a rename), one `syncfs` per 64 and then the batch's pages dropped from the
/// page cache: the disk's ceiling for the vault's writes without HTTP, verification, decryption
/// or SQLite.
fn file_ceiling(dir: &std::path::Path, n: usize, size: usize) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let payload = vec![0x5Au8; size];
    let started = Instant::now();
    let dir_handle = std::fs::File::open(dir).unwrap();
    let mut batch = Vec::with_capacity(64);
    for i in 0..n {
        let sub = dir.join(format!("{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        let tmp = sub.join(format!("{i}.tmp"));
        std::fs::write(&tmp, &payload).unwrap();
        let blob = sub.join(format!("{i}.cap"));
        std::fs::rename(&tmp, &blob).unwrap();
        batch.push(blob);
        if i % 64 == 63 || i + 1 == n {
            rustix_syncfs(&dir_handle);
            for blob in batch.drain(..) {
                drop_cached_pages(&std::fs::File::open(blob).unwrap());
            }
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// What the vault does to a batch's blobs once they are durable (`BlobStore::release_cached`):
/// without it, writing gigabytes into fresh page-cache pages costs this VM a host page fault per
/// page once its first few GB are used, and the ceilings would measure that instead of the disk.
fn drop_cached_pages(file: &std::fs::File) {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

/// Writes `gigabytes` GB of 251 KB blobs through a local blob store, one sync per 64, releasing
/// each synced batch's pages or keeping them, and prints each GB's rate and system time per blob.
async fn page_cache_growth(release: bool, gigabytes: usize) {
    const BLOB_BYTES: usize = 251_000;
    const PER_GB: usize = 4_000;
    let root = tempfile::Builder::new().prefix("custodia-page-cache").tempdir_in(std::env::temp_dir()).unwrap();
    let blobs = custodia_store::blobs::BlobStore::local(root.path()).unwrap();
    let mut payload = vec![0u8; BLOB_BYTES];
    ChaCha20Rng::seed_from_u64(7).fill_bytes(&mut payload);
    let payload = Bytes::from(payload);
    let mode = if release { "release" } else { "keep" };
    let mut batch = Vec::with_capacity(64);
    for gb in 0..gigabytes {
        let (cpu_before, started) = (process_cpu_seconds(), Instant::now());
        for i in gb * PER_GB..(gb + 1) * PER_GB {
            let key = format!("captures/{:04}/{i}.cap", i / 1000);
            blobs.put_new(&key, payload.clone()).await.unwrap();
            batch.push(key);
            if batch.len() == 64 {
                blobs.sync().await.unwrap();
                let keys = std::mem::take(&mut batch);
                if release {
                    blobs.release_cached(keys).await;
                }
            }
        }
        let rate = PER_GB as f64 / started.elapsed().as_secs_f64();
        let system_per_blob = (process_cpu_seconds().1 - cpu_before.1) / PER_GB as f64;
        println!(
            "page-cache-growth: {mode:7} GB {}: {rate:5.0} blobs/s, system {:4.0} µs per blob",
            gb + 1,
            system_per_blob * 1e6
        );
    }
}

/// User and system CPU time of this process so far (all threads: the vault, its server and the
/// load-generating client), from `/proc/self/stat`. It tells what the run would reach if the disk
/// kept up, on a day this disk does not. System time includes this VM's page faults on memory the
/// host reclaimed, which vary from run to run; user time is the steadier figure.
fn process_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
    let seconds = |field: &str| field.parse::<u64>().unwrap() as f64 / ticks_per_second;
    (seconds(fields[11]), seconds(fields[12]))
}

/// Process CPU seconds (user + system) since `before`, a [`process_cpu_seconds`] reading.
fn cpu_since(before: (f64, f64)) -> f64 {
    let now = process_cpu_seconds();
    (now.0 - before.0) + (now.1 - before.1)
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`, in seconds summed
/// over all cores: what this process did not use of the cores went to other processes and kernel
/// threads (the flusher writing blobs back), to the host (steal), or nowhere (idle).
#[derive(Clone, Copy)]
struct MachineCpu {
    busy: f64,
    idle: f64,
    iowait: f64,
    steal: f64,
}

fn machine_cpu_seconds() -> MachineCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let first = stat.lines().next().unwrap();
    // cpu user nice system idle iowait irq softirq steal (guest time is inside user).
    let ticks: Vec<f64> = first.split_whitespace().skip(1).take(8).map(|t| t.parse::<u64>().unwrap() as f64).collect();
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    MachineCpu {
        busy: (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / per_second,
        idle: ticks[3] / per_second,
        iowait: ticks[4] / per_second,
        steal: ticks[7] / per_second,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn settle_disk(dir: &std::path::Path) {
    rustix_syncfs(&std::fs::File::open(dir).unwrap());
    std::thread::sleep(Duration::from_secs(2));
}

/// The same filesystem-wide flush the vault's blob store makes after each batch.
fn rustix_syncfs(dir: &std::fs::File) {
    rustix::fs::syncfs(dir).unwrap();
}
