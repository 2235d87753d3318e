//! Behaviour of the generator as the demo and the lane agent rely on it.
//!
//! Outside truth: the `image` crate's JPEG decoder (every image decodes), `kamadak-exif` (our
//! hand-written Exif parses to the values we put in), `serde_json` (every engine output is JSON),
//! and the field lists of `shared/formats/alpr-inputs.md`, copied into the assertions below.

use std::collections::{BTreeSet, HashMap};
use std::io::Cursor;

use base64::Engine as _;
use custodia_synth::*;
use serde_json::Value;

const START: i64 = 1_715_000_000_000; // 2024-05-06T12:53:20Z

fn config(seed: u64, captures: u32) -> TrafficConfig {
    let mut c = TrafficConfig::demo(seed, START);
    c.captures = captures;
    c
}

/// All six vendors, one lane each.
fn all_vendor_config(seed: u64, captures: u32) -> TrafficConfig {
    let lanes = Vendor::ALL
        .into_iter()
        .enumerate()
        .map(|(i, vendor)| LaneSpec { lane: format!("lane-{}", i + 1), camera_id: 11 + i as u32, vendor })
        .collect();
    TrafficConfig { seed, site: "test-site".into(), lanes, start_ms: START, days: 45, captures }
}

fn decode(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).expect("valid JPEG").to_rgb8()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a: Vec<SyntheticCapture> = generate(&config(5, 6)).collect();
    let b: Vec<SyntheticCapture> = generate(&config(5, 6)).collect();
    assert_eq!(a.len(), 6);
    assert_eq!(a, b);
    let c: Vec<SyntheticCapture> = generate(&config(6, 6)).collect();
    assert_ne!(a[0].files[0].bytes, c[0].files[0].bytes);
    // Rendering a plan on its own (as a multi-threaded caller does) gives the same capture.
    let cfg = config(5, 6);
    let plans: Vec<CapturePlan> = plan(&cfg).collect();
    assert_eq!(render(&cfg, &plans[3]), a[3]);
}

#[test]
fn images_decode_at_their_sizes_and_weigh_what_real_ones_do() {
    let mut by_role: HashMap<FileRole, Vec<usize>> = HashMap::new();
    for cap in generate(&config(11, 16)) {
        for f in &cap.files {
            let (w, h) = match f.role {
                FileRole::Overview => (OVERVIEW_W, OVERVIEW_H),
                FileRole::PlateCrop => (PLATE_CROP_W, PLATE_CROP_H),
                FileRole::Face => (FACE_W, FACE_H),
                _ => continue,
            };
            let img = decode(&f.bytes);
            assert_eq!((img.width() as usize, img.height() as usize), (w, h), "{}", f.name);
            by_role.entry(f.role).or_default().push(f.bytes.len());
        }
    }
    let check = |role: FileRole, lo: usize, hi: usize| {
        let v = &by_role[&role];
        for &n in v {
            assert!((lo..=hi).contains(&n), "{role:?} of {n} bytes outside {lo}..={hi}");
        }
        v.iter().sum::<usize>() / v.len()
    };
    // The ranges the crate documents; the means are where a 600-capture run centres.
    let overview = check(FileRole::Overview, 140_000, 300_000);
    let plate = check(FileRole::PlateCrop, 15_000, 25_000);
    let face = check(FileRole::Face, 25_000, 35_000);
    assert!((180_000..=230_000).contains(&overview), "mean overview {overview}");
    assert!((17_000..=21_000).contains(&plate), "mean plate {plate}");
    assert!((28_000..=33_000).contains(&face), "mean face {face}");

    let (o, p, f) = sample_capture_bytes(3);
    let total = o.len() + p.len() + f.len();
    assert!((200_000..=320_000).contains(&total), "sample capture {total} bytes");
    for b in [&o, &p, &f] {
        decode(b);
    }
}

