//! The demo's dump scan in small: a vault holding a few dozen synthetic captures that went
//! through the real lane code (strip, hash, seal) and real ingest; a "dump" of some of their
//! images after the transforms leaks go through (JPEG recompression, resizing, greyscale,
//! mirroring, 2 % and 5 % crops, letterbox bars) mixed with unrelated images, a corrupt file, a
//! text file and an oversized entry; `custodia leak scan` over the folder, a tar.gz and a zip
//! must name exactly the planted records, list the rest as unmatched or skipped, and log itself.
//!
//! The planted images are taken from the generator's output before sealing: the lane deletes
//! its plaintext, so a test has no other source for "what the camera produced".

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use custodia_lane::assemble::{InputFile, PairingContext, Sealer, plan_group, seal_plan};
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::{DeviceSigningKey, LaneName, SiteName, VaultVerifyingKey};
use custodia_synth::{FileRole, LaneSpec, TrafficConfig, Vendor};
use custodia_vault::clock::SystemClock;
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use image::{DynamicImage, GenericImageView, ImageFormat};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SITE: &str = "anzalduas";

/// A stored capture: its record id and its overview as the camera produced it.
struct Stored {
    record: String,
    overview: Vec<u8>,
}

async fn vault_with_traffic(dir: &Path, captures: u32) -> Vec<Stored> {
    let now = SystemClock.now_ms_for_test();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(dir, &config, MasterKey::KeyFile, &mut rng).unwrap();
    let vault = Vault::open(dir, Arc::new(SystemClock), Box::new(ChaCha20Rng::seed_from_u64(22)), None).unwrap();
    vault.ensure_epochs(now - 2 * DAY_MS, now + 2 * DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-3", &device_key.verifying_key()).unwrap();
    let key = VaultVerifyingKey::from_bytes(&vault.epoch_signing_public_key().unwrap()).unwrap();
    let epochs = SignedEpochSet::from_json(&vault.signed_epoch_set().unwrap()).unwrap().verify(&key).unwrap();
    let (site, lane) = (SiteName::new(SITE).unwrap(), LaneName::new("lane-3").unwrap());
    let sealer = Sealer { device_id: device.id, site: &site, lane: &lane, key: &device_key };
    let traffic = TrafficConfig {
        seed: 77,
        site: SITE.into(),
        lanes: vec![LaneSpec { lane: "lane-3".into(), camera_id: 3, vendor: Vendor::OpenAlprV2 }],
        start_ms: now - DAY_MS,
        days: 1,
        captures,
    };
    let mut stored = Vec::new();
    for (sequence, capture) in custodia_synth::generate(&traffic).enumerate() {
        let files: Vec<InputFile> =
            capture.files.iter().map(|f| InputFile::new(&f.name, &f.bytes, capture.time_ms)).collect();
        let mut plans = plan_group(&files, PairingContext { expects_engine_output: true });
        assert_eq!(plans.len(), 1);
        let plan = plans.remove(0);
        let sealed = seal_plan(&plan, sequence as u64 + 1, &sealer, &epochs, &mut rng).unwrap();
        let receipt = vault.ingest(Bytes::from(sealed)).await.unwrap();
        let overview = capture.files.iter().find(|f| f.role == FileRole::Overview).unwrap().bytes.clone();
        stored.push(Stored { record: receipt.record_id, overview });
    }
    stored
}

trait NowForTest {
    fn now_ms_for_test(&self) -> i64;
}
impl NowForTest for SystemClock {
    fn now_ms_for_test(&self) -> i64 {
        use custodia_vault::clock::Clock;
        self.now_ms()
    }
}

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(&img.to_rgb8()).unwrap();
    out
}

fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn crop_each_side(img: &DynamicImage, per_mille: u32) -> DynamicImage {
    let (w, h) = img.dimensions();
    let (dx, dy) = (w * per_mille / 1000, h * per_mille / 1000);
    img.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy)
}

fn letterbox(img: &DynamicImage) -> DynamicImage {
    let (w, h) = img.dimensions();
    let bar = h / 6;
    let mut out = image::RgbImage::new(w, h + 2 * bar);
    image::imageops::overlay(&mut out, &img.to_rgb8(), 0, i64::from(bar));
    DynamicImage::ImageRgb8(out)
}

/// Makes a leaked copy's file bytes from a stored image.
type Transform = fn(&DynamicImage) -> Vec<u8>;

