//! Refusals, bounds, normalisation, and never panicking on hostile input.

use custodia_lane::input::{
    InputError, MAX_CANDIDATES, MAX_EMBEDDED_IMAGE_BYTES, MAX_ENGINE_JSON_BYTES, MAX_PLATE_LEN, MAX_READS_PER_OUTPUT,
    Vendor, normalise_plate, parse_engine_output,
};
use proptest::prelude::*;

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/alpr/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn normalise_plate_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("ABC123", Some("ABC123")),
        ("abc123", Some("ABC123")),
        ("AB 12 CDE", Some("AB12CDE")),
        ("B-MW 1234", Some("BMW1234")),
        ("  ", None),
        ("", None),
        ("--..", None),
        ("ÄÖ12", Some("12")),
        ("0123456789ABCDEF", Some("0123456789ABCDEF")),
        ("0123456789ABCDEFG", None),
    ];
    for (raw, want) in cases {
        assert_eq!(normalise_plate(raw).as_deref(), *want, "{raw:?}");
    }
    assert_eq!(normalise_plate(&"A".repeat(10_000)), None);
    assert_eq!(MAX_PLATE_LEN, 16);
}

#[test]
fn not_json_and_not_an_object() {
    assert!(matches!(parse_engine_output(b"{\"results\": [}"), Err(InputError::NotJson { .. })));
    assert!(matches!(parse_engine_output(b""), Err(InputError::NotJson { .. })));
    assert!(matches!(parse_engine_output(b"\xff\xfe"), Err(InputError::NotJson { .. })));
    assert!(matches!(parse_engine_output(b"{} trailing"), Err(InputError::NotJson { .. })));
    assert_eq!(parse_engine_output(b"[1,2]"), Err(InputError::NotAnObject));
    assert_eq!(parse_engine_output(b" \"x\" "), Err(InputError::NotAnObject));
    assert_eq!(parse_engine_output(b"{}"), Err(InputError::UnrecognisedFormat));
    assert_eq!(parse_engine_output(br#"{"results": []}"#), Err(InputError::UnrecognisedFormat));
}

#[test]
fn too_large_is_refused_before_parsing() {
    let big = vec![b' '; MAX_ENGINE_JSON_BYTES + 1];
    assert_eq!(
        parse_engine_output(&big),
        Err(InputError::TooLarge { len: MAX_ENGINE_JSON_BYTES + 1, max: MAX_ENGINE_JSON_BYTES })
    );
}

#[test]
fn unknown_data_type_is_named_but_sanitised() {
    let err = parse_engine_output(br#"{"data_type":"alpr_video\u0007\nXYZ-this-is-a-very-long-data-type-name"}"#)
        .unwrap_err();
    let InputError::UnknownDataType { data_type } = &err else { panic!("{err:?}") };
    assert!(data_type.len() <= 32);
    assert!(data_type.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    assert!(data_type.starts_with("alpr_video"));
}

#[test]
fn missing_results() {
    let err = parse_engine_output(br#"{"data_type":"alpr_results","version":2}"#).unwrap_err();
    assert_eq!(err, InputError::MissingField { field: "results", vendor: Vendor::OpenAlprV2 });
    let err = parse_engine_output(br#"{"data_type":"alpr_results","version":2,"results":null}"#).unwrap_err();
    assert_eq!(err, InputError::MissingField { field: "results", vendor: Vendor::OpenAlprV2 });
}

#[test]
fn too_many_reads() {
    let item = r#"{"plate":"AB1","confidence":90}"#;
    let n = MAX_READS_PER_OUTPUT + 1;
    let json = format!(r#"{{"data_type":"alpr_results","results":[{}]}}"#, vec![item; n].join(","));
    assert_eq!(
        parse_engine_output(json.as_bytes()),
        Err(InputError::TooManyReads { count: n, max: MAX_READS_PER_OUTPUT })
    );
    let ok = format!(r#"{{"data_type":"alpr_results","results":[{}]}}"#, vec![item; n - 1].join(","));
    assert_eq!(parse_engine_output(ok.as_bytes()).unwrap().reads.len(), MAX_READS_PER_OUTPUT);
}

#[test]
fn candidates_are_capped_not_refused() {
    let cands: Vec<String> =
        (0..MAX_CANDIDATES + 20).map(|i| format!(r#"{{"plate":"AB{i}","confidence":50}}"#)).collect();
    let json = format!(
        r#"{{"data_type":"alpr_results","results":[{{"plate":"AB1","confidence":90,"candidates":[{}]}}]}}"#,
        cands.join(",")
    );
    let out = parse_engine_output(json.as_bytes()).unwrap();
    assert_eq!(out.reads[0].candidates.len(), MAX_CANDIDATES);
    assert_eq!(out.reads[0].candidates[0].plate, "AB0");
}

#[test]
fn embedded_image_errors_name_the_field() {
    let json = |crop: &str| {
        format!(r#"{{"data_type":"alpr_group","best_plate_number":"SECRET99","vehicle_crop_jpeg":"{crop}"}}"#)
    };
    // Valid base64 of "hello" is not a JPEG.
    let err = parse_engine_output(json("aGVsbG8=").as_bytes()).unwrap_err();
    assert_eq!(err, InputError::NotJpeg { field: "vehicle_crop_jpeg" });
    let err = parse_engine_output(json("not base64!").as_bytes()).unwrap_err();
    assert_eq!(err, InputError::BadBase64 { field: "vehicle_crop_jpeg" });
    assert!(!err.to_string().contains("SECRET99"));
    // Too large is decided from the base64 length, before decoding.
    let huge = "A".repeat((MAX_EMBEDDED_IMAGE_BYTES / 3 + 2) * 4);
    let err = parse_engine_output(json(&huge).as_bytes()).unwrap_err();
    assert!(matches!(err, InputError::ImageTooLarge { field: "vehicle_crop_jpeg", .. }), "{err:?}");
    // Empty means no image.
    assert!(parse_engine_output(json("").as_bytes()).unwrap().images.is_empty());
}

#[test]
fn base64_with_json_escaped_slashes_and_line_breaks_decodes() {
    // /9j/4A== is FF D8 FF E0; PHP-style encoders write "\/" and MIME ones break lines.
    let json = br#"{"data_type":"alpr_group","vehicle_crop_jpeg":"\/9j\/\r\n4A=="}"#;
    let out = parse_engine_output(json).unwrap();
    assert_eq!(out.images[0].jpeg, [0xFF, 0xD8, 0xFF, 0xE0]);
}

#[test]
fn numbers_as_strings_and_ids_as_numbers_are_accepted() {
    let json = br#"{"data_type":"alpr_results","camera_id":17.0,"epoch_time":"1700000000000",
        "results":[{"plate":"ab1","confidence":"88.5","region_confidence":null,"region":7,
                    "coordinates":[{"x":1.6,"y":2},{"x":"10","y":20}], "candidates": "none"}]}"#;
    let out = parse_engine_output(json).unwrap();
    assert_eq!(out.camera_id.as_deref(), Some("17"));
    assert_eq!(out.captured_at_ms, Some(1_700_000_000_000));
    let r = &out.reads[0];
    assert!((r.confidence - 0.885).abs() < 1e-6);
    assert_eq!(r.region, None);
    assert!(r.candidates.is_empty());
    assert_eq!(r.bbox.unwrap().x, 2);
}

#[test]
fn confidences_are_clamped() {
    let json = br#"{"data_type":"alpr_results","results":[{"plate":"AB1","confidence":250,"region":"x","region_confidence":-4}]}"#;
    let r = &parse_engine_output(json).unwrap().reads[0];
    assert_eq!(r.confidence, 1.0);
    assert_eq!(r.region_confidence, Some(0.0));
}

#[test]
fn error_messages_never_contain_plate_text() {
    // Every way to fail, each with a plate in the payload.
    let payloads: Vec<Vec<u8>> = vec![
        br#"{"data_type":"alpr_results","results":[{"plate":"QZ9XW1"}], "x": }"#.to_vec(),
        br#"{"data_type":"alpr_results","results":[{"plate":"QZ9XW1","plate":"QZ9XW1"}]}"#.to_vec(),
        br#"{"data_type":"QZ9XW1"}"#.to_vec(),
        br#"{"data_type":"alpr_group","best_plate_number":"QZ9XW1","overview_jpeg":"QZ9XW1"}"#.to_vec(),
        br#"{"data_type":"alpr_alert","plate_number":"QZ9XW1"}"#.to_vec(),
    ];
    for p in payloads {
        let err = parse_engine_output(&p).unwrap_err();
        let shown = format!("{err} {err:?}");
        // data_type is echoed (sanitised) by design; everything else must not be.
        if !matches!(err, InputError::UnknownDataType { .. }) {
            assert!(!shown.contains("QZ9XW1"), "{shown}");
        }
    }
}

#[test]
fn real_payload_truncations_never_panic() {
    for name in ["rekor_group_mibs510.json", "pr_stream_webhook.json", "openalpr_v2_alprd.json"] {
        let bytes = load(name);
        let step = (bytes.len() / 400).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = parse_engine_output(&bytes[..cut]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_engine_output(&bytes);
    }

    #[test]
    fn mutated_real_payloads_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let name = ["pr_snapshot.json", "openalpr_v2_alprd.json", "rekor_heartbeat.json", "pr_stream_webhook.json"][which];
        let mut bytes = load(name);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(out) = parse_engine_output(&bytes) {
            prop_assert!(out.reads.len() <= MAX_READS_PER_OUTPUT);
            for r in &out.reads {
                prop_assert!((0.0..=1.0).contains(&r.confidence));
                prop_assert!(!r.plate.is_empty() && r.plate.len() <= MAX_PLATE_LEN);
                prop_assert!(r.plate.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn normalised_plates_are_idempotent_and_clean(s in "\\PC{0,40}") {
        if let Some(p) = normalise_plate(&s) {
            prop_assert_eq!(normalise_plate(&p), Some(p.clone()));
            prop_assert!(p.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
            prop_assert!(p.len() <= MAX_PLATE_LEN);
        }
    }
}
