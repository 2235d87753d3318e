//! JSON as the ALPR engines emit it, field names verbatim (see `shared/formats/alpr-inputs.md`).
//!
//! Every writer takes one vendor-neutral [`EngineRead`] and returns the bytes the engine would
//! have produced for it, compact (the engines print unformatted JSON), field order as the
//! engines print it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::civil::civil;
use crate::plate::Region;

/// The ALPR engine (or none) behind a lane's input folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Vendor {
    /// OpenALPR alprd, `alpr_results` version 2, `<uuid>.json` beside `<uuid>.jpg`.
    #[serde(rename = "openalpr-v2")]
    OpenAlprV2,
    /// OpenALPR 1.x alprd: the older field set (no `version`, `data_type`, `img_*`,
    /// `regions_of_interest`, `plate_index`, `requested_topn`); `region` is the bare
    /// subdivision (`"tx"`, `"tam"`).
    #[serde(rename = "openalpr-v1")]
    OpenAlprV1,
    /// Rekor Scout `alpr_group`, one per vehicle pass, plate and vehicle crops inline (base64).
    #[serde(rename = "rekor-scout-group")]
    RekorScoutGroup,
    /// Plate Recognizer Snapshot API response (written even when nothing was read).
    #[serde(rename = "platerecognizer-snapshot")]
    PlateRecognizerSnapshot,
    /// Plate Recognizer Stream webhook body (`hook` + `data`).
    #[serde(rename = "platerecognizer-stream")]
    PlateRecognizerStream,
    /// No engine: a plain folder of images.
    #[serde(rename = "plain-folder")]
    PlainFolder,
}

impl Vendor {
    /// All vendors, in declaration order.
    pub const ALL: [Vendor; 6] = [
        Vendor::OpenAlprV2,
        Vendor::OpenAlprV1,
        Vendor::RekorScoutGroup,
        Vendor::PlateRecognizerSnapshot,
        Vendor::PlateRecognizerStream,
        Vendor::PlainFolder,
    ];

