//! One lenient struct for every supported top level, and the conversion to [`EngineOutput`].
//!
//! The formats share most field names (`results`, `plate`, `candidates`, `camera_id`, `vehicle`)
//! and differ in a few (`confidence` 0–100 vs `score` 0–1, `region` a string vs an object), so a
//! single union struct parses every format in one pass; the vendor is then decided from which
//! fields were present, and each vendor's conversion reads the fields it defines.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::lenient::{Capped, NamedScore, Num, Skippable, Text, best_name, bounded_label, parse_timestamp_ms};
use super::{
    BoundingBox, Candidate, EmbeddedImage, EngineOutput, ImageRole, InputError, MAX_CANDIDATES,
    MAX_EMBEDDED_IMAGE_BYTES, MAX_ID_LEN, MAX_READS_PER_OUTPUT, PlateRead, VehicleAttributes, Vendor, normalise_plate,
    sanitise_for_error,
};

/// Every top-level field of every supported format. Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Payload<'a> {
    #[serde(borrow)]
    data_type: Text<'a>,
    version: Num,
    // OpenALPR / Rekor per-frame results
    epoch_time: Num,
    img_width: Num,
    regions_of_interest: Option<IgnoredAny>,
    #[serde(borrow)]
    uuid: Text<'a>,
    #[serde(borrow)]
    camera_id: Text<'a>,
    #[serde(borrow)]
    site_id: Text<'a>,
    #[serde(borrow)]
    agent_uid: Text<'a>,
    #[serde(borrow)]
    results: Option<Capped<ResultItem<'a>, MAX_READS_PER_OUTPUT>>,
    // Rekor group
    epoch_start: Num,
    #[serde(borrow)]
    best_plate: Skippable<ResultItem<'a>>,
    #[serde(borrow)]
    best_plate_number: Text<'a>,
    best_confidence: Num,
    #[serde(borrow)]
    best_region: Text<'a>,
    best_region_confidence: Num,
    #[serde(borrow)]
    candidates: Capped<CandidateItem<'a>, MAX_CANDIDATES>,
    #[serde(borrow)]
    vehicle_crop_jpeg: Text<'a>,
    #[serde(borrow)]
    overview_jpeg: Text<'a>,
    #[serde(borrow)]
    best_uuid: Text<'a>,
    best_uuid_epoch_ms: Num,
    travel_direction: Num,
    #[serde(borrow)]
    vehicle: Skippable<VehicleItem<'a>>,
    // Rekor alert
    #[serde(borrow)]
    group: Skippable<Box<Payload<'a>>>,
    // Plate Recognizer
    #[serde(borrow)]
    timestamp: Text<'a>,
    #[serde(borrow)]
    timestamp_local: Text<'a>,
    #[serde(borrow)]
    filename: Text<'a>,
    usage: Option<IgnoredAny>,
    #[serde(borrow)]
    hook: Skippable<Hook<'a>>,
    #[serde(borrow)]
    data: Skippable<Box<Payload<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Hook<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    filename: Text<'a>,
}

