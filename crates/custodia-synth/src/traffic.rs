//! The traffic model: who crosses when, in which lane, and what each lane's folder receives.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::civil::civil;
use crate::exif::{CameraMeta, jpeg_with_camera_metadata};
use crate::face::{self, FACE_QUALITY, Person};
use crate::mix64;
use crate::plate::{self, PLATE_QUALITY, Plate};
use crate::raster::shade;
use crate::scene::{self, Body, OVERVIEW_H, OVERVIEW_QUALITY, OVERVIEW_W, Silhouette, Vehicle};
use crate::vendor::{Candidate, EngineRead, PixelBox, PlateRead, VehicleAttributes, Vendor, Xy};

/// The site's fixed offset from UTC in minutes (US Central Standard Time, like the Anzalduas
/// port). It shapes the daily traffic curve and the lighting; all `time_ms` values are UTC.
pub const SITE_UTC_OFFSET_MIN: i32 = -360;
/// The cameras' GPS position written into Exif and Rekor groups: roughly the Anzalduas
/// International Bridge port of entry, a public place.
pub const SITE_GPS: (f64, f64) = (26.1283, -98.3345);
/// Longest simulated period; longer `days` are clamped. It bounds the per-hour rate table
/// (24 × 3660 entries).
pub const MAX_DAYS: u32 = 3660;

/// One lane: its label, its camera number and the engine feeding its folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneSpec {
    /// Lane label, e.g. `"lane-1"`.
    pub lane: String,
    /// Camera number (alprd `camera_id`).
    pub camera_id: u32,
    /// Engine feeding the lane's input folder.
    pub vendor: Vendor,
}

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficConfig {
    /// Seed: the same config yields byte-identical captures.
    pub seed: u64,
    /// Site id, used in file names and engine JSON. Characters outside `[A-Za-z0-9_-]` are
    /// replaced by `_` so names stay single path components, and it is cut to
    /// [`MAX_LABEL_LEN`] characters.
    pub site: String,
    /// The lanes; captures are spread evenly over them. None: no captures.
    pub lanes: Vec<LaneSpec>,
    /// Start of the simulated period, ms since the Unix epoch.
    pub start_ms: i64,
    /// Length of the period in days (at most [`MAX_DAYS`]; 0: no captures).
    pub days: u32,
    /// Number of captures over the whole period.
    pub captures: u32,
}

impl TrafficConfig {
    /// The `custodia demo` default: site `anzalduas`, four lanes (OpenALPR v2, Rekor Scout
    /// group, Plate Recognizer Snapshot, Plate Recognizer Stream), 45 days, 3000 captures.
    pub fn demo(seed: u64, start_ms: i64) -> TrafficConfig {
        let lanes = [
            Vendor::OpenAlprV2,
            Vendor::RekorScoutGroup,
            Vendor::PlateRecognizerSnapshot,
            Vendor::PlateRecognizerStream,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, vendor)| LaneSpec { lane: format!("lane-{}", i + 1), camera_id: 101 + i as u32, vendor })
        .collect();
        TrafficConfig { seed, site: "anzalduas".into(), lanes, start_ms, days: 45, captures: 3000 }
    }
}

/// What a file is, so the caller (and the tests) need not parse names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FileRole {
    /// The lane overview (`<stem>.jpg`).
    Overview,
    /// The plate crop (`<stem>.plate.jpg`).
    PlateCrop,
    /// An occupant's face (`<stem>.face<k>.jpg`, person `person_ids[k]`).
    Face,
    /// The engine's JSON (`<stem>.json`).
    EngineJson,
}

/// One file a lane's input folder receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticFile {
    /// File name (a single path component).
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
    /// What the file is.
    pub role: FileRole,
}