#[test]
fn exif_splice_decodes_and_reads_back() {
    let (_, plate, _) = sample_capture_bytes(9);
    let meta = CameraMeta {
        make: "Synthetic Optics".into(),
        model: "LaneCam X2".into(),
        serial: "SO0123456789".into(),
        time_ms: 1_558_000_000_123, // 2019-05-16T09:46:40.123Z (Python datetime)
        latitude: 26.1283,
        longitude: -98.3345,
        comment: "lane 3 maintenance account svc-7".into(),
    };
    // Start from a JPEG without metadata: re-encode the decoded pixels.
    let img = decode(&plate);
    let mut bare = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bare, 85)
        .encode(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    let out = jpeg_with_camera_metadata(&bare, &meta).unwrap();
    assert_eq!(&out[..4], &[0xFF, 0xD8, 0xFF, 0xE1]);
    // Pixels are untouched.
    assert_eq!(decode(&out).as_raw(), decode(&bare).as_raw());
    // The COM segment holds the comment.
    let com = out.windows(2).position(|w| w == [0xFF, 0xFE]).expect("COM marker");
    let len = u16::from_be_bytes([out[com + 2], out[com + 3]]) as usize;
    assert_eq!(&out[com + 4..com + 2 + len], meta.comment.as_bytes());

    let exif = exif::Reader::new().read_from_container(&mut Cursor::new(&out)).expect("Exif parses");
    let text = |tag| {
        exif.get_field(tag, exif::In::PRIMARY).unwrap_or_else(|| panic!("{tag} missing")).display_value().to_string()
    };
    assert_eq!(text(exif::Tag::Make), "\"Synthetic Optics\"");
    assert_eq!(text(exif::Tag::Model), "\"LaneCam X2\"");
    assert_eq!(text(exif::Tag::BodySerialNumber), "\"SO0123456789\"");
    assert_eq!(text(exif::Tag::DateTimeOriginal), "2019-05-16 09:46:40");
    assert_eq!(text(exif::Tag::SubSecTimeOriginal), "\"123\"");
    assert_eq!(text(exif::Tag::OffsetTimeOriginal), "\"+00:00\"");
    assert_eq!(text(exif::Tag::GPSLatitudeRef), "N");
    assert_eq!(text(exif::Tag::GPSLongitudeRef), "W");
    let degrees = |tag| match &exif.get_field(tag, exif::In::PRIMARY).unwrap().value {
        exif::Value::Rational(v) => v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0,
        v => panic!("{v:?}"),
    };
    assert!((degrees(exif::Tag::GPSLatitude) - 26.1283).abs() < 1e-6);
    assert!((degrees(exif::Tag::GPSLongitude) - 98.3345).abs() < 1e-6);

    assert_eq!(jpeg_with_camera_metadata(b"GIF89a", &meta), Err(SynthError::NotJpeg));
    let bad = CameraMeta { make: "Café".into(), ..meta.clone() };
    assert!(matches!(jpeg_with_camera_metadata(&bare, &bad), Err(SynthError::InvalidMetadata { field: "make" })));
    let bad = CameraMeta { latitude: 91.0, ..meta };
    assert!(matches!(jpeg_with_camera_metadata(&bare, &bad), Err(SynthError::InvalidMetadata { field: "latitude" })));
}

#[test]
fn every_generated_image_carries_camera_metadata() {
    for cap in generate(&config(2, 4)) {
        for f in cap.files.iter().filter(|f| f.role != FileRole::EngineJson) {
            let exif = exif::Reader::new().read_from_container(&mut Cursor::new(&f.bytes)).expect("Exif");
            assert!(exif.get_field(exif::Tag::BodySerialNumber, exif::In::PRIMARY).is_some());
            assert!(exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some());
        }
    }
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().expect("object").keys().map(String::as_str).collect()
}

fn has_all(v: &Value, want: &[&str], what: &str) {
    let k = keys(v);
    for w in want {
        assert!(k.contains(w), "{what} lacks `{w}`: has {k:?}");
    }
}

/// Every plate string anywhere in an engine JSON (`plate`, `best_plate_number`).
fn plates_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if (k == "plate" || k == "best_plate_number") && v.is_string() {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    plates_in(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| plates_in(v, out)),
        _ => {}
    }
}