    /// The name used in configuration (`"openalpr-v2"`, …), as serde spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::OpenAlprV2 => "openalpr-v2",
            Vendor::OpenAlprV1 => "openalpr-v1",
            Vendor::RekorScoutGroup => "rekor-scout-group",
            Vendor::PlateRecognizerSnapshot => "platerecognizer-snapshot",
            Vendor::PlateRecognizerStream => "platerecognizer-stream",
            Vendor::PlainFolder => "plain-folder",
        }
    }

    /// Parses [`Vendor::as_str`].
    pub fn from_name(name: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The file stem this vendor gives one capture; every file of the capture is named
    /// `<stem>.<suffix>` (see the crate docs for the pairing rule).
    ///
    /// * OpenALPR, plain folder, Plate Recognizer Snapshot: `<site>-cam<camera_id>-<epoch_ms>`
    ///   (alprd's `uuid`).
    /// * Rekor Scout: `<agent_uid>-<camera_id>-<epoch_ms>` (the group's `best_uuid`), with
    ///   `agent_uid` from [`rekor_agent_uid`].
    /// * Plate Recognizer Stream: `camera-<camera_id>_<yy-mm-dd>_<hh-mm-ss.ffffff>`, Stream's
    ///   screenshot name with the folders flattened (UTC). It contains a dot.
    pub fn file_stem(self, site: &str, camera_id: u32, time_ms: i64) -> String {
        match self {
            Vendor::RekorScoutGroup => format!("{}-{}-{}", rekor_agent_uid(site), camera_id, time_ms),
            Vendor::PlateRecognizerStream => {
                let t = civil(time_ms);
                format!(
                    "camera-{}_{:02}-{:02}-{:02}_{:02}-{:02}-{:02}.{:03}000",
                    camera_id,
                    t.year % 100,
                    t.month,
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    t.milli
                )
            }
            _ => format!("{site}-cam{camera_id}-{time_ms}"),
        }
    }

    /// Whether this vendor carries the plate crop inline in its JSON rather than as a file.
    pub fn plate_crop_inline(self) -> bool {
        self == Vendor::RekorScoutGroup
    }

    /// The engine's JSON for one read, or `None` when this engine writes nothing for it (a
    /// plain folder always; OpenALPR, Rekor and Stream when no plate was read: they only emit
    /// on a read; the Snapshot API always answers, with an empty `results`).
    pub fn engine_json(self, read: &EngineRead) -> Option<Vec<u8>> {
        match self {
            Vendor::PlainFolder => None,
            Vendor::OpenAlprV2 => read.plate.as_ref().map(|_| json(&openalpr(read, true))),
            Vendor::OpenAlprV1 => read.plate.as_ref().map(|_| json(&openalpr(read, false))),
            Vendor::RekorScoutGroup => read.plate.as_ref().map(|p| json(&rekor_group(read, p))),
            Vendor::PlateRecognizerSnapshot => Some(json(&pr_snapshot(read))),
            Vendor::PlateRecognizerStream => read.plate.as_ref().map(|_| json(&pr_stream(read))),
        }
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Invariant: the vendor structures hold only strings, integers and finite floats, which
    // serde_json always serialises.
    serde_json::to_vec(v).expect("vendor JSON holds only serialisable values")
}

/// Rekor Scout's `agent_uid` for a site: 32 lowercase alphanumerics derived from the site name
/// (a real agent draws it at install time; ours must be stable across runs).
pub fn rekor_agent_uid(site: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = crate::fnv1a(site.as_bytes());
    (0..32)
        .map(|_| {
            h = crate::mix64(h);
            ALPHABET[(h % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// A point in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Xy {
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
}

/// An axis-aligned box in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelBox {
    /// Left column.
    pub x: i32,
    /// Top row.
    pub y: i32,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
}

/// One OCR candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Plate text, upper case (Plate Recognizer's writer lower-cases it).
    pub plate: String,
    /// Confidence 0–100 (Plate Recognizer's writer divides by 100).
    pub confidence: f64,
    /// Whether the text has the region's layout.
    pub matches_template: bool,
}

/// What the engine read off the plate.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateRead {
    /// Best text, upper case; equals `candidates[0].plate`.
    pub plate: String,
    /// Confidence of the best text, 0–100.
    pub confidence: f64,
    /// Region the engine assigned.
    pub region: Region,
    /// Region confidence, 0–100.
    pub region_confidence: u32,
    /// Candidates, best first.
    pub candidates: Vec<Candidate>,
    /// Plate corners in the overview: top-left, top-right, bottom-right, bottom-left.
    pub corners: [Xy; 4],
    /// Detection score 0–1 (Plate Recognizer `dscore`).
    pub detection_score: f64,
}

/// Vehicle attributes as the engines label them (Rekor Scout vocabulary, plus Plate
/// Recognizer's `type`).
#[derive(Clone, Debug, PartialEq)]
pub struct VehicleAttributes {
    /// Rekor colour label (`"white"`, `"silver-gray"`, …).
    pub color: String,
    /// Make (`"ford"`).
    pub make: String,
    /// Make and model (`"ford_f-150"`).
    pub make_model: String,
    /// Rekor body type (`"truck-standard"`).
    pub body_type: String,
    /// Model-year range (`"2015-2019"`).
    pub year: String,
    /// Plate Recognizer vehicle type (`"Pickup Truck"`).
    pub vehicle_type: String,
    /// Rekor's opaque appearance signature for re-identification (raw bytes; written base64).
    pub signature: Vec<u8>,
}

/// Everything an engine reports about one vehicle pass, vendor-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRead {
    /// Site id (alprd `site_id`, Rekor `web_server_config.agent_label`).
    pub site: String,
    /// Camera number within the site.
    pub camera_id: u32,
    /// Lane label (Rekor `camera_label`).
    pub lane: String,
    /// Capture time, ms since the Unix epoch.
    pub time_ms: i64,
    /// Local time offset of the site in minutes (Stream's `timestamp_local`).
    pub utc_offset_min: i32,
    /// Running number of the read at this camera (Plate Recognizer `usage.calls`).
    pub sequence: u64,
    /// File name of the overview image the JSON refers to.
    pub image_name: String,
    /// Overview width in pixels.
    pub image_width: u32,
    /// Overview height in pixels.
    pub image_height: u32,
    /// The plate read, or `None` when the engine found no readable plate.
    pub plate: Option<PlateRead>,
    /// Vehicle bounding box in the overview.
    pub vehicle_box: PixelBox,
    /// Vehicle attributes.
    pub vehicle: VehicleAttributes,
    /// Plate crop JPEG for engines that inline it (Rekor `best_plate.plate_crop_jpeg`).
    pub plate_crop_jpeg: Option<Vec<u8>>,
    /// Vehicle crop JPEG for engines that inline it (Rekor `vehicle_crop_jpeg`).
    pub vehicle_crop_jpeg: Option<Vec<u8>>,
    /// Engine processing time in ms.
    pub processing_time_ms: f64,
    /// Camera position (Rekor `gps_latitude`).
    pub latitude: f64,
    /// Camera position (Rekor `gps_longitude`).
    pub longitude: f64,
}

/// Rounds for printing: engines print a handful of decimals, not f64 noise.
fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---- OpenALPR ------------------------------------------------------------------------------

#[derive(Serialize)]
struct Roi {
    x: i32,
    y: i32,
    width: i32,
    height: i32,
}

#[derive(Serialize)]
struct AlprCandidate<'a> {
    plate: &'a str,
    confidence: f64,
    matches_template: u8,
}