/// One vehicle pass at one lane, with the files it produced and the ground truth behind them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticCapture {
    /// Position in the run, from 0.
    pub index: u64,
    /// Lane label.
    pub lane: String,
    /// Camera number.
    pub camera_id: u32,
    /// Engine of the lane.
    pub vendor: Vendor,
    /// Capture time, ms since the Unix epoch (strictly increasing over a run).
    pub time_ms: i64,
    /// Vehicle identity: equal ids are the same vehicle (same plate, look and regular occupants).
    pub vehicle_id: u64,
    /// The plate visible in the images (ground truth), `None` when none is (motorcycles show no
    /// front plate).
    pub plate_text: Option<String>,
    /// Region of the visible plate.
    pub plate_region: Option<plate::Region>,
    /// What the engine reported: equal to `plate_text` normally, different on a misread, `None`
    /// when the plate was obscured or absent.
    pub read_text: Option<String>,
    /// Occupants, driver first, then front passenger, then back seats. Equal ids are the same
    /// person (same face).
    pub person_ids: Vec<u64>,
    /// Files in the order to write them: images first, engine JSON last, so a folder watcher
    /// that keys on the JSON finds its images already there.
    pub files: Vec<SyntheticFile>,
}

/// What the engine makes of the plate in one capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PlateOutcome {
    /// Read correctly.
    Read,
    /// Read wrongly: one character confused (the truth is usually the second candidate).
    Misread,
    /// A plate is there but mud hides it: no read.
    Obscured,
    /// No plate in view (a motorcycle shows none from the front): no read.
    NoPlate,
}

/// The cheap, sequential half of generation: when, where and who. Render it with [`render`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturePlan {
    index: u64,
    lane_index: usize,
    time_ms: i64,
    vehicle_id: u64,
    person_ids: Vec<u64>,
    outcome: PlateOutcome,
}

impl CapturePlan {
    /// Position in the run.
    pub fn index(&self) -> u64 {
        self.index
    }
    /// Index into `TrafficConfig::lanes`.
    pub fn lane_index(&self) -> usize {
        self.lane_index
    }
    /// Capture time.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }
    /// Vehicle identity.
    pub fn vehicle_id(&self) -> u64 {
        self.vehicle_id
    }
    /// Occupants, driver first.
    pub fn person_ids(&self) -> &[u64] {
        &self.person_ids
    }
    /// What the engine will make of the plate.
    pub fn outcome(&self) -> PlateOutcome {
        self.outcome
    }
}

/// Relative traffic per local hour: quiet nights, a morning and an evening rush.
const HOURLY: [f64; 24] = [
    0.25, 0.15, 0.1, 0.1, 0.2, 0.5, 1.2, 2.4, 2.6, 1.9, 1.5, 1.4, 1.5, 1.5, 1.6, 1.9, 2.4, 2.6, 2.1, 1.6, 1.2, 0.9,
    0.6, 0.4,
];
/// Relative traffic per weekday, Monday first: shoppers fill Saturdays.
const WEEKDAY: [f64; 7] = [1.0, 0.95, 0.95, 1.0, 1.15, 1.3, 0.85];

/// Share of passes by commuters (a small pool crossing again and again), by occasional visitors
/// (a larger pool, a few passes each); the rest are one-off vehicles.
const COMMUTER_SHARE: f64 = 0.40;
const OCCASIONAL_SHARE: f64 = 0.20;
/// Zipf exponent over commuters: the busiest cross about twice a day.
const COMMUTER_ZIPF: f64 = 0.7;
const OCCASIONAL_BASE: u64 = 1_000_000;
/// Pool sizes are capped, which keeps vehicle-id ranges apart and plate serials dense.
const MAX_COMMUTERS: u64 = 5_000;
const MAX_OCCASIONAL: u64 = 50_000;
const ONE_OFF_BASE: u64 = 10_000_000;
/// Guests (people riding along once) get ids above this, never clashing with regular occupants.
const GUEST_BASE: u64 = 1 << 60;

/// Per-capture probabilities of a plate the engine cannot read, and of a misread.
const P_OBSCURED: f64 = 0.03;
const P_MISREAD: f64 = 0.03;
/// Probability that a front passenger's face is captured too.
const P_PASSENGER_FACE: f64 = 0.8;

/// Domain tags for derived seeds.
const TAG_PLAN: u64 = 0x504c_414e;
const TAG_CAPTURE: u64 = 0x4341_5054;
const TAG_VEHICLE: u64 = 0x5645_4849;
const TAG_PERSON: u64 = 0x5045_5253;
const TAG_OCCUPANTS: u64 = 0x4f43_4355;

