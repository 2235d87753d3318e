//! Vehicles and the lane overview: a road, a port canopy, a skyline, and one vehicle seen from
//! the front with its plate and the heads behind its windscreen.
//!
//! Everything in the background is drawn fresh for every capture, so unrelated captures differ in
//! their large-scale structure (what a perceptual hash sees), while the vehicle itself (body,
//! colour, proportions, plate) is fixed by the vehicle's seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plate::{Plate, Region};
use crate::raster::{Canvas, Rgb, mix, shade};

/// Width of the overview image. With [`OVERVIEW_H`], the scene's texture and sensor noise and
/// JPEG quality 86 it gives JPEGs of about 205 KB (160–290 KB), like a 720p lane camera.
pub const OVERVIEW_W: usize = 1280;
/// Height of the overview image.
pub const OVERVIEW_H: usize = 720;
pub(crate) const OVERVIEW_QUALITY: u8 = 86;

/// Body classes, with the labels the engines use for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Sedan,
    Hatchback,
    Suv,
    Pickup,
    Van,
    Motorcycle,
}

impl Body {
    /// Rekor Scout `body_type` label.
    pub(crate) fn rekor(self) -> &'static str {
        match self {
            Body::Sedan => "sedan-standard",
            Body::Hatchback => "sedan-compact",
            Body::Suv => "suv-standard",
            Body::Pickup => "truck-standard",
            Body::Van => "van-mini",
            Body::Motorcycle => "motorcycle",
        }
    }
    /// Plate Recognizer `vehicle.type` label.
    pub(crate) fn plate_recognizer(self) -> &'static str {
        match self {
            Body::Sedan | Body::Hatchback => "Sedan",
            Body::Suv => "SUV",
            Body::Pickup => "Pickup Truck",
            Body::Van => "Van",
            Body::Motorcycle => "Motorcycle",
        }
    }
}

const COLOURS: [(&str, Rgb); 11] = [
    ("white", [228, 230, 232]),
    ("black", [26, 27, 30]),
    ("silver-gray", [150, 154, 160]),
    ("silver-gray", [96, 100, 106]),
    ("red", [170, 24, 30]),
    ("blue", [28, 56, 130]),
    ("green", [34, 90, 56]),
    ("gold-beige", [196, 176, 136]),
    ("brown", [100, 66, 40]),
    ("yellow", [226, 190, 40]),
    ("orange", [220, 110, 30]),
];
const COLOUR_WEIGHTS: [u32; 11] = [24, 18, 14, 10, 9, 8, 3, 5, 4, 2, 3];

const MODELS: [(Body, &str, &str); 20] = [
    (Body::Sedan, "toyota", "toyota_camry"),
    (Body::Sedan, "honda", "honda_civic"),
    (Body::Sedan, "nissan", "nissan_altima"),
    (Body::Sedan, "chevrolet", "chevrolet_malibu"),
    (Body::Sedan, "hyundai", "hyundai_elantra"),
    (Body::Hatchback, "volkswagen", "volkswagen_golf"),
    (Body::Hatchback, "nissan", "nissan_versa"),
    (Body::Suv, "chevrolet", "chevrolet_tahoe"),
    (Body::Suv, "ford", "ford_explorer"),
    (Body::Suv, "toyota", "toyota_rav4"),
    (Body::Suv, "honda", "honda_cr-v"),
    (Body::Suv, "jeep", "jeep_grand-cherokee"),
    (Body::Pickup, "ford", "ford_f-150"),
    (Body::Pickup, "chevrolet", "chevrolet_silverado"),
    (Body::Pickup, "ram", "ram_1500"),
    (Body::Pickup, "toyota", "toyota_tacoma"),
    (Body::Van, "honda", "honda_odyssey"),
    (Body::Van, "chrysler", "chrysler_pacifica"),
    (Body::Motorcycle, "honda", "honda_cbr"),
    (Body::Motorcycle, "harley-davidson", "harley-davidson_street"),
];
/// Percent weights for MODELS: 2 % motorcycles, as at a car lane.
const MODEL_WEIGHTS: [u32; 20] = [8, 8, 6, 5, 5, 3, 3, 7, 6, 6, 4, 4, 9, 8, 6, 4, 3, 3, 1, 1];
const YEARS: [&str; 4] = ["2005-2009", "2010-2014", "2015-2019", "2020-2024"];

