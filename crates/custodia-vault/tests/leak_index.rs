//! Perceptual hashes the lane computed are indexed at ingest, survive a reopen, and the
//! in-memory multi-index answers exactly what a brute-force scan of the planned hashes does.
//! Captures are synthetic traffic run through the real lane code (plan, strip, hash, seal).

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use custodia_lane::assemble::{InputFile, PairingContext, Sealer, plan_group, seal_plan};
use custodia_pdq::PdqHash;
use custodia_pdq::index::BruteForce;
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::{DeviceSigningKey, LaneName, SiteName, VaultVerifyingKey};
use custodia_synth::{LaneSpec, TrafficConfig, Vendor};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const NOW: i64 = 1_780_000_000_000;
const SITE: &str = "anzalduas";

/// (record id text, group, part, role, variant, hash) of every hash the lane planned.
type Planned = Vec<(String, u8, u8, String, String, PdqHash)>;

/// A vault fed `captures` captures of synthetic traffic. With `first_query_after: Some(n)`,
/// the leak index is first used (and so loaded) after the n-th capture, the rest arriving
/// while it is loaded.
async fn vault_with_traffic(
    dir: &std::path::Path,
    captures: u32,
    first_query_after: Option<usize>,
) -> (Vault, Planned) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(dir, &config, MasterKey::KeyFile, &mut rng).unwrap();
    let vault =
        Vault::open(dir, Arc::new(ManualClock::new(NOW)), Box::new(ChaCha20Rng::seed_from_u64(12)), None).unwrap();
    vault.ensure_epochs(NOW - 2 * DAY_MS, NOW + 2 * DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-1", &device_key.verifying_key()).unwrap();
    let key = VaultVerifyingKey::from_bytes(&vault.epoch_signing_public_key().unwrap()).unwrap();
    let epochs = SignedEpochSet::from_json(&vault.signed_epoch_set().unwrap()).unwrap().verify(&key).unwrap();
    let (site, lane) = (SiteName::new(SITE).unwrap(), LaneName::new("lane-1").unwrap());
    let sealer = Sealer { device_id: device.id, site: &site, lane: &lane, key: &device_key };
    let traffic = TrafficConfig {
        seed: 5,
        site: SITE.into(),
        lanes: vec![LaneSpec { lane: "lane-1".into(), camera_id: 1, vendor: Vendor::OpenAlprV2 }],
        start_ms: NOW - DAY_MS,
        days: 1,
        captures,
    };
    let mut planned = Vec::new();
    let mut sequence = 0;
    for capture in custodia_synth::generate(&traffic) {
        let files: Vec<InputFile> =
            capture.files.iter().map(|f| InputFile::new(&f.name, &f.bytes, capture.time_ms)).collect();
        for plan in plan_group(&files, PairingContext { expects_engine_output: true }) {
            if plan.images.is_empty() && plan.metadata.read.is_none() {
                continue;
            }
            if first_query_after == Some(sequence as usize) {
                vault.pdq_pipelines().unwrap();
            }
            sequence += 1;
            let sealed = seal_plan(&plan, sequence, &sealer, &epochs, &mut rng).unwrap();
            let receipt = vault.ingest(Bytes::from(sealed)).await.unwrap();
            // Where each image lands is seal_plan's layout, restated independently here.
            let layout = custodia_lane_layout(&plan);
            for (image, (group, part)) in plan.images.iter().zip(layout) {
                for p in &image.pdq {
                    planned.push((
                        receipt.record_id.clone(),
                        group,
                        part,
                        image.role.as_str().to_string(),
                        p.variant.clone(),
                        p.hash.parse().unwrap(),
                    ));
                }
            }
        }
    }
    (vault, planned)
}

#[tokio::test(flavor = "multi_thread")]
async fn hashes_stored_after_the_index_is_loaded_are_found_too() {
    // The index loads on first use; captures committed after that reach it through the
    // committer's refresh, not a reload.
    let dir = tempfile::tempdir().unwrap();
    let (vault, planned) = vault_with_traffic(dir.path(), 12, Some(4)).await;
    assert_eq!(vault.pdq_pipelines().unwrap(), [("pdq-fast-v1".to_string(), planned.len())]);
    let queries: Vec<PdqHash> = planned.iter().map(|p| p.5).collect();
    let hits = vault.leak_match("pdq-fast-v1", &queries, 0).unwrap();
    for (qi, p) in planned.iter().enumerate() {
        assert!(
            hits.iter().any(|h| h.query == qi && h.stored.record.to_string() == p.0),
            "hash {qi} of {} not found",
            p.0
        );
    }
}