/// The transforms a leaked copy goes through, each with a file name.
fn transforms() -> Vec<(&'static str, Transform)> {
    vec![
        ("jpeg-q30.jpg", |i| jpeg(i, 30)),
        ("resize-50.jpg", |i| {
            jpeg(&i.resize(i.width() / 2, i.height() / 2, image::imageops::FilterType::Triangle), 85)
        }),
        ("thumb-160.jpg", |i| jpeg(&i.thumbnail(160, 160), 85)),
        ("grey.png", |i| png(&DynamicImage::ImageLuma8(i.to_luma8()))),
        ("mirror.jpg", |i| jpeg(&i.fliph(), 85)),
        ("rot90.jpg", |i| jpeg(&i.rotate90(), 85)),
        ("crop-2.jpg", |i| jpeg(&crop_each_side(i, 20), 85)),
        ("crop-5.jpg", |i| jpeg(&crop_each_side(i, 50), 85)),
        ("letterbox.jpg", |i| jpeg(&letterbox(i), 85)),
    ]
}

/// The dump's files: (name, bytes), and the records planted in it.
fn dump(stored: &[Stored], unrelated: &[Vec<u8>]) -> (Vec<(String, Vec<u8>)>, BTreeSet<String>) {
    let mut files = Vec::new();
    let mut planted = BTreeSet::new();
    // Every third stored capture leaks, each through one transform (cycling), a few through two.
    for (k, s) in stored.iter().enumerate().filter(|(k, _)| k % 3 == 0) {
        let img = image::load_from_memory(&s.overview).unwrap();
        let all = transforms();
        for (name, f) in [&all[(k / 3) % all.len()], &all[(k / 3 + 4) % all.len()]] {
            files.push((format!("leak/{k:03}-{name}"), f(&img)));
        }
        planted.insert(s.record.clone());
    }
    for (k, u) in unrelated.iter().enumerate() {
        files.push((format!("other/unrelated-{k:02}.jpg"), u.clone()));
    }
    let truncated = stored[1].overview[..stored[1].overview.len() / 3].to_vec();
    files.push(("other/truncated.jpg".into(), truncated));
    files.push(("other/readme.txt".into(), b"nothing to see".to_vec()));
    let mut hostile = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03];
    hostile.extend([0u8; 64]);
    files.push(("other/claims-65535x65535.jpg".into(), hostile));
    (files, planted)
}

fn scan(source: &Path, vault: &Path, report: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .args(["leak", "scan"])
        .arg(source)
        .arg("--vault")
        .arg(vault)
        .arg("--report")
        .arg(report)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "scan of {} failed: {}", source.display(), String::from_utf8_lossy(&out.stderr));
    let json = std::fs::read(report.with_extension("json")).unwrap();
    let html = std::fs::read_to_string(report.with_extension("html")).unwrap();
    assert!(
        html.starts_with("<!doctype html>") && !html.contains("<script") && !html.contains("http"),
        "self-contained"
    );
    serde_json::from_slice(&json).unwrap()
}