#[derive(Serialize)]
struct AlprPlate<'a> {
    plate: &'a str,
    confidence: f64,
    matches_template: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    plate_index: Option<u32>,
    region: &'a str,
    region_confidence: u32,
    processing_time_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_topn: Option<u32>,
    coordinates: [Xy; 4],
    candidates: Vec<AlprCandidate<'a>>,
}

#[derive(Serialize)]
struct AlprResults<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_type: Option<&'static str>,
    epoch_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    img_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    img_height: Option<u32>,
    processing_time_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    regions_of_interest: Option<Vec<Roi>>,
    results: Vec<AlprPlate<'a>>,
    uuid: String,
    camera_id: u32,
    site_id: &'a str,
}

/// Requested top-N in our alprd configuration.
const TOPN: u32 = 10;

fn alpr_candidates(p: &PlateRead) -> Vec<AlprCandidate<'_>> {
    p.candidates
        .iter()
        .map(|c| AlprCandidate {
            plate: &c.plate,
            confidence: r3(c.confidence),
            matches_template: c.matches_template as u8,
        })
        .collect()
}

fn openalpr(read: &EngineRead, v2: bool) -> AlprResults<'_> {
    let results = read
        .plate
        .iter()
        .map(|p| AlprPlate {
            plate: &p.plate,
            confidence: r3(p.confidence),
            matches_template: p.candidates.first().is_some_and(|c| c.matches_template) as u8,
            plate_index: v2.then_some(0),
            region: if v2 { p.region.code() } else { p.region.subdivision() },
            region_confidence: p.region_confidence,
            processing_time_ms: r3(read.processing_time_ms * 0.6),
            requested_topn: v2.then_some(TOPN),
            coordinates: p.corners,
            candidates: alpr_candidates(p),
        })
        .collect();
    AlprResults {
        version: v2.then_some(2),
        data_type: v2.then_some("alpr_results"),
        epoch_time: read.time_ms,
        img_width: v2.then_some(read.image_width),
        img_height: v2.then_some(read.image_height),
        processing_time_ms: r3(read.processing_time_ms),
        regions_of_interest: v2
            .then(|| vec![Roi { x: 0, y: 0, width: read.image_width as i32, height: read.image_height as i32 }]),
        results,
        uuid: format!("{}-cam{}-{}", read.site, read.camera_id, read.time_ms),
        camera_id: read.camera_id,
        site_id: &read.site,
    }
}

// ---- Rekor Scout ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Named {
    name: String,
    confidence: f64,
}

#[derive(Serialize)]
struct RekorVehicle {
    color: Vec<Named>,
    make: Vec<Named>,
    make_model: Vec<Named>,
    body_type: Vec<Named>,
    year: Vec<Named>,
    orientation: Vec<Named>,
    missing_plate: Vec<Named>,
    is_vehicle: Vec<Named>,
}

