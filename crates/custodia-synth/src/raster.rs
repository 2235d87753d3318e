//! A tiny RGB canvas with integer fills: everything the renderers need and nothing more.
//!
//! Speed matters more than beauty here (the whole demo renders a few thousand captures on two
//! cores), so every primitive is a clipped integer loop over rows; the only floating point is in
//! the polygon edge walk and the perspective warp.

use crate::font;

/// An RGB colour.
pub(crate) type Rgb = [u8; 3];

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Clone)]
pub(crate) struct Canvas {
    pub(crate) w: usize,
    pub(crate) h: usize,
    pub(crate) px: Vec<u8>,
}

/// xorshift64*: a fast per-pixel noise source. Seeded from the capture's ChaCha stream so the
/// output stays a pure function of the seed; ChaCha itself is too slow to call per pixel.
pub(crate) struct Fast(u64);

impl Fast {
    pub(crate) fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Fast(seed | 1)
    }
    #[inline]
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Size of the shared noise texture: larger than any canvas, so every image reads its own
/// window of it.
const NOISE_W: usize = 2048;
const NOISE_H: usize = 1024;

/// Noise at 32× unit amplitude, 3 channels: luminance in [-32, 32] on all three, plus chroma
/// of a quarter of that on red and blue. Built once from a fixed seed, so it is deterministic.
fn noise_texture() -> &'static [i8] {
    static TEX: std::sync::OnceLock<Vec<i8>> = std::sync::OnceLock::new();
    TEX.get_or_init(|| {
        let mut r = Fast::new(0x6e6f_6973_6574_6578);
        let mut t = Vec::with_capacity(NOISE_W * NOISE_H * 3);
        for _ in 0..NOISE_W * NOISE_H {
            let v = r.next();
            let l = (((v & 0xFFFF) * 65) >> 16) as i32 - 32;
            let cr = (((v >> 32) & 15) as i32 - 8) * 2;
            let cb = (((v >> 40) & 15) as i32 - 8) * 2;
            t.push((l + cr).clamp(-127, 127) as i8);
            t.push(l as i8);
            t.push((l + cb).clamp(-127, 127) as i8);
        }
        t
    })
}

#[inline]
fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// Mixes `a` toward `b` by `t`/256.
#[inline]
pub(crate) fn mix(a: Rgb, b: Rgb, t: u32) -> Rgb {
    let t = t.min(256) as i32;
    let m = |x: u8, y: u8| (x as i32 + (((y as i32 - x as i32) * t) >> 8)) as u8;
    [m(a[0], b[0]), m(a[1], b[1]), m(a[2], b[2])]
}

/// Scales a colour by `f`/256 (f may exceed 256 to brighten).
#[inline]
pub(crate) fn shade(c: Rgb, f: i32) -> Rgb {
    [clamp_u8((c[0] as i32 * f) >> 8), clamp_u8((c[1] as i32 * f) >> 8), clamp_u8((c[2] as i32 * f) >> 8)]
}

impl Canvas {
    pub(crate) fn new(w: usize, h: usize, fill: Rgb) -> Self {
        // `repeat` copies by doubling: far faster than pushing pixel by pixel.
        Canvas { w, h, px: fill.repeat(w * h) }
    }

