//! Writes small valid inputs for every fuzz target, made by Custodia's own encoders, into
//! fuzz/corpus/<target>/seed-<name>. Deterministic (fixed seeds), so a rerun rewrites the same
//! bytes. Run: `cargo run --manifest-path fuzz/Cargo.toml -p custodia-fuzz-seeds`.

use std::path::{Path, PathBuf};

use custodia_seal::metadata::{CaptureMetadata, ImageRecord, ImageRole, METADATA_VERSION, PlateReadRecord};
use custodia_seal::{
    CaptureHeader, DeviceId, DeviceSigningKey, EpochId, EpochSecretKey, GroupToSeal, LaneName, PartKind, PartToSeal,
    RetentionClass, SiteName,
};
use custodia_tlog::{
    Checkpoint, KeyName, MemoryHashStore, NoteSigner, TlogProof, format_entry_bundle, prove_record, prove_tree,
};
use custodia_vault::audit::{Action, Event, Text};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    sealed_capture(&root.join("sealed_capture"));
    alpr_input(&root.join("alpr_input"));
    images(&root.join("image_strip"));
    images(&root.join("pdq_decode"));
    tlog(&root);
    policy(&root.join("policy_file"));
    audit_event(&root.join("audit_event"));
    println!("seeds written under {}", root.display());
}

/// Writes one seed after checking that the target's parser accepts it (a seed the parser
/// refuses would only exercise the error path).
fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let target = dir.file_name().unwrap().to_str().unwrap();
    let accepted = match target {
        "sealed_capture" => custodia_seal::SealedCapture::parse(bytes).is_ok(),
        "alpr_input" => custodia_lane::input::parse_engine_output(bytes).is_ok(),
        "image_strip" => custodia_lane::strip::strip_metadata(bytes).is_ok(),
        "pdq_decode" => true, // decoded by the pdq crate; a 48x32 image hashes (quality aside)
        "policy_file" => custodia_policy::Policy::parse(std::str::from_utf8(bytes).unwrap()).is_ok(),
        "audit_event" => Event::parse(bytes).is_ok(),
        "checkpoint_and_proof" if bytes[0] == 0 => TlogProof::parse(&bytes[1..]).is_ok(),
        "checkpoint_and_proof" => std::str::from_utf8(&bytes[1..]).is_ok_and(|s| s.split("\n\n").count() >= 2),
        "tlog_parsers" => bytes.len() > 1, // one byte of width, then any of several formats
        other => panic!("no check for {other}"),
    };
    assert!(accepted, "seed {target}/{name} is refused by its own parser");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn sealed_capture(dir: &Path) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let device = DeviceSigningKey::generate(&mut rng);
    let plate_key = EpochSecretKey::generate(&mut rng).public_key();
    let face_key = EpochSecretKey::generate(&mut rng).public_key();
    let metadata = CaptureMetadata {
        version: METADATA_VERSION,
        read: Some(PlateReadRecord {
            plate: "ZZ0001".into(),
            confidence: 0.9,
            region: None,
            candidates: vec![],
            bbox: None,
            vehicle: vec![],
        }),
        other_reads: vec![],
        engine: None,
        images: vec![ImageRecord {
            group: 0,
            part: 1,
            role: ImageRole::PlateCrop,
            bytes: 4,
            sha256: String::new(),
            stripped: vec![],
            pdq: vec![],
        }],
        quarantine: None,
        expired_images: Vec::new(),
    }
    .to_vec();
    let header = CaptureHeader {
        device_id: "ab".repeat(16).parse::<DeviceId>().unwrap(),
        site: SiteName::new("anzalduas").unwrap(),
        lane: LaneName::new("lane-1").unwrap(),
        capture_time_ms: 1_780_000_000_000,
        sequence: 7,
    };
    let plate_group = || GroupToSeal {
        class: RetentionClass::Plate,
        epoch_id: "01".repeat(16).parse::<EpochId>().unwrap(),
        epoch_key: &plate_key,
        parts: vec![
            PartToSeal { kind: PartKind::Metadata, plaintext: &metadata },
            PartToSeal { kind: PartKind::Jpeg, plaintext: b"\xff\xd8\xff\xd9" },
        ],
    };
    let face_group = GroupToSeal {
        class: RetentionClass::Face,
        epoch_id: "02".repeat(16).parse::<EpochId>().unwrap(),
        epoch_key: &face_key,
        parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: b"\xff\xd8face\xff\xd9" }],
    };
    put(dir, "one-group", &custodia_seal::seal(&header, &[plate_group()], &device, &mut rng).unwrap());
    put(dir, "two-groups", &custodia_seal::seal(&header, &[plate_group(), face_group], &device, &mut rng).unwrap());
}

