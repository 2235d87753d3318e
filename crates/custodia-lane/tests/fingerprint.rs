//! The lane hashes every stripped image before sealing and the hashes travel in the sealed
//! metadata part: `pdq-fast-v1` of the whole image and of each standard crop, checked here
//! against `custodia-pdq` (bit-exact with Meta's reference) run on the bytes the vault opens.

use custodia_lane::assemble::{InputFile, PairingContext, Sealer, plan_group, seal_plan};
use custodia_pdq::{Pipeline, crops};
use custodia_seal::epochs::{EpochAnnouncement, EpochSet};
use custodia_seal::metadata::CaptureMetadata;
use custodia_seal::{DeviceId, DeviceSigningKey, EpochSecretKey, LaneName, RetentionClass, SealedCapture, SiteName};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn file(name: &str, bytes: &[u8]) -> InputFile {
    InputFile::new(name, bytes, 1_780_000_000_000)
}

#[test]
fn sealed_metadata_carries_full_and_crop_hashes_of_each_stripped_image() {
    let (overview, plate, face) = custodia_synth::sample_capture_bytes(7);
    let json = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/alpr/openalpr_v2_alprd.json")).unwrap();
    let files =
        [file("s1.jpg", &overview), file("s1.plate.jpg", &plate), file("s1.face0.jpg", &face), file("s1.json", &json)];
    let plan = plan_group(&files, PairingContext { expects_engine_output: true }).remove(0);

    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let site = SiteName::new("anzalduas").unwrap();
    let secrets: Vec<(RetentionClass, EpochSecretKey)> =
        RetentionClass::ALL.iter().map(|&class| (class, EpochSecretKey::generate(&mut rng))).collect();
    let epochs = EpochSet {
        issued_at_ms: 0,
        epochs: secrets
            .iter()
            .map(|(c, k)| EpochAnnouncement::new(site.clone(), *c, 0, i64::MAX, k.public_key()))
            .collect(),
    };
    let device = DeviceSigningKey::generate(&mut rng);
    let lane = LaneName::new("lane-1").unwrap();
    let sealer = Sealer { device_id: DeviceId([4; 16]), site: &site, lane: &lane, key: &device };
    let sealed = seal_plan(&plan, 1, &sealer, &epochs, &mut rng).unwrap();

    let capture = SealedCapture::parse(&sealed).unwrap();
    let key_for = |class| &secrets.iter().find(|(c, _)| *c == class).unwrap().1;
    let (mg, mp) = capture.metadata_part().unwrap();
    let data_key = capture.open_data_key(mg, key_for(capture.groups()[mg].class())).unwrap();
    let metadata = CaptureMetadata::from_slice(&capture.open_part(mg, mp, &data_key).unwrap()).unwrap();
    assert_eq!(metadata.images.len(), 3);
    let originals = [&overview, &plate, &face];
    for record in &metadata.images {
        let group = &capture.groups()[record.group as usize];
        let key = capture.open_data_key(record.group as usize, key_for(group.class())).unwrap();
        let bytes = capture.open_part(record.group as usize, record.part as usize, &key).unwrap();

        let variants: Vec<&str> = record.pdq.iter().map(|p| p.variant.as_str()).collect();
        let mut expected_variants = vec!["full"];
        expected_variants.extend(crops::STANDARD_CROP_NAMES);
        assert_eq!(variants, expected_variants, "{:?}", record.role);
        assert!(record.pdq.iter().all(|p| p.pipeline == "pdq-fast-v1"));

        let full = custodia_pdq::hash_bytes(&bytes, Pipeline::FastV1).unwrap();
        assert_eq!(record.pdq[0].hash, full.hash.to_string());
        assert_eq!(record.pdq[0].quality, full.quality);
        // Stripping metadata does not touch pixels: the camera's original hashes the same, so
        // an unstripped leaked copy matches exactly.
        assert!(
            originals.iter().any(|o| custodia_pdq::hash_bytes(o, Pipeline::FastV1).unwrap().hash == full.hash),
            "{:?}: no input image hashes like the sealed one",
            record.role
        );
        // The crops come from one decode and one luma plane ...
        let planned = custodia_pdq::hash_bytes_with_crops(&bytes, Pipeline::FastV1).unwrap();
        for ((name, r), stored) in planned[1..].iter().zip(&record.pdq[1..]) {
            assert_eq!(
                (stored.variant.as_str(), stored.hash.clone(), stored.quality),
                (*name, r.hash.to_string(), r.quality)
            );
        }
        // ... and are exactly what cropping the pixels and hashing gives.
        let img = custodia_pdq::decode_image(&bytes).unwrap();
        for ((name, crop), stored) in crops::standard_crops(&img).into_iter().zip(&record.pdq[1..]) {
            let r = custodia_pdq::hash_image_with(&crop, Pipeline::FastV1);
            let stored_hash: custodia_pdq::PdqHash = stored.hash.parse().unwrap();
            let distance = stored_hash.hamming(&r.hash);
            assert_eq!(distance, 0, "{name}: the stored crop hash must be what a pixel crop gives");
            assert!(r.hash.hamming(&full.hash) > 0, "a crop that hashes like the whole adds nothing");
        }
    }
}