/// The vehicle behind `vehicle_id`. Its plate serial is the id's rank among all ids a run can
/// use (commuters, then occasional visitors, then one-off vehicles by capture index), so no two
/// vehicles of a run share a plate as long as that rank stays below 260,000, i.e. for runs of
/// up to 205,000 captures.
fn vehicle(seed: u64, vehicle_id: u64) -> Vehicle {
    let rank = if vehicle_id >= ONE_OFF_BASE {
        MAX_COMMUTERS + MAX_OCCASIONAL + (vehicle_id - ONE_OFF_BASE)
    } else if vehicle_id >= OCCASIONAL_BASE {
        MAX_COMMUTERS + (vehicle_id - OCCASIONAL_BASE)
    } else {
        vehicle_id.saturating_sub(1)
    };
    Vehicle::new(derive(seed, TAG_VEHICLE, vehicle_id), rank)
}

pub(crate) fn derive(seed: u64, tag: u64, id: u64) -> u64 {
    mix64(mix64(seed ^ tag.rotate_left(32)) ^ id)
}

/// Longest site id or lane label carried into names, captions and comments; longer ones are cut.
pub const MAX_LABEL_LEN: usize = 64;

fn sanitize(site: &str) -> String {
    let s: String = site
        .chars()
        .take(MAX_LABEL_LEN)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() { "site".into() } else { s }
}

/// The sequential planner: an iterator of [`CapturePlan`]s.
pub struct Planner {
    config: TrafficConfig,
    rng: ChaCha8Rng,
    next: u64,
    last_time: i64,
    /// Cumulative traffic weight per hour slot from `start_ms`.
    slots: Vec<f64>,
    /// Cumulative Zipf weights over commuters.
    commuters: Vec<f64>,
    occasional: u64,
}

/// Plans the captures of `config` (cheap: no pixels). Use with [`render`] to spread rendering
/// over threads; [`generate`] does both in one thread.
pub fn plan(config: &TrafficConfig) -> Planner {
    let mut config = config.clone();
    config.site = sanitize(&config.site);
    let days = config.days.min(MAX_DAYS) as usize;
    let mut slots = Vec::with_capacity(days * 24);
    let mut acc = 0.0;
    for s in 0..days * 24 {
        let mid = config.start_ms + s as i64 * 3_600_000 + 1_800_000;
        let local = civil(mid + SITE_UTC_OFFSET_MIN as i64 * 60_000);
        acc += HOURLY[local.hour as usize] * WEEKDAY[local.weekday as usize];
        slots.push(acc);
    }
    let n = config.captures as u64;
    let commuter_count = (n / 30).clamp(3, MAX_COMMUTERS) as usize;
    let mut commuters = Vec::with_capacity(commuter_count);
    let mut acc = 0.0;
    for k in 0..commuter_count {
        acc += 1.0 / ((k + 1) as f64).powf(COMMUTER_ZIPF);
        commuters.push(acc);
    }
    Planner {
        rng: ChaCha8Rng::seed_from_u64(derive(config.seed, TAG_PLAN, 0)),
        next: 0,
        last_time: i64::MIN,
        slots,
        commuters,
        occasional: (n / 6).clamp(3, MAX_OCCASIONAL),
        config,
    }
}

impl Planner {
    fn pick_vehicle(&mut self, index: u64) -> (u64, bool) {
        let u: f64 = self.rng.r#gen();
        if u < COMMUTER_SHARE {
            let total = *self.commuters.last().unwrap_or(&1.0);
            let x = self.rng.gen_range(0.0..total);
            let k = self.commuters.partition_point(|&c| c <= x);
            (k as u64 + 1, true)
        } else if u < COMMUTER_SHARE + OCCASIONAL_SHARE {
            (OCCASIONAL_BASE + self.rng.gen_range(0..self.occasional), false)
        } else {
            (ONE_OFF_BASE + index, false)
        }
    }

