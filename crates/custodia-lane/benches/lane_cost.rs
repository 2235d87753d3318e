//! The lane's cost per capture on one core: pair the files, parse the engine JSON, strip every
//! image's metadata, seal three groups (three HPKE encapsulations, AES-256-GCM over ~250 KB) and
//! sign. Goal: ≤ 2 ms. The inputs are one synthetic OpenALPR capture (overview, plate crop, face
//! and alprd JSON, with camera EXIF in each JPEG).
//!
//! Three figures, because the lane's work grew after the goal was set:
//!
//! - `strip+seal+sign`, the goal's scope (issue #2): strip every image's metadata, then seal
//!   and sign an already-planned capture. Pairing and JSON parsing are not in it (they are in
//!   the whole-capture figure; microseconds).
//! - the whole capture: pairing, parsing, stripping, the perceptual hashing of issue #5
//!   (`pdq-fast-v1` of each image and its five standard crops), sealing and signing;
//! - `pdq of the capture's images`: that hashing alone.
//!
//! `cargo bench -p custodia-lane --bench lane_cost`

use criterion::{Criterion, criterion_group, criterion_main};
use custodia_lane::assemble::{InputFile, PairingContext, Sealer, plan_group, seal_plan};
use custodia_seal::epochs::{EpochAnnouncement, EpochSet};
use custodia_seal::{DeviceId, DeviceSigningKey, EpochSecretKey, LaneName, RetentionClass, SiteName};
use custodia_synth::{LaneSpec, TrafficConfig, Vendor};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn lane_cost(c: &mut Criterion) {
    let traffic = TrafficConfig {
        seed: 3,
        site: "anzalduas".into(),
        lanes: vec![LaneSpec { lane: "lane-1".into(), camera_id: 1, vendor: Vendor::OpenAlprV2 }],
        start_ms: 1_780_000_000_000,
        days: 1,
        captures: 20,
    };
    let capture = custodia_synth::generate(&traffic)
        .find(|c| c.files.len() >= 4)
        .expect("a capture with overview, plate crop, face and JSON");
    let total: usize = capture.files.iter().map(|f| f.bytes.len()).sum();
    let site = SiteName::new("anzalduas").unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let epochs = EpochSet {
        issued_at_ms: 0,
        epochs: RetentionClass::ALL
            .iter()
            .map(|&class| {
                let key = EpochSecretKey::generate(&mut rng).public_key();
                EpochAnnouncement::new(site.clone(), class, 0, i64::MAX, key)
            })
            .collect(),
    };
    let device = DeviceSigningKey::generate(&mut rng);
    let lane = LaneName::new("lane-1").unwrap();
    let sealer = Sealer { device_id: DeviceId([1; 16]), site: &site, lane: &lane, key: &device };
    let context = PairingContext { expects_engine_output: true };

    let mut group = c.benchmark_group("lane");
    let planned = {
        let files: Vec<InputFile> =
            capture.files.iter().map(|f| InputFile::new(&f.name, &f.bytes, capture.time_ms)).collect();
        plan_group(&files, context).remove(0)
    };
    let images: Vec<&[u8]> =
        capture.files.iter().filter(|f| !f.name.ends_with(".json")).map(|f| f.bytes.as_slice()).collect();
    group.bench_function(format!("strip+seal+sign one {} KB capture", total / 1000), |b| {
        let mut sequence = 0;
        b.iter(|| {
            let stripped: usize = images
                .iter()
                .map(|bytes| custodia_lane::strip::strip_metadata(bytes).expect("a camera JPEG").bytes.len())
                .sum();
            sequence += 1;
            (stripped, seal_plan(&planned, sequence, &sealer, &epochs, &mut rng).unwrap())
        })
    });
    group.bench_function(
        format!("whole capture pair+parse+strip+pdq+seal+sign one {} KB capture", total / 1000),
        |b| {
            let mut sequence = 0;
            b.iter(|| {
                let files: Vec<InputFile> =
                    capture.files.iter().map(|f| InputFile::new(&f.name, &f.bytes, capture.time_ms)).collect();
                let plans = plan_group(&files, context);
                assert_eq!(plans.len(), 1);
                sequence += 1;
                seal_plan(&plans[0], sequence, &sealer, &epochs, &mut rng).unwrap()
            })
        },
    );
    group.bench_function("pdq of the capture's images (full + 5 crops each)", |b| {
        b.iter(|| {
            capture
                .files
                .iter()
                .filter(|f| !f.name.ends_with(".json"))
                .map(|f| custodia_lane::fingerprint::image_hashes(&f.bytes).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, lane_cost);
criterion_main!(benches);
