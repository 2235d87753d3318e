//! Turning inbox files into captures: what is paired, what is quarantined and why, and that a
//! sealed plan opens (with the epoch key the lane never holds) to exactly the stripped images and
//! a metadata part that describes them.

use custodia_lane::assemble::{InputFile, PairingContext, Sealer, plan_group, seal_plan};
use custodia_seal::epochs::{EpochAnnouncement, EpochSet};
use custodia_seal::metadata::{CaptureMetadata, ImageRole};
use custodia_seal::{DeviceId, DeviceSigningKey, EpochSecretKey, LaneName, RetentionClass, SealedCapture, SiteName};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const WITH_ENGINE: PairingContext = PairingContext { expects_engine_output: true };

fn file(name: &str, bytes: &[u8]) -> InputFile {
    InputFile::new(name, bytes, 1_780_000_000_000)
}

fn openalpr_json() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/alpr/openalpr_v2_alprd.json")).unwrap()
}

fn sample_images() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    custodia_synth::sample_capture_bytes(5)
}

/// A whole camera group: overview, plate crop, face and the alprd JSON, one stem.
fn complete_group() -> [InputFile; 4] {
    let (overview, plate, face) = sample_images();
    [
        file("s1.jpg", &overview),
        file("s1.plate.jpg", &plate),
        file("s1.face0.jpg", &face),
        file("s1.json", &openalpr_json()),
    ]
}

#[test]
fn a_complete_group_becomes_one_capture_with_its_read_and_stripped_images() {
    let files = complete_group();
    let plans = plan_group(&files, WITH_ENGINE);
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert!(plan.quarantine_reason().is_none());
    assert!(plan.metadata.read.is_some());
    assert_eq!(plan.inputs.len(), 4);
    let roles: Vec<ImageRole> = plan.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, [ImageRole::Overview, ImageRole::PlateCrop, ImageRole::Face]);
    for image in &plan.images {
        assert!(
            image.stripped.iter().any(|s| s.starts_with("APP1")),
            "camera EXIF was not stripped: {:?}",
            image.stripped
        );
        assert!(!image.bytes.windows(4).any(|w| w == b"Exif"));
    }
}

#[test]
fn unusable_inputs_are_quarantined_each_with_its_reason() {
    let (overview, _, _) = sample_images();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "bad.json",
            b"{\"version\": 2, \"data_type\": \"alpr_results\", \"results\": [".to_vec(),
            "engine output refused",
        ),
        ("junk.jpg", b"not an image at all".to_vec(), "not a usable image"),
        ("huge.jpg", vec![0xFF; custodia_lane::assemble::MAX_IMAGE_FILE_BYTES + 1], "image over the size limit"),
        ("notes.txt", b"x".to_vec(), "file name does not follow the pairing rule"),
    ];
    for (name, bytes, reason) in cases {
        let plans = plan_group(&[file(name, &bytes)], WITH_ENGINE);
        assert_eq!(plans.len(), 1, "{name}");
        let quarantine = plans[0].metadata.quarantine.as_ref().expect(name);
        assert!(quarantine.reason.starts_with(reason), "{name}: {}", quarantine.reason);
        assert_eq!(quarantine.file_name, name);
        assert_eq!(quarantine.raw_bytes, bytes.len() as u64);
        // Small inputs travel sealed with the note; large ones only by hash.
        assert_eq!(quarantine.raw_base64.is_some(), bytes.len() <= 128 * 1024, "{name}");
        assert_eq!(plans[0].inputs.len(), 1);
    }

    // An image with no engine output, and engine output with no image.
    let alone = plan_group(&[file("s2.jpg", &overview)], WITH_ENGINE);
    assert_eq!(alone[0].quarantine_reason(), Some("image arrived without engine output"));
    assert_eq!(alone[0].images.len(), 1, "the image is still sealed");
    let orphan = plan_group(&[file("s3.json", &openalpr_json())], WITH_ENGINE);
    assert_eq!(orphan[0].quarantine_reason(), Some("engine output arrived without its image"));
    assert!(orphan[0].metadata.read.is_some(), "the read is still sealed");

    // A plain-folder lane: images alone are normal captures.
    let plain = plan_group(&[file("s4.jpg", &overview)], PairingContext { expects_engine_output: false });
    assert!(plain[0].quarantine_reason().is_none());
}

