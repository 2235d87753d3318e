//! Every supported engine format, from the files in `testdata/alpr/` (see its README for where
//! each came from). Expected values are read off the files by hand, not produced by the parser.

use custodia_lane::input::{BoundingBox, EngineOutput, ImageRole, InputError, MAX_ID_LEN, Vendor, parse_engine_output};
use sha2::{Digest, Sha256};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/alpr/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> EngineOutput {
    let bytes = load(name);
    let out = parse_engine_output(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    assert_eq!(out.raw_sha256, digest, "{name}: hash of the raw bytes");
    out
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn openalpr_v2_library() {
    let out = parse("openalpr_v2_library.json");
    assert_eq!(out.vendor, Vendor::OpenAlprV2);
    assert!(!out.heartbeat);
    assert_eq!(out.captured_at_ms, Some(1_700_000_000_123));
    assert_eq!(out.image_ref, None);
    assert_eq!(out.reads.len(), 1);
    let r = &out.reads[0];
    assert_eq!(r.plate, "KT4R7WX");
    assert!(close(r.confidence, 0.912_842_1));
    assert_eq!(r.region.as_deref(), Some("us-tx"));
    assert!(close(r.region_confidence.unwrap(), 0.87));
    // corners (512,401) (641,398) (643,446) (514,449)
    assert_eq!(r.bbox, Some(BoundingBox { x: 512, y: 398, width: 131, height: 51 }));
    let c: Vec<&str> = r.candidates.iter().map(|c| c.plate.as_str()).collect();
    assert_eq!(c, ["KT4R7WX", "KT4R7W", "KI4R7WX", "KT4R7VX", "K14R7WX"]);
    assert!(close(r.candidates[1].confidence.unwrap(), 0.821_011_2));
    assert_eq!(r.vehicle, None);
    assert_eq!(r.travel_direction_deg, None);
    assert!(out.images.is_empty());
}

#[test]
fn openalpr_v2_alprd_with_uuid_and_an_empty_plate() {
    let out = parse("openalpr_v2_alprd.json");
    assert_eq!(out.vendor, Vendor::OpenAlprV2);
    assert_eq!(out.image_ref.as_deref(), Some("lane-north-cam2-1700000461875"));
    assert_eq!(out.camera_id.as_deref(), Some("2"));
    assert_eq!(out.site_id.as_deref(), Some("lane-north"));
    assert_eq!(out.captured_at_ms, Some(1_700_000_461_875));
    // The second result has an empty plate: it is a detection without a reading, left out.
    assert_eq!(out.reads.len(), 1);
    assert_eq!(out.reads[0].plate, "8FVN214");
    assert_eq!(out.reads[0].region.as_deref(), Some("us-ca"));
}

#[test]
fn openalpr_v1_missing_fields_and_epoch_in_seconds() {
    let out = parse("openalpr_v1_alprd.json");
    assert_eq!(out.vendor, Vendor::OpenAlprV1);
    assert_eq!(out.captured_at_ms, Some(1_402_161_050_000));
    assert_eq!(out.image_ref.as_deref(), Some("3c1f9d2e-55a0-4b8e-9f0e-1b2a3c4d5e6f"));
    assert_eq!(out.site_id.as_deref(), Some("gate-east"));
    let r = &out.reads[0];
    assert_eq!(r.plate, "RX52KLM", "space removed");
    assert!(close(r.confidence, 0.7625));
    // Empty region string and region_confidence 0 mean "no region".
    assert_eq!(r.region, None);
    assert_eq!(r.region_confidence, None);
    assert_eq!(r.bbox, Some(BoundingBox { x: 219, y: 327, width: 187, height: 102 }));
}

#[test]
fn rekor_results_with_plate_crop_and_vehicle() {
    let out = parse("rekor_results.json");
    assert_eq!(out.vendor, Vendor::RekorScoutResults);
    assert_eq!(out.site_id.as_deref(), Some("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"), "agent_uid stands in");
    assert_eq!(out.camera_id.as_deref(), Some("4321"));
    assert_eq!(out.image_ref.as_deref(), Some("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ-4321-1700000123456"));
    let r = &out.reads[0];
    assert_eq!(r.plate, "MN58XQT");
    assert_eq!(r.region.as_deref(), Some("us-ma"), "lower-cased");
    let v = r.vehicle.as_ref().unwrap();
    assert_eq!(v.color.as_deref(), Some("blue"));
    assert_eq!(v.make.as_deref(), Some("ford"));
    assert_eq!(v.make_model.as_deref(), Some("ford_focus"));
    assert_eq!(v.body_type.as_deref(), Some("sedan-compact"));
    assert_eq!(v.year.as_deref(), Some("2015-2019"));
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].role, ImageRole::PlateCrop);
    assert!(out.images[0].jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(out.images[0].jpeg.ends_with(&[0xFF, 0xD9]));
}

#[test]
fn rekor_doc_placeholder_instead_of_base64_is_refused_by_field() {
    // Rekor's own documentation shows "... base 64 image data ..." in place of the JPEG.
    let err = parse_engine_output(&load("rekor_results_doc_placeholder.json")).unwrap_err();
    assert_eq!(err, InputError::BadBase64 { field: "results[].plate_crop_jpeg" });
    assert!(!err.to_string().contains("HJ7731K"));
}

#[test]
fn rekor_group_real_payload() {
    let out = parse("rekor_group_mibs510.json");
    assert_eq!(out.vendor, Vendor::RekorScoutGroup);
    assert_eq!(out.image_ref.as_deref(), Some("63PHH1MHEXF9U245NFI66RGPUXTQEREKAJI7K44Y-177622-1627675927855"));
    assert_eq!(out.camera_id.as_deref(), Some("1000"));
    assert_eq!(out.site_id.as_deref(), Some("TESTTESTTESTTESTTESTTESTTESTTESTTESTTEST"));
    assert_eq!(out.captured_at_ms, Some(1_627_675_927_855), "best_uuid_epoch_ms");
    assert_eq!(out.reads.len(), 1);
    let r = &out.reads[0];
    assert_eq!(r.plate, "19462SH");
    assert!(close(r.confidence, 0.932_546_5));
    assert_eq!(r.region.as_deref(), Some("us-ma"));
    assert!(close(r.region_confidence.unwrap(), 0.840_666_6));
    assert_eq!(r.candidates.len(), 1);
    assert!(close(r.travel_direction_deg.unwrap(), 296.557_92));
    assert_eq!(r.bbox, Some(BoundingBox { x: 601, y: 284, width: 58, height: 41 }));
    let v = r.vehicle.as_ref().unwrap();
    assert_eq!(v.color.as_deref(), Some("white"));
    assert_eq!(v.make.as_deref(), Some("bmw"));
    assert_eq!(v.make_model.as_deref(), Some("bmw_x3"));
    assert_eq!(v.body_type.as_deref(), Some("suv-crossover"));
    assert_eq!(v.year.as_deref(), Some("2010-2014"));
    let roles: Vec<ImageRole> = out.images.iter().map(|i| i.role).collect();
    assert_eq!(roles, [ImageRole::PlateCrop, ImageRole::VehicleCrop, ImageRole::Overview]);
    for img in &out.images {
        assert!(img.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
        assert!(img.jpeg.ends_with(&[0xFF, 0xD9]), "{:?} decoded whole", img.role);
    }
    // Base64 length / 4 * 3 minus padding: 11624 and 43396 base64 characters.
    assert_eq!(
        out.images[1].jpeg.len(),
        11624 / 4 * 3 - padding(&load("rekor_group_mibs510.json"), "vehicle_crop_jpeg")
    );
}

fn padding(json: &[u8], field: &str) -> usize {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    v[field].as_str().unwrap().bytes().rev().take_while(|&b| b == b'=').count()
}

#[test]
fn rekor_alert_reads_its_embedded_group() {
    let out = parse("rekor_alert_mibs510.json");
    assert_eq!(out.vendor, Vendor::RekorScoutGroup);
    assert_eq!(out.reads.len(), 1);
    assert_eq!(out.reads[0].plate, "2BH375");
    assert_eq!(out.images.len(), 3);
    assert_eq!(out.image_ref.as_deref(), Some("63PHH1MHEXF9U245NFI66RGPUXTQEREKAJI7K44Y-177622-1627675927855"));
}

#[test]
fn alert_without_group_names_the_field() {
    let err = parse_engine_output(br#"{"data_type":"alpr_alert","plate_number":"SECRET1"}"#).unwrap_err();
    assert_eq!(err, InputError::MissingField { field: "group", vendor: Vendor::RekorScoutGroup });
    assert!(!err.to_string().contains("SECRET1"));
}

#[test]
fn heartbeat_is_not_an_error() {
    let out = parse("rekor_heartbeat.json");
    assert!(out.heartbeat);
    assert!(out.reads.is_empty());
    assert_eq!(out.captured_at_ms, Some(1_700_000_600_000));
    assert_eq!(out.site_id.as_deref(), Some("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    // The older name.
    let old = parse_engine_output(br#"{"data_type":"heartbeat","version":1}"#).unwrap();
    assert!(old.heartbeat);
}

#[test]
fn plate_recognizer_snapshot_iso_utc() {
    let out = parse("pr_snapshot.json");
    assert_eq!(out.vendor, Vendor::PlateRecognizerSnapshot);
    assert_eq!(out.image_ref.as_deref(), Some("0543_Kd3fH_car.jpg"));
    assert_eq!(out.camera_id, None, "null camera_id");
    // 2019-10-30T08:35:24Z is 1572424524 s.
    assert_eq!(out.captured_at_ms, Some(1_572_424_524_797));
    let r = &out.reads[0];
    assert_eq!(r.plate, "LK19XUR", "lower case raised");
    assert!(close(r.confidence, 0.902));
    assert_eq!(r.region.as_deref(), Some("gb"));
    assert!(close(r.region_confidence.unwrap(), 0.941));
    assert_eq!(r.bbox, Some(BoundingBox { x: 152, y: 470, width: 129, height: 99 }));
    assert_eq!(r.candidates[1].plate, "LK19XVR");
    assert_eq!(r.vehicle.as_ref().unwrap().body_type.as_deref(), Some("Sedan"));
}

#[test]
fn plate_recognizer_snapshot_naive_time_is_utc_and_mmc_is_read() {
    let out = parse("pr_snapshot_naive_mmc.json");
    assert_eq!(out.vendor, Vendor::PlateRecognizerSnapshot);
    // 2021-03-05 10:11:12 UTC is 1614939072 s.
    assert_eq!(out.captured_at_ms, Some(1_614_939_072_123));
    assert_eq!(out.camera_id.as_deref(), Some("lane-3"));
    assert_eq!(out.reads.len(), 1, "the empty plate is left out");
    let r = &out.reads[0];
    assert_eq!(r.plate, "WDB4417");
    let v = r.vehicle.as_ref().unwrap();
    assert_eq!(v.make.as_deref(), Some("toyota"));
    assert_eq!(v.make_model.as_deref(), Some("toyota_rav4"));
    assert_eq!(v.color.as_deref(), Some("silver"));
    assert_eq!(v.body_type.as_deref(), Some("SUV"));
}

#[test]
fn plate_recognizer_stream_webhook() {
    let out = parse("pr_stream_webhook.json");
    assert_eq!(out.vendor, Vendor::PlateRecognizerStream);
    assert_eq!(out.image_ref.as_deref(), Some("lane-2-cam_screenshots/23-11-14/22-14-21.044109.jpg"));
    assert_eq!(out.camera_id.as_deref(), Some("lane-2-cam"));
    // 2023-11-14T22:14:21Z is 1700000061 s.
    assert_eq!(out.captured_at_ms, Some(1_700_000_061_044));
    let r = &out.reads[0];
    assert_eq!(r.plate, "GX71KPO");
    assert_eq!(r.candidates.len(), 3);
    assert_eq!(r.candidates[0].confidence, None, "stream candidates carry no score");
    assert_eq!(r.travel_direction_deg, Some(84.0));
}

#[test]
fn stream_falls_back_to_local_time_with_offset() {
    let json = br#"{"hook":{"id":"cam-9","event":"recognition"},
        "data":{"timestamp_local":"2023-11-14 23:14:21.044109+01:00","results":[]}}"#;
    let out = parse_engine_output(json).unwrap();
    assert_eq!(out.captured_at_ms, Some(1_700_000_061_044));
    assert_eq!(out.camera_id.as_deref(), Some("cam-9"));
    let err = parse_engine_output(br#"{"hook":{"id":"x"}}"#).unwrap_err();
    assert_eq!(err, InputError::MissingField { field: "data", vendor: Vendor::PlateRecognizerStream });
}

#[test]
fn vendor_names_are_stable() {
    let all = [
        (Vendor::OpenAlprV1, "openalpr-v1"),
        (Vendor::OpenAlprV2, "openalpr-v2"),
        (Vendor::RekorScoutResults, "rekor-scout-results"),
        (Vendor::RekorScoutGroup, "rekor-scout-group"),
        (Vendor::PlateRecognizerSnapshot, "platerecognizer-snapshot"),
        (Vendor::PlateRecognizerStream, "platerecognizer-stream"),
    ];
    for (v, s) in all {
        assert_eq!(v.as_str(), s);
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{s}\""));
    }
}

#[test]
fn over_long_ids_are_refused() {
    let long = "a".repeat(MAX_ID_LEN + 1);
    let json = format!(r#"{{"data_type":"alpr_results","version":2,"uuid":"{long}","results":[]}}"#);
    let err = parse_engine_output(json.as_bytes()).unwrap_err();
    assert_eq!(err, InputError::FieldTooLong { field: "uuid", max: MAX_ID_LEN });
}
