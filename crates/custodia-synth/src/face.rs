//! Procedurally drawn occupant faces. They are cartoons built from ellipses and bars: they look
//! like a face crop to a person skimming a folder and to a size histogram, and they depict no one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::raster::{Canvas, Rgb, mix, shade};

/// Width of a face image. With [`FACE_H`], the noise and JPEG quality 91 it gives JPEGs of
/// 25–35 KB (median about 30 KB), the size of the face crops a lane camera keeps.
pub const FACE_W: usize = 240;
/// Height of a face image.
pub const FACE_H: usize = 288;
pub(crate) const FACE_QUALITY: u8 = 91;

const SKIN: [Rgb; 10] = [
    [250, 222, 200],
    [241, 204, 178],
    [228, 185, 150],
    [214, 168, 128],
    [198, 146, 106],
    [176, 124, 88],
    [150, 100, 68],
    [122, 80, 54],
    [96, 62, 42],
    [72, 48, 34],
];
const HAIR: [Rgb; 7] =
    [[20, 16, 14], [48, 32, 22], [84, 56, 34], [150, 112, 64], [196, 160, 100], [150, 150, 150], [130, 60, 30]];
const IRIS: [Rgb; 5] = [[60, 40, 24], [90, 60, 30], [50, 90, 130], [70, 110, 80], [40, 30, 20]];
const SHIRT: [Rgb; 9] = [
    [30, 40, 90],
    [200, 200, 205],
    [150, 30, 40],
    [30, 30, 34],
    [60, 110, 60],
    [220, 180, 60],
    [90, 90, 100],
    [120, 160, 210],
    [240, 240, 240],
];

/// A person's fixed look, drawn once from the person's seed: the same person looks the same in
/// every capture, only the photo changes.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    skin: Rgb,
    hair: Rgb,
    /// 0 short, 1 long, 2 bald, 3 curly, 4 cap.
    hair_style: u8,
    cap: Rgb,
    iris: Rgb,
    face_rx: f32,
    face_ry: f32,
    eye_sep: f32,
    eye_y: f32,
    brow: f32,
    nose: f32,
    mouth_w: f32,
    lip: Rgb,
    glasses: Option<Rgb>,
    beard: bool,
    moustache: bool,
    shirt: Rgb,
}

impl Person {
    pub(crate) fn skin(&self) -> Rgb {
        self.skin
    }
    pub(crate) fn clothes(&self) -> Rgb {
        self.shirt
    }

    pub(crate) fn from_seed(seed: u64) -> Person {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let skin = SKIN[r.gen_range(0..SKIN.len())];
        let skin = shade(skin, r.gen_range(240..272));
        let hair = HAIR[r.gen_range(0..HAIR.len())];
        let beardy = r.gen_bool(0.45);
        Person {
            skin,
            hair,
            hair_style: [0, 0, 0, 1, 1, 2, 3, 4][r.gen_range(0..8)],
            cap: SHIRT[r.gen_range(0..SHIRT.len())],
            iris: IRIS[r.gen_range(0..IRIS.len())],
            face_rx: r.gen_range(0.20..0.25),
            face_ry: r.gen_range(0.21..0.26),
            eye_sep: r.gen_range(0.36..0.46),
            eye_y: r.gen_range(0.05..0.16),
            brow: r.gen_range(0.018..0.04),
            nose: r.gen_range(0.22..0.34),
            mouth_w: r.gen_range(0.28..0.42),
            lip: mix(skin, [150, 60, 60], r.gen_range(60..140)),
            glasses: r.gen_bool(0.25).then(|| [[20, 20, 20], [90, 60, 30], [160, 160, 170]][r.gen_range(0..3)]),
            beard: beardy && r.gen_bool(0.4),
            moustache: beardy && r.gen_bool(0.5),
            shirt: SHIRT[r.gen_range(0..SHIRT.len())],
        }
    }
}