#[test]
fn engine_json_has_each_vendors_fields_and_names_its_images() {
    const ALPR_RESULT: &[&str] = &[
        "plate",
        "confidence",
        "matches_template",
        "region",
        "region_confidence",
        "processing_time_ms",
        "coordinates",
        "candidates",
    ];
    let mut seen: HashMap<Vendor, usize> = HashMap::new();
    for cap in generate(&all_vendor_config(21, 36)) {
        let stem = cap.vendor.file_stem("test-site", cap.camera_id, cap.time_ms);
        let names: BTreeSet<&str> = cap.files.iter().map(|f| f.name.as_str()).collect();
        // Pairing rule: every file is <stem>.<known suffix>, the overview always exists.
        assert!(names.contains(format!("{stem}.jpg").as_str()));
        for f in &cap.files {
            let suffix = f.name.strip_prefix(&stem).unwrap_or_else(|| panic!("{} not under {stem}", f.name));
            let role = match suffix {
                ".jpg" => FileRole::Overview,
                ".plate.jpg" => FileRole::PlateCrop,
                ".json" => FileRole::EngineJson,
                s if s.starts_with(".face") && s.ends_with(".jpg") => FileRole::Face,
                s => panic!("unexpected suffix {s}"),
            };
            assert_eq!(role, f.role, "{}", f.name);
        }
        let Some(json) = cap.files.iter().find(|f| f.role == FileRole::EngineJson) else {
            // Only engines that stay silent without a read may omit their JSON.
            assert!(cap.vendor == Vendor::PlainFolder || cap.read_text.is_none(), "{:?}", cap.vendor);
            continue;
        };
        assert_eq!(cap.files.last().unwrap().role, FileRole::EngineJson, "JSON comes last");
        let v: Value = serde_json::from_slice(&json.bytes).expect("engine output is JSON");
        *seen.entry(cap.vendor).or_default() += 1;
        let mut plates = Vec::new();
        plates_in(&v, &mut plates);
        for p in &plates {
            assert!(is_synthetic_plate(p), "{p} outside the synthetic space");
        }
        let read = cap.read_text.as_deref();
        match cap.vendor {
            Vendor::OpenAlprV2 | Vendor::OpenAlprV1 => {
                let v2 = cap.vendor == Vendor::OpenAlprV2;
                has_all(
                    &v,
                    &["epoch_time", "processing_time_ms", "results", "uuid", "camera_id", "site_id"],
                    "alpr_results",
                );
                let v2_only = ["version", "data_type", "img_width", "img_height", "regions_of_interest"];
                for k in v2_only {
                    assert_eq!(v.get(k).is_some(), v2, "{k}");
                }
                if v2 {
                    assert_eq!(v["version"], 2);
                    assert_eq!(v["data_type"], "alpr_results");
                }
                assert_eq!(v["uuid"], format!("test-site-cam{}-{}", cap.camera_id, cap.time_ms));
                assert_eq!(v["epoch_time"], cap.time_ms);
                let r = &v["results"][0];
                has_all(r, ALPR_RESULT, "result");
                assert_eq!(r.get("plate_index").is_some(), v2);
                assert_eq!(r.get("requested_topn").is_some(), v2);
                assert_eq!(r["plate"].as_str(), read);
                assert_eq!(r["coordinates"].as_array().unwrap().len(), 4);
                assert_eq!(r["candidates"][0]["plate"], r["plate"]);
                let region = r["region"].as_str().unwrap();
                let code = cap.plate_region.unwrap().code();
                assert_eq!(region, if v2 { code } else { &code[3..] });
            }
            Vendor::RekorScoutGroup => {
                has_all(
                    &v,
                    &[
                        "data_type",
                        "version",
                        "epoch_start",
                        "epoch_end",
                        "frame_start",
                        "frame_end",
                        "company_id",
                        "agent_uid",
                        "agent_version",
                        "agent_type",
                        "camera_id",
                        "gps_latitude",
                        "gps_longitude",
                        "country",
                        "uuids",
                        "plate_indexes",
                        "vehicle_path",
                        "plate_path",
                        "candidates",
                        "best_plate",
                        "best_confidence",
                        "best_plate_number",
                        "best_region",
                        "best_region_confidence",
                        "matches_template",
                        "vehicle_crop_jpeg",
                        "best_uuid",
                        "best_uuid_epoch_ms",
                        "best_image_width",
                        "best_image_height",
                        "travel_direction",
                        "is_parked",
                        "is_preview",
                        "vehicle_signature",
                        "vehicle",
                        "web_server_config",
                        "direction_of_travel_id",
                    ],
                    "alpr_group",
                );
                assert_eq!(v["data_type"], "alpr_group");
                assert_eq!(format!("{}.jpg", v["best_uuid"].as_str().unwrap()), format!("{stem}.jpg"));
                assert!(v["uuids"].as_array().unwrap().contains(&v["best_uuid"]));
                assert_eq!(v["best_plate_number"].as_str(), read);
                let bp = &v["best_plate"];
                has_all(bp, ALPR_RESULT, "best_plate");
                has_all(bp, &["plate_crop_jpeg", "vehicle_region", "vehicle_detected"], "best_plate");
                let b64 = base64::engine::general_purpose::STANDARD;
                let crop = decode(&b64.decode(bp["plate_crop_jpeg"].as_str().unwrap()).unwrap());
                assert_eq!((crop.width() as usize, crop.height() as usize), (PLATE_CROP_W, PLATE_CROP_H));
                decode(&b64.decode(v["vehicle_crop_jpeg"].as_str().unwrap()).unwrap());
                for k in
                    ["color", "make", "make_model", "body_type", "year", "orientation", "missing_plate", "is_vehicle"]
                {
                    has_all(&v["vehicle"][k][0], &["name", "confidence"], k);
                }
                has_all(&v["vehicle_path"][0], &["x", "y", "w", "h", "t", "f"], "vehicle_path");
                assert!(!cap.files.iter().any(|f| f.role == FileRole::PlateCrop), "Rekor inlines the plate crop");
            }
            Vendor::PlateRecognizerSnapshot | Vendor::PlateRecognizerStream => {
                let (data, results) = if cap.vendor == Vendor::PlateRecognizerStream {
                    has_all(&v, &["hook", "data"], "webhook");
                    has_all(&v["hook"], &["target", "id", "event", "filename"], "hook");
                    assert_eq!(v["hook"]["event"], "recognition");
                    has_all(&v["data"], &["camera_id", "filename", "timestamp", "timestamp_local", "results"], "data");
                    assert!(v["data"]["timestamp"].as_str().unwrap().ends_with('Z'));
                    (&v["data"], &v["data"]["results"])
                } else {
                    has_all(
                        &v,
                        &["processing_time", "timestamp", "filename", "camera_id", "results", "usage"],
                        "snapshot",
                    );
                    has_all(&v["usage"], &["calls", "max_calls"], "usage");
                    (&v, &v["results"])
                };
                assert_eq!(data["filename"].as_str().unwrap(), format!("{stem}.jpg"));
                let results = results.as_array().unwrap();
                match read {
                    None => assert!(results.is_empty()),
                    Some(text) => {
                        let r = &results[0];
                        has_all(r, &["box", "plate", "region", "score", "dscore", "candidates", "vehicle"], "result");
                        has_all(&r["box"], &["xmin", "ymin", "xmax", "ymax"], "box");
                        has_all(&r["region"], &["code", "score"], "region");
                        has_all(&r["vehicle"], &["type", "score", "box"], "vehicle");
                        assert_eq!(r["plate"].as_str().unwrap(), text.to_ascii_lowercase(), "lower-case plate");
                        assert_eq!(r["region"]["code"], cap.plate_region.unwrap().code());
                        for s in [&r["score"], &r["dscore"], &r["candidates"][0]["score"]] {
                            assert!((0.0..=1.0).contains(&s.as_f64().unwrap()), "{s}");
                        }
                        if cap.vendor == Vendor::PlateRecognizerStream {
                            has_all(r, &["direction", "source_url", "position_sec"], "stream result");
                        }
                    }
                }
            }
            Vendor::PlainFolder => panic!("a plain folder has no JSON"),
            v => panic!("untested vendor {v:?}"),
        }
    }
    for v in [
        Vendor::OpenAlprV2,
        Vendor::OpenAlprV1,
        Vendor::RekorScoutGroup,
        Vendor::PlateRecognizerSnapshot,
        Vendor::PlateRecognizerStream,
    ] {
        assert!(seen.get(&v).copied().unwrap_or(0) >= 2, "too few {v:?} outputs: {seen:?}");
    }
}