    /// Clips a half-open rectangle to the canvas; `None` when nothing is left.
    fn clip(&self, x0: i32, y0: i32, x1: i32, y1: i32) -> Option<(usize, usize, usize, usize)> {
        let x0 = x0.max(0) as usize;
        let y0 = y0.max(0) as usize;
        let x1 = (x1.max(0) as usize).min(self.w);
        let y1 = (y1.max(0) as usize).min(self.h);
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    #[inline]
    fn span(&mut self, y: usize, x0: usize, x1: usize, c: Rgb) {
        let row = &mut self.px[(y * self.w + x0) * 3..(y * self.w + x1) * 3];
        for p in row.chunks_exact_mut(3) {
            p.copy_from_slice(&c);
        }
    }

    #[inline]
    fn blend_span(&mut self, y: usize, x0: usize, x1: usize, c: Rgb, alpha: u32) {
        let a = alpha.min(256) as i32;
        let row = &mut self.px[(y * self.w + x0) * 3..(y * self.w + x1) * 3];
        for p in row.chunks_exact_mut(3) {
            for k in 0..3 {
                p[k] = (p[k] as i32 + (((c[k] as i32 - p[k] as i32) * a) >> 8)) as u8;
            }
        }
    }

    /// Fills the half-open rectangle [x0, x1) × [y0, y1).
    pub(crate) fn fill_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, c: Rgb) {
        if let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) {
            for y in y0..y1 {
                self.span(y, x0, x1, c);
            }
        }
    }

    /// Blends `c` over the rectangle with opacity `alpha`/256.
    pub(crate) fn blend_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, c: Rgb, alpha: u32) {
        if let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) {
            for y in y0..y1 {
                self.blend_span(y, x0, x1, c, alpha);
            }
        }
    }

    /// Outline of a rectangle, `t` pixels thick, inside the rectangle.
    pub(crate) fn frame_rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, t: i32, c: Rgb) {
        self.fill_rect(x0, y0, x1, y0 + t, c);
        self.fill_rect(x0, y1 - t, x1, y1, c);
        self.fill_rect(x0, y0, x0 + t, y1, c);
        self.fill_rect(x1 - t, y0, x1, y1, c);
    }

    /// Vertical gradient over rows [y0, y1).
    pub(crate) fn gradient_v(&mut self, y0: i32, y1: i32, top: Rgb, bottom: Rgb) {
        let span = (y1 - y0).max(1) as u32;
        if let Some((x0, cy0, x1, cy1)) = self.clip(0, y0, self.w as i32, y1) {
            for y in cy0..cy1 {
                let t = ((y as i32 - y0) as u32 * 256) / span;
                self.span(y, x0, x1, mix(top, bottom, t));
            }
        }
    }

    /// Filled axis-aligned ellipse, optionally blended.
    pub(crate) fn ellipse(&mut self, cx: i32, cy: i32, rx: i32, ry: i32, c: Rgb, alpha: u32) {
        if rx <= 0 || ry <= 0 {
            return;
        }
        let (rx2, ry2) = ((rx * rx) as i64, (ry * ry) as i64);
        for dy in -ry..=ry {
            let y = cy + dy;
            if y < 0 || y >= self.h as i32 {
                continue;
            }
            // Half-width of this row: x²/rx² + y²/ry² <= 1.
            let rem = rx2 * (ry2 - (dy as i64 * dy as i64));
            if rem < 0 {
                continue;
            }
            let half = ((rem as f64 / ry2 as f64).sqrt()) as i32;
            if let Some((x0, y, x1, _)) = self.clip(cx - half, y, cx + half + 1, y + 1) {
                if alpha >= 256 {
                    self.span(y, x0, x1, c);
                } else {
                    self.blend_span(y, x0, x1, c, alpha);
                }
            }
        }
    }

    /// Filled polygon (even-odd scanline), optionally blended.
    pub(crate) fn polygon(&mut self, pts: &[(f32, f32)], c: Rgb, alpha: u32) {
        if pts.len() < 3 {
            return;
        }
        let ymin = pts.iter().map(|p| p.1).fold(f32::MAX, f32::min).max(0.0) as i32;
        let ymax = (pts.iter().map(|p| p.1).fold(f32::MIN, f32::max).ceil() as i32).min(self.h as i32);
        let mut xs: Vec<f32> = Vec::with_capacity(8);
        for y in ymin..ymax {
            let fy = y as f32 + 0.5;
            xs.clear();
            for i in 0..pts.len() {
                let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                if (a.1 <= fy && b.1 > fy) || (b.1 <= fy && a.1 > fy) {
                    xs.push(a.0 + (fy - a.1) / (b.1 - a.1) * (b.0 - a.0));
                }
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            for pair in xs.chunks_exact(2) {
                let (x0, x1) = (pair[0].round() as i32, pair[1].round() as i32);
                if let Some((x0, y, x1, _)) = self.clip(x0, y, x1, y + 1) {
                    if alpha >= 256 {
                        self.span(y, x0, x1, c);
                    } else {
                        self.blend_span(y, x0, x1, c, alpha);
                    }
                }
            }
        }
    }

    /// A straight line of width `t` drawn as a quad.
    pub(crate) fn line(&mut self, a: (f32, f32), b: (f32, f32), t: f32, c: Rgb, alpha: u32) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-3);
        let (nx, ny) = (-dy / len * t * 0.5, dx / len * t * 0.5);
        self.polygon(
            &[(a.0 + nx, a.1 + ny), (b.0 + nx, b.1 + ny), (b.0 - nx, b.1 - ny), (a.0 - nx, a.1 - ny)],
            c,
            alpha,
        );
    }

    /// Draws `text` with the built-in 5×7 font; each font cell is `sx`×`sy` pixels and glyphs
    /// advance by 6 cells. Characters outside the font are skipped (they still advance).
    pub(crate) fn text(&mut self, x: i32, y: i32, sx: i32, sy: i32, text: &str, c: Rgb) {
        let mut gx = x;
        for ch in text.chars() {
            if let Some(rows) = font::glyph(ch) {
                for (r, bits) in rows.iter().enumerate() {
                    for col in 0..font::GLYPH_W {
                        if bits & (1 << (font::GLYPH_W - 1 - col)) != 0 {
                            let px = gx + col as i32 * sx;
                            let py = y + r as i32 * sy;
                            self.fill_rect(px, py, px + sx, py + sy, c);
                        }
                    }
                }
            }
            gx += sx * font::ADVANCE as i32;
        }
    }

    /// Text fitted into a box of `w`×`h` pixels starting at (x, y), with fractional cell sizes
    /// so plate characters fill their box exactly.
    pub(crate) fn text_fit(&mut self, x: f32, y: f32, w: f32, h: f32, text: &str, c: Rgb) {
        let n = text.chars().count().max(1) as f32;
        // n glyphs of 5 cells plus n-1 gaps of 1 cell.
        let cw = w / (n * font::ADVANCE as f32 - 1.0);
        let ch = h / font::GLYPH_H as f32;
        for (i, chr) in text.chars().enumerate() {
            let Some(rows) = font::glyph(chr) else { continue };
            let gx = x + i as f32 * cw * font::ADVANCE as f32;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..font::GLYPH_W {
                    if bits & (1 << (font::GLYPH_W - 1 - col)) != 0 {
                        let x0 = (gx + col as f32 * cw).round() as i32;
                        let x1 = (gx + (col + 1) as f32 * cw).round() as i32;
                        let y0 = (y + r as f32 * ch).round() as i32;
                        let y1 = (y + (r + 1) as f32 * ch).round() as i32;
                        self.fill_rect(x0, y0, x1, y1, c);
                    }
                }
            }
        }
    }

    /// Adds sensor noise: uniform luminance noise in about [-amp, amp] plus a quarter as much
    /// chroma noise. The noise comes from a pre-rendered texture read at an offset drawn from
    /// `seed`: generating it per pixel was a quarter of all generation time.
    pub(crate) fn noise(&mut self, seed: u64, amp: i32, x0: i32, y0: i32, x1: i32, y1: i32) {
        if amp <= 0 {
            return;
        }
        let Some((x0, y0, x1, y1)) = self.clip(x0, y0, x1, y1) else { return };
        let tex = noise_texture();
        let mut r = Fast::new(seed);
        let ox = (r.next() % NOISE_W as u64) as usize;
        let oy = (r.next() % NOISE_H as u64) as usize;
        let amp = amp.min(64) as i16;
        let w = self.w;
        for y in y0..y1 {
            let trow = &tex[((y + oy) % NOISE_H) * NOISE_W * 3..][..NOISE_W * 3];
            let mut x = x0;
            while x < x1 {
                // Take as long a run as the texture row allows before wrapping.
                let tx = (x + ox) % NOISE_W;
                let run = (x1 - x).min(NOISE_W - tx);
                let dst = &mut self.px[(y * w + x) * 3..(y * w + x + run) * 3];
                let src = &trow[tx * 3..(tx + run) * 3];
                for (p, n) in dst.iter_mut().zip(src) {
                    *p = (*p as i16 + ((*n as i16 * amp) >> 5)).clamp(0, 255) as u8;
                }
                x += run;
            }
        }
    }

    /// Multiplies every pixel by per-channel gains (/256, held to 128..=383): the global
    /// lighting of a scene (time of day, exposure).
    pub(crate) fn grade(&mut self, mul: [i32; 3]) {
        // (p·m) >> 8 == p + ((p·(m − 256)) >> 8): with gains held to [128, 383] the right-hand
        // side fits 16-bit lanes, which baseline x86-64 (SSE2) multiplies 8 at a time. 16 pixels
        // per step give the compiler a fixed per-lane gain pattern; a lookup table per channel
        // was several times slower.
        let d: [i16; 48] = std::array::from_fn(|i| (mul[i % 3].clamp(128, 383) - 256) as i16);
        let mut chunks = self.px.chunks_exact_mut(48);
        for c in &mut chunks {
            for k in 0..48 {
                let p = c[k] as i16;
                c[k] = (p + ((p * d[k]) >> 8)).clamp(0, 255) as u8;
            }
        }
        // The remainder starts at a multiple of 48 bytes, so channel k % 3 still lines up.
        for (k, c) in chunks.into_remainder().iter_mut().enumerate() {
            let p = *c as i16;
            *c = (p + ((p * d[k]) >> 8)).clamp(0, 255) as u8;
        }
    }

    /// A 3-tap horizontal+vertical box blur: the softness of a real lens at plate scale.
    pub(crate) fn blur3(&mut self) {
        let (w, h) = (self.w, self.h);
        let src = self.px.clone();
        for y in 0..h {
            for x in 0..w {
                let xl = x.saturating_sub(1);
                let xr = (x + 1).min(w - 1);
                for k in 0..3 {
                    let s = src[(y * w + xl) * 3 + k] as u32
                        + 2 * src[(y * w + x) * 3 + k] as u32
                        + src[(y * w + xr) * 3 + k] as u32;
                    self.px[(y * w + x) * 3 + k] = (s / 4) as u8;
                }
            }
        }
        let src = self.px.clone();
        for y in 0..h {
            let yu = y.saturating_sub(1);
            let yd = (y + 1).min(h - 1);
            for x in 0..w {
                for k in 0..3 {
                    let s = src[(yu * w + x) * 3 + k] as u32
                        + 2 * src[(y * w + x) * 3 + k] as u32
                        + src[(yd * w + x) * 3 + k] as u32;
                    self.px[(y * w + x) * 3 + k] = (s / 4) as u8;
                }
            }
        }
    }

    /// Samples with bilinear interpolation at (x, y) in pixel-centre coordinates.
    #[inline]
    fn sample(&self, x: f32, y: f32) -> Rgb {
        let x = (x - 0.5).clamp(0.0, (self.w - 1) as f32);
        let y = (y - 0.5).clamp(0.0, (self.h - 1) as f32);
        let (x0, y0) = (x as usize, y as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (fx, fy) = (((x - x0 as f32) * 256.0) as u32, ((y - y0 as f32) * 256.0) as u32);
        let p = |xx: usize, yy: usize| -> Rgb {
            let i = (yy * self.w + xx) * 3;
            [self.px[i], self.px[i + 1], self.px[i + 2]]
        };
        mix(mix(p(x0, y0), p(x1, y0), fx), mix(p(x0, y1), p(x1, y1), fx), fy)
    }

    /// Draws the whole of `src` into the quadrilateral `quad` (corners in the order top-left,
    /// top-right, bottom-right, bottom-left) with a bilinear map: close enough to a homography for
    /// the few degrees of tilt a lane camera sees, and much cheaper.
    pub(crate) fn warp_from(&mut self, src: &Canvas, quad: [(f32, f32); 4]) {
        let xmin = quad.iter().map(|p| p.0).fold(f32::MAX, f32::min).floor() as i32;
        let xmax = quad.iter().map(|p| p.0).fold(f32::MIN, f32::max).ceil() as i32;
        let ymin = quad.iter().map(|p| p.1).fold(f32::MAX, f32::min).floor() as i32;
        let ymax = quad.iter().map(|p| p.1).fold(f32::MIN, f32::max).ceil() as i32;
        let Some((x0, y0, x1, y1)) = self.clip(xmin, ymin, xmax, ymax) else { return };
        let [p0, p1, p2, p3] = quad;
        // Inverting the bilinear map costs a square root; do it every STEP pixels along a row
        // and interpolate between (the map is smooth, the error is far below a pixel).
        const STEP: usize = 16;
        let (sw, sh) = (src.w as f32, src.h as f32);
        for y in y0..y1 {
            let py = y as f32 + 0.5;
            let mut xa = x0;
            while xa < x1 {
                let xb = (xa + STEP).min(x1);
                let ends = (
                    invert_bilinear(p0, p1, p2, p3, xa as f32 + 0.5, py),
                    invert_bilinear(p0, p1, p2, p3, xb as f32 + 0.5, py),
                );
                for x in xa..xb {
                    let uv = match ends {
                        (Some(a), Some(b)) => {
                            let t = (x - xa) as f32 / STEP as f32;
                            Some((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t))
                        }
                        _ => invert_bilinear(p0, p1, p2, p3, x as f32 + 0.5, py),
                    };
                    let Some((u, v)) = uv else { continue };
                    if !(0.0..=1.0).contains(&u) || !(0.0..=1.0).contains(&v) {
                        continue;
                    }
                    let c = src.sample(u * sw, v * sh);
                    let i = (y * self.w + x) * 3;
                    self.px[i..i + 3].copy_from_slice(&c);
                }
                xa = xb;
            }
        }
    }

    /// A nearest-neighbour downscale of the rectangle [x0, x1) × [y0, y1) to `w`×`h`.
    pub(crate) fn crop_resize(&self, x0: usize, y0: usize, x1: usize, y1: usize, w: usize, h: usize) -> Canvas {
        let mut out = Canvas::new(w, h, [0, 0, 0]);
        let (sw, sh) = (x1.saturating_sub(x0).max(1), y1.saturating_sub(y0).max(1));
        for y in 0..h {
            let sy = (y0 + y * sh / h).min(self.h - 1);
            for x in 0..w {
                let sx = (x0 + x * sw / w).min(self.w - 1);
                let si = (sy * self.w + sx) * 3;
                let di = (y * w + x) * 3;
                out.px[di..di + 3].copy_from_slice(&self.px[si..si + 3]);
            }
        }
        out
    }

    /// Baseline JPEG, 4:2:0, as every lane camera we know of writes it.
    pub(crate) fn encode_jpeg(&self, quality: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.w * self.h / 4);
        let enc = jpeg_encoder::Encoder::new(&mut out, quality);
        // Invariant: canvases are at most a few thousand pixels on a side (far below the
        // format's 65535 limit) and the sink is a Vec, so encoding cannot fail.
        enc.encode(&self.px, self.w as u16, self.h as u16, jpeg_encoder::ColorType::Rgb)
            .expect("in-memory JPEG encode of a bounded canvas");
        out
    }
}