#[derive(Serialize)]
struct PathPoint {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    t: i64,
    f: i64,
}

#[derive(Serialize)]
struct RekorBestPlate<'a> {
    plate: &'a str,
    confidence: f64,
    matches_template: u8,
    plate_index: u32,
    region: &'a str,
    region_confidence: u32,
    processing_time_ms: f64,
    requested_topn: u32,
    coordinates: [Xy; 4],
    plate_crop_jpeg: String,
    vehicle_region: Roi,
    vehicle_detected: bool,
    candidates: Vec<AlprCandidate<'a>>,
}

#[derive(Serialize)]
struct WebServerConfig<'a> {
    camera_label: &'a str,
    agent_label: &'a str,
}

#[derive(Serialize)]
struct RekorGroup<'a> {
    data_type: &'static str,
    version: u32,
    epoch_start: i64,
    epoch_end: i64,
    frame_start: i64,
    frame_end: i64,
    company_id: String,
    agent_uid: String,
    agent_version: &'static str,
    agent_type: &'static str,
    camera_id: u32,
    gps_latitude: f64,
    gps_longitude: f64,
    country: &'static str,
    uuids: Vec<String>,
    vehicle_path: Vec<PathPoint>,
    plate_indexes: Vec<u32>,
    candidates: Vec<AlprCandidate<'a>>,
    vehicle_crop_jpeg: String,
    best_plate: RekorBestPlate<'a>,
    best_confidence: f64,
    best_plate_number: &'a str,
    best_region: &'a str,
    best_region_confidence: u32,
    matches_template: bool,
    plate_path: Vec<PathPoint>,
    best_uuid: String,
    best_uuid_epoch_ms: i64,
    best_image_width: u32,
    best_image_height: u32,
    travel_direction: f64,
    is_parked: bool,
    is_preview: bool,
    vehicle_signature: String,
    vehicle: RekorVehicle,
    web_server_config: WebServerConfig<'a>,
    direction_of_travel_id: u32,
}

/// Frames in a Rekor group (the best one in the middle) and their spacing at 15 fps.
const GROUP_FRAMES: i64 = 5;
const FRAME_MS: i64 = 66;

/// A label list with the truth first and plausible runners-up after it.
fn ranked(first: &str, others: &[&str], top: f64) -> Vec<Named> {
    let mut out = vec![Named { name: first.to_owned(), confidence: r3(top) }];
    let mut rest = 100.0 - top;
    for o in others.iter().filter(|o| **o != first).take(2) {
        rest *= 0.5;
        out.push(Named { name: (*o).to_owned(), confidence: r3(rest) });
    }
    out
}