#[test]
fn candidates_hold_ocr_confusions_at_lower_confidence_and_misreads_keep_the_truth_close() {
    let cfg = config(31, 3000);
    let plans: Vec<CapturePlan> = plan(&cfg).collect();
    let misreads: Vec<&CapturePlan> = plans.iter().filter(|p| p.outcome() == PlateOutcome::Misread).take(4).collect();
    assert!(misreads.len() >= 4);
    for p in misreads {
        let cap = render(&cfg, p);
        let (truth, read) = (cap.plate_text.clone().unwrap(), cap.read_text.clone().unwrap());
        assert_ne!(truth, read);
        assert_eq!(truth.len(), read.len());
        let diffs: Vec<(u8, u8)> = truth.bytes().zip(read.bytes()).filter(|(a, b)| a != b).collect();
        assert_eq!(diffs.len(), 1, "one character confused: {truth} vs {read}");
        let confusions = [b"O0", b"B8", b"I1", b"S5", b"Z2", b"D0", b"G6", b"Q0"];
        let (a, b) = diffs[0];
        assert!(confusions.iter().any(|c| (c[0], c[1]) == (a, b) || (c[1], c[0]) == (a, b)), "{truth} vs {read}");
        // The engine's JSON lists the truth among its candidates, below the misread.
        if let Some(json) = cap.files.iter().find(|f| f.role == FileRole::EngineJson) {
            let text = String::from_utf8_lossy(&json.bytes).to_ascii_uppercase();
            let (pt, pr) = (text.find(&truth), text.find(&read));
            assert!(pt.is_some() && pr.unwrap() < pt.unwrap(), "{text}");
        }
    }
    // Ordinary reads: candidates after the first are confusions at lower confidence.
    for cap in generate(&all_vendor_config(4, 6)).filter(|c| c.vendor == Vendor::OpenAlprV2) {
        let json = cap.files.iter().find(|f| f.role == FileRole::EngineJson).unwrap();
        let v: Value = serde_json::from_slice(&json.bytes).unwrap();
        let cands = v["results"][0]["candidates"].as_array().unwrap();
        for w in cands.windows(2) {
            assert!(w[0]["confidence"].as_f64() > w[1]["confidence"].as_f64());
        }
    }
}