    /// The occupants of this pass.
    fn occupants(&mut self, vehicle_id: u64, motorcycle: bool, commuter: bool, index: u64) -> Vec<u64> {
        let mut r = ChaCha8Rng::seed_from_u64(derive(self.config.seed, TAG_OCCUPANTS, vehicle_id));
        let regular =
            if motorcycle { 1 + r.gen_bool(0.1) as u64 } else { [1, 1, 1, 1, 1, 2, 2, 2, 3, 4][r.gen_range(0..10)] };
        let regulars: Vec<u64> = (0..regular).map(|seat| vehicle_id * 8 + seat).collect();
        if !commuter || motorcycle {
            return regulars;
        }
        // Commuters usually travel with their usual people, sometimes alone, sometimes with a
        // guest who rides along once.
        let u: f64 = self.rng.r#gen();
        if u < 0.75 {
            regulars
        } else if u < 0.9 {
            regulars[..1].to_vec()
        } else {
            let guests = self.rng.gen_range(1..=2u64);
            let mut v = regulars[..1].to_vec();
            v.extend((0..guests).map(|k| GUEST_BASE + index * 4 + k));
            v
        }
    }

    /// Draws the capture time for `index` by inverting the cumulative rate curve at a
    /// stratified quantile: times come out in order and follow the daily rhythm.
    fn time_for(&mut self, index: u64) -> i64 {
        let n = self.config.captures as f64;
        let total = *self.slots.last().unwrap_or(&1.0);
        let q = (index as f64 + self.rng.gen_range(0.0..1.0)) / n * total;
        let s = self.slots.partition_point(|&c| c <= q).min(self.slots.len() - 1);
        let lo = if s == 0 { 0.0 } else { self.slots[s - 1] };
        let frac = ((q - lo) / (self.slots[s] - lo)).clamp(0.0, 0.999_999);
        let t = self.config.start_ms + s as i64 * 3_600_000 + (frac * 3_600_000.0) as i64;
        // Strictly increasing, so no two captures ever share a file stem.
        let t = t.max(self.last_time.saturating_add(1));
        self.last_time = t;
        t
    }
}

impl Iterator for Planner {
    type Item = CapturePlan;