/// seal_plan's layout: groups plate, overview, face (those present, plus the metadata's);
/// the metadata part first in its group; images in plan order within their group.
fn custodia_lane_layout(plan: &custodia_lane::assemble::CapturePlan) -> Vec<(u8, u8)> {
    use custodia_seal::metadata::ImageRole::*;
    let class = |r| match r {
        PlateCrop => 0,
        Overview | VehicleCrop => 1,
        Face => 2,
    };
    let has = |c| plan.images.iter().any(|i| class(i.role) == c);
    let meta = if plan.metadata.read.is_some() || plan.metadata.quarantine.is_some() {
        0
    } else if has(1) {
        1
    } else if has(2) {
        2
    } else {
        0
    };
    let classes: Vec<u8> = (0..3).filter(|&c| c == meta || has(c)).collect();
    let mut out = vec![(0, 0); plan.images.len()];
    for (gi, &c) in classes.iter().enumerate() {
        let mut part = u8::from(c == meta);
        for (ii, image) in plan.images.iter().enumerate() {
            if class(image.role) == c {
                out[ii] = (gi as u8, part);
                part += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_indexes_every_planned_hash_and_the_index_equals_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let (vault, planned) = vault_with_traffic(dir.path(), 24, None).await;
    assert!(planned.len() >= 24 * 6, "every capture has at least one image with full + 5 crops");
    assert_eq!(vault.pdq_pipelines().unwrap(), [("pdq-fast-v1".to_string(), planned.len())]);

    // Every planned hash is found at distance 0 on the record, part, role and variant it
    // was planned for.
    let queries: Vec<PdqHash> = planned.iter().map(|p| p.5).collect();
    let hits = vault.leak_match("pdq-fast-v1", &queries, 0).unwrap();
    for (qi, (record, group, part, role, variant, _)) in planned.iter().enumerate() {
        assert!(
            hits.iter().any(|h| h.query == qi
                && h.distance == 0
                && h.stored.record.to_string() == *record
                && (h.stored.entry.group, h.stored.entry.part) == (*group, *part)
                && h.stored.entry.role == *role
                && h.stored.entry.variant == *variant),
            "planned hash {qi} ({record} {role} {variant}) not indexed where it belongs"
        );
    }

    // Index vs brute force over the same stored hashes, at radii up to 31, with queries
    // near stored hashes (flipped bits) and random ones.
    let mut brute = BruteForce::new();
    for (i, p) in planned.iter().enumerate() {
        brute.insert(i as u64, &p.5);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut queries = Vec::new();
    for i in 0..200 {
        let mut h = planned[(rng.next_u32() as usize) % planned.len()].5;
        for _ in 0..(i % 40) {
            h = h.flip_bit((rng.next_u32() % 256) as usize);
        }
        queries.push(h);
    }
    for _ in 0..50 {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        queries.push(PdqHash(b));
    }
    let check = |vault: &Vault| {
        for radius in [0, 8, 20, 31] {
            let hits = vault.leak_match("pdq-fast-v1", &queries, radius).unwrap();
            for (qi, q) in queries.iter().enumerate() {
                let got: BTreeSet<(String, u8, u8, String, u32)> = hits
                    .iter()
                    .filter(|h| h.query == qi)
                    .map(|h| {
                        (
                            h.stored.record.to_string(),
                            h.stored.entry.group,
                            h.stored.entry.part,
                            h.stored.entry.variant.clone(),
                            h.distance,
                        )
                    })
                    .collect();
                let want: BTreeSet<(String, u8, u8, String, u32)> = brute
                    .query(q, radius)
                    .into_iter()
                    .map(|(i, d)| {
                        let p = &planned[i as usize];
                        (p.0.clone(), p.1, p.2, p.4.clone(), d)
                    })
                    .collect();
                assert_eq!(got, want, "query {qi} radius {radius}");
            }
        }
    };
    check(&vault);
    // Persisted with the index and rebuilt from it at open.
    drop(vault);
    let reopened =
        Vault::open(dir.path(), Arc::new(ManualClock::new(NOW)), Box::new(ChaCha20Rng::seed_from_u64(13)), None)
            .unwrap();
    assert_eq!(reopened.pdq_pipelines().unwrap(), [("pdq-fast-v1".to_string(), planned.len())]);
    check(&reopened);
}