#[test]
fn heartbeats_are_consumed_without_a_capture() {
    let heartbeat = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/alpr/rekor_heartbeat.json")).unwrap();
    let plans = plan_group(&[file("hb.json", &heartbeat)], WITH_ENGINE);
    assert_eq!(plans.len(), 1);
    assert!(plans[0].images.is_empty() && plans[0].metadata.read.is_none() && plans[0].metadata.quarantine.is_none());
    assert_eq!(plans[0].inputs.len(), 1);
}

#[test]
fn a_sealed_plan_opens_only_with_the_vault_keys_to_what_was_planned() {
    let files = complete_group();
    let plan = plan_group(&files, WITH_ENGINE).remove(0);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let site = SiteName::new("anzalduas").unwrap();
    let secrets: Vec<(RetentionClass, EpochSecretKey)> =
        RetentionClass::ALL.iter().map(|&class| (class, EpochSecretKey::generate(&mut rng))).collect();
    let epochs = EpochSet {
        issued_at_ms: 0,
        epochs: secrets
            .iter()
            .map(|(class, key)| EpochAnnouncement::new(site.clone(), *class, 0, i64::MAX, key.public_key()))
            .collect(),
    };
    let device = DeviceSigningKey::generate(&mut rng);
    let lane = LaneName::new("lane-1").unwrap();
    let sealer = Sealer { device_id: DeviceId([4; 16]), site: &site, lane: &lane, key: &device };
    let sealed = seal_plan(&plan, 42, &sealer, &epochs, &mut rng).unwrap();

    let capture = SealedCapture::parse(&sealed).unwrap();
    capture.verify_signature(&device.verifying_key()).unwrap();
    assert_eq!(capture.header().sequence, 42);
    let key_for = |class| &secrets.iter().find(|(c, _)| *c == class).unwrap().1;
    let (mg, mp) = capture.metadata_part().unwrap();
    assert_eq!(capture.groups()[mg].class(), RetentionClass::Plate, "metadata with a read lives as long as plates");
    let data_key = capture.open_data_key(mg, key_for(RetentionClass::Plate)).unwrap();
    let metadata = CaptureMetadata::from_slice(&capture.open_part(mg, mp, &data_key).unwrap()).unwrap();
    assert_eq!(metadata.images.len(), 3);
    for record in &metadata.images {
        let group = &capture.groups()[record.group as usize];
        let key = capture.open_data_key(record.group as usize, key_for(group.class())).unwrap();
        let bytes = capture.open_part(record.group as usize, record.part as usize, &key).unwrap();
        let planned = plan.images.iter().find(|i| i.role == record.role).unwrap();
        assert_eq!(&bytes[..], &planned.bytes[..]);
        assert_eq!(record.bytes, bytes.len() as u64);
    }
    // The face group does not open with the plate key.
    let face_group = capture.groups().iter().position(|g| g.class() == RetentionClass::Face).unwrap();
    assert!(capture.open_data_key(face_group, key_for(RetentionClass::Plate)).is_err());

    // Without the epoch for a class, nothing is sealed.
    let partial = EpochSet {
        issued_at_ms: 0,
        epochs: epochs.epochs.iter().filter(|e| e.class != RetentionClass::Face).cloned().collect(),
    };
    assert!(seal_plan(&plan, 43, &sealer, &partial, &mut rng).is_err());
}