    fn next(&mut self) -> Option<CapturePlan> {
        if self.next >= self.config.captures as u64 || self.config.lanes.is_empty() || self.slots.is_empty() {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let time_ms = self.time_for(index);
        let lane_index = self.rng.gen_range(0..self.config.lanes.len());
        let (vehicle_id, commuter) = self.pick_vehicle(index);
        let vehicle = vehicle(self.config.seed, vehicle_id);
        let motorcycle = vehicle.body == Body::Motorcycle;
        let person_ids = self.occupants(vehicle_id, motorcycle, commuter, index);
        // A misread needs a character an engine can confuse; plates without one are read right.
        let confusable = vehicle.plate.text().bytes().skip(2).any(|c| plate::confusable(c).next().is_some());
        let outcome = if motorcycle {
            PlateOutcome::NoPlate
        } else {
            let u: f64 = self.rng.r#gen();
            if u < P_OBSCURED {
                PlateOutcome::Obscured
            } else if u < P_OBSCURED + P_MISREAD && confusable {
                PlateOutcome::Misread
            } else {
                PlateOutcome::Read
            }
        };
        Some(CapturePlan { index, lane_index, time_ms, vehicle_id, person_ids, outcome })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.config.lanes.is_empty() || self.slots.is_empty() {
            0
        } else {
            (self.config.captures as u64 - self.next) as usize
        };
        (left, Some(left))
    }
}

impl ExactSizeIterator for Planner {}

/// Generates the captures of `config`, in time order. Deterministic: the same config gives
/// byte-identical captures.
pub fn generate(config: &TrafficConfig) -> Traffic {
    let planner = plan(config);
    Traffic { config: planner.config.clone(), planner }
}

/// The iterator returned by [`generate`].
pub struct Traffic {
    config: TrafficConfig,
    planner: Planner,
}

impl Iterator for Traffic {
    type Item = SyntheticCapture;
    fn next(&mut self) -> Option<SyntheticCapture> {
        let p = self.planner.next()?;
        Some(render(&self.config, &p))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.planner.size_hint()
    }
}

impl ExactSizeIterator for Traffic {}

/// The camera metadata of a lane.
fn camera_meta(site: &str, lane: &LaneSpec, time_ms: i64) -> CameraMeta {
    let serial = derive(0, 0x5345_5249, crate::fnv1a(site.as_bytes()) ^ lane.camera_id as u64);
    CameraMeta {
        make: "Synthetic Optics".into(),
        model: "LaneCam X2".into(),
        serial: format!("SO{:010}", serial % 10_000_000_000),
        time_ms,
        latitude: SITE_GPS.0,
        longitude: SITE_GPS.1,
        comment: format!(
            "site={site} {} cam={} fw=4.2.1-20190212 svc=maint-{}",
            sanitize(&lane.lane),
            lane.camera_id,
            serial % 97
        ),
    }
}

fn with_meta(jpeg: Vec<u8>, meta: &CameraMeta) -> Vec<u8> {
    // Invariant: our own encoder output starts with SOI and the lane metadata is short ASCII.
    jpeg_with_camera_metadata(&jpeg, meta).expect("camera metadata of a generated lane is valid")
}

/// Swaps one confusable character after the prefix; `None` if the plate has none.
fn confuse<R: Rng + ?Sized>(text: &str, rng: &mut R) -> Option<String> {
    let b = text.as_bytes();
    let spots: Vec<(usize, u8)> = (2..b.len()).flat_map(|i| plate::confusable(b[i]).map(move |c| (i, c))).collect();
    if spots.is_empty() {
        return None;
    }
    let (i, c) = spots[rng.gen_range(0..spots.len())];
    let mut out = b.to_vec();
    out[i] = c;
    // Invariant: we swapped one ASCII byte for another.
    Some(String::from_utf8(out).expect("ASCII"))
}

fn candidates<R: Rng + ?Sized>(best: &str, truth: &str, region: plate::Region, rng: &mut R) -> (Vec<Candidate>, f64) {
    let misread = best != truth;
    let top: f64 = if misread { rng.gen_range(68.0..84.0) } else { rng.gen_range(80.0..97.0) };
    let mut texts = vec![best.to_owned()];
    if misread {
        texts.push(truth.to_owned());
    }
    for _ in 0..rng.gen_range(1..6) {
        if let Some(v) = confuse(best, rng)
            && !texts.contains(&v)
        {
            texts.push(v);
        }
    }
    let mut conf = top;
    let list = texts
        .into_iter()
        .enumerate()
        .map(|(k, plate)| {
            if k > 0 {
                conf -= if misread && k == 1 { rng.gen_range(0.3..4.0) } else { rng.gen_range(1.5..9.0) };
            }
            Candidate { matches_template: Plate::matches_layout(region, &plate), plate, confidence: conf.max(1.0) }
        })
        .collect();
    (list, top)
}

/// Renders one planned capture: pixels, JPEGs, metadata, engine JSON. Pure and independent of
/// every other capture, so plans may be rendered on several threads.
///
/// # Panics
///
/// If `config.lanes` is empty (`plan` yields no plans for such a config).
pub fn render(config: &TrafficConfig, p: &CapturePlan) -> SyntheticCapture {
    let site = sanitize(&config.site);
    let lane = &config.lanes[p.lane_index.min(config.lanes.len().saturating_sub(1))];
    let mut rng = ChaCha8Rng::seed_from_u64(derive(config.seed, TAG_CAPTURE, p.index));
    let vehicle = vehicle(config.seed, p.vehicle_id);
    let outcome = p.outcome;
    let persons: Vec<Person> =
        p.person_ids.iter().map(|&id| Person::from_seed(derive(config.seed, TAG_PERSON, id))).collect();
    let faces = if vehicle.body == Body::Motorcycle {
        0
    } else if persons.len() >= 2 && rng.gen_bool(P_PASSENGER_FACE) {
        2
    } else {
        1
    };
    let stem = lane.vendor.file_stem(&site, lane.camera_id, p.time_ms);
    let meta = camera_meta(&site, lane, p.time_ms);
    let rendered = render_images(&vehicle, &persons, faces, outcome, lane, p.time_ms, &mut rng);

    let mut files = Vec::with_capacity(5);
    let overview_name = format!("{stem}.jpg");
    files.push(SyntheticFile {
        name: overview_name.clone(),
        bytes: with_meta(rendered.overview, &meta),
        role: FileRole::Overview,
    });
    if let Some(crop) = &rendered.plate_crop
        && !lane.vendor.plate_crop_inline()
    {
        files.push(SyntheticFile {
            name: format!("{stem}.plate.jpg"),
            bytes: with_meta(crop.clone(), &meta),
            role: FileRole::PlateCrop,
        });
    }
    for (k, f) in rendered.faces.into_iter().enumerate() {
        files.push(SyntheticFile {
            name: format!("{stem}.face{k}.jpg"),
            bytes: with_meta(f, &meta),
            role: FileRole::Face,
        });
    }

    let truth = (outcome != PlateOutcome::NoPlate).then(|| vehicle.plate.text().to_owned());
    let read_text = match outcome {
        PlateOutcome::Read => truth.clone(),
        PlateOutcome::Misread => {
            Some(confuse(vehicle.plate.text(), &mut rng).unwrap_or_else(|| vehicle.plate.text().to_owned()))
        }
        PlateOutcome::Obscured | PlateOutcome::NoPlate => None,
    };
    let plate_read = read_text.as_ref().zip(rendered.corners).map(|(best, corners)| {
        let region = vehicle.plate.region();
        let (candidates, confidence) = candidates(best, vehicle.plate.text(), region, &mut rng);
        PlateRead {
            plate: best.clone(),
            confidence,
            region,
            region_confidence: rng.gen_range(55..99),
            candidates,
            corners,
            detection_score: rng.gen_range(0.70..0.99),
        }
    });
    let (vx, vy, vw, vh) = rendered.vehicle_box;
    let read = EngineRead {
        site: site.clone(),
        camera_id: lane.camera_id,
        lane: lane.lane.clone(),
        time_ms: p.time_ms,
        utc_offset_min: SITE_UTC_OFFSET_MIN,
        sequence: p.index,
        image_name: overview_name,
        image_width: OVERVIEW_W as u32,
        image_height: OVERVIEW_H as u32,
        plate: plate_read,
        vehicle_box: PixelBox { x: vx, y: vy, width: vw, height: vh },
        vehicle: VehicleAttributes {
            color: vehicle.colour_name.into(),
            make: vehicle.make.into(),
            make_model: vehicle.make_model.into(),
            body_type: vehicle.body.rekor().into(),
            year: vehicle.year.into(),
            vehicle_type: vehicle.body.plate_recognizer().into(),
            signature: vehicle.signature.to_vec(),
        },
        plate_crop_jpeg: rendered.plate_crop.filter(|_| lane.vendor.plate_crop_inline()),
        vehicle_crop_jpeg: rendered.vehicle_crop,
        processing_time_ms: rng.gen_range(38.0..140.0),
        latitude: SITE_GPS.0,
        longitude: SITE_GPS.1,
    };
    if let Some(json) = lane.vendor.engine_json(&read) {
        files.push(SyntheticFile { name: format!("{stem}.json"), bytes: json, role: FileRole::EngineJson });
    }
    SyntheticCapture {
        index: p.index,
        lane: lane.lane.clone(),
        camera_id: lane.camera_id,
        vendor: lane.vendor,
        time_ms: p.time_ms,
        vehicle_id: p.vehicle_id,
        plate_text: truth,
        plate_region: (outcome != PlateOutcome::NoPlate).then(|| vehicle.plate.region()),
        read_text,
        person_ids: p.person_ids.clone(),
        files,
    }
}

struct Rendered {
    overview: Vec<u8>,
    plate_crop: Option<Vec<u8>>,
    vehicle_crop: Option<Vec<u8>>,
    faces: Vec<Vec<u8>>,
    corners: Option<[Xy; 4]>,
    vehicle_box: (i32, i32, i32, i32),
}

fn render_images<R: Rng + ?Sized>(
    vehicle: &Vehicle,
    persons: &[Person],
    faces: usize,
    outcome: PlateOutcome,
    lane: &LaneSpec,
    time_ms: i64,
    rng: &mut R,
) -> Rendered {
    let local = civil(time_ms + SITE_UTC_OFFSET_MIN as i64 * 60_000);
    let hour = local.hour as f32 + local.minute as f32 / 60.0;
    let light = scene::light_at(hour, rng);
    let dirt = if outcome == PlateOutcome::Obscured { rng.gen_range(200..250) } else { 0 };
    let plate_face = (outcome != PlateOutcome::NoPlate).then(|| plate::draw_plate(&vehicle.plate, dirt, rng));
    let silhouettes: Vec<Silhouette> =
        persons.iter().map(|p| Silhouette { skin: p.skin(), clothes: p.clothes() }).collect();
    let caption = format!("{} {} CAM {}", local.caption(), sanitize(&lane.lane).to_ascii_uppercase(), lane.camera_id);
    let (canvas, shot) = scene::render_overview(vehicle, plate_face.as_ref(), &silhouettes, &light, &caption, rng);
    let overview = canvas.encode_jpeg(OVERVIEW_QUALITY);
    let vehicle_crop = (lane.vendor == Vendor::RekorScoutGroup)
        .then(|| scene::vehicle_crop(&canvas, &shot).encode_jpeg(scene::VEHICLE_CROP_QUALITY));
    let plate_crop = (outcome != PlateOutcome::NoPlate).then(|| {
        let bumper = shade(vehicle.colour, 230);
        plate::render_crop(&vehicle.plate, bumper, light.gain, dirt, rng).encode_jpeg(PLATE_QUALITY)
    });
    let faces = persons
        .iter()
        .take(faces)
        .map(|p| face::render(p, light.gain.map(|g| g.max(200)), rng).encode_jpeg(FACE_QUALITY))
        .collect();
    Rendered {
        overview,
        plate_crop,
        vehicle_crop,
        faces,
        corners: shot.plate_quad.map(|q| q.map(|(x, y)| Xy { x: x.round() as i32, y: y.round() as i32 })),
        vehicle_box: shot.vehicle_box,
    }
}

/// Three JPEGs the size of one real capture (≈ 200 KB overview, ≈ 20 KB plate crop, ≈ 30 KB
/// face, about 250 KB in all), each with camera metadata: for benchmarks of sealing, hashing and
/// storage that need realistic payloads without running the traffic model.
pub fn sample_capture_bytes(seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(derive(seed, TAG_CAPTURE, u64::MAX));
    // The first vehicle id whose vehicle is not a motorcycle (which has no front plate or face).
    let vehicle = (0..)
        .map(|id| vehicle(seed, id))
        .find(|v| v.body != Body::Motorcycle)
        .expect("motorcycles are 2 % of vehicles");
    let persons = vec![Person::from_seed(derive(seed, TAG_PERSON, 0))];
    let lane = LaneSpec { lane: "lane-1".into(), camera_id: 101, vendor: Vendor::OpenAlprV2 };
    // 14:00 local on 2024-05-13: daylight.
    let time_ms = 1_715_630_400_000;
    let r = render_images(&vehicle, &persons, 1, PlateOutcome::Read, &lane, time_ms, &mut rng);
    let meta = camera_meta("sample", &lane, time_ms);
    // Invariant: PlateOutcome::Read with a non-motorcycle always renders a plate crop and one face.
    let plate = r.plate_crop.expect("plate crop rendered");
    let face = r.faces.into_iter().next().expect("one face rendered");
    (with_meta(r.overview, &meta), with_meta(plate, &meta), with_meta(face, &meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_vehicles_of_a_run_share_a_plate() {
        let config = TrafficConfig::demo(5, 1_715_000_000_000);
        let mut config = config;
        config.captures = 20_000;
        let mut plates: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for p in plan(&config) {
            let text = vehicle(config.seed, p.vehicle_id()).plate.text().to_owned();
            let prev = plates.entry(text.clone()).or_insert(p.vehicle_id());
            assert_eq!(*prev, p.vehicle_id(), "{text} on two vehicles");
        }
    }
}