#[test]
fn traffic_has_commuters_a_daily_rhythm_no_reads_and_misreads() {
    let cfg = config(77, 3000);
    let plans: Vec<CapturePlan> = plan(&cfg).collect();
    assert_eq!(plans.len(), 3000);
    let end = START + 45 * 86_400_000;
    for w in plans.windows(2) {
        assert!(w[0].time_ms() < w[1].time_ms(), "strictly increasing times");
    }
    assert!(plans[0].time_ms() >= START && plans[2999].time_ms() < end);

    let mut per_vehicle: HashMap<u64, usize> = HashMap::new();
    for p in &plans {
        *per_vehicle.entry(p.vehicle_id()).or_default() += 1;
        assert!((1..=4).contains(&p.person_ids().len()));
    }
    let busiest = per_vehicle.values().max().copied().unwrap();
    let once = per_vehicle.values().filter(|&&n| n == 1).count();
    assert!((30..=120).contains(&busiest), "busiest commuter crossed {busiest} times");
    assert!(once > 1000, "{once} one-off vehicles");

    // Local hour histogram (UTC-6): the 07:00-09:00 rush is far busier than 02:00-04:00.
    let mut hours = [0usize; 24];
    for p in &plans {
        let local = (p.time_ms() + SITE_UTC_OFFSET_MIN as i64 * 60_000).rem_euclid(86_400_000);
        hours[(local / 3_600_000) as usize] += 1;
    }
    let rush = hours[7] + hours[8];
    let night = hours[2] + hours[3];
    assert!(rush > 8 * night.max(1), "rush {rush} vs night {night}: {hours:?}");

    let count = |o: PlateOutcome| plans.iter().filter(|p| p.outcome() == o).count();
    let (read, misread, obscured, none) = (
        count(PlateOutcome::Read),
        count(PlateOutcome::Misread),
        count(PlateOutcome::Obscured),
        count(PlateOutcome::NoPlate),
    );
    assert_eq!(read + misread + obscured + none, 3000);
    assert!((30..=150).contains(&misread), "{misread} misreads");
    assert!((40..=150).contains(&obscured), "{obscured} obscured");
    assert!(none >= 10, "{none} without a plate");
}