fn rekor_group<'a>(read: &'a EngineRead, p: &'a PlateRead) -> RekorGroup<'a> {
    let agent_uid = rekor_agent_uid(&read.site);
    let best = read.time_ms;
    let start = best - FRAME_MS * (GROUP_FRAMES / 2);
    let times: Vec<i64> = (0..GROUP_FRAMES).map(|k| start + k * FRAME_MS).collect();
    // Frame numbers count from the agent's start; any monotone function of time will do.
    let frame = |t: i64| t.rem_euclid(1_000_000_000) / FRAME_MS;
    let uuids = times.iter().map(|t| format!("{agent_uid}-{}-{t}", read.camera_id)).collect();
    let vb = read.vehicle_box;
    // The vehicle approaches: it grows and moves down the frame from one frame to the next.
    let path = |bx: PixelBox| -> Vec<PathPoint> {
        times
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let back = (GROUP_FRAMES / 2 - k as i64) as i32;
                let s = 100 - 6 * back;
                PathPoint {
                    x: bx.x + bx.width * (100 - s) / 200,
                    y: bx.y - 12 * back,
                    w: bx.width * s / 100,
                    h: bx.height * s / 100,
                    t,
                    f: frame(t),
                }
            })
            .collect()
    };
    let xs = p.corners.map(|c| c.x);
    let ys = p.corners.map(|c| c.y);
    let plate_box = PixelBox {
        x: *xs.iter().min().unwrap_or(&0),
        y: *ys.iter().min().unwrap_or(&0),
        width: xs.iter().max().unwrap_or(&0) - xs.iter().min().unwrap_or(&0),
        height: ys.iter().max().unwrap_or(&0) - ys.iter().min().unwrap_or(&0),
    };
    let v = &read.vehicle;
    let matches = p.candidates.first().is_some_and(|c| c.matches_template);
    let colours = ["white", "silver-gray", "black", "gold-beige", "blue", "red"];
    RekorGroup {
        data_type: "alpr_group",
        version: 2,
        epoch_start: times[0],
        epoch_end: times[times.len() - 1],
        frame_start: frame(times[0]),
        frame_end: frame(times[times.len() - 1]),
        company_id: {
            // A UUID-shaped id derived from the site, stable across runs.
            let (a, b) =
                (crate::mix64(crate::fnv1a(read.site.as_bytes())), crate::mix64(!crate::fnv1a(read.site.as_bytes())));
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        },
        agent_uid: agent_uid.clone(),
        agent_version: "4.1.1",
        agent_type: "alprd",
        camera_id: read.camera_id,
        gps_latitude: read.latitude,
        gps_longitude: read.longitude,
        country: "us",
        uuids,
        vehicle_path: path(vb),
        plate_indexes: vec![0; GROUP_FRAMES as usize],
        candidates: alpr_candidates(p),
        vehicle_crop_jpeg: read.vehicle_crop_jpeg.as_deref().map(|b| B64.encode(b)).unwrap_or_default(),
        best_plate: RekorBestPlate {
            plate: &p.plate,
            confidence: r3(p.confidence),
            matches_template: matches as u8,
            plate_index: 0,
            region: p.region.code(),
            region_confidence: p.region_confidence,
            processing_time_ms: r3(read.processing_time_ms * 0.6),
            requested_topn: TOPN,
            coordinates: p.corners,
            plate_crop_jpeg: read.plate_crop_jpeg.as_deref().map(|b| B64.encode(b)).unwrap_or_default(),
            vehicle_region: Roi { x: vb.x, y: vb.y, width: vb.width, height: vb.height },
            vehicle_detected: true,
            candidates: alpr_candidates(p),
        },
        best_confidence: r3(p.confidence),
        best_plate_number: &p.plate,
        best_region: p.region.code(),
        best_region_confidence: p.region_confidence,
        matches_template: matches,
        plate_path: path(plate_box),
        best_uuid: format!("{agent_uid}-{}-{best}", read.camera_id),
        best_uuid_epoch_ms: best,
        best_image_width: read.image_width,
        best_image_height: read.image_height,
        // Northbound traffic toward the camera.
        travel_direction: 180.0,
        is_parked: false,
        is_preview: false,
        vehicle_signature: B64.encode(&v.signature),
        vehicle: RekorVehicle {
            color: ranked(&v.color, &colours, 86.4),
            make: ranked(&v.make, &["toyota", "ford", "chevrolet", "nissan"], 71.2),
            make_model: ranked(&v.make_model, &["toyota_camry", "ford_f-150", "nissan_altima"], 48.9),
            body_type: ranked(&v.body_type, &["sedan-standard", "suv-standard", "truck-standard"], 79.5),
            year: ranked(&v.year, &["2010-2014", "2015-2019", "2020-2024"], 55.0),
            orientation: ranked("0", &["45", "315"], 91.0),
            missing_plate: ranked("present", &["missing"], 98.0),
            is_vehicle: ranked("vehicle", &["false_positive"], 99.0),
        },
        web_server_config: WebServerConfig { camera_label: &read.lane, agent_label: &read.site },
        direction_of_travel_id: 1,
    }
}

// ---- Plate Recognizer ----------------------------------------------------------------------

#[derive(Serialize)]
struct PrBox {
    xmin: i32,
    ymin: i32,
    xmax: i32,
    ymax: i32,
}

#[derive(Serialize)]
struct PrRegion {
    code: &'static str,
    score: f64,
}

#[derive(Serialize)]
struct PrCandidate {
    score: f64,
    plate: String,
}