/// Draws one photo of `person`; `rng` supplies everything that changes between photos (pose,
/// light, background, reflections, noise).
pub(crate) fn render<R: Rng + ?Sized>(p: &Person, light: [i32; 3], rng: &mut R) -> Canvas {
    let (w, h) = (FACE_W as i32, FACE_H as i32);
    let (wf, hf) = (w as f32, h as f32);
    // Background: the car's interior behind the seat, lit from a side window.
    let window = [rng.gen_range(120..220), rng.gen_range(130..220), rng.gen_range(140..230)];
    let interior = [rng.gen_range(20..70), rng.gen_range(20..70), rng.gen_range(25..80)];
    let mut c = Canvas::new(FACE_W, FACE_H, interior);
    c.gradient_v(0, h, window, interior);
    let pillar = rng.gen_range(-20..40);
    c.polygon(
        &[(pillar as f32, 0.0), (pillar as f32 + 30.0, 0.0), (pillar as f32 + 70.0, hf), (pillar as f32 + 40.0, hf)],
        shade(interior, 180),
        256,
    );
    // Headrest behind the head.
    let hr = shade(interior, rng.gen_range(140..220));
    c.fill_rect(w / 2 - 60, (hf * 0.18) as i32, w / 2 + 60, (hf * 0.55) as i32, hr);

    let cx = wf / 2.0 + rng.gen_range(-0.05..0.05) * wf;
    let cy = hf * 0.44 + rng.gen_range(-0.04..0.04) * hf;
    let scale = rng.gen_range(0.94..1.06);
    let rx = p.face_rx * wf * 1.35 * scale;
    let ry = p.face_ry * hf * 1.3 * scale;
    let yaw = rng.gen_range(-0.08..0.08) * rx;
    let (cxi, cyi) = (cx as i32, cy as i32);

    // Shoulders and neck.
    c.ellipse(cxi, h + (ry * 0.35) as i32, (rx * 2.3) as i32, (ry * 1.25) as i32, p.shirt, 256);
    c.fill_rect((cx - rx * 0.45) as i32, cyi, (cx + rx * 0.45) as i32, (cy + ry * 1.45) as i32, shade(p.skin, 210));
    // Seat belt across the chest.
    c.line((wf * 0.78, hf * 0.78), (wf * 0.30, hf + 10.0), 16.0, [38, 38, 42], 256);
    // Long hair falls behind the shoulders.
    if p.hair_style == 1 {
        c.ellipse(cxi, (cy + ry * 0.35) as i32, (rx * 1.25) as i32, (ry * 1.3) as i32, p.hair, 256);
    }
    // Ears, then the face.
    let ear = shade(p.skin, 225);
    c.ellipse((cx - rx * 0.98) as i32, cyi, (rx * 0.16) as i32, (ry * 0.22) as i32, ear, 256);
    c.ellipse((cx + rx * 0.98) as i32, cyi, (rx * 0.16) as i32, (ry * 0.22) as i32, ear, 256);
    c.ellipse(cxi, cyi, rx as i32, ry as i32, p.skin, 256);
    // Light falls from one side: darken the other half of the face a little.
    let side = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
    c.ellipse((cx + side * rx * 0.55) as i32, cyi, (rx * 0.55) as i32, (ry * 0.95) as i32, shade(p.skin, 200), 90);

    // Hair on top (or a cap).
    let fringe_y = cy - ry * 0.78;
    match p.hair_style {
        2 => {
            c.ellipse(
                (cx - rx * 0.9) as i32,
                (cy - ry * 0.25) as i32,
                (rx * 0.14) as i32,
                (ry * 0.25) as i32,
                p.hair,
                256,
            );
            c.ellipse(
                (cx + rx * 0.9) as i32,
                (cy - ry * 0.25) as i32,
                (rx * 0.14) as i32,
                (ry * 0.25) as i32,
                p.hair,
                256,
            );
        }
        3 => {
            for k in 0..9 {
                let a = std::f32::consts::PI * (k as f32 / 8.0);
                let (hx, hy) = (cx - a.cos() * rx * 0.85, cy - ry * 0.55 - a.sin() * ry * 0.45);
                c.ellipse(hx as i32, hy as i32, (rx * 0.3) as i32, (ry * 0.25) as i32, p.hair, 256);
            }
        }
        4 => {
            c.ellipse(cxi, fringe_y as i32, (rx * 1.05) as i32, (ry * 0.42) as i32, p.cap, 256);
            c.fill_rect(
                (cx - rx * 1.0 + yaw) as i32,
                (fringe_y + ry * 0.12) as i32,
                (cx + rx * 1.15 + yaw) as i32,
                (fringe_y + ry * 0.24) as i32,
                shade(p.cap, 170),
            );
        }
        _ => {
            c.ellipse(cxi, fringe_y as i32, (rx * 1.04) as i32, (ry * 0.38) as i32, p.hair, 256);
            c.ellipse(
                (cx - rx * 0.85) as i32,
                (cy - ry * 0.35) as i32,
                (rx * 0.2) as i32,
                (ry * 0.35) as i32,
                p.hair,
                256,
            );
            c.ellipse(
                (cx + rx * 0.85) as i32,
                (cy - ry * 0.35) as i32,
                (rx * 0.2) as i32,
                (ry * 0.35) as i32,
                p.hair,
                256,
            );
        }
    }

    // Eyes and brows.
    let ey = cy - p.eye_y * ry;
    let blink = rng.gen_bool(0.05);
    for s in [-1.0f32, 1.0] {
        let ex = cx + yaw + s * p.eye_sep * rx;
        let (erx, ery) = ((rx * 0.17) as i32, (ry * 0.07).max(3.0) as i32);
        if blink {
            c.line((ex - erx as f32, ey), (ex + erx as f32, ey), 3.0, shade(p.skin, 140), 256);
        } else {
            c.ellipse(ex as i32, ey as i32, erx, ery, [236, 236, 230], 256);
            let look = rng.gen_range(-2..=2);
            c.ellipse(ex as i32 + look, ey as i32, (ery as f32 * 1.0) as i32, ery, p.iris, 256);
            c.ellipse(ex as i32 + look, ey as i32, (ery / 2).max(1), (ery / 2).max(1), [10, 10, 10], 256);
            c.line(
                (ex - erx as f32, ey - ery as f32),
                (ex + erx as f32, ey - ery as f32),
                2.0,
                shade(p.skin, 120),
                256,
            );
        }
        let by = ey - ry * 0.16;
        c.line((ex - rx * 0.2, by + s * 1.0), (ex + rx * 0.2, by - s * 1.0), p.brow * hf, p.hair, 256);
        if let Some(frame) = p.glasses {
            let (gx0, gx1) = ((ex - rx * 0.27) as i32, (ex + rx * 0.27) as i32);
            let (gy0, gy1) = ((ey - ry * 0.13) as i32, (ey + ry * 0.13) as i32);
            c.blend_rect(gx0, gy0, gx1, gy1, [200, 220, 235], 40);
            c.frame_rect(gx0, gy0, gx1, gy1, 3, frame);
        }
    }
    if let Some(frame) = p.glasses {
        c.line((cx + yaw - rx * 0.15, ey), (cx + yaw + rx * 0.15, ey), 3.0, frame, 256);
    }

    // Nose: a shaded ridge and nostrils.
    let nose_tip = ey + p.nose * ry * 1.6;
    c.line((cx + yaw, ey + ry * 0.05), (cx + yaw + side * 4.0, nose_tip), 5.0, shade(p.skin, 215), 256);
    c.ellipse((cx + yaw - rx * 0.09) as i32, nose_tip as i32, 4, 3, shade(p.skin, 150), 256);
    c.ellipse((cx + yaw + rx * 0.09) as i32, nose_tip as i32, 4, 3, shade(p.skin, 150), 256);

    // Mouth, beard, moustache.
    let my = cy + ry * 0.52;
    let open = rng.gen_range(0.0..0.07) * ry;
    c.ellipse((cx + yaw) as i32, my as i32, (p.mouth_w * rx) as i32, (ry * 0.06 + open) as i32, p.lip, 256);
    c.line((cx + yaw - p.mouth_w * rx, my), (cx + yaw + p.mouth_w * rx, my), 2.0 + open * 0.5, shade(p.lip, 120), 256);
    if p.beard {
        c.ellipse(cxi, (cy + ry * 0.74) as i32, (rx * 0.72) as i32, (ry * 0.3) as i32, p.hair, 220);
        c.ellipse((cx + yaw) as i32, my as i32, (p.mouth_w * rx) as i32, (ry * 0.06 + open) as i32, p.lip, 256);
    }
    if p.moustache {
        c.ellipse(
            (cx + yaw) as i32,
            (my - ry * 0.12) as i32,
            (p.mouth_w * rx * 1.05) as i32,
            (ry * 0.05) as i32,
            p.hair,
            256,
        );
    }

    // Windscreen reflection: a pale diagonal band, different in every photo.
    if rng.gen_bool(0.6) {
        let x0 = rng.gen_range(-0.5..0.8) * wf;
        let bw = rng.gen_range(20.0..70.0);
        c.polygon(
            &[(x0, 0.0), (x0 + bw, 0.0), (x0 + bw + 120.0, hf), (x0 + 120.0, hf)],
            [235, 240, 245],
            rng.gen_range(20..60),
        );
    }
    c.grade(light);
    c.noise(rng.r#gen(), rng.gen_range(FACE_NOISE.0..FACE_NOISE.1), 0, 0, w, h);
    c
}

pub(crate) const FACE_NOISE: (i32, i32) = (9, 11);