#[test]
fn only_classes_dated_before_their_earliest_live_epoch_are_judged_expired() {
    let mut plan = plan_group(&complete_group(), WITH_ENGINE).remove(0);
    const T: i64 = 1_780_000_000_000;
    const HOUR: i64 = 3_600_000;
    plan.capture_time_ms = T;
    let site = SiteName::new("anzalduas").unwrap();
    let other_site = SiteName::new("pharr").unwrap();
    let key = EpochSecretKey::generate(&mut ChaCha20Rng::seed_from_u64(9)).public_key();
    let epoch =
        |site: &SiteName, class, from: i64, to: i64| EpochAnnouncement::new(site.clone(), class, from, to, key.clone());
    let set = |issued_at_ms, epochs| EpochSet { issued_at_ms, epochs };
    let day = |class| epoch(&site, class, T - 24 * HOUR, T + 24 * HOUR);
    let later_faces = epoch(&site, RetentionClass::Face, T + HOUR, T + 2 * HOUR);

    // Faces of the capture's hour are shredded; plates and overviews are live.
    let shredded_face =
        set(T + 10 * HOUR, vec![day(RetentionClass::Plate), day(RetentionClass::Overview), later_faces.clone()]);
    assert_eq!(plan.expired_classes(&site, &shredded_face, 0), [RetentionClass::Face]);
    // Issued before the capture time: the vault has not reached it, nothing is judged.
    let issued_before = set(T - 1, shredded_face.epochs.clone());
    assert!(plan.expired_classes(&site, &issued_before, 0).is_empty());
    // No face epoch at all for this site (only another site's): a misconfiguration, held.
    let other_sites_faces = set(
        T + 10 * HOUR,
        vec![
            day(RetentionClass::Plate),
            day(RetentionClass::Overview),
            epoch(&other_site, RetentionClass::Face, T + HOUR, T + 2 * HOUR),
        ],
    );
    assert!(plan.expired_classes(&site, &other_sites_faces, 0).is_empty());
    // A gap between live face epochs is not retention: held.
    let gap = set(
        T + 10 * HOUR,
        vec![
            day(RetentionClass::Plate),
            day(RetentionClass::Overview),
            epoch(&site, RetentionClass::Face, T - 2 * HOUR, T - HOUR),
            later_faces.clone(),
        ],
    );
    assert!(plan.expired_classes(&site, &gap, 0).is_empty());
    // Plates gone too: the class carrying the metadata (a read) is among the expired.
    let all_gone = set(
        T + 10 * HOUR,
        vec![epoch(&site, RetentionClass::Plate, T + HOUR, T + 2 * HOUR), day(RetentionClass::Overview), later_faces],
    );
    assert_eq!(plan.expired_classes(&site, &all_gone, 0), [RetentionClass::Plate, RetentionClass::Face]);
    assert_eq!(plan.metadata_class(), RetentionClass::Plate);
    // A time that cannot be trusted is never judged: before the lane's enrolment, or over an
    // hour from when the inputs arrived (a camera clock reset or days off).
    assert!(plan.expired_classes(&site, &all_gone, T + HOUR + 1).is_empty());
    assert_eq!(plan.expired_classes(&site, &all_gone, T + HOUR).len(), 2);
    plan.arrived_ms = T + HOUR + 1;
    assert!(plan.expired_classes(&site, &all_gone, 0).is_empty());
    plan.arrived_ms = T - HOUR;
    assert_eq!(plan.expired_classes(&site, &all_gone, 0).len(), 2);

    // Dropping the expired faces leaves a plan that seals without a face group.
    assert_eq!(plan.drop_images_of(&[RetentionClass::Face]), 1);
    assert_eq!(plan.classes(), [RetentionClass::Plate, RetentionClass::Overview]);
    let device = DeviceSigningKey::generate(&mut ChaCha20Rng::seed_from_u64(10));
    let lane = LaneName::new("lane-1").unwrap();
    let sealer = Sealer { device_id: DeviceId([4; 16]), site: &site, lane: &lane, key: &device };
    let sealed = seal_plan(&plan, 7, &sealer, &shredded_face, &mut ChaCha20Rng::seed_from_u64(11)).unwrap();
    let classes: Vec<RetentionClass> =
        SealedCapture::parse(&sealed).unwrap().groups().iter().map(|g| g.class()).collect();
    assert_eq!(classes, [RetentionClass::Plate, RetentionClass::Overview]);
}