/// One element of `results` (any vendor) or a group's `best_plate`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResultItem<'a> {
    #[serde(borrow)]
    plate: Text<'a>,
    confidence: Num,
    score: Num,
    dscore: Num,
    #[serde(borrow)]
    region: Region<'a>,
    region_confidence: Num,
    coordinates: Capped<Point, 16>,
    #[serde(rename = "box")]
    bbox: Skippable<Corners>,
    #[serde(borrow)]
    candidates: Capped<CandidateItem<'a>, MAX_CANDIDATES>,
    #[serde(borrow)]
    plate_crop_jpeg: Text<'a>,
    vehicle_region: Option<IgnoredAny>,
    #[serde(borrow)]
    vehicle: Skippable<VehicleItem<'a>>,
    // Plate Recognizer with mmc=true; lists of {make, model, score} / {color, score}.
    #[serde(borrow)]
    model_make: Capped<Label<'a>, 16>,
    #[serde(borrow)]
    color: Capped<Label<'a>, 16>,
    direction: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CandidateItem<'a> {
    #[serde(borrow)]
    plate: Text<'a>,
    confidence: Num,
    score: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Point {
    x: Num,
    y: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Corners {
    xmin: Num,
    ymin: Num,
    xmax: Num,
    ymax: Num,
}

/// Rekor's `vehicle` block (lists of `{name, confidence}`) and Plate Recognizer's (`type`,
/// `score`, `box`, and in newer releases `props` with `make_model` and `color`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VehicleItem<'a> {
    #[serde(borrow)]
    color: Capped<NamedScore<'a>, 64>,
    #[serde(borrow)]
    make: Capped<NamedScore<'a>, 64>,
    #[serde(borrow)]
    make_model: Capped<NamedScore<'a>, 64>,
    #[serde(borrow)]
    body_type: Capped<NamedScore<'a>, 64>,
    #[serde(borrow)]
    year: Capped<NamedScore<'a>, 64>,
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    props: Skippable<Props<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Props<'a> {
    #[serde(borrow)]
    make_model: Capped<Label<'a>, 16>,
    #[serde(borrow)]
    color: Capped<Label<'a>, 16>,
}

/// Plate Recognizer's label lists: `{make, model, score}`, `{color, score}`, `{value, score}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Label<'a> {
    #[serde(borrow)]
    make: Text<'a>,
    #[serde(borrow)]
    model: Text<'a>,
    #[serde(borrow)]
    color: Text<'a>,
    #[serde(borrow)]
    value: Text<'a>,
    score: Num,
}