#[test]
fn a_commuter_is_the_same_car_and_people_in_a_new_photo() {
    let cfg = config(8, 600);
    let plans: Vec<CapturePlan> = plan(&cfg).collect();
    let mut by_vehicle: HashMap<u64, Vec<&CapturePlan>> = HashMap::new();
    for p in &plans {
        by_vehicle.entry(p.vehicle_id()).or_default().push(p);
    }
    let (_, passes) = by_vehicle
        .iter()
        .filter(|(_, v)| v.iter().filter(|p| p.outcome() == PlateOutcome::Read).count() >= 2)
        .max_by_key(|(id, v)| (v.len(), std::cmp::Reverse(**id)))
        .expect("a repeat crosser");
    let reads: Vec<&&CapturePlan> = passes.iter().filter(|p| p.outcome() == PlateOutcome::Read).take(2).collect();
    let (a, b) = (render(&cfg, reads[0]), render(&cfg, reads[1]));
    assert_eq!(a.vehicle_id, b.vehicle_id);
    assert_eq!(a.plate_text, b.plate_text);
    assert!(a.plate_text.is_some());
    assert_eq!(a.person_ids[0], b.person_ids[0], "same driver");
    let file = |c: &SyntheticCapture, r: FileRole| c.files.iter().find(|f| f.role == r).map(|f| decode(&f.bytes));
    assert_ne!(file(&a, FileRole::Overview), file(&b, FileRole::Overview));
    assert_ne!(file(&a, FileRole::Face), file(&b, FileRole::Face), "a new photo of the same face");
    if let (Some(pa), Some(pb)) = (file(&a, FileRole::PlateCrop), file(&b, FileRole::PlateCrop)) {
        assert_ne!(pa, pb, "a new photo of the same plate");
    }
}

/// Mean absolute difference of two images, over all pixels and channels (0–255).
fn mad(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64
}

/// What a perceptual hash sees: 16×16 block means of luminance.
fn coarse(img: &image::RgbImage) -> Vec<f64> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0.0; 256];
    for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
        let (x, y) = (i % w, i / w);
        let l = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
        out[(y * 16 / h) * 16 + x * 16 / w] += l;
    }
    let n = (w * h / 256) as f64;
    out.iter().map(|s| s / n).collect()
}

#[test]
fn unrelated_overviews_differ_substantially() {
    let overviews: Vec<image::RgbImage> = generate(&config(13, 8))
        .map(|c| decode(&c.files.iter().find(|f| f.role == FileRole::Overview).unwrap().bytes))
        .collect();
    for i in 0..overviews.len() {
        for j in i + 1..overviews.len() {
            let d = mad(&overviews[i], &overviews[j]);
            assert!(d > 25.0, "overviews {i} and {j}: mean abs difference {d:.1}");
            let (ci, cj) = (coarse(&overviews[i]), coarse(&overviews[j]));
            let cd = ci.iter().zip(&cj).map(|(a, b)| (a - b).abs()).sum::<f64>() / 256.0;
            assert!(cd > 15.0, "overviews {i} and {j}: coarse luminance difference {cd:.1}");
        }
    }
}

#[test]
fn plates_stay_in_the_synthetic_space() {
    for cap in generate(&all_vendor_config(3, 12)) {
        for t in cap.plate_text.iter().chain(cap.read_text.iter()) {
            assert!(is_synthetic_plate(t), "{t}");
        }
    }
    assert!(!is_synthetic_plate("ABC1234"));
    assert!(Plate::new("QZK4821", Region::UsTx).is_some());
    assert!(Plate::new("7ABC123", Region::UsCa).is_none());
}

#[test]
fn degenerate_configs_yield_nothing() {
    let mut c = config(1, 10);
    c.lanes.clear();
    assert_eq!(generate(&c).count(), 0);
    let mut c = config(1, 10);
    c.days = 0;
    assert_eq!(generate(&c).count(), 0);
    let mut c = config(1, 1);
    c.site = "../etc passwd".into();
    let cap = generate(&c).next().unwrap();
    assert!(cap.files.iter().all(|f| !f.name.contains('/') && !f.name.contains(' ')), "names are one path component");
    // Over-long labels are cut, not carried into names and Exif comments.
    let mut c = config(1, 1);
    c.site = "s".repeat(10_000);
    c.lanes.iter_mut().for_each(|l| l.lane = "é".repeat(10_000));
    let cap = generate(&c).next().unwrap();
    assert!(cap.files.iter().all(|f| f.name.len() < 200), "names stay short");
}

#[test]
fn vendor_names_round_trip_through_serde() {
    for v in Vendor::ALL {
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        assert_eq!(Vendor::from_name(v.as_str()), Some(v));
    }
}