fn weighted<R: Rng + ?Sized>(weights: &[u32], rng: &mut R) -> usize {
    let mut x = rng.gen_range(0..weights.iter().sum::<u32>());
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// A vehicle's fixed look and identity, drawn once from its seed.
#[derive(Clone, Debug)]
pub(crate) struct Vehicle {
    pub(crate) body: Body,
    pub(crate) colour: Rgb,
    pub(crate) colour_name: &'static str,
    pub(crate) make: &'static str,
    pub(crate) make_model: &'static str,
    pub(crate) year: &'static str,
    pub(crate) plate: Plate,
    /// Width relative to a mid-size car.
    width: f32,
    grille: u8,
    chrome: bool,
    wheel: Rgb,
    rider: Rgb,
    pub(crate) signature: [u8; 24],
}

impl Vehicle {
    /// The vehicle drawn from `seed`, carrying plate number `plate_serial` of its region's
    /// series (see [`Plate::from_serial`]): distinct serials give distinct plate texts.
    pub(crate) fn new(seed: u64, plate_serial: u64) -> Vehicle {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let (body, make, make_model) = MODELS[weighted(&MODEL_WEIGHTS, &mut r)];
        let (colour_name, base) = COLOURS[weighted(&COLOUR_WEIGHTS, &mut r)];
        let colour = shade(base, r.gen_range(232..280));
        let plate = Plate::from_serial(Region::random(&mut r), plate_serial);
        let width = match body {
            Body::Sedan => r.gen_range(0.92..1.0),
            Body::Hatchback => r.gen_range(0.86..0.92),
            Body::Suv => r.gen_range(0.98..1.08),
            Body::Pickup => r.gen_range(1.02..1.12),
            Body::Van => r.gen_range(0.98..1.05),
            Body::Motorcycle => 0.36,
        };
        let mut signature = [0u8; 24];
        r.fill(&mut signature[..]);
        Vehicle {
            body,
            colour,
            colour_name,
            make,
            make_model,
            year: YEARS[r.gen_range(0..YEARS.len())],
            plate,
            width,
            grille: r.gen_range(0..3),
            chrome: r.gen_bool(0.4),
            wheel: shade([30, 30, 32], r.gen_range(200..300)),
            rider: [[20, 20, 24], [140, 20, 20], [30, 50, 110], [200, 200, 200]][r.gen_range(0..4)],
            signature,
        }
    }
}

/// Global light of a scene: sky colours, channel gains, noise and whether lamps are lit.
pub(crate) struct Light {
    pub(crate) sky_top: Rgb,
    pub(crate) sky_horizon: Rgb,
    pub(crate) gain: [i32; 3],
    pub(crate) night: bool,
    pub(crate) noise: i32,
}

/// The light at local hour `hour` (0–24), with a little per-capture exposure variation.
pub(crate) fn light_at<R: Rng + ?Sized>(hour: f32, rng: &mut R) -> Light {
    let exposure = rng.gen_range(-14..14);
    let (sky_top, sky_horizon, gain, night, noise) = if (7.5..17.5).contains(&hour) {
        ([70, 120, 200], [176, 206, 236], [256, 256, 256], false, rng.gen_range(6..9))
    } else if (6.0..7.5).contains(&hour) || (17.5..19.5).contains(&hour) {
        ([60, 70, 130], [240, 160, 100], [272, 232, 200], false, rng.gen_range(8..11))
    } else {
        // Night: the port is floodlit, the camera boosts gain (more noise) and sees little colour.
        ([10, 14, 30], [40, 44, 70], [176, 180, 196], true, rng.gen_range(10..14))
    };
    Light { sky_top, sky_horizon, gain: gain.map(|g| g + exposure), night, noise }
}

/// Where things ended up in an overview: what an engine reports about it.
pub(crate) struct Shot {
    /// Plate corners: top-left, top-right, bottom-right, bottom-left.
    pub(crate) plate_quad: Option<[(f32, f32); 4]>,
    /// Vehicle bounding box: x, y, width, height.
    pub(crate) vehicle_box: (i32, i32, i32, i32),
}

/// One occupant as seen through the windscreen.
pub(crate) struct Silhouette {
    pub(crate) skin: Rgb,
    pub(crate) clothes: Rgb,
}

/// Renders the overview. `plate_face` is the plate drawn face-on (None when no plate is visible),
/// `occupants` the people in the car, front seats first, `caption` the camera's burnt-in text.
pub(crate) fn render_overview<R: Rng + ?Sized>(
    v: &Vehicle,
    plate_face: Option<&Canvas>,
    occupants: &[Silhouette],
    light: &Light,
    caption: &str,
    rng: &mut R,
) -> (Canvas, Shot) {
    let (w, h) = (OVERVIEW_W as i32, OVERVIEW_H as i32);
    let (wf, hf) = (w as f32, h as f32);
    let mut c = Canvas::new(OVERVIEW_W, OVERVIEW_H, light.sky_top);
    let horizon = (hf * rng.gen_range(0.26..0.44)) as i32;
    let tint = |c: Rgb, rng: &mut R| -> Rgb { c.map(|v| (v as i32 + rng.gen_range(-18..18)).clamp(0, 255) as u8) };
    let (sky_top, sky_horizon) = (tint(light.sky_top, rng), tint(light.sky_horizon, rng));
    c.gradient_v(0, horizon, sky_top, sky_horizon);

    // Clouds by day, a few stars by night.
    if light.night {
        for _ in 0..rng.gen_range(0..40) {
            let (x, y) = (rng.gen_range(0..w), rng.gen_range(0..horizon.max(1)));
            c.fill_rect(x, y, x + 2, y + 2, [200, 200, 210]);
        }
    } else {
        for _ in 0..rng.gen_range(0..9) {
            let (x, y) = (rng.gen_range(-100..w + 100), rng.gen_range(0..horizon.max(1)));
            let a = rng.gen_range(90..200);
            for _ in 0..rng.gen_range(3..7) {
                c.ellipse(
                    x + rng.gen_range(-90..90),
                    y + rng.gen_range(-20..20),
                    rng.gen_range(30..110),
                    rng.gen_range(12..40),
                    [246, 246, 250],
                    a,
                );
            }
        }
    }

    // Skyline: buildings with windows, trees, poles.
    let mut x = rng.gen_range(-150..0);
    while x < w {
        let bw = rng.gen_range(40..220);
        let bh = rng.gen_range(10..(hf * 0.3) as i32);
        if rng.gen_bool(0.7) {
            let base = [rng.gen_range(70..200), rng.gen_range(70..190), rng.gen_range(60..180)];
            let col = if light.night { shade(base, 70) } else { base };
            c.fill_rect(x, horizon - bh, x + bw, horizon, col);
            let win = if light.night { [230, 210, 130] } else { shade(col, 150) };
            let (ws, wh) = (rng.gen_range(10..22), rng.gen_range(10..20));
            let mut wy = horizon - bh + 6;
            while wy + wh / 2 < horizon - 4 {
                let mut wx = x + 5;
                while wx + ws / 2 < x + bw - 5 {
                    if rng.gen_bool(0.8) {
                        c.fill_rect(
                            wx,
                            wy,
                            wx + ws / 2,
                            wy + wh / 2,
                            if rng.gen_bool(0.8) { win } else { shade(col, 60) },
                        );
                    }
                    wx += ws;
                }
                wy += wh;
            }
        } else {
            let green = [rng.gen_range(30..70), rng.gen_range(70..120), rng.gen_range(30..60)];
            let green = if light.night { shade(green, 60) } else { green };
            let th = rng.gen_range(20..90);
            c.fill_rect(x + bw / 2 - 4, horizon - th / 2, x + bw / 2 + 4, horizon, [70, 50, 36]);
            c.ellipse(x + bw / 2, horizon - th / 2, bw / 2, th / 2, green, 256);
        }
        x += bw + rng.gen_range(-20..60);
    }

    // Ground, road and lane markings converging on a vanishing point.
    let asphalt = [rng.gen_range(70..110), rng.gen_range(70..110), rng.gen_range(72..115)];
    let asphalt = if light.night { shade(asphalt, 110) } else { asphalt };
    c.gradient_v(horizon, h, shade(asphalt, 300), asphalt);
    let vx = wf * rng.gen_range(0.3..0.7);
    let vy = horizon as f32;
    let lane_w = wf * rng.gen_range(0.35..0.6);
    let offset = rng.gen_range(-0.5..0.5) * lane_w;
    // Concrete verges on both sides.
    let verge = shade([170, 166, 156], if light.night { 120 } else { 256 });
    c.polygon(&[(vx, vy), (0.0, vy), (0.0, hf), (wf / 2.0 + offset - 2.2 * lane_w, hf)], verge, 256);
    c.polygon(&[(vx, vy), (wf, vy), (wf, hf), (wf / 2.0 + offset + 2.2 * lane_w, hf)], verge, 256);
    for i in -2..=2 {
        let bx = wf / 2.0 + offset + (i as f32 - 0.5) * lane_w;
        let yellow = i == -2;
        let paint: Rgb = if yellow { [220, 180, 40] } else { [230, 230, 226] };
        let solid = yellow || rng.gen_bool(0.3);
        // Dashes shrink toward the horizon: step in t², the perspective of a flat road.
        let steps = 14;
        for k in 0..steps {
            if !solid && k % 2 == 1 {
                continue;
            }
            let (t0, t1) = ((k as f32 / steps as f32).powi(2), ((k + 1) as f32 / steps as f32).powi(2));
            let p = |t: f32| (vx + (bx - vx) * t, vy + (hf - vy) * t);
            c.line(p(t0), p(t1), 2.0 + 14.0 * t1, paint, 220);
        }
    }
    // A speed hump or a stop line across the lane, sometimes.
    if rng.gen_bool(0.5) {
        let t: f32 = rng.gen_range(0.3..0.6);
        let y = vy + (hf - vy) * t;
        let band = (6.0 + 30.0 * t) as i32;
        c.blend_rect(0, y as i32, w, y as i32 + band, [220, 190, 50], 150);
    }

    // The port's inspection canopy over the lanes, with columns and lamps.
    if rng.gen_bool(0.75) {
        let top = rng.gen_range(-40..(hf * 0.12) as i32);
        let depth = rng.gen_range(30..90);
        let roof: Rgb = [[210, 214, 218], [180, 60, 50], [60, 110, 80], [230, 230, 230]][rng.gen_range(0..4)];
        let roof = if light.night { shade(roof, 90) } else { roof };
        c.fill_rect(0, top, w, top + depth, roof);
        c.fill_rect(0, top + depth, w, top + depth + 8, shade(roof, 150));
        for _ in 0..rng.gen_range(2..6) {
            let px = rng.gen_range(0..w);
            let pw = rng.gen_range(18..40);
            c.fill_rect(px, top + depth, px + pw, horizon + rng.gen_range(20..120), shade(roof, 180));
        }
        let lamp = if light.night { [255, 250, 220] } else { [235, 235, 225] };
        let mut lx = rng.gen_range(20..120);
        while lx < w {
            c.fill_rect(lx, top + depth + 8, lx + 50, top + depth + 14, lamp);
            lx += rng.gen_range(120..260);
        }
    }
    // An inspection booth at one side.
    if rng.gen_bool(0.6) {
        let bx = if rng.gen_bool(0.5) {
            rng.gen_range(0..(wf * 0.2) as i32)
        } else {
            rng.gen_range((wf * 0.7) as i32..w - 120)
        };
        let by = horizon + rng.gen_range(-60..60);
        let (bw, bh) = (rng.gen_range(90..170), rng.gen_range(120..220));
        c.fill_rect(bx, by, bx + bw, by + bh, [196, 198, 190]);
        c.fill_rect(bx + 10, by + 20, bx + bw - 10, by + bh / 2, [80, 110, 130]);
        c.fill_rect(bx - 6, by - 10, bx + bw + 6, by, [120, 40, 40]);
    }

    let shot = draw_vehicle(&mut c, v, plate_face, occupants, light, rng);

    c.grade(light.gain);
    if light.night && v.body != Body::Motorcycle {
        // Headlight bloom after grading so it stays bright.
        let (vx0, vy0, vw, vh) = shot.vehicle_box;
        let ly = vy0 + vh * 3 / 4 - vh / 8;
        for lx in [vx0 + vw / 7, vx0 + vw * 6 / 7] {
            c.ellipse(lx, ly, vw / 8, vh / 10, [255, 250, 230], 110);
        }
    }
    c.noise(rng.r#gen(), light.noise, 0, 0, w, h);
    // Burnt-in caption, drawn last so it is crisp, as camera overlays are.
    let cw = caption.len() as i32 * 12 + 12;
    c.fill_rect(0, 0, cw, 26, [0, 0, 0]);
    c.text(6, 6, 2, 2, caption, [240, 240, 240]);
    (c, shot)
}

fn draw_vehicle<R: Rng + ?Sized>(
    c: &mut Canvas,
    v: &Vehicle,
    plate_face: Option<&Canvas>,
    occupants: &[Silhouette],
    light: &Light,
    rng: &mut R,
) -> Shot {
    let (wf, hf) = (OVERVIEW_W as f32, OVERVIEW_H as f32);
    let x = wf * (0.5 + rng.gen_range(-0.16..0.16));
    let bottom = hf * rng.gen_range(0.91..0.99);
    let cw = wf * rng.gen_range(0.40..0.52) * v.width.max(0.9);
    if v.body == Body::Motorcycle {
        return draw_motorcycle(c, v, x, bottom, cw, occupants, light);
    }
    let (body_k, cabin_k, hood_k) = match v.body {
        Body::Sedan => (0.27, 0.20, 0.07),
        Body::Hatchback => (0.28, 0.22, 0.06),
        Body::Suv => (0.34, 0.24, 0.07),
        Body::Pickup => (0.38, 0.22, 0.08),
        Body::Van => (0.34, 0.30, 0.05),
        Body::Motorcycle => unreachable!("handled above"),
    };
    let body_h = cw * body_k;
    let body_top = bottom - body_h;
    let hood_top = body_top - cw * hood_k;
    let roof = hood_top - cw * cabin_k;
    let col = v.colour;

    // Shadow and tyres.
    c.ellipse(x as i32, bottom as i32, (cw * 0.58) as i32, (cw * 0.05) as i32, [12, 12, 14], 170);
    for s in [-1.0, 1.0] {
        c.fill_rect(
            (x + s * cw * 0.40 - cw * 0.07) as i32,
            (bottom - cw * 0.16) as i32,
            (x + s * cw * 0.40 + cw * 0.07) as i32,
            bottom as i32,
            v.wheel,
        );
    }

    // Cabin, glass, the people inside.
    let pillar = cw * 0.04;
    c.polygon(
        &[
            (x - cw * 0.31, roof),
            (x + cw * 0.31, roof),
            (x + cw * 0.43, hood_top + 2.0),
            (x - cw * 0.43, hood_top + 2.0),
        ],
        shade(col, 230),
        256,
    );
    let glass_top = roof + pillar * 0.8;
    let glass = if light.night { [14, 16, 22] } else { [44, 54, 66] };
    let glass_quad = [
        (x - cw * 0.31 + pillar, glass_top),
        (x + cw * 0.31 - pillar, glass_top),
        (x + cw * 0.43 - pillar * 1.2, hood_top),
        (x - cw * 0.43 + pillar * 1.2, hood_top),
    ];
    c.polygon(&glass_quad, glass, 256);
    let gh = hood_top - glass_top;
    // Back-seat heads first (higher, smaller, darker), then the front seats over them.
    // Driver sits on the image's right: the camera faces oncoming left-hand-drive traffic.
    let seats = [(0.17, 1.0), (-0.17, 1.0), (-0.05, 0.72), (0.09, 0.72)];
    for (i, occ) in occupants.iter().enumerate().take(4).rev() {
        let (sx, size) = seats[i];
        let hx = x + sx * cw + rng.gen_range(-0.01..0.01) * cw;
        let hy = glass_top + gh * if size < 1.0 { 0.38 } else { 0.5 };
        let rr = gh * 0.17 * size;
        let dim = if size < 1.0 { 110 } else { 150 };
        c.ellipse(
            hx as i32,
            (hy + rr * 2.1) as i32,
            (rr * 1.9) as i32,
            (rr * 1.2) as i32,
            mix(glass, occ.clothes, dim),
            256,
        );
        c.ellipse(hx as i32, hy as i32, (rr * 0.82) as i32, rr as i32, mix(glass, occ.skin, dim), 256);
    }
    // Sky reflected in the windscreen.
    let rx0 = x - cw * 0.4 + rng.gen_range(0.0..0.5) * cw;
    c.polygon(
        &[(rx0, glass_top), (rx0 + cw * 0.12, glass_top), (rx0 + cw * 0.02, hood_top), (rx0 - cw * 0.10, hood_top)],
        [220, 230, 240],
        rng.gen_range(25..70),
    );
    // Mirrors.
    for s in [-1.0, 1.0] {
        let mx = x + s * cw * 0.5;
        c.fill_rect(
            (mx - cw * 0.04) as i32,
            (hood_top - cw * 0.05) as i32,
            (mx + cw * 0.04) as i32,
            (hood_top + cw * 0.01) as i32,
            shade(col, 200),
        );
    }

    // Hood and body (drawn over anything that spilled below the glass).
    c.polygon(
        &[
            (x - cw * 0.45, hood_top),
            (x + cw * 0.45, hood_top),
            (x + cw * 0.5, body_top + 2.0),
            (x - cw * 0.5, body_top + 2.0),
        ],
        shade(col, 275),
        256,
    );
    c.fill_rect((x - cw * 0.5) as i32, body_top as i32, (x + cw * 0.5) as i32, (bottom - cw * 0.05) as i32, col);
    c.blend_rect(
        (x - cw * 0.5) as i32,
        body_top as i32,
        (x + cw * 0.5) as i32,
        (body_top + body_h * 0.25) as i32,
        [255, 255, 255],
        30,
    );
    // Bumper.
    let bumper_top = bottom - cw * 0.13;
    let plastic = if v.chrome { [170, 172, 176] } else { shade(col, 150) };
    c.fill_rect((x - cw * 0.5) as i32, bumper_top as i32, (x + cw * 0.5) as i32, (bottom - cw * 0.05) as i32, plastic);
    // Grille.
    let (gx0, gx1) = (x - cw * 0.2, x + cw * 0.2);
    let (gy0, gy1) = (body_top + body_h * 0.12, bumper_top - body_h * 0.06);
    c.fill_rect(gx0 as i32, gy0 as i32, gx1 as i32, gy1 as i32, [22, 22, 24]);
    let bar = if v.chrome { [190, 190, 196] } else { [60, 60, 64] };
    let step = 6 + v.grille as i32 * 3;
    let mut gy = gy0 as i32 + 3;
    while gy < gy1 as i32 - 2 {
        c.fill_rect(gx0 as i32, gy, gx1 as i32, gy + 2, bar);
        gy += step;
    }
    c.frame_rect(gx0 as i32, gy0 as i32, gx1 as i32, gy1 as i32, 3, bar);
    // Headlights.
    let lamp = if light.night { [255, 252, 235] } else { [214, 220, 226] };
    for s in [-1.0, 1.0] {
        let lx = x + s * cw * 0.36;
        let ly = body_top + body_h * 0.3;
        c.ellipse(lx as i32, ly as i32, (cw * 0.09) as i32, (body_h * 0.11) as i32, lamp, 256);
        c.ellipse(lx as i32, ly as i32, (cw * 0.03) as i32, (body_h * 0.05) as i32, [250, 250, 250], 256);
    }

    // The plate, bolted to the bumper with a little tilt.
    let plate_quad = plate_face.map(|face| {
        let pw = cw * 0.17;
        let ph = pw * 0.5;
        let pcx = x + rng.gen_range(-0.01..0.01) * cw;
        let pcy = bumper_top + ph * 0.15;
        let tilt = rng.gen_range(-0.03..0.03) * pw;
        let key = rng.gen_range(0.0..0.05) * pw;
        let quad = [
            (pcx - pw / 2.0 + key, pcy - ph / 2.0 + tilt),
            (pcx + pw / 2.0 - key, pcy - ph / 2.0 - tilt),
            (pcx + pw / 2.0, pcy + ph / 2.0 - tilt),
            (pcx - pw / 2.0, pcy + ph / 2.0 + tilt),
        ];
        c.fill_rect(
            (pcx - pw * 0.55) as i32,
            (pcy - ph * 0.6) as i32,
            (pcx + pw * 0.55) as i32,
            (pcy + ph * 0.6) as i32,
            [20, 20, 22],
        );
        c.warp_from(face, quad);
        quad
    });
    let vb = ((x - cw * 0.55) as i32, roof as i32, (cw * 1.1) as i32, (bottom - roof) as i32);
    Shot { plate_quad, vehicle_box: vb }
}

fn draw_motorcycle(
    c: &mut Canvas,
    v: &Vehicle,
    x: f32,
    bottom: f32,
    cw: f32,
    occupants: &[Silhouette],
    light: &Light,
) -> Shot {
    let s = cw * 0.5;
    c.ellipse(x as i32, bottom as i32, (s * 0.5) as i32, (s * 0.06) as i32, [12, 12, 14], 170);
    // Front wheel seen head-on, fork, fairing, headlight, handlebars.
    c.fill_rect((x - s * 0.07) as i32, (bottom - s * 0.55) as i32, (x + s * 0.07) as i32, bottom as i32, v.wheel);
    c.line((x - s * 0.12, bottom - s * 0.4), (x - s * 0.1, bottom - s * 0.95), 6.0, [170, 170, 176], 256);
    c.line((x + s * 0.12, bottom - s * 0.4), (x + s * 0.1, bottom - s * 0.95), 6.0, [170, 170, 176], 256);
    c.ellipse(x as i32, (bottom - s * 1.05) as i32, (s * 0.3) as i32, (s * 0.22) as i32, v.colour, 256);
    let lamp = if light.night { [255, 252, 235] } else { [214, 220, 226] };
    c.ellipse(x as i32, (bottom - s * 1.02) as i32, (s * 0.1) as i32, (s * 0.08) as i32, lamp, 256);
    c.line((x - s * 0.55, bottom - s * 1.25), (x + s * 0.55, bottom - s * 1.25), 7.0, [40, 40, 44], 256);
    // Rider: torso and helmet with a dark visor.
    let rider = occupants.first().map(|o| o.clothes).unwrap_or(v.rider);
    c.polygon(
        &[
            (x - s * 0.35, bottom - s * 1.2),
            (x + s * 0.35, bottom - s * 1.2),
            (x + s * 0.25, bottom - s * 2.0),
            (x - s * 0.25, bottom - s * 2.0),
        ],
        rider,
        256,
    );
    c.ellipse(x as i32, (bottom - s * 2.2) as i32, (s * 0.2) as i32, (s * 0.24) as i32, v.rider, 256);
    c.fill_rect(
        (x - s * 0.15) as i32,
        (bottom - s * 2.25) as i32,
        (x + s * 0.15) as i32,
        (bottom - s * 2.12) as i32,
        [15, 15, 18],
    );
    let top = bottom - s * 2.5;
    Shot { plate_quad: None, vehicle_box: ((x - s * 0.6) as i32, top as i32, (s * 1.2) as i32, (bottom - top) as i32) }
}

/// Crops the vehicle out of an overview and scales it to a width of [`VEHICLE_CROP_W`]: what
/// Rekor Scout sends inline as `vehicle_crop_jpeg`.
pub(crate) fn vehicle_crop(c: &Canvas, shot: &Shot) -> Canvas {
    let (x, y, w, h) = shot.vehicle_box;
    let x0 = x.clamp(0, OVERVIEW_W as i32 - 1) as usize;
    let y0 = y.clamp(0, OVERVIEW_H as i32 - 1) as usize;
    let x1 = (x + w).clamp(x0 as i32 + 1, OVERVIEW_W as i32) as usize;
    let y1 = (y + h).clamp(y0 as i32 + 1, OVERVIEW_H as i32) as usize;
    let out_h = ((y1 - y0) * VEHICLE_CROP_W / (x1 - x0)).clamp(16, 2 * VEHICLE_CROP_W);
    c.crop_resize(x0, y0, x1, y1, VEHICLE_CROP_W, out_h)
}

pub(crate) const VEHICLE_CROP_W: usize = 320;
pub(crate) const VEHICLE_CROP_QUALITY: u8 = 75;