/// Inverts the bilinear map of the unit square onto the quad p0 p1 p2 p3 at point (x, y).
fn invert_bilinear(
    p0: (f32, f32),
    p1: (f32, f32),
    p2: (f32, f32),
    p3: (f32, f32),
    x: f32,
    y: f32,
) -> Option<(f32, f32)> {
    // P(u,v) = p0 + u(p1-p0) + v(p3-p0) + uv(p0-p1+p2-p3). Solve for v by a quadratic.
    let e = (p1.0 - p0.0, p1.1 - p0.1);
    let f = (p3.0 - p0.0, p3.1 - p0.1);
    let g = (p0.0 - p1.0 + p2.0 - p3.0, p0.1 - p1.1 + p2.1 - p3.1);
    let h = (x - p0.0, y - p0.1);
    let cross = |a: (f32, f32), b: (f32, f32)| a.0 * b.1 - a.1 * b.0;
    let k2 = cross(g, f);
    let k1 = cross(e, f) + cross(h, g);
    let k0 = cross(h, e);
    let v = if k2.abs() < 1e-6 {
        if k1.abs() < 1e-9 {
            return None;
        }
        -k0 / k1
    } else {
        let disc = k1 * k1 - 4.0 * k0 * k2;
        if disc < 0.0 {
            return None;
        }
        let s = disc.sqrt();
        let v1 = (-k1 - s) / (2.0 * k2);
        let v2 = (-k1 + s) / (2.0 * k2);
        if (0.0..=1.0).contains(&v1) { v1 } else { v2 }
    };
    let denom_x = e.0 + g.0 * v;
    let denom_y = e.1 + g.1 * v;
    let u = if denom_x.abs() > denom_y.abs() { (h.0 - f.0 * v) / denom_x } else { (h.1 - f.1 * v) / denom_y };
    Some((u, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grade_is_an_exact_per_channel_gain() {
        let mut c = Canvas::new(37, 3, [0, 0, 0]);
        for (i, p) in c.px.iter_mut().enumerate() {
            *p = (i * 7 % 256) as u8;
        }
        let before = c.px.clone();
        let mul = [176, 256, 300];
        c.grade(mul);
        for (i, (a, b)) in before.iter().zip(&c.px).enumerate() {
            assert_eq!(*b as i32, ((*a as i32 * mul[i % 3]) >> 8).min(255), "byte {i}");
        }
    }

    #[test]
    fn warp_identity_quad_copies_the_source() {
        let mut src = Canvas::new(20, 10, [10, 20, 30]);
        src.fill_rect(5, 2, 15, 8, [200, 100, 50]);
        let mut dst = Canvas::new(20, 10, [0, 0, 0]);
        dst.warp_from(&src, [(0.0, 0.0), (20.0, 0.0), (20.0, 10.0), (0.0, 10.0)]);
        assert_eq!(dst.px, src.px);
    }

    #[test]
    fn ellipse_and_polygon_stay_inside_their_bounds() {
        let mut c = Canvas::new(50, 50, [0, 0, 0]);
        c.ellipse(25, 25, 10, 5, [255, 255, 255], 256);
        c.polygon(&[(-10.0, -10.0), (5.0, -10.0), (5.0, 5.0)], [255, 255, 255], 256);
        for y in 0..50 {
            for x in 0..50 {
                let lit = c.px[(y * 50 + x) * 3] == 255;
                let in_ellipse = ((x as f32 - 25.0) / 10.5).powi(2) + ((y as f32 - 25.0) / 5.5).powi(2) <= 1.0;
                let in_tri = x <= 5 && y <= 5;
                assert!(!lit || in_ellipse || in_tri, "stray pixel at {x},{y}");
            }
        }
        assert_eq!(c.px[(25 * 50 + 25) * 3], 255);
    }
}