/// One engine JSON per vendor the synthetic traffic emits, smallest first.
fn alpr_input(dir: &Path) {
    let mut config = custodia_synth::TrafficConfig::demo(3, 1_715_000_000_000);
    config.captures = 40;
    let mut seen = std::collections::BTreeMap::new();
    for capture in custodia_synth::generate(&config) {
        for f in capture.files.iter().filter(|f| f.role == custodia_synth::FileRole::EngineJson) {
            let best = seen.entry(capture.vendor.as_str()).or_insert_with(|| f.bytes.clone());
            if f.bytes.len() < best.len() {
                *best = f.bytes.clone();
            }
        }
    }
    for (vendor, bytes) in seen {
        put(dir, vendor, &bytes);
    }
}

fn pixels(w: u32, h: u32) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, ((x ^ y) * 8) as u8]
        })
        .collect()
}

fn images(dir: &Path) {
    let (w, h) = (48u32, 32u32);
    let rgb = pixels(w, h);
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 80).encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    put(dir, "bare.jpg", &jpeg);
    let meta = custodia_synth::CameraMeta {
        make: "Perceptics".into(),
        model: "LPR-1".into(),
        serial: "SN0001".into(),
        time_ms: 1_715_630_400_000,
        latitude: 26.09,
        longitude: -98.33,
        comment: "lane 1".into(),
    };
    put(dir, "exif.jpg", &custodia_synth::jpeg_with_camera_metadata(&jpeg, &meta).unwrap());
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    put(dir, "plain.png", &png);
}

fn tlog(root: &Path) {
    let mut store = MemoryHashStore::new();
    let entries: Vec<Vec<u8>> = (0..13).map(|i| format!("entry {i}").into_bytes()).collect();
    for e in &entries {
        store.append(e);
    }
    let checkpoint = |size: u64, store: &MemoryHashStore| {
        let mut s = MemoryHashStore::new();
        for e in &entries[..size as usize] {
            s.append(e);
        }
        let _ = store;
        Checkpoint::new("fuzz.example/log", size, s.root()).unwrap().to_text()
    };
    let body = checkpoint(13, &store);
    let proof = |index: u64, checkpoint: String| TlogProof {
        extra: Some(entries[index as usize].clone()),
        index,
        proof: prove_record(13, index, &store).unwrap(),
        checkpoint,
    };
    let with_byte = |b: u8, s: &[u8]| [&[b][..], s].concat();

    let dir = root.join("tlog_parsers");
    put(&dir, "checkpoint", &with_byte(0, body.as_bytes()));
    // tlog_parsers treats any note that opens under its fixed key ([7; 32]) as a forgery, so
    // its seeds are signed by another key: they parse, and fail verification as they must.
    let other = custodia_tlog::ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let other = NoteSigner::from_signing_key(KeyName::new("fuzz.example/log").unwrap(), other);
    let signed = other.sign(&body).unwrap();
    put(&dir, "signed-note", &with_byte(0, signed.as_bytes()));
    put(&dir, "tlog-proof", &with_byte(0, proof(5, signed.clone()).to_text().as_bytes()));
    put(&dir, "tile-path", &with_byte(0, b"tile/0/x001/234.p/5"));
    put(&dir, "entries-path", &with_byte(0, b"tile/entries/000.p/13"));
    put(&dir, "vkey", &with_byte(0, other.verifier().to_vkey().as_bytes()));
    put(&dir, "entry-bundle", &with_byte(2, &format_entry_bundle(&entries[..3]).unwrap()));
    let hashes: Vec<u8> = store.hashes()[..4].iter().flat_map(|h| h.0).collect();
    put(&dir, "hash-tile", &with_byte(3, &hashes));

    let dir = root.join("checkpoint_and_proof");
    for index in [0, 5, 12] {
        put(&dir, &format!("inclusion-{index}"), &with_byte(0, proof(index, body.clone()).to_text().as_bytes()));
    }
    for old in [1, 4, 7] {
        let mut text = format!("{}\n{}\n", checkpoint(old, &store).trim_end(), body.trim_end());
        for h in prove_tree(13, old, &store).unwrap() {
            text.push('\n');
            text.push_str(&h.to_base64());
        }
        put(&dir, &format!("consistency-{old}-13"), &with_byte(1, text.as_bytes()));
    }
}