fn check(report: &serde_json::Value, planted: &BTreeSet<String>, files: &[(String, Vec<u8>)], what: &str) {
    let matched: BTreeSet<String> = report["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["weak"] == false)
        .map(|m| m["record"].as_str().unwrap().to_string())
        .collect();
    // Per leaked file, which records it was matched to.
    let mut by_file: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in report["matches"].as_array().unwrap() {
        let file = m["file"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        by_file.entry(file).or_default().insert(m["record"].as_str().unwrap().to_string());
    }
    let missing: Vec<&String> = files
        .iter()
        .filter(|(n, _)| n.starts_with("leak/"))
        .map(|(n, _)| n)
        .filter(|n| !by_file.contains_key(n.rsplit('/').next().unwrap()))
        .collect();
    assert!(missing.is_empty(), "{what}: leaked files not found: {missing:?}\nunmatched: {}", report["unmatched"]);
    assert_eq!(&matched, planted, "{what}: exactly the planted records, nothing else");
    assert!(by_file.keys().all(|f| !f.starts_with("unrelated")), "{what}: an unrelated image matched: {by_file:?}");
    assert_eq!(report["summary"]["records"], planted.len());
    assert_eq!(report["summary"]["vehicles"], planted.len(), "overviews show vehicles");
    assert_eq!(report["summary"]["occupants"], 0, "no face image was leaked");
    assert_eq!(report["summary"]["sites"], serde_json::json!([SITE]));
    assert_eq!(report["summary"]["lanes"], serde_json::json!([format!("{SITE}/lane-3")]));
    let unmatched: BTreeSet<&str> =
        report["unmatched"].as_array().unwrap().iter().map(|u| u["file"].as_str().unwrap()).collect();
    assert!(unmatched.iter().filter(|f| f.contains("unrelated-")).count() >= 1);
    let skipped: BTreeMap<String, String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().rsplit('/').next().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for name in ["truncated.jpg", "readme.txt", "claims-65535x65535.jpg"] {
        assert!(skipped.contains_key(name), "{what}: {name} must be listed as skipped: {skipped:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_scan_finds_exactly_the_planted_records_in_a_folder_a_tar_gz_and_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("vault");
    let stored = vault_with_traffic(&vault_dir, 30).await;
    // Unrelated: the same kind of scene from another site's traffic, never ingested, and noise.
    let other = TrafficConfig {
        seed: 4242,
        site: "elsewhere".into(),
        lanes: vec![LaneSpec { lane: "lane-9".into(), camera_id: 9, vendor: Vendor::OpenAlprV2 }],
        start_ms: 1_700_000_000_000,
        days: 1,
        captures: 12,
    };
    let mut unrelated: Vec<Vec<u8>> = custodia_synth::generate(&other)
        .flat_map(|c| c.files.into_iter().filter(|f| f.role != FileRole::EngineJson).map(|f| f.bytes))
        .collect();
    let noise = image::RgbImage::from_fn(640, 360, |x, y| {
        image::Rgb([((x * 7) ^ (y * 13)) as u8, (x * y) as u8, (x + 3 * y) as u8])
    });
    unrelated.push(jpeg(&DynamicImage::ImageRgb8(noise), 80));
    let (files, planted) = dump(&stored, &unrelated);
    assert!(planted.len() >= 10);

    let folder = dir.path().join("dump");
    for (name, bytes) in &files {
        let path = folder.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let report = scan(&folder, &vault_dir, &dir.path().join("folder-report"), &[]);
    check(&report, &planted, &files, "folder");

    let targz = dir.path().join("dump.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&targz).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, bytes) in &files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, &bytes[..]).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }
    let report = scan(&targz, &vault_dir, &dir.path().join("targz-report.json"), &[]);
    check(&report, &planted, &files, "tar.gz");

    // The zip also carries a 64 MB entry of zeros (a few KB compressed): with a 16 MB entry
    // limit it is refused by its declared size and never inflated.
    let zip_path = dir.path().join("dump.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in &files {
            zip.start_file(name.as_str(), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        // A hostile name: the scan writes nothing it extracts, and the HTML report escapes it.
        zip.start_file("../../<script>alert(1)</script>.jpg", options).unwrap();
        zip.write_all(b"\xff\xd8 not really a jpeg").unwrap();
        zip.start_file("other/bomb.jpg", options.large_file(false)).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
    }
    let report = scan(&zip_path, &vault_dir, &dir.path().join("zip-report"), &["--max-entry-bytes", "16000000"]);
    check(&report, &planted, &files, "zip");
    let bomb =
        report["skipped"].as_array().unwrap().iter().find(|s| s["file"] == "other/bomb.jpg").expect("bomb listed");
    assert!(bomb["reason"].as_str().unwrap().contains("limit"), "{bomb}");
    let hostile = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"].as_str().is_some_and(|f| f.contains("alert(1)")));
    assert!(hostile.is_some(), "the hostile entry is listed as skipped");
    assert!(!dir.path().parent().unwrap().join("<script>alert(1)</script>.jpg").exists());
    assert!(!dir.path().join("<script>alert(1)</script>.jpg").exists());

    // Each scan is a `scanned` event in the vault's audit log, with the report's digest.
    let vault = Vault::open(&vault_dir, Arc::new(SystemClock), Box::new(ChaCha20Rng::seed_from_u64(23)), None).unwrap();
    drop(vault);
    let log = std::fs::read(vault_dir.join("log").join("entries.ctl")).unwrap();
    let scanned = log.windows(b"scanned".len()).filter(|w| w == b"scanned").count();
    assert_eq!(scanned, 3, "three scans, three scanned events");
}