/// `region`: a string in OpenALPR/Rekor (`"us-mo"`), an object `{code, score}` in Plate
/// Recognizer. Anything else reads as absent.
#[derive(Debug, Default)]
struct Region<'a> {
    code: Option<Cow<'a, str>>,
    score: Option<f64>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Region<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Obj<'a> {
            #[serde(borrow)]
            code: Text<'a>,
            score: Num,
        }
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Region<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a region string or object")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Region<'a>, A::Error> {
                let o = Obj::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(Region { code: o.code.0, score: o.score.get() })
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Region<'a>, E> {
                Ok(Region { code: Some(Cow::Borrowed(v)), score: None })
            }
            fn visit_str<E>(self, v: &str) -> Result<Region<'a>, E> {
                Ok(Region { code: Some(Cow::Owned(v.to_owned())), score: None })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Region<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Region::default())
            }
            fn visit_unit<E>(self) -> Result<Region<'a>, E> {
                Ok(Region::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Region<'a>, E> {
                Ok(Region::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Region<'a>, E> {
                Ok(Region::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Region<'a>, E> {
                Ok(Region::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Region<'a>, E> {
                Ok(Region::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------

/// Confidence scale of a vendor: OpenALPR and Rekor send 0–100, Plate Recognizer 0–1.
#[derive(Clone, Copy)]
enum Scale {
    Percent,
    Unit,
}

fn unit(v: Option<f64>, scale: Scale) -> Option<f32> {
    let v = v?;
    let v = match scale {
        Scale::Percent => v / 100.0,
        Scale::Unit => v,
    };
    Some(v.clamp(0.0, 1.0) as f32)
}

pub(super) fn convert(p: Payload<'_>, raw_sha256: [u8; 32]) -> Result<EngineOutput, InputError> {
    if p.hook.0.is_some() {
        return stream(p, raw_sha256);
    }
    match p.data_type.as_deref() {
        Some("alpr_group") => group(&p, Vendor::RekorScoutGroup, raw_sha256),
        Some("alpr_alert") => match &p.group.0 {
            // The alert's own fields (list name, description) are not reads; the group is.
            Some(g) => group(g, Vendor::RekorScoutGroup, raw_sha256),
            None => Err(InputError::MissingField { field: "group", vendor: Vendor::RekorScoutGroup }),
        },
        Some("alpr_heartbeat" | "heartbeat") => Ok(EngineOutput {
            vendor: Vendor::RekorScoutResults,
            raw_sha256,
            reads: Vec::new(),
            heartbeat: true,
            images: Vec::new(),
            image_ref: None,
            camera_id: None,
            site_id: id(&p.site_id, "site_id")?.or(id(&p.agent_uid, "agent_uid")?),
            // Older agents stamp heartbeats with `timestamp` (ms) instead of `epoch_time`.
            captured_at_ms: epoch_ms(p.epoch_time.get())
                .or_else(|| epoch_ms(p.timestamp.as_deref().and_then(|t| t.trim().parse::<f64>().ok()))),
        }),
        Some("alpr_results") => {
            let rekor = p.agent_uid.0.is_some()
                || p.results.as_ref().is_some_and(|r| {
                    r.items
                        .iter()
                        .any(|i| i.plate_crop_jpeg.0.is_some() || i.vehicle_region.is_some() || i.vehicle.0.is_some())
                });
            alpr_results(&p, if rekor { Vendor::RekorScoutResults } else { Vendor::OpenAlprV2 }, raw_sha256)
        }
        Some(other) => Err(InputError::UnknownDataType { data_type: sanitise_for_error(other) }),
        None => {
            let items = p.results.as_ref().map(|r| r.items.as_slice()).unwrap_or_default();
            let pr_items = items.iter().any(|i| i.score.0.is_some() || i.dscore.0.is_some() || i.bbox.0.is_some());
            let alpr_items = items.iter().any(|i| i.confidence.0.is_some() || !i.coordinates.items.is_empty());
            let pr_top = p.timestamp.0.is_some() || p.filename.0.is_some() || p.usage.is_some();
            let alpr_top = p.epoch_time.0.is_some()
                || p.uuid.0.is_some()
                || p.site_id.0.is_some()
                || p.img_width.0.is_some()
                || p.regions_of_interest.is_some()
                || p.version.0.is_some();
            if p.results.is_none() {
                return Err(InputError::UnrecognisedFormat);
            }
            if pr_items || (pr_top && !alpr_items && !alpr_top) {
                snapshot(&p, Vendor::PlateRecognizerSnapshot, raw_sha256)
            } else if alpr_items || alpr_top {
                alpr_results(&p, Vendor::OpenAlprV1, raw_sha256)
            } else {
                Err(InputError::UnrecognisedFormat)
            }
        }
    }
}

fn alpr_results(p: &Payload<'_>, vendor: Vendor, raw_sha256: [u8; 32]) -> Result<EngineOutput, InputError> {
    let results = p.results.as_ref().ok_or(InputError::MissingField { field: "results", vendor })?;
    check_count(results.total)?;
    let mut reads = Vec::new();
    let mut images = Vec::new();
    for item in &results.items {
        if let Some(read) = alpr_read(item, &item.candidates, Scale::Percent) {
            reads.push(read);
        }
        if let Some(img) = embedded(&item.plate_crop_jpeg, "results[].plate_crop_jpeg", ImageRole::PlateCrop)? {
            images.push(img);
        }
    }
    let image_ref = id(&p.uuid, "uuid")?;
    let mut captured_at_ms = epoch_ms(p.epoch_time.get());
    if captured_at_ms.is_none() && vendor == Vendor::RekorScoutResults {
        // Scout's uuid is "<agent_uid>-<camera_id>-<epoch_ms>".
        captured_at_ms = image_ref
            .as_deref()
            .and_then(|u| u.rsplit('-').next())
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| epoch_ms(Some(t as f64)));
    }
    let site_id = match vendor {
        Vendor::RekorScoutResults => id(&p.site_id, "site_id")?.or(id(&p.agent_uid, "agent_uid")?),
        _ => id(&p.site_id, "site_id")?,
    };
    Ok(EngineOutput {
        vendor,
        raw_sha256,
        reads,
        heartbeat: false,
        images,
        image_ref,
        camera_id: id(&p.camera_id, "camera_id")?,
        site_id,
        captured_at_ms,
    })
}

fn group(g: &Payload<'_>, vendor: Vendor, raw_sha256: [u8; 32]) -> Result<EngineOutput, InputError> {
    let best = g.best_plate.0.as_ref();
    let plate = g.best_plate_number.as_deref().or_else(|| best.and_then(|b| b.plate.as_deref()));
    let mut reads = Vec::new();
    if let Some(plate) = plate.and_then(normalise_plate) {
        let confidence = g.best_confidence.get().or_else(|| best.and_then(|b| b.confidence.get()));
        let region = g.best_region.as_deref().or_else(|| best.and_then(|b| b.region.code.as_deref()));
        let region_confidence = g.best_region_confidence.get().or_else(|| best.and_then(|b| b.region_confidence.get()));
        // The group's own candidate list aggregates all frames; the best frame's is the fallback.
        let candidates = if g.candidates.items.is_empty() {
            best.map(|b| alpr_candidates(&b.candidates, Scale::Percent)).unwrap_or_default()
        } else {
            alpr_candidates(&g.candidates, Scale::Percent)
        };
        let direction = g.travel_direction.get().filter(|d| (0.0..=360.0).contains(d)).map(|d| (d % 360.0) as f32);
        reads.push(PlateRead {
            plate,
            confidence: unit(confidence, Scale::Percent).unwrap_or(0.0),
            region: region_code(region),
            region_confidence: region_code(region).and(unit(region_confidence, Scale::Percent)),
            candidates,
            bbox: best.and_then(|b| points_bbox(&b.coordinates.items)),
            vehicle: g
                .vehicle
                .0
                .as_ref()
                .and_then(vehicle_attributes)
                .or_else(|| best.and_then(|b| b.vehicle.0.as_ref()).and_then(vehicle_attributes)),
            travel_direction_deg: direction,
        });
    }
    let mut images = Vec::new();
    if let Some(b) = best {
        images.extend(embedded(&b.plate_crop_jpeg, "best_plate.plate_crop_jpeg", ImageRole::PlateCrop)?);
    }
    images.extend(embedded(&g.vehicle_crop_jpeg, "vehicle_crop_jpeg", ImageRole::VehicleCrop)?);
    images.extend(embedded(&g.overview_jpeg, "overview_jpeg", ImageRole::Overview)?);
    Ok(EngineOutput {
        vendor,
        raw_sha256,
        reads,
        heartbeat: false,
        images,
        image_ref: id(&g.best_uuid, "best_uuid")?,
        camera_id: id(&g.camera_id, "camera_id")?,
        site_id: id(&g.site_id, "site_id")?.or(id(&g.agent_uid, "agent_uid")?),
        captured_at_ms: epoch_ms(g.best_uuid_epoch_ms.get()).or(epoch_ms(g.epoch_start.get())),
    })
}

fn snapshot(p: &Payload<'_>, vendor: Vendor, raw_sha256: [u8; 32]) -> Result<EngineOutput, InputError> {
    let results = p.results.as_ref().ok_or(InputError::MissingField { field: "results", vendor })?;
    check_count(results.total)?;
    let reads = results.items.iter().filter_map(pr_read).collect();
    Ok(EngineOutput {
        vendor,
        raw_sha256,
        reads,
        heartbeat: false,
        images: Vec::new(),
        image_ref: id(&p.filename, "filename")?,
        camera_id: id(&p.camera_id, "camera_id")?,
        site_id: None,
        captured_at_ms: p.timestamp.as_deref().and_then(parse_timestamp_ms),
    })
}

fn stream(p: Payload<'_>, raw_sha256: [u8; 32]) -> Result<EngineOutput, InputError> {
    let vendor = Vendor::PlateRecognizerStream;
    let data = p.data.0.as_ref().ok_or(InputError::MissingField { field: "data", vendor })?;
    // A hook that is not an object was already treated as absent; here it is one.
    let hook = p.hook.0.as_ref().ok_or(InputError::MissingField { field: "hook", vendor })?;
    let mut out = snapshot(data, vendor, raw_sha256)?;
    out.image_ref = match id(&hook.filename, "hook.filename")? {
        Some(f) => Some(f),
        None => out.image_ref,
    };
    if out.camera_id.is_none() {
        out.camera_id = id(&hook.id, "hook.id")?;
    }
    if out.captured_at_ms.is_none() {
        out.captured_at_ms = data.timestamp_local.as_deref().and_then(parse_timestamp_ms);
    }
    Ok(out)
}

fn check_count(total: usize) -> Result<(), InputError> {
    if total > MAX_READS_PER_OUTPUT {
        return Err(InputError::TooManyReads { count: total, max: MAX_READS_PER_OUTPUT });
    }
    Ok(())
}

fn alpr_read(
    item: &ResultItem<'_>,
    candidates: &Capped<CandidateItem<'_>, MAX_CANDIDATES>,
    scale: Scale,
) -> Option<PlateRead> {
    let plate = normalise_plate(item.plate.as_deref()?)?;
    let region = region_code(item.region.code.as_deref());
    Some(PlateRead {
        plate,
        confidence: unit(item.confidence.get(), scale).unwrap_or(0.0),
        region_confidence: region.as_ref().and(unit(item.region_confidence.get(), scale)),
        region,
        candidates: alpr_candidates(candidates, scale),
        bbox: points_bbox(&item.coordinates.items),
        vehicle: item.vehicle.0.as_ref().and_then(vehicle_attributes),
        travel_direction_deg: None,
    })
}

fn pr_read(item: &ResultItem<'_>) -> Option<PlateRead> {
    let plate = normalise_plate(item.plate.as_deref()?)?;
    let region = region_code(item.region.code.as_deref());
    let mut vehicle = item.vehicle.0.as_ref().and_then(vehicle_attributes).unwrap_or_default();
    if vehicle.make.is_none()
        && let Some(best) = best_label(&item.model_make.items, |l| l.make.as_deref())
    {
        vehicle.make = Some(best.0);
        vehicle.make_model = best.1;
    }
    if vehicle.color.is_none() {
        vehicle.color = best_label(&item.color.items, |l| l.color.as_deref().or(l.value.as_deref())).map(|b| b.0);
    }
    let candidates = item
        .candidates
        .items
        .iter()
        .filter_map(|c| {
            Some(Candidate {
                plate: normalise_plate(c.plate.as_deref()?)?,
                confidence: unit(c.score.get().or(c.confidence.get()), Scale::Unit),
            })
        })
        .collect();
    Some(PlateRead {
        plate,
        confidence: unit(item.score.get(), Scale::Unit).unwrap_or(0.0),
        region_confidence: region.as_ref().and(unit(item.region.score, Scale::Unit)),
        region,
        candidates,
        bbox: item.bbox.0.as_ref().and_then(corners_bbox),
        vehicle: (!vehicle.is_empty()).then_some(vehicle),
        travel_direction_deg: item.direction.get().filter(|d| (0.0..=360.0).contains(d)).map(|d| (d % 360.0) as f32),
    })
}

fn alpr_candidates(c: &Capped<CandidateItem<'_>, MAX_CANDIDATES>, scale: Scale) -> Vec<Candidate> {
    c.items
        .iter()
        .filter_map(|c| {
            Some(Candidate {
                plate: normalise_plate(c.plate.as_deref()?)?,
                confidence: unit(c.confidence.get().or(c.score.get()), scale),
            })
        })
        .collect()
}

/// Region codes are short (`"us-mo"`, `"gb"`, `"br"`); empty means "no region" in OpenALPR.
fn region_code(r: Option<&str>) -> Option<String> {
    let r = r?.trim();
    (!r.is_empty()).then(|| bounded_label(r).to_ascii_lowercase())
}

fn to_i32(v: f64) -> i32 {
    // Saturating: `as` clamps out-of-range floats and maps NaN to 0.
    v.round() as i32
}

fn points_bbox(points: &[Point]) -> Option<BoundingBox> {
    let pts: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.x.get()?, p.y.get()?))).collect();
    if pts.is_empty() {
        return None;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for (x, y) in pts {
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    rect(x0, y0, x1, y1)
}

fn corners_bbox(c: &Corners) -> Option<BoundingBox> {
    rect(c.xmin.get()?, c.ymin.get()?, c.xmax.get()?, c.ymax.get()?)
}

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Option<BoundingBox> {
    if x1 < x0 || y1 < y0 {
        return None;
    }
    let (x, y) = (to_i32(x0), to_i32(y0));
    let width = u32::try_from(i64::from(to_i32(x1)) - i64::from(x)).ok()?;
    let height = u32::try_from(i64::from(to_i32(y1)) - i64::from(y)).ok()?;
    Some(BoundingBox { x, y, width, height })
}

fn vehicle_attributes(v: &VehicleItem<'_>) -> Option<VehicleAttributes> {
    let mut a = VehicleAttributes {
        color: best_name(&v.color),
        make: best_name(&v.make),
        make_model: best_name(&v.make_model),
        body_type: best_name(&v.body_type),
        year: best_name(&v.year),
    };
    if a.body_type.is_none() {
        a.body_type = v.kind.as_deref().filter(|k| !k.is_empty()).map(bounded_label);
    }
    if let Some(props) = &v.props.0 {
        if a.make.is_none()
            && let Some(best) = best_label(&props.make_model.items, |l| l.make.as_deref())
        {
            a.make = Some(best.0);
            a.make_model = best.1;
        }
        if a.color.is_none() {
            a.color = best_label(&props.color.items, |l| l.color.as_deref().or(l.value.as_deref())).map(|b| b.0);
        }
    }
    (!a.is_empty()).then_some(a)
}

/// The best-scoring Plate Recognizer label: its name and, for make lists, `make_model`.
fn best_label<'l>(
    items: &'l [Label<'_>],
    name: impl Fn(&'l Label<'_>) -> Option<&'l str>,
) -> Option<(String, Option<String>)> {
    let best = items.iter().filter(|l| name(l).is_some_and(|n| !n.is_empty())).fold(
        None::<&Label<'_>>,
        |best, l| match best {
            Some(b) if b.score.get().unwrap_or(f64::MIN) >= l.score.get().unwrap_or(f64::MIN) => Some(b),
            _ => Some(l),
        },
    )?;
    let n = bounded_label(name(best)?);
    let mm = best.model.as_deref().filter(|m| !m.is_empty()).map(|m| bounded_label(&format!("{n}_{m}")));
    Some((n, mm))
}

/// OpenALPR and Rekor send ms; the earliest alprd sent seconds. 10^11 ms is March 1973 and 10^11
/// s is the year 5138, so below 10^11 the value can only be seconds.
fn epoch_ms(v: Option<f64>) -> Option<i64> {
    let v = v?;
    if !(0.0..9.0e15).contains(&v) {
        return None;
    }
    let ms = if v < 1e11 { v * 1000.0 } else { v };
    Some(ms as i64)
}

fn id(t: &Text<'_>, field: &'static str) -> Result<Option<String>, InputError> {
    match t.as_deref() {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) if s.len() > MAX_ID_LEN => Err(InputError::FieldTooLong { field, max: MAX_ID_LEN }),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

/// Decodes a base64 JPEG field. Empty or absent means no image. Whitespace (MIME line breaks)
/// is tolerated; padding may be present or not.
fn embedded(t: &Text<'_>, field: &'static str, role: ImageRole) -> Result<Option<EmbeddedImage>, InputError> {
    let Some(s) = t.as_deref() else { return Ok(None) };
    if s.is_empty() {
        return Ok(None);
    }
    // Bound before allocating: 4 base64 characters carry 3 bytes.
    let estimate = s.len().div_ceil(4) * 3;
    if estimate > MAX_EMBEDDED_IMAGE_BYTES + 2 {
        return Err(InputError::ImageTooLarge { field, len: estimate, max: MAX_EMBEDDED_IMAGE_BYTES });
    }
    let compact: Cow<'_, str> = if s.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(s.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(s)
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let jpeg = engine.decode(compact.as_bytes()).map_err(|_| InputError::BadBase64 { field })?;
    if jpeg.len() > MAX_EMBEDDED_IMAGE_BYTES {
        return Err(InputError::ImageTooLarge { field, len: jpeg.len(), max: MAX_EMBEDDED_IMAGE_BYTES });
    }
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(InputError::NotJpeg { field });
    }
    Ok(Some(EmbeddedImage { role, jpeg }))
}