fn policy(dir: &Path) {
    put(dir, "default.toml", custodia_policy::DEFAULT_POLICY.as_bytes());
}

fn audit_event(dir: &Path) {
    let t = |s: &str| Text::new(s).unwrap();
    let event = |principal: &str, role: &str, purpose: Option<(&str, &str)>, action: Action| Event {
        time_ms: 1_780_000_000_000,
        principal: t(principal),
        role: t(role),
        purpose: purpose.map(|p| t(p.0)),
        case: purpose.map(|p| t(p.1)),
        action,
    };
    let record = "abababababababababababababababab-7";
    let events = [
        (
            "ingested",
            event(
                "device:abab",
                "lane",
                None,
                Action::Ingested {
                    record: t(record),
                    digest: [0x11; 32],
                    site: t("anzalduas"),
                    lane: t("lane-1"),
                    capture_time_ms: 1_779_999_990_000,
                    device: t("abab"),
                    epochs: vec![t("0101"), t("0202")],
                },
            ),
        ),
        (
            "accessed",
            event(
                "officer-7",
                "officer",
                Some(("inv", "2026-118")),
                Action::Accessed { record: t(record), part: t("face") },
            ),
        ),
        (
            "searched",
            event(
                "officer-7",
                "officer",
                Some(("inv", "2026-118")),
                Action::Searched { query: [0x22; 32], results: 3 },
            ),
        ),
        (
            "refused",
            event(
                "maintainer",
                "maintainer",
                None,
                Action::Refused { request: t("read-image"), target: t(record), reason: t("no-grant") },
            ),
        ),
        (
            "login-failed",
            event("unknown", "none", None, Action::LoginFailed { claimed: t("cst_00"), reason: t("bad-secret") }),
        ),
        (
            "epoch-created",
            event(
                "vault",
                "system",
                None,
                Action::EpochCreated {
                    epoch: t("0101"),
                    site: t("anzalduas"),
                    class: t("face"),
                    not_before_ms: 1_780_000_000_000,
                    not_after_ms: 1_780_003_600_000,
                    public_key: vec![4; 65],
                },
            ),
        ),
        (
            "principal-added",
            event(
                "admin",
                "admin",
                None,
                Action::PrincipalAdded { subject: t("officer-7"), roles: vec![t("officer")] },
            ),
        ),
        (
            "break-glass-approved",
            event(
                "supervisor",
                "supervisor",
                None,
                Action::BreakGlassApproved { request: t("bg-1"), requester: t("officer-7"), scope: t("record:abab-7") },
            ),
        ),
    ];
    for (name, e) in events {
        put(dir, name, &e.to_bytes());
    }
}