#[derive(Serialize)]
struct PrVehicle<'a> {
    score: f64,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "box")]
    bbox: PrBox,
}

#[derive(Serialize)]
struct PrResult<'a> {
    #[serde(rename = "box")]
    bbox: PrBox,
    plate: String,
    region: PrRegion,
    score: f64,
    candidates: Vec<PrCandidate>,
    dscore: f64,
    vehicle: PrVehicle<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position_sec: Option<f64>,
}

#[derive(Serialize)]
struct PrUsage {
    calls: u64,
    max_calls: u64,
}

#[derive(Serialize)]
struct PrSnapshot<'a> {
    processing_time: f64,
    results: Vec<PrResult<'a>>,
    filename: &'a str,
    version: u32,
    camera_id: String,
    timestamp: String,
    usage: PrUsage,
}

#[derive(Serialize)]
struct PrHook<'a> {
    target: &'static str,
    id: String,
    event: &'static str,
    filename: &'a str,
}

#[derive(Serialize)]
struct PrStreamData<'a> {
    camera_id: String,
    filename: &'a str,
    timestamp: String,
    timestamp_local: String,
    results: Vec<PrResult<'a>>,
}

#[derive(Serialize)]
struct PrStream<'a> {
    hook: PrHook<'a>,
    data: PrStreamData<'a>,
}

fn pr_results(read: &EngineRead, stream: bool) -> Vec<PrResult<'_>> {
    let vb = read.vehicle_box;
    read.plate
        .iter()
        .map(|p| {
            let xs = p.corners.map(|c| c.x);
            let ys = p.corners.map(|c| c.y);
            PrResult {
                bbox: PrBox {
                    xmin: *xs.iter().min().unwrap_or(&0),
                    ymin: *ys.iter().min().unwrap_or(&0),
                    xmax: *xs.iter().max().unwrap_or(&0),
                    ymax: *ys.iter().max().unwrap_or(&0),
                },
                plate: p.plate.to_ascii_lowercase(),
                region: PrRegion { code: p.region.code(), score: r3(p.region_confidence as f64 / 100.0) },
                score: r3(p.confidence / 100.0),
                candidates: p
                    .candidates
                    .iter()
                    .map(|c| PrCandidate { score: r3(c.confidence / 100.0), plate: c.plate.to_ascii_lowercase() })
                    .collect(),
                dscore: r3(p.detection_score),
                vehicle: PrVehicle {
                    score: r3(0.72 + p.detection_score * 0.25),
                    kind: &read.vehicle.vehicle_type,
                    bbox: PrBox { xmin: vb.x, ymin: vb.y, xmax: vb.x + vb.width, ymax: vb.y + vb.height },
                },
                direction: stream.then_some(180),
                source_url: stream.then(|| format!("rtsp://camera-{}.lane.invalid/live", read.camera_id)),
                position_sec: stream.then(|| r3((read.time_ms.rem_euclid(86_400_000)) as f64 / 1000.0)),
            }
        })
        .collect()
}

fn pr_snapshot(read: &EngineRead) -> PrSnapshot<'_> {
    PrSnapshot {
        processing_time: r3(read.processing_time_ms),
        results: pr_results(read, false),
        filename: &read.image_name,
        version: 1,
        camera_id: read.camera_id.to_string(),
        timestamp: civil(read.time_ms).iso_utc_micros(),
        usage: PrUsage { calls: read.sequence + 1, max_calls: 2_500_000 },
    }
}

fn pr_stream(read: &EngineRead) -> PrStream<'_> {
    let local = read.time_ms + read.utc_offset_min as i64 * 60_000;
    PrStream {
        hook: PrHook {
            target: "http://localhost:8001/lane-webhook",
            id: format!("camera-{}", read.camera_id),
            event: "recognition",
            filename: &read.image_name,
        },
        data: PrStreamData {
            camera_id: format!("camera-{}", read.camera_id),
            filename: &read.image_name,
            timestamp: civil(read.time_ms).iso_utc_micros(),
            timestamp_local: civil(local).local_micros(read.utc_offset_min),
            results: pr_results(read, true),
        },
    }
}
